//! config.md "Capabilities" (capabilities(7)): one case per capability alone in every set, and
//! cases per set shape (empty, bounding only, inheritable, ambient for a non-root user). The
//! checker derives what execve(2) must leave from the config, so a runtime that skips a set or
//! adds one it was not asked for fails.

use crate::case::expect;
use crate::case::{skip, Case};
use crate::runtime::Kind;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;

const S: &str = "capabilities";

/// The capability cases.
pub fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for (i, name) in crate::caps::NAMES.iter().enumerate() {
        v.push(Case::new(S, format!("only/{name}"), move |ctx| {
            if ctx.host.bounding & (1u64 << i) == 0 {
                return Ok(skip(
                    "CapBnd in /proc/self/status of the harness",
                    format!("the bounding set lacks {name}"),
                ));
            }
            let mut b = ctx.bundle()?;
            let set = json!([name]);
            b.config["process"]["capabilities"] =
                json!({"bounding": set, "effective": set, "permitted": set, "inheritable": set});
            b.check(&["caps"])
        }));
    }
    let shapes: [(&str, serde_json::Value, serde_json::Value); 6] = [
        (
            "sets/empty",
            json!({"bounding": [], "effective": [], "permitted": [], "inheritable": [], "ambient": []}),
            json!({"uid": 0, "gid": 0}),
        ),
        (
            "sets/default",
            json!({"bounding": crate::config::DEFAULT_CAPS, "effective": crate::config::DEFAULT_CAPS, "permitted": crate::config::DEFAULT_CAPS}),
            json!({"uid": 0, "gid": 0}),
        ),
        (
            "sets/bounding-only",
            json!({"bounding": ["CAP_CHOWN", "CAP_KILL"]}),
            json!({"uid": 0, "gid": 0}),
        ),
        (
            "sets/inheritable",
            json!({"bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"], "effective": ["CAP_CHOWN"], "permitted": ["CAP_CHOWN", "CAP_KILL"], "inheritable": ["CAP_KILL"]}),
            json!({"uid": 0, "gid": 0}),
        ),
        (
            "sets/ambient-non-root",
            json!({"bounding": ["CAP_NET_BIND_SERVICE", "CAP_KILL"], "effective": ["CAP_NET_BIND_SERVICE"], "permitted": ["CAP_NET_BIND_SERVICE"], "inheritable": ["CAP_NET_BIND_SERVICE"], "ambient": ["CAP_NET_BIND_SERVICE"]}),
            json!({"uid": 1000, "gid": 1000}),
        ),
        (
            "sets/non-root-no-ambient",
            json!({"bounding": crate::config::DEFAULT_CAPS, "effective": crate::config::DEFAULT_CAPS, "permitted": crate::config::DEFAULT_CAPS}),
            json!({"uid": 1000, "gid": 1000}),
        ),
    ];
    for (name, caps, user) in shapes {
        let mut c = Case::check(S, name, &["caps", "user"], move |b| {
            b.config["process"]["capabilities"] = caps.clone();
            b.config["process"]["user"] = user.clone();
            Ok(None)
        });
        if name == "sets/default" {
            c = c.mutate_config("drop CAP_KILL from every set", |cfg| {
                if let Some(sets) = cfg["process"]["capabilities"].as_object_mut() {
                    for set in sets.values_mut().filter_map(|s| s.as_array_mut()) {
                        set.retain(|c| c != "CAP_KILL");
                    }
                }
            });
        }
        v.push(c);
    }
    // execve(2) recomputes CapEff from CapPrm (root) or the ambient set (anyone else), so the
    // config's effective set cannot be read back afterwards (capabilities(7)); it governs the
    // runtime's own execve of the program, whose permission check for root needs
    // CAP_DAC_OVERRIDE in the effective set when only the owner (another uid) may execute.
    for (name, with_dac) in [
        ("effective/governs-exec-without-dac-override", false),
        ("effective/governs-exec-with-dac-override", true),
    ] {
        let mut c = Case::new(S, name, move |ctx| {
            let mut b = ctx.bundle()?;
            let private = b.rootfs().join("conf-private");
            std::fs::create_dir(&private)?;
            std::fs::copy("/bin/busybox", private.join("busybox"))?;
            std::fs::set_permissions(
                private.join("busybox"),
                std::fs::Permissions::from_mode(0o700),
            )?;
            std::os::unix::fs::chown(private.join("busybox"), Some(1234), Some(1234))?;
            let marker = b.rootfs().join(".conformance/ran");
            b.args(&["/conf-private/busybox", "touch", "/.conformance/ran"]);
            let all = crate::config::DEFAULT_CAPS.to_vec();
            let eff: Vec<&str> = all
                .iter()
                .copied()
                .filter(|c| with_dac || *c != "CAP_DAC_OVERRIDE")
                .collect();
            b.config["process"]["capabilities"] =
                json!({"bounding": all, "permitted": all, "effective": eff});
            let c = b.create()?;
            if c.success() && b.start()?.success() {
                b.wait_exit()?;
            }
            let ran = marker.exists();
            expect(
                ran == with_dac,
                format!("the program ran: {ran}; CAP_DAC_OVERRIDE effective at exec: {with_dac}"),
            )
        });
        c = if with_dac {
            c.mutate_config("no CAP_DAC_OVERRIDE in the effective set", |cfg| {
                if let Some(e) = cfg["process"]["capabilities"]["effective"].as_array_mut() {
                    e.retain(|c| c != "CAP_DAC_OVERRIDE");
                }
            })
        } else {
            c.mutate_config("the effective set made the permitted set", |cfg| {
                cfg["process"]["capabilities"]["effective"] =
                    cfg["process"]["capabilities"]["permitted"].clone();
            })
        };
        v.push(c);
    }
    v.push(
        Case::reject(S, "unknown-name-fails", |b| {
            b.config["process"]["capabilities"]["bounding"] =
                json!(["CAP_CHOWN", "CAP_NOT_A_CAPABILITY"]);
            b.config["process"]["capabilities"]["permitted"] =
                json!(["CAP_CHOWN", "CAP_NOT_A_CAPABILITY"]);
            Ok(None)
        })
        .note(Kind::Crun, "crun ignores unknown capability names"),
    );
    v
}
