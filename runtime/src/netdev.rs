//! `linux.netDevices` (config-linux.md, "Network Devices", runtime-spec 1.3): host network
//! interfaces moved into the container's network namespace, renamed to `name` where given, with
//! their permanent global-scope addresses and set up.
//!
//! The parent does it after the clone and before releasing the init (so hooks and the process
//! already see the devices), with one netlink socket in the host's namespace and one in the
//! container's (see `rtnetlink.rs`): the kernel drops a link's addresses when it leaves a
//! namespace, so they are read before the move and added again after it, as runc 1.3 does.
//!
//! On `delete` hako does nothing to them: when the container's network namespace goes away, the
//! kernel destroys virtual devices and returns physical ones to the initial namespace
//! (network_namespaces(7)); a joined namespace keeps them, which is what its owner asked for.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use oci_spec::runtime::LinuxNamespaceType;

use crate::error::{Error, Result};
use crate::rtnetlink::Route;

const FIELD: &str = "linux.netDevices";

/// One device: its name on the host and its name in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NetDevice {
    host: String,
    name: String,
}

/// The validated list, sorted by host name (the JSON object has no order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NetDevices(Vec<NetDevice>);

/// The kernel's rule for interface names (net/core/dev.c `dev_valid_name`): 1 to 15 bytes, not
/// `.` or `..`, no `/`, `:` or white space.
fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() < libc::IFNAMSIZ
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0);
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidConfig {
            field: FIELD,
            reason: format!("{what} {name:?} is not a valid interface name"),
        })
    }
}

impl NetDevices {
    /// Validates the devices: valid and distinct names, a network namespace of the container's
    /// own to move them into (runc: "unable to move network devices without a NET namespace"),
    /// and each device present in the runtime's network namespace now.
    pub(crate) fn from_spec(
        linux: Option<&oci_spec::runtime::Linux>,
        namespaces: &hako_namespaces::Namespaces,
    ) -> Result<Self> {
        let Some(map) = linux.and_then(|l| l.net_devices().as_ref()) else {
            return Ok(NetDevices::default());
        };
        if map.is_empty() {
            return Ok(NetDevices::default());
        }
        if !namespaces.contains(LinuxNamespaceType::Network) {
            return Err(Error::InvalidConfig {
                field: FIELD,
                reason: "moving devices needs a network namespace for the container".into(),
            });
        }
        if namespaces.unshares_user_late() && namespaces.has_new(LinuxNamespaceType::Network) {
            // The network namespace only exists once the init unshares it after its joins.
            return Err(Error::Unsupported { field: FIELD });
        }
        let mut devices: Vec<NetDevice> = map
            .iter()
            .map(|(host, d)| NetDevice {
                host: host.clone(),
                name: d
                    .name()
                    .clone()
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| host.clone()),
            })
            .collect();
        devices.sort_by(|a, b| a.host.cmp(&b.host));
        for (i, d) in devices.iter().enumerate() {
            check_name("device", &d.host)?;
            check_name("name", &d.name)?;
            if let Some(other) = devices[..i].iter().find(|o| o.name == d.name) {
                return Err(Error::InvalidConfig {
                    field: FIELD,
                    reason: format!(
                        "{:?} and {:?} would both be named {:?} in the container",
                        other.host, d.host, d.name
                    ),
                });
            }
        }
        // Looked up last, so that a config error is reported as such on any host.
        for d in &devices {
            if crate::sys::if_nametoindex(d.host.as_str()).is_err() {
                return Err(Error::InvalidConfig {
                    field: FIELD,
                    reason: format!(
                        "no network device {:?} in the runtime's network namespace",
                        d.host
                    ),
                });
            }
        }
        Ok(NetDevices(devices))
    }

    /// Whether there is nothing to move.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Moves every device into `netns` (the container's network namespace), with its addresses,
    /// and sets it up there. Runs in the single-threaded parent: it enters `netns` for a moment
    /// (to open the second socket, to look names up) and returns to its own namespace each time.
    pub(crate) fn move_into(&self, netns: BorrowedFd<'_>) -> Result<()> {
        let err = |op: &'static str, d: &NetDevice| {
            let device = d.host.clone();
            move |source| Error::NetDevice { op, device, source }
        };
        // The kernel takes IFLA_IFNAME as the new name only when the link's own name is taken
        // there (net/core/dev.c __dev_change_net_namespace); otherwise it moves the link and
        // renames it afterwards, and a rename refused then leaves it moved. So a name taken in
        // the container's namespace is refused before anything moves (config-linux.md: "The
        // runtime MAY check that the name is unique before the rename operation").
        let (mut inside, taken) = in_netns(netns, || {
            let route = Route::open()?;
            let taken = self
                .0
                .iter()
                .find(|d| crate::sys::if_nametoindex(d.name.as_str()).is_ok());
            Ok((route, taken))
        })?;
        if let Some(d) = taken {
            return Err(err(
                "name taken in the container's network namespace for",
                d,
            )(nix::Error::EEXIST));
        }
        let mut host = Route::open().map_err(Error::sys("socket(NETLINK_ROUTE)"))?;
        let mut moved = Vec::new();
        for d in &self.0 {
            let index = crate::sys::if_nametoindex(d.host.as_str()).map_err(err("find", d))?;
            let index = index as i32;
            let addresses = host.addresses(index).map_err(err("list addresses of", d))?;
            host.move_link(index, netns, &d.name)
                .map_err(err("move into the container", d))?;
            moved.push((d, addresses));
        }
        let indexes = in_netns(netns, || {
            moved
                .iter()
                .map(|(d, _)| crate::sys::if_nametoindex(d.name.as_str()))
                .collect::<nix::Result<Vec<_>>>()
        })?;
        for ((d, addresses), index) in moved.iter().zip(indexes) {
            let index = index as i32;
            for a in addresses {
                inside
                    .add_address(index, a)
                    .map_err(err("add an address in the container to", d))?;
            }
            inside.set_up(index).map_err(err("set up", d))?;
        }
        Ok(())
    }
}

/// Runs `f` inside the network namespace `netns` and returns to the caller's own.
fn in_netns<T>(netns: BorrowedFd<'_>, f: impl FnOnce() -> nix::Result<T>) -> Result<T> {
    use nix::sched::{setns, CloneFlags};
    let own: OwnedFd = std::fs::File::open("/proc/thread-self/ns/net")
        .map_err(Error::io("open", "/proc/thread-self/ns/net"))?
        .into();
    setns(netns, CloneFlags::CLONE_NEWNET)
        .map_err(Error::sys("setns(container network namespace)"))?;
    let result = f();
    setns(own.as_fd(), CloneFlags::CLONE_NEWNET)
        .map_err(Error::sys("setns(back to the runtime's network namespace)"))?;
    result.map_err(Error::sys(
        "netlink socket in the container's network namespace",
    ))
}

/// The container's network namespace, to move devices into: the one joined by path, else the
/// new one of the init `pid`.
pub(crate) fn open_netns(namespaces: &hako_namespaces::Namespaces, pid: i32) -> Result<OwnedFd> {
    let path = match namespaces.path(LinuxNamespaceType::Network) {
        Some(p) => p.to_path_buf(),
        None => std::path::PathBuf::from(format!("/proc/{pid}/ns/net")),
    };
    Ok(std::fs::File::open(&path)
        .map_err(Error::io("open", path))?
        .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn devices(json: serde_json::Value, ns: serde_json::Value) -> Result<NetDevices> {
        let linux: oci_spec::runtime::Linux =
            serde_json::from_value(serde_json::json!({"netDevices": json, "namespaces": ns}))
                .expect("linux");
        let namespaces = hako_namespaces::Namespaces::from_spec(Some(&linux)).expect("ns");
        NetDevices::from_spec(Some(&linux), &namespaces)
    }

    #[test]
    fn names_are_checked_as_the_kernel_does() {
        let net = serde_json::json!([{"type": "network"}]);
        for bad in [
            serde_json::json!({"lo": {"name": "a/b"}}),
            serde_json::json!({"lo": {"name": "sixteen_chars_xx"}}),
            serde_json::json!({"lo": {"name": ".."}}),
            serde_json::json!({"lo": {"name": "a b"}}),
            serde_json::json!({"a:b": {}}),
        ] {
            let e = devices(bad.clone(), net.clone()).expect_err(&bad.to_string());
            assert!(
                e.to_string()
                    .starts_with("invalid config: linux.netDevices: "),
                "{e}"
            );
        }
    }

    #[test]
    fn a_network_namespace_and_distinct_names_are_required() {
        // `lo` exists in every namespace, so these reach the checks after the lookup.
        let e = devices(
            serde_json::json!({"lo": {}}),
            serde_json::json!([{"type": "pid"}]),
        )
        .expect_err("no netns");
        assert!(e.to_string().contains("needs a network namespace"), "{e}");
        let e = devices(
            serde_json::json!({"lo": {"name": "x0"}, "hako-no-such": {"name": "x0"}}),
            serde_json::json!([{"type": "network"}]),
        )
        .expect_err("clash");
        assert!(e.to_string().contains("would both be named \"x0\""), "{e}");
        let e = devices(
            serde_json::json!({"hako-no-such0": {}}),
            serde_json::json!([{"type": "network"}]),
        )
        .expect_err("missing");
        assert!(
            e.to_string()
                .contains("no network device \"hako-no-such0\""),
            "{e}"
        );
        let d = devices(
            serde_json::json!({"lo": {"name": ""}}),
            serde_json::json!([{"type": "network"}]),
        )
        .expect("empty name keeps the host's");
        assert_eq!(d.0[0].name, "lo");
    }
}
