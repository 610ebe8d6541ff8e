//! `--self-test`: every case runs plainly on the real runtime (it must pass) and then against
//! its mutant (it must fail). A mutant that survives is a case that cannot fail the way its
//! name says: a failure of the suite. Cases that cannot be mutated are excused by name.

use crate::case::{Case, Outcome};
use crate::ctx::Ctx;
use crate::mutation::Mutation;
use crate::report::Report;
use anyhow::Result;
use std::path::Path;

/// The self-test's counts.
#[derive(Default)]
pub struct Tally {
    /// Mutants the suite caught.
    pub killed: usize,
    /// `(case, why)` of mutants that passed.
    pub survived: Vec<(String, String)>,
    /// `(case, reason)` of cases without a mutant.
    pub excused: Vec<(String, &'static str)>,
    /// Cases whose plain run did not pass or skip: their mutant was not judged.
    pub not_judged: usize,
}

impl Tally {
    /// The closing line.
    pub fn summary(&self) -> String {
        format!(
            "{} mutants killed, {} survived, {} excused, {} not judged (the plain run failed or skipped)",
            self.killed,
            self.survived.len(),
            self.excused.len(),
            self.not_judged
        )
    }

    /// Prints the survivors, the excuses and the closing line.
    pub fn finish(&self) {
        for (name, why) in &self.survived {
            println!("survived: {name}: {why}");
        }
        for (name, why) in &self.excused {
            println!("excused: {name}: {why}");
        }
        println!("{}", self.summary());
    }
}

/// Runs case `c` on `ctx`: a panic or an error is a failure; in a rootless run, a case the
/// user's containers cannot pass skips with the probe that says why.
pub fn outcome(ctx: &Ctx, c: &Case) -> Outcome {
    if let Some(skipped) = ctx.rootless_skip(c) {
        return skipped;
    }
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (c.body)(ctx)))
        .unwrap_or_else(|_| Ok(Outcome::Fail("the case panicked".into())))
        .unwrap_or_else(|e| Outcome::Fail(format!("{e:#}")))
}

/// Runs every case plainly on `plain` (recorded in `report`) and its mutant on `mutant`,
/// whose runtime is the mutant wrapper reading the case name from `spec`.
pub fn run(
    plain: &Ctx,
    mutant: &Ctx,
    spec: &Path,
    cases: &[Case],
    report: &mut Report,
) -> Result<Tally> {
    let mut t = Tally::default();
    let applied = spec.with_extension("applied");
    for c in cases {
        let name = c.full_name();
        let first = outcome(plain, c);
        report.record(c.section, &c.name, &first, c.note_for(plain.rt.kind));
        if let Mutation::Excused(why) = c.mutation {
            t.excused.push((name, why));
            continue;
        }
        if first != Outcome::Pass {
            t.not_judged += 1;
            continue;
        }
        if let Some(why) = plain.rootless_excuse(c) {
            t.excused.push((name, why));
            continue;
        }
        std::fs::write(spec, &name)?;
        let _ = std::fs::remove_file(&applied);
        let second = outcome(mutant, c);
        let what = std::fs::read_to_string(&applied).unwrap_or_default();
        let what = what.lines().collect::<Vec<_>>().join("; ");
        match second {
            Outcome::Fail(why) if !what.is_empty() => {
                t.killed += 1;
                println!("      mutant killed ({what}): {}", one_line(&why, 160));
            }
            other => {
                let why = match (&other, what.is_empty()) {
                    (_, true) => format!(
                        "the mutant ({}) was never applied: nothing in what this case does differs from the base",
                        c.mutation.describe()
                    ),
                    (Outcome::Skip(p), false) => format!("the mutant ({what}) made it skip: {p}"),
                    _ => format!("the case passed against the mutant ({what})"),
                };
                println!("      MUTANT SURVIVED: {why}");
                t.survived.push((name, why));
            }
        }
    }
    Ok(t)
}

fn one_line(s: &str, max: usize) -> String {
    let s = s.replace('\n', " ");
    if s.chars().count() <= max {
        return s;
    }
    let cut: String = s.chars().take(max).collect();
    format!("{cut}…")
}
