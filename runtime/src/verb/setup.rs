//! `hako setup podman|docker|containerd|kubernetes`: the configuration that registers hako with an
//! engine, printed (the default) or merged into the engine's file (`--write`, which keeps a
//! backup of the file it changes).
//!
//! The snippets are the ones the engine tests (tests/tests/clients_*.rs) run with: podman's
//! `[engine.runtimes]` (containers.conf(5)), docker's `runtimes` (dockerd(8), "daemon
//! configuration file"), containerd's CRI runtime handler whose runc-shim options set
//! `BinaryName` (containerd's docs/cri/config.md), and the Kubernetes `RuntimeClass` that names
//! that handler. The cgroup driver follows hako's global `--systemd-cgroup` (`hako
//! --systemd-cgroup setup ENGINE`): containerd's `SystemdCgroup` and docker's
//! `native.cgroupdriver` say systemd with it and cgroupfs without; podman chooses its own
//! (`cgroup_manager`, systemd on a systemd host) and passes `--systemd-cgroup` to hako itself.
//!
//! `--write` edits TOML line by line (a TOML parser would grow every hako command's binary for
//! this one verb): it finds the `[table]` header, replaces or adds the key under it, or appends
//! the table. Tables written as dotted keys or inline tables are not recognised; the backup is
//! there for that case.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

/// The engines hako can be registered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// podman: containers.conf `[engine.runtimes]`.
    Podman,
    /// docker: daemon.json `runtimes`.
    Docker,
    /// containerd (and Kubernetes through its CRI plugin): a runtime handler with `BinaryName`.
    Containerd,
    /// Kubernetes: the `RuntimeClass` naming containerd's handler (applied with kubectl).
    Kubernetes,
}

impl Engine {
    /// The engine by its CLI name.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "podman" => Engine::Podman,
            "docker" => Engine::Docker,
            "containerd" => Engine::Containerd,
            "kubernetes" => Engine::Kubernetes,
            _ => return None,
        })
    }

    /// The file the engine reads its configuration from, as Debian installs it.
    pub fn default_config(self) -> Option<&'static Path> {
        match self {
            Engine::Podman => Some(Path::new("/etc/containers/containers.conf")),
            Engine::Docker => Some(Path::new("/etc/docker/daemon.json")),
            Engine::Containerd => Some(Path::new("/etc/containerd/config.toml")),
            Engine::Kubernetes => None,
        }
    }

    /// What the user does after `--write` for the engine to see the change.
    pub fn after_write(self) -> &'static str {
        match self {
            Engine::Podman => "podman reads it at every command: `podman --runtime NAME ...`",
            Engine::Docker => {
                "reload dockerd (SIGHUP or `systemctl reload docker`), then `docker run --runtime NAME ...`"
            }
            Engine::Containerd | Engine::Kubernetes => {
                "restart containerd, then apply the RuntimeClass (`hako setup kubernetes | kubectl apply -f -`)"
            }
        }
    }
}

/// What is registered: the name the engine knows hako by, and the binary it runs.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The runtime's name in the engine (`hako`).
    pub name: String,
    /// The absolute path of the hako binary.
    pub binary: PathBuf,
    /// The engine's cgroup driver: systemd (`--systemd-cgroup`) or cgroupfs.
    pub systemd_cgroup: bool,
}

/// What `--write` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    /// The file already registered hako this way: untouched.
    Unchanged,
    /// The file was created (there was nothing to back up).
    Created,
    /// The file was changed; the original is at this path.
    Changed {
        /// The copy of the file as it was.
        backup: PathBuf,
    },
}

/// A failed `hako setup`.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The runtime name would not be a bare key in TOML or a plain name in the engines' CLIs.
    #[error("invalid runtime name {name:?}: use letters, digits, '-' and '_'")]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// The engine reads a binary path from anywhere: it must be absolute.
    #[error("the hako binary path {} is not absolute", path.display())]
    RelativeBinary {
        /// The path given.
        path: PathBuf,
    },
    /// A RuntimeClass lives in the Kubernetes API, not in a file.
    #[error("the RuntimeClass is not a file to write: apply it with `hako setup kubernetes | kubectl apply -f -`")]
    NotAFile,
    /// Reading, backing up or writing the configuration failed.
    #[error("{op} {}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// daemon.json is not JSON.
    #[error("parse {}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// daemon.json has a field of an unexpected type.
    #[error("{}: {field} is not a JSON {expected}", path.display())]
    Shape {
        /// The file.
        path: PathBuf,
        /// The field.
        field: &'static str,
        /// What it should be.
        expected: &'static str,
    },
    /// docker is set to the other cgroup driver than the one asked for.
    #[error("{}: exec-opts sets {driver}, not {wanted} (`hako --systemd-cgroup setup docker` registers hako for the systemd driver)", path.display())]
    CgroupDriver {
        /// The file.
        path: PathBuf,
        /// The exec-opts entry.
        driver: String,
        /// The entry the registration wants.
        wanted: &'static str,
    },
}

type Result<T> = std::result::Result<T, SetupError>;

impl Registration {
    /// Checks the name and the path before they go into an engine's configuration; the engine
    /// uses the cgroupfs driver (see [`Registration::systemd_cgroup`]).
    pub fn new(name: &str, binary: PathBuf) -> Result<Self> {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(SetupError::InvalidName { name: name.into() });
        }
        if !binary.is_absolute() {
            return Err(SetupError::RelativeBinary { path: binary });
        }
        Ok(Registration {
            name: name.into(),
            binary,
            systemd_cgroup: false,
        })
    }

    /// The same registration with the engine on the systemd cgroup driver (or not).
    pub fn systemd_cgroup(self, systemd_cgroup: bool) -> Self {
        Registration {
            systemd_cgroup,
            ..self
        }
    }

    /// docker's `exec-opts` entry for the driver.
    fn docker_driver(&self) -> &'static str {
        if self.systemd_cgroup {
            "native.cgroupdriver=systemd"
        } else {
            "native.cgroupdriver=cgroupfs"
        }
    }

    /// The binary as a quoted string, valid in TOML and JSON alike.
    fn quoted_binary(&self) -> String {
        Value::String(self.binary.to_string_lossy().into_owned()).to_string()
    }
}

/// containerd's CRI plugin id: config version 3 (containerd 2.x) renamed it.
fn cri_plugin(existing: &str) -> &'static str {
    let v3 = existing
        .lines()
        .any(|l| l.split('#').next().unwrap_or("").replace(' ', "") == "version=3");
    if v3 {
        r#"plugins."io.containerd.cri.v1.runtime""#
    } else {
        r#"plugins."io.containerd.grpc.v1.cri""#
    }
}

/// TOML tables with their keys, in the order they are written.
type Tables = Vec<(String, Vec<(String, String)>)>;

fn podman_tables(r: &Registration) -> Tables {
    vec![(
        "engine.runtimes".into(),
        vec![(r.name.clone(), format!("[{}]", r.quoted_binary()))],
    )]
}

fn containerd_tables(r: &Registration, existing: &str) -> Tables {
    let handler = format!("{}.containerd.runtimes.{}", cri_plugin(existing), r.name);
    vec![
        (
            handler.clone(),
            vec![("runtime_type".into(), r#""io.containerd.runc.v2""#.into())],
        ),
        (
            format!("{handler}.options"),
            vec![
                ("BinaryName".into(), r.quoted_binary()),
                ("SystemdCgroup".into(), r.systemd_cgroup.to_string()),
            ],
        ),
    ]
}

fn render_tables(tables: &Tables) -> String {
    let mut out = String::new();
    for (depth, (table, keys)) in tables.iter().enumerate() {
        let indent = "  ".repeat(depth);
        out.push_str(&format!("{indent}[{table}]\n"));
        for (k, v) in keys {
            out.push_str(&format!("{indent}  {k} = {v}\n"));
        }
    }
    out
}

fn docker_json(r: &Registration) -> Value {
    json!({
        "runtimes": { &r.name: { "path": r.binary } },
        "exec-opts": [r.docker_driver()],
    })
}

/// The snippet for `engine`; `existing` is the engine's current configuration (containerd's
/// version decides the plugin's name), empty when there is none.
pub fn snippet(engine: Engine, r: &Registration, existing: &str) -> String {
    let name = &r.name;
    let bin = r.binary.display();
    match engine {
        Engine::Podman => format!(
            "# containers.conf(5), e.g. /etc/containers/containers.conf: `podman --runtime {name} ...`\n\
             # (either cgroup_manager: podman passes --systemd-cgroup to hako for \"systemd\")\n{}",
            render_tables(&podman_tables(r))
        ),
        // JSON has no comments: the snippet is the file's content, as docker reads it.
        Engine::Docker => {
            serde_json::to_string_pretty(&docker_json(r)).unwrap_or_default() + "\n"
        }
        Engine::Containerd => format!(
            "# containerd's config.toml, e.g. /etc/containerd/config.toml: the CRI runtime handler\n\
             # {name:?} (Kubernetes: `hako setup kubernetes` prints its RuntimeClass; the kubelet's\n\
             # cgroupDriver must be {}). With ctr: `ctr run --runc-binary {bin} ...`\n{}",
            if r.systemd_cgroup { "systemd" } else { "cgroupfs (`hako --systemd-cgroup setup containerd` for systemd)" },
            render_tables(&containerd_tables(r, existing))
        ),
        Engine::Kubernetes => format!(
            "# The RuntimeClass for containerd's handler {name:?} (`hako setup containerd`);\n\
             # pods ask for it with `runtimeClassName: {name}`.\n\
             apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata:\n  name: {name}\nhandler: {name}\n"
        ),
    }
}

/// Merges the registration into `existing` (the file's text, empty if absent): `None` when it
/// is already there.
pub fn merge(
    engine: Engine,
    r: &Registration,
    existing: &str,
    path: &Path,
) -> Result<Option<String>> {
    match engine {
        Engine::Podman => Ok(merge_toml(existing, &podman_tables(r))),
        Engine::Containerd => Ok(merge_toml(existing, &containerd_tables(r, existing))),
        Engine::Docker => merge_docker(existing, r, path),
        Engine::Kubernetes => Err(SetupError::NotAFile),
    }
}

/// A header line's table name (`[a.b] # c` -> `a.b`), spaces dropped.
fn header(line: &str) -> Option<String> {
    let t = line.split('#').next().unwrap_or("").trim();
    let inner = t.strip_prefix('[')?.strip_suffix(']')?;
    (!inner.starts_with('[')).then(|| inner.replace(' ', ""))
}

/// A `key = value` line's key and value (comment dropped).
fn key_value(line: &str) -> Option<(&str, &str)> {
    let (k, v) = line.split_once('=')?;
    Some((k.trim(), v.split(" #").next().unwrap_or("").trim()))
}

fn merge_toml(existing: &str, tables: &Tables) -> Option<String> {
    let mut lines: Vec<String> = existing.lines().map(str::to_string).collect();
    let mut appended = String::new();
    let mut changed = false;
    for (depth, (table, keys)) in tables.iter().enumerate() {
        let Some(start) = lines
            .iter()
            .position(|l| header(l).as_deref() == Some(table.replace(' ', "").as_str()))
        else {
            let indent = "  ".repeat(depth);
            appended.push_str(&format!("{indent}[{table}]\n"));
            for (k, v) in keys {
                appended.push_str(&format!("{indent}  {k} = {v}\n"));
            }
            changed = true;
            continue;
        };
        // The table's body: up to the next header (recomputed as lines are inserted).
        let end = |lines: &[String]| {
            lines[start + 1..]
                .iter()
                .position(|l| l.trim_start().starts_with('['))
                .map_or(lines.len(), |i| start + 1 + i)
        };
        let indent: String = lines[start + 1..end(&lines)]
            .iter()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.chars().take_while(|c| c.is_whitespace()).collect())
            .unwrap_or_default();
        for (k, v) in keys.iter().rev() {
            let line = format!("{indent}{k} = {v}");
            let end = end(&lines);
            match (start + 1..end).find(|&i| key_value(&lines[i]).is_some_and(|(lk, _)| lk == *k)) {
                Some(i) if key_value(&lines[i]).is_some_and(|(_, lv)| lv == v) => {}
                Some(i) => {
                    lines[i] = line;
                    changed = true;
                }
                None => {
                    lines.insert(start + 1, line);
                    changed = true;
                }
            }
        }
    }
    if !changed {
        return None;
    }
    let mut text = lines.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    if !appended.is_empty() {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&appended);
    }
    Some(text)
}

fn merge_docker(existing: &str, r: &Registration, path: &Path) -> Result<Option<String>> {
    let shape = |field, expected| SetupError::Shape {
        path: path.to_path_buf(),
        field,
        expected,
    };
    let mut doc: Value = if existing.trim().is_empty() {
        json!({})
    } else {
        serde_json::from_str(existing).map_err(|source| SetupError::Json {
            path: path.to_path_buf(),
            source,
        })?
    };
    let before = doc.clone();
    let top = doc.as_object_mut().ok_or(shape("the file", "object"))?;
    let runtimes = top
        .entry("runtimes")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or(shape("runtimes", "object"))?;
    runtimes.insert(r.name.clone(), json!({ "path": r.binary }));
    let opts = top
        .entry("exec-opts")
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .ok_or(shape("exec-opts", "array"))?;
    let driver = opts
        .iter()
        .filter_map(Value::as_str)
        .find(|o| o.replace(' ', "").starts_with("native.cgroupdriver="));
    let wanted = r.docker_driver();
    match driver {
        Some(d) if d.replace(' ', "") != wanted => {
            return Err(SetupError::CgroupDriver {
                path: path.to_path_buf(),
                driver: d.to_string(),
                wanted,
            })
        }
        Some(_) => {}
        None => opts.push(json!(wanted)),
    }
    if doc == before {
        return Ok(None);
    }
    Ok(Some(
        serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n",
    ))
}

/// Reads the engine's file (empty when it does not exist yet).
pub fn read_existing(path: &Path) -> Result<String> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(SetupError::Io {
            op: "read",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Registers hako in the engine's file at `path`: a backup of the file as it was is kept next
/// to it (`FILE.hako-backup-SECONDS`), and the new content replaces it atomically (rename).
pub fn write(engine: Engine, r: &Registration, path: &Path) -> Result<Written> {
    let existing = read_existing(path)?;
    let Some(text) = merge(engine, r, &existing, path)? else {
        return Ok(Written::Unchanged);
    };
    let io = |op, p: &Path| {
        let p = p.to_path_buf();
        move |source| SetupError::Io {
            op,
            path: p,
            source,
        }
    };
    let old_mode = std::fs::metadata(path).ok().map(|m| m.permissions().mode());
    let backup = match old_mode {
        Some(mode) => {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let backup = PathBuf::from(format!("{}.hako-backup-{secs}", path.display()));
            // create_new: an earlier backup is never overwritten.
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode & 0o7777)
                .open(&backup)
                .and_then(|mut f| f.write_all(existing.as_bytes()).and_then(|()| f.sync_all()))
                .map_err(io("back up to", &backup))?;
            Some(backup)
        }
        None => None,
    };
    let tmp = PathBuf::from(format!("{}.hako-new", path.display()));
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(old_mode.unwrap_or(0o644) & 0o7777)
        .open(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
        .map_err(io("write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("replace", path))?;
    Ok(match backup {
        Some(backup) => Written::Changed { backup },
        None => Written::Created,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(name: &str) -> Registration {
        Registration::new(name, "/usr/sbin/hako".into()).expect("valid")
    }

    #[test]
    fn podman_snippet_appends_to_an_empty_file_and_merges_once() {
        let r = reg("hako");
        let text = merge_toml("", &podman_tables(&r)).expect("changed");
        assert_eq!(text, "[engine.runtimes]\n  hako = [\"/usr/sbin/hako\"]\n");
        assert!(snippet(Engine::Podman, &r, "").ends_with(&text));
        assert_eq!(merge_toml(&text, &podman_tables(&r)), None);
    }

    #[test]
    fn toml_key_goes_under_an_existing_table_and_replaces_an_old_value() {
        let r = reg("hako");
        let conf = "[engine]\ncgroup_manager = \"cgroupfs\"\n\n[engine.runtimes]\ncrun = [\"/usr/bin/crun\"]\nhako = [\"/old\"]\n\n[network]\n";
        let text = merge_toml(conf, &podman_tables(&r)).expect("changed");
        assert_eq!(
            text,
            "[engine]\ncgroup_manager = \"cgroupfs\"\n\n[engine.runtimes]\ncrun = [\"/usr/bin/crun\"]\nhako = [\"/usr/sbin/hako\"]\n\n[network]\n"
        );
        let conf = "[engine.runtimes] # mine\n  crun = [\"/usr/bin/crun\"]\n";
        let text = merge_toml(conf, &podman_tables(&r)).expect("changed");
        assert_eq!(
            text,
            "[engine.runtimes] # mine\n  hako = [\"/usr/sbin/hako\"]\n  crun = [\"/usr/bin/crun\"]\n"
        );
    }

    #[test]
    fn containerd_handler_follows_the_config_version() {
        let r = reg("hako");
        let v2 = snippet(Engine::Containerd, &r, "version = 2\n");
        assert!(v2.contains(
            "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.hako.options]\n    BinaryName = \"/usr/sbin/hako\"\n    SystemdCgroup = false\n"
        ));
        let systemd = snippet(Engine::Containerd, &r.clone().systemd_cgroup(true), "");
        assert!(systemd.contains("    SystemdCgroup = true\n"), "{systemd}");
        assert!(
            systemd.contains("cgroupDriver must be systemd"),
            "{systemd}"
        );
        let v3 = snippet(Engine::Containerd, &r, "version = 3\n");
        assert!(v3.contains("[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.hako]"));
        let merged = merge_toml("version = 2\n", &containerd_tables(&r, "")).expect("changed");
        assert!(v2.ends_with(merged.trim_start_matches("version = 2\n\n")));
        assert_eq!(merge_toml(&merged, &containerd_tables(&r, "")), None);
    }

    #[test]
    fn docker_keeps_other_settings_and_refuses_the_other_driver() {
        let r = reg("hako");
        let p = Path::new("daemon.json");
        let text = merge_docker(
            r#"{"debug": true, "runtimes": {"crun": {"path": "/usr/bin/crun"}}}"#,
            &r,
            p,
        )
        .expect("merge")
        .expect("changed");
        let v: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["debug"], true);
        assert_eq!(v["runtimes"]["crun"]["path"], "/usr/bin/crun");
        assert_eq!(v["runtimes"]["hako"]["path"], "/usr/sbin/hako");
        assert_eq!(v["exec-opts"], json!(["native.cgroupdriver=cgroupfs"]));
        assert!(merge_docker(&text, &r, p).expect("merge").is_none());
        let systemd = r#"{"exec-opts": ["native.cgroupdriver=systemd"]}"#;
        assert!(matches!(
            merge_docker(systemd, &r, p),
            Err(SetupError::CgroupDriver { .. })
        ));
        let snippet: Value = serde_json::from_str(&snippet(Engine::Docker, &r, "")).expect("json");
        assert_eq!(snippet, docker_json(&r));
        // With --systemd-cgroup, systemd is the driver and cgroupfs the refused one.
        let r = r.systemd_cgroup(true);
        assert!(merge_docker(systemd, &r, p).expect("merge").is_some());
        let cgroupfs = r#"{"exec-opts": ["native.cgroupdriver=cgroupfs"]}"#;
        assert!(matches!(
            merge_docker(cgroupfs, &r, p),
            Err(SetupError::CgroupDriver { .. })
        ));
    }

    #[test]
    fn names_and_paths_are_checked() {
        assert!(Registration::new("ha ko", "/x".into()).is_err());
        assert!(Registration::new("hako\"]", "/x".into()).is_err());
        assert!(Registration::new("hako", "relative/hako".into()).is_err());
    }

    #[test]
    fn write_keeps_a_backup_and_is_idempotent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("containers.conf");
        let r = reg("hako");
        assert_eq!(
            write(Engine::Podman, &r, &path).expect("write"),
            Written::Created
        );
        let first = std::fs::read_to_string(&path).expect("read");
        assert_eq!(
            write(Engine::Podman, &r, &path).expect("write"),
            Written::Unchanged
        );
        let other = Registration::new("hako", "/opt/hako".into()).expect("valid");
        let Written::Changed { backup } = write(Engine::Podman, &other, &path).expect("write")
        else {
            panic!("expected a change");
        };
        assert_eq!(std::fs::read_to_string(backup).expect("backup"), first);
        assert!(std::fs::read_to_string(&path)
            .expect("read")
            .contains("hako = [\"/opt/hako\"]"));
    }
}
