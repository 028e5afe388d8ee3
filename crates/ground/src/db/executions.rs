//! The `executions` and `tasks` tables: each run of an operation revision on a system and the
//! state of each of its tasks.

use sqlx::any::AnyRow;
use sqlx::{AnyExecutor, Row};

use super::{Db, Tx};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExecutionRow {
    pub(crate) id: String,
    pub(crate) tenant: String,
    pub(crate) namespace: String,
    pub(crate) operation: String,
    pub(crate) revision: i64,
    pub(crate) system: String,
    pub(crate) state: String,
    pub(crate) created_at: i64,
    pub(crate) scheduled_at: Option<i64>,
    pub(crate) started_at: Option<i64>,
    pub(crate) finished_at: Option<i64>,
    /// JSON list of [`HistoryEntry`](super::HistoryEntry).
    pub(crate) history: String,
    /// JSON list of task errors (each with its task id).
    pub(crate) errors: String,
}

fn execution_row(r: &AnyRow) -> Result<ExecutionRow, sqlx::Error> {
    Ok(ExecutionRow {
        id: r.try_get("id")?,
        tenant: r.try_get("tenant")?,
        namespace: r.try_get("namespace")?,
        operation: r.try_get("operation")?,
        revision: r.try_get("revision")?,
        system: r.try_get("system")?,
        state: r.try_get("state")?,
        created_at: r.try_get("created_at")?,
        scheduled_at: r.try_get("scheduled_at")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
        history: r.try_get("history")?,
        errors: r.try_get("errors")?,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TaskRow {
    pub(crate) idx: i64,
    pub(crate) id: String,
    pub(crate) ty: String,
    pub(crate) state: String,
    pub(crate) started_at: Option<i64>,
    pub(crate) finished_at: Option<i64>,
    /// JSON list of [`HistoryEntry`](super::HistoryEntry).
    pub(crate) history: String,
    /// JSON task error, when failed.
    pub(crate) error: Option<String>,
    /// JSON outputs, when finished.
    pub(crate) outputs: Option<String>,
    /// JSON of what later events need (a downlink's destination).
    pub(crate) spec: String,
}

fn task_row(r: &AnyRow) -> Result<TaskRow, sqlx::Error> {
    Ok(TaskRow {
        idx: r.try_get("idx")?,
        id: r.try_get("id")?,
        ty: r.try_get("type")?,
        state: r.try_get("state")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
        history: r.try_get("history")?,
        error: r.try_get("error")?,
        outputs: r.try_get("outputs")?,
        spec: r.try_get("spec")?,
    })
}

pub(crate) async fn insert_execution(tx: &mut Tx, e: &ExecutionRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO executions (id, tenant, namespace, operation, revision, system, state, created_at,
                                 scheduled_at, started_at, finished_at, history, errors)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(&e.id)
    .bind(&e.tenant)
    .bind(&e.namespace)
    .bind(&e.operation)
    .bind(e.revision)
    .bind(&e.system)
    .bind(&e.state)
    .bind(e.created_at)
    .bind(e.scheduled_at)
    .bind(e.started_at)
    .bind(e.finished_at)
    .bind(&e.history)
    .bind(&e.errors)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Writes back every mutable column of an execution.
pub(crate) async fn update_execution(tx: &mut Tx, e: &ExecutionRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE executions SET state = $1, scheduled_at = $2, started_at = $3, finished_at = $4, history = $5, errors = $6
         WHERE id = $7",
    )
    .bind(&e.state)
    .bind(e.scheduled_at)
    .bind(e.started_at)
    .bind(e.finished_at)
    .bind(&e.history)
    .bind(&e.errors)
    .bind(&e.id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn insert_task(
    tx: &mut Tx,
    execution: &str,
    t: &TaskRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO tasks (execution, idx, id, type, state, started_at, finished_at, history, error, outputs, spec)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(execution)
    .bind(t.idx)
    .bind(&t.id)
    .bind(&t.ty)
    .bind(&t.state)
    .bind(t.started_at)
    .bind(t.finished_at)
    .bind(&t.history)
    .bind(&t.error)
    .bind(&t.outputs)
    .bind(&t.spec)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Writes back every mutable column of a task.
pub(crate) async fn update_task(
    tx: &mut Tx,
    execution: &str,
    t: &TaskRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE tasks SET state = $1, started_at = $2, finished_at = $3, history = $4, error = $5, outputs = $6
         WHERE execution = $7 AND idx = $8",
    )
    .bind(&t.state)
    .bind(t.started_at)
    .bind(t.finished_at)
    .bind(&t.history)
    .bind(&t.error)
    .bind(&t.outputs)
    .bind(execution)
    .bind(t.idx)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn execution<'e>(
    ex: impl AnyExecutor<'e>,
    id: &str,
) -> Result<Option<ExecutionRow>, sqlx::Error> {
    let row = sqlx::query("SELECT * FROM executions WHERE id = $1")
        .bind(id)
        .fetch_optional(ex)
        .await?;
    row.as_ref().map(execution_row).transpose()
}

pub(crate) async fn tasks<'e>(
    ex: impl AnyExecutor<'e>,
    execution: &str,
) -> Result<Vec<TaskRow>, sqlx::Error> {
    let rows = sqlx::query("SELECT * FROM tasks WHERE execution = $1 ORDER BY idx")
        .bind(execution)
        .fetch_all(ex)
        .await?;
    rows.iter().map(task_row).collect()
}

/// The tenant's executions, newest first, optionally of one namespace and operation.
pub(crate) async fn executions_of(
    db: &Db,
    tenant: &str,
    namespace: Option<&str>,
    operation: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<ExecutionRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT * FROM executions
         WHERE tenant = $1 AND ($2 IS NULL OR namespace = $2) AND ($3 IS NULL OR operation = $3)
         ORDER BY created_at DESC, id LIMIT $4 OFFSET $5",
    )
    .bind(tenant)
    .bind(namespace)
    .bind(operation)
    .bind(limit)
    .bind(offset)
    .fetch_all(db)
    .await?;
    rows.iter().map(execution_row).collect()
}

/// Executions newest first, of one tenant or (`None`) every tenant's, optionally of one
/// namespace and in one state: the listings of the API and the dashboard.
pub(crate) async fn executions_where(
    db: &Db,
    tenant: Option<&str>,
    namespace: Option<&str>,
    state: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<ExecutionRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT * FROM executions
         WHERE ($1 IS NULL OR tenant = $1) AND ($2 IS NULL OR namespace = $2)
           AND ($3 IS NULL OR state = $3)
         ORDER BY created_at DESC, id LIMIT $4 OFFSET $5",
    )
    .bind(tenant)
    .bind(namespace)
    .bind(state)
    .bind(limit)
    .bind(offset)
    .fetch_all(db)
    .await?;
    rows.iter().map(execution_row).collect()
}

/// The images a tenant's tasks built or loaded on a system, as the system reported them in the
/// tasks' outputs, without the tenant prefix (`name:tag`): the tenant's images known onboard.
/// The latest `limit` tasks are read.
pub(crate) async fn reported_images(
    db: &Db,
    tenant: &str,
    system: &str,
    limit: i64,
) -> Result<Vec<String>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT t.outputs FROM tasks t JOIN executions e ON e.id = t.execution
         WHERE e.tenant = $1 AND e.system = $2 AND t.type IN ('docker.build', 'docker.load')
           AND t.state = 'SUCCESS' AND t.outputs IS NOT NULL
         ORDER BY t.finished_at IS NULL, t.finished_at DESC, t.execution DESC, t.idx DESC LIMIT $3",
    )
    .bind(tenant)
    .bind(system)
    .bind(limit)
    .fetch_all(db)
    .await?;
    let prefix = format!("{}/{tenant}/", wire::names::TENANT_IMAGE_PREFIX);
    let mut images = Vec::new();
    for row in &rows {
        let outputs: String = row.try_get("outputs")?;
        let image = super::from_json::<api::TaskOutputs>(&outputs)
            .and_then(|o| o.image)
            .and_then(|i| i.strip_prefix(&prefix).map(str::to_string));
        if let Some(image) = image
            && !images.contains(&image)
        {
            images.push(image);
        }
    }
    Ok(images)
}

/// The oldest execution on `system` with a task that has not finished, if any: the system is
/// busy with it. (An execution whose tasks have all ended is only waiting for its own end to be
/// reported; one waiting for an operator's approval has not been sent.)
pub(crate) async fn busy_execution(db: &Db, system: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT e.id FROM executions e JOIN tasks t ON t.execution = e.id
         WHERE e.system = $1 AND e.state IN ('CREATED', 'SCHEDULED', 'RUNNING', 'CANCELLING')
           AND t.state IN ('CREATED', 'SCHEDULED', 'RUNNING')
         ORDER BY e.created_at, e.id LIMIT 1",
    )
    .bind(system)
    .fetch_optional(db)
    .await
}

/// The newest execution of operation `namespace/operation` that has a task `task`.
pub(crate) async fn latest_execution_with_task(
    db: &Db,
    namespace: &str,
    operation: &str,
    task: &str,
) -> Result<Option<ExecutionRow>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT e.* FROM executions e JOIN tasks t ON t.execution = e.id
         WHERE e.namespace = $1 AND e.operation = $2 AND t.id = $3
         ORDER BY e.created_at DESC, e.id DESC LIMIT 1",
    )
    .bind(namespace)
    .bind(operation)
    .bind(task)
    .fetch_optional(db)
    .await?;
    row.as_ref().map(execution_row).transpose()
}
