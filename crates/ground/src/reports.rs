//! What a system reports about executions, applied to the database: task events and execution
//! events (state transitions that never move backwards), and volume listings. A downlink's
//! SUCCESS may wait for its files: `downlink` lands it, with the transitions defined here.
//!
//! Each report is applied in one transaction; a stale or misdirected one (an unknown execution,
//! another system's, a state already passed) is logged and ignored, so a report that comes twice
//! changes nothing.

use wire::{ErrorCode, FileEntry, TaskError, TaskOutputs, TaskState};

use crate::db::{self, ExecutionRow, TaskRow, VolumeFileRow};
use crate::downlink::{self, Outcome};
use crate::error::Error;
use crate::executor::{self, NOT_RUN};
use crate::{Core, time};

/// Replaces the ground's view of a tenant's volume with the listing its system sent.
pub(crate) async fn volume_listing(
    core: &Core,
    system: &str,
    tenant: &str,
    volume: &str,
    files: Vec<FileEntry>,
) -> Result<(), Error> {
    if wire::TenantName::new(tenant).is_err() || wire::VolumeName::new(volume).is_err() {
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
    db::replace_volume(&mut tx, system, tenant, volume, &rows).await?;
    tx.commit().await?;
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

/// Applies a task's new state, as its system reported it.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn task_event(
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
        images: o
            .images
            .iter()
            .map(|i| api::TenantImage {
                repository: i.name.clone(),
                tag: i.tag.clone(),
                id: i.id.clone(),
                created: time::rfc3339(i64::try_from(i.created_ms).unwrap_or(0)),
                size: i.size,
            })
            .collect(),
    }
}

/// Applies an execution's new state, as its system reported it; a final state waits for the
/// execution's pending downlinks.
pub(crate) async fn execution_event(
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
