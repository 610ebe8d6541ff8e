//! `hako pause` and `hako resume`: the cgroup freezer.

use crate::error::{Error, Result};
use crate::state::{Status, Store};

fn cgroup_of(
    store: &Store,
    id: &str,
    verb: &'static str,
    want: &[Status],
) -> Result<hako_cgroups::Cgroup> {
    let locked = store.load(id)?;
    let status = locked.status()?;
    if !want.contains(&status) {
        if status == Status::Stopped {
            return Err(Error::NotRunning { id: id.to_string() });
        }
        return Err(Error::BadStatus {
            verb,
            id: id.to_string(),
            status,
        });
    }
    locked
        .cgroup()?
        .ok_or_else(|| Error::NoCgroup { id: id.to_string() })
}

/// Freezes every process of a running container.
pub fn pause(store: &Store, id: &str) -> Result<()> {
    Ok(cgroup_of(store, id, "pause", &[Status::Running, Status::Created])?.freeze()?)
}

/// Thaws a paused container.
pub fn resume(store: &Store, id: &str) -> Result<()> {
    Ok(cgroup_of(store, id, "resume", &[Status::Paused])?.thaw()?)
}
