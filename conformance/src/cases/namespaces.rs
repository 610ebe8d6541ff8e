//! config-linux.md "Namespaces" and "User namespace mappings": each type created new, left as
//! the runtime's own when not listed, joined by path (from a holder process made with
//! unshare(1)), the errors for bad paths and duplicates, and id maps.

use crate::bundle::Bundle;
use crate::case::{skip, Case};
use crate::runtime::Kind;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::io::BufRead;
use std::os::unix::fs::MetadataExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const S: &str = "namespaces";

/// A process holding new net/ipc/uts/pid namespaces for containers to join; killed on drop.
pub(super) struct Holder {
    child: Child,
    /// The pid whose namespaces are joined (unshare's forked child, pid 1 of the new pid ns).
    inner: i32,
}

impl Holder {
    fn spawn() -> Result<Self> {
        Self::spawn_with(&[])
    }

    /// A holder with a private mount namespace too (`unshare --mount --propagation private`):
    /// what a runtime mounts there after joining it never reaches the host.
    pub(super) fn spawn_with_mount() -> Result<Self> {
        Self::spawn_with(&["--mount", "--propagation", "private"])
    }

    fn spawn_with(extra: &[&str]) -> Result<Self> {
        let mut child = Command::new("unshare")
            .args(extra)
            .args([
                "--net",
                "--ipc",
                "--uts",
                "--pid",
                "--fork",
                "--kill-child",
                "--",
            ])
            .args([
                "/bin/busybox",
                "sh",
                "-c",
                "echo ready; exec /bin/busybox sleep 600",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .context("spawn unshare(1)")?;
        let out = child.stdout.take().context("unshare stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(out).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut h = Holder { child, inner: 0 };
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(l) if l.trim() == "ready" => {}
            _ => bail!("the namespace holder did not start"),
        }
        let pid = h.child.id();
        let kids = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))?;
        h.inner = kids
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .context("holder child")?;
        Ok(h)
    }

    pub(super) fn path(&self, file: &str) -> String {
        format!("/proc/{}/ns/{file}", self.inner)
    }

    pub(super) fn inode(&self, file: &str) -> Result<u64> {
        Ok(std::fs::metadata(self.path(file))?.ino())
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn set_ns(b: &mut Bundle, list: Value) {
    b.config["linux"]["namespaces"] = list;
}

fn userns(b: &mut Bundle) {
    if let Some(a) = b.config["linux"]["namespaces"].as_array_mut() {
        a.push(json!({"type": "user"}));
    }
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
}

const BASE: [&str; 5] = ["pid", "network", "ipc", "uts", "mount"];

/// The namespace cases.
pub fn cases() -> Vec<Case> {
    let mut v = vec![
        Case::check(S, "new/base-five", &["ns"], |_| Ok(None)).mutate_config(
            "no new ipc or uts namespace (and no hostname)",
            |cfg| {
                if let Some(a) = cfg["linux"]["namespaces"].as_array_mut() {
                    a.retain(|n| n["type"] != "ipc" && n["type"] != "uts");
                }
                if let Some(o) = cfg.as_object_mut() {
                    o.remove("hostname");
                }
            },
        ),
    ];
    for extra in ["cgroup", "time"] {
        v.push(
            Case::new(S, format!("new/{extra}"), move |ctx| {
                if !ctx.host.ns.contains_key(extra) {
                    return Ok(skip(
                        format!("/proc/self/ns/{extra}"),
                        "absent: the kernel has no such namespace",
                    ));
                }
                let mut b = ctx.bundle()?;
                if let Some(a) = b.config["linux"]["namespaces"].as_array_mut() {
                    a.push(json!({"type": extra}));
                }
                b.check(&["ns"])
            })
            .note(
                Kind::Runc,
                "runc 1.1 has no time namespace support (added in runc 1.2)",
            )
            .note(
                Kind::Crun,
                "crun 1.8 fails to create a time namespace here (sync socket reset)",
            ),
        );
    }
    v.push(Case::check(S, "new/user", &["ns", "idmap"], |b| {
        userns(b);
        Ok(None)
    }));
    for left_out in ["network", "ipc", "uts", "pid"] {
        v.push(Case::check(
            S,
            format!("host/{left_out}"),
            &["ns"],
            move |b| {
                let list: Vec<Value> = BASE
                    .iter()
                    .filter(|t| **t != left_out)
                    .map(|t| json!({"type": t}))
                    .collect();
                set_ns(b, json!(list));
                if left_out == "uts" {
                    if let Some(o) = b.config.as_object_mut() {
                        o.remove("hostname");
                    }
                }
                if left_out == "network" {
                    // sysfs needs a network namespace of the container's own.
                    if let Some(a) = b.config["mounts"].as_array_mut() {
                        a.retain(|m| m["destination"] != "/sys");
                    }
                    b.config["linux"]["maskedPaths"] = json!(["/proc/kcore"]);
                }
                Ok(None)
            },
        ));
    }
    for (ty, file) in [
        ("network", "net"),
        ("ipc", "ipc"),
        ("uts", "uts"),
        ("pid", "pid"),
    ] {
        v.push(Case::new(S, format!("join/{ty}"), move |ctx| {
            let holder = Holder::spawn()?;
            let mut b = ctx.bundle()?;
            b.joined.insert(ty.to_string(), json!(holder.inode(file)?));
            if let Some(a) = b.config["linux"]["namespaces"].as_array_mut() {
                for n in a.iter_mut().filter(|n| n["type"] == ty) {
                    n["path"] = json!(holder.path(file));
                }
            }
            b.check(&["ns"])
        }));
    }
    // A new user namespace that joins a network namespace owned by the host's (a Kubernetes
    // user-namespace sandbox and its pinned network namespace): joined first, then created.
    v.push(Case::new(S, "join/network-from-new-user", |ctx| {
        let holder = Holder::spawn()?;
        let mut b = ctx.bundle()?;
        b.joined
            .insert("network".to_string(), json!(holder.inode("net")?));
        if let Some(a) = b.config["linux"]["namespaces"].as_array_mut() {
            for n in a.iter_mut().filter(|n| n["type"] == "network") {
                n["path"] = json!(holder.path("net"));
            }
        }
        userns(&mut b);
        // A fresh sysfs needs CAP_SYS_ADMIN over the network namespace's owner (the host's
        // user namespace here); the spec leaves that mount to the config, so leave it out.
        if let Some(a) = b.config["mounts"].as_array_mut() {
            a.retain(|m| m["destination"] != "/sys");
        }
        b.config["linux"]["maskedPaths"] = json!(["/proc/kcore"]);
        b.check(&["ns", "idmap"])
    }));
    v.push(Case::reject(S, "join/missing-path-fails", |b| {
        if let Some(a) = b.config["linux"]["namespaces"].as_array_mut() {
            for n in a.iter_mut().filter(|n| n["type"] == "network") {
                n["path"] = json!("/proc/self/ns/conf-no-such-namespace");
            }
        }
        Ok(None)
    }));
    v.push(Case::reject(S, "join/wrong-type-fails", |b| {
        if let Some(a) = b.config["linux"]["namespaces"].as_array_mut() {
            for n in a.iter_mut().filter(|n| n["type"] == "network") {
                n["path"] = json!("/proc/1/ns/uts");
            }
        }
        Ok(None)
    }));
    v.push(
        Case::reject(S, "duplicate-type-fails", |b| {
            if let Some(a) = b.config["linux"]["namespaces"].as_array_mut() {
                a.push(json!({"type": "ipc"}));
            }
            Ok(None)
        })
        .note(Kind::Crun, "crun 1.8 accepts a duplicated namespace type"),
    );
    v.push(Case::check(
        S,
        "idmap/user-ids-inside",
        &["ns", "idmap", "user"],
        |b| {
            userns(b);
            b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
            Ok(None)
        },
    ));
    v.push(Case::check(S, "idmap/several-ranges", &["idmap"], |b| {
        userns(b);
        b.config["linux"]["uidMappings"] = json!([
            {"containerID": 0, "hostID": 100000, "size": 1000},
            {"containerID": 1000, "hostID": 300000, "size": 64536}
        ]);
        b.config["linux"]["gidMappings"] = json!([
            {"containerID": 0, "hostID": 100000, "size": 1000},
            {"containerID": 1000, "hostID": 300000, "size": 64536}
        ]);
        Ok(None)
    }));
    v.push(Case::check(
        S,
        "idmap/caps-in-userns",
        &["caps", "ns", "idmap"],
        |b| {
            userns(b);
            Ok(None)
        },
    ));
    v
}
