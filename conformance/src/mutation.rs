//! Mutants: a runtime broken in one way, made by putting this binary's hidden `mutant` mode in
//! front of a real runtime (`hako-conformance mutant --spec FILE --runtime REAL -- ARGS...`).
//! It forwards every CLI call to the real runtime, except that it rewrites the bundle's
//! `config.json` on `create`/`run`, or misbehaves in one way on one verb. The checker inside
//! the container reads its expectations from `/.conformance/config.json` in the rootfs, a
//! separate copy the mutant never touches, so the checker still expects the original values.
//!
//! The spec file names the case; the mutant looks its [`Mutation`] up among the cases and
//! writes `FILE.applied` with what it changed, so the self-test can tell a mutant that was
//! never applied (a case whose config equals the base config) from one that was killed.

use serde_json::Value;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `HAKO_CONFORMANCE_MUTANT=off` makes every mutant a plain forwarder (tests/self_test.rs
/// proves with it that a surviving mutant fails the run).
pub const DISABLE: &str = "HAKO_CONFORMANCE_MUTANT";

/// The mutation that must make a case fail.
pub enum Mutation {
    /// Revert every field the case changed relative to the base config (except
    /// `process.args`, which runs the checker): a runtime that ignores what the case asks.
    Revert,
    /// A specific rewrite of the config the runtime receives: what it does, and how.
    Config(&'static str, fn(&mut Value)),
    /// A runtime that misbehaves in one way.
    Behave(Misbehaviour),
    /// The case cannot be mutated: why.
    Excused(&'static str),
}

/// One way a runtime can misbehave on one verb.
#[derive(Debug, Clone, Copy)]
pub enum Misbehaviour {
    /// The verb reports success whatever the real runtime said.
    Swallow(&'static str),
    /// The verb does nothing and reports success.
    Noop(&'static str),
    /// The verb fails without doing anything.
    Refuse(&'static str),
    /// `state` reports another status than the real one.
    WrongStatus,
    /// `state` reports another pid than the real one.
    WrongPid,
    /// `create` also starts the container.
    StartAtCreate,
    /// `delete` leaves the container's cgroup directories behind.
    KeepCgroup,
    /// `delete` always deletes, as if `--force` were given.
    ForceDelete,
    /// `kill` sends SIGKILL whatever signal it was asked for.
    KillWithKill,
    /// `exec` runs the command on the host instead of in the container.
    ExecOnHost,
    /// `exec` takes its process from the bundle's config.json as it is now.
    ExecFromBundle,
    /// After `create`, this path inside the container is removed.
    RemoveAfterCreate(&'static str),
}

impl Mutation {
    /// A one-line description for the self-test's output.
    pub fn describe(&self) -> String {
        match self {
            Mutation::Revert => "revert the config to the base config".into(),
            Mutation::Config(what, _) => format!("config: {what}"),
            Mutation::Behave(m) => format!("runtime: {m:?}"),
            Mutation::Excused(why) => format!("excused: {why}"),
        }
    }
}

/// Sets every field of `cfg` that differs from `base` back to `base`'s value (removing what
/// `base` lacks), recursing into objects; `keep` paths (`process.args`) are left alone.
/// Returns the dotted paths it changed.
pub fn revert(cfg: &mut Value, base: &Value, keep: &[&str]) -> Vec<String> {
    let mut changed = Vec::new();
    revert_at(cfg, base, "", keep, &mut changed);
    changed
}

fn revert_at(cfg: &mut Value, base: &Value, at: &str, keep: &[&str], changed: &mut Vec<String>) {
    if keep.contains(&at) {
        return;
    }
    if !(cfg.is_object() && base.is_object()) {
        if cfg != base {
            *cfg = base.clone();
            changed.push(at.to_string());
        }
        return;
    }
    if let (Some(c), Some(b)) = (cfg.as_object_mut(), base.as_object()) {
        {
            let keys: Vec<String> = c.keys().chain(b.keys()).cloned().collect();
            for k in keys {
                let path = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                if keep.contains(&path.as_str()) {
                    continue;
                }
                match (c.get_mut(&k), b.get(&k)) {
                    (Some(cv), Some(bv)) => revert_at(cv, bv, &path, keep, changed),
                    (Some(_), None) => {
                        c.remove(&k);
                        changed.push(path);
                    }
                    (None, Some(bv)) => {
                        c.insert(k, bv.clone());
                        changed.push(path);
                    }
                    (None, None) => {}
                }
            }
        }
    }
}

/// The base config a case's config started from: same args and cgroupsPath.
fn base_of(cfg: &Value) -> Value {
    let path = cfg["linux"]["cgroupsPath"].as_str().unwrap_or("/");
    let mut base = crate::config::base(&["/bin/true"], path);
    base["process"]["args"] = cfg["process"]["args"].clone();
    base
}

struct Call {
    spec: PathBuf,
    runtime: PathBuf,
    args: Vec<String>,
}

fn parse(argv: &[String]) -> Option<Call> {
    let mut spec = None;
    let mut runtime = None;
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--spec" => spec = it.next().map(PathBuf::from),
            "--runtime" => runtime = it.next().map(PathBuf::from),
            "--" => break,
            _ => return None,
        }
    }
    Some(Call {
        spec: spec?,
        runtime: runtime?,
        args: it.cloned().collect(),
    })
}

impl Call {
    /// `(verb index, verb)` after the global `--root DIR`.
    fn verb(&self) -> Option<(usize, &str)> {
        let i = if self.args.first().is_some_and(|a| a == "--root") {
            2
        } else {
            0
        };
        self.args.get(i).map(|v| (i, v.as_str()))
    }

    fn applied(&self, what: &str) {
        let path = self.spec.with_extension("applied");
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{what}");
        }
    }

    /// The real runtime on `args`; in a rootless self-test, run as the user.
    fn command(&self, args: &[String]) -> Command {
        let mut c = Command::new(&self.runtime);
        c.args(args);
        if let Some(id) = crate::rootless::mutant_identity(&self.spec) {
            id.apply(&mut c);
        }
        c
    }

    /// Replaces this process with the real runtime on `args`.
    fn exec(&self, args: &[String]) -> i32 {
        let e = self.command(args).exec();
        eprintln!("mutant: exec {}: {e}", self.runtime.display());
        127
    }

    fn status(&self, args: &[String]) -> i32 {
        match self.command(args).status() {
            Ok(s) => s.code().unwrap_or(1),
            Err(e) => {
                eprintln!("mutant: run {}: {e}", self.runtime.display());
                127
            }
        }
    }

    fn value_after(&self, flag: &str) -> Option<String> {
        let i = self.args.iter().position(|a| a == flag)?;
        self.args.get(i + 1).cloned()
    }

    fn id(&self) -> Option<String> {
        self.args.last().cloned()
    }
}

/// Entry point of `hako-conformance mutant --spec FILE --runtime REAL -- ARGS...`.
pub fn main(argv: &[String]) -> i32 {
    let Some(call) = parse(argv) else {
        eprintln!("usage: hako-conformance mutant --spec FILE --runtime REAL -- ARGS...");
        return 2;
    };
    // The suite's check of itself: with every mutation off, every mutant must survive.
    if std::env::var_os(DISABLE).is_some_and(|v| v == "off") {
        return call.exec(&call.args);
    }
    let name = std::fs::read_to_string(&call.spec).unwrap_or_default();
    let cases = crate::cases::all();
    // No case yet (the harness asking `--version`): a plain forwarder.
    let Some(case) = cases.iter().find(|c| c.full_name() == name.trim()) else {
        return call.exec(&call.args);
    };
    let Some((vi, verb)) = call.verb() else {
        return call.exec(&call.args);
    };
    let verb = verb.to_string();
    match &case.mutation {
        Mutation::Revert | Mutation::Config(..) if verb == "create" || verb == "run" => {
            if let Some(bundle) = call.value_after("--bundle") {
                rewrite_config(&call, &case.mutation, Path::new(&bundle));
            }
            call.exec(&call.args)
        }
        Mutation::Behave(m) => behave(&call, *m, vi, &verb),
        _ => call.exec(&call.args),
    }
}

fn rewrite_config(call: &Call, m: &Mutation, bundle: &Path) {
    let file = bundle.join("config.json");
    let Ok(text) = std::fs::read(&file) else {
        return;
    };
    let Ok(mut cfg) = serde_json::from_slice::<Value>(&text) else {
        return;
    };
    let what = match m {
        Mutation::Revert => {
            let base = crate::rootless::mutant_base(base_of(&cfg), &call.spec);
            let changed = revert(&mut cfg, &base, &["process.args"]);
            if changed.is_empty() {
                return;
            }
            format!("reverted {}", changed.join(", "))
        }
        Mutation::Config(what, edit) => {
            let before = cfg.clone();
            edit(&mut cfg);
            if cfg == before {
                return;
            }
            (*what).to_string()
        }
        _ => return,
    };
    if let Ok(out) = serde_json::to_vec_pretty(&cfg) {
        if std::fs::write(&file, out).is_ok() {
            call.applied(&what);
        }
    }
}

fn behave(call: &Call, m: Misbehaviour, vi: usize, verb: &str) -> i32 {
    use Misbehaviour as M;
    match m {
        M::Swallow(v) if v == verb => {
            call.applied(&format!("{verb} reports success"));
            call.status(&call.args);
            0
        }
        M::Noop(v) if v == verb => {
            call.applied(&format!("{verb} does nothing"));
            0
        }
        M::Refuse(v) if v == verb => {
            call.applied(&format!("{verb} refuses"));
            eprintln!("mutant: {verb} refused");
            1
        }
        M::WrongStatus | M::WrongPid if verb == "state" => wrong_state(call, m),
        M::StartAtCreate if verb == "create" => {
            let rc = call.status(&call.args);
            if rc == 0 {
                if let Some(id) = call.id() {
                    let mut start: Vec<String> = call.args[..vi].to_vec();
                    start.extend(["start".to_string(), id]);
                    call.applied("create also starts");
                    call.command(&start).stdout(Stdio::null()).status().ok();
                }
            }
            rc
        }
        M::KeepCgroup if verb == "delete" => keep_cgroup(call, vi),
        M::ForceDelete if verb == "delete" => {
            let mut args = call.args.clone();
            if !args.iter().any(|a| a == "--force" || a == "-f") {
                args.insert(vi + 1, "--force".into());
                call.applied("delete forces");
            }
            call.exec(&args)
        }
        M::KillWithKill if verb == "kill" => {
            let mut args = call.args.clone();
            if let Some(last) = args.last_mut() {
                *last = "KILL".into();
            }
            call.applied("kill sends SIGKILL");
            call.exec(&args)
        }
        M::ExecOnHost if verb == "exec" => exec_on_host(call, vi),
        M::ExecFromBundle if verb == "exec" => exec_from_bundle(call, vi),
        M::RemoveAfterCreate(path) if verb == "create" => {
            let rc = call.status(&call.args);
            let pid = call
                .value_after("--pid-file")
                .and_then(|f| std::fs::read_to_string(f).ok())
                .and_then(|p| p.trim().parse::<i32>().ok());
            if let (0, Some(pid)) = (rc, pid) {
                let p = format!("/proc/{pid}/root{path}");
                if std::fs::remove_file(&p).is_ok() {
                    call.applied(&format!("create leaves no {path}"));
                }
            }
            rc
        }
        _ => call.exec(&call.args),
    }
}

fn wrong_state(call: &Call, m: Misbehaviour) -> i32 {
    let out = match call.command(&call.args).stderr(Stdio::inherit()).output() {
        Ok(o) => o,
        Err(_) => return 127,
    };
    let code = out.status.code().unwrap_or(1);
    let Ok(mut st) = serde_json::from_slice::<Value>(&out.stdout) else {
        let _ = std::io::stdout().write_all(&out.stdout);
        return code;
    };
    if matches!(m, Misbehaviour::WrongStatus) {
        let wrong = match st["status"].as_str() {
            Some("running") => "stopped",
            _ => "running",
        };
        st["status"] = Value::from(wrong);
        call.applied("state reports a wrong status");
    } else if let Some(pid) = st["pid"].as_i64() {
        st["pid"] = Value::from(pid + 1);
        call.applied("state reports a wrong pid");
    }
    println!("{st}");
    code
}

/// The bundle directory (from `state ID`) and its config.json as it is now.
fn bundle_config(call: &Call, vi: usize, id: &str) -> Option<(String, Value)> {
    let mut state: Vec<String> = call.args[..vi].to_vec();
    state.extend(["state".to_string(), id.to_string()]);
    let out = call.command(&state).stderr(Stdio::null()).output().ok()?;
    let st: Value = serde_json::from_slice(&out.stdout).ok()?;
    let b = st["bundle"].as_str()?.to_string();
    let text = std::fs::read(Path::new(&b).join("config.json")).ok()?;
    let cfg: Value = serde_json::from_slice(&text).ok()?;
    Some((b, cfg))
}

fn keep_cgroup(call: &Call, vi: usize) -> i32 {
    let id = call.id().unwrap_or_default();
    let cgroup = bundle_config(call, vi, &id)
        .and_then(|(_, cfg)| cfg["linux"]["cgroupsPath"].as_str().map(String::from));
    let rc = call.status(&call.args);
    if let (0, Some(path)) = (rc, cgroup) {
        let rel = path.trim_start_matches('/');
        let roots: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        for root in roots.iter().filter(|r| r.join("cgroup.procs").exists()) {
            let _ = std::fs::create_dir(root.join(rel));
        }
        if Path::new("/sys/fs/cgroup/cgroup.procs").exists() {
            let _ = std::fs::create_dir(Path::new("/sys/fs/cgroup").join(rel));
        }
        call.applied("delete leaves the cgroup");
    }
    rc
}

/// Options of `exec` that take a value (runc's and hako's CLI).
const EXEC_VALUE_OPTS: [&str; 12] = [
    "--env",
    "-e",
    "--cwd",
    "--user",
    "-u",
    "--pid-file",
    "--process",
    "-p",
    "--cap",
    "-c",
    "--preserve-fds",
    "--additional-gids",
];

/// `(id, command)` of an `exec` call.
fn exec_parts(call: &Call, vi: usize) -> Option<(&String, &[String])> {
    let rest = &call.args[vi + 1..];
    let mut i = 0;
    while i < rest.len() && rest[i].starts_with('-') {
        i += if EXEC_VALUE_OPTS.contains(&rest[i].as_str()) {
            2
        } else {
            1
        };
    }
    let cmd = rest.get(i + 1..).filter(|c| !c.is_empty())?;
    Some((rest.get(i)?, cmd))
}

fn exec_from_bundle(call: &Call, vi: usize) -> i32 {
    let Some((id, cmd)) = exec_parts(call, vi) else {
        return call.exec(&call.args);
    };
    let process = bundle_config(call, vi, id).map(|(b, cfg)| (b, cfg["process"].clone()));
    let Some((bundle, mut process)) = process else {
        return call.exec(&call.args);
    };
    process["args"] = Value::from(cmd.to_vec());
    let file = Path::new(&bundle).join("mutant-process.json");
    if std::fs::write(&file, process.to_string()).is_err() {
        return call.exec(&call.args);
    }
    let mut args: Vec<String> = call.args[..=vi].to_vec();
    args.extend([
        "--process".to_string(),
        file.display().to_string(),
        id.clone(),
    ]);
    call.applied("exec reads the bundle's config.json");
    call.exec(&args)
}

fn exec_on_host(call: &Call, _vi: usize) -> i32 {
    let Some((_, cmd)) = exec_parts(call, _vi) else {
        return call.exec(&call.args);
    };
    call.applied("exec runs on the host");
    match Command::new(&cmd[0]).args(&cmd[1..]).status() {
        Ok(s) => s.code().unwrap_or(1),
        Err(_) => 127,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn revert_undoes_what_a_case_changed_and_keeps_args() {
        let base = crate::config::base(&["/x", "check"], "/cg");
        let mut cfg = base.clone();
        cfg["hostname"] = json!("other");
        cfg["linux"]["personality"] = json!({"domain": "LINUX32"});
        cfg["process"]["args"] = json!(["/x", "check", "args"]);
        if let Some(o) = cfg.as_object_mut() {
            o.remove("mounts");
        }
        let base_now = base_of(&cfg);
        let mut changed = revert(&mut cfg, &base_now, &["process.args"]);
        changed.sort();
        assert_eq!(changed, ["hostname", "linux.personality", "mounts"]);
        assert_eq!(cfg["hostname"], "conformance");
        assert!(cfg["linux"].get("personality").is_none());
        assert_eq!(cfg["process"]["args"], json!(["/x", "check", "args"]));
        assert_eq!(cfg["mounts"], base["mounts"]);
        let again = base_of(&cfg);
        assert!(revert(&mut cfg, &again, &["process.args"]).is_empty());
    }
}
