//! A small eBPF interpreter for the instructions the device filter uses, run
//! on the *encoded* bytes so the encoding is exercised too. It checks what
//! the verifier would (known opcodes, forward in-range jumps, loads only
//! from the context at the three field offsets, no use of unset registers,
//! R0 in 0..=1 at exit), then evaluates. The property tests compare the
//! compiled program with the v1 kernel semantics of the rule list
//! ([`DeviceFilter::permits`]) over random rule lists and many
//! (type, major, minor, access) tuples.

use super::device_program::{compile, ACC_MKNOD, ACC_READ, ACC_WRITE, DEV_BLOCK, DEV_CHAR};
use super::insn::encode_all;
use crate::devices::{Access, DevKey, DevType, DeviceFilter, DeviceRule};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Val {
    Unset,
    Ctx,
    Scalar(u64),
}

/// Runs `code` (encoded `bpf_insn`s, little-endian) on a device context.
fn run(code: &[u8], access_type: u32, major: u32, minor: u32) -> Result<u32, String> {
    if code.len() % 8 != 0 || code.is_empty() {
        return Err("not a whole number of instructions".into());
    }
    let insns: Vec<&[u8]> = code.chunks(8).collect();
    let ctx = [access_type, major, minor];
    let mut regs = [Val::Unset; 11];
    regs[1] = Val::Ctx;
    let mut pc = 0usize;
    let scalar = |v: Val, pc: usize| match v {
        Val::Scalar(x) => Ok(x),
        other => Err(format!("pc {pc}: register is {other:?}, not a scalar")),
    };
    loop {
        let i = insns.get(pc).ok_or(format!("pc {pc} out of program"))?;
        let (code, dst, src) = (i[0], usize::from(i[1] & 0x0f), usize::from(i[1] >> 4));
        let off = i16::from_le_bytes([i[2], i[3]]);
        let imm = i32::from_le_bytes([i[4], i[5], i[6], i[7]]);
        let imm32 = u32::from_le_bytes([i[4], i[5], i[6], i[7]]);
        if dst > 10 || src > 10 {
            return Err(format!("pc {pc}: bad register"));
        }
        let mut next = pc + 1;
        let jump = |taken: bool| -> Result<usize, String> {
            if off < 0 {
                return Err(format!("pc {pc}: backward jump"));
            }
            let target = pc + 1 + usize::try_from(off).unwrap_or(0);
            if target >= insns.len() {
                return Err(format!("pc {pc}: jump out of program"));
            }
            Ok(if taken { target } else { pc + 1 })
        };
        match code {
            0x61 => {
                if regs[src] != Val::Ctx {
                    return Err(format!("pc {pc}: load from non-context"));
                }
                let field = match off {
                    0 => 0,
                    4 => 1,
                    8 => 2,
                    _ => return Err(format!("pc {pc}: bad context offset {off}")),
                };
                regs[dst] = Val::Scalar(u64::from(ctx[field]));
            }
            0x54 => regs[dst] = Val::Scalar(u64::from(scalar(regs[dst], pc)? as u32 & imm32)),
            0x74 => {
                if imm32 >= 32 {
                    return Err(format!("pc {pc}: shift too large"));
                }
                regs[dst] = Val::Scalar(u64::from((scalar(regs[dst], pc)? as u32) >> imm32));
            }
            0xb4 => regs[dst] = Val::Scalar(u64::from(imm32)),
            0xbc => regs[dst] = Val::Scalar(u64::from(scalar(regs[src], pc)? as u32)),
            0x55 => next = jump(scalar(regs[dst], pc)? != i64::from(imm) as u64)?,
            0x15 => next = jump(scalar(regs[dst], pc)? == i64::from(imm) as u64)?,
            0x5d => next = jump(scalar(regs[dst], pc)? != scalar(regs[src], pc)?)?,
            0x95 => {
                let r0 = scalar(regs[0], pc)?;
                return match r0 {
                    0 | 1 => Ok(r0 as u32),
                    _ => Err(format!("pc {pc}: return value {r0} out of 0..=1")),
                };
            }
            _ => return Err(format!("pc {pc}: unknown opcode {code:#04x}")),
        }
        pc = next;
    }
}

/// xorshift64*: deterministic, dependency-free randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[(self.next() % xs.len() as u64) as usize]
    }
}

const MAJORS: [Option<u32>; 8] = [
    None,
    Some(0),
    Some(1),
    Some(5),
    Some(136),
    Some(0x7fff_ffff),
    Some(0x8000_0001),
    Some(u32::MAX),
];
const MINORS: [Option<u32>; 8] = [
    None,
    Some(0),
    Some(3),
    Some(8),
    Some(200),
    Some(0x7fff_ffff),
    Some(0x8000_0000),
    Some(u32::MAX),
];

fn random_rule(rng: &mut Rng) -> DeviceRule {
    DeviceRule {
        allow: rng.next() % 2 == 0,
        key: DevKey {
            major: rng.pick(&MAJORS),
            minor: rng.pick(&MINORS),
            typ: rng.pick(&[DevType::Block, DevType::Char, DevType::Char, DevType::All]),
        },
        access: Access::from_bits(rng.pick(&[1, 2, 3, 4, 5, 6, 7, 7])),
    }
}

/// The rwm bits of a kernel access value.
fn access_of(bpf: u32) -> Access {
    let mut bits = 0;
    if bpf & ACC_READ != 0 {
        bits |= 1;
    }
    if bpf & ACC_WRITE != 0 {
        bits |= 2;
    }
    if bpf & ACC_MKNOD != 0 {
        bits |= 4;
    }
    Access::from_bits(bits)
}

/// Every (type, major, minor, access) tuple of the test grid agrees.
fn check(filter: &DeviceFilter) -> usize {
    let code = encode_all(&compile(filter));
    let numbers: Vec<u32> = MAJORS
        .iter()
        .chain(&MINORS)
        .flatten()
        .copied()
        .chain([2, 7, 9, 10])
        .collect();
    let mut n = 0;
    for (typ, t) in [(DevType::Block, DEV_BLOCK), (DevType::Char, DEV_CHAR)] {
        for &major in &numbers {
            for &minor in &numbers {
                for acc in 1..=7u32 {
                    let got = run(&code, (acc << 16) | t, major, minor)
                        .unwrap_or_else(|e| panic!("{e} in program for {filter:?}"));
                    let want = filter.permits(typ, major, minor, access_of(acc));
                    assert_eq!(
                        got == 1,
                        want,
                        "type {typ:?} {major}:{minor} access {acc:#x} filter {filter:?}"
                    );
                    n += 1;
                }
            }
        }
    }
    n
}

#[test]
fn program_agrees_with_v1_semantics_on_random_rule_lists() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut filters, mut tuples) = (0, 0);
    for _ in 0..400 {
        let mut rules = Vec::new();
        match rng.next() % 3 {
            0 => rules.push(DeviceRule {
                allow: true,
                key: DevKey {
                    major: None,
                    minor: None,
                    typ: DevType::All,
                },
                access: Access::ALL,
            }),
            1 => rules.push(DeviceRule {
                allow: false,
                key: DevKey {
                    major: None,
                    minor: None,
                    typ: DevType::All,
                },
                access: Access::ALL,
            }),
            _ => {}
        }
        for _ in 0..rng.next() % 9 {
            rules.push(random_rule(&mut rng));
        }
        // Lists that punch holes in wildcards are refused before compiling.
        let Ok(filter) = DeviceFilter::from_rules(&rules) else {
            continue;
        };
        tuples += check(&filter);
        filters += 1;
    }
    assert!(filters > 200, "only {filters} usable rule lists");
    assert!(tuples > 500_000, "only {tuples} tuples");
}

#[test]
fn runc_defaults_allow_exactly_their_devices() {
    let (spec, devs) = crate::devices::tests::oracle_spec();
    let rules: Vec<_> = spec
        .iter()
        .enumerate()
        .map(|(i, r)| crate::devices::rule_from_spec(i, r).unwrap())
        .collect();
    let filter =
        DeviceFilter::from_rules(&crate::devices::rules_with_defaults(rules, &devs)).unwrap();
    check(&filter);
    let code = encode_all(&compile(&filter));
    let char_dev = |acc: u32, major, minor| run(&code, (acc << 16) | DEV_CHAR, major, minor);
    let rw = ACC_READ | ACC_WRITE;
    assert_eq!(char_dev(rw, 1, 3), Ok(1), "/dev/null");
    assert_eq!(char_dev(rw, 1, 8), Ok(1), "/dev/random");
    assert_eq!(char_dev(rw, 10, 229), Ok(0), "fuse: w was denied");
    assert_eq!(char_dev(ACC_READ, 10, 229), Ok(1), "fuse read");
    assert_eq!(char_dev(ACC_MKNOD, 42, 42), Ok(1), "c *:* m");
    assert_eq!(char_dev(ACC_READ, 42, 42), Ok(0), "unlisted");
    assert_eq!(
        run(&code, (ACC_READ << 16) | DEV_BLOCK, 8, 1),
        Ok(1),
        "b 8:* r"
    );
}

#[test]
fn interpreter_rejects_what_the_verifier_would() {
    use super::insn::{Insn, Reg};
    let cases: [(&[Insn], &str); 4] = [
        (&[Insn::exit()], "not a scalar"),
        (&[Insn::mov32_imm(Reg::R0, 2), Insn::exit()], "out of 0..=1"),
        (
            &[Insn::jne_imm(Reg::R1, 0, 5), Insn::exit()],
            "not a scalar",
        ),
        (
            &[
                Insn::mov32_imm(Reg::R0, 0),
                Insn::jeq_imm(Reg::R0, 0, 3),
                Insn::exit(),
            ],
            "jump out of program",
        ),
    ];
    for (prog, want) in cases {
        let err = run(&encode_all(prog), 0, 0, 0).unwrap_err();
        assert!(err.contains(want), "{err}");
    }
}
