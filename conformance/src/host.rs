//! Facts about the host the suite runs on, gathered once: they decide which cases can run
//! (a missing cgroup controller or LSM is a `skip`, never a `pass`) and give the checker the
//! host's namespace inodes to compare with.
//!
//! cgroups come in two host layouts (cgroups(7)): v1 or hybrid, one hierarchy per controller
//! under `/sys/fs/cgroup/<controller>/`; and unified (pure v2, e.g. a kernel booted with
//! `cgroup_no_v1=all`), one cgroup2 mount at /sys/fs/cgroup whose root `cgroup.controllers`
//! lists what the kernel offers (Documentation/admin-guide/cgroup-v2.rst).

use serde_json::{Map, Value};
use std::os::unix::fs::MetadataExt;

/// What the host has.
pub struct Host {
    /// `/proc/self/ns/<name>` inode per namespace file name.
    pub ns: Map<String, Value>,
    /// The harness's bounding set: what a container can possibly get.
    pub bounding: u64,
    /// Whether the harness already runs with no_new_privs.
    pub nnp: bool,
    /// The harness's oom_score_adj (a container cannot go lower without CAP_SYS_RESOURCE).
    pub oom_score_adj: i64,
    /// Whether /sys/fs/cgroup is a pure cgroup v2 (unified) mount.
    pub unified: bool,
    /// cgroup v1 hierarchies mounted under /sys/fs/cgroup; when [`Host::unified`], the
    /// controllers the v2 root offers (its `cgroup.controllers`).
    pub controllers: Vec<String>,
    /// `major:minor` of a real block device, for blkio throttling cases.
    pub block_device: Option<String>,
    /// Whether AppArmor is enabled.
    pub apparmor: bool,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

impl Host {
    /// Looks around.
    pub fn probe() -> Self {
        let mut ns = Map::new();
        for (_, file) in crate::check::NAMESPACES {
            if let Ok(m) = std::fs::metadata(format!("/proc/self/ns/{file}")) {
                ns.insert(file.to_string(), Value::from(m.ino()));
            }
        }
        let status = read("/proc/self/status");
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix(':'))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        let unified = is_unified();
        let controllers = if unified {
            read("/sys/fs/cgroup/cgroup.controllers")
                .split_whitespace()
                .map(str::to_string)
                .collect()
        } else {
            std::fs::read_dir("/sys/fs/cgroup")
                .map(|d| {
                    d.flatten()
                        .filter(|e| e.path().join("cgroup.procs").exists())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        let block_device = std::fs::read_dir("/sys/block").ok().and_then(|d| {
            let mut names: Vec<String> = d
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| {
                    !n.starts_with("loop") && !n.starts_with("ram") && !n.starts_with("zram")
                })
                .collect();
            names.sort();
            names
                .first()
                .map(|n| read(&format!("/sys/block/{n}/dev")).trim().to_string())
                .filter(|s| !s.is_empty())
        });
        Host {
            ns,
            bounding: u64::from_str_radix(&field("CapBnd"), 16).unwrap_or(0),
            nnp: field("NoNewPrivs") == "1",
            oom_score_adj: read("/proc/self/oom_score_adj").trim().parse().unwrap_or(0),
            unified,
            controllers,
            block_device,
            apparmor: read("/sys/module/apparmor/parameters/enabled").trim() == "Y",
        }
    }

    /// Whether a cgroup v1 hierarchy named `name` is mounted or, when unified, whether the v2
    /// root offers controller `name` (a v2 name: `io`, not `blkio`).
    pub fn has_controller(&self, name: &str) -> bool {
        self.controllers.iter().any(|c| c == name)
    }
}

/// Unified mode: the root has `cgroup.controllers` (only cgroup2 has it) and the mount at
/// /sys/fs/cgroup is cgroup2 itself, not a tmpfs holding v1 hierarchies and a `unified` dir.
fn is_unified() -> bool {
    std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
        && nix::sys::statfs::statfs("/sys/fs/cgroup")
            .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
}
