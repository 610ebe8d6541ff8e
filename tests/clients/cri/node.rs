//! A Kubernetes node in miniature for the CRI test: containerd 1.6 with its CRI plugin, two
//! runtime handlers (`runc`, the oracle, and `hako`) that both go through
//! `containerd-shim-runc-v2` with `BinaryName` pointing at the scratch directory's logging
//! wrapper, a busybox image imported offline, and a pod network that stays inside each pod.
//! The kubelet's side is [`Node::call`]: one CRI call through `cri_client.py` (gRPC over the
//! daemon's unix socket, messages from `cri.proto`).
//!
//! Why each setting (containerd's CRI plugin config, version 2):
//! - `restrict_oom_score_adj`: the sandbox asks for oom_score_adj -998, which this machine
//!   cannot set below the daemon's own score (no CAP_SYS_RESOURCE); the option clamps it.
//! - `netns_mounts_under_state_dir`: the pods' network namespaces are pinned under the scratch
//!   directory instead of /var/run/netns, so a failed run cannot leave one in a shared place.
//! - `sandbox_image` is the imported busybox image, whose command is `sleep inf`: the pause
//!   container. Nothing is ever pulled.
//! - CNI: `bin_dir` holds Debian's `loopback` (the CRI plugin always adds a loopback network) and
//!   `podnet.sh`, a plugin that puts a veth pair with both ends inside the pod's namespace.
//! - Each handler's `Root` (the runtime's `--root`) is under the scratch directory.
//!
//! Dropping the node removes whatever pods are left through CRI itself (so containerd tears
//! down their networks, mounts and cgroups as it would on a real node), then stops the daemon.
//! The [`Scratch`] guard, which must outlive the node, finishes off anything the daemon left.

use std::cell::RefCell;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

use crate::common::{ensure_installed, require_runc, setup_snippet, Runtime, Scratch};
use crate::daemon::Daemon;

/// The image every container of the test runs (and the sandbox image): busybox, `sleep inf`.
pub const IMAGE: &str = "localhost/hako-busybox:cri";

/// The containerd namespace the CRI plugin works in.
const K8S_NAMESPACE: &str = "k8s.io";

/// Bound on one CRI call; ExecSync and StopContainer carry their own, shorter, timeouts.
const CALL_TIMEOUT: Duration = Duration::from_secs(90);

/// The directory of this file: cri.proto, cri_client.py, podnet.sh.
fn here() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/cri")
}

/// containerd with the CRI plugin, started in a scratch directory.
pub struct Node<'a> {
    scratch: &'a Scratch,
    /// Sandboxes this test started, for the drop-time cleanup and the shim-socket check.
    sandboxes: RefCell<Vec<String>>,
    daemon: Daemon,
}

impl<'a> Node<'a> {
    /// Installs what is missing, writes the configuration, starts containerd, imports the image
    /// into `k8s.io` and compiles `cri.proto` for the client.
    pub fn start(scratch: &'a Scratch) -> Result<Self> {
        ensure_installed(&[
            ("/usr/bin/containerd", "containerd"),
            ("/usr/bin/ctr", "containerd"),
            ("/usr/bin/containerd-shim-runc-v2", "containerd"),
            ("/usr/lib/cni/loopback", "containernetworking-plugins"),
            ("/usr/bin/protoc", "protobuf-compiler"),
            (
                "/usr/lib/python3/dist-packages/grpc/__init__.py",
                "python3-grpcio",
            ),
            (
                "/usr/lib/python3/dist-packages/google/protobuf/__init__.py",
                "python3-protobuf",
            ),
            ("/usr/bin/nsenter", "util-linux"),
            ("/usr/sbin/ip", "iproute2"),
        ])?;
        require_runc()?;
        Self::write_cni(scratch)?;
        let config = Self::write_config(scratch)?;
        compile_proto(scratch)?;
        let mut cmd = scratch.command("/usr/bin/containerd");
        cmd.arg("--config").arg(&config);
        // The CRI plugin starts its services (event monitor, CNI syncer, streaming server)
        // before containerd reports that it booted.
        let daemon = Daemon::start(
            cmd,
            "containerd",
            &scratch.join("containerd.log"),
            "containerd successfully booted",
        )?;
        let node = Node {
            scratch,
            sandboxes: RefCell::new(Vec::new()),
            daemon,
        };
        node.import_image()?;
        Ok(node)
    }

    fn sock(scratch: &Scratch) -> PathBuf {
        scratch.join("containerd.sock")
    }

    /// The `--root` the shim gives runtime `rt`.
    pub fn runtime_root(&self, rt: Runtime) -> PathBuf {
        self.scratch.join(&format!("rt-root-{}", rt.name()))
    }

    /// Where the CRI plugin pins the pods' network namespaces.
    pub fn netns_dir(&self) -> PathBuf {
        self.scratch.join("state/io.containerd.grpc.v1.cri/netns")
    }

    /// The path of the shim's socket for sandbox `id`: containerd 1.6 names it after the
    /// SHA-256 of `<containerd address>/<namespace>/<id>` under the shared /run/containerd/s.
    pub fn shim_socket(&self, id: &str) -> Result<PathBuf> {
        let key = format!(
            "{}/{K8S_NAMESPACE}/{id}",
            Self::sock(self.scratch).display()
        );
        Ok(Path::new("/run/containerd/s").join(sha256_hex(key.as_bytes())?))
    }

    /// The sandboxes started through [`Node::run_pod`].
    pub fn sandboxes(&self) -> Vec<String> {
        self.sandboxes.borrow().clone()
    }

    /// The daemon's recent complaints, for error messages.
    pub fn log_tail(&self) -> String {
        self.daemon.log_tail()
    }

    fn write_cni(scratch: &Scratch) -> Result<()> {
        let bin = scratch.join("cni-bin");
        let conf = scratch.join("cni-conf");
        std::fs::create_dir_all(&bin)?;
        std::fs::create_dir_all(&conf)?;
        std::os::unix::fs::symlink("/usr/lib/cni/loopback", bin.join("loopback"))?;
        let plugin = bin.join("hako-podnet");
        std::fs::copy(here().join("podnet.sh"), &plugin)?;
        std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755))?;
        std::fs::write(
            conf.join("10-hako-pod.conflist"),
            r#"{"cniVersion":"1.0.0","name":"hako-pod","plugins":[{"type":"hako-podnet"}]}"#,
        )?;
        Ok(())
    }

    fn write_config(scratch: &Scratch) -> Result<PathBuf> {
        let s = |rel: &str| scratch.join(rel).to_string_lossy().into_owned();
        let cri = r#"plugins."io.containerd.grpc.v1.cri""#;
        let mut runtimes = String::new();
        for rt in [Runtime::Runc, Runtime::Hako] {
            let wrapper = scratch.wrapper(rt)?;
            let root = scratch.join(&format!("rt-root-{}", rt.name()));
            std::fs::create_dir_all(&root)?;
            // The handler is `hako setup containerd`'s snippet, plus the shim's state root.
            let snippet = setup_snippet("containerd", rt.name(), &wrapper)?;
            let binary_line = format!("    BinaryName = \"{}\"\n", wrapper.display());
            ensure!(snippet.contains(&binary_line), "setup snippet: {snippet}");
            runtimes.push_str(&snippet.replace(
                &binary_line,
                &format!("{binary_line}    Root = \"{}\"\n", root.display()),
            ));
        }
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"

[grpc]
  address = "{sock}"

[ttrpc]
  address = "{sock}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"

[{cri}]
  sandbox_image = "{IMAGE}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
{runtimes}
  [{cri}.cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{cni_conf}"
    max_conf_num = 1
"#,
            root = s("root"),
            state = s("state"),
            sock = s("containerd.sock"),
            opt = s("opt"),
            cni_bin = s("cni-bin"),
            cni_conf = s("cni-conf"),
        );
        let path = scratch.join("config.toml");
        std::fs::write(&path, config)?;
        Ok(path)
    }

    /// Builds a docker-archive tarball of a busybox rootfs (one uncompressed layer, `Cmd`
    /// `sleep inf`) and imports it into the CRI plugin's namespace, as `kind` side-loads images.
    fn import_image(&self) -> Result<()> {
        let dir = self.scratch.join("image");
        std::fs::create_dir_all(&dir)?;
        let layer = self.scratch.rootfs_tar()?;
        std::fs::rename(&layer, dir.join("layer.tar"))?;
        let diff_id = sha256_hex(&std::fs::read(dir.join("layer.tar"))?)?;
        let config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Cmd": ["/bin/sleep", "inf"],
                "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
            },
            "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff_id}")]},
        });
        std::fs::write(dir.join("config.json"), config.to_string())?;
        let manifest = serde_json::json!([{
            "Config": "config.json",
            "RepoTags": [IMAGE],
            "Layers": ["layer.tar"],
        }]);
        std::fs::write(dir.join("manifest.json"), manifest.to_string())?;
        let tar = self.scratch.join("image.tar");
        let mut c = Command::new("tar");
        c.arg("-C").arg(&dir).arg("-cf").arg(&tar).args([
            "manifest.json",
            "config.json",
            "layer.tar",
        ]);
        self.scratch.run(c)?.ok().context("tar the image")?;
        let mut c = self.scratch.command("/usr/bin/ctr");
        c.arg("--address")
            .arg(Self::sock(self.scratch))
            .args(["--namespace", K8S_NAMESPACE, "image", "import"])
            .arg(&tar);
        self.scratch
            .run(c)?
            .ok()
            .with_context(|| format!("ctr image import; log:\n{}", self.log_tail()))?;
        let status = self.call(
            "ImageService/ImageStatus",
            serde_json::json!({"image": {"image": IMAGE}}),
        )?;
        let tags = &status["image"]["repo_tags"];
        ensure!(
            tags.as_array()
                .is_some_and(|t| t.iter().any(|t| t == IMAGE)),
            "the CRI plugin does not see the imported image: {status}"
        );
        Ok(())
    }

    /// One CRI call, `Service/Method` with the request as JSON (proto field names); the
    /// response as JSON, int64 fields as strings (proto3's JSON mapping).
    pub fn call(&self, method: &str, request: Value) -> Result<Value> {
        let mut c = self.scratch.command("/usr/bin/python3");
        c.arg(here().join("cri_client.py"))
            .arg(Self::sock(self.scratch))
            .arg(method)
            .arg(CALL_TIMEOUT.as_secs().to_string())
            .arg(request.to_string())
            .env("PYTHONPATH", self.scratch.join("gen"))
            .env("PYTHONDONTWRITEBYTECODE", "1");
        let r = crate::common::output_with_timeout(c, CALL_TIMEOUT + Duration::from_secs(10))?;
        if r.code != 0 {
            bail!(
                "CRI {method} failed ({}): {}\ncontainerd log:\n{}",
                r.code,
                r.stderr.trim(),
                self.log_tail()
            );
        }
        serde_json::from_str(&r.stdout)
            .with_context(|| format!("CRI {method}: response {:?}", r.stdout))
    }

    /// RunPodSandbox; remembers the sandbox for cleanup.
    pub fn run_pod(&self, config: &Value, handler: &str) -> Result<String> {
        let r = self.call(
            "RuntimeService/RunPodSandbox",
            serde_json::json!({"config": config, "runtime_handler": handler}),
        )?;
        let id = str_field(&r, "pod_sandbox_id")?;
        self.sandboxes.borrow_mut().push(id.clone());
        Ok(id)
    }

    /// Stops and removes every pod the daemon knows, ignoring errors (drop-time cleanup).
    fn remove_all_pods(&self) {
        let Ok(list) = self.call("RuntimeService/ListPodSandbox", serde_json::json!({})) else {
            return;
        };
        for pod in list["items"].as_array().into_iter().flatten() {
            let Some(id) = pod["id"].as_str() else {
                continue;
            };
            let req = serde_json::json!({"pod_sandbox_id": id});
            let _ = self.call("RuntimeService/StopPodSandbox", req.clone());
            let _ = self.call("RuntimeService/RemovePodSandbox", req);
        }
    }
}

impl Drop for Node<'_> {
    fn drop(&mut self) {
        self.remove_all_pods();
        // Then the daemon field drops: SIGTERM, SIGKILL after a grace period.
    }
}

/// Compiles cri.proto into `scratch/gen/cri_pb2.py` with Debian's protoc, which matches
/// Debian's python3-protobuf runtime.
fn compile_proto(scratch: &Scratch) -> Result<()> {
    let gen = scratch.join("gen");
    std::fs::create_dir_all(&gen)?;
    let mut c = scratch.command("/usr/bin/protoc");
    c.arg("-I")
        .arg(here())
        .arg(format!("--python_out={}", gen.display()))
        .arg(here().join("cri.proto"));
    scratch.run(c)?.ok().context("protoc cri.proto")?;
    Ok(())
}

/// The hex SHA-256 of `data`, by coreutils' sha256sum (the test crate has no hash library).
fn sha256_hex(data: &[u8]) -> Result<String> {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("spawn sha256sum")?;
    child
        .stdin
        .take()
        .context("sha256sum stdin")?
        .write_all(data)?;
    let out = child.wait_with_output()?;
    ensure!(out.status.success(), "sha256sum failed");
    let text = String::from_utf8(out.stdout)?;
    let hex = text.split_whitespace().next().unwrap_or_default();
    ensure!(hex.len() == 64, "sha256sum printed {text:?}");
    Ok(hex.to_string())
}

/// `v[key]` as a string.
pub fn str_field(v: &Value, key: &str) -> Result<String> {
    v[key]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("no string {key:?} in {v}"))
}

/// A proto3-JSON integer (int64 and uint64 arrive as strings, smaller ones as numbers).
pub fn int_field(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}
