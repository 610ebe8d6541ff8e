//! User namespaces combined with joined namespaces, as Kubernetes user-namespace pods
//! (`hostUsers: false`) configure them: the sandbox creates its user namespace but joins a network
//! namespace made before it; each app container joins the sandbox's user namespace and creates
//! its own pid and mount namespaces. Both need the namespaces staged in order (join first, then
//! create, a pid namespace forked into last); see the namespaces crate's `ns.rs`. Each test also
//! runs against runc.

use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};

use anyhow::{ensure, Context, Result};
use hako_tests::{both, Bundle, Runtime};
use serde_json::{json, Value};

const MAP: [u32; 3] = [0, 300000, 65536];

fn maps() -> Value {
    json!([{"containerID": MAP[0], "hostID": MAP[1], "size": MAP[2]}])
}

/// A process in a network namespace of its own, owned by the host's user namespace (as the
/// network namespace CRI pins before the sandbox exists). It waits on stdin; killed on drop.
struct NetnsHolder(Child);

impl NetnsHolder {
    fn start() -> Result<Self> {
        let child = Command::new("unshare")
            .args(["--net", "cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .context("unshare --net cat")?;
        let holder = NetnsHolder(child);
        let host = std::fs::read_link("/proc/self/ns/net")?;
        // unshare(1) execs cat once its namespace exists: wait (bounded) for the change.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::fs::read_link(holder.path())? == host {
            ensure!(
                std::time::Instant::now() < deadline,
                "unshare never entered its netns"
            );
            std::thread::yield_now();
        }
        Ok(holder)
    }

    fn path(&self) -> String {
        format!("/proc/{}/ns/net", self.0.id())
    }
}

impl Drop for NetnsHolder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn set_namespaces(b: &mut Bundle, namespaces: Value) {
    b.config["linux"]["namespaces"] = namespaces;
}

fn set_userns_maps(b: &mut Bundle) {
    b.config["linux"]["uidMappings"] = maps();
    b.config["linux"]["gidMappings"] = maps();
}

fn ns_of(pid: &str, ns: &str) -> Result<String> {
    Ok(std::fs::read_link(format!("/proc/{pid}/ns/{ns}"))?
        .to_string_lossy()
        .into_owned())
}

/// A new user namespace joining an existing network namespace: the join happens as host root,
/// then the user namespace and everything else is created inside it.
fn new_userns_joins_netns(rt: Runtime) -> Result<()> {
    let holder = NetnsHolder::start()?;
    let mut b = Bundle::new(
        rt,
        "usernsjoin",
        &[
            "sh",
            "-c",
            "echo $$; id -u; cat /proc/self/uid_map; \
             for n in net user pid mnt ipc; do readlink /proc/self/ns/$n; done; \
             echo sys:$(awk '$5 ~ \"^/sys\" {split($6, o, \",\"); print o[1]}' \
                 /proc/self/mountinfo | sort -u)",
        ],
    )?;
    let netns = holder.path();
    set_namespaces(
        &mut b,
        json!([{"type": "user"}, {"type": "network", "path": netns}, {"type": "pid"},
               {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]),
    );
    set_userns_maps(&mut b);
    if rt == Runtime::Runc {
        // A fresh sysfs needs CAP_SYS_ADMIN over the network namespace's owner, the host's user
        // namespace here, so the kernel refuses it; runc 1.1.5 then fails, where hako binds
        // the host's /sys read-only as runc does when there is no network namespace at all.
        if let Some(m) = b.config["mounts"].as_array_mut() {
            m.retain(|m| m["destination"] != "/sys");
        }
    }
    let r = b.run()?.ok()?;
    let lines: Vec<&str> = r.stdout.lines().collect();
    ensure!(lines.len() == 9, "{r:?}");
    ensure!(
        lines[0] == "1",
        "the init is pid 1 of a new pid namespace: {r:?}"
    );
    if rt == Runtime::Hako {
        // The host's /sys, bound in, is read-only down to every submount (its cgroup
        // hierarchies included), as the `ro` of the sysfs mount asked.
        ensure!(lines[8] == "sys:ro", "/sys mounts: {r:?}");
    }
    ensure!(lines[1] == "0", "root inside: {r:?}");
    let map: Vec<&str> = lines[2].split_whitespace().collect();
    ensure!(map == ["0", "300000", "65536"], "uid_map: {r:?}");
    ensure!(
        lines[3] == ns_of(&holder.0.id().to_string(), "net")?,
        "net namespace not joined: {r:?}"
    );
    for (line, ns) in lines[4..].iter().zip(["user", "pid", "mnt", "ipc"]) {
        ensure!(
            *line != ns_of("self", ns)?,
            "{ns} namespace is the host's: {r:?}"
        );
    }
    Ok(())
}
both!(new_userns_joins_netns);

/// A created container whose namespaces a second one joins: the sandbox of a user-namespace pod.
fn sandbox(rt: Runtime) -> Result<(Bundle, String)> {
    let mut s = Bundle::new(rt, "podsandbox", &["true"])?;
    set_namespaces(
        &mut s,
        json!([{"type": "user"}, {"type": "network"}, {"type": "pid"}, {"type": "ipc"},
               {"type": "uts"}, {"type": "mount"}]),
    );
    set_userns_maps(&mut s);
    s.create()?.ok()?;
    let pid = s.state()?["pid"]
        .as_i64()
        .context("sandbox pid")?
        .to_string();
    Ok((s, pid))
}

/// Makes `b` a container of the pod whose sandbox init is `spid`: its user, network, uts and
/// ipc namespaces, and pid and mount namespaces of its own.
fn join_pod(b: &mut Bundle, spid: &str) {
    let path = |ns: &str| format!("/proc/{spid}/ns/{ns}");
    set_namespaces(
        b,
        json!([{"type": "user", "path": path("user")}, {"type": "network", "path": path("net")},
               {"type": "ipc", "path": path("ipc")}, {"type": "uts", "path": path("uts")},
               {"type": "pid"}, {"type": "mount"}]),
    );
    // The joined namespace's own maps; runc 1.1.5 insists on them, containerd always sends them.
    set_userns_maps(b);
}

/// A pod container: the sandbox's user, network, ipc and uts namespaces, its own pid and mount
/// namespaces (created inside the joined user namespace, so its root can mount /proc there).
fn pod_container_in_joined_userns(rt: Runtime) -> Result<()> {
    let (_sandbox, spid) = sandbox(rt)?;
    let mut b = Bundle::new(
        rt,
        "podapp",
        &[
            "sh",
            "-c",
            "echo $$; id -u; ls /proc | grep -c '^[0-9]'; \
             for n in user net ipc pid; do readlink /proc/self/ns/$n; done; ls /sys/class/net",
        ],
    )?;
    join_pod(&mut b, &spid);
    let r = b.run()?.ok()?;
    let lines: Vec<&str> = r.stdout.lines().collect();
    ensure!(lines.len() == 8, "{r:?}");
    ensure!(lines[0] == "1", "pid 1 of its own pid namespace: {r:?}");
    ensure!(
        lines[1] == "0",
        "root of the sandbox's user namespace: {r:?}"
    );
    let procs: u32 = lines[2].trim().parse()?;
    ensure!(procs <= 4, "sees {procs} processes: {r:?}");
    for (line, ns) in lines[3..6].iter().zip(["user", "net", "ipc"]) {
        ensure!(*line == ns_of(&spid, ns)?, "{ns} not the sandbox's: {r:?}");
    }
    ensure!(
        lines[6] != ns_of(&spid, "pid")? && lines[6] != ns_of("self", "pid")?,
        "pid namespace not its own: {r:?}"
    );
    ensure!(lines[7] == "lo", "sysfs of the sandbox's netns: {r:?}");
    Ok(())
}
both!(pod_container_in_joined_userns);

/// `exec` into a pod container (kubectl exec): the process lands in the container's pid
/// namespace, inside the joined user namespace; `delete --force` leaves nothing behind.
fn exec_into_pod_container(rt: Runtime) -> Result<()> {
    let (_sandbox, spid) = sandbox(rt)?;
    // A workload that lives until `delete --force`, not a synchronisation.
    let mut b = Bundle::new(rt, "podexec", &["sleep", "1000"])?;
    join_pod(&mut b, &spid);
    b.create()?.ok()?;
    let pid = b.state()?["pid"].as_i64().context("pid")?.to_string();
    // The init is our child's child but must be reported as the container's pid 1.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let nspid = status
        .lines()
        .find(|l| l.starts_with("NSpid:"))
        .unwrap_or_default()
        .to_string();
    ensure!(nspid.ends_with("\t1"), "state pid is not pid 1: {nspid}");
    b.rt(&["start", &b.id])?.ok()?;
    let r = b
        .rt(&[
            "exec",
            &b.id,
            "sh",
            "-c",
            "readlink /proc/self/ns/pid; readlink /proc/self/ns/user; cat /proc/1/cmdline",
        ])?
        .ok()?;
    let lines: Vec<&str> = r.stdout.lines().collect();
    ensure!(lines.len() == 3, "{r:?}");
    ensure!(lines[0] == ns_of(&pid, "pid")?, "exec pid ns: {r:?}");
    ensure!(lines[1] == ns_of(&spid, "user")?, "exec user ns: {r:?}");
    ensure!(lines[2].starts_with("sleep"), "pid 1 is the init: {r:?}");
    b.rt(&["delete", "--force", &b.id])?.ok()?;
    ensure!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/status"))
                .map(|s| s.contains("State:\tZ"))
                .unwrap_or(true),
        "init survived delete"
    );
    ensure!(
        b.cgroup_dirs().is_empty(),
        "cgroup left: {:?}",
        b.cgroup_dirs()
    );
    Ok(())
}
both!(exec_into_pod_container);

/// `idmap` on a bind mount in a container with its own user namespace maps through the
/// container's mappings, so host root's files are root's inside (instead of the overflow id)
/// and files root writes there are host root's. runc 1.1.5 predates idmapped mounts (1.2), so
/// hako only.
#[test]
fn idmapped_mount_in_user_namespace() -> Result<()> {
    // The volume sits in a directory only host root may search (mode 0700, as kubelet's
    // volume directories): the parent opens it, the container's root never has to.
    let host = tempfile::tempdir()?;
    std::fs::set_permissions(host.path(), std::fs::Permissions::from_mode(0o700))?;
    let vol = host.path().join("vol");
    std::fs::create_dir(&vol)?;
    std::fs::write(vol.join("host-file"), "x")?;
    let plain = tempfile::tempdir()?;
    std::fs::write(plain.path().join("host-file"), "x")?;
    let mut b = Bundle::new(
        Runtime::Hako,
        "usernsidmap",
        &[
            "sh",
            "-c",
            "stat -c %u:%g /m/host-file /plain/host-file; touch /m/made-inside",
        ],
    )?;
    if let Some(ns) = b.config["linux"]["namespaces"].as_array_mut() {
        ns.push(json!({"type": "user"}));
    }
    set_userns_maps(&mut b);
    // Mount points made beforehand: the rootfs belongs to host root, whom the container's
    // root is not.
    for d in ["m", "plain"] {
        std::fs::create_dir(b.rootfs().join(d))?;
    }
    let mounts = b.config["mounts"].as_array_mut().context("mounts")?;
    mounts.push(json!({"destination": "/m", "type": "bind", "source": vol,
                       "options": ["rbind", "idmap"]}));
    mounts.push(
        json!({"destination": "/plain", "type": "bind", "source": plain.path(),
                       "options": ["rbind"]}),
    );
    let r = b.run()?.ok()?;
    ensure!(r.stdout == "0:0\n65534:65534\n", "{r:?}");
    let made = std::fs::metadata(vol.join("made-inside"))?;
    use std::os::unix::fs::MetadataExt;
    ensure!(
        (made.uid(), made.gid()) == (0, 0),
        "written through the idmapped mount as {}:{}",
        made.uid(),
        made.gid()
    );
    Ok(())
}

/// A pod container whose set-up fails after the staged fork (its program does not exist):
/// `create` fails and leaves no process, cgroup or state behind, although the process that
/// failed was forked by `create`'s child.
fn failing_pod_container_leaves_nothing(rt: Runtime) -> Result<()> {
    let (_sandbox, spid) = sandbox(rt)?;
    let mut b = Bundle::new(rt, "podfail", &["/no/such/program"])?;
    join_pod(&mut b, &spid);
    let r = b.create()?;
    ensure!(r.code != 0, "create of a missing program succeeded: {r:?}");
    ensure!(
        b.cgroup_dirs().is_empty(),
        "cgroup left: {:?}",
        b.cgroup_dirs()
    );
    let list = b.rt(&["list", "-q"])?.ok()?;
    ensure!(!list.stdout.contains(&b.id), "state left: {}", list.stdout);
    // No process of ours is left in the sandbox's user namespace but the sandbox's init.
    let userns = ns_of(&spid, "user")?;
    for e in std::fs::read_dir("/proc")?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.parse::<u32>().is_err() || name == spid {
            continue;
        }
        if ns_of(&name, "user").is_ok_and(|u| u == userns) {
            let status =
                std::fs::read_to_string(format!("/proc/{name}/status")).unwrap_or_default();
            ensure!(
                status.contains("State:\tZ"),
                "process {name} left in the pod: {status}"
            );
        }
    }
    Ok(())
}
both!(failing_pod_container_leaves_nothing);

/// A sandbox whose user namespace is new but whose network namespace is pinned by the host (as
/// CRI makes it), then `exec` into it and a pod container joining it: the network namespace
/// belongs to the host's user namespace, so it must be joined before the user namespace (the
/// two-stage join of runc's nsexec, runc #4390).
fn pod_with_a_pinned_netns(rt: Runtime) -> Result<()> {
    let holder = NetnsHolder::start()?;
    // A workload that lives until the bundle is dropped, not a synchronisation.
    let mut s = Bundle::new(rt, "pinsandbox", &["sleep", "1000"])?;
    set_namespaces(
        &mut s,
        json!([{"type": "user"}, {"type": "network", "path": holder.path()}, {"type": "pid"},
               {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]),
    );
    set_userns_maps(&mut s);
    // No fresh sysfs: the network namespace's owner is the host's user namespace (see
    // `new_userns_joins_netns`).
    if let Some(m) = s.config["mounts"].as_array_mut() {
        m.retain(|m| m["destination"] != "/sys");
    }
    s.create()?.ok()?;
    s.rt(&["start", &s.id])?.ok()?;
    let spid = s.state()?["pid"].as_i64().context("pid")?.to_string();
    let netns = ns_of(&holder.0.id().to_string(), "net")?;
    let r = s
        .rt(&[
            "exec",
            &s.id,
            "sh",
            "-c",
            "readlink /proc/self/ns/net; readlink /proc/self/ns/user",
        ])?
        .ok()?;
    let lines: Vec<&str> = r.stdout.lines().collect();
    ensure!(
        lines == [netns.as_str(), ns_of(&spid, "user")?.as_str()],
        "exec: {r:?}"
    );
    let mut b = Bundle::new(
        rt,
        "pinapp",
        &["sh", "-c", "echo $$; readlink /proc/self/ns/net"],
    )?;
    join_pod(&mut b, &spid);
    if let Some(m) = b.config["mounts"].as_array_mut() {
        m.retain(|m| m["destination"] != "/sys");
    }
    let r = b.run()?.ok()?;
    ensure!(r.stdout == format!("1\n{netns}\n"), "pod container: {r:?}");
    Ok(())
}

#[test]
fn pod_with_a_pinned_netns_hako() -> Result<()> {
    pod_with_a_pinned_netns(Runtime::Hako)
}

/// runc 1.1.5 joins the user namespace first and then may not enter the host-owned network
/// namespace (EPERM); runc 1.2 joins in two stages, as hako does.
#[test]
fn pod_with_a_pinned_netns_runc_fails() -> Result<()> {
    if !hako_tests::runc_available() {
        return Ok(());
    }
    let err = match pod_with_a_pinned_netns(Runtime::Runc) {
        Ok(()) => anyhow::bail!("runc 1.1.5 now passes: make this test both!"),
        Err(e) => format!("{e:#}"),
    };
    ensure!(
        err.contains("setns into net namespace: Operation not permitted"),
        "runc failed otherwise: {err}"
    );
    Ok(())
}
