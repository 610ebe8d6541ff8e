//! Opening and joining existing namespaces, and the late unshares.
//!
//! Namespace files are opened by the parent before clone (so a path that
//! vanishes is reported early, by the process that can report it) and
//! checked with `ioctl(NS_GET_NSTYPE)` (ioctl_ns(2), Linux 4.11) so that a
//! config cannot make us setns(2) into a namespace of the wrong kind.

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::{setns, unshare};
use nix::sys::stat::{fstat, Mode};

use crate::kind::Kind;
use crate::ns::Namespaces;
use crate::{sys, Error};

/// Open namespace files to join, in join order. Closed on drop.
#[derive(Debug, Default)]
pub struct JoinFds {
    fds: Vec<(Kind, OwnedFd)>,
}

impl JoinFds {
    /// The pid namespace to join: the parent does `setns(fd, CLONE_NEWPID)` on
    /// itself before clone, so the child is born in it (pid_namespaces(7):
    /// setns only changes `pid_for_children`). [`Namespaces::join`] skips it.
    pub fn pid(&self) -> Option<BorrowedFd<'_>> {
        self.get(Kind::Pid)
    }

    fn get(&self, k: Kind) -> Option<BorrowedFd<'_>> {
        self.fds
            .iter()
            .find(|(kk, _)| *kk == k)
            .map(|(_, f)| f.as_fd())
    }

    /// True if there is nothing to join.
    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }
}

/// Opens `path` and checks it is a namespace of kind `k`.
fn open_ns(k: Kind, path: &Path) -> Result<OwnedFd, Error> {
    let fd = sys::open(path, OFlag::O_RDONLY).map_err(|source| Error::OpenNamespace {
        ns: k.name(),
        path: path.to_path_buf(),
        source,
    })?;
    match sys::ns_get_type(fd.as_fd()) {
        Ok(raw) if raw == k.flag().bits() => Ok(fd),
        Ok(raw) => Err(Error::NamespaceTypeMismatch {
            path: path.to_path_buf(),
            expected: k.name(),
            found: Kind::from_raw(raw)
                .map_or_else(|| format!("type {raw:#x}"), |f| f.name().into()),
        }),
        // Not an nsfs file: the ioctl is unknown to its filesystem.
        Err(Errno::ENOTTY) | Err(Errno::EINVAL) => Err(Error::NamespaceTypeMismatch {
            path: path.to_path_buf(),
            expected: k.name(),
            found: "not a namespace".into(),
        }),
        Err(source) => Err(Error::NamespaceType {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Joins namespaces in stages, as runc's nsexec does since its "two-stage join" (runc #4492):
/// 1. every namespace but the user namespace, in `JOIN_ORDER` (mount last), while we still
///    hold the capabilities of our own user namespace: a namespace it owns, such as the
///    network namespace a Kubernetes user-namespace pod joins at creation, can no longer be
///    entered once we are inside a container's user namespace (setns(2): CAP_SYS_ADMIN in the
///    namespace's owning user namespace);
/// 2. the user namespace;
/// 3. whatever stage 1 was refused with EPERM, which only the joined user namespace's root
///    may enter (hako running without the host's capabilities).
fn join_in_stages<'a>(fds: impl Iterator<Item = &'a (Kind, OwnedFd)>) -> Result<(), Error> {
    let mut user = None;
    let mut refused = Vec::new();
    for (k, fd) in fds {
        if *k == Kind::User {
            user = Some(fd);
            continue;
        }
        match do_setns(*k, fd.as_fd()) {
            Err(Error::Setns {
                source: Errno::EPERM,
                ..
            }) => refused.push((*k, fd)),
            other => other?,
        }
    }
    let Some(user) = user else {
        // Nothing will give us more capabilities: report the first refusal.
        return match refused.first() {
            Some((k, fd)) => do_setns(*k, fd.as_fd()),
            None => Ok(()),
        };
    };
    do_setns(Kind::User, user.as_fd())?;
    for (k, fd) in refused {
        do_setns(k, fd.as_fd())?;
    }
    Ok(())
}

fn do_setns(k: Kind, fd: BorrowedFd<'_>) -> Result<(), Error> {
    setns(fd, k.flag()).map_err(|source| Error::Setns {
        ns: k.name(),
        source,
    })
}

impl Namespaces {
    /// Opens every namespace `path` to join (in the parent, before clone),
    /// checking each is a namespace of the right type.
    pub fn open_joins(&self) -> Result<JoinFds, Error> {
        let mut fds = Vec::new();
        for k in Kind::JOIN_ORDER {
            if let Some(p) = self.joined_path(k) {
                fds.push((k, open_ns(k, p)?));
            }
        }
        Ok(JoinFds { fds })
    }

    /// In the child, after the parent's go signal: setns(2) into every
    /// joined namespace except pid (joined by the parent), in stages (see
    /// `join_in_stages`). Consumes and closes the descriptors.
    pub fn join(&self, fds: JoinFds) -> Result<(), Error> {
        join_in_stages(fds.fds.iter().filter(|(k, _)| *k != Kind::Pid))
    }

    /// In the child, after [`Namespaces::join`], when
    /// [`Namespaces::unshares_user_late`]: unshare(CLONE_NEWUSER). The
    /// caller then has the parent write the maps and becomes root in it.
    pub fn unshare_user(&self) -> Result<(), Error> {
        unshare(Kind::User.flag()).map_err(|source| Error::Unshare {
            ns: Kind::User.name(),
            source,
        })
    }

    /// In the child, last, when [`Namespaces::needs_pid_fork`]:
    /// unshare(CLONE_NEWPID), which only moves the caller's *children*; the
    /// caller forks the container's pid 1 next.
    pub fn unshare_pid(&self) -> Result<(), Error> {
        unshare(Kind::Pid.flag()).map_err(|source| Error::Unshare {
            ns: Kind::Pid.name(),
            source,
        })
    }

    /// In the child, after [`Namespaces::join`]: unshares the namespaces that
    /// are created late (cgroup, time, and after a joined or late user
    /// namespace all but pid), then writes `linux.timeOffsets` to
    /// `/proc/self/timens_offsets`. The time namespace is entered by the
    /// following execve(2) (Linux 5.18+, `exec_task_namespaces`).
    pub fn unshare_late(&self) -> Result<(), Error> {
        for k in self.late_kinds() {
            unshare(k.flag()).map_err(|source| Error::Unshare {
                ns: k.name(),
                source,
            })?;
        }
        if self.late_kinds().contains(&Kind::Time) {
            if !self.time_offsets.is_empty() {
                write_time_offsets(&self.time_offsets)?;
            }
            // unshare(CLONE_NEWTIME) only sets where children go; some kernels (seen on 6.1)
            // do not move the caller at execve either. Joining our own time_for_children
            // moves us now (time_namespaces(7)); the offsets can no longer change after.
            let path = Path::new("/proc/self/ns/time_for_children");
            let fd = sys::open(path, OFlag::O_RDONLY)
                .map_err(|source| Error::Setns { ns: "time", source })?;
            nix::sched::setns(fd, Kind::Time.flag())
                .map_err(|source| Error::Setns { ns: "time", source })?;
        }
        Ok(())
    }
}

/// Formats `linux.timeOffsets` as time_namespaces(7) expects.
pub(crate) fn format_time_offsets(offsets: &[(String, i64, u32)]) -> String {
    offsets
        .iter()
        .map(|(clock, secs, nanos)| format!("{clock} {secs} {nanos}\n"))
        .collect()
}

fn write_time_offsets(offsets: &[(String, i64, u32)]) -> Result<(), Error> {
    let value = format_time_offsets(offsets);
    let err = |source| Error::WriteTimeOffsets {
        value: value.clone(),
        source,
    };
    let fd = sys::open(Path::new("/proc/self/timens_offsets"), OFlag::O_WRONLY).map_err(err)?;
    // The kernel parses the whole buffer of a single write.
    std::fs::File::from(fd)
        .write_all(value.as_bytes())
        .map_err(|e| err(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))))
}

/// The namespaces of a running process that differ from ours, opened and
/// ready to join (for `hako exec`), and its root directory.
///
/// The root matters for a container without a mount namespace of its own (the caller's, or
/// a joined one: see `Rootfs::enter`): its init is only chrooted, and joining namespaces
/// alone would leave an exec'd process at the runtime's root, outside the container's
/// filesystem (runc 1.1.5 and crun 1.8.1 do that: measured). Every exec'd process is
/// chrooted into the init's root after the joins (a no-op for a pivoted container).
#[derive(Debug)]
pub struct ProcessNamespaces {
    fds: JoinFds,
    root: OwnedFd,
}

impl ProcessNamespaces {
    /// Opens `/proc/<pid>/ns/*` for every namespace that is not also ours
    /// (same device and inode as `/proc/self/ns/*`). Kinds the kernel does
    /// not have are skipped.
    ///
    /// Both `ns` directories are opened once and each file below them: a
    /// walk of `/proc/<pid>/ns/<kind>` looks the pid up again for every kind
    /// (part of every `hako exec`'s latency). The files of `/proc/<pid>/ns`
    /// need no type check: procfs names each by its kind.
    pub fn open(pid: i32) -> Result<Self, Error> {
        let theirs_dir = PathBuf::from(format!("/proc/{pid}"));
        let open_dir = |path: &Path| {
            sys::open(path, OFlag::O_PATH | OFlag::O_DIRECTORY).map_err(|source| Error::Open {
                path: path.to_path_buf(),
                source,
            })
        };
        let theirs = open_dir(&theirs_dir)?;
        let ours = open_dir(Path::new("/proc/self/ns"))?;
        let mut fds = Vec::new();
        for k in Kind::JOIN_ORDER {
            // Our own file is missing only for a kind this kernel does not have; theirs must
            // then be there (fail closed: a process that died meanwhile is an error, never
            // "nothing to join").
            let b = match nix::sys::stat::fstatat(
                Some(std::os::fd::AsRawFd::as_raw_fd(&ours)),
                k.name(),
                nix::fcntl::AtFlags::empty(),
            ) {
                Ok(b) => b,
                Err(Errno::ENOENT) => continue,
                Err(source) => {
                    return Err(Error::StatNamespace {
                        path: Path::new("/proc/self/ns").join(k.name()),
                        source,
                    })
                }
            };
            let name = Path::new("ns").join(k.name());
            let fd = sys::openat(Some(theirs.as_fd()), &name, OFlag::O_RDONLY, Mode::empty())
                .map_err(|source| Error::OpenNamespace {
                    ns: k.name(),
                    path: theirs_dir.join(&name),
                    source,
                })?;
            let a = fstat(std::os::fd::AsRawFd::as_raw_fd(&fd)).map_err(|source| {
                Error::StatNamespace {
                    path: theirs_dir.join(&name),
                    source,
                }
            })?;
            if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino) {
                fds.push((k, fd));
            }
        }
        let root = sys::openat(
            Some(theirs.as_fd()),
            Path::new("root"),
            OFlag::O_PATH | OFlag::O_DIRECTORY,
            Mode::empty(),
        )
        .map_err(|source| Error::Open {
            path: theirs_dir.join("root"),
            source,
        })?;
        Ok(ProcessNamespaces {
            fds: JoinFds { fds },
            root,
        })
    }

    /// The pid namespace fd, if it differs from ours.
    pub fn pid(&self) -> Option<BorrowedFd<'_>> {
        self.fds.pid()
    }

    /// Joins the process's user namespace now, in the caller, and leaves it out of
    /// [`ProcessNamespaces::join`]; false when it is ours already. For a caller without the
    /// host's privileges (rootless), whose setns(2) into a pid namespace the container's user
    /// namespace owns needs CAP_SYS_ADMIN there (setns(2)).
    pub fn enter_user_namespace(&mut self) -> Result<bool, Error> {
        let Some(i) = self.fds.fds.iter().position(|(k, _)| *k == Kind::User) else {
            return Ok(false);
        };
        let (k, fd) = self.fds.fds.remove(i);
        do_setns(k, fd.as_fd())?;
        Ok(true)
    }

    /// setns(2) into every opened namespace, in stages (see
    /// `join_in_stages`), then chroot(2) into the process's root, leaving the
    /// cwd there. The pid namespace only applies to children: the caller
    /// forks after. The calling process must be single-threaded (user and
    /// mount namespaces require it).
    pub fn join(self) -> Result<(), Error> {
        join_in_stages(self.fds.fds.iter())?;
        // The root fd was opened before the joins; its mount is in the namespace just joined
        // (or in ours, when the mount namespace is shared), so chroot keeps lookups in it.
        nix::unistd::fchdir(std::os::fd::AsRawFd::as_raw_fd(&self.root)).map_err(|source| {
            Error::Chdir {
                path: "the container's root".into(),
                source,
            }
        })?;
        nix::unistd::chroot(".").map_err(|source| Error::Chroot {
            path: "the container's root".into(),
            source,
        })
    }
}

/// Joins every namespace of process `pid` that differs from ours, in the
/// right order (see [`ProcessNamespaces`]).
pub fn join_process_namespaces(pid: i32) -> Result<(), Error> {
    ProcessNamespaces::open(pid)?.join()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_offsets_format() {
        let s =
            format_time_offsets(&[("boottime".into(), -3, 0), ("monotonic".into(), 86400, 500)]);
        assert_eq!(s, "boottime -3 0\nmonotonic 86400 500\n");
    }

    #[test]
    fn open_ns_checks_type() {
        // Our own namespaces are always readable.
        assert!(open_ns(Kind::Net, Path::new("/proc/self/ns/net")).is_ok());
        assert!(matches!(
            open_ns(Kind::Uts, Path::new("/proc/self/ns/net")),
            Err(Error::NamespaceTypeMismatch {
                expected: "uts",
                ..
            })
        ));
        assert!(matches!(
            open_ns(Kind::Uts, Path::new("/etc/hostname")),
            Err(Error::NamespaceTypeMismatch { .. }) | Err(Error::OpenNamespace { .. })
        ));
    }

    #[test]
    fn own_process_has_nothing_to_join() {
        let p = ProcessNamespaces::open(std::process::id() as i32).unwrap();
        assert!(p.fds.is_empty());
        assert!(p.pid().is_none());
    }
}
