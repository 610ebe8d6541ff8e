//! `hako create`: build the container and leave its init waiting on the exec fifo.
//!
//! The parent side of the protocol in `runtime/docs/protocol.md`. Every resource is registered
//! with the `Claim` guard (`claim.rs`, shared with `restore`) as soon as it exists, so any failure (including a failing hook or an
//! init that reports an error) removes the process, the cgroup and the state directory again.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use crate::claim::Claim;
use crate::config::{self, ContainerConfig};
use crate::error::{Error, Result};
use crate::init::{self, InitArgs};
use crate::spawn::{self, Forked};
use crate::state::{self, Locked, Status, Store};
use crate::sync::{self, Message};
use crate::{console, fds, fifo, hooks, pidfd, rootless};

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

/// Number of fds passed by systemd socket activation (`LISTEN_FDS`), which runc forwards.
pub(crate) fn listen_fds() -> u32 {
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
    let mut steps = crate::log::Steps::start("create");
    state::validate_id(&opts.id)?;
    // Before hako opens anything that could fill a hole in the range (see fds.rs).
    fds::check_preserved(opts.preserve_fds + listen_fds())?;
    let bundle =
        std::fs::canonicalize(&opts.bundle).map_err(Error::io("resolve bundle", &opts.bundle))?;
    // containerd gives `root.path` relative to the bundle and runs us in it; resolve from there.
    let (spec, spec_text) = config::load_spec_text(&bundle)?;
    let mut config = ContainerConfig::from_spec(&spec, &bundle, &opts.id, opts.systemd_cgroup)?;
    steps.step(format_args!(
        "loaded and validated {}/config.json",
        bundle.display()
    ));
    if opts.rootless {
        // Rootless under the systemd driver: the unit belongs to the user's manager, over the
        // user's bus (runc's systemd user.go); before anything is made, so a missing user bus
        // fails `create` with nothing to undo. Without a unit nothing changes.
        config.cgroup_path = config.cgroup_path.in_user_manager()?;
    }
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
    let mut guard = Claim::new(store, &opts.id, &bundle, &config, &spec_text, steps)?;
    drop(spec_text);
    if config.rootfs.needs_mount_record() {
        let path = guard.locked()?.mounts_path();
        config
            .rootfs
            .record_mounts(hako_namespaces::MountRecord::create(&path, 3 + preserved)?);
        guard.mounts = Some(path);
    }
    let pid = spawn_init(&mut guard, &config, opts, preserved, console, cgroup_need)?;
    if let Some(pid_file) = &opts.pid_file {
        write_pid_file(pid_file, pid)?;
    }
    // Still armed until saved: a state that cannot be saved is a failed create, and the guard
    // takes back the init, the cgroup and the state directory.
    let (locked, mut steps) = guard.finish()?;
    steps.step(format_args!("saved the state: created, init pid {pid}"));
    steps.done();
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
    guard: &mut Claim,
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
    // Rootless too: `start` then returns once the init has exec'd. Until then it is
    // non-dumpable, its /proc/<pid>/ns root's, which an `exec` right after `start`, as the
    // user, could not open (EACCES).
    let start_status = if hooks::any(&[config.hooks.start_container()]) || opts.rootless {
        let path = locked.start_status_path();
        Some(fds::dup_above(
            fifo::create_start_status(&path)?.as_fd(),
            high,
        )?)
    } else {
        None
    };
    let cgroup = guard.make_cgroup(config, opts.rootless, cgroup_need)?;
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
    let cgroup_mounts = cgroup_mounts(cgroup)?;
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
    // With systemd the scope is started holding the init (release_init): not born in it.
    let systemd = config.cgroup_path.systemd_unit().is_some();
    let affinity = config
        .process
        .as_ref()
        .and_then(|p| p.cpu_affinity.as_ref());
    let cloned = crate::placement::with_initial_affinity(affinity, || {
        spawn::clone_for_cgroup(
            config.namespaces.clone_flags(),
            cgroup.filter(|_| !systemd),
            true,
        )
    })?;
    let parent_adds = cloned.parent_adds;
    match cloned.forked {
        Forked::Child => {
            drop(parent_sock);
            // Close the state lock (without unlocking it: see `close_inherited`) and forget the
            // cgroup handle without tearing anything down: they belong to the parent.
            guard.forget_in_child();
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
                unprivileged_parent: opts.rootless,
                self_join: cloned.self_join,
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
            guard.steps.step(format_args!(
                "cloned the init (pid {pid}, {:?})",
                config.namespaces.clone_flags()
            ));
            parent_side(guard, config, &parent_sock, pid, parent_adds)
        }
    }
}

/// The cgroup hierarchies as the init mounts them in the container.
fn cgroup_mounts(
    cgroup: Option<&hako_cgroups::Cgroup>,
) -> Result<Vec<hako_namespaces::CgroupMount>> {
    Ok(rootless::mounted_hierarchies(cgroup)?
        .into_iter()
        .map(|h| hako_namespaces::CgroupMount {
            name: h.name,
            host_dir: h.dir,
            fs_type: h.fs_type.to_string(),
            options: h.options,
        })
        .collect())
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
            got: "none",
        });
    };
    let Some(path) = program.listener_path() else {
        return Err(Error::Protocol {
            expected: "a listenerPath",
            got: "none",
        });
    };
    crate::seccomp::send_to_listener(path, fd.as_fd(), state_json, program.listener_metadata())?;
    Ok(())
}

/// Drives the protocol from the clone to `Ready`; returns the container's pid 1 (the cloned
/// child, or the child it forked into its own pid namespace).
fn parent_side(
    guard: &mut Claim,
    config: &ContainerConfig,
    sock: &sync::SyncSocket,
    mut pid: Pid,
    parent_adds: Option<hako_cgroups::Hierarchies>,
) -> Result<Pid> {
    let hooks = &config.hooks;
    let runtime_hooks = hooks::any(&[hooks.prestart(), hooks.create_runtime()]);
    let child_hooks = hooks::any(&[hooks.create_container()]);
    record_init(guard, pid, runtime_hooks || child_hooks)?;
    let mut state_json = release_init(guard, config, sock, pid, parent_adds)?;
    // Every wait for the child is bounded. The child runs the createContainer hooks right after
    // `HooksDone` (or, with no prestart/createRuntime hooks to wait for, after `Go`): from that
    // point each wait also spans them (see `sync::child_hooks_bound`).
    let setup = sync::setup_bound();
    let with_child_hooks = sync::child_hooks_bound(
        config
            .hooks
            .create_container()
            .iter()
            .flatten()
            .map(|h| h.timeout()),
    );
    let mut bound = if runtime_hooks {
        setup
    } else {
        with_child_hooks
    };
    loop {
        let (msg, fd, sender) = match sock.recv_full_within(Some(bound))? {
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
                pid = adopt_pid1(guard, pid, sender, runtime_hooks || child_hooks)?;
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
                run_runtime_hooks(config, sock, &state_json)?;
                bound = with_child_hooks;
                guard
                    .steps
                    .step(format_args!("ran the prestart and createRuntime hooks"));
            }
            Some(Message::Ready) => {
                guard.steps.step(format_args!(
                    "the init set up the rootfs and the process and waits for start"
                ));
                return Ok(pid);
            }
            Some(Message::Error { chain }) => {
                return Err(Error::Init(sync::RemoteError::from_chain(chain)))
            }
            Some(other) => {
                return Err(Error::Protocol {
                    expected: "ready",
                    got: other.name(),
                })
            }
            None => {
                guard.child = None;
                return Err(init_died(pid, setup));
            }
        }
    }
}

/// Records the init in the state. `state` says `creating` for as long as we hold the lock; with
/// hooks to run (`save`: they may take long, and may ask `state` themselves) the pid is saved
/// too, so that it says which process. Without hooks `create` is over in milliseconds and the
/// write is not worth it (a file creation and a rename). If `create` dies from here on, the
/// init is either already in the cgroup (recorded at claim time, so `delete --force` kills it
/// there) or not yet, and then it reads end-of-file on the sync socket and exits by itself.
fn record_init(guard: &mut Claim, pid: Pid, save: bool) -> Result<()> {
    guard.record_pid(pid, save)
}

/// Maps the init's ids (unless it unshares its user namespace later and asks), puts it in its
/// cgroup (where clone could not) and lets it go; returns the state JSON hooks read.
fn release_init(
    guard: &mut Claim,
    config: &ContainerConfig,
    sock: &sync::SyncSocket,
    pid: Pid,
    parent_adds: Option<hako_cgroups::Hierarchies>,
) -> Result<String> {
    if let Some(maps) = config
        .id_mappings
        .as_ref()
        .filter(|_| !config.namespaces.unshares_user_late())
    {
        maps.write(pid.as_raw())?;
    }
    // From here: the init's own write would be refused rootless (process::write_oom_score_adj).
    if let Some(p) = &config.process {
        crate::process::write_oom_score_adj(p, &pid.as_raw().to_string())?;
    }
    guard.place(config, pid, parent_adds)?;
    if !config.net_devices.is_empty() {
        let netns = crate::netdev::open_netns(&config.namespaces, pid.as_raw())?;
        config.net_devices.move_into(netns.as_fd())?;
    }
    let state_json = guard.locked()?.hook_state(Status::Creating)?;
    sock.send(&Message::Go {
        state: state_json.clone(),
    })?;
    Ok(state_json)
}

/// The prestart and createRuntime hooks, in the runtime's namespaces, when the init asks.
fn run_runtime_hooks(
    config: &ContainerConfig,
    sock: &sync::SyncSocket,
    state_json: &str,
) -> Result<()> {
    if let Some(h) = config.hooks.prestart() {
        hooks::run_all("prestart", h, state_json)?;
    }
    if let Some(h) = config.hooks.create_runtime() {
        hooks::run_all("createRuntime", h, state_json)?;
    }
    sock.send(&Message::HooksDone)
}

/// The init closed the sync socket without a word: reaps it (within `bound`) and says how it
/// ended.
fn init_died(pid: Pid, bound: std::time::Duration) -> Error {
    let status = match pidfd::reap_within(pid, bound) {
        Ok(WaitStatus::Exited(_, c)) => format!("exit status {c}"),
        Ok(WaitStatus::Signaled(_, s, _)) => format!("killed by {s}"),
        Ok(other) => format!("{other:?}"),
        Err(e) => return e,
    };
    Error::InitDied { status }
}

/// After `Born`: the container's pid 1 is `sender`, forked by our child `child` (which exits
/// right after, and is reaped here). From now on the guard and the state track pid 1.
fn adopt_pid1(guard: &mut Claim, child: Pid, sender: Option<i32>, save: bool) -> Result<Pid> {
    let pid1 = sender
        .filter(|&p| p > 0 && p != child.as_raw())
        .map(Pid::from_raw)
        .ok_or(Error::Protocol {
            expected: "born, with the sender's credentials",
            got: if sender.is_some() {
                "another pid"
            } else {
                "no credentials"
            },
        })?;
    // pid 1 is our child too (CLONE_PARENT): the guard kills it if anything fails from here.
    guard.child = Some(pid1);
    match pidfd::reap_within(child, sync::setup_bound()) {
        Ok(WaitStatus::Exited(_, 0)) => {}
        other => {
            return Err(Error::InitDied {
                status: format!("the init's first process ended with {other:?}"),
            })
        }
    }
    guard.record_pid(pid1, save)?;
    Ok(pid1)
}
