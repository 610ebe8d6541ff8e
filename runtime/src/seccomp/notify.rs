//! Handing the seccomp listener fd to the agent at `listenerPath`.
//!
//! config-linux.md ("Seccomp", `listenerPath`): the runtime connects to the `AF_UNIX`
//! `SOCK_STREAM` socket, sends exactly one *container process state* per connection with the
//! seccomp fd in `SCM_RIGHTS`, its name `seccompFd` at the same index in the state's `fds`, and
//! closes the connection; failing to send is an error. The container process state is
//! `{"ociVersion", "fds", "pid", "metadata" (listenerMetadata, optional), "state"}` with the
//! container's state as `state` (runtime.md, "State").

use std::io::{IoSlice, Write};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
use serde_json::{Map, Value};

use super::SeccompError;

/// The name of the seccomp fd in the container process state's `fds`.
pub(super) const SECCOMP_FD_NAME: &str = "seccompFd";

/// The container process state sent with the fd: `state_json` is the container's state (an
/// object with `ociVersion`, `id`, `status`, `pid`, `bundle`, ...).
pub(super) fn process_state(state_json: &str, metadata: &str) -> Result<Vec<u8>, SeccompError> {
    let state: Map<String, Value> =
        serde_json::from_str(state_json).map_err(|source| SeccompError::StateJson { source })?;
    let mut msg = Map::new();
    let version = state
        .get("ociVersion")
        .cloned()
        .unwrap_or_else(|| Value::from("1.0.2"));
    msg.insert("ociVersion".into(), version);
    msg.insert("fds".into(), Value::from(vec![SECCOMP_FD_NAME]));
    msg.insert(
        "pid".into(),
        state.get("pid").cloned().unwrap_or(Value::from(0)),
    );
    if !metadata.is_empty() {
        msg.insert("metadata".into(), Value::from(metadata));
    }
    msg.insert("state".into(), Value::Object(state));
    serde_json::to_vec(&Value::Object(msg)).map_err(|source| SeccompError::StateJson { source })
}

/// Connects to `path`, sends the container process state built from `state_json` and
/// `metadata` (`listenerMetadata`) with `notify_fd` as `SCM_RIGHTS`, then closes the
/// connection.
pub(crate) fn send_to_listener(
    path: &Path,
    notify_fd: BorrowedFd<'_>,
    state_json: &str,
    metadata: &str,
) -> Result<(), SeccompError> {
    let msg = process_state(state_json, metadata)?;
    let send_err = |source: std::io::Error| SeccompError::ListenerSend {
        path: path.to_path_buf(),
        source,
    };
    let mut stream = UnixStream::connect(path).map_err(|source| SeccompError::ListenerConnect {
        path: path.to_path_buf(),
        source,
    })?;
    let fds = [notify_fd.as_raw_fd()];
    let sent = sendmsg::<UnixAddr>(
        stream.as_raw_fd(),
        &[IoSlice::new(&msg)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(|e| send_err(e.into()))?;
    // A stream socket may take less than all of it; the fd went with the first byte.
    stream
        .write_all(msg.get(sent..).unwrap_or_default())
        .map_err(send_err)?;
    stream.flush().map_err(send_err)
}
