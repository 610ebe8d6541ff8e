//! Waiting for a child while forwarding signals to it, for `run` and `exec` in the foreground.
//!
//! Signals are blocked *before* the child is cloned (see [`SignalForwarder::block`]), so neither
//! a forwarded signal nor the child's SIGCHLD can arrive before we wait: youki's `run` missed the
//! SIGCHLD of short-lived containers by setting up handling too late. The child unblocks them
//! again before `execve` (`init::reset_signals`).

use std::os::fd::OwnedFd;

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::error::{Error, Result};

/// Signals `run` forwards to the container, as runc's signal handler does (all but the ones the
/// kernel never lets us catch or that are about our own terminal/children).
const FORWARDED: &[Signal] = &[
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGTERM,
    Signal::SIGALRM,
    Signal::SIGCONT,
    Signal::SIGTSTP,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGURG,
    Signal::SIGWINCH,
    Signal::SIGPWR,
];

/// Blocked signals, restored on drop.
pub(crate) struct SignalForwarder {
    set: SigSet,
    old: SigSet,
}

impl SignalForwarder {
    /// Blocks the forwarded signals and SIGCHLD.
    pub(crate) fn block() -> Result<Self> {
        let mut set = SigSet::empty();
        for s in FORWARDED {
            set.add(*s);
        }
        set.add(Signal::SIGCHLD);
        let mut old = SigSet::empty();
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old))
            .map_err(Error::sys("sigprocmask(SIG_BLOCK)"))?;
        Ok(SignalForwarder { set, old })
    }

    /// Waits for `child` to exit, forwarding signals to it; returns the shell-style exit code
    /// (the exit status, or 128 + the signal that killed it). With a pty master (hako drives the
    /// terminal), SIGWINCH resizes the pty instead, and the kernel tells the container.
    pub(crate) fn wait(&self, child: Pid, pty: Option<&OwnedFd>) -> Result<i32> {
        loop {
            if let Some(code) = reap(child)? {
                return Ok(code);
            }
            let sig = self.set.wait().map_err(Error::sys("sigwait"))?;
            match (sig, pty) {
                (Signal::SIGCHLD, _) => {}
                (Signal::SIGWINCH, Some(master)) => crate::tty_proxy::copy_size(master),
                _ => {
                    let _ = nix::sys::signal::kill(child, sig);
                }
            }
        }
    }
}

impl Drop for SignalForwarder {
    fn drop(&mut self) {
        let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.old), None);
    }
}

fn reap(child: Pid) -> Result<Option<i32>> {
    loop {
        match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(Some(code)),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(Some(128 + sig as i32)),
            Ok(WaitStatus::StillAlive) => return Ok(None),
            Ok(_) => continue,
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(Error::sys("waitpid")(e)),
        }
    }
}
