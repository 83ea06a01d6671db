//! The LDAP view's admin side (docs/ldap.md): a pool's LDAP settings and its users' app
//! passwords.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use directory::admin::{CreatedAppPassword, NewAppPassword};
use directory::app_passwords::AppPassword;
use directory::ids::{PoolId, UserId};
use directory::ldap_view::LdapSettings;

use super::extract::{Authed, JsonBody, PathParams, id};
use crate::error::{ErrorBody, HttpError};

type ApiResult<T> = Result<Json<T>, HttpError>;

/// The pool's LDAP settings: base DN, where `uid` comes from, how departments count members.
#[utoipa::path(
    get, path = "/api/v1/pools/{pool_id}/ldap-settings", tag = "ldap",
    params(("pool_id" = String, Path, description = "User pool id")),
    responses(
        (status = 200, description = "The settings (the defaults when never saved)", body = LdapSettings),
        (status = 404, description = "No such user pool", body = ErrorBody),
    )
)]
pub async fn get_ldap_settings(
    Authed(admin): Authed,
    PathParams(pool_id): PathParams<String>,
) -> ApiResult<LdapSettings> {
    let pool_id: PoolId = id("pool_id", &pool_id)?;
    Ok(Json(admin.ldap_settings(&pool_id).await?))
}

/// Replaces the pool's LDAP settings. Connections bound before keep the old ones until they
/// bind again.
#[utoipa::path(
    put, path = "/api/v1/pools/{pool_id}/ldap-settings", tag = "ldap",
    params(("pool_id" = String, Path, description = "User pool id")),
    request_body = LdapSettings,
    responses(
        (status = 200, description = "The settings now", body = LdapSettings),
        (status = 400, description = "A base DN that is not a DN, an unknown login source or department scope", body = ErrorBody),
        (status = 404, description = "No such user pool", body = ErrorBody),
        (status = 409, description = "The base DN overlaps another pool's", body = ErrorBody),
    )
)]
pub async fn put_ldap_settings(
    Authed(admin): Authed,
    PathParams(pool_id): PathParams<String>,
    JsonBody(body): JsonBody<LdapSettings>,
) -> ApiResult<LdapSettings> {
    let pool_id: PoolId = id("pool_id", &pool_id)?;
    Ok(Json(admin.set_ldap_settings(&pool_id, body).await?))
}

/// A user's app passwords (revoked ones too), never the passwords.
#[utoipa::path(
    get, path = "/api/v1/pools/{pool_id}/users/{user_id}/app-passwords", tag = "ldap",
    params(
        ("pool_id" = String, Path, description = "User pool id"),
        ("user_id" = String, Path, description = "orgsync user id"),
    ),
    responses(
        (status = 200, description = "App passwords, oldest first", body = Vec<AppPassword>),
        (status = 404, description = "No such user pool", body = ErrorBody),
    )
)]
pub async fn list_app_passwords(
    Authed(admin): Authed,
    PathParams((pool_id, user_id)): PathParams<(String, String)>,
) -> ApiResult<Vec<AppPassword>> {
    let pool_id: PoolId = id("pool_id", &pool_id)?;
    let user_id: UserId = id("user_id", &user_id)?;
    Ok(Json(admin.list_app_passwords(&pool_id, &user_id).await?))
}

/// Issues an app password to an active user: what the user types, with its `uid`, into an
/// application that logs people in over LDAP. The password is in this answer and nowhere
/// else, ever; it stops working when revoked, when it expires, or when the user stops being
/// active.
#[utoipa::path(
    post, path = "/api/v1/pools/{pool_id}/users/{user_id}/app-passwords", tag = "ldap",
    params(
        ("pool_id" = String, Path, description = "User pool id"),
        ("user_id" = String, Path, description = "orgsync user id"),
    ),
    request_body = NewAppPassword,
    responses(
        (status = 201, description = "The app password and the password", body = CreatedAppPassword),
        (status = 400, description = "Bad label or expiry", body = ErrorBody),
        (status = 404, description = "No such user pool or user", body = ErrorBody),
        (status = 409, description = "The user is not active, or holds the most live app passwords allowed", body = ErrorBody),
    )
)]
pub async fn create_app_password(
    Authed(admin): Authed,
    PathParams((pool_id, user_id)): PathParams<(String, String)>,
    JsonBody(body): JsonBody<NewAppPassword>,
) -> Result<Response, HttpError> {
    let pool_id: PoolId = id("pool_id", &pool_id)?;
    let user_id: UserId = id("user_id", &user_id)?;
    let created = admin.create_app_password(&pool_id, &user_id, body).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// Revokes an app password: the next bind with it fails, and a connection bound with it is
/// refused at its next operation.
#[utoipa::path(
    post, path = "/api/v1/pools/{pool_id}/app-passwords/{app_password_id}/revoke", tag = "ldap",
    params(
        ("pool_id" = String, Path, description = "User pool id"),
        ("app_password_id" = String, Path, description = "App password id"),
    ),
    responses(
        (status = 200, description = "The revoked app password", body = AppPassword),
        (status = 404, description = "No such app password in the pool", body = ErrorBody),
    )
)]
pub async fn revoke_app_password(
    Authed(admin): Authed,
    PathParams((pool_id, app_password_id)): PathParams<(String, String)>,
) -> ApiResult<AppPassword> {
    let pool_id: PoolId = id("pool_id", &pool_id)?;
    Ok(Json(
        admin
            .revoke_app_password(&pool_id, &app_password_id)
            .await?,
    ))
}
