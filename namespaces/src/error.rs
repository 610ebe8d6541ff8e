//! The crate's single error type.
//!
//! One variant per failed operation, carrying the operation's context (path,
//! namespace, flags, value). The underlying cause is always kept in
//! `#[source]` and never pasted into the message, so callers can walk the
//! chain with `std::error::Error::source`.

use std::path::PathBuf;

use nix::errno::Errno;

/// Every failure of the namespace and rootfs layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A config field or option that hako cannot honour yet.
    #[error("unsupported: {what}")]
    Unsupported {
        /// The field, option or feature that is not supported.
        what: String,
    },

    /// The same namespace type appears twice in `linux.namespaces`.
    #[error("duplicate namespace {ns} in linux.namespaces")]
    DuplicateNamespace {
        /// Namespace type (`mnt`, `pid`, ...).
        ns: &'static str,
    },

    /// A namespace `path` that is not absolute.
    #[error("namespace {ns} path {path} is not absolute")]
    NamespacePathNotAbsolute {
        /// Namespace type.
        ns: &'static str,
        /// The offending path.
        path: PathBuf,
    },

    /// Opening a namespace file failed.
    #[error("open namespace {ns} at {path}")]
    OpenNamespace {
        /// Namespace type.
        ns: &'static str,
        /// Path that was opened.
        path: PathBuf,
        /// Cause.
        #[source]
        source: Errno,
    },

    /// A namespace file is not a namespace, or of another type.
    #[error("{path} is not a {expected} namespace (found {found})")]
    NamespaceTypeMismatch {
        /// Path of the file.
        path: PathBuf,
        /// Expected namespace type.
        expected: &'static str,
        /// What was found (a namespace type or "not a namespace").
        found: String,
    },

    /// Querying the type of a namespace file (ioctl NS_GET_NSTYPE / fstatfs) failed.
    #[error("query namespace type of {path}")]
    NamespaceType {
        /// Path of the file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: Errno,
    },

    /// setns(2) failed.
    #[error("setns into {ns} namespace")]
    Setns {
        /// Namespace type.
        ns: &'static str,
        /// Cause.
        #[source]
        source: Errno,
    },

    /// unshare(2) failed.
    #[error("unshare {ns} namespace")]
    Unshare {
        /// Namespace type.
        ns: &'static str,
        /// Cause.
        #[source]
        source: Errno,
    },

    /// `linux.timeOffsets` has a clock that is not `monotonic` or `boottime`.
    #[error("invalid clock {clock} in linux.timeOffsets")]
    InvalidTimeOffset {
        /// The clock name.
        clock: String,
    },

    /// `linux.timeOffsets` without a new time namespace.
    #[error("linux.timeOffsets requires a new time namespace")]
    TimeOffsetsWithoutTimeNs,

    /// Writing /proc/self/timens_offsets failed.
    #[error("write time namespace offsets {value:?}")]
    WriteTimeOffsets {
        /// What was written.
        value: String,
        /// Cause.
        #[source]
        source: Errno,
    },

    /// Uid/gid mappings given without a user namespace.
    #[error("{kind} mappings given without a user namespace")]
    MappingsWithoutUserNs {
        /// `uid` or `gid`.
        kind: &'static str,
    },

    /// A new user namespace without uid/gid mappings.
    #[error("user namespace enabled, but no {kind} mappings found")]
    UserNsWithoutMappings {
        /// `uid` or `gid`.
        kind: &'static str,
    },

    /// A mapping list that the kernel would reject.
    #[error("invalid {kind} mapping: {reason}")]
    InvalidMapping {
        /// `uid` or `gid`.
        kind: &'static str,
        /// Why it is invalid.
        reason: String,
    },

    /// Writing a `/proc/<pid>/{uid_map,gid_map,setgroups}` file failed.
    #[error("write {path}")]
    WriteIdMap {
        /// The proc file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },

    /// An unprivileged caller asked for host ids that are neither its own nor subordinate ids
    /// granted to it (subuid(5), subgid(5)).
    #[error("{kind} mapping {range}: not granted to user {user} in {file}")]
    NoSubordinateIds {
        /// "uid" or "gid".
        kind: &'static str,
        /// The host range asked for, "start+count".
        range: String,
        /// The caller's name (or uid when it has none).
        user: String,
        /// `/etc/subuid` or `/etc/subgid`.
        file: &'static str,
    },

    /// newuidmap(1) or newgidmap(1) could not be run, or failed.
    #[error("{program} {pid}: {status}")]
    NewIdMap {
        /// The helper's name.
        program: &'static str,
        /// The process whose map it was to write.
        pid: i32,
        /// How it ended, and the last line it printed.
        status: String,
    },

    /// Starting newuidmap(1) or newgidmap(1) failed (Debian package `uidmap`).
    #[error("run {program} (install the uidmap package)")]
    SpawnNewIdMap {
        /// The helper's name.
        program: &'static str,
        /// Cause.
        #[source]
        source: std::io::Error,
    },

    /// A sysctl key that is not namespaced (runc refuses these).
    #[error("sysctl {key} is not in a separate kernel namespace")]
    SysctlNotNamespaced {
        /// The key.
        key: String,
    },

    /// A namespaced sysctl whose namespace is shared with the host.
    #[error("sysctl {key} is not allowed in the host's {ns} namespace")]
    SysctlHostNamespace {
        /// The key.
        key: String,
        /// The namespace it needs.
        ns: &'static str,
    },

    /// A sysctl key that would escape /proc/sys.
    #[error("invalid sysctl key {key:?}")]
    InvalidSysctlKey {
        /// The key.
        key: String,
    },

    /// Writing a sysctl failed.
    #[error("write sysctl {key} = {value:?}")]
    WriteSysctl {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// Cause.
        #[source]
        source: Errno,
    },

    /// Reading the identity of our own namespace failed.
    #[error("stat namespace file {path}")]
    StatNamespace {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: Errno,
    },

    /// hostname/domainname set without a private UTS namespace.
    #[error("unable to set {what} without a private UTS namespace")]
    NoPrivateUts {
        /// `hostname` or `domainname`.
        what: &'static str,
    },

    /// Masked or read-only paths without a mount namespace of the container's own: they would
    /// cover the caller's own /proc and /sys files. runc's words and refusal.
    #[error("{field}: unable to restrict sys entries without a private MNT namespace")]
    RestrictSysWithoutMountNs {
        /// `linux.maskedPaths` or `linux.readonlyPaths`.
        field: &'static str,
    },

    /// Writing or reading the record of the mounts made outside a mount namespace of the
    /// container's own failed.
    #[error("record of the container's mounts {path}")]
    MountRecord {
        /// The record file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },

    /// A record of mounts that hako did not write (a line that does not parse, a mount outside
    /// the rootfs): nothing is unmounted on its word.
    #[error("invalid record of the container's mounts {path} at line {line}")]
    MountRecordInvalid {
        /// The record file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },

    /// The container shares a mount namespace but the runtime gave no record to write its
    /// mounts to: they could never be taken down, so nothing is mounted.
    #[error("mounts outside a mount namespace of the container's own need a record")]
    MountRecordMissing,

    /// The record of the container's mounts was started twice (a second header would make
    /// it invalid, and nothing of it would be unmounted).
    #[error("the record of the container's mounts is already started")]
    MountRecordStarted,

    /// A mount was to be recorded before the record was started (the mountinfo it reads is
    /// opened then).
    #[error("the record of the container's mounts is not started")]
    MountRecordNotStarted,

    /// The helper process that unmounts the recorded mounts could not be run or waited for
    /// (`ETIMEDOUT`: it took too long and was killed).
    #[error("run the helper unmounting the mounts recorded in {path}")]
    UnmountHelper {
        /// The record file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: Errno,
    },

    /// The helper process failed to unmount the recorded mounts.
    #[error("unmount the mounts recorded in {path}")]
    UnmountRecorded {
        /// The record file.
        path: PathBuf,
        /// What the helper reported.
        #[source]
        source: crate::rootfs::HelperFailure,
    },

    /// The joined mount namespace the container's mounts were made in can no longer be
    /// reached (its file gone or holding another namespace, no process in it), but may still
    /// exist, pinned by a file elsewhere: its mounts are not known to be gone.
    #[error("mount namespace {path} of the container's mounts cannot be reached")]
    MountNamespaceUnreachable {
        /// The namespace's path in the config.
        path: PathBuf,
    },

    /// The record of the container's mounts names another rootfs than the container's state:
    /// nothing is unmounted on its word.
    #[error("record of the container's mounts {path} is not for the rootfs {root}")]
    MountRecordRoot {
        /// The record file.
        path: PathBuf,
        /// The container's rootfs.
        root: PathBuf,
    },

    /// A recorded mount that cannot be unmounted safely.
    #[error("not unmounting mount {id} at {path}: {reason}")]
    UnsafeUnmount {
        /// Mount id (mountinfo).
        id: u64,
        /// Its mount point now.
        path: PathBuf,
        /// Why not.
        reason: &'static str,
    },

    /// Creating `process.cwd` inside the rootfs failed.
    #[error("create process.cwd {path} inside the rootfs")]
    CreateCwd {
        /// The cwd, as the config gives it.
        path: PathBuf,
        /// Cause.
        #[source]
        source: Errno,
    },

    /// sethostname(2) failed.
    #[error("set hostname {name:?}")]
    SetHostname {
        /// The name.
        name: String,
        /// Cause.
        #[source]
        source: Errno,
    },

    /// setdomainname(2) failed.
    #[error("set domainname {name:?}")]
    SetDomainname {
        /// The name.
        name: String,
        /// Cause.
        #[source]
        source: Errno,
    },

    /// The spec has no `root`.
    #[error("spec has no root")]
    NoRoot,

    /// The rootfs path cannot be resolved.
    #[error("resolve rootfs {path}")]
    RootfsPath {
        /// The path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },

    /// The rootfs path is not a directory.
    #[error("rootfs {path} is not a directory")]
    RootfsNotDirectory {
        /// The path.
        path: PathBuf,
    },

    /// A mount destination that is not absolute.
    #[error("mount destination {destination} is not absolute")]
    RelativeDestination {
        /// The destination.
        destination: PathBuf,
    },

    /// A mount that is not allowed inside /proc (runc checkProcMount).
    #[error("{destination} cannot be mounted because it is inside /proc")]
    MountInsideProc {
        /// The destination.
        destination: PathBuf,
    },

    /// A mount without a source where one is required.
    #[error("mount {destination} of type {fstype} needs a source")]
    MissingSource {
        /// The destination.
        destination: PathBuf,
        /// Filesystem type.
        fstype: String,
    },

    /// Invalid `linux.rootfsPropagation`.
    #[error("invalid rootfs propagation {value:?}")]
    InvalidPropagation {
        /// The value.
        value: String,
    },

    /// A `linux.devices` entry that cannot be created.
    #[error("invalid device {path}: {reason}")]
    InvalidDevice {
        /// Device path.
        path: PathBuf,
        /// Why.
        reason: &'static str,
    },

    /// Opening a path inside the rootfs (openat2 RESOLVE_IN_ROOT or the manual walk) failed.
    #[error("resolve {path} inside {root}")]
    Resolve {
        /// The rootfs (or "/" after pivot).
        root: PathBuf,
        /// The path inside it.
        path: PathBuf,
        /// Cause.
        #[source]
        source: Errno,
    },

    /// Opening a host path failed.
    #[error("open {path}")]
    Open {
        /// The path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: Errno,
    },

    /// Creating a directory, file or symlink inside the rootfs failed.
    #[error("create {path}")]
    Create {
        /// The path inside the rootfs.
        path: PathBuf,
        /// Cause.
        #[source]
        source: Errno,
    },

    /// A mount destination that is a symlink where runc refuses one (proc, sysfs).
    #[error("mount destination {destination} is a symlink")]
    SymlinkDestination {
        /// The destination.
        destination: PathBuf,
    },

    /// mount(2) failed.
    #[error("mount {src:?} on {destination} (type {fstype:?}, flags {flags:?}, data {data:?})")]
    Mount {
        /// Mount source.
        src: String,
        /// Destination (inside the rootfs, or a host path).
        destination: PathBuf,
        /// Filesystem type.
        fstype: String,
        /// Mount flags.
        flags: nix::mount::MsFlags,
        /// Data string.
        data: String,
        /// Cause.
        #[source]
        source: Errno,
    },

    /// mount_setattr(2) failed.
    #[error("mount_setattr on {destination} (set {set:#x}, clear {clear:#x}, propagation {propagation:#x})")]
    MountSetattr {
        /// Destination.
        destination: PathBuf,
        /// attr_set.
        set: u64,
        /// attr_clr.
        clear: u64,
        /// propagation.
        propagation: u64,
        /// Cause.
        #[source]
        source: Errno,
    },

    /// An id-mapped mount (`idmap`/`ridmap`, or a mount's own
    /// `uidMappings`/`gidMappings`) that is not a bind mount.
    #[error("id-mapped mount {destination} is not a bind mount")]
    IdmapNotBind {
        /// The destination.
        destination: PathBuf,
    },

    /// An id-mapped mount without both uid and gid mappings, or a bare
    /// `idmap`/`ridmap` in a container without a user namespace.
    #[error("id-mapped mount {destination}: {reason}")]
    IdmapWithoutMappings {
        /// The destination.
        destination: PathBuf,
        /// What is missing.
        reason: &'static str,
    },

    /// A mount's `uidMappings`/`gidMappings` that the kernel would reject.
    #[error("invalid {kind} mapping on mount {destination}: {reason}")]
    InvalidMountMapping {
        /// The destination.
        destination: PathBuf,
        /// `uid` or `gid`.
        kind: &'static str,
        /// Why it is invalid.
        reason: String,
    },

    /// Creating the user namespace that carries an id-mapped mount's
    /// mappings failed at `step` (pipe, fork, unshare, wait, ...).
    #[error("create user namespace for id-mapped mount {destination}: {step}")]
    IdmapUserns {
        /// The destination.
        destination: PathBuf,
        /// The failed step.
        step: &'static str,
        /// Cause.
        #[source]
        source: Errno,
    },

    /// open_tree(2) (OPEN_TREE_CLONE) of a bind source failed.
    #[error("open_tree {src} for mount {destination}")]
    OpenTree {
        /// The host source.
        src: PathBuf,
        /// The destination.
        destination: PathBuf,
        /// Cause.
        #[source]
        source: Errno,
    },

    /// An id-mapped mount reached without the detached tree that
    /// [`crate::Rootfs::detach_idmapped`] makes for it (a caller bug).
    #[error("no id-mapped tree was prepared for mount {destination}")]
    IdmappedTreeMissing {
        /// The destination.
        destination: PathBuf,
    },

    /// move_mount(2) of a detached mount onto its destination failed.
    #[error("move_mount {src} onto {destination}")]
    MoveMount {
        /// The host source.
        src: PathBuf,
        /// The destination.
        destination: PathBuf,
        /// Cause.
        #[source]
        source: Errno,
    },

    /// statvfs(3) of a mount failed.
    #[error("statvfs {path}")]
    Statvfs {
        /// The path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: Errno,
    },

    /// fstat(2) failed.
    #[error("stat {path}")]
    Stat {
        /// The path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: Errno,
    },

    /// Reading /proc/self/mountinfo failed.
    #[error("read /proc/self/mountinfo")]
    Mountinfo {
        /// Cause.
        #[source]
        source: std::io::Error,
    },

    /// mknod(2) failed.
    #[error("mknod {path} ({kind} {major}:{minor})")]
    Mknod {
        /// Device path.
        path: PathBuf,
        /// `c`, `b`, `u` or `p`.
        kind: char,
        /// Major number.
        major: u64,
        /// Minor number.
        minor: u64,
        /// Cause.
        #[source]
        source: Errno,
    },

    /// chown of a device node failed.
    #[error("chown {path} to {uid}:{gid}")]
    Chown {
        /// Path.
        path: PathBuf,
        /// Uid.
        uid: u32,
        /// Gid.
        gid: u32,
        /// Cause.
        #[source]
        source: Errno,
    },

    /// /dev/null inside the container is not the real null device
    /// (CVE-2025-31133: refuse to use it for masking).
    #[error("{path} is not the null device (char 1:3)")]
    NotDevNull {
        /// The path checked.
        path: PathBuf,
    },

    /// pivot_root(2) failed.
    #[error("pivot_root into {path}")]
    PivotRoot {
        /// The new root.
        path: PathBuf,
        /// Cause.
        #[source]
        source: Errno,
    },

    /// chdir/fchdir failed.
    #[error("chdir {path}")]
    Chdir {
        /// Target.
        path: PathBuf,
        /// Cause.
        #[source]
        source: Errno,
    },

    /// chroot(2) failed.
    #[error("chroot {path}")]
    Chroot {
        /// Target.
        path: PathBuf,
        /// Cause.
        #[source]
        source: Errno,
    },

    /// umount2(2) failed.
    #[error("umount {path}")]
    Umount {
        /// Target.
        path: PathBuf,
        /// Cause.
        #[source]
        source: Errno,
    },
}

impl Error {
    /// Shorthand for [`Error::Unsupported`].
    pub(crate) fn unsupported(what: impl Into<String>) -> Self {
        Error::Unsupported { what: what.into() }
    }
}
