//! Executions: `/executions` (list, start), `/executions/{id}`, what can be done to one before
//! it is sent: `approve`, `reject` (operators), and `cancel` at any time before it ends; `/plan`,
//! how an uplink would send files.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::convert::{execution, execution_summary};
use super::{J, P, Page, Q, created};
use crate::auth::{self, AuthUser, Operator, Role};
use crate::error::ApiError;
use crate::{Ground, approval, cancel as cancelling, db, encoder, executor, planner, queue};

/// The execution, if the caller's, or any for an operator.
pub(crate) async fn load(g: &Ground, user: &str, id: &str) -> Result<api::Execution, ApiError> {
    match db::execution(g.db(), id).await? {
        Some(e) if e.tenant == user || auth::role(g, user).await? == Role::Operator => {
            let tasks = db::tasks(g.db(), id).await?;
            let eta = queue::execution_eta(g, &e).await?;
            let mut shown = execution(&e, &tasks, eta.as_ref())?;
            shown.uplink = encoder::report(g.db(), id).await?;
            shown.triggers = predictions(g, &e).await?;
            Ok(shown)
        }
        // Another tenant's execution is as good as absent.
        _ => Err(ApiError::not_found(format!("execution '{id}' not found"))),
    }
}

/// Before its tasks run onboard (awaiting approval, or scheduled), when each of the execution's
/// triggers would fire (`crate::triggers::predict_plan`); nothing once it runs or ended.
async fn predictions(
    g: &Ground,
    e: &db::ExecutionRow,
) -> Result<Vec<api::TriggerPrediction>, ApiError> {
    let encoded = match e.state.as_str() {
        "AWAITING_APPROVAL" => db::awaiting_plan(g.db(), &e.id).await?,
        "SCHEDULED" => db::execution_plan(g.db(), &e.id).await?,
        _ => None,
    };
    let plan = match encoded.map(|b| wire::decode_message(&b)) {
        Some(Ok(wire::Message::Plan(plan))) => plan,
        _ => return Ok(Vec::new()),
    };
    Ok(crate::triggers::predict_plan(g, &plan, &e.system).await)
}

pub(super) async fn start(
    State(g): State<Ground>,
    AuthUser(user): AuthUser,
    J(req): J<api::StartExecution>,
) -> Result<Response, ApiError> {
    let id = executor::start(&g, &user, req).await?;
    Ok(created(Json(load(&g, &user, &id).await?)))
}

/// `GET /executions?namespace=&state=&tenant=&limit=&offset=`.
#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    namespace: Option<String>,
    /// An execution's state as the API names it (`AWAITING_APPROVAL`, `COMPLETED`, ...).
    state: Option<String>,
    /// Operators only: one tenant's.
    tenant: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

pub(super) async fn list(
    State(g): State<Ground>,
    AuthUser(user): AuthUser,
    Q(q): Q<ListQuery>,
) -> Result<Json<api::ExecutionList>, ApiError> {
    let (limit, offset) = Page {
        limit: q.limit,
        offset: q.offset,
    }
    .bounds()?;
    let operator = auth::role(&g, &user).await? == Role::Operator;
    let tenant = match (&q.tenant, operator) {
        (Some(t), true) => Some(t.as_str()),
        (None, true) => None,
        (Some(t), false) if *t != user => {
            return Err(ApiError::forbidden(
                "only an operator may list another tenant's executions",
            ));
        }
        (_, false) => Some(user.as_str()),
    };
    if let Some(ns) = &q.namespace {
        if operator {
            if db::namespace_owner(g.db(), ns).await?.is_none() {
                return Err(ApiError::not_found(format!("namespace '{ns}' not found")));
            }
        } else {
            auth::check_namespace(&g, &user, ns).await?;
        }
    }
    let state = match &q.state {
        None => None,
        Some(s) => {
            let parsed: api::State = s.parse().map_err(|e: api::UnknownState| {
                ApiError::bad(format!(
                    "state: {e}; one of {}",
                    api::State::ALL.map(api::State::as_str).join(", ")
                ))
            })?;
            // The database keeps an execution's success as a task's.
            Some(match parsed {
                api::State::Completed => api::State::Success,
                s => s,
            })
        }
    };
    let list = db::executions_where(
        g.db(),
        tenant,
        q.namespace.as_deref(),
        state.map(api::State::as_str),
        limit,
        offset,
    )
    .await?;
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

/// `POST /executions/{id}/approve` (operators).
pub(super) async fn approve(
    State(g): State<Ground>,
    Operator(user): Operator,
    P(id): P<String>,
) -> Result<Json<api::Execution>, ApiError> {
    approval::approve(&g, &user, &id).await?;
    Ok(Json(load(&g, &user, &id).await?))
}

/// `POST /executions/{id}/reject` (operators), with `{"reason": "..."}`.
pub(super) async fn reject(
    State(g): State<Ground>,
    Operator(user): Operator,
    P(id): P<String>,
    J(req): J<api::Reject>,
) -> Result<Json<api::Execution>, ApiError> {
    approval::reject(&g, &user, &id, &req.reason).await?;
    Ok(Json(load(&g, &user, &id).await?))
}

/// `POST /executions/{id}/cancel`: the owner's or an operator's. 200 with the execution
/// `CANCELLED` when it was never sent; 202 with it `CANCELLING` when its system was asked to
/// stop it (and for a second cancel meanwhile).
pub(super) async fn cancel(
    State(g): State<Ground>,
    AuthUser(user): AuthUser,
    P(id): P<String>,
) -> Result<Response, ApiError> {
    let operator = auth::role(&g, &user).await? == Role::Operator;
    let outcome = cancelling::cancel(&g, &user, operator, &id).await?;
    let body = Json(load(&g, &user, &id).await?);
    Ok(match outcome {
        cancelling::Outcome::Ended => body.into_response(),
        cancelling::Outcome::Requested => (StatusCode::ACCEPTED, body).into_response(),
    })
}
