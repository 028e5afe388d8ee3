//! The `pending_downlinks`, `pending_downlink_digests` and `held_execution_states` tables:
//! downlinks their system reported done whose files have not all come down yet, and the final
//! execution state held back until they have.

use sqlx::{AnyExecutor, Row};

use super::Tx;

/// A downlink its system reported SUCCESS, waiting for its files to come down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PendingDownlink {
    pub(crate) execution: String,
    pub(crate) task: i64,
    /// When the system reported it (its clock).
    pub(crate) at: i64,
    /// JSON of the reported `wire::TaskOutputs`.
    pub(crate) outputs: String,
}

/// Records a pending downlink with the digests it lists.
pub(crate) async fn insert_pending_downlink(
    tx: &mut Tx,
    p: &PendingDownlink,
    digests: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO pending_downlinks (execution, task, at, outputs) VALUES ($1, $2, $3, $4)",
    )
    .bind(&p.execution)
    .bind(p.task)
    .bind(p.at)
    .bind(&p.outputs)
    .execute(&mut **tx)
    .await?;
    for d in digests {
        sqlx::query(
            "INSERT INTO pending_downlink_digests (execution, task, digest) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(&p.execution)
        .bind(p.task)
        .bind(d)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

pub(crate) async fn pending_downlink<'e>(
    ex: impl AnyExecutor<'e>,
    execution: &str,
    task: i64,
) -> Result<Option<PendingDownlink>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT execution, task, at, outputs FROM pending_downlinks WHERE execution = $1 AND task = $2",
    )
    .bind(execution)
    .bind(task)
    .fetch_optional(ex)
    .await?;
    row.map(|r| {
        Ok(PendingDownlink {
            execution: r.try_get("execution")?,
            task: r.try_get("task")?,
            at: r.try_get("at")?,
            outputs: r.try_get("outputs")?,
        })
    })
    .transpose()
}

pub(crate) async fn delete_pending_downlink(
    tx: &mut Tx,
    execution: &str,
    task: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM pending_downlink_digests WHERE execution = $1 AND task = $2")
        .bind(execution)
        .bind(task)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM pending_downlinks WHERE execution = $1 AND task = $2")
        .bind(execution)
        .bind(task)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The pending downlinks (execution, task) that list `digest`, or every one when `None`.
pub(crate) async fn pending_downlinks<'e>(
    ex: impl AnyExecutor<'e>,
    digest: Option<&str>,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let rows = match digest {
        Some(d) => {
            sqlx::query(
                "SELECT execution, task FROM pending_downlink_digests WHERE digest = $1 ORDER BY execution, task",
            )
            .bind(d)
            .fetch_all(ex)
            .await?
        }
        None => {
            sqlx::query("SELECT execution, task FROM pending_downlinks ORDER BY execution, task")
                .fetch_all(ex)
                .await?
        }
    };
    rows.iter()
        .map(|r| Ok((r.try_get("execution")?, r.try_get("task")?)))
        .collect()
}

/// How many downlinks of the execution are pending.
pub(crate) async fn pending_downlink_count<'e>(
    ex: impl AnyExecutor<'e>,
    execution: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM pending_downlinks WHERE execution = $1")
        .bind(execution)
        .fetch_one(ex)
        .await
}

/// Holds the final state a system reported for an execution (and when).
pub(crate) async fn hold_execution_state(
    tx: &mut Tx,
    execution: &str,
    state: &str,
    at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO held_execution_states (execution, state, at) VALUES ($1, $2, $3)
         ON CONFLICT (execution) DO UPDATE SET state = excluded.state, at = excluded.at",
    )
    .bind(execution)
    .bind(state)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The held final state of an execution, and when it was reported.
pub(crate) async fn held_execution_state<'e>(
    ex: impl AnyExecutor<'e>,
    execution: &str,
) -> Result<Option<(String, i64)>, sqlx::Error> {
    let row = sqlx::query("SELECT state, at FROM held_execution_states WHERE execution = $1")
        .bind(execution)
        .fetch_optional(ex)
        .await?;
    row.map(|r| Ok((r.try_get("state")?, r.try_get("at")?)))
        .transpose()
}

pub(crate) async fn release_execution_state(
    tx: &mut Tx,
    execution: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM held_execution_states WHERE execution = $1")
        .bind(execution)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
