//! config-linux.md "Devices" and "Default Devices", runtime-linux.md "Dev symbolic links", and
//! the device allow-list (config-linux.md "Device allowlist") seen from inside: opening a
//! device the list denies fails with EPERM.

use crate::case::Case;
use crate::mutation::Misbehaviour;
use crate::runtime::Kind;
use serde_json::json;

const S: &str = "devices";

/// The device cases.
pub fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for (path, major, minor) in [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ] {
        let group = format!("devnode={path}:c:{major}:{minor}");
        v.push(
            Case::check(S, format!("default{path}"), &[group.as_str()], |_| Ok(None))
                .misbehave(Misbehaviour::RemoveAfterCreate(path)),
        );
    }
    for (path, target) in [
        ("/dev/ptmx", "pts/ptmx"),
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
        ("/dev/core", "/proc/kcore"),
    ] {
        let group = format!("symlink={path}:{target}");
        v.push(
            Case::check(S, format!("symlink{path}"), &[group.as_str()], |_| Ok(None))
                .misbehave(Misbehaviour::RemoveAfterCreate(path)),
        );
    }
    let custom = [
        (
            "char",
            json!({"path": "/dev/conf-null", "type": "c", "major": 1, "minor": 3, "fileMode": 438, "uid": 0, "gid": 0}),
        ),
        (
            "char-mode-owner",
            json!({"path": "/dev/conf-null", "type": "c", "major": 1, "minor": 3, "fileMode": 384, "uid": 1000, "gid": 1001}),
        ),
        (
            "block",
            json!({"path": "/dev/conf-loop", "type": "b", "major": 7, "minor": 0, "fileMode": 432, "uid": 0, "gid": 6}),
        ),
        (
            "fifo",
            json!({"path": "/dev/conf-fifo", "type": "p", "fileMode": 420}),
        ),
        (
            "unbuffered-char",
            json!({"path": "/dev/conf-u", "type": "u", "major": 1, "minor": 5}),
        ),
        (
            "nested-path",
            json!({"path": "/dev/conf/sub/null", "type": "c", "major": 1, "minor": 3, "fileMode": 438}),
        ),
    ];
    for (name, dev) in custom {
        v.push(Case::check(
            S,
            format!("node/{name}"),
            &["devices"],
            move |b| {
                b.config["linux"]["devices"] = json!([dev]);
                Ok(None)
            },
        ));
    }
    v.push(Case::check(S, "node/several", &["devices"], |b| {
        b.config["linux"]["devices"] = json!([
            {"path": "/dev/conf-a", "type": "c", "major": 1, "minor": 3, "fileMode": 438},
            {"path": "/dev/conf-b", "type": "c", "major": 1, "minor": 5, "fileMode": 438},
            {"path": "/dev/conf-c", "type": "b", "major": 7, "minor": 1, "fileMode": 432}
        ]);
        Ok(None)
    }));
    v.push(
        Case::check(S, "allowlist/default-devices-open", &["open"], |b| {
            for d in [
                "/dev/null",
                "/dev/zero",
                "/dev/full",
                "/dev/random",
                "/dev/urandom",
            ] {
                b.annotate(&format!("org.hako.conformance.open:{d}"), "ok");
            }
            Ok(None)
        })
        .misbehave(Misbehaviour::RemoveAfterCreate("/dev/null")),
    );
    v.push(Case::check(S, "allowlist/denied-device-eperm", &["open"], |b| {
        b.config["linux"]["devices"] = json!([{"path": "/dev/conf-loop", "type": "b", "major": 7, "minor": 0, "fileMode": 432}]);
        b.annotate("org.hako.conformance.open:/dev/conf-loop", "errno=1");
        Ok(None)
    }));
    v.push(Case::check(S, "allowlist/allowed-device-opens", &["open"], |b| {
        b.config["linux"]["devices"] = json!([{"path": "/dev/conf-loop", "type": "b", "major": 7, "minor": 0, "fileMode": 432}]);
        if let Some(a) = b.config["linux"]["resources"]["devices"].as_array_mut() {
            a.push(json!({"allow": true, "type": "b", "major": 7, "minor": 0, "access": "r"}));
        }
        b.annotate("org.hako.conformance.open:/dev/conf-loop", "ok");
        Ok(None)
    }));
    v.push(Case::check(S, "allowlist/later-entry-wins", &["open"], |b| {
        b.config["linux"]["devices"] = json!([{"path": "/dev/conf-loop", "type": "b", "major": 7, "minor": 0, "fileMode": 432}]);
        if let Some(a) = b.config["linux"]["resources"]["devices"].as_array_mut() {
            a.push(json!({"allow": true, "type": "b", "major": 7, "minor": 0, "access": "rwm"}));
            a.push(json!({"allow": false, "type": "b", "major": 7, "minor": 0, "access": "r"}));
        }
        b.annotate("org.hako.conformance.open:/dev/conf-loop", "errno=1");
        Ok(None)
    }));
    v.push(
        crate::case::Case::reject(S, "node/bad-type-fails", |b| {
            b.config["linux"]["devices"] =
                json!([{"path": "/dev/conf-x", "type": "z", "major": 1, "minor": 3}]);
            Ok(None)
        })
        .note(Kind::Crun, "crun 1.8 accepts an unknown device type"),
    );
    v
}
