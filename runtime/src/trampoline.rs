//! Exec through a sealed in-memory trampoline, so the container never gets a handle on the hako
//! binary (CVE-2019-5736).
//!
//! Until the user's program runs, a container process is hako: its `/proc/self/exe` is the host's
//! hako binary. If the program is a script whose interpreter is `/proc/self/exe`, the kernel would
//! start the host's hako inside the container, where a process can open `/proc/<pid>/exe` and,
//! once hako has exited, write through that descriptor: the host's runtime is overwritten. runc
//! copies its whole binary into a sealed memfd on every start (70% of its exec latency, runc
//! PR 4432) or re-execs from a read-only overlay (runc 1.2).
//!
//! hako instead execs a 42-byte machine-code trampoline from a sealed memfd, which then execs the
//! user's program: at the moment the program is loaded, `/proc/self/exe` is the sealed
//! trampoline, which nobody can write. Cost: one memfd, one 160-byte write and one extra exec of a
//! program with a single instruction page.
//!
//! The trampoline is a hand-assembled static ELF for x86_64: `execve(argv[0], &argv[1], envp)`,
//! or `exit(127)` if that fails. It is invoked with argv `[path, args...]`, so the program gets
//! exactly `args` as its argv. On other architectures hako falls back to a direct exec.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::error::{Error, Result};

/// The trampoline's code, loaded at 0x400078 (x86_64 System V process entry: `[rsp]` = argc,
/// `[rsp+8..]` = argv, then NULL, then envp).
#[cfg(target_arch = "x86_64")]
const CODE: [u8; 42] = [
    0x48, 0x8b, 0x7c, 0x24, 0x08, // mov rdi, [rsp+8]        ; filename = argv[0]
    0x48, 0x8d, 0x74, 0x24, 0x10, // lea rsi, [rsp+16]       ; argv = &argv[1]
    0x48, 0x8b, 0x04, 0x24, //       mov rax, [rsp]          ; argc
    0x48, 0x8d, 0x54, 0xc4, 0x10, // lea rdx, [rsp+rax*8+16] ; envp = &argv[argc + 1]
    0xb8, 0x3b, 0x00, 0x00, 0x00, // mov eax, 59             ; execve
    0x0f, 0x05, //                   syscall
    0xbf, 0x7f, 0x00, 0x00, 0x00, // mov edi, 127
    0xb8, 0x3c, 0x00, 0x00, 0x00, // mov eax, 60             ; exit
    0x0f, 0x05, //                   syscall
    0xf4, 0xf4, 0xf4, 0xf4, //       hlt (never reached)
];

/// The whole ELF image: 64-byte header, one 56-byte PT_LOAD header, the code.
#[cfg(target_arch = "x86_64")]
fn image() -> Vec<u8> {
    const BASE: u64 = 0x40_0000;
    const CODE_OFFSET: u64 = 64 + 56;
    let total = CODE_OFFSET + CODE.len() as u64;
    let mut elf = Vec::with_capacity(total as usize);
    // e_ident: magic, 64-bit, little-endian, version 1, System V ABI.
    elf.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    elf.extend_from_slice(&2u16.to_le_bytes()); // e_type: ET_EXEC
    elf.extend_from_slice(&0x3eu16.to_le_bytes()); // e_machine: x86-64
    elf.extend_from_slice(&1u32.to_le_bytes()); // e_version
    elf.extend_from_slice(&(BASE + CODE_OFFSET).to_le_bytes()); // e_entry
    elf.extend_from_slice(&64u64.to_le_bytes()); // e_phoff
    elf.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    elf.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    elf.extend_from_slice(&64u16.to_le_bytes()); // e_ehsize
    elf.extend_from_slice(&56u16.to_le_bytes()); // e_phentsize
    elf.extend_from_slice(&1u16.to_le_bytes()); // e_phnum
    elf.extend_from_slice(&[0; 6]); // e_shentsize, e_shnum, e_shstrndx
    elf.extend_from_slice(&1u32.to_le_bytes()); // p_type: PT_LOAD
    elf.extend_from_slice(&5u32.to_le_bytes()); // p_flags: R + X
    elf.extend_from_slice(&0u64.to_le_bytes()); // p_offset
    elf.extend_from_slice(&BASE.to_le_bytes()); // p_vaddr
    elf.extend_from_slice(&BASE.to_le_bytes()); // p_paddr
    elf.extend_from_slice(&total.to_le_bytes()); // p_filesz
    elf.extend_from_slice(&total.to_le_bytes()); // p_memsz
    elf.extend_from_slice(&0x1000u64.to_le_bytes()); // p_align
    elf.extend_from_slice(&CODE);
    elf
}

/// A sealed memfd holding the trampoline, made before the process gives up its privileges.
pub(crate) struct Trampoline {
    fd: OwnedFd,
}

impl Trampoline {
    /// Creates and seals the memfd (close-on-exec, so it vanishes with the exec it serves).
    /// `None` where there is no trampoline for this architecture.
    pub(crate) fn new() -> Result<Option<Self>> {
        #[cfg(target_arch = "x86_64")]
        {
            let name = c"hako-exec";
            // SAFETY: memfd_create takes a NUL-terminated name and flags; returns a new fd.
            let raw = unsafe {
                libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
            };
            if raw < 0 {
                return Err(Error::sys("memfd_create")(nix::Error::last()));
            }
            // SAFETY: a new descriptor that nothing else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            let img = image();
            let n = nix::unistd::write(&fd, &img).map_err(Error::sys("write trampoline"))?;
            if n != img.len() {
                return Err(Error::sys("write trampoline")(nix::Error::EIO));
            }
            let seals =
                libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
            // SAFETY: F_ADD_SEALS on our own memfd takes an int.
            if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
                return Err(Error::sys("fcntl(F_ADD_SEALS)")(nix::Error::last()));
            }
            Ok(Some(Trampoline { fd }))
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Ok(None)
        }
    }

    /// Moves the descriptor to a number at or above `min`, clear of the preserved fds.
    pub(crate) fn move_above(self, min: i32) -> Result<Self> {
        Ok(Trampoline {
            fd: crate::fds::dup_above(std::os::fd::AsFd::as_fd(&self.fd), min)?,
        })
    }

    /// Execs `path` with `argv` and `envp` through the trampoline; returns only on failure.
    pub(crate) fn exec(&self, path: &CString, argv: &[CString], envp: &[CString]) -> nix::Error {
        let mut args: Vec<*const libc::c_char> = Vec::with_capacity(argv.len() + 2);
        args.push(path.as_ptr());
        args.extend(argv.iter().map(|a| a.as_ptr()));
        args.push(std::ptr::null());
        let mut env: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
        env.push(std::ptr::null());
        // SAFETY: both arrays are NULL-terminated and point at NUL-terminated strings that
        // outlive the call; AT_EMPTY_PATH with "" executes the memfd itself.
        unsafe {
            libc::syscall(
                libc::SYS_execveat,
                self.fd.as_raw_fd(),
                c"".as_ptr(),
                args.as_ptr(),
                env.as_ptr(),
                libc::AT_EMPTY_PATH,
            );
        }
        nix::Error::last()
    }
}

/// Execs the program: through the trampoline when there is one (falling back to a direct exec
/// only if the kernel or a seccomp profile refuses execveat), directly otherwise.
pub(crate) fn exec(
    trampoline: Option<&Trampoline>,
    path: &CString,
    argv: &[CString],
    envp: &[CString],
) -> nix::Error {
    if let Some(t) = trampoline {
        let e = t.exec(path, argv, envp);
        if !matches!(
            e,
            nix::Error::ENOSYS | nix::Error::EPERM | nix::Error::EACCES
        ) {
            return e;
        }
    }
    nix::unistd::execve(path, argv, envp)
        .err()
        .unwrap_or(nix::Error::UnknownErrno)
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn image_layout() {
        let img = image();
        assert_eq!(img.len(), 64 + 56 + CODE.len());
        assert_eq!(&img[..4], b"\x7fELF");
        let entry = u64::from_le_bytes(img[24..32].try_into().expect("8 bytes"));
        assert_eq!(entry, 0x40_0000 + 120);
    }

    /// Runs a real program through the trampoline in a forked child: argv and envp must arrive
    /// exactly, and the exit status must be the program's.
    #[test]
    fn trampoline_execs_with_argv_and_env() {
        let out = tempfile::NamedTempFile::new().expect("temp");
        let out_path = out.path().to_string_lossy().into_owned();
        let t = Trampoline::new().expect("memfd").expect("x86_64");
        let path = CString::new("/bin/sh").expect("c");
        let script = format!("echo \"$0|$1|$V\" > {out_path}; exit 7");
        let argv = [
            CString::new("sh").expect("c"),
            CString::new("-c").expect("c"),
            CString::new(script).expect("c"),
            CString::new("zero").expect("c"),
            CString::new("one").expect("c"),
        ];
        let envp = [CString::new("V=env-ok").expect("c")];
        // SAFETY: the child only execs (or exits); the test process is not otherwise affected.
        match unsafe { nix::unistd::fork() }.expect("fork") {
            nix::unistd::ForkResult::Child => {
                let _ = t.exec(&path, &argv, &envp);
                // SAFETY: exit without unwinding in the forked child.
                unsafe { libc::_exit(99) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).expect("wait");
                assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 7));
                let text = std::fs::read_to_string(out.path()).expect("read");
                assert_eq!(text.trim(), "zero|one|env-ok");
            }
        }
    }

    #[test]
    fn sealed_memfd_refuses_writes() {
        let t = Trampoline::new().expect("memfd").expect("x86_64");
        assert_eq!(nix::unistd::write(&t.fd, b"x"), Err(nix::Error::EPERM));
    }
}
