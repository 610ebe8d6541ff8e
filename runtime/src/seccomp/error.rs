//! What can go wrong validating, compiling, loading a seccomp profile or handing its listener fd
//! to the agent at `listenerPath`.

use std::path::PathBuf;

/// Errors of `linux.seccomp`: one variant per failed operation, the cause in `#[source]`.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// `errnoRet`/`defaultErrnoRet` given for an action that returns no errno (config-linux.md:
    /// "when the action doesn't support an errno, the runtime MUST print an error and fail").
    #[error("linux.seccomp.{field}: {action} takes no errno")]
    ErrnoNotSupported {
        /// JSON path of the field below `linux.seccomp`, e.g. `syscalls[3].errnoRet`.
        field: String,
        /// The action's name, e.g. `SCMP_ACT_ALLOW`.
        action: String,
    },
    /// The errno does not fit in `SECCOMP_RET_DATA` (16 bits).
    #[error("linux.seccomp.{field}: {value} does not fit in 16 bits")]
    ErrnoOutOfRange {
        /// JSON path of the field below `linux.seccomp`.
        field: String,
        /// The rejected value.
        value: u32,
    },
    /// A syscall rule without names, or with an empty name.
    #[error("linux.seccomp.syscalls[{rule}].names: a rule needs non-empty syscall names")]
    EmptyName {
        /// Index of the rule in `syscalls`.
        rule: usize,
    },
    /// An argument index past the sixth argument.
    #[error("linux.seccomp.syscalls[{rule}].args: index {index} is out of range (0..=5)")]
    ArgIndex {
        /// Index of the rule in `syscalls`.
        rule: usize,
        /// The rejected index.
        index: usize,
    },
    /// `SCMP_ACT_NOTIFY` is used but nobody would receive the listener fd.
    #[error("linux.seccomp: SCMP_ACT_NOTIFY needs listenerPath")]
    NotifyWithoutListener,
    /// `SCMP_ACT_NOTIFY` as `defaultAction`: the init's own syscalls after loading the filter
    /// would wait on a listener nobody holds yet (runc's refusal, in its words).
    #[error("SCMP_ACT_NOTIFY cannot be used as default action")]
    NotifyAsDefault,
    /// `SCMP_ACT_NOTIFY` on a syscall the init needs to hand the listener fd over (runc
    /// refuses `write` in these words; hako's init also needs `sendmsg`).
    #[error("SCMP_ACT_NOTIFY cannot be used for the {name} syscall")]
    NotifyOnNeededSyscall {
        /// The syscall's name.
        name: String,
    },
    /// `listenerPath` must be absolute (an `AF_UNIX` path outside the container).
    #[error("linux.seccomp.listenerPath: {path} is not absolute")]
    ListenerPathRelative {
        /// The rejected path.
        path: PathBuf,
    },
    /// hako was built for an architecture it has no syscall table for.
    #[error("seccomp is not supported on this architecture ({arch})")]
    UnsupportedHost {
        /// `std::env::consts::ARCH` of this build.
        arch: &'static str,
    },
    /// The compiled program exceeds the kernel's `BPF_MAXINSNS`.
    #[error("seccomp program has {len} instructions, more than the kernel's limit of {max}")]
    ProgramTooLarge {
        /// Instructions generated.
        len: usize,
        /// The kernel's limit.
        max: usize,
    },
    /// `seccomp(SECCOMP_SET_MODE_FILTER)` failed (EACCES: neither no_new_privs nor
    /// CAP_SYS_ADMIN; EINVAL: a flag this kernel does not know).
    #[error("load seccomp filter (flags {flags:#x})")]
    Load {
        /// The `SECCOMP_FILTER_FLAG_*` bits passed.
        flags: libc::c_ulong,
        /// The kernel's answer.
        #[source]
        source: std::io::Error,
    },
    /// Connecting to the seccomp agent's socket.
    #[error("connect to seccomp listener {path}")]
    ListenerConnect {
        /// `listenerPath`.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// The state passed to `send_to_listener` is not a JSON object.
    #[error("container state for the seccomp listener is not a JSON object")]
    StateJson {
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// Sending the container process state and the fd to the agent.
    #[error("send seccomp fd to listener {path}")]
    ListenerSend {
        /// `listenerPath`.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
}
