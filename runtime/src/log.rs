//! runc-compatible logging: `--log FILE`, `--log-format text|json`, `--debug`.
//!
//! containerd reads the `--log` file as JSON lines (`{"level":"error","msg":"...","time":"..."}`)
//! and shows the `msg` of the last error line to users, so a failed `create` must land there with
//! its whole chain in `msg`. Without `--log`, lines go to stderr.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use crate::timestamp;

/// Where and how to log.
#[derive(Debug, Clone, Default)]
pub struct LogConfig {
    /// `--log`; stderr when absent.
    pub path: Option<PathBuf>,
    /// `--log-format json`.
    pub json: bool,
    /// `--debug`.
    pub debug: bool,
}

static CONFIG: OnceLock<LogConfig> = OnceLock::new();

/// Sets the log destination once, at start-up.
pub fn init(config: LogConfig) {
    let _ = CONFIG.set(config);
}

/// Writes one line at `level` (`debug`, `warning`, `error`).
pub fn line(level: &str, msg: &str) {
    let cfg = CONFIG.get().cloned().unwrap_or_default();
    if level == "debug" && !cfg.debug {
        return;
    }
    let time = timestamp::now();
    let text = if cfg.json {
        serde_json::json!({ "level": level, "msg": msg, "time": time }).to_string()
    } else {
        format!("time=\"{time}\" level={level} msg={msg:?}")
    };
    match &cfg.path {
        Some(path) => {
            let opened = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o644)
                .custom_flags(libc::O_CLOEXEC)
                .open(path);
            if let Ok(mut f) = opened {
                let _ = writeln!(f, "{text}");
            }
        }
        None => {
            let _ = writeln!(std::io::stderr(), "{text}");
        }
    }
}

/// An error's whole chain on one line, causes joined by `: ` (runc's style of message).
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    crate::sync::RemoteError::chain_of(err).join(": ")
}

/// Logs a warning for an error that does not stop the operation.
pub fn warn(err: &(dyn std::error::Error + 'static)) {
    line("warning", &chain(err));
}

/// Logs a debug line.
pub fn debug(msg: &str) {
    line("debug", msg);
}

/// Whether `--debug` is on. Check it before building a debug message, so that the default path
/// formats nothing.
pub fn debug_enabled() -> bool {
    CONFIG.get().is_some_and(|c| c.debug)
}

/// `--debug`'s account of a verb: each [`Steps::step`] logs what was just done and how long it
/// took since the previous step; [`Steps::done`] the total. Without `--debug` it reads no clock
/// and formats nothing (the messages are `format_args!`, formatted only when logged).
#[derive(Debug, Default)]
pub(crate) struct Steps {
    verb: &'static str,
    /// When the verb started and when the last step ended; `None` without `--debug`.
    times: Option<(Instant, Instant)>,
}

impl Steps {
    /// Starts timing `verb`.
    pub(crate) fn start(verb: &'static str) -> Self {
        let times = debug_enabled().then(|| {
            let now = Instant::now();
            (now, now)
        });
        Steps { verb, times }
    }

    /// Logs `what` with the time it took since the last step.
    pub(crate) fn step(&mut self, what: std::fmt::Arguments<'_>) {
        if let Some((_, last)) = self.times.as_mut() {
            let now = Instant::now();
            debug(&format!("{}: {what} ({:.1?})", self.verb, now - *last));
            *last = now;
        }
    }

    /// Logs the verb's total time.
    pub(crate) fn done(&self) {
        if let Some((start, _)) = self.times {
            debug(&format!("{}: done in {:.1?}", self.verb, start.elapsed()));
        }
    }
}
