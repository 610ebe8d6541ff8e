//! Switching the root: pivot_root(2) or, with `--no-pivot`, MS_MOVE + chroot.
//!
//! pivot_root(".", ".") (pivot_root(2) NOTES, runc `pivotRoot`) stacks the
//! old root on top of the new one at "/"; it is then made a slave
//! recursively, so that the detach does not propagate to the host, and
//! lazily unmounted. This needs no temporary directory inside the
//! (possibly read-only) rootfs.
//!
//! Without a mount namespace of the container's own, chroot(2) alone, whatever `--no-pivot`
//! says: the namespace is shared with the caller or joined, and neither pivot_root nor MS_MOVE
//! may change it for the others.
//!
//! The no-pivot path (for ramfs roots, where pivot_root is EINVAL) moves the
//! rootfs mount over "/" and chroots into it. Unlike runc it does not try to
//! unmount the host mounts left underneath: chroot is escapable by a process
//! with CAP_SYS_CHROOT, which is why runc documents `--no-pivot` as unsafe.

use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags};

use crate::rootfs::mount::sys_mount;
use crate::rootfs::Rootfs;
use crate::{sys, Error};

fn chdir(path: &Path) -> Result<(), Error> {
    nix::unistd::chdir(path).map_err(|source| Error::Chdir {
        path: path.to_path_buf(),
        source,
    })
}

impl Rootfs {
    /// Makes the prepared rootfs the process's root and cwd "/": pivot_root, MS_MOVE with
    /// `no_pivot`, and chroot without a mount namespace of the container's own.
    pub fn enter(&self, no_pivot: bool) -> Result<(), Error> {
        let dir =
            sys::open(&self.root, OFlag::O_DIRECTORY | OFlag::O_RDONLY).map_err(|source| {
                Error::Open {
                    path: self.root.clone(),
                    source,
                }
            })?;
        nix::unistd::fchdir(dir.as_fd().as_raw_fd()).map_err(|source| Error::Chdir {
            path: self.root.clone(),
            source,
        })?;
        drop(dir);
        let dot = Path::new(".");
        if !self.private_mount_ns {
            // No mount namespace of our own: pivot_root would move every process of the
            // caller's (or the joined) namespace into the container's root, MS_MOVE would
            // move a mount of theirs. chroot only changes this process (runc's `chroot()`).
            nix::unistd::chroot(dot).map_err(|source| Error::Chroot {
                path: self.root.clone(),
                source,
            })?;
        } else if no_pivot {
            sys_mount(
                Some(&self.root),
                Path::new("/"),
                Path::new("/"),
                "",
                MsFlags::MS_MOVE,
                "",
            )?;
            nix::unistd::chroot(dot).map_err(|source| Error::Chroot {
                path: self.root.clone(),
                source,
            })?;
        } else {
            let old_root = sys::open(Path::new("/"), OFlag::O_DIRECTORY | OFlag::O_RDONLY)
                .map_err(|source| Error::Open {
                    path: "/".into(),
                    source,
                })?;
            nix::unistd::pivot_root(dot, dot).map_err(|source| Error::PivotRoot {
                path: self.root.clone(),
                source,
            })?;
            // The old root is now mounted on top of the new one at "/". Our cwd is still the
            // new root's own directory, *under* that stack: mount(2) resolves "." without
            // crossing onto the mount above (only umount2 looks up the topmost mount), so
            // MS_SLAVE|MS_REC on it would make the whole new tree a slave and undo every
            // `shared`/`rshared` the mounts asked for. Step onto the old root first (runc
            // `pivotRoot` does the same fchdir).
            nix::unistd::fchdir(old_root.as_raw_fd()).map_err(|source| Error::Chdir {
                path: "old root".into(),
                source,
            })?;
            drop(old_root);
            sys_mount(
                None,
                dot,
                Path::new("/"),
                "",
                MsFlags::MS_SLAVE | MsFlags::MS_REC,
                "",
            )?;
            nix::mount::umount2(dot, MntFlags::MNT_DETACH).map_err(|source| Error::Umount {
                path: "old root".into(),
                source,
            })?;
        }
        chdir(Path::new("/"))
    }
}
