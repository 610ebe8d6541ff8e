//! The suite must catch a broken runtime: wrappers around hako that lose `hostname` or every
//! hook before `create` must make those cases fail, while plain hako passes them.

use anyhow::{bail, Context, Result};
use std::os::unix::fs::PermissionsExt;
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

/// A wrapper script that runs `edit` (sed arguments) on the bundle's config.json before
/// handing every command to hako unchanged.
fn wrapper(dir: &Path, name: &str, edit: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    let script = format!(
        "#!/bin/sh\nprev=\nfor a in \"$@\"; do [ \"$prev\" = --bundle ] && bundle=$a; prev=$a; done\n\
         if [ -n \"$bundle\" ] && [ -f \"$bundle/config.json\" ]; then sed -i {edit} \"$bundle/config.json\"; fi\n\
         exec {} \"$@\"\n",
        hako()?.display()
    );
    std::fs::write(&path, script)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

/// Runs the suite on `runtime` with extra args, killed after two minutes: (exit code, stdout).
fn suite(runtime: &Path, extra: &[&str]) -> Result<(i32, String)> {
    let out = tempfile::tempfile()?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_hako-conformance"))
        .arg("--runtime")
        .arg(runtime)
        .args(["--filter", CASES])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
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
    let (code, out) = suite(&hako()?, &[])?;
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
fn a_runtime_that_drops_hostname_fails_the_hostname_case() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let broken = wrapper(dir.path(), "no-hostname", "'/^  \"hostname\": /d'")?;
    let (code, out) = suite(&broken, &[])?;
    assert!(line_for(&out, "hostname/set").starts_with("FAIL"), "{out}");
    assert!(
        line_for(&out, "hooks/createRuntime/runs").starts_with("PASS"),
        "{out}"
    );
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        out.lines().last(),
        Some("2 passed, 1 failed, 0 skipped"),
        "{out}"
    );
    Ok(())
}

#[test]
fn a_runtime_that_never_runs_hooks_fails_the_hook_cases_in_tap() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let broken = wrapper(dir.path(), "no-hooks", "'/^  \"hooks\": {/,/^  },$/d'")?;
    let (code, out) = suite(&broken, &["--tap"])?;
    assert!(out.starts_with("TAP version 13\n1..3\n"), "{out}");
    assert!(out.contains("not ok 1 - hooks/createRuntime/runs"), "{out}");
    assert!(out.contains("not ok 2 - hooks/poststop/runs"), "{out}");
    assert!(out.contains("\nok 3 - hostname/set"), "{out}");
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        out.lines().last(),
        Some("1 passed, 2 failed, 0 skipped"),
        "{out}"
    );
    Ok(())
}
