//! Reading the whole store at once, for `list`: one container's state at a time, every file
//! opened below a directory that is opened once.
//!
//! With a thousand containers `list` opens three thousand files, and much of an open(2) of an
//! absolute path is the walk to it: `/run/hako/<id>/state.json` through the root's mounts, and
//! worse `/sys/fs/cgroup/freezer/<cgroup>/freezer.state`, whose kernfs dentries must be
//! revalidated at every step, which takes the walk off its lock-free path. Here the store's
//! directory and each cgroup hierarchy's are opened once, and every file is opened with
//! openat(2) below them: two components to walk instead of five to eight. Nothing is cached
//! but the directories: every status is derived afresh from the init, the freezer and the fifo,
//! as `state` derives it (`state.rs`), so a container killed a moment ago reads `stopped`.

use std::fs;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::state::{self, Container, Lookup, StateView, Store};

/// How many leading components of a freezer file's path name the directory kept open for it:
/// `/sys/fs/cgroup/<hierarchy>` (a v1 hierarchy; on v2, the cgroup's top-level ancestor).
/// Any ancestor opens the same file; this one is shared by every container of a hierarchy.
const CGROUP_DIR_DEPTH: usize = 5;

/// At most this many cgroup directories are kept open (a node has a handful of hierarchies and
/// top-level slices; beyond that, files are opened by their paths).
const MAX_CGROUP_DIRS: usize = 16;

/// The directories a scan keeps open.
struct Scan {
    /// The store's directory (`--root`), if it could be opened.
    root: Option<fs::File>,
    /// Cgroup directories by path; `None` for one that could not be opened.
    cgroup_dirs: Vec<(PathBuf, Option<fs::File>)>,
}

impl Scan {
    /// The directory to open `file` below, and the rest of its path.
    fn cgroup_dir_of<'p>(&mut self, file: &'p Path) -> Option<(BorrowedFd<'_>, &'p Path)> {
        let plain = file
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
        if !file.is_absolute() || !plain {
            return None;
        }
        let prefix: PathBuf = file.components().take(CGROUP_DIR_DEPTH).collect();
        let rest = file.strip_prefix(&prefix).ok()?;
        if rest.as_os_str().is_empty() {
            return None;
        }
        let at = match self.cgroup_dirs.iter().position(|(p, _)| *p == prefix) {
            Some(at) => at,
            None if self.cgroup_dirs.len() < MAX_CGROUP_DIRS => {
                let dir = fs::File::open(&prefix).ok();
                self.cgroup_dirs.push((prefix, dir));
                self.cgroup_dirs.len() - 1
            }
            None => return None,
        };
        Some((self.cgroup_dirs[at].1.as_ref()?.as_fd(), rest))
    }
}

impl Lookup for Scan {
    fn is_frozen(&mut self, file: &Path) -> Result<bool> {
        match self.cgroup_dir_of(file) {
            Some((dir, rest)) => Ok(hako_cgroups::is_frozen_opened(file, || {
                crate::sys::open_read(Some(dir), rest)
            })?),
            None => Ok(hako_cgroups::is_frozen_at(file)?),
        }
    }

    fn fifo_exists(&self, c: &Container) -> bool {
        let (Some(root), Some(name)) = (&self.root, c.dir().file_name()) else {
            return c.fifo_path().exists();
        };
        let rel = Path::new(name).join(state::FIFO_FILE);
        nix::sys::stat::fstatat(
            Some(std::os::fd::AsRawFd::as_raw_fd(root)),
            &rel,
            nix::fcntl::AtFlags::empty(),
        )
        .is_ok()
    }
}

/// Calls `f` with the view of each container in `ids`, in order.
pub(crate) fn each_view<E>(
    store: &Store,
    ids: Vec<String>,
    mut f: impl FnMut(String, Result<StateView>) -> std::result::Result<(), E>,
) -> std::result::Result<(), E>
where
    E: From<Error>,
{
    let mut scan = Scan {
        // Removed meanwhile: every read below then reports its container gone.
        root: fs::File::open(store.root()).ok(),
        cgroup_dirs: Vec::new(),
    };
    for id in ids {
        let root = scan.root.as_ref().map(|f| f.as_fd());
        let view =
            state::read_container(store.dir_of(&id), &id, root).and_then(|c| c.view_by(&mut scan));
        f(id, view)?;
    }
    Ok(())
}
