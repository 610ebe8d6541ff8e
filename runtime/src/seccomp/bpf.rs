//! A classic BPF assembler that builds programs backwards, from the last instruction to the first.
//!
//! cBPF only jumps forward, and a conditional jump reaches at most 255 instructions
//! (`struct sock_filter`'s `jt`/`jf` are `u8`; filter.txt in the kernel's networking docs).
//! Emitting back to front means every jump target already exists when the jump is written, so
//! its distance is known; when it is too far for `jt`/`jf`, a `ja` trampoline (32-bit offset) is
//! placed right after the jump. A [`Label`] names an emitted instruction by its distance from
//! the end, which does not change as more instructions are put in front.

use std::collections::HashMap;

/// One instruction, the kernel's `struct sock_filter`.
pub(super) type Insn = libc::sock_filter;

/// `BPF_LD | BPF_W | BPF_ABS`: `A = seccomp_data[k..k+4]`.
pub(super) const LD_W_ABS: u16 = 0x20;
/// `BPF_ALU | BPF_AND | BPF_K`: `A &= k`.
pub(super) const AND_K: u16 = 0x54;
/// `BPF_JMP | BPF_JA`: `pc += k`.
pub(super) const JA: u16 = 0x05;
/// `BPF_JMP | BPF_JEQ | BPF_K`.
pub(super) const JEQ_K: u16 = 0x15;
/// `BPF_JMP | BPF_JGT | BPF_K` (unsigned).
pub(super) const JGT_K: u16 = 0x25;
/// `BPF_JMP | BPF_JGE | BPF_K` (unsigned).
pub(super) const JGE_K: u16 = 0x35;
/// `BPF_RET | BPF_K`.
pub(super) const RET_K: u16 = 0x06;

/// The kernel's `BPF_MAXINSNS`.
pub(super) const MAX_INSNS: usize = 4096;

/// Farthest `jt`/`jf` offset.
const MAX_SHORT: usize = u8::MAX as usize;

/// An emitted instruction, as its distance from the end of the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Label(usize);

/// The backwards builder.
#[derive(Default)]
pub(super) struct Builder {
    /// Instructions, last one first.
    rev: Vec<Insn>,
    /// `ret k` already emitted, by `k`.
    rets: HashMap<u32, Label>,
    /// The latest trampoline emitted to each target.
    trampolines: HashMap<Label, Label>,
}

impl Builder {
    /// The label the next emitted instruction will get.
    fn next(&self) -> usize {
        self.rev.len()
    }

    /// Offset from an instruction placed at `self.next()` to `target`.
    fn distance(&self, target: Label) -> usize {
        self.next() - target.0 - 1
    }

    fn push(&mut self, code: u16, jt: u8, jf: u8, k: u32) -> Label {
        let label = Label(self.next());
        self.rev.push(Insn { code, jt, jf, k });
        label
    }

    /// `ret k`, shared with any earlier `ret` of the same value.
    pub(super) fn ret(&mut self, k: u32) -> Label {
        if let Some(&label) = self.rets.get(&k) {
            return label;
        }
        let label = self.push(RET_K, 0, 0, k);
        self.rets.insert(k, label);
        label
    }

    /// An unconditional jump to `target`.
    fn ja(&mut self, target: Label) -> Label {
        let k = u32::try_from(self.distance(target)).unwrap_or(u32::MAX);
        self.push(JA, 0, 0, k)
    }

    /// A label that jumps to `target` and that an instruction placed after `slack` more
    /// instructions can still reach with a short offset.
    fn reachable(&mut self, target: Label, slack: usize) -> Label {
        if self.distance(target) + slack <= MAX_SHORT {
            return target;
        }
        if let Some(&t) = self.trampolines.get(&target) {
            if self.distance(t) + slack <= MAX_SHORT {
                return t;
            }
        }
        let t = self.ja(target);
        self.trampolines.insert(target, t);
        t
    }

    /// A conditional jump on `A` against `k`: to `jt` if true, to `jf` if false.
    pub(super) fn jump(&mut self, code: u16, k: u32, jt: Label, jf: Label) -> Label {
        if jt == jf {
            return jt;
        }
        let jt = self.reachable(jt, 1);
        let jf = self.reachable(jf, 0);
        let (t, f) = (self.distance(jt), self.distance(jf));
        // Both are at most MAX_SHORT by `reachable`; the fallbacks are never taken.
        let t = u8::try_from(t).unwrap_or(u8::MAX);
        let f = u8::try_from(f).unwrap_or(u8::MAX);
        self.push(code, t, f, k)
    }

    /// A statement (load, ALU) that falls through to `next`.
    pub(super) fn stmt(&mut self, code: u16, k: u32, next: Label) -> Label {
        if self.distance(next) != 0 {
            self.ja(next);
        }
        self.push(code, 0, 0, k)
    }

    /// The program, starting at `entry`.
    pub(super) fn finish(mut self, entry: Label) -> Vec<Insn> {
        if self.distance(entry) != 0 {
            self.ja(entry);
        }
        self.rev.reverse();
        self.rev
    }
}
