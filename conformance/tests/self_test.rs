//! The suite must catch a broken runtime. `--self-test` runs each control case on hako (it
//! must pass) and against its mutant (hako behind the suite's mutant wrapper: `hostname`
//! reverted to the base config's, every hook dropped), which must fail; and with the
//! mutations switched off, every mutant survives and the run fails, naming each survivor.

mod common;

use anyhow::Result;
use common::{hako, line_for};
use std::path::Path;

const CASES: &str = "hostname/set,hooks/createRuntime/runs,hooks/poststop/runs";

fn suite(runtime: &Path, extra: &[&str], env: &[(&str, &str)]) -> Result<(i32, String)> {
    common::suite(runtime, CASES, extra, env)
}

#[test]
fn plain_hako_passes_the_control_cases() -> Result<()> {
    let (code, out) = suite(&hako()?, &[], &[])?;
    for case in CASES.split(',') {
        assert!(
            line_for(&out, case).starts_with("PASS"),
            "{case} on hako:\n{out}"
        );
    }
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.lines().last(),
        Some("3 passed, 0 failed, 0 skipped"),
        "{out}"
    );
    Ok(())
}

#[test]
fn the_self_test_kills_the_mutant_of_each_control_case() -> Result<()> {
    let (code, out) = suite(&hako()?, &["--self-test"], &[])?;
    assert!(
        out.contains("mutant killed (reverted hostname): hostname: want Some(\"conf-host\")"),
        "{out}"
    );
    assert_eq!(
        out.matches("mutant killed (reverted hooks)").count(),
        2,
        "{out}"
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.lines().last(),
        Some("3 mutants killed, 0 survived, 0 excused, 0 not judged (the plain run failed or skipped)"),
        "{out}"
    );
    Ok(())
}

#[test]
fn a_surviving_mutant_fails_the_self_test_by_name() -> Result<()> {
    let (code, out) = suite(
        &hako()?,
        &["--self-test", "--tap"],
        &[("HAKO_CONFORMANCE_MUTANT", "off")],
    )?;
    assert!(out.starts_with("TAP version 13\n1..3\n"), "{out}");
    for case in CASES.split(',') {
        assert!(
            out.contains(&format!("survived: {case}: the mutant")),
            "{case}:\n{out}"
        );
    }
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        out.lines().last(),
        Some("0 mutants killed, 3 survived, 0 excused, 0 not judged (the plain run failed or skipped)"),
        "{out}"
    );
    Ok(())
}
