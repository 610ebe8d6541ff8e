//! Checks of `process` (config.md "Process", config-linux.md): args, env, cwd, user, umask,
//! capabilities, rlimits, noNewPrivileges, oomScoreAdj, each read back from the kernel.

use super::{status_field, Checker};
use crate::{caps, rlimits, sys};
use serde_json::Value;

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// `process.args` arrive as argv.
pub fn args(c: &mut Checker) {
    let want = strings(&c.config["process"]["args"]);
    let got: Vec<String> = std::env::args().collect();
    c.eq("process.args", want, got);
}

/// Every `process.env` entry is in the environment.
pub fn env(c: &mut Checker) {
    let have: Vec<String> = std::env::vars_os()
        .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
        .collect();
    let want = strings(&c.config["process"]["env"]);
    let missing: Vec<&String> = want.iter().filter(|e| !have.contains(e)).collect();
    if missing.is_empty() {
        c.ok("process.env");
    } else {
        c.fail("process.env", format!("missing {missing:?}, have {have:?}"));
    }
}

/// The working directory is `process.cwd`.
pub fn cwd(c: &mut Checker) {
    let want = c.config["process"]["cwd"]
        .as_str()
        .unwrap_or("/")
        .to_string();
    // /proc/self/cwd rather than getcwd(2), which a seccomp case denies.
    let got = std::fs::read_link("/proc/self/cwd")
        .or_else(|_| std::env::current_dir())
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    c.eq("process.cwd", want, got);
}

/// Real, effective and saved ids are `process.user.uid/gid`; the supplementary groups are
/// `additionalGids`.
pub fn user(c: &mut Checker) {
    let u = c.config["process"]["user"].clone();
    let uid = u["uid"].as_u64().unwrap_or(0) as u32;
    let gid = u["gid"].as_u64().unwrap_or(0) as u32;
    match nix::unistd::getresuid() {
        Ok(r) => c.eq(
            "process.user.uid",
            [uid; 3],
            [r.real.as_raw(), r.effective.as_raw(), r.saved.as_raw()],
        ),
        Err(e) => c.fail("process.user.uid", e.to_string()),
    }
    match nix::unistd::getresgid() {
        Ok(r) => c.eq(
            "process.user.gid",
            [gid; 3],
            [r.real.as_raw(), r.effective.as_raw(), r.saved.as_raw()],
        ),
        Err(e) => c.fail("process.user.gid", e.to_string()),
    }
    if u["additionalGids"].is_array() {
        match groups() {
            Ok(mut got) => {
                got.dedup();
                c.eq("process.user.additionalGids", config_gids(c), got);
            }
            Err(e) => c.fail("process.user.additionalGids", e.to_string()),
        }
    }
}

/// `process.user.additionalGids`, sorted, each once.
fn config_gids(c: &Checker) -> Vec<u32> {
    let mut want: Vec<u32> = c.config["process"]["user"]["additionalGids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|g| g.as_u64())
                .map(|g| g as u32)
                .collect()
        })
        .unwrap_or_default();
    want.sort_unstable();
    want.dedup();
    want
}

/// getgroups(2), sorted, repeats kept.
fn groups() -> nix::Result<Vec<u32>> {
    let mut got: Vec<u32> = nix::unistd::getgroups()?
        .iter()
        .map(|g| g.as_raw())
        .collect();
    got.sort_unstable();
    Ok(got)
}

/// `process.user.umask`, read from the `Umask:` line of /proc/self/status (Linux ≥ 4.7).
pub fn umask(c: &mut Checker) {
    let Some(want) = c.config["process"]["user"]["umask"].as_u64() else {
        c.skip("process.user.umask", "no umask in the config");
        return;
    };
    match status_field("Umask").and_then(|v| u64::from_str_radix(&v, 8).ok()) {
        Some(got) => c.eq(
            "process.user.umask",
            format!("{want:04o}"),
            format!("{got:04o}"),
        ),
        None => c.fail("process.user.umask", "no Umask line in /proc/self/status"),
    }
}

fn hex_field(key: &str) -> Option<u64> {
    status_field(key).and_then(|v| u64::from_str_radix(&v, 16).ok())
}

/// The five capability sets, as execve(2) leaves them (capabilities(7), "Transformation of
/// capabilities during execve()"): for a process whose real or effective uid is 0, permitted
/// becomes inheritable ∪ bounding (clamped to the old permitted set under no_new_privs) and
/// effective becomes permitted; for anyone else both become the ambient set. The config's
/// `effective` set is therefore never visible here: it is what governs the runtime's own
/// execve of the program, which the `capabilities/effective/*` cases observe instead.
pub fn caps(c: &mut Checker) {
    let cfg = c.config["process"]["capabilities"].clone();
    let bnd = caps::mask(&cfg["bounding"]);
    let inh = caps::mask(&cfg["inheritable"]);
    let prm = caps::mask(&cfg["permitted"]);
    let amb = caps::mask(&cfg["ambient"]) & inh & prm;
    let nnp = c.config["process"]["noNewPrivileges"]
        .as_bool()
        .unwrap_or(false);
    let ids = nix::unistd::getresuid().ok();
    let root = ids.is_some_and(|r| r.real.is_root() || r.effective.is_root());
    let euid0 = ids.is_some_and(|r| r.effective.is_root());
    let mut new_prm = if root { inh | bnd } else { 0 };
    if nnp {
        new_prm &= prm;
    }
    new_prm |= amb;
    let new_eff = if euid0 { new_prm } else { amb };
    for (key, want) in [
        ("CapBnd", bnd),
        ("CapInh", inh),
        ("CapPrm", new_prm),
        ("CapEff", new_eff),
        ("CapAmb", amb),
    ] {
        let name = format!("process.capabilities.{key}");
        match hex_field(key) {
            Some(got) if got == want => c.ok(&name),
            Some(got) => c.fail(
                &name,
                format!(
                    "want {:?}, got {:?} (missing {:?}, extra {:?})",
                    caps::names(want),
                    caps::names(got),
                    caps::names(want & !got),
                    caps::names(got & !want)
                ),
            ),
            None => c.fail(&name, "not in /proc/self/status"),
        }
    }
}

/// Every `process.rlimits` entry, read back with prlimit(2).
pub fn rlimits(c: &mut Checker) {
    let list = c.config["process"]["rlimits"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for r in list {
        let ty = r["type"].as_str().unwrap_or("?").to_string();
        let name = format!("process.rlimits.{ty}");
        let Some(res) = rlimits::resource(&ty) else {
            c.fail(&name, "unknown rlimit type");
            continue;
        };
        let want = (
            r["soft"].as_u64().unwrap_or(0),
            r["hard"].as_u64().unwrap_or(0),
        );
        match sys::getrlimit(res) {
            Ok(got) => c.eq(&name, want, got),
            Err(e) => c.fail(&name, e.to_string()),
        }
    }
}

/// `process.noNewPrivileges`, from the `NoNewPrivs:` line of /proc/self/status.
pub fn nnp(c: &mut Checker) {
    let want = c.config["process"]["noNewPrivileges"]
        .as_bool()
        .unwrap_or(false);
    let got = status_field("NoNewPrivs").map(|v| v == "1");
    c.eq("process.noNewPrivileges", Some(want), got);
}

/// `process.oomScoreAdj`, from /proc/self/oom_score_adj.
pub fn oom(c: &mut Checker) {
    let Some(want) = c.config["process"]["oomScoreAdj"].as_i64() else {
        c.skip("process.oomScoreAdj", "no oomScoreAdj in the config");
        return;
    };
    let got = std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok());
    c.eq("process.oomScoreAdj", Some(want), got);
}

/// The supplementary groups are `additionalGids` without repeats, each once (runc removes
/// duplicates; a group listed twice must not show twice in getgroups(2)).
pub fn groups_exact(c: &mut Checker) {
    let name = "process.user.additionalGids.each-once";
    match groups() {
        Ok(got) => c.eq(name, config_gids(c), got),
        Err(e) => c.fail(name, e.to_string()),
    }
}
