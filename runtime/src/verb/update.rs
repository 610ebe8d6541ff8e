//! `hako update`: change a running container's cgroup limits, from `--resources FILE|-` (the JSON
//! CRI pipes in: a `LinuxResources` object) and/or runc's individual flags.

use std::io::Read;
use std::path::Path;

use oci_spec::runtime::LinuxResources;
use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::state::Store;

/// runc's individual `update` flags; `None` leaves a value alone.
#[derive(Debug, Clone, Default)]
pub struct UpdateFlags {
    /// `--memory` (bytes, with k/m/g/t suffixes).
    pub memory: Option<String>,
    /// `--memory-swap`.
    pub memory_swap: Option<String>,
    /// `--memory-reservation`.
    pub memory_reservation: Option<String>,
    /// `--cpu-shares`.
    pub cpu_shares: Option<u64>,
    /// `--cpu-quota`.
    pub cpu_quota: Option<i64>,
    /// `--cpu-period`.
    pub cpu_period: Option<u64>,
    /// `--cpu-rt-runtime`.
    pub cpu_rt_runtime: Option<i64>,
    /// `--cpu-rt-period`.
    pub cpu_rt_period: Option<u64>,
    /// `--cpuset-cpus`.
    pub cpuset_cpus: Option<String>,
    /// `--cpuset-mems`.
    pub cpuset_mems: Option<String>,
    /// `--pids-limit`.
    pub pids_limit: Option<i64>,
    /// `--blkio-weight`.
    pub blkio_weight: Option<u16>,
}

/// Parses a byte size as Docker's `units.RAMInBytes` (binary suffixes; `-1` is unlimited).
pub fn parse_bytes(text: &str) -> Result<i64> {
    let bad = || Error::InvalidConfig {
        field: "update",
        reason: format!("invalid size {text:?}"),
    };
    let t = text.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let t = t
        .strip_suffix("ib")
        .or_else(|| t.strip_suffix('b'))
        .unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        Some('p') => (&t[..t.len() - 1], 1 << 50),
        _ => (t, 1),
    };
    let n: f64 = num.trim().parse().map_err(|_| bad())?;
    if n < 0.0 {
        return Err(bad());
    }
    Ok((n * mult as f64) as i64)
}

fn flags_json(f: &UpdateFlags) -> Result<Value> {
    let mut memory = Map::new();
    if let Some(m) = &f.memory {
        memory.insert("limit".into(), json!(parse_bytes(m)?));
    }
    if let Some(m) = &f.memory_swap {
        memory.insert("swap".into(), json!(parse_bytes(m)?));
    }
    if let Some(m) = &f.memory_reservation {
        memory.insert("reservation".into(), json!(parse_bytes(m)?));
    }
    let mut cpu = Map::new();
    let fields: [(&str, Option<Value>); 7] = [
        ("shares", f.cpu_shares.map(|v| json!(v))),
        ("quota", f.cpu_quota.map(|v| json!(v))),
        ("period", f.cpu_period.map(|v| json!(v))),
        ("realtimeRuntime", f.cpu_rt_runtime.map(|v| json!(v))),
        ("realtimePeriod", f.cpu_rt_period.map(|v| json!(v))),
        ("cpus", f.cpuset_cpus.as_ref().map(|v| json!(v))),
        ("mems", f.cpuset_mems.as_ref().map(|v| json!(v))),
    ];
    for (k, v) in fields {
        if let Some(v) = v {
            cpu.insert(k.into(), v);
        }
    }
    let mut res = Map::new();
    if !memory.is_empty() {
        res.insert("memory".into(), Value::Object(memory));
    }
    if !cpu.is_empty() {
        res.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(p) = f.pids_limit {
        res.insert("pids".into(), json!({ "limit": p }));
    }
    if let Some(w) = f.blkio_weight {
        res.insert("blockIO".into(), json!({ "weight": w }));
    }
    Ok(Value::Object(res))
}

/// Deep-merges `over` into `base` (flags override the file, as in runc).
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o,
    }
}

/// Applies new limits to the container `id`.
pub fn update(
    store: &Store,
    id: &str,
    resources: Option<&Path>,
    flags: &UpdateFlags,
) -> Result<()> {
    let mut value = match resources {
        Some(p) if p == Path::new("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(Error::io("read resources from", "stdin"))?;
            serde_json::from_str(&s).map_err(|e| Error::InvalidConfig {
                field: "update --resources",
                reason: e.to_string(),
            })?
        }
        Some(p) => {
            let s = std::fs::read_to_string(p).map_err(Error::io("read", p))?;
            serde_json::from_str(&s).map_err(|e| Error::InvalidConfig {
                field: "update --resources",
                reason: e.to_string(),
            })?
        }
        None => json!({}),
    };
    merge(&mut value, flags_json(flags)?);
    // Through text rather than `serde_json::from_value`: the `LinuxResources` deserializer that
    // parses config.json, not a second, `Value`-driven copy of it in the program text.
    let text = serde_json::to_vec(&value).map_err(|source| Error::Encode {
        what: "update --resources",
        source,
    })?;
    let res: LinuxResources = serde_json::from_slice(&text).map_err(|e| Error::InvalidConfig {
        field: "update --resources",
        reason: e.to_string(),
    })?;
    let resources = hako_cgroups::Resources::for_update(&res)?;
    let cgroup = store.load(id)?.live_cgroup()?;
    // The systemd driver's unit first, then the files (as runc's Set).
    cgroup.set_unit_properties(&resources)?;
    cgroup.apply(&resources)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_docker_units() {
        assert_eq!(parse_bytes("1024").expect("n"), 1024);
        assert_eq!(parse_bytes("1k").expect("k"), 1024);
        assert_eq!(parse_bytes("512m").expect("m"), 512 << 20);
        assert_eq!(parse_bytes("1.5g").expect("g"), 3 << 29);
        assert_eq!(parse_bytes("2GB").expect("gb"), 2 << 30);
        assert_eq!(parse_bytes("-1").expect("unlimited"), -1);
        assert!(parse_bytes("lots").is_err());
    }

    #[test]
    fn flags_override_file() {
        let mut base = json!({"memory": {"limit": 1, "swap": 5}, "pids": {"limit": 3}});
        let flags = UpdateFlags {
            memory: Some("2".into()),
            ..Default::default()
        };
        merge(&mut base, flags_json(&flags).expect("json"));
        assert_eq!(
            base,
            json!({"memory": {"limit": 2, "swap": 5}, "pids": {"limit": 3}})
        );
    }
}
