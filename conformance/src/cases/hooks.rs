//! config.md "POSIX-platform Hooks" and runtime.md "Lifecycle": each of the six hook lists runs
//! at its moment, in order, with the container state on stdin, its args/env, its timeout, and
//! the failure handling the spec asks for (prestart/createRuntime/createContainer/
//! startContainer failures are errors; poststart and poststop failures are warnings and the
//! remaining hooks still run).
//!
//! Every hook is busybox `sh` appending its tag to `/.conformance/hooks.log` and saving its
//! stdin to `/.conformance/TAG.state`. Hooks in the runtime namespace, and createContainer
//! (container namespace, before pivot_root, so host paths still resolve), use the rootfs's
//! host path; startContainer runs after pivot_root and uses the in-container path.

use crate::bundle::Bundle;
use crate::case::{expect, Case, Outcome};
use crate::runtime::Kind;
use anyhow::{ensure, Result};
use serde_json::{json, Value};

const S: &str = "hooks";
const ALL: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

fn dir(b: &Bundle, list: &str) -> String {
    if list == "startContainer" {
        "/.conformance".to_string()
    } else {
        b.rootfs()
            .join(".conformance")
            .to_string_lossy()
            .into_owned()
    }
}

/// A hook for `list` that logs `tag`, saves its stdin, then runs `extra`.
fn hook(b: &Bundle, list: &str, tag: &str, extra: &str) -> Value {
    let d = dir(b, list);
    json!({
        "path": "/bin/busybox",
        "args": ["busybox", "sh", "-c", format!("echo {tag} >> {d}/hooks.log; /bin/busybox cat > {d}/{tag}.state; {extra}")]
    })
}

fn add(b: &mut Bundle, list: &str, h: Value) {
    if !b.config["hooks"].is_object() {
        b.config["hooks"] = json!({});
    }
    if !b.config["hooks"][list].is_array() {
        b.config["hooks"][list] = json!([]);
    }
    if let Some(a) = b.config["hooks"][list].as_array_mut() {
        a.push(h);
    }
}

fn log(b: &Bundle) -> Vec<String> {
    std::fs::read_to_string(b.rootfs().join(".conformance/hooks.log"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

fn saved_state(b: &Bundle, tag: &str) -> Result<Value> {
    let text = std::fs::read_to_string(b.rootfs().join(format!(".conformance/{tag}.state")))?;
    Ok(serde_json::from_str(&text)?)
}

/// create, start, wait for exit, delete: the whole lifecycle, each step required to work.
fn full_lifecycle(b: &Bundle) -> Result<()> {
    b.create()?.ok("create")?;
    b.start()?.ok("start")?;
    b.wait_exit()?;
    b.delete(false)?.ok("delete")?;
    Ok(())
}

fn expected_status(list: &str) -> &'static str {
    match list {
        "prestart" | "createRuntime" | "createContainer" => "creating",
        "startContainer" => "created",
        "poststart" => "running",
        _ => "stopped",
    }
}

/// The hook cases.
pub fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for list in ALL {
        v.push(Case::new(S, format!("{list}/runs"), move |ctx| {
            let mut b = ctx.bundle()?;
            let h = hook(&b, list, list, "");
            add(&mut b, list, h);
            full_lifecycle(&b)?;
            let l = log(&b);
            expect(l == [list], format!("hooks log {l:?}"))
        }));
        let mut state_case = Case::new(S, format!("{list}/state-on-stdin"), move |ctx| {
            let mut b = ctx.bundle()?;
            let h = hook(&b, list, list, "");
            add(&mut b, list, h);
            full_lifecycle(&b)?;
            let st = saved_state(&b, list)?;
            ensure!(st["id"] == b.id.as_str(), "id {}", st["id"]);
            ensure!(st["bundle"] == b.path().as_str(), "bundle {}", st["bundle"]);
            ensure!(
                st["ociVersion"].is_string(),
                "ociVersion {}",
                st["ociVersion"]
            );
            if list != "poststop" {
                ensure!(st["pid"].as_i64().unwrap_or(0) > 0, "pid {}", st["pid"]);
            }
            let want = expected_status(list);
            expect(
                st["status"] == want,
                format!("status {} (want {want})", st["status"]),
            )
        });
        let crun = match list {
            "prestart" | "createRuntime" => {
                Some("crun 1.8 passes status \"created\" to prestart/createRuntime hooks")
            }
            "createContainer" => Some("crun 1.8 passes pid 0 to createContainer hooks"),
            "startContainer" => Some("crun 1.8 passes bundle \"/\" to startContainer hooks"),
            _ => None,
        };
        if let Some(reason) = crun {
            state_case = state_case.note(Kind::Crun, reason);
        }
        if list == "poststart" {
            state_case = state_case.note(
                Kind::Runc,
                "runc 1.1 runs poststart hooks at the end of create, so they see status \"created\"",
            );
        }
        v.push(state_case);
    }
    v.push(Case::new(S, "order/all-six", |ctx| {
        let mut b = ctx.bundle()?;
        for list in ALL {
            let h = hook(&b, list, list, "");
            add(&mut b, list, h);
        }
        full_lifecycle(&b)?;
        let l = log(&b);
        let pos = |t: &str| l.iter().position(|x| x == t);
        let order = [
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop",
        ]
        .map(pos);
        let increasing = order.iter().all(Option::is_some) && order.windows(2).all(|w| w[0] < w[1]);
        let prestart_early = pos("prestart").is_some() && pos("prestart") < pos("createContainer");
        expect(
            increasing && prestart_early && l.len() == 6,
            format!("hooks ran as {l:?}"),
        )
    })
    .note(
        Kind::Runc,
        "runc 1.1 runs poststart hooks at the end of create, before start and its startContainer hooks",
    )
    .note(
        Kind::Crun,
        "crun runs poststart hooks without waiting for the init's startContainer hooks",
    ));
    v.push(Case::new(S, "order/within-a-list", |ctx| {
        let mut b = ctx.bundle()?;
        for tag in ["first", "second", "third"] {
            let h = hook(&b, "createRuntime", tag, "");
            add(&mut b, "createRuntime", h);
        }
        full_lifecycle(&b)?;
        let l = log(&b);
        expect(
            l == ["first", "second", "third"],
            format!("hooks ran as {l:?}"),
        )
    }));
    v.push(Case::new(S, "args-and-env", |ctx| {
        let mut b = ctx.bundle()?;
        let out = b.rootfs().join(".conformance/argenv");
        let h = json!({
            "path": "/bin/busybox",
            "args": ["busybox", "sh", "-c", format!("echo \"$0|$1|$CONF_HOOK\" > {}", out.display()), "zero", "one two"],
            "env": ["CONF_HOOK=hook-env"]
        });
        add(&mut b, "createRuntime", h);
        full_lifecycle(&b)?;
        let got = std::fs::read_to_string(&out)?;
        expect(got.trim() == "zero|one two|hook-env", format!("hook saw {:?}", got.trim()))
    }));
    for list in ["prestart", "createRuntime", "createContainer"] {
        v.push(Case::new(
            S,
            format!("{list}/failure-fails-create"),
            move |ctx| {
                let mut b = ctx.bundle()?;
                let h = hook(&b, list, list, "exit 3");
                add(&mut b, list, h);
                let c = b.create()?;
                if c.success() {
                    // prestart may legitimately run at start (deprecated wording): then start fails.
                    ensure!(
                        list == "prestart",
                        "create succeeded despite a failing {list} hook"
                    );
                    ensure!(
                        !b.start()?.success(),
                        "create and start succeeded despite a failing prestart hook"
                    );
                    return Ok(Outcome::Pass);
                }
                expect(
                    !b.runtime(&["state", &b.id])?.success(),
                    "a container was left behind",
                )
            },
        ));
    }
    v.push(Case::new(S, "startContainer/failure-fails-start", |ctx| {
        let mut b = ctx.bundle()?;
        b.args(&["/bin/sh", "-c", "echo ran > /.conformance/ran"]);
        let h = hook(&b, "startContainer", "startContainer", "exit 3");
        add(&mut b, "startContainer", h);
        b.create()?.ok("create")?;
        let started = b.start()?.success();
        let _ = b.wait_exit();
        let ran = b.rootfs().join(".conformance/ran").exists();
        expect(
            !started && !ran,
            format!("start succeeded: {started}; the program ran: {ran}"),
        )
    })
    .note(
        Kind::Runc,
        "runc start returns before its init runs startContainer hooks: the failure stops the container but start reports success",
    )
    .note(Kind::Crun, "crun start reports success although a startContainer hook failed"));
    v.push(
        Case::new(S, "poststart/failure-is-a-warning", |ctx| {
            let mut b = ctx.bundle()?;
            b.args(&["/bin/sleep", "600"]);
            let h1 = hook(&b, "poststart", "p1", "exit 3");
            let h2 = hook(&b, "poststart", "p2", "");
            add(&mut b, "poststart", h1);
            add(&mut b, "poststart", h2);
            b.create()?.ok("create")?;
            let s = b.start()?;
            ensure!(
                s.success(),
                "start failed because of a poststart hook: {}",
                s.stderr.trim()
            );
            let l = log(&b);
            ensure!(l == ["p1", "p2"], "hooks ran as {l:?}");
            let st = b.status()?;
            expect(st == "running", format!("status {st}"))
        })
        .note(
            Kind::Runc,
            "runc 1.1 runs poststart hooks at the end of create and fails create when one fails",
        )
        .note(Kind::Crun, "crun fails start when a poststart hook fails"),
    );
    v.push(
        Case::new(S, "poststop/failure-is-a-warning", |ctx| {
            let mut b = ctx.bundle()?;
            let h1 = hook(&b, "poststop", "q1", "exit 3");
            let h2 = hook(&b, "poststop", "q2", "");
            add(&mut b, "poststop", h1);
            add(&mut b, "poststop", h2);
            b.create()?.ok("create")?;
            b.start()?.ok("start")?;
            b.wait_exit()?;
            let d = b.delete(false)?;
            ensure!(
                d.success(),
                "delete failed because of a poststop hook: {}",
                d.stderr.trim()
            );
            ensure!(
                !b.runtime(&["state", &b.id])?.success(),
                "the container survived delete"
            );
            let l = log(&b);
            expect(l == ["q1", "q2"], format!("hooks ran as {l:?}"))
        })
        .note(
            Kind::Runc,
            "runc stops running poststop hooks at the first failure and fails delete",
        ),
    );
    v.push(Case::new(S, "timeout/kills-hook-and-fails", |ctx| {
        let mut b = ctx.bundle()?;
        let mut h = hook(&b, "createRuntime", "slow", "/bin/busybox sleep 60");
        h["timeout"] = json!(1);
        add(&mut b, "createRuntime", h);
        let c = b.create()?;
        ensure!(
            !c.success(),
            "create succeeded although the hook overran its timeout"
        );
        ensure!(
            c.elapsed.as_secs() < 20,
            "create took {:?} for a 1 s hook timeout",
            c.elapsed
        );
        expect(
            !b.runtime(&["state", &b.id])?.success(),
            "a container was left behind",
        )
    }));
    v.push(Case::reject(S, "missing-hook-binary-fails", |b| {
        add(b, "createRuntime", json!({"path": "/no/such/hook"}));
        Ok(None)
    }));
    v
}
