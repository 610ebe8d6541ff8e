//! Spec → rootfs plan conversion and validation (pure; runs in the parent).

use std::path::{Component, Path, PathBuf};

use nix::mount::MsFlags;
use nix::sys::stat::SFlag;
use oci_spec::runtime::{
    Linux, LinuxDeviceType, LinuxIdMapping, LinuxNamespace, LinuxNamespaceType, Spec,
};

use crate::idmap::check_lines;
use crate::mount_opts::{self, Idmap, MountOptions};
use crate::rootfs::Rootfs;
use crate::{Error, IdMappings};

/// How a mount entry is performed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MountKind {
    /// bind / rbind from a host path.
    Bind,
    /// procfs: destination must not be a symlink.
    Proc,
    /// sysfs: destination must not be a symlink; EPERM falls back to rbind /sys.
    Sysfs,
    /// mqueue: EPERM falls back to bind /dev/mqueue.
    Mqueue,
    /// cgroup v1 tree (tmpfs + one entry per hierarchy).
    Cgroup,
    /// cgroup2.
    Cgroup2,
    /// Anything else: plain mount(2).
    Other,
}

/// One validated `mounts[]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MountPlan {
    /// Absolute, lexically clean destination inside the container.
    pub(crate) destination: PathBuf,
    pub(crate) kind: MountKind,
    /// Source: absolute host path for binds, free-form otherwise.
    pub(crate) source: Option<PathBuf>,
    pub(crate) fstype: String,
    pub(crate) opts: MountOptions,
    /// Set for an id-mapped bind mount.
    pub(crate) idmap: Option<IdmapPlan>,
}

/// How to id-map a bind mount (runtime-spec config.md "Mounts", runc
/// `createLibcontainerMount` + `CreateLibcontainerConfig`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IdmapPlan {
    /// `ridmap`: mount_setattr with AT_RECURSIVE.
    pub(crate) recursive: bool,
    /// The user namespace whose mappings the mount gets.
    pub(crate) userns: IdmapUserns,
}

/// Where an id-mapped mount's user namespace comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum IdmapUserns {
    /// A short-lived user namespace carrying these mappings.
    Mappings(IdMappings),
    /// An existing user namespace file (the container joins it).
    Path(PathBuf),
}

/// The container's user namespace, used by `idmap`/`ridmap` without
/// mappings of their own.
enum ContainerUserns<'a> {
    /// No user namespace.
    None,
    /// Joined at this path.
    Path(PathBuf),
    /// Created with these mappings.
    New(&'a [LinuxIdMapping], &'a [LinuxIdMapping]),
}

fn container_userns(spec: &Spec) -> ContainerUserns<'_> {
    let Some(linux) = spec.linux().as_ref() else {
        return ContainerUserns::None;
    };
    let user = linux
        .namespaces()
        .iter()
        .flatten()
        .find(|n| n.typ() == LinuxNamespaceType::User);
    match user {
        None => ContainerUserns::None,
        Some(u) => match u.path().as_ref().filter(|p| !p.as_os_str().is_empty()) {
            Some(p) => ContainerUserns::Path(p.clone()),
            None => ContainerUserns::New(
                linux.uid_mappings().as_deref().unwrap_or_default(),
                linux.gid_mappings().as_deref().unwrap_or_default(),
            ),
        },
    }
}

/// Validated mappings for the mount at `destination`: both lists required.
fn mount_mappings(
    destination: &Path,
    uid: &[LinuxIdMapping],
    gid: &[LinuxIdMapping],
) -> Result<IdMappings, Error> {
    if uid.is_empty() || gid.is_empty() {
        return Err(Error::IdmapWithoutMappings {
            destination: destination.to_path_buf(),
            reason: "both uid and gid mappings are required",
        });
    }
    let lines = |kind: &'static str, maps| {
        check_lines(maps).map_err(|reason| Error::InvalidMountMapping {
            destination: destination.to_path_buf(),
            kind,
            reason,
        })
    };
    Ok(IdMappings::from_lines(
        lines("uid", uid)?,
        lines("gid", gid)?,
    ))
}

/// The id-mapping of a mount, if any: its own non-empty
/// `uidMappings`/`gidMappings` (which imply `idmap`, as in runc), else for
/// `idmap`/`ridmap` the container's user namespace.
fn idmap_plan(
    m: &oci_spec::runtime::Mount,
    destination: &Path,
    kind: MountKind,
    option: Option<Idmap>,
    container: &ContainerUserns<'_>,
) -> Result<Option<IdmapPlan>, Error> {
    let uid = m.uid_mappings().as_deref().unwrap_or_default();
    let gid = m.gid_mappings().as_deref().unwrap_or_default();
    let explicit = !uid.is_empty() || !gid.is_empty();
    if !explicit && option.is_none() {
        return Ok(None);
    }
    if kind != MountKind::Bind {
        return Err(Error::IdmapNotBind {
            destination: destination.to_path_buf(),
        });
    }
    let userns = if explicit {
        IdmapUserns::Mappings(mount_mappings(destination, uid, gid)?)
    } else {
        match container {
            ContainerUserns::None => {
                return Err(Error::IdmapWithoutMappings {
                    destination: destination.to_path_buf(),
                    reason: "no mappings given and the container has no user namespace",
                })
            }
            ContainerUserns::Path(p) => IdmapUserns::Path(p.clone()),
            ContainerUserns::New(u, g) => IdmapUserns::Mappings(mount_mappings(destination, u, g)?),
        }
    };
    Ok(Some(IdmapPlan {
        recursive: option == Some(Idmap::Recursive),
        userns,
    }))
}

/// One device node to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DevicePlan {
    pub(crate) path: PathBuf,
    pub(crate) kind: SFlag,
    pub(crate) major: u64,
    pub(crate) minor: u64,
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// Devices every container gets (runtime-spec config-linux.md "Default Devices").
const DEFAULT_DEVICES: [(&str, u64, u64); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// Files under /proc that may be mounted over (runc checkProcMount; lxcfs).
pub(crate) const PROC_MOUNT_ALLOWED: [&str; 13] = [
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/pressure/cpu",
    "/proc/pressure/io",
    "/proc/pressure/memory",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
];

/// Lexically cleans an absolute container path (`..` cannot climb above `/`;
/// symlinks are resolved later, inside the root). Relative destinations
/// are taken relative to `/`, as runc does.
pub(crate) fn clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// runc checkProcMount on a container path: `Ok` if allowed.
pub(crate) fn check_proc_dest(dest: &Path, kind: MountKind) -> Result<(), Error> {
    let Ok(rel) = dest.strip_prefix("/proc") else {
        return Ok(());
    };
    if rel.as_os_str().is_empty() {
        // On /proc itself only procfs (a bind must be of a procfs, checked at mount time).
        return match kind {
            MountKind::Proc | MountKind::Bind => Ok(()),
            _ => Err(Error::MountInsideProc {
                destination: dest.to_path_buf(),
            }),
        };
    }
    if PROC_MOUNT_ALLOWED.iter().any(|a| Path::new(a) == dest) {
        return Ok(());
    }
    Err(Error::MountInsideProc {
        destination: dest.to_path_buf(),
    })
}

fn mount_plan(
    m: &oci_spec::runtime::Mount,
    bundle: &Path,
    container: &ContainerUserns<'_>,
) -> Result<MountPlan, Error> {
    let destination = clean(m.destination());
    let mut opts = mount_opts::parse(m.options().as_deref().unwrap_or_default())?;
    let fstype = m.typ().clone().unwrap_or_default();
    if fstype == "bind" && !opts.is_bind() {
        opts.flags.insert(MsFlags::MS_BIND);
    }
    let kind = if opts.is_bind() {
        MountKind::Bind
    } else {
        match fstype.as_str() {
            "proc" => MountKind::Proc,
            "sysfs" => MountKind::Sysfs,
            "mqueue" => MountKind::Mqueue,
            "cgroup" => MountKind::Cgroup,
            "cgroup2" => MountKind::Cgroup2,
            "" | "none" => {
                return Err(Error::MissingSource {
                    destination,
                    fstype,
                })
            }
            _ => MountKind::Other,
        }
    };
    let mut source = m.source().clone().filter(|s| !s.as_os_str().is_empty());
    if kind == MountKind::Bind {
        let Some(src) = source.as_mut() else {
            return Err(Error::MissingSource {
                destination,
                fstype: "bind".into(),
            });
        };
        if src.is_relative() {
            *src = bundle.join(&*src);
        }
    }
    check_proc_dest(&destination, kind)?;
    let idmap = idmap_plan(m, &destination, kind, opts.idmap, container)?;
    Ok(MountPlan {
        destination,
        kind,
        source,
        fstype,
        opts,
        idmap,
    })
}

fn device_plan(d: &oci_spec::runtime::LinuxDevice) -> Result<DevicePlan, Error> {
    let path = d.path().clone();
    let invalid = |reason| Error::InvalidDevice {
        path: path.clone(),
        reason,
    };
    if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
        return Err(invalid("path must be absolute without .."));
    }
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => return Err(invalid("type \"a\" is not a device node")),
    };
    if d.major() < 0 || d.minor() < 0 {
        return Err(invalid("negative major or minor"));
    }
    Ok(DevicePlan {
        path: clean(&path),
        kind,
        major: d.major() as u64,
        minor: d.minor() as u64,
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    })
}

pub(crate) fn from_spec(spec: &Spec, bundle: &Path) -> Result<Rootfs, Error> {
    let root = spec.root().as_ref().ok_or(Error::NoRoot)?;
    let path = if root.path().is_absolute() {
        root.path().clone()
    } else {
        bundle.join(root.path())
    };
    let path = std::fs::canonicalize(&path).map_err(|source| Error::RootfsPath {
        path: path.clone(),
        source,
    })?;
    if !path.is_dir() {
        return Err(Error::RootfsNotDirectory { path });
    }
    let linux = spec.linux().as_ref();
    if linux
        .and_then(|l| l.mount_label().as_ref())
        .is_some_and(|l| !l.is_empty())
    {
        return Err(Error::unsupported("linux.mountLabel (SELinux)"));
    }
    let propagation = match linux.and_then(|l| l.rootfs_propagation().as_deref()) {
        None | Some("") => None,
        Some(v) => Some(
            mount_opts::propagation(v).ok_or_else(|| Error::InvalidPropagation {
                value: v.to_string(),
            })?,
        ),
    };
    let container = container_userns(spec);
    let mounts = spec
        .mounts()
        .iter()
        .flatten()
        .map(|m| mount_plan(m, bundle, &container))
        .collect::<Result<Vec<_>, _>>()?;
    let setup_dev = !mounts
        .iter()
        .any(|m| m.destination == Path::new("/dev") && m.kind == MountKind::Bind);
    let ptmx_symlink = setup_dev
        && mounts
            .iter()
            .any(|m| m.destination == Path::new("/dev/pts") && m.fstype == "devpts");
    let devices = device_list(linux)?;
    let paths = |v: Option<&Vec<String>>| -> Vec<PathBuf> {
        v.into_iter()
            .flatten()
            .map(|p| clean(Path::new(p)))
            .collect()
    };
    let namespaces = || {
        linux
            .and_then(|l| l.namespaces().as_ref())
            .into_iter()
            .flatten()
    };
    let cgroupns = namespaces().any(|n| n.typ() == LinuxNamespaceType::Cgroup);
    let mount_ns = MountNs::of(namespaces());
    let mut rootfs = Rootfs {
        root: path,
        readonly: root.readonly().unwrap_or(false),
        propagation,
        mounts,
        devices,
        setup_dev,
        ptmx_symlink,
        masked: paths(linux.and_then(|l| l.masked_paths().as_ref())),
        readonly_paths: paths(linux.and_then(|l| l.readonly_paths().as_ref())),
        cgroupns,
        private_mount_ns: mount_ns == MountNs::New,
        joined_mount_ns: joined_mount_ns(namespaces()),
        bind_root: true,
        record: None,
        cwd: spec
            .process()
            .as_ref()
            .map(|p| p.cwd())
            .filter(|c| c.is_absolute())
            .cloned(),
    };
    if mount_ns == MountNs::New {
        return Ok(rootfs);
    }
    if mount_ns == MountNs::Inherited {
        refuse_sys_restrictions(&rootfs)?;
    }
    rootfs.bind_root = mounts_under_root(&rootfs, !matches!(container, ContainerUserns::None));
    Ok(rootfs)
}

/// Where the container's mount namespace comes from (runtime-spec config-linux.md
/// "Namespaces": a type that is not listed is inherited from the runtime, one with a `path`
/// is joined).
///
/// Without one of its own (inherited or joined), measured on runc 1.1.5 and crun 1.8.1 inside
/// `unshare -m`: both make every `mounts[]` entry under the rootfs in that namespace, create
/// the default and `linux.devices` nodes in the /dev tmpfs, write `linux.sysctl` through the
/// /proc they mounted, and take the root with chroot (runc: pivot_root in a joined one). hako
/// does the same, chroot in both, and takes every mount down again when the container goes
/// (see `record`, `release`; runc and crun leave them behind). Where they differ from the
/// spec, the spec decides: `root.readonly` (ignored by both: the root stays writable) and
/// `rootfsPropagation` (runc sets it on the caller's `/`, then makes that private) are
/// applied to the bind mount of the rootfs onto itself that `prepare` makes (runc makes it
/// too), the rootfs's own mount; the caller's `/` is never touched (runc makes it a slave,
/// recursively).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MountNs {
    /// A new one, the container's own.
    New,
    /// One given by `path`.
    Joined,
    /// The runtime's own.
    Inherited,
}

/// The `path` of a joined mount namespace: where `release` finds it again when no process is
/// left in it (it is pinned by that file, typically a bind-mounted nsfs file).
fn joined_mount_ns<'a>(
    mut namespaces: impl Iterator<Item = &'a LinuxNamespace>,
) -> Option<PathBuf> {
    namespaces
        .find(|n| n.typ() == LinuxNamespaceType::Mount)
        .and_then(|n| n.path().clone())
        .filter(|p| !p.as_os_str().is_empty())
}

impl MountNs {
    /// The kind the config's `linux.namespaces` asks for.
    fn of<'a>(mut namespaces: impl Iterator<Item = &'a LinuxNamespace>) -> Self {
        namespaces
            .find(|n| n.typ() == LinuxNamespaceType::Mount)
            .map_or(MountNs::Inherited, |n| match n.path() {
                Some(p) if !p.as_os_str().is_empty() => MountNs::Joined,
                _ => MountNs::New,
            })
    }
}

/// The default devices (those `linux.devices` does not redefine), then `linux.devices`.
fn device_list(linux: Option<&Linux>) -> Result<Vec<DevicePlan>, Error> {
    let spec_devices = linux
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
        .map(device_plan)
        .collect::<Result<Vec<_>, _>>()?;
    let mut devices: Vec<DevicePlan> = DEFAULT_DEVICES
        .iter()
        .filter(|(p, _, _)| !spec_devices.iter().any(|d| d.path == Path::new(p)))
        .map(|&(p, major, minor)| DevicePlan {
            path: PathBuf::from(p),
            kind: SFlag::S_IFCHR,
            major,
            minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
        })
        .collect();
    devices.extend(spec_devices);
    Ok(devices)
}

/// Masked and read-only paths in the namespace inherited from the runtime are refused, in
/// runc's words ("unable to restrict sys entries without a private MNT namespace"; crun
/// applies them). In a namespace joined by `path` they are applied, as runc and crun apply
/// them there (for runc a namespace given by path is the container's own: `configs.NEWNS` is
/// in its list): a namespace made for the container, which the caller chose to give it.
fn refuse_sys_restrictions(rootfs: &Rootfs) -> Result<(), Error> {
    let refuse = |field| Err(Error::RestrictSysWithoutMountNs { field });
    if !rootfs.masked.is_empty() {
        return refuse("linux.maskedPaths");
    }
    if !rootfs.readonly_paths.is_empty() {
        return refuse("linux.readonlyPaths");
    }
    Ok(())
}

/// Whether anything will be mounted under the rootfs (or the rootfs's own mount changed) in a
/// namespace the container does not own: only then does `prepare` bind the rootfs onto
/// itself, as the slave mount everything else goes on (runc binds it always, so a config
/// with nothing to mount leaves that bind in the caller's namespace; runtime-spec
/// config-linux.md: the inherited namespace is the runtime's, which the container must not
/// change for nothing). The default devices alone are no mount: without a /dev mount they are
/// made with mknod(2) in the rootfs's own /dev, as runc 1.1.5 makes them there (measured: the
/// six nodes and the /dev/fd, stdin, stdout, stderr links stay in the image after `delete`;
/// runc also replaces /dev/ptmx by a link, hako only with a devpts at /dev/pts); mknod is
/// refused in a user namespace, where they would be bind mounts (see `devices`), so a user
/// namespace counts as something to mount.
fn mounts_under_root(rootfs: &Rootfs, userns: bool) -> bool {
    !rootfs.mounts.is_empty()
        || rootfs.readonly
        || rootfs.propagation.is_some()
        || !rootfs.masked.is_empty()
        || !rootfs.readonly_paths.is_empty()
        || (rootfs.setup_dev && userns)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A spec with a new mount namespace added to whatever `extra` lists.
    fn spec_json(rootfs: &str, extra: &str) -> Spec {
        let mut v = spec_value(rootfs, extra);
        let ns = v["linux"]["namespaces"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !ns.iter().any(|n| n["type"] == "mount") {
            let mut ns = ns;
            ns.push(serde_json::json!({"type": "mount"}));
            v["linux"]["namespaces"] = serde_json::Value::Array(ns);
        }
        serde_json::from_value(v).unwrap()
    }

    fn spec_value(rootfs: &str, extra: &str) -> serde_json::Value {
        let json = format!(
            r#"{{"ociVersion":"1.0.2","root":{{"path":"{rootfs}","readonly":true}}{extra}}}"#
        );
        serde_json::from_str(&json).unwrap()
    }

    #[test]
    fn without_mount_namespace_mounts_as_runc_and_refuses_sys_restrictions() {
        let bundle = tempfile::tempdir().unwrap();
        std::fs::create_dir(bundle.path().join("rootfs")).unwrap();
        let plan = |root_ro: bool, extra: &str| {
            let mut v = spec_value("rootfs", extra);
            v["root"]["readonly"] = serde_json::Value::Bool(root_ro);
            from_spec(&serde_json::from_value(v).unwrap(), bundle.path())
        };
        let proc_mount = r#","mounts":[{"destination":"/proc","type":"proc","source":"proc"}]"#;
        // Not listed (inherited) or joined: mounts, devices and /dev set-up as with a new one.
        for ns in [
            r#","linux":{"namespaces":[{"type":"pid"}]}"#,
            r#","linux":{"namespaces":[{"type":"mount","path":"/proc/1/ns/mnt"}]}"#,
            "",
        ] {
            let r = plan(false, &format!("{proc_mount}{ns}")).unwrap();
            assert!(!r.private_mount_ns && r.needs_mount_record(), "{ns}");
            assert!(r.setup_dev && r.devices.len() == 6 && r.mounts.len() == 1);
            let r = plan(true, ns).unwrap();
            assert!(r.readonly && !r.private_mount_ns);
        }
        let r = plan(false, r#","linux":{"rootfsPropagation":"private"}"#).unwrap();
        assert!(r.propagation.is_some() && !r.private_mount_ns && r.bind_root);
        // Nothing to mount: no bind of the rootfs onto itself, the devices made with mknod.
        for ns in [r#","linux":{"namespaces":[{"type":"pid"}]}"#, ""] {
            let r = plan(false, &format!(r#","mounts":[]{ns}"#)).unwrap();
            assert!(!r.bind_root && r.setup_dev && r.devices.len() == 6, "{ns}");
        }
        // But a mount, `root.readonly`, or a user namespace (devices are bind mounts there)
        // is something to mount.
        assert!(plan(false, proc_mount).unwrap().bind_root);
        assert!(plan(true, "").unwrap().bind_root);
        let userns = r#","linux":{"namespaces":[{"type":"user"}],"uidMappings":[{"containerID":0,"hostID":1000,"size":1}],"gidMappings":[{"containerID":0,"hostID":1000,"size":1}]}"#;
        assert!(plan(false, userns).unwrap().bind_root);
        // A joined namespace takes masked and read-only paths (runc and crun apply them there).
        let joined = r#""namespaces":[{"type":"mount","path":"/proc/1/ns/mnt"}]"#;
        let r = plan(
            false,
            &format!(r#","linux":{{{joined},"maskedPaths":["/proc/kcore"],"readonlyPaths":["/proc/sys"]}}"#),
        )
        .unwrap();
        assert!(!r.private_mount_ns && r.bind_root);
        assert_eq!((r.masked.len(), r.readonly_paths.len()), (1, 1));
        let refused = |extra: &str| match plan(false, extra) {
            Err(Error::RestrictSysWithoutMountNs { field }) => field,
            other => panic!("{extra}: {other:?}"),
        };
        assert_eq!(
            refused(r#","linux":{"maskedPaths":["/proc/kcore"]}"#),
            "linux.maskedPaths"
        );
        assert_eq!(
            refused(r#","linux":{"readonlyPaths":["/proc/sys"]}"#),
            "linux.readonlyPaths"
        );
        // A new mount namespace keeps all of it, and needs no record.
        let r = from_spec(&spec_json("rootfs", proc_mount), bundle.path()).unwrap();
        assert!(r.private_mount_ns && r.setup_dev && r.devices.len() == 6 && r.bind_root);
        assert!(!r.needs_mount_record());
        assert_eq!(r.mounts.len(), 1);
    }

    #[test]
    fn cwd_is_kept_when_absolute() {
        let bundle = tempfile::tempdir().unwrap();
        std::fs::create_dir(bundle.path().join("rootfs")).unwrap();
        let with_cwd = |cwd: &str| {
            let extra =
                format!(r#","process":{{"cwd":"{cwd}","args":["sh"],"user":{{"uid":0,"gid":0}}}}"#);
            from_spec(&spec_json("rootfs", &extra), bundle.path())
                .unwrap()
                .cwd
        };
        assert_eq!(with_cwd("/work/../x"), Some(PathBuf::from("/work/../x")));
        assert_eq!(with_cwd("rel"), None);
        assert_eq!(
            from_spec(&spec_json("rootfs", ""), bundle.path())
                .unwrap()
                .cwd,
            None
        );
    }

    #[test]
    fn clean_paths() {
        assert_eq!(clean(Path::new("/a/../../b/./c")), PathBuf::from("/b/c"));
        assert_eq!(clean(Path::new("rel/x")), PathBuf::from("/rel/x"));
        assert_eq!(clean(Path::new("/")), PathBuf::from("/"));
    }

    #[test]
    fn label_mounts_sees_each_fstype_and_data() {
        let bundle = tempfile::tempdir().unwrap();
        std::fs::create_dir(bundle.path().join("rootfs")).unwrap();
        let extra = r#","mounts":[{"destination":"/t","type":"tmpfs","source":"tmpfs","options":["size=1m"]},{"destination":"/b","type":"bind","source":"/tmp","options":["rbind"]}]"#;
        let mut r = from_spec(&spec_json("rootfs", extra), bundle.path()).unwrap();
        r.label_mounts(|fstype, data| format!("{fstype}:{data}"));
        let data: Vec<&str> = r.mounts.iter().map(|m| m.opts.data.as_str()).collect();
        assert_eq!(data, ["tmpfs:size=1m", "bind:"]);
    }

    #[test]
    fn rootfs_relative_to_bundle() {
        let bundle = tempfile::tempdir().unwrap();
        std::fs::create_dir(bundle.path().join("rootfs")).unwrap();
        let r = from_spec(&spec_json("rootfs", ""), bundle.path()).unwrap();
        assert_eq!(r.root, bundle.path().canonicalize().unwrap().join("rootfs"));
        assert!(r.readonly);
        assert!(r.setup_dev);
        assert_eq!(r.devices.len(), 6);
        assert!(matches!(
            from_spec(&spec_json("missing", ""), bundle.path()),
            Err(Error::RootfsPath { .. })
        ));
        std::fs::write(bundle.path().join("file"), "").unwrap();
        assert!(matches!(
            from_spec(&spec_json("file", ""), bundle.path()),
            Err(Error::RootfsNotDirectory { .. })
        ));
    }

    #[test]
    fn default_mounts_convert() {
        let bundle = tempfile::tempdir().unwrap();
        std::fs::create_dir(bundle.path().join("rootfs")).unwrap();
        let s = spec_json(
            "rootfs",
            r#","mounts":[
              {"destination":"/proc","type":"proc","source":"proc"},
              {"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","strictatime","mode=755","size=65536k"]},
              {"destination":"/dev/pts","type":"devpts","source":"devpts","options":["nosuid","noexec","newinstance","ptmxmode=0666","mode=0620","gid=5"]},
              {"destination":"/sys","type":"sysfs","source":"sysfs","options":["nosuid","noexec","nodev","ro"]},
              {"destination":"/sys/fs/cgroup","type":"cgroup","source":"cgroup","options":["nosuid","noexec","nodev","relatime","ro"]},
              {"destination":"/data","type":"none","source":"data","options":["rbind","rprivate","ro"]},
              {"destination":"/etc/hosts","type":"bind","source":"/etc/hosts"}
            ],
            "linux":{"rootfsPropagation":"rshared","maskedPaths":["/proc/kcore"],"readonlyPaths":["/proc/sys"],
              "devices":[{"path":"/dev/null","type":"c","major":1,"minor":3,"fileMode":420},
                         {"path":"/dev/fuse","type":"c","major":10,"minor":229}],
              "namespaces":[{"type":"mount"},{"type":"cgroup"}]}"#,
        );
        let r = from_spec(&s, bundle.path()).unwrap();
        let kinds: Vec<_> = r.mounts.iter().map(|m| m.kind).collect();
        assert_eq!(
            kinds,
            vec![
                MountKind::Proc,
                MountKind::Other,
                MountKind::Other,
                MountKind::Sysfs,
                MountKind::Cgroup,
                MountKind::Bind,
                MountKind::Bind
            ]
        );
        assert_eq!(r.mounts[1].opts.data, "mode=755,size=65536k");
        assert_eq!(
            r.mounts[5].source.as_deref(),
            Some(bundle.path().join("data").as_path())
        );
        assert!(r.mounts[6].opts.is_bind());
        assert_eq!(r.propagation, Some(MsFlags::MS_SHARED | MsFlags::MS_REC));
        assert!(r.ptmx_symlink);
        assert!(r.cgroupns);
        assert_eq!(r.masked, vec![PathBuf::from("/proc/kcore")]);
        // /dev/null overridden by the spec, /dev/fuse added.
        assert_eq!(r.devices.len(), 7);
        let null: Vec<_> = r
            .devices
            .iter()
            .filter(|d| d.path == Path::new("/dev/null"))
            .collect();
        assert_eq!(null.len(), 1);
        assert_eq!(null[0].mode, 0o644);
    }

    #[test]
    fn invalid_specs() {
        let bundle = tempfile::tempdir().unwrap();
        std::fs::create_dir(bundle.path().join("rootfs")).unwrap();
        let bad = |extra: &str| from_spec(&spec_json("rootfs", extra), bundle.path()).unwrap_err();
        assert!(matches!(
            bad(r#","linux":{"rootfsPropagation":"sideways"}"#),
            Error::InvalidPropagation { .. }
        ));
        assert!(matches!(
            bad(r#","mounts":[{"destination":"/proc/sys","type":"tmpfs","source":"tmpfs"}]"#),
            Error::MountInsideProc { .. }
        ));
        assert!(matches!(
            bad(r#","mounts":[{"destination":"/proc","type":"tmpfs","source":"tmpfs"}]"#),
            Error::MountInsideProc { .. }
        ));
        assert!(matches!(
            bad(
                r#","mounts":[{"destination":"/x","type":"bind","source":"/x","options":["idmap"]}]"#
            ),
            Error::IdmapWithoutMappings { .. }
        ));
        assert!(matches!(
            bad(r#","mounts":[{"destination":"/x","options":["ro"]}]"#),
            Error::MissingSource { .. }
        ));
        assert!(matches!(
            bad(r#","linux":{"mountLabel":"system_u:object_r:container_file_t:s0"}"#),
            Error::Unsupported { .. }
        ));
        assert!(matches!(
            bad(r#","linux":{"devices":[{"path":"dev/x","type":"c","major":1,"minor":1}]}"#),
            Error::InvalidDevice { .. }
        ));
        // Allowed lxcfs-style bind inside /proc.
        let ok = from_spec(
            &spec_json(
                "rootfs",
                r#","mounts":[{"destination":"/proc/meminfo","type":"bind","source":"/proc/meminfo","options":["bind"]}]"#,
            ),
            bundle.path(),
        );
        assert!(ok.is_ok());
    }

    #[test]
    fn idmapped_mounts_validate() {
        let bundle = tempfile::tempdir().unwrap();
        std::fs::create_dir(bundle.path().join("rootfs")).unwrap();
        let plan = |mounts: &str, linux: &str| {
            let extra = format!(r#","mounts":[{mounts}]{linux}"#);
            from_spec(&spec_json("rootfs", &extra), bundle.path()).map(|r| r.mounts[0].clone())
        };
        let maps = r#""uidMappings":[{"containerID":0,"hostID":1000,"size":1}],"gidMappings":[{"containerID":0,"hostID":1001,"size":2}]"#;
        // Mappings imply idmap; rbind stays a non-recursive id-mapping.
        let m = plan(
            &format!(
                r#"{{"destination":"/x","type":"bind","source":"/x","options":["rbind"],{maps}}}"#
            ),
            "",
        )
        .unwrap();
        let idmap = m.idmap.unwrap();
        assert!(!idmap.recursive);
        let IdmapUserns::Mappings(ids) = idmap.userns else {
            panic!("expected mappings");
        };
        assert_eq!(ids.uid_map(), "0 1000 1\n");
        assert_eq!(ids.gid_map(), "0 1001 2\n");
        // ridmap with mappings: recursive.
        let m = plan(
            &format!(r#"{{"destination":"/x","type":"bind","source":"/x","options":["rbind","ridmap"],{maps}}}"#),
            "",
        )
        .unwrap();
        assert!(m.idmap.unwrap().recursive);
        // No idmap at all.
        let m = plan(r#"{"destination":"/x","type":"bind","source":"/x"}"#, "").unwrap();
        assert_eq!(m.idmap, None);
        // With a user namespace of its own: `idmap` uses the container's mappings (new) or
        // the namespace itself (joined).
        let userns = format!(r#","linux":{{"namespaces":[{{"type":"user"}}],{maps}}}"#);
        let m = plan(
            r#"{"destination":"/x","type":"bind","source":"/x","options":["idmap"]}"#,
            &userns,
        )
        .unwrap();
        assert!(matches!(m.idmap.unwrap().userns, IdmapUserns::Mappings(_)));
        let m = plan(
            r#"{"destination":"/x","type":"bind","source":"/x","options":["ridmap"]}"#,
            r#","linux":{"namespaces":[{"type":"user","path":"/proc/1/ns/user"}]}"#,
        )
        .unwrap();
        assert_eq!(
            m.idmap.unwrap().userns,
            IdmapUserns::Path("/proc/1/ns/user".into())
        );
        // Errors.
        let err = |mounts: &str| plan(mounts, "").unwrap_err();
        assert!(matches!(
            err(&format!(
                r#"{{"destination":"/t","type":"tmpfs","source":"tmpfs",{maps}}}"#
            )),
            Error::IdmapNotBind { .. }
        ));
        assert!(matches!(
            err(r#"{"destination":"/t","type":"tmpfs","source":"tmpfs","options":["idmap"]}"#),
            Error::IdmapNotBind { .. }
        ));
        assert!(matches!(
            err(r#"{"destination":"/x","type":"bind","source":"/x","options":["ridmap"]}"#),
            Error::IdmapWithoutMappings { .. }
        ));
        assert!(matches!(
            err(
                r#"{"destination":"/x","type":"bind","source":"/x","uidMappings":[{"containerID":0,"hostID":1000,"size":1}]}"#
            ),
            Error::IdmapWithoutMappings { .. }
        ));
        assert!(matches!(
            err(
                r#"{"destination":"/x","type":"bind","source":"/x","uidMappings":[{"containerID":0,"hostID":1000,"size":0}],"gidMappings":[{"containerID":0,"hostID":1000,"size":1}]}"#
            ),
            Error::InvalidMountMapping { kind: "uid", .. }
        ));
        assert!(matches!(
            err(
                r#"{"destination":"/x","type":"bind","source":"/x","uidMappings":[{"containerID":0,"hostID":1000,"size":1}],"gidMappings":[{"containerID":0,"hostID":1000,"size":5},{"containerID":2,"hostID":2000,"size":1}]}"#
            ),
            Error::InvalidMountMapping { kind: "gid", .. }
        ));
    }

    #[test]
    fn dev_bind_skips_device_setup() {
        let bundle = tempfile::tempdir().unwrap();
        std::fs::create_dir(bundle.path().join("rootfs")).unwrap();
        let s = spec_json(
            "rootfs",
            r#","mounts":[{"destination":"/dev","type":"bind","source":"/dev","options":["rbind"]},
                          {"destination":"/dev/pts","type":"devpts","source":"devpts"}]"#,
        );
        let r = from_spec(&s, bundle.path()).unwrap();
        assert!(!r.setup_dev);
        assert!(!r.ptmx_symlink);
    }
}
