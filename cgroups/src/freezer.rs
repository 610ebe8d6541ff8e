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
        match self.set_frozen(false) {
            // Removed while thawing (systemd removes an empty scope's cgroup): nothing is frozen.
            Err(e) if e.is_vanished() => Ok(()),
            other => other,
        }
    }

    /// The file that says whether the cgroup is frozen (v1 `freezer.state`, v2 `cgroup.events`),
    /// for a caller to keep and read with [`is_frozen_at`] without opening the cgroup again
    /// (which parses `/proc/self/mountinfo`).
    pub fn freezer_file(&self) -> Result<std::path::PathBuf, Error> {
        Ok(match self.freezer()? {
            Freezer::V1(dir) => dir.join("freezer.state"),
            Freezer::V2(dir) => dir.join("cgroup.events"),
        })
    }

    /// Whether the cgroup is frozen (v1 "FROZEN"; FREEZING counts as not frozen); a freezer
    /// directory that does not exist, or that is removed while read, is not frozen.
    pub fn is_frozen(&self) -> Result<bool, Error> {
        let freezer = self.freezer()?;
        if !freezer.exists() {
            return Ok(false);
        }
        let frozen = match freezer {
            Freezer::V1(dir) => files::read(dir, "freezer.state").map(|s| s.trim() == "FROZEN"),
            Freezer::V2(dir) => v2_frozen(dir),
        };
        match frozen {
            Err(e) if e.is_vanished() => Ok(false),
            other => other,
        }
    }
}

/// Whether the cgroup whose [`Cgroup::freezer_file`] is `file` is frozen, as
/// [`Cgroup::is_frozen`] says; a file that does not exist (no freezer cgroup) is not frozen,
/// any other failure to read it is an error.
pub fn is_frozen_at(file: &Path) -> Result<bool, Error> {
    is_frozen_opened(file, || crate::sys::open(file, libc::O_RDONLY))
}

/// [`is_frozen_at`] of `file` opened by `open` (`list` opens it below a directory it keeps
/// open for every container: the walk of `/sys/fs/cgroup/...` through kernfs is most of the
/// cost of an open there).
pub fn is_frozen_opened(
    file: &Path,
    open: impl FnOnce() -> std::io::Result<std::fs::File>,
) -> Result<bool, Error> {
    // One read into a buffer that fits either file: `fs::read_to_string` would ask fstat(2)
    // and lseek(2) for a size (a cgroup file reads as size 0) and then read in growing steps
    // from 32 bytes, and `list` reads this file for every live container.
    let read = || -> std::io::Result<String> {
        use std::io::Read;
        let mut f = open()?;
        let mut buf = [0u8; 512];
        let mut len = 0;
        while len < buf.len() {
            match f.read(&mut buf[len..]) {
                Ok(0) => break,
                // Both files are one kernfs record (`freezer.state`'s line, `cgroup.events`'
                // two), which seq_file hands over whole to a buffer this size: a read that
                // ends a line has read it all, and the read that would return 0 is saved
                // (one syscall per live container in `list`).
                Ok(n) if buf[len + n - 1] == b'\n' => {
                    len += n;
                    break;
                }
                Ok(n) => len += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(String::from_utf8_lossy(&buf[..len]).into_owned())
    };
    let text = match read() {
        Ok(t) => t,
        Err(source) => {
            let e = Error::Read {
                path: file.to_path_buf(),
                source,
            };
            // Also removed while read: a container's init that just exited is still there
            // (a zombie) when systemd removes its empty scope's cgroup.
            return if e.is_vanished() { Ok(false) } else { Err(e) };
        }
    };
    if file.file_name().is_some_and(|n| n == "cgroup.events") {
        return Ok(files::key_values(&text).any(|(k, v)| k == "frozen" && v == 1));
    }
    Ok(text.trim() == "FROZEN")
}

#[cfg(test)]
mod tests {
    use super::is_frozen_at;
    use crate::{Cgroup, Hierarchy, Mode};

    /// A cgroup whose directories exist and whose files are gone, as the kernel leaves one
    /// that is being removed (systemd removes a scope's cgroup once it is empty): not frozen,
    /// and thawing it is done. Freezing it is another matter: `pause` must fail.
    #[test]
    fn a_cgroup_whose_files_vanished_is_thawed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        for (fs_type, mode, options) in [
            ("cgroup2", Mode::Unified, ""),
            ("cgroup", Mode::Hybrid, "freezer"),
        ] {
            let h = Hierarchy {
                name: fs_type.into(),
                mount_point: tmp.path().join(fs_type),
                dir: tmp.path().join(fs_type).join("c"),
                fs_type,
                options: options.into(),
            };
            std::fs::create_dir_all(&h.dir).expect("mkdir");
            let cg = Cgroup::fake(mode, vec![h]);
            assert!(!cg.is_frozen().expect("is_frozen"), "{fs_type}");
            cg.thaw().expect("thaw");
            assert!(cg.freeze().is_err(), "{fs_type}");
        }
    }

    #[test]
    fn frozen_file_reads_v1_v2_missing_and_fails_closed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let v1 = dir.path().join("freezer.state");
        std::fs::write(&v1, "FROZEN\n").expect("write");
        assert!(is_frozen_at(&v1).expect("v1"));
        std::fs::write(&v1, "FREEZING\n").expect("write");
        assert!(!is_frozen_at(&v1).expect("v1 freezing"));
        let v2 = dir.path().join("cgroup.events");
        std::fs::write(&v2, "populated 1\nfrozen 1\n").expect("write");
        assert!(is_frozen_at(&v2).expect("v2"));
        assert!(!is_frozen_at(&dir.path().join("gone/freezer.state")).expect("missing"));
        // A file that exists but cannot be read is an error, never "not frozen".
        let unreadable = dir.path().join("dir/freezer.state");
        std::fs::create_dir_all(&unreadable).expect("mkdir");
        assert!(is_frozen_at(&unreadable).is_err());
    }
}
