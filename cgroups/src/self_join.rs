//! A freshly cloned process moving *itself* into the container's v1 hierarchies.
//!
//! A pid written to `cgroup.procs` (or to `tasks`) makes the kernel take the global
//! `cgroup_threadgroup_rwsem` for writing, and a percpu rwsem's writer waits for an RCU grace
//! period (`rcu_sync_enter`) unless another writer held it a moment before. On this project's
//! hybrid host that is one grace period per `create` and per `exec` that the machine has been
//! quiet for: 6 to 14 ms, several times everything else a `create` does. A thread that writes
//! `0` to `tasks` moves only itself, and for that case the kernel skips the global lock
//! (kernel/cgroup/cgroup.c, `cgroup_procs_write_start`: "If we migrate a single thread, we
//! don't care about threadgroup stability. If the thread is `current`, it won't exit(2) under
//! our hands [...] Therefore, we can skip the global lock."): nine hierarchies in 0.14 ms
//! against 6.1 ms. A child cloned from single-threaded hako is one thread, so moving that thread
//! moves the whole process.
//!
//! cgroup2 has no such move for a domain cgroup (`cgroup.threads` only works in threaded
//! subtrees): its directory is reached with clone3's `CLONE_INTO_CGROUP`, which takes the lock
//! only for reading, or by the parent through `cgroup.procs` where clone3 could not.
//!
//! The parent opens the files before the clone, and the child writes through them: cgroup v1
//! checks a move against the credentials of whoever *opened* the file (`__cgroup1_procs_write`
//! uses `of->file->f_cred`), so a child already in a new user namespace, or already someone
//! else, can still use them.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;

use crate::{Cgroup, Error};

/// The `tasks` files of a cgroup's v1 hierarchies, open for writing, for one child to move
/// itself with [`SelfJoin::enter`]. Empty on a unified host.
#[derive(Debug)]
#[must_use = "a child that does not enter stays in its parent's v1 cgroups"]
pub struct SelfJoin {
    files: Vec<(PathBuf, File)>,
}

impl Cgroup {
    /// Opens the `tasks` file of every v1 hierarchy, for the child about to be cloned (see the
    /// module's text). The caller must be single-threaded when it clones.
    pub fn self_join(&self) -> Result<SelfJoin, Error> {
        let files = self
            .hierarchies_ref()
            .iter()
            .filter(|h| !h.is_v2())
            .map(|h| {
                let path = h.dir.join("tasks");
                match crate::sys::open(&path, libc::O_WRONLY) {
                    Ok(f) => Ok((path, f)),
                    Err(source) => Err(Error::Write {
                        path,
                        value: "0".into(),
                        source,
                    }),
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(SelfJoin { files })
    }
}

impl SelfJoin {
    /// In the child, before it does anything the container's limits must cover: moves the
    /// calling thread, which must be the process's only one, into every v1 hierarchy. Fails
    /// at the first hierarchy that refuses (ENOSPC: an empty cpuset; EAGAIN: `pids.max`).
    pub fn enter(self) -> Result<(), Error> {
        for (path, file) in self.files {
            (&file)
                .write_all(b"0")
                .map_err(|source| Error::SelfJoin { path, source })?;
        }
        Ok(())
    }

    /// Whether there is nothing to enter (a unified host).
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}
