//! User and group ids where they enter hako: `process.user` (config.json and `exec --process`),
//! `exec --user` and `--additional-gids`, and `linux.devices` owners.
//!
//! One range everywhere, runc's (libcontainer/user: `uids and gids must be in range
//! 0-2147483647`). The top of `u32` is not an id: 4294967295 is `(uid_t)-1`, which setresuid(2)
//! and setresgid(2) read as "leave unchanged", so the process would keep the runtime's uid 0
//! while a check that only looks at the number (Kubernetes' `runAsNonRoot`) sees a non-root
//! user. Id maps have their own, wider rule (any range that stays below 4294967295, as
//! user_namespaces(7) requires), checked in `hako_namespaces::IdMappings`.

use crate::error::{Error, Result};

/// The largest uid or gid hako accepts: runc's `maxID`, `1<<31 - 1`.
pub(crate) const MAX_ID: u32 = i32::MAX as u32;

/// Accepts `id` if it is in `0..=MAX_ID`; otherwise an error naming `field`.
pub(crate) fn check(field: &'static str, id: u32) -> Result<u32> {
    if id <= MAX_ID {
        return Ok(id);
    }
    Err(Error::InvalidConfig {
        field,
        reason: format!("{id}: uids and gids must be in range 0-{MAX_ID}"),
    })
}

/// Checks supplementary gids and drops repeats, keeping each gid's first position: runc
/// collects them in a set (libcontainer/user `GetAdditionalGroups`), so `[183, 183]` gives the
/// process the group once. The order is not observable: setgroups(2) sorts the list in the
/// kernel (`groups_sort`).
pub(crate) fn additional_gids(field: &'static str, gids: &[u32]) -> Result<Vec<u32>> {
    let mut out: Vec<u32> = Vec::with_capacity(gids.len());
    for &gid in gids {
        check(field, gid)?;
        if !out.contains(&gid) {
            out.push(gid);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_is_runcs() {
        assert_eq!(check("process.user.uid", 0).expect("0"), 0);
        assert_eq!(
            check("process.user.uid", MAX_ID).expect("max"),
            2_147_483_647
        );
        for bad in [2_147_483_648, u32::MAX - 1, u32::MAX] {
            let e = check("process.user.uid", bad).expect_err("refused");
            let msg = e.to_string();
            assert!(msg.contains("process.user.uid"), "{msg}");
            assert!(
                msg.contains("uids and gids must be in range 0-2147483647"),
                "{msg}"
            );
        }
    }

    #[test]
    fn additional_gids_lose_repeats_and_keep_first_order() {
        let field = "process.user.additionalGids";
        assert_eq!(additional_gids(field, &[183, 183]).expect("ok"), vec![183]);
        assert_eq!(
            additional_gids(field, &[5, 183, 0, 5, 183]).expect("ok"),
            vec![5, 183, 0]
        );
        assert!(additional_gids(field, &[]).expect("ok").is_empty());
        assert!(additional_gids(field, &[1, u32::MAX]).is_err());
    }
}
