//! What a rootless container cannot get, measured once per run as the user: the harness runs
//! the hidden `hako-conformance rootless-probe WHAT ARG` mode as the user ([`Limits::probe`]),
//! which, for what a runtime would attempt inside the container's user namespace, first enters
//! a user namespace of its own mapping root to itself (user_namespaces(7): full capabilities
//! there, none over what the initial namespace owns), tries the one operation and prints
//! `ok` or the error. A probe that finds the operation permitted limits nothing.

use super::Identity;
use crate::case::Probe;
use anyhow::{Context, Result};
use std::path::Path;
use std::process::{Command, Stdio};

/// Rootless limits found on this host, each the probe that found it; `None`: permitted.
#[derive(Debug, Default)]
pub struct Limits {
    /// mkdir(2) of a cgroup where the cases put theirs.
    pub cgroup: Option<Probe>,
    /// mknod(2) of a character device in a user namespace.
    pub mknod: Option<Probe>,
    /// setns(2) from a user namespace into a namespace root made (the cases' holders).
    pub setns: Option<Probe>,
    /// SCHED_RR in a user namespace.
    pub sched_rt: Option<Probe>,
    /// The real-time I/O class in a user namespace.
    pub ioprio_rt: Option<Probe>,
    /// mount(2) from a user namespace in a mount namespace the initial one owns.
    pub host_mount: Option<Probe>,
    /// A write to a UTS sysctl (kernel.domainname) from a user namespace owning the UTS
    /// namespace.
    pub uts_sysctl: Option<Probe>,
    /// mount(2) of an mqueue from a user namespace in an IPC namespace the initial one owns.
    pub host_mqueue: Option<Probe>,
}

/// One probe's outcome: `Ok` when permitted, else the error text.
fn run_probe(exe: &Path, id: &Identity, what: &str, arg: &str) -> Result<Option<String>> {
    let mut cmd = Command::new(exe);
    cmd.args(["rootless-probe", what, arg]);
    id.apply(&mut cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().with_context(|| format!("spawn {cmd:?}"))?;
    let pid = i32::try_from(child.id()).unwrap_or(0);
    if !crate::sys::wait_pid_exit(pid, super::PROBE_TIMEOUT)? {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok(match text.as_str() {
        "ok" => None,
        "" => Some(format!(
            "no answer: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        t => Some(t.to_string()),
    })
}

impl Limits {
    /// Measures each limit as user `id`, running probe binary `exe` (a copy the user can run).
    /// `cgroup_dir` is where a case's cgroup would be made (one hierarchy's root).
    pub fn probe(exe: &Path, id: &Identity, cgroup_dir: &Path) -> Result<Self> {
        let who = format!("uid {}", id.uid);
        let limit = |what: &str, arg: &str, probed: String| -> Result<Option<Probe>> {
            Ok(run_probe(exe, id, what, arg)?.map(|found| Probe::new(probed, found)))
        };
        let holder = std::process::id().to_string();
        Ok(Limits {
            cgroup: limit(
                "cgroup",
                &cgroup_dir.to_string_lossy(),
                format!(
                    "mkdir(2) of a cgroup in {} as {who}",
                    cgroup_dir.display()
                ),
            )?
            .map(|p| Probe::new(p.probed, format!("{}: no cgroup tree is delegated to the user", p.found))),
            mknod: limit(
                "mknod",
                &id.xdg().to_string_lossy(),
                format!("mknod(2) of char device 1:3 in a user namespace as {who}"),
            )?,
            setns: limit(
                "setns",
                &holder,
                format!("setns(2) from a user namespace as {who} into the uts namespace of a process of root's (the harness)"),
            )?,
            sched_rt: limit(
                "sched",
                "5",
                format!("sched_setscheduler(SCHED_RR, 5) in a user namespace as {who}"),
            )?,
            ioprio_rt: limit(
                "ioprio",
                "4",
                format!("ioprio_set(IOPRIO_CLASS_RT, 4) in a user namespace as {who}"),
            )?,
            host_mount: limit(
                "mount",
                &id.xdg().to_string_lossy(),
                format!("mount(2) of a tmpfs from a user namespace as {who}, in the host's mount namespace"),
            )?,
            uts_sysctl: limit(
                "uts-sysctl",
                "conf.probe",
                format!("write of /proc/sys/kernel/domainname in a user namespace and a UTS namespace it owns, as {who}"),
            )?,
            host_mqueue: limit(
                "mqueue",
                &id.xdg().to_string_lossy(),
                format!("mount(2) of an mqueue from a user namespace as {who}, in the host's IPC namespace"),
            )?,
        })
    }
}

/// Enters a new user namespace mapping root to the caller's uid and gid (setgroups denied, as
/// an unprivileged process must, user_namespaces(7)).
fn enter_user_namespace() -> std::io::Result<()> {
    let uid = nix::unistd::getuid();
    let gid = nix::unistd::getgid();
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER)?;
    std::fs::write("/proc/self/setgroups", "deny")?;
    std::fs::write("/proc/self/uid_map", format!("0 {uid} 1"))?;
    std::fs::write("/proc/self/gid_map", format!("0 {gid} 1"))?;
    Ok(())
}

fn attempt(what: &str, arg: &str) -> std::io::Result<()> {
    use nix::sys::stat::{makedev, mknod, Mode, SFlag};
    let in_userns = || {
        enter_user_namespace()
            .map_err(|e| std::io::Error::other(format!("entering a user namespace: {e}")))
    };
    match what {
        "cgroup" => {
            let dir = Path::new(arg).join(format!("hako-conf-probe-{}", std::process::id()));
            std::fs::create_dir(&dir)?;
            std::fs::remove_dir(&dir)
        }
        "mknod" => {
            in_userns()?;
            let node = Path::new(arg).join("probe-null");
            mknod(
                &node,
                SFlag::S_IFCHR,
                Mode::from_bits_truncate(0o600),
                makedev(1, 3),
            )?;
            std::fs::remove_file(&node)
        }
        "setns" => {
            in_userns()?;
            let f = std::fs::File::open(format!("/proc/{arg}/ns/uts"))?;
            nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWUTS)?;
            Ok(())
        }
        "sched" => {
            in_userns()?;
            crate::sys::set_round_robin(arg.parse().unwrap_or(5))
        }
        "ioprio" => {
            in_userns()?;
            crate::sys::set_ioprio_realtime(arg.parse().unwrap_or(4))
        }
        "mount" => {
            in_userns()?;
            nix::mount::mount(
                Some("tmpfs"),
                arg,
                Some("tmpfs"),
                nix::mount::MsFlags::empty(),
                None::<&str>,
            )?;
            nix::mount::umount(arg)?;
            Ok(())
        }
        "uts-sysctl" => {
            in_userns()?;
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUTS)?;
            std::fs::write("/proc/sys/kernel/domainname", arg)
        }
        "mqueue" => {
            in_userns()?;
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
            nix::mount::mount(
                Some("mqueue"),
                arg,
                Some("mqueue"),
                nix::mount::MsFlags::empty(),
                None::<&str>,
            )?;
            nix::mount::umount(arg)?;
            Ok(())
        }
        other => Err(std::io::Error::other(format!("unknown probe {other}"))),
    }
}

/// Entry point of `hako-conformance rootless-probe WHAT ARG`: prints `ok` or the error.
pub fn main(argv: &[String]) -> i32 {
    let (Some(what), Some(arg)) = (argv.first(), argv.get(1)) else {
        eprintln!("usage: hako-conformance rootless-probe WHAT ARG");
        return 2;
    };
    match attempt(what, arg) {
        Ok(()) => println!("ok"),
        Err(e) => println!("{}", describe(&e)),
    }
    0
}

/// `EPERM: Operation not permitted`-style text of an error.
fn describe(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).to_string(),
        None => e.to_string(),
    }
}
