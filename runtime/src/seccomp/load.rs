//! Installing the program with seccomp(2).
//!
//! `seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog)` rather than `prctl(PR_SET_SECCOMP)`, since
//! only seccomp(2) takes flags. With `SECCOMP_FILTER_FLAG_NEW_LISTENER` it returns the listener
//! fd (close-on-exec) that `SECCOMP_IOCTL_NOTIF_RECV/SEND` use (seccomp_unotify(2)).
//! The kernel refuses the filter with EACCES unless the caller has no_new_privs set or
//! CAP_SYS_ADMIN in its user namespace (seccomp(2), "SECCOMP_SET_MODE_FILTER").

use std::os::fd::OwnedFd;

use super::bpf::Insn;
use super::profile::Flags;
use super::SeccompError;
use crate::sys;

/// The `flags` argument for a profile's flags; `notify` when the profile uses
/// `SCMP_ACT_NOTIFY` (the listener is then created).
pub(super) fn filter_flags(flags: Flags, notify: bool) -> libc::c_ulong {
    let mut bits = 0;
    if flags.tsync {
        bits |= libc::SECCOMP_FILTER_FLAG_TSYNC;
        if notify {
            // TSYNC reports a failing thread by returning its tid, which would be
            // indistinguishable from a listener fd: the kernel insists on TSYNC_ESRCH
            // (return ESRCH instead) when both are asked for.
            bits |= libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
        }
    }
    if flags.log {
        bits |= libc::SECCOMP_FILTER_FLAG_LOG;
    }
    if flags.spec_allow {
        bits |= libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW;
    }
    if notify {
        bits |= libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
        // Only meaningful with a listener: the kernel rejects it (EINVAL) without one, so a
        // profile without SCMP_ACT_NOTIFY has it dropped.
        if flags.wait_killable_recv {
            bits |= libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
        }
    }
    bits
}

/// Installs `filter` on the calling thread (all threads with TSYNC). Allocates nothing, so it
/// is usable in a child forked from a multi-threaded process.
pub(super) fn install(
    filter: &[Insn],
    flags: libc::c_ulong,
) -> Result<Option<OwnedFd>, SeccompError> {
    let fail = |e: nix::Error| SeccompError::Load {
        flags,
        source: std::io::Error::from_raw_os_error(e as i32),
    };
    let ret = sys::seccomp_set_mode_filter(flags, filter).map_err(fail)?;
    if flags & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER == 0 {
        if ret > 0 {
            // TSYNC without a listener: `ret` is the tid of a thread that could not be
            // synchronised, and no filter was installed.
            return Err(fail(nix::Error::ESRCH));
        }
        return Ok(None);
    }
    sys::seccomp_listener(ret).map(Some).map_err(fail)
}
