//! `hako start`: release a `created` container's init through the exec fifo, then run the
//! poststart hooks. runtime-spec 1.1+ (runtime.md, "Lifecycle" step 6): when a poststart hook
//! fails the runtime generates an error and stops the container, as runc does.

use crate::error::{Error, Result};
use crate::state::{Status, Store};
use crate::{fifo, hooks};

/// Starts the container `id`.
pub fn start(store: &Store, id: &str) -> Result<()> {
    let locked = store.load(id)?;
    let status = locked.status();
    if status != Status::Created {
        return Err(Error::BadStatus {
            verb: "start",
            id: id.to_string(),
            status,
        });
    }
    if !locked.state.has_process {
        return Err(Error::InvalidConfig {
            field: "process",
            reason: "the container's config has no process to start".into(),
        });
    }
    if !fifo::release(&locked.fifo_path())? {
        return Err(Error::NotRunning { id: id.to_string() });
    }
    if let Some(h) = locked
        .state
        .hooks
        .as_ref()
        .and_then(|h| h.poststart().clone())
    {
        let state = locked.hook_state(Status::Running)?;
        if let Err(e) = hooks::run_all("poststart", &h, &state) {
            if let Some(init) = locked.init() {
                let _ = init.signal(libc::SIGKILL);
            }
            return Err(e);
        }
    }
    Ok(())
}
