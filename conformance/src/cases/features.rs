//! The remaining process and kernel features: config.md "Hostname"/"Domainname",
//! config-linux.md "Personality", "Seccomp", "Offset for Time Namespace", config.md
//! "Scheduler", "IO Priority" and the LSM labels. Features a runtime does not support yet are
//! still written per the spec: refusing them fails the case, honestly.

use crate::bundle::Bundle;
use crate::case::{rejected, skip, Case, Outcome};
use crate::runtime::Kind;
use crate::sys;
use serde_json::json;
use std::path::Path;

/// The feature cases.
pub fn cases() -> Vec<Case> {
    let mut v = vec![
        Case::check("hostname", "set", &["hostname"], |b| {
            b.config["hostname"] = json!("conf-host");
            Ok(None)
        }),
        Case::check("hostname", "long-64", &["hostname"], |b| {
            b.config["hostname"] = json!("h".repeat(64));
            Ok(None)
        }),
        Case::check("hostname", "domainname", &["domainname"], |b| {
            b.config["domainname"] = json!("conf.example");
            Ok(None)
        })
        .note(
            Kind::Runc,
            "runc 1.1 ignores domainname (added in runc 1.2)",
        ),
        Case::check("hostname", "both", &["hostname", "domainname"], |b| {
            b.config["hostname"] = json!("conf-host");
            b.config["domainname"] = json!("conf.example");
            Ok(None)
        })
        .note(
            Kind::Runc,
            "runc 1.1 ignores domainname (added in runc 1.2)",
        ),
    ];
    // Each domain is set while the runtime itself runs with the other one, so a runtime that
    // ignores the field leaves the inherited persona (personality(2) survives fork and execve)
    // and fails.
    for (domain, other) in [("LINUX", sys::PER_LINUX32), ("LINUX32", sys::PER_LINUX)] {
        v.push(
            Case::new("personality", domain, move |ctx| {
                let mut b = ctx.bundle()?;
                b.config["linux"]["personality"] = json!({"domain": domain});
                let _persona = sys::Persona::set(other)?;
                b.check(&["personality"])
            })
            .note(
                Kind::Runc,
                "runc 1.1 ignores linux.personality (added in runc 1.2)",
            ),
        );
    }
    let scheds = [
        (
            "SCHED_BATCH-nice-5",
            json!({"policy": "SCHED_BATCH", "nice": 5}),
        ),
        ("SCHED_IDLE", json!({"policy": "SCHED_IDLE"})),
        (
            "SCHED_OTHER-nice-10",
            json!({"policy": "SCHED_OTHER", "nice": 10}),
        ),
        (
            "SCHED_RR-priority-5",
            json!({"policy": "SCHED_RR", "priority": 5}),
        ),
    ];
    for (name, sched) in scheds {
        v.push(
            Case::new("scheduler", name, move |ctx| {
                let mut b = ctx.bundle()?;
                b.config["process"]["scheduler"] = sched.clone();
                if name.starts_with("SCHED_RR") {
                    if let Some(skipped) = realtime_budget(&mut b) {
                        return Ok(skipped);
                    }
                }
                b.check(&["sched"])
            })
            .note(
                Kind::Runc,
                "runc 1.1 ignores process.scheduler (added in runc 1.2)",
            )
            .note(Kind::Crun, "crun 1.8 ignores process.scheduler"),
        );
    }
    for (name, prio) in [
        // Not BE-4: that is what ioprio_get(2) reports for a process that never set one
        // (class BE, priority from nice 0), so a runtime ignoring the field would pass.
        ("BE-2", json!({"class": "IOPRIO_CLASS_BE", "priority": 2})),
        ("IDLE", json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0})),
        ("RT-1", json!({"class": "IOPRIO_CLASS_RT", "priority": 1})),
    ] {
        v.push(
            Case::check("ioPriority", name, &["ioprio"], move |b| {
                b.config["process"]["ioPriority"] = prio.clone();
                Ok(None)
            })
            .note(
                Kind::Runc,
                "runc 1.1 ignores process.ioPriority (added in runc 1.2)",
            )
            .note(Kind::Crun, "crun 1.8 ignores process.ioPriority"),
        );
    }
    for (name, offsets) in [
        (
            "monotonic",
            json!({"monotonic": {"secs": 86400, "nanosecs": 0}}),
        ),
        (
            "boottime",
            json!({"boottime": {"secs": 7200, "nanosecs": 500}}),
        ),
    ] {
        v.push(
            Case::new("timeOffsets", name, move |ctx| {
                if !ctx.host.ns.contains_key("time") {
                    return Ok(skip(
                        "/proc/self/ns/time",
                        "absent: the kernel has no time namespace",
                    ));
                }
                let mut b = ctx.bundle()?;
                if let Some(a) = b.config["linux"]["namespaces"].as_array_mut() {
                    a.push(json!({"type": "time"}));
                }
                b.config["linux"]["timeOffsets"] = offsets.clone();
                b.check(&["timens"])
            })
            .note(Kind::Runc, "runc 1.1 has no time namespace support")
            .note(
                Kind::Crun,
                "crun 1.8 fails to create a time namespace here (sync socket reset)",
            ),
        );
    }
    let seccomp = |default: &str, syscalls: serde_json::Value| json!({"defaultAction": default, "architectures": ["SCMP_ARCH_X86_64"], "syscalls": syscalls});
    let seccomp_cases = [
        (
            "errno-rule",
            seccomp(
                "SCMP_ACT_ALLOW",
                json!([{"names": ["getcpu"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42}]),
            ),
            vec![("0", "errno=42")],
        ),
        (
            "errno-default-eperm",
            seccomp(
                "SCMP_ACT_ALLOW",
                json!([{"names": ["getcpu"], "action": "SCMP_ACT_ERRNO"}]),
            ),
            vec![("0", "errno=1")],
        ),
        (
            "argument-filter",
            seccomp(
                "SCMP_ACT_ALLOW",
                json!([{"names": ["getcpu"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42, "args": [{"index": 2, "value": 7, "op": "SCMP_CMP_EQ"}]}]),
            ),
            vec![("7", "errno=42"), ("0", "ok")],
        ),
        (
            "log-action-allows",
            seccomp(
                "SCMP_ACT_ALLOW",
                json!([{"names": ["getcpu"], "action": "SCMP_ACT_LOG"}]),
            ),
            vec![("0", "ok")],
        ),
        (
            "default-errno",
            json!({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"names": ALLOWED_SYSCALLS.to_vec(), "action": "SCMP_ACT_ALLOW"}]}),
            vec![("0", "errno=1")],
        ),
    ];
    for (name, profile, expectations) in seccomp_cases {
        v.push(Case::check("seccomp", name, &["seccomp"], move |b| {
            b.config["linux"]["seccomp"] = profile.clone();
            for (arg, want) in &expectations {
                b.annotate(&format!("org.hako.conformance.getcpu:{arg}"), want);
            }
            Ok(None)
        }));
    }
    v.push(Case::reject("seccomp", "unknown-action-fails", |b| {
        b.config["linux"]["seccomp"] =
            json!({"defaultAction": "SCMP_ACT_CONF_NOPE", "syscalls": []});
        Ok(None)
    }));
    v.push(Case::new("lsm", "apparmor-profile", |ctx| {
        if !ctx.host.apparmor {
            return Ok(skip(
                "/sys/module/apparmor/parameters/enabled",
                "not Y: AppArmor is not enabled",
            ));
        }
        let mut b = ctx.bundle()?;
        b.config["process"]["apparmorProfile"] = json!("unconfined");
        b.check(&["apparmor"])
    }));
    v.push(Case::new("lsm", "selinux-label", |ctx| {
        let Some(label) = selinux_label() else {
            return Ok(skip(SELINUX_PROBE, "absent: SELinux is not enabled"));
        };
        let mut b = ctx.bundle()?;
        b.config["process"]["selinuxLabel"] = json!(label);
        b.check(&["selinux"])
    }));
    // runc refuses a label it cannot apply ("selinux label is specified in config, but
    // selinux is disabled or not supported"): a silently unconfined process is worse.
    v.push(Case::new(
        "lsm",
        "selinux-label-without-selinux-fails",
        |ctx| {
            if Path::new(SELINUX_PROBE).exists() {
                return Ok(skip(SELINUX_PROBE, "present: SELinux is enabled here"));
            }
            let mut b = ctx.bundle()?;
            b.args(&["/bin/true"]);
            b.config["process"]["selinuxLabel"] = json!("system_u:system_r:container_t:s0:c1,c2");
            rejected(&b)
        },
    ));
    v
}

const SELINUX_PROBE: &str = "/sys/fs/selinux/enforce";

/// The harness's own SELinux context where SELinux is enabled: a label the container can get.
fn selinux_label() -> Option<String> {
    if !Path::new(SELINUX_PROBE).exists() {
        return None;
    }
    let l = std::fs::read_to_string("/proc/self/attr/current").ok()?;
    Some(l.trim_end_matches('\0').trim().to_string()).filter(|l| !l.is_empty())
}

/// Gives the container's cgroup a real-time budget: with CONFIG_RT_GROUP_SCHED (v1
/// `cpu.rt_runtime_us`) a new cgroup has none and SCHED_RR fails with EPERM
/// (sched(7), Documentation/scheduler/sched-rt-group.rst), so the case asks for
/// `linux.resources.cpu.realtimeRuntime`/`realtimePeriod`. Skips only where the probe shows no
/// budget to give: the kernel-wide `sched_rt_runtime_us` or the root group's is too small.
fn realtime_budget(b: &mut Bundle) -> Option<Outcome> {
    const RUNTIME: i64 = 10_000;
    let global = "/proc/sys/kernel/sched_rt_runtime_us";
    let read = |p: &str| std::fs::read_to_string(p).ok()?.trim().parse::<i64>().ok();
    match read(global) {
        Some(v) if (0..RUNTIME).contains(&v) => {
            return Some(skip(global, format!("{v}: no real-time budget to give")));
        }
        None => return Some(skip(global, "unreadable")),
        _ => {}
    }
    let group = "/sys/fs/cgroup/cpu/cpu.rt_runtime_us";
    match read(group) {
        None => None,
        Some(v) if v < RUNTIME => Some(skip(
            group,
            format!("{v}: the root group has no budget to give"),
        )),
        Some(_) => {
            b.config["linux"]["resources"]["cpu"] =
                json!({"realtimeRuntime": RUNTIME, "realtimePeriod": 1_000_000});
            None
        }
    }
}

/// What the checker (a dynamically linked Rust program) and a runtime's last steps before
/// execve need, for a profile whose default action is ERRNO. `getcpu` is not here: the
/// checker expects the default action on it.
const ALLOWED_SYSCALLS: [&str; 96] = [
    "access",
    "arch_prctl",
    "brk",
    "capget",
    "capset",
    "chdir",
    "clock_getres",
    "clock_gettime",
    "clock_nanosleep",
    "clone",
    "clone3",
    "close",
    "close_range",
    "dup",
    "dup2",
    "dup3",
    "epoll_create1",
    "epoll_ctl",
    "epoll_pwait",
    "epoll_wait",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fchdir",
    "fcntl",
    "fstat",
    "fstatfs",
    "futex",
    "getcwd",
    "getdents64",
    "getegid",
    "geteuid",
    "getgid",
    "getgroups",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresuid",
    "getrlimit",
    "gettid",
    "getuid",
    "ioctl",
    "ioprio_get",
    "lseek",
    "lstat",
    "madvise",
    "membarrier",
    "mmap",
    "mprotect",
    "mremap",
    "munmap",
    "nanosleep",
    "newfstatat",
    "open",
    "openat",
    "openat2",
    "pipe",
    "pipe2",
    "poll",
    "ppoll",
    "prctl",
    "pread64",
    "prlimit64",
    "read",
    "readlink",
    "readlinkat",
    "rseq",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "sched_getaffinity",
    "sched_getparam",
    "sched_getscheduler",
    "sched_yield",
    "set_robust_list",
    "set_tid_address",
    "setgid",
    "setgroups",
    "setresgid",
    "setresuid",
    "setuid",
    "sigaltstack",
    "stat",
    "statfs",
    "statx",
    "sysinfo",
    "uname",
    "wait4",
    "write",
    "writev",
];
