//! Login, logout, the dashboard and user pools.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use directory::admin::{counted, page};
use directory::ids::PoolId;
use serde::Deserialize;

use super::jobs::{JobRow, job_rows};
use super::session::{self, CsrfForm, Session};
use super::util::{ConsoleError, ConsoleResult, Ctx, fmt_ms, ok, render};
use crate::AppState;
use crate::login_limit::{ClientAddr, Lockout};

// ---- login ----

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub ctx: Ctx,
    pub next: String,
    pub error: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    done: Option<String>,
}

/// Only console paths: never an open redirect.
fn safe_next(next: Option<&str>) -> String {
    next.filter(|n| n.starts_with("/console") && !n.starts_with("/console/login"))
        .filter(|n| !n.contains("//") && !n.contains('\\'))
        .unwrap_or("/console")
        .to_owned()
}

pub async fn login_page(
    State(state): State<AppState>,
    Query(q): Query<LoginQuery>,
    headers: axum::http::HeaderMap,
) -> Response {
    let next = safe_next(q.next.as_deref());
    if session::cookie_of(&headers)
        .is_some_and(|c| session::verify(&state.settings.admin_token, &c))
    {
        return Redirect::to(&next).into_response();
    }
    ok(&LoginPage {
        ctx: Ctx::default().notice(q.done.as_deref()),
        next,
        error: None,
    })
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
    next: Option<String>,
}

/// Checks the admin token under the per-address limits of [`crate::login_limit`]: a wrong
/// token is answered after a growing delay, too many lock the address out (429).
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    let settings = &state.settings;
    let limiter = &state.login_limiter;
    // Locked out: refused before the token is looked at, so guessing during it learns nothing.
    if let Err(lockout) = limiter.check(client, Instant::now()) {
        tracing::warn!(%client, "console login refused: this address is locked out after too many wrong admin tokens");
        return locked_out(next, lockout);
    }
    if !settings.admin_token.verify(form.token.trim()) {
        let failure = limiter.failed(client, Instant::now());
        // The address, never the submitted text: it may be a mistyped real token.
        tracing::warn!(
            %client,
            failures = failure.failures,
            max_failures = limiter.limits().max_failures,
            "console login with a wrong admin token"
        );
        if let Some(lockout) = failure.lockout {
            tracing::warn!(
                %client,
                lockout_secs = lockout.retry_after.as_secs(),
                "console login locked out for this address"
            );
            return locked_out(next, lockout);
        }
        tokio::time::sleep(failure.delay).await;
        return render(
            StatusCode::UNAUTHORIZED,
            &LoginPage {
                ctx: Ctx::default(),
                next,
                error: Some(
                    "That is not the admin token. Paste the token orgsync printed when it first started (the same one the REST API takes as a Bearer token).".into(),
                ),
            },
        );
    }
    limiter.succeeded(client);
    let cookie = session::issue(&settings.admin_token);
    (
        [(
            header::SET_COOKIE,
            session::set_cookie(&cookie, settings.secure_cookies),
        )],
        Redirect::to(&next),
    )
        .into_response()
}

/// 429 with `Retry-After` and the time to come back.
fn locked_out(next: String, lockout: Lockout) -> Response {
    // Whole seconds, rounded up: coming back on time must work.
    let secs = lockout.retry_after.as_millis().div_ceil(1000);
    let until_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_add(lockout.retry_after)
        .as_millis();
    let minutes = secs.div_ceil(60);
    let mut page = render(
        StatusCode::TOO_MANY_REQUESTS,
        &LoginPage {
            ctx: Ctx::default(),
            next,
            error: Some(format!(
                "Too many wrong admin tokens from your address: logging in is blocked until {} (in {minutes} minute{}), even with the right token. Try again then with the token orgsync printed when it first started; if it is lost, set ORGSYNC_ADMIN_TOKEN and restart orgsync.",
                fmt_ms(i64::try_from(until_ms).unwrap_or(i64::MAX)),
                if minutes == 1 { "" } else { "s" },
            )),
        },
    );
    if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
        page.headers_mut().insert(header::RETRY_AFTER, value);
    }
    page
}

#[derive(Template)]
#[template(path = "logout.html")]
pub struct LogoutPage {
    pub ctx: Ctx,
}

pub async fn logout_page(session: Session) -> Response {
    ok(&LogoutPage {
        ctx: Ctx::new(&session, ""),
    })
}

pub async fn logout(
    State(state): State<AppState>,
    CsrfForm(_, _): CsrfForm<session::NoFields>,
) -> Response {
    (
        [(
            header::SET_COOKIE,
            session::set_cookie("", state.settings.secure_cookies),
        )],
        Redirect::to("/console/login?done=logged_out"),
    )
        .into_response()
}

// ---- dashboard and pools ----

pub struct PoolRow {
    pub id: String,
    pub name: String,
    pub connections: usize,
    pub created: String,
}

async fn pool_rows(state: &AppState) -> ConsoleResult<Vec<PoolRow>> {
    let pools = state.admin.list_pools().await?;
    let connections = state.admin.list_connections(None).await?;
    Ok(pools
        .into_iter()
        .map(|p| PoolRow {
            connections: connections.iter().filter(|c| c.pool_id == p.id).count(),
            id: p.id.to_string(),
            name: p.name,
            created: fmt_ms(p.created_at),
        })
        .collect())
}

#[derive(Template)]
#[template(path = "dashboard.html")]
pub struct DashboardPage {
    pub ctx: Ctx,
    pub pools: Vec<PoolRow>,
    pub connections: Vec<super::connections::ConnRow>,
    pub jobs: Vec<JobRow>,
}

pub async fn dashboard(State(state): State<AppState>, session: Session) -> ConsoleResult {
    let pools = pool_rows(&state).await?;
    let connections = super::connections::conn_rows(&state, None).await?;
    let jobs = state.admin.list_jobs(None, page(None, Some(10))).await?;
    let mut ctx = Ctx::new(&session, "home");
    if let [only] = pools.as_slice() {
        ctx.pool_id = Some(only.id.clone());
        ctx.pool_name = Some(only.name.clone());
    }
    Ok(ok(&DashboardPage {
        ctx,
        pools,
        jobs: job_rows(&state, &jobs.items).await?,
        connections,
    }))
}

#[derive(Template)]
#[template(path = "pools.html")]
pub struct PoolsPage {
    pub ctx: Ctx,
    pub pools: Vec<PoolRow>,
    pub name: String,
    pub error: Option<String>,
}

#[derive(Deserialize)]
pub struct DoneQuery {
    pub done: Option<String>,
}

pub async fn pools(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<DoneQuery>,
) -> ConsoleResult {
    Ok(ok(&PoolsPage {
        ctx: Ctx::new(&session, "pools").notice(q.done.as_deref()),
        pools: pool_rows(&state).await?,
        name: String::new(),
        error: None,
    }))
}

#[derive(Deserialize)]
pub struct PoolForm {
    #[serde(default)]
    name: String,
}

pub async fn create_pool(
    State(state): State<AppState>,
    CsrfForm(session, form): CsrfForm<PoolForm>,
) -> ConsoleResult {
    match state.admin.create_pool(&form.name).await {
        Ok(pool) => Ok(
            Redirect::to(&format!("/console/pools/{}?done=pool_created", pool.id)).into_response(),
        ),
        Err(e) => {
            let e = ConsoleError::from(e);
            Ok(render(
                e.status,
                &PoolsPage {
                    ctx: Ctx::new(&session, "pools"),
                    pools: pool_rows(&state).await?,
                    name: form.name,
                    error: Some(e.message),
                },
            ))
        }
    }
}

#[derive(Template)]
#[template(path = "pool.html")]
pub struct PoolPage {
    pub ctx: Ctx,
    pub id: String,
    pub name: String,
    pub created: String,
    pub connections: Vec<super::connections::ConnRow>,
    /// What the rename form shows (the submitted name after a refusal).
    pub new_name: String,
    pub error: Option<ConsoleError>,
}

async fn pool_page(
    state: &AppState,
    session: &Session,
    pool: &PoolId,
    done: Option<&str>,
) -> ConsoleResult<PoolPage> {
    let pool = state.admin.pool(pool).await?;
    Ok(PoolPage {
        ctx: Ctx::new(session, "pools").pool(&pool).notice(done),
        id: pool.id.to_string(),
        created: fmt_ms(pool.created_at),
        connections: super::connections::conn_rows(state, Some(&pool.id)).await?,
        new_name: pool.name.clone(),
        name: pool.name,
        error: None,
    })
}

pub async fn pool(
    State(state): State<AppState>,
    session: Session,
    Path(pool): Path<String>,
    Query(q): Query<DoneQuery>,
) -> ConsoleResult {
    let page = pool_page(&state, &session, &PoolId::from(pool), q.done.as_deref()).await?;
    Ok(ok(&page))
}

pub async fn rename_pool(
    State(state): State<AppState>,
    Path(pool): Path<String>,
    CsrfForm(session, form): CsrfForm<PoolForm>,
) -> ConsoleResult {
    let pool = PoolId::from(pool);
    match state.admin.rename_pool(&pool, &form.name).await {
        Ok(_) => {
            Ok(Redirect::to(&format!("/console/pools/{pool}?done=pool_renamed")).into_response())
        }
        Err(e) => {
            let e = ConsoleError::from(e).with_csrf(&session.csrf);
            let mut page = pool_page(&state, &session, &pool, None).await?;
            page.new_name = form.name;
            let status = e.status;
            page.error = Some(e);
            Ok(render(status, &page))
        }
    }
}

#[derive(Template)]
#[template(path = "pool_delete.html")]
pub struct PoolDeletePage {
    pub ctx: Ctx,
    pub id: String,
    pub name: String,
    /// `2 connections`, `1,945 users`.
    pub connections: String,
    pub users: String,
    pub error: Option<ConsoleError>,
}

async fn pool_delete_page(
    state: &AppState,
    session: &Session,
    pool: &PoolId,
) -> ConsoleResult<PoolDeletePage> {
    let p = state.admin.pool(pool).await?;
    let contents = state.admin.pool_contents(pool).await?;
    Ok(PoolDeletePage {
        ctx: Ctx::new(session, "pools").pool(&p),
        id: p.id.to_string(),
        name: p.name,
        connections: counted(contents.connections, "connection"),
        users: counted(contents.users, "user"),
        error: None,
    })
}

pub async fn delete_pool_page(
    State(state): State<AppState>,
    session: Session,
    Path(pool): Path<String>,
) -> ConsoleResult {
    let page = pool_delete_page(&state, &session, &PoolId::from(pool)).await?;
    Ok(ok(&page))
}

#[derive(Deserialize)]
pub struct DeletePoolForm {
    #[serde(default)]
    confirm: String,
}

pub async fn delete_pool(
    State(state): State<AppState>,
    Path(pool): Path<String>,
    CsrfForm(session, form): CsrfForm<DeletePoolForm>,
) -> ConsoleResult {
    let pool = PoolId::from(pool);
    // The console always asks for the name, whatever the pool holds.
    let result = if form.confirm.trim().is_empty() {
        Err(
            ConsoleError::new(StatusCode::BAD_REQUEST, "The pool's name was not typed.")
                .with_fix("Type the pool's name into the field to confirm the deletion."),
        )
    } else {
        state
            .admin
            .delete_pool(&pool, Some(&form.confirm))
            .await
            .map_err(ConsoleError::from)
    };
    match result {
        Ok(()) => Ok(Redirect::to("/console/pools?done=pool_deleted").into_response()),
        Err(e) => {
            let e = e.with_csrf(&session.csrf);
            let mut page = pool_delete_page(&state, &session, &pool).await?;
            let status = e.status;
            page.error = Some(e);
            Ok(render(status, &page))
        }
    }
}

/// Nav links for pool pages when no pool is chosen: the first pool, or the pools page.
pub async fn go(
    State(state): State<AppState>,
    _session: Session,
    Path(what): Path<String>,
) -> ConsoleResult {
    if !matches!(what.as_str(), "tree" | "users" | "groups" | "parked") {
        return Err(ConsoleError::not_found("page"));
    }
    let pools = state.admin.list_pools().await?;
    Ok(match pools.first() {
        Some(p) => Redirect::to(&format!("/console/pools/{}/{what}", p.id)).into_response(),
        None => Redirect::to("/console/pools").into_response(),
    })
}

pub async fn not_found(session: Session) -> ConsoleError {
    ConsoleError::new(StatusCode::NOT_FOUND, "There is no such console page.")
        .with_fix("Use the navigation on the left.")
        .with_csrf(&session.csrf)
}
