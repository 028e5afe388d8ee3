//! The `awaiting_plans` table: the compiled, unsigned plan of each execution waiting for an
//! operator's approval.

use sqlx::Row;

use super::{Db, Tx};

pub(crate) async fn insert_awaiting_plan(
    tx: &mut Tx,
    execution: &str,
    encoded: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO awaiting_plans (execution, plan) VALUES (?, ?)")
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
    let row = sqlx::query("DELETE FROM awaiting_plans WHERE execution = ? RETURNING plan")
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
    sqlx::query_scalar("SELECT plan FROM awaiting_plans WHERE execution = ?")
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
