//! `/proc/self/mountinfo` (proc(5)): the mount table as the container sees it.

/// One mount.
#[derive(Debug, Clone)]
pub struct Mount {
    /// Mount point, octal escapes undone.
    pub point: String,
    /// Per-mount options (`ro`, `nosuid`, `relatime`, ...).
    pub opts: Vec<String>,
    /// Filesystem type.
    pub fstype: String,
    /// Superblock options (`ro`, `sync`, `size=...`, `mode=...`).
    pub super_opts: Vec<String>,
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses mountinfo text.
pub fn parse(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let l: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            if l.len() < 6 || r.len() < 3 {
                return None;
            }
            Some(Mount {
                point: unescape(l[4]),
                opts: l[5].split(',').map(String::from).collect(),
                fstype: r[0].to_string(),
                super_opts: r[2].split(',').map(String::from).collect(),
            })
        })
        .collect()
}

/// The mount table of the calling process.
pub fn read() -> Vec<Mount> {
    parse(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
}

/// The topmost mount at `point` (the last one listed).
pub fn at<'a>(mounts: &'a [Mount], point: &str) -> Option<&'a Mount> {
    let point = point.trim_end_matches('/');
    let point = if point.is_empty() { "/" } else { point };
    mounts.iter().rev().find(|m| m.point == point)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_line() {
        let m = parse("36 35 98:0 /mnt1 /mnt\\040x rw,noatime master:1 - tmpfs none rw,size=1k\n");
        assert_eq!(m[0].point, "/mnt x");
        assert_eq!(m[0].opts, vec!["rw", "noatime"]);
        assert_eq!(m[0].fstype, "tmpfs");
        assert_eq!(m[0].super_opts, vec!["rw", "size=1k"]);
        assert!(at(&m, "/mnt x/").is_some());
    }
}
