//! cgroup v1 → v2 value conversions. The OCI resources are v1-shaped; on v2
//! runc converts them (opencontainers/cgroups utils.go, fs2/io.go). These are
//! pure functions so they can be tested without a kernel.

use crate::Error;

/// cpu.shares (v1, 2..=262144, default 1024) → cpu.weight (v2, 1..=10000, default 100).
///
/// runc ≥ 1.3.2 (runc #4772/#4785, kubernetes #131216) replaced the linear
/// mapping with a quadratic in log2 space that maps min→min, default→default
/// and max→max: `ceil(10^((l² + 125 l) / 612 − 7/34))`, `l = log2(shares)`.
/// 0 means unset and stays 0.
pub fn cpu_shares_to_weight(shares: u64) -> u64 {
    match shares {
        0 => 0,
        1..=2 => 1,
        262_144.. => 10_000,
        _ => {
            #[allow(clippy::cast_precision_loss)] // shares < 2^18, exact in f64
            let l = (shares as f64).log2();
            let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // in 1..=10000
            let w = 10f64.powf(exponent).ceil() as u64;
            w.clamp(1, 10_000)
        }
    }
}

/// blkio.weight (v1, 10..=1000) → io.weight (v2, 1..=10000), runc's linear map; 0 = unset.
pub fn blkio_weight_to_io_weight(weight: u16) -> u64 {
    if weight == 0 {
        return 0;
    }
    1 + (u64::from(weight).saturating_sub(10)) * 9999 / 990
}

/// OCI memory.swap is memory+swap; v2 memory.swap.max is swap alone.
/// Returns the value for memory.swap.max (-1 = "max", 0 = leave unset),
/// following runc's `ConvertMemorySwapToCgroupV2Value`.
pub fn memory_swap_to_v2(swap: i64, limit: i64) -> Result<i64, Error> {
    let invalid = |reason| Error::InvalidValue {
        field: "linux.resources.memory.swap",
        value: swap.to_string(),
        reason,
    };
    match (swap, limit) {
        (0, -1) => Ok(-1),
        (-1 | 0, _) => Ok(swap),
        (_, -1) => Ok(swap),
        (_, 0) => Err(invalid("a swap limit needs a memory limit")),
        (_, l) if l < 0 => Err(invalid("memory limit is negative")),
        (s, l) if s < l => Err(invalid("memory+swap must be >= the memory limit")),
        (s, l) => Ok(s - l),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_to_weight_matches_runc() {
        // runc's own table (opencontainers/cgroups utils_test.go).
        for (shares, want) in [
            (0, 0),
            (1, 1),
            (2, 1),
            (3, 2),
            (1024, 100),
            (262_143, 10_000),
            (262_144, 10_000),
            (262_145, 10_000),
        ] {
            assert_eq!(cpu_shares_to_weight(shares), want, "shares {shares}");
        }
        // Values from the formula evaluated independently.
        assert_eq!(cpu_shares_to_weight(512), 59);
        assert_eq!(cpu_shares_to_weight(2048), 174);
        assert_eq!(cpu_shares_to_weight(100), 17);
    }

    #[test]
    fn blkio_weight_conversion() {
        assert_eq!(blkio_weight_to_io_weight(0), 0);
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
        assert_eq!(blkio_weight_to_io_weight(500), 4950);
    }

    #[test]
    fn swap_conversion_matches_runc() {
        for (swap, limit, want) in [
            (0, 0, 0),
            (-1, 0, -1),
            (-1, -1, -1),
            (0, -1, -1),
            (-1, 1000, -1),
            (1000, 1000, 0),
            (500, 200, 300),
            (500, -1, 500),
        ] {
            assert_eq!(
                memory_swap_to_v2(swap, limit).unwrap(),
                want,
                "{swap} {limit}"
            );
        }
        for (swap, limit) in [(-2, 0), (300, 400), (300, 0), (300, -5)] {
            assert!(memory_swap_to_v2(swap, limit).is_err(), "{swap} {limit}");
        }
    }
}
