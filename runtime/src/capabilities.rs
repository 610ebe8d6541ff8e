//! Capability sets (capabilities(7)) from `process.capabilities`.
//!
//! Names are validated when the config is parsed (oci-spec refuses an unknown `CAP_` name, so a
//! typo is an error, not a silently missing capability). A capability the running kernel does not
//! know (newer than it) is left out, as runc does. The bounding set is reduced first (it needs
//! CAP_SETPCAP, which the effective set may be about to lose), then the other four sets are set.

use caps::{Capability, CapsHashSet};
use oci_spec::runtime::{Capabilities, LinuxCapabilities};

use crate::error::{Error, Result};
use crate::sys;

/// The five sets, as names (resolved against the kernel when applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CapabilitySets {
    bounding: Vec<String>,
    effective: Vec<String>,
    permitted: Vec<String>,
    inheritable: Vec<String>,
    ambient: Vec<String>,
    /// The highest capability number the running kernel knows, read once in the parent.
    last_cap: u8,
}

fn names(set: &Option<Capabilities>) -> Vec<String> {
    let mut v: Vec<String> = set
        .iter()
        .flatten()
        .filter_map(|c| serde_json::to_value(c).ok())
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    v.sort();
    v
}

impl Default for CapabilitySets {
    /// Every set empty (what `exec --cap` adds to when the config has no capabilities).
    fn default() -> Self {
        CapabilitySets {
            bounding: Vec::new(),
            effective: Vec::new(),
            permitted: Vec::new(),
            inheritable: Vec::new(),
            ambient: Vec::new(),
            last_cap: last_cap(),
        }
    }
}

impl CapabilitySets {
    pub(crate) fn from_spec(c: &LinuxCapabilities) -> Self {
        CapabilitySets {
            bounding: names(c.bounding()),
            effective: names(c.effective()),
            permitted: names(c.permitted()),
            inheritable: names(c.inheritable()),
            ambient: names(c.ambient()),
            last_cap: last_cap(),
        }
    }

    /// Adds capabilities to every set but ambient (`exec --cap`).
    pub(crate) fn add(&mut self, name: &str) {
        for set in [
            &mut self.bounding,
            &mut self.effective,
            &mut self.permitted,
            &mut self.inheritable,
        ] {
            if !set.iter().any(|n| n == name) {
                set.push(name.to_string());
            }
        }
    }

    /// The capabilities the running kernel knows.
    fn kernel_capabilities(&self) -> CapsHashSet {
        caps::all()
            .into_iter()
            .filter(|c| c.index() <= self.last_cap)
            .collect()
    }

    fn resolve(names: &[String], supported: &CapsHashSet) -> CapsHashSet {
        names
            .iter()
            .filter_map(|n| n.parse::<Capability>().ok())
            .filter(|c| supported.contains(c))
            .collect()
    }

    /// Reduces the bounding set; must run while CAP_SETPCAP is still effective, i.e. before the
    /// uid changes (setuid(2) to a non-zero uid clears the effective set).
    pub(crate) fn apply_bounding(&self) -> Result<()> {
        let supported = self.kernel_capabilities();
        let bounding = Self::resolve(&self.bounding, &supported);
        for cap in supported.difference(&bounding) {
            // One prctl per capability dropped; dropping one already gone is not an error.
            sys::capbset_drop(cap.index()).map_err(Error::sys("prctl(PR_CAPBSET_DROP)"))?;
        }
        Ok(())
    }

    /// Empties the ambient set: one PR_CAP_AMBIENT_CLEAR_ALL, not the caps crate's read and
    /// lower per capability (80 prctls on the default path). Gives up nothing the other sets
    /// hold, so it runs before the seccomp filter, with the bounding set.
    pub(crate) fn clear_ambient(&self) -> Result<()> {
        sys::ambient_clear_all().map_err(Error::sys("prctl(PR_CAP_AMBIENT_CLEAR_ALL)"))
    }

    /// Sets effective, permitted, inheritable and ambient (after [`Self::clear_ambient`]) for
    /// the calling thread (the only one:
    /// the child is single-threaded), after the uid change.
    pub(crate) fn apply(&self) -> Result<()> {
        let supported = self.kernel_capabilities();
        // Effective, permitted and inheritable change in one capset(2): set one by one, an
        // intermediate state (say effective not within the new permitted) would be refused.
        let mask = |names: &[String]| -> u64 {
            Self::resolve(names, &supported)
                .iter()
                .fold(0u64, |m, c| m | (1u64 << c.index()))
        };
        capset(
            mask(&self.effective),
            mask(&self.permitted),
            mask(&self.inheritable),
        )?;
        // The kernel raises an ambient capability only if it is both permitted and inheritable
        // (capabilities(7)); runc's own default spec lists ambient ones without inheritable, and
        // runc skips those, so hako does too.
        let permitted = Self::resolve(&self.permitted, &supported);
        let inheritable = Self::resolve(&self.inheritable, &supported);
        let ambient: CapsHashSet = Self::resolve(&self.ambient, &supported)
            .into_iter()
            .filter(|c| permitted.contains(c) && inheritable.contains(c))
            .collect();
        // The set was cleared by `clear_ambient`; a raise per wanted capability.
        for cap in ambient {
            sys::ambient_raise(cap.index()).map_err(Error::sys("prctl(PR_CAP_AMBIENT_RAISE)"))?;
        }
        Ok(())
    }
}

/// The highest capability number the running kernel knows (`/proc/sys/kernel/cap_last_cap`:
/// one file read in the parent, where probing each capability with PR_CAPBSET_READ in the
/// child costs a prctl apiece); the probe is the fallback.
fn last_cap() -> u8 {
    crate::state::read_small("/proc/sys/kernel/cap_last_cap".as_ref())
        .ok()
        .and_then(|t| std::str::from_utf8(&t).ok()?.trim().parse().ok())
        .unwrap_or_else(|| {
            caps::runtime::thread_all_supported()
                .iter()
                .map(|c| c.index())
                .max()
                .unwrap_or(40)
        })
}

/// capset(2) of the calling thread with the three sets at once.
fn capset(effective: u64, permitted: u64, inheritable: u64) -> Result<()> {
    sys::capset(effective, permitted, inheritable).map_err(Error::sys("capset"))
}

/// Checks a capability name given on the command line (`exec --cap`).
pub(crate) fn validate_name(name: &str) -> Result<String> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    full.parse::<Capability>()
        .map(|_| full.clone())
        .map_err(|_| Error::InvalidConfig {
            field: "exec --cap",
            reason: format!("unknown capability {name:?}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_names_resolve() {
        let spec: LinuxCapabilities = serde_json::from_str(
            r#"{"bounding":["CAP_CHOWN","CAP_KILL"],"effective":["CAP_KILL"]}"#,
        )
        .expect("parse");
        let sets = CapabilitySets::from_spec(&spec);
        assert_eq!(sets.bounding, ["CAP_CHOWN", "CAP_KILL"]);
        let supported = caps::all();
        assert!(
            CapabilitySets::resolve(&sets.effective, &supported).contains(&Capability::CAP_KILL)
        );
    }

    #[test]
    fn unknown_capability_is_refused() {
        let r: std::result::Result<LinuxCapabilities, _> =
            serde_json::from_str(r#"{"bounding":["CAP_NOT_A_THING"]}"#);
        assert!(r.is_err());
        assert!(validate_name("NOT_A_THING").is_err());
        assert_eq!(validate_name("net_raw").expect("valid"), "CAP_NET_RAW");
    }
}
