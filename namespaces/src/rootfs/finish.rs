//! After pivot_root: masked paths, read-only paths, read-only root, and the
//! final root propagation.
//!
//! Masking (runtime-spec config-linux.md "Masked Paths": they "cannot be
//! read") bind-mounts /dev/null over files and mounts a read-only tmpfs over
//! directories. Both the masked path and /dev/null come from the (hostile)
//! image or from mounts the container controls, so (CVE-2025-31133,
//! CVE-2025-52565): the masked path is resolved inside the root
//! (`RESOLVE_IN_ROOT`: a symlink, absolute or climbing with `..`, never
//! leaves it) and what it names is masked, through the resolved fd, as runc
//! (1.1.5 to 1.5), crun and youki mask a symlink's target; /dev/null must be
//! a character device 1:3, checked on the very fd that is mounted. Missing
//! paths, dangling symlinks included, are skipped (runc and crun: the same).
//!
//! Read-only paths are bind-mounted onto themselves and remounted
//! `MS_RDONLY`, keeping the existing nosuid/nodev/noexec flags, which a user
//! namespace cannot clear (mount_namespaces(7) "locked" flags).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use nix::mount::MsFlags;
use nix::sys::stat::{fstat, major, minor, SFlag};

use crate::resolve::{file_type, Create, Root};
use crate::rootfs::mount::{remount_fd, sys_mount};
use crate::rootfs::record::Recorder;
use crate::rootfs::Rootfs;
use crate::{sys, Error};

/// Opens the container's /dev/null and checks it is the real null device.
fn open_dev_null(root: &Root) -> Result<OwnedFd, Error> {
    let path = Path::new("/dev/null");
    let not_null = || Error::NotDevNull { path: path.into() };
    let fd = root.open_nofollow(path)?.ok_or_else(not_null)?;
    let st = fstat(fd.as_raw_fd()).map_err(|source| Error::Stat {
        path: path.into(),
        source,
    })?;
    let is_chr = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFCHR;
    if !is_chr || major(st.st_rdev) != 1 || minor(st.st_rdev) != 3 {
        return Err(not_null());
    }
    Ok(fd)
}

fn mask(root: &Root, null: &mut Option<OwnedFd>, path: &Path) -> Result<(), Error> {
    let Some(fd) = root.resolve_existing(path)? else {
        return Ok(());
    };
    let t = file_type(fd.as_fd()).map_err(|source| Error::Stat {
        path: path.into(),
        source,
    })?;
    let target = sys::fd_path(fd.as_fd());
    if t == SFlag::S_IFDIR {
        return sys_mount(
            Some(Path::new("tmpfs")),
            &target,
            path,
            "tmpfs",
            MsFlags::MS_RDONLY,
            "",
        );
    }
    let null_fd = match null {
        Some(fd) => fd,
        None => null.insert(open_dev_null(root)?),
    };
    sys_mount(
        Some(&sys::fd_path(null_fd.as_fd())),
        &target,
        path,
        "",
        MsFlags::MS_BIND,
        "",
    )
}

/// Creates `process.cwd` (and its missing parents) inside the root, as runc does after
/// pivot_root and before anything is made read-only (libcontainer `prepareRootfs`:
/// `MkdirAll(cwd, 0755)`, as root, before the user is switched; crun the same: measured,
/// mode 0755 owned by 0:0 for a process running as 1000). A symlink on the way resolves
/// inside the root (an image's `/work -> /../../tmp/x` creates `/tmp/x` of the rootfs, never
/// a host directory).
fn create_cwd(root: &Root, cwd: &Path) -> Result<(), Error> {
    match root.resolve(cwd, Create::Dir) {
        Ok(_) => Ok(()),
        Err(Error::Resolve { source, .. }) => Err(Error::CreateCwd {
            path: cwd.into(),
            source,
        }),
        Err(e) => Err(e),
    }
}

fn make_readonly(root: &Root, path: &Path) -> Result<(), Error> {
    let Some(fd) = root.resolve_existing(path)? else {
        return Ok(());
    };
    let target = sys::fd_path(fd.as_fd());
    sys_mount(
        Some(&target),
        &target,
        path,
        "",
        MsFlags::MS_BIND | MsFlags::MS_REC,
        "",
    )?;
    // Re-resolve: the old fd still names the covered mount.
    let fd = root.resolve(path, Create::No)?;
    remount_fd(fd.as_fd(), path, MsFlags::MS_RDONLY | MsFlags::MS_REC, true)
}

impl Rootfs {
    /// After [`Rootfs::enter`]: creates `process.cwd` if it is missing, then
    /// `linux.maskedPaths`, `linux.readonlyPaths`,
    /// `root.readonly`, then `linux.rootfsPropagation` on "/" (runc applies it
    /// after pivot, runc#3137). Without a mount namespace of the container's own
    /// "/" is the rootfs's bind onto itself (see `prepare`), never the caller's, and the
    /// masks and read-only binds (in a joined namespace: see `plan::refuse_sys_restrictions`)
    /// are written to the record as they are made, for `delete` to take down.
    pub fn finish(&self) -> Result<(), Error> {
        let root = Root::open(Path::new("/"))?;
        if let Some(cwd) = &self.cwd {
            create_cwd(&root, cwd)?;
        }
        let restrict = || {
            let mut null = None;
            for p in &self.masked {
                mask(&root, &mut null, p)?;
            }
            drop(null);
            for p in &self.readonly_paths {
                make_readonly(&root, p)?;
            }
            Ok(())
        };
        let any = !self.masked.is_empty() || !self.readonly_paths.is_empty();
        match (self.private_mount_ns, &self.record) {
            (true, _) => restrict()?,
            (false, Some(record)) => {
                let recorded = if any {
                    Recorder::resume(record, &self.root).and_then(|mut r| r.track(restrict))
                } else {
                    Ok(())
                };
                record.close_mountinfo();
                recorded?;
            }
            (false, None) => return Err(Error::MountRecordMissing),
        }
        if self.readonly {
            remount_fd(root.fd(), Path::new("/"), MsFlags::MS_RDONLY, true)?;
        }
        if let Some(prop) = self.propagation {
            sys_mount(None, Path::new("/"), Path::new("/"), "", prop, "")?;
        }
        Ok(())
    }
}
