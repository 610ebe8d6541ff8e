//! `hako kill`: signal the init through its pidfd, or with `--all` every process in the
//! container's cgroup (frozen first, so none forks away; runc #4047).
//!
//! Without the container's lock, as runc (`kill` takes none): `create` holds it for as long as
//! it runs, and a hook must be able to kill its own container. The pidfd (or pid and start
//! time) names the process, so no other command can make the signal reach a stranger.

use crate::error::{Error, Result};
use crate::state::{Status, Store};

/// Sends `signal` to the container `id`.
pub fn kill(store: &Store, id: &str, signal: i32, all: bool) -> Result<()> {
    let locked = store.read(id)?;
    let status = locked.status()?;
    if status == Status::Stopped && (!all || signal == 0) {
        return Err(Error::NotRunning { id: id.to_string() });
    }
    // Signal 0 is an existence probe (kill(2)): it goes to the init alone, even with --all.
    if all && signal != 0 {
        if let Some(cg) = locked.cgroup()? {
            cg.signal_all(signal)?;
            return Ok(());
        }
    }
    let init = locked
        .init()
        .ok_or_else(|| Error::NotRunning { id: id.to_string() })?;
    init.signal(signal)
}
