//! `hako events`: cgroup statistics as runc's JSON events (`{"type":"stats","id":..,"data":..}`),
//! once with `--stats`, else every `--interval` until the container stops.

use std::io::Write;
use std::time::Duration;

use serde_json::json;

use crate::error::{Error, Result};
use crate::state::Store;

fn stats_event(store: &Store, id: &str) -> Result<Option<String>> {
    let stats = match store.load(id)?.live_cgroup() {
        Ok(cg) => cg.stats()?,
        Err(Error::NotRunning { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let event = json!({ "type": "stats", "id": id, "data": stats });
    Ok(Some(event.to_string()))
}

/// Prints statistics for `id`.
pub fn events(
    store: &Store,
    id: &str,
    once: bool,
    interval: Duration,
    out: &mut dyn Write,
) -> Result<()> {
    loop {
        match stats_event(store, id)? {
            Some(line) => writeln!(out, "{line}").map_err(Error::io("write", "stdout"))?,
            None if once => return Err(Error::NotRunning { id: id.to_string() }),
            None => return Ok(()),
        }
        if once {
            return Ok(());
        }
        // The interval is the feature here (a periodic report), not a synchronisation.
        std::thread::sleep(interval);
    }
}
