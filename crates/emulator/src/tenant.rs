//! The fake tenant: departments, users, user groups and the apps installed in it.
//!
//! Pure data and queries, no I/O. Users are keyed by an internal, immutable [`UserKey`];
//! their `open_id` differs per app and their `union_id` per developer, as on Feishu
//! (protocol §2.2), so code that mixes apps or id types fails here as it would there.
//! Departments are keyed by their tenant-wide `open_department_id`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;

use feishu::ids::{DepartmentIdType, IdTypes, ROOT_DEPARTMENT_ID, UserIdType};
use feishu::model;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Internal, immutable user identity (Feishu's `user_id` is mutable, `open_id` per app).
pub type UserKey = u64;

/// The developer all emulated apps belong to; `union_id`s are the same across its apps.
pub const DEVELOPER: &str = "orgsync-emulator";

/// Permission names (protocol §3.5, §3.6, §3.8).
pub mod perm {
    pub const CONTACT_BASE: &str = "contact:contact.base:readonly";
    pub const LEGACY_READONLY_AS_APP: &str = "contact:contact:readonly_as_app";
    pub const LEGACY_READONLY: &str = "contact:contact:readonly";
    pub const LEGACY_ACCESS_AS_APP: &str = "contact:contact:access_as_app";
    pub const DEPARTMENT_BASE: &str = "contact:department.base:readonly";
    pub const DEPARTMENT_ORGANIZE: &str = "contact:department.organize:readonly";
    pub const DEPARTMENT_HRBP: &str = "contact:department.hrbp:readonly";
    pub const USER_BASE: &str = "contact:user.base:readonly";
    pub const USER_EMPLOYEE_ID: &str = "contact:user.employee_id:readonly";
    pub const USER_EMAIL: &str = "contact:user.email:readonly";
    pub const USER_PHONE: &str = "contact:user.phone:readonly";
    pub const USER_GENDER: &str = "contact:user.gender:readonly";
    pub const USER_EMPLOYEE: &str = "contact:user.employee:readonly";
    pub const USER_EMPLOYEE_NUMBER: &str = "contact:user.employee_number:read";
    pub const USER_DEPARTMENT: &str = "contact:user.department:readonly";
    pub const GROUP: &str = "contact:group:readonly";

    pub const LEGACY: [&str; 3] = [
        LEGACY_READONLY_AS_APP,
        LEGACY_READONLY,
        LEGACY_ACCESS_AS_APP,
    ];

    /// What a directory sync asks for (protocol §3.8).
    pub const DIRECTORY_SYNC: [&str; 11] = [
        CONTACT_BASE,
        USER_BASE,
        USER_DEPARTMENT,
        USER_EMPLOYEE,
        USER_EMPLOYEE_ID,
        USER_EMAIL,
        USER_PHONE,
        USER_GENDER,
        DEPARTMENT_BASE,
        DEPARTMENT_ORGANIZE,
        GROUP,
    ];
}

/// `sha256(parts joined by '|')` as lowercase hex, cut to `len`.
pub(crate) fn digest_hex(parts: &[&str], len: usize) -> String {
    let mut h = Sha256::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b"|");
        }
        h.update(p.as_bytes());
    }
    let mut s = hex::encode(h.finalize());
    s.truncate(len);
    s
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct I18n {
    pub zh_cn: Option<String>,
    pub en_us: Option<String>,
    pub ja_jp: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepartmentRecord {
    /// `od-` + 32 hex; never changes, never reused.
    pub open_department_id: String,
    /// Custom id; unique among live departments.
    pub department_id: String,
    pub name: String,
    pub i18n_name: I18n,
    /// Open id of the parent; `"0"` under the root.
    pub parent: String,
    /// Smaller sorts first among siblings.
    pub order: i64,
    /// `(leaderType, user)`: 1 main, 2 deputy.
    pub leaders: Vec<(i64, UserKey)>,
    pub chat_id: Option<String>,
    pub unit_ids: Vec<String>,
    pub hrbps: Vec<UserKey>,
    /// `fetch_child=true` on this department answers 43010.
    pub big: bool,
}

impl DepartmentRecord {
    pub fn main_leader(&self) -> Option<UserKey> {
        self.leaders.iter().find(|(t, _)| *t == 1).map(|(_, k)| *k)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct StatusFlags {
    pub frozen: bool,
    pub resigned: bool,
    pub activated: bool,
    pub exited: bool,
    pub unjoin: bool,
}

impl StatusFlags {
    pub fn active() -> Self {
        Self {
            activated: true,
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// Open id of the department (`"0"` = directly under the root).
    pub department: String,
    /// Larger sorts first.
    pub user_order: i64,
    pub department_order: i64,
    pub primary: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomAttrRecord {
    pub id: String,
    /// `TEXT` or `HREF` here; enough to exercise the shape.
    pub kind: String,
    pub text: String,
    pub url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub key: UserKey,
    /// Tenant-wide, updatable.
    pub user_id: String,
    pub name: String,
    pub en_name: Option<String>,
    pub nickname: Option<String>,
    pub email: Option<String>,
    pub enterprise_email: Option<String>,
    pub mobile: Option<String>,
    pub mobile_visible: bool,
    pub gender: i64,
    pub status: StatusFlags,
    /// Empty for a resigned user: resignation removes every membership.
    pub memberships: Vec<Membership>,
    pub leader: Option<UserKey>,
    pub city: Option<String>,
    pub country: Option<String>,
    pub work_station: Option<String>,
    pub join_time: i64,
    pub is_tenant_manager: bool,
    pub employee_no: Option<String>,
    pub employee_type: i64,
    pub job_title: Option<String>,
    pub custom_attrs: Vec<CustomAttrRecord>,
}

impl UserRecord {
    pub fn department_ids(&self) -> impl Iterator<Item = &str> {
        self.memberships.iter().map(|m| m.department.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupKind {
    Normal,
    Dynamic,
}

impl GroupKind {
    pub fn code(self) -> i64 {
        match self {
            Self::Normal => 1,
            Self::Dynamic => 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    /// The group id (`g…`).
    pub id: String,
    /// The custom group id.
    pub group_id: String,
    pub name: String,
    pub description: String,
    pub kind: GroupKind,
    pub users: Vec<UserKey>,
    /// Open ids of member departments (normal groups only).
    pub departments: Vec<String>,
}

/// Which part of the organisation an app may read (通讯录权限范围).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ContactScope {
    /// 全部成员.
    #[default]
    All,
    /// Exactly the picked departments (with their descendants), users and groups.
    Partial {
        departments: Vec<String>,
        users: Vec<UserKey>,
        groups: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRecord {
    pub app_id: String,
    pub app_secret: String,
    pub verification_token: String,
    pub encrypt_key: Option<String>,
    pub request_url: Option<String>,
    pub scope: ContactScope,
    pub permissions: BTreeSet<String>,
    /// Subscribed to the 2.0 contact events.
    pub events_v2: bool,
    /// Subscribed to the legacy 1.0 contact events.
    pub events_v1: bool,
    /// Also emit `contact.user_group.*_v3` (off by default: current Feishu lists none).
    pub user_group_events: bool,
    /// Where events go: the request URL, or the app's long connections.
    #[serde(default)]
    pub event_mode: EventMode,
}

/// An app's event subscription mode (one per app in the Feishu console).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventMode {
    #[default]
    Http,
    LongConnection,
}

impl AppRecord {
    pub fn new(app_id: impl Into<String>, app_secret: impl Into<String>) -> Self {
        Self {
            app_id: app_id.into(),
            app_secret: app_secret.into(),
            verification_token: "emulator_verification_token".into(),
            encrypt_key: None,
            request_url: None,
            scope: ContactScope::All,
            permissions: perm::DIRECTORY_SYNC.iter().map(|s| s.to_string()).collect(),
            events_v2: true,
            events_v1: false,
            user_group_events: false,
            event_mode: EventMode::Http,
        }
    }

    /// A gated field is visible with its permission, or a legacy contact permission.
    pub fn has(&self, permission: &str) -> bool {
        self.permissions.contains(permission)
            || perm::LEGACY.iter().any(|p| self.permissions.contains(*p))
    }

    /// Email and mobile are unlocked by their own permission only (protocol §3.6 table).
    pub fn has_exactly(&self, permission: &str) -> bool {
        self.permissions.contains(permission)
    }

    /// `open_id` of a user as this app sees it.
    pub fn open_id(&self, key: UserKey) -> String {
        format!(
            "ou_{}",
            digest_hex(&["open_id", &self.app_id, &key.to_string()], 32)
        )
    }
}

/// `union_id` of a user (same for all apps of [`DEVELOPER`]).
pub fn union_id(key: UserKey) -> String {
    format!(
        "on_{}",
        digest_hex(&["union_id", DEVELOPER, &key.to_string()], 32)
    )
}

/// Lookup structures derived from the records; rebuilt lazily after a change.
#[derive(Debug, Default)]
struct Index {
    children: HashMap<String, Vec<String>>,
    members: HashMap<String, Vec<UserKey>>,
    department_by_custom_id: HashMap<String, String>,
    user_by_user_id: HashMap<String, UserKey>,
    user_by_union_id: HashMap<String, UserKey>,
    /// Open ids of every app (the app id is part of the hash, so they never collide).
    user_by_open_id: HashMap<String, UserKey>,
    /// Users in the department and its descendants (leaders are members too).
    member_count: HashMap<String, i64>,
    primary_member_count: HashMap<String, i64>,
}

/// The whole fake tenant.
#[derive(Debug, Default)]
pub struct Tenant {
    pub tenant_key: String,
    pub departments: BTreeMap<String, DepartmentRecord>,
    /// Deleted departments, kept so a read by id can answer as Feishu does.
    pub deleted_departments: BTreeMap<String, DepartmentRecord>,
    pub users: BTreeMap<UserKey, UserRecord>,
    pub groups: BTreeMap<String, GroupRecord>,
    pub apps: BTreeMap<String, AppRecord>,
    pub next_user_key: UserKey,
    /// Counter for new ids (departments, groups, chats) so they stay unique and seeded.
    pub next_serial: u64,
    /// Where avatar URLs point, without a trailing slash: a running emulator serves
    /// placeholder images at `{avatar_base}/avatar/{key}/{size}` and sets this to its own
    /// address. `None`: [`UNSERVED_AVATAR_BASE`].
    pub avatar_base: Option<String>,
    index: OnceLock<Index>,
}

/// The avatar base of a tenant no emulator serves: a host that never resolves.
pub const UNSERVED_AVATAR_BASE: &str = "https://emulator.invalid";

/// A user or department id as a request spelled it, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved<T> {
    Found(T),
    NotFound,
}

impl Tenant {
    pub fn new(tenant_key: impl Into<String>) -> Self {
        Self {
            tenant_key: tenant_key.into(),
            next_user_key: 1,
            next_serial: 1,
            ..Self::default()
        }
    }

    /// Must be called after every change to the records (the mutation methods do).
    pub fn invalidate(&mut self) {
        self.index = OnceLock::new();
    }

    fn index(&self) -> &Index {
        self.index.get_or_init(|| self.build_index())
    }

    fn build_index(&self) -> Index {
        let mut ix = Index::default();
        for d in self.departments.values() {
            ix.children
                .entry(d.parent.clone())
                .or_default()
                .push(d.open_department_id.clone());
            ix.department_by_custom_id
                .insert(d.department_id.clone(), d.open_department_id.clone());
        }
        for list in ix.children.values_mut() {
            list.sort_by(|a, b| {
                let (da, db) = (&self.departments[a], &self.departments[b]);
                (da.order, &da.open_department_id).cmp(&(db.order, &db.open_department_id))
            });
        }
        let app_ids: Vec<&AppRecord> = self.apps.values().collect();
        for u in self.users.values() {
            for m in &u.memberships {
                ix.members
                    .entry(m.department.clone())
                    .or_default()
                    .push(u.key);
            }
            ix.user_by_user_id.insert(u.user_id.clone(), u.key);
            ix.user_by_union_id.insert(union_id(u.key), u.key);
            for app in &app_ids {
                ix.user_by_open_id.insert(app.open_id(u.key), u.key);
            }
        }
        for (dept, list) in ix.members.iter_mut() {
            list.sort_by_key(|k| {
                let order = self.users[k]
                    .memberships
                    .iter()
                    .find(|m| &m.department == dept)
                    .map_or(0, |m| m.user_order);
                (std::cmp::Reverse(order), *k)
            });
        }
        // Subtree counts: walk each user's departments up to the root, once per ancestor.
        for u in self.users.values() {
            let mut seen = BTreeSet::new();
            for m in &u.memberships {
                let mut cur = m.department.clone();
                while cur != ROOT_DEPARTMENT_ID && seen.insert(cur.clone()) {
                    *ix.member_count.entry(cur.clone()).or_default() += 1;
                    if m.primary {
                        *ix.primary_member_count.entry(cur.clone()).or_default() += 1;
                    }
                    match self.departments.get(&cur) {
                        Some(d) => cur = d.parent.clone(),
                        None => break,
                    }
                }
            }
        }
        ix
    }

    // ---- ids -------------------------------------------------------------------------

    /// A fresh `od-` id, unique and deterministic for the tenant's history.
    pub fn new_open_department_id(&mut self) -> String {
        let n = self.next_serial;
        self.next_serial += 1;
        format!(
            "od-{}",
            digest_hex(&["department", &self.tenant_key, &n.to_string()], 32)
        )
    }

    /// A fresh serial for other generated ids.
    pub fn next_serial(&mut self) -> u64 {
        let n = self.next_serial;
        self.next_serial += 1;
        n
    }

    pub fn user_id_as(&self, app: &AppRecord, key: UserKey, id_type: UserIdType) -> String {
        match id_type {
            UserIdType::OpenId => app.open_id(key),
            UserIdType::UnionId => union_id(key),
            UserIdType::UserId => self
                .users
                .get(&key)
                .map(|u| u.user_id.clone())
                .unwrap_or_default(),
        }
    }

    pub fn department_id_as(&self, open_id: &str, id_type: DepartmentIdType) -> String {
        if open_id == ROOT_DEPARTMENT_ID {
            return ROOT_DEPARTMENT_ID.to_owned();
        }
        match id_type {
            DepartmentIdType::OpenDepartmentId => open_id.to_owned(),
            DepartmentIdType::DepartmentId => self
                .departments
                .get(open_id)
                .or_else(|| self.deleted_departments.get(open_id))
                .map(|d| d.department_id.clone())
                .unwrap_or_default(),
        }
    }

    /// Resolves a user id given in `id_type` as `app` sees it.
    pub fn resolve_user(&self, app: &AppRecord, id: &str, id_type: UserIdType) -> Option<UserKey> {
        let ix = self.index();
        let key = match id_type {
            UserIdType::OpenId => ix.user_by_open_id.get(id).copied(),
            UserIdType::UnionId => ix.user_by_union_id.get(id).copied(),
            UserIdType::UserId => ix.user_by_user_id.get(id).copied(),
        }?;
        // Another app's open_id is not this app's.
        if id_type == UserIdType::OpenId && app.open_id(key) != id {
            return None;
        }
        Some(key)
    }

    /// Finds a user by any of its ids — any app's `open_id`, the `union_id` or the `user_id` —
    /// through the indexes (for the admin API, where the caller names no id type).
    pub fn find_user_by_any_id(&self, id: &str) -> Option<UserKey> {
        let ix = self.index();
        ix.user_by_user_id
            .get(id)
            .or_else(|| ix.user_by_union_id.get(id))
            .or_else(|| ix.user_by_open_id.get(id))
            .copied()
    }

    /// Resolves a department id given in `id_type` to its open id (`"0"` stays `"0"`).
    /// Deleted departments resolve too (see [`Tenant::is_deleted_department`]).
    pub fn resolve_department(&self, id: &str, id_type: DepartmentIdType) -> Option<String> {
        if id == ROOT_DEPARTMENT_ID {
            return Some(ROOT_DEPARTMENT_ID.to_owned());
        }
        match id_type {
            DepartmentIdType::OpenDepartmentId => (self.departments.contains_key(id)
                || self.deleted_departments.contains_key(id))
            .then(|| id.to_owned()),
            DepartmentIdType::DepartmentId => self
                .index()
                .department_by_custom_id
                .get(id)
                .cloned()
                .or_else(|| {
                    self.deleted_departments
                        .values()
                        .find(|d| d.department_id == id)
                        .map(|d| d.open_department_id.clone())
                }),
        }
    }

    pub fn is_deleted_department(&self, open_id: &str) -> bool {
        !self.departments.contains_key(open_id) && self.deleted_departments.contains_key(open_id)
    }

    // ---- tree ----------------------------------------------------------------------------

    /// Live child departments, sorted by order.
    pub fn children(&self, open_id: &str) -> &[String] {
        self.index()
            .children
            .get(open_id)
            .map_or(&[][..], Vec::as_slice)
    }

    /// Every live descendant, breadth first.
    pub fn descendants(&self, open_id: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut queue = std::collections::VecDeque::from([open_id.to_owned()]);
        while let Some(cur) = queue.pop_front() {
            for child in self.children(&cur) {
                out.push(child.clone());
                queue.push_back(child.clone());
            }
        }
        out
    }

    /// Direct members (not resigned: resignation removes memberships), larger order first.
    pub fn members(&self, open_id: &str) -> &[UserKey] {
        self.index()
            .members
            .get(open_id)
            .map_or(&[][..], Vec::as_slice)
    }

    /// The department and its ancestors up to (not including) the root.
    pub fn ancestors_and_self(&self, open_id: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut cur = open_id.to_owned();
        while cur != ROOT_DEPARTMENT_ID && !out.contains(&cur) {
            out.push(cur.clone());
            match self.departments.get(&cur) {
                Some(d) => cur = d.parent.clone(),
                None => break,
            }
        }
        out
    }

    pub fn depth(&self, open_id: &str) -> usize {
        self.ancestors_and_self(open_id).len()
    }

    // ---- contact scope ---------------------------------------------------------------

    /// Whether the app may read a department (root only under the all-members scope).
    pub fn department_in_scope(&self, app: &AppRecord, open_id: &str) -> bool {
        match &app.scope {
            ContactScope::All => true,
            ContactScope::Partial { departments, .. } => {
                open_id != ROOT_DEPARTMENT_ID
                    && self
                        .ancestors_and_self(open_id)
                        .iter()
                        .any(|a| departments.contains(a))
            }
        }
    }

    /// Whether the app may read a user: picked directly, or a member of an in-scope department.
    pub fn user_in_scope(&self, app: &AppRecord, key: UserKey) -> bool {
        match &app.scope {
            ContactScope::All => true,
            ContactScope::Partial { users, .. } => {
                users.contains(&key)
                    || self
                        .users
                        .get(&key)
                        .is_some_and(|u| self.user_record_in_scope(app, u))
            }
        }
    }

    /// [`Tenant::user_in_scope`] for a given record (e.g. the state before a resignation,
    /// which removed the memberships that put the user in scope).
    pub fn user_record_in_scope(&self, app: &AppRecord, u: &UserRecord) -> bool {
        match &app.scope {
            ContactScope::All => true,
            ContactScope::Partial { users, .. } => {
                users.contains(&u.key)
                    || u.memberships
                        .iter()
                        .any(|m| self.department_in_scope(app, &m.department))
            }
        }
    }

    /// [`Tenant::department_in_scope`] for a given record, judged by its own id and its
    /// parent's place in the current tree (works for deleted departments and snapshots).
    pub fn department_record_in_scope(&self, app: &AppRecord, d: &DepartmentRecord) -> bool {
        match &app.scope {
            ContactScope::All => true,
            ContactScope::Partial { departments, .. } => {
                departments.contains(&d.open_department_id)
                    || self.department_in_scope(app, &d.parent)
            }
        }
    }

    pub fn group_in_scope(&self, app: &AppRecord, group_id: &str) -> bool {
        match &app.scope {
            ContactScope::All => true,
            ContactScope::Partial { groups, .. } => groups.iter().any(|g| g == group_id),
        }
    }

    /// `/scopes` content: (department open ids, user keys, group ids) — protocol §3.1.
    pub fn scope_lists(&self, app: &AppRecord) -> (Vec<String>, Vec<UserKey>, Vec<String>) {
        match &app.scope {
            ContactScope::All => (
                self.children(ROOT_DEPARTMENT_ID).to_vec(),
                self.members(ROOT_DEPARTMENT_ID).to_vec(),
                self.groups.keys().cloned().collect(),
            ),
            ContactScope::Partial {
                departments,
                users,
                groups,
            } => (
                departments
                    .iter()
                    .filter(|d| self.departments.contains_key(*d))
                    .cloned()
                    .collect(),
                users
                    .iter()
                    .filter(|k| self.users.contains_key(k))
                    .copied()
                    .collect(),
                groups
                    .iter()
                    .filter(|g| self.groups.contains_key(*g))
                    .cloned()
                    .collect(),
            ),
        }
    }

    // ---- rendering -------------------------------------------------------------------

    /// A department as the app sees it: fields gated by permissions, ids in `ids`.
    pub fn render_department(
        &self,
        app: &AppRecord,
        open_id: &str,
        ids: IdTypes,
    ) -> Option<model::Department> {
        let (d, deleted) = match self.departments.get(open_id) {
            Some(d) => (d, false),
            None => (self.deleted_departments.get(open_id)?, true),
        };
        Some(self.render_department_record(app, d, deleted, ids))
    }

    /// [`Tenant::render_department`] for a given record, e.g. a snapshot taken before a
    /// change (events render the old state with it). Counts come from the current tree.
    pub fn render_department_record(
        &self,
        app: &AppRecord,
        d: &DepartmentRecord,
        deleted: bool,
        ids: IdTypes,
    ) -> model::Department {
        let open_id = d.open_department_id.as_str();
        let ix = self.index();
        let base = app.has(perm::DEPARTMENT_BASE);
        let organize = app.has(perm::DEPARTMENT_ORGANIZE);
        let user = |k: UserKey| self.user_id_as(app, k, ids.user);
        let mut out = model::Department {
            open_department_id: Some(d.open_department_id.clone()),
            ..model::Department::default()
        };
        if base {
            out.name = Some(d.name.clone());
            out.i18n_name = Some(model::I18nName {
                zh_cn: d.i18n_name.zh_cn.clone(),
                ja_jp: d.i18n_name.ja_jp.clone(),
                en_us: d.i18n_name.en_us.clone(),
            });
            out.department_id = Some(d.department_id.clone());
            out.chat_id = d.chat_id.clone();
            out.status = Some(model::DepartmentStatus {
                is_deleted: Some(deleted),
            });
        }
        if organize {
            out.parent_department_id = Some(self.department_id_as(&d.parent, ids.department));
            out.leader_user_id = d.main_leader().map(user);
            out.order = Some(d.order);
            out.unit_ids = Some(d.unit_ids.clone());
            out.member_count = Some(ix.member_count.get(open_id).copied().unwrap_or(0));
            out.primary_member_count =
                Some(ix.primary_member_count.get(open_id).copied().unwrap_or(0));
            out.leaders = Some(
                d.leaders
                    .iter()
                    .map(|(t, k)| model::DepartmentLeader {
                        leader_type: Some(*t),
                        leader_id: Some(user(*k)),
                    })
                    .collect(),
            );
        }
        if app.has(perm::DEPARTMENT_HRBP) {
            out.department_hrbps = Some(
                d.hrbps
                    .iter()
                    .map(|k| model::UserRef::Id(user(*k)))
                    .collect(),
            );
        }
        out
    }

    /// A user as the app sees it: fields gated by permissions, ids in `ids`.
    /// `department_ids` of a resigned user is empty (`resigned_department_ids_absent` drops it).
    pub fn render_user(
        &self,
        app: &AppRecord,
        key: UserKey,
        ids: IdTypes,
        resigned_department_ids_absent: bool,
    ) -> Option<model::User> {
        let u = self.users.get(&key)?;
        Some(self.render_user_record(app, u, ids, resigned_department_ids_absent))
    }

    /// [`Tenant::render_user`] for a given record, e.g. a snapshot taken before a change.
    pub fn render_user_record(
        &self,
        app: &AppRecord,
        u: &UserRecord,
        ids: IdTypes,
        resigned_department_ids_absent: bool,
    ) -> model::User {
        let key = u.key;
        let user = |k: UserKey| self.user_id_as(app, k, ids.user);
        let dept = |d: &str| self.department_id_as(d, ids.department);
        let mut out = model::User {
            open_id: Some(app.open_id(key)),
            union_id: Some(union_id(key)),
            mobile_visible: Some(u.mobile_visible),
            is_frozen: Some(u.status.frozen),
            ..model::User::default()
        };
        if app.has(perm::USER_EMPLOYEE_ID) {
            out.user_id = Some(u.user_id.clone());
        }
        if app.has(perm::USER_BASE) {
            out.name = Some(u.name.clone());
            out.en_name = u.en_name.clone();
            out.nickname = u.nickname.clone();
            let base = self.avatar_base.as_deref().unwrap_or(UNSERVED_AVATAR_BASE);
            out.avatar = Some(model::Avatar {
                avatar_72: Some(format!("{base}/avatar/{key}/72")),
                avatar_240: Some(format!("{base}/avatar/{key}/240")),
                avatar_640: Some(format!("{base}/avatar/{key}/640")),
                avatar_origin: Some(format!("{base}/avatar/{key}/origin")),
            });
        }
        if app.has_exactly(perm::USER_EMAIL) {
            out.email = u.email.clone();
        }
        if app.has_exactly(perm::USER_PHONE) {
            out.mobile = u.mobile.clone();
        }
        if app.has(perm::USER_GENDER) {
            out.gender = Some(u.gender);
        }
        if app.has(perm::USER_EMPLOYEE) {
            out.enterprise_email = u.enterprise_email.clone();
            out.status = Some(model::UserStatus {
                is_frozen: Some(u.status.frozen),
                is_resigned: Some(u.status.resigned),
                is_activated: Some(u.status.activated),
                is_exited: Some(u.status.exited),
                is_unjoin: Some(u.status.unjoin),
            });
            out.city = u.city.clone();
            out.country = u.country.clone();
            out.work_station = u.work_station.clone();
            out.join_time = Some(u.join_time);
            out.is_tenant_manager = Some(u.is_tenant_manager);
            out.employee_type = Some(u.employee_type);
            out.job_title = u.job_title.clone();
            out.custom_attrs = Some(
                u.custom_attrs
                    .iter()
                    .map(|a| model::CustomAttr {
                        kind: Some(a.kind.clone()),
                        id: Some(a.id.clone()),
                        value: Some(model::CustomAttrValue {
                            text: Some(a.text.clone()),
                            url: a.url.clone(),
                            pc_url: a.url.clone(),
                            ..model::CustomAttrValue::default()
                        }),
                    })
                    .collect(),
            );
        }
        if app.has(perm::USER_EMPLOYEE) || app.has(perm::USER_EMPLOYEE_NUMBER) {
            out.employee_no = u.employee_no.clone();
        }
        if app.has(perm::USER_DEPARTMENT) {
            if !(u.status.resigned && resigned_department_ids_absent) {
                out.department_ids =
                    Some(u.memberships.iter().map(|m| dept(&m.department)).collect());
            }
            out.leader_user_id = u.leader.map(user);
            out.orders = Some(
                u.memberships
                    .iter()
                    .map(|m| model::UserOrder {
                        department_id: Some(dept(&m.department)),
                        user_order: Some(m.user_order),
                        department_order: Some(m.department_order),
                        is_primary_dept: Some(m.primary),
                    })
                    .collect(),
            );
        }
        out
    }

    pub fn render_group(&self, group_id: &str) -> Option<model::Group> {
        let g = self.groups.get(group_id)?;
        Some(model::Group {
            id: Some(g.id.clone()),
            name: Some(g.name.clone()),
            description: Some(g.description.clone()),
            member_user_count: Some(g.users.len() as i64),
            member_department_count: (g.kind == GroupKind::Normal)
                .then_some(g.departments.len() as i64),
            kind: Some(g.kind.code()),
            group_id: Some(g.group_id.clone()),
        })
    }

    /// Groups a user belongs to directly.
    pub fn groups_of_user(&self, key: UserKey) -> Vec<String> {
        self.groups
            .values()
            .filter(|g| g.users.contains(&key))
            .map(|g| g.id.clone())
            .collect()
    }

    /// Live users (not resigned) in the tenant.
    pub fn active_user_count(&self) -> usize {
        self.users.values().filter(|u| !u.status.resigned).count()
    }
}
