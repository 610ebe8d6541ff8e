//! Listing and signalling the processes of a cgroup. Killing with kill(2)
//! pid by pid races with fork: a process can spawn a child after the list
//! was read. So unless the kernel can do it atomically (cgroup.kill, Linux
//! 5.14, for SIGKILL), the cgroup is frozen first and thawed afterwards
//! (runc #4047).

use std::path::Path;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::files;
use crate::{Cgroup, Error};

/// Collect the pids in `dir`/cgroup.procs and in every child cgroup.
fn collect_pids(dir: &Path, out: &mut Vec<i32>) -> Result<(), Error> {
    // Absent, or removed while read: no pids (see `Error::is_vanished`).
    let text = match files::read(dir, "cgroup.procs") {
        Ok(t) => t,
        Err(e) if e.is_vanished() => return Ok(()),
        Err(e) => return Err(e),
    };
    for line in text.lines().filter(|l| !l.is_empty()) {
        out.push(files::parse_u64(dir, "cgroup.procs", line).and_then(|p| {
            i32::try_from(p).map_err(|_| Error::ParseValue {
                path: dir.join("cgroup.procs"),
                content: line.to_string(),
            })
        })?);
    }
    let Some(entries) = files::read_dir_if_exists(dir)? else {
        return Ok(());
    };
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
    /// to freeze (its pids are signalled all the same). A cgroup removed while
    /// this runs (systemd removes an empty scope's: `Error::is_vanished`) holds
    /// nothing to signal: no file is checked first and then used.
    pub fn signal_all(&self, signal: i32) -> Result<(), Error> {
        let sig = Signal::try_from(signal).map_err(|_| Error::InvalidSignal { signal })?;
        if sig == Signal::SIGKILL {
            if let Some(dir) = self.v2_dir() {
                match files::write(dir, "cgroup.kill", "1") {
                    Ok(()) => return Ok(()),
                    // No cgroup.kill (Linux < 5.14), or no cgroup any more: the path below
                    // finds the pids that are left, if any.
                    Err(e) if e.is_vanished() => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let frozen = match self.freezer() {
            Ok(f) if f.exists() => match self.freeze() {
                Ok(()) => true,
                // Removed under us: nothing in it to freeze or to thaw afterwards.
                Err(e) if e.is_vanished() => false,
                Err(e) => return Err(e),
            },
            _ => false,
        };
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::Path;

    use super::*;
    use crate::{Hierarchy, Mode};

    /// A hybrid host's cgroup as a `create` killed between its mkdirs leaves it: `cpu` and
    /// `memory` made, `freezer` and the cgroup2 one not yet.
    fn half_made(tmp: &Path) -> Cgroup {
        let h = |name: &str, fs_type: &'static str, options: &str| Hierarchy {
            name: name.into(),
            mount_point: tmp.join(name),
            dir: tmp.join(name).join("c"),
            fs_type,
            options: options.into(),
        };
        let hierarchies = vec![
            h("cpu", "cgroup", "cpu"),
            h("memory", "cgroup", "memory"),
            h("freezer", "cgroup", "freezer"),
            h("unified", "cgroup2", ""),
        ];
        for made in &hierarchies[..2] {
            std::fs::create_dir_all(&made.dir).unwrap();
            std::fs::write(made.dir.join("cgroup.procs"), "").unwrap();
        }
        Cgroup::fake(Mode::Hybrid, hierarchies)
    }

    #[test]
    fn pids_come_from_every_hierarchy_that_exists() {
        let tmp = tempfile::tempdir().unwrap();
        let cg = half_made(tmp.path());
        std::fs::write(tmp.path().join("cpu/c/cgroup.procs"), "11\n12\n").unwrap();
        std::fs::write(tmp.path().join("memory/c/cgroup.procs"), "13\n12\n").unwrap();
        assert_eq!(cg.pids().unwrap(), [11, 12, 13]);
    }

    #[test]
    fn a_missing_freezer_holds_nothing_frozen() {
        let tmp = tempfile::tempdir().unwrap();
        let cg = half_made(tmp.path());
        assert!(!cg.is_frozen().unwrap());
        cg.thaw().unwrap();
        // Freezing is another matter: `pause` of such a cgroup must fail.
        assert!(cg.freeze().is_err());
    }

    #[test]
    fn kill_without_freezer_nor_cgroup_kill_reaches_the_pids_it_finds() {
        let tmp = tempfile::tempdir().unwrap();
        let cg = half_made(tmp.path());
        let mut child = std::process::Command::new("sleep")
            .arg("1000")
            .spawn()
            .unwrap();
        std::fs::write(
            tmp.path().join("memory/c/cgroup.procs"),
            format!("{}\n", child.id()),
        )
        .unwrap();
        let result = cg.signal_all(libc::SIGKILL);
        let died = exits_within(child.id(), 10_000);
        let _ = child.kill();
        let status = child.wait().unwrap();
        result.unwrap();
        assert!(died, "not killed");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }

    /// systemd removes a scope's cgroup as soon as it is empty, which can be while a
    /// `delete` signals it: the directories are still listed but their files are gone (the
    /// kernel removes a cgroup's files before its directory). Here every directory exists and
    /// no control file does: a kill must find nothing to do, not fail (issue 15's `hako run`
    /// that exited 1 where its systemd-scoped container exited 7).
    #[test]
    fn kill_of_a_cgroup_whose_files_vanished_is_done() {
        let tmp = tempfile::tempdir().unwrap();
        let cg = half_made(tmp.path());
        for h in cg.hierarchies_ref() {
            std::fs::create_dir_all(&h.dir).unwrap();
            let _ = std::fs::remove_file(h.dir.join("cgroup.procs"));
        }
        cg.signal_all(libc::SIGKILL).unwrap();
        cg.signal_all(libc::SIGTERM).unwrap();
    }

    /// Whether `pid` exits within `ms` milliseconds (pidfd_open(2) and poll(2)).
    fn exits_within(pid: u32, ms: i32) -> bool {
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
        assert!(fd >= 0, "pidfd_open");
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; the fd is ours and closed right after.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        // SAFETY: `fd` is ours, closed once.
        unsafe { libc::close(fd) };
        rc == 1
    }
}
