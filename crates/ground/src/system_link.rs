//! The ground's side of each system's link: one endpoint, and one task handling what comes back
//! (messages, and objects come down). Plans go straight to the endpoint, from the execution that
//! compiled them or from the handler re-sending them.
//!
//! Objects never pass through here: the endpoint reads the ones it sends from the blob store and
//! commits the ones it receives, verified, into it; the handler only hears that they arrived.
//!
//! # Handled when committed
//!
//! The handler takes one event at a time, in order. A message is acknowledged to the link
//! ([`link::MessageSender::done`]) only once what it means is committed: the transaction that
//! applied a report, the objects a `Need` asked for and the plans a `Hello` called for queued in
//! the session's outbox (the acknowledgement follows them through the endpoint's command channel).
//! Until then the link delivers it again after a restart, so a ground stopped or killed between
//! receiving an event and committing it gets it again; every handler is idempotent for that
//! (`reports` ignores a state already reached, a listing replaces the last, a `Need` queues an
//! object once, a `Hello` re-sends only plans not already waiting in the outbox). An attempt that
//! fails (or panics) is made again after [`link::MESSAGE_RETRY_AFTER`], doubling; after
//! [`link::MESSAGE_ATTEMPTS`] the message is given up on, logged as an error and counted
//! ([`MessageCounters`]), and acknowledged, so that one poison message cannot wedge the link.
//!
//! # What a system is served
//!
//! The plans of its unfinished executions that its agent does not hold (a `Hello` lists those it
//! holds; the ground re-sends the rest when the agent restarted and at the first `Hello` after the
//! ground itself started), and the objects those executions send up. A `Need` for any other
//! object is refused and logged: holding a system's link key does not open the blob store.
//!
//! A `Need` is answered with the objects themselves; a `Want` is recorded for the system's
//! encoder (`encoder`), which sends each object as the smallest of itself, itself compressed or
//! a patch against an object the system holds.
//!
//! The link carries messages as bytes: this module encodes every `wire::Message` it sends and
//! decodes every one it receives (an undecodable one is logged with its sequence number, counted
//! and acknowledged: it can never decode). It handles `Hello` and `Need` itself; what a system
//! reports about executions (task and execution events, volume listings) is applied to the
//! database by `reports`, and its telemetry digests are stored by `telemetry` (a bucket received
//! again replaces the same bucket).

use std::collections::HashSet;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use link::{EndpointConfig, LinkEvent, MessageReceiver, MessageSender};
use tokio::sync::{Mutex, oneshot};
use tokio::task::JoinHandle;
use wire::{Digest, Direction, Message};

use crate::config::SystemLink;
use crate::encoder::{self, Encoder, UPLINK_PRIORITY};
use crate::error::Error;
use crate::{Core, db, downlink, mirror, reports, telemetry, time};

/// One run of a system's link on this replica: its endpoint, handler and encoder. Dropping it
/// stops the handler, even in the middle of an event (uncommitted: the link delivers it again at
/// the next start, here or on the replica that takes the link over), and the encoder; the
/// endpoint stops once the last of their senders is gone.
#[derive(Debug)]
pub(crate) struct Running {
    link: Arc<Link>,
    /// Dropped with the run; the handler task ends when it notices.
    _alive: oneshot::Sender<()>,
    /// The encoder's task, stopped with the run (it holds a sender of the endpoint).
    _encoding: AbortTask,
}

/// Aborts a task when dropped.
#[derive(Debug)]
pub(crate) struct AbortTask(pub(crate) tokio::task::AbortHandle);

impl Drop for AbortTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the ground did with the messages a system sent, since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageCounters {
    /// Attempts at handling an event of the link (a message, or an object's arrival) that failed
    /// and were made again or given up.
    pub failures: u64,
    /// Messages given up on: undecodable, or failed [`link::MESSAGE_ATTEMPTS`] times. Each was
    /// logged as an error.
    pub dropped: u64,
}

/// The counts behind [`MessageCounters`], kept across the runs of a system's link.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    failures: AtomicU64,
    dropped: AtomicU64,
}

impl Counts {
    pub(crate) fn get(&self) -> MessageCounters {
        MessageCounters {
            failures: self.failures.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

/// The plan could not be queued: the link has stopped.
#[derive(Debug)]
pub(crate) struct LinkStopped;

/// What the handler and the run share.
struct Link {
    core: Arc<Core>,
    system: String,
    sender: MessageSender,
    /// The agent's boot id as last heard; none since this run started, so the first Hello
    /// also repairs what a crash of the ground (or of the replica that ran the link before)
    /// may have lost.
    last_boot: Mutex<Option<u64>>,
    /// Sends what a `Want` asks for (see `encoder`).
    encoder: Arc<Encoder>,
    counts: Arc<Counts>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("system", &self.system)
            .finish_non_exhaustive()
    }
}

impl Running {
    /// Queues an encoded message (a plan, a cancel order) for the system, unless the same bytes
    /// already wait in the link's outbox.
    pub(crate) async fn send_once(&self, encoded: Vec<u8>) -> Result<(), LinkStopped> {
        self.link
            .sender
            .send_once(encoded)
            .await
            .map_err(|_| LinkStopped)
    }

    /// The latest snapshot of the endpoint: whether the link is up, and the outgoing transfers
    /// in sending order.
    pub(crate) fn stats(&self) -> link::LinkStats {
        self.link.sender.stats()
    }
}

/// The ground's end of `config`'s link: its session kept in `state_dir`, the blob store as its
/// object directory.
pub(crate) fn endpoint_config(
    core: &Core,
    config: &SystemLink,
    state_dir: PathBuf,
) -> EndpointConfig {
    EndpointConfig {
        bind: config.bind,
        peer: config.link,
        key: config.key.clone(),
        sends: Direction::Up,
        state_dir,
        objects: core.blobs.layout(),
        rate_bits_per_sec: config.rate_bits_per_sec,
        contact: config.contact.clone(),
        settings: config.link_settings,
        // What comes down is bounded onboard (the downlink's limits); the ground takes it.
        admit: None,
    }
}

/// Binds the system's endpoint (see [`endpoint_config`]) and spawns its handler and encoder.
pub(crate) async fn start(
    core: Arc<Core>,
    config: &SystemLink,
    state_dir: PathBuf,
    counts: Arc<Counts>,
) -> io::Result<Running> {
    if core.blobs.is_shared() {
        fetch_outgoing(&core, &config.name, &state_dir).await;
    }
    let (sender, receiver) =
        link::spawn_endpoint(endpoint_config(&core, config, state_dir)).await?;
    let (alive_tx, alive_rx) = oneshot::channel();
    tracing::info!(system = %config.name, bind = %config.bind, link = %config.link, "system link up");
    let encoder = Arc::new(Encoder::new(
        core.clone(),
        config.name.clone(),
        sender.clone(),
    ));
    let link = Arc::new(Link {
        core,
        system: config.name.clone(),
        sender,
        last_boot: Mutex::new(None),
        encoder: encoder.clone(),
        counts,
    });
    tokio::spawn(receive_loop(link.clone(), receiver, alive_rx));
    // Wants left by a previous run are served at once.
    let encoding = tokio::spawn(encoder.clone().run());
    encoder.wake();
    Ok(Running {
        link,
        _alive: alive_tx,
        _encoding: AbortTask(encoding.abort_handle()),
    })
}

/// Makes local the objects the session in `state_dir` has outgoing transfers of, fetching them
/// from the shared store: a replica taking the link over (with a data directory of its own)
/// resumes them from where they were. One it cannot fetch is logged; the session then fails
/// that transfer, and the system asks for the object again.
async fn fetch_outgoing(core: &Core, system: &str, state_dir: &std::path::Path) {
    let dir = state_dir.to_path_buf();
    let digests = tokio::task::spawn_blocking(move || link::FileStore::outgoing_objects(&dir))
        .await
        .unwrap_or_default();
    for digest in digests {
        match core.blobs.ensure(&digest).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(%system, %digest, "an object the link was sending is in no store")
            }
            Err(e) => {
                tracing::warn!(%system, %digest, error = %e, "cannot fetch an object the link was sending")
            }
        }
    }
}

/// Handles the link's events in order, acknowledging each message once handled, until the
/// handle is dropped or the endpoint stops.
async fn receive_loop(
    link: Arc<Link>,
    mut receiver: MessageReceiver,
    mut alive: oneshot::Receiver<()>,
) {
    let system = link.system.clone();
    loop {
        let event = tokio::select! {
            e = receiver.recv() => e,
            _ = &mut alive => return,
        };
        let Some(event) = event else {
            tracing::warn!(%system, "link endpoint stopped");
            return;
        };
        let seq = match &event {
            LinkEvent::Message { seq, .. } => Some(*seq),
            _ => None,
        };
        tokio::select! {
            () = handle_with_retries(&link, event) => {}
            // Stopped between receiving and committing: the message comes again at the next
            // start.
            _ = &mut alive => return,
        }
        if let Some(seq) = seq
            && link.sender.done(seq).await.is_err()
        {
            tracing::warn!(%system, "link endpoint stopped");
            return;
        }
    }
}

/// Aborts the task when dropped: a handler stopped with its loop commits nothing more.
struct AbortOnDrop(JoinHandle<Result<(), Error>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Handles one event, trying again after a failure (or a panic), up to
/// [`link::MESSAGE_ATTEMPTS`] times; then gives up on it with an error logged and counted.
async fn handle_with_retries(link: &Arc<Link>, event: LinkEvent) {
    let system = &link.system;
    let (seq, event) = match event {
        LinkEvent::Message { seq, bytes } => match wire::decode_message(&bytes) {
            Ok(m) => (Some(seq), Event::Message(m)),
            Err(e) => {
                link.counts.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%system, seq, error = %e, "dropped an undecodable message");
                return;
            }
        },
        other => (None, Event::Link(other)),
    };
    let mut wait = link::MESSAGE_RETRY_AFTER;
    for attempt in 1..=link::MESSAGE_ATTEMPTS {
        let mut task = AbortOnDrop(tokio::spawn(handle_event(link.clone(), event.clone())));
        let error = match (&mut task.0).await {
            Ok(Ok(())) => {
                // What the event changed is committed: views computed before it are stale.
                link.core.views.invalidate();
                return;
            }
            Ok(Err(e)) => e.to_string(),
            Err(e) => format!("the handler failed: {e}"),
        };
        link.counts.failures.fetch_add(1, Ordering::Relaxed);
        if attempt == link::MESSAGE_ATTEMPTS {
            if seq.is_some() {
                link.counts.dropped.fetch_add(1, Ordering::Relaxed);
            }
            tracing::error!(%system, ?seq, attempts = attempt, %error, event = event.name(), "gave up on a link event");
            // An attempt may have committed part of what it meant.
            link.core.views.invalidate();
            return;
        }
        tracing::warn!(%system, ?seq, attempt, %error, event = event.name(), "could not handle a link event; trying again");
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
}

/// A link event with its message decoded.
#[derive(Debug, Clone)]
enum Event {
    Message(Message),
    Link(LinkEvent),
}

impl Event {
    /// What it is, for a log line.
    fn name(&self) -> &'static str {
        match self {
            Event::Message(Message::Hello { .. }) => "hello",
            Event::Message(Message::Plan(_)) => "plan",
            Event::Message(Message::Need { .. }) => "need",
            Event::Message(Message::Want { .. }) => "want",
            Event::Message(Message::Patches { .. }) => "patches",
            Event::Message(Message::TaskEvent { .. }) => "task event",
            Event::Message(Message::ExecutionEvent { .. }) => "execution event",
            Event::Message(Message::VolumeListing { .. }) => "volume listing",
            Event::Message(Message::VolumeDigests { .. }) => "volume digests",
            Event::Message(Message::InventorySummary(_)) => "inventory summary",
            Event::Message(Message::InventoryRequest { .. }) => "inventory request",
            Event::Message(Message::Inventory { .. }) => "inventory",
            Event::Message(Message::Cancel(_)) => "cancel",
            Event::Message(Message::Elements(_)) => "elements",
            Event::Message(Message::TelemetryDigest(_)) => "telemetry digest",
            Event::Message(Message::BaseLayers { .. }) => "base layers",
            Event::Link(LinkEvent::Message { .. }) => "message",
            Event::Link(LinkEvent::ObjectReceived(_)) => "object received",
            Event::Link(LinkEvent::ObjectDelivered(_)) => "object delivered",
            Event::Link(LinkEvent::ObjectFailed(..)) => "object failed",
            Event::Link(LinkEvent::ObjectRefused(..)) => "object refused",
            Event::Link(LinkEvent::ObjectDeclined(..)) => "object declined",
        }
    }
}

/// One attempt at an event.
async fn handle_event(link: Arc<Link>, event: Event) -> Result<(), Error> {
    let (core, system) = (&link.core, &link.system);
    match event {
        Event::Message(m) => handle_message(&link, m).await,
        Event::Link(LinkEvent::ObjectReceived(digest)) => {
            tracing::debug!(%system, %digest, "object received");
            downlink::object_arrived(core, &digest).await
        }
        Event::Link(LinkEvent::ObjectDelivered(digest)) => {
            tracing::debug!(%system, %digest, "object delivered");
            mirror::delivered(core, system, &digest).await
        }
        Event::Link(LinkEvent::ObjectFailed(digest, error)) => {
            tracing::warn!(%system, %digest, %error, "an object could not be sent");
            downlink::object_failed(core, &digest, &error).await
        }
        // The system has no room for it: it is not sent again (the uplink waiting for it onboard
        // fails with the same reason, and its execution says so).
        Event::Link(LinkEvent::ObjectRefused(digest, reason)) => {
            tracing::error!(%system, %digest, %reason, "the system refused an object");
            Ok(())
        }
        Event::Link(LinkEvent::ObjectDeclined(digest, reason)) => {
            tracing::warn!(%system, %digest, %reason, "refused an object the system offered");
            Ok(())
        }
        Event::Link(LinkEvent::Message { .. }) => Ok(()),
    }
}

/// Handles one message from a system; returns once what it means is committed.
async fn handle_message(link: &Link, message: Message) -> Result<(), Error> {
    let (core, system) = (&*link.core, link.system.as_str());
    match message {
        Message::Hello {
            agent,
            platform,
            catalogue,
            boot,
            holds,
            mut engine,
        } => {
            engine.images.truncate(wire::MAX_ENGINE_IMAGES);
            if agent != system {
                tracing::warn!(%system, %agent, "the agent calls itself by another name");
            }
            tracing::info!(%system, %platform, images = catalogue.len(), holds = holds.len(), "hello");
            db::upsert_system(
                &core.db,
                system,
                &agent,
                &platform,
                &db::to_json(&catalogue),
                &db::to_json(&engine),
                time::now_ms(),
            )
            .await?;
            let mut last_boot = link.last_boot.lock().await;
            if *last_boot != Some(boot) {
                // Cancels first: an agent that lost a plan hears of its cancel before the plan
                // comes again, and never runs it.
                resend_cancels(link).await?;
                resend_elements(link).await?;
                resend_missing(link, &holds).await?;
                *last_boot = Some(boot);
            }
        }
        Message::Plan(plan) => {
            tracing::warn!(%system, execution = %plan.execution, "a system sent a plan; ignored");
        }
        Message::Need { digests } => serve(link, digests).await?,
        Message::Want { objects } => {
            tracing::debug!(%system, count = objects.len(), "want");
            encoder::want(core, system, objects).await?;
            link.encoder.wake();
        }
        Message::Patches { .. } => {
            tracing::warn!(%system, "a system sent patches; ignored");
        }
        Message::TaskEvent {
            execution,
            task,
            state,
            at_ms,
            error,
            outputs,
        } => {
            let succeeded = (state == wire::TaskState::Success).then(|| outputs.clone());
            reports::task_event(core, system, &execution, task, state, at_ms, error, outputs)
                .await?;
            if let Some(outputs) = succeeded {
                mirror::task_succeeded(core, system, &execution, task, outputs.as_ref()).await?;
            }
        }
        Message::ExecutionEvent {
            execution,
            state,
            at_ms,
        } => {
            reports::execution_event(core, system, &execution, state, at_ms).await?;
        }
        Message::VolumeListing {
            tenant,
            volume,
            files,
        } => {
            reports::volume_listing(core, system, &tenant, &volume, files).await?;
        }
        Message::VolumeDigests {
            tenant,
            volume,
            files,
        } => mirror::volume_digests(core, system, &tenant, &volume, &files).await?,
        Message::InventorySummary(summary) => {
            if let Some(request) = mirror::summary(core, system, summary).await? {
                link.sender
                    .send(wire::encode_message(&request))
                    .await
                    .map_err(|_| Error::internal("the link endpoint stopped"))?;
            }
        }
        Message::Inventory {
            objects,
            complete,
            volumes,
        } => mirror::inventory(core, system, objects, complete, volumes).await?,
        Message::InventoryRequest { .. } => {
            tracing::warn!(%system, "a system asked for the ground's inventory; ignored");
        }
        Message::Cancel(order) => {
            tracing::warn!(%system, execution = %order.execution, "a system sent a cancel order; ignored");
        }
        Message::Elements(_) => {
            tracing::warn!(%system, "a system sent an element set; ignored");
        }
        Message::TelemetryDigest(digest) => telemetry::receive(core, system, &digest).await?,
        Message::BaseLayers { images } => mirror::base_layers(core, system, images).await?,
    }
    Ok(())
}

/// Queues again the cancel orders of the system's executions still `CANCELLING` (one that still
/// waits in the outbox is not queued twice): the agent restarted, or this ground did, perhaps
/// between recording a cancel and queueing it. The agent handles an order it has had as a no-op.
async fn resend_cancels(link: &Link) -> Result<(), Error> {
    let system = &link.system;
    let pending = db::pending_cancels(&link.core.db, system).await?;
    if !pending.is_empty() {
        tracing::info!(%system, cancels = pending.len(), "sending the pending cancels again");
    }
    for (execution, encoded) in pending {
        link.sender
            .send_once(encoded)
            .await
            .map_err(|_| Error::internal("the link endpoint stopped"))?;
        tracing::debug!(%system, %execution, "cancel queued again");
    }
    Ok(())
}

/// Queues again the element set last sent to the system on its own, if any (the same bytes; the
/// agent ignores it unless it is newer than the set it holds), before any plan sent again.
async fn resend_elements(link: &Link) -> Result<(), Error> {
    if let Some(sent) = db::sent_elements(&link.core.db, &link.system).await? {
        link.sender
            .send_once(sent.message)
            .await
            .map_err(|_| Error::internal("the link endpoint stopped"))?;
        tracing::debug!(system = %link.system, "element set queued again");
    }
    Ok(())
}

/// Queues again the plans of the system's unfinished executions that the agent does not hold
/// (it restarted, or this ground did), each exactly as first sent; one that still waits in the
/// outbox is not queued twice.
async fn resend_missing(link: &Link, holds: &[String]) -> Result<(), Error> {
    let system = &link.system;
    let holds: HashSet<&str> = holds
        .iter()
        .take(wire::MAX_HELD_PLANS)
        .map(String::as_str)
        .collect();
    let missing: Vec<(String, Vec<u8>)> = db::unfinished_plans(&link.core.db, system)
        .await?
        .into_iter()
        .filter(|(execution, _)| !holds.contains(execution.as_str()))
        .collect();
    if !missing.is_empty() {
        tracing::info!(%system, plans = missing.len(), "the agent (re)started without these plans: sending them again");
    }
    for (execution, encoded) in missing {
        link.sender
            .send_once(encoded)
            .await
            .map_err(|_| Error::internal("the link endpoint stopped"))?;
        tracing::debug!(%system, %execution, "plan queued again");
    }
    Ok(())
}

/// Queues the objects a `Need` asks for, when they are objects of the system's unfinished
/// executions and the ground holds them; refuses (and logs) the rest.
async fn serve(link: &Link, digests: Vec<Digest>) -> Result<(), Error> {
    let (core, system) = (&*link.core, link.system.as_str());
    let mut seen = HashSet::new();
    let digests: Vec<Digest> = digests.into_iter().filter(|d| seen.insert(*d)).collect();
    tracing::debug!(%system, count = digests.len(), "need");
    let served = db::served_objects(&core.db, system, &digests).await?;
    let (allowed, refused): (Vec<Digest>, Vec<Digest>) =
        digests.into_iter().partition(|d| served.contains(d));
    if let Some(first) = refused.first() {
        tracing::warn!(%system, count = refused.len(), %first, "refused a request for objects that no unfinished execution of this system sends up");
    }
    for digest in allowed {
        let size = core.blobs.fetched_size(&digest).await.map_err(|e| {
            Error::internal(format!(
                "cannot fetch {digest} from the shared blob store: {e}"
            ))
        })?;
        let Some(size) = size else {
            tracing::warn!(%system, %digest, "the system asked for an object the ground does not have");
            continue;
        };
        link.sender
            .send_object(digest, size, UPLINK_PRIORITY)
            .await
            .map_err(|_| Error::internal("the link endpoint stopped"))?;
        tracing::debug!(%system, %digest, size, "object queued");
        let owners = db::unfinished_executions_sending(&core.db, system, &digest).await?;
        let sent = encoder::Sent {
            target: digest,
            object: digest,
            kind: "raw",
            base: None,
            size,
            raw_size: size,
        };
        encoder::record_sent(&core.db, &owners, &sent).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use wire::{OnFailure, Plan, PlanTask, TaskKind, UplinkFile};

    use super::*;
    use crate::db::ExecutionRow;
    use crate::test_core;

    /// A ground core on a temporary directory with a system `em` whose link is never up, so
    /// whatever is queued stays queued.
    struct Fixture {
        _dir: tempfile::TempDir,
        core: Arc<Core>,
        handle: Running,
        counts: Arc<Counts>,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let core = test_core::core(dir.path(), &[("demo", "alice")]).await;
        let config = test_core::idle_system("em");
        let counts = Arc::new(Counts::default());
        let handle = start(
            core.clone(),
            &config,
            dir.path().join("link/em"),
            counts.clone(),
        )
        .await
        .unwrap();
        Fixture {
            _dir: dir,
            core,
            handle,
            counts,
        }
    }

    /// Records an execution of `system` in `state` whose plan uplinks `objects`; returns its
    /// plan.
    async fn execution(core: &Core, system: &str, state: &str, objects: &[Digest]) -> Plan {
        let id = uuid::Uuid::new_v4().to_string();
        let exec = ExecutionRow {
            id: id.clone(),
            tenant: "alice".into(),
            namespace: "demo".into(),
            operation: "op".into(),
            revision: 1,
            system: system.into(),
            state: state.into(),
            created_at: 0,
            scheduled_at: None,
            started_at: None,
            finished_at: None,
            history: "[]".into(),
            errors: "[]".into(),
        };
        let files = objects
            .iter()
            .enumerate()
            .map(|(i, d)| UplinkFile {
                path: format!("f{i}"),
                digest: *d,
                size: 4,
                mode: 0o644,
            })
            .collect();
        let plan = Plan {
            execution: id.clone(),
            tenant: "alice".into(),
            tasks: vec![PlanTask {
                id: "up".into(),
                on_failure: OnFailure::Stop,
                trigger: None,
                kind: TaskKind::Uplink {
                    volume: "alice-pvc".into(),
                    files,
                },
            }],
            system: system.into(),
            sequence: 1,
            elements: None,
            issued_ms: 0,
            expires_ms: u64::MAX,
            signature: vec![1; 64],
        };
        let mut tx = db::write_tx(&core.db).await.unwrap();
        db::insert_execution(&mut tx, &exec).await.unwrap();
        crate::queue::record(&mut tx, &id, &plan).await.unwrap();
        tx.commit().await.unwrap();
        plan
    }

    fn hello(boot: u64, holds: Vec<String>) -> Message {
        Message::Hello {
            agent: "em".into(),
            platform: "linux/amd64".into(),
            catalogue: Vec::new(),
            boot,
            holds,
            engine: wire::EngineReport::default(),
        }
    }

    /// The outgoing transfers once every command before is taken: (message, digest).
    async fn queued(handle: &Running) -> Vec<(bool, Digest)> {
        let stats = handle.link.sender.stats_now().await.unwrap();
        stats
            .transfers
            .iter()
            .map(|t| (t.message, t.digest))
            .collect()
    }

    #[tokio::test]
    async fn five_hellos_with_new_boot_ids_queue_each_unfinished_plan_once() {
        let f = fixture().await;
        let mut unfinished = Vec::new();
        for _ in 0..3 {
            let plan = execution(&f.core, "em", "SCHEDULED", &[]).await;
            // Sent when it started, as `executor::start` does.
            f.handle
                .send_once(wire::encode_message(&Message::Plan(plan.clone())))
                .await
                .unwrap();
            unfinished.push(Digest::of(&wire::encode_message(&Message::Plan(plan))));
        }
        // Finished, and another system's: never re-sent here.
        execution(&f.core, "em", "SUCCESS", &[]).await;
        execution(&f.core, "fm", "SCHEDULED", &[]).await;
        for boot in 1..=5 {
            handle_message(&f.handle.link, hello(boot, Vec::new()))
                .await
                .unwrap();
        }
        let mut plans: Vec<Digest> = queued(&f.handle)
            .await
            .into_iter()
            .filter(|(message, _)| *message)
            .map(|(_, d)| d)
            .collect();
        plans.sort();
        unfinished.sort();
        assert_eq!(plans, unfinished, "each unfinished plan queued once");
    }

    #[tokio::test]
    async fn a_hello_brings_only_the_plans_the_agent_lacks() {
        let f = fixture().await;
        let held = execution(&f.core, "em", "RUNNING", &[]).await;
        let lost = execution(&f.core, "em", "SCHEDULED", &[]).await;
        // The same boot twice: the second asks for nothing.
        for _ in 0..2 {
            handle_message(&f.handle.link, hello(7, vec![held.execution.clone()]))
                .await
                .unwrap();
        }
        let lost_digest = Digest::of(&wire::encode_message(&Message::Plan(lost)));
        assert_eq!(queued(&f.handle).await, [(true, lost_digest)]);
    }

    #[tokio::test]
    async fn a_system_is_served_only_the_objects_of_its_unfinished_executions() {
        let f = fixture().await;
        let blobs = &f.core.blobs;
        let ours = blobs.put(b"ours").await.unwrap();
        let finished = blobs.put(b"done").await.unwrap();
        let others = blobs.put(b"fm's").await.unwrap();
        let stray = blobs.put(b"anyone's upload").await.unwrap();
        let plan = execution(&f.core, "em", "SCHEDULED", &[ours]).await;
        execution(&f.core, "em", "SUCCESS", &[finished]).await;
        execution(&f.core, "fm", "SCHEDULED", &[others]).await;
        let plan_digest = Digest::of(&wire::encode_message(&Message::Plan(plan)));
        let need = Message::Need {
            digests: vec![stray, finished, others, plan_digest, ours, ours],
        };
        handle_message(&f.handle.link, need).await.unwrap();
        assert_eq!(queued(&f.handle).await, [(false, ours)]);
    }

    #[tokio::test]
    async fn a_message_that_keeps_failing_is_given_up_and_counted() {
        let f = fixture().await;
        // Every listing fails to be stored.
        sqlx::query(
            "CREATE TRIGGER fail_listings BEFORE INSERT ON volume_files \
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
        )
        .execute(&f.core.db)
        .await
        .unwrap();
        let listing = Message::VolumeListing {
            tenant: "alice".into(),
            volume: "pvc".into(),
            files: vec![wire::FileEntry {
                path: "a".into(),
                size: 1,
                is_dir: false,
                modified_ms: 0,
            }],
        };
        let event = LinkEvent::Message {
            seq: 0,
            bytes: wire::encode_message(&listing),
        };
        handle_with_retries(&f.handle.link, event).await;
        assert_eq!(
            f.counts.get(),
            MessageCounters {
                failures: u64::from(link::MESSAGE_ATTEMPTS),
                dropped: 1
            }
        );

        // Garbage is given up at once: it will never decode.
        let junk = LinkEvent::Message {
            seq: 1,
            bytes: vec![0xff; 9],
        };
        handle_with_retries(&f.handle.link, junk).await;
        assert_eq!(f.counts.get().dropped, 2);
    }
}
