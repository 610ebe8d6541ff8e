//! `linux.namespaces`: validation and the flags for the container's clone.
//!
//! Namespaces are either created (no `path`) or joined (`path`, opened by the
//! parent before clone and joined by the child with setns(2)). runtime-spec
//! config-linux.md "Namespaces": duplicates are an error.
//!
//! Ordering constraints (namespaces(7), user_namespaces(7)): a namespace is
//! owned by the user namespace its creator was in, and joining a namespace
//! needs CAP_SYS_ADMIN in the user namespace that owns it. runc therefore
//! joins existing namespaces *before* creating new ones (nsexec.c). hako
//! creates what it can in `clone(2)`, and stages the rest in the child:
//! * with a **joined** user namespace, everything new is created after the
//!   join by [`Namespaces::unshare_late`], so it is owned by the joined user
//!   namespace;
//! * with a **new** user namespace and other namespaces to **join** (a
//!   Kubernetes user-namespace pod joining its network namespace), the child
//!   is cloned without namespace flags, joins as host root, then unshares the
//!   user namespace ([`Namespaces::unshares_user_late`]; the parent writes
//!   its maps when asked), and creates the others after it;
//! * in both cases a **new pid namespace** must be owned by that user
//!   namespace too, and unshare(CLONE_NEWPID) only applies to children
//!   (pid_namespaces(7)): the child unshares it and forks once more; the
//!   grandchild is the container's pid 1 ([`Namespaces::needs_pid_fork`]).
//!
//! The cgroup namespace is always unshared late, after the parent placed the
//! child in its cgroup, so that the namespace root is the container's cgroup
//! (cgroup_namespaces(7)). The time namespace too: unshare(CLONE_NEWTIME)
//! only affects children and exec (time_namespaces(7)), and its offsets must
//! be written before any process enters it.

use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use oci_spec::runtime::{Linux, LinuxNamespaceType};

use crate::kind::Kind;
use crate::Error;

/// One requested namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Path to join; `None` creates a new namespace.
    pub(crate) path: Option<PathBuf>,
}

/// Validated namespace set from `linux.namespaces`.
#[derive(Clone, Debug, Default)]
pub struct Namespaces {
    pub(crate) entries: [Option<Entry>; 8],
    /// `linux.timeOffsets`, validated: (clock, secs, nanosecs).
    pub(crate) time_offsets: Vec<(String, i64, u32)>,
}

impl Namespaces {
    /// Validates `linux.namespaces` (and `linux.timeOffsets`).
    ///
    /// Errors on duplicates, relative paths, time offsets without a new time
    /// namespace, and the user-namespace orderings hako cannot honour (see
    /// the module docs).
    pub fn from_spec(linux: Option<&Linux>) -> Result<Self, Error> {
        let mut ns = Namespaces::default();
        let Some(linux) = linux else {
            return Ok(ns);
        };
        for n in linux.namespaces().iter().flatten() {
            let kind = Kind::from_oci(n.typ());
            let slot = &mut ns.entries[kind.index()];
            if slot.is_some() {
                return Err(Error::DuplicateNamespace { ns: kind.name() });
            }
            let path = n.path().clone().filter(|p| !p.as_os_str().is_empty());
            if let Some(p) = &path {
                if !p.is_absolute() {
                    return Err(Error::NamespacePathNotAbsolute {
                        ns: kind.name(),
                        path: p.clone(),
                    });
                }
            }
            *slot = Some(Entry { path });
        }
        if let Some(offsets) = linux.time_offsets() {
            if !offsets.is_empty() && !ns.has_kind_new(Kind::Time) {
                return Err(Error::TimeOffsetsWithoutTimeNs);
            }
            let mut v: Vec<(String, i64, u32)> = Vec::new();
            for (clock, off) in offsets {
                if clock != "monotonic" && clock != "boottime" {
                    return Err(Error::InvalidTimeOffset {
                        clock: clock.clone(),
                    });
                }
                v.push((
                    clock.clone(),
                    off.secs().unwrap_or(0),
                    off.nanosecs().unwrap_or(0),
                ));
            }
            v.sort();
            ns.time_offsets = v;
        }
        Ok(ns)
    }

    /// True if the user namespace is new but other namespaces are joined:
    /// the joins must come first (as host root), so the child unshares the
    /// user namespace after them instead of being cloned into it, and asks
    /// the parent to write the maps then (see the module docs).
    pub fn unshares_user_late(&self) -> bool {
        self.has_kind_new(Kind::User)
            && Kind::JOIN_ORDER
                .into_iter()
                .any(|k| k != Kind::User && k != Kind::Pid && self.joined_path(k).is_some())
    }

    /// True if new namespaces must wait until the child is in its user
    /// namespace (joined, or unshared late).
    fn user_first(&self) -> bool {
        self.joined_path(Kind::User).is_some() || self.unshares_user_late()
    }

    /// True if the container's new pid namespace can only be created by the
    /// child after its user namespace is in place: the child unshares it and
    /// forks the container's pid 1 (see the module docs).
    pub fn needs_pid_fork(&self) -> bool {
        self.has_kind_new(Kind::Pid) && self.user_first()
    }

    pub(crate) fn entry(&self, k: Kind) -> Option<&Entry> {
        self.entries[k.index()].as_ref()
    }

    pub(crate) fn has_kind_new(&self, k: Kind) -> bool {
        matches!(self.entry(k), Some(Entry { path: None }))
    }

    pub(crate) fn joined_path(&self, k: Kind) -> Option<&Path> {
        self.entry(k).and_then(|e| e.path.as_deref())
    }

    /// Namespaces unshared after the joins in the child by
    /// [`Namespaces::unshare_late`] (see module docs). Never user or pid,
    /// which have steps of their own.
    pub(crate) fn late_kinds(&self) -> Vec<Kind> {
        let user_first = self.user_first();
        Kind::JOIN_ORDER
            .into_iter()
            .filter(|&k| self.has_kind_new(k))
            .filter(|&k| match k {
                Kind::Cgroup | Kind::Time => true,
                Kind::User | Kind::Pid => false,
                _ => user_first,
            })
            .collect()
    }

    /// `CLONE_NEW*` flags for the namespaces to create in the container's
    /// clone: user, mount, uts, ipc, net, pid. Never cgroup or time (created
    /// by [`Namespaces::unshare_late`]); when the user namespace is joined
    /// or unshared late, none (everything is staged in the child).
    pub fn clone_flags(&self) -> CloneFlags {
        if self.user_first() {
            return CloneFlags::empty();
        }
        let late = self.late_kinds();
        Kind::JOIN_ORDER
            .into_iter()
            .filter(|&k| self.has_kind_new(k) && !late.contains(&k))
            .fold(CloneFlags::empty(), |acc, k| acc | k.flag())
    }

    /// True if a namespace of type `t` is created (not joined).
    pub fn has_new(&self, t: LinuxNamespaceType) -> bool {
        self.has_kind_new(Kind::from_oci(t))
    }

    /// True if a namespace of type `t` is requested, created or joined
    /// (runc's `Namespaces.Contains`).
    pub fn contains(&self, t: LinuxNamespaceType) -> bool {
        self.entry(Kind::from_oci(t)).is_some()
    }

    /// The path to join for type `t`, if any.
    pub fn path(&self, t: LinuxNamespaceType) -> Option<&Path> {
        self.joined_path(Kind::from_oci(t))
    }

    /// True if type `t` is neither created nor joined: the container
    /// shares it with the runtime.
    pub fn is_shared_with_host(&self, t: LinuxNamespaceType) -> bool {
        !self.contains(t)
    }

    /// Validates `hostname`/`domainname` against the namespaces, as runc:
    /// setting either needs a private (created or joined) UTS namespace.
    pub fn check_uts(&self, hostname: Option<&str>, domainname: Option<&str>) -> Result<(), Error> {
        if self.entry(Kind::Uts).is_some() {
            return Ok(());
        }
        if hostname.is_some_and(|h| !h.is_empty()) {
            return Err(Error::NoPrivateUts { what: "hostname" });
        }
        if domainname.is_some_and(|d| !d.is_empty()) {
            return Err(Error::NoPrivateUts { what: "domainname" });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxBuilder, LinuxNamespaceBuilder, LinuxTimeOffsetBuilder};
    use std::collections::HashMap;

    fn ns(t: LinuxNamespaceType, path: Option<&str>) -> oci_spec::runtime::LinuxNamespace {
        let b = LinuxNamespaceBuilder::default().typ(t);
        let b = match path {
            Some(p) => b.path(p),
            None => b,
        };
        b.build().unwrap()
    }

    fn linux(list: Vec<oci_spec::runtime::LinuxNamespace>) -> Linux {
        LinuxBuilder::default().namespaces(list).build().unwrap()
    }

    #[test]
    fn none_is_empty() {
        let n = Namespaces::from_spec(None).unwrap();
        assert!(n.clone_flags().is_empty());
        assert!(n.is_shared_with_host(LinuxNamespaceType::Pid));
    }

    #[test]
    fn clone_flags_exclude_cgroup_and_time() {
        use LinuxNamespaceType::*;
        let l = linux(vec![
            ns(Pid, None),
            ns(Mount, None),
            ns(Cgroup, None),
            ns(Time, None),
            ns(Uts, None),
            ns(Network, Some("/proc/1/ns/net")),
        ]);
        let n = Namespaces::from_spec(Some(&l)).unwrap();
        assert_eq!(
            n.clone_flags(),
            CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS
        );
        assert!(n.has_new(Cgroup));
        assert!(!n.has_new(Network));
        assert!(n.contains(Network));
        assert!(!n.is_shared_with_host(Network));
        assert!(n.is_shared_with_host(Ipc));
        assert_eq!(n.late_kinds(), vec![Kind::Cgroup, Kind::Time]);
    }

    #[test]
    fn duplicates_rejected() {
        let l = linux(vec![
            ns(LinuxNamespaceType::Pid, None),
            ns(LinuxNamespaceType::Pid, Some("/proc/1/ns/pid")),
        ]);
        assert!(matches!(
            Namespaces::from_spec(Some(&l)),
            Err(Error::DuplicateNamespace { ns: "pid" })
        ));
    }

    #[test]
    fn relative_path_rejected() {
        let l = linux(vec![ns(LinuxNamespaceType::Network, Some("proc/1/ns/net"))]);
        assert!(matches!(
            Namespaces::from_spec(Some(&l)),
            Err(Error::NamespacePathNotAbsolute { .. })
        ));
    }

    #[test]
    fn new_user_with_joined_net_is_staged() {
        use LinuxNamespaceType::*;
        // A Kubernetes user-namespace sandbox: the pod's network namespace is joined first.
        let l = linux(vec![
            ns(User, None),
            ns(Network, Some("/run/netns/x")),
            ns(Mount, None),
            ns(Pid, None),
            ns(Ipc, None),
        ]);
        let n = Namespaces::from_spec(Some(&l)).unwrap();
        assert!(n.unshares_user_late());
        assert!(n.needs_pid_fork());
        assert!(n.clone_flags().is_empty());
        assert_eq!(n.late_kinds(), vec![Kind::Ipc, Kind::Mount]);
        // Joining only a pid namespace (done by the parent) keeps everything in the clone.
        let l = linux(vec![
            ns(User, None),
            ns(Pid, Some("/proc/1/ns/pid")),
            ns(Mount, None),
        ]);
        let n = Namespaces::from_spec(Some(&l)).unwrap();
        assert!(!n.unshares_user_late());
        assert!(!n.needs_pid_fork());
        assert_eq!(
            n.clone_flags(),
            CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS
        );
    }

    #[test]
    fn joined_user_defers_creation() {
        use LinuxNamespaceType::*;
        let l = linux(vec![
            ns(User, Some("/proc/1/ns/user")),
            ns(Mount, None),
            ns(Uts, None),
        ]);
        let n = Namespaces::from_spec(Some(&l)).unwrap();
        assert!(n.clone_flags().is_empty());
        assert_eq!(n.late_kinds(), vec![Kind::Uts, Kind::Mount]);

        assert!(!n.needs_pid_fork());
        // A Kubernetes pod container: the sandbox's user namespace, a pid namespace of its own.
        let l = linux(vec![ns(User, Some("/proc/1/ns/user")), ns(Pid, None)]);
        let n = Namespaces::from_spec(Some(&l)).unwrap();
        assert!(n.needs_pid_fork());
        assert!(!n.unshares_user_late());
        assert!(n.clone_flags().is_empty());
    }

    #[test]
    fn time_offsets_validated() {
        let off = LinuxTimeOffsetBuilder::default()
            .secs(5i64)
            .build()
            .unwrap();
        let mut m = HashMap::new();
        m.insert("monotonic".to_string(), off.clone());
        let l = LinuxBuilder::default()
            .namespaces(vec![ns(LinuxNamespaceType::Mount, None)])
            .time_offsets(m.clone())
            .build()
            .unwrap();
        assert!(matches!(
            Namespaces::from_spec(Some(&l)),
            Err(Error::TimeOffsetsWithoutTimeNs)
        ));
        let l = LinuxBuilder::default()
            .namespaces(vec![ns(LinuxNamespaceType::Time, None)])
            .time_offsets(m)
            .build()
            .unwrap();
        let n = Namespaces::from_spec(Some(&l)).unwrap();
        assert_eq!(n.time_offsets, vec![("monotonic".to_string(), 5, 0)]);
        let mut bad = HashMap::new();
        bad.insert("realtime".to_string(), off);
        let l = LinuxBuilder::default()
            .namespaces(vec![ns(LinuxNamespaceType::Time, None)])
            .time_offsets(bad)
            .build()
            .unwrap();
        assert!(matches!(
            Namespaces::from_spec(Some(&l)),
            Err(Error::InvalidTimeOffset { .. })
        ));
    }

    #[test]
    fn uts_check() {
        let n = Namespaces::from_spec(None).unwrap();
        assert!(matches!(
            n.check_uts(Some("box"), None),
            Err(Error::NoPrivateUts { what: "hostname" })
        ));
        assert!(n.check_uts(Some(""), None).is_ok());
        let l = linux(vec![ns(LinuxNamespaceType::Uts, None)]);
        let n = Namespaces::from_spec(Some(&l)).unwrap();
        assert!(n.check_uts(Some("box"), Some("dom")).is_ok());
    }
}
