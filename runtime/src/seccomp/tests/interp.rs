//! A classic BPF interpreter for the instructions the compiler emits, with the kernel's checks
//! (in range forward jumps, ends in `ret`, at most `BPF_MAXINSNS`), so programs can be checked
//! exhaustively without loading them.

use crate::seccomp::bpf::{Insn, AND_K, JA, JEQ_K, JGE_K, JGT_K, LD_W_ABS, MAX_INSNS, RET_K};

pub(super) use crate::seccomp::eval::Data;
use crate::seccomp::eval::JSET_K;

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
    crate::seccomp::eval::run(prog, data).expect("a program the kernel accepts")
}
