//! The container's cgroup as a set of directories, one per hierarchy hako
//! uses: creating, joining and removing them. Resource writes, freezing and
//! statistics live in their own modules as further `impl Cgroup` blocks.
//!
//! Like runc's fs driver, on v1 the cgroup is created in every mounted
//! controller hierarchy plus `name=systemd` (other named hierarchies are not
//! ours); in hybrid mode also in the controller-less cgroup2 mount, which
//! gives `cgroup.kill` and a v2 view of the processes; in unified mode in the
//! one cgroup2 tree, enabling the available controllers in each ancestor's
//! `cgroup.subtree_control` (cgroup-v2.rst "Enabling and Disabling").

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::mode::{mode_of, read_mounts};
use crate::mountinfo::{CgroupMount, FsVersion};
use crate::{files, CgroupPath, Error, Mode};

/// One hierarchy the container's cgroup lives in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hierarchy {
    /// Name under /sys/fs/cgroup (mount point basename), e.g. "cpu", "systemd", "unified".
    pub name: String,
    /// Where the hierarchy is mounted on the host.
    pub mount_point: PathBuf,
    /// Host directory of this container's cgroup in the hierarchy.
    pub dir: PathBuf,
    /// "cgroup" or "cgroup2".
    pub fs_type: &'static str,
    /// Mount options naming the hierarchy: "cpu", "cpu,cpuacct", "name=systemd"; "" for cgroup2.
    pub options: String,
}

impl Hierarchy {
    /// Whether this is a v1 hierarchy with `controller` bound to it.
    pub(crate) fn has_controller(&self, controller: &str) -> bool {
        self.fs_type == "cgroup" && self.options.split(',').any(|c| c == controller)
    }

    pub(crate) fn is_v2(&self) -> bool {
        self.fs_type == "cgroup2"
    }
}

/// Where a cgroup's directories are ([`Cgroup::located`]), serializable for a caller to keep.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Located {
    mode: Mode,
    hierarchies: Vec<LocatedHierarchy>,
}

/// One [`Hierarchy`] as [`Located`] keeps it (its name is the mount point's last component).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct LocatedHierarchy {
    mount_point: PathBuf,
    dir: PathBuf,
    #[serde(default)]
    v2: bool,
    #[serde(default)]
    options: String,
}

/// A selection of a cgroup's hierarchies, for [`Cgroup::add_process_in`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hierarchies {
    /// Every hierarchy.
    All,
    /// The v1 hierarchies (none on a unified host).
    V1,
    /// The cgroup2 one (unified, or a hybrid host's controller-less tree; none on legacy v1).
    Cgroup2,
}

/// A container's cgroup: knows the mode and its directory in each hierarchy.
#[derive(Clone, Debug)]
pub struct Cgroup {
    mode: Mode,
    path: CgroupPath,
    hierarchies: Vec<Hierarchy>,
}

/// Whether hako manages a cgroup in this mounted hierarchy.
fn used(m: &CgroupMount, mode: Mode) -> bool {
    match (m.version, mode) {
        (FsVersion::V2, Mode::Unified | Mode::Hybrid) => true,
        (FsVersion::V1, Mode::Legacy | Mode::Hybrid) => {
            !m.controllers.is_empty()
                && m.controllers
                    .iter()
                    .any(|c| !c.starts_with("name=") || c == "name=systemd")
        }
        _ => false,
    }
}

/// Bounded exponential backoff: yields sleeps from `first` doubling up to `cap`
/// until `total` has been spent.
pub(crate) struct Backoff {
    next: Duration,
    cap: Duration,
    left: Duration,
}

impl Backoff {
    pub(crate) fn new(first: Duration, cap: Duration, total: Duration) -> Self {
        Self {
            next: first,
            cap,
            left: total,
        }
    }

    /// Sleep for the next step; false once the budget is spent.
    pub(crate) fn wait(&mut self) -> bool {
        if self.left.is_zero() {
            return false;
        }
        let d = self.next.min(self.left);
        std::thread::sleep(d);
        self.left -= d;
        self.next = (self.next * 2).min(self.cap);
        true
    }
}

/// How long [`Cgroup::destroy`] keeps retrying EBUSY, over all hierarchies.
const DESTROY_BUDGET: Duration = Duration::from_secs(3);

/// Remove a cgroup directory: child cgroups first (the container may have
/// made some), retrying EBUSY while just-killed processes leave, sharing one
/// retry budget across the whole destroy.
fn remove_dir(dir: &Path, backoff: &mut Backoff) -> Result<(), Error> {
    // The rmdir(2) first: a container's cgroup usually has no child cgroup, and one that has
    // fails with EBUSY (cgroup_destroy_locked), like one whose last tasks are still exiting;
    // only then are its children looked for (a readdir per hierarchy per `delete` otherwise).
    match std::fs::remove_dir(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
        Err(source) => {
            return Err(Error::Rmdir {
                path: dir.to_path_buf(),
                source,
            })
        }
    }
    let Some(entries) = crate::files::read_dir_if_exists(dir)? else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry.map_err(|source| Error::ReadDir {
            path: dir.to_path_buf(),
            source,
        })?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_dir(&entry.path(), backoff)?;
        }
    }
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && backoff.wait() => {}
            Err(source) => {
                return Err(Error::Rmdir {
                    path: dir.to_path_buf(),
                    source,
                })
            }
        }
    }
}

/// `mkdir -p dir`, recording each directory actually created (outermost first). The mkdir(2)
/// comes first and the parent is looked at only if it is missing (ENOENT): a container's cgroup
/// is usually new under an existing parent, and a stat(2) of the cgroup and of its parent before
/// each mkdir was two kernfs path walks per hierarchy, twenty per `create` on a v1 host.
fn mkdir_p(dir: &Path, created: &mut Vec<PathBuf>) -> Result<(), Error> {
    let mkdir_error = |source| Error::Mkdir {
        path: dir.to_path_buf(),
        source,
    };
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let Some(parent) = dir.parent() else {
                return Err(mkdir_error(e));
            };
            mkdir_p(parent, created)?;
            match std::fs::create_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(()),
                Err(source) => return Err(mkdir_error(source)),
            }
        }
        Err(source) => return Err(mkdir_error(source)),
    }
    created.push(dir.to_path_buf());
    Ok(())
}

/// v1 cpuset: a new cgroup starts with empty cpuset.cpus/mems and no task can
/// join it (ENOSPC). Copy the parent's values down every level from the
/// mount point to `dir` where they are empty, as runc's cpuset `ensureParent`.
fn fill_cpuset(mount_point: &Path, dir: &Path) -> Result<(), Error> {
    let Ok(rel) = dir.strip_prefix(mount_point) else {
        return Ok(());
    };
    let mut parent = mount_point.to_path_buf();
    for comp in rel.components() {
        let child = parent.join(comp);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            if files::read(&child, file)?.trim().is_empty() {
                let value = files::read(&parent, file)?;
                files::write(&child, file, value.trim())?;
            }
        }
        parent = child;
    }
    Ok(())
}

/// v2: enable in `dir`'s cgroup.subtree_control every controller it has.
/// All at once first, then one by one ignoring refusals (runc fs2 does the same).
fn enable_controllers(dir: &Path) -> Result<(), Error> {
    let available = files::read(dir, "cgroup.controllers")?;
    let wanted: Vec<String> = available
        .split_whitespace()
        .map(|c| format!("+{c}"))
        .collect();
    if wanted.is_empty() || files::write(dir, "cgroup.subtree_control", &wanted.join(" ")).is_ok() {
        return Ok(());
    }
    for c in &wanted {
        // A controller may be refused (e.g. threaded subtree); the cgroup still works without it.
        let _ = files::write(dir, "cgroup.subtree_control", c);
    }
    Ok(())
}

impl Cgroup {
    /// The directories for `path` in the hierarchies of the current mounts.
    fn locate(path: &CgroupPath) -> Result<Self, Error> {
        let mounts = read_mounts()?;
        let mode = mode_of(&mounts)?;
        let hierarchies = mounts
            .iter()
            .filter(|m| used(m, mode))
            .map(|m| {
                let inner = path.in_hierarchy(&m.key(), &m.root)?;
                let rel = inner.strip_prefix("/").unwrap_or(&inner);
                Ok(Hierarchy {
                    name: m
                        .mount_point
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    mount_point: m.mount_point.clone(),
                    dir: m.mount_point.join(rel),
                    fs_type: match m.version {
                        FsVersion::V1 => "cgroup",
                        FsVersion::V2 => "cgroup2",
                    },
                    options: m.key(),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Self {
            mode,
            path: path.clone(),
            hierarchies,
        })
    }

    /// mkdir -p the cgroup in every hierarchy hako uses. On failure, removes
    /// what it created. Writes nothing outside the new directories except, on
    /// v1, empty cpuset.cpus/mems of ancestors and, on v2, ancestors'
    /// cgroup.subtree_control.
    pub fn create(path: &CgroupPath) -> Result<Self, Error> {
        let cg = Self::locate(path)?;
        let mut created = Vec::new();
        let result = cg.make_dirs(&mut created);
        if result.is_err() {
            for dir in created.iter().rev() {
                let _ = std::fs::remove_dir(dir);
            }
        }
        result.map(|()| cg)
    }

    fn make_dirs(&self, created: &mut Vec<PathBuf>) -> Result<(), Error> {
        for h in &self.hierarchies {
            if self.mode == Mode::Unified {
                // Enable controllers top-down so each level can pass them on.
                let rel = h.dir.strip_prefix(&h.mount_point).unwrap_or(Path::new(""));
                let mut cur = h.mount_point.clone();
                for comp in rel.components() {
                    enable_controllers(&cur)?;
                    cur.push(comp);
                    mkdir_p(&cur, created)?;
                }
            } else {
                mkdir_p(&h.dir, created)?;
            }
            if h.has_controller("cpuset") {
                fill_cpuset(&h.mount_point, &h.dir)?;
            }
        }
        Ok(())
    }

    /// Where this cgroup's directories are, for a caller to keep (hako's state) and hand to
    /// [`Cgroup::open_located`] later.
    pub fn located(&self) -> Located {
        Located {
            mode: self.mode,
            hierarchies: self
                .hierarchies
                .iter()
                .map(|h| LocatedHierarchy {
                    mount_point: h.mount_point.clone(),
                    dir: h.dir.clone(),
                    v2: h.is_v2(),
                    options: h.options.clone(),
                })
                .collect(),
        }
    }

    /// The cgroup at `path` whose directories [`Cgroup::located`] gave: no read of
    /// /proc/self/mountinfo, whose formatting by the kernel (a line per mount, each path
    /// resolved) is the larger part of [`Cgroup::open`]'s cost, paid by every `exec`,
    /// `kill --all` and `delete`. The directories were made (or found) by the command that
    /// located them, so they name the cgroup even if the host's mounts changed since.
    pub fn open_located(path: &CgroupPath, at: &Located) -> Self {
        Self {
            mode: at.mode,
            path: path.clone(),
            hierarchies: at
                .hierarchies
                .iter()
                .map(|h| Hierarchy {
                    name: h
                        .mount_point
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    mount_point: h.mount_point.clone(),
                    dir: h.dir.clone(),
                    fs_type: if h.v2 { "cgroup2" } else { "cgroup" },
                    options: h.options.clone(),
                })
                .collect(),
        }
    }

    /// An existing cgroup (for later verbs), from the path stored in state.
    /// Directories that are already gone are not an error (a half-deleted
    /// container must still be destroyable).
    pub fn open(path: &CgroupPath) -> Result<Self, Error> {
        Self::locate(path)
    }

    /// Writes `pid` to cgroup.procs in every hierarchy. Apply resources first:
    /// on v1 a realtime task cannot join a cgroup without cpu.rt_runtime_us.
    pub fn add_process(&self, pid: i32) -> Result<(), Error> {
        self.add_process_in(pid, Hierarchies::All)
    }

    /// [`Cgroup::add_process`] in the hierarchies `which` selects: what is left of a child's
    /// placement after clone3 put it in the cgroup2 directory, or it moved itself into the v1
    /// ones ([`Cgroup::self_join`]).
    pub fn add_process_in(&self, pid: i32, which: Hierarchies) -> Result<(), Error> {
        let selected = self.hierarchies.iter().filter(|h| match which {
            Hierarchies::All => true,
            Hierarchies::V1 => !h.is_v2(),
            Hierarchies::Cgroup2 => h.is_v2(),
        });
        for h in selected {
            let path = h.dir.join("cgroup.procs");
            let mut backoff = Backoff::new(
                Duration::from_millis(1),
                Duration::from_millis(30),
                Duration::from_millis(200),
            );
            loop {
                match files::write(&h.dir, "cgroup.procs", &pid.to_string()) {
                    Ok(()) => break,
                    // EINVAL: the task may still be TASK_NEW right after clone (runc retries too).
                    Err(Error::Write { source, .. })
                        if source.raw_os_error() == Some(libc::EINVAL) && backoff.wait() => {}
                    Err(Error::Write { source, .. }) => {
                        return Err(Error::AddProcess { path, pid, source })
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// rmdir in every hierarchy, child cgroups first; an absent dir is fine;
    /// EBUSY is retried with backoff for at most 3 s in total. Every
    /// hierarchy is attempted even after a failure; the first error is returned. Only the leaf is removed, never
    /// the parents (as runc).
    pub fn destroy(&self) -> Result<(), Error> {
        let mut first_err = None;
        let mut backoff = Backoff::new(
            Duration::from_millis(1),
            Duration::from_millis(100),
            DESTROY_BUDGET,
        );
        for h in &self.hierarchies {
            if let Err(e) = remove_dir(&h.dir, &mut backoff) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// (name under /sys/fs/cgroup, host dir of this cgroup, fs type, mount options)
    /// for each hierarchy; the rootfs code bind-mounts these inside the container.
    pub fn hierarchies(&self) -> Vec<Hierarchy> {
        self.hierarchies.clone()
    }

    /// A cgroup over arbitrary directories (unit tests of the file writers).
    #[cfg(test)]
    pub(crate) fn fake(mode: Mode, hierarchies: Vec<Hierarchy>) -> Self {
        Self {
            mode,
            path: CgroupPath::absolute(Path::new("/fake")).unwrap(),
            hierarchies,
        }
    }

    pub(crate) fn hierarchies_ref(&self) -> &[Hierarchy] {
        &self.hierarchies
    }

    /// The resolved cgroup path this cgroup was made from.
    pub fn path(&self) -> &CgroupPath {
        &self.path
    }

    /// The host's cgroup mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Directory of the v1 hierarchy carrying `controller`.
    pub(crate) fn v1_dir(&self, controller: &str) -> Option<&Path> {
        self.hierarchies
            .iter()
            .find(|h| h.has_controller(controller))
            .map(|h| h.dir.as_path())
    }

    /// Like [`Cgroup::v1_dir`], or [`Error::ControllerMissing`] for `field`.
    pub(crate) fn v1_dir_for(
        &self,
        controller: &'static str,
        field: &'static str,
    ) -> Result<&Path, Error> {
        self.v1_dir(controller)
            .ok_or(Error::ControllerMissing { controller, field })
    }

    /// Directory in the cgroup2 hierarchy (unified, or hybrid's controller-less one).
    pub(crate) fn v2_dir(&self) -> Option<&Path> {
        self.hierarchies
            .iter()
            .find(|h| h.is_v2())
            .map(|h| h.dir.as_path())
    }
}

#[cfg(test)]
mod tests {
    use super::{mkdir_p, Cgroup, Located};
    use crate::CgroupPath;

    /// A cgroup opened from where it was located, after a trip through JSON (hako's state), is
    /// the one `open` finds from this host's mounts: same mode, same hierarchies, same names.
    #[test]
    fn a_located_cgroup_reopens_as_found() {
        let path = CgroupPath::absolute("/hako-unit/located".as_ref()).expect("path");
        let found = Cgroup::open(&path).expect("open from mountinfo");
        assert!(!found.hierarchies().is_empty());
        let json = serde_json::to_string(&found.located()).expect("encode");
        let kept: Located = serde_json::from_str(&json).expect("decode");
        let reopened = Cgroup::open_located(&path, &kept);
        assert_eq!(reopened.mode(), found.mode());
        assert_eq!(reopened.hierarchies(), found.hierarchies());
        assert_eq!(reopened.path, found.path);
    }

    /// mkdir first, the parents only when missing: each directory made is recorded, outermost
    /// first (what a failed `create` removes), and nothing that existed before.
    #[test]
    fn mkdir_p_records_what_it_made() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let leaf = tmp.path().join("a/b/c");
        let mut made = Vec::new();
        mkdir_p(&leaf, &mut made).expect("mkdir -p");
        let want: Vec<_> = ["a", "a/b", "a/b/c"]
            .iter()
            .map(|p| tmp.path().join(p))
            .collect();
        assert_eq!(made, want);
        assert!(leaf.is_dir());
        let mut again = Vec::new();
        mkdir_p(&leaf, &mut again).expect("exists");
        mkdir_p(&tmp.path().join("a/b/d"), &mut again).expect("sibling");
        assert_eq!(again, vec![tmp.path().join("a/b/d")]);
        std::fs::write(tmp.path().join("f"), "").expect("file");
        assert!(mkdir_p(&tmp.path().join("f/x"), &mut Vec::new()).is_err());
    }
}
