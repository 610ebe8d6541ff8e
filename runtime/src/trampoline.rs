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
//! hako instead execs a 152-byte machine-code trampoline from a sealed memfd, which then execs
//! the user's program: at the moment the program is loaded, `/proc/self/exe` is the sealed
//! trampoline, which nobody can write. Cost: one memfd, one write of about 1.3 KiB (the image
//! and its error messages) and one extra exec of a program with a single page.
//!
//! The trampoline is a hand-assembled static ELF for x86_64: `execve(argv[0], &argv[1], envp)`.
//! It is invoked with argv `[path, args...]`, so the program gets exactly `args` as its argv.
//! If that execve fails (ENOEXEC, a script's missing interpreter, EACCES on a noexec mount),
//! hako's code is gone already: the trampoline itself writes the error to stderr as runc's init
//! does (`exec /path: exec format error`, Go's wording) and exits with status 1, as runc's init
//! does: the image carries a table of reasons indexed by errno next to its code.
//!
//! Fail closed: the memfd is made with `MFD_EXEC` (Linux 6.3: without it, `vm.memfd_noexec=1`
//! makes the memfd non-executable); a kernel that does not know the flag (EINVAL, and no
//! `vm.memfd_noexec` sysctl) gets a plain memfd, which is executable there. Where
//! `vm.memfd_noexec=2` forbids executable memfds, the image goes into a file on a detached,
//! read-only tmpfs instead (see [`read_only_tmpfs_file`]). If neither can be made or exec'd,
//! the container fails with that error: never a quiet direct exec of the program with the
//! hako binary as `/proc/self/exe`. Other architectures have no trampoline yet and exec
//! directly.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};

use crate::error::{Error, Result};
use crate::process::Exec;
use crate::sys;

/// memfd_create(2)'s `MFD_EXEC` (include/uapi/linux/memfd.h, Linux 6.3).
const MFD_EXEC: libc::c_uint = 0x10;

/// Where the kernel that knows `MFD_EXEC` keeps the policy it enforces (per pid namespace).
const MEMFD_NOEXEC_SYSCTL: &str = "/proc/sys/vm/memfd_noexec";

/// Load address of the image (a static ET_EXEC).
#[cfg(target_arch = "x86_64")]
const BASE: u32 = 0x40_0000;

/// Bytes before the code: the 64-byte ELF header and one 56-byte program header.
#[cfg(target_arch = "x86_64")]
const CODE_OFFSET: u32 = 64 + 56;

/// Errnos the reason table covers: 0..=127 (ELIBBAD is 80).
#[cfg(target_arch = "x86_64")]
const TABLE_SLOTS: usize = 128;

/// The trampoline's code, at `BASE + CODE_OFFSET` (x86_64 System V process entry: `[rsp]` =
/// argc, `[rsp+8..]` = argv, then NULL, then envp). `TEXT` and `TABLE` are patched in by
/// [`image`] (little-endian imm32/disp32 at the offsets below). execve(2) returns only on
/// failure, with `-errno` in rax and every other register but rcx and r11 kept: rdi still
/// points at the path.
#[cfg(target_arch = "x86_64")]
const CODE: [u8; 152] = [
    0x48, 0x8b, 0x7c, 0x24, 0x08, // mov rdi, [rsp+8]        ; filename = argv[0]
    0x48, 0x8d, 0x74, 0x24, 0x10, // lea rsi, [rsp+16]       ; argv = &argv[1]
    0x48, 0x8b, 0x04, 0x24, //       mov rax, [rsp]          ; argc
    0x48, 0x8d, 0x54, 0xc4, 0x10, // lea rdx, [rsp+rax*8+16] ; envp = &argv[argc + 1]
    0xb8, 0x3b, 0x00, 0x00, 0x00, // mov eax, 59             ; execve
    0x0f, 0x05, //                   syscall                 ; returns only with -errno
    0xf7, 0xd8, //                   neg eax                 ; errno
    0x83, 0xf8, 0x7f, //             cmp eax, 127
    0x76, 0x02, //                   jbe +2
    0x31, 0xc0, //                   xor eax, eax            ; past the table: slot 0
    0x89, 0xc3, //                   mov ebx, eax            ; the slot survives syscalls
    0x49, 0x89, 0xfc, //             mov r12, rdi            ; and the path
    0xbf, 0x02, 0x00, 0x00, 0x00, // mov edi, 2              ; stderr
    0xbe, 0, 0, 0, 0, //             mov esi, TEXT           ; "exec "
    0xba, 0x05, 0x00, 0x00, 0x00, // mov edx, 5
    0xb8, 0x01, 0x00, 0x00, 0x00, // mov eax, 1              ; write
    0x0f, 0x05, //                   syscall
    0x31, 0xd2, //                   xor edx, edx            ; strlen(path)
    0x41, 0x80, 0x3c, 0x14, 0x00, // cmp byte [r12+rdx], 0
    0x74, 0x05, //                   je +5
    0x48, 0xff, 0xc2, //             inc rdx
    0xeb, 0xf4, //                   jmp -12                 ; back to cmp
    0x4c, 0x89, 0xe6, //             mov rsi, r12
    0xbf, 0x02, 0x00, 0x00, 0x00, // mov edi, 2
    0xb8, 0x01, 0x00, 0x00, 0x00, // mov eax, 1              ; write the path
    0x0f, 0x05, //                   syscall
    0xbf, 0x02, 0x00, 0x00, 0x00, // mov edi, 2
    0xbe, 0, 0, 0, 0, //             mov esi, TEXT+5         ; ": "
    0xba, 0x02, 0x00, 0x00, 0x00, // mov edx, 2
    0xb8, 0x01, 0x00, 0x00, 0x00, // mov eax, 1              ; write
    0x0f, 0x05, //                   syscall
    0x8b, 0x34, 0xdd, 0, 0, 0, 0, // mov esi, [rbx*8+TABLE]  ; the reason's address
    0x8b, 0x14, 0xdd, 0, 0, 0, 0, // mov edx, [rbx*8+TABLE+4]; and length
    0xbf, 0x02, 0x00, 0x00, 0x00, // mov edi, 2
    0xb8, 0x01, 0x00, 0x00, 0x00, // mov eax, 1              ; write
    0x0f, 0x05, //                   syscall
    0xbf, 0x01, 0x00, 0x00, 0x00, // mov edi, 1              ; exit status 1, as runc's init
    0xb8, 0x3c, 0x00, 0x00, 0x00, // mov eax, 60             ; exit
    0x0f, 0x05, //                   syscall
    0xf4, //                         hlt (never reached)
];

/// Offsets in [`CODE`] of the values [`image`] patches.
#[cfg(target_arch = "x86_64")]
const PATCH_EXEC: usize = 46;
#[cfg(target_arch = "x86_64")]
const PATCH_SEPARATOR: usize = 97;
#[cfg(target_arch = "x86_64")]
const PATCH_TABLE: usize = 116;
#[cfg(target_arch = "x86_64")]
const PATCH_TABLE_LEN: usize = 123;

/// What runc's init prints after `exec /path: ` (Go's `syscall.Errno` strings) for the errnos
/// execve(2) documents; any other errno reads "exec failed".
#[cfg(target_arch = "x86_64")]
const REASONS: &[(i32, &str)] = &[
    (libc::EPERM, "operation not permitted"),
    (libc::ENOENT, "no such file or directory"),
    (libc::EIO, "input/output error"),
    (libc::E2BIG, "argument list too long"),
    (libc::ENOEXEC, "exec format error"),
    (libc::EAGAIN, "resource temporarily unavailable"),
    (libc::ENOMEM, "cannot allocate memory"),
    (libc::EACCES, "permission denied"),
    (libc::EFAULT, "bad address"),
    (libc::ETXTBSY, "text file busy"),
    (libc::ENOTDIR, "not a directory"),
    (libc::EISDIR, "is a directory"),
    (libc::EINVAL, "invalid argument"),
    (libc::ENFILE, "too many open files in system"),
    (libc::EMFILE, "too many open files"),
    (libc::ENAMETOOLONG, "file name too long"),
    (libc::ELOOP, "too many levels of symbolic links"),
    (libc::ELIBBAD, "accessing a corrupted shared library"),
];

/// The whole ELF image: 64-byte header, one PT_LOAD header, the code, the text of the message
/// (`exec ` and `: `), the reason table (an address and a length per errno) and the reasons.
#[cfg(target_arch = "x86_64")]
fn image() -> Vec<u8> {
    let mut code = CODE;
    let text_at = CODE_OFFSET + CODE.len() as u32;
    let text = b"exec : ";
    let table_at = text_at + text.len() as u32;
    let reasons_at = table_at + (TABLE_SLOTS * 8) as u32;
    let mut table = vec![0u8; TABLE_SLOTS * 8];
    let mut reasons = b"exec failed\n".to_vec();
    let slot = |table: &mut [u8], i: usize, at: u32, len: usize| {
        table[i * 8..i * 8 + 4].copy_from_slice(&(BASE + at).to_le_bytes());
        table[i * 8 + 4..i * 8 + 8].copy_from_slice(&(len as u32).to_le_bytes());
    };
    for i in 0..TABLE_SLOTS {
        slot(&mut table, i, reasons_at, reasons.len());
    }
    for (errno, reason) in REASONS {
        let at = reasons_at + reasons.len() as u32;
        reasons.extend_from_slice(reason.as_bytes());
        reasons.push(b'\n');
        slot(&mut table, *errno as usize, at, reason.len() + 1);
    }
    let mut patch = |at: usize, v: u32| code[at..at + 4].copy_from_slice(&v.to_le_bytes());
    patch(PATCH_EXEC, BASE + text_at);
    patch(PATCH_SEPARATOR, BASE + text_at + 5);
    patch(PATCH_TABLE, BASE + table_at);
    patch(PATCH_TABLE_LEN, BASE + table_at + 4);
    let total = u64::from(reasons_at) + reasons.len() as u64;
    let base = u64::from(BASE);
    let mut elf = Vec::with_capacity(total as usize);
    // e_ident: magic, 64-bit, little-endian, version 1, System V ABI.
    elf.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    elf.extend_from_slice(&2u16.to_le_bytes()); // e_type: ET_EXEC
    elf.extend_from_slice(&0x3eu16.to_le_bytes()); // e_machine: x86-64
    elf.extend_from_slice(&1u32.to_le_bytes()); // e_version
    elf.extend_from_slice(&(base + u64::from(CODE_OFFSET)).to_le_bytes()); // e_entry
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
    elf.extend_from_slice(&base.to_le_bytes()); // p_vaddr
    elf.extend_from_slice(&base.to_le_bytes()); // p_paddr
    elf.extend_from_slice(&total.to_le_bytes()); // p_filesz
    elf.extend_from_slice(&total.to_le_bytes()); // p_memsz
    elf.extend_from_slice(&0x1000u64.to_le_bytes()); // p_align
    elf.extend_from_slice(&code);
    elf.extend_from_slice(text);
    elf.extend_from_slice(&table);
    elf.extend_from_slice(&reasons);
    elf
}

/// A sealed memfd holding the trampoline, made before the seccomp filter is loaded.
pub(crate) struct Trampoline {
    fd: OwnedFd,
    /// `/proc/self/fd/N` of `fd`, made before any filter is loaded: the path to execve(2) the
    /// same file by when a seccomp profile denies execveat(2) (runc and crun use only execve).
    proc_path: CString,
    /// Whether the filter plainly allows execveat(2) of `fd` ([`Trampoline::under`]).
    execveat: bool,
}

impl Trampoline {
    fn from_fd(fd: OwnedFd) -> Self {
        let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
        let proc_path = CString::new(format!("/proc/self/fd/{raw}")).unwrap_or_default();
        Trampoline {
            fd,
            proc_path,
            execveat: true,
        }
    }

    /// Decides, before `filter` is loaded, how the trampoline will be exec'd under it: by
    /// execveat(2) of its fd only when the profile plainly allows that call (`SCMP_ACT_ALLOW`
    /// or `SCMP_ACT_LOG`, asked of the compiled program), otherwise by execve(2) of its
    /// `/proc/self/fd` path, the only exec runc and crun make. Trying execveat first under a
    /// profile that answers it with `SCMP_ACT_KILL_*` or `SCMP_ACT_TRAP` would kill a
    /// container they run.
    pub(crate) fn under(mut self, filter: Option<&crate::seccomp::SeccompProgram>) -> Self {
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.fd);
        let args = [
            u64::try_from(fd).unwrap_or_default(),
            0,
            0,
            0,
            u64::try_from(libc::AT_EMPTY_PATH).unwrap_or_default(),
            0,
        ];
        self.execveat = filter.is_none_or(|f| f.allows(libc::SYS_execveat, args));
        self
    }
}

/// An executable memfd (close-on-exec, so it vanishes with the exec it serves, and sealable).
/// EACCES means `vm.memfd_noexec=2`: no memfd may be executable in this pid namespace.
fn executable_memfd() -> nix::Result<OwnedFd> {
    let name = c"hako-exec";
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    match sys::memfd_create(name, flags | MFD_EXEC) {
        // A kernel before 6.3 refuses the unknown flag; its memfds are executable anyway.
        Err(nix::Error::EINVAL) if !std::path::Path::new(MEMFD_NOEXEC_SYSCTL).exists() => {
            sys::memfd_create(name, flags)
        }
        other => other,
    }
}

/// The image in a sealed memfd: no write, grow, shrink or further seal is possible.
fn sealed_memfd(fd: OwnedFd, img: &[u8]) -> Result<OwnedFd> {
    write_all(&fd, img)?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    sys::add_seals(fd.as_fd(), seals).map_err(Error::sys("fcntl(F_ADD_SEALS)"))?;
    Ok(fd)
}

fn write_all(fd: &OwnedFd, img: &[u8]) -> Result<()> {
    let n = nix::unistd::write(fd, img).map_err(Error::sys("write trampoline"))?;
    if n != img.len() {
        return Err(Error::sys("write trampoline")(nix::Error::EIO));
    }
    Ok(())
}

/// Where `vm.memfd_noexec=2` forbids executable memfds: the image as a file on a private tmpfs
/// that is mounted nowhere (fsopen(2)/fsmount(2), a detached mount) and made read-only
/// (mount_setattr(2)) before the file is opened again for exec. Writing through
/// `/proc/<pid>/exe` then fails with EROFS, and no process in the container can reach the
/// mount to make it writable again (it is in no mount namespace, and changing it needs
/// CAP_SYS_ADMIN over its owner). runc 1.2 protects itself the same way (a read-only
/// overlay); every step failing is an error, never a plain exec.
fn read_only_tmpfs_file(img: &[u8]) -> Result<OwnedFd> {
    let fail = |step| move |source| Error::Trampoline { step, source };
    let fs = sys::fsopen(c"tmpfs").map_err(fail("fsopen(tmpfs)"))?;
    sys::fsconfig_create(fs.as_fd()).map_err(fail("fsconfig(FSCONFIG_CMD_CREATE)"))?;
    let mnt = sys::fsmount(fs.as_fd(), sys::MOUNT_ATTR_NOSUID_NODEV).map_err(fail("fsmount"))?;
    let name = c"hako-exec";
    let file = sys::openat(
        mnt.as_fd(),
        name,
        libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC,
        0o500,
    )
    .map_err(fail("create the trampoline on a private tmpfs"))?;
    write_all(&file, img)?;
    // The umask may have taken the execute bit away at creation.
    nix::sys::stat::fchmod(
        std::os::fd::AsRawFd::as_raw_fd(&file),
        nix::sys::stat::Mode::from_bits_truncate(0o500),
    )
    .map_err(fail("fchmod the trampoline"))?;
    // mount_setattr refuses (EBUSY) while a writer is open.
    drop(file);
    sys::mount_set_read_only(mnt.as_fd()).map_err(fail("mount_setattr(MOUNT_ATTR_RDONLY)"))?;
    sys::openat(mnt.as_fd(), name, libc::O_RDONLY | libc::O_CLOEXEC, 0)
        .map_err(fail("open the read-only trampoline"))
}

impl Trampoline {
    /// Creates and seals the memfd (or, under `vm.memfd_noexec=2`, the read-only file). `None`
    /// where there is no trampoline for this architecture.
    pub(crate) fn new() -> Result<Option<Self>> {
        #[cfg(target_arch = "x86_64")]
        {
            let img = image();
            let fd = match executable_memfd() {
                Ok(fd) => sealed_memfd(fd, &img)?,
                Err(nix::Error::EACCES) => read_only_tmpfs_file(&img)?,
                Err(source) => {
                    return Err(Error::Trampoline {
                        step: "memfd_create(MFD_EXEC)",
                        source,
                    })
                }
            };
            Ok(Some(Trampoline::from_fd(fd)))
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Ok(None)
        }
    }

    /// Moves the descriptor to a number at or above `min`, clear of the preserved fds.
    pub(crate) fn move_above(self, min: i32) -> Result<Self> {
        Ok(Trampoline::from_fd(crate::fds::dup_above(
            self.fd.as_fd(),
            min,
        )?))
    }

    /// Execs `exec` through the trampoline; returns only on failure (execveat's error).
    fn exec(&self, exec: &Exec) -> nix::Error {
        let mut args: Vec<*const libc::c_char> = Vec::with_capacity(exec.argv.len() + 2);
        args.push(exec.path.as_ptr());
        args.extend(exec.argv.iter().map(|a| a.as_ptr()));
        args.push(std::ptr::null());
        let mut env: Vec<*const libc::c_char> = exec.envp.iter().map(|e| e.as_ptr()).collect();
        env.push(std::ptr::null());
        let mut err = None;
        if self.execveat {
            // `args` and `env` point into `exec`, which outlives the call.
            err = Some(sys::execveat_fd(self.fd.as_fd(), &args, &env));
        }
        // The same sealed file through /proc (when the container has it): never the program
        // itself.
        let mut argv: Vec<&std::ffi::CStr> = vec![exec.path.as_c_str()];
        argv.extend(exec.argv.iter().map(CString::as_c_str));
        let proc_err = nix::unistd::execve(&self.proc_path, &argv, &exec.envp)
            .err()
            .unwrap_or(nix::Error::UnknownErrno);
        err.unwrap_or(proc_err)
    }
}

/// Execs the program: through the trampoline when there is one, directly on architectures
/// without one. Returns only on failure, and never retries a failed trampoline directly (that
/// would hand the container the hako binary as `/proc/self/exe`: fail closed).
pub(crate) fn exec(trampoline: Option<&Trampoline>, exec: &Exec) -> Error {
    match trampoline {
        Some(t) => Error::Trampoline {
            step: "execveat(trampoline memfd)",
            source: t.exec(exec),
        },
        None => Error::Sys {
            syscall: "execve",
            source: nix::unistd::execve(&exec.path, &exec.argv, &exec.envp)
                .err()
                .unwrap_or(nix::Error::UnknownErrno),
        },
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn image_layout() {
        let img = image();
        assert_eq!(&img[..4], b"\x7fELF");
        let entry = u64::from_le_bytes(img[24..32].try_into().expect("8 bytes"));
        assert_eq!(entry, 0x40_0000 + 120);
        let filesz = u64::from_le_bytes(img[96..104].try_into().expect("8 bytes"));
        assert_eq!(filesz, img.len() as u64);
        let text = 120 + CODE.len();
        assert_eq!(&img[text..text + 7], b"exec : ");
    }

    /// Forks, execs `path` through a trampoline in the child with stderr on a temp file, and
    /// returns the exit status and what went to stderr.
    fn run(path: &str, argv: &[&str], envp: &[&str]) -> (nix::sys::wait::WaitStatus, String) {
        let t = Trampoline::new().expect("memfd").expect("x86_64");
        run_with(&t, path, argv, envp)
    }

    /// As [`run`], through the trampoline `t`.
    fn run_with(
        t: &Trampoline,
        path: &str,
        argv: &[&str],
        envp: &[&str],
    ) -> (nix::sys::wait::WaitStatus, String) {
        let err = tempfile::NamedTempFile::new().expect("temp");
        let path = CString::new(path).expect("c");
        let c = |v: &[&str]| -> Vec<CString> {
            v.iter().map(|a| CString::new(*a).expect("c")).collect()
        };
        let exec = Exec {
            path,
            argv: c(argv),
            envp: c(envp),
        };
        let stderr = std::fs::File::options()
            .write(true)
            .open(err.path())
            .expect("open");
        // SAFETY: the child only dups, execs (or exits); the test process is not affected.
        match unsafe { nix::unistd::fork() }.expect("fork") {
            nix::unistd::ForkResult::Child => {
                let _ = nix::unistd::dup2(std::os::fd::AsRawFd::as_raw_fd(&stderr), 2);
                let _ = super::exec(Some(t), &exec);
                sys::exit_now(99)
            }
            nix::unistd::ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).expect("wait");
                (status, std::fs::read_to_string(err.path()).expect("read"))
            }
        }
    }

    /// argv and envp must arrive exactly, and the exit status must be the program's.
    #[test]
    fn trampoline_execs_with_argv_and_env() {
        let out = tempfile::NamedTempFile::new().expect("temp");
        let out_path = out.path().to_string_lossy().into_owned();
        let script = format!("echo \"$0|$1|$V\" > {out_path}; exit 7");
        let (status, _) = run(
            "/bin/sh",
            &["sh", "-c", &script, "zero", "one"],
            &["V=env-ok"],
        );
        assert!(
            matches!(status, nix::sys::wait::WaitStatus::Exited(_, 7)),
            "{status:?}"
        );
        let text = std::fs::read_to_string(out.path()).expect("read");
        assert_eq!(text.trim(), "zero|one|env-ok");
    }

    /// A failing exec is reported on stderr in runc's words, with exit status 1.
    #[test]
    fn trampoline_reports_exec_failure() {
        let dir = tempfile::tempdir().expect("dir");
        let garbage = dir.path().join("garbage");
        std::fs::write(&garbage, "garbage\n").expect("write");
        let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        std::fs::set_permissions(&garbage, mode).expect("chmod");
        let g = garbage.to_string_lossy().into_owned();
        let missing = dir.path().join("missing").to_string_lossy().into_owned();
        for (path, reason) in [
            (g.as_str(), "exec format error"),
            (missing.as_str(), "no such file or directory"),
        ] {
            let (status, stderr) = run(path, &["x"], &[]);
            assert!(
                matches!(status, nix::sys::wait::WaitStatus::Exited(_, 1)),
                "{status:?}"
            );
            assert_eq!(stderr, format!("exec {path}: {reason}\n"));
        }
    }

    /// The `vm.memfd_noexec=2` fallback: executable, and not writable through
    /// `/proc/self/fd` (what `/proc/<pid>/exe` would give a container): EROFS.
    #[test]
    fn read_only_tmpfs_trampoline_refuses_writes() {
        let fd = read_only_tmpfs_file(&image()).expect("tmpfs file");
        let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
        let err = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect_err("must not open for writing");
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
        let t = Trampoline::from_fd(fd);
        let (status, stderr) = run_with(&t, "/bin/true", &["true"], &[]);
        assert!(
            matches!(status, nix::sys::wait::WaitStatus::Exited(_, 0)),
            "{status:?} {stderr}"
        );
    }

    #[test]
    fn sealed_memfd_refuses_writes() {
        let t = Trampoline::new().expect("memfd").expect("x86_64");
        assert_eq!(nix::unistd::write(&t.fd, b"x"), Err(nix::Error::EPERM));
    }
}
