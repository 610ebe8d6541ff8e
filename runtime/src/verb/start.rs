//! `hako start`: release a `created` container's init through the exec fifo, then run the
//! poststart hooks. runtime.md, "Lifecycle": if a startContainer hook fails, the runtime MUST
//! generate an error and stop the container; if a poststart hook fails, it MUST log a warning
//! and the remaining hooks and lifecycle continue.

use crate::error::{Error, Result};
use crate::state::{Status, Store};
use crate::sync::{self, RemoteError};
use crate::{fifo, hooks};

/// Starts the container `id`.
pub fn start(store: &Store, id: &str) -> Result<()> {
    let locked = store.load(id)?;
    let what = match locked.status()? {
        Status::Created => None,
        // runc 1.1.5's phrases (libcontainer/container_linux.go, `Exec`/`signal` checks).
        Status::Paused => Some("a container in the paused state"),
        Status::Running => Some("an already running container"),
        Status::Stopped => Some("a container that has stopped"),
        Status::Creating => Some("a container that is still being created"),
    };
    if let Some(what) = what {
        return Err(Error::CannotStart {
            id: id.to_string(),
            what,
        });
    }
    if !locked.state.has_process {
        return Err(Error::InvalidConfig {
            field: "process",
            reason: "the container's config has no process to start".into(),
        });
    }
    let status_fifo = fifo::open_start_status(&locked.start_status_path())?;
    if !fifo::release(&locked.fifo_path())? {
        return Err(Error::NotRunning { id: id.to_string() });
    }
    if let Some(fd) = status_fifo {
        // The init runs the startContainer hooks one after the other, each within its own
        // `timeout` (a hook without one counts as a set-up bound: hako never waits forever).
        let bound = sync::child_hooks_bound(
            locked
                .state
                .hooks
                .as_ref()
                .and_then(|h| h.start_container().as_ref())
                .into_iter()
                .flatten()
                .map(|h| h.timeout()),
        );
        let outcome = fifo::read_start_status(&fd, bound);
        let _ = std::fs::remove_file(locked.start_status_path());
        let failure = match outcome {
            Ok(f) if f.is_empty() => None,
            Ok(f) => Some(Error::Init(RemoteError::from_chain(
                f.lines().map(str::to_string).collect(),
            ))),
            Err(e) => Some(e),
        };
        if let Some(e) = failure {
            // runtime.md: a failed startContainer hook MUST stop the container (runc kills
            // it); a `start` that failed must not leave it running.
            if let Some(init) = locked.init() {
                if let Err(w) = init.signal(libc::SIGKILL) {
                    crate::warn(&w);
                }
            }
            return Err(e);
        }
    }
    let poststart = locked
        .state
        .hooks
        .as_ref()
        .and_then(|h| h.poststart().clone());
    if let Some(h) = poststart {
        let state = locked.hook_state(Status::Running)?;
        for e in hooks::run_all_warn("poststart", &h, &state) {
            crate::warn(&e);
        }
    }
    Ok(())
}
