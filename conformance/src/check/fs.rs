//! Checks of the filesystem view (config.md "Mounts", "Root"; config-linux.md "Devices",
//! "Masked Paths", "Readonly Paths"): what is mounted where with which flags, what reads empty,
//! what refuses writes with EROFS, which device nodes exist with which numbers and owners.

use super::{mountinfo, Checker};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

/// Per-mount flags as mountinfo's fifth field shows them: `(what the option decides, flags,
/// present?)`. `rw` shows as the absence of `ro`, `strictatime` as the absence of both
/// `relatime` and `noatime`; options deciding the same thing override each other in order.
fn vfs_flag(opt: &str) -> Option<(&'static str, &'static [&'static str], bool)> {
    Some(match opt {
        "ro" => ("ro", &["ro"], true),
        "rw" => ("ro", &["ro"], false),
        "nosuid" => ("suid", &["nosuid"], true),
        "suid" => ("suid", &["nosuid"], false),
        "nodev" => ("dev", &["nodev"], true),
        "dev" => ("dev", &["nodev"], false),
        "noexec" => ("exec", &["noexec"], true),
        "exec" => ("exec", &["noexec"], false),
        "noatime" => ("atime", &["noatime"], true),
        "relatime" => ("atime", &["relatime"], true),
        "strictatime" => ("atime", &["relatime", "noatime"], false),
        "nodiratime" => ("diratime", &["nodiratime"], true),
        _ => return None,
    })
}

fn is_ro(path: &str) -> Option<bool> {
    nix::sys::statvfs::statvfs(path)
        .ok()
        .map(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
}

/// Every `mounts[]` entry is mounted at its destination with its type and flags; `mode=`,
/// `uid=` and `gid=` are checked on the mount's root, `sync`/`dirsync` on the superblock.
pub fn mounts(c: &mut Checker) {
    let table = mountinfo::read();
    let list = c.config["mounts"].as_array().cloned().unwrap_or_default();
    for m in list {
        let dest = m["destination"].as_str().unwrap_or("").to_string();
        let name = format!("mounts.{dest}");
        let Some(found) = mountinfo::at(&table, &dest) else {
            c.fail(&name, "not a mount point in /proc/self/mountinfo");
            continue;
        };
        let opts: Vec<String> = m["options"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|o| o.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let bind = opts.iter().any(|o| o == "bind" || o == "rbind");
        let mut problems = Vec::new();
        // The last option deciding each flag wins.
        let mut decided: std::collections::BTreeMap<&str, (&str, &[&str], bool)> =
            std::collections::BTreeMap::new();
        for o in &opts {
            if let Some((key, flags, want)) = vfs_flag(o) {
                decided.insert(key, (o.as_str(), flags, want));
            }
        }
        for (o, flags, want) in decided.values() {
            let has = flags.iter().any(|f| found.opts.iter().any(|x| x == f));
            if has != *want {
                problems.push(format!("option {o}: mount options are {:?}", found.opts));
            }
        }
        if let Some(ty) = m["type"]
            .as_str()
            .filter(|t| !bind && *t != "bind" && *t != "none")
        {
            if found.fstype != ty {
                problems.push(format!("type {} (want {ty})", found.fstype));
            }
        }
        // The last `key=value` of each key wins too.
        let mut last: Vec<&String> = Vec::new();
        for o in opts.iter().rev() {
            let key = o.split_once('=').map(|(k, _)| k);
            if key.is_none()
                || !last
                    .iter()
                    .any(|l| l.split_once('=').map(|(k, _)| k) == key)
            {
                last.push(o);
            }
        }
        last.reverse();
        for o in last {
            if vfs_flag(o).is_some() {
                continue;
            } else if o == "sync" || o == "dirsync" {
                if !found.super_opts.iter().any(|x| x == o) {
                    problems.push(format!(
                        "option {o}: superblock options {:?}",
                        found.super_opts
                    ));
                }
            } else if let Some((key, val)) = o.split_once('=') {
                let meta = std::fs::metadata(&dest).ok();
                let got = match key {
                    "mode" => meta.map(|m| format!("{:o}", m.mode() & 0o7777)),
                    "uid" => meta.map(|m| m.uid().to_string()),
                    "gid" if found.fstype != "devpts" => meta.map(|m| m.gid().to_string()),
                    _ => continue,
                };
                let want = if key == "mode" {
                    u32::from_str_radix(val, 8)
                        .map(|v| format!("{v:o}"))
                        .unwrap_or_default()
                } else {
                    val.to_string()
                };
                if found.fstype != "devpts" && got.as_deref() != Some(want.as_str()) {
                    problems.push(format!("option {o}: got {key}={got:?}"));
                }
            }
        }
        if problems.is_empty() {
            c.ok(&name);
        } else {
            c.fail(&name, problems.join("; "));
        }
    }
}

/// Every `linux.maskedPaths` entry that exists reads as empty: a file reads zero bytes, a
/// directory lists nothing and is read-only.
pub fn masked(c: &mut Checker) {
    let list = c.config["linux"]["maskedPaths"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for p in list.iter().filter_map(|p| p.as_str()) {
        let name = format!("maskedPaths.{p}");
        match std::fs::metadata(p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                c.skip(&name, "path does not exist in the container");
            }
            Err(e) => c.fail(&name, format!("stat: {e}")),
            Ok(m) if m.is_dir() => {
                let n = std::fs::read_dir(p)
                    .map(|d| d.count())
                    .unwrap_or(usize::MAX);
                if n == 0 && is_ro(p) == Some(true) {
                    c.ok(&name);
                } else {
                    c.fail(
                        &name,
                        format!("directory has {n} entries, read-only {:?}", is_ro(p)),
                    );
                }
            }
            Ok(_) => {
                let mut buf = Vec::new();
                match std::fs::File::open(p).and_then(|mut f| f.read_to_end(&mut buf)) {
                    Ok(0) => c.ok(&name),
                    Ok(n) => c.fail(&name, format!("read {n} bytes")),
                    Err(e) => c.fail(&name, format!("read: {e}")),
                }
            }
        }
    }
}

/// Every `linux.readonlyPaths` entry that exists is on a read-only mount.
pub fn readonly(c: &mut Checker) {
    let list = c.config["linux"]["readonlyPaths"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for p in list.iter().filter_map(|p| p.as_str()) {
        let name = format!("readonlyPaths.{p}");
        if std::fs::symlink_metadata(p).is_err() {
            c.skip(&name, "path does not exist in the container");
            continue;
        }
        c.eq(&name, Some(true), is_ro(p));
    }
}

/// `root.readonly`: the root mount's read-only flag.
pub fn root_readonly(c: &mut Checker) {
    let want = c.config["root"]["readonly"].as_bool().unwrap_or(false);
    c.eq("root.readonly", Some(want), is_ro("/"));
}

fn major_minor(rdev: u64) -> (u64, u64) {
    (
        ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff),
        (rdev & 0xff) | ((rdev >> 12) & !0xff),
    )
}

fn kind(m: &std::fs::Metadata) -> &'static str {
    let t = m.file_type();
    if t.is_char_device() {
        "c"
    } else if t.is_block_device() {
        "b"
    } else if t.is_fifo() {
        "p"
    } else if t.is_symlink() {
        "l"
    } else if t.is_dir() {
        "d"
    } else {
        "f"
    }
}

/// Every `linux.devices` entry exists with its type, numbers, mode and owner.
pub fn devices(c: &mut Checker) {
    let list = c.config["linux"]["devices"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for d in list {
        let path = d["path"].as_str().unwrap_or("").to_string();
        let name = format!("devices.{path}");
        let m = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) => {
                c.fail(&name, format!("stat: {e}"));
                continue;
            }
        };
        let mut problems = Vec::new();
        let ty = d["type"].as_str().unwrap_or("");
        let want_ty = if ty == "u" { "c" } else { ty };
        if kind(&m) != want_ty {
            problems.push(format!("type {} (want {ty})", kind(&m)));
        }
        if want_ty != "p" {
            let want = (
                d["major"].as_u64().unwrap_or(0),
                d["minor"].as_u64().unwrap_or(0),
            );
            if major_minor(m.rdev()) != want {
                problems.push(format!(
                    "numbers {:?} (want {want:?})",
                    major_minor(m.rdev())
                ));
            }
        }
        if let Some(mode) = d["fileMode"].as_u64() {
            if u64::from(m.mode() & 0o7777) != mode & 0o7777 {
                problems.push(format!(
                    "mode {:o} (want {:o})",
                    m.mode() & 0o7777,
                    mode & 0o7777
                ));
            }
        }
        if let Some(uid) = d["uid"].as_u64() {
            if u64::from(m.uid()) != uid {
                problems.push(format!("uid {} (want {uid})", m.uid()));
            }
        }
        if let Some(gid) = d["gid"].as_u64() {
            if u64::from(m.gid()) != gid {
                problems.push(format!("gid {} (want {gid})", m.gid()));
            }
        }
        if problems.is_empty() {
            c.ok(&name);
        } else {
            c.fail(&name, problems.join("; "));
        }
    }
}

/// `devnode=PATH:TYPE:MAJOR:MINOR`: a device node the runtime must supply (config-linux.md
/// "Default Devices").
pub fn devnode(c: &mut Checker, param: &str) {
    let parts: Vec<&str> = param.split(':').collect();
    let name = format!("devnode.{}", parts.first().unwrap_or(&"?"));
    let [path, ty, major, minor] = parts[..] else {
        c.fail(&name, format!("bad parameter {param:?}"));
        return;
    };
    match std::fs::symlink_metadata(path) {
        Ok(m) => {
            let want = (
                ty.to_string(),
                major.parse().unwrap_or(0),
                minor.parse().unwrap_or(0),
            );
            let got = (
                kind(&m).to_string(),
                major_minor(m.rdev()).0,
                major_minor(m.rdev()).1,
            );
            c.eq(&name, want, got);
        }
        Err(e) => c.fail(&name, format!("stat: {e}")),
    }
}

/// `symlink=PATH:TARGET`: a symbolic link the runtime must supply.
pub fn symlink(c: &mut Checker, param: &str) {
    let (path, target) = param.split_once(':').unwrap_or((param, ""));
    let got = std::fs::read_link(path)
        .map(|p| p.to_string_lossy().into_owned())
        .ok();
    if target.starts_with('/') && std::fs::metadata(target).is_err() {
        // runtime-linux.md: the link is required only "if the source file exists"; without
        // the source, a runtime may make the link or not, so there is nothing to check.
        c.skip(
            &format!("symlink.{path}"),
            format!("{target} does not exist in the container"),
        );
        return;
    }
    c.eq(&format!("symlink.{path}"), Some(target.to_string()), got);
}

/// Annotations `…file:PATH` = content: the file reads exactly that.
pub fn files(c: &mut Checker) {
    for (path, want) in c.expectations("file") {
        let got = std::fs::read_to_string(&path).map_err(|e| e.to_string());
        c.eq(&format!("file.{path}"), Ok(want), got);
    }
}

fn errno_outcome<T>(r: std::io::Result<T>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => format!("errno={}", e.raw_os_error().unwrap_or(0)),
    }
}

/// Annotations `…open:PATH` = `ok` | `errno=N`: opening the path read-only gives that.
pub fn open(c: &mut Checker) {
    for (path, want) in c.expectations("open") {
        let got = errno_outcome(std::fs::File::open(&path));
        c.eq(&format!("open.{path}"), want, got);
    }
}

/// Annotations `…write:PATH` = `ok` | `errno=N`: creating/opening the path for writing gives
/// that.
pub fn write(c: &mut Checker) {
    for (path, want) in c.expectations("write") {
        let got = errno_outcome(
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path),
        );
        c.eq(&format!("write.{path}"), want, got);
    }
}
