//! Content-addressed object storage: one layout and one streaming hasher for the ground's
//! blobs, the link's received objects and the flight agent's objects.
//!
//! An object is a file named by the sha256 of its content, at `<root>/<aa>/<hex>` (the first two
//! hex digits fan the objects out over 256 folders). It appears there only complete: it is
//! written and hashed elsewhere in the same filesystem ([`ObjectLayout::temp_path`]), synced,
//! and then renamed under its digest ([`ObjectLayout::publish`]); the folders that rename
//! changed are synced ([`DirSync`]) before anything may refer to the object, so a reference that
//! survives a crash never names an object that did not.
//!
//! [`HashingWriter`] hashes whatever passes through it, with a size limit; [`hash_reader`] and
//! [`hash_file`] hash a stream or a file. [`set_aside`] moves an unreadable state file out of
//! the way, so that a process whose state is corrupt still comes up. Everything here is blocking
//! I/O on `std::fs`: async callers run it on a blocking thread. No clock is read but by
//! [`set_aside`], which stamps the name it gives.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest as _, Sha256};
use wire::Digest;

/// The name prefix of temporary files inside the object root; never an object.
const TEMP_PREFIX: &str = ".tmp-";

/// Where objects live: `<root>/<aa>/<hex>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectLayout {
    root: PathBuf,
}

impl ObjectLayout {
    /// The layout under `root` (nothing is created).
    pub fn new(root: PathBuf) -> ObjectLayout {
        ObjectLayout { root }
    }

    /// Creates the root folder, removes temporary files left by an earlier run, and moves any
    /// object still at `<root>/<hex>` (the flight agent's layout before the fan-out) to
    /// `<root>/<aa>/<hex>`, durably, so an upgrade re-sends nothing the store already holds.
    pub fn open(root: PathBuf) -> io::Result<ObjectLayout> {
        let layout = ObjectLayout::new(root);
        fs::create_dir_all(&layout.root)?;
        let mut dirs = DirSync::default();
        for entry in fs::read_dir(&layout.root)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(TEMP_PREFIX) {
                let _ = fs::remove_file(entry.path());
            } else if let Ok(digest) = name.parse::<Digest>()
                && name == digest.hex()
                && entry.file_type().is_ok_and(|t| t.is_file())
            {
                let target = layout.path(&digest);
                let parent = target.parent().unwrap_or(&layout.root).to_path_buf();
                fs::create_dir_all(&parent)?;
                fs::rename(entry.path(), &target)?;
                dirs.add(&parent);
                dirs.add(&layout.root);
            }
        }
        dirs.sync()?;
        Ok(layout)
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where an object lives, whether or not it exists.
    pub fn path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.root.join(&hex[..2]).join(hex)
    }

    /// Whether the object exists.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Its size, when it exists.
    pub fn size(&self, digest: &Digest) -> Option<u64> {
        fs::metadata(self.path(digest))
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len())
    }

    /// A fresh path for a temporary file inside the root (same filesystem as the objects, so
    /// [`ObjectLayout::publish`] is a rename); [`ObjectLayout::open`] removes leftovers.
    pub fn temp_path(&self) -> PathBuf {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        self.root
            .join(format!("{TEMP_PREFIX}{}-{n}", std::process::id()))
    }

    /// Moves `file`, complete and synced, whose content has `digest`, under its name, and adds
    /// the folders whose entries changed to `dirs`. The object is durable once `dirs` is
    /// synced, which must happen before anything that refers to it is committed. When the
    /// object exists already, `file` is removed (and its folder still synced, as a concurrent
    /// publisher may not have synced it yet). When `file` lies on another filesystem, it is
    /// copied beside the destination and synced first, so a crash never leaves a truncated
    /// object under its digest.
    pub fn publish(&self, file: &Path, digest: &Digest, dirs: &mut DirSync) -> io::Result<()> {
        let target = self.path(digest);
        let parent = target.parent().unwrap_or(&self.root).to_path_buf();
        // The fan-out folder may be new: its entry in the root must be durable too.
        dirs.add(&self.root);
        dirs.add(&parent);
        if target.is_file() {
            fs::remove_file(file)?;
            return Ok(());
        }
        fs::create_dir_all(&parent)?;
        if fs::rename(file, &target).is_err() {
            let tmp = self.temp_path();
            let copied = (|| {
                fs::copy(file, &tmp)?;
                File::open(&tmp)?.sync_all()?;
                fs::rename(&tmp, &target)
            })();
            if let Err(e) = copied {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
            fs::remove_file(file)?;
        }
        Ok(())
    }

    /// Stores `bytes` as an object, durably. For small contents and tests.
    pub fn put(&self, bytes: &[u8]) -> io::Result<Digest> {
        fs::create_dir_all(&self.root)?;
        let tmp = self.temp_path();
        let written = write_new(&tmp, &mut &bytes[..], u64::MAX).map_err(CopyError::into_io)?;
        let mut dirs = DirSync::default();
        self.publish(&tmp, &written.digest, &mut dirs)?;
        dirs.sync()?;
        Ok(written.digest)
    }
}

/// Folders to sync (`fsync` on the directory) so that renames into them survive a crash.
#[derive(Debug, Clone, Default)]
pub struct DirSync {
    dirs: BTreeSet<PathBuf>,
}

impl DirSync {
    /// Adds a folder; each distinct folder is synced once.
    pub fn add(&mut self, dir: &Path) {
        if !self.dirs.contains(dir) {
            self.dirs.insert(dir.to_path_buf());
        }
    }

    /// The folders to sync, in order.
    pub fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.dirs.iter().map(PathBuf::as_path)
    }

    /// Whether there is nothing to sync.
    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }

    /// Syncs every folder added.
    pub fn sync(self) -> io::Result<()> {
        for dir in &self.dirs {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

/// The digest and size of what was hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hashed {
    /// The sha256 of the content.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// Why a hashed copy stopped.
#[derive(Debug)]
pub enum CopyError {
    /// The content went over the limit (in bytes).
    TooLarge(u64),
    /// Reading or writing failed.
    Io(io::Error),
}

impl CopyError {
    /// As an `io::Error` (`TooLarge` becomes `InvalidData`).
    pub fn into_io(self) -> io::Error {
        match self {
            CopyError::Io(e) => e,
            CopyError::TooLarge(limit) => io::Error::new(
                io::ErrorKind::InvalidData,
                format!("more than {limit} bytes"),
            ),
        }
    }
}

impl std::fmt::Display for CopyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CopyError::TooLarge(limit) => write!(f, "more than {limit} bytes"),
            CopyError::Io(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for CopyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CopyError::Io(e) => Some(e),
            CopyError::TooLarge(_) => None,
        }
    }
}

impl From<io::Error> for CopyError {
    fn from(e: io::Error) -> CopyError {
        CopyError::Io(e)
    }
}

/// A writer that hashes what passes through it and refuses to go over a limit.
#[derive(Debug)]
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
    limit: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`; at most `limit` bytes may be written.
    pub fn new(inner: W, limit: u64) -> HashingWriter<W> {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            size: 0,
            limit,
        }
    }

    /// Writes all of `data`, or fails with [`CopyError::TooLarge`] before writing any of it
    /// when it would go over the limit.
    pub fn push(&mut self, data: &[u8]) -> Result<(), CopyError> {
        let size = self.size.saturating_add(data.len() as u64);
        if size > self.limit {
            return Err(CopyError::TooLarge(self.limit));
        }
        self.inner.write_all(data)?;
        self.hasher.update(data);
        self.size = size;
        Ok(())
    }

    /// The bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The digest and size of everything written, and the inner writer.
    pub fn finish(self) -> (Hashed, W) {
        (
            Hashed {
                digest: Digest(self.hasher.finalize().into()),
                size: self.size,
            },
            self.inner,
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.push(buf).map_err(CopyError::into_io)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Copies `from` into `to`, hashing as it goes; fails once more than `limit` bytes were read.
pub fn copy_hashed(
    from: &mut dyn Read,
    to: &mut dyn Write,
    limit: u64,
) -> Result<Hashed, CopyError> {
    let mut out = HashingWriter::new(to, limit);
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        out.push(&buf[..n])?;
    }
    Ok(out.finish().0)
}

/// The digest and size of a stream's content.
pub fn hash_reader(from: &mut dyn Read) -> io::Result<Hashed> {
    copy_hashed(from, &mut io::sink(), u64::MAX).map_err(CopyError::into_io)
}

/// The digest and size of a file's content.
pub fn hash_file(path: &Path) -> io::Result<Hashed> {
    hash_reader(&mut File::open(path)?)
}

/// Copies `reader` into a new file at `path` (which must not exist), hashing as it goes, and
/// syncs it. Fails once more than `limit` bytes have been read; the partial file is left for
/// the caller to remove (it lies in a staging place).
pub fn write_new(path: &Path, reader: &mut dyn Read, limit: u64) -> Result<Hashed, CopyError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    let hashed = copy_hashed(reader, &mut file, limit)?;
    file.sync_all()?;
    Ok(hashed)
}

/// Moves a state file that cannot be read or parsed aside, as `<file>.corrupt-<unix seconds>`
/// beside it (`-<n>` added when that name is taken), and syncs its folder; returns the new path.
/// The caller logs it and starts without the file: what was lost is recovered from the other
/// side of the link. A name of this form is never one a loader takes for a state file.
pub fn set_aside(path: &Path) -> io::Result<PathBuf> {
    set_aside_at(path, SystemTime::now())
}

/// [`set_aside`], with a warning that names the file, `what` it is and why (`error`); a file
/// that cannot even be renamed is named too. The caller starts without it either way.
pub fn set_aside_with_warning(path: &Path, what: &str, error: &dyn std::fmt::Display) {
    match set_aside(path) {
        Ok(to) => tracing::warn!(
            file = %path.display(),
            set_aside_as = %to.display(),
            %error,
            "unreadable {what} set aside; starting without it"
        ),
        Err(e) => tracing::warn!(
            file = %path.display(),
            %error,
            set_aside_error = %e,
            "unreadable {what} could not be set aside; starting without it"
        ),
    }
}

/// [`set_aside`] with the time given.
pub fn set_aside_at(path: &Path, now: SystemTime) -> io::Result<PathBuf> {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: no file name to set aside", path.display()),
        )
    })?;
    let name = name.to_string_lossy();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    for n in 0..1000u32 {
        let target = dir.join(if n == 0 {
            format!("{name}.corrupt-{secs}")
        } else {
            format!("{name}.corrupt-{secs}-{n}")
        });
        if fs::symlink_metadata(&target).is_ok() {
            continue;
        }
        fs::rename(path, &target)?;
        File::open(dir)?.sync_all()?;
        return Ok(target);
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("{}: 1000 copies already set aside", path.display()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_named_by_their_digest_under_a_fan_out() {
        let dir = tempfile::tempdir().unwrap();
        let layout = ObjectLayout::open(dir.path().join("objects")).unwrap();
        let d = layout.put(b"hello").unwrap();
        assert_eq!(d, Digest::of(b"hello"));
        assert!(layout.path(&d).ends_with(format!("2c/{}", d.hex())));
        assert_eq!(fs::read(layout.path(&d)).unwrap(), b"hello");
        assert_eq!(layout.size(&d), Some(5));
        assert!(layout.contains(&d));
        // Publishing it again drops the second copy.
        assert_eq!(layout.put(b"hello").unwrap(), d);
        let names: Vec<_> = fs::read_dir(layout.root())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["2c"]);
    }

    #[test]
    fn a_publish_lists_the_folders_to_sync_once() {
        let dir = tempfile::tempdir().unwrap();
        let layout = ObjectLayout::open(dir.path().to_path_buf()).unwrap();
        let mut dirs = DirSync::default();
        for content in [&b"a"[..], b"b", b"a"] {
            let tmp = layout.temp_path();
            let h = write_new(&tmp, &mut &content[..], 10).unwrap();
            layout.publish(&tmp, &h.digest, &mut dirs).unwrap();
        }
        let listed: Vec<&Path> = dirs.dirs().collect();
        let a = layout.path(&Digest::of(b"a"));
        let b = layout.path(&Digest::of(b"b"));
        let mut want = vec![layout.root(), a.parent().unwrap(), b.parent().unwrap()];
        want.sort();
        want.dedup();
        assert_eq!(listed, want);
        dirs.sync().unwrap();
    }

    #[test]
    fn objects_of_the_flat_layout_are_adopted() {
        let dir = tempfile::tempdir().unwrap();
        let d = Digest::of(b"old object");
        fs::write(dir.path().join(d.hex()), b"old object").unwrap();
        fs::write(dir.path().join("not-an-object"), b"x").unwrap();
        let layout = ObjectLayout::open(dir.path().to_path_buf()).unwrap();
        assert!(layout.contains(&d));
        assert!(!dir.path().join(d.hex()).exists());
        assert!(dir.path().join("not-an-object").exists());
    }

    #[test]
    fn the_limit_is_enforced_and_temporaries_are_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let layout = ObjectLayout::open(dir.path().to_path_buf()).unwrap();
        let tmp = layout.temp_path();
        let err = write_new(&tmp, &mut &[0u8; 11][..], 10).unwrap_err();
        assert!(matches!(err, CopyError::TooLarge(10)), "{err}");
        assert!(tmp.exists());
        ObjectLayout::open(dir.path().to_path_buf()).unwrap();
        assert!(!tmp.exists());
    }

    #[test]
    fn hashing_writer_counts_and_hashes() {
        let mut w = HashingWriter::new(Vec::new(), 100);
        w.write_all(b"hel").unwrap();
        w.write_all(b"lo").unwrap();
        let (h, inner) = w.finish();
        assert_eq!(inner, b"hello");
        assert_eq!(
            h,
            Hashed {
                digest: Digest::of(b"hello"),
                size: 5
            }
        );
        assert_eq!(hash_reader(&mut &b"hello"[..]).unwrap(), h);
    }

    #[test]
    fn sets_a_file_aside_under_a_fresh_name() {
        let dir = tempfile::tempdir().unwrap();
        let at = UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let p = dir.path().join("counters.json");
        fs::write(&p, b"{garbage").unwrap();
        let a = set_aside_at(&p, at).unwrap();
        assert_eq!(a, dir.path().join("counters.json.corrupt-1700000000"));
        assert!(!p.exists());
        assert_eq!(fs::read(&a).unwrap(), b"{garbage");
        fs::write(&p, b"again").unwrap();
        let b = set_aside_at(&p, at).unwrap();
        assert_eq!(b, dir.path().join("counters.json.corrupt-1700000000-1"));
        assert_eq!(fs::read(&a).unwrap(), b"{garbage", "the first copy stays");
        assert!(set_aside(&p).is_err(), "nothing left to set aside");
    }
}
