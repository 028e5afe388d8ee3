//! The orbitdock ground segment: the HTTP API and dashboard, the database, and the executor that
//! turns operations into plans and follows them through the link.
//!
//! `ground` owns everything a tenant touches on the ground: users and sessions, namespaces and
//! their versioned files (content-addressed blobs), operations (validated YAML, see
//! `docs/operations.md`), executions and their tasks, and the mirror of what each system holds
//! onboard. It talks to each system through one `link` endpoint: it sends plans as
//! `wire::Message`s, answers the system's requests for objects with object transfers, and records
//! the events that come back. Downlinked objects are committed by the link straight into the blob
//! store, often after the event that lists them; a downlink lands once all its files are here.
//!
//! It never talks to Docker and never runs a task itself: the flight agent does, and is the
//! source of truth for onboard state. Clustergate-2's EM API (`docs/em-api.md`) is served beside
//! our own: each of its calls is an operation generated, applied and executed like any other.
//!
//! A flying system's [`SystemOrbit`] (elements and stations) gives its passes, its ground track
//! and a predicted completion for every transfer in its uplink queue; `orbit` computes them from
//! the instant the ground's clock gives ([`Ground::with_clock`]).
//!
//! The types that matter: [`Ground`] (open it with a [`GroundConfig`], then [`Ground::app`] is the
//! whole HTTP surface and [`serve`] runs it, or [`serve_tls`] over HTTPS with a [`TlsConfig`]), [`ApiError`] (every HTTP failure, rendered as the
//! error JSON of `docs/api.md`, an `api::ErrorBody`; every other body is a type of the `api`
//! crate too) and [`Diagnostic`] (one problem in an operation).

mod accounts;
mod apply;
mod approval;
mod auth;
mod blobs;
mod cancel;
mod config;
mod dashboard;
mod db;
mod declared;
mod downlink;
mod elements;
mod em;
mod encoder;
mod error;
mod executor;
mod http;
mod lease;
mod mirror;
mod operation;
mod passes;
mod planner;
mod preflight_check;
mod queue;
mod replicas;
mod reports;
mod system_link;
mod systems_view;
mod telemetry;
mod telemetry_plot;
#[cfg(test)]
mod test_core;
mod time;
mod triggers;
mod upload;
mod views;

pub use approval::Approval;
pub use auth::Role;
pub use config::{GroundConfig, HttpTimeouts, LinkOwnership, S3Settings, SystemLink};
pub use error::{ApiError, Error, ErrorKind};
pub use http::tls::{TlsConfig, TlsError, TlsErrorKind};
pub use operation::{Diagnostic, Severity};
pub use orbit::SystemOrbit;
pub use passes::predict_passes;
pub use preflight_check::PreflightFinding;
pub use system_link::MessageCounters;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use crate::blobs::BlobStore;
use crate::db::Db;

/// The ground segment: a cloneable set of handles (database pool, blob store, one link per
/// system). Every clone shares them; the links stop when the last clone drops.
#[derive(Clone)]
pub struct Ground {
    core: Arc<Core>,
    systems: Arc<BTreeMap<String, lease::SystemHandle>>,
    /// Each system's orbit, stations and cached contact plan.
    orbits: Arc<passes::Orbits>,
    /// What passes and ETAs take as now.
    clock: Arc<dyn Fn() -> SystemTime + Send + Sync>,
    /// Signs every plan before it is stored and sent.
    signer: Arc<wire::PlanSigner>,
    /// The Clustergate-2 EM API's lock and bounds.
    em: Arc<em::Em>,
    /// Failed logins, per user and address, per address and per user.
    logins: Arc<auth::LoginThrottle>,
    /// How long the HTTP server waits on a client.
    http_timeouts: HttpTimeouts,
    /// What the systems file declares each system to be (`declared::default_for` the others).
    declared: Arc<BTreeMap<String, wire::SystemDescription>>,
    /// Each system's approval gate, as the systems file sets it (`Approval::default_for` the
    /// others).
    approvals: Arc<BTreeMap<String, Approval>>,
    /// On PostgreSQL, the tasks telling other replicas of changes and hearing theirs: they stop
    /// with the last clone.
    _replicas: Option<Arc<replicas::Tasks>>,
}

/// What the HTTP handlers and the link handlers share.
pub(crate) struct Core {
    pub(crate) db: Db,
    pub(crate) blobs: BlobStore,
    /// Views computed once and served until an event changes them (the dashboard's Home).
    pub(crate) views: views::Views,
}

impl std::fmt::Debug for Ground {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ground")
            .field("systems", &self.systems.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Ground {
    /// Opens (or creates) the database (SQLite in WAL mode, unless `database_url` names
    /// PostgreSQL), runs its migrations, prepares the blob store, lands the downlinks whose files
    /// came down before a restart, and binds one link endpoint per system (its session in
    /// `link/<system>/`) with the tasks that serve it: alone on its database, it takes every
    /// system's lease at once (see [`Ground::open_replica`]).
    pub async fn open(config: GroundConfig) -> Result<Ground, Error> {
        Ground::open_replica(config, LinkOwnership::default()).await
    }

    /// [`Ground::open`] as one of several replicas sharing the database: each system's link
    /// runs on the replica holding its lease (taken at once when free, else when its holder
    /// stops renewing it), with its session in `ownership`'s state directory, which the
    /// replicas share (docs/scale-out.md).
    pub async fn open_replica(
        config: GroundConfig,
        ownership: LinkOwnership,
    ) -> Result<Ground, Error> {
        tokio::fs::create_dir_all(&config.data_dir).await?;
        let url = match &config.database_url {
            Some(url) => url.clone(),
            None => {
                // As a URL, the path must be absolute (a relative one's first part would be read
                // as a host) and text.
                let dir = tokio::fs::canonicalize(&config.data_dir).await?;
                if dir.to_str().is_none() {
                    return Err(Error::invalid(format!(
                        "the data directory {} is not UTF-8 text; choose another --data-dir",
                        dir.display()
                    )));
                }
                db::sqlite_url(&dir.join("ground.sqlite"))
            }
        };
        let db = db::open(&url).await?;
        let mut blobs = BlobStore::open(&config.data_dir).await?;
        if let Some(s3) = &config.s3 {
            blobs = blobs
                .with_remote(s3)
                .await
                .map_err(|e| Error::invalid(format!("the blob store: {e}")))?;
        }
        let core = Arc::new(Core {
            db,
            blobs,
            views: views::Views::default(),
        });
        let replicas = if db::Backend::of_url(&url)? == db::Backend::Postgres {
            Some(Arc::new(replicas::spawn(&core, &url).await?))
        } else {
            None
        };
        downlink::settle_all(&core).await?;
        let ownership = ownership.resolve(&config.data_dir).await?;
        let lease_db = db::open_lease_pool(&url).await?;
        let mut systems = BTreeMap::new();
        for s in &config.systems {
            wire::SystemName::new(&s.name).map_err(|e| Error::invalid(e.to_string()))?;
            if systems.contains_key(&s.name) {
                return Err(Error::invalid(format!(
                    "system '{}' is configured twice",
                    s.name
                )));
            }
            let handle =
                lease::SystemHandle::open(core.clone(), lease_db.clone(), s, ownership.clone())
                    .await?;
            systems.insert(s.name.clone(), handle);
        }
        Ok(Ground {
            core,
            systems: Arc::new(systems),
            orbits: Arc::new(passes::Orbits::new(&config.systems)),
            clock: Arc::new(SystemTime::now),
            signer: Arc::new(config.plan_signer),
            em: Arc::new(em::Em::new(em::UPLINK_BYTES)),
            logins: Arc::default(),
            http_timeouts: HttpTimeouts::STANDARD,
            declared: Arc::default(),
            approvals: Arc::default(),
            _replicas: replicas,
        })
    }

    /// Binds a plan to `system` (the system's next plan sequence, taken in `tx`, the issue time
    /// and the expiry) and signs it with the ground's key. The plan must be recorded in the same
    /// transaction: its sequence is then used exactly when it commits.
    pub(crate) async fn seal_plan(
        &self,
        tx: &mut db::Tx,
        system: &str,
        plan: &mut wire::Plan,
    ) -> Result<(), Error> {
        let issued = u64::try_from(time::now_ms()).unwrap_or(0);
        plan.system = system.to_string();
        plan.sequence = db::next_plan_sequence(tx, system).await?;
        plan.issued_ms = issued;
        plan.expires_ms = issued.saturating_add(config::limits::PLAN_VALIDITY_MS);
        self.signer.sign(plan);
        Ok(())
    }

    /// A cancel order for `execution` on `system`, asked for by `by`, issued now and signed with
    /// the plans' key.
    pub(crate) fn seal_cancel(&self, system: &str, execution: &str, by: &str) -> wire::CancelOrder {
        let mut by = by.to_string();
        if by.len() > wire::MAX_CANCEL_BY {
            let mut cut = wire::MAX_CANCEL_BY;
            while !by.is_char_boundary(cut) {
                cut -= 1;
            }
            by.truncate(cut);
        }
        let mut order = wire::CancelOrder {
            execution: execution.to_string(),
            system: system.to_string(),
            by,
            issued_ms: u64::try_from(time::now_ms()).unwrap_or(0),
            signature: Vec::new(),
        };
        self.signer.sign_cancel(&mut order);
        order
    }

    /// Signs an element-set order with the plans' key (`elements`).
    pub(crate) fn sign_elements(&self, order: &mut wire::ElementsOrder) {
        self.signer.sign_elements(order);
    }

    /// What the ground did with the messages `system` sent: handler failures, and messages given
    /// up on after [`link::MESSAGE_ATTEMPTS`] failures. `None` for an unknown system.
    pub fn message_counters(&self, system: &str) -> Option<MessageCounters> {
        self.systems.get(system).map(|s| s.counters())
    }

    /// Stops every link this replica runs and lets their leases go at once, so that another
    /// replica takes them over without waiting for them to expire (a clean shutdown; a ground
    /// that is only dropped leaves them to expire, or to its next start).
    pub async fn release_links(&self) {
        for handle in self.systems.values() {
            handle.release().await;
        }
    }

    /// Whether this replica runs `system`'s link now (holds its lease and has its session).
    pub fn runs_link(&self, system: &str) -> bool {
        self.systems.get(system).is_some_and(|s| s.runs_here())
    }

    pub(crate) fn core(&self) -> &Core {
        &self.core
    }

    /// The same ground, predicting passes and uplink ETAs from `clock` instead of
    /// `SystemTime::now` (tests set it to an element set's epoch). Only predictions use it: the
    /// database and the links keep the real time.
    pub fn with_clock(self, clock: Arc<dyn Fn() -> SystemTime + Send + Sync>) -> Ground {
        Ground { clock, ..self }
    }

    /// The same ground, with the EM API's uplink bound (Clustergate-2's 2 GB per call) set to
    /// `bytes` (tests lower it to show the refusal without sending gigabytes).
    pub fn with_em_uplink_limit(self, bytes: u64) -> Ground {
        Ground {
            em: Arc::new(em::Em::new(bytes)),
            ..self
        }
    }

    /// The same ground, with each system's declaration (platform, builder, catalogue: the
    /// systems file's); a system without one is taken to be the default (the classic builder and
    /// the default catalogue on `linux/arm64`, the EM on this machine's platform). Preflight
    /// judges against it, and the systems API shows how each agent's report differs from it.
    pub fn with_declarations(self, declared: BTreeMap<String, wire::SystemDescription>) -> Ground {
        Ground {
            declared: Arc::new(declared),
            ..self
        }
    }

    pub(crate) fn declaration(&self, system: &str) -> Option<&wire::SystemDescription> {
        self.declared.get(system)
    }

    /// The same ground, with each system's approval gate set as `approvals` says; a system not
    /// in it takes [`Approval::default_for`] its name (required but for the EM `em`).
    pub fn with_approvals(self, approvals: BTreeMap<String, Approval>) -> Ground {
        Ground {
            approvals: Arc::new(approvals),
            ..self
        }
    }

    /// Whether executions on `system` wait for an operator's approval.
    pub fn approval(&self, system: &str) -> Approval {
        self.approvals
            .get(system)
            .copied()
            .unwrap_or_else(|| Approval::default_for(system))
    }

    /// The same ground, its HTTP server waiting on clients as `timeouts` says instead of
    /// [`HttpTimeouts::STANDARD`] (tests shorten them).
    pub fn with_http_timeouts(self, timeouts: HttpTimeouts) -> Ground {
        Ground {
            http_timeouts: timeouts,
            ..self
        }
    }

    /// Creates the user, or gives them a new password (ending their sessions). A user who has
    /// this password already is left alone, so a ground restarted with the same users keeps its
    /// sessions. Names follow `[a-z0-9][a-z0-9_-]{0,62}`.
    pub async fn ensure_user(&self, name: &str, password: &str) -> Result<(), Error> {
        auth::ensure_user(self, name, password).await
    }

    /// The same with the password's argon2 hash (a PHC string, `$argon2id$v=19$...`) in place
    /// of the password: stored as given.
    pub async fn ensure_user_hashed(&self, name: &str, phc: &str) -> Result<(), Error> {
        auth::ensure_user_hashed(self, name, phc).await
    }

    /// Gives an existing user `role` (an operator also sees every tenant's executions and
    /// queues, approves executions and manages users and quotas).
    pub async fn set_role(&self, name: &str, role: Role) -> Result<(), Error> {
        auth::set_role(self, name, role).await?;
        self.core.views.invalidate();
        Ok(())
    }

    /// The whole HTTP surface: the API under `/api/v1`, `/healthz`, the dashboard at `/`, and
    /// Clustergate-2's EM API (`/auth/`, `/em/...`, `docs/em-api.md`).
    pub fn app(&self) -> axum::Router {
        http::router(self.clone())
    }

    pub(crate) fn db(&self) -> &Db {
        &self.core.db
    }

    pub(crate) fn views(&self) -> &views::Views {
        &self.core.views
    }

    pub(crate) fn blobs(&self) -> &BlobStore {
        &self.core.blobs
    }

    pub(crate) fn system(&self, name: &str) -> Option<&lease::SystemHandle> {
        self.systems.get(name)
    }

    pub(crate) fn system_names(&self) -> impl Iterator<Item = &str> {
        self.systems.keys().map(String::as_str)
    }

    pub(crate) fn em(&self) -> &em::Em {
        &self.em
    }

    pub(crate) fn logins(&self) -> &auth::LoginThrottle {
        &self.logins
    }

    pub(crate) fn http_timeouts(&self) -> HttpTimeouts {
        self.http_timeouts
    }

    pub(crate) fn orbits(&self) -> &passes::Orbits {
        &self.orbits
    }

    /// Now, for predictions (see [`Ground::with_clock`]), to the millisecond: the precision
    /// the API writes instants with, so a prediction made offline from an answer's
    /// `generated_at` starts at the very instant the ground's did.
    pub(crate) fn now(&self) -> orbit::Epoch {
        let t = (self.clock)();
        let ms = match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => d.as_millis() as i64,
            Err(e) => -(e.duration().as_millis() as i64),
        };
        orbit::Epoch::from_unix_millis(ms)
    }
}

/// Validates an operation's YAML; an empty list means it is valid.
pub fn validate_operation(yaml: &str) -> Vec<Diagnostic> {
    operation::parse(yaml).err().unwrap_or_default()
}

/// Binds the HTTP API's address (the ground owns its HTTP sockets; `cli` only wires).
pub async fn bind_http(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

/// Whether the HTTP API's address is free now: bound and released at once (a process that
/// starts a moment later can still lose a race for it).
pub fn http_address_free(addr: std::net::SocketAddr) -> std::io::Result<()> {
    std::net::TcpListener::bind(addr).map(drop)
}

/// An HTTP address on 127.0.0.1 free now (the system's choice, bound and released at once).
pub fn free_http_address() -> std::io::Result<std::net::SocketAddr> {
    std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// Serves [`Ground::app`] on `listener` until `shutdown` completes, then drains open requests.
/// Each request knows the address it came from (the login throttle counts by it), and every
/// connection is bounded in time as [`HttpTimeouts`] says.
pub async fn serve(
    ground: Ground,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let timeouts = ground.http_timeouts();
    http::serve(ground.app(), listener, timeouts, None, shutdown).await
}

/// Serves [`Ground::app`] over HTTPS with `tls` (see [`serve`]); each connection's handshake is
/// bounded by the headers' timeout, and the session cookie is `Secure`.
pub async fn serve_tls(
    ground: Ground,
    listener: tokio::net::TcpListener,
    tls: TlsConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let timeouts = ground.http_timeouts();
    http::serve(ground.app(), listener, timeouts, Some(tls), shutdown).await
}
