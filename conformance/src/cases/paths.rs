//! config-linux.md "Masked Paths" and "Readonly Paths", config.md "Root" (`readonly`): one case
//! per path of runc's default lists plus paths the case puts in the rootfs.

use crate::case::Case;
use crate::mutation::Misbehaviour;
use serde_json::{json, Value};

/// A runtime that masks nothing.
fn no_masked(cfg: &mut Value) {
    cfg["linux"]["maskedPaths"] = json!([]);
}

/// A runtime that makes nothing read-only.
fn no_readonly(cfg: &mut Value) {
    cfg["linux"]["readonlyPaths"] = json!([]);
}

const S: &str = "paths";

const MASKED: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

const READONLY: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The masked/readonly/root cases.
pub fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for p in MASKED {
        v.push(
            Case::check(S, format!("masked{p}"), &["masked"], move |b| {
                b.config["linux"]["maskedPaths"] = json!([p]);
                Ok(None)
            })
            .mutate_config("no masked paths", no_masked),
        );
    }
    v.push(Case::check(S, "masked/rootfs-file", &["masked"], |b| {
        std::fs::write(b.rootfs().join("conf-secret"), "secret")?;
        b.config["linux"]["maskedPaths"] = json!(["/conf-secret"]);
        Ok(None)
    }));
    v.push(Case::check(
        S,
        "masked/rootfs-directory",
        &["masked"],
        |b| {
            std::fs::create_dir_all(b.rootfs().join("conf-secrets"))?;
            std::fs::write(b.rootfs().join("conf-secrets/key"), "secret")?;
            b.config["linux"]["maskedPaths"] = json!(["/conf-secrets"]);
            Ok(None)
        },
    ));
    v.push(
        Case::check(S, "masked/nonexistent-ignored", &["args"], |b| {
            b.config["linux"]["maskedPaths"] = json!(["/conf-no-such-path"]);
            Ok(None)
        })
        .misbehave(Misbehaviour::Refuse("create")),
    );
    for p in READONLY {
        v.push(
            Case::check(S, format!("readonly{p}"), &["readonly"], move |b| {
                b.config["linux"]["readonlyPaths"] = json!([p]);
                Ok(None)
            })
            .mutate_config("no read-only paths", no_readonly),
        );
    }
    v.push(Case::check(
        S,
        "readonly/rootfs-directory",
        &["readonly", "write"],
        |b| {
            std::fs::create_dir_all(b.rootfs().join("conf-ro"))?;
            b.config["linux"]["readonlyPaths"] = json!(["/conf-ro"]);
            b.annotate("org.hako.conformance.write:/conf-ro/new-file", "errno=30");
            Ok(None)
        },
    ));
    v.push(Case::check(S, "root/readonly", &["rootro", "write"], |b| {
        b.config["root"]["readonly"] = json!(true);
        b.annotate("org.hako.conformance.write:/conf-new-file", "errno=30");
        Ok(None)
    }));
    v.push(
        Case::check(S, "root/writable", &["rootro", "write"], |b| {
            b.config["root"]["readonly"] = json!(false);
            b.annotate("org.hako.conformance.write:/conf-new-file", "ok");
            Ok(None)
        })
        .mutate_config("root.readonly true", |c| {
            c["root"]["readonly"] = json!(true)
        }),
    );
    v
}
