//! `hako-conformance`: an OCI runtime-spec conformance suite that drives any runtime binary
//! (hako, runc, crun) through the standard CLI only and checks from inside real containers.
//!
//! `hako-conformance --runtime PATH [--root DIR] [--filter PATTERN] [--tap] [--table FILE]
//! [--markdown FILE] [--self-test] [--rootless [--rootless-user NAME]]` runs the cases; the
//! hidden `hako-conformance check GROUP...` is the in-container checker (see [`check`]), the
//! hidden `hako-conformance mutant ...` the broken runtime of the self-test (see [`mutation`])
//! and the hidden `hako-conformance rootless-probe ...` what a rootless run measures as its
//! user (see [`rootless`]). Exit status: 0 when no
//! case failed (and, with `--self-test`, no mutant survived), 1 otherwise, 2 on a harness
//! error.

mod bundle;
mod caps;
mod case;
mod cases;
mod check;
mod config;
mod ctx;
mod host;
mod markdown;
mod mutation;
mod report;
mod rlimits;
mod rootfs;
mod rootless;
mod runtime;
mod selftest;
mod sys;
mod systemd;

use anyhow::{bail, Context, Result};
use clap::Parser;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::ExitCode;

/// OCI runtime conformance suite: runs every case against the runtime at `--runtime`.
#[derive(Parser)]
#[command(name = "hako-conformance", version)]
struct Args {
    /// The runtime binary (or wrapper script) to test.
    #[arg(long)]
    runtime: Option<PathBuf>,
    /// The runtime's `--root` (default: a fresh directory removed afterwards).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Only cases whose `section/name` contains one of these comma-separated substrings.
    #[arg(long)]
    filter: Option<String>,
    /// TAP output.
    #[arg(long)]
    tap: bool,
    /// Also write the per-section markdown table to this file.
    #[arg(long)]
    table: Option<PathBuf>,
    /// Also write the results between the markers of this markdown file (repeatable).
    #[arg(long)]
    markdown: Vec<PathBuf>,
    /// Run every case plainly (it must pass) and then against its mutant (it must fail).
    #[arg(long)]
    self_test: bool,
    /// List the cases and exit.
    #[arg(long)]
    list: bool,
    /// Run the runtime as an unprivileged user with subordinate ids (made for the run and
    /// removed afterwards, unless --rootless-user names one), with rootless configs.
    #[arg(long)]
    rootless: bool,
    /// With --rootless: this existing user (its /etc/subuid and /etc/subgid ranges are mapped).
    #[arg(long, requires = "rootless")]
    rootless_user: Option<String>,
    /// A global flag to pass to the runtime before every verb (repeatable).
    #[arg(long = "runtime-arg", allow_hyphen_values = true)]
    runtime_args: Vec<String>,
    /// Drive the runtime's systemd cgroup driver: pass it `--systemd-cgroup` and give each case
    /// a `slice:prefix:name` cgroupsPath (on a host with systemd as PID 1).
    #[arg(long)]
    systemd_cgroup: bool,
}

fn selected(args: &Args) -> Vec<case::Case> {
    let pats: Vec<String> = args
        .filter
        .as_deref()
        .map(|f| f.split(',').map(String::from).collect())
        .unwrap_or_default();
    cases::all()
        .into_iter()
        .filter(|c| pats.is_empty() || pats.iter().any(|p| c.full_name().contains(p.as_str())))
        .collect()
}

fn run(args: Args) -> Result<bool> {
    let cases = selected(&args);
    if args.list {
        for c in &cases {
            println!("{}", c.full_name());
        }
        return Ok(true);
    }
    let Some(path) = args.runtime.clone() else {
        bail!("--runtime PATH is required");
    };
    let work = tempfile::Builder::new()
        .prefix("hako-conf-")
        .tempdir()
        .context("make the work directory")?;
    // Containers with a user namespace look up their rootfs as an unprivileged host uid.
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755))?;
    let root = match &args.root {
        Some(r) => r.clone(),
        None => work.path().join("state"),
    };
    std::fs::create_dir_all(&root)?;
    let mut global = args.runtime_args.clone();
    if args.systemd_cgroup && !global.iter().any(|a| a == systemd::FLAG) {
        global.push(systemd::FLAG.into());
    }
    let rt = runtime::Runtime::detect(&path, root)?.with_global_args(global);
    let template = rootfs::Template::build(&work.path().join("template"))?;
    let bundles = work.path().join("bundles");
    std::fs::create_dir(&bundles)?;
    let host = host::Host::probe();
    let (ctx, user) = if args.rootless {
        rootless_ctx(&args, work.path(), rt, host, template, bundles)?
    } else {
        (ctx::Ctx::new(rt, host, template, bundles), None)
    };
    let label = match &user {
        Some(name) => format!(
            "{} ({}), rootless as {name}",
            path.display(),
            ctx.rt.version
        ),
        None => format!("{} ({})", path.display(), ctx.rt.version),
    };
    let mut report = report::Report::new(args.tap, cases.len(), &label);
    let started = std::time::Instant::now();
    let tally = if args.self_test {
        let exe = std::env::current_exe().context("locate this binary")?;
        let wrapper = mutant_wrapper(work.path(), &exe, &path)?;
        let mutant = runtime::Runtime::detect(&wrapper, ctx.rt.root.clone())?
            .with_global_args(ctx.rt.global_args.clone());
        let spec = work.path().join("mutant.spec");
        // Rootless, the mutant (root, to misbehave as root can) runs the runtime as the user
        // and reverts to a base config shaped as the cases' are.
        if let Some(r) = &ctx.rootless {
            r.write_mutant_shape(&spec)?;
        }
        let mutant = ctx.with_runtime(mutant);
        Some(selftest::run(&ctx, &mutant, &spec, &cases, &mut report)?)
    } else {
        for c in &cases {
            let outcome = selftest::outcome(&ctx, c);
            report.record(c.section, &c.name, &outcome, c.note_for(ctx.rt.kind));
        }
        None
    };
    report.finish();
    if let Some(t) = &tally {
        t.finish();
    }
    eprintln!("took {:.0?}", started.elapsed());
    if let Some(t) = &args.table {
        let text = format!("Results for `{label}`\n\n{}", report.table());
        std::fs::write(t, text).with_context(|| format!("write {}", t.display()))?;
    }
    let col = markdown::Column {
        name: match &user {
            // Its own column: a rootless run never replaces the privileged one's.
            Some(_) => format!(
                "{} rootless",
                markdown::column_name(ctx.rt.kind, &ctx.rt.version)
            ),
            None => markdown::column_name(ctx.rt.kind, &ctx.rt.version),
        },
        sections: report.sections(),
        not_passed: &report.not_passed,
    };
    for f in &args.markdown {
        markdown::update(f, &col)?;
    }
    let survived = tally.as_ref().map_or(0, |t| t.survived.len());
    Ok(report.totals()[1] == 0 && survived == 0)
}

/// The context of a `--rootless` run: the user (made or given) runs the runtime, owns the
/// state directory and the bundles; and the user's name for the report.
fn rootless_ctx(
    args: &Args,
    work: &std::path::Path,
    rt: runtime::Runtime,
    host: host::Host,
    template: rootfs::Template,
    bundles: PathBuf,
) -> Result<(ctx::Ctx, Option<String>)> {
    let cgroup_dir = if host.unified {
        PathBuf::from("/sys/fs/cgroup")
    } else {
        let ctrl = ["memory", "pids", "cpu"]
            .into_iter()
            .find(|c| host.has_controller(c))
            .or_else(|| host.controllers.first().map(String::as_str))
            .unwrap_or("memory");
        PathBuf::from("/sys/fs/cgroup").join(ctrl)
    };
    let r = rootless::Rootless::setup(
        args.rootless_user.as_deref(),
        work,
        &rt.root,
        &template.checker(),
        &cgroup_dir,
    )?;
    let name = r.user.id.name.clone();
    let rt = rt.run_as(r.user.id.clone());
    Ok((
        ctx::Ctx::new(rt, host, template, bundles).with_rootless(r),
        Some(name),
    ))
}

/// The mutant runtime: a script that hands every call to `exe`'s (this binary's) `mutant` mode
/// in front of `real`; the case to mutate is read from `DIR/mutant.spec`.
fn mutant_wrapper(
    dir: &std::path::Path,
    exe: &std::path::Path,
    real: &std::path::Path,
) -> Result<PathBuf> {
    let real = std::fs::canonicalize(real).unwrap_or_else(|_| real.to_path_buf());
    let path = dir.join("mutant-runtime");
    let q = |p: &std::path::Path| format!("'{}'", p.display().to_string().replace('\'', "'\\''"));
    let script = format!(
        "#!/bin/sh\nexec {} mutant --spec {} --runtime {} -- \"$@\"\n",
        q(exe),
        q(&dir.join("mutant.spec")),
        q(&real)
    );
    std::fs::write(&path, script)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).is_some_and(|a| a == "check") {
        return ExitCode::from(u8::try_from(check::main(&argv[2..])).unwrap_or(1));
    }
    if argv.get(1).is_some_and(|a| a == "rootless-probe") {
        return ExitCode::from(u8::try_from(rootless::probe_main(&argv[2..])).unwrap_or(1));
    }
    if argv.get(1).is_some_and(|a| a == "mutant") {
        return ExitCode::from(u8::try_from(mutation::main(&argv[2..])).unwrap_or(1));
    }
    match run(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("hako-conformance: {e:#}");
            ExitCode::from(2)
        }
    }
}
