//! config-linux.md "Control groups": the container lands in `cgroupsPath`, and each resource
//! reaches its cgroup file (read host-side while the container is `created`). A controller
//! or file the host lacks makes the case a skip, never a pass.
//!
//! On a v1 or hybrid host the v1 files are read as written. On a unified (pure v2) host the
//! v2 file is read with runc's conversions (runc's libcontainer/cgroups/fs2 and
//! docs/systemd.md; the kernel's Documentation/admin-guide/cgroup-v2.rst): memory.max,
//! memory.low for the reservation, memory.swap.max = swap − limit, cpu.max "quota period",
//! cpu.weight from shares, io.weight from the blkio weight (or io.bfq.weight as is), io.max
//! throttling, `hugetlb.<size>.max`. v2 has no devices.list (an eBPF program filters devices),
//! so the device allow-list is checked from inside the container instead.

use crate::bundle::Bundle;
use crate::case::{expect, skip, Case, Outcome};
use crate::ctx::Ctx;
use anyhow::Result;
use serde_json::{json, Value};

const S: &str = "cgroups";

/// One cgroup file to compare: in `ctrl`'s hierarchy (v1) or with `ctrl` enabled (v2), the
/// first candidate file that exists is read and must contain its text (whitespace-normalised).
struct Want {
    ctrl: &'static str,
    candidates: Vec<(&'static str, String)>,
    /// The file must read exactly the text (not merely contain it).
    exact: bool,
}

/// A [`Want`] with a single candidate file.
fn want(ctrl: &'static str, file: &'static str, text: impl Into<String>) -> Want {
    Want {
        ctrl,
        candidates: vec![(file, text.into())],
        exact: false,
    }
}

/// A [`Want`] whose file must read exactly `text`.
fn exactly(ctrl: &'static str, file: &'static str, text: impl Into<String>) -> Want {
    Want {
        exact: true,
        ..want(ctrl, file, text)
    }
}

impl Want {
    /// Adds a later candidate file with its own expected text.
    fn or(mut self, file: &'static str, text: impl Into<String>) -> Want {
        self.candidates.push((file, text.into()));
        self
    }
}

/// What a case expects on a unified host: files to compare, or why v2 has no equivalent.
type V2 = std::result::Result<Vec<Want>, &'static str>;

/// runc ≥ 1.3.2's cpu.shares → cpu.weight map (libcontainer/cgroups, `ConvertCPUSharesToCgroupV2Value`):
/// quadratic in log2(shares) so that 2 → 1, 1024 → 100 and 262144 → 10000. Copied, not linked:
/// the suite links nothing of hako (hako-cgroups has the same formula as
/// `cpu_shares_to_weight`).
fn cpu_shares_to_weight(shares: u64) -> u64 {
    match shares {
        0 => 0,
        1..=2 => 1,
        262_144.. => 10_000,
        _ => {
            #[allow(clippy::cast_precision_loss)] // shares < 2^18, exact in f64
            let l = (shares as f64).log2();
            let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // in 1..=10000
            let w = 10f64.powf(exponent).ceil() as u64;
            w.clamp(1, 10_000)
        }
    }
}

/// runc's blkio.weight (10..=1000) → io.weight (1..=10000) linear map.
fn blkio_weight_to_io_weight(weight: u64) -> u64 {
    1 + weight.saturating_sub(10) * 9999 / 990
}

/// Creates a container with `resources` merged in and compares its cgroup files with the v1
/// or the v2 expectations, whichever the host has.
fn resource_case(ctx: &Ctx, resources: &Value, v1: &[Want], v2: &V2) -> Result<Outcome> {
    let wants: &[Want] = if ctx.host.unified {
        match v2 {
            Ok(w) => w,
            Err(why) => {
                return Ok(skip(
                    "/sys/fs/cgroup (cgroup2 unified mount)",
                    format!("cgroup v2 has {why}"),
                ))
            }
        }
    } else {
        v1
    };
    for w in wants {
        let ctrl = w.ctrl;
        let files: Vec<&str> = w.candidates.iter().map(|(f, _)| *f).collect();
        if !ctx.host.has_controller(ctrl) {
            let probed = if ctx.host.unified {
                "/sys/fs/cgroup/cgroup.controllers"
            } else {
                "the cgroup v1 hierarchies under /sys/fs/cgroup"
            };
            return Ok(skip(probed, format!("no {ctrl}")));
        }
        // Whether the kernel has the file at all shows at the v1 hierarchy's root (except
        // pids, whose root has no pids.max). The v2 root has no resource files: there a
        // missing file shows in the container's own cgroup (see `compare`).
        let root = std::path::Path::new("/sys/fs/cgroup").join(ctrl);
        if !ctx.host.unified && ctrl != "pids" && !files.iter().any(|f| root.join(f).exists()) {
            return Ok(skip(
                format!("{files:?} in {}", root.display()),
                "none exists",
            ));
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
    compare(ctx, &b, wants)
}

fn compare(ctx: &Ctx, b: &Bundle, wants: &[Want]) -> Result<Outcome> {
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut problems = Vec::new();
    for w in wants {
        let ctrl = w.ctrl;
        let dir = b.cgroup_dir(ctrl);
        if ctx.host.unified && dir.exists() {
            // A v2 controller's files appear only once the parent enables it in
            // cgroup.subtree_control, which is the runtime's job.
            let enabled = std::fs::read_to_string(dir.join("cgroup.controllers"))
                .unwrap_or_default()
                .split_whitespace()
                .any(|c| c == ctrl);
            if !enabled {
                problems.push(format!(
                    "{ctrl} is not enabled in {}",
                    dir.join("cgroup.controllers").display()
                ));
                continue;
            }
        }
        let Some((file, text)) = w
            .candidates
            .iter()
            .map(|(f, t)| (dir.join(f), t))
            .find(|(p, _)| p.exists())
        else {
            if !dir.exists() {
                problems.push(format!("{} does not exist", dir.display()));
                continue;
            }
            let files: Vec<&str> = w.candidates.iter().map(|(f, _)| *f).collect();
            return Ok(skip(
                format!("{files:?} in {}", dir.display()),
                "none exists",
            ));
        };
        let got = norm(&std::fs::read_to_string(&file).unwrap_or_default());
        if w.exact && got != norm(text) {
            problems.push(format!("{}: {got:?} is not {text:?}", file.display()));
        } else if !got.contains(&norm(text)) {
            problems.push(format!("{}: {got:?} lacks {text:?}", file.display()));
        }
    }
    expect(problems.is_empty(), problems.join("; "))
}

/// A resource case: name, the resources merged into the config, v1 and v2 expectations.
type Row = (&'static str, Value, Vec<Want>, V2);

/// The resource cases read host-side.
fn table() -> Vec<Row> {
    vec![
        (
            "pids/limit",
            json!({"pids": {"limit": 100}}),
            vec![want("pids", "pids.max", "100")],
            Ok(vec![want("pids", "pids.max", "100")]),
        ),
        (
            "memory/limit",
            json!({"memory": {"limit": 67108864}}),
            vec![want("memory", "memory.limit_in_bytes", "67108864")],
            Ok(vec![want("memory", "memory.max", "67108864")]),
        ),
        (
            "memory/reservation",
            json!({"memory": {"reservation": 33554432}}),
            vec![want("memory", "memory.soft_limit_in_bytes", "33554432")],
            Ok(vec![want("memory", "memory.low", "33554432")]),
        ),
        (
            "memory/swap",
            json!({"memory": {"limit": 67108864, "swap": 134217728}}),
            vec![want("memory", "memory.memsw.limit_in_bytes", "134217728")],
            // OCI swap is memory+swap; v2's memory.swap.max is swap alone.
            Ok(vec![
                want("memory", "memory.max", "67108864"),
                want(
                    "memory",
                    "memory.swap.max",
                    (134217728 - 67108864).to_string(),
                ),
            ]),
        ),
        (
            "memory/swappiness",
            json!({"memory": {"swappiness": 10}}),
            vec![want("memory", "memory.swappiness", "10")],
            Err("no per-cgroup swappiness"),
        ),
        (
            "memory/disable-oom-killer",
            json!({"memory": {"disableOOMKiller": true}}),
            vec![want("memory", "memory.oom_control", "oom_kill_disable 1")],
            Err("no oom_control"),
        ),
        (
            "cpu/shares",
            json!({"cpu": {"shares": 512}}),
            vec![want("cpu", "cpu.shares", "512")],
            Ok(vec![want(
                "cpu",
                "cpu.weight",
                cpu_shares_to_weight(512).to_string(),
            )]),
        ),
        (
            "cpu/quota-period",
            json!({"cpu": {"quota": 50000, "period": 100000}}),
            vec![
                want("cpu", "cpu.cfs_quota_us", "50000"),
                want("cpu", "cpu.cfs_period_us", "100000"),
            ],
            Ok(vec![want("cpu", "cpu.max", "50000 100000")]),
        ),
        (
            "blkio/weight",
            json!({"blockIO": {"weight": 500}}),
            vec![want("blkio", "blkio.weight", "500").or("blkio.bfq.weight", "500")],
            // With BFQ the weight goes to io.bfq.weight as is (same 1..=1000 range), otherwise
            // converted to io.weight ("default N").
            Ok(vec![want("io", "io.bfq.weight", "500").or(
                "io.weight",
                format!("default {}", blkio_weight_to_io_weight(500)),
            )]),
        ),
        (
            "hugetlb/limit",
            json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]}),
            vec![want("hugetlb", "hugetlb.2MB.limit_in_bytes", "4194304")],
            Ok(vec![want("hugetlb", "hugetlb.2MB.max", "4194304")]),
        ),
        (
            "net_cls/classid",
            json!({"network": {"classID": 1048577}}),
            vec![want("net_cls", "net_cls.classid", "1048577")],
            Err("no net_cls controller"),
        ),
        (
            "net_prio/ifpriomap",
            json!({"network": {"priorities": [{"name": "lo", "priority": 5}]}}),
            vec![want("net_prio", "net_prio.ifpriomap", "lo 5")],
            Err("no net_prio controller"),
        ),
    ]
}

/// The cgroup cases.
pub fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for (name, res, v1, v2) in table() {
        v.push(Case::new(S, name, move |ctx| {
            resource_case(ctx, &res, &v1, &v2)
        }));
    }
    for (name, key) in [
        ("blkio/throttle-read-bps", "throttleReadBpsDevice"),
        ("blkio/throttle-write-iops", "throttleWriteIOPSDevice"),
    ] {
        v.push(Case::new(S, name, move |ctx| {
            let Some(dev) = ctx.host.block_device.clone() else {
                return Ok(skip(
                    "/sys/block (other than loop, ram, zram)",
                    "no block device to throttle",
                ));
            };
            let (major, minor) = dev.split_once(':').unwrap_or(("0", "0"));
            let (major, minor): (u64, u64) = (major.parse()?, minor.parse()?);
            let res =
                json!({"blockIO": {key: [{"major": major, "minor": minor, "rate": 1048576}]}});
            let (v1_file, v2_key) = if key == "throttleReadBpsDevice" {
                ("blkio.throttle.read_bps_device", "rbps")
            } else {
                ("blkio.throttle.write_iops_device", "wiops")
            };
            // io.max has one line per device: "MAJ:MIN rbps=.. wbps=.. riops=.. wiops=..".
            let v2 = Ok(vec![
                want("io", "io.max", format!("{dev} rbps=")),
                want("io", "io.max", format!("{v2_key}=1048576")),
            ]);
            resource_case(
                ctx,
                &res,
                &[want("blkio", v1_file, format!("{dev} 1048576"))],
                &v2,
            )
        }));
    }
    // cpuset: a value that differs from what the container's cgroup inherits (the parent's
    // set, here the root's), read back exactly; the last cpu/node, so that it exists.
    for (name, key, file) in [
        ("cpuset/cpus", "cpus", "cpuset.cpus"),
        ("cpuset/mems", "mems", "cpuset.mems"),
    ] {
        v.push(Case::new(S, name, move |ctx| {
            let root = if ctx.host.unified {
                format!("/sys/fs/cgroup/{file}.effective")
            } else {
                format!("/sys/fs/cgroup/cpuset/{file}")
            };
            let all = std::fs::read_to_string(&root).unwrap_or_default();
            let Some(last) = last_of_list(all.trim()) else {
                return Ok(skip(&root, format!("{:?}: no cpuset to read", all.trim())));
            };
            if all.trim() == last.to_string() {
                return Ok(skip(
                    &root,
                    format!(
                        "{:?}: one {key} entry only, so no value differs from the inherited one",
                        all.trim()
                    ),
                ));
            }
            let res = json!({"cpu": {key: last.to_string()}});
            let w = vec![exactly("cpuset", file, last.to_string())];
            resource_case(
                ctx,
                &res,
                &w,
                &Ok(vec![exactly("cpuset", file, last.to_string())]),
            )
        }));
    }
    v.push(Case::new(S, "devices/allow-entry-listed", |ctx| {
        let res = json!({"devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "b", "major": 7, "minor": 0, "access": "r"}]});
        if ctx.host.unified {
            return devices_from_inside(ctx, &res);
        }
        resource_case(
            ctx,
            &res,
            &[want("devices", "devices.list", "b 7:0 r")],
            &Err("unused"),
        )
    }));
    v.push(
        Case::new(S, "path/container-in-cgroups-path", |ctx| {
            let mut b = ctx.bundle()?;
            b.args(&["/bin/sleep", "600"]);
            let c = b.create()?;
            if !c.success() {
                return Ok(Outcome::Fail(format!("create failed: {}", c.stderr.trim())));
            }
            let text = std::fs::read_to_string(format!("/proc/{}/cgroup", b.pid()?))?;
            let want = b.cgroup_path().to_string();
            // v1: one line per hierarchy; v2: the single "0::<path>" line.
            let wrong: Vec<&str> = text
                .lines()
                .filter(|l| {
                    if ctx.host.unified {
                        l.starts_with("0::")
                    } else {
                        ["pids", "memory", "cpu,", "devices", "freezer", "blkio"]
                            .iter()
                            .any(|c| l.contains(c))
                    }
                })
                .filter(|l| !l.ends_with(&format!(":{want}")))
                .collect();
            let seen = !ctx.host.unified || text.lines().any(|l| l.starts_with("0::"));
            expect(
                wrong.is_empty() && !text.is_empty() && seen,
                format!("outside {want}: {wrong:?} in {text:?}"),
            )
        })
        .mutate_config("a cgroupsPath nested in the case's", |cfg| {
            if let Some(p) = cfg["linux"]["cgroupsPath"].as_str() {
                cfg["linux"]["cgroupsPath"] = json!(format!("{p}/mutant"));
            }
        }),
    );
    v.push(
        Case::new(S, "path/removed-on-delete", |ctx| {
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
        })
        .misbehave(crate::mutation::Misbehaviour::KeepCgroup),
    );
    v
}

/// The highest number of a cpuset list (`0-3,6`).
fn last_of_list(list: &str) -> Option<u32> {
    list.split(',')
        .filter_map(|r| r.rsplit('-').next()?.trim().parse().ok())
        .max()
}

/// v2 has no devices.list to read: the allow list `res` (deny all, then allow `b 7:0 r`) is
/// checked from inside, where opening the allowed node for reading succeeds and opening a
/// node the list does not allow fails with EPERM.
fn devices_from_inside(ctx: &Ctx, res: &Value) -> Result<Outcome> {
    let mut b = ctx.bundle()?;
    b.config["linux"]["resources"]["devices"] = res["devices"].clone();
    b.config["linux"]["devices"] = json!([
        {"path": "/dev/conf-loop0", "type": "b", "major": 7, "minor": 0, "fileMode": 432},
        {"path": "/dev/conf-loop1", "type": "b", "major": 7, "minor": 1, "fileMode": 432},
    ]);
    b.annotate("org.hako.conformance.open:/dev/conf-loop0", "ok");
    b.annotate("org.hako.conformance.open:/dev/conf-loop1", "errno=1");
    b.check(&["open"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_weight_follows_runc() {
        // runc's documented anchor points, and the value the shares case expects.
        assert_eq!(cpu_shares_to_weight(2), 1);
        assert_eq!(cpu_shares_to_weight(1024), 100);
        assert_eq!(cpu_shares_to_weight(262_144), 10_000);
        assert_eq!(cpu_shares_to_weight(512), 59);
    }

    #[test]
    fn io_weight_follows_runc() {
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(500), 4950);
        assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
    }

    #[test]
    fn every_case_has_a_v2_answer() {
        for (name, _, v1, v2) in table() {
            assert!(!v1.is_empty(), "{name}");
            if let Ok(w) = v2 {
                assert!(!w.is_empty(), "{name}");
            }
        }
    }
}
