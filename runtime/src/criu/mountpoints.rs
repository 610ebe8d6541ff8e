//! The mount points a restore needs in the rootfs (runc's `prepareCriuRestoreMounts`): CRIU
//! mounts onto existing paths only, and a fresh copy of an image's rootfs lacks the ones `create`
//! made. Like runc, nothing is made under a tmpfs mount (CRIU restores a tmpfs with its
//! content). Paths are resolved inside the rootfs (`openat2(RESOLVE_IN_ROOT)`): an image's
//! symlinks cannot send a mkdir to the host.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Component, Path};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

use super::MountPoint;
use crate::error::{Error, Result};

fn open_in(root: &OwnedFd, path: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = nix::fcntl::openat2(root.as_raw_fd(), path, how)?;
    // SAFETY: openat2 returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Makes `dest` (a directory, or with `file` an empty file) inside `root`, parents included.
fn make(root: &OwnedFd, dest: &Path, file: bool) -> Result<()> {
    let parts: Vec<_> = dest
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    let mut at = std::path::PathBuf::from("/");
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let parent = open_in(root, &at, OFlag::O_PATH | OFlag::O_DIRECTORY)
            .map_err(|e| Error::io("open in rootfs", &at)(e.into()))?;
        at.push(part);
        if open_in(root, &at, OFlag::O_PATH).is_ok() {
            continue;
        }
        let made = if last && file {
            nix::fcntl::openat(
                Some(parent.as_raw_fd()),
                part.as_os_str(),
                OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_WRONLY
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o644),
            )
            .map(|fd| {
                // SAFETY: openat returned a new descriptor that nothing else owns.
                drop(unsafe { OwnedFd::from_raw_fd(fd) })
            })
        } else {
            nix::sys::stat::mkdirat(
                Some(parent.as_raw_fd()),
                part.as_os_str(),
                Mode::from_bits_truncate(0o755),
            )
        };
        match made {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(Error::io("create mount point", &at)(e.into())),
        }
    }
    Ok(())
}

/// Whether `dest` lies under one of the tmpfs destinations.
fn under_tmpfs(dest: &str, points: &[MountPoint]) -> bool {
    points
        .iter()
        .filter(|p| p.tmpfs)
        .any(|p| dest.starts_with(&format!("{}/", p.destination.trim_end_matches('/'))))
}

/// Makes every mount point of `points` in the rootfs at `rootfs`, except under a tmpfs.
pub(crate) fn prepare_mount_points(rootfs: &Path, points: &[MountPoint]) -> Result<()> {
    let root = std::fs::File::open(rootfs).map_err(Error::io("open rootfs", rootfs))?;
    let root = OwnedFd::from(root);
    for p in points
        .iter()
        .filter(|p| !under_tmpfs(&p.destination, points))
    {
        let file = p
            .bind_source
            .as_ref()
            .is_some_and(|s| std::fs::metadata(s).is_ok_and(|m| !m.is_dir()));
        make(&root, Path::new(&p.destination), file)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(dest: &str, tmpfs: bool, bind: Option<&str>) -> MountPoint {
        MountPoint {
            destination: dest.into(),
            bind_source: bind.map(Into::into),
            tmpfs,
        }
    }

    #[test]
    fn makes_dirs_and_files_but_nothing_under_a_tmpfs_or_outside() {
        let root = tempfile::tempdir().expect("test");
        let host = tempfile::tempdir().expect("test");
        let file = host.path().join("f");
        std::fs::write(&file, "x").expect("test");
        // A symlink pointing outside resolves inside the rootfs.
        std::os::unix::fs::symlink(host.path(), root.path().join("escape")).expect("test");
        let points = [
            point("/dev", true, None),
            point("/dev/pts", false, None),
            point(
                "/data/sub",
                false,
                Some(host.path().to_str().expect("test")),
            ),
            point("/etc/hosts", false, Some(file.to_str().expect("test"))),
        ];
        prepare_mount_points(root.path(), &points).expect("test");
        // Refused or made inside: either way nothing appears on the host.
        let _ = prepare_mount_points(root.path(), &[point("/escape/made", false, None)]);
        assert!(root.path().join("dev").is_dir());
        assert!(!root.path().join("dev/pts").exists());
        assert!(root.path().join("data/sub").is_dir());
        assert!(root.path().join("etc/hosts").is_file());
        assert!(
            !host.path().join("made").exists(),
            "followed a symlink out of the rootfs"
        );
    }
}
