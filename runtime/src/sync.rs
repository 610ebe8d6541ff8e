//! The parent/child synchronisation protocol over one `SOCK_SEQPACKET` socketpair.
//!
//! A message is JSON, sent as one datagram when it fits in [`CHUNK`] bytes (every message but a
//! `Go` with a large state), else as a run of datagrams: seqpacket keeps boundaries, so the only
//! framing is one leading byte per datagram saying whether more of the message follows. A single
//! datagram cannot carry any state the spec allows: the kernel refuses one larger than the socket's
//! send buffer (`EMSGSIZE`, about 208 KiB by default, `net.core.wmem_default`), and 256 KiB of
//! annotations is what Kubernetes allows per object. Chunks need no other system call than
//! `sendmsg`/`recvmsg` (a memfd would need `memfd_create` in a child that may already run under
//! its seccomp filter), and the receiver reads them while the sender writes, so the socket buffer
//! never has to hold a whole message. A truncated datagram (`MSG_TRUNC`) or control message
//! (`MSG_CTRUNC`) is an error, never a shortened message.
//!
//! The same socket carries the child's error chain back to the parent, so a failure deep in
//! the container's set-up (a missing executable, a bad mount) is reported by `hako create` with
//! every cause. An end-of-file on either side means the other process died: the child exits, the
//! parent reaps it and reports how it ended. Every receive of the parent is bounded
//! ([`SyncSocket::recv_full_within`]): a stuck child is killed and reported, never waited on
//! forever. See `runtime/docs/protocol.md` for the diagram.

use std::cell::RefCell;
use std::fmt;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::poll::PollFlags;
use nix::sys::socket::{
    self, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType,
};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Payload bytes per datagram: every message but a large state fits in one, and a datagram of
/// this size is far below any socket's send buffer.
pub(crate) const CHUNK: usize = 32 * 1024;
/// The leading byte of a datagram: more of the message follows.
const MORE: u8 = 1;
/// The leading byte of a message's last (usually only) datagram.
const LAST: u8 = 0;
/// Largest message accepted: a bound on what a confused peer can make us allocate, far above any
/// real state (Kubernetes allows 256 KiB of annotations; a whole config is rarely 1 MiB).
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// How long the parent waits for the child between two messages while the child sets itself up.
///
/// That set-up (joins, mounts, pivot, credentials) takes about 2 ms on this project's test host:
/// 60 s is four orders of magnitude above it, room for slow mount sources (NFS, FUSE) on a loaded
/// host, and still under the kubelet's 2-minute `--runtime-request-timeout`, so that hako reports
/// a stuck child itself (killed, cleaned up, an error naming the wait) before its caller gives
/// up on it. Hooks that run in the child (createContainer) add their own time: see
/// [`child_hooks_bound`].
pub(crate) const SETUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Test-only override of [`SETUP_TIMEOUT`], in seconds: the integration tests stall a child on
/// purpose and cannot wait a minute for each. Documented in runtime/docs/protocol.md.
const SETUP_TIMEOUT_ENV: &str = "HAKO_TEST_SYNC_TIMEOUT";

/// The bound on each wait of the parent for the child's set-up ([`SETUP_TIMEOUT`], unless the
/// test override is set).
pub(crate) fn setup_bound() -> Duration {
    std::env::var(SETUP_TIMEOUT_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(SETUP_TIMEOUT)
}

/// The bound on the wait that spans the child's createContainer hooks: the set-up bound plus
/// each hook's own `timeout`, a hook without one counted as one more set-up bound (runc would
/// wait for it forever; hako never waits forever).
pub(crate) fn child_hooks_bound(timeouts: impl Iterator<Item = Option<i64>>) -> Duration {
    let setup = setup_bound();
    timeouts.fold(setup, |sum, t| {
        sum.saturating_add(match t {
            Some(secs) => Duration::from_secs(u64::try_from(secs).unwrap_or(0)),
            None => setup,
        })
    })
}

/// What the parent and the child say to each other.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub(crate) enum Message {
    /// Parent → child: id maps are written and the child is in its cgroup; carries the state JSON
    /// for hooks that run in the container (createContainer, startContainer).
    Go {
        /// The container state as hooks receive it on stdin.
        state: String,
    },
    /// Child → parent: mounts are prepared, run prestart and createRuntime hooks now.
    RunHooks,
    /// Parent → child: runtime-namespace hooks done; go on to pivot.
    HooksDone,
    /// Child → parent: the seccomp listener fd (attached with SCM_RIGHTS), for the parent to
    /// hand to `listenerPath`, which the pivoted child can no longer reach.
    SeccompNotify,
    /// Child → parent: the child unshared its user namespace after joining the others; write
    /// its uid_map/gid_map now.
    MapIds,
    /// Parent → child: the maps are written.
    IdsMapped,
    /// Grandchild → parent: the container's pid 1, forked by the child into the pid namespace
    /// it unshared; the kernel attaches its pid (SCM_CREDENTIALS). The parent answers with a
    /// second `Go` carrying the state with that pid.
    Born,
    /// Child → parent: set-up is complete; the init now waits on the exec fifo.
    Ready,
    /// Child → parent: set-up failed; the chain of causes, outermost first.
    Error {
        /// One line per cause.
        chain: Vec<String>,
    },
}

impl Message {
    /// The message's type, for errors (never its payload).
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Message::Go { .. } => "go",
            Message::RunHooks => "runHooks",
            Message::HooksDone => "hooksDone",
            Message::SeccompNotify => "seccompNotify",
            Message::MapIds => "mapIds",
            Message::IdsMapped => "idsMapped",
            Message::Born => "born",
            Message::Ready => "ready",
            Message::Error { .. } => "error",
        }
    }
}

/// One received message and what the kernel attached to it.
pub(crate) struct Received {
    pub(crate) message: Message,
    /// A descriptor sent with SCM_RIGHTS.
    pub(crate) fd: Option<OwnedFd>,
    /// The sender's pid (SCM_CREDENTIALS), once [`SyncSocket::pass_credentials`] was called.
    pub(crate) sender: Option<i32>,
}

/// One end of the sync socketpair.
#[derive(Debug)]
pub(crate) struct SyncSocket {
    fd: OwnedFd,
    /// The receive buffer, allocated on the first receive and reused for every datagram.
    buf: RefCell<Vec<u8>>,
}

impl AsFd for SyncSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Creates the pair: (parent end, child end), both close-on-exec.
pub(crate) fn pair() -> Result<(SyncSocket, SyncSocket)> {
    let (a, b) = socket::socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(Error::sys("socketpair(AF_UNIX, SOCK_SEQPACKET)"))?;
    Ok((SyncSocket::new(a), SyncSocket::new(b)))
}

impl SyncSocket {
    fn new(fd: OwnedFd) -> Self {
        SyncSocket {
            fd,
            buf: RefCell::new(Vec::new()),
        }
    }

    /// Sends one message.
    pub(crate) fn send(&self, msg: &Message) -> Result<()> {
        self.send_chunks(msg, None)
    }

    /// Sends one message with a descriptor attached (SCM_RIGHTS, on its first datagram).
    pub(crate) fn send_with_fd(&self, msg: &Message, fd: BorrowedFd<'_>) -> Result<()> {
        self.send_chunks(msg, Some(fd))
    }

    fn send_chunks(&self, msg: &Message, fd: Option<BorrowedFd<'_>>) -> Result<()> {
        let bytes = serde_json::to_vec(msg).map_err(|source| Error::Encode {
            what: "sync message",
            source,
        })?;
        let fds = fd.map(|fd| [fd.as_raw_fd()]);
        let mut chunks = bytes.chunks(CHUNK).peekable();
        let mut first = true;
        // A message of several chunks fills the socket buffer: a peer that stops reading would
        // block sendmsg(2) forever. Each chunk waits for room until the same deadline.
        let bound = setup_bound();
        let deadline = Instant::now() + bound;
        while let Some(chunk) = chunks.next() {
            let room = crate::sys::poll_one_until(self.fd.as_fd(), PollFlags::POLLOUT, deadline)
                .map_err(Error::sys("poll(sync socket)"))?;
            if !room {
                return Err(Error::Timeout {
                    what: "the container's process to read the sync socket",
                    seconds: bound.as_secs(),
                });
            }
            let head = [if chunks.peek().is_some() { MORE } else { LAST }];
            let iov = [IoSlice::new(&head), IoSlice::new(chunk)];
            let rights;
            let cmsgs: &[ControlMessage<'_>] = match &fds {
                Some(fds) if first => {
                    rights = [ControlMessage::ScmRights(fds)];
                    &rights
                }
                _ => &[],
            };
            loop {
                match socket::sendmsg::<()>(
                    self.fd.as_raw_fd(),
                    &iov,
                    cmsgs,
                    MsgFlags::MSG_NOSIGNAL,
                    None,
                ) {
                    Err(nix::Error::EINTR) => continue,
                    Err(e) => {
                        return Err(Error::SyncSend {
                            message: msg.name(),
                            bytes: bytes.len(),
                            source: e,
                        })
                    }
                    Ok(_) => break,
                }
            }
            first = false;
        }
        Ok(())
    }

    /// Receives one message; `None` when the peer closed its end (it exited or exec'd).
    pub(crate) fn recv(&self) -> Result<Option<Message>> {
        Ok(self.recv_full_within(None)?.map(|r| r.message))
    }

    /// Receives one message and the descriptor that came with it, if any, waiting at most
    /// `bound`.
    pub(crate) fn recv_with_fd_within(
        &self,
        bound: Duration,
    ) -> Result<Option<(Message, Option<OwnedFd>)>> {
        Ok(self
            .recv_full_within(Some(bound))?
            .map(|r| (r.message, r.fd)))
    }

    /// Makes the kernel attach the sender's credentials to every message this end receives
    /// (unix(7) `SO_PASSCRED`): how `create` learns the pid of an init forked by its child,
    /// translated into `create`'s own pid namespace by the kernel. (A side effect: the kernel
    /// autobinds a socket with SO_PASSCRED to an abstract address in our network namespace,
    /// unix(7) "Autobind feature", for as long as `create` runs.)
    pub(crate) fn pass_credentials(&self) -> Result<()> {
        socket::setsockopt(&self.fd, socket::sockopt::PassCred, &true)
            .map_err(Error::sys("setsockopt(SO_PASSCRED) on sync socket"))
    }

    /// Receives one message with its descriptor and, after [`SyncSocket::pass_credentials`],
    /// the sender's pid; `None` on end-of-file. With a `bound`, gives up with
    /// [`Error::Timeout`] when the whole message has not arrived within it.
    pub(crate) fn recv_full_within(&self, bound: Option<Duration>) -> Result<Option<Received>> {
        let deadline = bound.map(|b| (Instant::now() + b, b));
        let mut buf = self.buf.borrow_mut();
        if buf.is_empty() {
            // Zeroed by the allocator, not by `resize`: calloc(3) of a fresh mapping skips the
            // memset, so only the pages a datagram fills are ever touched (`resize` faulted in
            // all nine, in the parent and in the child, on every clone).
            *buf = vec![0; 1 + CHUNK];
        }
        let mut fd = None;
        let mut sender = None;
        // Only a message of several datagrams is assembled; one of one is parsed in place.
        let mut assembled: Vec<u8> = Vec::new();
        loop {
            if let Some((deadline, bound)) = deadline {
                wait_readable(self.fd.as_fd(), deadline, bound)?;
            }
            let n = self.recv_datagram(&mut buf, &mut fd, &mut sender)?;
            if n == 0 {
                return Ok(None);
            }
            let (head, body) = (buf[0], &buf[1..n]);
            if head == LAST && assembled.is_empty() {
                return decode(body).map(|message| {
                    Some(Received {
                        message,
                        fd,
                        sender,
                    })
                });
            }
            if assembled.len() + body.len() > MAX_MESSAGE {
                return Err(Error::SyncTooLarge { limit: MAX_MESSAGE });
            }
            assembled.extend_from_slice(body);
            if head == LAST {
                return decode(&assembled).map(|message| {
                    Some(Received {
                        message,
                        fd,
                        sender,
                    })
                });
            }
        }
    }

    /// One datagram into `buf`; its length (0: end-of-file). What the kernel attached is kept
    /// in `fd` and `sender`.
    fn recv_datagram(
        &self,
        buf: &mut [u8],
        fd: &mut Option<OwnedFd>,
        sender: &mut Option<i32>,
    ) -> Result<usize> {
        let mut space = nix::cmsg_space!([RawFd; 1], libc::ucred);
        loop {
            let mut iov = [IoSliceMut::new(buf)];
            let msg = match socket::recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(Error::sys("recvmsg on sync socket")(e)),
                Ok(msg) => msg,
            };
            for c in msg.cmsgs().map_err(Error::sys("recvmsg: control data"))? {
                match c {
                    ControlMessageOwned::ScmRights(fds) => {
                        for raw in fds {
                            // SAFETY: the kernel installed these descriptors for us with
                            // SCM_RIGHTS; nothing else owns them. Extra ones are closed.
                            let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                            fd.get_or_insert(owned);
                        }
                    }
                    ControlMessageOwned::ScmCredentials(c) => *sender = Some(c.pid()),
                    _ => {}
                }
            }
            // recvmsg(2): MSG_TRUNC, the datagram was longer than the buffer (its tail is
            // lost); MSG_CTRUNC, control data (a descriptor) was dropped. Neither is a message.
            if msg
                .flags
                .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC)
            {
                return Err(Error::SyncTruncated {
                    capacity: buf.len(),
                });
            }
            return Ok(msg.bytes);
        }
    }

    /// Receives and insists on one particular message (by name).
    pub(crate) fn expect(&self, expected: &'static str) -> Result<Option<Message>> {
        match self.recv()? {
            None => Ok(None),
            Some(Message::Error { chain }) => Err(Error::Init(RemoteError::from_chain(chain))),
            Some(m) if m.name() == expected => Ok(Some(m)),
            Some(m) => Err(Error::Protocol {
                expected,
                got: m.name(),
            }),
        }
    }

    /// Moves the descriptor to a number at or above `min` (so it cannot collide with fds the
    /// container is asked to keep, `--preserve-fds`), keeping close-on-exec.
    pub(crate) fn move_above(self, min: i32) -> Result<Self> {
        Ok(SyncSocket::new(crate::fds::dup_above(
            self.fd.as_fd(),
            min,
        )?))
    }
}

/// Parses one message; the error says how long it was, never what it said.
fn decode(bytes: &[u8]) -> Result<Message> {
    serde_json::from_slice(bytes).map_err(|source| Error::SyncDecode {
        bytes: bytes.len(),
        source,
    })
}

/// Waits until `fd` is readable (a datagram or end-of-file), or fails with [`Error::Timeout`]
/// once `deadline` has passed.
fn wait_readable(fd: BorrowedFd<'_>, deadline: Instant, bound: Duration) -> Result<()> {
    if crate::sys::poll_one_until(fd, PollFlags::POLLIN, deadline)
        .map_err(Error::sys("poll(sync socket)"))?
    {
        return Ok(());
    }
    Err(Error::Timeout {
        what: "the container's process on the sync socket",
        seconds: bound.as_secs(),
    })
}

/// An error that happened in another process, carried as its chain of messages.
#[derive(Debug)]
pub struct RemoteError {
    message: String,
    source: Option<Box<RemoteError>>,
}

impl RemoteError {
    /// Rebuilds a chain from its lines, outermost first.
    pub(crate) fn from_chain(chain: Vec<String>) -> Self {
        let mut iter = chain.into_iter().rev();
        let mut err = RemoteError {
            message: iter.next().unwrap_or_else(|| "unknown error".to_string()),
            source: None,
        };
        for message in iter {
            err = RemoteError {
                message,
                source: Some(Box::new(err)),
            };
        }
        err
    }

    /// Flattens any error into its chain of messages, outermost first.
    pub(crate) fn chain_of(err: &(dyn std::error::Error + 'static)) -> Vec<String> {
        let mut chain = vec![err.to_string()];
        let mut cur = err.source();
        while let Some(e) = cur {
            chain.push(e.to_string());
            cur = e.source();
        }
        chain
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RemoteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_round_trips() {
        let chain = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let err = RemoteError::from_chain(chain.clone());
        assert_eq!(RemoteError::chain_of(&err), chain);
    }

    #[test]
    fn messages_cross_the_socket() {
        let (p, c) = pair().expect("pair");
        c.send(&Message::Error {
            chain: vec!["exec".into(), "no such file".into()],
        })
        .expect("send");
        let err = p.expect("ready").expect_err("error message");
        let chain = RemoteError::chain_of(&err);
        assert_eq!(
            chain,
            ["unable to start container process", "exec", "no such file"]
        );
        drop(c);
        assert!(p.recv().expect("recv").is_none(), "eof after peer closed");
    }

    #[test]
    fn a_state_of_several_chunks_arrives_whole() {
        let (p, c) = pair().expect("pair");
        // 1 MiB: far over one datagram (the socket's send buffer is about 208 KiB).
        let state: String = "a".repeat(1 << 20);
        let sent = state.clone();
        let sender = std::thread::spawn(move || p.send(&Message::Go { state: sent }).map(|()| p));
        match c.recv_full_within(Some(Duration::from_secs(30))) {
            Ok(Some(Received {
                message: Message::Go { state: got },
                ..
            })) => assert!(got == state, "state arrived changed ({} bytes)", got.len()),
            Ok(Some(r)) => panic!("unexpected {}", r.message.name()),
            Ok(None) => panic!("eof"),
            Err(e) => panic!("{e}"),
        }
        let p = sender.join().expect("join").expect("send");
        // The socket is still in step: the next message is whole too.
        c.send(&Message::Ready).expect("send");
        assert!(matches!(p.recv(), Ok(Some(Message::Ready))));
    }

    #[test]
    fn errors_name_the_message_never_its_payload() {
        let (p, c) = pair().expect("pair");
        let payload = format!("{}{}", "x".repeat(100), "SECRET");
        socket::send(
            p.fd.as_raw_fd(),
            format!("\0{payload}").as_bytes(),
            MsgFlags::empty(),
        )
        .expect("send");
        let err = c.recv().expect_err("not a message");
        let text = RemoteError::chain_of(&err).join(": ");
        assert!(!text.contains("SECRET"), "{text}");
        assert!(text.contains("106 bytes"), "{text}");
    }

    #[test]
    fn a_datagram_longer_than_the_buffer_is_an_error() {
        let (p, c) = pair().expect("pair");
        let long = vec![LAST; 2 + CHUNK];
        socket::send(p.fd.as_raw_fd(), &long, MsgFlags::empty()).expect("send");
        assert!(matches!(c.recv(), Err(Error::SyncTruncated { .. })));
    }

    #[test]
    fn child_hooks_add_their_timeouts_or_one_setup_bound() {
        let setup = setup_bound();
        assert_eq!(child_hooks_bound(std::iter::empty()), setup);
        assert_eq!(
            child_hooks_bound([Some(5), None, Some(-1)].into_iter()),
            setup + Duration::from_secs(5) + setup
        );
    }

    #[test]
    fn a_silent_peer_times_out() {
        let (_p, c) = pair().expect("pair");
        let r = c.recv_full_within(Some(Duration::from_millis(50)));
        assert!(matches!(r, Err(Error::Timeout { .. })));
    }
}
