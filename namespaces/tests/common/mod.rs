//! Helpers for root tests: run a closure in a forked child with its own
//! mount namespace, with a timeout, and build tiny rootfs trees.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, pipe, ForkResult, Pid};

/// True if we can run root tests.
pub fn is_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        true
    } else {
        eprintln!("skipping: needs root");
        false
    }
}

/// A unique name for this test run.
pub fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("hako-ns-{tag}-{}-{nanos}", std::process::id())
}

/// Waits for `pid`, killing it after `timeout`; returns the exit code.
fn wait_with_timeout(pid: Pid, out: OwnedFd, timeout: Duration) -> (Option<i32>, String) {
    let start = Instant::now();
    let mut msg = Vec::new();
    let mut file = std::fs::File::from(out);
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            return (None, "timeout".into());
        }
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) => continue,
            Ok(_) => {
                let mut buf = [0u8; 4096];
                match file.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => msg.extend_from_slice(&buf[..n]),
                    Err(_) => break,
                }
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
    }
    let code = match waitpid(pid, None) {
        Ok(WaitStatus::Exited(_, c)) => Some(c),
        Ok(other) => {
            msg.extend_from_slice(format!(" child ended: {other:?}").as_bytes());
            Some(128)
        }
        Err(_) => None,
    };
    (code, String::from_utf8_lossy(&msg).into_owned())
}

/// Runs `f` in a forked child after `unshare(flags | CLONE_NEWNS)`. The
/// child reports a failure message over a pipe and exits non-zero; mounts
/// die with its mount namespace.
pub fn in_child<F: FnOnce() -> Result<(), String>>(flags: CloneFlags, f: F) -> Result<(), String> {
    let (r, w) = pipe().map_err(|e| e.to_string())?;
    // SAFETY: the child only runs `f` (syscalls and allocation; glibc keeps
    // malloc usable after fork) and leaves with `_exit`, never returning
    // into the test harness.
    match unsafe { fork() }.map_err(|e| e.to_string())? {
        ForkResult::Child => {
            drop(r);
            let res = unshare(flags | CloneFlags::CLONE_NEWNS)
                .map_err(|e| format!("unshare: {e}"))
                .and_then(|()| {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
                        .unwrap_or_else(|_| Err("panic".into()))
                });
            let code = match res {
                Ok(()) => 0,
                Err(m) => {
                    let mut wf = std::fs::File::from(w);
                    let _ = wf.write_all(m.as_bytes());
                    1
                }
            };
            // SAFETY: `_exit` is always safe; it skips atexit handlers that
            // belong to the parent test process.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop(w);
            match wait_with_timeout(child, r, Duration::from_secs(30)) {
                (Some(0), _) => Ok(()),
                (code, msg) => Err(format!("child failed ({code:?}): {msg}")),
            }
        }
    }
}

/// Turns any error into a String with its source chain.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// `ensure!`-like helper.
pub fn check(cond: bool, what: impl Into<String>) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(what.into())
    }
}

/// A bundle dir with `rootfs/` holding busybox and the usual directories.
pub struct Bundle {
    pub dir: tempfile::TempDir,
}

impl Bundle {
    pub fn new() -> Bundle {
        let dir = tempfile::Builder::new()
            .prefix("hako-ns-test")
            .tempdir()
            .expect("tempdir");
        let rootfs = dir.path().join("rootfs");
        for d in ["bin", "proc", "sys", "dev", "etc", "tmp"] {
            std::fs::create_dir_all(rootfs.join(d)).expect("mkdir");
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("copy busybox");
        Bundle { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// Builds a spec from a JSON `linux`/`mounts` fragment, with a new mount namespace
    /// added to `linux.namespaces` (without one, the plan mounts nothing).
    pub fn spec(
        &self,
        mounts: serde_json::Value,
        mut linux: serde_json::Value,
    ) -> oci_spec::runtime::Spec {
        let mut ns = linux["namespaces"].as_array().cloned().unwrap_or_default();
        if !ns.iter().any(|n| n["type"] == "mount") {
            ns.push(serde_json::json!({"type": "mount"}));
            linux["namespaces"] = serde_json::Value::Array(ns);
        }
        self.spec_as_is(mounts, linux)
    }

    /// Builds a spec from a JSON `linux`/`mounts` fragment as given.
    pub fn spec_as_is(
        &self,
        mounts: serde_json::Value,
        linux: serde_json::Value,
    ) -> oci_spec::runtime::Spec {
        let v = serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "mounts": mounts,
            "linux": linux,
        });
        serde_json::from_value(v).expect("spec")
    }
}

/// The mountinfo line for mount point `dest`, if any.
pub fn mountinfo_line(dest: &str) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines()
        .rfind(|l| l.split(' ').nth(4) == Some(dest))
        .map(str::to_string)
}

/// True if any mount point in our mount namespace is under `path`.
pub fn has_mounts_under(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let p = path.to_string_lossy();
    info.lines().any(|l| {
        l.split(' ')
            .nth(4)
            .is_some_and(|m| m.starts_with(p.as_ref()))
    })
}

/// The child's rootfs steps in order (prepare, enter, finish), errors as strings.
pub fn set_up(rootfs: &hako_namespaces::Rootfs, no_pivot: bool) -> Result<(), String> {
    rootfs
        .prepare(&[], Default::default())
        .map_err(|e| chain(&e))?;
    rootfs.enter(no_pivot).map_err(|e| chain(&e))?;
    rootfs.finish().map_err(|e| chain(&e))
}
