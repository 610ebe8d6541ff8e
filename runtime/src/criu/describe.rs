//! The container described to CRIU as runc describes it (libcontainer's `Checkpoint` and
//! `Restore`): which mounts are external and where their sources are on restore, masked paths,
//! `/dev` nodes, cgroup mounts, an external network namespace, CRIU's configuration file.
//! Pure: the verbs gather the facts (a [`Layout`] from the spec, descriptors, inodes) and these
//! functions turn them into [`Opts`], so the conversion is tested without CRIU.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::rpc::{CgMode, Opts};

/// The devices runc's spec conversion adds to every container (and hako creates too).
const DEFAULT_DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/tty",
    "/dev/urandom",
    "/dev/random",
];

/// CRIU's key for an external network namespace (runc's `criuNsToKey(NEWNET)`).
pub(crate) const NETNS_KEY: &str = "extRootNetNS";

/// runc's annotation naming CRIU's configuration file ("" for none).
const CONFIG_ANNOTATION: &str = "org.criu.config";

/// runc's default CRIU configuration file, used when the annotation is absent.
const DEFAULT_CONFIG: &str = "/etc/criu/runc.conf";

/// The flags `checkpoint` and `restore` share (runc's `criuOptions`).
#[derive(Debug, Clone, Default)]
pub struct CriuFlags {
    /// `--tcp-established`.
    pub tcp_established: bool,
    /// `--ext-unix-sk`.
    pub ext_unix_sk: bool,
    /// `--shell-job`.
    pub shell_job: bool,
    /// `--file-locks`.
    pub file_locks: bool,
    /// `--manage-cgroups-mode`.
    pub manage_cgroups_mode: Option<CgMode>,
    /// `--empty-ns`, as CLONE_NEW* flags.
    pub empty_ns: u32,
    /// `--auto-dedup`.
    pub auto_dedup: bool,
    /// `--lazy-pages`.
    pub lazy_pages: bool,
}

/// Turns `--empty-ns` names (`network`, and the other namespace types) into CLONE_NEW* flags.
pub fn empty_ns_mask(names: &[String]) -> Result<u32, String> {
    let mut mask = 0u32;
    for name in names {
        let flag = match name.as_str() {
            "network" => libc::CLONE_NEWNET,
            "mount" => libc::CLONE_NEWNS,
            "pid" => libc::CLONE_NEWPID,
            "ipc" => libc::CLONE_NEWIPC,
            "uts" => libc::CLONE_NEWUTS,
            "user" => libc::CLONE_NEWUSER,
            "cgroup" => libc::CLONE_NEWCGROUP,
            "time" => libc::CLONE_NEWTIME,
            _ => return Err(name.clone()),
        };
        mask |= flag as u32;
    }
    Ok(mask)
}

/// What of the container's configuration CRIU must be told about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Bind mounts: (destination, source).
    pub binds: Vec<(String, String)>,
    /// Destinations of `cgroup` mounts.
    pub cgroup_mounts: Vec<String>,
    /// Destinations of every mount, in order, with whether it is a tmpfs and a bind of a file
    /// (for the mount points made before a restore).
    pub mount_points: Vec<MountPoint>,
    /// `linux.maskedPaths`.
    pub masked: Vec<String>,
    /// Device node paths: runc's defaults and `linux.devices`.
    pub devices: Vec<String>,
    /// A network namespace joined by path.
    pub netns_path: Option<PathBuf>,
    /// Whether the container has a cgroup namespace (its cgroup mounts are real ones then).
    pub cgroupns: bool,
    /// CRIU's configuration file, as runc chooses it.
    pub config_file: Option<String>,
}

/// One mount's destination, for preparing the rootfs before a restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountPoint {
    /// Inside the container.
    pub destination: String,
    /// A bind mount: its host source.
    pub bind_source: Option<PathBuf>,
    /// A tmpfs (CRIU restores its content, mount points under it included).
    pub tmpfs: bool,
}

fn is_bind(typ: Option<&str>, options: &[String]) -> bool {
    typ == Some("bind") || options.iter().any(|o| o == "bind" || o == "rbind")
}

impl Layout {
    /// Reads what matters from the container's spec.
    pub(crate) fn from_spec(spec: &Spec) -> Self {
        let mut layout = Layout::default();
        for m in spec.mounts().iter().flatten() {
            let dest = m.destination().to_string_lossy().into_owned();
            let options = m.options().clone().unwrap_or_default();
            let typ = m.typ().as_deref();
            let bind = is_bind(typ, &options);
            let source = m.source().clone().unwrap_or_default();
            if bind {
                layout
                    .binds
                    .push((dest.clone(), source.to_string_lossy().into_owned()));
            } else if typ == Some("cgroup") || typ == Some("cgroup2") {
                layout.cgroup_mounts.push(dest.clone());
            }
            layout.mount_points.push(MountPoint {
                destination: dest,
                bind_source: bind.then_some(source),
                tmpfs: typ == Some("tmpfs"),
            });
        }
        let linux = spec.linux().as_ref();
        layout.masked = linux
            .and_then(|l| l.masked_paths().clone())
            .unwrap_or_default();
        layout.devices = DEFAULT_DEVICES.iter().map(|d| d.to_string()).collect();
        for d in linux
            .and_then(|l| l.devices().as_ref())
            .into_iter()
            .flatten()
        {
            let p = d.path().to_string_lossy().into_owned();
            if !layout.devices.contains(&p) {
                layout.devices.push(p);
            }
        }
        for ns in linux
            .and_then(|l| l.namespaces().as_ref())
            .into_iter()
            .flatten()
        {
            match ns.typ() {
                LinuxNamespaceType::Network => layout.netns_path = ns.path().clone(),
                LinuxNamespaceType::Cgroup => layout.cgroupns = true,
                _ => {}
            }
        }
        layout.config_file = match spec
            .annotations()
            .as_ref()
            .and_then(|a| a.get(CONFIG_ANNOTATION))
        {
            Some(f) if f.is_empty() => None,
            Some(f) => Some(f.clone()),
            None => Some(DEFAULT_CONFIG.to_string()),
        };
        layout
    }

    /// The binds hako made for `cgroup` mounts, (destination, host directory), given the
    /// container's hierarchies as (name, fs type, host directory): on v1 one per hierarchy
    /// under the destination, on v2 the container's cgroup directory at it (see the namespaces
    /// crate's `mount_cgroup_v1`/`mount_cgroup2`). None with a cgroup namespace: real mounts.
    pub(crate) fn cgroup_binds(
        &self,
        hierarchies: &[(String, String, PathBuf)],
    ) -> Vec<(String, String)> {
        if self.cgroupns {
            return Vec::new();
        }
        let v2_only = hierarchies.iter().all(|(_, fs, _)| fs == "cgroup2");
        let mut out = Vec::new();
        for dest in &self.cgroup_mounts {
            for (name, fs, dir) in hierarchies {
                let at = if v2_only {
                    dest.clone()
                } else if fs == "cgroup" {
                    format!("{}/{}", dest.trim_end_matches('/'), name)
                } else {
                    continue;
                };
                out.push((at, dir.to_string_lossy().into_owned()));
            }
        }
        out
    }
}

/// What `checkpoint` knows about the running container.
#[derive(Debug, Clone, Default)]
pub(crate) struct DumpFacts {
    /// The init's pid.
    pub pid: i32,
    /// The container's rootfs on the host.
    pub rootfs: PathBuf,
    /// Descriptors (in hako) of the images and work directories.
    pub images_fd: i32,
    /// See `images_fd`.
    pub work_fd: i32,
    /// Masked paths that are files in the container (a directory is masked by a tmpfs, which
    /// CRIU dumps itself).
    pub masked_files: Vec<String>,
    /// The freezer cgroup directory.
    pub freeze_cgroup: Option<PathBuf>,
    /// The inode of a network namespace joined by path.
    pub netns_inode: Option<u64>,
    /// The cgroup binds (see [`Layout::cgroup_binds`]).
    pub cgroup_binds: Vec<(String, String)>,
}

/// `checkpoint`'s own flags, beyond [`CriuFlags`].
#[derive(Debug, Clone, Default)]
pub(crate) struct DumpFlags {
    /// `--leave-running`.
    pub leave_running: bool,
    /// `--pre-dump`.
    pub pre_dump: bool,
    /// `--parent-path`.
    pub parent_path: Option<String>,
    /// `--page-server`, parsed.
    pub page_server: Option<(String, i32)>,
}

/// Strips the rootfs prefix runc strips from a mount destination (a no-op for the relative
/// destinations of a spec).
fn in_container(dest: &str, rootfs: &Path) -> String {
    let root = rootfs.to_string_lossy();
    match dest.strip_prefix(root.as_ref()) {
        Some(rest) if !root.is_empty() && root != "/" => rest.to_string(),
        _ => dest.to_string(),
    }
}

fn common(flags: &CriuFlags, layout: &Layout, images_fd: i32, work_fd: i32, log: &str) -> Opts {
    Opts {
        images_dir_fd: images_fd,
        work_dir_fd: Some(work_fd),
        log_level: 4,
        log_file: log.to_string(),
        manage_cgroups: true,
        notify_scripts: true,
        shell_job: flags.shell_job,
        tcp_established: flags.tcp_established,
        ext_unix_sk: flags.ext_unix_sk,
        file_locks: flags.file_locks,
        empty_ns: flags.empty_ns,
        orphan_pts_master: true,
        auto_dedup: flags.auto_dedup,
        lazy_pages: flags.lazy_pages,
        manage_cgroups_mode: flags.manage_cgroups_mode,
        config_file: layout.config_file.clone(),
        ..Opts::default()
    }
}

/// The `criu_opts` of a dump (or pre-dump).
pub(crate) fn dump_opts(
    layout: &Layout,
    flags: &CriuFlags,
    dump: &DumpFlags,
    facts: &DumpFacts,
) -> Opts {
    let mut o = common(flags, layout, facts.images_fd, facts.work_fd, "dump.log");
    o.pid = Some(facts.pid);
    o.root = Some(facts.rootfs.to_string_lossy().into_owned());
    o.leave_running = dump.leave_running;
    o.freeze_cgroup = facts
        .freeze_cgroup
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned());
    if let Some(ino) = facts.netns_inode {
        o.external.push(format!("net[{ino}]:{NETNS_KEY}"));
    }
    o.page_server = dump.page_server.clone();
    if let Some(parent) = &dump.parent_path {
        o.parent_img = Some(parent.clone());
        o.track_mem = true;
    }
    if dump.pre_dump {
        // Mounts, masks and devices only matter for the final dump.
        return o;
    }
    let mut ext = |dest: &str, val: &str| {
        o.ext_mnt
            .push((in_container(dest, &facts.rootfs), val.to_string()))
    };
    for (dest, _) in &layout.binds {
        ext(dest, &in_container(dest, &facts.rootfs));
    }
    for (dest, _) in &facts.cgroup_binds {
        ext(dest, dest);
    }
    for path in &facts.masked_files {
        ext(path, "/dev/null");
    }
    for dev in &layout.devices {
        ext(dev, dev);
    }
    o
}

/// What `restore` prepared.
#[derive(Debug, Clone, Default)]
pub(crate) struct RestoreFacts {
    /// Descriptors (in hako) of the images and work directories.
    pub images_fd: i32,
    /// See `images_fd`.
    pub work_fd: i32,
    /// The bind mount of the rootfs CRIU restores into (it must be a mount point).
    pub root: PathBuf,
    /// The network namespace's descriptor in CRIU's table, when joined by path.
    pub netns_fd: Option<i32>,
    /// (key, descriptor in CRIU's table) for the init's stdio pipes (runc's descriptors.json).
    pub pipes: Vec<(String, i32)>,
    /// The cgroup binds (see [`Layout::cgroup_binds`]).
    pub cgroup_binds: Vec<(String, String)>,
    /// (controller, path) of CRIU's own cgroups once it was moved into the container's (v1).
    pub cg_root: Vec<(Option<String>, String)>,
}

/// The `criu_opts` of a restore.
pub(crate) fn restore_opts(layout: &Layout, flags: &CriuFlags, facts: &RestoreFacts) -> Opts {
    let mut o = common(flags, layout, facts.images_fd, facts.work_fd, "restore.log");
    o.evasive_devices = true;
    o.rst_sibling = true;
    o.root = Some(facts.root.to_string_lossy().into_owned());
    if let Some(fd) = facts.netns_fd {
        o.inherit_fd.push((NETNS_KEY.to_string(), fd));
    }
    for (dest, source) in &layout.binds {
        o.ext_mnt.push((dest.clone(), source.clone()));
    }
    for (dest, dir) in &facts.cgroup_binds {
        o.ext_mnt.push((dest.clone(), dir.clone()));
    }
    if !layout.masked.is_empty() {
        o.ext_mnt.push(("/dev/null".into(), "/dev/null".into()));
    }
    for dev in &layout.devices {
        o.ext_mnt.push((dev.clone(), dev.clone()));
    }
    o.inherit_fd.extend(facts.pipes.iter().cloned());
    o.cg_root = facts.cg_root.clone();
    o
}

/// The stdio entries of runc's `descriptors.json` (what `/proc/PID/fd/0..2` link to) that are
/// pipes, as `inherit_fd` pairs: CRIU reconnects a restored pipe end to the descriptor with
/// that key, here `first + i` for stdio descriptor i.
pub(crate) fn stdio_pipes(descriptors: &[String], first: i32) -> Vec<(String, i32)> {
    descriptors
        .iter()
        .enumerate()
        .take(3)
        .filter(|(_, d)| d.contains("pipe:"))
        .map(|(i, d)| (d.clone(), first + i as i32))
        .collect()
}

/// Parses `--page-server ADDRESS:PORT` as runc does (exactly one colon).
pub fn parse_page_server(text: &str) -> Option<(String, i32)> {
    let (address, port) = text.split_once(':')?;
    if port.contains(':') {
        return None;
    }
    Some((address.to_string(), port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> Spec {
        serde_json::from_value(json).expect("spec")
    }

    fn layout() -> Layout {
        Layout::from_spec(&spec(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs"},
                {"destination": "/data", "type": "bind", "source": "/srv/data", "options": ["rbind"]},
                {"destination": "/etc/hosts", "source": "/etc/hosts", "options": ["bind", "ro"]},
                {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup"}
            ],
            "linux": {
                "maskedPaths": ["/proc/kcore", "/proc/acpi"],
                "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}],
                "namespaces": [{"type": "network", "path": "/run/netns/n1"}, {"type": "mount"}]
            }
        })))
    }

    #[test]
    fn layout_reads_binds_masks_devices_and_the_network_namespace() {
        let l = layout();
        assert_eq!(
            l.binds,
            vec![
                ("/data".into(), "/srv/data".into()),
                ("/etc/hosts".into(), "/etc/hosts".into())
            ]
        );
        assert_eq!(l.cgroup_mounts, vec!["/sys/fs/cgroup".to_string()]);
        assert_eq!(l.devices.len(), 7);
        assert_eq!(l.devices.last().map(String::as_str), Some("/dev/fuse"));
        assert_eq!(l.netns_path.as_deref(), Some(Path::new("/run/netns/n1")));
        assert!(!l.cgroupns);
        assert_eq!(l.config_file.as_deref(), Some(DEFAULT_CONFIG));
        assert!(l.mount_points[1].tmpfs);
    }

    #[test]
    fn criu_config_annotation_as_runc() {
        let with = |v: &str| {
            Layout::from_spec(&spec(serde_json::json!({
                "ociVersion": "1.0.2", "root": {"path": "rootfs"},
                "annotations": {"org.criu.config": v}
            })))
            .config_file
        };
        assert_eq!(
            with("/etc/criu/mine.conf").as_deref(),
            Some("/etc/criu/mine.conf")
        );
        assert_eq!(with(""), None);
    }

    #[test]
    fn dump_describes_external_mounts_as_runc() {
        let l = layout();
        let facts = DumpFacts {
            pid: 77,
            rootfs: "/b/rootfs".into(),
            images_fd: 5,
            work_fd: 6,
            masked_files: vec!["/proc/kcore".into()],
            freeze_cgroup: Some("/sys/fs/cgroup/freezer/c1".into()),
            netns_inode: Some(4026532000),
            cgroup_binds: l.cgroup_binds(&[
                (
                    "freezer".into(),
                    "cgroup".into(),
                    "/sys/fs/cgroup/freezer/c1".into(),
                ),
                (
                    "unified".into(),
                    "cgroup2".into(),
                    "/sys/fs/cgroup/unified/c1".into(),
                ),
            ]),
        };
        let flags = CriuFlags {
            tcp_established: true,
            manage_cgroups_mode: Some(CgMode::Full),
            ..CriuFlags::default()
        };
        let o = dump_opts(&l, &flags, &DumpFlags::default(), &facts);
        assert_eq!(o.pid, Some(77));
        assert_eq!(o.root.as_deref(), Some("/b/rootfs"));
        assert_eq!((o.log_level, o.log_file.as_str()), (4, "dump.log"));
        assert!(o.tcp_established && o.manage_cgroups && o.notify_scripts && o.orphan_pts_master);
        assert!(!o.leave_running && !o.track_mem);
        assert_eq!(o.manage_cgroups_mode, Some(CgMode::Full));
        assert_eq!(o.external, vec!["net[4026532000]:extRootNetNS".to_string()]);
        assert_eq!(
            o.freeze_cgroup.as_deref(),
            Some("/sys/fs/cgroup/freezer/c1")
        );
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(
            o.ext_mnt[..4],
            [
                pair("/data", "/data"),
                pair("/etc/hosts", "/etc/hosts"),
                pair("/sys/fs/cgroup/freezer", "/sys/fs/cgroup/freezer"),
                pair("/proc/kcore", "/dev/null"),
            ]
        );
        assert_eq!(o.ext_mnt[4], pair("/dev/null", "/dev/null"));
        assert_eq!(o.ext_mnt.len(), 4 + 7);
    }

    #[test]
    fn pre_dump_tracks_memory_and_skips_mounts() {
        let dump = DumpFlags {
            pre_dump: true,
            parent_path: Some("../pre1".into()),
            page_server: parse_page_server("10.0.0.1:27"),
            ..DumpFlags::default()
        };
        let o = dump_opts(
            &layout(),
            &CriuFlags::default(),
            &dump,
            &DumpFacts::default(),
        );
        assert_eq!(o.parent_img.as_deref(), Some("../pre1"));
        assert!(o.track_mem);
        assert!(o.ext_mnt.is_empty());
        assert_eq!(o.page_server, Some(("10.0.0.1".into(), 27)));
    }

    #[test]
    fn restore_maps_mounts_to_their_sources() {
        let l = layout();
        let facts = RestoreFacts {
            images_fd: 5,
            work_fd: 6,
            root: "/run/hako/c1/criu-root".into(),
            netns_fd: Some(7),
            pipes: stdio_pipes(
                &["/dev/null".into(), "pipe:[123]".into(), "pipe:[124]".into()],
                4,
            ),
            cgroup_binds: vec![("/sys/fs/cgroup".into(), "/sys/fs/cgroup/c1".into())],
            cg_root: vec![(Some("freezer".into()), "/c1".into())],
        };
        let flags = CriuFlags {
            empty_ns: empty_ns_mask(&["network".into()]).expect("test"),
            ..CriuFlags::default()
        };
        let o = restore_opts(&l, &flags, &facts);
        assert!(o.rst_sibling && o.evasive_devices && o.orphan_pts_master);
        assert_eq!(o.pid, None);
        assert_eq!(
            (o.log_file.as_str(), o.empty_ns),
            ("restore.log", libc::CLONE_NEWNET as u32)
        );
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(
            o.ext_mnt[..4],
            [
                pair("/data", "/srv/data"),
                pair("/etc/hosts", "/etc/hosts"),
                pair("/sys/fs/cgroup", "/sys/fs/cgroup/c1"),
                pair("/dev/null", "/dev/null"),
            ]
        );
        assert_eq!(
            o.inherit_fd,
            vec![
                ("extRootNetNS".to_string(), 7),
                ("pipe:[123]".to_string(), 5),
                ("pipe:[124]".to_string(), 6)
            ]
        );
        assert_eq!(o.cg_root, facts.cg_root);
    }

    #[test]
    fn cgroup_binds_follow_the_mode_and_the_cgroup_namespace() {
        let mut l = layout();
        let v2 = [(
            "".to_string(),
            "cgroup2".to_string(),
            PathBuf::from("/sys/fs/cgroup/c1"),
        )];
        assert_eq!(
            l.cgroup_binds(&v2),
            vec![(
                "/sys/fs/cgroup".to_string(),
                "/sys/fs/cgroup/c1".to_string()
            )]
        );
        l.cgroupns = true;
        assert!(l.cgroup_binds(&v2).is_empty());
    }

    #[test]
    fn flag_parsers_as_runc() {
        assert_eq!(empty_ns_mask(&["bogus".into()]), Err("bogus".to_string()));
        assert_eq!(parse_page_server("host:1:2"), None);
        assert_eq!(parse_page_server("host"), None);
        assert_eq!(parse_page_server("host:x"), None);
    }
}
