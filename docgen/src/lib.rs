//! What the hako package ships besides the binary, generated from the very clap definitions the
//! binary parses with (`runtime/src/bin/hako/cli.rs`, compiled into this crate too), so that man
//! pages and completions cannot drift from the CLI: man pages for `hako` and each verb (section
//! 8, where Debian puts runc's), completions for bash, zsh and fish, and the package's
//! description from `hako features`.
//!
//! A separate program, so that none of clap_mangen or clap_complete is in the hako binary: every
//! hako command maps its program text (peak RSS, bench/).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;
use serde_json::Value;

// The binary's own argument structs; only their definitions are used here.
#[allow(dead_code)]
#[path = "../../runtime/src/bin/hako/cli.rs"]
mod cli;
// `checkpoint` and `restore` keep their flags there (cli.rs names them).
#[allow(dead_code)]
#[path = "../../runtime/src/bin/hako/criu_cli.rs"]
mod criu_cli;

/// The shells completions are made for, with where Debian's packages install each one's file.
pub const SHELLS: [(Shell, &str); 3] = [
    (Shell::Bash, "usr/share/bash-completion/completions/hako"),
    (Shell::Zsh, "usr/share/zsh/vendor-completions/_hako"),
    (Shell::Fish, "usr/share/fish/vendor_completions.d/hako.fish"),
];

/// hako's command line, built: every deferred verb's arguments are there.
pub fn command() -> clap::Command {
    let mut cmd = cli::Cli::command();
    cmd.build();
    cmd
}

/// The verbs a user sees (clap's own `help` verb aside).
pub fn verbs(cmd: &clap::Command) -> impl Iterator<Item = &clap::Command> {
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
}

/// Writes `hako.8` and `hako-VERB.8` for each visible verb into `dir`; returns their paths.
pub fn man_pages(dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let cmd = command();
    let mut pages = Vec::new();
    let mut write = |name: String, c: clap::Command| -> Result<()> {
        let path = dir.join(format!("{name}.8"));
        let mut out = Vec::new();
        clap_mangen::Man::new(c)
            .title(name.to_uppercase())
            .section("8")
            .source(format!("hako {}", env!("CARGO_PKG_VERSION")))
            .manual("hako manual")
            .render(&mut out)?;
        std::fs::write(&path, out).with_context(|| format!("write {}", path.display()))?;
        pages.push(path);
        Ok(())
    };
    for sub in verbs(&cmd) {
        write(format!("hako-{}", sub.get_name()), sub.clone())?;
    }
    write("hako".into(), cmd)?;
    Ok(pages)
}

/// The completion script for `shell`.
pub fn completion(shell: Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command(), "hako", &mut out);
    out
}

/// The package's extended description: what `hako features` says this build supports, in words.
pub fn description(features: &Value) -> String {
    let list = |v: &Value| -> String {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|s| match s.strip_prefix("SCMP_ARCH_") {
                        Some(arch) => arch.to_lowercase(),
                        None => s.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    let linux = &features["linux"];
    let count = |v: &Value| v.as_array().map_or(0, Vec::len);
    let cgroup = &linux["cgroup"];
    let versions: Vec<&str> = [("v1", "v1 (and hybrid)"), ("v2", "v2")]
        .into_iter()
        .filter(|(k, _)| cgroup[*k] == true)
        .map(|(_, text)| text)
        .collect();
    let systemd = if cgroup["systemd"] == true {
        "the systemd driver"
    } else {
        "cgroupfs (no systemd driver yet)"
    };
    let idmap = if linux["mountExtensions"]["idmap"]["enabled"] == true {
        "yes"
    } else {
        "no"
    };
    let text = format!(
        "hako turns an OCI bundle into a running, isolated container: the program podman, \
         containerd, docker and Kubernetes call as their runtime. It takes runc's command line \
         flag for flag (`hako setup podman|docker|containerd` prints the configuration that \
         registers it), and is a single static binary with no library dependencies.\n\
         \n\
         What this build supports (`hako features`):\n\
         - runtime spec {min} to {max}\n\
         - hooks: {hooks}\n\
         - namespaces: {ns}\n\
         - cgroups {versions} through {systemd}\n\
         - seccomp compiled to cBPF by hako itself (no libseccomp): {nact} actions, \
           {nop} operators, architectures {archs}\n\
         - {ncaps} capabilities, {nmount} mount options, idmapped mounts: {idmap}\n\
         - AppArmor and SELinux labels applied where the host has the LSM",
        min = features["ociVersionMin"].as_str().unwrap_or("?"),
        max = features["ociVersionMax"].as_str().unwrap_or("?"),
        hooks = list(&features["hooks"]),
        ns = list(&linux["namespaces"]),
        versions = versions.join(" and "),
        nact = count(&linux["seccomp"]["actions"]),
        nop = count(&linux["seccomp"]["operators"]),
        archs = list(&linux["seccomp"]["archs"]),
        ncaps = count(&linux["capabilities"]),
        nmount = count(&features["mountOptions"]),
    );
    text.lines().map(wrap).collect::<Vec<_>>().join("\n")
}

/// Wraps a line at 72 columns (Debian's descriptions are read on terminals, and cargo-deb
/// indents them and wraps again at 80), continuing a
/// `- ` item indented.
fn wrap(line: &str) -> String {
    let indent = if line.starts_with("- ") { "  " } else { "" };
    let mut out = String::new();
    let mut width = 0;
    for word in line.split(' ') {
        if width > 0 && width + 1 + word.len() > 72 {
            out.push('\n');
            out.push_str(indent);
            width = indent.len();
        } else if width > 0 {
            out.push(' ');
            width += 1;
        }
        out.push_str(word);
        width += word.len();
    }
    out
}

/// Writes everything under `out`: `man/`, `completions/` (laid out as installed) and
/// `description.txt`.
pub fn generate(out: &Path) -> Result<()> {
    man_pages(&out.join("man"))?;
    for (shell, installed) in SHELLS {
        let path = out.join("completions").join(installed);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("create {}", parent.display()))?;
        }
        std::fs::write(&path, completion(shell))
            .with_context(|| format!("write {}", path.display()))?;
    }
    let path = out.join("description.txt");
    std::fs::write(
        &path,
        description(&hako::verb::features::features(Path::new("criu"))) + "\n",
    )
    .with_context(|| format!("write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A verb's part of a completion script: from `start` to the end of its `case` branch.
    fn block<'a>(text: &'a str, start: &str) -> &'a str {
        let from = text
            .find(start)
            .unwrap_or_else(|| panic!("{start:?} not in the script"));
        let rest = &text[from..];
        &rest[..rest.find(";;").unwrap_or(rest.len())]
    }

    /// Whether `word` is one of the words of a bash script's part (`opts="-b -h --bundle ..."`).
    fn has_word(text: &str, word: &str) -> bool {
        text.split(|c: char| c.is_whitespace() || c == '"')
            .any(|w| w == word)
    }

    /// The flags a user can type for `cmd`: `--long` and `-s` (hidden ones aside).
    fn flags(cmd: &clap::Command) -> Vec<(Option<String>, Option<char>)> {
        cmd.get_arguments()
            .filter(|a| !a.is_hide_set() && !a.is_positional())
            .map(|a| (a.get_long().map(str::to_string), a.get_short()))
            .collect()
    }

    /// Every verb and every flag of each verb (and the global flags) is in the man pages and in
    /// the bash, zsh and fish completions.
    #[test]
    fn every_verb_and_flag_is_in_the_man_pages_and_completions() {
        let dir = tempfile::tempdir().expect("tempdir");
        man_pages(dir.path()).expect("man pages");
        // roff escapes dashes: `\-\-bundle`.
        let man = |name: &str| {
            std::fs::read_to_string(dir.path().join(format!("{name}.8")))
                .unwrap_or_else(|e| panic!("{name}.8: {e}"))
                .replace("\\-", "-")
                .replace("\\fB", "")
                .replace("\\fR", "")
                .replace("\\fI", "")
        };
        let text = |shell| String::from_utf8(completion(shell)).expect("utf-8");
        let (bash, zsh, fish) = (text(Shell::Bash), text(Shell::Zsh), text(Shell::Fish));
        let cmd = command();
        let top = man("hako");
        for (long, short) in flags(&cmd) {
            let long = long.expect("global flags are long");
            assert!(top.contains(&format!("--{long}")), "hako.8: --{long}");
            assert!(
                has_word(block(&bash, "hako)"), &format!("--{long}")),
                "bash: --{long}"
            );
            assert!(zsh.contains(&format!("'--{long}")), "zsh: --{long}");
            assert!(
                fish.contains(&format!("__fish_hako_needs_command\" -l {long} "))
                    || fish.contains(&format!(
                        "__fish_hako_needs_command\" -s {} -l {long} ",
                        short.unwrap_or(' ')
                    )),
                "fish: --{long}"
            );
        }
        let mut seen = 0;
        for verb in verbs(&cmd) {
            let name = verb.get_name();
            seen += 1;
            assert!(
                top.contains(&format!("hako-{name}(8)")),
                "hako.8 lists {name}"
            );
            assert!(bash.contains(&format!("hako,{name})")), "bash: {name}");
            assert!(zsh.contains(&format!("'{name}:")), "zsh: {name}");
            assert!(fish.contains(&format!("-a \"{name}\"")), "fish: {name}");
            let page = man(&format!("hako-{name}"));
            let bash_verb = block(&bash, &format!("hako__subcmd__{name})"));
            let zsh_verb = block(&zsh, &format!("({name})"));
            let fish_verb: Vec<&str> = fish
                .lines()
                .filter(|l| l.contains(&format!("__fish_hako_using_subcommand {name}\"")))
                .collect();
            for (long, short) in flags(verb) {
                // Each spelling: as typed, as the man page shows it, as fish declares it.
                let spellings = long
                    .map(|l| (format!("--{l}"), format!("--{l}"), format!(" -l {l} ")))
                    .into_iter()
                    .chain(short.map(|c| (format!("-{c}"), format!("-{c},"), format!(" -s {c} "))));
                for (flag, in_man, in_fish) in spellings {
                    assert!(page.contains(&in_man), "hako-{name}.8: {flag}");
                    assert!(has_word(bash_verb, &flag), "bash {name}: {flag}");
                    assert!(
                        zsh_verb.contains(&format!("'{flag}"))
                            || zsh_verb.contains(&format!("'*{flag}")),
                        "zsh {name}: {flag}"
                    );
                    assert!(
                        fish_verb.iter().any(|l| l.contains(&in_fish)),
                        "fish {name}: {flag}"
                    );
                }
            }
        }
        // runc's verbs plus `setup`: a generator that lost verbs would pass the loop above.
        assert_eq!(seen, 18);
    }

    #[test]
    fn the_description_says_what_features_says() {
        let text = description(&hako::verb::features::features(Path::new("criu")));
        assert!(
            text.contains("namespaces: cgroup, ipc, mount, network, pid, user, uts"),
            "{text}"
        );
        assert!(text.contains("hooks: prestart, createRuntime"), "{text}");
        assert!(text.lines().all(|l| l.len() <= 72), "{text}");
    }
}
