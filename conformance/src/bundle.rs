//! One case's bundle: a directory with a busybox rootfs and a config, the container id that
//! goes with it, the runtime verbs on that id, and cleanup that does not trust the runtime.

use crate::case::Outcome;
use crate::check;
use crate::ctx::Ctx;
use crate::runtime::Run;
use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::time::Duration;

/// How long a started container may take to finish its checks.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

/// A bundle and its container; `Drop` deletes the container and removes everything.
pub struct Bundle<'a> {
    ctx: &'a Ctx,
    /// The container id.
    pub id: String,
    /// The bundle directory.
    pub dir: PathBuf,
    /// The config written on [`Bundle::create`].
    pub config: Value,
    /// Namespace inodes the config joins by path, by config type, for the checker.
    pub joined: Map<String, Value>,
    cgroup: String,
}

impl<'a> Bundle<'a> {
    /// A bundle under the context's work directory.
    pub fn new(ctx: &'a Ctx, unique: &str) -> Result<Self> {
        let id = format!("conf-{unique}");
        let dir = ctx.work.join(&id);
        std::fs::create_dir(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
        ctx.template.populate(&dir.join("rootfs"))?;
        let (cgroups_path, cgroup) = crate::systemd::cgroup_paths(ctx.rt.systemd_cgroup(), unique);
        Ok(Bundle {
            ctx,
            config: crate::config::base(&["/bin/true"], &cgroups_path),
            id,
            dir,
            joined: Map::new(),
            cgroup,
        })
    }

    /// The rootfs directory.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// The container's cgroup, relative to each hierarchy's root: the config's absolute
    /// cgroupsPath, or where systemd puts its unit (`--systemd-cgroup`).
    pub fn cgroup_path(&self) -> &str {
        &self.cgroup
    }

    /// The bundle path as a string.
    pub fn path(&self) -> String {
        self.dir.to_string_lossy().into_owned()
    }

    /// Sets `process.args`.
    pub fn args(&mut self, args: &[&str]) {
        self.config["process"]["args"] = json!(args);
    }

    /// Adds an annotation.
    pub fn annotate(&mut self, key: &str, value: &str) {
        if !self.config["annotations"].is_object() {
            self.config["annotations"] = json!({});
        }
        self.config["annotations"][key] = json!(value);
    }

    /// Writes config.json (bundle and `/.conformance` in the rootfs) and host.json.
    /// In a rootless run, the config written is shaped for the user and the bundle is handed
    /// to it (see [`crate::rootless`]).
    pub fn write(&self) -> Result<()> {
        let text = serde_json::to_vec_pretty(&*self.ctx.shaped(&self.config))?;
        std::fs::write(self.dir.join("config.json"), &text)?;
        let inner = self.rootfs().join(check::DIR.trim_start_matches('/'));
        if inner.is_dir() {
            std::fs::write(inner.join("config.json"), &text)?;
            let mono = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
                .map(|t| t.tv_sec())
                .unwrap_or(0);
            let host = json!({"ns": self.ctx.host.ns, "joined": self.joined, "monotonic": mono});
            std::fs::write(inner.join("host.json"), serde_json::to_vec(&host)?)?;
        }
        self.ctx.own_bundle(&self.dir)
    }

    /// The context this bundle belongs to.
    pub fn ctx(&self) -> &Ctx {
        self.ctx
    }

    /// Runs the runtime with `args`.
    pub fn runtime(&self, args: &[&str]) -> Result<Run> {
        self.ctx.rt.run(args, None)
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.join("pid")
    }

    fn out_file(&self) -> PathBuf {
        self.dir.join("container.out")
    }

    /// Writes the config and runs `create --bundle B --pid-file F ID`; the container's stdout
    /// and stderr go to `container.out`.
    pub fn create(&self) -> Result<Run> {
        self.write()?;
        self.create_from(&self.path())
    }

    /// `create` with another bundle path (for bad-bundle cases), without writing anything.
    pub fn create_from(&self, bundle: &str) -> Result<Run> {
        self.create_via(&self.ctx.rt, bundle)
    }

    /// `create` of `bundle` through `rt` (a wrapper around the runtime under test).
    pub fn create_via(&self, rt: &crate::runtime::Runtime, bundle: &str) -> Result<Run> {
        self.create_bounded(rt, bundle, crate::runtime::COMMAND_TIMEOUT)
    }

    /// `create` of `bundle`, killed after `timeout` (an error).
    pub fn create_within(&self, bundle: &str, timeout: Duration) -> Result<Run> {
        self.create_bounded(&self.ctx.rt, bundle, timeout)
    }

    fn create_bounded(
        &self,
        rt: &crate::runtime::Runtime,
        bundle: &str,
        timeout: Duration,
    ) -> Result<Run> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.out_file())?;
        let pid_file = self.pid_file().to_string_lossy().into_owned();
        rt.run_within(
            &[
                "create",
                "--bundle",
                bundle,
                "--pid-file",
                &pid_file,
                &self.id,
            ],
            Some(out),
            timeout,
        )
    }

    /// `start ID`.
    pub fn start(&self) -> Result<Run> {
        self.runtime(&["start", &self.id])
    }

    /// `kill ID SIGNAL`.
    pub fn kill(&self, signal: &str) -> Result<Run> {
        self.runtime(&["kill", &self.id, signal])
    }

    /// `delete [--force] ID`.
    pub fn delete(&self, force: bool) -> Result<Run> {
        if force {
            self.runtime(&["delete", "--force", &self.id])
        } else {
            self.runtime(&["delete", &self.id])
        }
    }

    /// `state ID`, parsed; fails if the runtime fails.
    pub fn state(&self) -> Result<Value> {
        let r = self.runtime(&["state", &self.id])?.ok("state")?;
        serde_json::from_str(&r.stdout).with_context(|| format!("state output {:?}", r.stdout))
    }

    /// The `status` of `state ID`.
    pub fn status(&self) -> Result<String> {
        Ok(self.state()?["status"].as_str().unwrap_or("").to_string())
    }

    /// The pid the runtime wrote to `--pid-file`.
    pub fn pid(&self) -> Result<i32> {
        let text = std::fs::read_to_string(self.pid_file()).context("read --pid-file")?;
        text.trim()
            .parse()
            .with_context(|| format!("pid file {text:?}"))
    }

    /// Waits (pidfd, bounded) until the container's init has exited.
    pub fn wait_exit(&self) -> Result<()> {
        let pid = self.pid()?;
        if !crate::sys::wait_pid_exit(pid, EXIT_TIMEOUT)? {
            bail!("container process {pid} still running after {EXIT_TIMEOUT:?}");
        }
        Ok(())
    }

    /// What the container wrote to stdout/stderr so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.out_file()).unwrap_or_default()
    }

    /// create + start + wait for exit: the container's output, or why it could not run.
    pub fn run_to_end(&self) -> Result<std::result::Result<String, String>> {
        let c = self.create()?;
        if !c.success() {
            return Ok(Err(format!("create failed: {}", c.stderr.trim())));
        }
        let s = self.start()?;
        if !s.success() {
            return Ok(Err(format!("start failed: {}", s.stderr.trim())));
        }
        self.wait_exit()?;
        Ok(Ok(self.output()))
    }

    /// Runs the checker with `groups` as the container's process (unless the case already made
    /// `process.args` a checker command line) and judges its report.
    pub fn check(&mut self, groups: &[&str]) -> Result<Outcome> {
        // A case may have set its own checker command line (extra argv, PATH lookup).
        if self.config["process"]["args"][1] != "check" {
            self.config["process"]["args"] = crate::config::checker_args(groups);
        }
        let out = match self.run_to_end()? {
            Ok(out) => out,
            Err(why) => return Ok(Outcome::Fail(why)),
        };
        Ok(judge(&out))
    }

    /// Every cgroup directory of this container that exists on the host: one per v1
    /// hierarchy, or the single `/sys/fs/cgroup/<cgroupsPath>` on a unified host.
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        let rel = self.cgroup.trim_start_matches('/');
        if self.ctx.host.unified {
            let dir = PathBuf::from("/sys/fs/cgroup").join(rel);
            return if dir.is_dir() { vec![dir] } else { Vec::new() };
        }
        std::fs::read_dir("/sys/fs/cgroup")
            .map(|d| {
                d.flatten()
                    .map(|e| e.path().join(rel))
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The host-side directory of this container's cgroup in hierarchy `controller`; on a
    /// unified host every controller shares `/sys/fs/cgroup/<cgroupsPath>`.
    pub fn cgroup_dir(&self, controller: &str) -> PathBuf {
        let root = PathBuf::from("/sys/fs/cgroup");
        let root = if self.ctx.host.unified {
            root
        } else {
            root.join(controller)
        };
        root.join(self.cgroup.trim_start_matches('/'))
    }
}

/// Turns the checker's lines into an outcome: any failed check fails the case; a checker
/// that never reached its end fails it; only skipped checks skip it.
pub fn judge(out: &str) -> Outcome {
    let mut fails = Vec::new();
    let mut skips = Vec::new();
    let mut oks = 0;
    for line in out.lines() {
        let Some(j) = line.strip_prefix(check::PREFIX) else {
            continue;
        };
        let v: Value = serde_json::from_str(j).unwrap_or(Value::Null);
        let name = v["check"].as_str().unwrap_or("?");
        let detail = v["detail"].as_str().unwrap_or("");
        match v["status"].as_str() {
            Some("ok") => oks += 1,
            Some("skip") => skips.push(format!("{name}: {detail}")),
            _ => fails.push(format!("{name}: {detail}")),
        }
    }
    if !fails.is_empty() {
        return Outcome::Fail(fails.join("; "));
    }
    if !out.lines().any(|l| l == check::END) {
        let tail: String = out
            .chars()
            .rev()
            .take(400)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return Outcome::Fail(format!(
            "the checker did not finish; output: {:?}",
            tail.trim()
        ));
    }
    if oks == 0 {
        if skips.is_empty() {
            return Outcome::Fail("the checker ran no check".into());
        }
        return Outcome::Skip(crate::case::Probe::new(
            "inside the container",
            skips.join("; "),
        ));
    }
    Outcome::Pass
}

impl Drop for Bundle<'_> {
    /// `delete --force`, then a safety net: thaw, kill and remove whatever cgroup directories
    /// are left, so a broken runtime cannot make the suite leak processes or cgroups.
    fn drop(&mut self) {
        let _ = self.delete(true);
        for d in self.cgroup_dirs() {
            remove_cgroup_tree(&d);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Thaws, kills and removes cgroup directory `d` and any child cgroups a runtime (or a mutant
/// with a nested cgroupsPath) left in it, children first.
fn remove_cgroup_tree(d: &std::path::Path) {
    if let Ok(entries) = std::fs::read_dir(d) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    let _ = std::fs::write(d.join("freezer.state"), "THAWED");
    let _ = std::fs::write(d.join("cgroup.kill"), "1");
    if let Ok(procs) = std::fs::read_to_string(d.join("cgroup.procs")) {
        for pid in procs.lines().filter_map(|p| p.parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = crate::sys::wait_pid_exit(pid, Duration::from_secs(5));
        }
    }
    let _ = std::fs::remove_dir(d);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judging() {
        let ok = "@conf {\"status\":\"ok\",\"check\":\"a\",\"detail\":\"\"}\n@conf-end\n";
        assert_eq!(judge(ok), Outcome::Pass);
        let bad = "@conf {\"status\":\"fail\",\"check\":\"a\",\"detail\":\"x\"}\n@conf-end\n";
        assert_eq!(judge(bad), Outcome::Fail("a: x".into()));
        assert!(matches!(
            judge("@conf {\"status\":\"ok\",\"check\":\"a\"}\n"),
            Outcome::Fail(_)
        ));
        let skipped = "@conf {\"status\":\"skip\",\"check\":\"a\",\"detail\":\"r\"}\n@conf-end\n";
        assert_eq!(
            judge(skipped),
            Outcome::Skip(crate::case::Probe::new("inside the container", "a: r"))
        );
        assert!(matches!(judge("@conf-end\n"), Outcome::Fail(_)));
    }
}
