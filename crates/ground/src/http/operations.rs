//! Operations: `/operations` (list, apply), `/operations/validate` and `/operations/{ns}/{id}`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::Response;

use super::convert::{applied_operation, findings, operation_detail, operation_summary};
use super::{NamespaceQuery, P, Q, created};
use crate::auth::{self, AuthUser};
use crate::error::ApiError;
use crate::operation::Diagnostic;
use crate::{Ground, apply, db};

/// The body of a YAML request.
fn yaml_text(body: Result<Bytes, BytesRejection>) -> Result<String, ApiError> {
    let body = body.map_err(|r| ApiError::from_rejection(r.status(), r.body_text()))?;
    String::from_utf8(body.to_vec()).map_err(|_| ApiError::bad("the operation is not UTF-8 text"))
}

pub(super) async fn apply(
    State(g): State<Ground>,
    AuthUser(user): AuthUser,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let yaml = yaml_text(body)?;
    let (row, found, triggers) = apply::apply(&g, &user, &yaml).await?;
    Ok(created(Json(applied_operation(row, &found, triggers))))
}

pub(super) async fn validate(
    State(g): State<Ground>,
    AuthUser(user): AuthUser,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<api::Validation>, ApiError> {
    let yaml = yaml_text(body)?;
    let v = apply::validate(&g, &user, &yaml).await?;
    Ok(Json(api::Validation {
        valid: v.valid(),
        diagnostics: v.diagnostics.iter().map(Diagnostic::to_api).collect(),
        preflight: findings(&v.findings),
        triggers: v.triggers,
    }))
}

pub(super) async fn list(
    State(g): State<Ground>,
    AuthUser(user): AuthUser,
    Q(q): Q<NamespaceQuery>,
) -> Result<Json<api::OperationList>, ApiError> {
    let (limit, offset) = q.authorize(&g, &user).await?;
    let ops = db::operations_of(g.db(), &user, q.namespace.as_deref(), limit, offset).await?;
    Ok(Json(api::OperationList {
        operations: ops.iter().map(operation_summary).collect(),
    }))
}

pub(super) async fn get(
    State(g): State<Ground>,
    AuthUser(user): AuthUser,
    P((ns, id)): P<(String, String)>,
) -> Result<Json<api::OperationDetail>, ApiError> {
    auth::check_namespace(&g, &user, &ns).await?;
    let Some((row, yaml)) = db::operation(g.db(), &ns, &id).await? else {
        return Err(ApiError::not_found(format!(
            "operation '{ns}/{id}' not found"
        )));
    };
    let execs = db::executions_of(g.db(), &user, Some(&ns), Some(&id), 100, 0).await?;
    Ok(Json(operation_detail(row, yaml, &execs)?))
}

/// `GET /api/v1/operations/{ns}/{id}/revisions/{revision}`.
pub(super) async fn revision(
    State(g): State<Ground>,
    AuthUser(user): AuthUser,
    P((ns, id, revision)): P<(String, String, i64)>,
) -> Result<Json<api::OperationRevision>, ApiError> {
    auth::check_namespace(&g, &user, &ns).await?;
    let Some((yaml, created_at)) = db::operation_revision(g.db(), &ns, &id, revision).await? else {
        return Err(ApiError::not_found(format!(
            "operation '{ns}/{id}' has no revision {revision}"
        )));
    };
    Ok(Json(api::OperationRevision {
        namespace: ns,
        id,
        revision: revision.max(0) as u64,
        yaml,
        created_at: crate::time::rfc3339(created_at),
    }))
}
