//! `hako features`: what this build of hako supports, as runtime-spec `features.md` describes,
//! so that engines can tell before they try. Only what hako really honours is listed: anything
//! left out here is refused with an error when a config asks for it.

use serde_json::{json, Value};

/// Mount options the rootfs code understands (hako-namespaces `mount_opts.rs`).
const MOUNT_OPTIONS: &[&str] = &[
    "acl",
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "idmap",
    "iversion",
    "lazytime",
    "loud",
    "mand",
    "noacl",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "ratime",
    "rbind",
    "rdev",
    "rdiratime",
    "relatime",
    "remount",
    "ridmap",
    "rexec",
    "rnoatime",
    "rnodev",
    "rnodiratime",
    "rnoexec",
    "rnorelatime",
    "rnostrictatime",
    "rnosuid",
    "rnosymfollow",
    "ro",
    "rprivate",
    "rrelatime",
    "rro",
    "rrw",
    "rshared",
    "rslave",
    "rstrictatime",
    "rsuid",
    "rsymfollow",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "unbindable",
];

/// The capabilities hako knows by name (those of the kernel headers it was built against).
fn capabilities() -> Vec<String> {
    let mut v: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    v.sort();
    v
}

/// The newest runtime-spec whose every field hako honours (or refuses for a host limit):
/// 1.3.0's netDevices, memoryPolicy, execCPUAffinity, intelRdt `schemata` and monitoring.
/// The version hako writes in `spec` and `state` (`state::OCI_VERSION`) is left as it was: a
/// config's version says what its author wrote against, and runc 1.3 too writes an older one.
const OCI_VERSION_MAX: &str = "1.3.0";

/// Whether the kernel has the rdma cgroup controller, enabled (`/proc/cgroups`, cgroups(7)).
fn host_has_rdma_controller() -> bool {
    std::fs::read_to_string("/proc/cgroups").is_ok_and(|t| {
        t.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.first() == Some(&"rdma") && f.get(3) == Some(&"1")
        })
    })
}

/// The namespace types hako creates and joins; `time` where the kernel has it (Linux 5.6,
/// `/proc/self/ns/time`), as a config asking for it fails otherwise.
fn namespaces() -> Vec<&'static str> {
    let mut v = vec!["cgroup", "ipc", "mount", "network", "pid", "user", "uts"];
    if std::path::Path::new("/proc/self/ns/time").exists() {
        v.push("time");
    }
    v
}

/// The features document; `criu` is the executable checkpoint and restore would run.
pub fn features(criu: &std::path::Path) -> Value {
    // Labels are applied when the host has the LSM, refused when it does not (lsm.rs).
    let host = crate::lsm::HostLsm::host();
    let rdt = crate::resctrl::host_root().is_some();
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION_MAX,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": MOUNT_OPTIONS,
        "linux": {
            "namespaces": namespaces(),
            "capabilities": capabilities(),
            "cgroup": {
                "v1": true,
                "v2": true,
                "systemd": true,
                "systemdUser": true,
                // Applied by the cgroups crate where the host has the controller.
                "rdma": host_has_rdma_controller()
            },
            "seccomp": {
                "enabled": true,
                "actions": [
                    "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                    "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE",
                    "SCMP_ACT_TRAP"
                ],
                "operators": [
                    "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                    "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"
                ],
                "archs": [
                    "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_PPC64",
                    "SCMP_ARCH_PPC64LE", "SCMP_ARCH_RISCV64", "SCMP_ARCH_S390X", "SCMP_ARCH_X32",
                    "SCMP_ARCH_X86", "SCMP_ARCH_X86_64"
                ],
                "knownFlags": [
                    "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                    "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
                ],
                "supportedFlags": [
                    "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                    "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
                ]
            },
            "apparmor": { "enabled": host.apparmor() },
            "selinux": { "enabled": host.selinux() },
            // resctrl.rs: present when the host has resctrl mounted (runc's IsEnabled).
            "intelRdt": { "enabled": rdt, "schemata": rdt, "monitoring": rdt },
            // placement.rs: every mode and flag of config-linux.md; the kernel has the last word
            // on the newer ones (MPOL_WEIGHTED_INTERLEAVE is Linux 6.9).
            "memoryPolicy": {
                "modes": [
                    "MPOL_DEFAULT", "MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE",
                    "MPOL_PREFERRED", "MPOL_PREFERRED_MANY", "MPOL_LOCAL"
                ],
                "flags": ["MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES"]
            },
            // netdev.rs, through rtnetlink.rs.
            "netDevices": { "enabled": true },
            // Made by the parent with mount_setattr(2) (Linux 5.12), with or without the
            // container's own user namespace (namespaces crate, rootfs/idmapped.rs).
            "mountExtensions": { "idmap": { "enabled": true } }
        },
        "annotations": checkpoint_annotations(criu, json!({
            "org.hako.version": env!("CARGO_PKG_VERSION")
        }))
    })
}

/// Checkpoint/restore as it is on this host: this build supports it, and it is enabled when
/// the criu executable is found (runc's annotation, which engines read, plus where it is).
/// Whether CRIU then works on this kernel only `criu check` can tell, which takes a process
/// and a kernel probe: `features` stays a lookup in PATH, as fast as the rest of it.
fn checkpoint_annotations(criu: &std::path::Path, mut base: Value) -> Value {
    let found = crate::criu::find_executable(criu);
    if let Some(map) = base.as_object_mut() {
        map.insert(
            "org.opencontainers.runc.checkpoint.enabled".into(),
            json!(found.is_some().to_string()),
        );
        if let Some(path) = found {
            map.insert(
                "org.hako.checkpoint.criu".into(),
                json!(path.to_string_lossy()),
            );
        }
    }
    base
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_as_the_spec_type() {
        let f: oci_spec::runtime::Features =
            serde_json::from_value(features(std::path::Path::new("criu"))).expect("valid");
        assert!(f.hooks().as_ref().is_some_and(|h| h.len() == 6));
    }

    #[test]
    fn checkpoint_is_enabled_only_with_a_criu_executable() {
        let a = features(std::path::Path::new("/nonexistent/criu"));
        assert_eq!(
            a["annotations"]["org.opencontainers.runc.checkpoint.enabled"],
            "false"
        );
        assert!(a["annotations"].get("org.hako.checkpoint.criu").is_none());
        let a = features(std::path::Path::new("/bin/sh"));
        assert_eq!(
            a["annotations"]["org.opencontainers.runc.checkpoint.enabled"],
            "true"
        );
        assert_eq!(a["annotations"]["org.hako.checkpoint.criu"], "/bin/sh");
    }
}
