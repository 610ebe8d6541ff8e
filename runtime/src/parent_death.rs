//! The init dies with `create` until it is created.
//!
//! A child blocked on the sync socket learns of its parent's death by end-of-file. Anywhere else
//! (a createContainer hook without a timeout, a mount of a hung filesystem) it would outlive a
//! killed `create` for as long as that takes, out of reach of the engine, which sees no state to
//! act on. So from the clone until `Ready` the child asks the kernel for SIGKILL when its parent
//! dies (prctl(2) `PR_SET_PDEATHSIG`), and drops the request as late as it can: right before the
//! first seccomp filter is loaded (which may deny prctl) or, without an early filter, right
//! before `Ready`, since a created init must outlive the `create` that exits once it is
//! created. `exec`'s child does the same with `hako exec`, dropping it before the filter or the
//! exec (a detached process outlives `hako exec -d`).
//!
//! The kernel clears the request in a forked child and whenever the credentials change (euid,
//! egid, fsuid, fsgid or a capability set not a subset of the old one: commit_creds, which
//! setresuid(2) and joining a user namespace go through), so it is made again after each. A
//! parent that died before a request can no longer trigger it: the request is followed by a
//! check that the parent's end of the sync socket is still open (it hangs up when `create`
//! dies, poll(2) `POLLHUP`), and the child exits if it is not.

use std::os::fd::AsFd;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;

use crate::error::{Error, Result};
use crate::sync::SyncSocket;

/// Asks for SIGKILL when the parent dies; exits at once if it already has.
pub(crate) fn tie(sync: &SyncSocket) -> Result<()> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
        .map_err(Error::sys("prctl(PR_SET_PDEATHSIG, SIGKILL)"))?;
    let mut fds = [PollFd::new(sync.as_fd(), PollFlags::empty())];
    poll(&mut fds, PollTimeout::ZERO).map_err(Error::sys("poll(sync socket)"))?;
    if fds[0]
        .revents()
        .is_some_and(|r| r.contains(PollFlags::POLLHUP))
    {
        // The parent is gone: nobody to report to, and nothing of ours to undo.
        crate::sys::exit_now(1)
    }
    Ok(())
}

/// Drops the request: from `Ready` on, the init outlives `create`.
pub(crate) fn untie() -> Result<()> {
    nix::sys::prctl::set_pdeathsig(None).map_err(Error::sys("prctl(PR_SET_PDEATHSIG, 0)"))
}
