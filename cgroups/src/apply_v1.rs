//! Writing [`Resources`] to cgroup v1 files, following runc's fs driver
//! (libcontainer/cgroups/fs/*.go) for file names, value formats and the
//! places where write order matters:
//! - memory: limit vs memory+swap are validated against each other by the
//!   kernel (memsw ≥ limit), so when raising, memsw goes first;
//! - cpu: cfs_period/quota/burst and rt_period/runtime are inter-dependent;
//!   an EINVAL on the first is retried after the second;
//! - devices: see the `devices` module.

use std::path::Path;

use crate::devices::DeviceFilter;
use crate::files::{self, require, write_resource};
use crate::resources::{BlockIo, Cpu, DeviceValue, Memory, Resources};
use crate::{Cgroup, Error};

fn is_einval(e: &Error) -> bool {
    matches!(e, Error::Write { source, .. } if source.raw_os_error() == Some(libc::EINVAL))
}

impl Cgroup {
    pub(crate) fn apply_v1(&self, r: &Resources) -> Result<(), Error> {
        if !r.unified.is_empty() {
            return Err(Error::Unsupported {
                field: "linux.resources.unified",
                reason: "needs cgroup v2 (unified mode)",
            });
        }
        // runc's subsystem order: cpuset, devices, memory, cpu, pids, blkio, hugetlb, net_cls, net_prio, rdma.
        self.v1_cpuset(&r.cpu)?;
        if let Some(filter) = &r.devices {
            let dir = self.v1_dir_for("devices", "linux.resources.devices")?;
            v1_devices(dir, filter)?;
        }
        if r.memory != Memory::default() {
            let dir = self.v1_dir_for("memory", "linux.resources.memory")?;
            v1_memory(dir, &r.memory)?;
        }
        if r.cpu.any_cpu_controller_field() {
            let dir = self.v1_dir_for("cpu", "linux.resources.cpu")?;
            v1_cpu(dir, &r.cpu)?;
        }
        if let Some(limit) = r.pids_limit {
            let field = "linux.resources.pids.limit";
            let dir = self.v1_dir_for("pids", field)?;
            let value = if limit > 0 {
                limit.to_string()
            } else {
                "max".into()
            };
            write_resource(field, dir, "pids.max", &value)?;
        }
        if !r.block_io.is_empty() {
            let dir = self.v1_dir_for("blkio", "linux.resources.blockIO")?;
            v1_blkio(dir, &r.block_io)?;
        }
        for (size, limit) in &r.hugepage_limits {
            let field = "linux.resources.hugepageLimits";
            let dir = self.v1_dir_for("hugetlb", field)?;
            write_resource(
                field,
                dir,
                &format!("hugetlb.{size}.limit_in_bytes"),
                &limit.to_string(),
            )?;
            let rsvd = format!("hugetlb.{size}.rsvd.limit_in_bytes");
            if dir.join(&rsvd).exists() {
                files::write(dir, &rsvd, &limit.to_string())?;
            }
        }
        if let Some(id) = r.net_cls_classid {
            let field = "linux.resources.network.classID";
            let dir = self.v1_dir_for("net_cls", field)?;
            write_resource(field, dir, "net_cls.classid", &id.to_string())?;
        }
        for (iface, prio) in &r.net_prio {
            let field = "linux.resources.network.priorities";
            let dir = self.v1_dir_for("net_prio", field)?;
            write_resource(field, dir, "net_prio.ifpriomap", &format!("{iface} {prio}"))?;
        }
        if !r.rdma.is_empty() {
            let field = "linux.resources.rdma";
            let dir = self.v1_dir_for("rdma", field)?;
            for line in crate::apply::rdma_lines(&r.rdma) {
                write_resource(field, dir, "rdma.max", &line)?;
            }
        }
        Ok(())
    }

    fn v1_cpuset(&self, cpu: &Cpu) -> Result<(), Error> {
        for (value, file, field) in [
            (&cpu.cpus, "cpuset.cpus", "linux.resources.cpu.cpus"),
            (&cpu.mems, "cpuset.mems", "linux.resources.cpu.mems"),
        ] {
            if let Some(v) = value {
                let dir = self.v1_dir_for("cpuset", field)?;
                write_resource(field, dir, file, v)?;
            }
        }
        Ok(())
    }
}

fn v1_devices(dir: &Path, want: &DeviceFilter) -> Result<(), Error> {
    let list = files::read(dir, "devices.list")?;
    let current = DeviceFilter::from_list(&list).ok_or_else(|| Error::ParseValue {
        path: dir.join("devices.list"),
        content: list.clone(),
    })?;
    // Consecutive rules for the same file share one descriptor; the order across the two files
    // is kept, since a later rule may undo an earlier one.
    let mut batch: Vec<String> = Vec::new();
    let mut batch_file = "";
    for rule in want.transition_from(&current) {
        if rule.file() != batch_file && !batch.is_empty() {
            files::write_each("linux.resources.devices", dir, batch_file, &batch)?;
            batch.clear();
        }
        batch_file = rule.file();
        batch.push(rule.to_string());
    }
    files::write_each("linux.resources.devices", dir, batch_file, &batch)
}

fn v1_memory(dir: &Path, m: &Memory) -> Result<(), Error> {
    const LIMIT: &str = "memory.limit_in_bytes";
    const MEMSW: &str = "memory.memsw.limit_in_bytes";
    let limit_field = "linux.resources.memory.limit";
    let swap_field = "linux.resources.memory.swap";
    let mut swap = m.swap;
    // Unlimited memory with swap unset means unlimited swap too (runc).
    if m.limit == Some(-1) && swap.is_none() && dir.join(MEMSW).exists() {
        swap = Some(-1);
    }
    if let Some(limit) = m.limit.filter(|&l| l > 0) {
        if m.check_before_update {
            let usage = files::read_u64(dir, "memory.usage_in_bytes")?;
            if usage > limit.unsigned_abs() {
                return Err(Error::MemoryLimitBelowUsage { limit, usage });
            }
        }
    }
    let swap_first = match (m.limit, swap) {
        (Some(_), Some(s)) => {
            let current = files::read_u64(dir, LIMIT)?;
            s == -1 || i64::try_from(current).is_ok_and(|c| c < s)
        }
        _ => false,
    };
    let write_limit = || match m.limit {
        Some(l) => write_resource(limit_field, dir, LIMIT, &l.to_string()),
        None => Ok(()),
    };
    let write_swap = || match swap {
        Some(s) => write_resource(swap_field, dir, MEMSW, &s.to_string()),
        None => Ok(()),
    };
    if swap_first {
        write_swap()?;
        write_limit()?;
    } else {
        write_limit()?;
        write_swap()?;
    }
    if let Some(r) = m.reservation {
        write_resource(
            "linux.resources.memory.reservation",
            dir,
            "memory.soft_limit_in_bytes",
            &r.to_string(),
        )?;
    }
    if m.disable_oom_killer {
        write_resource(
            "linux.resources.memory.disableOOMKiller",
            dir,
            "memory.oom_control",
            "1",
        )?;
    }
    if let Some(s) = m.swappiness {
        write_resource(
            "linux.resources.memory.swappiness",
            dir,
            "memory.swappiness",
            &s.to_string(),
        )?;
    }
    Ok(())
}

fn v1_cpu(dir: &Path, c: &Cpu) -> Result<(), Error> {
    if let Some(shares) = c.shares {
        write_resource(
            "linux.resources.cpu.shares",
            dir,
            "cpu.shares",
            &shares.to_string(),
        )?;
        let actual = files::read_u64(dir, "cpu.shares")?;
        if actual != shares {
            return Err(Error::CpuSharesClamped {
                requested: shares,
                actual,
            });
        }
    }
    // Period and burst may be refused (EINVAL) until the quota is set: retry after it.
    let mut retry = Vec::new();
    for (value, file, field) in [
        (c.period, "cpu.cfs_period_us", "linux.resources.cpu.period"),
        (c.burst, "cpu.cfs_burst_us", "linux.resources.cpu.burst"),
    ] {
        if let Some(v) = value {
            match write_resource(field, dir, file, &v.to_string()) {
                Err(e) if is_einval(&e) && c.quota.is_some() => retry.push((file, field, v)),
                other => other?,
            }
        }
    }
    if let Some(q) = c.quota {
        write_resource(
            "linux.resources.cpu.quota",
            dir,
            "cpu.cfs_quota_us",
            &q.to_string(),
        )?;
        for (file, field, v) in retry {
            write_resource(field, dir, file, &v.to_string())?;
        }
    }
    if let Some(idle) = c.idle {
        write_resource(
            "linux.resources.cpu.idle",
            dir,
            "cpu.idle",
            &idle.to_string(),
        )?;
    }
    let mut rt_period_retry = None;
    if let Some(p) = c.realtime_period {
        let field = "linux.resources.cpu.realtimePeriod";
        match write_resource(field, dir, "cpu.rt_period_us", &p.to_string()) {
            Err(e) if is_einval(&e) && c.realtime_runtime.is_some() => rt_period_retry = Some(p),
            other => other?,
        }
    }
    if let Some(rt) = c.realtime_runtime {
        let field = "linux.resources.cpu.realtimeRuntime";
        write_resource(field, dir, "cpu.rt_runtime_us", &rt.to_string())?;
        if let Some(p) = rt_period_retry {
            write_resource(
                "linux.resources.cpu.realtimePeriod",
                dir,
                "cpu.rt_period_us",
                &p.to_string(),
            )?;
        }
    }
    Ok(())
}

fn v1_blkio(dir: &Path, b: &BlockIo) -> Result<(), Error> {
    // Kernels without CFQ have no blkio.weight; BFQ offers blkio.bfq.weight instead (runc).
    let (weight_file, weight_device_file) = if dir.join("blkio.weight").exists() {
        ("blkio.weight", "blkio.weight_device")
    } else if dir.join("blkio.bfq.weight").exists() {
        ("blkio.bfq.weight", "blkio.bfq.weight_device")
    } else {
        ("blkio.weight", "blkio.weight_device")
    };
    if let Some(w) = b.weight {
        write_resource(
            "linux.resources.blockIO.weight",
            dir,
            weight_file,
            &w.to_string(),
        )?;
    }
    if let Some(w) = b.leaf_weight {
        write_resource(
            "linux.resources.blockIO.leafWeight",
            dir,
            "blkio.leaf_weight",
            &w.to_string(),
        )?;
    }
    let lists: [(&[DeviceValue], &str, &'static str); 6] = [
        (
            &b.weight_device,
            weight_device_file,
            "linux.resources.blockIO.weightDevice",
        ),
        (
            &b.leaf_weight_device,
            "blkio.leaf_weight_device",
            "linux.resources.blockIO.weightDevice.leafWeight",
        ),
        (
            &b.read_bps,
            "blkio.throttle.read_bps_device",
            "linux.resources.blockIO.throttleReadBpsDevice",
        ),
        (
            &b.write_bps,
            "blkio.throttle.write_bps_device",
            "linux.resources.blockIO.throttleWriteBpsDevice",
        ),
        (
            &b.read_iops,
            "blkio.throttle.read_iops_device",
            "linux.resources.blockIO.throttleReadIOPSDevice",
        ),
        (
            &b.write_iops,
            "blkio.throttle.write_iops_device",
            "linux.resources.blockIO.throttleWriteIOPSDevice",
        ),
    ];
    for (list, file, field) in lists {
        if !list.is_empty() {
            require(field, dir, file)?;
        }
        for d in list {
            files::write(dir, file, &d.line())?;
        }
    }
    Ok(())
}
