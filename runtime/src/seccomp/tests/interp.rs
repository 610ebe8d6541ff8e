//! A classic BPF interpreter for the instructions the compiler emits, with the kernel's checks
//! (in range forward jumps, ends in `ret`, at most `BPF_MAXINSNS`), so programs can be checked
//! exhaustively without loading them.

use crate::seccomp::bpf::{Insn, AND_K, JA, JEQ_K, JGE_K, JGT_K, LD_W_ABS, MAX_INSNS, RET_K};

/// `BPF_JMP | BPF_JSET | BPF_K`.
const JSET_K: u16 = 0x45;

/// `struct seccomp_data`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Data {
    pub(crate) nr: u32,
    pub(crate) arch: u32,
    pub(crate) args: [u64; 6],
}

impl Data {
    /// The 32-bit word at byte offset `off`, in the layout the kernel uses (native endian).
    fn word(&self, off: u32) -> u32 {
        let mut bytes = [0u8; 64];
        bytes[0..4].copy_from_slice(&self.nr.to_ne_bytes());
        bytes[4..8].copy_from_slice(&self.arch.to_ne_bytes());
        for (i, arg) in self.args.iter().enumerate() {
            bytes[16 + 8 * i..24 + 8 * i].copy_from_slice(&arg.to_ne_bytes());
        }
        let off = off as usize;
        assert!(off % 4 == 0 && off + 4 <= 64, "bad load offset {off}");
        let mut w = [0u8; 4];
        w.copy_from_slice(&bytes[off..off + 4]);
        u32::from_ne_bytes(w)
    }
}

/// Checks the program as the kernel's `bpf_check_classic` would for these opcodes.
pub(crate) fn validate(prog: &[Insn]) {
    assert!(
        !prog.is_empty() && prog.len() <= MAX_INSNS,
        "length {}",
        prog.len()
    );
    for (pc, insn) in prog.iter().enumerate() {
        match insn.code {
            JA => assert!(
                pc + 1 + (insn.k as usize) < prog.len(),
                "ja out of range at {pc}"
            ),
            JEQ_K | JGT_K | JGE_K | JSET_K => {
                assert!(
                    pc + 1 + (insn.jt as usize) < prog.len(),
                    "jt out of range at {pc}"
                );
                assert!(
                    pc + 1 + (insn.jf as usize) < prog.len(),
                    "jf out of range at {pc}"
                );
            }
            LD_W_ABS | AND_K | RET_K => {}
            code => panic!("unexpected opcode {code:#x} at {pc}"),
        }
    }
    assert_eq!(prog.last().map(|i| i.code), Some(RET_K), "must end in ret");
}

/// Runs the program: (return value, instructions executed).
pub(crate) fn run(prog: &[Insn], data: &Data) -> (u32, usize) {
    let mut a: u32 = 0;
    let mut pc = 0usize;
    let mut steps = 0;
    loop {
        let insn = prog[pc];
        steps += 1;
        let cond = |taken: bool| if taken { insn.jt } else { insn.jf } as usize;
        pc = match insn.code {
            LD_W_ABS => {
                a = data.word(insn.k);
                pc + 1
            }
            AND_K => {
                a &= insn.k;
                pc + 1
            }
            JA => pc + 1 + insn.k as usize,
            JEQ_K => pc + 1 + cond(a == insn.k),
            JGT_K => pc + 1 + cond(a > insn.k),
            JGE_K => pc + 1 + cond(a >= insn.k),
            JSET_K => pc + 1 + cond(a & insn.k != 0),
            RET_K => return (insn.k, steps),
            code => panic!("unexpected opcode {code:#x}"),
        };
    }
}
