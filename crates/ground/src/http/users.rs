//! Users and quotas, for operators: `/users`, `/users/{name}/disable|enable`, `/quotas` and
//! `/quotas/{tenant}` (which a tenant may read for itself).

use axum::Json;
use axum::extract::State;
use axum::response::Response;

use super::convert::{quota, user};
use super::{J, P, created};
use crate::auth::{self, AuthUser, Operator, Role};
use crate::error::ApiError;
use crate::{Ground, accounts, db};

/// `GET /users`.
pub(super) async fn list(
    State(g): State<Ground>,
    _op: Operator,
) -> Result<Json<api::UserList>, ApiError> {
    let users = db::users(g.db()).await?;
    Ok(Json(api::UserList {
        users: users.iter().map(user).collect(),
    }))
}

/// `POST /users`: 201 with the user, 409 when the name is taken.
pub(super) async fn create(
    State(g): State<Ground>,
    Operator(by): Operator,
    J(req): J<api::CreateUser>,
) -> Result<Response, ApiError> {
    let role = req.role;
    if !auth::create_user(&g, &req.name, &req.password, role)
        .await
        .map_err(|e| match e.kind() {
            crate::ErrorKind::InvalidInput => ApiError::bad(e.to_string()),
            _ => ApiError::Internal(e),
        })?
    {
        return Err(ApiError::Conflict(format!(
            "user '{}' exists already",
            req.name
        )));
    }
    tracing::info!(user = %req.name, role = role.as_str(), operator = %by, "user created");
    Ok(created(Json(one(&g, &req.name).await?)))
}

/// `POST /users/{name}/disable`: the user can no longer log in, and its sessions end. An
/// operator cannot disable itself (409).
pub(super) async fn disable(
    State(g): State<Ground>,
    Operator(by): Operator,
    P(name): P<String>,
) -> Result<Json<api::User>, ApiError> {
    accounts::set_disabled(&g, &by, &name, true).await?;
    Ok(Json(one(&g, &name).await?))
}

/// `POST /users/{name}/enable`.
pub(super) async fn enable(
    State(g): State<Ground>,
    Operator(by): Operator,
    P(name): P<String>,
) -> Result<Json<api::User>, ApiError> {
    accounts::set_disabled(&g, &by, &name, false).await?;
    Ok(Json(one(&g, &name).await?))
}

async fn one(g: &Ground, name: &str) -> Result<api::User, ApiError> {
    db::user(g.db(), name)
        .await?
        .map(|u| user(&u))
        .ok_or_else(|| ApiError::not_found(format!("user '{name}' not found")))
}

/// `GET /quotas`: every user's.
pub(super) async fn quotas(
    State(g): State<Ground>,
    _op: Operator,
) -> Result<Json<api::QuotaList>, ApiError> {
    let rows = db::quotas(g.db()).await?;
    Ok(Json(api::QuotaList {
        quotas: rows.iter().map(quota).collect(),
    }))
}

/// `GET /quotas/{tenant}`: an operator's for anyone, a tenant's for itself (another's is
/// answered as absent).
pub(super) async fn get_quota(
    State(g): State<Ground>,
    AuthUser(user): AuthUser,
    P(tenant): P<String>,
) -> Result<Json<api::Quota>, ApiError> {
    if tenant != user && auth::role(&g, &user).await? != Role::Operator {
        return Err(ApiError::not_found(format!("user '{tenant}' not found")));
    }
    let row = db::quota(g.db(), &tenant)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("user '{tenant}' not found")))?;
    Ok(Json(quota(&row)))
}

/// `PUT /quotas/{tenant}` with the whole [`api::Limits`] (an absent or `null` field: no limit).
pub(super) async fn set_quota(
    State(g): State<Ground>,
    Operator(by): Operator,
    P(tenant): P<String>,
    J(limits): J<api::Limits>,
) -> Result<Json<api::Quota>, ApiError> {
    let row = accounts::set_quota(&g, &by, &tenant, &limits).await?;
    Ok(Json(quota(&row)))
}
