//! Rootless mode, as runc defines it: hako run by a user without privilege over the host.
//!
//! * Detection (`--rootless auto|true|false`): `auto` means rootless when the effective uid is
//!   not 0, or when hako runs in a user namespace other than the host's (uid 0 there has no
//!   privilege over the host's cgroups), as runc's `shouldUseRootlessCgroupManager`.
//! * The state root: `$XDG_RUNTIME_DIR/hako` for a non-root user (runc: `$XDG_RUNTIME_DIR/runc`),
//!   a directory only that user can enter (0700), so no other user sees or touches its
//!   containers; `/run/hako` otherwise.
//! * The cgroup: made and limited only where the user may (see `hako_cgroups::rootless`); no
//!   cgroup when none is needed; an error naming the limit when one is asked for and cannot be
//!   applied. The id maps an unprivileged user cannot write itself go through newuidmap and
//!   newgidmap (`hako_namespaces::newidmap`).

use std::path::PathBuf;

use hako_cgroups::{Cgroup, CgroupPath, Hierarchy, Resources};
use hako_namespaces::ProcessNamespaces;
use nix::errno::Errno;
use nix::sched::CloneFlags;

use crate::error::{Error, Result};
use crate::state::DEFAULT_ROOT;

/// Whether hako runs rootless, from the `--rootless` flag's value.
pub fn detect(flag: &str) -> Result<bool> {
    match flag {
        "true" => Ok(true),
        "false" => Ok(false),
        "auto" => Ok(!nix::unistd::geteuid().is_root() || in_user_namespace()),
        other => Err(Error::InvalidConfig {
            field: "--rootless",
            reason: format!("{other:?} is not one of true, false, auto"),
        }),
    }
}

/// Whether this process runs in a user namespace other than the host's: the host's identity
/// map is the full range (user_namespaces(7), "/proc/[pid]/uid_map").
fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|map| {
        let fields: Vec<&str> = map.split_whitespace().collect();
        fields != ["0", "0", "4294967295"]
    })
}

/// The default `--root`: `$XDG_RUNTIME_DIR/hako` when the variable is set and hako is not the
/// host's root, else `/run/hako`. As runc's `shouldHonorXDGRuntimeDir`: a user other than root;
/// or uid 0 in a user namespace (rootless podman runs the runtime so) unless `$USER` is `root`.
pub fn default_root() -> PathBuf {
    let honour = if !nix::unistd::geteuid().is_root() {
        true
    } else if !in_user_namespace() {
        false
    } else {
        std::env::var_os("USER").is_none_or(|u| u != "root")
    };
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(dir) if honour => PathBuf::from(dir).join("hako"),
        _ => PathBuf::from(DEFAULT_ROOT),
    }
}

/// Whether a container must have its cgroup, or may go without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CgroupNeed {
    /// Not rootless, or rootless with an explicit `linux.cgroupsPath`: the cgroup is made or
    /// `create` fails (runc ignores permission errors only "where an explicit cgroup path hasn't
    /// been set", libcontainer/cgroups/fs `isIgnorableError`).
    Required,
    /// Rootless without a `linux.cgroupsPath`: none where the user may make none.
    IfPermitted,
}

impl CgroupNeed {
    /// What `create` needs, from `--rootless` and the spec's `linux.cgroupsPath`.
    pub(crate) fn of(rootless: bool, spec: &oci_spec::runtime::Spec) -> Self {
        let explicit = spec
            .linux()
            .as_ref()
            .and_then(|l| l.cgroups_path().as_ref())
            .is_some_and(|p| !p.as_os_str().is_empty());
        if rootless && !explicit {
            CgroupNeed::IfPermitted
        } else {
            CgroupNeed::Required
        }
    }
}

/// Creates the container's cgroup and applies `resources`. Rootless, the user may be refused the
/// cgroup (cgroup v1, or v2 without a delegated subtree): then, where the cgroup is not required,
/// `None` when no limit is asked for, and an error naming the first limit otherwise. Rootless,
/// the device rules are never applied (they need privilege over the host; runc's rootless
/// manager ignores them too).
pub(crate) fn create_cgroup(
    path: &CgroupPath,
    resources: &Resources,
    rootless: bool,
    need: CgroupNeed,
) -> Result<Option<Cgroup>> {
    let resources = if rootless {
        resources.without_devices()
    } else {
        resources.clone()
    };
    match Cgroup::create(path) {
        Ok(cg) => apply(cg, &resources).map(Some),
        Err(e) if need == CgroupNeed::IfPermitted && e.is_permission() => {
            match resources.limit_fields().first() {
                Some(&field) => Err(Error::RootlessLimit { field, source: e }),
                None => Ok(None),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// The cgroup directories a container's `cgroup` mounts show: its own cgroup's, or, rootless
/// without one, those of the cgroup it runs in (hako's, which the init inherits), as runc binds
/// them.
pub(crate) fn mounted_hierarchies(cgroup: Option<&Cgroup>) -> Result<Vec<Hierarchy>> {
    match cgroup {
        Some(cg) => Ok(cg.hierarchies()),
        None => Ok(Cgroup::open(&CgroupPath::own()?)?.hierarchies()),
    }
}

/// Applies `resources`, removing the new cgroup again if that fails.
fn apply(cg: Cgroup, resources: &Resources) -> Result<Cgroup> {
    match cg.apply(resources) {
        Ok(()) => Ok(cg),
        Err(e) => {
            let _ = cg.destroy();
            Err(e.into())
        }
    }
}

/// For `exec`: moves our children into the container's pid namespace (setns(2) with
/// CLONE_NEWPID applies to children only). Rootless, the container's user namespace owns that
/// pid namespace and only its members may enter it: on EPERM we join the user namespace first,
/// as runc's nsexec joins it before the namespaces it owns.
pub(crate) fn join_pid_namespace(namespaces: &mut ProcessNamespaces) -> Result<()> {
    let setns = |ns: &ProcessNamespaces| match ns.pid() {
        Some(fd) => nix::sched::setns(fd, CloneFlags::CLONE_NEWPID),
        None => Ok(()),
    };
    match setns(namespaces) {
        Err(Errno::EPERM) if namespaces.enter_user_namespace()? => setns(namespaces),
        other => other,
    }
    .map_err(Error::sys("setns(container pid namespace)"))
}

/// `ps` of a container without a cgroup: with a pid namespace of its own, every process in it
/// (processes `exec` added are children of the exec'ing hako, not of the init); otherwise `init`
/// and every process descended from it. Read from /proc.
pub(crate) fn container_pids(init: i32) -> Result<Vec<i32>> {
    let pid_ns = |pid: i32| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let theirs = pid_ns(init);
    let own_ns = theirs.is_some() && theirs != pid_ns(std::process::id() as i32);
    let proc = std::path::Path::new("/proc");
    let entries = std::fs::read_dir(proc).map_err(Error::io("list", proc))?;
    let parents: std::collections::HashMap<i32, i32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| Some((pid, parent_of(pid)?)))
        .collect();
    let descends = |pid: i32| {
        let mut cur = pid;
        // Bounded: a parent chain is at most as long as the process table.
        for _ in 0..=parents.len() {
            if cur == init {
                return true;
            }
            match parents.get(&cur) {
                Some(&p) if p > 0 => cur = p,
                _ => return false,
            }
        }
        false
    };
    Ok(parents
        .keys()
        .copied()
        .filter(|&pid| descends(pid) || (own_ns && pid_ns(pid) == theirs))
        .collect())
}

/// The parent pid from /proc/<pid>/stat (the field after the command name, which may hold
/// spaces and parentheses: split at the last ')').
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_values() {
        assert!(detect("true").expect("true"));
        assert!(!detect("false").expect("false"));
        // The unit tests run as root on the host.
        assert_eq!(
            detect("auto").expect("auto"),
            !nix::unistd::geteuid().is_root() || in_user_namespace()
        );
        assert!(detect("maybe").is_err());
    }

    #[test]
    fn descendants_include_children_not_the_caller() {
        let mut child = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .expect("sleep");
        let me = std::process::id() as i32;
        let found = container_pids(me).expect("proc");
        let _ = child.kill();
        let _ = child.wait();
        assert!(found.contains(&me));
        assert!(found.contains(&(child.id() as i32)));
        assert!(!found.contains(&1));
    }
}
