//! The raw system calls of the runtime crate that neither `std` nor `nix` wraps, each behind a
//! safe function with its `// SAFETY:` argument, so that the rest of the crate stays free of
//! `unsafe`. Not yet moved here: the clone wrappers
//! (`spawn.rs`, whose safety rests on their callers' single thread) and the modules other
//! branches own (sync socket, fifo, hooks, pidfd, LSM, terminal).
//!
//! Every function here is async-signal-safe and allocates nothing: they run between clone(2)
//! and execve(2) in the container's init.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `nix::Result` of a call that returns 0 or -1 with errno.
fn check(rc: libc::c_long) -> nix::Result<libc::c_long> {
    if rc < 0 {
        Err(nix::Error::last())
    } else {
        Ok(rc)
    }
}

/// Ends the process at once: no atexit handlers, no destructors of the parent's copy of the
/// address space (what every cloned child must use instead of `exit`).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit(2) takes an int and does not return; it runs no user-space code.
    unsafe { libc::_exit(code) }
}

/// Restores SIGPIPE's default disposition (Rust sets SIG_IGN, which execve(2) would pass on).
pub(crate) fn default_sigpipe() -> nix::Result<()> {
    // SAFETY: restoring the default disposition installs no handler code.
    unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )
    }
    .map(drop)
}

/// prctl(2) `PR_CAPBSET_DROP` of one capability (bounding set of the calling thread).
pub(crate) fn capbset_drop(cap: u8) -> nix::Result<()> {
    // SAFETY: PR_CAPBSET_DROP takes a capability number; it changes only this thread's set.
    let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
    check(rc.into()).map(drop)
}

/// prctl(2) `PR_CAP_AMBIENT_CLEAR_ALL`: one call instead of one `LOWER` per capability.
pub(crate) fn ambient_clear_all() -> nix::Result<()> {
    // SAFETY: integer arguments only; changes only this thread's ambient set.
    let rc = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    check(rc.into()).map(drop)
}

/// prctl(2) `PR_CAP_AMBIENT_RAISE` of one capability.
pub(crate) fn ambient_raise(cap: u8) -> nix::Result<()> {
    // SAFETY: integer arguments only; changes only this thread's ambient set.
    let rc = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
            libc::c_ulong::from(cap),
            0,
            0,
        )
    };
    check(rc.into()).map(drop)
}

/// capset(2) of the calling thread with the three sets at once (version 3: two 32-bit words
/// per set).
pub(crate) fn capset(effective: u64, permitted: u64, inheritable: u64) -> nix::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let word = |v: u64, i: u32| (v >> (32 * i)) as u32;
    let data = [0, 1].map(|i| Data {
        effective: word(effective, i),
        permitted: word(permitted, i),
        inheritable: word(inheritable, i),
    });
    // SAFETY: capset reads one header and two data structs (version 3 layout), all valid for
    // the duration of the call; the kernel may write the header's version, which is ours.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_ptr()) };
    check(rc).map(drop)
}

/// faccessat2(2) of `path` for execute permission with `AT_EACCESS`: the check execve(2)
/// makes, with the effective uid and the effective capability set (Linux 5.8). The raw
/// syscall: libc wrappers emulate the flag or drop it when the ids match (musl's faccessat).
pub(crate) fn eaccess_exec(path: &CStr) -> nix::Result<()> {
    // SAFETY: `path` is NUL-terminated and outlives the call; the kernel only reads it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_faccessat2,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::X_OK,
            libc::AT_EACCESS,
        )
    };
    check(rc).map(drop)
}

/// setrlimit(2) resource type: an enum in glibc's headers, an int in musl's.
#[cfg(target_env = "gnu")]
pub(crate) type RlimitResource = libc::__rlimit_resource_t;
/// setrlimit(2) resource type: an enum in glibc's headers, an int in musl's.
#[cfg(not(target_env = "gnu"))]
pub(crate) type RlimitResource = libc::c_int;

/// setrlimit(2).
pub(crate) fn setrlimit(resource: RlimitResource, soft: u64, hard: u64) -> nix::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads one valid rlimit struct.
    let rc = unsafe { libc::setrlimit(resource, &lim) };
    check(rc.into()).map(drop)
}

/// sched_setattr(2) of the calling thread; `attr` must be a `struct sched_attr` whose first
/// field is its own size.
pub(crate) fn sched_setattr<T>(attr: &T) -> nix::Result<()> {
    // SAFETY: the kernel reads at most the size the struct declares, which the caller (the
    // `SchedAttr` type, whose size field is `size_of::<SchedAttr>()`) keeps within `attr`.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, attr as *const T, 0) };
    check(rc).map(drop)
}

/// ioprio_set(2) `IOPRIO_WHO_PROCESS` of the calling process.
pub(crate) fn ioprio_set(value: i32) -> nix::Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_int = 1;
    // SAFETY: ioprio_set takes three integers.
    let rc = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, value) };
    check(rc).map(drop)
}

/// personality(2).
pub(crate) fn personality(persona: libc::c_ulong) -> nix::Result<()> {
    // SAFETY: personality takes one integer and changes only this process's execution domain.
    let rc = unsafe { libc::personality(persona) };
    check(rc.into()).map(drop)
}

/// keyctl(2) `KEYCTL_JOIN_SESSION_KEYRING`.
pub(crate) fn join_session_keyring(name: &CStr) -> nix::Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_int = 1;
    // SAFETY: the name is a valid NUL-terminated string that outlives the call.
    let rc = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    check(rc).map(drop)
}

/// memfd_create(2).
pub(crate) fn memfd_create(name: &CStr, flags: libc::c_uint) -> nix::Result<OwnedFd> {
    // SAFETY: memfd_create takes a NUL-terminated name and flags; returns a new fd.
    let raw = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    check(raw.into())?;
    // SAFETY: a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// fcntl(2) `F_ADD_SEALS`.
pub(crate) fn add_seals(fd: BorrowedFd<'_>, seals: libc::c_int) -> nix::Result<()> {
    // SAFETY: F_ADD_SEALS on a descriptor we borrow takes an int.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) };
    check(rc.into()).map(drop)
}

/// execveat(2) of `fd` itself (`AT_EMPTY_PATH`); returns only on failure.
///
/// `argv` and `envp` must be NULL-terminated arrays of pointers to NUL-terminated strings
/// that outlive the call: the callers build them from `CString`s they hold.
pub(crate) fn execveat_fd(
    fd: BorrowedFd<'_>,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
) -> nix::Error {
    if argv.last().is_some_and(|p| !p.is_null()) || envp.last().is_some_and(|p| !p.is_null()) {
        return nix::Error::EINVAL;
    }
    // SAFETY: both arrays end in NULL (checked above) and, by the contract above, point at
    // NUL-terminated strings that outlive the call; AT_EMPTY_PATH with "" executes `fd`.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
    }
    nix::Error::last()
}

/// close_range(2) with `CLOSE_RANGE_CLOEXEC` from `first` upward (Linux 5.11).
pub(crate) fn cloexec_range(first: u32) -> nix::Result<()> {
    // SAFETY: CLOSE_RANGE_CLOEXEC only sets a flag on descriptors; it closes none, so no
    // OwnedFd in this process is invalidated.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    check(rc).map(drop)
}

/// fcntl(2) `F_DUPFD_CLOEXEC`: a close-on-exec duplicate of `fd` numbered `min` or higher.
pub(crate) fn dup_cloexec_above(fd: BorrowedFd<'_>, min: libc::c_int) -> nix::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on a descriptor we borrow takes an int and returns a new one.
    let raw = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) };
    check(raw.into())?;
    // SAFETY: a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Flags and structures of the new mount API (include/uapi/linux/mount.h).
mod mount_api {
    pub(super) const FSOPEN_CLOEXEC: libc::c_uint = 0x1;
    pub(super) const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    pub(super) const FSMOUNT_CLOEXEC: libc::c_uint = 0x1;
    pub(super) const MOUNT_ATTR_RDONLY: u64 = 0x1;

    /// `struct mount_attr`, version 0 (32 bytes).
    #[repr(C)]
    pub(super) struct MountAttr {
        pub(super) attr_set: u64,
        pub(super) attr_clr: u64,
        pub(super) propagation: u64,
        pub(super) userns_fd: u64,
    }
}

/// `MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV`, for [`fsmount`].
pub(crate) const MOUNT_ATTR_NOSUID_NODEV: libc::c_uint = 0x2 | 0x4;

/// fsopen(2) of filesystem type `fstype`, close-on-exec (Linux 5.2).
pub(crate) fn fsopen(fstype: &CStr) -> nix::Result<OwnedFd> {
    // SAFETY: a NUL-terminated name and flags; returns a new fd.
    let raw =
        unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), mount_api::FSOPEN_CLOEXEC) };
    let raw = check(raw)? as libc::c_int;
    // SAFETY: a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// fsconfig(2) `FSCONFIG_CMD_CREATE`: makes the superblock of an fsopen(2) context.
pub(crate) fn fsconfig_create(fs: BorrowedFd<'_>) -> nix::Result<()> {
    // SAFETY: integer arguments and two null pointers, which CMD_CREATE requires.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            mount_api::FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    check(rc).map(drop)
}

/// fsmount(2): a detached mount of the created context, close-on-exec, with `attrs`
/// (`MOUNT_ATTR_*`).
pub(crate) fn fsmount(fs: BorrowedFd<'_>, attrs: libc::c_uint) -> nix::Result<OwnedFd> {
    // SAFETY: integer arguments only; returns a new fd.
    let raw = unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            mount_api::FSMOUNT_CLOEXEC,
            attrs,
        )
    };
    let raw = check(raw)? as libc::c_int;
    // SAFETY: a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// mount_setattr(2) `MOUNT_ATTR_RDONLY` on the mount `mnt` refers to (Linux 5.12).
pub(crate) fn mount_set_read_only(mnt: BorrowedFd<'_>) -> nix::Result<()> {
    let attr = mount_api::MountAttr {
        attr_set: mount_api::MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `attr` is a valid version-0 mount_attr of the size passed, borrowed for the
    // call; "" with AT_EMPTY_PATH names `mnt` itself.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const mount_api::MountAttr,
            std::mem::size_of::<mount_api::MountAttr>(),
        )
    };
    check(rc).map(drop)
}

/// openat(2) of `path` for reading, relative to `dir` (the working directory without one). Not
/// `File::open`: musl's open(3) follows an `O_CLOEXEC` open with a redundant fcntl(2) (for
/// kernels before 2.6.23), one system call more per file for `list`, which opens two per
/// container.
pub(crate) fn open_read(
    dir: Option<BorrowedFd<'_>>,
    path: &std::path::Path,
) -> std::io::Result<std::fs::File> {
    open_file(dir, path, libc::O_RDONLY, 0)
}

/// [`open_read`] with `flags` (`O_CLOEXEC` added) and, with `O_CREAT`, `mode`.
pub(crate) fn open_file(
    dir: Option<BorrowedFd<'_>>,
    path: &std::path::Path,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> std::io::Result<std::fs::File> {
    use std::os::unix::ffi::OsStrExt;
    let name = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let dir = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: a NUL-terminated path that outlives the call, integer flags and mode; returns a
    // new fd or -1.
    let raw = unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_CLOEXEC, mode) };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new descriptor that nothing else owns.
    Ok(std::fs::File::from(unsafe { OwnedFd::from_raw_fd(raw) }))
}

/// openat(2) of `name` in the directory `dir`; the new descriptor is owned.
pub(crate) fn openat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> nix::Result<OwnedFd> {
    // SAFETY: a NUL-terminated name, integer flags and mode; returns a new fd.
    let raw = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags, mode) };
    check(raw.into())?;
    // SAFETY: a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// seccomp(2) `SECCOMP_SET_MODE_FILTER` of `filter` with `flags`. Returns what the kernel
/// returned: 0, the tid of a thread `SECCOMP_FILTER_FLAG_TSYNC` could not synchronise, or,
/// with `SECCOMP_FILTER_FLAG_NEW_LISTENER`, the listener, which the caller then owns through
/// [`seccomp_listener`].
pub(crate) fn seccomp_set_mode_filter(
    flags: libc::c_ulong,
    filter: &[libc::sock_filter],
) -> nix::Result<libc::c_long> {
    let len = u16::try_from(filter.len()).map_err(|_| nix::Error::EINVAL)?;
    let prog = libc::sock_fprog {
        len,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points at `len` initialised `sock_filter`s borrowed for the whole call; the
    // kernel copies the program before returning and never writes through the pointer. The
    // other arguments are plain integers.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const libc::sock_fprog,
        )
    };
    check(ret)
}

/// Owns the listener a successful [`seccomp_set_mode_filter`] with
/// `SECCOMP_FILTER_FLAG_NEW_LISTENER` returned.
pub(crate) fn seccomp_listener(ret: libc::c_long) -> nix::Result<OwnedFd> {
    let raw = libc::c_int::try_from(ret).map_err(|_| nix::Error::EBADF)?;
    if raw < 0 {
        return Err(nix::Error::EBADF);
    }
    // SAFETY: with SECCOMP_FILTER_FLAG_NEW_LISTENER a successful seccomp(2) returns a new
    // descriptor that nothing else in this process knows of; ownership passes to the OwnedFd.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// set_mempolicy(2) of the calling thread: `mode` is an `MPOL_*` mode or'ed with `MPOL_F_*`
/// flags, `nodes` a node bit mask (bit `n` of word `n / 64` is node `n`).
pub(crate) fn set_mempolicy(mode: libc::c_int, nodes: &[u64]) -> nix::Result<()> {
    // The kernel reads `maxnode - 1` bits (mm/mempolicy.c get_nodes: "--maxnode"), hence + 1.
    let maxnode = (nodes.len() * 64 + 1) as libc::c_ulong;
    // SAFETY: `nodes` is a live slice of `nodes.len()` u64 words, which is at least the
    // `maxnode - 1` bits the kernel copies from it; the call only reads it and changes this
    // thread's memory policy.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_set_mempolicy,
            libc::c_long::from(mode),
            nodes.as_ptr(),
            maxnode,
        )
    };
    check(rc).map(drop)
}

/// if_nametoindex(3) in the current network namespace; ENODEV for no such interface. The
/// exception to this module's rule: it allocates (and the C library opens a socket), so only
/// the parent calls it (`netdev.rs`), never the child between clone and exec.
pub(crate) fn if_nametoindex(name: &str) -> nix::Result<u32> {
    let name = std::ffi::CString::new(name).map_err(|_| nix::Error::EINVAL)?;
    // SAFETY: `name` is a NUL-terminated string that outlives the call, which only reads it.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        Err(nix::Error::last())
    } else {
        Ok(index)
    }
}

/// poll(2) on `fds` until one of them is ready or `deadline` has passed (`None`: no deadline),
/// restarted on `EINTR` with the time left; whether any became ready (their `revents` say
/// which). The one deadline loop of the crate: every bounded wait on the child, a hook or the
/// exec fifo goes through it.
pub(crate) fn poll_until(
    fds: &mut [nix::poll::PollFd<'_>],
    deadline: Option<std::time::Instant>,
) -> nix::Result<bool> {
    use nix::poll::{poll, PollTimeout};
    loop {
        let timeout = match deadline {
            None => PollTimeout::NONE,
            Some(d) => {
                let left = d.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    return Ok(false);
                }
                // Rounded up: a wake-up just before the deadline must not spin.
                let ms = left.as_micros().div_ceil(1000);
                PollTimeout::from(u16::try_from(ms).unwrap_or(u16::MAX))
            }
        };
        match poll(fds, timeout) {
            Err(nix::Error::EINTR) | Ok(0) => continue,
            Err(e) => return Err(e),
            Ok(_) => return Ok(true),
        }
    }
}

/// [`poll_until`] on one descriptor.
pub(crate) fn poll_one_until(
    fd: BorrowedFd<'_>,
    events: nix::poll::PollFlags,
    deadline: std::time::Instant,
) -> nix::Result<bool> {
    poll_until(&mut [nix::poll::PollFd::new(fd, events)], Some(deadline))
}

/// fstatfs(2) of `fd`: its file system's magic number. Raw calls rather than nix's (here and
/// in [`ino`]): these run in every command that looks at a container, and small inlined calls
/// keep them from faulting in another stretch of program text (peak RSS).
pub(crate) fn fs_magic(fd: BorrowedFd<'_>) -> nix::Result<i64> {
    // SAFETY: an all-zero statfs is a valid value of this plain C struct, which the kernel
    // fills in; `fd` is a valid descriptor for the duration of the call.
    unsafe {
        let mut fs: libc::statfs = std::mem::zeroed();
        check(libc::fstatfs(fd.as_raw_fd(), &mut fs).into())?;
        Ok(fs.f_type as i64)
    }
}

/// fstat(2) of `fd`: its inode number.
pub(crate) fn ino(fd: BorrowedFd<'_>) -> nix::Result<u64> {
    // SAFETY: an all-zero stat is a valid value of this plain C struct, which the kernel fills
    // in; `fd` is a valid descriptor for the duration of the call.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        check(libc::fstat(fd.as_raw_fd(), &mut st).into())?;
        Ok(st.st_ino as u64)
    }
}

/// Whether `fd` polls readable right now (poll(2) with a zero timeout).
pub(crate) fn readable_now(fd: BorrowedFd<'_>) -> nix::Result<bool> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, a count of 1 and a zero timeout.
    let n = check(unsafe { libc::poll(&mut p, 1, 0) }.into())?;
    Ok(n > 0 && p.revents & libc::POLLIN != 0)
}

/// pidfd_open(2) (Linux 5.3): a descriptor that refers to the process `pid` itself.
pub(crate) fn pidfd_open(pid: libc::pid_t) -> nix::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let raw = check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: the call succeeded, so `raw` is a new descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(raw as libc::c_int) })
}
