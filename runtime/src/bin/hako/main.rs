//! The `hako` binary: runc's command line over the `hako` library. It parses arguments, calls one
//! verb, and on failure prints the error chain (stderr, and the `--log` file as runc-style
//! lines) and exits 1.

mod cli;
mod criu_cli;
mod hot_argv;

use std::io::Write;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;

use cli::{Cli, Command};
use hako::state::Store;
use hako::verb::{self, create::CreateOptions};

fn create_options(a: &cli::CreateArgs, cli: &Cli) -> Result<CreateOptions> {
    Ok(CreateOptions {
        id: a.id.clone(),
        bundle: a.bundle.clone(),
        console_socket: a.console_socket.clone(),
        pid_file: a.pid_file.clone(),
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        preserve_fds: a.preserve_fds,
        systemd_cgroup: cli.systemd_cgroup,
        rootless: hako::rootless::detect(&cli.rootless)?,
    })
}

/// Parses Go-style durations as `events --interval` takes them (`5s`, `500ms`, `1m`).
fn parse_duration(text: &str) -> Result<Duration> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: f64 = num
        .parse()
        .with_context(|| format!("invalid duration {text:?}"))?;
    let secs = match unit {
        "ns" => n / 1e9,
        "us" | "µs" => n / 1e6,
        "ms" => n / 1e3,
        "s" | "" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("invalid duration {text:?}"),
    };
    if secs <= 0.0 {
        bail!("duration must be greater than 0");
    }
    Ok(Duration::from_secs_f64(secs))
}

fn print_json(value: &impl serde::Serialize, pretty: bool) -> Result<()> {
    let text = if pretty {
        serde_json::to_string_pretty(value)?
    } else {
        serde_json::to_string(value)?
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    Ok(())
}

fn dispatch(cli: &Cli, command: &Command) -> Result<i32> {
    let root = cli
        .root
        .clone()
        .unwrap_or_else(hako::rootless::default_root);
    let store = Store::new(root);
    match command {
        Command::Create(a) => {
            verb::create::create(&store, &create_options(a, cli)?)?;
        }
        Command::Start(a) => verb::start::start(&store, &a.id)?,
        Command::State(a) => {
            let text = verb::query::state(&store, &a.id)?;
            println!("{text}");
        }
        Command::Kill(a) => {
            verb::kill::kill(&store, &a.id, hako::signal::parse(&a.signal)?, a.all)?
        }
        Command::Delete(a) => verb::delete::delete(&store, &a.id, a.force)?,
        Command::Run(a) => {
            let opts = verb::run::RunOptions {
                create: create_options(&a.create, cli)?,
                detach: a.detach,
                keep: a.keep,
            };
            return Ok(verb::run::run(&store, &opts)?);
        }
        Command::Exec(a) => {
            if a.ignore_paused {
                bail!("exec --ignore-paused is not supported by hako yet");
            }
            if !a.cgroup.is_empty() {
                bail!("exec --cgroup is not supported by hako yet");
            }
            let opts = verb::exec::ExecOptions {
                id: a.id.clone(),
                process: a.process.clone(),
                args: a.command.clone(),
                tty: a.tty,
                detach: a.detach,
                env: a.env.clone(),
                cwd: a.cwd.clone(),
                user: a.user.clone(),
                caps: a.cap.clone(),
                additional_gids: a.additional_gids.clone(),
                no_new_privs: a.no_new_privs,
                pid_file: a.pid_file.clone(),
                console_socket: a.console_socket.clone(),
                preserve_fds: a.preserve_fds,
                apparmor: a.apparmor.clone(),
                process_label: a.process_label.clone(),
            };
            return Ok(verb::exec::exec(&store, &opts)?);
        }
        Command::List(a) => {
            // One write(2) per buffer, not one per line (stdout is line-buffered).
            let mut out = std::io::BufWriter::with_capacity(16 * 1024, std::io::stdout().lock());
            if a.quiet {
                verb::query::list_quiet(&store, &mut out)?;
            } else if a.format == "json" {
                verb::query::list_json(&store, &mut out)?;
            } else {
                verb::query::list_table(&store, &mut out)?;
            }
            out.flush()?;
        }
        Command::Ps(a) => {
            let pids = verb::query::pids(&store, &a.id)?;
            if a.format == "json" {
                print_json(&pids, false)?;
            } else {
                ps_table(&pids, &a.ps_args)?;
            }
        }
        Command::Pause(a) => verb::freeze::pause(&store, &a.id)?,
        Command::Resume(a) => verb::freeze::resume(&store, &a.id)?,
        Command::Update(a) => {
            let flags = verb::update::UpdateFlags {
                memory: a.memory.clone(),
                memory_swap: a.memory_swap.clone(),
                memory_reservation: a.memory_reservation.clone(),
                cpu_shares: a.cpu_share,
                cpu_quota: a.cpu_quota,
                cpu_period: a.cpu_period,
                cpu_rt_runtime: a.cpu_rt_runtime,
                cpu_rt_period: a.cpu_rt_period,
                cpuset_cpus: a.cpuset_cpus.clone(),
                cpuset_mems: a.cpuset_mems.clone(),
                pids_limit: a.pids_limit,
                blkio_weight: a.blkio_weight,
            };
            verb::update::update(&store, &a.id, a.resources.as_deref(), &flags)?;
        }
        Command::Events(a) => {
            let interval = parse_duration(&a.interval)?;
            verb::events::events(&store, &a.id, a.stats, interval, &mut std::io::stdout())?;
        }
        Command::Spec(a) => {
            let path = a.bundle.join("config.json");
            if path.exists() {
                bail!("File {} exists. Remove it first", path.display());
            }
            let text = serde_json::to_string_pretty(&verb::spec::template(a.rootless))?;
            std::fs::write(&path, text + "\n")
                .with_context(|| format!("write {}", path.display()))?;
        }
        Command::Features => print_json(&verb::features::features(&cli.criu), true)?,
        Command::Setup(a) => setup(a, cli.systemd_cgroup)?,
        Command::Checkpoint(a) => {
            verb::checkpoint::checkpoint(&store, &criu_cli::checkpoint_options(cli, a)?)?
        }
        Command::Restore(a) => {
            return Ok(verb::restore::restore(
                &store,
                &criu_cli::restore_options(cli, a)?,
            )?)
        }
    }
    Ok(0)
}

/// `setup ENGINE [--write]`: the snippet on stdout, or merged into the engine's file; the
/// global `--systemd-cgroup` puts the engine on the systemd cgroup driver.
fn setup(a: &cli::SetupArgs, systemd_cgroup: bool) -> Result<()> {
    use verb::setup::{self, Engine, Registration, Written};
    let engine = Engine::from_name(&a.engine).context("unknown engine")?;
    let binary = match &a.binary {
        Some(b) => b.clone(),
        None => std::env::current_exe().context("the path of this hako binary")?,
    };
    let reg = Registration::new(&a.name, binary)?.systemd_cgroup(systemd_cgroup);
    let path = a.config.as_deref().or(engine.default_config());
    if !a.write {
        // Only containerd's snippet depends on the file (its config version).
        let existing = match path.filter(|_| engine == Engine::Containerd) {
            Some(p) => setup::read_existing(p)?,
            None => String::new(),
        };
        print!("{}", setup::snippet(engine, &reg, &existing));
        return Ok(());
    }
    let path = path
        .context("kubernetes has no file to write: `hako setup kubernetes | kubectl apply -f -`")?;
    match setup::write(engine, &reg, path)? {
        Written::Unchanged => println!("{}: already registers {}", path.display(), reg.name),
        Written::Created => println!("{}: created, registering {}", path.display(), reg.name),
        Written::Changed { backup } => println!(
            "{}: registers {} now (the file as it was: {})",
            path.display(),
            reg.name,
            backup.display()
        ),
    }
    println!("{}", engine.after_write().replace("NAME", &reg.name));
    Ok(())
}

/// `ps ID [ps-args]`: runs ps(1) and keeps the header and the container's processes, as runc does.
fn ps_table(pids: &[i32], args: &[String]) -> Result<()> {
    let args: Vec<String> = if args.is_empty() {
        vec!["-ef".into()]
    } else {
        args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("run ps")?;
    if !out.status.success() {
        bail!("ps: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let pid_col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .context("no PID column in ps output")?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{header}")?;
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(pid_col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            writeln!(stdout, "{line}")?;
        }
    }
    Ok(())
}

/// `--version`, line for line as runc prints it (`runc version`, `commit:`, `spec:`, then how it
/// was built: runc names its Go and libseccomp, hako its seccomp compiler). The commit is what
/// `HAKO_COMMIT` held at build time (scripts/build-release.sh sets it from git), as runc's
/// Makefile passes its commit to `go build`.
fn print_version() {
    println!("hako version {}", env!("CARGO_PKG_VERSION"));
    println!(
        "commit: {}",
        option_env!("HAKO_COMMIT").unwrap_or("unknown")
    );
    println!("spec: {}", hako::state::OCI_VERSION);
    println!("seccomp: built-in compiler (no libseccomp)");
}

fn main() -> ExitCode {
    // The hot verbs' usual command lines skip clap's command tree (hot_argv.rs says why).
    let cli = hot_argv::parse(std::env::args_os().skip(1)).unwrap_or_else(Cli::parse);
    hako::log::init(hako::log::LogConfig {
        path: cli.log.clone(),
        json: cli.log_format == "json",
        debug: cli.debug,
    });
    if cli.version {
        print_version();
        return ExitCode::SUCCESS;
    }
    let Some(command) = &cli.command else {
        eprintln!("hako: no command given; see `hako --help`");
        return ExitCode::from(1);
    };
    if hako::log::debug_enabled() {
        hako::log::debug(&format!(
            "command: {:?}",
            std::env::args().collect::<Vec<_>>()
        ));
    }
    match dispatch(&cli, command) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(err) => {
            let chain: Vec<String> = err.chain().map(|e| e.to_string()).collect();
            hako::log::line("error", &chain.join(": "));
            if cli.log.is_some() {
                // runc prints the error to stderr as well as to the log file.
                eprintln!("{}", chain.join(": "));
            }
            ExitCode::from(1)
        }
    }
}
