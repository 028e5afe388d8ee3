//! The body of every error answer.

use serde::{Deserialize, Serialize};

use crate::operations::{Diagnostic, PreflightFinding};

/// Every error answer: `{"error": {"code", "message", "diagnostics"?, "preflight"?}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong, for a program ([`ErrorDetail::code`]) and a person (the message).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// The stable kind of error; it matches the HTTP status.
    pub code: ErrorCode,
    /// What was wrong and where (`internal error` and nothing more for a 500).
    pub message: String,
    /// Every problem of an operation that failed validation; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<Vec<Diagnostic>>,
    /// Every finding of a preflight that refused to start an execution; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preflight: Option<Vec<PreflightFinding>>,
}

/// The `code` of an error, one per HTTP status the API answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the request is malformed or names something invalid.
    BadRequest,
    /// 401: no token, a bad or expired one, or wrong credentials.
    Unauthorized,
    /// 403: another tenant's resource.
    Forbidden,
    /// 404: nothing there, or nothing the caller may know about.
    NotFound,
    /// 408: the request's body stopped coming, or came too slowly.
    RequestTimeout,
    /// 409: the name is taken.
    Conflict,
    /// 413: the body or upload is too large.
    TooLarge,
    /// 422: well formed, but the ground cannot predict the answer (elements too old, say).
    Unprocessable,
    /// 429: too many failed logins; `Retry-After` says when to try again.
    TooManyRequests,
    /// 500: the ground broke; the cause is in its log.
    Internal,
}

impl ErrorCode {
    /// The code as the JSON writes it (`bad_request`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Unprocessable => "unprocessable",
            ErrorCode::TooManyRequests => "too_many_requests",
            ErrorCode::Internal => "internal",
        }
    }
}
