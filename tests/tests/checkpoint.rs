//! `checkpoint` and `restore` on this host, where Debian 12's CRIU 3.17 cannot start: its kernel
//! probe fails in vDSO handling on Linux 6.18 (`criu check`). What can be proved here is that the
//! error is CRIU's, passed through clearly with its log file, and that nothing is lost or left
//! behind: the container keeps running after a failed checkpoint, a failed restore leaves no
//! container, cgroup or mount. The round trips themselves run in the QEMU lane `vm/criu.sh`
//! (Debian 12's kernel, where that CRIU works), against hako and runc.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{ensure, Context, Result};
use hako_tests::{both, Bundle, Runtime};
use serde_json::{json, Value};

/// Whether CRIU works on this kernel (`criu check` exits 0). Where it does, these tests have
/// nothing to prove about CRIU failing, and the VM lane's round trips apply.
fn criu_works() -> bool {
    Command::new("criu")
        .arg("check")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// CRIU's own error lines in a log file, without timestamps.
fn criu_errors(log: &std::path::Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(log).with_context(|| format!("read {}", log.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| l.find("Error (").map(|i| l[i..].trim().to_string()))
        .collect())
}

fn checkpoint_failure_is_criu_s_and_keeps_the_container(rt: Runtime) -> Result<()> {
    if criu_works() {
        eprintln!("criu check passes on this kernel: vm/criu.sh covers checkpoint here");
        return Ok(());
    }
    let b = Bundle::new(rt, "ckfail", &["sleep", "1000"])?;
    b.create()?.ok()?;
    b.rt(&["start", &b.id])?.ok()?;
    let img = b.path().join("img");
    let work = b.path().join("work");
    let (img_s, work_s) = (img.to_string_lossy(), work.to_string_lossy());
    let r = b.rt(&[
        "checkpoint",
        "--image-path",
        &img_s,
        "--work-path",
        &work_s,
        &b.id,
    ])?;
    ensure!(
        r.code != 0,
        "checkpoint succeeded where CRIU cannot run: {r:?}"
    );
    // runc 1.1: "criu failed: type DUMP errno 0\nlog file: dump.log".
    ensure!(
        r.stderr.contains("criu failed: type DUMP") && r.stderr.contains("log file"),
        "{}",
        r.stderr
    );
    if rt == Runtime::Hako {
        // hako names the log by its full path and repeats what CRIU logged as its error.
        let log = work.join("dump.log");
        ensure!(r.stderr.contains(&*log.to_string_lossy()), "{}", r.stderr);
        let errors = criu_errors(&log)?;
        let last = errors.last().context("no error line in CRIU's log")?;
        ensure!(
            r.stderr.contains(last.as_str()),
            "{last:?} not in {}",
            r.stderr
        );
    }
    ensure!(b.status()? == "running", "status after a failed checkpoint");
    Ok(())
}
both!(checkpoint_failure_is_criu_s_and_keeps_the_container);

/// An image directory with only what checkpoint writes besides CRIU's images (runc's
/// `descriptors.json`), and `restore -d` of it into `b` (`global`: flags before the verb).
fn restore_empty_image(b: &Bundle, global: &[&str]) -> Result<(hako_tests::Run, PathBuf)> {
    let img = b.path().join("img");
    std::fs::create_dir_all(&img)?;
    std::fs::write(
        img.join("descriptors.json"),
        r#"["/dev/null","/dev/null","/dev/null"]"#,
    )?;
    let bundle = b.path().to_string_lossy().into_owned();
    let img_s = img.to_string_lossy().into_owned();
    let mut args = global.to_vec();
    args.extend([
        "restore",
        "-d",
        "--image-path",
        &img_s,
        "--bundle",
        &bundle,
        &b.id,
    ]);
    Ok((b.rt(&args)?, img))
}

/// Nothing of the container is left: no state directory (nor `state` answering), no cgroup, no
/// mount under the state root (CRIU's `criu-root` bind).
fn nothing_left(b: &Bundle) -> Result<()> {
    ensure!(b.rt(&["state", &b.id])?.code != 0, "a container was left");
    ensure!(
        !b.state_root().join(&b.id).exists(),
        "state directory left: {}",
        b.state_root().join(&b.id).display()
    );
    ensure!(
        b.cgroup_dirs().is_empty(),
        "cgroup left: {:?}",
        b.cgroup_dirs()
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")?;
    ensure!(
        !mounts.contains(&*b.state_root().to_string_lossy()),
        "a mount under the state root was left"
    );
    Ok(())
}

fn failed_restore_leaves_nothing(rt: Runtime) -> Result<()> {
    if criu_works() {
        eprintln!("criu check passes on this kernel: vm/criu.sh covers restore here");
        return Ok(());
    }
    let mut b = Bundle::new(rt, "rsfail", &["sleep", "1000"])?;
    // A limit, so that the cgroup is made and written before CRIU fails.
    b.config["linux"]["resources"]["pids"] = json!({"limit": 64});
    b.write_config()?;
    let (r, img) = restore_empty_image(&b, &[])?;
    ensure!(
        r.code != 0,
        "restore succeeded where CRIU cannot run: {r:?}"
    );
    ensure!(r.stderr.contains("criu failed"), "{}", r.stderr);
    if rt == Runtime::Hako {
        // The log outlives the failed container: it is in the image directory by default.
        let log = img.join("restore.log");
        ensure!(
            r.stderr.contains(&*log.to_string_lossy()) && log.exists(),
            "{}",
            r.stderr
        );
    }
    nothing_left(&b)
}
both!(failed_restore_leaves_nothing);

/// What CRIU cannot restore as `create` would make it is refused, naming the field or flag,
/// before anything exists (hako only: runc 1.1.5 predates `netDevices` and takes the rest to
/// CRIU).
#[test]
fn restore_refuses_what_it_cannot_honour() -> Result<()> {
    let cases: [(&str, &str, Value, &[&str]); 3] = [
        (
            "rsnetdev",
            "netDevices",
            json!({"hkrs0": {"name": "eth1"}}),
            &[],
        ),
        (
            "rslistener",
            "seccomp",
            json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "listenerPath": "/run/hako-test-no-listener.sock",
                "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_NOTIFY"}]
            }),
            &[],
        ),
        ("rsrootless", "", Value::Null, &["--rootless", "true"]),
    ];
    for (tag, field, value, global) in cases {
        let mut b = Bundle::new(Runtime::Hako, tag, &["sleep", "1000"])?;
        if !field.is_empty() {
            b.config["linux"][field] = value;
        }
        b.write_config()?;
        let (r, _) = restore_empty_image(&b, global)?;
        let named = match tag {
            "rsnetdev" => "linux.netDevices",
            "rslistener" => "linux.seccomp.listenerPath",
            _ => "--rootless",
        };
        ensure!(
            r.code != 0 && r.stderr.contains(&format!("restore cannot honour {named}")),
            "{tag}: {r:?}"
        );
        nothing_left(&b)?;
    }
    Ok(())
}

#[test]
fn missing_criu_is_named_and_features_say_so() -> Result<()> {
    let b = Bundle::new(Runtime::Hako, "nocriu", &["sleep", "1000"])?;
    b.create()?.ok()?;
    b.rt(&["start", &b.id])?.ok()?;
    let img = b.path().join("img");
    let r = b.rt(&[
        "--criu",
        "/nonexistent/criu",
        "checkpoint",
        "--image-path",
        &img.to_string_lossy(),
        &b.id,
    ])?;
    ensure!(
        r.code != 0 && r.stderr.contains("cannot run /nonexistent/criu"),
        "{r:?}"
    );
    ensure!(b.status()? == "running");
    ensure!(
        !img.join("descriptors.json").exists(),
        "wrote into the image directory without CRIU"
    );
    let key = "org.opencontainers.runc.checkpoint.enabled";
    let f = b.rt(&["--criu", "/nonexistent/criu", "features"])?.ok()?;
    let j: serde_json::Value = serde_json::from_str(&f.stdout)?;
    ensure!(j["annotations"][key] == "false", "{}", j["annotations"]);
    let f = b.rt(&["features"])?.ok()?;
    let j: serde_json::Value = serde_json::from_str(&f.stdout)?;
    let found = Command::new("sh")
        .args(["-c", "command -v criu"])
        .output()?
        .status
        .success();
    ensure!(
        j["annotations"][key].as_str() == Some(if found { "true" } else { "false" }),
        "{}",
        j["annotations"]
    );
    Ok(())
}

fn checkpoint_refuses_bad_flags_and_states(rt: Runtime) -> Result<()> {
    let b = Bundle::new(rt, "ckflags", &["sleep", "1000"])?;
    b.create()?.ok()?;
    // runc makes the image directory before it checks anything: give it one in the bundle.
    let img = b.path().join("img");
    let img = img.to_string_lossy();
    // A created container has nothing to dump (runc: "cannot be checkpointed in created state").
    let r = b.rt(&["checkpoint", "--image-path", &img, &b.id])?;
    ensure!(r.code != 0 && r.stderr.contains("created"), "{r:?}");
    b.rt(&["start", &b.id])?.ok()?;
    for bad in [
        ["--manage-cgroups-mode", "bogus"],
        ["--page-server", "nohostport"],
        ["--empty-ns", "bogus"],
    ] {
        let r = b.rt(&["checkpoint", "--image-path", &img, bad[0], bad[1], &b.id])?;
        ensure!(r.code != 0, "{bad:?} accepted: {r:?}");
    }
    ensure!(b.status()? == "running");
    Ok(())
}
both!(checkpoint_refuses_bad_flags_and_states);

/// A stand-in for `criu swrk` that answers the `VERSION` request (rpc.proto: type 10, success,
/// `criu_version` as field 10) with 2.9, then exits when its socket closes.
fn old_criu(dir: &std::path::Path) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("criu-2.9");
    std::fs::write(
        &path,
        "#!/bin/bash\n\
         # swrk FD (hako passes 3, runc 1.1.5 8): one request in (one datagram), the answer out\n\
         # in one write (through dd: printf flushes at the newline byte 0x0a).\n\
         dd bs=4096 count=1 <&\"$2\" >/dev/null 2>&1\n\
         printf '\\x08\\x0a\\x10\\x01\\x52\\x04\\x08\\x02\\x10\\x09' |\n\
             dd bs=10 count=1 iflag=fullblock >&\"$2\" 2>/dev/null\n\
         dd bs=4096 count=1 <&\"$2\" >/dev/null 2>&1\n",
    )?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

/// CRIU older than 3.0.0 is refused before anything is written or made, as runc refuses it
/// ("CRIU version 20900 must be 30000 or higher"): checkpoint leaves the container running and
/// writes no image, restore leaves nothing.
fn old_criu_is_refused(rt: Runtime) -> Result<()> {
    let b = Bundle::new(rt, "oldcriu", &["sleep", "1000"])?;
    let criu = old_criu(b.path())?;
    let criu_s = criu.to_string_lossy().into_owned();
    b.create()?.ok()?;
    b.rt(&["start", &b.id])?.ok()?;
    let img = b.path().join("ckimg");
    let img_s = img.to_string_lossy().into_owned();
    let r = b.rt(&[
        "--criu",
        &criu_s,
        "checkpoint",
        "--image-path",
        &img_s,
        &b.id,
    ])?;
    let said = match rt {
        Runtime::Hako => "is CRIU 2.9: checkpoint/restore needs CRIU 3.0.0 or newer",
        Runtime::Runc => "CRIU version 20900 must be 30000 or higher",
    };
    ensure!(r.code != 0 && r.stderr.contains(said), "{r:?}");
    ensure!(b.status()? == "running", "status after the refusal");
    ensure!(
        !img.join("descriptors.json").exists(),
        "wrote into the image directory"
    );
    b.rt(&["delete", "-f", &b.id])?.ok()?;
    let (r, _) = restore_empty_image(&b, &["--criu", &criu_s])?;
    ensure!(r.code != 0 && r.stderr.contains(said), "{r:?}");
    nothing_left(&b)
}
both!(old_criu_is_refused);

/// A stand-in for CRIU 3.17.1 on a kernel without userfaultfd: it answers `VERSION` and says
/// `lazy_pages: false` to a `FEATURE_CHECK` (rpc.proto: type 9, `criu_features` as field 8).
fn criu_without_lazy_pages(dir: &std::path::Path) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("criu-no-uffd");
    std::fs::write(
        &path,
        "#!/bin/bash\n\
         # swrk FD: the request's type (its second byte) picks the answer, written in one write.\n\
         req=$(dd bs=4096 count=1 <&\"$2\" 2>/dev/null | od -An -tx1 -N2 | tr -d ' \\n')\n\
         case $req in\n\
         080a) printf '\\x08\\x0a\\x10\\x01\\x52\\x06\\x08\\x03\\x10\\x11\\x20\\x01' ;;\n\
         0809) printf '\\x08\\x09\\x10\\x01\\x42\\x02\\x10\\x00' ;;\n\
         esac | dd bs=64 count=1 iflag=fullblock >&\"$2\" 2>/dev/null\n\
         dd bs=4096 count=1 <&\"$2\" >/dev/null 2>&1\n",
    )?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

/// `--lazy-pages` where CRIU says it cannot (no userfaultfd) is refused before anything is
/// dumped, naming the feature, and the container keeps running (runc 1.1.5 asks the same
/// `FEATURE_CHECK` and refuses too; its words end up behind "container still running").
fn lazy_pages_without_the_feature_are_refused(rt: Runtime) -> Result<()> {
    let b = Bundle::new(rt, "nolazy", &["sleep", "1000"])?;
    let criu = criu_without_lazy_pages(b.path())?;
    b.create()?.ok()?;
    b.rt(&["start", &b.id])?.ok()?;
    let img = b.path().join("ckimg");
    let r = b.rt(&[
        "--criu",
        &criu.to_string_lossy(),
        "checkpoint",
        "--lazy-pages",
        "--image-path",
        &img.to_string_lossy(),
        &b.id,
    ])?;
    ensure!(r.code != 0, "{r:?}");
    if rt == Runtime::Hako {
        ensure!(
            r.stderr.contains(
                "is missing features on this kernel: LazyPages (--lazy-pages: userfaultfd)"
            ),
            "{}",
            r.stderr
        );
    }
    ensure!(b.status()? == "running", "status after the refusal");
    ensure!(
        !img.join("descriptors.json").exists(),
        "wrote into the image directory"
    );
    Ok(())
}
both!(lazy_pages_without_the_feature_are_refused);
