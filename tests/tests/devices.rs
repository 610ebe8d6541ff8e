//! The devices cgroup experiment from the README: denying `c 1:8 rwm` in a running container's
//! `devices.deny` makes `cat /dev/random` inside fail with "Operation not permitted".

use anyhow::{ensure, Result};
use hako_tests::{both, Bundle, Runtime};

fn deny_random_in_running_container(rt: Runtime) -> Result<()> {
    let b = Bundle::new(rt, "devdeny", &["sleep", "1000"])?;
    b.create()?.ok()?;
    b.rt(&["start", &b.id])?.ok()?;
    let before = b
        .rt(&["exec", &b.id, "sh", "-c", "head -c 8 /dev/random | wc -c"])?
        .ok()?;
    ensure!(before.stdout.trim() == "8", "{before:?}");
    let deny = std::path::Path::new("/sys/fs/cgroup/devices")
        .join(b.cgroup_path().trim_start_matches('/'))
        .join("devices.deny");
    std::fs::write(&deny, "c 1:8 rwm")?;
    let after = b.rt(&["exec", &b.id, "sh", "-c", "cat /dev/random"])?;
    ensure!(
        after.code != 0 && after.stderr.contains("Operation not permitted"),
        "{after:?}"
    );
    let list = std::fs::read_to_string(deny.with_file_name("devices.list"))?;
    ensure!(
        !list.lines().any(|l| l == "c 1:8 rwm"),
        "devices.list: {list}"
    );
    Ok(())
}
both!(deny_random_in_running_container);
