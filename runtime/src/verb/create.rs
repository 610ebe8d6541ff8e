//! `hako create`: build the container and leave its init waiting on the exec fifo.
//!
//! The parent side of the protocol in `runtime/docs/protocol.md`. Every resource is registered
//! with a `Teardown` guard as soon as it exists, so any failure (including a failing hook or an
//! init that reports an error) removes the process, the cgroup and the state directory again.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use crate::config::{self, ContainerConfig};
use crate::error::{Error, Result};
use crate::init::{self, InitArgs};
use crate::spawn::{self, Forked};
use crate::state::{self, Locked, Persisted, Status, Store};
use crate::sync::{self, Message};
use crate::{console, fds, fifo, hooks, pidfd, rootless, timestamp};

/// `create`'s flags.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Container id.
    pub id: String,
    /// Bundle directory (relative to the working directory if not absolute).
    pub bundle: PathBuf,
    /// `--console-socket`.
    pub console_socket: Option<PathBuf>,
    /// `--pid-file`.
    pub pid_file: Option<PathBuf>,
    /// `--no-pivot`.
    pub no_pivot: bool,
    /// `--no-new-keyring`.
    pub no_new_keyring: bool,
    /// `--preserve-fds`: fds 3..3+N pass into the container.
    pub preserve_fds: u32,
    /// `--systemd-cgroup` (global flag).
    pub systemd_cgroup: bool,
    /// `--rootless`, resolved (see `rootless::detect`): the cgroup only where the user may make it.
    pub rootless: bool,
}

/// A container whose init is waiting; `run` keeps this to wait for it.
#[derive(Debug)]
pub struct Created {
    /// The init's pid.
    pub pid: Pid,
    /// Holds the container's lock until the caller is done with it.
    _locked: Locked,
}

/// Undoes a half-made container when dropped while armed.
struct Teardown {
    locked: Option<Locked>,
    cgroup: Option<hako_cgroups::Cgroup>,
    child: Option<Pid>,
    armed: bool,
}

impl Teardown {
    /// The claimed state; held from the claim until `create` hands it to the caller.
    fn locked(&self) -> Result<&Locked> {
        self.locked.as_ref().ok_or_else(Self::no_state)
    }

    fn locked_mut(&mut self) -> Result<&mut Locked> {
        self.locked.as_mut().ok_or_else(Self::no_state)
    }

    fn no_state() -> Error {
        Error::Protocol {
            expected: "state held by create",
            got: "none".into(),
        }
    }
}

impl Drop for Teardown {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(pid) = self.child.take() {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
        if let Some(cg) = self.cgroup.take() {
            let _ = cg.signal_all(libc::SIGKILL);
            let _ = cg.destroy();
        }
        if let Some(l) = self.locked.take() {
            let _ = l.remove();
        }
    }
}

/// The name of the user running hako, for `state`'s `owner` (runc's field).
fn owner() -> String {
    hako_namespaces::user_name(nix::unistd::getuid().as_raw())
}

/// Number of fds passed by systemd socket activation (`LISTEN_FDS`), which runc forwards.
fn listen_fds() -> u32 {
    std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Creates the container.
pub fn create(store: &Store, opts: &CreateOptions) -> Result<Created> {
    create_with_console(store, opts, None)
}

/// Creates the container; `console` (when there is no `--console-socket`) is the child's end of
/// a socket on which hako itself receives the pty master (`run -t`, see `tty_proxy.rs`).
pub(crate) fn create_with_console(
    store: &Store,
    opts: &CreateOptions,
    console: Option<OwnedFd>,
) -> Result<Created> {
    state::validate_id(&opts.id)?;
    // Before hako opens anything that could fill a hole in the range (see fds.rs).
    fds::check_preserved(opts.preserve_fds + listen_fds())?;
    let bundle =
        std::fs::canonicalize(&opts.bundle).map_err(Error::io("resolve bundle", &opts.bundle))?;
    // containerd gives `root.path` relative to the bundle and runs us in it; resolve from there.
    let spec = config::load_spec(&bundle)?;
    let mut config = ContainerConfig::from_spec(&spec, &bundle, &opts.id, opts.systemd_cgroup)?;
    let cgroup_need = rootless::CgroupNeed::of(opts.rootless, &spec);
    for field in config.resources.ignored_fields() {
        crate::log::line(
            "warning",
            &format!("{field} is ignored: the kernel no longer supports it (as runc does)"),
        );
    }
    if let Some(f) = &config.seccomp {
        crate::log::debug(&format!("seccomp filter: {} cBPF instructions", f.len()));
    }
    let listen = listen_fds();
    if listen > 0 {
        if let Some(p) = config.process.as_mut() {
            p.set_listen_fds(listen);
        }
    }
    let preserved = (opts.preserve_fds + listen) as i32;
    let locked = store.claim(Persisted {
        id: opts.id.clone(),
        pid: 0,
        pid_start_time: 0,
        bundle: bundle.clone(),
        rootfs: config.rootfs.root_path().to_path_buf(),
        created: timestamp::now(),
        annotations: config.annotations.clone(),
        cgroup: Some(config.cgroup_path.clone()),
        created_done: false,
        has_process: config.process.is_some(),
        hooks: Some(config.hooks.clone()),
        owner: owner(),
    })?;
    let mut guard = Teardown {
        locked: Some(locked),
        cgroup: None,
        child: None,
        armed: true,
    };
    let pid = spawn_init(&mut guard, &config, opts, preserved, console, cgroup_need)?;
    if let Some(pid_file) = &opts.pid_file {
        write_pid_file(pid_file, pid)?;
    }
    guard.armed = false;
    let mut locked = guard.locked.take().ok_or_else(Teardown::no_state)?;
    locked.state.created_done = true;
    locked.save()?;
    Ok(Created {
        pid,
        _locked: locked,
    })
}

/// Writes a pid file as runc does: the number, no newline, atomically.
pub(crate) fn write_pid_file(path: &Path, pid: Pid) -> Result<()> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(Error::io("getcwd", "."))?
            .join(path)
    };
    state::write_atomic(&abs, pid.as_raw().to_string().as_bytes(), 0o644)
}

fn spawn_init(
    guard: &mut Teardown,
    config: &ContainerConfig,
    opts: &CreateOptions,
    preserved: i32,
    console: Option<OwnedFd>,
    cgroup_need: rootless::CgroupNeed,
) -> Result<Pid> {
    let locked = guard.locked()?;
    let fifo_path = locked.fifo_path();
    let high = 3 + preserved;
    let fifo_fd = fds::dup_above(fifo::create(&fifo_path)?.as_fd(), high)?;
    let start_status = if config
        .hooks
        .start_container()
        .as_ref()
        .is_some_and(|h| !h.is_empty())
    {
        let path = locked.start_status_path();
        Some(fds::dup_above(
            fifo::create_start_status(&path)?.as_fd(),
            high,
        )?)
    } else {
        None
    };
    let cgroup = rootless::create_cgroup(
        &config.cgroup_path,
        &config.resources,
        opts.rootless,
        cgroup_need,
    )?;
    if cgroup.is_none() {
        // Rootless without a cgroup: later verbs must not look for one.
        let locked = guard.locked_mut()?;
        locked.state.cgroup = None;
        locked.save()?;
    }
    let cgroup = cgroup.map(|cg| &*guard.cgroup.insert(cg));
    let console: Option<OwnedFd> = match (&opts.console_socket, console) {
        (Some(p), _) => Some(fds::dup_above(console::connect(p)?.as_fd(), high)?),
        (None, Some(fd)) => Some(fds::dup_above(fd.as_fd(), high)?),
        (None, None) => None,
    };
    let joins = config.namespaces.open_joins()?;
    // Made here, in the host's user namespace, for the init to attach (see the namespaces
    // crate's `rootfs::idmapped`).
    let idmapped = config.rootfs.detach_idmapped()?;
    if let Some(pidns) = joins.pid() {
        // setns(CLONE_NEWPID) changes only where our *children* go (pid_for_children), which is
        // exactly the init we are about to clone.
        nix::sched::setns(pidns, nix::sched::CloneFlags::CLONE_NEWPID)
            .map_err(Error::sys("setns(pid namespace to join)"))?;
    }
    let cgroup_mounts = rootless::mounted_hierarchies(cgroup)?
        .into_iter()
        .map(|h| hako_namespaces::CgroupMount {
            name: h.name,
            host_dir: h.dir,
            fs_type: h.fs_type.to_string(),
            options: h.options,
        })
        .collect();
    let (parent_sock, child_sock) = sync::pair()?;
    let child_sock = child_sock.move_above(high)?;
    if config.namespaces.needs_pid_fork() {
        // The container's pid 1 will be our child's child: its pid comes with its first message.
        parent_sock.pass_credentials()?;
    }
    let keyring = if opts.no_new_keyring {
        None
    } else {
        CString::new(format!("_ses.{}", opts.id)).ok()
    };
    // On cgroup v2 the init is born in its cgroup (clone3 CLONE_INTO_CGROUP).
    let (forked, needs_add) = spawn::clone_for_cgroup(config.namespaces.clone_flags(), cgroup)?;
    match forked {
        Forked::Child => {
            drop(parent_sock);
            // Close the state lock and forget the cgroup handle without tearing anything down:
            // they belong to the parent.
            guard.armed = false;
            guard.locked = None;
            guard.cgroup = None;
            init::run(InitArgs {
                config,
                sync: child_sock,
                fifo: fifo_fd,
                start_status,
                console,
                joins: Some(joins),
                idmapped: Some(idmapped),
                cgroup_mounts,
                no_pivot: opts.no_pivot,
                preserved,
                keyring,
            })
        }
        Forked::Parent(pid) => {
            drop(child_sock);
            drop(fifo_fd);
            drop(start_status);
            drop(console);
            drop(joins);
            drop(idmapped);
            guard.child = Some(pid);
            parent_side(guard, config, &parent_sock, pid, needs_add)
        }
    }
}

/// Hands the seccomp notify fd the init sent to the profile's `listenerPath`, with the container
/// state (config-linux.md, "Seccomp": the runtime sends the fd over SCM_RIGHTS).
pub(crate) fn forward_seccomp_listener(
    program: Option<&crate::seccomp::SeccompProgram>,
    fd: Option<OwnedFd>,
    state_json: &str,
) -> Result<()> {
    let (Some(program), Some(fd)) = (program, fd) else {
        return Err(Error::Protocol {
            expected: "a seccomp listener fd for a profile with SCMP_ACT_NOTIFY",
            got: "none".into(),
        });
    };
    let Some(path) = program.listener_path() else {
        return Err(Error::Protocol {
            expected: "a listenerPath",
            got: "none".into(),
        });
    };
    crate::seccomp::send_to_listener(path, fd.as_fd(), state_json, program.listener_metadata())?;
    Ok(())
}

/// Drives the protocol from the clone to `Ready`; returns the container's pid 1 (the cloned
/// child, or the child it forked into its own pid namespace).
fn parent_side(
    guard: &mut Teardown,
    config: &ContainerConfig,
    sock: &sync::SyncSocket,
    mut pid: Pid,
    needs_add: bool,
) -> Result<Pid> {
    let locked = guard.locked_mut()?;
    // Not saved yet: if `create` dies from here on, the init is either already in the cgroup
    // (recorded at claim time, so `delete --force` kills it there) or not yet, and then it reads
    // end-of-file on the sync socket and exits by itself.
    locked.state.pid = pid.as_raw();
    locked.state.pid_start_time = pidfd::stat(pid.as_raw()).map(|s| s.start_time).unwrap_or(0);
    if let Some(maps) = config
        .id_mappings
        .as_ref()
        .filter(|_| !config.namespaces.unshares_user_late())
    {
        maps.write(pid.as_raw())?;
    }
    if let Some(cg) = guard.cgroup.as_ref().filter(|_| needs_add) {
        cg.add_process(pid.as_raw())?;
    }
    let locked = guard.locked()?;
    let mut state_json = locked.hook_state(Status::Creating)?;
    sock.send(&Message::Go {
        state: state_json.clone(),
    })?;
    loop {
        let (msg, fd, sender) = match sock.recv_full()? {
            Some(r) => (Some(r.message), r.fd, r.sender),
            None => (None, None, None),
        };
        match msg {
            Some(Message::MapIds) => {
                if let Some(maps) = &config.id_mappings {
                    maps.write(pid.as_raw())?;
                }
                sock.send(&Message::IdsMapped)?;
            }
            Some(Message::Born) => {
                pid = adopt_pid1(guard, pid, sender)?;
                let locked = guard.locked()?;
                state_json = locked.hook_state(Status::Creating)?;
                sock.send(&Message::Go {
                    state: state_json.clone(),
                })?;
            }
            Some(Message::SeccompNotify) => {
                forward_seccomp_listener(config.seccomp.as_ref(), fd, &state_json)?
            }
            Some(Message::RunHooks) => {
                if let Some(h) = config.hooks.prestart() {
                    hooks::run_all("prestart", h, &state_json)?;
                }
                if let Some(h) = config.hooks.create_runtime() {
                    hooks::run_all("createRuntime", h, &state_json)?;
                }
                sock.send(&Message::HooksDone)?;
            }
            Some(Message::Ready) => return Ok(pid),
            Some(Message::Error { chain }) => {
                return Err(Error::Init(sync::RemoteError::from_chain(chain)))
            }
            Some(other) => {
                return Err(Error::Protocol {
                    expected: "ready",
                    got: format!("{other:?}"),
                })
            }
            None => {
                guard.child = None;
                let status = match waitpid(pid, None) {
                    Ok(WaitStatus::Exited(_, c)) => format!("exit status {c}"),
                    Ok(WaitStatus::Signaled(_, s, _)) => format!("killed by {s}"),
                    Ok(other) => format!("{other:?}"),
                    Err(e) => format!("waitpid: {e}"),
                };
                return Err(Error::InitDied { status });
            }
        }
    }
}

/// After `Born`: the container's pid 1 is `sender`, forked by our child `child` (which exits
/// right after, and is reaped here). From now on the guard and the state track pid 1.
fn adopt_pid1(guard: &mut Teardown, child: Pid, sender: Option<i32>) -> Result<Pid> {
    let pid1 = sender
        .filter(|&p| p > 0 && p != child.as_raw())
        .map(Pid::from_raw)
        .ok_or(Error::Protocol {
            expected: "born, with the sender's credentials",
            got: format!("{sender:?}"),
        })?;
    // pid 1 is our child too (CLONE_PARENT): the guard kills it if anything fails from here.
    guard.child = Some(pid1);
    match waitpid(child, None) {
        Ok(WaitStatus::Exited(_, 0)) => {}
        other => {
            return Err(Error::InitDied {
                status: format!("the init's first process ended with {other:?}"),
            })
        }
    }
    let locked = guard.locked_mut()?;
    locked.state.pid = pid1.as_raw();
    locked.state.pid_start_time = pidfd::stat(pid1.as_raw())
        .map(|s| s.start_time)
        .unwrap_or(0);
    Ok(pid1)
}
