//! What `checkpoint` and `restore` ask CRIU before they use it: its version, and (for
//! `--lazy-pages` and `--pre-dump`) whether it has the feature on this kernel.
//!
//! The version check `checkpoint` and `restore` make first, as runc does: a `VERSION`
//! request over `criu swrk` (CRIU 3.0 and newer answer it), and a refusal of anything older
//! than [`MINIMUM`]. runc's reason for that minimum is the request itself (libcontainer
//! `checkCriuVersion(30000)`: "We are relying on the CRIU version RPC which was introduced with
//! CRIU 3.0.0"); hako relies on it too, and on the notifications and `rst_sibling` of 3.x.

use std::path::Path;

use super::rpc::{self, CriuVersion, Features, ReqType};
use super::swrk::Swrk;
use super::CriuError;
use crate::error::{Error, Result};

/// The oldest CRIU hako drives (runc's 30000).
pub const MINIMUM: CriuVersion = CriuVersion {
    major: 3,
    minor: 0,
    sublevel: None,
    gitid: None,
};

/// Asks `criu` for its version and refuses one older than [`MINIMUM`]. A CRIU that cannot be
/// started is reported as such ([`CriuError::Spawn`]); one that does not answer the request
/// (older than 3.0, or broken) is refused with what went wrong.
pub(crate) fn check(criu: &Path) -> Result<CriuVersion> {
    let mut swrk = Swrk::spawn(criu, &[], Path::new("(no log: version request)").into())?;
    let asked = swrk
        .call(
            ReqType::Version,
            &rpc::request(ReqType::Version, None),
            |_, _| Ok(()),
        )
        .and_then(|resp| {
            resp.version.ok_or(Error::Protocol {
                expected: "a version in CRIU's answer",
                got: "none",
            })
        });
    let version = match asked {
        Ok(v) => v,
        Err(e) => {
            return Err(CriuError::NoVersion {
                criu: criu.to_path_buf(),
                source: Box::new(e),
            }
            .into())
        }
    };
    swrk.finish(ReqType::Version, false)?;
    if version.number() < MINIMUM.number() {
        return Err(CriuError::TooOld {
            criu: criu.to_path_buf(),
            version: version.to_string(),
        }
        .into());
    }
    Ok(version)
}

/// Asks `criu` whether it has what `lazy_pages` and `mem_track` need on this kernel (runc's
/// `checkCriuFeatures` before a lazy or pre-dump checkpoint): lazy restore needs userfaultfd(2),
/// pre-dump the soft-dirty bit. A feature CRIU says it lacks is refused by name.
pub(crate) fn check_features(criu: &Path, lazy_pages: bool, mem_track: bool) -> Result<()> {
    let asked = Features {
        mem_track: mem_track.then_some(true),
        lazy_pages: lazy_pages.then_some(true),
    };
    let mut swrk = Swrk::spawn(criu, &[], Path::new("(no log: feature check)").into())?;
    let got = swrk
        .call(
            ReqType::FeatureCheck,
            &rpc::feature_request(asked),
            |_, _| Ok(()),
        )?
        .features
        .unwrap_or_default();
    swrk.finish(ReqType::FeatureCheck, false)?;
    let mut missing = Vec::new();
    if mem_track && got.mem_track != Some(true) {
        missing.push("MemTrack (--pre-dump: soft-dirty page tracking)");
    }
    if lazy_pages && got.lazy_pages != Some(true) {
        missing.push("LazyPages (--lazy-pages: userfaultfd)");
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(CriuError::MissingFeatures {
        criu: criu.to_path_buf(),
        features: missing.join(", "),
    }
    .into())
}
