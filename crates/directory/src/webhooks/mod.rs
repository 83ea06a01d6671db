//! Webhooks (docs/webhooks.md): endpoints of a pool that receive its change feed as signed
//! HTTP requests (Standard Webhooks 1.0.0), each driven by its own cursor into the feed, in
//! order, retried on a schedule, disabled when the schedule is spent or the receiver answers
//! 410.
//!
//! - [`sign`]: secrets and signatures (pure).
//! - [`retry`]: the retry schedule (pure).
//! - [`guard`]: which addresses may be called (pure).
//! - [`deliver`]: the delivery task.

pub mod deliver;
pub mod guard;
pub mod retry;
pub mod sign;

use serde::{Deserialize, Serialize};

use crate::feed::FeedType;
use crate::ids::{Millis, PoolId};
use crate::secrets::SealedSecret;

/// Where an endpoint stands.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookState {
    /// Delivering (or waiting for events).
    Enabled,
    /// The event after its cursor failed; retried on the schedule.
    Failing,
    /// Nothing is sent until an admin enables it again; it then resumes from its cursor.
    Disabled,
}

impl WebhookState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::Failing => "failing",
            Self::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Enabled, Self::Failing, Self::Disabled]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

/// One endpoint, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEndpoint {
    /// 24 hex digits.
    pub id: String,
    pub pool_id: PoolId,
    pub url: String,
    pub description: String,
    /// The event types it receives; empty: all.
    pub types: Vec<FeedType>,
    /// `whsec_…`, sealed with the master key.
    pub secret: SealedSecret,
    /// The secret before the last rotation: it signs too until `previous_until`.
    pub previous_secret: Option<SealedSecret>,
    pub previous_until: Option<Millis>,
    pub state: WebhookState,
    pub disabled_reason: Option<String>,
    /// The feed number of the last event delivered (or passed over by the type filter).
    pub cursor: i64,
    /// Failed attempts of the event after the cursor.
    pub failures: u32,
    pub next_attempt_at: Millis,
    pub created_at: Millis,
    /// Moves on every change; progress is saved only if the endpoint was not changed by an
    /// admin meanwhile.
    pub updated_at: Millis,
}

/// One attempt to deliver one event to one endpoint.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookAttempt {
    pub id: i64,
    pub endpoint_id: String,
    /// The event's feed number and id (`webhook-id`).
    pub seq: i64,
    pub event_id: String,
    pub event_type: String,
    /// 1 for the first try of this event, 2 for the first retry, …
    pub attempt: u32,
    pub at: Millis,
    /// The receiver's HTTP status; absent when it did not answer.
    pub status: Option<u16>,
    /// Why the attempt failed, when it did.
    pub error: Option<String>,
    pub latency_ms: i64,
    /// The first kilobyte of the receiver's answer.
    pub response: Option<String>,
}
