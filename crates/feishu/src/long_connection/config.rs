//! The server-sent client config and the reconnect schedule (docs/long-connection.md,
//! "Client config" and "Reconnecting"). Pure: delays are computed, never slept here.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `ClientConfig` as the endpoint and every pong send it (capitalised keys, seconds). Any
/// field may be missing or null; missing, zero and out-of-range values never reach the
/// schedule ([`Settings::apply`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ClientConfig {
    /// Reconnect attempts after a disconnect; negative: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnect_count: Option<i64>,
    /// Seconds between reconnect attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnect_interval: Option<i64>,
    /// Upper bound, in seconds, of the random pause before the first reconnect attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnect_nonce: Option<i64>,
    /// Seconds between the client's pings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ping_interval: Option<i64>,
}

/// The ranges the server's values are clamped to: a sync service must neither spin nor
/// wait for hours on a bad value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub ping: (Duration, Duration),
    pub interval: (Duration, Duration),
    pub nonce_max: Duration,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            ping: (Duration::from_secs(10), Duration::from_secs(600)),
            interval: (Duration::from_secs(1), Duration::from_secs(600)),
            nonce_max: Duration::from_secs(120),
        }
    }
}

/// The values in force: the SDKs' defaults until the server sends its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// `None`: unlimited.
    pub reconnect_count: Option<u32>,
    pub reconnect_interval: Duration,
    pub reconnect_nonce: Duration,
    pub ping_interval: Duration,
    pub bounds: Bounds,
}

impl Default for Settings {
    fn default() -> Self {
        Self::with_bounds(Bounds::default())
    }
}

impl Settings {
    /// The SDKs' defaults (unlimited attempts, 120 s apart, a first pause of up to 30 s, a
    /// ping every 120 s), clamped to `bounds`.
    pub fn with_bounds(bounds: Bounds) -> Self {
        let mut s = Self {
            reconnect_count: None,
            reconnect_interval: Duration::from_secs(120),
            reconnect_nonce: Duration::from_secs(30),
            ping_interval: Duration::from_secs(120),
            bounds,
        };
        s.clamp();
        s
    }

    /// Takes the server's values; a missing, zero or (but for the count) negative value
    /// keeps the one in force.
    pub fn apply(&mut self, config: &ClientConfig) {
        let secs = |v: Option<i64>| {
            v.filter(|n| *n > 0)
                .map(|n| Duration::from_secs(n.unsigned_abs()))
        };
        if let Some(count) = config.reconnect_count {
            self.reconnect_count = u32::try_from(count).ok();
        }
        if let Some(d) = secs(config.reconnect_interval) {
            self.reconnect_interval = d;
        }
        if let Some(d) = secs(config.reconnect_nonce) {
            self.reconnect_nonce = d;
        }
        if let Some(d) = secs(config.ping_interval) {
            self.ping_interval = d;
        }
        self.clamp();
    }

    fn clamp(&mut self) {
        let b = self.bounds;
        self.ping_interval = self.ping_interval.clamp(b.ping.0, b.ping.1);
        self.reconnect_interval = self.reconnect_interval.clamp(b.interval.0, b.interval.1);
        self.reconnect_nonce = self.reconnect_nonce.min(b.nonce_max);
    }
}

/// When to try connecting again. The SDKs' shape: a random pause in `[0, nonce)` before
/// the first attempt after a disconnect, then a fixed interval, at most `count` attempts.
/// Unlike the SDKs orgsync never gives up: past the count, or after a failure an admin must
/// fix (wrong secret, too many connections, wrong platform), it keeps trying every
/// `slow_retry`, so a fix is picked up without a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub slow_retry: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Self {
            slow_retry: Duration::from_secs(300),
        }
    }
}

impl Schedule {
    /// The pause before attempt `attempt` (0: the first after a disconnect) given the
    /// settings in force, whether the last failure needs an admin, and a random fraction
    /// in `[0, 1)` for the jitter.
    pub fn delay(
        &self,
        settings: &Settings,
        attempt: u32,
        needs_admin: bool,
        jitter: f64,
    ) -> Duration {
        if needs_admin {
            return self.slow_retry;
        }
        if attempt == 0 {
            return settings.reconnect_nonce.mul_f64(jitter.clamp(0.0, 1.0));
        }
        match settings.reconnect_count {
            Some(count) if attempt > count => self.slow_retry,
            _ => settings.reconnect_interval,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_values_replace_the_defaults_within_bounds() {
        let mut s = Settings::default();
        assert_eq!(s.reconnect_count, None);
        assert_eq!(s.ping_interval, Duration::from_secs(120));
        let config: ClientConfig = serde_json::from_str(
            r#"{"ReconnectCount":3,"ReconnectInterval":5,"ReconnectNonce":2,"PingInterval":1,"Extra":true}"#,
        )
        .unwrap();
        s.apply(&config);
        assert_eq!(s.reconnect_count, Some(3));
        assert_eq!(s.reconnect_interval, Duration::from_secs(5));
        assert_eq!(s.reconnect_nonce, Duration::from_secs(2));
        assert_eq!(s.ping_interval, Duration::from_secs(10), "clamped up");
        // -1: unlimited again; zero, null and missing keep what is in force.
        let config: ClientConfig = serde_json::from_str(
            r#"{"ReconnectCount":-1,"ReconnectInterval":0,"ReconnectNonce":null}"#,
        )
        .unwrap();
        s.apply(&config);
        assert_eq!(s.reconnect_count, None);
        assert_eq!(s.reconnect_interval, Duration::from_secs(5));
        assert_eq!(s.reconnect_nonce, Duration::from_secs(2));
        s.apply(&ClientConfig {
            ping_interval: Some(86_400),
            reconnect_nonce: Some(3_600),
            ..ClientConfig::default()
        });
        assert_eq!(s.ping_interval, Duration::from_secs(600), "clamped down");
        assert_eq!(s.reconnect_nonce, Duration::from_secs(120));
    }

    #[test]
    fn the_schedule_jitters_first_then_waits_the_interval_then_slows() {
        let mut s = Settings::default();
        s.apply(&ClientConfig {
            reconnect_count: Some(2),
            reconnect_interval: Some(7),
            reconnect_nonce: Some(10),
            ping_interval: None,
        });
        let schedule = Schedule::default();
        assert_eq!(schedule.delay(&s, 0, false, 0.5), Duration::from_secs(5));
        assert_eq!(schedule.delay(&s, 0, false, 0.0), Duration::ZERO);
        assert!(schedule.delay(&s, 0, false, 0.999_999) < Duration::from_secs(10));
        assert_eq!(schedule.delay(&s, 1, false, 0.5), Duration::from_secs(7));
        assert_eq!(schedule.delay(&s, 2, false, 0.5), Duration::from_secs(7));
        assert_eq!(schedule.delay(&s, 3, false, 0.5), schedule.slow_retry);
        assert_eq!(schedule.delay(&s, 1, true, 0.5), schedule.slow_retry);
    }
}
