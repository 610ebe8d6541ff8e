//! `linux.uidMappings` / `linux.gidMappings`, written by the parent into
//! `/proc/<pid>/{uid_map,gid_map}` of the child (user_namespaces(7)).
//!
//! The kernel accepts at most 340 lines per map (Linux 4.15+), no
//! overlapping ranges on either side, and a single write. `setgroups` must
//! be set to "deny" before gid_map is written by a process without
//! CAP_SETGID in the parent user namespace (user_namespaces(7), "The
//! /proc/[pid]/setgroups file", CVE-2014-8989); like runc we only write it
//! when required, so privileged containers keep setgroups(2).

use std::io::Write;
use std::path::PathBuf;

use oci_spec::runtime::{Linux, LinuxIdMapping, LinuxNamespaceType};

use crate::{newidmap, Error};

/// Kernel limit on lines in a uid_map/gid_map file.
const MAX_LINES: usize = 340;

/// One validated mapping line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Line {
    pub(crate) inside: u32,
    pub(crate) outside: u32,
    pub(crate) size: u32,
}

/// Validated uid and gid mappings for a new user namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdMappings {
    uid: Vec<Line>,
    gid: Vec<Line>,
}

fn validate(kind: &'static str, maps: &[LinuxIdMapping]) -> Result<Vec<Line>, Error> {
    check_lines(maps).map_err(|reason| Error::InvalidMapping { kind, reason })
}

/// Checks a mapping list against the kernel's rules; `Err` holds the reason.
pub(crate) fn check_lines(maps: &[LinuxIdMapping]) -> Result<Vec<Line>, String> {
    if maps.len() > MAX_LINES {
        return Err(format!(
            "{} lines, the kernel allows {MAX_LINES}",
            maps.len()
        ));
    }
    let lines: Vec<Line> = maps
        .iter()
        .map(|m| Line {
            inside: m.container_id(),
            outside: m.host_id(),
            size: m.size(),
        })
        .collect();
    for l in &lines {
        if l.size == 0 {
            return Err(format!("zero size at container id {}", l.inside));
        }
        for start in [l.inside, l.outside] {
            if u64::from(start) + u64::from(l.size) > u64::from(u32::MAX) {
                return Err(format!("range {start}+{} overflows", l.size));
            }
        }
    }
    for (i, a) in lines.iter().enumerate() {
        for b in &lines[i + 1..] {
            let overlap = |x: u32, y: u32, n: u32, m: u32| {
                u64::from(x) < u64::from(y) + u64::from(m)
                    && u64::from(y) < u64::from(x) + u64::from(n)
            };
            if overlap(a.inside, b.inside, a.size, b.size) {
                return Err(format!(
                    "container ranges {}+{} and {}+{} overlap",
                    a.inside, a.size, b.inside, b.size
                ));
            }
            if overlap(a.outside, b.outside, a.size, b.size) {
                return Err(format!(
                    "host ranges {}+{} and {}+{} overlap",
                    a.outside, a.size, b.outside, b.size
                ));
            }
        }
    }
    Ok(lines)
}

fn format(lines: &[Line]) -> String {
    lines
        .iter()
        .map(|l| format!("{} {} {}\n", l.inside, l.outside, l.size))
        .collect()
}

const CAP_SETGID: u32 = 6;
const CAP_SETUID: u32 = 7;

/// True if the calling process has capability `cap` in its effective set.
fn have_cap(cap: u32) -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << cap) != 0)
}

fn write_file(path: PathBuf, content: &str) -> Result<(), Error> {
    let res = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| f.write_all(content.as_bytes()));
    res.map_err(|source| Error::WriteIdMap { path, source })
}

impl IdMappings {
    /// Validates the mappings against the namespaces.
    ///
    /// * mappings without a user namespace → error;
    /// * a new user namespace without uid or gid mappings → error (runc);
    /// * a joined user namespace → `None`: its maps already exist and the
    ///   spec's mappings only describe them.
    pub fn from_spec(linux: Option<&Linux>) -> Result<Option<Self>, Error> {
        let Some(linux) = linux else {
            return Ok(None);
        };
        let user = linux
            .namespaces()
            .iter()
            .flatten()
            .find(|n| n.typ() == LinuxNamespaceType::User);
        let uid = linux.uid_mappings().as_deref().unwrap_or_default();
        let gid = linux.gid_mappings().as_deref().unwrap_or_default();
        let Some(user) = user else {
            if !uid.is_empty() {
                return Err(Error::MappingsWithoutUserNs { kind: "uid" });
            }
            if !gid.is_empty() {
                return Err(Error::MappingsWithoutUserNs { kind: "gid" });
            }
            return Ok(None);
        };
        let uid = validate("uid", uid)?;
        let gid = validate("gid", gid)?;
        if user
            .path()
            .as_ref()
            .is_some_and(|p| !p.as_os_str().is_empty())
        {
            return Ok(None);
        }
        if uid.is_empty() {
            return Err(Error::UserNsWithoutMappings { kind: "uid" });
        }
        if gid.is_empty() {
            return Err(Error::UserNsWithoutMappings { kind: "gid" });
        }
        Ok(Some(IdMappings { uid, gid }))
    }

    /// Mappings from already checked lines (see [`check_lines`]).
    pub(crate) fn from_lines(uid: Vec<Line>, gid: Vec<Line>) -> Self {
        IdMappings { uid, gid }
    }

    /// The uid_map content.
    pub fn uid_map(&self) -> String {
        format(&self.uid)
    }

    /// The gid_map content.
    pub fn gid_map(&self) -> String {
        format(&self.gid)
    }

    /// Maps container uid 0 to the host, if mapped (for chown of state).
    pub fn host_root_uid(&self) -> Option<u32> {
        self.uid.iter().find(|l| l.inside == 0).map(|l| l.outside)
    }

    /// In the parent: writes `/proc/<pid>/uid_map`, then `setgroups`
    /// ("deny", only when we lack CAP_SETGID), then `gid_map`. Without
    /// CAP_SETUID (CAP_SETGID), a map other than the caller's own single id
    /// goes through newuidmap (newgidmap) instead, after checking
    /// /etc/subuid (/etc/subgid) grants it (see `newidmap`); newgidmap
    /// leaves setgroups(2) allowed, as with runc.
    pub fn write(&self, pid: i32) -> Result<(), Error> {
        let base = PathBuf::from(format!("/proc/{pid}"));
        let euid = nix::unistd::geteuid().as_raw();
        let egid = nix::unistd::getegid().as_raw();
        if have_cap(CAP_SETUID) || newidmap::writable_directly(&self.uid, euid) {
            write_file(base.join("uid_map"), &self.uid_map())?;
        } else {
            self.through_helper("uid", pid, euid)?;
        }
        if have_cap(CAP_SETGID) {
            write_file(base.join("gid_map"), &self.gid_map())
        } else if newidmap::writable_directly(&self.gid, egid) {
            write_file(base.join("setgroups"), "deny")?;
            write_file(base.join("gid_map"), &self.gid_map())
        } else {
            self.through_helper("gid", pid, euid)
        }
    }

    /// newuidmap/newgidmap for the `kind` map, once the subordinate-id file grants it.
    fn through_helper(&self, kind: &'static str, pid: i32, euid: u32) -> Result<(), Error> {
        let (lines, own) = if kind == "uid" {
            (&self.uid, euid)
        } else {
            (&self.gid, nix::unistd::getegid().as_raw())
        };
        let file = newidmap::file(kind);
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let name = newidmap::user_name(euid);
        let caller = newidmap::Caller {
            name: &name,
            uid: euid,
        };
        newidmap::check_granted(kind, lines, own, &caller, &text)?;
        newidmap::run(kind, pid, lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxBuilder, LinuxIdMappingBuilder, LinuxNamespaceBuilder};

    fn m(c: u32, h: u32, s: u32) -> LinuxIdMapping {
        LinuxIdMappingBuilder::default()
            .container_id(c)
            .host_id(h)
            .size(s)
            .build()
            .unwrap()
    }

    fn linux(
        user: Option<Option<&str>>,
        uid: Vec<LinuxIdMapping>,
        gid: Vec<LinuxIdMapping>,
    ) -> Linux {
        let mut ns = vec![];
        if let Some(p) = user {
            let b = LinuxNamespaceBuilder::default().typ(LinuxNamespaceType::User);
            ns.push(match p {
                Some(p) => b.path(p).build().unwrap(),
                None => b.build().unwrap(),
            });
        }
        LinuxBuilder::default()
            .namespaces(ns)
            .uid_mappings(uid)
            .gid_mappings(gid)
            .build()
            .unwrap()
    }

    #[test]
    fn valid_maps_format() {
        let l = linux(
            Some(None),
            vec![m(0, 100000, 65536)],
            vec![m(0, 100000, 1), m(1, 200000, 10)],
        );
        let maps = IdMappings::from_spec(Some(&l)).unwrap().unwrap();
        assert_eq!(maps.uid_map(), "0 100000 65536\n");
        assert_eq!(maps.gid_map(), "0 100000 1\n1 200000 10\n");
        assert_eq!(maps.host_root_uid(), Some(100000));
    }

    #[test]
    fn maps_without_userns() {
        let l = linux(None, vec![m(0, 1000, 1)], vec![]);
        assert!(matches!(
            IdMappings::from_spec(Some(&l)),
            Err(Error::MappingsWithoutUserNs { kind: "uid" })
        ));
        let l = linux(None, vec![], vec![]);
        assert_eq!(IdMappings::from_spec(Some(&l)).unwrap(), None);
    }

    #[test]
    fn userns_without_maps() {
        let l = linux(Some(None), vec![m(0, 1000, 1)], vec![]);
        assert!(matches!(
            IdMappings::from_spec(Some(&l)),
            Err(Error::UserNsWithoutMappings { kind: "gid" })
        ));
        let l = linux(Some(Some("/proc/1/ns/user")), vec![], vec![]);
        assert_eq!(IdMappings::from_spec(Some(&l)).unwrap(), None);
    }

    #[test]
    fn invalid_maps() {
        for (uid, what) in [
            (vec![m(0, 1000, 0)], "zero"),
            (vec![m(0, u32::MAX - 1, 10)], "overflow"),
            (vec![m(0, 1000, 10), m(5, 5000, 10)], "container overlap"),
            (vec![m(0, 1000, 10), m(100, 1005, 10)], "host overlap"),
            ((0..341).map(|i| m(i, 1000 + i, 1)).collect(), "too many"),
        ] {
            let l = linux(Some(None), uid, vec![m(0, 0, 1)]);
            assert!(
                matches!(
                    IdMappings::from_spec(Some(&l)),
                    Err(Error::InvalidMapping { kind: "uid", .. })
                ),
                "{what}"
            );
        }
        let l = linux(
            Some(None),
            (0..340).map(|i| m(i, 1000 + i, 1)).collect(),
            vec![m(0, 0, 1)],
        );
        assert!(IdMappings::from_spec(Some(&l)).is_ok());
    }
}
