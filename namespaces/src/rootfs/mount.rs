//! Performing one `mounts[]` entry inside the rootfs.
//!
//! Every destination is resolved inside the root (see [`crate::resolve`]) and
//! the mount targets `/proc/self/fd/<fd>`. Flags that mount(2) ignores on a
//! new bind mount (ro, nosuid, ...) need a second `MS_REMOUNT|MS_BIND` call
//! (mount(2) "Creating a bind mount"); in a user namespace the kernel refuses
//! to clear flags inherited from a more privileged mount ("locked" flags,
//! mount_namespaces(7)), so on EPERM the remount is retried keeping them, as
//! runc does. Propagation is changed with separate calls, recursive
//! attributes with mount_setattr(2). Id-mapped binds are attached with
//! move_mount(2) instead of mount(2) (see `idmapped`).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::SFlag;
use nix::sys::statvfs::FsFlags;

use crate::resolve::{fd_host_path, file_type, inside, Create, Root};
use crate::rootfs::idmapped;
use crate::rootfs::plan::check_proc_dest;
use crate::rootfs::{CgroupMount, MountKind, MountPlan};
use crate::{sys, Error};

/// mount(2) with the error naming everything.
pub(crate) fn sys_mount(
    src: Option<&Path>,
    target: &Path,
    dest: &Path,
    fstype: &str,
    flags: MsFlags,
    data: &str,
) -> Result<(), Error> {
    let fs = (!fstype.is_empty()).then_some(fstype);
    let d = (!data.is_empty()).then_some(data);
    nix::mount::mount(src, target, fs, flags, d).map_err(|source| Error::Mount {
        src: src.map(|s| s.display().to_string()).unwrap_or_default(),
        destination: dest.to_path_buf(),
        fstype: fstype.into(),
        flags,
        data: data.into(),
        source,
    })
}

/// Per-mount flags currently set on the mount at `fd` that a remount must
/// keep in a user namespace.
fn locked_flags(fd: BorrowedFd<'_>, dest: &Path) -> Result<MsFlags, Error> {
    let st = nix::sys::statvfs::fstatvfs(fd).map_err(|source| Error::Statvfs {
        path: dest.to_path_buf(),
        source,
    })?;
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (st_flag, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        // nix defines ST_RELATIME for glibc only; this is the kernel's value
        // (include/linux/statfs.h), so the musl build reads the same bit.
        (FsFlags::from_bits_retain(0x1000), MsFlags::MS_RELATIME),
    ] {
        if f.contains(st_flag) {
            out |= ms;
        }
    }
    Ok(out)
}

/// `MS_REMOUNT|MS_BIND|flags` on the mount now at `dest`. With
/// `keep_existing`, the mount's current nosuid/nodev/noexec/atime flags are
/// always kept; otherwise only on EPERM (locked flags).
pub(crate) fn remount(
    root: &Root,
    dest: &Path,
    flags: MsFlags,
    keep_existing: bool,
) -> Result<(), Error> {
    let fd = root.resolve(dest, Create::No)?;
    remount_fd(fd.as_fd(), dest, flags, keep_existing)
}

/// [`remount`] on an already resolved fd.
pub(crate) fn remount_fd(
    fd: BorrowedFd<'_>,
    dest: &Path,
    flags: MsFlags,
    keep_existing: bool,
) -> Result<(), Error> {
    let base =
        (flags - MsFlags::MS_BIND - MsFlags::MS_REMOUNT) | MsFlags::MS_REMOUNT | MsFlags::MS_BIND;
    let target = sys::fd_path(fd);
    let locked = locked_flags(fd, dest)?;
    if keep_existing {
        return sys_mount(None, &target, dest, "", base | locked, "");
    }
    match sys_mount(None, &target, dest, "", base, "") {
        Err(Error::Mount {
            source: Errno::EPERM,
            ..
        }) if !locked.is_empty() => sys_mount(None, &target, dest, "", base | locked, ""),
        other => other,
    }
}

/// Changes propagation of the mount at `dest`.
fn propagate(root: &Root, dest: &Path, flags: MsFlags) -> Result<(), Error> {
    let fd = root.resolve(dest, Create::No)?;
    sys_mount(None, &sys::fd_path(fd.as_fd()), dest, "", flags, "")
}

/// Resolves a mount destination: refuses symlinks for proc/sysfs (runc,
/// CVE-2019-19921 class), creates it, and applies runc's /proc checks to the
/// *resolved* location (a symlink could point into /proc).
fn open_dest(root: &Root, m: &MountPlan, create: Create) -> Result<OwnedFd, Error> {
    if matches!(m.kind, MountKind::Proc | MountKind::Sysfs) {
        if let Some(fd) = root.open_nofollow(&m.destination)? {
            let t = file_type(fd.as_fd()).map_err(|source| Error::Stat {
                path: m.destination.clone(),
                source,
            })?;
            if t == SFlag::S_IFLNK {
                return Err(Error::SymlinkDestination {
                    destination: m.destination.clone(),
                });
            }
        }
    }
    let fd = root.resolve(&m.destination, create)?;
    let host = fd_host_path(fd.as_fd()).map_err(|source| Error::Resolve {
        root: root.path().to_path_buf(),
        path: m.destination.clone(),
        source,
    })?;
    let Some(resolved) = inside(root.path(), &host) else {
        return Err(Error::Resolve {
            root: root.path().to_path_buf(),
            path: m.destination.clone(),
            source: Errno::EXDEV,
        });
    };
    check_proc_dest(&resolved, m.kind)?;
    Ok(fd)
}

fn open_source(src: &Path) -> Result<OwnedFd, Error> {
    sys::open(src, OFlag::O_PATH).map_err(|source| Error::Open {
        path: src.to_path_buf(),
        source,
    })
}

/// Bind-mounts host `src` on `dest_fd`, then remounts with `extra` flags.
fn bind(
    root: &Root,
    src_fd: BorrowedFd<'_>,
    src: &Path,
    dest_fd: BorrowedFd<'_>,
    dest: &Path,
    flags: MsFlags,
) -> Result<(), Error> {
    let bind_flags = MsFlags::MS_BIND | (flags & MsFlags::MS_REC);
    nix::mount::mount(
        Some(&sys::fd_path(src_fd)),
        &sys::fd_path(dest_fd),
        None::<&str>,
        bind_flags,
        None::<&str>,
    )
    .map_err(|source| Error::Mount {
        src: src.display().to_string(),
        destination: dest.to_path_buf(),
        fstype: "bind".into(),
        flags: bind_flags,
        data: String::new(),
        source,
    })?;
    remount_extra(root, dest, flags)
}

/// After a bind: applies the flags mount(2) ignores on a new bind (ro,
/// nosuid, ...) with a `MS_REMOUNT|MS_BIND` call.
fn remount_extra(root: &Root, dest: &Path, flags: MsFlags) -> Result<(), Error> {
    let extra = flags - MsFlags::MS_BIND - MsFlags::MS_REC - MsFlags::MS_REMOUNT;
    if !extra.is_empty() {
        remount(root, dest, extra, false)?;
    }
    Ok(())
}

/// Bind-mounts a host path onto an existing destination fd.
fn bind_host(
    root: &Root,
    src: &Path,
    dest_fd: BorrowedFd<'_>,
    dest: &Path,
    flags: MsFlags,
) -> Result<(), Error> {
    let src_fd = open_source(src)?;
    bind(root, src_fd.as_fd(), src, dest_fd, dest, flags)
}

/// Performs one planned mount.
pub(crate) fn mount_entry(
    root: &Root,
    m: &MountPlan,
    cgroups: &[CgroupMount],
    cgroupns: bool,
    idmapped_tree: Option<OwnedFd>,
) -> Result<(), Error> {
    let dest = m.destination.as_path();
    let flags = m.opts.flags;
    match m.kind {
        MountKind::Bind => {
            let src = m.source.as_deref().ok_or_else(|| Error::MissingSource {
                destination: dest.to_path_buf(),
                fstype: "bind".into(),
            })?;
            // An id-mapped source was opened by the parent as host root (its tree); opening it
            // again here, as the container's root, would fail on host directories it may not
            // search (a kubelet volume is 0750 root's), and would be a second lookup.
            let tree = match (&m.idmap, idmapped_tree) {
                (Some(_), Some(tree)) => Some(tree),
                (Some(_), None) => {
                    return Err(Error::IdmappedTreeMissing {
                        destination: dest.to_path_buf(),
                    })
                }
                (None, _) => None,
            };
            let src_fd = match tree {
                Some(tree) => tree,
                None => open_source(src)?,
            };
            let t = file_type(src_fd.as_fd()).map_err(|source| Error::Stat {
                path: src.to_path_buf(),
                source,
            })?;
            let create = if t == SFlag::S_IFDIR {
                Create::Dir
            } else {
                Create::File
            };
            let dest_fd = open_dest(root, m, create)?;
            if dest == Path::new("/proc") {
                let fs =
                    nix::sys::statfs::fstatfs(src_fd.as_fd()).map_err(|source| Error::Stat {
                        path: src.to_path_buf(),
                        source,
                    })?;
                if fs.filesystem_type() != nix::sys::statfs::PROC_SUPER_MAGIC {
                    return Err(Error::MountInsideProc {
                        destination: dest.to_path_buf(),
                    });
                }
            }
            if m.idmap.is_some() {
                idmapped::attach(src_fd, src, dest_fd.as_fd(), dest)?;
                remount_extra(root, dest, flags)?;
            } else {
                bind(root, src_fd.as_fd(), src, dest_fd.as_fd(), dest, flags)?;
            }
        }
        // On a pure cgroup v2 host a "cgroup" mount is the unified hierarchy itself (runc
        // `mountCgroupV2`), not the v1 layout of a tmpfs with one entry per hierarchy.
        MountKind::Cgroup
            if !cgroups.is_empty() && cgroups.iter().all(|c| c.fs_type == "cgroup2") =>
        {
            mount_cgroup2(root, m, cgroups, cgroupns)?
        }
        MountKind::Cgroup => mount_cgroup_v1(root, m, cgroups, cgroupns)?,
        MountKind::Cgroup2 => mount_cgroup2(root, m, cgroups, cgroupns)?,
        MountKind::Sysfs | MountKind::Mqueue => {
            let dest_fd = open_dest(root, m, Create::Dir)?;
            match plain(m, dest_fd.as_fd()) {
                // In a user namespace that does not own the net/ipc namespace the kernel
                // refuses a fresh sysfs/mqueue (it needs CAP_SYS_ADMIN over their owner):
                // bind the host's (runc). The host's /sys only when the mount asked for `ro`
                // (crun does the same), and then read-only, nosuid, nodev and noexec down to
                // every submount (mount_setattr(2) AT_RECURSIVE): a plain remount would leave
                // the host's /sys/fs/cgroup hierarchies writable under it.
                Err(Error::Mount {
                    source: Errno::EPERM,
                    ..
                }) if m.kind == MountKind::Mqueue => {
                    bind_host(root, Path::new("/dev/mqueue"), dest_fd.as_fd(), dest, flags)?;
                }
                Err(Error::Mount {
                    source: Errno::EPERM,
                    ..
                }) if flags.contains(MsFlags::MS_RDONLY) => {
                    bind_host(
                        root,
                        Path::new("/sys"),
                        dest_fd.as_fd(),
                        dest,
                        flags | MsFlags::MS_REC,
                    )?;
                    let fd = root.resolve(dest, Create::No)?;
                    let locked = libc::MOUNT_ATTR_RDONLY
                        | libc::MOUNT_ATTR_NOSUID
                        | libc::MOUNT_ATTR_NODEV
                        | libc::MOUNT_ATTR_NOEXEC;
                    sys::mount_setattr(fd.as_fd(), true, locked, 0, 0).map_err(|source| {
                        Error::MountSetattr {
                            destination: dest.to_path_buf(),
                            set: locked,
                            clear: 0,
                            propagation: 0,
                            source,
                        }
                    })?;
                }
                other => other?,
            }
        }
        MountKind::Proc | MountKind::Other => {
            let dest_fd = open_dest(root, m, Create::Dir)?;
            plain(m, dest_fd.as_fd())?;
        }
    }
    for p in &m.opts.propagation {
        propagate(root, dest, *p)?;
    }
    if m.opts.has_rec_attrs() {
        let fd = root.resolve(dest, Create::No)?;
        sys::mount_setattr(fd.as_fd(), true, m.opts.rec_set, m.opts.rec_clr, 0).map_err(
            |source| Error::MountSetattr {
                destination: dest.to_path_buf(),
                set: m.opts.rec_set,
                clear: m.opts.rec_clr,
                propagation: 0,
                source,
            },
        )?;
    }
    Ok(())
}

/// A fresh filesystem mount.
fn plain(m: &MountPlan, dest_fd: BorrowedFd<'_>) -> Result<(), Error> {
    let src = m.source.as_deref().unwrap_or(Path::new(&m.fstype));
    sys_mount(
        Some(src),
        &sys::fd_path(dest_fd),
        &m.destination,
        &m.fstype,
        m.opts.flags,
        &m.opts.data,
    )
}

/// cgroup v2 at the destination: a bind of the container's own cgroup directory, or with a
/// cgroup namespace a fresh cgroup2 mount (whose root is then the container's cgroup).
fn mount_cgroup2(
    root: &Root,
    m: &MountPlan,
    cgroups: &[CgroupMount],
    cgroupns: bool,
) -> Result<(), Error> {
    let dest = m.destination.as_path();
    let flags = m.opts.flags;
    let dest_fd = open_dest(root, m, Create::Dir)?;
    let host = cgroups.iter().find(|c| c.fs_type == "cgroup2");
    let bind_own = |c: &CgroupMount| {
        bind_host(
            root,
            &c.host_dir,
            dest_fd.as_fd(),
            dest,
            flags | MsFlags::MS_REC,
        )
    };
    match host {
        Some(c) if !cgroupns => bind_own(c),
        _ => match sys_mount(
            Some(Path::new("cgroup2")),
            &sys::fd_path(dest_fd.as_fd()),
            dest,
            "cgroup2",
            flags,
            &m.opts.data,
        ) {
            // A user namespace may be refused a fresh cgroup2 (EPERM), and one made over the
            // same cgroup2 root already mounted there (the host's, under a bind of /sys) is
            // EBUSY (mount(2)): bind the container's own cgroup instead, the view a cgroup
            // namespace would give (runc's mountCgroupV2 falls back so, for rootless).
            Err(Error::Mount {
                source: Errno::EPERM | Errno::EBUSY,
                ..
            }) if host.is_some() => host.map_or(Ok(()), bind_own),
            other => other,
        },
    }
}

/// cgroup v1: a tmpfs at the destination holding one entry per hierarchy:
/// a fresh cgroup mount in a cgroup namespace, else a bind of the
/// container's cgroup directory (runc `mountCgroupV1`). Read-only is applied
/// to the tmpfs last, so the entries can be created.
fn mount_cgroup_v1(
    root: &Root,
    m: &MountPlan,
    cgroups: &[CgroupMount],
    cgroupns: bool,
) -> Result<(), Error> {
    let dest = m.destination.as_path();
    let flags = m.opts.flags;
    let dest_fd = open_dest(root, m, Create::Dir)?;
    sys_mount(
        Some(Path::new("tmpfs")),
        &sys::fd_path(dest_fd.as_fd()),
        dest,
        "tmpfs",
        flags - MsFlags::MS_RDONLY,
        "mode=755",
    )?;
    for cg in cgroups {
        let sub = dest.join(&cg.name);
        let fd = root.resolve(&sub, Create::Dir)?;
        let fresh = if cgroupns {
            sys_mount(
                Some(Path::new(&cg.fs_type)),
                &sys::fd_path(fd.as_fd()),
                &sub,
                &cg.fs_type,
                flags,
                &cg.options,
            )
        } else {
            Ok(())
        };
        // A user namespace may not mount a v1 hierarchy (only cgroup2 is FS_USERNS_MOUNT): a
        // rootless container binds the host's directory instead, as runc always does on v1.
        let bind = match fresh {
            Ok(()) => !cgroupns,
            Err(Error::Mount {
                source: Errno::EPERM,
                ..
            }) => true,
            Err(e) => return Err(e),
        };
        if bind {
            bind_host(
                root,
                &cg.host_dir,
                fd.as_fd(),
                &sub,
                flags | MsFlags::MS_REC,
            )?;
        }
        if cg.name.contains(',') {
            let dir = root.resolve(dest, Create::No)?;
            for part in cg.name.split(',').filter(|p| !p.is_empty()) {
                match nix::unistd::symlinkat(
                    cg.name.as_str(),
                    Some(std::os::fd::AsRawFd::as_raw_fd(&dir)),
                    part,
                ) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(source) => {
                        return Err(Error::Create {
                            path: dest.join(part),
                            source,
                        })
                    }
                }
            }
        }
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        remount(root, dest, flags, false)?;
    }
    Ok(())
}
