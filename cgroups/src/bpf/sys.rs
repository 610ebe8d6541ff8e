//! The bpf(2) calls the device filter needs, with `union bpf_attr` members
//! laid out as in include/uapi/linux/bpf.h (only the leading fields used;
//! the kernel zero-fills a shorter attr, see `bpf_check_uarg_tail_zero`).
//! With the crate's `sys` module (openat), this is its unsafe code: the
//! syscall itself and taking ownership of the descriptors it returns.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::insn::{encode_all, Insn};

const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_DETACH: libc::c_int = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_int = 15;
const BPF_PROG_QUERY: libc::c_int = 16;
/// `BPF_PROG_TYPE_CGROUP_DEVICE`.
const PROG_TYPE_CGROUP_DEVICE: u32 = 15;
/// `BPF_CGROUP_DEVICE` attach type.
const ATTACH_CGROUP_DEVICE: u32 = 6;
/// `BPF_F_ALLOW_MULTI`: several programs per cgroup, all must allow.
const F_ALLOW_MULTI: u32 = 2;
/// `BPF_OBJ_NAME_LEN`: program names are at most 15 bytes plus the NUL.
const OBJ_NAME_LEN: usize = 16;
/// BPF_CGROUP_MAX_PROGS (kernel/bpf/cgroup.c): at most 64 per attach point.
const QUERY_SLOTS: usize = 64;

/// `bpf_attr` for BPF_PROG_LOAD.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; OBJ_NAME_LEN],
}

/// `bpf_attr` for BPF_PROG_ATTACH / BPF_PROG_DETACH.
#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

/// `bpf_attr` for BPF_PROG_QUERY.
#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

/// `bpf_attr` for BPF_PROG_GET_FD_BY_ID.
#[repr(C)]
#[derive(Default)]
struct GetFdByIdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// `bpf_attr` for BPF_OBJ_GET_INFO_BY_FD.
#[repr(C)]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The head of `struct bpf_prog_info`, up to the name.
#[repr(C)]
#[derive(Default)]
struct ProgInfo {
    prog_type: u32,
    id: u32,
    tag: [u8; 8],
    jited_prog_len: u32,
    xlated_prog_len: u32,
    jited_prog_insns: u64,
    xlated_prog_insns: u64,
    load_time: u64,
    created_by_uid: u32,
    nr_map_ids: u32,
    map_ids: u64,
    name: [u8; OBJ_NAME_LEN],
}

/// bpf(cmd, attr, sizeof attr).
///
/// # Safety
/// `T` must be the `bpf_attr` member `cmd` reads, and every pointer stored in
/// `attr` must be valid (for reads, or for writes of the stated length) for
/// the duration of the call.
unsafe fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> io::Result<libc::c_long> {
    let size = std::mem::size_of::<T>() as libc::c_uint;
    // SAFETY: `attr` is a live, exclusively borrowed `T` of `size` bytes; the
    // caller guarantees the layout and the pointers inside it.
    let ret = unsafe { libc::syscall(libc::SYS_bpf, cmd, std::ptr::from_mut(attr), size) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Wraps a descriptor the kernel just returned.
fn owned_fd(ret: libc::c_long) -> io::Result<OwnedFd> {
    let fd = libc::c_int::try_from(ret).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: `fd` was just returned by a successful bpf(2) call that creates a
    // new descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn fd_u32(fd: BorrowedFd<'_>) -> u32 {
    // Descriptors are never negative.
    u32::try_from(fd.as_raw_fd()).unwrap_or(u32::MAX)
}

/// The outcome of a failed load: the errno and the verifier's log.
pub(crate) struct LoadError {
    pub(crate) source: io::Error,
    pub(crate) log: String,
}

/// Loads a `BPF_PROG_TYPE_CGROUP_DEVICE` program called `name` (at most 15
/// bytes, `[A-Za-z0-9_.]`). On failure loads again with the verifier log on
/// to say why.
pub(crate) fn load_device_program(
    prog: &[Insn],
    license: &CStr,
    name: &str,
) -> Result<OwnedFd, LoadError> {
    let code = encode_all(prog);
    let mut prog_name = [0u8; OBJ_NAME_LEN];
    let n = name.len().min(OBJ_NAME_LEN - 1);
    prog_name[..n].copy_from_slice(&name.as_bytes()[..n]);
    let mut attr = ProgLoadAttr {
        prog_type: PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: u32::try_from(prog.len()).unwrap_or(u32::MAX),
        insns: code.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name,
        ..Default::default()
    };
    // SAFETY: ProgLoadAttr is the BPF_PROG_LOAD layout; `insns` points to
    // `insn_cnt` encoded instructions and `license` to a NUL-terminated string,
    // both alive until the end of this function; no log buffer is given.
    match unsafe { bpf(BPF_PROG_LOAD, &mut attr) } {
        Ok(fd) => owned_fd(fd).map_err(|source| LoadError {
            source,
            log: String::new(),
        }),
        Err(source) => {
            let mut log = vec![0u8; 64 * 1024];
            attr.log_level = 1;
            attr.log_size = u32::try_from(log.len()).unwrap_or(u32::MAX);
            attr.log_buf = log.as_mut_ptr() as u64;
            // SAFETY: as above, plus `log_buf` is writable for `log_size` bytes
            // and alive until the end of this function.
            let _ = unsafe { bpf(BPF_PROG_LOAD, &mut attr) };
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            Err(LoadError {
                source,
                log: String::from_utf8_lossy(&log[..end]).into_owned(),
            })
        }
    }
}

/// BPF_PROG_ATTACH of `prog` to the cgroup `cgroup` as a device filter, with
/// BPF_F_ALLOW_MULTI so it joins (not replaces) what is attached there.
pub(crate) fn attach_device(cgroup: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = AttachAttr {
        target_fd: fd_u32(cgroup),
        attach_bpf_fd: fd_u32(prog),
        attach_type: ATTACH_CGROUP_DEVICE,
        attach_flags: F_ALLOW_MULTI,
    };
    // SAFETY: AttachAttr is the BPF_PROG_ATTACH layout and holds no pointers.
    unsafe { bpf(BPF_PROG_ATTACH, &mut attr) }.map(drop)
}

/// BPF_PROG_DETACH of the device filter `prog` from `cgroup`.
pub(crate) fn detach_device(cgroup: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = AttachAttr {
        target_fd: fd_u32(cgroup),
        attach_bpf_fd: fd_u32(prog),
        attach_type: ATTACH_CGROUP_DEVICE,
        attach_flags: 0,
    };
    // SAFETY: AttachAttr is the BPF_PROG_DETACH layout and holds no pointers.
    unsafe { bpf(BPF_PROG_DETACH, &mut attr) }.map(drop)
}

/// Ids of the device programs attached directly to `cgroup` (not inherited).
pub(crate) fn query_device(cgroup: BorrowedFd<'_>) -> io::Result<Vec<u32>> {
    let mut ids = vec![0u32; QUERY_SLOTS];
    loop {
        let mut attr = QueryAttr {
            target_fd: fd_u32(cgroup),
            attach_type: ATTACH_CGROUP_DEVICE,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: u32::try_from(ids.len()).unwrap_or(u32::MAX),
            ..Default::default()
        };
        // SAFETY: QueryAttr is the BPF_PROG_QUERY layout; `prog_ids` is
        // writable for `prog_cnt` u32s and alive across the call.
        match unsafe { bpf(BPF_PROG_QUERY, &mut attr) } {
            Ok(_) => {
                ids.truncate(usize::try_from(attr.prog_cnt).unwrap_or(0).min(ids.len()));
                return Ok(ids);
            }
            // ENOSPC: more than room for; prog_cnt says how many (raced with an attach).
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && ids.len() < 4096 => {
                let want = usize::try_from(attr.prog_cnt)
                    .unwrap_or(0)
                    .max(ids.len() * 2);
                ids = vec![0; want];
            }
            Err(e) => return Err(e),
        }
    }
}

/// A descriptor for the loaded program with this id.
pub(crate) fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = GetFdByIdAttr {
        prog_id: id,
        ..Default::default()
    };
    // SAFETY: GetFdByIdAttr is the BPF_PROG_GET_FD_BY_ID layout, no pointers.
    owned_fd(unsafe { bpf(BPF_PROG_GET_FD_BY_ID, &mut attr) }?)
}

/// The id and name the program was loaded with.
pub(crate) fn prog_id_and_name(prog: BorrowedFd<'_>) -> io::Result<(u32, String)> {
    let mut info = ProgInfo::default();
    let mut attr = InfoAttr {
        bpf_fd: fd_u32(prog),
        info_len: u32::try_from(std::mem::size_of::<ProgInfo>()).unwrap_or(0),
        info: std::ptr::from_mut(&mut info) as u64,
    };
    // SAFETY: InfoAttr is the BPF_OBJ_GET_INFO_BY_FD layout; `info` points to
    // a writable ProgInfo of `info_len` bytes that outlives the call.
    unsafe { bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) }?;
    let end = info
        .name
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(OBJ_NAME_LEN);
    Ok((
        info.id,
        String::from_utf8_lossy(&info.name[..end]).into_owned(),
    ))
}
