//! The storage port: what the directory needs from a database. Implemented for SQLite and
//! PostgreSQL in the `store` crate; every behaviour here is tested on both.
//!
//! The store keeps no business rules. It persists what the engine decided, atomically:
//! [`DirectoryStore::apply`] writes objects (bumping versions), appends one change-log row per
//! object change numbered by a per-pool counter row, moves per-object event watermarks and
//! finishes the inbox events it applied — all in one transaction, which is what makes event
//! application exactly-once and the change log gap-free.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::app_passwords::AppPassword;
use crate::credentials::ServiceCredential;
use crate::feed::{FeedDraft, FeedEvent, FeedType};
use crate::ids::{ConnectionId, DepartmentId, GroupId, JobId, Millis, PoolId, UserId};
use crate::ldap_view::{LdapSettings, LoginSource};
use crate::model::{
    ActionLogEntry, ActionResult, Connection, Department, ExternalRef, Group, GroupMember,
    GroupSummary, JobKind, ObjectKind, ParkedDeletion, ParkedState, SyncAction, SyncJob, User,
    UserPool, UserStatus,
};
use crate::webhooks::{WebhookAttempt, WebhookEndpoint};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A uniqueness rule: e.g. a connection identifier already used in the pool.
    #[error("{0}")]
    Conflict(String),
    /// The object was changed by someone else since it was read (`expected_version`).
    #[error("{kind} {id} changed concurrently (expected version {expected}, found {found})")]
    VersionConflict {
        kind: &'static str,
        id: String,
        expected: i64,
        found: i64,
    },
    /// A [`Write::PutExternalRef`] would repoint a Feishu id to another object while the
    /// object it maps exists: a Feishu id maps to one object for life (e.g. an event created
    /// the object after a job planned to create it too).
    #[error("{kind} {external_id} is already mapped to {object_id}")]
    ExternalIdTaken {
        kind: &'static str,
        external_id: String,
        /// The object the id stays mapped to.
        object_id: String,
    },
    #[error("{0} not found")]
    NotFound(String),
    /// The database could not be reached or answered with an error.
    #[error("database error: {0}")]
    Database(String),
    /// A page's `after` key that this list did not hand out (another list's, or edited).
    #[error("{0}")]
    BadCursor(String),
    /// Stored data could not be decoded (a bug or a hand-edited database).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

// ---- change log ------------------------------------------------------------------------

/// What caused a change.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChangeSource {
    Job {
        job_id: JobId,
        connection_id: ConnectionId,
        /// Absent in rows written before the change feed (docs/change-feed.md).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        job_kind: Option<JobKind>,
    },
    Event {
        event_id: String,
        connection_id: ConnectionId,
    },
    Admin,
}

/// The change-log vocabulary (named like the action log).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    UserCreated,
    UserUpdated,
    UserDisabled,
    UserDeleted,
    UserDepartmentsChanged,
    UserIdentifierChanged,
    DepartmentCreated,
    DepartmentUpdated,
    DepartmentMoved,
    DepartmentLeaderChanged,
    DepartmentDeleted,
    GroupCreated,
    GroupUpdated,
    GroupDeleted,
    GroupMembersChanged,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserCreated => "user_created",
            Self::UserUpdated => "user_updated",
            Self::UserDisabled => "user_disabled",
            Self::UserDeleted => "user_deleted",
            Self::UserDepartmentsChanged => "user_departments_changed",
            Self::UserIdentifierChanged => "user_identifier_changed",
            Self::DepartmentCreated => "department_created",
            Self::DepartmentUpdated => "department_updated",
            Self::DepartmentMoved => "department_moved",
            Self::DepartmentLeaderChanged => "department_leader_changed",
            Self::DepartmentDeleted => "department_deleted",
            Self::GroupCreated => "group_created",
            Self::GroupUpdated => "group_updated",
            Self::GroupDeleted => "group_deleted",
            Self::GroupMembersChanged => "group_members_changed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::UserCreated,
            Self::UserUpdated,
            Self::UserDisabled,
            Self::UserDeleted,
            Self::UserDepartmentsChanged,
            Self::UserIdentifierChanged,
            Self::DepartmentCreated,
            Self::DepartmentUpdated,
            Self::DepartmentMoved,
            Self::DepartmentLeaderChanged,
            Self::DepartmentDeleted,
            Self::GroupCreated,
            Self::GroupUpdated,
            Self::GroupDeleted,
            Self::GroupMembersChanged,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One row of a pool's change log. `object` is the object's full state after the change, so
/// replaying the log in `seq` order rebuilds the directory.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeRecord {
    pub pool_id: PoolId,
    /// 1, 2, 3, … per pool, without gaps, in commit order.
    pub seq: i64,
    pub kind: ChangeKind,
    pub object_kind: ObjectKind,
    pub object_id: String,
    /// The object's version after the change.
    pub version: i64,
    pub source: ChangeSource,
    pub at: Millis,
    pub object: Value,
}

// ---- writes ----------------------------------------------------------------------------

/// One object write. `Put*` inserts or replaces the whole object (memberships and members
/// included); the store sets `version` (previous + 1, or 1) and `updated_at` (and
/// `created_at` on insert), ignoring the values passed in.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // written in batches of a few hundred; boxing buys nothing
pub enum Write {
    PutUser {
        user: User,
        change: ChangeKind,
        /// Refuse with [`StoreError::VersionConflict`] unless the stored version is this
        /// (0 = must not exist yet). `None`: no check.
        expected_version: Option<i64>,
    },
    PutDepartment {
        department: Department,
        change: ChangeKind,
        expected_version: Option<i64>,
    },
    PutGroup {
        group: Group,
        change: ChangeKind,
        expected_version: Option<i64>,
    },
    /// Inserts or replaces the mapping for (connection, kind, external_id). Not a change of
    /// the directory, so no change-log row. Refused with [`StoreError::ExternalIdTaken`] when
    /// the stored mapping names another object that exists (tombstoned or not); a mapping
    /// whose object is missing may be repointed.
    PutExternalRef(ExternalRef),
}

impl Write {
    /// The object this write puts, by kind and id (`None`: a ref, which puts no object).
    pub fn object(&self) -> Option<(ObjectKind, &str)> {
        match self {
            Write::PutUser { user, .. } => Some((ObjectKind::User, user.id.as_str())),
            Write::PutDepartment { department, .. } => {
                Some((ObjectKind::Department, department.id.as_str()))
            }
            Write::PutGroup { group, .. } => Some((ObjectKind::Group, group.id.as_str())),
            Write::PutExternalRef(_) => None,
        }
    }
}

/// The newest event applied to one object of a connection (the per-object ordering guard):
/// an event older than this must not overwrite, and nothing may resurrect a deleted object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    pub connection_id: ConnectionId,
    /// e.g. `user:ou_…`, `department:od-…`, `group:g…`.
    pub object_key: String,
    /// Feishu `create_time` of the newest applied event, ms.
    pub event_time: Millis,
    /// The newest applied event deleted the object.
    pub deleted: bool,
}

/// A place in the order events are applied in: `created_at` (events without one last), then
/// inbox id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueCursor {
    pub created_at: Option<Millis>,
    pub id: i64,
}

impl DueCursor {
    pub fn of(event: &InboxEvent) -> Self {
        Self {
            created_at: event.created_at,
            id: event.id,
        }
    }
}

/// Everything one transaction does.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplyBatch {
    pub pool_id: PoolId,
    /// The source of the batch's changes (of every write before the first of `later_sources`).
    pub source: ChangeSource,
    pub writes: Vec<Write>,
    /// `(i, source)`: writes from index `i` on are attributed to `source` (a batch that applies
    /// several events: each event's writes carry its own event id). Ascending `i`.
    pub later_sources: Vec<(usize, ChangeSource)>,
    /// Upserted (a watermark only ever moves forward: the store keeps the newer time).
    pub watermarks: Vec<Watermark>,
    /// Inbox events finished in the same transaction (applied or ignored), any number. Each
    /// must be pending and listed once, or the whole batch is refused.
    pub inbox: Vec<(i64, InboxOutcome)>,
    /// Write no feed events for these changes: a connection's first import, which consumers
    /// read from the directory instead (docs/change-feed.md).
    pub quiet: bool,
    /// Objects as the caller read them from this store while planning the batch.
    pub as_read: AsRead,
}

/// Whole objects as read from the store, each with the `version` it had then: the state the
/// feed compares a change with. `apply` takes one instead of reading the object again when
/// the stored version is still that one (every write moves it), and reads whatever is
/// missing or older (docs/change-feed.md). The event worker passes what it loaded to plan;
/// the engine passes what the pool's previous batch wrote.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AsRead {
    pub users: Vec<User>,
    pub departments: Vec<Department>,
    pub groups: Vec<Group>,
    /// Changes a batch before this one committed: each object as written, at its `version`
    /// (an object changed in consecutive batches is in none of the lists above: the worker
    /// plans it from what it wrote, not from the store).
    pub written: Vec<ChangeRecord>,
}

impl ApplyBatch {
    /// A batch with nothing in it yet.
    pub fn new(pool_id: PoolId, source: ChangeSource) -> Self {
        Self {
            pool_id,
            source,
            writes: Vec::new(),
            later_sources: Vec::new(),
            watermarks: Vec::new(),
            inbox: Vec::new(),
            quiet: false,
            as_read: AsRead::default(),
        }
    }
}

/// What a committed batch wrote.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Applied {
    pub changes: Vec<ChangeRecord>,
    /// Feed events the batch appended.
    pub feed_events: u64,
}

// ---- the change feed and service credentials -------------------------------------------

/// Where a pool's feed stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FeedHead {
    /// The number of the newest event (0: none yet).
    pub last_seq: i64,
    /// Retention removed every event up to this number: a reader behind it lost events.
    pub pruned_through: i64,
}

/// A pool's feed settings.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedSettings {
    /// Events older than this many days are removed.
    pub retention_days: u32,
    /// Whether a connection's first import reports every object it creates (default: one
    /// `directory.sync_completed` with `initial: true` instead).
    pub initial_import_events: bool,
}

impl Default for FeedSettings {
    fn default() -> Self {
        Self {
            retention_days: 30,
            initial_import_events: false,
        }
    }
}

/// What one read of the feed found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FeedRead {
    pub events: Vec<FeedEvent>,
    /// The read looked at every event up to this number (at least the last event's): the
    /// next read starts after it, also when a type filter matched nothing.
    pub through: i64,
    /// The feed's head as the read found it (read before the events).
    pub head: FeedHead,
}

/// A credential with the hash of its secret, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCredential {
    pub credential: ServiceCredential,
    pub secret_hash: String,
}

/// An app password with the argon2id hash the store keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAppPassword {
    pub password: AppPassword,
    pub hash: String,
}

// ---- reads -------------------------------------------------------------------------------

/// Everything the store holds for one connection: the objects it mapped (tombstones included)
/// and their external refs. The planner diffs a Feishu snapshot against this.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnectionState {
    pub users: Vec<User>,
    pub departments: Vec<Department>,
    pub groups: Vec<Group>,
    pub refs: Vec<ExternalRef>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// Items skipped (after `after`, when given). Each one skipped is read and dropped, so a
    /// deep offset costs as much as the pages before it; a walk passes `after` instead.
    pub offset: u64,
    pub limit: u64,
    /// Where a keyset walk resumes, for lists keyed by a number (a job's action log by
    /// `seq`, parked deletions and inbox events by id): the key of the last item of the page
    /// before. The page starts after it in the list's order, through the list's index,
    /// whatever its depth.
    pub after: Option<i64>,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            offset: 0,
            limit: 100,
            after: None,
        }
    }
}

/// One page of a keyset walk (docs/read-model.md): the items after `after` in the list's own
/// stable order. `after` is a key the same list returned as [`Keyed::next`]; the store
/// answers [`StoreError::BadCursor`] for anything else. Each page costs the same whatever its
/// position, and a walk lists every item that exists throughout it exactly once, whatever is
/// written meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPage {
    pub after: Option<String>,
    pub limit: u64,
}

impl KeyPage {
    /// The first `limit` items.
    pub fn first(limit: u64) -> Self {
        Self { after: None, limit }
    }
}

/// A page of a keyset walk: `next` is the key to pass as [`KeyPage::after`] for the page after
/// this one, `None` at the end of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyed<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// Which members of a department a user list covers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MemberScope {
    /// The users with a membership in the department itself.
    #[default]
    Direct,
    /// The users in the department or any department below it, each once.
    Subtree,
}

/// One group of a list: its fields and how many members it lists, without the member list
/// itself (a group may list 100,000 members; they page by cursor on their own route).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupEntry {
    pub group: GroupSummary,
    /// Members the group lists (users and departments), counted through its member index.
    pub member_count: u64,
}

/// One department of a tree level, with its maintained counts.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DepartmentNode {
    pub department: Department,
    /// Live users with a membership in the department itself.
    pub member_count: u64,
    /// Distinct live users in the department and the departments below it (a user in two of
    /// them counts once).
    pub total_member_count: u64,
    /// Live departments directly below it.
    pub child_count: u64,
}

/// User search for the admin API and downstream readers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserQuery {
    /// Case-insensitive substring of name, English name, e-mail, mobile or employee number.
    pub text: Option<String>,
    pub email: Option<String>,
    pub mobile: Option<String>,
    pub employee_no: Option<String>,
    /// Members of this department (live users only), by `scope`.
    pub department_id: Option<DepartmentId>,
    pub scope: MemberScope,
    pub status: Option<UserStatus>,
    /// Tombstoned users too.
    pub include_deleted: bool,
}

// ---- inbox -------------------------------------------------------------------------------

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InboxState {
    /// Committed, waiting to be applied (or to be retried at `next_attempt_at`).
    Pending,
    Applied,
    /// Acknowledged without effect (unknown type, older than the object's state, …).
    Ignored,
    /// Failed too often: kept for an admin, never retried automatically.
    Parked,
}

impl InboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Applied => "applied",
            Self::Ignored => "ignored",
            Self::Parked => "parked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "applied" => Some(Self::Applied),
            "ignored" => Some(Self::Ignored),
            "parked" => Some(Self::Parked),
            _ => None,
        }
    }
}

/// A verified, decrypted event to commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInboxEvent {
    pub pool_id: PoolId,
    pub connection_id: ConnectionId,
    /// `header.event_id` (2.0) or `uuid` (1.0): unique per connection.
    pub event_id: String,
    pub event_type: String,
    /// Feishu `create_time` (2.0) or `ts` (1.0), ms.
    pub created_at: Option<Millis>,
    pub received_at: Millis,
    /// The plaintext envelope JSON, without the Verification Token.
    pub payload: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    /// Committed; the id of the inbox row.
    Inserted(i64),
    /// The event id was already in the inbox (Feishu redelivers even after a 200).
    Duplicate(i64),
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxEvent {
    pub id: i64,
    pub pool_id: PoolId,
    pub connection_id: ConnectionId,
    pub event_id: String,
    pub event_type: String,
    pub created_at: Option<Millis>,
    pub received_at: Millis,
    pub payload: String,
    pub state: InboxState,
    pub attempts: i64,
    pub next_attempt_at: Millis,
    pub last_error: Option<String>,
    /// What applying it did (or why it was ignored / parked).
    pub outcome: Option<String>,
    pub finished_at: Option<Millis>,
}

/// How an inbox event ends (or is rescheduled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboxOutcome {
    Applied {
        note: Option<String>,
    },
    Ignored {
        reason: String,
    },
    /// Back to pending, retried at `next_attempt_at`; `attempts` increments.
    Retry {
        error: String,
        next_attempt_at: Millis,
    },
    /// Given up on after a failed attempt: kept for an admin; `attempts` increments.
    Parked {
        error: String,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InboxFilter {
    pub pool_id: Option<PoolId>,
    pub connection_id: Option<ConnectionId>,
    pub state: Option<InboxState>,
    pub event_type: Option<String>,
}

// ---- jobs ---------------------------------------------------------------------------------

/// Which id of an [`ExternalRef`] a lookup matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExternalField {
    /// `open_id`, `open_department_id` or the group id.
    ExternalId,
    /// Users: `union_id`.
    UnionId,
    /// Users: `user_id`; departments: `department_id`.
    CustomId,
}

/// Running jobs that cannot be running any more, for [`DirectoryStore::interrupt_jobs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunningJobs {
    /// The jobs recorded by one instance (`SyncJob::instance`): its process stopped.
    OfInstance(String),
    /// The jobs of one connection: whoever holds its lease now, no job of it still runs.
    OfConnection(ConnectionId),
    /// The jobs whose connection's lease is gone or expired at `now` (a running job renews
    /// its lease; one that stopped doing so lost its process).
    WithoutLiveLease { now: Millis },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActionLogFilter {
    pub action: Option<SyncAction>,
    pub kind: Option<ObjectKind>,
    pub result: Option<ActionResult>,
}

// ---- parked deletions ----------------------------------------------------------------------

/// Which parked deletions a list, a count or a bulk decision covers (every condition set must
/// hold).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedFilter {
    pub pool_id: PoolId,
    pub state: Option<ParkedState>,
    pub connection_id: Option<ConnectionId>,
    pub kind: Option<ObjectKind>,
    /// The job that parked the entry (or refreshed it last).
    pub job_id: Option<JobId>,
}

impl ParkedFilter {
    /// Every entry of a pool.
    pub fn pool(pool_id: &PoolId) -> Self {
        Self {
            pool_id: pool_id.clone(),
            state: None,
            connection_id: None,
            kind: None,
            job_id: None,
        }
    }

    pub fn state(mut self, state: ParkedState) -> Self {
        self.state = Some(state);
        self
    }
}

/// The users [`DirectoryStore::users_by_keys`] found, with the logins that name them and
/// their managers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NamedUsers {
    /// In id order.
    pub users: Vec<User>,
    /// The shown (active, live) among the users and their managers, each with the login it
    /// holds (as [`DirectoryStore::shown_user_logins`]).
    pub logins: HashMap<UserId, Option<String>>,
}

/// What names a person in an LDAP filter ([`DirectoryStore::users_by_keys`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PersonKey {
    /// A login (`uid`), or an orgsync id standing in for one.
    Login(String),
    /// An e-mail address (`mail`).
    Mail(String),
}

/// The storage port. All methods are safe to call concurrently; implementations are cheap to
/// share behind an `Arc<dyn DirectoryStore>`.
#[async_trait]
pub trait DirectoryStore: Send + Sync + 'static {
    fn backend(&self) -> Backend;

    /// A counter this store raises after each committed write that can end what a bind was
    /// made with: users written (one may have left), a pool deleted, a service credential
    /// or an app password revoked. A reader that keeps the result of such a check for a
    /// moment reads this before checking and checks again once it moved; writes made
    /// through another store (another process) are not counted, so such a result must
    /// also age out (docs/ldap.md, "Binds").
    fn write_epoch(&self) -> u64;

    // pools
    async fn create_pool(&self, pool: &UserPool) -> StoreResult<()>;
    async fn get_pool(&self, id: &PoolId) -> StoreResult<Option<UserPool>>;
    async fn list_pools(&self) -> StoreResult<Vec<UserPool>>;
    /// [`StoreError::NotFound`] when the pool does not exist.
    async fn rename_pool(&self, id: &PoolId, name: &str) -> StoreResult<()>;
    /// Removes the pool and everything it holds, in one transaction: its connections with
    /// their external refs, watermarks and leases (job and event); users, departments, groups and their
    /// memberships; the change log and its counter; inbox events, jobs with their action logs
    /// and parked deletions (those of connections deleted earlier too). Other pools are
    /// untouched. [`StoreError::NotFound`] when the pool does not exist.
    async fn delete_pool(&self, id: &PoolId) -> StoreResult<()>;

    // connections
    /// [`StoreError::Conflict`] when the identifier is already used in the pool.
    async fn create_connection(&self, connection: &Connection) -> StoreResult<()>;
    /// Replaces every field but `id`, `pool_id` and `created_at`.
    async fn update_connection(&self, connection: &Connection) -> StoreResult<()>;
    /// Removes the connection and its external refs, watermarks, leases and pending inbox
    /// events; the directory objects stay (they may be served by other connections).
    async fn delete_connection(&self, id: &ConnectionId) -> StoreResult<()>;
    async fn get_connection(&self, id: &ConnectionId) -> StoreResult<Option<Connection>>;
    async fn find_connection(
        &self,
        pool_id: &PoolId,
        identifier: &str,
    ) -> StoreResult<Option<Connection>>;
    async fn list_connections(&self, pool_id: Option<&PoolId>) -> StoreResult<Vec<Connection>>;

    // directory
    async fn load_connection_state(
        &self,
        connection_id: &ConnectionId,
    ) -> StoreResult<ConnectionState>;
    /// [`DirectoryStore::load_connection_state`] with each user's profile cut to its name:
    /// the outline a job plans against. It reads in full ([`DirectoryStore::get_users`]) the
    /// users it merges or deletes, when it needs them (docs/memory.md).
    async fn load_connection_outline(
        &self,
        connection_id: &ConnectionId,
    ) -> StoreResult<ConnectionState>;
    async fn get_user(&self, pool_id: &PoolId, id: &UserId) -> StoreResult<Option<User>>;
    async fn get_department(
        &self,
        pool_id: &PoolId,
        id: &DepartmentId,
    ) -> StoreResult<Option<Department>>;
    async fn get_group(&self, pool_id: &PoolId, id: &GroupId) -> StoreResult<Option<Group>>;
    async fn find_external(
        &self,
        connection_id: &ConnectionId,
        kind: ObjectKind,
        external_id: &str,
    ) -> StoreResult<Option<ExternalRef>>;
    /// The ref of a connection's object found by one of its Feishu ids (the first by
    /// `external_id` if several share a `union_id` or custom id).
    /// The refs of a connection's objects of one kind, by Feishu id (`external_id`); ids
    /// without a ref are left out. Through the primary key, in chunks.
    async fn find_externals(
        &self,
        connection_id: &ConnectionId,
        kind: ObjectKind,
        external_ids: &[String],
    ) -> StoreResult<HashMap<String, ExternalRef>>;
    /// Objects by id (tombstones included), in the order of `ids` (a repeated id once); ids
    /// that do not exist are left out. The same content as [`DirectoryStore::get_user`]
    /// (memberships included), with a bounded number of queries per chunk of ids, not per id.
    async fn get_users(&self, pool_id: &PoolId, ids: &[UserId]) -> StoreResult<Vec<User>>;
    /// Which of `ids` are active users (not frozen, resigned, unjoined or exited, and not
    /// deleted): the people a downstream view may name. Ids only, a statement per chunk.
    async fn active_user_ids(
        &self,
        pool_id: &PoolId,
        ids: &[UserId],
    ) -> StoreResult<std::collections::HashSet<UserId>>;
    /// Like [`DirectoryStore::get_users`], leaders included.
    async fn get_departments(
        &self,
        pool_id: &PoolId,
        ids: &[DepartmentId],
    ) -> StoreResult<Vec<Department>>;
    /// Like [`DirectoryStore::get_users`], members included.
    async fn get_groups(&self, pool_id: &PoolId, ids: &[GroupId]) -> StoreResult<Vec<Group>>;
    /// Every live (not tombstoned) user with a membership in the department, ordered by id,
    /// without any cap (a department deletion must detach all of them). Through the
    /// membership index; two queries whatever the number of members.
    async fn department_members(
        &self,
        pool_id: &PoolId,
        department_id: &DepartmentId,
    ) -> StoreResult<Vec<User>>;
    async fn find_external_by(
        &self,
        connection_id: &ConnectionId,
        kind: ObjectKind,
        field: ExternalField,
        value: &str,
    ) -> StoreResult<Option<ExternalRef>>;
    /// Change-log rows of one object, newest first, at most `limit`.
    async fn object_history(
        &self,
        pool_id: &PoolId,
        kind: ObjectKind,
        object_id: &str,
        limit: u64,
    ) -> StoreResult<Vec<ChangeRecord>>;
    /// Groups (tombstones included) that list `member`, by id.
    async fn groups_of_member(
        &self,
        pool_id: &PoolId,
        member: &GroupMember,
    ) -> StoreResult<Vec<Group>>;
    /// [`DirectoryStore::groups_of_member`] without their member lists: one query, whatever
    /// the groups' sizes.
    async fn group_summaries_of_member(
        &self,
        pool_id: &PoolId,
        member: &GroupMember,
    ) -> StoreResult<Vec<GroupSummary>>;
    /// External refs of one object (one per connection that maps it).
    async fn refs_of(&self, kind: ObjectKind, object_id: &str) -> StoreResult<Vec<ExternalRef>>;
    /// A page of the users a query matches, each page from an index (docs/read-model.md):
    /// department members in user-id order through `subtree_members`; a free-text search
    /// through the backend's text index; everything else in creation order.
    async fn list_users(
        &self,
        pool_id: &PoolId,
        query: &UserQuery,
        page: &KeyPage,
    ) -> StoreResult<Keyed<User>>;
    /// Counts the matches of a query: reads every match (use the maintained counts of
    /// [`DirectoryStore::department_children`] for departments).
    async fn count_users(&self, pool_id: &PoolId, query: &UserQuery) -> StoreResult<u64>;
    /// Live departments of the pool (tombstones left out): every one, for jobs and tests, not
    /// for request paths.
    async fn list_departments(&self, pool_id: &PoolId) -> StoreResult<Vec<Department>>;
    /// A page of the pool's live departments in id order, whatever their level (`after`: the
    /// last id of the page before): a walk of every department that holds one page at a time.
    async fn departments_page(
        &self,
        pool_id: &PoolId,
        page: &KeyPage,
    ) -> StoreResult<Keyed<Department>>;
    /// One level of the live department tree: the live departments directly below `parent`,
    /// or the roots (no parent, or a tombstoned one) for `None`; ordered by Feishu's order,
    /// then id; with their maintained counts.
    async fn department_children(
        &self,
        pool_id: &PoolId,
        parent: Option<&DepartmentId>,
        page: &KeyPage,
    ) -> StoreResult<Keyed<DepartmentNode>>;
    /// The department with its counts (tombstoned ones too).
    async fn department_node(
        &self,
        pool_id: &PoolId,
        id: &DepartmentId,
    ) -> StoreResult<Option<DepartmentNode>>;
    /// The live ancestors of a department, root first (at most 64: a stored cycle stops).
    async fn department_path(
        &self,
        pool_id: &PoolId,
        id: &DepartmentId,
    ) -> StoreResult<Vec<Department>>;
    /// After a job wrote many rows: bring the database's planner statistics up to date, so
    /// that the reads after an import are planned for the tables' real sizes (PostgreSQL
    /// would otherwise plan for the empty tables it last analyzed until autovacuum runs).
    async fn refresh_statistics(&self) -> StoreResult<()>;
    /// A page of the live groups, in creation order.
    async fn list_groups(&self, pool_id: &PoolId, page: &KeyPage)
    -> StoreResult<Keyed<GroupEntry>>;
    /// A page of one group's members (tombstoned groups too), in the order of member kind,
    /// then id; `None` if the pool holds no such group.
    async fn group_members_page(
        &self,
        pool_id: &PoolId,
        group_id: &GroupId,
        page: &KeyPage,
    ) -> StoreResult<Option<Keyed<GroupMember>>>;
    /// Live departments of the pool, counted by the database (for status lines).
    async fn count_departments(&self, pool_id: &PoolId) -> StoreResult<u64>;
    /// Live groups of the pool, counted by the database.
    async fn count_groups(&self, pool_id: &PoolId) -> StoreResult<u64>;

    // writes and the change log
    async fn apply(&self, batch: ApplyBatch) -> StoreResult<Applied>;
    /// Change-log rows with `seq > after`, oldest first.
    async fn changes_since(
        &self,
        pool_id: &PoolId,
        after: i64,
        limit: u64,
    ) -> StoreResult<Vec<ChangeRecord>>;
    async fn watermarks(
        &self,
        connection_id: &ConnectionId,
        object_keys: &[String],
    ) -> StoreResult<HashMap<String, Watermark>>;

    // the change feed (docs/change-feed.md): `apply` writes the events of its changes
    /// `None` when the pool does not exist.
    async fn feed_head(&self, pool_id: &PoolId) -> StoreResult<Option<FeedHead>>;
    /// Events with `after < seq <= after + window` (and not past the head), of the `types`
    /// (all when empty), oldest first, at most `limit`. The window bounds what a filtered
    /// read scans.
    async fn feed_read(
        &self,
        pool_id: &PoolId,
        after: i64,
        limit: u64,
        types: &[FeedType],
        window: u64,
    ) -> StoreResult<FeedRead>;
    /// Appends events that report no object change (`directory.sync_completed`), numbered
    /// after every committed one.
    async fn feed_append(
        &self,
        pool_id: &PoolId,
        source: &ChangeSource,
        drafts: &[FeedDraft],
        now: Millis,
    ) -> StoreResult<Vec<FeedEvent>>;
    /// The number of the first event at or after `since`, if any.
    async fn feed_seq_since(&self, pool_id: &PoolId, since: Millis) -> StoreResult<Option<i64>>;
    /// Removes up to `max` of the oldest events older than `before` and moves
    /// `pruned_through` past them; returns how many it removed.
    async fn feed_prune(&self, pool_id: &PoolId, before: Millis, max: u64) -> StoreResult<u64>;
    /// `None` when the pool does not exist.
    async fn feed_settings(&self, pool_id: &PoolId) -> StoreResult<Option<FeedSettings>>;
    /// [`StoreError::NotFound`] when the pool does not exist.
    async fn set_feed_settings(&self, pool_id: &PoolId, settings: &FeedSettings)
    -> StoreResult<()>;

    // service credentials (docs/service-credentials.md)
    /// [`StoreError::Conflict`] when a live credential of the pool has the name.
    async fn create_credential(&self, credential: &StoredCredential) -> StoreResult<()>;
    async fn get_credential(&self, id: &str) -> StoreResult<Option<StoredCredential>>;
    /// The pool's credentials, revoked ones too, oldest first.
    async fn list_credentials(&self, pool_id: &PoolId) -> StoreResult<Vec<ServiceCredential>>;
    /// Revokes a live credential; `false` when it was not live (or does not exist).
    async fn revoke_credential(&self, id: &str, now: Millis) -> StoreResult<bool>;
    async fn touch_credential(&self, id: &str, now: Millis) -> StoreResult<()>;

    // the LDAP view (docs/ldap.md)
    /// `None` when the pool never saved any (it has the defaults) or does not exist.
    async fn ldap_settings(&self, pool_id: &PoolId) -> StoreResult<Option<LdapSettings>>;
    /// Every pool's saved settings (a row per pool that saved any; pools are few).
    async fn list_ldap_settings(&self) -> StoreResult<Vec<(PoolId, LdapSettings)>>;
    /// [`StoreError::NotFound`] when the pool does not exist.
    async fn set_ldap_settings(&self, pool_id: &PoolId, settings: &LdapSettings)
    -> StoreResult<()>;
    /// The logins of users as `source` makes them, for those of `ids` that hold one: each
    /// folded candidate (Feishu `user_id`, or the mail's local part) belongs to the live user
    /// created first that has it (then the smaller id); the others, and users without a
    /// candidate, are named by their orgsync id and are absent here. A statement per chunk,
    /// through the primary key and the candidate's index (docs/ldap.md, "Logins").
    async fn user_logins(
        &self,
        pool_id: &PoolId,
        source: LoginSource,
        ids: &[UserId],
    ) -> StoreResult<HashMap<UserId, String>>;
    /// The shown (active and live) members of each department of `ids`, in id order: those
    /// of its subtree, or only its direct members with [`MemberScope::Direct`]. A statement
    /// per chunk of departments, through `subtree_members`; what an LDAP department entry
    /// lists in `member`.
    async fn shown_department_members(
        &self,
        pool_id: &PoolId,
        ids: &[DepartmentId],
        scope: MemberScope,
    ) -> StoreResult<HashMap<DepartmentId, Vec<UserId>>>;
    /// The users among `ids` that are shown (active and live), each with the login it holds
    /// under `source` ([`DirectoryStore::user_logins`]; `None`: it holds none). One round
    /// trip per chunk of ids: what a page of LDAP entries needs to name people and managers.
    async fn shown_user_logins(
        &self,
        pool_id: &PoolId,
        source: LoginSource,
        ids: &[UserId],
    ) -> StoreResult<HashMap<UserId, Option<String>>>;
    /// The live (not deleted) users that any of `keys` names, whole, in id order after
    /// `after`, at most `limit`: for a login, those whose candidate under `source` it is
    /// (folded) and the user whose orgsync id it is; for an address, those with it as either
    /// mail (case-insensitive). The candidates of `(uid=…)` and `(mail=…)`, to be confirmed
    /// by their entries; with them, the logins of the shown among them and their managers.
    /// One statement, each key through its index (docs/ldap.md, "Searches").
    async fn users_by_keys(
        &self,
        pool_id: &PoolId,
        source: LoginSource,
        keys: &[PersonKey],
        after: Option<&UserId>,
        limit: u64,
    ) -> StoreResult<NamedUsers>;
    /// The POSIX numbers of some objects of one kind (`uidNumber`/`gidNumber` less the pool's
    /// base), by id; every object gets one when it is created, never reused.
    async fn posix_ids(
        &self,
        pool_id: &PoolId,
        kind: ObjectKind,
        ids: &[String],
    ) -> StoreResult<HashMap<String, i64>>;
    /// When a group last added or removed each of `ids` (those it ever did): with the
    /// user's own `updated_at`, when its LDAP entry last changed. A statement per chunk.
    async fn membership_times(
        &self,
        pool_id: &PoolId,
        ids: &[UserId],
    ) -> StoreResult<HashMap<UserId, Millis>>;
    /// [`StoreError::NotFound`] when the pool does not exist.
    async fn create_app_password(&self, password: &StoredAppPassword) -> StoreResult<()>;
    async fn get_app_password(&self, id: &str) -> StoreResult<Option<StoredAppPassword>>;
    /// A user's app passwords (revoked ones too), oldest first.
    async fn list_app_passwords(
        &self,
        pool_id: &PoolId,
        user_id: &UserId,
    ) -> StoreResult<Vec<StoredAppPassword>>;
    /// Revokes a live app password; `false` when it was not live (or does not exist).
    async fn revoke_app_password(&self, id: &str, now: Millis) -> StoreResult<bool>;
    async fn touch_app_password(&self, id: &str, now: Millis) -> StoreResult<()>;

    // webhook endpoints (docs/webhooks.md)
    /// [`StoreError::NotFound`] when the pool does not exist.
    async fn create_webhook(&self, endpoint: &WebhookEndpoint) -> StoreResult<()>;
    async fn get_webhook(&self, id: &str) -> StoreResult<Option<WebhookEndpoint>>;
    /// A pool's endpoints (every pool's for `None`), oldest first.
    async fn list_webhooks(&self, pool_id: Option<&PoolId>) -> StoreResult<Vec<WebhookEndpoint>>;
    /// Replaces every field but `id`, `pool_id` and `created_at`; [`StoreError::NotFound`]
    /// when it does not exist.
    async fn update_webhook(&self, endpoint: &WebhookEndpoint) -> StoreResult<()>;
    /// Removes it with its attempts; `false` when it did not exist.
    async fn delete_webhook(&self, id: &str) -> StoreResult<bool>;
    /// Records an attempt (if any) and, in the same transaction, the endpoint's progress
    /// (`progress` as the deliverer left it) — unless the endpoint changed since its
    /// `updated_at` was `read_at` (an admin disabled or replayed it meanwhile): then only the
    /// attempt is kept, and `false` returned.
    async fn record_webhook_progress(
        &self,
        attempt: Option<&WebhookAttempt>,
        progress: &WebhookEndpoint,
        read_at: Millis,
    ) -> StoreResult<bool>;
    /// An endpoint's attempts, newest first, with an id below `before`.
    async fn list_webhook_attempts(
        &self,
        endpoint_id: &str,
        before: Option<i64>,
        limit: u64,
    ) -> StoreResult<Vec<WebhookAttempt>>;
    /// Takes the endpoint's delivery lease (one deliverer per endpoint across instances) if it
    /// is free, expired or already `holder`'s.
    async fn lease_webhook(
        &self,
        id: &str,
        holder: &str,
        until: Millis,
        now: Millis,
    ) -> StoreResult<bool>;
    async fn release_webhook(&self, id: &str, holder: &str) -> StoreResult<()>;
    /// Removes attempts older than `before`; returns how many.
    async fn prune_webhook_attempts(&self, before: Millis) -> StoreResult<u64>;

    // inbox
    /// Commits events in one transaction, deduplicated by (connection, event id).
    async fn inbox_insert(&self, events: &[NewInboxEvent]) -> StoreResult<Vec<InsertOutcome>>;
    /// Up to `limit` pending events of a connection that are due (`next_attempt_at <= now`),
    /// oldest `created_at` first (events without one last). A read: it is the holder of the
    /// connection's event lease that applies them, and an apply finishes only events still
    /// pending, so an event is never applied twice (docs/concurrency.md). Events still claimed
    /// by a worker of an earlier version (`claimed_until` in the future) are left to it.
    /// `after`: only events that come after this one in that order (the next batch while the
    /// one before it is still being applied).
    async fn inbox_due(
        &self,
        connection_id: &ConnectionId,
        limit: u64,
        now: Millis,
        after: Option<DueCursor>,
    ) -> StoreResult<Vec<InboxEvent>>;
    /// Finishes or reschedules an event outside an [`ApplyBatch`] (ignored, retry, parked).
    async fn inbox_finish(&self, id: i64, outcome: InboxOutcome, now: Millis) -> StoreResult<()>;
    async fn inbox_get(&self, id: i64) -> StoreResult<Option<InboxEvent>>;
    /// Newest first.
    async fn inbox_list(
        &self,
        filter: &InboxFilter,
        page: PageRequest,
    ) -> StoreResult<Vec<InboxEvent>>;
    /// How many events [`DirectoryStore::inbox_list`] would list with `filter` (all pages).
    async fn inbox_count(&self, filter: &InboxFilter) -> StoreResult<u64>;
    /// Connections with pending events due at `now`.
    async fn inbox_due_connections(&self, now: Millis) -> StoreResult<Vec<ConnectionId>>;
    /// Pending events of a connection (due or not).
    async fn inbox_pending_count(&self, connection_id: &ConnectionId) -> StoreResult<u64>;

    // jobs
    async fn create_job(&self, job: &SyncJob) -> StoreResult<()>;
    /// Replaces state, verdict, progress, counts, error and finish time.
    async fn update_job(&self, job: &SyncJob) -> StoreResult<()>;
    async fn get_job(&self, id: &JobId) -> StoreResult<Option<SyncJob>>;
    /// Newest first.
    async fn list_jobs(
        &self,
        connection_id: Option<&ConnectionId>,
        page: PageRequest,
    ) -> StoreResult<Vec<SyncJob>>;
    /// Ends the running jobs `which` names as failed with `error` at `now` (finished, verdict
    /// failed, `finished_at = now`) in one statement, and returns them as they now are. Jobs
    /// that finished meanwhile are left alone. Reads only running jobs, through an index.
    async fn interrupt_jobs(
        &self,
        which: &RunningJobs,
        error: &str,
        now: Millis,
    ) -> StoreResult<Vec<SyncJob>>;
    /// Appends in order; entries with `seq == 0` get the next numbers of the job's log.
    async fn append_action_log(&self, entries: &[ActionLogEntry]) -> StoreResult<()>;
    async fn action_log(
        &self,
        job_id: &JobId,
        filter: &ActionLogFilter,
        page: PageRequest,
    ) -> StoreResult<Vec<ActionLogEntry>>;

    // the per-connection event lease (one event worker per connection, across instances, so
    // a connection's events keep their order; independent of the job lease, so events keep
    // being applied while a job runs)
    /// Takes the event lease if it is free, expired, or already held by `holder`.
    async fn try_acquire_event_lease(
        &self,
        connection_id: &ConnectionId,
        holder: &str,
        ttl: Duration,
        now: Millis,
    ) -> StoreResult<bool>;
    /// Releases it if `holder` holds it.
    async fn release_event_lease(
        &self,
        connection_id: &ConnectionId,
        holder: &str,
    ) -> StoreResult<()>;

    // the per-connection job lease (one job per connection, across instances)
    /// Takes the lease if it is free, expired, or already held by `holder`.
    async fn try_acquire_lease(
        &self,
        connection_id: &ConnectionId,
        holder: &str,
        ttl: Duration,
        now: Millis,
    ) -> StoreResult<bool>;
    /// Releases it if `holder` holds it.
    async fn release_lease(&self, connection_id: &ConnectionId, holder: &str) -> StoreResult<()>;
    /// Releases every lease, job or event, whose holder starts with `prefix` (live or not)
    /// and returns how many: a restarted instance frees what its stopped process held.
    async fn release_leases_by_prefix(&self, prefix: &str) -> StoreResult<u64>;

    // parked deletions
    /// Parks deletions, at most one pending entry per (connection, object kind, object id): an
    /// item whose object already has a pending entry of the same connection refreshes it (job,
    /// external id, name, reason, `last_parked_at`) instead of adding a row. Entries in other
    /// states are history and never refreshed. Returns the entries' ids in the items' order.
    async fn park_deletions(&self, items: &[ParkedDeletion]) -> StoreResult<Vec<i64>>;
    /// Newest first.
    async fn list_parked(
        &self,
        filter: &ParkedFilter,
        page: PageRequest,
    ) -> StoreResult<Vec<ParkedDeletion>>;
    async fn count_parked(&self, filter: &ParkedFilter) -> StoreResult<u64>;
    /// At most `limit` entries with an id above `after`, oldest first: a walk in bounded
    /// batches (bulk decisions, a job settling its connection's entries).
    async fn parked_after(
        &self,
        filter: &ParkedFilter,
        after: i64,
        limit: u64,
    ) -> StoreResult<Vec<ParkedDeletion>>;
    async fn get_parked(&self, id: i64) -> StoreResult<Option<ParkedDeletion>>;
    /// Moves the pending entries among `ids` to `state` (approved, rejected or withdrawn) with
    /// `resolution` and `resolved_at = now`; returns the ids it moved (the others were not
    /// pending, or do not exist).
    async fn resolve_parked(
        &self,
        ids: &[i64],
        state: ParkedState,
        resolution: &str,
        now: Millis,
    ) -> StoreResult<Vec<i64>>;
}
