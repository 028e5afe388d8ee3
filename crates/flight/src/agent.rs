//! The agent: plans in, events out.
//!
//! Two loops share one [`Agent`]: the event loop ([`Agent::handle_event`]) accepts plans and
//! learns of arrived objects, without ever waiting, and the plan loop ([`Agent::run_plans`]) runs
//! queued plans one at a time, in arrival order. A plan is persisted before it is queued and after
//! each task, so a restarted agent resumes where it stopped (a task cut short runs again from its
//! start). Objects never travel as messages: the link session moves them between its object
//! directory, which is the agent's object store, and the ground's.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use link::LinkEvent;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use wire::{
    BaseImage, Digest, ErrorCode, ExecutionState, Message, OnFailure, Plan, PlanTask, TaskError,
    TaskKind, TaskState,
};

use crate::config::{AgentConfig, FlightConfig};
use crate::error::{Error, ErrorKind};
use crate::fsutil::now_ms;
use crate::names;
use crate::plans::{PlanRecord, PlanStore, TaskRecord};
use crate::runtime::{DockerRuntime, Runtime};
use crate::store::ObjectStore;
use crate::tasks::{Executor, MAX_LISTING, OBJECT_WAIT, TaskResult};
use crate::volumes::{self, Volumes};

/// Plans waiting to run; a plan beyond this is refused (`BUSY`).
const MAX_QUEUED_PLANS: usize = 256;
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
    plans: PlanStore,
    queue: Mutex<VecDeque<PlanRecord>>,
    queued: Notify,
    next_seq: AtomicU64,
    /// Drawn at start; sent in every `Hello` (see `wire::Message::Hello`).
    boot: u64,
    /// The ground's public plan key (see `AgentConfig::plan_verifier`).
    verifier: Option<wire::PlanVerifier>,
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
        let pending = plans.load_pending();
        let next_seq = pending.iter().map(|r| r.seq + 1).max().unwrap_or(1);
        if !pending.is_empty() {
            tracing::info!(plans = pending.len(), "resuming unfinished plans");
        }
        let exec = Executor {
            runtime,
            volumes: Arc::new(Volumes::open(&config.volumes_dir, state)?),
            store: Arc::new(ObjectStore::open(state)?),
            scratch,
            outbox,
            catalogue: wire::catalogue(&names::host_platform())
                .into_iter()
                .map(|b| b.name)
                .collect(),
            object_wait: OBJECT_WAIT,
        };
        Ok(Agent {
            inner: Arc::new(Inner {
                exec,
                plans,
                queue: Mutex::new(pending.into()),
                queued: Notify::new(),
                next_seq: AtomicU64::new(next_seq),
                boot: rand::random(),
                verifier: config.plan_verifier.clone(),
            }),
        })
    }

    /// Runs one task for `tenant` as part of `execution` (which names the pod's container), with
    /// no events: the way to drive the agent without a link. An uplink's objects must be in the
    /// object store (put them at [`object_layout`](Agent::object_layout) and say so with
    /// [`handle_event`](Agent::handle_event), as the link does); a downlink's objects go to the
    /// outbox.
    pub async fn run_task(&self, tenant: &str, execution: &str, task: &PlanTask) -> TaskResult {
        self.inner.exec.run(tenant, execution, task).await
    }

    /// Where the agent keeps its objects: the link endpoint's object directory.
    pub fn object_layout(&self) -> link::ObjectLayout {
        self.inner.exec.store.layout().clone()
    }

    /// Takes one event of the link: a message is decoded and goes to
    /// [`handle_message`](Agent::handle_message) (one that does not decode is logged with its
    /// sequence number and dropped); an object that arrived (already verified and in the object
    /// store) wakes the uplinks waiting for it. Never waits.
    pub fn handle_event(&self, event: LinkEvent) {
        match event {
            LinkEvent::Message { seq, bytes } => match wire::decode_message(&bytes) {
                Ok(m) => self.handle_message(m),
                Err(e) => tracing::warn!(seq, error = %e, "dropped an undecodable message"),
            },
            LinkEvent::ObjectReceived(digest) => self.inner.exec.store.arrived(&digest),
            LinkEvent::ObjectDelivered(digest) => {
                tracing::debug!(%digest, "the ground has an object")
            }
            LinkEvent::ObjectFailed(digest, error) => {
                tracing::warn!(%digest, %error, "an object for the ground could not be sent")
            }
        }
    }

    /// Takes one message from the ground: a [`Message::Plan`] is persisted and queued (and its
    /// missing objects asked for at once). Other messages are ignored. Never waits.
    pub fn handle_message(&self, message: Message) {
        match message {
            Message::Plan(plan) => self.accept(plan),
            Message::Need { .. } => tracing::debug!("ignored a Need from the ground"),
            other => {
                tracing::debug!(message = ?std::mem::discriminant(&other), "ignored a message meant for the ground")
            }
        }
    }

    /// Runs queued plans, one at a time, forever; abort the task running it to stop. The objects
    /// of resumed plans were asked for when the plans arrived; the link session resumes their
    /// transfers, and an uplink that waits too long asks again.
    pub async fn run_plans(&self) {
        loop {
            let next = self.lock_queue().pop_front();
            match next {
                Some(record) => self.execute(record).await,
                None => self.inner.queued.notified().await,
            }
        }
    }

    /// The agent's `Hello`: its system name, platform and catalogue with the image ids present.
    pub async fn hello(&self, system: &str) -> Message {
        Message::Hello {
            agent: system.to_string(),
            platform: names::host_platform(),
            catalogue: catalogue_of(self.inner.exec.runtime.as_ref()).await,
            boot: self.inner.boot,
        }
    }

    fn lock_queue(&self) -> std::sync::MutexGuard<'_, VecDeque<PlanRecord>> {
        self.inner.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn send(&self, message: Message) {
        let outbox = &self.inner.exec.outbox;
        if outbox.send(Outgoing::Message(message)).await.is_err() {
            tracing::warn!("the outbox is closed; a message to the ground is lost");
        }
    }

    /// Sends without waiting, in order: what the message loop says must never wait for the
    /// outbox, or a full outbox (a long downlink) and a busy link could wait on each other. When
    /// the outbox is full, the rest goes from a task of its own; such batches come only from
    /// plans (at most one per plan received).
    fn send_soon(&self, batch: Vec<Message>) {
        let mut batch = batch.into_iter().map(Outgoing::Message);
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

    fn accept(&self, plan: Plan) {
        if let Err(m) = names::check_execution(&plan.execution) {
            tracing::warn!(error = %m, "refused a plan");
            self.send_soon(vec![execution_event(&plan.execution, TaskState::Failed)]);
            return;
        }
        if let Some(known) = self.inner.plans.find(&plan.execution) {
            if known.finished {
                tracing::info!(
                    execution = plan.execution,
                    "a finished plan came again; sending its events again"
                );
                self.send_soon(replay(&known));
            } else {
                tracing::info!(
                    execution = plan.execution,
                    "a plan came again; it is already queued"
                );
            }
            return;
        }
        let unsigned = self
            .inner
            .verifier
            .as_ref()
            .and_then(|v| v.verify(&plan).err());
        let refusal = if let Some(e) = unsigned {
            Some((ErrorCode::ValidationError, e.to_string()))
        } else if let Err(m) = names::check_tenant(&plan.tenant) {
            Some((ErrorCode::ValidationError, m))
        } else if self.lock_queue().len() >= MAX_QUEUED_PLANS {
            Some((
                ErrorCode::Busy,
                format!("the onboard plan queue is full ({MAX_QUEUED_PLANS} plans)"),
            ))
        } else {
            None
        };
        let mut record = PlanRecord {
            seq: self.inner.next_seq.fetch_add(1, Ordering::Relaxed),
            plan,
            next: 0,
            failed: false,
            finished: false,
            events: Vec::new(),
        };
        if let Some((code, message)) = refusal {
            tracing::warn!(execution = record.plan.execution, %message, "refused a plan");
            for (i, _) in record.plan.tasks.iter().enumerate() {
                let error = TaskError {
                    code,
                    message: message.clone(),
                    log_tail: Vec::new(),
                };
                record.events.push(TaskRecord {
                    task: i as u32,
                    state: TaskState::Failed,
                    at_ms: now_ms(),
                    error: Some(error),
                    outputs: None,
                });
            }
            record.failed = true;
            record.finished = true;
            if let Err(e) = self.inner.plans.finish(&record) {
                tracing::error!(error = %e, "cannot record a refused plan");
            }
            self.send_soon(replay(&record));
            return;
        }
        if let Err(e) = self.inner.plans.save(&record) {
            // Not persisted means not accepted: the ground sends it again at the next contact.
            tracing::error!(error = %e, "cannot persist a plan; dropped it");
            return;
        }
        tracing::info!(
            execution = record.plan.execution,
            tenant = record.plan.tenant,
            tasks = record.plan.tasks.len(),
            "accepted a plan"
        );
        // Ask for the objects first, so they stream while earlier plans run.
        if let Some(need) = self.objects_missing(&record.plan) {
            self.send_soon(vec![need]);
        }
        self.lock_queue().push_back(record);
        self.inner.queued.notify_one();
    }

    /// A request for every uplink object of the plan not in the store, if any.
    fn objects_missing(&self, plan: &Plan) -> Option<Message> {
        let wanted = plan.tasks.iter().flat_map(|t| match &t.kind {
            TaskKind::Uplink { files, .. } => files.iter().map(|f| f.digest).collect(),
            _ => Vec::new(),
        });
        let missing = self.inner.exec.store.missing(wanted);
        if !missing.is_empty() {
            tracing::info!(
                execution = plan.execution,
                objects = missing.len(),
                "asking for objects"
            );
            Some(Message::Need { digests: missing })
        } else {
            None
        }
    }

    async fn execute(&self, mut record: PlanRecord) {
        let execution = record.plan.execution.clone();
        let tenant = record.plan.tenant.clone();
        tracing::info!(execution, tenant, from = record.next, "running a plan");
        self.send(execution_event(&execution, TaskState::Running))
            .await;
        while record.next < record.plan.tasks.len() {
            let index = record.next;
            let task = record.plan.tasks[index].clone();
            self.send(task_event(&execution, index, TaskState::Running, None))
                .await;
            let result = self.inner.exec.run(&tenant, &execution, &task).await;
            match &result.error {
                None => tracing::info!(execution, task = task.id, "task succeeded"),
                Some(e) => {
                    tracing::info!(execution, task = task.id, code = e.code.code(), message = %e.message, "task failed")
                }
            }
            if let Some(volume) = changed_volume(&task.kind) {
                self.send_listing(&tenant, volume).await;
            }
            let event = TaskRecord {
                task: index as u32,
                state: result.state(),
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
        if let Err(e) = self.inner.plans.finish(&record) {
            tracing::error!(execution, error = %e, "cannot record a finished plan");
        }
        tracing::info!(execution, state = state.as_str(), "plan finished");
    }

    async fn send_listing(&self, tenant: &str, volume: &str) {
        if names::check_volume(volume).is_err() {
            return;
        }
        let dir = self.inner.exec.volumes.volume_dir(tenant, volume);
        // A volume that is gone (deleted) is listed empty.
        let listed = tokio::task::spawn_blocking(move || {
            if dir.is_dir() {
                volumes::list(&dir, "", u32::MAX, MAX_LISTING)
            } else {
                (Vec::new(), false)
            }
        })
        .await;
        if let Ok((files, _)) = listed {
            self.send(Message::VolumeListing {
                tenant: tenant.into(),
                volume: volume.into(),
                files,
            })
            .await;
        }
    }
}

/// The recorded final events of a finished plan, to send again.
fn replay(record: &PlanRecord) -> Vec<Message> {
    let execution = &record.plan.execution;
    let state = if record.failed {
        TaskState::Failed
    } else {
        TaskState::Success
    };
    let events = record.events.iter().map(|e| record_event(execution, e));
    events
        .chain(std::iter::once(execution_event(execution, state)))
        .collect()
}

/// The volume a task may change, for a fresh listing after it.
fn changed_volume(kind: &TaskKind) -> Option<&str> {
    match kind {
        TaskKind::Uplink { volume, .. }
        | TaskKind::PodRun { volume, .. }
        | TaskKind::FilesDelete { volume, .. } => Some(volume),
        _ => None,
    }
}

fn execution_event(execution: &str, state: ExecutionState) -> Message {
    Message::ExecutionEvent {
        execution: execution.into(),
        state,
        at_ms: now_ms(),
    }
}

fn task_event(execution: &str, task: usize, state: TaskState, error: Option<TaskError>) -> Message {
    Message::TaskEvent {
        execution: execution.into(),
        task: task as u32,
        state,
        at_ms: now_ms(),
        error,
        outputs: None,
    }
}

fn record_event(execution: &str, r: &TaskRecord) -> Message {
    Message::TaskEvent {
        execution: execution.into(),
        task: r.task,
        state: r.state,
        at_ms: r.at_ms,
        error: r.error.clone(),
        outputs: r.outputs.clone(),
    }
}

/// The catalogue with the ids of the images present.
pub(crate) async fn catalogue_of(runtime: &dyn Runtime) -> Vec<BaseImage> {
    let mut out = wire::catalogue(&names::host_platform());
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

/// Runs the agent behind the link until the task running it is aborted or something fatal
/// happens (the link endpoint or Docker connection fails). The link endpoint keeps its session in
/// `state_dir/link/` and uses the agent's object store as its object directory.
pub async fn run(config: FlightConfig) -> Result<(), Error> {
    let (outbox, mut out_rx) = mpsc::channel::<Outgoing>(OUTBOX);
    let agent = Agent::connect(
        AgentConfig {
            state_dir: config.state_dir.clone(),
            volumes_dir: config.volumes_dir.clone(),
            plan_verifier: Some(config.plan_verifier.clone()),
        },
        outbox.clone(),
    )
    .await?;
    let endpoint = link::EndpointConfig {
        bind: config.bind,
        peer: config.link,
        key: config.key.clone(),
        sends: wire::Direction::Down,
        state_dir: config.state_dir.join("link"),
        objects: agent.object_layout(),
        rate_bits_per_sec: config.rate_bits_per_sec,
        contact: config.contact.clone(),
    };
    let (sender, mut receiver) = link::spawn_endpoint(endpoint).await.map_err(|e| {
        Error::new(
            ErrorKind::Link,
            format!("cannot open the link endpoint on {}: {e}", config.bind),
        )
    })?;
    // Dropping the set (when this future is dropped or returns) aborts every task in it.
    let mut tasks: JoinSet<Result<(), Error>> = JoinSet::new();
    {
        let sender = sender.clone();
        tasks.spawn(async move {
            while let Some(out) = out_rx.recv().await {
                let sent = match out {
                    Outgoing::Message(m) => sender.send(wire::encode_message(&m)).await,
                    Outgoing::Object {
                        digest,
                        size,
                        priority,
                    } => sender.send_object(digest, size, priority).await,
                };
                sent.map_err(|e| Error::new(ErrorKind::Link, e.to_string()))?;
            }
            Ok(())
        });
    }
    tracing::info!(system = config.system, bind = %config.bind, link = %config.link, "flight agent running");
    {
        let (agent, system, outbox) = (agent.clone(), config.system.clone(), outbox.clone());
        tasks.spawn(async move {
            let mut every = tokio::time::interval(HELLO_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut first = true;
            loop {
                every.tick().await;
                // The session keeps every message until the ground has it: a Hello while the
                // link is down or still busy with earlier ones would only pile up.
                let link = sender.stats();
                if !first && (!link.up || link.outgoing > 0) {
                    continue;
                }
                first = false;
                let hello = agent.hello(&system).await;
                outbox
                    .send(Outgoing::Message(hello))
                    .await
                    .map_err(|_| Error::new(ErrorKind::Link, "the outbox closed"))?;
            }
        });
    }
    {
        let agent = agent.clone();
        tasks.spawn(async move {
            agent.run_plans().await;
            Ok(())
        });
    }
    loop {
        tokio::select! {
            event = receiver.recv() => match event {
                Some(event) => agent.handle_event(event),
                None => return Err(Error::new(ErrorKind::Link, "the link endpoint stopped")),
            },
            Some(done) = tasks.join_next() => {
                return Err(match done {
                    Ok(Err(e)) => e,
                    Ok(Ok(())) => Error::new(ErrorKind::Link, "an agent task stopped unexpectedly"),
                    Err(e) => Error::new(ErrorKind::Link, format!("an agent task failed: {e}")),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use wire::{ImageRef, UplinkFile};

    use super::*;
    use crate::runtime::fake::FakeRuntime;

    fn agent(dir: &std::path::Path, fake: FakeRuntime) -> (Agent, mpsc::Receiver<Outgoing>) {
        let (tx, rx) = mpsc::channel(1024);
        let config = AgentConfig {
            state_dir: dir.join("state"),
            volumes_dir: dir.join("volumes"),
            plan_verifier: None,
        };
        (
            Agent::with_runtime(&config, Arc::new(fake), tx).unwrap(),
            rx,
        )
    }

    fn task(id: &str, on_failure: OnFailure, kind: TaskKind) -> PlanTask {
        PlanTask {
            id: id.into(),
            on_failure,
            kind,
        }
    }

    /// An object arriving as the link delivers it: in the object directory, then announced.
    fn arrive(agent: &Agent, data: &[u8]) {
        let d = Digest::of(data);
        agent.object_layout().put(data).unwrap();
        agent.handle_event(LinkEvent::ObjectReceived(d));
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
            });
        }
        out
    }

    /// Runs the plan loop until it has nothing left, then stops it.
    async fn run_until_idle(agent: &Agent) {
        let a = agent.clone();
        let worker = tokio::spawn(async move { a.run_plans().await });
        for _ in 0..500 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if agent.lock_queue().is_empty() && agent.inner.plans.load_pending().is_empty() {
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
            signature: Vec::new(),
        };
        agent.handle_message(Message::Plan(plan.clone()));
        assert_eq!(drain(&mut rx), ["need 1"]);
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
        // The same plan again is not run again; its events are sent again.
        agent.handle_message(Message::Plan(plan));
        let again = drain(&mut rx);
        assert_eq!(again.len(), 5);
        assert_eq!(again.last().unwrap(), "execution FAILED");
    }

    #[tokio::test]
    async fn an_unfinished_plan_resumes_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let d = Digest::of(b"late");
        {
            let (agent, mut rx) = agent(dir.path(), FakeRuntime::default());
            let plan = Plan {
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
                signature: Vec::new(),
            };
            agent.handle_message(Message::Plan(plan));
            assert_eq!(drain(&mut rx), ["need 1"]);
            // The agent stops before running it.
        }
        let (agent, mut rx) = agent(dir.path(), FakeRuntime::default());
        arrive(&agent, b"late");
        run_until_idle(&agent).await;
        let events = drain(&mut rx);
        // The objects were asked for when the plan came; the restart asks for nothing again.
        assert_eq!(events.first().unwrap(), "execution RUNNING", "{events:?}");
        assert_eq!(events.last().unwrap(), "execution SUCCESS", "{events:?}");
        assert!(dir.path().join("volumes/alice/pvc/late.txt").is_file());
    }

    #[tokio::test]
    async fn bad_plans_are_refused_without_running() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, mut rx) = agent(dir.path(), FakeRuntime::default());
        let bad_tenant = Plan {
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
                },
            )],
            signature: Vec::new(),
        };
        agent.handle_message(Message::Plan(bad_tenant));
        assert_eq!(drain(&mut rx), ["task 0 FAILED 2", "execution FAILED"]);
        agent.handle_message(Message::Plan(Plan {
            execution: "../x".into(),
            tenant: "a".into(),
            tasks: vec![],
            signature: Vec::new(),
        }));
        assert_eq!(drain(&mut rx), ["execution FAILED"]);
        assert!(agent.lock_queue().is_empty());
    }

    #[tokio::test]
    async fn link_messages_are_decoded_and_undecodable_ones_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, mut rx) = agent(dir.path(), FakeRuntime::default());
        agent.handle_event(LinkEvent::Message {
            seq: 0,
            bytes: vec![0xff; 7],
        });
        assert!(drain(&mut rx).is_empty(), "junk is dropped, not answered");
        let refused = Plan {
            execution: "../x".into(),
            tenant: "a".into(),
            tasks: vec![],
            signature: Vec::new(),
        };
        agent.handle_event(LinkEvent::Message {
            seq: 1,
            bytes: wire::encode_message(&Message::Plan(refused)),
        });
        assert_eq!(
            drain(&mut rx),
            ["execution FAILED"],
            "the plan was decoded and judged"
        );
    }

    #[tokio::test]
    async fn only_plans_the_ground_signed_run() {
        let dir = tempfile::tempdir().unwrap();
        let ground = wire::PlanSigner::from_bytes([1; 32]);
        let (tx, mut rx) = mpsc::channel(1024);
        let config = AgentConfig {
            state_dir: dir.path().join("state"),
            volumes_dir: dir.path().join("volumes"),
            plan_verifier: Some(ground.verifier()),
        };
        let agent = Agent::with_runtime(&config, Arc::new(FakeRuntime::default()), tx).unwrap();
        let plan = |execution: &str| Plan {
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
            signature: Vec::new(),
        };
        // Unsigned, and signed by someone holding another key: refused, nothing runs.
        agent.handle_message(Message::Plan(plan("e-unsigned")));
        assert_eq!(drain(&mut rx), ["task 0 FAILED 2", "execution FAILED"]);
        let mut forged = plan("e-forged");
        wire::PlanSigner::from_bytes([2; 32]).sign(&mut forged);
        agent.handle_message(Message::Plan(forged));
        assert_eq!(drain(&mut rx), ["task 0 FAILED 2", "execution FAILED"]);
        assert!(agent.lock_queue().is_empty());
        // Signed by the ground: queued and run.
        let mut signed = plan("e-signed");
        ground.sign(&mut signed);
        agent.handle_message(Message::Plan(signed));
        run_until_idle(&agent).await;
        let events = drain(&mut rx);
        assert_eq!(events.last().unwrap(), "execution SUCCESS", "{events:?}");
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
        } = agent.hello("em").await
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
