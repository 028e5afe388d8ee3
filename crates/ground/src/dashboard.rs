//! The dashboard: a small server-rendered page. Signed out, it shows a login form; signed in, the
//! tenant's namespaces, operations, recent executions and the systems. No JavaScript. Every
//! value is escaped with [`escape`].

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use crate::auth::{self, ClientAddr, Login, SESSION_COOKIE};
use crate::config::limits;
use crate::error::ApiError;
use crate::{Ground, db, time};

pub(crate) fn router() -> Router<Ground> {
    Router::new()
        .route("/", get(page))
        .route("/login", post(login))
        .route("/logout", post(logout))
}

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn layout(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>\
         body{{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem;color:#222}}\
         table{{border-collapse:collapse;margin-bottom:2rem}}\
         th,td{{border-bottom:1px solid #ddd;padding:.3rem .8rem;text-align:left}}\
         .SUCCESS{{color:#070}}.COMPLETED{{color:#070}}.FAILED{{color:#b00}}.RUNNING{{color:#05a}}\
         .error{{color:#b00}}form.inline{{display:inline}}\
         </style></head><body>{body}</body></html>",
        escape(title)
    ))
}

fn login_page(message: Option<&str>) -> Html<String> {
    let message = message
        .map(|m| format!("<p class=\"error\">{}</p>", escape(m)))
        .unwrap_or_default();
    layout(
        "orbitdock — sign in",
        &format!(
            "<h1>orbitdock ground</h1>{message}\
             <form method=\"post\" action=\"/login\">\
             <p><label>User <input name=\"user\" autocomplete=\"username\" required></label></p>\
             <p><label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label></p>\
             <p><button type=\"submit\">Sign in</button></p></form>"
        ),
    )
}

async fn page(State(g): State<Ground>, headers: HeaderMap) -> Result<Response, ApiError> {
    let user = match auth::cookie(&headers, SESSION_COOKIE) {
        Some(token) => auth::user_for_token(&g, &token).await?,
        None => None,
    };
    let Some(user) = user else {
        return Ok(login_page(None).into_response());
    };
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>orbitdock ground</h1><p>Signed in as <b>{}</b> \
         <form class=\"inline\" method=\"post\" action=\"/logout\"><button>Sign out</button></form></p>",
        escape(&user)
    );

    body.push_str("<h2>Namespaces</h2><table><tr><th>Name</th><th>Created</th></tr>");
    for (name, created) in db::namespaces_of(g.db(), &user).await? {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td></tr>",
            escape(&name),
            time::rfc3339(created)
        );
    }
    body.push_str("</table>");

    body.push_str(
        "<h2>Operations</h2><table><tr><th>Namespace</th><th>Operation</th><th>Revision</th><th>Updated</th></tr>",
    );
    for o in db::operations_of(g.db(), &user, None, limits::PAGE_DEFAULT, 0).await? {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&o.namespace),
            escape(&o.id),
            o.revision,
            time::rfc3339(o.updated_at)
        );
    }
    body.push_str("</table>");
    body.push_str(&crate::preflight_check::dashboard_section(&g, &user).await?);

    body.push_str(
        "<h2>Recent executions</h2><table><tr><th>Execution</th><th>Operation</th><th>System</th>\
         <th>State</th><th>Created</th></tr>",
    );
    for e in db::executions_of(g.db(), &user, None, None, 50, 0).await? {
        // Named as the API names an execution's state (COMPLETED for a success).
        let state = e
            .state
            .parse::<api::State>()
            .map_or(e.state.as_str(), |s| s.of_execution().as_str());
        let _ = write!(
            body,
            "<tr><td><code>{}</code></td><td>{} / {}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
            escape(&e.id),
            escape(&e.namespace),
            escape(&e.operation),
            escape(&e.system),
            escape(state),
            escape(state),
            time::rfc3339(e.created_at)
        );
    }
    body.push_str("</table>");

    body.push_str(
        "<h2>Systems</h2><table><tr><th>System</th><th>Platform</th><th>Last seen</th></tr>",
    );
    for name in g.system_names() {
        let row = db::system(g.db(), name).await?;
        let (platform, seen) = match row {
            Some(s) => (s.platform, time::rfc3339(s.last_seen)),
            None => ("—".to_string(), "never".to_string()),
        };
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(name),
            escape(&platform),
            escape(&seen)
        );
    }
    body.push_str("</table>");
    body.push_str(&crate::systems_view::section(&g, &user).await?);
    Ok(layout("orbitdock ground", &body).into_response())
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    user: String,
    password: String,
}

fn session_cookie(value: &str, max_age_s: i64) -> HeaderValue {
    let cookie =
        format!("{SESSION_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_s}");
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
}

async fn login(
    State(g): State<Ground>,
    ClientAddr(client): ClientAddr,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, ApiError> {
    let Ok(Form(form)) = form else {
        return Ok((
            StatusCode::BAD_REQUEST,
            login_page(Some("Enter a user and a password.")),
        )
            .into_response());
    };
    match auth::login(&g, &form.user, &form.password, client).await? {
        Login::Session(token) => {
            let mut r = Redirect::to("/").into_response();
            r.headers_mut().insert(
                header::SET_COOKIE,
                session_cookie(&token, limits::SESSION_MS / 1000),
            );
            Ok(r)
        }
        Login::Wrong => Ok((
            StatusCode::UNAUTHORIZED,
            login_page(Some("Wrong user or password.")),
        )
            .into_response()),
        Login::Throttled(r) => {
            let mut page = (
                StatusCode::TOO_MANY_REQUESTS,
                login_page(Some(&format!(
                    "Too many failed logins; try again in {} s.",
                    r.retry_after_secs()
                ))),
            )
                .into_response();
            page.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(r.retry_after_secs()));
            Ok(page)
        }
    }
}

async fn logout(State(g): State<Ground>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(token) = auth::cookie(&headers, SESSION_COOKIE) {
        auth::logout(&g, &token).await?;
    }
    let mut r = Redirect::to("/").into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, session_cookie("", 0));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
