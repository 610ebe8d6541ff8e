//! The systemd cgroup driver (`--systemd-cgroup`), as runc's (opencontainers/cgroups
//! systemd/): the container's cgroup is a transient unit systemd owns, made with
//! `StartTransientUnit` over D-Bus holding the init's pid, `Delegate=yes`, in the slice
//! of `slice:prefix:name`, with the resources as unit properties (module `properties`); hako then
//! creates what systemd did not (v1 hierarchies systemd does not manage) and writes every
//! resource to the files as the cgroupfs driver does, as runc's `Set` does after
//! `SetUnitProperties`. Once made, the unit's cgroup is an ordinary directory at the path
//! [`Unit::cgroup`]: freeze, kill, stats and `ps` work on it unchanged.
//!
//! A rootless container's unit belongs to the user's manager (`systemd --user`), as runc's
//! (libcontainer/cgroups/systemd/user.go): reached over the user's session bus, found in
//! `$DBUS_SESSION_BUS_ADDRESS` else at `$XDG_RUNTIME_DIR/bus`; the slice defaults to
//! `user.slice` of that manager and the unit's cgroup lies below the manager's own
//! (its `ControlGroup` property, read once at `create` and kept in the state with the bus);
//! cgroup v2 only, where systemd delegates to users; the device rules are not applied (as
//! the cgroupfs driver's rootless mode, see `crate::rootless`).
//!
//! D-Bus is spoken by the small blocking client in modules `bus` and `wire` (EXTERNAL
//! authentication over the bus socket, a handful of message signatures) rather than
//! a general D-Bus crate: the driver needs seven methods and one signal, and the default
//! cgroupfs path must not grow (see ARCHITECTURE.md).

mod bus;
mod properties;
mod unit;
mod wire;

use std::time::Duration;

pub use unit::{Unit, UserManager};

use bus::Bus;
use wire::{Call, Value};

use crate::{Cgroup, Error, Mode, Resources};

/// How long one bus round trip may take.
const BUS_TIMEOUT: Duration = Duration::from_secs(10);
/// How long systemd's job may take (runc waits 30 s).
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

const SYSTEMD: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";

fn manager<'a>(member: &'a str, args: &'a [Value]) -> Call<'a> {
    Call {
        destination: SYSTEMD,
        path: MANAGER_PATH,
        interface: MANAGER,
        member,
        args,
    }
}

fn props_value(props: Vec<properties::Property>) -> Value {
    Value::Array(
        "(sv)".into(),
        props
            .into_iter()
            .map(|(name, v)| Value::Struct(vec![Value::str(name), Value::Variant(Box::new(v))]))
            .collect(),
    )
}

/// The bus of the manager that owns `unit`: the user's for a rootless container.
fn connect(unit: &Unit) -> Result<Bus, Error> {
    match &unit.user {
        Some(user) => Bus::user(user.bus.clone(), BUS_TIMEOUT),
        None => Bus::system(BUS_TIMEOUT),
    }
}

/// `unit` in the user's manager, for a rootless container: finds the user's bus, asks the
/// manager for its cgroup (`ControlGroup`, org.freedesktop.systemd1(5)) and records both.
pub(crate) fn user_unit(unit: Unit) -> Result<Unit, Error> {
    let mode = crate::detect_mode()?;
    if mode != Mode::Unified {
        return Err(Error::RootlessSystemdNotUnified { mode });
    }
    let env = |k| std::env::var(k).ok();
    let path = bus::user_address(
        env("DBUS_SESSION_BUS_ADDRESS").as_deref(),
        env("XDG_RUNTIME_DIR").as_deref(),
    )
    .ok_or(Error::NoUserBus)?;
    let mut bus = Bus::user(path.clone(), BUS_TIMEOUT)?;
    let args = [Value::str(MANAGER), Value::str("ControlGroup")];
    let reply = bus.call(&Call {
        destination: SYSTEMD,
        path: MANAGER_PATH,
        interface: "org.freedesktop.DBus.Properties",
        member: "Get",
        args: &args,
    })?;
    let cgroup = match reply.first() {
        Some(Value::Variant(v)) => v.as_str().filter(|c| c.starts_with('/')),
        _ => None,
    }
    .ok_or_else(|| Error::DbusProtocol {
        what: "the user manager's ControlGroup",
        detail: format!("{reply:?}"),
    })?
    .to_string();
    Ok(unit.for_user(UserManager { bus: path, cgroup }))
}

/// What a unit's manager may apply: a user's has no device rules (they need CAP_SYS_ADMIN
/// in the host, as in the cgroupfs driver's rootless mode).
fn applicable(unit: &Unit, r: &Resources) -> Resources {
    if unit.user.is_some() {
        r.without_devices()
    } else {
        r.clone()
    }
}

/// A bus connection that receives systemd's job signals.
fn subscribed(unit: &Unit) -> Result<Bus, Error> {
    let mut bus = connect(unit)?;
    let rule = format!(
        "type='signal',sender='{SYSTEMD}',path='{MANAGER_PATH}',interface='{MANAGER}',member='JobRemoved'"
    );
    bus.call(&Call {
        destination: "org.freedesktop.DBus",
        path: "/org/freedesktop/DBus",
        interface: "org.freedesktop.DBus",
        member: "AddMatch",
        args: &[Value::Str(rule)],
    })?;
    // systemd emits job signals only while some client is subscribed (org.freedesktop.systemd1(5)).
    bus.call(&manager("Subscribe", &[]))?;
    Ok(bus)
}

/// Waits for `JobRemoved(id, job, unit, result)` of the job `job`; returns its result.
fn wait_job(bus: &mut Bus, job: &Value) -> Result<String, Error> {
    let body = bus.wait_signal(MANAGER, "JobRemoved", JOB_TIMEOUT, |b| {
        b.get(1) == Some(job)
    })?;
    Ok(body
        .get(3)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string())
}

fn is_error(e: &Error, name: &str) -> bool {
    matches!(e, Error::DbusCall { name: n, .. } if n == name)
}

fn reset_failed(bus: &mut Bus, unit: &Unit) -> Result<(), Error> {
    bus.call(&manager("ResetFailedUnit", &[Value::str(&unit.name)]))
        .map(drop)
}

fn start(bus: &mut Bus, unit: &Unit, props: Value) -> Result<(), Error> {
    let aux = Value::Array("(sa(sv))".into(), Vec::new());
    let args = [Value::str(&unit.name), Value::str("replace"), props, aux];
    let reply = match bus.call(&manager("StartTransientUnit", &args)) {
        // A leftover failed unit of the same name: reset it and try once more (runc does).
        Err(e) if is_error(&e, "org.freedesktop.systemd1.UnitExists") => {
            let _ = reset_failed(bus, unit);
            bus.call(&manager("StartTransientUnit", &args))?
        }
        other => other?,
    };
    let job = reply.into_iter().next().ok_or(Error::DbusProtocol {
        what: "StartTransientUnit",
        detail: "no job in the reply".into(),
    })?;
    let result = wait_job(bus, &job)?;
    if result != "done" {
        let _ = reset_failed(bus, unit);
        return Err(Error::SystemdJob {
            unit: unit.name.clone(),
            verb: "start",
            result,
        });
    }
    Ok(())
}

fn unified(cg: &Cgroup) -> bool {
    cg.mode() == Mode::Unified
}

fn unit_properties(cg: &Cgroup, r: &Resources) -> Result<Vec<properties::Property>, Error> {
    let proc_devices = if r.devices.is_some() {
        std::fs::read_to_string("/proc/devices").map_err(|source| Error::Read {
            path: "/proc/devices".into(),
            source,
        })?
    } else {
        String::new()
    };
    let exists = |p: &str| std::path::Path::new(p).exists();
    let host = properties::Host {
        proc_devices: &proc_devices,
        exists: &exists,
    };
    properties::resources(r, unified(cg), &host)
}

impl Cgroup {
    /// The systemd unit that owns this cgroup, when the systemd driver made it.
    pub fn systemd_unit(&self) -> Option<&Unit> {
        self.path().systemd_unit()
    }

    /// systemd driver: starts the transient unit holding `pid` with `resources` as its
    /// properties and waits (bounded) for systemd's job; then creates the directories
    /// systemd did not, writes the resources to the files and adds `pid` everywhere.
    /// On failure the unit's processes (the init) are killed and the unit is stopped again.
    /// Without a unit: [`Error::NotSystemd`].
    pub fn start_unit(&self, pid: i32, resources: &Resources) -> Result<Cgroup, Error> {
        let unit = self.systemd_unit().ok_or(Error::NotSystemd)?;
        let pid = u32::try_from(pid).map_err(|_| Error::InvalidValue {
            field: "pid",
            value: pid.to_string(),
            reason: "not a process id",
        })?;
        let resources = &applicable(unit, resources);
        let mut props = properties::unit(unit, &unit.name, pid, unified(self));
        props.extend(unit_properties(self, resources)?);
        let mut bus = subscribed(unit)?;
        start(&mut bus, unit, props_value(props))?;
        let made = Cgroup::create(self.path())
            .and_then(|cg| cg.apply(resources).map(|()| cg))
            .and_then(|cg| cg.add_process(pid as i32).map(|()| cg));
        if made.is_err() {
            // The init is in the scope, blocked until create goes on: stopping the unit with it
            // would wait out systemd's stop timeout (SIGTERM first, TimeoutStopSec=90s by
            // default, systemd.kill(5)), longer than the job's bound. Killed, the scope empties
            // and the stop is immediate.
            let _ = self.signal_all(libc::SIGKILL);
            let _ = stop(&mut bus, unit);
        }
        made
    }

    /// systemd driver: `SetUnitProperties` for `resources` (runtime only, as runc); the
    /// caller writes the files with [`Cgroup::apply`]. Nothing to do without a unit.
    pub fn set_unit_properties(&self, resources: &Resources) -> Result<(), Error> {
        let Some(unit) = self.systemd_unit() else {
            return Ok(());
        };
        let props = unit_properties(self, &applicable(unit, resources))?;
        if props.is_empty() {
            return Ok(());
        }
        let mut bus = connect(unit)?;
        let args = [
            Value::str(&unit.name),
            Value::Bool(true),
            props_value(props),
        ];
        bus.call(&manager("SetUnitProperties", &args)).map(drop)
    }

    /// Adds `pid` (an `exec`'d process) to the cgroup. In a unit of a user's manager, a caller
    /// whose own cgroup lies outside the user's delegated subtree may not move it there
    /// (EACCES: cgroup v2 wants write access to the common ancestor, cgroup(7)); then the
    /// manager is asked, `AttachProcessesToUnit` (org.freedesktop.systemd1(5)), which the
    /// user's manager hands to the system's as it did for the unit's first process. Any other
    /// failure is an error: the process is never left outside.
    pub fn join(&self, pid: i32, which: crate::Hierarchies) -> Result<(), Error> {
        let denied = |e: &Error| {
            matches!(e, Error::AddProcess { source, .. }
                if matches!(source.raw_os_error(), Some(libc::EACCES | libc::EPERM)))
        };
        match (self.add_process_in(pid, which), self.systemd_unit()) {
            (Err(e), Some(unit)) if unit.user.is_some() && denied(&e) => {
                let pid = u32::try_from(pid).map_err(|_| Error::InvalidValue {
                    field: "pid",
                    value: pid.to_string(),
                    reason: "not a process id",
                })?;
                let mut bus = connect(unit)?;
                let args = [
                    Value::str(&unit.name),
                    Value::str(""),
                    Value::Array("u".into(), vec![Value::U32(pid)]),
                ];
                bus.call(&manager("AttachProcessesToUnit", &args)).map(drop)
            }
            (r, _) => r,
        }
    }

    /// systemd driver: stops the unit (waiting for the job) and resets it if it failed, so
    /// that no unit is left; a unit systemd already dropped is fine. Nothing to do without
    /// a unit. The caller removes the directories afterwards with [`Cgroup::destroy`].
    pub fn stop_unit(&self) -> Result<(), Error> {
        let Some(unit) = self.systemd_unit() else {
            return Ok(());
        };
        let mut bus = subscribed(unit)?;
        stop(&mut bus, unit)
    }
}

fn stop(bus: &mut Bus, unit: &Unit) -> Result<(), Error> {
    match bus.call(&manager(
        "StopUnit",
        &[Value::str(&unit.name), Value::str("replace")],
    )) {
        Ok(reply) => {
            if let Some(job) = reply.first() {
                // A stop that ends otherwise than "done" still leaves a unit to reset below.
                wait_job(bus, job)?;
            }
        }
        Err(e) if is_error(&e, "org.freedesktop.systemd1.NoSuchUnit") => {}
        Err(e) => return Err(e),
    }
    match reset_failed(bus, unit) {
        // Gone already: a scope whose processes all ended is unloaded unless it failed.
        Err(e) if is_error(&e, "org.freedesktop.systemd1.NoSuchUnit") => Ok(()),
        other => other,
    }
}
