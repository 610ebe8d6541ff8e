//! Parsing of OCI mount options into mount(2) flags, propagation changes,
//! recursive mount attributes and the filesystem data string.
//!
//! The option table is runc's (libcontainer/specconv `parseMountOptions`):
//! flags that set or clear an `MS_*` bit, propagation options applied with
//! separate mount(2) calls after the mount (mount(2): propagation flags
//! cannot be combined with others), and the recursive `r*` attributes
//! ("rro", "rnosuid", ...) which only mount_setattr(2) (Linux 5.12) can apply
//! to a whole tree. Anything unknown goes to the data string, as with
//! mount(8). `idmap`/`ridmap` (runtime-spec 1.2 config.md "Mounts": ID-mapped
//! mounts, recursive for `ridmap`) are recorded for the rootfs plan; runc's
//! `tmpcopyup` extension is refused as unsupported.

use nix::mount::MsFlags;

use crate::Error;

/// `MS_NOSYMFOLLOW` (Linux 5.10) is missing from nix's `MsFlags`.
const MS_NOSYMFOLLOW: MsFlags = MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW);

/// Parsed mount options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MountOptions {
    /// mount(2) flags (including MS_BIND/MS_REC for bind and rbind).
    pub(crate) flags: MsFlags,
    /// Propagation changes, in order.
    pub(crate) propagation: Vec<MsFlags>,
    /// mount_setattr attr_set for recursive options.
    pub(crate) rec_set: u64,
    /// mount_setattr attr_clr for recursive options.
    pub(crate) rec_clr: u64,
    /// Comma-joined filesystem data.
    pub(crate) data: String,
    /// `idmap` / `ridmap`, the last one given wins (runc).
    pub(crate) idmap: Option<Idmap>,
}

/// An ID-mapping mount option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Idmap {
    /// `idmap`: only the top mount is id-mapped (mount_setattr without AT_RECURSIVE).
    Top,
    /// `ridmap`: the mount and all its submounts are id-mapped.
    Recursive,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            propagation: Vec::new(),
            rec_set: 0,
            rec_clr: 0,
            data: String::new(),
            idmap: None,
        }
    }
}

fn flag(opt: &str) -> Option<(bool, MsFlags)> {
    use MsFlags as F;
    Some(match opt {
        "acl" => (false, F::MS_POSIXACL),
        "async" => (true, F::MS_SYNCHRONOUS),
        "atime" => (true, F::MS_NOATIME),
        "bind" => (false, F::MS_BIND),
        "defaults" => (false, F::empty()),
        "dev" => (true, F::MS_NODEV),
        "diratime" => (true, F::MS_NODIRATIME),
        "dirsync" => (false, F::MS_DIRSYNC),
        "exec" => (true, F::MS_NOEXEC),
        "iversion" => (false, F::MS_I_VERSION),
        "lazytime" => (false, F::MS_LAZYTIME),
        "loud" => (true, F::MS_SILENT),
        "mand" => (false, F::MS_MANDLOCK),
        "noacl" => (true, F::MS_POSIXACL),
        "noatime" => (false, F::MS_NOATIME),
        "nodev" => (false, F::MS_NODEV),
        "nodiratime" => (false, F::MS_NODIRATIME),
        "noexec" => (false, F::MS_NOEXEC),
        "noiversion" => (true, F::MS_I_VERSION),
        "nolazytime" => (true, F::MS_LAZYTIME),
        "nomand" => (true, F::MS_MANDLOCK),
        "norelatime" => (true, F::MS_RELATIME),
        "nostrictatime" => (true, F::MS_STRICTATIME),
        "nosuid" => (false, F::MS_NOSUID),
        "nosymfollow" => (false, MS_NOSYMFOLLOW),
        "rbind" => (false, F::MS_BIND.union(F::MS_REC)),
        "relatime" => (false, F::MS_RELATIME),
        "remount" => (false, F::MS_REMOUNT),
        "ro" => (false, F::MS_RDONLY),
        "rw" => (true, F::MS_RDONLY),
        "silent" => (false, F::MS_SILENT),
        "strictatime" => (false, F::MS_STRICTATIME),
        "suid" => (true, F::MS_NOSUID),
        "sync" => (false, F::MS_SYNCHRONOUS),
        "symfollow" => (true, MS_NOSYMFOLLOW),
        _ => return None,
    })
}

/// Parses a propagation option (also used for `linux.rootfsPropagation`).
pub(crate) fn propagation(opt: &str) -> Option<MsFlags> {
    use MsFlags as F;
    Some(match opt {
        "private" => F::MS_PRIVATE,
        "rprivate" => F::MS_PRIVATE | F::MS_REC,
        "shared" => F::MS_SHARED,
        "rshared" => F::MS_SHARED | F::MS_REC,
        "slave" => F::MS_SLAVE,
        "rslave" => F::MS_SLAVE | F::MS_REC,
        "unbindable" => F::MS_UNBINDABLE,
        "runbindable" => F::MS_UNBINDABLE | F::MS_REC,
        _ => return None,
    })
}

/// Recursive attribute: (clear?, MOUNT_ATTR_* bit). Atime values are a
/// 3-valued field and handled by [`atime`].
fn rec_attr(opt: &str) -> Option<(bool, u64)> {
    Some(match opt {
        "rro" => (false, libc::MOUNT_ATTR_RDONLY),
        "rrw" => (true, libc::MOUNT_ATTR_RDONLY),
        "rnosuid" => (false, libc::MOUNT_ATTR_NOSUID),
        "rsuid" => (true, libc::MOUNT_ATTR_NOSUID),
        "rnodev" => (false, libc::MOUNT_ATTR_NODEV),
        "rdev" => (true, libc::MOUNT_ATTR_NODEV),
        "rnoexec" => (false, libc::MOUNT_ATTR_NOEXEC),
        "rexec" => (true, libc::MOUNT_ATTR_NOEXEC),
        "rnodiratime" => (false, libc::MOUNT_ATTR_NODIRATIME),
        "rdiratime" => (true, libc::MOUNT_ATTR_NODIRATIME),
        "rnosymfollow" => (false, libc::MOUNT_ATTR_NOSYMFOLLOW),
        "rsymfollow" => (true, libc::MOUNT_ATTR_NOSYMFOLLOW),
        _ => return None,
    })
}

/// Recursive atime options: the value of the MOUNT_ATTR__ATIME field.
/// `rnorelatime` / `ratime` / `rnostrictatime` return to the default
/// (relatime), as clearing a bit of a 3-valued field means.
fn atime(opt: &str) -> Option<u64> {
    Some(match opt {
        "rrelatime" | "rnorelatime" | "ratime" | "rnostrictatime" => libc::MOUNT_ATTR_RELATIME,
        "rnoatime" => libc::MOUNT_ATTR_NOATIME,
        "rstrictatime" => libc::MOUNT_ATTR_STRICTATIME,
        _ => return None,
    })
}

/// Parses OCI mount options.
pub(crate) fn parse(options: &[String]) -> Result<MountOptions, Error> {
    let mut out = MountOptions::default();
    let mut data: Vec<&str> = Vec::new();
    for opt in options {
        let o = opt.as_str();
        if let Some((clear, f)) = flag(o) {
            if clear {
                out.flags.remove(f);
            } else {
                out.flags.insert(f);
            }
        } else if let Some(p) = propagation(o) {
            out.propagation.push(p);
        } else if let Some((clear, bit)) = rec_attr(o) {
            if clear {
                out.rec_clr |= bit;
                out.rec_set &= !bit;
            } else {
                out.rec_set |= bit;
                out.rec_clr &= !bit;
            }
        } else if let Some(value) = atime(o) {
            out.rec_clr |= libc::MOUNT_ATTR__ATIME;
            out.rec_set = (out.rec_set & !libc::MOUNT_ATTR__ATIME) | value;
        } else if o == "idmap" {
            out.idmap = Some(Idmap::Top);
        } else if o == "ridmap" {
            out.idmap = Some(Idmap::Recursive);
        } else if o == "tmpcopyup" {
            return Err(Error::unsupported("mount option \"tmpcopyup\""));
        } else if !o.is_empty() {
            data.push(o);
        }
    }
    out.data = data.join(",");
    Ok(out)
}

impl MountOptions {
    /// True for bind and rbind.
    pub(crate) fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }

    /// True if mount_setattr must run after the mount.
    pub(crate) fn has_rec_attrs(&self) -> bool {
        self.rec_set != 0 || self.rec_clr != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(opts: &[&str]) -> MountOptions {
        parse(&opts.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn flags_set_and_clear_in_order() {
        let o = p(&["nosuid", "noexec", "nodev", "ro"]);
        assert_eq!(
            o.flags,
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV | MsFlags::MS_RDONLY
        );
        let o = p(&["ro", "rw", "suid", "nosuid", "exec"]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID);
        let o = p(&[
            "noatime",
            "atime",
            "strictatime",
            "relatime",
            "norelatime",
            "dirsync",
            "sync",
            "async",
        ]);
        assert_eq!(o.flags, MsFlags::MS_STRICTATIME | MsFlags::MS_DIRSYNC);
        let o = p(&["mand", "nodiratime", "remount", "defaults"]);
        assert_eq!(
            o.flags,
            MsFlags::MS_MANDLOCK | MsFlags::MS_NODIRATIME | MsFlags::MS_REMOUNT
        );
        assert_eq!(p(&["mand", "nomand", "diratime"]).flags, MsFlags::empty());
        assert_eq!(p(&["nosymfollow"]).flags, MS_NOSYMFOLLOW);
    }

    #[test]
    fn bind_and_rbind() {
        let o = p(&["bind"]);
        assert!(o.is_bind());
        assert!(!o.flags.contains(MsFlags::MS_REC));
        let o = p(&["rbind", "ro"]);
        assert_eq!(
            o.flags,
            MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY
        );
    }

    #[test]
    fn propagation_is_separate() {
        let o = p(&["rbind", "rprivate", "slave", "shared", "runbindable"]);
        assert_eq!(o.flags, MsFlags::MS_BIND | MsFlags::MS_REC);
        assert_eq!(
            o.propagation,
            vec![
                MsFlags::MS_PRIVATE | MsFlags::MS_REC,
                MsFlags::MS_SLAVE,
                MsFlags::MS_SHARED,
                MsFlags::MS_UNBINDABLE | MsFlags::MS_REC
            ]
        );
        assert_eq!(
            propagation("rshared"),
            Some(MsFlags::MS_SHARED | MsFlags::MS_REC)
        );
        assert_eq!(propagation("bogus"), None);
    }

    #[test]
    fn data_keeps_unknown_in_order() {
        let o = p(&[
            "nosuid",
            "mode=755",
            "size=65536k",
            "",
            "newinstance",
            "ptmxmode=0666",
        ]);
        assert_eq!(o.data, "mode=755,size=65536k,newinstance,ptmxmode=0666");
        assert_eq!(o.flags, MsFlags::MS_NOSUID);
    }

    #[test]
    fn recursive_attrs() {
        let o = p(&["rbind", "rro", "rnosuid", "rnoexec", "rexec"]);
        assert_eq!(o.rec_set, libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID);
        assert_eq!(o.rec_clr, libc::MOUNT_ATTR_NOEXEC);
        assert!(o.has_rec_attrs());
        let o = p(&["rnoatime"]);
        assert_eq!(o.rec_set, libc::MOUNT_ATTR_NOATIME);
        assert_eq!(o.rec_clr, libc::MOUNT_ATTR__ATIME);
        let o = p(&["rstrictatime", "rrelatime"]);
        assert_eq!(o.rec_set, 0);
        assert_eq!(o.rec_clr, libc::MOUNT_ATTR__ATIME);
        assert!(o.has_rec_attrs());
        assert!(!p(&["ro"]).has_rec_attrs());
    }

    #[test]
    fn unsupported_options() {
        assert!(matches!(
            parse(&["tmpcopyup".to_string()]),
            Err(Error::Unsupported { .. })
        ));
    }

    #[test]
    fn idmap_options() {
        assert_eq!(p(&["rbind"]).idmap, None);
        let o = p(&["rbind", "idmap", "ro"]);
        assert_eq!(o.idmap, Some(Idmap::Top));
        assert_eq!(o.data, "");
        assert_eq!(p(&["ridmap"]).idmap, Some(Idmap::Recursive));
        assert_eq!(p(&["ridmap", "idmap"]).idmap, Some(Idmap::Top));
        assert_eq!(p(&["idmap", "ridmap"]).idmap, Some(Idmap::Recursive));
    }
}
