//! The approval gate, and calling an execution off before it is sent.
//!
//! An execution on a system whose [`Approval`] is `Required` (a flight system's default) is
//! compiled when it starts, as any other, but neither signed, queued nor sent: it waits
//! `AWAITING_APPROVAL` with its plan kept in `awaiting_plans` ([`hold`]). An operator's
//! [`approve`] seals that very plan (its system's next sequence, issue time and expiry from the
//! moment of approval), records it and sends it, and the execution goes on as if it had just
//! started; [`reject`] ends it `REJECTED` with the operator's reason. Each names the operator in
//! the history entry it adds.
//!
//! A cancel (`cancel`) of an execution awaiting approval ends it here too ([`end`]), never sent.

use wire::{ErrorCode, Message, TaskError, TaskState};

use crate::db::{self, ExecutionRow, TaskRow};
use crate::error::ApiError;
use crate::executor::{self, error_json, finish, mark_last, set_state};
use crate::{Ground, time};

/// Whether a system's executions wait for an operator's approval before they are sent: the
/// systems file's `approval` (`required` or `none`), by default required for every system but
/// the Engineering Model `em`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Approval {
    /// Each execution waits `AWAITING_APPROVAL` until an operator approves it.
    Required,
    /// Executions are sent as soon as they start.
    NotRequired,
}

impl Approval {
    /// `required` or `none`, as the systems file and the API write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Approval::Required => "required",
            Approval::NotRequired => "none",
        }
    }

    /// Reads [`Approval::as_str`]'s names.
    pub fn parse(s: &str) -> Option<Approval> {
        match s {
            "required" => Some(Approval::Required),
            "none" => Some(Approval::NotRequired),
            _ => None,
        }
    }

    /// A system's approval when the systems file says nothing: none for the Engineering Model
    /// `em`, required for a flight system.
    pub fn default_for(system: &str) -> Approval {
        if system == "em" {
            Approval::NotRequired
        } else {
            Approval::Required
        }
    }
}

/// The longest reason a rejection may give.
pub(crate) const MAX_REASON: usize = 1000;

/// Records a new execution waiting for approval: the execution (`AWAITING_APPROVAL`), its tasks
/// (`CREATED`) and its compiled, unsigned plan, in one transaction.
pub(crate) async fn hold(
    ground: &Ground,
    exec: &mut ExecutionRow,
    tasks: &[TaskRow],
    plan: &wire::Plan,
) -> Result<(), ApiError> {
    set_state(exec, TaskState::AwaitingApproval, exec.created_at);
    let encoded = wire::encode_message(&Message::Plan(plan.clone()));
    let mut tx = db::write_tx(ground.db()).await?;
    db::insert_execution(&mut tx, exec).await?;
    for t in tasks {
        db::insert_task(&mut tx, &exec.id, t).await?;
    }
    db::insert_awaiting_plan(&mut tx, &exec.id, &encoded).await?;
    tx.commit().await?;
    tracing::info!(execution = %exec.id, system = %exec.system, tenant = %exec.tenant, "execution awaiting an operator's approval");
    Ok(())
}

/// An operator approves an execution awaiting approval: its plan is sealed, recorded and sent,
/// and the execution is `SCHEDULED` by `operator`. 404 when there is no such execution, 409
/// when it is not awaiting approval.
pub(crate) async fn approve(ground: &Ground, operator: &str, id: &str) -> Result<(), ApiError> {
    let mut tx = db::write_tx(ground.db()).await?;
    let mut exec = awaiting(&mut tx, id, "approved").await?;
    if db::user(ground.db(), &exec.tenant)
        .await?
        .is_some_and(|u| u.disabled_at.is_some())
    {
        return Err(ApiError::Conflict(format!(
            "execution '{id}' belongs to '{}', whose account is disabled; reject it",
            exec.tenant
        )));
    }
    if ground.system(&exec.system).is_none() {
        return Err(ApiError::Conflict(format!(
            "execution '{id}' runs on system '{}', which this ground no longer serves",
            exec.system
        )));
    }
    let encoded = db::take_awaiting_plan(&mut tx, id)
        .await?
        .ok_or_else(|| ApiError::internal(format!("execution '{id}' has no plan to approve")))?;
    let Ok(Message::Plan(mut plan)) = wire::decode_message(&encoded) else {
        return Err(ApiError::internal(format!(
            "execution '{id}': its awaiting plan does not decode"
        )));
    };
    ground.seal_plan(&mut tx, &exec.system, &mut plan).await?;
    crate::queue::record(&mut tx, id, &plan).await?;
    let mut tasks = db::tasks(&mut *tx, id).await?;
    executor::mark_scheduled(
        &mut tx,
        &mut exec,
        &mut tasks,
        time::now_ms(),
        Some(operator),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(execution = %id, system = %exec.system, %operator, "execution approved");
    executor::send(ground, exec, tasks, plan).await
}

/// An operator rejects an execution awaiting approval: it ends `REJECTED` with `reason`, never
/// sent. 400 for an empty or overlong reason, 404 when there is no such execution, 409 when it
/// is not awaiting approval.
pub(crate) async fn reject(
    ground: &Ground,
    operator: &str,
    id: &str,
    reason: &str,
) -> Result<(), ApiError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.len() > MAX_REASON {
        return Err(ApiError::bad(format!(
            "a rejection needs a reason of 1 to {MAX_REASON} bytes"
        )));
    }
    let mut tx = db::write_tx(ground.db()).await?;
    let exec = awaiting(&mut tx, id, "rejected").await?;
    let error = TaskError {
        code: ErrorCode::Rejected,
        message: format!("rejected by operator {operator}: {reason}"),
        log_tail: Vec::new(),
    };
    end(
        &mut tx,
        exec,
        TaskState::Rejected,
        operator,
        Some(reason),
        &error,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(execution = %id, %operator, reason, "execution rejected");
    Ok(())
}

/// The execution, if it awaits approval: 404 when there is none, 409 when it is in another
/// state (`what` it cannot be).
async fn awaiting(tx: &mut db::Tx, id: &str, what: &str) -> Result<ExecutionRow, ApiError> {
    let Some(exec) = db::execution(&mut **tx, id).await? else {
        return Err(ApiError::not_found(format!("execution '{id}' not found")));
    };
    if TaskState::parse(&exec.state) != Some(TaskState::AwaitingApproval) {
        let shown = executor::shown_state(&exec.state);
        return Err(ApiError::Conflict(format!(
            "execution '{id}' is not awaiting approval (it is {shown}): it cannot be {what}"
        )));
    }
    Ok(exec)
}

/// Ends an unsent execution in `state` (`REJECTED` or `CANCELLED`) by `by`, for `reason`, with
/// `error` as its error; its tasks end `CANCELLED`, not run; its awaiting plan is dropped.
pub(crate) async fn end(
    tx: &mut db::Tx,
    mut exec: ExecutionRow,
    state: TaskState,
    by: &str,
    reason: Option<&str>,
    error: &TaskError,
) -> Result<(), ApiError> {
    let now = time::now_ms();
    set_state(&mut exec, state, now);
    mark_last(&mut exec.history, Some(by), reason);
    exec.errors = db::to_json(&vec![error_json(None, error)]);
    db::update_execution(tx, &exec).await?;
    let not_run = TaskError {
        code: error.code,
        message: format!(
            "not run: the execution was {}",
            if state == TaskState::Rejected {
                "rejected"
            } else {
                "cancelled"
            }
        ),
        log_tail: Vec::new(),
    };
    for mut t in db::tasks(&mut **tx, &exec.id).await? {
        finish(&mut t, TaskState::Cancelled, now, Some(&not_run));
        db::update_task(tx, &exec.id, &t).await?;
    }
    db::take_awaiting_plan(tx, &exec.id).await?;
    Ok(())
}
