//! The few system calls neither std nor nix wraps the way the suite needs them. Every `unsafe`
//! block of the crate lives here.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// `prlimit(2)` read of the calling process: `(soft, hard)`.
pub fn getrlimit(resource: libc::__rlimit_resource_t) -> std::io::Result<(u64, u64)> {
    let mut r = libc::rlimit64 {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: pid 0 is the calling process; a null new limit only reads; `r` is a valid,
    // writable rlimit64 for the duration of the call.
    let rc = unsafe { libc::prlimit64(0, resource, std::ptr::null(), &mut r) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((r.rlim_cur, r.rlim_max))
}

/// `getcpu(2)` as a raw system call (not the vDSO), so a seccomp filter sees it; `flag` is the
/// third (unused by the kernel) argument, which a filter rule may match on.
pub fn raw_getcpu(flag: u64) -> Result<(), i32> {
    // SAFETY: getcpu accepts null cpu/node pointers and ignores its third argument.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_getcpu,
            std::ptr::null_mut::<u32>(),
            std::ptr::null_mut::<u32>(),
            flag,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    Ok(())
}

/// `ioprio_get(IOPRIO_WHO_PROCESS, 0)`: the calling thread's I/O priority.
pub fn ioprio_get() -> std::io::Result<i64> {
    // SAFETY: ioprio_get takes two integers and returns an integer; no memory is passed.
    let rc = unsafe { libc::syscall(libc::SYS_ioprio_get, 1, 0) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(rc)
}

/// `sched_getscheduler(0)` and `sched_getparam(0)`: the policy and static priority.
pub fn scheduler() -> std::io::Result<(i32, i32)> {
    // SAFETY: pid 0 is the calling thread; no memory is passed.
    let policy = unsafe { libc::sched_getscheduler(0) };
    if policy < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut p = libc::sched_param { sched_priority: 0 };
    // SAFETY: `p` is a valid, writable sched_param for the duration of the call.
    let rc = unsafe { libc::sched_getparam(0, &mut p) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((policy & !libc::SCHED_RESET_ON_FORK, p.sched_priority))
}

/// The nice value of the calling process (getpriority(2)).
pub fn nice() -> std::io::Result<i32> {
    // SAFETY: errno is thread-local; clearing it lets -1 be told apart from an error.
    unsafe { *libc::__errno_location() = 0 };
    // SAFETY: PRIO_PROCESS with who 0 is the calling process; no memory is passed.
    let v = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    let err = std::io::Error::last_os_error();
    if v == -1 && err.raw_os_error().unwrap_or(0) != 0 {
        return Err(err);
    }
    Ok(v)
}

/// Waits until process `pid` (any process, not only a child) has exited, through
/// pidfd_open(2) and poll(2). `Ok(false)` on timeout; a pid that is already gone counts as
/// exited.
pub fn wait_pid_exit(pid: i32, timeout: Duration) -> std::io::Result<bool> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if raw < 0 {
        return Ok(true);
    }
    // SAFETY: `raw` is a fresh descriptor from pidfd_open, owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw as i32) };
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: one valid pollfd that lives across the call.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(rc > 0)
}

/// personality(2) `PER_LINUX`.
pub const PER_LINUX: u64 = 0;
/// personality(2) `PER_LINUX32`.
pub const PER_LINUX32: u64 = 8;

/// The calling thread's persona set to another for as long as this lives (personality(2)):
/// processes spawned meanwhile, a runtime and the containers it clones, inherit it.
pub struct Persona(u64);

impl Persona {
    /// Sets `persona`, remembering the current one.
    pub fn set(persona: u64) -> std::io::Result<Self> {
        // SAFETY: 0xffffffff only queries; personality takes and returns an integer.
        let old = unsafe { libc::personality(0xffff_ffff) };
        if old < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: as above; a plain persona value.
        if unsafe { libc::personality(persona as libc::c_ulong) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Persona(old as u64))
    }
}

impl Drop for Persona {
    fn drop(&mut self) {
        // SAFETY: restores the value personality(2) returned before.
        unsafe { libc::personality(self.0 as libc::c_ulong) };
    }
}

/// Takes ownership of a descriptor this process just received (SCM_RIGHTS), to close it.
pub fn own_fd(raw: std::os::fd::RawFd) -> OwnedFd {
    // SAFETY: the kernel installed `raw` in this process for the caller, and nothing else
    // owns it.
    unsafe { OwnedFd::from_raw_fd(raw) }
}

/// `sched_setscheduler(0, SCHED_RR, priority)`: a rootless probe (real-time scheduling needs
/// CAP_SYS_NICE in the initial user namespace or an RLIMIT_RTPRIO, sched(7)).
pub fn set_round_robin(priority: i32) -> std::io::Result<()> {
    let p = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: pid 0 is the calling thread; `p` is a valid sched_param for the call.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_RR, &p) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// `ioprio_set(IOPRIO_WHO_PROCESS, 0, IOPRIO_PRIO_VALUE(IOPRIO_CLASS_RT, level))`: a rootless
/// probe (the real-time class needs CAP_SYS_ADMIN in the initial user namespace, ioprio_set(2)).
pub fn set_ioprio_realtime(level: i64) -> std::io::Result<()> {
    // SAFETY: ioprio_set takes three integers; no memory is passed.
    let rc = unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, (1i64 << 13) | level) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
