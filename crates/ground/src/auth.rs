//! Users, passwords, roles and sessions. The user is the tenant; an operator is a user with
//! the operator role ([`Role`], checked by the [`Operator`] extractor).
//!
//! Passwords are argon2id PHC strings. A login hands out a random 32-byte token (hex); only its
//! sha256 is stored, with an expiry. Requests carry it as `Authorization: Bearer <token>` or in
//! the dashboard's `HttpOnly` cookie.
//!
//! Logins are throttled per user and address, per address and per user (`throttle`, in
//! memory). Creating a user who exists with the same password changes nothing, so a restart of a
//! ground started with its users keeps every session; a new password ends them.

mod throttle;

pub(crate) use self::throttle::{Client, LoginThrottle, Refusal};

use std::net::SocketAddr;
use std::time::Instant;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use axum::extract::{ConnectInfo, FromRequestParts};
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

/// What a user may do (`docs/api.md`, "Roles"): the API's own type.
pub use api::Role;

/// The authenticated caller: a user name, which is also the tenant.
#[derive(Debug, Clone)]
pub(crate) struct AuthUser(pub(crate) String);

/// The authenticated caller, an operator: any other user is refused with 403.
#[derive(Debug, Clone)]
pub(crate) struct Operator(pub(crate) String);

impl FromRequestParts<Ground> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ground: &Ground) -> Result<Operator, ApiError> {
        let AuthUser(user) = AuthUser::from_request_parts(parts, ground).await?;
        if role(ground, &user).await? != Role::Operator {
            return Err(not_an_operator(&user));
        }
        Ok(Operator(user))
    }
}

/// What a tenant asking for an operator's action is told (the API and the dashboard alike).
pub(crate) fn not_an_operator(user: &str) -> ApiError {
    ApiError::forbidden(format!(
        "only an operator may do this; '{user}' is a tenant"
    ))
}

/// A user's role (a user who no longer exists has none to speak of: a tenant's).
pub(crate) async fn role(ground: &Ground, user: &str) -> Result<Role, Error> {
    Ok(db::user(ground.db(), user)
        .await?
        .and_then(|u| Role::parse(&u.role))
        .unwrap_or(Role::Tenant))
}

impl FromRequestParts<Ground> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ground: &Ground) -> Result<AuthUser, ApiError> {
        let token = request_token(&parts.headers).ok_or(ApiError::Unauthorized)?;
        let user = user_for_token(ground, &token)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        // A browser sends the cookie with any request a page of another site makes it send: a
        // write authenticated by the cookie alone must prove it comes from our own page.
        let by_cookie = !parts
            .headers
            .contains_key(axum::http::header::AUTHORIZATION);
        if by_cookie && !parts.method.is_safe() {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !same_token(sent, &csrf_token(&token)) {
                return Err(ApiError::forbidden(
                    "a write with the session cookie needs the X-CSRF-Token header of the dashboard's page (or use a bearer token)",
                ));
            }
        }
        Ok(AuthUser(user))
    }
}

/// The header that carries a cookie session's CSRF token on API writes.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

/// A session's CSRF token: derived from its secret token, so nothing more is stored, and
/// useless without the session (the cookie is `HttpOnly`: no script reads it).
pub(crate) fn csrf_token(session_token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"orbitdock csrf v1\0");
    h.update(session_token.as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// Compares two tokens in time independent of where they differ.
pub(crate) fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
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

/// Creates the user, or gives them a new password. A user who exists with this password
/// already is left as is: no new hash, no session ended (a ground restarted with the same
/// users keeps every session). A new password ends the user's sessions.
pub(crate) async fn ensure_user(ground: &Ground, name: &str, password: &str) -> Result<(), Error> {
    TenantName::new(name).map_err(|e| Error::invalid(e.to_string()))?;
    check_password(password)?;
    if let Some(stored) = db::password_hash(ground.db(), name).await?
        && verify(password.to_string(), stored).await?
    {
        return Ok(());
    }
    let hash = hash_password(password).await?;
    db::set_password(ground.db(), name, &hash, time::now_ms()).await?;
    Ok(())
}

/// Gives the user `role`.
pub(crate) async fn set_role(ground: &Ground, name: &str, role: Role) -> Result<(), Error> {
    if !db::set_role(ground.db(), name, role.as_str()).await? {
        return Err(Error::invalid(format!("no user '{name}'")));
    }
    Ok(())
}

/// Creates a new user with `password` and `role`; `false` when the name is taken (nothing
/// changes then).
pub(crate) async fn create_user(
    ground: &Ground,
    name: &str,
    password: &str,
    role: Role,
) -> Result<bool, Error> {
    TenantName::new(name).map_err(|e| Error::invalid(e.to_string()))?;
    check_password(password)?;
    if db::user(ground.db(), name).await?.is_some() {
        return Ok(false);
    }
    let hash = hash_password(password).await?;
    Ok(db::insert_user(ground.db(), name, &hash, role.as_str(), time::now_ms()).await?)
}

fn check_password(password: &str) -> Result<(), Error> {
    if password.is_empty() || password.len() > MAX_PASSWORD {
        return Err(Error::invalid(format!(
            "a password must have 1 to {MAX_PASSWORD} bytes"
        )));
    }
    Ok(())
}

/// The argon2id PHC string of `password` (on the hashing pool).
async fn hash_password(password: &str) -> Result<String, Error> {
    let password = password.to_string();
    hashing(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
    })
    .await?
    .map_err(|e| Error::internal(format!("password hashing failed: {e}")))
}

/// Creates the user with an argon2 hash (a PHC string, `$argon2id$v=19$...`) made elsewhere, so
/// the password itself never reaches the ground's configuration. The same hash stored already
/// changes nothing; another one ends the user's sessions.
pub(crate) async fn ensure_user_hashed(
    ground: &Ground,
    name: &str,
    phc: &str,
) -> Result<(), Error> {
    TenantName::new(name).map_err(|e| Error::invalid(e.to_string()))?;
    let hash = PasswordHash::new(phc)
        .map_err(|e| Error::invalid(format!("user {name}: not a password hash: {e}")))?;
    if !hash.algorithm.as_str().starts_with("argon2") {
        return Err(Error::invalid(format!(
            "user {name}: the hash is {}, not argon2",
            hash.algorithm
        )));
    }
    if db::password_hash(ground.db(), name).await?.as_deref() == Some(phc) {
        return Ok(());
    }
    db::set_password(ground.db(), name, phc, time::now_ms()).await?;
    Ok(())
}

/// Whether `password` matches the PHC string `hash` (on the hashing pool).
/// A stored hash that does not parse matches nothing.
async fn verify(password: String, hash: String) -> Result<bool, Error> {
    hashing(move || {
        PasswordHash::new(&hash).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
    })
    .await
}

/// What a login came to.
#[derive(Debug)]
pub(crate) enum Login {
    /// The credentials are right: a new session's token.
    Session(String),
    /// The user or the password is wrong.
    Wrong,
    /// Too many failed logins: refused without looking at the password (see `throttle`).
    Throttled(Refusal),
    /// The credentials are right but an operator disabled the user.
    Disabled,
}

/// Checks the credentials from `client` against the login throttle (which counts the attempt
/// as a failure until it proves right), then the database, and opens a session when they are
/// right. An error on the way leaves the attempt counted as a failure.
pub(crate) async fn login(
    ground: &Ground,
    name: &str,
    password: &str,
    client: Client,
) -> Result<Login, Error> {
    // Only a name that can be a user is counted by name (the throttle's keys stay small).
    let user = TenantName::new(name).is_ok().then_some(name);
    let attempt = match ground.logins().begin(user, client, Instant::now()) {
        Ok(a) => a,
        Err(refusal) => return Ok(Login::Throttled(refusal)),
    };
    if !verify_login(ground, user, password).await? {
        if !attempt.locked().is_empty() {
            let user = user.unwrap_or("(not a user name)");
            tracing::warn!(user, %client, locked = ?attempt.locked(), "failed logins: locked");
        }
        return Ok(Login::Wrong);
    }
    ground.logins().succeeded(attempt);
    if db::user(ground.db(), name)
        .await?
        .is_some_and(|u| u.disabled_at.is_some())
    {
        return Ok(Login::Disabled);
    }
    open_session(ground, name).await.map(Login::Session)
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

/// Whether `password` is `user`'s. An unknown user costs the same hashing as a wrong password.
async fn verify_login(ground: &Ground, user: Option<&str>, password: &str) -> Result<bool, Error> {
    let Some(user) = user.filter(|_| password.len() <= MAX_PASSWORD) else {
        return Ok(false);
    };
    let stored = db::password_hash(ground.db(), user).await?;
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
    .await?;
    Ok(ok && known)
}

/// The address a request came from, as the login throttle counts it: the peer of its TCP
/// connection ([`ConnectInfo`], set by the server), or unknown.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientAddr(pub(crate) Client);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<ClientAddr, Self::Rejection> {
        let addr = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(a)| a.ip());
        Ok(ClientAddr(Client::of(addr)))
    }
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
