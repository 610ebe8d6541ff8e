//! The crate's single error type: one variant per failed operation, with the
//! path or value it was about; the OS error stays in `source`.

use std::path::PathBuf;

/// Everything that can go wrong while managing a container's cgroup.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading a cgroupfs or procfs file failed.
    #[error("read {path}")]
    Read {
        /// File that could not be read.
        path: PathBuf,
        /// Underlying cause.
        #[source]
        source: std::io::Error,
    },
    /// Writing a value to a cgroup control file failed.
    #[error("write {value:?} to {path}")]
    Write {
        /// Control file.
        path: PathBuf,
        /// Value that was written.
        value: String,
        /// Underlying cause.
        #[source]
        source: std::io::Error,
    },
    /// A new process could not move itself into a v1 hierarchy (`SelfJoin::enter`).
    #[error("move the new process into {path}")]
    SelfJoin {
        /// The hierarchy's `tasks` file.
        path: PathBuf,
        /// Underlying cause (ENOSPC: an empty cpuset; EAGAIN: the pids limit).
        #[source]
        source: std::io::Error,
    },
    /// Creating a cgroup directory failed.
    #[error("create cgroup directory {path}")]
    Mkdir {
        /// Directory that could not be created.
        path: PathBuf,
        /// Underlying cause.
        #[source]
        source: std::io::Error,
    },
    /// Removing a cgroup directory failed (after the bounded EBUSY retries).
    #[error("remove cgroup directory {path}")]
    Rmdir {
        /// Directory that could not be removed.
        path: PathBuf,
        /// Underlying cause.
        #[source]
        source: std::io::Error,
    },
    /// Listing a cgroup directory failed.
    #[error("list cgroup directory {path}")]
    ReadDir {
        /// Directory that could not be listed.
        path: PathBuf,
        /// Underlying cause.
        #[source]
        source: std::io::Error,
    },
    /// Moving a process into a cgroup failed.
    #[error("add pid {pid} to {path}")]
    AddProcess {
        /// The `cgroup.procs` file.
        path: PathBuf,
        /// Process that was being moved.
        pid: i32,
        /// Underlying cause (ENOSPC on v1 cpuset means empty cpuset.cpus/mems).
        #[source]
        source: std::io::Error,
    },
    /// kill(2) of a process in the cgroup failed.
    #[error("send signal {signal} to pid {pid}")]
    Kill {
        /// Target process.
        pid: i32,
        /// Signal number.
        signal: i32,
        /// Underlying cause.
        #[source]
        source: nix::Error,
    },
    /// A signal number that is not a valid Linux signal.
    #[error("invalid signal number {signal}")]
    InvalidSignal {
        /// The number given.
        signal: i32,
    },
    /// No cgroup filesystem is mounted at all.
    #[error("no cgroup or cgroup2 filesystem is mounted")]
    NoCgroupMounts,
    /// A line of /proc/self/mountinfo or /proc/self/cgroup could not be parsed.
    #[error("malformed line in {file}: {line:?}")]
    Parse {
        /// Which file ("/proc/self/mountinfo", "/proc/self/cgroup").
        file: &'static str,
        /// The offending line.
        line: String,
    },
    /// A cgroup control file held something that is not the expected number/format.
    #[error("unexpected content {content:?} in {path}")]
    ParseValue {
        /// Control file.
        path: PathBuf,
        /// What it contained.
        content: String,
    },
    /// A systemd-driver operation on a cgroup the systemd driver did not make.
    #[error(
        "the cgroup has no systemd unit (the container was not created with --systemd-cgroup)"
    )]
    NotSystemd,
    /// Connecting to the D-Bus system bus failed.
    #[error("connect to the D-Bus system bus at {path}")]
    DbusConnect {
        /// The bus socket.
        path: PathBuf,
        /// Underlying cause.
        #[source]
        source: std::io::Error,
    },
    /// Rootless `--systemd-cgroup`: connecting to the user's session bus failed.
    #[error("rootless --systemd-cgroup: connect to the user's D-Bus session bus at {path} (is `systemd --user` running for this user, e.g. `loginctl enable-linger`?)")]
    DbusUserConnect {
        /// The bus socket.
        path: PathBuf,
        /// Underlying cause.
        #[source]
        source: std::io::Error,
    },
    /// Rootless `--systemd-cgroup` with no way to find the user's session bus.
    #[error("rootless --systemd-cgroup: no user bus: $DBUS_SESSION_BUS_ADDRESS has no unix:path= and $XDG_RUNTIME_DIR is not set")]
    NoUserBus,
    /// Rootless `--systemd-cgroup` outside the unified hierarchy: systemd delegates cgroups to
    /// users only on cgroup v2 (runc refuses it too).
    #[error("rootless --systemd-cgroup needs the unified cgroup hierarchy (cgroup v2 only); this host is {mode:?}")]
    RootlessSystemdNotUnified {
        /// The host's layout.
        mode: crate::Mode,
    },
    /// Reading from or writing to the bus failed (or timed out).
    #[error("D-Bus: {what}")]
    Dbus {
        /// The step that failed.
        what: &'static str,
        /// Underlying cause.
        #[source]
        source: std::io::Error,
    },
    /// The bus answered something hako does not understand.
    #[error("D-Bus: {what}: unexpected {detail}")]
    DbusProtocol {
        /// The step that failed.
        what: &'static str,
        /// What came instead.
        detail: String,
    },
    /// A method call came back as a D-Bus error.
    #[error("D-Bus {method}: {name}: {message}")]
    DbusCall {
        /// The method called.
        method: String,
        /// The error's name, e.g. `org.freedesktop.systemd1.NoSuchUnit`.
        name: String,
        /// The error's message from systemd.
        message: String,
    },
    /// systemd did not finish a job in time.
    #[error("timed out after {seconds} s waiting for {what}")]
    DbusTimeout {
        /// What was waited for.
        what: &'static str,
        /// The bound.
        seconds: u64,
    },
    /// systemd's job for the unit ended otherwise than `done`.
    #[error("systemd could not {verb} unit {unit}: job result {result:?}")]
    SystemdJob {
        /// The unit.
        unit: String,
        /// "start" or "stop".
        verb: &'static str,
        /// The job's result: "failed", "timeout", "dependency", ...
        result: String,
    },
    /// linux.cgroupsPath escapes its root with `..` or is otherwise unusable.
    #[error("invalid linux.cgroupsPath {path:?}: {reason}")]
    InvalidCgroupsPath {
        /// The path as given.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// hako's own cgroup for a hierarchy is not listed in /proc/self/cgroup.
    #[error("own cgroup for hierarchy {hierarchy:?} not found in /proc/self/cgroup")]
    OwnCgroupNotFound {
        /// Controller list or name of the hierarchy.
        hierarchy: String,
    },
    /// A resource field hako does not implement (yet, or on this cgroup mode).
    #[error("{field} is not supported: {reason}")]
    Unsupported {
        /// Spec field, e.g. "linux.resources.devices".
        field: &'static str,
        /// Why (e.g. "needs cgroup v2 eBPF device filter").
        reason: &'static str,
    },
    /// A resource is set but the controller it needs is not mounted.
    #[error("{field} is set but the {controller} cgroup controller is not available")]
    ControllerMissing {
        /// Spec field that needs the controller.
        field: &'static str,
        /// Controller name.
        controller: &'static str,
    },
    /// A resource is set but the host kernel lacks the control file for it.
    #[error("{field} is set but {path} does not exist on this host")]
    MissingFile {
        /// Spec field being applied.
        field: &'static str,
        /// Absent control file.
        path: PathBuf,
    },
    /// The kernel refused to write a resource's control file.
    #[error("{field}: the kernel refused {value:?} in {path}")]
    Refused {
        /// Spec field being applied.
        field: &'static str,
        /// Control file.
        path: PathBuf,
        /// Value that was written.
        value: String,
        /// Underlying cause.
        #[source]
        source: std::io::Error,
    },
    /// The kernel took a write but kept another value: a knob it no longer honours (writes to
    /// v1 memory.kmem.limit_in_bytes succeed and change nothing on recent kernels, 6.18 here).
    #[error(
        "{field} is not honoured by this kernel: {path} reads {actual:?} after writing {value:?}"
    )]
    NotHonoured {
        /// Spec field being applied.
        field: &'static str,
        /// Control file.
        path: PathBuf,
        /// Value that was written.
        value: String,
        /// What the file reads back.
        actual: String,
    },
    /// A resource value is out of range or malformed.
    #[error("invalid {field} value {value:?}: {reason}")]
    InvalidValue {
        /// Spec field.
        field: &'static str,
        /// The offending value.
        value: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// A device cgroup rule is malformed or cannot be expressed on cgroup v1.
    #[error("invalid linux.resources.devices[{index}]: {reason}")]
    InvalidDeviceRule {
        /// Position in linux.resources.devices.
        index: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// The kernel clamped cpu.shares to a different value than requested (runc errors too).
    #[error("cpu shares {requested} out of range, kernel set {actual}")]
    CpuSharesClamped {
        /// Requested shares.
        requested: u64,
        /// Value the kernel kept.
        actual: u64,
    },
    /// memory.checkBeforeUpdate: the new limit is below the current usage.
    #[error("memory limit {limit} is below current usage {usage}")]
    MemoryLimitBelowUsage {
        /// Requested limit.
        limit: i64,
        /// Current usage.
        usage: u64,
    },
    /// The freezer did not reach the wanted state in time.
    #[error("cgroup {path} did not become {state} in time")]
    FreezeTimeout {
        /// Freezer directory.
        path: PathBuf,
        /// Wanted state ("FROZEN" or "THAWED").
        state: &'static str,
    },
    /// Freezing needs the v1 freezer controller or cgroup v2, and neither is there.
    #[error("no freezer available for cgroup {path}")]
    NoFreezer {
        /// The container's cgroup path.
        path: PathBuf,
    },
    /// Opening a cgroup directory (to attach or query eBPF programs) failed.
    #[error("open cgroup directory {path}")]
    OpenCgroupDir {
        /// The directory.
        path: PathBuf,
        /// Underlying cause.
        #[source]
        source: std::io::Error,
    },
    /// The kernel refused to load the compiled device filter program.
    #[error("load eBPF device filter ({insns} instructions) for {path}; verifier: {verifier:?}")]
    BpfLoad {
        /// The cgroup directory it was meant for.
        path: PathBuf,
        /// Program length.
        insns: usize,
        /// Last line of the verifier log (empty if the verifier did not run).
        verifier: String,
        /// Underlying cause.
        #[source]
        source: std::io::Error,
    },
    /// BPF_PROG_ATTACH of the device filter failed.
    #[error("attach eBPF device filter to {path}")]
    BpfAttach {
        /// The cgroup directory.
        path: PathBuf,
        /// Underlying cause.
        #[source]
        source: std::io::Error,
    },
    /// BPF_PROG_DETACH of a previous device filter failed.
    #[error("detach eBPF device filter {id} from {path}")]
    BpfDetach {
        /// The cgroup directory.
        path: PathBuf,
        /// Kernel id of the program.
        id: u32,
        /// Underlying cause.
        #[source]
        source: std::io::Error,
    },
    /// BPF_PROG_QUERY of the device programs attached to a cgroup failed.
    #[error("query eBPF device programs of {path}")]
    BpfQuery {
        /// The cgroup directory.
        path: PathBuf,
        /// Underlying cause.
        #[source]
        source: std::io::Error,
    },
    /// Opening or inspecting an attached eBPF program by id failed.
    #[error("inspect eBPF program {id}")]
    BpfProgram {
        /// Kernel id of the program.
        id: u32,
        /// Underlying cause.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Whether this is a cgroup file that went away under us: ENOENT on opening it, ENODEV on
    /// reading or writing it once open (kernfs deactivates the files of a removed directory).
    /// Its owner removed the cgroup: systemd stops a scope whose processes are all gone and
    /// removes its cgroup at once (systemd.scope(5)), which races the `delete` of a container
    /// that just exited. A removed cgroup holds no process, since rmdir(2) of a populated one
    /// fails with EBUSY (cgroup-v2.rst, "Creating cgroups and Moving Processes"); so, for
    /// killing, thawing, and listing pids, such a cgroup is empty and thawed. Callers check
    /// only files they know the kernel has (ENOENT is also a file the kernel lacks).
    pub(crate) fn is_vanished(&self) -> bool {
        match self {
            Error::Read { source, .. }
            | Error::Write { source, .. }
            | Error::ReadDir { source, .. } => {
                matches!(source.raw_os_error(), Some(libc::ENOENT | libc::ENODEV))
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Read;

    use crate::{Cgroup, CgroupPath, Error};

    /// What the kernel really does to a cgroup file opened before its cgroup is removed:
    /// ENODEV (seen from systemd's removal of an empty scope in vm/systemd.sh), which must
    /// count as vanished. Root only, on a host with a cgroup2 tree.
    #[test]
    fn a_file_of_a_removed_cgroup_is_vanished() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let path = format!("/hako-unit-{}-vanished", std::process::id());
        let cg =
            Cgroup::create(&CgroupPath::absolute(std::path::Path::new(&path)).unwrap()).unwrap();
        let Some(dir) = cg.v2_dir().map(std::path::Path::to_path_buf) else {
            let _ = cg.destroy();
            eprintln!("skipped: no cgroup2 tree");
            return;
        };
        let file = dir.join("cgroup.events");
        let opened = std::fs::File::open(&file);
        cg.destroy().unwrap();
        let mut text = String::new();
        let source = opened.unwrap().read_to_string(&mut text).unwrap_err();
        let e = Error::Read { path: file, source };
        assert!(e.is_vanished(), "{e:?}");
        let e = Error::Read {
            path: dir.join("cgroup.kill"),
            source: std::fs::File::open(dir.join("cgroup.kill")).unwrap_err(),
        };
        assert!(e.is_vanished(), "{e:?}");
        let e = Error::Read {
            path: "/proc/self/status".into(),
            source: std::io::Error::from_raw_os_error(libc::EACCES),
        };
        assert!(!e.is_vanished());
    }
}
