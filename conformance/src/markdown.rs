//! `--markdown FILE`: writes a run's results into a markdown file between markers, so the
//! READMEs' tables are the output of a run, not typed by hand.
//!
//! Between `<!-- conformance-table:begin -->` and `<!-- conformance-table:end -->` is a table
//! with a row per section and a column per runtime (`passed / failed / skipped`); a run
//! replaces its runtime's column and keeps the others. Between
//! `<!-- conformance-details:begin -->` and `<!-- conformance-details:end -->` (only where the
//! file has them) a `#### COLUMN` part per runtime lists every case that did not pass, with
//! the probe of each skip and the documented deviation of each failure.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::Path;

const TABLE: (&str, &str) = (
    "<!-- conformance-table:begin -->",
    "<!-- conformance-table:end -->",
);
const DETAILS: (&str, &str) = (
    "<!-- conformance-details:begin -->",
    "<!-- conformance-details:end -->",
);

/// One run's results.
pub struct Column<'a> {
    /// Column heading (`hako`, `runc 1.1.5`).
    pub name: String,
    /// `[passed, failed, skipped]` per section.
    pub sections: &'a BTreeMap<&'static str, [usize; 3]>,
    /// `(case, what)` of every case that did not pass.
    pub not_passed: &'a [(String, String)],
}

/// The column heading for a runtime: its kind and version number (`runc 1.1.5`).
pub fn column_name(kind: crate::runtime::Kind, version: &str) -> String {
    let n = version
        .split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
        .unwrap_or("");
    let k = format!("{kind:?}").to_lowercase();
    if n.is_empty() || k == "hako" {
        k
    } else {
        format!("{k} {n}")
    }
}

fn between<'t>(text: &'t str, m: (&str, &str)) -> Option<(usize, usize, &'t str)> {
    let a = text.find(m.0)? + m.0.len();
    let b = a + text[a..].find(m.1)?;
    Some((a, b, &text[a..b]))
}

/// The table text with `col` merged into the existing `inner` table.
fn merge_table(inner: &str, col: &Column) -> String {
    let rows: Vec<Vec<String>> = inner
        .lines()
        .filter(|l| l.starts_with('|') && !l.starts_with("|---"))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect();
    let mut heads: Vec<String> = rows.first().map(|r| r[1..].to_vec()).unwrap_or_default();
    let mut cells: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for r in rows.iter().skip(1) {
        for (h, v) in heads.iter().zip(r.iter().skip(1)) {
            cells
                .entry(r[0].clone())
                .or_default()
                .insert(h.clone(), v.clone());
        }
    }
    cells.remove("**total**");
    if !heads.contains(&col.name) {
        heads.push(col.name.clone());
    }
    for row in cells.values_mut() {
        row.remove(&col.name);
    }
    for (s, c) in col.sections {
        cells
            .entry((*s).to_string())
            .or_default()
            .insert(col.name.clone(), format!("{} / {} / {}", c[0], c[1], c[2]));
    }
    let mut totals: BTreeMap<&String, [usize; 3]> = BTreeMap::new();
    for row in cells.values() {
        for (h, v) in row {
            let n: Vec<usize> = v.split('/').filter_map(|x| x.trim().parse().ok()).collect();
            if let [p, f, k] = n[..] {
                let t = totals.entry(h).or_insert([0; 3]);
                t[0] += p;
                t[1] += f;
                t[2] += k;
            }
        }
    }
    let mut out = format!("\n| section | {} |\n|---|", heads.join(" | "));
    out.push_str(&"---|".repeat(heads.len()));
    out.push('\n');
    for (s, row) in &cells {
        let vals: Vec<&str> = heads
            .iter()
            .map(|h| row.get(h).map_or("–", String::as_str))
            .collect();
        out.push_str(&format!("| {s} | {} |\n", vals.join(" | ")));
    }
    let tot: Vec<String> = heads
        .iter()
        .map(|h| {
            totals
                .get(h)
                .map_or("–".into(), |t| format!("{} / {} / {}", t[0], t[1], t[2]))
        })
        .collect();
    out.push_str(&format!("| **total** | {} |\n", tot.join(" | ")));
    out
}

/// The details text with `col`'s part replaced.
fn merge_details(inner: &str, col: &Column) -> String {
    let mut parts: Vec<(String, String)> = Vec::new();
    for chunk in inner.split("\n#### ").skip(1) {
        let (head, body) = chunk.split_once('\n').unwrap_or((chunk, ""));
        parts.push((head.trim().to_string(), body.trim().to_string()));
    }
    let mut body = String::new();
    if col.not_passed.is_empty() {
        body.push_str("Every case passed.");
    }
    for (case, what) in col.not_passed {
        body.push_str(&format!(
            "- `{case}`: {}\n",
            short(what).replace('|', "\\|")
        ));
    }
    let body = body.trim_end().to_string();
    match parts.iter_mut().find(|(h, _)| *h == col.name) {
        Some(p) => p.1 = body,
        None => parts.push((col.name.clone(), body)),
    }
    let mut out = String::from("\n");
    for (h, b) in parts {
        out.push_str(&format!("#### {h}\n\n{b}\n\n"));
    }
    out
}

/// Longest reason listed, in characters: enough for the error, not for its quoted payload.
const MAX_REASON: usize = 240;

fn short(what: &str) -> String {
    match what.char_indices().nth(MAX_REASON) {
        Some((i, _)) => format!("{}…", &what[..i]),
        None => what.to_string(),
    }
}

/// Rewrites the marked parts of `file` with `col`.
pub fn update(file: &Path, col: &Column) -> Result<()> {
    let mut text =
        std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?;
    let Some((a, b, inner)) = between(&text, TABLE) else {
        bail!(
            "{} has no {} … {} markers",
            file.display(),
            TABLE.0,
            TABLE.1
        );
    };
    let table = merge_table(inner, col);
    text.replace_range(a..b, &table);
    if let Some((a, b, inner)) = between(&text, DETAILS) {
        let details = merge_details(inner, col);
        text.replace_range(a..b, &details);
    }
    std::fs::write(file, text).with_context(|| format!("write {}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_replaces_its_column_and_keeps_the_others() -> Result<()> {
        let text = "x\n<!-- conformance-table:begin -->\n| section | hako | runc 1.1.5 |\n|---|---|---|\n| hooks | 1 / 0 / 0 | 0 / 1 / 0 |\n| **total** | 1 / 0 / 0 | 0 / 1 / 0 |\n<!-- conformance-table:end -->\n<!-- conformance-details:begin -->\n#### runc 1.1.5\n\n- `hooks/a`: FAIL\n<!-- conformance-details:end -->\n";
        let dir = tempfile::tempdir()?;
        let f = dir.path().join("r.md");
        std::fs::write(&f, text)?;
        let mut sections = BTreeMap::new();
        sections.insert("hooks", [2, 0, 1]);
        sections.insert("lsm", [0, 0, 1]);
        let np = vec![("lsm/x".to_string(), "skip: probed a: b".to_string())];
        let col = Column {
            name: "hako".into(),
            sections: &sections,
            not_passed: &np,
        };
        update(&f, &col)?;
        let out = std::fs::read_to_string(&f)?;
        assert!(out.contains("| hooks | 2 / 0 / 1 | 0 / 1 / 0 |"), "{out}");
        assert!(out.contains("| lsm | 0 / 0 / 1 | – |"), "{out}");
        assert!(
            out.contains("| **total** | 2 / 0 / 2 | 0 / 1 / 0 |"),
            "{out}"
        );
        assert!(
            out.contains("#### runc 1.1.5\n\n- `hooks/a`: FAIL"),
            "{out}"
        );
        assert!(
            out.contains("#### hako\n\n- `lsm/x`: skip: probed a: b"),
            "{out}"
        );
        assert!(
            out.starts_with("x\n") && out.ends_with("end -->\n"),
            "{out}"
        );
        Ok(())
    }
}
