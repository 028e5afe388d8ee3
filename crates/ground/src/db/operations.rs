//! The `operations` and `operation_revisions` tables: each operation and the YAML of each of its
//! revisions.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, Tx};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OperationRow {
    pub(crate) namespace: String,
    pub(crate) id: String,
    pub(crate) revision: i64,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
}

fn operation_row(r: &AnyRow) -> Result<OperationRow, sqlx::Error> {
    Ok(OperationRow {
        namespace: r.try_get("namespace")?,
        id: r.try_get("id")?,
        revision: r.try_get("revision")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// An operation with the YAML of its latest revision.
pub(crate) async fn operation(
    db: &Db,
    namespace: &str,
    id: &str,
) -> Result<Option<(OperationRow, String)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT o.*, r.yaml FROM operations o
         JOIN operation_revisions r ON r.namespace = o.namespace AND r.id = o.id AND r.revision = o.revision
         WHERE o.namespace = $1 AND o.id = $2",
    )
    .bind(namespace)
    .bind(id)
    .fetch_optional(db)
    .await?;
    row.map(|r| Ok((operation_row(&r)?, r.try_get("yaml")?)))
        .transpose()
}

/// One revision's YAML and when it was saved.
pub(crate) async fn operation_revision(
    db: &Db,
    namespace: &str,
    id: &str,
    revision: i64,
) -> Result<Option<(String, i64)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT yaml, created_at FROM operation_revisions
         WHERE namespace = $1 AND id = $2 AND revision = $3",
    )
    .bind(namespace)
    .bind(id)
    .bind(revision)
    .fetch_optional(db)
    .await?;
    row.map(|r| Ok((r.try_get("yaml")?, r.try_get("created_at")?)))
        .transpose()
}

/// Stores `yaml` as the operation's latest revision, unless it is already exactly that.
pub(crate) async fn save_operation(
    tx: &mut Tx,
    namespace: &str,
    id: &str,
    yaml: &str,
    now: i64,
) -> Result<OperationRow, sqlx::Error> {
    let current = sqlx::query(
        "SELECT o.*, r.yaml FROM operations o
         JOIN operation_revisions r ON r.namespace = o.namespace AND r.id = o.id AND r.revision = o.revision
         WHERE o.namespace = $1 AND o.id = $2",
    )
    .bind(namespace)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    let row = match current {
        Some(r) => {
            let mut row = operation_row(&r)?;
            let old: String = r.try_get("yaml")?;
            if old == yaml {
                return Ok(row);
            }
            row.revision += 1;
            row.updated_at = now;
            sqlx::query(
                "UPDATE operations SET revision = $1, updated_at = $2 WHERE namespace = $3 AND id = $4",
            )
            .bind(row.revision)
            .bind(now)
            .bind(namespace)
            .bind(id)
            .execute(&mut **tx)
            .await?;
            row
        }
        None => {
            sqlx::query(
                "INSERT INTO operations (namespace, id, revision, created_at, updated_at) VALUES ($1, $2, 1, $3, $4)",
            )
            .bind(namespace)
            .bind(id)
            .bind(now)
            .bind(now)
            .execute(&mut **tx)
            .await?;
            OperationRow {
                namespace: namespace.to_string(),
                id: id.to_string(),
                revision: 1,
                created_at: now,
                updated_at: now,
            }
        }
    };
    sqlx::query(
        "INSERT INTO operation_revisions (namespace, id, revision, yaml, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(namespace)
    .bind(id)
    .bind(row.revision)
    .bind(yaml)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(row)
}

/// The owner's operations, in one namespace or all of theirs.
pub(crate) async fn operations_of(
    db: &Db,
    owner: &str,
    namespace: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<OperationRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT o.* FROM operations o JOIN namespaces n ON n.name = o.namespace
         WHERE n.owner = $1 AND ($2 IS NULL OR o.namespace = $2)
         ORDER BY o.namespace, o.id LIMIT $3 OFFSET $4",
    )
    .bind(owner)
    .bind(namespace)
    .bind(limit)
    .bind(offset)
    .fetch_all(db)
    .await?;
    rows.iter().map(operation_row).collect()
}
