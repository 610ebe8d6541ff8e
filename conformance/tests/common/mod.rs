//! What the suite's integration tests share: the hako binary and a bounded run of the suite.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The hako binary: `$HAKO_BIN`, else next to this crate's binary (building it if missing).
pub fn hako() -> Result<PathBuf> {
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

/// Runs the suite on `runtime` with the cases of `filter`, extra args and env, killed after two
/// minutes: (exit code, stdout).
pub fn suite(
    runtime: &Path,
    filter: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Result<(i32, String)> {
    let out = tempfile::tempfile()?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_hako-conformance"))
        .arg("--runtime")
        .arg(runtime)
        .args(["--filter", filter])
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

/// The output line of `case`.
pub fn line_for<'a>(out: &'a str, case: &str) -> &'a str {
    out.lines()
        .find(|l| l.ends_with(case) || l.contains(&format!("{case}:")))
        .unwrap_or("")
}
