//! Where the container's processes run and allocate: `process.execCPUAffinity` (config.md,
//! runtime-spec 1.3) and `linux.memoryPolicy` (config-linux.md, "Memory policy").
//!
//! CPU affinity has two moments, as runc 1.3 applies them: `initial` is the affinity of the
//! runtime's process *before* it joins the container's cgroup (so that the set-up work runs on
//! the housekeeping CPUs a node reserves), `final` is set just before execve(2), after the cgroup
//! join (which, with a cpuset, resets the affinity to the cpuset's CPUs: cpuset(7)). hako clones
//! the process, so `initial` is set on the parent around the clone and inherited by the child
//! (sched_setaffinity(2): "a child created via fork(2) inherits its parent's CPU affinity mask").
//!
//! The memory policy is set with set_mempolicy(2) just before execve(2); it is inherited across
//! fork(2) and kept across execve(2) (set_mempolicy(2), NOTES).

use crate::error::{Error, Result};

/// The highest CPU or node number hako accepts: nix's `CpuSet` (glibc's `CPU_SETSIZE`) holds
/// 1024, the kernel's `MAX_NUMNODES` is at most 1024 (`CONFIG_NODES_SHIFT` 10).
const MAX_ID: u32 = 1023;

/// Parses a kernel list (`0-3,7`: cpuset(7), "FORMATS", "List format") into sorted ids.
pub(crate) fn parse_list(field: &'static str, text: &str) -> Result<Vec<u32>> {
    let bad = |why: String| Error::InvalidConfig {
        field,
        reason: format!("{text:?}: {why}"),
    };
    let number = |s: &str| -> Result<u32> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(format!("{s:?} is not a number")));
        }
        let n: u32 = s.parse().map_err(|_| bad(format!("{s} is too large")))?;
        if n > MAX_ID {
            return Err(bad(format!("{n} is above {MAX_ID}")));
        }
        Ok(n)
    };
    let mut ids = Vec::new();
    for part in text.split(',') {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None => {
                let n = number(part)?;
                (n, n)
            }
        };
        if lo > hi {
            return Err(bad(format!("range {lo}-{hi} is reversed")));
        }
        ids.extend(lo..=hi);
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// `process.execCPUAffinity`, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ExecCpuAffinity {
    /// CPUs of the runtime's process until it is in the container's cgroup.
    pub(crate) initial: Option<Vec<u32>>,
    /// CPUs of the process from just before execve(2) on.
    pub(crate) last: Option<Vec<u32>>,
}

impl ExecCpuAffinity {
    /// Converts the spec's object; `None` when neither list is set. An empty string is the same
    /// as an absent one (config.md: "If omitted or empty, runtime SHOULD NOT change ...").
    pub(crate) fn from_spec(
        a: Option<&oci_spec::runtime::ExecCPUAffinity>,
    ) -> Result<Option<Self>> {
        let Some(a) = a else { return Ok(None) };
        let list = |field, s: &Option<String>| {
            s.as_deref()
                .filter(|s| !s.is_empty())
                .map(|s| parse_list(field, s))
                .transpose()
        };
        let out = ExecCpuAffinity {
            initial: list("process.execCPUAffinity.initial", a.initial())?,
            last: list("process.execCPUAffinity.final", a.cpu_affinity_final())?,
        };
        Ok((out != ExecCpuAffinity::default()).then_some(out))
    }
}

fn cpu_set(field: &'static str, cpus: &[u32]) -> Result<nix::sched::CpuSet> {
    let mut set = nix::sched::CpuSet::new();
    for &c in cpus {
        set.set(c as usize).map_err(|_| Error::InvalidConfig {
            field,
            reason: format!("cpu {c} is beyond what hako can address"),
        })?;
    }
    Ok(set)
}

/// Sets the calling thread's affinity (sched_setaffinity(2)); an affinity with no online CPU
/// of ours is the kernel's EINVAL, reported with the field.
fn set_affinity(field: &'static str, cpus: &[u32]) -> Result<()> {
    let set = cpu_set(field, cpus)?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
        .map_err(|source| Error::Placement { field, source })
}

/// Runs `clone` with the calling process's affinity set to `initial` (if any), restoring the
/// old one in the parent afterwards; the child keeps `initial` until its cgroup join.
pub(crate) fn with_initial_affinity(
    affinity: Option<&ExecCpuAffinity>,
    clone: impl FnOnce() -> Result<crate::spawn::ForCgroup>,
) -> Result<crate::spawn::ForCgroup> {
    let Some(initial) = affinity.and_then(|a| a.initial.as_deref()) else {
        return clone();
    };
    let me = nix::unistd::Pid::from_raw(0);
    let old = nix::sched::sched_getaffinity(me).map_err(Error::sys("sched_getaffinity"))?;
    set_affinity("process.execCPUAffinity.initial", initial)?;
    let result = clone();
    if let Ok(crate::spawn::ForCgroup {
        forked: crate::spawn::Forked::Child,
        ..
    }) = &result
    {
        return result;
    }
    nix::sched::sched_setaffinity(me, &old).map_err(Error::sys("sched_setaffinity"))?;
    result
}

/// `final`, just before execve(2) (after the cgroup join).
pub(crate) fn apply_final(affinity: Option<&ExecCpuAffinity>) -> Result<()> {
    match affinity.and_then(|a| a.last.as_deref()) {
        Some(cpus) => set_affinity("process.execCPUAffinity.final", cpus),
        None => Ok(()),
    }
}

/// `linux.memoryPolicy`, validated: the mode and flags as set_mempolicy(2) takes them, and the
/// node mask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemoryPolicy {
    /// `MPOL_*` mode or'ed with the `MPOL_F_*` flags.
    mode: libc::c_int,
    /// Bit `n` of word `n / 64` is node `n`.
    nodes: Vec<u64>,
}

// linux/mempolicy.h (uapi). MPOL_PREFERRED_MANY is Linux 5.15, MPOL_WEIGHTED_INTERLEAVE 6.9.
const MPOL_DEFAULT: libc::c_int = 0;
const MPOL_PREFERRED: libc::c_int = 1;
const MPOL_BIND: libc::c_int = 2;
const MPOL_INTERLEAVE: libc::c_int = 3;
const MPOL_LOCAL: libc::c_int = 4;
const MPOL_PREFERRED_MANY: libc::c_int = 5;
const MPOL_WEIGHTED_INTERLEAVE: libc::c_int = 6;
const MPOL_F_STATIC_NODES: libc::c_int = 1 << 15;
const MPOL_F_RELATIVE_NODES: libc::c_int = 1 << 14;
const MPOL_F_NUMA_BALANCING: libc::c_int = 1 << 13;

const FIELD: &str = "linux.memoryPolicy";

impl MemoryPolicy {
    /// Converts and validates the spec's object against the host's nodes (`online`, the list
    /// the kernel reads as `/sys/devices/system/node/online`): the rules are set_mempolicy(2)'s.
    pub(crate) fn from_spec(
        p: &oci_spec::runtime::LinuxMemoryPolicy,
        online_nodes: &[u32],
    ) -> Result<Self> {
        use oci_spec::runtime::{MemoryPolicyFlagType as F, MemoryPolicyModeType as M};
        let invalid = |reason: String| Error::InvalidConfig {
            field: FIELD,
            reason,
        };
        let nodes = match p.nodes().as_deref().filter(|n| !n.is_empty()) {
            Some(n) => parse_list("linux.memoryPolicy.nodes", n)?,
            None => Vec::new(),
        };
        let (mode, needs_nodes, takes_nodes) = match p.mode() {
            M::MpolDefault => (MPOL_DEFAULT, false, false),
            M::MpolLocal => (MPOL_LOCAL, false, false),
            // An empty mask means "the local node" (set_mempolicy(2)).
            M::MpolPreferred => (MPOL_PREFERRED, false, true),
            M::MpolBind => (MPOL_BIND, true, true),
            M::MpolInterleave => (MPOL_INTERLEAVE, true, true),
            M::MpolPreferredMany => (MPOL_PREFERRED_MANY, true, true),
            M::MpolWeightedInterleave => (MPOL_WEIGHTED_INTERLEAVE, true, true),
        };
        let mode_name = p.mode().to_string();
        if !takes_nodes && !nodes.is_empty() {
            return Err(invalid(format!("{mode_name} takes no nodes")));
        }
        if needs_nodes && nodes.is_empty() {
            return Err(invalid(format!("{mode_name} needs nodes")));
        }
        let mut flags = 0;
        for f in p.flags().iter().flatten() {
            flags |= match f {
                F::MpolFStaticNodes => MPOL_F_STATIC_NODES,
                F::MpolFRelativeNodes => MPOL_F_RELATIVE_NODES,
                F::MpolFNumaBalancing => MPOL_F_NUMA_BALANCING,
            };
        }
        if flags & MPOL_F_STATIC_NODES != 0 && flags & MPOL_F_RELATIVE_NODES != 0 {
            return Err(invalid(
                "MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other".into(),
            ));
        }
        if flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES) != 0 && !takes_nodes {
            return Err(invalid(format!("{mode_name} takes no node flags")));
        }
        // Linux 5.12 allows it with MPOL_BIND only, 6.7 with MPOL_PREFERRED_MANY too.
        if flags & MPOL_F_NUMA_BALANCING != 0 && !matches!(mode, MPOL_BIND | MPOL_PREFERRED_MANY) {
            return Err(invalid(format!(
                "MPOL_F_NUMA_BALANCING needs MPOL_BIND or MPOL_PREFERRED_MANY, not {mode_name}"
            )));
        }
        // Relative and static node numbers may name nodes the host does not have (they are
        // remapped or kept for later: set_mempolicy(2)); plain ones must exist.
        if flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES) == 0 {
            if let Some(n) = nodes.iter().find(|n| !online_nodes.contains(n)) {
                return Err(invalid(format!(
                    "node {n} is not online on this host (online: {online_nodes:?})"
                )));
            }
        }
        let mut mask = vec![0u64; (MAX_ID as usize + 1) / 64];
        for n in nodes {
            mask[n as usize / 64] |= 1 << (n % 64);
        }
        Ok(MemoryPolicy {
            mode: mode | flags,
            nodes: mask,
        })
    }

    /// set_mempolicy(2) for the calling thread (and what it forks and execs).
    pub(crate) fn apply(&self) -> Result<()> {
        crate::sys::set_mempolicy(self.mode, &self.nodes).map_err(|source| Error::Placement {
            field: FIELD,
            source,
        })
    }
}

/// The host's online NUMA nodes; one node 0 where the kernel has no NUMA support (no sysfs
/// directory), as set_mempolicy(2) then sees it.
pub(crate) fn online_nodes() -> Result<Vec<u32>> {
    let path = "/sys/devices/system/node/online";
    match std::fs::read_to_string(path) {
        Ok(s) => parse_list("linux.memoryPolicy", s.trim()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![0]),
        Err(e) => Err(Error::io("read", path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_as_the_kernel_writes_them() {
        assert_eq!(parse_list("f", "0").expect("one"), [0]);
        assert_eq!(parse_list("f", "0-3,7").expect("range"), [0, 1, 2, 3, 7]);
        assert_eq!(parse_list("f", "3,1-2,2").expect("dups"), [1, 2, 3]);
        for bad in [
            "",
            "a",
            "1-",
            "-1",
            "3-1",
            "1,,2",
            " 1",
            "1024",
            "99999999999",
        ] {
            let e = parse_list("f", bad).expect_err(bad);
            assert!(e.to_string().starts_with("invalid config: f: "), "{e}");
        }
    }

    fn affinity(json: serde_json::Value) -> Result<Option<ExecCpuAffinity>> {
        let a: oci_spec::runtime::ExecCPUAffinity = serde_json::from_value(json).expect("json");
        ExecCpuAffinity::from_spec(Some(&a))
    }

    #[test]
    fn affinity_keeps_both_moments() {
        let a = affinity(serde_json::json!({"initial": "0", "final": "1-2"}))
            .expect("valid")
            .expect("set");
        assert_eq!(a.initial.as_deref(), Some(&[0][..]));
        assert_eq!(a.last.as_deref(), Some(&[1, 2][..]));
        assert_eq!(affinity(serde_json::json!({})).expect("valid"), None);
        let e = affinity(serde_json::json!({"final": "1-2048"})).expect_err("too big");
        assert!(
            e.to_string().contains("process.execCPUAffinity.final"),
            "{e}"
        );
    }

    fn policy(json: serde_json::Value, online: &[u32]) -> Result<MemoryPolicy> {
        let p: oci_spec::runtime::LinuxMemoryPolicy = serde_json::from_value(json).expect("json");
        MemoryPolicy::from_spec(&p, online)
    }

    #[test]
    fn every_mode_and_flag_maps_to_the_kernel_value() {
        use serde_json::json;
        let cases = [
            (json!({"mode": "MPOL_DEFAULT"}), 0),
            (json!({"mode": "MPOL_LOCAL"}), 4),
            (json!({"mode": "MPOL_PREFERRED"}), 1),
            (json!({"mode": "MPOL_PREFERRED", "nodes": "1"}), 1),
            (json!({"mode": "MPOL_BIND", "nodes": "0-1"}), 2),
            (json!({"mode": "MPOL_INTERLEAVE", "nodes": "0,1"}), 3),
            (json!({"mode": "MPOL_PREFERRED_MANY", "nodes": "1"}), 5),
            (
                json!({"mode": "MPOL_WEIGHTED_INTERLEAVE", "nodes": "0-1"}),
                6,
            ),
            (
                json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]}),
                2 | 1 << 15,
            ),
            (
                json!({"mode": "MPOL_INTERLEAVE", "nodes": "5", "flags": ["MPOL_F_RELATIVE_NODES"]}),
                3 | 1 << 14,
            ),
            (
                json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_NUMA_BALANCING"]}),
                2 | 1 << 13,
            ),
        ];
        for (json, mode) in cases {
            let p = policy(json.clone(), &[0, 1]).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!(p.mode, mode, "{json}");
        }
        let p = policy(json!({"mode": "MPOL_BIND", "nodes": "1,64"}), &[1, 64]).expect("mask");
        assert_eq!(p.nodes[0], 0b10);
        assert_eq!(p.nodes[1], 1);
    }

    #[test]
    fn invalid_policies_name_the_field() {
        use serde_json::json;
        for bad in [
            json!({"mode": "MPOL_DEFAULT", "nodes": "0"}),
            json!({"mode": "MPOL_LOCAL", "nodes": "0"}),
            json!({"mode": "MPOL_BIND"}),
            json!({"mode": "MPOL_INTERLEAVE", "nodes": ""}),
            json!({"mode": "MPOL_BIND", "nodes": "1"}),
            json!({"mode": "MPOL_BIND", "nodes": "0-x"}),
            json!({"mode": "MPOL_BIND", "nodes": "0",
                   "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]}),
            json!({"mode": "MPOL_INTERLEAVE", "nodes": "0", "flags": ["MPOL_F_NUMA_BALANCING"]}),
            json!({"mode": "MPOL_DEFAULT", "flags": ["MPOL_F_STATIC_NODES"]}),
        ] {
            let e = policy(bad.clone(), &[0]).expect_err(&bad.to_string());
            assert!(
                e.to_string()
                    .starts_with("invalid config: linux.memoryPolicy"),
                "{bad}: {e}"
            );
        }
    }
}
