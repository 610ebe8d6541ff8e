//! Resources as systemd unit properties, mapped as runc maps them (opencontainers/cgroups
//! systemd/v1.go `genV1ResourcesProperties`, v2.go `genV2ResourcesProperties`, common.go
//! `addCpuQuota`/`addCpuset`, devices/systemd.go; property names from
//! systemd.resource-control(5)). What has no property is written to the cgroup files
//! afterwards ([`crate::Cgroup::apply`]), as runc's `Set` does after `SetUnitProperties`.

use super::wire::Value;
use crate::devices::{DevKey, DevType};
use crate::{cpu_shares_to_weight, memory_swap_to_v2, Error, Resources};

/// One unit property: name and value (marshalled as the `(sv)` struct).
pub(crate) type Property = (&'static str, Value);

/// systemd's USEC_INFINITY / "infinity" for 64-bit limits; runc passes uint64(-1).
const INFINITY: u64 = u64::MAX;
/// The kernel's default CFS period (sched-bwc.rst), which runc assumes when only a quota is set.
const DEFAULT_PERIOD_US: u64 = 100_000;

/// A byte or task limit where -1 means unlimited.
fn limit(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(INFINITY)
}

/// runc's `addCpuQuota`: CPUQuotaPeriodUSec, then CPUQuotaPerSecUSec rounded up to whole
/// percents (systemd keeps the quota as a percentage, so a fractional one is rounded up so that
/// the container is never given less than asked).
fn cpu_quota(props: &mut Vec<Property>, quota: Option<i64>, period: Option<u64>) {
    if let Some(p) = period {
        props.push(("CPUQuotaPeriodUSec", Value::U64(p)));
    }
    if quota.is_none() && period.is_none() {
        return;
    }
    let per_sec = match quota {
        Some(q) if q > 0 => {
            let period = period.unwrap_or(DEFAULT_PERIOD_US);
            let v = u64::try_from(q).unwrap_or(0).saturating_mul(1_000_000) / period;
            v.div_ceil(10_000) * 10_000
        }
        _ => INFINITY,
    };
    props.push(("CPUQuotaPerSecUSec", Value::U64(per_sec)));
}

/// "0-2,5" → systemd's CPU/NUMA set: a little-endian bit mask, bit n for CPU n (runc
/// `RangeToBits`; systemd `cpu_set_from_dbus`).
pub(crate) fn range_to_bits(list: &str, field: &'static str) -> Result<Vec<u8>, Error> {
    let invalid = || Error::InvalidValue {
        field,
        value: list.to_string(),
        reason: "not a list of numbers and ranges like 0-2,5",
    };
    let mut bits: Vec<u8> = Vec::new();
    for part in list.trim().split(',') {
        let (lo, hi) = match part.trim().split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part.trim(), part.trim()),
        };
        let lo: usize = lo.parse().map_err(|_| invalid())?;
        let hi: usize = hi.parse().map_err(|_| invalid())?;
        if lo > hi || hi >= 8192 {
            return Err(invalid());
        }
        for n in lo..=hi {
            if bits.len() <= n / 8 {
                bits.resize(n / 8 + 1, 0);
            }
            bits[n / 8] |= 1 << (n % 8);
        }
    }
    Ok(bits)
}

fn cpuset(props: &mut Vec<Property>, r: &Resources) -> Result<(), Error> {
    let bytes = |b: Vec<u8>| Value::Array("y".into(), b.into_iter().map(Value::Byte).collect());
    if let Some(cpus) = &r.cpu.cpus {
        let bits = range_to_bits(cpus, "linux.resources.cpu.cpus")?;
        props.push(("AllowedCPUs", bytes(bits)));
    }
    if let Some(mems) = &r.cpu.mems {
        let bits = range_to_bits(mems, "linux.resources.cpu.mems")?;
        props.push(("AllowedMemoryNodes", bytes(bits)));
    }
    Ok(())
}

/// The name of `major`'s driver in /proc/devices' section for `typ` ("Character devices:" or
/// "Block devices:").
fn device_group(proc_devices: &str, typ: DevType, major: u32) -> Option<String> {
    let section = match typ {
        DevType::Char => "Character devices:",
        DevType::Block => "Block devices:",
        DevType::All => return None,
    };
    let mut inside = false;
    for line in proc_devices.lines() {
        if line.ends_with(':') {
            inside = line == section;
            continue;
        }
        let mut f = line.split_whitespace();
        if inside && f.next().and_then(|m| m.parse::<u32>().ok()) == Some(major) {
            return f.next().map(str::to_string);
        }
    }
    None
}

/// DevicePolicy and DeviceAllow for the wanted device state (runc devices/systemd.go):
/// allow-by-default is `auto` with an empty list (systemd cannot express the denials: the
/// devices cgroup or hako's eBPF program does); deny-by-default is `strict` with each
/// allowance as `/dev/{char,block}/M:m`, `{char,block}-<driver>` for a whole major (named
/// in /proc/devices; a major without a driver there is left to the files, as runc skips
/// it), and `{char,block}-*` for every device of a type. Like runc, a single device the host
/// does not have (`exists` says no for its `/sys/dev/...` entry, e.g. tun before its module is
/// loaded) is left out: systemd warns about such a path, and the files (devices cgroup or
/// hako's eBPF program) carry the rule anyway.
fn devices(props: &mut Vec<Property>, r: &Resources, host: &Host<'_>) {
    let Some(filter) = &r.devices else { return };
    let entry =
        |path: String, access: String| Value::Struct(vec![Value::Str(path), Value::Str(access)]);
    let mut allow = Vec::new();
    if !filter.default_allow() {
        for (DevKey { major, minor, typ }, access) in filter.exceptions() {
            let kind = match typ {
                DevType::Char => "char",
                DevType::Block => "block",
                DevType::All => continue,
            };
            let path = match (major, minor) {
                (None, _) => format!("{kind}-*"),
                (Some(ma), None) => match device_group(host.proc_devices, *typ, *ma) {
                    Some(name) => format!("{kind}-{name}"),
                    None => continue,
                },
                (Some(ma), Some(mi)) if (host.exists)(&format!("/sys/dev/{kind}/{ma}:{mi}")) => {
                    format!("/dev/{kind}/{ma}:{mi}")
                }
                (Some(_), Some(_)) => continue,
            };
            allow.push(entry(path, access.to_string()));
        }
    }
    let policy = if filter.default_allow() {
        "auto"
    } else {
        "strict"
    };
    props.push(("DevicePolicy", Value::str(policy)));
    props.push(("DeviceAllow", Value::Array("(ss)".into(), allow)));
}

/// What the device properties depend on: /proc/devices' text and whether a path exists.
pub(crate) struct Host<'a> {
    pub(crate) proc_devices: &'a str,
    pub(crate) exists: &'a dyn Fn(&str) -> bool,
}

/// The properties for `r` on a v2 host (`unified`) or a v1/hybrid one.
pub(crate) fn resources(
    r: &Resources,
    unified: bool,
    host: &Host<'_>,
) -> Result<Vec<Property>, Error> {
    let mut props = Vec::new();
    devices(&mut props, r, host);
    let m = &r.memory;
    if unified {
        if let Some(l) = m.limit {
            props.push(("MemoryMax", Value::U64(limit(l))));
        }
        if let Some(l) = m.reservation {
            props.push(("MemoryLow", Value::U64(limit(l))));
        }
        if let Some(s) = m.swap {
            match memory_swap_to_v2(s, m.limit.unwrap_or(0))? {
                0 => {}
                v => props.push(("MemorySwapMax", Value::U64(limit(v)))),
            }
        }
        if let Some(s) = r.cpu.shares {
            props.push(("CPUWeight", Value::U64(cpu_shares_to_weight(s))));
        }
    } else {
        if let Some(l) = m.limit {
            props.push(("MemoryLimit", Value::U64(limit(l))));
        }
        if let Some(s) = r.cpu.shares {
            props.push(("CPUShares", Value::U64(s)));
        }
    }
    cpu_quota(&mut props, r.cpu.quota, r.cpu.period);
    if !unified {
        if let Some(w) = r.block_io.weight.filter(|&w| w != 0) {
            props.push(("BlockIOWeight", Value::U64(u64::from(w))));
        }
    }
    if let Some(p) = r.pids_limit {
        props.push(("TasksMax", Value::U64(limit(p))));
    }
    cpuset(&mut props, r)?;
    if unified {
        unified_files(&mut props, r);
    }
    Ok(props)
}

/// linux.resources.unified keys systemd has a property for (runc `unifiedResToSystemdProps`);
/// every key is also written to its file.
fn unified_files(props: &mut Vec<Property>, r: &Resources) {
    for (key, value) in &r.unified {
        let v = value.trim();
        let number = || {
            if v == "max" {
                Some(INFINITY)
            } else {
                v.parse::<u64>().ok()
            }
        };
        let name = match key.as_str() {
            "memory.high" => "MemoryHigh",
            "memory.low" => "MemoryLow",
            "memory.min" => "MemoryMin",
            "memory.max" => "MemoryMax",
            "memory.swap.max" => "MemorySwapMax",
            "pids.max" => "TasksMax",
            "cpu.weight" => "CPUWeight",
            _ => continue,
        };
        if let Some(n) = number() {
            props.push((name, Value::U64(n)));
        }
    }
}

/// What every new unit gets (runc's `Apply`): description, slice (or, for a slice unit,
/// `Wants=` of the parent), delegation, the pid, accounting on, no default dependencies.
pub(crate) fn unit(unit: &super::Unit, id_hint: &str, pid: u32, unified: bool) -> Vec<Property> {
    let mut props = vec![(
        "Description",
        Value::Str(format!("hako container {id_hint}")),
    )];
    if unit.is_slice() {
        props.push((
            "Wants",
            Value::Array("s".into(), vec![Value::str(&unit.slice)]),
        ));
    } else {
        props.push(("Slice", Value::str(&unit.slice)));
        props.push(("Delegate", Value::Bool(true)));
    }
    props.push(("PIDs", Value::Array("u".into(), vec![Value::U32(pid)])));
    let io = if unified {
        "IOAccounting"
    } else {
        "BlockIOAccounting"
    };
    for name in ["MemoryAccounting", "CPUAccounting", io, "TasksAccounting"] {
        props.push((name, Value::Bool(true)));
    }
    props.push(("DefaultDependencies", Value::Bool(false)));
    props
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxResources;

    const PROC_DEVICES: &str =
        "Character devices:\n  1 mem\n  5 /dev/tty\n136 pts\n\nBlock devices:\n  8 sd\n";
    /// A host without tun (10:200).
    const HOST: Host<'static> = Host {
        proc_devices: PROC_DEVICES,
        exists: &|p| p != "/sys/dev/char/10:200",
    };

    fn res(json: &str) -> Resources {
        let r: LinuxResources = serde_json::from_str(json).unwrap();
        Resources::from_spec(Some(&r), &[]).unwrap()
    }

    fn find<'a>(props: &'a [Property], name: &str) -> Option<&'a Value> {
        props.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    #[test]
    fn v2_maps_memory_cpu_pids_and_cpuset() {
        let r = res(
            r#"{"memory": {"limit": 67108864, "swap": 134217728, "reservation": 1048576},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0"},
            "pids": {"limit": 50}, "blockIO": {"weight": 500}}"#,
        );
        let p = resources(&r, true, &HOST).unwrap();
        assert_eq!(find(&p, "MemoryMax"), Some(&Value::U64(67_108_864)));
        assert_eq!(find(&p, "MemoryLow"), Some(&Value::U64(1_048_576)));
        assert_eq!(find(&p, "MemorySwapMax"), Some(&Value::U64(67_108_864)));
        assert_eq!(
            find(&p, "CPUWeight"),
            Some(&Value::U64(cpu_shares_to_weight(512)))
        );
        assert_eq!(find(&p, "CPUQuotaPeriodUSec"), Some(&Value::U64(100_000)));
        assert_eq!(find(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(500_000)));
        assert_eq!(find(&p, "TasksMax"), Some(&Value::U64(50)));
        assert_eq!(
            find(&p, "AllowedCPUs"),
            Some(&Value::Array("y".into(), vec![Value::Byte(3)]))
        );
        assert_eq!(
            find(&p, "AllowedMemoryNodes"),
            Some(&Value::Array("y".into(), vec![Value::Byte(1)]))
        );
        // runc maps no I/O weight to a v2 property: io.weight is written to the file.
        assert_eq!(find(&p, "IOWeight"), None);
        assert_eq!(find(&p, "BlockIOWeight"), None);
        assert_eq!(find(&p, "MemoryLimit"), None);
    }

    #[test]
    fn v1_uses_the_v1_names() {
        let r = res(
            r#"{"memory": {"limit": 67108864}, "cpu": {"shares": 512}, "blockIO": {"weight": 500},
            "pids": {"limit": -1}}"#,
        );
        let p = resources(&r, false, &HOST).unwrap();
        assert_eq!(find(&p, "MemoryLimit"), Some(&Value::U64(67_108_864)));
        assert_eq!(find(&p, "CPUShares"), Some(&Value::U64(512)));
        assert_eq!(find(&p, "BlockIOWeight"), Some(&Value::U64(500)));
        assert_eq!(find(&p, "TasksMax"), Some(&Value::U64(u64::MAX)));
        assert_eq!(find(&p, "MemoryMax"), None);
        assert_eq!(find(&p, "CPUWeight"), None);
    }

    #[test]
    fn quota_rounds_up_to_whole_percents() {
        let mut p = Vec::new();
        cpu_quota(&mut p, Some(12_345), None);
        assert_eq!(p, vec![("CPUQuotaPerSecUSec", Value::U64(130_000))]);
        let mut p = Vec::new();
        cpu_quota(&mut p, Some(-1), Some(50_000));
        assert_eq!(
            p,
            vec![
                ("CPUQuotaPeriodUSec", Value::U64(50_000)),
                ("CPUQuotaPerSecUSec", Value::U64(u64::MAX))
            ]
        );
        let mut p = Vec::new();
        cpu_quota(&mut p, None, None);
        assert!(p.is_empty());
    }

    #[test]
    fn cpu_lists_become_little_endian_masks() {
        assert_eq!(range_to_bits("0", "f").unwrap(), vec![1]);
        assert_eq!(range_to_bits("0-2,9", "f").unwrap(), vec![7, 2]);
        assert_eq!(range_to_bits("1,3-4, 15", "f").unwrap(), vec![0x1a, 0x80]);
        for bad in ["", "a", "3-1", "1-", "99999"] {
            assert!(range_to_bits(bad, "f").is_err(), "{bad}");
        }
    }

    #[test]
    fn default_devices_are_a_strict_allow_list() {
        let r = res("{}");
        let p = resources(&r, true, &HOST).unwrap();
        assert_eq!(find(&p, "DevicePolicy"), Some(&Value::str("strict")));
        let Some(Value::Array(_, list)) = find(&p, "DeviceAllow") else {
            panic!("no DeviceAllow")
        };
        let shown: Vec<String> = list.iter().map(|e| e.to_string()).collect();
        for want in [
            r#"("char-*", "m")"#,
            r#"("block-*", "m")"#,
            r#"("/dev/char/1:3", "rwm")"#,
            r#"("/dev/char/5:2", "rwm")"#,
            r#"("char-pts", "rwm")"#,
        ] {
            assert!(shown.iter().any(|s| s == want), "{want} not in {shown:?}");
        }
        // The host has no tun device: left to the files, as runc does.
        assert!(!shown.iter().any(|s| s.contains("10:200")), "{shown:?}");
    }

    #[test]
    fn allow_all_is_policy_auto() {
        let r = res(r#"{"devices": [{"allow": true, "access": "rwm"}]}"#);
        let p = resources(&r, true, &HOST).unwrap();
        assert_eq!(find(&p, "DevicePolicy"), Some(&Value::str("auto")));
        assert_eq!(
            find(&p, "DeviceAllow"),
            Some(&Value::Array("(ss)".into(), vec![]))
        );
    }

    #[test]
    fn majors_are_named_from_proc_devices() {
        assert_eq!(
            device_group(PROC_DEVICES, DevType::Char, 136).as_deref(),
            Some("pts")
        );
        assert_eq!(
            device_group(PROC_DEVICES, DevType::Block, 8).as_deref(),
            Some("sd")
        );
        assert_eq!(device_group(PROC_DEVICES, DevType::Block, 1), None);
    }

    #[test]
    fn a_new_scope_delegates_and_holds_the_pid() {
        let u = super::super::Unit::parse(Some("system.slice:p:c"), "c").unwrap();
        let p = unit(&u, "c", 42, true);
        assert_eq!(find(&p, "Slice"), Some(&Value::str("system.slice")));
        assert_eq!(find(&p, "Delegate"), Some(&Value::Bool(true)));
        assert_eq!(
            find(&p, "PIDs"),
            Some(&Value::Array("u".into(), vec![Value::U32(42)]))
        );
        assert_eq!(find(&p, "IOAccounting"), Some(&Value::Bool(true)));
        assert_eq!(find(&p, "DefaultDependencies"), Some(&Value::Bool(false)));
    }
}
