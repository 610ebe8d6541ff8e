//! eBPF instruction encoding: `struct bpf_insn` of include/uapi/linux/bpf.h,
//! 8 bytes each: opcode, a byte holding the destination register (low
//! nibble on little-endian hosts) and source register, a signed 16-bit
//! offset and a signed 32-bit immediate. The opcode is class | op | source
//! (Documentation/bpf/standardization/instruction-set.rst). Only the
//! instructions the device filter needs are provided.

/// A register: R0 holds the return value, R1 the context pointer on entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Reg {
    R0 = 0,
    R1 = 1,
    R2 = 2,
    R3 = 3,
    R4 = 4,
    R5 = 5,
}

// Instruction classes.
pub(crate) const CLASS_LDX: u8 = 0x01;
pub(crate) const CLASS_ALU: u8 = 0x04;
pub(crate) const CLASS_JMP: u8 = 0x05;
// Size and mode for loads.
pub(crate) const SIZE_W: u8 = 0x00;
pub(crate) const MODE_MEM: u8 = 0x60;
// Source operand: immediate (K) or register (X).
pub(crate) const SRC_K: u8 = 0x00;
pub(crate) const SRC_X: u8 = 0x08;
// ALU operations.
pub(crate) const ALU_AND: u8 = 0x50;
pub(crate) const ALU_RSH: u8 = 0x70;
pub(crate) const ALU_MOV: u8 = 0xb0;
// Jump operations.
pub(crate) const JMP_JEQ: u8 = 0x10;
pub(crate) const JMP_JNE: u8 = 0x50;
pub(crate) const JMP_EXIT: u8 = 0x90;

/// One instruction, before encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Insn {
    pub(crate) code: u8,
    pub(crate) dst: Reg,
    pub(crate) src: Reg,
    /// Memory offset, or jump distance counted from the next instruction.
    pub(crate) off: i16,
    pub(crate) imm: i32,
}

impl Insn {
    const fn new(code: u8, dst: Reg, src: Reg, off: i16, imm: i32) -> Self {
        Self {
            code,
            dst,
            src,
            off,
            imm,
        }
    }

    /// `dst = *(u32 *)(src + off)` (zero-extended).
    pub(crate) const fn load_word(dst: Reg, src: Reg, off: i16) -> Self {
        Self::new(CLASS_LDX | MODE_MEM | SIZE_W, dst, src, off, 0)
    }

    /// `dst = (u32)dst & imm` (32-bit ALU: the upper half becomes 0).
    pub(crate) const fn and32_imm(dst: Reg, imm: u32) -> Self {
        Self::new(
            CLASS_ALU | ALU_AND | SRC_K,
            dst,
            Reg::R0,
            0,
            i32::from_ne_bytes(imm.to_ne_bytes()),
        )
    }

    /// `dst = (u32)dst >> imm`.
    pub(crate) const fn rsh32_imm(dst: Reg, imm: u32) -> Self {
        Self::new(
            CLASS_ALU | ALU_RSH | SRC_K,
            dst,
            Reg::R0,
            0,
            i32::from_ne_bytes(imm.to_ne_bytes()),
        )
    }

    /// `dst = imm` as a 32-bit move: the register holds exactly `imm`, zero-extended.
    pub(crate) const fn mov32_imm(dst: Reg, imm: u32) -> Self {
        Self::new(
            CLASS_ALU | ALU_MOV | SRC_K,
            dst,
            Reg::R0,
            0,
            i32::from_ne_bytes(imm.to_ne_bytes()),
        )
    }

    /// `dst = (u32)src`.
    pub(crate) const fn mov32_reg(dst: Reg, src: Reg) -> Self {
        Self::new(CLASS_ALU | ALU_MOV | SRC_X, dst, src, 0, 0)
    }

    /// `if dst != imm goto +off`; the immediate is sign-extended to 64 bits,
    /// so only values in 0..=i32::MAX compare equal to a zero-extended u32.
    pub(crate) const fn jne_imm(dst: Reg, imm: i32, off: i16) -> Self {
        Self::new(CLASS_JMP | JMP_JNE | SRC_K, dst, Reg::R0, off, imm)
    }

    /// `if dst != src goto +off` (64-bit compare).
    pub(crate) const fn jne_reg(dst: Reg, src: Reg, off: i16) -> Self {
        Self::new(CLASS_JMP | JMP_JNE | SRC_X, dst, src, off, 0)
    }

    /// `if dst == imm goto +off`.
    pub(crate) const fn jeq_imm(dst: Reg, imm: i32, off: i16) -> Self {
        Self::new(CLASS_JMP | JMP_JEQ | SRC_K, dst, Reg::R0, off, imm)
    }

    /// `return r0`.
    pub(crate) const fn exit() -> Self {
        Self::new(CLASS_JMP | JMP_EXIT, Reg::R0, Reg::R0, 0, 0)
    }

    /// Whether this is a conditional jump (its `off` is a jump distance).
    pub(crate) fn is_cond_jump(&self) -> bool {
        self.code & 0x07 == CLASS_JMP && self.code & 0xf0 != JMP_EXIT
    }

    /// The 8 bytes of `struct bpf_insn` in host byte order (the kernel reads
    /// the struct natively; the register nibbles are C bitfields, so their
    /// order follows the host's endianness).
    pub(crate) fn encode(&self) -> [u8; 8] {
        let (dst, src) = (self.dst as u8, self.src as u8);
        let regs = if cfg!(target_endian = "little") {
            dst | (src << 4)
        } else {
            (dst << 4) | src
        };
        let off = self.off.to_ne_bytes();
        let imm = self.imm.to_ne_bytes();
        [
            self.code, regs, off[0], off[1], imm[0], imm[1], imm[2], imm[3],
        ]
    }
}

/// A whole program as the kernel's `insns` array.
pub(crate) fn encode_all(prog: &[Insn]) -> Vec<u8> {
    prog.iter().flat_map(|i| i.encode()).collect()
}

#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;

    /// Byte patterns as produced by the kernel's own macros
    /// (BPF_LDX_MEM, BPF_ALU32_IMM, BPF_MOV32_REG, BPF_JMP_IMM, BPF_EXIT_INSN)
    /// and `llvm-objdump -d` of clang-built programs.
    #[test]
    fn encodes_like_the_kernel_macros() {
        let cases: &[(Insn, [u8; 8])] = &[
            // r2 = *(u32 *)(r1 + 0)
            (
                Insn::load_word(Reg::R2, Reg::R1, 0),
                [0x61, 0x12, 0, 0, 0, 0, 0, 0],
            ),
            // r5 = *(u32 *)(r1 + 8)
            (
                Insn::load_word(Reg::R5, Reg::R1, 8),
                [0x61, 0x15, 8, 0, 0, 0, 0, 0],
            ),
            // w2 &= 0xffff
            (
                Insn::and32_imm(Reg::R2, 0xffff),
                [0x54, 0x02, 0, 0, 0xff, 0xff, 0, 0],
            ),
            // w3 >>= 16
            (
                Insn::rsh32_imm(Reg::R3, 16),
                [0x74, 0x03, 0, 0, 16, 0, 0, 0],
            ),
            // w0 = 1
            (Insn::mov32_imm(Reg::R0, 1), [0xb4, 0x00, 0, 0, 1, 0, 0, 0]),
            // w1 = 0xfffffff0 (stored as the same 32 bits)
            (
                Insn::mov32_imm(Reg::R1, 0xffff_fff0),
                [0xb4, 0x01, 0, 0, 0xf0, 0xff, 0xff, 0xff],
            ),
            // w1 = w3
            (
                Insn::mov32_reg(Reg::R1, Reg::R3),
                [0xbc, 0x31, 0, 0, 0, 0, 0, 0],
            ),
            // if r2 != 2 goto +5
            (Insn::jne_imm(Reg::R2, 2, 5), [0x55, 0x02, 5, 0, 2, 0, 0, 0]),
            // if r4 != r1 goto +300
            (
                Insn::jne_reg(Reg::R4, Reg::R1, 300),
                [0x5d, 0x14, 0x2c, 0x01, 0, 0, 0, 0],
            ),
            // if r1 == 0 goto +2
            (Insn::jeq_imm(Reg::R1, 0, 2), [0x15, 0x01, 2, 0, 0, 0, 0, 0]),
            // exit
            (Insn::exit(), [0x95, 0, 0, 0, 0, 0, 0, 0]),
        ];
        for (insn, bytes) in cases {
            assert_eq!(&insn.encode(), bytes, "{insn:?}");
        }
        let prog = [Insn::mov32_imm(Reg::R0, 0), Insn::exit()];
        assert_eq!(
            encode_all(&prog),
            [0xb4, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn classifies_jumps() {
        assert!(Insn::jne_imm(Reg::R2, 1, 1).is_cond_jump());
        assert!(Insn::jeq_imm(Reg::R2, 1, 1).is_cond_jump());
        assert!(Insn::jne_reg(Reg::R2, Reg::R1, 1).is_cond_jump());
        assert!(!Insn::exit().is_cond_jump());
        assert!(!Insn::mov32_imm(Reg::R0, 1).is_cond_jump());
    }
}
