//! hako as a docker runtime (`dockerd --add-runtime hako=PATH`, `docker run --runtime hako`),
//! end to end with Debian 12's docker.io 20.10, each workflow compared with runc.
//!
//! dockerd drives its own containerd, whose runc shim calls the runtime exactly as under ctr
//! (`--root R --log B/log.json --log-format json VERB ...`). What docker adds: with `--network
//! none` the config carries a prestart hook, `/proc/<dockerd>/exe libnetwork-setkey ...`, which
//! hands the container's network namespace back to dockerd; docker then bind-mounts it at the
//! sandbox key. A runtime that skipped prestart hooks would leave that file unmounted.
//!
//! Each test starts its own dockerd (data root, exec root, socket and config under a scratch
//! directory, no bridge, no iptables, cgroupfs driver, containers under the test's cgroup
//! parent) and stops it by pid. The client is Debian's `/usr/bin/docker` (another `docker` may
//! come first on PATH).
//!
//! Run alone with `cargo test -p hako-tests --test clients_docker`.

#[path = "../clients/common.rs"]
mod common;
#[path = "../clients/daemon.rs"]
mod daemon;

use anyhow::{ensure, Context, Result};
use common::{ensure_installed, require_runc, same, verbs, Runtime, Scratch};
use daemon::Daemon;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

/// A dockerd of this test's own, with one extra runtime registered.
struct Docker<'a> {
    scratch: &'a Scratch,
    /// The name the runtime is registered under (`docker run --runtime NAME`).
    runtime_name: &'static str,
    rt: Runtime,
    daemon: Daemon,
}

impl<'a> Docker<'a> {
    fn start(scratch: &'a Scratch, rt: Runtime) -> Result<Self> {
        ensure_installed(&[
            ("/usr/sbin/dockerd", "docker.io"),
            ("/usr/bin/docker", "docker.io"),
            ("/usr/bin/containerd", "containerd"),
        ])?;
        require_runc()?;
        let wrapper = scratch.wrapper(rt)?;
        // "runc" is docker's built-in runtime and cannot be re-registered.
        let runtime_name = match rt {
            Runtime::Hako => "hako",
            Runtime::Runc => "runc-oracle",
        };
        // Registered as users are told to: daemon.json is `hako setup docker`'s snippet.
        let config = scratch.join("daemon.json");
        std::fs::write(
            &config,
            common::setup_snippet("docker", runtime_name, &wrapper)?,
        )?;
        let sock = format!("unix://{}", scratch.join("docker.sock").display());
        let mut cmd = scratch.command("/usr/sbin/dockerd");
        cmd.arg("--config-file")
            .arg(&config)
            .arg("--data-root")
            .arg(scratch.join("data"))
            .arg("--exec-root")
            .arg(scratch.join("exec"))
            .arg("--pidfile")
            .arg(scratch.join("docker.pid"))
            .args(["-H", &sock])
            .args([
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--ip-masq=false",
                "--ip-forward=false",
                "--userland-proxy=false",
                "--cgroup-parent",
                scratch.cgroup_parent(),
            ]);
        let daemon = Daemon::start(
            cmd,
            "dockerd",
            &scratch.join("dockerd.log"),
            "API listen on",
        )?;
        Ok(Docker {
            scratch,
            runtime_name,
            rt,
            daemon,
        })
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.scratch.command("/usr/bin/docker");
        c.arg("-H")
            .arg(format!(
                "unix://{}",
                self.scratch.join("docker.sock").display()
            ))
            .args(args);
        c
    }

    /// `docker ARGS`, whatever its exit code.
    fn run(&self, args: &[&str]) -> Result<common::Run> {
        self.scratch.run(self.cmd(args))
    }

    /// `docker ARGS`, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> Result<String> {
        let r = self.run(args).and_then(|r| r.ok()).with_context(|| {
            format!("docker {args:?}; dockerd log:\n{}", self.daemon.log_tail())
        })?;
        Ok(r.stdout)
    }

    /// `docker import` of a busybox rootfs tarball as `busybox:test`.
    fn import_busybox(&self) -> Result<&'static str> {
        let tar = self.scratch.rootfs_tar()?;
        let tar = tar.to_string_lossy().into_owned();
        self.ok(&["import", &tar, "busybox:test"])?;
        Ok("busybox:test")
    }

    /// `docker run --network none --runtime THIS ARGS...`.
    fn run_container(&self, args: &[&str]) -> Result<common::Run> {
        let mut all = vec!["run", "--network", "none", "--runtime", self.runtime_name];
        all.extend(args);
        self.run(&all)
    }

    /// `docker inspect --format FORMAT ID`, trimmed.
    fn inspect(&self, format: &str, id: &str) -> Result<String> {
        Ok(self
            .ok(&["inspect", "--format", format, id])?
            .trim()
            .to_string())
    }
}

/// Runs `workflow` with runc then hako, each with its own dockerd, and compares what it
/// returns and the verbs the shim used.
fn compare<T, F>(tag: &str, workflow: F) -> Result<()>
where
    T: std::fmt::Debug + PartialEq,
    F: Fn(&Docker) -> Result<T>,
{
    let mut results = Vec::new();
    for rt in [Runtime::Runc, Runtime::Hako] {
        let scratch = Scratch::new(&format!("dk-{tag}-{}", rt.name()))?;
        let seen = {
            let docker = Docker::start(&scratch, rt)?;
            workflow(&docker).with_context(|| {
                format!(
                    "{tag} with {}; runtime calls:\n{}\ndockerd log:\n{}",
                    rt.name(),
                    scratch.calls(rt).join("\n"),
                    docker.daemon.log_tail()
                )
            })?
        };
        results.push((seen, verbs(&scratch.calls(rt))));
    }
    let (runc, hako) = (&results[0], &results[1]);
    same("what docker showed", &runc.0, &hako.0)?;
    same("runtime verbs the shim used", &runc.1, &hako.1)
}

#[test]
fn run_rm_imported_image() -> Result<()> {
    compare("run", |d| {
        let image = d.import_busybox()?;
        let parent = d.scratch.cgroup_parent().to_string();
        let script = format!("echo hi; grep -q ':{parent}/' /proc/self/cgroup && echo in-cgroup");
        let hi = d
            .run_container(&["--rm", image, "/bin/sh", "-c", &script])?
            .ok()?;
        ensure!(
            hi.stdout == "hi\nin-cgroup\n",
            "unexpected output {:?}",
            hi.stdout
        );
        let exit3 = d.run_container(&["--rm", image, "/bin/sh", "-c", "exit 3"])?;
        ensure!(
            exit3.code == 3,
            "exit code {} (want 3): {exit3:?}",
            exit3.code
        );
        ensure!(
            d.ok(&["ps", "-a", "-q"])?.is_empty(),
            "--rm left a container"
        );
        Ok((hi.stdout, exit3.code))
    })
}

/// What the detached workflow observed, compared between runc and hako.
#[derive(Debug, PartialEq)]
struct Detached {
    setkey_hook_in_config: bool,
    sandbox_key_is_container_netns: bool,
    exec: String,
    exec_tty: String,
    exec_exit: i32,
    paused: String,
    resumed: String,
    stop_exit: String,
    left: String,
}

#[test]
fn detached_prestart_hook_exec_pause_stop() -> Result<()> {
    compare("detached", |d| {
        let image = d.import_busybox()?;
        // Exits 7 on SIGTERM: proves `stop` delivered the signal.
        let id = d
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

        // The prestart hook is in the config the runtime got, and it ran: docker mounted the
        // container's network namespace at the sandbox key.
        let configs = d.scratch.configs(d.rt)?;
        let setkey_hook_in_config = configs.iter().any(|c| {
            c["hooks"]["prestart"].as_array().is_some_and(|hooks| {
                hooks.iter().any(|h| {
                    h["args"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|x| x == "libnetwork-setkey"))
                })
            })
        });
        let key = d.inspect("{{.NetworkSettings.SandboxKey}}", &id)?;
        let pid = d.inspect("{{.State.Pid}}", &id)?;
        let key_ino = std::fs::metadata(&key).map(|m| m.ino()).ok();
        let ns_ino = std::fs::metadata(format!("/proc/{pid}/ns/net"))
            .with_context(|| format!("container pid {pid}"))?
            .ino();
        let sandbox_key_is_container_netns = key_ino == Some(ns_ino);

        let exec = d.ok(&["exec", "c1", "/bin/echo", "from-exec"])?;
        let exec_tty = d.ok(&[
            "exec",
            "-t",
            "c1",
            "/bin/sh",
            "-c",
            "tty; test -t 0 && echo is-a-tty",
        ])?;
        let exec_exit = d.run(&["exec", "c1", "/bin/sh", "-c", "exit 5"])?.code;
        d.ok(&["pause", "c1"])?;
        let paused = d.inspect("{{.State.Status}}", "c1")?;
        d.ok(&["unpause", "c1"])?;
        let resumed = d.inspect("{{.State.Status}}", "c1")?;
        d.ok(&["stop", "--time", "60", "c1"])?;
        let stop_exit = d.inspect("{{.State.ExitCode}}", "c1")?;
        d.ok(&["rm", "c1"])?;
        let left = d.ok(&["ps", "-a", "-q"])?;
        let seen = Detached {
            setkey_hook_in_config,
            sandbox_key_is_container_netns,
            exec,
            exec_tty: exec_tty.replace('\r', ""),
            exec_exit,
            paused,
            resumed,
            stop_exit,
            left,
        };
        let want = Detached {
            setkey_hook_in_config: true,
            sandbox_key_is_container_netns: true,
            exec: "from-exec\n".into(),
            exec_tty: "/dev/pts/0\nis-a-tty\n".into(),
            exec_exit: 5,
            paused: "paused".into(),
            resumed: "running".into(),
            stop_exit: "7".into(),
            left: String::new(),
        };
        ensure!(seen == want, "saw {seen:#?}\nwant {want:#?}");
        Ok(seen)
    })
}

/// docker's full default config, seccomp profile included.
#[test]
fn run_with_default_seccomp_profile() -> Result<()> {
    compare("seccomp", |d| {
        let image = d.import_busybox()?;
        let r = d
            .run(&[
                "run",
                "--rm",
                "--network",
                "none",
                "--runtime",
                d.runtime_name,
                image,
                "/bin/sh",
                "-c",
                "grep Seccomp: /proc/self/status",
            ])?
            .ok()?;
        Ok(r.stdout)
    })
}
