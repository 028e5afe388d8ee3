//! Small filesystem helpers: atomic writes and timestamps.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Writes `data` to `path` atomically: a temporary file in the same folder, fsync, rename, fsync
/// of the folder. A reader sees the old content or the new, never a part.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    write_atomic_from(path, &mut &data[..], None).map(|_| ())
}

/// Like [`write_atomic`], copying from `source` and setting the permission bits to `mode` (only
/// the `0o777` bits are kept: no setuid, setgid or sticky bit from a plan). Returns the bytes
/// written.
pub(crate) fn write_atomic_from(
    path: &Path,
    source: &mut dyn Read,
    mode: Option<u32>,
) -> io::Result<u64> {
    let tmp = temp_sibling(path);
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        let n = io::copy(source, &mut file)?;
        if let Some(mode) = mode {
            file.set_permissions(fs::Permissions::from_mode(mode & 0o777))?;
        }
        file.flush()?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        Ok(n)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    if let Some(parent) = path.parent() {
        // Persist the rename itself; a failure here leaves a complete file, so it is not fatal.
        if let Ok(dir) = File::open(parent) {
            let _ = dir.sync_all();
        }
    }
    result
}

/// A fresh name next to `path` for a temporary file: `.<name>.tmp-<random>`.
pub(crate) fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let suffix: u64 = rand::random();
    path.with_file_name(format!(".{name}.tmp-{suffix:016x}"))
}

/// Milliseconds since the Unix epoch of `t` (0 before the epoch).
pub(crate) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    unix_ms(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_atomically_with_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_atomic(&p, b"one").unwrap();
        let n = write_atomic_from(&p, &mut &b"two!"[..], Some(0o4755)).unwrap();
        assert_eq!(n, 4);
        assert_eq!(fs::read(&p).unwrap(), b"two!");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o7777,
            0o755
        );
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
