//! A handle on a process that cannot be fooled by pid reuse.
//!
//! A pid stored in `state.json` may belong to another process by the time a later command runs
//! (runc #4047: `kill --all` hit the wrong processes). hako stores the pid with the process's start
//! time (field 22 of `/proc/<pid>/stat`), opens a pidfd (pidfd_open(2)), and only then checks the
//! start time again: from that moment the pidfd refers to exactly that process, so signals sent
//! through it (pidfd_send_signal(2)) can never reach a stranger.
//!
//! Where pidfd_open(2) is refused (`ENOSYS` before Linux 5.3, or a seccomp profile on the caller,
//! which `EPERM`s or `ENOSYS`es what it does not know), a process is identified by pid and start
//! time alone, as runc does: a container must not read `stopped` because its caller is filtered.
//! The start time is checked again right before each signal, which narrows pid reuse to the
//! instant between that check and kill(2).
//!
//! Since Linux 6.9 a pidfd lives on pidfs, whose inode number names one process for the whole
//! boot (a 64-bit counter that is never reused, unlike a pid or a start time in clock ticks).
//! `create` records it next to the start time ([`Identity`]); a later command then knows the
//! process by fstat(2) of a fresh pidfd, and whether it exited (a zombie) by poll(2) on it,
//! without reading `/proc/<pid>/stat` at all: five cheap system calls instead of a path walk and
//! the kernel formatting fifty-two fields (`do_task_stat`), which is what `list` paid per container.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::error::{Error, Result};

/// What `/proc/<pid>/stat` says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// Process state letter (`R`, `S`, `Z`, ...).
    pub(crate) state: char,
    /// Start time in clock ticks since boot.
    pub(crate) start_time: u64,
}

impl ProcStat {
    /// Whether this is the live (not zombie) process that started at `start_time`.
    fn is_live(&self, start_time: u64) -> bool {
        self.start_time == start_time && self.state != 'Z' && self.state != 'X'
    }
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
    let text = crate::state::read_small(format!("/proc/{pid}/stat").as_ref()).ok()?;
    parse_stat(std::str::from_utf8(&text).ok()?)
}

/// The start time of the live process `pid`: what, with the pid, names it in `state.json`. An
/// error when it cannot be read (fail closed: a start time of 0 would make `status` read
/// `stopped` for a live container).
pub(crate) fn start_time(pid: i32) -> Result<u64> {
    let path = std::path::PathBuf::from(format!("/proc/{pid}/stat"));
    let text = crate::state::read_small(&path).map_err(Error::io("read", &path))?;
    let text = String::from_utf8_lossy(&text);
    parse_stat(&text).map(|s| s.start_time).ok_or_else(|| {
        Error::io("parse", &path)(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "no start time in /proc/PID/stat",
        ))
    })
}

/// pidfd_open(2).
fn open_pidfd(pid: i32) -> nix::Result<OwnedFd> {
    crate::sys::pidfd_open(pid)
}

/// What names a process in `state.json`: its pid's start time, and its pidfs inode number where
/// the kernel has pidfs (0 otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Identity {
    /// `/proc/<pid>/stat` field 22.
    pub(crate) start_time: u64,
    /// The pidfd's inode number on pidfs (Linux 6.9), 0 without pidfs.
    pub(crate) ino: u64,
}

/// The identity of the live process `pid`. An error when its start time cannot be read (fail
/// closed: a start time of 0 would make `status` read `stopped` for a live container).
pub(crate) fn identify(pid: i32) -> Result<Identity> {
    let fd = open_pidfd(pid).ok();
    let start_time = start_time(pid)?;
    // The start time was read while the pidfd was open; if the pidfd's process has not exited
    // since, the pid was still its own when the start time was read: both name one process.
    let ino = match &fd {
        Some(fd) if !has_exited(fd) => pidfs_ino(fd).unwrap_or(0),
        _ => 0,
    };
    Ok(Identity { start_time, ino })
}

/// `PID_FS_MAGIC` (include/uapi/linux/magic.h).
const PID_FS_MAGIC: i64 = 0x5049_4446;

/// The inode number of a pidfd on pidfs; `None` before Linux 6.9, where every pidfd is the same
/// anonymous inode and its number names nothing.
fn pidfs_ino(fd: &OwnedFd) -> Option<u64> {
    // Every pidfd of a kernel lives on the same file system, so it is asked once per command
    // (fstatfs(2)); `list` then needs only the fstat(2) per container.
    static ON_PIDFS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let on_pidfs = match ON_PIDFS.get() {
        Some(known) => *known,
        None => {
            let magic = crate::sys::fs_magic(fd.as_fd()).ok()?;
            *ON_PIDFS.get_or_init(|| magic == PID_FS_MAGIC)
        }
    };
    if !on_pidfs {
        return None;
    }
    crate::sys::ino(fd.as_fd()).ok()
}

/// Whether the process a pidfd refers to has exited (it may be a zombie nobody reaped yet): a
/// pidfd polls readable then (pidfd_open(2)).
fn has_exited(fd: &OwnedFd) -> bool {
    // A poll that fails says nothing: the caller falls back on /proc.
    crate::sys::readable_now(fd.as_fd()).unwrap_or(false)
}

/// Waits until `fd` is readable (for a pidfd: the process exited), at most `timeout`; whether
/// it became readable.
fn poll_readable(fd: &OwnedFd, timeout: Duration) -> Result<bool> {
    crate::sys::poll_one_until(
        fd.as_fd(),
        nix::poll::PollFlags::POLLIN,
        Instant::now() + timeout,
    )
    .map_err(Error::sys("poll(pidfd)"))
}

/// A live process, held by pidfd where the kernel and the caller's seccomp filter allow it,
/// else by pid and start time.
#[derive(Debug)]
pub(crate) struct Process {
    fd: Option<OwnedFd>,
    pid: i32,
    start_time: u64,
}

impl Process {
    /// Opens `pid` if it is still the process `id` names and is not a zombie.
    pub(crate) fn open(pid: i32, id: Identity) -> Option<Self> {
        if pid <= 0 {
            return None;
        }
        let start_time = id.start_time;
        let fd = match open_pidfd(pid) {
            Ok(fd) => Some(fd),
            Err(nix::Error::ESRCH) => return None,
            // ENOSYS, EPERM, EACCES: no pidfds for us here; fall back (see the module doc).
            Err(_) => None,
        };
        if let Some(known) = fd.as_ref().filter(|_| id.ino != 0) {
            // pidfs (module doc): the inode names the process; a reused pid has another one.
            if let Some(ino) = pidfs_ino(known) {
                if ino != id.ino || has_exited(known) {
                    return None;
                }
                return Some(Process {
                    fd,
                    pid,
                    start_time,
                });
            }
        }
        stat(pid)
            .filter(|s| s.is_live(start_time))
            .map(|_| Process {
                fd,
                pid,
                start_time,
            })
    }

    /// The pid (in hako's pid namespace).
    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    /// Sends `signal` through the pidfd (or, without one, kill(2) after checking the start
    /// time again). A process that is gone already is not an error.
    pub(crate) fn signal(&self, signal: i32) -> Result<()> {
        if let Some(fd) = &self.fd {
            // SAFETY: the pidfd is valid for our lifetime; a null siginfo means "as kill(2)
            // would".
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.as_raw_fd(),
                    signal,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                )
            };
            return signalled(rc >= 0, "pidfd_send_signal");
        }
        if !stat(self.pid).is_some_and(|s| s.is_live(self.start_time)) {
            return Ok(());
        }
        // SAFETY: kill(2) with a pid we just checked is the process we mean, and a signal number.
        let rc = unsafe { libc::kill(self.pid, signal) };
        signalled(rc == 0, "kill")
    }

    /// Waits until the process has exited, at most `timeout`; whether it did. Works for
    /// processes that are not our children.
    pub(crate) fn wait_exit(&self, timeout: Duration) -> Result<bool> {
        if let Some(fd) = &self.fd {
            return poll_readable(fd, timeout);
        }
        // Without a pidfd nothing can be waited on: look again every few milliseconds.
        let deadline = Instant::now() + timeout;
        loop {
            if !stat(self.pid).is_some_and(|s| s.is_live(self.start_time)) {
                return Ok(true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            std::thread::sleep(left.min(Duration::from_millis(5)));
        }
    }
}

/// The outcome of a signalling call that returned `ok`: a process that is gone already (ESRCH)
/// is not an error.
fn signalled(ok: bool, syscall: &'static str) -> Result<()> {
    if ok {
        return Ok(());
    }
    match nix::Error::last() {
        nix::Error::ESRCH => Ok(()),
        source => Err(Error::Sys { syscall, source }),
    }
}

/// How long a SIGKILLed child may take to be reaped before hako gives up on it.
pub(crate) const KILL_BOUND: Duration = Duration::from_secs(10);

/// Reaps our child `pid` once it has exited, waiting until `deadline` at most; `None` when it
/// is still alive then. The one wait on a child of hako's: it never blocks past the deadline.
pub(crate) fn wait_child_until(pid: Pid, deadline: Instant) -> Result<Option<WaitStatus>> {
    let pidfd = open_pidfd(pid.as_raw()).ok();
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {}
            Err(nix::Error::EINTR) => continue,
            Ok(status) => return Ok(Some(status)),
            Err(e) => return Err(Error::sys("waitpid")(e)),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        match &pidfd {
            Some(fd) => {
                poll_readable(fd, left)?;
            }
            // Without pidfds (see `Process::open`), a short pause between two looks.
            None => std::thread::sleep(left.min(Duration::from_millis(5))),
        }
    }
}

/// Kills our child `pid` and reaps it within [`KILL_BOUND`]. `thaw` is a cgroup of hako's own
/// making that holds the child (a failed `create`): it is thawed and emptied too, because a
/// frozen task never acts on its SIGKILL (runc #3134). A container's cgroup the user paused is
/// not hako's to thaw (`exec`): the SIGKILL stays pending until it is resumed. On expiry hako
/// gives up, leaves the child to its fate (it dies when thawed; its new parent reaps it) and
/// reports [`Error::Timeout`]: a child stuck uninterruptibly must not hang the caller.
pub(crate) fn kill_and_reap(pid: Pid, thaw: Option<&hako_cgroups::Cgroup>) -> Result<WaitStatus> {
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    if let Some(cg) = thaw {
        // `signal_all` leaves the cgroup thawed.
        let _ = cg.signal_all(libc::SIGKILL);
    }
    wait_child_until(pid, Instant::now() + KILL_BOUND)?.ok_or(Error::Timeout {
        what: "a killed child of hako's to exit",
        seconds: KILL_BOUND.as_secs(),
    })
}

/// Reaps our child `pid`, waiting at most `bound` for it to exit by itself (it closed its end of
/// the sync socket, so it is on its way out); after that it is killed and reaped as
/// [`kill_and_reap`] does. Either way nothing waits forever on a stuck child.
pub(crate) fn reap_within(pid: Pid, bound: Duration) -> Result<WaitStatus> {
    match wait_child_until(pid, Instant::now() + bound)? {
        Some(status) => Ok(status),
        None => kill_and_reap(pid, None),
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
        let id = |start_time, ino| Identity { start_time, ino };
        assert!(Process::open(me, id(st.start_time, 0)).is_some());
        assert!(Process::open(me, id(st.start_time + 1, 0)).is_none());
        let known = identify(me).expect("identify");
        assert_eq!(known.start_time, st.start_time);
        assert!(Process::open(me, known).is_some());
        if known.ino != 0 {
            // pidfs: the inode decides, whatever the start time says.
            assert!(Process::open(me, id(st.start_time + 1, known.ino)).is_some());
            assert!(Process::open(me, id(st.start_time, known.ino + 1)).is_none());
        }
    }

    /// A zombie is not live: by pidfs inode and poll, as by the `Z` of /proc/<pid>/stat.
    #[test]
    fn zombie_is_not_live() {
        let mut child = std::process::Command::new("sleep")
            .arg("1000")
            .spawn()
            .expect("spawn");
        let pid = child.id() as i32;
        let known = identify(pid).expect("identify a live child");
        assert!(Process::open(pid, known).is_some());
        // Kill it and wait for the exit without reaping: the child stays a zombie.
        let fd = open_pidfd(pid).expect("pidfd");
        child.kill().expect("kill");
        assert!(poll_readable(&fd, Duration::from_secs(10)).expect("poll"));
        let open_with = |ino| Process::open(pid, Identity { ino, ..known }).is_some();
        assert!(!open_with(known.ino), "a zombie read live");
        assert!(!open_with(0), "a zombie read live through /proc");
        child.wait().expect("reap");
    }

    /// Review of issue 12, finding 1: a child that cannot act on its SIGKILL (frozen in a v1
    /// freezer cgroup that is not hako's to thaw, as in an `exec` into a container paused
    /// meanwhile) makes `kill_and_reap` give up after its bound and say so. Before, the reap was
    /// a plain waitpid(2) and this test hung. Skipped where the v1 freezer is not mounted (a
    /// host limit: hako's test machine has it).
    #[test]
    fn kill_and_reap_gives_up_on_a_frozen_child() {
        let root = std::path::Path::new("/sys/fs/cgroup/freezer");
        if !root.join("freezer.state").exists() && !root.join("cgroup.procs").exists() {
            eprintln!("no v1 freezer hierarchy: skipped");
            return;
        }
        let dir = root.join(format!("hako-test-reap-{}", std::process::id()));
        std::fs::create_dir(&dir).expect("mkdir freezer cgroup");
        let mut child = std::process::Command::new("sleep")
            .arg("1000")
            .spawn()
            .expect("spawn");
        let pid = Pid::from_raw(child.id() as i32);
        std::fs::write(dir.join("cgroup.procs"), child.id().to_string()).expect("join");
        std::fs::write(dir.join("freezer.state"), "FROZEN").expect("freeze");
        let outcome = kill_and_reap(pid, None);
        std::fs::write(dir.join("freezer.state"), "THAWED").expect("thaw");
        let _ = child.wait();
        std::fs::remove_dir(&dir).expect("rmdir freezer cgroup");
        assert!(matches!(outcome, Err(Error::Timeout { .. })), "{outcome:?}");
    }
}
