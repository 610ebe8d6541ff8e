//! Checks of what the kernel keeps per process or per namespace (config.md "Hostname",
//! config-linux.md "Namespaces", "User namespace mappings", "Sysctl", "Personality", "Seccomp",
//! "Offset for Time Namespace"; config.md "Scheduler", "IO Priority").

use super::{status_field, Checker};
use crate::sys;
use std::os::unix::fs::MetadataExt;

/// The uts namespace's node name is `hostname`.
pub fn hostname(c: &mut Checker) {
    let want = c.config["hostname"].as_str().map(String::from);
    let got = nix::sys::utsname::uname()
        .ok()
        .map(|u| u.nodename().to_string_lossy().into_owned());
    c.eq("hostname", want, got);
}

/// The uts namespace's NIS domain name is `domainname`.
pub fn domainname(c: &mut Checker) {
    let want = c.config["domainname"].as_str().map(String::from);
    let got = nix::sys::utsname::uname()
        .ok()
        .map(|u| u.domainname().to_string_lossy().into_owned());
    c.eq("domainname", want, got);
}

/// `(config type, /proc/self/ns name)` of every namespace type.
pub const NAMESPACES: [(&str, &str); 8] = [
    ("cgroup", "cgroup"),
    ("ipc", "ipc"),
    ("mount", "mnt"),
    ("network", "net"),
    ("pid", "pid"),
    ("time", "time"),
    ("user", "user"),
    ("uts", "uts"),
];

/// Each namespace type: listed without a path ⇒ a new one (inode differs from the host's);
/// listed with a path ⇒ that one (inode the harness recorded); not listed ⇒ the runtime's own
/// (the host's inode).
pub fn namespaces(c: &mut Checker) {
    let list = c.config["linux"]["namespaces"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (ty, file) in NAMESPACES {
        let name = format!("namespaces.{ty}");
        let host = c.host["ns"][file].as_u64();
        let Some(host) = host else {
            c.skip(&name, "the host has no such namespace");
            continue;
        };
        let got = match std::fs::metadata(format!("/proc/self/ns/{file}")) {
            Ok(m) => m.ino(),
            Err(e) => {
                c.fail(&name, format!("stat /proc/self/ns/{file}: {e}"));
                continue;
            }
        };
        match list.iter().find(|n| n["type"] == ty) {
            None => c.eq(
                &name,
                format!("host inode {host}"),
                format!("host inode {got}"),
            ),
            Some(n) if n["path"].is_string() => {
                let want = c.host["joined"][ty].as_u64().unwrap_or(0);
                c.eq(
                    &name,
                    format!("joined inode {want}"),
                    format!("joined inode {got}"),
                );
            }
            Some(_) => {
                if got != host {
                    c.ok(&name);
                } else {
                    c.fail(&name, format!("still the host's namespace (inode {host})"));
                }
            }
        }
    }
}

fn mapping_lines(v: &serde_json::Value) -> Vec<(u64, u64, u64)> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|m| {
                    (
                        m["containerID"].as_u64().unwrap_or(0),
                        m["hostID"].as_u64().unwrap_or(0),
                        m["size"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn read_map(path: &str) -> Vec<(u64, u64, u64)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let v: Vec<u64> = l
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            (v.len() == 3).then(|| (v[0], v[1], v[2]))
        })
        .collect()
}

/// `linux.uidMappings`/`gidMappings` are the user namespace's /proc/self/{uid,gid}_map.
pub fn id_mappings(c: &mut Checker) {
    for (key, file) in [("uidMappings", "uid_map"), ("gidMappings", "gid_map")] {
        let mut want = mapping_lines(&c.config["linux"][key]);
        let mut got = read_map(&format!("/proc/self/{file}"));
        want.sort_unstable();
        got.sort_unstable();
        c.eq(&format!("linux.{key}"), want, got);
    }
}

/// Every `linux.sysctl` entry reads back from /proc/sys (whitespace-insensitive: the kernel
/// prints tabs between the fields of multi-value entries).
pub fn sysctl(c: &mut Checker) {
    let map = c.config["linux"]["sysctl"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (k, v) in map {
        let path = format!("/proc/sys/{}", k.replace('.', "/"));
        let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        let want = norm(v.as_str().unwrap_or(""));
        let got = std::fs::read_to_string(&path)
            .map(|s| norm(&s))
            .map_err(|e| e.to_string());
        c.eq(&format!("sysctl.{k}"), Ok(want), got);
    }
}

/// `linux.personality.domain`, from /proc/self/personality (personality(2)).
pub fn personality(c: &mut Checker) {
    let want = match c.config["linux"]["personality"]["domain"].as_str() {
        Some("LINUX") => 0,
        Some("LINUX32") => 8,
        other => {
            c.fail("personality", format!("unknown domain {other:?}"));
            return;
        }
    };
    let got = std::fs::read_to_string("/proc/self/personality")
        .ok()
        .and_then(|s| u64::from_str_radix(s.trim(), 16).ok())
        .map(|p| p & 0xff);
    c.eq("personality.domain", Some(want), got);
}

/// `process.scheduler`: policy, nice and static priority (sched(7)).
pub fn scheduler(c: &mut Checker) {
    let s = c.config["process"]["scheduler"].clone();
    let policy = match s["policy"].as_str() {
        Some("SCHED_OTHER") => 0,
        Some("SCHED_FIFO") => 1,
        Some("SCHED_RR") => 2,
        Some("SCHED_BATCH") => 3,
        Some("SCHED_IDLE") => 5,
        Some("SCHED_DEADLINE") => 6,
        other => {
            c.fail("scheduler.policy", format!("unknown policy {other:?}"));
            return;
        }
    };
    match sys::scheduler() {
        Ok((p, prio)) => {
            c.eq("scheduler.policy", policy, p);
            if let Some(want) = s["priority"].as_i64() {
                c.eq("scheduler.priority", want, i64::from(prio));
            }
        }
        Err(e) => c.fail("scheduler.policy", e.to_string()),
    }
    if let Some(want) = s["nice"].as_i64() {
        c.eq(
            "scheduler.nice",
            Ok(want),
            sys::nice().map(i64::from).map_err(|e| e.to_string()),
        );
    }
}

/// `process.ioPriority`, from ioprio_get(2): class << 13 | priority.
pub fn io_priority(c: &mut Checker) {
    let p = c.config["process"]["ioPriority"].clone();
    let class = match p["class"].as_str() {
        Some("IOPRIO_CLASS_RT") => 1,
        Some("IOPRIO_CLASS_BE") => 2,
        Some("IOPRIO_CLASS_IDLE") => 3,
        other => {
            c.fail("ioPriority", format!("unknown class {other:?}"));
            return;
        }
    };
    let want = (class << 13) | p["priority"].as_i64().unwrap_or(0);
    c.eq(
        "ioPriority",
        Ok(want),
        sys::ioprio_get().map_err(|e| e.to_string()),
    );
}

/// `linux.timeOffsets`, from /proc/self/timens_offsets, and the monotonic clock really is
/// ahead of the host's by at least the offset.
pub fn time_offsets(c: &mut Checker) {
    let text = std::fs::read_to_string("/proc/self/timens_offsets").unwrap_or_default();
    let offsets = c.config["linux"]["timeOffsets"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (clock, v) in offsets {
        let want = (
            v["secs"].as_i64().unwrap_or(0),
            v["nanosecs"].as_i64().unwrap_or(0),
        );
        let got = text.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 3 && f[0] == clock).then(|| {
                (
                    f[1].parse::<i64>().unwrap_or(0),
                    f[2].parse::<i64>().unwrap_or(0),
                )
            })
        });
        c.eq(&format!("timeOffsets.{clock}"), Some(want), got);
        if clock == "monotonic" {
            let host = c.host["monotonic"].as_i64().unwrap_or(0);
            let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
                .map(|t| t.tv_sec())
                .unwrap_or(0);
            if now >= host + want.0 {
                c.ok("timeOffsets.monotonic-clock");
            } else {
                c.fail(
                    "timeOffsets.monotonic-clock",
                    format!("monotonic {now}s, host was {host}s, offset {}s", want.0),
                );
            }
        }
    }
}

/// `linux.seccomp`: a filter is installed (`Seccomp: 2`) and, for annotations
/// `…getcpu:ARG` = `ok` | `errno=N`, the raw getcpu system call with third argument ARG gives
/// that.
pub fn seccomp(c: &mut Checker) {
    c.eq(
        "seccomp.mode",
        Some("2".to_string()),
        status_field("Seccomp"),
    );
    for (arg, want) in c.expectations("getcpu") {
        let got = match sys::raw_getcpu(arg.parse().unwrap_or(0)) {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("errno={e}"),
        };
        c.eq(&format!("seccomp.getcpu({arg})"), want, got);
    }
}

/// `process.apparmorProfile`: the confinement /proc/self/attr/current shows.
pub fn apparmor(c: &mut Checker) {
    let want = c.config["process"]["apparmorProfile"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let got = std::fs::read_to_string("/proc/self/attr/apparmor/current")
        .or_else(|_| std::fs::read_to_string("/proc/self/attr/current"))
        .unwrap_or_default();
    let got = got.trim().trim_end_matches(" (enforce)").to_string();
    c.eq("apparmorProfile", want, got);
}

/// `process.selinuxLabel`: the context /proc/self/attr/current shows.
pub fn selinux(c: &mut Checker) {
    let want = c.config["process"]["selinuxLabel"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let got = std::fs::read_to_string("/proc/self/attr/current").unwrap_or_default();
    c.eq(
        "selinuxLabel",
        want,
        got.trim_end_matches('\0').trim().to_string(),
    );
}
