//! hako under Kubernetes' Container Runtime Interface: containerd 1.6's CRI plugin with a
//! runtime handler whose `BinaryName` is hako, driven the way the kubelet drives it, and the
//! same pod workflow through a `runc` handler as the oracle.
//!
//! The workflow (one pod per runtime handler): RunPodSandbox (the pause container and a pod
//! network from `clients/cri/podnet.sh`), CreateContainer + StartContainer (an app container
//! that joins the sandbox's network, IPC and UTS namespaces by `/proc/<pause>/ns/*` path),
//! ExecSync (output, stderr and exit code; the pod's hostname and interfaces; a ping across the
//! pod's own veth pair), ContainerStats (non-zero memory and CPU, read by the shim from the
//! cgroup hako made), UpdateContainerResources (`update --resources -`: the new memory limit
//! and CPU shares read back from the container's cgroup files on the host), StopContainer
//! (SIGTERM reaches the app, whose trap exits 7; then `kill --all ID 9`), RemoveContainer,
//! StopPodSandbox, RemovePodSandbox. Each step asserts what it observed; the observations and
//! the runtime verbs the shim used must then be the same for runc and hako.
//!
//! Nothing is left behind, pass or fail: the node's guard removes remaining pods through CRI
//! and stops containerd by pid; [`common::Scratch`] kills what still names its directory,
//! removes the test's cgroup parent, detaches the mounts and removes the directory; a last
//! guard removes the shims' sockets from the shared /run/containerd/s should a shim have died
//! without removing its own. On success the test also checks that CRI itself cleaned up
//! (containers, sandboxes, runtime state, network namespaces, cgroups).
//!
//! Setup, the client and the reasons behind each setting: `tests/clients/cri/README.md`.
//! Run alone with `HAKO_BIN=... cargo test -p hako-tests --test clients_cri`.

#[path = "../clients/common.rs"]
mod common;
#[path = "../clients/daemon.rs"]
mod daemon;
#[path = "../clients/cri/node.rs"]
mod node;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use common::{same, verbs, Runtime, Scratch};
use node::{int_field, str_field, Node, IMAGE};
use serde_json::{json, Value};

const MIB: i64 = 1 << 20;

/// The pod's hostname (PodSandboxConfig.hostname), the same for both handlers.
const HOSTNAME: &str = "hako-pod";

/// The app container: SIGTERM makes it exit 7 (proof that StopContainer's signal arrived); it
/// marks when the trap is in place, and the first ExecSync waits for that mark.
const APP: &str = "trap 'exit 7' TERM; touch /tmp/trap-set; sleep inf & wait";

/// What one handler's pod showed; compared between runc and hako.
#[derive(Debug, PartialEq)]
struct Seen {
    /// PodSandboxStatus: state and the IP the CNI plugin gave.
    sandbox: (String, String),
    /// ContainerStatus after StartContainer.
    app_state: String,
    /// Whether the app's memory cgroup is `<cgroup parent>/<container id>`.
    app_cgroup_is_the_pods: bool,
    /// For each namespace, whether the app shares the pause container's.
    shared_with_sandbox: Vec<(&'static str, bool)>,
    /// ExecSync of a script: its stdout.
    exec_stdout: String,
    /// ExecSync of a failing command: exit code, stdout, stderr.
    exec_failing: (i64, String, String),
    /// ContainerStats: which figures were above zero.
    stats_positive: Vec<(&'static str, bool)>,
    /// memory.limit_in_bytes before and after UpdateContainerResources.
    memory_limit: (i64, i64),
    /// cpu.shares before and after UpdateContainerResources.
    cpu_shares: (i64, i64),
    /// ContainerStatus after StopContainer: state and exit code.
    stopped: (String, i64),
    /// What CRI and the runtime left after RemoveContainer and RemovePodSandbox.
    left: Vec<String>,
}

fn expected() -> Seen {
    Seen {
        sandbox: ("SANDBOX_READY".into(), "192.0.2.2".into()),
        app_state: "CONTAINER_RUNNING".into(),
        app_cgroup_is_the_pods: true,
        shared_with_sandbox: vec![
            ("net", true),
            ("ipc", true),
            ("uts", true),
            ("pid", false),
            ("mnt", false),
        ],
        exec_stdout: format!("exec-ok\n{HOSTNAME}\neth0\nlo\npodnet-peer\nping-ok\n"),
        exec_failing: (3, String::new(), "to-stderr\n".into()),
        stats_positive: vec![
            ("memory.working_set_bytes", true),
            ("memory.usage_bytes", true),
            ("cpu.usage_core_nano_seconds", true),
        ],
        memory_limit: (128 * MIB, 64 * MIB),
        cpu_shares: (512, 256),
        stopped: ("CONTAINER_EXITED".into(), 7),
        left: vec![],
    }
}

/// Removes the named shim sockets from the shared /run/containerd/s on drop, after every other
/// guard: a shim removes its own socket when it exits cleanly, but not when it is killed.
struct ShimSockets(Vec<PathBuf>);

impl Drop for ShimSockets {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[test]
fn pod_workflow_matches_runc() -> Result<()> {
    let mut sockets = ShimSockets(Vec::new());
    let scratch = Scratch::new("cri")?;
    let scratch_dir = scratch.path().to_path_buf();
    let mut seen = Vec::new();
    let mut calls = Vec::new();
    let mut hako_calls = Vec::new();
    {
        let node = Node::start(&scratch)?;
        for rt in [Runtime::Runc, Runtime::Hako] {
            let result = pod_workflow(&node, &scratch, rt);
            for id in node.sandboxes() {
                sockets.0.push(node.shim_socket(&id)?);
            }
            let s = result.with_context(|| {
                format!(
                    "the pod workflow with the {} handler; runtime calls:\n{}",
                    rt.name(),
                    scratch.calls(rt).join("\n")
                )
            })?;
            seen.push(s);
            calls.push(verbs(&scratch.calls(rt)));
            if rt == Runtime::Hako {
                hako_calls = scratch.calls(rt);
            }
        }
        // CRI cleaned up after itself; the shims exited and removed their sockets.
        let left: Vec<&PathBuf> = sockets.0.iter().filter(|p| p.exists()).collect();
        ensure!(left.is_empty(), "shim sockets left: {left:?}");
    }
    let want = expected();
    for (rt, s) in [Runtime::Runc, Runtime::Hako].iter().zip(&seen) {
        ensure!(*s == want, "{} saw {s:#?}\nwant {want:#?}", rt.name());
    }
    same("what the pod showed", &seen[0], &seen[1])?;
    same("runtime verbs the shim used", &calls[0], &calls[1])?;
    for verb in ["create", "start", "exec", "update", "kill", "delete"] {
        ensure!(
            calls[1].iter().any(|v| v == verb),
            "CRI never called `{verb}`: {:?}",
            calls[1]
        );
    }
    // Without the global flags and with the scratch directory abbreviated, for the log.
    let hako_calls = hako_calls
        .iter()
        .map(|c| c.rsplit("--log-format json ").next().unwrap_or(c))
        .collect::<Vec<_>>()
        .join("\n")
        .replace(&*scratch_dir.to_string_lossy(), "$SCRATCH");
    for call in ["update --resources - ", "kill --all "] {
        ensure!(
            hako_calls.contains(call),
            "CRI never called `{call}`:\n{hako_calls}"
        );
    }
    eprintln!("hako's calls under CRI:\n{hako_calls}");
    drop(scratch);
    ensure!(!scratch_dir.exists(), "{} is left", scratch_dir.display());
    let procs = common::pids_naming(&scratch_dir.to_string_lossy());
    ensure!(procs.is_empty(), "processes left: {procs:?}");
    Ok(())
}

/// The kubelet's calls for one pod on handler `rt`, with the host-side checks between them.
fn pod_workflow(node: &Node, scratch: &Scratch, rt: Runtime) -> Result<Seen> {
    let parent = format!("{}/{}", scratch.cgroup_parent(), rt.name());
    let logs = scratch.join(&format!("pod-logs-{}", rt.name()));
    std::fs::create_dir_all(&logs)?;
    let pod_config = json!({
        "metadata": {"name": format!("pod-{}", rt.name()), "uid": format!("uid-{}", rt.name()), "namespace": "default"},
        "hostname": HOSTNAME,
        "log_directory": logs,
        "linux": {
            "cgroup_parent": parent,
            "security_context": {
                "namespace_options": {"network": "POD", "pid": "CONTAINER", "ipc": "POD"},
            },
        },
    });
    let pod = node.run_pod(&pod_config, rt.name())?;
    // The socket name is computed (see Node::shim_socket): check it while the shim lives, so
    // that the final "no socket left" check means something.
    let socket = node.shim_socket(&pod)?;
    ensure!(socket.exists(), "no shim socket at {}", socket.display());
    let pod_req = json!({"pod_sandbox_id": pod});
    let status = node.call(
        "RuntimeService/PodSandboxStatus",
        json!({"pod_sandbox_id": pod, "verbose": true}),
    )?;
    let sandbox = (
        str_field(&status["status"], "state")?,
        str_field(&status["status"]["network"], "ip")?,
    );
    let pause_pid = info_pid(&status)?;

    let created = node.call(
        "RuntimeService/CreateContainer",
        json!({
            "pod_sandbox_id": pod,
            "config": {
                "metadata": {"name": "app"},
                "image": {"image": IMAGE},
                "command": ["/bin/sh", "-c", APP],
                "log_path": "app.log",
                "linux": {
                    "resources": {"memory_limit_in_bytes": 128 * MIB, "cpu_shares": 512},
                    // As the kubelet sends it for a pod without shareProcessNamespace.
                    "security_context": {
                        "namespace_options": {"network": "POD", "pid": "CONTAINER", "ipc": "POD"},
                    },
                },
            },
            "sandbox_config": pod_config,
        }),
    )?;
    let app = str_field(&created, "container_id")?;
    let app_req = json!({"container_id": app});
    node.call("RuntimeService/StartContainer", app_req.clone())?;
    let status = node.call(
        "RuntimeService/ContainerStatus",
        json!({"container_id": app, "verbose": true}),
    )?;
    let app_state = str_field(&status["status"], "state")?;
    let app_pid = info_pid(&status)?;

    let memory_cgroup = cgroup_of(app_pid, "memory")?;
    let app_cgroup_is_the_pods = memory_cgroup == format!("{parent}/{app}");
    let shared_with_sandbox = ["net", "ipc", "uts", "pid", "mnt"]
        .into_iter()
        .map(|ns| Ok((ns, ns_inode(app_pid, ns)? == ns_inode(pause_pid, ns)?)))
        .collect::<Result<Vec<_>>>()?;

    let script = "until [ -e /tmp/trap-set ]; do sleep 0.1; done; echo exec-ok; hostname; \
                  ls /sys/class/net; ping -c 1 -W 5 192.0.2.1 >/dev/null && echo ping-ok";
    let exec = exec_sync(node, &app, &["/bin/sh", "-c", script])?;
    ensure!(exec.0 == 0, "ExecSync exited {}: {exec:?}", exec.0);
    let exec_stdout = exec.1;
    let exec_failing = exec_sync(node, &app, &["/bin/sh", "-c", "echo to-stderr >&2; exit 3"])?;

    let stats = node.call("RuntimeService/ContainerStats", app_req.clone())?;
    let positive = |v: &Value| int_field(&v["value"]).is_some_and(|n| n > 0);
    let stats_positive = vec![
        (
            "memory.working_set_bytes",
            positive(&stats["stats"]["memory"]["working_set_bytes"]),
        ),
        (
            "memory.usage_bytes",
            positive(&stats["stats"]["memory"]["usage_bytes"]),
        ),
        (
            "cpu.usage_core_nano_seconds",
            positive(&stats["stats"]["cpu"]["usage_core_nano_seconds"]),
        ),
    ];

    let memory_file = Path::new("/sys/fs/cgroup/memory")
        .join(memory_cgroup.trim_start_matches('/'))
        .join("memory.limit_in_bytes");
    let cpu_file = Path::new("/sys/fs/cgroup/cpu")
        .join(cgroup_of(app_pid, "cpu")?.trim_start_matches('/'))
        .join("cpu.shares");
    let memory_before = read_int(&memory_file)?;
    let cpu_before = read_int(&cpu_file)?;
    node.call(
        "RuntimeService/UpdateContainerResources",
        json!({
            "container_id": app,
            "linux": {"memory_limit_in_bytes": 64 * MIB, "cpu_shares": 256},
        }),
    )?;
    let memory_limit = (memory_before, read_int(&memory_file)?);
    let cpu_shares = (cpu_before, read_int(&cpu_file)?);

    node.call(
        "RuntimeService/StopContainer",
        json!({"container_id": app, "timeout": 10}),
    )?;
    let status = node.call("RuntimeService/ContainerStatus", app_req.clone())?;
    let stopped = (
        str_field(&status["status"], "state")?,
        int_field(&status["status"]["exit_code"]).context("exit_code")?,
    );
    node.call("RuntimeService/RemoveContainer", app_req)?;
    node.call("RuntimeService/StopPodSandbox", pod_req.clone())?;
    node.call("RuntimeService/RemovePodSandbox", pod_req)?;

    Ok(Seen {
        sandbox,
        app_state,
        app_cgroup_is_the_pods,
        shared_with_sandbox,
        exec_stdout,
        exec_failing,
        stats_positive,
        memory_limit,
        cpu_shares,
        stopped,
        left: leftovers(node, scratch, rt, &parent, &[&pod, &app])?,
    })
}

/// ExecSync with a 30 s timeout: (exit code, stdout, stderr).
fn exec_sync(node: &Node, id: &str, cmd: &[&str]) -> Result<(i64, String, String)> {
    let r = node.call(
        "RuntimeService/ExecSync",
        json!({"container_id": id, "cmd": cmd, "timeout": 30}),
    )?;
    Ok((
        int_field(&r["exit_code"]).context("exit_code")?,
        str_field(&r, "stdout")?,
        str_field(&r, "stderr")?,
    ))
}

/// The pid in a verbose status's `info` (a JSON document in a string).
fn info_pid(status: &Value) -> Result<i32> {
    let info: Value = serde_json::from_str(
        status["info"]["info"]
            .as_str()
            .with_context(|| format!("no verbose info in {status}"))?,
    )?;
    let pid = info["pid"]
        .as_i64()
        .with_context(|| format!("no pid in {info}"))?;
    Ok(i32::try_from(pid)?)
}

/// The cgroup v1 path of `pid` in the hierarchy that has `controller`.
fn cgroup_of(pid: i32, controller: &str) -> Result<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    text.lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            Some((f.next()?, f.next()?, f.next()?))
        })
        .find(|(_, controllers, _)| controllers.split(',').any(|c| c == controller))
        .map(|(_, _, path)| path.to_string())
        .with_context(|| format!("no {controller} cgroup for {pid}: {text}"))
}

/// The inode of `/proc/<pid>/ns/<ns>`: equal inodes, same namespace (namespaces(7)).
fn ns_inode(pid: i32, ns: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/ns/{ns}");
    Ok(std::fs::metadata(&path)
        .with_context(|| path.clone())?
        .ino())
}

fn read_int(path: &Path) -> Result<i64> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    text.trim()
        .parse()
        .with_context(|| format!("{}: {text:?}", path.display()))
}

/// After the pod's removal: containers and sandboxes CRI still lists, state left in the
/// runtime's root, pinned network namespaces, mounts (rootfs, shm, netns) under the scratch
/// directory, and the cgroups of `ids` in any hierarchy.
fn leftovers(
    node: &Node,
    scratch: &Scratch,
    rt: Runtime,
    parent: &str,
    ids: &[&str],
) -> Result<Vec<String>> {
    let mut left = Vec::new();
    let containers = node.call("RuntimeService/ListContainers", json!({}))?;
    for c in containers["containers"].as_array().into_iter().flatten() {
        left.push(format!("container {}", c["id"]));
    }
    let pods = node.call("RuntimeService/ListPodSandbox", json!({}))?;
    for p in pods["items"].as_array().into_iter().flatten() {
        left.push(format!("sandbox {}", p["id"]));
    }
    // The shim keeps each namespace's containers in <root>/<namespace>/<id>.
    let root = node.runtime_root(rt);
    for ns in read_names(&root) {
        for id in read_names(&root.join(&ns)) {
            left.push(format!("runtime state {ns}/{id}"));
        }
    }
    for n in read_names(&node.netns_dir()) {
        left.push(format!("netns {n}"));
    }
    for m in common::mounts_under(&scratch.path().to_string_lossy()) {
        left.push(format!("mount {m}"));
    }
    for h in read_names(Path::new("/sys/fs/cgroup")) {
        for id in ids {
            let dir = Path::new("/sys/fs/cgroup")
                .join(&h)
                .join(parent.trim_start_matches('/'))
                .join(id);
            if dir.exists() {
                left.push(format!("cgroup {}", dir.display()));
            }
        }
    }
    Ok(left)
}

fn read_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}
