//! Why an archive is refused: an opaque error with a kind and a message naming what and where.

use std::fmt;

/// Why an archive was refused. The message names the member, image or layer concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveError {
    kind: ErrorKind,
    message: String,
}

/// The kinds of [`ArchiveError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file could not be read (an I/O error from the reader or writer).
    Io,
    /// Not a tar archive, or a member's data runs past the end of the file.
    NotTar,
    /// Something the engine needs is absent: `manifest.json`, a config, a layer, a blob.
    Missing,
    /// A metadata member is not what its format says: bad JSON, wrong shapes, bad digests, a
    /// layer count that differs from the config's DiffIDs, an empty manifest.
    Invalid,
    /// A member that could make the engine read something other than what was judged: a name
    /// that is not a clean relative path or holds a NUL, a member twice, a link that leaves the
    /// archive, points nowhere, serves as a folder or climbs (`..`) out of a symlink, a member
    /// that is neither file, folder nor link, a metadata file that is not a regular file, a
    /// config or blob whose content does not hash to its name, a header or JSON object that the
    /// engine's readers read otherwise than this crate (a pax record repeated, a name prefix
    /// tar readers disagree on, a JSON key twice ignoring case).
    Unsafe,
    /// An image config carries ONBUILD triggers: they would run in a later build that names the
    /// image in `FROM`, so onboard a tenant image with triggers is not usable.
    OnBuild,
    /// A bound of this crate is exceeded (see the `MAX_*` constants).
    TooLarge,
    /// The archive holds no image tagged as the one wanted ([`judge_load`](crate::judge_load)).
    NotTagged,
    /// The archive given to [`write_unnamed`](crate::write_unnamed) is not the one inspected.
    Changed,
}

impl ArchiveError {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> ArchiveError {
        ArchiveError {
            kind,
            message: message.into(),
        }
    }

    /// What kind of refusal this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the kind.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ArchiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ArchiveError {}

pub(crate) fn io(what: &str) -> impl Fn(std::io::Error) -> ArchiveError + '_ {
    move |e| ArchiveError::new(ErrorKind::Io, format!("{what}: {e}"))
}

pub(crate) fn not_tar(e: std::io::Error) -> ArchiveError {
    ArchiveError::new(ErrorKind::NotTar, format!("not a tar archive: {e}"))
}

pub(crate) fn missing(message: impl Into<String>) -> ArchiveError {
    ArchiveError::new(ErrorKind::Missing, message)
}

pub(crate) fn invalid(message: impl Into<String>) -> ArchiveError {
    ArchiveError::new(ErrorKind::Invalid, message)
}

pub(crate) fn refused(message: impl Into<String>) -> ArchiveError {
    ArchiveError::new(ErrorKind::Unsafe, format!("{}; refused", message.into()))
}

pub(crate) fn too_large(message: impl Into<String>) -> ArchiveError {
    ArchiveError::new(ErrorKind::TooLarge, message)
}
