//! The container process, validated once from `process` in `config.json` (or an exec's
//! `--process` file), and applied in the cloned child just before `execve`.
//!
//! Order of application, as runc's `finalizeNamespace`: rlimits and oom_score_adj early (they do
//! not depend on the rootfs); after pivot_root the [`Identity`]: the bounding set reduced first
//! (dropping needs CAP_SETPCAP, lost with the uid change), then supplementary groups, gid, umask
//! and the working directory, then the uid with `PR_SET_KEEPCAPS` so the permitted set survives
//! the uid change, then the effective/permitted/inheritable/ambient sets. Where the seccomp
//! filter goes in that order is [`Identity`]'s business. The executable is resolved through the
//! process's own `PATH` before the parent is told the init is ready, so `create` fails with
//! "executable file not found" instead of a container that dies at `start`.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{PosixRlimitType, Process};

use crate::capabilities::CapabilitySets;
use crate::error::{Error, Result};
use crate::ids;
use crate::scheduling;
use crate::seccomp::SeccompProgram;
use crate::sync::SyncSocket;
use crate::sys::RlimitResource;

/// One `setrlimit(2)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rlimit {
    pub(crate) resource: RlimitResource,
    pub(crate) soft: u64,
    pub(crate) hard: u64,
}

/// The validated process.
#[derive(Debug, Clone)]
pub struct ProcessConfig {
    pub(crate) args: Vec<String>,
    pub(crate) env: Vec<String>,
    pub(crate) cwd: PathBuf,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) additional_gids: Vec<u32>,
    pub(crate) umask: Option<u32>,
    pub(crate) terminal: bool,
    pub(crate) console_size: Option<(u16, u16)>,
    pub(crate) capabilities: Option<CapabilitySets>,
    pub(crate) rlimits: Vec<Rlimit>,
    pub(crate) no_new_privileges: bool,
    pub(crate) oom_score_adj: Option<i32>,
    pub(crate) scheduler: Option<scheduling::SchedAttr>,
    pub(crate) io_priority: Option<i32>,
    /// `process.execCPUAffinity`.
    pub(crate) cpu_affinity: Option<crate::placement::ExecCpuAffinity>,
    /// `linux.memoryPolicy` (a container-wide field, applied to each of its processes).
    pub(crate) memory_policy: Option<crate::placement::MemoryPolicy>,
}

fn rlimit_resource(t: PosixRlimitType) -> RlimitResource {
    use PosixRlimitType as T;
    match t {
        T::RlimitCpu => libc::RLIMIT_CPU,
        T::RlimitFsize => libc::RLIMIT_FSIZE,
        T::RlimitData => libc::RLIMIT_DATA,
        T::RlimitStack => libc::RLIMIT_STACK,
        T::RlimitCore => libc::RLIMIT_CORE,
        T::RlimitRss => libc::RLIMIT_RSS,
        T::RlimitNproc => libc::RLIMIT_NPROC,
        T::RlimitNofile => libc::RLIMIT_NOFILE,
        T::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        T::RlimitAs => libc::RLIMIT_AS,
        T::RlimitLocks => libc::RLIMIT_LOCKS,
        T::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        T::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        T::RlimitNice => libc::RLIMIT_NICE,
        T::RlimitRtprio => libc::RLIMIT_RTPRIO,
        T::RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

impl ProcessConfig {
    /// Validates `process`. Fields hako cannot honour yet are errors, never ignored.
    pub fn from_spec(p: &Process) -> Result<Self> {
        let args = p.args().clone().unwrap_or_default();
        if args.is_empty() {
            return Err(Error::InvalidConfig {
                field: "process.args",
                reason: "must name the program to run".into(),
            });
        }
        if !p.cwd().is_absolute() {
            return Err(Error::InvalidConfig {
                field: "process.cwd",
                reason: format!("{:?} is not an absolute path", p.cwd()),
            });
        }
        // apparmorProfile and selinuxLabel are validated against the host by `lsm.rs`.
        let mut rlimits = Vec::new();
        for r in p.rlimits().iter().flatten() {
            let resource = rlimit_resource(r.typ());
            if rlimits.iter().any(|x: &Rlimit| x.resource == resource) {
                return Err(Error::InvalidConfig {
                    field: "process.rlimits",
                    reason: format!("{:?} is set twice", r.typ()),
                });
            }
            if r.soft() > r.hard() {
                return Err(Error::InvalidConfig {
                    field: "process.rlimits",
                    reason: format!("{:?}: soft limit above hard limit", r.typ()),
                });
            }
            rlimits.push(Rlimit {
                resource,
                soft: r.soft(),
                hard: r.hard(),
            });
        }
        let user = p.user();
        Ok(ProcessConfig {
            args,
            env: p.env().clone().unwrap_or_default(),
            cwd: p.cwd().clone(),
            uid: ids::check("process.user.uid", user.uid())?,
            gid: ids::check("process.user.gid", user.gid())?,
            additional_gids: ids::additional_gids(
                "process.user.additionalGids",
                user.additional_gids().as_deref().unwrap_or_default(),
            )?,
            umask: user.umask(),
            terminal: p.terminal().unwrap_or(false),
            console_size: p
                .console_size()
                .map(|b| (b.height() as u16, b.width() as u16)),
            capabilities: p.capabilities().as_ref().map(CapabilitySets::from_spec),
            rlimits,
            no_new_privileges: p.no_new_privileges().unwrap_or(false),
            oom_score_adj: p.oom_score_adj(),
            scheduler: p
                .scheduler()
                .as_ref()
                .map(scheduling::sched_attr)
                .transpose()?,
            io_priority: p
                .io_priority()
                .as_ref()
                .map(scheduling::io_priority)
                .transpose()?,
            cpu_affinity: crate::placement::ExecCpuAffinity::from_spec(
                p.exec_cpu_affinity().as_ref(),
            )?,
            memory_policy: None,
        })
    }

    /// Adds `LISTEN_FDS=n` (socket activation passed through, as runc does).
    pub(crate) fn set_listen_fds(&mut self, n: u32) {
        self.env.retain(|e| !e.starts_with("LISTEN_FDS="));
        self.env.push(format!("LISTEN_FDS={n}"));
    }
}

/// Writes `process.oomScoreAdj` to `/proc/<pid>/oom_score_adj` (`pid` a number or `self`);
/// the value is inherited across fork(2) and kept across execve(2) (proc(5)).
///
/// Never written by a non-dumpable process of its own: its /proc files then belong to root of
/// the initial user namespace (proc(5), "/proc/pid"), which root of a rootless container's user
/// namespace may not write (EACCES). So `create` writes the init's before `Go` (a rootless init
/// is dumpable until then, its files the user's; a privileged `create` may write anyway), and
/// `exec`'s child writes its own before it becomes non-dumpable, as runc's nsexec writes it
/// before cloning.
pub(crate) fn write_oom_score_adj(p: &ProcessConfig, pid: &str) -> Result<()> {
    if let Some(adj) = p.oom_score_adj {
        let path = format!("/proc/{pid}/oom_score_adj");
        std::fs::write(&path, adj.to_string()).map_err(Error::io("write", path))?;
    }
    Ok(())
}

/// Steps that do not depend on the rootfs: run before pivot_root, while host `/proc` is visible
/// and before capabilities are dropped (scheduler and I/O priority may need them).
pub(crate) fn apply_early(p: &ProcessConfig) -> Result<()> {
    if let Some(attr) = &p.scheduler {
        scheduling::apply_sched(attr)?;
    }
    if let Some(prio) = p.io_priority {
        scheduling::apply_io_priority(prio)?;
    }
    for r in &p.rlimits {
        crate::sys::setrlimit(r.resource, r.soft, r.hard).map_err(Error::sys("setrlimit"))?;
    }
    Ok(())
}

/// Looks `HOME` up in the container's `/etc/passwd` when the config does not set it (runc does
/// this so that shells find their dot files); defaults to `/`.
fn home_for(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 6 && f[2].parse() == Ok(uid)).then(|| f[5].to_string())
            })
        })
        .unwrap_or_else(|| "/".to_string())
}

/// Resolves `args[0]` through `PATH` from the process's environment, as execvp(3) would but
/// before anything is exec'd, so a missing program fails `create`.
pub(crate) fn resolve_executable(p: &ProcessConfig) -> Result<CString> {
    let name = &p.args[0];
    let not_found = || Error::InvalidConfig {
        field: "process.args",
        reason: format!("exec: {name:?}: executable file not found in $PATH"),
    };
    let candidates: Vec<PathBuf> = if name.contains('/') {
        vec![PathBuf::from(name)]
    } else {
        let path = p
            .env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        path.split(':')
            .filter(|d| !d.is_empty())
            .map(|d| Path::new(d).join(name))
            .collect()
    };
    // By the mode bits, as runc 1.1's exec.LookPath: whether this process may execute it is
    // [`check_exec_permission`]'s question (access(2) would answer it with the real uid, and
    // for root with the permitted set, not the effective one execve(2) uses).
    use std::os::unix::fs::PermissionsExt;
    for c in candidates {
        if std::fs::metadata(&c).is_ok_and(|m| !m.is_dir() && m.permissions().mode() & 0o111 != 0) {
            return CString::new(c.into_os_string().into_encoded_bytes()).map_err(|_| not_found());
        }
    }
    Err(not_found())
}

/// Whether the process, with its final credentials, may execute `exec.path`, decided as
/// execve(2) decides: faccessat2(2) with `AT_EACCESS` makes the same inode_permission(MAY_EXEC)
/// check with the effective uid and the *effective* capability set, and refuses a noexec
/// mount. Needed because the program is exec'd by the trampoline, whose own execve recomputed
/// the sets (capabilities(7): for root the effective set becomes the permitted one), so
/// without it a config whose effective set lacks CAP_DAC_OVERRIDE would still exec an
/// owner-only program of another uid. runc 1.1 makes this check too (`system.Eaccess`) and
/// fails `create` with `exec PATH: permission denied`.
///
/// Only EACCES is the kernel's refusal to act on: ENOSYS (before Linux 5.8) or an errno from a
/// profile that denies faccessat2 (this runs under the filter without `noNewPrivileges`) leave
/// the decision to the exec itself, as before.
///
/// What it cannot do: grant. A non-root process whose effective set holds CAP_DAC_OVERRIDE
/// but whose ambient set does not passes this check (runc then runs the program), while the
/// trampoline, which kept only the ambient set across its own exec, is refused by the kernel
/// (`exec PATH: permission denied` on stderr after `start`).
pub(crate) fn check_exec_permission(exec: &Exec) -> Result<()> {
    match crate::sys::eaccess_exec(&exec.path) {
        Err(nix::Error::EACCES) => Err(Error::Io {
            op: "exec",
            path: PathBuf::from(exec.path.to_string_lossy().into_owned()),
            source: nix::Error::EACCES.into(),
        }),
        _ => Ok(()),
    }
}

/// The program to exec, resolved and encoded before any seccomp filter is loaded.
pub(crate) struct Exec {
    /// The program, `args[0]` resolved through `PATH`.
    pub(crate) path: CString,
    /// argv.
    pub(crate) argv: Vec<CString>,
    /// envp (with `HOME` added when the config does not set it).
    pub(crate) envp: Vec<CString>,
}

/// Encodes argv and envp (`HOME` from the container's `/etc/passwd` when unset, as runc).
fn exec_args(p: &ProcessConfig) -> Result<(Vec<CString>, Vec<CString>)> {
    let mut env = p.env.clone();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", home_for(p.uid)));
    }
    let to_c = |field: &'static str| {
        move |s: &String| {
            CString::new(s.as_bytes()).map_err(|_| Error::InvalidConfig {
                field,
                reason: format!("{s:?} holds a NUL byte"),
            })
        }
    };
    let argv = p
        .args
        .iter()
        .map(to_c("process.args"))
        .collect::<Result<_>>()?;
    let envp = env.iter().map(to_c("process.env")).collect::<Result<_>>()?;
    Ok((argv, envp))
}

/// The process's identity, applied in the order the kernel requires (runc's
/// `finalizeNamespace`, crun's `libcrun_set_caps`), split around the seccomp filter.
///
/// A filter loaded without no_new_privs needs CAP_SYS_ADMIN (seccomp(2), EACCES), which the uid
/// change and capset(2) take away: then the filter goes in between [`Identity::privileged`]
/// and [`Identity::unprivileged`]. With `noNewPrivileges` (or no filter) both run before it and
/// the filter comes last (`init::become_process` says where). Everything that is a check
/// (cwd, `getcwd`, `PATH` lookup) happens before the filter either way: the profile restricts
/// the user's program, not hako's set-up (crun orders it so too; runc 1.1 loads the filter
/// before its chdir when `noNewPrivileges` is false).
pub(crate) struct Identity<'a> {
    p: &'a ProcessConfig,
    /// The filter must be loaded while still privileged (a filter without no_new_privs).
    filter_first: bool,
    /// The sync socket, to renew the parent-death request after each fsuid change.
    sync: &'a SyncSocket,
}

impl<'a> Identity<'a> {
    /// The identity of `p`, which is filtered by `seccomp` (if any).
    pub(crate) fn new(
        p: &'a ProcessConfig,
        seccomp: Option<&SeccompProgram>,
        sync: &'a SyncSocket,
    ) -> Self {
        Identity {
            p,
            filter_first: seccomp.is_some() && !p.no_new_privileges,
            sync,
        }
    }

    /// Whether [`Identity::unprivileged`] must wait until the filter is loaded.
    pub(crate) fn filter_first(&self) -> bool {
        self.filter_first
    }

    /// no_new_privs, the bounding set (needs CAP_SETPCAP, so before the uid change), an empty
    /// ambient set, keep-caps, supplementary groups, gid, uid 0 (when that is the uid), umask
    /// and the working directory ([`Identity::enter_cwd`]). Nothing here gives up CAP_SYS_ADMIN.
    pub(crate) fn privileged(&mut self) -> Result<()> {
        use nix::unistd::Gid;
        let p = self.p;
        if p.no_new_privileges {
            nix::sys::prctl::set_no_new_privs()
                .map_err(Error::sys("prctl(PR_SET_NO_NEW_PRIVS)"))?;
        }
        if let Some(caps) = &p.capabilities {
            caps.apply_bounding()?;
            caps.clear_ambient()?;
        }
        if self.keep_caps() {
            nix::sys::prctl::set_keepcaps(true).map_err(Error::sys("prctl(PR_SET_KEEPCAPS)"))?;
        }
        let groups: Vec<Gid> = p
            .additional_gids
            .iter()
            .map(|g| Gid::from_raw(*g))
            .collect();
        // setgroups(2) fails with EPERM in a user namespace whose setgroups file says "deny";
        // runc then skips it when there are no additional gids to set.
        if let Err(e) = nix::unistd::setgroups(&groups) {
            if !(e == nix::Error::EPERM && groups.is_empty()) {
                return Err(Error::sys("setgroups")(e));
            }
        }
        let gid = Gid::from_raw(p.gid);
        nix::unistd::setresgid(gid, gid, gid).map_err(Error::sys("setresgid"))?;
        if p.uid == 0 {
            // Staying root changes no capability (capabilities(7), "Effect of user ID changes
            // on capabilities"): no reason to wait for the filter.
            set_uid(0)?;
        }
        if let Some(mask) = p.umask {
            nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
        }
        self.enter_cwd()
    }

    /// Enters the working directory as root (runc's finalizeNamespace does so first, so that a
    /// directory the host root may enter and the user may not works), and, if root is refused
    /// (EACCES/EPERM: root squash, a FUSE mount, a directory of a user namespace whose group
    /// is not mapped), again with the user's fsuid, as runc retries after its user change (a
    /// volume chowned to the user). Either way before any filter: the profile restricts the
    /// user's program, not hako's set-up (runc 1.1 makes both chdirs under the filter when
    /// `noNewPrivileges` is false). Then the getcwd(3) check.
    fn enter_cwd(&self) -> Result<()> {
        let p = self.p;
        match nix::unistd::chdir(&p.cwd) {
            Ok(()) => {}
            Err(nix::Error::EACCES | nix::Error::EPERM) if p.uid != 0 => {
                self.as_user(|| nix::unistd::chdir(&p.cwd))?
                    .map_err(|e| chdir_error(&p.cwd, e))?;
            }
            Err(e) => return Err(chdir_error(&p.cwd, e)),
        }
        check_cwd(&p.cwd)
    }

    /// Runs `f` with the user's filesystem uid (setfsuid(2)), then root's again: path lookups
    /// and permission checks in `f` are the user's (gid and groups are already the user's, and
    /// the change to a non-zero fsuid clears the file capabilities from the effective set;
    /// capabilities(7)), while the other credentials, CAP_SYS_ADMIN among them, stay root's.
    /// Each change clears the parent-death request (commit_creds), renewed at once: `f` may
    /// block on a hung volume.
    fn as_user<T>(&self, f: impl FnOnce() -> T) -> Result<T> {
        let set = |to: u32| {
            let to = nix::unistd::Uid::from_raw(to);
            nix::unistd::setfsuid(to);
            // setfsuid(2) reports no error: the next call returns the fsuid in effect.
            if nix::unistd::setfsuid(to) != to {
                return Err(Error::sys("setfsuid")(nix::Error::EPERM));
            }
            crate::parent_death::tie(self.sync)
        };
        set(self.p.uid)?;
        let r = f();
        set(0)?;
        Ok(r)
    }

    /// A non-zero uid, then the effective/permitted/inheritable/ambient capabilities: what gives
    /// up CAP_SYS_ADMIN.
    pub(crate) fn unprivileged(&mut self) -> Result<()> {
        let p = self.p;
        if p.uid != 0 {
            set_uid(p.uid)?;
        }
        if self.keep_caps() {
            nix::sys::prctl::set_keepcaps(false).map_err(Error::sys("prctl(PR_SET_KEEPCAPS)"))?;
        }
        if let Some(caps) = &p.capabilities {
            caps.apply()?;
        }
        Ok(())
    }

    /// Resolves the program and encodes argv and envp. `PATH` is searched with the user's
    /// permissions, as execvp(3) in the user's process would (and runc 1.1's LookPath, made
    /// after its user change): after [`Identity::unprivileged`] when that comes before the
    /// filter, otherwise with the user's fsuid ([`Identity::as_user`]), so that a program in a
    /// directory only root may search is passed over for the next `PATH` entry rather than
    /// chosen and then refused at exec.
    pub(crate) fn exec(&self) -> Result<Exec> {
        let (argv, envp) = exec_args(self.p)?;
        let path = if self.filter_first && self.p.uid != 0 {
            self.as_user(|| resolve_executable(self.p))??
        } else {
            resolve_executable(self.p)?
        };
        Ok(Exec { path, argv, envp })
    }

    fn keep_caps(&self) -> bool {
        self.p.capabilities.is_some() && self.p.uid != 0
    }
}

fn set_uid(uid: u32) -> Result<()> {
    let uid = nix::unistd::Uid::from_raw(uid);
    nix::unistd::setresuid(uid, uid, uid).map_err(Error::sys("setresuid"))
}

fn chdir_error(cwd: &Path, e: nix::Error) -> Error {
    Error::Io {
        op: "chdir to process.cwd",
        path: cwd.to_path_buf(),
        source: e.into(),
    }
}

/// CVE-2024-21626: a cwd such as /proc/self/fd/N, where N is a descriptor inherited from the
/// host, lands outside the rootfs. getcwd(3) then fails (the kernel reports the path as
/// "(unreachable)"), which is the check runc added in 1.1.12.
fn check_cwd(cwd: &Path) -> Result<()> {
    match nix::unistd::getcwd() {
        Ok(dir) if dir.is_absolute() => Ok(()),
        _ => Err(Error::InvalidConfig {
            field: "process.cwd",
            reason: format!("{cwd:?} resolves outside the container's root"),
        }),
    }
}
