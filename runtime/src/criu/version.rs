//! The CRIU version check `checkpoint` and `restore` make first, as runc does: a `VERSION`
//! request over `criu swrk` (CRIU 3.0 and newer answer it), and a refusal of anything older
//! than [`MINIMUM`]. runc's reason for that minimum is the request itself (libcontainer
//! `checkCriuVersion(30000)`: "We are relying on the CRIU version RPC which was introduced with
//! CRIU 3.0.0"); hako relies on it too, and on the notifications and `rst_sibling` of 3.x.

use std::path::Path;

use super::rpc::{self, CriuVersion, ReqType};
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
