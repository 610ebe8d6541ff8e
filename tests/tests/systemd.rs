//! `--systemd-cgroup` on this host, which has no systemd and no system bus: a create fails with
//! an error that says why and leaves nothing; malformed paths are refused before anything is
//! made; rootless, the driver is refused on this cgroup v1 host. The driver itself is tested with systemd as PID 1 in `vm/systemd.sh`.

use anyhow::{ensure, Result};
use hako_tests::{both, Bundle, Run, Runtime};

/// `--systemd-cgroup create` of `b` with `cgroups_path`.
fn create_systemd(b: &mut Bundle, cgroups_path: &str) -> Result<Run> {
    b.config["linux"]["cgroupsPath"] = cgroups_path.into();
    b.write_config()?;
    let bundle = b.path().to_string_lossy().into_owned();
    b.rt(&["--systemd-cgroup", "create", "--bundle", &bundle, &b.id])
}

/// The unit's cgroup in any hierarchy (v1 or cgroup2) of this host.
fn unit_dirs(rel: &str) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir("/sys/fs/cgroup")
        .map(|d| d.flatten().map(|e| e.path().join(rel)).collect())
        .unwrap_or_default();
    out.push(std::path::Path::new("/sys/fs/cgroup").join(rel));
    out.retain(|p| p.exists());
    out
}

fn create_without_a_bus_fails_cleanly(rt: Runtime) -> Result<()> {
    let mut b = Bundle::new(rt, "sdnobus", &["true"])?;
    let name = b.id.clone();
    let r = create_systemd(&mut b, &format!("system.slice:hakotest:{name}"))?;
    ensure!(r.code != 0, "create without systemd succeeded: {r:?}");
    if rt == Runtime::Hako {
        ensure!(
            r.stderr.contains("D-Bus system bus") && r.stderr.contains("system_bus_socket"),
            "the error names the bus: {r:?}"
        );
    }
    ensure!(b.rt(&["state", &b.id])?.code != 0, "state left");
    let left = unit_dirs(&format!("system.slice/hakotest-{name}.scope"));
    ensure!(left.is_empty(), "cgroup left: {left:?}");
    Ok(())
}
both!(create_without_a_bus_fails_cleanly);

/// Rootless, the unit would belong to the user's manager, which systemd delegates cgroups to on
/// cgroup v2 only: on this hybrid host create is refused before anything is made.
fn rootless_needs_the_unified_hierarchy(rt: Runtime) -> Result<()> {
    let mut b = Bundle::new(rt, "sdrootless", &["true"])?;
    b.config["linux"]["cgroupsPath"] = ":hakotest:x".into();
    b.write_config()?;
    let bundle = b.path().to_string_lossy().into_owned();
    let r = b.rt(&[
        "--rootless",
        "true",
        "--systemd-cgroup",
        "create",
        "--bundle",
        &bundle,
        &b.id,
    ])?;
    ensure!(
        r.code != 0,
        "rootless systemd create on v1 succeeded: {r:?}"
    );
    if rt == Runtime::Hako {
        ensure!(
            r.stderr.contains("needs the unified cgroup hierarchy"),
            "the error says why: {r:?}"
        );
    }
    ensure!(b.rt(&["state", &b.id])?.code != 0, "state left");
    Ok(())
}
both!(rootless_needs_the_unified_hierarchy);

fn malformed_systemd_path_is_refused(rt: Runtime) -> Result<()> {
    for bad in [
        "/absolute/path",
        "only:two",
        "nota-slice-name:p:n",
        "a--b.slice:p:n",
    ] {
        let mut b = Bundle::new(rt, "sdbad", &["true"])?;
        let r = create_systemd(&mut b, bad)?;
        ensure!(r.code != 0, "{bad}: create succeeded: {r:?}");
        if rt == Runtime::Hako {
            ensure!(
                r.stderr.contains(bad),
                "{bad}: the error names the path: {r:?}"
            );
        }
        ensure!(b.rt(&["state", &b.id])?.code != 0, "{bad}: state left");
    }
    Ok(())
}
both!(malformed_systemd_path_is_refused);

/// runc's cgroupfs driver would make a directory named `system.slice:x:y`; hako says which flag
/// the form needs instead.
#[test]
fn systemd_form_without_the_flag_names_the_flag() -> Result<()> {
    let mut b = Bundle::new(Runtime::Hako, "sdnoflag", &["true"])?;
    b.config["linux"]["cgroupsPath"] = "system.slice:x:y".into();
    let r = b.create()?;
    ensure!(
        r.code != 0 && r.stderr.contains("--systemd-cgroup"),
        "{r:?}"
    );
    ensure!(b.rt(&["state", &b.id])?.code != 0, "state left");
    Ok(())
}
