//! The record of the mounts a container made in a mount namespace it does not own.
//!
//! Without a mount namespace of its own (runtime-spec config-linux.md: a namespace type that is
//! not listed is inherited from the runtime, one with a `path` is joined), the container's
//! mounts are made in the caller's (or the joined) namespace, as runc 1.1.5 and crun 1.8.1 make
//! them; unlike them, hako must take them down again when the container goes. The child writes
//! each mount it made, as it makes it, to a file in the container's state directory (opened by
//! the parent before the clone, so the child needs no path in a namespace that may not have
//! it): the namespace's identity, the rootfs, then one line per mount with its mount id and
//! mount point, in mount order. `release` unmounts them from that record.
//!
//! Mounts are found by difference: the mounts under the rootfs before the first mount, then
//! after each step every one that is new, by id and mount point (ids are reused at once, so
//! a mount taken down elsewhere can give its id to the next one made here). mountinfo lists a
//! namespace's mounts in the order they were made, so the record is in mount order too. The
//! mountinfo file is opened once, before the first mount, and read again from its start after
//! each step: proc_pid_mountinfo(5) writes mount points relative to the root the process had
//! when the file was *opened* (fs/proc_namespace.c takes it at open), so the masked and
//! read-only paths made after chroot(2) (see `finish`) are still seen at their full paths,
//! and no /proc is needed inside the container's root.
//!
//! A step's mounts are written only once the step is over, and the child dies with `create`
//! (parent-death signal) at any moment, between a mount(2) and its line too. So before each
//! step the child writes an intent, `pending` with the ids of the mounts under the rootfs that
//! exist before it, and after it `done` if it mounted nothing: a record that ends on `pending`
//! was cut in that step, and `release` takes as the step's every mount under the rootfs that
//! is not in that list (nor already recorded). Without it, a kill during the first step (the
//! rootfs bound onto itself) would leave a record with no mount, and everything stacked on the
//! bind would be invisible to `delete`.
//! Mount points are written as mountinfo writes them (space, tab, newline and backslash as
//! octal escapes), so one line is one mount whatever the path holds.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::Error;

/// Where the child writes the mounts it makes outside a mount namespace of its own; created by
/// the runtime in the container's state directory before the clone.
#[derive(Clone, Debug)]
pub struct MountRecord {
    file: Arc<File>,
    path: PathBuf,
    /// Descriptors below it are the ones `--preserve-fds` passes into the container.
    min_fd: i32,
    /// The child's /proc/self/mountinfo, opened by [`Recorder::start`] (before chroot), read
    /// again by every step after it and closed by [`MountRecord::close_mountinfo`].
    mountinfo: Arc<Mutex<Option<File>>>,
}

impl MountRecord {
    /// Creates the record file at `path` (which must not exist), mode 0600, close-on-exec, on a
    /// descriptor numbered `min_fd` or above (below it are the ones `--preserve-fds` passes
    /// into the container).
    pub fn create(path: &Path, min_fd: i32) -> Result<Self, Error> {
        let io_err = |source| Error::MountRecord {
            path: path.to_path_buf(),
            source,
        };
        let opened = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(io_err)?;
        let file = crate::sys::dup_above(opened.as_fd(), min_fd)
            .map(File::from)
            .map_err(|e| io_err(e.into()))?;
        Ok(MountRecord {
            file: Arc::new(file),
            path: path.to_path_buf(),
            min_fd,
            mountinfo: Arc::new(Mutex::new(None)),
        })
    }

    /// The mounts of the namespace, read again from the mountinfo file [`Recorder::start`]
    /// opened.
    fn mounts(&self) -> Result<Vec<MountInfo>, Error> {
        let guard = self
            .mountinfo
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        read_mountinfo(guard.as_ref().ok_or(Error::MountRecordNotStarted)?)
    }

    /// Closes the mountinfo file once the last mount is made.
    pub(crate) fn close_mountinfo(&self) {
        drop(
            self.mountinfo
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
    }

    fn append(&self, text: &str) -> Result<(), Error> {
        (&*self.file)
            .write_all(text.as_bytes())
            .map_err(|source| Error::MountRecord {
                path: self.path.clone(),
                source,
            })
    }
}

/// One line of /proc/PID/mountinfo, the fields hako needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MountInfo {
    pub(crate) id: u64,
    pub(crate) parent: u64,
    pub(crate) mount_point: PathBuf,
}

/// Reads an open mountinfo file again from its start, and parses it.
pub(crate) fn read_mountinfo(mut file: &File) -> Result<Vec<MountInfo>, Error> {
    let mut text = String::new();
    file.rewind()
        .and_then(|()| file.read_to_string(&mut text))
        .map_err(|source| Error::Mountinfo { source })?;
    Ok(parse_mountinfo(&text))
}

/// Parses mountinfo (proc_pid_mountinfo(5)); lines that do not parse are skipped.
fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            let id = f.next()?.parse().ok()?;
            let parent = f.next()?.parse().ok()?;
            let mount_point = unescape(f.nth(2)?);
            Some(MountInfo {
                id,
                parent,
                mount_point,
            })
        })
        .collect()
}

/// Undoes mountinfo's octal escapes (`\040` for a space...).
fn unescape(s: &str) -> PathBuf {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                let v = d.iter().fold(0u32, |v, c| v * 8 + u32::from(c - b'0'));
                out.push(v as u8);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(out))
}

/// Escapes a path as mountinfo does, so that it is one space-free field.
fn escape(p: &Path) -> String {
    let mut out = String::new();
    for &c in p.as_os_str().as_bytes() {
        match c {
            b' ' | b'\t' | b'\n' | b'\\' => out.push_str(&format!("\\{c:03o}")),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(char::from(c)),
            c => out.push_str(&format!("\\{c:03o}")),
        }
    }
    out
}

/// True if `p` is `root` or lies under it (component-wise: `/a/bc` is not under `/a/b`; a `..`
/// is never under anything).
pub(crate) fn under(root: &Path, p: &Path) -> bool {
    p.starts_with(root) && !p.components().any(|c| c == std::path::Component::ParentDir)
}

/// A mount namespace's identity: the device and inode of its nsfs file (an inode is reused
/// once the namespace is freed) and, where the kernel has `NS_GET_MNTNS_ID`, its 64-bit id,
/// which is never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NsId {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) unique: Option<u64>,
}

impl NsId {
    /// The identity of the namespace file at `path`.
    pub(crate) fn of(path: &Path) -> Result<NsId, Error> {
        let fd =
            crate::sys::open(path, nix::fcntl::OFlag::O_RDONLY).map_err(|source| Error::Open {
                path: path.to_path_buf(),
                source,
            })?;
        Self::of_fd(fd.as_fd(), path)
    }

    /// The identity of an open namespace fd.
    pub(crate) fn of_fd(fd: std::os::fd::BorrowedFd<'_>, path: &Path) -> Result<NsId, Error> {
        let st = nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(&fd)).map_err(|source| {
            Error::Stat {
                path: path.to_path_buf(),
                source,
            }
        })?;
        Ok(NsId {
            dev: st.st_dev,
            ino: st.st_ino,
            unique: crate::sys::mntns_id(fd).ok(),
        })
    }

    /// Same namespace: same inode, and the same unique id where both are known.
    pub(crate) fn same(&self, other: &NsId) -> bool {
        (self.dev, self.ino) == (other.dev, other.ino)
            && match (self.unique, other.unique) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

/// The calling process's mount namespace.
pub(crate) fn own_mount_ns() -> Result<NsId, Error> {
    NsId::of(Path::new("/proc/self/ns/mnt"))
}

/// The child's side: writes the header, then each new mount under the rootfs.
pub(crate) struct Recorder<'a> {
    record: &'a MountRecord,
    root: &'a Path,
    /// The mounts under the rootfs already seen, by id *and* mount point: mount ids are
    /// reused at once (an IDA), so a mount another process took down elsewhere can give its
    /// id to the next one made here, which the id alone would take for an old one.
    seen: HashSet<(u64, PathBuf)>,
    /// The ids in `seen`, in mountinfo order.
    seen_under: Vec<u64>,
    /// A `pending` line was written and no line has followed it yet.
    pending: bool,
}

impl<'a> Recorder<'a> {
    /// Opens the calling process's mountinfo, notes the mounts that exist before the
    /// container's and writes the header. Called once, before the first mount and before
    /// chroot.
    pub(crate) fn start(
        record: &'a MountRecord,
        root: &'a Path,
        joined: Option<&Path>,
    ) -> Result<Self, Error> {
        let ns = own_mount_ns()?;
        let opened =
            File::open("/proc/self/mountinfo").map_err(|source| Error::Mountinfo { source })?;
        let file = crate::sys::dup_above(opened.as_fd(), record.min_fd)
            .map(File::from)
            .map_err(|e| Error::Mountinfo { source: e.into() })?;
        drop(opened);
        let mut slot = record
            .mountinfo
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if slot.is_some() {
            // A second header would make the record invalid: nothing of it would be unmounted.
            return Err(Error::MountRecordStarted);
        }
        *slot = Some(file);
        drop(slot);
        let recorder = Self::resume(record, root)?;
        let unique = ns.unique.map_or("-".to_string(), |u| u.to_string());
        let path = joined.map_or(String::new(), |p| format!("path {}\n", escape(p)));
        record.append(&format!(
            "ns {} {} {unique}\n{path}root {}\n",
            ns.dev,
            ns.ino,
            escape(root)
        ))?;
        Ok(recorder)
    }

    /// Goes on recording after [`Recorder::start`] (once the root is entered): the mounts that
    /// exist now, the container's recorded ones and whatever a hook made, are not the next
    /// step's.
    pub(crate) fn resume(record: &'a MountRecord, root: &'a Path) -> Result<Self, Error> {
        let mounts = record.mounts()?;
        let seen_under = mounts
            .iter()
            .filter(|m| under(root, &m.mount_point))
            .map(|m| m.id)
            .collect();
        let seen = mounts
            .into_iter()
            .filter(|m| under(root, &m.mount_point))
            .map(|m| (m.id, m.mount_point))
            .collect();
        Ok(Recorder {
            record,
            root,
            seen,
            seen_under,
            pending: false,
        })
    }

    /// Appends every mount made since the last call that lies under the rootfs.
    pub(crate) fn update(&mut self) -> Result<(), Error> {
        let mut lines = String::new();
        for m in self.record.mounts()? {
            if under(self.root, &m.mount_point) && self.seen.insert((m.id, m.mount_point.clone())) {
                self.seen_under.push(m.id);
                lines.push_str(&format!("mount {} {}\n", m.id, escape(&m.mount_point)));
            }
        }
        if lines.is_empty() {
            if !self.pending {
                return Ok(());
            }
            lines.push_str("done\n");
        }
        self.record.append(&lines)?;
        self.pending = false;
        Ok(())
    }

    /// Runs one mounting step and records what it mounted, also when it failed midway; the
    /// intent first, so that a kill in the step leaves a record that says so.
    pub(crate) fn track(&mut self, step: impl FnOnce() -> Result<(), Error>) -> Result<(), Error> {
        self.record.append(&pending_line(&self.seen_under))?;
        self.pending = true;
        let done = step();
        let recorded = self.update();
        done.and(recorded)
    }
}

/// `pending ID,ID,...` (`pending -` for none): the mounts under the rootfs before a step.
fn pending_line(before: &[u64]) -> String {
    let ids: Vec<String> = before.iter().map(u64::to_string).collect();
    match ids.is_empty() {
        true => "pending -\n".to_string(),
        false => format!("pending {}\n", ids.join(",")),
    }
}

/// A record read back.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Recorded {
    /// The mount namespace the mounts were made in.
    pub(crate) ns: NsId,
    /// The namespace's `path` in the config, when it was joined.
    pub(crate) ns_path: Option<PathBuf>,
    /// The rootfs every mount lies under.
    pub(crate) root: PathBuf,
    /// (mount id, mount point), in mount order.
    pub(crate) mounts: Vec<(u64, PathBuf)>,
    /// The record ends in a step cut short: the ids of the mounts under the rootfs before it
    /// (every other one under the rootfs that is not in `mounts` is that step's).
    pub(crate) pending: Option<Vec<u64>>,
}

/// Parses a record; a line that does not parse, or a mount outside the rootfs, is an error (a
/// record hako did not write is not acted on).
pub(crate) fn parse_record(text: &str, path: &Path) -> Result<Option<Recorded>, Error> {
    let invalid = |line: usize| Error::MountRecordInvalid {
        path: path.to_path_buf(),
        line,
    };
    let mut ns = None;
    let mut ns_path = None;
    let mut root: Option<PathBuf> = None;
    let mut mounts = Vec::new();
    let mut pending = None;
    for (i, l) in text.lines().enumerate() {
        let f: Vec<&str> = l.split(' ').collect();
        match (f.as_slice(), &root) {
            (["ns", dev, ino, unique], None) if ns.is_none() => {
                let num = |v: &str| v.parse::<u64>().map_err(|_| invalid(i + 1));
                ns = Some(NsId {
                    dev: num(dev)?,
                    ino: num(ino)?,
                    unique: match *unique {
                        "-" => None,
                        u => Some(num(u)?),
                    },
                });
            }
            (["path", p], None) if ns.is_some() && ns_path.is_none() => {
                let p = unescape(p);
                if !p.is_absolute() {
                    return Err(invalid(i + 1));
                }
                ns_path = Some(p);
            }
            (["root", p], None) if ns.is_some() => {
                let p = unescape(p);
                if !p.is_absolute() {
                    return Err(invalid(i + 1));
                }
                root = Some(p);
            }
            (["mount", id, p], Some(r)) => {
                let p = unescape(p);
                if !under(r, &p) {
                    return Err(invalid(i + 1));
                }
                mounts.push((id.parse().map_err(|_| invalid(i + 1))?, p));
                pending = None;
            }
            (["pending", ids], Some(_)) => {
                let ids = match *ids {
                    "-" => Vec::new(),
                    ids => ids
                        .split(',')
                        .map(|v| v.parse::<u64>().map_err(|_| invalid(i + 1)))
                        .collect::<Result<_, _>>()?,
                };
                pending = Some(ids);
            }
            (["done"], Some(_)) => pending = None,
            _ => return Err(invalid(i + 1)),
        }
    }
    // An empty record: the child never got to its first mount.
    Ok(match (ns, root) {
        (Some(ns), Some(root)) => Some(Recorded {
            ns,
            ns_path,
            root,
            mounts,
            pending,
        }),
        (None, None) => None,
        _ => return Err(invalid(text.lines().count())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_round_trip() {
        for p in ["/a b/c\td", "/x\\y", "/new\nline", "/plain/path", "/ü"] {
            let e = escape(Path::new(p));
            assert!(!e.contains([' ', '\t', '\n']), "{e}");
            assert_eq!(unescape(&e), Path::new(p));
        }
        assert_eq!(unescape("/a\\040b"), Path::new("/a b"));
        // A backslash not followed by three octal digits stays.
        assert_eq!(unescape("/a\\9x"), Path::new("/a\\9x"));
    }

    #[test]
    fn mountinfo_lines() {
        let text = "36 35 98:0 /mnt1 /mnt\\0401 rw,noatime master:1 - ext3 /dev/root rw\n\
                    bad line\n\
                    37 36 0:5 / /mnt\\0401/proc rw - proc proc rw\n";
        assert_eq!(
            parse_mountinfo(text),
            vec![
                MountInfo {
                    id: 36,
                    parent: 35,
                    mount_point: "/mnt 1".into()
                },
                MountInfo {
                    id: 37,
                    parent: 36,
                    mount_point: "/mnt 1/proc".into()
                },
            ]
        );
    }

    #[test]
    fn a_reused_inode_is_another_namespace_where_the_unique_id_says_so() {
        let ns = |ino, unique| NsId {
            dev: 4,
            ino,
            unique,
        };
        assert!(ns(5, Some(1)).same(&ns(5, Some(1))));
        assert!(!ns(5, Some(1)).same(&ns(5, Some(2))));
        assert!(!ns(5, Some(1)).same(&ns(6, Some(1))));
        // A kernel without NS_GET_MNTNS_ID: the inode alone.
        assert!(ns(5, None).same(&ns(5, Some(2))));
    }

    #[test]
    fn under_is_component_wise() {
        let root = Path::new("/b/rootfs");
        assert!(under(root, Path::new("/b/rootfs")));
        assert!(under(root, Path::new("/b/rootfs/dev/pts")));
        assert!(!under(root, Path::new("/b/rootfs2")));
        assert!(!under(root, Path::new("/b")));
        assert!(!under(root, Path::new("/b/rootfs/../etc")));
    }

    #[test]
    fn records_parse_and_refuse_what_hako_did_not_write() {
        let p = Path::new("/state/mounts");
        let ok = "ns 4 4026531841 7\nroot /b/root\\040fs\nmount 80 /b/root\\040fs/proc\n\
                  mount 81 /b/root\\040fs/dev\n";
        assert_eq!(
            parse_record(ok, p).unwrap(),
            Some(Recorded {
                ns: NsId {
                    dev: 4,
                    ino: 4026531841,
                    unique: Some(7)
                },
                ns_path: None,
                root: "/b/root fs".into(),
                mounts: vec![
                    (80, "/b/root fs/proc".into()),
                    (81, "/b/root fs/dev".into())
                ],
                pending: None,
            })
        );
        let cut = |text: &str| parse_record(text, p).unwrap().unwrap().pending;
        let head = "ns 4 5 -\nroot /r\n";
        assert_eq!(cut(&format!("{head}pending -\n")), Some(vec![]));
        assert_eq!(
            cut(&format!("{head}pending -\nmount 9 /r\npending 9\n")),
            Some(vec![9])
        );
        assert_eq!(
            cut(&format!(
                "{head}pending -\nmount 9 /r\npending 9\nmount 10 /r/a\n"
            )),
            None
        );
        assert_eq!(cut(&format!("{head}pending 9,10\ndone\n")), None);
        let joined = parse_record("ns 4 5 -\npath /run/ns\\040x\nroot /r\n", p).unwrap();
        assert_eq!(joined.unwrap().ns_path, Some("/run/ns x".into()));
        assert_eq!(parse_record("", p).unwrap(), None);
        for (bad, line) in [
            ("ns 4 5 -\nroot /r\nmount 9 /etc\n", 3),
            ("ns 4 5 -\nroot /r\nmount 9 /r/../etc\n", 3),
            ("ns 4 5 -\nroot /r\nmount 9 /r/a x\n", 3),
            ("root /r\n", 1),
            ("ns 4 5 -\nroot r\n", 2),
            ("ns 4 5 -\n", 1),
            ("ns 4 5 -\nroot /r\nmount x /r/a\n", 3),
            ("ns 4 5\nroot /r\n", 1),
            ("ns 4 5 -\npending -\n", 2),
            ("ns 4 5 -\npath x\nroot /r\n", 2),
            ("ns 4 5 -\npath /x\npath /y\nroot /r\n", 3),
            ("ns 4 5 -\nroot /r\npath /x\n", 3),
            ("ns 4 5 -\nroot /r\npending 1,x\n", 3),
            ("ns 4 5 -\nroot /r\npending\n", 3),
        ] {
            match parse_record(bad, p) {
                Err(Error::MountRecordInvalid { line: l, .. }) => assert_eq!(l, line, "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
