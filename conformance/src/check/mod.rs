//! The checker: the hidden `check` mode of this same binary, run *inside* the container as its
//! process (like runtime-tools' `runtimetest`). The harness copies the binary and the shared
//! libraries `ldd` lists into the rootfs under `/.conformance`, next to the case's
//! `config.json` and a `host.json` of host facts (namespace inodes, clocks). The checker reads
//! both, runs the check groups named on its command line and prints one JSON line per check,
//! prefixed with [`PREFIX`], then [`END`]; the harness parses those lines from the container's
//! stdout. The process exit status is not used: a container's exit code is not observable
//! through the runtime CLI once `create` has detached.

mod fs;
mod kernel;
mod mountinfo;
mod process;

pub use kernel::NAMESPACES;

use serde_json::{json, Value};
use std::io::Write;

/// Where the harness puts the checker, config and host facts inside the rootfs.
pub const DIR: &str = "/.conformance";
/// The checker binary inside the rootfs.
pub const BIN: &str = "/.conformance/hako-conformance";
/// Prefix of every result line.
pub const PREFIX: &str = "@conf ";
/// The last line the checker prints.
pub const END: &str = "@conf-end";
/// Prefix of the annotations that carry per-case expectations to the checker.
pub const ANNOTATION: &str = "org.hako.conformance.";

/// The state of one check run.
pub struct Checker {
    /// The container's config.json.
    pub config: Value,
    /// Host facts written by the harness.
    pub host: Value,
    out: std::io::Stdout,
}

impl Checker {
    fn emit(&mut self, status: &str, name: &str, detail: &str) {
        let line = json!({"status": status, "check": name, "detail": detail});
        let _ = writeln!(self.out, "{PREFIX}{line}");
    }

    /// Records a passed check.
    pub fn ok(&mut self, name: &str) {
        self.emit("ok", name, "");
    }

    /// Records a failed check.
    pub fn fail(&mut self, name: &str, detail: impl AsRef<str>) {
        self.emit("fail", name, detail.as_ref());
    }

    /// Records a check that could not run here.
    pub fn skip(&mut self, name: &str, reason: impl AsRef<str>) {
        self.emit("skip", name, reason.as_ref());
    }

    /// Passes when `want == got`.
    pub fn eq<T: PartialEq + std::fmt::Debug>(&mut self, name: &str, want: T, got: T) {
        if want == got {
            self.ok(name);
        } else {
            self.fail(name, format!("want {want:?}, got {got:?}"));
        }
    }

    /// Annotations whose key starts with `ANNOTATION` + `kind` + `:`, as `(rest, value)`.
    pub fn expectations(&self, kind: &str) -> Vec<(String, String)> {
        let prefix = format!("{ANNOTATION}{kind}:");
        self.config["annotations"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| {
                        Some((
                            k.strip_prefix(&prefix)?.to_string(),
                            v.as_str()?.to_string(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Entry point of `hako-conformance check GROUP...`; returns the exit code.
pub fn main(groups: &[String]) -> i32 {
    let read = |name: &str| -> Value {
        std::fs::read(format!("{DIR}/{name}"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null)
    };
    let mut c = Checker {
        config: read("config.json"),
        host: read("host.json"),
        out: std::io::stdout(),
    };
    if c.config.is_null() {
        c.fail("checker.config", format!("cannot read {DIR}/config.json"));
    }
    for group in groups.iter().take_while(|g| *g != "--") {
        let (name, param) = group.split_once('=').unwrap_or((group.as_str(), ""));
        match name {
            "args" => process::args(&mut c),
            "env" => process::env(&mut c),
            "cwd" => process::cwd(&mut c),
            "user" => process::user(&mut c),
            "groups-exact" => process::groups_exact(&mut c),
            "umask" => process::umask(&mut c),
            "caps" => process::caps(&mut c),
            "rlimits" => process::rlimits(&mut c),
            "nnp" => process::nnp(&mut c),
            "oom" => process::oom(&mut c),
            "mounts" => fs::mounts(&mut c),
            "masked" => fs::masked(&mut c),
            "readonly" => fs::readonly(&mut c),
            "rootro" => fs::root_readonly(&mut c),
            "devices" => fs::devices(&mut c),
            "devnode" => fs::devnode(&mut c, param),
            "symlink" => fs::symlink(&mut c, param),
            "files" => fs::files(&mut c),
            "open" => fs::open(&mut c),
            "write" => fs::write(&mut c),
            "hostname" => kernel::hostname(&mut c),
            "domainname" => kernel::domainname(&mut c),
            "ns" => kernel::namespaces(&mut c),
            "idmap" => kernel::id_mappings(&mut c),
            "sysctl" => kernel::sysctl(&mut c),
            "personality" => kernel::personality(&mut c),
            "sched" => kernel::scheduler(&mut c),
            "ioprio" => kernel::io_priority(&mut c),
            "timens" => kernel::time_offsets(&mut c),
            "seccomp" => kernel::seccomp(&mut c),
            "apparmor" => kernel::apparmor(&mut c),
            "selinux" => kernel::selinux(&mut c),
            other => c.fail("checker.group", format!("unknown check group {other:?}")),
        }
    }
    let _ = writeln!(c.out, "{END}");
    let _ = c.out.flush();
    0
}

/// The value of a `Key:\tvalue` line of `/proc/self/status`.
pub fn status_field(key: &str) -> Option<String> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
}
