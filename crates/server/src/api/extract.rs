//! Extractors of the admin API. Each answers a bad request with the JSON error body (never
//! axum's plain-text rejections), naming the field at fault.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use directory::admin::{Admin, Refused};
use directory::credentials::{Scope, ServiceCredential};
use directory::ids::PoolId;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::HttpError;

/// Where the admin token comes from, for every 401.
const TOKEN_FIX: &str = "Send `Authorization: Bearer <admin token>` (or, on the routes that take one, a service credential of the pool: docs/service-credentials.md). The admin token is the value of ORGSYNC_ADMIN_TOKEN, or the token `orgsync serve` printed at its first start (only its hash is kept in the data directory: to replace a lost token, set ORGSYNC_ADMIN_TOKEN and restart)";

/// An authenticated admin request: the bearer token matched. Always the first argument of a
/// protected handler, so a missing token answers 401 before any other check.
pub struct Authed(pub Arc<Admin>);

fn unauthorized(message: &str) -> Response {
    let error =
        HttpError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).with_fix(TOKEN_FIX);
    (
        [(
            header::WWW_AUTHENTICATE,
            r#"Bearer realm="orgsync admin API""#,
        )],
        error,
    )
        .into_response()
}

/// The bearer token of a request, or the 401 that says what is wrong with the header.
fn bearer(parts: &Parts) -> Result<&str, &'static str> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Err("this endpoint needs a token; no Authorization header was sent");
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or("the Authorization header is not `Bearer <token>`")
}

/// A refused service token: 401, or 503 when it could not be checked.
fn refusal(refused: Refused) -> Response {
    match refused {
        Refused::Invalid(why) => unauthorized(why),
        Refused::Unavailable => HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            refused.to_string(),
        )
        .with_fix("try again shortly; if it persists, check the database (GET /readyz)")
        .into_response(),
    }
}

fn forbidden(message: String) -> HttpError {
    HttpError::new(StatusCode::FORBIDDEN, "forbidden", message).with_fix(
        "use the admin token, or a service credential of this pool with the scope named \
         (docs/service-credentials.md)",
    )
}

impl FromRequestParts<AppState> for Authed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match Caller::from_request_parts(parts, state).await? {
            Caller::Admin(admin) => Ok(Self(admin)),
            Caller::Service(_, c) => Err(forbidden(format!(
                "this endpoint needs the admin token; service credential {:?} may only use its \
                 own pool's directory, change feed and webhooks, with its scopes",
                c.name
            ))
            .into_response()),
        }
    }
}

/// Who called a route that service credentials may use too: the admin, or a downstream
/// system with a credential of one pool. Always the first argument of such a handler.
pub enum Caller {
    Admin(Arc<Admin>),
    Service(Arc<Admin>, ServiceCredential),
}

impl Caller {
    /// The admin operations, when the caller may use `scope` on `pool_id`: the admin always;
    /// a credential in its own pool with the scope (403 otherwise).
    pub fn reads(&self, pool_id: &PoolId, scope: Scope) -> Result<&Arc<Admin>, HttpError> {
        match self {
            Self::Admin(admin) => Ok(admin),
            Self::Service(admin, c) if &c.pool_id == pool_id && c.allows(scope) => Ok(admin),
            Self::Service(_, c) if &c.pool_id != pool_id => Err(forbidden(format!(
                "service credential {:?} belongs to another user pool",
                c.name
            ))),
            Self::Service(_, c) => Err(forbidden(format!(
                "service credential {:?} lacks the scope `{scope}`",
                c.name
            ))),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).map_err(unauthorized)?;
        if state.settings.admin_token.verify(token) {
            return Ok(Self::Admin(state.admin.clone()));
        }
        match state.admin.authenticate_service(token).await {
            Some(Ok(c)) => Ok(Self::Service(state.admin.clone(), c)),
            Some(Err(refused)) => Err(refusal(refused)),
            None => Err(unauthorized(
                "the token is neither the admin token nor a service credential",
            )),
        }
    }
}

/// A JSON request body; unknown fields are rejected by the types themselves.
pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> HttpError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the request body must be JSON",
        )
        .with_fix("send the header `Content-Type: application/json`"),
        JsonRejection::JsonDataError(e) => HttpError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("invalid JSON body: {}", e.body_text()),
        ),
        JsonRejection::JsonSyntaxError(e) => HttpError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("the body is not valid JSON: {}", e.body_text()),
        ),
        other => {
            let status = other.status();
            let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "payload_too_large"
            } else {
                "invalid_request"
            };
            HttpError::new(status, code, other.body_text())
        }
    }
}

/// Query parameters.
pub struct QueryParams<T>(pub T);

impl<T, S> FromRequestParts<S> for QueryParams<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(query_rejection(rejection)),
        }
    }
}

fn query_rejection(rejection: QueryRejection) -> HttpError {
    HttpError::new(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        format!("invalid query parameters: {}", rejection.body_text()),
    )
}

/// Path parameters.
pub struct PathParams<T>(pub T);

impl<T, S> FromRequestParts<S> for PathParams<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(path_rejection(rejection)),
        }
    }
}

fn path_rejection(rejection: PathRejection) -> HttpError {
    let status = match rejection.status() {
        s if s.is_server_error() => s,
        _ => StatusCode::BAD_REQUEST,
    };
    let code = if status.is_server_error() {
        "internal_error"
    } else {
        "invalid_request"
    };
    HttpError::new(
        status,
        code,
        format!("invalid path: {}", rejection.body_text()),
    )
}

/// An orgsync id from the path or the query: 24 lowercase hex digits.
pub fn id<T: From<String>>(field: &str, raw: &str) -> Result<T, HttpError> {
    if directory::ids::is_id(raw) {
        Ok(T::from(raw.to_owned()))
    } else {
        Err(HttpError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("{field} {raw:?} is not an orgsync id: ids are 24 lowercase hex digits"),
        ))
    }
}

/// An optional id from the query; empty counts as absent.
pub fn opt_id<T: From<String>>(field: &str, raw: Option<&str>) -> Result<Option<T>, HttpError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(raw) => id(field, raw).map(Some),
    }
}

/// An optional enum value from the query; empty counts as absent. An unknown value answers
/// 400 listing the allowed ones.
pub fn opt_enum<T>(
    field: &str,
    raw: Option<&str>,
    parse: impl Fn(&str) -> Option<T>,
    allowed: &[&str],
) -> Result<Option<T>, HttpError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(raw) => parse(raw).map(Some).ok_or_else(|| {
            HttpError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!(
                    "{field} {raw:?} is not allowed: use one of {}",
                    allowed.join(", ")
                ),
            )
        }),
    }
}

/// An optional free-text query value; empty counts as absent.
pub fn opt_text(raw: Option<String>) -> Option<String> {
    raw.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}
