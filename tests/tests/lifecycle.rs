//! The container lifecycle through the real binary: run, create/start/state/kill/delete, and the
//! error phrases clients match. Tests named in `both!` also run against runc (the oracle).

use anyhow::{ensure, Result};
use hako_tests::{both, Bundle, Runtime};

fn run_prints_and_exits_with_status(rt: Runtime) -> Result<()> {
    let b = Bundle::new(
        rt,
        "echo",
        &["sh", "-c", "echo hello from $(hostname); exit 3"],
    )?;
    let r = b.run()?;
    ensure!(r.code == 3, "exit code {} ({})", r.code, r.stderr);
    ensure!(r.stdout.trim() == "hello from box", "stdout {:?}", r.stdout);
    ensure!(
        b.rt(&["state", &b.id])?.code != 0,
        "run deletes the container"
    );
    Ok(())
}
both!(run_prints_and_exits_with_status);

fn run_reports_death_by_signal(rt: Runtime) -> Result<()> {
    // The init tells the test it runs through a FIFO in its rootfs (no polling), then the test
    // kills it from outside: an init cannot be SIGKILLed from inside its own pid namespace.
    let b = Bundle::new(
        rt,
        "sig",
        &["sh", "-c", "echo up > /ready; exec sleep 1000"],
    )?;
    let fifo = b.rootfs().join("ready");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))?;
    b.write_config()?;
    let mut cmd = b.cmd();
    cmd.args(["run", "--bundle", &b.path().to_string_lossy(), &b.id]);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(hako_tests::output_with_timeout(
            cmd,
            std::time::Duration::from_secs(60),
        ));
    });
    let up = hako_tests::read_with_timeout(&fifo, std::time::Duration::from_secs(30))?;
    ensure!(up.trim() == "up");
    b.rt(&["kill", &b.id, "KILL"])?.ok()?;
    let r = rx.recv_timeout(std::time::Duration::from_secs(60))??;
    ensure!(r.code == 128 + 9, "exit code {} ({})", r.code, r.stderr);
    Ok(())
}
both!(run_reports_death_by_signal);

fn full_lifecycle(rt: Runtime) -> Result<()> {
    let b = Bundle::new(rt, "life", &["sleep", "1000"])?;
    b.create()?.ok()?;
    let st = b.state()?;
    ensure!(st["status"] == "created", "after create: {st}");
    ensure!(st["pid"].as_i64().unwrap_or(0) > 0, "pid in {st}");
    ensure!(st["id"] == b.id.as_str());
    ensure!(
        st["bundle"].as_str() == Some(&*b.path().to_string_lossy()),
        "bundle in {st}"
    );
    ensure!(
        st["ociVersion"].is_string() && st["created"].is_string(),
        "fields in {st}"
    );
    b.rt(&["start", &b.id])?.ok()?;
    ensure!(b.status()? == "running");
    let again = b.rt(&["start", &b.id])?;
    ensure!(again.code != 0, "second start must fail");
    b.rt(&["kill", &b.id, "KILL"])?.ok()?;
    b.wait_exit()?;
    ensure!(b.status()? == "stopped");
    let st = b.state()?;
    ensure!(st["pid"] == 0, "stopped pid is 0: {st}");
    let k = b.rt(&["kill", &b.id, "9"])?;
    ensure!(
        k.code != 0 && k.stderr.contains("container not running"),
        "kill stopped: {k:?}"
    );
    b.rt(&["delete", &b.id])?.ok()?;
    let gone = b.rt(&["state", &b.id])?;
    ensure!(
        gone.code != 0 && gone.stderr.contains("container does not exist"),
        "{gone:?}"
    );
    ensure!(
        b.cgroup_dirs().is_empty(),
        "cgroup left: {:?}",
        b.cgroup_dirs()
    );
    Ok(())
}
both!(full_lifecycle);

fn signals_by_name_and_number(rt: Runtime) -> Result<()> {
    // A pid 1 only receives signals it has a handler for: the shell traps USR1, then says so
    // through a FIFO in its rootfs (so the signal cannot arrive before the trap exists).
    let b = Bundle::new(
        rt,
        "sigs",
        &[
            "sh",
            "-c",
            "trap 'exit 42' USR1; echo trapped > /ready; while :; do sleep 1; done",
        ],
    )?;
    let fifo = b.rootfs().join("ready");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))?;
    b.create()?.ok()?;
    b.rt(&["start", &b.id])?.ok()?;
    let said = hako_tests::read_with_timeout(&fifo, std::time::Duration::from_secs(30))?;
    ensure!(said.trim() == "trapped");
    b.rt(&["kill", &b.id, "SIGUSR1"])?.ok()?;
    b.wait_exit()?;
    ensure!(b.status()? == "stopped");
    Ok(())
}
both!(signals_by_name_and_number);

fn delete_running_needs_force(rt: Runtime) -> Result<()> {
    let b = Bundle::new(rt, "delrun", &["sleep", "1000"])?;
    b.create()?.ok()?;
    b.rt(&["start", &b.id])?.ok()?;
    let d = b.rt(&["delete", &b.id])?;
    ensure!(d.code != 0, "delete of a running container must fail");
    ensure!(b.status()? == "running", "and leave it untouched");
    b.rt(&["delete", "--force", &b.id])?.ok()?;
    ensure!(b.rt(&["state", &b.id])?.code != 0);
    ensure!(
        b.cgroup_dirs().is_empty(),
        "cgroup left: {:?}",
        b.cgroup_dirs()
    );
    Ok(())
}
both!(delete_running_needs_force);

fn delete_force_of_missing_container_succeeds(rt: Runtime) -> Result<()> {
    let b = Bundle::new(rt, "missing", &["true"])?;
    b.rt(&["delete", "--force", "no-such-container"])?.ok()?;
    let d = b.rt(&["delete", "no-such-container"])?;
    ensure!(
        d.code != 0 && d.stderr.contains("container does not exist"),
        "{d:?}"
    );
    Ok(())
}
both!(delete_force_of_missing_container_succeeds);

fn duplicate_id_is_refused(rt: Runtime) -> Result<()> {
    let b = Bundle::new(rt, "dup", &["sleep", "1000"])?;
    b.create()?.ok()?;
    let again = b.create()?;
    // runc 1.0 said "container with id exists", runc 1.1 "container with given ID already exists".
    let phrase = if rt == Runtime::Runc {
        "already exists"
    } else {
        "container with id exists"
    };
    ensure!(
        again.code != 0 && again.stderr.contains(phrase),
        "{again:?}"
    );
    ensure!(b.status()? == "created", "the first one is untouched");
    Ok(())
}
both!(duplicate_id_is_refused);

/// The spec (runtime.md, "Delete"): deleting a container that is not stopped MUST fail. runc lets a
/// `created` container go without --force; hako follows the spec, so this runs on hako only.
#[test]
fn delete_of_created_container_needs_force() -> Result<()> {
    let b = Bundle::new(Runtime::Hako, "delcreated", &["sleep", "1000"])?;
    b.create()?.ok()?;
    let d = b.rt(&["delete", &b.id])?;
    ensure!(d.code != 0, "delete of a created container must fail");
    ensure!(b.status()? == "created");
    b.rt(&["delete", "-f", &b.id])?.ok()?;
    Ok(())
}

fn list_shows_containers(rt: Runtime) -> Result<()> {
    let b = Bundle::new(rt, "list", &["sleep", "1000"])?;
    b.create()?.ok()?;
    let q = b.rt(&["list", "-q"])?.ok()?;
    ensure!(q.stdout.trim() == b.id, "{q:?}");
    let j = b.rt(&["list", "--format", "json"])?.ok()?;
    let v: serde_json::Value = serde_json::from_str(&j.stdout)?;
    ensure!(
        v[0]["id"] == b.id.as_str() && v[0]["status"] == "created",
        "{v}"
    );
    let t = b.rt(&["list"])?.ok()?;
    ensure!(
        t.stdout.starts_with("ID") && t.stdout.contains(&b.id),
        "{t:?}"
    );
    Ok(())
}
both!(list_shows_containers);

/// `list` of an empty root, byte for byte as runc prints it: the header alone, each column at
/// least 12 wide (Go's tabwriter with minwidth 12), and JSON `null` (runc's nil slice). hako
/// padded by 3 only and printed `[]` before issue 19.
fn list_of_nothing_as_runc(rt: Runtime) -> Result<()> {
    let b = Bundle::new(rt, "listnone", &["true"])?;
    let t = b.rt(&["list"])?.ok()?;
    ensure!(
        t.stdout == "ID          PID         STATUS      BUNDLE      CREATED     OWNER\n",
        "{t:?}"
    );
    let j = b.rt(&["list", "--format", "json"])?.ok()?;
    ensure!(j.stdout == "null\n", "{j:?}");
    Ok(())
}
both!(list_of_nothing_as_runc);

/// `list` derives each status as `state` does, through its own lookups (the store and cgroup
/// directories opened once, the init known by its pidfs inode): created, running, paused, and
/// stopped the moment the init is killed, never a stale `running`.
fn list_status_follows_the_container(rt: Runtime) -> Result<()> {
    let b = Bundle::new(rt, "liststatus", &["sleep", "1000"])?;
    let listed = || -> Result<(String, i64)> {
        let j = b.rt(&["list", "--format", "json"])?.ok()?;
        let v: serde_json::Value = serde_json::from_str(&j.stdout)?;
        ensure!(v[0]["id"] == b.id.as_str(), "{v}");
        let status = v[0]["status"].as_str().unwrap_or_default().to_string();
        Ok((status, v[0]["pid"].as_i64().unwrap_or(-1)))
    };
    b.create()?.ok()?;
    let pid = b.state()?["pid"].as_i64().unwrap_or(0);
    ensure!(listed()? == ("created".into(), pid));
    b.rt(&["start", &b.id])?.ok()?;
    ensure!(listed()? == ("running".into(), pid));
    b.rt(&["pause", &b.id])?.ok()?;
    ensure!(listed()? == ("paused".into(), pid));
    b.rt(&["resume", &b.id])?.ok()?;
    ensure!(listed()? == ("running".into(), pid));
    b.rt(&["kill", &b.id, "KILL"])?.ok()?;
    b.wait_exit()?;
    ensure!(listed()? == ("stopped".into(), 0));
    b.rt(&["delete", &b.id])?.ok()?;
    Ok(())
}
both!(list_status_follows_the_container);

fn ps_lists_container_pids(rt: Runtime) -> Result<()> {
    let b = Bundle::new(rt, "ps", &["sleep", "1000"])?;
    b.create()?.ok()?;
    b.rt(&["start", &b.id])?.ok()?;
    let pid = b.state()?["pid"].as_i64().unwrap_or(0);
    let r = b.rt(&["ps", "--format", "json", &b.id])?.ok()?;
    let pids: Vec<i64> = serde_json::from_str(&r.stdout)?;
    ensure!(pids == vec![pid], "ps {pids:?} vs init {pid}");
    Ok(())
}
both!(ps_lists_container_pids);

fn pause_and_resume(rt: Runtime) -> Result<()> {
    let b = Bundle::new(rt, "pause", &["sleep", "1000"])?;
    b.create()?.ok()?;
    b.rt(&["start", &b.id])?.ok()?;
    b.rt(&["pause", &b.id])?.ok()?;
    ensure!(b.status()? == "paused");
    b.rt(&["resume", &b.id])?.ok()?;
    ensure!(b.status()? == "running");
    b.rt(&["pause", &b.id])?.ok()?;
    // A paused container must still be deletable with --force (thaw after kill, runc #3134).
    b.rt(&["delete", "--force", &b.id])?.ok()?;
    ensure!(
        b.cgroup_dirs().is_empty(),
        "cgroup left: {:?}",
        b.cgroup_dirs()
    );
    Ok(())
}
both!(pause_and_resume);

fn version_and_features(rt: Runtime) -> Result<()> {
    let b = Bundle::new(rt, "feat", &["true"])?;
    let v = b.rt(&["--version"])?.ok()?;
    ensure!(
        v.stdout.contains("version") && v.stdout.contains("spec"),
        "{v:?}"
    );
    let f = b.rt(&["features"])?.ok()?;
    let j: serde_json::Value = serde_json::from_str(&f.stdout)?;
    ensure!(
        j["ociVersionMin"].is_string()
            && j["hooks"].is_array()
            && j["linux"]["namespaces"].is_array(),
        "{j}"
    );
    Ok(())
}
both!(version_and_features);
