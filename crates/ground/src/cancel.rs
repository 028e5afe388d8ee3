//! Calling an execution off, in any state that is not final.
//!
//! An execution that was never sent (one awaiting approval) ends `CANCELLED` at once, its tasks
//! with it (`approval::end`). One whose plan was sent (`CREATED` with its plan recorded,
//! `SCHEDULED`, `RUNNING`) cannot be recalled from the link, so the ground sends after it a
//! `wire::Message::Cancel`, a [`wire::CancelOrder`] signed with the plans' key, and shows the
//! execution `CANCELLING`, naming who asked, until the system answers. The flight agent stops
//! what runs, never starts what has not, and reports every task not finished and the execution
//! `CANCELLED` (`reports` applies it, with the execution's error naming who cancelled it). A
//! cancel that reaches the agent after the execution ended changes nothing: the execution ends
//! as it ended, and its history says the cancel came too late.
//!
//! The order is recorded (`execution_cancels`) in the transaction that makes the execution
//! `CANCELLING`, then queued on the link; should the ground stop between the two, or the agent
//! restart, the order goes again at the agent's next `Hello` (`system_link`), before any plan
//! sent again, so that an agent that lost the plan learns of the cancel first and never runs it.
//! A second cancel of an execution `CANCELLING` changes nothing; one of an execution that ended
//! is refused with 409.

use wire::{ErrorCode, Message, TaskError, TaskState};

use crate::db::{self, HistoryEntry};
use crate::error::ApiError;
use crate::executor::{mark_last, set_state, shown_state};
use crate::{Ground, approval, time};

/// Where a cancel left its execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Never sent: it ended `CANCELLED` at once.
    Ended,
    /// Sent: the system was asked to stop it; it is `CANCELLING` until the system answers.
    Requested,
}

/// Cancels an execution. `user` must own it or be an operator (`operator`); another tenant's is
/// answered as absent (404). 409 when it has ended, or when its system is no longer served.
pub(crate) async fn cancel(
    ground: &Ground,
    user: &str,
    operator: bool,
    id: &str,
) -> Result<Outcome, ApiError> {
    let mut tx = db::write_tx(ground.db()).await?;
    let mut exec = match db::execution(&mut *tx, id).await? {
        Some(e) if e.tenant == user || operator => e,
        _ => return Err(ApiError::not_found(format!("execution '{id}' not found"))),
    };
    match TaskState::parse(&exec.state) {
        Some(TaskState::AwaitingApproval) => {
            let error = TaskError {
                code: ErrorCode::Cancelled,
                message: format!("cancelled by {user} before it was sent"),
                log_tail: Vec::new(),
            };
            approval::end(&mut tx, exec, TaskState::Cancelled, user, None, &error).await?;
            tx.commit().await?;
            tracing::info!(execution = %id, %user, "execution cancelled before it was sent");
            return Ok(Outcome::Ended);
        }
        Some(TaskState::Cancelling) => return Ok(Outcome::Requested),
        Some(s) if s.is_final() => {
            return Err(ApiError::Conflict(format!(
                "execution '{id}' has already ended ({}): there is nothing left to cancel",
                shown_state(&exec.state)
            )));
        }
        _ => {}
    }
    let Some(link) = ground.system(&exec.system) else {
        return Err(ApiError::Conflict(format!(
            "execution '{id}' runs on system '{}', which this ground no longer serves: it cannot be told to stop",
            exec.system
        )));
    };
    let order = ground.seal_cancel(&exec.system, id, user);
    let encoded = wire::encode_message(&Message::Cancel(order));
    set_state(&mut exec, TaskState::Cancelling, time::now_ms());
    mark_last(&mut exec.history, Some(user), None);
    db::update_execution(&mut tx, &exec).await?;
    db::insert_execution_cancel(&mut tx, id, &encoded).await?;
    tx.commit().await?;
    tracing::info!(execution = %id, system = %exec.system, %user, "cancel requested; waiting for the system");
    if link.send_message(encoded).await.is_err() {
        // Recorded: it goes at the agent's next Hello once the link runs again.
        tracing::error!(execution = %id, system = %exec.system, "the system's link has stopped; the cancel waits for it");
    }
    Ok(Outcome::Requested)
}

/// Who asked for the cancel an execution's history records (its last `CANCELLING` entry).
pub(crate) fn requested_by(history: &str) -> Option<String> {
    let h: Vec<HistoryEntry> = db::json_or_default(history);
    h.iter()
        .rev()
        .find(|e| e.state == TaskState::Cancelling.as_str())
        .and_then(|e| e.by.clone())
}

/// The execution's error once its system confirmed the cancel.
pub(crate) fn confirmed_error(by: Option<&str>, system: &str) -> TaskError {
    TaskError {
        code: ErrorCode::Cancelled,
        message: match by {
            Some(by) => format!("cancelled by {by}; stopped on system '{system}'"),
            None => format!("cancelled; stopped on system '{system}'"),
        },
        log_tail: Vec::new(),
    }
}

/// What the history says of a cancel that reached the system after the execution ended.
pub(crate) fn too_late(by: Option<&str>, system: &str) -> String {
    match by {
        Some(by) => format!(
            "the cancel {by} asked for reached system '{system}' after the execution had ended"
        ),
        None => format!("the cancel reached system '{system}' after the execution had ended"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_requester_is_the_last_cancelling_entry() {
        let history = db::to_json(&vec![
            HistoryEntry {
                state: "SCHEDULED".into(),
                at: 1,
                by: None,
                reason: None,
            },
            HistoryEntry {
                state: "CANCELLING".into(),
                at: 2,
                by: Some("alice".into()),
                reason: None,
            },
            HistoryEntry {
                state: "RUNNING".into(),
                at: 3,
                by: None,
                reason: None,
            },
        ]);
        assert_eq!(requested_by(&history).as_deref(), Some("alice"));
        assert_eq!(requested_by("[]"), None);
        assert_eq!(
            confirmed_error(Some("alice"), "em").message,
            "cancelled by alice; stopped on system 'em'"
        );
    }
}
