//! `--console-socket`: the pty master arrives over SCM_RIGHTS (as conmon and containerd expect)
//! and the container's stdio is the pty slave. `--pid-file` and `--preserve-fds` too.

use std::io::{IoSliceMut, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use hako_tests::{both, Bundle, Runtime};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use serde_json::json;

fn receive_fd(listener: UnixListener) -> Result<OwnedFd> {
    let (stream, _) = listener.accept()?;
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )?;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the kernel installed this descriptor for us; nothing else owns it.
            return Ok(unsafe { OwnedFd::from_raw_fd(fds[0]) });
        }
    }
    anyhow::bail!("no fd in the console message")
}

/// Creates and starts `b` (with `"terminal": true`) through a console socket, and returns all
/// the container printed on the pty master until it exited.
fn terminal_output(b: &mut Bundle) -> Result<String> {
    b.config["process"]["terminal"] = json!(true);
    b.write_config()?;
    let sock = b.path().join("console.sock");
    let listener = UnixListener::bind(&sock)?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(receive_fd(listener));
    });
    b.rt(&[
        "create",
        "--bundle",
        &b.path().to_string_lossy(),
        "--console-socket",
        &sock.to_string_lossy(),
        &b.id,
    ])?
    .ok()?;
    let master = rx
        .recv_timeout(Duration::from_secs(30))
        .context("console fd never arrived")??;
    b.rt(&["start", &b.id])?.ok()?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut f = std::fs::File::from(master);
        let mut out = Vec::new();
        // Reading the master ends with EIO once the slave side is closed by the exiting shell.
        let mut buf = [0u8; 1024];
        while let Ok(n) = f.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        let _ = tx.send(out);
    });
    Ok(String::from_utf8_lossy(&rx.recv_timeout(Duration::from_secs(30))?).into_owned())
}

fn console_socket_receives_pty_master(rt: Runtime) -> Result<()> {
    let mut b = Bundle::new(rt, "console", &["sh", "-c", "tty; echo on-the-pty"])?;
    let out = terminal_output(&mut b)?;
    ensure!(out.contains("/dev/pts/0"), "tty inside: {out:?}");
    ensure!(out.contains("on-the-pty"), "{out:?}");
    Ok(())
}
both!(console_socket_receives_pty_master);

/// `process.consoleSize` (config.md) is the terminal's size as the container reads it
/// (TIOCGWINSZ, through busybox's `stty size`: "ROWS COLUMNS").
fn console_size_is_the_terminal_s(rt: Runtime) -> Result<()> {
    let mut b = Bundle::new(rt, "consize", &["stty", "size"])?;
    b.config["process"]["consoleSize"] = json!({"height": 37, "width": 101});
    let out = terminal_output(&mut b)?;
    ensure!(out.trim() == "37 101", "stty size inside: {out:?}");
    Ok(())
}
both!(console_size_is_the_terminal_s);

fn pid_file_and_preserved_fds(rt: Runtime) -> Result<()> {
    let b = Bundle::new(
        rt,
        "fds",
        &["sh", "-c", "echo through-fd3 >&3; ls /proc/self/fd | wc -l"],
    )?;
    b.write_config()?;
    let (r, w) = nix::unistd::pipe()?;
    let pidfile = b.path().join("init.pid");
    let mut cmd = b.cmd();
    cmd.args([
        "run",
        "--preserve-fds",
        "1",
        "--pid-file",
        &pidfile.to_string_lossy(),
        "--bundle",
        &b.path().to_string_lossy(),
        &b.id,
    ]);
    let wfd = w.as_raw_fd();
    // SAFETY: between fork and exec only dup2 (async-signal-safe) runs, placing the pipe at fd 3.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            if libc::dup2(wfd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = hako_tests::output_with_timeout(cmd, Duration::from_secs(60))?.ok()?;
    drop(w);
    let mut got = String::new();
    std::fs::File::from(r).read_to_string(&mut got)?;
    ensure!(got.trim() == "through-fd3", "{got:?}");
    // 0, 1, 2, 3, and the directory fd ls itself opens: nothing else leaked in.
    ensure!(
        out.stdout.trim() == "5",
        "open fds inside: {:?}",
        out.stdout
    );
    let pid: i32 = std::fs::read_to_string(&pidfile)?.trim().parse()?;
    ensure!(pid > 0);
    Ok(())
}
both!(pid_file_and_preserved_fds);

/// `run` of a process with `terminal: true` and no `--console-socket`: the runtime itself is the
/// terminal's other end, copying between its own stdio and the pty, window size included.
fn run_with_terminal_proxies_the_pty(rt: Runtime) -> Result<()> {
    let mut b = Bundle::new(
        rt,
        "runtty",
        &["sh", "-c", "tty; stty size; read x; echo got-$x"],
    )?;
    b.config["process"]["terminal"] = json!(true);
    b.write_config()?;
    let pty = nix::pty::openpty(
        Some(&nix::pty::Winsize {
            ws_row: 33,
            ws_col: 101,
            ws_xpixel: 0,
            ws_ypixel: 0,
        }),
        None,
    )?;
    let slave = std::fs::File::from(pty.slave);
    let mut cmd = b.cmd();
    cmd.args(["run", "--bundle", &b.path().to_string_lossy(), &b.id])
        .stdin(slave.try_clone()?)
        .stdout(slave.try_clone()?)
        .stderr(slave.try_clone()?);
    let mut child = cmd.spawn()?;
    drop(slave);
    let mut master = std::fs::File::from(pty.master);
    std::io::Write::write_all(&mut master, b"hello\n")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut buf = [0u8; 1024];
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&out).contains("got-hello") {
                break;
            }
        }
        let _ = tx.send(out);
    });
    let out = String::from_utf8_lossy(&rx.recv_timeout(Duration::from_secs(30))?).into_owned();
    let status = child.wait()?;
    ensure!(out.contains("/dev/pts/0"), "{out:?}");
    // runc 1.1 sizes the pty after starting the process, so a quick `stty size` can run before it
    // (seen failing with ECHILD); hako sizes it before the process runs.
    if rt == Runtime::Hako {
        ensure!(out.contains("33 101"), "window size: {out:?}");
    }
    ensure!(out.contains("got-hello"), "{out:?}");
    ensure!(status.success(), "{status:?}");
    Ok(())
}
both!(run_with_terminal_proxies_the_pty);
