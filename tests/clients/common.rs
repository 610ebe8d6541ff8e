//! What the engine tests (`tests/clients_*.rs`) share: installing an engine from Debian's
//! packages, a scratch directory that owns everything an engine leaves behind, a logging wrapper
//! in front of the runtime, and a busybox image.
//!
//! Every engine test runs one workflow twice, through runc (the oracle) and through hako, and
//! compares what the user sees. Both runtimes sit behind the same wrapper script
//! ([`Scratch::wrapper`]), which appends each argv to a log and keeps a copy of every
//! `config.json` it is handed, so a test can also compare *how* the engine called the runtime
//! (the verbs, in order: [`verbs`]).
//!
//! Nothing may be left behind, pass or fail. [`Scratch`]'s `Drop` does not trust the engine:
//! it kills (by pid) every process whose command line names the scratch directory (daemons,
//! shims, conmon), deletes the containers whose bundle lies there from `/run/hako` and
//! `/run/runc` (where podman's containers live), kills and removes the test's own cgroup parent
//! in every hierarchy, detaches every mount under the directory, then removes it. Each engine is pointed at that cgroup parent
//! (`--cgroup-parent`, `ctr run --cgroup`), so containers never land in a shared tree.
//!
//! This file is included by several test binaries, each of which uses only part of it.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
pub use hako_tests::{busybox_rootfs, output_with_timeout, wait_pid_exit, Run, Runtime};

/// Bound on any single engine command (a `podman run`, a `ctr task exec`, ...).
pub const CMD_TIMEOUT: Duration = Duration::from_secs(120);

/// The PATH every engine gets: Debian's binaries only (a newer `docker` may sit in
/// /usr/local/bin and must not be picked up, by us or by dockerd looking for containerd).
pub const ENGINE_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

static INSTALL: Mutex<()> = Mutex::new(());
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Installs the Debian packages that provide `binaries` (pairs of binary path and package) if
/// any binary is missing. A failed install is an error: a test must never pass without its
/// engine.
pub fn ensure_installed(binaries: &[(&str, &str)]) -> Result<()> {
    let _serial = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let missing: Vec<&str> = binaries
        .iter()
        .filter(|(bin, _)| !Path::new(bin).exists())
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let apt = |args: &[&str]| -> Result<()> {
        let mut c = Command::new("apt-get");
        c.args(["-o", "DPkg::Lock::Timeout=300", "-q", "-y"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null());
        let r = output_with_timeout(c, Duration::from_secs(900))?;
        ensure!(
            r.code == 0,
            "apt-get {args:?} failed ({}): {}{}",
            r.code,
            r.stdout,
            r.stderr
        );
        Ok(())
    };
    apt(&["update"])?;
    let mut args = vec!["install"];
    args.extend(missing.iter().copied());
    apt(&args)?;
    for (bin, pkg) in binaries {
        ensure!(
            Path::new(bin).exists(),
            "{bin} is still missing after `apt-get install {pkg}`"
        );
    }
    Ok(())
}

/// A per-test directory (short, under /tmp, so daemon socket paths stay within 108 bytes) and
/// cgroup parent; tears down everything an engine left there on drop.
pub struct Scratch {
    dir: tempfile::TempDir,
    cgroup_parent: String,
}

impl Scratch {
    /// A new scratch area; `tag` names the test.
    pub fn new(tag: &str) -> Result<Self> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = tempfile::Builder::new()
            .prefix(&format!("hako-cl-{tag}-"))
            .tempdir_in("/tmp")?;
        for sub in ["home", "tmp"] {
            std::fs::create_dir_all(dir.path().join(sub))?;
        }
        Ok(Scratch {
            dir,
            cgroup_parent: format!("/hako-clients-{}-{n}-{tag}", std::process::id()),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `path()/rel`.
    pub fn join(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The absolute cgroup parent the engines must put containers under.
    pub fn cgroup_parent(&self) -> &str {
        &self.cgroup_parent
    }

    /// A command for an engine binary with a clean environment: Debian's PATH, HOME and TMPDIR
    /// inside the scratch directory (so client config and the shims' temporary files stay
    /// here), nothing inherited that could redirect the engine (DOCKER_CONFIG, CONTAINERS_CONF).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env_clear()
            .env("PATH", ENGINE_PATH)
            .env("HOME", self.join("home"))
            .env("TMPDIR", self.join("tmp"))
            .env("LANG", "C")
            .stdin(Stdio::null());
        c
    }

    /// Runs `cmd` with [`CMD_TIMEOUT`].
    pub fn run(&self, cmd: Command) -> Result<Run> {
        output_with_timeout(cmd, CMD_TIMEOUT)
    }

    /// A busybox rootfs directory at `path()/name`.
    pub fn rootfs(&self, name: &str) -> Result<PathBuf> {
        let root = self.join(name);
        busybox_rootfs(&root)?;
        Ok(root)
    }

    /// A tarball of a busybox rootfs (what `podman import` / `docker import` take).
    pub fn rootfs_tar(&self) -> Result<PathBuf> {
        let root = self.rootfs("image-rootfs")?;
        let tar = self.join("busybox.tar");
        let mut c = Command::new("tar");
        c.arg("-C").arg(&root).arg("-cf").arg(&tar).arg(".");
        self.run(c)?.ok().context("tar the busybox rootfs")?;
        Ok(tar)
    }

    /// A script named after `rt` (`.../hako` or `.../runc`, since engines look at the
    /// runtime's name) that appends its argv to [`Scratch::calls_log`], keeps a copy of each
    /// bundle's `config.json` in [`Scratch::configs_dir`], then execs the real runtime.
    pub fn wrapper(&self, rt: Runtime) -> Result<PathBuf> {
        let bin_dir = self.join(&format!("wrap-{}", rt.name()));
        std::fs::create_dir_all(&bin_dir)?;
        let configs = self.configs_dir(rt);
        std::fs::create_dir_all(&configs)?;
        let real = match rt {
            Runtime::Hako => rt.binary(),
            Runtime::Runc => PathBuf::from("/usr/sbin/runc"),
        };
        ensure!(real.exists(), "{} does not exist", real.display());
        let script = format!(
            "#!/bin/sh\n\
             printf '%s\\n' \"$*\" >> '{log}'\n\
             prev=\n\
             for a in \"$@\"; do\n\
             \x20 if [ \"$prev\" = --bundle ]; then cp \"$a/config.json\" \"{configs}/$(date +%s%N).json\"; fi\n\
             \x20 prev=$a\n\
             done\n\
             exec '{real}' \"$@\"\n",
            log = self.calls_log(rt).display(),
            configs = configs.display(),
            real = real.display(),
        );
        let path = bin_dir.join(rt.name());
        std::fs::write(&path, script)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        Ok(path)
    }

    /// Where [`Scratch::wrapper`] logs the argv of each call.
    pub fn calls_log(&self, rt: Runtime) -> PathBuf {
        self.join(&format!("calls-{}.log", rt.name()))
    }

    /// Where [`Scratch::wrapper`] copies each `config.json`.
    pub fn configs_dir(&self, rt: Runtime) -> PathBuf {
        self.join(&format!("configs-{}", rt.name()))
    }

    /// The argv lines the engine passed to `rt`.
    pub fn calls(&self, rt: Runtime) -> Vec<String> {
        std::fs::read_to_string(self.calls_log(rt))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The configs the engine generated for `rt`, oldest first.
    pub fn configs(&self, rt: Runtime) -> Result<Vec<serde_json::Value>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.configs_dir(rt))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        files
            .iter()
            .map(|f| Ok(serde_json::from_slice(&std::fs::read(f)?)?))
            .collect()
    }

    /// Every cgroup directory of this scratch's parent that exists, deepest first.
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        let rel = self.cgroup_parent.trim_start_matches('/');
        let mut out = Vec::new();
        if let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") {
            for h in hierarchies.flatten() {
                collect_dirs(&h.path().join(rel), &mut out);
            }
        }
        out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        out
    }
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    out.push(dir.to_path_buf());
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            collect_dirs(&e.path(), out);
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let dir = self.dir.path().to_string_lossy().into_owned();
        for pid in pids_naming(&dir) {
            kill_and_wait(pid);
        }
        remove_runtime_state(&dir);
        let cgroups = self.cgroup_dirs();
        for d in &cgroups {
            let _ = std::fs::write(d.join("freezer.state"), "THAWED");
            let _ = std::fs::write(d.join("cgroup.kill"), "1");
            if let Ok(procs) = std::fs::read_to_string(d.join("cgroup.procs")) {
                for pid in procs.lines().filter_map(|p| p.parse::<i32>().ok()) {
                    kill_and_wait(pid);
                }
            }
        }
        for d in &cgroups {
            let _ = std::fs::remove_dir(d);
        }
        for m in mounts_under(&dir) {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        // TempDir's own drop removes the files.
    }
}

/// Deletes the containers whose bundle is under `dir` from the runtimes' default state
/// directories (podman calls the runtime without `--root`): `delete --force`, then, should the
/// runtime fail at that, the state directory itself.
fn remove_runtime_state(dir: &str) {
    for rt in [Runtime::Hako, Runtime::Runc] {
        let root = Path::new("/run").join(rt.name());
        let Ok(entries) = std::fs::read_dir(&root) else {
            continue;
        };
        for e in entries.flatten() {
            let state = std::fs::read_to_string(e.path().join("state.json")).unwrap_or_default();
            if !state.contains(dir) {
                continue;
            }
            let mut c = Command::new(rt.binary());
            c.arg("--root")
                .arg(&root)
                .args(["delete", "--force"])
                .arg(e.file_name())
                .stdin(Stdio::null());
            let _ = output_with_timeout(c, Duration::from_secs(30));
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Processes (other than this one) whose command line mentions `needle`.
pub fn pids_naming(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        if let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmdline).contains(needle) {
                out.push(pid);
            }
        }
    }
    out
}

fn kill_and_wait(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = wait_pid_exit(pid, Duration::from_secs(10));
}

/// Mount points at or below `dir`, deepest first (so each unmount leaves its parent busy-free).
pub fn mounts_under(dir: &str) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|m| m == dir || m.starts_with(&format!("{dir}/")))
        .collect();
    out.sort_by_key(|m| std::cmp::Reverse(m.len()));
    out.dedup();
    out
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo` (proc(5)).
fn unescape_mountinfo(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let oct: String = chars.by_ref().take(3).collect();
            if let Ok(b) = u8::from_str_radix(&oct, 8) {
                out.push(b as char);
                continue;
            }
            out.push('\\');
            out.push_str(&oct);
        } else {
            out.push(c);
        }
    }
    out
}

/// The runtime verbs in a call log, in order, without global flags or values:
/// `--root R --log L --log-format json create --bundle B ID` → `create`. Queries that an
/// engine may or may not make depending on timing (`state`, `--version`, `features`) are left
/// out.
pub fn verbs(calls: &[String]) -> Vec<String> {
    const WITH_VALUE: [&str; 4] = ["--root", "--log", "--log-format", "--criu"];
    let mut out = Vec::new();
    for line in calls {
        let mut words = line.split(' ');
        while let Some(w) = words.next() {
            if WITH_VALUE.contains(&w) {
                words.next();
            } else if w.starts_with('-') {
                continue;
            } else {
                if !matches!(w, "state" | "features") {
                    out.push(w.to_string());
                }
                break;
            }
        }
    }
    out
}

/// Fails with both values when the oracle's and hako's observations differ.
pub fn same<T: std::fmt::Debug + PartialEq>(what: &str, runc: &T, hako: &T) -> Result<()> {
    if runc != hako {
        bail!("{what} differs:\n  runc: {runc:?}\n  hako: {hako:?}");
    }
    Ok(())
}

/// What `hako setup ENGINE --name NAME --binary BINARY` prints: the engine tests register both
/// runtimes (hako and the runc oracle, each behind its wrapper) with exactly the snippet users are
/// told to use (README, "Set-up with an engine").
pub fn setup_snippet(engine: &str, name: &str, binary: &Path) -> Result<String> {
    let mut cmd = Command::new(Runtime::Hako.binary());
    cmd.args(["setup", engine, "--name", name, "--binary"])
        .arg(binary)
        // containerd's snippet follows the version of an existing config: there is none here.
        .args(["--config", "/nonexistent/hako-setup.conf"]);
    let out = output_with_timeout(cmd, CMD_TIMEOUT)?;
    ensure!(out.code == 0, "hako setup {engine}: {out:?}");
    Ok(out.stdout)
}

/// Installs runc if it is missing: the oracle side of every comparison needs it.
pub fn require_runc() -> Result<()> {
    ensure_installed(&[("/usr/sbin/runc", "runc")])
}

/// A command left running while a test does other things (a foreground `ctr run`), killed by
/// pid on drop if still alive.
pub struct Background {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    stdout: std::sync::Arc<Mutex<String>>,
    stderr: tempfile::NamedTempFile,
}

impl Background {
    /// Spawns `cmd` with its stdout read line by line.
    pub fn spawn(mut cmd: Command) -> Result<Self> {
        use std::io::BufRead;
        let stderr = tempfile::NamedTempFile::new()?;
        cmd.stdout(Stdio::piped()).stderr(stderr.reopen()?);
        let mut child = cmd.spawn().with_context(|| format!("spawn {cmd:?}"))?;
        let out = child.stdout.take().context("stdout")?;
        let (tx, lines) = std::sync::mpsc::channel();
        let stdout = std::sync::Arc::new(Mutex::new(String::new()));
        let all = stdout.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Ok(mut all) = all.lock() {
                    all.push_str(&line);
                    all.push('\n');
                }
                let _ = tx.send(line);
            }
        });
        Ok(Background {
            child,
            lines,
            stdout,
            stderr,
        })
    }

    /// Waits (bounded) for a line of stdout equal to `want`.
    pub fn wait_line(&self, want: &str, timeout: Duration) -> Result<()> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line == want => return Ok(()),
                Ok(_) => continue,
                Err(_) => bail!(
                    "no line {want:?} within {timeout:?}; stderr: {}",
                    std::fs::read_to_string(self.stderr.path()).unwrap_or_default()
                ),
            }
        }
    }

    /// Waits (bounded) for the command to exit: its exit code, stdout and stderr.
    pub fn wait(mut self, timeout: Duration) -> Result<Run> {
        wait_pid_exit(self.child.id() as i32, timeout)?;
        let status = self.child.wait()?;
        // The reader thread ends at end-of-file, which the exit brought.
        while self.lines.recv_timeout(Duration::from_secs(5)).is_ok() {}
        let stdout = self.stdout.lock().map(|s| s.clone()).unwrap_or_default();
        Ok(Run {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr: std::fs::read_to_string(self.stderr.path())?,
        })
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
