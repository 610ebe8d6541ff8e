//! Thin wrappers over the few syscalls nix does not expose with owned file
//! descriptors. All of the crate's `unsafe` lives here.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
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
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    let empty = c"";
    // SAFETY: `empty` is a valid NUL-terminated string, `attr` is a fully
    // initialised mount_attr that outlives the call and its size is passed
    // exactly; the kernel only reads from both.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            empty.as_ptr(),
            flags,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    Errno::result(ret).map(drop)
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
