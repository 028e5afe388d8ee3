//! The ground's database: the pool, its migrations, transactions and JSON-column helpers; the
//! queries live in one submodule per aggregate, each naming the tables it owns, and are
//! re-exported here so callers write `db::name`.
//!
//! Two engines behind one pool ([`sqlx::Any`]), chosen by the database URL ([`open`]): SQLite
//! (`sqlite://…`, the embedded default) or PostgreSQL (`postgres://…`, for scale-out, see
//! docs/scale-out.md). Every query is written once in SQL both accept (`$N` parameters,
//! `INSERT … ON CONFLICT`, `RETURNING`, integers and text only: flags are 0 or 1, sums are cast
//! to BIGINT); the few spelled differently (reading a JSON list) pick their text with
//! [`Backend::pick`]. Both engines run the same migrations (`migrations/`), with SQLite's
//! INTEGER and BLOB read as BIGINT and BYTEA on PostgreSQL.
//!
//! SQLite in WAL mode. Writes that read before they write (a new file version, a new revision, a
//! task event) run in `BEGIN IMMEDIATE` transactions from [`write_tx`], so concurrent writers wait
//! on the busy timeout instead of failing. On PostgreSQL the same transactions take one
//! transaction-scoped advisory lock first: they run one at a time, across every process that
//! shares the database, and each reads what the one before it committed; a writer waits for the
//! lock up to `lock_timeout`, as long as SQLite's busy timeout, then fails.
//!
//! Every commit is durable when it returns (`synchronous=FULL`: the WAL is synced at each
//! commit). The link acknowledges a system's message once the transaction applying it has
//! committed, and the system then forgets it: with `NORMAL` the last such commits could vanish on
//! power loss after the acknowledgement, and the event with them. It is set for every connection,
//! not for those transactions alone, because the pool hands any connection to any writer and the
//! ground's write rate (API calls and link events) is low enough that one more fsync per commit
//! costs nothing that matters; an upload or a new plan is worth as much as an event. On
//! PostgreSQL every connection sets `synchronous_commit = on` for the same reason (a commit
//! returns once its WAL record is flushed), whatever the server's default.
//!
//! PostgreSQL must compare text byte by byte, as SQLite does, so that listings come in the same
//! order and page the same way: [`open`] refuses a database whose collation is not `C` (create it
//! with `LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`).

use std::path::Path;

use serde::{Deserialize, Serialize};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Any, AnyConnection, AnyPool, AssertSqlSafe, Executor, Row, SqlSafeStr, Transaction};

use crate::error::Error;

/// The statement `$before <a table of the strings in the JSON list parameter $param, with one
/// column, value> $after`, for `$backend`: SQLite's `json_each`, PostgreSQL's
/// `jsonb_array_elements_text`. Declared before the submodules that use it.
macro_rules! json_list_sql {
    ($backend:expr, $before:literal, $param:literal, $after:literal $(,)?) => {
        $backend.pick(
            concat!($before, "json_each(", $param, ")", $after),
            concat!(
                $before,
                "jsonb_array_elements_text(",
                $param,
                "::jsonb) AS j(value)",
                $after
            ),
        )
    };
}

mod approvals;
mod downlinks;
mod elements;
mod encodings;
mod executions;
mod files;
mod leases;
mod mirror;
mod namespaces;
mod operations;
mod quotas;
mod systems;
mod telemetry;
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
pub(crate) use elements::{SentElements, sent_elements, set_sent_elements};
pub(crate) use encodings::{
    Encoding, SentRow, UplinkWant, delete_want, encoding_keyed, execution_sends,
    insert_encoding_keyed, insert_sends, patch_target, pending_wants, record_want,
    tenant_reads_blob, unfinished_executions_sending,
};
#[cfg(test)]
pub(crate) use encodings::{encoding, insert_encoding};
pub(crate) use executions::{
    ExecutionRow, TaskRow, busy_execution, execution, executions_of, executions_where,
    insert_execution, insert_task, latest_execution_with_task, reported_images, tasks,
    update_execution, update_task,
};
pub(crate) use files::{
    FileRow, MoveRefusal, add_file_version, delete_files, file_version, latest_files, move_files,
};
pub(crate) use leases::{
    acquire_lease, leases, outbox_done, outbox_queue, outbox_take, release_lease, renew_lease,
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
pub(crate) use telemetry::{
    BUCKET_MS as TELEMETRY_BUCKET_MS, TelemetryPoint, TelemetryWindow, has_telemetry, store_digest,
    telemetry_points, telemetry_types,
};
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
pub(crate) type Db = AnyPool;
/// A write transaction.
pub(crate) type Tx = Transaction<'static, Any>;

/// The database engine behind a pool or a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The engine a database URL names; only its scheme is read (and only it is quoted in the
    /// error: the rest may hold a password).
    pub(crate) fn of_url(url: &str) -> Result<Backend, Error> {
        match url.split_once(':').map(|(scheme, _)| scheme) {
            Some("sqlite") => Ok(Backend::Sqlite),
            Some("postgres" | "postgresql") => Ok(Backend::Postgres),
            Some(scheme) => Err(Error::invalid(format!(
                "database URL scheme '{scheme}:' is not supported: use sqlite://… or postgres://…"
            ))),
            None => Err(Error::invalid(
                "the database URL has no scheme: use sqlite://… or postgres://…",
            )),
        }
    }

    /// The engine behind a pool.
    pub(crate) fn of(db: &Db) -> Backend {
        match db.connect_options().database_url.scheme() {
            "sqlite" => Backend::Sqlite,
            _ => Backend::Postgres,
        }
    }

    /// The engine behind a connection (a transaction derefs to one).
    pub(crate) fn of_conn(conn: &AnyConnection) -> Backend {
        if conn.backend_name().eq_ignore_ascii_case("sqlite") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        }
    }

    /// The text of a statement the two engines spell differently.
    pub(crate) fn pick(self, sqlite: &'static str, postgres: &'static str) -> &'static str {
        match self {
            Backend::Sqlite => sqlite,
            Backend::Postgres => postgres,
        }
    }
}

/// The URL of the SQLite database file at `path` (created if missing): the default database,
/// `ground.sqlite` in the data directory.
pub(crate) fn sqlite_url(path: &Path) -> String {
    let path = path.display().to_string();
    // The driver percent-decodes the path, so `%`, `?` and `#` in it are encoded.
    let path = path
        .replace('%', "%25")
        .replace('?', "%3F")
        .replace('#', "%23");
    format!("sqlite://{path}?mode=rwc")
}

/// Opens the database at `url` (`sqlite://…`, created if missing unless the URL gives another
/// `mode`, or `postgres://…`, which must exist) and brings its schema up to date.
pub(crate) async fn open(url: &str) -> Result<Db, Error> {
    let backend = Backend::of_url(url)?;
    let pool = connect(
        url,
        backend,
        if backend == Backend::Sqlite { 8 } else { 16 },
    )
    .await?;
    if backend == Backend::Postgres {
        let collation: String = sqlx::query_scalar(
            "SELECT datcollate::text FROM pg_database WHERE datname = current_database()",
        )
        .fetch_one(&pool)
        .await?;
        // What the name says, and how text sorts (a database may name 'C' and sort by ICU
        // rules): 'a' after 'B', as in SQLite.
        let sorts_by_bytes: i64 =
            sqlx::query_scalar("SELECT CAST(CASE WHEN 'a' < 'B' THEN 0 ELSE 1 END AS BIGINT)")
                .fetch_one(&pool)
                .await?;
        if (collation != "C" && collation != "POSIX") || sorts_by_bytes != 1 {
            return Err(Error::invalid(format!(
                "the PostgreSQL database's collation is '{collation}': the ground needs 'C' \
                 (CREATE DATABASE … LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0)"
            )));
        }
    }
    migrator(backend).run(&pool).await?;
    Ok(pool)
}

/// A small pool of its own on the database at `url` (already opened by [`open`]) for the link
/// leases, so that renewing them never waits for a connection behind the requests' work.
pub(crate) async fn open_lease_pool(url: &str) -> Result<Db, Error> {
    connect(url, Backend::of_url(url)?, 2).await
}

/// A pool of at most `max` connections to `url`, each set up for the engine (see the module's
/// documentation).
async fn connect(url: &str, backend: Backend, max: u32) -> Result<Db, Error> {
    sqlx::any::install_default_drivers();
    Ok(match backend {
        Backend::Sqlite => {
            let url = if url.contains("mode=") {
                url.to_string()
            } else if url.contains('?') {
                format!("{url}&mode=rwc")
            } else {
                format!("{url}?mode=rwc")
            };
            AnyPoolOptions::new()
                .max_connections(max)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        conn.execute(
                            "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL;
                             PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
                        )
                        .await?;
                        Ok(())
                    })
                })
                .connect(&url)
                .await?
        }
        Backend::Postgres => {
            AnyPoolOptions::new()
                .max_connections(max)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        conn.execute("SET synchronous_commit = on; SET lock_timeout = '10s';")
                            .await?;
                        Ok(())
                    })
                })
                .connect(url)
                .await?
        }
    })
}

/// Every migration, oldest first: `(version, description, SQL)`. Never edit one that has
/// shipped: add the next.
const MIGRATIONS: [(i64, &str, &str); 12] = [
    (1, "init", include_str!("../../migrations/0001_init.sql")),
    (
        2,
        "pending downlinks",
        include_str!("../../migrations/0002_pending_downlinks.sql"),
    ),
    (
        3,
        "execution objects",
        include_str!("../../migrations/0003_execution_objects.sql"),
    ),
    (
        4,
        "execution plans",
        include_str!("../../migrations/0004_execution_plans.sql"),
    ),
    (
        5,
        "plan sequences",
        include_str!("../../migrations/0005_plan_sequences.sql"),
    ),
    (
        6,
        "system engine",
        include_str!("../../migrations/0006_system_engine.sql"),
    ),
    (
        7,
        "uplink encodings",
        include_str!("../../migrations/0007_uplink_encodings.sql"),
    ),
    (8, "roles", include_str!("../../migrations/0008_roles.sql")),
    (
        9,
        "execution cancels",
        include_str!("../../migrations/0009_execution_cancels.sql"),
    ),
    (
        10,
        "link leases",
        include_str!("../../migrations/0010_link_leases.sql"),
    ),
    (
        11,
        "system elements",
        include_str!("../../migrations/0011_system_elements.sql"),
    ),
    (
        12,
        "telemetry buckets",
        include_str!("../../migrations/0012_telemetry_buckets.sql"),
    ),
];

/// The migrations, for `backend`: as written for SQLite, and for PostgreSQL with the two
/// column types SQLite names its own way translated ([`postgres_ddl`]), so that both have the
/// same tables and columns.
fn migrator(backend: Backend) -> Migrator {
    let migrations = MIGRATIONS
        .iter()
        .map(|&(version, description, sql)| {
            let sql = match backend {
                Backend::Sqlite => sql.into_sql_str(),
                Backend::Postgres => AssertSqlSafe(postgres_ddl(sql)).into_sql_str(),
            };
            Migration::new(
                version,
                description.into(),
                MigrationType::Simple,
                sql,
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
}

/// A migration written for SQLite, for PostgreSQL: `INTEGER` (SQLite's 64-bit integer) becomes
/// `BIGINT` and `BLOB` `BYTEA`, as whole upper-case words; the rest of the migrations is SQL
/// both engines read alike (`TEXT`, keys, foreign keys, indexes, `ALTER TABLE … ADD COLUMN`).
fn postgres_ddl(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 64);
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        out.push_str(match word.as_str() {
            "INTEGER" => "BIGINT",
            "BLOB" => "BYTEA",
            other => other,
        });
        word.clear();
    };
    for c in sql.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// Begins a transaction that holds the write lock from its first statement: SQLite's
/// `BEGIN IMMEDIATE`, or on PostgreSQL a transaction that first takes [`WRITE_LOCK`] (released
/// at its commit or rollback).
pub(crate) async fn write_tx(db: &Db) -> Result<Tx, sqlx::Error> {
    match Backend::of(db) {
        Backend::Sqlite => db.begin_with("BEGIN IMMEDIATE").await,
        Backend::Postgres => {
            let mut tx = db.begin().await?;
            // The function returns `void`, a type the `Any` driver cannot read: select a constant.
            sqlx::query("SELECT 1 FROM (SELECT pg_advisory_xact_lock($1)) AS l")
                .bind(WRITE_LOCK)
                .execute(&mut *tx)
                .await?;
            Ok(tx)
        }
    }
}

/// The key of the PostgreSQL advisory lock that [`write_tx`] transactions hold (any number,
/// fixed: "od" in ASCII).
const WRITE_LOCK: i64 = 0x6f64;

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

/// Reads a flag column (0 or 1: neither engine's boolean, so that both store the same).
pub(crate) fn flag(row: &AnyRow, column: &str) -> Result<bool, sqlx::Error> {
    Ok(row.try_get::<i64, _>(column)? != 0)
}

/// Writes a JSON column.
pub(crate) fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_reads_sqlite_column_types_as_its_own() {
        assert_eq!(
            postgres_ddl("CREATE TABLE t (n INTEGER NOT NULL, b BLOB, s TEXT, integers INTEGER);"),
            "CREATE TABLE t (n BIGINT NOT NULL, b BYTEA, s TEXT, integers BIGINT);"
        );
        // Only whole words, in upper case, change.
        assert_eq!(
            postgres_ddl("-- INTEGERS and BLOBS, integer\nALTER TABLE x ADD COLUMN blob_id TEXT"),
            "-- INTEGERS and BLOBS, integer\nALTER TABLE x ADD COLUMN blob_id TEXT"
        );
    }

    #[test]
    fn the_url_scheme_names_the_engine() {
        assert_eq!(
            Backend::of_url("sqlite:///var/lib/g.sqlite").unwrap(),
            Backend::Sqlite
        );
        assert_eq!(
            Backend::of_url("postgres://u:secret@db/g").unwrap(),
            Backend::Postgres
        );
        assert_eq!(
            Backend::of_url("postgresql://db/g").unwrap(),
            Backend::Postgres
        );
        let refused = Backend::of_url("mysql://u:secret@db/g")
            .unwrap_err()
            .to_string();
        assert!(refused.contains("'mysql:'"), "{refused}");
        assert!(!refused.contains("secret"), "{refused}");
        assert!(Backend::of_url("ground.sqlite").is_err());
    }

    /// Every pooled SQLite connection is durable at each commit, in WAL mode, with foreign keys
    /// and the busy timeout: the settings are made per connection, and the pool hands any
    /// connection to any writer.
    #[tokio::test]
    async fn every_sqlite_connection_has_the_durable_settings() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&sqlite_url(&dir.path().join("ground.sqlite")))
            .await
            .unwrap();
        let mut held = Vec::new();
        for _ in 0..3 {
            let mut conn = db.acquire().await.unwrap();
            let mut setting = async |pragma: &'static str| -> String {
                let row = sqlx::query(pragma).fetch_one(&mut *conn).await.unwrap();
                match row.try_get::<String, _>(0) {
                    Ok(text) => text,
                    Err(_) => row.try_get::<i64, _>(0).unwrap().to_string(),
                }
            };
            assert_eq!(setting("PRAGMA journal_mode").await, "wal");
            // 2 is FULL.
            assert_eq!(setting("PRAGMA synchronous").await, "2");
            assert_eq!(setting("PRAGMA foreign_keys").await, "1");
            assert_eq!(setting("PRAGMA busy_timeout").await, "10000");
            held.push(conn);
        }
    }

    #[test]
    fn a_sqlite_url_encodes_what_the_driver_would_decode() {
        assert_eq!(
            sqlite_url(Path::new("/data/a%b?c#d/ground.sqlite")),
            "sqlite:///data/a%25b%3Fc%23d/ground.sqlite?mode=rwc"
        );
    }
}
