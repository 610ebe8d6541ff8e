//! Rootless containers (issue 14): hako run by a real unprivileged user, side by side with runc
//! run by the same user as the oracle.
//!
//! Each test makes its own user (`useradd`, a unique name per run), its subordinate ids
//! (`usermod --add-subuids/--add-subgids`, which edits /etc/subuid and /etc/subgid under their
//! lock), its `XDG_RUNTIME_DIR` and its bundle, and removes all of it in `Drop` guards, so a
//! failing test leaves nothing behind. The runtime is called through
//! `setpriv --reuid --regid --init-groups` with a clean environment, as a login would give it.
//! The bundle's config is the runtime's own `spec --rootless`, made by the user (runc's for both
//! runtimes, so both run the same config).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hako_tests::{busybox_rootfs, output_with_timeout, runc_available, Run, Runtime};
use serde_json::{json, Value};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Size of each test user's subordinate range.
const SUB_COUNT: u32 = 65536;

fn check(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("{cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// An unprivileged user made for one test, with its own runtime dir; removed on drop.
struct TestUser {
    name: String,
    uid: u32,
    gid: u32,
    /// Its subordinate range's start (uids and gids alike), if it was given one.
    sub_start: Option<u32>,
    /// Holds its `XDG_RUNTIME_DIR` and bundles.
    home: tempfile::TempDir,
}

impl TestUser {
    /// A new user; with `subordinate`, a range of 65536 subordinate uids and gids.
    fn new(subordinate: bool) -> Result<Self> {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let name = format!("hkr{pid}x{n}");
        // No automatic subordinate ranges (login.defs SUB_UID_COUNT): the test gives its own.
        check(Command::new("useradd").args([
            "-M",
            "-s",
            "/usr/sbin/nologin",
            "-K",
            "SUB_UID_COUNT=0",
            "-K",
            "SUB_GID_COUNT=0",
            &name,
        ]))?;
        let home = match tempfile::Builder::new().prefix("hako-rootless-").tempdir() {
            Ok(h) => h,
            Err(e) => {
                let _ = Command::new("userdel").arg(&name).output();
                return Err(e.into());
            }
        };
        let mut user = TestUser {
            uid: 0,
            gid: 0,
            name,
            sub_start: None,
            home,
        };
        user.uid = id_of(&user.name, "-u")?;
        user.gid = id_of(&user.name, "-g")?;
        std::os::unix::fs::chown(user.home.path(), Some(user.uid), Some(user.gid))?;
        std::fs::create_dir(user.xdg())?;
        std::os::unix::fs::chown(user.xdg(), Some(user.uid), Some(user.gid))?;
        std::fs::set_permissions(user.xdg(), std::fs::Permissions::from_mode(0o700))?;
        if subordinate {
            // Unique per process and test, away from the ranges a distribution hands out.
            let start = 1_000_000 + (pid % 2000) * 16 * SUB_COUNT + (n % 16) * SUB_COUNT;
            let range = format!("{start}-{}", start + SUB_COUNT - 1);
            check(Command::new("usermod").args([
                "--add-subuids",
                &range,
                "--add-subgids",
                &range,
                &user.name,
            ]))?;
            user.sub_start = Some(start);
        }
        Ok(user)
    }

    fn xdg(&self) -> PathBuf {
        self.home.path().join("xdg")
    }

    /// `program` as this user, as a login would start it: clean environment, its `HOME`,
    /// `USER` and `XDG_RUNTIME_DIR`, cwd `dir`, stdin /dev/null.
    fn command(&self, program: &Path, dir: &Path) -> Command {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--init-groups")
            .arg(program)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("HOME", self.home.path())
            .env("USER", &self.name)
            .env("XDG_RUNTIME_DIR", self.xdg())
            .current_dir(dir)
            .stdin(Stdio::null());
        c
    }

    /// The runtime as this user (see [`TestUser::command`]).
    fn cmd(&self, runtime: Runtime, dir: &Path) -> Command {
        self.command(&runtime.binary(), dir)
    }

    /// Runs the runtime as this user with `args`, bounded in time.
    fn rt(&self, runtime: Runtime, dir: &Path, args: &[&str]) -> Result<Run> {
        let mut c = self.cmd(runtime, dir);
        c.args(args);
        output_with_timeout(c, Duration::from_secs(60))
    }

    /// A busybox bundle owned by this user, with `runc spec --rootless` (made by the user) and
    /// `args` as the process.
    fn bundle(&self, tag: &str, args: &[&str]) -> Result<RootlessBundle> {
        let dir = self.home.path().join(tag);
        busybox_rootfs(&dir.join("rootfs"))?;
        check(
            Command::new("chown")
                .arg("-R")
                .arg(format!("{}:{}", self.uid, self.gid))
                .arg(&dir),
        )?;
        self.rt(Runtime::Runc, &dir, &["spec", "--rootless"])?
            .ok()?;
        let path = dir.join("config.json");
        let mut config: Value = serde_json::from_slice(&std::fs::read(&path)?)?;
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!(args);
        Ok(RootlessBundle { dir, config })
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        // Whatever the user still runs (a test that failed midway) goes first: userdel refuses
        // a logged-in user, and nothing of the test may outlive it.
        let _ = Command::new("pkill")
            .args(["-KILL", "-U", &self.uid.to_string()])
            .output();
        if let Some(start) = self.sub_start {
            let range = format!("{start}-{}", start + SUB_COUNT - 1);
            let _ = Command::new("usermod")
                .args(["--del-subuids", &range, "--del-subgids", &range, &self.name])
                .output();
        }
        let _ = Command::new("userdel").arg(&self.name).output();
    }
}

fn id_of(name: &str, flag: &str) -> Result<u32> {
    let out = Command::new("id").args([flag, name]).output()?;
    Ok(String::from_utf8(out.stdout)?.trim().parse()?)
}

/// A bundle directory of a [`TestUser`] (removed with the user's home).
struct RootlessBundle {
    dir: PathBuf,
    config: Value,
}

impl RootlessBundle {
    fn write(&self, user: &TestUser) -> Result<()> {
        let path = self.dir.join("config.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&self.config)?)?;
        std::os::unix::fs::chown(&path, Some(user.uid), Some(user.gid))?;
        Ok(())
    }
}

/// The runtimes to compare: hako, and runc when installed.
fn runtimes() -> Vec<Runtime> {
    let mut r = vec![Runtime::Hako];
    if runc_available() {
        r.push(Runtime::Runc);
    } else {
        eprintln!("runc not installed: hako only");
    }
    r
}

/// The default state root of `runtime` for a user: `$XDG_RUNTIME_DIR/<name>`.
fn default_root(user: &TestUser, runtime: Runtime) -> PathBuf {
    user.xdg().join(match runtime {
        Runtime::Hako => "hako",
        Runtime::Runc => "runc",
    })
}

fn status(user: &TestUser, rt: Runtime, dir: &Path, id: &str) -> Result<String> {
    let r = user.rt(rt, dir, &["state", id])?.ok()?;
    let v: Value = serde_json::from_str(&r.stdout)?;
    Ok(v["status"].as_str().unwrap_or_default().to_string())
}

#[test]
fn lifecycle_as_an_unprivileged_user() -> Result<()> {
    for rt in runtimes() {
        let user = TestUser::new(false)?;
        let b = user.bundle("b", &["sleep", "1000"])?;
        b.write(&user)?;
        let id = format!("life-{}", rt.name());
        let d = &b.dir;
        let r = user.rt(rt, d, &["create", &id])?;
        assert_eq!(r.code, 0, "{rt:?} create: {r:?}");
        // The default root is the user's runtime dir, entered by nobody else.
        let root = default_root(&user, rt);
        assert!(root.join(&id).is_dir(), "{rt:?}: no {}", root.display());
        let meta = std::fs::metadata(&root)?;
        assert_eq!(meta.uid(), user.uid, "{rt:?}");
        assert_eq!(meta.mode() & 0o077, 0, "{rt:?}: mode {:o}", meta.mode());
        assert_eq!(status(&user, rt, d, &id)?, "created", "{rt:?}");
        user.rt(rt, d, &["start", &id])?.ok()?;
        assert_eq!(status(&user, rt, d, &id)?, "running", "{rt:?}");
        let r = user.rt(rt, d, &["exec", &id, "id", "-u"])?.ok()?;
        assert_eq!(r.stdout.trim(), "0", "{rt:?}: root in its user namespace");
        let r = user
            .rt(rt, d, &["exec", &id, "cat", "/proc/self/uid_map"])?
            .ok()?;
        let map: Vec<&str> = r.stdout.split_whitespace().collect();
        assert_eq!(map, ["0", &user.uid.to_string(), "1"], "{rt:?}");
        if rt == Runtime::Hako {
            // runc 1.1 cannot list a container without a cgroup ("unable to get all container
            // pids"); hako lists its pid namespace.
            let r = user.rt(rt, d, &["ps", "--format", "json", &id])?.ok()?;
            let pids: Vec<i32> = serde_json::from_str(&r.stdout)?;
            assert_eq!(pids.len(), 1, "{r:?}");
            let r = user.rt(rt, d, &["list", "-q"])?.ok()?;
            assert_eq!(r.stdout.trim(), id);
        }
        user.rt(rt, d, &["kill", &id, "KILL"])?.ok()?;
        let r = user.rt(rt, d, &["delete", "--force", &id])?;
        assert_eq!(r.code, 0, "{rt:?} delete: {r:?}");
        assert!(!root.join(&id).exists(), "{rt:?}: state left");
    }
    Ok(())
}

/// `process.oomScoreAdj` reaches the init and an exec'd process although both become
/// non-dumpable (their /proc files then root's, which the container's root may not write): the
/// init's is written by `create` before it is released, an exec'd process's before it becomes
/// non-dumpable. Raising it needs no privilege.
#[test]
fn oom_score_adj_is_set_as_an_unprivileged_user() -> Result<()> {
    for rt in runtimes() {
        let user = TestUser::new(false)?;
        let mut b = user.bundle("b", &["sleep", "1000"])?;
        b.config["process"]["oomScoreAdj"] = json!(500);
        b.write(&user)?;
        let id = format!("oom-{}", rt.name());
        let d = &b.dir;
        let r = user.rt(rt, d, &["run", "--detach", &id])?;
        assert_eq!(r.code, 0, "{rt:?}: {r:?}");
        let r = user.rt(rt, d, &["exec", &id, "cat", "/proc/1/oom_score_adj"])?;
        assert_eq!(r.stdout.trim(), "500", "{rt:?}: {r:?}");
        let mut process = b.config["process"].clone();
        process["args"] = json!(["cat", "/proc/self/oom_score_adj"]);
        process["oomScoreAdj"] = json!(700);
        let path = d.join("process.json");
        std::fs::write(&path, serde_json::to_vec(&process)?)?;
        let p = path.to_string_lossy().into_owned();
        let r = user.rt(rt, d, &["exec", "--process", &p, &id])?;
        // runc 1.1 gives an exec'd process the container's value, not its process.json's.
        let want = if rt == Runtime::Hako { "700" } else { "500" };
        assert_eq!(r.stdout.trim(), want, "{rt:?}: {r:?}");
        user.rt(rt, d, &["delete", "--force", &id])?.ok()?;
    }
    Ok(())
}

/// `linux.timeOffsets` as an unprivileged user (hako only: runc 1.1 has no time namespace): the
/// offsets go through /proc/self/timens_offsets, which the init writes while still dumpable.
#[test]
fn time_offsets_as_an_unprivileged_user() -> Result<()> {
    let user = TestUser::new(false)?;
    let mut b = user.bundle("b", &["cat", "/proc/uptime"])?;
    if let Some(a) = b.config["linux"]["namespaces"].as_array_mut() {
        a.push(json!({"type": "time"}));
    }
    b.config["linux"]["timeOffsets"] = json!({"boottime": {"secs": 86400 * 365, "nanosecs": 0}});
    b.write(&user)?;
    let r = user.rt(Runtime::Hako, &b.dir, &["run", "time-hako"])?;
    assert_eq!(r.code, 0, "{r:?}");
    let up: f64 = r
        .stdout
        .split_whitespace()
        .next()
        .context("uptime")?
        .parse()?;
    assert!(up >= 86400.0 * 365.0, "{r:?}");
    Ok(())
}

/// `exec` right after `start` finds the init: `start` returns only once the init has exec'd.
/// Before its exec the init is non-dumpable and its /proc/<pid>/ns files root's, which the user
/// cannot open (EACCES); without that wait about 1 in 15 of these execs failed (measured).
#[test]
fn exec_right_after_start_finds_the_init() -> Result<()> {
    for rt in runtimes() {
        let user = TestUser::new(false)?;
        let b = user.bundle("b", &["sleep", "1000"])?;
        b.write(&user)?;
        let d = &b.dir;
        for i in 0..40 {
            let id = format!("race-{}-{i}", rt.name());
            user.rt(rt, d, &["create", &id])?.ok()?;
            user.rt(rt, d, &["start", &id])?.ok()?;
            let r = user.rt(rt, d, &["exec", &id, "true"])?;
            user.rt(rt, d, &["delete", "--force", &id])?.ok()?;
            assert_eq!(r.code, 0, "{rt:?} round {i}: {r:?}");
        }
    }
    Ok(())
}

/// A tmpfs mounted (as root) with the flags a user namespace locks, unmounted on drop.
struct LockedMount(PathBuf);

impl Drop for LockedMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).output();
    }
}

/// In a user namespace the kernel locks the read-only, nosuid, nodev, noexec and atime flags of
/// every mount it inherited (mount_namespaces(7), "MS_LOCKED"): a bind remount that drops one is
/// EPERM. A bind of a nosuid,nodev,noexec,noatime host directory remounted read-only must keep
/// them, as runc's `getUnprivilegedMountFlags` keeps them; the container sees all five. hako
/// only: runc 1.1.5 fails this config (measured: "mount ... (via /proc/self/fd/6), flags:
/// 0x5021: operation not permitted", the remount without the locked flags).
#[test]
fn a_bind_of_a_locked_mount_is_remounted_read_only() -> Result<()> {
    {
        let rt = Runtime::Hako;
        let user = TestUser::new(false)?;
        let dir = user.home.path().join("locked");
        std::fs::create_dir(&dir)?;
        check(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", "nosuid,nodev,noexec,noatime,mode=0755"])
                .arg("tmpfs")
                .arg(&dir),
        )?;
        let _mounted = LockedMount(dir.clone());
        std::fs::write(dir.join("f"), "locked\n")?;
        let mut b = user.bundle(
            "b",
            &[
                "sh",
                "-c",
                "cat /mnt/f; grep ' /mnt ' /proc/self/mountinfo; touch /mnt/g",
            ],
        )?;
        if let Some(m) = b.config["mounts"].as_array_mut() {
            m.push(json!({"destination": "/mnt", "type": "bind", "source": dir,
                          "options": ["rbind", "ro"]}));
        }
        b.write(&user)?;
        let id = format!("locked-{}", rt.name());
        let r = user.rt(rt, &b.dir, &["run", &id])?;
        // touch fails: read-only.
        assert_eq!(r.code, 1, "{rt:?}: {r:?}");
        let mut lines = r.stdout.lines();
        assert_eq!(lines.next(), Some("locked"), "{rt:?}: {r:?}");
        let info = lines.next().context("no /mnt in mountinfo")?;
        let opts: Vec<&str> = info
            .split_whitespace()
            .nth(5)
            .unwrap_or("")
            .split(',')
            .collect();
        for flag in ["ro", "nosuid", "nodev", "noexec", "noatime"] {
            assert!(opts.contains(&flag), "{rt:?}: {flag} not in {info}");
        }
        assert!(r.stderr.contains("Read-only file system"), "{rt:?}: {r:?}");
    }
    Ok(())
}

#[test]
fn subordinate_ranges_are_mapped_through_newuidmap() -> Result<()> {
    for rt in runtimes() {
        let user = TestUser::new(true)?;
        let sub = user.sub_start.context("subordinate ids")?;
        let mut b = user.bundle(
            "b",
            &[
                "cat",
                "/proc/self/uid_map",
                "/proc/self/gid_map",
                "/proc/self/setgroups",
            ],
        )?;
        for (key, own) in [("uidMappings", user.uid), ("gidMappings", user.gid)] {
            b.config["linux"][key] = json!([
                {"containerID": 0, "hostID": own, "size": 1},
                {"containerID": 1, "hostID": sub, "size": SUB_COUNT},
            ]);
        }
        b.write(&user)?;
        let id = format!("sub-{}", rt.name());
        let r = user.rt(rt, &b.dir, &["run", &id])?;
        assert_eq!(r.code, 0, "{rt:?}: {r:?}");
        let words: Vec<&str> = r.stdout.split_whitespace().collect();
        let (uid, gid) = (user.uid.to_string(), user.gid.to_string());
        let (sub, count) = (sub.to_string(), SUB_COUNT.to_string());
        let want = [
            "0", &uid, "1", "1", &sub, &count, "0", &gid, "1", "1", &sub, &count, "allow",
        ];
        assert_eq!(words, want, "{rt:?}");
    }
    Ok(())
}

#[test]
fn a_range_not_in_subuid_is_refused_naming_the_file() -> Result<()> {
    for rt in runtimes() {
        let user = TestUser::new(false)?;
        let mut b = user.bundle("b", &["true"])?;
        b.config["linux"]["uidMappings"] = json!([
            {"containerID": 0, "hostID": user.uid, "size": 1},
            {"containerID": 1, "hostID": 3_000_000_000u32, "size": 10},
        ]);
        b.write(&user)?;
        let id = format!("nosub-{}", rt.name());
        let r = user.rt(rt, &b.dir, &["run", &id])?;
        assert_ne!(r.code, 0, "{rt:?}: {r:?}");
        if rt == Runtime::Hako {
            assert!(
                r.stderr.contains("uid mapping 3000000000+10")
                    && r.stderr.contains(&format!("user {}", user.name))
                    && r.stderr.contains("/etc/subuid"),
                "{r:?}"
            );
        }
        // Nothing of the failed container stays.
        let left = std::fs::read_dir(default_root(&user, rt))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(left, 0, "{rt:?}");
    }
    Ok(())
}

#[test]
fn a_limit_without_a_cgroup_is_refused_naming_the_field() -> Result<()> {
    if !v1_host("an unprivileged user could be given a delegated cgroup v2 subtree") {
        return Ok(());
    }
    for rt in runtimes() {
        let user = TestUser::new(false)?;
        let mut b = user.bundle("b", &["true"])?;
        let id = format!("limit-{}-{}", std::process::id(), rt.name());
        // No cgroupsPath: the cgroup would be <our pids cgroup>/<id>, which the user may not make.
        let would_be = own_cgroup("pids")?.join(&id);
        b.config["linux"]["resources"] = json!({"pids": {"limit": 10}});
        b.write(&user)?;
        let r = user.rt(rt, &b.dir, &["run", &id])?;
        assert_ne!(r.code, 0, "{rt:?}: {r:?}");
        let want = match rt {
            Runtime::Hako => "cannot set linux.resources.pids.limit",
            Runtime::Runc => "cannot set pids limit",
        };
        assert!(r.stderr.contains(want), "{rt:?}: {r:?}");
        assert!(!would_be.exists(), "{}", would_be.display());
        // Without a limit the same container runs, in no cgroup of its own.
        b.config["linux"]["resources"] = json!({});
        b.write(&user)?;
        let r = user.rt(rt, &b.dir, &["run", &id])?;
        assert_eq!(r.code, 0, "{rt:?}: {r:?}");
        assert!(!would_be.exists(), "{}", would_be.display());
        // An explicit cgroupsPath is a cgroup the container must have (runc ignores permission
        // errors only without one).
        let cgroup = format!("/hako-test-rootless-{}-{}", std::process::id(), rt.name());
        b.config["linux"]["cgroupsPath"] = json!(cgroup);
        b.write(&user)?;
        let r = user.rt(rt, &b.dir, &["run", &id])?;
        assert_ne!(r.code, 0, "{rt:?}: {r:?}");
        assert!(r.stderr.contains("ermission denied"), "{rt:?}: {r:?}");
        assert!(!Path::new("/sys/fs/cgroup/pids").join(&cgroup[1..]).exists());
    }
    Ok(())
}

/// This process's directory in a v1 hierarchy (the runtime it starts inherits it).
fn own_cgroup(controller: &str) -> Result<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup")?;
    let rel = text
        .lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, list, path) = (f.next()?, f.next()?, f.next()?);
            list.split(',')
                .any(|c| c == controller)
                .then(|| path.to_string())
        })
        .context("no such hierarchy")?;
    Ok(Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(rel.trim_start_matches('/')))
}

/// Whether this host has v1 controllers (no user may be delegated one); otherwise the test is
/// skipped, saying `why` the case differs on a pure v2 host.
fn v1_host(why: &str) -> bool {
    let v1 = Path::new("/sys/fs/cgroup/pids").exists();
    if !v1 {
        eprintln!("skipped: a pure cgroup v2 host, where {why}");
    }
    v1
}

#[test]
fn another_user_can_neither_see_nor_touch_the_containers() -> Result<()> {
    for rt in runtimes() {
        let owner = TestUser::new(false)?;
        let other = TestUser::new(false)?;
        let b = owner.bundle("b", &["sleep", "1000"])?;
        b.write(&owner)?;
        let id = format!("mine-{}", rt.name());
        let d = &b.dir;
        owner.rt(rt, d, &["run", "--detach", &id])?.ok()?;
        let root = default_root(&owner, rt);
        let root_arg = root.to_string_lossy().into_owned();
        // The other user, pointed at the owner's root: refused by the directory's mode.
        let tmp = std::env::temp_dir();
        for args in [
            vec!["list", "-q"],
            vec!["state", &id],
            vec!["kill", &id, "KILL"],
            vec!["delete", "--force", &id],
            vec!["exec", &id, "true"],
        ] {
            let mut full = vec!["--root", root_arg.as_str()];
            full.extend(args.iter().copied());
            let r = other.rt(rt, &tmp, &full)?;
            let listed = r.stdout.contains(&id);
            assert!(
                (r.code != 0 || args[0] == "delete") && !listed,
                "{rt:?} {args:?}: {r:?}"
            );
        }
        // And in its own default root there is nothing.
        let r = other.rt(rt, &tmp, &["list", "-q"])?;
        assert!(!r.stdout.contains(&id), "{rt:?}: {r:?}");
        // The container is untouched.
        assert_eq!(status(&owner, rt, d, &id)?, "running", "{rt:?}");
        owner.rt(rt, d, &["delete", "--force", &id])?.ok()?;
    }
    Ok(())
}

/// Rootless podman (vfs storage, no network, cgroupfs: this v1 host gives an unprivileged user
/// no cgroup) with `runtime` as its OCI runtime: run --rm, run -d + exec + stop + rm, run -t.
/// podman calls the runtime as uid 0 of its own user namespace, so the runtime must detect
/// rootless there too and keep its state under `$XDG_RUNTIME_DIR`.
fn podman_workflows(user: &TestUser, runtime: Runtime, tar: &Path) -> Result<Vec<String>> {
    let home = user.home.path();
    let podman = |args: &[&str]| -> Result<Run> {
        let mut c = user.command(Path::new("podman"), home);
        c.arg("--root")
            .arg(home.join("storage"))
            .arg("--runroot")
            .arg(user.xdg().join("runroot"))
            .arg("--tmpdir")
            .arg(user.xdg().join("libpod-tmp"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "file", "--runtime"])
            .arg(runtime.binary())
            .args(args);
        let r = output_with_timeout(c, Duration::from_secs(120))?;
        if r.code != 0 {
            bail!("{runtime:?}: podman {args:?}: {r:?}");
        }
        Ok(r)
    };
    let tar = tar.to_string_lossy().into_owned();
    podman(&["import", &tar, "localhost/busybox:rootless"])?;
    let image = "localhost/busybox:rootless";
    let mut seen = Vec::new();
    let r = podman(&["run", "--rm", "--network", "none", image, "id"])?;
    seen.push(r.stdout.clone());
    let r = podman(&["run", "-d", "--network", "none", image, "sleep", "1000"])?;
    let ctr = r.stdout.trim().to_string();
    let r = podman(&["exec", &ctr, "cat", "/proc/self/uid_map"])?;
    let map: Vec<&str> = r.stdout.split_whitespace().collect();
    seen.push(format!("{map:?}"));
    podman(&["stop", "-t", "1", &ctr])?;
    podman(&["rm", &ctr])?;
    let r = podman(&[
        "run",
        "--rm",
        "-t",
        "--network",
        "none",
        image,
        "sh",
        "-c",
        "tty",
    ])?;
    seen.push(r.stdout.replace('\r', ""));
    // podman's containers are gone from the runtime's state.
    let root = default_root(user, runtime);
    let left = std::fs::read_dir(&root).map(|d| d.count()).unwrap_or(0);
    ensure_zero(left, &root)?;
    Ok(seen)
}

fn ensure_zero(left: usize, root: &Path) -> Result<()> {
    if left != 0 {
        bail!("{left} containers left in {}", root.display());
    }
    Ok(())
}

#[test]
fn rootless_podman_on_hako_as_on_runc() -> Result<()> {
    if !Path::new("/usr/bin/podman").exists() || !runc_available() {
        eprintln!("skipped: podman or runc not installed");
        return Ok(());
    }
    let mut outcomes = Vec::new();
    for rt in [Runtime::Hako, Runtime::Runc] {
        let user = TestUser::new(true)?;
        let rootfs = user.home.path().join("image");
        busybox_rootfs(&rootfs)?;
        let tar = user.home.path().join("busybox.tar");
        check(
            Command::new("tar")
                .arg("-C")
                .arg(&rootfs)
                .arg("-cf")
                .arg(&tar)
                .arg("."),
        )?;
        check(
            Command::new("chown")
                .arg("-R")
                .arg(user.uid.to_string())
                .arg(user.home.path()),
        )?;
        let seen = podman_workflows(&user, rt, &tar)?;
        assert_eq!(seen.len(), 3, "{rt:?}: {seen:?}");
        let sub = user.sub_start.context("subordinate ids")?;
        // podman's user namespace: root is the user, 1.. its subordinate ids.
        let map = format!(
            "{:?}",
            [
                "0",
                &user.uid.to_string(),
                "1",
                "1",
                &sub.to_string(),
                &SUB_COUNT.to_string()
            ]
        );
        assert_eq!(
            seen[0].trim(),
            "uid=0(root) gid=0(root)",
            "{rt:?}: {seen:?}"
        );
        assert_eq!(seen[1], map, "{rt:?}");
        assert_eq!(seen[2], "/dev/pts/0\n", "{rt:?}");
        // The same shape on both, with each user's own ids.
        outcomes.push([seen[0].clone(), seen[2].clone()]);
    }
    assert_eq!(outcomes[0], outcomes[1], "hako and runc differ");
    Ok(())
}

/// A `cgroup` mount in a rootless container without a cgroup of its own shows the cgroup its
/// processes are in (the caller's), bound from the host: a user namespace may not mount a v1
/// hierarchy, and nothing is silently left empty.
#[test]
fn a_cgroup_mount_without_a_cgroup_shows_the_callers() -> Result<()> {
    if !v1_host("cgroup2 may be mounted in a user namespace") {
        return Ok(());
    }
    for rt in runtimes() {
        let user = TestUser::new(false)?;
        let mut b = user.bundle("b", &["cat", "/sys/fs/cgroup/pids/cgroup.procs"])?;
        if let Some(mounts) = b.config["mounts"].as_array_mut() {
            mounts.push(json!({
                "destination": "/sys/fs/cgroup",
                "type": "cgroup",
                "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]
            }));
        }
        b.write(&user)?;
        let id = format!("cgmount-{}", rt.name());
        let r = user.rt(rt, &b.dir, &["run", &id])?;
        assert_eq!(r.code, 0, "{rt:?}: {r:?}");
        assert!(!r.stdout.trim().is_empty(), "{rt:?}: {r:?}");
    }
    Ok(())
}
