//! Reads of the `execution_plans` table: the encoded plan message of each execution, resent to
//! its system until the execution finishes. (`queue::record` writes this table and
//! `execution_objects`.)

use sqlx::Row;

use super::Db;

/// The plans of a system's executions that have not finished, oldest first.
pub(crate) async fn unfinished_plans(db: &Db, system: &str) -> Result<Vec<Vec<u8>>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT p.plan FROM execution_plans p JOIN executions e ON e.id = p.execution \
         WHERE e.system = ? AND e.state IN ('CREATED', 'SCHEDULED', 'RUNNING') \
         ORDER BY e.created_at",
    )
    .bind(system)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| r.try_get::<Vec<u8>, _>("plan"))
        .collect()
}
