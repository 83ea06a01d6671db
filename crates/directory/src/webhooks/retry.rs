//! When a failed delivery is tried again (docs/webhooks.md): Standard Webhooks' example
//! schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h: about three days), each
//! delay with ±10 % jitter so that endpoints failing together do not retry together; a
//! longer `Retry-After` of the receiver is honoured (at most a day); a shorter one does not
//! use up the schedule faster.

use std::time::Duration;

/// Delays after the 1st, 2nd, … failed attempt; after the last, the endpoint is disabled.
pub const SCHEDULE: [Duration; 9] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(14 * 3600),
    Duration::from_secs(20 * 3600),
    Duration::from_secs(24 * 3600),
];

/// The longest `Retry-After` honoured.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(24 * 3600);

/// What to do after the `failures`-th failed attempt of an event (1-based): wait this long,
/// or `None`: the schedule is spent. `scale` shortens the schedule (tests, the demo);
/// `jitter` is a number in `[-1, 1]`.
pub fn next_delay(
    failures: u32,
    retry_after: Option<Duration>,
    scale: f64,
    jitter: f64,
) -> Option<Duration> {
    let base = *SCHEDULE.get(usize::try_from(failures).ok()?.checked_sub(1)?)?;
    let jittered = base.mul_f64((1.0 + 0.1 * jitter.clamp(-1.0, 1.0)) * scale.max(0.0));
    Some(match retry_after {
        Some(after) => jittered.max(after.min(RETRY_AFTER_MAX)),
        None => jittered,
    })
}

/// `Retry-After` as seconds (the HTTP-date form is rare from webhook receivers and ignored).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_runs_about_three_days_then_stops() {
        let total: Duration = (1..=9)
            .map(|n| next_delay(n, None, 1.0, 0.0).unwrap())
            .sum();
        assert!(
            total > Duration::from_secs(3 * 86_400 - 6 * 3600),
            "{total:?}"
        );
        assert_eq!(next_delay(10, None, 1.0, 0.0), None);
        assert_eq!(next_delay(0, None, 1.0, 0.0), None);
        assert_eq!(next_delay(1, None, 1.0, 0.0), Some(Duration::from_secs(5)));
        assert_eq!(
            next_delay(1, None, 1.0, 1.0),
            Some(Duration::from_millis(5_500))
        );
        assert_eq!(
            next_delay(2, None, 0.001, 0.0),
            Some(Duration::from_millis(300))
        );
    }

    #[test]
    fn retry_after_is_honoured_up_to_a_day() {
        let after = Some(Duration::from_secs(120));
        assert_eq!(next_delay(1, after, 1.0, 0.0), after);
        assert_eq!(
            next_delay(1, Some(Duration::from_secs(9 * 86_400)), 1.0, 0.0),
            Some(RETRY_AFTER_MAX)
        );
        // A shorter one keeps the schedule's delay.
        assert_eq!(
            next_delay(3, Some(Duration::from_secs(1)), 1.0, 0.0),
            Some(Duration::from_secs(30 * 60))
        );
        assert_eq!(parse_retry_after(" 30 "), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
