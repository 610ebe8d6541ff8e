//! File descriptors that cross into the container: which survive `execve` and which do not.
//!
//! Every descriptor hako itself opens is close-on-exec; before the container process execs, every
//! descriptor from `3 + preserved` upward is marked close-on-exec too, so nothing inherited by hako
//! (containerd hands one in as fd 3) reaches the container. Leaked host descriptors are how
//! CVE-2024-21626 let a container's cwd start outside its rootfs.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::error::{Error, Result};

/// Duplicates `fd` to the lowest free number at or above `min`, close-on-exec.
pub(crate) fn dup_above(fd: BorrowedFd<'_>, min: RawFd) -> Result<OwnedFd> {
    let raw = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(min))
        .map_err(Error::sys("fcntl(F_DUPFD_CLOEXEC)"))?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Marks every descriptor numbered `first` or higher close-on-exec (close_range(2),
/// `CLOSE_RANGE_CLOEXEC`, Linux 5.11), falling back to walking `/proc/self/fd`.
pub(crate) fn cloexec_from(first: RawFd) -> Result<()> {
    let first = u32::try_from(first).unwrap_or(3);
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on descriptors; it closes none,
    // so no OwnedFd in this process is invalidated.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let dir = std::fs::read_dir("/proc/self/fd").map_err(Error::io("list", "/proc/self/fd"))?;
    for entry in dir.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<RawFd>().ok())
        else {
            continue;
        };
        if fd >= first as RawFd {
            // EBADF is expected for the directory's own descriptor, closed by now.
            let _ = nix::fcntl::fcntl(
                fd,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            );
        }
    }
    Ok(())
}

/// Clears close-on-exec on `fd` so that it survives `execve` (a preserved descriptor).
/// A number the caller did not actually pass (EBADF) is skipped: there is nothing to keep.
pub(crate) fn keep_on_exec(fd: RawFd) -> Result<()> {
    match nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    ) {
        Ok(_) | Err(nix::Error::EBADF) => Ok(()),
        Err(e) => Err(Error::sys("fcntl(F_SETFD) on a preserved fd")(e)),
    }
}
