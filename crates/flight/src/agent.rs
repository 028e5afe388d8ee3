//! The agent: plans in, events out.
//!
//! Long file: the agent's message dispatch, one arm per wire message, read as one table; what
//! each arm does at length lives in its own module (`agent_patches`, `agent_run`, `plans`).
//!
//! Two loops share one [`Agent`]: the event loop ([`Agent::handle_event`]) accepts plans and
//! learns of arrived objects, without ever waiting, and the plan loop ([`Agent::run_plans`]) runs
//! queued plans, each in a task of its own, side by side unless they conflict (see `schedule`:
//! one tenant's plans run one after the other, in arrival order; different tenants' never wait
//! for each other, but for their builds, loads and image deletions, one at a time), at most
//! [`MAX_RUNNING_PLANS`] at once besides those waiting for a trigger (see `agent_triggers`). Each plan's events go out in its tasks' order. A plan is
//! persisted before it is queued and after
//! each task, so a restarted agent resumes where it stopped (a task cut short runs again from its
//! start, after the recorded events of the tasks before it are sent again, in case they were lost
//! with the restart). Objects never travel as messages: the link session moves them between its
//! object directory, which is the agent's object store, and the ground's.
//!
//! # Which plans run
//!
//! Only plans the ground signed for this system, still valid, and never accepted before. In
//! order, before anything is looked up or recorded: the signature (a plan that fails it is
//! logged and dropped, with no record and no answer: nothing in it can be trusted, not even its
//! execution id); then the system it names. Then, by its now trustworthy execution id, the record
//! of a plan the agent already holds (sent again: its events are replayed if it finished, else
//! nothing happens). A new plan must not have expired (by the onboard clock) and its sequence
//! number must never have been accepted (see `plans::Sequences`, kept durably, in two copies;
//! after both were lost, a plan issued before the loss less the plans' validity window is
//! refused whatever its number): a plan refused
//! for either, or for another system, is answered with failed events and leaves no record.
//!
//! # Handled when stored
//!
//! [`run`] acknowledges a message to the link only once [`Agent::handle_event`] returned: a plan
//! is then stored and synced (or refused). An error (a record that cannot be written) leaves it
//! unacknowledged: it is tried again, after [`link::MESSAGE_RETRY_AFTER`] and doubling, and
//! after [`link::MESSAGE_ATTEMPTS`] failures given up on, logged and counted; a restart meanwhile
//! gets it again from the link.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use link::LinkEvent;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use wire::{
    BaseImage, Digest, ErrorCode, Message, OnFailure, Plan, PlanBindingError, PlanTask, TaskError,
    TaskState,
};

use crate::cancels::Cancels;

use crate::config::{AgentConfig, FlightConfig};
use crate::error::{Error, ErrorKind};
use crate::fsutil::now_ms;
use crate::names;
use crate::plans::{PlanRecord, PlanStore, SEQUENCE_WINDOW, Sequences, TaskRecord};
use crate::runtime::{DockerRuntime, Runtime};
use crate::schedule::{self, Claim};
use crate::store::ObjectStore;
use crate::tasks::{Executor, OBJECT_WAIT, TaskResult};
use crate::volumes::Volumes;

/// Plans waiting to run; a plan beyond this is refused (`BUSY`).
const MAX_QUEUED_PLANS: usize = 256;
/// Plans running at once.
const MAX_RUNNING_PLANS: usize = 8;
/// Messages and objects waiting for the link, in [`run`].
const OUTBOX: usize = 64;
/// How often the agent says `Hello` (when the link is up and idle).
const HELLO_EVERY: Duration = Duration::from_secs(30);

/// What the agent has for the ground, in the order it goes to the link.
// A message is a few hundred bytes inline; the outbox holds at most `OUTBOX` of them, so boxing
// each would only add an allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// A message, encoded for the link by [`run`] (see [`link::MessageSender::send`]).
    Message(Message),
    /// An object of the agent's object store ([`Agent::object_layout`]), to be sent as an object
    /// transfer (see [`link::MessageSender::send_object`]).
    Object {
        /// The object's sha256.
        digest: Digest,
        /// Its size in bytes.
        size: u64,
        /// Its priority on the link: lower goes first; messages are 0.
        priority: u8,
    },
}

/// The onboard agent, without the link: it takes the link's events through
/// [`handle_event`](Agent::handle_event), runs plans with [`run_plans`](Agent::run_plans) or
/// single tasks with [`run_task`](Agent::run_task), and puts what it has for the ground in the
/// outbox given at [`connect`](Agent::connect). Its object store is the link's object directory
/// ([`object_layout`](Agent::object_layout)). Cheap to clone.
#[derive(Clone)]
pub struct Agent {
    inner: Arc<Inner>,
}

struct Inner {
    exec: Executor,
    /// The system the agent runs as: plans must name it.
    system: String,
    plans: PlanStore,
    /// The plan sequence numbers accepted (saved with `plans`).
    sequences: Mutex<Sequences>,
    queue: Mutex<VecDeque<PlanRecord>>,
    /// The plans running, by execution, with what they claim.
    running: Mutex<Vec<(String, Claim)>>,
    queued: Notify,
    next_seq: AtomicU64,
    /// Drawn at start; sent in every `Hello` (see `wire::Message::Hello`).
    boot: u64,
    /// The ground's public plan key (see `AgentConfig::plan_verifier`).
    verifier: Option<wire::PlanVerifier>,
    /// Messages given up on (see [`run`]).
    dropped: AtomicU64,
    /// Patches announced, not yet applied (see `agent_patches`).
    patcher: crate::patches::Patcher,
    /// The digests of the volumes' files (see `inventory`).
    digests: crate::inventory::FileDigests,
    /// Plans found cancelled at start, ended by [`Agent::run_plans`] before anything runs (see
    /// `agent_cancel`).
    cancelled_at_start: Mutex<Vec<PlanRecord>>,
    /// The running slots, held by running plans except while they wait for a trigger (see
    /// `agent_triggers`).
    slots: triggering::PlanSlots,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("scratch", &self.inner.exec.scratch)
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// Opens the state and volumes directories, connects to the local Docker Engine and loads
    /// the unfinished plans. What the agent has for the ground goes to `outbox`, which the caller
    /// must drain (its bound is the caller's).
    pub async fn connect(
        config: AgentConfig,
        outbox: mpsc::Sender<Outgoing>,
    ) -> Result<Agent, Error> {
        if config.builder != wire::Builder::Classic {
            return Err(Error::new(
                crate::error::ErrorKind::Invalid,
                format!(
                    "builder {}: the Docker adapter builds only with the classic builder",
                    config.builder
                ),
            ));
        }
        let runtime = Arc::new(DockerRuntime::connect().await?);
        Agent::with_runtime(&config, runtime, outbox)
    }

    pub(crate) fn with_runtime(
        config: &AgentConfig,
        runtime: Arc<dyn Runtime>,
        outbox: mpsc::Sender<Outgoing>,
    ) -> Result<Agent, Error> {
        let state = &config.state_dir;
        std::fs::create_dir_all(state)
            .map_err(|e| Error::io("cannot create the state folder", state, e))?;
        let scratch = state.join("tmp");
        // Staged archives and contexts of a previous run are of no use now.
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch).map_err(|e| Error::io("cannot create", &scratch, e))?;
        let plans = PlanStore::open(state)?;
        // A record runs only if its plan still bears the ground's signature.
        let pending = plans.load_pending_signed(|plan| {
            config
                .plan_verifier
                .as_ref()
                .is_none_or(|v| v.verify(plan).is_ok())
        });
        let next_seq = pending.iter().map(|r| r.seq + 1).max().unwrap_or(1);
        let mut sequences = plans.load_sequences(&pending, now_ms());
        // A plan cancelled before the restart is not resumed: it is ended, its pods stopped,
        // once the agent runs (`Agent::run_plans`).
        let cancels = Arc::new(Cancels::open(state, now_ms(), |e| plans.standing(e))?);
        let (cancelled_at_start, pending): (Vec<PlanRecord>, Vec<PlanRecord>) = pending
            .into_iter()
            .partition(|r| cancels.by(&r.plan.execution).is_some());
        if let Err(e) = plans.save_sequences(&mut sequences) {
            // Marked in memory; saved with the next plan accepted.
            tracing::error!(error = %e, "cannot save the plan sequences");
        }
        if !pending.is_empty() {
            tracing::info!(plans = pending.len(), "resuming unfinished plans");
        }
        let bases = config
            .catalogue
            .clone()
            .unwrap_or_else(|| wire::catalogue(&names::host_platform()));
        let clock = crate::MissionClock::open(config.clock, state);
        let exec = Executor {
            runtime,
            volumes: Arc::new(Volumes::open(&config.volumes_dir, state)?),
            store: Arc::new(ObjectStore::open(state)?),
            disk: Arc::new(crate::disk::Disk::open(
                config.limits,
                state,
                &config.volumes_dir,
            )),
            scratch,
            outbox,
            catalogue: bases.iter().map(|b| b.name.clone()).collect(),
            bases,
            builder: config.builder,
            object_wait: OBJECT_WAIT,
            pods: Arc::default(),
            quotas: Arc::new(config.quotas.clone()),
            ledger: Arc::new(crate::quota::Ledger::open(state)),
            gpu: gpu_of_this_machine(),
            engine_storage: Arc::default(),
            cancels,
            clock,
            telemetry: crate::telemetry::Telemetry::open(state, clock)
                .map_err(|e| Error::io("cannot open the telemetry history in", state, e))?,
        };
        for record in &pending {
            if let Some(elements) = &record.plan.elements {
                exec.telemetry.offer_elements(elements);
            }
        }
        exec.telemetry.start();
        let agent = Agent {
            inner: Arc::new(Inner {
                exec,
                system: config.system.clone(),
                plans,
                sequences: Mutex::new(sequences),
                queue: Mutex::new(pending.into()),
                running: Mutex::default(),
                queued: Notify::new(),
                next_seq: AtomicU64::new(next_seq),
                boot: rand::random(),
                verifier: config.plan_verifier.clone(),
                dropped: AtomicU64::new(0),
                patcher: crate::patches::Patcher::new(),
                digests: crate::inventory::FileDigests::open(state, &config.volumes_dir),
                cancelled_at_start: Mutex::new(cancelled_at_start),
                slots: triggering::PlanSlots::new(MAX_RUNNING_PLANS),
            }),
        };
        // A crash between a patch's result stored and the patch removed left it behind.
        agent.remove_spent_patches();
        // The objects of resumed plans are asked for again: a plan's `Need` goes out through the
        // outbox, in memory, after its message is acknowledged, so a restart may have lost it
        // (and the uplink would wait for `NEED_RETRY` before asking again).
        let needs: Vec<Message> = agent
            .lock_queue()
            .iter()
            .flat_map(|r| agent.want_missing(&r.plan))
            .collect();
        agent.send_soon(needs);
        Ok(agent)
    }

    /// Runs one task for `tenant` as task `index` of `execution` (which name and label a pod's
    /// container, and key what is kept of it across restarts), with no events: the way to drive the agent without a link. An uplink's objects must be in the
    /// object store (put them at [`object_layout`](Agent::object_layout) and say so with
    /// [`handle_event`](Agent::handle_event), as the link does); a downlink's objects go to the
    /// outbox.
    pub async fn run_task(
        &self,
        tenant: &str,
        execution: &str,
        index: usize,
        task: &PlanTask,
    ) -> TaskResult {
        self.inner.exec.run(tenant, execution, index, task).await
    }

    /// The onboard telemetry service (see `crate::telemetry`).
    pub fn telemetry(&self) -> &crate::telemetry::Telemetry {
        &self.inner.exec.telemetry
    }

    /// Where the agent keeps its objects: the link endpoint's object directory.
    pub fn object_layout(&self) -> link::ObjectLayout {
        self.inner.exec.store.layout().clone()
    }

    /// The link endpoint's judgement of the objects the ground offers: within the object
    /// store's limit (with what it is receiving) and beside the reserve (`disk::admission`).
    pub fn admission(&self) -> link::Admission {
        crate::disk::admission(
            self.inner.exec.disk.clone(),
            self.inner.exec.store.layout().root().to_path_buf(),
        )
    }

    /// Takes one event of the link: a message is decoded and goes to
    /// [`handle_message`](Agent::handle_message) (one that does not decode is logged with its
    /// sequence number and dropped: it never will); an object that arrived (already verified and
    /// in the object store) wakes the uplinks waiting for it. Never waits. `Ok` means the event
    /// is handled for good (a message may be acknowledged to the link); an error, that it should
    /// be tried again.
    pub fn handle_event(&self, event: LinkEvent) -> Result<(), Error> {
        match event {
            LinkEvent::Message { seq, bytes } => match wire::decode_message(&bytes) {
                Ok(m) => return self.handle_message(m),
                Err(e) => {
                    self.inner.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(seq, error = %e, "dropped an undecodable message");
                }
            },
            LinkEvent::ObjectReceived(digest) => self.object_arrived(&digest),
            LinkEvent::ObjectDelivered(digest) => {
                tracing::debug!(%digest, "the ground has an object")
            }
            LinkEvent::ObjectFailed(digest, error) => {
                tracing::warn!(%digest, %error, "an object for the ground could not be sent")
            }
            LinkEvent::ObjectRefused(digest, reason) => {
                tracing::warn!(%digest, %reason, "the ground refused an object")
            }
            // No room for it onboard: the uplink waiting for it fails with the reason.
            LinkEvent::ObjectDeclined(digest, reason) => {
                self.inner.exec.store.declined(&digest, &reason)
            }
        }
        Ok(())
    }

    /// Takes one message from the ground: a [`Message::Plan`] is checked (see the module
    /// documentation), then persisted and queued (and its missing objects asked for at once), or
    /// refused; a [`Message::Cancel`] likewise, then persisted and carried out (`agent_cancel`); a
    /// [`Message::Elements`] likewise, then kept by telemetry (`agent_elements`). Others are
    /// ignored. Never waits. An error means a plan or cancel could not be stored: nothing was
    /// answered, and the same message may be handled again.
    pub fn handle_message(&self, message: Message) -> Result<(), Error> {
        match message {
            Message::Plan(plan) => self.accept(plan)?,
            Message::Cancel(order) => self.cancel(order)?,
            Message::Elements(order) => self.take_elements(order),
            Message::Patches { patches } => self.take_patches(patches),
            Message::InventoryRequest { objects, volumes } => {
                self.answer_inventory(objects, volumes)
            }
            Message::Need { .. } => tracing::debug!("ignored a Need from the ground"),
            other => {
                tracing::debug!(message = ?std::mem::discriminant(&other), "ignored a message meant for the ground")
            }
        }
        Ok(())
    }

    /// Messages given up on since the agent started: undecodable, or failed
    /// [`link::MESSAGE_ATTEMPTS`] times in [`run`].
    pub fn messages_dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Runs queued plans forever, side by side unless they conflict (see the module's
    /// documentation); abort the task running it to stop, which stops the plans it runs. The
    /// objects of resumed plans were asked for when the plans arrived; the link session resumes
    /// their transfers, and an uplink that waits too long asks again.
    pub async fn run_plans(&self) {
        self.end_cancelled_at_start().await;
        self.take_up_detached_pods().await;
        let mut plans = JoinSet::new();
        let mut executions = std::collections::HashMap::new();
        loop {
            while plans.len() < MAX_RUNNING_PLANS + MAX_AWAITING_TRIGGERS {
                let Some(slot) = self.inner.slots.try_take() else {
                    break;
                };
                let Some(record) = self.next_runnable() else {
                    break;
                };
                let (agent, execution) = (self.clone(), record.plan.execution.clone());
                self.inner.slots.hold(&execution, slot);
                let task = plans.spawn(async move { agent.execute(record).await });
                executions.insert(task.id(), execution);
            }
            tokio::select! {
                _ = self.inner.queued.notified() => {}
                Some(ended) = plans.join_next_with_id(), if !plans.is_empty() => {
                    let id = match ended {
                        Ok((id, ())) => id,
                        Err(e) => {
                            // Its record stays unfinished: the plan resumes at the next start.
                            tracing::error!(error = %e, "a plan's task ended abnormally");
                            e.id()
                        }
                    };
                    if let Some(execution) = executions.remove(&id) {
                        self.inner.slots.release(&execution);
                        self.lock_running().retain(|(e, _)| *e != execution);
                    }
                }
            }
        }
    }

    /// Takes the first queued plan that conflicts with no running plan and no plan queued before
    /// it, and counts it as running.
    fn next_runnable(&self) -> Option<PlanRecord> {
        let mut running = self.lock_running();
        let mut queue = self.lock_queue();
        let claims: Vec<Claim> = queue.iter().map(|r| Claim::of(&r.plan)).collect();
        let held: Vec<Claim> = running.iter().map(|(_, c)| c.clone()).collect();
        let i = schedule::next_runnable(&claims, &held)?;
        let record = queue.remove(i)?;
        running.push((record.plan.execution.clone(), claims[i].clone()));
        Some(record)
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, Vec<(String, Claim)>> {
        self.inner.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Supervises again the detached pods a previous run of the agent left running (see
    /// `tasks::pods`); [`run_plans`](Agent::run_plans) does it first.
    pub async fn take_up_detached_pods(&self) {
        self.inner.exec.take_up_detached().await
    }

    /// The agent's `Hello`: its system name, platform and catalogue with the image ids present,
    /// its boot id, and the executions whose plans it holds unfinished (so that the ground
    /// re-sends only the others).
    pub async fn hello(&self) -> Message {
        Message::Hello {
            agent: self.inner.system.clone(),
            platform: names::host_platform(),
            catalogue: catalogue_of(self.inner.exec.runtime.as_ref(), &self.inner.exec.bases).await,
            boot: self.inner.boot,
            holds: self.inner.plans.held(wire::MAX_HELD_PLANS),
            engine: crate::catalogue::engine_report(
                &*self.inner.exec.runtime,
                self.inner.exec.builder,
            )
            .await,
        }
    }

    /// The layers of the catalogue's images present onboard, sent after each `Hello`: what the
    /// ground may leave out of a `docker save` archive it sends up (see `layer_source`).
    pub async fn base_layers(&self) -> Message {
        let exec = &self.inner.exec;
        Message::BaseLayers {
            images: crate::layer_source::base_layers(exec.runtime.as_ref(), &exec.bases).await,
        }
    }

    fn lock_queue(&self) -> std::sync::MutexGuard<'_, VecDeque<PlanRecord>> {
        self.inner.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_sequences(&self) -> std::sync::MutexGuard<'_, Sequences> {
        self.inner
            .sequences
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers, durably, that the plan numbered `seq` was accepted and its record filed.
    fn mark_accepted(&self, seq: u64) -> Result<(), Error> {
        let mut s = self.lock_sequences();
        s.filed(seq);
        self.inner.plans.save_sequences(&mut s)
    }

    /// Remembers, durably, that `plan` is accepted, before its record is filed: no crash can
    /// leave a record whose number is not saved.
    fn mark_filing(&self, plan: &Plan) -> Result<(), Error> {
        let mut s = self.lock_sequences();
        s.mark_filing(plan.sequence, plan);
        self.inner.plans.save_sequences(&mut s)
    }

    async fn send(&self, message: Message) {
        self.send_outgoing(Outgoing::Message(message)).await
    }

    async fn send_outgoing(&self, out: Outgoing) {
        let outbox = &self.inner.exec.outbox;
        if outbox.send(out).await.is_err() {
            tracing::warn!("the outbox is closed; a message to the ground is lost");
        }
    }

    /// The objects the recorded task `event` of `record` sent down, to send again (see
    /// `Executor::downlinked`).
    fn downlinked(&self, record: &PlanRecord, event: &TaskRecord) -> Vec<Outgoing> {
        match record.plan.tasks.get(event.task as usize) {
            Some(task) => self
                .inner
                .exec
                .downlinked(&task.kind, event.outputs.as_ref()),
            None => Vec::new(),
        }
    }

    /// Sends without waiting, in order: what the message loop says must never wait for the
    /// outbox, or a full outbox (a long downlink) and a busy link could wait on each other. When
    /// the outbox is full, the rest goes from a task of its own; such batches come only from
    /// plans (at most one per plan received).
    fn send_soon(&self, batch: Vec<Message>) {
        self.send_soon_outgoing(batch.into_iter().map(Outgoing::Message).collect());
    }

    /// [`send_soon`](Agent::send_soon), for objects too.
    fn send_soon_outgoing(&self, batch: Vec<Outgoing>) {
        let mut batch = batch.into_iter();
        while let Some(m) = batch.next() {
            match self.inner.exec.outbox.try_send(m) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(m)) => {
                    let outbox = self.inner.exec.outbox.clone();
                    let rest: Vec<Outgoing> = std::iter::once(m).chain(batch).collect();
                    tokio::spawn(async move {
                        for m in rest {
                            if outbox.send(m).await.is_err() {
                                return;
                            }
                        }
                    });
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    tracing::warn!("the outbox is closed; a message to the ground is lost");
                    return;
                }
            }
        }
    }

    fn accept(&self, plan: Plan) -> Result<(), Error> {
        // The signature first: until it verifies, nothing in the plan is trusted, not even its
        // execution id, so nothing is looked up, recorded or answered.
        if let Some(Err(e)) = self.inner.verifier.as_ref().map(|v| v.verify(&plan)) {
            tracing::warn!(
                claimed_execution = plan.execution,
                claimed_system = plan.system,
                error = %e,
                "refused a plan that is not the ground's; nothing recorded, nothing answered"
            );
            return Ok(());
        }
        if let Err(m) = names::check_execution(&plan.execution) {
            tracing::warn!(error = %m, "refused a plan");
            self.send_soon(vec![execution_event(&plan.execution, TaskState::Failed)]);
            return Ok(());
        }
        let now = now_ms();
        if let Err(e @ PlanBindingError::OtherSystem { .. }) =
            plan.check_binding(&self.inner.system, now)
        {
            self.refuse(plan, ErrorCode::ValidationError, e.to_string());
            return Ok(());
        }
        if let Some(known) = self.inner.plans.find(&plan.execution) {
            if known.finished {
                tracing::info!(
                    execution = plan.execution,
                    "a finished plan came again; sending its events again"
                );
                let objects = known.events.iter().flat_map(|e| self.downlinked(&known, e));
                self.send_soon_outgoing(
                    objects
                        .chain(replay(&known).into_iter().map(Outgoing::Message))
                        .collect(),
                );
            } else {
                tracing::info!(
                    execution = plan.execution,
                    "a plan came again; it is already queued"
                );
            }
            // Its number was saved when it was accepted, unless that failed: save it now.
            return self.mark_accepted(known.plan.sequence);
        }
        if let Some(by) = self.inner.exec.cancels.by(&plan.execution) {
            return self.file_cancelled(plan, &by);
        }
        if let Err(e) = plan.check_binding(&self.inner.system, now) {
            self.refuse(plan, ErrorCode::ValidationError, e.to_string());
            return Ok(());
        }
        // A signed plan's element set is the newest the agent knows, if it is newer by epoch.
        if let Some(elements) = &plan.elements {
            self.inner.exec.telemetry.offer_elements(elements);
        }
        let (is_new, being_filed, high_water, too_early) = {
            let s = self.lock_sequences();
            (
                s.is_new(plan.sequence),
                s.was_being_filed(&plan),
                s.high_water(),
                s.issued_too_early(plan.issued_ms),
            )
        };
        if let Some(message) = too_early {
            self.refuse(plan, ErrorCode::ValidationError, message);
            return Ok(());
        }
        // A plan whose record was set aside as unreadable comes again from the ground: its
        // number was seen, and it runs again from its first task.
        let recovered = !is_new && self.inner.plans.was_set_aside(&plan.execution);
        if recovered {
            tracing::warn!(
                execution = plan.execution,
                sequence = plan.sequence,
                "a plan whose record was set aside came again; running it from the start"
            );
        }
        if being_filed {
            tracing::warn!(
                execution = plan.execution,
                sequence = plan.sequence,
                "a plan whose number was saved but whose record was not came again; filing it now"
            );
        }
        if !is_new && !recovered && !being_filed {
            let message = format!(
                "plan sequence {} was accepted before, or is older than the last {SEQUENCE_WINDOW} \
                 accepted (the highest is {high_water}): a replay",
                plan.sequence
            );
            self.refuse(plan, ErrorCode::ValidationError, message);
            return Ok(());
        }
        let refusal = if let Err(m) = names::check_tenant(&plan.tenant) {
            Some((ErrorCode::ValidationError, m))
        } else if self.lock_queue().len() >= MAX_QUEUED_PLANS {
            Some((
                ErrorCode::Busy,
                format!("the onboard plan queue is full ({MAX_QUEUED_PLANS} plans)"),
            ))
        } else {
            None
        };
        let sequence = plan.sequence;
        // The number is saved before the record is filed or queued. Not saved means not
        // accepted: the error leaves the message unacknowledged.
        self.mark_filing(&plan)?;
        if let Some((code, message)) = refusal {
            // Filed: the same plan again is answered from the record.
            tracing::warn!(execution = plan.execution, %message, "refused a plan");
            let record = self.refusal(plan, code, message);
            self.inner.plans.finish(&record)?;
            self.send_soon(replay(&record));
            return self.mark_accepted(sequence);
        }
        let record = PlanRecord {
            seq: self.inner.next_seq.fetch_add(1, Ordering::Relaxed),
            plan,
            next: 0,
            failed: false,
            finished: false,
            events: Vec::new(),
            cancelled: false,
            trigger: None,
        };
        // Not persisted means not accepted: the error leaves the message unacknowledged.
        self.inner.plans.save(&record)?;
        if recovered {
            self.inner.plans.mark_recovered(&record.plan.execution);
        }
        tracing::info!(
            execution = record.plan.execution,
            tenant = record.plan.tenant,
            tasks = record.plan.tasks.len(),
            sequence,
            "accepted a plan"
        );
        // Ask for the objects first, so they stream while earlier plans run.
        self.send_soon(self.want_missing(&record.plan));
        self.lock_queue().push_back(record);
        self.inner.queued.notify_one();
        // The record is filed: the number no longer waits for it.
        self.mark_accepted(sequence)
    }

    /// Refuses a plan whose signature verified, without filing it: a failed event for each task
    /// and for the execution.
    fn refuse(&self, plan: Plan, code: ErrorCode, message: String) {
        tracing::warn!(
            execution = plan.execution,
            system = plan.system,
            sequence = plan.sequence,
            %message,
            "refused a plan"
        );
        let record = self.refusal(plan, code, message);
        self.send_soon(replay(&record));
    }

    /// The record of a refused plan: every task failed with `message`.
    fn refusal(&self, plan: Plan, code: ErrorCode, message: String) -> PlanRecord {
        let at_ms = now_ms();
        let events = (0..plan.tasks.len())
            .map(|i| TaskRecord {
                task: i as u32,
                state: TaskState::Failed,
                at_ms,
                error: Some(TaskError {
                    code,
                    message: message.clone(),
                    log_tail: Vec::new(),
                }),
                outputs: None,
            })
            .collect();
        PlanRecord {
            seq: self.inner.next_seq.fetch_add(1, Ordering::Relaxed),
            plan,
            next: 0,
            failed: true,
            finished: true,
            events,
            cancelled: false,
            trigger: None,
        }
    }

    async fn execute(&self, mut record: PlanRecord) {
        let execution = record.plan.execution.clone();
        let tenant = record.plan.tenant.clone();
        if let Some(by) = self.inner.exec.cancels.by(&execution) {
            // Cancelled while it waited in the queue: nothing of it runs.
            return self.end_cancelled(record, &by).await;
        }
        tracing::info!(execution, tenant, from = record.next, "running a plan");
        self.send(execution_event(&execution, TaskState::Running))
            .await;
        // Resumed after a restart: the final events of the tasks that ran may have been lost with
        // it (they are sent before the record is saved). The ground ignores those it has.
        for event in &record.events {
            for object in self.downlinked(&record, event) {
                self.send_outgoing(object).await;
            }
            for m in replayed_events(&execution, event) {
                self.send(m).await;
            }
        }
        while record.next < record.plan.tasks.len() {
            if let Some(by) = self.inner.exec.cancels.by(&execution) {
                // The tasks not started never start.
                return self.end_cancelled(record, &by).await;
            }
            let index = record.next;
            let task = record.plan.tasks[index].clone();
            let result = self.start_when_triggered(&mut record, index, &task).await;
            match &result.error {
                None => tracing::info!(execution, task = task.id, "task succeeded"),
                Some(e) => {
                    tracing::info!(execution, task = task.id, code = e.code.code(), message = %e.message, "task failed")
                }
            }
            if let Some(volume) = changed_volume(&task.kind) {
                self.send_listing(&tenant, volume).await;
            }
            let stopped = result.was_cancelled();
            let event = TaskRecord {
                task: index as u32,
                state: match stopped {
                    true => TaskState::Cancelled,
                    false => result.state(),
                },
                at_ms: now_ms(),
                error: result.error.clone(),
                outputs: Some(result.outputs),
            };
            self.send(record_event(&execution, &event)).await;
            record.events.push(event);
            record.next += 1;
            if result.error.is_some() {
                record.failed = true;
            }
            if let Err(e) = self.inner.plans.save(&record) {
                tracing::error!(execution, error = %e, "cannot persist plan progress");
            }
            if stopped {
                let by = self.inner.exec.cancels.by(&execution).unwrap_or_default();
                return self.end_cancelled(record, &by).await;
            }
            if result.error.is_some() && task.on_failure == OnFailure::Stop {
                break;
            }
        }
        let state = if record.failed {
            TaskState::Failed
        } else {
            TaskState::Success
        };
        self.send(execution_event(&execution, state)).await;
        record.finished = true;
        let filed = self.inner.plans.finish(&record);
        if let Err(e) = &filed {
            tracing::error!(execution, error = %e, "cannot record a finished plan");
        } else {
            self.inner.exec.forget_pods(&execution);
        }
        self.inner.exec.cancels.settle(&execution, filed.is_ok());
        tracing::info!(execution, state = state.as_str(), "plan finished");
    }
}

/// The GPU of this machine a `GPU` pod gets (see `runtime::detect_gpu`), logged once.
fn gpu_of_this_machine() -> crate::runtime::Gpu {
    let gpu = crate::runtime::detect_gpu(
        std::path::Path::new("/dev"),
        std::env::var_os("PATH").as_deref(),
    );
    tracing::info!(gpu = gpu.describe(), "the GPU pods of node GPU get");
    gpu
}

/// The catalogue with the ids of the images present.
pub(crate) async fn catalogue_of(runtime: &dyn Runtime, bases: &[BaseImage]) -> Vec<BaseImage> {
    let mut out = bases.to_vec();
    for entry in &mut out {
        entry.digest = match runtime.inspect_image(&entry.name).await {
            Ok(Some(info)) => info.id.parse().ok(),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(image = entry.name, error = %e.message, "cannot inspect a catalogue image");
                None
            }
        };
    }
    out
}

#[path = "agent_events.rs"]
mod events;
use events::{changed_volume, execution_event, record_event, replay, replayed_events, task_event};
use triggering::MAX_AWAITING_TRIGGERS;

#[path = "agent_run.rs"]
mod behind_link;
#[path = "agent_cancel.rs"]
mod cancelling;
#[path = "agent_elements.rs"]
mod elements;
#[path = "agent_patches.rs"]
mod patching;
#[path = "agent_triggers.rs"]
pub(crate) mod triggering;
pub use behind_link::run;

#[cfg(test)]
mod tests {
    use wire::{ImageRef, TaskKind, UplinkFile};

    use super::*;
    use crate::runtime::fake::FakeRuntime;

    /// A fresh plan sequence number for each plan a test makes (an agent accepts each once).
    fn next_sequence() -> u64 {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    fn agent(dir: &std::path::Path, fake: FakeRuntime) -> (Agent, mpsc::Receiver<Outgoing>) {
        let (tx, rx) = mpsc::channel(1024);
        let config = AgentConfig {
            system: "em".into(),
            state_dir: dir.join("state"),
            volumes_dir: dir.join("volumes"),
            plan_verifier: None,
            builder: wire::Builder::Classic,
            catalogue: None,
            limits: crate::DiskLimits::default(),
            quotas: crate::Quotas::none(),
            clock: crate::ClockConfig::Host,
        };
        (
            Agent::with_runtime(&config, Arc::new(fake), tx).unwrap(),
            rx,
        )
    }

    /// The systems file's catalogue is the one builds and pods are judged against onboard and
    /// the one each Hello reports, not the built-in default.
    #[tokio::test]
    async fn the_declared_catalogue_is_the_onboard_one() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, _rx) = mpsc::channel(16);
        let config = AgentConfig {
            system: "em".into(),
            state_dir: dir.path().join("state"),
            volumes_dir: dir.path().join("volumes"),
            plan_verifier: None,
            builder: wire::Builder::Classic,
            catalogue: Some(vec![wire::BaseImage {
                name: "alpine:3.20".into(),
                platform: "linux/amd64".into(),
                digest: None,
                description: String::new(),
            }]),
            limits: crate::DiskLimits::default(),
            quotas: crate::Quotas::none(),
            clock: crate::ClockConfig::Host,
        };
        let agent = Agent::with_runtime(&config, Arc::new(FakeRuntime::default()), tx).unwrap();
        let exec = &agent.inner.exec;
        assert_eq!(exec.catalogue, ["alpine:3.20"]);
        assert_eq!(
            dockerfile::onboard::classify("alpine:3.20", &exec.catalogue),
            Some(dockerfile::onboard::Target::Catalogue("alpine:3.20".into()))
        );
        let reported = catalogue_of(exec.runtime.as_ref(), &exec.bases).await;
        assert_eq!(
            reported.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(),
            ["alpine:3.20"]
        );
    }

    fn task(id: &str, on_failure: OnFailure, kind: TaskKind) -> PlanTask {
        PlanTask {
            id: id.into(),
            on_failure,
            trigger: None,
            kind,
        }
    }

    /// An object arriving as the link delivers it: in the object directory, then announced.
    fn arrive(agent: &Agent, data: &[u8]) {
        let d = Digest::of(data);
        agent.object_layout().put(data).unwrap();
        agent.handle_event(LinkEvent::ObjectReceived(d)).unwrap();
    }

    fn drain(rx: &mut mpsc::Receiver<Outgoing>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(o) = rx.try_recv() {
            let m = match o {
                Outgoing::Message(m) => m,
                Outgoing::Object { size, priority, .. } => {
                    out.push(format!("object {size} @{priority}"));
                    continue;
                }
            };
            out.push(match m {
                Message::Need { digests } => format!("need {}", digests.len()),
                Message::Want { objects } => format!("want {}", objects.len()),
                Message::Patches { patches } => format!("patches {}", patches.len()),
                // After every listing: left out, as the listings' own tests check them.
                Message::VolumeDigests { .. } => continue,
                Message::TaskEvent {
                    task, state, error, ..
                } => format!(
                    "task {task} {}{}",
                    state.as_str(),
                    error
                        .map(|e| format!(" {}", e.code.code()))
                        .unwrap_or_default()
                ),
                Message::ExecutionEvent { state, .. } => format!("execution {}", state.as_str()),
                Message::VolumeListing { volume, files, .. } => {
                    format!("listing {volume} {}", files.len())
                }
                Message::Hello { .. } => "hello".into(),
                Message::Plan(_) => "plan".into(),
                other => format!("{other:?}"),
            });
        }
        out
    }

    /// Runs the plan loop until it has nothing left, then stops it.
    async fn run_until_idle(agent: &Agent) {
        let a = agent.clone();
        let worker = tokio::spawn(async move { a.run_plans().await });
        // A bound on polls, not a timing: a loaded machine may need many.
        for _ in 0..6000 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if agent.lock_queue().is_empty() && agent.inner.plans.held(1).is_empty() {
                break;
            }
        }
        worker.abort();
    }

    #[tokio::test]
    async fn a_plan_asks_for_objects_then_runs_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, mut rx) = agent(dir.path(), FakeRuntime::default());
        let data = b"hello from the ground".to_vec();
        let d = Digest::of(&data);
        let plan = Plan {
            elements: None,
            execution: "e1".into(),
            tenant: "alice".into(),
            tasks: vec![
                task(
                    "up",
                    OnFailure::Stop,
                    TaskKind::Uplink {
                        volume: "pvc".into(),
                        files: vec![UplinkFile {
                            path: "in/a.txt".into(),
                            digest: d,
                            size: data.len() as u64,
                            mode: 0o644,
                        }],
                    },
                ),
                task(
                    "down",
                    OnFailure::Continue,
                    TaskKind::Downlink {
                        volume: "pvc".into(),
                        sources: vec!["missing".into()],
                    },
                ),
                task(
                    "down2",
                    OnFailure::Stop,
                    TaskKind::Downlink {
                        volume: "pvc".into(),
                        sources: vec!["in/*".into()],
                    },
                ),
                task(
                    "never",
                    OnFailure::Stop,
                    TaskKind::Downlink {
                        volume: "pvc".into(),
                        sources: vec!["nope".into()],
                    },
                ),
                task(
                    "after",
                    OnFailure::Stop,
                    TaskKind::FilesList {
                        volume: None,
                        folder: "/".into(),
                        depth: 1,
                    },
                ),
            ],
            system: "em".into(),
            sequence: next_sequence(),
            issued_ms: 0,
            expires_ms: u64::MAX,
            signature: Vec::new(),
        };
        agent.handle_message(Message::Plan(plan.clone())).unwrap();
        assert_eq!(drain(&mut rx), ["want 1"]);
        // The object arrives while the uplink waits for it, and wakes it.
        let late = {
            let (agent, data) = (agent.clone(), data.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                arrive(&agent, &data);
            })
        };
        run_until_idle(&agent).await;
        late.await.unwrap();
        assert_eq!(
            drain(&mut rx),
            [
                "execution RUNNING",
                "task 0 RUNNING",
                "listing pvc 2",
                "task 0 SUCCESS",
                "task 1 RUNNING",
                "task 1 FAILED 4",
                "task 2 RUNNING",
                "object 21 @2",
                "task 2 SUCCESS",
                "task 3 RUNNING",
                "task 3 FAILED 4",
                "execution FAILED",
            ]
        );
        // The same plan again is not run again; its events are sent again, and the downlink's
        // object with them (issue 11: it may have been lost with a restart, with the ground
        // waiting for it).
        agent.handle_message(Message::Plan(plan)).unwrap();
        let again = drain(&mut rx);
        // Each task that ran says RUNNING again before its end, in case that was lost too.
        assert_eq!(again.len(), 10, "{again:?}");
        assert_eq!(again[1..3], ["task 0 RUNNING", "task 0 SUCCESS"]);
        assert_eq!(again.first().unwrap(), "object 21 @2");
        assert_eq!(again.last().unwrap(), "execution FAILED");
    }

    /// A move changes the volume: the ground gets its new listing.
    #[tokio::test]
    async fn a_move_sends_the_volume_listing() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, mut rx) = agent(dir.path(), FakeRuntime::default());
        let data = b"to be moved".to_vec();
        arrive(&agent, &data);
        let plan = Plan {
            elements: None,
            execution: "e-move".into(),
            tenant: "alice".into(),
            tasks: vec![
                task(
                    "up",
                    OnFailure::Stop,
                    TaskKind::Uplink {
                        volume: "pvc".into(),
                        files: vec![UplinkFile {
                            path: "out/a.txt".into(),
                            digest: Digest::of(&data),
                            size: data.len() as u64,
                            mode: 0o644,
                        }],
                    },
                ),
                task(
                    "mv",
                    OnFailure::Stop,
                    TaskKind::FilesMove {
                        volume: "pvc".into(),
                        source: "out/a.txt".into(),
                        destination: "keep/a.txt".into(),
                    },
                ),
            ],
            system: "em".into(),
            sequence: next_sequence(),
            issued_ms: 0,
            expires_ms: u64::MAX,
            signature: Vec::new(),
        };
        agent.handle_message(Message::Plan(plan)).unwrap();
        run_until_idle(&agent).await;
        let mut listings = Vec::new();
        while let Ok(o) = rx.try_recv() {
            if let Outgoing::Message(Message::VolumeListing { volume, files, .. }) = o {
                let paths: Vec<String> = files.into_iter().map(|f| f.path).collect();
                listings.push((volume, paths));
            }
        }
        assert_eq!(
            listings,
            [
                ("pvc".to_string(), vec!["/out".into(), "/out/a.txt".into()]),
                (
                    "pvc".to_string(),
                    vec!["/keep".into(), "/keep/a.txt".into(), "/out".into()]
                ),
            ]
        );
    }

    #[tokio::test]
    async fn an_unfinished_plan_resumes_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let d = Digest::of(b"late");
        {
            let (agent, mut rx) = agent(dir.path(), FakeRuntime::default());
            let plan = Plan {
                elements: None,
                execution: "e2".into(),
                tenant: "alice".into(),
                tasks: vec![task(
                    "up",
                    OnFailure::Stop,
                    TaskKind::Uplink {
                        volume: "pvc".into(),
                        files: vec![UplinkFile {
                            path: "late.txt".into(),
                            digest: d,
                            size: 4,
                            mode: 0o600,
                        }],
                    },
                )],
                system: "em".into(),
                sequence: next_sequence(),
                issued_ms: 0,
                expires_ms: u64::MAX,
                signature: Vec::new(),
            };
            agent.handle_message(Message::Plan(plan)).unwrap();
            assert_eq!(drain(&mut rx), ["want 1"]);
            // The agent stops before running it.
        }
        let (agent, mut rx) = agent(dir.path(), FakeRuntime::default());
        arrive(&agent, b"late");
        run_until_idle(&agent).await;
        let events = drain(&mut rx);
        // The objects were asked for when the plan came, and are asked for again at the restart
        // (issue 11: the first `Need` may have been lost with it).
        assert_eq!(events[..2], ["want 1", "execution RUNNING"], "{events:?}");
        assert_eq!(events.last().unwrap(), "execution SUCCESS", "{events:?}");
        assert!(dir.path().join("volumes/alice/pvc/late.txt").is_file());
    }

    /// A long pod of one tenant does not hold up another tenant's plan; the same tenant's plans
    /// wait for it, on its volume or another, then run in the order they came.
    #[tokio::test]
    async fn plans_of_different_tenants_run_side_by_side_and_a_tenants_in_turn() {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeRuntime::with(|s| {
            s.images.insert(
                "busybox:latest".into(),
                crate::runtime::ImageInfo {
                    id: format!("sha256:{}", "b".repeat(64)),
                    ..Default::default()
                },
            );
            // Pods never exit: the long one ends at its max_duration.
            s.exit_code = None;
        });
        let (agent, mut rx) = agent(dir.path(), fake);
        let plan = |execution: &str, tenant: &str, kind: TaskKind| Plan {
            execution: execution.into(),
            tenant: tenant.into(),
            tasks: vec![task("t", OnFailure::Stop, kind)],
            system: "em".into(),
            sequence: next_sequence(),
            elements: None,
            issued_ms: 0,
            expires_ms: u64::MAX,
            signature: Vec::new(),
        };
        let list = |volume: &str| TaskKind::FilesList {
            volume: Some(volume.into()),
            folder: "/".into(),
            depth: 1,
        };
        let long_pod = TaskKind::PodRun {
            pod_name: "long".into(),
            image: ImageRef {
                name: "busybox".into(),
                tag: "latest".into(),
            },
            command: None,
            args: None,
            env: vec![],
            volume: "pvc".into(),
            max_duration_ms: Some(1500),
            scheduled_ms: None,
            detached: false,
            node: None,
            merged: false,
            ports: vec![],
        };
        for p in [
            plan("e-long", "alice", long_pod),
            plan("e-same-volume", "alice", list("pvc")),
            plan("e-other-volume", "alice", list("other")),
            plan("e-other-tenant", "bob", list("pvc")),
        ] {
            agent.handle_message(Message::Plan(p)).unwrap();
        }
        run_until_idle(&agent).await;
        let mut ended = Vec::new();
        while let Ok(o) = rx.try_recv() {
            if let Outgoing::Message(Message::ExecutionEvent {
                execution, state, ..
            }) = o
                && state != TaskState::Running
            {
                ended.push(format!("{execution} {}", state.as_str()));
            }
        }
        assert_eq!(ended.len(), 4, "{ended:?}");
        let at = |e: &str| ended.iter().position(|x| x.starts_with(e)).unwrap();
        assert!(at("e-other-tenant") < at("e-long"), "{ended:?}");
        assert!(at("e-long") < at("e-same-volume"), "{ended:?}");
        assert!(at("e-same-volume") < at("e-other-volume"), "{ended:?}");
        assert_eq!(
            ended[at("e-long")],
            "e-long FAILED",
            "stopped at its max_duration"
        );
    }

    #[tokio::test]
    async fn bad_plans_are_refused_without_running() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, mut rx) = agent(dir.path(), FakeRuntime::default());
        let bad_tenant = Plan {
            elements: None,
            execution: "e3".into(),
            tenant: "../bob".into(),
            tasks: vec![task(
                "x",
                OnFailure::Stop,
                TaskKind::PodRun {
                    pod_name: "p".into(),
                    image: ImageRef {
                        name: "busybox".into(),
                        tag: "latest".into(),
                    },
                    command: None,
                    args: None,
                    env: vec![],
                    volume: "pvc".into(),
                    max_duration_ms: None,
                    scheduled_ms: None,
                    detached: false,
                    node: None,
                    merged: false,
                    ports: vec![],
                },
            )],
            system: "em".into(),
            sequence: next_sequence(),
            issued_ms: 0,
            expires_ms: u64::MAX,
            signature: Vec::new(),
        };
        agent.handle_message(Message::Plan(bad_tenant)).unwrap();
        assert_eq!(drain(&mut rx), ["task 0 FAILED 2", "execution FAILED"]);
        agent
            .handle_message(Message::Plan(Plan {
                execution: "../x".into(),
                tenant: "a".into(),
                tasks: vec![],
                system: "em".into(),
                sequence: next_sequence(),
                elements: None,
                issued_ms: 0,
                expires_ms: u64::MAX,
                signature: Vec::new(),
            }))
            .unwrap();
        assert_eq!(drain(&mut rx), ["execution FAILED"]);
        assert!(agent.lock_queue().is_empty());
    }

    #[tokio::test]
    async fn link_messages_are_decoded_and_undecodable_ones_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, mut rx) = agent(dir.path(), FakeRuntime::default());
        agent
            .handle_event(LinkEvent::Message {
                seq: 0,
                bytes: vec![0xff; 7],
            })
            .unwrap();
        assert_eq!(agent.messages_dropped(), 1, "and counted");
        assert!(drain(&mut rx).is_empty(), "junk is dropped, not answered");
        let refused = Plan {
            execution: "../x".into(),
            tenant: "a".into(),
            tasks: vec![],
            system: "em".into(),
            sequence: next_sequence(),
            elements: None,
            issued_ms: 0,
            expires_ms: u64::MAX,
            signature: Vec::new(),
        };
        agent
            .handle_event(LinkEvent::Message {
                seq: 1,
                bytes: wire::encode_message(&Message::Plan(refused)),
            })
            .unwrap();
        assert_eq!(
            drain(&mut rx),
            ["execution FAILED"],
            "the plan was decoded and judged"
        );
    }

    /// An agent for `system` that runs only plans `ground` signed, on `fake`.
    fn signed_agent(
        dir: &std::path::Path,
        system: &str,
        ground: &wire::PlanSigner,
        fake: Arc<FakeRuntime>,
    ) -> (Agent, mpsc::Receiver<Outgoing>) {
        let (tx, rx) = mpsc::channel(4096);
        let config = AgentConfig {
            system: system.into(),
            state_dir: dir.join("state"),
            volumes_dir: dir.join("volumes"),
            plan_verifier: Some(ground.verifier()),
            builder: wire::Builder::Classic,
            catalogue: None,
            limits: crate::DiskLimits::default(),
            quotas: crate::Quotas::none(),
            clock: crate::ClockConfig::Host,
        };
        (Agent::with_runtime(&config, fake, tx).unwrap(), rx)
    }

    /// A plan of one listing task for `em`, valid for an hour, not signed yet.
    fn listing_plan(execution: &str) -> Plan {
        Plan {
            execution: execution.into(),
            tenant: "alice".into(),
            tasks: vec![task(
                "ls",
                OnFailure::Stop,
                TaskKind::FilesList {
                    volume: None,
                    folder: String::new(),
                    depth: 1,
                },
            )],
            system: "em".into(),
            sequence: next_sequence(),
            elements: None,
            issued_ms: now_ms(),
            expires_ms: now_ms() + 3_600_000,
            signature: Vec::new(),
        }
    }

    /// The error messages of the failed events in `out`.
    fn refusals(rx: &mut mpsc::Receiver<Outgoing>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(o) = rx.try_recv() {
            match o {
                Outgoing::Message(Message::TaskEvent {
                    state: TaskState::Failed,
                    error: Some(e),
                    ..
                }) => out.push(e.message),
                Outgoing::Message(Message::ExecutionEvent {
                    state: TaskState::Failed,
                    ..
                }) => out.push("execution FAILED".into()),
                other => panic!("not a refusal: {other:?}"),
            }
        }
        out
    }

    #[tokio::test]
    async fn only_plans_the_ground_signed_run() {
        let dir = tempfile::tempdir().unwrap();
        let ground = wire::PlanSigner::from_bytes([1; 32]);
        let (agent, mut rx) = signed_agent(dir.path(), "em", &ground, Arc::default());
        // Unsigned, and signed by someone holding another key: dropped with a log line. Nothing
        // is recorded or answered (the execution id cannot be trusted), nothing runs.
        agent
            .handle_message(Message::Plan(listing_plan("e-unsigned")))
            .unwrap();
        let mut forged = listing_plan("e-forged");
        wire::PlanSigner::from_bytes([2; 32]).sign(&mut forged);
        agent.handle_message(Message::Plan(forged)).unwrap();
        assert_eq!(drain(&mut rx), Vec::<String>::new());
        assert!(agent.lock_queue().is_empty());
        assert!(agent.inner.plans.find("e-unsigned").is_none());
        assert!(agent.inner.plans.find("e-forged").is_none());
        // Signed by the ground: queued and run.
        let mut signed = listing_plan("e-signed");
        ground.sign(&mut signed);
        agent.handle_message(Message::Plan(signed)).unwrap();
        run_until_idle(&agent).await;
        let events = drain(&mut rx);
        assert_eq!(events.last().unwrap(), "execution SUCCESS", "{events:?}");
    }

    /// An element set sent on its own is taken only when the ground signed it for this system
    /// and it is newer than the one held: a replay of an older one changes nothing, and the one
    /// taken is on disk before it is used.
    #[tokio::test]
    async fn only_a_newer_element_set_the_ground_signed_replaces_the_one_held() {
        let dir = tempfile::tempdir().unwrap();
        let ground = wire::PlanSigner::from_bytes([1; 32]);
        let (agent, mut rx) = signed_agent(dir.path(), "em", &ground, Arc::default());
        let iss = |epoch: &str| {
            let line1 = format!("1 25544U 98067A   {epoch}  .00016717  00000+0  30275-3 0  999");
            let sum: u32 = line1
                .chars()
                .map(|c| match c {
                    '-' => 1,
                    c => c.to_digit(10).unwrap_or(0),
                })
                .sum();
            wire::Elements {
                name: None,
                line1: format!("{line1}{}", sum % 10),
                line2: "2 25544  51.6416 247.4627 0006703 130.5360 325.0288 15.50377579445214"
                    .into(),
            }
        };
        let (old, new) = (iss("24075.50000000"), iss("24076.50000000"));
        let order = |system: &str, elements: &wire::Elements| wire::ElementsOrder {
            system: system.into(),
            elements: elements.clone(),
            by: "ops".into(),
            issued_ms: now_ms(),
            signature: Vec::new(),
        };
        let mut signed_old = order("em", &old);
        ground.sign_elements(&mut signed_old);
        agent
            .handle_message(Message::Elements(signed_old.clone()))
            .unwrap();
        assert_eq!(agent.telemetry().elements(), Some(old.clone()));
        let mut forged = order("em", &new);
        wire::PlanSigner::from_bytes([2; 32]).sign_elements(&mut forged);
        let mut elsewhere = order("fm", &new);
        ground.sign_elements(&mut elsewhere);
        for refused in [order("em", &new), forged, elsewhere] {
            agent.handle_message(Message::Elements(refused)).unwrap();
        }
        assert_eq!(agent.telemetry().elements(), Some(old.clone()));
        let mut signed_new = order("em", &new);
        ground.sign_elements(&mut signed_new);
        agent.handle_message(Message::Elements(signed_new)).unwrap();
        assert_eq!(agent.telemetry().elements(), Some(new.clone()));
        // A replay of the older order: the newer stays, on disk too.
        agent.handle_message(Message::Elements(signed_old)).unwrap();
        assert_eq!(agent.telemetry().elements(), Some(new.clone()));
        let kept = std::fs::read(dir.path().join("state/telemetry/elements.json")).unwrap();
        assert_eq!(
            serde_json::from_slice::<wire::Elements>(&kept).unwrap(),
            new
        );
        // A plan carrying the older set of the same satellite is judged by the newer; another
        // satellite's set is its own.
        assert_eq!(agent.telemetry().newest_of_satellite(&old), new);
        let mut other = old.clone();
        other.line1 = other.line1.replacen("25544", "25545", 1);
        let last = other.line1.pop().and_then(|c| c.to_digit(10)).unwrap();
        other
            .line1
            .push(char::from_digit((last + 1) % 10, 10).unwrap());
        other.line2 = other.line2.replacen("25544", "25545", 1);
        let last = other.line2.pop().and_then(|c| c.to_digit(10)).unwrap();
        other
            .line2
            .push(char::from_digit((last + 1) % 10, 10).unwrap());
        assert!(orbit::parse_elements(&other).is_ok(), "{other:?}");
        assert_eq!(agent.telemetry().newest_of_satellite(&other), other);
        assert_eq!(drain(&mut rx), Vec::<String>::new(), "never answered");
    }

    /// A cancel order stops a plan only when the ground signed it for this system: one unsigned,
    /// signed with another key, or for another system is dropped, nothing recorded or answered.
    #[tokio::test]
    async fn only_cancels_the_ground_signed_for_this_system_stop_a_plan() {
        let dir = tempfile::tempdir().unwrap();
        let ground = wire::PlanSigner::from_bytes([1; 32]);
        let (agent, mut rx) = signed_agent(dir.path(), "em", &ground, Arc::default());
        let mut plan = listing_plan("e-queued");
        ground.sign(&mut plan);
        agent.handle_message(Message::Plan(plan)).unwrap();
        drain(&mut rx);
        let order = |system: &str| wire::CancelOrder {
            execution: "e-queued".into(),
            system: system.into(),
            by: "alice".into(),
            issued_ms: now_ms(),
            signature: Vec::new(),
        };
        let mut forged = order("em");
        wire::PlanSigner::from_bytes([2; 32]).sign_cancel(&mut forged);
        let mut elsewhere = order("fm");
        ground.sign_cancel(&mut elsewhere);
        let mut too_long = order("em");
        too_long.by = "x".repeat(wire::MAX_CANCEL_BY + 1);
        ground.sign_cancel(&mut too_long);
        for refused in [order("em"), forged, elsewhere, too_long] {
            agent.handle_message(Message::Cancel(refused)).unwrap();
        }
        assert_eq!(drain(&mut rx), Vec::<String>::new());
        assert_eq!(agent.lock_queue().len(), 1, "still queued");
        assert_eq!(
            agent.inner.exec.cancels.by("e-queued"),
            None,
            "nothing kept"
        );
        // The ground's: the queued plan ends there, never started.
        let mut signed = order("em");
        ground.sign_cancel(&mut signed);
        agent.handle_message(Message::Cancel(signed)).unwrap();
        assert_eq!(
            drain(&mut rx),
            ["task 0 CANCELLED 23", "execution CANCELLED"]
        );
        assert!(agent.lock_queue().is_empty());
        let record = agent.inner.plans.find("e-queued").unwrap();
        assert!(record.finished && record.cancelled);
        assert!(agent.inner.plans.held(10).is_empty());
    }

    #[tokio::test]
    async fn a_plan_signed_for_em_is_refused_by_fm() {
        let dir = tempfile::tempdir().unwrap();
        let ground = wire::PlanSigner::from_bytes([1; 32]);
        let (fm, mut rx) = signed_agent(dir.path(), "fm", &ground, Arc::default());
        let mut plan = listing_plan("e-for-em");
        ground.sign(&mut plan);
        fm.handle_message(Message::Plan(plan)).unwrap();
        assert_eq!(
            refusals(&mut rx),
            ["the plan is for system 'em', not 'fm'", "execution FAILED"]
        );
        assert!(fm.lock_queue().is_empty());
        assert!(fm.inner.plans.find("e-for-em").is_none(), "no record");
        assert!(fm.inner.plans.held(10).is_empty());
    }

    #[tokio::test]
    async fn an_expired_plan_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ground = wire::PlanSigner::from_bytes([1; 32]);
        let (agent, mut rx) = signed_agent(dir.path(), "em", &ground, Arc::default());
        let mut plan = listing_plan("e-late");
        plan.issued_ms = now_ms() - 7_200_000;
        plan.expires_ms = now_ms() - 3_600_000;
        ground.sign(&mut plan);
        agent.handle_message(Message::Plan(plan)).unwrap();
        let refused = refusals(&mut rx);
        assert!(
            refused[0].starts_with("the plan expired at "),
            "{refused:?}"
        );
        assert_eq!(refused.len(), 2);
        assert!(agent.lock_queue().is_empty());
        assert!(agent.inner.plans.find("e-late").is_none(), "no record");
    }

    #[tokio::test]
    async fn a_replayed_plan_after_1001_others_creates_no_container() {
        let dir = tempfile::tempdir().unwrap();
        let ground = wire::PlanSigner::from_bytes([1; 32]);
        let fake = Arc::new(FakeRuntime::with(|s| {
            s.images.insert(
                "busybox:latest".into(),
                crate::runtime::ImageInfo {
                    id: format!("sha256:{}", "b".repeat(64)),
                    ..Default::default()
                },
            );
            s.exit_code = Some(0);
        }));
        let creates = |fake: &FakeRuntime| {
            fake.calls()
                .iter()
                .filter(|c| matches!(c, crate::runtime::fake::Call::Create(_)))
                .count()
        };
        let (agent, mut rx) = signed_agent(dir.path(), "em", &ground, fake.clone());
        let mut pod = listing_plan("e-pod");
        pod.tasks = vec![task(
            "run",
            OnFailure::Stop,
            TaskKind::PodRun {
                pod_name: "p".into(),
                image: ImageRef {
                    name: "busybox".into(),
                    tag: "latest".into(),
                },
                command: Some(vec!["true".into()]),
                args: None,
                env: vec![],
                volume: "pvc".into(),
                max_duration_ms: Some(60_000),
                scheduled_ms: None,
                detached: false,
                node: None,
                merged: false,
                ports: vec![],
            },
        )];
        ground.sign(&mut pod);
        agent.handle_message(Message::Plan(pod.clone())).unwrap();
        run_until_idle(&agent).await;
        assert_eq!(creates(&fake), 1, "the pod ran once");
        drain(&mut rx);

        // 1,001 other plans: the pod's record is forgotten.
        for i in 0..1001 {
            let mut other = listing_plan(&format!("e-other-{i}"));
            other.tasks.clear();
            ground.sign(&mut other);
            agent.handle_message(Message::Plan(other)).unwrap();
            if i % 100 == 99 {
                run_until_idle(&agent).await;
                drain(&mut rx);
            }
        }
        run_until_idle(&agent).await;
        drain(&mut rx);
        assert!(agent.inner.plans.find("e-pod").is_none(), "forgotten");

        // The same signed plan again, as an attacker holding the link key could send it.
        agent.handle_message(Message::Plan(pod.clone())).unwrap();
        let refused = refusals(&mut rx);
        assert!(refused[0].contains("a replay"), "{refused:?}");
        assert!(agent.lock_queue().is_empty());
        run_until_idle(&agent).await;
        assert_eq!(creates(&fake), 1, "no second container");
        assert!(agent.inner.plans.find("e-pod").is_none(), "no record");

        // And after a restart of the agent, from the sequences it saved.
        drop(agent);
        let (agent, mut rx) = signed_agent(dir.path(), "em", &ground, fake.clone());
        agent.handle_message(Message::Plan(pod)).unwrap();
        assert!(refusals(&mut rx)[0].contains("a replay"));
        run_until_idle(&agent).await;
        assert_eq!(creates(&fake), 1, "no second container");
    }

    #[tokio::test]
    async fn a_plan_that_cannot_be_stored_is_an_error_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let ground = wire::PlanSigner::from_bytes([1; 32]);
        let (agent, mut rx) = signed_agent(dir.path(), "em", &ground, Arc::default());
        let mut plan = listing_plan("e-disk");
        ground.sign(&mut plan);
        // The folder of plan records is not a folder: nothing can be written there.
        let plans = dir.path().join("state/plans");
        std::fs::rename(&plans, dir.path().join("plans.away")).unwrap();
        std::fs::write(&plans, b"").unwrap();
        assert!(agent.handle_message(Message::Plan(plan.clone())).is_err());
        assert!(drain(&mut rx).is_empty(), "nothing answered");
        assert!(agent.lock_queue().is_empty(), "nothing queued");
        // The disk is back: the same message, handled again, is accepted.
        std::fs::remove_file(&plans).unwrap();
        std::fs::rename(dir.path().join("plans.away"), &plans).unwrap();
        agent.handle_message(Message::Plan(plan)).unwrap();
        assert_eq!(agent.lock_queue().len(), 1);
    }

    #[tokio::test]
    async fn hello_lists_the_unfinished_plans_held() {
        let dir = tempfile::tempdir().unwrap();
        let ground = wire::PlanSigner::from_bytes([1; 32]);
        let (agent, _rx) = signed_agent(dir.path(), "em", &ground, Arc::default());
        let mut plan = listing_plan("e-held");
        ground.sign(&mut plan);
        agent.handle_message(Message::Plan(plan)).unwrap();
        let Message::Hello { holds, .. } = agent.hello().await else {
            panic!()
        };
        assert_eq!(holds, ["e-held"]);
        run_until_idle(&agent).await;
        let Message::Hello { holds, .. } = agent.hello().await else {
            panic!()
        };
        assert!(holds.is_empty(), "finished: {holds:?}");
    }

    #[tokio::test]
    async fn hello_reports_the_catalogue_present() {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeRuntime::with(|s| {
            s.images.insert(
                "busybox:latest".into(),
                crate::runtime::ImageInfo {
                    id: format!("sha256:{}", "e".repeat(64)),
                    ..Default::default()
                },
            );
        });
        let (agent, _rx) = agent(dir.path(), fake);
        let Message::Hello {
            agent: name,
            catalogue,
            platform,
            ..
        } = agent.hello().await
        else {
            panic!()
        };
        assert_eq!(name, "em");
        assert_eq!(platform, names::host_platform());
        let present: Vec<_> = catalogue
            .iter()
            .filter(|b| b.digest.is_some())
            .map(|b| b.name.as_str())
            .collect();
        assert_eq!(present, ["busybox:latest"]);
    }
}

#[cfg(test)]
#[path = "recovery_tests.rs"]
mod recovery_tests;
