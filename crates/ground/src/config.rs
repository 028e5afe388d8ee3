use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How to run the ground segment: where it keeps its state and which systems it talks to.
#[derive(Debug, Clone)]
pub struct GroundConfig {
    /// Holds `ground.sqlite` (unless `database_url` names another database), the blob store
    /// (`blobs/sha256/<aa>/<hex>`, which is also every link's object directory), each system's
    /// link session (`link/<system>/`) and scratch space (`tmp/`).
    pub data_dir: PathBuf,
    /// The database: `sqlite://…` or `postgres://…` (docs/scale-out.md); `None` for
    /// `ground.sqlite` in `data_dir`.
    pub database_url: Option<String>,
    /// An S3-compatible store holding every blob, shared by replicas (docs/scale-out.md); `None`
    /// for the data directory alone. The data directory's blob folder is then a cache of it.
    pub s3: Option<S3Settings>,
    /// One link endpoint per system (satellite or Engineering Model).
    pub systems: Vec<SystemLink>,
    /// The ground's plan-signing key: every plan is signed with it, and flight agents run only
    /// plans that verify against its public key.
    pub plan_signer: wire::PlanSigner,
}

/// How a ground replica shares the links with the others on its database
/// (docs/scale-out.md). The default suits one ground alone: it takes every lease at once.
#[derive(Debug, Clone, Default)]
pub struct LinkOwnership {
    /// The replica's name in the link leases, unique among the replicas; `None` for this host's
    /// name and the data directory (so the same ground started again takes its own leases back
    /// at once).
    pub replica: Option<String>,
    /// Holds each system's link session in `<dir>/<system>/`: shared by the replicas (a
    /// filesystem they all mount), since the replica that takes a link over resumes its
    /// session; `None` for `DATA_DIR/link`.
    pub state_dir: Option<PathBuf>,
}

impl LinkOwnership {
    /// The replica's name and the state directory, defaults filled in.
    pub(crate) async fn resolve(
        self,
        data_dir: &std::path::Path,
    ) -> Result<crate::lease::Ownership, crate::Error> {
        let replica = match self.replica {
            Some(r) if r.is_empty() || r.len() > 200 => {
                return Err(crate::Error::invalid(
                    "the replica name must be 1 to 200 bytes",
                ));
            }
            Some(r) => r,
            None => {
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .map(|h| h.trim().to_string())
                    .unwrap_or_else(|_| "localhost".into());
                let dir = tokio::fs::canonicalize(data_dir).await?;
                format!("{host}:{}", dir.display())
            }
        };
        Ok(crate::lease::Ownership {
            replica,
            state_dir: self.state_dir.unwrap_or_else(|| data_dir.join("link")),
        })
    }
}

/// An S3-compatible blob store. Each setting left `None` is taken from the standard `AWS_*`
/// environment variables (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), then from AWS's defaults.
#[derive(Clone)]
pub struct S3Settings {
    /// `s3://BUCKET` or `s3://BUCKET/PREFIX`: blobs are the keys `PREFIX/sha256/<aa>/<hex>`.
    pub url: String,
    /// The service's URL (`http://127.0.0.1:9000`); AWS S3 when none is given anywhere.
    pub endpoint: Option<String>,
    /// The region to sign requests for.
    pub region: Option<String>,
    /// The access key's id.
    pub access_key_id: Option<String>,
    /// The access key's secret.
    pub secret_access_key: Option<String>,
    /// A session token, with temporary credentials.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret and the token are never printed.
        f.debug_struct("S3Settings")
            .field("url", &self.url)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
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
    /// The satellite's link key: every packet either way is sealed under it.
    pub key: wire::LinkKey,
    /// The rate to pace sending at, in bit/s, or none (unpaced).
    pub rate_bits_per_sec: Option<u64>,
    /// When the link is up: always (the Engineering Model) or during contact windows.
    pub contact: ::link::Contact,
    /// Where the system flies and which stations reach it: passes, contact plans and uplink ETAs
    /// come from it. `None` for a system that is always in contact (the Engineering Model).
    pub orbit: Option<orbit::SystemOrbit>,
    /// The system's link settings (the systems file's).
    pub link_settings: ::link::LinkSettings,
}

/// How long the HTTP server waits on a client (`docs/api.md`, "Timeouts"), so that a client
/// that sends slowly or stops (a slow-loris) cannot hold a connection, a request or an upload's
/// staging folder for ever. [`HttpTimeouts::STANDARD`] is what `serve` uses unless
/// [`Ground::with_http_timeouts`](crate::Ground::with_http_timeouts) says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpTimeouts {
    /// A request's headers must arrive within this; so must the next request's on a kept-alive
    /// connection, which is closed otherwise.
    pub headers: Duration,
    /// A request body fails (`408`, connection closed) when this passes without a byte of it.
    pub body_idle: Duration,
    /// ... and when, after this grace, it has come slower than `body_min_rate` on average: the
    /// whole body must have arrived by `body_grace + bytes / body_min_rate` after its headers
    /// (time the ground itself spends not reading is not counted).
    pub body_grace: Duration,
    /// The slowest average rate of a body after its grace, in bytes per second.
    pub body_min_rate: u64,
    /// A connection whose client takes no byte of an answer for this long is closed.
    pub write_stall: Duration,
}

impl HttpTimeouts {
    /// 30 s for headers and between bytes of a body, a body averaging 8 KiB/s after its first
    /// minute, 60 s for a client to take any of an answer.
    pub const STANDARD: HttpTimeouts = HttpTimeouts {
        headers: Duration::from_secs(30),
        body_idle: Duration::from_secs(30),
        body_grace: Duration::from_secs(60),
        body_min_rate: 8 << 10,
        write_stall: Duration::from_secs(60),
    };
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
    pub(crate) const PATH_BYTES: usize = wire::names::MAX_PATH_BYTES;
    /// Rows in one listing page, when the caller does not ask for fewer.
    pub(crate) const PAGE_DEFAULT: i64 = 1000;
    /// Rows in one listing page, at most.
    pub(crate) const PAGE_MAX: i64 = 10_000;
    /// Tasks in one operation.
    pub(crate) const TASKS: usize = 1000;
    /// How long a plan stays valid after it was issued, in milliseconds: a flight agent refuses
    /// it later (by its own clock). A week covers days without a contact and a long uplink
    /// queue; a plan lost and re-sent after that fails its execution with a clear error instead
    /// of running a week late.
    pub(crate) const PLAN_VALIDITY_MS: u64 = wire::PLAN_VALIDITY_MS;
    /// How long a login token lasts, in milliseconds.
    pub(crate) const SESSION_MS: i64 = 24 * 3600 * 1000;
}
