//! Output: TAP (`ok N - section/name`, `not ok`, `# SKIP reason`) or one readable line per
//! case, a markdown table per section, and the closing `N passed, N failed, N skipped`.

use crate::case::Outcome;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Longest failure or skip reason printed, in characters.
const MAX_LINE: usize = 600;

/// Collects results as cases finish and prints them.
pub struct Report {
    tap: bool,
    n: usize,
    sections: BTreeMap<&'static str, [usize; 3]>,
    /// `(case, what)` of every case that did not pass: the probe of a skip, or the failure
    /// and the documented deviation, for the markdown output.
    pub not_passed: Vec<(String, String)>,
}

impl Report {
    /// Starts the report for `total` cases.
    pub fn new(tap: bool, total: usize, runtime: &str) -> Self {
        if tap {
            println!("TAP version 13");
            println!("1..{total}");
            println!("# runtime: {runtime}");
        } else {
            println!("runtime: {runtime}, {total} cases");
        }
        Report {
            tap,
            n: 0,
            sections: BTreeMap::new(),
            not_passed: Vec::new(),
        }
    }

    /// Prints one result; `note` is a documented deviation of this runtime on this case.
    pub fn record(
        &mut self,
        section: &'static str,
        name: &str,
        outcome: &Outcome,
        note: Option<&str>,
    ) {
        self.n += 1;
        let counts = self.sections.entry(section).or_insert([0; 3]);
        // A failure may quote a runtime's error, which may quote a payload: one line, bounded.
        let one_line = |s: &str| {
            let s = s.replace('\n', " ");
            match s.char_indices().nth(MAX_LINE) {
                Some((i, _)) => format!("{}… ({} bytes)", &s[..i], s.len()),
                None => s,
            }
        };
        match outcome {
            Outcome::Pass => {
                counts[0] += 1;
                if self.tap {
                    println!("ok {} - {section}/{name}", self.n);
                } else {
                    println!("PASS  {section}/{name}");
                }
            }
            Outcome::Fail(why) => {
                counts[1] += 1;
                let what = match note {
                    Some(n) => format!("FAIL, known deviation: {n}"),
                    None => format!("FAIL: {}", one_line(why)),
                };
                self.not_passed.push((format!("{section}/{name}"), what));
                if self.tap {
                    println!("not ok {} - {section}/{name}", self.n);
                    println!("  # {}", one_line(why));
                    if let Some(n) = note {
                        println!("  # known deviation: {n}");
                    }
                } else {
                    println!("FAIL  {section}/{name}: {}", one_line(why));
                    if let Some(n) = note {
                        println!("      known deviation: {n}");
                    }
                }
            }
            Outcome::Skip(why) => {
                counts[2] += 1;
                let why = why.to_string();
                self.not_passed
                    .push((format!("{section}/{name}"), format!("skip: {why}")));
                if self.tap {
                    println!("ok {} - {section}/{name} # SKIP {}", self.n, one_line(&why));
                } else {
                    println!("SKIP  {section}/{name}: {}", one_line(&why));
                }
            }
        }
    }

    /// `[passed, failed, skipped]` per section.
    pub fn sections(&self) -> &BTreeMap<&'static str, [usize; 3]> {
        &self.sections
    }

    /// `(passed, failed, skipped)` over all sections.
    pub fn totals(&self) -> [usize; 3] {
        self.sections
            .values()
            .fold([0; 3], |a, c| [a[0] + c[0], a[1] + c[1], a[2] + c[2]])
    }

    /// The markdown table per section.
    pub fn table(&self) -> String {
        let mut t = String::from("| section | passed | failed | skipped |\n|---|---:|---:|---:|\n");
        for (s, c) in &self.sections {
            let _ = writeln!(t, "| {s} | {} | {} | {} |", c[0], c[1], c[2]);
        }
        let [p, f, k] = self.totals();
        let _ = writeln!(t, "| **total** | {p} | {f} | {k} |");
        t
    }

    /// Prints the table (as TAP comments in TAP mode) and the closing line.
    pub fn finish(&self) {
        for line in self.table().lines() {
            if self.tap {
                println!("# {line}");
            } else {
                println!("{line}");
            }
        }
        let [p, f, k] = self.totals();
        println!("{p} passed, {f} failed, {k} skipped");
    }
}
