//! Sync jobs: the list, a job's live progress (htmx polling) and its per-object action log.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::HeaderValue;
use axum::response::Response;
use directory::admin::{keyed_page, page};
use directory::ids::{ConnectionId, JobId, PoolId};
use directory::model::{
    ActionResult, JobKind, JobState, JobTrigger, ObjectKind, SyncAction, SyncJob, Verdict,
};
use directory::store::ActionLogFilter;
use serde::Deserialize;

use super::session::Session;
use super::util::{
    ConsoleError, ConsoleResult, Ctx, Pager, fmt_duration, fmt_ms, ok, opt, with_query,
};
use crate::AppState;

pub struct JobRow {
    pub id: String,
    pub connection_id: String,
    pub connection: String,
    pub kind: &'static str,
    pub trigger: &'static str,
    pub running: bool,
    /// `complete`, `partial`, `failed`, or `running`.
    pub verdict: &'static str,
    pub phase: String,
    pub applied: u64,
    pub planned: u64,
    pub started: String,
    pub duration: String,
}

fn kind_str(k: JobKind) -> &'static str {
    match k {
        JobKind::Import => "import",
        JobKind::Reconcile => "reconcile",
    }
}

fn trigger_str(t: JobTrigger) -> &'static str {
    match t {
        JobTrigger::Admin => "admin",
        JobTrigger::Schedule => "schedule",
        JobTrigger::ScopeChange => "scope change",
    }
}

fn verdict_str(job: &SyncJob) -> &'static str {
    match (job.state, job.verdict) {
        (JobState::Running, _) => "running",
        (_, Some(Verdict::Complete)) => "complete",
        (_, Some(Verdict::Partial)) => "partial",
        (_, Some(Verdict::Failed) | None) => "failed",
    }
}

fn duration(job: &SyncJob) -> String {
    let end = job.finished_at.unwrap_or_else(directory::ids::now_ms);
    fmt_duration(end - job.started_at)
}

async fn connection_labels(state: &AppState) -> ConsoleResult<HashMap<String, String>> {
    Ok(state
        .admin
        .list_connections(None)
        .await?
        .into_iter()
        .map(|c| (c.id.to_string(), c.identifier))
        .collect())
}

pub async fn job_rows(state: &AppState, jobs: &[SyncJob]) -> ConsoleResult<Vec<JobRow>> {
    let labels = connection_labels(state).await?;
    Ok(jobs
        .iter()
        .map(|j| JobRow {
            id: j.id.to_string(),
            connection_id: j.connection_id.to_string(),
            connection: labels
                .get(j.connection_id.as_str())
                .cloned()
                .unwrap_or_else(|| format!("{} (deleted)", j.connection_id)),
            kind: kind_str(j.kind),
            trigger: trigger_str(j.trigger),
            running: j.state == JobState::Running,
            verdict: verdict_str(j),
            phase: j.progress.phase.clone(),
            applied: j.progress.applied,
            planned: j.progress.planned,
            started: fmt_ms(j.started_at),
            duration: duration(j),
        })
        .collect())
}

#[derive(Template)]
#[template(path = "jobs.html")]
pub struct JobsPage {
    pub ctx: Ctx,
    pub rows: Vec<JobRow>,
    pub connections: Vec<(String, String)>,
    pub connection: String,
    pub pager: Pager,
}

impl JobsPage {
    pub fn is_selected(&self, id: &str) -> bool {
        self.connection == id
    }
}

#[derive(Deserialize)]
pub struct JobsQuery {
    connection: Option<String>,
    offset: Option<u64>,
}

pub async fn list(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<JobsQuery>,
) -> ConsoleResult {
    let connection = opt(&q.connection).map(ConnectionId::from);
    let req = page(q.offset, Some(50));
    let jobs = state.admin.list_jobs(connection.as_ref(), req).await?;
    let selected = connection.map(|c| c.to_string()).unwrap_or_default();
    let pager = Pager::new(req.offset, req.limit, jobs.items.len(), None, |o| {
        with_query(
            "/console/jobs",
            &[("connection", &selected), ("offset", &o.to_string())],
        )
    });
    let mut connections: Vec<(String, String)> =
        connection_labels(&state).await?.into_iter().collect();
    connections.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(ok(&JobsPage {
        ctx: Ctx::new(&session, "jobs"),
        rows: job_rows(&state, &jobs.items).await?,
        connections,
        connection: selected,
        pager,
    }))
}

// ---- one job ----

pub struct CountRow {
    pub action: String,
    pub applied: u64,
    pub skipped: u64,
    pub parked: u64,
    pub failed: u64,
}

/// A job, ready to show (the progress fragment and the job page share it).
pub struct JobView {
    pub row: JobRow,
    pub pool_id: String,
    pub pages: u64,
    pub departments: u64,
    pub users: u64,
    pub groups: u64,
    /// Feishu answers that said "throttled" (each waited out).
    pub throttled: u64,
    /// 0–100 while applying; 0 before the plan is known.
    pub percent: u64,
    pub error: Option<String>,
    pub fix: Option<String>,
    pub error_code: Option<i64>,
    pub finished: String,
    pub counts: Vec<CountRow>,
}

fn job_view(job: &SyncJob, row: JobRow) -> JobView {
    let p = &job.progress;
    // Feishu errors spell their remedy after "To fix:"; show it apart.
    let (error, fix) = match job.error.as_deref() {
        Some(e) => match e.split_once(". To fix: ") {
            Some((msg, fix)) => (Some(format!("{msg}.")), Some(fix.to_owned())),
            None => (Some(e.to_owned()), None),
        },
        None => (None, None),
    };
    let fix = fix.or_else(|| match (job.verdict, job.error_code) {
        (Some(Verdict::Partial), _) => Some(
            "Look for failed or skipped lines in the action log below; a reconciliation retries the failed reads.".to_owned(),
        ),
        _ => None,
    });
    JobView {
        pool_id: job.pool_id.to_string(),
        pages: p.pages,
        departments: p.departments,
        users: p.users,
        groups: p.groups,
        throttled: p.throttled,
        percent: (p.applied * 100)
            .checked_div(p.planned)
            .unwrap_or(0)
            .min(100),
        error,
        fix,
        error_code: job.error_code,
        finished: job.finished_at.map(fmt_ms).unwrap_or_default(),
        counts: job
            .counts
            .iter()
            .map(|(action, by)| CountRow {
                action: action.clone(),
                applied: by.get("applied").copied().unwrap_or(0),
                skipped: by.get("skipped").copied().unwrap_or(0),
                parked: by.get("parked").copied().unwrap_or(0),
                failed: by.get("failed").copied().unwrap_or(0),
            })
            .collect(),
        row,
    }
}

async fn load(state: &AppState, id: &str) -> ConsoleResult<JobView> {
    let job = state.admin.job(&JobId::from(id)).await?;
    let row = job_rows(state, std::slice::from_ref(&job))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ConsoleError::not_found("sync job"))?;
    Ok(job_view(&job, row))
}

pub struct LogRow {
    pub seq: i64,
    pub at: String,
    pub action: &'static str,
    pub kind: &'static str,
    pub name: String,
    pub external_id: String,
    pub link: Option<String>,
    pub result: &'static str,
    pub reason: String,
}

#[derive(Template)]
#[template(path = "job.html")]
pub struct JobPage {
    pub ctx: Ctx,
    pub job: JobView,
    pub log: Vec<LogRow>,
    pub actions: Vec<&'static str>,
    pub action: String,
    pub kind: String,
    pub result: String,
    pub pager: Pager,
}

#[derive(Deserialize)]
pub struct LogQuery {
    action: Option<String>,
    kind: Option<String>,
    result: Option<String>,
    after: Option<String>,
}

pub async fn detail(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
) -> ConsoleResult {
    let job = load(&state, &id).await?;
    let filter = ActionLogFilter {
        action: opt(&q.action).and_then(SyncAction::parse),
        kind: opt(&q.kind).and_then(ObjectKind::parse),
        result: opt(&q.result).and_then(ActionResult::parse),
    };
    let req = keyed_page(q.after.as_deref(), None, Some(100))?;
    let entries = state
        .admin
        .job_log(&JobId::from(id.as_str()), &filter, req)
        .await?;
    let action = filter
        .action
        .map(SyncAction::as_str)
        .unwrap_or("")
        .to_owned();
    let kind = filter.kind.map(ObjectKind::as_str).unwrap_or("").to_owned();
    let result = filter
        .result
        .map(ActionResult::as_str)
        .unwrap_or("")
        .to_owned();
    let base = format!("/console/jobs/{id}");
    let link = |after: &str| {
        format!(
            "{}#log",
            with_query(
                &base,
                &[
                    ("action", &action),
                    ("kind", &kind),
                    ("result", &result),
                    ("after", after),
                ],
            )
        )
    };
    let pager = Pager::keyed(
        entries.items.len(),
        None,
        entries.next.as_deref().map(link),
        req.after.map(|_| link("")),
    );
    let pool = job.pool_id.clone();
    let log = entries
        .items
        .into_iter()
        .map(|e| LogRow {
            seq: e.seq,
            at: fmt_ms(e.at),
            action: e.action.as_str(),
            kind: e.kind.as_str(),
            name: e.name.unwrap_or_default(),
            link: e.object_id.map(|o| {
                let section = match e.kind {
                    ObjectKind::User => "users",
                    ObjectKind::Department => "departments",
                    ObjectKind::Group => "groups",
                };
                format!("/console/pools/{pool}/{section}/{o}")
            }),
            external_id: e.external_id,
            result: e.result.as_str(),
            reason: e.reason.unwrap_or_default(),
        })
        .collect();
    let mut ctx = Ctx::new(&session, "jobs");
    if let Ok(pool) = state.admin.pool(&PoolId::from(job.pool_id.as_str())).await {
        ctx = ctx.pool(&pool);
    }
    Ok(ok(&JobPage {
        ctx,
        job,
        log,
        actions: SyncAction::ALL.iter().map(|a| a.as_str()).collect(),
        action,
        kind,
        result,
        pager,
    }))
}

#[derive(Template)]
#[template(path = "job_progress.html")]
pub struct ProgressFragment {
    pub job: JobView,
}

/// The polled fragment. Once the job has finished, htmx is told to reload the page, which
/// then shows the verdict and the action log and polls no more.
pub async fn progress(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> ConsoleResult {
    let job = load(&state, &id)
        .await
        .map_err(|e| e.with_csrf(&session.csrf))?;
    let finished = !job.row.running;
    let mut resp: Response = ok(&ProgressFragment { job });
    if finished && session.htmx {
        resp.headers_mut()
            .insert("hx-refresh", HeaderValue::from_static("true"));
    }
    Ok(resp)
}
