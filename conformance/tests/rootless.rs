//! `--rootless`: the suite runs hako as an unprivileged user it makes for the run (and removes
//! afterwards), with configs shaped as `runc spec --rootless` shapes them; a case a rootless
//! container cannot pass skips with the probe, measured as that user, that says why.

mod common;

use anyhow::Result;
use common::{hako, line_for, suite};

/// A process setting that needs the user's dumpable init, id maps packed into the user's
/// subordinate range (newuidmap), a shifted file owner, and one case that must skip.
const CASES: &str = "process/oomScoreAdj/500,namespaces/idmap/several-ranges,\
capabilities/effective/governs-exec-with-dac-override,devices/node/char-mode-owner";

#[test]
fn hako_passes_rootless_and_skips_with_a_probe() -> Result<()> {
    let (code, out) = suite(&hako()?, CASES, &["--rootless"], &[])?;
    for case in CASES.split(',').take(3) {
        assert!(
            line_for(&out, case).starts_with("PASS"),
            "{case} rootless:\n{out}"
        );
    }
    let skipped = line_for(&out, "devices/node/char-mode-owner");
    assert!(
        skipped.starts_with("SKIP")
            && skipped.contains("probed mknod(2)")
            && skipped.contains("EPERM"),
        "{out}"
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.lines().last(),
        Some("3 passed, 0 failed, 1 skipped"),
        "{out}"
    );
    // The user the run made is gone, with its subordinate ranges.
    for file in ["/etc/passwd", "/etc/subuid", "/etc/subgid"] {
        let text = std::fs::read_to_string(file)?;
        assert!(!text.contains("hkc"), "{file}:\n{text}");
    }
    Ok(())
}
