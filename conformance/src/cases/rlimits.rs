//! config.md "POSIX process" `rlimits` (getrlimit(2)): one case per type, values chosen under
//! the host's hard limit (raising one needs CAP_SYS_RESOURCE) and different from the host's,
//! so a runtime that ignores the entry fails; plus the errors the spec requires.

use crate::case::{skip, Case};
use crate::runtime::Kind;
use serde_json::json;

const S: &str = "rlimits";

/// A value per type that leaves the checker able to run.
fn candidate(ty: &str) -> u64 {
    match ty {
        "RLIMIT_AS" => 16 << 30,
        "RLIMIT_DATA" => 8 << 30,
        "RLIMIT_STACK" => 32 << 20,
        "RLIMIT_NOFILE" => 4096,
        "RLIMIT_NPROC" => 4096,
        "RLIMIT_CPU" => 3600,
        "RLIMIT_RTTIME" => 1_000_000,
        "RLIMIT_NICE" | "RLIMIT_RTPRIO" => 10,
        _ => 1 << 20,
    }
}

/// The rlimit cases.
pub fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for (ty, res) in crate::rlimits::TYPES {
        v.push(Case::new(S, format!("type/{ty}"), move |ctx| {
            let (_, host_hard) = crate::sys::getrlimit(res)?;
            let hard = if host_hard == u64::MAX { candidate(ty) } else { candidate(ty).min(host_hard / 2) };
            if hard < 2 {
                return Ok(skip(
                    format!("getrlimit({ty}) of the harness"),
                    format!("hard limit {host_hard}: no lower value to tell a set limit from an inherited one"),
                ));
            }
            let mut b = ctx.bundle()?;
            b.config["process"]["rlimits"] = json!([{"type": ty, "soft": hard / 2, "hard": hard}]);
            b.check(&["rlimits"])
        }));
    }
    v.push(Case::check(S, "several-at-once", &["rlimits"], |b| {
        b.config["process"]["rlimits"] = json!([
            {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024},
            {"type": "RLIMIT_CORE", "soft": 0, "hard": 4096},
            {"type": "RLIMIT_LOCKS", "soft": 100, "hard": 200}
        ]);
        Ok(None)
    }));
    v.push(Case::reject(S, "unknown-type-fails", |b| {
        b.config["process"]["rlimits"] =
            json!([{"type": "RLIMIT_NOT_A_LIMIT", "soft": 1, "hard": 1}]);
        Ok(None)
    }));
    v.push(Case::reject(S, "soft-above-hard-fails", |b| {
        b.config["process"]["rlimits"] =
            json!([{"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 1024}]);
        Ok(None)
    }));
    v.push(
        Case::reject(S, "duplicate-type-fails", |b| {
            b.config["process"]["rlimits"] = json!([
                {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 512},
                {"type": "RLIMIT_NOFILE", "soft": 256, "hard": 256}
            ]);
            Ok(None)
        })
        .note(Kind::Runc, "runc 1.1 applies duplicate rlimit entries in order (config.md: duplicates MUST be an error)")
        .note(Kind::Crun, "crun 1.8 applies duplicate rlimit entries in order"),
    );
    v
}
