//! Feishu object → directory object, with "omitted = unknown, not cleared" (design.md §2).
//!
//! Every `merge_*` starts from the stored object (or a fresh one) and overwrites only what the
//! Feishu object states. References to other objects (departments, managers, parents,
//! leaders, group members) go through a [`Resolve`]: a reference it cannot resolve is
//! dropped and reported in [`Merged::unresolved`], never invented.
//!
//! Merging changes content only: the id, pool, version, timestamps and tombstone of an
//! existing object are kept. Restoring a tombstone and numbering versions is the caller's
//! decision (the planner, event application).

use std::fmt;

use feishu::model as fs;

use crate::ids::{DepartmentId, GroupId, Millis, PoolId, UserId};
use crate::model::{
    Department, ExternalRef, Group, GroupKind, GroupMember, I18nName, Leader, LeaderKind,
    Membership, ObjectKind, Profile, User, UserProfile, UserStatus,
};
use crate::snapshot::{ROOT, SnapshotGroup};

/// Feishu id → orgsync id, for the references inside Feishu objects. The planner's resolver
/// also knows the ids it assigned to objects created in the same plan, and refuses objects
/// the plan deletes.
pub trait Resolve {
    /// By `open_id`.
    fn user(&self, open_id: &str) -> Option<UserId>;
    /// By `open_department_id`.
    fn department(&self, open_department_id: &str) -> Option<DepartmentId>;
    /// By group id.
    fn group(&self, group_id: &str) -> Option<GroupId>;

    /// Whether `open_id` resolves to `id`. Lets a merge keep a stored reference without
    /// building a new id; override when [`Resolve::user`] allocates.
    fn user_is(&self, open_id: &str, id: &UserId) -> bool {
        self.user(open_id).as_ref() == Some(id)
    }

    /// Whether `open_department_id` resolves to `id` (see [`Resolve::user_is`]).
    fn department_is(&self, open_department_id: &str, id: &DepartmentId) -> bool {
        self.department(open_department_id).as_ref() == Some(id)
    }
}

/// Which reference could not be resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RefField {
    /// A user's department.
    Department,
    /// A user's manager (`leader_user_id`).
    Manager,
    /// A department's parent.
    Parent,
    /// A department's leader.
    Leader,
    /// A user member of a group.
    GroupUser,
    /// A department member of a group.
    GroupDepartment,
}

impl RefField {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Department => "department",
            Self::Manager => "manager",
            Self::Parent => "parent",
            Self::Leader => "leader",
            Self::GroupUser => "member user",
            Self::GroupDepartment => "member department",
        }
    }
}

/// A reference the resolver did not know (outside the synced part, or not created).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Unresolved {
    pub field: RefField,
    /// The Feishu id that was referenced.
    pub external_id: String,
}

impl fmt::Display for Unresolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.field.as_str(), self.external_id)
    }
}

/// A merge result: the object, and the references it had to drop.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged<T> {
    pub object: T,
    pub unresolved: Vec<Unresolved>,
}

/// How far the department listings of a pull can be trusted for a user's memberships when the
/// user object itself does not carry `department_ids` / `orders`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing<'a> {
    /// Every department list was read: the user is in exactly these (`"0"` = root).
    Authoritative(&'a [String]),
    /// Some lists were not read: these memberships are added, none is removed.
    Partial(&'a [String]),
}

impl Listing<'_> {
    /// Nothing listed and nothing concluded (e.g. an event payload).
    pub const NONE: Listing<'static> = Listing::Partial(&[]);
}

// ---- status ------------------------------------------------------------------------------

/// The account state Feishu's flags describe, or `None` when the app cannot see them.
/// Precedence: resigned > exited > frozen (also the top-level `is_frozen`) > unjoined > active.
/// `Active` needs the `status` object (the employee permission): without it, "no flag set"
/// only means "unknown".
pub fn status_of(user: &fs::User) -> Option<UserStatus> {
    let status = user.status.as_ref();
    let raised = |flag: fn(&fs::UserStatus) -> Option<bool>| status.and_then(flag) == Some(true);
    if raised(|s| s.is_resigned) {
        Some(UserStatus::Resigned)
    } else if raised(|s| s.is_exited) {
        Some(UserStatus::Exited)
    } else if raised(|s| s.is_frozen) || user.is_frozen == Some(true) {
        // Either copy of the suspension flag suspends: the safe reading when they disagree.
        Some(UserStatus::Frozen)
    } else if raised(|s| s.is_unjoin) {
        Some(UserStatus::Unjoined)
    } else if status.is_some_and(|s| {
        s.is_resigned.is_some()
            || s.is_exited.is_some()
            || s.is_frozen.is_some()
            || s.is_unjoin.is_some()
    }) {
        Some(UserStatus::Active)
    } else {
        None
    }
}

/// The largest avatar Feishu gave: origin, then 640, 240, 72.
pub fn avatar_url(avatar: &fs::Avatar) -> Option<&str> {
    avatar
        .avatar_origin
        .as_deref()
        .or(avatar.avatar_640.as_deref())
        .or(avatar.avatar_240.as_deref())
        .or(avatar.avatar_72.as_deref())
}

/// The departments a user object itself states (`department_ids`, else the ids of `orders`),
/// deduplicated, in Feishu's order, `"0"` included. `None`: the object does not say.
pub fn stated_departments(user: &fs::User) -> Option<Vec<&str>> {
    let ids: Vec<&str> = if let Some(ids) = &user.department_ids {
        ids.iter().map(String::as_str).collect()
    } else {
        user.orders
            .as_ref()?
            .iter()
            .filter_map(|o| o.department_id.as_deref())
            .collect()
    };
    Some(dedup_str(ids))
}

/// The primary department the object states explicitly (`is_primary_dept`), when any order
/// carries the flag: `Some(Some(id))` the flagged one, `Some(None)` flags present but none
/// raised ("the first"), `None` no flag at all (unknown).
pub fn stated_primary(user: &fs::User) -> Option<Option<&str>> {
    let orders = user.orders.as_ref()?;
    if !orders.iter().any(|o| o.is_primary_dept.is_some()) {
        return None;
    }
    Some(
        orders
            .iter()
            .find(|o| o.is_primary_dept == Some(true))
            .and_then(|o| o.department_id.as_deref()),
    )
}

/// Drops empty and repeated ids, keeping the first. A user is in a handful of departments:
/// a linear scan beats a set.
fn dedup_str(ids: Vec<&str>) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::with_capacity(ids.len());
    for id in ids {
        if !id.is_empty() && !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

// ---- users -------------------------------------------------------------------------------

/// Merges a Feishu user into the stored one (or a new one with `new_id`; ignored when
/// `existing` is given).
///
/// - Profile fields take the Feishu value when present, else keep the stored one.
/// - Status from [`status_of`]; when unknown the stored one stays (`Active` for a new user),
///   except that an explicit top-level `is_frozen = false` lifts a stored `Frozen`.
/// - Memberships from `department_ids` / `orders` when present, else from `listing`. The root
///   `"0"` sets `in_root`. Orders come from `orders`; orders Feishu does not state are kept
///   from the stored membership of the same department. The primary department is the one
///   flagged `is_primary_dept`; without any flag, the stored primary if still a member, else
///   the first.
/// - Manager from `leader_user_id` (`""` = none; unknown → `None`, reported).
/// - A resigned user has no memberships: resignation detaches at once.
pub fn merge_user(
    existing: Option<&User>,
    feishu: &fs::User,
    listing: Listing<'_>,
    resolve: &dyn Resolve,
    pool_id: &PoolId,
    new_id: UserId,
    now: Millis,
) -> Merged<User> {
    let mut unresolved = Vec::new();
    let mut user = match existing {
        Some(u) => u.clone(),
        None => User {
            id: new_id,
            pool_id: pool_id.clone(),
            profile: Profile::empty(),
            status: UserStatus::Active,
            departments: Vec::new(),
            in_root: false,
            manager_id: None,
            version: 0,
            created_at: now,
            updated_at: now,
            deleted_at: None,
        },
    };
    merge_profile(&mut user.profile, feishu);

    match status_of(feishu) {
        Some(status) => user.status = status,
        None => {
            if feishu.is_frozen() == Some(false) && user.status == UserStatus::Frozen {
                user.status = UserStatus::Active;
            }
        }
    }

    merge_memberships(&mut user, feishu, listing, resolve, &mut unresolved);

    match feishu.leader_user_id.as_deref() {
        None => {}
        Some("") => user.manager_id = None,
        Some(open_id) => {
            if !user
                .manager_id
                .as_ref()
                .is_some_and(|m| resolve.user_is(open_id, m))
            {
                user.manager_id = resolve.user(open_id);
            }
            if user.manager_id.is_none() {
                unresolved.push(Unresolved {
                    field: RefField::Manager,
                    external_id: open_id.to_owned(),
                });
            }
        }
    }

    if user.status == UserStatus::Resigned {
        detach(&mut user);
    }
    Merged {
        object: user,
        unresolved,
    }
}

fn merge_profile(p: &mut UserProfile, f: &fs::User) {
    fn take<T: Clone>(field: &mut Option<T>, value: &Option<T>) {
        if value.is_some() {
            field.clone_from(value);
        }
    }
    take(&mut p.name, &f.name);
    take(&mut p.en_name, &f.en_name);
    take(&mut p.nickname, &f.nickname);
    take(&mut p.email, &f.email);
    take(&mut p.enterprise_email, &f.enterprise_email);
    take(&mut p.mobile, &f.mobile);
    take(&mut p.gender, &f.gender);
    if let Some(url) = f.avatar.as_ref().and_then(avatar_url) {
        p.avatar_url = Some(url.to_owned());
    }
    take(&mut p.city, &f.city);
    take(&mut p.country, &f.country);
    take(&mut p.work_station, &f.work_station);
    take(&mut p.job_title, &f.job_title);
    take(&mut p.employee_no, &f.employee_no);
    take(&mut p.employee_type, &f.employee_type);
    take(&mut p.join_time, &f.join_time);
    take(&mut p.is_tenant_manager, &f.is_tenant_manager);
    if let Some(attrs) = &f.custom_attrs {
        // Plain data with string keys: serialising cannot fail; if it ever did, unknown it is.
        if let Ok(value) = serde_json::to_value(attrs) {
            p.custom_attrs = Some(value);
        }
    }
}

fn merge_memberships(
    user: &mut User,
    f: &fs::User,
    listing: Listing<'_>,
    resolve: &dyn Resolve,
    unresolved: &mut Vec<Unresolved>,
) {
    let (ids, additive) = match (stated_departments(f), listing) {
        (Some(ids), _) => (ids, false),
        (None, Listing::Authoritative(listed)) => (
            dedup_str(listed.iter().map(String::as_str).collect()),
            false,
        ),
        (None, Listing::Partial(listed)) => {
            (dedup_str(listed.iter().map(String::as_str).collect()), true)
        }
    };
    if !additive && same_departments(&user.departments, &ids, resolve) {
        // The common case of a reconciliation: same departments in the same order. Only
        // orders and the primary flag can change; no id is rebuilt.
        let stated_primary = stated_primary(f);
        let non_root = ids.iter().copied().filter(|id| *id != ROOT);
        let old_primary = user.departments.iter().position(|m| m.primary);
        for (i, (m, od)) in user.departments.iter_mut().zip(non_root).enumerate() {
            if let Some(o) = f
                .orders
                .iter()
                .flatten()
                .find(|o| o.department_id.as_deref() == Some(od))
            {
                m.user_order = o.user_order.or(m.user_order);
                m.department_order = o.department_order.or(m.department_order);
            }
            m.primary = match stated_primary {
                Some(Some(p)) => p == od,
                Some(None) => i == 0,
                None => old_primary.map_or(i == 0, |p| p == i),
            };
        }
        user.in_root = ids.contains(&ROOT);
        return;
    }
    let previous = std::mem::take(&mut user.departments);
    let old_primary = previous
        .iter()
        .find(|m| m.primary)
        .map(|m| m.department_id.clone());

    let mut memberships: Vec<Membership> = if additive {
        previous.clone()
    } else {
        Vec::with_capacity(ids.len())
    };
    user.in_root = ids.contains(&ROOT) || (additive && user.in_root);
    for od in ids.iter().copied().filter(|id| *id != ROOT) {
        let Some(department_id) = resolve.department(od) else {
            unresolved.push(Unresolved {
                field: RefField::Department,
                external_id: od.to_owned(),
            });
            continue;
        };
        if memberships.iter().any(|m| m.department_id == department_id) {
            continue;
        }
        let stated = f
            .orders
            .iter()
            .flatten()
            .find(|o| o.department_id.as_deref() == Some(od));
        let before = previous.iter().find(|m| m.department_id == department_id);
        memberships.push(Membership {
            user_order: stated
                .and_then(|o| o.user_order)
                .or(before.and_then(|m| m.user_order)),
            department_order: stated
                .and_then(|o| o.department_order)
                .or(before.and_then(|m| m.department_order)),
            department_id,
            primary: false,
        });
    }

    let primary = match stated_primary(f) {
        Some(Some(od)) => resolve.department(od),
        Some(None) => memberships.first().map(|m| m.department_id.clone()),
        None => old_primary
            .filter(|p| memberships.iter().any(|m| &m.department_id == p))
            .or_else(|| memberships.first().map(|m| m.department_id.clone())),
    };
    for m in &mut memberships {
        m.primary = primary.as_ref() == Some(&m.department_id);
    }
    user.departments = memberships;
}

/// Whether `ids` (`"0"` left out) name exactly the stored memberships, in order.
fn same_departments(stored: &[Membership], ids: &[&str], resolve: &dyn Resolve) -> bool {
    let mut non_root = ids.iter().filter(|id| **id != ROOT);
    stored.len() == ids.len() - usize::from(ids.contains(&ROOT))
        && stored.iter().all(|m| {
            non_root
                .next()
                .is_some_and(|od| resolve.department_is(od, &m.department_id))
        })
}

/// Removes every membership (resignation, soft deletion).
pub fn detach(user: &mut User) {
    user.departments.clear();
    user.in_root = false;
}

/// The soft deletion of a user: tombstoned and detached; status and profile kept as a record.
pub fn tombstone_user(user: &User, now: Millis) -> User {
    let mut user = user.clone();
    detach(&mut user);
    user.deleted_at = Some(now);
    user
}

/// The soft deletion of a department.
pub fn tombstone_department(department: &Department, now: Millis) -> Department {
    Department {
        deleted_at: Some(now),
        ..department.clone()
    }
}

/// The soft deletion of a group (members kept as a record).
pub fn tombstone_group(group: &Group, now: Millis) -> Group {
    Group {
        deleted_at: Some(now),
        ..group.clone()
    }
}

// ---- departments -------------------------------------------------------------------------

fn leader_kind(leader_type: Option<i64>) -> Option<LeaderKind> {
    match leader_type {
        Some(1) => Some(LeaderKind::Main),
        Some(2) => Some(LeaderKind::Deputy),
        _ => None,
    }
}

/// Merges a Feishu department into the stored one (or a new one with `new_id`).
///
/// Parent `"0"` (or `""`) → `None` (first level); another parent via `resolve` (unknown →
/// `None`, reported); absent → kept. Leaders from `leaders` (type 1 main, 2 deputy; unknown
/// types ignored), else `leader_user_id` as the main leader (the deputies, which it does not
/// describe, are kept).
pub fn merge_department(
    existing: Option<&Department>,
    feishu: &fs::Department,
    resolve: &dyn Resolve,
    pool_id: &PoolId,
    new_id: DepartmentId,
    now: Millis,
) -> Merged<Department> {
    let mut unresolved = Vec::new();
    let mut d = match existing {
        Some(d) => d.clone(),
        None => Department {
            id: new_id,
            pool_id: pool_id.clone(),
            name: None,
            i18n_name: None,
            parent_id: None,
            order: None,
            leaders: Vec::new(),
            chat_id: None,
            version: 0,
            created_at: now,
            updated_at: now,
            deleted_at: None,
        },
    };
    if feishu.name.is_some() {
        d.name.clone_from(&feishu.name);
    }
    if let Some(i18n) = &feishu.i18n_name {
        d.i18n_name = Some(i18n_name(i18n));
    }
    if feishu.order.is_some() {
        d.order = feishu.order;
    }
    if feishu.chat_id.is_some() {
        d.chat_id.clone_from(&feishu.chat_id);
    }
    match feishu.parent_department_id.as_deref() {
        None => {}
        Some(ROOT) | Some("") => d.parent_id = None,
        Some(parent) => {
            d.parent_id = resolve.department(parent);
            if d.parent_id.is_none() {
                unresolved.push(Unresolved {
                    field: RefField::Parent,
                    external_id: parent.to_owned(),
                });
            }
        }
    }

    let resolve_leader = |open_id: &str, unresolved: &mut Vec<Unresolved>| {
        let id = resolve.user(open_id);
        if id.is_none() {
            unresolved.push(Unresolved {
                field: RefField::Leader,
                external_id: open_id.to_owned(),
            });
        }
        id
    };
    if let Some(leaders) = &feishu.leaders {
        let mut merged: Vec<Leader> = Vec::new();
        for l in leaders {
            let (Some(kind), Some(open_id)) = (leader_kind(l.leader_type), l.leader_id.as_deref())
            else {
                continue;
            };
            if open_id.is_empty() {
                continue;
            }
            if let Some(user_id) = resolve_leader(open_id, &mut unresolved)
                && !merged.iter().any(|m| m.user_id == user_id)
            {
                merged.push(Leader { user_id, kind });
            }
        }
        d.leaders = merged;
    } else if let Some(main) = feishu.leader_user_id.as_deref() {
        let main = if main.is_empty() {
            None
        } else {
            resolve_leader(main, &mut unresolved)
        };
        let deputies = d
            .leaders
            .iter()
            .filter(|l| l.kind == LeaderKind::Deputy && Some(&l.user_id) != main.as_ref())
            .cloned()
            .collect::<Vec<_>>();
        d.leaders = main
            .map(|user_id| Leader {
                user_id,
                kind: LeaderKind::Main,
            })
            .into_iter()
            .chain(deputies)
            .collect();
    }
    Merged {
        object: d,
        unresolved,
    }
}

/// Feishu's `{zh_cn, ja_jp, en_us}`.
pub fn i18n_name(name: &fs::I18nName) -> I18nName {
    I18nName {
        zh_cn: name.zh_cn.clone(),
        en_us: name.en_us.clone(),
        ja_jp: name.ja_jp.clone(),
    }
}

// ---- groups ------------------------------------------------------------------------------

/// Feishu's group `type`: 1 normal, 2 dynamic, anything else unknown.
pub fn group_kind(kind: Option<i64>) -> Option<GroupKind> {
    match kind {
        Some(1) => Some(GroupKind::Normal),
        Some(2) => Some(GroupKind::Dynamic),
        _ => None,
    }
}

/// Merges a group and its member lists into the stored one (or a new one with `new_id`).
/// Complete member lists replace the members; incomplete ones only add. Members are sorted
/// and deduplicated; unknown member ids are dropped and reported.
pub fn merge_group(
    existing: Option<&Group>,
    feishu: &SnapshotGroup,
    resolve: &dyn Resolve,
    pool_id: &PoolId,
    new_id: GroupId,
    now: Millis,
) -> Merged<Group> {
    let mut unresolved = Vec::new();
    let mut g = match existing {
        Some(g) => g.clone(),
        None => Group {
            id: new_id,
            pool_id: pool_id.clone(),
            name: None,
            description: None,
            kind: GroupKind::Normal,
            members: Vec::new(),
            version: 0,
            created_at: now,
            updated_at: now,
            deleted_at: None,
        },
    };
    let f = &feishu.group;
    if f.name.is_some() {
        g.name.clone_from(&f.name);
    }
    if f.description.is_some() {
        g.description.clone_from(&f.description);
    }
    if let Some(kind) = group_kind(f.kind) {
        g.kind = kind;
    }
    let mut members: Vec<GroupMember> = if feishu.members_complete {
        Vec::new()
    } else {
        std::mem::take(&mut g.members)
    };
    for open_id in &feishu.users {
        match resolve.user(open_id) {
            Some(id) => members.push(GroupMember::User(id)),
            None => unresolved.push(Unresolved {
                field: RefField::GroupUser,
                external_id: open_id.clone(),
            }),
        }
    }
    for od in &feishu.departments {
        match resolve.department(od) {
            Some(id) => members.push(GroupMember::Department(id)),
            None => unresolved.push(Unresolved {
                field: RefField::GroupDepartment,
                external_id: od.clone(),
            }),
        }
    }
    members.sort();
    members.dedup();
    g.members = members;
    Merged {
        object: g,
        unresolved,
    }
}

// ---- external refs -----------------------------------------------------------------------

/// The sync relation of an object, keeping stored `union_id` / `custom_id` that Feishu did not
/// send this time (no permission ≠ cleared).
pub fn merge_ref(
    existing: Option<&ExternalRef>,
    connection_id: &crate::ids::ConnectionId,
    kind: ObjectKind,
    external_id: &str,
    union_id: Option<&str>,
    custom_id: Option<&str>,
    object_id: &str,
) -> ExternalRef {
    let keep = |new: Option<&str>, old: Option<&String>| {
        new.filter(|s| !s.is_empty())
            .map(str::to_owned)
            .or_else(|| old.cloned())
    };
    ExternalRef {
        connection_id: connection_id.clone(),
        kind,
        external_id: external_id.to_owned(),
        union_id: keep(union_id, existing.and_then(|r| r.union_id.as_ref())),
        custom_id: keep(custom_id, existing.and_then(|r| r.custom_id.as_ref())),
        object_id: object_id.to_owned(),
    }
}

/// Whether [`merge_ref`] would change the stored relation's identifiers (without building it).
pub fn ref_would_change(
    existing: &ExternalRef,
    union_id: Option<&str>,
    custom_id: Option<&str>,
) -> bool {
    let changes = |new: Option<&str>, old: Option<&String>| {
        new.is_some_and(|n| !n.is_empty() && old.map(String::as_str) != Some(n))
    };
    changes(union_id, existing.union_id.as_ref()) || changes(custom_id, existing.custom_id.as_ref())
}

/// Which identifiers of a sync relation changed: `union_id`, and the custom id under its
/// Feishu name (`user_id`, `department_id`, `group_id`).
pub fn ref_changes(old: &ExternalRef, new: &ExternalRef) -> Vec<&'static str> {
    let mut out = Vec::new();
    if old.union_id != new.union_id {
        out.push("union_id");
    }
    if old.custom_id != new.custom_id {
        out.push(custom_id_name(new.kind));
    }
    out
}

/// The Feishu name of an object kind's custom id.
pub fn custom_id_name(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::User => "user_id",
        ObjectKind::Department => "department_id",
        ObjectKind::Group => "group_id",
    }
}

// ---- field diffs -------------------------------------------------------------------------

/// The fields of a user that can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UserField {
    Name,
    EnName,
    Nickname,
    Email,
    EnterpriseEmail,
    Mobile,
    Gender,
    Avatar,
    City,
    Country,
    WorkStation,
    JobTitle,
    EmployeeNo,
    EmployeeType,
    JoinTime,
    TenantManager,
    CustomAttrs,
    Manager,
    Status,
    /// Memberships: which departments, their orders, the primary one.
    Departments,
    /// Directly under the root.
    Root,
    /// The tombstone (set or lifted).
    Deleted,
}

impl UserField {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::EnName => "en_name",
            Self::Nickname => "nickname",
            Self::Email => "email",
            Self::EnterpriseEmail => "enterprise_email",
            Self::Mobile => "mobile",
            Self::Gender => "gender",
            Self::Avatar => "avatar",
            Self::City => "city",
            Self::Country => "country",
            Self::WorkStation => "work_station",
            Self::JobTitle => "job_title",
            Self::EmployeeNo => "employee_no",
            Self::EmployeeType => "employee_type",
            Self::JoinTime => "join_time",
            Self::TenantManager => "is_tenant_manager",
            Self::CustomAttrs => "custom_attrs",
            Self::Manager => "manager",
            Self::Status => "status",
            Self::Departments => "departments",
            Self::Root => "root",
            Self::Deleted => "deleted",
        }
    }

    /// Profile data (what `UpdateUser` is about).
    pub fn is_profile(self) -> bool {
        !matches!(
            self,
            Self::Manager | Self::Status | Self::Departments | Self::Root | Self::Deleted
        )
    }
}

impl fmt::Display for UserField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which fields differ between two versions of a user (bookkeeping ignored).
pub fn user_changes(old: &User, new: &User) -> Vec<UserField> {
    let (a, b) = (&old.profile, &new.profile);
    let mut out = Vec::new();
    let mut check = |differs: bool, field| {
        if differs {
            out.push(field)
        }
    };
    check(a.name != b.name, UserField::Name);
    check(a.en_name != b.en_name, UserField::EnName);
    check(a.nickname != b.nickname, UserField::Nickname);
    check(a.email != b.email, UserField::Email);
    check(
        a.enterprise_email != b.enterprise_email,
        UserField::EnterpriseEmail,
    );
    check(a.mobile != b.mobile, UserField::Mobile);
    check(a.gender != b.gender, UserField::Gender);
    check(a.avatar_url != b.avatar_url, UserField::Avatar);
    check(a.city != b.city, UserField::City);
    check(a.country != b.country, UserField::Country);
    check(a.work_station != b.work_station, UserField::WorkStation);
    check(a.job_title != b.job_title, UserField::JobTitle);
    check(a.employee_no != b.employee_no, UserField::EmployeeNo);
    check(a.employee_type != b.employee_type, UserField::EmployeeType);
    check(a.join_time != b.join_time, UserField::JoinTime);
    check(
        a.is_tenant_manager != b.is_tenant_manager,
        UserField::TenantManager,
    );
    check(a.custom_attrs != b.custom_attrs, UserField::CustomAttrs);
    check(old.manager_id != new.manager_id, UserField::Manager);
    check(old.status != new.status, UserField::Status);
    check(old.departments != new.departments, UserField::Departments);
    check(old.in_root != new.in_root, UserField::Root);
    check(
        old.deleted_at.is_some() != new.deleted_at.is_some(),
        UserField::Deleted,
    );
    out
}

/// The fields of a department that can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DepartmentField {
    Name,
    I18nName,
    Order,
    ChatId,
    Parent,
    Leaders,
    Deleted,
}

impl DepartmentField {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::I18nName => "i18n_name",
            Self::Order => "order",
            Self::ChatId => "chat_id",
            Self::Parent => "parent",
            Self::Leaders => "leaders",
            Self::Deleted => "deleted",
        }
    }
}

impl fmt::Display for DepartmentField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which fields differ between two versions of a department (bookkeeping ignored).
pub fn department_changes(old: &Department, new: &Department) -> Vec<DepartmentField> {
    let mut out = Vec::new();
    let mut check = |differs: bool, field| {
        if differs {
            out.push(field)
        }
    };
    check(old.name != new.name, DepartmentField::Name);
    check(old.i18n_name != new.i18n_name, DepartmentField::I18nName);
    check(old.order != new.order, DepartmentField::Order);
    check(old.chat_id != new.chat_id, DepartmentField::ChatId);
    check(old.parent_id != new.parent_id, DepartmentField::Parent);
    check(old.leaders != new.leaders, DepartmentField::Leaders);
    check(
        old.deleted_at.is_some() != new.deleted_at.is_some(),
        DepartmentField::Deleted,
    );
    out
}

/// The fields of a group that can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupField {
    Name,
    Description,
    Kind,
    Members,
    Deleted,
}

impl GroupField {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Description => "description",
            Self::Kind => "type",
            Self::Members => "members",
            Self::Deleted => "deleted",
        }
    }
}

impl fmt::Display for GroupField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which fields differ between two versions of a group (bookkeeping ignored).
pub fn group_changes(old: &Group, new: &Group) -> Vec<GroupField> {
    let mut out = Vec::new();
    let mut check = |differs: bool, field| {
        if differs {
            out.push(field)
        }
    };
    check(old.name != new.name, GroupField::Name);
    check(old.description != new.description, GroupField::Description);
    check(old.kind != new.kind, GroupField::Kind);
    check(old.members != new.members, GroupField::Members);
    check(
        old.deleted_at.is_some() != new.deleted_at.is_some(),
        GroupField::Deleted,
    );
    out
}

/// `"name, email"`: a field list for a log reason.
pub fn describe<T: fmt::Display>(fields: &[T]) -> String {
    let mut out = String::new();
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&field.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A resolver over fixed maps: `ou_x` → `u-x`, `od-x` → `d-x` for the known ones.
    #[derive(Default)]
    struct Fixed {
        users: HashMap<String, UserId>,
        departments: HashMap<String, DepartmentId>,
    }

    impl Fixed {
        fn new(users: &[&str], departments: &[&str]) -> Self {
            Self {
                users: users
                    .iter()
                    .map(|u| ((*u).to_owned(), UserId(format!("u-{u}"))))
                    .collect(),
                departments: departments
                    .iter()
                    .map(|d| ((*d).to_owned(), DepartmentId(format!("d-{d}"))))
                    .collect(),
            }
        }
    }

    impl Resolve for Fixed {
        fn user(&self, open_id: &str) -> Option<UserId> {
            self.users.get(open_id).cloned()
        }
        fn department(&self, od: &str) -> Option<DepartmentId> {
            self.departments.get(od).cloned()
        }
        fn group(&self, _: &str) -> Option<GroupId> {
            None
        }
    }

    fn pool() -> PoolId {
        PoolId::from("pool")
    }

    fn merge(existing: Option<&User>, f: &fs::User, listing: Listing<'_>) -> Merged<User> {
        let r = Fixed::new(&["ou_m"], &["od-a", "od-b", "od-c"]);
        merge_user(existing, f, listing, &r, &pool(), UserId::from("new"), 7)
    }

    fn status(resigned: bool, exited: bool, frozen: bool, unjoin: bool) -> fs::UserStatus {
        fs::UserStatus {
            is_frozen: Some(frozen),
            is_resigned: Some(resigned),
            is_activated: Some(true),
            is_exited: Some(exited),
            is_unjoin: Some(unjoin),
        }
    }

    fn full_user() -> fs::User {
        fs::User {
            open_id: Some("ou_1".into()),
            name: Some("Ada".into()),
            email: Some("ada@x".into()),
            mobile: Some("+1 555".into()),
            status: Some(status(false, false, false, false)),
            department_ids: Some(vec!["od-a".into(), "od-b".into()]),
            leader_user_id: Some("ou_m".into()),
            ..Default::default()
        }
    }

    #[test]
    fn new_user_takes_every_stated_field() {
        let m = merge(None, &full_user(), Listing::NONE);
        let u = m.object;
        assert_eq!(u.id.as_str(), "new");
        assert_eq!(u.profile.name.as_deref(), Some("Ada"));
        assert_eq!(u.profile.email.as_deref(), Some("ada@x"));
        assert_eq!(u.status, UserStatus::Active);
        assert_eq!(u.manager_id, Some(UserId::from("u-ou_m")));
        let deps: Vec<_> = u
            .departments
            .iter()
            .map(|m| m.department_id.0.as_str())
            .collect();
        assert_eq!(deps, ["d-od-a", "d-od-b"]);
        assert!(u.departments[0].primary && !u.departments[1].primary);
        assert!(m.unresolved.is_empty());
        assert_eq!(u.created_at, 7);
    }

    #[test]
    fn omitted_fields_keep_the_stored_value_and_explicit_values_replace_it() {
        let stored = merge(None, &full_user(), Listing::NONE).object;
        // No email/mobile permission, no status, no department permission.
        let thin = fs::User {
            open_id: Some("ou_1".into()),
            name: Some("Ada L.".into()),
            email: None,
            ..Default::default()
        };
        let u = merge(Some(&stored), &thin, Listing::NONE).object;
        assert_eq!(u.profile.name.as_deref(), Some("Ada L."));
        assert_eq!(u.profile.email.as_deref(), Some("ada@x"));
        assert_eq!(u.profile.mobile.as_deref(), Some("+1 555"));
        assert_eq!(u.departments, stored.departments);
        assert_eq!(u.manager_id, stored.manager_id);
        assert_eq!(u.status, UserStatus::Active);
        assert_eq!(u.id, stored.id);
        assert_eq!(user_changes(&stored, &u), vec![UserField::Name]);
        // An explicit empty value is a value.
        let cleared = fs::User {
            email: Some(String::new()),
            leader_user_id: Some(String::new()),
            ..Default::default()
        };
        let u2 = merge(Some(&u), &cleared, Listing::NONE).object;
        assert_eq!(u2.profile.email.as_deref(), Some(""));
        assert_eq!(u2.manager_id, None);
        assert_eq!(
            describe(&user_changes(&u, &u2)),
            "email, manager".to_owned()
        );
    }

    #[test]
    fn status_precedence() {
        let of = |s: fs::UserStatus, top: Option<bool>| {
            status_of(&fs::User {
                status: Some(s),
                is_frozen: top,
                ..Default::default()
            })
        };
        use UserStatus::*;
        assert_eq!(of(status(true, true, true, true), None), Some(Resigned));
        assert_eq!(of(status(false, true, true, true), None), Some(Exited));
        assert_eq!(of(status(false, false, true, true), None), Some(Frozen));
        assert_eq!(of(status(false, false, false, true), None), Some(Unjoined));
        assert_eq!(of(status(false, false, false, false), None), Some(Active));
        assert_eq!(
            of(status(false, false, false, true), Some(true)),
            Some(Frozen)
        );
        // Without the status object only the top-level flag is known.
        assert_eq!(status_of(&fs::User::default()), None);
        let top = fs::User {
            is_frozen: Some(true),
            ..Default::default()
        };
        assert_eq!(status_of(&top), Some(Frozen));
        let top_false = fs::User {
            is_frozen: Some(false),
            ..Default::default()
        };
        assert_eq!(status_of(&top_false), None);
        // …but an explicit "not frozen" lifts a stored suspension.
        let mut frozen = merge(None, &full_user(), Listing::NONE).object;
        frozen.status = Frozen;
        assert_eq!(
            merge(Some(&frozen), &top_false, Listing::NONE)
                .object
                .status,
            Active
        );
        let mut exited = frozen.clone();
        exited.status = Exited;
        assert_eq!(
            merge(Some(&exited), &top_false, Listing::NONE)
                .object
                .status,
            Exited
        );
        // Unknown status keeps the stored one; a new user starts active.
        assert_eq!(
            merge(Some(&exited), &fs::User::default(), Listing::NONE)
                .object
                .status,
            Exited
        );
        assert_eq!(
            merge(None, &fs::User::default(), Listing::NONE)
                .object
                .status,
            Active
        );
    }

    #[test]
    fn memberships_orders_and_primary_come_from_orders() {
        let f = fs::User {
            orders: Some(vec![
                fs::UserOrder {
                    department_id: Some("od-a".into()),
                    user_order: Some(5),
                    department_order: Some(1),
                    is_primary_dept: Some(false),
                },
                fs::UserOrder {
                    department_id: Some("od-b".into()),
                    user_order: Some(9),
                    department_order: Some(2),
                    is_primary_dept: Some(true),
                },
            ]),
            ..Default::default()
        };
        let u = merge(None, &f, Listing::NONE).object;
        assert_eq!(u.departments.len(), 2);
        assert_eq!(u.departments[0].user_order, Some(5));
        assert_eq!(u.departments[1].department_order, Some(2));
        assert!(!u.departments[0].primary && u.departments[1].primary);

        // department_ids alone: orders are kept from the stored memberships, and so is the
        // primary department while the user is still in it.
        let ids_only = fs::User {
            department_ids: Some(vec!["od-a".into(), "od-b".into(), "od-c".into()]),
            ..Default::default()
        };
        let v = merge(Some(&u), &ids_only, Listing::NONE).object;
        assert_eq!(v.departments.len(), 3);
        assert_eq!(v.departments[1].user_order, Some(9));
        assert!(v.departments[1].primary);
        assert_eq!(v.departments[2].user_order, None);
        assert_eq!(v.departments.iter().filter(|m| m.primary).count(), 1);

        // Flags present, none raised: the first is primary.
        let none_flagged = fs::User {
            orders: Some(vec![fs::UserOrder {
                department_id: Some("od-c".into()),
                is_primary_dept: Some(false),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let w = merge(Some(&v), &none_flagged, Listing::NONE).object;
        assert_eq!(w.departments.len(), 1);
        assert!(w.departments[0].primary);
    }

    #[test]
    fn same_departments_update_orders_and_primary_in_place() {
        let order = |od: &str, user_order, primary| fs::UserOrder {
            department_id: Some(od.into()),
            user_order: Some(user_order),
            department_order: None,
            is_primary_dept: primary,
        };
        let f = fs::User {
            department_ids: Some(vec!["od-a".into(), "od-b".into()]),
            orders: Some(vec![
                order("od-a", 1, Some(true)),
                order("od-b", 2, Some(false)),
            ]),
            ..Default::default()
        };
        let stored = merge(None, &f, Listing::NONE).object;
        assert!(stored.departments[0].primary);
        // Same departments: the primary moves and an order changes.
        let g = fs::User {
            department_ids: Some(vec!["0".into(), "od-a".into(), "od-b".into()]),
            orders: Some(vec![order("od-b", 5, Some(true))]),
            ..Default::default()
        };
        let u = merge(Some(&stored), &g, Listing::NONE).object;
        assert!(u.in_root);
        assert!(!u.departments[0].primary && u.departments[1].primary);
        assert_eq!(u.departments[0].user_order, Some(1));
        assert_eq!(u.departments[1].user_order, Some(5));
        // Without any order: everything stays.
        let h = fs::User {
            department_ids: Some(vec!["od-a".into(), "od-b".into()]),
            ..Default::default()
        };
        let v = merge(Some(&u), &h, Listing::NONE).object;
        assert_eq!(v.departments, u.departments);
        assert!(!v.in_root);
    }

    #[test]
    fn root_users_and_listings() {
        let root = fs::User {
            department_ids: Some(vec!["0".into()]),
            ..Default::default()
        };
        let u = merge(None, &root, Listing::NONE).object;
        assert!(u.in_root);
        assert!(u.departments.is_empty());

        // No department_ids: an authoritative listing decides…
        let listed = ["0".to_owned(), "od-b".to_owned()];
        let v = merge(
            Some(&u),
            &fs::User::default(),
            Listing::Authoritative(&listed),
        )
        .object;
        assert!(v.in_root);
        assert_eq!(v.departments.len(), 1);
        assert!(v.departments[0].primary);
        let only_a = ["od-a".to_owned()];
        let w = merge(
            Some(&v),
            &fs::User::default(),
            Listing::Authoritative(&only_a),
        )
        .object;
        assert!(!w.in_root);
        assert_eq!(w.departments[0].department_id.as_str(), "d-od-a");
        // …a partial one only adds.
        let x = merge(Some(&w), &fs::User::default(), Listing::Partial(&listed)).object;
        assert!(x.in_root);
        let ids: Vec<_> = x
            .departments
            .iter()
            .map(|m| m.department_id.0.as_str())
            .collect();
        assert_eq!(ids, ["d-od-a", "d-od-b"]);
        assert!(x.departments[0].primary);
        // department_ids in the object wins over the listing.
        let y = merge(Some(&x), &root, Listing::Authoritative(&only_a)).object;
        assert!(y.in_root && y.departments.is_empty());
    }

    #[test]
    fn unknown_references_are_dropped_and_reported() {
        let f = fs::User {
            department_ids: Some(vec!["od-a".into(), "od-zz".into()]),
            leader_user_id: Some("ou_ghost".into()),
            orders: Some(vec![fs::UserOrder {
                department_id: Some("od-zz".into()),
                is_primary_dept: Some(true),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let m = merge(None, &f, Listing::NONE);
        assert_eq!(m.object.departments.len(), 1);
        // The primary department is outside the synced part: no member is primary.
        assert!(!m.object.departments[0].primary);
        assert_eq!(m.object.manager_id, None);
        let text: Vec<_> = m.unresolved.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["department od-zz", "manager ou_ghost"]);
    }

    #[test]
    fn resigned_detaches() {
        let stored = merge(None, &full_user(), Listing::NONE).object;
        assert!(!stored.departments.is_empty());
        let f = fs::User {
            status: Some(status(true, false, false, false)),
            department_ids: Some(vec!["od-a".into(), "0".into()]),
            ..Default::default()
        };
        let u = merge(Some(&stored), &f, Listing::NONE).object;
        assert_eq!(u.status, UserStatus::Resigned);
        assert!(u.departments.is_empty() && !u.in_root);
        assert_eq!(u.profile.name.as_deref(), Some("Ada"));
        assert_eq!(
            user_changes(&stored, &u),
            vec![UserField::Status, UserField::Departments]
        );
    }

    #[test]
    fn avatar_pick_is_the_largest() {
        let a = |o: Option<&str>, s640: Option<&str>, s240: Option<&str>, s72: Option<&str>| {
            fs::Avatar {
                avatar_origin: o.map(Into::into),
                avatar_640: s640.map(Into::into),
                avatar_240: s240.map(Into::into),
                avatar_72: s72.map(Into::into),
            }
        };
        assert_eq!(
            avatar_url(&a(Some("o"), Some("6"), Some("2"), Some("7"))),
            Some("o")
        );
        assert_eq!(
            avatar_url(&a(None, Some("6"), Some("2"), Some("7"))),
            Some("6")
        );
        assert_eq!(avatar_url(&a(None, None, Some("2"), Some("7"))), Some("2"));
        assert_eq!(avatar_url(&a(None, None, None, Some("7"))), Some("7"));
        assert_eq!(avatar_url(&a(None, None, None, None)), None);
        let mut stored = merge(None, &full_user(), Listing::NONE).object;
        stored.profile.avatar_url = Some("old".into());
        let f = fs::User {
            avatar: Some(a(None, None, None, None)),
            ..Default::default()
        };
        // An avatar object without URLs says nothing.
        let u = merge(Some(&stored), &f, Listing::NONE).object;
        assert_eq!(u.profile.avatar_url.as_deref(), Some("old"));
    }

    #[test]
    fn department_parent_leaders_and_fields() {
        let r = Fixed::new(&["ou_a", "ou_b", "ou_c"], &["od-p"]);
        let f = fs::Department {
            name: Some("Eng".into()),
            parent_department_id: Some("od-p".into()),
            order: Some(3),
            leaders: Some(vec![
                fs::DepartmentLeader {
                    leader_type: Some(1),
                    leader_id: Some("ou_a".into()),
                },
                fs::DepartmentLeader {
                    leader_type: Some(2),
                    leader_id: Some("ou_b".into()),
                },
                fs::DepartmentLeader {
                    leader_type: Some(2),
                    leader_id: Some("ou_ghost".into()),
                },
            ]),
            ..Default::default()
        };
        let m = merge_department(None, &f, &r, &pool(), DepartmentId::from("d1"), 1);
        let d = m.object;
        assert_eq!(d.parent_id, Some(DepartmentId::from("d-od-p")));
        assert_eq!(d.leaders.len(), 2);
        assert_eq!(d.leaders[0].kind, LeaderKind::Main);
        assert_eq!(d.leaders[1].kind, LeaderKind::Deputy);
        assert_eq!(m.unresolved.len(), 1);

        // leader_user_id replaces the main leader only; deputies are not described by it.
        let g = fs::Department {
            leader_user_id: Some("ou_c".into()),
            parent_department_id: Some("0".into()),
            ..Default::default()
        };
        let e = merge_department(Some(&d), &g, &r, &pool(), DepartmentId::from("x"), 2).object;
        assert_eq!(e.parent_id, None);
        assert_eq!(e.name.as_deref(), Some("Eng"));
        assert_eq!(e.order, Some(3));
        assert_eq!(
            e.leaders,
            vec![
                Leader {
                    user_id: UserId::from("u-ou_c"),
                    kind: LeaderKind::Main
                },
                Leader {
                    user_id: UserId::from("u-ou_b"),
                    kind: LeaderKind::Deputy
                },
            ]
        );
        assert_eq!(
            department_changes(&d, &e),
            vec![DepartmentField::Parent, DepartmentField::Leaders]
        );
        // An unknown parent is dropped (first level) and reported.
        let h = fs::Department {
            parent_department_id: Some("od-outside".into()),
            ..Default::default()
        };
        let m = merge_department(Some(&e), &h, &r, &pool(), DepartmentId::from("x"), 2);
        assert_eq!(m.object.parent_id, None);
        assert_eq!(m.unresolved[0].field, RefField::Parent);
    }

    #[test]
    fn group_members_sorted_deduped_and_partial_lists_only_add() {
        let r = Fixed::new(&["ou_a", "ou_b"], &["od-p"]);
        let sg = SnapshotGroup {
            group: fs::Group {
                id: Some("g1".into()),
                name: Some("Ops".into()),
                kind: Some(2),
                ..Default::default()
            },
            users: ["ou_b", "ou_a", "ou_ghost"].map(String::from).into(),
            departments: ["od-p".to_owned()].into(),
            members_complete: true,
        };
        let m = merge_group(None, &sg, &r, &pool(), GroupId::from("g"), 1);
        assert_eq!(m.object.kind, GroupKind::Dynamic);
        assert_eq!(
            m.object.members,
            vec![
                GroupMember::User(UserId::from("u-ou_a")),
                GroupMember::User(UserId::from("u-ou_b")),
                GroupMember::Department(DepartmentId::from("d-od-p")),
            ]
        );
        assert_eq!(m.unresolved.len(), 1);
        let partial = SnapshotGroup {
            group: fs::Group::default(),
            users: ["ou_a".to_owned()].into(),
            departments: Default::default(),
            members_complete: false,
        };
        let n = merge_group(
            Some(&m.object),
            &partial,
            &r,
            &pool(),
            GroupId::from("x"),
            2,
        );
        assert_eq!(n.object.members, m.object.members);
        assert_eq!(n.object.name.as_deref(), Some("Ops"));
        let complete = SnapshotGroup {
            members_complete: true,
            ..partial
        };
        let o = merge_group(
            Some(&m.object),
            &complete,
            &r,
            &pool(),
            GroupId::from("x"),
            2,
        );
        assert_eq!(o.object.members.len(), 1);
        assert_eq!(
            group_changes(&m.object, &o.object),
            vec![GroupField::Members]
        );
    }

    #[test]
    fn refs_keep_identifiers_feishu_did_not_send() {
        let c = crate::ids::ConnectionId::from("c");
        let old = merge_ref(
            None,
            &c,
            ObjectKind::User,
            "ou_1",
            Some("on_1"),
            Some("u1"),
            "x",
        );
        let same = merge_ref(Some(&old), &c, ObjectKind::User, "ou_1", None, None, "x");
        assert_eq!(old, same);
        let new = merge_ref(
            Some(&old),
            &c,
            ObjectKind::User,
            "ou_1",
            None,
            Some("u2"),
            "x",
        );
        assert_eq!(ref_changes(&old, &new), ["user_id"]);
    }
}
