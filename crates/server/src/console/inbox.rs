//! The event log (the durable inbox) and parked deletions.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use directory::admin::{BulkOutcome, BulkParked, ParkedDecision, keyed_page};
use directory::ids::{ConnectionId, JobId, PoolId, is_id};
use directory::model::{ObjectKind, ParkedState};
use directory::store::{InboxFilter, InboxState, ParkedFilter};
use serde::Deserialize;

use super::session::{CsrfForm, NoFields, Session};
use super::util::{
    ConsoleError, ConsoleResult, Ctx, Pager, fmt_ms, fmt_opt_ms, ok, opt, with_query,
};
use crate::AppState;

pub struct EventRow {
    pub id: i64,
    pub received: String,
    pub created: String,
    pub event_type: String,
    pub connection: String,
    pub state: &'static str,
    pub attempts: i64,
    pub error: String,
    pub outcome: String,
}

async fn connection_labels(state: &AppState) -> ConsoleResult<HashMap<String, (String, String)>> {
    Ok(state
        .admin
        .list_connections(None)
        .await?
        .into_iter()
        .map(|c| (c.id.to_string(), (c.identifier, c.pool_id.to_string())))
        .collect())
}

#[derive(Template)]
#[template(path = "events.html")]
pub struct EventsPage {
    pub ctx: Ctx,
    pub rows: Vec<EventRow>,
    pub connections: Vec<(String, String)>,
    pub states: Vec<&'static str>,
    pub connection: String,
    pub state: String,
    pub event_type: String,
    pub pager: Pager,
}

#[derive(Deserialize)]
pub struct EventsQuery {
    connection: Option<String>,
    state: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    after: Option<String>,
}

pub async fn events(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<EventsQuery>,
) -> ConsoleResult {
    let filter = InboxFilter {
        pool_id: None,
        connection_id: opt(&q.connection).map(ConnectionId::from),
        state: opt(&q.state).and_then(InboxState::parse),
        event_type: opt(&q.event_type).map(str::to_owned),
    };
    let req = keyed_page(q.after.as_deref(), None, Some(50))?;
    let list = state.admin.inbox(&filter, req).await?;
    let labels = connection_labels(&state).await?;
    let connection = filter
        .connection_id
        .as_ref()
        .map(|c| c.to_string())
        .unwrap_or_default();
    let st = filter
        .state
        .map(InboxState::as_str)
        .unwrap_or("")
        .to_owned();
    let ty = filter.event_type.clone().unwrap_or_default();
    let link = |after: &str| {
        with_query(
            "/console/events",
            &[
                ("connection", &connection),
                ("state", &st),
                ("type", &ty),
                ("after", after),
            ],
        )
    };
    let pager = Pager::keyed(
        list.items.len(),
        list.total,
        list.next.as_deref().map(link),
        req.after.map(|_| link("")),
    );
    let mut connections: Vec<(String, String)> = labels
        .iter()
        .map(|(id, (label, _))| (id.clone(), label.clone()))
        .collect();
    connections.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(ok(&EventsPage {
        ctx: Ctx::new(&session, "events"),
        rows: list
            .items
            .iter()
            .map(|e| EventRow {
                id: e.id,
                received: fmt_ms(e.received_at),
                created: fmt_opt_ms(e.created_at),
                event_type: e.event_type.clone(),
                connection: labels
                    .get(e.connection_id.as_str())
                    .map(|l| l.0.clone())
                    .unwrap_or_else(|| e.connection_id.to_string()),
                state: e.state.as_str(),
                attempts: e.attempts,
                error: e.last_error.clone().unwrap_or_default(),
                outcome: e.outcome.clone().unwrap_or_default(),
            })
            .collect(),
        connections,
        states: vec!["pending", "applied", "ignored", "parked"],
        connection,
        state: st,
        event_type: ty,
        pager,
    }))
}

#[derive(Template)]
#[template(path = "event.html")]
pub struct EventPage {
    pub ctx: Ctx,
    pub row: EventRow,
    pub event_id: String,
    pub next_attempt: String,
    pub finished: String,
    pub payload: String,
}

pub async fn event(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> ConsoleResult {
    let id: i64 = id
        .parse()
        .map_err(|_| ConsoleError::not_found("inbox event").with_csrf(&session.csrf))?;
    let e = state.admin.inbox_event(id).await?;
    let labels = connection_labels(&state).await?;
    let payload = serde_json::from_str::<serde_json::Value>(&e.payload)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| e.payload.clone());
    Ok(ok(&EventPage {
        ctx: Ctx::new(&session, "events"),
        event_id: e.event_id.clone(),
        next_attempt: if e.state == InboxState::Pending {
            fmt_ms(e.next_attempt_at)
        } else {
            String::new()
        },
        finished: fmt_opt_ms(e.finished_at),
        payload,
        row: EventRow {
            id: e.id,
            received: fmt_ms(e.received_at),
            created: fmt_opt_ms(e.created_at),
            event_type: e.event_type,
            connection: labels
                .get(e.connection_id.as_str())
                .map(|l| l.0.clone())
                .unwrap_or_else(|| e.connection_id.to_string()),
            state: e.state.as_str(),
            attempts: e.attempts,
            error: e.last_error.unwrap_or_default(),
            outcome: e.outcome.unwrap_or_default(),
        },
    }))
}

// ---- parked deletions ----

pub struct ParkedRow {
    pub id: i64,
    pub kind: &'static str,
    pub name: String,
    pub link: Option<String>,
    pub external_id: String,
    pub reason: String,
    pub state: &'static str,
    pub pending: bool,
    pub job_id: String,
    pub connection: String,
    pub created: String,
    /// When a later job parked it again (empty when only parked once).
    pub last_parked: String,
    pub resolved: String,
    pub resolution: String,
}

#[derive(Template)]
#[template(path = "parked.html")]
pub struct ParkedPage {
    pub ctx: Ctx,
    pub rows: Vec<ParkedRow>,
    pub state: String,
    /// The job the list is narrowed to (empty: every job).
    pub job: String,
    /// Pending entries of the pool (of the job when narrowed).
    pub pending: u64,
    /// The confirmation pages of the bulk decisions.
    pub approve_all: String,
    pub reject_all: String,
    pub pager: Pager,
}

#[derive(Deserialize)]
pub struct ParkedQuery {
    state: Option<String>,
    job: Option<String>,
    after: Option<String>,
    done: Option<String>,
}

/// A `job` query or form value: absent when empty, a 404 when it is not an id.
fn job_param(job: &Option<String>) -> ConsoleResult<Option<JobId>> {
    match opt(job) {
        None => Ok(None),
        Some(j) if is_id(j) => Ok(Some(JobId::from(j))),
        Some(_) => Err(ConsoleError::not_found("sync job")),
    }
}

pub async fn parked(
    State(state): State<AppState>,
    session: Session,
    Path(pool): Path<String>,
    Query(q): Query<ParkedQuery>,
) -> ConsoleResult {
    let pool = state.admin.pool(&PoolId::from(pool)).await?;
    // Pending by default: that is what needs a decision. `all` shows every state.
    let chosen = q.state.as_deref().unwrap_or("pending");
    let job = job_param(&q.job)?;
    let filter = ParkedFilter {
        state: ParkedState::parse(chosen),
        job_id: job.clone(),
        ..ParkedFilter::pool(&pool.id)
    };
    let req = keyed_page(q.after.as_deref(), None, Some(50))?;
    let list = state.admin.list_parked(&filter, req).await?;
    let pending = match filter.state {
        Some(ParkedState::Pending) => list.total.unwrap_or_default(),
        _ => {
            state
                .admin
                .count_parked(&ParkedFilter {
                    state: Some(ParkedState::Pending),
                    ..filter.clone()
                })
                .await?
        }
    };
    let labels = connection_labels(&state).await?;
    let chosen = if filter.state.is_some() {
        chosen
    } else {
        "all"
    }
    .to_owned();
    let job = job.map(|j| j.to_string()).unwrap_or_default();
    let base = format!("/console/pools/{}/parked", pool.id);
    let link = |after: &str| {
        with_query(
            &base,
            &[("state", &chosen), ("job", &job), ("after", after)],
        )
    };
    let pager = Pager::keyed(
        list.items.len(),
        list.total,
        list.next.as_deref().map(link),
        req.after.map(|_| link("")),
    );
    let bulk = |decision: &str| {
        with_query(
            &format!("{base}/bulk"),
            &[("decision", decision), ("job", &job)],
        )
    };
    Ok(ok(&ParkedPage {
        ctx: Ctx::new(&session, "parked")
            .pool(&pool)
            .notice(q.done.as_deref()),
        rows: list
            .items
            .iter()
            .map(|p| ParkedRow {
                id: p.id,
                kind: p.kind.as_str(),
                name: p.name.clone().unwrap_or_else(|| p.object_id.clone()),
                link: Some(format!(
                    "/console/pools/{}/{}/{}",
                    pool.id,
                    match p.kind {
                        ObjectKind::User => "users",
                        ObjectKind::Department => "departments",
                        ObjectKind::Group => "groups",
                    },
                    p.object_id
                )),
                external_id: p.external_id.clone(),
                reason: p.reason.clone(),
                state: p.state.as_str(),
                pending: p.state == ParkedState::Pending,
                job_id: p.job_id.to_string(),
                connection: labels
                    .get(p.connection_id.as_str())
                    .map(|l| l.0.clone())
                    .unwrap_or_else(|| p.connection_id.to_string()),
                created: fmt_ms(p.created_at),
                last_parked: if p.last_parked_at > p.created_at {
                    fmt_ms(p.last_parked_at)
                } else {
                    String::new()
                },
                resolved: fmt_opt_ms(p.resolved_at),
                resolution: p.resolution.clone().unwrap_or_default(),
            })
            .collect(),
        state: chosen,
        approve_all: bulk("approve"),
        reject_all: bulk("reject"),
        job,
        pending,
        pager,
    }))
}

async fn decide(state: &AppState, session: &Session, id: &str, approve: bool) -> ConsoleResult {
    let id: i64 = id.parse().map_err(|_| {
        ConsoleError::new(StatusCode::NOT_FOUND, "parked deletion not found")
            .with_csrf(&session.csrf)
    })?;
    let result = if approve {
        state.admin.approve_parked(id).await
    } else {
        state.admin.reject_parked(id).await
    };
    let item = result.map_err(|e| ConsoleError::from(e).with_csrf(&session.csrf))?;
    let done = match item.state {
        ParkedState::Approved => "approved",
        ParkedState::Withdrawn => "withdrawn",
        _ => "rejected",
    };
    Ok(Redirect::to(&format!(
        "/console/pools/{}/parked?done={done}",
        item.pool_id
    ))
    .into_response())
}

pub async fn approve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(session, _): CsrfForm<NoFields>,
) -> ConsoleResult {
    decide(&state, &session, &id, true).await
}

pub async fn reject(
    State(state): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(session, _): CsrfForm<NoFields>,
) -> ConsoleResult {
    decide(&state, &session, &id, false).await
}

// ---- bulk decisions ----

/// The confirmation of a bulk decision (`outcome` empty), or its result.
#[derive(Template)]
#[template(path = "parked_bulk.html")]
pub struct BulkPage {
    pub ctx: Ctx,
    /// `approve` or `reject`.
    pub decision: &'static str,
    pub job: String,
    /// Pending entries the decision covers now.
    pub pending: u64,
    pub back: String,
    pub outcome: Option<BulkOutcome>,
}

#[derive(Deserialize)]
pub struct BulkQuery {
    decision: Option<String>,
    job: Option<String>,
}

#[derive(Deserialize)]
pub struct BulkForm {
    decision: String,
    #[serde(default)]
    job: Option<String>,
}

fn decision_param(raw: Option<&str>) -> ConsoleResult<(&'static str, ParkedDecision)> {
    match raw {
        Some("approve") => Ok(("approve", ParkedDecision::Approve)),
        Some("reject") => Ok(("reject", ParkedDecision::Reject)),
        _ => Err(ConsoleError::new(
            StatusCode::BAD_REQUEST,
            "Say whether to approve or reject the parked deletions.",
        )
        .with_fix("Use the buttons on the parked deletions page.")),
    }
}

/// The bulk request of the console: a job's pending entries, or every pending one of the pool.
fn bulk_request(job: Option<JobId>) -> BulkParked {
    BulkParked {
        all: job.is_none(),
        job_id: job,
        ..BulkParked::default()
    }
}

pub async fn bulk_page(
    State(state): State<AppState>,
    session: Session,
    Path(pool): Path<String>,
    Query(q): Query<BulkQuery>,
) -> ConsoleResult {
    let pool = state.admin.pool(&PoolId::from(pool)).await?;
    let (decision, _) = decision_param(q.decision.as_deref())?;
    let job = job_param(&q.job)?;
    let pending = state
        .admin
        .count_parked(&ParkedFilter {
            state: Some(ParkedState::Pending),
            job_id: job.clone(),
            ..ParkedFilter::pool(&pool.id)
        })
        .await?;
    let job = job.map(|j| j.to_string()).unwrap_or_default();
    Ok(ok(&BulkPage {
        ctx: Ctx::new(&session, "parked").pool(&pool),
        decision,
        back: with_query(
            &format!("/console/pools/{}/parked", pool.id),
            &[("state", "pending"), ("job", &job)],
        ),
        job,
        pending,
        outcome: None,
    }))
}

pub async fn bulk(
    State(state): State<AppState>,
    Path(pool): Path<String>,
    CsrfForm(session, form): CsrfForm<BulkForm>,
) -> ConsoleResult {
    let csrf = |e: ConsoleError| e.with_csrf(&session.csrf);
    let pool = state
        .admin
        .pool(&PoolId::from(pool))
        .await
        .map_err(|e| csrf(e.into()))?;
    let (decision, how) = decision_param(Some(form.decision.as_str())).map_err(csrf)?;
    let job = job_param(&form.job).map_err(csrf)?;
    let outcome = state
        .admin
        .decide_parked(&pool.id, &bulk_request(job.clone()), how)
        .await
        .map_err(|e| csrf(e.into()))?;
    let job = job.map(|j| j.to_string()).unwrap_or_default();
    Ok(ok(&BulkPage {
        ctx: Ctx::new(&session, "parked").pool(&pool),
        decision,
        back: with_query(
            &format!("/console/pools/{}/parked", pool.id),
            &[("state", "pending"), ("job", &job)],
        ),
        job,
        pending: outcome.matched,
        outcome: Some(outcome),
    }))
}
