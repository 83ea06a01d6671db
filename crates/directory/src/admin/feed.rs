//! The change feed as the API serves it (docs/change-feed.md): pages by an opaque cursor,
//! a type filter, long-polling, retention, and the pool's feed settings.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Admin, AdminError, AdminResult};
use crate::feed::{FeedEvent, parse_types};
use crate::ids::PoolId;
use crate::store::{FeedHead, FeedSettings};

/// Events per page: default and most.
pub const FEED_PAGE_DEFAULT: u64 = 100;
pub const FEED_PAGE_MAX: u64 = 500;
/// The longest a read may wait for an event.
pub const FEED_WAIT_MAX: u64 = 30;
/// The most events one filtered read looks at: a rare type costs a page per window, not a
/// scan of the whole feed.
const FEED_WINDOW: u64 = 10_000;
/// How often a waiting read looks again for events appended by other instances.
const FEED_POLL: Duration = Duration::from_millis(250);
/// The longest retention an admin may set, in days.
pub const RETENTION_MAX_DAYS: u32 = 3_650;

/// A read of the feed, as the API takes it.
#[derive(Debug, Clone, Default)]
pub struct FeedQuery {
    /// The `next_cursor` of the read before; absent: from the oldest retained event.
    pub after: Option<String>,
    pub limit: Option<u64>,
    /// `user.*,group.member_added`: names and `prefix.*` globs.
    pub types: Option<String>,
    /// Seconds to wait for an event when there is none yet (0–30).
    pub wait: Option<u64>,
}

/// A page of the feed: envelopes in `seq` order, and where to go on from. Unlike the
/// directory lists, a cursor always comes back: a reader at the end keeps it and asks again.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeedPage {
    /// Event envelopes: `{id, seq, type, timestamp, pool_id, source, data}`.
    pub data: Vec<Value>,
    /// Pass as `after` to read on.
    pub next_cursor: String,
    /// More events are there already (read again at once).
    pub has_more: bool,
}

/// The cursor of the point after event `seq`.
pub fn feed_cursor(seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("feed:{seq}"))
}

fn decode_cursor(raw: &str) -> AdminResult<i64> {
    URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("feed:").and_then(|n| n.parse::<i64>().ok()))
        .filter(|n| *n >= 0)
        .ok_or_else(|| {
            AdminError::Invalid(
                "after is not a cursor of the change feed: pass the `next_cursor` of the read \
                 before, an `as_of_cursor` of a list, or leave it out to start at the oldest \
                 event"
                    .into(),
            )
        })
}

fn expired(head: &FeedHead) -> AdminError {
    AdminError::CursorExpired(format!(
        "the cursor is older than this pool's feed retention: events up to number {} were \
         removed. Read the directory again (its lists return an `as_of_cursor`) and follow \
         the feed from there",
        head.pruned_through
    ))
}

impl Admin {
    /// One read of a pool's feed, waiting up to `wait` seconds for an event when none is due.
    pub async fn feed(&self, pool_id: &PoolId, q: &FeedQuery) -> AdminResult<FeedPage> {
        let limit = q.limit.unwrap_or(FEED_PAGE_DEFAULT);
        if !(1..=FEED_PAGE_MAX).contains(&limit) {
            return Err(AdminError::Invalid(format!(
                "limit must be 1 to {FEED_PAGE_MAX}, got {limit}"
            )));
        }
        let wait = q.wait.unwrap_or(0);
        if wait > FEED_WAIT_MAX {
            return Err(AdminError::Invalid(format!(
                "wait must be 0 to {FEED_WAIT_MAX} seconds, got {wait}"
            )));
        }
        let types = parse_types(q.types.as_deref().unwrap_or(""))
            .map_err(|e| AdminError::Invalid(format!("types: {e}")))?;
        let mut after = q
            .after
            .as_deref()
            .filter(|a| !a.is_empty())
            .map(decode_cursor)
            .transpose()?;
        // Subscribed before the first read, so an append between the read and the wait
        // still wakes it.
        let mut appended = self.engine.feed_watch();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
        loop {
            let from = after.unwrap_or(0);
            let read = self
                .store()
                .feed_read(pool_id, from, limit, &types, FEED_WINDOW)
                .await
                .map_err(|e| match e {
                    crate::store::StoreError::NotFound(_) => {
                        AdminError::NotFound(format!("user pool {pool_id}"))
                    }
                    other => other.into(),
                })?;
            let head = read.head;
            match after {
                Some(a) if a < head.pruned_through => return Err(expired(&head)),
                Some(a) if a > head.last_seq => {
                    return Err(AdminError::Invalid(format!(
                        "the cursor points past this pool's newest event (number {}): it \
                         belongs to another pool or to a database restored from a backup; \
                         start again from the directory's `as_of_cursor`",
                        head.last_seq
                    )));
                }
                // No cursor: from the oldest retained event.
                None if head.pruned_through > 0 => {
                    after = Some(head.pruned_through);
                    continue;
                }
                _ => {}
            }
            let has_more = read.through < head.last_seq;
            if !read.events.is_empty() || has_more || wait == 0 {
                return Ok(FeedPage {
                    data: read
                        .events
                        .into_iter()
                        .map(FeedEvent::into_envelope)
                        .collect(),
                    next_cursor: feed_cursor(read.through),
                    has_more,
                });
            }
            after = Some(read.through);
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(FeedPage {
                    data: Vec::new(),
                    next_cursor: feed_cursor(read.through),
                    has_more: false,
                });
            }
            let nap = (deadline - now).min(FEED_POLL);
            let _ = tokio::time::timeout(nap, appended.changed()).await;
        }
    }

    /// The cursor of everything committed now: a list read after this sees every change up
    /// to it (docs/change-feed.md, "snapshot and cursor").
    pub async fn as_of_cursor(&self, pool_id: &PoolId) -> AdminResult<String> {
        let head = self
            .store()
            .feed_head(pool_id)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("user pool {pool_id}")))?;
        Ok(feed_cursor(head.last_seq))
    }

    pub async fn feed_settings(&self, pool_id: &PoolId) -> AdminResult<FeedSettings> {
        self.store()
            .feed_settings(pool_id)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("user pool {pool_id}")))
    }

    pub async fn set_feed_settings(
        &self,
        pool_id: &PoolId,
        settings: FeedSettings,
    ) -> AdminResult<FeedSettings> {
        if !(1..=RETENTION_MAX_DAYS).contains(&settings.retention_days) {
            return Err(AdminError::Invalid(format!(
                "feed retention must be 1 to {RETENTION_MAX_DAYS} days, got {}",
                settings.retention_days
            )));
        }
        self.store().set_feed_settings(pool_id, &settings).await?;
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        for seq in [0, 1, 42, i64::MAX] {
            assert_eq!(decode_cursor(&feed_cursor(seq)).unwrap(), seq);
        }
        for bad in ["", "feed:1", "Zm9vOjE", &URL_SAFE_NO_PAD.encode("feed:-1")] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }
}
