//! The event pusher (protocol §4.2–4.7): delivers events to an app's request URL the way
//! Feishu does — compact JSON, encrypted when the app has an Encrypt Key, signed, success only
//! on HTTP 200 within 3 s, re-pushed after 15 s, 5 min, 1 h and 6 h, then given up.
//!
//! Switches make the at-least-once delivery visible to tests: a duplicate after success,
//! reordering within a window, and dropping a share of events outright.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use feishu::crypto;
use feishu::envelope::{self, Envelope};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::long_connection::LongConnections;

/// Feishu's re-push schedule after a failed delivery (protocol §4.7).
pub const FEISHU_RETRY_SCHEDULE: [Duration; 4] = [
    Duration::from_secs(15),
    Duration::from_secs(5 * 60),
    Duration::from_secs(60 * 60),
    Duration::from_secs(6 * 60 * 60),
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PushConfig {
    /// Multiplies the retry schedule: 1.0 is Feishu's; 0.001 turns 15 s into 15 ms.
    pub time_scale: f64,
    /// A delivery counts only if answered with HTTP 200 within this time.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// The URL check must be answered within this time.
    pub challenge_timeout: Duration,
    /// Probability of delivering an event a second time after it succeeded.
    pub duplicate_probability: f64,
    /// Events queued within this window are shuffled before delivery (zero: in order).
    pub reorder_window: Duration,
    /// Probability of silently never delivering an event (as after a 7-hour outage).
    pub drop_probability: f64,
    /// Send the X-Lark-* signature headers on the URL check too (UNVERIFIED, §4.2).
    pub sign_challenge: bool,
    /// Seed for nonces, duplicates, drops and shuffles.
    pub seed: u64,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            time_scale: 1.0,
            timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(2),
            challenge_timeout: Duration::from_secs(1),
            duplicate_probability: 0.0,
            reorder_window: Duration::ZERO,
            drop_probability: 0.0,
            sign_challenge: true,
            seed: 0,
        }
    }
}

/// Where and how to deliver: a snapshot of the app's event settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushTarget {
    pub app_id: String,
    /// Deliver over the app's long connections instead of POSTing to `url`.
    pub long_connection: bool,
    pub url: String,
    pub encrypt_key: Option<String>,
    pub verification_token: String,
}

/// One event to deliver: its id (for the log) and the plaintext envelope JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushEvent {
    pub event_id: String,
    pub plaintext: String,
}

/// The outcome of one HTTP attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub event_id: String,
    pub app_id: String,
    /// 0 for the first delivery, 1..=4 for the re-pushes.
    pub attempt: u32,
    /// Whether this delivery is the switch-induced duplicate after a success.
    pub duplicate: bool,
    /// Time since the pusher started.
    pub at_ms: u64,
    /// HTTP status, when one came back in time.
    pub status: Option<u16>,
    pub error: Option<String>,
    pub success: bool,
}

/// Counters, cheap to read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushStats {
    pub queued: u64,
    pub delivered: u64,
    pub failed_attempts: u64,
    /// Given up after the last re-push.
    pub lost: u64,
    /// Dropped by the switch, never sent.
    pub dropped: u64,
    pub duplicates_sent: u64,
    /// Deliveries still waiting for a first attempt or a re-push.
    pub in_flight: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ChallengeError {
    #[error("the request URL did not answer the URL check: {0}")]
    Unreachable(String),
    #[error("the request URL answered the URL check with HTTP {0}; Feishu needs HTTP 200")]
    Status(u16),
    #[error(
        "the request URL answered the URL check with {0:?}; Feishu needs {{\"challenge\":\"…\"}} with the same value"
    )]
    WrongAnswer(String),
}

struct Shared {
    config: Mutex<PushConfig>,
    stats: Mutex<PushStats>,
    log: Mutex<Vec<Attempt>>,
    rng: Mutex<ChaCha8Rng>,
    started: Instant,
    http: reqwest::Client,
    long_connections: Option<Arc<LongConnections>>,
}

/// Handle to the pusher task. Cloning shares it.
#[derive(Clone)]
pub struct Pusher {
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<(PushTarget, PushEvent)>,
}

impl std::fmt::Debug for Pusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pusher")
            .field("stats", &self.stats())
            .finish()
    }
}

impl Pusher {
    /// Starts the pusher on the current tokio runtime (no long connections).
    pub fn start(config: PushConfig) -> Self {
        Self::start_with(config, None)
    }

    /// Starts the pusher, delivering long-connection targets through `long_connections`.
    pub fn start_with(config: PushConfig, long_connections: Option<Arc<LongConnections>>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        let shared = Arc::new(Shared {
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(config.seed)),
            config: Mutex::new(config),
            stats: Mutex::new(PushStats::default()),
            log: Mutex::new(Vec::new()),
            started: Instant::now(),
            http,
            long_connections,
        });
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(dispatch(shared.clone(), rx));
        Self { shared, tx }
    }

    pub fn config(&self) -> PushConfig {
        lock(&self.shared.config).clone()
    }

    /// Changes the switches; applies to deliveries not yet attempted.
    pub fn set_config(&self, config: PushConfig) {
        *lock(&self.shared.config) = config;
    }

    pub fn stats(&self) -> PushStats {
        lock(&self.shared.stats).clone()
    }

    /// Every attempt so far, in the order they finished.
    pub fn attempts(&self) -> Vec<Attempt> {
        lock(&self.shared.log).clone()
    }

    /// Queues events for delivery to `target`.
    pub fn push(&self, target: &PushTarget, events: impl IntoIterator<Item = PushEvent>) {
        for event in events {
            {
                let mut stats = lock(&self.shared.stats);
                stats.queued += 1;
                stats.in_flight += 1;
            }
            if self.tx.send((target.clone(), event)).is_err() {
                // The dispatcher is gone (runtime shutting down): nothing will deliver it.
                let mut stats = lock(&self.shared.stats);
                stats.in_flight = stats.in_flight.saturating_sub(1);
                stats.lost += 1;
            }
        }
    }

    /// Waits until nothing is in flight, or the timeout passes. Returns whether it drained.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stats().in_flight == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Feishu's URL check: POSTs a challenge (encrypted when the app has an Encrypt Key) and
    /// requires `{"challenge": <same>}` with HTTP 200 within the challenge timeout.
    pub async fn verify_url(&self, target: &PushTarget) -> Result<(), ChallengeError> {
        let challenge = {
            let mut rng = lock(&self.shared.rng);
            let bytes: [u8; 16] = rng.random();
            hex::encode(bytes)
        };
        let plaintext = serde_json::json!({
            "challenge": challenge,
            "token": target.verification_token,
            "type": "url_verification",
        })
        .to_string();
        let config = self.config();
        let (timestamp, nonce) = stamp(&self.shared);
        let sealed = envelope::seal(
            &plaintext,
            target.encrypt_key.as_deref(),
            &timestamp,
            &nonce,
        );
        let mut request = self
            .shared
            .http
            .post(&target.url)
            .timeout(config.challenge_timeout)
            .header("content-type", "application/json;charset=utf-8")
            .header("user-agent", "Go-http-client/1.1")
            .body(sealed.body.clone());
        if config.sign_challenge {
            request = request
                .header(envelope::HEADER_TIMESTAMP, &sealed.timestamp)
                .header(envelope::HEADER_NONCE, &sealed.nonce)
                .header(envelope::HEADER_SIGNATURE, &sealed.signature);
        }
        let response = request
            .send()
            .await
            .map_err(|e| ChallengeError::Unreachable(e.to_string()))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(ChallengeError::Status(status));
        }
        let body = response
            .text()
            .await
            .map_err(|e| ChallengeError::Unreachable(e.to_string()))?;
        let answer: Option<String> = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v.get("challenge")
                    .and_then(|c| c.as_str())
                    .map(str::to_owned)
            });
        if answer.as_deref() == Some(challenge.as_str()) {
            Ok(())
        } else {
            Err(ChallengeError::WrongAnswer(body))
        }
    }
}

/// A Unix-seconds timestamp and a numeric nonce, as Feishu sends them.
fn stamp(shared: &Shared) -> (String, String) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let nonce: u32 = lock(&shared.rng).random_range(100_000_000..1_000_000_000);
    (now.to_string(), nonce.to_string())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere must not stop deliveries; the data stays usable.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Takes queued events, applies the drop and reorder switches, and starts one delivery task
/// per event (deliveries are independent: Feishu does not order contact events).
async fn dispatch(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<(PushTarget, PushEvent)>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let window = lock(&shared.config).reorder_window;
        if !window.is_zero() {
            let deadline = tokio::time::Instant::now() + window;
            while let Ok(Some(next)) = tokio::time::timeout_at(deadline, rx.recv()).await {
                batch.push(next);
            }
            batch.shuffle(&mut *lock(&shared.rng));
        }
        for (target, event) in batch {
            let drop = {
                let p = lock(&shared.config).drop_probability;
                p > 0.0 && lock(&shared.rng).random_bool(p.min(1.0))
            };
            if drop {
                let mut stats = lock(&shared.stats);
                stats.dropped += 1;
                stats.in_flight = stats.in_flight.saturating_sub(1);
                continue;
            }
            tokio::spawn(deliver(shared.clone(), target, event));
        }
    }
}

/// One event: first attempt, then the scaled re-push schedule; a duplicate after success when
/// the switch says so.
async fn deliver(shared: Arc<Shared>, target: PushTarget, event: PushEvent) {
    let shared = &*shared;
    let schedule: Vec<Duration> = {
        let scale = lock(&shared.config).time_scale.max(0.0);
        FEISHU_RETRY_SCHEDULE
            .iter()
            .map(|d| d.mul_f64(scale))
            .collect()
    };
    let mut succeeded = false;
    for attempt in 0..=schedule.len() {
        if attempt > 0 {
            tokio::time::sleep(schedule[attempt - 1]).await;
        }
        if send(shared, &target, &event, attempt as u32, false).await {
            succeeded = true;
            break;
        }
    }
    if succeeded {
        let duplicate = {
            let p = lock(&shared.config).duplicate_probability;
            p > 0.0 && lock(&shared.rng).random_bool(p.min(1.0))
        };
        if duplicate {
            send(shared, &target, &event, 0, true).await;
            lock(&shared.stats).duplicates_sent += 1;
        }
    }
    let mut stats = lock(&shared.stats);
    if !succeeded {
        stats.lost += 1;
    }
    stats.in_flight = stats.in_flight.saturating_sub(1);
}

/// One delivery of an event: over the long connection, or one HTTP POST (success is HTTP
/// 200 within the timeout; the body is ignored).
async fn send(
    shared: &Shared,
    target: &PushTarget,
    event: &PushEvent,
    attempt: u32,
    duplicate: bool,
) -> bool {
    let (status, error) = if target.long_connection {
        // Plaintext over the socket: no encryption, no signature (the connection was
        // authenticated when it opened).
        match &shared.long_connections {
            None => (None, Some("no long-connection gateway".to_owned())),
            Some(gateway) => match gateway.deliver(&target.app_id, &event.plaintext).await {
                Ok(code) => (Some(code), None),
                Err(e) => (None, Some(e)),
            },
        }
    } else {
        post(shared, target, event, attempt).await
    };
    record(shared, target, event, attempt, duplicate, status, error)
}

/// One HTTP POST of an event: the status, or why there is none.
async fn post(
    shared: &Shared,
    target: &PushTarget,
    event: &PushEvent,
    attempt: u32,
) -> (Option<u16>, Option<String>) {
    let (timestamp, nonce) = stamp(shared);
    let sealed = envelope::seal(
        &event.plaintext,
        target.encrypt_key.as_deref(),
        &timestamp,
        &nonce,
    );
    let result = shared
        .http
        .post(&target.url)
        .header("content-type", "application/json;charset=utf-8")
        .header("user-agent", "Go-http-client/1.1")
        .header(envelope::HEADER_TIMESTAMP, &sealed.timestamp)
        .header(envelope::HEADER_NONCE, &sealed.nonce)
        .header(envelope::HEADER_SIGNATURE, &sealed.signature)
        .header(
            "x-request-id",
            format!("emulator-{}-{attempt}", event.event_id),
        )
        .body(sealed.body)
        .send()
        .await;
    match result {
        Ok(response) => (Some(response.status().as_u16()), None),
        Err(e) => (None, Some(e.to_string())),
    }
}

/// Counts and logs one attempt; success is 200 (HTTP, or the acknowledgement's code).
fn record(
    shared: &Shared,
    target: &PushTarget,
    event: &PushEvent,
    attempt: u32,
    duplicate: bool,
    status: Option<u16>,
    error: Option<String>,
) -> bool {
    let success = status == Some(200);
    {
        let mut stats = lock(&shared.stats);
        if success && !duplicate {
            stats.delivered += 1;
        } else if !success {
            stats.failed_attempts += 1;
        }
    }
    lock(&shared.log).push(Attempt {
        event_id: event.event_id.clone(),
        app_id: target.app_id.clone(),
        attempt,
        duplicate,
        at_ms: shared.started.elapsed().as_millis() as u64,
        status,
        error,
        success,
    });
    success
}

/// Groups attempts by event id (handy in tests and the admin API).
pub fn attempts_by_event(attempts: &[Attempt]) -> BTreeMap<String, Vec<Attempt>> {
    let mut out: BTreeMap<String, Vec<Attempt>> = BTreeMap::new();
    for a in attempts {
        out.entry(a.event_id.clone()).or_default().push(a.clone());
    }
    out
}

/// Decodes a pushed request with the app's secrets, as a receiver would (used by tests and
/// by the emulator's own self-check).
pub fn open_push(
    headers: &http::HeaderMap,
    body: &[u8],
    target: &PushTarget,
) -> Result<Envelope, envelope::EnvelopeError> {
    let secrets = envelope::EventSecrets::new(
        target.verification_token.clone(),
        target.encrypt_key.clone(),
    );
    envelope::decode_request(headers, body, &secrets, &envelope::DecodeOptions::default())
}

/// The AES key check value, so a log line can say which key was used without showing it.
pub fn key_fingerprint(encrypt_key: &str) -> String {
    let mut s = hex::encode(crypto::aes_key(encrypt_key));
    s.truncate(8);
    s
}
