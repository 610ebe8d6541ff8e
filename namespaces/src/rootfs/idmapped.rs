//! ID-mapped bind mounts (runtime-spec 1.2 config.md "Mounts": `idmap`,
//! `ridmap`, a mount's `uidMappings`/`gidMappings`).
//!
//! An id-mapped mount shows the files of its source with their owners
//! translated through the mappings of a user namespace (mount_setattr(2),
//! `MOUNT_ATTR_IDMAP`, Linux 5.12). The kernel only id-maps a *detached*
//! mount, so, as runc 1.2 (`libcontainer/rootfs_linux.go`) and crun
//! (`get_idmapped_mount`) do, the source is cloned with
//! `open_tree(OPEN_TREE_CLONE)`, id-mapped, then attached with
//! `move_mount(2)` onto the destination fd resolved inside the rootfs.
//!
//! The trees are made by `hako create` (the parent) before it clones the
//! init, and inherited by it as descriptors ([`IdmappedTrees`]); the init
//! only attaches them. That is the only order that works for a container
//! with its own user namespace: mount_setattr needs CAP_SYS_ADMIN over the
//! source filesystem's user namespace (the host's), which the init no
//! longer has once it is in its own user namespace (runc 1.2 has its parent
//! make these mounts and pass them over its sync socket for the same
//! reason). move_mount(2) of a detached tree only needs CAP_SYS_ADMIN over
//! the *target* mount namespace, which the init owns.
//!
//! A mount's user namespace comes from its own `uidMappings`/`gidMappings`
//! or, for `idmap`/`ridmap` without them, from the container's mappings:
//! either way a short-lived helper child that only unshares
//! `CLONE_NEWUSER` carries them; we write its uid_map/gid_map, keep a
//! descriptor of `/proc/<pid>/ns/user` (which keeps the namespace alive) and
//! kill and reap the helper before returning, on success and on every
//! error. A joined container user namespace is opened by its path. The
//! helper's pid in `/proc`'s namespace is read from the fdinfo of a pidfd,
//! which procfs reports in its own PID namespace (proc(5),
//! "/proc/pid/fdinfo", `Pid:`), so this also works from a process whose
//! pid namespace differs from `/proc`'s.
//!
//! The mappings' host IDs are relative to the user namespace of the caller:
//! this must run in the host user namespace.

use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use crate::rootfs::plan::{IdmapPlan, IdmapUserns};
use crate::rootfs::Rootfs;
use crate::{sys, Error, IdMappings};

/// How long the helper may take to unshare its user namespace.
const HELPER_TIMEOUT: Duration = Duration::from_secs(10);

/// Kills and reaps the helper when dropped, whatever happened.
struct Helper(Pid);

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = kill(self.0, Signal::SIGKILL);
        let _ = waitpid(self.0, None);
    }
}

/// Waits (with a timeout) for the helper's 4-byte report: 0 once it is in
/// its new user namespace, else the errno of unshare(2).
fn wait_report(ready: OwnedFd, destination: &Path) -> Result<(), Error> {
    let fail = |step, source| Error::IdmapUserns {
        destination: destination.to_path_buf(),
        step,
        source,
    };
    let start = Instant::now();
    loop {
        let left = HELPER_TIMEOUT.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Err(fail("wait for the helper", Errno::ETIMEDOUT));
        }
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(ready.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => break,
            Err(e) => return Err(fail("wait for the helper", e)),
        }
    }
    let mut buf = [0u8; 4];
    std::fs::File::from(ready)
        .read_exact(&mut buf)
        .map_err(|_| fail("helper exited before reporting", Errno::EPIPE))?;
    match i32::from_ne_bytes(buf) {
        0 => Ok(()),
        e => Err(fail(
            "unshare(CLONE_NEWUSER) in the helper",
            Errno::from_raw(e),
        )),
    }
}

/// The pid of our child `pid` as seen by the procfs mounted at `/proc`.
fn proc_pid(pid: Pid, destination: &Path) -> Result<i32, Error> {
    let fail = |source| Error::IdmapUserns {
        destination: destination.to_path_buf(),
        step: "find the helper in /proc",
        source,
    };
    let pidfd = sys::pidfd_open(pid).map_err(fail)?;
    let info = std::fs::read_to_string(format!(
        "/proc/self/fdinfo/{}",
        std::os::fd::AsRawFd::as_raw_fd(&pidfd)
    ))
    .map_err(|e| fail(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))))?;
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse::<i32>().ok())
        .filter(|&p| p > 0)
        .ok_or_else(|| fail(Errno::ESRCH))
}

/// A user namespace carrying `maps`, as an fd of its nsfs file.
fn userns_with(maps: &IdMappings, destination: &Path) -> Result<OwnedFd, Error> {
    let (pid, pipes) = sys::fork_userns_helper().map_err(|source| Error::IdmapUserns {
        destination: destination.to_path_buf(),
        step: "fork the helper",
        source,
    })?;
    let helper = Helper(pid);
    wait_report(pipes.ready, destination)?;
    // Our unreaped child: its pid cannot be reused while we use it.
    let proc_pid = proc_pid(pid, destination)?;
    maps.write(proc_pid)?;
    let path = PathBuf::from(format!("/proc/{proc_pid}/ns/user"));
    let fd = sys::open(&path, OFlag::O_RDONLY).map_err(|source| Error::OpenNamespace {
        ns: "user",
        path,
        source,
    })?;
    drop(pipes.hold);
    drop(helper);
    Ok(fd)
}

/// The user namespace of an id-mapped mount.
fn open_userns(plan: &IdmapPlan, destination: &Path) -> Result<OwnedFd, Error> {
    match &plan.userns {
        IdmapUserns::Mappings(maps) => userns_with(maps, destination),
        IdmapUserns::Path(path) => {
            sys::open(path, OFlag::O_RDONLY).map_err(|source| Error::OpenNamespace {
                ns: "user",
                path: path.clone(),
                source,
            })
        }
    }
}

/// The detached, id-mapped trees of a rootfs plan's id-mapped mounts, by
/// mount index. Their descriptors are close-on-exec; each is closed once
/// attached (or when this is dropped).
#[derive(Debug, Default)]
pub struct IdmappedTrees {
    trees: Vec<(usize, OwnedFd)>,
}

impl IdmappedTrees {
    /// Takes the tree for the mount at `index` in the plan.
    pub(crate) fn take(&mut self, index: usize) -> Option<OwnedFd> {
        let at = self.trees.iter().position(|(i, _)| *i == index)?;
        Some(self.trees.swap_remove(at).1)
    }
}

impl Rootfs {
    /// Makes the detached, id-mapped tree of every id-mapped bind mount:
    /// the source (its whole tree with `rbind`) cloned with
    /// `open_tree(OPEN_TREE_CLONE)` and id-mapped with mount_setattr(2)
    /// (recursively with `ridmap`). Runs in the host's user and mount
    /// namespaces, before the init is cloned (see the module docs);
    /// [`Rootfs::prepare`] attaches them.
    pub fn detach_idmapped(&self) -> Result<IdmappedTrees, Error> {
        let mut trees = Vec::new();
        for (index, m) in self.mounts.iter().enumerate() {
            let Some(plan) = &m.idmap else { continue };
            let destination = m.destination.as_path();
            let src = m.source.as_deref().ok_or_else(|| Error::MissingSource {
                destination: destination.to_path_buf(),
                fstype: "bind".into(),
            })?;
            let src_fd = sys::open(src, OFlag::O_PATH).map_err(|source| Error::Open {
                path: src.to_path_buf(),
                source,
            })?;
            let rbind = m.opts.flags.contains(nix::mount::MsFlags::MS_REC);
            trees.push((
                index,
                detach(src_fd.as_fd(), src, destination, rbind, plan)?,
            ));
        }
        Ok(IdmappedTrees { trees })
    }
}

/// Clones the mount (tree, with `rbind`) at `src_fd` into a detached
/// mount, id-mapped by `plan` (recursively with `ridmap`).
fn detach(
    src_fd: BorrowedFd<'_>,
    src: &Path,
    destination: &Path,
    rbind: bool,
    plan: &IdmapPlan,
) -> Result<OwnedFd, Error> {
    let userns = open_userns(plan, destination)?;
    let tree = sys::open_tree_clone(src_fd, rbind).map_err(|source| Error::OpenTree {
        src: src.to_path_buf(),
        destination: destination.to_path_buf(),
        source,
    })?;
    sys::mount_setattr_idmap(tree.as_fd(), plan.recursive, userns.as_fd()).map_err(|source| {
        Error::MountSetattr {
            destination: destination.to_path_buf(),
            set: libc::MOUNT_ATTR_IDMAP,
            clear: 0,
            propagation: 0,
            source,
        }
    })?;
    Ok(tree)
}

/// Attaches a detached tree made by [`Rootfs::detach_idmapped`] on `dest_fd`.
pub(crate) fn attach(
    tree: OwnedFd,
    src: &Path,
    dest_fd: BorrowedFd<'_>,
    destination: &Path,
) -> Result<(), Error> {
    sys::move_mount(tree.as_fd(), dest_fd).map_err(|source| Error::MoveMount {
        src: src.to_path_buf(),
        destination: destination.to_path_buf(),
        source,
    })
}
