//! One request, start to finish: token, pacing, send, classify the answer, and the retry
//! policy (token refresh once, throttling waits, bounded jittered backoff).

use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use futures::FutureExt;
use futures::future::BoxFuture;
use rand::Rng;
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::debug;
use url::Url;

use super::config::RetryConfig;
use super::error::{
    ApiFailure, CODE_INTERNAL_RETRY, CODE_RATE_LIMITED, FeishuError, Subject, TOKEN_INVALID_CODES,
    TransportKind,
};
use super::pacing::Pacer;
use super::token::{FetchedToken, TokenCache};
use crate::model::{ApiErrorDetail, TenantTokenRequest, TenantTokenResponse};
use crate::serde_util::value_to_i64;

/// The token endpoint's key for pacing and errors.
pub(crate) const TOKEN_ENDPOINT: &str = "auth/v3/tenant_access_token/internal";

/// When Feishu omits `expire`, assume 30 min: it hands out the same token while ≥ 30 min
/// remain, and a wrong guess heals itself through the token-invalid refresh.
const ASSUMED_TOKEN_LIFETIME: Duration = Duration::from_secs(1800);

/// A GET to the Open API, described independently of any attempt.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    /// The path template, e.g. `contact/v3/departments/:department_id/children`: the
    /// pacing key and the name used in errors.
    pub endpoint: &'static str,
    /// Path segments after `/open-apis/`; ids are percent-encoded when joined.
    pub path: Vec<String>,
    pub query: Vec<(&'static str, String)>,
    pub subject: Subject,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Auth {
    Tenant,
    TokenRequest,
}

/// A `code == 0` answer.
struct Envelope {
    body: Value,
}

/// How one attempt ended.
enum Step {
    Done(Envelope),
    /// A token-invalid code: evict and retry once.
    TokenInvalid(FeishuError),
    Throttled {
        reset: Option<Duration>,
        log_id: Option<String>,
    },
    /// 5xx, 40003, connect error, timeout.
    Transient(FeishuError),
    Fatal(FeishuError),
}

pub(crate) struct Inner {
    pub http: reqwest::Client,
    pub base: Url,
    pub app_id: String,
    pub app_secret: String,
    pub tokens: TokenCache,
    pub pacer: Pacer,
    pub retry: RetryConfig,
    /// Answers that said "throttled" (429 / 99991400), since the client was made.
    pub throttled: std::sync::atomic::AtomicU64,
}

impl Inner {
    /// A valid tenant token from the cache, or from one shared fetch.
    pub async fn tenant_token(&self) -> Result<Arc<str>, FeishuError> {
        self.tokens.get(|| self.fetch_token()).await
    }

    /// Always asks Feishu, then caches the answer.
    pub async fn refresh_token(&self) -> Result<Arc<str>, FeishuError> {
        self.tokens.refresh(|| self.fetch_token()).await
    }

    // Boxed: a tenant call fetches a token, which is itself a call.
    fn fetch_token(&self) -> BoxFuture<'_, Result<FetchedToken, FeishuError>> {
        async move {
            let call = Call {
                endpoint: TOKEN_ENDPOINT,
                path: ["auth", "v3", "tenant_access_token", "internal"]
                    .map(String::from)
                    .to_vec(),
                query: Vec::new(),
                subject: Subject::None,
            };
            let envelope = self.execute(&call, Auth::TokenRequest).await?;
            let parsed: TenantTokenResponse =
                serde_json::from_value(envelope.body).map_err(|e| FeishuError::Decode {
                    endpoint: TOKEN_ENDPOINT.to_owned(),
                    http_status: 200,
                    detail: format!("the token answer does not decode ({e})"),
                    log_id: None,
                })?;
            let value = parsed
                .tenant_access_token
                .filter(|t| !t.trim().is_empty())
                .ok_or_else(|| FeishuError::Decode {
                    endpoint: TOKEN_ENDPOINT.to_owned(),
                    http_status: 200,
                    detail: "code 0 but no tenant_access_token".to_owned(),
                    log_id: None,
                })?;
            let expire = parsed
                .expire
                .and_then(|s| u64::try_from(s).ok())
                .map_or(ASSUMED_TOKEN_LIFETIME, Duration::from_secs);
            debug!(
                expire_secs = expire.as_secs(),
                "fetched a Feishu tenant access token"
            );
            Ok(FetchedToken {
                value: value.into(),
                expire,
            })
        }
        .boxed()
    }

    /// GETs `call` with the tenant token and decodes its `data` (absent `data` = default).
    pub async fn get_data<T: DeserializeOwned + Default>(
        &self,
        call: &Call,
    ) -> Result<T, FeishuError> {
        let mut envelope = self.execute(call, Auth::Tenant).await?;
        match envelope.body.get_mut("data").map(Value::take) {
            None | Some(Value::Null) => Ok(T::default()),
            Some(data) => serde_json::from_value(data).map_err(|e| FeishuError::Decode {
                endpoint: call.endpoint.to_owned(),
                http_status: 200,
                detail: format!("`data` does not decode ({e})"),
                log_id: None,
            }),
        }
    }

    async fn execute(&self, call: &Call, auth: Auth) -> Result<Envelope, FeishuError> {
        let mut backoff = ExponentialBuilder::new()
            .with_min_delay(self.retry.min_delay)
            .with_max_delay(self.retry.max_delay)
            .with_max_times(self.retry.max_retries)
            .build();
        // Throttled without `x-ogw-ratelimit-reset`: back off, bounded by the wait count.
        let mut throttle_backoff = ExponentialBuilder::new()
            .with_min_delay(self.retry.min_delay)
            .with_max_delay(self.retry.max_rate_limit_wait)
            .without_max_times()
            .build();
        let mut throttle_waits = 0;
        let mut token_refreshed = false;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let token = match auth {
                Auth::Tenant => Some(self.tenant_token().await?),
                Auth::TokenRequest => None,
            };
            self.pacer.pace(call.endpoint).await;
            let step = self.attempt(call, auth, token.as_deref(), attempt).await;
            count_attempt(call.endpoint, &step);
            match step {
                Step::Done(envelope) => return Ok(envelope),
                Step::TokenInvalid(err) => {
                    if token_refreshed {
                        return Err(err);
                    }
                    token_refreshed = true;
                    if let Some(token) = &token {
                        self.tokens.invalidate_if(token);
                    }
                }
                Step::Throttled { reset, log_id } => {
                    self.throttled
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if throttle_waits >= self.retry.max_rate_limit_waits {
                        return Err(FeishuError::RateLimited {
                            endpoint: call.endpoint.to_owned(),
                            waits: throttle_waits,
                            log_id,
                        });
                    }
                    throttle_waits += 1;
                    let wait = match reset {
                        Some(reset) => reset.max(self.retry.min_delay),
                        None => jitter(throttle_backoff.next().unwrap_or(self.retry.max_delay)),
                    }
                    .min(self.retry.max_rate_limit_wait);
                    debug!(
                        endpoint = call.endpoint,
                        wait_ms = wait.as_millis() as u64,
                        "Feishu throttled the request; waiting"
                    );
                    tokio::time::sleep(wait).await;
                }
                Step::Transient(err) => match backoff.next() {
                    Some(delay) => {
                        let delay = jitter(delay);
                        debug!(endpoint = call.endpoint, error = %err, delay_ms = delay.as_millis() as u64, "transient Feishu failure; retrying");
                        tokio::time::sleep(delay).await;
                    }
                    None => return Err(err),
                },
                Step::Fatal(err) => return Err(err),
            }
        }
    }

    fn url(&self, call: &Call) -> Result<Url, FeishuError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| {
                FeishuError::Config(format!("base URL {} cannot take a path", self.base))
            })?
            .pop_if_empty()
            .push("open-apis")
            .extend(&call.path);
        Ok(url)
    }

    async fn attempt(&self, call: &Call, auth: Auth, token: Option<&str>, attempt: u32) -> Step {
        let url = match self.url(call) {
            Ok(url) => url,
            Err(err) => return Step::Fatal(err),
        };
        let request = match (auth, token) {
            (Auth::TokenRequest, _) => self.http.post(url).json(&TenantTokenRequest {
                app_id: self.app_id.clone(),
                app_secret: self.app_secret.clone(),
            }),
            (Auth::Tenant, token) => self
                .http
                .get(url)
                .query(&call.query)
                .bearer_auth(token.unwrap_or_default()),
        };
        let started = Instant::now();
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) => return transport_failure(call, err),
        };
        let status = response.status().as_u16();
        let header_log_id = log_id_header(response.headers());
        let reset = rate_limit_reset(response.headers());
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(err) => return transport_failure(call, err),
        };
        let json = serde_json::from_slice::<Value>(&body)
            .ok()
            .filter(Value::is_object);
        let code = json
            .as_ref()
            .and_then(|v| v.get("code"))
            .and_then(value_to_i64);
        debug!(
            endpoint = call.endpoint,
            attempt,
            status,
            code,
            log_id = header_log_id.as_deref(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Feishu request"
        );
        let (json, code) = match (json, code) {
            (Some(json), Some(0)) => return Step::Done(Envelope { body: json }),
            (Some(json), Some(code)) => (json, code),
            _ => {
                if status == 429 {
                    return Step::Throttled {
                        reset,
                        log_id: header_log_id,
                    };
                }
                let err = FeishuError::Decode {
                    endpoint: call.endpoint.to_owned(),
                    http_status: status,
                    detail: describe_unexpected_body(&body, auth == Auth::TokenRequest),
                    log_id: header_log_id,
                };
                return if status >= 500 {
                    Step::Transient(err)
                } else {
                    Step::Fatal(err)
                };
            }
        };
        let detail: Option<ApiErrorDetail> = json
            .get("error")
            .and_then(|e| serde_json::from_value(e.clone()).ok());
        let log_id = header_log_id.or_else(|| detail.as_ref().and_then(|d| d.log_id.clone()));
        if status == 429 || code == CODE_RATE_LIMITED {
            return Step::Throttled { reset, log_id };
        }
        let msg = json
            .get("msg")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let err = ApiFailure {
            code,
            msg,
            endpoint: call.endpoint,
            subject: &call.subject,
            http_status: status,
            log_id,
            detail,
            token_endpoint: auth == Auth::TokenRequest,
        }
        .into_error();
        if auth == Auth::Tenant && TOKEN_INVALID_CODES.contains(&code) {
            Step::TokenInvalid(err)
        } else if code == CODE_INTERNAL_RETRY || status >= 500 {
            Step::Transient(err)
        } else {
            Step::Fatal(err)
        }
    }
}

/// Prometheus counters (a no-op unless the binary installed a recorder): every attempt, the
/// failed ones by Feishu code (`http_NNN` / `transport` without one), and the throttled ones.
fn count_attempt(endpoint: &'static str, step: &Step) {
    metrics::counter!("orgsync_feishu_requests_total", "endpoint" => endpoint).increment(1);
    let err = match step {
        Step::Done(_) => return,
        Step::Throttled { .. } => {
            metrics::counter!("orgsync_feishu_rate_limited_total", "endpoint" => endpoint)
                .increment(1);
            return;
        }
        Step::TokenInvalid(err) | Step::Transient(err) | Step::Fatal(err) => err,
    };
    let code = match (err.code(), err) {
        (Some(code), _) => code.to_string(),
        (None, FeishuError::Decode { http_status, .. }) => format!("http_{http_status}"),
        (None, FeishuError::Transport { .. }) => "transport".to_owned(),
        (None, _) => "other".to_owned(),
    };
    metrics::counter!("orgsync_feishu_errors_total", "endpoint" => endpoint, "code" => code)
        .increment(1);
}

fn transport_failure(call: &Call, err: reqwest::Error) -> Step {
    let kind = if err.is_timeout() {
        TransportKind::Timeout
    } else if err.is_connect() {
        TransportKind::Connect
    } else if err.is_request() || err.is_body() {
        // e.g. a pooled keep-alive connection closed under us; every call is a read, so
        // sending it again is safe.
        TransportKind::Io
    } else {
        TransportKind::Other
    };
    let err = FeishuError::Transport {
        endpoint: call.endpoint.to_owned(),
        kind,
        source: Arc::new(err),
    };
    if kind == TransportKind::Other {
        Step::Fatal(err)
    } else {
        Step::Transient(err)
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn log_id_header(headers: &HeaderMap) -> Option<String> {
    header(headers, "x-tt-logid")
        .or_else(|| header(headers, "x-request-id"))
        .map(str::to_owned)
}

/// `x-ogw-ratelimit-reset`: seconds until the window resets (fractions tolerated).
fn rate_limit_reset(headers: &HeaderMap) -> Option<Duration> {
    let secs: f64 = header(headers, "x-ogw-ratelimit-reset")?.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

/// A sleep in `[delay/2, delay]`: spread out, yet never above the configured maximum.
fn jitter(delay: Duration) -> Duration {
    let half = delay / 2;
    let spread = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(rand::rng().random_range(0..=spread))
}

/// What an admin needs to recognise a wrong base URL, without echoing token answers.
fn describe_unexpected_body(body: &[u8], token_endpoint: bool) -> String {
    if body.is_empty() {
        return "the body is empty".to_owned();
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(_)) => "the JSON answer has no integer `code`".to_owned(),
        Ok(_) => "the body is JSON but not an object".to_owned(),
        Err(_) if token_endpoint => "the body is not JSON".to_owned(),
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let snippet: String = text
                .chars()
                .take(120)
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            format!("the body is not JSON: {:?}", snippet.trim())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_half_and_full_delay() {
        for _ in 0..100 {
            let d = jitter(Duration::from_millis(200));
            assert!(d >= Duration::from_millis(100) && d <= Duration::from_millis(200));
        }
    }

    #[test]
    fn reset_header_parses_seconds() {
        let mut h = HeaderMap::new();
        h.insert("x-ogw-ratelimit-reset", "2".parse().unwrap());
        assert_eq!(rate_limit_reset(&h), Some(Duration::from_secs(2)));
        h.insert("x-ogw-ratelimit-reset", "soon".parse().unwrap());
        assert_eq!(rate_limit_reset(&h), None);
        h.insert("x-ogw-ratelimit-reset", "-1".parse().unwrap());
        assert_eq!(rate_limit_reset(&h), None);
    }
}
