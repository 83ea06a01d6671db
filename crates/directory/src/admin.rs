//! The admin operations: what the REST API, the web console and the CLI do to the directory.
//! One place for validation, secret sealing and masking, so the HTTP handlers stay thin and
//! the API and the console cannot disagree.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

mod credentials;
mod feed;
mod ldap;
mod webhooks;

pub use credentials::{CreatedCredential, EXPIRY_MAX_DAYS, NewCredential, Refused};
pub use feed::{
    FEED_PAGE_MAX, FEED_WAIT_MAX, FeedPage, FeedQuery, RETENTION_MAX_DAYS, feed_cursor,
};
pub use ldap::{APP_PASSWORD_MAX_DAYS, CreatedAppPassword, NewAppPassword};
pub use webhooks::{
    NewWebhook, Replay, Rotate, TestResult, WebhookPatch, WebhookView, WebhookWithSecret,
};

use crate::engine::{Engine, EngineError};
use crate::ids::{ConnectionId, DepartmentId, GroupId, JobId, Millis, PoolId, UserId, now_ms};
use crate::ingest::Ingestor;
use crate::model::{
    ActionLogEntry, Connection, ConnectionSettings, Department, ExternalRef, Group, GroupMember,
    GroupSummary, JobKind, JobState, JobTrigger, ObjectKind, Pacing, ParkedDeletion, ParkedState,
    Provider, SyncJob, User, UserPool,
};
use crate::plan::steps::{ByObjectId, Dependents, Doomed, Steps};
use crate::store::{
    ActionLogFilter, ApplyBatch, ChangeRecord, ChangeSource, DepartmentNode, DirectoryStore,
    ExternalField, GroupEntry, InboxEvent, InboxFilter, KeyPage, Keyed, PageRequest, ParkedFilter,
    StoreError, UserQuery, Write,
};

/// Largest page any list returns.
pub const MAX_PAGE: u64 = 500;

/// Why an admin operation failed. Each variant maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Bad input: the message says which field and what is allowed (400).
    #[error("{0}")]
    Invalid(String),
    /// The thing does not exist (404).
    #[error("{0} not found")]
    NotFound(String),
    /// The request conflicts with the current state (409), e.g. a duplicate identifier or a
    /// job already running.
    #[error("{0}")]
    Conflict(String),
    /// A feed cursor older than the pool's retention: events after it are gone (410).
    #[error("{0}")]
    CursorExpired(String),
    /// Authenticated, but not allowed: another pool, or a scope the credential lacks (403).
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => Self::Conflict(m),
            StoreError::NotFound(m) => Self::NotFound(m),
            StoreError::VersionConflict { .. } => Self::Conflict(e.to_string()),
            StoreError::BadCursor(m) => Self::Invalid(m),
            other => Self::Store(other),
        }
    }
}

pub type AdminResult<T> = Result<T, AdminError>;

// ---- connections -------------------------------------------------------------------------

/// What an admin enters to create a connection. Secrets arrive in plaintext and are sealed
/// at once; they are never returned, and `Debug` shows them as `***`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewConnection {
    /// Unique in the pool; part of the callback URL: 1–64 of `a-z 0-9 - _`.
    pub identifier: String,
    #[serde(default)]
    pub display_name: Option<String>,
    /// `feishu` (default) or `lark`.
    #[serde(default)]
    pub provider: Option<Provider>,
    /// Overrides the provider's Open API base URL (e.g. an emulator).
    #[serde(default)]
    pub base_url: Option<String>,
    pub app_id: String,
    pub app_secret: String,
    #[serde(default)]
    pub encrypt_key: Option<String>,
    #[serde(default)]
    pub verification_token: Option<String>,
    #[serde(default)]
    pub settings: Option<ConnectionSettings>,
}

/// A partial update. Absent fields stay; for the optional secrets and `base_url`, `null` or
/// an empty string clears them. `Debug` shows secrets as `***`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionPatch {
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub provider: Option<Provider>,
    #[serde(default, with = "double_option")]
    pub base_url: Option<Option<String>>,
    #[serde(default)]
    pub app_id: Option<String>,
    #[serde(default)]
    pub app_secret: Option<String>,
    #[serde(default, with = "double_option")]
    pub encrypt_key: Option<Option<String>>,
    #[serde(default, with = "double_option")]
    pub verification_token: Option<Option<String>>,
    #[serde(default)]
    pub settings: Option<ConnectionSettings>,
}

/// How `Debug` shows a secret: whether it is there, never what it is.
fn masked(secret: Option<&String>) -> Option<&'static str> {
    secret.map(|_| "***")
}

impl std::fmt::Debug for NewConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewConnection")
            .field("identifier", &self.identifier)
            .field("display_name", &self.display_name)
            .field("provider", &self.provider)
            .field("base_url", &self.base_url)
            .field("app_id", &self.app_id)
            .field("app_secret", &masked(Some(&self.app_secret)))
            .field("encrypt_key", &masked(self.encrypt_key.as_ref()))
            .field(
                "verification_token",
                &masked(self.verification_token.as_ref()),
            )
            .field("settings", &self.settings)
            .finish()
    }
}

impl std::fmt::Debug for ConnectionPatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let clearable = |s: &Option<Option<String>>| s.as_ref().map(|s| masked(s.as_ref()));
        f.debug_struct("ConnectionPatch")
            .field("display_name", &self.display_name)
            .field("provider", &self.provider)
            .field("base_url", &self.base_url)
            .field("app_id", &self.app_id)
            .field("app_secret", &masked(self.app_secret.as_ref()))
            .field("encrypt_key", &clearable(&self.encrypt_key))
            .field("verification_token", &clearable(&self.verification_token))
            .field("settings", &self.settings)
            .finish()
    }
}

mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Ok(Some(Option::<String>::deserialize(d)?))
    }
}

/// Whether a secret is set. The value itself never leaves the server.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SecretState {
    pub set: bool,
}

/// A connection as every read shows it: secrets masked, the callback URL spelled out.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnectionView {
    pub id: ConnectionId,
    pub pool_id: PoolId,
    pub identifier: String,
    pub display_name: String,
    pub provider: Provider,
    pub base_url: Option<String>,
    pub app_id: String,
    pub app_secret: SecretState,
    pub encrypt_key: SecretState,
    pub verification_token: SecretState,
    /// The request URL to enter in the Feishu developer console (Events & Callbacks).
    pub callback_url: String,
    pub settings: ConnectionSettings,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// The credential check run as the connection was saved: on creation, and on an update
    /// that changed the platform, the base URL, the App ID or the App Secret. Absent on reads.
    /// The connection is saved whatever it says (Feishu may be unreachable for a while).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<CredentialCheck>,
}

/// How long saving a connection waits for its credential check: an unreachable Feishu must
/// not hold up the save.
pub const SAVE_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// One step of a credential test.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckStep {
    /// `credentials` (app access / tenant token) or `contact_scope`.
    pub step: String,
    pub ok: bool,
    /// What was found, or what failed.
    pub message: String,
    /// What to do about a failure.
    pub fix: Option<String>,
    /// The Feishu error code, if any.
    pub code: Option<i64>,
}

/// The result of testing a connection's credentials against Feishu.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredentialCheck {
    pub ok: bool,
    pub steps: Vec<CheckStep>,
}

// ---- directory reads -----------------------------------------------------------------------

/// What deleting a pool would remove, in brief.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolContents {
    pub connections: u64,
    /// Tombstones included.
    pub users: u64,
}

/// A page of results and the total count.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub offset: u64,
    pub limit: u64,
    /// All matching items (when known).
    pub total: Option<u64>,
    /// For lists walked by key (a job's log, parked deletions, inbox events): pass it back as
    /// `after` for the page after this one, which then costs the same at any depth (an
    /// `offset` re-reads every item it skips). Absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// A page of a directory list, walked by cursor (docs/read-model.md): pass `next` back as
/// `after` for the page after this one; `next` is absent on the last page. Every page costs
/// the same wherever it is in the list, and a walk returns every item that exists throughout
/// it exactly once.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CursorPage<T> {
    pub items: Vec<T>,
    pub limit: u64,
    /// The cursor of the next page (absent on the last one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// All matching items: only when asked for (`total=true`), as counting reads every match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// The change feed's cursor as of just before this page was read (the REST API sets it):
    /// list everything, then follow `GET …/events?after=<as_of_cursor of the first page>`;
    /// changes the pages already show come again, with versions no newer than the pages'
    /// (docs/change-feed.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_of_cursor: Option<String>,
}

/// Where a cursor page starts and how long it is, as the API takes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor {
    /// The `next` of the page before (opaque).
    pub after: Option<String>,
    pub limit: Option<u64>,
}

impl Cursor {
    /// The store's page: the cursor decoded, the limit clamped to `1..=MAX_PAGE` (default 50).
    fn key_page(&self) -> AdminResult<KeyPage> {
        Ok(KeyPage {
            after: decode_after(self.after.as_deref(), Some)?,
            limit: self.limit.unwrap_or(50).clamp(1, MAX_PAGE),
        })
    }
}

/// An `after` the API handed out as a page's `next` (base64url), read by `parse`; `None` for
/// the first page.
fn decode_after<K>(
    after: Option<&str>,
    parse: impl Fn(String) -> Option<K>,
) -> AdminResult<Option<K>> {
    let Some(raw) = after.filter(|a| !a.is_empty()) else {
        return Ok(None);
    };
    URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(parse)
        .map(Some)
        .ok_or_else(|| {
            AdminError::Invalid(
                "after is not a cursor this API handed out: pass the `next` of the page \
                 before, or leave it out for the first page"
                    .into(),
            )
        })
}

/// The store's page as the API's.
fn cursor_page<T>(page: Keyed<T>, limit: u64, total: Option<u64>) -> CursorPage<T> {
    CursorPage {
        items: page.items,
        limit,
        next: page.next.map(|k| URL_SAFE_NO_PAD.encode(k)),
        total,
        as_of_cursor: None,
    }
}

/// A department with its counts, its place in the tree and its Feishu ids. Its children are
/// one tree level: `GET …/departments?parent=<id>`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DepartmentView {
    pub department: Department,
    /// Live users with a membership in the department itself.
    pub member_count: u64,
    /// Distinct live users in the department and below it.
    pub total_member_count: u64,
    /// Live departments directly below it.
    pub child_count: u64,
    /// Root first, the department itself excluded.
    pub path: Vec<Department>,
    /// Its Feishu ids, one entry per connection that maps it: `external_id` is the
    /// `open_department_id` (`od-…`), `custom_id` the tenant's `department_id`.
    pub external_ids: Vec<ExternalRef>,
}

/// Everything the console shows about one user.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserDetail {
    pub user: User,
    pub departments: Vec<Department>,
    /// The live groups that list the user directly, without their member lists.
    pub groups: Vec<GroupSummary>,
    pub external_ids: Vec<ExternalRef>,
    /// Change-log rows of this user, newest first.
    pub history: Vec<ChangeRecord>,
    pub manager: Option<User>,
}

/// A group with its members resolved.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupDetail {
    pub group: Group,
    pub users: Vec<User>,
    pub departments: Vec<Department>,
    /// Members the directory does not hold (out of scope, deleted).
    pub unresolved: Vec<GroupMember>,
    /// Its Feishu ids, one entry per connection that maps it: `external_id` is the group id
    /// (`g…`), `custom_id` the custom group id.
    pub external_ids: Vec<ExternalRef>,
}

/// One member of a group (`type` and `id` as in a group's `members`), with the user or
/// department it names when the directory holds it live; both absent otherwise (out of the
/// app's contact scope, or deleted).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupMemberView {
    #[serde(flatten)]
    pub member: GroupMember,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<User>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub department: Option<Department>,
}

/// Which Feishu id a lookup uses.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UserIdType {
    OpenId,
    UnionId,
    UserId,
}

impl UserIdType {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open_id" => Some(Self::OpenId),
            "union_id" => Some(Self::UnionId),
            "user_id" => Some(Self::UserId),
            _ => None,
        }
    }
}

/// Which Feishu id a department lookup uses.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DepartmentIdType {
    /// `od-…`, Feishu's immutable id.
    OpenDepartmentId,
    /// The tenant's own department id.
    DepartmentId,
}

impl DepartmentIdType {
    pub const ALL: [&'static str; 2] = ["open_department_id", "department_id"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open_department_id" => Some(Self::OpenDepartmentId),
            "department_id" => Some(Self::DepartmentId),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenDepartmentId => "open_department_id",
            Self::DepartmentId => "department_id",
        }
    }
}

/// Which Feishu id a group lookup uses.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupIdType {
    /// The group's immutable id: `id` in Feishu's group objects, `:group_id` in its group API
    /// paths, `user_group_id` in its events.
    GroupId,
    /// The custom group id a tenant may give (`group_id` in Feishu's group objects).
    CustomGroupId,
}

impl GroupIdType {
    pub const ALL: [&'static str; 2] = ["group_id", "custom_group_id"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "group_id" => Some(Self::GroupId),
            "custom_group_id" => Some(Self::CustomGroupId),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::GroupId => "group_id",
            Self::CustomGroupId => "custom_group_id",
        }
    }
}

/// Clamps a requested page to `1..=MAX_PAGE` (default 50).
pub fn page(offset: Option<u64>, limit: Option<u64>) -> PageRequest {
    PageRequest {
        offset: offset.unwrap_or(0),
        limit: limit.unwrap_or(50).clamp(1, MAX_PAGE),
        after: None,
    }
}

/// [`page`] resuming a walk by key: `after` is the `next` of the page before (opaque to the
/// caller; the key of its last item).
pub fn keyed_page(
    after: Option<&str>,
    offset: Option<u64>,
    limit: Option<u64>,
) -> AdminResult<PageRequest> {
    let after = decode_after(after, |text| text.strip_prefix("k:")?.parse::<i64>().ok())?;
    Ok(PageRequest {
        after,
        ..page(offset, limit)
    })
}

/// Reads a page keyed by a number one item longer than asked, to know whether another
/// follows: the items, and the `next` cursor when one does.
async fn keyed<T, F>(
    page: PageRequest,
    key: impl Fn(&T) -> i64,
    read: impl FnOnce(PageRequest) -> F,
) -> AdminResult<(Vec<T>, Option<String>)>
where
    F: std::future::Future<Output = Result<Vec<T>, StoreError>>,
{
    let mut items = read(PageRequest {
        limit: page.limit + 1,
        ..page
    })
    .await?;
    let more = items.len() as u64 > page.limit;
    items.truncate(usize::try_from(page.limit).unwrap_or(usize::MAX));
    let next = if more {
        items
            .last()
            .map(|last| URL_SAFE_NO_PAD.encode(format!("k:{}", key(last))))
    } else {
        None
    };
    Ok((items, next))
}

// ---- parked deletions ----------------------------------------------------------------------

/// Entries a bulk decision reads and decides at a time.
pub const BULK_BATCH: u64 = 200;

const APPROVED_ONE: &str = "approved by an admin";
const APPROVED_BULK: &str = "approved by an admin (bulk)";
const REJECTED_ONE: &str = "rejected by an admin";
const REJECTED_BULK: &str = "rejected by an admin (bulk)";

fn resolved_meanwhile(id: i64) -> AdminError {
    AdminError::Conflict(format!(
        "parked deletion {id} was resolved by someone else meanwhile"
    ))
}

/// Which pending parked deletions of a pool a bulk decision covers. Name at least one of
/// `job_id`, `connection_id` and `kind`, or set `all`, so that an empty request cannot decide
/// every entry by accident.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkParked {
    /// The entries this job parked (or refreshed last).
    #[serde(default)]
    pub job_id: Option<JobId>,
    /// The entries of this connection.
    #[serde(default)]
    pub connection_id: Option<ConnectionId>,
    /// `user`, `department` or `group`.
    #[serde(default)]
    pub kind: Option<ObjectKind>,
    /// Every pending entry of the pool (narrowed by the other fields when given).
    #[serde(default)]
    pub all: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParkedDecision {
    Approve,
    Reject,
}

/// What a bulk decision did.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Default, Serialize)]
pub struct BulkOutcome {
    /// Pending entries the request matched when it started.
    pub matched: u64,
    pub approved: u64,
    pub rejected: u64,
    /// Ended without a deletion: the object had already been deleted by another path.
    pub withdrawn: u64,
    /// Left as they were (the reasons of the first [`MAX_SKIPS`] are in `skips`).
    pub skipped: u64,
    pub skips: Vec<SkippedParked>,
}

/// Skipped entries listed in a [`BulkOutcome`]; the rest are only counted.
pub const MAX_SKIPS: usize = 100;

/// An entry a bulk decision left alone, and why.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Serialize)]
pub struct SkippedParked {
    pub id: i64,
    pub kind: ObjectKind,
    pub object_id: String,
    pub name: Option<String>,
    pub reason: String,
    /// The error itself, for the single approval that reports it.
    #[serde(skip)]
    error: AdminError,
}

impl BulkOutcome {
    fn skip(&mut self, item: &ParkedDeletion, error: AdminError) {
        self.skipped += 1;
        if self.skips.len() < MAX_SKIPS {
            self.skips.push(SkippedParked {
                id: item.id,
                kind: item.kind,
                object_id: item.object_id.clone(),
                name: item.name.clone(),
                reason: error.to_string(),
                error,
            });
        }
    }

    fn add(&mut self, other: BulkOutcome) {
        self.approved += other.approved;
        self.rejected += other.rejected;
        self.withdrawn += other.withdrawn;
        self.skipped += other.skipped;
        let room = MAX_SKIPS.saturating_sub(self.skips.len());
        self.skips.extend(other.skips.into_iter().take(room));
    }
}

/// The admin facade over the engine and the store.
pub struct Admin {
    engine: Arc<Engine>,
    ingestor: Option<Arc<Ingestor>>,
    public_base_url: String,
    /// When this process last recorded each service credential's use.
    credential_uses: std::sync::Mutex<HashMap<String, Millis>>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("public_base_url", &self.public_base_url)
            .finish_non_exhaustive()
    }
}

fn validate_identifier(identifier: &str) -> AdminResult<()> {
    let ok = !identifier.is_empty()
        && identifier.len() <= 64
        && identifier
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(AdminError::Invalid(format!(
            "identifier {identifier:?} is not allowed: use 1 to 64 characters of a-z, 0-9, '-' and '_' (it becomes part of the callback URL)"
        )))
    }
}

fn required(field: &str, value: &str, hint: &str) -> AdminResult<String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(AdminError::Invalid(format!("{field} is required: {hint}")));
    }
    Ok(value.to_owned())
}

fn validate_base_url(url: Option<&str>) -> AdminResult<Option<String>> {
    match url.map(str::trim).filter(|u| !u.is_empty()) {
        None => Ok(None),
        Some(u) => feishu::client::BaseUrl::parse(u)
            .map(|_| Some(u.trim_end_matches('/').to_owned()))
            .map_err(|e| AdminError::Invalid(format!("base_url {u:?}: {e}"))),
    }
}

fn validate_settings(settings: &ConnectionSettings) -> AdminResult<()> {
    let t = &settings.deletion_threshold;
    if !(0.0..=1.0).contains(&t.max_fraction) {
        return Err(AdminError::Invalid(format!(
            "settings.deletion_threshold.max_fraction is {}: give a share between 0 and 1, e.g. 0.05",
            t.max_fraction
        )));
    }
    let p = &settings.pacing;
    if !(1..=Pacing::MAX_PER_SECOND).contains(&p.per_second) {
        return Err(AdminError::Invalid(format!(
            "settings.pacing.per_second is {}: give requests per second per endpoint between 1 and {}; Feishu allows 50",
            p.per_second,
            Pacing::MAX_PER_SECOND
        )));
    }
    if !(1..=Pacing::MAX_PER_MINUTE).contains(&p.per_minute) {
        return Err(AdminError::Invalid(format!(
            "settings.pacing.per_minute is {}: give requests per minute per endpoint between 1 and {}; Feishu allows 1000",
            p.per_minute,
            Pacing::MAX_PER_MINUTE
        )));
    }
    Ok(())
}

fn validate_pool_name(name: &str) -> AdminResult<String> {
    let name = required("name", name, "give the user pool a name, e.g. \"Acme\"")?;
    if name.chars().count() > 200 {
        return Err(AdminError::Invalid(
            "name is longer than 200 characters: give at most 200".into(),
        ));
    }
    Ok(name)
}

/// `1 connection`, `1,945 users`.
pub fn counted(n: u64, noun: &str) -> String {
    format!("{} {noun}{}", thousands(n), if n == 1 { "" } else { "s" })
}

/// `1940` → `1,940`: the console, the API's messages and the CLI write counts this way.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

impl Admin {
    /// `public_base_url`: how Feishu reaches this server (for the callback URL), no trailing
    /// slash needed.
    pub fn new(
        engine: Arc<Engine>,
        ingestor: Option<Arc<Ingestor>>,
        public_base_url: String,
    ) -> Self {
        Self {
            engine,
            ingestor,
            public_base_url: public_base_url.trim_end_matches('/').to_owned(),
            credential_uses: std::sync::Mutex::new(HashMap::new()),
        }
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    fn store(&self) -> &Arc<dyn DirectoryStore> {
        self.engine.store()
    }

    pub fn public_base_url(&self) -> &str {
        &self.public_base_url
    }

    /// `{public}/connections/enterprise/{identifier}/{pool}/events`
    pub fn callback_url(&self, pool_id: &PoolId, identifier: &str) -> String {
        format!(
            "{}/connections/enterprise/{identifier}/{pool_id}/events",
            self.public_base_url
        )
    }

    fn changed(&self, connection_id: &ConnectionId) {
        self.engine.forget_client(connection_id);
        if let Some(ingestor) = &self.ingestor {
            ingestor.invalidate();
        }
    }

    // ---- pools ----

    pub async fn create_pool(&self, name: &str) -> AdminResult<UserPool> {
        let name = validate_pool_name(name)?;
        let pool = UserPool {
            id: PoolId::generate(),
            name,
            created_at: now_ms(),
        };
        self.store().create_pool(&pool).await?;
        Ok(pool)
    }

    pub async fn list_pools(&self) -> AdminResult<Vec<UserPool>> {
        Ok(self.store().list_pools().await?)
    }

    pub async fn pool(&self, id: &PoolId) -> AdminResult<UserPool> {
        self.store()
            .get_pool(id)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("user pool {id}")))
    }

    /// Renames a pool; the name is checked as on creation.
    pub async fn rename_pool(&self, id: &PoolId, name: &str) -> AdminResult<UserPool> {
        let name = validate_pool_name(name)?;
        self.store().rename_pool(id, &name).await?;
        self.pool(id).await
    }

    /// How many connections and users (tombstones included) a pool holds.
    pub async fn pool_contents(&self, id: &PoolId) -> AdminResult<PoolContents> {
        self.pool(id).await?;
        let store = self.store();
        let connections = store.list_connections(Some(id)).await?.len() as u64;
        let users = store
            .count_users(
                id,
                &UserQuery {
                    include_deleted: true,
                    ..UserQuery::default()
                },
            )
            .await?;
        Ok(PoolContents { connections, users })
    }

    /// Deletes a pool with everything it holds. A pool that holds connections or users is
    /// only deleted when `confirm` is its name or id; never while a sync job of one of its
    /// connections runs.
    pub async fn delete_pool(&self, id: &PoolId, confirm: Option<&str>) -> AdminResult<()> {
        let pool = self.pool(id).await?;
        let store = self.store();
        let connections = store.list_connections(Some(id)).await?;
        let users = self.pool_contents(id).await?.users;
        let confirmed = match confirm.map(str::trim).filter(|c| !c.is_empty()) {
            None => false,
            Some(c) if c == pool.name || c == id.as_str() => true,
            Some(c) => {
                return Err(AdminError::Invalid(format!(
                    "confirm {c:?} is neither the name ({:?}) nor the id ({id}) of this user pool: give one of them to delete it",
                    pool.name
                )));
            }
        };
        if !confirmed && (!connections.is_empty() || users > 0) {
            return Err(AdminError::Conflict(format!(
                "user pool {:?} holds {} and {}; deleting it removes them with its departments, groups, events, sync jobs and change log, and cannot be undone. To delete it, confirm with the pool's name or id (API: DELETE /api/v1/pools/{id}?confirm={id})",
                pool.name,
                counted(connections.len() as u64, "connection"),
                counted(users, "user"),
            )));
        }
        // Holding every connection's job and event leases keeps jobs and the event worker off
        // the pool while it goes; the job lease tells a running job (its lease is live) from
        // a crashed one.
        let holder = format!("{}/pool-deletion/{id}", self.engine.config().instance);
        let mut held: Vec<&ConnectionId> = Vec::new();
        for c in &connections {
            if let Err(e) = self.hold_lease(c, &holder).await {
                self.release_held(&held, &holder).await;
                return Err(e);
            }
            held.push(&c.id);
            if let Err(e) = self.hold_event_lease(c, &holder).await {
                self.release_held(&held, &holder).await;
                return Err(e);
            }
        }
        let deleted = store.delete_pool(id).await;
        if deleted.is_err() {
            self.release_held(&held, &holder).await;
        }
        for c in &connections {
            self.changed(&c.id);
        }
        deleted?;
        tracing::info!(pool = %id, name = %pool.name, connections = connections.len(), users, "user pool deleted");
        Ok(())
    }

    /// Releases the leases (job and event) an admin operation took.
    async fn release_held(&self, held: &[&ConnectionId], holder: &str) {
        for connection_id in held {
            let _ = self.store().release_lease(connection_id, holder).await;
            let _ = self
                .store()
                .release_event_lease(connection_id, holder)
                .await;
        }
    }

    /// Takes a connection's event lease for an admin operation, waiting out the event
    /// worker's short rounds.
    async fn hold_event_lease(&self, c: &Connection, holder: &str) -> AdminResult<()> {
        let config = self.engine.config();
        let deadline = std::time::Instant::now() + config.lease_wait;
        while !self
            .store()
            .try_acquire_event_lease(&c.id, holder, config.lease_ttl, now_ms())
            .await?
        {
            if std::time::Instant::now() >= deadline {
                return Err(AdminError::Conflict(format!(
                    "connection {:?} is busy (its events are being applied); try again in a minute",
                    c.identifier
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Takes a connection's job lease for an admin operation, waiting out a short hold by
    /// another admin operation; a running job answers a conflict that names it.
    async fn hold_lease(&self, c: &Connection, holder: &str) -> AdminResult<()> {
        let config = self.engine.config();
        let deadline = std::time::Instant::now() + config.lease_wait;
        loop {
            if self
                .store()
                .try_acquire_lease(&c.id, holder, config.lease_ttl, now_ms())
                .await?
            {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let newest = self
            .store()
            .list_jobs(
                Some(&c.id),
                PageRequest {
                    offset: 0,
                    limit: 1,
                    after: None,
                },
            )
            .await?;
        Err(AdminError::Conflict(match newest.first() {
            Some(job) if job.state == JobState::Running => format!(
                "connection {:?} has a running sync job ({}); wait for it to finish, then delete the user pool again",
                c.identifier, job.id
            ),
            _ => format!(
                "connection {:?} is busy (another operation holds it); try again in a minute",
                c.identifier
            ),
        }))
    }

    // ---- connections ----

    pub fn view(&self, c: &Connection) -> ConnectionView {
        ConnectionView {
            id: c.id.clone(),
            pool_id: c.pool_id.clone(),
            identifier: c.identifier.clone(),
            display_name: c.display_name.clone(),
            provider: c.provider,
            base_url: c.base_url.clone(),
            app_id: c.app_id.clone(),
            app_secret: SecretState { set: true },
            encrypt_key: SecretState {
                set: c.encrypt_key.is_some(),
            },
            verification_token: SecretState {
                set: c.verification_token.is_some(),
            },
            callback_url: self.callback_url(&c.pool_id, &c.identifier),
            settings: c.settings.clone(),
            created_at: c.created_at,
            updated_at: c.updated_at,
            check: None,
        }
    }

    pub async fn create_connection(
        &self,
        pool_id: &PoolId,
        input: NewConnection,
    ) -> AdminResult<ConnectionView> {
        self.pool(pool_id).await?;
        let identifier = input.identifier.trim().to_owned();
        validate_identifier(&identifier)?;
        let app_id = required(
            "app_id",
            &input.app_id,
            "copy the App ID (cli_…) from the Feishu developer console, Credentials & Basic Info",
        )?;
        let app_secret = required(
            "app_secret",
            &input.app_secret,
            "copy the App Secret from the Feishu developer console, Credentials & Basic Info",
        )?;
        let base_url = validate_base_url(input.base_url.as_deref())?;
        let settings = input.settings.unwrap_or_default();
        validate_settings(&settings)?;
        let key = self.engine.master_key();
        let now = now_ms();
        let connection = Connection {
            id: ConnectionId::generate(),
            pool_id: pool_id.clone(),
            display_name: non_empty(input.display_name).unwrap_or_else(|| identifier.clone()),
            identifier,
            provider: input.provider.unwrap_or(Provider::Feishu),
            base_url,
            app_id,
            app_secret: key.seal(&app_secret),
            encrypt_key: non_empty(input.encrypt_key).map(|k| key.seal(&k)),
            verification_token: non_empty(input.verification_token).map(|t| key.seal(&t)),
            settings,
            created_at: now,
            updated_at: now,
        };
        self.store().create_connection(&connection).await?;
        self.changed(&connection.id);
        let mut view = self.view(&connection);
        view.check = Some(self.check_on_save(&connection).await);
        Ok(view)
    }

    async fn connection_raw(&self, id: &ConnectionId) -> AdminResult<Connection> {
        self.store()
            .get_connection(id)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("connection {id}")))
    }

    pub async fn connection(&self, id: &ConnectionId) -> AdminResult<ConnectionView> {
        Ok(self.view(&self.connection_raw(id).await?))
    }

    pub async fn list_connections(
        &self,
        pool_id: Option<&PoolId>,
    ) -> AdminResult<Vec<ConnectionView>> {
        if let Some(pool) = pool_id {
            self.pool(pool).await?;
        }
        Ok(self
            .store()
            .list_connections(pool_id)
            .await?
            .iter()
            .map(|c| self.view(c))
            .collect())
    }

    pub async fn update_connection(
        &self,
        id: &ConnectionId,
        patch: ConnectionPatch,
    ) -> AdminResult<ConnectionView> {
        let mut c = self.connection_raw(id).await?;
        let before = c.clone();
        let key = self.engine.master_key();
        if let Some(name) = patch.display_name {
            c.display_name = required("display_name", &name, "give the connection a name")?;
        }
        if let Some(provider) = patch.provider {
            c.provider = provider;
        }
        if let Some(url) = patch.base_url {
            c.base_url = validate_base_url(url.as_deref())?;
        }
        if let Some(app_id) = patch.app_id {
            c.app_id = required("app_id", &app_id, "copy the App ID (cli_…)")?;
        }
        if let Some(secret) = patch.app_secret {
            c.app_secret = key.seal(&required(
                "app_secret",
                &secret,
                "copy the App Secret, or leave the field out to keep it",
            )?);
        }
        if let Some(k) = patch.encrypt_key {
            c.encrypt_key = non_empty(k).map(|k| key.seal(&k));
        }
        if let Some(t) = patch.verification_token {
            c.verification_token = non_empty(t).map(|t| key.seal(&t));
        }
        if let Some(settings) = patch.settings {
            validate_settings(&settings)?;
            c.settings = settings;
        }
        c.updated_at = now_ms();
        self.store().update_connection(&c).await?;
        self.changed(&c.id);
        // A new App Secret is sealed afresh, so it counts as changed even when it is the same.
        let reaches_feishu_anew = c.provider != before.provider
            || c.base_url != before.base_url
            || c.app_id != before.app_id
            || c.app_secret != before.app_secret;
        let mut view = self.view(&c);
        if reaches_feishu_anew {
            view.check = Some(self.check_on_save(&c).await);
        }
        Ok(view)
    }

    /// Removes the connection (its mappings, watermarks and pending events); the directory
    /// objects stay.
    pub async fn delete_connection(&self, id: &ConnectionId) -> AdminResult<()> {
        self.connection_raw(id).await?;
        self.store().delete_connection(id).await?;
        self.changed(id);
        Ok(())
    }

    /// Gets a tenant token with the stored credentials, then reads the app's contact scope.
    /// Each failure says what to fix in the Feishu developer console.
    pub async fn test_credentials(&self, id: &ConnectionId) -> AdminResult<CredentialCheck> {
        let c = self.connection_raw(id).await?;
        let client = self.engine.client(&c)?;
        Ok(check_credentials(&c, &client, None).await)
    }

    /// The credential check of a save: a client of its own without retries, and at most
    /// [`SAVE_CHECK_TIMEOUT`] in all.
    async fn check_on_save(&self, c: &Connection) -> CredentialCheck {
        let deadline = tokio::time::Instant::now() + SAVE_CHECK_TIMEOUT;
        // The request timeout is a little longer than the whole check's, so a slow Feishu
        // is reported by the deadline below with what to do.
        let client = match self
            .engine
            .probe_client(c, SAVE_CHECK_TIMEOUT + std::time::Duration::from_secs(1))
        {
            Ok(client) => client,
            Err(e) => {
                let fix = match &e {
                    EngineError::Feishu(f) => f.fix().map(str::to_owned),
                    _ => None,
                };
                return CredentialCheck {
                    ok: false,
                    steps: vec![CheckStep {
                        step: "credentials".into(),
                        ok: false,
                        message: e.to_string(),
                        fix,
                        code: None,
                    }],
                };
            }
        };
        check_credentials(c, &client, Some(deadline)).await
    }

    // ---- jobs ----

    /// Starts an import or reconciliation in the background.
    pub async fn start_job(
        &self,
        connection_id: &ConnectionId,
        kind: JobKind,
    ) -> AdminResult<SyncJob> {
        self.connection_raw(connection_id).await?;
        let id = match self
            .engine
            .start_job(connection_id, kind, JobTrigger::Admin)
            .await
        {
            Err(EngineError::Busy(c)) => {
                return Err(AdminError::Conflict(format!(
                    "a sync job is already running for connection {c}; wait for it to finish"
                )));
            }
            // Deleted between the check above and the job's first write.
            Err(EngineError::Store(StoreError::NotFound(_))) => {
                return Err(AdminError::NotFound(format!("connection {connection_id}")));
            }
            other => other?,
        };
        self.job(&id).await
    }

    pub async fn job(&self, id: &JobId) -> AdminResult<SyncJob> {
        self.store()
            .get_job(id)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("sync job {id}")))
    }

    pub async fn list_jobs(
        &self,
        connection_id: Option<&ConnectionId>,
        page: PageRequest,
    ) -> AdminResult<Page<SyncJob>> {
        let items = self.store().list_jobs(connection_id, page).await?;
        Ok(Page {
            items,
            offset: page.offset,
            limit: page.limit,
            total: None,
            next: None,
        })
    }

    pub async fn job_log(
        &self,
        id: &JobId,
        filter: &ActionLogFilter,
        page: PageRequest,
    ) -> AdminResult<Page<ActionLogEntry>> {
        let store = self.store();
        let (items, next) = keyed(
            page,
            |e: &ActionLogEntry| e.seq,
            |p| store.action_log(id, filter, p),
        )
        .await?;
        // Whether the job exists matters only for an empty page (404 rather than nothing).
        if items.is_empty() {
            self.job(id).await?;
        }
        Ok(Page {
            items,
            offset: page.offset,
            limit: page.limit,
            total: None,
            next,
        })
    }

    // ---- parked deletions ----

    /// A page of a pool's parked deletions, newest first, with the total that match.
    pub async fn list_parked(
        &self,
        filter: &ParkedFilter,
        page: PageRequest,
    ) -> AdminResult<Page<ParkedDeletion>> {
        let store = self.store();
        let (items, next) = keyed(
            page,
            |p: &ParkedDeletion| p.id,
            |p| store.list_parked(filter, p),
        )
        .await?;
        if items.is_empty() {
            self.pool(&filter.pool_id).await?;
        }
        let total = store.count_parked(filter).await?;
        Ok(Page {
            items,
            offset: page.offset,
            limit: page.limit,
            total: Some(total),
            next,
        })
    }

    pub async fn count_parked(&self, filter: &ParkedFilter) -> AdminResult<u64> {
        Ok(self.store().count_parked(filter).await?)
    }

    pub async fn parked(&self, id: i64) -> AdminResult<ParkedDeletion> {
        self.store()
            .get_parked(id)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("parked deletion {id}")))
    }

    /// Approves a parked deletion: the object is soft-deleted now (tombstoned, kept in the
    /// change log). Refused when the object changed after a job last parked the deletion — a
    /// later sync saw it, so the deletion is stale. When the object was already deleted by
    /// another path (an event, a job), nothing is deleted and the entry ends `withdrawn`.
    pub async fn approve_parked(&self, id: i64) -> AdminResult<ParkedDeletion> {
        let item = self.pending_parked(id).await?;
        let mut outcome = self.approve_batch(vec![item], APPROVED_ONE).await?;
        if let Some(skip) = outcome.skips.pop() {
            return Err(skip.error);
        }
        self.parked(id).await
    }

    /// Rejects a parked deletion: the object stays.
    pub async fn reject_parked(&self, id: i64) -> AdminResult<ParkedDeletion> {
        let item = self.pending_parked(id).await?;
        if self
            .store()
            .resolve_parked(&[item.id], ParkedState::Rejected, REJECTED_ONE, now_ms())
            .await?
            .is_empty()
        {
            return Err(resolved_meanwhile(item.id));
        }
        self.parked(item.id).await
    }

    /// Approves or rejects every pending entry of a pool that `request` matches, in batches of
    /// [`BULK_BATCH`]; each approval goes the way of a single one (an entry whose object changed
    /// since it was parked stays pending and is reported as skipped). Entries parked after the
    /// call started are left alone: the admin has not seen them.
    pub async fn decide_parked(
        &self,
        pool_id: &PoolId,
        request: &BulkParked,
        decision: ParkedDecision,
    ) -> AdminResult<BulkOutcome> {
        self.pool(pool_id).await?;
        let filter = self.bulk_filter(pool_id, request).await?;
        let mut outcome = BulkOutcome::default();
        let newest = self
            .store()
            .list_parked(
                &filter,
                PageRequest {
                    offset: 0,
                    limit: 1,
                    after: None,
                },
            )
            .await?;
        let Some(upto) = newest.first().map(|p| p.id) else {
            return Ok(outcome);
        };
        let mut after = 0;
        loop {
            let mut batch = self
                .store()
                .parked_after(&filter, after, BULK_BATCH)
                .await?;
            let full = batch.len() as u64 == BULK_BATCH;
            batch.retain(|p| p.id <= upto);
            let Some(last) = batch.last() else { break };
            after = last.id;
            let reached_end = !full || after >= upto;
            outcome.matched += batch.len() as u64;
            let part = match decision {
                ParkedDecision::Approve => self.approve_batch(batch, APPROVED_BULK).await?,
                ParkedDecision::Reject => self.reject_batch(batch).await?,
            };
            outcome.add(part);
            if reached_end {
                break;
            }
        }
        Ok(outcome)
    }

    /// The store filter of a bulk request: pending entries of the pool, narrowed by the job,
    /// connection and kind named (which must belong to the pool).
    async fn bulk_filter(
        &self,
        pool_id: &PoolId,
        request: &BulkParked,
    ) -> AdminResult<ParkedFilter> {
        if request.job_id.is_none()
            && request.connection_id.is_none()
            && request.kind.is_none()
            && !request.all
        {
            return Err(AdminError::Invalid(
                "name the parked deletions to decide: job_id, connection_id or kind, or {\"all\": true} for every pending one of the pool".into(),
            ));
        }
        for (field, value) in [
            ("job_id", request.job_id.as_ref().map(JobId::as_str)),
            (
                "connection_id",
                request.connection_id.as_ref().map(ConnectionId::as_str),
            ),
        ] {
            if let Some(value) = value.filter(|v| !crate::ids::is_id(v)) {
                return Err(AdminError::Invalid(format!(
                    "{field} {value:?} is not an orgsync id: ids are 24 lowercase hex digits"
                )));
            }
        }
        if let Some(job_id) = &request.job_id {
            let job = match self.job(job_id).await {
                Ok(job) => Some(job),
                Err(AdminError::NotFound(_)) => None,
                Err(e) => return Err(e),
            };
            if job.is_none_or(|j| j.pool_id != *pool_id) {
                return Err(AdminError::NotFound(format!(
                    "sync job {job_id} in user pool {pool_id}"
                )));
            }
        }
        if let Some(connection_id) = &request.connection_id {
            let connection = self.connection_raw(connection_id).await?;
            if connection.pool_id != *pool_id {
                return Err(AdminError::NotFound(format!(
                    "connection {connection_id} in user pool {pool_id}"
                )));
            }
        }
        Ok(ParkedFilter {
            pool_id: pool_id.clone(),
            state: Some(ParkedState::Pending),
            connection_id: request.connection_id.clone(),
            kind: request.kind,
            job_id: request.job_id.clone(),
        })
    }

    /// Approves pending entries: each entry's deletion (the tombstone, and its dependents
    /// detached: a department's members lose the membership, groups lose the member; built
    /// by the planner's step builder, docs/write-path.md) all in one transaction, or one per
    /// entry if that fails (each built afresh), so one conflict fails alone. Then the entries
    /// are resolved.
    async fn approve_batch(
        &self,
        items: Vec<ParkedDeletion>,
        resolution: &str,
    ) -> AdminResult<BulkOutcome> {
        let store = self.store();
        let now = now_ms();
        let mut outcome = BulkOutcome::default();
        let mut deletions: Vec<(ParkedDeletion, Vec<Write>)> = Vec::new();
        let mut already_deleted: Vec<ParkedDeletion> = Vec::new();
        // Entries of other connections for an object this batch already deletes: they share
        // its fate (one tombstone, not a second write that would conflict).
        let mut followers: Vec<ParkedDeletion> = Vec::new();
        // Objects the batch's earlier deletions write (a member of two approved departments):
        // the later ones build on them.
        let mut written = Written::default();
        let same_object =
            |a: &ParkedDeletion, b: &ParkedDeletion| a.kind == b.kind && a.object_id == b.object_id;
        for item in items {
            if deletions.iter().any(|(d, _)| same_object(d, &item)) {
                followers.push(item);
                continue;
            }
            match self.approval(&item, now, &written).await {
                Ok(Some(writes)) => {
                    written.absorb(&writes);
                    deletions.push((item, writes));
                }
                Ok(None) => already_deleted.push(item),
                Err(e @ AdminError::Conflict(_)) => outcome.skip(&item, e),
                Err(e) => return Err(e),
            }
        }
        let mut approved: Vec<ParkedDeletion> = Vec::new();
        if !deletions.is_empty() {
            // A bulk request covers one pool; a single approval one entry.
            let mut batch = ApplyBatch::new(deletions[0].0.pool_id.clone(), ChangeSource::Admin);
            batch.writes = deletions
                .iter()
                .flat_map(|(_, w)| w.iter().cloned())
                .collect();
            match self.engine.apply(batch).await {
                Ok(_) => approved.extend(deletions.into_iter().map(|(item, _)| item)),
                Err(e) if deletions.len() == 1 => {
                    let (item, _) = deletions.remove(0);
                    outcome.skip(&item, e.into());
                }
                Err(_) => {
                    for (item, _) in deletions {
                        let writes = match self.approval(&item, now, &Written::default()).await {
                            Ok(Some(writes)) => writes,
                            Ok(None) => {
                                already_deleted.push(item);
                                continue;
                            }
                            Err(e) => {
                                outcome.skip(&item, e);
                                continue;
                            }
                        };
                        let mut one = ApplyBatch::new(item.pool_id.clone(), ChangeSource::Admin);
                        one.writes = writes;
                        match self.engine.apply(one).await {
                            Ok(_) => approved.push(item),
                            Err(e) => outcome.skip(&item, e.into()),
                        }
                    }
                }
            }
        }
        for item in followers {
            match approved.iter().find(|a| same_object(a, &item)) {
                Some(_) => approved.push(item),
                None => {
                    let error = AdminError::Conflict(format!(
                        "parked deletion {}: the {} could not be deleted (see the other entry of the same object)",
                        item.id,
                        item.kind.as_str()
                    ));
                    outcome.skip(&item, error);
                }
            }
        }
        approved.sort_by_key(|p| p.id);
        let ids: Vec<i64> = approved.iter().map(|p| p.id).collect();
        let resolved = store
            .resolve_parked(&ids, ParkedState::Approved, resolution, now)
            .await?;
        outcome.approved += resolved.len() as u64;
        for item in approved
            .iter()
            .filter(|p| resolved.binary_search(&p.id).is_err())
        {
            outcome.skip(item, resolved_meanwhile(item.id));
        }
        for kind in [ObjectKind::User, ObjectKind::Department, ObjectKind::Group] {
            let ids: Vec<i64> = already_deleted
                .iter()
                .filter(|p| p.kind == kind)
                .map(|p| p.id)
                .collect();
            if ids.is_empty() {
                continue;
            }
            let resolution = format!(
                "the {} was already deleted by another path (an event or a job): nothing to approve",
                kind.as_str()
            );
            let resolved = store
                .resolve_parked(&ids, ParkedState::Withdrawn, &resolution, now)
                .await?;
            outcome.withdrawn += resolved.len() as u64;
            for item in already_deleted
                .iter()
                .filter(|p| p.kind == kind && resolved.binary_search(&p.id).is_err())
            {
                outcome.skip(item, resolved_meanwhile(item.id));
            }
        }
        Ok(outcome)
    }

    async fn reject_batch(&self, items: Vec<ParkedDeletion>) -> AdminResult<BulkOutcome> {
        let mut outcome = BulkOutcome::default();
        let ids: Vec<i64> = items.iter().map(|p| p.id).collect();
        let resolved = self
            .store()
            .resolve_parked(&ids, ParkedState::Rejected, REJECTED_BULK, now_ms())
            .await?;
        outcome.rejected = resolved.len() as u64;
        for item in items
            .iter()
            .filter(|p| resolved.binary_search(&p.id).is_err())
        {
            outcome.skip(item, resolved_meanwhile(item.id));
        }
        Ok(outcome)
    }

    /// The writes that approving `item` makes: the object's deletion with its dependents
    /// detached, from the objects as stored now (or as `written` by earlier approvals of the
    /// same batch); `None` when the object is already deleted (or gone).
    /// [`AdminError::Conflict`] when it changed after a job last parked the deletion.
    async fn approval(
        &self,
        item: &ParkedDeletion,
        now: Millis,
        written: &Written,
    ) -> AdminResult<Option<Vec<Write>>> {
        let stale = |updated_at: Millis| {
            (updated_at > item.last_parked_at).then(|| {
                AdminError::Conflict(format!(
                    "parked deletion {}: the {} changed after the deletion was parked (a later sync saw it); reject this deletion, or run a reconciliation to park it again",
                    item.id,
                    item.kind.as_str()
                ))
            })
        };
        let store = self.store();
        let pool = &item.pool_id;
        let builder = Steps {
            connection_id: &item.connection_id,
            now,
            names: &ByObjectId,
        };
        let live_groups = |groups: Vec<Group>| -> Vec<Group> {
            groups
                .into_iter()
                .filter(|g| g.deleted_at.is_none())
                .map(|g| written.groups.get(&g.id.0).cloned().unwrap_or(g))
                .collect()
        };
        let mut steps = Vec::new();
        match item.kind {
            ObjectKind::User => {
                let id = UserId::from(item.object_id.as_str());
                let Some(u) = store
                    .get_user(pool, &id)
                    .await?
                    .filter(|u| u.deleted_at.is_none())
                else {
                    return Ok(None);
                };
                if let Some(e) = stale(u.updated_at) {
                    return Err(e);
                }
                let u = written.users.get(&u.id.0).cloned().unwrap_or(u);
                let groups =
                    live_groups(store.groups_of_member(pool, &GroupMember::User(id)).await?);
                let dependents = Dependents {
                    members: Vec::new(),
                    groups: groups.iter().map(|g| (g.id.as_str(), g)).collect(),
                };
                builder.deletion(
                    &item.external_id,
                    Doomed::User(&u),
                    &dependents,
                    None,
                    &mut steps,
                );
            }
            ObjectKind::Department => {
                let id = DepartmentId::from(item.object_id.as_str());
                let Some(d) = store
                    .get_department(pool, &id)
                    .await?
                    .filter(|d| d.deleted_at.is_none())
                else {
                    return Ok(None);
                };
                if let Some(e) = stale(d.updated_at) {
                    return Err(e);
                }
                let members: Vec<User> = store
                    .department_members(pool, &id)
                    .await?
                    .into_iter()
                    .map(|u| written.users.get(&u.id.0).cloned().unwrap_or(u))
                    .filter(|u| u.deleted_at.is_none())
                    .collect();
                let groups = live_groups(
                    store
                        .groups_of_member(pool, &GroupMember::Department(id))
                        .await?,
                );
                let dependents = Dependents {
                    members: members.iter().map(|u| (u.id.as_str(), u)).collect(),
                    groups: groups.iter().map(|g| (g.id.as_str(), g)).collect(),
                };
                builder.deletion(
                    &item.external_id,
                    Doomed::Department(&d),
                    &dependents,
                    None,
                    &mut steps,
                );
            }
            ObjectKind::Group => {
                let id = GroupId::from(item.object_id.as_str());
                let Some(g) = store
                    .get_group(pool, &id)
                    .await?
                    .filter(|g| g.deleted_at.is_none())
                else {
                    return Ok(None);
                };
                if let Some(e) = stale(g.updated_at) {
                    return Err(e);
                }
                let g = written.groups.get(&g.id.0).cloned().unwrap_or(g);
                builder.deletion(
                    &item.external_id,
                    Doomed::Group(&g),
                    &Dependents::default(),
                    None,
                    &mut steps,
                );
            }
        }
        Ok(Some(steps.into_iter().flat_map(|s| s.writes).collect()))
    }

    async fn pending_parked(&self, id: i64) -> AdminResult<ParkedDeletion> {
        let item = self.parked(id).await?;
        if item.state != ParkedState::Pending {
            return Err(AdminError::Conflict(format!(
                "parked deletion {id} was already {}",
                item.state.as_str()
            )));
        }
        Ok(item)
    }

    // ---- departments ----

    /// One level of the live department tree with maintained counts: the departments
    /// directly below `parent`, or the roots (no live parent) without one.
    pub async fn department_children(
        &self,
        pool_id: &PoolId,
        parent: Option<&DepartmentId>,
        cursor: &Cursor,
    ) -> AdminResult<CursorPage<DepartmentNode>> {
        let page = cursor.key_page()?;
        let found = self
            .store()
            .department_children(pool_id, parent, &page)
            .await?;
        if found.items.is_empty() {
            self.explain_empty(pool_id, parent).await?;
        }
        Ok(cursor_page(found, page.limit, None))
    }

    /// An empty page is an answer only if what it lists exists: `NotFound` for an unknown
    /// pool or department. Asked only when a page is empty, so that a page with items is one
    /// statement (docs/read-model.md, "Statements per read").
    async fn explain_empty(
        &self,
        pool_id: &PoolId,
        department: Option<&DepartmentId>,
    ) -> AdminResult<()> {
        self.pool(pool_id).await?;
        if let Some(d) = department {
            self.require_department(pool_id, d).await?;
        }
        Ok(())
    }

    /// `NotFound` unless the pool holds the department (tombstoned ones too): the check a
    /// list under a department makes before answering an empty page.
    pub async fn require_department(&self, pool_id: &PoolId, id: &DepartmentId) -> AdminResult<()> {
        match self.store().get_department(pool_id, id).await? {
            Some(_) => Ok(()),
            None => Err(AdminError::NotFound(format!("department {id}"))),
        }
    }

    pub async fn department(
        &self,
        pool_id: &PoolId,
        id: &DepartmentId,
    ) -> AdminResult<DepartmentView> {
        let store = self.store();
        let node = store
            .department_node(pool_id, id)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("department {id}")))?;
        let path = store.department_path(pool_id, id).await?;
        let external_ids = store.refs_of(ObjectKind::Department, id.as_str()).await?;
        Ok(DepartmentView {
            department: node.department,
            member_count: node.member_count,
            total_member_count: node.total_member_count,
            child_count: node.child_count,
            path,
            external_ids,
        })
    }

    /// Finds a department by a Feishu id, across the pool's connections.
    pub async fn department_by_feishu_id(
        &self,
        pool_id: &PoolId,
        id_type: DepartmentIdType,
        value: &str,
    ) -> AdminResult<Department> {
        let field = match id_type {
            DepartmentIdType::OpenDepartmentId => ExternalField::ExternalId,
            DepartmentIdType::DepartmentId => ExternalField::CustomId,
        };
        for object_id in self
            .mapped_objects(pool_id, ObjectKind::Department, field, value)
            .await?
        {
            if let Some(d) = self
                .store()
                .get_department(pool_id, &DepartmentId::from(object_id))
                .await?
            {
                return Ok(d);
            }
        }
        Err(AdminError::NotFound(format!(
            "department with {} {value:?}",
            id_type.as_str()
        )))
    }

    /// The orgsync ids of the objects the pool's connections map to one Feishu id (one per
    /// connection at most).
    async fn mapped_objects(
        &self,
        pool_id: &PoolId,
        kind: ObjectKind,
        field: ExternalField,
        value: &str,
    ) -> AdminResult<Vec<String>> {
        self.pool(pool_id).await?;
        let mut out = Vec::new();
        for c in self.store().list_connections(Some(pool_id)).await? {
            if let Some(r) = self
                .store()
                .find_external_by(&c.id, kind, field, value)
                .await?
            {
                out.push(r.object_id);
            }
        }
        Ok(out)
    }

    /// Some departments of a pool by id (tombstoned ones too; unknown ids left out), in one
    /// bulk read.
    pub async fn departments(
        &self,
        pool_id: &PoolId,
        ids: &[DepartmentId],
    ) -> AdminResult<Vec<Department>> {
        Ok(self.store().get_departments(pool_id, ids).await?)
    }

    /// How many live departments a pool has.
    pub async fn count_departments(&self, pool_id: &PoolId) -> AdminResult<u64> {
        Ok(self.store().count_departments(pool_id).await?)
    }

    // ---- users ----

    /// A page of the users a query matches (department members when it names a department:
    /// live users only, so `include_deleted` cannot go with it). `with_total` also counts
    /// every match.
    pub async fn search_users(
        &self,
        pool_id: &PoolId,
        query: &UserQuery,
        cursor: &Cursor,
        with_total: bool,
    ) -> AdminResult<CursorPage<User>> {
        if query.department_id.is_some() && query.include_deleted {
            return Err(AdminError::Invalid(
                "include_deleted cannot be combined with a department: department members are \
                 live users (a deleted user has left its departments)"
                    .into(),
            ));
        }
        let page = cursor.key_page()?;
        let found = self.store().list_users(pool_id, query, &page).await?;
        if found.items.is_empty() {
            self.explain_empty(pool_id, query.department_id.as_ref())
                .await?;
        }
        let total = if with_total {
            Some(self.store().count_users(pool_id, query).await?)
        } else {
            None
        };
        Ok(cursor_page(found, page.limit, total))
    }

    pub async fn user(&self, pool_id: &PoolId, id: &UserId) -> AdminResult<User> {
        self.store()
            .get_user(pool_id, id)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("user {id}")))
    }

    /// Finds a user by a Feishu id, across the pool's connections.
    pub async fn user_by_feishu_id(
        &self,
        pool_id: &PoolId,
        id_type: UserIdType,
        value: &str,
    ) -> AdminResult<User> {
        let field = match id_type {
            UserIdType::OpenId => ExternalField::ExternalId,
            UserIdType::UnionId => ExternalField::UnionId,
            UserIdType::UserId => ExternalField::CustomId,
        };
        for c in self.store().list_connections(Some(pool_id)).await? {
            if let Some(r) = self
                .store()
                .find_external_by(&c.id, ObjectKind::User, field, value)
                .await?
                && let Some(u) = self
                    .store()
                    .get_user(pool_id, &UserId::from(r.object_id.as_str()))
                    .await?
            {
                return Ok(u);
            }
        }
        Err(AdminError::NotFound(format!(
            "user with {} {value:?}",
            match id_type {
                UserIdType::OpenId => "open_id",
                UserIdType::UnionId => "union_id",
                UserIdType::UserId => "user_id",
            }
        )))
    }

    pub async fn user_detail(&self, pool_id: &PoolId, id: &UserId) -> AdminResult<UserDetail> {
        let user = self.user(pool_id, id).await?;
        let store = self.store();
        // One bulk read, in the order of the user's memberships.
        let ids: Vec<DepartmentId> = user
            .departments
            .iter()
            .map(|m| m.department_id.clone())
            .collect();
        let member = GroupMember::User(user.id.clone());
        // Five independent reads: run together, a request waits for the slowest, not the
        // sum (on PostgreSQL each is a round trip on its own pooled connection).
        let manager = async {
            match &user.manager_id {
                Some(m) => store.get_user(pool_id, m).await,
                None => Ok(None),
            }
        };
        let (departments, groups, external_ids, history, manager) = tokio::try_join!(
            store.get_departments(pool_id, &ids),
            store.group_summaries_of_member(pool_id, &member),
            store.refs_of(ObjectKind::User, id.as_str()),
            store.object_history(pool_id, ObjectKind::User, id.as_str(), 100),
            manager,
        )?;
        let groups = groups
            .into_iter()
            .filter(|g| g.deleted_at.is_none())
            .collect();
        Ok(UserDetail {
            user,
            departments,
            groups,
            external_ids,
            history,
            manager,
        })
    }

    // ---- groups ----

    pub async fn list_groups(
        &self,
        pool_id: &PoolId,
        cursor: &Cursor,
    ) -> AdminResult<CursorPage<GroupEntry>> {
        let page = cursor.key_page()?;
        let found = self.store().list_groups(pool_id, &page).await?;
        if found.items.is_empty() {
            self.explain_empty(pool_id, None).await?;
        }
        Ok(cursor_page(found, page.limit, None))
    }

    pub async fn group(&self, pool_id: &PoolId, id: &GroupId) -> AdminResult<GroupDetail> {
        let store = self.store();
        let group = store
            .get_group(pool_id, id)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("group {id}")))?;
        // One bulk read per kind, not one per member.
        let user_ids: Vec<UserId> = group
            .members
            .iter()
            .filter_map(|m| match m {
                GroupMember::User(u) => Some(u.clone()),
                GroupMember::Department(_) => None,
            })
            .collect();
        let department_ids: Vec<DepartmentId> = group
            .members
            .iter()
            .filter_map(|m| match m {
                GroupMember::Department(d) => Some(d.clone()),
                GroupMember::User(_) => None,
            })
            .collect();
        let users: Vec<User> = store
            .get_users(pool_id, &user_ids)
            .await?
            .into_iter()
            .filter(|u| u.deleted_at.is_none())
            .collect();
        let departments: Vec<Department> = store
            .get_departments(pool_id, &department_ids)
            .await?
            .into_iter()
            .filter(|d| d.deleted_at.is_none())
            .collect();
        let live_users: HashSet<&UserId> = users.iter().map(|u| &u.id).collect();
        let live_departments: HashSet<&DepartmentId> = departments.iter().map(|d| &d.id).collect();
        let unresolved: Vec<GroupMember> = group
            .members
            .iter()
            .filter(|m| match m {
                GroupMember::User(u) => !live_users.contains(u),
                GroupMember::Department(d) => !live_departments.contains(d),
            })
            .cloned()
            .collect();
        let external_ids = store.refs_of(ObjectKind::Group, id.as_str()).await?;
        Ok(GroupDetail {
            group,
            users,
            departments,
            unresolved,
            external_ids,
        })
    }

    /// A page of a group's members, each resolved with one bulk read per kind: what a page
    /// costs does not grow with the group (docs/read-model.md).
    pub async fn group_members(
        &self,
        pool_id: &PoolId,
        id: &GroupId,
        cursor: &Cursor,
    ) -> AdminResult<CursorPage<GroupMemberView>> {
        let page = cursor.key_page()?;
        let store = self.store();
        let Some(found) = store.group_members_page(pool_id, id, &page).await? else {
            self.pool(pool_id).await?;
            return Err(AdminError::NotFound(format!("group {id}")));
        };
        let mut user_ids = Vec::new();
        let mut department_ids = Vec::new();
        for m in &found.items {
            match m {
                GroupMember::User(u) => user_ids.push(u.clone()),
                GroupMember::Department(d) => department_ids.push(d.clone()),
            }
        }
        let users: HashMap<UserId, User> = store
            .get_users(pool_id, &user_ids)
            .await?
            .into_iter()
            .filter(|u| u.deleted_at.is_none())
            .map(|u| (u.id.clone(), u))
            .collect();
        let departments: HashMap<DepartmentId, Department> = if department_ids.is_empty() {
            HashMap::new()
        } else {
            store
                .get_departments(pool_id, &department_ids)
                .await?
                .into_iter()
                .filter(|d| d.deleted_at.is_none())
                .map(|d| (d.id.clone(), d))
                .collect()
        };
        let items = found
            .items
            .into_iter()
            .map(|member| GroupMemberView {
                user: match &member {
                    GroupMember::User(u) => users.get(u).cloned(),
                    GroupMember::Department(_) => None,
                },
                department: match &member {
                    GroupMember::Department(d) => departments.get(d).cloned(),
                    GroupMember::User(_) => None,
                },
                member,
            })
            .collect();
        Ok(cursor_page(
            Keyed {
                items,
                next: found.next,
            },
            page.limit,
            None,
        ))
    }

    /// Finds a group by its Feishu id, across the pool's connections.
    pub async fn group_by_feishu_id(
        &self,
        pool_id: &PoolId,
        id_type: GroupIdType,
        value: &str,
    ) -> AdminResult<Group> {
        let field = match id_type {
            GroupIdType::GroupId => ExternalField::ExternalId,
            GroupIdType::CustomGroupId => ExternalField::CustomId,
        };
        for object_id in self
            .mapped_objects(pool_id, ObjectKind::Group, field, value)
            .await?
        {
            if let Some(g) = self
                .store()
                .get_group(pool_id, &GroupId::from(object_id))
                .await?
            {
                return Ok(g);
            }
        }
        Err(AdminError::NotFound(format!(
            "group with {} {value:?}",
            id_type.as_str()
        )))
    }

    // ---- the event inbox ----

    pub async fn inbox(
        &self,
        filter: &InboxFilter,
        page: PageRequest,
    ) -> AdminResult<Page<InboxEvent>> {
        let store = self.store();
        let (mut items, next) =
            keyed(page, |e: &InboxEvent| e.id, |p| store.inbox_list(filter, p)).await?;
        for e in &mut items {
            e.payload = redact_event_token(&e.payload);
        }
        let total = store.inbox_count(filter).await?;
        Ok(Page {
            items,
            offset: page.offset,
            limit: page.limit,
            total: Some(total),
            next,
        })
    }

    /// One inbox event (a Verification Token in its payload masked, see
    /// [`redact_event_token`]).
    pub async fn inbox_event(&self, id: i64) -> AdminResult<InboxEvent> {
        let mut event = self
            .store()
            .inbox_get(id)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("inbox event {id}")))?;
        event.payload = redact_event_token(&event.payload);
        Ok(event)
    }
}

/// Why one step of a credential check failed.
enum StepFailure {
    Feishu(feishu::client::FeishuError),
    /// The check's deadline passed before Feishu answered.
    TimedOut,
}

/// Runs one step of a check, within the deadline if there is one.
async fn within<T>(
    deadline: Option<tokio::time::Instant>,
    step: impl std::future::Future<Output = Result<T, feishu::client::FeishuError>>,
) -> Result<T, StepFailure> {
    match deadline {
        None => step.await.map_err(StepFailure::Feishu),
        Some(at) => match tokio::time::timeout_at(at, step).await {
            Ok(result) => result.map_err(StepFailure::Feishu),
            Err(_) => Err(StepFailure::TimedOut),
        },
    }
}

fn failed_step(step: &str, failure: &StepFailure) -> CheckStep {
    match failure {
        StepFailure::Feishu(e) => CheckStep {
            step: step.to_owned(),
            ok: false,
            message: e.to_string(),
            fix: e.fix().map(str::to_owned),
            code: e.code(),
        },
        StepFailure::TimedOut => CheckStep {
            step: step.to_owned(),
            ok: false,
            message: format!(
                "Feishu did not answer within {} s",
                SAVE_CHECK_TIMEOUT.as_secs()
            ),
            fix: Some(
                "check the base URL and the network, proxy and firewall between orgsync and Feishu; the connection is saved: test its credentials again once Feishu answers".into(),
            ),
            code: None,
        },
    }
}

/// Gets a tenant token, then reads the app's contact scope (and the root, to tell "all
/// members" from a list of departments). Each failure says what to fix.
async fn check_credentials(
    c: &Connection,
    client: &feishu::client::FeishuClient,
    deadline: Option<tokio::time::Instant>,
) -> CredentialCheck {
    let mut steps = Vec::new();
    if let Err(e) = within(deadline, client.check_credentials()).await {
        steps.push(failed_step("credentials", &e));
        return CredentialCheck { ok: false, steps };
    }
    steps.push(CheckStep {
        step: "credentials".into(),
        ok: true,
        message: format!("App ID {} and App Secret are valid", c.app_id),
        fix: None,
        code: None,
    });
    match within(deadline, client.scopes()).await {
        Err(e) => steps.push(failed_step("contact_scope", &e)),
        Ok(scope) => {
            let (d, u, g) = (
                scope.department_ids.len(),
                scope.user_ids.len(),
                scope.group_ids.len(),
            );
            if d + u + g == 0 {
                steps.push(CheckStep {
                    step: "contact_scope".into(),
                    ok: false,
                    message: "the app's contact scope is empty: importing would fail with \"failed to get Feishu organization departments\"".into(),
                    fix: Some("In the Feishu developer console grant the contact permissions, set the app's availability to all employees and its contact scope to all members (or pick departments), then publish a version and have it approved".into()),
                    code: None,
                });
            } else {
                // `/scopes` looks the same for "all members" and a picked list of
                // first-level departments; only the root's readability tells them apart.
                let whole = match within(deadline, client.department("0")).await {
                    Ok(_) => true,
                    Err(StepFailure::Feishu(e)) if e.is_out_of_scope() => false,
                    Err(e) => {
                        steps.push(failed_step("contact_scope", &e));
                        return CredentialCheck { ok: false, steps };
                    }
                };
                steps.push(CheckStep {
                    step: "contact_scope".into(),
                    ok: true,
                    message: if whole {
                        "the app sees the whole organization".to_owned()
                    } else {
                        format!(
                            "the app sees {d} department(s), {u} user(s) and {g} group(s) (a partial contact scope)"
                        )
                    },
                    fix: None,
                    code: None,
                });
            }
        }
    }
    CredentialCheck {
        ok: steps.iter().all(|s| s.ok),
        steps,
    }
}

/// Feishu puts the Verification Token into every event (`header.token` in 2.0, `token` in
/// 1.0). The inbox stores payloads without it and migration 0005 removed it from older rows,
/// but that migration leaves a payload it cannot read as JSON untouched: this mask is the
/// defence in depth that keeps such a row (or any other path that ever stores a token) from
/// showing it.
pub fn redact_event_token(payload: &str) -> String {
    const MASK: &str = "***";
    let Ok(mut value) = serde_json::from_str::<serde_json::Value>(payload) else {
        // Everything the inbox holds was parsed as JSON on the way in; anything else is
        // not shown at all rather than risk the token.
        return MASK.to_owned();
    };
    let mut masked = false;
    if let Some(t) = value.get_mut("token") {
        *t = serde_json::Value::String(MASK.into());
        masked = true;
    }
    if let Some(t) = value.get_mut("header").and_then(|h| h.get_mut("token")) {
        *t = serde_json::Value::String(MASK.into());
        masked = true;
    }
    if masked {
        value.to_string()
    } else {
        payload.to_owned()
    }
}

#[cfg(test)]
mod redaction_tests {
    use super::{ConnectionPatch, NewConnection, redact_event_token};

    #[test]
    fn connection_input_debug_hides_secrets() {
        let new = NewConnection {
            identifier: "feishu".into(),
            app_id: "cli_1".into(),
            app_secret: "secret-app-secret".into(),
            encrypt_key: Some("secret-encrypt-key".into()),
            verification_token: Some("secret-verification-token".into()),
            ..NewConnection::default()
        };
        let patch = ConnectionPatch {
            app_secret: Some("secret-app-secret".into()),
            encrypt_key: Some(Some("secret-encrypt-key".into())),
            verification_token: Some(None),
            ..ConnectionPatch::default()
        };
        for shown in [
            format!("{new:?}"),
            format!("{patch:?}"),
            format!("{new:#?}"),
        ] {
            assert!(!shown.contains("secret-"), "{shown}");
            assert!(
                shown.contains("***") && shown.contains("app_secret"),
                "{shown}"
            );
        }
        assert!(format!("{new:?}").contains("cli_1"));
        // A cleared secret shows as cleared, an untouched one as absent.
        assert!(format!("{patch:?}").contains("verification_token: Some(None)"));
    }

    #[test]
    fn event_tokens_are_masked() {
        let v2 = r#"{"schema":"2.0","header":{"event_id":"e1","token":"secret-vt"},"event":{}}"#;
        let v1 = r#"{"uuid":"u1","token":"secret-vt","event":{"type":"x"}}"#;
        for p in [v2, v1] {
            let out = redact_event_token(p);
            assert!(!out.contains("secret-vt"), "{out}");
            assert!(out.contains("***"), "{out}");
        }
        assert_eq!(redact_event_token(r#"{"a":1}"#), r#"{"a":1}"#);
        assert_eq!(redact_event_token("not json secret-vt"), "***");
    }
}

#[cfg(test)]
mod counting_tests {
    use super::counted;

    #[test]
    fn counts_read_like_a_sentence() {
        assert_eq!(counted(0, "user"), "0 users");
        assert_eq!(counted(1, "connection"), "1 connection");
        assert_eq!(counted(999, "user"), "999 users");
        assert_eq!(counted(1_945, "user"), "1,945 users");
        assert_eq!(counted(100_000, "user"), "100,000 users");
        assert_eq!(counted(1_234_567, "user"), "1,234,567 users");
    }
}

/// The users and groups an approval batch writes, as written (later approvals chain on them).
#[derive(Default)]
struct Written {
    users: HashMap<String, User>,
    groups: HashMap<String, Group>,
}

impl Written {
    fn absorb(&mut self, writes: &[Write]) {
        for w in writes {
            match w {
                Write::PutUser { user, .. } => {
                    self.users.insert(user.id.0.clone(), user.clone());
                }
                Write::PutGroup { group, .. } => {
                    self.groups.insert(group.id.0.clone(), group.clone());
                }
                Write::PutDepartment { .. } | Write::PutExternalRef(_) => {}
            }
        }
    }
}
