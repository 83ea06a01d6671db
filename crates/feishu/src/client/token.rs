//! The tenant access token cache: lazy, single-flight refresh, targeted eviction.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::error::FeishuError;

/// A token as fetched, with the lifetime Feishu reported.
pub(crate) struct FetchedToken {
    pub value: Arc<str>,
    pub expire: Duration,
}

struct CachedToken {
    value: Arc<str>,
    /// Fetch time + expire − safety margin; the token is not handed out from then on.
    refresh_at: Instant,
}

#[derive(Default)]
struct State {
    current: Option<CachedToken>,
    /// Counts finished fetches, so callers that queued behind a fetch can tell that it
    /// happened while they waited.
    generation: u64,
    /// The error of the latest fetch, if it failed: shared with everyone who waited for
    /// it, so a bad secret costs one token request, not one per waiting caller.
    last_failure: Option<FeishuError>,
}

pub(crate) struct TokenCache {
    margin: Duration,
    state: Mutex<State>,
    /// Held while a fetch is in flight.
    refresh: tokio::sync::Mutex<()>,
}

impl TokenCache {
    pub fn new(margin: Duration) -> Self {
        Self {
            margin,
            state: Mutex::new(State::default()),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave `State` half-written; keep using it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn fresh(state: &State) -> Option<Arc<str>> {
        state
            .current
            .as_ref()
            .filter(|t| Instant::now() < t.refresh_at)
            .map(|t| t.value.clone())
    }

    /// The cached token, or the result of one fetch shared by all concurrent callers.
    pub async fn get<F, Fut>(&self, fetch: F) -> Result<Arc<str>, FeishuError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<FetchedToken, FeishuError>>,
    {
        let seen_generation = {
            let state = self.state();
            if let Some(token) = Self::fresh(&state) {
                return Ok(token);
            }
            state.generation
        };
        let _in_flight = self.refresh.lock().await;
        {
            let state = self.state();
            if let Some(token) = Self::fresh(&state) {
                return Ok(token);
            }
            if state.generation != seen_generation {
                // A fetch finished while we waited: take its outcome, even a token that
                // is already past its refresh time (tiny `expire`), instead of fetching again.
                if let Some(err) = &state.last_failure {
                    return Err(err.clone());
                }
                if let Some(token) = &state.current {
                    return Ok(token.value.clone());
                }
            }
        }
        self.fetch_and_store(fetch).await
    }

    /// Fetches regardless of the cache (the caller holds no lock) and stores the result.
    pub async fn refresh<F, Fut>(&self, fetch: F) -> Result<Arc<str>, FeishuError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<FetchedToken, FeishuError>>,
    {
        let _in_flight = self.refresh.lock().await;
        self.fetch_and_store(fetch).await
    }

    async fn fetch_and_store<F, Fut>(&self, fetch: F) -> Result<Arc<str>, FeishuError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<FetchedToken, FeishuError>>,
    {
        let started = Instant::now();
        let result = fetch().await;
        let mut state = self.state();
        state.generation = state.generation.wrapping_add(1);
        match result {
            Ok(token) => {
                let lifetime = token.expire.saturating_sub(self.margin);
                state.current = Some(CachedToken {
                    value: token.value.clone(),
                    refresh_at: started + lifetime,
                });
                state.last_failure = None;
                Ok(token.value)
            }
            Err(err) => {
                state.last_failure = Some(err.clone());
                Err(err)
            }
        }
    }

    /// Evicts the cached token only if it is `failed`: when many requests fail with the
    /// same stale token, the first eviction triggers one refresh and later ones leave the
    /// new token alone.
    pub fn invalidate_if(&self, failed: &str) {
        let mut state = self.state();
        if state.current.as_ref().is_some_and(|t| &*t.value == failed) {
            state.current = None;
        }
    }

    pub fn invalidate(&self) {
        self.state().current = None;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn token(value: &str, expire_secs: u64) -> FetchedToken {
        FetchedToken {
            value: value.into(),
            expire: Duration::from_secs(expire_secs),
        }
    }

    #[tokio::test]
    async fn cache_honours_the_margin_and_never_goes_negative() {
        let cache = TokenCache::new(Duration::from_secs(300));
        let t = cache
            .get(|| async { Ok(token("t-1", 7200)) })
            .await
            .unwrap();
        assert_eq!(&*t, "t-1");
        // Still cached: the second fetch must not run.
        let t = cache
            .get(|| async { Ok(token("t-2", 7200)) })
            .await
            .unwrap();
        assert_eq!(&*t, "t-1");

        // expire < margin: usable once, then refetched.
        let cache = TokenCache::new(Duration::from_secs(300));
        let t = cache.get(|| async { Ok(token("t-a", 10)) }).await.unwrap();
        assert_eq!(&*t, "t-a");
        let t = cache.get(|| async { Ok(token("t-b", 10)) }).await.unwrap();
        assert_eq!(&*t, "t-b");
    }

    #[tokio::test]
    async fn eviction_is_targeted() {
        let cache = TokenCache::new(Duration::ZERO);
        cache
            .get(|| async { Ok(token("t-1", 7200)) })
            .await
            .unwrap();
        cache.invalidate_if("t-old");
        let t = cache
            .get(|| async { Ok(token("t-2", 7200)) })
            .await
            .unwrap();
        assert_eq!(&*t, "t-1");
        cache.invalidate_if("t-1");
        let t = cache
            .get(|| async { Ok(token("t-2", 7200)) })
            .await
            .unwrap();
        assert_eq!(&*t, "t-2");
    }

    #[tokio::test]
    async fn waiters_share_one_failed_fetch() {
        let cache = Arc::new(TokenCache::new(Duration::ZERO));
        let fetches = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (cache, fetches) = (cache.clone(), fetches.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get(|| async move {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Err::<FetchedToken, _>(FeishuError::Config("no".into()))
                    })
                    .await
            }));
        }
        for task in tasks {
            assert!(task.await.unwrap().is_err());
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }
}
