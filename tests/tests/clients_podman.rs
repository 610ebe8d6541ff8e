//! hako as podman's `--runtime`, end to end, each workflow compared with runc.
//!
//! podman 4.3 (Debian 12) calls the runtime through conmon: `create --bundle B --pid-file F
//! [--console-socket S] ID`, `start`, `exec --pid-file F --process P --detach [--tty
//! --console-socket S]`, `pause`, `resume`, `kill ID 15|9`, `delete --force`, with no `--root`
//! (so hako keeps its state in /run/hako). podman's own state lives under the test's scratch
//! directory (`--root`, `--runroot`, `--tmpdir`, `--network-config-dir`), storage is `vfs` (no
//! mounts to leak) and containers go under the test's cgroup parent.
//!
//! Run alone with `cargo test -p hako-tests --test clients_podman`.

#[path = "../clients/common.rs"]
mod common;

use anyhow::{ensure, Context, Result};
use common::{ensure_installed, require_runc, same, verbs, Runtime, Scratch};
use std::path::{Path, PathBuf};
use std::process::Command;

/// podman for one runtime, with all of its state in a scratch directory.
struct Podman<'a> {
    scratch: &'a Scratch,
    /// The runtime's name in `[engine.runtimes]`.
    runtime: &'static str,
    /// containers.conf: `hako setup podman`'s snippet for the runtime's wrapper.
    conf: PathBuf,
}

impl<'a> Podman<'a> {
    fn new(scratch: &'a Scratch, rt: Runtime) -> Result<Self> {
        ensure_installed(&[("/usr/bin/podman", "podman"), ("/usr/bin/conmon", "conmon")])?;
        require_runc()?;
        let wrapper = scratch.wrapper(rt)?;
        // Registered as users are told to: containers.conf is `hako setup podman`'s snippet.
        let conf = scratch.join(&format!("containers-{}.conf", rt.name()));
        std::fs::write(&conf, common::setup_snippet("podman", rt.name(), &wrapper)?)?;
        Ok(Podman {
            scratch,
            runtime: rt.name(),
            conf,
        })
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let s = self.scratch;
        let mut c = s.command("/usr/bin/podman");
        c.env("CONTAINERS_CONF", &self.conf)
            .arg("--root")
            .arg(s.join("root"))
            .arg("--runroot")
            .arg(s.join("runroot"))
            .arg("--tmpdir")
            .arg(s.join("libpod-tmp"))
            .arg("--network-config-dir")
            .arg(s.join("networks"))
            .args([
                "--storage-driver",
                "vfs",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
            ])
            .arg("--runtime")
            .arg(self.runtime)
            .args(args);
        c
    }

    /// `podman ARGS`, whatever its exit code.
    fn run(&self, args: &[&str]) -> Result<common::Run> {
        self.scratch.run(self.cmd(args))
    }

    /// `podman ARGS`, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> Result<String> {
        let r = self
            .run(args)
            .and_then(|r| r.ok())
            .with_context(|| format!("podman {args:?}"))?;
        Ok(r.stdout)
    }

    /// The options every container gets: no network, the test's cgroup parent, this host's
    /// hard rlimits (podman's defaults exceed them).
    fn container_opts(&self) -> Vec<String> {
        [
            "--network",
            "none",
            "--cgroup-parent",
            self.scratch.cgroup_parent(),
            "--ulimit",
            "nofile=20000:20000",
            "--ulimit",
            "nproc=32768:32768",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// `podman run` with [`Podman::container_opts`] then `args`.
    fn run_container(&self, args: &[&str]) -> Result<common::Run> {
        let opts = self.container_opts();
        let mut all: Vec<&str> = vec!["run"];
        all.extend(opts.iter().map(String::as_str));
        all.extend(args);
        self.run(&all)
    }

    /// `podman import` of a busybox rootfs tarball as `localhost/busybox:test`.
    fn import_busybox(&self) -> Result<&'static str> {
        let tar = self.scratch.rootfs_tar()?;
        let tar = tar.to_string_lossy().into_owned();
        self.ok(&["import", &tar, "localhost/busybox:test"])?;
        Ok("localhost/busybox:test")
    }

    /// The freezer state of the container's cgroup (`libpod-<id>` under the cgroup parent).
    fn freezer_state(&self, id: &str) -> Result<String> {
        let dir = Path::new("/sys/fs/cgroup/freezer")
            .join(self.scratch.cgroup_parent().trim_start_matches('/'))
            .join(format!("libpod-{id}"));
        Ok(std::fs::read_to_string(dir.join("freezer.state"))
            .with_context(|| format!("read {}", dir.display()))?
            .trim()
            .to_string())
    }

    /// Container cgroups (not conmon's) still present under the cgroup parent.
    fn container_cgroups(&self) -> Vec<PathBuf> {
        self.scratch
            .cgroup_dirs()
            .into_iter()
            .filter(|d| {
                d.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("libpod-"))
            })
            .collect()
    }
}

/// Runs `workflow` with runc then hako, each in its own scratch area, and compares what it
/// returns; also checks the engine called both runtimes with the same verbs.
fn compare<T, F>(tag: &str, workflow: F) -> Result<()>
where
    T: std::fmt::Debug + PartialEq,
    F: Fn(&Podman) -> Result<T>,
{
    let mut results = Vec::new();
    for rt in [Runtime::Runc, Runtime::Hako] {
        let scratch = Scratch::new(&format!("pm-{tag}-{}", rt.name()))?;
        let podman = Podman::new(&scratch, rt)?;
        let seen = workflow(&podman).with_context(|| {
            format!(
                "{tag} with {}; runtime calls:\n{}",
                rt.name(),
                scratch.calls(rt).join("\n")
            )
        })?;
        results.push((seen, verbs(&scratch.calls(rt))));
    }
    let (runc, hako) = (&results[0], &results[1]);
    same("what podman showed", &runc.0, &hako.0)?;
    same("runtime verbs podman used", &runc.1, &hako.1)
}

#[test]
fn run_rm_from_rootfs() -> Result<()> {
    compare("rootfs", |p| {
        let rootfs = p.scratch.rootfs("rootfs")?;
        let rootfs = rootfs.to_string_lossy().into_owned();
        let parent = p.scratch.cgroup_parent().to_string();
        let script = format!(
            "echo hi; id -u; ulimit -n; grep -q ':{parent}/libpod-' /proc/self/cgroup && echo in-cgroup"
        );
        let hi = p
            .run_container(&["--rm", "--rootfs", &rootfs, "/bin/sh", "-c", &script])?
            .ok()?;
        ensure!(
            hi.stdout == "hi\n0\n20000\nin-cgroup\n",
            "unexpected output {:?}",
            hi.stdout
        );
        let exit3 = p.run_container(&["--rm", "--rootfs", &rootfs, "/bin/sh", "-c", "exit 3"])?;
        ensure!(
            exit3.code == 3,
            "exit code {} (want 3): {exit3:?}",
            exit3.code
        );
        ensure!(
            p.ok(&["ps", "-a", "-q"])?.is_empty(),
            "--rm left a container"
        );
        ensure!(p.container_cgroups().is_empty(), "container cgroup left");
        Ok((hi.stdout, exit3.code))
    })
}

#[test]
fn run_rm_from_imported_image() -> Result<()> {
    compare("image", |p| {
        let image = p.import_busybox()?;
        let r = p
            .run_container(&[
                "--rm",
                image,
                "/bin/sh",
                "-c",
                "echo from-image; grep -E '^Cap(Eff|Bnd)' /proc/self/status; cat /proc/1/cmdline | tr '\\0' ' '; echo; ls /",
            ])?
            .ok()?;
        ensure!(
            r.stdout.starts_with("from-image\n"),
            "unexpected output {:?}",
            r.stdout
        );
        Ok(r.stdout)
    })
}

/// What the detached workflow observed, compared between runc and hako.
#[derive(Debug, PartialEq)]
struct Detached {
    exec: String,
    exec_tty: String,
    exec_exit: i32,
    paused: (String, String),
    resumed: (String, String, String),
    stop_exit: String,
    left: String,
}

#[test]
fn detached_exec_pause_stop_rm() -> Result<()> {
    compare("detached", |p| {
        let image = p.import_busybox()?;
        // A shell that exits 7 on SIGTERM: proves `stop` delivered the signal (a plain sleep
        // as PID 1 ignores it, and podman would escalate to SIGKILL after the timeout).
        let id = p
            .run_container(&[
                "-d",
                "--name",
                "c1",
                image,
                "/bin/sh",
                "-c",
                "trap 'exit 7' TERM; sleep 1000 & wait",
            ])?
            .ok()?
            .stdout
            .trim()
            .to_string();
        let exec = p.ok(&["exec", "c1", "/bin/echo", "from-exec"])?;
        let exec_tty = p.ok(&[
            "exec",
            "--tty",
            "c1",
            "/bin/sh",
            "-c",
            "tty; test -t 0 && echo is-a-tty",
        ])?;
        let exec_exit = p.run(&["exec", "c1", "/bin/sh", "-c", "exit 5"])?.code;

        p.ok(&["pause", "c1"])?;
        let paused = (
            p.ok(&["inspect", "--format", "{{.State.Status}}", "c1"])?,
            p.freezer_state(&id)?,
        );
        p.ok(&["unpause", "c1"])?;
        let resumed = (
            p.ok(&["inspect", "--format", "{{.State.Status}}", "c1"])?,
            p.freezer_state(&id)?,
            p.ok(&["exec", "c1", "/bin/echo", "alive"])?,
        );

        p.ok(&["stop", "--time", "60", "c1"])?;
        let stop_exit = p.ok(&["inspect", "--format", "{{.State.ExitCode}}", "c1"])?;
        p.ok(&["rm", "c1"])?;
        let left = p.ok(&["ps", "-a", "-q"])?;
        ensure!(p.container_cgroups().is_empty(), "container cgroup left");
        let seen = Detached {
            exec,
            exec_tty: exec_tty.replace('\r', ""),
            exec_exit,
            paused,
            resumed,
            stop_exit,
            left,
        };
        let want = Detached {
            exec: "from-exec\n".into(),
            exec_tty: "/dev/pts/0\nis-a-tty\n".into(),
            exec_exit: 5,
            paused: ("paused\n".into(), "FROZEN".into()),
            resumed: ("running\n".into(), "THAWED".into(), "alive\n".into()),
            stop_exit: "7\n".into(),
            left: String::new(),
        };
        ensure!(seen == want, "saw {seen:#?}\nwant {want:#?}");
        Ok(seen)
    })
}

/// podman's full default config, seccomp profile included.
#[test]
fn run_with_default_seccomp_profile() -> Result<()> {
    compare("seccomp", |p| {
        let rootfs = p.scratch.rootfs("rootfs")?;
        let rootfs = rootfs.to_string_lossy().into_owned();
        let parent = p.scratch.cgroup_parent().to_string();
        let r = p
            .run(&[
                "run",
                "--rm",
                "--network",
                "none",
                "--cgroup-parent",
                &parent,
                "--ulimit",
                "nofile=20000:20000",
                "--ulimit",
                "nproc=32768:32768",
                "--rootfs",
                &rootfs,
                "/bin/sh",
                "-c",
                "grep Seccomp: /proc/self/status",
            ])?
            .ok()?;
        Ok(r.stdout)
    })
}

/// `podman run -t`: conmon passes `--console-socket` to `create` and expects the pty master over
/// SCM_RIGHTS; the container's stdio is the pty, and its output reaches podman's stdout.
#[test]
fn run_with_terminal_through_conmon() -> Result<()> {
    compare("tty", |p| {
        let rootfs = p.scratch.rootfs("rootfs")?;
        let rootfs = rootfs.to_string_lossy().into_owned();
        let r = p
            .run_container(&[
                "--rm",
                "-t",
                "--rootfs",
                &rootfs,
                "/bin/sh",
                "-c",
                "tty; test -t 1 && echo stdout-is-a-tty",
            ])?
            .ok()?;
        let out = r.stdout.replace('\r', "");
        ensure!(
            out == "/dev/pts/0\nstdout-is-a-tty\n",
            "unexpected output {out:?}"
        );
        Ok(out)
    })
}
