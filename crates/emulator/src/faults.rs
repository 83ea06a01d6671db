//! Fault injection: HTTP 5xx, code 40003 `internal error` and slow answers, drawn from a
//! seeded generator so that a given sequence of requests always meets the same faults.
//!
//! Every request that passes the filter consumes exactly four draws, whatever the outcome,
//! so changing one probability does not shift the rest of the sequence.

use std::sync::Mutex;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::server::lock;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultConfig {
    pub seed: u64,
    /// Probability of an HTTP 5xx (plain-text body, as from a gateway).
    pub server_error_rate: f64,
    /// The statuses to pick from (uniformly) for a 5xx.
    pub server_error_statuses: Vec<u16>,
    /// Probability of HTTP 400 `{"code":40003,"msg":"internal error"}` (contact APIs only).
    pub internal_error_rate: f64,
    /// Probability of an added delay, drawn uniformly from `latency_min..=latency_max`.
    pub latency_rate: f64,
    pub latency_min: Duration,
    pub latency_max: Duration,
    /// Endpoint keys (e.g. `contact/v3/users/find_by_department`,
    /// `auth/v3/tenant_access_token/internal`) the faults apply to; empty = all.
    pub endpoints: Vec<String>,
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            server_error_rate: 0.0,
            server_error_statuses: vec![500, 502, 503],
            internal_error_rate: 0.0,
            latency_rate: 0.0,
            latency_min: Duration::ZERO,
            latency_max: Duration::ZERO,
            endpoints: Vec::new(),
        }
    }
}

impl FaultConfig {
    /// No faults at all.
    pub fn none() -> Self {
        Self::default()
    }

    fn applies_to(&self, endpoint: &str) -> bool {
        self.endpoints.is_empty() || self.endpoints.iter().any(|e| e == endpoint)
    }

    fn is_quiet(&self) -> bool {
        self.server_error_rate <= 0.0 && self.internal_error_rate <= 0.0 && self.latency_rate <= 0.0
    }
}

/// A failure to answer instead of the real response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP status 5xx.
    ServerError(u16),
    /// Code 40003.
    InternalError,
}

/// What the injector decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Draw {
    pub delay: Option<Duration>,
    pub fault: Option<Fault>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultCounts {
    pub server_errors: u64,
    pub internal_errors: u64,
    pub delays: u64,
}

#[derive(Debug)]
struct Inner {
    config: FaultConfig,
    rng: ChaCha8Rng,
    counts: FaultCounts,
}

#[derive(Debug)]
pub struct FaultInjector {
    inner: Mutex<Inner>,
}

impl Default for FaultInjector {
    fn default() -> Self {
        Self::new(FaultConfig::default())
    }
}

impl FaultInjector {
    pub fn new(config: FaultConfig) -> Self {
        Self {
            inner: Mutex::new(Inner {
                rng: ChaCha8Rng::seed_from_u64(config.seed),
                config,
                counts: FaultCounts::default(),
            }),
        }
    }

    pub fn config(&self) -> FaultConfig {
        lock::mutex(&self.inner).config.clone()
    }

    /// Replaces the configuration and restarts the sequence from its seed.
    pub fn set_config(&self, config: FaultConfig) {
        let mut inner = lock::mutex(&self.inner);
        inner.rng = ChaCha8Rng::seed_from_u64(config.seed);
        inner.config = config;
    }

    /// Faults injected so far.
    pub fn counts(&self) -> FaultCounts {
        lock::mutex(&self.inner).counts
    }

    /// Decides the fate of one request. `contact` = a contact API (40003 applies).
    pub fn draw(&self, endpoint: &str, contact: bool) -> Draw {
        let mut inner = lock::mutex(&self.inner);
        if inner.config.is_quiet() || !inner.config.applies_to(endpoint) {
            return Draw::default();
        }
        let Inner {
            config,
            rng,
            counts,
        } = &mut *inner;
        let (p_delay, p_5xx, p_internal): (f64, f64, f64) =
            (rng.random(), rng.random(), rng.random());
        let pick: u64 = rng.random();
        let mut draw = Draw::default();
        if p_delay < config.latency_rate {
            let (lo, hi) = (
                config.latency_min,
                config.latency_max.max(config.latency_min),
            );
            let span = u64::try_from((hi - lo).as_micros()).unwrap_or(u64::MAX);
            draw.delay = Some(lo + Duration::from_micros(pick % span.saturating_add(1)));
            counts.delays += 1;
        }
        if p_5xx < config.server_error_rate && !config.server_error_statuses.is_empty() {
            let i = (pick % config.server_error_statuses.len() as u64) as usize;
            draw.fault = Some(Fault::ServerError(config.server_error_statuses[i]));
            counts.server_errors += 1;
        } else if contact && p_internal < config.internal_error_rate {
            draw.fault = Some(Fault::InternalError);
            counts.internal_errors += 1;
        }
        draw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sequence(config: &FaultConfig, n: usize) -> Vec<Draw> {
        let f = FaultInjector::new(config.clone());
        (0..n).map(|_| f.draw("contact/v3/scopes", true)).collect()
    }

    #[test]
    fn same_seed_same_faults_and_rates_are_roughly_honoured() {
        let config = FaultConfig {
            seed: 7,
            server_error_rate: 0.2,
            internal_error_rate: 0.1,
            latency_rate: 0.5,
            latency_min: Duration::from_millis(1),
            latency_max: Duration::from_millis(3),
            ..FaultConfig::default()
        };
        let a = sequence(&config, 2000);
        assert_eq!(a, sequence(&config, 2000));
        let five = a
            .iter()
            .filter(|d| matches!(d.fault, Some(Fault::ServerError(_))))
            .count();
        let internal = a
            .iter()
            .filter(|d| d.fault == Some(Fault::InternalError))
            .count();
        assert!((300..500).contains(&five), "{five}");
        assert!((100..220).contains(&internal), "{internal}");
        assert!(
            a.iter()
                .flat_map(|d| d.delay)
                .all(|d| { d >= Duration::from_millis(1) && d <= Duration::from_millis(3) })
        );
    }

    #[test]
    fn filter_and_token_endpoint() {
        let f = FaultInjector::new(FaultConfig {
            internal_error_rate: 1.0,
            endpoints: vec!["contact/v3/scopes".into()],
            ..FaultConfig::default()
        });
        assert_eq!(f.draw("contact/v3/users/:user_id", true), Draw::default());
        assert_eq!(
            f.draw("contact/v3/scopes", true).fault,
            Some(Fault::InternalError)
        );
        // 40003 is a contact-API code; the token endpoint never gets it.
        assert_eq!(f.draw("contact/v3/scopes", false).fault, None);
        assert_eq!(f.counts().internal_errors, 1);
    }
}
