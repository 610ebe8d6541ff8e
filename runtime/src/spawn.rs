//! Starting the container's processes: `clone(2)` with namespace flags and fork semantics.
//!
//! hako never re-execs itself: the init is this very process image, cloned with every namespace
//! that can be created at once, and the child continues in Rust until it `execve`s the user's
//! program. That is safe only because the caller is single-threaded (no other thread can hold a
//! lock, such as malloc's, that the child would inherit held), which [`assert_single_threaded`]
//! checks before every clone.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::sched::CloneFlags;
use nix::unistd::Pid;

use crate::error::{Error, Result};

/// Fails unless this process has exactly one thread. `/proc/self/task` has a link per thread
/// besides `.` and `..` (proc_task_getattr adds the thread count to its two): one stat(2),
/// where reading `/proc/self/stat` took four syscalls and the kernel's formatting of every
/// field.
pub(crate) fn assert_single_threaded() -> Result<()> {
    let task =
        nix::sys::stat::stat("/proc/self/task").map_err(Error::sys("stat(/proc/self/task)"))?;
    match task.st_nlink.checked_sub(2) {
        Some(1) => Ok(()),
        other => Err(Error::InvalidConfig {
            field: "runtime",
            reason: format!("clone needs a single-threaded caller, found {other:?} threads"),
        }),
    }
}

/// Flags that would break the fork semantics every clone here relies on, refused by
/// [`fork_flags`]: a shared address space (`CLONE_VM`, and `CLONE_THREAD`/`CLONE_SIGHAND`,
/// which need it; `CLONE_VFORK` suspends us while the child runs on our memory), pointers the
/// kernel would write through or install (`CLONE_SETTLS`, `CLONE_*TID`, `CLONE_PIDFD`: the
/// calls pass null for all of them), and a shared descriptor table (`CLONE_FILES`: the child's
/// drops of `OwnedFd`s would close the parent's).
const NOT_FORK: CloneFlags = CloneFlags::CLONE_VM
    .union(CloneFlags::CLONE_VFORK)
    .union(CloneFlags::CLONE_THREAD)
    .union(CloneFlags::CLONE_SIGHAND)
    .union(CloneFlags::from_bits_retain(libc::CLONE_SETTLS))
    .union(CloneFlags::from_bits_retain(libc::CLONE_PARENT_SETTID))
    .union(CloneFlags::from_bits_retain(libc::CLONE_CHILD_SETTID))
    .union(CloneFlags::from_bits_retain(libc::CLONE_CHILD_CLEARTID))
    .union(CloneFlags::CLONE_FILES)
    .union(CloneFlags::from_bits_retain(libc::CLONE_PIDFD));

/// Checks `flags` against [`NOT_FORK`]: the SAFETY arguments of [`clone`] and
/// [`clone_into_cgroup`] hold only without them.
fn fork_flags(flags: CloneFlags) -> Result<CloneFlags> {
    let bad = flags.intersection(NOT_FORK);
    if bad.is_empty() {
        Ok(flags)
    } else {
        Err(Error::CloneFlags {
            flags: bad.bits() as u64,
        })
    }
}

/// What a clone returned.
pub(crate) enum Forked {
    /// In the parent: the child's pid.
    Parent(Pid),
    /// In the child.
    Child,
}

/// `struct clone_args` of clone3(2) (include/uapi/linux/sched.h, version 2 with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// clone3(2)'s flag to start the child directly in the cgroup2 directory `cgroup` names.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Like [`clone`], but the child starts inside the cgroup2 directory `cgroup` (clone3(2) with
/// `CLONE_INTO_CGROUP`, Linux 5.7): no window in which it runs outside its limits, and one
/// `cgroup.procs` write fewer. Returns whether that happened: on kernels or hierarchies that
/// refuse it, this falls back to a plain clone and the caller moves the child itself.
fn clone_into_cgroup(flags: CloneFlags, cgroup: BorrowedFd<'_>) -> Result<(Forked, bool)> {
    let flags = fork_flags(flags)?;
    assert_single_threaded()?;
    let tid_known = musl_tid::layout_known();
    let args = CloneArgs {
        flags: flags.bits() as u32 as u64 | CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: as for `clone`: fork semantics (stack 0 means the child runs on a copy of the
    // caller's stack; `fork_flags` refused every flag that would share memory or write through
    // the zeroed pointers of `args`), a single-threaded caller, and `args` is a valid
    // clone_args of the size passed, alive for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match rc {
        0 => Ok((child_started(tid_known), true)),
        pid if pid > 0 => Ok((Forked::Parent(Pid::from_raw(pid as i32)), true)),
        _ => match nix::Error::last() {
            nix::Error::ENOSYS
            | nix::Error::E2BIG
            | nix::Error::EINVAL
            | nix::Error::EOPNOTSUPP => Ok((clone(flags)?, false)),
            // The caller may not move a process from its own cgroup to that one (cgroup v2
            // wants write access to their common ancestor's cgroup.procs, cgroup(7)
            // "Cgroups v2 delegation"): a rootless caller outside its delegated subtree, e.g.
            // under the systemd driver. Cloned outside; the caller must then add the child
            // (its join still fails closed, see `Cgroup::join`).
            nix::Error::EACCES | nix::Error::EPERM => Ok((clone(flags)?, false)),
            e => Err(Error::sys("clone3(CLONE_INTO_CGROUP)")(e)),
        },
    }
}

/// A child cloned for a cgroup, and what is left of its placement.
pub(crate) struct ForCgroup {
    pub(crate) forked: Forked,
    /// In the parent: the hierarchies it must still add the child to (`None`: nothing left).
    pub(crate) parent_adds: Option<hako_cgroups::Hierarchies>,
    /// In the child: its move into the v1 hierarchies, to make before anything else
    /// ([`hako_cgroups::SelfJoin`] says why the child moves itself). Dropped in the parent.
    pub(crate) self_join: Option<hako_cgroups::SelfJoin>,
}

/// Clones a process that belongs in `cgroup`: born in its cgroup2 directory where the kernel
/// allows it (clone3 `CLONE_INTO_CGROUP`), and, with `self_join`, given the v1 hierarchies'
/// `tasks` files to move itself with (a cgroupfs cgroup; a systemd unit's processes are
/// placed by the parent, as its manager expects).
pub(crate) fn clone_for_cgroup(
    flags: CloneFlags,
    cgroup: Option<&hako_cgroups::Cgroup>,
    self_join: bool,
) -> Result<ForCgroup> {
    use hako_cgroups::Hierarchies;
    let Some(cgroup) = cgroup else {
        return Ok(ForCgroup {
            forked: clone(flags)?,
            parent_adds: None,
            self_join: None,
        });
    };
    let mut joins = if self_join {
        Some(cgroup.self_join()?)
    } else {
        None
    };
    let unified_dir = cgroup
        .hierarchies()
        .into_iter()
        .find(|h| h.fs_type == "cgroup2")
        .and_then(|h| crate::sys::open_file(None, &h.dir, libc::O_DIRECTORY, 0).ok())
        .map(OwnedFd::from);
    let (forked, born_in_cgroup2) = match &unified_dir {
        Some(dir) => clone_into_cgroup(flags, dir.as_fd())?,
        None => (clone(flags)?, false),
    };
    // Closed in both processes: the child must not carry a host directory into the container.
    drop(unified_dir);
    let v1_left = cgroup.mode() != hako_cgroups::Mode::Unified && joins.is_none();
    let parent_adds = match (born_in_cgroup2, v1_left) {
        (true, false) => None,
        (true, true) => Some(Hierarchies::V1),
        (false, false) => Some(Hierarchies::Cgroup2),
        (false, true) => Some(Hierarchies::All),
    };
    if matches!(forked, Forked::Parent(_)) {
        joins = None;
    }
    Ok(ForCgroup {
        forked,
        parent_adds,
        self_join: joins,
    })
}

/// First thing in every child of a raw clone. musl caches the thread id in its thread
/// descriptor and only its own fork(2) refreshes it; raise(3) and abort(3) send their signal
/// with tkill(2) to that id, so after a raw clone(2) they would signal the *parent* (or, in
/// another pid namespace, whatever process has that number). The child therefore stores its
/// own id there (see [`musl_tid`]) and, for good measure, ends a panic with `_exit` rather than
/// abort(3). `tid_known` is what [`musl_tid::layout_known`] said in the parent.
fn child_started(tid_known: bool) -> Forked {
    if tid_known {
        musl_tid::refresh();
    }
    std::panic::set_hook(Box::new(|info| {
        // Not eprintln!, which panics (and so aborts) when stderr is a closed pipe.
        let _ = writeln!(std::io::stderr(), "hako: {info}");
        crate::sys::exit_now(134)
    }));
    Forked::Child
}

/// The thread id musl caches in `struct pthread` (musl 1.2 src/internal/pthread_impl.h:
/// `self`, `dtv`, `prev`, `next`, `sysinfo`, `canary`, then `int tid`), kept right across a
/// raw clone(2). The layout is checked, not assumed: [`musl_tid::layout_known`] only says yes
/// when the slot holds this thread's id as gettid(2) reports it.
#[cfg(all(target_env = "musl", target_arch = "x86_64"))]
mod musl_tid {
    const TID_OFFSET: usize = 6 * std::mem::size_of::<usize>();

    fn slot() -> *mut libc::c_int {
        // SAFETY: pthread_self(3) has no preconditions; under musl it is the address of the
        // calling thread's descriptor, which lives as long as the thread and is larger than
        // TID_OFFSET + 4 bytes (it continues with errno, detach state, ...).
        unsafe { (libc::pthread_self() as *mut u8).add(TID_OFFSET).cast() }
    }

    fn gettid() -> libc::c_int {
        // SAFETY: gettid(2) has no arguments and cannot fail.
        unsafe { libc::syscall(libc::SYS_gettid) as libc::c_int }
    }

    /// In the parent, before clone: true if the slot holds our thread id.
    pub(super) fn layout_known() -> bool {
        // SAFETY: `slot` points into this thread's live descriptor (see `slot`); an aligned
        // 4-byte read of it has no side effect.
        unsafe { slot().read() == gettid() }
    }

    /// In the child, right after clone: the slot gets the child's own id.
    pub(super) fn refresh() {
        // SAFETY: the child's copy of the descriptor is as live as the parent's was, the
        // layout was confirmed by `layout_known` in the parent, and the child is
        // single-threaded, so no other thread reads the slot concurrently.
        unsafe { slot().write(gettid()) }
    }
}

/// Other C libraries (glibc) ask the kernel for the thread id when they need it.
#[cfg(not(all(target_env = "musl", target_arch = "x86_64")))]
mod musl_tid {
    pub(super) fn layout_known() -> bool {
        false
    }
    pub(super) fn refresh() {}
}

/// clone(2) without a new stack (fork semantics) and with `flags` added to SIGCHLD.
pub(crate) fn clone(flags: CloneFlags) -> Result<Forked> {
    let flags = fork_flags(flags)?;
    assert_single_threaded()?;
    let tid_known = musl_tid::layout_known();
    let raw = flags.bits() as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: with a null stack, clone behaves as fork(2): the child gets a copy-on-write copy of
    // this single-threaded address space (checked above) and returns 0. `fork_flags` refused
    // CLONE_VM, CLONE_VFORK, CLONE_SETTLS, CLONE_*TID and CLONE_PIDFD (callers pass CLONE_NEW*
    // flags from the namespaces crate, or CLONE_PARENT, which only changes who the parent is),
    // so the null pointers for ptid, ctid and tls are never used.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone,
            raw,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    match rc {
        -1 => Err(Error::sys("clone")(nix::Error::last())),
        0 => Ok(child_started(tid_known)),
        pid => Ok(Forked::Parent(Pid::from_raw(pid as i32))),
    }
}

/// fork(2) whose child is a child of our parent, not ours (`CLONE_PARENT`): how the init forks
/// the container's pid 1 into the pid namespace it unshared (see `Namespaces::needs_pid_fork`),
/// so that `create`, and `run` waiting for it, is that pid 1's parent and can reap it. The
/// caller must not be a pid namespace's init (clone(2): EINVAL), which the child never is.
pub(crate) fn fork_sibling() -> Result<Forked> {
    clone(CloneFlags::CLONE_PARENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_that_break_fork_semantics_are_refused() {
        for bad in [
            CloneFlags::CLONE_VM,
            CloneFlags::CLONE_VFORK,
            CloneFlags::CLONE_THREAD | CloneFlags::CLONE_SIGHAND | CloneFlags::CLONE_VM,
            CloneFlags::from_bits_retain(libc::CLONE_SETTLS),
            CloneFlags::from_bits_retain(libc::CLONE_CHILD_CLEARTID),
            CloneFlags::CLONE_FILES,
            CloneFlags::from_bits_retain(libc::CLONE_PIDFD),
        ] {
            let flags = CloneFlags::CLONE_NEWNS | bad;
            match clone(flags) {
                Err(Error::CloneFlags { flags }) => assert_eq!(flags, bad.bits() as u64),
                Err(e) => panic!("{bad:?}: wrong error {e}"),
                Ok(Forked::Child) => crate::sys::exit_now(0),
                Ok(Forked::Parent(pid)) => panic!("{bad:?} was cloned as {pid}"),
            }
        }
        assert!(fork_flags(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_PARENT).is_ok());
    }
}
