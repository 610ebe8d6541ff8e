//! `--systemd-cgroup`: the suite against a runtime's systemd cgroup driver (runc's
//! `--systemd-cgroup`, hako's too). The runtime gets the global flag on every command, and each
//! case's `cgroupsPath` is a unit, `hakoconf.slice:conf:<unique>`, whose cgroup is the scope
//! `conf-<unique>.scope` in `hakoconf.slice` at `/hakoconf.slice` (systemd.slice(5): a slice
//! name's dashes spell its ancestors, so `hako-conf.slice` would sit in `hako.slice`). Both
//! runtimes refuse an absolute path under that driver, so without this every case would fail at
//! `create`. Used on a host with systemd as PID 1 (vm/systemd.sh).

/// The global flag that selects the driver.
pub const FLAG: &str = "--systemd-cgroup";

/// The slice every case's scope goes in.
const SLICE: &str = "hakoconf.slice";

/// The case's `linux.cgroupsPath` and its cgroup relative to each hierarchy's root: the
/// absolute `/hako-conf-<unique>` on the cgroupfs driver, a unit under `systemd`.
pub fn cgroup_paths(systemd: bool, unique: &str) -> (String, String) {
    if systemd {
        (
            format!("{SLICE}:conf:{unique}"),
            format!("/{SLICE}/conf-{unique}.scope"),
        )
    } else {
        let path = format!("/hako-conf-{unique}");
        (path.clone(), path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_path_names_its_scope() {
        let (config, cgroup) = cgroup_paths(true, "12-3");
        assert_eq!(config, "hakoconf.slice:conf:12-3");
        assert_eq!(cgroup, "/hakoconf.slice/conf-12-3.scope");
        let (config, cgroup) = cgroup_paths(false, "12-3");
        assert_eq!(
            (config.as_str(), cgroup.as_str()),
            ("/hako-conf-12-3", "/hako-conf-12-3")
        );
    }
}
