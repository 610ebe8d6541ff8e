//! Signal names and numbers as runc accepts them: `9`, `KILL`, `SIGKILL` (case-insensitive), and
//! the real-time signals as `RTMIN+N` / `RTMAX-N`.

use crate::error::{Error, Result};

const NAMES: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGIOT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("POLL", libc::SIGPOLL),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// The first and last real-time signals as the kernel numbers them (glibc reserves a few below
/// SIGRTMIN for itself, but the kernel, and runc, count from 34).
const RTMIN: i32 = 34;
const RTMAX: i32 = 64;

/// Parses a signal as runc's `kill` does.
pub fn parse(text: &str) -> Result<i32> {
    let bad = || Error::InvalidSignal(text.to_string());
    if let Ok(n) = text.parse::<i32>() {
        // 0 is no signal but a probe: kill(2) only checks that the process exists and may be
        // signalled, which is what clients ask with `kill ID 0` (runc delivers it).
        return if (0..=RTMAX).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some((_, n)) = NAMES.iter().find(|(k, _)| *k == name) {
        return Ok(*n);
    }
    let rt = |base: i32, rest: &str, sign: i32| -> Result<i32> {
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.parse().map_err(|_| bad())?
        };
        let n = base + sign * off;
        if (RTMIN..=RTMAX).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        }
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return rt(RTMIN, rest.strip_prefix('+').unwrap_or(rest), 1);
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return rt(RTMAX, rest.strip_prefix('-').unwrap_or(rest), -1);
    }
    Err(bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_runc_accepts() {
        for s in ["9", "KILL", "SIGKILL", "kill", "sigkill"] {
            assert_eq!(parse(s).expect(s), libc::SIGKILL);
        }
        assert_eq!(parse("TERM").expect("term"), 15);
        assert_eq!(parse("RTMIN+2").expect("rt"), 36);
        assert_eq!(parse("RTMAX-1").expect("rt"), 63);
        assert_eq!(parse("0").expect("probe"), 0);
        for s in ["65", "-1", "FOO", "SIG", "RTMIN+40"] {
            assert!(parse(s).is_err(), "{s}");
        }
    }
}
