//! File descriptors that cross into the container: which survive `execve` and which do not.
//!
//! Every descriptor hako itself opens is close-on-exec; before the container process execs, every
//! descriptor from `3 + preserved` upward is marked close-on-exec too, so nothing inherited by hako
//! (containerd hands one in as fd 3) reaches the container. Leaked host descriptors are how
//! CVE-2024-21626 let a container's cwd start outside its rootfs.
//!
//! `--preserve-fds N` names fds 3..3+N, which must all be open when hako starts: a hole in the
//! range would be filled by the first descriptor hako opens itself (a socket, a cgroup
//! directory) and handed to the container. runc 1.1.5 does exactly that (its cgroup directory
//! fd shows up in the container); crun 1.8.1 skips the hole. hako refuses such a range.

use std::os::fd::{BorrowedFd, OwnedFd, RawFd};

use crate::error::{Error, Result};
use crate::sys;

/// Duplicates `fd` to the lowest free number at or above `min`, close-on-exec.
pub(crate) fn dup_above(fd: BorrowedFd<'_>, min: RawFd) -> Result<OwnedFd> {
    sys::dup_cloexec_above(fd, min).map_err(Error::sys("fcntl(F_DUPFD_CLOEXEC)"))
}

/// Fails unless every fd of `3..3 + count` is open: call it before hako opens anything, so that
/// the preserved range holds only the caller's descriptors.
pub(crate) fn check_preserved(count: u32) -> Result<()> {
    let end = 3 + RawFd::try_from(count).map_err(|_| preserve_error(count, "is too large"))?;
    for fd in 3..end {
        if nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD) == Err(nix::Error::EBADF) {
            return Err(preserve_error(count, &format!("fd {fd} is not open")));
        }
    }
    Ok(())
}

fn preserve_error(count: u32, what: &str) -> Error {
    Error::InvalidConfig {
        field: "--preserve-fds",
        reason: format!("{count}: {what}"),
    }
}

/// Marks every descriptor numbered `first` or higher close-on-exec (close_range(2),
/// `CLOSE_RANGE_CLOEXEC`, Linux 5.11), falling back to walking `/proc/self/fd`.
pub(crate) fn cloexec_from(first: RawFd) -> Result<()> {
    let first = u32::try_from(first).unwrap_or(3);
    if sys::cloexec_range(first).is_ok() {
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

/// Clears close-on-exec on fds `3..end` so that they survive `execve` (the preserved ones).
/// Each must be open ([`check_preserved`] made sure of it in the parent).
pub(crate) fn keep_on_exec(end: RawFd) -> Result<()> {
    for fd in 3..end {
        nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        )
        .map_err(Error::sys("fcntl(F_SETFD) on a preserved fd"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn preserved_range_must_be_open() {
        // The test harness may hold any fd; a range far above what is open has holes.
        assert!(check_preserved(0).is_ok());
        let err = check_preserved(100_000).expect_err("a hole");
        assert!(err.to_string().contains("--preserve-fds"), "{err}");
        let fd = dup_above(std::os::fd::AsFd::as_fd(&std::io::stdin()), 3).expect("dup");
        assert!(fd.as_raw_fd() >= 3);
    }
}
