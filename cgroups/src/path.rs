//! Resolving linux.cgroupsPath the way runc's cgroupfs driver does
//! (libcontainer/cgroups/fs paths.go): an absolute path is used as-is under
//! every hierarchy root; a relative one is joined to the cgroup hako itself is
//! in, per hierarchy (read from /proc/self/cgroup at resolve time and frozen
//! into the value, so later verbs run from elsewhere find the same
//! directories); an empty one means the container id, relative.
//!
//! Unlike runc, which clamps `..` lexically, a path that climbs above its
//! root is rejected: it would otherwise silently land somewhere else.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::proc_cgroup::{parse_proc_cgroup, Membership};
use crate::Error;

/// Where the container's cgroup lives, resolved like runc from linux.cgroupsPath.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupPath {
    /// Cleaned cgroupsPath: absolute, or relative to `parents`.
    inner: PathBuf,
    /// For a relative `inner`: hako's own cgroup per hierarchy key, as it was at resolve time.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    parents: BTreeMap<String, PathBuf>,
    /// The systemd driver's unit, whose cgroup `inner` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    systemd: Option<crate::systemd::Unit>,
}

/// Lexically clean `path` (drop `.`, resolve `..`), rejecting escapes above its root.
fn clean(path: &Path) -> Result<PathBuf, Error> {
    let invalid = |reason| Error::InvalidCgroupsPath {
        path: path.to_path_buf(),
        reason,
    };
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for comp in path.components() {
        match comp {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(p) => parts.push(p),
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err(invalid("\"..\" escapes the cgroup root"));
                }
            }
            Component::Prefix(_) => return Err(invalid("unexpected path prefix")),
        }
    }
    if parts.is_empty() {
        return Err(invalid("refers to the cgroup root itself"));
    }
    let mut out = if path.is_absolute() {
        PathBuf::from("/")
    } else {
        PathBuf::new()
    };
    out.extend(parts);
    Ok(out)
}

impl CgroupPath {
    /// Resolve linux.cgroupsPath for container `id`.
    ///
    /// Absolute → used as-is under each hierarchy root; relative → joined to
    /// hako's own cgroup (per hierarchy, from /proc/self/cgroup, as runc's fs
    /// driver does); None/empty → relative path = container id.
    /// `systemd == true` → the systemd driver's `slice:prefix:name` (empty: `system.slice`,
    /// prefix `hako`, the id), whose unit's cgroup is an absolute path; that form without
    /// `systemd` → [`Error::InvalidCgroupsPath`] (runc would make a directory named so).
    /// `..` escapes (after cleaning) → [`Error::InvalidCgroupsPath`].
    pub fn resolve(cgroups_path: Option<&Path>, id: &str, systemd: bool) -> Result<Self, Error> {
        let needs_self = !systemd && !cgroups_path.is_some_and(Path::is_absolute);
        let text = if needs_self {
            let file = "/proc/self/cgroup";
            std::fs::read_to_string(file).map_err(|source| Error::Read {
                path: file.into(),
                source,
            })?
        } else {
            String::new()
        };
        Self::resolve_with(cgroups_path, id, systemd, &text)
    }

    /// [`CgroupPath::resolve`] with the text of /proc/self/cgroup given (testable).
    pub(crate) fn resolve_with(
        cgroups_path: Option<&Path>,
        id: &str,
        systemd: bool,
        proc_self_cgroup: &str,
    ) -> Result<Self, Error> {
        let given = cgroups_path.filter(|p| !p.as_os_str().is_empty());
        let looks_systemd =
            given.is_some_and(|p| !p.is_absolute() && p.to_string_lossy().split(':').count() == 3);
        if systemd {
            let unit = crate::systemd::Unit::parse(given.and_then(Path::to_str), id)?;
            return Ok(Self {
                inner: PathBuf::from(unit.cgroup()),
                parents: BTreeMap::new(),
                systemd: Some(unit),
            });
        }
        if looks_systemd {
            return Err(Error::InvalidCgroupsPath {
                path: given.map(Path::to_path_buf).unwrap_or_default(),
                reason: "\"slice:prefix:name\" is the systemd driver's form: pass --systemd-cgroup",
            });
        }
        let inner = clean(given.unwrap_or_else(|| Path::new(id)))?;
        let parents = if inner.is_absolute() {
            BTreeMap::new()
        } else {
            parse_proc_cgroup(proc_self_cgroup)?
                .into_iter()
                .map(|Membership { key, path }| (key, path))
                .collect()
        };
        Ok(Self {
            inner,
            parents,
            systemd: None,
        })
    }

    /// The cgroup hako itself is in, per hierarchy (from /proc/self/cgroup): what a rootless
    /// container without a cgroup of its own lives in, and shows at its `cgroup` mounts.
    pub fn own() -> Result<Self, Error> {
        let file = "/proc/self/cgroup";
        let text = std::fs::read_to_string(file).map_err(|source| Error::Read {
            path: file.into(),
            source,
        })?;
        let parents = parse_proc_cgroup(&text)?
            .into_iter()
            .map(|Membership { key, path }| (key, path))
            .collect();
        Ok(Self {
            inner: PathBuf::new(),
            parents,
            systemd: None,
        })
    }

    /// A cgroup at an absolute path inside every hierarchy (no lookup of hako's own cgroup).
    pub fn absolute(path: &Path) -> Result<Self, Error> {
        if !path.is_absolute() {
            return Err(Error::InvalidCgroupsPath {
                path: path.to_path_buf(),
                reason: "must be absolute",
            });
        }
        Ok(Self {
            inner: clean(path)?,
            parents: BTreeMap::new(),
            systemd: None,
        })
    }

    /// The systemd driver's unit, when the path is one.
    pub fn systemd_unit(&self) -> Option<&crate::systemd::Unit> {
        self.systemd.as_ref()
    }

    /// For a rootless container under the systemd driver: the same unit in the user's manager
    /// (`systemd --user`, reached over the user's session bus, see [`crate::systemd`]), whose
    /// cgroup lies below the manager's. Without a unit: unchanged.
    pub fn in_user_manager(&self) -> Result<Self, Error> {
        let Some(unit) = &self.systemd else {
            return Ok(self.clone());
        };
        let unit = crate::systemd::user_unit(unit.clone())?;
        Ok(Self {
            inner: PathBuf::from(unit.cgroup()),
            parents: self.parents.clone(),
            systemd: Some(unit),
        })
    }

    /// The cleaned cgroupsPath (absolute, or relative to hako's own cgroup).
    pub fn as_path(&self) -> &Path {
        &self.inner
    }

    /// The cgroup's path relative to the root of the hierarchy `key`
    /// ("cpu,cpuacct", "name=systemd", "" for v2), made relative to the
    /// mount's `mount_root` when hako's own cgroup is below it.
    pub(crate) fn in_hierarchy(&self, key: &str, mount_root: &Path) -> Result<PathBuf, Error> {
        if self.inner.is_absolute() {
            return Ok(self.inner.clone());
        }
        let own = self
            .parents
            .get(key)
            .ok_or_else(|| Error::OwnCgroupNotFound {
                hierarchy: key.to_string(),
            })?;
        let own = match own.strip_prefix(mount_root) {
            Ok(rel) if mount_root != Path::new("/") => Path::new("/").join(rel),
            _ => own.clone(),
        };
        Ok(own.join(&self.inner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SELF: &str = "4:memory:/process_api/abc\n1:cpu:/\n9:name=systemd:/user.slice\n0::/\n";

    fn resolve(p: Option<&str>, id: &str) -> Result<CgroupPath, Error> {
        CgroupPath::resolve_with(p.map(Path::new), id, false, SELF)
    }

    #[test]
    fn absolute_is_used_as_is() {
        let p = resolve(Some("/hako/./x//y/"), "id").unwrap();
        assert_eq!(p.as_path(), Path::new("/hako/x/y"));
        let root = Path::new("/");
        assert_eq!(
            p.in_hierarchy("memory", root).unwrap(),
            PathBuf::from("/hako/x/y")
        );
        assert_eq!(
            p.in_hierarchy("whatever", root).unwrap(),
            PathBuf::from("/hako/x/y")
        );
    }

    #[test]
    fn relative_joins_own_cgroup_per_hierarchy() {
        let p = resolve(Some("box/c1"), "id").unwrap();
        let root = Path::new("/");
        assert_eq!(
            p.in_hierarchy("memory", root).unwrap(),
            PathBuf::from("/process_api/abc/box/c1")
        );
        assert_eq!(
            p.in_hierarchy("cpu", root).unwrap(),
            PathBuf::from("/box/c1")
        );
        assert_eq!(
            p.in_hierarchy("name=systemd", root).unwrap(),
            PathBuf::from("/user.slice/box/c1")
        );
        assert_eq!(p.in_hierarchy("", root).unwrap(), PathBuf::from("/box/c1"));
        assert!(matches!(
            p.in_hierarchy("pids", root),
            Err(Error::OwnCgroupNotFound { .. })
        ));
    }

    #[test]
    fn relative_strips_mount_root() {
        let p = resolve(Some("c1"), "id").unwrap();
        assert_eq!(
            p.in_hierarchy("memory", Path::new("/process_api")).unwrap(),
            PathBuf::from("/abc/c1")
        );
    }

    #[test]
    fn empty_means_container_id() {
        let p = resolve(None, "ctr").unwrap();
        assert_eq!(p.as_path(), Path::new("ctr"));
        let p = resolve(Some(""), "ctr").unwrap();
        assert_eq!(
            p.in_hierarchy("cpu", Path::new("/")).unwrap(),
            PathBuf::from("/ctr")
        );
    }

    #[test]
    fn rejects_escapes_and_root() {
        for bad in ["../x", "/a/../../x", "/", ".", "a/.."] {
            assert!(
                matches!(
                    resolve(Some(bad), "id"),
                    Err(Error::InvalidCgroupsPath { .. })
                ),
                "{bad}"
            );
        }
        assert!(resolve(None, "..").is_err());
        assert_eq!(
            resolve(Some("/a/b/../c"), "id").unwrap().as_path(),
            Path::new("/a/c")
        );
    }

    #[test]
    fn systemd_paths_name_a_unit() {
        let p = CgroupPath::resolve_with(None, "id", true, SELF).unwrap();
        assert_eq!(p.as_path(), Path::new("/system.slice/hako-id.scope"));
        assert_eq!(p.systemd_unit().unwrap().name, "hako-id.scope");
        let p =
            CgroupPath::resolve_with(Some(Path::new("a-b.slice:x:y")), "id", true, SELF).unwrap();
        assert_eq!(p.as_path(), Path::new("/a.slice/a-b.slice/x-y.scope"));
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<CgroupPath>(&json).unwrap(), p);
        assert!(matches!(
            CgroupPath::resolve_with(Some(Path::new("/abs")), "id", true, SELF),
            Err(Error::InvalidCgroupsPath { .. })
        ));
        assert!(matches!(
            resolve(Some("system.slice:docker:abc"), "id"),
            Err(Error::InvalidCgroupsPath { .. })
        ));
    }

    #[test]
    fn serde_round_trip() {
        let p = resolve(Some("box"), "id").unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<CgroupPath>(&json).unwrap(), p);
    }
}
