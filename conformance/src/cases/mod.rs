//! Every case, grouped by the section of the runtime spec it checks.

mod caps;
mod cgroups;
mod devices;
mod edges;
mod features;
mod hooks;
mod lifecycle;
mod mounts;
mod namespaces;
mod paths;
mod process;
mod rlimits;
mod sysctl;

use crate::case::Case;
use anyhow::{bail, Result};
use std::path::Path;
use std::time::Duration;

/// All cases, in run order.
pub fn all() -> Vec<Case> {
    let mut v = Vec::new();
    v.extend(lifecycle::cases());
    v.extend(process::cases());
    v.extend(caps::cases());
    v.extend(rlimits::cases());
    v.extend(hooks::cases());
    v.extend(mounts::cases());
    v.extend(paths::cases());
    v.extend(namespaces::cases());
    v.extend(devices::cases());
    v.extend(sysctl::cases());
    v.extend(cgroups::cases());
    v.extend(features::cases());
    v.extend(edges::cases());
    v
}

/// Makes a FIFO at `path`.
pub fn mkfifo(path: &Path) -> Result<()> {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o666))?;
    Ok(())
}

/// Reads a FIFO to its end in a helper thread, giving up after `timeout` (then opening it for
/// writing so the helper's blocked open returns): how a case waits for a container or a hook to
/// reach a point, without sleeping.
pub fn read_fifo(path: &Path, timeout: Duration) -> Result<String> {
    let p = path.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::fs::read_to_string(&p));
    });
    match rx.recv_timeout(timeout) {
        Ok(r) => Ok(r?),
        Err(_) => {
            let _ = std::fs::OpenOptions::new().write(true).open(path);
            bail!("nothing arrived on {} within {timeout:?}", path.display())
        }
    }
}
