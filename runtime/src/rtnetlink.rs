//! The few rtnetlink(7) requests `linux.netDevices` needs, written out by hand: moving a link to
//! another network namespace (with its new name) in one `RTM_NEWLINK`, listing a link's
//! addresses (`RTM_GETADDR` dump), adding an address (`RTM_NEWADDR`) and setting a link up.
//! A netlink crate (`neli`, `rtnetlink` with its async stack) would add far more program text
//! than these few hundred bytes of message layout (netlink(7), rtnetlink(7), RFC 3549).
//!
//! A netlink socket talks to the network namespace it was created in, which is what lets the
//! parent hold one socket on each side of the move.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::sys::socket::{
    recv, send, socket, AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType,
};

// linux/rtnetlink.h, linux/if_link.h, linux/if_addr.h, linux/netlink.h.
const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const IFLA_IFNAME: u16 = 3;
const IFLA_NET_NS_FD: u16 = 28;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const IFA_FLAGS: u16 = 8;
const IFA_F_PERMANENT: u32 = 0x80;
const RT_SCOPE_UNIVERSE: u8 = 0;
const NLMSG_HDRLEN: usize = 16;

/// One address of a link, as the kernel listed it, ready to be added again elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Address {
    family: u8,
    prefix_len: u8,
    flags: u8,
    scope: u8,
    /// `(type, payload)` of IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST.
    attrs: Vec<(u16, Vec<u8>)>,
}

/// A `NETLINK_ROUTE` socket in the caller's current network namespace.
pub(crate) struct Route {
    fd: OwnedFd,
    seq: u32,
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// A request under construction: header, fixed part, attributes.
struct Request(Vec<u8>);

impl Request {
    fn new(kind: u16, flags: u16, fixed: &[u8]) -> Self {
        let mut b = vec![0u8; NLMSG_HDRLEN];
        b[4..6].copy_from_slice(&kind.to_ne_bytes());
        b[6..8].copy_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        b.extend_from_slice(fixed);
        Request(b)
    }

    fn attr(mut self, kind: u16, payload: &[u8]) -> Self {
        let len = 4 + payload.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(payload);
        self.0.resize(align4(self.0.len()), 0);
        self
    }

    fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = self.0.len() as u32;
        self.0[0..4].copy_from_slice(&len.to_ne_bytes());
        self.0[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.0
    }
}

/// `struct ifinfomsg` for link `index`: family, pad, type, index, flags, change.
fn ifinfomsg(index: i32, flags: u32, change: u32) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[4..8].copy_from_slice(&index.to_ne_bytes());
    m[8..12].copy_from_slice(&flags.to_ne_bytes());
    m[12..16].copy_from_slice(&change.to_ne_bytes());
    m
}

/// Splits a buffer of netlink messages into `(type, payload)`.
fn messages(buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + NLMSG_HDRLEN <= buf.len() {
        let len = u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as usize;
        if len < NLMSG_HDRLEN || at + len > buf.len() {
            break;
        }
        let kind = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
        out.push((kind, &buf[at + NLMSG_HDRLEN..at + len]));
        at += align4(len);
    }
    out
}

/// Splits attributes into `(type, payload)`.
fn attributes(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= 4 {
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        if len < 4 || len > buf.len() {
            break;
        }
        out.push((u16::from_ne_bytes([buf[2], buf[3]]), &buf[4..len]));
        buf = &buf[align4(len).min(buf.len())..];
    }
    out
}

/// The errno of an `NLMSG_ERROR` payload (0 is an acknowledgement).
fn error_of(payload: &[u8]) -> i32 {
    payload
        .get(0..4)
        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(-libc::EPROTO)
}

/// Parses one `RTM_NEWADDR` payload of link `index`; `None` for another link's, or one that is
/// not a permanent address of global scope (those are what config-linux.md keeps).
fn parse_address(payload: &[u8], index: u32) -> Option<Address> {
    let fixed = payload.get(0..8)?;
    let ifindex = u32::from_ne_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
    if ifindex != index || fixed[3] != RT_SCOPE_UNIVERSE {
        return None;
    }
    let attrs = attributes(payload.get(8..)?);
    // IFA_FLAGS, when present, is the full 32-bit set; ifa_flags its low byte.
    let flags = attrs
        .iter()
        .find(|(k, v)| *k == IFA_FLAGS && v.len() == 4)
        .map(|(_, v)| u32::from_ne_bytes([v[0], v[1], v[2], v[3]]))
        .unwrap_or(u32::from(fixed[2]));
    if flags & IFA_F_PERMANENT == 0 {
        return None;
    }
    Some(Address {
        family: fixed[0],
        prefix_len: fixed[1],
        flags: fixed[2],
        scope: fixed[3],
        attrs: attrs
            .into_iter()
            .filter(|(k, _)| matches!(*k, IFA_ADDRESS | IFA_LOCAL | IFA_BROADCAST))
            .map(|(k, v)| (k, v.to_vec()))
            .collect(),
    })
}

impl Route {
    /// Opens a socket in the current network namespace.
    pub(crate) fn open() -> nix::Result<Self> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )?;
        Ok(Route { fd, seq: 0 })
    }

    fn send(&mut self, req: Request) -> nix::Result<u32> {
        self.seq += 1;
        let msg = req.finish(self.seq);
        send(self.fd.as_raw_fd(), &msg, MsgFlags::empty())?;
        Ok(self.seq)
    }

    /// Receives until the acknowledgement (or `NLMSG_DONE` of a dump), handing each other
    /// message to `each`.
    fn receive(&mut self, mut each: impl FnMut(u16, &[u8])) -> nix::Result<()> {
        // A dump datagram is at most about 32 KiB (netlink_dump: max(PAGE_SIZE, 32 KiB)
        // minus overhead); a larger buffer never truncates one.
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
            if n == 0 {
                return Err(nix::Error::EPROTO);
            }
            for (kind, payload) in messages(&buf[..n]) {
                match kind {
                    NLMSG_ERROR => {
                        return match error_of(payload) {
                            0 => Ok(()),
                            e => Err(nix::Error::from_raw(-e)),
                        }
                    }
                    NLMSG_DONE => return Ok(()),
                    _ => each(kind, payload),
                }
            }
        }
    }

    fn request(&mut self, req: Request) -> nix::Result<()> {
        self.send(req)?;
        self.receive(|_, _| {})
    }

    /// Moves link `index` into the network namespace `netns` and names it `name` there, in one
    /// request: the kernel closes the link, moves it, and refuses (EEXIST) a name taken there.
    pub(crate) fn move_link(
        &mut self,
        index: i32,
        netns: BorrowedFd<'_>,
        name: &str,
    ) -> nix::Result<()> {
        let fd = netns.as_fd().as_raw_fd() as u32;
        let mut ifname = name.as_bytes().to_vec();
        ifname.push(0);
        self.request(
            Request::new(RTM_NEWLINK, NLM_F_ACK, &ifinfomsg(index, 0, 0))
                .attr(IFLA_NET_NS_FD, &fd.to_ne_bytes())
                .attr(IFLA_IFNAME, &ifname),
        )
    }

    /// Sets link `index` up (`IFF_UP` in flags and change mask).
    pub(crate) fn set_up(&mut self, index: i32) -> nix::Result<()> {
        let up = libc::IFF_UP as u32;
        self.request(Request::new(
            RTM_NEWLINK,
            NLM_F_ACK,
            &ifinfomsg(index, up, up),
        ))
    }

    /// The permanent, global-scope addresses of link `index`, of every family.
    pub(crate) fn addresses(&mut self, index: i32) -> nix::Result<Vec<Address>> {
        // struct ifaddrmsg with AF_UNSPEC: every family.
        self.send(Request::new(RTM_GETADDR, NLM_F_DUMP, &[0u8; 8]))?;
        let mut out = Vec::new();
        self.receive(|kind, payload| {
            if kind == RTM_NEWADDR {
                out.extend(parse_address(payload, index as u32));
            }
        })?;
        Ok(out)
    }

    /// Adds `addr` to link `index`.
    pub(crate) fn add_address(&mut self, index: i32, addr: &Address) -> nix::Result<()> {
        let mut fixed = [
            addr.family,
            addr.prefix_len,
            addr.flags,
            addr.scope,
            0,
            0,
            0,
            0,
        ];
        fixed[4..8].copy_from_slice(&(index as u32).to_ne_bytes());
        let mut req = Request::new(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, &fixed);
        for (kind, payload) in &addr.attrs {
            req = req.attr(*kind, payload);
        }
        self.request(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_laid_out_as_netlink_7() {
        let req = Request::new(RTM_NEWLINK, NLM_F_ACK, &ifinfomsg(7, 0, 0))
            .attr(IFLA_IFNAME, b"eth1\0")
            .finish(9);
        // 16 header + 16 ifinfomsg + 4 + 5 attribute, padded to 8.
        assert_eq!(req.len(), 16 + 16 + 12);
        assert_eq!(u32::from_ne_bytes(req[0..4].try_into().expect("4")), 44);
        assert_eq!(
            u16::from_ne_bytes(req[6..8].try_into().expect("2")),
            NLM_F_ACK | NLM_F_REQUEST
        );
        assert_eq!(u32::from_ne_bytes(req[8..12].try_into().expect("4")), 9);
        assert_eq!(i32::from_ne_bytes(req[20..24].try_into().expect("4")), 7);
        assert_eq!(u16::from_ne_bytes(req[32..34].try_into().expect("2")), 9);
        assert_eq!(&req[36..41], b"eth1\0");
    }

    fn addr_payload(index: u32, scope: u8, flags: u8, extra_flags: Option<u32>) -> Vec<u8> {
        let mut fixed = vec![libc::AF_INET as u8, 24, flags, scope];
        fixed.extend_from_slice(&index.to_ne_bytes());
        let mut r = Request(fixed)
            .attr(IFA_LOCAL, &[10, 0, 0, 1])
            .attr(IFA_ADDRESS, &[10, 0, 0, 1]);
        if let Some(f) = extra_flags {
            r = r.attr(IFA_FLAGS, &f.to_ne_bytes());
        }
        r.0
    }

    #[test]
    fn only_permanent_global_addresses_of_the_link_are_kept() {
        let p = addr_payload(3, RT_SCOPE_UNIVERSE, IFA_F_PERMANENT as u8, None);
        let a = parse_address(&p, 3).expect("kept");
        assert_eq!((a.family, a.prefix_len), (libc::AF_INET as u8, 24));
        assert_eq!(a.attrs.len(), 2);
        assert_eq!(parse_address(&p, 4), None, "another link");
        let host_scope = addr_payload(3, 254, IFA_F_PERMANENT as u8, None);
        assert_eq!(parse_address(&host_scope, 3), None, "scope host");
        let dynamic = addr_payload(3, RT_SCOPE_UNIVERSE, 0, Some(0));
        assert_eq!(parse_address(&dynamic, 3), None, "not permanent");
        let via_flags = addr_payload(3, RT_SCOPE_UNIVERSE, 0, Some(IFA_F_PERMANENT));
        assert!(parse_address(&via_flags, 3).is_some(), "IFA_FLAGS decides");
    }

    #[test]
    fn truncated_input_is_not_read_past_its_end() {
        assert!(messages(&[1, 2, 3]).is_empty());
        let mut bad = vec![0u8; 20];
        bad[0..4].copy_from_slice(&100u32.to_ne_bytes());
        assert!(messages(&bad).is_empty());
        assert!(attributes(&[8, 0, 1, 0]).is_empty());
        assert_eq!(parse_address(&[2, 24], 0), None);
    }
}
