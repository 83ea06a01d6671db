//! Rows as the database returns them, and their conversion to and from the directory's types.
//! Shared by both backends: `#[derive(FromRow)]` is generic over the row type, and every
//! column uses a type both drivers decode (TEXT, BIGINT/INTEGER, BOOLEAN/INTEGER, JSONB/TEXT).

use std::collections::{BTreeMap, HashMap};

use directory::ids::{ConnectionId, DepartmentId, GroupId, JobId, Millis, PoolId, UserId};
use directory::model::{
    ActionLogEntry, ActionResult, Connection, ConnectionSettings, Department, ExternalRef, Group,
    GroupMember, GroupSummary, I18nName, JobProgress, Leader, Membership, ObjectKind,
    ParkedDeletion, ParkedState, Profile, Provider, SyncAction, SyncJob, User, UserProfile,
    UserStatus,
};
use directory::store::{
    ChangeKind, ChangeRecord, ChangeSource, GroupEntry, InboxEvent, InboxOutcome, InboxState,
    StoreError, StoreResult, Watermark,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sqlx::FromRow;
use sqlx::types::Json;

// ---- errors ------------------------------------------------------------------------------

/// Maps a driver error: unique violations are conflicts, undecodable columns are corruption,
/// the rest is the database's (or the network's) fault.
pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            StoreError::Conflict(d.message().to_owned())
        }
        // A row that points at something deleted meanwhile (a job or lease of a connection
        // an admin just removed): that thing is not there any more.
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => StoreError::NotFound(format!(
            "an object this change refers to (deleted meanwhile; {})",
            d.message()
        )),
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. } => StoreError::Corrupt(e.to_string()),
        other => StoreError::Database(other.to_string()),
    }
}

/// A failed connection insert or update: a clash on the identifier is named as such (both
/// drivers name the violated columns or constraint in the message).
pub(crate) fn connection_conflict(e: sqlx::Error, c: &Connection) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            StoreError::Conflict(if d.message().contains("identifier") {
                format!(
                    "the connection identifier \"{}\" is already used in user pool {}",
                    c.identifier, c.pool_id
                )
            } else {
                format!("connection {} already exists", c.id)
            })
        }
        _ => db_err(e),
    }
}

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("unknown {what} {value:?}"))
}

/// The text of a unit enum as serde names it (`snake_case` for the job enums).
pub(crate) fn enum_text<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        // Only unit variants are stored this way; anything else is a programming error that
        // must still not panic: store something a reader will reject as corrupt.
        Ok(other) => other.to_string(),
        Err(e) => e.to_string(),
    }
}

pub(crate) fn parse_enum<T: DeserializeOwned>(what: &str, text: &str) -> StoreResult<T> {
    serde_json::from_value(Value::String(text.to_owned())).map_err(|_| corrupt(what, text))
}

pub(crate) fn to_json<T: Serialize>(what: &str, value: &T) -> StoreResult<Value> {
    serde_json::to_value(value)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode {what}: {e}")))
}

pub(crate) fn object_kind(text: &str) -> StoreResult<ObjectKind> {
    ObjectKind::parse(text).ok_or_else(|| corrupt("object kind", text))
}

/// `u64` paging values as SQL integers (anything beyond `i64::MAX` means "all").
pub(crate) fn sql_int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(crate) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// `now + ttl` in milliseconds, saturating.
pub(crate) fn plus(now: i64, ttl: std::time::Duration) -> i64 {
    now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
}

/// Rows per multi-row statement: keeps every statement far below SQLite's 32 766 and
/// PostgreSQL's 65 535 bind parameters.
pub(crate) const CHUNK: usize = 1_000;

/// A `LIKE` pattern matching `text` anywhere, with the wildcards in it escaped (`ESCAPE '\'`).
pub(crate) fn contains_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// The free-text search target of a user: the searchable fields, lower-cased, separated by a
/// control character no query contains.
pub(crate) fn search_text(profile: &UserProfile) -> String {
    [
        &profile.name,
        &profile.en_name,
        &profile.email,
        &profile.mobile,
        &profile.employee_no,
    ]
    .into_iter()
    .flatten()
    .map(|s| s.to_lowercase())
    .collect::<Vec<_>>()
    .join("\u{1f}")
}

// ---- pools and connections -------------------------------------------------------------

#[derive(FromRow)]
pub(crate) struct PoolRow {
    id: String,
    name: String,
    created_at: i64,
}

impl From<PoolRow> for directory::model::UserPool {
    fn from(r: PoolRow) -> Self {
        Self {
            id: PoolId(r.id),
            name: r.name,
            created_at: r.created_at,
        }
    }
}

#[derive(FromRow)]
pub(crate) struct ConnectionRow {
    id: String,
    pool_id: String,
    identifier: String,
    display_name: String,
    provider: String,
    base_url: Option<String>,
    app_id: String,
    app_secret: String,
    encrypt_key: Option<String>,
    verification_token: Option<String>,
    settings: Json<ConnectionSettings>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<ConnectionRow> for Connection {
    type Error = StoreError;

    fn try_from(r: ConnectionRow) -> StoreResult<Self> {
        use directory::secrets::SealedSecret;
        Ok(Self {
            provider: Provider::parse(&r.provider)
                .ok_or_else(|| corrupt("provider", &r.provider))?,
            id: ConnectionId(r.id),
            pool_id: PoolId(r.pool_id),
            identifier: r.identifier,
            display_name: r.display_name,
            base_url: r.base_url,
            app_id: r.app_id,
            app_secret: SealedSecret(r.app_secret),
            encrypt_key: r.encrypt_key.map(SealedSecret),
            verification_token: r.verification_token.map(SealedSecret),
            settings: r.settings.0,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

// ---- directory objects -------------------------------------------------------------------

#[derive(FromRow)]
pub(crate) struct UserRow {
    pool_id: String,
    id: String,
    status: String,
    in_root: bool,
    manager_id: Option<String>,
    profile: Json<Profile>,
    version: i64,
    created_at: i64,
    updated_at: i64,
    deleted_at: Option<i64>,
}

/// A user's row without its profile (`sql::STATE_USER_OUTLINES`).
#[derive(FromRow)]
pub(crate) struct OutlineUserRow {
    pool_id: String,
    id: String,
    status: String,
    in_root: bool,
    manager_id: Option<String>,
    version: i64,
    created_at: i64,
    updated_at: i64,
    deleted_at: Option<i64>,
}

impl From<OutlineUserRow> for UserRow {
    fn from(r: OutlineUserRow) -> Self {
        Self {
            pool_id: r.pool_id,
            id: r.id,
            status: r.status,
            in_root: r.in_root,
            manager_id: r.manager_id,
            profile: Json(Profile::empty()),
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            deleted_at: r.deleted_at,
        }
    }
}

impl UserRow {
    pub(crate) fn id(&self) -> String {
        self.id.clone()
    }
}

/// A user's row with its memberships as JSON (`sql::memberships_json`): a whole user from
/// one row.
#[derive(FromRow)]
pub(crate) struct WholeUserRow {
    #[sqlx(flatten)]
    pub row: UserRow,
    pub memberships: Option<String>,
}

impl WholeUserRow {
    pub(crate) fn id(&self) -> String {
        self.row.id()
    }

    pub(crate) fn into_user(self) -> StoreResult<User> {
        let departments = memberships_from_json(&self.row.id, self.memberships.as_deref())?;
        user_with(self.row, departments)
    }
}

/// `is_primary` as the JSON functions give it: an integer on SQLite, a boolean on PostgreSQL.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum JsonFlag {
    Bool(bool),
    Int(i64),
}

/// The memberships of `sql::memberships_json` (`None`: PostgreSQL's `json_agg` of no rows).
pub(crate) fn memberships_from_json(
    user_id: &str,
    text: Option<&str>,
) -> StoreResult<Vec<Membership>> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    let rows: Vec<(String, Option<i64>, Option<i64>, JsonFlag)> = serde_json::from_str(text)
        .map_err(|e| {
            StoreError::Corrupt(format!("the memberships of user {user_id}: {e}: {text}"))
        })?;
    Ok(rows
        .into_iter()
        .map(
            |(department_id, user_order, department_order, primary)| Membership {
                department_id: DepartmentId(department_id),
                user_order,
                department_order,
                primary: match primary {
                    JsonFlag::Bool(b) => b,
                    JsonFlag::Int(i) => i != 0,
                },
            },
        )
        .collect())
}

/// A user row with the number in its sort key in a keyset page (creation time, or the text
/// index's row; 0 where the order needs none).
#[derive(FromRow)]
pub(crate) struct KeyedUserRow {
    #[sqlx(flatten)]
    pub row: WholeUserRow,
    pub key_n: i64,
}

#[derive(FromRow)]
pub(crate) struct MembershipRow {
    user_id: String,
    department_id: String,
    user_order: Option<i64>,
    department_order: Option<i64>,
    is_primary: bool,
}

/// Membership rows (ordered by user, position) as each user's memberships.
pub(crate) fn memberships_by_user(
    memberships: Vec<MembershipRow>,
) -> HashMap<String, Vec<Membership>> {
    let mut by_user: HashMap<String, Vec<Membership>> = HashMap::new();
    for m in memberships {
        by_user.entry(m.user_id).or_default().push(Membership {
            department_id: DepartmentId(m.department_id),
            user_order: m.user_order,
            department_order: m.department_order,
            primary: m.is_primary,
        });
    }
    by_user
}

/// Joins users with their membership rows (ordered by user, position).
pub(crate) fn assemble_users(
    rows: Vec<UserRow>,
    memberships: Vec<MembershipRow>,
) -> StoreResult<Vec<User>> {
    let mut by_user = memberships_by_user(memberships);
    rows.into_iter()
        .map(|r| user_from_row(r, &mut by_user))
        .collect()
}

/// One user from its row, taking its memberships out of `by_user` (`memberships_by_user`).
pub(crate) fn user_from_row(
    r: UserRow,
    by_user: &mut HashMap<String, Vec<Membership>>,
) -> StoreResult<User> {
    let departments = by_user.remove(&r.id).unwrap_or_default();
    user_with(r, departments)
}

/// One user from its row and its memberships.
fn user_with(r: UserRow, departments: Vec<Membership>) -> StoreResult<User> {
    Ok(User {
        status: UserStatus::parse(&r.status).ok_or_else(|| corrupt("user status", &r.status))?,
        departments,
        id: UserId(r.id),
        pool_id: PoolId(r.pool_id),
        profile: r.profile.0,
        in_root: r.in_root,
        manager_id: r.manager_id.map(UserId),
        version: r.version,
        created_at: r.created_at,
        updated_at: r.updated_at,
        deleted_at: r.deleted_at,
    })
}

#[derive(FromRow)]
pub(crate) struct DepartmentRow {
    pool_id: String,
    id: String,
    name: Option<String>,
    i18n_name: Option<Json<I18nName>>,
    parent_id: Option<String>,
    sort_order: Option<i64>,
    chat_id: Option<String>,
    version: i64,
    created_at: i64,
    updated_at: i64,
    deleted_at: Option<i64>,
}

impl DepartmentRow {
    pub(crate) fn id(&self) -> String {
        self.id.clone()
    }
}

/// A department of a tree level (`sql::department_node_select`): the row, its counts and its
/// sort key.
#[derive(FromRow)]
pub(crate) struct NodeRow {
    #[sqlx(flatten)]
    pub row: DepartmentRow,
    pub direct_members: i64,
    pub subtree_members: i64,
    pub child_count: i64,
    pub order_key: i64,
    pub leaders: Option<String>,
}

/// A department's row with its leaders as JSON (`sql::leaders_json`).
#[derive(FromRow)]
pub(crate) struct WholeDepartmentRow {
    #[sqlx(flatten)]
    pub row: DepartmentRow,
    pub leaders: Option<String>,
}

impl WholeDepartmentRow {
    pub(crate) fn into_department(self) -> StoreResult<Department> {
        department_with_json(self.row, self.leaders.as_deref())
    }
}

/// A department from its row and its leaders as `sql::leaders_json` gives them (`None`:
/// PostgreSQL's `json_agg` of no rows).
pub(crate) fn department_with_json(
    row: DepartmentRow,
    leaders: Option<&str>,
) -> StoreResult<Department> {
    let leaders = match leaders {
        None => Vec::new(),
        Some(text) => {
            let pairs: Vec<(String, String)> = serde_json::from_str(text).map_err(|e| {
                StoreError::Corrupt(format!("the leaders of department {}: {e}: {text}", row.id))
            })?;
            pairs
                .into_iter()
                .map(|(user_id, kind)| {
                    Ok(Leader {
                        kind: parse_enum("leader kind", &kind)?,
                        user_id: UserId(user_id),
                    })
                })
                .collect::<StoreResult<_>>()?
        }
    };
    Ok(department_with(row, leaders))
}

#[derive(FromRow)]
pub(crate) struct LeaderRow {
    department_id: String,
    user_id: String,
    kind: String,
}

pub(crate) fn assemble_departments(
    rows: Vec<DepartmentRow>,
    leaders: Vec<LeaderRow>,
) -> StoreResult<Vec<Department>> {
    let mut by_department: HashMap<String, Vec<Leader>> = HashMap::new();
    for l in leaders {
        by_department
            .entry(l.department_id)
            .or_default()
            .push(Leader {
                kind: parse_enum("leader kind", &l.kind)?,
                user_id: UserId(l.user_id),
            });
    }
    Ok(rows
        .into_iter()
        .map(|r| {
            let leaders = by_department.remove(&r.id).unwrap_or_default();
            department_with(r, leaders)
        })
        .collect())
}

fn department_with(r: DepartmentRow, leaders: Vec<Leader>) -> Department {
    Department {
        leaders,
        id: DepartmentId(r.id),
        pool_id: PoolId(r.pool_id),
        name: r.name,
        i18n_name: r.i18n_name.map(|j| j.0),
        parent_id: r.parent_id.map(DepartmentId),
        order: r.sort_order,
        chat_id: r.chat_id,
        version: r.version,
        created_at: r.created_at,
        updated_at: r.updated_at,
        deleted_at: r.deleted_at,
    }
}

#[derive(FromRow)]
pub(crate) struct GroupRow {
    pool_id: String,
    id: String,
    name: Option<String>,
    description: Option<String>,
    kind: String,
    version: i64,
    created_at: i64,
    updated_at: i64,
    deleted_at: Option<i64>,
}

impl GroupRow {
    pub(crate) fn id(&self) -> String {
        self.id.clone()
    }

    pub(crate) fn created_at(&self) -> i64 {
        self.created_at
    }
}

#[derive(FromRow)]
pub(crate) struct MemberRow {
    group_id: String,
    member_kind: String,
    member_id: String,
}

impl MemberRow {
    /// The key of a page of members: kind, then id.
    pub(crate) fn key(&self) -> (String, String) {
        (self.member_kind.clone(), self.member_id.clone())
    }

    pub(crate) fn into_member(self) -> StoreResult<GroupMember> {
        match self.member_kind.as_str() {
            "user" => Ok(GroupMember::User(UserId(self.member_id))),
            "department" => Ok(GroupMember::Department(DepartmentId(self.member_id))),
            other => Err(corrupt("group member kind", other)),
        }
    }
}

/// The ids, each once, in first-seen order.
pub(crate) fn unique_ids<'a>(ids: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    ids.filter(|id| seen.insert(*id))
        .map(str::to_owned)
        .collect()
}

/// `items` in the order of `ids` (each item's id is one of them).
pub(crate) fn in_order<T>(mut items: Vec<T>, ids: &[String], id: fn(&T) -> &str) -> Vec<T> {
    let position: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    items.sort_by_key(|item| position.get(id(item)).copied().unwrap_or(usize::MAX));
    items
}

/// `(member_kind, member_id)` as stored.
pub(crate) fn member_columns(m: &GroupMember) -> (&'static str, &str) {
    match m {
        GroupMember::User(id) => ("user", id.as_str()),
        GroupMember::Department(id) => ("department", id.as_str()),
    }
}

/// A group's row with the number of members it lists (`list_groups`).
#[derive(FromRow)]
pub(crate) struct GroupCountRow {
    #[sqlx(flatten)]
    pub row: GroupRow,
    pub member_count: i64,
}

impl GroupCountRow {
    pub(crate) fn into_entry(self) -> StoreResult<GroupEntry> {
        let member_count = u64::try_from(self.member_count)
            .map_err(|_| corrupt("group member count", &self.member_count.to_string()))?;
        let group = assemble_groups(vec![self.row], Vec::new())?
            .pop()
            .map(GroupSummary::from)
            .ok_or_else(|| StoreError::Corrupt("a group row vanished".into()))?;
        Ok(GroupEntry {
            group,
            member_count,
        })
    }
}

pub(crate) fn assemble_groups(
    rows: Vec<GroupRow>,
    members: Vec<MemberRow>,
) -> StoreResult<Vec<Group>> {
    let mut by_group: HashMap<String, Vec<GroupMember>> = HashMap::new();
    for m in members {
        let group_id = m.group_id.clone();
        by_group.entry(group_id).or_default().push(m.into_member()?);
    }
    rows.into_iter()
        .map(|r| {
            Ok(Group {
                kind: parse_enum("group kind", &r.kind)?,
                members: by_group.remove(&r.id).unwrap_or_default(),
                id: GroupId(r.id),
                pool_id: PoolId(r.pool_id),
                name: r.name,
                description: r.description,
                version: r.version,
                created_at: r.created_at,
                updated_at: r.updated_at,
                deleted_at: r.deleted_at,
            })
        })
        .collect()
}

#[derive(FromRow)]
pub(crate) struct RefRow {
    connection_id: String,
    kind: String,
    external_id: String,
    union_id: Option<String>,
    custom_id: Option<String>,
    object_id: String,
}

impl TryFrom<RefRow> for ExternalRef {
    type Error = StoreError;

    fn try_from(r: RefRow) -> StoreResult<Self> {
        Ok(Self {
            kind: object_kind(&r.kind)?,
            connection_id: ConnectionId(r.connection_id),
            external_id: r.external_id,
            union_id: r.union_id,
            custom_id: r.custom_id,
            object_id: r.object_id,
        })
    }
}

pub(crate) fn convert_all<R, T>(rows: Vec<R>) -> StoreResult<Vec<T>>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}

// ---- change log and watermarks -----------------------------------------------------------

#[derive(FromRow)]
pub(crate) struct ChangeRow {
    pool_id: String,
    seq: i64,
    kind: String,
    object_kind: String,
    object_id: String,
    version: i64,
    source: Json<ChangeSource>,
    at: i64,
    object: Json<Value>,
}

impl TryFrom<ChangeRow> for ChangeRecord {
    type Error = StoreError;

    fn try_from(r: ChangeRow) -> StoreResult<Self> {
        Ok(Self {
            kind: ChangeKind::parse(&r.kind).ok_or_else(|| corrupt("change kind", &r.kind))?,
            object_kind: object_kind(&r.object_kind)?,
            pool_id: PoolId(r.pool_id),
            seq: r.seq,
            object_id: r.object_id,
            version: r.version,
            source: r.source.0,
            at: r.at,
            object: r.object.0,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct WatermarkRow {
    connection_id: String,
    object_key: String,
    event_time: i64,
    deleted: bool,
}

impl From<WatermarkRow> for Watermark {
    fn from(r: WatermarkRow) -> Self {
        Self {
            connection_id: ConnectionId(r.connection_id),
            object_key: r.object_key,
            event_time: r.event_time,
            deleted: r.deleted,
        }
    }
}

// ---- inbox -------------------------------------------------------------------------------

#[derive(FromRow)]
pub(crate) struct InboxRow {
    id: i64,
    pool_id: String,
    connection_id: String,
    event_id: String,
    event_type: String,
    created_at: Option<i64>,
    received_at: i64,
    payload: String,
    state: String,
    attempts: i64,
    next_attempt_at: i64,
    last_error: Option<String>,
    outcome: Option<String>,
    finished_at: Option<i64>,
}

impl TryFrom<InboxRow> for InboxEvent {
    type Error = StoreError;

    fn try_from(r: InboxRow) -> StoreResult<Self> {
        Ok(Self {
            state: InboxState::parse(&r.state).ok_or_else(|| corrupt("inbox state", &r.state))?,
            id: r.id,
            pool_id: PoolId(r.pool_id),
            connection_id: ConnectionId(r.connection_id),
            event_id: r.event_id,
            event_type: r.event_type,
            created_at: r.created_at,
            received_at: r.received_at,
            payload: r.payload,
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at,
            last_error: r.last_error,
            outcome: r.outcome,
            finished_at: r.finished_at,
        })
    }
}

/// Claim order: oldest Feishu `create_time` first, events without one last, then arrival.
/// What finishing (or rescheduling) one inbox event writes; the same for the single statement
/// and the bulk ones.
pub(crate) struct InboxFinish<'a> {
    pub id: i64,
    pub state: &'static str,
    /// `None` keeps the stored value.
    pub outcome: Option<&'a str>,
    /// `None` keeps the stored value.
    pub last_error: Option<&'a str>,
    pub finished_at: Option<Millis>,
    /// Added to `attempts`.
    pub tries: i64,
    /// `None` keeps the stored value.
    pub next_attempt_at: Option<Millis>,
}

impl<'a> InboxFinish<'a> {
    pub(crate) fn new(id: i64, outcome: &'a InboxOutcome, now: Millis) -> Self {
        let (state, text, last_error, finished_at, tries, next_attempt_at) = match outcome {
            InboxOutcome::Applied { note } => {
                ("applied", note.as_deref(), None, Some(now), 0, None)
            }
            InboxOutcome::Ignored { reason } => {
                ("ignored", Some(reason.as_str()), None, Some(now), 0, None)
            }
            // Parking follows a failed attempt: it counts, like a retry's.
            InboxOutcome::Parked { error } => (
                "parked",
                Some(error.as_str()),
                Some(error.as_str()),
                Some(now),
                1,
                None,
            ),
            InboxOutcome::Retry {
                error,
                next_attempt_at,
            } => (
                "pending",
                None,
                Some(error.as_str()),
                None,
                1,
                Some(*next_attempt_at),
            ),
        };
        Self {
            id,
            state,
            outcome: text,
            last_error,
            finished_at,
            tries,
            next_attempt_at,
        }
    }
}

// ---- jobs --------------------------------------------------------------------------------

#[derive(FromRow)]
pub(crate) struct JobRow {
    id: String,
    pool_id: String,
    connection_id: String,
    kind: String,
    job_trigger: String,
    state: String,
    verdict: Option<String>,
    progress: Json<JobProgress>,
    counts: Json<BTreeMap<String, BTreeMap<String, u64>>>,
    error: Option<String>,
    error_code: Option<i64>,
    started_at: i64,
    finished_at: Option<i64>,
    instance: Option<String>,
}

impl TryFrom<JobRow> for SyncJob {
    type Error = StoreError;

    fn try_from(r: JobRow) -> StoreResult<Self> {
        Ok(Self {
            kind: parse_enum("job kind", &r.kind)?,
            trigger: parse_enum("job trigger", &r.job_trigger)?,
            state: parse_enum("job state", &r.state)?,
            verdict: r
                .verdict
                .as_deref()
                .map(|v| parse_enum("verdict", v))
                .transpose()?,
            id: JobId(r.id),
            pool_id: PoolId(r.pool_id),
            connection_id: ConnectionId(r.connection_id),
            progress: r.progress.0,
            counts: r.counts.0,
            error: r.error,
            error_code: r.error_code,
            started_at: r.started_at,
            finished_at: r.finished_at,
            instance: r.instance,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct ActionRow {
    job_id: String,
    seq: i64,
    action: String,
    kind: String,
    external_id: String,
    object_id: Option<String>,
    name: Option<String>,
    result: String,
    reason: Option<String>,
    at: i64,
}

impl TryFrom<ActionRow> for ActionLogEntry {
    type Error = StoreError;

    fn try_from(r: ActionRow) -> StoreResult<Self> {
        Ok(Self {
            action: SyncAction::parse(&r.action).ok_or_else(|| corrupt("action", &r.action))?,
            kind: object_kind(&r.kind)?,
            result: ActionResult::parse(&r.result)
                .ok_or_else(|| corrupt("action result", &r.result))?,
            job_id: JobId(r.job_id),
            seq: r.seq,
            external_id: r.external_id,
            object_id: r.object_id,
            name: r.name,
            reason: r.reason,
            at: r.at,
        })
    }
}

// ---- parked deletions --------------------------------------------------------------------

#[derive(FromRow)]
pub(crate) struct ParkedRow {
    id: i64,
    pool_id: String,
    connection_id: String,
    job_id: String,
    kind: String,
    object_id: String,
    external_id: String,
    name: Option<String>,
    reason: String,
    state: String,
    created_at: i64,
    last_parked_at: i64,
    resolved_at: Option<i64>,
    resolution: Option<String>,
}

impl TryFrom<ParkedRow> for ParkedDeletion {
    type Error = StoreError;

    fn try_from(r: ParkedRow) -> StoreResult<Self> {
        Ok(Self {
            kind: object_kind(&r.kind)?,
            state: ParkedState::parse(&r.state).ok_or_else(|| corrupt("parked state", &r.state))?,
            id: r.id,
            pool_id: PoolId(r.pool_id),
            connection_id: ConnectionId(r.connection_id),
            job_id: JobId(r.job_id),
            object_id: r.object_id,
            external_id: r.external_id,
            name: r.name,
            reason: r.reason,
            created_at: r.created_at,
            last_parked_at: r.last_parked_at,
            resolved_at: r.resolved_at,
            resolution: r.resolution,
        })
    }
}
