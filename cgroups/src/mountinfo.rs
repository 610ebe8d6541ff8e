//! Finding the cgroup hierarchies from /proc/self/mountinfo (proc(5),
//! "/proc/pid/mountinfo"). Field 4 is the mount root, field 5 the mount point,
//! and after the " - " separator come the filesystem type and the super
//! options, which for cgroup v1 name the controllers bound to that hierarchy
//! (cgroups(7), "Cgroups version 1 controllers").

use std::path::PathBuf;

use crate::Error;

/// cgroup filesystem version of one mount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FsVersion {
    /// `cgroup` (v1): one hierarchy per set of controllers.
    V1,
    /// `cgroup2`: the single unified hierarchy.
    V2,
}

/// One mounted cgroup hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CgroupMount {
    /// Where it is mounted (e.g. /sys/fs/cgroup/cpu).
    pub(crate) mount_point: PathBuf,
    /// Which cgroup of the hierarchy is the mount's root ("/" on a host).
    pub(crate) root: PathBuf,
    /// v1 or v2.
    pub(crate) version: FsVersion,
    /// v1 controllers and `name=` of the hierarchy, in super-option order; empty for v2.
    pub(crate) controllers: Vec<String>,
}

impl CgroupMount {
    /// The hierarchy key as /proc/self/cgroup spells it ("cpu,cpuacct",
    /// "name=systemd", "" for v2).
    pub(crate) fn key(&self) -> String {
        self.controllers.join(",")
    }
}

/// Super options of a v1 cgroup mount that are not controllers.
const NON_CONTROLLER_OPTIONS: &[&str] = &[
    "rw",
    "ro",
    "xattr",
    "noprefix",
    "none",
    "clone_children",
    "cpuset_v2_mode",
    "favordynmods",
];

/// Undo the octal escapes (`\040` for space etc.) the kernel uses in mountinfo paths.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if let Some(oct) = bytes.get(i + 1..i + 4) {
                if oct.iter().all(|b| (b'0'..=b'7').contains(b)) {
                    let v = oct
                        .iter()
                        .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                    if let Ok(v) = u8::try_from(v) {
                        out.push(v);
                        i += 4;
                        continue;
                    }
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse mountinfo text into its cgroup mounts, keeping the first mount of each
/// hierarchy (a hierarchy bind-mounted twice shows up twice).
pub(crate) fn parse_mountinfo(text: &str) -> Result<Vec<CgroupMount>, Error> {
    let mut mounts: Vec<CgroupMount> = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let bad = || Error::Parse {
            file: "/proc/self/mountinfo",
            line: line.to_string(),
        };
        let (pre, post) = line.split_once(" - ").ok_or_else(bad)?;
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 6 || post.len() < 3 {
            return Err(bad());
        }
        let version = match post[0] {
            "cgroup" => FsVersion::V1,
            "cgroup2" => FsVersion::V2,
            _ => continue,
        };
        let controllers = match version {
            FsVersion::V2 => Vec::new(),
            FsVersion::V1 => post[2]
                .split(',')
                .filter(|o| !NON_CONTROLLER_OPTIONS.contains(o) && !o.starts_with("release_agent="))
                .map(str::to_string)
                .collect(),
        };
        let mount = CgroupMount {
            mount_point: PathBuf::from(unescape(pre[4])),
            root: PathBuf::from(unescape(pre[3])),
            version,
            controllers,
        };
        let duplicate = mounts
            .iter()
            .any(|m| m.version == mount.version && m.controllers == mount.controllers);
        if !duplicate {
            mounts.push(mount);
        }
    }
    Ok(mounts)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset,clone_children
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,release_agent=/x,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
99 23 0:29 /docker /mnt/my\\040cg rw - cgroup cgroup rw,cpu,cpuacct
";

    #[test]
    fn parses_v1_and_v2_mounts() {
        let m = parse_mountinfo(HYBRID).unwrap();
        assert_eq!(m.len(), 4, "{m:?}");
        assert_eq!(
            m[0].mount_point,
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")
        );
        assert_eq!(m[0].controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(m[0].key(), "cpu,cpuacct");
        assert_eq!(m[1].controllers, vec!["cpuset"]);
        assert_eq!(m[2].controllers, vec!["name=systemd"]);
        assert_eq!(m[3].version, FsVersion::V2);
        assert_eq!(m[3].key(), "");
    }

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape("/mnt/my\\040cg"), "/mnt/my cg");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/end\\"), "/end\\");
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_mountinfo("nonsense without separator\n").is_err());
    }
}
