//! An execution's page, followed live: its tasks with states, history, errors with log tails,
//! outputs to download.
//!
//! Everything that changes as the execution runs is one region (`#live`, `aria-live`), rendered
//! by [`live_region`] both into the page and alone at `/executions/{id}/live`. With scripts,
//! `dashboard.js` listens to the execution's server-sent events
//! (`GET /api/v1/executions/{id}/events`) and, on each, puts the region rendered anew in place
//! of the old one, so the page never reloads. Without scripts, a link reloads it.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use super::{Nav, Viewer, page, signed_out, viewer};
use crate::error::ApiError;
use crate::{Ground, db};

/// The page.
pub(super) async fn execution(
    State(g): State<Ground>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let Some(v) = viewer(&g, &headers).await? else {
        return Ok(signed_out());
    };
    let e = crate::http::load_execution(&g, &v.user, &id).await?;
    let region = live_region(&g, &v, &e).await?;
    let body = html! {
        h1 { "Execution " code { (e.id) } }
        div #live aria-live="polite"
            data-events={ "/api/v1/executions/" (e.id) "/events" }
            data-region={ "/executions/" (e.id) "/live" } {
            (region)
        }
        @if !e.state.is_final() {
            noscript { p { a href={ "/executions/" (e.id) } { "Reload" } " to see the latest states." } }
        }
    };
    Ok(page(&format!("Execution {id}"), Nav::Executions, &v, body))
}

/// The live region alone, for the page's script; `401` when signed out.
pub(super) async fn live(
    State(g): State<Ground>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let Some(v) = viewer(&g, &headers).await? else {
        return Err(ApiError::Unauthorized);
    };
    let e = crate::http::load_execution(&g, &v.user, &id).await?;
    let region = live_region(&g, &v, &e).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        region.into_string(),
    )
        .into_response())
}

/// What changes as the execution runs: its state, the actions it allows, its tasks with their
/// outputs, its errors and history.
async fn live_region(g: &Ground, v: &Viewer, e: &api::Execution) -> Result<Markup, ApiError> {
    // What an operator approves: the operation's revision as the tenant wrote it.
    let yaml = if v.operator && e.state == api::State::AwaitingApproval {
        db::operation_revision(g.db(), &e.namespace, &e.operation, e.revision as i64)
            .await?
            .map(|(yaml, _)| yaml)
    } else {
        None
    };
    let live = !e.state.is_final();
    let dash = |t: &Option<String>| t.clone().unwrap_or_else(|| "—".to_string());
    Ok(html! {
        p {
            @if e.tenant == v.user {
                a href={ "/operations/" (e.namespace) "/" (e.operation) } { (e.namespace) " / " (e.operation) }
            } @else {
                (e.tenant) "'s " (e.namespace) " / " (e.operation)
            }
            " revision " (e.revision) " on " (e.system) ": "
            b #state class=(e.state.as_str()) { (e.state.as_str()) }
            @if live { " (updating)" }
        }
        (super::approvals::actions(e, v))
        @if let Some(yaml) = &yaml {
            h2 { "What it will run" }
            pre.yaml { (yaml) }
        }
        p { "Created " (e.created_at) ", started " (dash(&e.started_at)) ", finished " (dash(&e.finished_at)) "." }
        @if let Some(eta) = &e.uplink_eta {
            p {
                "Uplink: " (eta.remaining_bytes) " bytes to go"
                @if let Some(c) = &eta.completion { ", expected by " (c) }
                @if let Some(p) = &eta.pass { " (pass over " (p.station) " at " (p.aos) ")" }
                "."
            }
        }
        @if let Some(u) = &e.uplink {
            p.uplink {
                "Sent up: " (u.wire_bytes) " bytes on the wire for " (u.objects) " files of "
                (u.object_bytes) " bytes"
                @for s in &u.sent { "; " code { (s.digest.get(..19).unwrap_or(&s.digest)) } " as " (s.encoding) " (" (s.bytes) " bytes)" }
                "."
            }
        }
        table #tasks {
            tr { th { "Task" } th { "Type" } th { "State" } th { "Started" } th { "Finished" } th { "Outputs" } }
            @for t in &e.tasks {
                tr data-task=(t.id) {
                    td { (t.id) }
                    td { (t.task_type) }
                    td class=(t.state.as_str()) { (t.state.as_str()) }
                    td { (dash(&t.started_at)) }
                    td { (dash(&t.finished_at)) }
                    td {
                        @if let Some(o) = &t.outputs {
                            @if let Some(m) = &o.message { (m) br; }
                            @if let Some(c) = o.exit_code { "exit " (c) br; }
                            @for f in &o.files {
                                a href={ "/api/v1/namespaces/" (e.namespace) "/files" (api::encode_path(&f.path)) } download { (f.path) }
                                " (" (f.size) " bytes)" br;
                            }
                            @if !o.log_tail.is_empty() { pre { @for l in &o.log_tail { (l) "\n" } } }
                        }
                    }
                }
            }
        }
        @if !e.errors.is_empty() {
            h2 { "Errors" }
            @for err in &e.errors {
                p.error {
                    "Task " (err.task.as_deref().unwrap_or("—")) ": " (err.code) " " (err.name) ": " (err.message)
                }
                @if !err.log_tail.is_empty() { pre { @for l in &err.log_tail { (l) "\n" } } }
            }
        }
        h2 { "History" }
        table {
            tr { th { "When" } th { "State" } th { "By" } th { "Reason" } }
            @for h in &e.history {
                tr {
                    td { (h.at) }
                    td class=(h.state.as_str()) { (h.state.as_str()) }
                    td { (h.by.as_deref().unwrap_or("")) }
                    td { (h.reason.as_deref().unwrap_or("")) }
                }
            }
        }
    })
}
