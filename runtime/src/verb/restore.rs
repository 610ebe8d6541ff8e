//! `hako restore`: bring a checkpointed container back with CRIU, as a new container made from
//! the bundle (runc's `restore`: the id must be free, and without `--detach` hako waits for the
//! container and exits with its status, then deletes it).
//!
//! What runc does and hako does alike: the container's cgroup is created with the config's
//! resources and CRIU is moved into it before it restores (so the restored tree lands there);
//! the rootfs is bind-mounted on `<state dir>/criu-root` (CRIU's root must be a mount point),
//! after the config's mount points were made in it; the mounts are described as external with
//! their sources (`criu::restore_opts`); the init's stdio pipes recorded in `descriptors.json`
//! are reconnected to hako's own stdio; on CRIU's `setup-namespaces` notification the
//! `prestart` and `createRuntime` hooks run with the restored pid; on `post-restore` the state
//! is saved (status `running`: no exec fifo) and `--pid-file` written; a terminal's new master
//! (`orphan-pts-master`) goes to `--console-socket`. Any failure tears down what was made.

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use nix::unistd::Pid;

use crate::config::{self, ContainerConfig};
use crate::criu::{self, CriuFlags, Layout, ReqType, RestoreFacts, Swrk};
use crate::error::{Error, Result};
use crate::state::{self, Locked, Persisted, Status, Store};
use crate::tty_proxy::TtyProxy;
use crate::verb::checkpoint::{cgroup_facts, image_dir, open_dir};
use crate::verb::create::{owner, write_pid_file, CreateOptions};
use crate::verb::delete;
use crate::wait::SignalForwarder;
use crate::{console, hooks, pidfd, timestamp};

/// `restore`'s flags.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// The id, `--bundle`, `--console-socket`, `--pid-file`, `--no-pivot` (accepted: CRIU
    /// restores the mount namespace as it was).
    pub create: CreateOptions,
    /// The criu executable (global `--criu`).
    pub criu: PathBuf,
    /// `--image-path` (default `./checkpoint`).
    pub image_path: Option<PathBuf>,
    /// `--work-path` (default: the image path, CRIU's own default, so that `restore.log`
    /// outlives a failed restore; runc's default is in the state directory, removed with it).
    pub work_path: Option<PathBuf>,
    /// `--detach`.
    pub detach: bool,
    /// `--no-subreaper`.
    pub no_subreaper: bool,
    /// What `restore` shares with `checkpoint`.
    pub flags: CriuFlags,
}

/// Undoes a half-restored container: CRIU first (it kills what it restored when its client
/// goes), then the rootfs bind, then whatever is in the cgroup, the cgroup and the state.
struct Teardown {
    locked: Option<Locked>,
    criu_root: Option<PathBuf>,
}

impl Teardown {
    fn unmount(&mut self) -> Result<()> {
        if let Some(root) = self.criu_root.take() {
            nix::mount::umount2(&root, nix::mount::MntFlags::MNT_DETACH)
                .map_err(Error::sys("umount2(criu-root)"))?;
            std::fs::remove_dir(&root).map_err(Error::io("remove", &root))?;
        }
        Ok(())
    }
}

impl Drop for Teardown {
    fn drop(&mut self) {
        let _ = self.unmount();
        if let Some(locked) = self.locked.take() {
            let _ = delete::destroy(locked);
        }
    }
}

/// Reads runc's `descriptors.json`: the init's stdio when it was dumped.
fn read_descriptors(images: &Path) -> Result<Vec<String>> {
    let path = images.join(criu::DESCRIPTORS_FILE);
    let bytes = std::fs::read(&path).map_err(Error::io("read", &path))?;
    serde_json::from_slice(&bytes).map_err(|source| Error::ParseState { path, source })
}

/// Sends the restored terminal's master to `--console-socket`, as `create` does.
fn send_master(socket: &Path, master: BorrowedFd<'_>) -> Result<()> {
    let sock = console::connect(socket)?;
    let fds = [master.as_raw_fd()];
    sendmsg::<()>(
        sock.as_raw_fd(),
        &[IoSlice::new(b"/dev/ptmx")],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(Error::sys("sendmsg(SCM_RIGHTS) on console socket"))?;
    Ok(())
}

/// (controller, path) of `pid`'s v1 cgroups, CRIU's `cg_root` (runc reads the same file).
fn v1_cgroup_roots(pid: i32) -> Result<Vec<(Option<String>, String)>> {
    let path = format!("/proc/{pid}/cgroup");
    let text = std::fs::read_to_string(&path).map_err(Error::io("read", path))?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrl, p) = (f.next()?, f.next()?, f.next()?);
            let ctrl = ctrl.strip_prefix("name=").unwrap_or(ctrl);
            (!ctrl.is_empty()).then(|| (Some(ctrl.to_string()), p.to_string()))
        })
        .collect())
}

/// What the restored container became.
struct Restored {
    pid: Pid,
    master: Option<OwnedFd>,
    locked: Locked,
}

/// Restores the container; returns the exit code for hako (0 with `--detach`).
pub fn restore(store: &Store, opts: &RestoreOptions) -> Result<i32> {
    // Blocked before CRIU makes our child (rst_sibling), so that no SIGCHLD is missed.
    let forwarder = if opts.detach {
        None
    } else {
        if !opts.no_subreaper {
            nix::sys::prctl::set_child_subreaper(true)
                .map_err(Error::sys("prctl(PR_SET_CHILD_SUBREAPER)"))?;
        }
        Some(SignalForwarder::block()?)
    };
    let restored = restore_detached(store, opts, forwarder.is_some())?;
    let Some(forwarder) = forwarder else {
        return Ok(0);
    };
    let Restored {
        pid,
        master,
        locked,
    } = restored;
    drop(locked);
    let proxy = master.map(TtyProxy::start).transpose()?;
    let code = forwarder.wait(pid, proxy.as_ref().map(TtyProxy::master));
    if let Some(p) = proxy {
        p.finish();
    }
    let code = code?;
    drop(forwarder);
    delete::delete(store, &opts.create.id, true)?;
    Ok(code)
}

fn restore_detached(store: &Store, opts: &RestoreOptions, foreground: bool) -> Result<Restored> {
    let c = &opts.create;
    state::validate_id(&c.id)?;
    let bundle =
        std::fs::canonicalize(&c.bundle).map_err(Error::io("resolve bundle", &c.bundle))?;
    let spec = config::load_spec(&bundle)?;
    let config = ContainerConfig::from_spec(&spec, &bundle, &c.id, c.systemd_cgroup)?;
    let layout = Layout::from_spec(&spec);
    let image_path = image_dir(opts.image_path.as_deref())?;
    let images = open_dir(&image_path, false)?;
    let descriptors = read_descriptors(&image_path)?;
    let rootfs = config.rootfs.root_path().to_path_buf();
    let locked = store.claim(Persisted {
        id: c.id.clone(),
        pid: 0,
        pid_start_time: 0,
        pid_ino: 0,
        bundle: bundle.clone(),
        rootfs: rootfs.clone(),
        created: timestamp::now(),
        annotations: config.annotations.clone(),
        cgroup: Some(config.cgroup_path.clone()),
        created_done: false,
        has_process: config.process.is_some(),
        hooks: Some(config.hooks.clone()),
        owner: owner(),
        resctrl_dirs: Vec::new(),
        freezer: None,
    })?;
    let mut guard = Teardown {
        locked: Some(locked),
        criu_root: None,
    };
    let dir = guard
        .locked
        .as_ref()
        .map(|l| l.dir().to_path_buf())
        .unwrap_or_default();
    let cgroup = hako_cgroups::Cgroup::create(&config.cgroup_path)?;
    // Kept for `status`, as `create` keeps it.
    if let Some(l) = guard.locked.as_mut() {
        l.state.freezer = cgroup.freezer_file().ok();
    }
    cgroup.apply(&config.resources)?;
    let work_path = opts.work_path.clone().unwrap_or_else(|| image_path.clone());
    let work = open_dir(&work_path, true)?;
    criu::prepare_mount_points(&rootfs, &layout.mount_points)?;
    let root = dir.join("criu-root");
    std::fs::create_dir(&root).map_err(Error::io("create", &root))?;
    guard.criu_root = Some(root.clone());
    if let Err(e) = nix::mount::mount(
        Some(&rootfs),
        &root,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND | nix::mount::MsFlags::MS_REC,
        None::<&str>,
    ) {
        let _ = std::fs::remove_dir(&root);
        guard.criu_root = None;
        return Err(Error::sys("mount(rootfs on criu-root, MS_BIND)")(e));
    }
    let netns = match &layout.netns_path {
        Some(p) => Some(OwnedFd::from(
            std::fs::File::open(p).map_err(Error::io("open network namespace", p))?,
        )),
        None => None,
    };
    // CRIU's descriptors 4, 5, 6 are hako's stdio (the restored pipes' new ends), 7 the
    // network namespace.
    let (stdin, stdout, stderr) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
    let mut extra: Vec<BorrowedFd<'_>> = vec![stdin.as_fd(), stdout.as_fd(), stderr.as_fd()];
    extra.extend(netns.as_ref().map(AsFd::as_fd));
    let mut swrk = Swrk::spawn(&opts.criu, &extra, work_path.join("restore.log"))?;
    cgroup.add_process(swrk.pid())?;
    let (hierarchies, _) = cgroup_facts(&cgroup);
    let cg_root = if cgroup.mode() == hako_cgroups::Mode::Unified {
        Vec::new()
    } else {
        v1_cgroup_roots(swrk.pid())?
    };
    let facts = RestoreFacts {
        images_fd: images.as_raw_fd(),
        work_fd: work.as_raw_fd(),
        root,
        netns_fd: netns.as_ref().map(|_| 7),
        pipes: criu::stdio_pipes(&descriptors, 4),
        cgroup_binds: layout.cgroup_binds(&hierarchies),
        cg_root,
    };
    let rpc_opts = criu::restore_opts(&layout, &opts.flags, &facts);
    let mut master = None;
    let mut restored_pid = None;
    swrk.call(
        ReqType::Restore,
        &criu::request(ReqType::Restore, Some(&rpc_opts)),
        |n, fd| {
            let locked = guard.locked.as_mut().ok_or(Error::Protocol {
                expected: "state held by restore",
                got: "none",
            })?;
            match n.script.as_str() {
                "setup-namespaces" => {
                    locked.state.pid = n.pid;
                    let state_json = locked.hook_state(Status::Creating)?;
                    if let Some(h) = config.hooks.prestart() {
                        hooks::run_all("prestart", h, &state_json)?;
                    }
                    if let Some(h) = config.hooks.create_runtime() {
                        hooks::run_all("createRuntime", h, &state_json)?;
                    }
                }
                "post-restore" => {
                    // A restored init that is gone already reads `stopped` (start time 0).
                    let id = pidfd::identify(n.pid).unwrap_or(pidfd::Identity {
                        start_time: 0,
                        ino: 0,
                    });
                    locked.state.set_init(n.pid, id);
                    locked.state.created = timestamp::now();
                    locked.state.created_done = true;
                    locked.save()?;
                    restored_pid = Some(Pid::from_raw(n.pid));
                }
                "orphan-pts-master" => {
                    let fd = fd.ok_or(Error::Protocol {
                        expected: "the pty master with orphan-pts-master",
                        got: "no descriptor",
                    })?;
                    match &c.console_socket {
                        Some(sock) => send_master(sock, fd.as_fd())?,
                        None if foreground => master = Some(fd),
                        None => {
                            return Err(Error::InvalidConfig {
                                field: "process.terminal",
                                reason: "restore --detach of a terminal needs --console-socket"
                                    .into(),
                            })
                        }
                    }
                }
                _ => {}
            }
            Ok(())
        },
    )?;
    swrk.finish(ReqType::Restore, true)?;
    guard.unmount()?;
    let pid = restored_pid.ok_or(Error::Protocol {
        expected: "post-restore notification",
        got: "none",
    })?;
    if let Some(pid_file) = &c.pid_file {
        write_pid_file(pid_file, pid)?;
    }
    let locked = guard.locked.take().ok_or(Error::Protocol {
        expected: "state held by restore",
        got: "none",
    })?;
    Ok(Restored {
        pid,
        master,
        locked,
    })
}
