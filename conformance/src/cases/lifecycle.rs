//! runtime.md "Lifecycle" and "Operations": state transitions, the state JSON, and the errors
//! each operation must give in the wrong state ("MUST generate an error" and "MUST have no
//! effect on the container").

use super::{mkfifo, read_fifo};
use crate::case::{expect, Case, Outcome};
use crate::ctx::Ctx;
use crate::mutation::Misbehaviour as M;
use crate::runtime::Kind;
use anyhow::{ensure, Result};
use serde_json::json;
use std::time::Duration;

const S: &str = "lifecycle";
const SLEEP: [&str; 2] = ["/bin/sleep", "600"];

fn with(
    ctx: &Ctx,
    args: &[&str],
    f: impl FnOnce(&crate::bundle::Bundle) -> Result<Outcome>,
) -> Result<Outcome> {
    let mut b = ctx.bundle()?;
    b.args(args);
    f(&b)
}

fn created(b: &crate::bundle::Bundle) -> Result<()> {
    b.create()?.ok("create")?;
    Ok(())
}

fn running(b: &crate::bundle::Bundle) -> Result<()> {
    created(b)?;
    b.start()?.ok("start")?;
    Ok(())
}

fn stopped(b: &crate::bundle::Bundle) -> Result<()> {
    running(b)?;
    b.wait_exit()
}

/// The lifecycle cases.
pub fn cases() -> Vec<Case> {
    let mut v = vec![
        Case::new(S, "create/state-created", |ctx| {
            with(ctx, &SLEEP, |b| {
                created(b)?;
                let st = b.state()?;
                ensure!(st["status"] == "created", "status {}", st["status"]);
                ensure!(st["id"] == b.id.as_str(), "id {}", st["id"]);
                ensure!(st["pid"].as_i64().unwrap_or(0) > 0, "pid {}", st["pid"]);
                ensure!(
                    st["bundle"] == b.path().as_str(),
                    "bundle {} (want absolute {})",
                    st["bundle"],
                    b.path()
                );
                expect(
                    st["ociVersion"].as_str().is_some_and(|s| !s.is_empty()),
                    format!("ociVersion {}", st["ociVersion"]),
                )
            })
        }),
        Case::new(S, "create/pid-file", |ctx| {
            with(ctx, &SLEEP, |b| {
                created(b)?;
                let st = b.state()?;
                expect(
                    st["pid"].as_i64() == Some(i64::from(b.pid()?)),
                    format!("pid file {} vs state {}", b.pid()?, st["pid"]),
                )
            })
        }),
        Case::new(S, "create/program-not-run-before-start", |ctx| {
            with(
                ctx,
                &["/bin/sh", "-c", "echo ran > /.conformance/ran"],
                |b| {
                    created(b)?;
                    let marker = b.rootfs().join(".conformance/ran");
                    ensure!(!marker.exists(), "the program ran at create");
                    b.start()?.ok("start")?;
                    b.wait_exit()?;
                    expect(marker.exists(), "the program did not run after start")
                },
            )
        }),
        Case::new(S, "start/state-running", |ctx| {
            with(ctx, &SLEEP, |b| {
                running(b)?;
                let s = b.status()?;
                expect(s == "running", format!("status {s}"))
            })
        }),
        Case::new(S, "start/exit-means-stopped", |ctx| {
            with(ctx, &["/bin/true"], |b| {
                stopped(b)?;
                let s = b.status()?;
                expect(s == "stopped", format!("status {s}"))
            })
        }),
        Case::new(S, "start/twice-fails", |ctx| {
            with(ctx, &SLEEP, |b| {
                running(b)?;
                let again = b.start()?;
                ensure!(!again.success(), "second start succeeded");
                let s = b.status()?;
                expect(s == "running", format!("status after second start {s}"))
            })
        }),
        Case::new(S, "start/stopped-fails", |ctx| {
            with(ctx, &["/bin/true"], |b| {
                stopped(b)?;
                expect(
                    !b.start()?.success(),
                    "start of a stopped container succeeded",
                )
            })
        }),
        Case::new(S, "start/unknown-id-fails", |ctx| {
            let b = ctx.bundle()?;
            expect(!b.start()?.success(), "start of an unknown id succeeded")
        }),
        Case::new(S, "kill/created", |ctx| {
            with(ctx, &SLEEP, |b| {
                created(b)?;
                b.kill("KILL")?.ok("kill")?;
                b.wait_exit()?;
                let s = b.status()?;
                expect(s == "stopped", format!("status {s}"))
            })
        }),
        Case::new(S, "kill/running", |ctx| {
            with(ctx, &SLEEP, |b| {
                running(b)?;
                b.kill("KILL")?.ok("kill")?;
                b.wait_exit()?;
                let s = b.status()?;
                expect(s == "stopped", format!("status {s}"))
            })
        }),
        Case::new(S, "kill/stopped-fails", |ctx| {
            with(ctx, &["/bin/true"], |b| {
                stopped(b)?;
                let k = b.kill("KILL")?;
                ensure!(!k.success(), "kill of a stopped container succeeded");
                let s = b.status()?;
                expect(s == "stopped", format!("status {s}"))
            })
        }),
        Case::new(S, "kill/unknown-id-fails", |ctx| {
            let b = ctx.bundle()?;
            expect(
                !b.kill("KILL")?.success(),
                "kill of an unknown id succeeded",
            )
        }),
        Case::new(S, "kill/delivers-signal", |ctx| {
            let mut b = ctx.bundle()?;
            let fifo = b.rootfs().join("ready");
            mkfifo(&fifo)?;
            b.args(&[
                "/bin/sh",
                "-c",
                "trap 'echo got-term; exit 0' TERM; echo ready > /ready; sleep 600 & wait",
            ]);
            running(&b)?;
            read_fifo(&fifo, Duration::from_secs(10))?;
            b.kill("TERM")?.ok("kill TERM")?;
            b.wait_exit()?;
            expect(
                b.output().contains("got-term"),
                format!("output {:?}", b.output()),
            )
        }),
        Case::new(S, "delete/stopped", |ctx| {
            with(ctx, &["/bin/true"], |b| {
                stopped(b)?;
                b.delete(false)?.ok("delete")?;
                expect(
                    !b.runtime(&["state", &b.id])?.success(),
                    "state still answers after delete",
                )
            })
        }),
        Case::new(S, "delete/removes-cgroup", |ctx| {
            with(ctx, &["/bin/true"], |b| {
                stopped(b)?;
                b.delete(false)?.ok("delete")?;
                let left = b.cgroup_dirs();
                expect(
                    left.is_empty(),
                    format!("cgroup directories left: {left:?}"),
                )
            })
        }),
        Case::new(S, "delete/running-fails", |ctx| {
            with(ctx, &SLEEP, |b| {
                running(b)?;
                ensure!(
                    !b.delete(false)?.success(),
                    "delete of a running container succeeded"
                );
                let s = b.status()?;
                expect(s == "running", format!("status after refused delete {s}"))
            })
        }),
        Case::new(S, "delete/created-fails", |ctx| {
            with(ctx, &SLEEP, |b| {
                created(b)?;
                ensure!(
                    !b.delete(false)?.success(),
                    "delete of a created container succeeded"
                );
                let s = b.status()?;
                expect(s == "created", format!("status after refused delete {s}"))
            })
        })
        .note(
            Kind::Runc,
            "runc deletes a created container without --force (runtime.md Delete says error)",
        )
        .note(
            Kind::Crun,
            "crun deletes a created container without --force",
        ),
        Case::new(S, "delete/force-running", |ctx| {
            with(ctx, &SLEEP, |b| {
                running(b)?;
                b.delete(true)?.ok("delete --force")?;
                ensure!(
                    !b.runtime(&["state", &b.id])?.success(),
                    "state still answers"
                );
                let left = b.cgroup_dirs();
                expect(
                    left.is_empty(),
                    format!("cgroup directories left: {left:?}"),
                )
            })
        }),
        Case::new(S, "delete/unknown-id-fails", |ctx| {
            let b = ctx.bundle()?;
            expect(
                !b.delete(false)?.success(),
                "delete of an unknown id succeeded",
            )
        }),
        Case::new(S, "state/unknown-id-fails", |ctx| {
            let b = ctx.bundle()?;
            expect(
                !b.runtime(&["state", &b.id])?.success(),
                "state of an unknown id succeeded",
            )
        }),
        Case::new(S, "state/annotations", |ctx| {
            let mut b = ctx.bundle()?;
            b.args(&SLEEP);
            b.annotate("org.example.key", "value-1");
            created(&b)?;
            let st = b.state()?;
            expect(
                st["annotations"]["org.example.key"] == "value-1",
                format!("annotations {}", st["annotations"]),
            )
        }),
        Case::new(S, "create/duplicate-id-fails", |ctx| {
            with(ctx, &SLEEP, |b| {
                created(b)?;
                let second = b.create_from(&b.path())?;
                ensure!(
                    !second.success(),
                    "a second create with the same id succeeded"
                );
                let s = b.status()?;
                expect(s == "created", format!("the first container is now {s}"))
            })
        }),
        Case::new(S, "create/missing-bundle-fails", |ctx| {
            let b = ctx.bundle()?;
            let r = b.create_from(&format!("{}/does-not-exist", b.path()))?;
            ensure!(!r.success(), "create with a missing bundle succeeded");
            expect(
                !b.runtime(&["state", &b.id])?.success(),
                "a container was left behind",
            )
        }),
        Case::new(S, "create/missing-config-fails", |ctx| {
            let b = ctx.bundle()?;
            let r = b.create_from(&b.path())?;
            ensure!(!r.success(), "create without config.json succeeded");
            expect(
                !b.runtime(&["state", &b.id])?.success(),
                "a container was left behind",
            )
        }),
        Case::new(S, "create/invalid-json-fails", |ctx| {
            let b = ctx.bundle()?;
            std::fs::write(b.dir.join("config.json"), "{\"ociVersion\": ")?;
            let r = b.create_from(&b.path())?;
            ensure!(!r.success(), "create with broken JSON succeeded");
            expect(
                !b.runtime(&["state", &b.id])?.success(),
                "a container was left behind",
            )
        }),
        Case::reject(S, "create/missing-rootfs-fails", |b| {
            b.config["root"]["path"] = json!("no-such-rootfs");
            Ok(None)
        }),
        Case::reject(S, "create/missing-executable-fails", |b| {
            b.config["process"]["args"] = json!(["/no/such/program"]);
            Ok(None)
        }),
        Case::check(S, "create/unknown-properties-ignored", &["args"], |b| {
            b.config["org.example.unknown"] = json!({"a": 1});
            b.config["process"]["org.example.unknown"] = json!(true);
            b.config["linux"]["org.example.unknown"] = json!([1, 2]);
            Ok(None)
        }),
        Case::new(S, "create/without-process", |ctx| {
            let mut b = ctx.bundle()?;
            if let Some(o) = b.config.as_object_mut() {
                o.remove("process");
            }
            let c = b.create()?;
            ensure!(
                c.success(),
                "create without process failed: {}",
                c.stderr.trim()
            );
            let s = b.status()?;
            expect(s == "created", format!("status {s}"))
        })
        .note(
            Kind::Runc,
            "runc rejects a config without process at create (config.md makes it optional)",
        )
        .note(
            Kind::Crun,
            "crun rejects a config without process at create",
        ),
        Case::new(S, "exec/running", |ctx| {
            with(ctx, &SLEEP, |b| {
                running(b)?;
                let r = b
                    .runtime(&["exec", &b.id, "/bin/echo", "exec-ok"])?
                    .ok("exec")?;
                expect(
                    r.stdout.trim() == "exec-ok",
                    format!("stdout {:?}", r.stdout),
                )
            })
        }),
        Case::new(S, "exec/env-and-cwd", |ctx| {
            with(ctx, &SLEEP, |b| {
                running(b)?;
                let r = b
                    .runtime(&[
                        "exec",
                        "--env",
                        "CONF=yes",
                        "--cwd",
                        "/tmp",
                        &b.id,
                        "/bin/sh",
                        "-c",
                        "echo $CONF $(pwd)",
                    ])?
                    .ok("exec")?;
                expect(
                    r.stdout.trim() == "yes /tmp",
                    format!("stdout {:?}", r.stdout),
                )
            })
        }),
        Case::new(S, "exec/user", |ctx| {
            with(ctx, &SLEEP, |b| {
                running(b)?;
                let r = b
                    .runtime(&[
                        "exec",
                        "--user",
                        "1000:1000",
                        &b.id,
                        "/bin/sh",
                        "-c",
                        "echo $(id -u):$(id -g)",
                    ])?
                    .ok("exec")?;
                expect(
                    r.stdout.trim() == "1000:1000",
                    format!("stdout {:?}", r.stdout),
                )
            })
        }),
        Case::new(S, "exec/same-namespaces", |ctx| {
            with(ctx, &SLEEP, |b| {
                running(b)?;
                let pid = b.pid()?;
                let r = b
                    .runtime(&[
                        "exec",
                        &b.id,
                        "/bin/sh",
                        "-c",
                        "for n in pid mnt net; do readlink /proc/self/ns/$n; done",
                    ])?
                    .ok("exec")?;
                let want: Vec<String> = ["pid", "mnt", "net"]
                    .iter()
                    .map(|n| {
                        std::fs::read_link(format!("/proc/{pid}/ns/{n}"))
                            .map(|p| p.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    })
                    .collect();
                let got: Vec<String> = r.stdout.lines().map(String::from).collect();
                expect(got == want, format!("exec sees {got:?}, init has {want:?}"))
            })
        }),
        Case::new(S, "exec/stopped-fails", |ctx| {
            with(ctx, &["/bin/true"], |b| {
                stopped(b)?;
                expect(
                    !b.runtime(&["exec", &b.id, "/bin/true"])?.success(),
                    "exec in a stopped container succeeded",
                )
            })
        }),
    ];
    for c in &mut v {
        if let Some(m) = lifecycle_mutant(&c.name) {
            c.mutation = crate::mutation::Mutation::Behave(m);
        }
        if c.name == "create/missing-executable-fails" {
            c.mutation = crate::mutation::Mutation::Config("run /bin/true", |cfg| {
                cfg["process"]["args"] = json!(["/bin/true"]);
            });
        }
    }
    for sig in ["KILL", "SIGKILL", "9"] {
        v.push(
            Case::new(S, format!("kill/signal-form-{sig}"), move |ctx| {
                with(ctx, &SLEEP, |b| {
                    running(b)?;
                    b.kill(sig)?.ok("kill")?;
                    b.wait_exit()?;
                    let s = b.status()?;
                    expect(s == "stopped", format!("status {s}"))
                })
            })
            .misbehave(M::Refuse("kill")),
        );
    }
    v
}

/// The runtime behaviour each lifecycle case checks, broken (the config-shaped cases keep
/// the default mutant, a reverted config).
fn lifecycle_mutant(name: &str) -> Option<M> {
    Some(match name {
        "create/state-created" | "start/state-running" | "start/exit-means-stopped" => {
            M::WrongStatus
        }
        "create/pid-file" => M::WrongPid,
        "create/program-not-run-before-start" => M::StartAtCreate,
        "start/twice-fails" | "start/stopped-fails" | "start/unknown-id-fails" => {
            M::Swallow("start")
        }
        "kill/created" | "kill/running" => M::Noop("kill"),
        "kill/stopped-fails" | "kill/unknown-id-fails" => M::Swallow("kill"),
        "kill/delivers-signal" => M::KillWithKill,
        "delete/stopped" => M::Noop("delete"),
        "delete/removes-cgroup" | "delete/force-running" => M::KeepCgroup,
        "delete/running-fails" | "delete/created-fails" => M::ForceDelete,
        "delete/unknown-id-fails" => M::Swallow("delete"),
        "state/unknown-id-fails" => M::Swallow("state"),
        "create/duplicate-id-fails"
        | "create/missing-bundle-fails"
        | "create/missing-config-fails"
        | "create/invalid-json-fails" => M::Swallow("create"),
        "create/unknown-properties-ignored" | "create/without-process" => M::Refuse("create"),
        "exec/running" => M::Noop("exec"),
        "exec/env-and-cwd" | "exec/user" | "exec/same-namespaces" => M::ExecOnHost,
        "exec/stopped-fails" => M::Swallow("exec"),
        _ => return None,
    })
}
