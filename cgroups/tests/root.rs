//! Root tests against the host's real cgroups. Each test uses its own
//! absolute cgroup path (/hako-test-<pid>-<name>) and a guard that kills and
//! destroys everything even when an assertion fails. Tests that need v1
//! controllers skip (with a message) on a unified host; every test skips
//! when not run as root.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hako_cgroups::{detect_mode, Cgroup, CgroupPath, Error, Mode, Resources};
use oci_spec::runtime::{LinuxDevice, LinuxResources};

fn can_run(v1_only: bool) -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return false;
    }
    if v1_only && detect_mode().unwrap() == Mode::Unified {
        eprintln!("skipped: needs cgroup v1 controllers");
        return false;
    }
    true
}

fn unique(name: &str) -> PathBuf {
    PathBuf::from(format!("/hako-test-{}-{name}", std::process::id()))
}

/// Kills the child and destroys the cgroups (leaf first) on drop.
struct Guard {
    cgroups: Vec<Cgroup>,
    children: Vec<Child>,
}

impl Guard {
    fn new(path: &Path) -> (Self, Cgroup) {
        let cg = Cgroup::create(&CgroupPath::absolute(path).unwrap()).unwrap();
        (
            Self {
                cgroups: vec![cg.clone()],
                children: Vec::new(),
            },
            cg,
        )
    }

    fn spawn_sleep(&mut self) -> i32 {
        let child = Command::new("sleep")
            .arg("1000")
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        self.children.push(child);
        pid
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for cg in &self.cgroups {
            let _ = cg.signal_all(libc::SIGKILL);
            let _ = cg.destroy();
        }
    }
}

/// Wait (bounded) for a child to exit; returns the signal that killed it.
fn wait_killed(child: &mut Child) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut step = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.signal();
        }
        assert!(Instant::now() < deadline, "child did not exit in time");
        std::thread::sleep(step);
        step = (step * 2).min(Duration::from_millis(50));
    }
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.join(file).display()))
        .trim()
        .to_string()
}

fn dir_of<'a>(hs: &'a [hako_cgroups::Hierarchy], controller: &str) -> &'a Path {
    &hs.iter()
        .find(|h| h.options.split(',').any(|c| c == controller))
        .unwrap_or_else(|| panic!("no {controller} hierarchy"))
        .dir
}

fn resources(json: &str, devices: &[LinuxDevice]) -> Resources {
    let r: LinuxResources = serde_json::from_str(json).unwrap();
    Resources::from_spec(Some(&r), devices).unwrap()
}

/// The containerd/docker-like device config also run through runc 1.1.5;
/// devices.list must be exactly what runc left.
const DEVICES_JSON: &str = r#"[
    {"allow":false,"access":"rwm"},
    {"allow":true,"type":"c","major":1,"minor":5,"access":"rwm"},
    {"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"},
    {"allow":true,"type":"c","major":10,"minor":229,"access":"rwm"},
    {"allow":true,"type":"c","major":5,"minor":1,"access":"r"},
    {"allow":true,"type":"c","major":5,"minor":1,"access":"w"},
    {"allow":true,"type":"b","major":8,"access":"r"},
    {"allow":false,"type":"c","major":10,"minor":229,"access":"w"}]"#;
const LINUX_DEVICES_JSON: &str = r#"[
    {"path":"/dev/fuse","type":"c","major":10,"minor":229,"fileMode":438,"uid":0,"gid":0},
    {"path":"/dev/zero","type":"c","major":1,"minor":5}]"#;
const RUNC_DEVICES_LIST: &str = "b *:* m\nc *:* m\nc 1:3 rwm\nc 1:5 rwm\nc 1:7 rwm\nc 1:8 rwm\nc 1:9 rwm\nc 5:0 rwm\nc 5:1 rw\nc 5:2 rwm\nb 8:* r\nc 10:200 rwm\nc 10:229 rm\nc 136:* rwm";

#[test]
fn lifecycle_apply_freeze_kill_destroy() {
    if !can_run(true) {
        return;
    }
    let path = unique("life");
    let (mut guard, cg) = Guard::new(&path);
    let hs = cg.hierarchies();
    assert!(hs.iter().any(|h| h.options == "name=systemd"));
    for h in &hs {
        assert!(h.dir.is_dir(), "{} missing", h.dir.display());
        assert!(h.dir.ends_with(path.strip_prefix("/").unwrap()));
        assert!(!h.dir.starts_with("/sys/fs/cgroup/memory/process_api"));
    }

    let devices: Vec<LinuxDevice> = serde_json::from_str(LINUX_DEVICES_JSON).unwrap();
    let res = resources(
        &format!(
            r#"{{"devices":{DEVICES_JSON},
                "pids":{{"limit":50}},
                "memory":{{"limit":67108864,"swap":134217728,"reservation":33554432,"swappiness":20}},
                "cpu":{{"shares":512,"quota":50000,"period":100000,"cpus":"0","mems":"0"}}}}"#
        ),
        &devices,
    );
    cg.apply(&res).unwrap();
    assert_eq!(
        read(dir_of(&hs, "devices"), "devices.list"),
        RUNC_DEVICES_LIST
    );
    assert_eq!(read(dir_of(&hs, "pids"), "pids.max"), "50");
    let mem = dir_of(&hs, "memory");
    assert_eq!(read(mem, "memory.limit_in_bytes"), "67108864");
    assert_eq!(read(mem, "memory.memsw.limit_in_bytes"), "134217728");
    assert_eq!(read(mem, "memory.soft_limit_in_bytes"), "33554432");
    assert_eq!(read(mem, "memory.swappiness"), "20");
    let cpu = dir_of(&hs, "cpu");
    assert_eq!(read(cpu, "cpu.shares"), "512");
    assert_eq!(read(cpu, "cpu.cfs_quota_us"), "50000");
    assert_eq!(read(cpu, "cpu.cfs_period_us"), "100000");
    let cpuset = dir_of(&hs, "cpuset");
    assert_eq!(read(cpuset, "cpuset.cpus"), "0");
    assert_eq!(read(cpuset, "cpuset.mems"), "0");

    // Re-applying the same rules writes nothing disruptive and keeps the list.
    cg.apply(&res).unwrap();
    assert_eq!(
        read(dir_of(&hs, "devices"), "devices.list"),
        RUNC_DEVICES_LIST
    );

    let pid = guard.spawn_sleep();
    cg.add_process(pid).unwrap();
    assert_eq!(cg.pids().unwrap(), [pid]);
    let membership = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        membership.contains(&format!("pids:{}", path.display())),
        "{membership}"
    );
    assert!(
        membership.contains(&format!("0::{}", path.display())),
        "{membership}"
    );

    let stats = cg.stats().unwrap();
    assert_eq!(stats.pids.current, 1);
    assert_eq!(stats.pids.limit, 50);
    assert_eq!(stats.memory.usage.limit, 67_108_864);
    let json = serde_json::to_value(&stats).unwrap();
    assert_eq!(json["memory"]["usage"]["limit"], 67_108_864);

    assert!(!cg.is_frozen().unwrap());
    cg.freeze().unwrap();
    assert!(cg.is_frozen().unwrap());
    cg.thaw().unwrap();
    assert!(!cg.is_frozen().unwrap());

    cg.signal_all(libc::SIGKILL).unwrap();
    assert_eq!(wait_killed(&mut guard.children[0]), Some(libc::SIGKILL));
    cg.destroy().unwrap();
    for h in &hs {
        assert!(!h.dir.exists(), "{} left behind", h.dir.display());
    }
    // Destroying again (absent dirs) is fine.
    cg.destroy().unwrap();
}

#[test]
fn signal_all_other_signal_freezes_and_thaws() {
    if !can_run(false) {
        return;
    }
    let (mut guard, cg) = Guard::new(&unique("term"));
    let pid = guard.spawn_sleep();
    cg.add_process(pid).unwrap();
    cg.signal_all(libc::SIGTERM).unwrap();
    assert_eq!(wait_killed(&mut guard.children[0]), Some(libc::SIGTERM));
    assert!(!cg.is_frozen().unwrap(), "left frozen");
    assert!(matches!(
        cg.signal_all(12345),
        Err(Error::InvalidSignal { .. })
    ));
}

/// A cgroup the container nested in its own (two levels, in every hierarchy) goes with it: the
/// first rmdir(2) fails with EBUSY and the children are removed first.
#[test]
fn destroy_removes_child_cgroups_first() {
    if !can_run(false) {
        return;
    }
    let (_guard, cg) = Guard::new(&unique("nested"));
    for h in cg.hierarchies() {
        std::fs::create_dir_all(h.dir.join("a/b")).unwrap();
        std::fs::create_dir(h.dir.join("c")).unwrap();
    }
    cg.destroy().unwrap();
    for h in cg.hierarchies() {
        assert!(!h.dir.exists(), "{} left", h.dir.display());
    }
}

/// A process that moved itself in ([`Cgroup::self_join`], `0` to `tasks`) is in the cgroup in
/// every v1 hierarchy, and the cgroup2 one is left to its parent.
#[test]
fn a_child_that_self_joins_is_in_every_v1_hierarchy() {
    if !can_run(true) {
        return;
    }
    let (mut guard, cg) = Guard::new(&unique("selfjoin"));
    let join = cg.self_join().unwrap();
    assert!(!join.is_empty());
    // A single-threaded child that enters, then waits: std's Command runs `pre_exec` in the
    // child after fork, before exec.
    let mut slot = Some(join);
    let mut cmd = Command::new("sleep");
    cmd.arg("1000").stdin(Stdio::null());
    // SAFETY: the closure runs in the forked child, which is single-threaded; `enter` writes to
    // descriptors opened before the fork (it allocates only for an error).
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            slot.take()
                .map_or(Ok(()), |j| j.enter().map_err(std::io::Error::other))
        });
    }
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    guard.children.push(child);
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let want = cg.path().as_path().display().to_string();
    for line in text.lines() {
        let (ids, path) = line.split_once(':').unwrap().1.split_once(':').unwrap();
        if ids.is_empty() {
            assert_ne!(path, want, "the cgroup2 move is the parent's: {text}");
        } else {
            assert_eq!(path, want, "{line}: {text}");
        }
    }
}

#[test]
fn destroy_busy_cgroup_fails_boundedly_then_succeeds() {
    if !can_run(false) {
        return;
    }
    let (mut guard, cg) = Guard::new(&unique("busy"));
    let pid = guard.spawn_sleep();
    cg.add_process(pid).unwrap();
    let started = Instant::now();
    assert!(matches!(cg.destroy(), Err(Error::Rmdir { .. })));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "destroy took {:?}",
        started.elapsed()
    );
    cg.signal_all(libc::SIGKILL).unwrap();
    wait_killed(&mut guard.children[0]);
    cg.destroy().unwrap();
    assert!(cg.hierarchies().iter().all(|h| !h.dir.exists()));
}

#[test]
fn nested_cpuset_inherits_parent_values() {
    if !can_run(true) {
        return;
    }
    let top = unique("nested");
    let leaf = top.join("a/leaf");
    // Guard order: the top-level cgroup is destroyed after the leaf.
    let (mut guard, cg) = Guard::new(&leaf);
    guard
        .cgroups
        .push(Cgroup::open(&CgroupPath::absolute(&top.join("a")).unwrap()).unwrap());
    guard
        .cgroups
        .push(Cgroup::open(&CgroupPath::absolute(&top).unwrap()).unwrap());
    let cpuset = dir_of(&cg.hierarchies(), "cpuset").to_path_buf();
    let root_cpus = read(Path::new("/sys/fs/cgroup/cpuset"), "cpuset.cpus");
    assert_eq!(read(&cpuset, "cpuset.cpus"), root_cpus);
    assert!(!read(&cpuset, "cpuset.mems").is_empty());
    let pid = guard.spawn_sleep();
    cg.add_process(pid).unwrap();
    cg.signal_all(libc::SIGKILL).unwrap();
    wait_killed(&mut guard.children[0]);
    cg.destroy().unwrap();
    // Only the leaf goes; the parents stay (as runc).
    assert!(!cpuset.exists());
    assert!(cpuset.parent().unwrap().is_dir());
}

#[test]
fn memory_update_orders_limit_and_swap() {
    if !can_run(true) {
        return;
    }
    let (_guard, cg) = Guard::new(&unique("memupd"));
    let mem = dir_of(&cg.hierarchies(), "memory").to_path_buf();
    let update = |json: &str| {
        let r: LinuxResources = serde_json::from_str(json).unwrap();
        cg.apply(&Resources::for_update(&r).unwrap())
    };
    update(r#"{"memory":{"limit":67108864,"swap":134217728}}"#).unwrap();
    // Raising both: memsw must be written first or the kernel refuses the limit.
    update(r#"{"memory":{"limit":268435456,"swap":536870912}}"#).unwrap();
    assert_eq!(read(&mem, "memory.limit_in_bytes"), "268435456");
    assert_eq!(read(&mem, "memory.memsw.limit_in_bytes"), "536870912");
    // Lowering both: limit first.
    update(r#"{"memory":{"limit":33554432,"swap":67108864}}"#).unwrap();
    assert_eq!(read(&mem, "memory.limit_in_bytes"), "33554432");
    assert_eq!(read(&mem, "memory.memsw.limit_in_bytes"), "67108864");
    // Unlimited memory with swap unset: both unlimited.
    update(r#"{"memory":{"limit":-1}}"#).unwrap();
    assert_eq!(
        read(&mem, "memory.limit_in_bytes"),
        read(&mem, "memory.memsw.limit_in_bytes")
    );
    // An update never touches the device rules.
    assert_eq!(
        read(dir_of(&cg.hierarchies(), "devices"), "devices.list"),
        "a *:* rwm"
    );
}

#[test]
fn kernel_memory_limits_are_honoured_or_refused() {
    if !can_run(true) {
        return;
    }
    let (_guard, cg) = Guard::new(&unique("kmem"));
    let mem = dir_of(&cg.hierarchies(), "memory").to_path_buf();
    let update = |json: &str| {
        let r: LinuxResources = serde_json::from_str(json).unwrap();
        cg.apply(&Resources::for_update(&r).unwrap())
    };
    // kernelTCP: v1 kernels still take memory.kmem.tcp.limit_in_bytes (6.18 here).
    update(r#"{"memory":{"kernelTCP":50593792}}"#).unwrap();
    assert_eq!(read(&mem, "memory.kmem.tcp.limit_in_bytes"), "50593792");
    update(r#"{"memory":{"kernelTCP":-1}}"#).unwrap();
    assert_ne!(read(&mem, "memory.kmem.tcp.limit_in_bytes"), "50593792");
    // kernel: applied where the kernel keeps it, otherwise an error naming the field (recent
    // kernels take the write to memory.kmem.limit_in_bytes and change nothing).
    match update(r#"{"memory":{"kernel":50593792}}"#) {
        Ok(()) => assert_eq!(read(&mem, "memory.kmem.limit_in_bytes"), "50593792"),
        Err(e) => {
            assert!(
                matches!(
                    e,
                    Error::NotHonoured {
                        field: "linux.resources.memory.kernel",
                        ..
                    } | Error::Refused {
                        field: "linux.resources.memory.kernel",
                        ..
                    }
                ),
                "{e:?}"
            );
            assert_ne!(read(&mem, "memory.kmem.limit_in_bytes"), "50593792");
        }
    }
}

#[test]
fn missing_controller_and_unified_on_v1_are_errors() {
    if !can_run(true) {
        return;
    }
    let (_guard, cg) = Guard::new(&unique("missing"));
    let has_net_cls = cg
        .hierarchies()
        .iter()
        .any(|h| h.options.split(',').any(|c| c == "net_cls"));
    let r: LinuxResources = serde_json::from_str(r#"{"network":{"classID":1048577}}"#).unwrap();
    let res = cg.apply(&Resources::for_update(&r).unwrap());
    if has_net_cls {
        res.unwrap();
    } else {
        assert!(
            matches!(
                res,
                Err(Error::ControllerMissing {
                    controller: "net_cls",
                    ..
                })
            ),
            "{res:?}"
        );
    }
    let r: LinuxResources = serde_json::from_str(r#"{"unified":{"memory.high":"max"}}"#).unwrap();
    assert!(matches!(
        cg.apply(&Resources::for_update(&r).unwrap()),
        Err(Error::Unsupported {
            field: "linux.resources.unified",
            ..
        })
    ));
}

#[test]
fn relative_path_resolves_under_own_cgroup_without_creating() {
    if !can_run(false) {
        return;
    }
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let path = CgroupPath::resolve(Some(Path::new("hako-rel")), "id", false).unwrap();
    // open() only computes directories; nothing is created (this must never
    // touch the machine's memory/process_api tree).
    let cg = Cgroup::open(&path).unwrap();
    for h in cg.hierarchies() {
        let line = own
            .lines()
            .find(|l| l.split(':').nth(1) == Some(h.options.as_str()))
            .unwrap();
        let own_path = line.splitn(3, ':').nth(2).unwrap();
        let want = h
            .mount_point
            .join(own_path.trim_start_matches('/'))
            .join("hako-rel");
        assert_eq!(h.dir, want);
        assert!(!h.dir.exists());
    }
}

/// Runs runc (the oracle) on a busybox bundle with the same device rules and
/// compares its devices.list with ours, when runc and busybox are installed.
#[test]
fn devices_list_matches_runc_oracle() {
    if !can_run(true) {
        return;
    }
    let runc = ["/usr/sbin/runc", "/usr/bin/runc"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let (Some(runc), true) = (runc, Path::new("/bin/busybox").exists()) else {
        eprintln!("skipped: runc or busybox not installed");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("bundle");
    std::fs::create_dir_all(bundle.join("rootfs/bin")).unwrap();
    std::fs::copy("/bin/busybox", bundle.join("rootfs/bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", bundle.join("rootfs/bin/sleep")).unwrap();
    let oracle_path = PathBuf::from(format!("/hako-oracle-{}", std::process::id()));
    let config = format!(
        r#"{{"ociVersion":"1.0.2","root":{{"path":"rootfs"}},
            "process":{{"args":["sleep","1000"],"env":["PATH=/bin"],"cwd":"/","user":{{"uid":0,"gid":0}}}},
            "mounts":[{{"destination":"/proc","type":"proc","source":"proc"}}],
            "linux":{{"cgroupsPath":"{}","resources":{{"devices":{DEVICES_JSON}}},
                     "devices":{LINUX_DEVICES_JSON},
                     "namespaces":[{{"type":"pid"}},{{"type":"mount"}}]}}}}"#,
        oracle_path.display()
    );
    std::fs::write(bundle.join("config.json"), config).unwrap();
    let state = tmp.path().join("state");
    let id = format!("hako-oracle-{}", std::process::id());
    let runc_cmd = |args: &[&str]| {
        Command::new(runc)
            .arg("--root")
            .arg(&state)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
    };
    struct RuncGuard<F: Fn(&[&str])>(F);
    impl<F: Fn(&[&str])> Drop for RuncGuard<F> {
        fn drop(&mut self) {
            (self.0)(&["delete", "--force"]);
        }
    }
    let _runc_guard = RuncGuard(|extra: &[&str]| {
        let mut args = extra.to_vec();
        args.push(&id);
        runc_cmd(&args);
    });
    let status = runc_cmd(&["create", "--bundle", bundle.to_str().unwrap(), &id]);
    assert!(status.success(), "runc create failed");
    let runc_list = read(
        &Path::new("/sys/fs/cgroup/devices").join(oracle_path.strip_prefix("/").unwrap()),
        "devices.list",
    );

    let (_guard, cg) = Guard::new(&unique("oracle"));
    let devices: Vec<LinuxDevice> = serde_json::from_str(LINUX_DEVICES_JSON).unwrap();
    cg.apply(&resources(
        &format!(r#"{{"devices":{DEVICES_JSON}}}"#),
        &devices,
    ))
    .unwrap();
    assert_eq!(
        read(dir_of(&cg.hierarchies(), "devices"), "devices.list"),
        runc_list
    );
}

/// A busybox shell moved into a cgroup that opens device nodes on request
/// (each open in a subshell, so a refused open only ends that subshell). A
/// watchdog kills it if the test stalls for a minute; drop kills it.
struct DeviceProbe {
    child: Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
    stop: Option<std::sync::mpsc::Sender<()>>,
    watchdog: Option<std::thread::JoinHandle<()>>,
}

const PROBE_SCRIPT: &str = r#"while read dev mode; do
  if [ "$mode" = w ]; then ( exec 3>"$dev" ) 2>&1; else ( exec 3<"$dev" ) 2>&1; fi \
    && echo "$dev $mode ok" || echo "$dev $mode denied"
done"#;

impl DeviceProbe {
    fn spawn() -> Self {
        let mut child = Command::new("/bin/busybox")
            .args(["sh", "-c", PROBE_SCRIPT])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
        let (stop, rx) = std::sync::mpsc::channel::<()>();
        let watchdog = std::thread::spawn(move || {
            if rx.recv_timeout(Duration::from_secs(60))
                == Err(std::sync::mpsc::RecvTimeoutError::Timeout)
            {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
        });
        Self {
            stdin: child.stdin.take().unwrap(),
            stdout: std::io::BufReader::new(child.stdout.take().unwrap()),
            child,
            stop: Some(stop),
            watchdog: Some(watchdog),
        }
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap()
    }

    /// Opens `dev` for reading ("r") or writing ("w"): Ok, or the shell's error text.
    fn open(&mut self, dev: &str, mode: &str) -> Result<(), String> {
        use std::io::{BufRead, Write};
        writeln!(self.stdin, "{dev} {mode}").unwrap();
        let mut said = String::new();
        loop {
            let mut line = String::new();
            let n = self.stdout.read_line(&mut line).unwrap();
            assert!(n > 0, "probe shell ended (watchdog?) after {said:?}");
            match line.trim_end().strip_prefix(&format!("{dev} {mode} ")) {
                Some("ok") => return Ok(()),
                Some(_) => return Err(said),
                None => said.push_str(&line),
            }
        }
    }
}

impl Drop for DeviceProbe {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(w) = self.watchdog.take() {
            let _ = w.join();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn assert_eperm(r: Result<(), String>, what: &str) {
    match r {
        Ok(()) => panic!("{what} was allowed"),
        Err(msg) => assert!(msg.contains("Operation not permitted"), "{what}: {msg:?}"),
    }
}

/// The cgroup v2 eBPF device filter against the real kernel: on a unified
/// host through `apply` (as a container gets it), on a hybrid host attached
/// explicitly to the controller-less cgroup2 directory (apply keeps runc's
/// v1 devices there). Deny-all plus runc's defaults, with /dev/random's
/// default dropped by redefining it in linux.devices; then the same plus an
/// allowance for random; then detached.
#[test]
fn ebpf_device_filter_attach_replace_detach() {
    if !can_run(false) {
        return;
    }
    let mode = detect_mode().unwrap();
    if mode == Mode::Legacy {
        eprintln!("skipped: no cgroup2 hierarchy");
        return;
    }
    let (_guard, cg) = Guard::new(&unique("ebpf"));
    let v2 = cg
        .hierarchies()
        .into_iter()
        .find(|h| h.fs_type == "cgroup2")
        .unwrap();
    assert!(v2.dir.is_dir());
    let attach = |res: &Resources| match mode {
        Mode::Unified => cg.apply(res),
        _ => cg.apply_device_filter(res),
    };
    let random: Vec<LinuxDevice> =
        serde_json::from_str(r#"[{"path":"/dev/random","type":"c","major":1,"minor":8}]"#).unwrap();
    let deny_all = r#"{"allow":false,"access":"rwm"}"#;
    let mut probe = DeviceProbe::spawn();
    cg.add_process(probe.pid()).unwrap();
    // No filter yet: everything opens.
    assert_eq!(cg.device_filter_ids().unwrap(), Vec::<u32>::new());
    probe.open("/dev/random", "r").unwrap();

    attach(&resources(
        &format!(r#"{{"devices":[{deny_all}]}}"#),
        &random,
    ))
    .unwrap();
    let first = cg.device_filter_ids().unwrap();
    assert_eq!(first.len(), 1, "{first:?}");
    probe.open("/dev/null", "r").unwrap();
    probe.open("/dev/null", "w").unwrap();
    probe.open("/dev/zero", "r").unwrap();
    assert_eperm(probe.open("/dev/random", "r"), "/dev/random");
    assert_eperm(probe.open("/dev/kmsg", "r"), "/dev/kmsg");

    // Replacing: the new program is attached, the old one gone.
    attach(&resources(
        &format!(
            r#"{{"devices":[{deny_all},
                {{"allow":true,"type":"c","major":1,"minor":8,"access":"r"}}]}}"#
        ),
        &random,
    ))
    .unwrap();
    let second = cg.device_filter_ids().unwrap();
    assert_eq!(second.len(), 1, "{second:?}");
    assert_ne!(first, second);
    probe.open("/dev/random", "r").unwrap();
    assert_eperm(probe.open("/dev/random", "w"), "/dev/random for writing");
    probe.open("/dev/null", "w").unwrap();

    assert_eq!(cg.remove_device_filter().unwrap(), 1);
    assert_eq!(cg.device_filter_ids().unwrap(), Vec::<u32>::new());
    probe.open("/dev/kmsg", "r").unwrap();
    drop(probe);
    cg.destroy().unwrap();
    assert!(!v2.dir.exists());
}

/// On a pure cgroup v2 host (the VM lane): the v2 files runc writes, with
/// its conversions, then stats, freeze, kill and removal.
#[test]
fn unified_lifecycle_writes_v2_files() {
    if !can_run(false) {
        return;
    }
    if detect_mode().unwrap() != Mode::Unified {
        eprintln!("skipped: needs a cgroup v2 (unified) host");
        return;
    }
    let path = unique("v2life");
    let (mut guard, cg) = Guard::new(&path);
    let hs = cg.hierarchies();
    assert_eq!(hs.len(), 1);
    let dir = hs[0].dir.clone();
    for f in [
        "memory.max",
        "pids.max",
        "cpu.max",
        "cpu.weight",
        "cpuset.cpus",
    ] {
        assert!(dir.join(f).exists(), "{f}: controllers not enabled");
    }
    cg.apply(&resources(
        r#"{"pids":{"limit":50},
            "memory":{"limit":67108864,"swap":134217728,"reservation":33554432},
            "cpu":{"shares":512,"quota":50000,"period":100000,"cpus":"0"}}"#,
        &[],
    ))
    .unwrap();
    assert_eq!(read(&dir, "pids.max"), "50");
    assert_eq!(read(&dir, "memory.max"), "67108864");
    assert_eq!(read(&dir, "memory.low"), "33554432");
    if dir.join("memory.swap.max").exists() {
        assert_eq!(read(&dir, "memory.swap.max"), "67108864");
    }
    assert_eq!(read(&dir, "cpu.max"), "50000 100000");
    assert_eq!(
        read(&dir, "cpu.weight"),
        hako_cgroups::cpu_shares_to_weight(512).to_string()
    );
    assert_eq!(read(&dir, "cpuset.cpus"), "0");
    assert_eq!(
        cg.device_filter_ids().unwrap().len(),
        1,
        "default device filter"
    );

    let pid = guard.spawn_sleep();
    cg.add_process(pid).unwrap();
    assert_eq!(cg.pids().unwrap(), [pid]);
    let membership = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert_eq!(membership.trim(), format!("0::{}", path.display()));
    let stats = cg.stats().unwrap();
    assert_eq!(stats.pids.current, 1);
    assert_eq!(stats.pids.limit, 50);
    // memory.current only counts what is charged after the move, maybe nothing yet.
    assert_eq!(stats.memory.usage.limit, 67_108_864);
    assert!(
        stats.memory.raw.contains_key("anon"),
        "{:?}",
        stats.memory.raw
    );

    // An update: unlimited memory and pids, quota off.
    let r: LinuxResources =
        serde_json::from_str(r#"{"memory":{"limit":-1},"pids":{"limit":-1},"cpu":{"quota":-1}}"#)
            .unwrap();
    cg.apply(&Resources::for_update(&r).unwrap()).unwrap();
    assert_eq!(read(&dir, "memory.max"), "max");
    assert_eq!(read(&dir, "pids.max"), "max");
    assert_eq!(read(&dir, "cpu.max"), "max 100000");
    // An update without devices leaves the filter alone.
    assert_eq!(cg.device_filter_ids().unwrap().len(), 1);

    cg.freeze().unwrap();
    assert!(cg.is_frozen().unwrap());
    assert_eq!(read(&dir, "cgroup.freeze"), "1");
    cg.thaw().unwrap();
    assert!(!cg.is_frozen().unwrap());
    cg.signal_all(libc::SIGKILL).unwrap();
    assert_eq!(wait_killed(&mut guard.children[0]), Some(libc::SIGKILL));
    cg.destroy().unwrap();
    assert!(!dir.exists());
}
