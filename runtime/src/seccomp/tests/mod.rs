//! Tests: the generated BPF through an interpreter (generation.rs), validation (validation.rs),
//! and filters loaded for real in forked children (kernel.rs, root: some need CAP_SYS_ADMIN).

#[cfg(target_arch = "x86_64")]
mod generation;
mod interp;
#[cfg(target_arch = "x86_64")]
mod kernel;
mod validation;

use oci_spec::runtime::LinuxSeccomp;
use serde_json::Value;

use super::bpf::Insn;
use super::profile::Profile;

/// `AUDIT_ARCH_X86_64`.
const X86_64: u32 = 0xc000_003e;
/// `AUDIT_ARCH_I386`.
const I386: u32 = 0x4000_0003;

/// `SECCOMP_RET_ERRNO | e`.
fn errno(e: u32) -> u32 {
    libc::SECCOMP_RET_ERRNO | e
}

/// Parses a `linux.seccomp` object.
fn spec(json: Value) -> LinuxSeccomp {
    serde_json::from_value(json).expect("valid linux.seccomp")
}

/// Validates and compiles, checking the program as the kernel would.
fn compile(json: Value) -> Vec<Insn> {
    let profile = Profile::from_spec(&spec(json)).expect("profile");
    let prog = super::compile::compile(&profile).expect("compile");
    interp::validate(&prog);
    prog
}

/// What `prog` returns for syscall `nr` of `arch` with `args`.
fn eval(prog: &[Insn], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    interp::run(prog, &interp::Data { nr, arch, args }).0
}

/// The profile fixtures: `linux.seccomp` of the configs docker 20.10 and podman 4.3 generated
/// (shared/reference/clients/config-{docker,podman}.json).
fn fixture(name: &str) -> Value {
    let text = match name {
        "docker" => include_str!("../testdata/docker-seccomp.json"),
        "podman" => include_str!("../testdata/podman-seccomp.json"),
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(text).expect("fixture json")
}
