//! config.md "Mounts": filesystem types, one case per mount option, bind mounts of directories
//! and files (absolute and bundle-relative sources), nested and ordered destinations.

use crate::bundle::Bundle;
use crate::case::Case;
use crate::mutation::Mutation;
use crate::runtime::Kind;
use serde_json::{json, Value};

const S: &str = "mounts";

fn push(b: &mut Bundle, m: Value) {
    if let Some(a) = b.config["mounts"].as_array_mut() {
        a.push(m);
    }
}

/// A host directory in the bundle with a marker file, for bind mounts.
fn host_dir(b: &Bundle) -> anyhow::Result<String> {
    let d = b.dir.join("hostdir");
    std::fs::create_dir_all(&d)?;
    std::fs::write(d.join("marker"), "marker-content")?;
    Ok(d.to_string_lossy().into_owned())
}

/// A runtime that loses the last option of the case's mount.
fn drop_last_option(cfg: &mut Value) {
    if let Some(a) = cfg["mounts"].as_array_mut() {
        for m in a.iter_mut().filter(|m| m["destination"] == "/conf-mnt") {
            if let Some(o) = m["options"].as_array_mut() {
                o.pop();
            }
        }
    }
}

/// The mount cases.
pub fn cases() -> Vec<Case> {
    let mut v = vec![
        Case::check(S, "base-set", &["mounts"], |_| Ok(None)).mutate_config(
            "drop the /dev/mqueue mount",
            |cfg| {
                if let Some(a) = cfg["mounts"].as_array_mut() {
                    a.retain(|m| m["destination"] != "/dev/mqueue");
                }
            },
        ),
    ];
    let options = [
        "ro",
        "rw",
        "nosuid",
        "suid",
        "nodev",
        "dev",
        "noexec",
        "exec",
        "noatime",
        "relatime",
        "strictatime",
        "nodiratime",
        "sync",
        "dirsync",
        "mode=700",
        "mode=1777",
        "uid=1000",
        "gid=1000",
    ];
    for opt in options {
        // An option that is the kernel's default comes after its opposite (the later one
        // wins, mount(8)), so that a runtime ignoring it leaves the opposite and fails.
        let opts = match opt {
            "rw" => vec!["ro", "rw"],
            "suid" => vec!["nosuid", "suid"],
            "dev" => vec!["nodev", "dev"],
            "exec" => vec!["noexec", "exec"],
            "mode=1777" => vec!["mode=700", "mode=1777"],
            _ => vec![opt],
        };
        let mut c = Case::check(S, format!("tmpfs-option/{opt}"), &["mounts"], move |b| {
            push(b, json!({"destination": "/conf-mnt", "type": "tmpfs", "source": "tmpfs", "options": opts}));
            Ok(None)
        })
        .mutate_config("drop the last option of /conf-mnt", drop_last_option);
        if opt == "relatime" {
            c = c.mutant(Mutation::Excused(
                "relatime is the kernel's default for a new mount (mount(2), since Linux 2.6.30), and runc and crun let an earlier noatime win over a later relatime: no option order tells a runtime honouring it from one ignoring it",
            ));
        }
        if ["rw", "suid", "dev", "exec"].contains(&opt) {
            c = c.note(
                Kind::Crun,
                "crun 1.8 only ORs the flags options set: a later rw/suid/dev/exec does not clear an earlier ro/nosuid/nodev/noexec (runc applies them in order)",
            );
        }
        v.push(c);
    }
    v.push(Case::check(S, "tmpfs-options/combined", &["mounts"], |b| {
        push(
            b,
            json!({"destination": "/conf-mnt", "type": "tmpfs", "source": "tmpfs",
            "options": ["ro", "nosuid", "nodev", "noexec", "noatime", "mode=750"]}),
        );
        Ok(None)
    }));
    v.push(Case::check(
        S,
        "destination/created-nested",
        &["mounts"],
        |b| {
            push(
                b,
                json!({"destination": "/conf/a/b/c", "type": "tmpfs", "source": "tmpfs"}),
            );
            Ok(None)
        },
    ));
    v.push(Case::check(S, "destination/ordered-nesting", &["mounts", "files"], |b| {
        push(b, json!({"destination": "/conf-outer", "type": "tmpfs", "source": "tmpfs"}));
        let src = host_dir(b)?;
        push(b, json!({"destination": "/conf-outer/inner", "type": "bind", "source": src, "options": ["bind"]}));
        b.annotate("org.hako.conformance.file:/conf-outer/inner/marker", "marker-content");
        Ok(None)
    }));
    v.push(Case::check(
        S,
        "type/proc-second-instance",
        &["mounts"],
        |b| {
            push(
                b,
                json!({"destination": "/conf-proc", "type": "proc", "source": "proc"}),
            );
            Ok(None)
        },
    ));
    v.push(Case::check(S, "type/mqueue", &["mounts"], |b| {
        push(b, json!({"destination": "/conf-mq", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "nodev", "noexec"]}));
        Ok(None)
    }));
    v.push(Case::check(S, "bind/directory", &["mounts", "files"], |b| {
        let src = host_dir(b)?;
        push(b, json!({"destination": "/conf-bind", "type": "bind", "source": src, "options": ["bind"]}));
        b.annotate("org.hako.conformance.file:/conf-bind/marker", "marker-content");
        Ok(None)
    }));
    v.push(Case::check(
        S,
        "bind/rbind-without-type",
        &["mounts", "files"],
        |b| {
            let src = host_dir(b)?;
            push(
                b,
                json!({"destination": "/conf-bind", "source": src, "options": ["rbind"]}),
            );
            b.annotate(
                "org.hako.conformance.file:/conf-bind/marker",
                "marker-content",
            );
            Ok(None)
        },
    ));
    v.push(Case::check(S, "bind/relative-source", &["mounts", "files"], |b| {
        host_dir(b)?;
        push(b, json!({"destination": "/conf-bind", "type": "bind", "source": "hostdir", "options": ["bind"]}));
        b.annotate("org.hako.conformance.file:/conf-bind/marker", "marker-content");
        Ok(None)
    }));
    v.push(Case::check(S, "bind/file", &["mounts", "files"], |b| {
        let f = b.dir.join("hostfile");
        std::fs::write(&f, "file-content")?;
        push(
            b,
            json!({"destination": "/conf-file", "type": "bind", "source": f, "options": ["bind"]}),
        );
        b.annotate("org.hako.conformance.file:/conf-file", "file-content");
        Ok(None)
    }));
    v.push(Case::check(S, "bind/readonly", &["mounts", "files", "write"], |b| {
        let src = host_dir(b)?;
        push(b, json!({"destination": "/conf-bind", "type": "bind", "source": src, "options": ["bind", "ro"]}));
        b.annotate("org.hako.conformance.file:/conf-bind/marker", "marker-content");
        b.annotate("org.hako.conformance.write:/conf-bind/new-file", "errno=30");
        Ok(None)
    }));
    v.push(Case::check(S, "bind/nosuid-nodev-noexec", &["mounts"], |b| {
        let src = host_dir(b)?;
        push(b, json!({"destination": "/conf-bind", "type": "bind", "source": src, "options": ["bind", "nosuid", "nodev", "noexec"]}));
        Ok(None)
    }));
    v.push(Case::check(S, "bind/writable", &["mounts", "write"], |b| {
        let src = host_dir(b)?;
        push(b, json!({"destination": "/conf-bind", "type": "bind", "source": src, "options": ["bind", "rw"]}));
        b.annotate("org.hako.conformance.write:/conf-bind/new-file", "ok");
        Ok(None)
    }));
    v.push(Case::reject(S, "bind/missing-source-fails", |b| {
        let missing = b.dir.join("no-such-dir");
        push(b, json!({"destination": "/conf-bind", "type": "bind", "source": missing, "options": ["bind"]}));
        Ok(None)
    }));
    v.push(Case::reject(S, "unknown-type-fails", |b| {
        push(
            b,
            json!({"destination": "/conf-mnt", "type": "conf-no-such-fs", "source": "none"}),
        );
        Ok(None)
    }));
    v
}
