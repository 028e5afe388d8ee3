//! Link ownership among ground replicas sharing one database (docs/scale-out.md).
//!
//! Each system's link runs on one replica at a time: the one holding the system's lease in the
//! database (`link_leases`). A keeper task per system takes the lease when it is free or
//! expired, renews it every [`RENEW_EVERY`] for [`TTL`], and runs the link (endpoint, handler,
//! encoder: every exchange with the system, so its events are handled and its plans sent by
//! the holder alone) only while it holds it. A holder that cannot renew stops its link before
//! the lease could have expired by the database's clock ([`SELF_FENCE`] after its last renewal
//! was sent); one that finds the lease gone (taken under a later generation) stops at once.
//!
//! Two fences keep a paused or partitioned old holder from writing after losing the lease: the
//! link session's state directory, shared by the replicas, is locked by the OS for as long as an
//! endpoint has it open (`link::FileStore`), so a taker cannot open it while the old endpoint
//! lives (the OS releases the lock of a killed process); and a message queued for the system
//! by another replica (`link_outbox`) is taken only under the holder's current generation.
//!
//! A replica that does not hold a system's lease queues its plans and cancel orders in
//! `link_outbox`; the holder moves them into its link's outbox at its next tick.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;
use wire::{Message, Plan};

use crate::config::SystemLink;
use crate::system_link::{self, AbortTask, Counts, LinkStopped, MessageCounters, Running};
use crate::{Core, db, time};

/// How long a lease lasts after its last renewal.
pub(crate) const TTL: Duration = Duration::from_secs(6);
/// How often the holder renews its leases.
pub(crate) const RENEW_EVERY: Duration = Duration::from_secs(2);
/// How often a replica without a system's lease (or holding it while the link's state is still
/// held by the endpoint of the previous holder) tries again.
const RETRY_EVERY: Duration = Duration::from_millis(500);
/// The bound on a lease's exchange on a database no other replica shares (SQLite): far past
/// any busy timeout, so that only a database that hangs for ever holds the keeper.
const UNFENCED: Duration = Duration::from_secs(600);
/// How long [`SystemHandle::open`] waits for the link's first start when another endpoint
/// still has its session.
const FIRST_START_WAIT: Duration = Duration::from_secs(5);
/// How long a replica that could not start a link it took waits before it tries to take the
/// lease again (another replica may take it meanwhile).
const START_FAILED_RETRY: Duration = Duration::from_secs(5);
/// How long after sending its last successful renewal a holder that cannot reach the database
/// keeps its links: less than [`TTL`], so it has stopped before another can take them.
const SELF_FENCE: Duration = Duration::from_secs(4);

/// Who this replica is and where the link sessions live.
#[derive(Debug, Clone)]
pub(crate) struct Ownership {
    /// The replica's name in the leases (`--replica`, by default the host and data directory).
    pub(crate) replica: String,
    /// Holds each system's session in `<dir>/<system>/`; shared by the replicas.
    pub(crate) state_dir: PathBuf,
}

/// The ground's handle on one system's link, on any replica: it sends through the link where
/// this replica runs it, and through the database to the replica that does otherwise. Dropping
/// it stops the keeper and the link (the lease expires, or the same replica takes it again at
/// its next start).
#[derive(Debug)]
pub(crate) struct SystemHandle {
    slot: Arc<Slot>,
    keeper: AbortTask,
}

/// What the keeper and the handle share.
struct Slot {
    core: Arc<Core>,
    /// A pool of its own for the lease's exchanges (`db::open_lease_pool`).
    leases: db::Db,
    /// Whether other replicas may share the database (PostgreSQL): only then does a holder that
    /// cannot renew its lease stop its link at the fence. On SQLite the ground is alone on its
    /// database (docs/scale-out.md): a renewal that fails (the database busy past its timeout)
    /// is logged and tried again, and the link keeps running.
    shared: bool,
    config: SystemLink,
    ownership: Ownership,
    counts: Arc<Counts>,
    /// The generation of the lease this replica holds, and the link it runs under it (none while
    /// the previous holder's endpoint still has the session).
    held: Mutex<Option<(i64, Option<Arc<Running>>)>>,
    /// Told of the first start of the link: done, or failed for a reason of this replica's
    /// (what [`SystemHandle::open`] returns).
    first_start: Mutex<Option<oneshot::Sender<std::io::Result<()>>>>,
}

/// Who holds a system's link, for the systems view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owner {
    pub(crate) replica: String,
    pub(crate) generation: i64,
    pub(crate) expires_ms: i64,
    /// Whether the lease is live by the database's clock.
    pub(crate) live: bool,
}

impl SystemHandle {
    /// Takes the system's lease if it can and starts its link at once (an error starting it is
    /// returned, as a single ground's would be), then leaves the lease to a keeper task.
    pub(crate) async fn open(
        core: Arc<Core>,
        leases: db::Db,
        config: &SystemLink,
        ownership: Ownership,
    ) -> Result<SystemHandle, crate::Error> {
        let shared = db::Backend::of(&leases) == db::Backend::Postgres;
        let (started_tx, started) = oneshot::channel();
        let slot = Arc::new(Slot {
            core,
            leases,
            shared,
            config: config.clone(),
            ownership,
            counts: Arc::default(),
            held: Mutex::new(None),
            first_start: Mutex::new(Some(started_tx)),
        });
        // The lease runs from before the request that took it: the fence counts from there.
        let asked = Instant::now();
        let taken = slot.acquire().await?;
        if let Some(generation) = taken {
            *slot.held.lock().unwrap() = Some((generation, None));
        }
        // The keeper starts the link beside its renewals, so that a long start (fetching the
        // objects of the transfers it resumes) never lets the lease lapse.
        let keeper = tokio::spawn(keep(slot.clone(), asked));
        let handle = SystemHandle {
            slot,
            keeper: AbortTask(keeper.abort_handle()),
        };
        if taken.is_some() {
            match tokio::time::timeout(FIRST_START_WAIT, started).await {
                Ok(Ok(Err(e))) => {
                    handle.release().await;
                    return Err(e.into());
                }
                Ok(_) => {}
                Err(_) => {
                    // A previous endpoint (a ground of this process dropped a moment ago, or
                    // one of another process) still has the session: the keeper starts the
                    // link once it lets go.
                    tracing::warn!(system = %config.name, "the link has not started yet: its session is still open elsewhere; it starts once free");
                }
            }
        }
        Ok(handle)
    }

    /// Queues a plan for the system, unless the same plan already waits.
    pub(crate) async fn send_plan(&self, plan: Plan) -> Result<(), LinkStopped> {
        let execution = plan.execution.clone();
        self.send_message(wire::encode_message(&Message::Plan(plan)))
            .await?;
        tracing::info!(system = %self.slot.config.name, %execution, "plan queued");
        Ok(())
    }

    /// Queues an encoded message (a plan, a cancel order) for the system, unless the same bytes
    /// already wait: in the link's outbox when this replica runs it, else in the database for
    /// the replica that does.
    pub(crate) async fn send_message(&self, encoded: Vec<u8>) -> Result<(), LinkStopped> {
        if let Some(running) = self.slot.running()
            && running.send_once(encoded.clone()).await.is_ok()
        {
            return Ok(());
        }
        db::outbox_queue(
            &self.slot.core.db,
            &self.slot.config.name,
            &encoded,
            time::now_ms(),
        )
        .await
        .map_err(|e| {
            tracing::error!(system = %self.slot.config.name, error = %e, "cannot queue a message for the replica holding the link");
            LinkStopped
        })
    }

    /// The latest snapshot of the endpoint when this replica runs the link; a link that is down
    /// with nothing queued otherwise (the holder's queue is its own).
    pub(crate) fn stats(&self) -> link::LinkStats {
        self.slot.running().map(|r| r.stats()).unwrap_or_default()
    }

    /// What this replica's runs of the link did with the system's messages.
    pub(crate) fn counters(&self) -> MessageCounters {
        self.slot.counts.get()
    }

    /// Whether this replica runs the system's link now.
    pub(crate) fn runs_here(&self) -> bool {
        self.slot.running().is_some()
    }

    /// Stops the keeper and the link and lets the lease go at once, so another replica takes it
    /// without waiting for it to expire (a clean shutdown). (A keeper stopped in the middle of
    /// taking the lease leaves it to expire.)
    pub(crate) async fn release(&self) {
        self.keeper.0.abort();
        let held = self.slot.held.lock().unwrap().take();
        if let Some((generation, running)) = held {
            drop(running);
            if let Err(e) = self.slot.release(generation).await {
                tracing::warn!(system = %self.slot.config.name, error = %e, "could not release the link's lease; it expires on its own");
            } else {
                tracing::info!(system = %self.slot.config.name, generation, "link lease released");
            }
        }
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("system", &self.config.name)
            .field("replica", &self.ownership.replica)
            .finish_non_exhaustive()
    }
}

impl Slot {
    fn running(&self) -> Option<Arc<Running>> {
        self.held
            .lock()
            .unwrap()
            .as_ref()
            .and_then(|(_, r)| r.clone())
    }

    fn system(&self) -> &str {
        &self.config.name
    }

    /// Tells [`SystemHandle::open`] how the link's first start went (later starts tell no one).
    fn started(&self, outcome: std::io::Result<()>) {
        if let Some(tx) = self.first_start.lock().unwrap().take() {
            let _ = tx.send(outcome);
        }
    }

    async fn acquire(&self) -> Result<Option<i64>, sqlx::Error> {
        let taken = db::acquire_lease(
            &self.leases,
            self.system(),
            &self.ownership.replica,
            TTL.as_millis() as i64,
        )
        .await?;
        if let Some(generation) = taken {
            tracing::info!(system = %self.system(), replica = %self.ownership.replica, generation, "took the link's lease");
        }
        Ok(taken)
    }

    async fn release(&self, generation: i64) -> Result<(), sqlx::Error> {
        db::release_lease(
            &self.leases,
            self.system(),
            &self.ownership.replica,
            generation,
        )
        .await
    }

    async fn start(&self) -> std::io::Result<Running> {
        system_link::start(
            self.core.clone(),
            &self.config,
            self.ownership.state_dir.join(self.system()),
            self.counts.clone(),
        )
        .await
    }

    /// Moves the messages other replicas queued for the system into the link's outbox.
    async fn drain_outbox(&self, generation: i64, running: &Running) -> Result<(), sqlx::Error> {
        let (db, system, replica) = (&self.core.db, self.system(), &self.ownership.replica);
        for (digest, message) in db::outbox_take(db, system, replica, generation).await? {
            if running.send_once(message).await.is_err() {
                return Ok(());
            }
            db::outbox_done(db, system, &digest, replica, generation).await?;
            tracing::info!(%system, %digest, "queued a message another replica left for the link");
        }
        Ok(())
    }
}

/// Keeps the system's lease: takes it when free, renews it while held, runs the link while
/// held and stops it when not. `asked`: when the request that took the lease held on entry (if
/// any) was sent.
///
/// Every exchange with the database while the lease is held is bounded by the fence: a holder
/// stops its link [`SELF_FENCE`] after sending the last renewal that succeeded, whether the
/// database answered with an error or not at all.
async fn keep(slot: Arc<Slot>, asked: Instant) {
    let system = slot.system().to_string();
    // When the last renewal that succeeded (or the taking) was sent.
    let mut renewed = asked;
    // The link being started under a generation, when it is.
    let mut starting: Option<Starting> = None;
    loop {
        let held = slot
            .held
            .lock()
            .unwrap()
            .as_ref()
            .map(|(g, r)| (*g, r.clone()));
        let wait = match held {
            None => {
                let sent = Instant::now();
                match slot.acquire().await {
                    Ok(Some(generation)) => {
                        renewed = sent;
                        *slot.held.lock().unwrap() = Some((generation, None));
                        Duration::ZERO
                    }
                    Ok(None) => RETRY_EVERY,
                    Err(e) => {
                        tracing::warn!(%system, error = %e, "cannot read the link's lease");
                        RETRY_EVERY
                    }
                }
            }
            Some((generation, running)) => {
                let sent = Instant::now();
                let fence = if slot.shared {
                    renewed + SELF_FENCE
                } else {
                    sent + UNFENCED
                };
                let renewal = tokio::time::timeout_at(
                    fence,
                    db::renew_lease(
                        &slot.leases,
                        &system,
                        &slot.ownership.replica,
                        generation,
                        TTL.as_millis() as i64,
                    ),
                )
                .await;
                let keep = match renewal {
                    Ok(Ok(true)) => {
                        renewed = sent;
                        true
                    }
                    Ok(Ok(false)) => {
                        tracing::warn!(%system, generation, "lost the link's lease; stopping the link");
                        false
                    }
                    Ok(Err(e)) if !slot.shared || sent.duration_since(renewed) < SELF_FENCE => {
                        tracing::warn!(%system, error = %e, "cannot renew the link's lease; trying again");
                        true
                    }
                    Ok(Err(e)) => {
                        tracing::error!(%system, error = %e, "cannot renew the link's lease; stopping the link before it expires");
                        false
                    }
                    Err(_) => {
                        tracing::error!(%system, "the database did not answer the lease's renewal; stopping the link before it expires");
                        false
                    }
                };
                if !keep {
                    *slot.held.lock().unwrap() = None;
                    starting = None;
                    RETRY_EVERY
                } else if let Some(running) = running {
                    let drained = tokio::time::timeout_at(
                        if slot.shared {
                            renewed + SELF_FENCE
                        } else {
                            Instant::now() + UNFENCED
                        },
                        slot.drain_outbox(generation, &running),
                    )
                    .await;
                    match drained {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            tracing::warn!(%system, error = %e, "cannot read the messages queued for the link")
                        }
                        Err(_) => {
                            tracing::warn!(%system, "the database did not answer in time for the messages queued for the link")
                        }
                    }
                    RENEW_EVERY.saturating_sub(sent.elapsed())
                } else {
                    // Started beside the renewals: fetching the objects of the transfers the
                    // link resumes may take longer than the lease lasts. The keeper waits for
                    // the start until the next renewal is due.
                    let mut st = match starting.take() {
                        Some(st) if st.generation == generation => st,
                        _ => {
                            let s = slot.clone();
                            Starting {
                                generation,
                                task: tokio::spawn(async move { s.start().await }),
                            }
                        }
                    };
                    let due = RENEW_EVERY.saturating_sub(sent.elapsed());
                    match tokio::time::timeout(due, &mut st.task).await {
                        Err(_) => {
                            starting = Some(st);
                            Duration::ZERO
                        }
                        Ok(Ok(Ok(r))) => {
                            {
                                let mut held = slot.held.lock().unwrap();
                                if let Some((g, run)) = held.as_mut()
                                    && *g == generation
                                {
                                    *run = Some(Arc::new(r));
                                }
                            }
                            slot.started(Ok(()));
                            RENEW_EVERY.saturating_sub(sent.elapsed())
                        }
                        Ok(Ok(Err(e))) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            tracing::info!(%system, error = %e, "the link's previous holder has not let go of it yet");
                            RETRY_EVERY
                        }
                        Ok(Ok(Err(e))) => {
                            // Something here (an address taken, a state directory unreadable):
                            // another replica may do better.
                            tracing::error!(%system, error = %e, "cannot start the link; letting its lease go");
                            slot.started(Err(std::io::Error::new(e.kind(), e.to_string())));
                            *slot.held.lock().unwrap() = None;
                            if let Err(e) = slot.release(generation).await {
                                tracing::warn!(%system, error = %e, "could not release the link's lease; it expires on its own");
                            }
                            START_FAILED_RETRY
                        }
                        Ok(Err(e)) => {
                            tracing::error!(%system, error = %e, "starting the link failed");
                            RETRY_EVERY
                        }
                    }
                }
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// A start of the link under a lease's generation, stopped when dropped (the keeper lost the
/// lease, or stopped).
struct Starting {
    generation: i64,
    task: tokio::task::JoinHandle<std::io::Result<Running>>,
}

impl Drop for Starting {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Who holds each system's lease now.
pub(crate) async fn owners(
    core: &Core,
) -> Result<std::collections::BTreeMap<String, Owner>, sqlx::Error> {
    let (rows, now) = db::leases(&core.db).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.system,
                Owner {
                    replica: r.holder,
                    generation: r.generation,
                    expires_ms: r.expires_ms,
                    live: r.expires_ms > now,
                },
            )
        })
        .collect())
}
