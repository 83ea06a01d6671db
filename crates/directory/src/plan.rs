//! The sync planner: a Feishu [`Snapshot`] diffed against what the store holds for one
//! connection ([`ConnectionState`]) gives a [`Plan`] — an ordered list of per-object actions in
//! the fixed vocabulary, each with the [`Write`]s that carry it out. Pure: time and ids are
//! passed in.
//!
//! Rules (design.md §2, protocol §3.1):
//!
//! - **Order.** Applying the steps in order, in batches of any size, never references an
//!   object that does not exist yet: departments (parents before children) → users (managers
//!   before their reports; a reporting cycle gets its last manager link set afterwards) →
//!   department leaders that name users created by this plan → groups → deletions.
//! - **One step per action.** An object with several kinds of change gets several steps, each
//!   carrying one `Put` of the object's state after that change, with the matching
//!   [`ChangeKind`] and an `expected_version` chained from the stored version. Users:
//!   `UpdateUserIdentifier` → `UpdateUser` (profile, manager, re-enabling, restore) →
//!   `ChangeUserDepartment` → `DisableUser` (a resignation's detachment is part of
//!   `DisableUser`). Departments: `UpdateDepartment` (fields, custom id, restore) →
//!   `MoveDepartment` → `UpdateDepartmentLeader`. Groups: `UpdateGroup` → `AddGroupMember` →
//!   `RemoveGroupMember` (one step per group and direction; the members are in the reason).
//!   A created object is one `Create*` step (plus `UpdateDepartmentLeader` when its leaders
//!   are users created later in the plan, and `UpdateUser` for the user whose manager closes
//!   a reporting cycle). A tombstoned object present again is restored by its `Update*` step
//!   ("restored: …"). Unchanged objects get an `Unchanged` step without writes.
//! - **Identifiers.** `UpdateUserIdentifier` means the sync relation's `union_id` or `user_id`
//!   changed; it writes the relation and a `Put` of the (unchanged) user with
//!   `UserIdentifierChanged`, so downstream readers see it. Department and group custom ids
//!   ride on `UpdateDepartment` / `UpdateGroup`.
//! - **Deletions** are soft (tombstones) and only planned from a complete snapshot (all three
//!   parts: a partial verdict applies no deletions). Users need a [`LeaverCheck`]:
//!   `OutOfScope` → `DeleteUser`; no check or a failed one → a skipped `DeleteUser`.
//!   `Resigned` → `DisableUser` at once, even from a partial snapshot and above any
//!   threshold. Per object type, more deletions than the threshold parks all of that type.
//! - **References** resolve to what exists once the plan is applied: live stored objects the
//!   plan does not delete, and the snapshot's objects it creates or restores. Others (outside
//!   the synced part, e.g. a partial scope's parents) are dropped and named in the reason. A
//!   deleted department's members lose that membership in the same plan, and deleted users
//!   and departments leave their groups.
//! - **Bad records** (a department in or under a parent cycle, a user in a department that
//!   could not be planned and does not exist) become `Failed` steps; the rest of the plan is
//!   unaffected.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::hash::{BuildHasherDefault, Hasher};

use feishu::model as fs;

use crate::ids::{ConnectionId, DepartmentId, GroupId, JobId, Millis, PoolId, UserId};
use crate::merge::{
    self, DepartmentField, GroupField, Listing, Merged, Resolve, Unresolved, UserField,
};
use crate::model::{
    ActionLogEntry, ActionResult, ConnectionSettings, Department, ExternalRef, Group, GroupMember,
    ObjectKind, ParkedDeletion, ParkedState, SyncAction, User, UserStatus, Verdict,
};
use crate::snapshot::{LeaverCheck, ROOT, Snapshot, SnapshotGroup};
use crate::store::{ChangeKind, ConnectionState, Write};

/// One planned action on one object: a line of the job's action log plus what to write.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedStep {
    pub action: SyncAction,
    pub kind: ObjectKind,
    /// The Feishu id.
    pub external_id: String,
    /// The orgsync id (also for objects this plan creates).
    pub object_id: Option<String>,
    pub name: Option<String>,
    /// `Applied` = to be applied; `Skipped`, `Parked` and `Failed` carry no writes.
    pub result: ActionResult,
    pub reason: Option<String>,
    /// In order; empty for `Unchanged`, `Skipped`, `Parked` and `Failed`.
    pub writes: Vec<Write>,
}

impl PlannedStep {
    /// The action-log line of this step.
    pub fn log_entry(&self, job_id: &JobId, at: Millis) -> ActionLogEntry {
        ActionLogEntry {
            job_id: job_id.clone(),
            seq: 0,
            action: self.action,
            kind: self.kind,
            external_id: self.external_id.clone(),
            object_id: self.object_id.clone(),
            name: self.name.clone(),
            result: self.result,
            reason: self.reason.clone(),
            at,
        }
    }
}

/// The outcome of planning: ordered steps (see the module rules).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub pool_id: PoolId,
    pub connection_id: ConnectionId,
    pub steps: Vec<PlannedStep>,
    /// `Complete` when every part of the snapshot is, else `Partial`.
    pub verdict_hint: Verdict,
}

impl Plan {
    /// Steps by action and result, in the shape of `SyncJob::counts`.
    pub fn counts(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        let mut counts: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for s in &self.steps {
            *counts
                .entry(s.action.as_str().to_owned())
                .or_default()
                .entry(s.result.as_str().to_owned())
                .or_default() += 1;
        }
        counts
    }

    /// Every write, in order.
    pub fn writes(&self) -> impl Iterator<Item = &Write> {
        self.steps.iter().flat_map(|s| s.writes.iter())
    }

    /// Deletions held back by the threshold.
    pub fn parked(&self) -> impl Iterator<Item = &PlannedStep> {
        self.steps
            .iter()
            .filter(|s| s.result == ActionResult::Parked)
    }

    /// The parked deletions as the store keeps them, for an admin to approve.
    pub fn parked_deletions(&self, job_id: &JobId, now: Millis) -> Vec<ParkedDeletion> {
        self.parked()
            .map(|s| ParkedDeletion {
                id: 0,
                pool_id: self.pool_id.clone(),
                connection_id: self.connection_id.clone(),
                job_id: job_id.clone(),
                kind: s.kind,
                object_id: s.object_id.clone().unwrap_or_default(),
                external_id: s.external_id.clone(),
                name: s.name.clone(),
                reason: s.reason.clone().unwrap_or_default(),
                state: ParkedState::Pending,
                created_at: now,
                last_parked_at: now,
                resolved_at: None,
                resolution: None,
            })
            .collect()
    }
}

/// Plans `snapshot` against `current` (see the module rules). Never panics on bad data: a bad
/// record is a `Failed` step.
pub fn plan(
    snapshot: &Snapshot,
    current: &ConnectionState,
    connection_id: &ConnectionId,
    pool_id: &PoolId,
    settings: &ConnectionSettings,
    now: Millis,
    new_id: &mut dyn FnMut() -> String,
) -> Plan {
    let index = Index::build(current, connection_id);
    let mut planner = Planner {
        snapshot,
        index,
        connection_id,
        pool_id,
        now,
        new_id,
        steps: Vec::with_capacity(
            snapshot.users.len() + snapshot.departments.len() + snapshot.groups.len() + 16,
        ),
        ids: Ids::default(),
        doomed_users: Set::default(),
        doomed_departments: Set::default(),
        doomed_groups: Set::default(),
    };
    let deletions = planner.decide_deletions(settings);
    let departments = planner.order_departments();
    planner.resolve_departments(&departments);
    let jobs = planner.user_jobs(&departments.failed);
    planner.resolve_users(&jobs);
    planner.resolve_groups();

    let deferred_leaders = planner.plan_departments(&departments);
    planner.plan_users(jobs);
    planner.plan_leaders(deferred_leaders);
    planner.plan_groups();
    planner.plan_deletions(deletions);

    Plan {
        pool_id: pool_id.clone(),
        connection_id: connection_id.clone(),
        steps: planner.steps,
        verdict_hint: if snapshot.completeness.is_full() {
            Verdict::Complete
        } else {
            Verdict::Partial
        },
    }
}

/// An FxHash-style hasher for the planner's maps: a plan hashes several hundred thousand short
/// ids, and SipHash's flooding resistance buys nothing for ids Feishu and orgsync assigned.
#[derive(Default, Clone, Copy)]
struct IdHasher(u64);

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

type Map<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;
type Set<K> = HashSet<K, BuildHasherDefault<IdHasher>>;

// ---- the store, indexed ------------------------------------------------------------------

trait Stored {
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
struct Known<'a, T> {
    sync_ref: &'a ExternalRef,
    object: Option<&'a T>,
}

impl<T> Clone for Known<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Known<'_, T> {}

impl<'a, T: Stored> Known<'a, T> {
    fn live(&self) -> Option<&'a T> {
        self.object.filter(|o| o.is_live())
    }
}

struct Table<'a, T> {
    by_external: Map<&'a str, Known<'a, T>>,
    /// External ids in the store's order (deterministic iteration).
    order: Vec<&'a str>,
    by_id: Map<&'a str, &'a T>,
    /// orgsync id → Feishu id, for naming objects in reasons.
    ext_by_id: Map<&'a str, &'a str>,
}

impl<'a, T: Stored> Table<'a, T> {
    fn build(objects: &'a [T], refs: &[&'a ExternalRef]) -> Self {
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

    fn get(&self, external_id: &str) -> Option<Known<'a, T>> {
        self.by_external.get(external_id).copied()
    }

    fn live_count(&self) -> usize {
        self.by_external
            .values()
            .filter(|k| k.live().is_some())
            .count()
    }

    /// Live objects of the connection, in the store's order.
    fn live(&self) -> impl Iterator<Item = (&'a str, Known<'a, T>)> + '_ {
        self.order.iter().filter_map(|ext| {
            let known = self.by_external.get(ext)?;
            known.live().map(|_| (*ext, *known))
        })
    }

    fn is_live_id(&self, id: &str) -> bool {
        self.by_id.get(id).is_some_and(|o| o.is_live())
    }
}

struct Index<'a> {
    users: Table<'a, User>,
    departments: Table<'a, Department>,
    groups: Table<'a, Group>,
}

impl<'a> Index<'a> {
    fn build(state: &'a ConnectionState, connection_id: &ConnectionId) -> Self {
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
struct Ids<'a> {
    // Stored objects are borrowed, not copied: a plan resolves every stored object.
    users: Map<&'a str, Cow<'a, UserId>>,
    departments: Map<&'a str, Cow<'a, DepartmentId>>,
    groups: Map<&'a str, Cow<'a, GroupId>>,
    /// Feishu ids of the objects this plan creates, for log reasons (stored ones are named
    /// through the index).
    new_users: Map<String, &'a str>,
    new_departments: Map<String, &'a str>,
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

// ---- the planner -------------------------------------------------------------------------

struct Planner<'a, 'f> {
    snapshot: &'a Snapshot,
    index: Index<'a>,
    connection_id: &'a ConnectionId,
    pool_id: &'a PoolId,
    now: Millis,
    new_id: &'f mut dyn FnMut() -> String,
    steps: Vec<PlannedStep>,
    ids: Ids<'a>,
    /// Object ids the plan tombstones (applied deletions only).
    doomed_users: Set<String>,
    doomed_departments: Set<String>,
    doomed_groups: Set<String>,
}

/// A deletion decision, emitted as a step at the end.
struct Deletion<'a> {
    action: SyncAction,
    kind: ObjectKind,
    external_id: &'a str,
    object_id: String,
    name: Option<String>,
    result: ActionResult,
    reason: String,
}

/// The snapshot's departments in parent-first order, and the ones that cannot be placed.
struct DepartmentOrder<'a> {
    ordered: Vec<(&'a str, &'a fs::Department)>,
    failed: Vec<(&'a str, String)>,
}

/// A user the plan creates or updates from a Feishu object.
struct UserJob<'a> {
    external_id: &'a str,
    existing: Option<&'a User>,
    existing_ref: Option<&'a ExternalRef>,
    feishu: &'a fs::User,
    listing: Listing<'a>,
    /// Confirmed by `GET /users/:id` (`LeaverCheck::Resigned`).
    resigned_by_lookup: bool,
    /// Why the record cannot be planned.
    failure: Option<String>,
}

/// A department whose leaders are users this plan creates: set after the users.
struct DeferredLeaders {
    department: Department,
    version: i64,
    external_id: String,
    created: bool,
}

/// The chained `expected_version` of successive puts of one object.
struct Chain {
    expected: i64,
}

impl Chain {
    fn next(&mut self) -> (i64, i64) {
        let expected = self.expected;
        self.expected += 1;
        (expected, expected + 1)
    }
}

fn live_snapshot_departments(
    snapshot: &Snapshot,
) -> impl Iterator<Item = (&String, &fs::Department)> {
    // Feishu may list a department it has just deleted: that is an absence.
    snapshot.departments.iter().filter(|(_, d)| !d.is_deleted())
}

fn unresolved_note(unresolved: &[Unresolved]) -> Option<String> {
    if unresolved.is_empty() {
        return None;
    }
    Some(format!(
        "ignored references outside the directory: {}",
        list(unresolved.iter().map(ToString::to_string))
    ))
}

/// A bounded, comma-separated list for a reason.
fn list(items: impl Iterator<Item = String>) -> String {
    const SHOWN: usize = 10;
    let mut out = String::new();
    let mut n = 0;
    for item in items {
        if n < SHOWN {
            if n > 0 {
                out.push_str(", ");
            }
            out.push_str(&item);
        }
        n += 1;
    }
    if n > SHOWN {
        let _ = write!(out, " (+{} more)", n - SHOWN);
    }
    out
}

fn join_reason(parts: impl IntoIterator<Item = Option<String>>) -> Option<String> {
    let parts: Vec<String> = parts.into_iter().flatten().collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

impl<'a> Planner<'a, '_> {
    fn fresh(&mut self) -> String {
        (self.new_id)()
    }

    fn user_name(&self, id: &UserId) -> String {
        let ext = self.index.users.ext_by_id.get(id.as_str());
        ext.or_else(|| self.ids.new_users.get(id.as_str()))
            .map_or_else(|| id.0.clone(), |e| (*e).to_owned())
    }

    fn department_name(&self, id: &DepartmentId) -> String {
        let ext = self.index.departments.ext_by_id.get(id.as_str());
        ext.or_else(|| self.ids.new_departments.get(id.as_str()))
            .map_or_else(|| id.0.clone(), |e| (*e).to_owned())
    }

    fn member_name(&self, m: &GroupMember) -> String {
        match m {
            GroupMember::User(u) => self.user_name(u),
            GroupMember::Department(d) => self.department_name(d),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        action: SyncAction,
        kind: ObjectKind,
        external_id: &str,
        object_id: Option<&str>,
        name: Option<&String>,
        result: ActionResult,
        reason: Option<String>,
        writes: Vec<Write>,
    ) {
        self.steps.push(PlannedStep {
            action,
            kind,
            external_id: external_id.to_owned(),
            object_id: object_id.map(str::to_owned),
            name: name.cloned(),
            result,
            reason,
            writes,
        });
    }

    fn put_user(&self, user: &User, change: ChangeKind, chain: &mut Chain) -> Write {
        self.put_user_owned(user.clone(), change, chain)
    }

    fn put_user_owned(&self, mut user: User, change: ChangeKind, chain: &mut Chain) -> Write {
        let (expected, version) = chain.next();
        user.version = version;
        user.updated_at = self.now;
        Write::PutUser {
            user,
            change,
            expected_version: Some(expected),
        }
    }

    fn put_department(&self, d: &Department, change: ChangeKind, chain: &mut Chain) -> Write {
        let (expected, version) = chain.next();
        Write::PutDepartment {
            department: Department {
                version,
                updated_at: self.now,
                ..d.clone()
            },
            change,
            expected_version: Some(expected),
        }
    }

    fn put_group(&self, g: &Group, change: ChangeKind, chain: &mut Chain) -> Write {
        let (expected, version) = chain.next();
        Write::PutGroup {
            group: Group {
                version,
                updated_at: self.now,
                ..g.clone()
            },
            change,
            expected_version: Some(expected),
        }
    }

    fn incomplete_parts(&self) -> String {
        let c = self.snapshot.completeness;
        let parts: Vec<&str> = [
            (!c.departments).then_some("departments"),
            (!c.users).then_some("users"),
            (!c.groups).then_some("groups"),
        ]
        .into_iter()
        .flatten()
        .collect();
        parts.join(", ")
    }

    // ---- deletions -------------------------------------------------------------------

    /// Decides every deletion first, so that the rest of the plan resolves references only to
    /// objects that will still be live.
    fn decide_deletions(&mut self, settings: &ConnectionSettings) -> Vec<Deletion<'a>> {
        let snapshot = self.snapshot;
        let full = snapshot.completeness.is_full();
        let partial_reason = || {
            format!(
                "snapshot partial ({} incomplete): no deletions",
                self.incomplete_parts()
            )
        };
        let mut out = Vec::new();

        // Groups.
        let mut candidates = Vec::new();
        for (ext, known) in self.index.groups.live() {
            if !snapshot.groups.contains_key(ext)
                && let Some(g) = known.live()
            {
                candidates.push(Deletion {
                    action: SyncAction::DeleteGroup,
                    kind: ObjectKind::Group,
                    external_id: ext,
                    object_id: g.id.0.clone(),
                    name: g.name.clone(),
                    result: ActionResult::Applied,
                    reason: "absent from Feishu (complete snapshot)".to_owned(),
                });
            }
        }
        let live = self.index.groups.live_count();
        out.extend(self.threshold(candidates, live, settings, full, &partial_reason));

        // Users: only a lookup can confirm a user is gone.
        let mut candidates = Vec::new();
        let mut unconfirmed = Vec::new();
        for (ext, known) in self.index.users.live() {
            let Some(u) = known.live() else { continue };
            if snapshot.users.contains_key(ext) {
                continue;
            }
            // A leaver already disabled: resigned users are never listed and not looked up
            // again, so their absence is expected, not an unconfirmed deletion.
            if u.status == UserStatus::Resigned && !snapshot.leavers.contains_key(ext) {
                continue;
            }
            let deletion = |result, reason: String| Deletion {
                action: SyncAction::DeleteUser,
                kind: ObjectKind::User,
                external_id: ext,
                object_id: u.id.0.clone(),
                name: u.profile.name.clone(),
                result,
                reason,
            };
            match snapshot.leavers.get(ext) {
                // Updated (or disabled) from the returned object.
                Some(LeaverCheck::Resigned { .. } | LeaverCheck::Present { .. }) => {}
                Some(LeaverCheck::OutOfScope) => candidates.push(deletion(
                    ActionResult::Applied,
                    "no longer in the app's contact scope (41050)".to_owned(),
                )),
                Some(LeaverCheck::Failed { error }) => unconfirmed.push(deletion(
                    ActionResult::Skipped,
                    format!("absent from the pull, lookup failed ({error}): not deleted"),
                )),
                None if full => unconfirmed.push(deletion(
                    ActionResult::Skipped,
                    "absent from the pull and not looked up: not confirmed, not deleted".to_owned(),
                )),
                None => unconfirmed.push(deletion(ActionResult::Skipped, partial_reason())),
            }
        }
        let live = self.index.users.live_count();
        out.extend(self.threshold(candidates, live, settings, full, &partial_reason));
        out.extend(unconfirmed);

        // Departments.
        let present: Set<&str> = live_snapshot_departments(snapshot)
            .map(|(k, _)| k.as_str())
            .collect();
        let mut candidates = Vec::new();
        for (ext, known) in self.index.departments.live() {
            if !present.contains(ext)
                && let Some(d) = known.live()
            {
                candidates.push(Deletion {
                    action: SyncAction::DeleteDepartment,
                    kind: ObjectKind::Department,
                    external_id: ext,
                    object_id: d.id.0.clone(),
                    name: d.name.clone(),
                    result: ActionResult::Applied,
                    reason: "absent from Feishu (complete snapshot)".to_owned(),
                });
            }
        }
        let live = self.index.departments.live_count();
        out.extend(self.threshold(candidates, live, settings, full, &partial_reason));

        for d in &out {
            if d.result == ActionResult::Applied {
                let doomed = match d.kind {
                    ObjectKind::User => &mut self.doomed_users,
                    ObjectKind::Department => &mut self.doomed_departments,
                    ObjectKind::Group => &mut self.doomed_groups,
                };
                doomed.insert(d.object_id.clone());
            }
        }
        out
    }

    /// Applies the verdict and the per-type threshold to one type's deletion candidates.
    fn threshold(
        &self,
        mut candidates: Vec<Deletion<'a>>,
        live: usize,
        settings: &ConnectionSettings,
        full: bool,
        partial_reason: &dyn Fn() -> String,
    ) -> Vec<Deletion<'a>> {
        let Some(first) = candidates.first() else {
            return candidates;
        };
        if !full {
            let reason = partial_reason();
            for c in &mut candidates {
                c.result = ActionResult::Skipped;
                c.reason.clone_from(&reason);
            }
            return candidates;
        }
        let n = candidates.len();
        let t = settings.deletion_threshold;
        let fraction_limit = t.max_fraction * live as f64;
        if n as u64 > t.max_count || n as f64 > fraction_limit {
            let reason = format!(
                "{n} {} deletions exceed the threshold (at most {} and at most {}% of {live} live = {}): parked for approval",
                first.kind.as_str(),
                t.max_count,
                t.max_fraction * 100.0,
                fraction_limit.floor(),
            );
            for c in &mut candidates {
                c.result = ActionResult::Parked;
                c.reason = format!("{}; {}", c.reason, reason);
            }
        }
        candidates
    }

    // ---- resolution ------------------------------------------------------------------

    /// Parent-first order of the snapshot's departments (breadth-first from those whose
    /// parent is the root, unknown or outside the snapshot). What is not reached sits in or
    /// under a parent cycle.
    fn order_departments(&self) -> DepartmentOrder<'a> {
        let snapshot = self.snapshot;
        let present: Map<&str, &fs::Department> = live_snapshot_departments(snapshot)
            .map(|(k, d)| (k.as_str(), d))
            .collect();
        let parent_of = |d: &'a fs::Department| -> Option<&'a str> {
            d.parent_department_id
                .as_deref()
                .filter(|p| *p != ROOT && present.contains_key(p))
        };
        let mut children: Map<&str, Vec<&str>> = Map::default();
        let mut queue = VecDeque::new();
        for (ext, d) in live_snapshot_departments(snapshot) {
            match parent_of(d) {
                Some(p) => children.entry(p).or_default().push(ext),
                None => queue.push_back(ext.as_str()),
            }
        }
        let mut ordered = Vec::with_capacity(present.len());
        let mut reached = Set::with_capacity_and_hasher(present.len(), Default::default());
        while let Some(ext) = queue.pop_front() {
            if !reached.insert(ext) {
                continue;
            }
            if let Some(d) = present.get(ext) {
                ordered.push((ext, *d));
            }
            if let Some(kids) = children.get(ext) {
                queue.extend(kids.iter().copied());
            }
        }
        let mut failed = Vec::new();
        for (ext, _) in live_snapshot_departments(snapshot) {
            if reached.contains(ext.as_str()) {
                continue;
            }
            // Walk up to find the cycle, to name it.
            let mut path: Vec<&str> = vec![ext];
            let mut cur = ext.as_str();
            let reason = loop {
                let Some(p) = present.get(cur).and_then(|d| parent_of(d)) else {
                    break "parent chain could not be placed".to_owned();
                };
                if let Some(at) = path.iter().position(|x| *x == p) {
                    let cycle: Vec<&str> = path[at..].iter().copied().chain([p]).collect();
                    break if at == 0 {
                        format!("parent cycle in the snapshot: {}", cycle.join(" → "))
                    } else {
                        format!("ancestor {p} is in a parent cycle: {}", cycle.join(" → "))
                    };
                }
                if path.len() > present.len() {
                    break "parent chain could not be placed".to_owned();
                }
                path.push(p);
                cur = p;
            };
            failed.push((ext.as_str(), reason));
        }
        DepartmentOrder { ordered, failed }
    }

    fn resolve_departments(&mut self, order: &DepartmentOrder<'a>) {
        self.ids
            .departments
            .reserve(self.index.departments.order.len() + order.ordered.len());
        for (ext, known) in self.index.departments.live() {
            if let Some(d) = known.live()
                && !self.doomed_departments.contains(d.id.0.as_str())
            {
                self.ids.departments.insert(ext, Cow::Borrowed(&d.id));
            }
        }
        for (ext, _) in &order.ordered {
            let id = match self.index.departments.get(ext).and_then(|k| k.object) {
                Some(d) => Cow::Borrowed(&d.id),
                None => {
                    let id = self.fresh();
                    self.ids.new_departments.insert(id.clone(), ext);
                    Cow::Owned(DepartmentId(id))
                }
            };
            self.ids.departments.insert(ext, id);
        }
    }

    /// The users the plan merges from a Feishu object: the listed ones, and looked-up leavers
    /// that are still readable (resigned or moved out of the synced part).
    fn user_jobs(&mut self, failed_departments: &[(&'a str, String)]) -> Vec<UserJob<'a>> {
        let snapshot = self.snapshot;
        let authoritative = snapshot.completeness.users;
        let failed: Map<&str, &str> = failed_departments
            .iter()
            .map(|(ext, why)| (*ext, why.as_str()))
            .collect();
        let mut jobs = Vec::with_capacity(snapshot.users.len());
        for (ext, su) in &snapshot.users {
            let known = self.index.users.get(ext);
            jobs.push(UserJob {
                external_id: ext,
                existing: known.and_then(|k| k.object),
                existing_ref: known.map(|k| k.sync_ref),
                feishu: &su.user,
                listing: if authoritative {
                    Listing::Authoritative(&su.listed_in)
                } else {
                    Listing::Partial(&su.listed_in)
                },
                resigned_by_lookup: false,
                failure: None,
            });
        }
        for (ext, check) in &snapshot.leavers {
            if snapshot.users.contains_key(ext) {
                continue;
            }
            let (user, resigned) = match check {
                LeaverCheck::Resigned { user } => (user, true),
                LeaverCheck::Present { user } => (user, false),
                LeaverCheck::OutOfScope | LeaverCheck::Failed { .. } => continue,
            };
            let action = if resigned {
                SyncAction::DisableUser
            } else {
                SyncAction::UpdateUser
            };
            let known = self.index.users.get(ext);
            match known.and_then(|k| k.object) {
                None => self.push(
                    action,
                    ObjectKind::User,
                    ext,
                    None,
                    user.name.as_ref(),
                    ActionResult::Skipped,
                    Some("looked up as a leaver but not in the directory".to_owned()),
                    Vec::new(),
                ),
                // Already tombstoned: absent from the pull, nothing to undo.
                Some(u) if !u.is_live() => {}
                Some(u) => jobs.push(UserJob {
                    external_id: ext,
                    existing: Some(u),
                    existing_ref: known.map(|k| k.sync_ref),
                    feishu: user,
                    // Not listed anywhere: with a complete listing, in no synced department.
                    listing: if authoritative {
                        Listing::Authoritative(&[])
                    } else {
                        Listing::Partial(&[])
                    },
                    resigned_by_lookup: resigned,
                    failure: None,
                }),
            }
        }
        // A user in a department that could not be planned (and does not exist) is a bad
        // record: planning it would drop a membership Feishu states.
        if !failed.is_empty() {
            for job in &mut jobs {
                if job.resigned_by_lookup
                    || merge::status_of(job.feishu) == Some(UserStatus::Resigned)
                {
                    continue;
                }
                let referenced: Vec<&str> = match merge::stated_departments(job.feishu) {
                    Some(ids) => ids,
                    None => match job.listing {
                        Listing::Authoritative(l) | Listing::Partial(l) => {
                            l.iter().map(String::as_str).collect()
                        }
                    },
                };
                if let Some(od) = referenced
                    .into_iter()
                    .find(|od| failed.contains_key(od) && !self.ids.departments.contains_key(od))
                {
                    job.failure = Some(format!(
                        "department {od} could not be planned ({})",
                        failed.get(od).copied().unwrap_or_default()
                    ));
                }
            }
        }
        jobs
    }

    fn resolve_users(&mut self, jobs: &[UserJob<'a>]) {
        self.ids
            .users
            .reserve(self.index.users.order.len() + jobs.len());
        for (ext, known) in self.index.users.live() {
            if let Some(u) = known.live()
                && !self.doomed_users.contains(u.id.0.as_str())
            {
                self.ids.users.insert(ext, Cow::Borrowed(&u.id));
            }
        }
        for job in jobs {
            if job.failure.is_some() {
                continue;
            }
            let id = match job.existing {
                Some(u) if u.is_live() => continue, // already resolvable
                Some(u) => Cow::Borrowed(&u.id),
                None => {
                    let id = self.fresh();
                    self.ids.new_users.insert(id.clone(), job.external_id);
                    Cow::Owned(UserId(id))
                }
            };
            self.ids.users.insert(job.external_id, id);
        }
    }

    fn resolve_groups(&mut self) {
        let snapshot = self.snapshot;
        for (ext, known) in self.index.groups.live() {
            if let Some(g) = known.live()
                && !self.doomed_groups.contains(g.id.0.as_str())
            {
                self.ids.groups.insert(ext, Cow::Borrowed(&g.id));
            }
        }
        for ext in snapshot.groups.keys() {
            if !self.ids.groups.contains_key(ext.as_str()) {
                let id = match self.index.groups.get(ext).and_then(|k| k.object) {
                    Some(g) => Cow::Borrowed(&g.id),
                    None => Cow::Owned(GroupId(self.fresh())),
                };
                self.ids.groups.insert(ext, id);
            }
        }
    }

    // ---- departments -----------------------------------------------------------------

    fn plan_departments(&mut self, order: &DepartmentOrder<'a>) -> Vec<DeferredLeaders> {
        let snapshot = self.snapshot;
        for (ext, why) in &order.failed {
            let existing = self.index.departments.get(ext).and_then(|k| k.object);
            let f = snapshot.departments.get(*ext);
            self.push(
                if existing.is_some() {
                    SyncAction::UpdateDepartment
                } else {
                    SyncAction::CreateDepartment
                },
                ObjectKind::Department,
                ext,
                existing.map(|d| d.id.0.as_str()),
                existing
                    .and_then(|d| d.name.as_ref())
                    .or(f.and_then(|f| f.name.as_ref())),
                ActionResult::Failed,
                Some(why.clone()),
                Vec::new(),
            );
        }

        let mut deferred = Vec::new();
        for (ext, f) in &order.ordered {
            let known = self.index.departments.get(ext);
            let existing = known.and_then(|k| k.object);
            let Some(id) = self
                .ids
                .departments
                .get(ext)
                .map(|id| id.clone().into_owned())
            else {
                continue;
            };
            let Merged {
                object: mut new,
                unresolved,
            } = merge::merge_department(existing, f, &self.ids, self.pool_id, id, self.now);
            new.deleted_at = None;
            let note = unresolved_note(&unresolved);
            let new_ref = merge::merge_ref(
                known.map(|k| k.sync_ref),
                self.connection_id,
                ObjectKind::Department,
                ext,
                None,
                f.department_id.as_deref(),
                &new.id.0,
            );
            // Leaders naming users that do not exist yet are set after the users.
            let leaders_exist = new
                .leaders
                .iter()
                .all(|l| self.index.users.is_live_id(&l.user_id.0));
            let final_leaders = new.leaders.clone();
            let stored_leaders = existing.map(|d| d.leaders.clone()).unwrap_or_default();
            if !leaders_exist {
                new.leaders.clone_from(&stored_leaders);
            }

            let Some(existing) = existing else {
                let mut chain = Chain { expected: 0 };
                let writes = vec![
                    self.put_department(&new, ChangeKind::DepartmentCreated, &mut chain),
                    Write::PutExternalRef(new_ref),
                ];
                self.push(
                    SyncAction::CreateDepartment,
                    ObjectKind::Department,
                    ext,
                    Some(&new.id.0),
                    new.name.as_ref(),
                    ActionResult::Applied,
                    note,
                    writes,
                );
                if !leaders_exist {
                    deferred.push(DeferredLeaders {
                        department: Department {
                            leaders: final_leaders,
                            ..new
                        },
                        version: chain.expected,
                        external_id: (*ext).to_owned(),
                        created: true,
                    });
                }
                continue;
            };

            let fields = merge::department_changes(existing, &new);
            let ref_fields = known
                .map(|k| merge::ref_changes(k.sync_ref, &new_ref))
                .unwrap_or_default();
            let mut chain = Chain {
                expected: existing.version,
            };
            let mut cur = existing.clone();
            let mut note = note;
            let mut any = false;

            let upd: Vec<DepartmentField> = fields
                .iter()
                .copied()
                .filter(|f| !matches!(f, DepartmentField::Parent | DepartmentField::Leaders))
                .collect();
            if !upd.is_empty() || !ref_fields.is_empty() {
                cur.name.clone_from(&new.name);
                cur.i18n_name.clone_from(&new.i18n_name);
                cur.order = new.order;
                cur.chat_id.clone_from(&new.chat_id);
                cur.deleted_at = new.deleted_at;
                let mut writes =
                    vec![self.put_department(&cur, ChangeKind::DepartmentUpdated, &mut chain)];
                if !ref_fields.is_empty() {
                    writes.push(Write::PutExternalRef(new_ref.clone()));
                }
                let restored = upd.contains(&DepartmentField::Deleted);
                let changed: Vec<&str> = upd
                    .iter()
                    .filter(|f| **f != DepartmentField::Deleted)
                    .map(|f| f.as_str())
                    .chain(ref_fields.iter().copied())
                    .collect();
                let reason = join_reason([
                    restored.then(|| "restored: present in Feishu again".to_owned()),
                    (!changed.is_empty()).then(|| changed.join(", ")),
                    note.take(),
                ]);
                self.push(
                    SyncAction::UpdateDepartment,
                    ObjectKind::Department,
                    ext,
                    Some(&cur.id.0),
                    cur.name.as_ref(),
                    ActionResult::Applied,
                    reason,
                    writes,
                );
                any = true;
            }
            if fields.contains(&DepartmentField::Parent) {
                let name = |p: &Option<DepartmentId>| {
                    p.as_ref()
                        .map_or_else(|| ROOT.to_owned(), |p| self.department_name(p))
                };
                let reason = format!("parent {} → {}", name(&cur.parent_id), name(&new.parent_id));
                cur.parent_id.clone_from(&new.parent_id);
                let writes =
                    vec![self.put_department(&cur, ChangeKind::DepartmentMoved, &mut chain)];
                self.push(
                    SyncAction::MoveDepartment,
                    ObjectKind::Department,
                    ext,
                    Some(&cur.id.0),
                    cur.name.as_ref(),
                    ActionResult::Applied,
                    join_reason([Some(reason), note.take()]),
                    writes,
                );
                any = true;
            }
            if leaders_exist {
                if cur.leaders != final_leaders {
                    let reason = self.leaders_reason(&cur.leaders, &final_leaders);
                    cur.leaders = final_leaders;
                    let writes = vec![self.put_department(
                        &cur,
                        ChangeKind::DepartmentLeaderChanged,
                        &mut chain,
                    )];
                    self.push(
                        SyncAction::UpdateDepartmentLeader,
                        ObjectKind::Department,
                        ext,
                        Some(&cur.id.0),
                        cur.name.as_ref(),
                        ActionResult::Applied,
                        join_reason([Some(reason), note.take()]),
                        writes,
                    );
                    any = true;
                }
            } else if cur.leaders != final_leaders {
                deferred.push(DeferredLeaders {
                    department: Department {
                        leaders: final_leaders,
                        ..cur.clone()
                    },
                    version: chain.expected,
                    external_id: (*ext).to_owned(),
                    created: false,
                });
                any = true;
            }
            if !any {
                self.push(
                    SyncAction::Unchanged,
                    ObjectKind::Department,
                    ext,
                    Some(&cur.id.0),
                    cur.name.as_ref(),
                    ActionResult::Applied,
                    None,
                    Vec::new(),
                );
            }
        }
        deferred
    }

    fn leaders_reason(&self, old: &[crate::model::Leader], new: &[crate::model::Leader]) -> String {
        let show = |ls: &[crate::model::Leader]| {
            if ls.is_empty() {
                return "none".to_owned();
            }
            list(ls.iter().map(|l| {
                let who = self.user_name(&l.user_id);
                match l.kind {
                    crate::model::LeaderKind::Main => who,
                    crate::model::LeaderKind::Deputy => format!("{who} (deputy)"),
                }
            }))
        };
        format!("leaders {} → {}", show(old), show(new))
    }

    fn plan_leaders(&mut self, deferred: Vec<DeferredLeaders>) {
        for d in deferred {
            let mut chain = Chain {
                expected: d.version,
            };
            let reason = if d.created {
                self.leaders_reason(&[], &d.department.leaders)
            } else {
                let before = self
                    .index
                    .departments
                    .get(&d.external_id)
                    .and_then(|k| k.object)
                    .map(|o| o.leaders.clone())
                    .unwrap_or_default();
                self.leaders_reason(&before, &d.department.leaders)
            };
            let writes = vec![self.put_department(
                &d.department,
                ChangeKind::DepartmentLeaderChanged,
                &mut chain,
            )];
            self.push(
                SyncAction::UpdateDepartmentLeader,
                ObjectKind::Department,
                &d.external_id,
                Some(&d.department.id.0),
                d.department.name.as_ref(),
                ActionResult::Applied,
                Some(format!("{reason} (set once the users exist)")),
                writes,
            );
        }
    }

    // ---- users -----------------------------------------------------------------------

    fn plan_users(&mut self, jobs: Vec<UserJob<'a>>) {
        // Users this plan creates or restores, by Feishu id: a report must come after them.
        let pending: Map<&str, usize> = jobs
            .iter()
            .enumerate()
            .filter(|(_, j)| j.failure.is_none() && !j.existing.is_some_and(|u| u.is_live()))
            .map(|(i, j)| (j.external_id, i))
            .collect();
        let mut emitted = vec![false; jobs.len()];
        let mut waiting: Vec<(usize, Merged<User>, usize)> = Vec::new();
        let mut fixups: Vec<(User, Chain, UserId, String)> = Vec::new();

        // Streamed in snapshot order; a user whose manager is still to come waits.
        for (i, job) in jobs.iter().enumerate() {
            if let Some(why) = &job.failure {
                self.push(
                    if job.existing.is_some() {
                        SyncAction::UpdateUser
                    } else {
                        SyncAction::CreateUser
                    },
                    ObjectKind::User,
                    job.external_id,
                    job.existing.map(|u| u.id.0.as_str()),
                    job.existing
                        .and_then(|u| u.profile.name.as_ref())
                        .or(job.feishu.name.as_ref()),
                    ActionResult::Failed,
                    Some(why.clone()),
                    Vec::new(),
                );
                continue;
            }
            let Some(m) = self.merge_job(job) else {
                continue;
            };
            let manager = job
                .feishu
                .leader_user_id
                .as_deref()
                .and_then(|m| pending.get(m).copied())
                .filter(|j| !emitted[*j]);
            match manager {
                Some(j) => waiting.push((i, m, j)),
                None => {
                    self.emit_merged(job, m, false, &mut fixups);
                    emitted[i] = true;
                }
            }
        }

        // The waiting ones, managers first; a reporting cycle gets its last link afterwards.
        let slot: Map<usize, usize> = waiting
            .iter()
            .enumerate()
            .map(|(k, (i, _, _))| (*i, k))
            .collect();
        let dependency: Vec<Option<usize>> = waiting
            .iter()
            .map(|(_, _, j)| {
                if emitted[*j] {
                    None
                } else {
                    slot.get(j).copied()
                }
            })
            .collect();
        let (order, cyclic) = manager_order(&dependency);
        let mut waiting: Vec<Option<(usize, Merged<User>, usize)>> =
            waiting.into_iter().map(Some).collect();
        for k in order {
            let Some((i, m, _)) = waiting[k].take() else {
                continue;
            };
            self.emit_merged(&jobs[i], m, cyclic[k], &mut fixups);
        }
        for (mut cur, mut chain, manager, ext) in fixups {
            if cur.manager_id.as_ref() == Some(&manager) {
                continue;
            }
            let reason = format!(
                "manager {} (set after the reporting cycle was created)",
                self.user_name(&manager)
            );
            cur.manager_id = Some(manager);
            let writes = vec![self.put_user(&cur, ChangeKind::UserUpdated, &mut chain)];
            self.push(
                SyncAction::UpdateUser,
                ObjectKind::User,
                &ext,
                Some(&cur.id.0),
                cur.profile.name.as_ref(),
                ActionResult::Applied,
                Some(reason),
                writes,
            );
        }

        self.detach_from_doomed_departments(&jobs);
    }

    fn merge_job(&self, job: &UserJob<'a>) -> Option<Merged<User>> {
        let id = self.ids.users.get(job.external_id)?.clone().into_owned();
        let mut m = merge::merge_user(
            job.existing,
            job.feishu,
            job.listing,
            &self.ids,
            self.pool_id,
            id,
            self.now,
        );
        m.object.deleted_at = None;
        if job.resigned_by_lookup {
            m.object.status = UserStatus::Resigned;
            merge::detach(&mut m.object);
        }
        Some(m)
    }

    /// Emits a merged user; `defer_manager` holds its manager back for a later fix-up.
    fn emit_merged(
        &mut self,
        job: &UserJob<'a>,
        m: Merged<User>,
        defer_manager: bool,
        fixups: &mut Vec<(User, Chain, UserId, String)>,
    ) {
        let mut user = m.object;
        let note = unresolved_note(&m.unresolved);
        let deferred = if defer_manager {
            let real = user.manager_id.take();
            user.manager_id = job.existing.and_then(|e| e.manager_id.clone());
            real
        } else {
            None
        };
        let keep = deferred.is_some();
        if let (Some((cur, chain)), Some(manager)) =
            (self.emit_user(job, user, note, keep), deferred)
        {
            fixups.push((cur, chain, manager, job.external_id.to_owned()));
        }
    }

    /// Emits the steps of one merged user; returns its state and version chain afterwards
    /// when `keep` asks for them (to set a deferred manager).
    fn emit_user(
        &mut self,
        job: &UserJob<'a>,
        new: User,
        note: Option<String>,
        keep: bool,
    ) -> Option<(User, Chain)> {
        let ext = job.external_id;
        let (union_id, user_id) = (
            job.feishu.union_id.as_deref(),
            job.feishu.user_id.as_deref(),
        );
        let ref_changes = match job.existing_ref {
            // Most users keep their identifiers: do not build a relation to compare.
            Some(r) if job.existing.is_some() && !merge::ref_would_change(r, union_id, user_id) => {
                false
            }
            _ => true,
        };
        let new_ref = ref_changes.then(|| {
            merge::merge_ref(
                job.existing_ref,
                self.connection_id,
                ObjectKind::User,
                ext,
                union_id,
                user_id,
                &new.id.0,
            )
        });
        let Some(existing) = job.existing else {
            let mut chain = Chain { expected: 0 };
            let reason = join_reason([
                (!new.status.is_enabled()).then(|| format!("status {}", new.status.as_str())),
                note,
            ]);
            self.steps.push(PlannedStep {
                action: SyncAction::CreateUser,
                kind: ObjectKind::User,
                external_id: ext.to_owned(),
                object_id: Some(new.id.0.clone()),
                name: new.profile.name.clone(),
                result: ActionResult::Applied,
                reason,
                writes: Vec::new(),
            });
            let kept = keep.then(|| new.clone());
            let mut writes = Vec::with_capacity(2);
            writes.push(self.put_user_owned(new, ChangeKind::UserCreated, &mut chain));
            writes.extend(new_ref.map(Write::PutExternalRef));
            if let Some(step) = self.steps.last_mut() {
                step.writes = writes;
            }
            return kept.map(|u| (u, chain));
        };

        let fields = merge::user_changes(existing, &new);
        let ref_fields = match (job.existing_ref, &new_ref) {
            (Some(old), Some(new)) => merge::ref_changes(old, new),
            _ => Vec::new(),
        };
        if fields.is_empty() && ref_fields.is_empty() {
            // The common case of a reconciliation: cheap.
            self.push(
                SyncAction::Unchanged,
                ObjectKind::User,
                ext,
                Some(&new.id.0),
                new.profile.name.as_ref(),
                ActionResult::Applied,
                None,
                Vec::new(),
            );
            let expected = existing.version;
            return keep.then_some((new, Chain { expected }));
        }
        let status_changed = fields.contains(&UserField::Status);
        let disabling = status_changed && !new.status.is_enabled();
        let detach_on_disable = disabling && new.status == UserStatus::Resigned;
        let mut chain = Chain {
            expected: existing.version,
        };
        let mut cur = existing.clone();
        let mut note = note;
        let mut any = false;

        if let Some(new_ref) = new_ref.filter(|_| !ref_fields.is_empty()) {
            let old = job.existing_ref;
            let show = |v: Option<&String>| v.map_or("none", String::as_str).to_owned();
            let reason = ref_fields
                .iter()
                .map(|f| {
                    let (a, b) = if *f == "union_id" {
                        (
                            old.and_then(|r| r.union_id.as_ref()),
                            new_ref.union_id.as_ref(),
                        )
                    } else {
                        (
                            old.and_then(|r| r.custom_id.as_ref()),
                            new_ref.custom_id.as_ref(),
                        )
                    };
                    format!("{f} {} → {}", show(a), show(b))
                })
                .collect::<Vec<_>>()
                .join(", ");
            let writes = vec![
                self.put_user(&cur, ChangeKind::UserIdentifierChanged, &mut chain),
                Write::PutExternalRef(new_ref),
            ];
            self.push(
                SyncAction::UpdateUserIdentifier,
                ObjectKind::User,
                ext,
                Some(&cur.id.0),
                cur.profile.name.as_ref(),
                ActionResult::Applied,
                join_reason([Some(reason), note.take()]),
                writes,
            );
            any = true;
        }

        let update: Vec<UserField> = fields
            .iter()
            .copied()
            .filter(|f| {
                f.is_profile()
                    || matches!(f, UserField::Manager | UserField::Deleted)
                    || (*f == UserField::Status && !disabling)
            })
            .collect();
        if !update.is_empty() {
            let restored = update.contains(&UserField::Deleted);
            let mut parts: Vec<String> = Vec::new();
            for f in &update {
                match f {
                    UserField::Deleted => {}
                    UserField::Status => parts.push(format!(
                        "status {} → {}",
                        cur.status.as_str(),
                        new.status.as_str()
                    )),
                    UserField::Manager => parts.push(format!(
                        "manager {}",
                        new.manager_id
                            .as_ref()
                            .map_or_else(|| "none".to_owned(), |m| self.user_name(m))
                    )),
                    f => parts.push(f.as_str().to_owned()),
                }
            }
            cur.profile.clone_from(&new.profile);
            cur.manager_id.clone_from(&new.manager_id);
            cur.deleted_at = new.deleted_at;
            if !disabling {
                cur.status = new.status;
            }
            let writes = vec![self.put_user(&cur, ChangeKind::UserUpdated, &mut chain)];
            let reason = join_reason([
                restored.then(|| "restored: present in Feishu again".to_owned()),
                (!parts.is_empty()).then(|| parts.join(", ")),
                note.take(),
            ]);
            self.push(
                SyncAction::UpdateUser,
                ObjectKind::User,
                ext,
                Some(&cur.id.0),
                cur.profile.name.as_ref(),
                ActionResult::Applied,
                reason,
                writes,
            );
            any = true;
        }

        let memberships_changed =
            fields.contains(&UserField::Departments) || fields.contains(&UserField::Root);
        if memberships_changed && !detach_on_disable {
            let reason = self.membership_reason(&cur, &new);
            cur.departments.clone_from(&new.departments);
            cur.in_root = new.in_root;
            let writes = vec![self.put_user(&cur, ChangeKind::UserDepartmentsChanged, &mut chain)];
            self.push(
                SyncAction::ChangeUserDepartment,
                ObjectKind::User,
                ext,
                Some(&cur.id.0),
                cur.profile.name.as_ref(),
                ActionResult::Applied,
                join_reason([Some(reason), note.take()]),
                writes,
            );
            any = true;
        }

        if disabling {
            let mut reason = format!("status {} → {}", cur.status.as_str(), new.status.as_str());
            if job.resigned_by_lookup {
                reason.push_str(" (absent from the pull, confirmed by lookup)");
            }
            cur.status = new.status;
            if detach_on_disable {
                let n = cur.departments.len() + usize::from(cur.in_root);
                if n > 0 {
                    let _ = write!(reason, "; detached from {n} department(s)");
                }
                cur.departments.clone_from(&new.departments);
                cur.in_root = new.in_root;
            }
            let writes = vec![self.put_user(&cur, ChangeKind::UserDisabled, &mut chain)];
            self.push(
                SyncAction::DisableUser,
                ObjectKind::User,
                ext,
                Some(&cur.id.0),
                cur.profile.name.as_ref(),
                ActionResult::Applied,
                join_reason([Some(reason), note.take()]),
                writes,
            );
            any = true;
        }

        debug_assert!(any, "a change was found, so a step was emitted");
        keep.then_some((cur, chain))
    }

    fn membership_reason(&self, old: &User, new: &User) -> String {
        let mut parts = Vec::new();
        let has = |u: &User, d: &DepartmentId| u.departments.iter().any(|m| &m.department_id == d);
        let added: Vec<String> = new
            .departments
            .iter()
            .filter(|m| !has(old, &m.department_id))
            .map(|m| self.department_name(&m.department_id))
            .collect();
        let removed: Vec<String> = old
            .departments
            .iter()
            .filter(|m| !has(new, &m.department_id))
            .map(|m| self.department_name(&m.department_id))
            .collect();
        if !added.is_empty() {
            parts.push(format!("joined {}", list(added.into_iter())));
        }
        if !removed.is_empty() {
            parts.push(format!("left {}", list(removed.into_iter())));
        }
        if old.in_root != new.in_root {
            parts.push(
                if new.in_root {
                    "joined root"
                } else {
                    "left root"
                }
                .to_owned(),
            );
        }
        let primary = |u: &User| {
            u.departments
                .iter()
                .find(|m| m.primary)
                .map(|m| m.department_id.clone())
        };
        let (p_old, p_new) = (primary(old), primary(new));
        if p_old != p_new && p_new.as_ref().is_some_and(|p| has(old, p)) {
            parts.push(format!(
                "primary {}",
                p_new
                    .as_ref()
                    .map_or_else(String::new, |p| self.department_name(p))
            ));
        }
        if parts.is_empty() {
            parts.push("department orders".to_owned());
        }
        parts.join("; ")
    }

    /// Users the pull did not merge but that are members of a department this plan deletes
    /// lose that membership (before the tombstone).
    fn detach_from_doomed_departments(&mut self, jobs: &[UserJob<'a>]) {
        if self.doomed_departments.is_empty() {
            return;
        }
        let merged: Set<&str> = jobs
            .iter()
            .filter(|j| j.failure.is_none())
            .map(|j| j.external_id)
            .collect();
        let live: Vec<(&'a str, &'a User)> = self
            .index
            .users
            .live()
            .filter_map(|(ext, k)| k.live().map(|u| (ext, u)))
            .collect();
        for (ext, u) in live {
            if merged.contains(ext) || self.doomed_users.contains(u.id.0.as_str()) {
                continue;
            }
            if !u
                .departments
                .iter()
                .any(|m| self.doomed_departments.contains(m.department_id.0.as_str()))
            {
                continue;
            }
            let mut cur = u.clone();
            cur.departments
                .retain(|m| !self.doomed_departments.contains(m.department_id.0.as_str()));
            if u.departments.iter().any(|m| m.primary)
                && !cur.departments.iter().any(|m| m.primary)
                && let Some(first) = cur.departments.first_mut()
            {
                first.primary = true;
            }
            let reason = format!("{} (department deleted)", self.membership_reason(u, &cur));
            let mut chain = Chain {
                expected: u.version,
            };
            let writes = vec![self.put_user(&cur, ChangeKind::UserDepartmentsChanged, &mut chain)];
            self.push(
                SyncAction::ChangeUserDepartment,
                ObjectKind::User,
                ext,
                Some(&cur.id.0),
                cur.profile.name.as_ref(),
                ActionResult::Applied,
                Some(reason),
                writes,
            );
        }
    }

    // ---- groups ----------------------------------------------------------------------

    fn is_doomed_member(&self, m: &GroupMember) -> bool {
        match m {
            GroupMember::User(u) => self.doomed_users.contains(u.0.as_str()),
            GroupMember::Department(d) => self.doomed_departments.contains(d.0.as_str()),
        }
    }

    fn plan_groups(&mut self) {
        let snapshot = self.snapshot;
        for (ext, sg) in &snapshot.groups {
            self.plan_group(ext, sg);
        }
        // Live groups the pull did not return (partial or parked) keep their members, except
        // users and departments this plan deletes.
        if self.doomed_users.is_empty() && self.doomed_departments.is_empty() {
            return;
        }
        let stale: Vec<(&'a str, &'a Group)> = self
            .index
            .groups
            .live()
            .filter(|(ext, _)| !snapshot.groups.contains_key(*ext))
            .filter_map(|(ext, k)| k.live().map(|g| (ext, g)))
            .filter(|(_, g)| !self.doomed_groups.contains(g.id.0.as_str()))
            .collect();
        for (ext, g) in stale {
            let removed: Vec<&GroupMember> = g
                .members
                .iter()
                .filter(|m| self.is_doomed_member(m))
                .collect();
            if removed.is_empty() {
                continue;
            }
            let reason = format!(
                "{} (deleted)",
                list(removed.iter().map(|m| self.member_name(m)))
            );
            let mut cur = g.clone();
            cur.members.retain(|m| !self.is_doomed_member(m));
            let mut chain = Chain {
                expected: g.version,
            };
            let writes = vec![self.put_group(&cur, ChangeKind::GroupMembersChanged, &mut chain)];
            self.push(
                SyncAction::RemoveGroupMember,
                ObjectKind::Group,
                ext,
                Some(&cur.id.0),
                cur.name.as_ref(),
                ActionResult::Applied,
                Some(reason),
                writes,
            );
        }
    }

    fn plan_group(&mut self, ext: &'a str, sg: &'a SnapshotGroup) {
        let known = self.index.groups.get(ext);
        let existing = known.and_then(|k| k.object);
        let Some(id) = self.ids.groups.get(ext).map(|id| id.clone().into_owned()) else {
            return;
        };
        let Merged {
            object: mut new,
            unresolved,
        } = merge::merge_group(existing, sg, &self.ids, self.pool_id, id, self.now);
        new.deleted_at = None;
        new.members.retain(|m| !self.is_doomed_member(m));
        let note = unresolved_note(&unresolved);
        let new_ref = merge::merge_ref(
            known.map(|k| k.sync_ref),
            self.connection_id,
            ObjectKind::Group,
            ext,
            None,
            sg.group.group_id.as_deref(),
            &new.id.0,
        );
        let Some(existing) = existing else {
            let mut chain = Chain { expected: 0 };
            let reason = join_reason([Some(format!("{} members", new.members.len())), note]);
            let writes = vec![
                self.put_group(&new, ChangeKind::GroupCreated, &mut chain),
                Write::PutExternalRef(new_ref),
            ];
            self.push(
                SyncAction::CreateGroup,
                ObjectKind::Group,
                ext,
                Some(&new.id.0),
                new.name.as_ref(),
                ActionResult::Applied,
                reason,
                writes,
            );
            return;
        };

        let fields = merge::group_changes(existing, &new);
        let ref_fields = known
            .map(|k| merge::ref_changes(k.sync_ref, &new_ref))
            .unwrap_or_default();
        let mut chain = Chain {
            expected: existing.version,
        };
        let mut cur = existing.clone();
        let mut note = note;
        let mut any = false;

        let upd: Vec<GroupField> = fields
            .iter()
            .copied()
            .filter(|f| *f != GroupField::Members)
            .collect();
        if !upd.is_empty() || !ref_fields.is_empty() {
            cur.name.clone_from(&new.name);
            cur.description.clone_from(&new.description);
            cur.kind = new.kind;
            cur.deleted_at = new.deleted_at;
            let mut writes = vec![self.put_group(&cur, ChangeKind::GroupUpdated, &mut chain)];
            if !ref_fields.is_empty() {
                writes.push(Write::PutExternalRef(new_ref.clone()));
            }
            let restored = upd.contains(&GroupField::Deleted);
            let changed: Vec<&str> = upd
                .iter()
                .filter(|f| **f != GroupField::Deleted)
                .map(|f| f.as_str())
                .chain(ref_fields.iter().copied())
                .collect();
            let reason = join_reason([
                restored.then(|| "restored: present in Feishu again".to_owned()),
                (!changed.is_empty()).then(|| changed.join(", ")),
                note.take(),
            ]);
            self.push(
                SyncAction::UpdateGroup,
                ObjectKind::Group,
                ext,
                Some(&cur.id.0),
                cur.name.as_ref(),
                ActionResult::Applied,
                reason,
                writes,
            );
            any = true;
        }
        if fields.contains(&GroupField::Members) {
            let old: Set<&GroupMember> = existing.members.iter().collect();
            let now: Set<&GroupMember> = new.members.iter().collect();
            let added: Vec<&GroupMember> =
                new.members.iter().filter(|m| !old.contains(m)).collect();
            let removed: Vec<&GroupMember> = existing
                .members
                .iter()
                .filter(|m| !now.contains(m))
                .collect();
            if !added.is_empty() {
                let reason = list(added.iter().map(|m| self.member_name(m)));
                cur.members.extend(added.iter().map(|m| (*m).clone()));
                cur.members.sort();
                cur.members.dedup();
                let writes =
                    vec![self.put_group(&cur, ChangeKind::GroupMembersChanged, &mut chain)];
                self.push(
                    SyncAction::AddGroupMember,
                    ObjectKind::Group,
                    ext,
                    Some(&cur.id.0),
                    cur.name.as_ref(),
                    ActionResult::Applied,
                    join_reason([Some(reason), note.take()]),
                    writes,
                );
            }
            if !removed.is_empty() {
                let reason = list(removed.iter().map(|m| self.member_name(m)));
                cur.members.clone_from(&new.members);
                let writes =
                    vec![self.put_group(&cur, ChangeKind::GroupMembersChanged, &mut chain)];
                self.push(
                    SyncAction::RemoveGroupMember,
                    ObjectKind::Group,
                    ext,
                    Some(&cur.id.0),
                    cur.name.as_ref(),
                    ActionResult::Applied,
                    join_reason([Some(reason), note.take()]),
                    writes,
                );
            }
            any = true;
        }
        if !any {
            self.push(
                SyncAction::Unchanged,
                ObjectKind::Group,
                ext,
                Some(&cur.id.0),
                cur.name.as_ref(),
                ActionResult::Applied,
                None,
                Vec::new(),
            );
        }
    }

    // ---- deletions -------------------------------------------------------------------

    fn plan_deletions(&mut self, deletions: Vec<Deletion<'a>>) {
        for d in deletions {
            let writes = if d.result == ActionResult::Applied {
                self.tombstone(d.kind, d.external_id)
            } else {
                Vec::new()
            };
            self.push(
                d.action,
                d.kind,
                d.external_id,
                Some(&d.object_id),
                d.name.as_ref(),
                d.result,
                Some(d.reason),
                writes,
            );
        }
    }

    fn tombstone(&self, kind: ObjectKind, ext: &str) -> Vec<Write> {
        match kind {
            ObjectKind::User => self.index.users.get(ext).and_then(|k| k.object).map(|u| {
                let mut chain = Chain {
                    expected: u.version,
                };
                self.put_user(
                    &merge::tombstone_user(u, self.now),
                    ChangeKind::UserDeleted,
                    &mut chain,
                )
            }),
            ObjectKind::Department => {
                self.index
                    .departments
                    .get(ext)
                    .and_then(|k| k.object)
                    .map(|d| {
                        let mut chain = Chain {
                            expected: d.version,
                        };
                        self.put_department(
                            &merge::tombstone_department(d, self.now),
                            ChangeKind::DepartmentDeleted,
                            &mut chain,
                        )
                    })
            }
            ObjectKind::Group => self.index.groups.get(ext).and_then(|k| k.object).map(|g| {
                let mut chain = Chain {
                    expected: g.version,
                };
                self.put_group(
                    &merge::tombstone_group(g, self.now),
                    ChangeKind::GroupDeleted,
                    &mut chain,
                )
            }),
        }
        .into_iter()
        .collect()
    }
}

/// Emission order for users whose manager the plan also creates: managers first. Each user
/// has at most one such edge, so the graph is a functional graph; a cycle is broken at the
/// user whose edge closes it (`cyclic[i]`: set that manager afterwards).
fn manager_order(dependency: &[Option<usize>]) -> (Vec<usize>, Vec<bool>) {
    const NEW: u8 = 0;
    const ON_PATH: u8 = 1;
    const DONE: u8 = 2;
    let n = dependency.len();
    let mut state = vec![NEW; n];
    let mut cyclic = vec![false; n];
    let mut order = Vec::with_capacity(n);
    let mut path = Vec::new();
    for start in 0..n {
        if state[start] != NEW {
            continue;
        }
        path.clear();
        let mut cur = Some(start);
        while let Some(c) = cur {
            if state[c] != NEW {
                break;
            }
            state[c] = ON_PATH;
            path.push(c);
            cur = dependency[c];
        }
        if let (Some(c), Some(&last)) = (cur, path.last())
            && state[c] == ON_PATH
        {
            cyclic[last] = true;
        }
        for &c in path.iter().rev() {
            state[c] = DONE;
            order.push(c);
        }
    }
    (order, cyclic)
}

/// Test helpers shared by the planner's and the comparison's tests: Feishu fixtures and an
/// in-memory store that checks what the real one would refuse.
#[cfg(test)]
pub(crate) mod testing {
    use std::collections::BTreeMap;

    use feishu::model as fs;

    use super::*;
    use crate::model::{DeletionThreshold, ExternalRef};
    use crate::snapshot::{Completeness, ScopeKind, SnapshotUser};

    pub const CONNECTION: &str = "conn-1";
    pub const POOL: &str = "pool-1";
    pub const NOW: Millis = 1_700_000_000_000;

    /// Sequential ids, unique across the test binary (plans build on earlier states).
    pub fn counter() -> impl FnMut() -> String {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(1);
        || format!("id{:06}", NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// Thresholds that never park.
    pub fn no_threshold() -> ConnectionSettings {
        ConnectionSettings {
            deletion_threshold: DeletionThreshold {
                max_fraction: 1.0,
                max_count: u64::MAX,
            },
            ..ConnectionSettings::default()
        }
    }

    pub fn plan_with(
        snapshot: &Snapshot,
        state: &ConnectionState,
        settings: &ConnectionSettings,
    ) -> Plan {
        let mut ids = counter();
        plan(
            snapshot,
            state,
            &ConnectionId::from(CONNECTION),
            &PoolId::from(POOL),
            settings,
            NOW,
            &mut ids,
        )
    }

    /// Plans without thresholds and applies.
    pub fn sync(snapshot: &Snapshot, state: &ConnectionState) -> (Plan, ConnectionState) {
        let p = plan_with(snapshot, state, &no_threshold());
        let next = apply_plan(state, &p);
        (p, next)
    }

    pub fn apply_plan(state: &ConnectionState, plan: &Plan) -> ConnectionState {
        let writes: Vec<Write> = plan.writes().cloned().collect();
        apply_writes_in_memory(state, &writes)
    }

    /// Applies writes one by one as the store would, panicking on what it must refuse or what
    /// would break the plan's promises: a stale `expected_version`, a version the planner
    /// guessed wrong, a reference to an object that does not exist yet, a relation without
    /// its object.
    pub fn apply_writes_in_memory(state: &ConnectionState, writes: &[Write]) -> ConnectionState {
        let mut users: BTreeMap<String, User> = state
            .users
            .iter()
            .map(|u| (u.id.0.clone(), u.clone()))
            .collect();
        let mut departments: BTreeMap<String, Department> = state
            .departments
            .iter()
            .map(|d| (d.id.0.clone(), d.clone()))
            .collect();
        let mut groups: BTreeMap<String, Group> = state
            .groups
            .iter()
            .map(|g| (g.id.0.clone(), g.clone()))
            .collect();
        let mut refs: BTreeMap<(String, ObjectKind, String), ExternalRef> = state
            .refs
            .iter()
            .map(|r| {
                (
                    (r.connection_id.0.clone(), r.kind, r.external_id.clone()),
                    r.clone(),
                )
            })
            .collect();

        fn check_version(what: &str, prev: Option<i64>, expected: Option<i64>, claimed: i64) {
            let prev = prev.unwrap_or(0);
            if let Some(e) = expected {
                assert_eq!(e, prev, "{what}: expected_version {e}, stored {prev}");
            }
            assert_eq!(claimed, prev + 1, "{what}: planner's version");
        }

        for w in writes {
            match w {
                Write::PutUser {
                    user,
                    expected_version,
                    ..
                } => {
                    let prev = users.get(&user.id.0);
                    check_version(
                        &format!("user {}", user.id),
                        prev.map(|p| p.version),
                        *expected_version,
                        user.version,
                    );
                    for m in &user.departments {
                        assert!(
                            departments.contains_key(&m.department_id.0),
                            "user {} references department {} before it exists",
                            user.id,
                            m.department_id
                        );
                    }
                    if let Some(m) = &user.manager_id {
                        assert!(
                            users.contains_key(&m.0),
                            "user {} references manager {m} before it exists",
                            user.id
                        );
                    }
                    assert!(
                        user.departments.iter().filter(|m| m.primary).count() <= 1,
                        "user {} has several primary departments",
                        user.id
                    );
                    let mut u = user.clone();
                    if let Some(p) = prev {
                        u.created_at = p.created_at;
                    }
                    users.insert(u.id.0.clone(), u);
                }
                Write::PutDepartment {
                    department,
                    expected_version,
                    ..
                } => {
                    let prev = departments.get(&department.id.0);
                    check_version(
                        &format!("department {}", department.id),
                        prev.map(|p| p.version),
                        *expected_version,
                        department.version,
                    );
                    if let Some(p) = &department.parent_id {
                        assert!(
                            departments.contains_key(&p.0),
                            "department {} references parent {p} before it exists",
                            department.id
                        );
                    }
                    for l in &department.leaders {
                        assert!(
                            users.contains_key(&l.user_id.0),
                            "department {} references leader {} before it exists",
                            department.id,
                            l.user_id
                        );
                    }
                    let mut d = department.clone();
                    if let Some(p) = prev {
                        d.created_at = p.created_at;
                    }
                    departments.insert(d.id.0.clone(), d);
                }
                Write::PutGroup {
                    group,
                    expected_version,
                    ..
                } => {
                    let prev = groups.get(&group.id.0);
                    check_version(
                        &format!("group {}", group.id),
                        prev.map(|p| p.version),
                        *expected_version,
                        group.version,
                    );
                    for m in &group.members {
                        let exists = match m {
                            GroupMember::User(u) => users.contains_key(&u.0),
                            GroupMember::Department(d) => departments.contains_key(&d.0),
                        };
                        assert!(
                            exists,
                            "group {} references {m:?} before it exists",
                            group.id
                        );
                    }
                    let mut w = group.members.clone();
                    w.sort();
                    w.dedup();
                    assert_eq!(w, group.members, "group members sorted and unique");
                    let mut g = group.clone();
                    if let Some(p) = prev {
                        g.created_at = p.created_at;
                    }
                    groups.insert(g.id.0.clone(), g);
                }
                Write::PutExternalRef(r) => {
                    let exists = match r.kind {
                        ObjectKind::User => users.contains_key(&r.object_id),
                        ObjectKind::Department => departments.contains_key(&r.object_id),
                        ObjectKind::Group => groups.contains_key(&r.object_id),
                    };
                    assert!(
                        exists,
                        "relation {} written before its object",
                        r.external_id
                    );
                    refs.insert(
                        (r.connection_id.0.clone(), r.kind, r.external_id.clone()),
                        r.clone(),
                    );
                }
            }
        }
        ConnectionState {
            users: users.into_values().collect(),
            departments: departments.into_values().collect(),
            groups: groups.into_values().collect(),
            refs: refs.into_values().collect(),
        }
    }

    // ---- Feishu fixtures --------------------------------------------------------------

    pub fn active() -> Option<fs::UserStatus> {
        Some(fs::UserStatus {
            is_frozen: Some(false),
            is_resigned: Some(false),
            is_activated: Some(true),
            is_exited: Some(false),
            is_unjoin: Some(false),
        })
    }

    pub fn resigned() -> Option<fs::UserStatus> {
        Some(fs::UserStatus {
            is_resigned: Some(true),
            ..active().unwrap_or_default()
        })
    }

    pub fn frozen() -> Option<fs::UserStatus> {
        Some(fs::UserStatus {
            is_frozen: Some(true),
            ..active().unwrap_or_default()
        })
    }

    pub fn dept(od: &str, parent: &str, name: &str) -> fs::Department {
        fs::Department {
            name: Some(name.to_owned()),
            parent_department_id: Some(parent.to_owned()),
            department_id: Some(format!("D{}", od.trim_start_matches("od-"))),
            open_department_id: Some(od.to_owned()),
            order: Some(10),
            leaders: Some(Vec::new()),
            ..Default::default()
        }
    }

    pub fn with_leader(mut d: fs::Department, open_id: &str) -> fs::Department {
        d.leaders = Some(vec![fs::DepartmentLeader {
            leader_type: Some(1),
            leader_id: Some(open_id.to_owned()),
        }]);
        d.leader_user_id = Some(open_id.to_owned());
        d
    }

    pub fn person(open_id: &str, name: &str, departments: &[&str]) -> fs::User {
        let tail = open_id.trim_start_matches("ou_");
        fs::User {
            open_id: Some(open_id.to_owned()),
            union_id: Some(format!("on_{tail}")),
            user_id: Some(format!("u{tail}")),
            name: Some(name.to_owned()),
            email: Some(format!("{tail}@example.com")),
            status: active(),
            department_ids: Some(departments.iter().map(|d| (*d).to_owned()).collect()),
            leader_user_id: Some(String::new()),
            ..Default::default()
        }
    }

    pub fn listed(user: fs::User) -> SnapshotUser {
        let listed_in = user.department_ids.clone().unwrap_or_default();
        SnapshotUser { user, listed_in }
    }

    pub fn group(id: &str, name: &str, users: &[&str], departments: &[&str]) -> SnapshotGroup {
        SnapshotGroup {
            group: fs::Group {
                id: Some(id.to_owned()),
                name: Some(name.to_owned()),
                kind: Some(1),
                group_id: Some(format!("G{id}")),
                ..Default::default()
            },
            users: users.iter().map(|u| (*u).to_owned()).collect(),
            departments: departments.iter().map(|d| (*d).to_owned()).collect(),
            members_complete: true,
        }
    }

    pub fn snapshot(
        departments: Vec<fs::Department>,
        users: Vec<fs::User>,
        groups: Vec<SnapshotGroup>,
    ) -> Snapshot {
        let mut s = Snapshot::empty(ScopeKind::All);
        for d in departments {
            let key = d.open_department_id.clone().unwrap_or_default();
            s.departments.insert(key, d);
        }
        for u in users {
            let key = u.open_id.clone().unwrap_or_default();
            s.users.insert(key, listed(u));
        }
        for g in groups {
            let key = g.group.id.clone().unwrap_or_default();
            s.groups.insert(key, g);
        }
        s.completeness = Completeness::FULL;
        s
    }

    // ---- reading the results ---------------------------------------------------------

    pub fn user_by<'s>(state: &'s ConnectionState, open_id: &str) -> &'s User {
        let r = state
            .refs
            .iter()
            .find(|r| r.kind == ObjectKind::User && r.external_id == open_id)
            .unwrap_or_else(|| panic!("no relation for {open_id}"));
        state
            .users
            .iter()
            .find(|u| u.id.0 == r.object_id)
            .unwrap_or_else(|| panic!("no user for {open_id}"))
    }

    pub fn department_by<'s>(state: &'s ConnectionState, od: &str) -> &'s Department {
        let r = state
            .refs
            .iter()
            .find(|r| r.kind == ObjectKind::Department && r.external_id == od)
            .unwrap_or_else(|| panic!("no relation for {od}"));
        state
            .departments
            .iter()
            .find(|d| d.id.0 == r.object_id)
            .unwrap_or_else(|| panic!("no department for {od}"))
    }

    pub fn group_by<'s>(state: &'s ConnectionState, id: &str) -> &'s Group {
        let r = state
            .refs
            .iter()
            .find(|r| r.kind == ObjectKind::Group && r.external_id == id)
            .unwrap_or_else(|| panic!("no relation for {id}"));
        state
            .groups
            .iter()
            .find(|g| g.id.0 == r.object_id)
            .unwrap_or_else(|| panic!("no group for {id}"))
    }

    pub fn ref_of<'s>(state: &'s ConnectionState, kind: ObjectKind, ext: &str) -> &'s ExternalRef {
        state
            .refs
            .iter()
            .find(|r| r.kind == kind && r.external_id == ext)
            .unwrap_or_else(|| panic!("no relation for {ext}"))
    }

    /// The steps about one object, as `(action, result)`.
    pub fn steps_of(plan: &Plan, ext: &str) -> Vec<(SyncAction, ActionResult)> {
        plan.steps
            .iter()
            .filter(|s| s.external_id == ext)
            .map(|s| (s.action, s.result))
            .collect()
    }

    pub fn step<'p>(plan: &'p Plan, ext: &str, action: SyncAction) -> &'p PlannedStep {
        plan.steps
            .iter()
            .find(|s| s.external_id == ext && s.action == action)
            .unwrap_or_else(|| panic!("no {action:?} step for {ext}: {:#?}", steps_of(plan, ext)))
    }

    /// The change kinds of a step's object puts.
    pub fn changes(step: &PlannedStep) -> Vec<ChangeKind> {
        step.writes
            .iter()
            .filter_map(|w| match w {
                Write::PutUser { change, .. }
                | Write::PutDepartment { change, .. }
                | Write::PutGroup { change, .. } => Some(*change),
                Write::PutExternalRef(_) => None,
            })
            .collect()
    }

    pub fn all_unchanged(plan: &Plan) -> bool {
        plan.steps
            .iter()
            .all(|s| s.action == SyncAction::Unchanged && s.writes.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use feishu::model as fs;

    use super::testing::*;
    use super::*;
    use crate::compare::{Difference, compare};
    use crate::model::{DeletionThreshold, GroupKind, LeaderKind};
    use crate::snapshot::{Completeness, SnapshotUser};

    use SyncAction::*;

    /// A small organisation exercising every ordering rule: a department whose key sorts
    /// before its parent's, a leader and a manager created later in the plan, a reporting
    /// cycle, a root user, a frozen user, a group of users and a department.
    fn org() -> Snapshot {
        let mut lead = person("ou_lead", "Lena", &["od-a"]);
        lead.leader_user_id = Some("ou_zed".into());
        let mut ann = person("ou_ann", "Ann", &["od-b", "od-0c"]);
        ann.leader_user_id = Some("ou_lead".into());
        ann.orders = Some(vec![
            fs::UserOrder {
                department_id: Some("od-b".into()),
                user_order: Some(1),
                department_order: Some(2),
                is_primary_dept: Some(false),
            },
            fs::UserOrder {
                department_id: Some("od-0c".into()),
                user_order: Some(3),
                department_order: Some(1),
                is_primary_dept: Some(true),
            },
        ]);
        let mut x = person("ou_x", "Xavier", &["od-s"]);
        x.leader_user_id = Some("ou_y".into());
        let mut y = person("ou_y", "Yara", &["od-s"]);
        y.leader_user_id = Some("ou_x".into());
        let mut frozen_user = person("ou_frozen", "Fred", &["od-s"]);
        frozen_user.status = frozen();
        snapshot(
            vec![
                with_leader(dept("od-a", "0", "Engineering"), "ou_lead"),
                dept("od-b", "od-a", "Backend"),
                dept("od-0c", "od-b", "Storage"),
                dept("od-s", "0", "Sales"),
            ],
            vec![
                lead,
                ann,
                person("ou_root", "Ron", &["0"]),
                x,
                y,
                person("ou_zed", "Zed", &["od-s"]),
                frozen_user,
            ],
            vec![group("g1", "Ops", &["ou_ann", "ou_lead"], &["od-s"])],
        )
    }

    fn imported() -> ConnectionState {
        sync(&org(), &ConnectionState::default()).1
    }

    fn count(plan: &Plan, action: SyncAction, result: ActionResult) -> usize {
        plan.steps
            .iter()
            .filter(|s| s.action == action && s.result == result)
            .count()
    }

    fn position(plan: &Plan, ext: &str, action: SyncAction) -> usize {
        plan.steps
            .iter()
            .position(|s| s.external_id == ext && s.action == action)
            .unwrap_or_else(|| panic!("no {action:?} for {ext}"))
    }

    #[test]
    fn first_import_creates_everything_in_dependency_order_then_nothing_changes() {
        let snap = org();
        let (p, state) = sync(&snap, &ConnectionState::default());
        assert_eq!(p.verdict_hint, Verdict::Complete);
        assert_eq!(count(&p, CreateDepartment, ActionResult::Applied), 4);
        assert_eq!(count(&p, CreateUser, ActionResult::Applied), 7);
        assert_eq!(count(&p, CreateGroup, ActionResult::Applied), 1);
        // od-a's leader is created with the users, so the leader is set after them.
        assert_eq!(count(&p, UpdateDepartmentLeader, ActionResult::Applied), 1);
        assert!(position(&p, "od-a", UpdateDepartmentLeader) > position(&p, "ou_lead", CreateUser));
        // The reporting cycle is closed by one later manager update.
        assert_eq!(count(&p, UpdateUser, ActionResult::Applied), 1);
        assert_eq!(p.steps.len(), 4 + 7 + 1 + 1 + 1);
        // Parents before children, whatever the key order; managers before reports.
        assert!(position(&p, "od-a", CreateDepartment) < position(&p, "od-b", CreateDepartment));
        assert!(position(&p, "od-b", CreateDepartment) < position(&p, "od-0c", CreateDepartment));
        assert!(position(&p, "ou_zed", CreateUser) < position(&p, "ou_lead", CreateUser));
        assert!(position(&p, "ou_lead", CreateUser) < position(&p, "ou_ann", CreateUser));
        assert!(position(&p, "ou_ann", CreateUser) < position(&p, "g1", CreateGroup));
        // Every created object comes with its sync relation.
        let create = step(&p, "ou_ann", CreateUser);
        assert_eq!(changes(create), [ChangeKind::UserCreated]);
        assert!(matches!(&create.writes[1], Write::PutExternalRef(r)
            if r.union_id.as_deref() == Some("on_ann") && r.custom_id.as_deref() == Some("uann")));
        assert_eq!(
            ref_of(&state, ObjectKind::Department, "od-b")
                .custom_id
                .as_deref(),
            Some("Db")
        );

        let ann = user_by(&state, "ou_ann");
        assert_eq!(ann.manager_id, Some(user_by(&state, "ou_lead").id.clone()));
        let primary: Vec<_> = ann.departments.iter().filter(|m| m.primary).collect();
        assert_eq!(primary[0].department_id, department_by(&state, "od-0c").id);
        assert!(user_by(&state, "ou_root").in_root);
        assert_eq!(user_by(&state, "ou_frozen").status, UserStatus::Frozen);
        assert_eq!(
            user_by(&state, "ou_x").manager_id,
            Some(user_by(&state, "ou_y").id.clone())
        );
        assert_eq!(
            user_by(&state, "ou_y").manager_id,
            Some(user_by(&state, "ou_x").id.clone())
        );
        assert_eq!(
            department_by(&state, "od-0c").parent_id,
            Some(department_by(&state, "od-b").id.clone())
        );
        assert_eq!(department_by(&state, "od-a").leaders.len(), 1);
        assert_eq!(group_by(&state, "g1").members.len(), 3);

        assert_eq!(compare(&snap, &state), vec![]);
        let again = plan_with(&snap, &state, &no_threshold());
        assert!(all_unchanged(&again), "{:#?}", again.steps);
        assert_eq!(again.steps.len(), 4 + 7 + 1);
        assert_eq!(again.counts()["Unchanged"]["applied"], 12);
    }

    #[test]
    fn every_kind_of_change_is_named_and_logged_with_its_change_kind() {
        let state = imported();
        let mut snap = org();
        {
            let ann = &mut snap.users.get_mut("ou_ann").unwrap().user;
            ann.name = Some("Ann B.".into());
            ann.email = Some("ann.b@example.com".into());
            ann.union_id = Some("on_ann_2".into());
            ann.user_id = Some("ann.b".into());
        }
        {
            let root = snap.users.get_mut("ou_root").unwrap();
            root.user.department_ids = Some(vec!["od-s".into()]);
        }
        snap.users.get_mut("ou_zed").unwrap().user.status = frozen();
        snap.users.get_mut("ou_frozen").unwrap().user.status = active();
        {
            let b = snap.departments.get_mut("od-b").unwrap();
            b.name = Some("Platform".into());
            b.parent_department_id = Some("od-s".into());
        }
        *snap.departments.get_mut("od-a").unwrap() =
            with_leader(dept("od-a", "0", "Engineering"), "ou_zed");
        {
            let g = snap.groups.get_mut("g1").unwrap();
            g.group.name = Some("Operations".into());
            g.users.insert("ou_root".into());
            g.departments.clear();
        }

        let p = plan_with(&snap, &state, &no_threshold());
        let s = step(&p, "ou_ann", UpdateUser);
        assert_eq!(s.reason.as_deref(), Some("name, email"));
        assert_eq!(changes(s), [ChangeKind::UserUpdated]);
        let s = step(&p, "ou_ann", UpdateUserIdentifier);
        assert_eq!(
            s.reason.as_deref(),
            Some("union_id on_ann → on_ann_2, user_id uann → ann.b")
        );
        assert_eq!(changes(s), [ChangeKind::UserIdentifierChanged]);
        assert_eq!(
            steps_of(&p, "ou_ann"),
            [
                (UpdateUserIdentifier, ActionResult::Applied),
                (UpdateUser, ActionResult::Applied)
            ]
        );
        let s = step(&p, "ou_root", ChangeUserDepartment);
        assert_eq!(s.reason.as_deref(), Some("joined od-s; left root"));
        assert_eq!(changes(s), [ChangeKind::UserDepartmentsChanged]);
        let s = step(&p, "ou_zed", DisableUser);
        assert_eq!(s.reason.as_deref(), Some("status active → frozen"));
        assert_eq!(changes(s), [ChangeKind::UserDisabled]);
        let s = step(&p, "ou_frozen", UpdateUser);
        assert_eq!(s.reason.as_deref(), Some("status frozen → active"));
        // Renamed and moved: two steps, each with its own change kind, versions chained.
        assert_eq!(
            steps_of(&p, "od-b"),
            [
                (UpdateDepartment, ActionResult::Applied),
                (MoveDepartment, ActionResult::Applied)
            ]
        );
        assert_eq!(
            changes(step(&p, "od-b", UpdateDepartment)),
            [ChangeKind::DepartmentUpdated]
        );
        let s = step(&p, "od-b", MoveDepartment);
        assert_eq!(changes(s), [ChangeKind::DepartmentMoved]);
        assert_eq!(s.reason.as_deref(), Some("parent od-a → od-s"));
        let s = step(&p, "od-a", UpdateDepartmentLeader);
        assert_eq!(s.reason.as_deref(), Some("leaders ou_lead → ou_zed"));
        assert_eq!(changes(s), [ChangeKind::DepartmentLeaderChanged]);
        // An existing leader is set in the department phase, before the users.
        assert!(position(&p, "od-a", UpdateDepartmentLeader) < position(&p, "ou_ann", UpdateUser));
        assert_eq!(step(&p, "g1", UpdateGroup).reason.as_deref(), Some("name"));
        assert_eq!(
            step(&p, "g1", AddGroupMember).reason.as_deref(),
            Some("ou_root")
        );
        assert_eq!(
            step(&p, "g1", RemoveGroupMember).reason.as_deref(),
            Some("od-s")
        );
        assert_eq!(
            changes(step(&p, "g1", RemoveGroupMember)),
            [ChangeKind::GroupMembersChanged]
        );
        assert_eq!(
            steps_of(&p, "ou_lead"),
            [(Unchanged, ActionResult::Applied)]
        );
        assert_eq!(steps_of(&p, "od-0c"), [(Unchanged, ActionResult::Applied)]);

        let next = apply_plan(&state, &p);
        assert_eq!(compare(&snap, &next), vec![]);
        assert_eq!(
            ref_of(&next, ObjectKind::User, "ou_ann")
                .union_id
                .as_deref(),
            Some("on_ann_2")
        );
        assert_eq!(user_by(&next, "ou_ann").version, 3);
        assert_eq!(department_by(&next, "od-b").version, 3);
        assert!(all_unchanged(&plan_with(&snap, &next, &no_threshold())));
    }

    #[test]
    fn omitted_fields_are_unknown_not_cleared() {
        let state = imported();
        let mut snap = org();
        for su in snap.users.values_mut() {
            // Permissions revoked: no e-mail, status, departments or user_id any more.
            su.user.email = None;
            su.user.status = None;
            su.user.department_ids = None;
            su.user.orders = None;
            su.user.user_id = None;
            su.user.leader_user_id = None;
        }
        for d in snap.departments.values_mut() {
            d.leaders = None;
            d.leader_user_id = None;
            d.parent_department_id = None;
            d.department_id = None;
        }
        let p = plan_with(&snap, &state, &no_threshold());
        assert!(all_unchanged(&p), "{:#?}", p.steps);
        assert_eq!(compare(&snap, &state), vec![]);
    }

    #[test]
    fn leavers_by_lookup_outcome() {
        let state = imported();
        let mut snap = org();
        for gone in ["ou_ann", "ou_root", "ou_x", "ou_zed", "ou_y"] {
            snap.users.remove(gone);
        }
        let mut ann = person("ou_ann", "Ann", &[]);
        ann.status = resigned();
        ann.department_ids = None;
        snap.leavers.insert(
            "ou_ann".into(),
            LeaverCheck::Resigned {
                user: Box::new(ann),
            },
        );
        snap.leavers.insert(
            "ou_root".into(),
            LeaverCheck::Present {
                user: Box::new(person("ou_root", "Ron", &["od-s", "od-elsewhere"])),
            },
        );
        snap.leavers.insert("ou_x".into(), LeaverCheck::OutOfScope);
        snap.leavers.insert(
            "ou_zed".into(),
            LeaverCheck::Failed {
                error: "HTTP 503".into(),
            },
        );
        // ou_y: absent and never looked up.

        let p = plan_with(&snap, &state, &no_threshold());
        let s = step(&p, "ou_ann", DisableUser);
        assert_eq!(s.result, ActionResult::Applied);
        assert_eq!(
            s.reason.as_deref(),
            Some(
                "status active → resigned (absent from the pull, confirmed by lookup); detached from 2 department(s)"
            )
        );
        assert_eq!(changes(s), [ChangeKind::UserDisabled]);
        let s = step(&p, "ou_root", ChangeUserDepartment);
        assert_eq!(
            s.reason.as_deref(),
            Some(
                "joined od-s; left root; ignored references outside the directory: department od-elsewhere"
            )
        );
        let s = step(&p, "ou_x", DeleteUser);
        assert_eq!(s.result, ActionResult::Applied);
        assert_eq!(changes(s), [ChangeKind::UserDeleted]);
        let s = step(&p, "ou_zed", DeleteUser);
        assert_eq!(s.result, ActionResult::Skipped);
        assert!(s.reason.as_deref().unwrap().contains("HTTP 503"));
        assert!(s.writes.is_empty());
        let s = step(&p, "ou_y", DeleteUser);
        assert_eq!(s.result, ActionResult::Skipped);
        assert!(s.reason.as_deref().unwrap().contains("not looked up"));
        // Deletions come last.
        let first_deletion = p.steps.iter().position(|s| s.action == DeleteUser).unwrap();
        assert!(
            p.steps[first_deletion..]
                .iter()
                .all(|s| s.action.is_deletion())
        );

        let next = apply_plan(&state, &p);
        let ann = user_by(&next, "ou_ann");
        assert_eq!(ann.status, UserStatus::Resigned);
        assert!(ann.departments.is_empty() && ann.deleted_at.is_none());
        let x = user_by(&next, "ou_x");
        assert_eq!(x.deleted_at, Some(NOW));
        assert!(x.departments.is_empty());
        assert_eq!(user_by(&next, "ou_zed").deleted_at, None);
        // ou_x was ou_y's manager and stays a tombstone; ou_y was not looked up.
        let diff = compare(&snap, &next);
        assert_eq!(diff.len(), 1, "{diff:#?}");
        assert!(
            matches!(&diff[0], Difference::ExtraInStore { external_id, .. } if external_id == "ou_y")
        );
        // The resigned user stays a record; a second run changes nothing.
        let again = plan_with(&snap, &next, &no_threshold());
        assert_eq!(again.writes().count(), 0);
        // Later pulls do not look the leaver up again (only live users are): its absence is
        // expected, not an unconfirmed deletion to log on every run.
        let mut later = snap.clone();
        later.leavers.remove("ou_ann");
        let p = plan_with(&later, &next, &no_threshold());
        assert_eq!(steps_of(&p, "ou_ann"), vec![]);
    }

    #[test]
    fn a_partial_snapshot_deletes_nothing_but_still_disables_confirmed_leavers() {
        let state = imported();
        let mut snap = org();
        snap.departments.remove("od-0c");
        snap.groups.clear();
        snap.users.remove("ou_x");
        snap.leavers.insert("ou_x".into(), LeaverCheck::OutOfScope);
        snap.users.remove("ou_y");
        let mut ann = snap.users.remove("ou_ann").unwrap().user;
        ann.status = resigned();
        snap.leavers.insert(
            "ou_ann".into(),
            LeaverCheck::Resigned {
                user: Box::new(ann),
            },
        );
        snap.completeness.users = false;
        let strict = ConnectionSettings {
            deletion_threshold: DeletionThreshold {
                max_fraction: 0.0,
                max_count: 0,
            },
            ..ConnectionSettings::default()
        };
        let p = plan_with(&snap, &state, &strict);
        assert_eq!(p.verdict_hint, Verdict::Partial);
        let partial = "snapshot partial (users incomplete): no deletions";
        for (ext, action) in [
            ("od-0c", DeleteDepartment),
            ("g1", DeleteGroup),
            ("ou_x", DeleteUser),
            ("ou_y", DeleteUser),
        ] {
            let s = step(&p, ext, action);
            assert_eq!(s.result, ActionResult::Skipped, "{ext}");
            assert_eq!(s.reason.as_deref(), Some(partial));
            assert!(s.writes.is_empty());
        }
        assert_eq!(
            step(&p, "ou_ann", DisableUser).result,
            ActionResult::Applied
        );
        let next = apply_plan(&state, &p);
        assert!(next.users.iter().all(|u| u.deleted_at.is_none()));
        assert!(next.departments.iter().all(|d| d.deleted_at.is_none()));
        assert!(next.groups.iter().all(|g| g.deleted_at.is_none()));
        // ann kept her membership of the department that may be gone? No: she resigned.
        assert!(user_by(&next, "ou_ann").departments.is_empty());
    }

    /// A bigger organisation for threshold arithmetic: `n` leaf departments under one root
    /// department, one user in each, one group per department.
    fn wide(n: usize) -> Snapshot {
        let mut departments = vec![dept("od-top", "0", "Top")];
        let mut users = Vec::new();
        let mut groups = Vec::new();
        for i in 0..n {
            let od = format!("od-{i:02}");
            departments.push(dept(&od, "od-top", &format!("Team {i}")));
            users.push(person(
                &format!("ou_{i:02}"),
                &format!("User {i}"),
                &["od-top"],
            ));
            groups.push(group(&format!("g{i:02}"), &format!("G{i}"), &[], &[]));
        }
        snapshot(departments, users, groups)
    }

    #[test]
    fn thresholds_park_all_deletions_of_a_type_and_the_rest_applies() {
        let state = sync(&wide(20), &ConnectionState::default()).1;
        let mut snap = wide(20);
        for od in ["od-00", "od-01", "od-02"] {
            snap.departments.remove(od);
        }
        snap.users.remove("ou_00");
        snap.leavers.insert("ou_00".into(), LeaverCheck::OutOfScope);
        snap.groups.remove("g00");
        snap.users.get_mut("ou_05").unwrap().user.name = Some("Renamed".into());

        let settings = ConnectionSettings {
            deletion_threshold: DeletionThreshold {
                max_fraction: 0.5,
                max_count: 2,
            },
            ..ConnectionSettings::default()
        };
        let p = plan_with(&snap, &state, &settings);
        assert_eq!(count(&p, DeleteDepartment, ActionResult::Parked), 3);
        let reason = step(&p, "od-01", DeleteDepartment).reason.clone().unwrap();
        assert!(
            reason.contains("3 department deletions exceed the threshold (at most 2 and at most 50% of 21 live = 10)"),
            "{reason}"
        );
        assert_eq!(step(&p, "ou_00", DeleteUser).result, ActionResult::Applied);
        assert_eq!(step(&p, "g00", DeleteGroup).result, ActionResult::Applied);
        assert_eq!(step(&p, "ou_05", UpdateUser).result, ActionResult::Applied);
        assert!(p.parked().all(|s| s.writes.is_empty()));
        let parked = p.parked_deletions(&JobId::from("job"), NOW);
        assert_eq!(parked.len(), 3);
        assert_eq!(parked[0].kind, ObjectKind::Department);
        assert_eq!(parked[0].state, ParkedState::Pending);
        assert_eq!(p.counts()["DeleteDepartment"]["parked"], 3);

        let next = apply_plan(&state, &p);
        assert!(department_by(&next, "od-01").deleted_at.is_none());
        assert!(user_by(&next, "ou_00").deleted_at.is_some());
        assert_eq!(
            user_by(&next, "ou_05").profile.name.as_deref(),
            Some("Renamed")
        );

        // The fraction alone: 1 of 20 groups is more than 2% of them.
        let fraction = ConnectionSettings {
            deletion_threshold: DeletionThreshold {
                max_fraction: 0.02,
                max_count: 100,
            },
            ..ConnectionSettings::default()
        };
        let mut snap = wide(20);
        snap.groups.remove("g00");
        let p = plan_with(&snap, &state, &fraction);
        assert_eq!(step(&p, "g00", DeleteGroup).result, ActionResult::Parked);
    }

    #[test]
    fn a_deleted_department_detaches_its_members() {
        let state = imported();
        let mut snap = org();
        snap.departments.remove("od-0c");
        // An inconsistent listing still naming it, and a member whose lookup failed.
        let mut storage_only = person("ou_st", "Stu", &["od-0c"]);
        storage_only.leader_user_id = None;
        let (_, state) = {
            let mut first = org();
            first.users.insert("ou_st".into(), listed(storage_only));
            sync(&first, &state)
        };
        snap.leavers.insert(
            "ou_st".into(),
            LeaverCheck::Failed {
                error: "timeout".into(),
            },
        );
        snap.groups.get_mut("g1").unwrap().members_complete = false;
        let p = plan_with(&snap, &state, &no_threshold());
        assert_eq!(
            step(&p, "od-0c", DeleteDepartment).result,
            ActionResult::Applied
        );
        let s = step(&p, "ou_st", ChangeUserDepartment);
        assert_eq!(s.reason.as_deref(), Some("left od-0c (department deleted)"));
        let s = step(&p, "ou_ann", ChangeUserDepartment);
        assert!(
            s.reason.as_deref().unwrap().starts_with("left od-0c"),
            "{:?}",
            s.reason
        );
        let next = apply_plan(&state, &p);
        let storage = department_by(&next, "od-0c").id.clone();
        assert!(
            next.users
                .iter()
                .filter(|u| u.deleted_at.is_none())
                .all(|u| u.departments.iter().all(|m| m.department_id != storage))
        );
        // ann's primary department was Storage: none is primary now (Feishu said so).
        assert!(
            user_by(&next, "ou_ann")
                .departments
                .iter()
                .all(|m| !m.primary)
        );
    }

    #[test]
    fn tombstoned_objects_present_again_are_restored() {
        let state = imported();
        let mut gone = org();
        gone.departments.remove("od-0c");
        gone.groups.clear();
        gone.users.remove("ou_root");
        gone.leavers
            .insert("ou_root".into(), LeaverCheck::OutOfScope);
        {
            let ann = gone.users.get_mut("ou_ann").unwrap();
            ann.user.department_ids = Some(vec!["od-b".into()]);
            ann.user.orders = None;
            ann.listed_in = vec!["od-b".into()];
        }
        let (_, state) = sync(&gone, &state);
        assert!(department_by(&state, "od-0c").deleted_at.is_some());
        assert!(user_by(&state, "ou_root").deleted_at.is_some());
        assert!(group_by(&state, "g1").deleted_at.is_some());
        // Tombstones still absent: nothing to do.
        let p = plan_with(&gone, &state, &no_threshold());
        assert_eq!(p.writes().count(), 0);
        assert!(steps_of(&p, "od-0c").is_empty());

        let back = org();
        let p = plan_with(&back, &state, &no_threshold());
        let s = step(&p, "od-0c", UpdateDepartment);
        assert_eq!(
            s.reason.as_deref(),
            Some("restored: present in Feishu again")
        );
        let s = step(&p, "ou_root", UpdateUser);
        assert_eq!(
            s.reason.as_deref(),
            Some("restored: present in Feishu again")
        );
        assert_eq!(
            step(&p, "ou_root", ChangeUserDepartment).reason.as_deref(),
            Some("joined root")
        );
        let s = step(&p, "g1", UpdateGroup);
        assert_eq!(
            s.reason.as_deref(),
            Some("restored: present in Feishu again")
        );
        let next = apply_plan(&state, &p);
        assert_eq!(compare(&back, &next), vec![]);
        assert!(next.users.iter().all(|u| u.deleted_at.is_none()));
    }

    #[test]
    fn bad_records_fail_alone() {
        let mut snap = org();
        // A parent cycle, a department under it, a user in it.
        snap.departments
            .insert("od-p".into(), dept("od-p", "od-q", "P"));
        snap.departments
            .insert("od-q".into(), dept("od-q", "od-p", "Q"));
        snap.departments
            .insert("od-r".into(), dept("od-r", "od-q", "R"));
        snap.users
            .insert("ou_c".into(), listed(person("ou_c", "Cy", &["od-r"])));
        snap.groups
            .get_mut("g1")
            .unwrap()
            .users
            .insert("ou_c".into());
        // A first-level department of a partial scope: its parent is not readable.
        snap.departments
            .insert("od-seed".into(), dept("od-seed", "od-hidden", "Seed"));

        let (p, state) = sync(&snap, &ConnectionState::default());
        let s = step(&p, "od-p", CreateDepartment);
        assert_eq!(s.result, ActionResult::Failed);
        assert_eq!(
            s.reason.as_deref(),
            Some("parent cycle in the snapshot: od-p → od-q → od-p")
        );
        let s = step(&p, "od-r", CreateDepartment);
        assert_eq!(s.result, ActionResult::Failed);
        assert!(
            s.reason
                .as_deref()
                .unwrap()
                .starts_with("ancestor od-q is in a parent cycle")
        );
        let s = step(&p, "ou_c", CreateUser);
        assert_eq!(s.result, ActionResult::Failed);
        assert!(
            s.reason
                .as_deref()
                .unwrap()
                .starts_with("department od-r could not be planned")
        );
        let s = step(&p, "od-seed", CreateDepartment);
        assert_eq!(s.result, ActionResult::Applied);
        assert_eq!(
            s.reason.as_deref(),
            Some("ignored references outside the directory: parent od-hidden")
        );
        assert!(
            step(&p, "g1", CreateGroup)
                .reason
                .as_deref()
                .unwrap()
                .contains("member user ou_c")
        );
        assert_eq!(count(&p, CreateUser, ActionResult::Applied), 7);
        assert_eq!(department_by(&state, "od-seed").parent_id, None);
        let diff: Vec<String> = compare(&snap, &state)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            diff,
            [
                "department od-p (P): in Feishu, missing in the store",
                "department od-q (Q): in Feishu, missing in the store",
                "department od-r (R): in Feishu, missing in the store",
                "user ou_c (Cy): in Feishu, missing in the store",
            ]
        );
    }

    #[test]
    fn department_leaders_and_group_kinds_round_trip() {
        let mut snap = org();
        let a = snap.departments.get_mut("od-a").unwrap();
        a.leaders = Some(vec![
            fs::DepartmentLeader {
                leader_type: Some(1),
                leader_id: Some("ou_lead".into()),
            },
            fs::DepartmentLeader {
                leader_type: Some(2),
                leader_id: Some("ou_ann".into()),
            },
        ]);
        snap.groups.get_mut("g1").unwrap().group.kind = Some(2);
        let (_, state) = sync(&snap, &ConnectionState::default());
        let a = department_by(&state, "od-a");
        assert_eq!(a.leaders.len(), 2);
        assert_eq!(a.leaders[1].kind, LeaderKind::Deputy);
        assert_eq!(group_by(&state, "g1").kind, GroupKind::Dynamic);
        assert_eq!(compare(&snap, &state), vec![]);
    }

    #[test]
    fn log_entries_carry_the_step() {
        let (p, _) = sync(&org(), &ConnectionState::default());
        let e = p.steps[0].log_entry(&JobId::from("j"), 5);
        assert_eq!(e.action, CreateDepartment);
        assert_eq!(e.result, ActionResult::Applied);
        assert_eq!(e.external_id, p.steps[0].external_id);
        assert_eq!(e.object_id, p.steps[0].object_id);
        assert_eq!(e.seq, 0);
        assert_eq!(e.at, 5);
    }

    // ---- scale ---------------------------------------------------------------------------

    /// `users` users in `departments` departments (a tree of fan-out 8), managers in chains.
    fn large(users: usize, departments: usize) -> Snapshot {
        let mut s = snapshot(Vec::new(), Vec::new(), Vec::new());
        for i in 0..departments {
            let parent = if i == 0 {
                "0".to_owned()
            } else {
                format!("od-{}", (i - 1) / 8)
            };
            let od = format!("od-{i}");
            s.departments
                .insert(od.clone(), dept(&od, &parent, &format!("D{i}")));
        }
        for i in 0..users {
            let d1 = format!("od-{}", i % departments);
            let d2 = format!("od-{}", (i * 7) % departments);
            let mut u = person(&format!("ou_{i}"), &format!("User {i}"), &[&d1, &d2]);
            if i % 10 != 0 {
                u.leader_user_id = Some(format!("ou_{}", i - i % 10));
            }
            s.users.insert(
                format!("ou_{i}"),
                SnapshotUser {
                    listed_in: vec![d1, d2],
                    user: u,
                },
            );
        }
        for g in 0..20 {
            let members = (0..users).step_by(97).skip(g).map(|i| format!("ou_{i}"));
            let mut sg = group(&format!("g{g}"), "G", &[], &[]);
            sg.users = members.collect();
            s.groups.insert(format!("g{g}"), sg);
        }
        s
    }

    /// In a debug build this only shows it completes. For timings:
    /// `PLAN_BENCH=1 cargo test --release -p directory plans_100k -- --nocapture`.
    #[test]
    fn plans_100k_users() {
        let snap = large(100_000, 5_000);
        let started = Instant::now();
        let p = plan_with(&snap, &ConnectionState::default(), &no_threshold());
        let first = started.elapsed();
        assert_eq!(count(&p, CreateUser, ActionResult::Applied), 100_000);
        assert_eq!(count(&p, CreateDepartment, ActionResult::Applied), 5_000);
        let state = apply_plan(&ConnectionState::default(), &p);
        let started = Instant::now();
        let again = plan_with(&snap, &state, &no_threshold());
        let second = started.elapsed();
        if std::env::var("PLAN_BENCH").is_ok() {
            // On-CPU time of this thread, less disturbed by a busy machine than wall time.
            let cpu = || {
                std::fs::read_to_string("/proc/thread-self/schedstat")
                    .ok()
                    .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
                    .map_or(0.0, |ns| ns as f64 / 1e6)
            };
            for _ in 0..5 {
                let (c, started) = (cpu(), Instant::now());
                let p = plan_with(&snap, &state, &no_threshold());
                eprintln!(
                    "reconcile {:?} wall, {:.0} ms cpu",
                    started.elapsed(),
                    cpu() - c
                );
                drop(p);
                let (c, started) = (cpu(), Instant::now());
                let p = plan_with(&snap, &ConnectionState::default(), &no_threshold());
                eprintln!(
                    "import {:?} wall, {:.0} ms cpu",
                    started.elapsed(),
                    cpu() - c
                );
                drop(p);
            }
        }
        assert!(all_unchanged(&again));
        eprintln!("planning 100k users / 5k departments: import {first:?}, reconcile {second:?}");
    }

    // ---- properties ------------------------------------------------------------------------

    mod property {
        use proptest::prelude::*;
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};

        use super::*;

        const DEPARTMENTS: usize = 8;
        const USERS: usize = 14;
        const GROUPS: usize = 4;

        fn od(i: usize) -> String {
            format!("od-{i}")
        }
        fn ou(i: usize) -> String {
            format!("ou_{i}")
        }

        fn maybe<T>(rng: &mut StdRng, p: f64, v: impl FnOnce(&mut StdRng) -> T) -> Option<T> {
            if rng.random_bool(p) {
                Some(v(rng))
            } else {
                None
            }
        }

        fn pick<'s>(rng: &mut StdRng, items: &'s [&'s str]) -> String {
            items[rng.random_range(0..items.len())].to_owned()
        }

        fn random_user(rng: &mut StdRng, i: usize, present: &[usize]) -> SnapshotUser {
            let mut departments: Vec<String> = present
                .iter()
                .filter(|_| rng.random_bool(0.3))
                .map(|d| od(*d))
                .collect();
            if rng.random_bool(0.2) {
                departments.push("0".into());
            }
            if rng.random_bool(0.1) {
                departments.push(od(rng.random_range(0..DEPARTMENTS + 2)));
            }
            let status = maybe(rng, 0.8, |r| fs::UserStatus {
                is_frozen: Some(r.random_bool(0.15)),
                is_resigned: Some(r.random_bool(0.08)),
                is_activated: Some(true),
                is_exited: Some(r.random_bool(0.05)),
                is_unjoin: Some(r.random_bool(0.05)),
            });
            let orders = if rng.random_bool(0.4) {
                let mut orders = Vec::new();
                for d in &departments {
                    if rng.random_bool(0.8) {
                        orders.push(fs::UserOrder {
                            department_id: Some(d.clone()),
                            user_order: maybe(rng, 0.7, |r| r.random_range(0..3)),
                            department_order: maybe(rng, 0.7, |r| r.random_range(0..3)),
                            is_primary_dept: maybe(rng, 0.7, |r| r.random_bool(0.4)),
                        });
                    }
                }
                Some(orders)
            } else {
                None
            };
            let user = fs::User {
                open_id: Some(ou(i)),
                union_id: maybe(rng, 0.8, |r| pick(r, &["on_a", "on_b"]) + &i.to_string()),
                user_id: maybe(rng, 0.6, |r| pick(r, &["x", "y", ""]) + &i.to_string()),
                name: maybe(rng, 0.8, |r| pick(r, &["Ann", "Bo", "Cy"])),
                email: maybe(rng, 0.5, |r| pick(r, &["a@x", "b@x", ""])),
                mobile: maybe(rng, 0.3, |r| pick(r, &["+1", "+2"])),
                avatar: maybe(rng, 0.3, |r| fs::Avatar {
                    avatar_240: Some(pick(r, &["s1", "s2"])),
                    avatar_origin: maybe(r, 0.5, |r| pick(r, &["o1", "o2"])),
                    ..Default::default()
                }),
                status,
                is_frozen: maybe(rng, 0.3, |r| r.random_bool(0.3)),
                department_ids: if rng.random_bool(0.7) {
                    Some(departments.clone())
                } else {
                    None
                },
                orders,
                leader_user_id: maybe(rng, 0.6, |r| {
                    if r.random_bool(0.2) {
                        String::new()
                    } else {
                        ou(r.random_range(0..USERS + 2))
                    }
                }),
                job_title: maybe(rng, 0.3, |r| pick(r, &["dev", "ops"])),
                ..Default::default()
            };
            let listed_in = departments
                .into_iter()
                .filter(|_| rng.random_bool(0.9))
                .collect();
            SnapshotUser { user, listed_in }
        }

        fn random_department(rng: &mut StdRng, i: usize) -> fs::Department {
            let parent = if i == 0 || rng.random_bool(0.3) {
                "0".to_owned()
            } else {
                od(rng.random_range(0..i))
            };
            let leader = |r: &mut StdRng| fs::DepartmentLeader {
                leader_type: Some(r.random_range(1..4)),
                leader_id: Some(ou(r.random_range(0..USERS + 2))),
            };
            let leaders = maybe(rng, 0.4, |r| {
                let n = r.random_range(0..3);
                (0..n).map(|_| leader(r)).collect()
            });
            fs::Department {
                open_department_id: Some(od(i)),
                name: maybe(rng, 0.8, |r| pick(r, &["Eng", "Ops", "Sales"])),
                i18n_name: maybe(rng, 0.2, |r| fs::I18nName {
                    en_us: Some(pick(r, &["Eng", "Ops"])),
                    ..Default::default()
                }),
                parent_department_id: maybe(rng, 0.9, |_| parent),
                department_id: maybe(rng, 0.7, |r| pick(r, &["D1", "D2"]) + &i.to_string()),
                order: maybe(rng, 0.7, |r| r.random_range(0..3)),
                chat_id: maybe(rng, 0.3, |r| pick(r, &["oc_1", "oc_2"])),
                leader_user_id: if leaders.is_none() {
                    maybe(rng, 0.4, |r| {
                        if r.random_bool(0.2) {
                            String::new()
                        } else {
                            ou(r.random_range(0..USERS + 2))
                        }
                    })
                } else {
                    None
                },
                leaders,
                status: if rng.random_bool(0.05) {
                    Some(fs::DepartmentStatus {
                        is_deleted: Some(true),
                    })
                } else {
                    None
                },
                ..Default::default()
            }
        }

        /// A random pull of a random tenant, with a lookup for every live stored user the pull
        /// did not list (as the import does).
        fn random_snapshot(rng: &mut StdRng, state: &ConnectionState, full: bool) -> Snapshot {
            let mut s = snapshot(Vec::new(), Vec::new(), Vec::new());
            let present: Vec<usize> = (0..DEPARTMENTS).filter(|_| rng.random_bool(0.75)).collect();
            for &i in &present {
                s.departments.insert(od(i), random_department(rng, i));
            }
            for i in 0..USERS {
                if rng.random_bool(0.7) {
                    s.users.insert(ou(i), random_user(rng, i, &present));
                }
            }
            for g in 0..GROUPS {
                if !rng.random_bool(0.7) {
                    continue;
                }
                let users = (0..USERS + 2)
                    .filter(|_| rng.random_bool(0.3))
                    .map(ou)
                    .collect();
                let departments = (0..DEPARTMENTS + 1)
                    .filter(|_| rng.random_bool(0.2))
                    .map(od)
                    .collect();
                s.groups.insert(
                    format!("g{g}"),
                    SnapshotGroup {
                        group: fs::Group {
                            id: Some(format!("g{g}")),
                            name: maybe(rng, 0.8, |r| pick(r, &["G", "H"])),
                            description: maybe(rng, 0.3, |r| pick(r, &["d", "e"])),
                            kind: maybe(rng, 0.8, |r| r.random_range(1..4)),
                            group_id: maybe(rng, 0.5, |r| pick(r, &["c1", "c2"])),
                            ..Default::default()
                        },
                        users,
                        departments,
                        members_complete: rng.random_bool(0.7),
                    },
                );
            }
            for r in state.refs.iter().filter(|r| r.kind == ObjectKind::User) {
                let live = state
                    .users
                    .iter()
                    .any(|u| u.id.0 == r.object_id && u.deleted_at.is_none());
                if !live || s.users.contains_key(&r.external_id) {
                    continue;
                }
                let i: usize = r.external_id.trim_start_matches("ou_").parse().unwrap_or(0);
                let check = match rng.random_range(0..4) {
                    0 => {
                        let mut u = random_user(rng, i, &present).user;
                        if rng.random_bool(0.7) {
                            u.status = resigned();
                        }
                        LeaverCheck::Resigned { user: Box::new(u) }
                    }
                    1 => LeaverCheck::Present {
                        user: Box::new(random_user(rng, i, &present).user),
                    },
                    2 => LeaverCheck::OutOfScope,
                    _ => LeaverCheck::Failed {
                        error: "HTTP 500".into(),
                    },
                };
                s.leavers.insert(r.external_id.clone(), check);
            }
            s.completeness = if full {
                Completeness::FULL
            } else {
                loop {
                    let c = Completeness {
                        departments: rng.random_bool(0.5),
                        users: rng.random_bool(0.5),
                        groups: rng.random_bool(0.5),
                    };
                    if !c.is_full() {
                        break c;
                    }
                }
            };
            s
        }

        /// A stored state reached by syncing a few random pulls (so it holds tombstones,
        /// resigned records and restored objects).
        fn random_state(rng: &mut StdRng) -> ConnectionState {
            let mut state = ConnectionState::default();
            for _ in 0..rng.random_range(0..3) {
                let snap = random_snapshot(rng, &state, true);
                state = sync(&snap, &state).1;
            }
            state
        }

        fn live_ids(state: &ConnectionState) -> HashSet<String> {
            state
                .users
                .iter()
                .filter(|u| u.deleted_at.is_none())
                .map(|u| u.id.0.clone())
                .chain(
                    state
                        .departments
                        .iter()
                        .filter(|d| d.deleted_at.is_none())
                        .map(|d| d.id.0.clone()),
                )
                .chain(
                    state
                        .groups
                        .iter()
                        .filter(|g| g.deleted_at.is_none())
                        .map(|g| g.id.0.clone()),
                )
                .collect()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(400))]

            #[test]
            fn a_complete_pull_makes_the_store_equal_to_feishu(seed in any::<u64>()) {
                let mut rng = StdRng::seed_from_u64(seed);
                let state = random_state(&mut rng);
                let snap = random_snapshot(&mut rng, &state, true);
                let (p, next) = sync(&snap, &state);
                prop_assert!(p.steps.iter().all(|s| s.result != ActionResult::Failed));
                let diff = compare(&snap, &next);
                prop_assert!(diff.is_empty(), "{:#?}", diff);
                let again = plan_with(&snap, &next, &no_threshold());
                prop_assert_eq!(again.writes().count(), 0, "{:#?}", again.steps);
            }

            #[test]
            fn a_partial_pull_deletes_nothing(seed in any::<u64>()) {
                let mut rng = StdRng::seed_from_u64(seed);
                let state = random_state(&mut rng);
                let snap = random_snapshot(&mut rng, &state, false);
                let (p, next) = sync(&snap, &state);
                prop_assert_eq!(p.verdict_hint, Verdict::Partial);
                prop_assert!(p
                    .steps
                    .iter()
                    .all(|s| !s.action.is_deletion() || s.result == ActionResult::Skipped));
                let before = live_ids(&state);
                let after = live_ids(&next);
                prop_assert!(before.is_subset(&after));
            }
        }
    }
}
