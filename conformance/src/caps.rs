//! Capability names and numbers (capabilities(7), `linux/capability.h`), shared by the harness
//! (to skip capabilities the host cannot grant) and the checker (to turn config names into the
//! bit masks `/proc/self/status` shows).

/// Every capability the kernel knows, by number.
pub const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The bit of a capability name, if the kernel knows it.
pub fn bit(name: &str) -> Option<u64> {
    NAMES.iter().position(|n| *n == name).map(|i| 1u64 << i)
}

/// The mask of a JSON list of names; unknown names are ignored (the case that uses one expects
/// `create` to fail before anything runs).
pub fn mask(list: &serde_json::Value) -> u64 {
    list.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str())
                .filter_map(bit)
                .fold(0, |m, b| m | b)
        })
        .unwrap_or(0)
}

/// The names in a mask, for readable failure messages.
pub fn names(mask: u64) -> Vec<&'static str> {
    NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1u64 << i) != 0)
        .map(|(_, n)| *n)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_round_trip() {
        let m = mask(&serde_json::json!([
            "CAP_CHOWN",
            "CAP_SYS_ADMIN",
            "CAP_NOPE"
        ]));
        assert_eq!(m, 1 | (1 << 21));
        assert_eq!(names(m), vec!["CAP_CHOWN", "CAP_SYS_ADMIN"]);
        assert_eq!(bit("CAP_CHECKPOINT_RESTORE"), Some(1 << 40));
    }
}
