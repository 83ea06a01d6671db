//! What downstream systems use: the change feed (docs/change-feed.md), the pool's service
//! credentials (docs/service-credentials.md) and webhook endpoints (docs/webhooks.md).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use directory::admin::{
    CreatedCredential, FeedPage, FeedQuery, NewCredential, NewWebhook, Replay, Rotate, TestResult,
    WebhookPatch, WebhookView, WebhookWithSecret,
};
use directory::credentials::{Scope, ServiceCredential};
use directory::ids::PoolId;
use directory::store::FeedSettings;
use directory::webhooks::WebhookAttempt;
use serde::Deserialize;
use utoipa::IntoParams;

use super::extract::{Authed, Caller, JsonBody, PathParams, QueryParams, id};
use crate::error::{ErrorBody, HttpError};

type ApiResult<T> = Result<Json<T>, HttpError>;

/// `GET …/events`: where to read from, how much, which types, how long to wait.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FeedParams {
    /// The `next_cursor` of the read before, or a list's `as_of_cursor`; absent: from the
    /// oldest retained event.
    pub after: Option<String>,
    /// Events per read (default 100, at most 500).
    pub limit: Option<u64>,
    /// Comma-separated event types and `prefix.*` globs, e.g. `user.*,group.member_added`.
    pub types: Option<String>,
    /// Seconds to wait for an event when none is there yet (0–30, default 0).
    pub wait: Option<u64>,
}

/// Reads the pool's change feed: events in the order their changes committed. Needs the
/// admin token or a service credential of the pool with `events:read`.
#[utoipa::path(
    get, path = "/api/v1/pools/{pool_id}/events", tag = "feed",
    params(("pool_id" = String, Path, description = "User pool id"), FeedParams),
    responses(
        (status = 200, description = "Events after the cursor, oldest first", body = FeedPage),
        (status = 400, description = "Bad cursor, limit, wait or types", body = ErrorBody),
        (status = 403, description = "A credential of another pool, or without `events:read`", body = ErrorBody),
        (status = 404, description = "No such user pool", body = ErrorBody),
        (status = 410, description = "`cursor_expired`: the cursor is older than the feed's retention; read the directory again", body = ErrorBody),
    )
)]
pub async fn read_feed(
    caller: Caller,
    PathParams(pool_id): PathParams<String>,
    QueryParams(q): QueryParams<FeedParams>,
) -> ApiResult<FeedPage> {
    let pool_id: PoolId = id("pool_id", &pool_id)?;
    let admin = caller.reads(&pool_id, Scope::EventsRead)?;
    let query = FeedQuery {
        after: q.after,
        limit: q.limit,
        types: q.types,
        wait: q.wait,
    };
    Ok(Json(admin.feed(&pool_id, &query).await?))
}

/// The pool's feed settings: retention, and whether a first import is reported object by
/// object.
#[utoipa::path(
    get, path = "/api/v1/pools/{pool_id}/feed-settings", tag = "feed",
    params(("pool_id" = String, Path, description = "User pool id")),
    responses(
        (status = 200, description = "The settings", body = FeedSettings),
        (status = 404, description = "No such user pool", body = ErrorBody),
    )
)]
pub async fn get_feed_settings(
    Authed(admin): Authed,
    PathParams(pool_id): PathParams<String>,
) -> ApiResult<FeedSettings> {
    let pool_id: PoolId = id("pool_id", &pool_id)?;
    Ok(Json(admin.feed_settings(&pool_id).await?))
}

/// Replaces the pool's feed settings.
#[utoipa::path(
    put, path = "/api/v1/pools/{pool_id}/feed-settings", tag = "feed",
    params(("pool_id" = String, Path, description = "User pool id")),
    request_body = FeedSettings,
    responses(
        (status = 200, description = "The settings now", body = FeedSettings),
        (status = 400, description = "Retention out of range", body = ErrorBody),
        (status = 404, description = "No such user pool", body = ErrorBody),
    )
)]
pub async fn put_feed_settings(
    Authed(admin): Authed,
    PathParams(pool_id): PathParams<String>,
    JsonBody(body): JsonBody<FeedSettings>,
) -> ApiResult<FeedSettings> {
    let pool_id: PoolId = id("pool_id", &pool_id)?;
    Ok(Json(admin.set_feed_settings(&pool_id, body).await?))
}

/// Lists the pool's service credentials (revoked ones too), never their secrets.
#[utoipa::path(
    get, path = "/api/v1/pools/{pool_id}/credentials", tag = "credentials",
    params(("pool_id" = String, Path, description = "User pool id")),
    responses(
        (status = 200, description = "Credentials, oldest first", body = Vec<ServiceCredential>),
        (status = 404, description = "No such user pool", body = ErrorBody),
    )
)]
pub async fn list_credentials(
    Authed(admin): Authed,
    PathParams(pool_id): PathParams<String>,
) -> ApiResult<Vec<ServiceCredential>> {
    let pool_id: PoolId = id("pool_id", &pool_id)?;
    Ok(Json(admin.list_credentials(&pool_id).await?))
}

/// Creates a service credential. Its token is in this answer and nowhere else, ever.
#[utoipa::path(
    post, path = "/api/v1/pools/{pool_id}/credentials", tag = "credentials",
    params(("pool_id" = String, Path, description = "User pool id")),
    request_body = NewCredential,
    responses(
        (status = 201, description = "The credential and its token", body = CreatedCredential),
        (status = 400, description = "Bad name, scopes or expiry", body = ErrorBody),
        (status = 404, description = "No such user pool", body = ErrorBody),
        (status = 409, description = "A live credential of the pool has that name", body = ErrorBody),
    )
)]
pub async fn create_credential(
    Authed(admin): Authed,
    PathParams(pool_id): PathParams<String>,
    JsonBody(body): JsonBody<NewCredential>,
) -> Result<Response, HttpError> {
    let pool_id: PoolId = id("pool_id", &pool_id)?;
    let created = admin.create_credential(&pool_id, body).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// Revokes a service credential: its next request gets 401.
#[utoipa::path(
    post, path = "/api/v1/pools/{pool_id}/credentials/{credential_id}/revoke", tag = "credentials",
    params(
        ("pool_id" = String, Path, description = "User pool id"),
        ("credential_id" = String, Path, description = "Credential id"),
    ),
    responses(
        (status = 200, description = "The revoked credential", body = ServiceCredential),
        (status = 404, description = "No such credential in the pool", body = ErrorBody),
    )
)]
pub async fn revoke_credential(
    Authed(admin): Authed,
    PathParams((pool_id, credential_id)): PathParams<(String, String)>,
) -> ApiResult<ServiceCredential> {
    let pool_id: PoolId = id("pool_id", &pool_id)?;
    Ok(Json(
        admin.revoke_credential(&pool_id, &credential_id).await?,
    ))
}

// ---- webhooks ----

/// `GET …/webhooks/{id}/attempts`: a page of attempts, newest first.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AttemptsParams {
    /// The `id` of the last attempt of the page before.
    pub before: Option<i64>,
    /// Attempts per page (default 50, at most 500).
    pub limit: Option<u64>,
}

/// Lists the pool's webhook endpoints, with each one's state and lag. Needs the admin token
/// or a credential of the pool with `webhooks:admin`.
#[utoipa::path(
    get, path = "/api/v1/pools/{pool_id}/webhooks", tag = "webhooks",
    params(("pool_id" = String, Path, description = "User pool id")),
    responses(
        (status = 200, description = "Endpoints, oldest first", body = Vec<WebhookView>),
        (status = 404, description = "No such user pool", body = ErrorBody),
    )
)]
pub async fn list_webhooks(
    caller: Caller,
    PathParams(pool_id): PathParams<String>,
) -> ApiResult<Vec<WebhookView>> {
    let pool_id: PoolId = id("pool_id", &pool_id)?;
    let admin = caller.reads(&pool_id, Scope::WebhooksAdmin)?;
    Ok(Json(admin.list_webhooks(&pool_id).await?))
}

/// Adds an endpoint: it receives the events appended from now on, signed with the secret in
/// this answer (shown now only).
#[utoipa::path(
    post, path = "/api/v1/pools/{pool_id}/webhooks", tag = "webhooks",
    params(("pool_id" = String, Path, description = "User pool id")),
    request_body = NewWebhook,
    responses(
        (status = 201, description = "The endpoint and its secret", body = WebhookWithSecret),
        (status = 400, description = "Bad URL (or refused by the SSRF guard) or event types", body = ErrorBody),
        (status = 404, description = "No such user pool", body = ErrorBody),
    )
)]
pub async fn create_webhook(
    caller: Caller,
    PathParams(pool_id): PathParams<String>,
    JsonBody(body): JsonBody<NewWebhook>,
) -> Result<Response, HttpError> {
    let pool_id: PoolId = id("pool_id", &pool_id)?;
    let admin = caller.reads(&pool_id, Scope::WebhooksAdmin)?;
    let created = admin.create_webhook(&pool_id, body).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// One endpoint.
#[utoipa::path(
    get, path = "/api/v1/pools/{pool_id}/webhooks/{webhook_id}", tag = "webhooks",
    params(("pool_id" = String, Path, description = "User pool id"), ("webhook_id" = String, Path, description = "Endpoint id")),
    responses(
        (status = 200, description = "The endpoint", body = WebhookView),
        (status = 404, description = "No such endpoint in the pool", body = ErrorBody),
    )
)]
pub async fn get_webhook(
    caller: Caller,
    PathParams((pool_id, webhook_id)): PathParams<(String, String)>,
) -> ApiResult<WebhookView> {
    let pool_id: PoolId = id("pool_id", &pool_id)?;
    let admin = caller.reads(&pool_id, Scope::WebhooksAdmin)?;
    Ok(Json(admin.webhook(&pool_id, &webhook_id).await?))
}

/// Changes an endpoint: URL, description, types; `enabled: false` stops it, `enabled: true`
/// resumes it from its cursor.
#[utoipa::path(
    patch, path = "/api/v1/pools/{pool_id}/webhooks/{webhook_id}", tag = "webhooks",
    params(("pool_id" = String, Path, description = "User pool id"), ("webhook_id" = String, Path, description = "Endpoint id")),
    request_body = WebhookPatch,
    responses(
        (status = 200, description = "The endpoint now", body = WebhookView),
        (status = 400, description = "Bad URL or event types", body = ErrorBody),
        (status = 404, description = "No such endpoint in the pool", body = ErrorBody),
    )
)]
pub async fn update_webhook(
    caller: Caller,
    PathParams((pool_id, webhook_id)): PathParams<(String, String)>,
    JsonBody(body): JsonBody<WebhookPatch>,
) -> ApiResult<WebhookView> {
    let pool_id: PoolId = id("pool_id", &pool_id)?;
    let admin = caller.reads(&pool_id, Scope::WebhooksAdmin)?;
    Ok(Json(
        admin.update_webhook(&pool_id, &webhook_id, body).await?,
    ))
}

/// Removes an endpoint and its attempts.
#[utoipa::path(
    delete, path = "/api/v1/pools/{pool_id}/webhooks/{webhook_id}", tag = "webhooks",
    params(("pool_id" = String, Path, description = "User pool id"), ("webhook_id" = String, Path, description = "Endpoint id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such endpoint in the pool", body = ErrorBody),
    )
)]
pub async fn delete_webhook(
    caller: Caller,
    PathParams((pool_id, webhook_id)): PathParams<(String, String)>,
) -> Result<StatusCode, HttpError> {
    let pool_id: PoolId = id("pool_id", &pool_id)?;
    let admin = caller.reads(&pool_id, Scope::WebhooksAdmin)?;
    admin.delete_webhook(&pool_id, &webhook_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends the events from a feed number (`from_seq`) or a time (`since`) again, in order, and
/// on from there; the endpoint is enabled.
#[utoipa::path(
    post, path = "/api/v1/pools/{pool_id}/webhooks/{webhook_id}/replay", tag = "webhooks",
    params(("pool_id" = String, Path, description = "User pool id"), ("webhook_id" = String, Path, description = "Endpoint id")),
    request_body = Replay,
    responses(
        (status = 200, description = "The endpoint, its cursor moved back", body = WebhookView),
        (status = 400, description = "Neither or both of from_seq and since", body = ErrorBody),
        (status = 404, description = "No such endpoint in the pool", body = ErrorBody),
        (status = 410, description = "Those events were removed by retention", body = ErrorBody),
    )
)]
pub async fn replay_webhook(
    caller: Caller,
    PathParams((pool_id, webhook_id)): PathParams<(String, String)>,
    JsonBody(body): JsonBody<Replay>,
) -> ApiResult<WebhookView> {
    let pool_id: PoolId = id("pool_id", &pool_id)?;
    let admin = caller.reads(&pool_id, Scope::WebhooksAdmin)?;
    Ok(Json(
        admin.replay_webhook(&pool_id, &webhook_id, body).await?,
    ))
}

/// A new secret; the old one keeps signing beside it for the grace period, so receivers can
/// switch without losing a request.
#[utoipa::path(
    post, path = "/api/v1/pools/{pool_id}/webhooks/{webhook_id}/rotate-secret", tag = "webhooks",
    params(("pool_id" = String, Path, description = "User pool id"), ("webhook_id" = String, Path, description = "Endpoint id")),
    request_body = Rotate,
    responses(
        (status = 200, description = "The endpoint and its new secret (shown now only)", body = WebhookWithSecret),
        (status = 400, description = "Grace period out of range", body = ErrorBody),
        (status = 404, description = "No such endpoint in the pool", body = ErrorBody),
    )
)]
pub async fn rotate_webhook_secret(
    caller: Caller,
    PathParams((pool_id, webhook_id)): PathParams<(String, String)>,
    JsonBody(body): JsonBody<Rotate>,
) -> ApiResult<WebhookWithSecret> {
    let pool_id: PoolId = id("pool_id", &pool_id)?;
    let admin = caller.reads(&pool_id, Scope::WebhooksAdmin)?;
    Ok(Json(
        admin
            .rotate_webhook_secret(&pool_id, &webhook_id, body)
            .await?,
    ))
}

/// Sends a `webhook.test` event now and answers what the receiver did.
#[utoipa::path(
    post, path = "/api/v1/pools/{pool_id}/webhooks/{webhook_id}/test", tag = "webhooks",
    params(("pool_id" = String, Path, description = "User pool id"), ("webhook_id" = String, Path, description = "Endpoint id")),
    responses(
        (status = 200, description = "The receiver's answer", body = TestResult),
        (status = 404, description = "No such endpoint in the pool", body = ErrorBody),
    )
)]
pub async fn test_webhook(
    caller: Caller,
    PathParams((pool_id, webhook_id)): PathParams<(String, String)>,
) -> ApiResult<TestResult> {
    let pool_id: PoolId = id("pool_id", &pool_id)?;
    let admin = caller.reads(&pool_id, Scope::WebhooksAdmin)?;
    Ok(Json(admin.test_webhook(&pool_id, &webhook_id).await?))
}

/// The endpoint's delivery attempts, newest first: status, latency, error and the start of
/// the receiver's answer.
#[utoipa::path(
    get, path = "/api/v1/pools/{pool_id}/webhooks/{webhook_id}/attempts", tag = "webhooks",
    params(("pool_id" = String, Path, description = "User pool id"), ("webhook_id" = String, Path, description = "Endpoint id"), AttemptsParams),
    responses(
        (status = 200, description = "Attempts, newest first", body = Vec<WebhookAttempt>),
        (status = 404, description = "No such endpoint in the pool", body = ErrorBody),
    )
)]
pub async fn webhook_attempts(
    caller: Caller,
    PathParams((pool_id, webhook_id)): PathParams<(String, String)>,
    QueryParams(q): QueryParams<AttemptsParams>,
) -> ApiResult<Vec<WebhookAttempt>> {
    let pool_id: PoolId = id("pool_id", &pool_id)?;
    let admin = caller.reads(&pool_id, Scope::WebhooksAdmin)?;
    Ok(Json(
        admin
            .webhook_attempts(&pool_id, &webhook_id, q.before, q.limit)
            .await?,
    ))
}
