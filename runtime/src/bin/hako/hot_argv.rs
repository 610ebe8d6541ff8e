//! The command lines engines send on every container's lifecycle, parsed without clap.
//!
//! Building clap's command tree costs every run about 0.1 ms of CPU and 30 page faults (program
//! text, and musl's mallocng mapping fresh zeroed pages as the tree's vectors grow): measured,
//! `hako --version` went from 0.27 to 0.16 ms of CPU and 60 to 30 faults without it, and a
//! lifecycle pays it three times (bench/README.md, "Page faults" and "Session 5"). The verbs containerd, docker,
//! CRI and podman send per container (`../shared/reference/clients/ARGV-SUMMARY.txt`) are few
//! and simple, so this module recognises exactly those shapes and fills the same [`Cli`] that
//! clap would.
//!
//! It accepts a subset of what clap accepts and answers `None` for anything else (an unknown
//! flag, `--help`, a repeated flag, `--`, combined short flags, an empty value or one starting
//! with `-`, a missing or extra operand, a word that is not UTF-8): `main` then hands the command
//! line to clap, which parses it or reports the error exactly as before. So a command line is
//! never refused here, and the tests check on generated command lines that whatever this
//! accepts, clap parses to the same `Cli`.

use std::path::PathBuf;

use crate::cli::{Cli, Command, CreateArgs, DeleteArgs, ExecArgs, IdArg, KillArgs, ListArgs};

/// One word of the command line as clap splits it, for the shapes this parser takes.
enum Word<'a> {
    /// `--name` or `--name=value`.
    Long(&'a str, Option<&'a str>),
    /// `-x`, alone.
    Short(char),
    /// Anything not starting with `-`.
    Operand(&'a str),
}

impl<'a> Word<'a> {
    /// `None` for what this parser leaves to clap: `--`, `-`, `-abc` (combined shorts or an
    /// attached value).
    fn of(word: &'a str) -> Option<Self> {
        if let Some(long) = word.strip_prefix("--") {
            if long.is_empty() {
                return None;
            }
            return Some(match long.split_once('=') {
                Some((name, value)) => Word::Long(name, Some(value)),
                None => Word::Long(long, None),
            });
        }
        if let Some(short) = word.strip_prefix('-') {
            let mut chars = short.chars();
            return match (chars.next(), chars.next()) {
                (Some(c), None) => Some(Word::Short(c)),
                _ => None,
            };
        }
        Some(Word::Operand(word))
    }
}

/// The words after the program name, with a cursor.
struct Words<'a> {
    words: &'a [String],
    next: usize,
}

impl<'a> Words<'a> {
    fn next(&mut self) -> Option<&'a str> {
        let word = self.words.get(self.next)?;
        self.next += 1;
        Some(word)
    }

    /// The rest of the words, consumed.
    fn rest(&mut self) -> &'a [String] {
        let rest = &self.words[self.next..];
        self.next = self.words.len();
        rest
    }

    /// A flag's value: inline after `=`, or the next word. Empty values and values that look
    /// like flags are left to clap, whose rules for them are subtler than this parser needs.
    fn value(&mut self, inline: Option<&'a str>) -> Option<&'a str> {
        let value = match inline {
            Some(v) => v,
            None => self.next()?,
        };
        (!value.is_empty() && !value.starts_with('-')).then_some(value)
    }
}

/// Sets a flag that may be given once; a repeat is left to clap.
fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value);
    Some(())
}

/// Sets a boolean flag, which takes no value and may be given once.
fn switch(slot: &mut bool, inline: Option<&str>) -> Option<()> {
    if *slot || inline.is_some() {
        return None;
    }
    *slot = true;
    Some(())
}

/// The command line after the program name, or `None` to let clap parse it.
pub fn parse(args: impl IntoIterator<Item = std::ffi::OsString>) -> Option<Cli> {
    let words = args
        .into_iter()
        .map(|a| a.into_string().ok())
        .collect::<Option<Vec<String>>>()?;
    let mut words = Words {
        words: &words,
        next: 0,
    };
    let mut cli = Cli {
        debug: false,
        log: None,
        log_format: "text".into(),
        root: None,
        criu: "criu".into(),
        systemd_cgroup: false,
        rootless: "auto".into(),
        version: false,
        command: None,
    };
    let (mut log_format, mut criu, mut rootless) = (None, None, None);
    let verb = loop {
        let Some(word) = words.next() else {
            break None;
        };
        match Word::of(word)? {
            Word::Operand(verb) => break Some(verb),
            Word::Long("debug", inline) => switch(&mut cli.debug, inline)?,
            Word::Long("systemd-cgroup", inline) => switch(&mut cli.systemd_cgroup, inline)?,
            Word::Long("version", inline) => switch(&mut cli.version, inline)?,
            Word::Short('v') => switch(&mut cli.version, None)?,
            Word::Long("log", inline) => once(&mut cli.log, words.value(inline)?.into())?,
            Word::Long("root", inline) => once(&mut cli.root, words.value(inline)?.into())?,
            Word::Long("criu", inline) => once(&mut criu, words.value(inline)?)?,
            Word::Long("log-format", inline) => {
                let v = words.value(inline)?;
                ["text", "json"].contains(&v).then_some(())?;
                once(&mut log_format, v)?;
            }
            Word::Long("rootless", inline) => {
                let v = words.value(inline)?;
                ["true", "false", "auto"].contains(&v).then_some(())?;
                once(&mut rootless, v)?;
            }
            _ => return None,
        }
    };
    if let Some(v) = log_format {
        cli.log_format = v.into();
    }
    if let Some(v) = criu {
        cli.criu = v.into();
    }
    if let Some(v) = rootless {
        cli.rootless = v.into();
    }
    cli.command = match verb {
        None if cli.version => None,
        None => return None,
        Some("create") => Some(Command::Create(create(&mut words)?)),
        Some("start") => Some(Command::Start(id_only(&mut words)?)),
        Some("state") => Some(Command::State(id_only(&mut words)?)),
        Some("pause") => Some(Command::Pause(id_only(&mut words)?)),
        Some("resume") => Some(Command::Resume(id_only(&mut words)?)),
        Some("delete") => Some(Command::Delete(delete(&mut words)?)),
        Some("kill") => Some(Command::Kill(kill(&mut words)?)),
        Some("exec") => Some(Command::Exec(exec(&mut words)?)),
        Some("list") => Some(Command::List(list(&mut words)?)),
        Some(_) => return None,
    };
    Some(cli)
}

/// A verb's words: its flags (through `flag`, which answers `None` for one it does not know) and
/// at most `max` operands.
fn operands<'a>(
    words: &mut Words<'a>,
    max: usize,
    mut flag: impl FnMut(Word<'a>, &mut Words<'a>) -> Option<()>,
) -> Option<Vec<&'a str>> {
    let mut found = Vec::new();
    while let Some(word) = words.next() {
        match Word::of(word)? {
            Word::Operand(op) if found.len() < max => found.push(op),
            Word::Operand(_) => return None,
            other => flag(other, words)?,
        }
    }
    Some(found)
}

fn id_only(words: &mut Words<'_>) -> Option<IdArg> {
    match operands(words, 1, |_, _| None)?.as_slice() {
        [id] => Some(IdArg { id: (*id).into() }),
        _ => None,
    }
}

fn create(words: &mut Words<'_>) -> Option<CreateArgs> {
    let (mut bundle, mut console_socket, mut pid_file, mut preserve_fds) = (None, None, None, None);
    let (mut no_pivot, mut no_new_keyring) = (false, false);
    let ops = operands(words, 1, |word, words| match word {
        Word::Long("bundle", inline) => once(&mut bundle, words.value(inline)?),
        Word::Short('b') => once(&mut bundle, words.value(None)?),
        Word::Long("console-socket", inline) => once(&mut console_socket, words.value(inline)?),
        Word::Long("pid-file", inline) => once(&mut pid_file, words.value(inline)?),
        Word::Long("preserve-fds", inline) => {
            once(&mut preserve_fds, words.value(inline)?.parse().ok()?)
        }
        Word::Long("no-pivot", inline) => switch(&mut no_pivot, inline),
        Word::Long("no-new-keyring", inline) => switch(&mut no_new_keyring, inline),
        _ => None,
    })?;
    let [id] = ops.as_slice() else { return None };
    Some(CreateArgs {
        bundle: PathBuf::from(bundle.unwrap_or(".")),
        console_socket: console_socket.map(PathBuf::from),
        pid_file: pid_file.map(PathBuf::from),
        no_pivot,
        no_new_keyring,
        preserve_fds: preserve_fds.unwrap_or(0),
        id: (*id).into(),
    })
}

/// A verb with one boolean flag (`--long`, `-short`) and up to `max` operands.
fn switch_and_operands<'a>(
    words: &mut Words<'a>,
    long: &str,
    short: char,
    max: usize,
) -> Option<(bool, Vec<&'a str>)> {
    let mut on = false;
    let ops = operands(words, max, |word, _| match word {
        Word::Long(name, inline) if name == long => switch(&mut on, inline),
        Word::Short(c) if c == short => switch(&mut on, None),
        _ => None,
    })?;
    Some((on, ops))
}

fn delete(words: &mut Words<'_>) -> Option<DeleteArgs> {
    let (force, ops) = switch_and_operands(words, "force", 'f', 1)?;
    let [id] = ops.as_slice() else { return None };
    Some(DeleteArgs {
        force,
        id: (*id).into(),
    })
}

fn kill(words: &mut Words<'_>) -> Option<KillArgs> {
    let (all, ops) = switch_and_operands(words, "all", 'a', 2)?;
    let (id, signal) = match ops.as_slice() {
        [id] => (*id, "SIGTERM"),
        [id, signal] => (*id, *signal),
        _ => return None,
    };
    Some(KillArgs {
        all,
        id: id.into(),
        signal: signal.into(),
    })
}

fn list(words: &mut Words<'_>) -> Option<ListArgs> {
    let (mut format, mut quiet) = (None, false);
    operands(words, 0, |word, words| match word {
        Word::Long("format", inline) => once(&mut format, words.value(inline)?),
        Word::Short('f') => once(&mut format, words.value(None)?),
        Word::Long("quiet", inline) => switch(&mut quiet, inline),
        Word::Short('q') => switch(&mut quiet, None),
        _ => None,
    })?;
    let format = format.unwrap_or("table");
    ["table", "json"].contains(&format).then_some(())?;
    Some(ListArgs {
        format: format.into(),
        quiet,
    })
}

/// `exec`'s flags as engines send them (`--process`, `--detach`, `--pid-file`, `--tty`,
/// `--console-socket`) and as people type them (`--cwd`, `--env`, `--user`); the id; then the
/// command, taken whole once it has begun (clap's `trailing_var_arg`). A flag-like word right
/// after the id is left to clap.
fn exec(words: &mut Words<'_>) -> Option<ExecArgs> {
    let mut args = ExecArgs {
        cwd: None,
        env: Vec::new(),
        tty: false,
        user: None,
        additional_gids: Vec::new(),
        process: None,
        detach: false,
        pid_file: None,
        process_label: None,
        apparmor: None,
        no_new_privs: false,
        cap: Vec::new(),
        console_socket: None,
        preserve_fds: 0,
        ignore_paused: false,
        cgroup: Vec::new(),
        id: String::new(),
        command: Vec::new(),
    };
    let mut preserve_fds = None;
    let id = first_operand(words, |word, words| match word {
        Word::Long("process", inline) => once(&mut args.process, words.value(inline)?.into()),
        Word::Short('p') => once(&mut args.process, words.value(None)?.into()),
        Word::Long("detach", inline) => switch(&mut args.detach, inline),
        Word::Short('d') => switch(&mut args.detach, None),
        Word::Long("tty", inline) => switch(&mut args.tty, inline),
        Word::Short('t') => switch(&mut args.tty, None),
        Word::Long("pid-file", inline) => once(&mut args.pid_file, words.value(inline)?.into()),
        Word::Long("console-socket", inline) => {
            once(&mut args.console_socket, words.value(inline)?.into())
        }
        Word::Long("cwd", inline) => once(&mut args.cwd, words.value(inline)?.into()),
        Word::Long("user", inline) => once(&mut args.user, words.value(inline)?.into()),
        Word::Short('u') => once(&mut args.user, words.value(None)?.into()),
        Word::Long("env", inline) => {
            args.env.push(words.value(inline)?.into());
            Some(())
        }
        Word::Short('e') => {
            args.env.push(words.value(None)?.into());
            Some(())
        }
        Word::Long("preserve-fds", inline) => {
            once(&mut preserve_fds, words.value(inline)?.parse().ok()?)
        }
        _ => None,
    })??;
    let command = words.rest();
    if command.first().is_some_and(|w| w.starts_with('-')) || command.iter().any(|w| w == "--") {
        return None;
    }
    args.id = id.into();
    args.command = command.to_vec();
    args.preserve_fds = preserve_fds.unwrap_or(0);
    Some(args)
}

/// Flags up to the first operand, which it returns (`Some(None)` when the words end first).
fn first_operand<'a>(
    words: &mut Words<'a>,
    mut flag: impl FnMut(Word<'a>, &mut Words<'a>) -> Option<()>,
) -> Option<Option<&'a str>> {
    while let Some(word) = words.next() {
        match Word::of(word)? {
            Word::Operand(op) => return Some(Some(op)),
            other => flag(other, words)?,
        }
    }
    Some(None)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn fast(line: &[&str]) -> Option<Cli> {
        parse(line.iter().map(std::ffi::OsString::from))
    }

    /// What this parser accepts, clap parses to the same `Cli` (compared through `Debug`, which
    /// shows every field). Returns whether this parser accepted the line.
    fn agrees(line: &[&str]) -> bool {
        let Some(ours) = fast(line) else {
            return false;
        };
        let theirs = Cli::try_parse_from(std::iter::once("hako").chain(line.iter().copied()))
            .unwrap_or_else(|e| panic!("{line:?}: accepted here, refused by clap: {e}"));
        assert_eq!(format!("{ours:?}"), format!("{theirs:?}"), "{line:?}");
        true
    }

    /// Every command line of the reference engines' lifecycles (ARGV-SUMMARY.txt) takes the
    /// fast path, and means what clap says it means.
    #[test]
    fn engines_command_lines_take_the_fast_path() {
        let g = [
            "--root",
            "/run/x",
            "--log",
            "/b/log.json",
            "--log-format",
            "json",
        ];
        let lines: Vec<Vec<&str>> = vec![
            vec!["delete", "--force", "c1"],
            vec!["start", "c1"],
            vec!["create", "--bundle", "/b", "--pid-file", "/b/pidfile", "c1"],
            vec!["kill", "c1", "9"],
            vec!["kill", "--all", "c1", "9"],
            vec!["pause", "c1"],
            vec!["resume", "c1"],
            vec![
                "exec",
                "--pid-file",
                "/p",
                "--process",
                "/pr",
                "--detach",
                "c1",
            ],
            vec![
                "exec",
                "--pid-file",
                "/p",
                "--process",
                "/pr",
                "--detach",
                "--tty",
                "--console-socket",
                "/tmp/conmon-term.1",
                "c1",
            ],
            vec!["--debug", "--log-format=json", "start", "c1"],
            vec!["delete", "c1"],
            vec!["state", "c1"],
            vec!["list", "--format", "json"],
            vec!["list"],
            vec!["--version"],
            vec!["exec", "c1", "/bin/sh", "-c", "echo hi --tty"],
            vec!["--systemd-cgroup", "create", "--bundle", "/b", "c1"],
        ];
        for line in &lines {
            assert!(agrees(line), "{line:?} fell back to clap");
            let with_globals: Vec<&str> = g.iter().chain(line.iter()).copied().collect();
            if line[0] != "--debug" {
                assert!(agrees(&with_globals), "{with_globals:?} fell back to clap");
            }
        }
    }

    /// Lines clap refuses, or whose meaning this parser leaves to clap.
    #[test]
    fn what_it_does_not_know_goes_to_clap() {
        for line in [
            &["--help"][..],
            &["state"],
            &["state", "a", "b"],
            &["state", "--", "a"],
            &["delete", "-fx", "a"],
            &["delete", "--force=true", "a"],
            &["delete", "--force", "--force", "a"],
            &["create", "--bundle", "", "a"],
            &["create", "--bundle", "-x", "a"],
            &["create", "--preserve-fds", "many", "a"],
            &["--root", "/a", "--root", "/b", "state", "a"],
            &["--log-format", "yaml", "state", "a"],
            &["--rootless", "maybe", "state", "a"],
            &["state", "--root", "/a", "a"],
            &["exec", "a", "-t", "sh"],
            &["exec", "a", "sh", "--", "x"],
            &["exec", "--cgroup", "x", "a", "sh"],
            &["list", "--format", "yaml"],
            &["kill", "a", "9", "extra"],
            &["update", "--memory", "1", "a"],
            &[],
        ] {
            assert!(fast(line).is_none(), "{line:?} taken by the fast path");
        }
        use std::os::unix::ffi::OsStrExt;
        let not_utf8 = std::ffi::OsStr::from_bytes(b"\xff").to_os_string();
        let line = ["state".into(), not_utf8];
        assert!(parse(line).is_none());
    }

    /// xorshift64: a fixed sequence, so a failure names a line that can be replayed.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[(self.next() % items.len() as u64) as usize]
        }
        fn chance(&mut self, in_n: u64) -> bool {
            self.next().is_multiple_of(in_n)
        }
    }

    /// The pieces of a verb's line: flags as they may be spelt (several words each), operands.
    fn pieces(verb: &str) -> (Vec<Vec<&'static str>>, Vec<&'static str>) {
        let flags: Vec<Vec<&str>> = match verb {
            "create" => vec![
                vec!["--bundle", "/b"],
                vec!["--bundle=/b"],
                vec!["-b", "/b"],
                vec!["--pid-file", "/p"],
                vec!["--pid-file=/p"],
                vec!["--console-socket", "/s"],
                vec!["--no-pivot"],
                vec!["--no-new-keyring"],
                vec!["--preserve-fds", "3"],
                vec!["--preserve-fds=2"],
            ],
            "delete" => vec![vec!["--force"], vec!["-f"]],
            "kill" => vec![vec!["--all"], vec!["-a"]],
            "list" => vec![
                vec!["--format", "json"],
                vec!["-f", "table"],
                vec!["--format=json"],
                vec!["-q"],
                vec!["--quiet"],
            ],
            "exec" => vec![
                vec!["--process", "/pr"],
                vec!["-p", "/pr"],
                vec!["--detach"],
                vec!["-d"],
                vec!["--tty"],
                vec!["-t"],
                vec!["--pid-file", "/p"],
                vec!["--console-socket=/s"],
                vec!["--cwd", "/w"],
                vec!["--env", "A=1"],
                vec!["-e", "B=2"],
                vec!["--user", "1:2"],
                vec!["-u", "0"],
                vec!["--preserve-fds", "1"],
            ],
            _ => vec![],
        };
        let operands = match verb {
            "kill" => vec!["c1", "KILL"],
            "list" => vec![],
            "exec" => vec!["c1", "sh", "-c", "--x"],
            _ => vec!["c1"],
        };
        (flags, operands)
    }

    /// Noise that makes a line one clap refuses or reads differently.
    const NOISE: &[&str] = &[
        "--",
        "-",
        "--help",
        "-h",
        "--bogus",
        "",
        "-fd",
        "--force=1",
        "extra",
        "--root",
        "json",
    ];

    /// Random lines from the verbs' pieces, shuffled and now and then broken: whatever the fast
    /// path accepts, clap must parse to the same `Cli`; and most well-formed lines are accepted.
    #[test]
    fn it_agrees_with_clap_on_generated_lines() {
        let globals: &[&[&str]] = &[
            &["--debug"],
            &["--root", "/r"],
            &["--root=/r"],
            &["--log", "/l"],
            &["--log-format", "json"],
            &["--log-format=text"],
            &["--systemd-cgroup"],
            &["--rootless", "false"],
            &["--criu=/usr/sbin/criu"],
            &["-v"],
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut accepted = std::collections::BTreeMap::<&str, usize>::new();
        for _ in 0..20_000 {
            let mut line: Vec<&str> = Vec::new();
            for g in globals {
                if rng.chance(4) {
                    line.extend_from_slice(g);
                }
            }
            let verb = rng.pick(&[
                "create", "start", "state", "delete", "kill", "exec", "list", "pause", "run",
            ]);
            line.push(verb);
            let (flags, operands) = pieces(verb);
            let mut parts: Vec<Vec<&str>> = flags.into_iter().filter(|_| rng.chance(2)).collect();
            let keep = if rng.chance(8) { 0 } else { operands.len() };
            let ops: Vec<&str> = operands[..keep.min(1 + (rng.next() % 4) as usize)].to_vec();
            // Operands in order, flags shuffled around them (exec's command stays last).
            for op in ops {
                let at = if verb == "exec" {
                    parts.len()
                } else {
                    (rng.next() % (parts.len() as u64 + 1)) as usize
                };
                parts.insert(at, vec![op]);
            }
            for _ in 0..parts.len() {
                let (a, b) = (
                    rng.next() as usize % parts.len(),
                    rng.next() as usize % parts.len(),
                );
                if verb != "exec" {
                    parts.swap(a, b);
                }
            }
            let mut words: Vec<&str> = parts.into_iter().flatten().collect();
            if rng.chance(5) {
                let at = (rng.next() % (words.len() as u64 + 1)) as usize;
                words.insert(at, rng.pick(NOISE));
            }
            line.extend(words);
            if agrees(&line) {
                *accepted.entry(verb).or_default() += 1;
            }
        }
        for verb in [
            "create", "start", "state", "delete", "kill", "exec", "list", "pause",
        ] {
            let n = accepted.get(verb).copied().unwrap_or(0);
            assert!(
                n > 300,
                "{verb}: only {n} generated lines took the fast path"
            );
        }
        assert!(!accepted.contains_key("run"), "run is not a fast verb");
    }
}
