//! Clustergate-2's EM API (reference §4; `docs/em-api.md`), beside our own API, so that CG2's
//! EM client scripts run unchanged: `POST /auth/` and `/auth/refresh`, `/em/files/*`,
//! `/em/pod/*`, `/em/nodes/status` and `/em/pvc/*`, with CG2's parameters (query string, form,
//! multipart or JSON: [`params::Params`]), JSON shapes and error names (`shapes`).
//!
//! Handlers are thin: they read CG2's parameters, describe the call as an operation
//! ([`em::Call`]: one task of our own task types) and hand it to the `em` use case, which
//! applies and starts it through `executor::start` and waits for its end; then they map the task's
//! outcome to CG2's answer. Two endpoints read what the EM reported instead of running
//! anything: `/em/pod/status` (the pod's task) and `/em/nodes/status` (the agent's last hello).
//!
//! Every route is served with and without a trailing slash, as Django serves CG2's.

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{MethodRouter, get, post};
use wire::TaskState;
use wire::names::{VolumeName, VolumePath};

use self::params::Params;
use self::shapes::EmError;
use crate::Ground;
use crate::em::{self, Ended, TaskEnd};

mod auth;
mod files;
mod params;
mod pods;
mod shapes;

/// How long a short call (a listing, a delete) may take.
const SHORT: Duration = Duration::from_secs(120);
/// How long a call that moves files (uplink, downlink) or loads an archive may take.
const TRANSFER: Duration = Duration::from_secs(30 * 60);
/// How long a build may take: its task's default `max_duration`, plus a margin for the rest.
const BUILD: Duration = Duration::from_secs(60 * 60);
/// Room for a multipart form's framing around the files of an uplink.
const FORM_FRAMING: usize = 256 << 20;

/// The EM API's routes.
pub(super) fn router(ground: &Ground) -> Router<Ground> {
    let uplink_body = usize::try_from(ground.em().uplink_bytes())
        .unwrap_or(usize::MAX)
        .saturating_add(FORM_FRAMING);
    let routes: Vec<(&str, MethodRouter<Ground>)> = vec![
        ("/auth", post(auth::token)),
        ("/auth/refresh", post(auth::refresh)),
        (
            "/em/files/uplink",
            post(files::uplink).layer(DefaultBodyLimit::max(uplink_body)),
        ),
        ("/em/files/list", get(files::list).post(files::list)),
        (
            "/em/files/downlink",
            get(files::downlink).post(files::downlink),
        ),
        (
            "/em/files/delete",
            post(files::delete).delete(files::delete),
        ),
        ("/em/pod/image/build", post(pods::build)),
        ("/em/pod/image/load", post(pods::load)),
        ("/em/image/load", post(pods::load)),
        ("/em/pod/image/list", get(pods::images).post(pods::images)),
        ("/em/image/list", get(pods::images).post(pods::images)),
        ("/em/pod/namespace/create", post(pods::namespace_create)),
        ("/em/pod/run", post(pods::pod_run)),
        ("/em/pod/execution", post(pods::pod_run)),
        ("/em/pod/status", get(pods::status).post(pods::status)),
        ("/em/nodes/status", get(pods::nodes).post(pods::nodes)),
        ("/em/pvc/list", get(files::pvcs).post(files::pvcs)),
        (
            "/em/pvc/delete",
            post(files::pvc_delete).delete(files::pvc_delete),
        ),
    ];
    let mut router = Router::new();
    for (path, route) in routes {
        router = router
            .route(&format!("{path}/"), route.clone())
            .route(path, route);
    }
    router
}

/// Runs `call` on the EM, held for it, and waits at most `bound` for its end.
async fn run(g: &Ground, user: &str, call: em::Call, bound: Duration) -> Result<Ended, EmError> {
    let _held = em::hold(g, user).await?;
    let id = em::start(g, user, &call).await?;
    Ok(em::wait(g, &id, bound).await?)
}

/// The PVC (our volume) a request names (reference §4.2): `pvc_name`; else the one of its
/// `pod_name`, `<user>-<pod>-pvc`; else the user's default, `<user>-pvc`.
fn pvc(user: &str, p: &Params) -> Result<String, EmError> {
    let name = match (p.text("pvc_name")?, p.text("pod_name")?) {
        (Some(pvc), _) => pvc,
        (None, Some(pod)) => format!("{user}-{pod}-pvc"),
        (None, None) => format!("{user}-pvc"),
    };
    VolumeName::new(&name).map_err(|e| EmError::invalid(e.to_string()))?;
    Ok(name)
}

/// A path in a PVC, from parameter `name`: one that climbs out (`..`) is illegal (`403
/// ILLEGAL_PATH`), one that is otherwise malformed bad (`400 INVALID_PATH`).
fn volume_path(name: &str, s: &str) -> Result<VolumePath, EmError> {
    if s.split(['/', '\\']).any(|c| c == "..") {
        return Err(EmError::new(
            StatusCode::FORBIDDEN,
            "ILLEGAL_PATH",
            format!("'{name}' leaves the PVC: '..' is not allowed"),
        ));
    }
    VolumePath::parse(s).map_err(|e| {
        EmError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_PATH",
            format!("'{name}' is not a valid path: {}", e.reason()),
        )
    })
}

/// A path naming one file or folder (not the root, no wildcard).
fn one_path(name: &str, s: &str) -> Result<VolumePath, EmError> {
    let path = volume_path(name, s)?;
    let bad = |why: &str| EmError::new(StatusCode::BAD_REQUEST, "INVALID_PATH", why.to_string());
    if path.is_root() {
        return Err(bad(&format!("'{name}' names the PVC's root, not a file")));
    }
    if s.contains(['*', '?', '[']) {
        return Err(bad(&format!(
            "'{name}' names one file; wildcards are for the downlink task of an operation"
        )));
    }
    Ok(path)
}

/// The first task when the execution succeeded; else its failure as `500 EXECUTION_FAILED`.
fn succeeded(ended: &Ended) -> Result<&TaskEnd, EmError> {
    match ended.first() {
        Some(t) if ended.state == TaskState::Success && t.state == TaskState::Success => Ok(t),
        _ => Err(failed(ended)),
    }
}

/// The first task's error, when it failed.
fn task_error(ended: &Ended) -> Option<&api::TaskError> {
    ended.first().and_then(|t| t.error.as_ref())
}

/// An execution that failed where it was not expected to: `500 EXECUTION_FAILED`, with the
/// task's error as its cause.
fn failed(ended: &Ended) -> EmError {
    let cause = task_error(ended).cloned();
    let message = cause.as_ref().map_or_else(
        || "the execution failed".to_string(),
        |e| format!("{} {}: {}", e.code, e.name, e.message),
    );
    EmError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "EXECUTION_FAILED",
        message,
    )
    .execution(&ended.execution)
    .cause(cause)
}

/// Whether the task failed because a file was not there (Clustergate-2's own words: `4
/// EXECUTION_ERROR File not found: x`).
fn not_found(ended: &Ended) -> bool {
    task_error(ended).is_some_and(|e| e.code == 4 && e.message.starts_with("File not found"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pvcs_follow_pvc_name_then_pod_name_then_the_default() {
        let p = |pairs: &[(&str, &str)]| {
            Params::default().with_fields(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        };
        assert_eq!(pvc("alice", &p(&[])).unwrap(), "alice-pvc");
        assert_eq!(
            pvc("alice", &p(&[("pod_name", "test")])).unwrap(),
            "alice-test-pvc"
        );
        assert_eq!(
            pvc("alice", &p(&[("pod_name", "test"), ("pvc_name", "data")])).unwrap(),
            "data"
        );
        assert_eq!(
            pvc("alice", &p(&[("pvc_name", "Bad/Name")]))
                .unwrap_err()
                .status(),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn paths_that_climb_out_are_illegal() {
        assert_eq!(volume_path("p", "a/b.txt").unwrap().as_str(), "a/b.txt");
        let e = volume_path("p", "../etc/passwd").unwrap_err();
        assert_eq!(
            (e.status(), e.name()),
            (StatusCode::FORBIDDEN, "ILLEGAL_PATH")
        );
        let e = volume_path("p", "a\u{0}b").unwrap_err();
        assert_eq!(
            (e.status(), e.name()),
            (StatusCode::BAD_REQUEST, "INVALID_PATH")
        );
        assert_eq!(one_path("p", "/").unwrap_err().name(), "INVALID_PATH");
        assert_eq!(
            one_path("p", "out/*.txt").unwrap_err().name(),
            "INVALID_PATH"
        );
    }
}
