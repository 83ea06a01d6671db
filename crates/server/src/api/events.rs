//! The event inbox: what Feishu delivered and what applying it did.

use axum::Json;
use directory::admin::{Page, keyed_page};
use directory::store::{InboxEvent, InboxFilter, InboxState};

use super::extract::{Authed, PathParams, QueryParams, opt_enum, opt_id, opt_text};
use super::params::EventsQuery;
use crate::error::{ErrorBody, HttpError};

/// Lists inbox events, newest first. Payloads show the Verification Token masked.
#[utoipa::path(
    get, path = "/api/v1/events", tag = "events",
    params(EventsQuery),
    responses(
        (status = 200, description = "A page of inbox events", body = Page<InboxEvent>),
        (status = 400, description = "Bad query parameters", body = ErrorBody),
    )
)]
pub async fn list_events(
    Authed(admin): Authed,
    QueryParams(q): QueryParams<EventsQuery>,
) -> Result<Json<Page<InboxEvent>>, HttpError> {
    let filter = InboxFilter {
        pool_id: opt_id("pool_id", q.pool_id.as_deref())?,
        connection_id: opt_id("connection_id", q.connection_id.as_deref())?,
        state: opt_enum(
            "state",
            q.state.as_deref(),
            InboxState::parse,
            &["pending", "applied", "ignored", "parked"],
        )?,
        event_type: opt_text(q.event_type),
    };
    let page = keyed_page(q.after.as_deref(), q.offset, q.limit)?;
    Ok(Json(admin.inbox(&filter, page).await?))
}

/// Reads one inbox event.
#[utoipa::path(
    get, path = "/api/v1/events/{event_id}", tag = "events",
    params(("event_id" = i64, Path, description = "Inbox row id (not Feishu's event_id)")),
    responses(
        (status = 200, description = "The event", body = InboxEvent),
        (status = 404, description = "No such event", body = ErrorBody),
    )
)]
pub async fn get_event(
    Authed(admin): Authed,
    PathParams(event_id): PathParams<i64>,
) -> Result<Json<InboxEvent>, HttpError> {
    Ok(Json(admin.inbox_event(event_id).await?))
}
