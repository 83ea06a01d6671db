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

mod deletions;
mod departments;
mod groups;
mod index;
mod resolve;
pub mod steps;
mod users;

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use feishu::model as fs;

use crate::ids::{ConnectionId, DepartmentId, JobId, Millis, PoolId, UserId};
use crate::merge::Listing;
use crate::model::{
    ActionLogEntry, ActionResult, ConnectionSettings, ExternalRef, ObjectKind, ParkedDeletion,
    ParkedState, SyncAction, User, Verdict,
};
use crate::snapshot::Snapshot;
use crate::store::{ConnectionState, Write};

use index::{Ids, Index, Map, Set, Stored};
use steps::Names;

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

fn live_snapshot_departments(
    snapshot: &Snapshot,
) -> impl Iterator<Item = (&String, &fs::Department)> {
    // Feishu may list a department it has just deleted: that is an absence.
    snapshot.departments.iter().filter(|(_, d)| !d.is_deleted())
}

/// Names objects in reasons by their Feishu id: stored ones through the index, created ones
/// through the resolver.
struct PlanNames<'p, 'a> {
    index: &'p Index<'a>,
    ids: &'p Ids<'a>,
}

impl Names for PlanNames<'_, '_> {
    fn user(&self, id: &UserId) -> String {
        let ext = self.index.users.ext_by_id.get(id.as_str());
        ext.or_else(|| self.ids.new_users.get(id.as_str()))
            .map_or_else(|| id.0.clone(), |e| (*e).to_owned())
    }

    fn department(&self, id: &DepartmentId) -> String {
        let ext = self.index.departments.ext_by_id.get(id.as_str());
        ext.or_else(|| self.ids.new_departments.get(id.as_str()))
            .map_or_else(|| id.0.clone(), |e| (*e).to_owned())
    }
}

/// `Steps` over the planner's names, borrowing only the fields it reads, so that the caller
/// can push to `$self.steps` meanwhile.
macro_rules! builder {
    ($self:ident, $names:ident) => {
        let $names = crate::plan::PlanNames {
            index: &$self.index,
            ids: &$self.ids,
        };
        let $names = crate::plan::steps::Steps {
            connection_id: $self.connection_id,
            now: $self.now,
            names: &$names,
        };
    };
}
pub(crate) use builder;

impl<'a> Planner<'a, '_> {
    fn fresh(&mut self) -> String {
        (self.new_id)()
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
}
