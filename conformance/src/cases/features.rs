//! The remaining process and kernel features: config.md "Hostname"/"Domainname",
//! config-linux.md "Personality", "Seccomp", "Offset for Time Namespace", config.md
//! "Scheduler", "IO Priority" and the LSM labels. Features a runtime does not support yet are
//! still written per the spec: refusing them fails the case, honestly.

use crate::case::{Case, Outcome};
use crate::runtime::Kind;
use serde_json::json;

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
    for domain in ["LINUX", "LINUX32"] {
        v.push(
            Case::check("personality", domain, &["personality"], move |b| {
                b.config["linux"]["personality"] = json!({"domain": domain});
                Ok(None)
            })
            .note(Kind::Hako, "hako refuses linux.personality for now")
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
                if name.starts_with("SCHED_RR") && std::path::Path::new("/sys/fs/cgroup/cpu/cpu.rt_runtime_us").exists() {
                    return Ok(Outcome::Skip(
                        "CONFIG_RT_GROUP_SCHED: a new cgroup has no real-time budget, so real-time policies fail".into(),
                    ));
                }
                let mut b = ctx.bundle()?;
                b.config["process"]["scheduler"] = sched.clone();
                b.check(&["sched"])
            })
            .note(Kind::Hako, "hako refuses process.scheduler for now")
            .note(Kind::Runc, "runc 1.1 ignores process.scheduler (added in runc 1.2)")
            .note(Kind::Crun, "crun 1.8 ignores process.scheduler"),
        );
    }
    for (name, prio) in [
        ("BE-4", json!({"class": "IOPRIO_CLASS_BE", "priority": 4})),
        ("IDLE", json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0})),
        ("RT-1", json!({"class": "IOPRIO_CLASS_RT", "priority": 1})),
    ] {
        v.push(
            Case::check("ioPriority", name, &["ioprio"], move |b| {
                b.config["process"]["ioPriority"] = prio.clone();
                Ok(None)
            })
            .note(Kind::Hako, "hako refuses process.ioPriority for now")
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
                    return Ok(Outcome::Skip("the kernel has no time namespace".into()));
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
            seccomp("SCMP_ACT_ALLOW", json!([])),
            vec![("0", "ok")],
        ),
    ];
    for (name, profile, expectations) in seccomp_cases {
        v.push(
            Case::check("seccomp", name, &["seccomp"], move |b| {
                b.config["linux"]["seccomp"] = profile.clone();
                for (arg, want) in &expectations {
                    b.annotate(&format!("org.hako.conformance.getcpu:{arg}"), want);
                }
                Ok(None)
            })
            .note(Kind::Hako, "hako refuses linux.seccomp for now"),
        );
    }
    v.push(Case::reject("seccomp", "unknown-action-fails", |b| {
        b.config["linux"]["seccomp"] =
            json!({"defaultAction": "SCMP_ACT_CONF_NOPE", "syscalls": []});
        Ok(None)
    }));
    v.push(Case::new("lsm", "apparmor-profile", |ctx| {
        if !ctx.host.apparmor {
            return Ok(Outcome::Skip("AppArmor is not enabled on this host".into()));
        }
        let mut b = ctx.bundle()?;
        b.config["process"]["apparmorProfile"] = json!("unconfined");
        b.check(&["apparmor"])
    }));
    v.push(Case::new("lsm", "selinux-label", |_ctx| {
        if !std::path::Path::new("/sys/fs/selinux/enforce").exists() {
            return Ok(Outcome::Skip("SELinux is not enabled on this host".into()));
        }
        Ok(Outcome::Skip(
            "SELinux label checks are not written yet (no SELinux host to verify them)".into(),
        ))
    }));
    v
}
