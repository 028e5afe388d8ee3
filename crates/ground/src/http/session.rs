//! `POST /login` and `POST /logout`.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;

use super::J;
use crate::Ground;
use crate::auth::{self, AuthUser, ClientAddr, Login};
use crate::error::ApiError;

pub(super) async fn login(
    State(g): State<Ground>,
    ClientAddr(client): ClientAddr,
    J(req): J<api::LoginRequest>,
) -> Result<Json<api::LoginResponse>, ApiError> {
    match auth::login(&g, &req.user, &req.password, client).await? {
        Login::Session(token) => Ok(Json(api::LoginResponse {
            token,
            user: req.user,
        })),
        Login::Wrong => Err(ApiError::WrongCredentials),
        Login::Disabled => Err(ApiError::forbidden(format!(
            "user '{}' is disabled; an operator can enable it again",
            req.user
        ))),
        Login::Throttled(r) => Err(ApiError::TooManyRequests {
            message: r.message(),
            retry_after: r.retry_after,
        }),
    }
}

pub(super) async fn logout(
    State(g): State<Ground>,
    _user: AuthUser,
    req: Request,
) -> Result<StatusCode, ApiError> {
    if let Some(token) = auth::request_token(req.headers()) {
        auth::logout(&g, &token).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}
