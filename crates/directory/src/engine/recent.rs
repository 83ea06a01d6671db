//! The objects recent batches wrote, as the store wrote them (JSON, at their version): what
//! the next change of each is compared with for the feed, instead of the store reading it
//! again (docs/change-feed.md, "What the feed costs").
//!
//! A hint, never the truth: the store uses an entry only while the stored version is still
//! the entry's. Bounded by a count of objects, the oldest going first (docs/memory.md).

use std::collections::{HashMap, VecDeque};

use crate::ids::PoolId;
use crate::model::ObjectKind;
use crate::store::{ChangeRecord, Write};

type Key = (PoolId, ObjectKind, String);

#[derive(Debug, Default)]
pub(crate) struct RecentWrites {
    by_key: HashMap<Key, ChangeRecord>,
    /// Insertion order, with the version inserted: an entry replaced or taken since is stale.
    order: VecDeque<(Key, i64)>,
}

impl RecentWrites {
    /// At most this many objects (about 2 kB each).
    pub(crate) const CAPACITY: usize = 4_096;

    /// Takes the entries of the objects `writes` change.
    pub(crate) fn take(&mut self, pool: &PoolId, writes: &[Write]) -> Vec<ChangeRecord> {
        if self.by_key.is_empty() {
            return Vec::new();
        }
        writes
            .iter()
            .filter_map(|w| {
                let (kind, id) = w.object()?;
                self.by_key.remove(&(pool.clone(), kind, id.to_owned()))
            })
            .collect()
    }

    /// Keeps what a batch wrote; an object written twice keeps its last state.
    pub(crate) fn keep(&mut self, changes: Vec<ChangeRecord>) {
        for change in changes {
            let key = (
                change.pool_id.clone(),
                change.object_kind,
                change.object_id.clone(),
            );
            self.order.push_back((key.clone(), change.version));
            self.by_key.insert(key, change);
        }
        // Stale order entries count too, so that the queue stays bounded as well.
        while self.by_key.len() > Self::CAPACITY || self.order.len() > 2 * Self::CAPACITY {
            let Some((key, version)) = self.order.pop_front() else {
                break;
            };
            if self.by_key.get(&key).is_some_and(|c| c.version == version) {
                self.by_key.remove(&key);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_key.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::User;
    use crate::store::{ChangeKind, ChangeSource};
    use serde_json::json;

    fn change(pool: &str, id: &str, version: i64) -> ChangeRecord {
        ChangeRecord {
            pool_id: PoolId(pool.into()),
            seq: version,
            kind: ChangeKind::UserUpdated,
            object_kind: ObjectKind::User,
            object_id: id.into(),
            version,
            source: ChangeSource::Admin,
            at: 0,
            object: json!({"id": id, "version": version}),
        }
    }

    fn put(pool: &str, id: &str) -> Write {
        Write::PutUser {
            user: User::bare(pool, id),
            change: ChangeKind::UserUpdated,
            expected_version: None,
        }
    }

    #[test]
    fn an_object_written_twice_is_handed_out_once_at_its_last_version() {
        let mut recent = RecentWrites::default();
        recent.keep(vec![change("p", "u1", 1), change("p", "u1", 2)]);
        let taken = recent.take(&PoolId("p".into()), &[put("p", "u1"), put("p", "u1")]);
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].version, 2);
        assert!(
            recent
                .take(&PoolId("p".into()), &[put("p", "u1")])
                .is_empty()
        );
    }

    #[test]
    fn another_pools_object_of_the_same_id_is_not_handed_out() {
        let mut recent = RecentWrites::default();
        recent.keep(vec![change("a", "u1", 1)]);
        assert!(
            recent
                .take(&PoolId("b".into()), &[put("b", "u1")])
                .is_empty()
        );
        assert_eq!(recent.take(&PoolId("a".into()), &[put("a", "u1")]).len(), 1);
    }

    #[test]
    fn the_oldest_go_first_and_rewrites_do_not_grow_the_queue() {
        let mut recent = RecentWrites::default();
        let n = RecentWrites::CAPACITY + 10;
        recent.keep((0..n).map(|i| change("p", &format!("u{i}"), 1)).collect());
        assert_eq!(recent.len(), RecentWrites::CAPACITY);
        assert!(
            recent
                .take(&PoolId("p".into()), &[put("p", "u0")])
                .is_empty()
        );
        assert_eq!(
            recent
                .take(&PoolId("p".into()), &[put("p", &format!("u{}", n - 1))])
                .len(),
            1
        );
        // One object rewritten many times: one entry, and the queue stays bounded.
        for v in 0..(3 * RecentWrites::CAPACITY as i64) {
            recent.keep(vec![change("p", "hot", v)]);
        }
        assert!(recent.order.len() <= 2 * RecentWrites::CAPACITY);
        let taken = recent.take(&PoolId("p".into()), &[put("p", "hot")]);
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].version, 3 * RecentWrites::CAPACITY as i64 - 1);
    }
}
