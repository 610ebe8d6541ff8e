//! Running OCI hooks (config.md, "POSIX-platform Hooks"; runtime.md, "Lifecycle").
//!
//! A hook is executed with `args[0]` as its argv[0], exactly its `env` (none inherited), the
//! container state JSON on stdin, and killed when `timeout` seconds pass. Where each list runs:
//!
//! | hook            | who runs it              | when                                          |
//! |-----------------|--------------------------|-----------------------------------------------|
//! | prestart        | `create` (parent)        | mounts prepared, before pivot_root (deprecated)|
//! | createRuntime   | `create` (parent)        | same moment, runtime namespace                |
//! | createContainer | the container's init     | after those, before pivot_root, container ns  |
//! | startContainer  | the container's init     | after `start` released it, before execve      |
//! | poststart       | `start`                  | after the process started, before `start` ends|
//! | poststop        | `delete`                 | after the container is gone                   |

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use oci_spec::runtime::Hook;

use crate::error::{Error, Result};

/// Why one hook failed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The executable could not be started.
    #[error("start")]
    Spawn(#[source] std::io::Error),
    /// Writing the state to its stdin or waiting for it failed.
    #[error("wait")]
    Wait(#[source] std::io::Error),
    /// It ran longer than its `timeout`.
    #[error("timed out after {0}s")]
    Timeout(i64),
    /// It exited unsuccessfully.
    #[error("{status}, stdout: {stdout:?}, stderr: {stderr:?}")]
    Failed {
        /// Exit status or signal.
        status: String,
        /// What it printed, trimmed.
        stdout: String,
        /// What it printed on stderr, trimmed.
        stderr: String,
    },
}

/// Runs every hook of one list in order; the first failure stops the list.
pub(crate) fn run_all(kind: &'static str, hooks: &[Hook], state: &str) -> Result<()> {
    for hook in hooks {
        run_one(hook, state).map_err(|source| Error::Hook {
            kind,
            path: hook.path().clone(),
            source,
        })?;
    }
    Ok(())
}

/// Runs every hook of one list, logging failures and carrying on (poststop: the spec says a
/// failing poststop hook is logged as a warning and the remaining hooks still run).
pub(crate) fn run_all_warn(kind: &'static str, hooks: &[Hook], state: &str) -> Vec<Error> {
    hooks
        .iter()
        .filter_map(|hook| {
            run_one(hook, state).err().map(|source| Error::Hook {
                kind,
                path: hook.path().clone(),
                source,
            })
        })
        .collect()
}

fn pidfd_of(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    // SAFETY: a non-negative result is a new descriptor that nobody else owns.
    (raw >= 0).then(|| unsafe { OwnedFd::from_raw_fd(raw as i32) })
}

fn run_one(hook: &Hook, state: &str) -> std::result::Result<(), HookError> {
    let path: &Path = hook.path();
    let mut cmd = Command::new(path);
    if let Some(args) = hook.args() {
        if let Some((arg0, rest)) = args.split_first() {
            cmd.arg0(arg0).args(rest);
        }
    }
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(HookError::Spawn)?;
    let pidfd = pidfd_of(child.id());
    if let Some(mut stdin) = child.stdin.take() {
        // A hook may exit without reading its stdin: EPIPE is not its failure.
        match stdin.write_all(state.as_bytes()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(HookError::Wait(e)),
            _ => {}
        }
    }
    if let (Some(timeout), Some(pidfd)) = (hook.timeout(), pidfd.as_ref()) {
        let mut pfd = libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(Duration::from_secs(timeout.max(0) as u64).as_millis())
            .unwrap_or(i32::MAX);
        let ready = loop {
            // SAFETY: one valid pollfd, count 1.
            let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
            if rc < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break rc > 0;
        };
        if !ready {
            let _ = child.kill();
            let _ = child.wait();
            return Err(HookError::Timeout(timeout));
        }
    }
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut stdout);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let status = child.wait().map_err(HookError::Wait)?;
    if status.success() {
        return Ok(());
    }
    let status = match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (_, Some(s)) => format!("killed by signal {s}"),
        _ => "failed".to_string(),
    };
    Err(HookError::Failed {
        status,
        stdout: stdout.trim().to_string(),
        stderr: stderr.trim().to_string(),
    })
}
