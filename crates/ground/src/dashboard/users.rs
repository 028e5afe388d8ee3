//! The operators' Users page: every user with its role, whether it may log in and its quotas,
//! with a Disable or Enable button and a quota form for each (CSRF-protected forms, like every
//! write of the dashboard). A tenant is refused (403).

use axum::Form;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::{CsrfForm, Nav, Viewer, form_viewer, page, signed_out, viewer};
use crate::error::ApiError;
use crate::{Ground, accounts, db, time};

pub(super) async fn users(
    State(g): State<Ground>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Some(v) = viewer(&g, &headers).await? else {
        return Ok(signed_out());
    };
    v.operator_only()?;
    let users = db::users(g.db()).await?;
    let quotas = db::quotas(g.db()).await?;
    let body = html! {
        h1 { "Users" }
        p { "Quotas are stored here and enforced onboard; an empty field has no limit." }
        table #users {
            tr {
                th { "User" } th { "Role" } th { "Created" } th { "May log in" }
                th { "Quotas: volume bytes, image bytes, compute seconds a day, downlink bytes a day" }
            }
            @for u in &users {
                @let q = quotas.iter().find(|q| q.tenant == u.name);
                tr {
                    td { (u.name) }
                    td { (u.role) }
                    td { (time::rfc3339(u.created_at)) }
                    td { (access(u, &v)) }
                    td { (quota_form(&u.name, q, &v)) }
                }
            }
        }
    };
    Ok(page("Users", Nav::Users, &v, body))
}

/// Whether the user may log in, with the button that changes it (none for the viewer itself).
fn access(u: &db::UserRow, v: &Viewer) -> Markup {
    let (now, action, label) = match u.disabled_at {
        None => ("yes".to_string(), "disable", "Disable"),
        Some(at) => (
            format!("no, disabled {}", time::rfc3339(at)),
            "enable",
            "Enable",
        ),
    };
    html! {
        (now)
        @if u.name != v.user {
            " "
            form.inline method="post" action={ "/users/" (u.name) "/" (action) } {
                input type="hidden" name="csrf" value=(v.csrf);
                button type="submit" { (label) }
            }
        }
    }
}

fn quota_form(name: &str, q: Option<&db::QuotaRow>, v: &Viewer) -> Markup {
    let value = |f: fn(&db::QuotaRow) -> Option<i64>| {
        q.and_then(f).map(|n| n.to_string()).unwrap_or_default()
    };
    let fields: [(&str, &str, String); 4] = [
        ("volume_bytes", "Volume bytes", value(|q| q.volume_bytes)),
        ("image_bytes", "Image bytes", value(|q| q.image_bytes)),
        (
            "compute_seconds_per_day",
            "Compute seconds a day",
            value(|q| q.compute_seconds_per_day),
        ),
        (
            "downlink_bytes_per_day",
            "Downlink bytes a day",
            value(|q| q.downlink_bytes_per_day),
        ),
    ];
    html! {
        form.inline method="post" action={ "/users/" (name) "/quota" } {
            input type="hidden" name="csrf" value=(v.csrf);
            @for (field, label, now) in &fields {
                label { (label) " " input name=(field) value=(now) size="12" inputmode="numeric" pattern="[0-9]*"; } " "
            }
            button type="submit" { "Save quota" }
        }
        @if let Some(q) = q.filter(|q| q.updated_by.is_some()) {
            br; small { "set by " (q.updated_by.as_deref().unwrap_or("")) " at " (time::rfc3339_opt(q.updated_at).unwrap_or_default()) }
        }
    }
}

/// The operator sending a form, its CSRF token checked; `None` when signed out.
async fn form_operator(
    g: &Ground,
    headers: &HeaderMap,
    csrf: &str,
) -> Result<Option<Viewer>, ApiError> {
    let v = form_viewer(g, headers, csrf).await?;
    if let Some(v) = &v {
        v.operator_only()?;
    }
    Ok(v)
}

pub(super) async fn disable(
    State(g): State<Ground>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ApiError> {
    set_disabled(g, headers, name, form, true).await
}

pub(super) async fn enable(
    State(g): State<Ground>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ApiError> {
    set_disabled(g, headers, name, form, false).await
}

async fn set_disabled(
    g: Ground,
    headers: HeaderMap,
    name: String,
    form: CsrfForm,
    disable: bool,
) -> Result<Response, ApiError> {
    let Some(v) = form_operator(&g, &headers, &form.csrf).await? else {
        return Ok(signed_out());
    };
    accounts::set_disabled(&g, &v.user, &name, disable).await?;
    Ok(Redirect::to("/users").into_response())
}

#[derive(Debug, Deserialize)]
pub(super) struct QuotaForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    volume_bytes: String,
    #[serde(default)]
    image_bytes: String,
    #[serde(default)]
    compute_seconds_per_day: String,
    #[serde(default)]
    downlink_bytes_per_day: String,
}

/// A quota field: empty for no limit, else a whole number.
fn limit(field: &str, text: &str) -> Result<Option<u64>, ApiError> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    t.parse::<u64>().ok().map(Some).ok_or_else(|| {
        ApiError::bad(format!(
            "{field}: {t:?} is not a whole number of at least 0"
        ))
    })
}

pub(super) async fn set_quota(
    State(g): State<Ground>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<QuotaForm>,
) -> Result<Response, ApiError> {
    let Some(v) = form_operator(&g, &headers, &form.csrf).await? else {
        return Ok(signed_out());
    };
    let limits = api::Limits {
        volume_bytes: limit("volume_bytes", &form.volume_bytes)?,
        image_bytes: limit("image_bytes", &form.image_bytes)?,
        compute_seconds_per_day: limit("compute_seconds_per_day", &form.compute_seconds_per_day)?,
        downlink_bytes_per_day: limit("downlink_bytes_per_day", &form.downlink_bytes_per_day)?,
    };
    accounts::set_quota(&g, &v.user, &name, &limits).await?;
    Ok(Redirect::to("/users").into_response())
}
