//! The runtime under test: a black-box binary driven only through the standard CLI that runc,
//! crun and hako share (`--root DIR create --bundle B --pid-file F ID`, `start`, `state`,
//! `kill`, `delete`, `exec`). Nothing of hako's library is linked.

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Which runtime answered `--version`: known deviations are noted per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// hako.
    Hako,
    /// runc.
    Runc,
    /// crun.
    Crun,
    /// Anything else.
    Other,
}

/// How long any single runtime command may take before it is killed.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The runtime binary and its state directory.
pub struct Runtime {
    /// Path of the binary (or wrapper script).
    pub path: PathBuf,
    /// Its `--root`.
    pub root: PathBuf,
    /// What it said it is.
    pub kind: Kind,
    /// First line of `--version`.
    pub version: String,
    /// In a `--rootless` run, the unprivileged user every command runs as.
    pub user: Option<crate::rootless::Identity>,
    /// Global flags given before every verb (`--runtime-arg`, `--systemd-cgroup`).
    pub global_args: Vec<String>,
}

/// What one runtime invocation did.
#[derive(Debug)]
pub struct Run {
    /// Exit code, -1 when killed by a signal.
    pub code: i32,
    /// Standard output (empty when it went to a caller's file).
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Wall-clock time.
    pub elapsed: Duration,
}

impl Run {
    /// Whether it exited 0.
    pub fn success(&self) -> bool {
        self.code == 0
    }

    /// Fails with the command's stderr unless it exited 0.
    pub fn ok(self, what: &str) -> Result<Self> {
        if !self.success() {
            bail!("{what} failed (exit {}): {}", self.code, self.stderr.trim());
        }
        Ok(self)
    }
}

fn read_back(mut f: File) -> Result<String> {
    f.rewind()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

impl Runtime {
    /// Asks the binary what it is.
    pub fn detect(path: &Path, root: PathBuf) -> Result<Self> {
        let out = Command::new(path)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("run {} --version", path.display()))?;
        let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
        let version = text.lines().next().unwrap_or("").trim().to_string();
        let kind = if text.contains("runc") {
            Kind::Runc
        } else if text.contains("crun") {
            Kind::Crun
        } else if text.contains("hako") {
            Kind::Hako
        } else {
            Kind::Other
        };
        Ok(Runtime {
            path: path.to_path_buf(),
            root,
            kind,
            version,
            user: None,
            global_args: Vec::new(),
        })
    }

    /// This runtime run by `id` (a rootless run).
    pub fn run_as(mut self, id: crate::rootless::Identity) -> Self {
        self.user = Some(id);
        self
    }

    /// The same runtime with `args` before every verb.
    pub fn with_global_args(self, global_args: Vec<String>) -> Self {
        Runtime {
            global_args,
            ..self
        }
    }

    /// Whether the runtime is driven on its systemd cgroup driver.
    pub fn systemd_cgroup(&self) -> bool {
        self.global_args.iter().any(|a| a == crate::systemd::FLAG)
    }

    /// Runs `RUNTIME --root ROOT ARGS...` with stdin from /dev/null, killing it after
    /// [`COMMAND_TIMEOUT`]. Output goes to files, not pipes: a container started by `create`
    /// inherits the runtime's stdio and would hold a pipe open. With `stdout`, the command's
    /// (and so the container's) standard output goes to that file instead.
    pub fn run(&self, args: &[&str], stdout: Option<File>) -> Result<Run> {
        self.run_within(args, stdout, COMMAND_TIMEOUT)
    }

    /// [`Runtime::run`], killed after `timeout` instead.
    pub fn run_within(
        &self,
        args: &[&str],
        stdout: Option<File>,
        timeout: Duration,
    ) -> Result<Run> {
        let (out, keep) = match stdout {
            Some(f) => (f, false),
            None => (tempfile::tempfile()?, true),
        };
        let err = tempfile::tempfile()?;
        let mut cmd = Command::new(&self.path);
        cmd.arg("--root")
            .arg(&self.root)
            .args(&self.global_args)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(err.try_clone()?);
        if let Some(id) = &self.user {
            id.apply(&mut cmd);
        }
        let start = Instant::now();
        let mut child = cmd.spawn().with_context(|| format!("spawn {cmd:?}"))?;
        let pid = i32::try_from(child.id()).unwrap_or(0);
        if !crate::sys::wait_pid_exit(pid, timeout)? {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{} {} timed out after {timeout:?}",
                self.path.display(),
                args.join(" ")
            );
        }
        let status = child.wait()?;
        Ok(Run {
            code: status.code().unwrap_or(-1),
            stdout: if keep { read_back(out)? } else { String::new() },
            stderr: read_back(err)?,
            elapsed: start.elapsed(),
        })
    }
}
