//! The step builder: the steps that carry out one object's change, and nothing else. The
//! reconciliation planner, the event worker and the approval of a parked deletion all build
//! their writes here, so a Feishu change gives the same steps, change-log kinds and objects
//! whichever path found it (docs/write-path.md).
//!
//! Pure: the caller merges the Feishu object (crate::merge), resolves references, orders the
//! objects and decides deletions; a builder compares one object with what is stored and
//! emits its steps (see the module rules of [`crate::plan`]):
//!
//! - users: `UpdateUserIdentifier` → `UpdateUser` → `ChangeUserDepartment` → `DisableUser`;
//! - departments: `UpdateDepartment` → `MoveDepartment` → `UpdateDepartmentLeader`;
//! - groups: `UpdateGroup` → `AddGroupMember` → `RemoveGroupMember`;
//! - a deletion: its dependents detached (members of a department lose the membership, groups
//!   lose the member), then the tombstone.

use std::collections::HashSet;
use std::fmt::Write as _;

use crate::ids::{ConnectionId, DepartmentId, Millis, UserId};
use crate::merge::{self, DepartmentField, GroupField, Unresolved, UserField};
use crate::model::{
    ActionResult, Department, ExternalRef, Group, GroupMember, Leader, LeaderKind, ObjectKind,
    SyncAction, User, UserStatus,
};
use crate::snapshot::ROOT;
use crate::store::{ChangeKind, Write};

use super::PlannedStep;

/// Names objects in reasons: the Feishu id where the caller knows it, else the orgsync id.
pub trait Names: Sync {
    fn user(&self, id: &UserId) -> String;
    fn department(&self, id: &DepartmentId) -> String;
    fn member(&self, m: &GroupMember) -> String {
        match m {
            GroupMember::User(u) => self.user(u),
            GroupMember::Department(d) => self.department(d),
        }
    }
}

/// Names every object by its orgsync id (when the caller knows no Feishu ids).
pub struct ByObjectId;

impl Names for ByObjectId {
    fn user(&self, id: &UserId) -> String {
        id.0.clone()
    }
    fn department(&self, id: &DepartmentId) -> String {
        id.0.clone()
    }
}

/// The chained `expected_version` of successive puts of one object.
#[derive(Debug, Clone, Copy)]
pub struct Chain {
    pub expected: i64,
}

impl Chain {
    /// Puts of an object stored at `version` (0 = not stored yet).
    pub fn from(version: i64) -> Self {
        Self { expected: version }
    }

    fn next(&mut self) -> (i64, i64) {
        let expected = self.expected;
        self.expected += 1;
        (expected, expected + 1)
    }
}

/// A department whose leaders are users created later in the same plan: its
/// `UpdateDepartmentLeader` step is built once they exist ([`Steps::leaders_later`]).
#[derive(Debug)]
pub struct DeferredLeaders {
    /// The department with its final leaders.
    pub department: Department,
    /// Its version before the deferred step.
    pub version: i64,
    pub external_id: String,
    /// The leaders before (stored ones; none for a created department).
    pub before: Vec<Leader>,
}

/// One user's change: what is stored, and the Feishu identifiers of the new state.
pub struct UserChange<'a> {
    pub external_id: &'a str,
    pub existing: Option<&'a User>,
    pub existing_ref: Option<&'a ExternalRef>,
    pub union_id: Option<&'a str>,
    pub user_id: Option<&'a str>,
    /// A leaver confirmed by a look-up (named in the reason).
    pub resigned_by_lookup: bool,
}

/// One department's or group's change: what is stored and its custom id in Feishu.
pub struct ObjectChange<'a, T> {
    pub external_id: &'a str,
    pub existing: Option<&'a T>,
    pub existing_ref: Option<&'a ExternalRef>,
    /// `department_id` of a department, the custom group id of a group.
    pub custom_id: Option<&'a str>,
}

/// A stored object to delete.
#[derive(Debug, Clone, Copy)]
pub enum Doomed<'a> {
    User(&'a User),
    Department(&'a Department),
    Group(&'a Group),
}

impl Doomed<'_> {
    pub fn kind(&self) -> ObjectKind {
        match self {
            Self::User(_) => ObjectKind::User,
            Self::Department(_) => ObjectKind::Department,
            Self::Group(_) => ObjectKind::Group,
        }
    }

    fn id(&self) -> &str {
        match self {
            Self::User(u) => u.id.as_str(),
            Self::Department(d) => d.id.as_str(),
            Self::Group(g) => g.id.as_str(),
        }
    }

    fn name(&self) -> Option<&String> {
        match self {
            Self::User(u) => u.profile.name.as_ref(),
            Self::Department(d) => d.name.as_ref(),
            Self::Group(g) => g.name.as_ref(),
        }
    }

    fn action(&self) -> SyncAction {
        match self {
            Self::User(_) => SyncAction::DeleteUser,
            Self::Department(_) => SyncAction::DeleteDepartment,
            Self::Group(_) => SyncAction::DeleteGroup,
        }
    }
}

/// What else refers to an object being deleted, as stored: each loses the reference in its
/// own step before the tombstone.
#[derive(Default)]
pub struct Dependents<'a> {
    /// Live users with a membership in the department: `(label, user)`, the label being the
    /// Feishu id where known.
    pub members: Vec<(&'a str, &'a User)>,
    /// Live groups that list the user or department.
    pub groups: Vec<(&'a str, &'a Group)>,
}

/// Builds steps for one connection at one time.
pub struct Steps<'n> {
    pub connection_id: &'n ConnectionId,
    pub now: Millis,
    pub names: &'n dyn Names,
}

/// The note on references a merge dropped.
pub fn unresolved_note(unresolved: &[Unresolved]) -> Option<String> {
    if unresolved.is_empty() {
        return None;
    }
    Some(format!(
        "ignored references outside the directory: {}",
        list(unresolved.iter().map(ToString::to_string))
    ))
}

/// A bounded, comma-separated list for a reason.
pub fn list(items: impl Iterator<Item = String>) -> String {
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

pub fn join_reason(parts: impl IntoIterator<Item = Option<String>>) -> Option<String> {
    let parts: Vec<String> = parts.into_iter().flatten().collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Removes the memberships `gone` names; when that removed the primary one, the first left
/// becomes primary (the one rule for every path).
pub fn without_departments(user: &User, gone: &dyn Fn(&DepartmentId) -> bool) -> User {
    let mut cur = user.clone();
    cur.departments.retain(|m| !gone(&m.department_id));
    if user.departments.iter().any(|m| m.primary)
        && !cur.departments.iter().any(|m| m.primary)
        && let Some(first) = cur.departments.first_mut()
    {
        first.primary = true;
    }
    cur
}

/// The reason of an `Update*` step: restored, the fields and Feishu ids that changed, a note.
fn update_reason<'f>(
    restored: bool,
    fields: impl Iterator<Item = &'f str>,
    ref_fields: &[&'f str],
    note: Option<String>,
) -> Option<String> {
    let changed: Vec<&str> = fields.chain(ref_fields.iter().copied()).collect();
    join_reason([
        restored.then(|| "restored: present in Feishu again".to_owned()),
        (!changed.is_empty()).then(|| changed.join(", ")),
        note,
    ])
}

/// The step of an object with nothing to change (logged, no writes).
fn unchanged(
    kind: ObjectKind,
    external_id: &str,
    object_id: &str,
    name: Option<&String>,
) -> PlannedStep {
    step(
        SyncAction::Unchanged,
        kind,
        external_id,
        object_id,
        name,
        None,
        Vec::new(),
    )
}

fn step(
    action: SyncAction,
    kind: ObjectKind,
    external_id: &str,
    object_id: &str,
    name: Option<&String>,
    reason: Option<String>,
    writes: Vec<Write>,
) -> PlannedStep {
    PlannedStep {
        action,
        kind,
        external_id: external_id.to_owned(),
        object_id: Some(object_id.to_owned()),
        name: name.cloned(),
        result: ActionResult::Applied,
        reason,
        writes,
    }
}

impl Steps<'_> {
    pub fn put_user(&self, user: &User, change: ChangeKind, chain: &mut Chain) -> Write {
        self.put_user_owned(user.clone(), change, chain)
    }

    pub fn put_user_owned(&self, mut user: User, change: ChangeKind, chain: &mut Chain) -> Write {
        let (expected, version) = chain.next();
        user.version = version;
        user.updated_at = self.now;
        Write::PutUser {
            user,
            change,
            expected_version: Some(expected),
        }
    }

    pub fn put_department(&self, d: &Department, change: ChangeKind, chain: &mut Chain) -> Write {
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

    pub fn put_group(&self, g: &Group, change: ChangeKind, chain: &mut Chain) -> Write {
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

    fn relation(
        &self,
        kind: ObjectKind,
        external_id: &str,
        existing: Option<&ExternalRef>,
        union_id: Option<&str>,
        custom_id: Option<&str>,
        object_id: &str,
    ) -> ExternalRef {
        merge::merge_ref(
            existing,
            self.connection_id,
            kind,
            external_id,
            union_id,
            custom_id,
            object_id,
        )
    }

    // ---- users -----------------------------------------------------------------------

    /// The steps of one merged user (`new`, its state after the change). Returns its state
    /// and version chain afterwards when `keep` asks for them (to set a deferred manager).
    pub fn user(
        &self,
        c: &UserChange<'_>,
        new: User,
        note: Option<String>,
        keep: bool,
        out: &mut Vec<PlannedStep>,
    ) -> Option<(User, Chain)> {
        let ext = c.external_id;
        let ref_changes = match c.existing_ref {
            // Most users keep their identifiers: do not build a relation to compare.
            Some(r)
                if c.existing.is_some() && !merge::ref_would_change(r, c.union_id, c.user_id) =>
            {
                false
            }
            _ => true,
        };
        let new_ref = ref_changes.then(|| {
            self.relation(
                ObjectKind::User,
                ext,
                c.existing_ref,
                c.union_id,
                c.user_id,
                &new.id.0,
            )
        });
        let Some(existing) = c.existing else {
            let mut chain = Chain::from(0);
            let reason = join_reason([
                (!new.status.is_enabled()).then(|| format!("status {}", new.status.as_str())),
                note,
            ]);
            let mut s = step(
                SyncAction::CreateUser,
                ObjectKind::User,
                ext,
                &new.id.0,
                new.profile.name.as_ref(),
                reason,
                Vec::with_capacity(2),
            );
            let kept = keep.then(|| new.clone());
            s.writes
                .push(self.put_user_owned(new, ChangeKind::UserCreated, &mut chain));
            s.writes.extend(new_ref.map(Write::PutExternalRef));
            out.push(s);
            return kept.map(|u| (u, chain));
        };

        let fields = merge::user_changes(existing, &new);
        let ref_fields = match (c.existing_ref, &new_ref) {
            (Some(old), Some(new)) => merge::ref_changes(old, new),
            (None, Some(_)) => vec!["relation"],
            _ => Vec::new(),
        };
        if fields.is_empty() && ref_fields.is_empty() {
            // The common case of a reconciliation: cheap.
            out.push(unchanged(
                ObjectKind::User,
                ext,
                &new.id.0,
                new.profile.name.as_ref(),
            ));
            let expected = existing.version;
            return keep.then_some((new, Chain { expected }));
        }
        let status_changed = fields.contains(&UserField::Status);
        let disabling = status_changed && !new.status.is_enabled();
        let detach_on_disable = disabling && new.status == UserStatus::Resigned;
        let mut chain = Chain::from(existing.version);
        let mut cur = existing.clone();
        let mut note = note;

        if let Some(new_ref) = new_ref.filter(|_| !ref_fields.is_empty()) {
            let old = c.existing_ref;
            let show = |v: Option<&String>| v.map_or("none", String::as_str).to_owned();
            let reason = ref_fields
                .iter()
                .map(|f| match *f {
                    "union_id" => format!(
                        "union_id {} → {}",
                        show(old.and_then(|r| r.union_id.as_ref())),
                        show(new_ref.union_id.as_ref())
                    ),
                    "relation" => "relation to Feishu recorded".to_owned(),
                    f => format!(
                        "{f} {} → {}",
                        show(old.and_then(|r| r.custom_id.as_ref())),
                        show(new_ref.custom_id.as_ref())
                    ),
                })
                .collect::<Vec<_>>()
                .join(", ");
            let writes = vec![
                self.put_user(&cur, ChangeKind::UserIdentifierChanged, &mut chain),
                Write::PutExternalRef(new_ref),
            ];
            out.push(step(
                SyncAction::UpdateUserIdentifier,
                ObjectKind::User,
                ext,
                &cur.id.0,
                cur.profile.name.as_ref(),
                join_reason([Some(reason), note.take()]),
                writes,
            ));
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
                            .map_or_else(|| "none".to_owned(), |m| self.names.user(m))
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
            out.push(step(
                SyncAction::UpdateUser,
                ObjectKind::User,
                ext,
                &cur.id.0,
                cur.profile.name.as_ref(),
                reason,
                writes,
            ));
        }

        let memberships_changed =
            fields.contains(&UserField::Departments) || fields.contains(&UserField::Root);
        if memberships_changed && !detach_on_disable {
            let reason = self.membership_reason(&cur, &new);
            cur.departments.clone_from(&new.departments);
            cur.in_root = new.in_root;
            let writes = vec![self.put_user(&cur, ChangeKind::UserDepartmentsChanged, &mut chain)];
            out.push(step(
                SyncAction::ChangeUserDepartment,
                ObjectKind::User,
                ext,
                &cur.id.0,
                cur.profile.name.as_ref(),
                join_reason([Some(reason), note.take()]),
                writes,
            ));
        }

        if disabling {
            let mut reason = format!("status {} → {}", cur.status.as_str(), new.status.as_str());
            if c.resigned_by_lookup {
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
            out.push(step(
                SyncAction::DisableUser,
                ObjectKind::User,
                ext,
                &cur.id.0,
                cur.profile.name.as_ref(),
                join_reason([Some(reason), note.take()]),
                writes,
            ));
        }
        keep.then_some((cur, chain))
    }

    /// The `UpdateUser` step that sets a manager held back to break a reporting cycle.
    pub fn manager_later(
        &self,
        external_id: &str,
        mut cur: User,
        mut chain: Chain,
        manager: UserId,
        out: &mut Vec<PlannedStep>,
    ) {
        if cur.manager_id.as_ref() == Some(&manager) {
            return;
        }
        let reason = format!(
            "manager {} (set after the reporting cycle was created)",
            self.names.user(&manager)
        );
        cur.manager_id = Some(manager);
        let writes = vec![self.put_user(&cur, ChangeKind::UserUpdated, &mut chain)];
        out.push(step(
            SyncAction::UpdateUser,
            ObjectKind::User,
            external_id,
            &cur.id.0,
            cur.profile.name.as_ref(),
            Some(reason),
            writes,
        ));
    }

    pub fn membership_reason(&self, old: &User, new: &User) -> String {
        let mut parts = Vec::new();
        let has = |u: &User, d: &DepartmentId| u.departments.iter().any(|m| &m.department_id == d);
        let added: Vec<String> = new
            .departments
            .iter()
            .filter(|m| !has(old, &m.department_id))
            .map(|m| self.names.department(&m.department_id))
            .collect();
        let removed: Vec<String> = old
            .departments
            .iter()
            .filter(|m| !has(new, &m.department_id))
            .map(|m| self.names.department(&m.department_id))
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
                    .map_or_else(String::new, |p| self.names.department(p))
            ));
        }
        if parts.is_empty() {
            parts.push("department orders".to_owned());
        }
        parts.join("; ")
    }

    // ---- departments -------------------------------------------------------------------

    /// The steps of one merged department (`new`). With `leaders_exist` false (its leaders
    /// are users created later in the plan) the leader change is returned for
    /// [`Steps::leaders_later`] instead of being a step now.
    pub fn department(
        &self,
        c: &ObjectChange<'_, Department>,
        mut new: Department,
        note: Option<String>,
        leaders_exist: bool,
        out: &mut Vec<PlannedStep>,
    ) -> Option<DeferredLeaders> {
        let ext = c.external_id;
        let new_ref = self.relation(
            ObjectKind::Department,
            ext,
            c.existing_ref,
            None,
            c.custom_id,
            &new.id.0,
        );
        let final_leaders = new.leaders.clone();
        let stored_leaders = c.existing.map(|d| d.leaders.clone()).unwrap_or_default();
        if !leaders_exist {
            new.leaders.clone_from(&stored_leaders);
        }

        let Some(existing) = c.existing else {
            let mut chain = Chain::from(0);
            let writes = vec![
                self.put_department(&new, ChangeKind::DepartmentCreated, &mut chain),
                Write::PutExternalRef(new_ref),
            ];
            out.push(step(
                SyncAction::CreateDepartment,
                ObjectKind::Department,
                ext,
                &new.id.0,
                new.name.as_ref(),
                note,
                writes,
            ));
            return (!leaders_exist).then(|| DeferredLeaders {
                department: Department {
                    leaders: final_leaders,
                    ..new
                },
                version: chain.expected,
                external_id: ext.to_owned(),
                before: Vec::new(),
            });
        };

        let fields = merge::department_changes(existing, &new);
        let ref_fields = match c.existing_ref {
            Some(old) => merge::ref_changes(old, &new_ref),
            None => vec!["relation"],
        };
        let mut chain = Chain::from(existing.version);
        let mut cur = existing.clone();
        let mut note = note;
        let mut any = false;
        let mut deferred = None;

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
            let reason = update_reason(
                upd.contains(&DepartmentField::Deleted),
                upd.iter()
                    .filter(|f| **f != DepartmentField::Deleted)
                    .map(|f| f.as_str()),
                &ref_fields,
                note.take(),
            );
            out.push(step(
                SyncAction::UpdateDepartment,
                ObjectKind::Department,
                ext,
                &cur.id.0,
                cur.name.as_ref(),
                reason,
                writes,
            ));
            any = true;
        }
        if fields.contains(&DepartmentField::Parent) {
            let name = |p: &Option<DepartmentId>| {
                p.as_ref()
                    .map_or_else(|| ROOT.to_owned(), |p| self.names.department(p))
            };
            let reason = format!("parent {} → {}", name(&cur.parent_id), name(&new.parent_id));
            cur.parent_id.clone_from(&new.parent_id);
            let writes = vec![self.put_department(&cur, ChangeKind::DepartmentMoved, &mut chain)];
            out.push(step(
                SyncAction::MoveDepartment,
                ObjectKind::Department,
                ext,
                &cur.id.0,
                cur.name.as_ref(),
                join_reason([Some(reason), note.take()]),
                writes,
            ));
            any = true;
        }
        if cur.leaders != final_leaders {
            if leaders_exist {
                let reason = self.leaders_reason(&cur.leaders, &final_leaders);
                cur.leaders = final_leaders;
                let writes = vec![self.put_department(
                    &cur,
                    ChangeKind::DepartmentLeaderChanged,
                    &mut chain,
                )];
                out.push(step(
                    SyncAction::UpdateDepartmentLeader,
                    ObjectKind::Department,
                    ext,
                    &cur.id.0,
                    cur.name.as_ref(),
                    join_reason([Some(reason), note.take()]),
                    writes,
                ));
            } else {
                deferred = Some(DeferredLeaders {
                    department: Department {
                        leaders: final_leaders,
                        ..cur.clone()
                    },
                    version: chain.expected,
                    external_id: ext.to_owned(),
                    before: stored_leaders,
                });
            }
            any = true;
        }
        if !any {
            out.push(unchanged(
                ObjectKind::Department,
                ext,
                &cur.id.0,
                cur.name.as_ref(),
            ));
        }
        deferred
    }

    /// The `UpdateDepartmentLeader` step of a deferred leader change.
    pub fn leaders_later(&self, d: DeferredLeaders, out: &mut Vec<PlannedStep>) {
        let mut chain = Chain::from(d.version);
        let reason = self.leaders_reason(&d.before, &d.department.leaders);
        let writes = vec![self.put_department(
            &d.department,
            ChangeKind::DepartmentLeaderChanged,
            &mut chain,
        )];
        out.push(step(
            SyncAction::UpdateDepartmentLeader,
            ObjectKind::Department,
            &d.external_id,
            &d.department.id.0,
            d.department.name.as_ref(),
            Some(format!("{reason} (set once the users exist)")),
            writes,
        ));
    }

    fn leaders_reason(&self, old: &[Leader], new: &[Leader]) -> String {
        let show = |ls: &[Leader]| {
            if ls.is_empty() {
                return "none".to_owned();
            }
            list(ls.iter().map(|l| {
                let who = self.names.user(&l.user_id);
                match l.kind {
                    LeaderKind::Main => who,
                    LeaderKind::Deputy => format!("{who} (deputy)"),
                }
            }))
        };
        format!("leaders {} → {}", show(old), show(new))
    }

    // ---- groups ------------------------------------------------------------------------

    /// The steps of one merged group (`new`).
    pub fn group(
        &self,
        c: &ObjectChange<'_, Group>,
        new: Group,
        note: Option<String>,
        out: &mut Vec<PlannedStep>,
    ) {
        let ext = c.external_id;
        let new_ref = self.relation(
            ObjectKind::Group,
            ext,
            c.existing_ref,
            None,
            c.custom_id,
            &new.id.0,
        );
        let Some(existing) = c.existing else {
            let mut chain = Chain::from(0);
            let reason = join_reason([Some(format!("{} members", new.members.len())), note]);
            let writes = vec![
                self.put_group(&new, ChangeKind::GroupCreated, &mut chain),
                Write::PutExternalRef(new_ref),
            ];
            out.push(step(
                SyncAction::CreateGroup,
                ObjectKind::Group,
                ext,
                &new.id.0,
                new.name.as_ref(),
                reason,
                writes,
            ));
            return;
        };

        let fields = merge::group_changes(existing, &new);
        let ref_fields = match c.existing_ref {
            Some(old) => merge::ref_changes(old, &new_ref),
            None => vec!["relation"],
        };
        let mut chain = Chain::from(existing.version);
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
            let reason = update_reason(
                upd.contains(&GroupField::Deleted),
                upd.iter()
                    .filter(|f| **f != GroupField::Deleted)
                    .map(|f| f.as_str()),
                &ref_fields,
                note.take(),
            );
            out.push(step(
                SyncAction::UpdateGroup,
                ObjectKind::Group,
                ext,
                &cur.id.0,
                cur.name.as_ref(),
                reason,
                writes,
            ));
            any = true;
        }
        if fields.contains(&GroupField::Members) {
            let old: HashSet<&GroupMember> = existing.members.iter().collect();
            let now: HashSet<&GroupMember> = new.members.iter().collect();
            let added: Vec<&GroupMember> =
                new.members.iter().filter(|m| !old.contains(m)).collect();
            let removed: Vec<&GroupMember> = existing
                .members
                .iter()
                .filter(|m| !now.contains(m))
                .collect();
            if !added.is_empty() {
                let reason = list(added.iter().map(|m| self.names.member(m)));
                cur.members.extend(added.iter().map(|m| (*m).clone()));
                cur.members.sort();
                cur.members.dedup();
                let writes =
                    vec![self.put_group(&cur, ChangeKind::GroupMembersChanged, &mut chain)];
                out.push(step(
                    SyncAction::AddGroupMember,
                    ObjectKind::Group,
                    ext,
                    &cur.id.0,
                    cur.name.as_ref(),
                    join_reason([Some(reason), note.take()]),
                    writes,
                ));
            }
            if !removed.is_empty() {
                let reason = list(removed.iter().map(|m| self.names.member(m)));
                cur.members.clone_from(&new.members);
                let writes =
                    vec![self.put_group(&cur, ChangeKind::GroupMembersChanged, &mut chain)];
                out.push(step(
                    SyncAction::RemoveGroupMember,
                    ObjectKind::Group,
                    ext,
                    &cur.id.0,
                    cur.name.as_ref(),
                    join_reason([Some(reason), note.take()]),
                    writes,
                ));
            }
            any = true;
        }
        if !any {
            out.push(unchanged(
                ObjectKind::Group,
                ext,
                &cur.id.0,
                cur.name.as_ref(),
            ));
        }
    }

    // ---- deletions ---------------------------------------------------------------------

    /// A stored user loses its memberships of departments being deleted (`gone`): one
    /// `ChangeUserDepartment` step, or none when it has no such membership.
    pub fn detach_from_departments(
        &self,
        label: &str,
        user: &User,
        gone: &dyn Fn(&DepartmentId) -> bool,
        out: &mut Vec<PlannedStep>,
    ) {
        if !user.departments.iter().any(|m| gone(&m.department_id)) {
            return;
        }
        let cur = without_departments(user, gone);
        let reason = format!(
            "{} (department deleted)",
            self.membership_reason(user, &cur)
        );
        let mut chain = Chain::from(user.version);
        let writes = vec![self.put_user(&cur, ChangeKind::UserDepartmentsChanged, &mut chain)];
        out.push(step(
            SyncAction::ChangeUserDepartment,
            ObjectKind::User,
            label,
            &cur.id.0,
            cur.profile.name.as_ref(),
            Some(reason),
            writes,
        ));
    }

    /// A stored group loses members being deleted (`gone`): one `RemoveGroupMember` step, or
    /// none when it lists none of them.
    pub fn remove_members(
        &self,
        label: &str,
        group: &Group,
        gone: &dyn Fn(&GroupMember) -> bool,
        out: &mut Vec<PlannedStep>,
    ) {
        let removed: Vec<&GroupMember> = group.members.iter().filter(|m| gone(m)).collect();
        if removed.is_empty() {
            return;
        }
        let reason = format!(
            "{} (deleted)",
            list(removed.iter().map(|m| self.names.member(m)))
        );
        let mut cur = group.clone();
        cur.members.retain(|m| !gone(m));
        let mut chain = Chain::from(group.version);
        let writes = vec![self.put_group(&cur, ChangeKind::GroupMembersChanged, &mut chain)];
        out.push(step(
            SyncAction::RemoveGroupMember,
            ObjectKind::Group,
            label,
            &cur.id.0,
            cur.name.as_ref(),
            Some(reason),
            writes,
        ));
    }

    /// The tombstone write of a stored object (soft deletion).
    pub fn tombstone(&self, object: Doomed<'_>) -> Write {
        match object {
            Doomed::User(u) => self.put_user(
                &merge::tombstone_user(u, self.now),
                ChangeKind::UserDeleted,
                &mut Chain::from(u.version),
            ),
            Doomed::Department(d) => self.put_department(
                &merge::tombstone_department(d, self.now),
                ChangeKind::DepartmentDeleted,
                &mut Chain::from(d.version),
            ),
            Doomed::Group(g) => self.put_group(
                &merge::tombstone_group(g, self.now),
                ChangeKind::GroupDeleted,
                &mut Chain::from(g.version),
            ),
        }
    }

    /// The steps of one deletion: every dependent loses its reference to the object (members
    /// of a department their membership, groups the member), then the object is tombstoned.
    /// An object already tombstoned gets no tombstone step (its dependents are still
    /// detached).
    pub fn deletion(
        &self,
        external_id: &str,
        object: Doomed<'_>,
        dependents: &Dependents<'_>,
        reason: Option<String>,
        out: &mut Vec<PlannedStep>,
    ) {
        match object {
            Doomed::Department(d) => {
                for (label, member) in &dependents.members {
                    self.detach_from_departments(label, member, &|id| *id == d.id, out);
                }
                let gone = GroupMember::Department(d.id.clone());
                for (label, group) in &dependents.groups {
                    self.remove_members(label, group, &|m| *m == gone, out);
                }
            }
            Doomed::User(u) => {
                let gone = GroupMember::User(u.id.clone());
                for (label, group) in &dependents.groups {
                    self.remove_members(label, group, &|m| *m == gone, out);
                }
            }
            Doomed::Group(_) => {}
        }
        let live = match object {
            Doomed::User(u) => u.deleted_at.is_none(),
            Doomed::Department(d) => d.deleted_at.is_none(),
            Doomed::Group(g) => g.deleted_at.is_none(),
        };
        if live {
            out.push(step(
                object.action(),
                object.kind(),
                external_id,
                object.id(),
                object.name(),
                reason,
                vec![self.tombstone(object)],
            ));
        }
    }
}
