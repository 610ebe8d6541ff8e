//! CRIU's RPC messages (`criu_req`, `criu_opts`, `criu_resp`, `criu_notify`), with the field
//! numbers of CRIU's `images/rpc.proto` (MIT; the definition CRIU publishes and runc and
//! youki compile). Only what hako sends or reads is here; unknown response fields are skipped.

use super::wire::{Malformed, Reader, Value, Writer};

/// `criu_req_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReqType {
    /// Dump the tree (`checkpoint`).
    Dump = 1,
    /// Restore a tree (`restore`).
    Restore = 2,
    /// Dump memory only, for a later dump with `parent_img` (`checkpoint --pre-dump`).
    PreDump = 4,
    /// The answer to a notification.
    Notify = 6,
    /// Which features CRIU has on this kernel.
    FeatureCheck = 9,
    /// CRIU's version (CRIU 3.0 and newer answer it).
    Version = 10,
}

impl ReqType {
    /// CRIU's name for it (runc prints these names in its errors).
    pub(crate) fn name(self) -> &'static str {
        match self {
            ReqType::Dump => "DUMP",
            ReqType::Restore => "RESTORE",
            ReqType::PreDump => "PRE_DUMP",
            ReqType::Notify => "NOTIFY",
            ReqType::FeatureCheck => "FEATURE_CHECK",
            ReqType::Version => "VERSION",
        }
    }
}

/// `criu_cg_mode`, as `--manage-cgroups-mode` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgMode {
    /// `ignore`: CRIU neither dumps nor restores cgroups.
    Ignore = 0,
    /// `soft`: restore the cgroups' properties only where they are new.
    Soft = 3,
    /// `full`: restore every property.
    Full = 4,
    /// `strict`: the cgroups must not exist.
    Strict = 5,
}

impl CgMode {
    /// Parses runc's `--manage-cgroups-mode` values.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ignore" => Some(CgMode::Ignore),
            "soft" => Some(CgMode::Soft),
            "full" => Some(CgMode::Full),
            "strict" => Some(CgMode::Strict),
            _ => None,
        }
    }
}

/// `criu_opts`: what hako asks CRIU for (field numbers in the comments' order of rpc.proto).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Opts {
    /// 1: the images directory, as a descriptor of the requesting process (CRIU opens it
    /// through `/proc/<peer>/fd/N`).
    pub images_dir_fd: i32,
    /// 2: the root of the tree to dump.
    pub pid: Option<i32>,
    /// 3.
    pub leave_running: bool,
    /// 4.
    pub ext_unix_sk: bool,
    /// 5.
    pub tcp_established: bool,
    /// 6: device files that are not what they were may be restored anyway.
    pub evasive_devices: bool,
    /// 7.
    pub shell_job: bool,
    /// 8.
    pub file_locks: bool,
    /// 9: 4 is "debug", what runc asks for.
    pub log_level: i32,
    /// 10: relative to the work directory.
    pub log_file: String,
    /// 11: `--page-server ADDRESS:PORT`.
    pub page_server: Option<(String, i32)>,
    /// 12: send notifications (`setup-namespaces`, `post-restore`, ...).
    pub notify_scripts: bool,
    /// 13: the root directory (a mount point).
    pub root: Option<String>,
    /// 14: the previous images (pre-dump chain), relative to the images directory.
    pub parent_img: Option<String>,
    /// 15.
    pub track_mem: bool,
    /// 16.
    pub auto_dedup: bool,
    /// 17: the work directory, a descriptor like `images_dir_fd`.
    pub work_dir_fd: Option<i32>,
    /// 23: external mounts, (key, value).
    pub ext_mnt: Vec<(String, String)>,
    /// 24.
    pub manage_cgroups: bool,
    /// 25: (controller, path) the restored tree's cgroups are relative to.
    pub cg_root: Vec<(Option<String>, String)>,
    /// 26: restore the root task as CRIU's sibling (our child).
    pub rst_sibling: bool,
    /// 27: (key, descriptor in CRIU's own table).
    pub inherit_fd: Vec<(String, i32)>,
    /// 34.
    pub manage_cgroups_mode: Option<CgMode>,
    /// 37: `--external` entries (an external network namespace).
    pub external: Vec<String>,
    /// 38: CLONE_NEW* flags of namespaces to restore empty.
    pub empty_ns: u32,
    /// 39: (namespace, path) to join on restore.
    pub join_ns: Vec<(String, String)>,
    /// 44: the cgroup whose freezer stops the tree.
    pub freeze_cgroup: Option<String>,
    /// 48.
    pub lazy_pages: bool,
    /// 50: on restore, send the master of a pty whose master was not dumped.
    pub orphan_pts_master: bool,
    /// 51: CRIU's own configuration file (`org.criu.config`).
    pub config_file: Option<String>,
}

impl Opts {
    fn encode(&self, w: &mut Writer) {
        w.int32(1, self.images_dir_fd);
        if let Some(pid) = self.pid {
            w.int32(2, pid);
        }
        w.flag(3, self.leave_running);
        w.flag(4, self.ext_unix_sk);
        w.flag(5, self.tcp_established);
        w.flag(6, self.evasive_devices);
        w.flag(7, self.shell_job);
        w.flag(8, self.file_locks);
        w.int32(9, self.log_level);
        w.string(10, &self.log_file);
        if let Some((address, port)) = &self.page_server {
            w.message(11, |m| {
                m.string(1, address);
                m.int32(2, *port);
            });
        }
        w.flag(12, self.notify_scripts);
        if let Some(root) = &self.root {
            w.string(13, root);
        }
        if let Some(parent) = &self.parent_img {
            w.string(14, parent);
        }
        w.flag(15, self.track_mem);
        w.flag(16, self.auto_dedup);
        if let Some(fd) = self.work_dir_fd {
            w.int32(17, fd);
        }
        for (key, val) in &self.ext_mnt {
            w.message(23, |m| {
                m.string(1, key);
                m.string(2, val);
            });
        }
        w.flag(24, self.manage_cgroups);
        for (ctrl, path) in &self.cg_root {
            w.message(25, |m| {
                if let Some(c) = ctrl {
                    m.string(1, c);
                }
                m.string(2, path);
            });
        }
        w.flag(26, self.rst_sibling);
        for (key, fd) in &self.inherit_fd {
            w.message(27, |m| {
                m.string(1, key);
                m.int32(2, *fd);
            });
        }
        if let Some(mode) = self.manage_cgroups_mode {
            w.int32(34, mode as i32);
        }
        for e in &self.external {
            w.string(37, e);
        }
        if self.empty_ns != 0 {
            w.uint32(38, self.empty_ns);
        }
        for (ns, file) in &self.join_ns {
            w.message(39, |m| {
                m.string(1, ns);
                m.string(2, file);
            });
        }
        if let Some(cg) = &self.freeze_cgroup {
            w.string(44, cg);
        }
        w.flag(48, self.lazy_pages);
        w.flag(50, self.orphan_pts_master);
        if let Some(cf) = &self.config_file {
            w.string(51, cf);
        }
    }
}

/// Encodes a `criu_req` of `kind` with `opts`.
pub(crate) fn request(kind: ReqType, opts: Option<&Opts>) -> Vec<u8> {
    let mut w = Writer::default();
    w.int32(1, kind as i32);
    if let Some(o) = opts {
        w.message(2, |m| o.encode(m));
    }
    w.finish()
}

/// `criu_features`: what a `FEATURE_CHECK` asks about and CRIU answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Features {
    /// 1: dirty-memory tracking (`--pre-dump`, `--parent-path`).
    pub mem_track: Option<bool>,
    /// 2: userfaultfd-based lazy restore (`--lazy-pages`).
    pub lazy_pages: Option<bool>,
}

/// Encodes a `FEATURE_CHECK` request for the features set in `asked`.
pub(crate) fn feature_request(asked: Features) -> Vec<u8> {
    let mut w = Writer::default();
    w.int32(1, ReqType::FeatureCheck as i32);
    w.message(5, |m| {
        if let Some(v) = asked.mem_track {
            m.bool(1, v);
        }
        if let Some(v) = asked.lazy_pages {
            m.bool(2, v);
        }
    });
    w.finish()
}

/// The answer to a notification: `notify_success` says whether hako handled it.
pub(crate) fn notify_answer(success: bool) -> Vec<u8> {
    let mut w = Writer::default();
    w.int32(1, ReqType::Notify as i32);
    w.bool(3, success);
    w.finish()
}

/// `criu_notify`: a notification script's name and the pid it concerns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Notify {
    /// `setup-namespaces`, `post-restore`, `orphan-pts-master`, `post-dump`, ...
    pub script: String,
    /// The restored root task, for `setup-namespaces` and `post-restore`.
    pub pid: i32,
}

/// `criu_resp`, the parts hako reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Resp {
    /// 1: the request type this answers (`NOTIFY` for a notification).
    pub kind: i32,
    /// 2.
    pub success: bool,
    /// 4: the restored root task.
    pub restored_pid: Option<i32>,
    /// 5.
    pub notify: Option<Notify>,
    /// 7.
    pub cr_errno: i32,
    /// 9: CRIU's own description of what failed.
    pub cr_errmsg: Option<String>,
    /// 8: the answer to a `FEATURE_CHECK` request.
    pub features: Option<Features>,
    /// 10: the answer to a `VERSION` request.
    pub version: Option<CriuVersion>,
}

/// `criu_version`: what CRIU says it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CriuVersion {
    /// 1.
    pub major: i32,
    /// 2.
    pub minor: i32,
    /// 4: the third number, when not 0.
    pub sublevel: Option<i32>,
    /// 3: set when CRIU was built from git between releases.
    pub gitid: Option<String>,
}

impl CriuVersion {
    /// The number runc compares (go-criu's `GetCriuVersion`): major·10000 + minor·100 +
    /// sublevel, and a build from git between releases counts as the next minor release.
    pub fn number(&self) -> i64 {
        let n = i64::from(self.major) * 10_000
            + i64::from(self.minor) * 100
            + i64::from(self.sublevel.unwrap_or(0));
        match self.gitid {
            Some(_) => n - n % 100 + 100,
            None => n,
        }
    }
}

impl std::fmt::Display for CriuVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)?;
        if let Some(s) = self.sublevel.filter(|&s| s != 0) {
            write!(f, ".{s}")?;
        }
        if let Some(g) = &self.gitid {
            write!(f, " (git {g})")?;
        }
        Ok(())
    }
}

fn string(v: Value<'_>) -> String {
    match v {
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    }
}

fn nested<'a>(v: Value<'a>) -> Reader<'a> {
    match v {
        Value::Bytes(b) => Reader::new(b),
        _ => Reader::new(&[]),
    }
}

impl Resp {
    /// Decodes a `criu_resp`.
    pub(crate) fn decode(buf: &[u8]) -> Result<Self, Malformed> {
        let mut resp = Resp::default();
        let mut r = Reader::new(buf);
        while let Some((field, v)) = r.next_field()? {
            match field {
                1 => resp.kind = v.as_i32().unwrap_or(0),
                2 => resp.success = v.as_bool().unwrap_or(false),
                4 => {
                    let mut m = nested(v);
                    while let Some((f, v)) = m.next_field()? {
                        if f == 1 {
                            resp.restored_pid = v.as_i32();
                        }
                    }
                }
                5 => {
                    let mut n = Notify::default();
                    let mut m = nested(v);
                    while let Some((f, v)) = m.next_field()? {
                        match f {
                            1 => n.script = string(v),
                            2 => n.pid = v.as_i32().unwrap_or(0),
                            _ => {}
                        }
                    }
                    resp.notify = Some(n);
                }
                7 => resp.cr_errno = v.as_i32().unwrap_or(0),
                9 => resp.cr_errmsg = Some(string(v)),
                8 => {
                    let mut f = Features::default();
                    let mut m = nested(v);
                    while let Some((n, v)) = m.next_field()? {
                        match n {
                            1 => f.mem_track = v.as_bool(),
                            2 => f.lazy_pages = v.as_bool(),
                            _ => {}
                        }
                    }
                    resp.features = Some(f);
                }
                10 => {
                    let mut ver = CriuVersion::default();
                    let mut m = nested(v);
                    while let Some((f, v)) = m.next_field()? {
                        match f {
                            1 => ver.major = v.as_i32().unwrap_or(0),
                            2 => ver.minor = v.as_i32().unwrap_or(0),
                            3 => ver.gitid = Some(string(v)).filter(|g| !g.is_empty()),
                            4 => ver.sublevel = v.as_i32(),
                            _ => {}
                        }
                    }
                    resp.version = Some(ver);
                }
                _ => {}
            }
        }
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_carries_type_and_opts_with_rpc_proto_numbers() {
        let opts = Opts {
            images_dir_fd: 5,
            pid: Some(42),
            log_level: 4,
            log_file: "dump.log".into(),
            ext_mnt: vec![("/data".into(), "/data".into())],
            ..Opts::default()
        };
        let bytes = request(ReqType::Dump, Some(&opts));
        let mut r = Reader::new(&bytes);
        assert_eq!(r.next_field().expect("test"), Some((1, Value::Varint(1))));
        let (f, v) = r.next_field().expect("test").expect("test");
        assert_eq!(f, 2);
        let mut m = nested(v);
        let mut fields = Vec::new();
        while let Some((f, v)) = m.next_field().expect("test") {
            fields.push((f, v));
        }
        assert_eq!(fields[0], (1, Value::Varint(5)));
        assert_eq!(fields[1], (2, Value::Varint(42)));
        assert_eq!(fields[2], (9, Value::Varint(4)));
        assert_eq!(fields[3], (10, Value::Bytes(b"dump.log")));
        // ext_mount_map { key = 1; val = 2 } nested as field 23.
        assert_eq!(fields[4].0, 23);
        assert_eq!(fields.len(), 5, "false flags are not sent: {fields:?}");
    }

    #[test]
    fn decodes_a_failure_and_a_notification() {
        let mut w = Writer::default();
        w.int32(1, ReqType::Dump as i32);
        w.bool(2, false);
        w.int32(7, 13);
        w.string(9, "Can't dump");
        let resp = Resp::decode(&w.finish()).expect("test");
        assert!(!resp.success);
        assert_eq!(resp.cr_errno, 13);
        assert_eq!(resp.cr_errmsg.as_deref(), Some("Can't dump"));

        let mut w = Writer::default();
        w.int32(1, ReqType::Notify as i32);
        w.bool(2, true);
        w.message(5, |m| {
            m.string(1, "post-restore");
            m.int32(2, 1234);
        });
        let resp = Resp::decode(&w.finish()).expect("test");
        assert_eq!(resp.kind, ReqType::Notify as i32);
        assert_eq!(
            resp.notify,
            Some(Notify {
                script: "post-restore".into(),
                pid: 1234
            })
        );
    }

    #[test]
    fn decodes_a_version_and_numbers_it_as_runc() {
        // What CRIU 3.17.1 answers (bytes as rpc.proto lays them out).
        let mut w = Writer::default();
        w.int32(1, ReqType::Version as i32);
        w.bool(2, true);
        w.message(10, |m| {
            m.int32(1, 3);
            m.int32(2, 17);
            m.int32(4, 1);
        });
        let v = Resp::decode(&w.finish())
            .expect("test")
            .version
            .expect("test");
        assert_eq!(v.number(), 31701);
        assert_eq!(v.to_string(), "3.17.1");
        let git = CriuVersion {
            major: 3,
            minor: 17,
            sublevel: Some(1),
            gitid: Some("v3.17.1-12-gabc".into()),
        };
        assert_eq!(git.number(), 31800);
        let old = CriuVersion {
            major: 2,
            minor: 9,
            ..CriuVersion::default()
        };
        assert_eq!((old.number(), old.to_string().as_str()), (20900, "2.9"));
    }

    #[test]
    fn feature_check_asks_and_reads_criu_features() {
        let req = feature_request(Features {
            mem_track: None,
            lazy_pages: Some(true),
        });
        // type 9; features (5) { lazy_pages (2) = true }
        assert_eq!(req, [0x08, 0x09, 0x2a, 0x02, 0x10, 0x01]);
        let mut w = Writer::default();
        w.int32(1, ReqType::FeatureCheck as i32);
        w.bool(2, true);
        w.message(8, |m| m.bool(2, false));
        let resp = Resp::decode(&w.finish()).expect("test");
        assert_eq!(
            resp.features,
            Some(Features {
                mem_track: None,
                lazy_pages: Some(false)
            })
        );
    }

    #[test]
    fn manage_cgroups_modes_as_runc_names_them() {
        assert_eq!(CgMode::parse("soft"), Some(CgMode::Soft));
        assert_eq!(CgMode::parse("strict").map(|m| m as i32), Some(5));
        assert_eq!(CgMode::parse("ignore").map(|m| m as i32), Some(0));
        assert_eq!(CgMode::parse("props"), None);
    }
}
