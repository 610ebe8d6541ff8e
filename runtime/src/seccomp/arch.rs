//! Architectures: which syscall ABIs the kernel can present to a filter, their `AUDIT_ARCH_*`
//! value (`seccomp_data.arch`), and syscall name → number per ABI.
//!
//! A filter only ever sees the ABIs the running kernel implements: on an x86_64 kernel those are
//! x86_64, i386 (compat) and x32 (same `AUDIT_ARCH_X86_64`, numbers with `__X32_SYSCALL_BIT`);
//! on arm64, aarch64 and arm. A profile naming other architectures (docker's and podman's name
//! the whole family of each host) still loads: those are accepted and generate no code, as a
//! section for an `AUDIT_ARCH` value that never occurs would be dead code. The numbers come from
//! the `syscalls` crate (generated from the kernel's tables); x32 is derived from x86_64 with the
//! kernel's `arch/x86/entry/syscalls/syscall_64.tbl` rules, below.

use oci_spec::runtime::Arch;

/// `__X32_SYSCALL_BIT`: x32 syscalls are x86_64 syscalls with this bit set.
pub(super) const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// A syscall ABI hako can generate a section for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Abi {
    /// x86_64 (`AUDIT_ARCH_X86_64`, numbers below `__X32_SYSCALL_BIT`).
    X86_64,
    /// x32 (`AUDIT_ARCH_X86_64`, numbers with `__X32_SYSCALL_BIT`).
    X32,
    /// i386 (`AUDIT_ARCH_I386`).
    X86,
    /// aarch64.
    Aarch64,
    /// 32-bit arm (EABI).
    Arm,
    /// riscv64.
    Riscv64,
    /// s390x.
    S390x,
    /// ppc64 little-endian.
    Ppc64le,
    /// loongarch64.
    Loongarch64,
}

impl Abi {
    /// `seccomp_data.arch` for this ABI (`AUDIT_ARCH_*` from `<linux/audit.h>`).
    pub(super) fn audit_arch(self) -> u32 {
        match self {
            Abi::X86_64 | Abi::X32 => 0xc000_003e,
            Abi::X86 => 0x4000_0003,
            Abi::Aarch64 => 0xc000_00b7,
            Abi::Arm => 0x4000_0028,
            Abi::Riscv64 => 0xc000_00f3,
            Abi::S390x => 0x8000_0016,
            Abi::Ppc64le => 0xc000_0015,
            Abi::Loongarch64 => 0xc000_0102,
        }
    }

    /// The syscall numbers this ABI owns within its `AUDIT_ARCH` (x86_64 and x32 split one).
    pub(super) fn range(self) -> (u32, u32) {
        match self {
            Abi::X86_64 => (0, X32_SYSCALL_BIT - 1),
            Abi::X32 => (X32_SYSCALL_BIT, u32::MAX),
            _ => (0, u32::MAX),
        }
    }

    /// Whether arguments are 32-bit: only the low word of `seccomp_data.args[i]` is compared
    /// (libseccomp does the same for its 32-bit arches). x32 passes 64-bit registers and is
    /// compared on all 64 bits, so a high word cannot slip past a rule.
    pub(super) fn args_are_32bit(self) -> bool {
        matches!(self, Abi::X86 | Abi::Arm)
    }

    /// The number of `name` on this ABI, `None` when this ABI has no such syscall. Only the
    /// tables of ABIs this build's kernel can present are compiled in (see [`host_abis`]).
    pub(super) fn resolve(self, name: &str) -> Option<u32> {
        fn id<T: std::str::FromStr>(name: &str, id: impl Fn(&T) -> i32) -> Option<u32> {
            u32::try_from(id(&name.parse::<T>().ok()?)).ok()
        }
        match self {
            #[cfg(target_arch = "x86_64")]
            Abi::X86_64 => id(name, syscalls::x86_64::Sysno::id),
            #[cfg(target_arch = "x86_64")]
            Abi::X32 => x32(name),
            #[cfg(target_arch = "x86_64")]
            Abi::X86 => id(name, syscalls::x86::Sysno::id),
            #[cfg(target_arch = "aarch64")]
            Abi::Aarch64 => id(name, syscalls::aarch64::Sysno::id),
            #[cfg(target_arch = "aarch64")]
            Abi::Arm => id(name, syscalls::arm::Sysno::id),
            #[cfg(target_arch = "riscv64")]
            Abi::Riscv64 => id(name, syscalls::riscv64::Sysno::id),
            #[cfg(target_arch = "s390x")]
            Abi::S390x => id(name, syscalls::s390x::Sysno::id),
            #[cfg(target_arch = "powerpc64")]
            Abi::Ppc64le => id(name, syscalls::powerpc64::Sysno::id),
            #[cfg(target_arch = "loongarch64")]
            Abi::Loongarch64 => id(name, syscalls::loongarch64::Sysno::id),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }
}

#[cfg(target_arch = "x86_64")]
/// x32 syscalls whose x32 entry point differs from x86_64's: they have their own numbers
/// 512..=547 (`syscall_64.tbl`, ABI `x32`).
const X32_OWN: [&str; 36] = [
    "rt_sigaction",
    "rt_sigreturn",
    "ioctl",
    "readv",
    "writev",
    "recvfrom",
    "sendmsg",
    "recvmsg",
    "execve",
    "ptrace",
    "rt_sigpending",
    "rt_sigtimedwait",
    "rt_sigqueueinfo",
    "sigaltstack",
    "timer_create",
    "mq_notify",
    "kexec_load",
    "waitid",
    "set_robust_list",
    "get_robust_list",
    "vmsplice",
    "move_pages",
    "preadv",
    "pwritev",
    "rt_tgsigqueueinfo",
    "recvmmsg",
    "sendmmsg",
    "process_vm_readv",
    "process_vm_writev",
    "setsockopt",
    "getsockopt",
    "io_setup",
    "io_submit",
    "execveat",
    "preadv2",
    "pwritev2",
];

#[cfg(target_arch = "x86_64")]
/// x86_64-only syscalls (ABI `64` in `syscall_64.tbl`) that x32 does not have at all.
const X86_64_ONLY: [&str; 11] = [
    "uselib",
    "_sysctl",
    "create_module",
    "get_kernel_syms",
    "query_module",
    "nfsservctl",
    "set_thread_area",
    "get_thread_area",
    "epoll_ctl_old",
    "epoll_wait_old",
    "vserver",
];

#[cfg(target_arch = "x86_64")]
/// The x32 number of `name`: its own number 512.. if it has one, else the `common` x86_64
/// number, always with `__X32_SYSCALL_BIT`.
fn x32(name: &str) -> Option<u32> {
    if let Some(i) = X32_OWN.iter().position(|&n| n == name) {
        return u32::try_from(512 + i).ok().map(|n| n | X32_SYSCALL_BIT);
    }
    if X86_64_ONLY.contains(&name) {
        return None;
    }
    Abi::X86_64.resolve(name).map(|n| n | X32_SYSCALL_BIT)
}

/// The ABIs a kernel running this build of hako can present, native first.
pub(super) fn host_abis() -> &'static [Abi] {
    if cfg!(target_arch = "x86_64") {
        &[Abi::X86_64, Abi::X86, Abi::X32]
    } else if cfg!(target_arch = "aarch64") {
        &[Abi::Aarch64, Abi::Arm]
    } else if cfg!(target_arch = "riscv64") {
        &[Abi::Riscv64]
    } else if cfg!(target_arch = "s390x") {
        &[Abi::S390x]
    } else if cfg!(all(target_arch = "powerpc64", target_endian = "little")) {
        &[Abi::Ppc64le]
    } else if cfg!(target_arch = "loongarch64") {
        &[Abi::Loongarch64]
    } else {
        &[]
    }
}

/// The host ABI a profile architecture names, `None` for an architecture this kernel never
/// presents (accepted, no code) or whose table hako lacks (s390 31-bit, ppc32, mips: none of
/// them can run on a host hako is built for together with one it has a table for).
pub(super) fn host_abi(arch: Arch) -> Option<Abi> {
    let abi = match arch {
        Arch::ScmpArchNative => return host_abis().first().copied(),
        Arch::ScmpArchX86_64 => Abi::X86_64,
        Arch::ScmpArchX86 => Abi::X86,
        Arch::ScmpArchX32 => Abi::X32,
        Arch::ScmpArchAarch64 => Abi::Aarch64,
        Arch::ScmpArchArm => Abi::Arm,
        Arch::ScmpArchRiscv64 => Abi::Riscv64,
        Arch::ScmpArchS390x => Abi::S390x,
        Arch::ScmpArchPpc64le => Abi::Ppc64le,
        Arch::ScmpArchLoongarch64 => Abi::Loongarch64,
        _ => return None,
    };
    host_abis().contains(&abi).then_some(abi)
}
