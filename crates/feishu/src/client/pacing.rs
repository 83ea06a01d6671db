//! Per-endpoint pacing at Feishu's limits (50 req/s and 1000 req/min per endpoint) or at
//! the limits a connection sets.
//!
//! Two GCRA limiters per endpoint key (the path template), both from `governor`:
//!
//! - per second: one request every `1/per_second` s, burst 1. A burst of `per_second`
//!   would let a sliding 1 s window see up to `2 × per_second` requests (a full burst
//!   right after the previous second's steady stream), i.e. 100 at the default 50/s.
//!   Evenly spaced, any 1 s window holds at most `per_second + 1`.
//! - per minute: `per_minute` replenished over 60 s, with the burst bounded by
//!   `per_second`. With governor's default burst (= the whole minute quota) a sliding
//!   60 s window could see the full burst plus a minute of replenishment, ~2× the limit;
//!   bounded, any 60 s window holds at most `burst + per_minute` (50 + 1000 at the
//!   defaults). The few requests over Feishu's window get 429 and wait for its reset.
//!
//! A request waits on the minute limiter first and the second limiter last, so the
//! spacing of the requests actually sent is the per-second one.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::config::PacingConfig;

pub(crate) struct Pacer {
    limiters: Option<Limiters>,
}

struct Limiters {
    per_minute: DefaultKeyedRateLimiter<&'static str>,
    per_second: DefaultKeyedRateLimiter<&'static str>,
}

/// The (per-second, per-minute) quotas of a pacing config; `None` when disabled.
pub(crate) fn quotas(cfg: &PacingConfig) -> Option<(Quota, Quota)> {
    if !cfg.enabled {
        return None;
    }
    let per_second = NonZeroU32::new(cfg.per_second)?;
    let per_minute = NonZeroU32::new(cfg.per_minute)?;
    let second = Quota::with_period(Duration::from_secs(1) / per_second.get())?;
    let minute_burst = per_second.min(per_minute);
    let minute = Quota::per_minute(per_minute).allow_burst(minute_burst);
    Some((second, minute))
}

impl Pacer {
    pub fn new(cfg: &PacingConfig) -> Self {
        Self {
            limiters: quotas(cfg).map(|(second, minute)| Limiters {
                per_minute: RateLimiter::keyed(minute),
                per_second: RateLimiter::keyed(second),
            }),
        }
    }

    /// Waits until a request to `endpoint` may be sent.
    pub async fn pace(&self, endpoint: &'static str) {
        if let Some(l) = &self.limiters {
            l.per_minute.until_key_ready(&endpoint).await;
            l.per_second.until_key_ready(&endpoint).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use governor::clock::{Clock, FakeRelativeClock, Reference};

    use super::*;

    /// Sends as fast as the two limiters allow (on a fake clock) and returns send times.
    fn greedy_send_times(cfg: &PacingConfig, n: usize) -> Vec<Duration> {
        let (second, minute) = quotas(cfg).unwrap();
        let clock = FakeRelativeClock::default();
        let start = clock.now();
        let per_second = RateLimiter::direct_with_clock(second, clock.clone());
        let per_minute = RateLimiter::direct_with_clock(minute, clock.clone());
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            for limiter in [&per_minute, &per_second] {
                while let Err(not_until) = limiter.check() {
                    clock.advance(not_until.wait_time_from(clock.now()));
                }
            }
            times.push(Duration::from(clock.now().duration_since(start)));
        }
        times
    }

    fn max_in_window(times: &[Duration], window: Duration) -> usize {
        let mut best = 0;
        let mut lo = 0;
        for hi in 0..times.len() {
            while times[hi] - times[lo] > window {
                lo += 1;
            }
            best = best.max(hi - lo + 1);
        }
        best
    }

    #[test]
    fn defaults_stay_within_one_burst_of_feishu_limits_in_every_sliding_window() {
        let times = greedy_send_times(&PacingConfig::default(), 3000);
        let per_second = max_in_window(&times, Duration::from_secs(1));
        let per_minute = max_in_window(&times, Duration::from_secs(60));
        assert!(per_second <= 51, "{per_second} in one second");
        assert!(per_minute <= 1050, "{per_minute} in one minute");
        // ...and actually uses the budget: after the burst of 50, 1000 a minute.
        let total = times.last().unwrap().as_secs_f64();
        assert!((175.0..=180.0).contains(&total), "{total}");
    }

    #[test]
    fn a_connection_can_pace_slower() {
        let times = greedy_send_times(&PacingConfig::new(10, 300), 400);
        let per_second = max_in_window(&times, Duration::from_secs(1));
        let per_minute = max_in_window(&times, Duration::from_secs(60));
        assert!(per_second <= 11, "{per_second} in one second");
        assert!(per_minute <= 310, "{per_minute} in one minute");
    }

    #[test]
    fn disabled_or_zero_means_no_limiter() {
        assert!(quotas(&PacingConfig::disabled()).is_none());
        assert!(quotas(&PacingConfig::new(0, 900)).is_none());
    }
}
