//! What a container made by an unprivileged user may do with cgroups, as runc's rootless cgroup
//! manager decides it (libcontainer/cgroups/fs and fs2 with `Rootless: true`).
//!
//! Without a delegated subtree (cgroup v1, or v2 where the user owns no directory) there is no
//! cgroup at all: that is fine when the config sets no limit, and an error naming the first limit
//! when it sets one ("cannot set pids limit: container could not join or create cgroup", runc).
//! With a delegated v2 subtree the cgroup is made and the limits applied. The device rules are
//! never applied: the v1 devices controller and the v2 eBPF device program both need
//! CAP_SYS_ADMIN in the host (runc ignores them too); a rootless container's device nodes are
//! bind mounts of the host's, which the host's own permissions already guard.

use std::io::ErrorKind;

use crate::resources::Resources;
use crate::Error;

impl Resources {
    /// The spec fields of every limit this sets, except the device rules (see the module docs).
    pub fn limit_fields(&self) -> Vec<&'static str> {
        let m = &self.memory;
        let c = &self.cpu;
        let b = &self.block_io;
        [
            ("linux.resources.memory.limit", m.limit.is_some()),
            (
                "linux.resources.memory.reservation",
                m.reservation.is_some(),
            ),
            ("linux.resources.memory.swap", m.swap.is_some()),
            ("linux.resources.memory.swappiness", m.swappiness.is_some()),
            (
                "linux.resources.memory.disableOOMKiller",
                m.disable_oom_killer,
            ),
            ("linux.resources.memory.kernel", m.kernel.is_some()),
            ("linux.resources.memory.kernelTCP", m.kernel_tcp.is_some()),
            ("linux.resources.cpu.shares", c.shares.is_some()),
            ("linux.resources.cpu.quota", c.quota.is_some()),
            ("linux.resources.cpu.period", c.period.is_some()),
            ("linux.resources.cpu.burst", c.burst.is_some()),
            (
                "linux.resources.cpu.realtimeRuntime",
                c.realtime_runtime.is_some(),
            ),
            (
                "linux.resources.cpu.realtimePeriod",
                c.realtime_period.is_some(),
            ),
            ("linux.resources.cpu.cpus", c.cpus.is_some()),
            ("linux.resources.cpu.mems", c.mems.is_some()),
            ("linux.resources.cpu.idle", c.idle.is_some()),
            ("linux.resources.pids.limit", self.pids_limit.is_some()),
            ("linux.resources.blockIO", !b.is_empty()),
            (
                "linux.resources.hugepageLimits",
                !self.hugepage_limits.is_empty(),
            ),
            (
                "linux.resources.network.classID",
                self.net_cls_classid.is_some(),
            ),
            (
                "linux.resources.network.priorities",
                !self.net_prio.is_empty(),
            ),
            ("linux.resources.rdma", !self.rdma.is_empty()),
            ("linux.resources.unified", !self.unified.is_empty()),
        ]
        .into_iter()
        .filter_map(|(field, set)| set.then_some(field))
        .collect()
    }

    /// The same limits without the device rules, for a rootless container's cgroup.
    pub fn without_devices(&self) -> Self {
        let mut out = self.clone();
        out.devices = None;
        out
    }
}

impl Error {
    /// Whether this is the kernel refusing an unprivileged user (EACCES, EPERM, or a read-only
    /// cgroupfs): for a rootless container, "not delegated", not a failure of hako.
    pub fn is_permission(&self) -> bool {
        let io = match self {
            Error::Mkdir { source, .. }
            | Error::Write { source, .. }
            | Error::AddProcess { source, .. } => source,
            _ => return false,
        };
        io.kind() == ErrorKind::PermissionDenied
            || io.raw_os_error() == Some(libc::EPERM)
            || io.raw_os_error() == Some(libc::EROFS)
    }
}

#[cfg(test)]
mod tests {
    use oci_spec::runtime::{LinuxPidsBuilder, LinuxResourcesBuilder};

    use super::*;

    #[test]
    fn default_resources_set_no_limit_but_devices() {
        let r = Resources::from_spec(None, &[]).expect("valid");
        assert!(r.limit_fields().is_empty());
        assert!(!r.is_empty());
        assert!(r.without_devices().is_empty());
    }

    #[test]
    fn a_pids_limit_is_named() {
        let spec = LinuxResourcesBuilder::default()
            .pids(
                LinuxPidsBuilder::default()
                    .limit(10)
                    .build()
                    .expect("valid"),
            )
            .build()
            .expect("valid");
        let r = Resources::from_spec(Some(&spec), &[]).expect("valid");
        assert_eq!(r.limit_fields(), ["linux.resources.pids.limit"]);
    }

    #[test]
    fn permission_errors_are_recognised() {
        let e = Error::Mkdir {
            path: "/sys/fs/cgroup/cpu/x".into(),
            source: std::io::Error::from_raw_os_error(libc::EACCES),
        };
        assert!(e.is_permission());
        let e = Error::Mkdir {
            path: "/sys/fs/cgroup/cpu/x".into(),
            source: std::io::Error::from_raw_os_error(libc::ENOSPC),
        };
        assert!(!e.is_permission());
    }
}
