//! hako behind containerd 1.6 and `ctr` (Debian 12), end to end, each workflow compared with
//! runc.
//!
//! ctr talks to containerd, whose `containerd-shim-runc-v2` calls the runtime named by
//! `--runc-binary` (the runtime option `BinaryName`): every call carries `--root R --log
//! B/log.json --log-format json` and runs in the bundle directory. When `create` fails, the shim
//! reads the last error line of that JSON log and shows its `msg` to the user, so hako's error
//! must arrive there.
//!
//! Each test starts its own containerd (root, state, sockets and the `opt` plugin's directory
//! under a scratch directory; the CRI plugin disabled) and stops it by pid.
//!
//! Run alone with `cargo test -p hako-tests --test clients_containerd`.

#[path = "../clients/common.rs"]
mod common;
#[path = "../clients/daemon.rs"]
mod daemon;

use anyhow::{ensure, Context, Result};
use common::{ensure_installed, require_runc, same, verbs, Runtime, Scratch};
use daemon::Daemon;
use std::path::PathBuf;
use std::process::Command;

/// A containerd of this test's own, and ctr pointed at it with one runtime.
struct Containerd<'a> {
    scratch: &'a Scratch,
    runtime: PathBuf,
    daemon: Daemon,
}

impl<'a> Containerd<'a> {
    fn start(scratch: &'a Scratch, rt: Runtime) -> Result<Self> {
        ensure_installed(&[
            ("/usr/bin/containerd", "containerd"),
            ("/usr/bin/ctr", "containerd"),
            ("/usr/bin/containerd-shim-runc-v2", "containerd"),
        ])?;
        require_runc()?;
        let runtime = scratch.wrapper(rt)?;
        let s = |rel: &str| scratch.join(rel).to_string_lossy().into_owned();
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{sock}"

[ttrpc]
  address = "{sock}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
"#,
            root = s("root"),
            state = s("state"),
            sock = s("containerd.sock"),
            opt = s("opt"),
        );
        let config_path = scratch.join("config.toml");
        std::fs::write(&config_path, config)?;
        let mut cmd = scratch.command("/usr/bin/containerd");
        cmd.arg("--config").arg(&config_path);
        let daemon = Daemon::start(
            cmd,
            "containerd",
            &scratch.join("containerd.log"),
            "containerd successfully booted",
        )?;
        for dir in ["runc-root", "fifo"] {
            std::fs::create_dir_all(scratch.join(dir))?;
        }
        Ok(Containerd {
            scratch,
            runtime,
            daemon,
        })
    }

    fn ctr(&self, args: &[&str]) -> Command {
        let mut c = self.scratch.command("/usr/bin/ctr");
        c.arg("--address")
            .arg(self.scratch.join("containerd.sock"))
            .args(args);
        c
    }

    /// `ctr ARGS`, whatever its exit code.
    fn run(&self, args: &[&str]) -> Result<common::Run> {
        self.scratch.run(self.ctr(args))
    }

    /// `ctr ARGS`, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> Result<String> {
        let r = self.run(args).and_then(|r| r.ok()).with_context(|| {
            format!("ctr {args:?}; containerd log:\n{}", self.daemon.log_tail())
        })?;
        Ok(r.stdout)
    }

    /// `ctr run FLAGS --rootfs DIR ID ARGS...` with this test's runtime, runtime root, fifo
    /// directory and a cgroup under the test's cgroup parent.
    fn container_cmd(&self, flags: &[&str], rootfs: &str, id: &str, args: &[&str]) -> Command {
        let cgroup = format!("{}/{id}", self.scratch.cgroup_parent());
        let mut c = self.ctr(&["run", "--runc-binary"]);
        c.arg(&self.runtime)
            .arg("--runc-root")
            .arg(self.scratch.join("runc-root"))
            .arg("--fifo-dir")
            .arg(self.scratch.join("fifo"))
            .args(["--cgroup", &cgroup])
            .args(flags)
            .args(["--rootfs", rootfs, id])
            .args(args);
        c
    }

    /// [`Containerd::container_cmd`], run to completion.
    fn run_container(
        &self,
        flags: &[&str],
        rootfs: &str,
        id: &str,
        args: &[&str],
    ) -> Result<common::Run> {
        self.scratch
            .run(self.container_cmd(flags, rootfs, id, args))
    }

    /// `ctr task ls` as (id, status) pairs.
    fn tasks(&self) -> Result<Vec<(String, String)>> {
        Ok(self
            .ok(&["task", "ls"])?
            .lines()
            .skip(1)
            .filter_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                (w.len() == 3).then(|| (w[0].to_string(), w[2].to_string()))
            })
            .collect())
    }

    /// Container state directories the runtime left in its `--root`.
    fn runtime_state_left(&self) -> Vec<String> {
        walk_names(&self.scratch.join("runc-root/default"))
    }
}

fn walk_names(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `workflow` with runc then hako, each with its own containerd, and compares what it
/// returns and the verbs the shim used.
fn compare<T, F>(tag: &str, workflow: F) -> Result<()>
where
    T: std::fmt::Debug + PartialEq,
    F: Fn(&Containerd, &str) -> Result<T>,
{
    let mut results = Vec::new();
    for rt in [Runtime::Runc, Runtime::Hako] {
        let scratch = Scratch::new(&format!("cd-{tag}-{}", rt.name()))?;
        let rootfs = scratch.rootfs("rootfs")?.to_string_lossy().into_owned();
        let seen = {
            let cd = Containerd::start(&scratch, rt)?;
            workflow(&cd, &rootfs).with_context(|| {
                format!(
                    "{tag} with {}; runtime calls:\n{}\ncontainerd log:\n{}",
                    rt.name(),
                    scratch.calls(rt).join("\n"),
                    cd.daemon.log_tail()
                )
            })?
        };
        results.push((seen, verbs(&scratch.calls(rt))));
    }
    let (runc, hako) = (&results[0], &results[1]);
    same("what ctr showed", &runc.0, &hako.0)?;
    same("runtime verbs the shim used", &runc.1, &hako.1)
}

#[test]
fn run_rm() -> Result<()> {
    compare("run", |cd, rootfs| {
        let parent = cd.scratch.cgroup_parent().to_string();
        let script =
            format!("echo hi; grep -q ':{parent}/c1$' /proc/self/cgroup && echo in-cgroup");
        let hi = cd
            .run_container(&["--rm"], rootfs, "c1", &["/bin/sh", "-c", &script])?
            .ok()?;
        ensure!(
            hi.stdout == "hi\nin-cgroup\n",
            "unexpected output {:?}",
            hi.stdout
        );
        let exit3 = cd.run_container(&["--rm"], rootfs, "c2", &["/bin/sh", "-c", "exit 3"])?;
        ensure!(
            exit3.code == 3,
            "exit code {} (want 3): {exit3:?}",
            exit3.code
        );
        ensure!(
            cd.ok(&["containers", "ls", "-q"])?.is_empty(),
            "--rm left a container"
        );
        let left = cd.runtime_state_left();
        ensure!(left.is_empty(), "runtime state left: {left:?}");
        Ok((hi.stdout, exit3.code))
    })
}

/// What the task workflow observed, compared between runc and hako.
#[derive(Debug, PartialEq)]
struct Task {
    exec: String,
    exec_exit: i32,
    ps_count: usize,
    paused: Vec<(String, String)>,
    freezer: String,
    resumed: Vec<(String, String)>,
    exit_status: i32,
    left: Vec<String>,
}

#[test]
fn task_exec_ps_pause_resume_kill() -> Result<()> {
    compare("task", |cd, rootfs| {
        // In the foreground, as a user would: `ctr run` returns the task's exit status. The
        // shell says when it is up, and exits 7 on SIGTERM (proof that `kill` delivered it).
        let fg = common::Background::spawn(cd.container_cmd(
            &["--rm"],
            rootfs,
            "c1",
            &[
                "/bin/sh",
                "-c",
                "trap 'exit 7' TERM; echo up; sleep 1000 & wait",
            ],
        ))?;
        fg.wait_line("up", common::CMD_TIMEOUT)?;
        let exec = cd.ok(&[
            "task",
            "exec",
            "--exec-id",
            "e1",
            "c1",
            "/bin/echo",
            "from-exec",
        ])?;
        let exec_exit = cd
            .run(&[
                "task",
                "exec",
                "--exec-id",
                "e2",
                "c1",
                "/bin/sh",
                "-c",
                "exit 5",
            ])?
            .code;
        // The shell and its sleep.
        let ps = cd.ok(&["task", "ps", "c1"])?;
        let ps_count = ps.lines().skip(1).filter(|l| !l.trim().is_empty()).count();

        cd.ok(&["task", "pause", "c1"])?;
        let paused = cd.tasks()?;
        let freezer_file = std::path::Path::new("/sys/fs/cgroup/freezer")
            .join(cd.scratch.cgroup_parent().trim_start_matches('/'))
            .join("c1/freezer.state");
        let freezer = std::fs::read_to_string(&freezer_file)
            .with_context(|| format!("read {}", freezer_file.display()))?
            .trim()
            .to_string();
        cd.ok(&["task", "resume", "c1"])?;
        let resumed = cd.tasks()?;

        cd.ok(&["task", "kill", "c1"])?;
        let fg = fg.wait(common::CMD_TIMEOUT)?;
        let exit_status = fg.code;
        ensure!(
            cd.ok(&["containers", "ls", "-q"])?.is_empty(),
            "--rm left a container"
        );
        let seen = Task {
            exec,
            exec_exit,
            ps_count,
            paused,
            freezer,
            resumed,
            exit_status,
            left: cd.runtime_state_left(),
        };
        let want = Task {
            exec: "from-exec\n".into(),
            exec_exit: 5,
            ps_count: 2,
            paused: vec![("c1".into(), "PAUSED".into())],
            freezer: "FROZEN".into(),
            resumed: vec![("c1".into(), "RUNNING".into())],
            exit_status: 7,
            left: vec![],
        };
        ensure!(seen == want, "saw {seen:#?}\nwant {want:#?}");
        Ok(seen)
    })
}

#[test]
fn failing_create_reports_the_runtime_error() -> Result<()> {
    compare("fail", |cd, rootfs| {
        let r = cd.run_container(&["--rm"], rootfs, "c1", &["/bin/no-such-program"])?;
        ensure!(r.code != 0, "a missing executable was started: {r:?}");
        // What the user sees: the shim's "OCI runtime create failed: <msg>", where <msg> is the
        // last error the runtime wrote to the --log JSON file.
        let line = r
            .stderr
            .lines()
            .find(|l| l.contains("OCI runtime create failed"))
            .with_context(|| format!("no runtime error reached the user: {:?}", r.stderr))?
            .to_string();
        // Without a usable log the shim falls back to "exit status 1: <output>" or says it was
        // "unable to retrieve OCI runtime error".
        ensure!(
            !line.contains("exit status") && !line.contains("unable to retrieve"),
            "the message did not come from the --log JSON: {line}"
        );
        ensure!(
            line.contains("/bin/no-such-program"),
            "the error does not name the program: {line}"
        );
        let left = cd.runtime_state_left();
        ensure!(left.is_empty(), "runtime state left: {left:?}");
        let cgroup = std::path::Path::new("/sys/fs/cgroup/pids")
            .join(cd.scratch.cgroup_parent().trim_start_matches('/'))
            .join("c1");
        ensure!(!cgroup.exists(), "the failed container's cgroup is left");
        ensure!(
            cd.ok(&["containers", "ls", "-q"])?.is_empty(),
            "a container is left"
        );
        eprintln!("ctr showed: {line}");
        Ok(r.code)
    })
}
