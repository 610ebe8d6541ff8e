//! hako as the terminal's other end: `run -t` / `exec -t` without `--console-socket`.
//!
//! As runc does, hako then receives the pty master itself, puts its own terminal in raw mode,
//! copies stdin to the master and the master to stdout, and passes window-size changes on
//! (SIGWINCH, forwarded by `wait.rs`). Threads are fine here: the clone already happened.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::termios::{self, SetArg, Termios};

use crate::error::{Error, Result};

/// How long output may keep draining after the process exited.
const DRAIN: Duration = Duration::from_secs(2);

/// A running proxy; restore the terminal with [`TtyProxy::finish`].
pub(crate) struct TtyProxy {
    master: OwnedFd,
    saved: Option<Termios>,
    output_done: mpsc::Receiver<()>,
}

/// Copies the size of hako's own terminal (stdin) onto the pty.
pub(crate) fn copy_size(master: &OwnedFd) {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into a valid pointer; TIOCSWINSZ reads one.
    unsafe {
        if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
        }
    }
}

impl TtyProxy {
    /// Starts copying between hako's stdio and `master`.
    pub(crate) fn start(master: OwnedFd) -> Result<Self> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(&stdin).ok();
        if let Some(t) = &saved {
            let mut raw = t.clone();
            termios::cfmakeraw(&mut raw);
            termios::tcsetattr(&stdin, SetArg::TCSANOW, &raw)
                .map_err(Error::sys("tcsetattr(raw)"))?;
        }
        copy_size(&master);
        let mut input = std::fs::File::from(
            master
                .try_clone()
                .map_err(Error::io("dup pty master", "-"))?,
        );
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut stdin = std::io::stdin().lock();
            while let Ok(n) = stdin.read(&mut buf) {
                if n == 0 || input.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
        let mut output = std::fs::File::from(
            master
                .try_clone()
                .map_err(Error::io("dup pty master", "-"))?,
        );
        let (tx, output_done) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut stdout = std::io::stdout();
            // The read ends with EIO once every slave descriptor is closed (pty(7)).
            while let Ok(n) = output.read(&mut buf) {
                if n == 0 || stdout.write_all(&buf[..n]).is_err() {
                    break;
                }
                let _ = stdout.flush();
            }
            let _ = tx.send(());
        });
        Ok(TtyProxy {
            master,
            saved,
            output_done,
        })
    }

    /// The master, for window-size changes.
    pub(crate) fn master(&self) -> &OwnedFd {
        &self.master
    }

    /// Waits (bounded) for the output to drain and restores hako's terminal.
    pub(crate) fn finish(self) {
        let _ = self.output_done.recv_timeout(DRAIN);
        if let Some(t) = &self.saved {
            let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, t);
        }
    }
}
