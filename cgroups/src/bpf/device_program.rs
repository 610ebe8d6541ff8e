//! Compiles a [`DeviceFilter`] into a `BPF_PROG_TYPE_CGROUP_DEVICE` program.
//!
//! Layout (the same shape as runc's devicefilter.go and crun's ebpf.c):
//! a prologue loads the context — R2 = device type (low 16 bits of
//! `access_type`), R3 = requested access (high 16 bits), R4 = major,
//! R5 = minor — then one block per exception that jumps to the next block
//! as soon as a field differs and otherwise returns the exception's verdict,
//! then a final block returning the default. All exceptions of one filter
//! carry the same verdict (the opposite of the default), so their order does
//! not matter.
//!
//! Access matching follows the v1 kernel (security/device_cgroup.c) so that a
//! rule list means the same on v1 and v2: an allowance must cover every
//! requested bit (opening read-write needs `rw`), while a denial applies as
//! soon as it shares one bit with the request (`match_exception_partial`).
//! runc uses "covers every bit" for denials too, so with an allow-all base
//! and `c 1:3 w` denied, runc's v2 filter lets `open(O_RDWR)` through where
//! v1 refuses it; hako refuses on both.
//!
//! Numbers compare with 64-bit jumps against zero-extended 32-bit loads; an
//! immediate is sign-extended, so majors/minors above `i32::MAX` go through a
//! register (`mov32` zero-extends) rather than an immediate, which would
//! never match (runc passes `int32(major)` as an immediate). 64-bit jumps with
//! `mov32` keep the program loadable on kernels without BPF_JMP32 (< 5.1).

use super::insn::{Insn, Reg};
use crate::devices::{Access, DevKey, DevType, DeviceFilter};

/// The license string given to BPF_PROG_LOAD. The program calls no helper,
/// so nothing GPL-only is involved and the string only has to be the
/// project's own, in `MODULE_LICENSE` form; runc uses "Apache" for the same
/// reason (its generator was relicensed to Apache-2.0, runc issue 2144).
pub(crate) const LICENSE: &std::ffi::CStr = c"Apache";

/// `BPF_DEVCG_DEV_BLOCK` / `BPF_DEVCG_DEV_CHAR` (include/uapi/linux/bpf.h).
pub(crate) const DEV_BLOCK: u32 = 1;
/// See [`DEV_BLOCK`].
pub(crate) const DEV_CHAR: u32 = 2;
/// `BPF_DEVCG_ACC_MKNOD`, `_READ`, `_WRITE`.
pub(crate) const ACC_MKNOD: u32 = 1;
/// See [`ACC_MKNOD`].
pub(crate) const ACC_READ: u32 = 2;
/// See [`ACC_MKNOD`].
pub(crate) const ACC_WRITE: u32 = 4;
const ACC_ALL: u32 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// The kernel's access bits for a rule's `rwm`.
pub(crate) fn bpf_access(a: Access) -> u32 {
    let mut bits = 0;
    if a.read() {
        bits |= ACC_READ;
    }
    if a.write() {
        bits |= ACC_WRITE;
    }
    if a.mknod() {
        bits |= ACC_MKNOD;
    }
    bits
}

/// The kernel's type value, None for "any type".
pub(crate) fn bpf_type(t: DevType) -> Option<u32> {
    match t {
        DevType::All => None,
        DevType::Block => Some(DEV_BLOCK),
        DevType::Char => Some(DEV_CHAR),
    }
}

/// A conditional jump whose target is "the next block", patched once the
/// block's length is known.
const SKIP: i16 = i16::MIN;

/// `if reg != value goto skip`, exact for every u32 value.
fn skip_unless_eq(block: &mut Vec<Insn>, reg: Reg, value: u32) {
    match i32::try_from(value) {
        Ok(imm) => block.push(Insn::jne_imm(reg, imm, SKIP)),
        Err(_) => {
            block.push(Insn::mov32_imm(Reg::R1, value));
            block.push(Insn::jne_reg(reg, Reg::R1, SKIP));
        }
    }
}

/// One exception: fall through to `return verdict` only if it matches.
fn exception_block(key: &DevKey, access: Access, verdict: u32) -> Vec<Insn> {
    let mut block = Vec::with_capacity(10);
    if let Some(t) = bpf_type(key.typ) {
        skip_unless_eq(&mut block, Reg::R2, t);
    }
    if let Some(major) = key.major {
        skip_unless_eq(&mut block, Reg::R4, major);
    }
    if let Some(minor) = key.minor {
        skip_unless_eq(&mut block, Reg::R5, minor);
    }
    let acc = bpf_access(access);
    if verdict == 1 {
        // Allowance: every requested bit must be covered.
        if acc != ACC_ALL {
            block.push(Insn::mov32_reg(Reg::R1, Reg::R3));
            block.push(Insn::and32_imm(Reg::R1, !acc));
            block.push(Insn::jne_imm(Reg::R1, 0, SKIP));
        }
    } else {
        // Denial: one shared bit is enough.
        block.push(Insn::mov32_reg(Reg::R1, Reg::R3));
        block.push(Insn::and32_imm(Reg::R1, acc));
        block.push(Insn::jeq_imm(Reg::R1, 0, SKIP));
    }
    block.push(Insn::mov32_imm(Reg::R0, verdict));
    block.push(Insn::exit());
    // Every skip lands on the first instruction after the block.
    let len = block.len();
    for (i, insn) in block.iter_mut().enumerate() {
        if insn.is_cond_jump() && insn.off == SKIP {
            // A block is at most 12 instructions, so this always fits.
            insn.off = i16::try_from(len - i - 1).unwrap_or(i16::MAX);
        }
    }
    block
}

/// The program enforcing `filter`.
pub(crate) fn compile(filter: &DeviceFilter) -> Vec<Insn> {
    let mut prog = vec![
        Insn::load_word(Reg::R2, Reg::R1, 0),
        Insn::and32_imm(Reg::R2, 0xffff),
        Insn::load_word(Reg::R3, Reg::R1, 0),
        Insn::rsh32_imm(Reg::R3, 16),
        Insn::load_word(Reg::R4, Reg::R1, 4),
        Insn::load_word(Reg::R5, Reg::R1, 8),
    ];
    let default = u32::from(filter.default_allow());
    for (key, access) in filter.exceptions() {
        prog.extend(exception_block(key, *access, 1 - default));
    }
    prog.push(Insn::mov32_imm(Reg::R0, default));
    prog.push(Insn::exit());
    prog
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::DeviceRule;

    fn rule(
        allow: bool,
        typ: DevType,
        major: Option<u32>,
        minor: Option<u32>,
        acc: u8,
    ) -> DeviceRule {
        DeviceRule {
            allow,
            key: DevKey { major, minor, typ },
            access: Access::from_bits(acc),
        }
    }

    #[test]
    fn deny_all_with_one_allowance() {
        let f = DeviceFilter::from_rules(&[
            rule(false, DevType::All, None, None, 7),
            rule(true, DevType::Char, Some(1), Some(3), 7),
        ])
        .unwrap();
        let prog = compile(&f);
        let block = &prog[6..];
        assert_eq!(
            block,
            [
                Insn::jne_imm(Reg::R2, 2, 4),
                Insn::jne_imm(Reg::R4, 1, 3),
                Insn::jne_imm(Reg::R5, 3, 2),
                Insn::mov32_imm(Reg::R0, 1),
                Insn::exit(),
                Insn::mov32_imm(Reg::R0, 0),
                Insn::exit(),
            ]
        );
    }

    #[test]
    fn partial_access_and_big_numbers() {
        let f = DeviceFilter::from_rules(&[
            rule(true, DevType::All, None, None, 7),
            rule(false, DevType::Block, None, Some(0x8000_0000), 2),
        ])
        .unwrap();
        let prog = compile(&f);
        assert_eq!(
            &prog[6..],
            [
                Insn::jne_imm(Reg::R2, 1, 7),
                Insn::mov32_imm(Reg::R1, 0x8000_0000),
                Insn::jne_reg(Reg::R5, Reg::R1, 5),
                Insn::mov32_reg(Reg::R1, Reg::R3),
                Insn::and32_imm(Reg::R1, ACC_WRITE),
                Insn::jeq_imm(Reg::R1, 0, 2),
                Insn::mov32_imm(Reg::R0, 0),
                Insn::exit(),
                Insn::mov32_imm(Reg::R0, 1),
                Insn::exit(),
            ]
        );
    }
}
