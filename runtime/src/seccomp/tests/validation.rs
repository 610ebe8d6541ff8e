//! What `from_spec` refuses, flags, and the message for the listener.

use serde_json::{json, Value};

use super::spec;
use crate::seccomp::notify::process_state;
use crate::seccomp::{SeccompError, SeccompProgram};

fn refused(json: Value) -> SeccompError {
    SeccompProgram::from_spec(&spec(json)).expect_err("must be refused")
}

#[test]
fn invalid_profiles_are_refused_with_the_field() {
    let e = refused(json!({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}));
    assert!(
        matches!(&e, SeccompError::ErrnoNotSupported { field, .. } if field == "defaultErrnoRet"),
        "{e:?}"
    );
    let e = refused(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["write"], "action": "SCMP_ACT_KILL", "errnoRet": 1}]}));
    assert!(
        matches!(&e, SeccompError::ErrnoNotSupported { field, .. } if field == "syscalls[1].errnoRet"),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "linux.seccomp.syscalls[1].errnoRet: SCMP_ACT_KILL takes no errno"
    );
    let e = refused(json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 65536}));
    assert!(
        matches!(e, SeccompError::ErrnoOutOfRange { value: 65536, .. }),
        "{e:?}"
    );
    let e = refused(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]}));
    assert!(
        matches!(e, SeccompError::ArgIndex { rule: 0, index: 6 }),
        "{e:?}"
    );
    let e = refused(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": [], "action": "SCMP_ACT_ERRNO"}]}));
    assert!(matches!(e, SeccompError::EmptyName { rule: 0 }), "{e:?}");
    let e = refused(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read", ""], "action": "SCMP_ACT_ERRNO"}]}));
    assert!(matches!(e, SeccompError::EmptyName { rule: 0 }), "{e:?}");
    let e = refused(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]}));
    assert!(matches!(e, SeccompError::NotifyWithoutListener), "{e:?}");
    let e = refused(
        json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "agent.sock",
        "syscalls": [{"names": ["mknod"], "action": "SCMP_ACT_NOTIFY"}]}),
    );
    assert!(
        matches!(e, SeccompError::ListenerPathRelative { .. }),
        "{e:?}"
    );
}

/// Issue 12, item 10: profiles whose notified syscalls the init needs before the listener fd
/// reaches the agent would hang `create`; refused in runc's words.
#[test]
fn notify_that_would_hang_the_init_is_refused() {
    let e = refused(
        json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/run/a.sock",
        "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}]}),
    );
    assert_eq!(
        e.to_string(),
        "SCMP_ACT_NOTIFY cannot be used as default action"
    );
    for name in ["write", "sendmsg"] {
        let e = refused(
            json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/a.sock",
            "syscalls": [{"names": ["mknod", name], "action": "SCMP_ACT_NOTIFY",
                          "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
        );
        assert_eq!(
            e.to_string(),
            format!("SCMP_ACT_NOTIFY cannot be used for the {name} syscall")
        );
    }
    // Other actions on those syscalls, and NOTIFY elsewhere, stay fine.
    SeccompProgram::from_spec(&spec(json!({"defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/run/a.sock",
        "syscalls": [{"names": ["write", "sendmsg"], "action": "SCMP_ACT_ERRNO"},
                     {"names": ["mknod"], "action": "SCMP_ACT_NOTIFY"}]})))
    .expect("valid");
}

#[test]
fn unknown_names_are_refused_by_the_parser() {
    for bad in [
        json!({"defaultAction": "SCMP_ACT_MAYBE"}),
        json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}),
        json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_FAST"]}),
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"],
            "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_ABOUT"}]}]}),
    ] {
        assert!(
            serde_json::from_value::<oci_spec::runtime::LinuxSeccomp>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn flags_map_to_seccomp_filter_flags() {
    let p = SeccompProgram::from_spec(&spec(json!({"defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                  "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]})))
    .expect("valid");
    // WAIT_KILLABLE_RECV only means something with a listener: dropped without one.
    assert_eq!(
        p.flags,
        libc::SECCOMP_FILTER_FLAG_TSYNC
            | libc::SECCOMP_FILTER_FLAG_LOG
            | libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
    );
    assert!(p.listener_path().is_none());
    let p = SeccompProgram::from_spec(&spec(json!({"defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/run/agent.sock", "listenerMetadata": "MKNOD=/dev/null",
        "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        "syscalls": [{"names": ["mknod"], "action": "SCMP_ACT_NOTIFY"}]})))
    .expect("valid");
    assert_eq!(
        p.flags,
        libc::SECCOMP_FILTER_FLAG_TSYNC
            | libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH
            | libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
            | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
    );
    assert_eq!(
        p.listener_path(),
        Some(std::path::Path::new("/run/agent.sock"))
    );
    assert_eq!(p.listener_metadata(), "MKNOD=/dev/null");
}

#[test]
fn the_container_process_state_wraps_the_state() {
    let state = r#"{"ociVersion":"1.0.2","id":"c1","status":"creating","pid":4422,"bundle":"/b"}"#;
    let msg: Value =
        serde_json::from_slice(&process_state(state, "meta").expect("ok")).expect("json");
    assert_eq!(
        msg,
        json!({"ociVersion": "1.0.2", "fds": ["seccompFd"], "pid": 4422, "metadata": "meta",
               "state": {"ociVersion":"1.0.2","id":"c1","status":"creating","pid":4422,"bundle":"/b"}})
    );
    let msg: Value = serde_json::from_slice(&process_state(state, "").expect("ok")).expect("json");
    assert!(msg.get("metadata").is_none());
    assert!(matches!(
        process_state("[1]", ""),
        Err(SeccompError::StateJson { .. })
    ));
}
