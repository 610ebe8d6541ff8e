//! A daemon (containerd, dockerd) started by a test and stopped by pid when the guard drops.
//!
//! Readiness is a line in the daemon's own log (containerd: "containerd successfully booted",
//! dockerd: "API listen on"), read from its stderr as it is written: no polling, no sleeping.
//! Everything the daemon prints is also copied to a log file, whose tail goes into the error
//! when the daemon dies before it is ready.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// How long a daemon may take to say it is ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running daemon; SIGTERM, then SIGKILL after a grace period, on drop.
pub struct Daemon {
    child: Child,
    name: String,
    log: PathBuf,
}

impl Daemon {
    /// Spawns `cmd` and waits until a line of its stderr contains `ready`.
    pub fn start(mut cmd: Command, name: &str, log: &Path, ready: &str) -> Result<Self> {
        let mut file = std::fs::File::create(log)?;
        cmd.stdout(file.try_clone()?).stderr(Stdio::piped());
        let mut child = cmd.spawn().with_context(|| format!("spawn {name}"))?;
        let stderr = child.stderr.take().context("daemon stderr")?;
        let (tx, rx) = mpsc::channel();
        let ready = ready.to_string();
        std::thread::spawn(move || {
            let mut told = false;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(file, "{line}");
                if !told && line.contains(&ready) {
                    told = true;
                    let _ = tx.send(());
                }
            }
            // End of stderr: the daemon exited; dropping `tx` tells a waiter.
        });
        let daemon = Daemon {
            child,
            name: name.to_string(),
            log: log.to_path_buf(),
        };
        match rx.recv_timeout(READY_TIMEOUT) {
            Ok(()) => Ok(daemon),
            Err(mpsc::RecvTimeoutError::Timeout) => bail!(
                "{name} not ready within {READY_TIMEOUT:?}; log:\n{}",
                daemon.log_tail()
            ),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                bail!(
                    "{name} exited before it was ready; log:\n{}",
                    daemon.log_tail()
                )
            }
        }
    }

    /// The daemon's pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The last lines of the daemon's log above `level=info` (for error messages).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.contains("level=info") && !l.contains("level=debug"))
            .collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.pid());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        if hako_tests::wait_pid_exit(self.pid(), Duration::from_secs(30)).is_err() {
            eprintln!("{} ignored SIGTERM; killing it", self.name);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
        let _ = self.child.wait();
    }
}
