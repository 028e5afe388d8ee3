use std::net::SocketAddr;
use std::path::PathBuf;

/// How to run the ground segment: where it keeps its state and which systems it talks to.
#[derive(Debug, Clone)]
pub struct GroundConfig {
    /// Holds `ground.sqlite` and the blob store (`blobs/sha256/<aa>/<hex>`), plus scratch
    /// folders (`tmp/`, `spool/`).
    pub data_dir: PathBuf,
    /// One link endpoint per system (satellite or Engineering Model).
    pub systems: Vec<SystemLink>,
}

/// The link to one system.
#[derive(Debug, Clone)]
pub struct SystemLink {
    /// The system's name, as operations and executions name it (`em`).
    pub name: String,
    /// The local UDP address of the ground's endpoint.
    pub bind: SocketAddr,
    /// The link emulator's ground-side port (or the flight agent itself).
    pub link: SocketAddr,
    /// Send rate limit in bytes per second, or none.
    pub rate_bytes_per_sec: Option<u64>,
}

/// The bounds the ground enforces. Every queue, body and listing has one.
pub(crate) mod limits {
    /// Bytes of file content in one upload.
    pub(crate) const UPLOAD_BYTES: u64 = 5 << 30;
    /// Entries (files and folders) in one upload.
    pub(crate) const UPLOAD_ENTRIES: usize = 100_000;
    /// Raw request body of an upload: the content plus tar headers or multipart framing.
    pub(crate) const UPLOAD_BODY: usize = (5 << 30) + (256 << 20);
    /// JSON and YAML request bodies.
    pub(crate) const SMALL_BODY: usize = 1 << 20;
    /// A namespace or volume path, in bytes.
    pub(crate) const PATH_BYTES: usize = 4096;
    /// Rows in one listing page, when the caller does not ask for fewer.
    pub(crate) const PAGE_DEFAULT: i64 = 1000;
    /// Rows in one listing page, at most.
    pub(crate) const PAGE_MAX: i64 = 10_000;
    /// Tasks in one operation.
    pub(crate) const TASKS: usize = 1000;
    /// An object received from a system (a downlinked file).
    pub(crate) const OBJECT_BYTES: u64 = 16 << 30;
    /// Digests waiting to be sent to one system.
    pub(crate) const PENDING_OBJECTS: usize = 100_000;
    /// Plans waiting to be sent to one system.
    pub(crate) const PENDING_PLANS: usize = 256;
    /// How long a login token lasts, in milliseconds.
    pub(crate) const SESSION_MS: i64 = 24 * 3600 * 1000;
}
