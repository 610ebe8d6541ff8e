//! config-linux.md "Control groups": the container lands in `cgroupsPath`, and each resource
//! reaches its cgroup v1 file (read host-side while the container is `created`). A controller
//! or file the host lacks makes the case a skip, never a pass.

use crate::bundle::Bundle;
use crate::case::{expect, Case, Outcome};
use crate::ctx::Ctx;
use anyhow::Result;
use serde_json::{json, Value};

const S: &str = "cgroups";

/// Creates a container with `resources` merged in and compares cgroup files: each expectation
/// is `(controller, candidate files, predicate text)`; the first candidate file that exists is
/// read and must contain the text (whitespace-normalised).
fn resource_case(
    ctx: &Ctx,
    resources: &Value,
    expectations: &[(&str, &[&str], String)],
) -> Result<Outcome> {
    for (ctrl, files, _) in expectations {
        if !ctx.host.has_controller(ctrl) {
            return Ok(Outcome::Skip(format!(
                "the host has no {ctrl} cgroup hierarchy"
            )));
        }
        // Whether the kernel has the file at all shows at the hierarchy's root (except pids,
        // whose root has no pids.max).
        let root = std::path::Path::new("/sys/fs/cgroup").join(ctrl);
        if *ctrl != "pids" && !files.iter().any(|f| root.join(f).exists()) {
            return Ok(Outcome::Skip(format!(
                "the host's {ctrl} controller has none of {files:?}"
            )));
        }
    }
    let mut b = ctx.bundle()?;
    b.args(&["/bin/sleep", "600"]);
    if let (Some(dst), Some(src)) = (
        b.config["linux"]["resources"].as_object_mut(),
        resources.as_object(),
    ) {
        for (k, v) in src {
            dst.insert(k.clone(), v.clone());
        }
    }
    let c = b.create()?;
    if !c.success() {
        return Ok(Outcome::Fail(format!("create failed: {}", c.stderr.trim())));
    }
    compare(&b, expectations)
}

fn compare(b: &Bundle, expectations: &[(&str, &[&str], String)]) -> Result<Outcome> {
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut problems = Vec::new();
    for (ctrl, files, want) in expectations {
        let dir = b.cgroup_dir(ctrl);
        let Some(file) = files.iter().map(|f| dir.join(f)).find(|p| p.exists()) else {
            if !dir.exists() {
                problems.push(format!("{} does not exist", dir.display()));
                continue;
            }
            return Ok(Outcome::Skip(format!(
                "the host's {ctrl} controller has none of {files:?}"
            )));
        };
        let got = norm(&std::fs::read_to_string(&file).unwrap_or_default());
        if !got.contains(&norm(want)) {
            problems.push(format!("{}: {got:?} lacks {want:?}", file.display()));
        }
    }
    expect(problems.is_empty(), problems.join("; "))
}

type Table = Vec<(
    &'static str,
    Value,
    Vec<(&'static str, &'static [&'static str], String)>,
)>;

/// The cgroup cases.
pub fn cases() -> Vec<Case> {
    let table: Table = vec![
        (
            "pids/limit",
            json!({"pids": {"limit": 100}}),
            vec![("pids", &["pids.max"], "100".into())],
        ),
        (
            "memory/limit",
            json!({"memory": {"limit": 67108864}}),
            vec![("memory", &["memory.limit_in_bytes"], "67108864".into())],
        ),
        (
            "memory/reservation",
            json!({"memory": {"reservation": 33554432}}),
            vec![("memory", &["memory.soft_limit_in_bytes"], "33554432".into())],
        ),
        (
            "memory/swap",
            json!({"memory": {"limit": 67108864, "swap": 134217728}}),
            vec![(
                "memory",
                &["memory.memsw.limit_in_bytes"],
                "134217728".into(),
            )],
        ),
        (
            "memory/swappiness",
            json!({"memory": {"swappiness": 10}}),
            vec![("memory", &["memory.swappiness"], "10".into())],
        ),
        (
            "memory/disable-oom-killer",
            json!({"memory": {"disableOOMKiller": true}}),
            vec![(
                "memory",
                &["memory.oom_control"],
                "oom_kill_disable 1".into(),
            )],
        ),
        (
            "cpu/shares",
            json!({"cpu": {"shares": 512}}),
            vec![("cpu", &["cpu.shares"], "512".into())],
        ),
        (
            "cpu/quota-period",
            json!({"cpu": {"quota": 50000, "period": 100000}}),
            vec![
                ("cpu", &["cpu.cfs_quota_us"], "50000".into()),
                ("cpu", &["cpu.cfs_period_us"], "100000".into()),
            ],
        ),
        (
            "cpuset/cpus",
            json!({"cpu": {"cpus": "0"}}),
            vec![("cpuset", &["cpuset.cpus"], "0".into())],
        ),
        (
            "cpuset/mems",
            json!({"cpu": {"mems": "0"}}),
            vec![("cpuset", &["cpuset.mems"], "0".into())],
        ),
        (
            "blkio/weight",
            json!({"blockIO": {"weight": 500}}),
            vec![("blkio", &["blkio.weight", "blkio.bfq.weight"], "500".into())],
        ),
        (
            "hugetlb/limit",
            json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]}),
            vec![("hugetlb", &["hugetlb.2MB.limit_in_bytes"], "4194304".into())],
        ),
        (
            "net_cls/classid",
            json!({"network": {"classID": 1048577}}),
            vec![("net_cls", &["net_cls.classid"], "1048577".into())],
        ),
        (
            "net_prio/ifpriomap",
            json!({"network": {"priorities": [{"name": "lo", "priority": 5}]}}),
            vec![("net_prio", &["net_prio.ifpriomap"], "lo 5".into())],
        ),
    ];
    let mut v = Vec::new();
    for (name, res, exp) in table {
        v.push(Case::new(S, name, move |ctx| {
            resource_case(ctx, &res, &exp)
        }));
    }
    for (name, key) in [
        ("blkio/throttle-read-bps", "throttleReadBpsDevice"),
        ("blkio/throttle-write-iops", "throttleWriteIOPSDevice"),
    ] {
        v.push(Case::new(S, name, move |ctx| {
            let Some(dev) = ctx.host.block_device.clone() else {
                return Ok(Outcome::Skip(
                    "the host has no block device to throttle".into(),
                ));
            };
            let (major, minor) = dev.split_once(':').unwrap_or(("0", "0"));
            let (major, minor): (u64, u64) = (major.parse()?, minor.parse()?);
            let res =
                json!({"blockIO": {key: [{"major": major, "minor": minor, "rate": 1048576}]}});
            let files: &'static [&'static str] = if key == "throttleReadBpsDevice" {
                &["blkio.throttle.read_bps_device"]
            } else {
                &["blkio.throttle.write_iops_device"]
            };
            resource_case(ctx, &res, &[("blkio", files, format!("{dev} 1048576"))])
        }));
    }
    v.push(Case::new(S, "devices/allow-entry-listed", |ctx| {
        let res = json!({"devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "b", "major": 7, "minor": 0, "access": "r"}]});
        resource_case(ctx, &res, &[("devices", &["devices.list"], "b 7:0 r".into())])
    }));
    v.push(Case::new(S, "path/container-in-cgroups-path", |ctx| {
        let mut b = ctx.bundle()?;
        b.args(&["/bin/sleep", "600"]);
        let c = b.create()?;
        if !c.success() {
            return Ok(Outcome::Fail(format!("create failed: {}", c.stderr.trim())));
        }
        let text = std::fs::read_to_string(format!("/proc/{}/cgroup", b.pid()?))?;
        let want = b.cgroup_path().to_string();
        let wrong: Vec<&str> = text
            .lines()
            .filter(|l| {
                ["pids", "memory", "cpu,", "devices", "freezer", "blkio"]
                    .iter()
                    .any(|c| l.contains(c))
            })
            .filter(|l| !l.ends_with(&format!(":{want}")))
            .collect();
        expect(
            wrong.is_empty() && !text.is_empty(),
            format!("outside {want}: {wrong:?}"),
        )
    }));
    v.push(Case::new(S, "path/removed-on-delete", |ctx| {
        let mut b = ctx.bundle()?;
        b.args(&["/bin/sleep", "600"]);
        b.config["linux"]["resources"]["pids"] = json!({"limit": 50});
        b.create()?.ok("create")?;
        anyhow::ensure!(
            !b.cgroup_dirs().is_empty(),
            "create made no cgroup directory for {}",
            b.cgroup_path()
        );
        b.delete(true)?.ok("delete --force")?;
        let left = b.cgroup_dirs();
        expect(left.is_empty(), format!("left behind: {left:?}"))
    }));
    v
}
