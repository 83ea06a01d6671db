//! The emulator's clock: real time plus an offset that tests can advance, so token
//! lifetimes (hours) and rate-limit windows can be crossed without waiting.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Monotonic wall clock in Unix milliseconds; only ever moves forward.
#[derive(Debug)]
pub struct Clock {
    start: Instant,
    start_unix_ms: i64,
    offset_ms: AtomicI64,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    pub fn new() -> Self {
        let start_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Self {
            start: Instant::now(),
            start_unix_ms,
            offset_ms: AtomicI64::new(0),
        }
    }

    /// Now, in Unix milliseconds (real elapsed time plus every [`Clock::advance`]).
    pub fn now_ms(&self) -> i64 {
        let elapsed = i64::try_from(self.start.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.start_unix_ms
            .saturating_add(elapsed)
            .saturating_add(self.offset_ms.load(Ordering::SeqCst))
    }

    /// Now, in Unix seconds.
    pub fn now_secs(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }

    /// Jumps forward (tokens age, rate-limit windows roll over).
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// The total of all advances so far.
    pub fn offset(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.offset_ms.load(Ordering::SeqCst)).unwrap_or(0))
    }
}

/// `YYYYMMDDhhmmss` (UTC) of a Unix time, as Feishu log ids start with it.
pub fn compact_utc(unix_secs: i64) -> String {
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}{:02}{:02}{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_now_forward() {
        let clock = Clock::new();
        let before = clock.now_ms();
        clock.advance(Duration::from_secs(5400));
        assert!(clock.now_ms() - before >= 5_400_000);
        assert_eq!(clock.offset(), Duration::from_secs(5400));
    }

    #[test]
    fn compact_utc_formats_known_instants() {
        assert_eq!(compact_utc(0), "19700101000000");
        assert_eq!(compact_utc(1_700_000_000), "20231114221320");
        assert_eq!(compact_utc(951_782_400), "20000229000000");
    }
}
