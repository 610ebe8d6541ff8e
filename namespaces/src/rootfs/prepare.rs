//! Before pivot_root: propagation, the rootfs bind, the mounts, /dev.

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;

use crate::resolve::Root;
use crate::rootfs::mount::{mount_entry, sys_mount};
use crate::rootfs::record::Recorder;
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
    /// Before pivot: in the container's new mount namespace, sets `/` to
    /// `linux.rootfsPropagation` (default `MS_SLAVE|MS_REC`, as runc, so
    /// nothing we mount propagates to the host) and makes the rootfs a mount
    /// point (`MS_BIND|MS_REC`); then performs every `mounts[]` entry in order,
    /// then, unless `/dev` is a bind mount, creates the device nodes, the
    /// `/dev` symlinks and `/dev/ptmx`.
    ///
    /// Without a mount namespace of its own (see `plan::MountNs`) the caller's `/` is left as
    /// it is: the rootfs is bound onto itself (as runc does) and only that bind is made
    /// `MS_SLAVE|MS_REC`, so that what is mounted on it propagates nowhere (on a shared `/`
    /// the bind would be a peer of it, and every mount would be copied beneath, and into the
    /// peer namespaces); every mount is written to the record as it is made (also when a step
    /// fails midway). With nothing to mount (see `plan::mounts_under_root`) there is no bind
    /// either: the namespace the container shares is left exactly as it was (runtime-spec
    /// config-linux.md: inherited), the device nodes are made with mknod(2) in the rootfs's
    /// own /dev, and one that would need a bind mount is an error.
    ///
    /// `cgroup_mounts` are the hierarchies to expose at `cgroup` mounts;
    /// `idmapped` the trees [`Rootfs::detach_idmapped`] made for the
    /// id-mapped ones.
    pub fn prepare(
        &self,
        cgroup_mounts: &[CgroupMount],
        mut idmapped: IdmappedTrees,
    ) -> Result<(), Error> {
        let bind_root = || {
            sys_mount(
                Some(&self.root),
                &self.root,
                &self.root,
                "bind",
                MsFlags::MS_BIND | MsFlags::MS_REC,
                "",
            )
        };
        let mut record = if self.private_mount_ns {
            let prop = self
                .propagation
                .unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC);
            sys_mount(None, Path::new("/"), Path::new("/"), "", prop, "")?;
            make_parent_private(&self.root)?;
            bind_root()?;
            None
        } else {
            let record = self.record.as_ref().ok_or(Error::MountRecordMissing)?;
            let mut recorder =
                Recorder::start(record, &self.root, self.joined_mount_ns.as_deref())?;
            if self.bind_root {
                recorder.track(|| {
                    bind_root()?;
                    let slave = MsFlags::MS_SLAVE | MsFlags::MS_REC;
                    sys_mount(None, &self.root, &self.root, "", slave, "")
                })?;
            }
            Some(recorder)
        };
        let mut step = |f: &mut dyn FnMut() -> Result<(), Error>| match &mut record {
            Some(r) => r.track(f),
            None => f(),
        };
        let root = Root::open(&self.root)?;
        for (i, m) in self.mounts.iter().enumerate() {
            let mut tree = idmapped.take(i);
            step(&mut || mount_entry(&root, m, cgroup_mounts, self.cgroupns, tree.take()))?;
        }
        if self.setup_dev {
            // Device nodes are bind mounts in a user namespace (see `devices`).
            step(&mut || devices::create_devices(&root, &self.devices, self.bind_root))?;
            devices::dev_symlinks(&root, self.ptmx_symlink)?;
        }
        Ok(())
    }
}
