//! Resolving paths inside a container root without ever leaving it.
//!
//! Images are hostile: any component of a mount destination may be a
//! symlink to an absolute host path (`etc/evil -> /tmp/host-target`) or
//! climb with `..`. Joining strings and calling mount(2) would follow those
//! links on the host (CVE-2015-1328 class, runc's securejoin). Instead every
//! path is resolved from an `O_PATH` fd of the root with
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` (openat2(2), Linux 5.6),
//! which treats the root fd as `/` for absolute symlinks and `..`. Missing
//! components are created by a component walk that resolves each symlink by
//! hand and keeps it inside the root; the same walk is the fallback when
//! openat2 is not available (ENOSYS). Mounts then target
//! `/proc/self/fd/<fd>` so a symlink swapped in after resolution cannot
//! redirect them.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, ResolveFlag};
use nix::sys::stat::{fstat, mkdirat, Mode, SFlag};

use crate::{sys, Error};

/// Maximum symlinks followed in one resolution (path_resolution(7): 40).
const MAX_SYMLINKS: usize = 40;

/// What to create when the path is missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Create {
    /// Nothing: a missing path is `ENOENT`.
    No,
    /// Directories all the way.
    Dir,
    /// Parent directories, then an empty regular file.
    File,
}

/// An `O_PATH` fd of a container root (or of `/` after pivot_root).
#[derive(Debug)]
pub(crate) struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

/// The path relative to the root: leading `/` dropped.
fn relative(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_)))
        .collect()
}

/// The `S_IFMT` type of an fd.
pub(crate) fn file_type(fd: BorrowedFd<'_>) -> Result<SFlag, Errno> {
    let st = fstat(std::os::fd::AsRawFd::as_raw_fd(&fd))?;
    Ok(SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()))
}

impl Root {
    /// Opens `path` (a trusted host path) as the root.
    pub(crate) fn open(path: &Path) -> Result<Root, Error> {
        let fd =
            sys::open(path, OFlag::O_PATH | OFlag::O_DIRECTORY).map_err(|source| Error::Open {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Root {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The root's fd.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The root's host path, for messages.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, path: &Path, source: Errno) -> Error {
        Error::Resolve {
            root: self.path.clone(),
            path: path.to_path_buf(),
            source,
        }
    }

    /// Opens `path` inside the root with `O_PATH`, following symlinks
    /// inside the root, creating what is missing as `create` says.
    pub(crate) fn resolve(&self, path: &Path, create: Create) -> Result<OwnedFd, Error> {
        self.resolve_raw(path, create, true)
            .map_err(|e| self.err(path, e))
    }

    /// Opens `path` inside the root with `O_PATH`, following symlinks inside
    /// the root; `Ok(None)` if it (or a symlink's target) does not exist.
    pub(crate) fn resolve_existing(&self, path: &Path) -> Result<Option<OwnedFd>, Error> {
        match self.resolve_raw(path, Create::No, true) {
            Ok(fd) => Ok(Some(fd)),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(self.err(path, e)),
        }
    }

    /// Opens `path` inside the root without following a final symlink.
    /// `Ok(None)` if it does not exist.
    pub(crate) fn open_nofollow(&self, path: &Path) -> Result<Option<OwnedFd>, Error> {
        match self.resolve_raw(path, Create::No, false) {
            Ok(fd) => Ok(Some(fd)),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(self.err(path, e)),
        }
    }

    /// Resolves (creating) the parent directory of `path`; returns it with
    /// the final component.
    pub(crate) fn resolve_parent(&self, path: &Path) -> Result<(OwnedFd, OsString), Error> {
        let rel = relative(path);
        let name = match rel.components().next_back() {
            Some(Component::Normal(n)) => n.to_os_string(),
            _ => return Err(self.err(path, Errno::EINVAL)),
        };
        let parent = rel.parent().unwrap_or(Path::new(""));
        Ok((self.resolve(parent, Create::Dir)?, name))
    }

    fn resolve_raw(&self, path: &Path, create: Create, follow: bool) -> Result<OwnedFd, Errno> {
        let rel = relative(path);
        if rel.as_os_str().is_empty() {
            return self.fd.try_clone().map_err(|_| Errno::EMFILE);
        }
        let mut flags = OFlag::O_PATH;
        if !follow {
            flags |= OFlag::O_NOFOLLOW;
        }
        match sys::openat2(
            self.fd(),
            &rel,
            flags,
            Mode::empty(),
            ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS,
        ) {
            Ok(fd) => Ok(fd),
            Err(Errno::ENOENT) if create != Create::No => self.walk(&rel, create, follow),
            Err(Errno::ENOSYS) | Err(Errno::E2BIG) => self.walk(&rel, create, follow),
            Err(e) => Err(e),
        }
    }

    /// Component walk from the root: symlinks are read and spliced into the
    /// remaining path (absolute ones restart at the root), `..` never goes
    /// above the root, missing components are created.
    pub(crate) fn walk(
        &self,
        rel: &Path,
        create: Create,
        follow_last: bool,
    ) -> Result<OwnedFd, Errno> {
        let mut stack: Vec<OwnedFd> = vec![self.fd.try_clone().map_err(|_| Errno::EMFILE)?];
        let mut todo: VecDeque<OsString> = VecDeque::new();
        push_components(&mut todo, rel);
        let mut links = 0;
        let mut last_fd: Option<OwnedFd> = None;
        while let Some(c) = todo.pop_front() {
            if let Some(fd) = last_fd.take() {
                // A non-directory with components after it.
                drop(fd);
                return Err(Errno::ENOTDIR);
            }
            if c == ".." {
                if stack.len() > 1 {
                    stack.pop();
                }
                continue;
            }
            let is_last = todo.is_empty();
            let cur = stack.last().ok_or(Errno::EINVAL)?.as_fd();
            let name = Path::new(&c);
            match sys::openat(
                Some(cur),
                name,
                OFlag::O_PATH | OFlag::O_NOFOLLOW,
                Mode::empty(),
            ) {
                Ok(fd) => {
                    let t = file_type(fd.as_fd())?;
                    if t == SFlag::S_IFLNK && (!is_last || follow_last) {
                        links += 1;
                        if links > MAX_SYMLINKS {
                            return Err(Errno::ELOOP);
                        }
                        let target = sys::readlink_fd(fd.as_fd())?;
                        if target.is_absolute() {
                            stack.truncate(1);
                        }
                        let mut spliced = VecDeque::new();
                        push_components(&mut spliced, &target);
                        spliced.extend(todo.drain(..));
                        todo = spliced;
                    } else if t == SFlag::S_IFDIR {
                        stack.push(fd);
                    } else {
                        last_fd = Some(fd);
                    }
                }
                Err(Errno::ENOENT) if create != Create::No => {
                    let res = if is_last && create == Create::File {
                        sys::openat(
                            Some(cur),
                            name,
                            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW,
                            Mode::from_bits_truncate(0o644),
                        )
                        .map(drop)
                    } else {
                        mkdirat(
                            Some(std::os::fd::AsRawFd::as_raw_fd(&cur)),
                            name,
                            Mode::from_bits_truncate(0o755),
                        )
                    };
                    match res {
                        Ok(()) | Err(Errno::EEXIST) => todo.push_front(c),
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        match last_fd {
            Some(fd) => Ok(fd),
            None => stack.pop().ok_or(Errno::EINVAL),
        }
    }
}

fn push_components(todo: &mut VecDeque<OsString>, p: &Path) {
    for c in p.components() {
        match c {
            Component::Normal(n) => todo.push_back(n.to_os_string()),
            Component::ParentDir => todo.push_back(OsStr::new("..").to_os_string()),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
}

/// The host path an fd refers to (readlink of its magic link), for checks
/// and messages.
pub(crate) fn fd_host_path(fd: BorrowedFd<'_>) -> Result<PathBuf, Errno> {
    nix::fcntl::readlink(&sys::fd_path(fd)).map(PathBuf::from)
}

/// The container path of a host path under `root`, if it is under it.
pub(crate) fn inside(root: &Path, host: &Path) -> Option<PathBuf> {
    host.strip_prefix(root)
        .ok()
        .map(|rel| Path::new("/").join(rel))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn host(fd: &OwnedFd) -> PathBuf {
        fd_host_path(fd.as_fd()).unwrap()
    }

    #[test]
    fn symlinks_stay_inside_root() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root_path = t.path().canonicalize().unwrap();
        std::fs::create_dir(root_path.join("etc")).unwrap();
        symlink(outside.path(), root_path.join("etc/evil")).unwrap();
        symlink("../../../../..", root_path.join("up")).unwrap();
        symlink("/", root_path.join("proc")).unwrap();
        std::fs::create_dir(root_path.join("x")).unwrap();
        let root = Root::open(&root_path).unwrap();

        for walk_only in [false, true] {
            let fd = if walk_only {
                root.walk(Path::new("etc/evil/sub"), Create::Dir, true)
                    .unwrap()
            } else {
                root.resolve(Path::new("/etc/evil/sub"), Create::Dir)
                    .unwrap()
            };
            let p = host(&fd);
            assert!(p.starts_with(&root_path), "{p:?}");
            assert_eq!(
                p,
                root_path
                    .join(outside.path().strip_prefix("/").unwrap())
                    .join("sub")
            );
            assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none());

            let fd = if walk_only {
                root.walk(Path::new("up/x/../.."), Create::No, true)
                    .unwrap()
            } else {
                root.resolve(Path::new("up/x/../.."), Create::No).unwrap()
            };
            assert_eq!(host(&fd), root_path);
            let fd = if walk_only {
                root.walk(Path::new("proc"), Create::Dir, true).unwrap()
            } else {
                root.resolve(Path::new("/proc"), Create::Dir).unwrap()
            };
            assert_eq!(host(&fd), root_path);
        }
        // Not following the last component.
        let fd = root.open_nofollow(Path::new("/proc")).unwrap().unwrap();
        assert_eq!(file_type(fd.as_fd()).unwrap(), SFlag::S_IFLNK);
        assert!(root.open_nofollow(Path::new("/nope")).unwrap().is_none());
    }

    #[test]
    fn creates_files_and_dirs() {
        let t = tempfile::tempdir().unwrap();
        let root_path = t.path().canonicalize().unwrap();
        symlink("/real", root_path.join("dangling")).unwrap();
        let root = Root::open(&root_path).unwrap();
        let fd = root.resolve(Path::new("/a/b/file"), Create::File).unwrap();
        assert_eq!(file_type(fd.as_fd()).unwrap(), SFlag::S_IFREG);
        assert!(root_path.join("a/b/file").is_file());
        // A dangling symlink creates its target inside the root.
        let fd = root.resolve(Path::new("/dangling/x"), Create::Dir).unwrap();
        assert_eq!(host(&fd), root_path.join("real/x"));
        // A file in the middle of a path.
        assert!(matches!(
            root.resolve(Path::new("/a/b/file/x"), Create::Dir),
            Err(Error::Resolve {
                source: Errno::ENOTDIR,
                ..
            })
        ));
        assert!(matches!(
            root.walk(Path::new("a/b/file/x"), Create::Dir, true),
            Err(Errno::ENOTDIR)
        ));
        let (parent, name) = root.resolve_parent(Path::new("/dev/null")).unwrap();
        assert_eq!(host(&parent), root_path.join("dev"));
        assert_eq!(name, "null");
    }

    #[test]
    fn symlink_loop_is_eloop() {
        let t = tempfile::tempdir().unwrap();
        let root_path = t.path().canonicalize().unwrap();
        symlink("b", root_path.join("a")).unwrap();
        symlink("a", root_path.join("b")).unwrap();
        let root = Root::open(&root_path).unwrap();
        assert!(matches!(
            root.walk(Path::new("a/x"), Create::Dir, true),
            Err(Errno::ELOOP)
        ));
        assert!(root.resolve(Path::new("a/x"), Create::Dir).is_err());
    }

    #[test]
    fn inside_maps_paths() {
        assert_eq!(
            inside(Path::new("/r"), Path::new("/r/proc/sys")),
            Some(PathBuf::from("/proc/sys"))
        );
        assert_eq!(
            inside(Path::new("/r"), Path::new("/r")),
            Some(PathBuf::from("/"))
        );
        assert_eq!(inside(Path::new("/r"), Path::new("/rx")), None);
    }
}
