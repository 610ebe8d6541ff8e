//! The configs podman, containerd, docker and CRI generated on this machine with runc (copied
//! from `shared/reference/clients/` into `tests/data/clients/`) create and run a container, with
//! their paths adapted to the test's own bundle. CRI's config joins a sandbox's namespaces:
//! here a first container plays the pause container. Also run against runc.

use anyhow::{ensure, Context, Result};
use hako_tests::{both, Bundle, Runtime};
use serde_json::{json, Value};

fn load(name: &str) -> Result<Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/clients")
        .join(name);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// Points the recorded config at `b`'s rootfs and temp files, and makes it print a marker.
fn adapt(b: &mut Bundle, mut c: Value, sandbox_pid: Option<i64>) -> Result<()> {
    c["root"] = json!({"path": "rootfs", "readonly": false});
    c["process"]["args"] = json!(["/bin/sh", "-c", "echo client-config-ok; hostname"]);
    c["process"]["terminal"] = json!(false);
    c["linux"]["cgroupsPath"] = json!(b.cgroup_path());
    // Bind sources were the engine's own files: make stand-ins inside the test's bundle.
    let files = b.path().join("engine-files");
    std::fs::create_dir_all(&files)?;
    for (i, m) in c["mounts"]
        .as_array_mut()
        .context("mounts")?
        .iter_mut()
        .enumerate()
    {
        let is_bind = m["type"] == "bind"
            || m["options"]
                .as_array()
                .is_some_and(|o| o.iter().any(|x| x == "bind" || x == "rbind"));
        if is_bind {
            let dest = m["destination"].as_str().unwrap_or_default().to_string();
            let src = files.join(format!("m{i}"));
            if dest == "/dev/shm" {
                std::fs::create_dir_all(&src)?;
            } else {
                std::fs::write(&src, "stand-in\n")?;
            }
            m["source"] = json!(src);
        }
    }
    // docker's prestart hook runs dockerd's own binary (libnetwork-setkey): a stand-in hook.
    if let Some(hooks) = c.get_mut("hooks").and_then(|h| h.as_object_mut()) {
        for list in hooks.values_mut() {
            *list = json!([{"path": "/bin/true", "args": ["true"]}]);
        }
    }
    for ns in c["linux"]["namespaces"]
        .as_array_mut()
        .context("namespaces")?
    {
        if let (Some(path), Some(pid)) = (
            ns.get("path").and_then(|p| p.as_str()).map(str::to_string),
            sandbox_pid,
        ) {
            let kind = path.rsplit('/').next().unwrap_or_default().to_string();
            ns["path"] = json!(format!("/proc/{pid}/ns/{kind}"));
        }
    }
    b.config = c;
    Ok(())
}

fn engine_configs_run(rt: Runtime) -> Result<()> {
    for name in [
        "config-podman.json",
        "config-containerd.json",
        "config-docker.json",
    ] {
        let mut b = Bundle::new(rt, "client", &["true"])?;
        adapt(&mut b, load(name)?, None)?;
        let r = b.run()?;
        ensure!(
            r.code == 0 && r.stdout.starts_with("client-config-ok\n"),
            "{name}: {r:?}"
        );
    }
    Ok(())
}
both!(engine_configs_run);

/// CRI: an app container joins the sandbox's net, ipc and uts namespaces by /proc path.
fn cri_config_joins_the_sandbox(rt: Runtime) -> Result<()> {
    let mut pause = Bundle::new(rt, "sandbox", &["sleep", "1000"])?;
    pause.config["hostname"] = json!("sandbox-host");
    pause.create()?.ok()?;
    pause.rt(&["start", &pause.id])?.ok()?;
    let pid = pause.state()?["pid"].as_i64().context("sandbox pid")?;
    let mut app = Bundle::new(rt, "cri-app", &["true"])?;
    adapt(&mut app, load("config-cri.json")?, Some(pid))?;
    app.config["process"]["args"] = json!([
        "sh",
        "-c",
        "hostname; readlink /proc/self/ns/net; readlink /proc/self/ns/ipc"
    ]);
    let r = app.run()?.ok()?;
    let lines: Vec<&str> = r.stdout.lines().collect();
    ensure!(lines.first() == Some(&"sandbox-host"), "joined uts: {r:?}");
    for (i, kind) in ["net", "ipc"].iter().enumerate() {
        let want = std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))?;
        ensure!(
            lines.get(i + 1) == Some(&&*want.to_string_lossy()),
            "joined {kind}: {r:?}"
        );
    }
    Ok(())
}
both!(cri_config_joins_the_sandbox);
