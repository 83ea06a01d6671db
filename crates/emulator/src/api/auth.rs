//! `POST /open-apis/auth/v3/tenant_access_token/internal` and the tenant tokens it hands out
//! (protocol §1.2): 2 h lifetime, the same token while ≥ 30 min remain, a new one below that
//! while the old one stays valid until its own expiry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use http::header::AUTHORIZATION;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::errors::ApiError;
use crate::ratelimit::Decision;
use crate::server::{EmulatorState, lock};

pub const TOKEN_ENDPOINT: &str = "auth/v3/tenant_access_token/internal";

/// One issued token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub app_id: String,
    pub issued_at_ms: i64,
    pub expires_at_ms: i64,
    pub revoked: bool,
}

impl TokenRecord {
    fn valid_at(&self, now_ms: i64) -> bool {
        !self.revoked && now_ms < self.expires_at_ms
    }
}

#[derive(Debug, Default)]
struct Tokens {
    by_token: HashMap<String, TokenRecord>,
    /// The token the endpoint hands out to each app while it has enough life left.
    current: HashMap<String, String>,
}

/// Every token ever issued (until it expires), with revocation and expiry hooks.
#[derive(Debug, Default)]
pub struct TokenStore {
    inner: Mutex<Tokens>,
}

impl TokenStore {
    /// The app's current token if at least `reuse_ms` of it remains, else a new one.
    /// Returns the token and its remaining lifetime in whole seconds.
    pub fn issue(
        &self,
        app_id: &str,
        now_ms: i64,
        lifetime_ms: i64,
        reuse_ms: i64,
    ) -> (String, i64) {
        let mut t = lock::mutex(&self.inner);
        t.by_token
            .retain(|_, r| !r.revoked && r.expires_at_ms > now_ms);
        let reusable = t
            .current
            .get(app_id)
            .and_then(|tok| t.by_token.get(tok).map(|r| (tok.clone(), r.expires_at_ms)))
            .filter(|(_, expires)| expires - now_ms >= reuse_ms);
        let (token, expires_at_ms) = reusable.unwrap_or_else(|| {
            let token = format!("t-{}", hex::encode(rand::rng().random::<[u8; 20]>()));
            let record = TokenRecord {
                app_id: app_id.to_owned(),
                issued_at_ms: now_ms,
                expires_at_ms: now_ms + lifetime_ms,
                revoked: false,
            };
            t.by_token.insert(token.clone(), record);
            t.current.insert(app_id.to_owned(), token.clone());
            (token, now_ms + lifetime_ms)
        });
        (token, (expires_at_ms - now_ms).div_euclid(1000))
    }

    /// The app a token belongs to, while it is valid.
    pub fn validate(&self, token: &str, now_ms: i64) -> Option<String> {
        lock::mutex(&self.inner)
            .by_token
            .get(token)
            .filter(|r| r.valid_at(now_ms))
            .map(|r| r.app_id.clone())
    }

    /// Makes one token invalid (99991663 from now on). False if unknown.
    pub fn revoke(&self, token: &str) -> bool {
        let mut t = lock::mutex(&self.inner);
        t.by_token
            .get_mut(token)
            .map(|r| r.revoked = true)
            .is_some()
    }

    /// Revokes every token of an app; returns how many were valid.
    pub fn revoke_app(&self, app_id: &str, now_ms: i64) -> usize {
        let mut t = lock::mutex(&self.inner);
        let mut n = 0;
        for r in t.by_token.values_mut().filter(|r| r.app_id == app_id) {
            n += usize::from(r.valid_at(now_ms));
            r.revoked = true;
        }
        n
    }

    /// Lets one token expire now.
    pub fn expire(&self, token: &str, now_ms: i64) -> bool {
        let mut t = lock::mutex(&self.inner);
        t.by_token
            .get_mut(token)
            .map(|r| r.expires_at_ms = r.expires_at_ms.min(now_ms))
            .is_some()
    }

    /// Lets every token of an app expire now.
    pub fn expire_app(&self, app_id: &str, now_ms: i64) {
        let mut t = lock::mutex(&self.inner);
        for r in t.by_token.values_mut().filter(|r| r.app_id == app_id) {
            r.expires_at_ms = r.expires_at_ms.min(now_ms);
        }
    }

    /// The app's tokens that are still valid, oldest first.
    pub fn valid_tokens(&self, app_id: &str, now_ms: i64) -> Vec<(String, TokenRecord)> {
        let t = lock::mutex(&self.inner);
        let mut out: Vec<_> = t
            .by_token
            .iter()
            .filter(|(_, r)| r.app_id == app_id && r.valid_at(now_ms))
            .map(|(k, r)| (k.clone(), r.clone()))
            .collect();
        out.sort_by_key(|(_, r)| r.issued_at_ms);
        out
    }
}

#[derive(Deserialize)]
struct TokenRequest {
    app_id: String,
    app_secret: String,
}

/// The token endpoint. Body problems and unknown apps are 10003 with HTTP 200.
pub async fn tenant_access_token(State(state): State<Arc<EmulatorState>>, body: Bytes) -> Response {
    let request = serde_json::from_slice::<TokenRequest>(&body)
        .ok()
        .filter(|r| !r.app_id.is_empty() && !r.app_secret.is_empty());
    let Some(request) = request else {
        return ApiError::invalid_param().into_response();
    };
    // Throttled per app id as sent: the gateway counts before it knows the app.
    if let Decision::Throttle { limit, reset_secs } =
        state
            .rate_limiter
            .check(TOKEN_ENDPOINT, &request.app_id, state.clock.now_ms())
    {
        return super::throttled(limit, reset_secs);
    }
    let draw = state.faults.draw(TOKEN_ENDPOINT, false);
    if let Some(delay) = draw.delay {
        tokio::time::sleep(delay).await;
    }
    if let Some(fault) = draw.fault {
        return super::fault_response(fault);
    }
    let secret = state.with_tenant(|t| t.apps.get(&request.app_id).map(|a| a.app_secret.clone()));
    let behaviour = state.behaviour();
    match secret {
        None => ApiError::invalid_param().into_response(),
        Some(secret) if secret != request.app_secret => {
            ApiError::app_secret_invalid(behaviour.bad_secret_status).into_response()
        }
        Some(_) => {
            let (token, expire) = state.tokens.issue(
                &request.app_id,
                state.clock.now_ms(),
                duration_ms(behaviour.token_lifetime),
                duration_ms(behaviour.token_reuse_threshold),
            );
            Json::<Value>(json!({
                "code": 0,
                "msg": "ok",
                "tenant_access_token": token,
                "expire": expire,
            }))
            .into_response()
        }
    }
}

fn duration_ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The app behind `Authorization: Bearer t-…`, or the token error Feishu gives.
pub fn authenticate(state: &EmulatorState, headers: &HeaderMap) -> Result<String, ApiError> {
    let status = state.behaviour().token_error_status;
    let raw = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or_default();
    let token = raw
        .strip_prefix("Bearer ")
        .or_else(|| raw.strip_prefix("bearer "))
        .map(str::trim)
        .unwrap_or_default();
    if token.is_empty() {
        return Err(ApiError::need_token(status));
    }
    if !(token.starts_with("t-") || token.starts_with("u-")) {
        return Err(ApiError::malformed_token(status));
    }
    let app_id = state
        .tokens
        .validate(token, state.clock.now_ms())
        .ok_or_else(|| ApiError::invalid_token(status))?;
    // An app removed from the tenant takes its tokens with it.
    if !state.with_tenant(|t| t.apps.contains_key(&app_id)) {
        return Err(ApiError::invalid_token(status));
    }
    Ok(app_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    #[test]
    fn same_token_while_half_an_hour_remains_then_a_new_one() {
        let store = TokenStore::default();
        let (t1, e1) = store.issue("cli_a", 0, 2 * H, H / 2);
        assert!(t1.starts_with("t-") && t1.len() == 42);
        assert_eq!(e1, 7200);
        let (t2, e2) = store.issue("cli_a", 60_000, 2 * H, H / 2);
        assert_eq!((t2.as_str(), e2), (t1.as_str(), 7140));
        let (t3, _) = store.issue("cli_a", 3 * H / 2, 2 * H, H / 2);
        assert_eq!(t3, t1, "exactly 30 min left still reuses");
        let (t4, e4) = store.issue("cli_a", 3 * H / 2 + 1000, 2 * H, H / 2);
        assert_ne!(t4, t1);
        assert_eq!(e4, 7200);
        assert_eq!(
            store.validate(&t1, 3 * H / 2 + 1000).as_deref(),
            Some("cli_a")
        );
        assert_eq!(store.validate(&t1, 2 * H), None);
        assert_eq!(store.valid_tokens("cli_a", 3 * H / 2 + 1000).len(), 2);
        // Another app never gets this app's token.
        assert_ne!(store.issue("cli_b", 0, 2 * H, H / 2).0, t4);
    }

    #[test]
    fn revocation_and_forced_expiry() {
        let store = TokenStore::default();
        let (t1, _) = store.issue("cli_a", 0, 2 * H, H / 2);
        assert!(store.revoke(&t1));
        assert_eq!(store.validate(&t1, 1), None);
        let (t2, _) = store.issue("cli_a", 1, 2 * H, H / 2);
        assert_ne!(t1, t2);
        assert!(store.expire(&t2, 2));
        assert_eq!(store.validate(&t2, 2), None);
        let (t3, _) = store.issue("cli_a", 3, 2 * H, H / 2);
        assert_eq!(store.revoke_app("cli_a", 3), 1);
        assert_eq!(store.validate(&t3, 4), None);
    }
}
