//! A container being made, by `create` or by `restore`: the claimed id and everything made for
//! it since, held by a [`Claim`] that undoes all of it when dropped unless the container was
//! finished. Both verbs go through the same stages (claim the id, keep the config, make the
//! cgroup, place the first process in it and in its resctrl group), so a restored container is
//! held to everything a created one is: the systemd driver, rootless cgroups, `linux.intelRdt`.

use std::path::{Path, PathBuf};

use nix::unistd::Pid;

use crate::config::ContainerConfig;
use crate::error::{Error, Result};
use crate::state::{Locked, Persisted, Store};
use crate::{pidfd, rootless, timestamp};

/// The id, claimed, and what was made for the container so far.
pub(crate) struct Claim {
    locked: Option<Locked>,
    pub(crate) cgroup: Option<hako_cgroups::Cgroup>,
    /// The resctrl groups made for `linux.intelRdt`.
    resctrl: Option<crate::resctrl::ResctrlDirs>,
    /// Our child that is the container's first process (killed and reaped on failure).
    pub(crate) child: Option<Pid>,
    /// The record of the mounts the child makes in a mount namespace it does not own.
    pub(crate) mounts: Option<PathBuf>,
    /// False once the container is finished or handed to a child that must not undo it.
    pub(crate) armed: bool,
    /// `--debug`'s account of each stage (`log::Steps`).
    pub(crate) steps: crate::log::Steps,
}

/// The name of the user running hako, for `state`'s `owner` (runc's field).
pub(crate) fn owner() -> String {
    hako_namespaces::user_name(nix::unistd::getuid().as_raw())
}

impl Claim {
    /// Claims `id` in `store` for a container of `config` from `bundle` (the state directory is
    /// made, locked and holds `created_done: false` until [`Claim::finish`]), and keeps the
    /// config's text there for `exec`.
    pub(crate) fn new(
        store: &Store,
        id: &str,
        bundle: &Path,
        config: &ContainerConfig,
        spec_text: &[u8],
        steps: crate::log::Steps,
    ) -> Result<Self> {
        let locked = store.claim(Persisted {
            id: id.to_string(),
            pid: 0,
            pid_start_time: 0,
            pid_ino: 0,
            bundle: bundle.to_path_buf(),
            rootfs: config.rootfs.root_path().to_path_buf(),
            created: timestamp::now(),
            annotations: config.annotations.clone(),
            cgroup: Some(config.cgroup_path.clone()),
            freezer: None,
            created_done: false,
            has_process: config.process.is_some(),
            hooks: Some(config.hooks.clone()),
            owner: owner(),
            resctrl_dirs: Vec::new(),
        })?;
        let mut claim = Claim {
            locked: Some(locked),
            cgroup: None,
            resctrl: None,
            child: None,
            mounts: None,
            armed: true,
            steps,
        };
        claim.steps.step(format_args!("claimed the id {id:?}"));
        claim.locked()?.save_config(spec_text)?;
        Ok(claim)
    }

    /// The claimed state; held from the claim until [`Claim::finish`].
    pub(crate) fn locked(&self) -> Result<&Locked> {
        self.locked.as_ref().ok_or_else(Self::no_state)
    }

    pub(crate) fn locked_mut(&mut self) -> Result<&mut Locked> {
        self.locked.as_mut().ok_or_else(Self::no_state)
    }

    fn no_state() -> Error {
        Error::Protocol {
            expected: "the state claimed for the container",
            got: "none",
        }
    }

    /// In a cloned child: lets go of the state lock (without unlocking it, see
    /// `Locked::close_inherited`) and forgets everything without undoing it: it is the parent's.
    pub(crate) fn forget_in_child(&mut self) {
        self.armed = false;
        if let Some(l) = self.locked.take() {
            l.close_inherited();
        }
        self.cgroup = None;
        self.mounts = None;
    }

    /// Makes the container's cgroup (undone with the claim) and applies its resources; `None`
    /// for a rootless container the user may not give one. With the systemd driver the unit's
    /// cgroup is only opened: systemd makes it when [`Claim::place`] starts the unit.
    pub(crate) fn make_cgroup(
        &mut self,
        config: &ContainerConfig,
        rootless: bool,
        need: rootless::CgroupNeed,
    ) -> Result<Option<&hako_cgroups::Cgroup>> {
        let systemd = config.cgroup_path.systemd_unit().is_some();
        let cgroup = if systemd {
            Some(hako_cgroups::Cgroup::open(&config.cgroup_path)?)
        } else {
            rootless::create_cgroup(&config.cgroup_path, &config.resources, rootless, need)?
        };
        let Some(cgroup) = cgroup else {
            // Rootless without a cgroup: later verbs must not look for one.
            let locked = self.locked_mut()?;
            locked.state.cgroup = None;
            locked.save()?;
            return Ok(None);
        };
        // Kept for `status` (saved with the rest by `finish`). `freezer_file` fails only where
        // the cgroup has no freezer at all: then nothing can pause the container.
        let locked = self.locked_mut()?;
        locked.state.freezer = cgroup.freezer_file().ok();
        locked.record_cgroup(&cgroup)?;
        let cgroup = self.cgroup.insert(cgroup);
        self.steps.step(format_args!(
            "made the cgroup {} and applied its resources",
            config.cgroup_path.as_path().display()
        ));
        Ok(Some(cgroup))
    }

    /// Puts `pid` (the init, or CRIU before it restores the tree) where the container's
    /// processes belong: its systemd unit, started now with the resources as properties; its
    /// cgroup (`add`: the hierarchies the clone did not place it in, nor it moved itself
    /// into); its `linux.intelRdt` group (resctrl groups are inherited on fork, so a restored
    /// tree lands in it too).
    pub(crate) fn place(
        &mut self,
        config: &ContainerConfig,
        pid: Pid,
        add: Option<hako_cgroups::Hierarchies>,
    ) -> Result<()> {
        match (self.cgroup.as_ref(), add) {
            (Some(cg), _) if cg.systemd_unit().is_some() => {
                cg.start_unit(pid.as_raw(), &config.resources)?;
            }
            (Some(cg), Some(which)) => cg.add_process_in(pid.as_raw(), which)?,
            _ => {}
        }
        if let Some(rdt) = &config.intel_rdt {
            let dirs = self.resctrl.insert(rdt.apply(pid.as_raw())?);
            let dirs = dirs.dirs.clone();
            self.locked_mut()?.state.resctrl_dirs = dirs;
        }
        Ok(())
    }

    /// Records the container's first process in the state (its pid, start time and pidfs
    /// inode); `save` writes the state now rather than with [`Claim::finish`].
    pub(crate) fn record_pid(&mut self, pid: Pid, save: bool) -> Result<()> {
        let locked = self.locked_mut()?;
        locked
            .state
            .set_init(pid.as_raw(), pidfd::identify(pid.as_raw())?);
        if save {
            locked.save()?;
        }
        Ok(())
    }

    /// The container exists: saves its state as made (still undone if that fails) and hands
    /// over the lock and the account of the stages.
    pub(crate) fn finish(mut self) -> Result<(Locked, crate::log::Steps)> {
        let locked = self.locked_mut()?;
        locked.state.created_done = true;
        locked.save()?;
        self.armed = false;
        let locked = self.locked.take().ok_or_else(Self::no_state)?;
        Ok((locked, std::mem::take(&mut self.steps)))
    }

    /// Kills and reaps the first process, unmounts what it mounted in the caller's mount
    /// namespace, removes the cgroup (and a systemd unit) and the resctrl groups and, only when
    /// all of that worked, the state directory.
    pub(crate) fn undo(&mut self) -> Result<()> {
        let cgroup = self.cgroup.take();
        let mut first_error = None;
        if let Some(pid) = self.child.take() {
            // The cgroup is ours (no `pause` can have reached a container being made): thaw
            // it, or a frozen init would never act on its SIGKILL.
            if let Err(e) = pidfd::kill_and_reap(pid, cgroup.as_ref()) {
                first_error.get_or_insert(e);
            }
        } else if let Some(cg) = &cgroup {
            let _ = cg.signal_all(libc::SIGKILL);
        }
        if let (Some(record), Some(l)) = (&self.mounts, &self.locked) {
            if let Err(e) = hako_namespaces::unmount_recorded(record, &l.state.rootfs) {
                first_error.get_or_insert(e.into());
            }
        }
        if let Some(cg) = &cgroup {
            // A systemd scope first: systemd would otherwise keep (or remake) its cgroup.
            let _ = cg.stop_unit();
            if let Err(e) = cg.destroy() {
                first_error.get_or_insert(e.into());
            }
        }
        if let Some(r) = self.resctrl.take() {
            let _ = r.remove();
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        if let Some(l) = self.locked.take() {
            l.remove()?;
        }
        Ok(())
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Err(e) = self.undo() {
            // The state directory (with the cgroup path and the mount record) stays for
            // `delete --force` to finish the job.
            crate::warn(&e);
        }
    }
}
