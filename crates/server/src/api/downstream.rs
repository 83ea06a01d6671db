//! What downstream systems use: the change feed (docs/change-feed.md) and the pool's service
//! credentials (docs/service-credentials.md).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use directory::admin::{CreatedCredential, FeedPage, FeedQuery, NewCredential};
use directory::credentials::{Scope, ServiceCredential};
use directory::ids::PoolId;
use directory::store::FeedSettings;
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
