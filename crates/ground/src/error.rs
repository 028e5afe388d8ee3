use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::operation::Diagnostic;
use crate::preflight_check::PreflightFinding;

/// An error of the ground segment outside a request: opening the database, binding a link
/// endpoint, creating a user. Opaque; [`Error::kind`] says what sort it is.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Error(Repr);

/// What sort of [`Error`] happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file system or a socket failed.
    Io,
    /// The database failed or could not be migrated.
    Database,
    /// An argument was not acceptable (a bad user name, a duplicate system).
    InvalidInput,
}

#[derive(Debug, thiserror::Error)]
enum Repr {
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// What sort of error this is.
    pub fn kind(&self) -> ErrorKind {
        match &self.0 {
            Repr::Io(_) | Repr::Internal(_) => ErrorKind::Io,
            Repr::Database(_) | Repr::Migrate(_) => ErrorKind::Database,
            Repr::Invalid(_) => ErrorKind::InvalidInput,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        Error(Repr::Invalid(message.into()))
    }

    pub(crate) fn internal(message: impl Into<String>) -> Error {
        Error(Repr::Internal(message.into()))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error(Repr::Io(e))
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Error {
        Error(Repr::Database(e))
    }
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(e: sqlx::migrate::MigrateError) -> Error {
        Error(Repr::Migrate(e))
    }
}

/// Every way an HTTP request can fail. Renders as an [`api::ErrorBody`] (`{"error": {"code",
/// "message", "diagnostics"?, "preflight"?}}`) with the matching status (see `docs/api.md`).
/// Internal errors are logged and answered with a generic message.
#[derive(Debug)]
#[non_exhaustive]
pub enum ApiError {
    /// 400: the request is malformed or names something invalid.
    BadRequest(String),
    /// 400: an operation failed validation.
    Invalid {
        /// A one-line summary.
        message: String,
        /// Every problem found, with its position.
        diagnostics: Vec<Diagnostic>,
    },
    /// 400: preflight found errors in what an execution would build or load onboard.
    Preflight {
        /// A one-line summary naming the first error.
        message: String,
        /// Every finding (errors, warnings and infos), in task order.
        findings: Vec<PreflightFinding>,
    },
    /// 401: no token, or a bad or expired one.
    Unauthorized,
    /// 401: a login whose user or password is wrong.
    WrongCredentials,
    /// 403: another tenant's resource.
    Forbidden(String),
    /// 404: nothing there (or nothing the caller may know about).
    NotFound(String),
    /// 408: the request's body did not keep coming (see `docs/api.md`, "Timeouts").
    RequestTimeout(String),
    /// 409: the name is taken.
    Conflict(String),
    /// 413: the body or upload is too large.
    TooLarge(String),
    /// 422: the request is well formed but cannot be answered from what the ground knows (a
    /// system's elements too old for the time asked about, or a decayed orbit).
    Unprocessable(String),
    /// 429: too many failed logins; the answer carries `Retry-After`.
    TooManyRequests {
        /// Which lock, and for how long.
        message: String,
        /// When a login may be tried again.
        retry_after: std::time::Duration,
    },
    /// 500: something broke; the detail is logged, not shown.
    Internal(Error),
}

impl ApiError {
    pub(crate) fn bad(message: impl Into<String>) -> ApiError {
        ApiError::BadRequest(message.into())
    }

    pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::NotFound(message.into())
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::Forbidden(message.into())
    }

    pub(crate) fn internal(message: impl Into<String>) -> ApiError {
        ApiError::Internal(Error::internal(message))
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::Invalid { .. } | ApiError::Preflight { .. } => {
                StatusCode::BAD_REQUEST
            }
            ApiError::Unauthorized | ApiError::WrongCredentials => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code of the JSON body (`bad_request`, `forbidden`, ...).
    pub fn code(&self) -> api::ErrorCode {
        match self {
            ApiError::BadRequest(_) | ApiError::Invalid { .. } | ApiError::Preflight { .. } => {
                api::ErrorCode::BadRequest
            }
            ApiError::Unauthorized | ApiError::WrongCredentials => api::ErrorCode::Unauthorized,
            ApiError::Forbidden(_) => api::ErrorCode::Forbidden,
            ApiError::NotFound(_) => api::ErrorCode::NotFound,
            ApiError::Conflict(_) => api::ErrorCode::Conflict,
            ApiError::RequestTimeout(_) => api::ErrorCode::RequestTimeout,
            ApiError::TooLarge(_) => api::ErrorCode::TooLarge,
            ApiError::TooManyRequests { .. } => api::ErrorCode::TooManyRequests,
            ApiError::Unprocessable(_) => api::ErrorCode::Unprocessable,
            ApiError::Internal(_) => api::ErrorCode::Internal,
        }
    }

    /// The message shown to the caller.
    pub fn message(&self) -> String {
        match self {
            ApiError::BadRequest(m)
            | ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::Conflict(m)
            | ApiError::RequestTimeout(m)
            | ApiError::TooLarge(m)
            | ApiError::Unprocessable(m) => m.clone(),
            ApiError::Invalid { message, .. }
            | ApiError::Preflight { message, .. }
            | ApiError::TooManyRequests { message, .. } => message.clone(),
            ApiError::Unauthorized => "missing, invalid or expired token".to_string(),
            ApiError::WrongCredentials => "wrong user or password".to_string(),
            ApiError::Internal(_) => "internal error".to_string(),
        }
    }

    /// Builds the error an axum rejection stands for, keeping its status class.
    pub(crate) fn from_rejection(status: StatusCode, text: String) -> ApiError {
        match status {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(text),
            s if s.is_server_error() => ApiError::internal(text),
            _ => ApiError::BadRequest(text),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(e) = &self {
            tracing::error!(error = %e, "request failed");
        }
        let body = api::ErrorBody {
            error: api::ErrorDetail {
                code: self.code(),
                message: self.message(),
                diagnostics: match &self {
                    ApiError::Invalid { diagnostics, .. } => {
                        Some(diagnostics.iter().map(Diagnostic::to_api).collect())
                    }
                    _ => None,
                },
                preflight: match &self {
                    ApiError::Preflight { findings, .. } => {
                        Some(findings.iter().map(PreflightFinding::to_api).collect())
                    }
                    _ => None,
                },
            },
        };
        let mut r = (self.status(), Json(body)).into_response();
        match &self {
            ApiError::TooManyRequests { retry_after, .. } => {
                let secs = retry_after.as_secs_f64().ceil() as u64;
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            // The rest of the body was not read: the connection cannot serve another request.
            ApiError::RequestTimeout(_) => {
                r.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        r
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        ApiError::Internal(e)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> ApiError {
        ApiError::Internal(e.into())
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> ApiError {
        ApiError::Internal(e.into())
    }
}

macro_rules! rejection {
    ($($t:ty),*) => {$(
        impl From<$t> for ApiError {
            fn from(r: $t) -> ApiError {
                ApiError::from_rejection(r.status(), r.body_text())
            }
        }
    )*};
}

rejection!(
    axum::extract::rejection::JsonRejection,
    axum::extract::rejection::QueryRejection,
    axum::extract::rejection::PathRejection,
    axum::extract::rejection::StringRejection,
    axum::extract::rejection::FormRejection,
    axum::extract::multipart::MultipartRejection
);

#[cfg(test)]
mod tests {
    use super::*;

    async fn render(e: ApiError) -> (StatusCode, serde_json::Value) {
        let r = e.into_response();
        let status = r.status();
        let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn internal_errors_say_nothing_more() {
        let (status, body) = render(ApiError::internal("disk on fire at /secret/path")).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "internal", "message": "internal error"}})
        );
        let (status, body) = render(ApiError::WrongCredentials).await;
        assert_eq!(
            (status, body),
            (
                StatusCode::UNAUTHORIZED,
                serde_json::json!({"error": {"code": "unauthorized", "message": "wrong user or password"}})
            )
        );
        let (status, body) = render(ApiError::TooLarge("big".into())).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::PAYLOAD_TOO_LARGE, Some("too_large"))
        );
    }
}
