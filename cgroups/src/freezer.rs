//! Freezing and thawing: the v1 freezer controller (freezer.state, kernel
//! Documentation/admin-guide/cgroup-v1/freezer-subsystem.rst) when mounted,
//! else cgroup v2's cgroup.freeze / cgroup.events (cgroup-v2.rst "Core
//! Interface Files"). Both are asynchronous: the write starts the transition
//! and we poll, with a short growing backoff and a hard deadline, until the
//! state is reached. While a v1 freeze is stuck in FREEZING, the FROZEN write
//! is repeated now and then, as runc does.

use std::path::Path;
use std::time::Duration;

use crate::cgroup::Backoff;
use crate::files;
use crate::{Cgroup, Error};

/// How long a freeze or thaw may take before giving up.
const DEADLINE: Duration = Duration::from_secs(5);

/// Where the freezer of a cgroup lives.
pub(crate) enum Freezer<'a> {
    /// v1 freezer controller directory.
    V1(&'a Path),
    /// cgroup2 directory.
    V2(&'a Path),
}

impl Freezer<'_> {
    /// Whether the directory exists. A `create` killed before its freezer mkdir leaves a cgroup
    /// without one: nothing in it can be frozen, so nothing there is frozen or needs a thaw.
    pub(crate) fn exists(&self) -> bool {
        match self {
            Freezer::V1(dir) | Freezer::V2(dir) => dir.is_dir(),
        }
    }
}

fn backoff() -> Backoff {
    Backoff::new(
        Duration::from_micros(100),
        Duration::from_millis(10),
        DEADLINE,
    )
}

fn v2_frozen(dir: &Path) -> Result<bool, Error> {
    let events = files::read(dir, "cgroup.events")?;
    let frozen = files::key_values(&events).any(|(k, v)| k == "frozen" && v == 1);
    Ok(frozen)
}

impl Cgroup {
    pub(crate) fn freezer(&self) -> Result<Freezer<'_>, Error> {
        if let Some(d) = self.v1_dir("freezer") {
            return Ok(Freezer::V1(d));
        }
        self.v2_dir()
            .map(Freezer::V2)
            .ok_or_else(|| Error::NoFreezer {
                path: self.path().as_path().to_path_buf(),
            })
    }

    fn set_frozen(&self, frozen: bool) -> Result<(), Error> {
        let mut wait = backoff();
        match self.freezer()? {
            Freezer::V1(dir) => {
                let want = if frozen { "FROZEN" } else { "THAWED" };
                let mut tries = 0u32;
                loop {
                    if tries % 8 == 0 {
                        files::write(dir, "freezer.state", want)?;
                    }
                    tries += 1;
                    if files::read(dir, "freezer.state")?.trim() == want {
                        return Ok(());
                    }
                    if !wait.wait() {
                        if frozen {
                            // Leave nothing half-frozen behind.
                            let _ = files::write(dir, "freezer.state", "THAWED");
                        }
                        return Err(Error::FreezeTimeout {
                            path: dir.to_path_buf(),
                            state: want,
                        });
                    }
                }
            }
            Freezer::V2(dir) => {
                files::write(dir, "cgroup.freeze", if frozen { "1" } else { "0" })?;
                while v2_frozen(dir)? != frozen {
                    if !wait.wait() {
                        if frozen {
                            let _ = files::write(dir, "cgroup.freeze", "0");
                        }
                        return Err(Error::FreezeTimeout {
                            path: dir.to_path_buf(),
                            state: if frozen { "FROZEN" } else { "THAWED" },
                        });
                    }
                }
                Ok(())
            }
        }
    }

    /// Freeze every process, waiting (bounded) until the kernel reports FROZEN.
    pub fn freeze(&self) -> Result<(), Error> {
        self.set_frozen(true)
    }

    /// Thaw, waiting (bounded) until the kernel reports THAWED. A freezer directory that does
    /// not exist holds nothing frozen: thawing it is done.
    pub fn thaw(&self) -> Result<(), Error> {
        if !self.freezer()?.exists() {
            return Ok(());
        }
        self.set_frozen(false)
    }

    /// Whether the cgroup is frozen (v1 "FROZEN"; FREEZING counts as not frozen); a freezer
    /// directory that does not exist is not frozen.
    pub fn is_frozen(&self) -> Result<bool, Error> {
        let freezer = self.freezer()?;
        if !freezer.exists() {
            return Ok(false);
        }
        match freezer {
            Freezer::V1(dir) => Ok(files::read(dir, "freezer.state")?.trim() == "FROZEN"),
            Freezer::V2(dir) => v2_frozen(dir),
        }
    }
}
