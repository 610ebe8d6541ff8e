//! `hako run`: create, start, and (unless `--detach`) wait for the container, forwarding signals
//! to it and exiting with its status (128 + N when killed by signal N); the container is deleted
//! afterwards unless `--keep`.

use crate::error::Result;
use crate::state::Store;
use crate::verb::create::{create, CreateOptions};
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
    let forwarder = if opts.detach {
        None
    } else {
        Some(SignalForwarder::block()?)
    };
    let created = create(store, &opts.create)?;
    let pid = created.pid;
    let id = opts.create.id.as_str();
    drop(created);
    if let Err(e) = start::start(store, id) {
        let _ = delete::delete(store, id, true);
        return Err(e);
    }
    let Some(forwarder) = forwarder else {
        return Ok(0);
    };
    let code = forwarder.wait(pid)?;
    drop(forwarder);
    if !opts.keep {
        delete::delete(store, id, true)?;
    }
    Ok(code)
}
