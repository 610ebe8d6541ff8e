//! Reading and writing cgroupfs control files with typed errors. Each write
//! is a single write(2) of the whole value: cgroupfs parses per write call.

use std::io::Write;
use std::path::Path;

use crate::Error;

/// Write `value` to `dir/file`.
pub(crate) fn write(dir: &Path, file: &str, value: &str) -> Result<(), Error> {
    let path = dir.join(file);
    // O_TRUNC is ignored by cgroupfs; it keeps plain-file fakes in unit tests exact.
    crate::sys::open(&path, libc::O_WRONLY | libc::O_TRUNC)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|source| Error::Write {
            path,
            value: value.to_string(),
            source,
        })
}

/// Several values to one control file through a single open descriptor, one write(2) per value
/// (cgroupfs parses each write on its own): the device rules go in this way, where opening the
/// file once per rule cost a stat and an open each.
pub(crate) fn write_each(
    field: &'static str,
    dir: &Path,
    file: &str,
    values: &[String],
) -> Result<(), Error> {
    if values.is_empty() {
        return Ok(());
    }
    require(field, dir, file)?;
    let path = dir.join(file);
    let mut f = crate::sys::open(&path, libc::O_WRONLY).map_err(|source| Error::Write {
        path: path.clone(),
        value: values.join("\n"),
        source,
    })?;
    for v in values {
        f.write_all(v.as_bytes()).map_err(|source| Error::Write {
            path: path.clone(),
            value: v.clone(),
            source,
        })?;
    }
    Ok(())
}

/// Write a resource: the file must exist, otherwise [`Error::MissingFile`] names it.
pub(crate) fn write_resource(
    field: &'static str,
    dir: &Path,
    file: &str,
    value: &str,
) -> Result<(), Error> {
    require(field, dir, file)?;
    write(dir, file, value)
}

/// Fail with [`Error::MissingFile`] unless `dir/file` exists.
pub(crate) fn require(field: &'static str, dir: &Path, file: &str) -> Result<(), Error> {
    let path = dir.join(file);
    if path.exists() {
        Ok(())
    } else {
        Err(Error::MissingFile { field, path })
    }
}

/// The entries of `dir`, or `None` when it does not exist (any more: systemd may have removed it).
pub(crate) fn read_dir_if_exists(dir: &Path) -> Result<Option<std::fs::ReadDir>, Error> {
    match std::fs::read_dir(dir) {
        Ok(e) => Ok(Some(e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::ReadDir {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// Read `dir/file` as text.
pub(crate) fn read(dir: &Path, file: &str) -> Result<String, Error> {
    let path = dir.join(file);
    std::fs::read_to_string(&path).map_err(|source| Error::Read { path, source })
}

/// Parse a single number; "max" reads as u64::MAX.
pub(crate) fn parse_u64(dir: &Path, file: &str, text: &str) -> Result<u64, Error> {
    let t = text.trim();
    if t == "max" {
        return Ok(u64::MAX);
    }
    t.parse().map_err(|_| Error::ParseValue {
        path: dir.join(file),
        content: t.to_string(),
    })
}

/// Read a file holding one number ("max" = u64::MAX).
pub(crate) fn read_u64(dir: &Path, file: &str) -> Result<u64, Error> {
    parse_u64(dir, file, &read(dir, file)?)
}

/// Read an optional single-number file: None when it does not exist.
pub(crate) fn read_u64_opt(dir: &Path, file: &str) -> Result<Option<u64>, Error> {
    if dir.join(file).exists() {
        read_u64(dir, file).map(Some)
    } else {
        Ok(None)
    }
}

/// Parse "key value" lines (memory.stat, cpu.stat, cgroup.events) into pairs.
pub(crate) fn key_values(text: &str) -> impl Iterator<Item = (&str, u64)> {
    text.lines().filter_map(|l| {
        let (k, v) = l.split_once(' ')?;
        Some((k, v.trim().parse().ok()?))
    })
}

/// Reads a whole file in as few read(2)s as its size allows, without asking for the size first:
/// `fs::read_to_string` asks fstat(2) and lseek(2), and for a `/proc` file, whose size reads 0,
/// then reads in steps growing from 32 bytes (ten reads for this host's mountinfo).
pub(crate) fn read_whole(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = crate::sys::open(path, libc::O_RDONLY)?;
    // On the stack first: a heap buffer of a page is a fresh mapping from musl's mallocng each
    // time (mmap(2), then munmap(2) and its TLB shootdown), and a typical host's mountinfo fits.
    let mut first = [0u8; 4096];
    let mut len = 0;
    while len < first.len() {
        match file.read(&mut first[len..]) {
            Ok(0) => return utf8(first[..len].to_vec()),
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let mut buf = first.to_vec();
    loop {
        if len == buf.len() {
            buf.resize(len * 2, 0);
        }
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    utf8(buf)
}

fn utf8(bytes: Vec<u8>) -> std::io::Result<String> {
    String::from_utf8(bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pids.max"), "").unwrap();
        write_resource("linux.resources.pids.limit", dir.path(), "pids.max", "12").unwrap();
        assert_eq!(read_u64(dir.path(), "pids.max").unwrap(), 12);
        let err =
            write_resource("linux.resources.cpu.idle", dir.path(), "cpu.idle", "1").unwrap_err();
        assert!(matches!(
            err,
            Error::MissingFile {
                field: "linux.resources.cpu.idle",
                ..
            }
        ));
        assert!(err.to_string().contains("cpu.idle"));
        assert_eq!(read_u64_opt(dir.path(), "nope").unwrap(), None);
        assert_eq!(parse_u64(dir.path(), "x", "max\n").unwrap(), u64::MAX);
        assert!(parse_u64(dir.path(), "x", "abc").is_err());
    }

    #[test]
    fn parses_key_values() {
        let kv: Vec<_> = key_values("cache 10\nrss 20\nbad\nfrozen 1\n").collect();
        assert_eq!(kv, [("cache", 10), ("rss", 20), ("frozen", 1)]);
    }
}
