//! Connections: the set-up wizard (following Feishu's own steps), detail and edit, the
//! credential test and starting jobs.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use directory::admin::{
    CheckStep, ConnectionPatch, ConnectionView, CredentialCheck, NewConnection, page,
};
use directory::ids::{ConnectionId, PoolId};
use directory::model::{ConnectionSettings, DeletionThreshold, JobKind, Pacing, Provider};
use serde::Deserialize;

use super::jobs::{JobRow, job_rows};
use super::pages::DoneQuery;
use super::session::{CsrfForm, NoFields, Session};
use super::util::{ConsoleError, ConsoleResult, Ctx, fmt_ms, ok, render};
use crate::AppState;

/// One row of a connection list.
pub struct ConnRow {
    pub id: String,
    pub identifier: String,
    pub display_name: String,
    pub provider: &'static str,
    pub pool_id: String,
    pub pool_name: String,
    pub app_id: String,
    /// Event subscription configured (an Encrypt Key or a Verification Token is set).
    pub events: bool,
}

pub async fn conn_rows(state: &AppState, pool: Option<&PoolId>) -> ConsoleResult<Vec<ConnRow>> {
    let pools = state.admin.list_pools().await?;
    let connections = state.admin.list_connections(pool).await?;
    Ok(connections
        .into_iter()
        .map(|c| ConnRow {
            pool_name: pools
                .iter()
                .find(|p| p.id == c.pool_id)
                .map(|p| p.name.clone())
                .unwrap_or_default(),
            id: c.id.to_string(),
            identifier: c.identifier,
            display_name: c.display_name,
            provider: c.provider.as_str(),
            pool_id: c.pool_id.to_string(),
            app_id: c.app_id,
            events: c.encrypt_key.set || c.verification_token.set,
        })
        .collect())
}

#[derive(Template)]
#[template(path = "connections.html")]
pub struct ConnectionsPage {
    pub ctx: Ctx,
    pub rows: Vec<ConnRow>,
    pub has_pool: bool,
}

pub async fn list(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<DoneQuery>,
) -> ConsoleResult {
    Ok(ok(&ConnectionsPage {
        ctx: Ctx::new(&session, "connections").notice(q.done.as_deref()),
        rows: conn_rows(&state, None).await?,
        has_pool: !state.admin.list_pools().await?.is_empty(),
    }))
}

// ---- the wizard ----

/// The events to tick in the Feishu developer console (feishu-protocol.md §5).
pub const EVENTS: &[(&str, &str)] = &[
    ("contact.user.created_v3", "员工入职 · Employee joined"),
    (
        "contact.user.updated_v3",
        "员工信息被修改 · Employee changed — also carries status changes (suspended, resumed); there is no separate status-changed v3 event",
    ),
    ("contact.user.deleted_v3", "员工离职 · Employee left"),
    (
        "contact.department.created_v3",
        "部门新建 · Department created",
    ),
    (
        "contact.department.updated_v3",
        "部门信息变化 · Department changed",
    ),
    (
        "contact.department.deleted_v3",
        "部门被删除 · Department deleted",
    ),
    (
        "contact.scope.updated_v3",
        "通讯录权限范围变更 · Contact scope changed (orgsync reconciles what was added or removed)",
    ),
    (
        "contact.user_group.created_v3",
        "用户组被创建 · User group created (if listed; groups are also reconciled periodically)",
    ),
    (
        "contact.user_group.updated_v3",
        "用户组信息变化 · User group changed (if listed)",
    ),
    (
        "contact.user_group.deleted_v3",
        "用户组被删除 · User group deleted (if listed)",
    ),
    (
        "contact.user_group.member.changed_v3",
        "User group members changed (if listed)",
    ),
];

/// The permissions to grant (feishu-protocol.md §3.8).
pub const PERMISSIONS: &[(&str, &str)] = &[
    (
        "contact:contact.base:readonly",
        "获取通讯录基本信息 · read the contact directory (required to call the contact APIs and to receive contact events)",
    ),
    ("contact:user.base:readonly", "user names and basic profile"),
    ("contact:user.department:readonly", "users' departments"),
    (
        "contact:user.employee:readonly",
        "employment info, incl. the status flags that mark leavers and suspended users",
    ),
    (
        "contact:user.employee_id:readonly",
        "获取用户 user ID · the tenant user_id",
    ),
    ("contact:user.email:readonly", "e-mail addresses"),
    ("contact:user.phone:readonly", "mobile numbers"),
    ("contact:user.gender:readonly", "gender"),
    ("contact:department.base:readonly", "department names"),
    (
        "contact:department.organize:readonly",
        "the department structure (parents, order, leaders)",
    ),
    ("contact:group:readonly", "获取用户组信息 · user groups"),
];

pub struct PoolOption {
    pub id: String,
    pub name: String,
    pub selected: bool,
}

/// What the wizard form posts. Secrets are never echoed back into the page, and the form
/// has no `Debug` so no log line can print them.
#[derive(Default, Deserialize)]
pub struct WizardForm {
    #[serde(default)]
    pub pool: String,
    #[serde(default)]
    pub identifier: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub provider: String,
    #[serde(default)]
    pub base_url: String,
    #[serde(default)]
    pub app_id: String,
    #[serde(default)]
    pub app_secret: String,
    #[serde(default)]
    pub encrypt_key: String,
    #[serde(default)]
    pub verification_token: String,
}

#[derive(Template)]
#[template(path = "wizard.html")]
pub struct WizardPage {
    pub ctx: Ctx,
    pub pools: Vec<PoolOption>,
    pub form: WizardForm,
    pub error: Option<ConsoleError>,
    /// `{public}/connections/enterprise/` — the callback URL before the identifier.
    pub callback_prefix: String,
    pub events: &'static [(&'static str, &'static str)],
    pub permissions: &'static [(&'static str, &'static str)],
}

impl WizardPage {
    pub fn selected_pool(&self) -> String {
        self.pools
            .iter()
            .find(|p| p.selected)
            .map(|p| p.id.clone())
            .unwrap_or_default()
    }

    pub fn identifier_or_placeholder(&self) -> String {
        if self.form.identifier.trim().is_empty() {
            "{identifier}".to_owned()
        } else {
            self.form.identifier.trim().to_owned()
        }
    }
}

#[derive(Deserialize)]
pub struct WizardQuery {
    pool: Option<String>,
}

async fn wizard_page(
    state: &AppState,
    session: &Session,
    form: WizardForm,
    error: Option<ConsoleError>,
) -> ConsoleResult<WizardPage> {
    let pools = state.admin.list_pools().await?;
    let chosen = pools
        .iter()
        .position(|p| p.id.as_str() == form.pool)
        .unwrap_or(0);
    let mut ctx = Ctx::new(session, "connections");
    if let Some(p) = pools.get(chosen) {
        ctx = ctx.pool(p);
    }
    Ok(WizardPage {
        ctx,
        pools: pools
            .iter()
            .enumerate()
            .map(|(i, p)| PoolOption {
                id: p.id.to_string(),
                name: p.name.clone(),
                selected: i == chosen,
            })
            .collect(),
        form: WizardForm {
            app_secret: String::new(),
            encrypt_key: String::new(),
            verification_token: String::new(),
            ..form
        },
        error,
        callback_prefix: format!("{}/connections/enterprise/", state.admin.public_base_url()),
        events: EVENTS,
        permissions: PERMISSIONS,
    })
}

pub async fn wizard(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<WizardQuery>,
) -> ConsoleResult {
    if state.admin.list_pools().await?.is_empty() {
        // A connection lives in a pool: create one first.
        return Ok(Redirect::to("/console/pools").into_response());
    }
    let form = WizardForm {
        pool: q.pool.unwrap_or_default(),
        provider: "feishu".into(),
        ..WizardForm::default()
    };
    Ok(ok(&wizard_page(&state, &session, form, None).await?))
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

fn provider(s: &str) -> Result<Option<Provider>, ConsoleError> {
    if s.trim().is_empty() {
        return Ok(None);
    }
    Provider::parse(s.trim()).map(Some).ok_or_else(|| {
        ConsoleError::new(StatusCode::BAD_REQUEST, format!("unknown provider {s:?}"))
            .with_fix("Choose Feishu (open.feishu.cn) or Lark (open.larksuite.com).")
    })
}

pub async fn create(
    State(state): State<AppState>,
    CsrfForm(session, form): CsrfForm<WizardForm>,
) -> ConsoleResult {
    let result = async {
        let input = NewConnection {
            identifier: form.identifier.clone(),
            display_name: non_empty(&form.display_name),
            provider: provider(&form.provider)?,
            base_url: non_empty(&form.base_url),
            app_id: form.app_id.clone(),
            app_secret: form.app_secret.clone(),
            encrypt_key: non_empty(&form.encrypt_key),
            verification_token: non_empty(&form.verification_token),
            settings: None,
        };
        Ok::<_, ConsoleError>(
            state
                .admin
                .create_connection(&PoolId::from(form.pool.as_str()), input)
                .await?,
        )
    }
    .await;
    match result {
        // The page itself, not a redirect: it shows the credential check the save ran.
        Ok(c) => {
            let check = c.check.map(check_view);
            let page =
                connection_page(&state, &session, &c.id, check, Some("connection_created")).await?;
            Ok(ok(&page))
        }
        Err(mut e) => {
            let status = e.status;
            if e.fix.is_none() {
                e.fix = Some("Correct the field and submit again.".into());
            }
            e.fix = e
                .fix
                .map(|f| format!("{f} For safety, enter the App Secret and the event keys again."));
            let page = wizard_page(&state, &session, form, Some(e)).await?;
            Ok(render(status, &page))
        }
    }
}

// ---- detail ----

/// A credential test, ready to show.
pub struct CheckView {
    pub ok: bool,
    pub steps: Vec<StepView>,
}

pub struct StepView {
    pub label: &'static str,
    pub ok: bool,
    pub message: String,
    pub fix: Option<String>,
    pub code: Option<i64>,
}

fn check_view(check: CredentialCheck) -> CheckView {
    CheckView {
        ok: check.ok,
        steps: check
            .steps
            .into_iter()
            .map(|s: CheckStep| StepView {
                label: match s.step.as_str() {
                    "credentials" => "App ID and App Secret",
                    "contact_scope" => {
                        "Contact scope (which part of the organization the app may read)"
                    }
                    _ => "Check",
                },
                ok: s.ok,
                message: s.message,
                fix: s.fix,
                code: s.code,
            })
            .collect(),
    }
}

#[derive(Template)]
#[template(path = "connection.html")]
pub struct ConnectionPage {
    pub ctx: Ctx,
    pub c: ConnectionView,
    pub provider: &'static str,
    pub created: String,
    pub updated: String,
    pub check: Option<CheckView>,
    pub jobs: Vec<JobRow>,
    pub error: Option<ConsoleError>,
    pub just_created: bool,
}

async fn connection_page(
    state: &AppState,
    session: &Session,
    id: &ConnectionId,
    check: Option<CheckView>,
    done: Option<&str>,
) -> ConsoleResult<ConnectionPage> {
    let c = state.admin.connection(id).await?;
    let pool = state.admin.pool(&c.pool_id).await?;
    let jobs = state
        .admin
        .list_jobs(Some(id), page(None, Some(10)))
        .await?;
    Ok(ConnectionPage {
        ctx: Ctx::new(session, "connections").pool(&pool).notice(done),
        provider: c.provider.as_str(),
        created: fmt_ms(c.created_at),
        updated: fmt_ms(c.updated_at),
        check,
        jobs: job_rows(state, &jobs.items).await?,
        error: None,
        just_created: done == Some("connection_created"),
        c,
    })
}

pub async fn detail(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Query(q): Query<DoneQuery>,
) -> ConsoleResult {
    let page = connection_page(
        &state,
        &session,
        &ConnectionId::from(id),
        None,
        q.done.as_deref(),
    )
    .await?;
    Ok(ok(&page))
}

/// What the connection form posts (no `Debug`: it holds secrets).
#[derive(Default, Deserialize)]
pub struct EditForm {
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    provider: String,
    #[serde(default)]
    base_url: String,
    #[serde(default)]
    app_id: String,
    #[serde(default)]
    app_secret: String,
    #[serde(default)]
    encrypt_key: String,
    #[serde(default)]
    clear_encrypt_key: Option<String>,
    #[serde(default)]
    verification_token: String,
    #[serde(default)]
    clear_verification_token: Option<String>,
    #[serde(default)]
    reconcile_interval_secs: String,
    #[serde(default)]
    max_count: String,
    #[serde(default)]
    max_fraction: String,
    #[serde(default)]
    pacing_per_second: String,
    #[serde(default)]
    pacing_per_minute: String,
}

fn number<T: std::str::FromStr>(field: &str, value: &str, hint: &str) -> Result<T, ConsoleError> {
    value.trim().parse().map_err(|_| {
        ConsoleError::new(
            StatusCode::BAD_REQUEST,
            format!("{field}: {value:?} is not a number"),
        )
        .with_fix(hint.to_owned())
    })
}

/// A number, or `default` when the field is blank.
fn number_or<T: std::str::FromStr>(
    field: &str,
    value: &str,
    default: T,
    hint: &str,
) -> Result<T, ConsoleError> {
    if value.trim().is_empty() {
        Ok(default)
    } else {
        number(field, value, hint)
    }
}

/// Blank keeps a secret, the "clear" box removes it.
fn secret_patch(value: &str, clear: bool) -> Option<Option<String>> {
    if clear {
        Some(None)
    } else {
        non_empty(value).map(Some)
    }
}

fn patch_of(form: &EditForm) -> Result<ConnectionPatch, ConsoleError> {
    Ok(ConnectionPatch {
        display_name: Some(form.display_name.clone()),
        provider: provider(&form.provider)?,
        base_url: Some(non_empty(&form.base_url)),
        app_id: Some(form.app_id.clone()),
        app_secret: non_empty(&form.app_secret),
        encrypt_key: secret_patch(&form.encrypt_key, form.clear_encrypt_key.is_some()),
        verification_token: secret_patch(
            &form.verification_token,
            form.clear_verification_token.is_some(),
        ),
        settings: Some(ConnectionSettings {
            reconcile_interval_secs: number(
                "Reconcile every (seconds)",
                &form.reconcile_interval_secs,
                "Give whole seconds, e.g. 21600 for 6 hours, or 0 to turn scheduled reconciliation off.",
            )?,
            deletion_threshold: DeletionThreshold {
                max_count: number(
                    "Park deletions above (count)",
                    &form.max_count,
                    "Give a whole number, e.g. 50.",
                )?,
                max_fraction: number(
                    "Park deletions above (share)",
                    &form.max_fraction,
                    "Give a share between 0 and 1, e.g. 0.05 for 5 %.",
                )?,
            },
            pacing: Pacing {
                per_second: number_or(
                    "Pacing (requests/s per endpoint)",
                    &form.pacing_per_second,
                    Pacing::default().per_second,
                    "Give whole requests per second, e.g. 50 (Feishu's limit), or leave it empty.",
                )?,
                per_minute: number_or(
                    "Pacing (requests/min per endpoint)",
                    &form.pacing_per_minute,
                    Pacing::default().per_minute,
                    "Give whole requests per minute, e.g. 1000 (Feishu's limit), or leave it empty.",
                )?,
            },
        }),
    })
}

pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(session, form): CsrfForm<EditForm>,
) -> ConsoleResult {
    let id = ConnectionId::from(id);
    let result = match patch_of(&form) {
        Ok(patch) => state
            .admin
            .update_connection(&id, patch)
            .await
            .map_err(ConsoleError::from),
        Err(e) => Err(e),
    };
    match result {
        // New credentials were checked on save: show the result instead of redirecting.
        Ok(c) if c.check.is_some() => {
            let check = c.check.map(check_view);
            let page =
                connection_page(&state, &session, &id, check, Some("connection_updated")).await?;
            Ok(ok(&page))
        }
        Ok(_) => Ok(Redirect::to(&format!(
            "/console/connections/{id}?done=connection_updated"
        ))
        .into_response()),
        Err(e) => {
            let status = e.status;
            let mut page = connection_page(&state, &session, &id, None, None).await?;
            page.error = Some(e);
            Ok(render(status, &page))
        }
    }
}

#[derive(Template)]
#[template(path = "check.html")]
pub struct CheckFragment {
    pub check: CheckView,
}

pub async fn test(
    State(state): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(session, _): CsrfForm<NoFields>,
) -> ConsoleResult {
    let id = ConnectionId::from(id);
    let check = match state.admin.test_credentials(&id).await {
        Ok(c) => check_view(c),
        Err(e) if session.htmx => {
            // Show the failure where the result would have gone.
            let e = ConsoleError::from(e);
            CheckView {
                ok: false,
                steps: vec![StepView {
                    label: "Test",
                    ok: false,
                    message: e.message,
                    fix: e.fix,
                    code: None,
                }],
            }
        }
        Err(e) => return Err(ConsoleError::from(e).with_csrf(&session.csrf)),
    };
    if session.htmx {
        return Ok(ok(&CheckFragment { check }));
    }
    let page = connection_page(&state, &session, &id, Some(check), None).await?;
    Ok(ok(&page))
}

#[derive(Deserialize)]
pub struct JobForm {
    #[serde(default)]
    kind: String,
}

pub async fn start_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(session, form): CsrfForm<JobForm>,
) -> ConsoleResult {
    let kind = match form.kind.as_str() {
        "import" => JobKind::Import,
        "reconcile" => JobKind::Reconcile,
        other => {
            return Err(ConsoleError::new(
                StatusCode::BAD_REQUEST,
                format!("unknown job kind {other:?}"),
            )
            .with_fix("Use the Start import or Start reconciliation button.")
            .with_csrf(&session.csrf));
        }
    };
    let job = state
        .admin
        .start_job(&ConnectionId::from(id), kind)
        .await
        .map_err(|e| ConsoleError::from(e).with_csrf(&session.csrf))?;
    Ok(Redirect::to(&format!("/console/jobs/{}", job.id)).into_response())
}

#[derive(Template)]
#[template(path = "connection_delete.html")]
pub struct DeletePage {
    pub ctx: Ctx,
    pub c: ConnectionView,
}

pub async fn delete_page(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> ConsoleResult {
    let c = state.admin.connection(&ConnectionId::from(id)).await?;
    Ok(ok(&DeletePage {
        ctx: Ctx::new(&session, "connections"),
        c,
    }))
}

pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(session, _): CsrfForm<NoFields>,
) -> ConsoleResult {
    state
        .admin
        .delete_connection(&ConnectionId::from(id))
        .await
        .map_err(|e| ConsoleError::from(e).with_csrf(&session.csrf))?;
    Ok(Redirect::to("/console/connections?done=connection_deleted").into_response())
}
