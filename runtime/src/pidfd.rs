//! A handle on a process that cannot be fooled by pid reuse.
//!
//! A pid stored in `state.json` may belong to another process by the time a later command runs
//! (runc #4047: `kill --all` hit the wrong processes). hako stores the pid with the process's start
//! time (field 22 of `/proc/<pid>/stat`), opens a pidfd (pidfd_open(2)), and only then checks the
//! start time again: from that moment the pidfd refers to exactly that process, so signals sent
//! through it (pidfd_send_signal(2)) can never reach a stranger.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use crate::error::{Error, Result};

/// What `/proc/<pid>/stat` says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// Process state letter (`R`, `S`, `Z`, ...).
    pub(crate) state: char,
    /// Start time in clock ticks since boot.
    pub(crate) start_time: u64,
}

/// Parses `/proc/<pid>/stat`; the command name may hold spaces and parentheses, so fields are
/// counted from the last `)`.
pub(crate) fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the comm field: state is field 3, starttime is field 22 (proc(5)).
    let state = fields.first()?.chars().next()?;
    let start_time = fields.get(19)?.parse().ok()?;
    Some(ProcStat { state, start_time })
}

/// Reads the stat of `pid`, `None` when there is no such process.
pub(crate) fn stat(pid: i32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// A live process, held by pidfd.
#[derive(Debug)]
pub(crate) struct Process {
    fd: OwnedFd,
    pid: i32,
}

impl Process {
    /// Opens `pid` if it is still the process that started at `start_time` and is not a zombie.
    pub(crate) fn open(pid: i32, start_time: u64) -> Option<Self> {
        if pid <= 0 {
            return None;
        }
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if raw < 0 {
            return None;
        }
        // SAFETY: the syscall succeeded, so `raw` is a new descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw as i32) };
        match stat(pid) {
            Some(s) if s.start_time == start_time && s.state != 'Z' && s.state != 'X' => {
                Some(Process { fd, pid })
            }
            _ => None,
        }
    }

    /// The pid (in hako's pid namespace).
    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    /// Sends `signal` through the pidfd.
    pub(crate) fn signal(&self, signal: i32) -> Result<()> {
        // SAFETY: the pidfd is valid for our lifetime; a null siginfo means "as kill(2) would".
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc < 0 {
            let errno = nix::Error::last();
            if errno == nix::Error::ESRCH {
                return Ok(());
            }
            return Err(Error::Sys {
                syscall: "pidfd_send_signal",
                source: errno,
            });
        }
        Ok(())
    }

    /// Waits until the process has exited (the pidfd becomes readable), at most `timeout`.
    /// Works for processes that are not our children.
    pub(crate) fn wait_exit(&self, timeout: Duration) -> Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        loop {
            // SAFETY: one valid pollfd, count 1.
            let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
            if rc < 0 && nix::Error::last() == nix::Error::EINTR {
                continue;
            }
            if rc < 0 {
                return Err(Error::Sys {
                    syscall: "poll(pidfd)",
                    source: nix::Error::last(),
                });
            }
            return Ok(rc > 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_hostile_comm() {
        let line =
            "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 1000 100";
        let s = parse_stat(line).expect("parse");
        assert_eq!(s.state, 'S');
        assert_eq!(s.start_time, 987654);
    }

    #[test]
    fn own_process_opens_and_stale_start_time_does_not() {
        let me = std::process::id() as i32;
        let st = stat(me).expect("own stat");
        assert!(Process::open(me, st.start_time).is_some());
        assert!(Process::open(me, st.start_time + 1).is_none());
    }
}
