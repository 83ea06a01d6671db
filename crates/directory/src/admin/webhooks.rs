//! Webhook endpoints as admins (or a credential with `webhooks:admin`) manage them
//! (docs/webhooks.md).

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Admin, AdminError, AdminResult};
use crate::feed::{FeedType, parse_types};
use crate::ids::{Millis, PoolId, iso8601, now_ms};
use crate::webhooks::deliver::{Outcome, bump, signing_keys};
use crate::webhooks::sign::generate_secret;
use crate::webhooks::{WebhookAttempt, WebhookEndpoint, WebhookState};

/// A rotation's default grace period: the old secret signs too for a day.
const GRACE_HOURS_DEFAULT: u32 = 24;
const GRACE_HOURS_MAX: u32 = 24 * 30;

/// A new endpoint.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// `https://…` (or `http://`); loopback and private addresses only when the server
    /// allows them.
    pub url: String,
    #[serde(default)]
    pub description: String,
    /// Event types and `prefix.*` globs, e.g. `["user.*", "group.member_added"]`; absent or
    /// empty: every type.
    #[serde(default)]
    pub types: Vec<String>,
}

/// Changes to an endpoint; absent fields stay.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub description: Option<String>,
    pub types: Option<Vec<String>>,
    /// `false` stops deliveries; `true` resumes them from the endpoint's cursor, at once.
    pub enabled: Option<bool>,
}

/// Where deliveries start again.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replay {
    /// The feed number of the first event to send again.
    pub from_seq: Option<i64>,
    /// Or: every event since this time (Unix milliseconds).
    pub since: Option<Millis>,
}

/// A rotation's grace period.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rotate {
    /// Hours the old secret keeps signing beside the new one (default 24, at most 720).
    pub grace_hours: Option<u32>,
}

/// An endpoint as the API shows it: never its secrets.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookView {
    pub id: String,
    pub pool_id: PoolId,
    pub url: String,
    pub description: String,
    /// Empty: every type.
    pub types: Vec<FeedType>,
    pub state: WebhookState,
    /// Why it is disabled, and what to do.
    pub disabled_reason: Option<String>,
    /// The feed number of the last event delivered.
    pub cursor: i64,
    /// Events of the feed after the cursor (some may be filtered out by type).
    pub lag: i64,
    pub failures: u32,
    pub next_attempt_at: Millis,
    /// During a rotation: until when the old secret signs too.
    pub previous_secret_until: Option<Millis>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// An endpoint with its secret: answered on creation and rotation only.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookWithSecret {
    pub endpoint: WebhookView,
    /// `whsec_…`: what the receiver verifies signatures with. Shown now only.
    pub secret: String,
}

/// What a test delivery got.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestResult {
    pub ok: bool,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: i64,
    pub response: Option<String>,
}

fn view(e: &WebhookEndpoint, last_seq: i64) -> WebhookView {
    WebhookView {
        id: e.id.clone(),
        pool_id: e.pool_id.clone(),
        url: e.url.clone(),
        description: e.description.clone(),
        types: e.types.clone(),
        state: e.state,
        disabled_reason: e.disabled_reason.clone(),
        cursor: e.cursor,
        lag: (last_seq - e.cursor).max(0),
        failures: e.failures,
        next_attempt_at: e.next_attempt_at,
        previous_secret_until: e.previous_until.filter(|until| *until > now_ms()),
        created_at: e.created_at,
        updated_at: e.updated_at,
    }
}

fn types_of(names: &[String]) -> AdminResult<Vec<FeedType>> {
    parse_types(&names.join(",")).map_err(|e| AdminError::Invalid(format!("types: {e}")))
}

impl Admin {
    fn check_webhook_url(&self, url: &str) -> AdminResult<String> {
        let url = url.trim();
        self.engine
            .webhook_sender()
            .check_url(url)
            .map_err(|why| AdminError::Invalid(format!("url {url:?}: {why}")))?;
        Ok(url.to_owned())
    }

    async fn last_seq(&self, pool_id: &PoolId) -> AdminResult<i64> {
        Ok(self
            .store()
            .feed_head(pool_id)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("user pool {pool_id}")))?
            .last_seq)
    }

    async fn webhook_of(&self, pool_id: &PoolId, id: &str) -> AdminResult<WebhookEndpoint> {
        self.store()
            .get_webhook(id)
            .await?
            .filter(|e| &e.pool_id == pool_id)
            .ok_or_else(|| AdminError::NotFound(format!("webhook endpoint {id}")))
    }

    /// A new endpoint receives the events appended from now on.
    pub async fn create_webhook(
        &self,
        pool_id: &PoolId,
        input: NewWebhook,
    ) -> AdminResult<WebhookWithSecret> {
        let url = self.check_webhook_url(&input.url)?;
        let types = types_of(&input.types)?;
        let last_seq = self.last_seq(pool_id).await?;
        let secret = generate_secret();
        let now = now_ms();
        let endpoint = WebhookEndpoint {
            id: hex::encode(rand::random::<[u8; 12]>()),
            pool_id: pool_id.clone(),
            url,
            description: input.description.trim().to_owned(),
            types,
            secret: self.engine.master_key().seal(&secret),
            previous_secret: None,
            previous_until: None,
            state: WebhookState::Enabled,
            disabled_reason: None,
            cursor: last_seq,
            failures: 0,
            next_attempt_at: now,
            created_at: now,
            updated_at: now,
        };
        self.store().create_webhook(&endpoint).await?;
        tracing::info!(pool = %pool_id, endpoint = %endpoint.id, url = %endpoint.url, "webhook endpoint created");
        Ok(WebhookWithSecret {
            endpoint: view(&endpoint, last_seq),
            secret,
        })
    }

    pub async fn list_webhooks(&self, pool_id: &PoolId) -> AdminResult<Vec<WebhookView>> {
        let last_seq = self.last_seq(pool_id).await?;
        Ok(self
            .store()
            .list_webhooks(Some(pool_id))
            .await?
            .iter()
            .map(|e| view(e, last_seq))
            .collect())
    }

    pub async fn webhook(&self, pool_id: &PoolId, id: &str) -> AdminResult<WebhookView> {
        let e = self.webhook_of(pool_id, id).await?;
        Ok(view(&e, self.last_seq(pool_id).await?))
    }

    pub async fn update_webhook(
        &self,
        pool_id: &PoolId,
        id: &str,
        patch: WebhookPatch,
    ) -> AdminResult<WebhookView> {
        let mut e = self.webhook_of(pool_id, id).await?;
        if let Some(url) = &patch.url {
            e.url = self.check_webhook_url(url)?;
        }
        if let Some(description) = &patch.description {
            e.description = description.trim().to_owned();
        }
        if let Some(types) = &patch.types {
            e.types = types_of(types)?;
        }
        match patch.enabled {
            Some(true) => {
                e.state = WebhookState::Enabled;
                e.disabled_reason = None;
                e.failures = 0;
                e.next_attempt_at = now_ms();
            }
            Some(false) => {
                e.state = WebhookState::Disabled;
                e.disabled_reason = Some(format!(
                    "disabled by an admin at {}; enable it to resume from its cursor",
                    iso8601(now_ms())
                ));
            }
            None => {}
        }
        e.updated_at = bump(e.updated_at);
        self.store().update_webhook(&e).await?;
        self.engine.feed_appended();
        Ok(view(&e, self.last_seq(pool_id).await?))
    }

    pub async fn delete_webhook(&self, pool_id: &PoolId, id: &str) -> AdminResult<()> {
        self.webhook_of(pool_id, id).await?;
        self.store().delete_webhook(id).await?;
        Ok(())
    }

    /// Sends the events from a number or a time again (and on), at once; the endpoint is
    /// enabled.
    pub async fn replay_webhook(
        &self,
        pool_id: &PoolId,
        id: &str,
        replay: Replay,
    ) -> AdminResult<WebhookView> {
        let mut e = self.webhook_of(pool_id, id).await?;
        let head = self
            .store()
            .feed_head(pool_id)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("user pool {pool_id}")))?;
        let from = match (replay.from_seq, replay.since) {
            (Some(seq), None) if seq >= 1 => seq,
            (None, Some(since)) => self
                .store()
                .feed_seq_since(pool_id, since)
                .await?
                .unwrap_or(head.last_seq + 1),
            _ => {
                return Err(AdminError::Invalid(
                    "give either from_seq (a feed number, 1 or more) or since (Unix \
                     milliseconds)"
                        .into(),
                ));
            }
        };
        if from <= head.pruned_through {
            return Err(AdminError::CursorExpired(format!(
                "events up to number {} were removed by the feed's retention: replay from {} \
                 or later",
                head.pruned_through,
                head.pruned_through + 1
            )));
        }
        e.cursor = (from - 1).min(head.last_seq);
        e.state = WebhookState::Enabled;
        e.disabled_reason = None;
        e.failures = 0;
        e.next_attempt_at = now_ms();
        e.updated_at = bump(e.updated_at);
        self.store().update_webhook(&e).await?;
        self.engine.feed_appended();
        Ok(view(&e, head.last_seq))
    }

    /// A new secret; the old one signs too for the grace period.
    pub async fn rotate_webhook_secret(
        &self,
        pool_id: &PoolId,
        id: &str,
        rotate: Rotate,
    ) -> AdminResult<WebhookWithSecret> {
        let hours = rotate.grace_hours.unwrap_or(GRACE_HOURS_DEFAULT);
        if hours > GRACE_HOURS_MAX {
            return Err(AdminError::Invalid(format!(
                "grace_hours must be 0 to {GRACE_HOURS_MAX}, got {hours}"
            )));
        }
        let mut e = self.webhook_of(pool_id, id).await?;
        let secret = generate_secret();
        let now = now_ms();
        e.previous_secret = Some(std::mem::replace(
            &mut e.secret,
            self.engine.master_key().seal(&secret),
        ));
        e.previous_until = Some(now + i64::from(hours) * 3_600_000);
        e.updated_at = bump(e.updated_at);
        self.store().update_webhook(&e).await?;
        Ok(WebhookWithSecret {
            endpoint: view(&e, self.last_seq(pool_id).await?),
            secret,
        })
    }

    /// Sends a `webhook.test` event now, outside the feed, and records the attempt.
    pub async fn test_webhook(&self, pool_id: &PoolId, id: &str) -> AdminResult<TestResult> {
        let e = self.webhook_of(pool_id, id).await?;
        let now = now_ms();
        let keys = signing_keys(self.engine.master_key(), &e, now)
            .map_err(|err| AdminError::Conflict(err.to_string()))?;
        let event_id = format!("evt_test_{}", hex::encode(rand::random::<[u8; 8]>()));
        let body = json!({
            "id": event_id,
            "seq": 0,
            "type": "webhook.test",
            "timestamp": iso8601(now),
            "pool_id": pool_id,
            "source": {"kind": "admin"},
            "data": {},
        });
        let outcome: Outcome = self
            .engine
            .webhook_sender()
            .post(
                &e.url,
                &keys,
                &event_id,
                serde_json::to_vec(&body).unwrap_or_default(),
            )
            .await;
        let attempt = WebhookAttempt {
            id: 0,
            endpoint_id: e.id.clone(),
            seq: 0,
            event_id,
            event_type: "webhook.test".into(),
            attempt: 1,
            at: now,
            status: outcome.status,
            error: outcome.error.clone(),
            latency_ms: outcome.latency_ms,
            response: outcome.response.clone(),
        };
        // The attempt only: a test moves nothing (`read_at` no endpoint has).
        self.store()
            .record_webhook_progress(Some(&attempt), &e, -1)
            .await?;
        Ok(TestResult {
            ok: outcome.ok(),
            status: outcome.status,
            error: outcome.error,
            latency_ms: outcome.latency_ms,
            response: outcome.response,
        })
    }

    /// Attempts, newest first; `before`: the id of the last attempt of the page before.
    pub async fn webhook_attempts(
        &self,
        pool_id: &PoolId,
        id: &str,
        before: Option<i64>,
        limit: Option<u64>,
    ) -> AdminResult<Vec<WebhookAttempt>> {
        self.webhook_of(pool_id, id).await?;
        let limit = limit.unwrap_or(50).clamp(1, 500);
        Ok(self
            .store()
            .list_webhook_attempts(id, before, limit)
            .await?)
    }
}
