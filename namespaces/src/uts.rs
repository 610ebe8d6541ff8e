//! Hostname and NIS domain name (uts_namespaces(7)).
//!
//! Whether setting them is allowed (only with a private UTS namespace, as
//! runc: "unable to set hostname without a private UTS namespace") is checked
//! when the spec is converted, by [`crate::Namespaces::check_uts`].

use crate::{sys, Error};

/// sethostname(2) in the current UTS namespace.
pub fn set_hostname(name: &str) -> Result<(), Error> {
    nix::unistd::sethostname(name).map_err(|source| Error::SetHostname {
        name: name.into(),
        source,
    })
}

/// setdomainname(2) in the current UTS namespace.
pub fn set_domainname(name: &str) -> Result<(), Error> {
    sys::setdomainname(name).map_err(|source| Error::SetDomainname {
        name: name.into(),
        source,
    })
}
