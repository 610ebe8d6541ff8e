//! What a user meets first, through the real binary: `hako --version` line for line as runc
//! prints it, `--debug` telling what `create` did and how long each step took, and
//! `hako setup ... --write` changing an engine's file only when asked, keeping a backup, and a
//! second time not at all. (The man pages and completions are checked against the
//! CLI in docgen's unit tests; the package itself by scripts/package-check.sh.)

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Result};
use hako_tests::{output_with_timeout, Bundle, Run, Runtime};

fn hako(args: &[&str]) -> Result<Run> {
    let mut cmd = Command::new(Runtime::Hako.binary());
    cmd.args(args);
    output_with_timeout(cmd, Duration::from_secs(30))
}

/// runc prints `runc version`, `commit:`, `spec:`, then what it was built with.
#[test]
fn version_is_laid_out_as_runc_lays_it_out() -> Result<()> {
    let r = hako(&["--version"])?.ok()?;
    let runc = Command::new("runc").arg("--version").output()?;
    let runc = String::from_utf8_lossy(&runc.stdout).into_owned();
    let keys = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| l.split([':', ' ']).next().unwrap_or_default().to_string())
            .take(3)
            .collect()
    };
    ensure!(
        keys(&runc) == ["runc", "commit", "spec"],
        "runc --version: {runc}"
    );
    ensure!(keys(&r.stdout) == ["hako", "commit", "spec"], "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    ensure!(
        lines[0] == format!("hako version {}", env!("CARGO_PKG_VERSION")),
        "{r:?}"
    );
    ensure!(lines[2] == "spec: 1.2.0", "{r:?}");
    ensure!(
        lines.get(3) == Some(&"seccomp: built-in compiler (no libseccomp)"),
        "{r:?}"
    );
    ensure!(
        hako(&["-v"])?.ok()?.stdout == r.stdout,
        "-v and --version differ"
    );
    Ok(())
}

fn read(path: &Path) -> Result<String> {
    Ok(std::fs::read_to_string(path)?)
}

/// Without `--write` nothing changes; with it the file is merged, the original kept next to it,
/// and a second run leaves both alone.
#[test]
fn setup_writes_only_when_asked_and_keeps_a_backup() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let conf = dir.path().join("daemon.json");
    let original = "{\n  \"debug\": true\n}\n";
    std::fs::write(&conf, original)?;
    let conf_arg = conf.to_string_lossy().into_owned();
    let base = [
        "setup",
        "docker",
        "--binary",
        "/usr/sbin/hako",
        "--config",
        &conf_arg,
    ];
    let printed = hako(&base)?.ok()?;
    ensure!(read(&conf)? == original, "printing changed the file");
    let snippet: serde_json::Value = serde_json::from_str(&printed.stdout)?;
    ensure!(
        snippet["runtimes"]["hako"]["path"] == "/usr/sbin/hako",
        "{printed:?}"
    );

    hako(&[&base[..], &["--write"]].concat())?.ok()?;
    let written: serde_json::Value = serde_json::from_str(&read(&conf)?)?;
    ensure!(written["debug"] == true, "lost a setting: {written}");
    ensure!(
        written["runtimes"] == snippet["runtimes"] && written["exec-opts"] == snippet["exec-opts"],
        "{written}"
    );
    let backups = || -> Result<Vec<std::path::PathBuf>> {
        Ok(std::fs::read_dir(dir.path())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().contains(".hako-backup-"))
            .collect())
    };
    let first = backups()?;
    ensure!(first.len() == 1, "backups: {first:?}");
    ensure!(
        read(&first[0])? == original,
        "the backup is not the original"
    );

    let after = read(&conf)?;
    let again = hako(&[&base[..], &["--write"]].concat())?.ok()?;
    ensure!(again.stdout.contains("already registers hako"), "{again:?}");
    ensure!(
        read(&conf)? == after && backups()? == first,
        "a second run changed something"
    );

    let refused = hako(&["setup", "kubernetes", "--write"])?;
    ensure!(
        refused.code != 0 && refused.stderr.contains("kubectl"),
        "{refused:?}"
    );
    Ok(())
}

/// `--debug`: one line per step of `create`, in order, each with its time; none without it.
#[test]
fn debug_tells_what_create_did_and_how_long_each_step_took() -> Result<()> {
    let b = Bundle::new(Runtime::Hako, "debug", &["sleep", "100"])?;
    b.write_config()?;
    let bundle = b.path().to_string_lossy().into_owned();
    let r = b
        .rt(&["--debug", "create", "--bundle", &bundle, &b.id])?
        .ok()?;
    let steps: Vec<&str> = r
        .stderr
        .lines()
        .filter_map(|l| l.split("msg=\"create: ").nth(1))
        .collect();
    let want = [
        "loaded and validated",
        "claimed the id",
        "made the cgroup",
        "cloned the init",
        "the init set up the rootfs",
        "saved the state",
        "done in",
    ];
    ensure!(steps.len() == want.len(), "{steps:#?}");
    for (step, want) in steps.iter().zip(want) {
        ensure!(
            step.starts_with(want),
            "{step:?} is not {want:?}: {steps:#?}"
        );
        // Each ends with its duration, as Rust's Debug prints one: `(1.2ms)`, `(850.3µs)`.
        ensure!(
            step.ends_with("s)\"") || step.contains(" in "),
            "no time in {step:?}"
        );
    }
    b.rt(&["delete", "--force", &b.id])?.ok()?;
    let quiet = Bundle::new(Runtime::Hako, "nodebug", &["sleep", "100"])?;
    let r = quiet.create()?.ok()?;
    ensure!(!r.stderr.contains("level=debug"), "{r:?}");
    Ok(())
}
