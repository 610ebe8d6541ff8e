//! cgroup resources through the real binary: applied (read back from the host's cgroup files),
//! enforced where that is cheap to show, changed by `update`, reported by `events`. Also run
//! against runc: on this v1 host both must write the same files.

use anyhow::{ensure, Context, Result};
use hako_tests::{both, Bundle, Runtime};
use serde_json::json;

fn read(b: &Bundle, controller: &str, file: &str) -> Result<String> {
    b.cgroup_file(controller, file)
}

fn resources_are_written(rt: Runtime) -> Result<()> {
    let mut b = Bundle::new(rt, "res", &["sleep", "1000"])?;
    b.config["linux"]["resources"] = json!({
        "devices": [{"allow": false, "access": "rwm"}],
        "memory": {"limit": 67108864, "reservation": 33554432, "swap": 134217728},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 42}
    });
    b.create()?.ok()?;
    ensure!(read(&b, "memory", "memory.limit_in_bytes")? == "67108864");
    ensure!(read(&b, "memory", "memory.soft_limit_in_bytes")? == "33554432");
    if let Ok(sw) = read(&b, "memory", "memory.memsw.limit_in_bytes") {
        ensure!(sw == "134217728", "memsw {sw}");
    }
    ensure!(read(&b, "cpu", "cpu.shares")? == "512");
    ensure!(read(&b, "cpu", "cpu.cfs_quota_us")? == "50000");
    ensure!(read(&b, "cpu", "cpu.cfs_period_us")? == "100000");
    ensure!(read(&b, "cpuset", "cpuset.cpus")? == "0");
    ensure!(read(&b, "pids", "pids.max")? == "42");
    let pid = b.state()?["pid"].as_i64().unwrap_or(0).to_string();
    for c in ["memory", "cpu", "cpuset", "pids", "devices", "freezer"] {
        ensure!(
            read(&b, c, "cgroup.procs")?.lines().any(|l| l == pid),
            "init in {c}"
        );
    }
    Ok(())
}
both!(resources_are_written);

fn devices_list_matches_runc_default(rt: Runtime) -> Result<()> {
    let b = Bundle::new(rt, "devlist", &["sleep", "1000"])?;
    b.create()?.ok()?;
    let mut list: Vec<String> = read(&b, "devices", "devices.list")?
        .lines()
        .map(str::to_string)
        .collect();
    list.sort();
    // runc 1.1's default allow list after deny-all (specconv AllowedDevices; /dev/console 5:1
    // is created for a terminal but not in the default allow list).
    let mut want: Vec<String> = [
        "b *:* m",
        "c *:* m",
        "c 1:3 rwm",
        "c 1:5 rwm",
        "c 1:7 rwm",
        "c 1:8 rwm",
        "c 1:9 rwm",
        "c 5:0 rwm",
        "c 5:2 rwm",
        "c 10:200 rwm",
        "c 136:* rwm",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    want.sort();
    ensure!(list == want, "devices.list {list:?}");
    Ok(())
}
both!(devices_list_matches_runc_default);

fn pids_limit_stops_forks(rt: Runtime) -> Result<()> {
    // The shell counts too: with pids.max 4, three children fit and the fourth fork fails.
    let mut b = Bundle::new(
        rt,
        "pidslimit",
        &[
            "sh",
            "-c",
            "sleep 5 & sleep 5 & sleep 5 & echo three-ok; sleep 5 & echo four-ok",
        ],
    )?;
    b.config["linux"]["resources"]["pids"] = json!({"limit": 4});
    let r = b.run()?;
    ensure!(r.stdout.contains("three-ok"), "three forks fit: {r:?}");
    ensure!(
        !r.stdout.contains("four-ok") && r.code != 0,
        "the fourth fork must fail: {r:?}"
    );
    Ok(())
}
both!(pids_limit_stops_forks);

fn memory_limit_triggers_oom_killer(rt: Runtime) -> Result<()> {
    let mut b = Bundle::new(
        rt,
        "oom",
        &[
            "sh",
            "-c",
            "dd if=/dev/zero of=/dev/null bs=64M count=1 && echo survived",
        ],
    )?;
    b.config["linux"]["resources"]["memory"] = json!({"limit": 16777216, "swap": 16777216});
    let r = b.run()?;
    ensure!(
        !r.stdout.contains("survived"),
        "a 64 MiB buffer fit under a 16 MiB limit: {r:?}"
    );
    ensure!(
        r.code == 137 || r.code == 1,
        "killed (137) or the shell saw its child killed: {r:?}"
    );
    Ok(())
}
both!(memory_limit_triggers_oom_killer);

fn update_changes_limits(rt: Runtime) -> Result<()> {
    let b = Bundle::new(rt, "update", &["sleep", "1000"])?;
    b.create()?.ok()?;
    b.rt(&["start", &b.id])?.ok()?;
    b.rt(&[
        "update",
        "--memory",
        "128m",
        "--pids-limit",
        "50",
        "--cpu-share",
        "256",
        &b.id,
    ])?
    .ok()?;
    ensure!(read(&b, "memory", "memory.limit_in_bytes")? == "134217728");
    ensure!(read(&b, "pids", "pids.max")? == "50");
    ensure!(read(&b, "cpu", "cpu.shares")? == "256");
    // What CRI pipes in on stdin (recorded from containerd); devices stay as they were.
    let cri = r#"{"devices":[{"allow":false,"access":"rwm"}],"memory":{"limit":67108864,"swap":67108864},"cpu":{"shares":512}}"#;
    let mut cmd = b.cmd();
    cmd.args(["update", "--resources", "-", &b.id])
        .stdin(std::process::Stdio::piped());
    let mut child = cmd.spawn()?;
    std::io::Write::write_all(child.stdin.as_mut().context("stdin")?, cri.as_bytes())?;
    drop(child.stdin.take());
    ensure!(child.wait()?.success(), "update --resources -");
    ensure!(read(&b, "memory", "memory.limit_in_bytes")? == "67108864");
    ensure!(read(&b, "cpu", "cpu.shares")? == "512");
    let ok = b
        .rt(&[
            "exec",
            &b.id,
            "sh",
            "-c",
            "echo x > /dev/null && echo devices-intact",
        ])?
        .ok()?;
    ensure!(ok.stdout.contains("devices-intact"), "{ok:?}");
    Ok(())
}
both!(update_changes_limits);

fn events_stats_reports_usage(rt: Runtime) -> Result<()> {
    let mut b = Bundle::new(rt, "events", &["sleep", "1000"])?;
    b.config["linux"]["resources"]["pids"] = json!({"limit": 30});
    b.create()?.ok()?;
    b.rt(&["start", &b.id])?.ok()?;
    let r = b.rt(&["events", "--stats", &b.id])?.ok()?;
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim())?;
    ensure!(v["type"] == "stats" && v["id"] == b.id.as_str(), "{v}");
    // The init; a runtime may briefly still have a helper task in there while it execs.
    let current = v["data"]["pids"]["current"].as_u64().unwrap_or(0);
    ensure!((1..=3).contains(&current), "pids.current: {v}");
    ensure!(
        v["data"]["pids"]["limit"].as_u64() == Some(30),
        "pids.limit: {v}"
    );
    ensure!(
        v["data"]["memory"]["usage"]["usage"].as_u64().unwrap_or(0) > 0,
        "memory usage: {v}"
    );
    ensure!(
        v["data"]["cpu"]["usage"]["total"].is_u64(),
        "cpu usage: {v}"
    );
    Ok(())
}
both!(events_stats_reports_usage);

/// `update --resources FILE` with `json` in FILE.
fn update_with(b: &Bundle, json: &str) -> Result<hako_tests::Run> {
    let file = b.path().join("resources.json");
    std::fs::write(&file, json)?;
    b.rt(&["update", "--resources", &file.to_string_lossy(), &b.id])
}

/// A cgroup file as the container reads it, through its own (read-only) cgroup mount.
fn read_inside(b: &Bundle, path: &str) -> Result<String> {
    Ok(b.rt(&["exec", &b.id, "cat", path])?
        .ok()?
        .stdout
        .trim()
        .to_string())
}

fn with_cgroup_mount(b: &mut Bundle) {
    if let Some(m) = b.config["mounts"].as_array_mut() {
        m.push(
            json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
        );
    }
}

/// `linux.resources.cpu.burst` (runtime-spec 1.1): the CFS burst the container reads in its own
/// cgroup (`cpu.cfs_burst_us` on v1, Linux 5.14; the v2 lane reads `cpu.max.burst`), at create
/// and after `update`. Skipped where the kernel has no CFS burst.
fn cpu_burst_is_the_container_s(rt: Runtime) -> Result<()> {
    if !std::path::Path::new("/sys/fs/cgroup/cpu/cpu.cfs_burst_us").exists() {
        eprintln!("no cpu.cfs_burst_us in this kernel's v1 cpu controller: skipped");
        return Ok(());
    }
    let mut b = Bundle::new(rt, "burst", &["sleep", "1000"])?;
    b.config["linux"]["resources"]["cpu"] =
        json!({"quota": 50000, "period": 100000, "burst": 20000});
    with_cgroup_mount(&mut b);
    b.create()?.ok()?;
    b.rt(&["start", &b.id])?.ok()?;
    let file = "/sys/fs/cgroup/cpu/cpu.cfs_burst_us";
    let got = read_inside(&b, file)?;
    if rt == Runtime::Runc {
        // runc 1.1.5 predates cpu.burst (runc 1.2) and ignores it: the kernel's 0 stays.
        ensure!(got == "0", "runc 1.1.5 set a burst: {got:?}");
        return Ok(());
    }
    ensure!(got == "20000", "burst inside after create: {got:?}");
    update_with(
        &b,
        r#"{"cpu":{"quota":50000,"period":100000,"burst":30000}}"#,
    )?
    .ok()?;
    let got = read_inside(&b, file)?;
    ensure!(got == "30000", "burst inside after update: {got:?}");
    Ok(())
}
both!(cpu_burst_is_the_container_s);

/// `linux.resources.memory.checkBeforeUpdate` (runtime-spec 1.2): a new limit below the
/// current usage is refused, and the container keeps its limit (and its memory). hako checks
/// `memory.usage_in_bytes` before writing and says so; cgroup v1 refuses such a limit by itself
/// too (EBUSY, once reclaim fails: no swap here, tmpfs pages stay), which is what runc 1.1.5
/// reports, so for runc only the outcome is held. The v2 lane, where the kernel would OOM-kill
/// instead, has the same check in vm/hako-checks.sh.
fn memory_check_before_update_refuses_a_limit_below_usage(rt: Runtime) -> Result<()> {
    let mut b = Bundle::new(rt, "cbu", &["sleep", "1000"])?;
    b.config["linux"]["resources"]["memory"] = json!({"limit": 134217728});
    with_cgroup_mount(&mut b);
    b.create()?.ok()?;
    b.rt(&["start", &b.id])?.ok()?;
    // 24 MiB in the container's tmpfs: charged to its memory cgroup, not reclaimable.
    b.rt(&[
        "exec",
        &b.id,
        "dd",
        "if=/dev/zero",
        "of=/dev/shm/fill",
        "bs=1048576",
        "count=24",
    ])?
    .ok()?;
    let usage: u64 = read_inside(&b, "/sys/fs/cgroup/memory/memory.usage_in_bytes")?.parse()?;
    ensure!(usage > 24 << 20, "usage {usage}");
    let r = update_with(
        &b,
        r#"{"memory":{"limit":8388608,"checkBeforeUpdate":true}}"#,
    )?;
    ensure!(r.code != 0, "a limit below usage was taken: {r:?}");
    if rt == Runtime::Hako {
        ensure!(
            r.stderr
                .contains("memory limit 8388608 is below current usage"),
            "{}",
            r.stderr
        );
    }
    let limit = read_inside(&b, "/sys/fs/cgroup/memory/memory.limit_in_bytes")?;
    ensure!(
        limit == "134217728",
        "limit inside after the refusal: {limit}"
    );
    ensure!(b.status()? == "running");
    // Above the usage, the same flag lets the update through.
    update_with(
        &b,
        r#"{"memory":{"limit":67108864,"checkBeforeUpdate":true}}"#,
    )?
    .ok()?;
    let limit = read_inside(&b, "/sys/fs/cgroup/memory/memory.limit_in_bytes")?;
    ensure!(
        limit == "67108864",
        "limit inside after the update: {limit}"
    );
    Ok(())
}
both!(memory_check_before_update_refuses_a_limit_below_usage);

/// Every line of `/proc/self/cgroup` as a process in the container reads it, checked against
/// `want` (the path the host gives the container's cgroup, or `/` inside a cgroup namespace).
fn in_every_hierarchy(text: &str, want: &str) -> Result<()> {
    let lines: Vec<&str> = text.lines().collect();
    ensure!(lines.len() >= 2, "too few hierarchies: {text:?}");
    for line in lines {
        let path = line.splitn(3, ':').nth(2).unwrap_or_default();
        ensure!(path == want, "{line:?} is not in {want}: {text:?}");
    }
    Ok(())
}

/// The init and an `exec`'d process are in the container's cgroup in every hierarchy, v1 and
/// cgroup2 alike: hako's processes move themselves into the v1 ones (`tasks`, see
/// cgroups/src/self_join.rs) and are born in the cgroup2 one.
fn init_and_exec_are_in_every_hierarchy(rt: Runtime) -> Result<()> {
    let b = Bundle::new(
        rt,
        "everyh",
        &["sh", "-c", "cat /proc/self/cgroup; sleep 1000"],
    )?;
    b.create()?.ok()?;
    let pid = b.state()?["pid"].as_i64().unwrap_or(0);
    let init = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    in_every_hierarchy(&init, &b.cgroup_path())?;
    b.rt(&["start", &b.id])?.ok()?;
    let exec = b.rt(&["exec", &b.id, "cat", "/proc/self/cgroup"])?.ok()?;
    in_every_hierarchy(&exec.stdout, &b.cgroup_path())
}
both!(init_and_exec_are_in_every_hierarchy);

/// With a cgroup namespace, the container sees its own cgroup as `/` in every hierarchy: the
/// init joined the cgroup before it unshared the namespace, whose root is where the process
/// was at that moment (cgroup_namespaces(7)).
fn cgroup_namespace_root_is_the_container_s(rt: Runtime) -> Result<()> {
    let mut b = Bundle::new(rt, "cgns", &["cat", "/proc/self/cgroup"])?;
    if let Some(ns) = b.config["linux"]["namespaces"].as_array_mut() {
        ns.push(json!({"type": "cgroup"}));
    }
    let r = b.run()?.ok()?;
    in_every_hierarchy(&r.stdout, "/")
}
both!(cgroup_namespace_root_is_the_container_s);

/// A process that cannot join one of the container's hierarchies fails `create` with the
/// kernel's reason, naming the file, and leaves nothing: a realtime (SCHED_RR) task may not
/// join a v1 cpu cgroup without realtime runtime (sched-rt-group.rst, 2.3: EINVAL). hako only:
/// runc reports the same failure in its own words.
#[test]
fn a_process_that_cannot_join_fails_create_and_leaves_nothing() -> Result<()> {
    if !std::path::Path::new("/sys/fs/cgroup/cpu/cpu.rt_runtime_us").exists() {
        eprintln!("no realtime group scheduling (CONFIG_RT_GROUP_SCHED): skipped");
        return Ok(());
    }
    let mut b = Bundle::new(Runtime::Hako, "rtjoin", &["true"])?;
    b.wrapper = ["chrt", "--rr", "1"].map(String::from).to_vec();
    let r = b.create()?;
    ensure!(
        r.code != 0,
        "a realtime init joined a cpu cgroup without rt runtime: {r:?}"
    );
    ensure!(
        r.stderr.contains("cpu") && r.stderr.contains("Invalid argument"),
        "the error names the hierarchy and the reason: {r:?}"
    );
    ensure!(
        b.cgroup_dirs().is_empty(),
        "cgroups left: {:?}",
        b.cgroup_dirs()
    );
    let left: Vec<_> = std::fs::read_dir(b.state_root())?.flatten().collect();
    ensure!(left.is_empty(), "state left: {left:?}");
    Ok(())
}
