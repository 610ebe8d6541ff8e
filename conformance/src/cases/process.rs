//! config.md "Process" and "User": argv, environment, working directory, ids, supplementary
//! groups, umask, PATH lookup of `args[0]`, noNewPrivileges and oomScoreAdj.

use crate::case::{skip, Case};
use serde_json::Value;

/// A runtime that adds an argument.
fn append_arg(cfg: &mut Value) {
    if let Some(a) = cfg["process"]["args"].as_array_mut() {
        a.push(json!("conformance-mutant-arg"));
    }
}
use serde_json::json;

const S: &str = "process";

/// The process cases.
pub fn cases() -> Vec<Case> {
    let mut v = vec![
        Case::check(S, "args/plain", &["args"], |_| Ok(None))
            .mutate_config("append an argument", append_arg),
        Case::check(S, "args/spaces-unicode-empty", &["args"], |b| {
            let mut args = crate::config::checker_args(&["args", "--"]);
            if let Some(a) = args.as_array_mut() {
                a.extend([
                    json!("two words"),
                    json!("ünïcödé"),
                    json!(""),
                    json!("$HOME"),
                ]);
            }
            b.config["process"]["args"] = args;
            Ok(None)
        })
        .mutate_config("append an argument", append_arg),
        Case::check(S, "env/exact-entries", &["env"], |b| {
            b.config["process"]["env"] = json!([
                "PATH=/bin:/usr/bin",
                "CONF_PLAIN=value",
                "CONF_EMPTY=",
                "CONF_EQUALS=a=b=c",
                "CONF_SPACES=with some spaces"
            ]);
            Ok(None)
        }),
        Case::check(S, "cwd/tmp", &["cwd"], |b| {
            b.config["process"]["cwd"] = json!("/tmp");
            Ok(None)
        }),
        Case::check(S, "cwd/nested", &["cwd"], |b| {
            std::fs::create_dir_all(b.rootfs().join("srv/app/data"))?;
            b.config["process"]["cwd"] = json!("/srv/app/data");
            Ok(None)
        }),
        Case::check(S, "args0/path-lookup", &["args"], |b| {
            b.config["process"]["env"] = json!(["PATH=/bin:/.conformance"]);
            b.config["process"]["args"] = json!(["hako-conformance", "check", "args"]);
            Ok(None)
        }),
        Case::check(S, "user/root", &["user"], |_| Ok(None)).mutate_config(
            "run as uid 1000",
            |c| {
                c["process"]["user"]["uid"] = json!(1000);
            },
        ),
        Case::check(S, "user/uid-gid-1000", &["user"], |b| {
            b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
            Ok(None)
        }),
        Case::check(S, "user/uid-differs-from-gid", &["user"], |b| {
            b.config["process"]["user"] = json!({"uid": 1234, "gid": 4321});
            Ok(None)
        }),
        Case::check(S, "user/nobody", &["user"], |b| {
            b.config["process"]["user"] = json!({"uid": 65534, "gid": 65534});
            Ok(None)
        }),
        Case::check(S, "user/additional-gids", &["user"], |b| {
            b.config["process"]["user"] =
                json!({"uid": 1000, "gid": 1000, "additionalGids": [10, 20, 30]});
            Ok(None)
        }),
        Case::check(S, "user/additional-gids-root", &["user"], |b| {
            b.config["process"]["user"] = json!({"uid": 0, "gid": 0, "additionalGids": [5, 7]});
            Ok(None)
        }),
        Case::check(S, "user/no-additional-gids-as-root", &["user"], |b| {
            b.config["process"]["user"] = json!({"uid": 0, "gid": 0, "additionalGids": []});
            Ok(None)
        })
        .mutate_config("add group 5", |c| {
            c["process"]["user"]["additionalGids"] = json!([5]);
        }),
        Case::check(S, "nnp/true", &["nnp"], |b| {
            b.config["process"]["noNewPrivileges"] = json!(true);
            Ok(None)
        })
        .mutate_config("noNewPrivileges false", |c| {
            c["process"]["noNewPrivileges"] = json!(false);
        }),
        Case::new(S, "nnp/false", |ctx| {
            if ctx.host.nnp {
                return Ok(skip(
                    "NoNewPrivs in /proc/self/status of the harness",
                    "1: the harness already runs with no_new_privs",
                ));
            }
            let mut b = ctx.bundle()?;
            b.config["process"]["noNewPrivileges"] = json!(false);
            b.check(&["nnp"])
        }),
    ];
    for umask in [0o077u32, 0o027, 0o002, 0] {
        v.push(Case::check(
            S,
            format!("umask/{umask:04o}"),
            &["umask"],
            move |b| {
                b.config["process"]["user"]["umask"] = json!(umask);
                Ok(None)
            },
        ));
    }
    for adj in [-500i64, 0, 100, 500, 1000] {
        v.push(Case::new(S, format!("oomScoreAdj/{adj}"), move |ctx| {
            if adj < ctx.host.oom_score_adj && ctx.host.bounding & (1 << 24) == 0 {
                return Ok(skip(
                    "CAP_SYS_RESOURCE in CapBnd of the harness",
                    format!(
                        "absent: lowering oom_score_adj below the harness's {} needs it",
                        ctx.host.oom_score_adj
                    ),
                ));
            }
            if adj == ctx.host.oom_score_adj {
                return Ok(skip(
                    "/proc/self/oom_score_adj of the harness",
                    format!("{adj}: the container inherits this value, so the case could not fail"),
                ));
            }
            let mut b = ctx.bundle()?;
            b.config["process"]["oomScoreAdj"] = json!(adj);
            b.check(&["oom"])
        }));
    }
    v
}
