//! Mount types and options that take effect, read from inside the container: `cgroup` (v1
//! hierarchies on this hybrid host) with and without a cgroup namespace, `cgroup2`, `overlay`,
//! and bind options the other files do not show working (submounts of `rbind`, propagation in
//! mountinfo's optional fields, nosuid/nodev/noexec, atime). Also run against runc: the facts
//! compared are semantic (which filesystem, which root, which flags), not mountinfo bytes.
//! Where runc 1.1.5 departs from the runtime spec (config.md "Mounts"), the test says so and
//! holds only hako to the spec.

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use hako_tests::{both, Bundle, Runtime};
use nix::mount::{MntFlags, MsFlags};
use serde_json::json;

/// One line of /proc/self/mountinfo (proc(5)).
#[derive(Debug)]
struct MountInfo {
    /// Field 4: the root of the mount within its filesystem.
    root: String,
    /// Field 5: the mount point.
    point: String,
    /// Field 6: per-mount options (`ro`, `nosuid`, ...).
    opts: Vec<String>,
    /// Optional fields (`shared:N`, `master:N`, ...).
    optional: Vec<String>,
    /// Filesystem type after the separator.
    fstype: String,
    /// Per-superblock options.
    super_opts: Vec<String>,
}

impl MountInfo {
    fn has_opt(&self, o: &str) -> bool {
        self.opts.iter().any(|x| x == o)
    }

    fn has_optional(&self, prefix: &str) -> bool {
        self.optional.iter().any(|x| x.starts_with(prefix))
    }
}

fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let f: Vec<&str> = left.split_whitespace().collect();
            let r: Vec<&str> = right.split_whitespace().collect();
            if f.len() < 6 || r.len() < 3 {
                return None;
            }
            Some(MountInfo {
                root: f[3].to_string(),
                point: f[4].to_string(),
                opts: f[5].split(',').map(str::to_string).collect(),
                optional: f[6..].iter().map(|s| s.to_string()).collect(),
                fstype: r[0].to_string(),
                super_opts: r[2].split(',').map(str::to_string).collect(),
            })
        })
        .collect()
}

/// The topmost mount at `point`.
fn at<'a>(mounts: &'a [MountInfo], point: &str) -> Result<&'a MountInfo> {
    mounts
        .iter()
        .rfind(|m| m.point == point)
        .with_context(|| format!("no mount at {point}: {mounts:#?}"))
}

/// Splits a script's output at `---` lines (the script echoes one between sections).
fn sections(out: &str) -> Vec<&str> {
    out.split("---\n").collect()
}

fn push_mount(b: &mut Bundle, m: serde_json::Value) {
    if let Some(a) = b.config["mounts"].as_array_mut() {
        a.push(m);
    }
}

/// A mount the test made on the host, detached on drop even if the test fails.
struct HostMount(PathBuf);

impl HostMount {
    fn tmpfs(at: &Path) -> Result<Self> {
        nix::mount::mount(
            Some("tmpfs"),
            at,
            Some("tmpfs"),
            MsFlags::empty(),
            Some("size=1m"),
        )
        .with_context(|| format!("mount tmpfs on {}", at.display()))?;
        Ok(HostMount(at.to_path_buf()))
    }
}

impl Drop for HostMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, MntFlags::MNT_DETACH);
    }
}

/// A directory the container may create inside its own cgroup, removed on drop (before the
/// bundle's drop removes the cgroup itself) so a failed test leaves no cgroup behind.
struct SubCgroup(PathBuf);

impl Drop for SubCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// The host's v1 hierarchies under /sys/fs/cgroup: (directory name, superblock option naming
/// the controller, e.g. `memory` or `name=systemd`).
fn host_v1_hierarchies() -> Result<Vec<(String, String)>> {
    let mi = std::fs::read_to_string("/proc/self/mountinfo")?;
    let mut out = Vec::new();
    for m in parse_mountinfo(&mi) {
        if m.fstype != "cgroup" {
            continue;
        }
        let Some(name) = m.point.strip_prefix("/sys/fs/cgroup/") else {
            continue;
        };
        let ctrl = m
            .super_opts
            .iter()
            .find(|o| *o != "rw" && *o != "ro")
            .cloned()
            .unwrap_or_default();
        out.push((name.to_string(), ctrl));
    }
    ensure!(!out.is_empty(), "this test needs a v1 or hybrid host");
    Ok(out)
}

const MEMORY_LIMIT: u64 = 64 << 20;

/// `type: cgroup` at /sys/fs/cgroup: one entry per v1 hierarchy, each rooted at the
/// container's own cgroup (the cgroupsPath without a cgroup namespace, `/` with one), the
/// memory limit readable, no other cgroup of the host visible; `ro` refuses writes, without it
/// the container may make a child cgroup.
fn cgroup_v1(rt: Runtime, cgroupns: bool, ro: bool) -> Result<()> {
    let tag = format!(
        "cg1-{}-{}",
        if cgroupns { "ns" } else { "hostns" },
        if ro { "ro" } else { "rw" }
    );
    let script = "cat /proc/self/cgroup; echo ---; cat /proc/self/mountinfo; echo ---; \
        cat /sys/fs/cgroup/memory/memory.limit_in_bytes; echo ---; \
        find /sys/fs/cgroup/ -mindepth 2 -type d; echo ---; \
        mkdir /sys/fs/cgroup/memory/mt-sub 2>/dev/null && rmdir /sys/fs/cgroup/memory/mt-sub && echo MKDIR-OK; \
        echo ---; touch /sys/fs/cgroup/mt-file 2>/dev/null && echo TOUCH-OK; true";
    let mut b = Bundle::new(rt, &tag, &["sh", "-c", script])?;
    let mut opts = vec!["nosuid", "noexec", "nodev", "relatime"];
    if ro {
        opts.push("ro");
    }
    push_mount(
        &mut b,
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": opts}),
    );
    b.config["linux"]["resources"]["memory"] = json!({"limit": MEMORY_LIMIT});
    if cgroupns {
        if let Some(ns) = b.config["linux"]["namespaces"].as_array_mut() {
            ns.push(json!({"type": "cgroup"}));
        }
    }
    let cgpath = b.cgroup_path();
    let _sub = SubCgroup(
        Path::new("/sys/fs/cgroup/memory")
            .join(cgpath.trim_start_matches('/'))
            .join("mt-sub"),
    );
    let want_root = if cgroupns { "/" } else { cgpath.as_str() };
    let r = b.run()?.ok()?;
    let s = sections(&r.stdout);
    ensure!(s.len() == 6, "{r:?}");

    // proc(7) /proc/pid/cgroup: paths relative to the reader's cgroup namespace root.
    for line in s[0].lines() {
        let path = line.splitn(3, ':').nth(2).unwrap_or_default();
        ensure!(path == want_root, "{line} (want {want_root}) in {}", s[0]);
    }

    let mounts = parse_mountinfo(s[1]);
    let top = at(&mounts, "/sys/fs/cgroup")?;
    ensure!(top.fstype == "tmpfs", "{top:?}");
    for (name, ctrl) in host_v1_hierarchies()? {
        let m = at(&mounts, &format!("/sys/fs/cgroup/{name}"))?;
        ensure!(m.fstype == "cgroup", "{m:?}");
        ensure!(m.super_opts.contains(&ctrl), "{name} carries {ctrl}: {m:?}");
        ensure!(m.root == want_root, "{name} rooted at {want_root}: {m:?}");
        ensure!(m.has_opt(if ro { "ro" } else { "rw" }), "{m:?}");
        for o in ["nosuid", "nodev", "noexec"] {
            ensure!(m.has_opt(o), "{name} {o}: {m:?}");
        }
    }
    // Every cgroup filesystem under /sys/fs/cgroup, including the unified one hako also
    // exposes on a hybrid host (runc 1.1.5 exposes only the v1 hierarchies), shows only the
    // container's cgroup.
    for m in mounts.iter().filter(|m| m.fstype.starts_with("cgroup")) {
        ensure!(m.root == want_root, "{m:?}");
    }

    ensure!(s[2].trim() == MEMORY_LIMIT.to_string(), "limit: {}", s[2]);
    ensure!(
        s[3].trim().is_empty(),
        "no other cgroup is visible: {}",
        s[3]
    );
    ensure!(
        s[4].contains("MKDIR-OK") != ro,
        "child cgroup {}: {:?}",
        if ro { "refused" } else { "allowed" },
        s[4]
    );
    // With `ro`, the tmpfs holding the hierarchies is read-only too (config.md: the options
    // apply to the mount at the destination). runc 1.1.5 leaves that tmpfs read-write (it
    // only chmods it 0555, which CAP_DAC_OVERRIDE ignores), so only hako is held to it.
    if ro && rt == Runtime::Hako {
        ensure!(top.has_opt("ro"), "{top:?}");
        ensure!(!s[5].contains("TOUCH-OK"), "{:?}", s[5]);
    }
    Ok(())
}

fn cgroup_v1_in_cgroup_namespace(rt: Runtime) -> Result<()> {
    cgroup_v1(rt, true, true)?;
    cgroup_v1(rt, true, false)
}
both!(cgroup_v1_in_cgroup_namespace);

fn cgroup_v1_in_host_cgroup_namespace(rt: Runtime) -> Result<()> {
    cgroup_v1(rt, false, true)?;
    cgroup_v1(rt, false, false)
}
both!(cgroup_v1_in_host_cgroup_namespace);

/// `type: cgroup2` (the host's unified hierarchy, controller-less on this hybrid host) at a
/// destination of its own.
fn cgroup2_mount(rt: Runtime) -> Result<()> {
    for cgroupns in [true, false] {
        let tag = if cgroupns { "cg2-ns" } else { "cg2-hostns" };
        let script = "cat /proc/self/mountinfo; echo ---; cat /cg2/cgroup.procs; echo ---; \
            find /cg2 -mindepth 1 -type d; echo ---; \
            mkdir /cg2/mt-sub 2>/dev/null && echo MKDIR-OK; true";
        let mut b = Bundle::new(rt, tag, &["sh", "-c", script])?;
        push_mount(
            &mut b,
            json!({"destination": "/cg2", "type": "cgroup2", "source": "cgroup2",
                   "options": ["nosuid", "noexec", "nodev", "ro"]}),
        );
        if cgroupns {
            if let Some(ns) = b.config["linux"]["namespaces"].as_array_mut() {
                ns.push(json!({"type": "cgroup"}));
            }
        }
        let cgpath = b.cgroup_path();
        let _sub = SubCgroup(
            Path::new("/sys/fs/cgroup/unified")
                .join(cgpath.trim_start_matches('/'))
                .join("mt-sub"),
        );
        let r = b.run()?.ok()?;
        let s = sections(&r.stdout);
        ensure!(s.len() == 4, "{r:?}");
        let mounts = parse_mountinfo(s[0]);
        let m = at(&mounts, "/cg2")?;
        ensure!(m.fstype == "cgroup2", "{m:?}");
        for o in ["ro", "nosuid", "nodev", "noexec"] {
            ensure!(m.has_opt(o), "{o}: {m:?}");
        }
        ensure!(!s[3].contains("MKDIR-OK"), "ro: {:?}", s[3]);
        if !cgroupns && rt == Runtime::Runc {
            // runc 1.1.5 on a hybrid host performs a plain mount(2) of cgroup2: without a
            // cgroup namespace that is the host's whole unified tree, every sibling cgroup
            // included. hako bind-mounts the container's own cgroup instead, as it does for
            // `type: cgroup`, so the container learns nothing of the host's cgroups.
            ensure!(m.root == "/", "{m:?}");
            let own = format!("/cg2{cgpath}");
            ensure!(s[2].lines().any(|l| l == own), "runc shows {own}: {s:?}");
            continue;
        }
        let want_root = if cgroupns { "/" } else { cgpath.as_str() };
        ensure!(m.root == want_root, "rooted at {want_root}: {m:?}");
        ensure!(
            s[1].lines().any(|l| l == "1"),
            "the container's init is in the cgroup it sees: {:?}",
            s[1]
        );
        ensure!(
            s[2].trim().is_empty(),
            "no other cgroup is visible: {:?}",
            s[2]
        );
    }
    Ok(())
}
both!(cgroup2_mount);

/// `type: overlay` over host directories: the merged view (upper over the leftmost lower over
/// the next), writes and deletions land in upperdir, the lower layers stay untouched; `ro`
/// refuses writes.
fn overlay_mount(rt: Runtime) -> Result<()> {
    for ro in [false, true] {
        let host = tempfile::Builder::new()
            .prefix("hako-test-mt-ov-")
            .tempdir()?;
        let d = |n: &str| host.path().join(n);
        for n in ["lower1", "lower2", "upper", "work"] {
            std::fs::create_dir(d(n))?;
        }
        std::fs::write(d("lower1/a"), "lower1-a")?;
        std::fs::write(d("lower2/a"), "lower2-a")?;
        std::fs::write(d("lower2/b"), "lower2-b")?;
        std::fs::write(d("lower1/shadow"), "lower1-shadow")?;
        std::fs::write(d("upper/shadow"), "upper-shadow")?;
        std::fs::write(d("upper/c"), "upper-c")?;
        let script = "for f in a b c shadow; do cat /ov/$f; echo; done; echo ---; \
            grep ' /ov ' /proc/self/mountinfo; echo ---; \
            echo new > /ov/new 2>/dev/null && echo WROTE; rm /ov/b 2>/dev/null && echo REMOVED; true";
        let tag = if ro { "ov-ro" } else { "ov-rw" };
        let mut b = Bundle::new(rt, tag, &["sh", "-c", script])?;
        let mut opts = vec![
            format!(
                "lowerdir={}:{}",
                d("lower1").display(),
                d("lower2").display()
            ),
            format!("upperdir={}", d("upper").display()),
            format!("workdir={}", d("work").display()),
        ];
        if ro {
            opts.push("ro".into());
        }
        push_mount(
            &mut b,
            json!({"destination": "/ov", "type": "overlay", "source": "overlay", "options": opts}),
        );
        let r = b.run()?.ok()?;
        let s = sections(&r.stdout);
        ensure!(s.len() == 3, "{r:?}");
        ensure!(
            s[0] == "lower1-a\nlower2-b\nupper-c\nupper-shadow\n",
            "merged view: {:?}",
            s[0]
        );
        let mounts = parse_mountinfo(s[1]);
        let m = at(&mounts, "/ov")?;
        ensure!(m.fstype == "overlay", "{m:?}");
        ensure!(m.has_opt(if ro { "ro" } else { "rw" }), "{m:?}");
        ensure!(
            m.super_opts
                .iter()
                .any(|o| o.starts_with("upperdir=") && o.ends_with("/upper")),
            "{m:?}"
        );
        if ro {
            ensure!(s[2].trim().is_empty(), "ro overlay written: {:?}", s[2]);
            ensure!(!d("upper/new").exists());
        } else {
            ensure!(s[2] == "WROTE\nREMOVED\n", "{:?}", s[2]);
            ensure!(std::fs::read_to_string(d("upper/new"))? == "new\n");
            // overlayfs records a deletion of a lower file as a whiteout, a 0/0 character
            // device in upperdir (kernel Documentation/filesystems/overlayfs.rst).
            let wh = std::fs::symlink_metadata(d("upper/b"))?;
            ensure!(
                std::os::unix::fs::FileTypeExt::is_char_device(&wh.file_type()),
                "whiteout for b: {wh:?}"
            );
        }
        ensure!(std::fs::read_to_string(d("lower2/b"))? == "lower2-b");
        ensure!(!d("lower1/new").exists() && !d("lower2/new").exists());
    }
    Ok(())
}
both!(overlay_mount);

/// Bind options: `rbind` brings submounts and `bind` does not; `rprivate`/`rslave`/`rshared`
/// show in mountinfo's optional fields (proc(5), mount_namespaces(7)); `nosuid,nodev,noexec`
/// and `ro` take effect on a bind (mount(2) needs a remount for them); atime options on a bind
/// and a tmpfs.
fn bind_options(rt: Runtime) -> Result<()> {
    let host = tempfile::Builder::new()
        .prefix("hako-test-mt-bind-")
        .tempdir()?;
    let src = host.path().join("src");
    std::fs::create_dir_all(src.join("sub"))?;
    std::fs::write(src.join("marker"), "top")?;
    let script = src.join("run.sh");
    std::fs::write(&script, "#!/bin/sh\necho ran\n")?;
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let sub = src.join("sub");
    let _submount = HostMount::tmpfs(&sub)?;
    std::fs::write(sub.join("inner"), "submount")?;
    // A shared source: its copy in the container's namespace is then a slave of this peer
    // group (the rootfs is made rslave), which a bind can keep, drop or add to.
    nix::mount::mount(
        None::<&str>,
        &sub,
        None::<&str>,
        MsFlags::MS_SHARED,
        None::<&str>,
    )?;

    let cmd = "cat /rb/sub/inner; echo; ls /b/sub | wc -l; echo ---; \
        cat /proc/self/mountinfo; echo ---; \
        /ex/run.sh; /nx/run.sh 2>/dev/null || echo NOEXEC; echo ---; \
        touch /ro/new 2>/dev/null && echo WROTE; touch /b/new-rw && echo RW; true";
    let mut b = Bundle::new(rt, "bindopts", &["sh", "-c", cmd])?;
    for (dest, source, opts) in [
        ("/rb", &src, vec!["rbind"]),
        ("/b", &src, vec!["bind"]),
        ("/ex", &src, vec!["bind"]),
        ("/nx", &src, vec!["bind", "nosuid", "nodev", "noexec"]),
        ("/ro", &src, vec!["bind", "ro"]),
        ("/p-private", &sub, vec!["bind", "rprivate"]),
        ("/p-slave", &sub, vec!["bind", "rslave"]),
        ("/p-shared", &sub, vec!["bind", "rshared"]),
        ("/b-noatime", &src, vec!["bind", "noatime"]),
    ] {
        push_mount(
            &mut b,
            json!({"destination": dest, "type": "bind", "source": source, "options": opts}),
        );
    }
    push_mount(
        &mut b,
        json!({"destination": "/t-strict", "type": "tmpfs", "source": "tmpfs", "options": ["strictatime"]}),
    );
    push_mount(
        &mut b,
        json!({"destination": "/t-noatime", "type": "tmpfs", "source": "tmpfs", "options": ["noatime"]}),
    );
    push_mount(
        &mut b,
        json!({"destination": "/t-default", "type": "tmpfs", "source": "tmpfs"}),
    );
    let r = b.run()?.ok()?;
    let s = sections(&r.stdout);
    ensure!(s.len() == 4, "{r:?}");
    ensure!(
        s[0] == "submount\n0\n",
        "rbind shows the submount, bind an empty directory: {:?}",
        s[0]
    );
    let mounts = parse_mountinfo(s[1]);
    ensure!(
        at(&mounts, "/rb/sub")?.fstype == "tmpfs",
        "the submount is mounted under the rbind"
    );
    ensure!(
        !mounts.iter().any(|m| m.point == "/b/sub"),
        "no submount under a plain bind"
    );

    let p = at(&mounts, "/p-private")?;
    ensure!(p.optional.is_empty(), "rprivate: {p:?}");
    let p = at(&mounts, "/p-slave")?;
    ensure!(
        p.has_optional("master:") && !p.has_optional("shared:"),
        "rslave: {p:?}"
    );
    let p = at(&mounts, "/p-shared")?;
    ensure!(p.has_optional("shared:"), "rshared: {p:?}");

    let nx = at(&mounts, "/nx")?;
    for o in ["nosuid", "nodev", "noexec"] {
        ensure!(nx.has_opt(o), "{o}: {nx:?}");
    }
    let ex = at(&mounts, "/ex")?;
    ensure!(!ex.has_opt("noexec"), "{ex:?}");
    ensure!(s[2] == "ran\nNOEXEC\n", "noexec takes effect: {:?}", s[2]);

    ensure!(at(&mounts, "/ro")?.has_opt("ro"), "ro bind");
    ensure!(s[3] == "RW\n", "ro bind refuses writes: {:?}", s[3]);
    ensure!(!src.join("new").exists() && src.join("new-rw").exists());

    ensure!(
        at(&mounts, "/b-noatime")?.has_opt("noatime"),
        "bind noatime"
    );
    ensure!(
        at(&mounts, "/t-noatime")?.has_opt("noatime"),
        "tmpfs noatime"
    );
    // strictatime shows as the absence of both relatime and noatime (proc(5)).
    let st = at(&mounts, "/t-strict")?;
    ensure!(
        !st.has_opt("relatime") && !st.has_opt("noatime"),
        "strictatime: {st:?}"
    );
    ensure!(
        at(&mounts, "/t-default")?.has_opt("relatime"),
        "relatime by default"
    );
    Ok(())
}
both!(bind_options);
