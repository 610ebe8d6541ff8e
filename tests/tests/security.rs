//! The process's security boundary from inside: capabilities hold against hostile use, and the
//! known escapes stay closed (CVE-2024-21626: no host descriptor or working directory reaches the
//! container; CVE-2019-5736: the runtime's half-set-up process cannot be opened through /proc).

use std::os::fd::AsRawFd;
use std::time::Duration;

use anyhow::{ensure, Result};
use hako_tests::{both, Bundle, Runtime};
use serde_json::json;

fn without_sys_admin_mount_fails(rt: Runtime) -> Result<()> {
    let b = Bundle::new(
        rt,
        "nomount",
        &["sh", "-c", "mount -t tmpfs none /mnt 2>&1; echo rc=$?"],
    )?;
    let r = b.run()?.ok()?;
    ensure!(
        r.stdout.contains("rc=") && !r.stdout.contains("rc=0"),
        "mount must fail: {r:?}"
    );
    Ok(())
}
both!(without_sys_admin_mount_fails);

fn raw_socket_needs_net_raw(rt: Runtime) -> Result<()> {
    // busybox ping opens a SOCK_RAW ICMP socket; lo is down, so with CAP_NET_RAW it gets as far
    // as "Network unreachable", without it the socket itself is refused.
    let ping = ["sh", "-c", "ping -c 1 -W 1 127.0.0.1 2>&1; true"];
    let mut with = Bundle::new(rt, "netraw", &ping)?;
    with.config["process"]["capabilities"] = json!({"bounding": ["CAP_NET_RAW"], "effective": ["CAP_NET_RAW"], "permitted": ["CAP_NET_RAW"]});
    let w = with.run()?.ok()?;
    let mut without = Bundle::new(rt, "nonetraw", &ping)?;
    without.config["process"]["capabilities"] =
        json!({"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]});
    let wo = without.run()?.ok()?;
    let refused = |s: &str| s.contains("ermission denied") || s.contains("not permitted");
    ensure!(
        !refused(&w.stdout),
        "with CAP_NET_RAW the raw socket opens: {w:?}"
    );
    ensure!(
        refused(&wo.stdout),
        "without CAP_NET_RAW it is refused: {wo:?}"
    );
    Ok(())
}
both!(raw_socket_needs_net_raw);

fn ambient_capabilities_reach_a_non_root_user(rt: Runtime) -> Result<()> {
    let mut b = Bundle::new(
        rt,
        "ambient",
        &["grep", "-E", "^Cap(Eff|Amb)", "/proc/self/status"],
    )?;
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let c = json!(["CAP_NET_BIND_SERVICE"]);
    b.config["process"]["capabilities"] =
        json!({"bounding": c, "effective": c, "permitted": c, "inheritable": c, "ambient": c});
    let r = b.run()?.ok()?;
    // CAP_NET_BIND_SERVICE is bit 10.
    ensure!(
        r.stdout.contains("CapEff:\t0000000000000400")
            && r.stdout.contains("CapAmb:\t0000000000000400"),
        "{r:?}"
    );
    Ok(())
}
both!(ambient_capabilities_reach_a_non_root_user);

fn user_namespace_maps_root(rt: Runtime) -> Result<()> {
    let mut b = Bundle::new(
        rt,
        "userns",
        &[
            "sh",
            "-c",
            "id -u; cat /proc/self/uid_map /proc/self/gid_map; echo x > /dev/null && echo null-ok",
        ],
    )?;
    if let Some(ns) = b.config["linux"]["namespaces"].as_array_mut() {
        ns.push(json!({"type": "user"}));
    }
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    let r = b.run()?.ok()?;
    let words: Vec<&str> = r.stdout.split_whitespace().collect();
    ensure!(words.first() == Some(&"0"), "root inside: {r:?}");
    ensure!(
        words[1..4] == ["0", "200000", "65536"] && words[4..7] == ["0", "200000", "65536"],
        "maps: {r:?}"
    );
    ensure!(r.stdout.contains("null-ok"), "{r:?}");
    Ok(())
}
both!(user_namespace_maps_root);

/// No descriptor of the runtime's caller reaches the container, and a `cwd` through one cannot
/// leave the rootfs (CVE-2024-21626). runc 1.1.5 predates the fix (1.1.12), so hako only.
#[test]
fn leaked_host_fd_cannot_become_cwd() -> Result<()> {
    let host_dir = tempfile::tempdir()?;
    std::fs::write(host_dir.path().join("host-secret"), "x")?;
    let dir = std::fs::File::open(host_dir.path())?;
    let raw = dir.as_raw_fd();
    for (tag, cwd) in [("fdcwd", "/proc/self/fd/7"), ("fdcwd2", "/proc/1/fd/7")] {
        let mut b = Bundle::new(Runtime::Hako, tag, &["sh", "-c", "ls; ls /proc/self/fd"])?;
        b.config["process"]["cwd"] = json!(cwd);
        b.write_config()?;
        let mut cmd = b.cmd();
        cmd.args(["run", "--bundle", &b.path().to_string_lossy(), &b.id]);
        // SAFETY: only dup2 (async-signal-safe) runs between fork and exec, placing the host
        // directory at fd 7 without close-on-exec, as a careless caller would.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                if libc::dup2(raw, 7) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let r = hako_tests::output_with_timeout(cmd, Duration::from_secs(60))?;
        ensure!(
            !r.stdout.contains("host-secret"),
            "container listed a host directory: {r:?}"
        );
        ensure!(
            r.code != 0,
            "a cwd outside the rootfs must fail the container: {r:?}"
        );
    }
    Ok(())
}

/// The init is not dumpable while hako sets it up, so a process in the container cannot open
/// its /proc/<pid>/exe (the hako binary; CVE-2019-5736). A created container's init is exactly
/// that half-set-up process, waiting on the exec fifo.
#[test]
fn waiting_init_exe_is_not_reachable_from_the_container() -> Result<()> {
    let b = Bundle::new(Runtime::Hako, "exe", &["sleep", "1000"])?;
    b.create()?.ok()?;
    let host_pid = b.state()?["pid"].as_i64().unwrap_or(0);
    ensure!(host_pid > 0);
    let status = std::fs::read_to_string(format!("/proc/{host_pid}/status"))?;
    ensure!(status.contains("\nUid:\t0"), "{status}");
    // From inside (an exec'd process as root without CAP_SYS_PTRACE), the init is pid 1.
    let r = b.rt(&["exec", &b.id, "sh", "-c", "readlink /proc/1/exe || echo refused; cat /proc/1/exe > /dev/null 2>&1 || echo read-refused"])?;
    ensure!(
        r.stdout.contains("refused") && r.stdout.contains("read-refused"),
        "{r:?}"
    );
    Ok(())
}
