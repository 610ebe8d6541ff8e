//! Before pivot_root: propagation, the rootfs bind, the mounts, /dev.

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;

use crate::resolve::Root;
use crate::rootfs::mount::{mount_entry, sys_mount};
use crate::rootfs::{devices, CgroupMount, IdmappedTrees, Rootfs};
use crate::Error;

/// runc's rootfsParentMountPrivate: pivot_root(2) fails with EINVAL if the
/// parent mount of the new root is shared. mount(MS_PRIVATE) on a path that
/// is not a mount point is EINVAL, so walk up until one accepts it.
fn make_parent_private(root: &Path) -> Result<(), Error> {
    let mut path: PathBuf = root.to_path_buf();
    loop {
        match nix::mount::mount(
            None::<&str>,
            &path,
            None::<&str>,
            MsFlags::MS_PRIVATE,
            None::<&str>,
        ) {
            Ok(()) => return Ok(()),
            Err(Errno::EINVAL) if path != Path::new("/") => {
                path.pop();
            }
            Err(source) => {
                return Err(Error::Mount {
                    src: String::new(),
                    destination: path,
                    fstype: String::new(),
                    flags: MsFlags::MS_PRIVATE,
                    data: String::new(),
                    source,
                })
            }
        }
    }
}

impl Rootfs {
    /// In the container's new mount namespace, before pivot (without one, nothing: see
    /// `plan::without_mount_ns`): sets `/` to
    /// `linux.rootfsPropagation` (default `MS_SLAVE|MS_REC`, as runc, so
    /// nothing we mount propagates to the host), makes the rootfs a mount
    /// point (`MS_BIND|MS_REC`), performs every `mounts[]` entry in order,
    /// then, unless `/dev` is a bind mount, creates the device nodes, the
    /// `/dev` symlinks and `/dev/ptmx`.
    ///
    /// `cgroup_mounts` are the hierarchies to expose at `cgroup` mounts;
    /// `idmapped` the trees [`Rootfs::detach_idmapped`] made for the
    /// id-mapped ones.
    pub fn prepare(
        &self,
        cgroup_mounts: &[CgroupMount],
        mut idmapped: IdmappedTrees,
    ) -> Result<(), Error> {
        if !self.private_mount_ns {
            // The caller's (or a joined) mount namespace: nothing may be mounted there.
            return Ok(());
        }
        let prop = self
            .propagation
            .unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC);
        sys_mount(None, Path::new("/"), Path::new("/"), "", prop, "")?;
        make_parent_private(&self.root)?;
        sys_mount(
            Some(&self.root),
            &self.root,
            &self.root,
            "bind",
            MsFlags::MS_BIND | MsFlags::MS_REC,
            "",
        )?;
        let root = Root::open(&self.root)?;
        for (i, m) in self.mounts.iter().enumerate() {
            mount_entry(&root, m, cgroup_mounts, self.cgroupns, idmapped.take(i))?;
        }
        if self.setup_dev {
            devices::create_devices(&root, &self.devices)?;
            devices::dev_symlinks(&root, self.ptmx_symlink)?;
        }
        Ok(())
    }
}
