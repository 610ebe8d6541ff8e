//! `config.json`, converted once into a validated [`ContainerConfig`] (runc's `specconv` idea):
//! after this, no code deals in `Option`s the spec already settled, and every field hako does not
//! honour yet has been refused with an error naming it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Hooks, LinuxNamespaceType, Spec};

use crate::error::{Error, Result};
use crate::lsm::{HostLsm, LsmConfig};
use crate::process::ProcessConfig;
use crate::seccomp::SeccompProgram;

/// Validates the LSM labels against the host (also used by `exec`).
pub(crate) fn lsm_of(spec: &Spec) -> Result<LsmConfig> {
    Ok(LsmConfig::from_spec(spec, &HostLsm::host())?)
}

/// Compiles `linux.seccomp`, if any (also used by `exec`, which applies the container's filter).
pub(crate) fn seccomp_of(spec: &Spec) -> Result<Option<SeccompProgram>> {
    match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(s) => Ok(Some(SeccompProgram::from_spec(s)?)),
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
}

/// Reads `<bundle>/config.json`.
pub fn load_spec(bundle: &Path) -> Result<Spec> {
    Ok(load_spec_text(bundle)?.0)
}

/// [`load_spec`], and the bytes it parsed: `create` keeps them in the state directory, so that
/// `exec` uses the config `create` validated, whatever happens to the bundle afterwards.
pub(crate) fn load_spec_text(bundle: &Path) -> Result<(Spec, Vec<u8>)> {
    let path = bundle.join("config.json");
    let text = std::fs::read(&path).map_err(Error::io("read", &path))?;
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
    if !needs_rename(b"SCHED_FLAG_RESET_ON_FORK") && !needs_rename(b"SCHED_FLAG_DL_OVERRUN") {
        return serde_json::from_slice(text).map_err(parse_error);
    }
    let mut value: serde_json::Value = serde_json::from_slice(text).map_err(parse_error)?;
    normalize_scheduler_flags(&mut value);
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

impl ContainerConfig {
    /// Validates `spec` for the container `id` whose bundle is `bundle` (absolute).
    pub fn from_spec(spec: &Spec, bundle: &Path, id: &str, systemd_cgroup: bool) -> Result<Self> {
        let linux = spec.linux().as_ref();
        if let Some(l) = linux {
            if l.intel_rdt().is_some() {
                return Err(Error::Unsupported {
                    field: "linux.intelRdt",
                });
            }
            if l.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
                return Err(Error::Unsupported {
                    field: "linux.netDevices",
                });
            }
            if l.memory_policy().is_some() {
                return Err(Error::Unsupported {
                    field: "linux.memoryPolicy",
                });
            }
        }
        let namespaces = hako_namespaces::Namespaces::from_spec(linux)?;
        if !namespaces.has_new(LinuxNamespaceType::Mount) {
            // Without its own mount namespace a container's mounts and pivot_root would act on
            // the host's; runc refuses such configs as well.
            return Err(Error::InvalidConfig {
                field: "linux.namespaces",
                reason: "a new mount namespace is required".into(),
            });
        }
        let process = spec
            .process()
            .as_ref()
            .map(ProcessConfig::from_spec)
            .transpose()?;
        let hostname = spec.hostname().clone().filter(|h| !h.is_empty());
        let domainname = spec.domainname().clone().filter(|h| !h.is_empty());
        namespaces.check_uts(hostname.as_deref(), domainname.as_deref())?;
        let lsm = lsm_of(spec)?;
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
            hooks: spec.hooks().clone().unwrap_or_default(),
            seccomp: seccomp_of(spec)?,
            lsm,
            personality: linux
                .and_then(|l| l.personality().as_ref())
                .map(crate::scheduling::personality)
                .transpose()?,
            annotations: spec.annotations().clone().unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_scheduler_flag_names_parse() {
        let mut v = serde_json::json!({"process": {"scheduler": {"policy": "SCHED_OTHER",
            "flags": ["SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_DL_OVERRUN", "SCHED_FLAG_RECLAIM"]}}});
        normalize_scheduler_flags(&mut v);
        let s: oci_spec::runtime::Scheduler =
            serde_json::from_value(v["process"]["scheduler"].clone()).expect("parses");
        assert_eq!(s.flags().as_ref().map(Vec::len), Some(3));
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
