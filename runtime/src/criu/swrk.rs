//! One conversation with `criu swrk`: CRIU's RPC service on a socket it inherits (fd 3), as runc
//! and youki drive it. hako sends one request, answers CRIU's notifications (hooks, the restored
//! pid, a pty master) and reads the final answer. CRIU's stderr goes to a memfd, so that a CRIU
//! that dies before it can answer (it probes the kernel first) is reported with its own words.

use std::io::{IoSliceMut, Read, Seek};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::socket::{
    recvmsg, send, socketpair, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType,
};

use super::rpc::{self, Notify, ReqType, Resp};
use super::CriuError;
use crate::error::{Error, Result};
use crate::fds;

/// How long one answer from CRIU may take. A dump writes every page of the container; this
/// bounds a CRIU that hangs, not a slow one.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(600);

/// How long CRIU may take to exit once it answered.
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest message CRIU sends (runc reads into 40 KiB).
const MAX_MESSAGE: usize = 64 << 10;

/// How much of CRIU's stderr an error keeps (the last bytes).
const KEPT_STDERR: u64 = 4096;

/// Descriptors 0-2 and this socket are CRIU's own; what the request names starts after it.
const SWRK_FD: RawFd = 3;

/// A running `criu swrk`.
pub(crate) struct Swrk {
    child: Child,
    sock: OwnedFd,
    stderr: std::fs::File,
    log: PathBuf,
}

/// Moves `fds` to 3, 4, ... in the forked child and marks everything above close-on-exec. Runs
/// between fork and execve: only dup2(2) and close_range(2), no allocation.
fn place_fds(fds: &[RawFd]) -> std::io::Result<()> {
    for (i, &fd) in fds.iter().enumerate() {
        let target = SWRK_FD + i as RawFd;
        // SAFETY: dup2 on descriptors this process holds; every source is at 100 or above and
        // every target below it, so no source is overwritten before it is moved.
        if unsafe { libc::dup2(fd, target) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    let first = SWRK_FD as u32 + fds.len() as u32;
    // SAFETY: close_range(2) with CLOSE_RANGE_CLOEXEC only sets a flag on descriptors (Linux
    // 5.11); on older kernels hako's own descriptors are close-on-exec anyway.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    Ok(())
}

impl Swrk {
    /// Starts `criu swrk 3`; `extra` become CRIU's descriptors 4, 5, ... in that order (what
    /// `inherit_fd` entries name). `log` is where CRIU writes its log, for the errors.
    pub(crate) fn spawn(criu: &Path, extra: &[BorrowedFd<'_>], log: PathBuf) -> Result<Self> {
        let (mine, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(Error::sys("socketpair(criu swrk)"))?;
        let mut moved = vec![fds::dup_above(theirs.as_fd(), 100)?];
        for fd in extra {
            moved.push(fds::dup_above(*fd, 100)?);
        }
        drop(theirs);
        let raw: Vec<RawFd> = moved.iter().map(AsRawFd::as_raw_fd).collect();
        let memfd = nix::sys::memfd::memfd_create(
            c"criu-stderr",
            nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC,
        )
        .map_err(Error::sys("memfd_create(criu stderr)"))?;
        let stderr = std::fs::File::from(memfd);
        let out = stderr
            .try_clone()
            .map_err(Error::io("dup", "criu stderr"))?;
        let err = stderr
            .try_clone()
            .map_err(Error::io("dup", "criu stderr"))?;
        let mut cmd = Command::new(criu);
        cmd.arg("swrk")
            .arg(SWRK_FD.to_string())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        // SAFETY: the closure runs between fork and execve and only calls dup2(2) and
        // close_range(2), which are async-signal-safe; `raw` was built before the fork.
        unsafe { cmd.pre_exec(move || place_fds(&raw)) };
        let child = cmd.spawn().map_err(|source| CriuError::Spawn {
            criu: criu.to_path_buf(),
            source,
        })?;
        // Only CRIU holds its end now: if it dies, our recv sees end-of-file.
        drop(moved);
        Ok(Swrk {
            child,
            sock: mine,
            stderr,
            log,
        })
    }

    /// CRIU's pid (to put into the container's cgroup before a restore).
    pub(crate) fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `request` and serves notifications with `notify` (which gets the descriptor CRIU
    /// sent with it, if any) until the final answer, which must be a success.
    pub(crate) fn call(
        &mut self,
        kind: ReqType,
        request: &[u8],
        mut notify: impl FnMut(&Notify, Option<OwnedFd>) -> Result<()>,
    ) -> Result<Resp> {
        self.send(request)?;
        loop {
            let (resp, fd) = self.recv(kind)?;
            if !resp.success {
                return Err(CriuError::Failed {
                    request: kind.name(),
                    errno: resp.cr_errno,
                    log: self.log.clone(),
                    said: super::CriuSaid(
                        resp.cr_errmsg
                            .filter(|m| !m.trim().is_empty())
                            .or_else(|| log_errors(&self.log))
                            .unwrap_or_else(|| self.stderr_tail()),
                    ),
                }
                .into());
            }
            match (resp.kind, &resp.notify) {
                (k, Some(n)) if k == ReqType::Notify as i32 => {
                    let handled = notify(n, fd);
                    self.send(&rpc::notify_answer(handled.is_ok()))?;
                    handled?;
                }
                (k, _) if k == kind as i32 => return Ok(resp),
                (k, _) => {
                    return Err(CriuError::Protocol {
                        expected: kind.name(),
                        got: k,
                    }
                    .into())
                }
            }
        }
    }

    fn send(&self, bytes: &[u8]) -> Result<()> {
        send(self.sock.as_raw_fd(), bytes, MsgFlags::MSG_NOSIGNAL)
            .map_err(Error::sys("send to criu swrk"))?;
        Ok(())
    }

    fn recv(&mut self, kind: ReqType) -> Result<(Resp, Option<OwnedFd>)> {
        self.wait_readable()?;
        let mut buf = vec![0u8; MAX_MESSAGE];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let (n, fd) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let msg = recvmsg::<()>(
                self.sock.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            )
            .map_err(Error::sys("recvmsg from criu swrk"))?;
            let mut fd = None;
            for c in msg.cmsgs().map_err(Error::sys("recvmsg from criu swrk"))? {
                if let ControlMessageOwned::ScmRights(fds) = c {
                    for raw in fds {
                        // SAFETY: SCM_RIGHTS installed this descriptor for us; nothing owns it.
                        let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                        fd.get_or_insert(owned);
                    }
                }
            }
            (msg.bytes, fd)
        };
        if n == 0 {
            return Err(self.died(kind));
        }
        let resp = Resp::decode(&buf[..n]).map_err(CriuError::Decode)?;
        Ok((resp, fd))
    }

    fn wait_readable(&self) -> Result<()> {
        let mut pfd = libc::pollfd {
            fd: self.sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(ANSWER_TIMEOUT.as_millis()).unwrap_or(i32::MAX);
        loop {
            // SAFETY: one valid pollfd, count 1.
            let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
            match rc {
                0 => {
                    return Err(Error::Timeout {
                        what: "criu swrk to answer",
                        seconds: ANSWER_TIMEOUT.as_secs(),
                    })
                }
                r if r > 0 => return Ok(()),
                _ if nix::Error::last() == nix::Error::EINTR => continue,
                _ => return Err(Error::sys("poll(criu swrk)")(nix::Error::last())),
            }
        }
    }

    /// CRIU closed the socket without an answer: how it ended and what it said on stderr.
    fn died(&mut self, kind: ReqType) -> Error {
        let status = match self.wait_exit() {
            Ok(s) => s,
            Err(e) => return e,
        };
        CriuError::Died {
            request: kind.name(),
            status,
            log: self.log.clone(),
            said: super::CriuSaid(log_errors(&self.log).unwrap_or_else(|| self.stderr_tail())),
        }
        .into()
    }

    /// Waits (bounded) for CRIU to exit and reaps it; its exit status as text.
    fn wait_exit(&mut self) -> Result<String> {
        let pid = self.pid();
        let id = crate::pidfd::Identity {
            start_time: crate::pidfd::stat(pid).map(|s| s.start_time).unwrap_or(0),
            ino: 0,
        };
        // None: already a zombie (or gone), so wait() below returns at once.
        if let Some(p) = crate::pidfd::Process::open(pid, id) {
            if !p.wait_exit(EXIT_TIMEOUT)? {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(Error::Timeout {
                    what: "criu swrk to exit",
                    seconds: EXIT_TIMEOUT.as_secs(),
                });
            }
        }
        let status = self
            .child
            .wait()
            .map_err(Error::io("wait for criu", self.log.clone()))?;
        Ok(status.to_string())
    }

    /// Ends the conversation: closes the socket (a pre-dump CRIU waits for more requests until
    /// then) and waits for CRIU to exit. `must_succeed`: a non-zero exit is an error (runc's
    /// rule for everything but pre-dump, where CRIU exits non-zero on the closed socket).
    pub(crate) fn finish(mut self, kind: ReqType, must_succeed: bool) -> Result<()> {
        let _ = nix::sys::socket::shutdown(self.sock.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        let status = self.wait_exit()?;
        let ok = status == "exit status: 0";
        if must_succeed && !ok {
            return Err(CriuError::Died {
                request: kind.name(),
                status,
                log: self.log.clone(),
                said: super::CriuSaid(self.stderr_tail()),
            }
            .into());
        }
        Ok(())
    }

    /// The last bytes CRIU wrote to stdout and stderr, trimmed.
    fn stderr_tail(&mut self) -> String {
        let len = self.stderr.seek(std::io::SeekFrom::End(0)).unwrap_or(0);
        let from = len.saturating_sub(KEPT_STDERR);
        let mut text = String::new();
        if self.stderr.seek(std::io::SeekFrom::Start(from)).is_ok() {
            let mut bytes = Vec::new();
            let _ = (&self.stderr).read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).trim().to_string();
        }
        if text.is_empty() {
            "no message; see the log file".to_string()
        } else {
            text
        }
    }
}

/// How much of the end of CRIU's log is searched for its errors.
const LOG_TAIL: u64 = 64 << 10;

/// How many of CRIU's error lines an error keeps (the last ones).
const KEPT_ERRORS: usize = 4;

/// The last `Error (file:line): ...` lines of CRIU's log, without their timestamps: CRIU 3.17
/// answers many failures without `cr_errmsg` and says what went wrong only there.
pub(crate) fn log_errors(log: &Path) -> Option<String> {
    let mut f = std::fs::File::open(log).ok()?;
    let len = f.seek(std::io::SeekFrom::End(0)).ok()?;
    f.seek(std::io::SeekFrom::Start(len.saturating_sub(LOG_TAIL)))
        .ok()?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let errors: Vec<&str> = text
        .lines()
        .filter_map(|l| l.find("Error (").map(|i| l[i..].trim()))
        .collect();
    let kept = &errors[errors.len().saturating_sub(KEPT_ERRORS)..];
    (!kept.is_empty()).then(|| kept.join("; "))
}

impl Drop for Swrk {
    fn drop(&mut self) {
        // A conversation abandoned on an error: CRIU must not outlive it (it resumes or kills
        // the tree it holds when its client goes away).
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ =
                nix::sys::socket::shutdown(self.sock.as_raw_fd(), nix::sys::socket::Shutdown::Both);
            let _ = self.wait_exit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_errors_keeps_the_last_error_lines_without_timestamps() {
        let dir = tempfile::tempdir().expect("test");
        let log = dir.path().join("dump.log");
        std::fs::write(
            &log,
            "(00.01) Version: 3.17.1\n\
             (00.035159) Error (criu/vdso.c:613): vdso: Failed to fill self vdso symtable\n\
             (00.035160) Error (criu/kerndat.c:1615): kerndat_vdso_fill_symtable failed\n\
             (00.035178) Adjust mmap_min_addr\n",
        )
        .expect("test");
        assert_eq!(
            log_errors(&log).as_deref(),
            Some(
                "Error (criu/vdso.c:613): vdso: Failed to fill self vdso symtable; \
                 Error (criu/kerndat.c:1615): kerndat_vdso_fill_symtable failed"
            )
        );
        std::fs::write(&log, "(00.01) all fine\n").expect("test");
        assert_eq!(log_errors(&log), None);
        assert_eq!(log_errors(&dir.path().join("absent.log")), None);
    }
}
