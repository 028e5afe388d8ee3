//! The HTTP API (`docs/api.md`): the router, and the extractors and helpers its handlers share.
//!
//! Handlers are thin, one module per resource (`session`, `namespaces`, `operations`,
//! `executions`, `systems`, `users` with quotas): they check the caller (the [`AuthUser`] extractor), extract the
//! request, call the use case (the database, `upload`, `apply`, `executor`, `passes`, `queue`),
//! and answer with the body types of the `api` crate (shared with the CLI), built in `convert`,
//! so the JSON has one definition. Every failure is an [`ApiError`].
//!
//! `live` follows an execution as server-sent events, woken by the ground's events.
//!
//! `routes` is the one table of the API's routes: the router is built from it, and so is the
//! OpenAPI document served at `GET /api/v1/openapi.json`.
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
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use crate::config::limits;
use crate::error::ApiError;
use crate::{Ground, dashboard};

mod body_timeout;
mod convert;
mod em;
mod executions;
mod live;
mod namespaces;
mod operations;
mod routes;
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
    let table = routes::api_routes();
    let document = axum::body::Bytes::from(
        serde_json::to_vec(&routes::openapi(&table)).expect("the OpenAPI document serializes"),
    );
    let mut api = Router::new().route(
        routes::OPENAPI_PATH,
        get(move || async move {
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                document.clone(),
            )
        }),
    );
    for r in table {
        let path = r.path;
        // Routes of one path with different methods are merged by axum into one.
        api = api.route(path, r.into_handler());
    }
    Router::new()
        .route(
            "/healthz",
            get(|| async {
                Json(api::Health {
                    status: "ok".into(),
                })
            }),
        )
        .nest(routes::PREFIX, api)
        .merge(dashboard::router())
        .merge(em::router(&ground))
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(DefaultBodyLimit::max(limits::SMALL_BODY))
        .layer(axum::middleware::from_fn_with_state(
            ground.clone(),
            invalidate_after_writes,
        ))
        .layer(axum::middleware::from_fn_with_state(
            timeouts,
            body_timeout::bound,
        ))
        .with_state(ground)
}

/// Once a request that may write (any method but `GET`, `HEAD` and `OPTIONS`) is answered, what
/// it wrote is committed: the cached views computed before it are stale.
async fn invalidate_after_writes(
    axum::extract::State(g): axum::extract::State<Ground>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let reads = matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    let answer = next.run(req).await;
    // A refused write (unauthenticated, invalid) changed nothing: it wakes no one.
    if !reads && answer.status().is_success() {
        g.views().invalidate();
    }
    answer
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
