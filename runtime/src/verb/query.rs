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

/// Calls `f` with every container's state in id order, `creating` ones included. A container
/// whose state cannot be read is named in a warning (runc: `load container ID: ...` on stderr)
/// and the others are listed: an engine that cannot see a container can never clean it up.
/// One container's state is in memory at a time (`list` with a thousand containers).
pub fn each_state(
    store: &Store,
    mut f: impl FnMut(StateView) -> std::io::Result<()>,
) -> Result<()> {
    store.each_view(|id, view| -> Result<()> {
        match view {
            Ok(v) => f(v).map_err(|source| Error::Output { source })?,
            Err(source) => crate::warn(&Error::LoadContainer {
                id,
                source: Box::new(source),
            }),
        }
        Ok(())
    })
}

/// `list --quiet`: the ids, one a line.
pub fn list_quiet(store: &Store, w: &mut dyn Write) -> Result<()> {
    each_state(store, |s| writeln!(w, "{}", s.id))
}

/// `list --format json`: one JSON array, written as the containers are read; `null` when there
/// is none, as runc prints its empty (nil) Go slice.
pub fn list_json(store: &Store, w: &mut dyn Write) -> Result<()> {
    let mut first = true;
    each_state(store, |s| {
        w.write_all(if std::mem::take(&mut first) {
            b"["
        } else {
            b","
        })?;
        serde_json::to_writer(&mut *w, &s).map_err(std::io::Error::from)
    })?;
    let end: &[u8] = if first { b"null\n" } else { b"]\n" };
    w.write_all(end).map_err(|source| Error::Output { source })
}

/// `list`'s table, aligned like Go's tabwriter with padding 3: the cells are kept (not the
/// whole states) until the widths are known.
pub fn list_table(store: &Store, w: &mut dyn Write) -> Result<()> {
    let mut rows = vec![[
        "ID".to_string(),
        "PID".into(),
        "STATUS".into(),
        "BUNDLE".into(),
        "CREATED".into(),
        "OWNER".into(),
    ]];
    each_state(store, |s| {
        rows.push([
            s.id,
            s.pid.to_string(),
            s.status.to_string(),
            s.bundle.display().to_string(),
            s.created,
            s.owner,
        ]);
        Ok(())
    })?;
    write_table(&rows, w).map_err(|source| Error::Output { source })
}

/// runc's table: Go's `tabwriter.NewWriter(os.Stdout, 12, 1, 3, ' ', 0)` (runc list.go): a
/// column is as wide as its widest cell plus 3, and at least 12, counted in characters (runes);
/// the last column is not padded.
fn write_table(rows: &[[String; 6]], w: &mut dyn Write) -> std::io::Result<()> {
    const MIN_WIDTH: usize = 12;
    const PADDING: usize = 3;
    let widths: Vec<usize> = (0..5)
        .map(|c| {
            let widest = rows.iter().map(|r| r[c].chars().count()).max();
            (widest.unwrap_or(0) + PADDING).max(MIN_WIDTH)
        })
        .collect();
    let mut line = String::new();
    for r in rows {
        line.clear();
        for (c, cell) in r.iter().enumerate() {
            line.push_str(cell);
            if let Some(width) = widths.get(c) {
                let pad = width.saturating_sub(cell.chars().count());
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        writeln!(w, "{line}")?;
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

#[cfg(test)]
mod tests {
    use super::write_table;

    fn table(rows: &[[&str; 6]]) -> String {
        let mut all = vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from)];
        all.extend(rows.iter().map(|r| r.map(String::from)));
        let mut out = Vec::new();
        write_table(&all, &mut out).expect("write");
        String::from_utf8(out).expect("utf-8")
    }

    /// Byte for byte what runc 1.1.5 printed for the same two containers, and for none.
    #[test]
    fn table_as_runc_prints_it() {
        let two = table(&[
            [
                "a-much-longer-container-id",
                "27051",
                "created",
                "/tmp/scale/w/b/bb",
                "2026-12-02T08:59:56.101782369Z",
                "root",
            ],
            [
                "x",
                "27037",
                "created",
                "/tmp/scale/w/b/a",
                "2026-12-02T08:59:56.064080817Z",
                "root",
            ],
        ]);
        assert_eq!(
            two,
            "ID                           PID         STATUS      BUNDLE              \
             CREATED                          OWNER\n\
             a-much-longer-container-id   27051       created     /tmp/scale/w/b/bb   \
             2026-12-02T08:59:56.101782369Z   root\n\
             x                            27037       created     /tmp/scale/w/b/a    \
             2026-12-02T08:59:56.064080817Z   root\n"
        );
        assert_eq!(
            table(&[]),
            "ID          PID         STATUS      BUNDLE      CREATED     OWNER\n"
        );
    }

    /// Go's tabwriter counts characters, not bytes.
    #[test]
    fn table_pads_by_characters() {
        let t = table(&[["é", "1", "running", "/b", "c", "root"]]);
        assert!(
            t.lines().nth(1).expect("row").starts_with("é           1 "),
            "{t}"
        );
    }
}
