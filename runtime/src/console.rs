//! The container's terminal, handed to the caller over `--console-socket`.
//!
//! As runc does for conmon and containerd: the parent connects to the AF_UNIX socket the caller
//! listens on and the child inherits that connection; after pivot_root the child opens a pty
//! in the container's own devpts (`/dev/ptmx`), gets the slave with `TIOCGPTPEER` (no path lookup
//! that a hostile `/dev/pts` could redirect), sends the master with `SCM_RIGHTS`, makes the slave its
//! controlling terminal and its stdio. The master never stays open in the container.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

use crate::error::{Error, Result};

/// Connects to the caller's console socket (in the parent, before clone).
pub(crate) fn connect(path: &Path) -> Result<OwnedFd> {
    let s = UnixStream::connect(path).map_err(Error::io("connect to console socket", path))?;
    Ok(s.into())
}

/// A connected pair standing in for `--console-socket` when hako itself drives the terminal
/// (`run -t`, `exec -t`): (hako's end, the child's end), both close-on-exec.
pub(crate) fn pair() -> Result<(OwnedFd, OwnedFd)> {
    let (a, b) = UnixStream::pair().map_err(Error::io("socketpair for console", "-"))?;
    Ok((a.into(), b.into()))
}

/// Receives the pty master the child sent; `None` if nothing is queued (the process has no
/// terminal) and `wait` is false.
pub(crate) fn recv_master(sock: &OwnedFd, wait: bool) -> Result<Option<OwnedFd>> {
    let mut buf = [0u8; 64];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let flags = if wait {
        MsgFlags::MSG_CMSG_CLOEXEC
    } else {
        MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT
    };
    let msg = match nix::sys::socket::recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        flags,
    ) {
        Ok(m) => m,
        Err(nix::Error::EAGAIN) => return Ok(None),
        Err(e) => return Err(Error::sys("recvmsg(pty master)")(e)),
    };
    let cmsgs = msg
        .cmsgs()
        .map_err(Error::sys("recvmsg(pty master): control data"))?;
    for c in cmsgs {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel installed this descriptor for us with SCM_RIGHTS; nothing
                // else owns it.
                return Ok(Some(unsafe { OwnedFd::from_raw_fd(*fd) }));
            }
        }
    }
    Ok(None)
}

/// In the child, after pivot_root: creates the pty, sends the master and makes the slave the
/// controlling terminal and stdio.
pub(crate) fn setup(socket: &OwnedFd, size: Option<(u16, u16)>) -> Result<()> {
    let master = nix::fcntl::open(
        "/dev/ptmx",
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_NOCTTY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::io("open", "/dev/ptmx")(e.into()))?;
    // SAFETY: open returned a new descriptor owned by nobody else.
    let master = unsafe { OwnedFd::from_raw_fd(master) };
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int from a valid pointer.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } != 0 {
        return Err(Error::sys("ioctl(TIOCSPTLCK)")(nix::Error::last()));
    }
    // SAFETY: TIOCGPTPEER takes open flags by value and returns a new descriptor or -1.
    let slave = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if slave < 0 {
        return Err(Error::sys("ioctl(TIOCGPTPEER)")(nix::Error::last()));
    }
    // SAFETY: the ioctl returned a new descriptor owned by nobody else.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    if let Some((rows, cols)) = size {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer.
        if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
            return Err(Error::sys("ioctl(TIOCSWINSZ)")(nix::Error::last()));
        }
    }
    let name = b"/dev/ptmx";
    let fds = [master.as_raw_fd()];
    sendmsg::<()>(
        socket.as_raw_fd(),
        &[IoSlice::new(name)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(Error::sys("sendmsg(SCM_RIGHTS) on console socket"))?;
    drop(master);
    // SAFETY: TIOCSCTTY on a terminal we opened; the caller is a session leader (setsid earlier).
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } != 0 {
        return Err(Error::sys("ioctl(TIOCSCTTY)")(nix::Error::last()));
    }
    for target in 0..=2 as RawFd {
        nix::unistd::dup2(slave.as_raw_fd(), target)
            .map_err(Error::sys("dup2 pty slave to stdio"))?;
    }
    Ok(())
}
