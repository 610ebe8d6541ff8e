//! `linux.sysctl`: namespaced kernel parameters, written after pivot_root
//! into the container's `/proc/sys`.
//!
//! Only sysctls that are isolated by a namespace the container owns are
//! accepted, as runc validates (libcontainer/configs/validate `sysctl`):
//! IPC ones (`kernel.msg*`, `kernel.sem`, `kernel.shm*`, `fs.mqueue.*`) need an
//! ipc namespace, `net.*` a network namespace that is not the runtime's, and
//! `kernel.hostname`/`kernel.domainname` a uts namespace. Anything else would
//! change the host kernel and is refused when the spec is converted.
//!
//! Writes go through `openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS)` below an
//! fd of `/proc/sys` that is checked to be procfs, so a bind mount or symlink
//! in the image cannot redirect them (CVE-2019-16884 class).

use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, ResolveFlag};
use nix::sys::stat::Mode;
use oci_spec::runtime::{Linux, LinuxNamespaceType};

use crate::ns::Namespaces;
use crate::{sys, Error};

/// Validated `linux.sysctl`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sysctls {
    /// (key, path relative to /proc/sys, value), sorted by key.
    entries: Vec<(String, PathBuf, String)>,
}

fn key_path(key: &str) -> Result<PathBuf, Error> {
    let invalid = || Error::InvalidSysctlKey { key: key.into() };
    let p = if key.contains('/') {
        PathBuf::from(key)
    } else {
        PathBuf::from(key.replace('.', "/"))
    };
    if key.is_empty() || key.contains('\0') {
        return Err(invalid());
    }
    if !p.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(invalid());
    }
    Ok(p)
}

/// Which namespace a sysctl key needs, or `None` if it is not namespaced.
fn needed_namespace(key: &str) -> Option<LinuxNamespaceType> {
    let k = key.replace('/', ".");
    if k.starts_with("kernel.msg")
        || k == "kernel.sem"
        || k.starts_with("kernel.shm")
        || k.starts_with("fs.mqueue.")
    {
        Some(LinuxNamespaceType::Ipc)
    } else if k.starts_with("net.") {
        Some(LinuxNamespaceType::Network)
    } else if k == "kernel.hostname" || k == "kernel.domainname" {
        Some(LinuxNamespaceType::Uts)
    } else {
        None
    }
}

/// True if `path` is our own network namespace.
fn is_our_netns(path: &Path) -> Result<bool, Error> {
    let stat = |p: &Path| {
        nix::sys::stat::stat(p).map_err(|source| Error::StatNamespace {
            path: p.to_path_buf(),
            source,
        })
    };
    let a = stat(path)?;
    let b = stat(Path::new("/proc/self/ns/net"))?;
    Ok((a.st_dev, a.st_ino) == (b.st_dev, b.st_ino))
}

impl Sysctls {
    /// Validates `linux.sysctl` against the namespaces: each key needs the namespace it
    /// belongs to. Without a mount namespace of the container's own they are still written
    /// through the container's /proc/sys, mounted in the caller's namespace (runc 1.1.5 and
    /// crun 1.8.1 do the same: measured).
    pub fn from_spec(linux: Option<&Linux>, ns: &Namespaces) -> Result<Self, Error> {
        let Some(map) = linux.and_then(|l| l.sysctl().as_ref()) else {
            return Ok(Sysctls::default());
        };
        let mut entries = Vec::with_capacity(map.len());
        for (key, value) in map {
            let path = key_path(key)?;
            let Some(t) = needed_namespace(key) else {
                return Err(Error::SysctlNotNamespaced { key: key.clone() });
            };
            let host = || Error::SysctlHostNamespace {
                key: key.clone(),
                ns: match t {
                    LinuxNamespaceType::Ipc => "ipc",
                    LinuxNamespaceType::Network => "net",
                    _ => "uts",
                },
            };
            if !ns.contains(t) {
                return Err(host());
            }
            if t == LinuxNamespaceType::Network {
                if let Some(p) = ns.path(t) {
                    if is_our_netns(p)? {
                        return Err(host());
                    }
                }
            }
            entries.push((key.clone(), path, value.clone()));
        }
        entries.sort();
        Ok(Sysctls { entries })
    }

    /// True if there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes every sysctl under the current `/proc/sys` (call after pivot).
    pub fn apply(&self) -> Result<(), Error> {
        if self.entries.is_empty() {
            return Ok(());
        }
        let proc_sys = Path::new("/proc/sys");
        let dir = sys::open(proc_sys, OFlag::O_DIRECTORY | OFlag::O_RDONLY).map_err(|source| {
            Error::Open {
                path: proc_sys.into(),
                source,
            }
        })?;
        let fs = nix::sys::statfs::fstatfs(dir.as_fd()).map_err(|source| Error::Stat {
            path: proc_sys.into(),
            source,
        })?;
        if fs.filesystem_type() != nix::sys::statfs::PROC_SUPER_MAGIC {
            return Err(Error::Open {
                path: proc_sys.into(),
                source: Errno::EXDEV,
            });
        }
        for (key, path, value) in &self.entries {
            let err = |source| Error::WriteSysctl {
                key: key.clone(),
                value: value.clone(),
                source,
            };
            let fd = sys::openat2(
                dir.as_fd(),
                path,
                OFlag::O_WRONLY,
                Mode::empty(),
                ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS,
            )
            .map_err(err)?;
            std::fs::File::from(fd)
                .write_all(value.as_bytes())
                .map_err(|e| err(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxBuilder, LinuxNamespaceBuilder};
    use std::collections::HashMap;

    fn spec(ns: &[(LinuxNamespaceType, Option<&str>)], keys: &[&str]) -> (Linux, Namespaces) {
        let list: Vec<_> = ns
            .iter()
            .map(|(t, p)| {
                let b = LinuxNamespaceBuilder::default().typ(*t);
                match p {
                    Some(p) => b.path(*p).build().unwrap(),
                    None => b.build().unwrap(),
                }
            })
            .collect();
        let map: HashMap<String, String> =
            keys.iter().map(|k| (k.to_string(), "1".into())).collect();
        let l = LinuxBuilder::default()
            .namespaces(list)
            .sysctl(map)
            .build()
            .unwrap();
        let n = Namespaces::from_spec(Some(&l)).unwrap();
        (l, n)
    }

    /// `ns` plus a new mount namespace.
    fn check(ns: &[(LinuxNamespaceType, Option<&str>)], keys: &[&str]) -> Result<Sysctls, Error> {
        let mut ns = ns.to_vec();
        ns.push((LinuxNamespaceType::Mount, None));
        let (l, n) = spec(&ns, keys);
        Sysctls::from_spec(Some(&l), &n)
    }

    /// Without a mount namespace of the container's own, inherited or joined, they are written
    /// through the /proc the container mounts in the caller's namespace (runc and crun too).
    #[test]
    fn no_new_mount_namespace_needed() {
        use LinuxNamespaceType::*;
        for mount in [None, Some((Mount, Some("/proc/self/ns/mnt")))] {
            let ns: Vec<_> = [(Ipc, None)].into_iter().chain(mount).collect();
            let (l, n) = spec(&ns, &["kernel.shmmax"]);
            assert!(!Sysctls::from_spec(Some(&l), &n).unwrap().is_empty());
        }
    }

    #[test]
    fn ipc_keys_need_ipc_ns() {
        use LinuxNamespaceType::*;
        let keys = [
            "kernel.msgmax",
            "kernel.sem",
            "kernel.shmmax",
            "fs.mqueue.msg_max",
        ];
        assert!(check(&[(Ipc, None)], &keys).is_ok());
        for k in keys {
            assert!(matches!(
                check(&[(Network, None)], &[k]),
                Err(Error::SysctlHostNamespace { ns: "ipc", .. })
            ));
        }
    }

    #[test]
    fn net_keys_need_private_net_ns() {
        use LinuxNamespaceType::*;
        assert!(check(&[(Network, None)], &["net.ipv4.ip_forward"]).is_ok());
        assert!(matches!(
            check(&[], &["net.ipv4.ip_forward"]),
            Err(Error::SysctlHostNamespace { ns: "net", .. })
        ));
        // Joining our own net namespace is the host's.
        assert!(matches!(
            check(
                &[(Network, Some("/proc/self/ns/net"))],
                &["net.ipv4.ip_forward"]
            ),
            Err(Error::SysctlHostNamespace { ns: "net", .. })
        ));
    }

    #[test]
    fn uts_and_others() {
        use LinuxNamespaceType::*;
        assert!(check(&[(Uts, None)], &["kernel.domainname", "kernel.hostname"]).is_ok());
        assert!(matches!(
            check(&[], &["kernel.domainname"]),
            Err(Error::SysctlHostNamespace { ns: "uts", .. })
        ));
        assert!(matches!(
            check(
                &[(Ipc, None), (Uts, None), (Network, None)],
                &["kernel.panic"]
            ),
            Err(Error::SysctlNotNamespaced { .. })
        ));
        assert!(matches!(
            check(
                &[(Ipc, None), (Uts, None), (Network, None)],
                &["vm.swappiness"]
            ),
            Err(Error::SysctlNotNamespaced { .. })
        ));
    }

    #[test]
    fn keys_to_paths() {
        assert_eq!(
            key_path("net.ipv4.ip_forward").unwrap(),
            PathBuf::from("net/ipv4/ip_forward")
        );
        // A slash form keeps dots (interface names like eth0.100).
        assert_eq!(
            key_path("net/ipv4/conf/eth0.100/forwarding").unwrap(),
            PathBuf::from("net/ipv4/conf/eth0.100/forwarding")
        );
        assert!(key_path("net/../../etc/passwd").is_err());
        assert!(key_path("/net/x").is_err());
        assert!(key_path("").is_err());
        assert!(matches!(
            check(
                &[(LinuxNamespaceType::Network, None)],
                &["net/../kernel/panic"]
            ),
            Err(Error::InvalidSysctlKey { .. })
        ));
    }
}
