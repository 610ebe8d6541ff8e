//! The rootfs every case starts from: busybox (a symlink per applet) plus the checker.
//!
//! The checker is this very binary. Rather than requiring a static build, the harness copies
//! itself and every shared library `ldd` lists (at the same absolute paths, so the ELF
//! interpreter and the loader's search path work unchanged) into a template once per run; each
//! case's rootfs then hard-links those files (copying when the template sits on another
//! filesystem). A statically linked build (`ldd` prints no paths) simply needs no libraries.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The populated template and what to link from it.
pub struct Template {
    dir: PathBuf,
    files: Vec<PathBuf>,
    applets: Vec<String>,
}

const DIRS: [&str; 8] = [
    "bin",
    "proc",
    "sys",
    "dev",
    "etc",
    "tmp",
    "root",
    ".conformance",
];

fn libraries(exe: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(exe).output().context("run ldd")?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, rest)) => rest.trim().split(' ').next()?,
                None => l.split(' ').next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}

impl Template {
    /// Builds the template under `dir`.
    pub fn build(dir: &Path) -> Result<Self> {
        let exe = std::env::current_exe().context("locate the checker (current_exe)")?;
        let mut copies = vec![
            (PathBuf::from("/bin/busybox"), PathBuf::from("bin/busybox")),
            (exe.clone(), PathBuf::from(".conformance/hako-conformance")),
        ];
        for lib in libraries(&exe)? {
            let rel = lib.strip_prefix("/").unwrap_or(&lib).to_path_buf();
            copies.push((lib, rel));
        }
        let mut files = Vec::new();
        for (src, rel) in copies {
            let dst = dir.join(&rel);
            if let Some(parent) = dst.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::copy(&src, &dst)
                .with_context(|| format!("copy {} (busybox-static installed?)", src.display()))?;
            set_mode(&dst, 0o755)?;
            files.push(rel);
        }
        let list = Command::new("/bin/busybox").arg("--list").output()?;
        let applets = String::from_utf8_lossy(&list.stdout)
            .lines()
            .filter(|a| *a != "busybox")
            .map(String::from)
            .collect();
        Ok(Template {
            dir: dir.to_path_buf(),
            files,
            applets,
        })
    }

    /// The template's copy of this binary (the checker), which any user can run.
    pub fn checker(&self) -> PathBuf {
        self.dir.join(".conformance/hako-conformance")
    }

    /// Fills `root` (which must not exist yet) for one case.
    pub fn populate(&self, root: &Path) -> Result<()> {
        for d in DIRS {
            std::fs::create_dir_all(root.join(d))?;
        }
        set_mode(&root.join("tmp"), 0o1777)?;
        for rel in &self.files {
            let dst = root.join(rel);
            if let Some(parent) = dst.parent() {
                std::fs::create_dir_all(parent)?;
                set_mode(parent, 0o755)?;
            }
            if std::fs::hard_link(self.dir.join(rel), &dst).is_err() {
                std::fs::copy(self.dir.join(rel), &dst)?;
            }
        }
        for a in &self.applets {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(a))?;
        }
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        )?;
        std::fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
        Ok(())
    }
}
