//! Root-filesystem edge cases of issue 12: containers without a mount namespace of their own
//! (item 1), a `process.cwd` missing from the image (item 7), and `maskedPaths` that are
//! symlinks (item 16). Each runs on hako and on runc 1.1.5 (the oracle); crun 1.8.1's
//! behaviour on the same input, measured on this host with conformance/scripts/crun-hybrid.sh,
//! is recorded next to each test.
//!
//! Anything that could mount in the caller's mount namespace (runc does, without a mount
//! namespace) runs under `unshare -m --propagation private` ([`Bundle::wrapper`]): the host's
//! mounts are never touched.

use std::path::Path;

use anyhow::{ensure, Context, Result};
use hako_tests::{both, Bundle, Runtime};
use serde_json::json;

/// True if some mount point of the test's own mount namespace lies under `path`.
fn has_mounts_under(path: &Path) -> Result<bool> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    let p = path.to_string_lossy();
    Ok(info.lines().any(|l| {
        l.split(' ')
            .nth(4)
            .is_some_and(|m| m.starts_with(p.as_ref()))
    }))
}

// ---------------------------------------------------------------------------------------------
// Item 16: masked paths that are symlinks mask what they name, resolved inside the root.
// runc 1.1.5 and crun 1.8.1 mask the target of each of these links (measured: `cat` of the
// target prints nothing, mountinfo shows /dev/null or a read-only tmpfs on the target, inside
// the rootfs), and skip a dangling link.
// ---------------------------------------------------------------------------------------------

/// `/etc/secret-link -> /etc/secret` masked: /etc/secret reads empty. A dangling link in the
/// same list is skipped (runc and crun: ignored as missing).
fn masked_symlink_to_file_masks_target(rt: Runtime) -> Result<()> {
    let mut b = Bundle::new(rt, "masklnf", &["sh", "-c", "cat /etc/secret; echo ."])?;
    std::fs::write(b.rootfs().join("etc/secret"), "secret")?;
    std::os::unix::fs::symlink("/etc/secret", b.rootfs().join("etc/secret-link"))?;
    std::os::unix::fs::symlink("/nowhere", b.rootfs().join("etc/dangling"))?;
    b.config["linux"]["maskedPaths"] = json!(["/etc/dangling", "/etc/secret-link"]);
    let r = b.run()?.ok()?;
    ensure!(r.stdout == ".\n", "the link's target must be masked: {r:?}");
    ensure!(std::fs::read_to_string(b.rootfs().join("etc/secret"))? == "secret");
    ensure!(
        !has_mounts_under(b.path())?,
        "a mount left in our namespace"
    );
    Ok(())
}
both!(masked_symlink_to_file_masks_target);

/// A link to a directory: the directory is covered by an empty read-only tmpfs.
fn masked_symlink_to_dir_masks_target(rt: Runtime) -> Result<()> {
    let mut b = Bundle::new(
        rt,
        "masklnd",
        &["sh", "-c", "ls -A /etc/sdir; touch /etc/sdir/x || echo ro"],
    )?;
    std::fs::create_dir(b.rootfs().join("etc/sdir"))?;
    std::fs::write(b.rootfs().join("etc/sdir/file"), "secret")?;
    std::os::unix::fs::symlink("/etc/sdir", b.rootfs().join("etc/dir-link"))?;
    b.config["linux"]["maskedPaths"] = json!(["/etc/dir-link"]);
    let r = b.run()?.ok()?;
    ensure!(r.stdout == "ro\n", "an empty read-only directory: {r:?}");
    ensure!(b.rootfs().join("etc/sdir/file").exists());
    Ok(())
}
both!(masked_symlink_to_dir_masks_target);

/// Links that point out of the root, absolutely (to a host directory's path) or by climbing
/// with `..`, resolve inside it: the rootfs's copies are masked, the host's file is untouched
/// and gets no mount.
fn masked_symlink_escaping_root_resolves_inside(rt: Runtime) -> Result<()> {
    let host = tempfile::tempdir()?;
    std::fs::write(host.path().join("f"), "host")?;
    let host_file = host.path().join("f");
    let host_str = host_file.to_string_lossy().into_owned();
    let script = format!("cat {host_str}; cat /etc/inner; echo .");
    let mut b = Bundle::new(rt, "masklne", &["sh", "-c", &script])?;
    // The same absolute path inside the rootfs, with other content.
    let inside = b.rootfs().join(host_file.strip_prefix("/")?);
    std::fs::create_dir_all(inside.parent().context("parent")?)?;
    std::fs::write(&inside, "inside")?;
    std::fs::write(b.rootfs().join("etc/inner"), "inner")?;
    std::os::unix::fs::symlink(&host_file, b.rootfs().join("etc/abs-link"))?;
    std::os::unix::fs::symlink(
        "../../../../../../../../etc/inner",
        b.rootfs().join("etc/dotdot-link"),
    )?;
    b.config["linux"]["maskedPaths"] = json!(["/etc/abs-link", "/etc/dotdot-link"]);
    let r = b.run()?.ok()?;
    ensure!(
        r.stdout == ".\n",
        "both targets masked inside the root: {r:?}"
    );
    ensure!(std::fs::read_to_string(&host_file)? == "host");
    ensure!(!has_mounts_under(host.path())?, "a mount on the host path");
    Ok(())
}
both!(masked_symlink_escaping_root_resolves_inside);

// ---------------------------------------------------------------------------------------------
// Item 7: a missing process.cwd is created inside the root.
// ---------------------------------------------------------------------------------------------

/// `process.cwd` missing from the image is created, with its parents, mode 0755, owned by
/// root although the process runs as 1000 (runc: `MkdirAll(cwd, 0755)` after pivot_root,
/// before switching user; crun 1.8.1: the same, measured: `drwxr-xr-x 0 0`).
fn missing_cwd_is_created(rt: Runtime) -> Result<()> {
    let mut b = Bundle::new(
        rt,
        "cwdnew",
        &[
            "sh",
            "-c",
            "pwd; stat -c '%a %u %g' /work /work/a /work/a/b",
        ],
    )?;
    b.config["process"]["cwd"] = json!("/work/a/b");
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    // The modes below assume the usual umask (runc's mkdir is subject to it as well).
    let r = b.run()?.ok()?;
    ensure!(
        r.stdout == "/work/a/b\n755 0 0\n755 0 0\n755 0 0\n",
        "created as root, 0755: {r:?}"
    );
    Ok(())
}
both!(missing_cwd_is_created);

/// A cwd under an image symlink that climbs out of the root (`/evil -> /../../../..<host
/// dir>`) never creates anything on the host. hako resolves the link inside the root and
/// creates the directory there. runc 1.1.5 refuses (`mkdir /evil: file exists`: its MkdirAll
/// does not follow a dangling link) and crun 1.8.1 too (`chdir /evil/sub: No such file or
/// directory`); the spec does not say, and resolving inside the root is what hako does for
/// every path of an image, so only hako is held to creating it.
fn cwd_through_escaping_symlink_stays_inside(rt: Runtime) -> Result<()> {
    let host = tempfile::tempdir()?;
    let probe = host.path().join("probe");
    let mut b = Bundle::new(rt, "cwdesc", &["pwd"])?;
    let target = format!("/../../../../..{}", probe.to_string_lossy());
    std::os::unix::fs::symlink(&target, b.rootfs().join("evil"))?;
    b.config["process"]["cwd"] = json!("/evil/sub");
    let r = b.run()?;
    ensure!(!probe.exists(), "created on the host: {r:?}");
    if rt == Runtime::Hako {
        let r = r.ok()?;
        ensure!(
            r.stdout == format!("{}/sub\n", probe.to_string_lossy()),
            "{r:?}"
        );
        let inside = b.rootfs().join(probe.strip_prefix("/")?).join("sub");
        ensure!(inside.is_dir(), "created inside the rootfs");
    } else {
        ensure!(r.code != 0, "runc 1.1.5 refuses this cwd: {r:?}");
    }
    Ok(())
}
both!(cwd_through_escaping_symlink_stays_inside);
