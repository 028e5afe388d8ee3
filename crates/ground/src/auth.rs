//! Users, passwords and sessions. The user is the tenant.
//!
//! Passwords are argon2id PHC strings. A login hands out a random 32-byte token (hex); only its
//! sha256 is stored, with an expiry. Requests carry it as `Authorization: Bearer <token>` or in
//! the dashboard's `HttpOnly` cookie.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use sha2::{Digest as _, Sha256};
use wire::names::{NamespaceName, TenantName};

use crate::config::limits;
use crate::error::{ApiError, Error};
use crate::{Ground, db, time};

/// The dashboard's session cookie.
pub(crate) const SESSION_COOKIE: &str = "orbitdock_session";

/// Passwords longer than this are refused (hashing cost is bounded).
const MAX_PASSWORD: usize = 1024;

/// Argon2 runs at most this many at once (each takes ~19 MiB and a blocking thread).
static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

/// A hash to verify against when the user does not exist, so that the answer takes as long as
/// for a wrong password.
static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Runs `f` on a blocking thread under [`HASHING`].
async fn hashing<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
    let _permit = HASHING
        .acquire()
        .await
        .map_err(|e| Error::internal(format!("hashing closed: {e}")))?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(format!("password hashing task failed: {e}")))
}

/// The authenticated caller: a user name, which is also the tenant.
#[derive(Debug, Clone)]
pub(crate) struct AuthUser(pub(crate) String);

impl FromRequestParts<Ground> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ground: &Ground) -> Result<AuthUser, ApiError> {
        let token = request_token(&parts.headers).ok_or(ApiError::Unauthorized)?;
        match user_for_token(ground, &token).await? {
            Some(user) => Ok(AuthUser(user)),
            None => Err(ApiError::Unauthorized),
        }
    }
}

/// The token of a request: the bearer token, else the session cookie.
pub(crate) fn request_token(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        let (scheme, rest) = v.split_once(' ')?;
        if scheme.eq_ignore_ascii_case("bearer") {
            let t = rest.trim();
            return (!t.is_empty()).then(|| t.to_string());
        }
        return None;
    }
    cookie(headers, SESSION_COOKIE)
}

/// A cookie's value.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The user a token belongs to, if it is valid and not expired.
pub(crate) async fn user_for_token(ground: &Ground, token: &str) -> Result<Option<String>, Error> {
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    Ok(db::session_user(ground.db(), &token_hash(token), time::now_ms()).await?)
}

/// How a token is stored: its sha256, hex.
pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Creates the user or resets their password.
pub(crate) async fn ensure_user(ground: &Ground, name: &str, password: &str) -> Result<(), Error> {
    TenantName::new(name).map_err(|e| Error::invalid(e.to_string()))?;
    if password.is_empty() || password.len() > MAX_PASSWORD {
        return Err(Error::invalid(format!(
            "a password must have 1 to {MAX_PASSWORD} bytes"
        )));
    }
    let password = password.to_string();
    let hash = hashing(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
    })
    .await?
    .map_err(|e| Error::internal(format!("password hashing failed: {e}")))?;
    db::upsert_user(ground.db(), name, &hash, time::now_ms()).await?;
    Ok(())
}

/// Checks the credentials and opens a session; `None` when they are wrong.
pub(crate) async fn login(
    ground: &Ground,
    name: &str,
    password: &str,
) -> Result<Option<String>, Error> {
    if TenantName::new(name).is_err() || password.len() > MAX_PASSWORD {
        return Ok(None);
    }
    let stored = db::password_hash(ground.db(), name).await?;
    let known = stored.is_some();
    let password = password.to_string();
    let ok = hashing(move || {
        let hash = stored.unwrap_or_else(|| {
            DUMMY_HASH
                .get_or_init(|| {
                    Argon2::default()
                        .hash_password(b"orbitdock-dummy")
                        .map(|h| h.to_string())
                        .unwrap_or_default()
                })
                .clone()
        });
        Argon2::default()
            .verify_password(password.as_bytes(), hash.as_str())
            .is_ok()
    })
    .await?
        && known;
    if !ok {
        return Ok(None);
    }
    open_session(ground, name).await.map(Some)
}

/// Opens a session for `name`, already authenticated; returns its token.
pub(crate) async fn open_session(ground: &Ground, name: &str) -> Result<String, Error> {
    let token = hex::encode(rand::random::<[u8; 32]>());
    let now = time::now_ms();
    db::insert_session(
        ground.db(),
        &token_hash(&token),
        name,
        now,
        now + limits::SESSION_MS,
    )
    .await?;
    Ok(token)
}

/// Ends the session of `token`.
pub(crate) async fn logout(ground: &Ground, token: &str) -> Result<(), Error> {
    Ok(db::delete_session(ground.db(), &token_hash(token)).await?)
}

/// Checks that `user` may use namespace `ns`: `404` when it does not exist, `403` when another
/// tenant owns it.
pub(crate) async fn check_namespace(ground: &Ground, user: &str, ns: &str) -> Result<(), ApiError> {
    NamespaceName::new(ns).map_err(|e| ApiError::bad(e.to_string()))?;
    match db::namespace_owner(ground.db(), ns).await? {
        None => Err(ApiError::not_found(format!("namespace '{ns}' not found"))),
        Some(owner) if owner == user => Ok(()),
        Some(_) => Err(forbidden_namespace(ns)),
    }
}

/// Like [`check_namespace`], but creates the namespace for `user` when it does not exist yet.
pub(crate) async fn claim_namespace(
    tx: &mut db::Tx,
    user: &str,
    ns: &str,
    now: i64,
) -> Result<(), ApiError> {
    NamespaceName::new(ns).map_err(|e| ApiError::bad(e.to_string()))?;
    db::insert_namespace(&mut **tx, ns, user, now).await?;
    match db::namespace_owner(&mut **tx, ns).await? {
        Some(owner) if owner == user => Ok(()),
        _ => Err(forbidden_namespace(ns)),
    }
}

fn forbidden_namespace(ns: &str) -> ApiError {
    ApiError::forbidden(format!("namespace '{ns}' belongs to another tenant"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn finds_bearer_then_cookie() {
        let mut h = HeaderMap::new();
        assert_eq!(request_token(&h), None);
        h.insert(
            "cookie",
            HeaderValue::from_static("a=b; orbitdock_session=abc ; c=d"),
        );
        assert_eq!(request_token(&h).as_deref(), Some("abc"));
        h.insert("authorization", HeaderValue::from_static("Bearer  xyz"));
        assert_eq!(request_token(&h).as_deref(), Some("xyz"));
        h.insert("authorization", HeaderValue::from_static("Basic xyz"));
        assert_eq!(request_token(&h), None);
    }
}
