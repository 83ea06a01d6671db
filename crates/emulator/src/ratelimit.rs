//! Feishu's per-API throttling (protocol §3.3): each endpoint (path template) of each app
//! has a per-second and a per-minute budget (contact reads: 50/s and 1000/min); exceeding
//! either answers HTTP 429, code 99991400, with `x-ogw-ratelimit-limit` and
//! `x-ogw-ratelimit-reset`.
//!
//! Fixed windows aligned to the emulator clock (window `k` covers `[k·w, (k+1)·w)`), which is
//! what a gateway counter does and what makes `x-ogw-ratelimit-reset` meaningful: the seconds
//! until the window that refused the request ends. Refused requests are not counted, so a
//! client that waits out the reset always gets through.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::server::lock;

/// Budgets of one endpoint before scaling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointLimit {
    pub per_second: u32,
    pub per_minute: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimitConfig {
    /// `false`: nothing is throttled.
    pub enabled: bool,
    /// Requests per second window per endpoint and app (Feishu: 50).
    pub per_second: u32,
    /// Requests per minute window per endpoint and app (Feishu: 1000).
    pub per_minute: u32,
    /// Multiplies every budget (rounded, at least 1): 0.1 → 5/s and 100/min. A scale of 0
    /// or less disables throttling like `enabled = false`.
    pub scale: f64,
    /// Length of the "second" window (shorten it in tests; the budget stays per window).
    pub second_window: Duration,
    /// Length of the "minute" window.
    pub minute_window: Duration,
    /// Budgets of particular endpoints (keys like `contact/v3/departments/:department_id`),
    /// scaled like the defaults.
    pub overrides: BTreeMap<String, EndpointLimit>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            per_second: 50,
            per_minute: 1000,
            scale: 1.0,
            second_window: Duration::from_secs(1),
            minute_window: Duration::from_secs(60),
            overrides: BTreeMap::new(),
        }
    }
}

impl RateLimitConfig {
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// Feishu's budgets times `scale`.
    pub fn scaled(scale: f64) -> Self {
        Self {
            scale,
            ..Self::default()
        }
    }

    fn active(&self) -> bool {
        self.enabled && self.scale > 0.0 && self.scale.is_finite()
    }

    /// The effective (per-window) budgets of an endpoint.
    pub fn limits_for(&self, endpoint: &str) -> EndpointLimit {
        let base = self
            .overrides
            .get(endpoint)
            .copied()
            .unwrap_or(EndpointLimit {
                per_second: self.per_second,
                per_minute: self.per_minute,
            });
        let scale = |n: u32| ((f64::from(n) * self.scale).round() as u32).max(1);
        EndpointLimit {
            per_second: scale(base.per_second),
            per_minute: scale(base.per_minute),
        }
    }
}

/// The verdict on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Refused: `limit` of the window that is full, `reset_secs` until it ends (≥ 1).
    Throttle {
        limit: u32,
        reset_secs: u64,
    },
}

#[derive(Debug, Default, Clone, Copy)]
struct Window {
    index: i64,
    count: u32,
}

impl Window {
    fn roll(&mut self, index: i64) {
        if self.index != index {
            *self = Window { index, count: 0 };
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    second: Window,
    minute: Window,
}

/// Per (endpoint, app) counters plus statistics.
#[derive(Debug, Default)]
pub struct RateLimiter {
    config: RwLock<RateLimitConfig>,
    windows: Mutex<HashMap<(String, String), Counters>>,
    throttled: Mutex<BTreeMap<String, u64>>,
    throttled_total: AtomicU64,
    /// Requests still to refuse regardless of budgets (a test hook).
    forced: AtomicU64,
}

impl RateLimiter {
    pub fn new(config: RateLimitConfig) -> Self {
        Self {
            config: RwLock::new(config),
            ..Self::default()
        }
    }

    pub fn config(&self) -> RateLimitConfig {
        lock::read(&self.config).clone()
    }

    /// Replaces the budgets; counts of the current windows are kept.
    pub fn set_config(&self, config: RateLimitConfig) {
        *lock::write(&self.config) = config;
    }

    /// Forgets all counts (every window starts empty).
    pub fn reset_windows(&self) {
        lock::mutex(&self.windows).clear();
    }

    /// Throttles the next `n` requests to any endpoint, whatever the budgets.
    pub fn throttle_next(&self, n: u64) {
        self.forced.store(n, Ordering::SeqCst);
    }

    /// Counts a request of `app_id` to `endpoint` at `now_ms`, or refuses it.
    pub fn check(&self, endpoint: &str, app_id: &str, now_ms: i64) -> Decision {
        let config = lock::read(&self.config);
        let decision = if self.take_forced() {
            Decision::Throttle {
                limit: config.limits_for(endpoint).per_second,
                reset_secs: 1,
            }
        } else if !config.active() {
            Decision::Allow
        } else {
            self.count(&config, endpoint, app_id, now_ms)
        };
        if let Decision::Throttle { .. } = decision {
            self.throttled_total.fetch_add(1, Ordering::SeqCst);
            *lock::mutex(&self.throttled)
                .entry(endpoint.to_owned())
                .or_default() += 1;
        }
        decision
    }

    fn take_forced(&self) -> bool {
        self.forced
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    fn count(&self, config: &RateLimitConfig, endpoint: &str, app_id: &str, now: i64) -> Decision {
        let limits = config.limits_for(endpoint);
        let second_ms = window_ms(config.second_window);
        let minute_ms = window_ms(config.minute_window);
        let mut windows = lock::mutex(&self.windows);
        let c = windows
            .entry((endpoint.to_owned(), app_id.to_owned()))
            .or_default();
        c.second.roll(now.div_euclid(second_ms));
        c.minute.roll(now.div_euclid(minute_ms));
        let refuse = |w: &Window, len: i64, limit: u32| Decision::Throttle {
            limit,
            reset_secs: reset_secs((w.index + 1) * len - now),
        };
        if c.second.count >= limits.per_second {
            return refuse(&c.second, second_ms, limits.per_second);
        }
        if c.minute.count >= limits.per_minute {
            return refuse(&c.minute, minute_ms, limits.per_minute);
        }
        c.second.count += 1;
        c.minute.count += 1;
        Decision::Allow
    }

    /// How many requests were refused so far.
    pub fn throttled_total(&self) -> u64 {
        self.throttled_total.load(Ordering::SeqCst)
    }

    /// Refused requests per endpoint.
    pub fn throttled_by_endpoint(&self) -> BTreeMap<String, u64> {
        lock::mutex(&self.throttled).clone()
    }
}

fn window_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
}

/// Whole seconds until the window ends, rounded up, at least 1.
fn reset_secs(remaining_ms: i64) -> u64 {
    u64::try_from(remaining_ms.max(0)).map_or(1, |ms| ms.div_ceil(1000).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_rounds_and_never_reaches_zero() {
        let c = RateLimitConfig::scaled(0.1);
        assert_eq!(
            c.limits_for("x"),
            EndpointLimit {
                per_second: 5,
                per_minute: 100
            }
        );
        let tiny = RateLimitConfig::scaled(0.001);
        assert_eq!(tiny.limits_for("x").per_second, 1);
        assert!(!RateLimitConfig::scaled(0.0).active());
    }

    #[test]
    fn second_window_refuses_then_resets() {
        let rl = RateLimiter::new(RateLimitConfig::scaled(0.1));
        let t0 = 10_000_000; // on a window boundary
        for _ in 0..5 {
            assert_eq!(rl.check("e", "a", t0 + 10), Decision::Allow);
        }
        assert_eq!(
            rl.check("e", "a", t0 + 400),
            Decision::Throttle {
                limit: 5,
                reset_secs: 1
            }
        );
        // Another app and another endpoint have their own budgets.
        assert_eq!(rl.check("e", "b", t0 + 400), Decision::Allow);
        assert_eq!(rl.check("f", "a", t0 + 400), Decision::Allow);
        assert_eq!(rl.check("e", "a", t0 + 1000), Decision::Allow);
        assert_eq!(rl.throttled_total(), 1);
    }

    #[test]
    fn minute_window_reports_seconds_to_its_end() {
        let rl = RateLimiter::new(RateLimitConfig {
            per_second: 1000,
            per_minute: 3,
            ..RateLimitConfig::default()
        });
        let t0 = 60_000 * 1000;
        for i in 0..3 {
            assert_eq!(rl.check("e", "a", t0 + i), Decision::Allow);
        }
        assert_eq!(
            rl.check("e", "a", t0 + 20_500),
            Decision::Throttle {
                limit: 3,
                reset_secs: 40
            }
        );
    }

    #[test]
    fn forced_throttling_and_disabling() {
        let rl = RateLimiter::new(RateLimitConfig::disabled());
        assert_eq!(rl.check("e", "a", 0), Decision::Allow);
        rl.throttle_next(1);
        assert!(matches!(rl.check("e", "a", 0), Decision::Throttle { .. }));
        assert_eq!(rl.check("e", "a", 0), Decision::Allow);
    }
}
