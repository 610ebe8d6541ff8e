//! The state store: one directory per container under `--root` (default `/run/hako`).
//!
//! ```text
//! /run/hako/<id>/          mode 0711, created with mkdir(2): its existence claims the id
//!     state.json           written atomically (temp file + rename(2))
//!     exec.fifo            present while the container is `created` (see `fifo.rs`)
//!     start.status         only with startContainer hooks: their failure, for `start`
//! ```
//! Every command that reads or changes a container holds an exclusive `flock(2)` on the directory,
//! so concurrent commands on one id are serialised. The status is never stored: it is derived from
//! the init's liveness (pid plus start time), the exec fifo and the freezer, as runc derives it, so
//! a state file can never claim a status that is no longer true.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

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
}

fn yes() -> bool {
    true
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

/// A container directory held under an exclusive lock for the lifetime of this value.
#[derive(Debug)]
pub struct Locked {
    dir: PathBuf,
    _lock: Flock<fs::File>,
    /// The state as read (or being written by `create`).
    pub state: Persisted,
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

/// Opens the container directory and takes an exclusive flock(2) on it, waiting for any other
/// hako command that holds it.
fn lock_dir(dir: &Path) -> Result<Flock<fs::File>> {
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .map_err(Error::io("open state dir", dir))?;
    let mut f = f;
    loop {
        match Flock::lock(f, FlockArg::LockExclusive) {
            Ok(lock) => return Ok(lock),
            Err((back, nix::Error::EINTR)) => f = back,
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
        let lock = match lock_dir(&dir) {
            Ok(l) => l,
            Err(e) => {
                let _ = fs::remove_dir(&dir);
                return Err(e);
            }
        };
        let locked = Locked {
            dir,
            _lock: lock,
            state,
        };
        locked.save()?;
        Ok(locked)
    }

    /// Opens and locks an existing container.
    pub fn load(&self, id: &str) -> Result<Locked> {
        validate_id(id)?;
        let dir = self.dir(id);
        let lock = match lock_dir(&dir) {
            Ok(l) => l,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotExist { id: id.to_string() })
            }
            Err(e) => return Err(e),
        };
        let path = dir.join(STATE_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            // The directory vanished between open and lock (a concurrent delete), or create was
            // killed before its first write: both mean "no such container" to the caller, but the
            // latter leaves a directory that delete --force must still remove.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if dir.exists() {
                    return Ok(Locked {
                        dir,
                        _lock: lock,
                        state: Persisted::orphan(id),
                    });
                }
                return Err(Error::NotExist { id: id.to_string() });
            }
            Err(e) => return Err(Error::io("read", &path)(e)),
        };
        let state =
            serde_json::from_slice(&bytes).map_err(|source| Error::ParseState { path, source })?;
        Ok(Locked {
            dir,
            _lock: lock,
            state,
        })
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

impl Persisted {
    /// The state of a directory whose `create` died before writing anything.
    fn orphan(id: &str) -> Self {
        Persisted {
            id: id.to_string(),
            pid: 0,
            pid_start_time: 0,
            bundle: PathBuf::new(),
            rootfs: PathBuf::new(),
            created: String::new(),
            annotations: HashMap::new(),
            cgroup: None,
            created_done: false,
            has_process: false,
            hooks: None,
            owner: String::new(),
        }
    }
}

impl Locked {
    /// The container's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the exec fifo.
    pub(crate) fn fifo_path(&self) -> PathBuf {
        self.dir.join(FIFO_FILE)
    }

    /// Path of the start-status FIFO (only with startContainer hooks; see `fifo.rs`).
    pub(crate) fn start_status_path(&self) -> PathBuf {
        self.dir.join(START_STATUS_FILE)
    }

    /// Writes `state.json` atomically.
    pub(crate) fn save(&self) -> Result<()> {
        let bytes = serde_json::to_vec(&self.state).map_err(|source| Error::Encode {
            what: "state",
            source,
        })?;
        write_atomic(&self.dir.join(STATE_FILE), &bytes, 0o600)
    }

    /// The init process, if it is still alive (and not a zombie).
    pub(crate) fn init(&self) -> Option<pidfd::Process> {
        pidfd::Process::open(self.state.pid, self.state.pid_start_time)
    }

    /// The status, derived from the init, the exec fifo and the freezer.
    pub fn status(&self) -> Status {
        if !self.state.created_done {
            return if self.init().is_some() {
                Status::Creating
            } else {
                Status::Stopped
            };
        }
        if self.init().is_none() {
            return Status::Stopped;
        }
        if self.fifo_path().exists() {
            return Status::Created;
        }
        if let Some(path) = &self.state.cgroup {
            if let Ok(cg) = hako_cgroups::Cgroup::open(path) {
                if cg.is_frozen().unwrap_or(false) {
                    return Status::Paused;
                }
            }
        }
        Status::Running
    }

    /// The cgroup of a container that is not stopped (`ps`, `update`, `events`, `pause`).
    pub(crate) fn live_cgroup(&self) -> Result<hako_cgroups::Cgroup> {
        let not_running = || Error::NotRunning {
            id: self.state.id.clone(),
        };
        if self.status() == Status::Stopped {
            return Err(not_running());
        }
        let path = self.state.cgroup.as_ref().ok_or_else(|| Error::NoCgroup {
            id: self.state.id.clone(),
        })?;
        Ok(hako_cgroups::Cgroup::open(path)?)
    }

    /// runc's `state` JSON view.
    pub fn view(&self) -> StateView {
        let status = self.status();
        StateView {
            oci_version: OCI_VERSION,
            id: self.state.id.clone(),
            pid: if status == Status::Stopped {
                0
            } else {
                self.state.pid
            },
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
        let mut view = self.view();
        view.status = status;
        view.pid = self.state.pid;
        serde_json::to_string(&view).map_err(|source| Error::Encode {
            what: "hook state",
            source,
        })
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
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .custom_flags(libc::O_CLOEXEC)
        .open(&tmp)
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
        assert_eq!(loaded.status(), Status::Stopped);
        loaded.remove().expect("remove");
        assert!(matches!(store.load("c1"), Err(Error::NotExist { .. })));
        assert_eq!(store.ids().expect("ids"), Vec::<String>::new());
    }
}
