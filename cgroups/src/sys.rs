//! Opening cgroupfs files without the C library's extra system call: musl's open(3) follows
//! every `O_CLOEXEC` open with an fcntl(2) setting the flag again (for kernels older than
//! 2.6.23), and Rust's `File::open` always asks for `O_CLOEXEC`; openat(2) it passes straight
//! through. A `create` opens some thirty cgroup files. With the bpf(2) calls in `bpf/sys.rs`,
//! this is the crate's unsafe code.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Opens `path` with `flags` (`O_CLOEXEC` added) by openat(2) from the working directory.
pub(crate) fn open(path: &Path, flags: libc::c_int) -> io::Result<File> {
    let name = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a NUL-terminated path that lives across the call, and integer flags; no mode is
    // read without O_CREAT. Returns a new descriptor or -1.
    let raw = unsafe { libc::openat(libc::AT_FDCWD, name.as_ptr(), flags | libc::O_CLOEXEC) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` was just returned by openat(2): a valid descriptor nothing else owns.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(raw) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The descriptor is close-on-exec although no fcntl(2) set it, and a missing file is the
    /// kernel's ENOENT.
    #[test]
    fn opens_close_on_exec() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("f");
        std::fs::write(&path, "x").expect("write");
        let f = open(&path, libc::O_RDONLY).expect("open");
        let flags = nix::fcntl::fcntl(std::os::fd::AsRawFd::as_raw_fd(&f), nix::fcntl::F_GETFD)
            .expect("F_GETFD");
        assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
        let missing = open(&tmp.path().join("none"), libc::O_RDONLY).expect_err("missing");
        assert_eq!(missing.raw_os_error(), Some(libc::ENOENT));
    }
}
