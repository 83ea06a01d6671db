//! The event log (the durable inbox) and parked deletions.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use directory::admin::page;
use directory::ids::{ConnectionId, PoolId};
use directory::model::{ObjectKind, ParkedState};
use directory::store::{InboxFilter, InboxState};
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
    offset: Option<u64>,
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
    let req = page(q.offset, Some(50));
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
    let pager = Pager::new(req.offset, req.limit, list.items.len(), list.total, |o| {
        with_query(
            "/console/events",
            &[
                ("connection", &connection),
                ("state", &st),
                ("type", &ty),
                ("offset", &o.to_string()),
            ],
        )
    });
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
    pub resolved: String,
}

#[derive(Template)]
#[template(path = "parked.html")]
pub struct ParkedPage {
    pub ctx: Ctx,
    pub rows: Vec<ParkedRow>,
    pub state: String,
    pub pager: Pager,
}

#[derive(Deserialize)]
pub struct ParkedQuery {
    state: Option<String>,
    offset: Option<u64>,
    done: Option<String>,
}

fn parked_state(s: &str) -> Option<ParkedState> {
    match s {
        "pending" => Some(ParkedState::Pending),
        "approved" => Some(ParkedState::Approved),
        "rejected" => Some(ParkedState::Rejected),
        _ => None,
    }
}

fn parked_str(s: ParkedState) -> &'static str {
    match s {
        ParkedState::Pending => "pending",
        ParkedState::Approved => "approved",
        ParkedState::Rejected => "rejected",
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
    let filter = parked_state(chosen);
    let req = page(q.offset, Some(50));
    let list = state.admin.list_parked(&pool.id, filter, req).await?;
    let labels = connection_labels(&state).await?;
    let chosen = if filter.is_some() { chosen } else { "all" }.to_owned();
    let base = format!("/console/pools/{}/parked", pool.id);
    let pager = Pager::new(req.offset, req.limit, list.items.len(), None, |o| {
        with_query(&base, &[("state", &chosen), ("offset", &o.to_string())])
    });
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
                state: parked_str(p.state),
                pending: p.state == ParkedState::Pending,
                job_id: p.job_id.to_string(),
                connection: labels
                    .get(p.connection_id.as_str())
                    .map(|l| l.0.clone())
                    .unwrap_or_else(|| p.connection_id.to_string()),
                created: fmt_ms(p.created_at),
                resolved: fmt_opt_ms(p.resolved_at),
            })
            .collect(),
        state: chosen,
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
    Ok(Redirect::to(&format!(
        "/console/pools/{}/parked?done={}",
        item.pool_id,
        if approve { "approved" } else { "rejected" }
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
