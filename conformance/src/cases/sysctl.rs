//! config-linux.md "Sysctl": one case per namespaced sysctl (ipc, mqueue, net, uts), read back
//! from /proc/sys inside the container, and the error for a key the kernel does not have.

use crate::case::Case;
use serde_json::json;

const S: &str = "sysctl";

const KEYS: [(&str, &str); 17] = [
    ("kernel.msgmax", "16384"),
    ("kernel.msgmnb", "32768"),
    ("kernel.msgmni", "64"),
    ("kernel.sem", "250 32000 32 256"),
    ("kernel.shmmax", "68719476736"),
    ("kernel.shmall", "1048576"),
    ("kernel.shmmni", "2048"),
    ("fs.mqueue.msg_max", "20"),
    ("fs.mqueue.msgsize_max", "16384"),
    ("fs.mqueue.queues_max", "128"),
    ("net.ipv4.ip_forward", "1"),
    ("net.ipv4.ip_default_ttl", "42"),
    ("net.ipv4.tcp_syncookies", "0"),
    ("net.core.somaxconn", "1000"),
    ("net.ipv4.ping_group_range", "0 1000"),
    ("net.ipv4.ip_unprivileged_port_start", "80"),
    ("kernel.domainname", "conf.sysctl"),
];

/// The sysctl cases.
pub fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for (k, val) in KEYS {
        v.push(Case::check(S, k, &["sysctl"], move |b| {
            b.config["linux"]["sysctl"] = json!({k: val});
            Ok(None)
        }));
    }
    v.push(Case::check(S, "several-at-once", &["sysctl"], |b| {
        b.config["linux"]["sysctl"] =
            json!({"kernel.shmmni": "1024", "net.ipv4.ip_forward": "1", "fs.mqueue.msg_max": "16"});
        Ok(None)
    }));
    v.push(Case::reject(S, "unknown-key-fails", |b| {
        b.config["linux"]["sysctl"] = json!({"kernel.conf_no_such_key": "1"});
        Ok(None)
    }));
    v
}
