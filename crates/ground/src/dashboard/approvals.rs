//! What an operator and an execution's owner can do to an execution from the dashboard: approve
//! or reject one awaiting approval (operators), and cancel one that has not ended (its owner or
//! an operator). Every form carries the session's CSRF token; each answers with a redirect back
//! to the page it came from, or with the API's error.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::{Viewer, form_viewer, signed_out};
use crate::error::ApiError;
use crate::{Ground, approval, cancel as cancelling, db, time};

/// The executions awaiting approval, each with its Approve and Reject forms (the list page's).
pub(super) fn awaiting_table(rows: &[db::ExecutionRow], v: &Viewer) -> Markup {
    html! {
        @if rows.is_empty() { p { "Nothing awaits your approval." } } @else {
            table #awaiting {
                tr { th { "Execution" } th { "Tenant" } th { "Operation" } th { "System" } th { "Created" } th { "Decision" } }
                @for e in rows {
                    tr {
                        td { a href={ "/executions/" (e.id) } { code { (e.id) } } }
                        td { (e.tenant) }
                        td { (e.namespace) " / " (e.operation) " revision " (e.revision) }
                        td { (e.system) }
                        td { (time::rfc3339(e.created_at)) }
                        td { (decision(&e.id, v, "list")) }
                    }
                }
            }
        }
    }
}

/// The Approve and Reject forms of one execution; `back` is where to return (`list` for the
/// executions page, else the execution's page).
fn decision(id: &str, v: &Viewer, back: &str) -> Markup {
    html! {
        form.inline method="post" action={ "/executions/" (id) "/approve" } {
            input type="hidden" name="csrf" value=(v.csrf);
            input type="hidden" name="back" value=(back);
            button.approve type="submit" { "Approve" }
        }
        " "
        form.inline method="post" action={ "/executions/" (id) "/reject" } {
            input type="hidden" name="csrf" value=(v.csrf);
            input type="hidden" name="back" value=(back);
            label { "Reason " input name="reason" required maxlength=(approval::MAX_REASON) size="24"; }
            " "
            button.reject type="submit" { "Reject" }
        }
    }
}

/// The actions the viewer has on an execution's page: approve or reject (an operator, while it
/// awaits approval) and cancel (its owner or an operator, until it ends); while a cancel waits
/// for the system, who asked and since when.
pub(super) fn actions(e: &api::Execution, v: &Viewer) -> Markup {
    let confirm = match e.state {
        api::State::AwaitingApproval => "Cancel this execution? It will never be sent.",
        api::State::Created | api::State::Scheduled | api::State::Running => {
            "Cancel this execution? What runs onboard is stopped, and nothing more of it runs."
        }
        api::State::Cancelling => {
            let asked = e
                .history
                .iter()
                .rev()
                .find(|h| h.state == api::State::Cancelling);
            return html! {
                p #cancelling {
                    "Cancel requested"
                    @if let Some(h) = asked {
                        @if let Some(by) = &h.by { " by " (by) }
                        " at " (h.at)
                    }
                    "; waiting for " (e.system) " to confirm that it stopped."
                }
            };
        }
        _ => return html! {},
    };
    html! {
        @if e.state == api::State::AwaitingApproval {
            @if v.operator {
                div.decision { "Awaiting your approval: " (decision(&e.id, v, "execution")) }
            } @else {
                p { "Awaiting an operator's approval before it is sent to " (e.system) "." }
            }
        }
        form.inline method="post" action={ "/executions/" (e.id) "/cancel" } {
            input type="hidden" name="csrf" value=(v.csrf);
            input type="hidden" name="back" value="execution";
            button.cancel type="submit" data-confirm=(confirm) { "Cancel execution" }
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct DecisionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    back: String,
    #[serde(default)]
    reason: String,
}

impl DecisionForm {
    fn redirect(&self, id: &str) -> Response {
        if self.back == "list" {
            Redirect::to("/executions").into_response()
        } else {
            Redirect::to(&format!("/executions/{}", api::encode_path(id))).into_response()
        }
    }
}

pub(super) async fn approve(
    State(g): State<Ground>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<DecisionForm>,
) -> Result<Response, ApiError> {
    let Some(v) = form_viewer(&g, &headers, &form.csrf).await? else {
        return Ok(signed_out());
    };
    v.operator_only()?;
    approval::approve(&g, &v.user, &id).await?;
    Ok(form.redirect(&id))
}

pub(super) async fn reject(
    State(g): State<Ground>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<DecisionForm>,
) -> Result<Response, ApiError> {
    let Some(v) = form_viewer(&g, &headers, &form.csrf).await? else {
        return Ok(signed_out());
    };
    v.operator_only()?;
    approval::reject(&g, &v.user, &id, &form.reason).await?;
    Ok(form.redirect(&id))
}

pub(super) async fn cancel(
    State(g): State<Ground>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<DecisionForm>,
) -> Result<Response, ApiError> {
    let Some(v) = form_viewer(&g, &headers, &form.csrf).await? else {
        return Ok(signed_out());
    };
    cancelling::cancel(&g, &v.user, v.operator, &id).await?;
    Ok(form.redirect(&id))
}
