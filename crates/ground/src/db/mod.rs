//! The ground's database: the pool, its migrations, transactions and JSON-column helpers; the
//! queries live in one submodule per aggregate, each naming the tables it owns, and are
//! re-exported here so callers write `db::name`.
//!
//! SQLite in WAL mode. Writes that read before they write (a new file version, a new revision, a
//! task event) run in `BEGIN IMMEDIATE` transactions from [`write_tx`], so concurrent writers wait
//! on the busy timeout instead of failing.
//!
//! Every commit is durable when it returns (`synchronous=FULL`: the WAL is synced at each
//! commit). The link acknowledges a system's message once the transaction applying it has
//! committed, and the system then forgets it: with `NORMAL` the last such commits could vanish on
//! power loss after the acknowledgement, and the event with them. It is set for every connection,
//! not for those transactions alone, because the pool hands any connection to any writer and the
//! ground's write rate (API calls and link events) is low enough that one more fsync per commit
//! costs nothing that matters; an upload or a new plan is worth as much as an event.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{SqlSafeStr, Sqlite, SqlitePool, Transaction};

use crate::error::Error;

mod approvals;
mod downlinks;
mod encodings;
mod executions;
mod files;
mod mirror;
mod namespaces;
mod operations;
mod quotas;
mod systems;
mod uplinks;
mod usage;
mod users;
mod volumes;

pub(crate) use approvals::{
    awaiting_count, awaiting_plan, insert_awaiting_plan, insert_execution_cancel, pending_cancels,
    take_awaiting_plan,
};
pub(crate) use downlinks::{
    PendingDownlink, delete_pending_downlink, held_execution_state, hold_execution_state,
    insert_pending_downlink, pending_downlink, pending_downlink_count, pending_downlinks,
    release_execution_state,
};
pub(crate) use encodings::{
    Encoding, SentRow, UplinkWant, delete_want, encoding, execution_sends, insert_encoding,
    insert_sends, patch_target, pending_wants, record_want, tenant_reads_blob,
    unfinished_executions_sending,
};
pub(crate) use executions::{
    ExecutionRow, TaskRow, busy_execution, execution, executions_of, executions_where,
    insert_execution, insert_task, latest_execution_with_task, reported_images, tasks,
    update_execution, update_task,
};
pub(crate) use files::{
    FileRow, MoveRefusal, add_file_version, delete_files, file_version, latest_files, move_files,
};
pub(crate) use mirror::{
    add_onboard, delete_volume, execution_plan, file_digest, inventory_state, mirrored_volumes,
    onboard_among, onboard_objects, replace_onboard, set_file_digests, set_inventory_state,
    volume_entries,
};
pub(crate) use namespaces::{insert_namespace, namespace_owner, namespaces_of};
pub(crate) use operations::{
    OperationRow, operation, operation_revision, operations_of, save_operation,
};
pub(crate) use quotas::{QuotaRow, quota, quotas, set_quota};
pub(crate) use systems::{system, upsert_system};
pub(crate) use uplinks::{
    execution_digests, execution_uplink_totals, insert_execution_object, insert_execution_plan,
    next_plan_sequence, served_objects, unfinished_plans, uplink_owners,
};
pub(crate) use usage::usage;
pub(crate) use users::{
    UserRow, delete_session, insert_session, insert_user, password_hash, session_user,
    set_disabled, set_password, set_role, user, users,
};
pub(crate) use volumes::{VolumeFileRow, replace_volume, volume_files, volumes};

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
        .synchronous(SqliteSynchronous::Full)
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
        m(1, "init", include_str!("../../migrations/0001_init.sql")),
        m(
            2,
            "pending downlinks",
            include_str!("../../migrations/0002_pending_downlinks.sql"),
        ),
        m(
            3,
            "execution objects",
            include_str!("../../migrations/0003_execution_objects.sql"),
        ),
        m(
            4,
            "execution plans",
            include_str!("../../migrations/0004_execution_plans.sql"),
        ),
        m(
            5,
            "plan sequences",
            include_str!("../../migrations/0005_plan_sequences.sql"),
        ),
        m(
            6,
            "system engine",
            include_str!("../../migrations/0006_system_engine.sql"),
        ),
        m(
            7,
            "uplink encodings",
            include_str!("../../migrations/0007_uplink_encodings.sql"),
        ),
        m(8, "roles", include_str!("../../migrations/0008_roles.sql")),
        m(
            9,
            "execution cancels",
            include_str!("../../migrations/0009_execution_cancels.sql"),
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
    /// The person who made the change (an approval, a rejection, a cancellation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) by: Option<String>,
    /// Why (a rejection's reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
}

/// Reads a JSON column the ground wrote; `None` when it is unreadable, which is logged, not an
/// error: one damaged value must not hide the rest of a row.
pub(crate) fn from_json<T: for<'de> Deserialize<'de>>(text: &str) -> Option<T> {
    serde_json::from_str(text)
        .inspect_err(|e| tracing::warn!(error = %e, "unreadable JSON column"))
        .ok()
}

/// Reads a JSON column, treating garbage as empty (and saying so, see [`from_json`]).
pub(crate) fn json_or_default<T: for<'de> Deserialize<'de> + Default>(text: &str) -> T {
    from_json(text).unwrap_or_default()
}

/// Writes a JSON column.
pub(crate) fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_string())
}
