//! The runtime's error type: one variant per failed operation, with its context.
//!
//! Causes go in `#[source]` and never into the message, so the binary can print the chain one cause
//! per line (and join it with `: ` for runc-style `--log` JSON lines that containerd shows users).
//! Phrases that clients match on (`container does not exist`, `container not running`,
//! `container with id exists`) are spelled exactly as runc spells them.

use std::path::PathBuf;

use crate::sync::RemoteError;

/// Everything that can go wrong in a lifecycle operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The container id is not acceptable as a directory name (runc's rule: `^[\w+\-\.]+$`).
    #[error(
        "invalid container id {id:?}: only letters, digits, '_', '+', '-' and '.' are allowed"
    )]
    InvalidId {
        /// The rejected id.
        id: String,
    },
    /// No state directory for this id under `--root`.
    #[error("container does not exist")]
    NotExist {
        /// The id asked for.
        id: String,
    },
    /// `create` with an id that is already taken.
    #[error("container with id exists: {id}")]
    Exists {
        /// The duplicate id.
        id: String,
    },
    /// The verb needs a live container.
    #[error("container not running")]
    NotRunning {
        /// The container's id.
        id: String,
    },
    /// A rootless container made without a cgroup (no delegated subtree): pause, resume,
    /// update and events have nothing to act on.
    #[error("container {id} has no cgroup: rootless without a delegated cgroup v2 subtree")]
    NoCgroup {
        /// The container's id.
        id: String,
    },
    /// The verb is not allowed in the container's current status.
    #[error("cannot {verb} container {id} in status {status}")]
    BadStatus {
        /// What was asked (`start`, `delete`, `pause`, ...).
        verb: &'static str,
        /// The container's id.
        id: String,
        /// Its status now.
        status: crate::state::Status,
    },
    /// `start` of a container that is not `created`, in runc's words.
    #[error("cannot start {what}")]
    CannotStart {
        /// The container's id.
        id: String,
        /// Why, as runc says it (`a container in the paused state`, ...).
        what: &'static str,
    },
    /// A container in the store whose state could not be read (`list` names it and goes on).
    #[error("load container {id}")]
    LoadContainer {
        /// The directory's name.
        id: String,
        /// Why it could not be read.
        #[source]
        source: Box<Error>,
    },
    /// `config.json` is not valid JSON or not a valid spec.
    #[error("parse {path}")]
    ParseConfig {
        /// Path of the config.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: serde_json::Error,
    },
    /// A config field hako does not honour (yet): never silently ignored.
    #[error("{field} is not supported by hako yet")]
    Unsupported {
        /// The JSON path of the field, e.g. `linux.seccomp`.
        field: &'static str,
    },
    /// A config value that is present but wrong.
    #[error("invalid config: {field}: {reason}")]
    InvalidConfig {
        /// The JSON path of the field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The namespaces crate refused or failed.
    #[error("namespaces")]
    Namespaces(#[from] hako_namespaces::Error),
    /// `linux.seccomp` could not be compiled, loaded or handed to its listener.
    #[error("seccomp")]
    Seccomp(#[from] crate::seccomp::SeccompError),
    /// An LSM label could not be validated or applied.
    #[error("lsm")]
    Lsm(#[from] crate::lsm::LsmError),
    /// A rootless container asks for a limit, and its user may make no cgroup to apply it in.
    #[error("cannot set {field}: a rootless container has no cgroup without a delegated cgroup v2 subtree")]
    RootlessLimit {
        /// The JSON path of the limit.
        field: &'static str,
        /// Why the cgroup could not be made.
        #[source]
        source: hako_cgroups::Error,
    },
    /// The cgroups crate refused or failed.
    #[error("cgroup")]
    Cgroup(#[from] hako_cgroups::Error),
    /// A file or directory operation on the host side.
    #[error("{op} {path}")]
    Io {
        /// What was done (`create state dir`, `write pid file`, ...).
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A CPU affinity or memory policy the kernel refused (set_mempolicy(2),
    /// sched_setaffinity(2)).
    #[error("apply {field}")]
    Placement {
        /// The config field, e.g. `linux.memoryPolicy`.
        field: &'static str,
        /// Why it failed.
        #[source]
        source: nix::Error,
    },
    /// A network device of `linux.netDevices` could not be moved into the container.
    #[error("linux.netDevices: {op} {device:?}")]
    NetDevice {
        /// What failed (`move`, `add address to`, `set up`...).
        op: &'static str,
        /// The device's host name.
        device: String,
        /// Why it failed.
        #[source]
        source: nix::Error,
    },
    /// A system call that is not about one path.
    #[error("{syscall}")]
    Sys {
        /// The system call (and what for).
        syscall: &'static str,
        /// Why it failed.
        #[source]
        source: nix::Error,
    },
    /// The state file is not what hako writes.
    #[error("parse state {path}")]
    ParseState {
        /// Path of `state.json`.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: serde_json::Error,
    },
    /// Writing a verb's output (`list`) to stdout.
    #[error("write output")]
    Output {
        /// Why it failed (a closed pipe, a full disk).
        #[source]
        source: std::io::Error,
    },
    /// Serialising JSON for output, hooks or the sync socket.
    #[error("encode {what}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// Why it failed.
        #[source]
        source: serde_json::Error,
    },
    /// The container's init reported a failure while setting itself up.
    #[error("unable to start container process")]
    Init(#[source] RemoteError),
    /// The container's init died without saying why.
    #[error("container init exited before it was ready ({status})")]
    InitDied {
        /// How it ended (from waitpid).
        status: String,
    },
    /// A message on the sync socket that does not fit the protocol.
    #[error("sync protocol: expected {expected}, got {got}")]
    Protocol {
        /// What the state machine waited for.
        expected: &'static str,
        /// What arrived: the message's type, never its payload.
        got: &'static str,
    },
    /// A message could not be sent on the sync socket.
    #[error("send {message} message ({bytes} bytes) on sync socket")]
    SyncSend {
        /// The message's type.
        message: &'static str,
        /// Its encoded length.
        bytes: usize,
        /// Why it failed.
        #[source]
        source: nix::Error,
    },
    /// A message on the sync socket is not one of the protocol's.
    #[error("sync protocol: a message of {bytes} bytes is not a sync message")]
    SyncDecode {
        /// Its length (the payload itself is never pasted into an error).
        bytes: usize,
        /// Why it did not parse.
        #[source]
        source: serde_json::Error,
    },
    /// A datagram or its control data did not fit the receive buffer (`MSG_TRUNC`/`MSG_CTRUNC`).
    #[error("sync protocol: a datagram was truncated to {capacity} bytes")]
    SyncTruncated {
        /// The receive buffer's size.
        capacity: usize,
    },
    /// A message longer than the protocol accepts.
    #[error("sync protocol: a message longer than {limit} bytes")]
    SyncTooLarge {
        /// The limit.
        limit: usize,
    },
    /// A hook failed (exit status, timeout or exec failure).
    #[error("{kind} hook {path}")]
    Hook {
        /// Which hook list (`prestart`, `poststop`, ...).
        kind: &'static str,
        /// The hook's executable.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: crate::hooks::HookError,
    },
    /// Checkpoint or restore failed in CRIU (`criu` module).
    #[error("checkpoint/restore")]
    Criu(#[from] crate::criu::CriuError),
    /// A signal name or number that is not a signal.
    #[error("invalid signal {0:?}")]
    InvalidSignal(String),
    /// The CVE-2019-5736 trampoline could not be made or exec'd: hako fails closed rather
    /// than exec the program with its own binary as `/proc/self/exe`.
    #[error("exec through a sealed memfd (CVE-2019-5736 protection): {step}")]
    Trampoline {
        /// What failed.
        step: &'static str,
        /// The kernel's answer.
        #[source]
        source: nix::Error,
    },
    /// A clone with flags that break the fork semantics hako's clones rely on (`spawn.rs`).
    #[error("clone: flags {flags:#x} would share memory, pointers or descriptors with the child")]
    CloneFlags {
        /// The refused flags.
        flags: u64,
    },
    /// Another hako command held the container's lock for longer than hako waits for it.
    #[error("container {id} is busy: another hako command holds it (gave up after {seconds}s)")]
    Busy {
        /// The container.
        id: String,
        /// How long hako waited for the lock.
        seconds: u64,
    },
    /// A timed wait ran out.
    #[error("timed out after {seconds}s waiting for {what}")]
    Timeout {
        /// What was waited for.
        what: &'static str,
        /// How long.
        seconds: u64,
    },
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::Io`] for `op` on `path`.
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }

    /// An [`Error::Sys`] for `syscall`.
    pub(crate) fn sys(syscall: &'static str) -> impl FnOnce(nix::Error) -> Self {
        move |source| Error::Sys { syscall, source }
    }
}
