//! `config.json`, converted once into a validated [`ContainerConfig`] (runc's `specconv` idea):
//! after this, no code deals in `Option`s the spec already settled, and every field hako does not
//! honour yet has been refused with an error naming it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Hook, Hooks, Spec};

use crate::error::{Error, Result};
use crate::ids;
use crate::lsm::{HostLsm, LsmConfig};
use crate::process::ProcessConfig;
use crate::seccomp::SeccompProgram;

/// Validates the LSM labels against `host` (also used by `exec`, which checks its own labels
/// against the same `host` and so reads sysfs once).
pub(crate) fn lsm_of(spec: &Spec, host: &HostLsm) -> Result<LsmConfig> {
    Ok(LsmConfig::from_spec(spec, host)?)
}

/// Compiles `linux.seccomp`, if any (also used by `exec`, which applies the container's filter).
pub(crate) fn seccomp_of(spec: &Spec) -> Result<Option<SeccompProgram>> {
    match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(s) => Ok(Some(SeccompProgram::from_spec(s)?)),
        None => Ok(None),
    }
}

/// Converts `linux.memoryPolicy`, if any, checked against the host's NUMA nodes (also used by
/// `exec`: the policy is the container's, for each of its processes).
pub(crate) fn memory_policy_of(spec: &Spec) -> Result<Option<crate::placement::MemoryPolicy>> {
    match spec
        .linux()
        .as_ref()
        .and_then(|l| l.memory_policy().as_ref())
    {
        Some(p) => Ok(Some(crate::placement::MemoryPolicy::from_spec(
            p,
            &crate::placement::online_nodes()?,
        )?)),
        None => Ok(None),
    }
}

/// Everything `create` needs, validated.
#[derive(Debug)]
pub struct ContainerConfig {
    /// Absolute bundle path.
    pub bundle: PathBuf,
    /// The process; optional for `create` (the spec allows it), then `start` fails.
    pub process: Option<ProcessConfig>,
    pub(crate) namespaces: hako_namespaces::Namespaces,
    pub(crate) id_mappings: Option<hako_namespaces::IdMappings>,
    pub(crate) rootfs: hako_namespaces::Rootfs,
    pub(crate) sysctls: hako_namespaces::Sysctls,
    pub(crate) hostname: Option<String>,
    pub(crate) domainname: Option<String>,
    pub(crate) cgroup_path: hako_cgroups::CgroupPath,
    pub(crate) resources: hako_cgroups::Resources,
    pub(crate) hooks: Hooks,
    pub(crate) seccomp: Option<SeccompProgram>,
    pub(crate) personality: Option<libc::c_ulong>,
    pub(crate) lsm: LsmConfig,
    pub(crate) annotations: HashMap<String, String>,
    pub(crate) net_devices: crate::netdev::NetDevices,
    pub(crate) intel_rdt: Option<crate::resctrl::IntelRdt>,
}

/// The largest `config.json` hako reads: far above any real config (Kubernetes caps an object's
/// annotations at 256 KiB, docker's seccomp profile is under 100 KiB), and a bound on the memory
/// a hostile or broken file can make `create` use.
const MAX_CONFIG_BYTES: u64 = 64 << 20;

/// Reads a JSON input file that must be a regular file (`config.json`, `exec --process`).
///
/// Opened with `O_NONBLOCK`, so a FIFO planted in its place cannot block the open (fifo(7)), then
/// checked with fstat(2): anything but a regular file, or a file over [`MAX_CONFIG_BYTES`], is
/// refused before a byte is read.
pub(crate) fn read_regular_file(field: &'static str, path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::FileTypeExt;
    let file = crate::sys::open_file(None, path, libc::O_RDONLY | libc::O_NONBLOCK, 0)
        .map_err(Error::io("read", path))?;
    let meta = file.metadata().map_err(Error::io("stat", path))?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_dir() {
            "a directory"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "a device"
        };
        return Err(Error::InvalidConfig {
            field,
            reason: format!("{} is {what}, not a regular file", path.display()),
        });
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(Error::InvalidConfig {
            field,
            reason: format!(
                "{} is {} bytes, more than the {MAX_CONFIG_BYTES} hako reads",
                path.display(),
                meta.len()
            ),
        });
    }
    let mut text = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // `take`: a file that grows after the fstat is still bounded.
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(Error::io("read", path))?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(Error::InvalidConfig {
            field,
            reason: format!("{} grew past {MAX_CONFIG_BYTES} bytes", path.display()),
        });
    }
    Ok(text)
}

/// Reads `<bundle>/config.json`.
pub fn load_spec(bundle: &Path) -> Result<Spec> {
    Ok(load_spec_text(bundle)?.0)
}

/// [`load_spec`], and the bytes it parsed: `create` keeps them in the state directory, so that
/// `exec` uses the config `create` validated, whatever happens to the bundle afterwards.
pub(crate) fn load_spec_text(bundle: &Path) -> Result<(Spec, Vec<u8>)> {
    let path = bundle.join("config.json");
    let text = read_regular_file("config.json", &path)?;
    let spec = parse_spec(&path, &text)?;
    Ok((spec, text))
}

fn parse_spec(path: &Path, text: &[u8]) -> Result<Spec> {
    let parse_error = |source| Error::ParseConfig {
        path: path.to_path_buf(),
        source,
    };
    // The detour through a `Value` is only for configs that need the rename.
    let needs_rename = |needle: &[u8]| text.windows(needle.len()).any(|w| w == needle);
    if !needs_rename(b"SCHED_FLAG_RESET_ON_FORK")
        && !needs_rename(b"SCHED_FLAG_DL_OVERRUN")
        && !needs_rename(b"execCPUAffinity")
    {
        return serde_json::from_slice(text).map_err(parse_error);
    }
    let mut value: serde_json::Value = serde_json::from_slice(text).map_err(parse_error)?;
    normalize_scheduler_flags(&mut value);
    if let Some(p) = value.get_mut("process") {
        drop_empty_cpu_affinity(p);
    }
    // Back to text and through the same `from_slice` as above, not `serde_json::from_value`: a
    // second, `Value`-driven instance of the whole `Spec` deserializer is 270 KiB of program text,
    // and on this kernel a verb's peak RSS is dominated by the program text it maps.
    let text = serde_json::to_vec(&value).map_err(parse_error)?;
    serde_json::from_slice(&text).map_err(parse_error)
}

/// oci-spec 0.10 spells two `process.scheduler.flags` differently from config.md
/// (`SCHED_RESET_ON_FORK` for `SCHED_FLAG_RESET_ON_FORK`, `SCHED_FLAG_D_L_OVERRUN` for
/// `SCHED_FLAG_DL_OVERRUN`): accept the spec's names by translating them before parsing.
fn normalize_scheduler_flags(config: &mut serde_json::Value) {
    let Some(flags) = config
        .pointer_mut("/process/scheduler/flags")
        .and_then(|f| f.as_array_mut())
    else {
        return;
    };
    for f in flags {
        let renamed = match f.as_str() {
            Some("SCHED_FLAG_RESET_ON_FORK") => "SCHED_RESET_ON_FORK",
            Some("SCHED_FLAG_DL_OVERRUN") => "SCHED_FLAG_D_L_OVERRUN",
            _ => continue,
        };
        *f = serde_json::Value::from(renamed);
    }
}

/// config.md: an `execCPUAffinity.initial` or `final` that is "omitted or empty" means "do not
/// change the affinity"; oci-spec 0.10 refuses the empty string (its list pattern needs a
/// digit), so an empty one is removed before parsing. `process` is the process object (of
/// config.json or of `exec --process`).
pub(crate) fn drop_empty_cpu_affinity(process: &mut serde_json::Value) {
    if let Some(a) = process
        .get_mut("execCPUAffinity")
        .and_then(|a| a.as_object_mut())
    {
        a.retain(|k, v| !((k == "initial" || k == "final") && v.as_str() == Some("")));
    }
}

/// Checks `ociVersion`: config.md says it is a SemVer 2.0.0 version of the runtime spec, and
/// hako implements major version 1 (1.0.0 through 1.x.y, pre-releases such as the `1.0.2-dev`
/// that docker, containerd and podman send included).
fn check_oci_version(version: &str) -> Result<()> {
    let invalid = |why: &str| Error::InvalidConfig {
        field: "ociVersion",
        reason: format!("{version:?} {why}"),
    };
    let major = semver_major(version).ok_or_else(|| invalid("is not a SemVer version"))?;
    if major != 1 {
        return Err(invalid("is not a 1.x version of the runtime spec"));
    }
    Ok(())
}

/// The major version of a SemVer 2.0.0 string (semver.org, "Backus–Naur Form Grammar");
/// `None` if `v` is not one.
fn semver_major(v: &str) -> Option<u64> {
    let numeric = |s: &str| {
        (!s.is_empty()
            && s.bytes().all(|b| b.is_ascii_digit())
            && (s == "0" || !s.starts_with('0')))
        .then(|| s.parse::<u64>().ok())
        .flatten()
    };
    let identifiers_ok = |s: &str, numbers_without_leading_zero: bool| {
        s.split('.').all(|id| {
            !id.is_empty()
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && (!numbers_without_leading_zero
                    || !id.bytes().all(|b| b.is_ascii_digit())
                    || numeric(id).is_some())
        })
    };
    let (rest, build) = match v.split_once('+') {
        Some((r, b)) => (r, Some(b)),
        None => (v, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    if pre.is_some_and(|p| !identifiers_ok(p, true))
        || build.is_some_and(|b| !identifiers_ok(b, false))
    {
        return None;
    }
    let mut parts = core.split('.');
    let major = numeric(parts.next()?)?;
    let (_minor, _patch) = (numeric(parts.next()?)?, numeric(parts.next()?)?);
    parts.next().is_none().then_some(major)
}

/// `root` is REQUIRED with a `path` (config.md, "Root"). An empty path would make the bundle
/// directory itself the rootfs, and the mount set-up would create `proc/`, `dev/`... in it.
fn check_root(spec: &Spec) -> Result<()> {
    let root = spec.root().as_ref().ok_or(Error::InvalidConfig {
        field: "root",
        reason: "must be specified".into(),
    })?;
    if root.path().as_os_str().is_empty() {
        return Err(Error::InvalidConfig {
            field: "root.path",
            reason: "must name the container's root filesystem".into(),
        });
    }
    Ok(())
}

/// Each hook's `path` MUST be absolute and its `timeout`, if set, MUST be greater than zero
/// (config.md, "POSIX-platform Hooks"). runc refuses a relative path only when the hook runs
/// (`error running hook #0: fork/exec ...`); hako refuses the config, before anything exists.
fn check_hooks(hooks: &Hooks) -> Result<()> {
    for (field, list) in hook_lists(hooks) {
        for (i, hook) in list.iter().flatten().enumerate() {
            if !hook.path().is_absolute() {
                return Err(Error::InvalidConfig {
                    field,
                    reason: format!("hook #{i}: path {:?} is not absolute", hook.path()),
                });
            }
            if let Some(t) = hook.timeout().filter(|&t| t <= 0) {
                return Err(Error::InvalidConfig {
                    field,
                    reason: format!("hook #{i}: timeout {t} must be greater than zero"),
                });
            }
        }
    }
    Ok(())
}

/// The six hook lists with their JSON paths.
fn hook_lists(hooks: &Hooks) -> [(&'static str, &Option<Vec<Hook>>); 6] {
    [
        ("hooks.prestart", hooks.prestart()),
        ("hooks.createRuntime", hooks.create_runtime()),
        ("hooks.createContainer", hooks.create_container()),
        ("hooks.startContainer", hooks.start_container()),
        ("hooks.poststart", hooks.poststart()),
        ("hooks.poststop", hooks.poststop()),
    ]
}

/// The owners of `linux.devices`: the same uid/gid range as the process (see `ids`), since
/// chown(2) too reads 4294967295 as "leave unchanged".
fn check_device_owners(linux: Option<&oci_spec::runtime::Linux>) -> Result<()> {
    for d in linux
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
    {
        if let Some(uid) = d.uid() {
            ids::check("linux.devices.uid", uid)?;
        }
        if let Some(gid) = d.gid() {
            ids::check("linux.devices.gid", gid)?;
        }
    }
    Ok(())
}

impl ContainerConfig {
    /// Validates `spec` for the container `id` whose bundle is `bundle` (absolute).
    pub fn from_spec(spec: &Spec, bundle: &Path, id: &str, systemd_cgroup: bool) -> Result<Self> {
        // The checks that need nothing but the spec come first: nothing may have been created
        // when one of them fails.
        check_oci_version(spec.version())?;
        check_root(spec)?;
        let hooks = spec.hooks().clone().unwrap_or_default();
        check_hooks(&hooks)?;
        let linux = spec.linux().as_ref();
        check_device_owners(linux)?;
        // Without a new mount namespace, `Rootfs::from_spec` refuses whatever needs a mount.
        let namespaces = hako_namespaces::Namespaces::from_spec(linux)?;
        let mut process = spec
            .process()
            .as_ref()
            .map(ProcessConfig::from_spec)
            .transpose()?;
        if let Some(p) = process.as_mut() {
            p.memory_policy = memory_policy_of(spec)?;
        } else {
            // Nothing to apply it to, but a wrong policy is still an error (fail closed).
            memory_policy_of(spec)?;
        }
        let hostname = spec.hostname().clone().filter(|h| !h.is_empty());
        let domainname = spec.domainname().clone().filter(|h| !h.is_empty());
        namespaces.check_uts(hostname.as_deref(), domainname.as_deref())?;
        let net_devices = crate::netdev::NetDevices::from_spec(linux, &namespaces)?;
        let lsm = lsm_of(spec, &HostLsm::host())?;
        let devices = linux.and_then(|l| l.devices().clone()).unwrap_or_default();
        Ok(ContainerConfig {
            bundle: bundle.to_path_buf(),
            process,
            id_mappings: hako_namespaces::IdMappings::from_spec(linux)?,
            sysctls: hako_namespaces::Sysctls::from_spec(linux, &namespaces)?,
            rootfs: {
                let mut rootfs = hako_namespaces::Rootfs::from_spec(spec, bundle)?;
                rootfs.label_mounts(|fstype, data| lsm.mount_data(fstype, data));
                rootfs
            },
            namespaces,
            hostname,
            domainname,
            cgroup_path: hako_cgroups::CgroupPath::resolve(
                linux.and_then(|l| l.cgroups_path().as_deref()),
                id,
                systemd_cgroup,
            )?,
            resources: hako_cgroups::Resources::from_spec(
                linux.and_then(|l| l.resources().as_ref()),
                &devices,
            )?,
            hooks,
            seccomp: seccomp_of(spec)?,
            lsm,
            personality: linux
                .and_then(|l| l.personality().as_ref())
                .map(crate::scheduling::personality)
                .transpose()?,
            annotations: spec.annotations().clone().unwrap_or_default(),
            net_devices,
            intel_rdt: crate::resctrl::of_spec(spec, id)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::OpenOptionsExt;

    #[test]
    fn spec_scheduler_flag_names_parse() {
        let mut v = serde_json::json!({"process": {"scheduler": {"policy": "SCHED_OTHER",
            "flags": ["SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_DL_OVERRUN", "SCHED_FLAG_RECLAIM"]}}});
        normalize_scheduler_flags(&mut v);
        let s: oci_spec::runtime::Scheduler =
            serde_json::from_value(v["process"]["scheduler"].clone()).expect("parses");
        assert_eq!(s.flags().as_ref().map(Vec::len), Some(3));
    }

    /// What the engines on this machine send (/work/shared/reference/clients/config-*.json:
    /// docker, containerd, CRI and podman all say `1.0.2-dev`), the spec's own releases, and
    /// SemVer's pre-release and build forms.
    #[test]
    fn oci_version_accepts_semver_1x() {
        for v in [
            "1.0.0",
            "1.0.2-dev",
            "1.0.2",
            "1.1.0",
            "1.2.1",
            "1.0.0-rc5",
            "1.0.0-rc2-dev",
            "1.0.0-rc.1+build.5",
            "1.3.0+dirty",
            "1.10.20",
        ] {
            check_oci_version(v).unwrap_or_else(|e| panic!("{v}: {e}"));
        }
    }

    #[test]
    fn oci_version_refuses_the_rest_naming_the_field() {
        for v in [
            "invalid",
            "",
            "1",
            "1.0",
            "1.0.0.0",
            "2.0.0",
            "0.9.0",
            "01.0.0",
            "1.00.0",
            "1.0.0-",
            "1.0.0-01",
            "1.0.0+",
            "1.0.0-a..b",
            "1.0.0-ä",
            " 1.0.0",
            "v1.0.0",
            "1.0.x",
        ] {
            let e = check_oci_version(v).expect_err(v);
            assert!(
                e.to_string().starts_with("invalid config: ociVersion: "),
                "{e}"
            );
        }
    }

    fn spec_of(json: serde_json::Value) -> Spec {
        serde_json::from_value(json).expect("spec")
    }

    #[test]
    fn root_must_name_a_path() {
        let e =
            check_root(&spec_of(serde_json::json!({"ociVersion": "1.0.2"}))).expect_err("no root");
        assert_eq!(e.to_string(), "invalid config: root: must be specified");
        for root in [serde_json::json!({}), serde_json::json!({"path": ""})] {
            let s = spec_of(serde_json::json!({"ociVersion": "1.0.2", "root": root}));
            let e = check_root(&s).expect_err("empty path");
            assert!(
                e.to_string().starts_with("invalid config: root.path: "),
                "{e}"
            );
        }
        let s = spec_of(serde_json::json!({"ociVersion": "1.0.2", "root": {"path": "rootfs"}}));
        check_root(&s).expect("a path");
    }

    #[test]
    fn hooks_need_absolute_paths_and_positive_timeouts() {
        let hooks = |list: &str, hook: serde_json::Value| -> Hooks {
            serde_json::from_value(serde_json::json!({ list: [{"path": "/bin/true"}, hook] }))
                .expect("hooks")
        };
        for (field, _) in hook_lists(&Hooks::default()) {
            let list = field.trim_start_matches("hooks.");
            let e = check_hooks(&hooks(list, serde_json::json!({"path": "true"}))).expect_err(list);
            assert_eq!(
                e.to_string(),
                format!("invalid config: hooks.{list}: hook #1: path \"true\" is not absolute")
            );
            for t in [0, -1] {
                let h = hooks(list, serde_json::json!({"path": "/bin/true", "timeout": t}));
                let e = check_hooks(&h).expect_err("timeout");
                assert_eq!(
                    e.to_string(),
                    format!(
                        "invalid config: hooks.{list}: hook #1: timeout {t} must be greater than zero"
                    )
                );
            }
            check_hooks(&hooks(
                list,
                serde_json::json!({"path": "/x", "timeout": 1}),
            ))
            .expect("ok");
        }
    }

    #[test]
    fn device_owners_are_in_range() {
        let linux = |uid: u64| -> oci_spec::runtime::Linux {
            serde_json::from_value(serde_json::json!({"devices": [
                {"path": "/dev/x", "type": "c", "major": 1, "minor": 3, "uid": uid, "gid": 0}]}))
            .expect("linux")
        };
        check_device_owners(Some(&linux(2_147_483_647))).expect("in range");
        let e = check_device_owners(Some(&linux(4_294_967_295))).expect_err("-1");
        assert!(e.to_string().contains("linux.devices.uid"), "{e}");
    }

    /// A FIFO in place of config.json: refused at once, never an open that waits for a writer
    /// (the helper thread and its timeout make a regression fail instead of hanging).
    #[test]
    fn config_that_is_a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.json");
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        let (tx, rx) = std::sync::mpsc::channel();
        let bundle = dir.path().to_path_buf();
        std::thread::spawn(move || {
            let _ = tx.send(load_spec(&bundle).map(|_| ()).map_err(|e| e.to_string()));
        });
        let result = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("load_spec blocked on a FIFO");
        let e = result.expect_err("a FIFO is no config");
        assert!(e.contains("config.json") && e.contains("FIFO"), "{e}");
        // Unblock the helper thread of a regression (a writer ends its open).
        drop(
            std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&path),
        );
    }

    #[test]
    fn oversized_config_is_refused_before_reading() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = std::fs::File::create(dir.path().join("config.json")).expect("create");
        f.set_len(MAX_CONFIG_BYTES + 1).expect("sparse file");
        let e = load_spec(dir.path()).expect_err("too big").to_string();
        assert!(e.starts_with("invalid config: config.json: "), "{e}");
        let e = load_spec(&dir.path().join("missing"))
            .expect_err("no file")
            .to_string();
        assert!(e.starts_with("read "), "{e}");
        std::fs::create_dir(dir.path().join("d")).expect("dir");
        std::fs::create_dir(dir.path().join("d/config.json")).expect("dir");
        let e = load_spec(&dir.path().join("d"))
            .expect_err("a directory")
            .to_string();
        assert!(e.contains("is a directory, not a regular file"), "{e}");
    }

    #[test]
    fn empty_cpu_affinity_lists_mean_unset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = r#"{"ociVersion": "1.3.0", "root": {"path": "rootfs"},
            "process": {"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0},
                "execCPUAffinity": {"initial": "", "final": "1"}}}"#;
        std::fs::write(dir.path().join("config.json"), config).expect("write config");
        let spec = load_spec(dir.path()).expect("parses");
        let a = spec
            .process()
            .as_ref()
            .and_then(|p| p.exec_cpu_affinity().clone())
            .expect("affinity");
        assert_eq!(a.initial(), &None);
        assert_eq!(a.cpu_affinity_final().as_deref(), Some("1"));
    }

    #[test]
    fn load_spec_renames_scheduler_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = r#"{"ociVersion": "1.0.2", "root": {"path": "rootfs"},
            "process": {"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0},
                "scheduler": {"policy": "SCHED_OTHER",
                    "flags": ["SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_DL_OVERRUN"]}}}"#;
        std::fs::write(dir.path().join("config.json"), config).expect("write config");
        let spec = load_spec(dir.path()).expect("parses");
        let flags = spec
            .process()
            .as_ref()
            .and_then(|p| p.scheduler().as_ref())
            .and_then(|s| s.flags().clone())
            .expect("flags");
        assert_eq!(flags.len(), 2);
    }
}
