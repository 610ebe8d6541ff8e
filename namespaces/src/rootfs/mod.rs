//! The container's root filesystem: the mount plan converted from the spec
//! once in the parent, then executed by the child in its new mount
//! namespace.
//!
//! Order (runc libcontainer/rootfs_linux.go, runtime-spec config.md
//! "Mounts" and config-linux.md): [`Rootfs::prepare`] sets propagation on
//! `/`, makes the rootfs a mount point and performs `mounts[]` in order,
//! then creates device nodes and `/dev` symlinks; [`Rootfs::enter`]
//! pivots; [`Rootfs::finish`] masks paths, makes paths read-only and
//! applies the final propagation.
//!
//! Without a mount namespace of its own (runtime-spec config-linux.md: a namespace that is not
//! listed is inherited, one with a `path` is joined), the mounts are made in that namespace as
//! runc makes them (see `plan::MountNs`), without touching the propagation of its `/`, and the
//! rootfs is bound onto itself only if something is to be mounted under it
//! (`plan::mounts_under_root`); each mount is written to a [`MountRecord`] as it is made,
//! `enter` chroots, masked and read-only paths (in a joined namespace only) are recorded the
//! same way, and [`unmount_recorded`] takes them all down when the container goes (see
//! `record`, `release`).

mod devices;
mod enter;
mod finish;
mod idmapped;
mod mount;
mod plan;
mod prepare;
mod record;
mod release;

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use oci_spec::runtime::Spec;

use crate::Error;

pub use idmapped::IdmappedTrees;
pub(crate) use plan::{DevicePlan, MountKind, MountPlan};
pub use record::MountRecord;
pub use release::{unmount_recorded, HelperFailure};

/// One cgroup hierarchy to expose at a `cgroup` mount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupMount {
    /// Directory name under the mount destination (`cpu`, `memory`,
    /// `systemd`, `unified`, or a comma-joined co-mount like `cpu,cpuacct`,
    /// for which a symlink per part is created).
    pub name: String,
    /// The container's cgroup directory in this hierarchy on the host,
    /// bind-mounted when there is no cgroup namespace.
    pub host_dir: PathBuf,
    /// `cgroup` (v1) or `cgroup2`.
    pub fs_type: String,
    /// Mount data for a fresh mount in a cgroup namespace (`cpu`,
    /// `name=systemd`, empty for cgroup2).
    pub options: String,
}

/// Validated rootfs plan.
#[derive(Clone, Debug)]
pub struct Rootfs {
    pub(crate) root: PathBuf,
    pub(crate) readonly: bool,
    pub(crate) propagation: Option<MsFlags>,
    pub(crate) mounts: Vec<MountPlan>,
    pub(crate) devices: Vec<DevicePlan>,
    /// /dev is not a bind mount: create devices and symlinks (runc `needsSetupDev`).
    pub(crate) setup_dev: bool,
    /// A devpts is mounted at /dev/pts: /dev/ptmx -> pts/ptmx.
    pub(crate) ptmx_symlink: bool,
    pub(crate) masked: Vec<PathBuf>,
    pub(crate) readonly_paths: Vec<PathBuf>,
    /// The container has its own cgroup namespace (created or joined).
    pub(crate) cgroupns: bool,
    /// The container gets a new mount namespace: without one (shared with the runtime or
    /// joined) every mount is recorded in `record`, the caller's `/` keeps its propagation,
    /// and the root is entered with chroot(2).
    pub(crate) private_mount_ns: bool,
    /// The rootfs is bound onto itself before anything is mounted under it: always in a
    /// mount namespace of the container's own (pivot_root needs a mount), and outside one
    /// only when something will be mounted (see `plan::mounts_under_root`).
    pub(crate) bind_root: bool,
    /// The `path` of the joined mount namespace, written to the record.
    pub(crate) joined_mount_ns: Option<PathBuf>,
    /// Where the mounts made without a mount namespace of the container's own are written.
    pub(crate) record: Option<MountRecord>,
    /// `process.cwd`, created inside the root if missing (as runc does, for images whose
    /// `WORKDIR` is not in their layers).
    pub(crate) cwd: Option<PathBuf>,
}

impl Rootfs {
    /// Converts and validates the spec: `root.path` (absolute or relative
    /// to `bundle`, must be a directory), `mounts[]`, `linux.devices`,
    /// `linux.rootfsPropagation`, `linux.maskedPaths`, `linux.readonlyPaths`.
    pub fn from_spec(spec: &Spec, bundle: &Path) -> Result<Self, Error> {
        plan::from_spec(spec, bundle)
    }

    /// Absolute (canonical) rootfs path, for state.json.
    pub fn root_path(&self) -> &Path {
        &self.root
    }

    /// True if `root.readonly` is set.
    pub fn readonly(&self) -> bool {
        self.readonly
    }

    /// True if the container has no mount namespace of its own: its mounts are made in the
    /// caller's (or a joined) one, and [`Rootfs::record_mounts`] must be given a record.
    pub fn needs_mount_record(&self) -> bool {
        !self.private_mount_ns
    }

    /// Where the child writes each mount it makes outside a mount namespace of its own, for
    /// [`unmount_recorded`] to take them down.
    pub fn record_mounts(&mut self, record: MountRecord) {
        self.record = Some(record);
    }

    /// Rewrites each mount's filesystem data with `label(fstype, data)` (`"bind"` for bind
    /// mounts): how the runtime adds SELinux's `context="..."` for `linux.mountLabel` to the
    /// mounts that take one, keeping that policy out of this crate.
    pub fn label_mounts(&mut self, label: impl Fn(&str, &str) -> String) {
        for m in &mut self.mounts {
            m.opts.data = label(&m.fstype, &m.opts.data);
        }
    }
}
