//! Filters loaded for real: each test forks a child that loads a program and makes syscalls; the
//! parent watches how it ends (exit code, or the signal that killed it), with a timeout, and
//! kills and reaps it on the way out whatever happens.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use serde_json::{json, Value};

use super::{fixture, spec};
use crate::seccomp::{send_to_listener, SeccompProgram};

/// How long a child may take.
const TIMEOUT: Duration = Duration::from_secs(20);
/// Exit code of a child whose filter failed to load.
const LOAD_FAILED: i32 = 120;

fn program(json: Value) -> SeccompProgram {
    SeccompProgram::from_spec(&spec(json)).expect("profile compiles")
}

/// Ends the child at once, without running the test harness's atexit handlers.
fn exit_now(code: i32) -> ! {
    // SAFETY: _exit(2) only terminates the calling process; nothing is left to unwind.
    unsafe { libc::_exit(code) }
}

fn timeout() -> PollTimeout {
    PollTimeout::try_from(TIMEOUT).unwrap_or(PollTimeout::MAX)
}

/// Waits until `fd` is readable, failing the test after [`TIMEOUT`].
fn wait_readable(fd: impl AsFd, what: &str) {
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    let n = poll(&mut fds, timeout()).expect("poll");
    assert_eq!(n, 1, "{what}: nothing within {TIMEOUT:?}");
}

/// A forked child; killed and reaped on drop unless [`Child::wait`] reaped it.
struct Child {
    pid: Pid,
    pidfd: OwnedFd,
    reaped: bool,
}

impl Child {
    /// Forks; the child runs `body` and exits with its result (125 if it panics).
    fn spawn(body: impl FnOnce() -> i32) -> Child {
        // SAFETY: the test binary is multi-threaded; the child only runs `body` (syscalls and
        // glibc malloc, which glibc makes safe after fork) and leaves through _exit, never
        // returning into the harness.
        match unsafe { fork() }.expect("fork") {
            ForkResult::Child => {
                let code = std::panic::catch_unwind(AssertUnwindSafe(body)).unwrap_or(125);
                exit_now(code)
            }
            ForkResult::Parent { child } => {
                // SAFETY: pidfd_open takes two integers and touches no memory of ours.
                let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.as_raw(), 0) };
                if fd < 0 {
                    let _ = kill(child, Signal::SIGKILL);
                    let _ = waitpid(child, None);
                    panic!("pidfd_open: {}", std::io::Error::last_os_error());
                }
                let fd = i32::try_from(fd).expect("fd fits");
                // SAFETY: pidfd_open returned a new descriptor nothing else owns.
                let pidfd = unsafe { OwnedFd::from_raw_fd(fd) };
                Child {
                    pid: child,
                    pidfd,
                    reaped: false,
                }
            }
        }
    }

    /// How the child ended.
    fn wait(mut self) -> WaitStatus {
        wait_readable(&self.pidfd, "child exit");
        self.reaped = true;
        waitpid(self.pid, None).expect("waitpid")
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = kill(self.pid, Signal::SIGKILL);
            let _ = waitpid(self.pid, None);
        }
    }
}

/// In the child: no core files from SIGSYS, no_new_privs if asked, then the filter.
fn load(prog: &SeccompProgram, no_new_privs: bool) -> Option<OwnedFd> {
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit reads the struct we pass and keeps no reference.
    if unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) } != 0 {
        exit_now(LOAD_FAILED + 1);
    }
    if no_new_privs && nix::sys::prctl::set_no_new_privs().is_err() {
        exit_now(LOAD_FAILED + 2);
    }
    match prog.load() {
        Ok(fd) => fd,
        Err(_) => exit_now(LOAD_FAILED),
    }
}

/// getppid(2) with arbitrary argument registers (it ignores them; the filter sees them):
/// `Ok(ret)` or `Err(errno)`.
fn getppid_with(args: [u64; 6]) -> Result<i64, i32> {
    raw(libc::SYS_getppid, args)
}

fn raw(nr: libc::c_long, a: [u64; 6]) -> Result<i64, i32> {
    // SAFETY: only used with syscalls that take integer arguments here (getppid, which ignores
    // them; clone3/kexec_load with invalid ones that fail before touching memory) and whose
    // result is an integer.
    let ret = unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) };
    if ret == -1 {
        Err(nix::errno::Errno::last_raw())
    } else {
        Ok(ret)
    }
}

fn exited(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        _ => None,
    }
}

fn killed_by(status: WaitStatus) -> Option<Signal> {
    match status {
        WaitStatus::Signaled(_, sig, _) => Some(sig),
        _ => None,
    }
}

fn one_rule(action: &str, extra: Value) -> Value {
    let mut rule = json!({"names": ["getppid"], "action": action});
    if let (Some(rule), Some(extra)) = (rule.as_object_mut(), extra.as_object()) {
        rule.extend(extra.clone());
    }
    json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]})
}

#[test]
fn errno_returns_the_configured_errno() {
    let prog = program(one_rule("SCMP_ACT_ERRNO", json!({"errnoRet": 42})));
    let status = Child::spawn(|| {
        load(&prog, true);
        match getppid_with([0; 6]) {
            Err(42) => 0,
            Err(_) => 1,
            Ok(_) => 2,
        }
    })
    .wait();
    assert_eq!(exited(status), Some(0), "{status:?}");
}

#[test]
fn default_errno_and_the_enosys_stub() {
    let prog = program(json!({
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 43,
        "syscalls": [{"names": ["exit_group", "exit", "rt_sigreturn"], "action": "SCMP_ACT_ALLOW"}]
    }));
    let status = Child::spawn(|| {
        load(&prog, true);
        if getppid_with([0; 6]) != Err(43) {
            return 1;
        }
        // futex_waitv (449) is past exit_group (231), the last syscall the profile names.
        if raw(libc::SYS_futex_waitv, [0; 6]) != Err(libc::ENOSYS) {
            return 2;
        }
        0
    })
    .wait();
    assert_eq!(exited(status), Some(0), "{status:?}");
}

#[test]
fn kill_process_and_kill_thread_end_the_child_with_sigsys() {
    for action in [
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_THREAD",
    ] {
        let prog = program(one_rule(action, json!({})));
        let status = Child::spawn(|| {
            load(&prog, true);
            let _ = getppid_with([0; 6]);
            3
        })
        .wait();
        assert_eq!(
            killed_by(status),
            Some(Signal::SIGSYS),
            "{action}: {status:?}"
        );
    }
}

extern "C" fn on_sigsys(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    /// `SYS_SECCOMP`: si_code of a SIGSYS sent by a seccomp filter.
    const SYS_SECCOMP: libc::c_int = 1;
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler.
    let code = unsafe { (*info).si_code };
    exit_now(if code == SYS_SECCOMP { 77 } else { 78 })
}

#[test]
fn trap_delivers_sigsys_from_seccomp() {
    let prog = program(one_rule("SCMP_ACT_TRAP", json!({})));
    let status = Child::spawn(|| {
        let handler = nix::sys::signal::SigAction::new(
            nix::sys::signal::SigHandler::SigAction(on_sigsys),
            nix::sys::signal::SaFlags::SA_SIGINFO,
            nix::sys::signal::SigSet::empty(),
        );
        // SAFETY: the handler only reads its siginfo and calls _exit, both async-signal-safe.
        if unsafe { nix::sys::signal::sigaction(Signal::SIGSYS, &handler) }.is_err() {
            return 1;
        }
        load(&prog, true);
        let _ = getppid_with([0; 6]);
        2
    })
    .wait();
    assert_eq!(exited(status), Some(77), "{status:?}");
}

#[test]
fn log_and_allow_let_the_syscall_run_and_trace_without_tracer_is_enosys() {
    let me = i64::from(std::process::id());
    let cases = [
        (one_rule("SCMP_ACT_LOG", json!({})), Ok(me)),
        (
            json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                {"names": ["getppid", "exit_group"], "action": "SCMP_ACT_ALLOW"}]}),
            Ok(me),
        ),
        (
            one_rule("SCMP_ACT_TRACE", json!({"errnoRet": 5})),
            Err(libc::ENOSYS),
        ),
    ];
    for (profile, want) in cases {
        let prog = program(profile.clone());
        let status = Child::spawn(|| {
            load(&prog, true);
            i32::from(getppid_with([0; 6]) != want)
        })
        .wait();
        assert_eq!(exited(status), Some(0), "{profile}: {status:?}");
    }
}

#[test]
fn every_operator_in_the_kernel_at_the_word_boundary() {
    let ops = [
        "SCMP_CMP_NE",
        "SCMP_CMP_LT",
        "SCMP_CMP_LE",
        "SCMP_CMP_EQ",
        "SCMP_CMP_GE",
        "SCMP_CMP_GT",
        "SCMP_CMP_MASKED_EQ",
    ];
    let value: u64 = 0x1_0000_0000;
    let value_two: u64 = 0x1_0000_0000;
    let probes: [u64; 8] = [
        0,
        1,
        0xffff_ffff,
        value - 1,
        value,
        value + 1,
        0x2_0000_0000,
        u64::MAX,
    ];
    for op in ops {
        let prog = program(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{
            "names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 9,
            "args": [{"index": 3, "value": value, "valueTwo": value_two, "op": op}]}]}));
        let expect: Vec<bool> = probes
            .iter()
            .map(|&a| match op {
                "SCMP_CMP_NE" => a != value,
                "SCMP_CMP_LT" => a < value,
                "SCMP_CMP_LE" => a <= value,
                "SCMP_CMP_EQ" => a == value,
                "SCMP_CMP_GE" => a >= value,
                "SCMP_CMP_GT" => a > value,
                _ => a & value == value_two,
            })
            .collect();
        let status = Child::spawn(|| {
            load(&prog, true);
            let mut wrong = 0;
            for (&arg, &hit) in probes.iter().zip(&expect) {
                let got = getppid_with([0, 0, 0, arg, 0, 0]) == Err(9);
                wrong += i32::from(got != hit);
            }
            wrong
        })
        .wait();
        assert_eq!(exited(status), Some(0), "{op}: mismatches or {status:?}");
    }
}

#[test]
fn flags_are_accepted_by_the_kernel() {
    let prog = program(json!({"defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 11}]}));
    let status = Child::spawn(|| {
        load(&prog, true);
        i32::from(getppid_with([0; 6]) != Err(11))
    })
    .wait();
    assert_eq!(exited(status), Some(0), "{status:?}");
}

/// Without no_new_privs the filter needs CAP_SYS_ADMIN: root's child still has it (runc loads
/// before dropping capabilities in that case); once it is gone, the kernel says EACCES.
#[test]
fn without_no_new_privs_loading_needs_cap_sys_admin() {
    assert!(nix::unistd::geteuid().is_root(), "this test needs root");
    let prog = program(one_rule("SCMP_ACT_ERRNO", json!({"errnoRet": 12})));
    let status = Child::spawn(|| {
        load(&prog, false);
        i32::from(getppid_with([0; 6]) != Err(12))
    })
    .wait();
    assert_eq!(exited(status), Some(0), "{status:?}");
    let status = Child::spawn(|| {
        if caps::drop(
            None,
            caps::CapSet::Effective,
            caps::Capability::CAP_SYS_ADMIN,
        )
        .is_err()
        {
            return 1;
        }
        match prog.load() {
            Err(crate::seccomp::SeccompError::Load { source, .. })
                if source.raw_os_error() == Some(libc::EACCES) =>
            {
                0
            }
            _ => 2,
        }
    })
    .wait();
    assert_eq!(exited(status), Some(0), "{status:?}");
}

/// The notify fd reaches an agent through `send_to_listener`; the agent answers one call with
/// an errno and one with a value.
#[test]
fn notify_reaches_the_listener_which_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("agent.sock");
    let listener = UnixListener::bind(&sock).expect("bind");
    let prog = program(json!({"defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock, "listenerMetadata": "hello agent",
        "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]}));
    assert_eq!(prog.listener_path(), Some(sock.as_path()));
    let child = Child::spawn(|| {
        let Some(fd) = load(&prog, true) else {
            return 1;
        };
        let state = format!(
            r#"{{"ociVersion":"1.0.2","id":"seccomp-notify-test","status":"creating","pid":{},"bundle":"/"}}"#,
            std::process::id()
        );
        let (path, meta) = (prog.listener_path(), prog.listener_metadata());
        let Some(path) = path else { return 2 };
        if send_to_listener(path, fd.as_fd(), &state, meta).is_err() {
            return 3;
        }
        drop(fd);
        if getppid_with([7, 0, 0, 0, 0, 0]) != Err(99) {
            return 4;
        }
        i32::from(getppid_with([8, 0, 0, 0, 0, 0]) != Ok(4242)) * 5
    });

    wait_readable(&listener, "connection from the child");
    let (mut stream, _) = listener.accept().expect("accept");
    let mut buf = vec![0u8; 4096];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let (n, fd) = {
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<UnixAddr>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .expect("recvmsg");
        let mut fds = Vec::new();
        for c in msg.cmsgs().expect("cmsgs") {
            if let ControlMessageOwned::ScmRights(r) = c {
                fds.extend(r);
            }
        }
        assert_eq!(fds.len(), 1, "one fd in SCM_RIGHTS");
        // SAFETY: the kernel installed this descriptor for us with the message.
        (msg.bytes, unsafe { OwnedFd::from_raw_fd(fds[0]) })
    };
    buf.truncate(n);
    stream.read_to_end(&mut buf).expect("rest of the state");
    let state: Value = serde_json::from_slice(&buf).expect("state json");
    assert_eq!(state["fds"], json!(["seccompFd"]));
    assert_eq!(state["metadata"], "hello agent");
    assert_eq!(state["pid"], json!(child.pid.as_raw()));
    assert_eq!(state["state"]["id"], "seccomp-notify-test");

    for (arg, val, error) in [(7u64, 0i64, -99i32), (8, 4242, 0)] {
        wait_readable(&fd, "notification");
        // SAFETY: seccomp_notif is plain data; all-zero is what NOTIF_RECV requires.
        let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: NOTIF_RECV writes one seccomp_notif into `req`, which we own.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) };
        assert_eq!(r, 0, "NOTIF_RECV: {}", std::io::Error::last_os_error());
        assert_eq!(i64::from(req.data.nr), libc::SYS_getppid);
        assert_eq!(req.data.args[0], arg);
        assert_eq!(req.pid, child.pid.as_raw().unsigned_abs());
        let mut resp = libc::seccomp_notif_resp {
            id: req.id,
            val,
            error,
            flags: 0,
        };
        // SAFETY: NOTIF_SEND reads one seccomp_notif_resp from `resp`.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) };
        assert_eq!(r, 0, "NOTIF_SEND: {}", std::io::Error::last_os_error());
    }
    let status = child.wait();
    assert_eq!(exited(status), Some(0), "{status:?}");
}

/// docker's and podman's profiles load, and a program still runs under them: getpid, write to a
/// pipe, a denied syscall denied, then execve of a dynamically linked /bin/true.
#[test]
fn docker_and_podman_profiles_load_and_run_a_program() {
    let truth = CString::new("/bin/true").expect("path");
    for name in ["docker", "podman"] {
        let prog = program(fixture(name));
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
        let child = Child::spawn(|| {
            load(&prog, true);
            if nix::unistd::getpid().as_raw() <= 0 {
                return 1;
            }
            if nix::unistd::write(&w, b"x") != Ok(1) {
                return 2;
            }
            // Invalid flags: EINVAL from the kernel, EPERM from the filter.
            if raw(libc::SYS_kexec_load, [0, 0, 0, 0xdead_beef, 0, 0]) != Err(libc::EPERM) {
                return 3;
            }
            let _ = nix::unistd::execv(&truth, &[&truth]);
            4
        });
        drop(w);
        let mut got = Vec::new();
        std::fs::File::from(r)
            .read_to_end(&mut got)
            .expect("read pipe");
        assert_eq!(got, b"x", "{name}");
        let status = child.wait();
        assert_eq!(exited(status), Some(0), "{name}: {status:?}");
    }
}

/// getppid through the i386 entry point (`int 0x80`, nr 64): `seccomp_data.arch` is then
/// `AUDIT_ARCH_I386`, so this reaches the filter's i386 section.
fn getppid_i386() -> i32 {
    let mut ret: u64 = 64;
    // SAFETY: `int 0x80` runs i386 syscall 64, getppid, which takes no arguments and touches no
    // memory; rax carries the number in and the result out, r8-r11 are declared clobbered
    // (older kernels zeroed them on this path).
    unsafe {
        std::arch::asm!(
            "int 0x80",
            inout("rax") ret,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
            options(nostack)
        );
    }
    // The result is a 32-bit int in eax.
    ret as u32 as i32
}

#[test]
fn the_i386_section_filters_compat_syscalls() {
    let me = i32::try_from(std::process::id()).expect("pid");
    // Sanity: the compat entry works on this kernel and returns the parent.
    let status = Child::spawn(|| i32::from(getppid_i386() != me)).wait();
    assert_eq!(exited(status), Some(0), "int 0x80 unavailable? {status:?}");

    let with_x86 = program(json!({"defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 33}]}));
    let status = Child::spawn(|| {
        load(&with_x86, true);
        i32::from(getppid_i386() != -33)
    })
    .wait();
    assert_eq!(exited(status), Some(0), "{status:?}");

    // Without SCMP_ARCH_X86 the i386 ABI is a bad architecture: killed.
    let native_only = program(json!({"defaultAction": "SCMP_ACT_ALLOW"}));
    let status = Child::spawn(|| {
        load(&native_only, true);
        let _ = getppid_i386();
        1
    })
    .wait();
    assert_eq!(killed_by(status), Some(Signal::SIGSYS), "{status:?}");
}
