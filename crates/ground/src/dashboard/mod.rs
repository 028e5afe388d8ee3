//! The dashboard: server-rendered pages (maud templates, which escape every value they insert),
//! a navigation bar, and small hand-written scripts (`dashboard.js`: folder upload with
//! progress, operation validate/save/execute through the API, an execution's page followed live
//! by server-sent events). Signed out, every page shows the login form.
//!
//! A signed-in browser holds the `HttpOnly; SameSite=Strict` session cookie. Every write it makes
//! carries the session's CSRF token: the forms here as a hidden `csrf` field, the scripts as the
//! `X-CSRF-Token` header, which the API requires of any cookie-authenticated write
//! ([`crate::auth::AuthUser`]). The cookie gets `Secure` when the request came over HTTPS: the
//! ground's own TLS (`--tls-cert`, `--tls-key`), or a TLS-terminating proxy's
//! `X-Forwarded-Proto: https`. Over plain HTTP (the default, on loopback) it has none, since a
//! browser would never send a `Secure` cookie back there.

mod approvals;
mod execution;
mod pages;
mod uplink_plan;
mod users;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;

use crate::Ground;
use crate::auth::{self, ClientAddr, Login, SESSION_COOKIE};
use crate::config::limits;
use crate::error::ApiError;

/// The scripts of the pages: upload, an operation's editor, an execution followed live.
const SCRIPT: &str = include_str!("dashboard.js");

pub(crate) fn router() -> Router<Ground> {
    Router::new()
        .route("/", get(pages::home))
        .route("/namespaces", get(pages::namespaces))
        .route("/namespaces/{ns}", get(pages::namespace))
        .route("/namespaces/{ns}/delete", post(pages::delete_file))
        .route("/operations", get(pages::operations))
        .route("/operations/{ns}/{id}", get(pages::operation))
        .route("/executions", get(pages::executions))
        .route("/executions/{id}", get(execution::execution))
        .route("/executions/{id}/live", get(execution::live))
        .route("/executions/{id}/approve", post(approvals::approve))
        .route("/executions/{id}/reject", post(approvals::reject))
        .route("/executions/{id}/cancel", post(approvals::cancel))
        .route("/systems", get(pages::systems))
        .route("/users", get(users::users))
        .route("/users/{name}/disable", post(users::disable))
        .route("/users/{name}/enable", post(users::enable))
        .route("/users/{name}/quota", post(users::set_quota))
        .route("/systems/{system}/volumes", get(pages::onboard))
        .route("/dashboard.js", get(script))
        .route("/login", post(login))
        .route("/logout", post(logout))
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

/// The signed-in caller of a page: the user, whether it is an operator, and the session's CSRF
/// token.
pub(crate) struct Viewer {
    pub(crate) user: String,
    pub(crate) operator: bool,
    pub(crate) csrf: String,
}

impl Viewer {
    /// `Err(403)` unless the viewer is an operator.
    pub(crate) fn operator_only(&self) -> Result<(), ApiError> {
        if self.operator {
            Ok(())
        } else {
            Err(auth::not_an_operator(&self.user))
        }
    }
}

/// The viewer, or `None` when the request carries no valid session cookie.
pub(crate) async fn viewer(g: &Ground, headers: &HeaderMap) -> Result<Option<Viewer>, ApiError> {
    let Some(token) = auth::cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let Some(user) = auth::user_for_token(g, &token).await? else {
        return Ok(None);
    };
    Ok(Some(Viewer {
        operator: auth::role(g, &user).await? == auth::Role::Operator,
        user,
        csrf: auth::csrf_token(&token),
    }))
}

/// Which page of the navigation bar is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Home,
    Namespaces,
    Operations,
    Executions,
    Systems,
    /// Operators only.
    Users,
}

const NAV: [(Nav, &str, &str); 5] = [
    (Nav::Home, "/", "Home"),
    (Nav::Namespaces, "/namespaces", "Namespaces"),
    (Nav::Operations, "/operations", "Operations"),
    (Nav::Executions, "/executions", "Executions"),
    (Nav::Systems, "/systems", "Systems"),
];

const STYLE: &str = "\
body{font-family:system-ui,sans-serif;margin:0;color:#222}\
main{margin:1.5rem 2rem;max-width:80rem}\
nav{background:#123;padding:.6rem 2rem;display:flex;gap:1.2rem;align-items:center}\
nav a{color:#cde;text-decoration:none}nav a.here{color:#fff;font-weight:bold}\
nav .who{margin-left:auto;color:#cde}nav form{display:inline}\
table{border-collapse:collapse;margin-bottom:2rem}\
th,td{border-bottom:1px solid #ddd;padding:.3rem .8rem;text-align:left;vertical-align:top}\
.SUCCESS,.COMPLETED{color:#070}.FAILED,.REJECTED{color:#b00}.RUNNING,.SCHEDULED{color:#05a}\
.AWAITING_APPROVAL,.CANCELLING{color:#a60}.CANCELLED{color:#555}\
.error{color:#b00}.warning{color:#a60}.info{color:#555}form.inline{display:inline}\
textarea{width:100%;font-family:ui-monospace,monospace;font-size:.9rem}\
pre{background:#f4f4f4;padding:.5rem;overflow-x:auto}progress{width:20rem}\
#upload{border:2px dashed #aab;padding:.2rem 1rem;max-width:50rem}#upload.over{background:#eef}\
.charts{display:flex;gap:2rem;flex-wrap:wrap}figure.chart{margin:0}figcaption{font-size:.9rem}";

/// A whole page: the navigation bar with the viewer and a sign-out button, then `body`.
pub(crate) fn page(title: &str, here: Nav, v: &Viewer, body: Markup) -> Response {
    document(
        title,
        Some(&v.csrf),
        html! {
            nav {
                @for (nav, href, label) in NAV {
                    a href=(href) class=[(nav == here).then_some("here")] { (label) }
                }
                @if v.operator {
                    a href="/users" class=[(here == Nav::Users).then_some("here")] { "Users" }
                }
                span.who {
                    "Signed in as " b { (v.user) } @if v.operator { " (operator)" } " "
                    form.inline method="post" action="/logout" {
                        input type="hidden" name="csrf" value=(v.csrf);
                        button { "Sign out" }
                    }
                }
            }
            main { (body) }
        },
    )
}

fn document(title: &str, csrf: Option<&str>, body: Markup) -> Response {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(c) = csrf { meta name="csrf-token" content=(c); }
                title { (title) }
                style { (PreEscaped(STYLE)) }
                script src="/dashboard.js" defer {}
            }
            body { (body) }
        }
    }
    .into_response()
}

fn login_page(message: Option<&str>) -> Response {
    document(
        "orbitdock — sign in",
        None,
        html! {
            main {
                h1 { "orbitdock ground" }
                @if let Some(m) = message { p.error { (m) } }
                form method="post" action="/login" {
                    p { label { "User " input name="user" autocomplete="username" required; } }
                    p { label { "Password " input name="password" type="password" autocomplete="current-password" required; } }
                    p { button type="submit" { "Sign in" } }
                }
            }
        },
    )
}

/// The login form, answered for a page asked for without a session.
pub(crate) fn signed_out() -> Response {
    login_page(None)
}

/// The viewer sending a form, its CSRF token `csrf` checked; `None` when signed out.
pub(crate) async fn form_viewer(
    g: &Ground,
    headers: &HeaderMap,
    csrf: &str,
) -> Result<Option<Viewer>, ApiError> {
    let Some(v) = viewer(g, headers).await? else {
        return Ok(None);
    };
    check_csrf(&v, csrf)?;
    Ok(Some(v))
}

/// Refuses a form whose `csrf` field is not the session's token.
pub(crate) fn check_csrf(v: &Viewer, sent: &str) -> Result<(), ApiError> {
    if auth::same_token(sent, &v.csrf) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "the form's CSRF token does not match the session: reload the page",
        ))
    }
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    user: String,
    password: String,
}

/// The session cookie; `Secure` when the request came over HTTPS.
fn session_cookie(value: &str, max_age_s: i64, https: bool) -> HeaderValue {
    let secure = if https { "; Secure" } else { "" };
    let cookie = format!(
        "{SESSION_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_s}{secure}"
    );
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
}

/// Whether the request came over HTTPS: the ground's own TLS, or a proxy that says so.
struct Https(bool);

impl<S: Send + Sync> FromRequestParts<S> for Https {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Https, Self::Rejection> {
        let own = parts.extensions.get::<crate::http::OverTls>().is_some();
        Ok(Https(own || forwarded_https(&parts.headers)))
    }
}

/// Whether a TLS-terminating proxy says the request came over HTTPS.
fn forwarded_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

async fn login(
    State(g): State<Ground>,
    ClientAddr(client): ClientAddr,
    Https(https): Https,
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
                session_cookie(&token, limits::SESSION_MS / 1000, https),
            );
            Ok(r)
        }
        Login::Wrong => Ok((
            StatusCode::UNAUTHORIZED,
            login_page(Some("Wrong user or password.")),
        )
            .into_response()),
        Login::Disabled => Ok((
            StatusCode::FORBIDDEN,
            login_page(Some(
                "This user is disabled; an operator can enable it again.",
            )),
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

/// A form that carries only its CSRF token.
#[derive(Debug, Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    pub(crate) csrf: String,
}

async fn logout(
    State(g): State<Ground>,
    Https(https): Https,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ApiError> {
    if let Some(v) = viewer(&g, &headers).await? {
        check_csrf(&v, &form.csrf)?;
        if let Some(token) = auth::cookie(&headers, SESSION_COOKIE) {
            auth::logout(&g, &token).await?;
        }
    }
    let mut r = Redirect::to("/").into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, session_cookie("", 0, https));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_secure_only_over_https() {
        let plain = session_cookie("t", 60, false);
        assert!(!plain.to_str().unwrap().contains("Secure"));
        let tls = session_cookie("t", 60, true);
        assert!(tls.to_str().unwrap().ends_with("; Secure"));
        assert!(tls.to_str().unwrap().contains("HttpOnly; SameSite=Strict"));
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-proto", HeaderValue::from_static("HTTPS"));
        assert!(forwarded_https(&h));
    }

    #[test]
    fn templates_escape_what_they_insert() {
        let m = html! { p { ("<script>'&'</script>") } };
        assert_eq!(
            m.into_string(),
            "<p>&lt;script&gt;'&amp;'&lt;/script&gt;</p>"
        );
    }
}
