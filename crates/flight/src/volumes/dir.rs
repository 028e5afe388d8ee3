//! A folder of a volume held open, and every operation on what lies below it, by file
//! descriptor.
//!
//! A tenant's pod mounts its volume and can change it while the agent works in it: swap a folder
//! for a symlink to `/` between the agent's look at a path and its use. So nothing here checks a
//! path and then uses it. A path is resolved by the kernel, beneath an open folder, in one call:
//! `openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`, which refuses
//! (`ELOOP`, `EXDEV`) any symlink met on the way and anything that would leave the folder. Where
//! the kernel has no `openat2` (`ENOSYS`, before Linux 5.6), each component is opened in turn
//! with `openat(O_NOFOLLOW | O_DIRECTORY)` from the folder before it, which follows no symlink
//! either; never a plain path. What is then done to the last component is done relative to its
//! open parent: created with `O_CREAT | O_EXCL | O_NOFOLLOW`, renamed with `renameat2`
//! (`RENAME_NOREPLACE` where nothing may be replaced), removed with `unlinkat`, looked at with
//! `fstatat(AT_SYMLINK_NOFOLLOW)`. A folder the pod moves meanwhile stays inside the volume (a
//! pod cannot rename across its mount), so an open folder never leads outside.
//!
//! The agent follows no symlink in a volume, even one that stays inside: a path through one is
//! refused with an error naming the link, and a walk lists a symlink as a symlink.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, RenameFlags, ResolveFlags};
use rustix::io::Errno;

use super::{Owner, PathError, RelPath, Volumes};

/// Set once `openat2` answered `ENOSYS`: the component-by-component walk is used from then on.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

#[cfg(test)]
thread_local! {
    /// Makes this thread resolve by the component walk, as on a kernel without `openat2`.
    pub(crate) static FORCE_WALK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// What a volume's entry is, as `fstatat` without following saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    kind: FileType,
    /// The logical size (what a reader gets; a sparse file's holes count).
    pub(crate) len: u64,
    /// The permission bits.
    pub(crate) mode: u32,
    /// Last modified, milliseconds since the Unix epoch (0 before it).
    pub(crate) modified_ms: u64,
    pub(crate) uid: u32,
}

impl Meta {
    fn of(st: &rfs::Stat) -> Meta {
        let ms = i128::from(st.st_mtime) * 1000 + i128::from(st.st_mtime_nsec) / 1_000_000;
        Meta {
            kind: FileType::from_raw_mode(st.st_mode),
            len: u64::try_from(st.st_size).unwrap_or(0),
            mode: st.st_mode & 0o7777,
            modified_ms: u64::try_from(ms).unwrap_or(0),
            uid: st.st_uid,
        }
    }

    pub(crate) fn is_dir(&self) -> bool {
        self.kind == FileType::Directory
    }

    pub(crate) fn is_file(&self) -> bool {
        self.kind == FileType::RegularFile
    }

    pub(crate) fn is_symlink(&self) -> bool {
        self.kind == FileType::Symlink
    }
}

/// An open folder of a volume (its root, or a folder below it), the base of every path below it.
#[derive(Debug)]
pub(crate) struct VolumeDir {
    fd: OwnedFd,
}

const DIR: OFlags = OFlags::RDONLY.union(OFlags::DIRECTORY);
/// A file opened for reading: `O_NONBLOCK` so that a FIFO a pod put there cannot hold the open.
const READ: OFlags = OFlags::RDONLY.union(OFlags::NONBLOCK);

impl VolumeDir {
    /// Opens the folder `parts` below `dir` (components already checked), following no symlink.
    pub(crate) fn open_below(dir: BorrowedFd<'_>, parts: &[&OsStr]) -> Result<VolumeDir, Errno> {
        open_beneath(dir, parts, DIR).map(|fd| VolumeDir { fd })
    }

    /// Opens the folder at `path` itself, not following a symlink there. Only for paths the
    /// agent alone writes (the volumes folder, the object store), never inside a volume.
    pub(crate) fn open_path(path: &std::path::Path) -> io::Result<VolumeDir> {
        let fd = rfs::openat(
            rfs::CWD,
            path,
            DIR | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(VolumeDir { fd })
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The folder `rel` below this one.
    pub(crate) fn open_dir(&self, rel: &RelPath) -> Result<VolumeDir, PathError> {
        let parts = rel.os_parts();
        open_beneath(self.fd(), &parts, DIR)
            .map(|fd| VolumeDir { fd })
            .map_err(|e| self.refused(&parts, &rel.display(), e))
    }

    /// The regular file `rel` below this one, open for reading, and what it is. Anything else
    /// there (a folder, a FIFO, a symlink) is refused.
    pub(crate) fn open_file(&self, rel: &RelPath) -> Result<(File, Meta), PathError> {
        let parts = rel.os_parts();
        self.open_file_parts(&parts, &rel.display())
    }

    pub(crate) fn open_file_parts(
        &self,
        parts: &[&OsStr],
        shown: &str,
    ) -> Result<(File, Meta), PathError> {
        let fd =
            open_beneath(self.fd(), parts, READ).map_err(|e| self.refused_file(parts, shown, e))?;
        let meta = rfs::fstat(&fd)
            .map(|st| Meta::of(&st))
            .map_err(|e| PathError::Io(format!("{shown}: {e}")))?;
        if !meta.is_file() {
            let what = if meta.is_dir() {
                "a folder"
            } else {
                "not a regular file"
            };
            return Err(PathError::NotFound(format!(
                "{shown} is {what}, not a file"
            )));
        }
        Ok((File::from(fd), meta))
    }

    /// What is at `rel` (not following a symlink there); `None` when nothing is, or a folder on
    /// the way is missing.
    pub(crate) fn stat(&self, rel: &RelPath) -> Result<Option<Meta>, PathError> {
        if rel.is_root() {
            return rfs::fstat(&self.fd)
                .map(|st| Some(Meta::of(&st)))
                .map_err(|e| PathError::Io(format!("/: {e}")));
        }
        let (dir, name) = match self.parent(rel) {
            Ok(found) => found,
            Err(PathError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        match rfs::statat(dir.fd(), name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(Meta::of(&st))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(PathError::Io(format!("{}: {e}", rel.display()))),
        }
    }

    /// The folder holding `rel` and the last component's name. The root has no parent.
    fn parent<'r>(&self, rel: &'r RelPath) -> Result<(VolumeDir, &'r OsStr), PathError> {
        let parts = rel.os_parts();
        let Some((last, parents)) = parts.split_last() else {
            return Err(PathError::Invalid(
                "the volume root is not a file or a folder below it".into(),
            ));
        };
        let dir = open_beneath(self.fd(), parents, DIR).map_err(|e| match e {
            Errno::NOENT => {
                PathError::NotFound(format!("{}: no such file or folder", rel.display()))
            }
            e => self.refused(parents, &rel.display(), e),
        })?;
        Ok((VolumeDir { fd: dir }, last))
    }

    /// The folder holding `rel`, made with its missing ancestors (owned by `owner`), and the last
    /// component's name.
    fn parent_made<'r>(
        &self,
        volumes: &Volumes,
        rel: &'r RelPath,
        owner: Owner,
    ) -> Result<(VolumeDir, &'r OsStr), PathError> {
        match self.parent(rel) {
            Err(PathError::NotFound(_)) => {}
            found => return found,
        }
        let parts = rel.os_parts();
        let (last, parents) = parts.split_last().expect("parent() refused the root");
        let shown = rel.display();
        let mut dir = self.reopen()?;
        for (i, part) in parents.iter().enumerate() {
            let made = match rfs::mkdirat(dir.fd(), *part, Mode::from_raw_mode(0o755)) {
                Ok(()) => true,
                Err(Errno::EXIST) => false,
                Err(e) => return Err(PathError::Io(format!("{shown}: cannot make a folder: {e}"))),
            };
            let next = rfs::openat(
                dir.fd(),
                *part,
                DIR | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| self.refused(&parents[..=i], &shown, e))?;
            if made {
                volumes.chown_fd(&next, owner);
            }
            dir = VolumeDir { fd: next };
        }
        Ok((dir, last))
    }

    fn reopen(&self) -> Result<VolumeDir, PathError> {
        rfs::openat(self.fd(), c".", DIR | OFlags::CLOEXEC, Mode::empty())
            .map(|fd| VolumeDir { fd })
            .map_err(|e| PathError::Io(format!("cannot open the volume: {e}")))
    }

    /// Writes `rel` from `source`, atomically (a new file beside it, synced, then renamed over
    /// it: a symlink there is replaced, never followed; a folder there is refused), with the
    /// permission bits `mode` (`0o777` of them) and owned by `owner`. Missing folders on the way
    /// are made. Returns the bytes written.
    pub(crate) fn write_file(
        &self,
        volumes: &Volumes,
        rel: &RelPath,
        owner: Owner,
        source: &mut dyn Read,
        mode: u32,
    ) -> Result<u64, PathError> {
        let shown = rel.display();
        let (dir, name) = self.parent_made(volumes, rel, owner)?;
        let is_folder = || PathError::Invalid(format!("{shown} is a folder"));
        if rfs::statat(dir.fd(), name, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
        {
            return Err(is_folder());
        }
        let tmp = format!(".orbitdock-tmp-{:016x}", rand::random::<u64>());
        let gone = || {
            PathError::NotFound(format!(
                "cannot write {shown}: its folder was removed meanwhile"
            ))
        };
        let fd = rfs::openat(
            dir.fd(),
            tmp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| match e {
            Errno::NOENT => gone(),
            e => PathError::Io(format!("cannot write {shown}: {e}")),
        })?;
        let mut file = File::from(fd);
        let written = (|| -> io::Result<u64> {
            let n = io::copy(source, &mut file)?;
            rfs::fchmod(&file, Mode::from_raw_mode(mode & 0o777))?;
            volumes.chown_fd(&file, owner);
            file.sync_all()?;
            rfs::renameat(dir.fd(), tmp.as_str(), dir.fd(), name)?;
            Ok(n)
        })();
        match written {
            Ok(n) => {
                // The rename is durable once the folder is synced; a failure leaves a whole file.
                let _ = rfs::fsync(dir.fd());
                Ok(n)
            }
            Err(e) => {
                let _ = rfs::unlinkat(dir.fd(), tmp.as_str(), AtFlags::empty());
                match e.raw_os_error() {
                    Some(n) if n == Errno::ISDIR.raw_os_error() => return Err(is_folder()),
                    Some(n) if n == Errno::NOENT.raw_os_error() => return Err(gone()),
                    _ => {}
                }
                Err(PathError::Io(format!("cannot write {shown}: {e}")))
            }
        }
    }

    /// Removes `rel`: a file or a symlink (not its target), or a folder and all it holds.
    pub(crate) fn remove(&self, rel: &RelPath) -> Result<(), PathError> {
        let shown = rel.display();
        let (dir, name) = self.parent(rel)?;
        let st = rfs::statat(dir.fd(), name, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| match e {
            Errno::NOENT => PathError::NotFound(format!("{shown}: no such file or folder")),
            e => PathError::Io(format!("{shown}: {e}")),
        })?;
        let failed = |e: io::Error| match e.kind() {
            io::ErrorKind::NotFound => {
                PathError::NotFound(format!("{shown}: no such file or folder"))
            }
            _ => PathError::Io(format!("cannot delete {shown}: {e}")),
        };
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            remove_folder(dir.fd(), name).map_err(failed)
        } else {
            rfs::unlinkat(dir.fd(), name, AtFlags::empty()).map_err(|e| failed(e.into()))
        }
    }

    /// Removes everything this folder holds.
    pub(crate) fn clear(&self) -> io::Result<()> {
        empty_folder(self.fd())
    }

    /// Moves `from` to `to` by one rename, never replacing anything at `to` (the kernel refuses
    /// it: `RENAME_NOREPLACE`); the missing folders above `to` are made first, owned by `owner`.
    /// Returns whether a folder moved. A symlink moves as a link.
    pub(crate) fn rename_new(
        &self,
        volumes: &Volumes,
        from: &RelPath,
        to: &RelPath,
        owner: Owner,
    ) -> Result<bool, PathError> {
        let (from_dir, from_name) = self.parent(from)?;
        let st =
            rfs::statat(from_dir.fd(), from_name, AtFlags::SYMLINK_NOFOLLOW).map_err(
                |e| match e {
                    Errno::NOENT => {
                        PathError::NotFound(format!("{}: no such file or folder", from.display()))
                    }
                    e => PathError::Io(format!("{}: {e}", from.display())),
                },
            )?;
        let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
        let exists = || PathError::Exists(to.display());
        // Refused before any folder is made for it.
        if self.stat(to).is_ok_and(|m| m.is_some()) {
            return Err(exists());
        }
        let (to_dir, to_name) = self.parent_made(volumes, to, owner)?;
        let into_itself = || {
            PathError::Invalid(format!(
                "cannot move {} into itself ({})",
                from.display(),
                to.display()
            ))
        };
        let moved = rfs::renameat_with(
            from_dir.fd(),
            from_name,
            to_dir.fd(),
            to_name,
            RenameFlags::NOREPLACE,
        );
        match moved {
            Ok(()) => {}
            Err(Errno::EXIST) | Err(Errno::NOTEMPTY) => return Err(exists()),
            // A filesystem without `RENAME_NOREPLACE`, or a folder moved under itself (which a
            // plain rename refuses too): looked at, then renamed. Only the tenant's own pod can
            // put something at `to` in between, and then it is its own file that is replaced.
            Err(Errno::INVAL) => {
                if rfs::statat(to_dir.fd(), to_name, AtFlags::SYMLINK_NOFOLLOW).is_ok() {
                    return Err(exists());
                }
                match rfs::renameat(from_dir.fd(), from_name, to_dir.fd(), to_name) {
                    Ok(()) => {}
                    Err(Errno::INVAL) => return Err(into_itself()),
                    Err(e) => return Err(self.move_failed(from, to, e)),
                }
            }
            Err(e) => return Err(self.move_failed(from, to, e)),
        }
        // Durable once both folders' entries are synced.
        let _ = rfs::fsync(from_dir.fd());
        let _ = rfs::fsync(to_dir.fd());
        Ok(is_dir)
    }

    fn move_failed(&self, from: &RelPath, to: &RelPath, e: Errno) -> PathError {
        if e == Errno::NOENT {
            return PathError::NotFound(format!(
                "cannot move {} to {}: it or the folder it goes in was removed meanwhile",
                from.display(),
                to.display()
            ));
        }
        PathError::Io(format!(
            "cannot move {} to {}: {e}",
            from.display(),
            to.display()
        ))
    }

    /// Renames the file `from` to `to` (replacing a file there), both folders existing; a
    /// missing `from` is not an error (`Ok(false)`), anything but a regular file there is left.
    pub(crate) fn rename_file_over(&self, from: &RelPath, to: &RelPath) -> Result<bool, PathError> {
        let (from_dir, from_name) = match self.parent(from) {
            Ok(found) => found,
            Err(PathError::NotFound(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
        match rfs::statat(from_dir.fd(), from_name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile => {}
            Ok(_) | Err(Errno::NOENT) => return Ok(false),
            Err(e) => return Err(PathError::Io(format!("{}: {e}", from.display()))),
        }
        let (to_dir, to_name) = self.parent(to)?;
        rfs::renameat(from_dir.fd(), from_name, to_dir.fd(), to_name)
            .map_err(|e| self.move_failed(from, to, e))?;
        Ok(true)
    }

    /// Why the folder `parts` could not be opened: the component that is a symlink or not a
    /// folder, named; `shown` is the path as the tenant wrote it.
    fn refused(&self, parts: &[&OsStr], shown: &str, e: Errno) -> PathError {
        self.refused_as(parts, shown, e, true)
    }

    /// [`Self::refused`] for a file: its last component is not expected to be a folder.
    fn refused_file(&self, parts: &[&OsStr], shown: &str, e: Errno) -> PathError {
        self.refused_as(parts, shown, e, false)
    }

    fn refused_as(&self, parts: &[&OsStr], shown: &str, e: Errno, folder: bool) -> PathError {
        match e {
            Errno::NOENT => PathError::NotFound(format!("{shown}: no such file or folder")),
            Errno::LOOP | Errno::NOTDIR | Errno::XDEV => match diagnose(self.fd(), parts, folder) {
                Some(Found::Link(at)) => PathError::Link(format!(
                    "{shown}: {at} is a symlink, and the agent follows no symlink in a volume"
                )),
                Some(Found::NotDir(at)) => {
                    PathError::Invalid(format!("{shown}: {at} is not a folder"))
                }
                Some(Found::Missing) => {
                    PathError::NotFound(format!("{shown}: no such file or folder"))
                }
                // Changed again since the kernel refused it.
                None => PathError::Link(format!(
                    "{shown}: a component was a symlink or not a folder when opened ({e}; it \
                     changed since), and the agent follows no symlink in a volume"
                )),
            },
            e => PathError::Io(format!("{shown}: {e}")),
        }
    }
}

/// What stands in the way of a path, found by [`diagnose`].
enum Found {
    /// The component shown (`/a/b`) is a symlink.
    Link(String),
    /// It is not a folder, and something lies below it.
    NotDir(String),
    Missing,
}

/// Looks at each component of `parts` below `dir` in turn, for the error message only; the last
/// is in the way when it is not a folder only if `folder` (a folder was to be opened).
fn diagnose(dir: BorrowedFd<'_>, parts: &[&OsStr], folder: bool) -> Option<Found> {
    let mut cur: Option<OwnedFd> = None;
    let mut shown = String::new();
    for (i, part) in parts.iter().enumerate() {
        shown.push('/');
        shown.push_str(&part.to_string_lossy());
        let at = cur.as_ref().map_or(dir, |f| f.as_fd());
        let st = match rfs::statat(at, *part, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Some(Found::Missing),
            Err(_) => return None,
        };
        let last = i + 1 == parts.len();
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Symlink => return Some(Found::Link(shown)),
            FileType::Directory => {}
            // A file where a file was to be opened: nothing in the way (now).
            _ if last && !folder => return None,
            _ => return Some(Found::NotDir(shown)),
        }
        cur = Some(
            rfs::openat(
                at,
                *part,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .ok()?,
        );
    }
    None
}

/// Opens `parts` (checked components: no `..`, no `/`) beneath `dir` with `flags`, following no
/// symlink on the way or at the end and never leaving `dir`. The empty path is `dir` itself.
pub(crate) fn open_beneath(
    dir: BorrowedFd<'_>,
    parts: &[&OsStr],
    flags: OFlags,
) -> Result<OwnedFd, Errno> {
    let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    if parts.is_empty() {
        return rfs::openat(dir, c".", flags, Mode::empty());
    }
    if !use_walk() {
        let mut path = OsString::new();
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                path.push("/");
            }
            path.push(part);
        }
        let resolve =
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        // `EAGAIN`: a rename elsewhere raced the lookup (the kernel asks for a retry).
        for _ in 0..8 {
            match rfs::openat2(dir, path.as_os_str(), flags, Mode::empty(), resolve) {
                Err(Errno::AGAIN) => continue,
                Err(Errno::NOSYS) => {
                    tracing::warn!(
                        "the kernel has no openat2: volume paths are resolved one folder at a time"
                    );
                    NO_OPENAT2.store(true, Ordering::Relaxed);
                    break;
                }
                done => return done,
            }
        }
        if !NO_OPENAT2.load(Ordering::Relaxed) {
            return Err(Errno::AGAIN);
        }
    }
    walk_open(dir, parts, flags)
}

fn use_walk() -> bool {
    #[cfg(test)]
    if FORCE_WALK.with(|f| f.get()) {
        return true;
    }
    NO_OPENAT2.load(Ordering::Relaxed)
}

/// The fallback of [`open_beneath`]: one component at a time, each a folder opened without
/// following a symlink, the last with `flags`.
fn walk_open(dir: BorrowedFd<'_>, parts: &[&OsStr], flags: OFlags) -> Result<OwnedFd, Errno> {
    let Some((last, parents)) = parts.split_last() else {
        return rfs::openat(dir, c".", flags, Mode::empty());
    };
    let mut cur: Option<OwnedFd> = None;
    for part in parents {
        let at = cur.as_ref().map_or(dir, |f| f.as_fd());
        cur = Some(rfs::openat(
            at,
            *part,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?);
    }
    let at = cur.as_ref().map_or(dir, |f| f.as_fd());
    rfs::openat(at, *last, flags, Mode::empty())
}

/// Removes the folder `name` of `parent` and everything in it, by descriptors.
fn remove_folder(parent: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    match rfs::openat(
        parent,
        name,
        DIR | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => empty_folder(fd.as_fd())?,
        // No longer a folder (swapped meanwhile): removed as what it is now.
        Err(Errno::LOOP) | Err(Errno::NOTDIR) => {
            return Ok(rfs::unlinkat(parent, name, AtFlags::empty())?);
        }
        Err(e) => return Err(e.into()),
    }
    Ok(rfs::unlinkat(parent, name, AtFlags::REMOVEDIR)?)
}

/// A folder [`empty_folder`] went down into: its name in the folder above, which it is
/// (device and inode), and the folders of the folder above still to remove.
struct Level {
    name: CString,
    id: (u64, u64),
    folders: Vec<CString>,
}

fn identity(st: &rfs::Stat) -> (u64, u64) {
    (st.st_dev, st.st_ino)
}

/// Removes what the open folder `dir` holds but its folders, and returns those (a symlink or a
/// file goes, whatever replaced it meanwhile; never followed).
fn clear_files(dir: BorrowedFd<'_>) -> io::Result<Vec<CString>> {
    let mut folders = Vec::new();
    for (name, kind) in entries(dir)? {
        if kind == Some(FileType::Directory) {
            folders.push(name);
            continue;
        }
        match rfs::unlinkat(dir, name.as_c_str(), AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(Errno::ISDIR) => folders.push(name),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(folders)
}

/// Removes everything in the open folder `dir`, however deep its folders nest, with two
/// descriptors open at most: it goes down one folder at a time, each opened beneath the one
/// above without following a symlink, and back up by `..`, checking that the folder it comes
/// back to is the one it left (by device and inode) before removing the emptied one by name. A
/// folder moved meanwhile (only the tenant's pod can, and only within the volume) stops it with
/// an error. What is held per level is the names of the folders still to remove there.
fn empty_folder(dir: BorrowedFd<'_>) -> io::Result<()> {
    let mut path: Vec<Level> = Vec::new();
    let mut folders = clear_files(dir)?;
    // The folder being emptied: `dir` itself while `path` is empty.
    let mut cur: Option<OwnedFd> = None;
    loop {
        let at = cur.as_ref().map_or(dir, |fd| fd.as_fd());
        if let Some(name) = folders.pop() {
            let fd = match rfs::openat(
                at,
                name.as_c_str(),
                DIR | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => continue,
                // No longer a folder (swapped meanwhile): removed as what it is now.
                Err(Errno::LOOP) | Err(Errno::NOTDIR) => {
                    match rfs::unlinkat(at, name.as_c_str(), AtFlags::empty()) {
                        Ok(()) | Err(Errno::NOENT) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(e) => return Err(e.into()),
            };
            let id = identity(&rfs::fstat(&fd)?);
            let below = clear_files(fd.as_fd())?;
            path.push(Level {
                name,
                id,
                folders: std::mem::replace(&mut folders, below),
            });
            cur = Some(fd);
            continue;
        }
        // Every folder in it gone: once more for what came meanwhile, then up.
        let late = clear_files(at)?;
        if !late.is_empty() {
            folders = late;
            continue;
        }
        let Some(done) = path.pop() else {
            return Ok(());
        };
        // Back up to the folder above: `dir` itself at the top, else by `..`, which must be
        // the folder this one was opened from.
        let up = match path.last() {
            Some(above) => {
                let up = rfs::openat(at, c"..", DIR | OFlags::CLOEXEC, Mode::empty())?;
                if identity(&rfs::fstat(&up)?) != above.id {
                    return Err(moved());
                }
                Some(up)
            }
            None => None,
        };
        let parent = up.as_ref().map_or(dir, |fd| fd.as_fd());
        let removed = match rfs::statat(parent, done.name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if identity(&st) == done.id => {
                rfs::unlinkat(parent, done.name.as_c_str(), AtFlags::REMOVEDIR)
            }
            Ok(_) => return Err(moved()),
            Err(e) => Err(e),
        };
        match removed {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
        folders = done.folders;
        cur = up;
    }
}

fn moved() -> io::Error {
    io::Error::other("a folder was moved while it was being deleted; try again")
}

/// The entries of the open folder `dir` (not `.` nor `..`), with their type when the folder
/// says it without a look (`d_type`), sorted by name.
pub(crate) fn entries(dir: BorrowedFd<'_>) -> io::Result<Vec<(CString, Option<FileType>)>> {
    let mut out = Vec::new();
    for entry in rfs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let kind = match entry.file_type() {
            FileType::Unknown => None,
            kind => Some(kind),
        };
        out.push((name.to_owned(), kind));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// What `name` in `dir` is, not following a symlink.
pub(crate) fn stat_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Meta> {
    Ok(Meta::of(&rfs::statat(
        dir,
        name,
        AtFlags::SYMLINK_NOFOLLOW,
    )?))
}

/// Opens the regular file `name` of `dir` for reading, not following a symlink.
pub(crate) fn open_file_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<File> {
    let fd = rfs::openat(
        dir,
        name,
        READ | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    if FileType::from_raw_mode(rfs::fstat(&fd)?.st_mode) != FileType::RegularFile {
        return Err(io::Error::other("no longer a regular file"));
    }
    Ok(File::from(fd))
}

/// The target of the symlink `name` of `dir`, as written (never followed).
pub(crate) fn read_link_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<PathBuf> {
    let target = rfs::readlinkat(dir, name, Vec::new())?;
    Ok(PathBuf::from(OsString::from_vec(target.into_bytes())))
}

/// Opens the folder `name` of `dir`, not following a symlink.
pub(crate) fn open_dir_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    Ok(rfs::openat(
        dir,
        name,
        DIR | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}
