//! The integration-test harness: busybox bundles, a runtime under test (hako, or runc as the
//! oracle), and guards that clean up containers, cgroups and directories even when a test fails.
//!
//! Each test makes its own container id, `--root` directory and absolute `cgroupsPath`
//! (`/hako-test-<id>`, outside the machine's `process_api` tree), so tests run in parallel.
//! The binary under test is `$HAKO_BIN`, else `target/debug/hako` of this workspace.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// Which runtime binary a test drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// The hako binary under test.
    Hako,
    /// Debian's runc, the behaviour oracle.
    Runc,
}

impl Runtime {
    /// Path of the binary.
    pub fn binary(self) -> PathBuf {
        match self {
            Runtime::Hako => std::env::var_os("HAKO_BIN")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/hako")
                }),
            Runtime::Runc => PathBuf::from("runc"),
        }
    }

    /// Short name for ids.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Hako => "hako",
            Runtime::Runc => "runc",
        }
    }
}

/// Whether the oracle is installed (tests against runc are skipped with a message otherwise).
pub fn runc_available() -> bool {
    Command::new("runc")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A bundle directory with a busybox rootfs and a config, plus the runtime's `--root`; deleting
/// the container and removing everything on drop.
pub struct Bundle {
    /// The runtime under test.
    pub runtime: Runtime,
    /// The container id (unique per test).
    pub id: String,
    dir: tempfile::TempDir,
    /// The config that [`Bundle::write_config`] writes.
    pub config: Value,
    /// A command every runtime invocation is run under (empty: none), e.g. `unshare -m
    /// --propagation private` for a test whose runtime may act on the caller's mount namespace.
    pub wrapper: Vec<String>,
}

/// Output of one runtime invocation.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 if killed).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Fails unless the command exited 0.
    pub fn ok(self) -> Result<Self> {
        if self.code != 0 {
            bail!(
                "exit {}: stdout {:?} stderr {:?}",
                self.code,
                self.stdout,
                self.stderr
            );
        }
        Ok(self)
    }
}

/// Makes a busybox rootfs in `root`: `/bin/busybox` and a symlink per applet.
pub fn busybox_rootfs(root: &Path) -> Result<()> {
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin)?;
    for d in ["proc", "sys", "dev", "etc", "tmp", "root"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    std::fs::copy("/bin/busybox", bin.join("busybox"))
        .context("copy /bin/busybox (apt install busybox-static)")?;
    let list = Command::new("/bin/busybox").arg("--list").output()?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", bin.join(applet))?;
        }
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )?;
    std::fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    Ok(())
}

/// The base config: runc's `spec` defaults without a terminal, running `args`.
pub fn base_config(args: &[&str], cgroups_path: &str) -> Value {
    let caps = json!([
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETFCAP",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE"
    ]);
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "box",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}
        ],
        "linux": {
            "cgroupsPath": cgroups_path,
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

impl Bundle {
    /// A new bundle for `runtime` running `args`; `tag` names the test in the id.
    pub fn new(runtime: Runtime, tag: &str, args: &[&str]) -> Result<Self> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let id = format!("t{}-{}-{}-{}", std::process::id(), n, runtime.name(), tag);
        let dir = tempfile::Builder::new().prefix("hako-test-").tempdir()?;
        busybox_rootfs(&dir.path().join("rootfs"))?;
        std::fs::create_dir_all(dir.path().join("state"))?;
        let config = base_config(args, &format!("/hako-test-{id}"));
        Ok(Bundle {
            runtime,
            id,
            dir,
            config,
            wrapper: Vec::new(),
        })
    }

    /// The bundle directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The rootfs directory.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// The `--root` state directory for this test.
    pub fn state_root(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The absolute cgroup path in the config.
    pub fn cgroup_path(&self) -> String {
        self.config["linux"]["cgroupsPath"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Writes `config.json` from [`Bundle::config`].
    pub fn write_config(&self) -> Result<()> {
        std::fs::write(
            self.path().join("config.json"),
            serde_json::to_vec_pretty(&self.config)?,
        )?;
        Ok(())
    }

    /// A runtime command with `--root` set.
    pub fn cmd(&self) -> Command {
        let mut c = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(self.runtime.binary());
                c
            }
            None => Command::new(self.runtime.binary()),
        };
        c.arg("--root").arg(self.state_root());
        c
    }

    /// Runs the runtime with `args` (after `--root`), with a timeout.
    pub fn rt(&self, args: &[&str]) -> Result<Run> {
        let mut c = self.cmd();
        c.args(args).stdin(Stdio::null());
        output_with_timeout(c, Duration::from_secs(60))
    }

    /// `create --bundle B ID` after writing the config.
    pub fn create(&self) -> Result<Run> {
        self.write_config()?;
        let bundle = self.path().to_string_lossy().into_owned();
        self.rt(&["create", "--bundle", &bundle, &self.id])
    }

    /// `run --bundle B ID` after writing the config: the container's output and exit code.
    pub fn run(&self) -> Result<Run> {
        self.write_config()?;
        let bundle = self.path().to_string_lossy().into_owned();
        self.rt(&["run", "--bundle", &bundle, &self.id])
    }

    /// `state ID` parsed.
    pub fn state(&self) -> Result<Value> {
        let r = self.rt(&["state", &self.id])?.ok()?;
        Ok(serde_json::from_str(&r.stdout)?)
    }

    /// The container's status.
    pub fn status(&self) -> Result<String> {
        Ok(self.state()?["status"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// Waits (through a pidfd, bounded) until the container's init has exited.
    pub fn wait_exit(&self) -> Result<()> {
        let pid = self.state()?["pid"].as_i64().unwrap_or(0) as i32;
        if pid > 0 {
            wait_pid_exit(pid, Duration::from_secs(20))?;
        }
        Ok(())
    }

    /// A control file of this container's cgroup in the v1 hierarchy `controller`, trimmed.
    pub fn cgroup_file(&self, controller: &str, file: &str) -> Result<String> {
        let p = Path::new("/sys/fs/cgroup")
            .join(controller)
            .join(self.cgroup_path().trim_start_matches('/'))
            .join(file);
        Ok(std::fs::read_to_string(&p)
            .with_context(|| format!("read {}", p.display()))?
            .trim()
            .to_string())
    }

    /// Every cgroup directory of this container's cgroup path that exists on the host.
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        let rel = self.cgroup_path();
        let rel = rel.trim_start_matches('/');
        let mut out = Vec::new();
        if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
            for e in entries.flatten() {
                let p = e.path().join(rel);
                if p.is_dir() {
                    out.push(p);
                }
            }
        }
        out
    }
}

impl Drop for Bundle {
    /// `delete --force`, then a safety net that does not trust the runtime under test: thaw,
    /// kill and remove whatever cgroup directories are left, so a broken runtime cannot make
    /// the test suite leak processes or cgroups.
    fn drop(&mut self) {
        let _ = self.rt(&["delete", "--force", &self.id]);
        let dirs = self.cgroup_dirs();
        if dirs.is_empty() {
            return;
        }
        for d in &dirs {
            let _ = std::fs::write(d.join("freezer.state"), "THAWED");
            let _ = std::fs::write(d.join("cgroup.kill"), "1");
            if let Ok(procs) = std::fs::read_to_string(d.join("cgroup.procs")) {
                for pid in procs.lines().filter_map(|p| p.parse::<i32>().ok()) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                    let _ = wait_pid_exit(pid, Duration::from_secs(5));
                }
            }
        }
        for d in &dirs {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// Waits for any process (not only a child) to exit, through pidfd_open(2) and poll(2).
pub fn wait_pid_exit(pid: i32, timeout: Duration) -> Result<()> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if raw < 0 {
        return Ok(()); // already gone
    }
    // SAFETY: a fresh descriptor from pidfd_open, owned here only.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw as i32) };
    let mut pfd = libc::pollfd {
        fd: std::os::fd::AsRawFd::as_raw_fd(&fd),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let rc = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as i32) };
    if rc <= 0 {
        bail!("pid {pid} did not exit within {timeout:?}");
    }
    Ok(())
}

/// Reads a FIFO (or file) to its end in a helper thread, giving up after `timeout`: the way a
/// test waits for a container or hook to reach a point, with no sleeping.
pub fn read_with_timeout(path: &Path, timeout: Duration) -> Result<String> {
    let path = path.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::fs::read_to_string(&path));
    });
    match rx.recv_timeout(timeout) {
        Ok(r) => Ok(r?),
        Err(_) => bail!("nothing arrived within {timeout:?}"),
    }
}

/// Runs a command, killing it after `timeout`. Output goes through temporary files, not pipes:
/// a container started by `create` inherits the runtime's stdio and would hold a pipe open.
pub fn output_with_timeout(mut cmd: Command, timeout: Duration) -> Result<Run> {
    let out = tempfile::tempfile()?;
    let err = tempfile::tempfile()?;
    cmd.stdout(out.try_clone()?).stderr(err.try_clone()?);
    let mut child = cmd.spawn().with_context(|| format!("spawn {cmd:?}"))?;
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = match rx.recv_timeout(timeout) {
        Ok(status) => status?,
        Err(_) => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            bail!("{cmd:?} timed out after {timeout:?}")
        }
    };
    let read = |mut f: std::fs::File| -> Result<String> {
        use std::io::{Read, Seek};
        f.rewind()?;
        let mut s = String::new();
        f.read_to_string(&mut s)?;
        Ok(s)
    };
    Ok(Run {
        code: status.code().unwrap_or(-1),
        stdout: read(out)?,
        stderr: read(err)?,
    })
}

/// Defines `NAME_hako` and `NAME_runc` tests from `fn NAME(rt: Runtime) -> Result<()>`; the runc
/// variant checks that the test describes runc's behaviour too (skipped if runc is missing).
#[macro_export]
macro_rules! both {
    ($name:ident) => {
        $crate::paste_tests!($name);
    };
}

/// Implementation detail of [`both!`].
#[macro_export]
macro_rules! paste_tests {
    ($name:ident) => {
        mod $name {
            #[test]
            fn hako() -> anyhow::Result<()> {
                super::$name($crate::Runtime::Hako)
            }
            #[test]
            fn runc() -> anyhow::Result<()> {
                if !$crate::runc_available() {
                    eprintln!("runc not installed: oracle run skipped");
                    return Ok(());
                }
                super::$name($crate::Runtime::Runc)
            }
        }
    };
}

/// Makes a FIFO a hook opens to say where it is (a real synchronisation point, no sleeping).
/// Readable and writable by all: a hook in a user namespace runs as an unprivileged host uid.
pub fn mkfifo(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o666))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(())
}

/// A `create` blocked in a hook: the hook wrote its `$$` to `reached.fifo` and waits (as `cat`,
/// the same pid) until [`BlockedCreate::release`] writes to `release.fifo`.
pub struct BlockedCreate {
    /// The bundle.
    pub bundle: Bundle,
    /// The running `create`.
    pub create: std::process::Child,
    /// The hook's pid.
    pub hook_pid: i32,
    release: PathBuf,
}

impl BlockedCreate {
    /// Lets the hook end. Only for a hook that still runs: opening the FIFO waits for it.
    pub fn release(&self) -> Result<()> {
        std::fs::write(&self.release, "go")?;
        Ok(())
    }
}

/// Starts `create` on a bundle of `rt` running `sleep 1000`, changed by `configure`, with a hook
/// of `kind`, and returns once that hook runs.
pub fn create_blocked_in_hook(
    rt: Runtime,
    tag: &str,
    kind: &str,
    configure: impl FnOnce(&mut Bundle) -> Result<()>,
) -> Result<BlockedCreate> {
    let mut b = Bundle::new(rt, tag, &["sleep", "1000"])?;
    configure(&mut b)?;
    let reached = b.path().join("reached.fifo");
    let release = b.path().join("release.fifo");
    mkfifo(&reached)?;
    mkfifo(&release)?;
    let hook = format!(
        "echo $$ > {}; exec cat {} > /dev/null",
        reached.display(),
        release.display()
    );
    b.config["hooks"] = json!({ kind: [{"path": "/bin/sh", "args": ["sh", "-c", hook]}] });
    b.write_config()?;
    let create = b
        .cmd()
        .args(["create", "--bundle", &b.path().to_string_lossy(), &b.id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let hook_pid =
        read_with_timeout(&reached, Duration::from_secs(30)).and_then(|s| Ok(s.trim().parse()?));
    match hook_pid {
        Ok(hook_pid) => Ok(BlockedCreate {
            bundle: b,
            create,
            hook_pid,
            release,
        }),
        Err(e) => {
            let mut create = create;
            let _ = create.kill();
            let _ = create.wait();
            Err(e)
        }
    }
}
