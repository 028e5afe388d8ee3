//! The `users` and `sessions` tables: accounts and their login sessions.

use super::Db;

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
        "INSERT INTO users (name, password_hash, created_at) VALUES (?, ?, ?)
         ON CONFLICT(name) DO UPDATE SET password_hash = excluded.password_hash",
    )
    .bind(name)
    .bind(hash)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM sessions WHERE user_name = ?")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
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
