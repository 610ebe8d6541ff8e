//! `linux.intelRdt` (config-linux.md, "IntelRdt"): the container's tasks in a resctrl control
//! group (a CLOS, Documentation/arch/x86/resctrl.rst), its `schemata` written as the spec orders
//! it, and a monitoring group of its own with `enableMonitoring` (or the deprecated `enableCMT`,
//! `enableMBM`), as runc's libcontainer/intelrdt drives the file system.
//!
//! The resctrl root is found in the runtime's mount table (`/proc/self/mountinfo`, type
//! `resctrl`); without one, the config is refused with runc's words before anything exists
//! (config-linux.md: "If no mounted resctrl pseudo-filesystem is available ... MUST generate an
//! error"). Everything below takes the root as a parameter, so the unit tests drive a temporary
//! directory laid out as the kernel lays out resctrl.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

const FIELD: &str = "linux.intelRdt";

/// The validated `intelRdt`, bound to a resctrl root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IntelRdt {
    /// The resctrl mount point.
    root: PathBuf,
    /// The CLOS directory name: `closID`, else the container id.
    clos: String,
    /// Whether hako makes (and later removes) the CLOS directory: no `closID` given.
    owns_clos: bool,
    /// What to write to `schemata`, in order; empty: nothing.
    schemata: Vec<String>,
    /// The monitoring group's name (the container id), with `enableMonitoring`.
    monitor: Option<String>,
}

/// What `delete` removes: the monitoring group, and the CLOS directory hako made.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResctrlDirs {
    /// Directories to remove, innermost first.
    pub dirs: Vec<PathBuf>,
}

fn invalid(reason: String) -> Error {
    Error::InvalidConfig {
        field: FIELD,
        reason,
    }
}

/// The resctrl mount point in `mountinfo` (proc(5): field 5 the mount point, the type after
/// the ` - ` separator).
pub(crate) fn find_root(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        (right.split_whitespace().next()? == "resctrl")
            .then(|| left.split_whitespace().nth(4).map(PathBuf::from))
            .flatten()
    })
}

/// The host's resctrl root, if mounted.
pub(crate) fn host_root() -> Option<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .ok()
        .and_then(|m| find_root(&m))
}

/// The lines written to `schemata` (config-linux.md rules): `l3CacheSchema` without its `MB:`
/// lines when `memBwSchema` is set, then `memBwSchema`, joined in one write; then `schemata`.
fn schemata_of(rdt: &oci_spec::runtime::LinuxIntelRdt) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let l3 = rdt.l3_cache_schema().as_deref().filter(|s| !s.is_empty());
    let mb = rdt.mem_bw_schema().as_deref().filter(|s| !s.is_empty());
    if let Some(mb) = mb {
        if !mb.starts_with("MB:") || mb.contains('\n') {
            return Err(invalid(format!(
                "memBwSchema {mb:?} must be one line starting with MB:"
            )));
        }
    }
    let joint = match (l3, mb) {
        (Some(l3), Some(mb)) => {
            let mut lines: Vec<&str> = l3.lines().filter(|l| !l.starts_with("MB:")).collect();
            lines.push(mb);
            Some(lines.join("\n"))
        }
        (Some(l3), None) => Some(l3.to_string()),
        (None, Some(mb)) => Some(mb.to_string()),
        (None, None) => None,
    };
    out.extend(joint);
    out.extend(
        rdt.schemata()
            .iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .cloned(),
    );
    Ok(out)
}

impl IntelRdt {
    /// Validates `intelRdt` for the container `id` against the resctrl mounted at `root`
    /// (`None`: not mounted). The messages are runc's (libcontainer/configs/validate).
    pub(crate) fn from_spec(
        rdt: &oci_spec::runtime::LinuxIntelRdt,
        id: &str,
        root: Option<&Path>,
    ) -> Result<Self> {
        let Some(root) = root else {
            return Err(invalid(
                "intelRdt is specified in config, but Intel RDT is not supported or enabled".into(),
            ));
        };
        let info = root.join("info");
        if rdt.l3_cache_schema().is_some() && !info.join("L3").is_dir() {
            return Err(invalid(
                "intelRdt.l3CacheSchema is specified in config, but Intel RDT/CAT is not enabled"
                    .into(),
            ));
        }
        if rdt.mem_bw_schema().is_some() && !info.join("MB").is_dir() {
            return Err(invalid(
                "intelRdt.memBwSchema is specified in config, but Intel RDT/MBA is not enabled"
                    .into(),
            ));
        }
        #[allow(deprecated)] // enableCMT/enableMBM: deprecated by 1.3, still honoured as runc does
        let monitoring = rdt.enable_monitoring().unwrap_or(false)
            || rdt.enable_cmt().unwrap_or(false)
            || rdt.enable_mbm().unwrap_or(false);
        if monitoring && !info.join("L3_MON").is_dir() {
            return Err(invalid(
                "intelRdt.enableMonitoring is specified in config, but Intel RDT monitoring is not enabled"
                    .into(),
            ));
        }
        let (clos, owns_clos) = match rdt.clos_id().as_deref() {
            Some(c) => {
                if c.is_empty() || c == "." || c == ".." || c.contains('/') {
                    return Err(invalid(format!("invalid intelRdt.ClosID {c:?}")));
                }
                (c.to_string(), false)
            }
            None => (id.to_string(), true),
        };
        let schemata = schemata_of(rdt)?;
        let dir = root.join(&clos);
        // A closID without any schema names a group someone configured: it must exist.
        if !owns_clos && schemata.is_empty() && !dir.is_dir() {
            return Err(invalid(format!(
                "closID {clos:?}: no such resctrl group, and no schema to create it with"
            )));
        }
        Ok(IntelRdt {
            root: root.to_path_buf(),
            clos,
            owns_clos,
            schemata,
            monitor: monitoring.then(|| id.to_string()),
        })
    }

    /// Puts `pid` in the CLOS (made if missing, its schemata written) and in the monitoring
    /// group; returns what `delete` must remove. Partial work is undone on failure.
    pub(crate) fn apply(&self, pid: i32) -> Result<ResctrlDirs> {
        let mut made = ResctrlDirs::default();
        let result = self.apply_recording(pid, &mut made);
        match result {
            Ok(()) => Ok(made),
            Err(e) => {
                let _ = made.remove();
                Err(e)
            }
        }
    }

    fn apply_recording(&self, pid: i32, made: &mut ResctrlDirs) -> Result<()> {
        let clos = self.root.join(&self.clos);
        let existed = clos.is_dir();
        if !existed {
            std::fs::create_dir(&clos).map_err(Error::io("mkdir", &clos))?;
        }
        if self.owns_clos {
            made.dirs.insert(0, clos.clone());
        }
        let schemata = clos.join("schemata");
        if existed && !self.owns_clos && !self.schemata.is_empty() {
            // An existing group keeps its schemata: they must be what the config asks for
            // (config-linux.md: "compare ... and generate an error if doesn't match").
            let have = std::fs::read_to_string(&schemata).map_err(Error::io("read", &schemata))?;
            for want in self.schemata.iter().flat_map(|s| s.lines()) {
                if !have.lines().any(|l| same_schema_line(l, want)) {
                    return Err(invalid(format!(
                        "closID {:?} exists with other schemata (wanted {want:?})",
                        self.clos
                    )));
                }
            }
        } else {
            for s in &self.schemata {
                std::fs::write(&schemata, format!("{s}\n"))
                    .map_err(Error::io("write", &schemata))?;
            }
        }
        write_task(&clos, pid)?;
        if let Some(name) = &self.monitor {
            let mon = clos.join("mon_groups").join(name);
            // mon_groups/ is the kernel's in every control group of a monitoring-capable host;
            // `create_dir_all` only makes it on a test tree.
            std::fs::create_dir_all(&mon).map_err(Error::io("mkdir", &mon))?;
            made.dirs.insert(0, mon.clone());
            write_task(&mon, pid)?;
        }
        Ok(())
    }
}

/// Whether a line read from `schemata` says what `want` asks: the kernel prints every domain
/// of the resource, padded (`L3:0=7ff;1=7ff`), so compare the domains `want` names.
fn same_schema_line(have: &str, want: &str) -> bool {
    let split = |l: &str| -> Option<(String, Vec<(String, String)>)> {
        let (res, doms) = l.trim().split_once(':')?;
        let doms = doms
            .split(';')
            .filter_map(|d| d.split_once('='))
            .map(|(k, v)| {
                let v = v.trim().trim_start_matches('0');
                (k.trim().to_string(), v.to_ascii_lowercase())
            })
            .collect();
        Some((res.trim().to_string(), doms))
    };
    match (split(have), split(want)) {
        (Some((hr, hd)), Some((wr, wd))) => hr == wr && wd.iter().all(|d| hd.contains(d)),
        _ => false,
    }
}

fn write_task(dir: &Path, pid: i32) -> Result<()> {
    let tasks = dir.join("tasks");
    std::fs::write(&tasks, pid.to_string()).map_err(Error::io("write", &tasks))
}

impl ResctrlDirs {
    /// Removes the directories (rmdir: resctrl moves their tasks back to the parent group);
    /// one already gone is fine.
    pub(crate) fn remove(&self) -> Result<()> {
        for d in &self.dirs {
            match std::fs::remove_dir(d) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::io("rmdir", d)(e))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Checks `linux.intelRdt`, if any, against this host (for `create`).
pub(crate) fn of_spec(spec: &oci_spec::runtime::Spec, id: &str) -> Result<Option<IntelRdt>> {
    match spec.linux().as_ref().and_then(|l| l.intel_rdt().as_ref()) {
        Some(rdt) => Ok(Some(IntelRdt::from_spec(rdt, id, host_root().as_deref())?)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A resctrl root as the kernel lays it out with CAT, MBA and monitoring: `info/{L3,MB,
    /// L3_MON}`, the root group's `schemata` and `tasks`, `mon_groups/`. Directories made in it
    /// get no files from a plain tmpfs, so `mkdir` here is followed by what the kernel would
    /// create (see `kernel_mkdir`).
    fn fixture() -> tempfile::TempDir {
        let d = tempfile::tempdir().expect("tempdir");
        for sub in [
            "info/L3",
            "info/MB",
            "info/L3_MON",
            "mon_groups",
            "mon_data",
        ] {
            std::fs::create_dir_all(d.path().join(sub)).expect("mkdir");
        }
        std::fs::write(
            d.path().join("schemata"),
            "L3:0=7ff;1=7ff\nMB:0=100;1=100\n",
        )
        .expect("w");
        std::fs::write(d.path().join("tasks"), "").expect("w");
        d
    }

    fn rdt(v: serde_json::Value) -> oci_spec::runtime::LinuxIntelRdt {
        serde_json::from_value(v).expect("intelRdt")
    }

    #[test]
    fn the_mount_point_comes_from_mountinfo() {
        let m = "25 1 0:22 / / rw - ext4 /dev/vda rw\n\
                 40 25 0:35 / /sys/fs/resctrl rw,relatime - resctrl resctrl rw\n";
        assert_eq!(find_root(m), Some(PathBuf::from("/sys/fs/resctrl")));
        assert_eq!(find_root("25 1 0:22 / / rw - ext4 /dev/vda rw\n"), None);
    }

    #[test]
    fn without_resctrl_the_error_is_runcs() {
        let e = IntelRdt::from_spec(&rdt(json!({"closID": "x"})), "c1", None).expect_err("none");
        assert_eq!(
            e.to_string(),
            "invalid config: linux.intelRdt: intelRdt is specified in config, but Intel RDT is not supported or enabled"
        );
    }

    #[test]
    fn missing_features_and_bad_clos_ids_are_refused() {
        let d = fixture();
        std::fs::remove_dir(d.path().join("info/MB")).expect("rm");
        let e = IntelRdt::from_spec(&rdt(json!({"memBwSchema": "MB:0=20"})), "c", Some(d.path()))
            .expect_err("no MBA");
        assert!(
            e.to_string().contains("Intel RDT/MBA is not enabled"),
            "{e}"
        );
        for bad in ["..", "a/b", ""] {
            let e = IntelRdt::from_spec(
                &rdt(json!({"closID": bad, "l3CacheSchema": "L3:0=f"})),
                "c",
                Some(d.path()),
            )
            .expect_err(bad);
            assert!(e.to_string().contains("invalid intelRdt.ClosID"), "{e}");
        }
        let e = IntelRdt::from_spec(&rdt(json!({"closID": "nosuch"})), "c", Some(d.path()))
            .expect_err("preconfigured group missing");
        assert!(e.to_string().contains("no such resctrl group"), "{e}");
    }

    #[test]
    fn schemata_follow_the_spec_order() {
        let s = schemata_of(&rdt(json!({
            "l3CacheSchema": "L3:0=7f0;1=1f\nMB:0=10",
            "memBwSchema": "MB:0=20;1=70",
            "schemata": ["L2:0=f"]
        })))
        .expect("valid");
        assert_eq!(s, ["L3:0=7f0;1=1f\nMB:0=20;1=70", "L2:0=f"]);
        assert_eq!(
            schemata_of(&rdt(json!({"memBwSchema": "MB:0=20"}))).expect("mb"),
            ["MB:0=20"]
        );
        assert!(schemata_of(&rdt(json!({"memBwSchema": "L3:0=20"}))).is_err());
        assert!(schemata_of(&rdt(json!({}))).expect("none").is_empty());
    }

    #[test]
    fn a_container_group_is_made_joined_and_removed() {
        let d = fixture();
        let r = IntelRdt::from_spec(
            &rdt(json!({"l3CacheSchema": "L3:0=f0", "memBwSchema": "MB:0=20", "enableMonitoring": true})),
            "ctr1",
            Some(d.path()),
        )
        .expect("valid");
        let dirs = r.apply(4242).expect("apply");
        assert_eq!(
            std::fs::read_to_string(d.path().join("ctr1/schemata")).expect("schemata"),
            "L3:0=f0\nMB:0=20\n"
        );
        assert_eq!(
            std::fs::read_to_string(d.path().join("ctr1/tasks")).expect("t"),
            "4242"
        );
        assert_eq!(
            std::fs::read_to_string(d.path().join("ctr1/mon_groups/ctr1/tasks")).expect("t"),
            "4242"
        );
        assert_eq!(
            dirs.dirs,
            [d.path().join("ctr1/mon_groups/ctr1"), d.path().join("ctr1")]
        );
        // The real resctrl removes a group's files (and its mon_groups/) with it; a plain
        // directory needs help, after which `remove` takes what is left in its order.
        for f in ["ctr1/mon_groups/ctr1/tasks", "ctr1/tasks", "ctr1/schemata"] {
            std::fs::remove_file(d.path().join(f)).expect("rm");
        }
        std::fs::remove_dir(d.path().join("ctr1/mon_groups/ctr1")).expect("rm");
        std::fs::remove_dir(d.path().join("ctr1/mon_groups")).expect("rm");
        dirs.remove().expect("remove");
        assert!(!d.path().join("ctr1").exists());
    }

    #[test]
    fn an_existing_clos_is_joined_and_its_schemata_compared() {
        let d = fixture();
        std::fs::create_dir(d.path().join("gold")).expect("mkdir");
        std::fs::write(
            d.path().join("gold/schemata"),
            "    L3:0=0f0;1=7ff\n      MB:0= 20;1=100\n",
        )
        .expect("w");
        let ok = IntelRdt::from_spec(
            &rdt(json!({"closID": "gold", "l3CacheSchema": "L3:0=f0"})),
            "c2",
            Some(d.path()),
        )
        .expect("valid");
        let dirs = ok.apply(7).expect("matches");
        assert!(dirs.dirs.is_empty(), "a named group is not ours to remove");
        assert_eq!(
            std::fs::read_to_string(d.path().join("gold/tasks")).expect("t"),
            "7"
        );
        let other = IntelRdt::from_spec(
            &rdt(json!({"closID": "gold", "memBwSchema": "MB:0=50"})),
            "c3",
            Some(d.path()),
        )
        .expect("valid");
        let e = other.apply(8).expect_err("mismatch");
        assert!(e.to_string().contains("exists with other schemata"), "{e}");
        // Preconfigured group without schema: joined as is.
        let plain = IntelRdt::from_spec(&rdt(json!({"closID": "gold"})), "c4", Some(d.path()))
            .expect("exists");
        plain.apply(9).expect("join");
    }
}
