//! The spec rules behind the defects of the issue "Every config runc runs, hako runs": no
//! mount namespace, a mount namespace joined by path, large state, seccomp against the
//! runtime's own set-up, NOTIFY as the default action, duplicate groups, `kernelTCP`,
//! `ociVersion`, hooks with large output or `timeout: 0` or a relative path, `exec` after the
//! bundle changed, uid 4294967295, a FIFO as config.json, a missing `cwd`, a masked symlink.
//! Each case sits in the section of the spec it checks.

use super::namespaces::Holder;
use crate::bundle::Bundle;
use crate::case::{expect, rejected, skip, Case, Outcome};
use crate::mutation::Misbehaviour;
use crate::runtime::{Kind, Runtime};
use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::time::Instant;

/// How long `create` may take on a FIFO before the case gives up on it.
const FIFO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The new cases.
pub fn cases() -> Vec<Case> {
    let mut v = namespace_cases();
    v.extend(state_cases());
    v.extend(seccomp_cases());
    v.extend(input_cases());
    v.extend(hook_cases());
    for c in &mut v {
        let name = c.full_name();
        for (case, kind, why) in NOTES {
            if name == *case {
                c.notes.push((*kind, why));
            }
        }
    }
    v
}

/// Where runc 1.1.5 and crun 1.8.1 fail these cases on this host, and why.
const NOTES: &[(&str, Kind, &str)] = &[
    ("namespaces/host/mount", Kind::Runc, "runc 1.1 bind-mounts the rootfs onto itself in the namespace it shares with its caller when the config has no mount namespace"),
    ("namespaces/host/mount", Kind::Crun, "scripts/crun-hybrid.sh runs crun in a mount namespace of its own (to hide cgroup.controllers), so the container rightly inherits that one, not the suite's"),
    ("lifecycle/create/invalid-oci-version-fails", Kind::Runc, "runc 1.1 does not validate ociVersion"),
    ("lifecycle/create/config-fifo-fails", Kind::Runc, "runc 1.1 opens config.json for reading and blocks on a FIFO"),
    ("lifecycle/create/config-fifo-fails", Kind::Crun, "crun 1.8 opens config.json for reading and blocks on a FIFO"),
    ("process/user/uid-4294967295-fails", Kind::Crun, "crun 1.8 passes uid 4294967295 to setresuid, where -1 means unchanged"),
    ("process/user/additional-gids-duplicate", Kind::Crun, "crun 1.8 passes a repeated gid to setgroups as it is"),
    ("cgroups/memory/kernel-tcp", Kind::Runc, "runc 1.1 ignores linux.resources.memory.kernelTCP (it dropped kernel memory limits)"),
    ("lifecycle/exec/after-config-edit", Kind::Runc, "runc 1.1 exec takes the process defaults (capabilities, ...) from the bundle's config.json as it is at exec time"),
    ("hooks/relative-path-fails", Kind::Runc, "runc 1.1 runs a hook whose path is relative"),
    ("hooks/relative-path-fails", Kind::Crun, "crun 1.8 runs a hook whose path is relative"),
    ("hooks/timeout-zero-fails", Kind::Runc, "runc 1.1 accepts timeout 0 and kills the hook at once when its turn comes"),
    ("hooks/timeout-zero-fails", Kind::Crun, "crun 1.8 accepts timeout 0 and runs the hook"),
    ("seccomp/denies-runtime-setup-syscalls", Kind::Runc, "runc 1.1 loads the filter before it changes to process.cwd when noNewPrivileges is false, so a denied chdir fails create"),
];

fn remove(b: &mut Bundle, key: &str) {
    if let Some(o) = b.config["linux"].as_object_mut() {
        o.remove(key);
    }
}

/// config-linux.md "Namespaces": "If a namespace type is not specified in the namespaces
/// array, the container MUST inherit the runtime namespace of that type", and one with a
/// `path` MUST be joined.
fn namespace_cases() -> Vec<Case> {
    vec![
        // The runtime runs in a private mount namespace of its own (unshare(1)), so that what
        // a runtime wrongly mounts never reaches the host; the container must be in exactly
        // that namespace, rooted at the rootfs, with nothing mounted (the config has no
        // mounts, masked or read-only paths).
        Case::new("namespaces", "host/mount", |ctx| {
            let mut b = ctx.bundle()?;
            b.config["linux"]["namespaces"] =
                json!([{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}]);
            b.config["mounts"] = json!([]);
            remove(&mut b, "maskedPaths");
            remove(&mut b, "readonlyPaths");
            b.args(&["/bin/sleep", "600"]);
            b.write()?;
            let seen = b.dir.join("runtime-mnt");
            let rt = private_mount_ns(&b, &seen)?;
            let c = b.create_via(&rt, &b.path())?;
            if !c.success() {
                return Ok(Outcome::Fail(format!("create failed: {}", c.stderr.trim())));
            }
            let pid = b.pid()?;
            let want = std::fs::read_to_string(&seen)?;
            let got = std::fs::read_link(format!("/proc/{pid}/ns/mnt"))?;
            ensure!(
                got.to_string_lossy() == want.trim(),
                "the container is in {}, the runtime was in {}",
                got.display(),
                want.trim()
            );
            let root = std::fs::read_link(format!("/proc/{pid}/root"))?;
            let rootfs = std::fs::canonicalize(b.rootfs())?;
            ensure!(
                root == rootfs,
                "the container's root is {}, not {}",
                root.display(),
                rootfs.display()
            );
            let before = std::fs::read_to_string(seen.with_extension("mountinfo"))?;
            let after = std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))?;
            // Mount ids (mountinfo's first field): the paths of the same mounts read
            // differently from inside the container's root.
            let ids = |t: &str| -> Vec<String> {
                t.lines()
                    .filter_map(|l| l.split(' ').next().map(String::from))
                    .collect()
            };
            let old = ids(&before);
            let added: Vec<&str> = after
                .lines()
                .filter(|l| {
                    l.split(' ')
                        .next()
                        .is_some_and(|id| !old.iter().any(|o| o == id))
                })
                .collect();
            expect(
                added.is_empty(),
                format!(
                    "the runtime mounted in the namespace it shares with its caller: {added:?}"
                ),
            )
        }),
        // The base config's masked and read-only paths apply in a joined namespace too: it is
        // the container's (config-linux.md "Masked Paths", "Readonly Paths": MUST; runc 1.1.5
        // and crun 1.8.1 apply them there).
        Case::new("namespaces", "join/mount", |ctx| {
            let holder = Holder::spawn_with_mount()?;
            let mut b = ctx.bundle()?;
            b.joined
                .insert("mount".to_string(), json!(holder.inode("mnt")?));
            if let Some(a) = b.config["linux"]["namespaces"].as_array_mut() {
                for n in a.iter_mut().filter(|n| n["type"] == "mount") {
                    n["path"] = json!(holder.path("mnt"));
                }
            }
            b.check(&["ns", "mounts", "masked", "readonly"])
        }),
    ]
}

/// A wrapper that runs the runtime in a new private mount namespace, writing that namespace's
/// link to `seen` and its mount table to `seen.mountinfo` first. It mounts a proc in the
/// rootfs there, as a caller that shares its mount namespace would: runc needs
/// `/proc/self/fd` inside the root, and this mount is the caller's, not the runtime's.
fn private_mount_ns(b: &Bundle, seen: &std::path::Path) -> Result<Runtime> {
    let script = b.dir.join("private-mnt-runtime");
    let text = format!(
        "#!/bin/sh\nexec unshare --mount --propagation private /bin/sh -c 'mount -t proc proc \"$1\" && readlink /proc/self/ns/mnt > \"$0\" && cat /proc/self/mountinfo > \"$0.mountinfo\" && shift && exec \"$@\"' '{}' '{}' '{}' \"$@\"\n",
        seen.display(),
        b.rootfs().join("proc").display(),
        b.ctx().rt.path.display()
    );
    std::fs::write(&script, text)?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    Ok(Runtime {
        path: script,
        root: b.ctx().rt.root.clone(),
        kind: b.ctx().rt.kind,
        version: b.ctx().rt.version.clone(),
        user: b.ctx().rt.user.clone(),
        global_args: b.ctx().rt.global_args.clone(),
    })
}

/// A config whose second createRuntime hook is `bad` must be refused at create, before the
/// first hook (which leaves a marker) runs: the spec's MUSTs on a hook are checked with the
/// config, not when the hook's turn comes.
fn refused_before_hooks(ctx: &crate::ctx::Ctx, bad: Value) -> Result<Outcome> {
    let mut b = ctx.bundle()?;
    b.args(&["/bin/true"]);
    let marker = b.rootfs().join(".conformance/first-hook-ran");
    let first = json!({"path": "/bin/busybox", "args": ["busybox", "touch", marker]});
    b.config["hooks"] = json!({"createRuntime": [first, bad]});
    let out = rejected(&b)?;
    if out != Outcome::Pass {
        return Ok(out);
    }
    expect(
        !marker.exists(),
        "create failed only once the hooks were running",
    )
}

/// `(name, count, size)` of the large-annotation cases: what Kubernetes allows per object
/// (256 KiB) and more (1 MiB).
const LARGE: [(&str, usize, usize); 2] = [("100x1000", 100, 1000), ("1MiB", 1024, 1024)];

/// Accepts one connection on `listener` (bounded) and reads the container process state a
/// runtime sends with the seccomp listener fd (config-linux.md "Seccomp", listenerPath);
/// received descriptors are closed.
fn receive_state(listener: &std::os::unix::net::UnixListener) -> Result<Value> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let mut pfd = [nix::poll::PollFd::new(
        std::os::fd::AsFd::as_fd(listener),
        nix::poll::PollFlags::POLLIN,
    )];
    ensure!(
        nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(20_000u16))? > 0,
        "no runtime connected to the listener within 20 s"
    );
    let (mut stream, _) = listener.accept()?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(20)))?;
    let mut buf = vec![0u8; 64 << 10];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 4]);
    let (n, fds) = {
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )?;
        let mut fds = Vec::new();
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(f) = c {
                fds.extend(f);
            }
        }
        (msg.bytes, fds)
    };
    for fd in fds {
        drop(crate::sys::own_fd(fd));
    }
    // A stream: the rest of a large state follows the first read; the runtime may keep the
    // connection open, so read until the JSON is complete (or the runtime closes it).
    buf.truncate(n);
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
            return Ok(v);
        }
        let got = stream.read(&mut chunk)?;
        if got == 0 {
            let len = buf.len();
            return serde_json::from_slice(&buf)
                .with_context(|| format!("the listener's message of {len} bytes"));
        }
        buf.extend_from_slice(&chunk[..got]);
    }
}

/// `n` annotations of `size` bytes each.
fn annotations(b: &mut Bundle, n: usize, size: usize) {
    for i in 0..n {
        b.annotate(&format!("org.example.large.{i:04}"), &"x".repeat(size));
    }
}

/// runtime.md "State" carries the annotations, and config.md "POSIX-platform Hooks": hooks
/// get the state on stdin. Kubernetes allows 256 KiB of annotations per object.
fn state_cases() -> Vec<Case> {
    let mut v = Vec::new();
    for (name, n, size) in LARGE {
        v.push(Case::new(
            "seccomp",
            format!("listener-state/annotations-{name}"),
            move |ctx| {
                let mut b = ctx.bundle()?;
                annotations(&mut b, n, size);
                let sock = b.dir.join("listener.sock");
                let listener = std::os::unix::net::UnixListener::bind(&sock)?;
                // NOTIFY on a system call nothing here makes: the runtime hands the listener
                // over with the state, and no syscall ever waits on it.
                b.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
                    "architectures": ["SCMP_ARCH_X86_64"], "listenerPath": sock,
                    "syscalls": [{"names": ["getcpu"], "action": "SCMP_ACT_NOTIFY"}]});
                let got = std::thread::spawn(move || receive_state(&listener));
                let c = b.create()?;
                if !c.success() {
                    // Unblock the accept if the runtime never connected.
                    let _ = std::os::unix::net::UnixStream::connect(&sock);
                    let _ = got.join();
                    return Ok(Outcome::Fail(format!("create failed: {}", c.stderr.trim())));
                }
                // Some runtimes load the filter (and so send the listener) at start.
                let s = b.start()?;
                if !s.success() {
                    let _ = std::os::unix::net::UnixStream::connect(&sock);
                    let _ = got.join();
                    return Ok(Outcome::Fail(format!("start failed: {}", s.stderr.trim())));
                }
                let st = got
                    .join()
                    .map_err(|_| anyhow::anyhow!("listener thread panicked"))??;
                let found = st["state"]["annotations"].as_object().map_or(0, |a| {
                    a.iter()
                        .filter(|(k, v)| {
                            k.starts_with("org.example.large.")
                                && v.as_str().is_some_and(|s| s.len() == size)
                        })
                        .count()
                });
                expect(
                    found == n,
                    format!("the listener got {found} of the {n} annotations of {size} bytes"),
                )
            },
        ));
    }
    for (name, n, size) in LARGE {
        v.push(Case::new("hooks", format!("state-on-stdin/annotations-{name}"), move |ctx| {
            let mut b = ctx.bundle()?;
            annotations(&mut b, n, size);
            for list in ["createRuntime", "startContainer"] {
                let d = if list == "startContainer" {
                    "/.conformance".to_string()
                } else {
                    b.rootfs().join(".conformance").display().to_string()
                };
                let h = json!({"path": "/bin/busybox", "args": ["busybox", "sh", "-c", format!("/bin/busybox cat > {d}/{list}.state")]});
                if !b.config["hooks"].is_object() {
                    b.config["hooks"] = json!({});
                }
                b.config["hooks"][list] = json!([h]);
            }
            b.create()?.ok("create")?;
            b.start()?.ok("start")?;
            b.wait_exit()?;
            for list in ["createRuntime", "startContainer"] {
                let text = std::fs::read_to_string(b.rootfs().join(format!(".conformance/{list}.state")))
                    .with_context(|| format!("the {list} hook's saved state"))?;
                let st: Value = serde_json::from_str(&text).with_context(|| format!("{list} state of {} bytes", text.len()))?;
                let got = st["annotations"].as_object().map_or(0, |a| {
                    a.iter().filter(|(k, v)| k.starts_with("org.example.large.") && v.as_str().is_some_and(|s| s.len() == size)).count()
                });
                ensure!(got == n, "the {list} hook got {got} of the {n} annotations of {size} bytes");
            }
            let st = b.state()?;
            let got = st["annotations"].as_object().map_or(0, |a| a.len());
            expect(got == n, format!("state lists {got} of {n} annotations"))
        }));
    }
    v
}

/// config-linux.md "Seccomp".
fn seccomp_cases() -> Vec<Case> {
    vec![
        // The profile is the container process's, not the runtime's: without no_new_privs
        // the filter must be loaded while the runtime still has CAP_SYS_ADMIN, and whatever it
        // does afterwards must not depend on what the profile denies.
        Case::check(
            "seccomp",
            "denies-runtime-setup-syscalls",
            &["seccomp", "cwd"],
            |b| {
                b.config["process"]["noNewPrivileges"] = json!(false);
                b.config["process"]["cwd"] = json!("/tmp");
                b.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"names": ["getcwd", "chdir", "fchdir", "getcpu"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42}]});
                b.annotate("org.hako.conformance.getcpu:0", "errno=42");
                Ok(None)
            },
        ),
        // runc: "SCMP_ACT_NOTIFY cannot be used as default action" (a notified syscall of the
        // runtime's own set-up would wait on a listener nobody holds yet).
        Case::reject("seccomp", "notify-default-action-fails", |b| {
            b.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_NOTIFY", "architectures": ["SCMP_ARCH_X86_64"],
                "listenerPath": b.dir.join("no-listener.sock"), "syscalls": []});
            Ok(None)
        }),
    ]
}

/// Inputs the spec constrains: config.md "Specification version" (SemVer), "POSIX process"
/// user ids, "Process" cwd, config-linux.md "Masked Paths" and the memory controller.
fn input_cases() -> Vec<Case> {
    vec![
        Case::reject("lifecycle", "create/invalid-oci-version-fails", |b| {
            b.config["ociVersion"] = json!("invalid");
            Ok(None)
        }),
        // A FIFO as config.json must be refused, not opened for reading (which blocks until a
        // writer comes: never).
        Case::new("lifecycle", "create/config-fifo-fails", |ctx| {
            let b = ctx.bundle()?;
            super::mkfifo(&b.dir.join("config.json"))?;
            let r = b.create_within(&b.path(), FIFO_TIMEOUT)?;
            ensure!(!r.success(), "create with a FIFO as config.json succeeded");
            expect(
                !b.runtime(&["state", &b.id])?.success(),
                "a container was left behind",
            )
        })
        .misbehave(Misbehaviour::Swallow("create")),
        // -1 as a uid means "unchanged" to setresuid(2): the process would stay root.
        Case::reject("process", "user/uid-4294967295-fails", |b| {
            b.config["process"]["user"] = json!({"uid": 4_294_967_295u64, "gid": 4_294_967_295u64});
            Ok(None)
        }),
        Case::check(
            "process",
            "user/additional-gids-duplicate",
            &["user", "groups-exact"],
            |b| {
                b.config["process"]["user"] =
                    json!({"uid": 1000, "gid": 1000, "additionalGids": [183, 183, 184]});
                Ok(None)
            },
        )
        .mutate_config("list the first additional gid only", |cfg| {
            cfg["process"]["user"]["additionalGids"] = json!([183]);
        }),
        // runc creates a missing cwd (images whose WORKDIR is not in their layers).
        Case::check("process", "cwd/created-when-missing", &["cwd"], |b| {
            b.config["process"]["cwd"] = json!("/conf-workdir/sub");
            Ok(None)
        }),
        Case::check(
            "paths",
            "masked/symlink-target",
            &["masked", "files"],
            |b| {
                std::fs::write(b.rootfs().join("etc/conf-secret"), "secret")?;
                std::os::unix::fs::symlink(
                    "/etc/conf-secret",
                    b.rootfs().join("etc/conf-secret-link"),
                )?;
                b.config["linux"]["maskedPaths"] = json!(["/etc/conf-secret-link"]);
                b.annotate("org.hako.conformance.file:/etc/conf-secret", "");
                Ok(None)
            },
        ),
        Case::new("cgroups", "memory/kernel-tcp", |ctx| {
            let tcp = "memory.kmem.tcp.limit_in_bytes";
            let mut b = ctx.bundle()?;
            b.args(&["/bin/sleep", "600"]);
            b.config["linux"]["resources"]["memory"] = json!({"kernelTCP": 50_593_792});
            if ctx.host.unified {
                // cgroup v2 has no such limit: the spec's "unsupported values MUST error".
                return rejected(&b);
            }
            let root = std::path::Path::new("/sys/fs/cgroup/memory").join(tcp);
            if !root.exists() {
                return Ok(skip(
                    root.display().to_string(),
                    "absent: the kernel has no kmem.tcp accounting",
                ));
            }
            let c = b.create()?;
            if !c.success() {
                return Ok(Outcome::Fail(format!("create failed: {}", c.stderr.trim())));
            }
            let got = std::fs::read_to_string(b.cgroup_dir("memory").join(tcp)).unwrap_or_default();
            expect(
                got.trim() == "50593792",
                format!("{tcp} reads {:?}", got.trim()),
            )
        }),
        Case::new("lifecycle", "exec/after-config-edit", |ctx| {
            let mut b = ctx.bundle()?;
            b.args(&["/bin/sleep", "600"]);
            b.create()?.ok("create")?;
            b.start()?.ok("start")?;
            // exec must use the config create validated: a runtime that re-reads the bundle
            // would now drop every capability and deny every system call.
            let mut edited = b.config.clone();
            edited["process"]["capabilities"] = json!({});
            edited["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": []});
            std::fs::write(b.dir.join("config.json"), serde_json::to_vec(&edited)?)?;
            let r = b.runtime(&[
                "exec",
                &b.id,
                "/bin/sh",
                "-c",
                "grep -E '^(CapBnd|Seccomp):' /proc/self/status",
            ])?;
            ensure!(
                r.success(),
                "exec after the edit failed: {}",
                r.stderr.trim()
            );
            let init = std::fs::read_to_string(format!("/proc/{}/status", b.pid()?))?;
            let want: Vec<&str> = init
                .lines()
                .filter(|l| l.starts_with("CapBnd:") || l.starts_with("Seccomp:"))
                .collect();
            let got: Vec<&str> = r.stdout.lines().collect();
            expect(
                got == want,
                format!("exec got {got:?}, the init has {want:?}"),
            )
        })
        .misbehave(Misbehaviour::ExecFromBundle),
    ]
}

/// config.md "POSIX-platform Hooks": `path` MUST be absolute, `timeout` MUST be > 0, and a
/// hook's output is the runtime's to read (a full pipe must not stall it).
fn hook_cases() -> Vec<Case> {
    vec![
        // A relative path that resolves from any working directory up to 16 levels deep, so
        // a runtime that accepts it runs it; refused before any hook runs.
        Case::new("hooks", "relative-path-fails", |ctx| {
            refused_before_hooks(
                ctx,
                json!({"path": format!("{}bin/busybox", "../".repeat(16)), "args": ["busybox", "true"]}),
            )
        }),
        Case::new("hooks", "timeout-zero-fails", |ctx| {
            refused_before_hooks(
                ctx,
                json!({"path": "/bin/busybox", "args": ["busybox", "true"], "timeout": 0}),
            )
        }),
        Case::new("hooks", "output-1MiB-on-stderr", |ctx| {
            let mut b = ctx.bundle()?;
            let done = b.rootfs().join(".conformance/hook-done");
            b.config["hooks"] = json!({"createRuntime": [{"path": "/bin/busybox", "args": ["busybox", "sh", "-c",
                format!("/bin/busybox head -c 1048576 /dev/zero >&2; /bin/busybox head -c 1048576 /dev/zero; echo done > {}", done.display())]}]});
            let t = Instant::now();
            let c = b.create()?;
            ensure!(
                c.success(),
                "create failed: {}",
                c.stderr.chars().take(300).collect::<String>()
            );
            expect(
                done.exists(),
                format!("the hook did not finish (create took {:?})", t.elapsed()),
            )
        }),
    ]
}
