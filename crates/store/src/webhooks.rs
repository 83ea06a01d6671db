//! Webhook endpoints and their delivery attempts (docs/webhooks.md). Written once in
//! [`webhook_fns`] and expanded inside `imp.rs` for each backend; the trait methods there
//! call these functions.

use directory::feed::FeedType;
use directory::ids::PoolId;
use directory::secrets::SealedSecret;
use directory::store::{StoreError, StoreResult};
use directory::webhooks::{WebhookAttempt, WebhookEndpoint, WebhookState};
use sqlx::FromRow;

pub(crate) const ENDPOINT_COLS: &str = "id, pool_id, url, description, types, secret, \
     previous_secret, previous_until, state, disabled_reason, cursor, failures, \
     next_attempt_at, created_at, updated_at";
pub(crate) const UPDATE_ENDPOINT: &str = "UPDATE webhook_endpoints SET url = $2, \
     description = $3, types = $4, secret = $5, previous_secret = $6, previous_until = $7, \
     state = $8, disabled_reason = $9, cursor = $10, failures = $11, next_attempt_at = $12, \
     updated_at = $13 WHERE id = $1";
/// The deliverer's progress, only over what it read (`$7`: the `updated_at` it read).
pub(crate) const ENDPOINT_PROGRESS: &str = "UPDATE webhook_endpoints SET state = $2, \
     disabled_reason = $3, cursor = $4, failures = $5, next_attempt_at = $6, updated_at = $8 \
     WHERE id = $1 AND updated_at = $7";
pub(crate) const ATTEMPT_COLS: &str = "endpoint_id, seq, event_id, event_type, attempt, at, \
     status, error, latency_ms, response";
pub(crate) const LEASE_ENDPOINT: &str = "UPDATE webhook_endpoints SET lease_holder = $2, \
     lease_until = $3 WHERE id = $1 AND (lease_holder IS NULL OR lease_holder = $2 \
     OR lease_until < $4)";
pub(crate) const RELEASE_ENDPOINT: &str = "UPDATE webhook_endpoints SET lease_holder = NULL, \
     lease_until = NULL WHERE id = $1 AND lease_holder = $2";

#[derive(FromRow)]
pub(crate) struct EndpointRow {
    id: String,
    pool_id: String,
    url: String,
    description: String,
    types: String,
    secret: String,
    previous_secret: Option<String>,
    previous_until: Option<i64>,
    state: String,
    disabled_reason: Option<String>,
    cursor: i64,
    failures: i64,
    next_attempt_at: i64,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<EndpointRow> for WebhookEndpoint {
    type Error = StoreError;

    fn try_from(r: EndpointRow) -> StoreResult<Self> {
        let types = r
            .types
            .split_whitespace()
            .map(|t| {
                FeedType::parse(t)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown webhook event type {t:?}")))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Self {
            state: WebhookState::parse(&r.state).ok_or_else(|| {
                StoreError::Corrupt(format!("unknown webhook state {:?}", r.state))
            })?,
            id: r.id,
            pool_id: PoolId(r.pool_id),
            url: r.url,
            description: r.description,
            types,
            secret: SealedSecret(r.secret),
            previous_secret: r.previous_secret.map(SealedSecret),
            previous_until: r.previous_until,
            disabled_reason: r.disabled_reason,
            cursor: r.cursor,
            failures: u32::try_from(r.failures).unwrap_or(u32::MAX),
            next_attempt_at: r.next_attempt_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct AttemptRow {
    id: i64,
    endpoint_id: String,
    seq: i64,
    event_id: String,
    event_type: String,
    attempt: i64,
    at: i64,
    status: Option<i64>,
    error: Option<String>,
    latency_ms: i64,
    response: Option<String>,
}

impl From<AttemptRow> for WebhookAttempt {
    fn from(r: AttemptRow) -> Self {
        Self {
            id: r.id,
            endpoint_id: r.endpoint_id,
            seq: r.seq,
            event_id: r.event_id,
            event_type: r.event_type,
            attempt: u32::try_from(r.attempt).unwrap_or(u32::MAX),
            at: r.at,
            status: r.status.and_then(|s| u16::try_from(s).ok()),
            error: r.error,
            latency_ms: r.latency_ms,
            response: r.response,
        }
    }
}

/// Event types as stored: space-separated names.
pub(crate) fn types_text(types: &[FeedType]) -> String {
    types
        .iter()
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

macro_rules! webhook_fns {
    ($store:ty, $db:ty) => {
        use directory::webhooks::{WebhookAttempt, WebhookEndpoint};
        use $crate::webhooks::{self as wh, AttemptRow, EndpointRow, types_text};

        impl $store {
            async fn create_webhook_of(&self, e: &WebhookEndpoint) -> StoreResult<()> {
                let mut tx = self.begin_write().await.map_err(db_err)?;
                require_pool(&mut tx, &e.pool_id).await?;
                let mut qb = QueryBuilder::<$db>::new("INSERT INTO webhook_endpoints (");
                qb.push(wh::ENDPOINT_COLS).push(") ");
                qb.push_values(std::iter::once(e), |mut b, e| {
                    b.push_bind(e.id.as_str())
                        .push_bind(e.pool_id.as_str())
                        .push_bind(e.url.as_str())
                        .push_bind(e.description.as_str())
                        .push_bind(types_text(&e.types))
                        .push_bind(e.secret.0.as_str())
                        .push_bind(e.previous_secret.as_ref().map(|s| s.0.as_str()))
                        .push_bind(e.previous_until)
                        .push_bind(e.state.as_str())
                        .push_bind(e.disabled_reason.as_deref())
                        .push_bind(e.cursor)
                        .push_bind(i64::from(e.failures))
                        .push_bind(e.next_attempt_at)
                        .push_bind(e.created_at)
                        .push_bind(e.updated_at);
                });
                qb.build().execute(&mut *tx).await.map_err(db_err)?;
                tx.commit().await.map_err(db_err)
            }

            async fn get_webhook_of(&self, id: &str) -> StoreResult<Option<WebhookEndpoint>> {
                let mut qb = QueryBuilder::<$db>::new("SELECT ");
                qb.push(wh::ENDPOINT_COLS)
                    .push(" FROM webhook_endpoints WHERE id = ")
                    .push_bind(id);
                let row: Option<EndpointRow> = qb
                    .build_query_as()
                    .fetch_optional(self.reads())
                    .await
                    .map_err(db_err)?;
                row.map(WebhookEndpoint::try_from).transpose()
            }

            async fn list_webhooks_of(
                &self,
                pool: Option<&PoolId>,
            ) -> StoreResult<Vec<WebhookEndpoint>> {
                let mut qb = QueryBuilder::<$db>::new("SELECT ");
                qb.push(wh::ENDPOINT_COLS).push(" FROM webhook_endpoints");
                if let Some(pool) = pool {
                    qb.push(" WHERE pool_id = ").push_bind(pool.as_str());
                }
                qb.push(" ORDER BY created_at, id");
                let rows: Vec<EndpointRow> = qb
                    .build_query_as()
                    .fetch_all(self.reads())
                    .await
                    .map_err(db_err)?;
                convert_all(rows)
            }

            async fn update_webhook_of(&self, e: &WebhookEndpoint) -> StoreResult<()> {
                let done = sqlx::query(wh::UPDATE_ENDPOINT)
                    .bind(e.id.as_str())
                    .bind(e.url.as_str())
                    .bind(e.description.as_str())
                    .bind(types_text(&e.types))
                    .bind(e.secret.0.as_str())
                    .bind(e.previous_secret.as_ref().map(|s| s.0.as_str()))
                    .bind(e.previous_until)
                    .bind(e.state.as_str())
                    .bind(e.disabled_reason.as_deref())
                    .bind(e.cursor)
                    .bind(i64::from(e.failures))
                    .bind(e.next_attempt_at)
                    .bind(e.updated_at)
                    .execute(self.writes())
                    .await
                    .map_err(db_err)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("webhook endpoint {}", e.id)));
                }
                Ok(())
            }

            async fn delete_webhook_of(&self, id: &str) -> StoreResult<bool> {
                let mut tx = self.begin_write().await.map_err(db_err)?;
                sqlx::query("DELETE FROM webhook_attempts WHERE endpoint_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                let done = sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                tx.commit().await.map_err(db_err)?;
                Ok(done.rows_affected() > 0)
            }

            async fn record_webhook_progress_of(
                &self,
                attempt: Option<&WebhookAttempt>,
                e: &WebhookEndpoint,
                read_at: Millis,
            ) -> StoreResult<bool> {
                let mut tx = self.begin_write().await.map_err(db_err)?;
                if let Some(a) = attempt {
                    let mut qb = QueryBuilder::<$db>::new("INSERT INTO webhook_attempts (");
                    qb.push(wh::ATTEMPT_COLS).push(") ");
                    qb.push_values(std::iter::once(a), |mut b, a| {
                        b.push_bind(a.endpoint_id.as_str())
                            .push_bind(a.seq)
                            .push_bind(a.event_id.as_str())
                            .push_bind(a.event_type.as_str())
                            .push_bind(i64::from(a.attempt))
                            .push_bind(a.at)
                            .push_bind(a.status.map(i64::from))
                            .push_bind(a.error.as_deref())
                            .push_bind(a.latency_ms)
                            .push_bind(a.response.as_deref());
                    });
                    qb.build().execute(&mut *tx).await.map_err(db_err)?;
                }
                let saved = sqlx::query(wh::ENDPOINT_PROGRESS)
                    .bind(e.id.as_str())
                    .bind(e.state.as_str())
                    .bind(e.disabled_reason.as_deref())
                    .bind(e.cursor)
                    .bind(i64::from(e.failures))
                    .bind(e.next_attempt_at)
                    .bind(read_at)
                    .bind(e.updated_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?
                    .rows_affected()
                    > 0;
                tx.commit().await.map_err(db_err)?;
                Ok(saved)
            }

            async fn list_webhook_attempts_of(
                &self,
                endpoint: &str,
                before: Option<i64>,
                limit: u64,
            ) -> StoreResult<Vec<WebhookAttempt>> {
                let mut qb = QueryBuilder::<$db>::new("SELECT id, ");
                qb.push(wh::ATTEMPT_COLS)
                    .push(" FROM webhook_attempts WHERE endpoint_id = ")
                    .push_bind(endpoint);
                if let Some(before) = before {
                    qb.push(" AND id < ").push_bind(before);
                }
                qb.push(" ORDER BY id DESC LIMIT ")
                    .push_bind(sql_int(limit));
                let rows: Vec<AttemptRow> = qb
                    .build_query_as()
                    .fetch_all(self.reads())
                    .await
                    .map_err(db_err)?;
                Ok(rows.into_iter().map(WebhookAttempt::from).collect())
            }

            async fn lease_webhook_of(
                &self,
                id: &str,
                holder: &str,
                until: Millis,
                now: Millis,
            ) -> StoreResult<bool> {
                let done = sqlx::query(wh::LEASE_ENDPOINT)
                    .bind(id)
                    .bind(holder)
                    .bind(until)
                    .bind(now)
                    .execute(self.writes())
                    .await
                    .map_err(db_err)?;
                Ok(done.rows_affected() > 0)
            }

            async fn release_webhook_of(&self, id: &str, holder: &str) -> StoreResult<()> {
                sqlx::query(wh::RELEASE_ENDPOINT)
                    .bind(id)
                    .bind(holder)
                    .execute(self.writes())
                    .await
                    .map_err(db_err)?;
                Ok(())
            }

            async fn prune_webhook_attempts_of(&self, before: Millis) -> StoreResult<u64> {
                let done = sqlx::query("DELETE FROM webhook_attempts WHERE at < $1")
                    .bind(before)
                    .execute(self.writes())
                    .await
                    .map_err(db_err)?;
                Ok(done.rows_affected())
            }
        }
    };
}

pub(crate) use webhook_fns;
