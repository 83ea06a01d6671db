//! The Open API surface: routes, the per-request gate (token → rate limit → faults) and
//! thin handlers that parse the request, lock the tenant and call [`contact`].

pub mod auth;
pub mod contact;
pub mod errors;
pub mod paging;
pub mod params;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, MatchedPath, Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use crate::faults::Fault;
use crate::ratelimit::Decision;
use crate::server::EmulatorState;
use contact::Cx;
use errors::ApiError;
use params::Params;

const CONTACT: &str = "/open-apis/contact/v3";

/// Every Open API route of the emulator (state still to be provided).
pub fn routes() -> Router<Arc<EmulatorState>> {
    Router::new()
        .route(
            "/open-apis/auth/v3/tenant_access_token/internal",
            post(auth::tenant_access_token),
        )
        .route(&format!("{CONTACT}/scopes"), get(scopes))
        // Static segments win over `{department_id}` in axum's router.
        .route(
            &format!("{CONTACT}/departments/batch"),
            get(departments_batch),
        )
        .route(
            &format!("{CONTACT}/departments/{{department_id}}"),
            get(department),
        )
        .route(
            &format!("{CONTACT}/departments/{{department_id}}/children"),
            get(children),
        )
        .route(
            &format!("{CONTACT}/users/find_by_department"),
            get(users_by_department),
        )
        .route(&format!("{CONTACT}/users/batch"), get(users_batch))
        .route(&format!("{CONTACT}/users/batch_get_id"), post(batch_get_id))
        .route(&format!("{CONTACT}/users/{{user_id}}"), get(user))
        .route(&format!("{CONTACT}/group/simplelist"), get(groups))
        .route(
            &format!("{CONTACT}/group/member_belong"),
            get(member_belong),
        )
        .route(&format!("{CONTACT}/group/{{group_id}}"), get(group))
        .route(
            &format!("{CONTACT}/group/{{group_id}}/member/simplelist"),
            get(group_members),
        )
}

/// `/open-apis/contact/v3/users/{user_id}` → `contact/v3/users/:user_id`: the key of rate
/// limits, faults and statistics (the same spelling the `feishu` client uses).
pub fn endpoint_key(matched_path: &str) -> String {
    matched_path
        .trim_start_matches("/open-apis/")
        .split('/')
        .map(
            |seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => format!(":{name}"),
                None => seg.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// The app a contact request is made for; extracting it runs the gate.
#[derive(Debug, Clone)]
pub struct Caller {
    pub app_id: String,
    pub endpoint: String,
}

impl FromRequestParts<Arc<EmulatorState>> for Caller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<EmulatorState>,
    ) -> Result<Self, Self::Rejection> {
        let endpoint = parts
            .extensions
            .get::<MatchedPath>()
            .map(|m| endpoint_key(m.as_str()))
            .unwrap_or_default();
        let app_id =
            auth::authenticate(state, &parts.headers).map_err(IntoResponse::into_response)?;
        if let Decision::Throttle { limit, reset_secs } =
            state
                .rate_limiter
                .check(&endpoint, &app_id, state.clock.now_ms())
        {
            return Err(throttled(limit, reset_secs));
        }
        let draw = state.faults.draw(&endpoint, true);
        if let Some(delay) = draw.delay {
            tokio::time::sleep(delay).await;
        }
        if let Some(fault) = draw.fault {
            return Err(fault_response(fault));
        }
        Ok(Self { app_id, endpoint })
    }
}

/// HTTP 429 with Feishu's throttling body and headers (§3.3).
pub(crate) fn throttled(limit: u32, reset_secs: u64) -> Response {
    let mut response = ApiError::throttled().into_response();
    let headers = response.headers_mut();
    headers.insert("x-ogw-ratelimit-limit", HeaderValue::from(limit));
    headers.insert("x-ogw-ratelimit-reset", HeaderValue::from(reset_secs));
    response
}

/// An injected failure: a gateway 5xx (plain text) or code 40003.
pub(crate) fn fault_response(fault: Fault) -> Response {
    match fault {
        Fault::ServerError(status) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let text = format!(
                "{} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("Server Error")
            );
            (
                status,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                text,
            )
                .into_response()
        }
        Fault::InternalError => ApiError::internal_error().into_response(),
    }
}

/// Runs `answer` against the tenant as `caller`'s app sees it; wraps `data` in the envelope.
fn respond(
    state: &EmulatorState,
    caller: &Caller,
    answer: impl FnOnce(&Cx) -> Result<Value, ApiError>,
) -> Response {
    let behaviour = state.behaviour();
    let tenant_name = state.tenant_name();
    let result = state.with_tenant(|tenant| {
        // The app may have been removed since its token was checked.
        let app = tenant
            .apps
            .get(&caller.app_id)
            .ok_or_else(|| ApiError::invalid_token(behaviour.token_error_status))?;
        answer(&Cx {
            tenant,
            app,
            behaviour: &behaviour,
            pages: &state.pages,
            tenant_name: &tenant_name,
            endpoint: &caller.endpoint,
        })
    });
    match result {
        Ok(data) => ok(data),
        Err(err) => err.into_response(),
    }
}

/// `{"code":0,"msg":"success","data":…}`.
fn ok(data: Value) -> Response {
    axum::Json(json!({"code": 0, "msg": "success", "data": data})).into_response()
}

type St = State<Arc<EmulatorState>>;

async fn scopes(State(s): St, c: Caller, RawQuery(q): RawQuery) -> Response {
    respond(&s, &c, |cx| {
        contact::scopes(cx, &Params::parse(q.as_deref()))
    })
}

async fn department(
    State(s): St,
    c: Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    respond(&s, &c, |cx| {
        contact::department(cx, &id, &Params::parse(q.as_deref()))
    })
}

async fn children(
    State(s): St,
    c: Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    respond(&s, &c, |cx| {
        contact::children(cx, &id, &Params::parse(q.as_deref()))
    })
}

async fn departments_batch(State(s): St, c: Caller, RawQuery(q): RawQuery) -> Response {
    respond(&s, &c, |cx| {
        contact::departments_batch(cx, &Params::parse(q.as_deref()))
    })
}

async fn users_by_department(State(s): St, c: Caller, RawQuery(q): RawQuery) -> Response {
    respond(&s, &c, |cx| {
        contact::users_by_department(cx, &Params::parse(q.as_deref()))
    })
}

async fn user(State(s): St, c: Caller, Path(id): Path<String>, RawQuery(q): RawQuery) -> Response {
    respond(&s, &c, |cx| {
        contact::user(cx, &id, &Params::parse(q.as_deref()))
    })
}

async fn users_batch(State(s): St, c: Caller, RawQuery(q): RawQuery) -> Response {
    respond(&s, &c, |cx| {
        contact::users_batch(cx, &Params::parse(q.as_deref()))
    })
}

async fn batch_get_id(State(s): St, c: Caller, RawQuery(q): RawQuery, body: Bytes) -> Response {
    respond(&s, &c, |cx| {
        contact::batch_get_id(cx, &Params::parse(q.as_deref()), &body)
    })
}

async fn groups(State(s): St, c: Caller, RawQuery(q): RawQuery) -> Response {
    respond(&s, &c, |cx| {
        contact::groups(cx, &Params::parse(q.as_deref()))
    })
}

async fn group(State(s): St, c: Caller, Path(id): Path<String>, RawQuery(q): RawQuery) -> Response {
    respond(&s, &c, |cx| {
        contact::group(cx, &id, &Params::parse(q.as_deref()))
    })
}

async fn group_members(
    State(s): St,
    c: Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    respond(&s, &c, |cx| {
        contact::group_members(cx, &id, &Params::parse(q.as_deref()))
    })
}

async fn member_belong(State(s): St, c: Caller, RawQuery(q): RawQuery) -> Response {
    respond(&s, &c, |cx| {
        contact::member_belong(cx, &Params::parse(q.as_deref()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_keys_match_the_client_spelling() {
        assert_eq!(
            endpoint_key("/open-apis/contact/v3/departments/{department_id}/children"),
            "contact/v3/departments/:department_id/children"
        );
        assert_eq!(
            endpoint_key("/open-apis/auth/v3/tenant_access_token/internal"),
            auth::TOKEN_ENDPOINT
        );
    }
}
