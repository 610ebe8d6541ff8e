//! `linux.seccomp` checked and turned into hako's own types: actions with their return values,
//! conditions with their operator, rules flattened to one entry per syscall name.
//!
//! oci-spec's serde already refuses unknown action, architecture, operator and flag names; what is
//! left to check is what the spec and the kernel constrain beyond the names (config-linux.md,
//! "Seccomp"; seccomp(2) for the 16-bit `SECCOMP_RET_DATA`).

use std::path::PathBuf;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

use super::SeccompError;

/// The errno of `SCMP_ACT_ERRNO`/`SCMP_ACT_TRACE` without `errnoRet` (EPERM, as the spec says).
const DEFAULT_ERRNO: u16 = libc::EPERM as u16;

/// What the filter returns for a syscall (seccomp(2), "Filter return values").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Action {
    /// `SECCOMP_RET_KILL_THREAD` (also `SCMP_ACT_KILL`, as libseccomp and runc map it).
    KillThread,
    /// `SECCOMP_RET_KILL_PROCESS`.
    KillProcess,
    /// `SECCOMP_RET_TRAP`: SIGSYS with `si_code` `SYS_SECCOMP`.
    Trap,
    /// `SECCOMP_RET_ERRNO` with the errno.
    Errno(u16),
    /// `SECCOMP_RET_TRACE` with the value a ptracer sees.
    Trace(u16),
    /// `SECCOMP_RET_LOG`.
    Log,
    /// `SECCOMP_RET_ALLOW`.
    Allow,
    /// `SECCOMP_RET_USER_NOTIF`: the agent holding the listener fd answers.
    Notify,
}

impl Action {
    /// The filter's 32-bit return value.
    pub(super) fn ret(self) -> u32 {
        match self {
            Action::KillThread => libc::SECCOMP_RET_KILL_THREAD,
            Action::KillProcess => libc::SECCOMP_RET_KILL_PROCESS,
            Action::Trap => libc::SECCOMP_RET_TRAP,
            Action::Errno(e) => libc::SECCOMP_RET_ERRNO | u32::from(e),
            Action::Trace(e) => libc::SECCOMP_RET_TRACE | u32::from(e),
            Action::Log => libc::SECCOMP_RET_LOG,
            Action::Allow => libc::SECCOMP_RET_ALLOW,
            Action::Notify => libc::SECCOMP_RET_USER_NOTIF,
        }
    }

    /// Whether the action lets the syscall run (runc adds no `-ENOSYS` stub for these).
    pub(super) fn is_permissive(self) -> bool {
        matches!(self, Action::Allow | Action::Log)
    }

    fn from_spec(
        action: LinuxSeccompAction,
        errno_ret: Option<u32>,
        field: impl Fn() -> String,
    ) -> Result<Self, SeccompError> {
        let errno = || -> Result<u16, SeccompError> {
            match errno_ret {
                None => Ok(DEFAULT_ERRNO),
                Some(value) => u16::try_from(value).map_err(|_| SeccompError::ErrnoOutOfRange {
                    field: field(),
                    value,
                }),
            }
        };
        let plain = |a: Action| {
            if errno_ret.is_some() {
                Err(SeccompError::ErrnoNotSupported {
                    field: field(),
                    action: action.to_string(),
                })
            } else {
                Ok(a)
            }
        };
        match action {
            LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
                plain(Action::KillThread)
            }
            LinuxSeccompAction::ScmpActKillProcess => plain(Action::KillProcess),
            LinuxSeccompAction::ScmpActTrap => plain(Action::Trap),
            LinuxSeccompAction::ScmpActErrno => Ok(Action::Errno(errno()?)),
            LinuxSeccompAction::ScmpActTrace => Ok(Action::Trace(errno()?)),
            LinuxSeccompAction::ScmpActLog => plain(Action::Log),
            LinuxSeccompAction::ScmpActAllow => plain(Action::Allow),
            LinuxSeccompAction::ScmpActNotify => plain(Action::Notify),
        }
    }
}

/// A comparison operator, unsigned 64-bit as in libseccomp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Op {
    /// `SCMP_CMP_NE`.
    Ne,
    /// `SCMP_CMP_LT`.
    Lt,
    /// `SCMP_CMP_LE`.
    Le,
    /// `SCMP_CMP_EQ`.
    Eq,
    /// `SCMP_CMP_GE`.
    Ge,
    /// `SCMP_CMP_GT`.
    Gt,
    /// `SCMP_CMP_MASKED_EQ`: `(arg & value) == valueTwo`.
    MaskedEq,
}

/// One argument condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct Condition {
    /// Argument index, 0..=5.
    pub(super) index: u8,
    /// The operator.
    pub(super) op: Op,
    /// `value` (the mask for `MaskedEq`).
    pub(super) value: u64,
    /// `valueTwo` (the datum for `MaskedEq`), 0 when absent.
    pub(super) value_two: u64,
}

#[cfg(test)]
impl Condition {
    /// The reference meaning of the condition for an argument value: what the generated BPF
    /// must compute (the tests hold it to this).
    pub(super) fn matches(&self, arg: u64) -> bool {
        match self.op {
            Op::Ne => arg != self.value,
            Op::Lt => arg < self.value,
            Op::Le => arg <= self.value,
            Op::Eq => arg == self.value,
            Op::Ge => arg >= self.value,
            Op::Gt => arg > self.value,
            Op::MaskedEq => arg & self.value == self.value_two,
        }
    }

    /// The same condition seen on a 32-bit ABI, where only the low word of each argument is
    /// compared and values are truncated to 32 bits (libseccomp's behaviour on 32-bit arches).
    pub(super) fn low_word(&self) -> Condition {
        Condition {
            value: self.value & 0xffff_ffff,
            value_two: self.value_two & 0xffff_ffff,
            ..*self
        }
    }
}

/// A rule: the action when every condition matches (no condition: always).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Rule {
    /// What to return.
    pub(super) action: Action,
    /// All must match.
    pub(super) conditions: Vec<Condition>,
}

/// One syscall name with one of its rules, in profile order.
#[derive(Clone, Debug)]
pub(super) struct Entry {
    /// The syscall name as written (resolved per ABI when compiling).
    pub(super) name: String,
    /// Index of the rule it came from (rules are shared by every name of a `syscalls` item).
    pub(super) rule: usize,
}

/// `SECCOMP_FILTER_FLAG_*` asked for by `flags`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Flags {
    /// `SECCOMP_FILTER_FLAG_TSYNC`.
    pub(super) tsync: bool,
    /// `SECCOMP_FILTER_FLAG_LOG`.
    pub(super) log: bool,
    /// `SECCOMP_FILTER_FLAG_SPEC_ALLOW`.
    pub(super) spec_allow: bool,
    /// `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV`.
    pub(super) wait_killable_recv: bool,
}

/// Where and what to send when the profile uses `SCMP_ACT_NOTIFY`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Listener {
    /// `listenerPath`.
    pub(super) path: PathBuf,
    /// `listenerMetadata`, empty when absent.
    pub(super) metadata: String,
}

/// A validated `linux.seccomp`.
#[derive(Clone, Debug)]
pub(super) struct Profile {
    /// `defaultAction` with `defaultErrnoRet`.
    pub(super) default: Action,
    /// `defaultErrnoRet` as written (runc's `-ENOSYS` stub looks at it).
    pub(super) default_errno_ret: Option<u32>,
    /// `architectures` as written; the compiler keeps those the host kernel can present.
    pub(super) arches: Vec<Arch>,
    /// `flags`.
    pub(super) flags: Flags,
    /// The distinct rules, indexed by [`Entry::rule`].
    pub(super) rules: Vec<Rule>,
    /// One entry per (name, rule), in profile order.
    pub(super) entries: Vec<Entry>,
    /// Set when some action is `SCMP_ACT_NOTIFY` (listenerPath is then required).
    pub(super) listener: Option<Listener>,
}

impl Profile {
    /// Validates `linux.seccomp`.
    pub(super) fn from_spec(spec: &LinuxSeccomp) -> Result<Self, SeccompError> {
        let default = Action::from_spec(spec.default_action(), spec.default_errno_ret(), || {
            "defaultErrnoRet".to_string()
        })?;
        let mut flags = Flags::default();
        for flag in spec.flags().iter().flatten() {
            match flag {
                LinuxSeccompFilterFlag::SeccompFilterFlagTsync => flags.tsync = true,
                LinuxSeccompFilterFlag::SeccompFilterFlagLog => flags.log = true,
                LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => flags.spec_allow = true,
                LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                    flags.wait_killable_recv = true;
                }
            }
        }
        let mut rules = Vec::new();
        let mut entries = Vec::new();
        for (i, syscall) in spec.syscalls().iter().flatten().enumerate() {
            let action = Action::from_spec(syscall.action(), syscall.errno_ret(), || {
                format!("syscalls[{i}].errnoRet")
            })?;
            let mut conditions = Vec::new();
            for arg in syscall.args().iter().flatten() {
                let index = u8::try_from(arg.index()).ok().filter(|&n| n < 6).ok_or(
                    SeccompError::ArgIndex {
                        rule: i,
                        index: arg.index(),
                    },
                )?;
                conditions.push(Condition {
                    index,
                    op: op_from_spec(arg.op()),
                    value: arg.value(),
                    value_two: arg.value_two().unwrap_or(0),
                });
            }
            if syscall.names().is_empty() || syscall.names().iter().any(|n| n.is_empty()) {
                return Err(SeccompError::EmptyName { rule: i });
            }
            for name in syscall.names() {
                entries.push(Entry {
                    name: name.clone(),
                    rule: i,
                });
            }
            rules.push(Rule { action, conditions });
        }
        check_notify(default, &rules, &entries)?;
        let notifies = rules.iter().any(|r| r.action == Action::Notify);
        let listener = if notifies {
            let path = spec
                .listener_path()
                .clone()
                .ok_or(SeccompError::NotifyWithoutListener)?;
            if !path.is_absolute() {
                return Err(SeccompError::ListenerPathRelative { path });
            }
            Some(Listener {
                path,
                metadata: spec.listener_metadata().clone().unwrap_or_default(),
            })
        } else {
            None
        };
        Ok(Profile {
            default,
            default_errno_ret: spec.default_errno_ret(),
            arches: spec.architectures().clone().unwrap_or_default(),
            flags,
            rules,
            entries,
            listener,
        })
    }
}

/// Syscalls the init itself makes between loading the filter and handing the listener fd to
/// the parent: notified, they would wait for an agent that has no fd yet, and `create` would
/// hang. `write` is runc's (its init writes the fd to its parent); hako's init sends it with
/// `sendmsg` (runc 1.1.5 accepts `SCMP_ACT_NOTIFY` on sendmsg, which its init does not use).
const NEEDED_BEFORE_LISTENER: &[&str] = &["write", "sendmsg"];

/// Refuses the `SCMP_ACT_NOTIFY` profiles that would hang the init, with runc's reasons
/// (libcontainer/seccomp `InitSeccomp`): as the default action (that covers every syscall the
/// init still makes), and on the syscalls of [`NEEDED_BEFORE_LISTENER`].
fn check_notify(default: Action, rules: &[Rule], entries: &[Entry]) -> Result<(), SeccompError> {
    if default == Action::Notify {
        return Err(SeccompError::NotifyAsDefault);
    }
    let refused = entries.iter().find(|e| {
        rules[e.rule].action == Action::Notify && NEEDED_BEFORE_LISTENER.contains(&e.name.as_str())
    });
    match refused {
        Some(e) => Err(SeccompError::NotifyOnNeededSyscall {
            name: e.name.clone(),
        }),
        None => Ok(()),
    }
}

fn op_from_spec(op: LinuxSeccompOperator) -> Op {
    match op {
        LinuxSeccompOperator::ScmpCmpNe => Op::Ne,
        LinuxSeccompOperator::ScmpCmpLt => Op::Lt,
        LinuxSeccompOperator::ScmpCmpLe => Op::Le,
        LinuxSeccompOperator::ScmpCmpEq => Op::Eq,
        LinuxSeccompOperator::ScmpCmpGe => Op::Ge,
        LinuxSeccompOperator::ScmpCmpGt => Op::Gt,
        LinuxSeccompOperator::ScmpCmpMaskedEq => Op::MaskedEq,
    }
}
