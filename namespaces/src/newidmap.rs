//! Id maps an unprivileged user cannot write itself: through the setuid helpers newuidmap(1) and
//! newgidmap(1) (Debian's `uidmap` package), which write only what subuid(5) and subgid(5) grant.
//!
//! The kernel lets a process without CAP_SETUID (CAP_SETGID) in the parent user namespace write
//! one map line only, mapping its own effective id (user_namespaces(7), "Defining user and group
//! ID mappings"). Anything more goes through the helpers, as runc does for rootless containers.
//! Before calling them hako checks the ranges against the files itself, so the error names the
//! file and the range instead of the helper's terse refusal.

use std::process::{Command, Stdio};

use crate::idmap::Line;
use crate::Error;

/// The helper's name for a map kind.
pub(crate) fn program(kind: &'static str) -> &'static str {
    if kind == "uid" {
        "newuidmap"
    } else {
        "newgidmap"
    }
}

/// The subordinate-id file for a map kind.
pub(crate) fn file(kind: &'static str) -> &'static str {
    if kind == "uid" {
        "/etc/subuid"
    } else {
        "/etc/subgid"
    }
}

/// Whether the kernel takes `lines` from an unprivileged writer whose effective id is `own`.
pub(crate) fn writable_directly(lines: &[Line], own: u32) -> bool {
    matches!(lines, [l] if l.outside == own && l.size == 1)
}

/// The ranges (start, count) granted to `user` (name) or `uid` by a subuid(5)/subgid(5) text.
fn granted(text: &str, user: &str, uid: u32) -> Vec<(u64, u64)> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim().split(':');
            let who = f.next()?;
            let start = f.next()?.trim().parse::<u64>().ok()?;
            let count = f.next()?.trim().parse::<u64>().ok()?;
            (who == user || who.parse::<u32>().ok() == Some(uid)).then_some((start, count))
        })
        .collect()
}

/// The caller, as subuid(5) and subgid(5) name it: by login name or by uid.
pub(crate) struct Caller<'a> {
    /// Login name.
    pub(crate) name: &'a str,
    /// Real uid.
    pub(crate) uid: u32,
}

/// Checks that every line is the caller's own id (`own`: its uid or gid) or inside a range the
/// file grants it.
pub(crate) fn check_granted(
    kind: &'static str,
    lines: &[Line],
    own: u32,
    caller: &Caller<'_>,
    file_text: &str,
) -> Result<(), Error> {
    let user = caller.name;
    let ranges = granted(file_text, user, caller.uid);
    for l in lines {
        let (start, end) = (
            u64::from(l.outside),
            u64::from(l.outside) + u64::from(l.size),
        );
        let own_id = l.size == 1 && l.outside == own;
        let covered = ranges.iter().any(|&(s, n)| s <= start && end <= s + n);
        if !own_id && !covered {
            return Err(Error::NoSubordinateIds {
                kind,
                range: format!("{}+{}", l.outside, l.size),
                user: user.to_string(),
                file: file(kind),
            });
        }
    }
    Ok(())
}

/// Runs newuidmap/newgidmap for `pid` with `lines`; their stderr's last line goes in the error.
pub(crate) fn run(kind: &'static str, pid: i32, lines: &[Line]) -> Result<(), Error> {
    let program = program(kind);
    let mut cmd = Command::new(program);
    cmd.arg(pid.to_string());
    for l in lines {
        cmd.args([
            l.inside.to_string(),
            l.outside.to_string(),
            l.size.to_string(),
        ]);
    }
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|source| Error::SpawnNewIdMap { program, source })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default().trim();
    Err(Error::NewIdMap {
        program,
        pid,
        status: format!("{}: {last}", out.status),
    })
}

/// The name of user `uid` in /etc/passwd (no NSS: a static hako reads the file), or the number:
/// how subuid(5) and subgid(5) name the caller.
pub fn user_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                (f.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_string())
            })
        })
        .unwrap_or_else(|| uid.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(inside: u32, outside: u32, size: u32) -> Line {
        Line {
            inside,
            outside,
            size,
        }
    }

    #[test]
    fn only_the_own_single_id_is_written_directly() {
        assert!(writable_directly(&[l(0, 1000, 1)], 1000));
        assert!(!writable_directly(&[l(0, 1000, 2)], 1000));
        assert!(!writable_directly(&[l(0, 1001, 1)], 1000));
        assert!(!writable_directly(&[l(0, 1000, 1), l(1, 100000, 10)], 1000));
    }

    #[test]
    fn granted_ranges_by_name_or_uid() {
        let text = "alice:100000:65536\n1000:300000:10\nbob:200000:65536\n";
        let lines = [l(0, 1000, 1), l(1, 100000, 65536), l(65537, 300000, 10)];
        let alice = Caller {
            name: "alice",
            uid: 1000,
        };
        assert!(check_granted("uid", &lines, 1000, &alice, text).is_ok());
        let e = check_granted("uid", &[l(1, 200000, 2)], 1000, &alice, text).expect_err("refused");
        assert_eq!(
            e.to_string(),
            "uid mapping 200000+2: not granted to user alice in /etc/subuid"
        );
        // The gid file matches the uid too, not the gid.
        assert!(check_granted("gid", &[l(1, 300000, 10)], 50, &alice, text).is_ok());
        let e =
            check_granted("gid", &[l(1, 100000, 65537)], 50, &alice, text).expect_err("refused");
        assert!(e.to_string().contains("100000+65537"), "{e}");
        assert!(e.to_string().contains("/etc/subgid"), "{e}");
    }
}
