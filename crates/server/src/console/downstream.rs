//! The pool's downstream access: service credentials (create, shown once, revoke) and the
//! change feed's settings (docs/service-credentials.md, docs/change-feed.md).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use directory::admin::{NewCredential, NewWebhook, WebhookPatch, WebhookView};
use directory::credentials::Scope;
use directory::ids::PoolId;
use directory::store::FeedSettings;
use directory::webhooks::WebhookState;
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
    pub webhooks: Vec<WebhookRow>,
    /// A webhook just created or rotated: its secret, shown this once.
    pub webhook_secret: Option<(String, String)>,
    /// The result of a test delivery.
    pub tested: Option<String>,
    pub webhook_url: String,
    pub webhook_types: String,
    pub error: Option<ConsoleError>,
}

pub struct WebhookRow {
    pub id: String,
    pub url: String,
    pub description: String,
    pub types: String,
    pub state: &'static str,
    pub reason: String,
    pub lag: i64,
    pub failures: u32,
    pub next_attempt: String,
}

fn webhook_rows(views: Vec<WebhookView>) -> Vec<WebhookRow> {
    views
        .into_iter()
        .map(|w| WebhookRow {
            next_attempt: if w.state == WebhookState::Failing {
                fmt_ms(w.next_attempt_at)
            } else {
                String::new()
            },
            state: w.state.as_str(),
            reason: w.disabled_reason.unwrap_or_default(),
            types: if w.types.is_empty() {
                "all".into()
            } else {
                w.types
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            },
            id: w.id,
            url: w.url,
            description: w.description,
            lag: w.lag,
            failures: w.failures,
        })
        .collect()
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
        webhooks: webhook_rows(state.admin.list_webhooks(pool).await?),
        webhook_secret: None,
        tested: None,
        webhook_url: String::new(),
        webhook_types: String::new(),
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
        Scope::LdapSearch => "scope_ldap_search",
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
    #[serde(default)]
    scope_ldap_search: Option<String>,
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
        (&form.scope_ldap_search, Scope::LdapSearch),
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

#[derive(Deserialize)]
pub struct WebhookForm {
    url: String,
    #[serde(default)]
    description: String,
    /// Comma- or space-separated types and globs; empty: all.
    #[serde(default)]
    types: String,
}

/// Adds an endpoint and shows its secret on the page this once.
pub async fn create_webhook(
    State(state): State<AppState>,
    Path(pool): Path<String>,
    CsrfForm(session, form): CsrfForm<WebhookForm>,
) -> ConsoleResult {
    let pool = PoolId::from(pool);
    let types: Vec<String> = form
        .types
        .split([',', ' '])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    let created = state
        .admin
        .create_webhook(
            &pool,
            NewWebhook {
                url: form.url.clone(),
                description: form.description.clone(),
                types,
            },
        )
        .await;
    let mut p = page(&state, &session, &pool, None).await?;
    match created {
        Ok(c) => {
            p.webhook_secret = Some((c.endpoint.url, c.secret));
            Ok(ok(&p))
        }
        Err(e) => {
            let e = ConsoleError::from(e).with_csrf(&session.csrf);
            p.webhook_url = form.url;
            p.webhook_types = form.types;
            let status = e.status;
            p.error = Some(e);
            Ok(render(status, &p))
        }
    }
}

#[derive(Deserialize)]
pub struct WebhookAction {
    /// `enable`, `disable`, `test`, `rotate` or `delete`.
    action: String,
}

pub async fn webhook_action(
    State(state): State<AppState>,
    Path((pool, id)): Path<(String, String)>,
    CsrfForm(session, form): CsrfForm<WebhookAction>,
) -> ConsoleResult {
    let pool = PoolId::from(pool);
    let admin = &state.admin;
    let back = |done: &str| {
        Ok(Redirect::to(&format!("/console/pools/{pool}/downstream?done={done}")).into_response())
    };
    match form.action.as_str() {
        "enable" | "disable" => {
            let patch = WebhookPatch {
                enabled: Some(form.action == "enable"),
                ..WebhookPatch::default()
            };
            admin.update_webhook(&pool, &id, patch).await?;
            back(if form.action == "enable" {
                "webhook_enabled"
            } else {
                "webhook_disabled"
            })
        }
        "delete" => {
            admin.delete_webhook(&pool, &id).await?;
            back("webhook_deleted")
        }
        "test" => {
            let result = admin.test_webhook(&pool, &id).await?;
            let mut p = page(&state, &session, &pool, None).await?;
            p.tested = Some(match (result.ok, result.status) {
                (true, Some(status)) => {
                    format!(
                        "Test event delivered: the receiver answered {status} in {} ms.",
                        result.latency_ms
                    )
                }
                _ => format!(
                    "Test event not delivered: {}.",
                    result.error.unwrap_or_else(|| "no answer".into())
                ),
            });
            Ok(ok(&p))
        }
        "rotate" => {
            let rotated = admin
                .rotate_webhook_secret(&pool, &id, directory::admin::Rotate::default())
                .await?;
            let mut p = page(&state, &session, &pool, None).await?;
            p.webhook_secret = Some((rotated.endpoint.url, rotated.secret));
            Ok(ok(&p))
        }
        other => Err(ConsoleError::new(
            StatusCode::BAD_REQUEST,
            format!("unknown webhook action {other:?}"),
        )),
    }
}

pub struct AttemptRow {
    pub at: String,
    pub seq: i64,
    pub event_type: String,
    pub attempt: u32,
    pub status: String,
    pub ok: bool,
    pub error: String,
    pub latency_ms: i64,
    pub response: String,
}

#[derive(Template)]
#[template(path = "webhook.html")]
pub struct WebhookPage {
    pub ctx: Ctx,
    pub pool: String,
    pub endpoint: WebhookRow,
    pub rows: Vec<AttemptRow>,
    /// The next page of older attempts.
    pub older: Option<String>,
}

#[derive(Deserialize)]
pub struct AttemptsQuery {
    before: Option<i64>,
}

/// One endpoint and its delivery attempts, newest first, 50 a page.
pub async fn webhook(
    State(state): State<AppState>,
    session: Session,
    Path((pool, id)): Path<(String, String)>,
    Query(q): Query<AttemptsQuery>,
) -> ConsoleResult {
    const PAGE: u64 = 50;
    let pool = PoolId::from(pool);
    let p = state.admin.pool(&pool).await?;
    let view = state.admin.webhook(&pool, &id).await?;
    let attempts = state
        .admin
        .webhook_attempts(&pool, &id, q.before, Some(PAGE))
        .await?;
    let older = (attempts.len() as u64 == PAGE)
        .then(|| attempts.last().map(|a| a.id))
        .flatten()
        .map(|before| format!("/console/pools/{pool}/webhooks/{id}?before={before}"));
    let rows = attempts
        .into_iter()
        .map(|a| AttemptRow {
            at: fmt_ms(a.at),
            seq: a.seq,
            event_type: a.event_type,
            attempt: a.attempt,
            ok: a.status.is_some_and(|s| (200..300).contains(&s)),
            status: a.status.map_or_else(|| "–".into(), |s| s.to_string()),
            error: a.error.unwrap_or_default(),
            latency_ms: a.latency_ms,
            response: a.response.unwrap_or_default(),
        })
        .collect();
    let endpoint = webhook_rows(vec![view]).remove(0);
    Ok(ok(&WebhookPage {
        ctx: Ctx::new(&session, "pools").pool(&p),
        pool: pool.to_string(),
        endpoint,
        rows,
        older,
    }))
}
