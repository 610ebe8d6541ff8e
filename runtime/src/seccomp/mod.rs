//! `linux.seccomp`: the container's syscall filter (config-linux.md, "Seccomp"; seccomp(2)).
//!
//! docker and podman hand every container a profile and Kubernetes asks for RuntimeDefault, so a
//! runtime that replaces runc must honour all of it: `defaultAction`/`defaultErrnoRet`,
//! `architectures`, `flags`, every action, argument conditions, and `SCMP_ACT_NOTIFY` with
//! `listenerPath`/`listenerMetadata`.
//!
//! **Why hako generates the BPF itself.** libseccomp (what runc and crun link) is C: linking it
//! ties hako to a shared library or a static C build. seccompiler (rust-vmm) is pure Rust but
//! compiles for one architecture per filter (no i386/x32 companions) and has no notify action.
//! The generator here is small (compile.rs, plus a backwards cBPF assembler in bpf.rs), uses the
//! `syscalls` crate only for name → number tables, keeps hako a single static-friendly binary,
//! and emits a binary search on the syscall number instead of libseccomp's linear `jeq` list:
//! docker's profile becomes 317 instructions where libseccomp 2.5.4 makes 960, and an allowed
//! x86_64 syscall runs 12 instructions on average (13 at worst) instead of 150 (295).
//! The tests run the generated programs through a cBPF interpreter (every operator at its
//! 32/64-bit boundaries) and load them in forked children to watch each action for real.
//!
//! **When to load** (`init::become_process`, for the init and `exec`). The profile restricts
//! the user's program, not hako's set-up: every check and preparation (cwd and its getcwd
//! check, `PATH` lookup, trampoline, close-on-exec sweep, signal reset) comes before the filter.
//! With `noNewPrivileges` the filter is loaded right before the trampoline's exec, after the
//! init reported ready, waited on the exec fifo and ran the startContainer hooks: only the
//! exec runs under it (runc: "as close to execve as possible"). Without it, installing a
//! filter needs CAP_SYS_ADMIN (seccomp(2), EACCES), so it goes in before the non-zero uid and
//! capset(2) that give it up (runc loads it before all of its `finalizeNamespace`, crun before
//! its capabilities and signals: hako constrains less of its own work than either), and
//! before the init reports ready. A profile with `SCMP_ACT_NOTIFY` is loaded before ready too,
//! so that the listener fd can travel to the parent, which alone can reach `listenerPath` (the
//! child is already pivoted into the rootfs): the parent then calls [`send_to_listener`] with
//! the container's state. Whatever the init does after an early load (capset, reporting,
//! waiting on the exec fifo, startContainer hooks, `execve`) runs under the filter: a profile
//! that denies those stops the container, as with runc; one that notifies what the init needs
//! before the listener fd has left it (`SCMP_ACT_NOTIFY` as default action, or on
//! `write`/`sendmsg`) is refused, as runc does.

mod arch;
mod bpf;
mod compile;
mod error;
mod eval;
mod load;
mod notify;
mod profile;

#[cfg(test)]
mod tests;

use std::os::fd::OwnedFd;
use std::path::Path;

pub use error::SeccompError;
pub(crate) use notify::send_to_listener;

use profile::{Listener, Profile};

/// A validated, compiled `linux.seccomp`: built in the parent at config time, loaded in the
/// child.
#[derive(Clone)]
pub(crate) struct SeccompProgram {
    /// The cBPF program.
    filter: Vec<bpf::Insn>,
    /// `SECCOMP_FILTER_FLAG_*` for seccomp(2).
    flags: libc::c_ulong,
    /// Present when the profile uses `SCMP_ACT_NOTIFY`.
    listener: Option<Listener>,
}

impl std::fmt::Debug for SeccompProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeccompProgram")
            .field("instructions", &self.filter.len())
            .field("flags", &self.flags)
            .field("listener", &self.listener)
            .finish()
    }
}

impl SeccompProgram {
    /// Validates and compiles `linux.seccomp`. Unknown action, architecture, operator and flag
    /// names are already refused by oci-spec's parser; this refuses an `errnoRet` on an action
    /// without one, errnos past 16 bits, argument indices past 5, empty names, and
    /// `SCMP_ACT_NOTIFY` without an absolute `listenerPath`.
    pub(crate) fn from_spec(s: &oci_spec::runtime::LinuxSeccomp) -> Result<Self, SeccompError> {
        let profile = Profile::from_spec(s)?;
        let filter = compile::compile(&profile)?;
        let flags = load::filter_flags(profile.flags, profile.listener.is_some());
        Ok(SeccompProgram {
            filter,
            flags,
            listener: profile.listener,
        })
    }

    /// Installs the filter on the calling thread (every thread with `SECCOMP_FILTER_FLAG_TSYNC`).
    /// Call it in the child as late as possible before `execve`: after no_new_privs when
    /// `noNewPrivileges` is set, otherwise while the child still has CAP_SYS_ADMIN (see the
    /// module docs). Returns the listener fd when the profile has `SCMP_ACT_NOTIFY`; it is
    /// close-on-exec. Allocates nothing.
    pub(crate) fn load(&self) -> Result<Option<OwnedFd>, SeccompError> {
        load::install(&self.filter, self.flags)
    }

    /// `listenerPath`, when the profile uses `SCMP_ACT_NOTIFY`.
    pub(crate) fn listener_path(&self) -> Option<&Path> {
        self.listener.as_ref().map(|l| l.path.as_path())
    }

    /// Whether the profile uses `SCMP_ACT_NOTIFY`: its listener fd must reach `create` before
    /// the init reports ready, which fixes when the filter is loaded (`init::become_process`).
    pub(crate) fn notifies(&self) -> bool {
        self.listener.is_some()
    }

    /// `listenerMetadata` (empty when absent), for [`send_to_listener`].
    pub(crate) fn listener_metadata(&self) -> &str {
        self.listener.as_ref().map_or("", |l| l.metadata.as_str())
    }

    /// Whether the filter plainly lets this build's own syscall `nr` with `args` through
    /// (`SCMP_ACT_ALLOW` or `SCMP_ACT_LOG`), asked of the compiled program before it is loaded.
    pub(crate) fn allows(&self, nr: i64, args: [u64; 6]) -> bool {
        eval::allows(&self.filter, nr, args)
    }

    /// Number of cBPF instructions (for `--debug` logs and tests).
    pub(crate) fn len(&self) -> usize {
        self.filter.len()
    }
}
