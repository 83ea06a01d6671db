//! Failed binds, counted per source address and per bind DN: after too many in a window, binds
//! from that address or to that DN are refused until the lockout ends, whatever their password
//! (docs/ldap.md, "Binds"). A guessing client learns nothing from the answers while locked out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The policy.
#[derive(Debug, Clone, Copy)]
pub struct BindLimits {
    /// Failures within `window` that lock a source or a DN out.
    pub max_failures: u32,
    pub window: Duration,
    pub lockout: Duration,
}

impl Default for BindLimits {
    fn default() -> Self {
        Self {
            max_failures: 10,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Tally {
    failures: u32,
    since: Instant,
    locked_until: Option<Instant>,
}

/// Entries kept before the expired ones are swept out (a scan of many addresses must not grow
/// memory without end).
const SWEEP_AT: usize = 10_000;

#[derive(Debug, Hash, PartialEq, Eq, Clone)]
enum Key {
    Source(IpAddr),
    Dn(String),
}

#[derive(Debug, Default)]
pub struct BindLimiter {
    limits: BindLimits,
    tallies: Mutex<HashMap<Key, Tally>>,
}

impl BindLimiter {
    pub fn new(limits: BindLimits) -> Self {
        Self {
            limits,
            tallies: Mutex::new(HashMap::new()),
        }
    }

    /// How long a bind from `source` to `dn` (normalised) must still wait, if locked out.
    pub fn locked(&self, source: IpAddr, dn: &str, now: Instant) -> Option<Duration> {
        let tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        [Key::Source(source), Key::Dn(dn.to_owned())]
            .iter()
            .filter_map(|k| tallies.get(k)?.locked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max()
    }

    /// Counts a failed bind.
    pub fn failed(&self, source: IpAddr, dn: &str, now: Instant) {
        let mut tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        if tallies.len() >= SWEEP_AT {
            let window = self.limits.window;
            tallies.retain(|_, t| {
                t.locked_until.is_some_and(|u| u > now) || now.duration_since(t.since) < window
            });
        }
        for key in [Key::Source(source), Key::Dn(dn.to_owned())] {
            let t = tallies.entry(key).or_insert(Tally {
                failures: 0,
                since: now,
                locked_until: None,
            });
            if now.duration_since(t.since) >= self.limits.window {
                *t = Tally {
                    failures: 0,
                    since: now,
                    locked_until: None,
                };
            }
            t.failures += 1;
            if t.failures >= self.limits.max_failures {
                t.locked_until = Some(now + self.limits.lockout);
                t.failures = 0;
                t.since = now;
            }
        }
    }

    /// A successful bind clears its DN's failures (not its source's: one client may guess
    /// many DNs).
    pub fn succeeded(&self, dn: &str) {
        let mut tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        tallies.remove(&Key::Dn(dn.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_many_failures_lock_the_source_and_the_dn_out_for_a_while() {
        let limits = BindLimits {
            max_failures: 3,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(300),
        };
        let l = BindLimiter::new(limits);
        let t0 = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        l.failed(a, "cn=x", t0);
        l.failed(a, "cn=y", t0);
        assert_eq!(l.locked(a, "cn=z", t0), None);
        l.failed(a, "cn=x", t0);
        // The source is locked out for every DN; another source is not, except for cn=x... which
        // has only two failures.
        assert!(l.locked(a, "cn=z", t0).is_some());
        assert_eq!(l.locked(b, "cn=x", t0), None);
        l.failed(b, "cn=x", t0);
        assert!(l.locked(b, "cn=x", t0).is_some(), "the DN is locked out");
        assert_eq!(l.locked(b, "cn=y", t0), None);
        // The lockout ends.
        let later = t0 + Duration::from_secs(301);
        assert_eq!(l.locked(a, "cn=z", later), None);
        // Failures outside the window do not add up.
        l.failed(b, "cn=w", later);
        l.failed(b, "cn=w", later + Duration::from_secs(61));
        assert_eq!(l.locked(b, "cn=w", later + Duration::from_secs(61)), None);
    }
}
