//! Device nodes and `/dev` symlinks (runtime-spec config-linux.md
//! "Devices", "Default Devices"; runc `createDevices`, `setupDevSymlinks`,
//! `setupPtmx`).
//!
//! mknod(2) needs CAP_MKNOD in the initial user namespace; inside a user
//! namespace it fails with EPERM and, like runc, we bind-mount the host's
//! node at the same path instead. The umask is cleared while creating nodes
//! so `fileMode` is exact.

use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::mount::MsFlags;
use nix::sys::stat::{makedev, mknodat, umask, Mode};
use nix::unistd::{fchownat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};

use crate::resolve::{Create, Root};
use crate::rootfs::DevicePlan;
use crate::{sys, Error};

/// Restores the umask on drop.
struct UmaskGuard(Mode);

impl Drop for UmaskGuard {
    fn drop(&mut self) {
        umask(self.0);
    }
}

fn kind_char(d: &DevicePlan) -> char {
    if d.kind == nix::sys::stat::SFlag::S_IFBLK {
        'b'
    } else if d.kind == nix::sys::stat::SFlag::S_IFIFO {
        'p'
    } else {
        'c'
    }
}

/// Creates every planned device node. Without `may_bind` (no mount is to be made in the
/// namespace the container shares: see `plan::mounts_under_root`) a node that mknod(2) refuses
/// is an error, never a bind mount.
pub(crate) fn create_devices(
    root: &Root,
    devices: &[DevicePlan],
    may_bind: bool,
) -> Result<(), Error> {
    let _guard = UmaskGuard(umask(Mode::empty()));
    for d in devices {
        create_device(root, d, may_bind)?;
    }
    Ok(())
}

fn create_device(root: &Root, d: &DevicePlan, may_bind: bool) -> Result<(), Error> {
    let (parent, name) = root.resolve_parent(&d.path)?;
    let dir = parent.as_raw_fd();
    let res = mknodat(
        Some(dir),
        name.as_os_str(),
        d.kind,
        Mode::from_bits_truncate(d.mode),
        makedev(d.major, d.minor),
    );
    match res {
        Ok(()) => fchownat(
            Some(dir),
            name.as_os_str(),
            Some(Uid::from_raw(d.uid)),
            Some(Gid::from_raw(d.gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|source| Error::Chown {
            path: d.path.clone(),
            uid: d.uid,
            gid: d.gid,
            source,
        }),
        // Already there (e.g. in the image): keep it, as runc.
        Err(Errno::EEXIST) => Ok(()),
        Err(Errno::EPERM) if may_bind => bind_host_device(root, d),
        Err(source) => Err(Error::Mknod {
            path: d.path.clone(),
            kind: kind_char(d),
            major: d.major,
            minor: d.minor,
            source,
        }),
    }
}

fn bind_host_device(root: &Root, d: &DevicePlan) -> Result<(), Error> {
    let target = root.resolve(&d.path, Create::File)?;
    let src = sys::open(&d.path, OFlag::O_PATH).map_err(|source| Error::Open {
        path: d.path.clone(),
        source,
    })?;
    nix::mount::mount(
        Some(&sys::fd_path(src.as_fd())),
        &sys::fd_path(target.as_fd()),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|source| Error::Mount {
        src: d.path.display().to_string(),
        destination: d.path.clone(),
        fstype: "bind".into(),
        flags: MsFlags::MS_BIND,
        data: String::new(),
        source,
    })
}

/// `/dev/fd`, `/dev/std{in,out,err}`, `/dev/core` (if the host has
/// /proc/kcore) and, with a devpts at /dev/pts, `/dev/ptmx -> pts/ptmx`.
pub(crate) fn dev_symlinks(root: &Root, ptmx: bool) -> Result<(), Error> {
    let dev = root.resolve(Path::new("/dev"), Create::Dir)?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    if ptmx {
        match unlinkat(Some(dev.as_raw_fd()), "ptmx", UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(source) => {
                return Err(Error::Create {
                    path: "/dev/ptmx".into(),
                    source,
                })
            }
        }
        links.push(("pts/ptmx", "ptmx"));
    }
    for (target, name) in links {
        match symlinkat(target, Some(dev.as_raw_fd()), name) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(source) => {
                return Err(Error::Create {
                    path: Path::new("/dev").join(name),
                    source,
                })
            }
        }
    }
    Ok(())
}
