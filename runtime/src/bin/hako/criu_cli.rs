//! `checkpoint` and `restore`: runc's flags, and their conversion into the library's options.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use crate::cli::Cli;
use hako::verb::{self, create::CreateOptions};

// The CRIU flags `checkpoint` and `restore` share (runc's names).
#[derive(Debug, Args)]
pub struct CriuArgs {
    /// Path for saving criu image files (default: ./checkpoint).
    #[arg(long = "image-path")]
    pub image_path: Option<PathBuf>,
    /// Path for saving work files and logs.
    #[arg(long = "work-path")]
    pub work_path: Option<PathBuf>,
    /// Allow open tcp connections.
    #[arg(long = "tcp-established")]
    pub tcp_established: bool,
    /// Allow external unix sockets.
    #[arg(long = "ext-unix-sk")]
    pub ext_unix_sk: bool,
    /// Allow shell jobs.
    #[arg(long = "shell-job")]
    pub shell_job: bool,
    /// Handle file locks, for safety.
    #[arg(long = "file-locks")]
    pub file_locks: bool,
    /// Use lazy migration mechanism.
    #[arg(long = "lazy-pages")]
    pub lazy_pages: bool,
    /// Cgroups mode: 'soft' (default), 'full', 'strict' or 'ignore'.
    #[arg(long = "manage-cgroups-mode")]
    pub manage_cgroups_mode: Option<String>,
    /// Create a namespace, but don't restore its properties (repeatable: --empty-ns network).
    #[arg(long = "empty-ns")]
    pub empty_ns: Vec<String>,
    /// Enable auto deduplication of memory images.
    #[arg(long = "auto-dedup")]
    pub auto_dedup: bool,
}

// `checkpoint` flags (runc's).
#[derive(Debug, Args)]
pub struct CheckpointArgs {
    /// Flags shared with restore.
    #[command(flatten)]
    pub criu: CriuArgs,
    /// Path for previous criu image files in pre-dump.
    #[arg(long = "parent-path")]
    pub parent_path: Option<String>,
    /// Leave the process running after checkpointing.
    #[arg(long = "leave-running")]
    pub leave_running: bool,
    /// Criu writes \0 to this FD once lazy-pages is ready.
    #[arg(long = "status-fd", default_value_t = -1, allow_negative_numbers = true)]
    pub status_fd: i32,
    /// ADDRESS:PORT of the page server.
    #[arg(long = "page-server")]
    pub page_server: Option<String>,
    /// Dump container's memory information only, leave the container running after this.
    #[arg(long = "pre-dump")]
    pub pre_dump: bool,
    /// The container id.
    pub id: String,
}

// `restore` flags (runc's).
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Flags shared with checkpoint.
    #[command(flatten)]
    pub criu: CriuArgs,
    /// Path to the root of the bundle directory.
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// Path to an AF_UNIX socket which will receive the pty master.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Detach from the container's process.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Specify the file to write the process id to.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Disable the use of the subreaper used to reap reparented processes.
    #[arg(long = "no-subreaper")]
    pub no_subreaper: bool,
    /// Do not use pivot root to jail process inside rootfs.
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// The container id.
    pub id: String,
}

/// The flags `checkpoint` and `restore` share, checked as runc checks them.
fn criu_flags(a: &CriuArgs) -> Result<hako::criu::CriuFlags> {
    let manage_cgroups_mode = match a.manage_cgroups_mode.as_deref() {
        None | Some("") => None,
        Some(m) => Some(
            hako::criu::CgMode::parse(m)
                .with_context(|| format!("Invalid manage cgroups mode {m:?}"))?,
        ),
    };
    let empty_ns = hako::criu::empty_ns_mask(&a.empty_ns)
        .map_err(|ns| anyhow::anyhow!("namespace {ns:?} is not supported"))?;
    Ok(hako::criu::CriuFlags {
        tcp_established: a.tcp_established,
        ext_unix_sk: a.ext_unix_sk,
        shell_job: a.shell_job,
        file_locks: a.file_locks,
        manage_cgroups_mode,
        empty_ns,
        auto_dedup: a.auto_dedup,
        lazy_pages: a.lazy_pages,
    })
}

pub fn checkpoint_options(
    cli: &Cli,
    a: &CheckpointArgs,
) -> Result<verb::checkpoint::CheckpointOptions> {
    Ok(verb::checkpoint::CheckpointOptions {
        id: a.id.clone(),
        criu: cli.criu.clone(),
        image_path: a.criu.image_path.clone(),
        work_path: a.criu.work_path.clone(),
        parent_path: a.parent_path.clone(),
        leave_running: a.leave_running,
        pre_dump: a.pre_dump,
        page_server: a.page_server.clone(),
        status_fd: (a.status_fd >= 0).then_some(a.status_fd),
        flags: criu_flags(&a.criu)?,
    })
}

pub fn restore_options(cli: &Cli, a: &RestoreArgs) -> Result<verb::restore::RestoreOptions> {
    Ok(verb::restore::RestoreOptions {
        create: CreateOptions {
            id: a.id.clone(),
            bundle: a.bundle.clone(),
            console_socket: a.console_socket.clone(),
            pid_file: a.pid_file.clone(),
            no_pivot: a.no_pivot,
            no_new_keyring: false,
            preserve_fds: 0,
            systemd_cgroup: cli.systemd_cgroup,
            rootless: hako::rootless::detect(&cli.rootless)?,
        },
        criu: cli.criu.clone(),
        image_path: a.criu.image_path.clone(),
        work_path: a.criu.work_path.clone(),
        detach: a.detach,
        no_subreaper: a.no_subreaper,
        flags: criu_flags(&a.criu)?,
    })
}
