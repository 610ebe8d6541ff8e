//! Device cgroup rules: conversion from the spec, runc's default allow list,
//! and an emulation of the v1 devices controller so writes are minimal and
//! `devices.list` ends exactly as with runc.
//!
//! The v1 controller (kernel Documentation/admin-guide/cgroup-v1/devices.rst)
//! is either allow-by-default with deny exceptions ("blacklist") or
//! deny-by-default with allow exceptions ("whitelist"); writing `a` switches
//! the mode and drops every exception. `devices.list` only shows a whitelist,
//! so a blacklist cannot be read back. Like runc's emulator
//! (opencontainers/cgroups devices_emulator.go) we compute the wanted state
//! from the rules in order, then the transition from the current state: a
//! disruptive `a` only when the mode differs or the current state is a
//! blacklist, then exceptions sorted by (major, minor, type) with wildcards
//! first. Re-applying the same rules to a running container therefore writes
//! nothing that could briefly deny a device (runc #2366-era fix).

use std::collections::BTreeMap;
use std::fmt;

use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType};

use crate::Error;

/// Device type as the devices controller knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum DevType {
    /// `a`: every device (only meaningful as a mode switch).
    All,
    /// `b`: block device.
    Block,
    /// `c`: character device.
    Char,
}

impl DevType {
    fn letter(self) -> char {
        match self {
            Self::All => 'a',
            Self::Block => 'b',
            Self::Char => 'c',
        }
    }
}

/// Access bits: read, write, mknod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Access(u8);

impl Access {
    const R: u8 = 1;
    const W: u8 = 2;
    const M: u8 = 4;
    pub(crate) const ALL: Access = Access(7);

    /// Parse an access string ("rwm", "r", ...); None if empty or with other letters.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let mut bits = 0;
        for c in s.chars() {
            bits |= match c {
                'r' => Self::R,
                'w' => Self::W,
                'm' => Self::M,
                _ => return None,
            };
        }
        (bits != 0).then_some(Access(bits))
    }

    fn union(self, o: Self) -> Self {
        Access(self.0 | o.0)
    }

    fn minus(self, o: Self) -> Self {
        Access(self.0 & !o.0)
    }

    fn intersects(self, o: Self) -> bool {
        self.0 & o.0 != 0
    }

    fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Access from its bits (r = 1, w = 2, m = 4), for tests.
    #[cfg(test)]
    pub(crate) fn from_bits(bits: u8) -> Self {
        Access(bits & 7)
    }

    /// Whether read (`r`) is among the bits.
    pub(crate) fn read(self) -> bool {
        self.0 & Self::R != 0
    }

    /// Whether write (`w`) is among the bits.
    pub(crate) fn write(self) -> bool {
        self.0 & Self::W != 0
    }

    /// Whether mknod (`m`) is among the bits.
    pub(crate) fn mknod(self) -> bool {
        self.0 & Self::M != 0
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (bit, c) in [(Self::R, 'r'), (Self::W, 'w'), (Self::M, 'm')] {
            if self.0 & bit != 0 {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// What an exception matches. Field order gives runc's write order:
/// major, minor (wildcard `None` first), then type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct DevKey {
    /// None: any major.
    pub(crate) major: Option<u32>,
    /// None: any minor.
    pub(crate) minor: Option<u32>,
    /// Block or char (never `All` in a [`DeviceFilter`] exception).
    pub(crate) typ: DevType,
}

/// One rule as written to devices.allow / devices.deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DeviceRule {
    pub(crate) allow: bool,
    pub(crate) key: DevKey,
    pub(crate) access: Access,
}

impl DeviceRule {
    const fn allow_char(major: Option<u32>, minor: Option<u32>, access: u8) -> Self {
        Self {
            allow: true,
            key: DevKey {
                major,
                minor,
                typ: DevType::Char,
            },
            access: Access(access),
        }
    }

    /// The control file this rule is written to.
    pub(crate) fn file(&self) -> &'static str {
        if self.allow {
            "devices.allow"
        } else {
            "devices.deny"
        }
    }
}

impl fmt::Display for DeviceRule {
    /// Renders as the kernel expects: "c 1:3 rwm", "a *:* rwm".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let num = |n: Option<u32>| n.map_or_else(|| "*".to_string(), |n| n.to_string());
        write!(
            f,
            "{} {}:{} {}",
            self.key.typ.letter(),
            num(self.key.major),
            num(self.key.minor),
            self.access
        )
    }
}

/// A default allowed device: its rule, and the /dev path it stands for (if any),
/// which a linux.devices entry with the same path replaces.
struct DefaultDevice {
    path: Option<&'static str>,
    rule: DeviceRule,
}

const RWM: u8 = 7;

/// runc's specconv `AllowedDevices`, in runc's order.
const ALLOWED_DEVICES: [DefaultDevice; 11] = [
    DefaultDevice {
        path: None,
        rule: DeviceRule::allow_char(None, None, Access::M),
    },
    DefaultDevice {
        path: None,
        rule: DeviceRule {
            allow: true,
            key: DevKey {
                major: None,
                minor: None,
                typ: DevType::Block,
            },
            access: Access(Access::M),
        },
    },
    DefaultDevice {
        path: Some("/dev/null"),
        rule: DeviceRule::allow_char(Some(1), Some(3), RWM),
    },
    DefaultDevice {
        path: Some("/dev/random"),
        rule: DeviceRule::allow_char(Some(1), Some(8), RWM),
    },
    DefaultDevice {
        path: Some("/dev/full"),
        rule: DeviceRule::allow_char(Some(1), Some(7), RWM),
    },
    DefaultDevice {
        path: Some("/dev/tty"),
        rule: DeviceRule::allow_char(Some(5), Some(0), RWM),
    },
    DefaultDevice {
        path: Some("/dev/zero"),
        rule: DeviceRule::allow_char(Some(1), Some(5), RWM),
    },
    DefaultDevice {
        path: Some("/dev/urandom"),
        rule: DeviceRule::allow_char(Some(1), Some(9), RWM),
    },
    // /dev/pts/*
    DefaultDevice {
        path: None,
        rule: DeviceRule::allow_char(Some(136), None, RWM),
    },
    // /dev/ptmx
    DefaultDevice {
        path: None,
        rule: DeviceRule::allow_char(Some(5), Some(2), RWM),
    },
    // /dev/net/tun, kept by runc for compatibility (runc #3468)
    DefaultDevice {
        path: None,
        rule: DeviceRule::allow_char(Some(10), Some(200), RWM),
    },
];

fn device_number(index: usize, n: Option<i64>) -> Result<Option<u32>, Error> {
    n.filter(|&n| n != -1)
        .map(|n| {
            u32::try_from(n).map_err(|_| Error::InvalidDeviceRule {
                index,
                reason: "major/minor must be -1 (any) or 0..=4294967295",
            })
        })
        .transpose()
}

/// Convert one linux.resources.devices entry (`index` is its position, for errors).
pub(crate) fn rule_from_spec(index: usize, d: &LinuxDeviceCgroup) -> Result<DeviceRule, Error> {
    let typ = match d.typ() {
        None | Some(LinuxDeviceType::A) => DevType::All,
        Some(LinuxDeviceType::B) => DevType::Block,
        Some(LinuxDeviceType::C) => DevType::Char,
        Some(LinuxDeviceType::U | LinuxDeviceType::P) => {
            return Err(Error::InvalidDeviceRule {
                index,
                reason: "type must be a, b or c",
            })
        }
    };
    let access = match d.access().as_deref() {
        None | Some("") => {
            return Err(Error::InvalidDeviceRule {
                index,
                reason: "access must not be empty",
            })
        }
        Some(a) => Access::parse(a).ok_or(Error::InvalidDeviceRule {
            index,
            reason: "access may only contain r, w and m",
        })?,
    };
    Ok(DeviceRule {
        allow: d.allow(),
        key: DevKey {
            major: device_number(index, d.major())?,
            minor: device_number(index, d.minor())?,
            typ,
        },
        access,
    })
}

/// The spec's rules in order, then runc's default allowed devices, minus the
/// defaults whose /dev path a linux.devices entry redefines (runc specconv
/// `createDevices`; linux.devices themselves add no rule in runc).
pub(crate) fn rules_with_defaults(
    spec_rules: Vec<DeviceRule>,
    extra_devices: &[LinuxDevice],
) -> Vec<DeviceRule> {
    let mut rules = spec_rules;
    rules.extend(
        ALLOWED_DEVICES
            .iter()
            .filter(|d| {
                d.path
                    .is_none_or(|p| !extra_devices.iter().any(|e| e.path().as_os_str() == p))
            })
            .map(|d| d.rule),
    );
    rules
}

/// State of a v1 devices cgroup: default mode plus exceptions.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub(crate) struct DeviceFilter {
    /// true: allow by default, `rules` are denials; false: deny by default, `rules` are allowances.
    default_allow: bool,
    rules: BTreeMap<DevKey, Access>,
}

impl DeviceFilter {
    /// A fresh v1 cgroup: everything allowed.
    fn allow_all() -> Self {
        Self {
            default_allow: true,
            rules: BTreeMap::new(),
        }
    }

    /// Apply rules in order, as the kernel would (starting from deny-all, like runc).
    /// A failing rule's index in `rules` (spec rules come first) is reported.
    pub(crate) fn from_rules(rules: &[DeviceRule]) -> Result<Self, Error> {
        let mut f = Self::default();
        for (i, r) in rules.iter().enumerate() {
            f.apply(i, r)?;
        }
        Ok(f)
    }

    fn apply(&mut self, index: usize, r: &DeviceRule) -> Result<(), Error> {
        if r.key.typ == DevType::All {
            *self = Self {
                default_allow: r.allow,
                rules: BTreeMap::new(),
            };
            return Ok(());
        }
        if r.allow != self.default_allow {
            // Adds an exception, merging access with an identical one.
            let e = self.rules.entry(r.key).or_default();
            *e = e.union(r.access);
            return Ok(());
        }
        // Removes (part of) an exactly matching exception. The kernel silently
        // ignores holes punched into a wider wildcard exception; refuse those.
        let k = r.key;
        for wider in [
            DevKey { major: None, ..k },
            DevKey { minor: None, ..k },
            DevKey {
                major: None,
                minor: None,
                ..k
            },
        ] {
            if wider != k
                && self
                    .rules
                    .get(&wider)
                    .is_some_and(|a| a.intersects(r.access))
            {
                return Err(Error::InvalidDeviceRule {
                    index,
                    reason: "cannot remove access covered by a wider wildcard rule on cgroup v1",
                });
            }
        }
        if let Some(a) = self.rules.get_mut(&k) {
            *a = a.minus(r.access);
            if a.is_empty() {
                self.rules.remove(&k);
            }
        }
        Ok(())
    }

    /// Whether devices not matched by an exception are allowed.
    pub(crate) fn default_allow(&self) -> bool {
        self.default_allow
    }

    /// The exceptions: denials when [`Self::default_allow`], allowances otherwise.
    pub(crate) fn exceptions(&self) -> impl Iterator<Item = (&DevKey, &Access)> {
        self.rules.iter()
    }

    /// Reconstruct the state from `devices.list` text (only whitelists can be
    /// read back; `a *:* rwm` means allow-all).
    pub(crate) fn from_list(text: &str) -> Option<Self> {
        let mut f = Self::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let mut it = line.split([' ', ':']);
            let (t, ma, mi, acc) = (it.next()?, it.next()?, it.next()?, it.next()?);
            let typ = match t {
                "a" => return Some(Self::allow_all()),
                "b" => DevType::Block,
                "c" => DevType::Char,
                _ => return None,
            };
            let num = |s: &str| -> Option<Option<u32>> {
                if s == "*" {
                    Some(None)
                } else {
                    s.parse().ok().map(Some)
                }
            };
            let key = DevKey {
                major: num(ma)?,
                minor: num(mi)?,
                typ,
            };
            let e = f.rules.entry(key).or_default();
            *e = e.union(Access::parse(acc)?);
        }
        Some(f)
    }

    /// The writes that turn a cgroup in state `current` into `self`.
    pub(crate) fn transition_from(&self, current: &Self) -> Vec<DeviceRule> {
        let mut out = Vec::new();
        let empty = BTreeMap::new();
        let mut old = &current.rules;
        if current.default_allow || current.default_allow != self.default_allow {
            out.push(DeviceRule {
                allow: self.default_allow,
                key: DevKey {
                    major: None,
                    minor: None,
                    typ: DevType::All,
                },
                access: Access::ALL,
            });
            old = &empty;
        }
        for (k, a) in old {
            let dropped = a.minus(self.rules.get(k).copied().unwrap_or_default());
            if !dropped.is_empty() {
                out.push(DeviceRule {
                    allow: self.default_allow,
                    key: *k,
                    access: dropped,
                });
            }
        }
        for (k, a) in &self.rules {
            let gained = a.minus(old.get(k).copied().unwrap_or_default());
            if !gained.is_empty() {
                out.push(DeviceRule {
                    allow: !self.default_allow,
                    key: *k,
                    access: gained,
                });
            }
        }
        out
    }

    /// The v1 kernel's verdict for one access (security/device_cgroup.c,
    /// `devcgroup_legacy_check_permission`): with allow-by-default, denied if
    /// any matching exception shares an access bit (`match_exception_partial`);
    /// with deny-by-default, allowed only if one matching exception covers
    /// every requested bit (`match_exception`). The reference the eBPF
    /// program is tested against.
    #[cfg(test)]
    pub(crate) fn permits(&self, typ: DevType, major: u32, minor: u32, access: Access) -> bool {
        let matching = self.rules.iter().filter(|(k, _)| {
            (k.typ == DevType::All || k.typ == typ)
                && k.major.is_none_or(|m| m == major)
                && k.minor.is_none_or(|m| m == minor)
        });
        if self.default_allow {
            !matching.into_iter().any(|(_, a)| a.intersects(access))
        } else {
            matching
                .into_iter()
                .any(|(_, a)| access.minus(*a).is_empty())
        }
    }

    /// The writes that set up a fresh (allow-all) cgroup.
    #[cfg(test)]
    pub(crate) fn writes_for_new_cgroup(&self) -> Vec<DeviceRule> {
        self.transition_from(&Self::allow_all())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxDeviceBuilder, LinuxDeviceCgroupBuilder};

    fn spec_rule(
        allow: bool,
        t: LinuxDeviceType,
        ma: Option<i64>,
        mi: Option<i64>,
        acc: &str,
    ) -> LinuxDeviceCgroup {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .typ(t)
            .access(acc);
        if let Some(ma) = ma {
            b = b.major(ma);
        }
        if let Some(mi) = mi {
            b = b.minor(mi);
        }
        b.build().unwrap()
    }

    #[test]
    fn renders_rules() {
        let r = rule_from_spec(
            0,
            &spec_rule(true, LinuxDeviceType::C, Some(1), Some(8), "rwm"),
        )
        .unwrap();
        assert_eq!(r.to_string(), "c 1:8 rwm");
        assert_eq!(r.file(), "devices.allow");
        let r =
            rule_from_spec(0, &spec_rule(false, LinuxDeviceType::A, None, None, "rwm")).unwrap();
        assert_eq!(r.to_string(), "a *:* rwm");
        assert_eq!(r.file(), "devices.deny");
        let r = rule_from_spec(
            0,
            &spec_rule(true, LinuxDeviceType::B, Some(8), Some(-1), "mr"),
        )
        .unwrap();
        assert_eq!(r.to_string(), "b 8:* rm");
    }

    #[test]
    fn rejects_bad_rules() {
        let bad = [
            spec_rule(true, LinuxDeviceType::U, Some(1), Some(1), "r"),
            spec_rule(true, LinuxDeviceType::C, Some(1), Some(1), "rx"),
            spec_rule(true, LinuxDeviceType::C, Some(1), Some(1), ""),
            spec_rule(true, LinuxDeviceType::C, Some(-5), Some(1), "r"),
        ];
        for (i, b) in bad.iter().enumerate() {
            assert!(
                matches!(rule_from_spec(i, b), Err(Error::InvalidDeviceRule { index, .. }) if index == i)
            );
        }
    }

    fn render(rules: &[DeviceRule]) -> Vec<String> {
        rules
            .iter()
            .map(|r| format!("{} {}", r.file(), r))
            .collect()
    }

    /// The same spec as the runc 1.1.5 oracle run in the crate's root tests;
    /// the expected list is what runc left in devices.list.
    pub(crate) fn oracle_spec() -> (Vec<LinuxDeviceCgroup>, Vec<LinuxDevice>) {
        use LinuxDeviceType::{A, B, C};
        let rules = vec![
            spec_rule(false, A, None, None, "rwm"),
            spec_rule(true, C, Some(1), Some(5), "rwm"),
            spec_rule(true, C, Some(1), Some(3), "rwm"),
            spec_rule(true, C, Some(10), Some(229), "rwm"),
            spec_rule(true, C, Some(5), Some(1), "r"),
            spec_rule(true, C, Some(5), Some(1), "w"),
            spec_rule(true, B, Some(8), None, "r"),
            spec_rule(false, C, Some(10), Some(229), "w"),
        ];
        let devs = vec![
            LinuxDeviceBuilder::default()
                .path("/dev/fuse")
                .typ(C)
                .major(10)
                .minor(229)
                .build()
                .unwrap(),
            LinuxDeviceBuilder::default()
                .path("/dev/zero")
                .typ(C)
                .major(1)
                .minor(5)
                .build()
                .unwrap(),
        ];
        (rules, devs)
    }

    pub(crate) const ORACLE_LIST: &str = "b *:* m\nc *:* m\nc 1:3 rwm\nc 1:5 rwm\nc 1:7 rwm\nc 1:8 rwm\nc 1:9 rwm\nc 5:0 rwm\nc 5:1 rw\nc 5:2 rwm\nb 8:* r\nc 10:200 rwm\nc 10:229 rm\nc 136:* rwm\n";

    #[test]
    fn writes_match_runc_order() {
        let (spec, devs) = oracle_spec();
        let rules: Vec<_> = spec
            .iter()
            .enumerate()
            .map(|(i, r)| rule_from_spec(i, r).unwrap())
            .collect();
        let f = DeviceFilter::from_rules(&rules_with_defaults(rules, &devs)).unwrap();
        let writes = f.writes_for_new_cgroup();
        assert_eq!(writes[0].to_string(), "a *:* rwm");
        assert!(!writes[0].allow);
        let listed: String = writes[1..].iter().map(|r| format!("{r}\n")).collect();
        assert_eq!(listed, ORACLE_LIST);
        assert!(writes[1..].iter().all(|r| r.allow));
        // Reading that list back and re-applying writes nothing.
        let back = DeviceFilter::from_list(ORACLE_LIST).unwrap();
        assert_eq!(back, f);
        assert!(f.transition_from(&back).is_empty());
    }

    #[test]
    fn transition_is_minimal() {
        let cur = DeviceFilter::from_list("c 1:3 rwm\nc 1:5 r\n").unwrap();
        let want = DeviceFilter::from_list("c 1:5 rw\nc 5:0 m\n").unwrap();
        assert_eq!(
            render(&want.transition_from(&cur)),
            [
                "devices.deny c 1:3 rwm",
                "devices.allow c 1:5 w",
                "devices.allow c 5:0 m"
            ]
        );
        assert_eq!(
            DeviceFilter::from_list("a *:* rwm\n").unwrap(),
            DeviceFilter::allow_all()
        );
    }

    #[test]
    fn blacklist_and_hole_punching() {
        let allow_all =
            rule_from_spec(0, &spec_rule(true, LinuxDeviceType::A, None, None, "rwm")).unwrap();
        let deny_one = rule_from_spec(
            1,
            &spec_rule(false, LinuxDeviceType::C, Some(1), Some(3), "w"),
        )
        .unwrap();
        let f = DeviceFilter::from_rules(&[allow_all, deny_one]).unwrap();
        assert_eq!(
            render(&f.writes_for_new_cgroup()),
            ["devices.allow a *:* rwm", "devices.deny c 1:3 w"]
        );

        let deny_all =
            rule_from_spec(0, &spec_rule(false, LinuxDeviceType::A, None, None, "rwm")).unwrap();
        let wide = rule_from_spec(
            1,
            &spec_rule(true, LinuxDeviceType::C, Some(136), None, "rwm"),
        )
        .unwrap();
        let hole = rule_from_spec(
            2,
            &spec_rule(false, LinuxDeviceType::C, Some(136), Some(1), "r"),
        )
        .unwrap();
        assert!(matches!(
            DeviceFilter::from_rules(&[deny_all, wide, hole]),
            Err(Error::InvalidDeviceRule { index: 2, .. })
        ));
    }

    #[test]
    fn defaults_are_runcs() {
        let all: Vec<String> = rules_with_defaults(vec![], &[])
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(
            all,
            [
                "c *:* m",
                "b *:* m",
                "c 1:3 rwm",
                "c 1:8 rwm",
                "c 1:7 rwm",
                "c 5:0 rwm",
                "c 1:5 rwm",
                "c 1:9 rwm",
                "c 136:* rwm",
                "c 5:2 rwm",
                "c 10:200 rwm"
            ]
        );
    }
}
