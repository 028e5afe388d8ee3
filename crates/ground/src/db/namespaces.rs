//! The `namespaces` table: who owns which namespace.

use sqlx::{AnyExecutor, Row};

use super::Db;

pub(crate) async fn namespace_owner<'e>(
    ex: impl AnyExecutor<'e>,
    name: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT owner FROM namespaces WHERE name = $1")
        .bind(name)
        .fetch_optional(ex)
        .await
}

/// Creates the namespace; `false` if the name was taken.
pub(crate) async fn insert_namespace<'e>(
    ex: impl AnyExecutor<'e>,
    name: &str,
    owner: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let r =
        sqlx::query("INSERT INTO namespaces (name, owner, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(name)
            .bind(owner)
            .bind(now)
            .execute(ex)
            .await?;
    Ok(r.rows_affected() == 1)
}

pub(crate) async fn namespaces_of(db: &Db, owner: &str) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT name, created_at FROM namespaces WHERE owner = $1 ORDER BY name LIMIT 10000",
    )
    .bind(owner)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("name")?, r.try_get("created_at")?)))
        .collect()
}
