//! hako: an OCI container runtime, as a library.
//!
//! The binary (`src/bin/hako`) only parses runc's command line and calls the verbs in [`verb`].
//! A container's life: `create` converts `config.json` once into a validated [`ContainerConfig`],
//! claims the id in the [`state::Store`], creates the cgroup and clones the init directly with its
//! namespace flags (no re-exec); parent and child follow the protocol drawn in
//! `runtime/docs/protocol.md` over one socketpair, and the init waits on the exec fifo until
//! `start`. The namespaces and rootfs live in `hako-namespaces`, cgroups in `hako-cgroups`.

pub mod criu;
pub mod error;
pub mod log;
pub mod signal;
pub mod state;
pub mod verb;

mod capabilities;
mod claim;
mod config;
mod console;
mod fds;
mod fifo;
mod hooks;
mod ids;
mod init;
mod lsm;
mod netdev;
mod parent_death;
mod pidfd;
mod placement;
mod process;
mod resctrl;
pub mod rootless;
mod rtnetlink;
mod scan;
mod scheduling;
mod seccomp;
mod spawn;
mod sync;
mod sys;
mod timestamp;
mod trampoline;
mod tty_proxy;
mod wait;

pub use config::{load_spec, ContainerConfig};
pub use error::{Error, Result};
pub use hooks::HookError;
pub use process::ProcessConfig;
pub use seccomp::SeccompError;
pub use sync::RemoteError;

/// Logs a non-fatal error as a warning.
pub(crate) fn warn(err: &Error) {
    log::warn(err);
}
