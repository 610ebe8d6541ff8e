//! Root tests: joining namespaces, late unshares (cgroup, time), sysctls
//! and hostnames, each in a forked child.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};

use common::{chain, check, in_child, is_root};
use hako_namespaces::{
    join_process_namespaces, set_domainname, set_hostname, Error, Namespaces, Sysctls,
};
use nix::sched::CloneFlags;
use nix::unistd::{fork, ForkResult, Pid};
use serde_json::json;

fn linux(v: serde_json::Value) -> oci_spec::runtime::Linux {
    serde_json::from_value(v).unwrap()
}

/// A process holding a new UTS namespace with a given hostname until dropped.
struct Holder {
    pid: Pid,
    release: Option<std::fs::File>,
}

impl Holder {
    fn new(hostname: &str) -> Holder {
        let (ready_r, ready_w) = nix::unistd::pipe().unwrap();
        let (rel_r, rel_w) = nix::unistd::pipe().unwrap();
        // SAFETY: the child only makes syscalls and leaves with `_exit`.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                drop(ready_r);
                drop(rel_w);
                let ok = nix::sched::unshare(CloneFlags::CLONE_NEWUTS).is_ok()
                    && nix::unistd::sethostname(hostname).is_ok();
                let _ = std::fs::File::from(ready_w).write_all(&[u8::from(ok)]);
                let mut b = [0u8; 1];
                let _ = std::fs::File::from(rel_r).read(&mut b);
                // SAFETY: `_exit` is always safe.
                unsafe { libc::_exit(0) }
            }
            ForkResult::Parent { child } => {
                drop(ready_w);
                drop(rel_r);
                let mut b = [0u8; 1];
                std::fs::File::from(ready_r).read_exact(&mut b).unwrap();
                let h = Holder {
                    pid: child,
                    release: Some(std::fs::File::from(rel_w)),
                };
                assert_eq!(b[0], 1, "holder setup failed");
                h
            }
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        drop(self.release.take());
        let _ = nix::sys::wait::waitpid(self.pid, None);
    }
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[test]
fn join_uts_by_path_and_by_pid() {
    if !is_root() {
        return;
    }
    let name = "hako-join-test";
    let holder = Holder::new(name);
    let path = format!("/proc/{}/ns/uts", holder.pid);
    let ns = Namespaces::from_spec(Some(&linux(
        json!({"namespaces": [{"type": "uts", "path": path}]}),
    )))
    .unwrap();
    assert!(ns.clone_flags().is_empty());
    let fds = ns.open_joins().unwrap();
    assert!(fds.pid().is_none());
    in_child(CloneFlags::empty(), || {
        ns.join(fds).map_err(|e| chain(&e))?;
        check(hostname() == name, format!("hostname {}", hostname()))
    })
    .unwrap();
    let pid = holder.pid.as_raw();
    in_child(CloneFlags::empty(), || {
        join_process_namespaces(pid).map_err(|e| chain(&e))?;
        check(hostname() == name, format!("hostname {}", hostname()))
    })
    .unwrap();
    assert_ne!(hostname(), name);

    // A path of the wrong kind is refused before any clone.
    let wrong = format!("/proc/{}/ns/net", holder.pid);
    let ns = Namespaces::from_spec(Some(&linux(
        json!({"namespaces": [{"type": "uts", "path": wrong}]}),
    )))
    .unwrap();
    assert!(matches!(
        ns.open_joins(),
        Err(Error::NamespaceTypeMismatch { .. })
    ));
}

#[test]
fn pid_join_fd_is_exposed() {
    if !is_root() {
        return;
    }
    let ns = Namespaces::from_spec(Some(&linux(
        json!({"namespaces": [{"type": "pid", "path": "/proc/self/ns/pid"}, {"type": "mount"}]}),
    )))
    .unwrap();
    assert_eq!(ns.clone_flags(), CloneFlags::CLONE_NEWNS);
    let fds = ns.open_joins().unwrap();
    assert!(fds.pid().is_some());
}

#[test]
fn cgroup_namespace_is_unshared_late() {
    if !is_root() {
        return;
    }
    let ns = Namespaces::from_spec(Some(&linux(
        json!({"namespaces": [{"type": "cgroup"}, {"type": "mount"}]}),
    )))
    .unwrap();
    assert!(!ns.clone_flags().contains(CloneFlags::CLONE_NEWCGROUP));
    in_child(CloneFlags::empty(), || {
        ns.unshare_late().map_err(|e| chain(&e))?;
        let cg = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
        check(
            cg.lines().all(|l| l.ends_with(":/")),
            format!("cgroup paths: {cg}"),
        )
    })
    .unwrap();
}

#[test]
fn time_namespace_offsets_apply_after_exec() {
    if !is_root() {
        return;
    }
    let ns = Namespaces::from_spec(Some(&linux(json!({
        "namespaces": [{"type": "time"}],
        "timeOffsets": {"boottime": {"secs": 100000000}, "monotonic": {"secs": 5}}
    }))))
    .unwrap();
    in_child(CloneFlags::empty(), || {
        ns.unshare_late().map_err(|e| chain(&e))?;
        let err = nix::unistd::execv(
            c"/bin/busybox",
            &[
                c"sh",
                c"-c",
                c"test $(cut -d. -f1 /proc/uptime) -gt 100000000",
            ],
        );
        Err(format!("exec: {err:?}"))
    })
    .unwrap();
}

#[test]
fn hostname_domainname_and_sysctls() {
    if !is_root() {
        return;
    }
    let l = linux(json!({
        "namespaces": [{"type": "uts"}, {"type": "ipc"}, {"type": "mount"}],
        "sysctl": {"kernel.msgmax": "12345", "kernel.domainname": "sysctl-dom"}
    }));
    let ns = Namespaces::from_spec(Some(&l)).unwrap();
    ns.check_uts(Some("hako-host"), Some("hako-dom")).unwrap();
    let sysctls = Sysctls::from_spec(Some(&l), &ns).unwrap();
    let host_name = hostname();
    in_child(CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC, || {
        sysctls.apply().map_err(|e| chain(&e))?;
        let v = std::fs::read_to_string("/proc/sys/kernel/msgmax").map_err(|e| e.to_string())?;
        check(v.trim() == "12345", format!("msgmax {v}"))?;
        let d =
            std::fs::read_to_string("/proc/sys/kernel/domainname").map_err(|e| e.to_string())?;
        check(d.trim() == "sysctl-dom", format!("domainname {d}"))?;
        set_hostname("hako-host").map_err(|e| chain(&e))?;
        set_domainname("hako-dom").map_err(|e| chain(&e))?;
        let u = nix::sys::utsname::uname().map_err(|e| e.to_string())?;
        check(u.nodename() == "hako-host", "nodename")?;
        let d =
            std::fs::read_to_string("/proc/sys/kernel/domainname").map_err(|e| e.to_string())?;
        check(d.trim() == "hako-dom", format!("domainname {d}"))
    })
    .unwrap();
    assert_eq!(hostname(), host_name);
    assert_ne!(
        std::fs::read_to_string("/proc/sys/kernel/msgmax")
            .unwrap()
            .trim(),
        "12345"
    );
}
