//! `linux.seccomp` seen from inside the container: docker's and podman's default profiles load
//! and programs run under them; a denied syscall returns the configured errno, in the init and
//! in processes added by `exec`. Also run against runc.

use anyhow::{ensure, Context, Result};
use hako_tests::{both, Bundle, Runtime};
use serde_json::{json, Value};

fn profile(name: &str) -> Result<Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../runtime/src/seccomp/testdata")
        .join(name);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

fn engine_default_profiles_load(rt: Runtime) -> Result<()> {
    for name in ["docker-seccomp.json", "podman-seccomp.json"] {
        let mut b = Bundle::new(
            rt,
            "secdefault",
            &[
                "sh",
                "-c",
                "echo hi > /tmp/f && cat /tmp/f && grep Seccomp: /proc/self/status",
            ],
        )?;
        b.config["linux"]["seccomp"] = profile(name)?;
        let r = b.run()?.ok()?;
        ensure!(r.stdout.starts_with("hi\n"), "{name}: {r:?}");
        ensure!(
            r.stdout.contains("Seccomp:\t2"),
            "{name}: filter mode: {r:?}"
        );
    }
    Ok(())
}
both!(engine_default_profiles_load);

fn denied_syscall_returns_configured_errno(rt: Runtime) -> Result<()> {
    let mut b = Bundle::new(rt, "secerrno", &["sleep", "1000"])?;
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["this_syscall_does_not_exist"], "action": "SCMP_ACT_ERRNO"}
        ]
    });
    b.create()?.ok()?;
    b.rt(&["start", &b.id])?.ok()?;
    // exec'd processes live under the container's filter too.
    let r = b.rt(&["exec", &b.id, "mkdir", "/tmp/d"])?;
    ensure!(
        r.code != 0 && r.stderr.contains("Permission denied"),
        "EACCES (13) expected: {r:?}"
    );
    let ok = b
        .rt(&[
            "exec",
            &b.id,
            "sh",
            "-c",
            "echo fine > /tmp/x && cat /tmp/x",
        ])?
        .ok()?;
    ensure!(ok.stdout.trim() == "fine", "{ok:?}");
    Ok(())
}
both!(denied_syscall_returns_configured_errno);

fn argument_conditions_select_the_rule(rt: Runtime) -> Result<()> {
    // kill(2) is denied only when its signal argument equals SIGUSR2 (12): signal 0 goes through.
    let mut b = Bundle::new(rt, "secargs", &["sh", "-c", "sleep 100 & p=$!; kill -0 $p && echo zero-ok; kill -USR2 $p 2>/dev/null || echo usr2-denied; kill -9 $p"])?;
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
             "args": [{"index": 1, "value": 12, "op": "SCMP_CMP_EQ"}]}
        ]
    });
    let r = b.run()?.ok()?;
    ensure!(
        r.stdout.contains("zero-ok") && r.stdout.contains("usr2-denied"),
        "{r:?}"
    );
    Ok(())
}
both!(argument_conditions_select_the_rule);

/// Every comparison operator, seen from inside: kill(2) is denied (EPERM) when its signal
/// argument matches the rule; the target ignores the signals, so an allowed kill does nothing.
fn every_operator_selects_as_specified(rt: Runtime) -> Result<()> {
    let script = "(trap '' USR1 USR2; exec sleep 100) & p=$!; \
                  for s in 0 USR1 USR2; do if kill -$s $p 2>/dev/null; then echo $s=ok; else echo $s=denied; fi; done";
    // (operator, value, valueTwo) → verdicts for signals 0, USR1 (10), USR2 (12).
    let cases: [(&str, u64, u64, [&str; 3]); 7] = [
        ("SCMP_CMP_EQ", 10, 0, ["ok", "denied", "ok"]),
        ("SCMP_CMP_NE", 10, 0, ["denied", "ok", "denied"]),
        ("SCMP_CMP_LT", 10, 0, ["denied", "ok", "ok"]),
        ("SCMP_CMP_LE", 10, 0, ["denied", "denied", "ok"]),
        ("SCMP_CMP_GT", 10, 0, ["ok", "ok", "denied"]),
        ("SCMP_CMP_GE", 10, 0, ["ok", "denied", "denied"]),
        ("SCMP_CMP_MASKED_EQ", 8, 8, ["ok", "denied", "denied"]),
    ];
    for (op, value, value_two, want) in cases {
        let mut b = Bundle::new(rt, "secop", &["sh", "-c", script])?;
        b.config["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                          "args": [{"index": 1, "value": value, "valueTwo": value_two, "op": op}]}]
        });
        let r = b.run()?.ok()?;
        let got: Vec<&str> = r
            .stdout
            .lines()
            .filter_map(|l| l.split('=').nth(1))
            .collect();
        ensure!(
            got == want,
            "{op} {value}: got {got:?}, want {want:?} ({r:?})"
        );
    }
    Ok(())
}
both!(every_operator_selects_as_specified);

/// The killing and trapping actions end the offending process with SIGSYS (exit 128 + 31 as
/// the shell reports it); SCMP_ACT_LOG lets the call through.
fn kill_trap_and_log_actions(rt: Runtime) -> Result<()> {
    for (action, want) in [
        ("SCMP_ACT_KILL_PROCESS", "rc=159"),
        ("SCMP_ACT_KILL_THREAD", "rc=159"),
        ("SCMP_ACT_TRAP", "rc=159"),
        ("SCMP_ACT_LOG", "rc=0"),
    ] {
        let mut b = Bundle::new(
            rt,
            "secaction",
            &["sh", "-c", "mkdir /tmp/d 2>/dev/null; echo rc=$?"],
        )?;
        b.config["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": action}]
        });
        let r = b.run()?.ok()?;
        ensure!(r.stdout.trim() == want, "{action}: {r:?}");
    }
    Ok(())
}
both!(kill_trap_and_log_actions);

/// `SCMP_ACT_NOTIFY`: the runtime hands the listener fd, with the container state, to the agent
/// at `listenerPath`; the agent answers each notified syscall (here: EACCES for mkdir).
fn notify_reaches_a_listener_that_answers(rt: Runtime) -> Result<()> {
    use std::io::IoSliceMut;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::net::UnixListener;

    #[repr(C)]
    #[derive(Default)]
    struct Notif {
        id: u64,
        pid: u32,
        flags: u32,
        nr: i32,
        arch: u32,
        ip: u64,
        args: [u64; 6],
    }
    #[repr(C)]
    struct Resp {
        id: u64,
        val: i64,
        error: i32,
        flags: u32,
    }
    // _IOWR('!', 0, struct seccomp_notif) and _IOWR('!', 1, struct seccomp_notif_resp).
    const NOTIF_RECV: libc::c_ulong = 0xC050_2100;
    const NOTIF_SEND: libc::c_ulong = 0xC018_2101;

    let mut b = Bundle::new(rt, "secnotify", &["sh", "-c", "mkdir /tmp/d; echo rc=$?"])?;
    let sock = b.path().join("agent.sock");
    let listener = UnixListener::bind(&sock)?;
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock,
        "listenerMetadata": "from-hako-test",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let agent = || -> Result<(String, u32)> {
            let (conn, _) = listener.accept()?;
            let mut buf = vec![0u8; 65536];
            let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
            let (n, fd) = {
                let mut iov = [IoSliceMut::new(&mut buf)];
                let msg = nix::sys::socket::recvmsg::<()>(
                    conn.as_raw_fd(),
                    &mut iov,
                    Some(&mut space),
                    nix::sys::socket::MsgFlags::empty(),
                )?;
                let mut fd = None;
                for c in msg.cmsgs()? {
                    if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
                        // SAFETY: the kernel installed this descriptor for us.
                        fd = fds.first().map(|f| unsafe { OwnedFd::from_raw_fd(*f) });
                    }
                }
                (msg.bytes, fd.context("no notify fd")?)
            };
            let state = String::from_utf8_lossy(&buf[..n]).into_owned();
            let mut answered = 0;
            // Answer notifications until the container is gone (RECV then fails).
            loop {
                let mut notif = Notif::default();
                // SAFETY: RECV fills one zeroed seccomp_notif of the size encoded in the ioctl.
                if unsafe { libc::ioctl(fd.as_raw_fd(), NOTIF_RECV, &mut notif) } != 0 {
                    break;
                }
                let resp = Resp {
                    id: notif.id,
                    val: 0,
                    error: -libc::EACCES,
                    flags: 0,
                };
                // SAFETY: SEND reads one seccomp_notif_resp.
                if unsafe { libc::ioctl(fd.as_raw_fd(), NOTIF_SEND, &resp) } == 0 {
                    answered += 1;
                }
            }
            Ok((state, answered))
        };
        let _ = tx.send(agent());
    });
    let r = b.run()?;
    ensure!(
        r.stdout.trim() == "rc=1" && r.stderr.contains("Permission denied"),
        "{r:?}"
    );
    let (state, answered) = rx.recv_timeout(std::time::Duration::from_secs(30))??;
    ensure!(answered >= 1, "the agent answered {answered} notifications");
    let v: Value = serde_json::from_str(&state)?;
    ensure!(
        v["fds"] == json!(["seccompFd"]) && v["metadata"] == "from-hako-test",
        "{v}"
    );
    ensure!(
        v["state"]["id"] == b.id.as_str() && v["pid"].as_i64().unwrap_or(0) > 0,
        "{v}"
    );
    Ok(())
}
both!(notify_reaches_a_listener_that_answers);
