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
            digest: None,
        })
        .collect();
    let mut tx = db::write_tx(&core.db).await?;
    db::replace_volume(&mut tx, system, tenant, volume, &rows).await?;
    tx.commit().await?;
    Ok(())
}

/// Where a state sits in the lifecycle; events never move backwards. `CANCELLING` (an
/// execution's, on the ground) ranks with `RUNNING`: the system's word that it runs changes
/// nothing, its final word ends it.
fn rank(state: TaskState) -> u8 {
    match state {
        TaskState::Created | TaskState::AwaitingApproval => 0,
        TaskState::Scheduled => 1,
        TaskState::Running | TaskState::Cancelling => 2,
        TaskState::Success | TaskState::Failed | TaskState::Rejected | TaskState::Cancelled => 3,
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
/// landed); a failure's error joins the execution's errors. A task cancelled keeps its error (the
/// cancel's) as its own; the execution's says once who cancelled it.
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
    let landed = landed.map(|files| (exec.namespace.as_str(), files));
    task.outputs = outputs.map(|o| db::to_json(&outputs_json(o, landed)));
    executor::finish(task, state, at, None);
    if task.started_at.is_none() && state == TaskState::Success {
        task.started_at = Some(at);
    }
    if let (TaskState::Cancelled, Some(e)) = (state, error) {
        task.error = Some(db::to_json(&executor::error_json(None, e)));
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

/// A task's outputs as the API shows them (and the database keeps them), shaped as
/// Clustergate-2 shapes them too (`files` with `path`, `uri`, `contentType`, `contentLength`;
/// see `docs/clustergate-2.md`). A downlink's files are shown where they landed in the
/// namespace (`landed`: the namespace, and each file's path and version), with the URI to
/// download them; a `files.list` shows the files it found.
pub(crate) fn outputs_json(
    o: &TaskOutputs,
    landed: Option<(&str, &[(String, i64)])>,
) -> api::TaskOutputs {
    let mut files: Vec<api::OutputFile> = o
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut out = api::OutputFile {
                path: f.path.clone(),
                digest: Some(f.digest.to_string()),
                size: f.size,
                version: None,
                uri: None,
                content_type: None,
                content_length: f.size,
            };
            if let Some((namespace, (path, version))) =
                landed.and_then(|(ns, l)| Some((ns, l.get(i)?)))
            {
                let version = u64::try_from(*version).ok();
                out.path = path.clone();
                out.version = version;
                out.uri = version.map(|v| api::namespace_file_uri(namespace, path, v));
                out.content_type = out.uri.as_ref().map(|_| FILE_CONTENT_TYPE.to_string());
            }
            out
        })
        .collect();
    files.extend(
        o.listing
            .iter()
            .filter(|e| !e.is_dir)
            .map(|e| api::OutputFile {
                path: e.path.clone(),
                digest: None,
                size: e.size,
                version: None,
                uri: None,
                content_type: None,
                content_length: e.size,
            }),
    );
    let listing = o
        .listing
        .iter()
        .map(|e| api::VolumeFile {
            path: e.path.clone(),
            size: e.size,
            is_dir: e.is_dir,
            modified: time::rfc3339(i64::try_from(e.modified_ms).unwrap_or(0)),
            digest: None,
        })
        .collect();
    let content_length = (!files.is_empty()).then(|| {
        files
            .iter()
            .fold(0u64, |n, f| n.saturating_add(f.content_length))
    });
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
        trigger: o.trigger.as_ref().map(|t| api::TriggerFired {
            since: time::rfc3339(i64::try_from(t.since_ms).unwrap_or(0)),
            fired: time::rfc3339(i64::try_from(t.fired_ms).unwrap_or(0)),
            reason: t.reason.clone(),
        }),
        uri: None,
        content_type: None,
        content_length,
    }
}

/// What `GET /api/v1/namespaces/{ns}/files/{path}` answers a file's bytes with, and so the
/// `contentType` of a downlinked file's `uri`.
pub(crate) const FILE_CONTENT_TYPE: &str = "application/octet-stream";

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
    if current == TaskState::Cancelling && state == TaskState::Running && exec.started_at.is_none()
    {
        // It started onboard before the cancel reached it: when is kept, the state stays.
        exec.started_at = Some(event_time(at_ms));
        db::update_execution(&mut tx, &exec).await?;
        tx.commit().await?;
        tracing::info!(%system, %execution, "a cancelling execution started onboard");
        return Ok(());
    }
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
/// task failed on the ground (a downlink that could not land). A cancelled one's tasks not
/// finished end `CANCELLED`, and its errors say who cancelled it; one that ends otherwise while
/// `CANCELLING` ended before the cancel reached its system, as its history says.
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
    let cancelling = TaskState::parse(&exec.state) == Some(TaskState::Cancelling);
    let by = crate::cancel::requested_by(&exec.history);
    executor::set_state(exec, state, at);
    if cancelling && state != TaskState::Cancelled {
        let note = crate::cancel::too_late(by.as_deref(), &exec.system);
        executor::mark_last(&mut exec.history, None, Some(&note));
    }
    if state == TaskState::Cancelled {
        let error = crate::cancel::confirmed_error(by.as_deref(), &exec.system);
        let mut errors: Vec<api::TaskError> = db::json_or_default(&exec.errors);
        errors.push(executor::error_json(None, &error));
        exec.errors = db::to_json(&errors);
        executor::mark_last(&mut exec.history, by.as_deref(), None);
        let not_run = TaskError {
            code: ErrorCode::Cancelled,
            message: "not run: the execution was cancelled".into(),
            log_tail: Vec::new(),
        };
        for mut t in tasks.iter().cloned() {
            if !TaskState::parse(&t.state).is_some_and(TaskState::is_final) {
                executor::finish(&mut t, TaskState::Cancelled, at, Some(&not_run));
                db::update_task(tx, &exec.id, &t).await?;
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_are_shaped_as_clustergate_2_shapes_them() {
        let digest = wire::Digest::of(b"abc");
        let down = TaskOutputs {
            files: vec![wire::FileRef {
                path: "out/a b.txt".into(),
                digest,
                size: 3,
            }],
            ..TaskOutputs::default()
        };
        // Not landed yet: no uri.
        let waiting = outputs_json(&down, None);
        assert_eq!(waiting.files[0].uri, None);
        assert_eq!(waiting.files[0].content_type, None);
        assert_eq!(waiting.files[0].content_length, 3);
        assert_eq!(waiting.content_length, Some(3));
        // Landed: where, which version, and the URI that serves it.
        let landed = [("/res/out/a b.txt".to_string(), 2)];
        let shown = outputs_json(&down, Some(("demo", &landed)));
        let f = &shown.files[0];
        assert_eq!(
            (f.path.as_str(), f.version, f.digest.clone()),
            ("/res/out/a b.txt", Some(2), Some(digest.to_string()))
        );
        assert_eq!(
            f.uri.as_deref(),
            Some("/api/v1/namespaces/demo/files/res/out/a%20b.txt?version=2")
        );
        assert_eq!(f.content_type.as_deref(), Some(FILE_CONTENT_TYPE));
        assert_eq!((shown.uri, shown.content_type), (None, None));

        // A files.list: its files (not its folders) in `files`, without digest or uri.
        let entry = |path: &str, size, is_dir| wire::FileEntry {
            path: path.into(),
            size,
            is_dir,
            modified_ms: 0,
        };
        let list = TaskOutputs {
            listing: vec![
                entry("/in", 0, true),
                entry("/in/input.txt", 5, false),
                entry("/Dockerfile", 7, false),
            ],
            ..TaskOutputs::default()
        };
        let shown = outputs_json(&list, None);
        let files: Vec<(&str, Option<&str>, u64)> = shown
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.digest.as_deref(), f.content_length))
            .collect();
        assert_eq!(
            files,
            [("/in/input.txt", None, 5), ("/Dockerfile", None, 7)]
        );
        assert_eq!(shown.listing.len(), 3);
        assert_eq!(shown.content_length, Some(12));
        // A task without files has no contentLength.
        assert_eq!(
            outputs_json(&TaskOutputs::default(), None).content_length,
            None
        );
    }
}
