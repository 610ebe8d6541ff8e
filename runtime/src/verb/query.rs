//! Read-only verbs: `state`, `list` and `ps`.

use std::io::Write;

use crate::error::{Error, Result};
use crate::state::{StateView, Store};

/// runc's `state ID` output: the state JSON, indented. Read without the container's lock, so
/// that a container being created answers `creating` instead of waiting for `create`.
pub fn state(store: &Store, id: &str) -> Result<String> {
    let container = store.read(id)?;
    serde_json::to_string_pretty(&container.view()?).map_err(|source| Error::Encode {
        what: "state",
        source,
    })
}

/// Every container's state, `creating` ones included. A container whose state cannot be read is
/// named in a warning (runc: `load container ID: ...` on stderr) and the others are listed: an
/// engine that cannot see a container can never clean it up.
pub fn list(store: &Store) -> Result<Vec<StateView>> {
    let mut out = Vec::new();
    for id in store.ids()? {
        match store.read(&id).and_then(|c| c.view()) {
            Ok(v) => out.push(v),
            Err(source) => crate::warn(&Error::LoadContainer {
                id,
                source: Box::new(source),
            }),
        }
    }
    Ok(out)
}

/// `list`'s table, aligned like Go's tabwriter with padding 3.
pub fn list_table(states: &[StateView], w: &mut dyn Write) -> std::io::Result<()> {
    let mut rows = vec![[
        "ID".to_string(),
        "PID".into(),
        "STATUS".into(),
        "BUNDLE".into(),
        "CREATED".into(),
        "OWNER".into(),
    ]];
    for s in states {
        rows.push([
            s.id.clone(),
            s.pid.to_string(),
            s.status.to_string(),
            s.bundle.display().to_string(),
            s.created.clone(),
            s.owner.clone(),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c == 5 {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{:width$}", cell, width = widths[c] + 3));
            }
        }
        writeln!(w, "{}", line.trim_end())?;
    }
    Ok(())
}

/// The pids of every process in the container's cgroup (`ps --format json`).
pub fn pids(store: &Store, id: &str) -> Result<Vec<i32>> {
    let locked = store.load(id)?;
    let mut pids = match (&locked.state.cgroup, locked.init()) {
        // Rootless without a cgroup: the processes of its pid namespace, or the init's tree.
        (None, Some(init)) => crate::rootless::container_pids(init.pid())?,
        _ => locked.live_cgroup()?.pids()?,
    };
    pids.sort_unstable();
    Ok(pids)
}
