//! The container process, validated once from `process` in `config.json` (or an exec's
//! `--process` file), and applied in the cloned child just before `execve`.
//!
//! Order of application, as runc's `finalizeNamespace`: rlimits and oom_score_adj early (they do
//! not depend on the rootfs); after pivot_root: the bounding set reduced first (dropping needs CAP_SETPCAP, lost with the uid change), then
//! supplementary groups, gid and uid with `PR_SET_KEEPCAPS` so the permitted set survives the uid
//! change, then the effective/permitted/inheritable/ambient sets are set, then
//! umask and the working directory, and the seccomp filter (see [`apply_late`]). The executable
//! is resolved through the
//! process's own `PATH` before the parent is told the init is ready, so `create` fails with
//! "executable file not found" instead of a container that dies at `start`.

use std::ffi::CString;
use std::path::{Path, PathBuf};

/// setrlimit(2)'s resource type: an enum in glibc's headers, an int in musl's.
#[cfg(target_env = "gnu")]
type RlimitResource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
type RlimitResource = libc::c_int;

use oci_spec::runtime::{PosixRlimitType, Process};

use std::os::fd::OwnedFd;

use crate::capabilities::CapabilitySets;
use crate::error::{Error, Result};
use crate::ids;
use crate::scheduling;
use crate::seccomp::SeccompProgram;

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
        })
    }

    /// Adds `LISTEN_FDS=n` (socket activation passed through, as runc does).
    pub(crate) fn set_listen_fds(&mut self, n: u32) {
        self.env.retain(|e| !e.starts_with("LISTEN_FDS="));
        self.env.push(format!("LISTEN_FDS={n}"));
    }
}

/// Steps that do not depend on the rootfs: run before pivot_root, while host `/proc` is visible
/// and before capabilities are dropped (scheduler and I/O priority may need them).
pub(crate) fn apply_early(p: &ProcessConfig) -> Result<()> {
    if let Some(adj) = p.oom_score_adj {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .map_err(Error::io("write", "/proc/self/oom_score_adj"))?;
    }
    if let Some(attr) = &p.scheduler {
        scheduling::apply_sched(attr)?;
    }
    if let Some(prio) = p.io_priority {
        scheduling::apply_io_priority(prio)?;
    }
    for r in &p.rlimits {
        let lim = libc::rlimit {
            rlim_cur: r.soft,
            rlim_max: r.hard,
        };
        // SAFETY: setrlimit reads one valid rlimit struct.
        if unsafe { libc::setrlimit(r.resource, &lim) } != 0 {
            return Err(Error::Sys {
                syscall: "setrlimit",
                source: nix::Error::last(),
            });
        }
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
    for c in candidates {
        if nix::unistd::access(&c, nix::unistd::AccessFlags::X_OK).is_ok() && !c.is_dir() {
            return CString::new(c.into_os_string().into_encoded_bytes()).map_err(|_| not_found());
        }
    }
    Err(not_found())
}

/// What `apply_late` hands back for the exec.
pub(crate) struct Prepared {
    /// argv.
    pub(crate) argv: Vec<CString>,
    /// envp.
    pub(crate) envp: Vec<CString>,
    /// The seccomp listener, when the profile notifies.
    pub(crate) notify: Option<OwnedFd>,
}

/// Credentials, capabilities, no_new_privs and the seccomp filter, after pivot_root.
///
/// seccomp follows runc (`standard_init_linux.go`): with `noNewPrivileges` the filter is loaded
/// last, so it constrains as few of hako's own syscalls as possible; without it, loading needs
/// CAP_SYS_ADMIN, so it goes in before the capabilities are dropped.
pub(crate) fn apply_late(p: &ProcessConfig, seccomp: Option<&SeccompProgram>) -> Result<Prepared> {
    use nix::unistd::{Gid, Uid};
    if p.no_new_privileges {
        nix::sys::prctl::set_no_new_privs().map_err(Error::sys("prctl(PR_SET_NO_NEW_PRIVS)"))?;
    }
    let mut notify = None;
    if let Some(filter) = seccomp.filter(|_| !p.no_new_privileges) {
        notify = filter.load()?;
    }
    if let Some(caps) = &p.capabilities {
        caps.apply_bounding()?;
    }
    let keep_caps = p.capabilities.is_some() && p.uid != 0;
    if keep_caps {
        nix::sys::prctl::set_keepcaps(true).map_err(Error::sys("prctl(PR_SET_KEEPCAPS)"))?;
    }
    let groups: Vec<Gid> = p
        .additional_gids
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    // setgroups(2) fails with EPERM in a user namespace whose setgroups file says "deny"; runc
    // then skips it when there are no additional gids to set.
    if let Err(e) = nix::unistd::setgroups(&groups) {
        if !(e == nix::Error::EPERM && groups.is_empty()) {
            return Err(Error::sys("setgroups")(e));
        }
    }
    let gid = Gid::from_raw(p.gid);
    nix::unistd::setresgid(gid, gid, gid).map_err(Error::sys("setresgid"))?;
    let uid = Uid::from_raw(p.uid);
    nix::unistd::setresuid(uid, uid, uid).map_err(Error::sys("setresuid"))?;
    if keep_caps {
        nix::sys::prctl::set_keepcaps(false).map_err(Error::sys("prctl(PR_SET_KEEPCAPS)"))?;
    }
    if let Some(caps) = &p.capabilities {
        caps.apply()?;
    }
    if let Some(mask) = p.umask {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    }
    nix::unistd::chdir(&p.cwd).map_err(|e| Error::Io {
        op: "chdir to process.cwd",
        path: p.cwd.clone(),
        source: e.into(),
    })?;
    // CVE-2024-21626: a cwd such as /proc/self/fd/N, where N is a descriptor inherited from the
    // host, lands outside the rootfs. getcwd(3) then fails (the kernel reports the path as
    // "(unreachable)"), which is the check runc added in 1.1.12.
    match nix::unistd::getcwd() {
        Ok(dir) if dir.is_absolute() => {}
        _ => {
            return Err(Error::InvalidConfig {
                field: "process.cwd",
                reason: format!("{:?} resolves outside the container's root", p.cwd),
            })
        }
    }
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
    if let Some(filter) = seccomp.filter(|_| p.no_new_privileges) {
        notify = filter.load()?;
    }
    Ok(Prepared { argv, envp, notify })
}
