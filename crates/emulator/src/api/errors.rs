//! Feishu's error answers. An [`ApiError`] becomes a response whose JSON body is written by
//! the outer middleware, which knows the request's log id (`error.log_id`).

use axum::response::{IntoResponse, Response};
use feishu::model::{ApiErrorDetail, FieldViolation, PermissionViolation};
use http::StatusCode;
use serde_json::{Value, json};

pub const MSG_NEED_TOKEN: &str =
    "Missing access token for authorization. Please make a request with token attached.";
pub const MSG_INVALID_TOKEN: &str =
    "Invalid access token for authorization. Please make a request with token attached.";

/// A non-zero `code` answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: i64,
    pub msg: String,
    /// Contact APIs add an `error` object (log id, troubleshooter, violations); the token
    /// endpoint and the throttling gateway answer with `code` and `msg` only.
    pub with_detail: bool,
    pub permission_violations: Vec<PermissionViolation>,
    pub field_violations: Vec<FieldViolation>,
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST)
}

impl ApiError {
    pub fn new(status: StatusCode, code: i64, msg: impl Into<String>) -> Self {
        Self {
            status,
            code,
            msg: msg.into(),
            with_detail: true,
            permission_violations: Vec::new(),
            field_violations: Vec::new(),
        }
    }

    fn bare(mut self) -> Self {
        self.with_detail = false;
        self
    }

    // ---- token endpoint (§1.2) ------------------------------------------------------

    pub fn invalid_param() -> Self {
        Self::new(StatusCode::OK, 10003, "invalid param").bare()
    }

    pub fn app_secret_invalid(http: u16) -> Self {
        Self::new(status(http), 10014, "app secret invalid").bare()
    }

    // ---- tokens on API calls (§3.2) -------------------------------------------------

    pub fn need_token(http: u16) -> Self {
        Self::new(status(http), 99991661, MSG_NEED_TOKEN)
    }

    pub fn invalid_token(http: u16) -> Self {
        Self::new(status(http), 99991663, MSG_INVALID_TOKEN)
    }

    pub fn malformed_token(http: u16) -> Self {
        Self::new(
            status(http),
            99991671,
            "Invalid token: must start with t-/u-",
        )
    }

    /// 99991672: one of `scopes` (API permissions) is required.
    pub fn scope_required(http: u16, scopes: &[&str]) -> Self {
        let mut err = Self::new(
            status(http),
            99991672,
            format!(
                "Access denied. One of the following scopes is required: [{}].",
                scopes.join(", ")
            ),
        );
        err.permission_violations = scopes
            .iter()
            .map(|s| PermissionViolation {
                kind: Some("action_scope_required".to_owned()),
                subject: Some((*s).to_owned()),
                description: Some(format!(
                    "The application needs the scope {s}; grant it in the developer console \
                     and publish a new version."
                )),
            })
            .collect();
        err
    }

    // ---- throttling and faults ------------------------------------------------------

    pub fn throttled() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            99991400,
            "request trigger frequency limit",
        )
        .bare()
    }

    pub fn internal_error() -> Self {
        Self::new(StatusCode::BAD_REQUEST, 40003, "internal error")
    }

    // ---- contact parameters and data (§3.2) -----------------------------------------

    /// 99992402: a parameter fails validation (unknown enum value, missing, not a number).
    pub fn field(field: &str, value: &str, description: &str) -> Self {
        let mut err = Self::new(StatusCode::BAD_REQUEST, 99992402, "field validation failed");
        err.field_violations = vec![FieldViolation {
            field: Some(field.to_owned()),
            value: Some(value.to_owned()),
            description: Some(description.to_owned()),
        }];
        err
    }

    pub fn no_dept_authority() -> Self {
        Self::new(StatusCode::FORBIDDEN, 40004, "no dept authority error")
    }

    pub fn page_size_invalid() -> Self {
        Self::new(StatusCode::BAD_REQUEST, 40011, "page size is invalid")
    }

    pub fn page_token_invalid() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            40012,
            "page token is invalid error",
        )
    }

    pub fn department_not_exist() -> Self {
        Self::new(StatusCode::BAD_REQUEST, 40015, "department not exist")
    }

    pub fn user_id_invalid() -> Self {
        Self::new(StatusCode::BAD_REQUEST, 41012, "user id invalid error")
    }

    pub fn no_user_authority() -> Self {
        Self::new(StatusCode::BAD_REQUEST, 41050, "no user authority error")
    }

    pub fn invalid_group_id() -> Self {
        Self::new(StatusCode::BAD_REQUEST, 42002, "invalid group_id")
    }

    pub fn no_group_authority() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            42009,
            "no user group authority error",
        )
    }

    pub fn invalid_member_type() -> Self {
        Self::new(StatusCode::BAD_REQUEST, 41074, "invalid member_type")
    }

    pub fn big_dept_no_recursion() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            43010,
            "big dept forbid recursion error",
        )
    }

    /// The JSON body, with `log_id` in the `error` object when this error carries one.
    pub fn body(&self, log_id: &str) -> Value {
        let mut body = json!({"code": self.code, "msg": self.msg});
        if self.with_detail {
            let detail = ApiErrorDetail {
                log_id: Some(log_id.to_owned()),
                troubleshooter: Some(format!(
                    "排查建议查看(Troubleshooting suggestions): \
                     https://open.feishu.cn/search?from=openapi&log_id={log_id}&code={}",
                    self.code
                )),
                details: None,
                permission_violations: (!self.permission_violations.is_empty())
                    .then(|| self.permission_violations.clone()),
                field_violations: (!self.field_violations.is_empty())
                    .then(|| self.field_violations.clone()),
            };
            body["error"] = serde_json::to_value(detail).unwrap_or(Value::Null);
        }
        body
    }
}

impl IntoResponse for ApiError {
    /// An empty response carrying the error; `server::finish` writes the body.
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        response.extensions_mut().insert(self);
        response
    }
}
