//! Walks of a folder by descriptors: listings, downlink sources, build contexts and the sizes
//! the limits count. A walk opens each folder from the open folder above it, without following a
//! symlink, and hands each entry with that open folder, so whoever reads an entry opens it from
//! there too: nothing is looked up again by path.

use std::collections::{BTreeMap, HashSet};
use std::ffi::{CStr, CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use wire::FileEntry;

use super::dir::{self, Meta, VolumeDir};
use rustix::io::Errno;

use super::{MAX_DEPTH, MAX_WALK, PathError, RelPath};

/// One entry met by [`visit`].
pub(crate) struct Entry<'a> {
    /// Path below the walk's start, `/`-separated, without a leading `/` (a name that is not
    /// UTF-8 shown with replacement characters).
    pub(crate) rel: &'a str,
    /// The same path as the folder holds it.
    pub(crate) rel_os: &'a OsStr,
    /// What it is, not following a symlink.
    pub(crate) meta: Meta,
    /// The open folder that holds it, and its name there.
    pub(crate) dir: BorrowedFd<'a>,
    pub(crate) name: &'a CStr,
}

/// One entry met by [`walk`].
#[derive(Debug)]
pub(crate) struct WalkEntry {
    pub(crate) rel: String,
    pub(crate) meta: Meta,
}

/// How a walk ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Walked {
    /// Every entry within the depth asked for was met.
    Whole,
    /// The entry cap cut the walk short.
    Capped,
    /// A folder could not be read (other than gone or swapped for a symlink or a file
    /// meanwhile), or lay below [`MAX_DEPTH`] levels when more were asked for: what it holds was
    /// not met. The first such reason.
    Incomplete(String),
}

impl Walked {
    /// Whether every entry within the depth asked for was met.
    pub(crate) fn is_whole(&self) -> bool {
        *self == Walked::Whole
    }
}

/// A folder being walked: its open descriptor, its path and its entries left.
struct Frame {
    fd: OwnedFd,
    rel: String,
    rel_os: OsString,
    children: std::vec::IntoIter<(CString, Meta)>,
    /// Levels left below this folder, itself counted.
    levels: u32,
}

impl Frame {
    fn read(fd: OwnedFd, rel: String, rel_os: OsString, levels: u32) -> io::Result<Frame> {
        let mut children = Vec::new();
        for (name, _) in dir::entries(fd.as_fd())? {
            match dir::stat_at(fd.as_fd(), &name) {
                Ok(meta) => children.push((name, meta)),
                // Gone since the folder was read: skipped.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Frame {
            fd,
            rel,
            rel_os,
            children: children.into_iter(),
            levels,
        })
    }
}

/// Whether an error opening or reading a folder met by a walk means only that it is no longer
/// there as a folder (gone, or swapped for a symlink or a file since it was seen).
fn changed_meanwhile(e: &io::Error) -> bool {
    [Errno::NOENT, Errno::LOOP, Errno::NOTDIR]
        .iter()
        .any(|n| e.raw_os_error() == Some(n.raw_os_error()))
}

/// Walks the open folder `start` depth-first in name order (each folder's entry before what it
/// holds), never following a symlink, down to `max_depth` levels (1: the entries of `start`
/// only; at most [`MAX_DEPTH`]) and at most `cap` entries, handing each to `f`. A folder gone
/// or swapped for a symlink or a file meanwhile is skipped; one that cannot be read otherwise
/// (`EMFILE`, `EACCES`, `EIO`), or that lies at [`MAX_DEPTH`] levels and holds something when
/// more levels were asked for, makes the walk [`Walked::Incomplete`], and it goes on with the
/// rest. An error of `f` ends the walk.
pub(crate) fn visit(
    start: BorrowedFd<'_>,
    max_depth: u32,
    cap: usize,
    f: &mut dyn FnMut(&Entry<'_>) -> io::Result<()>,
) -> io::Result<Walked> {
    let levels = max_depth.min(MAX_DEPTH);
    if levels == 0 {
        return Ok(Walked::Whole);
    }
    let mut incomplete: Option<String> = None;
    let mut note = |why: String| {
        tracing::debug!(%why, "a walk could not read a folder");
        incomplete.get_or_insert(why);
    };
    let mut stack = Vec::new();
    match dir::open_dir_at(start, c".")
        .and_then(|fd| Frame::read(fd, String::new(), OsString::new(), levels))
    {
        Ok(frame) => stack.push(frame),
        Err(e) if changed_meanwhile(&e) => {}
        Err(e) => note(format!("/: {e}")),
    }
    let mut count = 0usize;
    while let Some(top) = stack.last_mut() {
        let Some((name, meta)) = top.children.next() else {
            stack.pop();
            continue;
        };
        if count >= cap {
            return Ok(Walked::Capped);
        }
        count += 1;
        let shown = name.to_string_lossy();
        let (rel, rel_os) = if top.rel.is_empty() {
            (
                shown.into_owned(),
                OsStr::from_bytes(name.to_bytes()).to_owned(),
            )
        } else {
            let mut os = top.rel_os.clone();
            os.push("/");
            os.push(OsStr::from_bytes(name.to_bytes()));
            (format!("{}/{shown}", top.rel), os)
        };
        f(&Entry {
            rel: &rel,
            rel_os: &rel_os,
            meta,
            dir: top.fd.as_fd(),
            name: &name,
        })?;
        if !meta.is_dir() {
            continue;
        }
        if top.levels > 1 {
            let below = top.levels - 1;
            let shown = format!("/{rel}");
            match dir::open_dir_at(top.fd.as_fd(), &name)
                .and_then(|fd| Frame::read(fd, rel, rel_os, below))
            {
                Ok(frame) => stack.push(frame),
                Err(e) if changed_meanwhile(&e) => {
                    tracing::debug!(error = %e, "skipped a folder changed meanwhile")
                }
                Err(e) => note(format!("{shown}: {e}")),
            }
        } else if max_depth > MAX_DEPTH {
            // Cut by the walk's own bound, not the depth asked for: what lies below is unseen.
            let holds = dir::open_dir_at(top.fd.as_fd(), &name)
                .and_then(|fd| dir::entries(fd.as_fd()))
                .map(|entries| !entries.is_empty());
            match holds {
                Ok(false) => {}
                Err(e) if changed_meanwhile(&e) => {}
                Ok(true) | Err(_) => note(format!(
                    "/{rel} holds folders nested deeper than {MAX_DEPTH} levels, which the agent does not walk"
                )),
            }
        }
    }
    Ok(match incomplete {
        Some(why) => Walked::Incomplete(why),
        None => Walked::Whole,
    })
}

/// The entries [`visit`] meets, and how the walk ended.
pub(crate) fn walk(start: &VolumeDir, max_depth: u32, cap: usize) -> (Vec<WalkEntry>, Walked) {
    let mut out = Vec::new();
    let walked = visit(start.fd(), max_depth, cap, &mut |e| {
        out.push(WalkEntry {
            rel: e.rel.to_string(),
            meta: e.meta,
        });
        Ok(())
    })
    .unwrap_or_else(|e| Walked::Incomplete(e.to_string()));
    (out, walked)
}

/// Lists `dir` to `depth` levels as [`FileEntry`]s whose paths start with `prefix` (`""` for the
/// volume root, giving `/a/b`). Returns the entries and how the walk ended.
pub(crate) fn list(
    dir: &VolumeDir,
    prefix: &str,
    depth: u32,
    cap: usize,
) -> (Vec<FileEntry>, Walked) {
    let (entries, walked) = walk(dir, depth, cap);
    let mut files: Vec<FileEntry> = entries
        .into_iter()
        .map(|e| FileEntry {
            path: format!("{prefix}/{}", e.rel),
            size: if e.meta.is_dir() { 0 } else { e.meta.len },
            is_dir: e.meta.is_dir(),
            modified_ms: e.meta.modified_ms,
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    (files, walked)
}

/// A file a downlink source names: its path below the volume root, shown and as held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) rel: String,
    path: OsString,
}

impl Found {
    /// The components of its path, to open it beneath the volume root.
    pub(crate) fn parts(&self) -> Vec<&OsStr> {
        self.path
            .as_bytes()
            .split(|b| *b == b'/')
            .map(OsStr::from_bytes)
            .collect()
    }
}

/// Expands a downlink source (a path or a shell wildcard pattern, relative to the volume root)
/// into the regular files it names, sorted by path. A folder stands for every file under it.
/// Symlinks are never followed: one named outright is refused, one met in a folder or by a
/// pattern is skipped (with a warning). `..`, absolute patterns and NUL are refused; a pattern
/// matching nothing gives an empty list.
pub(crate) fn expand(root: &VolumeDir, source: &str) -> Result<Vec<Found>, PathError> {
    let pattern = RelPath::parse(source).map_err(PathError::Invalid)?;
    let parts = pattern.parts();
    let is_wild = |p: &str| p.contains(['*', '?', '[']);
    let literal = parts.iter().take_while(|p| !is_wild(p)).count();
    let base = RelPath::from_parts(parts[..literal].to_vec());
    let base_rel = parts[..literal].join("/");
    let mut found = BTreeMap::new();
    if literal == parts.len() {
        if base.is_root() {
            return Err(PathError::Invalid(
                "the volume root is not a file; name files or a pattern".into(),
            ));
        }
        match root.stat(&base)? {
            None => {}
            Some(m) if m.is_symlink() => {
                return Err(PathError::Link(format!(
                    "{} is a symlink, and the agent follows no symlink in a volume",
                    base.display()
                )));
            }
            Some(m) if m.is_dir() => {
                let dir = root.open_dir(&base)?;
                let (prefix, prefix_os) = (base_rel.clone(), OsString::from(&base_rel));
                collect(&dir, &prefix, &prefix_os, &mut |_| true, &mut found)?;
            }
            Some(m) if m.is_file() => {
                found.insert(
                    base_rel.clone(),
                    Found {
                        rel: base_rel.clone(),
                        path: OsString::from(&base_rel),
                    },
                );
            }
            // A FIFO, a socket: nothing to send.
            Some(_) => {}
        }
        return Ok(found.into_values().collect());
    }
    let dir = match root.open_dir(&base) {
        Ok(dir) => dir,
        // Nothing there, or not a folder: the pattern matches nothing.
        Err(PathError::NotFound(_) | PathError::Invalid(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let rest = parts[literal..].join("/");
    let matcher = glob::Pattern::new(&rest)
        .map_err(|e| PathError::Invalid(format!("pattern {source:?}: {e}")))?;
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let mut matches = |rel: &str| matcher.matches_with(rel, options);
    collect(
        &dir,
        &base_rel,
        &OsString::from(&base_rel),
        &mut matches,
        &mut found,
    )?;
    Ok(found.into_values().collect())
}

/// Adds to `found` every regular file below `dir` whose path (below `dir`) `matches`, or lies
/// in a folder that does; the paths kept start with `prefix`.
fn collect(
    dir: &VolumeDir,
    prefix: &str,
    prefix_os: &OsStr,
    matches: &mut dyn FnMut(&str) -> bool,
    found: &mut BTreeMap<String, Found>,
) -> Result<(), PathError> {
    let join = |rel: &str, rel_os: &OsStr| {
        if prefix.is_empty() {
            (rel.to_string(), rel_os.to_owned())
        } else {
            let mut os = prefix_os.to_owned();
            os.push("/");
            os.push(rel_os);
            (format!("{prefix}/{rel}"), os)
        }
    };
    // The folders matched so far: what is below them counts whatever its name.
    let mut folders: HashSet<String> = HashSet::new();
    let walked = visit(dir.fd(), u32::MAX, MAX_WALK, &mut |e| {
        let in_folder = e
            .rel
            .match_indices('/')
            .any(|(i, _)| folders.contains(&e.rel[..i]));
        if !in_folder && !matches(e.rel) {
            return Ok(());
        }
        if e.meta.is_dir() {
            folders.insert(e.rel.to_string());
        } else if e.meta.is_symlink() {
            tracing::warn!(
                path = e.rel,
                "skipped a symlink: the agent follows no symlink in a volume"
            );
        } else if e.meta.is_file() {
            let (rel, path) = join(e.rel, e.rel_os);
            found.insert(rel.clone(), Found { rel, path });
        }
        Ok(())
    })
    .map_err(|e| PathError::Io(format!("/{prefix}: {e}")))?;
    match walked {
        Walked::Whole => Ok(()),
        // Not every file it names was found: nothing is sent rather than a part of it.
        Walked::Capped => Err(PathError::Io(format!(
            "/{prefix}: more than {MAX_WALK} entries to look through"
        ))),
        Walked::Incomplete(why) => Err(PathError::Io(format!(
            "not every file could be looked at: {why}"
        ))),
    }
}
