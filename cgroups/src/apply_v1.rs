//! Writing [`Resources`] to cgroup v1 files, following runc's fs driver
//! (libcontainer/cgroups/fs/*.go) for file names, value formats and the
//! places where write order matters:
//! - memory: limit vs memory+swap are validated against each other by the
//!   kernel (memsw ≥ limit), so when raising, memsw goes first;
//! - cpu: cfs_period/quota/burst and rt_period/runtime are inter-dependent;
//!   an EINVAL on the first is retried after the second;
//! - devices: see the `devices` module;
//! - kernel memory (kmem, kmem.tcp): written, then read back, because a kernel may take the
//!   write and keep its old value; a limit it does not honour is an error naming the field.

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
    let kernel_limits = [
        (
            m.kernel,
            "linux.resources.memory.kernel",
            "memory.kmem.limit_in_bytes",
        ),
        (
            m.kernel_tcp,
            "linux.resources.memory.kernelTCP",
            "memory.kmem.tcp.limit_in_bytes",
        ),
    ];
    for (limit, field, file) in kernel_limits {
        if let Some(bytes) = limit {
            write_byte_limit_verified(field, dir, file, bytes)?;
        }
    }
    Ok(())
}

/// What a v1 memory `*limit_in_bytes` file reads after `bytes` was written: the kernel keeps
/// whole pages, rounding down (mm/page_counter.c, `page_counter_memparse`), and -1 is its
/// largest count of pages.
fn byte_limit_read_back(bytes: i64, page: u64) -> u64 {
    let bytes = if bytes < 0 { i64::MAX } else { bytes };
    bytes.unsigned_abs() / page * page
}

/// Writes a byte limit and checks that the kernel kept it: a kernel that no longer honours a
/// knob may still take the write (kmem on recent kernels), and a silent drop is what the spec
/// forbids ("unsupported values MUST error").
fn write_byte_limit_verified(
    field: &'static str,
    dir: &Path,
    file: &str,
    bytes: i64,
) -> Result<(), Error> {
    let value = bytes.to_string();
    require(field, dir, file)?;
    files::write(dir, file, &value).map_err(|e| match e {
        Error::Write {
            path,
            value,
            source,
        } => Error::Refused {
            field,
            path,
            value,
            source,
        },
        other => other,
    })?;
    let actual = files::read(dir, file)?;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|p| u64::try_from(p).ok())
        .unwrap_or(4096);
    if actual.trim().parse::<u64>().ok() == Some(byte_limit_read_back(bytes, page)) {
        return Ok(());
    }
    Err(Error::NotHonoured {
        field,
        path: dir.join(file),
        value,
        actual: actual.trim().to_string(),
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Hierarchy, Mode};
    use oci_spec::runtime::LinuxResources;

    /// A v1 memory directory of plain files: they read back what was written, as a kernel that
    /// honours the value does.
    fn fake_v1_memory(files: &[&str]) -> (tempfile::TempDir, Cgroup) {
        let tmp = tempfile::tempdir().unwrap();
        for f in files {
            std::fs::write(tmp.path().join(f), "").unwrap();
        }
        let h = Hierarchy {
            name: "memory".into(),
            mount_point: tmp.path().to_path_buf(),
            dir: tmp.path().to_path_buf(),
            fs_type: "cgroup",
            options: "memory".into(),
        };
        (tmp, Cgroup::fake(Mode::Legacy, vec![h]))
    }

    fn update(cg: &Cgroup, json: &str) -> Result<(), Error> {
        let r: LinuxResources = serde_json::from_str(json).unwrap();
        cg.apply(&Resources::for_update(&r).unwrap())
    }

    #[test]
    fn kernel_tcp_is_written() {
        let (tmp, cg) = fake_v1_memory(&["memory.kmem.tcp.limit_in_bytes"]);
        update(&cg, r#"{"memory":{"kernelTCP":50593792}}"#).unwrap();
        let file = tmp.path().join("memory.kmem.tcp.limit_in_bytes");
        assert_eq!(std::fs::read_to_string(file).unwrap(), "50593792");
    }

    #[test]
    fn kernel_limits_missing_or_not_kept_are_errors_naming_the_field() {
        let (tmp, cg) = fake_v1_memory(&[]);
        let err = update(&cg, r#"{"memory":{"kernelTCP":50593792}}"#).unwrap_err();
        assert!(
            matches!(
                err,
                Error::MissingFile {
                    field: "linux.resources.memory.kernelTCP",
                    ..
                }
            ),
            "{err:?}"
        );
        // Read back wrong: a plain file keeps "-1" where a kernel that applied it reads its
        // largest page count, the same mismatch as a kernel that took the write and kept
        // its old value.
        std::fs::write(tmp.path().join("memory.kmem.limit_in_bytes"), "").unwrap();
        update(&cg, r#"{"memory":{"kernel":8192}}"#).unwrap();
        let err = update(&cg, r#"{"memory":{"kernel":-1}}"#).unwrap_err();
        assert!(
            matches!(
                err,
                Error::NotHonoured {
                    field: "linux.resources.memory.kernel",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("linux.resources.memory.kernel"));
    }

    #[test]
    fn read_back_rounds_down_to_pages() {
        assert_eq!(byte_limit_read_back(50_593_792, 4096), 50_593_792);
        assert_eq!(byte_limit_read_back(50_593_793, 4096), 50_593_792);
        assert_eq!(byte_limit_read_back(-1, 4096), 9_223_372_036_854_771_712);
    }
}
