//! The ground's side of each system's link: one endpoint, one task sending (plans, and the objects
//! the system asks for), one task handling what comes back (messages, and objects come down).
//!
//! The two directions are separate tasks on purpose: queuing on the endpoint may wait, and the
//! handler must keep reading meanwhile, or the endpoint would stall behind it. Objects never
//! pass through here: the endpoint reads the ones it sends from the blob store and commits the
//! ones it receives, verified, into it; the handler only hears that they arrived.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use ::link::{EndpointConfig, LinkEvent, MessageReceiver, MessageSender};
use tokio::sync::{mpsc, oneshot};
use wire::{Digest, Direction, ErrorCode, Message, Plan, TaskError, TaskOutputs, TaskState};

use crate::config::{SystemLink, limits};
use crate::db::{self, ExecutionRow, TaskRow, VolumeFileRow};
use crate::downlink::{self, Outcome};
use crate::error::Error;
use crate::executor::{self, NOT_RUN};
use crate::{Core, time};

/// The ground's handle on one system's link. Dropping it stops both tasks.
#[derive(Debug)]
pub(crate) struct SystemHandle {
    plans: mpsc::Sender<Plan>,
    /// For the endpoint's snapshot (the uplink queue).
    sender: MessageSender,
    /// Dropped with the handle; the handler task ends when it notices.
    _alive: oneshot::Sender<()>,
}

/// The plan could not be queued: the link has stopped.
#[derive(Debug)]
pub(crate) struct LinkStopped;

impl SystemHandle {
    /// Queues a plan for the system.
    pub(crate) async fn send_plan(&self, plan: Plan) -> Result<(), LinkStopped> {
        self.plans.send(plan).await.map_err(|_| LinkStopped)
    }

    /// The latest snapshot of the endpoint: whether the link is up, and the outgoing transfers
    /// in sending order.
    pub(crate) fn stats(&self) -> ::link::LinkStats {
        self.sender.stats()
    }
}

/// The priority of the objects an uplink needs (messages go first, at 0).
const UPLINK_PRIORITY: u8 = 2;

/// Binds the system's endpoint, with its session kept in `state_dir` and the blob store as its
/// object directory, and spawns its two tasks.
pub(crate) async fn spawn(
    core: Arc<Core>,
    config: &SystemLink,
    state_dir: PathBuf,
) -> io::Result<SystemHandle> {
    let (sender, receiver) = ::link::spawn_endpoint(EndpointConfig {
        bind: config.bind,
        peer: config.link,
        key: config.key.clone(),
        sends: Direction::Up,
        state_dir,
        objects: core.blobs.layout(),
        rate_bits_per_sec: config.rate_bits_per_sec,
        contact: config.contact.clone(),
    })
    .await?;
    let (plans_tx, plans_rx) = mpsc::channel(limits::PENDING_PLANS);
    let (needs_tx, needs_rx) = mpsc::channel(limits::PENDING_NEEDS);
    let (alive_tx, alive_rx) = oneshot::channel();
    tracing::info!(system = %config.name, bind = %config.bind, link = %config.link, "system link up");
    tokio::spawn(send_loop(
        core.clone(),
        config.name.clone(),
        sender.clone(),
        plans_rx,
        needs_rx,
    ));
    tokio::spawn(receive_loop(
        core,
        config.name.clone(),
        receiver,
        needs_tx,
        plans_tx.clone(),
        alive_rx,
    ));
    Ok(SystemHandle {
        plans: plans_tx,
        sender,
        _alive: alive_tx,
    })
}

/// Queues plans, then the objects the system asked for, until both queues close.
async fn send_loop(
    core: Arc<Core>,
    system: String,
    sender: MessageSender,
    mut plans: mpsc::Receiver<Plan>,
    mut needs: mpsc::Receiver<Vec<Digest>>,
) {
    let (mut plans_open, mut needs_open) = (true, true);
    while plans_open || needs_open {
        tokio::select! {
            biased;
            p = plans.recv(), if plans_open => match p {
                Some(plan) => {
                    let execution = plan.execution.clone();
                    if sender.send(Message::Plan(plan)).await.is_err() {
                        tracing::error!(%system, %execution, "link endpoint stopped; plan lost");
                        return;
                    }
                    tracing::info!(%system, %execution, "plan sent");
                }
                None => plans_open = false,
            },
            n = needs.recv(), if needs_open => match n {
                Some(digests) => {
                    for digest in digests {
                        let Some(size) = core.blobs.size(&digest).await else {
                            tracing::warn!(%system, %digest, "the system asked for an object the ground does not have");
                            continue;
                        };
                        if sender.send_object(digest, size, UPLINK_PRIORITY).await.is_err() {
                            tracing::error!(%system, "link endpoint stopped while queuing objects");
                            return;
                        }
                        tracing::debug!(%system, %digest, size, "object queued");
                    }
                }
                None => needs_open = false,
            },
        }
    }
}

async fn receive_loop(
    core: Arc<Core>,
    system: String,
    mut receiver: MessageReceiver,
    needs: mpsc::Sender<Vec<Digest>>,
    plans: mpsc::Sender<Plan>,
    mut alive: oneshot::Receiver<()>,
) {
    // The agent's boot id as last heard; none since this ground started, so the first Hello
    // also repairs what a crash of the ground itself may have lost.
    let mut last_boot: Option<u64> = None;
    loop {
        let event = tokio::select! {
            e = receiver.recv() => e,
            _ = &mut alive => return,
        };
        let Some(event) = event else {
            tracing::warn!(%system, "link endpoint stopped");
            return;
        };
        if let LinkEvent::Message(Message::Hello { boot, .. }) = &event
            && last_boot != Some(*boot)
        {
            last_boot = Some(*boot);
            tokio::spawn(resend_unfinished(
                core.clone(),
                system.clone(),
                plans.clone(),
            ));
        }
        if let Err(e) = handle(&core, &system, event, &needs).await {
            tracing::error!(%system, error = %e, "could not handle a link event");
        }
    }
}

/// Sends the plans of the system's unfinished executions again (the agent restarted, or this
/// ground did): the agent ignores a plan it holds and replays the events of one it finished.
async fn resend_unfinished(core: Arc<Core>, system: String, plans: mpsc::Sender<Plan>) {
    let encoded = match db::unfinished_plans(&core.db, &system).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(%system, error = %e, "could not read unfinished plans");
            return;
        }
    };
    if !encoded.is_empty() {
        tracing::info!(%system, plans = encoded.len(), "the agent (re)started: sending unfinished plans again");
    }
    for bytes in encoded {
        match wire::decode_message(&bytes) {
            Ok(Message::Plan(plan)) => {
                if plans.send(plan).await.is_err() {
                    return;
                }
            }
            _ => tracing::error!(%system, "a stored plan does not decode; skipped"),
        }
    }
}

/// Handles one event of a system's link. Never waits on the link itself: requests for objects
/// go to the send task.
pub(crate) async fn handle(
    core: &Core,
    system: &str,
    event: LinkEvent,
    needs: &mpsc::Sender<Vec<Digest>>,
) -> Result<(), Error> {
    match event {
        LinkEvent::Message(message) => handle_message(core, system, message, needs).await,
        LinkEvent::ObjectReceived(digest) => {
            tracing::debug!(%system, %digest, "object received");
            downlink::object_arrived(core, &digest).await
        }
        LinkEvent::ObjectDelivered(digest) => {
            tracing::debug!(%system, %digest, "object delivered");
            Ok(())
        }
        LinkEvent::ObjectFailed(digest, error) => {
            tracing::warn!(%system, %digest, %error, "an object could not be sent");
            downlink::object_failed(core, &digest, &error).await
        }
    }
}

/// Handles one message from a system.
async fn handle_message(
    core: &Core,
    system: &str,
    message: Message,
    needs: &mpsc::Sender<Vec<Digest>>,
) -> Result<(), Error> {
    match message {
        Message::Hello {
            agent,
            platform,
            catalogue,
            ..
        } => {
            if agent != system {
                tracing::warn!(%system, %agent, "the agent calls itself by another name");
            }
            tracing::info!(%system, %platform, images = catalogue.len(), "hello");
            db::upsert_system(
                &core.db,
                system,
                &agent,
                &platform,
                &db::to_json(&catalogue),
                time::now_ms(),
            )
            .await?;
        }
        Message::Plan(plan) => {
            tracing::warn!(%system, execution = %plan.execution, "a system sent a plan; ignored");
        }
        Message::Need { digests } => {
            tracing::debug!(%system, count = digests.len(), "need");
            if needs.try_send(digests).is_err() {
                tracing::warn!(%system, "too many object requests queued; one dropped");
            }
        }
        Message::TaskEvent {
            execution,
            task,
            state,
            at_ms,
            error,
            outputs,
        } => {
            task_event(core, system, &execution, task, state, at_ms, error, outputs).await?;
        }
        Message::ExecutionEvent {
            execution,
            state,
            at_ms,
        } => {
            execution_event(core, system, &execution, state, at_ms).await?;
        }
        Message::VolumeListing {
            tenant,
            volume,
            files,
        } => {
            if wire::TenantName::new(&tenant).is_err() || wire::VolumeName::new(&volume).is_err() {
                tracing::warn!(%system, %tenant, %volume, "volume listing with a bad tenant or volume name; ignored");
                return Ok(());
            }
            let rows: Vec<VolumeFileRow> = files
                .into_iter()
                .map(|f| VolumeFileRow {
                    path: f.path,
                    size: i64::try_from(f.size).unwrap_or(i64::MAX),
                    is_dir: f.is_dir,
                    modified_ms: i64::try_from(f.modified_ms).unwrap_or(i64::MAX),
                })
                .collect();
            let mut tx = db::write_tx(&core.db).await?;
            db::replace_volume(&mut tx, system, &tenant, &volume, &rows).await?;
            tx.commit().await?;
        }
    }
    Ok(())
}

/// Where a state sits in the lifecycle; events never move backwards.
fn rank(state: TaskState) -> u8 {
    match state {
        TaskState::Created => 0,
        TaskState::Scheduled => 1,
        TaskState::Running => 2,
        TaskState::Success | TaskState::Failed => 3,
    }
}

fn event_time(at_ms: u64) -> i64 {
    if at_ms == 0 {
        time::now_ms()
    } else {
        i64::try_from(at_ms).unwrap_or(i64::MAX)
    }
}

#[allow(clippy::too_many_arguments)]
async fn task_event(
    core: &Core,
    system: &str,
    execution: &str,
    index: u32,
    state: TaskState,
    at_ms: u64,
    error: Option<TaskError>,
    outputs: Option<TaskOutputs>,
) -> Result<(), Error> {
    let mut tx = db::write_tx(&core.db).await?;
    let Some(mut exec) = db::execution(&mut *tx, execution).await? else {
        tracing::warn!(%system, %execution, "event for an unknown execution; ignored");
        return Ok(());
    };
    if exec.system != system {
        tracing::warn!(%system, %execution, "event for another system's execution; ignored");
        return Ok(());
    }
    let tasks = db::tasks(&mut *tx, execution).await?;
    let Some(mut task) = tasks.into_iter().find(|t| t.idx == i64::from(index)) else {
        tracing::warn!(%system, %execution, index, "event for an unknown task; ignored");
        return Ok(());
    };
    let current = TaskState::parse(&task.state).unwrap_or(TaskState::Created);
    if current.is_final() || rank(state) <= rank(current) {
        tracing::debug!(%system, %execution, index, from = current.as_str(), to = state.as_str(), "stale task event; ignored");
        return Ok(());
    }
    if db::pending_downlink(&mut *tx, execution, task.idx)
        .await?
        .is_some()
    {
        tracing::debug!(%system, %execution, index, "event for a downlink already reported; ignored");
        return Ok(());
    }
    let at = event_time(at_ms);
    if !state.is_final() {
        task.state = state.as_str().into();
        executor::push_history(&mut task.history, state, at);
        if state == TaskState::Running {
            task.started_at = Some(at);
        }
        db::update_task(&mut tx, execution, &task).await?;
        tx.commit().await?;
        tracing::info!(%system, %execution, task = %task.id, state = state.as_str(), "task event");
        return Ok(());
    }
    let (mut state, mut error, mut landed) = (state, error, None);
    if state == TaskState::Success && task.ty == "downlink" {
        let reported = outputs.clone().unwrap_or_default();
        match downlink::try_land(core, &mut tx, &exec.namespace, &task, &reported, at).await? {
            Outcome::Landed(files) => landed = Some(files),
            Outcome::Failed(e) => {
                state = TaskState::Failed;
                error = Some(e);
            }
            Outcome::Waiting(missing) => {
                downlink::wait(&mut tx, execution, &mut task, &reported, missing, at).await?;
                tx.commit().await?;
                tracing::info!(%system, %execution, task = %task.id, missing, "downlink reported; waiting for its files");
                return Ok(());
            }
        }
    }
    conclude(
        &mut tx,
        &mut exec,
        &mut task,
        state,
        at,
        error.as_ref(),
        outputs.as_ref(),
        landed.as_deref(),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(%system, %execution, task = %task.id, state = state.as_str(), "task event");
    Ok(())
}

/// Moves a task to its final state with its outputs (a landed downlink's files shown where they
/// landed); a failure's error joins the execution's errors.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn conclude(
    tx: &mut db::Tx,
    exec: &mut ExecutionRow,
    task: &mut TaskRow,
    state: TaskState,
    at: i64,
    error: Option<&TaskError>,
    outputs: Option<&TaskOutputs>,
    landed: Option<&[(String, i64)]>,
) -> Result<(), Error> {
    task.outputs = outputs.map(|o| db::to_json(&outputs_json(o, landed)));
    executor::finish(task, state, at, None);
    if task.started_at.is_none() && state == TaskState::Success {
        task.started_at = Some(at);
    }
    if let (TaskState::Failed, Some(e)) = (state, error) {
        task.error = Some(db::to_json(&executor::error_json(None, e)));
        let mut errors: Vec<api::TaskError> = db::json_or_default(&exec.errors);
        errors.push(executor::error_json(Some(&task.id), e));
        exec.errors = db::to_json(&errors);
        db::update_execution(tx, exec).await?;
    }
    db::update_task(tx, &exec.id, task).await?;
    Ok(())
}

/// A task's outputs as the API shows them (and the database keeps them). A downlink's files are
/// shown where they landed in the namespace, with their version.
pub(crate) fn outputs_json(o: &TaskOutputs, landed: Option<&[(String, i64)]>) -> api::TaskOutputs {
    let files = o
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| match landed.and_then(|l| l.get(i)) {
            Some((path, version)) => api::OutputFile {
                path: path.clone(),
                digest: f.digest.to_string(),
                size: f.size,
                version: u64::try_from(*version).ok(),
            },
            None => api::OutputFile {
                path: f.path.clone(),
                digest: f.digest.to_string(),
                size: f.size,
                version: None,
            },
        })
        .collect();
    let listing = o
        .listing
        .iter()
        .map(|e| api::VolumeFile {
            path: e.path.clone(),
            size: e.size,
            is_dir: e.is_dir,
            modified: time::rfc3339(i64::try_from(e.modified_ms).unwrap_or(0)),
        })
        .collect();
    api::TaskOutputs {
        files,
        listing,
        image: o.image.clone(),
        message: o.message.clone(),
        exit_code: o.exit_code,
        log_tail: o.log_tail.clone(),
    }
}

async fn execution_event(
    core: &Core,
    system: &str,
    execution: &str,
    state: TaskState,
    at_ms: u64,
) -> Result<(), Error> {
    let mut tx = db::write_tx(&core.db).await?;
    let Some(mut exec) = db::execution(&mut *tx, execution).await? else {
        tracing::warn!(%system, %execution, "event for an unknown execution; ignored");
        return Ok(());
    };
    if exec.system != system {
        tracing::warn!(%system, %execution, "event for another system's execution; ignored");
        return Ok(());
    }
    let current = TaskState::parse(&exec.state).unwrap_or(TaskState::Created);
    if current.is_final()
        || rank(state) <= rank(current)
        || db::held_execution_state(&mut *tx, execution)
            .await?
            .is_some()
    {
        tracing::debug!(%system, %execution, "stale execution event; ignored");
        return Ok(());
    }
    let at = event_time(at_ms);
    if state.is_final() && db::pending_downlink_count(&mut *tx, execution).await? > 0 {
        // Applied when the last downlink lands (see `downlink`).
        db::hold_execution_state(&mut tx, execution, state.as_str(), at).await?;
        tx.commit().await?;
        tracing::info!(%system, %execution, state = state.as_str(), "execution event held until its downlinks land");
        return Ok(());
    }
    let state = apply_execution_state(&mut tx, &mut exec, state, at).await?;
    tx.commit().await?;
    tracing::info!(%system, %execution, state = state.as_str(), "execution event");
    Ok(())
}

/// Moves an execution to the state its system reported; returns the state applied. A failed
/// execution's tasks that never ran end "not run", and a reported SUCCESS becomes FAILED when a
/// task failed on the ground (a downlink that could not land).
pub(crate) async fn apply_execution_state(
    tx: &mut db::Tx,
    exec: &mut ExecutionRow,
    state: TaskState,
    at: i64,
) -> Result<TaskState, Error> {
    let tasks = db::tasks(&mut **tx, &exec.id).await?;
    let any_failed = tasks
        .iter()
        .any(|t| TaskState::parse(&t.state) == Some(TaskState::Failed));
    let state = if state == TaskState::Success && any_failed {
        TaskState::Failed
    } else {
        state
    };
    executor::set_state(exec, state, at);
    db::update_execution(tx, exec).await?;
    if state == TaskState::Failed {
        let not_run = TaskError {
            code: ErrorCode::ExecutionError,
            message: NOT_RUN.into(),
            log_tail: Vec::new(),
        };
        for mut t in tasks {
            if matches!(
                TaskState::parse(&t.state),
                Some(TaskState::Created | TaskState::Scheduled)
            ) {
                executor::finish(&mut t, TaskState::Failed, at, Some(&not_run));
                db::update_task(tx, &exec.id, &t).await?;
            }
        }
    }
    Ok(state)
}
