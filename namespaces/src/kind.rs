//! The eight namespace kinds, with their names, clone flags and the order in
//! which they must be joined.
//!
//! Join order follows runc (libcontainer `orderNamespacePaths` / nsexec.c):
//! the user namespace first, because joining it grants the capabilities
//! needed to join the namespaces it owns (setns(2): "CAP_SYS_ADMIN in the
//! user namespace that owns the target namespace"), and the mount namespace
//! last, because setns(CLONE_NEWNS) changes root and cwd, after which the
//! remaining `/proc/...` paths might no longer be reachable.

use nix::sched::CloneFlags;
use oci_spec::runtime::LinuxNamespaceType;

/// A namespace kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    User,
    Ipc,
    Uts,
    Net,
    Pid,
    Cgroup,
    Time,
    Mount,
}

impl Kind {
    /// All kinds, in join order.
    pub(crate) const JOIN_ORDER: [Kind; 8] = [
        Kind::User,
        Kind::Ipc,
        Kind::Uts,
        Kind::Net,
        Kind::Pid,
        Kind::Cgroup,
        Kind::Time,
        Kind::Mount,
    ];

    /// Index into per-kind arrays.
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// The name used in `/proc/<pid>/ns/` and in the OCI spec.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Ipc => "ipc",
            Kind::Uts => "uts",
            Kind::Net => "net",
            Kind::Pid => "pid",
            Kind::Cgroup => "cgroup",
            Kind::Time => "time",
            Kind::Mount => "mnt",
        }
    }

    /// The `CLONE_NEW*` flag.
    pub(crate) fn flag(self) -> CloneFlags {
        match self {
            Kind::User => CloneFlags::CLONE_NEWUSER,
            Kind::Ipc => CloneFlags::CLONE_NEWIPC,
            Kind::Uts => CloneFlags::CLONE_NEWUTS,
            Kind::Net => CloneFlags::CLONE_NEWNET,
            Kind::Pid => CloneFlags::CLONE_NEWPID,
            Kind::Cgroup => CloneFlags::CLONE_NEWCGROUP,
            Kind::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
            Kind::Mount => CloneFlags::CLONE_NEWNS,
        }
    }

    /// The kind whose `CLONE_NEW*` value is `raw` (as returned by NS_GET_NSTYPE).
    pub(crate) fn from_raw(raw: i32) -> Option<Kind> {
        Kind::JOIN_ORDER
            .into_iter()
            .find(|k| k.flag().bits() == raw)
    }

    /// From the OCI type.
    pub(crate) fn from_oci(t: LinuxNamespaceType) -> Kind {
        match t {
            LinuxNamespaceType::User => Kind::User,
            LinuxNamespaceType::Ipc => Kind::Ipc,
            LinuxNamespaceType::Uts => Kind::Uts,
            LinuxNamespaceType::Network => Kind::Net,
            LinuxNamespaceType::Pid => Kind::Pid,
            LinuxNamespaceType::Cgroup => Kind::Cgroup,
            LinuxNamespaceType::Time => Kind::Time,
            LinuxNamespaceType::Mount => Kind::Mount,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_round_trip() {
        for k in Kind::JOIN_ORDER {
            assert_eq!(Kind::from_raw(k.flag().bits()), Some(k));
        }
        assert_eq!(Kind::from_raw(0), None);
    }

    #[test]
    fn index_is_dense() {
        for (i, k) in Kind::JOIN_ORDER.into_iter().enumerate() {
            assert!(k.index() < 8, "{i}");
        }
        assert_eq!(Kind::JOIN_ORDER[0], Kind::User);
        assert_eq!(Kind::JOIN_ORDER[7], Kind::Mount);
    }
}
