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
// runtime, one with a `path` is joined. runc 1.1.5 and crun 1.8.1 then make every mount of
// `mounts[]` under the rootfs in that namespace (runc first bind-mounts the rootfs onto itself
// and makes the caller's `/` a slave, recursively), create the devices in the /dev tmpfs, write
// sysctls through the /proc they mounted, chroot into the root, and leave every mount behind
// after `delete` (measured: runc's default spec leaves 17 mounts under the rootfs, crun's 16).
// In the namespace inherited from the caller runc refuses masked and read-only paths ("unable
// to restrict sys entries without a private MNT namespace"; crun applies them); in one joined
// by `path` both apply them (for runc a namespace given by path is the container's own). hako
// does what runc does, with runc's refusal, and unmounts everything it mounted (masks
// included) at `delete` and when `create` fails; with nothing to mount it mounts nothing
// (runc still binds the rootfs onto itself). Every test runs in a
// private mount namespace of its own (`unshare -m --propagation private`, or a
// [`NamespaceHolder`] whose namespace the runtime is run in with nsenter).
// ---------------------------------------------------------------------------------------------

/// The config without a mount namespace: the base config (runc's default spec) with
/// `namespaces`, without masked and read-only paths (refused by runc and hako when the
/// namespace is inherited) and without a
/// hostname unless there is a uts namespace (refused by hako, runc and crun: "unable to set
/// hostname without a private UTS namespace").
fn without_mount_ns(b: &mut Bundle, namespaces: serde_json::Value, tag_file: &str) -> Result<()> {
    std::fs::write(b.rootfs().join("whoami"), tag_file)?;
    let uts = namespaces
        .as_array()
        .is_some_and(|n| n.iter().any(|n| n["type"] == "uts"));
    b.config["linux"]["namespaces"] = namespaces;
    let linux = b.config["linux"].as_object_mut().context("linux")?;
    linux.remove("maskedPaths");
    linux.remove("readonlyPaths");
    if !uts {
        b.config
            .as_object_mut()
            .context("config")?
            .remove("hostname");
    }
    b.wrapper = ["unshare", "-m", "--propagation", "private"]
        .map(String::from)
        .to_vec();
    Ok(())
}

fn ns_link(pid: i64) -> Result<PathBuf> {
    Ok(std::fs::read_link(format!("/proc/{pid}/ns/mnt"))?)
}

/// Mount points under `path` in the mount namespace of process `pid`.
fn mounts_under_in(pid: i64, path: &Path) -> Result<Vec<String>> {
    let info = std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))?;
    let p = path.to_string_lossy();
    Ok(info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(p.as_ref()))
        .map(String::from)
        .collect())
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
    // Made in create's namespace, a private copy of ours: nothing reaches the test's.
    ensure!(!has_mounts_under(b.path())?, "a mount in our namespace");
    b.rt(&["delete", "--force", &b.id])?.ok()?;
    Ok(())
}
both!(no_mount_namespace_runs_in_callers);

/// runc's default spec (`runc spec`: its mounts, `root.readonly`) without the `mount`
/// namespace, masked and read-only paths runs, with /proc, the default devices in the /dev
/// tmpfs, /dev/pts, /sys and its cgroups, all made in the caller's mount namespace; after
/// `run`, none of them is left in it for hako. runc leaves every one behind (checked below),
/// and ignores `root.readonly` (the root stays writable; crun 1.8.1 too): the spec says the
/// root MUST be read-only, so only hako is held to it (applied to the rootfs's own bind).
fn default_spec_without_mount_namespace_runs(rt: Runtime) -> Result<()> {
    let script = "cat /proc/self/stat >/dev/null && echo proc; \
                  test -c /dev/null && echo hi > /dev/null && echo null; \
                  test -c /dev/urandom && test -d /dev/pts && test -d /dev/shm && echo dev; \
                  test -d /sys/kernel && test -d /sys/fs/cgroup/memory && echo sys; \
                  touch /x 2>/dev/null && echo rw || echo ro";
    let mut b = Bundle::new(rt, "nomntdef", &["sh", "-c", script])?;
    without_mount_ns(
        &mut b,
        json!([{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}]),
        "inside",
    )?;
    b.config["root"]["readonly"] = json!(true);
    b.config["mounts"].as_array_mut().context("mounts")?.push(
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                     "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    );
    let holder = NamespaceHolder::new()?;
    b.wrapper = holder.nsenter();
    let r = b.run()?.ok()?;
    let left = mounts_under_in(holder.pid(), b.path())?;
    match rt {
        Runtime::Hako => {
            ensure!(r.stdout == "proc\nnull\ndev\nsys\nro\n", "{r:?}");
            ensure!(left.is_empty(), "left mounted after run: {left:?}");
        }
        Runtime::Runc => {
            ensure!(r.stdout == "proc\nnull\ndev\nsys\nrw\n", "{r:?}");
            ensure!(
                left.len() > 10,
                "runc 1.1.5 leaves its mounts behind: {left:?}"
            );
        }
    }
    ensure!(
        !has_mounts_under(b.path())?,
        "a mount in the test's namespace"
    );
    Ok(())
}
both!(default_spec_without_mount_namespace_runs);

/// `create` mounts in the caller's namespace; `delete`, run from another mount namespace than
/// create's (a fresh copy of the test's), finds create's and unmounts every one of them: what
/// create recorded in the state directory. runc leaves them all.
fn delete_unmounts_what_create_mounted(rt: Runtime) -> Result<()> {
    let mut b = Bundle::new(rt, "nomntdel", &["sleep", "100"])?;
    without_mount_ns(&mut b, json!([{"type": "pid"}, {"type": "ipc"}]), "inside")?;
    let holder = NamespaceHolder::new()?;
    let unshare = std::mem::replace(&mut b.wrapper, holder.nsenter());
    b.create()?.ok()?;
    let made = mounts_under_in(holder.pid(), b.path())?;
    ensure!(
        made.len() >= 6,
        "proc, dev, dev/pts, shm, mqueue, sys: {made:?}"
    );
    b.wrapper = unshare;
    b.rt(&["delete", "--force", &b.id])?.ok()?;
    let left = mounts_under_in(holder.pid(), b.path())?;
    match rt {
        Runtime::Hako => ensure!(left.is_empty(), "left mounted after delete: {left:?}"),
        Runtime::Runc => ensure!(left == made, "runc 1.1.5 leaves them: {left:?}"),
    }
    Ok(())
}
both!(delete_unmounts_what_create_mounted);

/// A `create` that fails after some mounts (a bind whose source does not exist, last) leaves
/// none of them, nor any state. runc 1.1.5 leaves the ones it made (measured below).
fn failed_create_without_mount_namespace_unmounts(rt: Runtime) -> Result<()> {
    let mut b = Bundle::new(rt, "nomntfail", &["true"])?;
    without_mount_ns(&mut b, json!([{"type": "pid"}]), "inside")?;
    b.config["mounts"]
        .as_array_mut()
        .context("mounts")?
        .push(json!({"destination": "/mnt/x", "type": "bind",
                     "source": "/nonexistent-hako-source", "options": ["bind"]}));
    let holder = NamespaceHolder::new()?;
    b.wrapper = holder.nsenter();
    let r = b.create()?;
    // Failing on that mount: the ones before it were made.
    ensure!(
        r.code != 0 && r.stderr.contains("/nonexistent-hako-source"),
        "{r:?}"
    );
    let left = mounts_under_in(holder.pid(), b.path())?;
    match rt {
        Runtime::Hako => {
            ensure!(left.is_empty(), "left mounted by a failed create: {left:?}");
            ensure!(b.rt(&["state", &b.id])?.code != 0, "no state left");
        }
        Runtime::Runc => ensure!(!left.is_empty(), "runc 1.1.5 leaves them: {r:?}"),
    }
    Ok(())
}
both!(failed_create_without_mount_namespace_unmounts);

/// `linux.devices` and `linux.sysctl` without a mount namespace: the device in the /dev tmpfs,
/// the sysctl written through the container's /proc (runc and crun do both: measured).
fn devices_and_sysctl_without_mount_namespace(rt: Runtime) -> Result<()> {
    let mut b = Bundle::new(
        rt,
        "nomntdevs",
        &["sh", "-c", "ls -l /dev/fuse; cat /proc/sys/kernel/shmmax"],
    )?;
    without_mount_ns(&mut b, json!([{"type": "pid"}, {"type": "ipc"}]), "inside")?;
    b.config["linux"]["devices"] =
        json!([{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438}]);
    b.config["linux"]["sysctl"] = json!({"kernel.shmmax": "1000000"});
    let r = b.run()?.ok()?;
    ensure!(
        r.stdout.starts_with("crw-rw-rw-")
            && r.stdout.contains("10, 229")
            && r.stdout.ends_with("\n1000000\n"),
        "{r:?}"
    );
    Ok(())
}
both!(devices_and_sysctl_without_mount_namespace);

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

/// Masked and read-only paths are refused in a mount namespace inherited from the caller, in
/// runc's words, with nothing mounted and nothing left behind. crun 1.8.1 applies them in the
/// caller's namespace. (Joined by `path`, they are applied: see
/// [`joined_mount_namespace_masks_and_delete_unmounts`].)
fn no_mount_namespace_refuses_masked_and_readonly_paths(rt: Runtime) -> Result<()> {
    for (field, paths) in [
        ("maskedPaths", json!(["/proc/kcore"])),
        ("readonlyPaths", json!(["/proc/sys"])),
    ] {
        let mut b = Bundle::new(rt, "nomntrefuse", &["true"])?;
        without_mount_ns(&mut b, json!([{"type": "pid"}, {"type": "ipc"}]), "inside")?;
        b.config["linux"][field] = paths;
        let holder = NamespaceHolder::new()?;
        b.wrapper = holder.nsenter();
        let r = b.create()?;
        let want = "unable to restrict sys entries without a private MNT namespace";
        ensure!(r.code != 0 && r.stderr.contains(want), "{field}: {r:?}");
        if rt == Runtime::Hako {
            ensure!(
                r.stderr.contains(&format!("linux.{field}")),
                "{field}: {r:?}"
            );
        }
        ensure!(b.rt(&["state", &b.id])?.code != 0, "{field}: no state left");
        let left = mounts_under_in(holder.pid(), b.path())?;
        ensure!(left.is_empty(), "{field}: {left:?}");
    }
    Ok(())
}
both!(no_mount_namespace_refuses_masked_and_readonly_paths);

/// A process holding a private mount namespace of its own (a copy of the test's, so the
/// bundle is visible in it) until dropped.
struct NamespaceHolder(Child);

impl NamespaceHolder {
    fn new() -> Result<Self> {
        Self::with_setup("true")
    }

    /// A holder whose namespace `setup` (a shell command) changes first.
    fn with_setup(setup: &str) -> Result<Self> {
        let script = format!("{setup} && echo ready; exec cat");
        let mut child = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &script])
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

    /// A wrapper that runs the runtime in this namespace.
    fn nsenter(&self) -> Vec<String> {
        vec![
            "nsenter".into(),
            format!("--mount=/proc/{}/ns/mnt", self.pid()),
        ]
    }
}

impl Drop for NamespaceHolder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The propagation of the caller's `/` is left as it was: a shared `/` (its own peer group,
/// made in the holder's namespace) stays shared. runc 1.1.5 makes it a slave, then private
/// (its `rootfsParentMountPrivate`, measured). `rootfsPropagation` applies to the rootfs's own
/// mount, what the container sees as `/` (spec: it "sets the rootfs's mount propagation");
/// runc applies it to the caller's `/` and then makes that private, so its container's `/`
/// is not shared: only hako is held to it.
fn callers_root_propagation_is_kept(rt: Runtime) -> Result<()> {
    let mut b = Bundle::new(
        rt,
        "nomntprop",
        &["awk", "$5 == \"/\"", "/proc/self/mountinfo"],
    )?;
    without_mount_ns(&mut b, json!([{"type": "pid"}]), "inside")?;
    b.config["linux"]["rootfsPropagation"] = json!("shared");
    let holder = NamespaceHolder::with_setup("mount --make-shared /")?;
    let root_line = || -> Result<String> {
        let info = std::fs::read_to_string(format!("/proc/{}/mountinfo", holder.pid()))?;
        info.lines()
            .find(|l| l.split(' ').nth(4) == Some("/"))
            .map(String::from)
            .context("no /")
    };
    let before = root_line()?;
    ensure!(before.contains(" shared:"), "{before}");
    b.wrapper = holder.nsenter();
    let r = b.run()?.ok()?;
    let after = root_line()?;
    match rt {
        Runtime::Hako => {
            ensure!(
                after == before,
                "the caller's / changed: {before} -> {after}"
            );
            ensure!(
                r.stdout.contains(" shared:"),
                "the container's / is shared: {r:?}"
            );
        }
        Runtime::Runc => ensure!(!after.contains(" shared:"), "runc 1.1.5: {after}"),
    }
    Ok(())
}
both!(callers_root_propagation_is_kept);

/// A mount namespace given by `path` is joined: the init is in it, chrooted into the rootfs
/// (resolved in that namespace), with the mounts made there; `delete` (run from another
/// namespace) takes them down again. runc 1.1.5 joins it too (and makes its mounts and
/// pivot_root there, moving every process of that namespace into the container's root, and
/// leaves the mounts); runc and crun both fail to join another container's namespace, where
/// the rootfs path does not exist (`open /proc/self/mountinfo: no such file or directory`,
/// `chdir(.): No such file or directory`), so the holder here is a copy of the test's own
/// namespace.
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
    // runc's pivot_root moved the holder into the container's root too: its mountinfo no
    // longer shows the bundle's paths, so only hako's mounts are counted.
    if rt == Runtime::Hako {
        ensure!(!mounts_under_in(holder.pid(), b.path())?.is_empty());
    }
    b.rt(&["delete", "--force", &b.id])?.ok()?;
    if rt == Runtime::Hako {
        let left = mounts_under_in(holder.pid(), b.path())?;
        ensure!(left.is_empty(), "left in the joined namespace: {left:?}");
    }
    Ok(())
}
both!(joined_mount_namespace_is_entered);

/// Masked and read-only paths in a mount namespace joined by `path` are applied there: runc
/// 1.1.5 counts a namespace given by path as the container's own (`configs.NEWNS` is in its
/// list) and applies them, and crun 1.8.1 too (conformance case `namespaces/join/mount`, with
/// runc's default spec). hako makes them after chroot, in the joined namespace, on the
/// rootfs's own slave bind, records them with the other mounts, and `delete`, run from another
/// namespace, takes every one down; the image's files are untouched. runc pivots the joined
/// namespace into the container's root (the holder loses the bundle's paths: see
/// [`joined_mount_namespace_is_entered`]), so only what its container sees is checked.
fn joined_mount_namespace_masks_and_delete_unmounts(rt: Runtime) -> Result<()> {
    let script = "cat /etc/secret; ls -A /etc/sdir; echo .; \
                  touch /etc/ro/x 2>/dev/null && echo rw || echo ro";
    let holder = NamespaceHolder::new()?;
    let path = format!("/proc/{}/ns/mnt", holder.pid());
    let mut b = Bundle::new(rt, "joinmask", &["sh", "-c", script])?;
    without_mount_ns(
        &mut b,
        json!([{"type": "pid"}, {"type": "mount", "path": path}]),
        "joined",
    )?;
    let rootfs = b.rootfs();
    std::fs::write(rootfs.join("etc/secret"), "secret")?;
    std::fs::create_dir_all(rootfs.join("etc/sdir"))?;
    std::fs::write(rootfs.join("etc/sdir/file"), "secret")?;
    std::fs::create_dir_all(rootfs.join("etc/ro"))?;
    b.config["linux"]["maskedPaths"] = json!(["/etc/secret", "/etc/sdir"]);
    b.config["linux"]["readonlyPaths"] = json!(["/etc/ro"]);
    let r = b.run()?.ok()?;
    ensure!(r.stdout == ".\nro\n", "masked and read-only: {r:?}");
    if rt == Runtime::Hako {
        ensure!(
            mounts_under_in(holder.pid(), b.path())?.is_empty(),
            "left mounted after run"
        );
        // Created: the masks are there, in the joined namespace, until `delete`.
        b.config["process"]["args"] = json!(["sleep", "100"]);
        b.create()?.ok()?;
        let made = mounts_under_in(holder.pid(), b.path())?;
        // And recorded, each at its own mount point (with `delete`'s MNT_DETACH of the
        // rootfs's bind they would go too, but a record of everything is what `delete` trusts).
        let record = std::fs::read_to_string(b.state_root().join(&b.id).join("mounts"))?;
        for p in ["etc/secret", "etc/sdir", "etc/ro"] {
            let want = rootfs.join(p).to_string_lossy().into_owned();
            ensure!(made.contains(&want), "{p} not mounted: {made:?}");
            ensure!(
                record.lines().any(|l| l.ends_with(&format!(" {want}"))),
                "{p} not recorded: {record}"
            );
        }
        b.rt(&["delete", "--force", &b.id])?.ok()?;
        let left = mounts_under_in(holder.pid(), b.path())?;
        ensure!(left.is_empty(), "left in the joined namespace: {left:?}");
    }
    ensure!(std::fs::read_to_string(rootfs.join("etc/secret"))? == "secret");
    ensure!(rootfs.join("etc/sdir/file").exists() && !rootfs.join("etc/ro/x").exists());
    ensure!(
        !has_mounts_under(b.path())?,
        "a mount in the test's namespace"
    );
    Ok(())
}
both!(joined_mount_namespace_masks_and_delete_unmounts);

/// No mount namespace and nothing to mount (no `mounts`, masked or read-only paths, no
/// `root.readonly`): the container is in its caller's namespace and nothing is mounted in it
/// (runtime-spec config-linux.md: the namespace is inherited; conformance case
/// `namespaces/host/mount`). runc 1.1.5 binds the rootfs onto itself all the same and leaves
/// that bind after `delete` (measured; so does the /proc of the caller's it copies under it).
/// The default devices the spec requires are then made with mknod(2) in the image's own /dev,
/// as runc makes them there (measured: the six nodes and the /dev/fd, stdin, stdout, stderr
/// links stay in the image after `delete`; runc also replaces /dev/ptmx by a `pts/ptmx` link,
/// which hako makes only with a devpts at /dev/pts).
fn nothing_to_mount_mounts_nothing(rt: Runtime) -> Result<()> {
    let mut b = Bundle::new(rt, "nomntnone", &["sleep", "100"])?;
    without_mount_ns(&mut b, json!([{"type": "pid"}]), "inside")?;
    b.config["mounts"] = json!([]);
    // The caller's own /proc in the root, as a caller sharing its namespace would have it:
    // runc needs /proc/self/fd there (hako does not).
    let proc = b.rootfs().join("proc");
    let holder = NamespaceHolder::with_setup(&format!("mount -t proc proc '{}'", proc.display()))?;
    b.wrapper = holder.nsenter();
    let before = mounts_under_in(holder.pid(), b.path())?;
    b.create()?.ok()?;
    let made = mounts_under_in(holder.pid(), b.path())?;
    let pid = b.state()?["pid"].as_i64().context("pid")?;
    ensure!(ns_link(pid)? == ns_link(holder.pid())?, "in the caller's");
    match rt {
        Runtime::Hako => ensure!(made == before, "mounted: {made:?}"),
        Runtime::Runc => ensure!(
            made.len() > before.len() && made.contains(&b.rootfs().to_string_lossy().into_owned()),
            "runc 1.1.5 binds the rootfs: {made:?}"
        ),
    }
    b.rt(&["delete", "--force", &b.id])?.ok()?;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    for (name, rdev) in [("null", (1, 3)), ("zero", (1, 5)), ("tty", (5, 0))] {
        let m = std::fs::symlink_metadata(b.rootfs().join("dev").join(name))?;
        let dev = (
            nix::sys::stat::major(m.rdev()),
            nix::sys::stat::minor(m.rdev()),
        );
        ensure!(m.file_type().is_char_device() && dev == rdev, "/dev/{name}");
    }
    ensure!(std::fs::read_link(b.rootfs().join("dev/fd"))? == Path::new("/proc/self/fd"));
    let left = mounts_under_in(holder.pid(), b.path())?;
    if rt == Runtime::Hako {
        ensure!(left == before, "left after delete: {left:?}");
    }
    Ok(())
}
both!(nothing_to_mount_mounts_nothing);
