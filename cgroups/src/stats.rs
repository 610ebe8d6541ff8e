//! Statistics in the shape of runc's `events --stats` "data" object
//! (runc types/events.go): field names and omit-when-zero rules match, so
//! tools parsing runc's output parse ours. v1 reads cpuacct.*, cpu.stat,
//! memory.*, pids.*, blkio.*; v2 reads cpu.stat, memory.*, pids.*, io.stat.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::files::{self, key_values, read_u64_opt};
use crate::{Cgroup, Error, Mode};

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// CPU time, nanoseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CpuUsage {
    /// Total CPU time consumed.
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u64,
    /// Per-CPU time (v1 only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    /// Time in kernel mode.
    pub kernel: u64,
    /// Time in user mode.
    pub user: u64,
}

/// CFS bandwidth throttling counters.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    /// Enforcement periods elapsed.
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    /// Periods in which the group was throttled.
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    /// Total throttled time, nanoseconds.
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

/// CPU statistics.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Cpu {
    /// Usage.
    pub usage: CpuUsage,
    /// Throttling.
    pub throttling: Throttling,
}

/// One memory counter set.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MemoryEntry {
    /// Limit in bytes (u64::MAX-ish when unlimited, as the kernel reports).
    pub limit: u64,
    /// Current usage.
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    /// Peak usage.
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    /// Times the limit was hit.
    pub failcnt: u64,
}

/// Memory statistics.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Memory {
    /// Page cache bytes.
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    /// Memory usage.
    pub usage: MemoryEntry,
    /// Memory+swap (v1) or swap (v2) usage.
    pub swap: MemoryEntry,
    /// Kernel memory (v1).
    pub kernel: MemoryEntry,
    /// Kernel TCP buffers (v1).
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    /// memory.stat as is.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

/// pids statistics.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Pids {
    /// Current number of tasks.
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    /// pids.max (0 when "max").
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

/// One block I/O counter.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct BlkioEntry {
    /// Device major.
    #[serde(skip_serializing_if = "is_zero")]
    pub major: u64,
    /// Device minor.
    #[serde(skip_serializing_if = "is_zero")]
    pub minor: u64,
    /// "Read", "Write", "Sync", "Async", "Discard", "Total".
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    /// Counter value.
    #[serde(skip_serializing_if = "is_zero")]
    pub value: u64,
}

/// Block I/O statistics.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blkio {
    /// Bytes transferred per device and op.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    /// Operations per device and op.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

/// Hugetlb statistics for one page size.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Hugetlb {
    /// Current usage.
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    /// Peak usage.
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    /// Times the limit was hit.
    pub failcnt: u64,
}

/// Statistics as runc's `events --stats` JSON "data".
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Stats {
    /// CPU.
    pub cpu: Cpu,
    /// Memory.
    pub memory: Memory,
    /// Pids.
    pub pids: Pids,
    /// Block I/O.
    pub blkio: Blkio,
    /// Hugetlb per page size (not collected yet: always empty).
    pub hugetlb: BTreeMap<String, Hugetlb>,
}

/// USER_HZ, the unit of cpuacct.stat (sysconf(_SC_CLK_TCK), 100 on Linux).
const USER_HZ: u64 = 100;

/// Parse blkio "8:0 Read 123" lines (skipping the "Total 123" summary).
pub(crate) fn parse_blkio(text: &str) -> Vec<BlkioEntry> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (dev, op, value) = (f.next()?, f.next()?, f.next()?);
            let (ma, mi) = dev.split_once(':')?;
            Some(BlkioEntry {
                major: ma.parse().ok()?,
                minor: mi.parse().ok()?,
                op: op.to_string(),
                value: value.parse().ok()?,
            })
        })
        .collect()
}

/// Parse v2 io.stat "8:0 rbytes=1 wbytes=2 rios=3 wios=4 ..." lines.
pub(crate) fn parse_io_stat(text: &str) -> Blkio {
    let mut b = Blkio::default();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let Some((ma, mi)) = f.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (ma.parse(), mi.parse()) else {
            continue;
        };
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(value) = v.parse() else { continue };
            let (list, op) = match k {
                "rbytes" => (&mut b.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut b.io_service_bytes_recursive, "Write"),
                "rios" => (&mut b.io_serviced_recursive, "Read"),
                "wios" => (&mut b.io_serviced_recursive, "Write"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.to_string(),
                value,
            });
        }
    }
    b
}

fn raw_stat(dir: &Path, file: &str) -> Result<BTreeMap<String, u64>, Error> {
    Ok(key_values(&files::read(dir, file)?)
        .map(|(k, v)| (k.to_string(), v))
        .collect())
}

fn v1_entry(dir: &Path, prefix: &str) -> Result<MemoryEntry, Error> {
    let get =
        |name: &str| read_u64_opt(dir, &format!("{prefix}{name}")).map(Option::unwrap_or_default);
    Ok(MemoryEntry {
        limit: get("limit_in_bytes")?,
        usage: get("usage_in_bytes")?,
        max: get("max_usage_in_bytes")?,
        failcnt: get("failcnt")?,
    })
}

fn pids_stats(dir: &Path) -> Result<Pids, Error> {
    Ok(Pids {
        current: read_u64_opt(dir, "pids.current")?.unwrap_or_default(),
        limit: read_u64_opt(dir, "pids.max")?
            .filter(|&m| m != u64::MAX)
            .unwrap_or_default(),
    })
}

impl Cgroup {
    /// Statistics as runc's `events --stats` JSON "data": cpu usage, memory
    /// usage/limit/stats, pids current/limit, blkio. Controllers that are
    /// not mounted leave their part at zero.
    pub fn stats(&self) -> Result<Stats, Error> {
        match self.mode() {
            Mode::Legacy | Mode::Hybrid => self.stats_v1(),
            Mode::Unified => self.stats_v2(),
        }
    }

    fn stats_v1(&self) -> Result<Stats, Error> {
        let mut s = Stats::default();
        if let Some(dir) = self.v1_dir("cpuacct") {
            s.cpu.usage.total = files::read_u64(dir, "cpuacct.usage")?;
            s.cpu.usage.percpu = files::read(dir, "cpuacct.usage_percpu")?
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            for (k, v) in key_values(&files::read(dir, "cpuacct.stat")?) {
                let ns = v * (1_000_000_000 / USER_HZ);
                match k {
                    "user" => s.cpu.usage.user = ns,
                    "system" => s.cpu.usage.kernel = ns,
                    _ => {}
                }
            }
        }
        if let Some(dir) = self.v1_dir("cpu") {
            for (k, v) in key_values(&files::read(dir, "cpu.stat")?) {
                match k {
                    "nr_periods" => s.cpu.throttling.periods = v,
                    "nr_throttled" => s.cpu.throttling.throttled_periods = v,
                    "throttled_time" => s.cpu.throttling.throttled_time = v,
                    _ => {}
                }
            }
        }
        if let Some(dir) = self.v1_dir("memory") {
            let raw = raw_stat(dir, "memory.stat")?;
            s.memory.cache = raw.get("cache").copied().unwrap_or_default();
            s.memory.raw = raw;
            s.memory.usage = v1_entry(dir, "memory.")?;
            s.memory.swap = v1_entry(dir, "memory.memsw.")?;
            s.memory.kernel = v1_entry(dir, "memory.kmem.")?;
            s.memory.kernel_tcp = v1_entry(dir, "memory.kmem.tcp.")?;
        }
        if let Some(dir) = self.v1_dir("pids") {
            s.pids = pids_stats(dir)?;
        }
        if let Some(dir) = self.v1_dir("blkio") {
            // CFQ files if present, else BFQ, else the throttle layer's counters (runc's order).
            let prefix = ["blkio.", "blkio.bfq.", "blkio.throttle."]
                .into_iter()
                .find(|p| dir.join(format!("{p}io_serviced_recursive")).exists());
            if let Some(p) = prefix {
                s.blkio.io_service_bytes_recursive = parse_blkio(&files::read(
                    dir,
                    &format!("{p}io_service_bytes_recursive"),
                )?);
                s.blkio.io_serviced_recursive =
                    parse_blkio(&files::read(dir, &format!("{p}io_serviced_recursive"))?);
            }
        }
        Ok(s)
    }

    fn stats_v2(&self) -> Result<Stats, Error> {
        let mut s = Stats::default();
        let Some(dir) = self.v2_dir() else {
            return Ok(s);
        };
        if dir.join("cpu.stat").exists() {
            for (k, v) in key_values(&files::read(dir, "cpu.stat")?) {
                match k {
                    "usage_usec" => s.cpu.usage.total = v * 1000,
                    "user_usec" => s.cpu.usage.user = v * 1000,
                    "system_usec" => s.cpu.usage.kernel = v * 1000,
                    "nr_periods" => s.cpu.throttling.periods = v,
                    "nr_throttled" => s.cpu.throttling.throttled_periods = v,
                    "throttled_usec" => s.cpu.throttling.throttled_time = v * 1000,
                    _ => {}
                }
            }
        }
        if dir.join("memory.stat").exists() {
            let raw = raw_stat(dir, "memory.stat")?;
            s.memory.cache = raw.get("file").copied().unwrap_or_default();
            s.memory.raw = raw;
            s.memory.usage = MemoryEntry {
                limit: read_u64_opt(dir, "memory.max")?.unwrap_or_default(),
                usage: read_u64_opt(dir, "memory.current")?.unwrap_or_default(),
                max: read_u64_opt(dir, "memory.peak")?.unwrap_or_default(),
                failcnt: 0,
            };
            s.memory.swap = MemoryEntry {
                limit: read_u64_opt(dir, "memory.swap.max")?.unwrap_or_default(),
                usage: read_u64_opt(dir, "memory.swap.current")?.unwrap_or_default(),
                max: 0,
                failcnt: 0,
            };
        }
        s.pids = pids_stats(dir)?;
        if dir.join("io.stat").exists() {
            s.blkio = parse_io_stat(&files::read(dir, "io.stat")?);
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_blkio_lines() {
        let e = parse_blkio("8:0 Read 4096\n8:0 Write 0\nTotal 4096\n");
        assert_eq!(e.len(), 2);
        assert_eq!(
            (e[0].major, e[0].minor, e[0].op.as_str(), e[0].value),
            (8, 0, "Read", 4096)
        );
    }

    #[test]
    fn parses_io_stat() {
        let b = parse_io_stat("259:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n");
        assert_eq!(b.io_service_bytes_recursive.len(), 2);
        assert_eq!(b.io_serviced_recursive[1].value, 2);
        assert_eq!(b.io_service_bytes_recursive[0].major, 259);
    }

    #[test]
    fn json_shape_matches_runc() {
        let v = serde_json::to_value(Stats::default()).unwrap();
        assert_eq!(
            v["cpu"]["usage"],
            serde_json::json!({"kernel": 0, "user": 0})
        );
        assert_eq!(
            v["memory"]["usage"],
            serde_json::json!({"limit": 0, "failcnt": 0})
        );
        assert!(v["memory"].get("kernelTCP").is_some());
        assert_eq!(v["pids"], serde_json::json!({}));
        assert_eq!(v["blkio"], serde_json::json!({}));
    }
}
