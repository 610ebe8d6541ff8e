//! Writing [`Resources`] to cgroup v2 files, following runc's fs2 driver:
//! cpu.weight from shares (quadratic map, see `convert`), cpu.max
//! "quota period" / "max period", memory.swap.max = swap − limit, io.max
//! lines, io.bfq.weight or io.weight, `hugetlb.<size>.max`, rdma.max and the raw
//! `unified` files, and device rules as an eBPF program (`device_filter`).
//! Things v2 has no file for are errors, not silently lost.

use std::path::Path;

use crate::convert::{blkio_weight_to_io_weight, cpu_shares_to_weight, memory_swap_to_v2};
use crate::files::{self, write_resource};
use crate::resources::{BlockIo, Cpu, Memory, Resources};
use crate::{Cgroup, Error};

fn unsupported(field: &'static str, reason: &'static str) -> Error {
    Error::Unsupported { field, reason }
}

/// -1 → "max", else the number.
fn max_or(v: i64) -> String {
    if v == -1 {
        "max".into()
    } else {
        v.to_string()
    }
}

impl Cgroup {
    pub(crate) fn apply_v2(&self, r: &Resources) -> Result<(), Error> {
        let Some(dir) = self.v2_dir() else {
            return Err(Error::ControllerMissing {
                field: "linux.resources",
                controller: "cgroup2",
            });
        };
        if let Some(filter) = &r.devices {
            crate::device_filter::attach_filter(dir, filter)?;
        }
        if r.net_cls_classid.is_some() {
            return Err(unsupported(
                "linux.resources.network.classID",
                "cgroup v2 has no net_cls",
            ));
        }
        if !r.net_prio.is_empty() {
            return Err(unsupported(
                "linux.resources.network.priorities",
                "cgroup v2 has no net_prio",
            ));
        }
        if let Some(limit) = r.pids_limit {
            let value = if limit > 0 {
                limit.to_string()
            } else {
                "max".into()
            };
            write_resource("linux.resources.pids.limit", dir, "pids.max", &value)?;
        }
        if r.memory != Memory::default() {
            v2_memory(dir, &r.memory)?;
        }
        if !r.block_io.is_empty() {
            v2_io(dir, &r.block_io)?;
        }
        v2_cpu(dir, &r.cpu)?;
        for (value, file, field) in [
            (&r.cpu.cpus, "cpuset.cpus", "linux.resources.cpu.cpus"),
            (&r.cpu.mems, "cpuset.mems", "linux.resources.cpu.mems"),
        ] {
            if let Some(v) = value {
                write_resource(field, dir, file, v)?;
            }
        }
        for (size, limit) in &r.hugepage_limits {
            let field = "linux.resources.hugepageLimits";
            write_resource(field, dir, &format!("hugetlb.{size}.max"), &max_or(*limit))?;
            let rsvd = format!("hugetlb.{size}.rsvd.max");
            if dir.join(&rsvd).exists() {
                files::write(dir, &rsvd, &max_or(*limit))?;
            }
        }
        for line in crate::apply::rdma_lines(&r.rdma) {
            write_resource("linux.resources.rdma", dir, "rdma.max", &line)?;
        }
        for (key, value) in &r.unified {
            write_resource("linux.resources.unified", dir, key, value)?;
        }
        Ok(())
    }
}

fn v2_memory(dir: &Path, m: &Memory) -> Result<(), Error> {
    if m.disable_oom_killer {
        return Err(unsupported(
            "linux.resources.memory.disableOOMKiller",
            "cgroup v2 has no oom_control",
        ));
    }
    if m.swappiness.is_some() {
        return Err(unsupported(
            "linux.resources.memory.swappiness",
            "cgroup v2 has no per-cgroup swappiness",
        ));
    }
    // v2 charges kernel memory to memory.max and has no separate limit for it.
    if m.kernel.is_some() {
        return Err(unsupported(
            "linux.resources.memory.kernel",
            "cgroup v2 has no kernel memory limit",
        ));
    }
    if m.kernel_tcp.is_some() {
        return Err(unsupported(
            "linux.resources.memory.kernelTCP",
            "cgroup v2 has no kernel TCP buffer limit",
        ));
    }
    // The swap conversion needs the memory limit; on update it may only be in the cgroup.
    let limit_for_swap = match (m.limit, m.swap) {
        (Some(l), _) => l,
        (None, Some(_)) => match files::read(dir, "memory.max")?.trim() {
            "max" => -1,
            _ => i64::try_from(files::read_u64(dir, "memory.max")?).unwrap_or(-1),
        },
        (None, None) => 0,
    };
    let swap = memory_swap_to_v2(m.swap.unwrap_or(0), limit_for_swap)?;
    if let Some(limit) = m.limit.filter(|&l| l > 0) {
        if m.check_before_update {
            let usage = files::read_u64(dir, "memory.current")?;
            if usage > limit.unsigned_abs() {
                return Err(Error::MemoryLimitBelowUsage { limit, usage });
            }
        }
    }
    if swap != 0 {
        write_resource(
            "linux.resources.memory.swap",
            dir,
            "memory.swap.max",
            &max_or(swap),
        )?;
    }
    if let Some(l) = m.limit {
        write_resource(
            "linux.resources.memory.limit",
            dir,
            "memory.max",
            &max_or(l),
        )?;
    }
    if let Some(r) = m.reservation {
        write_resource(
            "linux.resources.memory.reservation",
            dir,
            "memory.low",
            &max_or(r),
        )?;
    }
    Ok(())
}

fn v2_cpu(dir: &Path, c: &Cpu) -> Result<(), Error> {
    if c.realtime_runtime.is_some() || c.realtime_period.is_some() {
        return Err(unsupported(
            "linux.resources.cpu.realtimeRuntime",
            "cgroup v2 has no realtime bandwidth control",
        ));
    }
    if let Some(s) = c.shares {
        let w = cpu_shares_to_weight(s);
        write_resource(
            "linux.resources.cpu.shares",
            dir,
            "cpu.weight",
            &w.to_string(),
        )?;
    }
    if let Some(idle) = c.idle {
        write_resource(
            "linux.resources.cpu.idle",
            dir,
            "cpu.idle",
            &idle.to_string(),
        )?;
    }
    if let Some(b) = c.burst {
        write_resource(
            "linux.resources.cpu.burst",
            dir,
            "cpu.max.burst",
            &b.to_string(),
        )?;
    }
    if c.quota.is_some() || c.period.is_some() {
        let quota = match c.quota {
            Some(q) if q > 0 => q.to_string(),
            _ => "max".to_string(),
        };
        // 100ms is the kernel's default period (cgroup-v2.rst, cpu.max).
        let period = c.period.unwrap_or(100_000);
        write_resource(
            "linux.resources.cpu.quota",
            dir,
            "cpu.max",
            &format!("{quota} {period}"),
        )?;
    }
    Ok(())
}

fn v2_io(dir: &Path, b: &BlockIo) -> Result<(), Error> {
    if b.leaf_weight.is_some() || !b.leaf_weight_device.is_empty() {
        return Err(unsupported(
            "linux.resources.blockIO.leafWeight",
            "cgroup v2 has no leaf weight",
        ));
    }
    let bfq = dir.join("io.bfq.weight").exists();
    if let Some(w) = b.weight {
        if bfq {
            files::write(dir, "io.bfq.weight", &w.to_string())?;
        } else {
            let v = blkio_weight_to_io_weight(w);
            write_resource(
                "linux.resources.blockIO.weight",
                dir,
                "io.weight",
                &v.to_string(),
            )?;
        }
    }
    for d in &b.weight_device {
        write_resource(
            "linux.resources.blockIO.weightDevice",
            dir,
            "io.bfq.weight",
            &d.line(),
        )?;
    }
    for (list, key) in [
        (&b.read_bps, "rbps"),
        (&b.write_bps, "wbps"),
        (&b.read_iops, "riops"),
        (&b.write_iops, "wiops"),
    ] {
        for d in list {
            let line = format!("{}:{} {key}={}", d.major, d.minor, d.value);
            write_resource("linux.resources.blockIO.throttle", dir, "io.max", &line)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Hierarchy, Mode};
    use oci_spec::runtime::LinuxResources;

    const FILES: &[&str] = &[
        "pids.max",
        "memory.max",
        "memory.swap.max",
        "memory.low",
        "cpu.weight",
        "cpu.max",
        "cpuset.cpus",
        "io.max",
        "io.weight",
        "memory.high",
    ];

    fn fake_v2() -> (tempfile::TempDir, Cgroup) {
        let tmp = tempfile::tempdir().unwrap();
        for f in FILES {
            std::fs::write(tmp.path().join(f), "").unwrap();
        }
        std::fs::write(tmp.path().join("memory.max"), "max\n").unwrap();
        let h = Hierarchy {
            name: "unified".into(),
            mount_point: tmp.path().to_path_buf(),
            dir: tmp.path().to_path_buf(),
            fs_type: "cgroup2",
            options: String::new(),
        };
        (tmp, Cgroup::fake(Mode::Unified, vec![h]))
    }

    fn update(cg: &Cgroup, json: &str) -> Result<(), Error> {
        let r: LinuxResources = serde_json::from_str(json).unwrap();
        cg.apply(&Resources::for_update(&r).unwrap())
    }

    fn read(tmp: &tempfile::TempDir, f: &str) -> String {
        std::fs::read_to_string(tmp.path().join(f)).unwrap()
    }

    #[test]
    fn writes_v2_files_with_conversions() {
        let (tmp, cg) = fake_v2();
        update(
            &cg,
            r#"{"pids":{"limit":-1},
                "memory":{"limit":1000,"swap":1500,"reservation":500},
                "cpu":{"shares":1024,"quota":50000,"cpus":"0-1"},
                "blockIO":{"weight":1000,"throttleWriteIOPSDevice":[{"major":8,"minor":0,"rate":10}]},
                "unified":{"memory.high":"4096"}}"#,
        )
        .unwrap();
        assert_eq!(read(&tmp, "pids.max"), "max");
        assert_eq!(read(&tmp, "memory.max"), "1000");
        assert_eq!(read(&tmp, "memory.swap.max"), "500");
        assert_eq!(read(&tmp, "memory.low"), "500");
        assert_eq!(read(&tmp, "cpu.weight"), "100");
        assert_eq!(read(&tmp, "cpu.max"), "50000 100000");
        assert_eq!(read(&tmp, "cpuset.cpus"), "0-1");
        assert_eq!(read(&tmp, "io.weight"), "10000");
        assert_eq!(read(&tmp, "io.max"), "8:0 wiops=10");
        assert_eq!(read(&tmp, "memory.high"), "4096");

        update(&cg, r#"{"cpu":{"period":50000}}"#).unwrap();
        assert_eq!(read(&tmp, "cpu.max"), "max 50000");
        // Swap alone on update: converted against the memory.max in the cgroup.
        std::fs::write(tmp.path().join("memory.max"), "1000\n").unwrap();
        update(&cg, r#"{"memory":{"swap":3000}}"#).unwrap();
        assert_eq!(read(&tmp, "memory.swap.max"), "2000");
    }

    #[test]
    fn v2_refuses_what_it_cannot_honour() {
        let (_tmp, cg) = fake_v2();
        // Device rules go to the eBPF filter; a plain directory is no cgroup
        // to query or attach to, so that is an error (never a silent skip).
        let devices = Resources::from_spec(None, &[]).unwrap();
        let err = cg.apply(&devices).unwrap_err();
        assert!(
            matches!(err, Error::BpfQuery { .. } | Error::BpfAttach { .. }),
            "{err:?}"
        );
        for (json, field) in [
            (
                r#"{"memory":{"swappiness":10}}"#,
                "linux.resources.memory.swappiness",
            ),
            (
                r#"{"cpu":{"realtimeRuntime":10}}"#,
                "linux.resources.cpu.realtimeRuntime",
            ),
            (
                r#"{"network":{"classID":1}}"#,
                "linux.resources.network.classID",
            ),
            (
                r#"{"memory":{"kernelTCP":50593792}}"#,
                "linux.resources.memory.kernelTCP",
            ),
            (
                r#"{"memory":{"kernel":-1}}"#,
                "linux.resources.memory.kernel",
            ),
        ] {
            let err = update(&cg, json).unwrap_err();
            assert!(
                matches!(err, Error::Unsupported { field: f, .. } if f == field),
                "{err:?}"
            );
        }
        let err = update(&cg, r#"{"cpu":{"idle":1}}"#).unwrap_err();
        assert!(
            matches!(
                err,
                Error::MissingFile {
                    field: "linux.resources.cpu.idle",
                    ..
                }
            ),
            "{err:?}"
        );
        let err = update(&cg, r#"{"memory":{"limit":100,"swap":50}}"#).unwrap_err();
        assert!(matches!(err, Error::InvalidValue { .. }), "{err:?}");
    }
}
