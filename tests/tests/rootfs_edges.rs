//! Root-filesystem edge cases of issue 12: containers without a mount namespace of their own
//! (item 1), a `process.cwd` missing from the image (item 7), and `maskedPaths` that are
//! symlinks (item 16). Each runs on hako and on runc 1.1.5 (the oracle); crun 1.8.1's
//! behaviour on the same input, measured on this host with conformance/scripts/crun-hybrid.sh,
//! is recorded next to each test.
//!
//! Anything that could mount in the caller's mount namespace (runc does, without a mount
//! namespace) runs under `unshare -m --propagation private` ([`Bundle::wrapper`]): the host's
//! mounts are never touched.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

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

// ---------------------------------------------------------------------------------------------
// Item 1: no mount namespace of the container's own.
// runtime-spec config-linux.md: a namespace type that is not listed is inherited from the
// runtime, one with a `path` is joined. runc 1.1.5 and crun 1.8.1 then still make every mount
// of `mounts[]` in that namespace (runc also makes the caller's `/` a slave and bind-mounts the
// rootfs onto itself) and leave them behind after `run` returns (measured: proc, dev and sys
// under the rootfs); both chroot into the root. hako mounts nothing there and refuses what
// needs a mount (see `plan::without_mount_ns`), so its configs below have no `mounts`; runc
// gets a `/proc` mount, without which its init cannot start (`open /proc/self/fd`).
// ---------------------------------------------------------------------------------------------

/// The config without a mount namespace: no hostname (refused without a uts namespace by
/// hako, runc and crun: "hostname requires the UTS namespace"), no masked or read-only paths
/// (refused by hako and runc; crun 1.8.1 applies them in the caller's namespace), and, for
/// hako, no mounts.
fn without_mount_ns(b: &mut Bundle, namespaces: serde_json::Value, tag_file: &str) -> Result<()> {
    std::fs::write(b.rootfs().join("whoami"), tag_file)?;
    b.config["linux"]["namespaces"] = namespaces;
    b.config["linux"]["maskedPaths"] = json!([]);
    b.config["linux"]["readonlyPaths"] = json!([]);
    b.config
        .as_object_mut()
        .context("config")?
        .remove("hostname");
    b.config["mounts"] = match b.runtime {
        Runtime::Hako => json!([]),
        Runtime::Runc => json!([{"destination": "/proc", "type": "proc", "source": "proc"}]),
    };
    b.wrapper = ["unshare", "-m", "--propagation", "private"]
        .map(String::from)
        .to_vec();
    Ok(())
}

fn ns_link(pid: i64) -> Result<PathBuf> {
    Ok(std::fs::read_link(format!("/proc/{pid}/ns/mnt"))?)
}

/// `pid, network, ipc, uts` without `mount`: the container's init is in its caller's mount
/// namespace and sees the rootfs as `/` (chroot).
fn no_mount_namespace_runs_in_callers(rt: Runtime) -> Result<()> {
    let mut b = Bundle::new(rt, "nomntns", &["cat", "/whoami"])?;
    without_mount_ns(
        &mut b,
        json!([{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}]),
        "inside",
    )?;
    let caller = b.path().join("caller-ns");
    let script = r#"readlink /proc/self/ns/mnt > "$0" && exec "$@""#;
    b.wrapper.extend(
        ["sh", "-c", script]
            .map(String::from)
            .into_iter()
            .chain([caller.to_string_lossy().into_owned()]),
    );
    b.create()?.ok()?;
    // Read before the next command: each runs in a new namespace and rewrites the file.
    let caller_ns = std::fs::read_to_string(&caller)?;
    let pid = b.state()?["pid"].as_i64().context("pid")?;
    ensure!(
        ns_link(pid)? == Path::new(caller_ns.trim()),
        "the init is in the caller's mount namespace ({caller_ns:?}, init {:?})",
        ns_link(pid)?
    );
    ensure!(
        std::fs::read_to_string(format!("/proc/{pid}/root/whoami"))? == "inside",
        "the init's root is the rootfs"
    );
    ensure!(!has_mounts_under(b.path())?, "a mount in our namespace");
    if rt == Runtime::Hako {
        // Nothing written into the image's /dev either (no devices without a /dev tmpfs).
        ensure!(std::fs::read_dir(b.rootfs().join("dev"))?.next().is_none());
    }
    b.rt(&["delete", "--force", &b.id])?.ok()?;
    Ok(())
}
both!(no_mount_namespace_runs_in_callers);

/// `exec` into a container without a mount namespace runs in the container's root. runc 1.1.5
/// and crun 1.8.1 do not: their exec'd process joins the namespaces the config lists and keeps
/// the caller's root (measured: `cat /whoami` fails, the host's /tmp is listed), an escape
/// from the container's filesystem; only hako is held to the root.
fn exec_without_mount_namespace_stays_in_root(rt: Runtime) -> Result<()> {
    let mut b = Bundle::new(rt, "nomntexec", &["sh", "-c", "read x"])?;
    without_mount_ns(&mut b, json!([{"type": "pid"}]), "inside")?;
    b.create()?.ok()?;
    let r = b.rt(&["exec", &b.id, "cat", "/whoami"])?;
    if rt == Runtime::Hako {
        ensure!(r.code == 0 && r.stdout == "inside", "{r:?}");
    }
    b.rt(&["delete", "--force", &b.id])?.ok()?;
    Ok(())
}
both!(exec_without_mount_namespace_stays_in_root);

/// What needs a mount is refused without a mount namespace, each with the field it names and
/// nothing left behind. runc 1.1.5 refuses masked and read-only paths ("unable to restrict sys
/// entries without a private MNT namespace") but makes the other mounts in the caller's
/// namespace, where they outlive the container (and writes sysctls through the /proc it
/// mounted there); crun 1.8.1 makes all of them. hako fails closed, so hako only.
#[test]
fn no_mount_namespace_refuses_what_needs_a_mount() -> Result<()> {
    let cases = [
        (
            "mounts",
            json!({"mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}]}),
        ),
        ("linux.maskedPaths", json!({"maskedPaths": ["/proc/kcore"]})),
        (
            "linux.readonlyPaths",
            json!({"readonlyPaths": ["/proc/sys"]}),
        ),
        ("root.readonly", json!({"root": true})),
        (
            "linux.rootfsPropagation",
            json!({"rootfsPropagation": "private"}),
        ),
        // Written through /proc/sys, which nothing mounts without a mount namespace.
        (
            "linux.sysctl",
            json!({"sysctl": {"kernel.shmmax": "1000000"}}),
        ),
        (
            "linux.devices",
            json!({"devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]}),
        ),
    ];
    for (field, change) in cases {
        let mut b = Bundle::new(Runtime::Hako, "nomntrefuse", &["true"])?;
        without_mount_ns(&mut b, json!([{"type": "pid"}, {"type": "ipc"}]), "inside")?;
        let change = change.as_object().context("object")?;
        for (k, v) in change {
            match k.as_str() {
                "mounts" => b.config["mounts"] = v.clone(),
                "root" => b.config["root"]["readonly"] = v.clone(),
                _ => b.config["linux"][k] = v.clone(),
            }
        }
        let r = b.create()?;
        let want = format!("unable to apply {field} without a private mount namespace");
        ensure!(r.code != 0 && r.stderr.contains(&want), "{field}: {r:?}");
        ensure!(b.rt(&["state", &b.id])?.code != 0, "{field}: no state left");
        ensure!(std::fs::read_dir(b.rootfs().join("dev"))?.next().is_none());
        ensure!(
            !has_mounts_under(b.path())?,
            "{field}: a mount in our namespace"
        );
    }
    Ok(())
}

/// A process holding a private mount namespace of its own (a copy of the test's, so the
/// bundle is visible in it) until dropped.
struct NamespaceHolder(Child);

impl NamespaceHolder {
    fn new() -> Result<Self> {
        let mut child = Command::new("unshare")
            .args([
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                "echo ready; exec cat",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let out = child.stdout.take().context("stdout")?;
        let holder = NamespaceHolder(child);
        // The namespace exists once the shell speaks (the read ends if the holder dies).
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line)?;
        ensure!(line == "ready\n", "holder did not start");
        Ok(holder)
    }

    fn pid(&self) -> i64 {
        i64::from(self.0.id())
    }
}

impl Drop for NamespaceHolder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A mount namespace given by `path` is joined: the init is in it, chrooted into the rootfs
/// (resolved in that namespace). runc 1.1.5 joins it too (and makes its mounts and pivot_root
/// there, moving every process of that namespace into the container's root); runc and crun
/// both fail to join another container's namespace, where the rootfs path does not exist
/// (`open /proc/self/mountinfo: no such file or directory`, `chdir(.): No such file or
/// directory`), so the holder here is a copy of the test's own namespace.
fn joined_mount_namespace_is_entered(rt: Runtime) -> Result<()> {
    let holder = NamespaceHolder::new()?;
    let path = format!("/proc/{}/ns/mnt", holder.pid());
    let mut b = Bundle::new(rt, "joinmnt", &["true"])?;
    without_mount_ns(
        &mut b,
        json!([{"type": "pid"}, {"type": "mount", "path": path}]),
        "joined",
    )?;
    b.create()?.ok()?;
    let pid = b.state()?["pid"].as_i64().context("pid")?;
    ensure!(
        ns_link(pid)? == ns_link(holder.pid())?,
        "joined the holder's"
    );
    ensure!(std::fs::read_to_string(format!("/proc/{pid}/root/whoami"))? == "joined");
    b.rt(&["delete", "--force", &b.id])?.ok()?;
    Ok(())
}
both!(joined_mount_namespace_is_entered);
