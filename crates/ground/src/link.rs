//! The ground's side of each system's link: one endpoint, one task sending (plans first, then
//! the parts of objects the system asked for), one task handling what the system says.
//!
//! The two directions are separate tasks on purpose: sending may wait for the link to drain,
//! and the handler must keep reading meanwhile, or acknowledgements would stall behind it.

use std::collections::{HashSet, VecDeque};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use ::link::{EndpointConfig, MessageReceiver, MessageSender};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use wire::{Digest, ErrorCode, FileRef, Message, Plan, TaskError, TaskOutputs, TaskState};

use crate::config::{SystemLink, limits};
use crate::db::{self, VolumeFileRow};
use crate::error::Error;
use crate::executor::{self, NOT_RUN};
use crate::operation::{NameRule, check_name};
use crate::upload::entry_path;
use crate::{Core, blobs, time};

/// The ground's handle on one system's link. Dropping it stops both tasks.
#[derive(Debug)]
pub(crate) struct SystemHandle {
    plans: mpsc::Sender<Plan>,
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
}

/// Binds the system's endpoint and spawns its two tasks.
pub(crate) async fn spawn(core: Arc<Core>, config: &SystemLink) -> io::Result<SystemHandle> {
    let (sender, receiver) = ::link::spawn_endpoint(EndpointConfig {
        bind: config.bind,
        peer: config.link,
        rate_bytes_per_sec: config.rate_bytes_per_sec,
    })
    .await?;
    let (plans_tx, plans_rx) = mpsc::channel(limits::PENDING_PLANS);
    let (needs_tx, needs_rx) = mpsc::channel(64);
    let (alive_tx, alive_rx) = oneshot::channel();
    tracing::info!(system = %config.name, bind = %config.bind, link = %config.link, "system link up");
    tokio::spawn(send_loop(
        core.clone(),
        config.name.clone(),
        sender,
        plans_rx,
        needs_rx,
    ));
    tokio::spawn(receive_loop(
        core,
        config.name.clone(),
        receiver,
        needs_tx,
        alive_rx,
    ));
    Ok(SystemHandle {
        plans: plans_tx,
        _alive: alive_tx,
    })
}

/// An object being sent, part by part.
struct Serving {
    digest: Digest,
    file: tokio::fs::File,
    offset: u64,
    total: u64,
}

async fn send_loop(
    core: Arc<Core>,
    system: String,
    sender: MessageSender,
    mut plans: mpsc::Receiver<Plan>,
    mut needs: mpsc::Receiver<Vec<Digest>>,
) {
    let mut pending: VecDeque<Digest> = VecDeque::new();
    let mut queued: HashSet<Digest> = HashSet::new();
    let mut serving: Option<Serving> = None;
    let (mut plans_open, mut needs_open) = (true, true);
    loop {
        while serving.is_none() {
            let Some(digest) = pending.pop_front() else {
                break;
            };
            match open_blob(&core, &digest).await {
                Ok((file, total)) => {
                    serving = Some(Serving {
                        digest,
                        file,
                        offset: 0,
                        total,
                    })
                }
                Err(e) => {
                    queued.remove(&digest);
                    tracing::warn!(%system, %digest, error = %e, "the system asked for an object the ground does not have");
                }
            }
        }
        let busy = serving.is_some();
        if !plans_open && !needs_open && !busy {
            return;
        }
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
                    for d in digests {
                        if queued.len() >= limits::PENDING_OBJECTS {
                            tracing::warn!(%system, "too many objects requested; the rest of the request is dropped");
                            break;
                        }
                        if queued.insert(d) {
                            pending.push_back(d);
                        }
                    }
                }
                None => needs_open = false,
            },
            () = std::future::ready(()), if busy => {
                let Some(s) = serving.as_mut() else { continue };
                match next_part(s).await {
                    Ok(message) => {
                        let done = s.offset >= s.total;
                        let digest = s.digest;
                        if sender.send(message).await.is_err() {
                            tracing::error!(%system, "link endpoint stopped while sending an object");
                            return;
                        }
                        if done {
                            queued.remove(&digest);
                            serving = None;
                            tracing::debug!(%system, %digest, "object sent");
                        }
                    }
                    Err(e) => {
                        tracing::error!(%system, digest = %s.digest, error = %e, "could not read a blob; object abandoned");
                        queued.remove(&s.digest);
                        serving = None;
                    }
                }
            }
        }
    }
}

async fn open_blob(core: &Core, digest: &Digest) -> io::Result<(tokio::fs::File, u64)> {
    let file = tokio::fs::File::open(core.blobs.path(digest)).await?;
    let total = file.metadata().await?.len();
    Ok((file, total))
}

/// Reads the next part of an object (one empty part for an empty object).
async fn next_part(s: &mut Serving) -> io::Result<Message> {
    let n = (s.total - s.offset).min(Message::OBJECT_PART as u64) as usize;
    let mut data = vec![0u8; n];
    s.file.read_exact(&mut data).await?;
    let offset = s.offset;
    s.offset += n as u64;
    if n == 0 {
        // Marks an empty object as done after its single part.
        s.offset = s.total.max(1);
    }
    Ok(Message::Object {
        digest: s.digest,
        offset,
        total: s.total,
        data,
    })
}

async fn receive_loop(
    core: Arc<Core>,
    system: String,
    mut receiver: MessageReceiver,
    needs: mpsc::Sender<Vec<Digest>>,
    mut alive: oneshot::Receiver<()>,
) {
    loop {
        let message = tokio::select! {
            m = receiver.recv() => m,
            _ = &mut alive => return,
        };
        let Some(message) = message else {
            tracing::warn!(%system, "link endpoint stopped");
            return;
        };
        if let Err(e) = handle(&core, &system, message, &needs).await {
            tracing::error!(%system, error = %e, "could not handle a message");
        }
    }
}

/// Handles one message from a system.
pub(crate) async fn handle(
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
        Message::Object {
            digest,
            offset,
            total,
            data,
        } => {
            receive_object(core, system, digest, offset, total, &data).await?;
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
            if check_name(&tenant, NameRule::User).is_err()
                || check_name(&volume, NameRule::Volume).is_err()
            {
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

/// Appends an object part to its spool file; verifies and stores the object when complete.
async fn receive_object(
    core: &Core,
    system: &str,
    digest: Digest,
    offset: u64,
    total: u64,
    data: &[u8],
) -> Result<(), Error> {
    let end = offset.checked_add(data.len() as u64);
    if total > limits::OBJECT_BYTES || end.is_none_or(|e| e > total) {
        tracing::warn!(%system, %digest, offset, total, "object part out of bounds; dropped");
        return Ok(());
    }
    if core.blobs.size(&digest).await.is_some() {
        return Ok(());
    }
    let spool: PathBuf = core.spool.join(format!("{}.part", digest.hex()));
    let have = match tokio::fs::metadata(&spool).await {
        Ok(m) => m.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e.into()),
    };
    if offset != have {
        remove_if_exists(&spool).await?;
        if offset != 0 {
            tracing::warn!(%system, %digest, offset, have, "object part out of order; spool dropped");
            return Ok(());
        }
    }
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spool)
        .await?;
    file.write_all(data).await?;
    if end != Some(total) {
        return Ok(());
    }
    file.sync_all().await?;
    drop(file);
    let path = spool.clone();
    let (got, size) = tokio::task::spawn_blocking(move || blobs::hash_file_sync(&path))
        .await
        .map_err(|e| Error::internal(format!("hashing task failed: {e}")))??;
    if got != digest || size != total {
        tracing::warn!(%system, %digest, %got, "object failed to verify; dropped");
        remove_if_exists(&spool).await?;
        return Ok(());
    }
    core.blobs.commit(&spool, &digest).await?;
    tracing::debug!(%system, %digest, total, "object received");
    Ok(())
}

async fn remove_if_exists(path: &std::path::Path) -> io::Result<()> {
    match tokio::fs::remove_file(path).await {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
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
    let at = event_time(at_ms);
    let (mut state, mut error) = (state, error);
    if state.is_final() {
        let mut landed = None;
        if state == TaskState::Success && task.ty == "downlink" {
            let files = outputs
                .as_ref()
                .map(|o| o.files.as_slice())
                .unwrap_or_default();
            let spec: serde_json::Value = db::json_or_default(&task.spec);
            let destination = spec["destination"].as_str().unwrap_or("/").to_string();
            match land_downlink(core, &mut tx, &exec.namespace, &destination, files, at).await? {
                Ok(files) => landed = Some(files),
                Err(message) => {
                    state = TaskState::Failed;
                    error = Some(TaskError {
                        code: ErrorCode::TransferFailed,
                        message,
                        log_tail: Vec::new(),
                    });
                }
            }
        }
        task.outputs = outputs
            .as_ref()
            .map(|o| db::to_json(&outputs_json(o, landed.as_deref())));
        executor::finish(&mut task, state, at, None);
        if task.started_at.is_none() && state == TaskState::Success {
            task.started_at = Some(at);
        }
    } else {
        task.state = state.as_str().into();
        executor::push_history(&mut task.history, state, at);
        if state == TaskState::Running {
            task.started_at = Some(at);
        }
    }
    if let (TaskState::Failed, Some(e)) = (state, &error) {
        task.error = Some(db::to_json(&executor::error_json(None, e)));
        let mut errors: Vec<serde_json::Value> = db::json_or_default(&exec.errors);
        errors.push(executor::error_json(Some(&task.id), e));
        exec.errors = db::to_json(&errors);
        db::update_execution(&mut tx, &exec).await?;
    }
    db::update_task(&mut tx, execution, &task).await?;
    tx.commit().await?;
    tracing::info!(%system, %execution, task = %task.id, state = state.as_str(), "task event");
    Ok(())
}

/// Creates namespace file versions for a successful downlink's files at
/// `<destination>/<volume path>`. The inner error fails the task (a blob that never arrived).
async fn land_downlink(
    core: &Core,
    tx: &mut db::Tx,
    namespace: &str,
    destination: &str,
    files: &[FileRef],
    at: i64,
) -> Result<Result<Vec<(String, i64)>, String>, Error> {
    let mut checked = Vec::with_capacity(files.len());
    for f in files {
        let path = match entry_path(destination, f.path.trim_start_matches('/').as_bytes()) {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(Err("a downlinked file has an empty path".to_string())),
            Err(e) => return Ok(Err(format!("downlinked file '{}': {e}", f.path))),
        };
        match core.blobs.size(&f.digest).await {
            Some(size) if size == f.size => {}
            _ => {
                return Ok(Err(format!(
                    "the content of '{}' ({}) did not arrive",
                    f.path, f.digest
                )));
            }
        }
        checked.push((path, f));
    }
    let mut landed = Vec::with_capacity(checked.len());
    for (path, f) in checked {
        let size = i64::try_from(f.size).unwrap_or(i64::MAX);
        let version =
            db::add_file_version(tx, namespace, &path, &f.digest.to_string(), size, 0o644, at)
                .await?;
        landed.push((path, version));
    }
    Ok(Ok(landed))
}

/// A task's outputs as the API shows them. A downlink's files are shown where they landed in
/// the namespace, with their version.
fn outputs_json(o: &TaskOutputs, landed: Option<&[(String, i64)]>) -> serde_json::Value {
    let files: Vec<serde_json::Value> = o
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| match landed.and_then(|l| l.get(i)) {
            Some((path, version)) => serde_json::json!({
                "path": path, "digest": f.digest.to_string(), "size": f.size, "version": version,
            }),
            None => serde_json::json!({ "path": f.path, "digest": f.digest.to_string(), "size": f.size }),
        })
        .collect();
    let listing: Vec<serde_json::Value> = o
        .listing
        .iter()
        .map(|e| {
            serde_json::json!({
                "path": e.path,
                "size": e.size,
                "is_dir": e.is_dir,
                "modified": time::rfc3339(i64::try_from(e.modified_ms).unwrap_or(0)),
            })
        })
        .collect();
    serde_json::json!({
        "files": files,
        "listing": listing,
        "image": o.image,
        "message": o.message,
        "exit_code": o.exit_code,
        "log_tail": o.log_tail,
    })
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
    if current.is_final() || rank(state) <= rank(current) {
        tracing::debug!(%system, %execution, "stale execution event; ignored");
        return Ok(());
    }
    let at = event_time(at_ms);
    executor::set_state(&mut exec, state, at);
    db::update_execution(&mut tx, &exec).await?;
    if state == TaskState::Failed {
        let not_run = TaskError {
            code: ErrorCode::ExecutionError,
            message: NOT_RUN.into(),
            log_tail: Vec::new(),
        };
        for mut t in db::tasks(&mut *tx, execution).await? {
            if matches!(
                TaskState::parse(&t.state),
                Some(TaskState::Created | TaskState::Scheduled)
            ) {
                executor::finish(&mut t, TaskState::Failed, at, Some(&not_run));
                db::update_task(&mut tx, execution, &t).await?;
            }
        }
    }
    tx.commit().await?;
    tracing::info!(%system, %execution, state = state.as_str(), "execution event");
    Ok(())
}
