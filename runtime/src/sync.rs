//! The parent/child synchronisation protocol over one `SOCK_SEQPACKET` socketpair.
//!
//! One datagram is one message (seqpacket keeps boundaries, so no framing is needed), encoded as
//! JSON. The same socket carries the child's error chain back to the parent, so a failure deep in
//! the container's set-up (a missing executable, a bad mount) is reported by `hako create` with
//! every cause. An end-of-file on either side means the other process died: the child exits, the
//! parent reaps it and reports how it ended. See `runtime/docs/protocol.md` for the diagram.

use std::fmt;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    self, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType,
};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Largest message: an error chain or a state JSON fits easily.
const MAX_MESSAGE: usize = 64 * 1024;

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
    fn name(&self) -> &'static str {
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
    Ok((SyncSocket { fd: a }, SyncSocket { fd: b }))
}

impl SyncSocket {
    /// Sends one message.
    pub(crate) fn send(&self, msg: &Message) -> Result<()> {
        let bytes = serde_json::to_vec(msg).map_err(|source| Error::Encode {
            what: "sync message",
            source,
        })?;
        socket::send(self.fd.as_raw_fd(), &bytes, MsgFlags::MSG_NOSIGNAL)
            .map_err(Error::sys("send on sync socket"))?;
        Ok(())
    }

    /// Sends one message with a descriptor attached (SCM_RIGHTS).
    pub(crate) fn send_with_fd(&self, msg: &Message, fd: BorrowedFd<'_>) -> Result<()> {
        let bytes = serde_json::to_vec(msg).map_err(|source| Error::Encode {
            what: "sync message",
            source,
        })?;
        let fds = [fd.as_raw_fd()];
        socket::sendmsg::<()>(
            self.fd.as_raw_fd(),
            &[IoSlice::new(&bytes)],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map_err(Error::sys("sendmsg on sync socket"))?;
        Ok(())
    }

    /// Receives one message; `None` when the peer closed its end (it exited or exec'd).
    pub(crate) fn recv(&self) -> Result<Option<Message>> {
        Ok(self.recv_with_fd()?.map(|(m, _)| m))
    }

    /// Receives one message and the descriptor that came with it, if any.
    pub(crate) fn recv_with_fd(&self) -> Result<Option<(Message, Option<OwnedFd>)>> {
        Ok(self.recv_full()?.map(|r| (r.message, r.fd)))
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
    /// the sender's pid.
    pub(crate) fn recv_full(&self) -> Result<Option<Received>> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        let mut space = nix::cmsg_space!([RawFd; 1], libc::ucred);
        let (n, fd, sender) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match socket::recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(Error::sys("recvmsg on sync socket")(e)),
                Ok(msg) => {
                    let mut fd = None;
                    let mut sender = None;
                    for c in msg.cmsgs().map_err(Error::sys("recvmsg: control data"))? {
                        match c {
                            ControlMessageOwned::ScmRights(fds) => {
                                for raw in fds {
                                    // SAFETY: the kernel installed these descriptors for us
                                    // with SCM_RIGHTS; nothing else owns them. Extra ones are
                                    // closed.
                                    let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                                    fd.get_or_insert(owned);
                                }
                            }
                            ControlMessageOwned::ScmCredentials(c) => sender = Some(c.pid()),
                            _ => {}
                        }
                    }
                    break (msg.bytes, fd, sender);
                }
            }
        };
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_slice(&buf[..n])
            .map(|message| {
                Some(Received {
                    message,
                    fd,
                    sender,
                })
            })
            .map_err(|_| Error::Protocol {
                expected: "a sync message",
                got: String::from_utf8_lossy(&buf[..n]).into_owned(),
            })
    }

    /// Receives and insists on one particular message (by name).
    pub(crate) fn expect(&self, expected: &'static str) -> Result<Option<Message>> {
        match self.recv()? {
            None => Ok(None),
            Some(Message::Error { chain }) => Err(Error::Init(RemoteError::from_chain(chain))),
            Some(m) if m.name() == expected => Ok(Some(m)),
            Some(m) => Err(Error::Protocol {
                expected,
                got: m.name().to_string(),
            }),
        }
    }

    /// Moves the descriptor to a number at or above `min` (so it cannot collide with fds the
    /// container is asked to keep, `--preserve-fds`), keeping close-on-exec.
    pub(crate) fn move_above(self, min: i32) -> Result<Self> {
        Ok(SyncSocket {
            fd: crate::fds::dup_above(self.fd.as_fd(), min)?,
        })
    }
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
}
