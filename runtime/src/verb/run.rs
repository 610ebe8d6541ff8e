//! `hako run`: create, start, and (unless `--detach`) wait for the container, forwarding signals
//! to it and exiting with its status (128 + N when killed by signal N); the container is deleted
//! afterwards unless `--keep`.

use crate::console;
use crate::error::Result;
use crate::state::Store;
use crate::tty_proxy::TtyProxy;
use crate::verb::create::{create_with_console, CreateOptions};
use crate::verb::{delete, start};
use crate::wait::SignalForwarder;

/// `run`'s flags.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Everything `create` takes.
    pub create: CreateOptions,
    /// `--detach`: return once started.
    pub detach: bool,
    /// `--keep`: do not delete the container after it exits.
    pub keep: bool,
}

/// Runs the container; returns the exit code for hako to exit with.
pub fn run(store: &Store, opts: &RunOptions) -> Result<i32> {
    // Before the terminal pair below can fill a hole in the range (see fds.rs).
    // The same count as `create`: systemd's LISTEN_FDS follow the preserved ones.
    crate::fds::check_preserved(opts.create.preserve_fds + crate::verb::create::listen_fds())?;
    let forwarder = if opts.detach {
        None
    } else {
        Some(SignalForwarder::block()?)
    };
    // In the foreground without --console-socket, hako is the terminal's other end if the
    // process asks for one (runc does the same).
    let (mine, theirs) = match (&forwarder, &opts.create.console_socket) {
        (Some(_), None) => {
            let (a, b) = console::pair()?;
            (Some(a), Some(b))
        }
        _ => (None, None),
    };
    let created = create_with_console(store, &opts.create, theirs)?;
    let pid = created.pid;
    let id = opts.create.id.as_str();
    drop(created);
    let proxy = match &mine {
        Some(sock) => match console::recv_master(sock, false) {
            Ok(Some(master)) => Some(TtyProxy::start(master)),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
        .transpose(),
        None => Ok(None),
    };
    let proxy = match proxy {
        Ok(p) => p,
        Err(e) => {
            let _ = delete::delete(store, id, true);
            return Err(e);
        }
    };
    if let Err(e) = start::start(store, id) {
        let _ = delete::delete(store, id, true);
        if let Some(p) = proxy {
            p.finish();
        }
        return Err(e);
    }
    let Some(forwarder) = forwarder else {
        return Ok(0);
    };
    let code = forwarder.wait(pid, proxy.as_ref().map(TtyProxy::master));
    if let Some(p) = proxy {
        p.finish();
    }
    let code = code?;
    drop(forwarder);
    if !opts.keep {
        delete::delete(store, id, true)?;
    }
    Ok(code)
}
