//! Limits on guessing the admin token at the console login, per client address: each wrong
//! token is answered after a delay that doubles with every failure, and `max_failures` wrong
//! tokens within `window` lock the address out for `lockout` — during which even the right
//! token is refused (429 with `Retry-After`). A successful login forgets the address's
//! failures.
//!
//! Memory is bounded: at most `max_tracked` addresses are remembered; stale entries are
//! dropped as new failures arrive, and when the table is full the address that failed least
//! recently is forgotten. IPv6 clients are counted per /64 (one host usually owns a whole
//! /64), IPv4-mapped IPv6 addresses as IPv4.
//!
//! The address is the TCP peer: orgsync has no trusted-proxy setting, so behind a reverse
//! proxy every client shares the proxy's address (see the README, "Console login").
//!
//! Time is passed in (`now`), so the rules are tested with a fake clock.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

/// The limits; [`LoginLimits::default`] is 5 failures in 15 minutes → 15 minutes locked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    /// Wrong tokens from one address within `window` that lock it out (at least 1).
    pub max_failures: u32,
    /// How long a series of failures counts, from its first failure.
    pub window: Duration,
    /// How long a locked-out address is refused, the right token included.
    pub lockout: Duration,
    /// The wait before answering the first wrong token; it doubles with each further one.
    pub first_delay: Duration,
    /// The longest wait.
    pub max_delay: Duration,
    /// Addresses remembered at most.
    pub max_tracked: usize,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            max_failures: 5,
            window: Duration::from_secs(15 * 60),
            lockout: Duration::from_secs(15 * 60),
            first_delay: Duration::from_millis(300),
            max_delay: Duration::from_secs(5),
            max_tracked: 10_000,
        }
    }
}

/// An address that may not log in before `retry_after` has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockout {
    pub retry_after: Duration,
}

/// What a wrong token led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// Failures of this address in the current series, this one included.
    pub failures: u32,
    /// How long to wait before answering.
    pub delay: Duration,
    /// Set when this failure locked the address out.
    pub lockout: Option<Lockout>,
}

/// The key failures are counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Client(IpAddr);

impl Client {
    fn of(addr: IpAddr) -> Self {
        match addr.to_canonical() {
            IpAddr::V6(v6) => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                Self(IpAddr::V6(Ipv6Addr::from(segments)))
            }
            v4 => Self(v4),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    first_failure: Instant,
    last_failure: Instant,
    locked_until: Option<Instant>,
}

#[derive(Debug, Default)]
struct Table {
    entries: HashMap<Client, Entry>,
    /// `(last failure, client)`, oldest first: what to drop when stale or full.
    by_age: BTreeSet<(Instant, Client)>,
}

impl Table {
    fn remove(&mut self, client: Client) {
        if let Some(old) = self.entries.remove(&client) {
            self.by_age.remove(&(old.last_failure, client));
        }
    }

    fn insert(&mut self, client: Client, entry: Entry) {
        self.remove(client);
        self.by_age.insert((entry.last_failure, client));
        self.entries.insert(client, entry);
    }
}

/// The per-address login limiter (one per server; cheap to share behind an `Arc`).
#[derive(Debug)]
pub struct LoginLimiter {
    limits: LoginLimits,
    table: Mutex<Table>,
}

impl LoginLimiter {
    pub fn new(limits: LoginLimits) -> Self {
        Self {
            limits: LoginLimits {
                max_failures: limits.max_failures.max(1),
                max_tracked: limits.max_tracked.max(1),
                ..limits
            },
            table: Mutex::new(Table::default()),
        }
    }

    pub fn limits(&self) -> &LoginLimits {
        &self.limits
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        // The table holds no invariant a panicking holder could break halfway.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Before looking at a token: refused while the address is locked out.
    pub fn check(&self, addr: IpAddr, now: Instant) -> Result<(), Lockout> {
        let table = self.table();
        match table
            .entries
            .get(&Client::of(addr))
            .and_then(|e| e.locked_until)
        {
            Some(until) if now < until => Err(Lockout {
                retry_after: until - now,
            }),
            _ => Ok(()),
        }
    }

    /// After a wrong token.
    pub fn failed(&self, addr: IpAddr, now: Instant) -> Failure {
        let limits = &self.limits;
        let client = Client::of(addr);
        let mut table = self.table();
        self.drop_stale(&mut table, now);
        let current = table.entries.get(&client).copied();
        // A lockout that raced this request (checked before another one locked it).
        if let Some(until) = current.and_then(|e| e.locked_until)
            && now < until
        {
            return Failure {
                failures: current.map_or(0, |e| e.failures),
                delay: Duration::ZERO,
                lockout: Some(Lockout {
                    retry_after: until - now,
                }),
            };
        }
        let mut entry = match current {
            Some(e) if e.locked_until.is_none() && now < e.first_failure + limits.window => e,
            // A new series: none yet, the window passed, or a lockout ended.
            _ => Entry {
                failures: 0,
                first_failure: now,
                last_failure: now,
                locked_until: None,
            },
        };
        if current.is_none() {
            while table.entries.len() >= limits.max_tracked {
                let Some(&(_, oldest)) = table.by_age.first() else {
                    break;
                };
                table.remove(oldest);
            }
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last_failure = now;
        let failure = if entry.failures >= limits.max_failures {
            entry.locked_until = Some(now + limits.lockout);
            Failure {
                failures: entry.failures,
                delay: Duration::ZERO,
                lockout: Some(Lockout {
                    retry_after: limits.lockout,
                }),
            }
        } else {
            let doublings = (entry.failures - 1).min(20);
            Failure {
                failures: entry.failures,
                delay: limits
                    .first_delay
                    .saturating_mul(1 << doublings)
                    .min(limits.max_delay),
                lockout: None,
            }
        };
        table.insert(client, entry);
        failure
    }

    /// After the right token: the address starts afresh.
    pub fn succeeded(&self, addr: IpAddr) {
        self.table().remove(Client::of(addr));
    }

    /// Addresses remembered now.
    pub fn tracked(&self) -> usize {
        self.table().entries.len()
    }

    /// Forgets entries whose series and lockout are both over. An entry's lockout starts at
    /// its last failure, and its series at or before it, so the oldest last failures go first.
    fn drop_stale(&self, table: &mut Table, now: Instant) {
        let keep_for = self.limits.window.max(self.limits.lockout);
        while let Some(&(last, client)) = table.by_age.first() {
            if last + keep_for > now {
                break;
            }
            table.remove(client);
        }
    }
}

impl Default for LoginLimiter {
    fn default() -> Self {
        Self::new(LoginLimits::default())
    }
}

/// The client's address: the TCP peer (see the module notes on proxies). Without connection
/// info (a router served without it) every client shares one unspecified address, so the
/// limits still hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;
    const SECS: fn(u64) -> Duration = Duration::from_secs;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    /// A fake clock: a start instant plus however far the test moved it.
    struct Clock(Instant, Duration);

    impl Clock {
        fn new() -> Self {
            Self(Instant::now(), Duration::ZERO)
        }
        fn now(&self) -> Instant {
            self.0 + self.1
        }
        fn advance(&mut self, by: Duration) {
            self.1 += by;
        }
    }

    #[test]
    fn delays_double_then_the_address_is_locked_out_even_for_the_right_token() {
        let limiter = LoginLimiter::default();
        let mut clock = Clock::new();
        let mut delays = Vec::new();
        for _ in 0..4 {
            assert_eq!(limiter.check(ip(1), clock.now()), Ok(()));
            let f = limiter.failed(ip(1), clock.now());
            assert_eq!(f.lockout, None);
            delays.push(f.delay);
            clock.advance(SECS(10));
        }
        assert_eq!(delays, [MS(300), MS(600), MS(1200), MS(2400)]);
        let fifth = limiter.failed(ip(1), clock.now());
        assert_eq!(fifth.failures, 5);
        assert_eq!(
            fifth.lockout,
            Some(Lockout {
                retry_after: SECS(900)
            })
        );
        // Locked: refused before any token is looked at, with the time left.
        clock.advance(SECS(60));
        assert_eq!(
            limiter.check(ip(1), clock.now()),
            Err(Lockout {
                retry_after: SECS(840)
            })
        );
        // Other addresses are not affected.
        assert_eq!(limiter.check(ip(2), clock.now()), Ok(()));
        // The lockout ends; a new series starts with the short delay.
        clock.advance(SECS(840));
        assert_eq!(limiter.check(ip(1), clock.now()), Ok(()));
        let again = limiter.failed(ip(1), clock.now());
        assert_eq!((again.failures, again.delay), (1, MS(300)));
    }

    #[test]
    fn failures_outside_the_window_start_a_new_series() {
        let limiter = LoginLimiter::default();
        let mut clock = Clock::new();
        for _ in 0..4 {
            limiter.failed(ip(1), clock.now());
        }
        clock.advance(SECS(15 * 60));
        let f = limiter.failed(ip(1), clock.now());
        assert_eq!((f.failures, f.delay, f.lockout), (1, MS(300), None));
    }

    #[test]
    fn a_successful_login_clears_the_failures() {
        let limiter = LoginLimiter::default();
        let clock = Clock::new();
        for _ in 0..4 {
            limiter.failed(ip(1), clock.now());
        }
        limiter.succeeded(ip(1));
        assert_eq!(limiter.tracked(), 0);
        let f = limiter.failed(ip(1), clock.now());
        assert_eq!((f.failures, f.lockout), (1, None));
    }

    #[test]
    fn the_delay_is_capped() {
        let limiter = LoginLimiter::new(LoginLimits {
            max_failures: 100,
            ..LoginLimits::default()
        });
        let clock = Clock::new();
        let last = (0..99)
            .map(|_| limiter.failed(ip(1), clock.now()))
            .last()
            .unwrap();
        assert_eq!((last.failures, last.delay), (99, SECS(5)));
    }

    #[test]
    fn memory_is_bounded_and_stale_entries_go() {
        let limiter = LoginLimiter::new(LoginLimits {
            max_tracked: 100,
            ..LoginLimits::default()
        });
        let mut clock = Clock::new();
        // Many addresses: never more than the cap, the least recent forgotten first.
        for i in 0..1_000u32 {
            let addr = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            limiter.failed(addr, clock.now());
            clock.advance(MS(1));
            assert!(limiter.tracked() <= 100);
        }
        assert_eq!(limiter.tracked(), 100);
        let newest = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + 999));
        assert_eq!(limiter.failed(newest, clock.now()).failures, 2);
        let oldest = IpAddr::V4(Ipv4Addr::from(0x0a00_0000));
        assert_eq!(limiter.failed(oldest, clock.now()).failures, 1);
        // Once both the window and the lockout are over, entries are dropped.
        clock.advance(SECS(15 * 60 + 1));
        limiter.failed(ip(9), clock.now());
        assert_eq!(limiter.tracked(), 1);
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let limiter = LoginLimiter::default();
        let clock = Clock::new();
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        limiter.failed(a, clock.now());
        assert_eq!(limiter.failed(b, clock.now()).failures, 2);
        assert_eq!(limiter.failed(other, clock.now()).failures, 1);
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        limiter.failed(mapped, clock.now());
        assert_eq!(limiter.failed(ip(1), clock.now()).failures, 2);
    }
}
