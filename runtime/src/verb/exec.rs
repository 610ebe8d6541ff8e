//! `hako exec`: run another process inside a running container.
//!
//! The parent opens the init's namespaces (`/proc/<pid>/ns/*`, only those that differ from its
//! own), moves its *children* into the container's pid namespace with setns(2), and clones the
//! new process into the container's cgroup2 directory (clone3 `CLONE_INTO_CGROUP`). The child
//! moves itself into the v1 hierarchies (`SelfJoin`; it waits for the parent's `Go` only when the
//! parent must place it first, see `Destination::wait_for_go`), joins the remaining namespaces
//! (user after the others, mount last among them: joining the mount namespace also moves its
//! root and cwd into the container, so no host directory stays reachable, CVE-2024-21626), sets
//! up the process exactly as `create` does, and execs. Its end of the sync socket is
//! close-on-exec: the parent reading end-of-file without an error message means the exec
//! happened.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use nix::unistd::Pid;

use crate::capabilities;
use crate::config;
use crate::error::{Error, Result};
use crate::ids;
use crate::process::{self, ProcessConfig};
use crate::spawn::{self, Forked};
use crate::state::{Status, Store};
use crate::sync::{self, Message, RemoteError, SyncSocket};
use crate::tty_proxy::TtyProxy;
use crate::verb::create::{forward_seccomp_listener, write_pid_file};
use crate::wait::SignalForwarder;
use crate::{console, fds, init};

/// `exec`'s flags.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// Container id.
    pub id: String,
    /// `--process FILE`: a runtime-spec `process` JSON; replaces the args and flags below.
    pub process: Option<PathBuf>,
    /// The command and its arguments.
    pub args: Vec<String>,
    /// `--tty`.
    pub tty: bool,
    /// `--detach`.
    pub detach: bool,
    /// `--env KEY=VALUE`, added to the config's environment.
    pub env: Vec<String>,
    /// `--cwd`.
    pub cwd: Option<PathBuf>,
    /// `--user UID[:GID]`.
    pub user: Option<String>,
    /// `--cap`, added to the config's capabilities.
    pub caps: Vec<String>,
    /// `--additional-gids`.
    pub additional_gids: Vec<u32>,
    /// `--no-new-privs`.
    pub no_new_privs: bool,
    /// `--pid-file`.
    pub pid_file: Option<PathBuf>,
    /// `--console-socket`.
    pub console_socket: Option<PathBuf>,
    /// `--preserve-fds`.
    pub preserve_fds: u32,
    /// `--apparmor`: the exec'd process's AppArmor profile instead of the container's.
    pub apparmor: Option<String>,
    /// `--process-label`: its SELinux label instead of the container's.
    pub process_label: Option<String>,
}

fn parse_user(text: &str) -> Result<(u32, Option<u32>)> {
    let bad = || Error::InvalidConfig {
        field: "exec --user",
        reason: format!("{text:?} is not UID[:GID]"),
    };
    let (u, g) = match text.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (text, None),
    };
    let uid = ids::check("exec --user", u.parse().map_err(|_| bad())?)?;
    let gid = g
        .map(|g| ids::check("exec --user", g.parse().map_err(|_| bad())?))
        .transpose()?;
    Ok((uid, gid))
}

/// `--env` takes `KEY=VALUE` only: an entry without `=` is refused with runc's phrase (execve(2)
/// would pass it on, and what the program makes of it is undefined).
fn checked_env(entry: &str) -> Result<String> {
    if entry.contains('=') {
        return Ok(entry.to_string());
    }
    Err(Error::InvalidConfig {
        field: "exec --env",
        reason: format!("invalid environment variable: {entry:?}"),
    })
}

/// `--cwd` must be absolute, as `process.cwd` (config.md: "This value MUST be an absolute
/// path"); runc's phrase.
fn checked_cwd(cwd: &std::path::Path) -> Result<PathBuf> {
    if cwd.is_absolute() {
        return Ok(cwd.to_path_buf());
    }
    Err(Error::InvalidConfig {
        field: "exec --cwd",
        reason: "Cwd must be an absolute path".into(),
    })
}

/// Reads `--process FILE`, once: it gives the process and may name its LSM labels.
fn read_process_file(opts: &ExecOptions) -> Result<Option<oci_spec::runtime::Process>> {
    let Some(path) = &opts.process else {
        return Ok(None);
    };
    let mut text = config::read_regular_file("exec --process", path)?;
    if text.windows(15).any(|w| w == b"execCPUAffinity") {
        // Empty lists mean "unset" (config.md); see `config::drop_empty_cpu_affinity`.
        if let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&text) {
            config::drop_empty_cpu_affinity(&mut v);
            text = serde_json::to_vec(&v).unwrap_or(text);
        }
    }
    // from_slice, not from_str: the same `Process` deserializer that parses config.json (a
    // second copy, driven by `StrRead`, would add program text every hako command maps).
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|e| Error::InvalidConfig {
            field: "exec --process",
            reason: e.to_string(),
        })
}

/// Builds the process: from `--process`, or from the container's `process` overridden by the
/// flags (what runc does).
fn build_process(
    opts: &ExecOptions,
    process_file: Option<&oci_spec::runtime::Process>,
    spec: &oci_spec::runtime::Spec,
) -> Result<ProcessConfig> {
    if let Some(p) = process_file {
        return ProcessConfig::from_spec(p);
    }
    if opts.args.is_empty() {
        return Err(Error::InvalidConfig {
            field: "exec",
            reason: "no command given".into(),
        });
    }
    let mut base = spec.process().clone().unwrap_or_default();
    base.set_args(Some(opts.args.clone()));
    // The container's own terminal settings never carry over; exec decides with --tty.
    base.set_terminal(Some(opts.tty));
    base.set_console_size(None);
    let mut p = ProcessConfig::from_spec(&base)?;
    p.env.extend(
        opts.env
            .iter()
            .map(|e| checked_env(e))
            .collect::<Result<Vec<_>>>()?,
    );
    if let Some(cwd) = &opts.cwd {
        p.cwd = checked_cwd(cwd)?;
    }
    if let Some(u) = &opts.user {
        let (uid, gid) = parse_user(u)?;
        p.uid = uid;
        if let Some(g) = gid {
            p.gid = g;
        }
    }
    if !opts.additional_gids.is_empty() {
        p.additional_gids = ids::additional_gids("exec --additional-gids", &opts.additional_gids)?;
    }
    if opts.no_new_privs {
        p.no_new_privileges = true;
    }
    if !opts.caps.is_empty() {
        let mut sets = p.capabilities.take().unwrap_or_default();
        for c in &opts.caps {
            sets.add(&capabilities::validate_name(c)?);
        }
        p.capabilities = Some(sets);
    }
    Ok(p)
}

/// Runs the process; returns its exit code (0 with `--detach`).
pub fn exec(store: &Store, opts: &ExecOptions) -> Result<i32> {
    // Before hako opens anything that could fill a hole in the range (see fds.rs).
    fds::check_preserved(opts.preserve_fds)?;
    let mut steps = crate::log::Steps::start("exec");
    let locked = store.load(&opts.id)?;
    let (status, init) = locked.status_and_init()?;
    match status {
        Status::Created | Status::Running => {}
        Status::Stopped => {
            return Err(Error::NotRunning {
                id: opts.id.clone(),
            })
        }
        other => {
            return Err(Error::BadStatus {
                verb: "exec in",
                id: opts.id.clone(),
                status: other,
            })
        }
    }
    // The config `create` validated (kept in the state directory, never re-read from the
    // bundle, which may have changed): the base of the process, and the container's seccomp
    // filter, which applies to every process in it (runc: setns_init_linux.go).
    steps.step(format_args!("loaded the state: {status:?}"));
    let spec = locked.config()?;
    steps.step(format_args!("read the kept config"));
    let process_json = read_process_file(opts)?;
    let mut p = build_process(opts, process_json.as_ref(), &spec)?;
    let seccomp = config::seccomp_of(&spec)?;
    p.memory_policy = config::memory_policy_of(&spec)?;
    // The container's labels, each replaced by the exec's own (flags or --process JSON).
    let apparmor = opts.apparmor.clone().or_else(|| {
        process_json
            .as_ref()
            .and_then(|p| p.apparmor_profile().clone())
    });
    let label = opts.process_label.clone().or_else(|| {
        process_json
            .as_ref()
            .and_then(|p| p.selinux_label().clone())
    });
    let host = crate::lsm::HostLsm::host();
    let lsm =
        config::lsm_of(&spec, &host)?.for_exec(apparmor.as_deref(), label.as_deref(), &host)?;
    drop(spec);
    steps.step(format_args!("built the process"));
    // What a seccomp listener is sent with the notify fd; nobody else reads it.
    let state_json = match seccomp.as_ref().and_then(|s| s.listener_path()) {
        Some(_) => locked.hook_state(status)?,
        None => String::new(),
    };
    if opts.tty != p.terminal && opts.process.is_none() {
        p.terminal = opts.tty;
    }
    let init = init.ok_or_else(|| Error::NotRunning {
        id: opts.id.clone(),
    })?;
    let mut namespaces = hako_namespaces::ProcessNamespaces::open(init.pid())?;
    let cgroup = locked.cgroup()?;
    steps.step(format_args!("opened the init's namespaces and the cgroup"));
    // The state lock is not needed while the process runs (and `delete` must be able to take it).
    drop(locked);
    let high = 3 + opts.preserve_fds as i32;
    // Without --console-socket, hako itself is the terminal's other end (as runc).
    let mut own_console = None;
    let console: Option<OwnedFd> = match &opts.console_socket {
        Some(path) => Some(fds::dup_above(console::connect(path)?.as_fd(), high)?),
        None if p.terminal => {
            if opts.detach {
                return Err(Error::InvalidConfig {
                    field: "exec --tty",
                    reason:
                        "cannot allocate tty if hako will detach without setting console socket"
                            .into(),
                });
            }
            let (mine, theirs) = console::pair()?;
            own_console = Some(mine);
            Some(fds::dup_above(theirs.as_fd(), high)?)
        }
        None => None,
    };
    crate::rootless::join_pid_namespace(&mut namespaces)?;
    let forwarder = if opts.detach {
        None
    } else {
        Some(SignalForwarder::block()?)
    };
    let (parent_sock, child_sock) = sync::pair()?;
    let child_sock = child_sock.move_above(high)?;
    // A systemd unit's process is placed by hako (`Cgroup::join`), as its manager expects.
    let self_join = cgroup.as_ref().is_some_and(|c| c.systemd_unit().is_none());
    let cloned = crate::placement::with_initial_affinity(p.cpu_affinity.as_ref(), || {
        spawn::clone_for_cgroup(nix::sched::CloneFlags::empty(), cgroup.as_ref(), self_join)
    })?;
    match cloned.forked {
        Forked::Child => {
            drop(parent_sock);
            let into = Destination {
                self_join: cloned.self_join,
                wait_for_go: cloned.parent_adds.is_some(),
                namespaces,
            };
            let err = match child(
                into,
                &p,
                &lsm,
                seccomp.as_ref(),
                &child_sock,
                console.as_ref(),
                high,
            ) {
                Ok(never) => match never {},
                Err(e) => e,
            };
            let _ = child_sock.send(&Message::Error {
                chain: RemoteError::chain_of(&err),
            });
            crate::sys::exit_now(1)
        }
        Forked::Parent(pid) => {
            steps.step(format_args!("cloned the process (pid {pid})"));
            drop(child_sock);
            drop(console);
            drop(namespaces);
            let ctx = ParentContext {
                cgroup: cgroup.as_ref().zip(cloned.parent_adds),
                seccomp: seccomp.as_ref(),
                state_json: &state_json,
            };
            parent(pid, &parent_sock, &ctx, opts, forwarder, own_console, steps)
        }
    }
}

/// What the parent of an exec needs besides the child itself.
struct ParentContext<'a> {
    /// The cgroup, and the hierarchies the child still has to be added to.
    cgroup: Option<(&'a hako_cgroups::Cgroup, hako_cgroups::Hierarchies)>,
    seccomp: Option<&'a crate::seccomp::SeccompProgram>,
    state_json: &'a str,
}

fn parent(
    pid: Pid,
    sock: &SyncSocket,
    ctx: &ParentContext<'_>,
    opts: &ExecOptions,
    forwarder: Option<SignalForwarder>,
    own_console: Option<OwnedFd>,
    mut steps: crate::log::Steps,
) -> Result<i32> {
    // Bounded: a child that joined a container paused meanwhile stays frozen with its SIGKILL
    // pending (thawing is the user's `resume`, not hako's): the wait gives up and says so.
    let fail = |e: Error| {
        if let Err(w) = crate::pidfd::kill_and_reap(pid, None) {
            crate::warn(&w);
        }
        e
    };
    // `Go` only when the parent had something to do first: placing the child in a hierarchy it
    // was not born in and does not join itself (both processes know it from `parent_adds`).
    if let Some((cg, which)) = ctx.cgroup {
        cg.join(pid.as_raw(), which).map_err(|e| fail(e.into()))?;
        sock.send(&Message::Go {
            state: String::new(),
        })
        .map_err(fail)?;
    }
    // Bounded: a child stuck in its set-up is killed (by `fail`) and reported.
    let bound = sync::setup_bound();
    let mut next = sock.recv_with_fd_within(bound).map_err(fail)?;
    if let Some((Message::SeccompNotify, fd)) = next {
        forward_seccomp_listener(ctx.seccomp, fd, ctx.state_json).map_err(fail)?;
        next = sock.recv_with_fd_within(bound).map_err(fail)?;
    }
    match next.map(|(m, _)| m) {
        None => {}
        Some(Message::Error { chain }) => {
            let _ = crate::pidfd::reap_within(pid, bound);
            return Err(Error::Init(RemoteError::from_chain(chain)));
        }
        Some(other) => {
            return Err(fail(Error::Protocol {
                expected: "exec",
                got: other.name(),
            }))
        }
    }
    steps.step(format_args!("the process is set up and exec'd"));
    if let Some(f) = &opts.pid_file {
        write_pid_file(f, pid)?;
    }
    let proxy = match &own_console {
        Some(sock) => console::recv_master(sock, true)?
            .map(TtyProxy::start)
            .transpose()?,
        None => None,
    };
    let code = match forwarder {
        Some(fw) => fw.wait(pid, proxy.as_ref().map(TtyProxy::master)),
        None => Ok(0),
    };
    if let Some(p) = proxy {
        p.finish();
    }
    steps.step(format_args!("the process exited"));
    steps.done();
    code
}

enum Never {}

/// Where the child goes, in this order: the v1 hierarchies it moves itself into (see
/// `spawn::ForCgroup`), then the container's namespaces.
struct Destination {
    self_join: Option<hako_cgroups::SelfJoin>,
    /// Whether the parent places the child somewhere first and then sends `Go`. Usually not:
    /// clone3 put it in the cgroup2 directory and it joins the v1 hierarchies itself, so it
    /// goes on at once, without a round trip through the parent (a wake-up of each, and the
    /// decoding of a message).
    wait_for_go: bool,
    namespaces: hako_namespaces::ProcessNamespaces,
}

fn child(
    into: Destination,
    p: &ProcessConfig,
    lsm: &crate::lsm::LsmConfig,
    seccomp: Option<&crate::seccomp::SeccompProgram>,
    sock: &SyncSocket,
    console_fd: Option<&OwnedFd>,
    high: i32,
) -> Result<Never> {
    // While dumpable, in the host's user namespace (see process::write_oom_score_adj).
    process::write_oom_score_adj(p, "self")?;
    init::not_dumpable()?;
    // Dies with `hako exec` until become_process unties, right before the filter or the exec.
    crate::parent_death::tie(sock)?;
    if into.wait_for_go {
        match sock.recv()? {
            Some(Message::Go { .. }) => {}
            // The parent is gone: nobody to report to.
            _ => crate::sys::exit_now(1),
        }
    }
    // Into the container's v1 hierarchies before anything else (see `spawn::ForCgroup`).
    if let Some(join) = into.self_join {
        join.enter()?;
    }
    into.namespaces.join()?;
    if !nix::unistd::getuid().is_root() {
        // Root on the host, unmapped in the container's user namespace we just joined (the
        // overflow uid): become its root before making anything (the trampoline's file under
        // vm.memfd_noexec=2 would fail with EOVERFLOW).
        init::become_namespace_root()?;
    }
    // Joining a user namespace changed our credentials, clearing the request (commit_creds).
    crate::parent_death::tie(sock)?;
    nix::unistd::setsid().map_err(Error::sys("setsid"))?;
    process::apply_early(p)?;
    if p.terminal {
        if let Some(c) = console_fd {
            console::setup(c, p.console_size)?;
        }
    }
    if !lsm.is_empty() {
        lsm.apply_exec_labels(std::path::Path::new("/proc/thread-self/attr"))?;
    }
    // Sends nothing after a late filter: end-of-file on the socket (close-on-exec) is success.
    Err(init::become_process(p, seccomp, high, sock)?.exec())
}
