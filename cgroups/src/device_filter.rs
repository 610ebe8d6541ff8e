//! The eBPF device filter on the container's cgroup2 directory: attaching
//! it, replacing it on update, listing and removing it.
//!
//! Replacement follows runc's `loadAttachCgroupDeviceFilter`: the new program
//! is attached (BPF_F_ALLOW_MULTI) *before* the old ones are detached. With
//! several programs attached the kernel allows an access only if every one
//! allows it (`__cgroup_bpf_check_dev_permission`), so during the swap the
//! effective filter is the intersection of old and new — never more
//! permissive than either, and never absent. A failed detach leaves both
//! attached: stricter, not looser.
//!
//! hako names its programs [`PROG_NAME`] and only detaches programs with that
//! name. A device program someone else attached (systemd, an administrator)
//! can only restrict further, so it is left in place; runc instead detaches
//! every program it can open. Programs whose id cannot be opened (EPERM/EACCES
//! under an LSM policy, as runc notes) or that vanished (ENOENT) are skipped.
//!
//! On hybrid hosts runc only uses the v1 devices controller and so does
//! [`Cgroup::apply`]; [`Cgroup::apply_device_filter`] can still attach the
//! filter to the hybrid cgroup2 directory explicitly (the root tests do, to
//! exercise the kernel path on such hosts).

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use crate::bpf::{device_program, sys};
use crate::devices::DeviceFilter;
use crate::{Cgroup, Error, Resources};

/// The name every device program hako loads carries (`bpftool prog` shows it).
pub const PROG_NAME: &str = "hako_devices";

fn open_dir(dir: &Path) -> Result<File, Error> {
    File::open(dir).map_err(|source| Error::OpenCgroupDir {
        path: dir.to_path_buf(),
        source,
    })
}

fn skippable(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EPERM | libc::EACCES | libc::ENOENT)
    )
}

/// hako's device programs attached to `cgroup` (the directory `dir`).
fn ours(dir: &Path, cgroup: &File) -> Result<Vec<(u32, OwnedFd)>, Error> {
    let ids = sys::query_device(cgroup.as_fd()).map_err(|source| Error::BpfQuery {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for id in ids {
        let fd = match sys::prog_fd_by_id(id) {
            Ok(fd) => fd,
            Err(e) if skippable(&e) => continue,
            Err(source) => return Err(Error::BpfProgram { id, source }),
        };
        let (_, name) =
            sys::prog_id_and_name(fd.as_fd()).map_err(|source| Error::BpfProgram { id, source })?;
        if name == PROG_NAME {
            out.push((id, fd));
        }
    }
    Ok(out)
}

/// Compile `filter`, attach it to the cgroup2 directory `dir`, then detach
/// the hako programs that were there before.
pub(crate) fn attach_filter(dir: &Path, filter: &DeviceFilter) -> Result<(), Error> {
    let cgroup = open_dir(dir)?;
    let old = ours(dir, &cgroup)?;
    let prog = device_program::compile(filter);
    let fd = sys::load_device_program(&prog, device_program::LICENSE, PROG_NAME).map_err(|e| {
        Error::BpfLoad {
            path: dir.to_path_buf(),
            insns: prog.len(),
            verifier: e
                .log
                .lines()
                .rfind(|l| !l.trim().is_empty())
                .unwrap_or_default()
                .to_string(),
            source: e.source,
        }
    })?;
    sys::attach_device(cgroup.as_fd(), fd.as_fd()).map_err(|source| Error::BpfAttach {
        path: dir.to_path_buf(),
        source,
    })?;
    // The cgroup holds its own reference now; `fd` may close.
    for (id, old_fd) in old {
        sys::detach_device(cgroup.as_fd(), old_fd.as_fd()).map_err(|source| Error::BpfDetach {
            path: dir.to_path_buf(),
            id,
            source,
        })?;
    }
    Ok(())
}

impl Cgroup {
    fn v2_dir_for_devices(&self) -> Result<&Path, Error> {
        self.v2_dir().ok_or(Error::ControllerMissing {
            field: "linux.resources.devices",
            controller: "cgroup2",
        })
    }

    /// Attaches the device rules of `res` as an eBPF program to this cgroup's
    /// cgroup2 directory, replacing a filter hako attached before (see the
    /// module docs for the order). Nothing happens when `res` carries no
    /// device rules. [`Cgroup::apply`] does this itself on unified hosts; on
    /// hybrid hosts it is only done when called explicitly.
    pub fn apply_device_filter(&self, res: &Resources) -> Result<(), Error> {
        match &res.devices {
            Some(filter) => attach_filter(self.v2_dir_for_devices()?, filter),
            None => Ok(()),
        }
    }

    /// Kernel ids of the device filters hako attached to this cgroup (at most
    /// one, except transiently during a replacement).
    pub fn device_filter_ids(&self) -> Result<Vec<u32>, Error> {
        let dir = self.v2_dir_for_devices()?;
        let cgroup = open_dir(dir)?;
        Ok(ours(dir, &cgroup)?.into_iter().map(|(id, _)| id).collect())
    }

    /// Detaches every device filter hako attached to this cgroup; returns how
    /// many. Removing the cgroup also releases them; this is for callers that
    /// keep the cgroup.
    pub fn remove_device_filter(&self) -> Result<usize, Error> {
        let dir = self.v2_dir_for_devices()?;
        let cgroup = open_dir(dir)?;
        let old = ours(dir, &cgroup)?;
        let n = old.len();
        for (id, fd) in old {
            sys::detach_device(cgroup.as_fd(), fd.as_fd()).map_err(|source| Error::BpfDetach {
                path: dir.to_path_buf(),
                id,
                source,
            })?;
        }
        Ok(n)
    }
}
