//! The `awaiting_plans` table: the compiled, unsigned plan of each execution waiting for an
//! operator's approval; and `execution_cancels`: the signed cancel order of each execution
//! called off after it was sent.

use sqlx::Row;

use super::{Db, Tx};

pub(crate) async fn insert_awaiting_plan(
    tx: &mut Tx,
    execution: &str,
    encoded: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO awaiting_plans (execution, plan) VALUES ($1, $2)")
        .bind(execution)
        .bind(encoded)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Takes an execution's awaiting plan out of the table, in `tx`.
pub(crate) async fn take_awaiting_plan(
    tx: &mut Tx,
    execution: &str,
) -> Result<Option<Vec<u8>>, sqlx::Error> {
    let row = sqlx::query("DELETE FROM awaiting_plans WHERE execution = $1 RETURNING plan")
        .bind(execution)
        .fetch_optional(&mut **tx)
        .await?;
    row.map(|r| r.try_get("plan")).transpose()
}

/// An execution's awaiting plan, left in the table.
pub(crate) async fn awaiting_plan(
    db: &Db,
    execution: &str,
) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query_scalar("SELECT plan FROM awaiting_plans WHERE execution = $1")
        .bind(execution)
        .fetch_optional(db)
        .await
}

/// How many executions wait for an operator's approval.
pub(crate) async fn awaiting_count(db: &Db) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM executions WHERE state = 'AWAITING_APPROVAL'")
        .fetch_one(db)
        .await
}

/// Records the cancel order sent for an execution, in `tx` (a second order for it keeps the
/// first: the same bytes go again).
pub(crate) async fn insert_execution_cancel(
    tx: &mut Tx,
    execution: &str,
    encoded: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO execution_cancels (execution, message) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(execution)
    .bind(encoded)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The cancel orders of `system`'s executions still `CANCELLING`, oldest first.
pub(crate) async fn pending_cancels(
    db: &Db,
    system: &str,
) -> Result<Vec<(String, Vec<u8>)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT c.execution, c.message FROM execution_cancels c JOIN executions e ON e.id = c.execution \
         WHERE e.system = $1 AND e.state = 'CANCELLING' ORDER BY e.created_at, e.id",
    )
    .bind(system)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("execution")?, r.try_get("message")?)))
        .collect()
}
