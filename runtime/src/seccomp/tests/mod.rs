//! Tests: the generated BPF through an interpreter (generation.rs), validation (validation.rs),
//! and filters loaded for real in forked children (kernel.rs, root: some need CAP_SYS_ADMIN).

#[cfg(target_arch = "x86_64")]
mod generation;
mod interp;
#[cfg(target_arch = "x86_64")]
mod kernel;
mod validation;

use oci_spec::runtime::LinuxSeccomp;
use serde_json::{json, Value};

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

/// The trampoline is exec'd by execveat(2) only when the compiled program plainly allows it:
/// a profile that kills, traps, fails or notifies execveat, or allows it only for some
/// arguments, gets execve(2) (what runc and crun make).
#[test]
fn allows_execveat_only_when_plainly_allowed() {
    let nr = libc::SYS_execveat;
    let args = [5, 0, 0, 0, libc::AT_EMPTY_PATH as u64, 0];
    let with = |json: Value| {
        let program = super::SeccompProgram::from_spec(&spec(json)).expect("profile");
        program.allows(nr, args)
    };
    let rule = |action: &str| {
        json!({"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["execveat"], "action": action}]})
    };
    assert!(with(json!({"defaultAction": "SCMP_ACT_ALLOW"})));
    assert!(with(rule("SCMP_ACT_LOG")));
    for action in ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP"] {
        assert!(!with(rule(action)), "{action}");
    }
    assert!(!with(json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["execveat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]})));
    assert!(!with(json!({"defaultAction": "SCMP_ACT_KILL_PROCESS",
        "syscalls": [{"names": ["execve"], "action": "SCMP_ACT_ALLOW"}]})));
    assert!(with(json!({"defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["execveat"], "action": "SCMP_ACT_ALLOW"}]})));
    // Allowed only for another fd: not for the trampoline's.
    assert!(!with(json!({"defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["execveat"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 0, "value": 7, "op": "SCMP_CMP_EQ"}]}]})));
}
