//! `process.scheduler`, `process.ioPriority` and `linux.personality`: validated at config time,
//! applied in the child before capabilities are dropped (a real-time policy or the RT I/O class
//! needs CAP_SYS_NICE/CAP_SYS_ADMIN), as runc does.
//!
//! sched_setattr(2), ioprio_set(2) and personality(2) have no libc wrappers worth the name, so
//! the three system calls are made here directly.

use oci_spec::runtime::{
    IOPriorityClass, LinuxIOPriority, LinuxPersonality, LinuxPersonalityDomain, LinuxSchedulerFlag,
    LinuxSchedulerPolicy, Scheduler,
};

use crate::error::{Error, Result};

/// `struct sched_attr` (include/uapi/linux/sched/types.h), first version plus utilization clamps.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
    util_min: u32,
    util_max: u32,
}

/// Converts `process.scheduler`.
pub(crate) fn sched_attr(s: &Scheduler) -> Result<SchedAttr> {
    let bad = |reason: String| Error::InvalidConfig {
        field: "process.scheduler",
        reason,
    };
    let policy = match s.policy() {
        LinuxSchedulerPolicy::SchedOther => libc::SCHED_OTHER,
        LinuxSchedulerPolicy::SchedFifo => libc::SCHED_FIFO,
        LinuxSchedulerPolicy::SchedRr => libc::SCHED_RR,
        LinuxSchedulerPolicy::SchedBatch => libc::SCHED_BATCH,
        LinuxSchedulerPolicy::SchedIdle => libc::SCHED_IDLE,
        LinuxSchedulerPolicy::SchedDeadline => 6,
        LinuxSchedulerPolicy::SchedIso => {
            return Err(bad("SCHED_ISO does not exist in Linux".into()))
        }
    } as u32;
    let nice = s.nice().unwrap_or(0);
    if !(-20..=19).contains(&nice) {
        return Err(bad(format!("nice {nice} is outside -20..19")));
    }
    let priority = s.priority().unwrap_or(0);
    let realtime = matches!(
        s.policy(),
        LinuxSchedulerPolicy::SchedFifo | LinuxSchedulerPolicy::SchedRr
    );
    if realtime && !(1..=99).contains(&priority) {
        return Err(bad(format!(
            "priority {priority} is outside 1..99 for a real-time policy"
        )));
    }
    if !realtime && priority != 0 {
        return Err(bad(format!(
            "priority {priority} needs SCHED_FIFO or SCHED_RR"
        )));
    }
    let mut flags = 0u64;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
        };
    }
    Ok(SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy,
        flags,
        nice,
        priority: priority as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
        util_min: 0,
        util_max: 1024,
    })
}

/// Applies a scheduling policy to the calling thread.
pub(crate) fn apply_sched(attr: &SchedAttr) -> Result<()> {
    crate::sys::sched_setattr(attr).map_err(Error::sys("sched_setattr"))
}

/// Converts `process.ioPriority` to ioprio_set(2)'s value: class << 13 | level.
pub(crate) fn io_priority(p: &LinuxIOPriority) -> Result<i32> {
    let class = match p.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    let level = p.priority();
    if !(0..=7).contains(&level) {
        return Err(Error::InvalidConfig {
            field: "process.ioPriority",
            reason: format!("priority {level} is outside 0..7"),
        });
    }
    Ok((class << 13) | level as i32)
}

/// Applies an I/O priority to the calling process.
pub(crate) fn apply_io_priority(value: i32) -> Result<()> {
    crate::sys::ioprio_set(value).map_err(Error::sys("ioprio_set"))
}

/// Converts `linux.personality` (flags are refused: the spec defines none that runc applies).
pub(crate) fn personality(p: &LinuxPersonality) -> Result<libc::c_ulong> {
    if p.flags().as_ref().is_some_and(|f| !f.is_empty()) {
        return Err(Error::Unsupported {
            field: "linux.personality.flags",
        });
    }
    Ok(match p.domain() {
        LinuxPersonalityDomain::PerLinux => 0x0000,
        LinuxPersonalityDomain::PerLinux32 => 0x0008,
    })
}

/// Sets the execution domain (personality(2)).
pub(crate) fn apply_personality(persona: libc::c_ulong) -> Result<()> {
    crate::sys::personality(persona).map_err(Error::sys("personality"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_values() {
        let s: Scheduler = serde_json::from_str(
            r#"{"policy":"SCHED_RR","priority":5,"flags":["SCHED_RESET_ON_FORK"]}"#,
        )
        .expect("parse");
        let a = sched_attr(&s).expect("valid");
        assert_eq!((a.policy, a.priority, a.flags, a.size), (2, 5, 1, 56));
        let bad: Scheduler =
            serde_json::from_str(r#"{"policy":"SCHED_FIFO","priority":0}"#).expect("parse");
        assert!(sched_attr(&bad).is_err());
        let nice: Scheduler =
            serde_json::from_str(r#"{"policy":"SCHED_OTHER","nice":-21}"#).expect("parse");
        assert!(sched_attr(&nice).is_err());
    }

    #[test]
    fn io_priority_values() {
        let p: LinuxIOPriority =
            serde_json::from_str(r#"{"class":"IOPRIO_CLASS_BE","priority":4}"#).expect("parse");
        assert_eq!(io_priority(&p).expect("valid"), (2 << 13) | 4);
        let bad: LinuxIOPriority =
            serde_json::from_str(r#"{"class":"IOPRIO_CLASS_IDLE","priority":8}"#).expect("parse");
        assert!(io_priority(&bad).is_err());
    }
}
