//! What the container sees from inside: its own namespaces, hostname, process table and network,
//! and a process set up as config.json says. Each test also runs against runc.

use anyhow::{ensure, Result};
use hako_tests::{both, Bundle, Runtime};
use serde_json::json;

fn ns_inode(path: &str) -> Result<String> {
    Ok(std::fs::read_link(path)?.to_string_lossy().into_owned())
}

fn namespaces_differ_from_host(rt: Runtime) -> Result<()> {
    let b = Bundle::new(
        rt,
        "ns",
        &[
            "sh",
            "-c",
            "for n in pid net ipc uts mnt; do readlink /proc/self/ns/$n; done",
        ],
    )?;
    let r = b.run()?.ok()?;
    let inside: Vec<&str> = r.stdout.lines().collect();
    ensure!(inside.len() == 5, "{r:?}");
    for (i, n) in ["pid", "net", "ipc", "uts", "mnt"].iter().enumerate() {
        let host = ns_inode(&format!("/proc/self/ns/{n}"))?;
        ensure!(inside[i] != host, "{n} namespace is the host's: {host}");
    }
    // Not listed in the config: stays the host's.
    let b = Bundle::new(rt, "nsuser", &["readlink", "/proc/self/ns/user"])?;
    let r = b.run()?.ok()?;
    ensure!(
        r.stdout.trim() == ns_inode("/proc/self/ns/user")?,
        "user ns must stay the host's"
    );
    Ok(())
}
both!(namespaces_differ_from_host);

fn ps_shows_only_the_container(rt: Runtime) -> Result<()> {
    let b = Bundle::new(
        rt,
        "psinside",
        &["sh", "-c", "ls /proc | grep -c '^[0-9]'; echo $$"],
    )?;
    let r = b.run()?.ok()?;
    let lines: Vec<&str> = r.stdout.lines().collect();
    // The shell (pid 1) and the `ls`/`grep` it spawned: a handful, never the host's hundreds.
    let count: u32 = lines[0].trim().parse()?;
    ensure!(count <= 4, "container sees {count} processes");
    ensure!(lines[1].trim() == "1", "the init is pid 1: {r:?}");
    Ok(())
}
both!(ps_shows_only_the_container);

fn network_has_only_loopback(rt: Runtime) -> Result<()> {
    let b = Bundle::new(rt, "net", &["ls", "/sys/class/net"])?;
    let r = b.run()?.ok()?;
    ensure!(
        r.stdout.split_whitespace().collect::<Vec<_>>() == ["lo"],
        "{r:?}"
    );
    Ok(())
}
both!(network_has_only_loopback);

fn hostname_and_domainname(rt: Runtime) -> Result<()> {
    let mut b = Bundle::new(
        rt,
        "uts",
        &["sh", "-c", "hostname; cat /proc/sys/kernel/domainname"],
    )?;
    b.config["hostname"] = json!("inside");
    b.config["domainname"] = json!("example.test");
    let r = b.run()?.ok()?;
    // runc 1.1 ignores `domainname` (added in runc 1.2); the spec has had it since 1.0.2.
    let want = if rt == Runtime::Runc {
        "inside\n(none)\n"
    } else {
        "inside\nexample.test\n"
    };
    ensure!(r.stdout == want, "{r:?}");
    Ok(())
}
both!(hostname_and_domainname);

fn user_env_cwd_umask(rt: Runtime) -> Result<()> {
    let mut b = Bundle::new(
        rt,
        "user",
        &[
            "sh",
            "-c",
            "id -u; id -g; id -G; echo $FOO; pwd; umask; echo $HOME",
        ],
    )?;
    b.config["process"]["user"] =
        json!({"uid": 1000, "gid": 1001, "additionalGids": [2000, 2001], "umask": 63});
    b.config["process"]["env"] = json!(["PATH=/bin", "FOO=bar"]);
    b.config["process"]["cwd"] = json!("/tmp");
    let r = b.run()?.ok()?;
    let l: Vec<&str> = r.stdout.lines().collect();
    ensure!(l[0] == "1000" && l[1] == "1001", "{r:?}");
    let groups: Vec<&str> = l[2].split_whitespace().collect();
    ensure!(
        groups.contains(&"2000") && groups.contains(&"2001"),
        "groups {groups:?}"
    );
    ensure!(l[3] == "bar" && l[4] == "/tmp" && l[5] == "0077", "{l:?}");
    ensure!(l[6] == "/", "HOME for a uid without a passwd entry: {l:?}");
    Ok(())
}
both!(user_env_cwd_umask);

fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

fn capabilities_rlimits_nnp_oom(rt: Runtime) -> Result<()> {
    let mut b = Bundle::new(rt, "caps", &["sh", "-c", "cat /proc/self/status; echo LIMIT $(ulimit -n); echo OOM $(cat /proc/self/oom_score_adj)"])?;
    b.config["process"]["capabilities"] = json!({
        "bounding": ["CAP_KILL", "CAP_NET_RAW", "CAP_CHOWN"],
        "effective": ["CAP_KILL", "CAP_NET_RAW"],
        "permitted": ["CAP_KILL", "CAP_NET_RAW"],
        "inheritable": ["CAP_KILL"],
        "ambient": ["CAP_KILL"]
    });
    b.config["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 512, "soft": 256}]);
    b.config["process"]["noNewPrivileges"] = json!(true);
    b.config["process"]["oomScoreAdj"] = json!(500);
    let r = b.run()?.ok()?;
    // CAP_CHOWN = 0, CAP_KILL = 5, CAP_NET_RAW = 13.
    let (kill, raw, chown) = (1u64 << 5, 1u64 << 13, 1u64);
    let hex = |k: &str| u64::from_str_radix(&status_field(&r.stdout, k), 16).unwrap_or(u64::MAX);
    // busybox sh is not capability-aware: after exec, effective = permitted when ambient is set.
    ensure!(
        hex("CapBnd:") == kill | raw | chown,
        "bounding {:x}",
        hex("CapBnd:")
    );
    ensure!(
        hex("CapPrm:") & !(kill | raw) == 0,
        "permitted {:x}",
        hex("CapPrm:")
    );
    ensure!(hex("CapInh:") == kill, "inheritable {:x}", hex("CapInh:"));
    ensure!(hex("CapAmb:") == kill, "ambient {:x}", hex("CapAmb:"));
    ensure!(
        status_field(&r.stdout, "NoNewPrivs:") == "1",
        "no_new_privs"
    );
    ensure!(r.stdout.contains("LIMIT 256"), "rlimit: {}", r.stdout);
    ensure!(r.stdout.contains("OOM 500"), "oom_score_adj: {}", r.stdout);
    Ok(())
}
both!(capabilities_rlimits_nnp_oom);

/// An unknown capability is an error (runtime-spec config.md); runc and crun silently ignore it,
/// a documented deviation, so this runs on hako only.
#[test]
fn unknown_capability_is_an_error() -> Result<()> {
    let mut b = Bundle::new(Runtime::Hako, "badcap", &["true"])?;
    b.config["process"]["capabilities"]["bounding"] = json!(["CAP_NOT_A_THING"]);
    let r = b.create()?;
    ensure!(r.code != 0 && r.stderr.contains("CAP_NOT_A_THING"), "{r:?}");
    ensure!(b.rt(&["state", &b.id])?.code != 0, "nothing left");
    Ok(())
}

fn readonly_and_masked_paths(rt: Runtime) -> Result<()> {
    // /proc/timer_list is a readable file on the host (masked with /dev/null inside) and
    // /sys/firmware a non-empty directory (masked with an empty read-only tmpfs).
    ensure!(
        std::fs::metadata("/proc/timer_list").is_ok(),
        "host lacks /proc/timer_list"
    );
    let b = Bundle::new(rt, "paths", &["sh", "-c", "echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null && echo WROTE; wc -c < /proc/timer_list; ls /sys/firmware | wc -l; touch /sys/firmware/x 2>/dev/null && echo TOUCHED; true"])?;
    let r = b.run()?.ok()?;
    let l: Vec<&str> = r.stdout.lines().map(str::trim).collect();
    ensure!(
        l == ["0", "0"],
        "readonly /proc/sys and masked /proc/timer_list, /sys/firmware: {r:?}"
    );
    Ok(())
}
both!(readonly_and_masked_paths);

fn default_devices_work(rt: Runtime) -> Result<()> {
    let b = Bundle::new(rt, "devs", &["sh", "-c", "for d in null zero full random urandom tty; do stat -c '%n %F %t:%T' /dev/$d; done; head -c 4 /dev/zero | wc -c; echo x > /dev/null && echo NULLOK"])?;
    let r = b.run()?.ok()?;
    for want in [
        "/dev/null character special file 1:3",
        "/dev/zero character special file 1:5",
        "/dev/full character special file 1:7",
        "/dev/random character special file 1:8",
        "/dev/urandom character special file 1:9",
        "/dev/tty character special file 5:0",
        "NULLOK",
    ] {
        ensure!(r.stdout.contains(want), "missing {want:?} in {}", r.stdout);
    }
    Ok(())
}
both!(default_devices_work);

fn exec_runs_inside(rt: Runtime) -> Result<()> {
    let b = Bundle::new(rt, "exec", &["sleep", "1000"])?;
    b.create()?.ok()?;
    b.rt(&["start", &b.id])?.ok()?;
    let r = b.rt(&["exec", &b.id, "sh", "-c", "hostname; echo $$; exit 7"])?;
    ensure!(r.code == 7, "{r:?}");
    let l: Vec<&str> = r.stdout.lines().collect();
    ensure!(l[0] == "box", "{r:?}");
    let pid: i32 = l[1].parse()?;
    ensure!(
        pid > 1,
        "exec'd process is in the container's pid namespace: {pid}"
    );
    let r = b
        .rt(&[
            "exec",
            "--env",
            "X=1",
            "--cwd",
            "/tmp",
            "--user",
            "65534:65534",
            &b.id,
            "sh",
            "-c",
            "echo $X $(pwd) $(id -u):$(id -g)",
        ])?
        .ok()?;
    ensure!(r.stdout.trim() == "1 /tmp 65534:65534", "{r:?}");
    let pidfile = b.path().join("exec.pid");
    let pf = pidfile.to_string_lossy().into_owned();
    b.rt(&[
        "exec",
        "--detach",
        "--pid-file",
        &pf,
        &b.id,
        "sleep",
        "1000",
    ])?
    .ok()?;
    let p: i64 = std::fs::read_to_string(&pidfile)?.trim().parse()?;
    let ps = b.rt(&["ps", "--format", "json", &b.id])?.ok()?;
    let pids: Vec<i64> = serde_json::from_str(&ps.stdout)?;
    ensure!(
        pids.contains(&p) && pids.len() == 2,
        "detached exec in the cgroup: {pids:?} {p}"
    );
    let missing = b.rt(&["exec", &b.id, "/no/such/program"])?;
    ensure!(missing.code != 0, "{missing:?}");
    Ok(())
}
both!(exec_runs_inside);

fn exec_with_process_file(rt: Runtime) -> Result<()> {
    let b = Bundle::new(rt, "execp", &["sleep", "1000"])?;
    b.create()?.ok()?;
    b.rt(&["start", &b.id])?.ok()?;
    let p = json!({"terminal": false, "user": {"uid": 0, "gid": 0}, "args": ["sh", "-c", "echo $Y"], "env": ["PATH=/bin", "Y=from-process-json"], "cwd": "/"});
    let path = b.path().join("process.json");
    std::fs::write(&path, p.to_string())?;
    let r = b
        .rt(&["exec", "--process", &path.to_string_lossy(), &b.id])?
        .ok()?;
    ensure!(r.stdout.trim() == "from-process-json", "{r:?}");
    Ok(())
}
both!(exec_with_process_file);
