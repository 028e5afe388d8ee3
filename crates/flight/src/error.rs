use std::fmt;
use std::path::Path;

/// What kind of failure an [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The Docker Engine could not be reached, or refused or failed a request.
    Docker,
    /// A file or folder of the state or volumes directory could not be read or written.
    Io,
    /// The link endpoint could not be started, or it stopped.
    Link,
    /// Input that cannot be accepted: a name, a path, an archive.
    Invalid,
}

/// An error of the flight agent. Opaque: its [`kind`](Error::kind) says what failed and its
/// message says what and where, lower-case, with the cause appended.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
        }
    }

    /// `what` failed on `path` because of `cause`.
    pub(crate) fn io(what: &str, path: &Path, cause: impl fmt::Display) -> Error {
        Error::new(ErrorKind::Io, format!("{what} {}: {cause}", path.display()))
    }

    pub(crate) fn docker(what: &str, cause: impl fmt::Display) -> Error {
        Error::new(ErrorKind::Docker, format!("docker: {what}: {cause}"))
    }
}
