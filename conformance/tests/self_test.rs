//! The suite must catch a broken runtime. `--self-test` runs each control case on hako (it
//! must pass) and against its mutant (hako behind the suite's mutant wrapper: `hostname`
//! reverted to the base config's, every hook dropped), which must fail; and with the
//! mutations switched off, every mutant survives and the run fails, naming each survivor.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const CASES: &str = "hostname/set,hooks/createRuntime/runs,hooks/poststop/runs";

/// The hako binary: `$HAKO_BIN`, else next to this crate's binary (building it if missing).
fn hako() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("HAKO_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_hako-conformance"));
    let dir = exe.parent().context("binary directory")?;
    let hako = dir.join("hako");
    if !hako.exists() {
        let target = dir.parent().context("target directory")?;
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = Command::new(cargo)
            .args(["build", "-p", "hako"])
            .env("CARGO_TARGET_DIR", target)
            .status()?
            .success();
        if !ok {
            bail!("cargo build -p hako failed");
        }
    }
    Ok(hako)
}

/// Runs the suite on `runtime` with extra args and env, killed after two minutes:
/// (exit code, stdout).
fn suite(runtime: &Path, extra: &[&str], env: &[(&str, &str)]) -> Result<(i32, String)> {
    let out = tempfile::tempfile()?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_hako-conformance"))
        .arg("--runtime")
        .arg(runtime)
        .args(["--filter", CASES])
        .args(extra)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(Stdio::null())
        .spawn()?;
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(s) => s?,
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            bail!("the suite did not finish within two minutes");
        }
    };
    use std::io::{Read, Seek};
    let mut f = out;
    f.rewind()?;
    let mut text = String::new();
    f.read_to_string(&mut text)?;
    Ok((status.code().unwrap_or(-1), text))
}

fn line_for<'a>(out: &'a str, case: &str) -> &'a str {
    out.lines()
        .find(|l| l.ends_with(case) || l.contains(&format!("{case}:")))
        .unwrap_or("")
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
