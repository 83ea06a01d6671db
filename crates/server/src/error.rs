//! How admin errors become HTTP answers: one mapping for the API and the console.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use directory::admin::AdminError;
use directory::engine::EngineError;
use serde::Serialize;

/// The status an admin error answers with.
pub fn status_of(e: &AdminError) -> StatusCode {
    match e {
        AdminError::Invalid(_) => StatusCode::BAD_REQUEST,
        AdminError::NotFound(_) => StatusCode::NOT_FOUND,
        AdminError::Conflict(_) => StatusCode::CONFLICT,
        AdminError::CursorExpired(_) => StatusCode::GONE,
        AdminError::Forbidden(_) => StatusCode::FORBIDDEN,
        AdminError::Engine(EngineError::UnknownConnection(_)) => StatusCode::NOT_FOUND,
        AdminError::Engine(EngineError::Busy(_)) => StatusCode::CONFLICT,
        // A Feishu error while talking to Feishu on the admin's behalf: the upstream failed.
        AdminError::Engine(EngineError::Feishu(_)) => StatusCode::BAD_GATEWAY,
        AdminError::Engine(_) | AdminError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A stable machine-readable code for an admin error.
pub fn code_of(e: &AdminError) -> &'static str {
    match e {
        AdminError::Invalid(_) => "invalid_request",
        AdminError::NotFound(_) => "not_found",
        AdminError::Conflict(_) => "conflict",
        AdminError::CursorExpired(_) => "cursor_expired",
        AdminError::Forbidden(_) => "forbidden",
        AdminError::Engine(EngineError::UnknownConnection(_)) => "not_found",
        AdminError::Engine(EngineError::Busy(_)) => "conflict",
        AdminError::Engine(EngineError::Feishu(_)) => "feishu_error",
        AdminError::Engine(_) | AdminError::Store(_) => "internal_error",
    }
}

/// Every error body of the HTTP side: `{"error": {"code": …, "message": …, "fix": …}}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, for scripts: `unauthorized`, `not_found`, `invalid_request`, …
    pub code: String,
    /// What failed, for people.
    pub message: String,
    /// What to do about it, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// An error answer: status plus [`ErrorBody`].
#[derive(Debug, Clone)]
pub struct HttpError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl HttpError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                error: ErrorDetail {
                    code: code.to_owned(),
                    message: message.into(),
                    fix: None,
                },
            },
        }
    }

    pub fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.body.error.fix = Some(fix.into());
        self
    }
}

impl From<AdminError> for HttpError {
    fn from(e: AdminError) -> Self {
        let status = status_of(&e);
        if status.is_server_error() && status != StatusCode::BAD_GATEWAY {
            tracing::error!(error = %e, "admin operation failed");
        }
        let fix = match &e {
            AdminError::Engine(EngineError::Feishu(f)) => f.fix().map(str::to_owned),
            _ => None,
        };
        let mut out = Self::new(status, code_of(&e), e.to_string());
        out.body.error.fix = fix;
        out
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}
