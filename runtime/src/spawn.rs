//! Starting the container's processes: `clone(2)` with namespace flags and fork semantics.
//!
//! hako never re-execs itself: the init is this very process image, cloned with every namespace
//! that can be created at once, and the child continues in Rust until it `execve`s the user's
//! program. That is safe only because the caller is single-threaded (no other thread can hold a
//! lock, such as malloc's, that the child would inherit held), which [`assert_single_threaded`]
//! checks before every clone.

use nix::sched::CloneFlags;
use nix::unistd::Pid;

use crate::error::{Error, Result};

/// Fails unless this process has exactly one thread (`/proc/self/stat` field 20).
pub(crate) fn assert_single_threaded() -> Result<()> {
    let stat =
        std::fs::read_to_string("/proc/self/stat").map_err(Error::io("read", "/proc/self/stat"))?;
    let threads = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().nth(17))
        .and_then(|s| s.parse::<u32>().ok());
    match threads {
        Some(1) => Ok(()),
        other => Err(Error::InvalidConfig {
            field: "runtime",
            reason: format!("clone needs a single-threaded caller, found {other:?} threads"),
        }),
    }
}

/// What a clone returned.
pub(crate) enum Forked {
    /// In the parent: the child's pid.
    Parent(Pid),
    /// In the child.
    Child,
}

/// clone(2) without a new stack (fork semantics) and with `flags` added to SIGCHLD.
pub(crate) fn clone(flags: CloneFlags) -> Result<Forked> {
    assert_single_threaded()?;
    let raw = flags.bits() as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: with a null stack, clone behaves as fork(2): the child gets a copy-on-write copy of
    // this single-threaded address space (checked above) and returns 0. No CLONE_VM, CLONE_VFORK,
    // CLONE_SETTLS or CLONE_*TID flag is passed (CloneFlags from the namespaces crate only carry
    // CLONE_NEW*), so the null pointers for ptid, ctid and tls are never used.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone,
            raw,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    match rc {
        -1 => Err(Error::sys("clone")(nix::Error::last())),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(Pid::from_raw(pid as i32))),
    }
}
