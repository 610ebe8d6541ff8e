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
