//! Which cgroup layout the host uses, decided from the mounted cgroup
//! filesystems (as runc's `IsCgroup2UnifiedMode`/`IsCgroup2HybridMode`, but
//! from /proc/self/mountinfo so a test can feed its own text).

use crate::mountinfo::{parse_mountinfo, CgroupMount, FsVersion};
use crate::Error;

/// The host's cgroup layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Mode {
    /// Only v1 hierarchies.
    Legacy,
    /// v1 controllers plus a controller-less cgroup2 mount (systemd "hybrid").
    Hybrid,
    /// Only cgroup2.
    Unified,
}

/// Read /proc/self/mountinfo.
pub(crate) fn read_mounts() -> Result<Vec<CgroupMount>, Error> {
    let file = "/proc/self/mountinfo";
    let text = crate::files::read_whole(file.as_ref()).map_err(|source| Error::Read {
        path: file.into(),
        source,
    })?;
    parse_mountinfo(&text)
}

/// The mode the given mounts make up.
pub(crate) fn mode_of(mounts: &[CgroupMount]) -> Result<Mode, Error> {
    let v1 = mounts.iter().any(|m| m.version == FsVersion::V1);
    let v2 = mounts.iter().any(|m| m.version == FsVersion::V2);
    match (v1, v2) {
        (true, true) => Ok(Mode::Hybrid),
        (true, false) => Ok(Mode::Legacy),
        (false, true) => Ok(Mode::Unified),
        (false, false) => Err(Error::NoCgroupMounts),
    }
}

/// Detect the mode from /proc/self/mountinfo (cgroup vs cgroup2 mounts).
pub fn detect_mode() -> Result<Mode, Error> {
    mode_of(&read_mounts()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(text: &str) -> Result<Mode, Error> {
        mode_of(&parse_mountinfo(text)?)
    }

    #[test]
    fn detects_modes() {
        let v1 = "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";
        let v2 = "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        assert_eq!(mode(v1).unwrap(), Mode::Legacy);
        assert_eq!(mode(&format!("{v1}{v2}")).unwrap(), Mode::Hybrid);
        assert_eq!(mode(v2).unwrap(), Mode::Unified);
        assert!(matches!(
            mode("1 0 0:1 / / rw - ext4 /dev/sda rw\n"),
            Err(Error::NoCgroupMounts)
        ));
    }
}
