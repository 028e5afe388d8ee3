//! The dashboard's pages. Each reads only the signed-in tenant's rows; another tenant's
//! namespace, operation or execution is answered as absent. An operator's Executions and
//! Systems pages show every tenant's executions and uplink queue, with the executions awaiting
//! its approval (`approvals`).

use axum::Form;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::{Nav, check_csrf, page, signed_out, viewer};
use crate::config::limits;
use crate::error::ApiError;
use crate::{Ground, auth, db, executor, time};

/// Executions shown on the home page and in the executions list.
const RECENT: i64 = 20;
/// Days of use charted on the home page.
const USAGE_DAYS: i64 = 14;
const LISTED: i64 = 200;

/// The page's viewer, or the login form.
macro_rules! signed_in {
    ($g:expr, $headers:expr) => {
        match viewer(&$g, &$headers).await? {
            Some(v) => v,
            None => return Ok(signed_out()),
        }
    };
}

/// Executions, with their tenants when `tenants` (an operator's view, where the operation is
/// another tenant's and so not linked).
fn executions_table(rows: &[db::ExecutionRow], tenants: bool) -> Markup {
    html! {
        table {
            tr {
                th { "Execution" } @if tenants { th { "Tenant" } }
                th { "Operation" } th { "System" } th { "State" } th { "Created" }
            }
            @for e in rows {
                @let state = executor::shown_state(&e.state);
                tr {
                    td { a href={ "/executions/" (e.id) } { code { (e.id) } } }
                    @if tenants {
                        td { (e.tenant) }
                        td { (e.namespace) " / " (e.operation) }
                    } @else {
                        td { a href={ "/operations/" (e.namespace) "/" (e.operation) } { (e.namespace) " / " (e.operation) } }
                    }
                    td { (e.system) }
                    td class=(state) { (state) }
                    td { (time::rfc3339(e.created_at)) }
                }
            }
        }
    }
}

/// Home, served from the view cache (`crate::views`) while no event has changed it.
pub(super) async fn home(
    State(g): State<Ground>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let v = signed_in!(g, headers);
    let body = match g.views().home(&v.user) {
        Some(body) => body,
        None => {
            // Read before computing: an event landing meanwhile makes this view stale.
            let generation = g.views().generation();
            let body: std::sync::Arc<str> = home_body(&g, &v).await?.into_string().into();
            g.views().keep_home(&v.user, generation, body.clone());
            body
        }
    };
    Ok(page(
        "orbitdock ground",
        Nav::Home,
        &v,
        maud::PreEscaped(body.to_string()),
    ))
}

/// What Home shows `v`: usage charts, next passes, namespaces, operations, recent executions,
/// systems.
async fn home_body(g: &Ground, v: &super::Viewer) -> Result<Markup, ApiError> {
    let namespaces = db::namespaces_of(g.db(), &v.user).await?;
    let operations = db::operations_of(g.db(), &v.user, None, limits::PAGE_DEFAULT, 0).await?;
    let recent = db::executions_of(g.db(), &v.user, None, None, RECENT, 0).await?;
    let usage = db::usage(g.db(), &v.user, time::now_ms(), USAGE_DAYS).await?;
    let next = next_passes(g).await;
    let awaiting = if v.operator {
        db::awaiting_count(g.db()).await?
    } else {
        0
    };
    let body = html! {
        h1 { "orbitdock ground" }
        @if awaiting > 0 {
            p.warning { a href="/executions#awaiting" { (awaiting) " execution(s) await your approval" } "." }
        }
        h2 { "Your use, last " (USAGE_DAYS) " days" }
        div.charts {
            (bars("Uplink, MB a day", &usage.iter().map(|d| (d.day, d.up_bytes as f64 / 1e6)).collect::<Vec<_>>()))
            (bars("Downlink, MB a day", &usage.iter().map(|d| (d.day, d.down_bytes as f64 / 1e6)).collect::<Vec<_>>()))
            (bars("Pod compute, minutes a day", &usage.iter().map(|d| (d.day, d.compute_s.values().sum::<f64>() / 60.0)).collect::<Vec<_>>()))
        }
        @let systems: std::collections::BTreeSet<&String> = usage.iter().flat_map(|d| d.compute_s.keys()).collect();
        @if !systems.is_empty() {
            table {
                tr { th { "Pod compute by system" } th { "minutes, " (USAGE_DAYS) " days" } }
                @for s in systems {
                    tr { td { (s) } td { (format!("{:.1}", usage.iter().filter_map(|d| d.compute_s.get(s)).sum::<f64>() / 60.0)) } }
                }
            }
        }
        h2 { "Next passes" }
        @if next.is_empty() { p { "No flight system with an orbit." } } @else {
        table {
            tr { th { "System" } th { "Station" } th { "AOS" } th { "LOS" } th { "Uplink MB" } }
            @for (system, w) in &next {
                tr {
                    td { (system) }
                    @match w {
                        Ok(Some(w)) => {
                            td { (w.station) } td { (crate::passes::rfc3339(w.aos)) } td { (crate::passes::rfc3339(w.los)) }
                            td { (format!("{:.2}", w.up_bytes as f64 / 1e6)) }
                        }
                        Ok(None) => { td colspan="4" { "none in the next 24 hours" } }
                        Err(e) => { td.error colspan="4" { (e) } }
                    }
                }
            }
        }
        }
        h2 { "Namespaces" }
        table {
            tr { th { "Name" } th { "Created" } }
            @for (name, created) in &namespaces {
                tr { td { a href={ "/namespaces/" (name) } { (name) } } td { (time::rfc3339(*created)) } }
            }
        }
        h2 { "Operations" }
        (operations_table(&operations))
        h2 { "Recent executions" }
        (executions_table(&recent, false))
        h2 { "Systems" }
        (systems_table(g).await?)
    };
    Ok(body)
}

/// Each flying system's next pass (within a day), or why there is none.
async fn next_passes(g: &Ground) -> Vec<(String, Result<Option<orbit::Window>, String>)> {
    let now = g.now();
    let mut out = Vec::new();
    let names: Vec<String> = g.system_names().map(str::to_string).collect();
    for name in names {
        if let Ok(crate::passes::Sky::Orbit(f)) = crate::passes::sky(g, &name) {
            let next = f
                .windows(now, now.plus_seconds(86_400.0))
                .await
                .map(|w| w.into_iter().next())
                .map_err(|e| e.message());
            out.push((name, next));
        }
    }
    out
}

/// A small bar chart of one value a day (SVG, no script): the day's date under each bar, the
/// value in its tooltip, the largest value on the axis.
fn bars(title: &str, days: &[(i64, f64)]) -> Markup {
    let max = days.iter().map(|d| d.1).fold(0.0_f64, f64::max);
    let (w, h, gap) = (16.0, 80.0, 4.0);
    let width = days.len() as f64 * (w + gap) + 40.0;
    html! {
        figure.chart {
            figcaption { (title) }
            svg xmlns="http://www.w3.org/2000/svg" width=(width) height=(h + 30.0) role="img" font-size="9" {
                title { (title) }
                text x="0" y="10" { (format!("{max:.2}")) }
                line x1="36" y1=(h) x2=(width) y2=(h) stroke="#999" {}
                @for (i, (day, value)) in days.iter().enumerate() {
                    @let bar = if max > 0.0 { value / max * (h - 10.0) } else { 0.0 };
                    @let x = 40.0 + i as f64 * (w + gap);
                    @let date = time::rfc3339(day * 86_400_000);
                    rect x=(x) y=(h - bar) width=(w) height=(bar) fill="#05a" {
                        title { (date.get(..10).unwrap_or("")) ": " (format!("{value:.3}")) }
                    }
                    @if i % 7 == 0 || i + 1 == days.len() {
                        text x=(x) y=(h + 12.0) { (date.get(5..10).unwrap_or("")) }
                    }
                }
            }
        }
    }
}

fn operations_table(rows: &[db::OperationRow]) -> Markup {
    html! {
        table {
            tr { th { "Namespace" } th { "Operation" } th { "Revision" } th { "Updated" } }
            @for o in rows {
                tr {
                    td { a href={ "/namespaces/" (o.namespace) } { (o.namespace) } }
                    td { a href={ "/operations/" (o.namespace) "/" (o.id) } { (o.id) } }
                    td { (o.revision) }
                    td { (time::rfc3339(o.updated_at)) }
                }
            }
        }
    }
}

async fn systems_table(g: &Ground) -> Result<Markup, ApiError> {
    let mut rows = Vec::new();
    for name in g.system_names() {
        let (platform, seen) = match db::system(g.db(), name).await? {
            Some(s) => (s.platform, time::rfc3339(s.last_seen)),
            None => ("—".to_string(), "never".to_string()),
        };
        rows.push((name.to_string(), platform, seen));
    }
    Ok(html! {
        table {
            tr { th { "System" } th { "Platform" } th { "Last seen" } th { "Onboard" } }
            @for (name, platform, seen) in &rows {
                tr {
                    td { a href={ "/systems#" (name) } { (name) } }
                    td { (platform) }
                    td { (seen) }
                    td { a href={ "/systems/" (name) "/volumes" } { "onboard files" } }
                }
            }
        }
    })
}

pub(super) async fn namespaces(
    State(g): State<Ground>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let v = signed_in!(g, headers);
    let namespaces = db::namespaces_of(g.db(), &v.user).await?;
    let body = html! {
        h1 { "Namespaces" }
        @if namespaces.is_empty() {
            p { "No namespace yet: upload files with " code { "orbitdock files push DIR -n NAME" } "." }
        }
        table {
            tr { th { "Name" } th { "Files" } th { "Created" } }
            @for (name, created) in &namespaces {
                tr {
                    td { a href={ "/namespaces/" (name) } { (name) } }
                    td { a href={ "/namespaces/" (name) } { "browse" } }
                    td { (time::rfc3339(*created)) }
                }
            }
        }
    };
    Ok(page("Namespaces", Nav::Namespaces, &v, body))
}

/// A namespace's files (the latest version of each, with how many versions), each with a
/// download link and a delete button, and a folder upload with progress.
pub(super) async fn namespace(
    State(g): State<Ground>,
    headers: HeaderMap,
    Path(ns): Path<String>,
) -> Result<Response, ApiError> {
    let v = signed_in!(g, headers);
    auth::check_namespace(&g, &v.user, &ns).await?;
    let files = db::latest_files(g.db(), &ns, "/", limits::PAGE_MAX, 0).await?;
    let body = html! {
        h1 { "Namespace " (ns) }
        h2 { "Upload" }
        form #upload data-namespace=(ns) {
            p.drop { "Drop files or folders here, or choose them:" }
            p {
                label { "Folder " input type="file" name="folder" webkitdirectory multiple; }
                " or "
                label { "files " input type="file" name="files" multiple; }
            }
            p { label { "Into " input name="to" value="/"; } " " button type="submit" { "Upload" } }
            p { progress #upload-progress value="0" max="1" hidden {} " " span #upload-status {} }
        }
        h2 { "Files" }
        @if files.is_empty() { p { "No files." } }
        table {
            tr { th { "Path" } th { "Version" } th { "Size" } th { "Stored" } th {} }
            @for f in &files {
                tr {
                    td {
                        a href={ "/api/v1/namespaces/" (ns) "/files" (api::encode_path(&f.path)) } download { (f.path) }
                    }
                    td { (f.version) " of " (f.versions) }
                    td { (f.size) }
                    td { (time::rfc3339(f.created_at)) }
                    td {
                        form.inline method="post" action={ "/namespaces/" (ns) "/delete" } {
                            input type="hidden" name="csrf" value=(v.csrf);
                            input type="hidden" name="path" value=(f.path);
                            button data-confirm={ "Delete " (f.path) " and all its versions?" } { "Delete" }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&format!("Namespace {ns}"), Nav::Namespaces, &v, body))
}

#[derive(Debug, Deserialize)]
pub(super) struct DeleteForm {
    csrf: String,
    path: String,
}

/// The delete button of a namespace's file: every version of it goes.
pub(super) async fn delete_file(
    State(g): State<Ground>,
    headers: HeaderMap,
    Path(ns): Path<String>,
    Form(form): Form<DeleteForm>,
) -> Result<Response, ApiError> {
    let v = signed_in!(g, headers);
    check_csrf(&v, &form.csrf)?;
    auth::check_namespace(&g, &v.user, &ns).await?;
    let path = wire::names::NamespacePath::parse(&form.path)
        .map_err(|e| ApiError::bad(format!("bad path: {}", e.reason())))?
        .to_string();
    if path != "/" {
        let mut tx = db::write_tx(g.db()).await?;
        db::delete_files(&mut tx, &ns, &path).await?;
        tx.commit().await?;
    }
    Ok(Redirect::to(&format!("/namespaces/{}", api::encode_path(&ns))).into_response())
}

pub(super) async fn operations(
    State(g): State<Ground>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let v = signed_in!(g, headers);
    let ops = db::operations_of(g.db(), &v.user, None, limits::PAGE_MAX, 0).await?;
    let body = html! {
        h1 { "Operations" }
        (operations_table(&ops))
        h2 { "New operation" }
        (editor("", "id: hello\nnamespace: demo\nsystem: em\ntasks:\n  - id: list\n    type: files.list\n"))
    };
    Ok(page("Operations", Nav::Operations, &v, body))
}

/// The YAML editor: validate (diagnostics at line and column), save, execute.
fn editor(name: &str, yaml: &str) -> Markup {
    html! {
        form #editor data-operation=(name) {
            p {
                label for="yaml" { "Operation YAML" } br;
                textarea #yaml name="yaml" rows="18" spellcheck="false" { (yaml) }
            }
            p {
                button type="button" #validate { "Validate" } " "
                button type="button" #save { "Save as a new revision" } " "
                @if !name.is_empty() {
                    label { "System " input name="system" size="8" placeholder="the operation's"; } " "
                    label { input type="checkbox" name="force"; " start despite preflight errors" } " "
                    button type="button" #execute { "Execute" }
                }
            }
            ul #diagnostics {}
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct RevisionQuery {
    /// Show the diff from this revision to the latest.
    diff: Option<i64>,
}

pub(super) async fn operation(
    State(g): State<Ground>,
    headers: HeaderMap,
    Path((ns, id)): Path<(String, String)>,
    axum::extract::Query(q): axum::extract::Query<RevisionQuery>,
) -> Result<Response, ApiError> {
    let v = signed_in!(g, headers);
    auth::check_namespace(&g, &v.user, &ns).await?;
    let Some((row, yaml)) = db::operation(g.db(), &ns, &id).await? else {
        return Err(ApiError::not_found(format!(
            "operation '{ns}/{id}' not found"
        )));
    };
    let (system, findings) =
        crate::preflight_check::operation_findings(&g, &v.user, yaml.clone()).await?;
    let uplink = super::uplink_plan::section(&g, &v.user, yaml.clone()).await?;
    let triggers = crate::triggers::predict_yaml(&g, yaml.clone()).await?;
    let execs = db::executions_of(g.db(), &v.user, Some(&ns), Some(&id), LISTED, 0).await?;
    let diff = match q.diff {
        Some(from) => match db::operation_revision(g.db(), &ns, &id, from).await? {
            Some((old, _)) => Some((from, unified_diff(&old, &yaml))),
            None => {
                return Err(ApiError::not_found(format!(
                    "operation '{ns}/{id}' has no revision {from}"
                )));
            }
        },
        None => None,
    };
    let body = html! {
        h1 { "Operation " (ns) " / " (id) }
        p {
            "Revision " (row.revision) ", updated " (time::rfc3339(row.updated_at)) ". "
            @if row.revision > 1 {
                "Compare with revision: "
                @for r in 1..row.revision {
                    a href={ "?diff=" (r) } { (r) } " "
                }
            }
        }
        @if let Some((from, d)) = &diff {
            h2 { "Changes from revision " (from) " to " (row.revision) }
            pre.diff { (d) }
        }
        (editor(&format!("{ns}/{id}"), &yaml))
        h2 { "Preflight on " (system) }
        @if findings.is_empty() { p { "No findings." } } @else {
            table {
                tr { th { "Task" } th { "Severity" } th { "Code" } th { "Where" } th { "Message" } }
                @for f in &findings {
                    @let sev = f.severity.as_str();
                    tr {
                        td { (f.task) }
                        td class=(sev) { (sev) }
                        td { code { (f.code) } }
                        td { code { @if f.line == 0 { (f.file) } @else { (f.file) ":" (f.line) ":" (f.column) } } }
                        td { (f.message) @if let Some(h) = &f.help { br; small { "help: " (h) } } }
                    }
                }
            }
        }
        (uplink)
        @if !triggers.is_empty() {
            h2 { "Triggers on " (system) }
            p { "When each task's trigger would fire if the task were ready now, predicted from the element set its plan carries up." }
            table {
                tr { th { "Task" } th { "Condition" } th { "Fires" } th { "Holds until" } th { "Then" } }
                @for t in &triggers {
                    tr {
                        td { (t.task) }
                        td {
                            (t.condition)
                            @if !t.decided_onboard.is_empty() {
                                br; small { "decided onboard, not predicted: " (t.decided_onboard.join(", ")) " (the times are when the rest holds)" }
                            }
                        }
                        @if let Some(e) = &t.error {
                            td colspan="3" class="error" { (e) }
                        } @else if let Some(first) = t.firings.first() {
                            td { (first.start) }
                            td { (first.end) }
                            td { @for f in t.firings.iter().skip(1) { (f.start) br; } }
                        } @else {
                            td colspan="3" class="warning" { "never before its deadline " (t.until) ": the task would fail" }
                        }
                    }
                }
            }
        }
        h2 { "Executions" }
        (executions_table(&execs, false))
    };
    Ok(page(&format!("{ns}/{id}"), Nav::Operations, &v, body))
}

pub(super) async fn executions(
    State(g): State<Ground>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let v = signed_in!(g, headers);
    let body = if v.operator {
        let awaiting =
            db::executions_where(g.db(), None, None, Some("AWAITING_APPROVAL"), LISTED, 0).await?;
        let rows = db::executions_where(g.db(), None, None, None, LISTED, 0).await?;
        html! {
            h1 { "Executions" }
            h2 { "Awaiting approval" }
            (super::approvals::awaiting_table(&awaiting, &v))
            h2 { "Every tenant's executions" }
            (executions_table(&rows, true))
        }
    } else {
        let rows = db::executions_of(g.db(), &v.user, None, None, LISTED, 0).await?;
        html! {
            h1 { "Executions" }
            (executions_table(&rows, false))
        }
    };
    Ok(page("Executions", Nav::Executions, &v, body))
}

/// The ground's mirror of the tenant's volumes on a system: each volume and its files, as the
/// agent last listed them.
pub(super) async fn onboard(
    State(g): State<Ground>,
    headers: HeaderMap,
    Path(system): Path<String>,
) -> Result<Response, ApiError> {
    let v = signed_in!(g, headers);
    if g.system(&system).is_none() {
        return Err(ApiError::not_found(format!("system '{system}' not found")));
    }
    let volumes = db::volumes(g.db(), &system, &v.user).await?;
    let mut listed = Vec::new();
    for (name, _, _) in &volumes {
        listed.push(db::volume_files(g.db(), &system, &v.user, name, limits::PAGE_MAX, 0).await?);
    }
    let body = html! {
        h1 { "Onboard files on " (system) }
        @if volumes.is_empty() { p { "No volume of yours on " (system) " yet." } }
        @for ((name, files, bytes), rows) in volumes.iter().zip(&listed) {
            h2 { "Volume " (name) }
            p { (files) " files, " (bytes) " bytes." }
            table {
                tr { th { "Path" } th { "Size" } th { "Changed" } }
                @for f in rows {
                    tr {
                        td { (f.path) @if f.is_dir { "/" } }
                        td { @if !f.is_dir { (f.size) } }
                        td { (time::rfc3339(f.modified_ms)) }
                    }
                }
            }
        }
    };
    Ok(page(
        &format!("Onboard files on {system}"),
        Nav::Systems,
        &v,
        body,
    ))
}

pub(super) async fn systems(
    State(g): State<Ground>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let v = signed_in!(g, headers);
    let body = html! {
        h1 { "Systems" }
        (systems_table(&g).await?)
        (crate::systems_view::section(&g, (!v.operator).then_some(v.user.as_str())).await?)
    };
    Ok(page("Systems", Nav::Systems, &v, body))
}

/// A unified diff of two YAML texts (three lines of context).
fn unified_diff(old: &str, new: &str) -> String {
    let d = similar::TextDiff::from_lines(old, new);
    let text = d.unified_diff().context_radius(3).to_string();
    if text.is_empty() {
        "(no changes)".to_string()
    } else {
        text
    }
}
