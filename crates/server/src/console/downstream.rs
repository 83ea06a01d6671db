//! The pool's downstream access: service credentials (create, shown once, revoke) and the
//! change feed's settings (docs/service-credentials.md, docs/change-feed.md).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use directory::admin::NewCredential;
use directory::credentials::Scope;
use directory::ids::PoolId;
use directory::store::FeedSettings;
use serde::Deserialize;

use super::pages::DoneQuery;
use super::session::{CsrfForm, NoFields, Session};
use super::util::{ConsoleError, ConsoleResult, Ctx, fmt_ms, fmt_opt_ms, ok, render};
use crate::AppState;

pub struct CredentialRow {
    pub id: String,
    pub name: String,
    pub scopes: String,
    pub created: String,
    pub expires: String,
    pub last_used: String,
    /// `live`, `expired` or `revoked`.
    pub state: &'static str,
}

#[derive(Template)]
#[template(path = "downstream.html")]
pub struct DownstreamPage {
    pub ctx: Ctx,
    pub pool: String,
    pub rows: Vec<CredentialRow>,
    pub scopes: Vec<(&'static str, &'static str, &'static str)>,
    /// The form as entered (after an error).
    pub name: String,
    pub expires_in_days: String,
    /// A token just created: shown this once.
    pub created: Option<(String, String)>,
    pub retention_days: u32,
    pub initial_import_events: bool,
    /// `curl` that follows the feed.
    pub curl: String,
    pub error: Option<ConsoleError>,
}

async fn page(
    state: &AppState,
    session: &Session,
    pool: &PoolId,
    done: Option<&str>,
) -> ConsoleResult<DownstreamPage> {
    let p = state.admin.pool(pool).await?;
    let now = directory::ids::now_ms();
    let rows = state
        .admin
        .list_credentials(pool)
        .await?
        .into_iter()
        .rev()
        .map(|c| CredentialRow {
            state: match c.unusable(now) {
                None => "live",
                Some(_) if c.revoked_at.is_some() => "revoked",
                Some(_) => "expired",
            },
            id: c.id,
            name: c.name,
            scopes: c
                .scopes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            created: fmt_ms(c.created_at),
            expires: c.expires_at.map_or_else(|| "never".into(), fmt_ms),
            last_used: fmt_opt_ms(c.last_used_at),
        })
        .collect();
    let settings = state.admin.feed_settings(pool).await?;
    let head = state.admin.as_of_cursor(pool).await?;
    let base = &state.settings.public_base_url;
    Ok(DownstreamPage {
        ctx: Ctx::new(session, "pools").pool(&p).notice(done),
        pool: p.id.to_string(),
        rows,
        scopes: Scope::ALL
            .iter()
            .map(|s| (scope_field(*s), s.as_str(), s.describe()))
            .collect(),
        name: String::new(),
        expires_in_days: String::new(),
        created: None,
        retention_days: settings.retention_days,
        initial_import_events: settings.initial_import_events,
        curl: format!(
            "curl -H 'Authorization: Bearer <token>' '{base}/api/v1/pools/{}/events?after={}&wait=30'",
            p.id, head
        ),
        error: None,
    })
}

/// The form field of a scope's checkbox.
fn scope_field(scope: Scope) -> &'static str {
    match scope {
        Scope::DirectoryRead => "scope_directory_read",
        Scope::EventsRead => "scope_events_read",
        Scope::WebhooksAdmin => "scope_webhooks_admin",
    }
}

pub async fn downstream(
    State(state): State<AppState>,
    session: Session,
    Path(pool): Path<String>,
    Query(q): Query<DoneQuery>,
) -> ConsoleResult {
    Ok(ok(&page(
        &state,
        &session,
        &PoolId::from(pool),
        q.done.as_deref(),
    )
    .await?))
}

#[derive(Deserialize)]
pub struct CredentialForm {
    name: String,
    #[serde(default)]
    expires_in_days: String,
    #[serde(default)]
    scope_directory_read: Option<String>,
    #[serde(default)]
    scope_events_read: Option<String>,
    #[serde(default)]
    scope_webhooks_admin: Option<String>,
}

/// Creates a credential and shows its token on the page this once (never in a redirect's
/// URL, and the page is not cached).
pub async fn create_credential(
    State(state): State<AppState>,
    Path(pool): Path<String>,
    CsrfForm(session, form): CsrfForm<CredentialForm>,
) -> ConsoleResult {
    let pool = PoolId::from(pool);
    let mut scopes = Vec::new();
    for (on, scope) in [
        (&form.scope_directory_read, Scope::DirectoryRead),
        (&form.scope_events_read, Scope::EventsRead),
        (&form.scope_webhooks_admin, Scope::WebhooksAdmin),
    ] {
        if on.is_some() {
            scopes.push(scope.as_str().to_owned());
        }
    }
    let days = form.expires_in_days.trim();
    let expires_in_days = if days.is_empty() {
        Ok(None)
    } else {
        days.parse::<u32>().map(Some).map_err(|_| {
            ConsoleError::new(
                StatusCode::BAD_REQUEST,
                format!("expires in days must be a whole number of days, got {days:?}"),
            )
            .with_fix("leave it empty for a credential that does not expire")
        })
    };
    let created = match expires_in_days {
        Ok(expires_in_days) => state
            .admin
            .create_credential(
                &pool,
                NewCredential {
                    name: form.name.clone(),
                    scopes,
                    expires_in_days,
                },
            )
            .await
            .map_err(ConsoleError::from),
        Err(e) => Err(e),
    };
    let mut p = page(&state, &session, &pool, None).await?;
    match created {
        Ok(c) => {
            p.created = Some((c.credential.name, c.token));
            Ok(ok(&p))
        }
        Err(e) => {
            let e = e.with_csrf(&session.csrf);
            p.name = form.name;
            p.expires_in_days = form.expires_in_days;
            let status = e.status;
            p.error = Some(e);
            Ok(render(status, &p))
        }
    }
}

pub async fn revoke_credential(
    State(state): State<AppState>,
    Path((pool, id)): Path<(String, String)>,
    CsrfForm(_session, _): CsrfForm<NoFields>,
) -> ConsoleResult {
    let pool = PoolId::from(pool);
    state.admin.revoke_credential(&pool, &id).await?;
    Ok(Redirect::to(&format!(
        "/console/pools/{pool}/downstream?done=credential_revoked"
    ))
    .into_response())
}

#[derive(Deserialize)]
pub struct FeedForm {
    retention_days: String,
    #[serde(default)]
    initial_import_events: Option<String>,
}

pub async fn feed_settings(
    State(state): State<AppState>,
    Path(pool): Path<String>,
    CsrfForm(session, form): CsrfForm<FeedForm>,
) -> ConsoleResult {
    let pool = PoolId::from(pool);
    let result = match form.retention_days.trim().parse::<u32>() {
        Ok(retention_days) => state
            .admin
            .set_feed_settings(
                &pool,
                FeedSettings {
                    retention_days,
                    initial_import_events: form.initial_import_events.is_some(),
                },
            )
            .await
            .map_err(ConsoleError::from),
        Err(_) => Err(ConsoleError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "retention must be a whole number of days, got {:?}",
                form.retention_days
            ),
        )),
    };
    match result {
        Ok(_) => Ok(Redirect::to(&format!(
            "/console/pools/{pool}/downstream?done=feed_settings_saved"
        ))
        .into_response()),
        Err(e) => {
            let e = e.with_csrf(&session.csrf);
            let mut p = page(&state, &session, &pool, None).await?;
            let status = e.status;
            p.error = Some(e);
            Ok(render(status, &p))
        }
    }
}
