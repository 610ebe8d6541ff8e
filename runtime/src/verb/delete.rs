//! `hako delete`: remove a stopped container; with `--force`, kill it first.
//!
//! runtime.md ("Delete"): deleting a container that is not stopped MUST fail. runc and crun let a
//! `created` container go without `--force`; hako follows the spec. A frozen container is thawed
//! after the kill, or its processes would never see SIGKILL and stay in D state (runc #3134).
//! `delete --force` of a container that does not exist succeeds: containerd relies on it.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::hooks;
use crate::state::{Locked, Status, Store};

/// How long a killed container may take to die before delete gives up.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// Deletes the container `id`.
pub fn delete(store: &Store, id: &str, force: bool) -> Result<()> {
    let locked = match store.load(id) {
        Ok(l) => l,
        Err(Error::NotExist { .. }) if force => return Ok(()),
        // A `create` still at work holds the lock: kill what it made, so that it fails and
        // undoes itself, and then take what is left (nothing, when its undo went through).
        Err(Error::Busy { .. }) if force => {
            kill_unlocked(store, id)?;
            match store.load(id) {
                Ok(l) => l,
                Err(Error::NotExist { .. }) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    };
    let (status, init) = locked.status_and_init()?;
    if status != Status::Stopped && !force {
        return Err(Error::BadStatus {
            verb: "delete",
            id: id.to_string(),
            status,
        });
    }
    destroy_with(locked, init)
}

/// SIGKILLs the container `id` without its lock (its init, when `create` saved it, and its
/// cgroup, thawed): what `delete --force` does to a container whose `create` is at work.
fn kill_unlocked(store: &Store, id: &str) -> Result<()> {
    let container = store.read(id)?;
    if let Some(cg) = container.cgroup()? {
        // `signal_all` leaves the cgroup thawed.
        cg.signal_all(libc::SIGKILL)?;
    }
    if let Some(init) = container.init() {
        init.signal(libc::SIGKILL)?;
    }
    Ok(())
}

/// Kills whatever is left of the container, removes its cgroup, runs poststop hooks and removes
/// its state. Used by `delete`, `run` and failed creates alike.
pub(crate) fn destroy(locked: Locked) -> Result<()> {
    let init = locked.init();
    destroy_with(locked, init)
}

/// [`destroy`] with the init already looked up (`None`: none alive).
fn destroy_with(locked: Locked, init: Option<crate::pidfd::Process>) -> Result<()> {
    // None when a create was killed before it recorded the cgroup (it records the path before
    // its first mkdir). `open` does not need the directories to exist, and the kill, thaw and
    // removal below each take the hierarchies that do: a create killed between two mkdirs, or a
    // delete killed between two rmdirs, leaves any subset of them.
    let cgroup = locked.cgroup()?;
    if let Some(cg) = &cgroup {
        // Also reaches descendants the init left behind when it has no pid namespace of its own.
        cg.signal_all(libc::SIGKILL)?;
        // A frozen task cannot act on SIGKILL: thaw after signalling (runc #3134).
        if cg.is_frozen()? {
            cg.thaw()?;
        }
    }
    if let Some(init) = init {
        init.signal(libc::SIGKILL)?;
        if !init.wait_exit(KILL_TIMEOUT)? {
            return Err(Error::Timeout {
                what: "the container's init to exit",
                seconds: KILL_TIMEOUT.as_secs(),
            });
        }
    }
    if let Some(cg) = &cgroup {
        // The systemd driver's unit first; the directories go even if stopping it failed (runc).
        let stopped = cg.stop_unit();
        cg.destroy()?;
        stopped?;
    }
    // A container without a mount namespace of its own made its mounts in the caller's.
    hako_namespaces::unmount_recorded(&locked.mounts_path(), &locked.state.rootfs)?;
    // The resctrl groups `create` made, once their tasks are gone (runc: intelrdt Destroy).
    crate::resctrl::ResctrlDirs {
        dirs: locked.state.resctrl_dirs.clone(),
    }
    .remove()?;
    // poststop hooks run only for a container that was made; the state they read is built only
    // for them.
    let poststop = match &locked.state.hooks {
        Some(h) if locked.state.created_done => h.poststop().clone(),
        _ => None,
    };
    let state = match &poststop {
        Some(_) => locked.hook_state(Status::Stopped)?,
        None => String::new(),
    };
    locked.remove()?;
    if let Some(h) = poststop {
        for e in hooks::run_all_warn("poststop", &h, &state) {
            crate::warn(&e);
        }
    }
    Ok(())
}
