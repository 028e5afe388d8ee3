//! The ground's database: the pool, its migrations and every query.
//!
//! SQLite in WAL mode. Writes that read before they write (a new file version, a new revision, a
//! task event) run in `BEGIN IMMEDIATE` transactions from [`write_tx`], so concurrent writers wait
//! on the busy timeout instead of failing.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlSafeStr, Sqlite, SqliteExecutor, SqlitePool, Transaction};

use crate::error::Error;

/// The pool.
pub(crate) type Db = SqlitePool;
/// A write transaction.
pub(crate) type Tx = Transaction<'static, Sqlite>;

/// Opens (creating if needed) the database at `path` and brings its schema up to date.
pub(crate) async fn open(path: &Path) -> Result<Db, Error> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await?;
    migrator().run(&pool).await?;
    Ok(pool)
}

/// Every migration, oldest first. Never edit one that has shipped: add the next.
fn migrator() -> Migrator {
    let m = |version, description: &'static str, sql: &'static str| {
        Migration::new(
            version,
            description.into(),
            MigrationType::Simple,
            sql.into_sql_str(),
            false,
        )
    };
    Migrator::with_migrations(vec![
        m(1, "init", include_str!("../migrations/0001_init.sql")),
        m(
            2,
            "pending downlinks",
            include_str!("../migrations/0002_pending_downlinks.sql"),
        ),
        m(
            3,
            "execution objects",
            include_str!("../migrations/0003_execution_objects.sql"),
        ),
        m(
            4,
            "execution plans",
            include_str!("../migrations/0004_execution_plans.sql"),
        ),
    ])
}

/// Begins a transaction that holds the write lock from its first statement.
pub(crate) async fn write_tx(db: &Db) -> Result<Tx, sqlx::Error> {
    db.begin_with("BEGIN IMMEDIATE").await
}

/// One state change, as stored in a history column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HistoryEntry {
    pub(crate) state: String,
    pub(crate) at: i64,
}

/// Reads a JSON column, treating garbage as empty (and saying so).
pub(crate) fn json_or_default<T: for<'de> Deserialize<'de> + Default>(text: &str) -> T {
    serde_json::from_str(text).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "unreadable JSON column");
        T::default()
    })
}

/// Writes a JSON column.
pub(crate) fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_string())
}

// ---- users and sessions ----

pub(crate) async fn upsert_user(
    db: &Db,
    name: &str,
    hash: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO users (name, password_hash, created_at) VALUES (?, ?, ?)
         ON CONFLICT(name) DO UPDATE SET password_hash = excluded.password_hash",
    )
    .bind(name)
    .bind(hash)
    .bind(now)
    .execute(db)
    .await?;
    // A new password ends every session of the old one.
    sqlx::query("DELETE FROM sessions WHERE user_name = ?")
        .bind(name)
        .execute(db)
        .await?;
    Ok(())
}

pub(crate) async fn password_hash(db: &Db, name: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT password_hash FROM users WHERE name = ?")
        .bind(name)
        .fetch_optional(db)
        .await
}

pub(crate) async fn insert_session(
    db: &Db,
    token_hash: &str,
    user: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sessions WHERE expires_at <= ?")
        .bind(now)
        .execute(db)
        .await?;
    sqlx::query(
        "INSERT INTO sessions (token_hash, user_name, created_at, expires_at) VALUES (?, ?, ?, ?)",
    )
    .bind(token_hash)
    .bind(user)
    .bind(now)
    .bind(expires_at)
    .execute(db)
    .await?;
    Ok(())
}

pub(crate) async fn session_user(
    db: &Db,
    token_hash: &str,
    now: i64,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT user_name FROM sessions WHERE token_hash = ? AND expires_at > ?")
        .bind(token_hash)
        .bind(now)
        .fetch_optional(db)
        .await
}

pub(crate) async fn delete_session(db: &Db, token_hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
        .bind(token_hash)
        .execute(db)
        .await?;
    Ok(())
}

// ---- namespaces ----

pub(crate) async fn namespace_owner<'e>(
    ex: impl SqliteExecutor<'e>,
    name: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT owner FROM namespaces WHERE name = ?")
        .bind(name)
        .fetch_optional(ex)
        .await
}

/// Creates the namespace; `false` if the name was taken.
pub(crate) async fn insert_namespace<'e>(
    ex: impl SqliteExecutor<'e>,
    name: &str,
    owner: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let r =
        sqlx::query("INSERT OR IGNORE INTO namespaces (name, owner, created_at) VALUES (?, ?, ?)")
            .bind(name)
            .bind(owner)
            .bind(now)
            .execute(ex)
            .await?;
    Ok(r.rows_affected() == 1)
}

pub(crate) async fn namespaces_of(db: &Db, owner: &str) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT name, created_at FROM namespaces WHERE owner = ? ORDER BY name LIMIT 10000",
    )
    .bind(owner)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("name")?, r.try_get("created_at")?)))
        .collect()
}

// ---- files ----

/// A version of a ground file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileRow {
    pub(crate) path: String,
    pub(crate) version: i64,
    pub(crate) digest: String,
    pub(crate) size: i64,
    pub(crate) mode: i64,
    pub(crate) created_at: i64,
    /// How many versions the path has (filled by listings only).
    pub(crate) versions: i64,
}

fn file_row(r: &SqliteRow) -> Result<FileRow, sqlx::Error> {
    Ok(FileRow {
        path: r.try_get("path")?,
        version: r.try_get("version")?,
        digest: r.try_get("digest")?,
        size: r.try_get("size")?,
        mode: r.try_get("mode")?,
        created_at: r.try_get("created_at")?,
        versions: r.try_get("versions").unwrap_or(1),
    })
}

/// The latest version of each path at or under `folder` (`/` for all), one page.
pub(crate) async fn latest_files(
    db: &Db,
    namespace: &str,
    folder: &str,
    limit: i64,
    offset: i64,
) -> Result<Vec<FileRow>, sqlx::Error> {
    let prefix = if folder == "/" {
        "/".to_string()
    } else {
        format!("{folder}/")
    };
    let rows = sqlx::query(
        "SELECT f.path, f.version, f.digest, f.size, f.mode, f.created_at, m.n AS versions
         FROM files f
         JOIN (SELECT path, MAX(version) AS v, COUNT(*) AS n FROM files
               WHERE namespace = ?1 AND (path = ?2 OR substr(path, 1, length(?3)) = ?3)
               GROUP BY path) m
           ON f.path = m.path AND f.version = m.v
         WHERE f.namespace = ?1
         ORDER BY f.path
         LIMIT ?4 OFFSET ?5",
    )
    .bind(namespace)
    .bind(folder)
    .bind(prefix)
    .bind(limit)
    .bind(offset)
    .fetch_all(db)
    .await?;
    rows.iter().map(file_row).collect()
}

/// One version of a path (the latest when `version` is `None`).
pub(crate) async fn file_version(
    db: &Db,
    namespace: &str,
    path: &str,
    version: Option<i64>,
) -> Result<Option<FileRow>, sqlx::Error> {
    let row = match version {
        Some(v) => {
            sqlx::query("SELECT * FROM files WHERE namespace = ? AND path = ? AND version = ?")
                .bind(namespace)
                .bind(path)
                .bind(v)
                .fetch_optional(db)
                .await?
        }
        None => sqlx::query(
            "SELECT * FROM files WHERE namespace = ? AND path = ? ORDER BY version DESC LIMIT 1",
        )
        .bind(namespace)
        .bind(path)
        .fetch_optional(db)
        .await?,
    };
    row.as_ref().map(file_row).transpose()
}

/// Adds the next version of `path`; returns its number.
pub(crate) async fn add_file_version(
    tx: &mut Tx,
    namespace: &str,
    path: &str,
    digest: &str,
    size: i64,
    mode: i64,
    now: i64,
) -> Result<i64, sqlx::Error> {
    let version: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(version), 0) + 1 FROM files WHERE namespace = ? AND path = ?",
    )
    .bind(namespace)
    .bind(path)
    .fetch_one(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO files (namespace, path, version, digest, size, mode, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(namespace)
    .bind(path)
    .bind(version)
    .bind(digest)
    .bind(size)
    .bind(mode)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(version)
}

// ---- operations ----

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OperationRow {
    pub(crate) namespace: String,
    pub(crate) id: String,
    pub(crate) revision: i64,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
}

fn operation_row(r: &SqliteRow) -> Result<OperationRow, sqlx::Error> {
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
         WHERE o.namespace = ? AND o.id = ?",
    )
    .bind(namespace)
    .bind(id)
    .fetch_optional(db)
    .await?;
    row.map(|r| Ok((operation_row(&r)?, r.try_get("yaml")?)))
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
         WHERE o.namespace = ? AND o.id = ?",
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
                "UPDATE operations SET revision = ?, updated_at = ? WHERE namespace = ? AND id = ?",
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
                "INSERT INTO operations (namespace, id, revision, created_at, updated_at) VALUES (?, ?, 1, ?, ?)",
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
        "INSERT INTO operation_revisions (namespace, id, revision, yaml, created_at) VALUES (?, ?, ?, ?, ?)",
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
         WHERE n.owner = ?1 AND (?2 IS NULL OR o.namespace = ?2)
         ORDER BY o.namespace, o.id LIMIT ?3 OFFSET ?4",
    )
    .bind(owner)
    .bind(namespace)
    .bind(limit)
    .bind(offset)
    .fetch_all(db)
    .await?;
    rows.iter().map(operation_row).collect()
}

// ---- executions and tasks ----

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
    /// JSON list of [`HistoryEntry`].
    pub(crate) history: String,
    /// JSON list of task errors (each with its task id).
    pub(crate) errors: String,
}

fn execution_row(r: &SqliteRow) -> Result<ExecutionRow, sqlx::Error> {
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
    /// JSON list of [`HistoryEntry`].
    pub(crate) history: String,
    /// JSON task error, when failed.
    pub(crate) error: Option<String>,
    /// JSON outputs, when finished.
    pub(crate) outputs: Option<String>,
    /// JSON of what later events need (a downlink's destination).
    pub(crate) spec: String,
}

fn task_row(r: &SqliteRow) -> Result<TaskRow, sqlx::Error> {
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
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        "UPDATE executions SET state = ?, scheduled_at = ?, started_at = ?, finished_at = ?, history = ?, errors = ?
         WHERE id = ?",
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
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        "UPDATE tasks SET state = ?, started_at = ?, finished_at = ?, history = ?, error = ?, outputs = ?
         WHERE execution = ? AND idx = ?",
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
    ex: impl SqliteExecutor<'e>,
    id: &str,
) -> Result<Option<ExecutionRow>, sqlx::Error> {
    let row = sqlx::query("SELECT * FROM executions WHERE id = ?")
        .bind(id)
        .fetch_optional(ex)
        .await?;
    row.as_ref().map(execution_row).transpose()
}

pub(crate) async fn tasks<'e>(
    ex: impl SqliteExecutor<'e>,
    execution: &str,
) -> Result<Vec<TaskRow>, sqlx::Error> {
    let rows = sqlx::query("SELECT * FROM tasks WHERE execution = ? ORDER BY idx")
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
         WHERE tenant = ?1 AND (?2 IS NULL OR namespace = ?2) AND (?3 IS NULL OR operation = ?3)
         ORDER BY created_at DESC, id LIMIT ?4 OFFSET ?5",
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

// ---- downlinks waiting for their files ----

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
    sqlx::query("INSERT INTO pending_downlinks (execution, task, at, outputs) VALUES (?, ?, ?, ?)")
        .bind(&p.execution)
        .bind(p.task)
        .bind(p.at)
        .bind(&p.outputs)
        .execute(&mut **tx)
        .await?;
    for d in digests {
        sqlx::query(
            "INSERT OR IGNORE INTO pending_downlink_digests (execution, task, digest) VALUES (?, ?, ?)",
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
    ex: impl SqliteExecutor<'e>,
    execution: &str,
    task: i64,
) -> Result<Option<PendingDownlink>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT execution, task, at, outputs FROM pending_downlinks WHERE execution = ? AND task = ?",
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
    sqlx::query("DELETE FROM pending_downlink_digests WHERE execution = ? AND task = ?")
        .bind(execution)
        .bind(task)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM pending_downlinks WHERE execution = ? AND task = ?")
        .bind(execution)
        .bind(task)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The pending downlinks (execution, task) that list `digest`, or every one when `None`.
pub(crate) async fn pending_downlinks<'e>(
    ex: impl SqliteExecutor<'e>,
    digest: Option<&str>,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let rows = match digest {
        Some(d) => {
            sqlx::query(
                "SELECT execution, task FROM pending_downlink_digests WHERE digest = ? ORDER BY execution, task",
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
    ex: impl SqliteExecutor<'e>,
    execution: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM pending_downlinks WHERE execution = ?")
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
        "INSERT OR REPLACE INTO held_execution_states (execution, state, at) VALUES (?, ?, ?)",
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
    ex: impl SqliteExecutor<'e>,
    execution: &str,
) -> Result<Option<(String, i64)>, sqlx::Error> {
    let row = sqlx::query("SELECT state, at FROM held_execution_states WHERE execution = ?")
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
    sqlx::query("DELETE FROM held_execution_states WHERE execution = ?")
        .bind(execution)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

// ---- systems and the onboard mirror ----

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SystemRow {
    pub(crate) platform: String,
    /// JSON list of `wire::BaseImage`.
    pub(crate) catalogue: String,
    pub(crate) last_seen: i64,
}

pub(crate) async fn upsert_system(
    db: &Db,
    name: &str,
    agent: &str,
    platform: &str,
    catalogue: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO systems (name, agent, platform, catalogue, last_seen) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT(name) DO UPDATE SET agent = excluded.agent, platform = excluded.platform,
             catalogue = excluded.catalogue, last_seen = excluded.last_seen",
    )
    .bind(name)
    .bind(agent)
    .bind(platform)
    .bind(catalogue)
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}

pub(crate) async fn system(db: &Db, name: &str) -> Result<Option<SystemRow>, sqlx::Error> {
    let row = sqlx::query("SELECT platform, catalogue, last_seen FROM systems WHERE name = ?")
        .bind(name)
        .fetch_optional(db)
        .await?;
    row.map(|r| {
        Ok(SystemRow {
            platform: r.try_get("platform")?,
            catalogue: r.try_get("catalogue")?,
            last_seen: r.try_get("last_seen")?,
        })
    })
    .transpose()
}

/// One mirrored entry of an onboard volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VolumeFileRow {
    pub(crate) path: String,
    pub(crate) size: i64,
    pub(crate) is_dir: bool,
    pub(crate) modified_ms: i64,
}

/// Replaces the mirror of one volume.
pub(crate) async fn replace_volume(
    tx: &mut Tx,
    system: &str,
    tenant: &str,
    volume: &str,
    files: &[VolumeFileRow],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM volume_files WHERE system = ? AND tenant = ? AND volume = ?")
        .bind(system)
        .bind(tenant)
        .bind(volume)
        .execute(&mut **tx)
        .await?;
    for f in files {
        sqlx::query(
            "INSERT OR REPLACE INTO volume_files (system, tenant, volume, path, size, is_dir, modified_ms)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(system)
        .bind(tenant)
        .bind(volume)
        .bind(&f.path)
        .bind(f.size)
        .bind(f.is_dir)
        .bind(f.modified_ms)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// The tenant's mirrored volumes on a system: name, file count, bytes.
pub(crate) async fn volumes(
    db: &Db,
    system: &str,
    tenant: &str,
) -> Result<Vec<(String, i64, i64)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT volume, SUM(CASE WHEN is_dir THEN 0 ELSE 1 END) AS files, SUM(size) AS bytes
         FROM volume_files WHERE system = ? AND tenant = ? GROUP BY volume ORDER BY volume LIMIT 10000",
    )
    .bind(system)
    .bind(tenant)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("volume")?,
                r.try_get("files")?,
                r.try_get("bytes")?,
            ))
        })
        .collect()
}

pub(crate) async fn volume_files(
    db: &Db,
    system: &str,
    tenant: &str,
    volume: &str,
    limit: i64,
    offset: i64,
) -> Result<Vec<VolumeFileRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT path, size, is_dir, modified_ms FROM volume_files
         WHERE system = ? AND tenant = ? AND volume = ? ORDER BY path LIMIT ? OFFSET ?",
    )
    .bind(system)
    .bind(tenant)
    .bind(volume)
    .bind(limit)
    .bind(offset)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(VolumeFileRow {
                path: r.try_get("path")?,
                size: r.try_get("size")?,
                is_dir: r.try_get("is_dir")?,
                modified_ms: r.try_get("modified_ms")?,
            })
        })
        .collect()
}

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
