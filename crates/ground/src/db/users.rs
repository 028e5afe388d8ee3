//! The `users` and `sessions` tables: accounts, their roles and their login sessions.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::Db;

/// A user as stored (its password hash aside).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserRow {
    pub(crate) name: String,
    /// `tenant` or `operator`.
    pub(crate) role: String,
    pub(crate) created_at: i64,
    pub(crate) disabled_at: Option<i64>,
}

fn user_row(r: &AnyRow) -> Result<UserRow, sqlx::Error> {
    Ok(UserRow {
        name: r.try_get("name")?,
        role: r.try_get("role")?,
        created_at: r.try_get("created_at")?,
        disabled_at: r.try_get("disabled_at")?,
    })
}

pub(crate) async fn user(db: &Db, name: &str) -> Result<Option<UserRow>, sqlx::Error> {
    let row = sqlx::query("SELECT name, role, created_at, disabled_at FROM users WHERE name = $1")
        .bind(name)
        .fetch_optional(db)
        .await?;
    row.as_ref().map(user_row).transpose()
}

/// Every user, by name.
pub(crate) async fn users(db: &Db) -> Result<Vec<UserRow>, sqlx::Error> {
    let rows = sqlx::query("SELECT name, role, created_at, disabled_at FROM users ORDER BY name")
        .fetch_all(db)
        .await?;
    rows.iter().map(user_row).collect()
}

/// Creates a user; `false` when the name is taken (nothing changes then).
pub(crate) async fn insert_user(
    db: &Db,
    name: &str,
    hash: &str,
    role: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO users (name, password_hash, created_at, role) VALUES ($1, $2, $3, $4)
         ON CONFLICT(name) DO NOTHING",
    )
    .bind(name)
    .bind(hash)
    .bind(now)
    .bind(role)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn set_role(db: &Db, name: &str, role: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE users SET role = $1 WHERE name = $2")
        .bind(role)
        .bind(name)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Disables the user at `at` (ending its sessions), or with `None` enables it again, in one
/// transaction; `false` when there is no such user.
pub(crate) async fn set_disabled(
    db: &Db,
    name: &str,
    at: Option<i64>,
) -> Result<bool, sqlx::Error> {
    let mut tx = super::write_tx(db).await?;
    let done = sqlx::query("UPDATE users SET disabled_at = $1 WHERE name = $2")
        .bind(at)
        .bind(name)
        .execute(&mut *tx)
        .await?;
    if at.is_some() {
        sqlx::query("DELETE FROM sessions WHERE user_name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}

/// Creates the user with password hash `hash`, or gives an existing user that hash and ends
/// their sessions (a new password ends every session of the old one), in one transaction.
pub(crate) async fn set_password(
    db: &Db,
    name: &str,
    hash: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = super::write_tx(db).await?;
    sqlx::query(
        "INSERT INTO users (name, password_hash, created_at) VALUES ($1, $2, $3)
         ON CONFLICT(name) DO UPDATE SET password_hash = excluded.password_hash",
    )
    .bind(name)
    .bind(hash)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM sessions WHERE user_name = $1")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

pub(crate) async fn password_hash(db: &Db, name: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT password_hash FROM users WHERE name = $1")
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
    sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
        .bind(now)
        .execute(db)
        .await?;
    sqlx::query(
        "INSERT INTO sessions (token_hash, user_name, created_at, expires_at) VALUES ($1, $2, $3, $4)",
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
    sqlx::query_scalar(
        "SELECT s.user_name FROM sessions s JOIN users u ON u.name = s.user_name
         WHERE s.token_hash = $1 AND s.expires_at > $2 AND u.disabled_at IS NULL",
    )
    .bind(token_hash)
    .bind(now)
    .fetch_optional(db)
    .await
}

pub(crate) async fn delete_session(db: &Db, token_hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
        .bind(token_hash)
        .execute(db)
        .await?;
    Ok(())
}
