//! The HTTP API (`docs/api.md`): the router, and the extractors and helpers its handlers share.
//!
//! Handlers are thin, one module per resource (`session`, `namespaces`, `operations`,
//! `executions`, `systems`, `users` with quotas): they check the caller (the [`AuthUser`] extractor), extract the
//! request, call the use case (the database, `upload`, `apply`, `executor`, `passes`, `queue`),
//! and answer with the body types of the `api` crate (shared with the CLI), built in `convert`,
//! so the JSON has one definition. Every failure is an [`ApiError`].
//!
//! `server` is the connection loop under `ground::serve` (client addresses, header and write
//! timeouts, and HTTPS with the certificate `tls` reads); `body_timeout` is the layer that
//! bounds every request body in time.
//!
//! [`AuthUser`]: crate::auth::AuthUser

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::config::limits;
use crate::error::ApiError;
use crate::{Ground, dashboard};

mod body_timeout;
mod convert;
mod em;
mod executions;
mod namespaces;
mod operations;
mod server;
mod session;
mod systems;
pub(crate) mod tls;
mod users;

pub(crate) use self::executions::load as load_execution;
pub(crate) use self::server::{OverTls, serve};

/// The whole HTTP surface.
pub(crate) fn router(ground: Ground) -> Router {
    let timeouts = ground.http_timeouts();
    let api = Router::new()
        .route("/login", post(session::login))
        .route("/logout", post(session::logout))
        .route(
            "/namespaces",
            get(namespaces::list).post(namespaces::create),
        )
        .route(
            "/namespaces/{ns}/files",
            get(namespaces::list_files)
                .post(namespaces::upload_files)
                .layer(DefaultBodyLimit::max(limits::UPLOAD_BODY)),
        )
        .route(
            "/namespaces/{ns}/files/{*path}",
            get(namespaces::read_file).delete(namespaces::delete_file),
        )
        .route("/namespaces/{ns}/move", post(namespaces::move_files))
        .route("/operations", get(operations::list).post(operations::apply))
        .route("/operations/validate", post(operations::validate))
        .route("/operations/{ns}/{id}", get(operations::get))
        .route(
            "/operations/{ns}/{id}/revisions/{revision}",
            get(operations::revision),
        )
        .route("/executions", get(executions::list).post(executions::start))
        .route("/executions/{id}", get(executions::get))
        .route("/plan", post(executions::plan))
        .route("/executions/{id}/approve", post(executions::approve))
        .route("/executions/{id}/reject", post(executions::reject))
        .route("/executions/{id}/cancel", post(executions::cancel))
        .route("/users", get(users::list).post(users::create))
        .route("/users/{name}/disable", post(users::disable))
        .route("/users/{name}/enable", post(users::enable))
        .route("/quotas", get(users::quotas))
        .route(
            "/quotas/{tenant}",
            get(users::get_quota).put(users::set_quota),
        )
        .route("/systems", get(systems::list))
        .route("/systems/{system}", get(systems::one))
        .route("/systems/{system}/passes", get(systems::passes))
        .route("/systems/{system}/track", get(systems::track))
        .route("/systems/{system}/queue", get(systems::queue))
        .route("/systems/{system}/volumes", get(systems::volumes))
        .route(
            "/systems/{system}/volumes/{volume}/files",
            get(systems::volume_files),
        );
    Router::new()
        .route(
            "/healthz",
            get(|| async {
                Json(api::Health {
                    status: "ok".into(),
                })
            }),
        )
        .nest("/api/v1", api)
        .merge(dashboard::router())
        .merge(em::router(&ground))
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(DefaultBodyLimit::max(limits::SMALL_BODY))
        .layer(axum::middleware::from_fn_with_state(
            timeouts,
            body_timeout::bound,
        ))
        .with_state(ground)
}

// ---- extractors whose rejections are ApiErrors ----

/// `axum::extract::Path` with [`ApiError`] rejections.
struct P<T>(T);

impl<T, S> FromRequestParts<S> for P<T>
where
    axum::extract::Path<T>: FromRequestParts<S, Rejection = PathRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(v) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(P(v))
    }
}

/// `axum::extract::Query` with [`ApiError`] rejections.
struct Q<T>(T);

impl<T, S> FromRequestParts<S> for Q<T>
where
    axum::extract::Query<T>: FromRequestParts<S, Rejection = QueryRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(v) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Q(v))
    }
}

/// `axum::Json` with [`ApiError`] rejections.
struct J<T>(T);

impl<T, S> FromRequest<S> for J<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let Json(v) = Json::<T>::from_request(req, state).await?;
        Ok(J(v))
    }
}

/// A page of a listing.
#[derive(Debug, Deserialize)]
struct Page {
    limit: Option<i64>,
    offset: Option<i64>,
}

impl Page {
    fn bounds(&self) -> Result<(i64, i64), ApiError> {
        let limit = self.limit.unwrap_or(limits::PAGE_DEFAULT);
        let offset = self.offset.unwrap_or(0);
        if !(1..=limits::PAGE_MAX).contains(&limit) || offset < 0 {
            return Err(ApiError::bad(format!(
                "limit must be 1 to {} and offset at least 0",
                limits::PAGE_MAX
            )));
        }
        Ok((limit, offset))
    }
}

/// A listing of operations or executions, in one namespace or all the caller's.
#[derive(Debug, Deserialize)]
struct NamespaceQuery {
    namespace: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

impl NamespaceQuery {
    /// Checks that `user` may list the namespace asked for (if any); returns limit and offset.
    async fn authorize(&self, g: &Ground, user: &str) -> Result<(i64, i64), ApiError> {
        if let Some(ns) = &self.namespace {
            crate::auth::check_namespace(g, user, ns).await?;
        }
        Page {
            limit: self.limit,
            offset: self.offset,
        }
        .bounds()
    }
}

/// `201 Created` with `body`.
fn created<T: IntoResponse>(body: T) -> Response {
    (StatusCode::CREATED, body).into_response()
}
