//! The directory's objects: user pools, connections, and the mirrored organization (users,
//! departments, groups), with versions and tombstones. Plain data; the rules live in `plan`,
//! `import` and `apply`.

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{ConnectionId, DepartmentId, GroupId, JobId, Millis, PoolId, UserId};
use crate::secrets::SealedSecret;

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPool {
    pub id: PoolId,
    pub name: String,
    pub created_at: Millis,
}

/// Which Open Platform a connection talks to.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    Feishu,
    Lark,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Feishu => "feishu",
            Self::Lark => "lark",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "feishu" => Some(Self::Feishu),
            "lark" => Some(Self::Lark),
            _ => None,
        }
    }
}

/// Deletions above either limit (per object type) are parked for an admin (design.md §2).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeletionThreshold {
    /// Share of the connection's live objects of that type, e.g. 0.05.
    pub max_fraction: f64,
    /// Absolute number, e.g. 50.
    pub max_count: u64,
}

impl Default for DeletionThreshold {
    fn default() -> Self {
        Self {
            max_fraction: 0.05,
            max_count: 50,
        }
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConnectionSettings {
    /// Seconds between scheduled reconciliations (default 6 h); 0 disables the schedule.
    pub reconcile_interval_secs: u64,
    pub deletion_threshold: DeletionThreshold,
    pub pacing: Pacing,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        Self {
            reconcile_interval_secs: 6 * 3600,
            deletion_threshold: DeletionThreshold::default(),
            pacing: Pacing::default(),
        }
    }
}

/// How fast the connection's jobs call Feishu, per endpoint (docs/rate-limits.md). The
/// default is Feishu's published limit; lower it when other tools share the app's quota.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Pacing {
    /// Requests per second per endpoint, evenly spaced (Feishu: 50).
    pub per_second: u32,
    /// Requests per minute per endpoint (Feishu: 1,000).
    pub per_minute: u32,
}

impl Pacing {
    pub const MAX_PER_SECOND: u32 = 1_000;
    pub const MAX_PER_MINUTE: u32 = 60_000;
}

impl Default for Pacing {
    fn default() -> Self {
        Self {
            per_second: 50,
            per_minute: 1_000,
        }
    }
}

/// One Feishu / Lark self-built app inside a pool. Secrets are sealed with the master key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    pub id: ConnectionId,
    pub pool_id: PoolId,
    /// Unique in the pool; part of the event URL.
    pub identifier: String,
    pub display_name: String,
    pub provider: Provider,
    /// Overrides the provider's Open API base (e.g. the emulator's URL).
    pub base_url: Option<String>,
    pub app_id: String,
    pub app_secret: SealedSecret,
    pub encrypt_key: Option<SealedSecret>,
    pub verification_token: Option<SealedSecret>,
    pub settings: ConnectionSettings,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// The kinds of mirrored objects.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    User,
    Department,
    Group,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Department => "department",
            Self::Group => "group",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(Self::User),
            "department" => Some(Self::Department),
            "group" => Some(Self::Group),
            _ => None,
        }
    }
}

/// A user's account state, from Feishu's `status` flags. Only `Active` may sign in.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    #[default]
    Active,
    /// Suspended (暂停).
    Frozen,
    /// Invited, not yet joined.
    Unjoined,
    /// Left voluntarily; becomes resigned later.
    Exited,
    /// Left the company: disabled and detached from every department.
    Resigned,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Frozen => "frozen",
            Self::Unjoined => "unjoined",
            Self::Exited => "exited",
            Self::Resigned => "resigned",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "frozen" => Some(Self::Frozen),
            "unjoined" => Some(Self::Unjoined),
            "exited" => Some(Self::Exited),
            "resigned" => Some(Self::Resigned),
            _ => None,
        }
    }

    /// Whether the account may be used (downstream systems must refuse the others).
    pub fn is_enabled(self) -> bool {
        self == Self::Active
    }
}

/// The profile fields worth keeping (protocol §3.6). `None` = unknown (never sent, or the
/// app may not see it), which is different from an empty value.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserProfile {
    pub name: Option<String>,
    pub en_name: Option<String>,
    pub nickname: Option<String>,
    pub email: Option<String>,
    pub enterprise_email: Option<String>,
    pub mobile: Option<String>,
    pub gender: Option<i64>,
    /// The largest avatar URL Feishu gave.
    pub avatar_url: Option<String>,
    pub city: Option<String>,
    pub country: Option<String>,
    pub work_station: Option<String>,
    pub job_title: Option<String>,
    pub employee_no: Option<String>,
    pub employee_type: Option<i64>,
    /// Unix seconds.
    pub join_time: Option<i64>,
    pub is_tenant_manager: Option<bool>,
    /// Feishu's `custom_attrs`, verbatim.
    pub custom_attrs: Option<Value>,
}

/// A user's profile, shared until it is changed (copy on write). A job holds the outline of
/// every stored user at once (docs/memory.md); outlines share one empty profile instead of
/// carrying 400 bytes of empty fields each, and copies of a user made while planning share
/// their profile with the original.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile(Arc<UserProfile>);

impl Profile {
    /// The empty profile, shared by every holder.
    pub fn empty() -> Self {
        static EMPTY: OnceLock<Profile> = OnceLock::new();
        EMPTY
            .get_or_init(|| Profile(Arc::new(UserProfile::default())))
            .clone()
    }
}

impl Default for Profile {
    fn default() -> Self {
        Self::empty()
    }
}

impl Deref for Profile {
    type Target = UserProfile;
    fn deref(&self) -> &UserProfile {
        &self.0
    }
}

impl DerefMut for Profile {
    fn deref_mut(&mut self) -> &mut UserProfile {
        Arc::make_mut(&mut self.0)
    }
}

impl From<UserProfile> for Profile {
    fn from(profile: UserProfile) -> Self {
        Self(Arc::new(profile))
    }
}

impl Serialize for Profile {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Profile {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        UserProfile::deserialize(deserializer).map(Self::from)
    }
}

/// A user's place in one department.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub department_id: DepartmentId,
    /// Larger sorts earlier (Feishu's `user_order`).
    pub user_order: Option<i64>,
    pub department_order: Option<i64>,
    pub primary: bool,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub pool_id: PoolId,
    #[cfg_attr(feature = "openapi", schema(value_type = UserProfile))]
    pub profile: Profile,
    pub status: UserStatus,
    /// Departments, in Feishu's order. Empty for a user directly under the root and for a
    /// resigned user (resignation detaches at once).
    pub departments: Vec<Membership>,
    /// Directly under the root department (`"0"`).
    pub in_root: bool,
    pub manager_id: Option<UserId>,
    /// Increments on every change.
    pub version: i64,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// Soft deletion: the tombstone time.
    pub deleted_at: Option<Millis>,
}

#[cfg(test)]
impl User {
    /// An active user with an empty profile, in no department: for tests.
    pub(crate) fn bare(pool_id: &str, id: &str) -> Self {
        Self {
            id: UserId(id.into()),
            pool_id: PoolId(pool_id.into()),
            profile: Profile::empty(),
            status: UserStatus::Active,
            departments: Vec::new(),
            in_root: true,
            manager_id: None,
            version: 0,
            created_at: 0,
            updated_at: 0,
            deleted_at: None,
        }
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaderKind {
    /// 主负责人 (`leaderType` 1).
    Main,
    /// 副负责人 (`leaderType` 2).
    Deputy,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leader {
    pub user_id: UserId,
    pub kind: LeaderKind,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct I18nName {
    pub zh_cn: Option<String>,
    pub en_us: Option<String>,
    pub ja_jp: Option<String>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Department {
    pub id: DepartmentId,
    pub pool_id: PoolId,
    pub name: Option<String>,
    pub i18n_name: Option<I18nName>,
    /// `None`: a first-level department (its Feishu parent is the root `"0"`).
    pub parent_id: Option<DepartmentId>,
    /// Smaller sorts earlier among siblings.
    pub order: Option<i64>,
    pub leaders: Vec<Leader>,
    pub chat_id: Option<String>,
    pub version: i64,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub deleted_at: Option<Millis>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupKind {
    Normal,
    Dynamic,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum GroupMember {
    User(UserId),
    Department(DepartmentId),
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub id: GroupId,
    pub pool_id: PoolId,
    pub name: Option<String>,
    pub description: Option<String>,
    pub kind: GroupKind,
    /// Sorted, without duplicates.
    pub members: Vec<GroupMember>,
    pub version: i64,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub deleted_at: Option<Millis>,
}

/// A group without its member list: what a user's page shows of each group it is in (a group
/// may have 100,000 members; docs/read-model.md).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupSummary {
    pub id: GroupId,
    pub pool_id: PoolId,
    pub name: Option<String>,
    pub description: Option<String>,
    pub kind: GroupKind,
    pub version: i64,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub deleted_at: Option<Millis>,
}

impl From<Group> for GroupSummary {
    fn from(g: Group) -> Self {
        Self {
            id: g.id,
            pool_id: g.pool_id,
            name: g.name,
            description: g.description,
            kind: g.kind,
            version: g.version,
            created_at: g.created_at,
            updated_at: g.updated_at,
            deleted_at: g.deleted_at,
        }
    }
}

/// The Feishu identity of one object of a connection ("sync relation").
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ExternalRef {
    pub connection_id: ConnectionId,
    pub kind: ObjectKind,
    /// The immutable key: `open_id`, `open_department_id`, or the group id.
    pub external_id: String,
    /// Users: `union_id`.
    pub union_id: Option<String>,
    /// Users: the tenant `user_id`; departments: the custom `department_id`; groups: the
    /// custom group id.
    pub custom_id: Option<String>,
    /// The orgsync object.
    pub object_id: String,
}

/// The per-object action vocabulary of sync jobs (design.md §2).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SyncAction {
    CreateUser,
    UpdateUser,
    DisableUser,
    DeleteUser,
    ChangeUserDepartment,
    UpdateUserIdentifier,
    CreateDepartment,
    UpdateDepartment,
    MoveDepartment,
    UpdateDepartmentLeader,
    DeleteDepartment,
    CreateGroup,
    UpdateGroup,
    DeleteGroup,
    AddGroupMember,
    RemoveGroupMember,
    Unchanged,
}

impl SyncAction {
    pub const ALL: [SyncAction; 17] = [
        Self::CreateUser,
        Self::UpdateUser,
        Self::DisableUser,
        Self::DeleteUser,
        Self::ChangeUserDepartment,
        Self::UpdateUserIdentifier,
        Self::CreateDepartment,
        Self::UpdateDepartment,
        Self::MoveDepartment,
        Self::UpdateDepartmentLeader,
        Self::DeleteDepartment,
        Self::CreateGroup,
        Self::UpdateGroup,
        Self::DeleteGroup,
        Self::AddGroupMember,
        Self::RemoveGroupMember,
        Self::Unchanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreateUser => "CreateUser",
            Self::UpdateUser => "UpdateUser",
            Self::DisableUser => "DisableUser",
            Self::DeleteUser => "DeleteUser",
            Self::ChangeUserDepartment => "ChangeUserDepartment",
            Self::UpdateUserIdentifier => "UpdateUserIdentifier",
            Self::CreateDepartment => "CreateDepartment",
            Self::UpdateDepartment => "UpdateDepartment",
            Self::MoveDepartment => "MoveDepartment",
            Self::UpdateDepartmentLeader => "UpdateDepartmentLeader",
            Self::DeleteDepartment => "DeleteDepartment",
            Self::CreateGroup => "CreateGroup",
            Self::UpdateGroup => "UpdateGroup",
            Self::DeleteGroup => "DeleteGroup",
            Self::AddGroupMember => "AddGroupMember",
            Self::RemoveGroupMember => "RemoveGroupMember",
            Self::Unchanged => "Unchanged",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// Deletions are what thresholds and partial verdicts hold back.
    pub fn is_deletion(self) -> bool {
        matches!(
            self,
            Self::DeleteUser | Self::DeleteDepartment | Self::DeleteGroup
        )
    }
}

/// What happened to one planned action.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionResult {
    Applied,
    /// Not applied, on purpose (e.g. deletion from a partial snapshot); `reason` says why.
    Skipped,
    /// Waiting for an admin (a deletion above the threshold).
    Parked,
    /// Tried and failed; `reason` says why. One bad record never blocks the rest.
    Failed,
}

impl ActionResult {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Skipped => "skipped",
            Self::Parked => "parked",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "applied" => Some(Self::Applied),
            "skipped" => Some(Self::Skipped),
            "parked" => Some(Self::Parked),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// One line of a job's per-object action log.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionLogEntry {
    pub job_id: JobId,
    /// Position in the job's log (assigned by the store when 0).
    pub seq: i64,
    pub action: SyncAction,
    pub kind: ObjectKind,
    /// The Feishu id of the object.
    pub external_id: String,
    /// The orgsync id, when the object exists.
    pub object_id: Option<String>,
    /// A display name, for people reading the log.
    pub name: Option<String>,
    pub result: ActionResult,
    pub reason: Option<String>,
    pub at: Millis,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// The first full pull of a connection.
    Import,
    /// A later full pull that heals what events missed.
    Reconcile,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobTrigger {
    Admin,
    Schedule,
    /// A `contact.scope.updated_v3` event.
    ScopeChange,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Running,
    Finished,
}

/// How much of Feishu a finished job saw (design.md §2).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The whole contact scope was read: creates, updates and deletions applied.
    Complete,
    /// Some reads failed: creates and updates applied, no deletions.
    Partial,
    /// Nothing usable was read; `error` says why and what to fix.
    Failed,
}

/// Live progress of a job.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobProgress {
    /// e.g. `scopes`, `departments`, `users` (the groups are read beside them), `leavers`,
    /// `planning`, `applying`.
    pub phase: String,
    pub pages: u64,
    pub departments: u64,
    pub users: u64,
    pub groups: u64,
    /// Actions applied so far / planned.
    pub applied: u64,
    pub planned: u64,
    /// Feishu answers that said "throttled" (429 / 99991400) during the job; each was waited
    /// out (`x-ogw-ratelimit-reset`) and retried.
    pub throttled: u64,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncJob {
    pub id: JobId,
    pub pool_id: PoolId,
    pub connection_id: ConnectionId,
    pub kind: JobKind,
    pub trigger: JobTrigger,
    pub state: JobState,
    pub verdict: Option<Verdict>,
    pub progress: JobProgress,
    /// Actions by name and result, e.g. `{"CreateUser": {"applied": 120}}`.
    pub counts: BTreeMap<String, BTreeMap<String, u64>>,
    /// For a failed or partial job: what went wrong and how to fix it.
    pub error: Option<String>,
    /// The Feishu error code behind `error`, if any.
    pub error_code: Option<i64>,
    pub started_at: Millis,
    pub finished_at: Option<Millis>,
    /// The orgsync instance that runs (or ran) the job: its `instance_id`. `None` for jobs
    /// recorded before instances were named.
    #[serde(default)]
    pub instance: Option<String>,
}

/// A deletion held back for an admin's decision.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParkedState {
    /// Waiting for an admin. At most one per (connection, object): a later job that plans
    /// the same deletion refreshes it.
    Pending,
    Approved,
    Rejected,
    /// No longer needed: a later job with a complete view found the object back in Feishu,
    /// or the object was deleted by another path (`resolution` says which).
    Withdrawn,
}

impl ParkedState {
    pub const ALL: [ParkedState; 4] = [
        Self::Pending,
        Self::Approved,
        Self::Rejected,
        Self::Withdrawn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Withdrawn => "withdrawn",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkedDeletion {
    /// Assigned by the store.
    pub id: i64,
    pub pool_id: PoolId,
    pub connection_id: ConnectionId,
    pub job_id: JobId,
    pub kind: ObjectKind,
    pub object_id: String,
    pub external_id: String,
    pub name: Option<String>,
    /// Why the job parked it (from the job that parked it last).
    pub reason: String,
    pub state: ParkedState,
    pub created_at: Millis,
    /// When a job last planned this deletion (`created_at`, or a later job's refresh). An
    /// approval is refused when the object changed after this.
    pub last_parked_at: Millis,
    pub resolved_at: Option<Millis>,
    /// How it was resolved: by an admin, or why it was withdrawn.
    pub resolution: Option<String>,
}
