//! The store's objects of one connection, indexed by Feishu id, and the resolver of the
//! references a plan's objects make.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use crate::ids::{ConnectionId, DepartmentId, GroupId, UserId};
use crate::merge::Resolve;
use crate::model::{Department, ExternalRef, Group, ObjectKind, User};
use crate::store::ConnectionState;

/// An FxHash-style hasher for the planner's maps: a plan hashes several hundred thousand short
/// ids, and SipHash's flooding resistance buys nothing for ids Feishu and orgsync assigned.
#[derive(Default, Clone, Copy)]
pub(super) struct IdHasher(u64);

impl IdHasher {
    const K: u64 = 0x517c_c1b7_2722_0a95;

    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::K);
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        // The multiply leaves the low bits depending on the low bits of the input only (ids
        // share their prefixes): fold the high bits down, as hashbrown indexes by low bits.
        let h = self.0 ^ (self.0 >> 33);
        h.wrapping_mul(0xff51_afd7_ed55_8ccd) ^ (h >> 29)
    }
}

pub(super) type Map<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;
pub(super) type Set<K> = HashSet<K, BuildHasherDefault<IdHasher>>;

// ---- the store, indexed ------------------------------------------------------------------

pub(super) trait Stored {
    fn id_str(&self) -> &str;
    fn is_live(&self) -> bool;
}

impl Stored for User {
    fn id_str(&self) -> &str {
        &self.id.0
    }
    fn is_live(&self) -> bool {
        self.deleted_at.is_none()
    }
}

impl Stored for Department {
    fn id_str(&self) -> &str {
        &self.id.0
    }
    fn is_live(&self) -> bool {
        self.deleted_at.is_none()
    }
}

impl Stored for Group {
    fn id_str(&self) -> &str {
        &self.id.0
    }
    fn is_live(&self) -> bool {
        self.deleted_at.is_none()
    }
}

/// One mapped object of the connection: its sync relation and the object (if the store has
/// it; a relation without its object is treated as absent).
pub(super) struct Known<'a, T> {
    pub(super) sync_ref: &'a ExternalRef,
    pub(super) object: Option<&'a T>,
}

impl<T> Clone for Known<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Known<'_, T> {}

impl<'a, T: Stored> Known<'a, T> {
    pub(super) fn live(&self) -> Option<&'a T> {
        self.object.filter(|o| o.is_live())
    }
}

pub(super) struct Table<'a, T> {
    pub(super) by_external: Map<&'a str, Known<'a, T>>,
    /// External ids in the store's order (deterministic iteration).
    pub(super) order: Vec<&'a str>,
    pub(super) by_id: Map<&'a str, &'a T>,
    /// orgsync id → Feishu id, for naming objects in reasons.
    pub(super) ext_by_id: Map<&'a str, &'a str>,
}

impl<'a, T: Stored> Table<'a, T> {
    pub(super) fn build(objects: &'a [T], refs: &[&'a ExternalRef]) -> Self {
        let by_id: Map<&str, &T> = objects.iter().map(|o| (o.id_str(), o)).collect();
        let mut by_external = Map::with_capacity_and_hasher(refs.len(), Default::default());
        let mut order = Vec::with_capacity(refs.len());
        let mut ext_by_id = Map::with_capacity_and_hasher(refs.len(), Default::default());
        for r in refs {
            ext_by_id.insert(r.object_id.as_str(), r.external_id.as_str());
            let known = Known {
                sync_ref: r,
                object: by_id.get(r.object_id.as_str()).copied(),
            };
            if by_external.insert(r.external_id.as_str(), known).is_none() {
                order.push(r.external_id.as_str());
            }
        }
        Self {
            by_external,
            order,
            by_id,
            ext_by_id,
        }
    }

    pub(super) fn get(&self, external_id: &str) -> Option<Known<'a, T>> {
        self.by_external.get(external_id).copied()
    }

    pub(super) fn live_count(&self) -> usize {
        self.by_external
            .values()
            .filter(|k| k.live().is_some())
            .count()
    }

    /// Live objects of the connection, in the store's order.
    pub(super) fn live(&self) -> impl Iterator<Item = (&'a str, Known<'a, T>)> + '_ {
        self.order.iter().filter_map(|ext| {
            let known = self.by_external.get(ext)?;
            known.live().map(|_| (*ext, *known))
        })
    }

    pub(super) fn is_live_id(&self, id: &str) -> bool {
        self.by_id.get(id).is_some_and(|o| o.is_live())
    }
}

pub(super) struct Index<'a> {
    pub(super) users: Table<'a, User>,
    pub(super) departments: Table<'a, Department>,
    pub(super) groups: Table<'a, Group>,
}

impl<'a> Index<'a> {
    pub(super) fn build(state: &'a ConnectionState, connection_id: &ConnectionId) -> Self {
        let refs_of = |kind| -> Vec<&ExternalRef> {
            state
                .refs
                .iter()
                .filter(|r| r.kind == kind && &r.connection_id == connection_id)
                .collect()
        };
        Self {
            users: Table::build(&state.users, &refs_of(ObjectKind::User)),
            departments: Table::build(&state.departments, &refs_of(ObjectKind::Department)),
            groups: Table::build(&state.groups, &refs_of(ObjectKind::Group)),
        }
    }
}

// ---- the resolver ------------------------------------------------------------------------

/// Feishu id → orgsync id for everything that exists once the plan is applied: live stored
/// objects the plan does not delete, and the snapshot's objects the plan creates, updates or
/// restores.
#[derive(Default)]
pub(super) struct Ids<'a> {
    // Stored objects are borrowed, not copied: a plan resolves every stored object.
    pub(super) users: Map<&'a str, Cow<'a, UserId>>,
    pub(super) departments: Map<&'a str, Cow<'a, DepartmentId>>,
    pub(super) groups: Map<&'a str, Cow<'a, GroupId>>,
    /// Feishu ids of the objects this plan creates, for log reasons (stored ones are named
    /// through the index).
    pub(super) new_users: Map<String, &'a str>,
    pub(super) new_departments: Map<String, &'a str>,
}

impl Resolve for Ids<'_> {
    fn user(&self, open_id: &str) -> Option<UserId> {
        self.users.get(open_id).map(|id| id.clone().into_owned())
    }
    fn department(&self, od: &str) -> Option<DepartmentId> {
        self.departments.get(od).map(|id| id.clone().into_owned())
    }
    fn group(&self, group_id: &str) -> Option<GroupId> {
        self.groups.get(group_id).map(|id| id.clone().into_owned())
    }
    fn user_is(&self, open_id: &str, id: &UserId) -> bool {
        self.users.get(open_id).is_some_and(|u| u.as_ref() == id)
    }
    fn department_is(&self, od: &str, id: &DepartmentId) -> bool {
        self.departments.get(od).is_some_and(|d| d.as_ref() == id)
    }
}
