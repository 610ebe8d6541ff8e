//! `hako checkpoint`: dump a running container with CRIU (`criu swrk`), with runc's flags.
//!
//! As runc: the images go to `--image-path` (default `./checkpoint`), CRIU's log `dump.log` to
//! `--work-path` (default the container's state directory, `criu.work`), the container is
//! described to CRIU as runc describes it (`criu::dump_opts`), its stdio is recorded in
//! `descriptors.json`, and unless `--leave-running` or `--pre-dump` the container is destroyed
//! (poststop hooks included) once CRIU has dumped it: its processes are gone then.
//! A failed checkpoint leaves the container as it was (CRIU resumes the processes it froze); runc
//! 1.1 tries to destroy it then and fails with "container still running", hako does not try.

use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::criu::{self, CriuError, CriuFlags, DumpFacts, DumpFlags, Layout, ReqType, Swrk};
use crate::error::{Error, Result};
use crate::state::{Locked, Status, Store};
use crate::verb::delete;

/// `checkpoint`'s flags.
#[derive(Debug, Clone, Default)]
pub struct CheckpointOptions {
    /// The container.
    pub id: String,
    /// The criu executable (global `--criu`).
    pub criu: PathBuf,
    /// `--image-path` (default `./checkpoint`).
    pub image_path: Option<PathBuf>,
    /// `--work-path` (default `<state dir>/criu.work`).
    pub work_path: Option<PathBuf>,
    /// `--parent-path`: the previous pre-dump, relative to the image path.
    pub parent_path: Option<String>,
    /// `--leave-running`.
    pub leave_running: bool,
    /// `--pre-dump`.
    pub pre_dump: bool,
    /// `--page-server ADDRESS:PORT`.
    pub page_server: Option<String>,
    /// `--status-fd`: written a zero byte when the lazy-pages server is ready.
    pub status_fd: Option<i32>,
    /// What `checkpoint` shares with `restore`.
    pub flags: CriuFlags,
}

/// Creates `dir` (mode 0700, as runc) unless it exists; returns it opened.
pub(crate) fn open_dir(dir: &Path, create: bool) -> Result<std::fs::File> {
    if create {
        match std::fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("create directory", dir)(e)),
        }
    }
    std::fs::File::open(dir).map_err(Error::io("open directory", dir))
}

/// The default image path, `./checkpoint` (runc's `getDefaultImagePath`).
pub(crate) fn image_dir(path: Option<&Path>) -> Result<PathBuf> {
    match path {
        Some(p) => Ok(p.to_path_buf()),
        None => Ok(std::env::current_dir()
            .map_err(Error::io("getcwd", "."))?
            .join("checkpoint")),
    }
}

/// The container's cgroup hierarchies as (name, fs type, host directory), and the directory
/// whose freezer stops it (v1 freezer, else the v2 cgroup: CRIU ≥ 3.14 freezes through
/// `cgroup.freeze`).
pub(crate) fn cgroup_facts(
    cgroup: &hako_cgroups::Cgroup,
) -> (Vec<(String, String, PathBuf)>, Option<PathBuf>) {
    let hs = cgroup.hierarchies();
    let freezer = hs
        .iter()
        .find(|h| h.fs_type == "cgroup" && h.options.split(',').any(|c| c == "freezer"))
        .or_else(|| {
            (cgroup.mode() == hako_cgroups::Mode::Unified)
                .then(|| hs.iter().find(|h| h.fs_type == "cgroup2"))
                .flatten()
        })
        .map(|h| h.dir.clone());
    let list = hs
        .into_iter()
        .map(|h| (h.name, h.fs_type.to_string(), h.dir))
        .collect();
    (list, freezer)
}

fn stdio_of(pid: i32) -> Vec<String> {
    (0..3)
        .map(|fd| {
            std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect()
}

fn check_status_fd(fd: i32) -> Result<()> {
    let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL).map_err(|_| {
        CriuError::InvalidFlag {
            flag: "--status-fd",
            value: fd.to_string(),
            reason: "not an open descriptor",
        }
    })?;
    if flags & (libc::O_WRONLY | libc::O_RDWR) == 0 {
        return Err(CriuError::InvalidFlag {
            flag: "--status-fd",
            value: fd.to_string(),
            reason: "not writable",
        }
        .into());
    }
    Ok(())
}

/// Gathers what CRIU must know about the running container.
fn facts(locked: &Locked, layout: &Layout, images: i32, work: i32) -> Result<DumpFacts> {
    let pid = locked.state.pid;
    let masked_files = layout
        .masked
        .iter()
        .filter(|p| {
            std::fs::metadata(format!("/proc/{pid}/root/{}", p.trim_start_matches('/')))
                .is_ok_and(|m| !m.is_dir())
        })
        .cloned()
        .collect();
    let (hierarchies, freeze_cgroup) = cgroup_facts(&locked.live_cgroup()?);
    let netns_inode = match &layout.netns_path {
        Some(p) => Some(
            std::fs::metadata(p)
                .map_err(Error::io("stat network namespace", p))?
                .ino(),
        ),
        None => None,
    };
    Ok(DumpFacts {
        pid,
        rootfs: locked.state.rootfs.clone(),
        images_fd: images,
        work_fd: work,
        masked_files,
        freeze_cgroup,
        netns_inode,
        cgroup_binds: layout.cgroup_binds(&hierarchies),
    })
}

/// Checkpoints the container.
pub fn checkpoint(store: &Store, opts: &CheckpointOptions) -> Result<()> {
    let locked = store.load(&opts.id)?;
    match locked.status()? {
        Status::Running | Status::Paused => {}
        status => return Err(CriuError::CannotCheckpoint { status }.into()),
    }
    let page_server = match &opts.page_server {
        Some(text) => Some(criu::parse_page_server(text).ok_or(CriuError::InvalidFlag {
            flag: "--page-server",
            value: text.clone(),
            reason: "use ADDRESS:PORT",
        })?),
        None => None,
    };
    if let (true, Some(fd)) = (opts.flags.lazy_pages, opts.status_fd) {
        check_status_fd(fd)?;
    }
    // Before anything is written (runc: checkCriuVersion(30000) first).
    criu::check_version(&opts.criu)?;
    if opts.flags.lazy_pages || opts.pre_dump {
        criu::check_features(&opts.criu, opts.flags.lazy_pages, opts.pre_dump)?;
    }
    let spec = crate::config::load_spec(&locked.state.bundle)?;
    let layout = Layout::from_spec(&spec);
    let image_path = image_dir(opts.image_path.as_deref())?;
    let images = open_dir(&image_path, true)?;
    let work_path = opts
        .work_path
        .clone()
        .unwrap_or_else(|| locked.dir().join("criu.work"));
    let work = open_dir(&work_path, true)?;
    let facts = facts(&locked, &layout, images.as_raw_fd(), work.as_raw_fd())?;
    let dump = DumpFlags {
        leave_running: opts.leave_running,
        pre_dump: opts.pre_dump,
        parent_path: opts.parent_path.clone(),
        page_server,
    };
    let rpc_opts = criu::dump_opts(&layout, &opts.flags, &dump, &facts);
    let mut swrk = Swrk::spawn(&opts.criu, &[], work_path.join("dump.log"))?;
    if !opts.pre_dump {
        let json = serde_json::to_vec(&stdio_of(facts.pid)).map_err(|source| Error::Encode {
            what: criu::DESCRIPTORS_FILE,
            source,
        })?;
        crate::state::write_atomic(&image_path.join(criu::DESCRIPTORS_FILE), &json, 0o600)?;
    }
    let kind = if opts.pre_dump {
        ReqType::PreDump
    } else {
        ReqType::Dump
    };
    let mut status_fd = opts.status_fd.filter(|_| opts.flags.lazy_pages);
    swrk.call(kind, &criu::request(kind, Some(&rpc_opts)), |n, _| {
        // CRIU ≥ 3.15 says "status-ready" when the lazy-pages server listens (runc writes a
        // zero byte to --status-fd then and closes it).
        if n.script == "status-ready" {
            if let Some(fd) = status_fd.take() {
                nix::unistd::write(
                    // SAFETY: the caller handed us this descriptor with --status-fd and
                    // check_status_fd saw it open; it is only borrowed for this write.
                    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
                    &[0],
                )
                .map_err(Error::sys("write(--status-fd)"))?;
                let _ = nix::unistd::close(fd);
            }
        }
        Ok(())
    })?;
    swrk.finish(kind, !opts.pre_dump)?;
    if !(opts.leave_running || opts.pre_dump) {
        delete::destroy(locked)?;
    }
    Ok(())
}
