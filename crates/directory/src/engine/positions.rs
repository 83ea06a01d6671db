//! Positions of a list's items by a string each item holds, without a copy of the strings.
//!
//! A job at 100,000 users looks its stored users and refs up by id; a `HashMap<String,
//! usize>` beside the list held every id a second time (about 18 MB for users and refs,
//! docs/memory.md). This table holds 4 bytes a slot and hashes and compares the list's own
//! strings.

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

#[derive(Default)]
pub(super) struct Positions {
    table: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

impl Positions {
    /// The positions of `items` whose key `key_of` gives (items without one are left out).
    pub(super) fn build<T>(items: &[T], key_of: impl Fn(&T) -> Option<&str>) -> Self {
        let mut positions = Self::default();
        positions.table.reserve(items.len(), |_| 0);
        for (i, item) in items.iter().enumerate() {
            if let Some(key) = key_of(item) {
                let hash = positions.hasher.hash_one(key);
                let hasher = &positions.hasher;
                positions.table.insert_unique(hash, position(i), |&j| {
                    // Rehashing on growth: the reserve above makes this unreachable while
                    // building, and the key of a position in the table is always there.
                    hasher.hash_one(key_of(&items[j as usize]).unwrap_or_default())
                });
            }
        }
        positions
    }

    /// The position of the item with this key for which `is` holds.
    pub(super) fn find<T>(&self, items: &[T], key: &str, is: impl Fn(&T) -> bool) -> Option<usize> {
        let hash = self.hasher.hash_one(key);
        self.table
            .find(hash, |&i| is(&items[i as usize]))
            .map(|&i| i as usize)
    }

    /// Records the item at `i` under its key; `key_of` gives the key of every item recorded
    /// (for rehashing).
    pub(super) fn insert<T>(&mut self, items: &[T], i: usize, key_of: impl Fn(&T) -> &str) {
        let hash = self.hasher.hash_one(key_of(&items[i]));
        let hasher = &self.hasher;
        self.table.insert_unique(hash, position(i), |&j| {
            hasher.hash_one(key_of(&items[j as usize]))
        });
    }
}

fn position(i: usize) -> u32 {
    // A job's lists are far below 4 billion items; a larger one is a bug worth stopping at.
    u32::try_from(i).expect("fewer than 2^32 stored objects")
}

/// Replaces the item with the same key as `item` or appends it; returns its position.
/// `same` tells apart items that share a key (refs of different kinds with one Feishu id).
pub(super) fn upsert<T>(
    list: &mut Vec<T>,
    at: &mut Positions,
    item: T,
    key_of: impl Fn(&T) -> &str,
    same: impl Fn(&T, &T) -> bool,
) -> usize {
    match at.find(list, key_of(&item), |x| same(x, &item)) {
        Some(i) => {
            list[i] = item;
            i
        }
        None => {
            list.push(item);
            let i = list.len() - 1;
            at.insert(list, i, key_of);
            i
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(x: &(u8, String)) -> &str {
        &x.1
    }

    #[test]
    fn finds_inserts_and_replaces_by_the_items_own_keys() {
        let same = |a: &(u8, String), b: &(u8, String)| a.1 == b.1;
        let mut list: Vec<(u8, String)> = (0..1_000).map(|n| (0, format!("id-{n}"))).collect();
        let mut at = Positions::build(&list, |x| (x.1 != "id-7").then_some(x.1.as_str()));
        assert_eq!(at.find(&list, "id-500", |x| x.1 == "id-500"), Some(500));
        assert_eq!(at.find(&list, "id-7", |x| x.1 == "id-7"), None, "left out");
        // Past the reserved room: the table grows, rehashing by the list's keys.
        for n in 1_000..5_000 {
            let i = upsert(&mut list, &mut at, (1, format!("id-{n}")), key_of, same);
            assert_eq!(i, n);
        }
        let i = upsert(&mut list, &mut at, (9, "id-3".into()), key_of, same);
        assert_eq!((i, list[3].0, list.len()), (3, 9, 5_000));
        for n in (0..5_000).filter(|n| *n != 7) {
            let key = format!("id-{n}");
            assert_eq!(at.find(&list, &key, |x| x.1 == key), Some(n));
        }
        // Same key, told apart by `same`.
        let i = upsert(&mut list, &mut at, (2, "id-9".into()), key_of, |a, b| {
            a == b
        });
        assert_eq!(i, 5_000);
        assert_eq!(
            at.find(&list, "id-9", |x| x.0 == 2 && x.1 == "id-9"),
            Some(5_000)
        );
        assert_eq!(
            at.find(&list, "id-9", |x| x.0 == 0 && x.1 == "id-9"),
            Some(9)
        );
    }
}
