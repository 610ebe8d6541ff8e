//! The state store: one directory per container under `--root` (default `/run/hako`).
//!
//! ```text
//! /run/hako/<id>/          mode 0711, created with mkdir(2): its existence claims the id
//!     state.json           written atomically (temp file + rename(2))
//!     exec.fifo            present while the container is `created` (see `fifo.rs`)
//!     start.status         only with startContainer hooks: their failure, for `start`
//!     config.json          the config `create` validated, as it read it (for `exec`)
//! ```
//! Every command that reads or changes a container holds an exclusive `flock(2)` on the directory,
//! so concurrent commands on one id are serialised. The status is never stored: it is derived from
//! the init's liveness (pid plus start time), the exec fifo and the freezer, as runc derives it, so
//! a state file can never claim a status that is no longer true.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::pidfd;

/// Default `--root`, as runc's `/run/runc`.
pub const DEFAULT_ROOT: &str = "/run/hako";
const STATE_FILE: &str = "state.json";
/// Name of the exec fifo inside the container's directory.
pub(crate) const FIFO_FILE: &str = "exec.fifo";
/// Name of the FIFO on which the init reports a failing startContainer hook to `start`.
pub(crate) const START_STATUS_FILE: &str = "start.status";
/// The mounts a container without a mount namespace of its own made in the caller's (see the
/// namespaces crate's `MountRecord`), for `delete` to take down.
pub(crate) const MOUNTS_FILE: &str = "mounts";
/// The `config.json` that `create` validated, byte for byte, for `exec` (seccomp, capabilities,
/// LSM labels, the process to start from): never the bundle's, which may have been edited or
/// removed since.
const CONFIG_FILE: &str = "config.json";
/// Where the container's cgroup directories are (`hako_cgroups::Located`), recorded by `create`
/// once it made them, so that the verbs acting on the cgroup open it without reading and
/// parsing mountinfo. A file of its own, not a field of `state.json`: `list` and `state`, which
/// read every container's state, need none of it (as a field it made `list` a quarter slower).
const CGROUP_FILE: &str = "cgroup.json";

/// The runtime-spec status of a container (runtime.md, "State").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// `create` is still at work.
    Creating,
    /// The init waits on the exec fifo.
    Created,
    /// The user process runs.
    Running,
    /// Frozen by `pause`.
    Paused,
    /// The init has exited.
    Stopped,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What hako keeps about a container between commands.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Persisted {
    /// Container id.
    pub id: String,
    /// The init's pid in hako's pid namespace; 0 until the clone happened.
    pub pid: i32,
    /// The init's start time (`/proc/<pid>/stat` field 22), to tell it from a recycled pid.
    pub pid_start_time: u64,
    /// The init's pidfs inode number (`pidfd::Identity`): with it, a command knows the init
    /// without reading `/proc/<pid>/stat`. 0 where the kernel has no pidfs (before Linux 6.9).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pid_ino: u64,
    /// Absolute bundle path.
    pub bundle: PathBuf,
    /// Absolute rootfs path.
    pub rootfs: PathBuf,
    /// RFC 3339 creation time, UTC with nanoseconds, as runc prints it.
    pub created: String,
    /// The config's annotations.
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// Where the container's cgroup is.
    pub cgroup: Option<hako_cgroups::CgroupPath>,
    /// The file that says whether the cgroup is frozen (`Cgroup::freezer_file`), recorded once
    /// the cgroup exists: `status` reads it directly, without opening the cgroup.
    #[serde(default)]
    pub freezer: Option<PathBuf>,
    /// True once `create` finished; a `creating` state left by a killed `create` has it false.
    pub created_done: bool,
    /// Whether the config has a `process` (the spec lets `create` go without one; `start` fails).
    #[serde(default = "yes")]
    pub has_process: bool,
    /// The config's hooks, kept for `start` (poststart) and `delete` (poststop).
    #[serde(default)]
    pub hooks: Option<oci_spec::runtime::Hooks>,
    /// The user that ran `create` (runc's `owner` field).
    #[serde(default)]
    pub owner: String,
    /// The resctrl groups `create` made for `linux.intelRdt`, removed by `delete`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resctrl_dirs: Vec<PathBuf>,
}

fn yes() -> bool {
    true
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// runc's `state` JSON (and each element of `list --format json`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateView {
    /// Spec version hako implements.
    pub oci_version: &'static str,
    /// Container id.
    pub id: String,
    /// Init pid, 0 when stopped.
    pub pid: i32,
    /// Derived status.
    pub status: Status,
    /// Bundle path.
    pub bundle: PathBuf,
    /// Rootfs path.
    pub rootfs: PathBuf,
    /// Creation time.
    pub created: String,
    /// Annotations, omitted when empty.
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
    /// Owner.
    pub owner: String,
}

/// The OCI runtime-spec version hako implements.
pub const OCI_VERSION: &str = "1.2.0";

/// The `--root` directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// A container as read from its directory: what is kept about it, and the status derived from it.
#[derive(Debug)]
pub struct Container {
    dir: PathBuf,
    /// The state as read (or being written by `create`).
    pub state: Persisted,
    /// Whether this process holds the directory's lock (read through [`Store::load`]).
    held: bool,
}

/// A container directory held under an exclusive lock for the lifetime of this value.
#[derive(Debug)]
pub struct Locked {
    container: Container,
    lock: Flock<fs::File>,
}

impl std::ops::Deref for Locked {
    type Target = Container;
    fn deref(&self) -> &Container {
        &self.container
    }
}

impl std::ops::DerefMut for Locked {
    fn deref_mut(&mut self) -> &mut Container {
        &mut self.container
    }
}

/// Validates a container id as runc does.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidId { id: id.to_string() })
    }
}

/// How long a command waits for another one that holds a container's lock. `create` holds it
/// for as long as it runs, hooks included; a blocking flock(2) would wait for all of that
/// (forever with a hook without a timeout, and a deadlock for a hook that calls `hako delete`
/// on its own container).
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens the container directory and takes an exclusive flock(2) on it, waiting at most
/// [`LOCK_TIMEOUT`] for any other hako command that holds it ([`Error::Busy`] after that).
fn lock_dir(dir: &Path, id: &str) -> Result<Flock<fs::File>> {
    let mut f = crate::sys::open_file(None, dir, libc::O_RDONLY | libc::O_DIRECTORY, 0)
        .map_err(Error::io("open state dir", dir))?;
    let deadline = Instant::now() + LOCK_TIMEOUT;
    let mut pause = Duration::from_millis(1);
    loop {
        match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(lock),
            Err((back, nix::Error::EINTR)) => f = back,
            // flock(2) has no timeout: look again, less and less often, until the deadline.
            Err((back, nix::Error::EWOULDBLOCK)) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Error::Busy {
                        id: id.to_string(),
                        seconds: LOCK_TIMEOUT.as_secs(),
                    });
                }
                std::thread::sleep(pause.min(left));
                pause = (pause * 2).min(Duration::from_millis(50));
                f = back;
            }
            Err((_, e)) => return Err(Error::sys("flock(state dir)")(e)),
        }
    }
}

impl Store {
    /// The store at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Store { root: root.into() }
    }

    /// The `--root` path.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Claims `id`: creates its directory (failing if it exists) and locks it.
    pub(crate) fn claim(&self, state: Persisted) -> Result<Locked> {
        validate_id(&state.id)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .map_err(Error::io("create root dir", &self.root))?;
        let dir = self.dir(&state.id);
        match fs::DirBuilder::new().mode(0o711).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::Exists { id: state.id })
            }
            Err(e) => return Err(Error::io("create state dir", &dir)(e)),
        }
        let lock = match lock_dir(&dir, &state.id) {
            Ok(l) => l,
            Err(e) => {
                let _ = fs::remove_dir(&dir);
                return Err(e);
            }
        };
        let locked = Locked {
            container: Container {
                dir,
                state,
                held: true,
            },
            lock,
        };
        locked.save()?;
        Ok(locked)
    }

    /// Opens and locks an existing container.
    pub fn load(&self, id: &str) -> Result<Locked> {
        validate_id(id)?;
        let dir = self.dir(id);
        let lock = match lock_dir(&dir, id) {
            Ok(l) => l,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotExist { id: id.to_string() })
            }
            Err(e) => return Err(e),
        };
        let mut container = read_container(dir, id, None)?;
        container.held = true;
        Ok(Locked { container, lock })
    }

    /// Reads a container without taking its lock: for `state` and `list`, which only look.
    /// `create` holds the lock for as long as it runs (hooks included, which may call `state`
    /// themselves), and the spec wants `state` to answer `creating` meanwhile; `state.json` is
    /// only ever replaced by rename(2), so an unlocked reader sees a whole file.
    pub fn read(&self, id: &str) -> Result<Container> {
        validate_id(id)?;
        read_container(self.dir(id), id, None)
    }

    /// Calls `f` with every container's view in id order, as [`Container::view`] derives it
    /// (an `Err` for one that could not be read, with its id); see `scan.rs`.
    pub fn each_view<E>(
        &self,
        f: impl FnMut(String, Result<StateView>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E>
    where
        E: From<Error>,
    {
        crate::scan::each_view(self, self.ids()?, f)
    }

    pub(crate) fn dir_of(&self, id: &str) -> PathBuf {
        self.dir(id)
    }

    /// Every container id in the store, sorted.
    pub fn ids(&self) -> Result<Vec<String>> {
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("list", &self.root)(e)),
        };
        let mut ids: Vec<String> = entries
            .flatten()
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }
}

/// Reads a small file whole: open, read until end of file, close. Unlike `fs::read` it asks for
/// no size first (a statx(2) per file, and for `/proc` and cgroup files, whose size reads 0, a
/// string of reads growing from 32 bytes): what `list` does for every container.
pub(crate) fn read_small(path: &Path) -> std::io::Result<Vec<u8>> {
    read_small_at(None, path, Until::EndOfFile)
}

/// When [`read_small_at`] stops reading.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Until {
    /// At the read that returns 0: any file (a `/proc` file may fill less than the buffer
    /// before its end).
    EndOfFile,
    /// At the first read that fills less than the buffer: a regular file, which read(2) on
    /// Linux cuts short only at its end (or for a signal, which hako blocks or has no
    /// handler for while it reads state). One read(2) fewer per container in `list`.
    ShortRead,
}

/// [`read_small`] of `path` relative to the directory `dir`.
fn read_small_at(
    dir: Option<BorrowedFd<'_>>,
    path: &Path,
    until: Until,
) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut file = crate::sys::open_read(dir, path)?;
    // Not `read_to_end`: on a `File` it asks fstat(2) and lseek(2) for a size hint first. On the
    // stack first: a 4 KiB heap buffer per file is a fresh mapping each time from musl's
    // mallocng (an mmap(2), four zeroed pages, a munmap(2)), per container in `list`.
    let mut first = [0u8; 4096];
    let mut len = 0;
    while len < first.len() {
        match file.read(&mut first[len..]) {
            Ok(0) => return Ok(first[..len].to_vec()),
            Ok(n) => {
                len += n;
                if until == Until::ShortRead && len < first.len() {
                    return Ok(first[..len].to_vec());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    // Larger: on the heap, doubling.
    let mut buf = first.to_vec();
    loop {
        if len == buf.len() {
            buf.resize(len * 2, 0);
        }
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    Ok(buf)
}

/// Reads `dir/state.json`; with `root`, the store's directory open, as `<id>/state.json` below
/// it (a walk of two components instead of the whole path: `list` reads one per container).
pub(crate) fn read_container(
    dir: PathBuf,
    id: &str,
    root: Option<BorrowedFd<'_>>,
) -> Result<Container> {
    let path = dir.join(STATE_FILE);
    let read = match root {
        // The state is a regular file that hako writes whole (a rename over the old one).
        Some(fd) => read_small_at(Some(fd), &Path::new(id).join(STATE_FILE), Until::ShortRead),
        None => read_small_at(None, &path, Until::ShortRead),
    };
    let bytes = match read {
        Ok(b) => b,
        // The directory vanished (a concurrent delete), or create was killed before its first
        // write: both mean "no such container" to the caller, but the latter leaves a directory
        // that delete --force must still remove.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if dir.exists() {
                return Ok(Container {
                    dir,
                    state: Persisted::orphan(id),
                    held: false,
                });
            }
            return Err(Error::NotExist { id: id.to_string() });
        }
        Err(e) => return Err(Error::io("read", &path)(e)),
    };
    let state =
        serde_json::from_slice(&bytes).map_err(|source| Error::ParseState { path, source })?;
    Ok(Container {
        dir,
        state,
        held: false,
    })
}

/// How [`Container::status`] looks at the files it derives the status from: by their paths
/// ([`Direct`]), or below directories opened once for many containers (`scan::Scan`).
pub(crate) trait Lookup {
    /// Whether the cgroup whose freezer file is `file` is frozen.
    fn is_frozen(&mut self, file: &Path) -> Result<bool>;
    /// Whether the container's exec fifo exists (it is `created`).
    fn fifo_exists(&self, c: &Container) -> bool;
}

/// Every file looked up by its path.
struct Direct;

impl Lookup for Direct {
    fn is_frozen(&mut self, file: &Path) -> Result<bool> {
        Ok(hako_cgroups::is_frozen_at(file)?)
    }

    fn fifo_exists(&self, c: &Container) -> bool {
        c.fifo_path().exists()
    }
}

/// Whether another process holds the container directory's lock right now (a probe that never
/// waits: flock(2) `LOCK_SH | LOCK_NB`).
fn lock_is_held(dir: &Path) -> bool {
    let Ok(f) = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
    else {
        return false;
    };
    matches!(
        Flock::lock(f, FlockArg::LockSharedNonblock),
        Err((_, nix::Error::EWOULDBLOCK))
    )
}

impl Persisted {
    /// What names the init (pid aside).
    pub(crate) fn identity(&self) -> pidfd::Identity {
        pidfd::Identity {
            start_time: self.pid_start_time,
            ino: self.pid_ino,
        }
    }

    /// Records the init: its pid and what tells it from a later process with the same pid.
    pub(crate) fn set_init(&mut self, pid: i32, id: pidfd::Identity) {
        self.pid = pid;
        self.pid_start_time = id.start_time;
        self.pid_ino = id.ino;
    }

    /// The state of a directory whose `create` died before writing anything.
    fn orphan(id: &str) -> Self {
        Persisted {
            id: id.to_string(),
            pid: 0,
            pid_start_time: 0,
            pid_ino: 0,
            bundle: PathBuf::new(),
            rootfs: PathBuf::new(),
            created: String::new(),
            annotations: HashMap::new(),
            cgroup: None,
            freezer: None,
            created_done: false,
            has_process: false,
            hooks: None,
            owner: String::new(),
            resctrl_dirs: Vec::new(),
        }
    }
}

impl Container {
    /// The container's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The config `create` validated. A container made by a hako that did not keep it (an
    /// upgrade under running containers) falls back to its bundle's, with a warning.
    pub(crate) fn config(&self) -> Result<oci_spec::runtime::Spec> {
        if self.dir.join(CONFIG_FILE).exists() {
            return crate::config::load_spec(&self.dir);
        }
        crate::log::line(
            "warning",
            &format!(
                "container {} has no stored config: using its bundle's",
                self.state.id
            ),
        );
        crate::config::load_spec(&self.state.bundle)
    }

    /// Path of the exec fifo.
    pub(crate) fn fifo_path(&self) -> PathBuf {
        self.dir.join(FIFO_FILE)
    }

    /// Path of the start-status FIFO (only with startContainer hooks; see `fifo.rs`).
    pub(crate) fn start_status_path(&self) -> PathBuf {
        self.dir.join(START_STATUS_FILE)
    }

    /// Path of the record of the mounts made outside a mount namespace of the container's own.
    pub(crate) fn mounts_path(&self) -> PathBuf {
        self.dir.join(MOUNTS_FILE)
    }

    /// The init process, if it is still alive (and not a zombie).
    pub(crate) fn init(&self) -> Option<pidfd::Process> {
        pidfd::Process::open(self.state.pid, self.state.identity())
    }

    /// The status, derived from the init, the lock, the freezer and the exec fifo.
    pub fn status(&self) -> Result<Status> {
        self.status_by(&mut Direct)
    }

    /// [`Container::status`] and the init it found alive (`None` when stopped, or when a `create`
    /// at work has not cloned it yet), for a verb that goes on to act on the init: one pidfd,
    /// not a second lookup.
    pub(crate) fn status_and_init(&self) -> Result<(Status, Option<pidfd::Process>)> {
        let init = self.init();
        let alive = init.is_some();
        let status = self.status_given(&mut Direct, &|| alive)?;
        Ok((status, init))
    }

    /// [`Container::status`], the files looked up through `files`.
    pub(crate) fn status_by(&self, files: &mut dyn Lookup) -> Result<Status> {
        self.status_given(files, &|| self.init().is_some())
    }

    /// The status, `init_alive` saying (when asked) whether the init is alive.
    fn status_given(
        &self,
        files: &mut dyn Lookup,
        init_alive: &dyn Fn() -> bool,
    ) -> Result<Status> {
        if !self.state.created_done {
            // `create` is at work for as long as it holds the lock (before the clone there is no
            // init yet); a `create` that was killed holds nothing, and its init (if any) reads
            // end-of-file and exits: what is left is stopped, for `delete --force`. (A caller
            // that holds the lock itself knows that no `create` runs.)
            let creating = !self.held && lock_is_held(&self.dir);
            return Ok(if creating || init_alive() {
                Status::Creating
            } else {
                Status::Stopped
            });
        }
        if !init_alive() {
            return Ok(Status::Stopped);
        }
        // A `created` container can be paused too: runc then reports it `paused` (and `start`
        // refuses it) until it is resumed. One read of the recorded freezer file, no
        // mountinfo; a file that cannot be read is an error, never "not paused".
        let frozen = match &self.state.freezer {
            Some(file) => files.is_frozen(file)?,
            None => false,
        };
        Ok(if frozen {
            Status::Paused
        } else if files.fifo_exists(self) {
            Status::Created
        } else {
            Status::Running
        })
    }

    /// The container's cgroup, if it has one: from the directories `create` recorded, else
    /// found from the path and the host's mounts.
    pub(crate) fn cgroup(&self) -> Result<Option<hako_cgroups::Cgroup>> {
        let Some(path) = &self.state.cgroup else {
            return Ok(None);
        };
        // Absent for a `create` killed before it made the cgroup, or one of an older hako; a
        // record that does not parse (a `create` killed while writing it) is as good as none:
        // either way the mounts say the same, at their price.
        let recorded = read_small_at(None, &self.dir.join(CGROUP_FILE), Until::ShortRead)
            .ok()
            .and_then(|text| serde_json::from_slice::<hako_cgroups::Located>(&text).ok());
        Ok(Some(match recorded {
            Some(at) => hako_cgroups::Cgroup::open_located(path, &at),
            None => hako_cgroups::Cgroup::open(path)?,
        }))
    }

    /// Records where `cgroup`'s directories are, for [`Container::cgroup`].
    pub(crate) fn record_cgroup(&self, cgroup: &hako_cgroups::Cgroup) -> Result<()> {
        let path = self.dir.join(CGROUP_FILE);
        let text = serde_json::to_vec(&cgroup.located()).map_err(|source| Error::Encode {
            what: "cgroup directories",
            source,
        })?;
        crate::sys::open_file(
            None,
            &path,
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
            0o600,
        )
        .and_then(|mut f| f.write_all(&text))
        .map_err(Error::io("write", &path))
    }

    /// The cgroup of a container that is not stopped (`ps`, `update`, `events`, `pause`).
    pub(crate) fn live_cgroup(&self) -> Result<hako_cgroups::Cgroup> {
        let not_running = || Error::NotRunning {
            id: self.state.id.clone(),
        };
        if self.status()? == Status::Stopped {
            return Err(not_running());
        }
        self.cgroup()?.ok_or_else(|| Error::NoCgroup {
            id: self.state.id.clone(),
        })
    }

    /// runc's `state` JSON view.
    pub fn view(&self) -> Result<StateView> {
        self.view_by(&mut Direct)
    }

    /// [`Container::view`], the files looked up through `files`.
    pub(crate) fn view_by(&self, files: &mut dyn Lookup) -> Result<StateView> {
        let status = self.status_by(files)?;
        let pid = if status == Status::Stopped {
            0
        } else {
            self.state.pid
        };
        Ok(self.view_as(status, pid))
    }

    /// The view with a status and pid the caller knows.
    fn view_as(&self, status: Status, pid: i32) -> StateView {
        StateView {
            oci_version: OCI_VERSION,
            id: self.state.id.clone(),
            pid,
            status,
            bundle: self.state.bundle.clone(),
            rootfs: self.state.rootfs.clone(),
            created: self.state.created.clone(),
            annotations: self.state.annotations.clone(),
            owner: self.state.owner.clone(),
        }
    }

    /// The state JSON that hooks read on stdin (runtime-spec "State"), with `status` forced to
    /// the lifecycle point the hook runs at.
    pub(crate) fn hook_state(&self, status: Status) -> Result<String> {
        // Not `view`: the status is the caller's to say, so deriving it (the init's pidfd, the
        // freezer file, the fifo) would be work thrown away, on every create, start and delete.
        let view = self.view_as(status, self.state.pid);
        serde_json::to_string(&view).map_err(|source| Error::Encode {
            what: "hook state",
            source,
        })
    }
}

impl Locked {
    /// Writes `state.json` atomically.
    pub(crate) fn save(&self) -> Result<()> {
        let bytes = serde_json::to_vec(&self.state).map_err(|source| Error::Encode {
            what: "state",
            source,
        })?;
        write_atomic(&self.dir.join(STATE_FILE), &bytes, 0o600)
    }

    /// Keeps the config `create` validated (its bytes as read) for later `exec`s.
    pub(crate) fn save_config(&self, text: &[u8]) -> Result<()> {
        let path = self.dir.join(CONFIG_FILE);
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .and_then(|mut f| f.write_all(text))
            .map_err(Error::io("write", &path))
    }

    /// Closes this process's copy of the lock's descriptor *without* unlocking: for a child
    /// cloned while the parent holds the lock. A flock(2) belongs to the open file description
    /// the two processes now share, so `LOCK_UN` (what dropping a `Flock` does) would release
    /// the parent's lock too; closing one descriptor of several does not.
    pub(crate) fn close_inherited(self) {
        let raw = self.lock.as_raw_fd();
        std::mem::forget(self.lock);
        // SAFETY: `raw` is the lock's descriptor, which `forget` left open and owned by nothing
        // else in this process; it is closed exactly once, here.
        unsafe { libc::close(raw) };
    }

    /// Removes the container's directory and everything in it. The lock dies with `self`.
    pub(crate) fn remove(self) -> Result<()> {
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove state dir", &self.dir)(e)),
        }
    }
}

/// Writes `bytes` to `path` through a temporary file and rename(2), so readers see the old or the
/// new content, never a torn one.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = crate::sys::open_file(
        None,
        &tmp,
        libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
        mode as libc::mode_t,
    )
    .map_err(Error::io("create", &tmp))?;
    f.write_all(bytes).map_err(Error::io("write", &tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io("rename into place", path)(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_as_runc() {
        for ok in ["a", "abc-1.2_3+x", "0"] {
            assert!(validate_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "../x", "é"] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
    }

    /// A state read in one read(2) when it is short, and whole when it is longer than the
    /// stack buffer, or exactly as long.
    #[test]
    fn small_reads_return_the_whole_file() {
        let tmp = tempfile::tempdir().expect("tempdir");
        for size in [0, 1, 317, 4095, 4096, 4097, 9000, 20_000] {
            let path = tmp.path().join(format!("f{size}"));
            let bytes: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            std::fs::write(&path, &bytes).expect("write");
            for until in [Until::ShortRead, Until::EndOfFile] {
                let read = read_small_at(None, &path, until).expect("read");
                assert!(read == bytes, "{size} bytes read as {}", read.len());
            }
        }
    }

    /// `Container::cgroup` believes the directories `create` recorded, and finds them from the
    /// mounts when there is no record or it does not parse.
    #[test]
    fn the_cgroup_comes_from_its_record_or_else_from_the_mounts() {
        use hako_cgroups::{Cgroup, CgroupPath};
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Store::new(tmp.path().join("root"));
        let path = CgroupPath::absolute("/hako-unit/recorded".as_ref()).expect("path");
        let mut p = persisted("c3");
        p.cgroup = Some(path.clone());
        let locked = store.claim(p).expect("claim");
        let dirs = |c: Cgroup| {
            c.hierarchies()
                .into_iter()
                .map(|h| h.dir)
                .collect::<Vec<_>>()
        };
        let from_mounts = dirs(Cgroup::open(&path).expect("open"));
        let cgroup = || locked.cgroup().expect("cgroup").expect("has one");
        assert_eq!(dirs(cgroup()), from_mounts);
        let elsewhere = Cgroup::open(&CgroupPath::absolute("/hako-unit/else".as_ref()).expect("p"))
            .expect("open");
        locked.record_cgroup(&elsewhere).expect("record");
        assert_eq!(dirs(cgroup()), dirs(elsewhere));
        std::fs::write(locked.dir.join(CGROUP_FILE), "{\"mode\":").expect("torn record");
        assert_eq!(dirs(cgroup()), from_mounts);
    }

    fn persisted(id: &str) -> Persisted {
        let mut p = Persisted::orphan(id);
        p.bundle = "/b".into();
        p
    }

    #[test]
    fn claim_refuses_duplicates_and_load_finds_state() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Store::new(tmp.path().join("root"));
        let locked = store.claim(persisted("c1")).expect("claim");
        drop(locked);
        assert!(matches!(
            store.claim(persisted("c1")),
            Err(Error::Exists { .. })
        ));
        let loaded = store.load("c1").expect("load");
        assert_eq!(loaded.state.bundle, PathBuf::from("/b"));
        assert_eq!(loaded.status().expect("status"), Status::Stopped);
        loaded.remove().expect("remove");
        assert!(matches!(store.load("c1"), Err(Error::NotExist { .. })));
        assert_eq!(store.ids().expect("ids"), Vec::<String>::new());
    }
}
