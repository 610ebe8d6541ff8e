//! `--rootless`: the suite run against a runtime called by an unprivileged user, as runc's and
//! podman's rootless mode call it.
//!
//! * **The user.** The harness (root) makes a user of its own (`useradd`, a unique name) with a
//!   range of 65536 subordinate uids and gids (`usermod --add-subuids/--add-subgids`, which
//!   edit /etc/subuid and /etc/subgid under their lock), or is given one (`--rootless-user`,
//!   whose ranges are read from /etc/subuid and /etc/subgid). A made user is removed on drop,
//!   after whatever it still runs is killed.
//! * **The runtime as that user.** Every runtime command runs with the user's uid and gid (no
//!   supplementary groups), a clean environment with its `HOME`, `USER` and `XDG_RUNTIME_DIR`,
//!   and cwd `/`; `--root` is a directory only the user can enter.
//! * **Bundles the user owns.** Before each `create` the bundle tree's root-owned entries are
//!   handed to the user, who is root in the container: a rootless image is unpacked so.
//! * **Configs shaped as `runc spec --rootless` shapes them** ([`shape`]): a user namespace
//!   mapping container root to the user and container ids 1-65536 to its subordinate range
//!   (set up through newuidmap/newgidmap, as podman maps), no device cgroup rules, no
//!   `cgroupsPath` unless the user may make cgroups there, and the mounts an unprivileged user
//!   cannot make replaced with binds of the host's (sysfs without a network namespace of the
//!   container's own, proc without a pid namespace).
//! * **Skips with a probe.** What a rootless container cannot get (a cgroup without a delegated
//!   tree, a device node, a real-time scheduling class, a namespace root made) is measured once
//!   per run as the user, in a user namespace of its own where that is how the runtime would try
//!   ([`Limits::probe`]); each case that needs it then skips naming the probe ([`Rootless::skip`], the table [`SKIPS`]).
//!   A probe that finds the operation permitted skips nothing.

mod probe;

pub use probe::main as probe_main;

use crate::case::{Case, Outcome};
use crate::ctx::Ctx;
use anyhow::{bail, Context, Result};
use probe::Limits;
use serde_json::{json, Value};
use std::borrow::Cow;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Size of a made user's subordinate uid and gid ranges (as many ids as a container maps).
const SUB_COUNT: u32 = 65536;

/// How long a probe run as the user may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Who runs the runtime: uid, gid, environment. Cheap to clone into every [`Runtime`].
///
/// [`Runtime`]: crate::runtime::Runtime
#[derive(Debug, Clone)]
pub struct Identity {
    /// Login name.
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// Its primary gid.
    pub gid: u32,
    /// `HOME` and `XDG_RUNTIME_DIR`'s parent: a directory of its own (0700).
    pub home: PathBuf,
    /// First subordinate uid and gid of the container's mappings.
    pub sub_uid: u32,
    /// First subordinate gid.
    pub sub_gid: u32,
}

impl Identity {
    /// Makes `cmd` run as this user, as a login would start it: its uid and gid without
    /// supplementary groups (std calls setgroups(2) with none before setuid(2)), a clean
    /// environment with its `HOME`, `USER`, `XDG_RUNTIME_DIR` and a `PATH` (runtimes look up
    /// newuidmap there), cwd `/`.
    pub fn apply(&self, cmd: &mut Command) {
        cmd.uid(self.uid)
            .gid(self.gid)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("HOME", &self.home)
            .env("USER", &self.name)
            .env("LOGNAME", &self.name)
            .env("XDG_RUNTIME_DIR", self.xdg())
            .current_dir("/");
    }

    /// The user's `XDG_RUNTIME_DIR`.
    pub fn xdg(&self) -> PathBuf {
        self.home.join("xdg")
    }

    /// Hands the bundle tree under `dir` (and `dir`) to the user's ids as the container's
    /// mappings see them: host uid 0 becomes the user's uid (container root), uids 1-65536
    /// (other than the user's own) the subordinate ids mapped to them; likewise gids; other
    /// owners are kept. A rootless user unpacks an image so (podman's id shift). Idempotent
    /// while the subordinate range lies above 65536. Symlinks are changed, not followed.
    pub fn own_tree(&self, dir: &Path) -> Result<()> {
        let meta =
            std::fs::symlink_metadata(dir).with_context(|| format!("stat {}", dir.display()))?;
        let shift = |id: u32, own: u32, sub: u32| match id {
            0 => Some(own),
            i if i == own || i > SUB_COUNT => None,
            i => Some(sub + i - 1),
        };
        let uid = shift(meta.uid(), self.uid, self.sub_uid);
        let gid = shift(meta.gid(), self.gid, self.sub_gid);
        if uid.is_some() || gid.is_some() {
            std::os::unix::fs::lchown(dir, uid, gid)
                .with_context(|| format!("lchown {}", dir.display()))?;
        }
        if meta.is_dir() {
            for e in std::fs::read_dir(dir).with_context(|| format!("list {}", dir.display()))? {
                self.own_tree(&e?.path())?;
            }
        }
        Ok(())
    }

    /// A private directory of the user's at `dir` (made if missing, 0700).
    pub fn private_dir(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
        std::os::unix::fs::chown(dir, Some(self.uid), Some(self.gid))
            .with_context(|| format!("chown {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("chmod {}", dir.display()))
    }
}

/// The unprivileged user of a rootless run; a user the suite made is removed on drop.
pub struct User {
    /// Who it is.
    pub id: Identity,
    /// The ranges the suite added to /etc/subuid and /etc/subgid, and so removes with the user.
    made: bool,
}

fn check(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("run {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn id_of(name: &str, flag: &str) -> Result<u32> {
    let text = check(Command::new("id").args([flag, name]))?;
    text.parse()
        .with_context(|| format!("id {flag} {name}: {text:?}"))
}

/// The first range of at least [`SUB_COUNT`] ids that `file` (/etc/subuid or /etc/subgid,
/// `name:start:count` or `uid:start:count` per line, subuid(5)) gives `name` or `uid`.
fn sub_range(file: &str, name: &str, uid: u32) -> Result<u32> {
    let text = std::fs::read_to_string(file).with_context(|| format!("read {file}"))?;
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim().split(':');
            let (who, start, count) = (f.next()?, f.next()?, f.next()?);
            let (start, count): (u32, u32) = (start.parse().ok()?, count.parse().ok()?);
            ((who == name || who == uid.to_string()) && count >= SUB_COUNT).then_some(start)
        })
        .next()
        .with_context(|| format!("{file} gives {name} no range of {SUB_COUNT} ids"))
}

impl User {
    /// A new user `hkc<pid>` with subordinate ranges of its own and a home of its own under
    /// `work` (which must be searchable by others).
    pub fn make(work: &Path) -> Result<Self> {
        let pid = std::process::id();
        let name = format!("hkc{pid}");
        // No automatic subordinate ranges (login.defs SUB_UID_COUNT): the suite adds its own,
        // from 3e9 up, away from the ranges a distribution hands out (100000 up) and from
        // those hako's own rootless tests take (1e6 up to about 2.1e9).
        check(Command::new("useradd").args([
            "-M",
            "-s",
            "/usr/sbin/nologin",
            "-K",
            "SUB_UID_COUNT=0",
            "-K",
            "SUB_GID_COUNT=0",
            &name,
        ]))?;
        let start = 3_000_000_000 + (pid % 16_384) * SUB_COUNT;
        let mut user = User {
            id: Identity {
                name: name.clone(),
                uid: 0,
                gid: 0,
                home: work.join("home"),
                sub_uid: start,
                sub_gid: start,
            },
            made: true,
        };
        user.id.uid = id_of(&name, "-u")?;
        user.id.gid = id_of(&name, "-g")?;
        let range = format!("{start}-{}", start + SUB_COUNT - 1);
        check(Command::new("usermod").args([
            "--add-subuids",
            &range,
            "--add-subgids",
            &range,
            &name,
        ]))?;
        user.homes()?;
        Ok(user)
    }

    /// An existing user `name`, whose first ranges of 65536 ids in /etc/subuid and /etc/subgid
    /// the containers map; kept on drop.
    pub fn given(name: &str, work: &Path) -> Result<Self> {
        let uid = id_of(name, "-u")?;
        if uid == 0 {
            bail!("--rootless-user {name}: uid 0 is not an unprivileged user");
        }
        let user = User {
            id: Identity {
                name: name.to_string(),
                uid,
                gid: id_of(name, "-g")?,
                home: work.join("home"),
                sub_uid: sub_range("/etc/subuid", name, uid)?,
                sub_gid: sub_range("/etc/subgid", name, uid)?,
            },
            made: false,
        };
        user.homes()?;
        Ok(user)
    }

    fn homes(&self) -> Result<()> {
        self.id.private_dir(&self.id.home)?;
        self.id.private_dir(&self.id.xdg())
    }
}

impl Drop for User {
    fn drop(&mut self) {
        if !self.made {
            return;
        }
        // Whatever the user still runs (a runtime that leaked a container) goes first:
        // userdel refuses a user with processes, and nothing of the run may outlive it.
        let _ = Command::new("pkill")
            .args(["-KILL", "-U", &self.id.uid.to_string()])
            .output();
        let start = self.id.sub_uid;
        let range = format!("{start}-{}", start + SUB_COUNT - 1);
        let _ = Command::new("usermod")
            .args([
                "--del-subuids",
                &range,
                "--del-subgids",
                &range,
                &self.id.name,
            ])
            .output();
        let _ = Command::new("userdel").arg(&self.id.name).output();
    }
}

/// The config a rootless user would give the runtime for `cfg`, as `runc spec --rootless`
/// shapes its own: see the module documentation. `cgroups` says whether the user may make the
/// config's cgroup.
pub fn shape(cfg: &Value, id: &Identity, cgroups: bool) -> Value {
    let mut c = cfg.clone();
    if !c["linux"].is_object() {
        c["linux"] = json!({});
    }
    let linux = &mut c["linux"];
    let has = |l: &Value, t: &str| {
        l["namespaces"]
            .as_array()
            .is_some_and(|a| a.iter().any(|n| n["type"] == t))
    };
    if !has(linux, "user") {
        if !linux["namespaces"].is_array() {
            linux["namespaces"] = json!([]);
        }
        if let Some(a) = linux["namespaces"].as_array_mut() {
            a.push(json!({"type": "user"}));
        }
    }
    for (key, host, sub) in [
        ("uidMappings", id.uid, id.sub_uid),
        ("gidMappings", id.gid, id.sub_gid),
    ] {
        if linux[key].is_null() {
            linux[key] = json!([
                {"containerID": 0, "hostID": host, "size": 1},
                {"containerID": 1, "hostID": sub, "size": SUB_COUNT}
            ]);
        } else {
            pack_into(&mut linux[key], sub);
        }
    }
    if !cgroups {
        if let Some(l) = linux.as_object_mut() {
            l.remove("cgroupsPath");
        }
    }
    // Device rules need privilege over the host's device cgroup; rootless runtimes drop them
    // (runc's rootless cgroup manager, hako's rootless::create_cgroup).
    if let Some(r) = linux["resources"].as_object_mut() {
        r.remove("devices");
        if r.is_empty() {
            linux.as_object_mut().map(|l| l.remove("resources"));
        }
    }
    let own_net = has(linux, "network");
    let own_pid = has(linux, "pid");
    if let Some(mounts) = c["mounts"].as_array_mut() {
        for m in mounts.iter_mut() {
            // sysfs may be mounted only by a user namespace owning the network namespace, proc
            // only by one owning the pid namespace (sysfs_get_tree, proc_fill_super): without
            // them, a bind of the host's, as `runc spec --rootless` binds /sys.
            let bind = match m["type"].as_str() {
                Some("sysfs") if !own_net => Some("/sys"),
                Some("proc") if !own_pid => Some("/proc"),
                _ => None,
            };
            if let Some(src) = bind {
                *m = json!({"destination": m["destination"], "type": "none", "source": src,
                            "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
            }
        }
    }
    c
}

/// A case's own mappings (host ids of root's choosing, e.g. 100000) moved into the user's
/// subordinate range from `sub` up: its ranges packed one after another in host-id order, so
/// several ranges stay several. Left alone when they need more ids than the range holds.
fn pack_into(maps: &mut Value, sub: u32) {
    let Some(a) = maps.as_array_mut() else {
        return;
    };
    let total: u64 = a.iter().filter_map(|m| m["size"].as_u64()).sum();
    if total > u64::from(SUB_COUNT) {
        return;
    }
    let mut order: Vec<usize> = (0..a.len()).collect();
    order.sort_by_key(|&i| a[i]["hostID"].as_u64());
    let mut next = u64::from(sub);
    for i in order {
        a[i]["hostID"] = json!(next);
        next += a[i]["size"].as_u64().unwrap_or(0);
    }
}

/// The `.shape` file beside a mutant's spec file (a rootless self-test, written by
/// [`Rootless::write_mutant_shape`]): the user and whether it may make cgroups.
fn mutant_shape(spec: &Path) -> Option<(Identity, bool)> {
    let text = std::fs::read(spec.with_extension("shape")).ok()?;
    let f: Value = serde_json::from_slice(&text).ok()?;
    let n = |k: &str| f[k].as_u64().and_then(|v| u32::try_from(v).ok());
    let id = Identity {
        name: f["name"].as_str()?.to_string(),
        uid: n("uid")?,
        gid: n("gid")?,
        home: PathBuf::from(f["home"].as_str()?),
        sub_uid: n("sub_uid")?,
        sub_gid: n("sub_gid")?,
    };
    Some((id, f["cgroups"].as_bool().unwrap_or(false)))
}

/// In a rootless self-test, the user the mutant runs the real runtime as.
pub fn mutant_identity(spec: &Path) -> Option<Identity> {
    mutant_shape(spec).map(|(id, _)| id)
}

/// The base config a mutant reverts a case's config to: `base`, shaped as the harness shaped
/// the case's in a rootless self-test.
pub fn mutant_base(base: Value, spec: &Path) -> Value {
    match mutant_shape(spec) {
        Some((id, cgroups)) => shape(&base, &id, cgroups),
        None => base,
    }
}

/// A rootless run: the user and what its containers cannot get.
pub struct Rootless {
    /// The user the runtime runs as.
    pub user: User,
    /// The limits measured as that user.
    pub limits: Limits,
}

impl Rootless {
    /// Makes (or takes, `given`) the user, hands it the state directory `root`, and measures
    /// its limits with `probe_exe` (a copy of this binary the user can run). `cgroup_dir` is
    /// where the cases' cgroups would go.
    pub fn setup(
        given: Option<&str>,
        work: &Path,
        root: &Path,
        probe_exe: &Path,
        cgroup_dir: &Path,
    ) -> Result<Self> {
        let user = match given {
            Some(name) => User::given(name, work)?,
            None => User::make(work)?,
        };
        user.id.private_dir(root)?;
        let limits = Limits::probe(probe_exe, &user.id, cgroup_dir)?;
        Ok(Rootless { user, limits })
    }

    /// For a rootless `--self-test`: what the mutant (another process) needs to run the
    /// runtime as the user and shape its base config as the cases' configs are shaped, next
    /// to the spec file (see [`mutant_identity`], [`mutant_base`]).
    pub fn write_mutant_shape(&self, spec: &Path) -> Result<()> {
        let id = &self.user.id;
        let text = json!({"name": id.name, "uid": id.uid, "gid": id.gid, "home": id.home,
                          "sub_uid": id.sub_uid, "sub_gid": id.sub_gid,
                          "cgroups": self.limits.cgroup.is_none()});
        let path = spec.with_extension("shape");
        std::fs::write(&path, text.to_string()).with_context(|| format!("write {}", path.display()))
    }

    /// Why case `c` cannot run rootless on this host, if it cannot: the skip naming the probe.
    pub fn skip(&self, c: &Case) -> Option<Outcome> {
        let name = c.full_name();
        let l = &self.limits;
        let probe = SKIPS
            .iter()
            .filter(|(pat, _)| name.starts_with(pat))
            .find_map(|(_, which)| which(l).as_ref())?;
        Some(Outcome::Skip(probe.clone()))
    }
}

/// Which limit keeps which cases (by `section/name` prefix) from running rootless.
type Which = fn(&Limits) -> &Option<crate::case::Probe>;

/// Cases a rootless container cannot pass, each with the limit that says why. Measured on
/// runc 1.1.5 and hako alike: each fails there for the reason its probe names.
const SKIPS: &[(&str, Which)] = &[
    // Resources need the container's own cgroup; device rules need the host's device cgroup.
    ("cgroups/", |l| &l.cgroup),
    ("lifecycle/delete/removes-cgroup", |l| &l.cgroup),
    ("devices/allowlist/", |l| &l.cgroup),
    // A device node: runtimes bind the host's instead, and these exist on no host.
    ("devices/node/char", |l| &l.mknod),
    ("devices/node/block", |l| &l.mknod),
    ("devices/node/unbuffered-char", |l| &l.mknod),
    ("devices/node/nested-path", |l| &l.mknod),
    ("devices/node/several", |l| &l.mknod),
    // The holders of joined namespaces are root's.
    ("namespaces/join/network", |l| &l.setns),
    ("namespaces/join/ipc", |l| &l.setns),
    ("namespaces/join/uts", |l| &l.setns),
    ("namespaces/join/pid", |l| &l.setns),
    ("namespaces/join/mount", |l| &l.setns),
    // The rootfs is mounted in the container's mount namespace or nowhere.
    ("namespaces/host/mount", |l| &l.host_mount),
    // The base config's /dev/mqueue, in the host's IPC namespace.
    ("namespaces/host/ipc", |l| &l.host_mqueue),
    ("sysctl/kernel.domainname", |l| &l.uts_sysctl),
    // SCHED_RR (and its cgroup's real-time budget), the real-time I/O class.
    ("scheduler/SCHED_RR", |l| &l.sched_rt),
    ("ioPriority/RT", |l| &l.ioprio_rt),
];

impl Ctx {
    /// The config the runtime gets for `cfg`: shaped for the rootless user (see [`shape`]) in
    /// a rootless run, else `cfg` itself.
    pub fn shaped<'c>(&self, cfg: &'c Value) -> Cow<'c, Value> {
        match &self.rootless {
            Some(r) => Cow::Owned(shape(cfg, &r.user.id, r.limits.cgroup.is_none())),
            None => Cow::Borrowed(cfg),
        }
    }

    /// In a rootless run, hands bundle `dir` to the user (see [`Identity::own_tree`]).
    pub fn own_bundle(&self, dir: &Path) -> Result<()> {
        match &self.rootless {
            Some(r) => r.user.id.own_tree(dir),
            None => Ok(()),
        }
    }

    /// In a rootless self-test, why case `c`'s mutant cannot be applied: one that leaves the
    /// cgroup behind, where the user's containers have none.
    pub fn rootless_excuse(&self, c: &Case) -> Option<&'static str> {
        let r = self.rootless.as_ref()?;
        let keeps_cgroup = matches!(
            c.mutation,
            crate::mutation::Mutation::Behave(crate::mutation::Misbehaviour::KeepCgroup)
        );
        (keeps_cgroup && r.limits.cgroup.is_some()).then_some(
            "its mutant leaves the container's cgroup behind, and rootless without a delegated cgroup tree there is none (the `cgroup` probe)",
        )
    }

    /// In a rootless run, the skip of a case the user's containers cannot pass.
    pub fn rootless_skip(&self, c: &Case) -> Option<Outcome> {
        self.rootless.as_ref()?.skip(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> Identity {
        Identity {
            name: "u".into(),
            uid: 1001,
            gid: 1002,
            home: PathBuf::from("/nonexistent"),
            sub_uid: 3_000_000_000,
            sub_gid: 3_100_000_000,
        }
    }

    #[test]
    fn the_base_config_gets_a_user_namespace_mapped_to_the_user() {
        let base = crate::config::base(&["/bin/true"], "/cg");
        let c = shape(&base, &user(), false);
        let ns = c["linux"]["namespaces"].as_array().expect("namespaces");
        assert_eq!(ns.iter().filter(|n| n["type"] == "user").count(), 1);
        assert_eq!(
            c["linux"]["gidMappings"],
            json!([{"containerID": 0, "hostID": 1002, "size": 1},
                   {"containerID": 1, "hostID": 3_100_000_000u32, "size": 65536}])
        );
        assert!(c["linux"].get("cgroupsPath").is_none());
        assert!(c["linux"].get("resources").is_none(), "only device rules");
        // A network namespace of its own: sysfs is mounted, not bound.
        assert_eq!(c["mounts"], base["mounts"]);
        assert_eq!(shape(&base, &user(), true)["linux"]["cgroupsPath"], "/cg");
    }

    #[test]
    fn without_network_or_pid_namespace_sysfs_and_proc_are_bound() {
        let mut base = crate::config::base(&["/bin/true"], "/cg");
        base["linux"]["namespaces"] = json!([{"type": "mount"}]);
        let c = shape(&base, &user(), false);
        for (dest, src) in [("/proc", "/proc"), ("/sys", "/sys")] {
            let m = c["mounts"]
                .as_array()
                .and_then(|a| a.iter().find(|m| m["destination"] == dest))
                .expect("mount");
            assert_eq!(m["source"], src);
            assert_eq!(m["options"][0], "rbind");
        }
    }

    #[test]
    fn a_case_mapping_is_packed_into_the_subordinate_range() {
        let mut base = crate::config::base(&["/bin/true"], "/cg");
        base["linux"]["uidMappings"] = json!([
            {"containerID": 1000, "hostID": 300000, "size": 64536},
            {"containerID": 0, "hostID": 100000, "size": 1000}
        ]);
        let c = shape(&base, &user(), false);
        assert_eq!(
            c["linux"]["uidMappings"],
            json!([{"containerID": 1000, "hostID": 3_000_001_000u32, "size": 64536},
                   {"containerID": 0, "hostID": 3_000_000_000u32, "size": 1000}])
        );
        // More ids than the range holds: left for the runtime to refuse.
        base["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 70000}]);
        let c = shape(&base, &user(), false);
        assert_eq!(c["linux"]["uidMappings"][0]["hostID"], 100000);
    }
}
