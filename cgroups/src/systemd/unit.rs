//! `linux.cgroupsPath` under the systemd driver, as runc reads it (libcontainer/specconv
//! `initSystemdProps`, cgroups/systemd common.go `ExpandSlice`, `getUnitName`):
//! `slice:prefix:name`, e.g. `system.slice:docker:ID` → the scope `docker-ID.scope` in
//! `system.slice`; empty → `system.slice:hako:<id>`. A slice name's dashes spell its
//! ancestors: `a-b-c.slice` lives at `/a.slice/a-b.slice/a-b-c.slice` (systemd.slice(5)).

use serde::{Deserialize, Serialize};

use crate::Error;

/// The default slice of a system container (runc: `system.slice`).
pub(crate) const DEFAULT_SLICE: &str = "system.slice";
/// The default slice of a rootless container, in the user's manager (runc: `user.slice`).
pub(crate) const DEFAULT_USER_SLICE: &str = "user.slice";
/// The default prefix when cgroupsPath is empty (runc uses "runc"; hako names itself).
pub(crate) const DEFAULT_PREFIX: &str = "hako";

/// A container's systemd unit: where it goes and what it is called.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    /// The parent slice unit, e.g. `system.slice`.
    pub slice: String,
    /// The unit's name: `<prefix>-<name>.scope`, or `<name>` when it ends with `.slice`.
    pub name: String,
    /// For a rootless container: the user's manager that owns the unit (see [`UserManager`]);
    /// `None`: the system's manager on the system bus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserManager>,
    /// Whether `slice` is the default one (cgroupsPath named none): a rootless container's
    /// default is [`DEFAULT_USER_SLICE`] instead. Only needed until [`Unit::for_user`].
    #[serde(skip)]
    slice_defaulted: bool,
}

/// The user's `systemd --user` instance a rootless container's unit belongs to, recorded at
/// `create` so that later verbs (run with another environment) reach the same manager.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserManager {
    /// The user's session bus socket (see `bus::user_address`).
    pub bus: std::path::PathBuf,
    /// The manager's own cgroup, its `ControlGroup` property, e.g.
    /// `/user.slice/user-1000.slice/user@1000.service`: its slices live below it.
    pub cgroup: String,
}

fn invalid(path: &str, reason: &'static str) -> Error {
    Error::InvalidCgroupsPath {
        path: path.into(),
        reason,
    }
}

/// systemd's slice path: `a-b.slice` → `/a.slice/a-b.slice`; `-.slice` (the root slice) → `/`.
/// Refuses names that are not `*.slice`, contain `/`, or have empty dash-separated parts
/// (the reason is returned; the caller names the whole cgroupsPath).
pub(crate) fn expand_slice(slice: &str) -> Result<String, &'static str> {
    let stem = slice
        .strip_suffix(".slice")
        .filter(|s| !s.is_empty())
        .ok_or("the slice must be named <name>.slice")?;
    if slice.contains('/') {
        return Err("a slice name has no '/'");
    }
    if stem == "-" {
        return Ok("/".into());
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for part in stem.split('-') {
        if part.is_empty() {
            return Err("a slice name has no empty parts between dashes");
        }
        prefix.push_str(part);
        path.push('/');
        path.push_str(&prefix);
        path.push_str(".slice");
        prefix.push('-');
    }
    Ok(path)
}

impl Unit {
    /// Parses `slice:prefix:name` (empty or absent: the defaults for container `id`).
    pub(crate) fn parse(cgroups_path: Option<&str>, id: &str) -> Result<Self, Error> {
        let given = cgroups_path.unwrap_or("");
        let (slice, prefix, name) = if given.is_empty() {
            // The slice is defaulted below.
            ("", DEFAULT_PREFIX, id)
        } else {
            let parts: Vec<&str> = given.split(':').collect();
            let [slice, prefix, name] = parts[..] else {
                return Err(invalid(
                    given,
                    "the systemd driver expects \"slice:prefix:name\"",
                ));
            };
            (slice, prefix, name)
        };
        let slice_defaulted = slice.is_empty();
        let slice = if slice_defaulted {
            DEFAULT_SLICE
        } else {
            slice
        };
        if name.is_empty() {
            return Err(invalid(given, "the unit name (third part) is empty"));
        }
        if name.contains('/') || prefix.contains('/') {
            return Err(invalid(given, "a unit name has no '/'"));
        }
        expand_slice(slice).map_err(|reason| invalid(given, reason))?;
        let name = if name.ends_with(".slice") {
            expand_slice(name).map_err(|reason| invalid(given, reason))?;
            name.to_string()
        } else if prefix.is_empty() {
            format!("{name}.scope")
        } else {
            format!("{prefix}-{name}.scope")
        };
        Ok(Self {
            slice: slice.to_string(),
            name,
            user: None,
            slice_defaulted,
        })
    }

    /// The same unit in the user's manager `user` (a rootless container, runc's user.go): a
    /// defaulted slice becomes [`DEFAULT_USER_SLICE`], and the cgroup lies below the manager's.
    pub(crate) fn for_user(mut self, user: UserManager) -> Self {
        if self.slice_defaulted {
            self.slice = DEFAULT_USER_SLICE.into();
        }
        self.user = Some(user);
        self
    }

    /// The unit's cgroup, relative to each hierarchy's root: `/system.slice/docker-ID.scope`;
    /// in a user's manager below the manager's own cgroup, as runc joins them (its v2.go
    /// `initPaths`): `/user.slice/user-1000.slice/user@1000.service/user.slice/p-c.scope`.
    pub fn cgroup(&self) -> String {
        // Both were validated by `parse`. A slice sits where its own name says.
        let own = if self.is_slice() {
            expand_slice(&self.name).unwrap_or_else(|_| "/".into())
        } else {
            let slice = expand_slice(&self.slice).unwrap_or_else(|_| "/".into());
            let slice = slice.trim_end_matches('/');
            format!("{slice}/{}", self.name)
        };
        match &self.user {
            Some(u) => {
                let base = u.cgroup.trim_end_matches('/');
                if own == "/" {
                    if base.is_empty() {
                        "/".into()
                    } else {
                        base.to_string()
                    }
                } else {
                    format!("{base}{own}")
                }
            }
            None => own,
        }
    }

    /// Whether the unit is a slice (runc creates a slice when the name ends with `.slice`).
    pub(crate) fn is_slice(&self) -> bool {
        self.name.ends_with(".slice")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_expand_by_dashes() {
        assert_eq!(expand_slice("system.slice").unwrap(), "/system.slice");
        assert_eq!(
            expand_slice("a-b-c.slice").unwrap(),
            "/a.slice/a-b.slice/a-b-c.slice"
        );
        assert_eq!(
            expand_slice("kubepods-besteffort-pod12.slice").unwrap(),
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice"
        );
        assert_eq!(expand_slice("-.slice").unwrap(), "/");
        for bad in [
            ".slice",
            "a",
            "a.scope",
            "a--b.slice",
            "-a.slice",
            "a-.slice",
            "a/b.slice",
        ] {
            assert!(expand_slice(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_name_scopes_and_slices() {
        let u = Unit::parse(Some("system.slice:docker:abc"), "id").unwrap();
        assert_eq!(u.slice, "system.slice");
        assert_eq!(u.name, "docker-abc.scope");
        assert_eq!(u.cgroup(), "/system.slice/docker-abc.scope");
        let u = Unit::parse(Some("kubepods-burstable-pod1.slice:cri-containerd:c1"), "x").unwrap();
        assert_eq!(
            u.cgroup(),
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-c1.scope"
        );
        let u = Unit::parse(Some("machine.slice::c2"), "x").unwrap();
        assert_eq!(u.name, "c2.scope");
        let u = Unit::parse(Some(":p:c3"), "x").unwrap();
        assert_eq!(u.cgroup(), "/system.slice/p-c3.scope");
        let u = Unit::parse(Some("-.slice:p:c4"), "x").unwrap();
        assert_eq!(u.cgroup(), "/p-c4.scope");
        let u = Unit::parse(Some("kubepods.slice:p:kubepods-pod9.slice"), "x").unwrap();
        assert!(u.is_slice());
        assert_eq!(u.cgroup(), "/kubepods.slice/kubepods-pod9.slice");
    }

    #[test]
    fn empty_path_takes_the_defaults() {
        for p in [None, Some("")] {
            let u = Unit::parse(p, "ctr").unwrap();
            assert_eq!(u.cgroup(), "/system.slice/hako-ctr.scope");
        }
    }

    fn user(cgroup: &str) -> UserManager {
        UserManager {
            bus: "/run/user/1000/bus".into(),
            cgroup: cgroup.into(),
        }
    }

    #[test]
    fn user_units_live_below_the_users_manager() {
        let manager = "/user.slice/user-1000.slice/user@1000.service";
        // No slice given: user.slice, as runc's rootless default.
        for p in [None, Some(""), Some(":hako:ctr")] {
            let u = Unit::parse(p, "ctr").unwrap().for_user(user(manager));
            assert_eq!(u.slice, "user.slice", "{p:?}");
            assert_eq!(
                u.cgroup(),
                "/user.slice/user-1000.slice/user@1000.service/user.slice/hako-ctr.scope"
            );
        }
        // A slice given stays, below the manager.
        let u = Unit::parse(Some("app-x.slice:p:c"), "id")
            .unwrap()
            .for_user(user(&format!("{manager}/")));
        assert_eq!(u.slice, "app-x.slice");
        assert_eq!(
            u.cgroup(),
            format!("{manager}/app.slice/app-x.slice/p-c.scope")
        );
        let u = Unit::parse(Some("-.slice:p:c"), "id")
            .unwrap()
            .for_user(user(manager));
        assert_eq!(u.cgroup(), format!("{manager}/p-c.scope"));
        let u = Unit::parse(Some("user.slice:p:user-k.slice"), "id")
            .unwrap()
            .for_user(user(manager));
        assert_eq!(u.cgroup(), format!("{manager}/user.slice/user-k.slice"));
        // The system's units are unchanged, and the user part survives the state file.
        let u = Unit::parse(None, "ctr").unwrap();
        assert_eq!(u.cgroup(), "/system.slice/hako-ctr.scope");
        let u = Unit::parse(None, "ctr").unwrap().for_user(user(manager));
        let back: Unit = serde_json::from_str(&serde_json::to_string(&u).unwrap()).unwrap();
        assert_eq!(back.cgroup(), u.cgroup());
        assert_eq!(back.user, u.user);
    }

    #[test]
    fn malformed_paths_are_refused() {
        for bad in [
            "/abs/path",
            "a:b",
            "a:b:c:d",
            "system.slice:p:",
            "nota-slice:p:n",
            "system.slice:p:a/b",
            "a--b.slice:p:n",
        ] {
            let err = Unit::parse(Some(bad), "id").unwrap_err();
            assert!(
                matches!(err, Error::InvalidCgroupsPath { .. }),
                "{bad}: {err}"
            );
        }
    }
}
