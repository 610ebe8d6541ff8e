//! Listing and signalling the processes of a cgroup. Killing with kill(2)
//! pid by pid races with fork: a process can spawn a child after the list
//! was read. So unless the kernel can do it atomically (cgroup.kill, Linux
//! 5.14, for SIGKILL), the cgroup is frozen first and thawed afterwards
//! (runc #4047).

use std::io::ErrorKind;
use std::path::Path;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::files;
use crate::{Cgroup, Error};

/// Collect the pids in `dir`/cgroup.procs and in every child cgroup.
fn collect_pids(dir: &Path, out: &mut Vec<i32>) -> Result<(), Error> {
    let text = match std::fs::read_to_string(dir.join("cgroup.procs")) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::Read {
                path: dir.join("cgroup.procs"),
                source,
            })
        }
    };
    for line in text.lines().filter(|l| !l.is_empty()) {
        out.push(files::parse_u64(dir, "cgroup.procs", line).and_then(|p| {
            i32::try_from(p).map_err(|_| Error::ParseValue {
                path: dir.join("cgroup.procs"),
                content: line.to_string(),
            })
        })?);
    }
    let entries = std::fs::read_dir(dir).map_err(|source| Error::ReadDir {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            collect_pids(&entry.path(), out)?;
        }
    }
    Ok(())
}

impl Cgroup {
    /// Every pid in the cgroup and its descendants, in any of its hierarchies, sorted. All of
    /// them, not one: a `create` killed while it wrote `cgroup.procs` hierarchy by hierarchy
    /// leaves its init in some only.
    pub fn pids(&self) -> Result<Vec<i32>, Error> {
        let mut out = Vec::new();
        for h in self.hierarchies_ref() {
            collect_pids(&h.dir, &mut out)?;
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Signal every process. SIGKILL with a cgroup2 dir (unified, or hybrid's)
    /// that has cgroup.kill → one atomic write. Otherwise freeze, kill(2)
    /// each pid (ESRCH ignored), thaw — the thaw happens even if a kill failed.
    /// Only the directories that exist count: a cgroup whose `create` was killed
    /// half-way has some hierarchies only, and a missing freezer means nothing
    /// to freeze (its pids are signalled all the same).
    pub fn signal_all(&self, signal: i32) -> Result<(), Error> {
        let sig = Signal::try_from(signal).map_err(|_| Error::InvalidSignal { signal })?;
        if sig == Signal::SIGKILL {
            if let Some(dir) = self.v2_dir().filter(|d| d.join("cgroup.kill").exists()) {
                return files::write(dir, "cgroup.kill", "1");
            }
        }
        let frozen = self.freezer().is_ok_and(|f| f.exists());
        if frozen {
            self.freeze()?;
        }
        let result = self.pids().and_then(|pids| {
            pids.into_iter()
                .try_for_each(|pid| match kill(Pid::from_raw(pid), sig) {
                    Ok(()) | Err(nix::Error::ESRCH) => Ok(()),
                    Err(source) => Err(Error::Kill {
                        pid,
                        signal,
                        source,
                    }),
                })
        });
        let thawed = if frozen { self.thaw() } else { Ok(()) };
        result.and(thawed)
    }
}
