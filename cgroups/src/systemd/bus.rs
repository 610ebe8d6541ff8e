//! A blocking D-Bus connection to the system bus, or for a rootless container to the user's
//! session bus, for the few calls the driver makes (D-Bus specification: "Authentication
//! Protocol" EXTERNAL over a unix socket, then `Hello`). Every read has a deadline: nothing
//! here waits forever.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::wire::{self, Call, Message, Value};
use crate::Error;

/// The system bus (D-Bus specification, "Well-known Message Bus Instances").
const SYSTEM_BUS: &str = "/run/dbus/system_bus_socket";

/// A connection, authenticated and registered with the bus.
pub(crate) struct Bus {
    sock: UnixStream,
    serial: u32,
    /// Signals read while waiting for a reply, kept for [`Bus::wait_signal`].
    pending: Vec<Message>,
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Dbus { what, source }
}

fn protocol(what: &'static str, detail: impl Into<String>) -> Error {
    Error::DbusProtocol {
        what,
        detail: detail.into(),
    }
}

/// The socket of the first `unix:path=...` entry of a D-Bus address list (D-Bus
/// specification, "Server Addresses"; other transports, e.g. `unix:abstract=`, are not spoken).
fn unix_path(address: &str) -> Option<PathBuf> {
    address.split(';').find_map(|one| {
        one.strip_prefix("unix:")?
            .split(',')
            .find_map(|kv| kv.strip_prefix("path=").map(PathBuf::from))
    })
}

/// The socket of `DBUS_SYSTEM_BUS_ADDRESS=unix:path=...`, else the well-known one.
fn address() -> PathBuf {
    std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
        .ok()
        .and_then(|a| unix_path(&a))
        .unwrap_or_else(|| PathBuf::from(SYSTEM_BUS))
}

/// The user's session bus as runc finds it (libcontainer/cgroups/systemd/user.go): the
/// `unix:path=` of `$DBUS_SESSION_BUS_ADDRESS`, else `$XDG_RUNTIME_DIR/bus` (where
/// `systemd --user`'s dbus.socket listens, user@.service(5)). `None` when neither says.
pub(crate) fn user_address(session: Option<&str>, runtime_dir: Option<&str>) -> Option<PathBuf> {
    session.and_then(unix_path).or_else(|| {
        runtime_dir
            .filter(|d| !d.is_empty())
            .map(|d| Path::new(d).join("bus"))
    })
}

/// The uid the bus sees for a caller whose effective uid is `euid` in a user namespace with
/// the map `uid_map` (/proc/self/uid_map: `inside outside count` lines, user_namespaces(7)):
/// the bus daemon reads the peer's uid with SO_PEERCRED in its own (the host's) namespace, and
/// EXTERNAL succeeds only when the claimed uid is that one (runc's user.go `DetectUID` finds
/// the same uid). An unmapped `euid` is `None`.
pub(crate) fn host_uid(uid_map: &str, euid: u32) -> Option<u32> {
    uid_map.lines().find_map(|line| {
        let mut f = line.split_whitespace().map(str::parse::<u32>);
        let (Some(Ok(inside)), Some(Ok(outside)), Some(Ok(count))) = (f.next(), f.next(), f.next())
        else {
            return None;
        };
        let offset = euid.checked_sub(inside).filter(|o| *o < count)?;
        outside.checked_add(offset)
    })
}

/// The uid to claim in EXTERNAL: the effective uid as the host sees it.
fn caller_uid() -> Result<u32, Error> {
    let euid = nix::unistd::geteuid().as_raw();
    let map = std::fs::read_to_string("/proc/self/uid_map").map_err(|source| Error::Read {
        path: "/proc/self/uid_map".into(),
        source,
    })?;
    host_uid(&map, euid).ok_or(Error::DbusProtocol {
        what: "authenticate",
        detail: format!("uid {euid} that /proc/self/uid_map does not map"),
    })
}

impl Bus {
    /// Connects to the system bus with the given timeout for each step.
    pub(crate) fn system(timeout: Duration) -> Result<Self, Error> {
        Self::at(address(), timeout)
    }

    /// Connects to the user's session bus at `path` (see [`user_address`]).
    pub(crate) fn user(path: PathBuf, timeout: Duration) -> Result<Self, Error> {
        Self::at(path, timeout).map_err(|e| match e {
            Error::DbusConnect { path, source } => Error::DbusUserConnect { path, source },
            other => other,
        })
    }

    /// Connects to the bus listening on `path`.
    pub(crate) fn at(path: PathBuf, timeout: Duration) -> Result<Self, Error> {
        let sock = UnixStream::connect(&path).map_err(|source| Error::DbusConnect {
            path: path.clone(),
            source,
        })?;
        sock.set_read_timeout(Some(timeout))
            .and_then(|()| sock.set_write_timeout(Some(timeout)))
            .map_err(io("set the bus socket's timeouts"))?;
        let mut bus = Self {
            sock,
            serial: 0,
            pending: Vec::new(),
        };
        bus.authenticate()?;
        bus.call(&Call {
            destination: "org.freedesktop.DBus",
            path: "/org/freedesktop/DBus",
            interface: "org.freedesktop.DBus",
            member: "Hello",
            args: &[],
        })?;
        Ok(bus)
    }

    /// SASL EXTERNAL: the server checks our uid on the socket (SO_PEERCRED).
    fn authenticate(&mut self) -> Result<(), Error> {
        let uid = caller_uid()?.to_string();
        let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
        self.sock
            .write_all(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes())
            .map_err(io("send AUTH"))?;
        let line = self.read_line()?;
        if !line.starts_with("OK ") {
            return Err(protocol("authenticate", line));
        }
        self.sock.write_all(b"BEGIN\r\n").map_err(io("send BEGIN"))
    }

    fn read_line(&mut self) -> Result<String, Error> {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            if line.len() > 4096 {
                return Err(protocol("authenticate", "overlong reply"));
            }
            self.sock
                .read_exact(&mut byte)
                .map_err(io("read the AUTH reply"))?;
            line.push(byte[0]);
        }
        Ok(String::from_utf8_lossy(&line).trim_end().to_string())
    }

    fn read_message(&mut self) -> Result<Message, Error> {
        let mut head = [0u8; 16];
        self.sock
            .read_exact(&mut head)
            .map_err(io("read a message"))?;
        let len = wire::message_len(&head).map_err(|m| protocol("read a message", m.0))?;
        if len > 1 << 24 {
            return Err(protocol("read a message", "over 16 MiB"));
        }
        let mut buf = head.to_vec();
        buf.resize(len, 0);
        self.sock
            .read_exact(&mut buf[16..])
            .map_err(io("read a message"))?;
        Message::parse(&buf).map_err(|m| protocol("parse a message", m.0))
    }

    /// Sends `call` and returns the reply's body; an error reply is [`Error::DbusCall`].
    pub(crate) fn call(&mut self, call: &Call<'_>) -> Result<Vec<Value>, Error> {
        self.serial += 1;
        let serial = self.serial;
        self.sock
            .write_all(&call.marshal(serial))
            .map_err(io("send a method call"))?;
        loop {
            let m = self.read_message()?;
            match m.kind {
                wire::SIGNAL => self.pending.push(m),
                wire::METHOD_RETURN if m.reply_serial == Some(serial) => return Ok(m.body),
                wire::ERROR if m.reply_serial == Some(serial) => {
                    return Err(Error::DbusCall {
                        method: call.member.to_string(),
                        name: m.error_name.unwrap_or_default(),
                        message: m
                            .body
                            .first()
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                    })
                }
                _ => {}
            }
        }
    }

    /// Waits until a signal `member` of `interface` whose body satisfies `wanted` arrives,
    /// at most `timeout`.
    pub(crate) fn wait_signal(
        &mut self,
        interface: &str,
        member: &str,
        timeout: Duration,
        wanted: impl Fn(&[Value]) -> bool,
    ) -> Result<Vec<Value>, Error> {
        let matches = |m: &Message| {
            m.kind == wire::SIGNAL
                && m.interface.as_deref() == Some(interface)
                && m.member.as_deref() == Some(member)
                && wanted(&m.body)
        };
        if let Some(i) = self.pending.iter().position(matches) {
            return Ok(self.pending.swap_remove(i).body);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::DbusTimeout {
                    what: "a systemd job to finish",
                    seconds: timeout.as_secs(),
                });
            }
            self.sock
                .set_read_timeout(Some(left))
                .map_err(io("set the bus socket's timeout"))?;
            let m = match self.read_message() {
                Err(Error::Dbus { source, .. })
                    if matches!(
                        source.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                other => other?,
            };
            if matches(&m) {
                return Ok(m.body);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command, Stdio};

    /// A private dbus-daemon (no systemd needed), killed on drop.
    struct Daemon {
        child: Child,
        _dir: tempfile::TempDir,
    }

    impl Drop for Daemon {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn daemon() -> (Daemon, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("bus");
        // No service directories: nothing is activated, an absent name is an error reply.
        let config = dir.path().join("bus.conf");
        std::fs::write(
            &config,
            format!(
                "<busconfig><type>session</type><listen>unix:path={}</listen><auth>EXTERNAL</auth>\
                 <policy context=\"default\"><allow send_destination=\"*\" eavesdrop=\"true\"/>\
                 <allow eavesdrop=\"true\"/><allow own=\"*\"/></policy></busconfig>",
                sock.display()
            ),
        )
        .unwrap();
        let mut child = Command::new("dbus-daemon")
            .args(["--nofork", "--print-address"])
            .arg(format!("--config-file={}", config.display()))
            .stdout(Stdio::piped())
            .spawn()
            .expect("dbus-daemon (package dbus) runs the bus tests");
        // It prints its address once it listens: no sleep needed.
        let mut out = child.stdout.take().unwrap();
        let mut byte = [0u8; 1];
        while out.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {}
        (Daemon { child, _dir: dir }, sock)
    }

    #[test]
    fn the_user_bus_is_the_session_address_else_the_runtime_dir() {
        let p = |s, r| user_address(s, r);
        assert_eq!(
            p(Some("unix:path=/run/user/1000/bus"), Some("/x")),
            Some("/run/user/1000/bus".into())
        );
        // The first unix:path= of a list; its other keys ignored.
        assert_eq!(
            p(
                Some("unix:abstract=/tmp/a,guid=1;unix:guid=2,path=/tmp/b"),
                None
            ),
            Some("/tmp/b".into())
        );
        // No unix:path= in it (abstract only) or unset: $XDG_RUNTIME_DIR/bus.
        assert_eq!(
            p(Some("unix:abstract=/tmp/a"), Some("/run/user/1000")),
            Some("/run/user/1000/bus".into())
        );
        assert_eq!(p(None, Some("/run/user/7")), Some("/run/user/7/bus".into()));
        assert_eq!(p(None, Some("")), None);
        assert_eq!(p(None, None), None);
    }

    #[test]
    fn external_claims_the_uid_the_host_sees() {
        // The host's own namespace: the identity map.
        assert_eq!(
            host_uid("         0          0 4294967295\n", 1000),
            Some(1000)
        );
        // Rootless podman's namespace: 0 is the user, 1.. its subordinate range.
        let map = "         0       1000          1\n         1     100000      65536\n";
        assert_eq!(host_uid(map, 0), Some(1000));
        assert_eq!(host_uid(map, 1), Some(100000));
        assert_eq!(host_uid(map, 65536), Some(165535));
        assert_eq!(host_uid(map, 65537), None);
        assert_eq!(host_uid("", 0), None);
    }

    #[test]
    fn talks_to_a_real_bus_daemon() {
        let (_d, sock) = daemon();
        let mut bus = Bus::at(sock, Duration::from_secs(10)).unwrap();
        let id = bus
            .call(&Call {
                destination: "org.freedesktop.DBus",
                path: "/org/freedesktop/DBus",
                interface: "org.freedesktop.DBus",
                member: "GetId",
                args: &[],
            })
            .unwrap();
        assert!(
            matches!(&id[..], [Value::Str(s)] if s.len() == 32),
            "{id:?}"
        );
        // No systemd on this bus: the daemon answers with an error reply, not silence.
        let err = bus
            .call(&Call {
                destination: "org.freedesktop.systemd1",
                path: "/org/freedesktop/systemd1",
                interface: "org.freedesktop.systemd1.Manager",
                member: "StopUnit",
                args: &[Value::str("x.scope"), Value::str("replace")],
            })
            .unwrap_err();
        assert!(
            matches!(&err, Error::DbusCall { name, .. } if name == "org.freedesktop.DBus.Error.ServiceUnknown"),
            "{err}"
        );
    }

    #[test]
    fn a_signal_is_waited_for_with_a_deadline() {
        let (_d, sock) = daemon();
        let mut bus = Bus::at(sock, Duration::from_secs(10)).unwrap();
        // The daemon sends NameAcquired right after Hello's reply.
        let name = bus.wait_signal(
            "org.freedesktop.DBus",
            "NameAcquired",
            Duration::from_secs(5),
            |b| matches!(b, [Value::Str(n)] if n.starts_with(':')),
        );
        assert!(name.is_ok(), "{name:?}");
        let started = Instant::now();
        let err = bus
            .wait_signal("a.b", "C", Duration::from_millis(200), |_| true)
            .unwrap_err();
        assert!(matches!(err, Error::DbusTimeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
