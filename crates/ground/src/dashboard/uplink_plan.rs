//! The operation page's uplink plan: for each uplink task of the latest revision, on the
//! operation's system, how each file would cross the link now (nothing, a reference, raw,
//! compressed or a delta), the bytes, and in which pass the last byte would arrive: the answer
//! of `POST /api/v1/plan` (`planner::plan`, the same code) for the task's sources, volume and
//! destination.

use maud::{Markup, html};

use crate::error::ApiError;
use crate::operation::{self, TaskSpec};
use crate::{Ground, planner, preflight_check};

/// Files listed per task; the totals count them all.
const SHOWN: usize = 50;

/// The "Uplink plan" section for `yaml` as `tenant` would start it; empty when the YAML does not
/// validate (the editor says why) or has no uplink.
pub(super) async fn section(g: &Ground, tenant: &str, yaml: String) -> Result<Markup, ApiError> {
    let Ok(op) = operation::parse_off_workers(yaml).await? else {
        return Ok(html! {});
    };
    let system = preflight_check::operation_system(&op);
    let mut plans = Vec::new();
    for task in &op.tasks {
        let TaskSpec::Uplink {
            sources,
            destination,
            volume,
        } = &task.spec
        else {
            continue;
        };
        let req = api::PlanRequest {
            system: system.clone(),
            sources: sources
                .iter()
                .map(|s| format!("{}:{s}", op.namespace))
                .collect(),
            volume: volume.as_ref().map(ToString::to_string),
            destination: Some(format!("/{}", destination.as_str())),
        };
        let plan = planner::plan(g, tenant, req).await.map_err(|e| e.message());
        plans.push((task.id.to_string(), plan));
    }
    if plans.is_empty() {
        return Ok(html! {});
    }
    Ok(html! {
        h2 { "Uplink plan on " (system) }
        @for (task, plan) in &plans {
            h3 { "Task " (task) }
            @match plan {
                Err(e) => p.error { (e) },
                Ok(p) => {
                    p {
                        (p.total.files) " files of " (mb(p.total.size)) " into volume " (p.volume) ": "
                        strong { (mb(p.total.bytes)) " over the link" } ". "
                        (eta(&p.eta))
                    }
                    table {
                        tr { th { "Source" } th { "Lands at" } th { "Size" } th { "Sent as" } th { "Bytes sent" } }
                        @for f in p.files.iter().take(SHOWN) {
                            tr {
                                td { (f.source) }
                                td { code { (f.path) } }
                                td { (f.size) }
                                td { (f.encoding) }
                                td { (f.bytes) }
                            }
                        }
                    }
                    @if p.files.len() > SHOWN { p { "… and " (p.files.len() - SHOWN) " more files." } }
                }
            }
        }
    })
}

/// Bytes as a number a reader takes in at a glance: exact below 10 kB.
fn mb(bytes: u64) -> String {
    match bytes {
        0..10_000 => format!("{bytes} bytes"),
        10_000..10_000_000 => format!("{:.1} kB", bytes as f64 / 1e3),
        _ => format!("{:.1} MB", bytes as f64 / 1e6),
    }
}

/// When the last byte would arrive, in words.
fn eta(e: &api::PlanEta) -> Markup {
    html! {
        @if let Some(err) = &e.error {
            "No ETA: " (err)
        } @else if e.always_in_contact {
            "Always in contact"
            @if let Some(c) = &e.completion { ": all sent by " (c) }
            @if e.queued_bytes_ahead > 0 { ", after " (mb(e.queued_bytes_ahead)) " already queued" }
            "."
        } @else {
            @match (&e.pass, e.passes) {
                (Some(pass), Some(n)) => {
                    "Arrives in pass " (n) " from now, over " (pass.station) " (" (pass.aos) " to " (pass.los) ")"
                    @if let Some(c) = &e.completion { ", by " (c) }
                    @if e.queued_bytes_ahead > 0 { ", after " (mb(e.queued_bytes_ahead)) " already queued" }
                    "."
                }
                _ => "No pass predicted for it.",
            }
        }
    }
}
