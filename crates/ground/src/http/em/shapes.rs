//! Clustergate-2's JSON shapes for the EM API (reference §4), as serde types: what CG2 client
//! scripts read. The CLI never reads them, so they live here rather than in the `api` crate.
//!
//! Every answer may carry `execution`, the id of the execution the call became (our addition;
//! CG2 clients ignore what they do not read).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::em::CallError;
use crate::error::ApiError;

/// A success: `{"message", "data"?}`.
#[derive(Debug, Serialize)]
pub(super) struct Reply<T: Serialize> {
    pub(super) message: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) data: Option<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) execution: Option<String>,
}

/// A success with only a message.
pub(super) fn done(message: &'static str, execution: Option<String>) -> Json<Reply<()>> {
    Json(Reply {
        message,
        data: None,
        execution,
    })
}

/// A success with data.
pub(super) fn with_data<T: Serialize>(
    message: &'static str,
    data: T,
    execution: Option<String>,
) -> Json<Reply<T>> {
    Json(Reply {
        message,
        data: Some(data),
        execution,
    })
}

/// `POST /auth/`: a token pair.
#[derive(Debug, Serialize)]
pub(super) struct Tokens {
    pub(super) refresh: String,
    pub(super) access: String,
}

/// `POST /auth/refresh`: a new access token.
#[derive(Debug, Serialize)]
pub(super) struct Access {
    pub(super) access: String,
}

/// `data` of `/em/files/uplink`.
#[derive(Debug, Serialize)]
pub(super) struct Uplinked {
    pub(super) file_count: usize,
    pub(super) total_size_kb: f64,
}

/// One entry of `/em/files/list`: a file, or a directory with its `contents`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct FileNode {
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) name: String,
    /// Bytes, as a string (a directory: the bytes of everything under it).
    pub(super) size: String,
    /// `YYYY-MM-DD-HH-MM`, UTC.
    pub(super) time: String,
    /// A signed 64-bit number that changes when the entry does (size or time).
    pub(super) hash: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) contents: Option<Vec<FileNode>>,
}

/// `data` of `/em/pod/status`: the pod's container state, as Kubernetes writes it.
#[derive(Debug, Serialize)]
pub(super) struct PodStatus {
    pub(super) state: ContainerState,
    /// The last lines the pod printed (our addition: CG2 keeps no pod output).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) log_tail: Vec<String>,
}

/// A Kubernetes container state: exactly one of `waiting`, `running`, `terminated`.
#[derive(Debug, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum ContainerState {
    Waiting {
        reason: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    Running {
        #[serde(rename = "startedAt")]
        started_at: String,
    },
    Terminated {
        #[serde(rename = "exitCode")]
        exit_code: i64,
        reason: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        #[serde(rename = "startedAt", skip_serializing_if = "Option::is_none")]
        started_at: Option<String>,
        #[serde(rename = "finishedAt", skip_serializing_if = "Option::is_none")]
        finished_at: Option<String>,
    },
}

/// One node of `/em/nodes/status`.
#[derive(Debug, Serialize)]
pub(super) struct Node {
    pub(super) name: &'static str,
    /// `"True"` when pods can be scheduled on it.
    pub(super) status: &'static str,
}

/// One PVC of `/em/pvc/list`.
#[derive(Debug, Serialize)]
pub(super) struct Pvc {
    pub(super) name: String,
}

/// An EM API error: `{"error": NAME, "message", "log_tail"?}` with its status.
#[derive(Debug)]
pub(super) struct EmError {
    status: StatusCode,
    body: Box<ErrorBody>,
}

#[derive(Debug, Serialize)]
struct ErrorBody {
    error: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    log_tail: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    execution: Option<String>,
    /// The task's error as the execution records it (our addition).
    #[serde(skip_serializing_if = "Option::is_none")]
    cause: Option<api::TaskError>,
}

impl EmError {
    pub(super) fn new(status: StatusCode, error: &'static str, message: impl Into<String>) -> Self {
        EmError {
            status,
            body: Box::new(ErrorBody {
                error,
                message: message.into(),
                log_tail: None,
                execution: None,
                cause: None,
            }),
        }
    }

    /// `400 INVALID_REQUEST`: a missing or malformed parameter.
    pub(super) fn invalid(message: impl Into<String>) -> EmError {
        EmError::new(StatusCode::BAD_REQUEST, "INVALID_REQUEST", message)
    }

    /// `500 INTERNAL_ERROR`; the cause is logged, not shown.
    pub(super) fn internal(cause: impl std::fmt::Display) -> EmError {
        tracing::error!(error = %cause, "EM API request failed");
        EmError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            "internal error",
        )
    }

    pub(super) fn execution(mut self, id: &str) -> EmError {
        self.body.execution = Some(id.to_string());
        self
    }

    pub(super) fn log_tail(mut self, lines: Vec<String>) -> EmError {
        self.body.log_tail = Some(lines);
        self
    }

    pub(super) fn cause(mut self, error: Option<api::TaskError>) -> EmError {
        self.body.cause = error;
        self
    }

    /// The status (tests).
    #[cfg(test)]
    pub(super) fn status(&self) -> StatusCode {
        self.status
    }

    /// The error's name (tests).
    #[cfg(test)]
    pub(super) fn name(&self) -> &'static str {
        self.body.error
    }
}

impl IntoResponse for EmError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

impl From<ApiError> for EmError {
    fn from(e: ApiError) -> EmError {
        let status = e.status();
        let name = match &e {
            ApiError::Internal(cause) => return EmError::internal(cause),
            ApiError::BadRequest(_) | ApiError::Invalid { .. } | ApiError::Preflight { .. } => {
                "INVALID_REQUEST"
            }
            ApiError::Unauthorized | ApiError::WrongCredentials => "UNAUTHORIZED",
            ApiError::Forbidden(_) => "FORBIDDEN",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::Conflict(_) => "CONFLICT",
            ApiError::TooLarge(_) => "TOO_LARGE",
            ApiError::Unprocessable(_) => "UNPROCESSABLE",
            ApiError::RequestTimeout(_) => "REQUEST_TIMEOUT",
            ApiError::TooManyRequests { .. } => "TOO_MANY_REQUESTS",
        };
        // A generated operation that does not validate names the caller's value in its first
        // problem; the rest of the summary is about a YAML the caller never wrote.
        let message = match &e {
            ApiError::Invalid { diagnostics, .. } => diagnostics
                .first()
                .map_or_else(|| e.message(), |d| d.message.clone()),
            _ => e.message(),
        };
        EmError::new(status, name, message)
    }
}

impl From<CallError> for EmError {
    fn from(e: CallError) -> EmError {
        match e {
            CallError::Busy(m) => EmError::new(StatusCode::LOCKED, "LOCKED", m),
            CallError::Timeout { execution, waited } => EmError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "TIMEOUT",
                format!(
                    "the execution did not end within {}; it goes on: see /api/v1/executions/{execution}",
                    humantime::format_duration(waited)
                ),
            )
            .execution(&execution),
            CallError::Api(e) => e.into(),
        }
    }
}

impl From<sqlx::Error> for EmError {
    fn from(e: sqlx::Error) -> EmError {
        EmError::internal(e)
    }
}

/// A refused credential, as Django REST Framework words it: `{"detail", "code"?}`.
#[derive(Debug)]
pub(super) struct AuthFailure {
    status: StatusCode,
    body: Detail,
}

#[derive(Debug, Serialize)]
struct Detail {
    detail: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'static str>,
}

impl AuthFailure {
    /// No `Authorization: Bearer` header.
    pub(super) fn missing() -> AuthFailure {
        AuthFailure::unauthorized("Authentication credentials were not provided.", None)
    }

    /// A token that is not (or no longer) valid.
    pub(super) fn invalid_token() -> AuthFailure {
        AuthFailure::unauthorized(
            "Given token not valid for any token type",
            Some("token_not_valid"),
        )
    }

    /// A refresh token that is not valid.
    pub(super) fn invalid_refresh() -> AuthFailure {
        AuthFailure::unauthorized("Token is invalid or expired", Some("token_not_valid"))
    }

    /// A wrong user or password.
    pub(super) fn wrong_credentials() -> AuthFailure {
        AuthFailure::unauthorized("No active account found with the given credentials", None)
    }

    fn unauthorized(detail: &'static str, code: Option<&'static str>) -> AuthFailure {
        AuthFailure {
            status: StatusCode::UNAUTHORIZED,
            body: Detail { detail, code },
        }
    }
}

impl IntoResponse for AuthFailure {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}
