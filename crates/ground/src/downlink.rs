//! Downlinks waiting for their files.
//!
//! On the link, messages go before objects and a large object may take several passes, so a
//! downlink's SUCCESS usually arrives before the files it lists. Until every one of its blobs is
//! in the store the task stays RUNNING (its outputs say how many files are still to come), and
//! what the system reported waits in `pending_downlinks`. It lands (namespace versions, SUCCESS
//! at the reported time) when the last object arrives, or at open for objects that arrived just
//! before a restart. An execution's reported final state is held meanwhile and applied when its
//! last pending downlink has landed.
//!
//! A missing blob only ever means "not yet". A downlink fails (`21 TRANSFER_FAILED`) when it can
//! never land: a path that cannot be placed, a blob of another size than reported, or an object
//! the link gave up on.

use wire::{Digest, ErrorCode, FileRef, TaskError, TaskOutputs, TaskState};

use crate::Core;
use crate::db::{self, PendingDownlink, TaskRow};
use crate::error::Error;
use crate::executor;
use crate::reports::{apply_execution_state, conclude, outputs_json};
use crate::upload::entry_path;

/// What became of a downlink its system reported SUCCESS.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Its files are in the namespace, at these paths and versions (in the reported order).
    Landed(Vec<(String, i64)>),
    /// This many of its files have not come down yet.
    Waiting(usize),
    /// It can never land.
    Failed(TaskError),
}

/// Lands the downlink `task` (its files as `reported`) in `namespace` if every blob is here.
pub(crate) async fn try_land(
    core: &Core,
    tx: &mut db::Tx,
    namespace: &str,
    task: &TaskRow,
    reported: &TaskOutputs,
    at: i64,
) -> Result<Outcome, Error> {
    let spec: serde_json::Value = db::json_or_default(&task.spec);
    let destination = spec["destination"].as_str().unwrap_or("/");
    let paths = match namespace_paths(destination, &reported.files) {
        Ok(paths) => paths,
        Err(message) => return Ok(Outcome::Failed(transfer_failed(message))),
    };
    let mut missing = 0;
    for f in &reported.files {
        match core.blobs.size(&f.digest).await {
            None => missing += 1,
            Some(size) if size != f.size => {
                return Ok(Outcome::Failed(transfer_failed(format!(
                    "the content of '{}' ({}) is {size} bytes, not the {} reported",
                    f.path, f.digest, f.size
                ))));
            }
            Some(_) => {}
        }
    }
    if missing > 0 {
        return Ok(Outcome::Waiting(missing));
    }
    // Every replica must find the files it lands: with a shared store, they are there first
    // (normally since they arrived, and this only checks; an upload that failed then is retried).
    let digests: Vec<Digest> = reported.files.iter().map(|f| f.digest).collect();
    if let Err(e) = core.blobs.push(&digests).await {
        tracing::warn!(task = %task.id, error = %e, "a downlink waits for its files to reach the shared blob store");
        return Ok(Outcome::Waiting(digests.len()));
    }
    let mut landed = Vec::with_capacity(paths.len());
    for (path, f) in paths.into_iter().zip(&reported.files) {
        let size = i64::try_from(f.size).unwrap_or(i64::MAX);
        let version =
            db::add_file_version(tx, namespace, &path, &f.digest.to_string(), size, 0o644, at)
                .await?;
        landed.push((path, version));
    }
    Ok(Outcome::Landed(landed))
}

/// Records a downlink reported SUCCESS whose files are not all here: the task stays RUNNING.
pub(crate) async fn wait(
    tx: &mut db::Tx,
    execution: &str,
    task: &mut TaskRow,
    reported: &TaskOutputs,
    missing: usize,
    at: i64,
) -> Result<(), Error> {
    let pending = PendingDownlink {
        execution: execution.to_string(),
        task: task.idx,
        at,
        outputs: db::to_json(reported),
    };
    let digests: Vec<String> = reported
        .files
        .iter()
        .map(|f| f.digest.to_string())
        .collect();
    db::insert_pending_downlink(tx, &pending, &digests).await?;
    if TaskState::parse(&task.state) != Some(TaskState::Running) {
        task.state = TaskState::Running.as_str().into();
        executor::push_history(&mut task.history, TaskState::Running, at);
        task.started_at.get_or_insert(at);
    }
    task.outputs = Some(waiting_json(reported, missing));
    db::update_task(tx, execution, task).await?;
    Ok(())
}

/// Lands every pending downlink whose files are all here (at open).
pub(crate) async fn settle_all(core: &Core) -> Result<(), Error> {
    for (execution, task) in db::pending_downlinks(&core.db, None).await? {
        settle(core, &execution, task, None).await?;
    }
    Ok(())
}

/// An object came down: lands the pending downlinks it completes.
pub(crate) async fn object_arrived(core: &Core, digest: &Digest) -> Result<(), Error> {
    // Into the shared store first, if there is one: a downlink lands only once every replica
    // can read its files. On failure the object stays here and lands at the next attempt.
    core.blobs.push(&[*digest]).await.map_err(|e| {
        Error::internal(format!(
            "the received object {digest} is kept here only: {e}"
        ))
    })?;
    let key = digest.to_string();
    // Looked up under the write lock, so that a downlink another system's handler is recording
    // right now (having found this blob missing a moment ago) is seen once recorded.
    let mut tx = db::write_tx(&core.db).await?;
    let waiting = db::pending_downlinks(&mut *tx, Some(&key)).await?;
    tx.rollback().await?;
    for (execution, task) in waiting {
        settle(core, &execution, task, None).await?;
    }
    Ok(())
}

/// The link gave up on an object: the pending downlinks that wait for it fail. (On the ground the
/// link only gives up on objects it sends, so this is rare.)
pub(crate) async fn object_failed(core: &Core, digest: &Digest, why: &str) -> Result<(), Error> {
    let key = digest.to_string();
    for (execution, task) in db::pending_downlinks(&core.db, Some(&key)).await? {
        settle(core, &execution, task, Some((digest, why))).await?;
    }
    Ok(())
}

/// Lands (or, with `failed`, fails) one pending downlink, then applies its execution's held state
/// if it was the last. Still waiting, it only refreshes the count of files to come.
async fn settle(
    core: &Core,
    execution: &str,
    idx: i64,
    failed: Option<(&Digest, &str)>,
) -> Result<(), Error> {
    let mut tx = db::write_tx(&core.db).await?;
    // Read again under the write lock: another system's handler may have settled it meanwhile.
    let Some(pending) = db::pending_downlink(&mut *tx, execution, idx).await? else {
        return Ok(());
    };
    let reported: TaskOutputs = db::json_or_default(&pending.outputs);
    let exec = db::execution(&mut *tx, execution).await?;
    let task = db::tasks(&mut *tx, execution)
        .await?
        .into_iter()
        .find(|t| t.idx == idx);
    let (Some(mut exec), Some(mut task)) = (exec, task) else {
        tracing::warn!(%execution, idx, "pending downlink of a vanished task; dropped");
        db::delete_pending_downlink(&mut tx, execution, idx).await?;
        tx.commit().await?;
        return Ok(());
    };
    let outcome = match failed {
        Some((digest, why)) => {
            let path = reported
                .files
                .iter()
                .find(|f| f.digest == *digest)
                .map_or("?", |f| f.path.as_str());
            Outcome::Failed(transfer_failed(format!(
                "the content of '{path}' ({digest}) could not be transferred: {why}"
            )))
        }
        None => try_land(core, &mut tx, &exec.namespace, &task, &reported, pending.at).await?,
    };
    let (state, error, landed) = match outcome {
        Outcome::Waiting(missing) => {
            task.outputs = Some(waiting_json(&reported, missing));
            db::update_task(&mut tx, execution, &task).await?;
            tx.commit().await?;
            return Ok(());
        }
        Outcome::Landed(files) => (TaskState::Success, None, Some(files)),
        Outcome::Failed(e) => (TaskState::Failed, Some(e), None),
    };
    db::delete_pending_downlink(&mut tx, execution, idx).await?;
    conclude(
        &mut tx,
        &mut exec,
        &mut task,
        state,
        pending.at,
        error.as_ref(),
        Some(&reported),
        landed.as_deref(),
    )
    .await?;
    tracing::info!(%execution, task = %task.id, state = state.as_str(), "downlink settled");
    if db::pending_downlink_count(&mut *tx, execution).await? == 0
        && let Some((held, at)) = db::held_execution_state(&mut *tx, execution).await?
    {
        db::release_execution_state(&mut tx, execution).await?;
        match TaskState::parse(&held) {
            Some(held) => {
                let state = apply_execution_state(&mut tx, &mut exec, held, at).await?;
                tracing::info!(%execution, state = state.as_str(), "held execution event applied");
            }
            None => tracing::warn!(%execution, %held, "unreadable held execution state; dropped"),
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Where each file lands in the namespace: `<destination>/<volume path>`. The error fails the task.
fn namespace_paths(destination: &str, files: &[FileRef]) -> Result<Vec<String>, String> {
    files
        .iter()
        .map(
            |f| match entry_path(destination, f.path.trim_start_matches('/').as_bytes()) {
                Ok(Some(p)) => Ok(p),
                Ok(None) => Err("a downlinked file has an empty path".to_string()),
                Err(e) => Err(format!("downlinked file '{}': {e}", f.path)),
            },
        )
        .collect()
}

/// The outputs shown while a downlink waits: as reported, with a message counting what is to come.
fn waiting_json(reported: &TaskOutputs, missing: usize) -> String {
    let mut v = outputs_json(reported, None);
    v.message = Some(format!(
        "waiting for {missing} of {} files to come down",
        reported.files.len()
    ));
    db::to_json(&v)
}

fn transfer_failed(message: String) -> TaskError {
    TaskError {
        code: ErrorCode::TransferFailed,
        message,
        log_tail: Vec::new(),
    }
}
