//! A validated [`Profile`] compiled to a classic BPF program for `SECCOMP_SET_MODE_FILTER`.
//!
//! The program's shape (every jump built by [`Builder`], so long distances get trampolines):
//!
//! ```text
//! ld  arch                          seccomp_data.arch
//! jeq AUDIT_ARCH_<native>  → section; jeq AUDIT_ARCH_<compat> → section; … else ret KILL_THREAD
//! section: ld nr
//!   binary search on nr (one jge per boundary) over the intervals of the number line:
//!   a named syscall → its action (ret) or its rule chain; unnamed → defaultAction;
//!   past the highest named number → ERRNO(ENOSYS) (runc's stub); an ABI not in the profile
//!   (x32 numbers when SCMP_ARCH_X32 is absent) → KILL_THREAD, libseccomp's bad-arch action
//! rule chain: rules in profile order; a rule's conditions all hold → its action, else next rule;
//!   none → defaultAction
//! ```
//!
//! A search tree instead of libseccomp's linear list of `jeq`s: docker's profile costs about
//! nine comparisons per syscall rather than up to a few hundred, and one instruction per boundary
//! between runs of syscalls sharing an action rather than one per syscall.
//!
//! Semantics follow runc 1.1 over libseccomp where the spec is silent: a rule whose action
//! equals the default action is skipped; a name unknown on an ABI is skipped for that ABI; an
//! unconditional rule for a syscall wins over its conditional ones; otherwise rules are tried in
//! profile order. One deliberate difference: conditions of a rule that test the same argument
//! are ANDed like all others (runc splits such a rule into one rule per condition, an OR).
//! 64-bit comparisons are done as high word, then low word (unsigned); 32-bit ABIs compare only
//! the low word, as libseccomp does.

use std::collections::{BTreeMap, HashMap};

use super::arch::{host_abi, host_abis, Abi};
use super::bpf::{Builder, Insn, Label, AND_K, JEQ_K, JGE_K, JGT_K, LD_W_ABS, MAX_INSNS};
use super::profile::{Action, Condition, Op, Profile};
use super::SeccompError;

/// `offsetof(struct seccomp_data, nr)`.
const OFF_NR: u32 = 0;
/// `offsetof(struct seccomp_data, arch)`.
const OFF_ARCH: u32 = 4;
/// `offsetof(struct seccomp_data, args)`.
const OFF_ARGS: u32 = 16;

/// What a filter returns for an architecture it was not built for.
const BAD_ARCH: Action = Action::KillThread;

/// The ABIs the filter has sections for: the native one always (libseccomp always includes
/// it), then each listed architecture the host kernel can present.
pub(super) fn abis(profile: &Profile) -> Result<Vec<Abi>, SeccompError> {
    let native = host_abis()
        .first()
        .copied()
        .ok_or(SeccompError::UnsupportedHost {
            arch: std::env::consts::ARCH,
        })?;
    let mut abis = vec![native];
    for abi in profile.arches.iter().filter_map(|&a| host_abi(a)) {
        if !abis.contains(&abi) {
            abis.push(abi);
        }
    }
    Ok(abis)
}

/// Compiles the profile for the host's ABIs.
pub(super) fn compile(profile: &Profile) -> Result<Vec<Insn>, SeccompError> {
    let abis = abis(profile)?;
    let mut b = Builder::default();
    let ctx = Ctx {
        profile,
        bad_arch: b.ret(BAD_ARCH.ret()),
        default: b.ret(profile.default.ret()),
        enosys: enosys_stub(profile).then(|| b.ret(Action::Errno(libc::ENOSYS as u16).ret())),
    };
    // One section per AUDIT_ARCH value: x86_64 and x32 share one.
    let mut sections: Vec<(u32, Vec<Abi>)> = Vec::new();
    for abi in abis {
        match sections.iter_mut().find(|(a, _)| *a == abi.audit_arch()) {
            Some((_, list)) => list.push(abi),
            None => sections.push((abi.audit_arch(), vec![abi])),
        }
    }
    let starts: Vec<Label> = sections
        .iter()
        .map(|(_, list)| ctx.section(&mut b, list))
        .collect();
    let mut next = ctx.bad_arch;
    for ((audit_arch, _), start) in sections.iter().zip(starts).rev() {
        next = b.jump(JEQ_K, *audit_arch, start, next);
    }
    let entry = b.stmt(LD_W_ABS, OFF_ARCH, next);
    let program = b.finish(entry);
    if program.len() > MAX_INSNS {
        return Err(SeccompError::ProgramTooLarge {
            len: program.len(),
            max: MAX_INSNS,
        });
    }
    Ok(program)
}

/// runc prepends a stub returning `ENOSYS` for syscalls newer than any the profile names, so
/// that libc falls back to older ones (clone3 → clone) instead of failing on EPERM; it does so
/// unless the default action lets syscalls run or already returns ENOSYS.
fn enosys_stub(profile: &Profile) -> bool {
    !profile.default.is_permissive()
        && profile.default_errno_ret != Some(libc::ENOSYS.unsigned_abs())
}

/// What every section shares.
struct Ctx<'a> {
    profile: &'a Profile,
    bad_arch: Label,
    default: Label,
    enosys: Option<Label>,
}

/// The number line of one section, cut into intervals that each go to one label.
#[derive(Default)]
struct Intervals(Vec<(u32, Label)>);

impl Intervals {
    /// From `start` on (until the next push), numbers go to `label`.
    fn push(&mut self, start: u32, label: Label) {
        if self.0.last().is_some_and(|&(s, _)| s == start) {
            self.0.pop();
        }
        if self.0.last().is_some_and(|&(_, l)| l == label) {
            return;
        }
        self.0.push((start, label));
    }
}

impl Ctx<'_> {
    /// The section for the ABIs sharing one `AUDIT_ARCH`; returns its first instruction.
    fn section(&self, b: &mut Builder, abis: &[Abi]) -> Label {
        let mut owned: Vec<(u32, u32, Abi)> = abis
            .iter()
            .map(|&abi| {
                let (lo, hi) = abi.range();
                (lo, hi, abi)
            })
            .collect();
        owned.sort_by_key(|&(lo, _, _)| lo);
        let mut chains = HashMap::new();
        let mut intervals = Intervals::default();
        let mut cursor: u64 = 0;
        for (lo, hi, abi) in owned {
            if u64::from(lo) > cursor {
                // Only whole u32 values reach here: cursor < lo <= u32::MAX.
                intervals.push(u32::try_from(cursor).unwrap_or(u32::MAX), self.bad_arch);
            }
            self.abi_intervals(b, abi, lo, hi, &mut chains, &mut intervals);
            cursor = u64::from(hi) + 1;
        }
        if cursor <= u64::from(u32::MAX) {
            intervals.push(u32::try_from(cursor).unwrap_or(u32::MAX), self.bad_arch);
        }
        let root = tree(b, &intervals.0);
        b.stmt(LD_W_ABS, OFF_NR, root)
    }

    /// Intervals for the numbers `lo..=hi` that `abi` owns.
    fn abi_intervals(
        &self,
        b: &mut Builder,
        abi: Abi,
        lo: u32,
        hi: u32,
        chains: &mut HashMap<(Vec<usize>, bool), Label>,
        intervals: &mut Intervals,
    ) {
        let mut by_nr: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for entry in &self.profile.entries {
            if let Some(nr) = abi.resolve(&entry.name).filter(|n| (lo..=hi).contains(n)) {
                let rules = by_nr.entry(nr).or_default();
                if !rules.contains(&entry.rule) {
                    rules.push(entry.rule);
                }
            }
        }
        let last = by_nr.keys().next_back().copied();
        let gap = |n: u32| match (self.enosys, last) {
            (Some(enosys), Some(last)) if n > last => enosys,
            _ => self.default,
        };
        intervals.push(lo, gap(lo));
        for (nr, rules) in by_nr {
            let target = self.target(b, &rules, abi.args_are_32bit(), chains);
            intervals.push(nr, target);
            if nr < hi {
                intervals.push(nr + 1, gap(nr + 1));
            }
        }
    }

    /// Where a syscall with these rules (indices, profile order) goes.
    fn target(
        &self,
        b: &mut Builder,
        rules: &[usize],
        args_32bit: bool,
        chains: &mut HashMap<(Vec<usize>, bool), Label>,
    ) -> Label {
        let all = &self.profile.rules;
        // runc skips rules whose action is the default one (libseccomp refuses them).
        let live: Vec<usize> = rules
            .iter()
            .copied()
            .filter(|&r| all[r].action != self.profile.default)
            .collect();
        if live.is_empty() {
            return self.default;
        }
        if let Some(&r) = live.iter().find(|&&r| all[r].conditions.is_empty()) {
            return b.ret(all[r].action.ret());
        }
        let key = (live, args_32bit);
        if let Some(&label) = chains.get(&key) {
            return label;
        }
        let mut next = self.default;
        for &r in key.0.iter().rev() {
            let mut ok = b.ret(all[r].action.ret());
            for cond in all[r].conditions.iter().rev() {
                ok = condition(b, cond, args_32bit, ok, next);
            }
            next = ok;
        }
        chains.insert(key, next);
        next
    }
}

/// Binary search over `intervals` (sorted, the first starting at 0); `A` holds the number.
fn tree(b: &mut Builder, intervals: &[(u32, Label)]) -> Label {
    match intervals {
        [] => unreachable_label(b),
        [(_, label)] => *label,
        _ => {
            let mid = intervals.len() / 2;
            let right = tree(b, &intervals[mid..]);
            let left = tree(b, &intervals[..mid]);
            b.jump(JGE_K, intervals[mid].0, right, left)
        }
    }
}

/// Never reached (a section always has an interval starting at 0); kills rather than panics.
fn unreachable_label(b: &mut Builder) -> Label {
    b.ret(Action::KillProcess.ret())
}

/// Offsets of the low and high 32-bit words of argument `index` in `seccomp_data`.
fn arg_words(index: u8) -> (u32, u32) {
    let base = OFF_ARGS + 8 * u32::from(index);
    if cfg!(target_endian = "little") {
        (base, base + 4)
    } else {
        (base + 4, base)
    }
}

fn split(v: u64) -> (u32, u32) {
    ((v >> 32) as u32, v as u32)
}

/// `ld word; [and mask;] jcode k → t, f`.
fn word(
    b: &mut Builder,
    off: u32,
    mask: Option<u32>,
    (code, k): (u16, u32),
    t: Label,
    f: Label,
) -> Label {
    let mut next = b.jump(code, k, t, f);
    if let Some(mask) = mask {
        next = b.stmt(AND_K, mask, next);
    }
    b.stmt(LD_W_ABS, off, next)
}

/// Jumps to `t` when the condition holds, to `f` otherwise.
fn condition(b: &mut Builder, cond: &Condition, args_32bit: bool, t: Label, f: Label) -> Label {
    let (lo_off, hi_off) = arg_words(cond.index);
    let (vhi, vlo) = split(cond.value);
    let (dhi, dlo) = split(cond.value_two);
    // `A > v` / `A >= v` on 64 bits: hi > vhi, or hi == vhi and lo (>|>=) vlo.
    let greater = |b: &mut Builder, lo_code: u16, t: Label, f: Label| -> Label {
        let low = word(b, lo_off, None, (lo_code, vlo), t, f);
        if args_32bit {
            return low;
        }
        let hi_eq = b.jump(JEQ_K, vhi, low, f);
        let hi_gt = b.jump(JGT_K, vhi, t, hi_eq);
        b.stmt(LD_W_ABS, hi_off, hi_gt)
    };
    let equal = |b: &mut Builder, t: Label, f: Label| -> Label {
        let low = word(b, lo_off, None, (JEQ_K, vlo), t, f);
        if args_32bit {
            return low;
        }
        word(b, hi_off, None, (JEQ_K, vhi), low, f)
    };
    match cond.op {
        Op::Eq => equal(b, t, f),
        Op::Ne => equal(b, f, t),
        Op::Gt => greater(b, JGT_K, t, f),
        Op::Ge => greater(b, JGE_K, t, f),
        Op::Le => greater(b, JGT_K, f, t),
        Op::Lt => greater(b, JGE_K, f, t),
        Op::MaskedEq => {
            // `value` is the mask, `valueTwo` the datum.
            let low = word(b, lo_off, Some(vlo), (JEQ_K, dlo), t, f);
            if args_32bit {
                return low;
            }
            word(b, hi_off, Some(vhi), (JEQ_K, dhi), low, f)
        }
    }
}
