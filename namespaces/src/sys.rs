//! Thin wrappers over the few syscalls nix does not expose with owned file
//! descriptors. All of the crate's `unsafe` lives here.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

/// Wraps a freshly returned descriptor.
fn own(fd: RawFd) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful open-like syscall in this
    // process, so it is a valid descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// `openat2(2)`; returns `ENOSYS` on kernels older than 5.6.
pub(crate) fn openat2(
    dir: BorrowedFd<'_>,
    path: &Path,
    flags: OFlag,
    mode: Mode,
    resolve: ResolveFlag,
) -> Result<OwnedFd, Errno> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .mode(mode)
        .resolve(resolve);
    nix::fcntl::openat2(dir.as_raw_fd(), path, how).map(own)
}

/// `openat(2)` relative to `dir`, or to the cwd when `dir` is `None`.
pub(crate) fn openat(
    dir: Option<BorrowedFd<'_>>,
    path: &Path,
    flags: OFlag,
    mode: Mode,
) -> Result<OwnedFd, Errno> {
    nix::fcntl::openat(
        dir.map(|d| d.as_raw_fd()),
        path,
        flags | OFlag::O_CLOEXEC,
        mode,
    )
    .map(own)
}

/// Opens a host path (following symlinks: host paths are trusted).
pub(crate) fn open(path: &Path, flags: OFlag) -> Result<OwnedFd, Errno> {
    openat(None, path, flags, Mode::empty())
}

/// The magic-link path of a descriptor, for mount(2) and friends, so the
/// kernel operates on exactly the object we resolved.
pub(crate) fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// `ioctl(fd, NS_GET_NSTYPE)`: the `CLONE_NEW*` constant of a namespace fd.
pub(crate) fn ns_get_type(fd: BorrowedFd<'_>) -> Result<i32, Errno> {
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the descriptor,
    // which is valid for the duration of the borrow.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::NS_GET_NSTYPE) };
    Errno::result(ret)
}

/// `mount_setattr(2)` on `fd` itself (AT_EMPTY_PATH), optionally recursive.
pub(crate) fn mount_setattr(
    fd: BorrowedFd<'_>,
    recursive: bool,
    set: u64,
    clear: u64,
    propagation: u64,
) -> Result<(), Errno> {
    let attr = libc::mount_attr {
        attr_set: set,
        attr_clr: clear,
        propagation,
        userns_fd: 0,
    };
    mount_setattr_raw(fd, recursive, &attr)
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH, {attr_set: MOUNT_ATTR_IDMAP, userns_fd})`:
/// id-maps the detached mount `fd` (and its submounts when `recursive`)
/// with the mappings of the user namespace `userns`.
pub(crate) fn mount_setattr_idmap(
    fd: BorrowedFd<'_>,
    recursive: bool,
    userns: BorrowedFd<'_>,
) -> Result<(), Errno> {
    let userns_fd = u64::try_from(userns.as_raw_fd()).map_err(|_| Errno::EBADF)?;
    let attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd,
    };
    mount_setattr_raw(fd, recursive, &attr)
}

/// The one place that calls mount_setattr(2).
fn mount_setattr_raw(
    fd: BorrowedFd<'_>,
    recursive: bool,
    attr: &libc::mount_attr,
) -> Result<(), Errno> {
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    let empty = c"";
    // SAFETY: `empty` is a valid NUL-terminated string, `attr` is a fully initialised
    // mount_attr that outlives the call and its size is passed exactly; the kernel only reads
    // from both. The descriptors involved are valid for the duration of their borrows.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            empty.as_ptr(),
            flags,
            attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    Errno::result(ret).map(drop)
}

/// `open_tree(src, "", AT_EMPTY_PATH | OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC
/// [| AT_RECURSIVE])`: a detached copy of the mount (tree) at `src`.
pub(crate) fn open_tree_clone(src: BorrowedFd<'_>, recursive: bool) -> Result<OwnedFd, Errno> {
    let mut flags =
        libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC | libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    let empty = c"";
    // SAFETY: `empty` is a valid NUL-terminated string and `src` a valid
    // descriptor for the duration of the borrow; the kernel reads both and
    // returns a new descriptor or -1.
    let ret = unsafe { libc::syscall(libc::SYS_open_tree, src.as_raw_fd(), empty.as_ptr(), flags) };
    let fd = Errno::result(ret)?;
    let fd = RawFd::try_from(fd).map_err(|_| Errno::EBADF)?;
    Ok(own(fd))
}

/// `move_mount(from, "", to, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH)`:
/// attaches the detached mount `from` on the object `to` refers to.
pub(crate) fn move_mount(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> Result<(), Errno> {
    let empty = c"";
    let flags = libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH;
    // SAFETY: `empty` is a valid NUL-terminated string used for both paths;
    // both descriptors are valid for the duration of their borrows.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            empty.as_ptr(),
            to.as_raw_fd(),
            empty.as_ptr(),
            flags,
        )
    };
    Errno::result(ret).map(drop)
}

/// `pidfd_open(2)` (Linux 5.3).
pub(crate) fn pidfd_open(pid: nix::unistd::Pid) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_open takes a pid and flags by value and returns a new
    // descriptor or -1; no memory is shared with the kernel.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    let fd = Errno::result(ret)?;
    let fd = RawFd::try_from(fd).map_err(|_| Errno::EBADF)?;
    Ok(own(fd))
}

/// The two pipe ends the parent keeps for a user namespace helper.
pub(crate) struct HelperPipes {
    /// Reads the helper's 4-byte report (0 or the errno of unshare).
    pub(crate) ready: OwnedFd,
    /// Held open while the helper must live; closing it lets it exit.
    pub(crate) hold: OwnedFd,
}

/// Forks a helper that `unshare(CLONE_NEWUSER)`s, reports the result on a
/// pipe, then blocks reading a second pipe until the parent closes it (or
/// dies), and exits. The child runs only async-signal-safe raw syscalls, so
/// this is sound in a multi-threaded parent.
pub(crate) fn fork_userns_helper() -> Result<(nix::unistd::Pid, HelperPipes), Errno> {
    let (ready_r, ready_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let (hold_r, hold_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    // SAFETY: the child only calls close, unshare, write, read and _exit
    // (raw, async-signal-safe syscalls on descriptors it inherited) and never
    // returns into Rust code that could touch state of other threads.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => {
            let hold_w_raw = hold_w.as_raw_fd();
            // SAFETY: as above: plain syscalls on inherited descriptors and
            // plain stack buffers; `_exit` never returns.
            unsafe {
                libc::close(hold_w_raw);
                let err: i32 = if libc::unshare(libc::CLONE_NEWUSER) == 0 {
                    0
                } else {
                    *libc::__errno_location()
                };
                let bytes = err.to_ne_bytes();
                libc::write(ready_w.as_raw_fd(), bytes.as_ptr().cast(), bytes.len());
                let mut b = [0u8; 1];
                while libc::read(hold_r.as_raw_fd(), b.as_mut_ptr().cast(), 1) > 0 {}
                libc::_exit(0)
            }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(ready_w);
            drop(hold_r);
            Ok((
                child,
                HelperPipes {
                    ready: ready_r,
                    hold: hold_w,
                },
            ))
        }
    }
}

/// `setdomainname(2)`.
pub(crate) fn setdomainname(name: &str) -> Result<(), Errno> {
    let bytes = name.as_bytes();
    // SAFETY: the pointer and length describe the live `bytes` slice; the
    // kernel copies at most `len` bytes and does not need a terminator.
    let ret = unsafe { libc::setdomainname(bytes.as_ptr().cast(), bytes.len()) };
    Errno::result(ret).map(drop)
}

/// `readlinkat(fd, "")`: the target of an O_PATH|O_NOFOLLOW symlink fd.
pub(crate) fn readlink_fd(fd: BorrowedFd<'_>) -> Result<PathBuf, Errno> {
    nix::fcntl::readlinkat(Some(fd.as_raw_fd()), "").map(PathBuf::from)
}

/// The id of the mount `fd` lies on (`statx(2)` `STATX_MNT_ID`: the id /proc/PID/mountinfo
/// shows first on each line).
pub(crate) fn mount_id(fd: BorrowedFd<'_>) -> Result<u64, Errno> {
    let mut buf = std::mem::MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: the path is a NUL-terminated empty string (AT_EMPTY_PATH: `fd` itself is
    // queried); `buf` is a writable statx buffer the kernel fills and that outlives the call.
    let ret = unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_MNT_ID,
            buf.as_mut_ptr(),
        )
    };
    Errno::result(ret)?;
    // SAFETY: statx succeeded, so the kernel initialised the buffer (zeroed before anyway).
    let st = unsafe { buf.assume_init() };
    if st.stx_mask & libc::STATX_MNT_ID == 0 {
        return Err(Errno::ENOSYS);
    }
    Ok(st.stx_mnt_id)
}

/// `fcntl(F_DUPFD_CLOEXEC, min)`: a close-on-exec copy of `fd` numbered `min` or above.
pub(crate) fn dup_above(fd: BorrowedFd<'_>, min: RawFd) -> Result<OwnedFd, Errno> {
    nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(min)).map(own)
}

/// `ioctl(fd, NS_GET_MNTNS_ID)`: the 64-bit id of a mount namespace, never reused while the
/// system runs (unlike its nsfs inode); `ENOTTY` on kernels without it.
pub(crate) fn mntns_id(fd: BorrowedFd<'_>) -> Result<u64, Errno> {
    let mut id: u64 = 0;
    // SAFETY: NS_GET_MNTNS_ID writes one u64 through the pointer, which points to `id`, alive
    // and writable for the call; the descriptor is valid for the duration of the borrow.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::NS_GET_MNTNS_ID, &mut id as *mut u64) };
    Errno::result(ret).map(|_| id)
}

/// The most of a helper's failure report that is read (an error chain; the rest is cut).
const HELPER_REPORT_MAX: usize = 4096;

/// Runs `work` in a forked child and waits for it at most `timeout`: the calling thread (its
/// mount namespace, root, cwd, fs_struct) is left untouched whatever `work` does to its own
/// process (setns(2) into another mount namespace). `Ok(Err(text))` is the failure `work`
/// reported (at most [`HELPER_REPORT_MAX`] bytes of it); `Err` a failure to fork, to wait, or
/// `ETIMEDOUT` (the child is killed and reaped).
pub(crate) fn run_in_child(
    timeout: std::time::Duration,
    work: impl FnOnce() -> Result<(), String>,
) -> Result<Result<(), String>, Errno> {
    use std::io::{Read, Write};
    let (report_r, report_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    // SAFETY: the child is single-threaded after fork; it runs `work` (system calls and heap
    // allocation: glibc and musl both take and reset malloc's locks around fork, so the heap
    // is usable in the child of a multi-threaded parent; `work` takes no other lock that
    // another thread could have held), writes its report and leaves with `_exit`, never
    // returning into the caller's code or running its destructors or atexit handlers.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => {
            drop(report_r);
            let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
                .unwrap_or_else(|_| Err("the helper panicked".into()));
            let code = match done {
                Ok(()) => 0,
                Err(text) => {
                    let bytes = &text.as_bytes()[..text.len().min(HELPER_REPORT_MAX)];
                    let _ = std::fs::File::from(report_w).write_all(bytes);
                    1
                }
            };
            // SAFETY: `_exit` ends the child without returning.
            unsafe { libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(report_w);
            let reap = || nix::sys::wait::waitpid(child, None);
            let exited = pidfd_open(child).and_then(|pidfd| {
                let mut fds = [nix::poll::PollFd::new(
                    pidfd.as_fd(),
                    nix::poll::PollFlags::POLLIN,
                )];
                let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
                nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms)).map(|n| n > 0)
            });
            if !matches!(exited, Ok(true)) {
                let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                let _ = reap();
                return Err(exited.err().unwrap_or(Errno::ETIMEDOUT));
            }
            let status = reap()?;
            let mut text = String::new();
            let _ = std::fs::File::from(report_r)
                .take(HELPER_REPORT_MAX as u64)
                .read_to_string(&mut text);
            Ok(match status {
                nix::sys::wait::WaitStatus::Exited(_, 0) => Ok(()),
                _ if !text.is_empty() => Err(text),
                other => Err(format!("the helper ended with {other:?}")),
            })
        }
    }
}
