//! Directory mutations as Feishu performs them, each returning the [`Change`]s it caused
//! (with the snapshots event rendering needs), plus [`Tenant::random_mutation`] for
//! tests and [`Tenant::invariant_violations`] to check a tenant is still consistent.
//!
//! Behaviours chosen where the protocol is silent:
//! - Resignation (员工离职) sets `is_resigned`, clears `is_activated`, removes every
//!   membership, removes the user as leader or HRBP of departments, clears the `leader` of
//!   everyone who reported to them, and removes them from user groups. The user's own
//!   `leader` is kept (last state). There is no reinstatement.
//! - Department leaders must be active direct members; a user leaving a department stops
//!   leading it.
//! - Reporting lines must stay acyclic (a change that would close a loop is refused).
//! - Deleting a department also removes it from user groups; app scopes keep the stale id
//!   (`/scopes` filters it), as a console selection would.
//! - Empty string in a [`UserPatch`] clears an optional field; `name` and `user_id` cannot
//!   be cleared.
//! - A mutation that changes nothing returns no changes (not an error).
//! - `hire` fills unset fields from a generator seeded by the tenant state (same history,
//!   same users); the default `join_time` is 2025-01-01 plus a minute per user key.
//! - Render events for a mutation's changes right after it: rendering reads the state
//!   the mutation left.

use std::collections::{BTreeSet, HashMap, HashSet};

use feishu::ids::ROOT_DEPARTMENT_ID;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::generate::{
    email_for, employee_no_for, fresh_user_id, mobile_for, random_employee_type, random_hex32,
    random_user,
};
use crate::names;
use crate::tenant::{
    ContactScope, CustomAttrRecord, DepartmentRecord, GroupKind, GroupRecord, I18n, Membership,
    Tenant, UserKey, UserRecord, digest_hex,
};

/// What a mutation did, with the state needed to describe it in events.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(
    clippy::large_enum_variant,
    reason = "changes are few and short-lived; boxing only complicates matching"
)]
pub enum Change {
    UserCreated {
        key: UserKey,
    },
    /// Profile, status, memberships or leader changed; `before` is the old record.
    UserUpdated {
        key: UserKey,
        before: UserRecord,
    },
    /// A resignation; the record stays (resigned, without memberships).
    UserDeleted {
        before: UserRecord,
    },
    DepartmentCreated {
        id: String,
    },
    DepartmentUpdated {
        id: String,
        before: DepartmentRecord,
    },
    /// The record moved to `deleted_departments`.
    DepartmentDeleted {
        before: DepartmentRecord,
    },
    GroupCreated {
        id: String,
    },
    /// Name or description changed.
    GroupUpdated {
        id: String,
        before: GroupRecord,
    },
    GroupDeleted {
        before: GroupRecord,
    },
    GroupMembersChanged {
        id: String,
    },
    /// An app's contact scope changed; only that app hears of it.
    ScopeChanged {
        app_id: String,
        before: ContactScope,
    },
}

impl Change {
    /// A short name for logs and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::UserCreated { .. } => "user_created",
            Self::UserUpdated { .. } => "user_updated",
            Self::UserDeleted { .. } => "user_deleted",
            Self::DepartmentCreated { .. } => "department_created",
            Self::DepartmentUpdated { .. } => "department_updated",
            Self::DepartmentDeleted { .. } => "department_deleted",
            Self::GroupCreated { .. } => "group_created",
            Self::GroupUpdated { .. } => "group_updated",
            Self::GroupDeleted { .. } => "group_deleted",
            Self::GroupMembersChanged { .. } => "group_members_changed",
            Self::ScopeChanged { .. } => "scope_changed",
        }
    }

    /// The key of the user a `hire` created.
    pub fn created_user(changes: &[Change]) -> Option<UserKey> {
        changes.iter().find_map(|c| match c {
            Self::UserCreated { key } => Some(*key),
            _ => None,
        })
    }

    /// The id of the department or group a `create_*` made.
    pub fn created_id(changes: &[Change]) -> Option<&str> {
        changes.iter().find_map(|c| match c {
            Self::DepartmentCreated { id } | Self::GroupCreated { id } => Some(id.as_str()),
            _ => None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MutationError {
    #[error("unknown user {0}")]
    UnknownUser(UserKey),
    #[error("user {0} has resigned")]
    UserResigned(UserKey),
    #[error("unknown department {0:?}")]
    UnknownDepartment(String),
    #[error("the root department \"0\" cannot be changed or deleted")]
    RootDepartment,
    #[error("unknown user group {0:?}")]
    UnknownGroup(String),
    #[error("unknown app {0:?}")]
    UnknownApp(String),
    #[error("department {id:?} is not empty: {members} member(s), {children} sub-department(s)")]
    DepartmentNotEmpty {
        id: String,
        members: usize,
        children: usize,
    },
    #[error("moving department {id:?} under {parent:?} would create a cycle")]
    DepartmentCycle { id: String, parent: String },
    #[error("user {0} cannot be their own leader")]
    OwnLeader(UserKey),
    #[error("making {leader} the leader of {user} would create a reporting cycle")]
    LeaderCycle { user: UserKey, leader: UserKey },
    #[error("custom department id {0:?} is already used by a live department")]
    DepartmentIdTaken(String),
    #[error(
        "custom department id {0:?} is invalid (want ^[a-zA-Z0-9][a-zA-Z0-9_\\-@.]{{0,63}}$, not starting with od-)"
    )]
    InvalidDepartmentId(String),
    #[error("custom user group id {0:?} is taken")]
    GroupIdTaken(String),
    #[error("{field} {value:?} is already used by user {owner}")]
    ValueTaken {
        field: &'static str,
        value: String,
        owner: UserKey,
    },
    #[error("{0} must not be empty")]
    Empty(&'static str),
    #[error("invalid {field} {value:?}")]
    Invalid { field: &'static str, value: String },
    #[error("department {0:?} is listed twice")]
    DuplicateDepartment(String),
    #[error("user {0} is listed twice")]
    DuplicateUser(UserKey),
    #[error("user {user} is not a direct member of department {department:?}")]
    LeaderNotMember { user: UserKey, department: String },
    #[error("invalid leader type {0} (1 main, 2 deputy)")]
    InvalidLeaderType(i64),
    #[error("department {0:?} would have more than one main leader")]
    SeveralMainLeaders(String),
    #[error("dynamic user group {0:?} cannot have department members")]
    DynamicGroupDepartments(String),
}

pub type MutationResult = Result<Vec<Change>, MutationError>;

/// A new employee. Unset fields are generated (deterministically from the tenant state).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewUser {
    pub name: Option<String>,
    pub en_name: Option<String>,
    pub email: Option<String>,
    pub mobile: Option<String>,
    pub user_id: Option<String>,
    pub employee_no: Option<String>,
    pub gender: Option<i64>,
    pub job_title: Option<String>,
    pub city: Option<String>,
    pub country: Option<String>,
    pub employee_type: Option<i64>,
    /// Unix seconds; generated when unset.
    pub join_time: Option<i64>,
    /// Open department ids; the first is the primary. Empty: directly under the root.
    pub departments: Vec<String>,
    pub leader: Option<UserKey>,
}

/// A profile update: `None` leaves a field alone; for optional fields `Some("")` clears.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserPatch {
    pub name: Option<String>,
    pub en_name: Option<String>,
    pub nickname: Option<String>,
    pub email: Option<String>,
    pub enterprise_email: Option<String>,
    pub mobile: Option<String>,
    pub mobile_visible: Option<bool>,
    pub gender: Option<i64>,
    pub city: Option<String>,
    pub country: Option<String>,
    pub work_station: Option<String>,
    pub job_title: Option<String>,
    pub employee_no: Option<String>,
    pub employee_type: Option<i64>,
    pub user_id: Option<String>,
    pub custom_attrs: Option<Vec<CustomAttrRecord>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewDepartment {
    pub name: String,
    pub i18n_name: I18n,
    /// Open id of the parent, `"0"` for a first-level department.
    pub parent: String,
    /// Custom id; `D…` generated when unset.
    pub department_id: Option<String>,
    /// Generated after the last sibling when unset.
    pub order: Option<i64>,
    /// Create a department group chat (`chat_id`).
    pub create_chat: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGroup {
    pub name: String,
    pub description: String,
    pub kind: GroupKind,
    /// Custom group id; generated when unset.
    pub group_id: Option<String>,
    pub users: Vec<UserKey>,
    /// Open department ids (normal groups only).
    pub departments: Vec<String>,
}

/// The user fields that must be unique in the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unique {
    UserId,
    Email,
    Mobile,
    EmployeeNo,
}

impl Unique {
    fn name(self) -> &'static str {
        match self {
            Self::UserId => "user_id",
            Self::Email => "email",
            Self::Mobile => "mobile",
            Self::EmployeeNo => "employee_no",
        }
    }

    fn get(self, u: &UserRecord) -> Option<&str> {
        match self {
            Self::UserId => Some(&u.user_id),
            Self::Email => u.email.as_deref(),
            Self::Mobile => u.mobile.as_deref(),
            Self::EmployeeNo => u.employee_no.as_deref(),
        }
    }
}

/// `^[a-zA-Z0-9][a-zA-Z0-9_\-@.]{0,63}$`, not starting with `od-` (protocol §2.2).
pub fn is_valid_department_id(id: &str) -> bool {
    let mut chars = id.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    first_ok
        && id.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '@' | '.'))
        && !id.starts_with("od-")
}

/// `user_id`: 1–64 chars, no whitespace (protocol §2.2).
fn is_valid_user_id(id: &str) -> bool {
    !id.is_empty() && id.chars().count() <= 64 && !id.chars().any(char::is_whitespace)
}

/// `Some("")` clears, `Some(v)` sets.
fn patch_opt(field: &mut Option<String>, value: &Option<String>) {
    if let Some(v) = value {
        *field = (!v.is_empty()).then(|| v.clone());
    }
}

impl Tenant {
    // ---- lookups -----------------------------------------------------------------

    fn user(&self, key: UserKey) -> Result<&UserRecord, MutationError> {
        self.users.get(&key).ok_or(MutationError::UnknownUser(key))
    }

    /// An existing user who has not resigned.
    fn active_user(&self, key: UserKey) -> Result<&UserRecord, MutationError> {
        let u = self.user(key)?;
        if u.status.resigned {
            return Err(MutationError::UserResigned(key));
        }
        Ok(u)
    }

    fn live_department(&self, id: &str) -> Result<&DepartmentRecord, MutationError> {
        if id == ROOT_DEPARTMENT_ID {
            return Err(MutationError::RootDepartment);
        }
        self.departments
            .get(id)
            .ok_or_else(|| MutationError::UnknownDepartment(id.to_owned()))
    }

    /// A live department or the root.
    fn check_placement(&self, id: &str) -> Result<(), MutationError> {
        if id == ROOT_DEPARTMENT_ID || self.departments.contains_key(id) {
            Ok(())
        } else {
            Err(MutationError::UnknownDepartment(id.to_owned()))
        }
    }

    fn group(&self, id: &str) -> Result<&GroupRecord, MutationError> {
        self.groups
            .get(id)
            .ok_or_else(|| MutationError::UnknownGroup(id.to_owned()))
    }

    /// The user holding `value` in `field`, other than `except`.
    fn owner_of(&self, field: Unique, value: &str, except: Option<UserKey>) -> Option<UserKey> {
        self.users
            .values()
            .find(|u| Some(u.key) != except && field.get(u) == Some(value))
            .map(|u| u.key)
    }

    fn check_unique(
        &self,
        field: Unique,
        value: &str,
        except: Option<UserKey>,
    ) -> Result<(), MutationError> {
        match self.owner_of(field, value, except) {
            Some(owner) => Err(MutationError::ValueTaken {
                field: field.name(),
                value: value.to_owned(),
                owner,
            }),
            None => Ok(()),
        }
    }

    fn department_id_owner(&self, custom_id: &str) -> Option<&str> {
        self.departments
            .values()
            .find(|d| d.department_id == custom_id)
            .map(|d| d.open_department_id.as_str())
    }

    fn check_department_id(
        &self,
        custom_id: &str,
        except: Option<&str>,
    ) -> Result<(), MutationError> {
        if !is_valid_department_id(custom_id) {
            return Err(MutationError::InvalidDepartmentId(custom_id.to_owned()));
        }
        match self.department_id_owner(custom_id) {
            Some(owner) if Some(owner) != except => {
                Err(MutationError::DepartmentIdTaken(custom_id.to_owned()))
            }
            _ => Ok(()),
        }
    }

    /// Departments listed once each, all live (or the root).
    fn check_department_list(&self, departments: &[String]) -> Result<(), MutationError> {
        let mut seen = HashSet::new();
        for d in departments {
            self.check_placement(d)?;
            if !seen.insert(d.as_str()) {
                return Err(MutationError::DuplicateDepartment(d.clone()));
            }
        }
        Ok(())
    }

    /// Whether `leader`'s reporting line reaches `user`.
    fn reports_to(&self, leader: UserKey, user: UserKey) -> bool {
        let mut seen = HashSet::new();
        let mut cur = Some(leader);
        while let Some(k) = cur {
            if k == user {
                return true;
            }
            if !seen.insert(k) {
                return false;
            }
            cur = self.users.get(&k).and_then(|u| u.leader);
        }
        false
    }

    fn end_order_under(&self, parent: &str, except: Option<&str>) -> i64 {
        self.children(parent)
            .iter()
            .filter(|c| Some(c.as_str()) != except)
            .filter_map(|c| self.departments.get(c))
            .map(|d| d.order)
            .max()
            .unwrap_or(0)
            + 100
    }

    fn memberships_for(departments: &[String], old: &[Membership]) -> Vec<Membership> {
        let len = departments.len() as i64;
        departments
            .iter()
            .enumerate()
            .map(|(pos, d)| Membership {
                department: d.clone(),
                user_order: old
                    .iter()
                    .find(|m| &m.department == d)
                    .map_or(0, |m| m.user_order),
                department_order: (len - pos as i64) * 100,
                primary: pos == 0,
            })
            .collect()
    }

    // ---- users -------------------------------------------------------------------

    /// 员工入职: a new active user in `new.departments` (or under the root).
    pub fn hire(&mut self, new: NewUser) -> MutationResult {
        let departments = if new.departments.is_empty() {
            vec![ROOT_DEPARTMENT_ID.to_owned()]
        } else {
            new.departments.clone()
        };
        self.check_department_list(&departments)?;
        if let Some(l) = new.leader {
            self.active_user(l)?;
        }
        let key = self.next_user_key;
        // Seeded by the tenant state, so replaying the same mutations gives the same users.
        let mut rng = ChaCha8Rng::seed_from_u64(key ^ (self.next_serial << 32) ^ 0x5eed);

        let user_id = match &new.user_id {
            Some(id) => {
                if !is_valid_user_id(id) {
                    return Err(MutationError::Invalid {
                        field: "user_id",
                        value: id.clone(),
                    });
                }
                self.check_unique(Unique::UserId, id, None)?;
                id.clone()
            }
            None => loop {
                // A scan per try instead of a set of all ids: hires are one at a time.
                let id = fresh_user_id(&mut rng, &mut HashSet::new());
                if self.owner_of(Unique::UserId, &id, None).is_none() {
                    break id;
                }
            },
        };
        let mut u = random_user(&mut rng, key, user_id, "example.com", 0.0);
        u.memberships = Self::memberships_for(&departments, &[]);
        u.leader = new.leader;
        u.join_time = new.join_time.unwrap_or(1_735_689_600 + key as i64 * 60);
        if let Some(name) = &new.name {
            if name.is_empty() {
                return Err(MutationError::Empty("name"));
            }
            u.name = name.clone();
        }
        patch_opt(&mut u.en_name, &new.en_name);
        patch_opt(&mut u.job_title, &new.job_title);
        patch_opt(&mut u.city, &new.city);
        patch_opt(&mut u.country, &new.country);
        if let Some(g) = new.gender {
            u.gender = g;
        }
        if let Some(t) = new.employee_type {
            u.employee_type = t;
        }
        // Generated unique values embed the key; bump on the rare clash with a custom value.
        match &new.email {
            Some(e) => {
                self.check_unique(Unique::Email, e, None)?;
                patch_opt(&mut u.email, &new.email);
            }
            None => {
                let mut n = 0;
                while let Some(e) = u
                    .email
                    .clone()
                    .filter(|e| self.owner_of(Unique::Email, e, None).is_some())
                {
                    n += 1;
                    u.email = Some(e.replacen('@', &format!("-{n}@"), 1));
                }
            }
        }
        match &new.mobile {
            Some(m) => {
                self.check_unique(Unique::Mobile, m, None)?;
                patch_opt(&mut u.mobile, &new.mobile);
            }
            None => {
                while u
                    .mobile
                    .as_deref()
                    .is_some_and(|m| self.owner_of(Unique::Mobile, m, None).is_some())
                {
                    u.mobile = Some(mobile_for(&mut rng, key));
                }
            }
        }
        match &new.employee_no {
            Some(e) => {
                self.check_unique(Unique::EmployeeNo, e, None)?;
                patch_opt(&mut u.employee_no, &new.employee_no);
            }
            None => {
                let mut n = 0;
                while u
                    .employee_no
                    .as_deref()
                    .is_some_and(|e| self.owner_of(Unique::EmployeeNo, e, None).is_some())
                {
                    n += 1;
                    u.employee_no = Some(format!("{}-{n}", employee_no_for(key)));
                }
            }
        }
        self.next_user_key += 1;
        self.users.insert(key, u);
        self.invalidate();
        Ok(vec![Change::UserCreated { key }])
    }

    /// 员工信息被修改: profile fields; unique fields are checked.
    pub fn update_user(&mut self, key: UserKey, patch: &UserPatch) -> MutationResult {
        let before = self.active_user(key)?.clone();
        let mut u = before.clone();
        if let Some(name) = &patch.name {
            if name.is_empty() {
                return Err(MutationError::Empty("name"));
            }
            u.name = name.clone();
        }
        if let Some(id) = &patch.user_id {
            if !is_valid_user_id(id) {
                return Err(MutationError::Invalid {
                    field: "user_id",
                    value: id.clone(),
                });
            }
            self.check_unique(Unique::UserId, id, Some(key))?;
            u.user_id = id.clone();
        }
        for (field, value) in [
            (Unique::Email, &patch.email),
            (Unique::Mobile, &patch.mobile),
            (Unique::EmployeeNo, &patch.employee_no),
        ] {
            if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                self.check_unique(field, v, Some(key))?;
            }
        }
        if let Some(g) = patch.gender {
            if !(0..=3).contains(&g) {
                return Err(MutationError::Invalid {
                    field: "gender",
                    value: g.to_string(),
                });
            }
            u.gender = g;
        }
        patch_opt(&mut u.en_name, &patch.en_name);
        patch_opt(&mut u.nickname, &patch.nickname);
        patch_opt(&mut u.email, &patch.email);
        patch_opt(&mut u.enterprise_email, &patch.enterprise_email);
        patch_opt(&mut u.mobile, &patch.mobile);
        patch_opt(&mut u.city, &patch.city);
        patch_opt(&mut u.country, &patch.country);
        patch_opt(&mut u.work_station, &patch.work_station);
        patch_opt(&mut u.job_title, &patch.job_title);
        patch_opt(&mut u.employee_no, &patch.employee_no);
        if let Some(v) = patch.mobile_visible {
            u.mobile_visible = v;
        }
        if let Some(t) = patch.employee_type {
            u.employee_type = t;
        }
        if let Some(attrs) = &patch.custom_attrs {
            u.custom_attrs = attrs.clone();
        }
        Ok(self.replace_user(before, u))
    }

    /// Writes `after` over the record, reporting a change only if something differs.
    fn replace_user(&mut self, before: UserRecord, after: UserRecord) -> Vec<Change> {
        if before == after {
            return Vec::new();
        }
        let key = before.key;
        self.users.insert(key, after);
        self.invalidate();
        vec![Change::UserUpdated { key, before }]
    }

    /// 暂停 / 恢复: suspension keeps the memberships.
    pub fn set_frozen(&mut self, key: UserKey, frozen: bool) -> MutationResult {
        let before = self.active_user(key)?.clone();
        let mut u = before.clone();
        u.status.frozen = frozen;
        Ok(self.replace_user(before, u))
    }

    pub fn freeze(&mut self, key: UserKey) -> MutationResult {
        self.set_frozen(key, true)
    }

    pub fn unfreeze(&mut self, key: UserKey) -> MutationResult {
        self.set_frozen(key, false)
    }

    /// 员工离职; see the module doc for the side effects.
    pub fn resign(&mut self, key: UserKey) -> MutationResult {
        let before = self.active_user(key)?.clone();
        let mut changes = vec![Change::UserDeleted {
            before: before.clone(),
        }];
        if let Some(u) = self.users.get_mut(&key) {
            u.status.resigned = true;
            u.status.activated = false;
            u.memberships.clear();
        }
        for d in self.departments.values_mut() {
            if d.leaders.iter().any(|(_, k)| *k == key) || d.hrbps.contains(&key) {
                let before = d.clone();
                d.leaders.retain(|(_, k)| *k != key);
                d.hrbps.retain(|k| *k != key);
                changes.push(Change::DepartmentUpdated {
                    id: d.open_department_id.clone(),
                    before,
                });
            }
        }
        for u in self.users.values_mut() {
            if u.leader == Some(key) && u.key != key {
                let before = u.clone();
                u.leader = None;
                changes.push(Change::UserUpdated { key: u.key, before });
            }
        }
        for g in self.groups.values_mut() {
            if g.users.contains(&key) {
                g.users.retain(|k| *k != key);
                changes.push(Change::GroupMembersChanged { id: g.id.clone() });
            }
        }
        self.invalidate();
        Ok(changes)
    }

    /// Replaces the user's departments; the first becomes the primary. Leaving a
    /// department the user leads removes them from its leaders.
    pub fn move_user(&mut self, key: UserKey, departments: &[String]) -> MutationResult {
        if departments.is_empty() {
            return Err(MutationError::Empty("departments"));
        }
        self.check_department_list(departments)?;
        let before = self.active_user(key)?.clone();
        let mut u = before.clone();
        u.memberships = Self::memberships_for(departments, &before.memberships);
        let mut changes = self.replace_user(before, u);
        if changes.is_empty() {
            return Ok(changes);
        }
        for d in self.departments.values_mut() {
            if d.leaders.iter().any(|(_, k)| *k == key)
                && !departments.contains(&d.open_department_id)
            {
                let before = d.clone();
                d.leaders.retain(|(_, k)| *k != key);
                changes.push(Change::DepartmentUpdated {
                    id: d.open_department_id.clone(),
                    before,
                });
            }
        }
        self.invalidate();
        Ok(changes)
    }

    /// Sets or clears the user's direct manager; refuses self and reporting cycles.
    pub fn set_user_leader(&mut self, key: UserKey, leader: Option<UserKey>) -> MutationResult {
        let before = self.active_user(key)?.clone();
        if let Some(l) = leader {
            if l == key {
                return Err(MutationError::OwnLeader(key));
            }
            self.active_user(l)?;
            if self.reports_to(l, key) {
                return Err(MutationError::LeaderCycle {
                    user: key,
                    leader: l,
                });
            }
        }
        let mut u = before.clone();
        u.leader = leader;
        Ok(self.replace_user(before, u))
    }

    // ---- departments ---------------------------------------------------------------

    pub fn create_department(&mut self, new: NewDepartment) -> MutationResult {
        if new.name.is_empty() {
            return Err(MutationError::Empty("name"));
        }
        self.check_placement(&new.parent)?;
        let department_id = match &new.department_id {
            Some(id) => {
                self.check_department_id(id, None)?;
                id.clone()
            }
            None => {
                let taken: HashSet<&str> = self
                    .departments
                    .values()
                    .map(|d| d.department_id.as_str())
                    .collect();
                let mut n = self.departments.len() + self.deleted_departments.len() + 1;
                while taken.contains(format!("D{n:04}").as_str()) {
                    n += 1;
                }
                format!("D{n:04}")
            }
        };
        let order = new
            .order
            .unwrap_or_else(|| self.end_order_under(&new.parent, None));
        let id = self.new_open_department_id();
        let chat_id = new
            .create_chat
            .then(|| format!("oc_{}", digest_hex(&["chat", &self.tenant_key, &id], 32)));
        let mut i18n_name = new.i18n_name;
        if i18n_name.zh_cn.is_none() {
            i18n_name.zh_cn = Some(new.name.clone());
        }
        self.departments.insert(
            id.clone(),
            DepartmentRecord {
                open_department_id: id.clone(),
                department_id,
                name: new.name,
                i18n_name,
                parent: new.parent,
                order,
                leaders: Vec::new(),
                chat_id,
                unit_ids: Vec::new(),
                hrbps: Vec::new(),
                big: false,
            },
        );
        self.invalidate();
        Ok(vec![Change::DepartmentCreated { id }])
    }

    /// Applies `edit` to a live department, reporting a change only if something differs.
    fn edit_department(
        &mut self,
        id: &str,
        edit: impl FnOnce(&mut DepartmentRecord),
    ) -> MutationResult {
        let before = self.live_department(id)?.clone();
        let mut d = before.clone();
        edit(&mut d);
        if d == before {
            return Ok(Vec::new());
        }
        self.departments.insert(id.to_owned(), d);
        self.invalidate();
        Ok(vec![Change::DepartmentUpdated {
            id: id.to_owned(),
            before,
        }])
    }

    /// Sets `name` and `i18n_name` (a missing `zh_cn` takes the name).
    pub fn rename_department(&mut self, id: &str, name: &str, i18n_name: I18n) -> MutationResult {
        if name.is_empty() {
            return Err(MutationError::Empty("name"));
        }
        let mut i18n_name = i18n_name;
        if i18n_name.zh_cn.is_none() {
            i18n_name.zh_cn = Some(name.to_owned());
        }
        self.edit_department(id, |d| {
            d.name = name.to_owned();
            d.i18n_name = i18n_name;
        })
    }

    /// Changes the custom `department_id`.
    pub fn set_department_custom_id(&mut self, id: &str, department_id: &str) -> MutationResult {
        self.live_department(id)?;
        self.check_department_id(department_id, Some(id))?;
        self.edit_department(id, |d| d.department_id = department_id.to_owned())
    }

    /// Re-parents a department (placed after its new siblings); refuses cycles.
    pub fn move_department(&mut self, id: &str, new_parent: &str) -> MutationResult {
        let current = self.live_department(id)?.parent.clone();
        self.check_placement(new_parent)?;
        if self.ancestors_and_self(new_parent).iter().any(|a| a == id) {
            return Err(MutationError::DepartmentCycle {
                id: id.to_owned(),
                parent: new_parent.to_owned(),
            });
        }
        if current == new_parent {
            return Ok(Vec::new());
        }
        let order = self.end_order_under(new_parent, Some(id));
        self.edit_department(id, |d| {
            d.parent = new_parent.to_owned();
            d.order = order;
        })
    }

    pub fn reorder_department(&mut self, id: &str, order: i64) -> MutationResult {
        self.edit_department(id, |d| d.order = order)
    }

    /// Main (type 1, at most one) and deputy (type 2) leaders; all active direct members.
    pub fn set_department_leaders(
        &mut self,
        id: &str,
        leaders: &[(i64, UserKey)],
    ) -> MutationResult {
        self.live_department(id)?;
        let mut seen = HashSet::new();
        for &(t, k) in leaders {
            if !(1..=2).contains(&t) {
                return Err(MutationError::InvalidLeaderType(t));
            }
            if !seen.insert(k) {
                return Err(MutationError::DuplicateUser(k));
            }
            let u = self.active_user(k)?;
            if !u.memberships.iter().any(|m| m.department == id) {
                return Err(MutationError::LeaderNotMember {
                    user: k,
                    department: id.to_owned(),
                });
            }
        }
        if leaders.iter().filter(|(t, _)| *t == 1).count() > 1 {
            return Err(MutationError::SeveralMainLeaders(id.to_owned()));
        }
        self.edit_department(id, |d| d.leaders = leaders.to_vec())
    }

    /// Sets the HRBPs (any active users).
    pub fn set_department_hrbps(&mut self, id: &str, hrbps: &[UserKey]) -> MutationResult {
        let mut seen = HashSet::new();
        for &k in hrbps {
            self.active_user(k)?;
            if !seen.insert(k) {
                return Err(MutationError::DuplicateUser(k));
            }
        }
        self.edit_department(id, |d| d.hrbps = hrbps.to_vec())
    }

    /// Feishu refuses to delete a department that still has members or sub-departments.
    pub fn delete_department(&mut self, id: &str) -> MutationResult {
        self.live_department(id)?;
        let (members, children) = (self.members(id).len(), self.children(id).len());
        if members > 0 || children > 0 {
            return Err(MutationError::DepartmentNotEmpty {
                id: id.to_owned(),
                members,
                children,
            });
        }
        let Some(before) = self.departments.remove(id) else {
            return Err(MutationError::UnknownDepartment(id.to_owned()));
        };
        self.deleted_departments
            .insert(id.to_owned(), before.clone());
        let mut changes = vec![Change::DepartmentDeleted { before }];
        for g in self.groups.values_mut() {
            if g.departments.iter().any(|d| d == id) {
                g.departments.retain(|d| d != id);
                changes.push(Change::GroupMembersChanged { id: g.id.clone() });
            }
        }
        self.invalidate();
        Ok(changes)
    }

    // ---- user groups ---------------------------------------------------------------

    fn check_group_members(
        &self,
        group: &str,
        kind: GroupKind,
        users: &[UserKey],
        departments: &[String],
    ) -> Result<(), MutationError> {
        for &k in users {
            self.active_user(k)?;
        }
        if !departments.is_empty() && kind == GroupKind::Dynamic {
            return Err(MutationError::DynamicGroupDepartments(group.to_owned()));
        }
        for d in departments {
            self.live_department(d)?;
        }
        Ok(())
    }

    pub fn create_group(&mut self, new: NewGroup) -> MutationResult {
        if new.name.is_empty() {
            return Err(MutationError::Empty("name"));
        }
        self.check_group_members(&new.name, new.kind, &new.users, &new.departments)?;
        if let Some(gid) = &new.group_id
            && self.groups.values().any(|g| &g.group_id == gid)
        {
            return Err(MutationError::GroupIdTaken(gid.clone()));
        }
        let serial = self.next_serial();
        let id = format!("g{}", 100_000 + serial);
        let group_id = new.group_id.unwrap_or_else(|| {
            let mut n = serial;
            while self
                .groups
                .values()
                .any(|g| g.group_id == format!("ug{n:04}"))
            {
                n += 1;
            }
            format!("ug{n:04}")
        });
        let dedup = |v: Vec<UserKey>| -> Vec<UserKey> {
            let mut seen = HashSet::new();
            v.into_iter().filter(|k| seen.insert(*k)).collect()
        };
        let mut departments = new.departments;
        let mut seen = HashSet::new();
        departments.retain(|d| seen.insert(d.clone()));
        self.groups.insert(
            id.clone(),
            GroupRecord {
                id: id.clone(),
                group_id,
                name: new.name,
                description: new.description,
                kind: new.kind,
                users: dedup(new.users),
                departments,
            },
        );
        self.invalidate();
        Ok(vec![Change::GroupCreated { id }])
    }

    pub fn update_group(
        &mut self,
        id: &str,
        name: Option<&str>,
        description: Option<&str>,
    ) -> MutationResult {
        let before = self.group(id)?.clone();
        if name == Some("") {
            return Err(MutationError::Empty("name"));
        }
        let mut g = before.clone();
        if let Some(n) = name {
            g.name = n.to_owned();
        }
        if let Some(d) = description {
            g.description = d.to_owned();
        }
        if g == before {
            return Ok(Vec::new());
        }
        self.groups.insert(id.to_owned(), g);
        self.invalidate();
        Ok(vec![Change::GroupUpdated {
            id: id.to_owned(),
            before,
        }])
    }

    pub fn delete_group(&mut self, id: &str) -> MutationResult {
        self.group(id)?;
        let Some(before) = self.groups.remove(id) else {
            return Err(MutationError::UnknownGroup(id.to_owned()));
        };
        self.invalidate();
        Ok(vec![Change::GroupDeleted { before }])
    }

    /// Adds users and (normal groups only) departments; members already in are skipped.
    pub fn add_group_members(
        &mut self,
        id: &str,
        users: &[UserKey],
        departments: &[String],
    ) -> MutationResult {
        let g = self.group(id)?;
        self.check_group_members(id, g.kind, users, departments)?;
        let before = g.clone();
        let mut g = before.clone();
        for k in users {
            if !g.users.contains(k) {
                g.users.push(*k);
            }
        }
        for d in departments {
            if !g.departments.contains(d) {
                g.departments.push(d.clone());
            }
        }
        self.replace_group_members(before, g)
    }

    /// Removes the given members; ones not in the group are ignored.
    pub fn remove_group_members(
        &mut self,
        id: &str,
        users: &[UserKey],
        departments: &[String],
    ) -> MutationResult {
        let before = self.group(id)?.clone();
        for &k in users {
            self.user(k)?;
        }
        let mut g = before.clone();
        g.users.retain(|k| !users.contains(k));
        g.departments.retain(|d| !departments.contains(d));
        self.replace_group_members(before, g)
    }

    fn replace_group_members(&mut self, before: GroupRecord, after: GroupRecord) -> MutationResult {
        if before == after {
            return Ok(Vec::new());
        }
        let id = after.id.clone();
        self.groups.insert(id.clone(), after);
        self.invalidate();
        Ok(vec![Change::GroupMembersChanged { id }])
    }

    // ---- apps ----------------------------------------------------------------------

    /// Changes an app's contact scope (通讯录权限范围); picked objects must exist.
    pub fn set_app_scope(&mut self, app_id: &str, scope: ContactScope) -> MutationResult {
        let before = self
            .apps
            .get(app_id)
            .ok_or_else(|| MutationError::UnknownApp(app_id.to_owned()))?
            .scope
            .clone();
        if let ContactScope::Partial {
            departments,
            users,
            groups,
        } = &scope
        {
            for d in departments {
                self.live_department(d)?;
            }
            for k in users {
                self.user(*k)?;
            }
            for g in groups {
                self.group(g)?;
            }
        }
        if before == scope {
            return Ok(Vec::new());
        }
        if let Some(app) = self.apps.get_mut(app_id) {
            app.scope = scope;
        }
        self.invalidate();
        Ok(vec![Change::ScopeChanged {
            app_id: app_id.to_owned(),
            before,
        }])
    }

    // ---- random mutations ------------------------------------------------------------

    /// One random, valid mutation of any kind (weights favour profile updates), contact-scope
    /// changes included. Never fails: a pick that turns out invalid or a no-op is replaced by
    /// another.
    pub fn random_mutation(&mut self, rng: &mut impl Rng) -> Vec<Change> {
        self.random_mutation_of(MutationProfile::Full, rng)
    }

    /// One random, valid mutation of the kinds `profile` allows. The same seed gives the same
    /// mutations per profile.
    pub fn random_mutation_of(
        &mut self,
        profile: MutationProfile,
        rng: &mut impl Rng,
    ) -> Vec<Change> {
        const WEIGHTS: [(RandomKind, u32); 19] = [
            (RandomKind::UpdateProfile, 30),
            (RandomKind::Hire, 8),
            (RandomKind::Resign, 5),
            (RandomKind::ToggleFrozen, 4),
            (RandomKind::MoveUser, 7),
            (RandomKind::SetUserLeader, 5),
            (RandomKind::SetDepartmentLeaders, 4),
            (RandomKind::CreateDepartment, 4),
            (RandomKind::RenameDepartment, 4),
            (RandomKind::MoveDepartment, 3),
            (RandomKind::ReorderDepartment, 2),
            (RandomKind::DeleteDepartment, 3),
            (RandomKind::SetHrbps, 1),
            (RandomKind::CreateGroup, 2),
            (RandomKind::UpdateGroup, 2),
            (RandomKind::DeleteGroup, 1),
            (RandomKind::AddGroupMembers, 3),
            (RandomKind::RemoveGroupMembers, 3),
            (RandomKind::ChangeScope, 2),
        ];
        let weights: Vec<(RandomKind, u32)> = WEIGHTS
            .into_iter()
            .filter(|(kind, _)| profile.allows(*kind))
            .collect();
        let total: u32 = weights.iter().map(|(_, w)| w).sum();
        for _ in 0..50 {
            let mut pick = rng.random_range(0..total);
            let kind = weights
                .iter()
                .find(|(_, w)| {
                    if pick < *w {
                        true
                    } else {
                        pick -= w;
                        false
                    }
                })
                .map_or(RandomKind::Hire, |(k, _)| *k);
            if let Some(Ok(changes)) = self.try_random(kind, rng)
                && !changes.is_empty()
            {
                return changes;
            }
        }
        // A hire under the root always works.
        self.hire(NewUser::default()).unwrap_or_default()
    }

    /// `None` when the tenant offers no target for this kind.
    fn try_random<R: Rng + ?Sized>(
        &mut self,
        kind: RandomKind,
        rng: &mut R,
    ) -> Option<MutationResult> {
        let active: Vec<UserKey> = self
            .users
            .values()
            .filter(|u| !u.status.resigned)
            .map(|u| u.key)
            .collect();
        let departments: Vec<String> = self.departments.keys().cloned().collect();
        let groups: Vec<String> = self.groups.keys().cloned().collect();
        let placement = |rng: &mut R| -> Vec<String> {
            if departments.is_empty() || rng.random_bool(0.05) {
                return vec![ROOT_DEPARTMENT_ID.to_owned()];
            }
            let n = if departments.len() >= 2 && rng.random_bool(0.15) {
                2
            } else {
                1
            };
            departments.choose_multiple(rng, n).cloned().collect()
        };
        Some(match kind {
            RandomKind::UpdateProfile => {
                let key = *active.choose(rng)?;
                let patch = self.random_patch(key, rng);
                self.update_user(key, &patch)
            }
            RandomKind::Hire => {
                let p = names::person(rng);
                let new = NewUser {
                    name: Some(p.name),
                    en_name: Some(p.en_name),
                    gender: Some(p.gender),
                    departments: placement(rng),
                    ..NewUser::default()
                };
                self.hire(new)
            }
            RandomKind::Resign => {
                // Keep a workforce to mutate.
                if active.len() < 5 {
                    return None;
                }
                self.resign(*active.choose(rng)?)
            }
            RandomKind::ToggleFrozen => {
                let key = *active.choose(rng)?;
                let frozen = self.users.get(&key)?.status.frozen;
                self.set_frozen(key, !frozen)
            }
            RandomKind::MoveUser => {
                let key = *active.choose(rng)?;
                let to = placement(rng);
                self.move_user(key, &to)
            }
            RandomKind::SetUserLeader => {
                let key = *active.choose(rng)?;
                let leader = if rng.random_bool(0.1) {
                    None
                } else {
                    Some(*active.choose(rng)?)
                };
                self.set_user_leader(key, leader)
            }
            RandomKind::SetDepartmentLeaders => {
                let id = departments.choose(rng)?.clone();
                let members = self.members(&id).to_vec();
                let mut leaders = Vec::new();
                if !members.is_empty() && !rng.random_bool(0.1) {
                    let picked: Vec<UserKey> = members.choose_multiple(rng, 2).copied().collect();
                    leaders.push((1, picked[0]));
                    if picked.len() > 1 && rng.random_bool(0.4) {
                        leaders.push((2, picked[1]));
                    }
                }
                self.set_department_leaders(&id, &leaders)
            }
            RandomKind::CreateDepartment => {
                let parent = if departments.is_empty() || rng.random_bool(0.2) {
                    ROOT_DEPARTMENT_ID.to_owned()
                } else {
                    departments.choose(rng)?.clone()
                };
                let &(zh, en) = names::SUB_DEPARTMENTS.choose(rng)?;
                let n = self.next_serial;
                self.create_department(NewDepartment {
                    name: format!("{zh}{n}"),
                    i18n_name: I18n {
                        zh_cn: Some(format!("{zh}{n}")),
                        en_us: Some(format!("{en} {n}")),
                        ja_jp: None,
                    },
                    parent,
                    department_id: None,
                    order: None,
                    create_chat: rng.random_bool(0.5),
                })
            }
            RandomKind::RenameDepartment => {
                let id = departments.choose(rng)?.clone();
                let &(zh, en) = names::TOP_DEPARTMENTS
                    .iter()
                    .chain(names::SUB_DEPARTMENTS)
                    .collect::<Vec<_>>()
                    .choose(rng)?;
                let n = rng.random_range(1..100);
                let name = format!("{zh}{n}");
                self.rename_department(
                    &id,
                    &name,
                    I18n {
                        zh_cn: Some(name.clone()),
                        en_us: Some(format!("{en} {n}")),
                        ja_jp: None,
                    },
                )
            }
            RandomKind::MoveDepartment => {
                let id = departments.choose(rng)?.clone();
                let subtree: HashSet<String> = self.descendants(&id).into_iter().collect();
                let targets: Vec<&String> = departments
                    .iter()
                    .filter(|d| **d != id && !subtree.contains(*d))
                    .collect();
                let parent = if targets.is_empty() || rng.random_bool(0.2) {
                    ROOT_DEPARTMENT_ID.to_owned()
                } else {
                    (*targets.choose(rng)?).clone()
                };
                self.move_department(&id, &parent)
            }
            RandomKind::ReorderDepartment => {
                let id = departments.choose(rng)?.clone();
                self.reorder_department(&id, rng.random_range(1..100) * 50)
            }
            RandomKind::DeleteDepartment => {
                let empty: Vec<&String> = departments
                    .iter()
                    .filter(|d| self.members(d).is_empty() && self.children(d).is_empty())
                    .collect();
                let id = (*empty.choose(rng)?).clone();
                self.delete_department(&id)
            }
            RandomKind::SetHrbps => {
                let id = departments.choose(rng)?.clone();
                let hrbps: Vec<UserKey> = active.choose(rng).into_iter().copied().collect();
                self.set_department_hrbps(&id, &hrbps)
            }
            RandomKind::CreateGroup => {
                let &(name, description) = names::GROUP_NAMES.choose(rng)?;
                let kind = if rng.random_bool(0.2) {
                    GroupKind::Dynamic
                } else {
                    GroupKind::Normal
                };
                let users = {
                    let n = rng.random_range(0..=5);
                    active.choose_multiple(rng, n)
                }
                .copied()
                .collect();
                let departments = if kind == GroupKind::Normal {
                    {
                        let n = rng.random_range(0..=2);
                        departments.choose_multiple(rng, n)
                    }
                    .cloned()
                    .collect()
                } else {
                    Vec::new()
                };
                self.create_group(NewGroup {
                    name: format!("{name} {}", self.next_serial),
                    description: description.to_owned(),
                    kind,
                    group_id: None,
                    users,
                    departments,
                })
            }
            RandomKind::UpdateGroup => {
                let id = groups.choose(rng)?.clone();
                let n = rng.random_range(1..1000);
                if rng.random_bool(0.5) {
                    self.update_group(&id, Some(&format!("用户组 {n}")), None)
                } else {
                    self.update_group(&id, None, Some(&format!("说明 {n}")))
                }
            }
            RandomKind::DeleteGroup => {
                if groups.len() < 2 {
                    return None;
                }
                self.delete_group(groups.choose(rng)?)
            }
            RandomKind::AddGroupMembers => {
                let id = groups.choose(rng)?.clone();
                let users: Vec<UserKey> = active.choose_multiple(rng, 2).copied().collect();
                let depts: Vec<String> =
                    if self.groups.get(&id)?.kind == GroupKind::Normal && rng.random_bool(0.3) {
                        departments.choose(rng).into_iter().cloned().collect()
                    } else {
                        Vec::new()
                    };
                self.add_group_members(&id, &users, &depts)
            }
            RandomKind::RemoveGroupMembers => {
                let id = groups.choose(rng)?.clone();
                let g = self.groups.get(&id)?;
                let users: Vec<UserKey> = g.users.choose(rng).into_iter().copied().collect();
                let depts: Vec<String> = if rng.random_bool(0.3) {
                    g.departments.choose(rng).into_iter().cloned().collect()
                } else {
                    Vec::new()
                };
                self.remove_group_members(&id, &users, &depts)
            }
            RandomKind::ChangeScope => {
                let app_id = self
                    .apps
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .choose(rng)?
                    .clone();
                let scope = if departments.is_empty() || rng.random_bool(0.3) {
                    ContactScope::All
                } else {
                    let mut d: Vec<String> = {
                        let n = rng.random_range(1..=3);
                        departments.choose_multiple(rng, n)
                    }
                    .cloned()
                    .collect();
                    d.sort();
                    let mut u: Vec<UserKey> = {
                        let n = rng.random_range(0..=3);
                        active.choose_multiple(rng, n)
                    }
                    .copied()
                    .collect();
                    u.sort_unstable();
                    let mut g: Vec<String> = {
                        let n = rng.random_range(0..=2);
                        groups.choose_multiple(rng, n)
                    }
                    .cloned()
                    .collect();
                    g.sort();
                    ContactScope::Partial {
                        departments: d,
                        users: u,
                        groups: g,
                    }
                };
                self.set_app_scope(&app_id, scope)
            }
        })
    }

    /// One or two changed profile fields, with fresh unique values where needed.
    fn random_patch<R: Rng + ?Sized>(&self, key: UserKey, rng: &mut R) -> UserPatch {
        let mut patch = UserPatch::default();
        let serial = self.next_serial;
        for _ in 0..rng.random_range(1..=2) {
            match rng.random_range(0..12) {
                0 => patch.name = Some(names::person(rng).name),
                1 => patch.en_name = Some(names::person(rng).en_name),
                2 => {
                    let local = names::person(rng).email_local;
                    patch.email = Some(email_for(&format!("{local}.{serial}"), key, "example.com"));
                }
                3 => patch.mobile = Some(mobile_for(rng, key)),
                4 => patch.job_title = names::JOB_TITLES.choose(rng).map(|s| (*s).to_owned()),
                5 => {
                    let &(city, country) = names::CITIES.choose(rng).unwrap_or(&("北京", "CN"));
                    patch.city = Some(city.to_owned());
                    patch.country = Some(country.to_owned());
                }
                6 => patch.employee_no = Some(format!("{}-{serial}", employee_no_for(key))),
                7 => {
                    let mut taken = HashSet::new();
                    patch.user_id = Some(fresh_user_id(rng, &mut taken));
                }
                8 => patch.gender = Some(rng.random_range(0..=3)),
                9 => patch.employee_type = Some(random_employee_type(rng)),
                10 => {
                    patch.nickname = Some(if rng.random_bool(0.3) {
                        String::new()
                    } else {
                        format!(
                            "小{}",
                            names::person(rng).name.chars().last().unwrap_or('明')
                        )
                    })
                }
                _ => {
                    patch.work_station = Some(format!(
                        "{}F-{:03}",
                        rng.random_range(1..30),
                        rng.random_range(1..200)
                    ));
                    patch.enterprise_email = Some(format!(
                        "{}.{serial}@mail.example.com",
                        random_hex32(rng).get(..8).unwrap_or("x")
                    ));
                }
            }
        }
        patch
    }

    // ---- invariants ----------------------------------------------------------------

    /// Everything that is inconsistent, described; empty for a healthy tenant.
    /// Linear in the tenant size, so it can check 100,000 users.
    pub fn invariant_violations(&self) -> Vec<String> {
        let mut bad = Vec::new();
        let mut seen: HashMap<&'static str, HashSet<&str>> = HashMap::new();
        for (key, u) in &self.users {
            if *key != u.key {
                bad.push(format!("user stored under {key} has key {}", u.key));
            }
            for field in [
                Unique::UserId,
                Unique::Email,
                Unique::Mobile,
                Unique::EmployeeNo,
            ] {
                if let Some(v) = field.get(u)
                    && !seen.entry(field.name()).or_default().insert(v)
                {
                    bad.push(format!("{} {v:?} is used twice", field.name()));
                }
            }
            if u.status.resigned {
                if !u.memberships.is_empty() {
                    bad.push(format!("resigned user {key} still has memberships"));
                }
            } else {
                if u.memberships.is_empty() {
                    bad.push(format!("active user {key} has no department"));
                }
                let primaries = u.memberships.iter().filter(|m| m.primary).count();
                if primaries != 1 {
                    bad.push(format!("user {key} has {primaries} primary departments"));
                }
            }
            let mut depts = HashSet::new();
            for m in &u.memberships {
                if self.check_placement(&m.department).is_err() {
                    bad.push(format!(
                        "user {key} is in unknown department {}",
                        m.department
                    ));
                }
                if !depts.insert(&m.department) {
                    bad.push(format!("user {key} is in {} twice", m.department));
                }
            }
            if let Some(l) = u.leader {
                match self.users.get(&l) {
                    None => bad.push(format!("user {key} reports to unknown user {l}")),
                    Some(lu) if lu.status.resigned => {
                        bad.push(format!("user {key} reports to resigned user {l}"))
                    }
                    Some(_) if l == *key => bad.push(format!("user {key} reports to themselves")),
                    Some(_) => {}
                }
            }
        }
        bad.extend(self.leader_cycles());

        let mut custom_ids = HashSet::new();
        for (id, d) in &self.departments {
            if *id != d.open_department_id {
                bad.push(format!(
                    "department stored under {id} is {}",
                    d.open_department_id
                ));
            }
            if self.deleted_departments.contains_key(id) {
                bad.push(format!("department {id} is both live and deleted"));
            }
            if !is_valid_department_id(&d.department_id) {
                bad.push(format!(
                    "department {id} has invalid custom id {:?}",
                    d.department_id
                ));
            }
            if !custom_ids.insert(d.department_id.as_str()) {
                bad.push(format!(
                    "custom department id {:?} is used twice",
                    d.department_id
                ));
            }
            if self.check_placement(&d.parent).is_err() {
                bad.push(format!("department {id} has unknown parent {}", d.parent));
            } else if self.ancestors_and_self(&d.parent).contains(id) {
                bad.push(format!("department {id} is part of a cycle"));
            }
            if d.leaders.iter().filter(|(t, _)| *t == 1).count() > 1 {
                bad.push(format!("department {id} has several main leaders"));
            }
            for (t, k) in &d.leaders {
                if !(1..=2).contains(t) {
                    bad.push(format!("department {id} has leader type {t}"));
                }
                match self.users.get(k) {
                    Some(u) if u.memberships.iter().any(|m| &m.department == id) => {}
                    _ => bad.push(format!("leader {k} of department {id} is not a member")),
                }
            }
            for k in &d.hrbps {
                if self.users.get(k).is_none_or(|u| u.status.resigned) {
                    bad.push(format!("HRBP {k} of department {id} is not an active user"));
                }
            }
        }

        let mut group_ids = HashSet::new();
        for (id, g) in &self.groups {
            if *id != g.id {
                bad.push(format!("group stored under {id} is {}", g.id));
            }
            if !group_ids.insert(g.group_id.as_str()) {
                bad.push(format!("custom group id {:?} is used twice", g.group_id));
            }
            let unique_users: BTreeSet<_> = g.users.iter().collect();
            if unique_users.len() != g.users.len() {
                bad.push(format!("group {id} lists a user twice"));
            }
            for k in &g.users {
                if self.users.get(k).is_none_or(|u| u.status.resigned) {
                    bad.push(format!("member {k} of group {id} is not an active user"));
                }
            }
            if g.kind == GroupKind::Dynamic && !g.departments.is_empty() {
                bad.push(format!("dynamic group {id} has department members"));
            }
            for d in &g.departments {
                if !self.departments.contains_key(d) {
                    bad.push(format!("group {id} has unknown department {d}"));
                }
            }
        }
        bad
    }

    /// Reporting cycles, found by colouring (linear).
    fn leader_cycles(&self) -> Vec<String> {
        // 1 = on the current path, 2 = known to end.
        let mut state: HashMap<UserKey, u8> = HashMap::with_capacity(self.users.len());
        let mut bad = Vec::new();
        for &start in self.users.keys() {
            let mut path = Vec::new();
            let mut cur = Some(start);
            while let Some(k) = cur {
                match state.get(&k) {
                    Some(2) => break,
                    Some(_) => {
                        bad.push(format!("reporting cycle through user {k}"));
                        break;
                    }
                    None => {
                        state.insert(k, 1);
                        path.push(k);
                        cur = self.users.get(&k).and_then(|u| u.leader);
                    }
                }
            }
            for k in path {
                state.insert(k, 2);
            }
        }
        bad
    }
}

/// Which kinds of change [`Tenant::random_mutation_of`] may make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MutationProfile {
    /// Every kind, the app's contact scope included: for tests of the sync engine.
    #[default]
    Full,
    /// What an organization does day to day: hires, leavers, profile updates, freezes,
    /// moves, leaders, department and group changes, group members. Never the app's contact
    /// scope or permissions, and at most one deletion per mutation, so a reconciliation finds
    /// nothing to delete in bulk (`orgsync demo` uses it).
    Ordinary,
}

impl MutationProfile {
    fn allows(self, kind: RandomKind) -> bool {
        match self {
            Self::Full => true,
            Self::Ordinary => !matches!(kind, RandomKind::ChangeScope),
        }
    }
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RandomKind {
    UpdateProfile,
    Hire,
    Resign,
    ToggleFrozen,
    MoveUser,
    SetUserLeader,
    SetDepartmentLeaders,
    CreateDepartment,
    RenameDepartment,
    MoveDepartment,
    ReorderDepartment,
    DeleteDepartment,
    SetHrbps,
    CreateGroup,
    UpdateGroup,
    DeleteGroup,
    AddGroupMembers,
    RemoveGroupMembers,
    ChangeScope,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{GenerateConfig, generate};
    use crate::tenant::AppRecord;

    fn tenant() -> Tenant {
        generate(
            &GenerateConfig::default(),
            vec![
                AppRecord::new("cli_mutate0000000001", "s1"),
                AppRecord::new("cli_mutate0000000002", "s2"),
            ],
        )
    }

    fn assert_healthy(t: &Tenant) {
        let bad = t.invariant_violations();
        assert!(bad.is_empty(), "{bad:#?}");
    }

    fn active(t: &Tenant) -> Vec<UserKey> {
        t.users
            .values()
            .filter(|u| !u.status.resigned && u.memberships[0].department != ROOT_DEPARTMENT_ID)
            .map(|u| u.key)
            .collect()
    }

    /// A department without sub-departments.
    fn leaf(t: &Tenant) -> String {
        t.departments
            .keys()
            .find(|d| t.children(d).is_empty() && !t.members(d).is_empty())
            .unwrap()
            .clone()
    }

    /// A main leader with at least one direct report.
    fn leader_with_reports(t: &Tenant) -> (UserKey, String) {
        t.departments
            .values()
            .filter_map(|d| d.main_leader().map(|l| (l, d.open_department_id.clone())))
            .find(|(l, _)| t.users.values().any(|u| u.leader == Some(*l)))
            .unwrap()
    }

    #[test]
    fn hire_places_a_new_user_with_unique_generated_fields() {
        let mut t = tenant();
        let dept = leaf(&t);
        let key = t.next_user_key;
        let changes = t
            .hire(NewUser {
                name: Some("新同事".into()),
                departments: vec![dept.clone()],
                ..NewUser::default()
            })
            .unwrap();
        assert_eq!(changes, vec![Change::UserCreated { key }]);
        assert_eq!(Change::created_user(&changes), Some(key));
        let u = &t.users[&key];
        assert_eq!(u.name, "新同事");
        assert_eq!(u.memberships.len(), 1);
        assert!(u.memberships[0].primary && u.memberships[0].department == dept);
        assert!(t.members(&dept).contains(&key));
        assert_eq!(t.next_user_key, key + 1);
        assert_healthy(&t);

        // Under the root by default; generated values do not clash.
        let changes = t.hire(NewUser::default()).unwrap();
        let second = Change::created_user(&changes).unwrap();
        assert_eq!(
            t.users[&second].memberships[0].department,
            ROOT_DEPARTMENT_ID
        );
        assert_healthy(&t);
    }

    #[test]
    fn hire_refuses_taken_values_and_unknown_targets() {
        let mut t = tenant();
        let someone = t.users.values().next().unwrap().clone();
        let err = t
            .hire(NewUser {
                email: someone.email.clone(),
                ..NewUser::default()
            })
            .unwrap_err();
        assert_eq!(
            err,
            MutationError::ValueTaken {
                field: "email",
                value: someone.email.clone().unwrap(),
                owner: someone.key
            }
        );
        assert!(err.to_string().contains("already used by user"));
        assert!(matches!(
            t.hire(NewUser {
                user_id: Some(someone.user_id.clone()),
                ..NewUser::default()
            }),
            Err(MutationError::ValueTaken {
                field: "user_id",
                ..
            })
        ));
        assert_eq!(
            t.hire(NewUser {
                departments: vec!["od-nope".into()],
                ..NewUser::default()
            }),
            Err(MutationError::UnknownDepartment("od-nope".into()))
        );
        assert_eq!(
            t.hire(NewUser {
                leader: Some(999_999),
                ..NewUser::default()
            }),
            Err(MutationError::UnknownUser(999_999))
        );
        assert_eq!(t.users.len(), 200, "nothing was hired");
    }

    #[test]
    fn update_user_changes_the_profile_and_reports_the_old_record() {
        let mut t = tenant();
        let key = active(&t)[0];
        let before = t.users[&key].clone();
        let changes = t
            .update_user(
                key,
                &UserPatch {
                    name: Some("李雷".into()),
                    email: Some("li.lei.0@example.com".into()),
                    en_name: Some(String::new()),
                    job_title: Some("架构师".into()),
                    ..UserPatch::default()
                },
            )
            .unwrap();
        assert_eq!(
            changes,
            vec![Change::UserUpdated {
                key,
                before: before.clone()
            }]
        );
        let u = &t.users[&key];
        assert_eq!(u.name, "李雷");
        assert_eq!(u.email.as_deref(), Some("li.lei.0@example.com"));
        assert_eq!(u.en_name, None, "an empty string clears");
        assert_eq!(u.job_title.as_deref(), Some("架构师"));
        assert_eq!(u.mobile, before.mobile);

        // The same patch again changes nothing.
        let again = t
            .update_user(
                key,
                &UserPatch {
                    name: Some("李雷".into()),
                    ..UserPatch::default()
                },
            )
            .unwrap();
        assert!(again.is_empty());

        let other = active(&t)[1];
        let mobile = t.users[&other].mobile.clone();
        assert!(matches!(
            t.update_user(
                key,
                &UserPatch {
                    mobile: mobile.clone(),
                    ..UserPatch::default()
                }
            ),
            Err(MutationError::ValueTaken { field: "mobile", owner, .. }) if owner == other
        ));
        assert_eq!(
            t.update_user(
                key,
                &UserPatch {
                    name: Some(String::new()),
                    ..UserPatch::default()
                }
            ),
            Err(MutationError::Empty("name"))
        );
        assert!(matches!(
            t.update_user(
                key,
                &UserPatch {
                    user_id: Some("has space".into()),
                    ..UserPatch::default()
                }
            ),
            Err(MutationError::Invalid {
                field: "user_id",
                ..
            })
        ));
        assert_healthy(&t);
    }

    #[test]
    fn freeze_and_unfreeze_keep_memberships() {
        let mut t = tenant();
        let key = active(&t)
            .into_iter()
            .find(|k| !t.users[k].status.frozen)
            .unwrap();
        let memberships = t.users[&key].memberships.clone();
        let changes = t.freeze(key).unwrap();
        assert!(
            matches!(&changes[..], [Change::UserUpdated { key: k, before }] if *k == key && !before.status.frozen)
        );
        assert!(t.users[&key].status.frozen);
        assert_eq!(t.users[&key].memberships, memberships);
        assert!(t.freeze(key).unwrap().is_empty(), "already frozen");
        t.unfreeze(key).unwrap();
        assert!(!t.users[&key].status.frozen);
        assert_healthy(&t);
    }

    #[test]
    fn resignation_removes_memberships_leadership_reports_and_groups() {
        let mut t = tenant();
        let (key, led) = leader_with_reports(&t);
        // Make sure they are in a group too.
        let group = t.groups.keys().next().unwrap().clone();
        t.add_group_members(&group, &[key], &[]).unwrap();
        let reports: Vec<UserKey> = t
            .users
            .values()
            .filter(|u| u.leader == Some(key))
            .map(|u| u.key)
            .collect();
        let before = t.users[&key].clone();

        let changes = t.resign(key).unwrap();
        assert_eq!(
            changes[0],
            Change::UserDeleted {
                before: before.clone()
            }
        );
        assert!(changes.contains(&Change::GroupMembersChanged { id: group.clone() }));
        assert!(changes.iter().any(
            |c| matches!(c, Change::DepartmentUpdated { id, before } if *id == led && before.main_leader() == Some(key))
        ));
        for r in &reports {
            assert!(changes.iter().any(
                |c| matches!(c, Change::UserUpdated { key: k, before } if k == r && before.leader == Some(key))
            ));
            assert_eq!(t.users[r].leader, None);
        }
        let u = &t.users[&key];
        assert!(u.status.resigned && !u.status.activated);
        assert!(u.memberships.is_empty());
        assert_eq!(u.leader, before.leader, "their own manager link is kept");
        assert_eq!(t.departments[&led].main_leader(), None);
        assert!(!t.groups[&group].users.contains(&key));
        assert!(!t.members(&led).contains(&key));
        assert_healthy(&t);

        assert_eq!(t.resign(key), Err(MutationError::UserResigned(key)));
        assert_eq!(t.freeze(key), Err(MutationError::UserResigned(key)));
        assert_eq!(t.resign(424_242), Err(MutationError::UnknownUser(424_242)));
    }

    #[test]
    fn moving_a_user_replaces_memberships_and_drops_leadership() {
        let mut t = tenant();
        let (key, led) = leader_with_reports(&t);
        let target = t
            .departments
            .keys()
            .find(|d| {
                **d != led
                    && !t.users[&key]
                        .memberships
                        .iter()
                        .any(|m| &m.department == *d)
            })
            .unwrap()
            .clone();
        let changes = t
            .move_user(key, &[target.clone(), ROOT_DEPARTMENT_ID.to_owned()])
            .unwrap();
        assert!(matches!(&changes[0], Change::UserUpdated { key: k, .. } if *k == key));
        assert!(
            changes
                .iter()
                .any(|c| matches!(c, Change::DepartmentUpdated { id, .. } if *id == led))
        );
        let u = &t.users[&key];
        assert_eq!(u.memberships.len(), 2);
        assert!(u.memberships[0].primary && u.memberships[0].department == target);
        assert!(!u.memberships[1].primary);
        assert!(t.members(ROOT_DEPARTMENT_ID).contains(&key));
        assert!(!t.departments[&led].leaders.iter().any(|(_, k)| *k == key));
        assert_healthy(&t);

        assert_eq!(
            t.move_user(key, &[]),
            Err(MutationError::Empty("departments"))
        );
        assert_eq!(
            t.move_user(key, &[target.clone(), target.clone()]),
            Err(MutationError::DuplicateDepartment(target.clone()))
        );
        assert!(
            t.move_user(key, &[target.clone(), ROOT_DEPARTMENT_ID.into()])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn leaders_must_not_form_cycles() {
        let mut t = tenant();
        let users = active(&t);
        let (a, b, c) = (users[0], users[1], users[2]);
        t.set_user_leader(a, None).unwrap();
        t.set_user_leader(b, Some(a)).unwrap();
        let changes = t.set_user_leader(c, Some(b)).unwrap();
        assert!(matches!(&changes[..], [Change::UserUpdated { key, .. }] if *key == c));
        assert_eq!(t.users[&c].leader, Some(b));
        assert_eq!(
            t.set_user_leader(a, Some(c)),
            Err(MutationError::LeaderCycle { user: a, leader: c })
        );
        assert_eq!(
            t.set_user_leader(a, Some(a)),
            Err(MutationError::OwnLeader(a))
        );
        assert_healthy(&t);
    }

    #[test]
    fn department_leaders_are_members() {
        let mut t = tenant();
        let dept = leaf(&t);
        let members = t.members(&dept).to_vec();
        let outsider = active(&t)
            .into_iter()
            .find(|k| !t.users[k].memberships.iter().any(|m| m.department == dept))
            .unwrap();
        assert_eq!(
            t.set_department_leaders(&dept, &[(1, outsider)]),
            Err(MutationError::LeaderNotMember {
                user: outsider,
                department: dept.clone()
            })
        );
        assert_eq!(
            t.set_department_leaders(&dept, &[(3, members[0])]),
            Err(MutationError::InvalidLeaderType(3))
        );
        if members.len() >= 2 {
            assert_eq!(
                t.set_department_leaders(&dept, &[(1, members[0]), (1, members[1])]),
                Err(MutationError::SeveralMainLeaders(dept.clone()))
            );
        }
        let before = t.departments[&dept].clone();
        let changes = t.set_department_leaders(&dept, &[(1, members[0])]).unwrap();
        if before.leaders != vec![(1, members[0])] {
            assert_eq!(
                changes,
                vec![Change::DepartmentUpdated {
                    id: dept.clone(),
                    before
                }]
            );
        }
        assert_eq!(t.departments[&dept].main_leader(), Some(members[0]));
        assert_healthy(&t);
    }

    #[test]
    fn department_lifecycle_create_rename_move_reorder_delete() {
        let mut t = tenant();
        let parent = leaf(&t);
        let changes = t
            .create_department(NewDepartment {
                name: "新部门".into(),
                i18n_name: I18n {
                    en_us: Some("New Team".into()),
                    ..I18n::default()
                },
                parent: parent.clone(),
                create_chat: true,
                ..NewDepartment::default()
            })
            .unwrap();
        let id = Change::created_id(&changes).unwrap().to_owned();
        assert_eq!(changes, vec![Change::DepartmentCreated { id: id.clone() }]);
        let d = &t.departments[&id];
        assert_eq!(d.parent, parent);
        assert_eq!(d.i18n_name.zh_cn.as_deref(), Some("新部门"));
        assert!(is_valid_department_id(&d.department_id));
        assert!(d.chat_id.as_deref().unwrap().starts_with("oc_"));
        assert_eq!(t.children(&parent), std::slice::from_ref(&id));

        // Custom ids: taken and malformed ones are refused.
        let taken = t.departments[&parent].department_id.clone();
        assert_eq!(
            t.set_department_custom_id(&id, &taken),
            Err(MutationError::DepartmentIdTaken(taken.clone()))
        );
        for bad in ["od-123", "-abc", "", "a b", &"x".repeat(65)] {
            assert_eq!(
                t.set_department_custom_id(&id, bad),
                Err(MutationError::InvalidDepartmentId(bad.to_owned()))
            );
        }
        t.set_department_custom_id(&id, "team.new@hq_1-a").unwrap();

        let before = t.departments[&id].clone();
        let changes = t
            .rename_department(
                &id,
                "平台二组",
                I18n {
                    en_us: Some("Platform 2".into()),
                    ..I18n::default()
                },
            )
            .unwrap();
        assert_eq!(
            changes,
            vec![Change::DepartmentUpdated {
                id: id.clone(),
                before
            }]
        );
        assert_eq!(t.departments[&id].name, "平台二组");

        // Moving a parent under its own child would make a cycle.
        assert_eq!(
            t.move_department(&parent, &id),
            Err(MutationError::DepartmentCycle {
                id: parent.clone(),
                parent: id.clone()
            })
        );
        assert!(matches!(
            t.move_department(&id, &id),
            Err(MutationError::DepartmentCycle { .. })
        ));
        t.move_department(&id, ROOT_DEPARTMENT_ID).unwrap();
        assert_eq!(t.departments[&id].parent, ROOT_DEPARTMENT_ID);
        let last = t.children(ROOT_DEPARTMENT_ID).last().unwrap().clone();
        assert_eq!(last, id, "placed after its new siblings");
        t.reorder_department(&id, 1).unwrap();
        assert_eq!(t.children(ROOT_DEPARTMENT_ID)[0], id);
        assert_eq!(
            t.move_department(ROOT_DEPARTMENT_ID, &id),
            Err(MutationError::RootDepartment)
        );

        // Put it in a group, then delete it.
        let group = t
            .groups
            .values()
            .find(|g| g.kind == GroupKind::Normal)
            .unwrap()
            .id
            .clone();
        t.add_group_members(&group, &[], std::slice::from_ref(&id))
            .unwrap();
        let before = t.departments[&id].clone();
        let changes = t.delete_department(&id).unwrap();
        assert_eq!(
            changes[0],
            Change::DepartmentDeleted {
                before: before.clone()
            }
        );
        assert_eq!(
            changes[1],
            Change::GroupMembersChanged { id: group.clone() }
        );
        assert!(t.is_deleted_department(&id));
        assert_eq!(t.deleted_departments[&id], before);
        assert!(!t.groups[&group].departments.contains(&id));
        assert_eq!(
            t.delete_department(&id),
            Err(MutationError::UnknownDepartment(id.clone()))
        );
        assert_healthy(&t);
    }

    #[test]
    fn non_empty_departments_cannot_be_deleted() {
        let mut t = tenant();
        let with_members = leaf(&t);
        let members = t.members(&with_members).len();
        assert_eq!(
            t.delete_department(&with_members),
            Err(MutationError::DepartmentNotEmpty {
                id: with_members.clone(),
                members,
                children: 0
            })
        );
        let with_children = t
            .departments
            .keys()
            .find(|d| !t.children(d).is_empty())
            .unwrap()
            .clone();
        let err = t.delete_department(&with_children).unwrap_err();
        assert!(
            matches!(&err, MutationError::DepartmentNotEmpty { children, .. } if *children > 0)
        );
        assert!(err.to_string().contains("sub-department"));
        assert!(t.departments.contains_key(&with_children));
    }

    #[test]
    fn group_lifecycle() {
        let mut t = tenant();
        let users = active(&t);
        let dept = leaf(&t);
        assert_eq!(
            t.create_group(NewGroup {
                name: "动态组".into(),
                description: String::new(),
                kind: GroupKind::Dynamic,
                group_id: None,
                users: vec![users[0]],
                departments: vec![dept.clone()],
            }),
            Err(MutationError::DynamicGroupDepartments("动态组".into()))
        );
        let changes = t
            .create_group(NewGroup {
                name: "项目 Gamma".into(),
                description: "Gamma 项目".into(),
                kind: GroupKind::Normal,
                group_id: Some("gamma".into()),
                users: vec![users[0], users[1], users[0]],
                departments: vec![dept.clone()],
            })
            .unwrap();
        let id = Change::created_id(&changes).unwrap().to_owned();
        assert_eq!(changes, vec![Change::GroupCreated { id: id.clone() }]);
        assert_eq!(t.groups[&id].users, vec![users[0], users[1]]);
        assert!(matches!(
            t.create_group(NewGroup {
                name: "x".into(),
                description: String::new(),
                kind: GroupKind::Normal,
                group_id: Some("gamma".into()),
                users: vec![],
                departments: vec![],
            }),
            Err(MutationError::GroupIdTaken(_))
        ));

        let before = t.groups[&id].clone();
        assert_eq!(
            t.update_group(&id, Some("项目 Delta"), None).unwrap(),
            vec![Change::GroupUpdated {
                id: id.clone(),
                before
            }]
        );
        assert_eq!(t.groups[&id].name, "项目 Delta");
        assert!(
            t.update_group(&id, Some("项目 Delta"), None)
                .unwrap()
                .is_empty()
        );

        assert_eq!(
            t.add_group_members(&id, &[users[2], users[0]], &[])
                .unwrap(),
            vec![Change::GroupMembersChanged { id: id.clone() }]
        );
        assert_eq!(t.groups[&id].users, vec![users[0], users[1], users[2]]);
        assert!(
            t.add_group_members(&id, &[users[2]], &[])
                .unwrap()
                .is_empty()
        );
        t.remove_group_members(&id, &[users[1]], std::slice::from_ref(&dept))
            .unwrap();
        assert_eq!(t.groups[&id].users, vec![users[0], users[2]]);
        assert!(t.groups[&id].departments.is_empty());

        let before = t.groups[&id].clone();
        assert_eq!(
            t.delete_group(&id).unwrap(),
            vec![Change::GroupDeleted { before }]
        );
        assert_eq!(
            t.delete_group(&id),
            Err(MutationError::UnknownGroup(id.clone()))
        );
        assert_healthy(&t);
    }

    #[test]
    fn app_scope_changes() {
        let mut t = tenant();
        let dept = leaf(&t);
        let scope = ContactScope::Partial {
            departments: vec![dept.clone()],
            users: vec![],
            groups: vec![],
        };
        assert_eq!(
            t.set_app_scope("cli_nope", scope.clone()),
            Err(MutationError::UnknownApp("cli_nope".into()))
        );
        let changes = t
            .set_app_scope("cli_mutate0000000001", scope.clone())
            .unwrap();
        assert_eq!(
            changes,
            vec![Change::ScopeChanged {
                app_id: "cli_mutate0000000001".into(),
                before: ContactScope::All
            }]
        );
        assert_eq!(t.apps["cli_mutate0000000001"].scope, scope);
        assert!(
            t.set_app_scope("cli_mutate0000000001", scope)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            t.set_app_scope(
                "cli_mutate0000000001",
                ContactScope::Partial {
                    departments: vec!["od-gone".into()],
                    users: vec![],
                    groups: vec![]
                }
            ),
            Err(MutationError::UnknownDepartment("od-gone".into()))
        );
    }

    #[test]
    fn two_thousand_random_mutations_keep_the_tenant_consistent() {
        let mut t = tenant();
        let mut rng = ChaCha8Rng::seed_from_u64(99);
        let mut kinds = BTreeSet::new();
        for i in 0..2_000 {
            let changes = t.random_mutation(&mut rng);
            assert!(!changes.is_empty(), "mutation {i} changed nothing");
            kinds.extend(changes.iter().map(Change::kind));
            let bad = t.invariant_violations();
            assert!(bad.is_empty(), "after mutation {i} ({changes:?}): {bad:#?}");
        }
        let all: BTreeSet<&str> = [
            "user_created",
            "user_updated",
            "user_deleted",
            "department_created",
            "department_updated",
            "department_deleted",
            "group_created",
            "group_updated",
            "group_deleted",
            "group_members_changed",
            "scope_changed",
        ]
        .into();
        assert_eq!(kinds, all);
    }

    #[test]
    fn ordinary_mutations_never_touch_scope_or_permissions_nor_delete_in_bulk() {
        let mut t = tenant();
        let apps = t.apps.clone();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut kinds = BTreeSet::new();
        for i in 0..3_000 {
            let changes = t.random_mutation_of(MutationProfile::Ordinary, &mut rng);
            assert!(!changes.is_empty(), "mutation {i} changed nothing");
            kinds.extend(changes.iter().map(Change::kind));
            let deletions = changes
                .iter()
                .filter(|c| {
                    matches!(
                        c,
                        Change::UserDeleted { .. }
                            | Change::DepartmentDeleted { .. }
                            | Change::GroupDeleted { .. }
                    )
                })
                .count();
            assert!(
                deletions <= 1,
                "mutation {i} deleted {deletions}: {changes:?}"
            );
            assert_eq!(t.apps, apps, "mutation {i} changed an app: {changes:?}");
            if i % 100 == 99 {
                let bad = t.invariant_violations();
                assert!(bad.is_empty(), "after mutation {i}: {bad:#?}");
            }
        }
        let everyday: BTreeSet<&str> = [
            "user_created",
            "user_updated",
            "user_deleted",
            "department_created",
            "department_updated",
            "department_deleted",
            "group_created",
            "group_updated",
            "group_deleted",
            "group_members_changed",
        ]
        .into();
        assert_eq!(kinds, everyday, "every ordinary kind, and no scope change");
        assert_eq!(t.invariant_violations(), Vec::<String>::new());
    }

    #[test]
    fn random_mutations_are_deterministic() {
        let run = || {
            let mut t = tenant();
            let mut rng = ChaCha8Rng::seed_from_u64(5);
            let changes: Vec<Vec<Change>> = (0..200).map(|_| t.random_mutation(&mut rng)).collect();
            (
                changes,
                t.users.clone(),
                t.departments.clone(),
                t.groups.clone(),
            )
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn invariant_check_finds_broken_tenants() {
        let mut t = tenant();
        let users = active(&t);
        t.users.get_mut(&users[0]).unwrap().leader = Some(users[1]);
        t.users.get_mut(&users[1]).unwrap().leader = Some(users[0]);
        let email = t.users[&users[2]].email.clone();
        t.users.get_mut(&users[3]).unwrap().email = email;
        t.users.get_mut(&users[4]).unwrap().memberships.clear();
        t.invalidate();
        let bad = t.invariant_violations();
        assert!(bad.iter().any(|b| b.contains("reporting cycle")), "{bad:?}");
        assert!(bad.iter().any(|b| b.contains("used twice")), "{bad:?}");
        assert!(bad.iter().any(|b| b.contains("no department")), "{bad:?}");
    }
}
