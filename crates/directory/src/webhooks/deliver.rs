//! Delivering the feed to webhook endpoints (docs/webhooks.md).
//!
//! [`Sender`] makes one signed request (no redirects, a timeout, the SSRF guard on every
//! address a name resolves to). [`Deliverer`] drives every endpoint that is due: one request
//! in flight per endpoint, events in feed order, the next event only after the one before
//! succeeded. Progress (the cursor, failures, the next attempt) is saved with each attempt
//! after the request: a crash between the two sends the event again, with the same
//! `webhook-id` — duplicates, never a gap.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::guard::refused;
use super::retry::{next_delay, parse_retry_after};
use super::sign::{secret_key, signature_header};
use super::{WebhookAttempt, WebhookEndpoint, WebhookState};
use crate::engine::Engine;
use crate::ids::{Millis, now_ms};
use crate::secrets::MasterKey;
use crate::store::StoreError;

/// The most of a receiver's answer kept with an attempt.
const RESPONSE_KEPT: usize = 1024;
/// How many events one pass sends an endpoint before others get their turn.
const EVENTS_PER_PASS: usize = 100;
/// A filtered read looks at this many events at most.
const WINDOW: u64 = 10_000;
/// An endpoint's delivery lease: longer than a pass can take.
const LEASE: Duration = Duration::from_secs(300);

/// Delivery settings (`webhooks_allow_private_targets` of the configuration; the rest are for
/// tests and the demo).
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Allow loopback and private addresses (tests, the demo, an orgsync that feeds internal
    /// apps). Link-local and metadata addresses are refused regardless.
    pub allow_private_targets: bool,
    /// Per request (Standard Webhooks suggests 15–30 s).
    pub timeout: Duration,
    /// Multiplies the retry schedule (tests and the demo shorten it).
    pub retry_scale: f64,
    /// How often due endpoints are looked for besides the feed's wake-ups (retries, other
    /// instances' events).
    pub poll: Duration,
    /// Endpoints delivered to at the same time.
    pub concurrency: usize,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            allow_private_targets: false,
            timeout: Duration::from_secs(15),
            retry_scale: 1.0,
            poll: Duration::from_millis(500),
            concurrency: 16,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the endpoint's secret cannot be opened: {0}")]
    Secret(#[from] crate::secrets::SecretError),
}

/// What one request got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub status: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: i64,
    pub response: Option<String>,
    pub retry_after: Option<Duration>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// The receiver asked to be left alone for good (Standard Webhooks: 410 disables).
    pub fn gone(&self) -> bool {
        self.status == Some(410)
    }
}

/// Resolves names and keeps only the addresses the guard allows.
struct GuardedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::task::spawn_blocking(move || (host.as_str(), 0).to_socket_addrs())
                    .await
                    .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })??
                    .collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| refused(a.ip(), allow_private).is_none())
                .collect();
            if allowed.is_empty() {
                let why = found
                    .first()
                    .and_then(|a| refused(a.ip(), allow_private))
                    .unwrap_or("the name has no address");
                return Err(format!("refused by the SSRF guard: {why}").into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// Makes signed requests.
#[derive(Clone)]
pub struct Sender {
    http: reqwest::Client,
    allow_private: bool,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("allow_private", &self.allow_private)
            .finish_non_exhaustive()
    }
}

impl Sender {
    pub fn new(config: &WebhookConfig) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would be the address the guard checks, not the receiver's.
            .no_proxy()
            .timeout(config.timeout)
            .user_agent(concat!("orgsync/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(GuardedResolver {
                allow_private: config.allow_private_targets,
            })
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            http,
            allow_private: config.allow_private_targets,
        }
    }

    /// Why a URL may not be called before resolving it: its scheme, or an address literal
    /// the guard refuses.
    pub fn check_url(&self, url: &str) -> Result<reqwest::Url, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err("the URL must start with https:// (or http://)".into());
        }
        match parsed.host() {
            None => return Err("the URL has no host".into()),
            Some(url::Host::Ipv4(ip)) => {
                if let Some(why) = refused(ip.into(), self.allow_private) {
                    return Err(format!("refused by the SSRF guard: {why}"));
                }
            }
            Some(url::Host::Ipv6(ip)) => {
                if let Some(why) = refused(ip.into(), self.allow_private) {
                    return Err(format!("refused by the SSRF guard: {why}"));
                }
            }
            Some(url::Host::Domain(_)) => {}
        }
        Ok(parsed)
    }

    /// POSTs `body` signed with `keys` (the current secret first).
    pub async fn post(&self, url: &str, keys: &[Vec<u8>], id: &str, body: Vec<u8>) -> Outcome {
        let started = Instant::now();
        let elapsed =
            |started: Instant| i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let url = match self.check_url(url) {
            Ok(url) => url,
            Err(e) => {
                return Outcome {
                    status: None,
                    error: Some(e),
                    latency_ms: 0,
                    response: None,
                    retry_after: None,
                };
            }
        };
        let timestamp = now_ms() / 1000;
        let signature = signature_header(keys, id, timestamp, &body);
        let sent = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        match sent {
            Err(e) => Outcome {
                status: None,
                error: Some(describe(&e)),
                latency_ms: elapsed(started),
                response: None,
                retry_after: None,
            },
            Ok(resp) => {
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after);
                let text = resp.text().await.unwrap_or_default();
                let mut response: String = text.chars().take(RESPONSE_KEPT).collect();
                if response.len() < text.len() {
                    response.push('…');
                }
                let error = (!(200..300).contains(&status)).then(|| {
                    if (300..400).contains(&status) {
                        format!("answered {status}: redirects are not followed")
                    } else {
                        format!("answered {status}")
                    }
                });
                Outcome {
                    status: Some(status),
                    error,
                    latency_ms: elapsed(started),
                    response: (!response.is_empty()).then_some(response),
                    retry_after,
                }
            }
        }
    }
}

/// A transport error in a sentence, with its cause (the guard's refusal, a timeout, …).
fn describe(e: &reqwest::Error) -> String {
    let mut out = if e.is_timeout() {
        "no answer within the timeout".to_owned()
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        "the request failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The keys that sign for an endpoint now: its secret, and the one before it during a
/// rotation's grace period.
pub fn signing_keys(
    key: &MasterKey,
    endpoint: &WebhookEndpoint,
    now: Millis,
) -> Result<Vec<Vec<u8>>, WebhookError> {
    let mut keys = Vec::new();
    let current = key.open(&endpoint.secret)?;
    keys.extend(secret_key(&current));
    if let (Some(previous), Some(until)) = (&endpoint.previous_secret, endpoint.previous_until)
        && now < until
    {
        keys.extend(secret_key(&key.open(previous)?));
    }
    Ok(keys)
}

/// What one pass over the due endpoints did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassStats {
    pub delivered: u64,
    pub failed: u64,
    pub disabled: u64,
}

impl std::ops::AddAssign for PassStats {
    fn add_assign(&mut self, o: Self) {
        self.delivered += o.delivered;
        self.failed += o.failed;
        self.disabled += o.disabled;
    }
}

/// Drives every due endpoint.
pub struct Deliverer {
    engine: Arc<Engine>,
    config: WebhookConfig,
    holder: String,
}

impl Deliverer {
    pub fn new(engine: Arc<Engine>) -> Self {
        let config = engine.config().webhooks.clone();
        let holder = format!("{}/webhooks", engine.config().instance);
        Self {
            engine,
            config,
            holder,
        }
    }

    /// Runs passes until `shutdown` turns true: at once when feed events are appended in this
    /// process, and every `poll` for retries and other instances' events.
    pub fn spawn(
        self,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let mut appended = self.engine.feed_watch();
        tokio::spawn(async move {
            loop {
                if *shutdown.borrow() {
                    break;
                }
                if let Err(e) = self.pass().await {
                    tracing::warn!(error = %e, "webhook delivery pass failed");
                }
                tokio::select! {
                    _ = tokio::time::sleep(self.config.poll) => {}
                    _ = appended.changed() => {}
                    _ = shutdown.changed() => {}
                }
            }
        })
    }

    /// One pass: every endpoint that is due gets the events after its cursor.
    pub async fn pass(&self) -> Result<PassStats, WebhookError> {
        let store = self.engine.store();
        let now = now_ms();
        let mut heads = std::collections::HashMap::new();
        let mut due = Vec::new();
        for e in store.list_webhooks(None).await? {
            let head = match heads.get(&e.pool_id) {
                Some(h) => *h,
                None => {
                    let h = store.feed_head(&e.pool_id).await?.unwrap_or_default();
                    heads.insert(e.pool_id.clone(), h);
                    h
                }
            };
            metrics::gauge!("orgsync_webhook_lag_events", "endpoint" => e.id.clone())
                .set((head.last_seq - e.cursor).max(0) as f64);
            if e.state != WebhookState::Disabled
                && e.next_attempt_at <= now
                && e.cursor < head.last_seq
            {
                due.push(e);
            }
        }
        let mut stats = PassStats::default();
        for group in due.chunks(self.config.concurrency.max(1)) {
            let runs = group
                .iter()
                .map(|e| async move { (e, self.drive(e.clone()).await) });
            for (e, r) in futures::future::join_all(runs).await {
                // One endpoint's trouble (a secret sealed with another master key, a store
                // error) must not hold back the others.
                match r {
                    Ok(s) => stats += s,
                    Err(err) => {
                        tracing::warn!(endpoint = %e.id, url = %e.url, error = %err, "webhook delivery failed")
                    }
                }
            }
        }
        Ok(stats)
    }

    /// Sends one endpoint its events, under its lease, until one fails, none is left or the
    /// pass's share is used.
    async fn drive(&self, mut e: WebhookEndpoint) -> Result<PassStats, WebhookError> {
        let store = self.engine.store();
        let now = now_ms();
        let lease_until = now + i64::try_from(LEASE.as_millis()).unwrap_or(i64::MAX);
        if !store
            .lease_webhook(&e.id, &self.holder, lease_until, now)
            .await?
        {
            return Ok(PassStats::default());
        }
        let result = self.send_events(&mut e).await;
        if let Err(err) = store.release_webhook(&e.id, &self.holder).await {
            tracing::warn!(endpoint = %e.id, error = %err, "could not release a webhook lease; it expires by itself");
        }
        result
    }

    async fn send_events(&self, e: &mut WebhookEndpoint) -> Result<PassStats, WebhookError> {
        let store = self.engine.store();
        let mut stats = PassStats::default();
        // Read again under the lease: an admin may have changed it since the list.
        let Some(fresh) = store.get_webhook(&e.id).await? else {
            return Ok(stats);
        };
        *e = fresh;
        if e.state == WebhookState::Disabled || e.next_attempt_at > now_ms() {
            return Ok(stats);
        }
        let started = Instant::now();
        for _ in 0..EVENTS_PER_PASS {
            // Within half the lease (a request takes at most the timeout): another instance
            // never takes an endpoint whose deliverer is still sending.
            if started.elapsed() > LEASE / 2 {
                return Ok(stats);
            }
            let read = store
                .feed_read(&e.pool_id, e.cursor, 1, &e.types, WINDOW)
                .await?;
            let read_at = e.updated_at;
            if read.head.pruned_through > e.cursor {
                tracing::warn!(endpoint = %e.id, cursor = e.cursor, pruned_through = read.head.pruned_through,
                    "events this webhook endpoint had not received were removed by retention");
            }
            let Some(event) = read.events.first() else {
                if read.through > e.cursor {
                    // Passed over by the type filter: nothing to send up to here.
                    e.cursor = read.through;
                    e.updated_at = bump(e.updated_at);
                    if !store.record_webhook_progress(None, e, read_at).await? {
                        return Ok(stats);
                    }
                    if read.through < read.head.last_seq {
                        continue;
                    }
                }
                return Ok(stats);
            };
            let envelope: Value = event.envelope();
            let body = serde_json::to_vec(&envelope).unwrap_or_default();
            let now = now_ms();
            let keys = signing_keys(self.engine.master_key(), e, now)?;
            let event_id = event.id();
            let outcome = self
                .engine
                .webhook_sender()
                .post(&e.url, &keys, &event_id, body)
                .await;
            let attempt = WebhookAttempt {
                id: 0,
                endpoint_id: e.id.clone(),
                seq: event.seq,
                event_id,
                event_type: event.event_type.as_str().to_owned(),
                attempt: e.failures + 1,
                at: now,
                status: outcome.status,
                error: outcome.error.clone(),
                latency_ms: outcome.latency_ms,
                response: outcome.response.clone(),
            };
            let now = now_ms();
            let delivered = outcome.ok();
            if delivered {
                e.cursor = event.seq;
                e.failures = 0;
                e.state = WebhookState::Enabled;
                e.next_attempt_at = now;
                stats.delivered += 1;
            } else if outcome.gone() {
                e.state = WebhookState::Disabled;
                e.disabled_reason = Some(format!(
                    "the receiver answered 410 Gone to event {} at {}: it asked for no more \
                     deliveries. Enable the endpoint again to resume from there",
                    event.seq,
                    crate::ids::iso8601(now)
                ));
                stats.disabled += 1;
            } else {
                e.failures += 1;
                let jitter = rand::random::<f64>() * 2.0 - 1.0;
                match next_delay(
                    e.failures,
                    outcome.retry_after,
                    self.config.retry_scale,
                    jitter,
                ) {
                    Some(delay) => {
                        e.state = WebhookState::Failing;
                        e.next_attempt_at =
                            now + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
                        stats.failed += 1;
                    }
                    None => {
                        e.state = WebhookState::Disabled;
                        e.disabled_reason = Some(format!(
                            "event {} failed {} times over the whole retry schedule (last: {}). \
                             Fix the receiver, then enable the endpoint again: it resumes from \
                             that event",
                            event.seq,
                            e.failures,
                            outcome.error.as_deref().unwrap_or("no answer")
                        ));
                        stats.disabled += 1;
                    }
                }
            }
            metrics::counter!("orgsync_webhook_deliveries_total", "endpoint" => e.id.clone(),
                "result" => if delivered { "ok" } else { "failed" })
            .increment(1);
            e.updated_at = bump(e.updated_at);
            if !store
                .record_webhook_progress(Some(&attempt), e, read_at)
                .await?
                || !delivered
            {
                return Ok(stats);
            }
        }
        Ok(stats)
    }
}

/// A new `updated_at`: now, and always later than the one before (two changes in one
/// millisecond must not look like none).
pub fn bump(before: Millis) -> Millis {
    now_ms().max(before + 1)
}
