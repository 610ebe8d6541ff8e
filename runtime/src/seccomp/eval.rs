//! Runs a compiled program on one `struct seccomp_data`, as the kernel would, without loading
//! it: the init asks whether the profile plainly allows a syscall of its own before the filter
//! constrains it (the trampoline's execveat(2)), and the unit tests check programs with it.

use super::bpf::{Insn, AND_K, JA, JEQ_K, JGE_K, JGT_K, LD_W_ABS, RET_K};

/// `BPF_JMP | BPF_JSET | BPF_K` (never emitted by the compiler; understood for the tests).
pub(super) const JSET_K: u16 = 0x45;

/// `struct seccomp_data` (seccomp(2)), without `instruction_pointer`, which no rule reads.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Data {
    pub(super) nr: u32,
    pub(super) arch: u32,
    pub(super) args: [u64; 6],
}

impl Data {
    /// The 32-bit word at byte offset `off`, in the kernel's layout (native endian); `None`
    /// for an offset the kernel would refuse or that is the instruction pointer.
    fn word(&self, off: u32) -> Option<u32> {
        let off = usize::try_from(off).ok()?;
        if off % 4 != 0 {
            return None;
        }
        let arg_word = |i: usize| {
            let bytes = self.args.get(i / 2)?.to_ne_bytes();
            let half = if i % 2 == 0 { &bytes[..4] } else { &bytes[4..] };
            Some(u32::from_ne_bytes(half.try_into().ok()?))
        };
        match off {
            0 => Some(self.nr),
            4 => Some(self.arch),
            16..=60 => arg_word((off - 16) / 4),
            _ => None,
        }
    }
}

/// What `prog` returns for `data`, with the number of instructions executed; `None` for a
/// program the kernel would refuse (an unknown opcode, a jump or a load out of range).
pub(super) fn run(prog: &[Insn], data: &Data) -> Option<(u32, usize)> {
    let mut a: u32 = 0;
    let mut pc = 0usize;
    let mut steps = 0;
    loop {
        let insn = prog.get(pc)?;
        steps += 1;
        let cond = |taken: bool| usize::from(if taken { insn.jt } else { insn.jf });
        pc = match insn.code {
            LD_W_ABS => {
                a = data.word(insn.k)?;
                pc + 1
            }
            AND_K => {
                a &= insn.k;
                pc + 1
            }
            JA => pc + 1 + usize::try_from(insn.k).ok()?,
            JEQ_K => pc + 1 + cond(a == insn.k),
            JGT_K => pc + 1 + cond(a > insn.k),
            JGE_K => pc + 1 + cond(a >= insn.k),
            JSET_K => pc + 1 + cond(a & insn.k != 0),
            RET_K => return Some((insn.k, steps)),
            _ => return None,
        };
    }
}

/// `seccomp_data.arch` of this build's own syscalls, `None` where hako has no ABI for it.
fn native_audit_arch() -> Option<u32> {
    use super::arch::Abi;
    let abi = if cfg!(target_arch = "x86_64") {
        Abi::X86_64
    } else if cfg!(target_arch = "aarch64") {
        Abi::Aarch64
    } else if cfg!(target_arch = "riscv64") {
        Abi::Riscv64
    } else if cfg!(target_arch = "s390x") {
        Abi::S390x
    } else if cfg!(all(target_arch = "powerpc64", target_endian = "little")) {
        Abi::Ppc64le
    } else if cfg!(target_arch = "loongarch64") {
        Abi::Loongarch64
    } else {
        return None;
    };
    Some(abi.audit_arch())
}

/// Whether `prog` lets native syscall `nr` with `args` through (`SCMP_ACT_ALLOW` or
/// `SCMP_ACT_LOG`); anything else, or a question it cannot answer, is no.
pub(super) fn allows(prog: &[Insn], nr: i64, args: [u64; 6]) -> bool {
    let (Some(arch), Ok(nr)) = (native_audit_arch(), u32::try_from(nr)) else {
        return false;
    };
    run(prog, &Data { nr, arch, args }).is_some_and(|(ret, _)| {
        matches!(
            ret & libc::SECCOMP_RET_ACTION_FULL,
            libc::SECCOMP_RET_ALLOW | libc::SECCOMP_RET_LOG
        )
    })
}
