//! Parsing /proc/self/cgroup (cgroups(7), "/proc/pid/cgroup"): one line per
//! hierarchy, `hierarchy-ID:controller-list:cgroup-path`; the v2 line has an
//! empty controller list (`0::/path`).

use std::path::PathBuf;

use crate::Error;

/// One line of /proc/<pid>/cgroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Membership {
    /// Controller list ("cpu,cpuacct", "name=systemd", "" for v2).
    pub(crate) key: String,
    /// The process's cgroup in that hierarchy, relative to the hierarchy root.
    pub(crate) path: PathBuf,
}

/// Parse the text of /proc/<pid>/cgroup.
pub(crate) fn parse_proc_cgroup(text: &str) -> Result<Vec<Membership>, Error> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut parts = line.splitn(3, ':');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(id), Some(key), Some(path))
                    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    Ok(Membership {
                        key: key.to_string(),
                        path: PathBuf::from(path),
                    })
                }
                _ => Err(Error::Parse {
                    file: "/proc/self/cgroup",
                    line: line.to_string(),
                }),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hybrid() {
        let text = "9:name=systemd:/\n4:memory:/process_api/abc\n2:cpu,cpuacct:/x:y\n0::/\n";
        let m = parse_proc_cgroup(text).unwrap();
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].key, "name=systemd");
        assert_eq!(m[1].path, PathBuf::from("/process_api/abc"));
        assert_eq!(m[2].key, "cpu,cpuacct");
        assert_eq!(m[2].path, PathBuf::from("/x:y"));
        assert_eq!(m[3].key, "");
    }

    #[test]
    fn rejects_malformed() {
        assert!(parse_proc_cgroup("garbage\n").is_err());
        assert!(parse_proc_cgroup("x:cpu:/\n").is_err());
    }
}
