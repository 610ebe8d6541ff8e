//! The exec fifo: what holds a `created` container's init until `start`.
//!
//! Like runc, hako keeps a FIFO at `<state dir>/exec.fifo` while the container is `created`; its
//! existence is what tells `created` from `running`. The direction differs from runc's, to spare
//! the init a `/proc` lookup after pivot_root: `create` opens the FIFO `O_RDWR` (which never
//! blocks, fifo(7)) and the init inherits it and blocks in `read(2)`. `start` opens it
//! `O_WRONLY|O_NONBLOCK` — which fails with ENXIO if no init holds it any more, i.e. the init died —
//! writes one byte, and removes the FIFO. The descriptor is close-on-exec, so the user's program
//! never sees it.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::error::{Error, Result};

/// Creates the FIFO and opens it for the init (in `create`, before clone).
pub(crate) fn create(path: &Path) -> Result<OwnedFd> {
    nix::unistd::mkfifo(path, Mode::from_bits_truncate(0o600))
        .map_err(|e| Error::io("mkfifo", path)(e.into()))?;
    let fd = nix::fcntl::open(path, OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| Error::io("open exec fifo", path)(e.into()))?;
    // SAFETY: open returned a new descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The start-status FIFO, used only when there are startContainer hooks: they run in the init
/// after `start` released it, and the spec wants `start` to fail when one does. The init holds
/// this FIFO `O_RDWR` (close-on-exec) and writes an error message into it if a hook fails;
/// `start` opens it for reading before releasing the init and reads until end-of-file, which
/// comes when the init's descriptor closes: at `execve` (nothing written: success) or at exit.
pub(crate) fn create_start_status(path: &Path) -> Result<OwnedFd> {
    create(path)
}

/// In `start`: opens the start-status FIFO for reading (before releasing the init).
pub(crate) fn open_start_status(path: &Path) -> Result<Option<OwnedFd>> {
    match nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
        Mode::empty(),
    ) {
        // SAFETY: open returned a new descriptor owned by nobody else.
        Ok(fd) => Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) })),
        Err(nix::Error::ENOENT) => Ok(None),
        Err(e) => Err(Error::io("open start status fifo", path)(e.into())),
    }
}

/// In `start`: waits (at most `timeout`) for the init to exec or fail; returns what it wrote
/// (empty on success).
pub(crate) fn read_start_status(fd: &OwnedFd, timeout: std::time::Duration) -> Result<String> {
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let ready = crate::sys::poll_one_until(
            std::os::fd::AsFd::as_fd(fd),
            nix::poll::PollFlags::POLLIN,
            deadline,
        )
        .map_err(Error::sys("poll(start status fifo)"))?;
        if !ready {
            return Err(Error::Timeout {
                what: "startContainer hooks",
                seconds: timeout.as_secs(),
            });
        }
        let mut buf = [0u8; 4096];
        match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
            Ok(0) => return Ok(String::from_utf8_lossy(&out).into_owned()),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(nix::Error::EAGAIN) | Err(nix::Error::EINTR) => {}
            Err(e) => return Err(Error::sys("read start status fifo")(e)),
        }
    }
}

/// Lets go of the resident pages of hako's own program text while the init waits (a created
/// container may wait for a long time, and its memory is what users pay for at density):
/// madvise(2) `MADV_DONTNEED` on the executable's text, from `__executable_start` to `etext`
/// (ld(1) defines both). Text is never written, so nothing is lost: the few pages the init
/// needs after `start` fault back in from the page cache.
fn release_program_text() {
    extern "C" {
        static __executable_start: u8;
        static etext: u8;
    }
    // Only the addresses of the two linker-defined symbols are taken; neither is read.
    let (start, end) = (
        std::ptr::addr_of!(__executable_start) as usize,
        std::ptr::addr_of!(etext) as usize,
    );
    let page = 4096;
    let start = start & !(page - 1);
    if end <= start {
        return;
    }
    // SAFETY: [start, end) is this program's own read-only, never-written text mapping, so
    // MADV_DONTNEED only drops clean pages that are refetched from the file on the next touch;
    // a failure is harmless and ignored.
    unsafe {
        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
    }
}

/// In the init: blocks until `start` writes its byte.
pub(crate) fn wait_for_start(fd: &OwnedFd) -> Result<()> {
    release_program_text();
    let mut b = [0u8; 1];
    loop {
        match nix::unistd::read(fd.as_raw_fd(), &mut b) {
            Err(nix::Error::EINTR) => continue,
            Ok(1) => return Ok(()),
            Ok(_) => {
                return Err(Error::Protocol {
                    expected: "one byte on the exec fifo",
                    got: "end of file",
                })
            }
            Err(e) => return Err(Error::sys("read exec fifo")(e)),
        }
    }
}

/// In `start`: releases the init. `Ok(false)` when no init holds the FIFO any more.
pub(crate) fn release(path: &Path) -> Result<bool> {
    let fd = match nix::fcntl::open(
        path,
        OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(nix::Error::ENXIO) => return Ok(false),
        Err(e) => return Err(Error::io("open exec fifo", path)(e.into())),
    };
    // SAFETY: open returned a new descriptor owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    nix::unistd::write(&fd, b"0").map_err(Error::sys("write exec fifo"))?;
    std::fs::remove_file(path).map_err(Error::io("remove exec fifo", path))?;
    Ok(true)
}
