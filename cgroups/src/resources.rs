//! Validated resources: linux.resources converted once, following runc's
//! specconv `CreateCgroupConfig`, so the apply code never re-checks Options.
//! runc's convention that 0 means "unset" for most numeric fields is kept
//! here (those fields become None).

use std::collections::BTreeMap;

use oci_spec::runtime::{LinuxDevice, LinuxResources, LinuxThrottleDevice};

use crate::devices::{rule_from_spec, rules_with_defaults, DeviceFilter};
use crate::Error;

/// memory.* settings.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Memory {
    /// Bytes, -1 = unlimited.
    pub(crate) limit: Option<i64>,
    /// Soft limit (v1 soft_limit_in_bytes, v2 memory.low).
    pub(crate) reservation: Option<i64>,
    /// memory+swap in bytes, -1 = unlimited.
    pub(crate) swap: Option<i64>,
    /// 0..=100.
    pub(crate) swappiness: Option<u64>,
    pub(crate) disable_oom_killer: bool,
    pub(crate) check_before_update: bool,
    /// Kernel memory limit in bytes (v1 memory.kmem.limit_in_bytes), -1 = unlimited.
    pub(crate) kernel: Option<i64>,
    /// Kernel TCP buffer limit in bytes (v1 memory.kmem.tcp.limit_in_bytes), -1 = unlimited.
    pub(crate) kernel_tcp: Option<i64>,
}

/// cpu.* and cpuset.* settings.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Cpu {
    pub(crate) shares: Option<u64>,
    /// µs per period, -1 = unlimited.
    pub(crate) quota: Option<i64>,
    pub(crate) period: Option<u64>,
    pub(crate) burst: Option<u64>,
    pub(crate) realtime_runtime: Option<i64>,
    pub(crate) realtime_period: Option<u64>,
    pub(crate) cpus: Option<String>,
    pub(crate) mems: Option<String>,
    pub(crate) idle: Option<i64>,
}

impl Cpu {
    pub(crate) fn any_cpu_controller_field(&self) -> bool {
        self.shares.is_some()
            || self.quota.is_some()
            || self.period.is_some()
            || self.burst.is_some()
            || self.realtime_runtime.is_some()
            || self.realtime_period.is_some()
            || self.idle.is_some()
    }
}

/// A per-device value ("major:minor value").
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DeviceValue {
    pub(crate) major: i64,
    pub(crate) minor: i64,
    pub(crate) value: u64,
}

impl DeviceValue {
    /// "major:minor value", as blkio.throttle.* and *weight_device expect.
    pub(crate) fn line(&self) -> String {
        format!("{}:{} {}", self.major, self.minor, self.value)
    }
}

/// blkio / io settings.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct BlockIo {
    pub(crate) weight: Option<u16>,
    pub(crate) leaf_weight: Option<u16>,
    pub(crate) weight_device: Vec<DeviceValue>,
    pub(crate) leaf_weight_device: Vec<DeviceValue>,
    pub(crate) read_bps: Vec<DeviceValue>,
    pub(crate) write_bps: Vec<DeviceValue>,
    pub(crate) read_iops: Vec<DeviceValue>,
    pub(crate) write_iops: Vec<DeviceValue>,
}

impl BlockIo {
    pub(crate) fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// One rdma device's limits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Rdma {
    pub(crate) hca_handles: Option<u32>,
    pub(crate) hca_objects: Option<u32>,
}

/// Validated resources (converted once from the spec; never re-check Options later).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resources {
    /// Wanted device-controller state; None leaves the devices cgroup untouched.
    pub(crate) devices: Option<DeviceFilter>,
    pub(crate) memory: Memory,
    pub(crate) cpu: Cpu,
    /// pids.max; negative = "max".
    pub(crate) pids_limit: Option<i64>,
    pub(crate) block_io: BlockIo,
    /// (page size like "2MB", limit in bytes).
    pub(crate) hugepage_limits: Vec<(String, i64)>,
    pub(crate) net_cls_classid: Option<u32>,
    /// (interface, priority).
    pub(crate) net_prio: Vec<(String, u32)>,
    pub(crate) rdma: BTreeMap<String, Rdma>,
    /// Raw v2 files (linux.resources.unified).
    pub(crate) unified: BTreeMap<String, String>,
    ignored: Vec<&'static str>,
}

fn non_zero_u64(v: Option<u64>) -> Option<u64> {
    v.filter(|&v| v != 0)
}

fn non_zero_i64(v: Option<i64>) -> Option<i64> {
    v.filter(|&v| v != 0)
}

/// Byte limits: 0 = unset, -1 = unlimited, other negatives are invalid.
fn byte_limit(field: &'static str, v: Option<i64>) -> Result<Option<i64>, Error> {
    match v {
        Some(v) if v < -1 => Err(Error::InvalidValue {
            field,
            value: v.to_string(),
            reason: "must be -1 (unlimited) or a positive number of bytes",
        }),
        v => Ok(non_zero_i64(v)),
    }
}

fn throttles(list: &Option<Vec<LinuxThrottleDevice>>) -> Vec<DeviceValue> {
    list.iter()
        .flatten()
        .map(|t| DeviceValue {
            major: t.major(),
            minor: t.minor(),
            value: t.rate(),
        })
        .collect()
}

/// "64KB", "2MB", "1GB": what hugetlb.<size>.* file names use.
fn valid_page_size(s: &str) -> bool {
    let digits = s.trim_end_matches(['K', 'M', 'G', 'B']);
    let suffix = &s[digits.len()..];
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && matches!(suffix, "KB" | "MB" | "GB")
}

impl Resources {
    /// Converts linux.resources. Includes the device rules: the spec's rules in
    /// order, then runc's default allowed devices (specconv `AllowedDevices`:
    /// `c *:* m`, `b *:* m`, null 1:3, random 1:8, full 1:7, tty 5:0, zero 1:5,
    /// urandom 1:9, pts 136:*, ptmx 5:2, tun 10:200). `extra_devices` are the
    /// spec's linux.devices: as in current runc they add no rule of their own,
    /// but a default whose /dev path they redefine is dropped.
    pub fn from_spec(
        res: Option<&LinuxResources>,
        extra_devices: &[LinuxDevice],
    ) -> Result<Self, Error> {
        let mut out = match res {
            Some(r) => Self::convert(r)?,
            None => Self::default(),
        };
        let spec_rules = res
            .and_then(|r| r.devices().as_ref())
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(i, d)| rule_from_spec(i, d))
            .collect::<Result<Vec<_>, _>>()?;
        let rules = rules_with_defaults(spec_rules, extra_devices);
        out.devices = Some(DeviceFilter::from_rules(&rules)?);
        Ok(out)
    }

    /// For `hako update`: a partial LinuxResources over nothing (devices untouched).
    pub fn for_update(res: &LinuxResources) -> Result<Self, Error> {
        Self::convert(res)
    }

    /// Spec fields that were accepted but deliberately not applied (as runc
    /// does: memory.useHierarchy); the caller may warn.
    pub fn ignored_fields(&self) -> &[&'static str] {
        &self.ignored
    }

    /// Whether applying this would write nothing.
    pub fn is_empty(&self) -> bool {
        Self {
            ignored: Vec::new(),
            ..self.clone()
        } == Self::default()
    }

    fn convert(r: &LinuxResources) -> Result<Self, Error> {
        let mut out = Self::default();
        if let Some(m) = r.memory() {
            out.memory = Memory {
                limit: byte_limit("linux.resources.memory.limit", m.limit())?,
                reservation: byte_limit("linux.resources.memory.reservation", m.reservation())?,
                swap: byte_limit("linux.resources.memory.swap", m.swap())?,
                swappiness: match m.swappiness() {
                    // runc treats -1 (u64::MAX once unsigned) as unset.
                    None | Some(u64::MAX) => None,
                    Some(s) if s <= 100 => Some(s),
                    Some(s) => {
                        return Err(Error::InvalidValue {
                            field: "linux.resources.memory.swappiness",
                            value: s.to_string(),
                            reason: "valid range is 0-100",
                        })
                    }
                },
                disable_oom_killer: m.disable_oom_killer().unwrap_or(false),
                check_before_update: m.check_before_update().unwrap_or(false),
                // Applied where the kernel honours them and refused where it does not (the
                // apply code checks), never dropped: runc 1.1 ignores both with a warning.
                kernel: byte_limit("linux.resources.memory.kernel", m.kernel())?,
                kernel_tcp: byte_limit("linux.resources.memory.kernelTCP", m.kernel_tcp())?,
            };
            // Since Linux 5.16 the memory controller always accounts hierarchically (v1
            // `memory.use_hierarchy` refuses 0 with EINVAL; v2 has no other mode): `true` is
            // what every cgroup does, `false` cannot be honoured.
            if m.use_hierarchy() == Some(false) {
                return Err(Error::InvalidValue {
                    field: "linux.resources.memory.useHierarchy",
                    value: "false".into(),
                    reason: "the kernel always accounts memory hierarchically (Linux 5.16)",
                });
            }
        }
        if let Some(c) = r.cpu() {
            if let Some(q) = c.quota().filter(|&q| q < -1) {
                return Err(Error::InvalidValue {
                    field: "linux.resources.cpu.quota",
                    value: q.to_string(),
                    reason: "must be -1 (unlimited) or positive",
                });
            }
            out.cpu = Cpu {
                shares: non_zero_u64(c.shares()),
                quota: non_zero_i64(c.quota()),
                period: non_zero_u64(c.period()),
                burst: c.burst(),
                realtime_runtime: non_zero_i64(c.realtime_runtime()),
                realtime_period: non_zero_u64(c.realtime_period()),
                cpus: c.cpus().clone().filter(|s| !s.is_empty()),
                mems: c.mems().clone().filter(|s| !s.is_empty()),
                idle: c.idle(),
            };
        }
        if let Some(p) = r.pids() {
            out.pids_limit = non_zero_i64(Some(p.limit()));
        }
        if let Some(b) = r.block_io() {
            let mut bio = BlockIo {
                weight: b.weight().filter(|&w| w != 0),
                leaf_weight: b.leaf_weight().filter(|&w| w != 0),
                read_bps: throttles(b.throttle_read_bps_device()),
                write_bps: throttles(b.throttle_write_bps_device()),
                read_iops: throttles(b.throttle_read_iops_device()),
                write_iops: throttles(b.throttle_write_iops_device()),
                ..BlockIo::default()
            };
            for wd in b.weight_device().iter().flatten() {
                let dv = |w: u16| DeviceValue {
                    major: wd.major(),
                    minor: wd.minor(),
                    value: u64::from(w),
                };
                if let Some(w) = wd.weight().filter(|&w| w != 0) {
                    bio.weight_device.push(dv(w));
                }
                if let Some(w) = wd.leaf_weight().filter(|&w| w != 0) {
                    bio.leaf_weight_device.push(dv(w));
                }
            }
            out.block_io = bio;
        }
        for h in r.hugepage_limits().iter().flatten() {
            if !valid_page_size(h.page_size()) {
                return Err(Error::InvalidValue {
                    field: "linux.resources.hugepageLimits.pageSize",
                    value: h.page_size().clone(),
                    reason: "expected a size like 2MB or 1GB",
                });
            }
            out.hugepage_limits.push((h.page_size().clone(), h.limit()));
        }
        if let Some(n) = r.network() {
            out.net_cls_classid = n.class_id();
            out.net_prio = n
                .priorities()
                .iter()
                .flatten()
                .map(|p| (p.name().clone(), p.priority()))
                .collect();
        }
        for (dev, l) in r.rdma().iter().flatten() {
            out.rdma.insert(
                dev.clone(),
                Rdma {
                    hca_handles: l.hca_handles(),
                    hca_objects: l.hca_objects(),
                },
            );
        }
        for (k, v) in r.unified().iter().flatten() {
            if k.is_empty() || k.contains('/') || !k.contains('.') || k.starts_with("cgroup.") {
                return Err(Error::InvalidValue {
                    field: "linux.resources.unified",
                    value: k.clone(),
                    reason: "key must be a controller file name like memory.high",
                });
            }
            out.unified.insert(k.clone(), v.clone());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn zero_means_unset() {
        let r = Resources::for_update(&parse(
            r#"{"memory":{"limit":0,"swap":0},"cpu":{"shares":0,"quota":0,"cpus":""},"pids":{"limit":0}}"#,
        ))
        .unwrap();
        assert!(r.is_empty(), "{r:?}");
        assert!(r.devices.is_none());
    }

    #[test]
    fn converts_values() {
        let r = Resources::for_update(&parse(
            r#"{"memory":{"limit":1048576,"swap":-1,"swappiness":10,"kernel":5,"disableOOMKiller":true},
                "cpu":{"shares":512,"quota":-1,"period":100000,"cpus":"0","mems":"0"},
                "pids":{"limit":-1},
                "blockIO":{"weight":300,"weightDevice":[{"major":8,"minor":0,"weight":100,"leafWeight":50}],
                           "throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1024}]},
                "hugepageLimits":[{"pageSize":"2MB","limit":4194304}],
                "unified":{"memory.high":"max"}}"#,
        ))
        .unwrap();
        assert_eq!(r.memory.limit, Some(1_048_576));
        assert_eq!(r.memory.swap, Some(-1));
        assert!(r.memory.disable_oom_killer);
        assert_eq!(r.memory.kernel, Some(5));
        assert!(r.ignored_fields().is_empty());
        assert_eq!(r.cpu.quota, Some(-1));
        assert_eq!(r.cpu.cpus.as_deref(), Some("0"));
        assert_eq!(r.pids_limit, Some(-1));
        assert_eq!(r.block_io.weight_device[0].line(), "8:0 100");
        assert_eq!(r.block_io.leaf_weight_device[0].line(), "8:0 50");
        assert_eq!(r.block_io.read_bps[0].line(), "8:0 1024");
        assert_eq!(r.hugepage_limits, [("2MB".to_string(), 4_194_304)]);
        assert_eq!(
            r.unified.get("memory.high").map(String::as_str),
            Some("max")
        );
    }

    #[test]
    fn rejects_invalid_values() {
        for bad in [
            r#"{"memory":{"swappiness":101}}"#,
            r#"{"memory":{"limit":-2}}"#,
            r#"{"memory":{"kernelTCP":-2}}"#,
            r#"{"memory":{"kernel":-3}}"#,
            r#"{"cpu":{"quota":-7}}"#,
            r#"{"hugepageLimits":[{"pageSize":"2XB","limit":1}]}"#,
            r#"{"unified":{"../x":"1"}}"#,
            r#"{"unified":{"cgroup.procs":"1"}}"#,
        ] {
            assert!(
                matches!(
                    Resources::for_update(&parse(bad)),
                    Err(Error::InvalidValue { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn kernel_memory_limits_are_kept_not_ignored() {
        let r = Resources::for_update(&parse(
            r#"{"memory":{"kernel":-1,"kernelTCP":50593792,"useHierarchy":true}}"#,
        ))
        .unwrap();
        assert_eq!(r.memory.kernel, Some(-1));
        assert_eq!(r.memory.kernel_tcp, Some(50_593_792));
        assert!(
            r.ignored_fields().is_empty(),
            "useHierarchy true is honoured"
        );
        let e = Resources::for_update(&parse(r#"{"memory":{"useHierarchy":false}}"#))
            .expect_err("cannot be honoured");
        assert!(
            e.to_string()
                .contains("linux.resources.memory.useHierarchy"),
            "{e}"
        );
        // 0 is runc's "unset", as for the other byte limits.
        let r = Resources::for_update(&parse(r#"{"memory":{"kernelTCP":0}}"#)).unwrap();
        assert!(r.is_empty(), "{r:?}");
    }

    #[test]
    fn from_spec_always_has_device_filter() {
        let r = Resources::from_spec(None, &[]).unwrap();
        assert!(r.devices.is_some());
        assert!(!r.is_empty());
    }

    #[test]
    fn page_sizes() {
        assert!(valid_page_size("2MB"));
        assert!(valid_page_size("1GB"));
        assert!(valid_page_size("64KB"));
        assert!(!valid_page_size("MB"));
        assert!(!valid_page_size("2M"));
    }
}
