//! Linux security module labels: `process.apparmorProfile`, `process.selinuxLabel` and
//! `linux.mountLabel` (runtime-spec config.md "Process", config-linux.md "Mount Label").
//!
//! **How they are applied** (as runc does, libcontainer/apparmor and go-selinux):
//! - AppArmor: the child writes `exec <profile>` to `/proc/thread-self/attr/apparmor/exec`
//!   (Linux 5.8, the per-LSM directory that LSM stacking needs), else to the shared
//!   `/proc/thread-self/attr/exec`; the kernel switches to the profile at the next execve(2)
//!   (libapparmor's `aa_change_onexec`, proc(5) "/proc/pid/attr").
//! - SELinux: the child writes the label to `/proc/thread-self/attr/exec` (setexeccon(3)); the
//!   same label goes to `attr/keycreate` around the session keyring's creation, so the keyring
//!   is labelled like the process. The mount label becomes `context="<label>"` in the data of
//!   every mount that takes it (mount(8) "context="); runc leaves it off proc, sysfs, mqueue
//!   (labelled with an xattr instead) and binds (the kernel ignores data on `MS_BIND`).
//!
//! **Why the writes are guarded.** The attr files are written by the container's init after
//! its mounts, so the `/proc` they are reached through is one the config built. A config that
//! mounts a volume over `/proc` (CVE-2019-16884) or a file over `attr/exec` would turn the write
//! into a silent no-op, the process then running unconfined; a mount redirecting it to another
//! procfs file (CVE-2025-52881) would send the label to that file. So the attr directory must be
//! on procfs (fstatfs(2), `PROC_SUPER_MAGIC`, runc's `EnsureProcHandle`), and each file is
//! opened below it with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV)`: no
//! symlink, no mount crossed.
//!
//! **When the LSM is not enabled** (this machine has neither), hako refuses the config at
//! `create`, naming the field; runc 1.1.5 fails the same configs, only later or less clearly
//! (each measured on this host):
//! - `process.selinuxLabel`: runc's validator refuses it ("selinux label is specified in config,
//!   but selinux is disabled or not supported"); hako uses the same phrase.
//! - `process.apparmorProfile`: runc 1.1.5 does not check `apparmor.IsEnabled()` and writes
//!   anyway; the container's init fails with `write /proc/self/attr/exec: invalid argument`.
//! - `linux.mountLabel`: runc appends `context="..."` regardless, and the kernel refuses the
//!   first tmpfs (`/dev`) with `EINVAL`. (runc would accept a config whose mounts are all
//!   proc/sysfs/mqueue/bind; hako refuses it too: the label could never take effect.)
//!
//! An empty string is the same as no field (runc: `if name == "" { return nil }`).
//!
//! Detection: AppArmor is enabled when `/sys/module/apparmor/parameters/enabled` starts with
//! `Y` (what runc, crun and youki read); SELinux when selinuxfs is mounted at `/sys/fs/selinux`
//! (its `enforce` file exists; go-selinux additionally checks the filesystem magic, which a
//! test tree cannot fake).

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use oci_spec::runtime::Spec;

/// Which LSMs the host has enabled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct HostLsm {
    apparmor: bool,
    selinux: bool,
}

impl HostLsm {
    /// Reads what is enabled under a sysfs tree (`/sys` on a real host, a temporary directory in
    /// tests). Missing or unreadable files mean "not enabled".
    pub(crate) fn detect(sysfs_root: &Path) -> HostLsm {
        let apparmor = std::fs::read(sysfs_root.join("module/apparmor/parameters/enabled"))
            .is_ok_and(|b| b.first() == Some(&b'Y'));
        let selinux = sysfs_root.join("fs/selinux/enforce").is_file();
        HostLsm { apparmor, selinux }
    }

    /// [`HostLsm::detect`] on this host's `/sys`.
    pub(crate) fn host() -> HostLsm {
        HostLsm::detect(Path::new("/sys"))
    }

    /// Whether AppArmor is enabled.
    pub(crate) fn apparmor(&self) -> bool {
        self.apparmor
    }

    /// Whether SELinux is enabled.
    pub(crate) fn selinux(&self) -> bool {
        self.selinux
    }
}

/// A failed LSM check or label write.
#[derive(Debug, thiserror::Error)]
pub enum LsmError {
    /// `process.apparmorProfile` is set on a host without AppArmor.
    #[error("apparmor profile {profile:?} is specified in config, but apparmor is not enabled on this host")]
    AppArmorDisabled {
        /// The profile asked for.
        profile: String,
    },
    /// `process.selinuxLabel` or `linux.mountLabel` is set on a host without SELinux.
    #[error(
        "selinux label is specified in config ({field}), but selinux is disabled or not supported"
    )]
    SelinuxDisabled {
        /// `process.selinuxLabel` or `linux.mountLabel`.
        field: &'static str,
        /// The label asked for.
        label: String,
    },
    /// A label or profile that cannot be written as one attribute or mount option.
    #[error("invalid {field} {value:?}: {reason}")]
    InvalidLabel {
        /// The config field.
        field: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Opening the attr directory or one of its files failed.
    #[error("open {path}")]
    OpenAttr {
        /// The path opened.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// The attr directory or file is not on procfs (a mount over /proc or over the file).
    #[error("{path} is not on procfs")]
    NotProcfs {
        /// The offending path.
        path: PathBuf,
    },
    /// Writing an attribute failed (the kernel refused the profile or label).
    #[error("write {value:?} to {path}")]
    WriteAttr {
        /// The attribute file.
        path: PathBuf,
        /// What was written.
        value: String,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// Both the AppArmor profile and the SELinux label would go to the shared `attr/exec`
    /// (no `attr/apparmor/` on this kernel): one would silently replace the other.
    #[error("apparmor profile and selinux label both need {path}")]
    ExecAttrConflict {
        /// The shared attribute file.
        path: PathBuf,
    },
}

/// The LSM labels of a container (or of one `exec`), validated against the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LsmConfig {
    apparmor_profile: Option<String>,
    selinux_label: Option<String>,
    mount_label: Option<String>,
}

/// Whether the attr files must be on procfs (always, except in unit tests with a fake tree).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FsCheck {
    Procfs,
    #[cfg(test)]
    Any,
}

impl LsmConfig {
    /// Validates the spec's labels against what `host` has enabled.
    pub(crate) fn from_spec(spec: &Spec, host: &HostLsm) -> Result<Self, LsmError> {
        let process = spec.process().as_ref();
        let mount_label = spec
            .linux()
            .as_ref()
            .and_then(|l| l.mount_label().as_deref());
        LsmConfig::validated(
            process.and_then(|p| p.apparmor_profile().as_deref()),
            process.and_then(|p| p.selinux_label().as_deref()),
            mount_label,
            host,
        )
    }

    /// The labels of an `exec`'d process: the container's, each replaced by the exec's own
    /// (`--apparmor`, `--process-label`, or the process JSON) when given, as runc does. No mount
    /// label: exec mounts nothing.
    pub(crate) fn for_exec(
        &self,
        apparmor_profile: Option<&str>,
        selinux_label: Option<&str>,
        host: &HostLsm,
    ) -> Result<Self, LsmError> {
        let pick = |given: Option<&str>, container: &Option<String>| -> Option<String> {
            given
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .or_else(|| container.clone())
        };
        let apparmor = pick(apparmor_profile, &self.apparmor_profile);
        let selinux = pick(selinux_label, &self.selinux_label);
        LsmConfig::validated(apparmor.as_deref(), selinux.as_deref(), None, host)
    }

    fn validated(
        apparmor_profile: Option<&str>,
        selinux_label: Option<&str>,
        mount_label: Option<&str>,
        host: &HostLsm,
    ) -> Result<Self, LsmError> {
        let apparmor_profile = non_empty(apparmor_profile);
        let selinux_label = non_empty(selinux_label);
        let mount_label = non_empty(mount_label);
        if let Some(p) = apparmor_profile {
            check_value("process.apparmorProfile", p, &[])?;
            if !host.apparmor {
                return Err(LsmError::AppArmorDisabled {
                    profile: p.to_owned(),
                });
            }
        }
        for (field, label, extra) in [
            ("process.selinuxLabel", selinux_label, &[][..]),
            // Quoted inside the mount data: a quote would end the option early.
            ("linux.mountLabel", mount_label, &['"'][..]),
        ] {
            let Some(label) = label else { continue };
            check_value(field, label, extra)?;
            if !host.selinux {
                return Err(LsmError::SelinuxDisabled {
                    field,
                    label: label.to_owned(),
                });
            }
        }
        Ok(LsmConfig {
            apparmor_profile: apparmor_profile.map(str::to_owned),
            selinux_label: selinux_label.map(str::to_owned),
            mount_label: mount_label.map(str::to_owned),
        })
    }

    /// Whether there is nothing to apply.
    pub(crate) fn is_empty(&self) -> bool {
        self == &LsmConfig::default()
    }

    /// In the child, after its mounts (so `attr_root`, normally `/proc/thread-self/attr`, is
    /// the container's own procfs) and before seccomp is loaded: writes the AppArmor exec
    /// profile and/or the SELinux exec label, which the kernel applies at the next execve.
    /// The files are world-writable (`0666`) but only for the calling thread, so the uid or
    /// capability switch may come before or after. Does nothing when no label is set.
    pub(crate) fn apply_exec_labels(&self, attr_root: &Path) -> Result<(), LsmError> {
        self.write_exec_labels(attr_root, FsCheck::Procfs)
    }

    /// SELinux only: labels the keys this thread creates next (the session keyring) with the
    /// process label (go-selinux `SetKeyLabel`, written to `attr/keycreate`). runc sets it
    /// just before joining the session keyring and clears it after: see
    /// [`LsmConfig::reset_keyring_label`].
    pub(crate) fn apply_keyring_label(&self, attr_root: &Path) -> Result<(), LsmError> {
        match &self.selinux_label {
            Some(label) => write_attr(attr_root, "keycreate", label, FsCheck::Procfs),
            None => Ok(()),
        }
    }

    /// Clears what [`LsmConfig::apply_keyring_label`] set (an empty write resets it).
    pub(crate) fn reset_keyring_label(&self, attr_root: &Path) -> Result<(), LsmError> {
        match &self.selinux_label {
            Some(_) => write_attr(attr_root, "keycreate", "", FsCheck::Procfs),
            None => Ok(()),
        }
    }

    /// The mount option for `linux.mountLabel` (`context="<label>"`), or `None`.
    pub(crate) fn mount_context(&self) -> Option<String> {
        self.mount_label
            .as_ref()
            .map(|l| format!("context=\"{l}\""))
    }

    /// The data to pass to mount(2) for a mount of `fstype` (`bind` for bind mounts) whose own
    /// data is `data`: with `,context="<label>"` appended where runc appends it (not on proc,
    /// sysfs, mqueue, cgroup or bind mounts).
    pub(crate) fn mount_data(&self, fstype: &str, data: &str) -> String {
        let labelled = !matches!(
            fstype,
            "proc" | "sysfs" | "mqueue" | "cgroup" | "cgroup2" | "bind"
        );
        match self.mount_context() {
            Some(ctx) if labelled && data.is_empty() => ctx,
            Some(ctx) if labelled => format!("{data},{ctx}"),
            _ => data.to_owned(),
        }
    }

    fn write_exec_labels(&self, attr_root: &Path, check: FsCheck) -> Result<(), LsmError> {
        if self.apparmor_profile.is_none() && self.selinux_label.is_none() {
            return Ok(());
        }
        let dir = open_attr_dir(attr_root, check)?;
        let mut shared_exec_used = false;
        if let Some(profile) = &self.apparmor_profile {
            let value = format!("exec {profile}");
            match open_attr_file(&dir, attr_root, "apparmor/exec", check) {
                Ok((file, path)) => write_whole(&file, &path, &value)?,
                Err(LsmError::OpenAttr { source, .. })
                    if source.raw_os_error() == Some(libc::ENOENT) =>
                {
                    // Kernels before 5.8 have only the shared attribute (runc's fallback).
                    let (file, path) = open_attr_file(&dir, attr_root, "exec", check)?;
                    write_whole(&file, &path, &value)?;
                    shared_exec_used = true;
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(label) = &self.selinux_label {
            if shared_exec_used {
                return Err(LsmError::ExecAttrConflict {
                    path: attr_root.join("exec"),
                });
            }
            let (file, path) = open_attr_file(&dir, attr_root, "exec", check)?;
            write_whole(&file, &path, label)?;
        }
        Ok(())
    }
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

/// Refuses characters that cannot survive the trip: NUL ends the kernel's string, a newline
/// ends the attribute, and `extra` (a quote, for mount data).
fn check_value(field: &'static str, value: &str, extra: &[char]) -> Result<(), LsmError> {
    let bad = |reason| LsmError::InvalidLabel {
        field,
        value: value.to_owned(),
        reason,
    };
    if value.contains('\0') {
        return Err(bad("contains a NUL byte"));
    }
    if value.contains('\n') {
        return Err(bad("contains a newline"));
    }
    if value.contains(extra) {
        return Err(bad("contains a double quote"));
    }
    Ok(())
}

/// Writes one attribute file below `attr_root` (see [`open_attr_file`]).
fn write_attr(attr_root: &Path, name: &str, value: &str, check: FsCheck) -> Result<(), LsmError> {
    let dir = open_attr_dir(attr_root, check)?;
    let (file, path) = open_attr_file(&dir, attr_root, name, check)?;
    write_whole(&file, &path, value)
}

fn open_attr_dir(attr_root: &Path, check: FsCheck) -> Result<File, LsmError> {
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(attr_root)
        .map_err(|source| LsmError::OpenAttr {
            path: attr_root.to_path_buf(),
            source,
        })?;
    ensure_fs(dir.as_fd(), attr_root, check)?;
    Ok(dir)
}

/// Opens `name` below the attr directory for writing: no symlink, no magic link, no mount
/// crossed, nothing above the directory (openat2(2)); the file itself must be on procfs too.
fn open_attr_file(
    dir: &File,
    attr_root: &Path,
    name: &str,
    check: FsCheck,
) -> Result<(File, PathBuf), LsmError> {
    let path = attr_root.join(name);
    let how = OpenHow::new()
        .flags(OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
        .mode(Mode::empty())
        .resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS
                | ResolveFlag::RESOLVE_NO_XDEV,
        );
    let raw = match nix::fcntl::openat2(std::os::fd::AsRawFd::as_raw_fd(dir), name, how) {
        // Before Linux 5.6: no openat2; O_NOFOLLOW still refuses a symlinked last component and
        // the fstatfs check below still refuses another filesystem.
        Err(Errno::ENOSYS) => nix::fcntl::openat(
            Some(std::os::fd::AsRawFd::as_raw_fd(dir)),
            name,
            OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
            Mode::empty(),
        ),
        other => other,
    }
    .map_err(|e| LsmError::OpenAttr {
        path: path.clone(),
        source: io::Error::from(e),
    })?;
    // SAFETY: `raw` was just returned by a successful openat2/openat in this process, so it is a
    // valid descriptor that nothing else owns; the OwnedFd becomes its only owner.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    ensure_fs(fd.as_fd(), &path, check)?;
    Ok((File::from(fd), path))
}

fn ensure_fs(fd: BorrowedFd<'_>, path: &Path, check: FsCheck) -> Result<(), LsmError> {
    match check {
        FsCheck::Procfs => {
            let fs = nix::sys::statfs::fstatfs(fd).map_err(|e| LsmError::OpenAttr {
                path: path.to_path_buf(),
                source: io::Error::from(e),
            })?;
            if fs.filesystem_type() != nix::sys::statfs::PROC_SUPER_MAGIC {
                return Err(LsmError::NotProcfs {
                    path: path.to_path_buf(),
                });
            }
            Ok(())
        }
        #[cfg(test)]
        FsCheck::Any => Ok(()),
    }
}

/// One write(2) of the whole value: the kernel takes an attribute per write, so a short write
/// is an error, not something to continue.
fn write_whole(file: &File, path: &Path, value: &str) -> Result<(), LsmError> {
    let err = |source| LsmError::WriteAttr {
        path: path.to_path_buf(),
        value: value.to_owned(),
        source,
    };
    let n = nix::unistd::write(file, value.as_bytes()).map_err(|e| err(io::Error::from(e)))?;
    if n != value.len() {
        return Err(err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("short write: {n} of {} bytes", value.len()),
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    const NONE: HostLsm = HostLsm {
        apparmor: false,
        selinux: false,
    };
    const BOTH: HostLsm = HostLsm {
        apparmor: true,
        selinux: true,
    };

    fn spec(process: serde_json::Value, linux: serde_json::Value) -> Spec {
        let mut p = serde_json::json!({"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0}});
        if let (Some(p), Some(extra)) = (p.as_object_mut(), process.as_object()) {
            p.extend(extra.clone());
        }
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": p,
            "linux": linux,
        }))
        .expect("valid spec")
    }

    fn fake_sysfs(apparmor: Option<&str>, selinux: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        if let Some(v) = apparmor {
            let p = dir.path().join("module/apparmor/parameters");
            std::fs::create_dir_all(&p).expect("mkdir");
            std::fs::write(p.join("enabled"), v).expect("write");
        }
        if selinux {
            let p = dir.path().join("fs/selinux");
            std::fs::create_dir_all(&p).expect("mkdir");
            std::fs::write(p.join("enforce"), "1").expect("write");
        }
        dir
    }

    /// A fake `/proc/thread-self/attr`: `exec`, `keycreate`, and `apparmor/exec` if asked.
    fn fake_attr(apparmor_dir: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("exec"), "").expect("write");
        std::fs::write(dir.path().join("keycreate"), "").expect("write");
        if apparmor_dir {
            std::fs::create_dir(dir.path().join("apparmor")).expect("mkdir");
            std::fs::write(dir.path().join("apparmor/exec"), "").expect("write");
        }
        dir
    }

    fn read(dir: &Path, name: &str) -> String {
        std::fs::read_to_string(dir.join(name)).expect("read")
    }

    #[test]
    fn detects_enabled_and_disabled_lsms() {
        let t = fake_sysfs(None, false);
        assert_eq!(HostLsm::detect(t.path()), NONE);
        let t = fake_sysfs(Some("Y\n"), false);
        let h = HostLsm::detect(t.path());
        assert!(h.apparmor() && !h.selinux());
        let t = fake_sysfs(Some("N\n"), true);
        let h = HostLsm::detect(t.path());
        assert!(!h.apparmor() && h.selinux());
        let t = fake_sysfs(Some(""), false);
        assert!(!HostLsm::detect(t.path()).apparmor());
    }

    #[test]
    fn apparmor_profile_without_apparmor_is_refused() {
        let s = spec(
            serde_json::json!({"apparmorProfile": "docker-default"}),
            serde_json::json!({}),
        );
        let e = LsmConfig::from_spec(&s, &NONE).expect_err("refused");
        assert!(
            matches!(e, LsmError::AppArmorDisabled { ref profile } if profile == "docker-default")
        );
        assert!(e.to_string().contains("apparmor is not enabled"), "{e}");
        // With SELinux only, AppArmor is still missing.
        let selinux_only = HostLsm {
            apparmor: false,
            selinux: true,
        };
        assert!(LsmConfig::from_spec(&s, &selinux_only).is_err());
        let c = LsmConfig::from_spec(&s, &BOTH).expect("accepted");
        assert_eq!(c.apparmor_profile.as_deref(), Some("docker-default"));
    }

    #[test]
    fn selinux_labels_without_selinux_are_refused_as_runc_does() {
        let s = spec(
            serde_json::json!({"selinuxLabel": "system_u:system_r:container_t:s0:c1,c2"}),
            serde_json::json!({}),
        );
        let e = LsmConfig::from_spec(&s, &NONE).expect_err("refused");
        assert!(
            e.to_string()
                .contains("selinux label is specified in config (process.selinuxLabel), but selinux is disabled or not supported"),
            "{e}"
        );
        let s = spec(
            serde_json::json!({}),
            serde_json::json!({"mountLabel": "system_u:object_r:container_file_t:s0:c1,c2"}),
        );
        let e = LsmConfig::from_spec(&s, &NONE).expect_err("refused");
        assert!(matches!(
            e,
            LsmError::SelinuxDisabled {
                field: "linux.mountLabel",
                ..
            }
        ));
        assert!(LsmConfig::from_spec(&s, &BOTH).is_ok());
    }

    #[test]
    fn empty_fields_are_no_labels() {
        let s = spec(
            serde_json::json!({"apparmorProfile": "", "selinuxLabel": ""}),
            serde_json::json!({"mountLabel": ""}),
        );
        let c = LsmConfig::from_spec(&s, &NONE).expect("empty strings are unset");
        assert!(c.is_empty());
        assert_eq!(c.mount_context(), None);
        assert_eq!(c.mount_data("tmpfs", "size=1m"), "size=1m");
        // Nothing to write: the attr directory is not even opened.
        c.apply_exec_labels(Path::new("/nonexistent/attr"))
            .expect("no-op");
    }

    #[test]
    fn unwritable_values_are_refused() {
        for (process, linux) in [
            (
                serde_json::json!({"apparmorProfile": "a\nb"}),
                serde_json::json!({}),
            ),
            (
                serde_json::json!({"selinuxLabel": "a\u{0}b"}),
                serde_json::json!({}),
            ),
            (
                serde_json::json!({}),
                serde_json::json!({"mountLabel": "x\",dev"}),
            ),
        ] {
            let e = LsmConfig::from_spec(&spec(process, linux), &BOTH).expect_err("refused");
            assert!(matches!(e, LsmError::InvalidLabel { .. }), "{e}");
        }
    }

    #[test]
    fn mount_label_goes_where_runc_puts_it() {
        let s = spec(
            serde_json::json!({}),
            serde_json::json!({"mountLabel": "system_u:object_r:container_file_t:s0:c1,c2"}),
        );
        let c = LsmConfig::from_spec(&s, &BOTH).expect("accepted");
        let ctx = r#"context="system_u:object_r:container_file_t:s0:c1,c2""#;
        assert_eq!(c.mount_context().as_deref(), Some(ctx));
        assert_eq!(
            c.mount_data("tmpfs", "mode=755,size=65536k"),
            format!("mode=755,size=65536k,{ctx}")
        );
        assert_eq!(c.mount_data("devpts", ""), ctx);
        for fstype in ["proc", "sysfs", "mqueue", "bind", "cgroup"] {
            assert_eq!(c.mount_data(fstype, "ro"), "ro", "{fstype}");
        }
    }

    #[test]
    fn apparmor_profile_goes_to_the_apparmor_directory_first() {
        let c = LsmConfig::validated(Some("hako-test"), None, None, &BOTH).expect("ok");
        let attr = fake_attr(true);
        c.write_exec_labels(attr.path(), FsCheck::Any)
            .expect("written");
        assert_eq!(read(attr.path(), "apparmor/exec"), "exec hako-test");
        assert_eq!(read(attr.path(), "exec"), "", "shared attribute untouched");
        // Without attr/apparmor (kernels before 5.8): the shared attribute, as runc falls back.
        let attr = fake_attr(false);
        c.write_exec_labels(attr.path(), FsCheck::Any)
            .expect("written");
        assert_eq!(read(attr.path(), "exec"), "exec hako-test");
    }

    #[test]
    fn selinux_label_goes_to_exec_and_keycreate() {
        let label = "system_u:system_r:container_t:s0:c1,c2";
        let c = LsmConfig::validated(Some("hako-test"), Some(label), None, &BOTH).expect("ok");
        let attr = fake_attr(true);
        c.write_exec_labels(attr.path(), FsCheck::Any)
            .expect("written");
        assert_eq!(read(attr.path(), "apparmor/exec"), "exec hako-test");
        assert_eq!(read(attr.path(), "exec"), label);
        write_attr(attr.path(), "keycreate", label, FsCheck::Any).expect("keycreate");
        assert_eq!(read(attr.path(), "keycreate"), label);
        // Both would need the shared attribute: refused rather than one silently lost.
        let attr = fake_attr(false);
        let e = c
            .write_exec_labels(attr.path(), FsCheck::Any)
            .expect_err("conflict");
        assert!(matches!(e, LsmError::ExecAttrConflict { .. }), "{e}");
    }

    #[test]
    fn exec_overrides_the_container_labels() {
        let c = LsmConfig::validated(Some("ctr"), Some("a:b:c:s0"), Some("m:o:t:s0"), &BOTH)
            .expect("ok");
        let e = c.for_exec(Some("other"), None, &BOTH).expect("ok");
        assert_eq!(e.apparmor_profile.as_deref(), Some("other"));
        assert_eq!(e.selinux_label.as_deref(), Some("a:b:c:s0"));
        assert_eq!(e.mount_label, None);
        let e = c.for_exec(Some(""), Some("x:y:z:s0"), &BOTH).expect("ok");
        assert_eq!(e.apparmor_profile.as_deref(), Some("ctr"));
        assert_eq!(e.selinux_label.as_deref(), Some("x:y:z:s0"));
        assert!(LsmConfig::default()
            .for_exec(Some("p"), None, &NONE)
            .is_err());
    }

    #[test]
    fn a_fake_attr_tree_is_not_procfs() {
        // A rootfs whose /proc is not a procfs (a volume, CVE-2019-16884) must not swallow the
        // label silently.
        let c = LsmConfig::validated(Some("hako-test"), None, None, &BOTH).expect("ok");
        let attr = fake_attr(true);
        let e = c.apply_exec_labels(attr.path()).expect_err("refused");
        assert!(matches!(e, LsmError::NotProcfs { .. }), "{e}");
        assert_eq!(read(attr.path(), "apparmor/exec"), "");
    }

    #[test]
    fn symlinked_attr_files_are_not_followed() {
        let c = LsmConfig::validated(Some("hako-test"), None, None, &BOTH).expect("ok");
        let attr = tempfile::tempdir().expect("tempdir");
        let elsewhere = tempfile::tempdir().expect("tempdir");
        std::fs::write(elsewhere.path().join("target"), "kept").expect("write");
        std::fs::create_dir(attr.path().join("apparmor")).expect("mkdir");
        symlink(
            elsewhere.path().join("target"),
            attr.path().join("apparmor/exec"),
        )
        .expect("symlink");
        assert!(c.write_exec_labels(attr.path(), FsCheck::Any).is_err());
        assert_eq!(read(elsewhere.path(), "target"), "kept");
    }

    #[test]
    fn real_procfs_without_apparmor_refuses_the_write() {
        // The plumbing against the real /proc: directory and file pass the procfs checks, and
        // the kernel (no LSM takes `exec` here, or no such profile) refuses the value, which is
        // what runc 1.1.5 reports ("write /proc/self/attr/exec: invalid argument").
        let c =
            LsmConfig::validated(Some("hako-test-no-such-profile"), None, None, &BOTH).expect("ok");
        let e = c
            .apply_exec_labels(Path::new("/proc/thread-self/attr"))
            .expect_err("no such profile");
        assert!(matches!(e, LsmError::WriteAttr { .. }), "{e:?}");
    }
}
