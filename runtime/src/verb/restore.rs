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
//! `prestart` and `createRuntime` hooks run with the restored pid; once CRIU is done the state
//! is saved (status `running`: no exec fifo) and `--pid-file` written; a terminal's new master
//! (`orphan-pts-master`) goes to `--console-socket`. The container is made through `create`'s
//! stages (`claim.rs`), and any failure undoes what was made.

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use nix::unistd::Pid;

use crate::claim::Claim;
use crate::config::{self, ContainerConfig};
use crate::criu::{self, CriuError, CriuFlags, Layout, ReqType, RestoreFacts, Swrk};
use crate::error::{Error, Result};
use crate::state::{self, Locked, Status, Store};
use crate::tty_proxy::TtyProxy;
use crate::verb::checkpoint::{cgroup_facts, image_dir, open_dir};
use crate::verb::create::{write_pid_file, CreateOptions};
use crate::verb::delete;
use crate::wait::SignalForwarder;
use crate::{console, hooks, rootless, timestamp};

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

/// The rootfs bound on `<state dir>/criu-root` for CRIU (its root must be a mount point),
/// unmounted and removed again when dropped. Declared after the [`Claim`] in `restore`, so that
/// it goes first; CRIU (a `Swrk`, declared later still) is gone before either.
struct CriuRoot(Option<PathBuf>);

impl CriuRoot {
    /// Binds `rootfs` on `root` (a new directory).
    fn mount(rootfs: &Path, root: PathBuf) -> Result<Self> {
        std::fs::create_dir(&root).map_err(Error::io("create", &root))?;
        let bound = CriuRoot(Some(root));
        let root = bound.0.as_deref().unwrap_or(Path::new(""));
        nix::mount::mount(
            Some(rootfs),
            root,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND | nix::mount::MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(Error::sys("mount(rootfs on criu-root, MS_BIND)"))?;
        Ok(bound)
    }

    /// Unmounts and removes it (a directory that is no mount point is just removed: the
    /// mount failed).
    fn release(&mut self) -> Result<()> {
        if let Some(root) = self.0.take() {
            match nix::mount::umount2(&root, nix::mount::MntFlags::MNT_DETACH) {
                Ok(()) | Err(nix::Error::EINVAL) => {}
                Err(e) => return Err(Error::sys("umount2(criu-root)")(e)),
            }
            std::fs::remove_dir(&root).map_err(Error::io("remove", &root))?;
        }
        Ok(())
    }
}

impl Drop for CriuRoot {
    fn drop(&mut self) {
        if let Err(e) = self.release() {
            crate::warn(&e);
        }
    }
}

/// What `restore` cannot honour, refused before anything is made (config-linux.md fields hako
/// applies at `create` that a restore would otherwise drop without a word). Looked at in the
/// spec, before it is validated: `netDevices` validation looks for the devices on the host.
fn refuse_unrestorable(spec: &oci_spec::runtime::Spec, rootless: bool) -> Result<()> {
    if rootless {
        // CRIU restores as root only (its unprivileged mode needs CAP_CHECKPOINT_RESTORE and a
        // flag runc does not pass); runc only warns "untested" and then fails in CRIU.
        return Err(CriuError::CannotRestore {
            what: "--rootless",
            reason: "CRIU restores a container as root only",
        }
        .into());
    }
    let linux = spec.linux().as_ref();
    if linux
        .and_then(|l| l.net_devices().as_ref())
        .is_some_and(|m| !m.is_empty())
    {
        return Err(CriuError::CannotRestore {
            what: "linux.netDevices",
            reason: "CRIU restores the network namespace as it dumped it; a host device \
                     cannot be moved into it (runc 1.3 ignores the field on restore)",
        }
        .into());
    }
    if linux
        .and_then(|l| l.seccomp().as_ref())
        .is_some_and(|s| s.listener_path().is_some())
    {
        return Err(CriuError::CannotRestore {
            what: "linux.seccomp.listenerPath",
            reason: "CRIU does not hand back a restored filter's notify descriptor",
        }
        .into());
    }
    Ok(())
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

/// What `restore` does on CRIU's notifications while it restores.
struct Notifications<'a> {
    claim: &'a mut Claim,
    config: &'a ContainerConfig,
    console_socket: Option<&'a Path>,
    /// Without `--detach`: hako itself is the terminal's other end.
    foreground: bool,
    /// A restored terminal's master, for hako to proxy (foreground, no `--console-socket`).
    master: Option<OwnedFd>,
    /// The restored init, from `post-restore`.
    restored: Option<Pid>,
}

impl Notifications<'_> {
    fn handle(&mut self, n: &criu::Notify, fd: Option<OwnedFd>) -> Result<()> {
        match n.script.as_str() {
            "setup-namespaces" => {
                // The restored root task is our child (rst_sibling): the claim kills and
                // reaps it if anything fails from here.
                let pid = Pid::from_raw(n.pid);
                self.claim.child = Some(pid);
                self.claim.record_pid(pid, false)?;
                let state_json = self.claim.locked()?.hook_state(Status::Creating)?;
                if let Some(h) = self.config.hooks.prestart() {
                    hooks::run_all("prestart", h, &state_json)?;
                }
                if let Some(h) = self.config.hooks.create_runtime() {
                    hooks::run_all("createRuntime", h, &state_json)?;
                }
                Ok(())
            }
            "post-restore" => {
                let pid = Pid::from_raw(n.pid);
                self.claim.child = Some(pid);
                self.claim.record_pid(pid, false)?;
                self.claim.locked_mut()?.state.created = timestamp::now();
                self.restored = Some(pid);
                Ok(())
            }
            "orphan-pts-master" => {
                let fd = fd.ok_or(Error::Protocol {
                    expected: "the pty master with orphan-pts-master",
                    got: "no descriptor",
                })?;
                match self.console_socket {
                    Some(sock) => send_master(sock, fd.as_fd()),
                    None if self.foreground => {
                        self.master = Some(fd);
                        Ok(())
                    }
                    None => Err(Error::InvalidConfig {
                        field: "process.terminal",
                        reason: "restore --detach of a terminal needs --console-socket".into(),
                    }),
                }
            }
            _ => Ok(()),
        }
    }
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
    let steps = crate::log::Steps::start("restore");
    state::validate_id(&c.id)?;
    let bundle =
        std::fs::canonicalize(&c.bundle).map_err(Error::io("resolve bundle", &c.bundle))?;
    let (spec, spec_text) = config::load_spec_text(&bundle)?;
    refuse_unrestorable(&spec, c.rootless)?;
    // Before anything is made (runc: checkCriuVersion(30000) first).
    criu::check_version(&opts.criu)?;
    let config = ContainerConfig::from_spec(&spec, &bundle, &c.id, c.systemd_cgroup)?;
    let layout = Layout::from_spec(&spec);
    let image_path = image_dir(opts.image_path.as_deref())?;
    let images = open_dir(&image_path, false)?;
    let descriptors = read_descriptors(&image_path)?;
    let rootfs = config.rootfs.root_path().to_path_buf();
    let mut claim = Claim::new(store, &c.id, &bundle, &config, &spec_text, steps)?;
    drop(spec_text);
    let cgroup_need = rootless::CgroupNeed::of(c.rootless, &spec);
    claim.make_cgroup(&config, c.rootless, cgroup_need)?;
    let work_path = opts.work_path.clone().unwrap_or_else(|| image_path.clone());
    let work = open_dir(&work_path, true)?;
    criu::prepare_mount_points(&rootfs, &layout.mount_points)?;
    let mut criu_root = CriuRoot::mount(&rootfs, claim.locked()?.dir().join("criu-root"))?;
    let root = claim.locked()?.dir().join("criu-root");
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
    // CRIU, and so the tree it restores, goes where `create` puts the init: the cgroup (or the
    // systemd unit, started with CRIU in it, as runc's cgroup manager does) and the resctrl group.
    claim.place(
        &config,
        Pid::from_raw(swrk.pid()),
        Some(hako_cgroups::Hierarchies::All),
    )?;
    claim.steps.step(format_args!(
        "started criu swrk (pid {}) in the container's cgroup",
        swrk.pid()
    ));
    let (hierarchies, cg_root) = match claim.cgroup.as_ref() {
        Some(cg) if cg.mode() == hako_cgroups::Mode::Unified => (cgroup_facts(cg).0, Vec::new()),
        Some(cg) => (cgroup_facts(cg).0, v1_cgroup_roots(swrk.pid())?),
        None => (Vec::new(), Vec::new()),
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
    let mut served = Notifications {
        claim: &mut claim,
        config: &config,
        console_socket: c.console_socket.as_deref(),
        foreground,
        master: None,
        restored: None,
    };
    swrk.call(
        ReqType::Restore,
        &criu::request(ReqType::Restore, Some(&rpc_opts)),
        |n, fd| served.handle(n, fd),
    )?;
    let (master, restored_pid) = (served.master, served.restored);
    swrk.finish(ReqType::Restore, true)?;
    criu_root.release()?;
    let pid = restored_pid.ok_or(Error::Protocol {
        expected: "post-restore notification",
        got: "none",
    })?;
    if let Some(pid_file) = &c.pid_file {
        write_pid_file(pid_file, pid)?;
    }
    let (locked, mut steps) = claim.finish()?;
    steps.step(format_args!("saved the state: running, init pid {pid}"));
    steps.done();
    Ok(Restored {
        pid,
        master,
        locked,
    })
}
