//! hako-namespaces: the namespace and root filesystem layer of hako.
//!
//! The runtime converts the spec once, in the parent ([`Namespaces::from_spec`],
//! [`IdMappings::from_spec`], [`Rootfs::from_spec`], [`Sysctls::from_spec`]),
//! opens the namespaces to join ([`Namespaces::open_joins`]) and clones the
//! container's init with [`Namespaces::clone_flags`]. The parent writes the
//! id maps ([`IdMappings::write`]) and cgroup membership; the child, single
//! threaded, then runs in order:
//!
//! 1. [`Namespaces::join`], [`Namespaces::unshare_late`];
//! 2. [`Rootfs::prepare`];
//! 3. (createContainer hooks, run by the runtime);
//! 4. [`Rootfs::enter`];
//! 5. [`Rootfs::finish`];
//! 6. [`set_hostname`], [`set_domainname`], [`Sysctls::apply`].
//!
//! Without a mount namespace of the container's own ([`Rootfs::needs_mount_record`]), the
//! runtime hands the plan a [`MountRecord`] in the container's state directory before the
//! clone; the child writes each mount it makes in the caller's namespace there, and
//! [`unmount_recorded`] takes them down when the container goes.
//!
//! Paths inside the container root are always resolved relative to a
//! directory fd (openat2 `RESOLVE_IN_ROOT`), never by string joining: the
//! image is untrusted.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod error;
mod idmap;
mod join;
mod kind;
mod mount_opts;
mod newidmap;
mod ns;
mod resolve;
mod rootfs;
mod sys;
mod sysctl;
mod uts;

pub use error::Error;
pub use idmap::IdMappings;
pub use join::{join_process_namespaces, JoinFds, ProcessNamespaces};
pub use newidmap::user_name;
pub use ns::Namespaces;
pub use rootfs::{unmount_recorded, CgroupMount, IdmappedTrees, MountRecord, Rootfs};
pub use sysctl::Sysctls;
pub use uts::{set_domainname, set_hostname};
