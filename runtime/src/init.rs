//! The container's init, from the moment `clone(2)` returns 0 in the child until `execve(2)`.
//!
//! Runs single-threaded in the cloned process, reporting each failure back over the sync socket
//! as an error chain and exiting; the parent then cleans up. See `runtime/docs/protocol.md`.

use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};

use crate::config::ContainerConfig;
use crate::error::{Error, Result};
use crate::sync::{Message, RemoteError, SyncSocket};
use crate::trampoline::{self, Trampoline};
use crate::{console, fds, hooks, process, spawn};

/// What the child needs, all opened by the parent before clone.
pub(crate) struct InitArgs<'a> {
    pub(crate) config: &'a ContainerConfig,
    pub(crate) sync: SyncSocket,
    pub(crate) fifo: OwnedFd,
    /// Where a failing startContainer hook is reported to `start` (see `fifo.rs`).
    pub(crate) start_status: Option<OwnedFd>,
    pub(crate) console: Option<OwnedFd>,
    /// Taken (and closed) when joined.
    pub(crate) joins: Option<hako_namespaces::JoinFds>,
    /// The detached id-mapped mounts `create` made; taken when attached.
    pub(crate) idmapped: Option<hako_namespaces::IdmappedTrees>,
    pub(crate) cgroup_mounts: Vec<hako_namespaces::CgroupMount>,
    pub(crate) no_pivot: bool,
    pub(crate) preserved: i32,
    /// Name of the session keyring to join, `None` with `--no-new-keyring`.
    pub(crate) keyring: Option<CString>,
}

/// Resets what the Rust runtime and the parent changed that a program expects at its defaults:
/// the signal mask (the parent of `run` blocks signals to forward them) and SIGPIPE, which Rust
/// sets to SIG_IGN and which execve(2) would otherwise pass on as ignored.
pub(crate) fn reset_signals() -> Result<()> {
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    )
    .map_err(Error::sys("sigprocmask"))?;
    // SAFETY: restoring the default disposition installs no handler code.
    unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )
    }
    .map_err(Error::sys("signal(SIGPIPE, SIG_DFL)"))?;
    Ok(())
}

/// The child's whole life; never returns.
pub(crate) fn run(mut args: InitArgs<'_>) -> ! {
    let err = match setup_and_exec(&mut args) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let chain = RemoteError::chain_of(&err);
    if args
        .sync
        .send(&Message::Error {
            chain: chain.clone(),
        })
        .is_err()
    {
        // The parent is gone (start already released us): say it where a human may see it.
        // Not eprintln!, which panics when stderr is a closed pipe.
        let _ = writeln!(std::io::stderr(), "hako init: {}", chain.join(": "));
    }
    // SAFETY: _exit ends the process without running atexit handlers or destructors that belong
    // to the parent's copy of the address space.
    unsafe { libc::_exit(1) }
}

enum Never {}

/// Makes the process non-dumpable until it execs (execve(2) resets it for ordinary programs):
/// a process in the container then cannot open `/proc/<pid>/exe`, the hako binary, and
/// overwrite it through that descriptor later (CVE-2019-5736), nor ptrace the half-set-up
/// process (proc(5), "ptrace access mode").
pub(crate) fn not_dumpable() -> Result<()> {
    nix::sys::prctl::set_dumpable(false).map_err(Error::sys("prctl(PR_SET_DUMPABLE, 0)"))
}

fn setup_and_exec(args: &mut InitArgs<'_>) -> Result<Never> {
    not_dumpable()?;
    let cfg = args.config;
    let Some(mut state) = wait_for_go(&args.sync)? else {
        // The parent died before releasing us: nothing to report to.
        // SAFETY: see `run`.
        unsafe { libc::_exit(1) }
    };
    if let Some(joins) = args.joins.take() {
        cfg.namespaces.join(joins)?;
    }
    if cfg.namespaces.unshares_user_late() {
        // Joined the other namespaces as host root; now the user namespace, whose maps only
        // the parent can write (user_namespaces(7)).
        cfg.namespaces.unshare_user()?;
        args.sync.send(&Message::MapIds)?;
        if args.sync.expect("idsMapped")?.is_none() {
            // SAFETY: see `run`.
            unsafe { libc::_exit(1) }
        }
    }
    if cfg
        .namespaces
        .contains(oci_spec::runtime::LinuxNamespaceType::User)
    {
        // In a new or joined user namespace our credentials are still the host's (unmapped,
        // seen as the overflow uid), so files we create would fail with EOVERFLOW: become the
        // namespace's root now that its maps are written (user_namespaces(7)), as runc's
        // nsexec does after joining.
        let root_gid = nix::unistd::Gid::from_raw(0);
        let root_uid = nix::unistd::Uid::from_raw(0);
        nix::unistd::setresgid(root_gid, root_gid, root_gid)
            .map_err(Error::sys("setresgid(0) in the container's user namespace"))?;
        nix::unistd::setresuid(root_uid, root_uid, root_uid)
            .map_err(Error::sys("setresuid(0) in the container's user namespace"))?;
    }
    cfg.namespaces.unshare_late()?;
    if cfg.namespaces.needs_pid_fork() {
        cfg.namespaces.unshare_pid()?;
        match spawn::fork_sibling()? {
            // Our job is done: the parent learns the new pid from `Born` and reaps us.
            // SAFETY: see `run`.
            spawn::Forked::Parent(_) => unsafe { libc::_exit(0) },
            spawn::Forked::Child => {}
        }
        args.sync.send(&Message::Born)?;
        // The state hooks see must carry this process's pid, which only now exists.
        state = match wait_for_go(&args.sync)? {
            Some(s) => s,
            // SAFETY: see `run`.
            None => unsafe { libc::_exit(1) },
        };
    }
    nix::unistd::setsid().map_err(Error::sys("setsid"))?;
    if let Some(name) = &args.keyring {
        // With SELinux, the keyring gets the process label (runc: go-selinux SetKeyLabel).
        let attr = std::path::Path::new("/proc/thread-self/attr");
        cfg.lsm.apply_keyring_label(attr)?;
        join_session_keyring(name)?;
        cfg.lsm.reset_keyring_label(attr)?;
    }
    if let Some(p) = &cfg.process {
        process::apply_early(p)?;
    }
    if let Some(persona) = cfg.personality {
        crate::scheduling::apply_personality(persona)?;
    }
    cfg.rootfs.prepare(
        &args.cgroup_mounts,
        args.idmapped.take().unwrap_or_default(),
    )?;
    let hooks = &cfg.hooks;
    let runtime_hooks = hooks.prestart().as_ref().is_some_and(|h| !h.is_empty())
        || hooks
            .create_runtime()
            .as_ref()
            .is_some_and(|h| !h.is_empty());
    if runtime_hooks {
        args.sync.send(&Message::RunHooks)?;
        if args.sync.expect("hooksDone")?.is_none() {
            // SAFETY: see `run`.
            unsafe { libc::_exit(1) }
        }
    }
    if let Some(h) = hooks.create_container() {
        hooks::run_all("createContainer", h, &state)?;
    }
    cfg.rootfs.enter(args.no_pivot)?;
    if let Some(h) = &cfg.hostname {
        hako_namespaces::set_hostname(h)?;
    }
    if let Some(d) = &cfg.domainname {
        hako_namespaces::set_domainname(d)?;
    }
    // Before `finish`: readonlyPaths usually include /proc/sys (runc orders it the same way).
    cfg.sysctls.apply()?;
    cfg.rootfs.finish()?;
    let exec = match &cfg.process {
        Some(p) => {
            if p.terminal {
                let socket = args.console.as_ref().ok_or(Error::InvalidConfig {
                    field: "process.terminal",
                    reason: "a terminal needs --console-socket".into(),
                })?;
                console::setup(socket, p.console_size)?;
            }
            // The exec labels take effect at execve; written before seccomp can refuse the write.
            cfg.lsm
                .apply_exec_labels(std::path::Path::new("/proc/thread-self/attr"))?;
            // Made while no seccomp filter can refuse memfd_create yet.
            let trampoline = Trampoline::new()?
                .map(|t| t.move_above(3 + args.preserved))
                .transpose()?;
            let prepared = process::apply_late(p, cfg.seccomp.as_ref())?;
            if let Some(fd) = &prepared.notify {
                args.sync
                    .send_with_fd(&Message::SeccompNotify, fd.as_fd())?;
            }
            Some((
                process::resolve_executable(p)?,
                prepared.argv,
                prepared.envp,
                trampoline,
            ))
        }
        None => None,
    };
    fds::cloexec_from(3 + args.preserved)?;
    for fd in 3..3 + args.preserved {
        fds::keep_on_exec(fd)?;
    }
    reset_signals()?;
    args.sync.send(&Message::Ready)?;
    crate::fifo::wait_for_start(&args.fifo)?;
    if let Some(h) = hooks.start_container() {
        if let Err(e) = hooks::run_all("startContainer", h, &with_status(&state, "created")) {
            // `start` waits on this FIFO; the sync socket's parent (`create`) is long gone.
            if let Some(fd) = &args.start_status {
                let text = RemoteError::chain_of(&e).join("\n");
                let _ = nix::unistd::write(fd, text.as_bytes());
            }
            return Err(e);
        }
    }
    let Some((path, argv, envp, trampoline)) = exec else {
        return Err(Error::InvalidConfig {
            field: "process",
            reason: "the config has no process to start".into(),
        });
    };
    let e = trampoline::exec(trampoline.as_ref(), &path, &argv, &envp);
    Err(Error::Sys {
        syscall: "execve",
        source: e,
    })
}

/// Waits for the parent's `Go` and returns the state JSON it carries; `None` if the parent died.
fn wait_for_go(sync: &SyncSocket) -> Result<Option<String>> {
    match sync.recv()? {
        Some(Message::Go { state }) => Ok(Some(state)),
        None => Ok(None),
        Some(other) => Err(Error::Protocol {
            expected: "go",
            got: other.name(),
        }),
    }
}

/// The state JSON with another `status` (startContainer hooks run once the container is
/// created and released, before its program runs).
fn with_status(state: &str, status: &str) -> String {
    match serde_json::from_slice::<serde_json::Value>(state.as_bytes()) {
        Ok(mut v) => {
            v["status"] = serde_json::Value::from(status);
            v.to_string()
        }
        Err(_) => state.to_string(),
    }
}

/// Gives the container its own session keyring (keyctl(2) `KEYCTL_JOIN_SESSION_KEYRING`), so
/// it cannot read the host's keys; kernels without keyrings (ENOSYS) are fine, as in runc.
fn join_session_keyring(name: &CString) -> Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_int = 1;
    // SAFETY: the name is a valid NUL-terminated string that outlives the call.
    let rc = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    if rc < 0 {
        let e = nix::Error::last();
        if e != nix::Error::ENOSYS {
            return Err(Error::sys("keyctl(KEYCTL_JOIN_SESSION_KEYRING)")(e));
        }
    }
    Ok(())
}
