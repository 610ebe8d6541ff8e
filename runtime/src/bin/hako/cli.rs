//! runc's command line, flag for flag (argument structs only; `main.rs` dispatches).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// hako: an OCI container runtime (runc-compatible CLI).
#[derive(Debug, Parser)]
#[command(name = "hako", disable_version_flag = true)]
pub struct Cli {
    /// Enable debug logging.
    #[arg(long)]
    pub debug: bool,
    /// Set the log file to write hako logs to (default is stderr).
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Set the log format ('text' (default), or 'json').
    #[arg(long = "log-format", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// Root directory for storage of container state (this should be located in tmpfs).
    /// Default: /run/hako, or $XDG_RUNTIME_DIR/hako for a user other than root.
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Path to the criu binary used for checkpoint and restore.
    #[arg(long, default_value = "criu")]
    pub criu: PathBuf,
    /// Use the systemd cgroup driver: cgroupsPath is "slice:prefix:name", a transient unit.
    #[arg(long = "systemd-cgroup")]
    pub systemd_cgroup: bool,
    /// Rootless: no cgroup where the user may make none ('true', 'false', or 'auto': when not root).
    #[arg(long, default_value = "auto", value_parser = ["true", "false", "auto"])]
    pub rootless: String,
    /// Print the version.
    #[arg(short = 'v', long)]
    pub version: bool,
    /// The verb.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The verbs.
///
/// `defer`: clap builds a verb's arguments only when that verb is the one invoked. Otherwise every
/// run builds all 17 verbs' argument definitions, ~70 KiB of heap that stays in each command's
/// peak RSS and that the container's init inherits at clone(2). Deferred, the argument structs'
/// own doc comments would be applied after the variant's and replace the verb's help text, so
/// they are plain `//` comments.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Create a container.
    Create(CreateArgs),
    /// Execute the user-defined process in a created container.
    Start(IdArg),
    /// Output the state of a container.
    State(IdArg),
    /// Send a signal to the container's init process.
    Kill(KillArgs),
    /// Delete any resources held by the container.
    Delete(DeleteArgs),
    /// Create and run a container.
    Run(RunArgs),
    /// Execute new process inside the container.
    Exec(ExecArgs),
    /// List containers started by hako with the given root.
    List(ListArgs),
    /// Display the processes running inside a container.
    Ps(PsArgs),
    /// Pause all processes inside the container.
    Pause(IdArg),
    /// Resume all processes that have been previously paused.
    Resume(IdArg),
    /// Update container resource constraints.
    Update(UpdateArgs),
    /// Display container events such as OOM notifications, cpu, memory, and IO usage statistics.
    Events(EventsArgs),
    /// Create a new specification file.
    Spec(SpecArgs),
    /// Show the enabled features.
    Features,
    /// Print (or with --write, install) the configuration that registers hako with an engine.
    Setup(SetupArgs),
    /// Checkpoint a running container (with CRIU).
    Checkpoint(crate::criu_cli::CheckpointArgs),
    /// Restore a container from a previous checkpoint (with CRIU).
    Restore(crate::criu_cli::RestoreArgs),
}

// Just a container id.
#[derive(Debug, Args)]
pub struct IdArg {
    /// The container id.
    pub id: String,
}

// `create` flags, shared with `run`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Path to the root of the bundle directory.
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// Path to an AF_UNIX socket which will receive the pty master.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Specify the file to write the process id to.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Do not use pivot root to jail process inside rootfs.
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Do not create a new session keyring for the container.
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass N additional file descriptors to the container (stdio + $LISTEN_FDS + N in total).
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// The container id.
    pub id: String,
}

// `run` flags.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Detach from the container's process.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Do not delete the container after it exits.
    #[arg(long)]
    pub keep: bool,
    /// Accepted for compatibility: hako never becomes a subreaper.
    #[arg(long = "no-subreaper")]
    pub no_subreaper: bool,
    /// Everything `create` takes.
    #[command(flatten)]
    pub create: CreateArgs,
}

// `kill` arguments.
#[derive(Debug, Args)]
pub struct KillArgs {
    /// Send the signal to all processes in the container.
    #[arg(short = 'a', long)]
    pub all: bool,
    /// The container id.
    pub id: String,
    /// The signal, by number or name (default SIGTERM).
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}

// `delete` arguments.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Forcibly delete the container if it is still running (uses SIGKILL).
    #[arg(short = 'f', long)]
    pub force: bool,
    /// The container id.
    pub id: String,
}

// `exec` flags.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Current working directory in the container.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Set environment variables.
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Allocate a pseudo-TTY.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// UID (format: <uid>[:<gid>]).
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Additional gids.
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// Path to the process.json.
    #[arg(short = 'p', long)]
    pub process: Option<PathBuf>,
    /// Detach from the container's process.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Specify the file to write the process id to.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Set the SELinux label for the process (refused if the host has no SELinux).
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    /// Set the AppArmor profile for the process (refused if the host has no AppArmor).
    #[arg(long)]
    pub apparmor: Option<String>,
    /// Set no new privileges value for the process.
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// Add a capability to the bounding set for the process.
    #[arg(short = 'c', long = "cap")]
    pub cap: Vec<String>,
    /// Path to an AF_UNIX socket which will receive the pty master.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Pass N additional file descriptors to the process.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Allow exec in a paused container (not supported).
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    /// Run the process in a sub-cgroup (not supported).
    #[arg(long)]
    pub cgroup: Vec<String>,
    /// The container id.
    pub id: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

// `list` flags.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Select one of: table or json.
    #[arg(short = 'f', long, default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
    /// Display only container IDs.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

// `ps` arguments.
#[derive(Debug, Args)]
pub struct PsArgs {
    /// Select one of: table or json.
    #[arg(short = 'f', long, default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
    /// The container id.
    pub id: String,
    /// Options passed to ps(1).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

// `update` flags.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Path to a file containing the resources to update, or '-' to read from stdin.
    #[arg(short = 'r', long)]
    pub resources: Option<PathBuf>,
    /// Specifies per cgroup weight, range is from 10 to 1000.
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// CPU CFS period to be used for hardcapping (in usecs).
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    /// CPU CFS hardcap limit (in usecs).
    #[arg(long = "cpu-quota")]
    pub cpu_quota: Option<i64>,
    /// CPU shares (relative weight vs. other containers).
    #[arg(long = "cpu-share")]
    pub cpu_share: Option<u64>,
    /// CPU realtime period to be used for hardcapping (in usecs).
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    /// CPU realtime hardcap limit (in usecs).
    #[arg(long = "cpu-rt-runtime")]
    pub cpu_rt_runtime: Option<i64>,
    /// CPU(s) to use.
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Memory node(s) to use.
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Memory limit (in bytes).
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Memory reservation or soft_limit (in bytes).
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
    /// Total memory usage (memory + swap); set '-1' to enable unlimited swap.
    #[arg(long = "memory-swap")]
    pub memory_swap: Option<String>,
    /// Maximum number of pids allowed in the container.
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    /// The container id.
    pub id: String,
}

// `events` flags.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Set the stats collection interval.
    #[arg(long, default_value = "5s")]
    pub interval: String,
    /// Display the container's stats then exit.
    #[arg(long)]
    pub stats: bool,
    /// The container id.
    pub id: String,
}

// `spec` flags.
#[derive(Debug, Args)]
pub struct SpecArgs {
    /// Path to the root of the bundle directory.
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// Generate a configuration for a rootless container.
    #[arg(long)]
    pub rootless: bool,
}

// `setup` arguments.
#[derive(Debug, Args)]
pub struct SetupArgs {
    /// The engine: podman, docker, containerd, or kubernetes (the RuntimeClass for containerd's
    /// handler).
    #[arg(value_parser = ["podman", "docker", "containerd", "kubernetes"])]
    pub engine: String,
    /// Merge the snippet into the engine's configuration file, keeping a backup of it.
    #[arg(long)]
    pub write: bool,
    /// The engine's configuration file (default: /etc/containers/containers.conf,
    /// /etc/docker/daemon.json, /etc/containerd/config.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The hako binary the engine runs (default: this one).
    #[arg(long)]
    pub binary: Option<PathBuf>,
    /// The name the engine knows hako by.
    #[arg(long, default_value = "hako")]
    pub name: String,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// With deferred verbs, a doc comment on an argument struct would replace the verb's text.
    #[test]
    fn deferred_verbs_keep_their_help_text() {
        let mut cli = super::Cli::command();
        cli.build();
        for (verb, about) in [
            ("create", "Create a container"),
            (
                "start",
                "Execute the user-defined process in a created container",
            ),
            ("run", "Create and run a container"),
            ("exec", "Execute new process inside the container"),
        ] {
            let sub = cli.find_subcommand(verb).expect("verb exists");
            assert_eq!(
                sub.get_about().map(ToString::to_string).as_deref(),
                Some(about),
                "{verb}"
            );
            assert!(sub.get_arguments().any(|a| a.get_id() == "id"), "{verb}");
        }
    }
}
