use std::fmt;

/// What kind of failure an [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The Docker Engine could not be reached, or failed to inspect an image.
    Docker,
    /// A stand-in could not be made: no recipe for a catalogue name, a host file missing (for
    /// example no static busybox), or its build failed.
    Seed,
}

/// An error of [`seed_bases`](crate::seed_bases). Opaque: its [`kind`](Error::kind) says what
/// failed and its message says what and where, lower-case, with the cause appended.
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

    pub(crate) fn docker(what: &str, cause: impl fmt::Display) -> Error {
        Error::new(ErrorKind::Docker, format!("docker: {what}: {cause}"))
    }
}

impl From<flight::Error> for Error {
    /// Connecting to the engine through the agent's adapter failed.
    fn from(e: flight::Error) -> Error {
        Error::new(ErrorKind::Docker, e.to_string())
    }
}
