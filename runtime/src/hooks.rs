//! Running OCI hooks (config.md, "POSIX-platform Hooks"; runtime.md, "Lifecycle").
//!
//! A hook is executed with `args[0]` as its argv[0], exactly its `env` (none inherited), the
//! container state JSON on stdin, and killed when `timeout` seconds pass. Where each list runs:
//!
//! | hook            | who runs it              | when                                          |
//! |-----------------|--------------------------|-----------------------------------------------|
//! | prestart        | `create` (parent)        | mounts prepared, before pivot_root (deprecated)|
//! | createRuntime   | `create` (parent)        | same moment, runtime namespace                |
//! | createContainer | the container's init     | after those, before pivot_root, container ns  |
//! | startContainer  | the container's init     | after `start` released it, before execve      |
//! | poststart       | `start`                  | after the process started, before `start` ends|
//! | poststop        | `delete`                 | after the container is gone                   |
//!
//! The hook's stdin, stdout and stderr are pipes served together by one poll(2) loop with the
//! hook's pidfd, so a hook that fills one pipe while hako serves another cannot deadlock, and a
//! hook that never reads its stdin cannot block hako. Like runc, hako keeps what the hook prints
//! for the error when it fails, but only the last [`KEPT_OUTPUT`] bytes of each stream. The loop
//! ends when the hook exits (not when its pipes close: a daemon it left behind may hold them).
//! Every descriptor above stderr is close-on-exec in the hook (close_range(2)), so nothing hako
//! holds or inherited (a caller's descriptors, the sync socket, the state lock) reaches it.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags};
use oci_spec::runtime::Hook;

use crate::error::{Error, Result};

/// How many bytes of a failed hook's stdout, and of its stderr, the error keeps (the last ones).
pub(crate) const KEPT_OUTPUT: usize = 4096;

/// How much a hook's pipes are still read after it exited: what it wrote before exiting is at
/// most a pipe's capacity, and a process it left behind must not keep hako reading forever.
const DRAIN_AFTER_EXIT: usize = 1 << 20;

/// How much one pipe is read per wake-up, so that the deadline is checked between batches even
/// when a writer never pauses.
const READ_BATCH: usize = 256 << 10;

/// Why one hook failed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The executable could not be started.
    #[error("start")]
    Spawn(#[source] std::io::Error),
    /// Writing the state to its stdin, reading its output or waiting for it failed.
    #[error("wait")]
    Wait(#[source] std::io::Error),
    /// It ran longer than its `timeout`.
    #[error("timed out after {0}s")]
    Timeout(i64),
    /// It exited unsuccessfully.
    #[error("{status}, stdout: {stdout:?}, stderr: {stderr:?}")]
    Failed {
        /// Exit status or signal.
        status: String,
        /// The end of what it printed, trimmed.
        stdout: String,
        /// The end of what it printed on stderr, trimmed.
        stderr: String,
    },
}

/// Runs every hook of one list in order; the first failure stops the list.
pub(crate) fn run_all(kind: &'static str, hooks: &[Hook], state: &str) -> Result<()> {
    for hook in hooks {
        run_one(hook, state).map_err(|source| Error::Hook {
            kind,
            path: hook.path().clone(),
            source,
        })?;
    }
    Ok(())
}

/// Runs every hook of one list, logging failures and carrying on (poststop: the spec says a
/// failing poststop hook is logged as a warning and the remaining hooks still run).
pub(crate) fn run_all_warn(kind: &'static str, hooks: &[Hook], state: &str) -> Vec<Error> {
    hooks
        .iter()
        .filter_map(|hook| {
            run_one(hook, state).err().map(|source| Error::Hook {
                kind,
                path: hook.path().clone(),
                source,
            })
        })
        .collect()
}

/// Whether any of these hook lists has a hook (a list may be absent or empty).
pub(crate) fn any(lists: &[&Option<Vec<Hook>>]) -> bool {
    lists
        .iter()
        .any(|h| h.as_ref().is_some_and(|h| !h.is_empty()))
}

fn pidfd_of(pid: u32) -> Option<OwnedFd> {
    crate::sys::pidfd_open(libc::pid_t::try_from(pid).ok()?).ok()
}

/// Marks every descriptor above stderr close-on-exec. Runs in the forked child before execve,
/// so it makes only async-signal-safe system calls and allocates nothing.
fn cloexec_above_stderr() -> std::io::Result<()> {
    if crate::sys::cloexec_range(3).is_ok() {
        return Ok(());
    }
    // Older kernels: every number the process may hold (EBADF for the free ones is expected).
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct that lives on this stack.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let top = libc::c_int::try_from(lim.rlim_cur.min(1 << 20)).unwrap_or(1 << 20);
    for fd in 3..top {
        // SAFETY: F_SETFD only sets the close-on-exec flag of `fd`, if it is open.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}

fn command(hook: &Hook) -> Command {
    let path: &Path = hook.path();
    let mut cmd = Command::new(path);
    if let Some(args) = hook.args() {
        if let Some((arg0, rest)) = args.split_first() {
            cmd.arg0(arg0).args(rest);
        }
    }
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: the closure runs between fork and execve and only calls close_range(2),
    // getrlimit(2) and fcntl(2), which are async-signal-safe; it allocates nothing.
    unsafe { cmd.pre_exec(cloexec_above_stderr) };
    cmd
}

fn run_one(hook: &Hook, state: &str) -> std::result::Result<(), HookError> {
    let mut child = command(hook).spawn().map_err(HookError::Spawn)?;
    // The spec's timeout is in seconds; `check_hooks` refused anything below 1 at create.
    let deadline = hook
        .timeout()
        .map(|t| Instant::now() + Duration::from_secs(t.max(1).unsigned_abs()));
    let served = HookIo::new(&mut child, state.as_bytes())
        .and_then(|io| io.serve(pidfd_of(child.id()).as_ref(), deadline));
    let output = match served {
        Ok(output) => output,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(match e {
                Served::TimedOut => HookError::Timeout(hook.timeout().unwrap_or_default()),
                Served::Io(e) => HookError::Wait(e),
            });
        }
    };
    let status = child.wait().map_err(HookError::Wait)?;
    if status.success() {
        return Ok(());
    }
    let status = match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (_, Some(s)) => format!("killed by signal {s}"),
        _ => "failed".to_string(),
    };
    Err(HookError::Failed {
        status,
        stdout: output.stdout.text(),
        stderr: output.stderr.text(),
    })
}

/// The end of one output stream: the last [`KEPT_OUTPUT`] bytes and a count of the rest.
#[derive(Debug, Default)]
struct Tail {
    kept: Vec<u8>,
    cut: u64,
}

impl Tail {
    fn push(&mut self, bytes: &[u8]) {
        self.kept.extend_from_slice(bytes);
        // Trimmed in batches, so that keeping the tail costs no more than copying it.
        if self.kept.len() > 2 * KEPT_OUTPUT {
            self.trim();
        }
    }

    fn trim(&mut self) {
        let excess = self.kept.len().saturating_sub(KEPT_OUTPUT);
        self.kept.drain(..excess);
        self.cut += excess as u64;
    }

    fn text(mut self) -> String {
        self.trim();
        let text = String::from_utf8_lossy(&self.kept);
        let text = text.trim();
        if self.cut == 0 {
            text.to_string()
        } else {
            format!("[{} bytes cut] {text}", self.cut)
        }
    }
}

/// What the hook printed.
struct Output {
    stdout: Tail,
    stderr: Tail,
}

/// Why serving the hook's pipes stopped early.
enum Served {
    TimedOut,
    Io(std::io::Error),
}

impl From<std::io::Error> for Served {
    fn from(e: std::io::Error) -> Self {
        Served::Io(e)
    }
}

/// A read end that is non-blocking, and what came out of it.
struct Reader<R> {
    pipe: Option<R>,
    tail: Tail,
}

impl<R: Read + AsFd> Reader<R> {
    fn new(pipe: Option<R>) -> std::io::Result<Self> {
        if let Some(p) = &pipe {
            set_nonblocking(p.as_fd())?;
        }
        Ok(Self {
            pipe,
            tail: Tail::default(),
        })
    }

    /// Reads what is there now, up to `budget` bytes; closes the pipe at end of file.
    fn read_available(&mut self, mut budget: usize) -> std::io::Result<()> {
        let mut buf = [0u8; 16 * 1024];
        while budget > 0 {
            let Some(pipe) = self.pipe.as_mut() else {
                return Ok(());
            };
            let want = buf.len().min(budget);
            match pipe.read(&mut buf[..want]) {
                Ok(0) => self.pipe = None,
                Ok(n) => {
                    self.tail.push(&buf[..n]);
                    budget -= n;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The three pipes of one running hook.
struct HookIo<'a> {
    stdin: Option<ChildStdin>,
    input: &'a [u8],
    stdout: Reader<ChildStdout>,
    stderr: Reader<ChildStderr>,
}

fn set_nonblocking(fd: BorrowedFd<'_>) -> std::io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?;
    fcntl(
        fd.as_raw_fd(),
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
    )?;
    Ok(())
}

impl<'a> HookIo<'a> {
    fn new(child: &mut Child, input: &'a [u8]) -> std::result::Result<Self, Served> {
        let stdin = child.stdin.take();
        if let Some(p) = &stdin {
            set_nonblocking(p.as_fd())?;
        }
        Ok(Self {
            stdin,
            input,
            stdout: Reader::new(child.stdout.take())?,
            stderr: Reader::new(child.stderr.take())?,
        })
    }

    /// Writes what the stdin pipe takes now; closes it when all is written or the hook closed
    /// its end (EPIPE: a hook need not read its stdin).
    fn write_available(&mut self) -> std::io::Result<()> {
        while let Some(stdin) = self.stdin.as_mut() {
            if self.input.is_empty() {
                self.stdin = None;
                break;
            }
            match stdin.write(self.input) {
                Ok(n) => self.input = &self.input[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => self.stdin = None,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Serves the pipes until the hook exits (its pidfd turns readable) or, without a pidfd,
    /// until its stdout and stderr are closed; then collects what is left in them.
    fn serve(
        mut self,
        pidfd: Option<&OwnedFd>,
        deadline: Option<Instant>,
    ) -> std::result::Result<Output, Served> {
        self.write_available()?;
        loop {
            if pidfd.is_none() && self.stdout.pipe.is_none() && self.stderr.pipe.is_none() {
                break;
            }
            // The pidfd, when there is one, comes first: its `revents` say the hook exited.
            let watched: [(Option<BorrowedFd<'_>>, PollFlags); 4] = [
                (pidfd.map(AsFd::as_fd), PollFlags::POLLIN),
                (self.stdin.as_ref().map(AsFd::as_fd), PollFlags::POLLOUT),
                (
                    self.stdout.pipe.as_ref().map(AsFd::as_fd),
                    PollFlags::POLLIN,
                ),
                (
                    self.stderr.pipe.as_ref().map(AsFd::as_fd),
                    PollFlags::POLLIN,
                ),
            ];
            let mut fds: Vec<PollFd<'_>> = watched
                .into_iter()
                .filter_map(|(fd, events)| fd.map(|fd| PollFd::new(fd, events)))
                .collect();
            if !crate::sys::poll_until(&mut fds, deadline).map_err(std::io::Error::from)? {
                return Err(Served::TimedOut);
            }
            let exited = pidfd.is_some() && fds[0].revents().is_some_and(|r| !r.is_empty());
            drop(fds);
            self.write_available()?;
            self.stdout.read_available(READ_BATCH)?;
            self.stderr.read_available(READ_BATCH)?;
            if exited {
                break;
            }
        }
        // Whatever the hook wrote before it exited is in the pipes now.
        self.stdin = None;
        self.stdout.read_available(DRAIN_AFTER_EXIT)?;
        self.stderr.read_available(DRAIN_AFTER_EXIT)?;
        Ok(Output {
            stdout: self.stdout.tail,
            stderr: self.stderr.tail,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(script: &str, timeout: Option<i64>) -> Hook {
        serde_json::from_value(serde_json::json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", script],
            "timeout": timeout,
        }))
        .expect("hook")
    }

    /// Runs in a helper thread with a bound, so that a deadlock fails the test instead of
    /// hanging it.
    fn run_bounded(h: Hook, state: String) -> std::result::Result<(), HookError> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(run_one(&h, &state));
        });
        rx.recv_timeout(Duration::from_secs(30))
            .expect("the hook runner hung")
    }

    /// More than a pipe's 64 KiB on stderr and stdout: the old runner read stdout to its end
    /// first, while the hook blocked writing stderr, until the timeout killed it.
    #[test]
    fn large_output_on_both_streams_does_not_deadlock() {
        let script = "head -c 300000 /dev/zero | tr '\\0' e >&2; \
                      head -c 300000 /dev/zero | tr '\\0' o; echo last-words >&2; exit 3";
        let e = run_bounded(hook(script, Some(20)), "{}".into()).expect_err("exit 3");
        let HookError::Failed {
            status,
            stdout,
            stderr,
        } = e
        else {
            panic!("{e:?}");
        };
        assert_eq!(status, "exit status 3");
        assert!(stderr.ends_with("eeeelast-words"), "{}", &stderr[..80]);
        assert!(
            stderr.starts_with("[295915 bytes cut] e"),
            "{}",
            &stderr[..80]
        );
        assert!(
            stdout.starts_with("[295904 bytes cut] o"),
            "{}",
            &stdout[..80]
        );
        assert!(stdout.len() < KEPT_OUTPUT + 32);
    }

    /// A state larger than a pipe, to a hook that never reads it: hako must not block writing.
    #[test]
    fn hook_that_ignores_a_large_state_does_not_block() {
        let state = format!("{{\"annotations\":\"{}\"}}", "a".repeat(1 << 20));
        run_bounded(hook("exit 0", None), state).expect("runs");
        // And one that reads it all gets all of it.
        let e = run_bounded(
            hook("echo $(wc -c) >&2; exit 1", Some(20)),
            "x".repeat(300_000),
        )
        .expect_err("exit 1");
        assert!(
            matches!(e, HookError::Failed { ref stderr, .. } if stderr == "300000"),
            "{e:?}"
        );
    }

    #[test]
    fn timeout_kills_the_hook() {
        let started = Instant::now();
        let e = run_bounded(hook("exec sleep 60", Some(1)), "{}".into()).expect_err("timeout");
        assert!(matches!(e, HookError::Timeout(1)), "{e:?}");
        assert!(started.elapsed() < Duration::from_secs(20));
    }

    /// A descriptor open in the runtime without close-on-exec (as a caller's would be) is not
    /// open in the hook.
    #[test]
    fn hook_inherits_no_descriptor_above_stderr() {
        let file = tempfile::tempfile().expect("tempfile");
        // dup(2) gives a descriptor without close-on-exec.
        let raw = nix::unistd::dup(file.as_raw_fd()).expect("dup");
        // SAFETY: `raw` is a fresh descriptor owned only here.
        let leaked = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
        let script =
            format!("if [ -e /proc/self/fd/{raw} ]; then echo fd {raw} is open >&2; exit 1; fi");
        let result = run_bounded(hook(&script, Some(20)), "{}".into());
        drop(leaked);
        result.expect("no inherited descriptor");
    }

    #[test]
    fn tail_keeps_the_end() {
        let mut t = Tail::default();
        for _ in 0..10 {
            t.push(&[b'x'; 1000]);
        }
        t.push(b"end");
        assert_eq!(
            t.text(),
            format!("[5907 bytes cut] {}end", "x".repeat(KEPT_OUTPUT - 3))
        );
        let mut t = Tail::default();
        t.push(b" short \n");
        assert_eq!(t.text(), "short");
    }
}
