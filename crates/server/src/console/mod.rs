//! The web console under `/console`: server-rendered pages (askama) with a little htmx, for
//! the admin who sets up connections, watches imports and browses the mirrored directory.
//!
//! - Login with the admin token; a stateless signed session cookie ([`session`]).
//! - Every POST is CSRF-checked ([`session::CsrfForm`]).
//! - Handlers stay thin: parse → [`directory::admin::Admin`] → template.
//! - Static files are embedded ([`assets`]).

mod assets;
mod connections;
mod directory_pages;
mod downstream;
mod inbox;
mod jobs;
mod ldap;
mod pages;
pub mod session;
mod util;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::Redirect;
use axum::routing::{get, post};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::AppState;

/// Scripts only from the console itself; htmx adds an inline `<style>` for its indicators.
/// Images from anywhere: a user's avatar is the URL the connection's API gave, on Feishu's CDN
/// (https) or on an emulator or proxy (http); an image cannot run script, and `https:` already
/// admits any host.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data: https: http:; connect-src 'self'; frame-ancestors 'none'; \
    form-action 'self'; base-uri 'none'";

pub fn router() -> Router<AppState> {
    let console = Router::new()
        .route("/console", get(pages::dashboard))
        .route("/console/", get(|| async { Redirect::to("/console") }))
        .route("/console/login", get(pages::login_page).post(pages::login))
        .route(
            "/console/logout",
            get(pages::logout_page).post(pages::logout),
        )
        .route("/console/static/{name}", get(assets::serve))
        .route("/console/go/{what}", get(pages::go))
        // pools
        .route("/console/pools", get(pages::pools).post(pages::create_pool))
        .route("/console/pools/{pool}", get(pages::pool))
        .route("/console/pools/{pool}/rename", post(pages::rename_pool))
        .route(
            "/console/pools/{pool}/delete",
            get(pages::delete_pool_page).post(pages::delete_pool),
        )
        .route("/console/pools/{pool}/tree", get(directory_pages::tree))
        .route(
            "/console/pools/{pool}/tree/level",
            get(directory_pages::tree_level),
        )
        .route(
            "/console/pools/{pool}/departments/{id}",
            get(directory_pages::department),
        )
        .route("/console/pools/{pool}/users", get(directory_pages::users))
        .route(
            "/console/pools/{pool}/users/{id}",
            get(directory_pages::user),
        )
        .route(
            "/console/pools/{pool}/users/{id}/app-passwords",
            post(ldap::create_app_password),
        )
        .route(
            "/console/pools/{pool}/users/{id}/app-passwords/{password}/revoke",
            post(ldap::revoke_app_password),
        )
        .route("/console/pools/{pool}/groups", get(directory_pages::groups))
        .route(
            "/console/pools/{pool}/groups/{id}",
            get(directory_pages::group),
        )
        .route("/console/pools/{pool}/parked", get(inbox::parked))
        .route(
            "/console/pools/{pool}/parked/bulk",
            get(inbox::bulk_page).post(inbox::bulk),
        )
        .route(
            "/console/pools/{pool}/downstream",
            get(downstream::downstream),
        )
        .route(
            "/console/pools/{pool}/credentials",
            post(downstream::create_credential),
        )
        .route(
            "/console/pools/{pool}/credentials/{id}/revoke",
            post(downstream::revoke_credential),
        )
        .route(
            "/console/pools/{pool}/feed-settings",
            post(downstream::feed_settings),
        )
        .route(
            "/console/pools/{pool}/webhooks",
            post(downstream::create_webhook),
        )
        .route(
            "/console/pools/{pool}/webhooks/{id}",
            get(downstream::webhook).post(downstream::webhook_action),
        )
        .route("/console/pools/{pool}/ldap", get(ldap::ldap))
        .route(
            "/console/pools/{pool}/ldap-settings",
            post(ldap::save_settings),
        )
        .route("/console/parked/{id}/approve", post(inbox::approve))
        .route("/console/parked/{id}/reject", post(inbox::reject))
        // connections
        .route(
            "/console/connections",
            get(connections::list).post(connections::create),
        )
        .route("/console/connections/new", get(connections::wizard))
        .route(
            "/console/connections/{id}",
            get(connections::detail).post(connections::update),
        )
        .route(
            "/console/connections/{id}/delete",
            get(connections::delete_page).post(connections::delete),
        )
        .route("/console/connections/{id}/test", post(connections::test))
        .route(
            "/console/connections/{id}/jobs",
            post(connections::start_job),
        )
        // jobs and events
        .route("/console/jobs", get(jobs::list))
        .route("/console/jobs/{id}", get(jobs::detail))
        .route("/console/jobs/{id}/progress", get(jobs::progress))
        .route("/console/events", get(inbox::events))
        .route("/console/events/{id}", get(inbox::event))
        .route("/console/{*rest}", get(pages::not_found))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("referrer-policy"),
            HeaderValue::from_static("same-origin"),
        ));
    Router::new()
        .route("/", get(|| async { Redirect::to("/console") }))
        .merge(console)
}
