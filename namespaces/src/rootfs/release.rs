//! Taking down the mounts a container made in a mount namespace it does not own (see `record`):
//! what `delete` and a failed `create` do, so that nothing outlives the container (runc 1.1.5
//! and crun 1.8.1 leave every one of them behind: measured).
//!
//! `delete` may run in another process, and in another mount namespace, than `create` did. The
//! record names the namespace (device and inode of its nsfs file): if it is not the caller's,
//! the namespace is found (through its `path` in the config when it was joined, else through a
//! process in it) and entered with setns(2) for the unmounts, by a forked helper process (the
//! caller's thread never moves). An inherited namespace with no process left in it is gone,
//! and its mounts with it; a joined one that cannot be reached is an error, since a file
//! elsewhere may still pin it (and its mounts).
//!
//! Mount ids and namespace inodes are reused once freed: a namespace that died with the
//! container's init can have its inode given to a new one (the caller's own, even), and a mount
//! id to another mount. So a recorded mount counts as still there only if the id is in the
//! namespace's mountinfo *at the recorded mount point* (which lies under the rootfs); anything
//! else is not the container's mount and is left alone.
//!
//! A record that ends on a `pending` intent was cut by a kill in a step: that step's mounts are
//! the ones under the rootfs that are neither in the intent's list nor recorded (`cut_step`).
//!
//! Each recorded mount is taken down in reverse order (in passes, for the ones a mount of the
//! container's hides), only after checking that it is still
//! the one recorded: its mount point is opened without following any symlink (`RESOLVE_NO_SYMLINKS`: a container may have
//! replaced a directory with a link), and statx(2)'s mount id of what was opened must be the
//! recorded id, or one of the mounts stacked on it (which the container made on top, and which
//! go first). The unmount is `umount2(/proc/self/fd/N, MNT_DETACH)` on that very descriptor, so
//! nothing is looked up twice, and with MNT_DETACH whatever is mounted below it goes too.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, ResolveFlag};
use nix::mount::MntFlags;
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;

use crate::rootfs::record::{parse_record, read_mountinfo, under, NsId};
use crate::rootfs::record::{MountInfo, Recorded};
use crate::{sys, Error};

/// How long the unmount helper may take.
const HELPER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How many mounts stacked on a recorded one are taken off before giving up.
const MAX_STACKED: usize = 64;

/// Unmounts every mount recorded at `path` (nothing if there is no record), in the mount
/// namespace they were made in, for the container whose rootfs is `rootfs` (from its state: a
/// record naming another root is not acted on, since every check of a mount is "under the
/// recorded root"). Every recorded mount is tried; the first failure is returned.
pub fn unmount_recorded(path: &Path, rootfs: &Path) -> Result<(), Error> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::MountRecord {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let Some(rec) = parse_record(&text, path)? else {
        return Ok(());
    };
    if rec.root != rootfs {
        return Err(Error::MountRecordRoot {
            path: path.to_path_buf(),
            root: rootfs.to_path_buf(),
        });
    }
    if rec.mounts.is_empty() && rec.pending.is_none() {
        return Ok(());
    }
    let target = if NsId::of(Path::new("/proc/thread-self/ns/mnt"))?.same(&rec.ns) {
        None
    } else {
        match (find_namespace(&rec), &rec.ns_path) {
            (Some(target), _) => Some(target),
            // A joined namespace outlives its processes, pinned by its file (a bind-mounted
            // nsfs file, as `ip netns` and CNI make): one that cannot be reached is not gone.
            (None, Some(ns_path)) => {
                return Err(Error::MountNamespaceUnreachable {
                    path: ns_path.clone(),
                })
            }
            // The runtime's own, inherited: with no process left in it, it is gone, and its
            // mounts with it.
            (None, None) => return Ok(()),
        }
    };
    // In a forked helper: setns(2) into another mount namespace would reset the calling
    // thread's root and cwd (a chrooted caller would leave its chroot), a failed return would
    // leave it in the container's namespace for what the caller does next, and the
    // unshare(CLONE_FS) setns needs in a multi-threaded process is for good. The helper is
    // single-threaded and its own changes die with it.
    let done = sys::run_in_child(HELPER_TIMEOUT, || {
        in_namespace(target.as_ref().map(AsFd::as_fd), &rec).map_err(|e| error_chain(&e))
    })
    .map_err(|source| Error::UnmountHelper {
        path: path.to_path_buf(),
        source,
    })?;
    done.map_err(|chain| Error::UnmountRecorded {
        path: path.to_path_buf(),
        source: HelperFailure(chain),
    })
}

/// The helper's work: enters `target` (none: it is already in the namespace), unmounts.
fn in_namespace(target: Option<BorrowedFd<'_>>, rec: &Recorded) -> Result<(), Error> {
    // Opened before setns, in our own namespace: the one entered may have no /proc, and
    // /proc/self/fd/N is what umount2 is given. The helper's own: it is a new process.
    let proc_self = open_dir(Path::new("/proc/thread-self"))?;
    if let Some(target) = target {
        nix::sched::setns(target, CloneFlags::CLONE_NEWNS).map_err(|source| Error::Setns {
            ns: "mount",
            source,
        })?;
    }
    unmount_all(rec, proc_self.as_fd())
}

/// An error and its causes, joined by `: ` (how the binary prints a chain).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// The failure the unmount helper reported: its error chain, as text (it cannot send the
/// typed error across the process boundary).
#[derive(Debug)]
pub struct HelperFailure(String);

impl std::fmt::Display for HelperFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HelperFailure {}

fn open_dir(path: &Path) -> Result<OwnedFd, Error> {
    sys::open(path, OFlag::O_DIRECTORY | OFlag::O_RDONLY).map_err(|source| Error::Open {
        path: path.to_path_buf(),
        source,
    })
}

/// An fd of the recorded mount namespace: through its `path` when it was joined (and only
/// so), else through a process that is in it.
///
/// A joined namespace is never looked for among processes. Once its path no longer holds it,
/// the namespace may be gone, and nsfs inode numbers are reused (the kernel's `proc_alloc_inum`
/// hands a freed number to the next namespace made): a scan would enter an unrelated mount
/// namespace that happens to have the number now, and report its unmounts done. Seen as a
/// flake of `a_pinned_joined_namespace_is_reached_through_its_path` next to tests that make
/// mount namespaces all the time.
fn find_namespace(rec: &Recorded) -> Option<OwnedFd> {
    let ns = rec.ns;
    if let Some(path) = &rec.ns_path {
        let fd = sys::open(path, OFlag::O_RDONLY).ok()?;
        return NsId::of_fd(fd.as_fd(), path)
            .ok()
            .filter(|id| id.same(&ns))
            .map(|_| fd);
    }
    let procs = std::fs::read_dir("/proc").ok()?;
    procs.flatten().find_map(|e| {
        let name = e.file_name();
        name.to_str()?.parse::<u32>().ok()?;
        let path = e.path().join("ns/mnt");
        let st = nix::sys::stat::stat(&path).ok()?;
        if (st.st_dev, st.st_ino) != (ns.dev, ns.ino) {
            return None;
        }
        // The process may have exited (and its pid been reused) since: check the open fd.
        let fd = sys::open(&path, OFlag::O_RDONLY).ok()?;
        NsId::of_fd(fd.as_fd(), &path)
            .ok()
            .filter(|id| id.same(&ns))
            .map(|_| fd)
    })
}

/// Unmounts the recorded mounts in reverse order, in passes: a mount the container covered
/// (a tmpfs it stacked on /dev hides the recorded /dev/pts) cannot be reached by its path, and
/// is tried again after the others; detaching the one below usually takes it along. Each pass
/// reads mountinfo once (not once per mount: that was quadratic in the number of mounts), so a
/// mount another one of the pass took along is only found gone at the next. Stops when a pass
/// changes nothing, with the first error of that pass.
fn unmount_all(rec: &Recorded, proc_self: BorrowedFd<'_>) -> Result<(), Error> {
    let slash = open_dir(Path::new("/"))?;
    let info = mountinfo(proc_self)?;
    let cut = match &rec.pending {
        Some(before) => cut_step(rec, before, &info),
        None => Vec::new(),
    };
    let mut pending = on_the_bind(rec.mounts.iter().chain(&cut).collect(), &rec.root, &info);
    pending.reverse();
    for _ in 0..pending.len() + MAX_STACKED {
        let info = mountinfo(proc_self)?;
        let before = pending.len();
        let mut first = None;
        let mut unstacked = false;
        pending.retain(|(id, path)| {
            match unmount_one(*id, path, &info, slash.as_fd(), proc_self) {
                Ok(Unmounted::Done) => false,
                Ok(Unmounted::Stacked) => {
                    unstacked = true;
                    true
                }
                Err(e) => {
                    first.get_or_insert(e);
                    true
                }
            }
        });
        match first {
            None if pending.is_empty() => return Ok(()),
            Some(e) if pending.len() == before && !unstacked => return Err(e),
            _ => {}
        }
    }
    Err(Error::UnsafeUnmount {
        id: pending.first().map_or(0, |m| m.0),
        path: pending.first().map_or_else(PathBuf::new, |m| m.1.clone()),
        reason: "too many mounts are stacked on it",
    })
}

/// The recorded mounts that are the container's: where the rootfs was bound onto itself (the
/// first mount at the root), the bind and the mounts stacked on it; one that is not (its id
/// reused by a mount elsewhere under the rootfs, or a stranger's that the record took in) is
/// left alone. Mounts that are gone stay in the list (they are found gone when unmounted).
fn on_the_bind<'a>(
    mounts: Vec<&'a (u64, PathBuf)>,
    root: &Path,
    info: &[MountInfo],
) -> Vec<&'a (u64, PathBuf)> {
    let Some(bind) = mounts.iter().find(|(_, p)| p == root).map(|m| m.0) else {
        return mounts;
    };
    mounts
        .into_iter()
        .filter(|(id, _)| {
            *id == bind || !info.iter().any(|m| m.id == *id) || descends(info, *id, bind)
        })
        .collect()
}

/// The mounts of a step the child was killed in (the record ends on its `pending` line): every
/// mount under the rootfs that was not there before the step (`before`) and is not recorded,
/// in mount order.
fn cut_step(rec: &Recorded, before: &[u64], info: &[MountInfo]) -> Vec<(u64, PathBuf)> {
    info.iter()
        .filter(|m| {
            under(&rec.root, &m.mount_point)
                && !before.contains(&m.id)
                && !rec.mounts.iter().any(|(id, _)| *id == m.id)
        })
        .map(|m| (m.id, m.mount_point.clone()))
        .collect()
}

fn mountinfo(proc_self: BorrowedFd<'_>) -> Result<Vec<MountInfo>, Error> {
    let fd = sys::openat(
        Some(proc_self),
        Path::new("mountinfo"),
        OFlag::O_RDONLY,
        Mode::empty(),
    )
    .map_err(|e| Error::Mountinfo { source: e.into() })?;
    read_mountinfo(&std::fs::File::from(fd))
}

/// True if `top` is stacked on `id` (one of its descendants in the mount tree).
fn descends(info: &[MountInfo], top: u64, id: u64) -> bool {
    let mut cur = top;
    for _ in 0..info.len() {
        match info.iter().find(|m| m.id == cur) {
            Some(m) if m.parent == id => return true,
            Some(m) if m.parent != m.id => cur = m.parent,
            _ => return false,
        }
    }
    false
}

/// What one try at a recorded mount did.
enum Unmounted {
    /// It is unmounted, or was not there any more.
    Done,
    /// A mount stacked on it was taken off: it is tried again with the next mountinfo.
    Stacked,
}

/// Unmounts the mount `id` at `path` (under the rootfs: checked when the record was read), if
/// it is still there in `info`, or the topmost mount stacked on it.
fn unmount_one(
    id: u64,
    path: &Path,
    info: &[MountInfo],
    slash: BorrowedFd<'_>,
    proc_self: BorrowedFd<'_>,
) -> Result<Unmounted, Error> {
    if !info.iter().any(|m| m.id == id && m.mount_point == path) {
        return Ok(Unmounted::Done);
    }
    let fd = sys::openat2(
        slash,
        path,
        OFlag::O_PATH | OFlag::O_NOFOLLOW,
        Mode::empty(),
        ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS,
    )
    .map_err(|source| Error::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let top = sys::mount_id(fd.as_fd()).map_err(|source| Error::Stat {
        path: path.to_path_buf(),
        source,
    })?;
    if top != id && !descends(info, top, id) {
        return Err(Error::UnsafeUnmount {
            id,
            path: path.to_path_buf(),
            reason: "a mount it does not hold covers it",
        });
    }
    umount_fd(fd.as_fd(), proc_self, path)?;
    Ok(match top == id {
        true => Unmounted::Done,
        false => Unmounted::Stacked,
    })
}

/// `umount2(/proc/self/fd/N, MNT_DETACH)`, through our own /proc (the namespace we are in may
/// have none): the magic link names exactly the mount that was checked.
fn umount_fd(fd: BorrowedFd<'_>, proc_self: BorrowedFd<'_>, path: &Path) -> Result<(), Error> {
    let fds = sys::openat(
        Some(proc_self),
        Path::new("fd"),
        OFlag::O_DIRECTORY | OFlag::O_RDONLY,
        Mode::empty(),
    )
    .map_err(|source| Error::Open {
        path: "/proc/self/fd".into(),
        source,
    })?;
    nix::unistd::fchdir(fds.as_raw_fd()).map_err(|source| Error::Chdir {
        path: "/proc/self/fd".into(),
        source,
    })?;
    let name = fd.as_raw_fd().to_string();
    match nix::mount::umount2(Path::new(&name), MntFlags::MNT_DETACH) {
        // Gone between the check and now (MNT_DETACH of a mount below took it): done.
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(source) => Err(Error::Umount {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: u64, parent: u64, p: &str) -> MountInfo {
        MountInfo {
            id,
            parent,
            mount_point: p.into(),
        }
    }

    #[test]
    fn only_mounts_on_the_rootfs_bind_are_the_containers() {
        // 20 is under the rootfs but not on the bind (a stranger's, or a reused id).
        let info = [
            m(1, 1, "/"),
            m(20, 1, "/r/x"),
            m(9, 1, "/r"),
            m(10, 9, "/r/proc"),
            m(11, 10, "/r/proc/sys"),
        ];
        let rec: Vec<(u64, PathBuf)> = vec![
            (9, "/r".into()),
            (10, "/r/proc".into()),
            (20, "/r/x".into()),
            (11, "/r/proc/sys".into()),
            (30, "/r/gone".into()),
        ];
        let kept: Vec<u64> = on_the_bind(rec.iter().collect(), Path::new("/r"), &info)
            .iter()
            .map(|m| m.0)
            .collect();
        assert_eq!(kept, [9, 10, 11, 30]);
        // No bind: nothing to check against.
        let kept = on_the_bind(rec[1..].iter().collect(), Path::new("/r"), &info);
        assert_eq!(kept.len(), 4);
    }

    #[test]
    fn a_record_of_another_root_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mounts");
        std::fs::write(&path, "ns 1 2 -\nroot /\nmount 5 /etc\n").unwrap();
        match unmount_recorded(&path, Path::new("/b/rootfs")) {
            Err(Error::MountRecordRoot { root, .. }) => assert_eq!(root, Path::new("/b/rootfs")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_cut_step_is_every_new_unrecorded_mount_under_the_rootfs() {
        let info = [
            m(1, 1, "/"),
            m(5, 1, "/b"),
            m(9, 5, "/b/r"),
            m(10, 9, "/b/r/proc"),
            m(11, 9, "/b/r/dev"),
            m(12, 11, "/b/r/dev/pts"),
            m(13, 1, "/elsewhere"),
        ];
        let rec = Recorded {
            ns: NsId {
                dev: 1,
                ino: 2,
                unique: None,
            },
            ns_path: None,
            root: "/b/r".into(),
            mounts: vec![(10, "/b/r/proc".into())],
            pending: Some(vec![10]),
        };
        // Killed in the first step: nothing recorded, the bind and all on it are the step's.
        let first = Recorded {
            mounts: vec![],
            pending: Some(vec![]),
            ..rec
        };
        assert_eq!(
            cut_step(&first, &[], &info),
            [
                (9, "/b/r".into()),
                (10, "/b/r/proc".into()),
                (11, "/b/r/dev".into()),
                (12, "/b/r/dev/pts".into())
            ]
        );
        let rec = Recorded {
            mounts: vec![(9, "/b/r".into()), (10, "/b/r/proc".into())],
            pending: Some(vec![9, 10]),
            ..first
        };
        assert_eq!(
            cut_step(&rec, &[9, 10], &info),
            [(11, "/b/r/dev".into()), (12, "/b/r/dev/pts".into())]
        );
    }

    #[test]
    fn stacked_mounts_are_descendants() {
        let d = |id, parent| m(id, parent, "/r/dev");
        let info = [d(1, 1), d(10, 1), d(11, 10), d(12, 11), d(20, 1)];
        assert!(descends(&info, 11, 10));
        assert!(descends(&info, 12, 10));
        assert!(!descends(&info, 20, 10));
        assert!(!descends(&info, 10, 11));
        assert!(!descends(&info, 99, 10));
    }
}
