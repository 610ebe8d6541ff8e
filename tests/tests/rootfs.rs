//! The rootfs from inside: mount types and options take effect, devices and sysctls are set,
//! `--no-pivot` and a read-only root work, and hostile images (symlinks pointing out of the
//! rootfs) are refused or contained. Also run against runc.

use anyhow::{ensure, Result};
use hako_tests::{both, Bundle, Runtime};
use serde_json::json;

/// The mountinfo line for `dest`, inside the container.
fn mount_line<'a>(mountinfo: &'a str, dest: &str) -> Option<&'a str> {
    mountinfo
        .lines()
        .rfind(|l| l.split_whitespace().nth(4) == Some(dest))
}

fn mount_options_take_effect(rt: Runtime) -> Result<()> {
    let mut b = Bundle::new(rt, "mountopts", &["cat", "/proc/self/mountinfo"])?;
    let host = tempfile::tempdir()?;
    std::fs::write(host.path().join("file"), "from-host")?;
    let mounts = b.config["mounts"].as_array_mut().expect("mounts");
    mounts.push(json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "noexec", "size=1m", "mode=700"]}));
    mounts.push(json!({"destination": "/hostro", "type": "bind", "source": host.path(), "options": ["rbind", "ro", "nosuid"]}));
    mounts.push(json!({"destination": "/hostrw", "type": "none", "source": host.path(), "options": ["bind", "rprivate"]}));
    let r = b.run()?.ok()?;
    let scratch = mount_line(&r.stdout, "/scratch").unwrap_or_default();
    ensure!(
        scratch.contains("nosuid") && scratch.contains("nodev") && scratch.contains("noexec"),
        "{scratch}"
    );
    ensure!(
        scratch.contains("tmpfs") && scratch.contains("size=1024k") && scratch.contains("mode=700"),
        "{scratch}"
    );
    let ro = mount_line(&r.stdout, "/hostro").unwrap_or_default();
    ensure!(
        ro.split_whitespace()
            .nth(5)
            .is_some_and(|o| o.starts_with("ro,")),
        "bind ro: {ro}"
    );
    let rw = mount_line(&r.stdout, "/hostrw").unwrap_or_default();
    ensure!(
        rw.split_whitespace()
            .nth(5)
            .is_some_and(|o| o.starts_with("rw")),
        "bind rw: {rw}"
    );
    let proc_ = mount_line(&r.stdout, "/proc").unwrap_or_default();
    ensure!(proc_.contains(" - proc "), "{proc_}");
    Ok(())
}
both!(mount_options_take_effect);

fn readonly_root_and_no_pivot(rt: Runtime) -> Result<()> {
    let mut b = Bundle::new(
        rt,
        "roroot",
        &["sh", "-c", "touch /x 2>/dev/null && echo WROTE; echo done"],
    )?;
    b.config["root"]["readonly"] = json!(true);
    let r = b.run()?.ok()?;
    ensure!(r.stdout == "done\n", "{r:?}");
    let b = Bundle::new(rt, "nopivot", &["sh", "-c", "ls /bin/busybox && hostname"])?;
    b.write_config()?;
    let r = b
        .rt(&[
            "run",
            "--no-pivot",
            "--bundle",
            &b.path().to_string_lossy(),
            &b.id,
        ])?
        .ok()?;
    ensure!(r.stdout == "/bin/busybox\nbox\n", "{r:?}");
    Ok(())
}
both!(readonly_root_and_no_pivot);

fn devices_and_sysctls(rt: Runtime) -> Result<()> {
    let mut b = Bundle::new(rt, "devsys", &["sh", "-c", "stat -c '%F %t:%T %a %u:%g' /dev/fuse; cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shm_rmid_forced"])?;
    b.config["linux"]["devices"] = json!([{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438, "uid": 1, "gid": 2}]);
    b.config["linux"]["sysctl"] =
        json!({"net.ipv4.ip_forward": "1", "kernel.shm_rmid_forced": "1"});
    let r = b.run()?.ok()?;
    ensure!(
        r.stdout == "character special file a:e5 666 1:2\n1\n1\n",
        "{r:?}"
    );
    Ok(())
}
both!(devices_and_sysctls);

fn non_namespaced_sysctl_is_refused(rt: Runtime) -> Result<()> {
    let mut b = Bundle::new(rt, "badsysctl", &["true"])?;
    b.config["linux"]["sysctl"] = json!({"vm.swappiness": "10"});
    let r = b.create()?;
    ensure!(r.code != 0 && r.stderr.contains("vm.swappiness"), "{r:?}");
    Ok(())
}
both!(non_namespaced_sysctl_is_refused);

/// An image whose /proc is a symlink to / must not get procfs mounted over the rootfs (or the
/// host): refused (CVE-2019-19921 class).
fn proc_symlink_in_image_is_refused(rt: Runtime) -> Result<()> {
    let b = Bundle::new(rt, "procsym", &["true"])?;
    std::fs::remove_dir(b.rootfs().join("proc"))?;
    std::os::unix::fs::symlink("/", b.rootfs().join("proc"))?;
    let r = b.create()?;
    ensure!(r.code != 0, "a symlinked /proc must be refused: {r:?}");
    ensure!(b.rt(&["state", &b.id])?.code != 0, "nothing left");
    Ok(())
}
both!(proc_symlink_in_image_is_refused);

/// A mount destination that is an absolute symlink in the image resolves inside the rootfs: the
/// host directory it names is never mounted over.
fn mount_destination_symlink_stays_inside(rt: Runtime) -> Result<()> {
    let host = tempfile::tempdir()?;
    std::fs::write(host.path().join("marker"), "host")?;
    let mut b = Bundle::new(rt, "destsym", &["sh", "-c", "ls /evil/ | wc -l"])?;
    std::os::unix::fs::symlink(host.path(), b.rootfs().join("evil"))?;
    b.config["mounts"]
        .as_array_mut()
        .expect("mounts")
        .push(json!({"destination": "/evil", "type": "tmpfs", "source": "tmpfs"}));
    let r = b.run()?;
    // Either refused, or the tmpfs landed inside the rootfs: in both cases the host directory
    // is untouched and no mount appeared on it.
    ensure!(std::fs::read_to_string(host.path().join("marker"))? == "host");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")?;
    ensure!(
        !mounts.contains(&*host.path().to_string_lossy()),
        "a mount landed on the host path"
    );
    if r.code == 0 {
        ensure!(
            r.stdout.trim() == "0",
            "the container sees an empty tmpfs: {r:?}"
        );
    }
    Ok(())
}
both!(mount_destination_symlink_stays_inside);

/// An idmapped bind mount (`uidMappings`/`gidMappings` on the mount, runtime-spec config.md
/// "Mounts"): files owned by 0 in the source show as the mapped host ids inside. runc 1.1.5
/// predates idmapped mounts (1.2), so hako only.
#[test]
fn idmapped_bind_mount_maps_owners() -> Result<()> {
    let src = tempfile::tempdir()?;
    std::fs::write(src.path().join("owned-by-root"), "x")?;
    let mut b = Bundle::new(
        Runtime::Hako,
        "idmap",
        &[
            "sh",
            "-c",
            "stat -c %u:%g /m/owned-by-root; grep ' /m ' /proc/self/mountinfo",
        ],
    )?;
    b.config["mounts"].as_array_mut().expect("mounts").push(json!({
        "destination": "/m", "type": "bind", "source": src.path(), "options": ["rbind", "idmap"],
        "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
        "gidMappings": [{"containerID": 0, "hostID": 2000, "size": 1}]
    }));
    let r = b.run()?.ok()?;
    ensure!(
        r.stdout.starts_with("1000:2000\n") && r.stdout.contains("idmapped"),
        "{r:?}"
    );
    Ok(())
}
