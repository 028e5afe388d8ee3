//! Executions: `/executions` (list, start) and `/executions/{id}`; `/plan`, how an uplink would
//! send files.

use axum::Json;
use axum::extract::State;
use axum::response::Response;

use super::convert::{execution, execution_summary};
use super::{J, NamespaceQuery, P, Q, created};
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::{Ground, db, encoder, executor, planner, queue};

/// The execution, if the caller's.
pub(crate) async fn load(g: &Ground, user: &str, id: &str) -> Result<api::Execution, ApiError> {
    match db::execution(g.db(), id).await? {
        Some(e) if e.tenant == user => {
            let tasks = db::tasks(g.db(), id).await?;
            let eta = queue::execution_eta(g, &e).await?;
            let mut shown = execution(&e, &tasks, eta.as_ref())?;
            shown.uplink = encoder::report(g.db(), id).await?;
            Ok(shown)
        }
        // Another tenant's execution is as good as absent.
        _ => Err(ApiError::not_found(format!("execution '{id}' not found"))),
    }
}

pub(super) async fn start(
    State(g): State<Ground>,
    AuthUser(user): AuthUser,
    J(req): J<api::StartExecution>,
) -> Result<Response, ApiError> {
    let id = executor::start(&g, &user, req).await?;
    Ok(created(Json(load(&g, &user, &id).await?)))
}

pub(super) async fn list(
    State(g): State<Ground>,
    AuthUser(user): AuthUser,
    Q(q): Q<NamespaceQuery>,
) -> Result<Json<api::ExecutionList>, ApiError> {
    let (limit, offset) = q.authorize(&g, &user).await?;
    let list =
        db::executions_of(g.db(), &user, q.namespace.as_deref(), None, limit, offset).await?;
    Ok(Json(api::ExecutionList {
        executions: list
            .iter()
            .map(execution_summary)
            .collect::<Result<_, _>>()?,
    }))
}

pub(super) async fn get(
    State(g): State<Ground>,
    AuthUser(user): AuthUser,
    P(id): P<String>,
) -> Result<Json<api::Execution>, ApiError> {
    Ok(Json(load(&g, &user, &id).await?))
}

/// `POST /api/v1/plan`: how files would cross the link to a system, and when.
pub(super) async fn plan(
    State(g): State<Ground>,
    AuthUser(user): AuthUser,
    J(req): J<api::PlanRequest>,
) -> Result<Json<api::UplinkPlan>, ApiError> {
    Ok(Json(planner::plan(&g, &user, req).await?))
}
