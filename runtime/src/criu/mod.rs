//! Checkpoint and restore through CRIU's RPC service (`criu swrk`), as runc and youki use it.
//!
//! Only `hako checkpoint` and `hako restore` reach this module: the create/start/exec path never
//! calls into it, so its code is never paged in there (the release binary is static and the
//! kernel maps program text on first touch).
//!
//! The RPC's protobuf messages are encoded by hand (`wire.rs`, `rpc.rs`) rather than through a
//! client crate: `rust-criu` (what youki uses) pins `protobuf = 3.7.2` exactly, generates its
//! 6,600-line `rpc.rs` with reflection tables at build time through `protobuf-codegen`, and
//! brings the whole protobuf runtime into the binary; `prost` needs `protoc` or generated code,
//! a proc-macro and `bytes`. hako sends one request type with ~30 fields and reads four response
//! fields: a few hundred lines with no dependency, tested against the wire format.

mod describe;
mod mountpoints;
mod rpc;
mod swrk;
mod version;
mod wire;

use std::path::{Path, PathBuf};

pub(crate) use describe::{
    dump_opts, restore_opts, stdio_pipes, DumpFacts, DumpFlags, Layout, MountPoint, RestoreFacts,
};
pub use describe::{empty_ns_mask, parse_page_server, CriuFlags};
pub(crate) use mountpoints::prepare_mount_points;
pub(crate) use rpc::{request, Notify, ReqType};
pub use rpc::{CgMode, CriuVersion};
pub(crate) use swrk::Swrk;
pub use version::MINIMUM;
pub(crate) use version::{check as check_version, check_features};

/// The file runc writes into the images directory with the init's stdio (what
/// `/proc/PID/fd/0..2` linked to), so that restore can reconnect pipes; hako writes the same.
pub(crate) const DESCRIPTORS_FILE: &str = "descriptors.json";

/// What CRIU itself said: its error message, or the end of its stderr.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CriuSaid(pub String);

/// A checkpoint or restore failed in CRIU or talking to it.
#[derive(Debug, thiserror::Error)]
pub enum CriuError {
    /// The criu executable could not be started.
    #[error("cannot run {criu} (checkpoint/restore needs CRIU, https://criu.org)")]
    Spawn {
        /// The executable (`--criu`, default `criu` from PATH).
        criu: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// CRIU did not answer the version request (CRIU before 3.0 does not know it).
    #[error("{criu} did not tell its version (checkpoint/restore needs CRIU 3.0.0 or newer)")]
    NoVersion {
        /// The executable.
        criu: PathBuf,
        /// What went wrong.
        #[source]
        source: Box<crate::error::Error>,
    },
    /// CRIU is older than `MINIMUM` (runc refuses it too: "CRIU version ... must be 30000 or
    /// higher").
    #[error("{criu} is CRIU {version}: checkpoint/restore needs CRIU 3.0.0 or newer")]
    TooOld {
        /// The executable.
        criu: PathBuf,
        /// What it said it is.
        version: String,
    },
    /// CRIU lacks a feature a flag needs, on this kernel (its `FEATURE_CHECK` answer).
    #[error("{criu} is missing features on this kernel: {features}")]
    MissingFeatures {
        /// The executable.
        criu: PathBuf,
        /// The features, with the flag that needs each.
        features: String,
    },
    /// CRIU answered that the request failed.
    #[error("criu failed: type {request} errno {errno}, log file: {}", log.display())]
    Failed {
        /// `DUMP`, `PRE_DUMP`, `RESTORE`.
        request: &'static str,
        /// CRIU's errno.
        errno: i32,
        /// CRIU's log (in the work directory).
        log: PathBuf,
        /// CRIU's message.
        #[source]
        said: CriuSaid,
    },
    /// CRIU exited without answering, or unsuccessfully after answering.
    #[error("criu {request} ended with {status}, log file: {}", log.display())]
    Died {
        /// The request it was serving.
        request: &'static str,
        /// Its exit status.
        status: String,
        /// CRIU's log (in the work directory; absent if CRIU died before it opened it).
        log: PathBuf,
        /// The end of its stderr.
        #[source]
        said: CriuSaid,
    },
    /// CRIU's answer is not protobuf.
    #[error("criu swrk answer")]
    Decode(#[source] wire::Malformed),
    /// An answer of the wrong type.
    #[error("criu swrk answered type {got} to a {expected} request")]
    Protocol {
        /// The request type sent.
        expected: &'static str,
        /// The type that came back.
        got: i32,
    },
    /// A flag value runc would refuse.
    #[error("invalid {flag} {value:?}: {reason}")]
    InvalidFlag {
        /// The flag.
        flag: &'static str,
        /// Its value.
        value: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A config field or flag `restore` cannot honour (as `create` would): refused before
    /// anything is made, never dropped silently.
    #[error("restore cannot honour {what}: {reason}")]
    CannotRestore {
        /// The field (`linux.netDevices`) or flag (`--rootless`).
        what: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// The container is not in a state that can be checkpointed.
    #[error("container cannot be checkpointed in {status} state")]
    CannotCheckpoint {
        /// Its status.
        status: crate::state::Status,
    },
}

/// Where `criu` (a path, or a name looked up in PATH as execve-based spawning does) is, if it
/// is an executable file: what `features` reports without running it.
pub fn find_executable(criu: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let is_exec = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if criu.components().count() > 1 {
        return is_exec(criu).then(|| criu.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(criu))
        .find(|p| is_exec(p))
}
