//! Root tests: prepare/enter/finish a tiny rootfs in a forked child with its
//! own mount namespace, including hostile images.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use common::{chain, check, has_mounts_under, in_child, is_root, mountinfo_line, set_up, Bundle};
use hako_namespaces::{CgroupMount, Error, MountRecord, Rootfs};
use nix::sched::CloneFlags;
use serde_json::json;

fn std_mounts() -> serde_json::Value {
    json!([
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
    ])
}

fn open_wr_errno(p: &str) -> Option<i32> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(p)
        .err()
        .and_then(|e| e.raw_os_error())
}

#[test]
fn full_lifecycle() {
    if !is_root() {
        return;
    }
    let b = Bundle::new();
    let host_file = b.path().join("hostfile");
    std::fs::write(&host_file, "from-host").unwrap();
    let mut mounts = std_mounts();
    let list = mounts.as_array_mut().unwrap();
    list.push(json!({"destination": "/etc/hostfile", "type": "bind",
                     "source": host_file, "options": ["bind", "ro", "nosuid"]}));
    list.push(
        json!({"destination": "/deep/new/dir", "type": "tmpfs", "source": "tmpfs",
                     "options": ["noexec", "rprivate"]}),
    );
    list.push(
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                     "options": ["nosuid", "noexec", "nodev", "ro"]}),
    );
    let spec = b.spec(
        mounts,
        json!({
            "maskedPaths": ["/proc/kcore", "/proc/timer_list", "/proc/fs", "/proc/does-not-exist"],
            "readonlyPaths": ["/proc/sys", "/proc/missing"],
            "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 384}],
        }),
    );
    let rootfs = Rootfs::from_spec(&spec, b.path()).unwrap();
    assert_eq!(rootfs.root_path(), b.rootfs().canonicalize().unwrap());
    let cg = vec![CgroupMount {
        name: "pids".into(),
        host_dir: "/sys/fs/cgroup/pids".into(),
        fs_type: "cgroup".into(),
        options: "pids".into(),
    }];
    let res = in_child(CloneFlags::CLONE_NEWUTS, || {
        rootfs
            .prepare(&cg, Default::default())
            .map_err(|e| chain(&e))?;
        rootfs.enter(false).map_err(|e| chain(&e))?;
        rootfs.finish().map_err(|e| chain(&e))?;

        check(
            std::env::current_dir().map_err(|e| format!("line 71: {e}"))? == Path::new("/"),
            "cwd",
        )?;
        check(Path::new("/bin/busybox").exists(), "busybox visible")?;
        let null = std::fs::metadata("/dev/null").map_err(|e| format!("line 73: {e}"))?;
        check(null.file_type().is_char_device(), "/dev/null char")?;
        check(
            null.rdev() == nix::sys::stat::makedev(1, 3),
            "/dev/null 1:3",
        )?;
        check(
            null.mode() & 0o777 == 0o666,
            format!("/dev/null mode {:o}", null.mode()),
        )?;
        let fuse = std::fs::metadata("/dev/fuse").map_err(|e| format!("line 77: {e}"))?;
        check(fuse.mode() & 0o777 == 0o600, "/dev/fuse mode")?;
        check(
            std::fs::read_link("/dev/ptmx").map_err(|e| format!("line 80: {e}"))?
                == Path::new("pts/ptmx"),
            "ptmx symlink",
        )?;
        check(
            std::fs::read_link("/dev/fd").map_err(|e| format!("line 84: {e}"))?
                == Path::new("/proc/self/fd"),
            "fd symlink",
        )?;
        // Masked file reads empty; masked dir is an empty read-only tmpfs.
        check(
            std::fs::read("/proc/timer_list")
                .map_err(|e| format!("line 88: {e}"))?
                .is_empty(),
            "timer_list masked",
        )?;
        check(
            std::fs::read_dir("/proc/fs")
                .map_err(|e| format!("line 90: {e}"))?
                .next()
                .is_none(),
            "/proc/fs masked",
        )?;
        check(
            std::fs::create_dir("/proc/fs/x")
                .err()
                .and_then(|e| e.raw_os_error())
                == Some(libc::EROFS),
            "/proc/fs read-only",
        )?;
        // Read-only path: opening for write fails EROFS (we are in a new uts ns anyway).
        check(
            open_wr_errno("/proc/sys/kernel/hostname") == Some(libc::EROFS),
            "/proc/sys read-only",
        )?;
        let sys = mountinfo_line("/sys").ok_or("no /sys in mountinfo")?;
        check(sys.contains(" ro,"), format!("sysfs ro: {sys}"))?;
        let proc_sys = mountinfo_line("/proc/sys").ok_or("no /proc/sys")?;
        check(proc_sys.contains(" ro,"), format!("proc/sys: {proc_sys}"))?;
        // The bind keeps host content, read-only.
        check(
            std::fs::read_to_string("/etc/hostfile").map_err(|e| format!("line 108: {e}"))?
                == "from-host",
            "bind content",
        )?;
        check(
            open_wr_errno("/etc/hostfile") == Some(libc::EROFS),
            "bind read-only",
        )?;
        let deep = mountinfo_line("/deep/new/dir").ok_or("no /deep/new/dir")?;
        check(
            deep.contains("noexec") && !deep.contains("shared:"),
            format!("deep: {deep}"),
        )?;
        // cgroup tree: tmpfs with the pids hierarchy bound, read-only.
        check(
            Path::new("/sys/fs/cgroup/pids/cgroup.procs").exists(),
            "pids bound",
        )?;
        check(
            mountinfo_line("/sys/fs/cgroup").is_some_and(|l| l.contains(" ro,")),
            "cgroup tmpfs ro",
        )?;
        // The old root is gone: no mount shows the host bundle path.
        let info = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| format!("line 118: {e}"))?;
        check(
            info.lines().all(|l| {
                l.split(' ')
                    .nth(4)
                    .is_some_and(|m| !m.contains("hako-ns-test"))
            }),
            format!("old root visible: {info}"),
        )?;
        check(
            info.lines().count() < 20,
            format!("host mounts visible: {info}"),
        )?;
        Ok(())
    });
    res.unwrap();
    assert!(!has_mounts_under(b.path()), "mounts leaked to the host");
    assert_eq!(std::fs::read_to_string(&host_file).unwrap(), "from-host");
}

#[test]
fn no_pivot_and_readonly_root() {
    if !is_root() {
        return;
    }
    let b = Bundle::new();
    let mut spec = b.spec(
        json!([{"destination": "/proc", "type": "proc", "source": "proc"}]),
        json!({}),
    );
    spec.set_root(Some(
        oci_spec::runtime::RootBuilder::default()
            .path("rootfs")
            .readonly(true)
            .build()
            .unwrap(),
    ));
    let rootfs = Rootfs::from_spec(&spec, b.path()).unwrap();
    in_child(CloneFlags::empty(), || {
        rootfs
            .prepare(&[], Default::default())
            .map_err(|e| chain(&e))?;
        rootfs.enter(true).map_err(|e| chain(&e))?;
        rootfs.finish().map_err(|e| chain(&e))?;
        check(Path::new("/bin/busybox").exists(), "busybox visible")?;
        check(
            std::fs::create_dir("/newdir")
                .err()
                .and_then(|e| e.raw_os_error())
                == Some(libc::EROFS),
            "root read-only",
        )?;
        // /dev is from the image here (no tmpfs): nodes were created in it
        // before the root became read-only.
        let null = std::fs::metadata("/dev/null").map_err(|e| format!("line 156: {e}"))?;
        check(null.file_type().is_char_device(), "/dev/null char")
    })
    .unwrap();
    assert!(!has_mounts_under(b.path()));
}

#[test]
fn proc_symlink_to_root_is_refused() {
    if !is_root() {
        return;
    }
    let b = Bundle::new();
    std::fs::remove_dir(b.rootfs().join("proc")).unwrap();
    symlink("/", b.rootfs().join("proc")).unwrap();
    let spec = b.spec(
        json!([{"destination": "/proc", "type": "proc", "source": "proc"}]),
        json!({}),
    );
    let rootfs = Rootfs::from_spec(&spec, b.path()).unwrap();
    in_child(CloneFlags::empty(), || {
        match rootfs.prepare(&[], Default::default()) {
            Err(Error::SymlinkDestination { destination }) if destination == Path::new("/proc") => {
                Ok(())
            }
            Err(e) => Err(format!("wrong error: {}", chain(&e))),
            Ok(()) => Err("proc mounted through a symlink".into()),
        }
    })
    .unwrap();
    assert!(!has_mounts_under(b.path()));
}

#[test]
fn destination_symlink_to_host_stays_inside() {
    if !is_root() {
        return;
    }
    let b = Bundle::new();
    let host_target = std::env::temp_dir().join(common::unique("host-target"));
    std::fs::create_dir(&host_target).unwrap();
    struct Cleanup(std::path::PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = Cleanup(host_target.clone());
    symlink(&host_target, b.rootfs().join("etc/evil")).unwrap();
    let spec = b.spec(
        json!([{"destination": "/etc/evil", "type": "tmpfs", "source": "tmpfs"},
               {"destination": "/etc/evil/file", "type": "bind", "source": "/etc/hostname", "options": ["bind"]}]),
        json!({}),
    );
    let rootfs = Rootfs::from_spec(&spec, b.path()).unwrap();
    let inside = b
        .rootfs()
        .canonicalize()
        .unwrap()
        .join(host_target.strip_prefix("/").unwrap());
    let host_target2 = host_target.clone();
    in_child(CloneFlags::empty(), || {
        rootfs
            .prepare(&[], Default::default())
            .map_err(|e| chain(&e))?;
        let host = host_target2.to_string_lossy().into_owned();
        check(mountinfo_line(&host).is_none(), "mounted on the host path")?;
        let inside_s = inside.to_string_lossy().into_owned();
        check(
            mountinfo_line(&inside_s).is_some_and(|l| l.contains("tmpfs")),
            "tmpfs inside rootfs",
        )?;
        check(inside.join("file").exists(), "bind inside the tmpfs")?;
        check(
            std::fs::read_dir(&host_target2)
                .map_err(|e| format!("line 213: {e}"))?
                .next()
                .is_none(),
            "host dir touched",
        )
    })
    .unwrap();
    assert!(std::fs::read_dir(&host_target).unwrap().next().is_none());
    assert!(!has_mounts_under(b.path()));
}

/// A masked path that is a symlink masks what it names, resolved inside the root (issue 12
/// item 16; runc 1.1.5 to 1.5, crun and youki mask the target): `/masklink -> /data/secret`,
/// where /data is a bind of a host directory, hides the file in the container without
/// touching the host's copy.
#[test]
fn masked_symlink_masks_its_target() {
    if !is_root() {
        return;
    }
    let b = Bundle::new();
    let data = b.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("secret"), "keep-me").unwrap();
    symlink("/data/secret", b.rootfs().join("masklink")).unwrap();
    let mut mounts = std_mounts();
    mounts.as_array_mut().unwrap().push(
        json!({"destination": "/data", "type": "bind", "source": data, "options": ["rbind"]}),
    );
    let spec = b.spec(mounts, json!({"maskedPaths": ["/masklink"]}));
    let rootfs = Rootfs::from_spec(&spec, b.path()).unwrap();
    in_child(CloneFlags::empty(), || {
        set_up(&rootfs, false)?;
        check(
            std::fs::read_to_string("/data/secret")
                .map_err(|e| format!("read: {e}"))?
                .is_empty(),
            "symlink target not masked",
        )?;
        check(
            mountinfo_line("/data/secret").is_some(),
            "no mount on the symlink's target",
        )
    })
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(data.join("secret")).unwrap(),
        "keep-me"
    );
    assert!(!has_mounts_under(b.path()));
}

#[test]
fn fake_dev_null_is_refused() {
    if !is_root() {
        return;
    }
    // CVE-2025-31133: /dev/null in the image is a symlink to a host-ish file.
    let b = Bundle::new();
    std::fs::write(b.rootfs().join("etc/target"), "victim").unwrap();
    symlink("/etc/target", b.rootfs().join("dev/null")).unwrap();
    std::fs::write(b.rootfs().join("etc/masked"), "x").unwrap();
    let spec = b.spec(
        json!([{"destination": "/proc", "type": "proc", "source": "proc"}]),
        json!({"maskedPaths": ["/etc/masked"]}),
    );
    let rootfs = Rootfs::from_spec(&spec, b.path()).unwrap();
    in_child(CloneFlags::empty(), || {
        rootfs
            .prepare(&[], Default::default())
            .map_err(|e| chain(&e))?;
        rootfs.enter(false).map_err(|e| chain(&e))?;
        match rootfs.finish() {
            Err(Error::NotDevNull { .. }) => Ok(()),
            Err(e) => Err(format!("wrong error: {}", chain(&e))),
            Ok(()) => Err("masked with a fake /dev/null".into()),
        }
    })
    .unwrap();
}

#[test]
fn user_namespace_binds_devices_and_sysfs() {
    if !is_root() {
        return;
    }
    use std::io::{Read, Write};
    let b = Bundle::new();
    let spec = b.spec(
        json!([
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        ]),
        json!({
            "namespaces": [{"type": "user"}, {"type": "mount"}],
            "uidMappings": [{"containerID": 0, "hostID": 0, "size": 65536}],
            "gidMappings": [{"containerID": 0, "hostID": 0, "size": 65536}],
        }),
    );
    let rootfs = Rootfs::from_spec(&spec, b.path()).unwrap();
    let maps = hako_namespaces::IdMappings::from_spec(spec.linux().as_ref())
        .unwrap()
        .unwrap();
    // The child unshares a user namespace, waits for its maps, then runs.
    let (ready_r, ready_w) = nix::unistd::pipe().unwrap();
    let (go_r, go_w) = nix::unistd::pipe().unwrap();
    let mut ready_r = std::fs::File::from(ready_r);
    let mut go_w = std::fs::File::from(go_w);
    let writer = std::thread::spawn(move || {
        let mut pid = [0u8; 4];
        if ready_r.read_exact(&mut pid).is_err() {
            return Err("child did not report".to_string());
        }
        let r = maps.write(i32::from_ne_bytes(pid)).map_err(|e| chain(&e));
        let _ = go_w.write_all(&[u8::from(r.is_ok())]);
        r
    });
    let res = in_child(CloneFlags::empty(), move || {
        nix::sched::unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS)
            .map_err(|e| format!("line 313: {e}"))?;
        let mut w = std::fs::File::from(ready_w);
        w.write_all(&std::process::id().to_ne_bytes())
            .map_err(|e| format!("line 315: {e}"))?;
        let mut ok = [0u8; 1];
        std::fs::File::from(go_r)
            .read_exact(&mut ok)
            .map_err(|e| format!("line 317: {e}"))?;
        check(ok[0] == 1, "maps not written")?;
        set_up(&rootfs, false)?;
        let null = std::fs::metadata("/dev/null").map_err(|e| format!("line 322: {e}"))?;
        check(
            null.rdev() == nix::sys::stat::makedev(1, 3),
            "/dev/null bound from host",
        )?;
        // A bind of the host node lives on the host's devtmpfs, not our tmpfs.
        let dev = std::fs::metadata("/dev").map_err(|e| e.to_string())?;
        check(null.dev() != dev.dev(), "/dev/null is a bind mount")?;
        check(Path::new("/sys/kernel").exists(), "sysfs content")?;
        let st = nix::sys::statvfs::statvfs("/sys").map_err(|e| e.to_string())?;
        let f = st.flags();
        use nix::sys::statvfs::FsFlags;
        check(
            f.contains(
                FsFlags::ST_RDONLY | FsFlags::ST_NOSUID | FsFlags::ST_NODEV | FsFlags::ST_NOEXEC,
            ),
            format!("sys flags {f:?}"),
        )
    });
    let w = writer.join().unwrap();
    res.unwrap();
    w.unwrap();
    assert!(!has_mounts_under(b.path()));
}

/// After `unshare(CLONE_NEWPID)`: runs `f` in a child that is pid 1 of the
/// new PID namespace while /proc is still the host's, like a container's
/// init; reports its failure message.
fn as_pid1<F: FnOnce() -> Result<(), String>>(f: F) -> Result<(), String> {
    use std::io::{Read, Write};
    let (r, w) = nix::unistd::pipe().map_err(|e| e.to_string())?;
    // SAFETY: the child runs `f` (syscalls and allocation) and `_exit`s.
    match unsafe { nix::unistd::fork() }.map_err(|e| e.to_string())? {
        nix::unistd::ForkResult::Child => {
            drop(r);
            // Dies with the in_child process if that is killed on timeout.
            let res = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(|e| format!("pdeathsig: {e}"))
                .and_then(|()| check(std::process::id() == 1, "not pid 1"))
                .and_then(|()| {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
                        .unwrap_or_else(|_| Err("panic".into()))
                });
            if let Err(m) = &res {
                let _ = std::fs::File::from(w).write_all(m.as_bytes());
            }
            // SAFETY: `_exit` is always safe.
            unsafe { libc::_exit(i32::from(res.is_err())) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(w);
            let mut msg = String::new();
            let _ = std::fs::File::from(r).read_to_string(&mut msg);
            match nix::sys::wait::waitpid(child, None) {
                Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Ok(()),
                other => Err(format!("pid 1 failed ({other:?}): {msg}")),
            }
        }
    }
}

/// uid, gid of a path as seen from the calling mount namespace.
fn owner(p: &Path) -> Result<(u32, u32), String> {
    let m = std::fs::metadata(p).map_err(|e| format!("stat {}: {e}", p.display()))?;
    Ok((m.uid(), m.gid()))
}

#[test]
fn idmapped_binds_map_owners() {
    if !is_root() {
        return;
    }
    use std::os::unix::fs::chown;
    let b = Bundle::new();
    // src/ (1000:1000) with file (1000:1000), rootfile (0:0), and nested/, on
    // which the child mounts inner/ (holding inner/file, 1000:1000).
    let src = b.path().join("src");
    let inner = b.path().join("inner");
    for d in [&src, &inner, &src.join("nested")] {
        std::fs::create_dir(d).unwrap();
    }
    for f in [src.join("file"), src.join("rootfile"), inner.join("file")] {
        std::fs::write(&f, "x").unwrap();
    }
    for p in [&src, &src.join("file"), &inner, &inner.join("file")] {
        chown(p, Some(1000), Some(1000)).unwrap();
    }
    let maps = json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
    let inverse = json!([{"containerID": 1000, "hostID": 0, "size": 1}]);
    let spec = b.spec(
        json!([
            {"destination": "/idm", "type": "bind", "source": src,
             "options": ["rbind", "ro"], "uidMappings": maps, "gidMappings": maps},
            {"destination": "/ridm", "type": "bind", "source": src,
             "options": ["rbind", "ridmap"], "uidMappings": inverse, "gidMappings": inverse},
        ]),
        json!({}),
    );
    let rootfs = Rootfs::from_spec(&spec, b.path()).unwrap();
    let root = b.rootfs().canonicalize().unwrap();
    let (src2, inner2) = (src.clone(), inner.clone());
    // A new PID namespace with the host's /proc, as for a container's init:
    // the helper's pid from fork(2) is not the one /proc shows.
    let res = in_child(CloneFlags::CLONE_NEWPID, move || {
        as_pid1(move || {
            // Private view first, so the nested mount cannot reach the host.
            nix::mount::mount(
                None::<&str>,
                "/",
                None::<&str>,
                nix::mount::MsFlags::MS_SLAVE | nix::mount::MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(|e| format!("make / rslave: {e}"))?;
            nix::mount::mount(
                Some(&inner2),
                &src2.join("nested"),
                None::<&str>,
                nix::mount::MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| format!("nested bind: {e}"))?;
            // As `hako create` does before it clones the init.
            match rootfs
                .detach_idmapped()
                .and_then(|trees| rootfs.prepare(&[], trees))
            {
                Err(Error::MountSetattr {
                    source: nix::errno::Errno::EINVAL,
                    ..
                }) => return Err("SKIP: filesystem does not support id-mapped mounts".into()),
                other => other.map_err(|e| chain(&e))?,
            }
            // mount_setattr(2): an id-mapped mount shows on-disk id `c` (a
            // containerID) as its hostID; unmapped ids show as the overflow id.
            let at = |p: &str| owner(&root.join(p));
            let (file, rootfile) = (at("idm/file")?, at("idm/rootfile")?);
            check(
                rootfile == (1000, 1000) && file == (65534, 65534),
                format!("idm (0->1000): rootfile {rootfile:?}, file {file:?}"),
            )?;
            check(
                at("idm/nested/file")? == (1000, 1000),
                "idmap (non-recursive) mapped the submount",
            )?;
            // ridmap with 1000->0: the uid-1000 tree, submount included, is root's.
            check(at("ridm")? == (0, 0), "ridm root not mapped")?;
            check(at("ridm/file")? == (0, 0), "ridm/file not mapped")?;
            check(
                at("ridm/nested/file")? == (0, 0),
                format!("ridmap submount {:?}", at("ridm/nested/file")?),
            )?;
            check(owner(&src2.join("file"))? == (1000, 1000), "source changed")?;
            let st = nix::sys::statvfs::statvfs(&root.join("idm")).map_err(|e| e.to_string())?;
            check(
                st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY),
                "idm not read-only",
            )?;
            let mi = mountinfo_line(&root.join("idm").to_string_lossy()).unwrap_or_default();
            check(mi.contains("idmapped"), format!("mountinfo: {mi}"))?;
            // The user namespace helpers were reaped.
            // (/proc is the host's: thread-self, not our pid 1.)
            let children = std::fs::read_to_string("/proc/thread-self/children")
                .map_err(|e| format!("children: {e}"))?;
            check(
                children.trim().is_empty(),
                format!("helpers left: {children}"),
            )
        })
    });
    match res {
        Err(e) if e.contains("SKIP:") => eprintln!("skipping: {e}"),
        other => other.unwrap(),
    }
    assert_eq!(owner(&src.join("file")).unwrap(), (1000, 1000));
    assert!(!has_mounts_under(b.path()));
}

#[test]
fn idmap_without_mappings_needs_userns() {
    let b = Bundle::new();
    let spec = b.spec(
        json!([{"destination": "/x", "type": "bind", "source": "/tmp", "options": ["idmap"]}]),
        json!({}),
    );
    assert!(matches!(
        Rootfs::from_spec(&spec, b.path()),
        Err(Error::IdmapWithoutMappings { .. })
    ));
}

/// A `process.cwd` missing from the image is created inside the root after entering it
/// (issue 12 item 7), through a symlink that climbs out of the root (`/evil ->
/// /../../..<host dir>/probe`) too: it lands in the rootfs, never on the host.
#[test]
fn missing_cwd_is_created_inside_root() {
    if !is_root() {
        return;
    }
    let b = Bundle::new();
    let host = tempfile::tempdir().unwrap();
    let probe = host.path().join("probe");
    symlink(
        format!("/../../../..{}", probe.display()),
        b.rootfs().join("evil"),
    )
    .unwrap();
    let cwd = "/evil/sub/dir";
    let mut spec = serde_json::to_value(b.spec(json!([]), json!({}))).unwrap();
    spec["process"] = json!({"cwd": cwd, "args": ["sh"], "user": {"uid": 0, "gid": 0}});
    let spec: oci_spec::runtime::Spec = serde_json::from_value(spec).unwrap();
    let rootfs = Rootfs::from_spec(&spec, b.path()).unwrap();
    let inside = probe.strip_prefix("/").unwrap().join("sub/dir");
    let inside_str = format!("/{}", inside.display());
    in_child(CloneFlags::empty(), || {
        set_up(&rootfs, false)?;
        let meta = std::fs::metadata(&inside_str).map_err(|e| format!("{inside_str}: {e}"))?;
        check(meta.is_dir(), "cwd created")?;
        check(meta.uid() == 0 && meta.gid() == 0, "owned by root")?;
        std::env::set_current_dir(cwd).map_err(|e| format!("chdir {cwd}: {e}"))
    })
    .unwrap();
    assert!(!probe.exists(), "created on the host");
    assert!(b.rootfs().join(inside).is_dir(), "created in the rootfs");
}

/// Sets the propagation of the test child's own `/` (its private namespace).
fn set_root_propagation(flags: nix::mount::MsFlags) -> Result<(), String> {
    nix::mount::mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
        .map_err(|e| e.to_string())
}

/// Without a mount namespace of its own (issue 12 item 1) the mounts are made in the caller's
/// namespace (here the test child's private one) as runc makes them, each written to the
/// record; `unmount_recorded` takes every one down; the root is chrooted, with or without
/// `--no-pivot`, and `root.readonly` applies to a bind of the rootfs, never to the mount it
/// sits on.
#[test]
fn without_mount_namespace_mounts_are_recorded_and_taken_down() {
    if !is_root() {
        return;
    }
    let b = Bundle::new();
    std::fs::write(b.rootfs().join("marker"), "inside").unwrap();
    let mut spec = b.spec_as_is(std_mounts(), json!({"namespaces": [{"type": "pid"}]}));
    if let Some(root) = spec.root_mut() {
        root.set_readonly(Some(true));
    }
    let mut rootfs = Rootfs::from_spec(&spec, b.path()).unwrap();
    assert!(rootfs.needs_mount_record());
    // Without a record, nothing is mounted at all.
    in_child(CloneFlags::empty(), || {
        match rootfs.prepare(&[], Default::default()) {
            Err(Error::MountRecordMissing) => check(!has_mounts_under(b.path()), "nothing mounted"),
            other => Err(format!("{other:?}")),
        }
    })
    .unwrap();
    let state = tempfile::tempdir().unwrap();
    let record = state.path().join("mounts");
    rootfs.record_mounts(MountRecord::create(&record, 3).unwrap());
    in_child(CloneFlags::empty(), || {
        // The test's own namespace: nothing it mounts may propagate anywhere.
        set_root_propagation(nix::mount::MsFlags::MS_PRIVATE | nix::mount::MsFlags::MS_REC)?;
        // Then a shared `/` of its own peer group (no peer outside this namespace), which runc
        // would turn into a slave.
        set_root_propagation(nix::mount::MsFlags::MS_SHARED)?;
        let root_before = mountinfo_line("/").ok_or("no / in mountinfo")?;
        check(root_before.contains(" shared:"), "/ is shared")?;
        rootfs
            .prepare(&[], Default::default())
            .map_err(|e| chain(&e))?;
        let text = std::fs::read_to_string(&record).map_err(|e| e.to_string())?;
        // The rootfs bind, proc, dev, dev/pts, sys: in mount order.
        let points: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("mount "))
            .filter_map(|l| l.split(' ').nth(1))
            .collect();
        let root = b.rootfs().to_string_lossy().into_owned();
        let want: Vec<String> = ["", "/proc", "/dev", "/dev/pts", "/sys"]
            .iter()
            .map(|s| format!("{root}{s}"))
            .collect();
        check(points == want, format!("recorded {points:?}"))?;
        check(
            mountinfo_line("/").as_deref() == Some(root_before.as_str()),
            "the caller's / is left as it was",
        )?;
        // What the container itself could mount, not recorded: a tmpfs stacked on /dev (it
        // covers the recorded one) and one under /proc's sibling /sys.
        for (dest, what) in [("dev", "stacked on /dev"), ("sys/kernel", "under /sys")] {
            nix::mount::mount(
                Some("tmpfs"),
                &b.rootfs().join(dest),
                Some("tmpfs"),
                nix::mount::MsFlags::empty(),
                None::<&str>,
            )
            .map_err(|e| format!("{what}: {e}"))?;
        }
        hako_namespaces::unmount_recorded(&record, &b.rootfs()).map_err(|e| chain(&e))?;
        check(!has_mounts_under(b.path()), "every mount taken down")?;
        // Again: nothing left to do.
        hako_namespaces::unmount_recorded(&record, &b.rootfs()).map_err(|e| chain(&e))
    })
    .unwrap();
    for no_pivot in [false, true] {
        std::fs::remove_file(&record).unwrap();
        rootfs.record_mounts(MountRecord::create(&record, 3).unwrap());
        in_child(CloneFlags::empty(), || {
            set_root_propagation(nix::mount::MsFlags::MS_PRIVATE | nix::mount::MsFlags::MS_REC)?;
            rootfs
                .prepare(&[], Default::default())
                .map_err(|e| chain(&e))?;
            rootfs.enter(no_pivot).map_err(|e| chain(&e))?;
            rootfs.finish().map_err(|e| chain(&e))?;
            check(
                std::fs::read_to_string("/marker").map_err(|e| e.to_string())? == "inside",
                "root is the rootfs",
            )?;
            check(
                std::env::current_dir().map_err(|e| e.to_string())? == Path::new("/"),
                "cwd /",
            )?;
            check(Path::new("/proc/self/stat").exists(), "/proc mounted")?;
            check(
                std::fs::metadata("/dev/null")
                    .map_err(|e| e.to_string())?
                    .file_type()
                    .is_char_device(),
                "default devices in the /dev tmpfs",
            )?;
            check(
                open_wr_errno("/marker") == Some(libc::EROFS),
                "root.readonly: the rootfs's bind is read-only",
            )
        })
        .unwrap();
    }
    assert!(!has_mounts_under(b.path()));
    assert_eq!(
        std::fs::read_to_string(b.rootfs().join("marker")).unwrap(),
        "inside"
    );
}

/// `create` killed in the first mount step (the child dies with it, between mount(2) and the
/// record's line): the record ends on the step's `pending` intent, and `unmount_recorded`
/// takes down the rootfs bind and what is stacked on it, but not what was under the rootfs
/// before the step. Before the intent lines such a record held no mount, and both were left.
#[test]
fn a_step_cut_short_is_taken_down_from_its_intent() {
    if !is_root() {
        return;
    }
    let b = Bundle::new();
    let state = tempfile::tempdir().unwrap();
    let record = state.path().join("mounts");
    in_child(CloneFlags::empty(), || {
        set_root_propagation(nix::mount::MsFlags::MS_PRIVATE | nix::mount::MsFlags::MS_REC)?;
        let root = b.rootfs();
        let mount = |src: Option<&Path>, dest: &Path, fstype, flags| {
            nix::mount::mount(src, dest, fstype, flags, None::<&str>)
                .map_err(|e| format!("mount {dest:?}: {e}"))
        };
        let tmpfs = nix::mount::MsFlags::empty();
        // There before the container: not its to take down.
        std::fs::create_dir_all(root.join("keep")).map_err(|e| e.to_string())?;
        mount(None, &root.join("keep"), Some("tmpfs"), tmpfs)?;
        let keep = mountinfo_line(&root.join("keep").to_string_lossy()).ok_or("no keep")?;
        let keep_id = keep.split(' ').next().ok_or("keep id")?;
        let ns = nix::sys::stat::stat("/proc/self/ns/mnt").map_err(|e| e.to_string())?;
        std::fs::write(
            &record,
            format!(
                "ns {} {} -\nroot {}\npending {keep_id}\n",
                ns.st_dev,
                ns.st_ino,
                root.display()
            ),
        )
        .map_err(|e| e.to_string())?;
        // The step's mounts, never recorded: the bind, and one stacked on it.
        mount(Some(&root), &root, None, nix::mount::MsFlags::MS_BIND)?;
        mount(None, &root.join("dev"), Some("tmpfs"), tmpfs)?;
        hako_namespaces::unmount_recorded(&record, &b.rootfs()).map_err(|e| chain(&e))?;
        let left = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
        let left: Vec<&str> = left
            .lines()
            .filter(|l| {
                l.split(' ')
                    .nth(4)
                    .is_some_and(|p| Path::new(p).starts_with(&root))
            })
            .collect();
        check(left == [keep.as_str()], format!("left {left:?}"))
    })
    .unwrap();
}

/// The mount id of `path` (statx(2) `STATX_MNT_ID`).
fn mount_id_of(path: &str) -> Result<u64, String> {
    let c = std::ffi::CString::new(path).map_err(|e| e.to_string())?;
    let mut buf = std::mem::MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: a NUL-terminated path and a writable statx buffer that outlive the call.
    let ret = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            0,
            libc::STATX_MNT_ID,
            buf.as_mut_ptr(),
        )
    };
    if ret != 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    // SAFETY: statx succeeded and filled the buffer.
    Ok(unsafe { buf.assume_init() }.stx_mnt_id)
}

/// A process in a mount namespace of its own (a copy of the caller's) with a tmpfs mounted at
/// `point`, which it writes a record of to `record` (with `ns_path` as the namespace's path):
/// what a container without a mount namespace of its own leaves for `delete`. Returns its pid
/// and the write end of a pipe; it exits once that is closed.
fn mounting_holder(
    b: &Bundle,
    point: &Path,
    record: &Path,
    ns_path: Option<&Path>,
) -> Result<(nix::unistd::Pid, std::os::fd::OwnedFd), String> {
    use nix::unistd::{fork, ForkResult};
    let (ready_r, ready_w) = nix::unistd::pipe().map_err(|e| e.to_string())?;
    let (hold_r, hold_w) = nix::unistd::pipe().map_err(|e| e.to_string())?;
    // SAFETY: the child makes system calls and allocates (glibc keeps malloc usable after
    // fork) and leaves with `_exit`.
    let holder = match unsafe { fork() }.map_err(|e| e.to_string())? {
        ForkResult::Child => {
            drop((ready_r, hold_w));
            let made = (|| -> Result<(), String> {
                nix::sched::unshare(CloneFlags::CLONE_NEWNS).map_err(|e| e.to_string())?;
                let none = None::<&str>;
                let flags = nix::mount::MsFlags::empty();
                nix::mount::mount(Some("tmpfs"), point, Some("tmpfs"), flags, none)
                    .map_err(|e| e.to_string())?;
                let line = mountinfo_line(&point.to_string_lossy()).ok_or("no mount")?;
                let id = line.split(' ').next().ok_or("no id")?;
                let ns = nix::sys::stat::stat("/proc/self/ns/mnt").map_err(|e| e.to_string())?;
                let path = ns_path.map_or(String::new(), |p| format!("path {}\n", p.display()));
                let text = format!(
                    "ns {} {} -\n{path}root {}\nmount {id} {}\n",
                    ns.st_dev,
                    ns.st_ino,
                    b.rootfs().display(),
                    point.display()
                );
                std::fs::write(record, text).map_err(|e| e.to_string())
            })();
            let report = made.err().unwrap_or_else(|| "y".into());
            let _ = nix::unistd::write(&ready_w, report.as_bytes());
            let _ = nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&hold_r), &mut [0u8; 1]);
            // SAFETY: ends the forked child without returning into the harness.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => child,
    };
    drop((ready_w, hold_r));
    let mut ok = [0u8; 256];
    let n = nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&ready_r), &mut ok);
    let ok = String::from_utf8_lossy(&ok[..n.unwrap_or(0)]).into_owned();
    if ok != "y" {
        drop(hold_w);
        let _ = nix::sys::wait::waitpid(holder, None);
        return Err(format!("the holder: {ok}"));
    }
    Ok((holder, hold_w))
}

/// `delete` run chrooted, for mounts recorded in another mount namespace: the unmounts happen
/// there, and the caller stays in its chroot (before the forked helper, setns(2) into the
/// namespace and back reset the calling thread's root to the namespace's: it left its chroot).
#[test]
fn unmounting_in_another_namespace_leaves_the_caller_where_it_was() {
    if !is_root() {
        return;
    }
    let b = Bundle::new();
    let state = tempfile::tempdir().unwrap();
    let record = state.path().join("mounts");
    let jail = tempfile::tempdir().unwrap();
    in_child(CloneFlags::empty(), || {
        set_root_propagation(nix::mount::MsFlags::MS_PRIVATE | nix::mount::MsFlags::MS_REC)?;
        let point = b.rootfs().join("dev");
        // The namespace the container mounted in, held by a process of its own.
        let (holder, hold_w) = mounting_holder(&b, &point, &record, None)?;
        // A chroot that sees everything (/proc too): a recursive bind of /.
        let jail = jail.path();
        let rec = nix::mount::MsFlags::MS_BIND | nix::mount::MsFlags::MS_REC;
        nix::mount::mount(Some("/"), jail, None::<&str>, rec, None::<&str>)
            .map_err(|e| e.to_string())?;
        nix::unistd::chroot(jail).map_err(|e| e.to_string())?;
        nix::unistd::chdir("/").map_err(|e| e.to_string())?;
        let root = mount_id_of("/")?;
        let done = hako_namespaces::unmount_recorded(&record, &b.rootfs()).map_err(|e| chain(&e));
        let root_after = mount_id_of("/")?;
        let left = std::fs::read_to_string(format!("/proc/{holder}/mountinfo"))
            .map_err(|e| e.to_string())?;
        drop(hold_w);
        let _ = nix::sys::wait::waitpid(holder, None);
        done?;
        check(root_after == root, "the caller is still in its chroot")?;
        check(
            !left.contains(&format!(" {} ", point.display())),
            "unmounted in the holder's namespace",
        )
    })
    .unwrap();
}

/// A joined mount namespace that no process is in any more, pinned by its file (here an open
/// descriptor, named by its /proc/PID/fd path: binding the nsfs file onto a path, as `ip netns`
/// does, was refused now and then here with EINVAL, the kernel's namespace-loop check; the
/// path is reached the same way): `unmount_recorded` reaches it through the recorded `path`
/// and takes the mounts down there (before, "no process left in it" meant "gone", and they were left); once
/// it cannot be reached at all, that is an error, not a silent leak.
#[test]
fn a_pinned_joined_namespace_is_reached_through_its_path() {
    if !is_root() {
        return;
    }
    let b = Bundle::new();
    let state = tempfile::tempdir().unwrap();
    let record = state.path().join("mounts");
    in_child(CloneFlags::empty(), || {
        set_root_propagation(nix::mount::MsFlags::MS_PRIVATE | nix::mount::MsFlags::MS_REC)?;
        let point = b.rootfs().join("dev");
        // The descriptor number the namespace will be held on, reserved now.
        let slot = std::fs::File::open("/dev/null").map_err(|e| e.to_string())?;
        let slot_fd = std::os::fd::AsRawFd::as_raw_fd(&slot);
        let pin = PathBuf::from(format!("/proc/{}/fd/{slot_fd}", std::process::id()));
        let (holder, hold_w) = mounting_holder(&b, &point, &record, Some(&pin))?;
        let pinned = std::fs::File::open(format!("/proc/{holder}/ns/mnt")).and_then(|ns| {
            // SAFETY: dup2 onto the reserved number, which `slot` owns (and closes).
            let ret = unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&ns), slot_fd) };
            match ret < 0 {
                true => Err(std::io::Error::last_os_error()),
                false => Ok(()),
            }
        });
        drop(hold_w);
        let _ = nix::sys::wait::waitpid(holder, None);
        pinned.map_err(|e| format!("pin: {e}"))?;
        // No process is in it now: only the file holds it.
        hako_namespaces::unmount_recorded(&record, &b.rootfs()).map_err(|e| chain(&e))?;
        let inside = std::process::Command::new("nsenter")
            .arg(format!("--mount={}", pin.display()))
            .args(["cat", "/proc/self/mountinfo"])
            .output()
            .map_err(|e| e.to_string())?;
        let inside = String::from_utf8_lossy(&inside.stdout);
        check(
            inside.contains(" / / "),
            "read the pinned namespace's mounts",
        )?;
        check(
            !inside.contains(&format!(" {} ", point.display())),
            "unmounted in the pinned namespace",
        )?;
        // Unpinned, the namespace is out of reach: an error, not a silent success. Also when
        // a new mount namespace has taken its freed nsfs inode number (the kernel reuses them):
        // it must not be mistaken for the recorded one.
        let recorded_ino = std::fs::metadata(&pin).map_err(|e| e.to_string())?.ino();
        drop(slot);
        let mut reuser = std::process::Command::new("unshare")
            .args(["--mount", "cat"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let reused = wait_for_mnt_ns(reuser.id()).map(|ino| ino == recorded_ino);
        let result = hako_namespaces::unmount_recorded(&record, &b.rootfs());
        drop(reuser.stdin.take());
        let _ = reuser.wait();
        eprintln!("the recorded namespace's inode number taken by a new one: {reused:?}");
        match result {
            Err(Error::MountNamespaceUnreachable { path }) => check(path == pin, "the path"),
            other => Err(format!("unreachable namespace: {other:?}")),
        }
    })
    .unwrap();
}

/// The mount namespace inode of `pid` once it has left its parent's (unshare(1) has run), or
/// `None` after a bounded wait.
fn wait_for_mnt_ns(pid: u32) -> Option<u64> {
    let mine = std::fs::metadata("/proc/self/ns/mnt").ok()?.ino();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        // Polled: unshare(1) gives no signal when it has unshared, before exec'ing cat.
        if let Ok(m) = std::fs::metadata(format!("/proc/{pid}/ns/mnt")) {
            if m.ino() != mine {
                return Some(m.ino());
            }
        }
        std::thread::yield_now();
    }
    None
}
