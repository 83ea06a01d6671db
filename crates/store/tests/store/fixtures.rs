//! Stores to run the stories on, and builders for the objects they write.

use std::collections::BTreeMap;
use std::sync::Arc;

use directory::ids::{ConnectionId, DepartmentId, GroupId, JobId, Millis, PoolId, UserId};
use directory::model::{
    ActionLogEntry, ActionResult, Connection, ConnectionSettings, Department, ExternalRef, Group,
    GroupKind, GroupMember, JobKind, JobProgress, JobState, JobTrigger, Leader, LeaderKind,
    Membership, ObjectKind, ParkedDeletion, ParkedState, Provider, SyncAction, SyncJob, User,
    UserPool, UserProfile, UserStatus,
};
use directory::secrets::SealedSecret;
use directory::store::{
    ApplyBatch, ChangeKind, ChangeSource, DirectoryStore, NewInboxEvent, Watermark, Write,
};
use store::{PgStore, SqliteStore};
use tempfile::TempDir;

pub type Store = Arc<dyn DirectoryStore>;

/// Where a SQLite story's database lives; raw access for the stories that damage rows.
pub enum Raw {
    Sqlite(std::path::PathBuf),
    Postgres(Box<sqlx::postgres::PgConnectOptions>),
}

/// A SQLite store on a real file (WAL, `synchronous=FULL`, as in production), and the
/// directory holding it (dropped after the story).
pub async fn sqlite() -> (Store, TempDir, Raw) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("orgsync.db");
    let store = SqliteStore::open(&path).await.unwrap();
    (Arc::new(store), dir, Raw::Sqlite(path))
}

/// A PostgreSQL store on a fresh schema, or `None` without `ORGSYNC_TEST_POSTGRES_URL`.
pub async fn postgres() -> Option<(Store, Raw)> {
    let (store, options): (PgStore, _) = store::pg_test_store_with_options().await?;
    Some((Arc::new(store), Raw::Postgres(Box::new(options))))
}

/// Runs one statement under the store (to damage data on purpose).
pub async fn raw_execute(raw: &Raw, statement: &'static str) {
    use sqlx::{ConnectOptions, Executor};
    match raw {
        Raw::Sqlite(path) => {
            let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(path)
                .connect()
                .await
                .unwrap();
            conn.execute(statement).await.unwrap();
        }
        Raw::Postgres(options) => {
            let mut conn = options.connect().await.unwrap();
            conn.execute(statement).await.unwrap();
        }
    }
}

/// Runs one statement under the store built at run time; the database's error as text.
pub async fn raw_try(raw: &Raw, statement: String) -> Result<(), String> {
    use sqlx::{AssertSqlSafe, ConnectOptions, Executor};
    let result = match raw {
        Raw::Sqlite(path) => {
            let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(path)
                .connect()
                .await
                .unwrap();
            conn.execute(AssertSqlSafe(statement)).await.map(|_| ())
        }
        Raw::Postgres(options) => {
            let mut conn = options.connect().await.unwrap();
            conn.execute(AssertSqlSafe(statement)).await.map(|_| ())
        }
    };
    result.map_err(|e| e.to_string())
}

// ---- pools and connections ---------------------------------------------------------------

pub async fn new_pool(store: &Store) -> PoolId {
    let pool = UserPool {
        id: PoolId::generate(),
        name: "Acme".into(),
        created_at: 1_000,
    };
    store.create_pool(&pool).await.unwrap();
    pool.id
}

pub fn connection(pool: &PoolId, identifier: &str) -> Connection {
    Connection {
        id: ConnectionId::generate(),
        pool_id: pool.clone(),
        identifier: identifier.into(),
        display_name: format!("Feishu {identifier}"),
        provider: Provider::Feishu,
        base_url: None,
        app_id: "cli_a1b2c3".into(),
        app_secret: SealedSecret("v1:c2VjcmV0".into()),
        encrypt_key: Some(SealedSecret("v1:ZW5jcnlwdA==".into())),
        verification_token: None,
        settings: ConnectionSettings::default(),
        created_at: 2_000,
        updated_at: 2_000,
    }
}

pub async fn new_connection(store: &Store, pool: &PoolId, identifier: &str) -> Connection {
    let c = connection(pool, identifier);
    store.create_connection(&c).await.unwrap();
    c
}

// ---- directory objects -------------------------------------------------------------------

pub fn user(pool: &PoolId, n: usize) -> User {
    User {
        id: UserId::generate(),
        pool_id: pool.clone(),
        profile: UserProfile {
            name: Some(format!("User {n}")),
            en_name: Some(format!("User Number {n}")),
            email: Some(format!("user{n}@example.com")),
            mobile: Some(format!("+8613800{n:06}")),
            employee_no: Some(format!("E{n:06}")),
            job_title: Some("Engineer".into()),
            custom_attrs: Some(serde_json::json!([{"id": "C-1", "value": {"text": "x"}}])),
            ..UserProfile::default()
        }
        .into(),
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

pub fn membership(department: &DepartmentId, primary: bool) -> Membership {
    Membership {
        department_id: department.clone(),
        user_order: Some(10),
        department_order: None,
        primary,
    }
}

pub fn department(pool: &PoolId, name: &str, parent: Option<&DepartmentId>) -> Department {
    Department {
        id: DepartmentId::generate(),
        pool_id: pool.clone(),
        name: Some(name.into()),
        i18n_name: None,
        parent_id: parent.cloned(),
        order: Some(3),
        leaders: Vec::new(),
        chat_id: None,
        version: 0,
        created_at: 0,
        updated_at: 0,
        deleted_at: None,
    }
}

pub fn leader(user: &UserId, kind: LeaderKind) -> Leader {
    Leader {
        user_id: user.clone(),
        kind,
    }
}

pub fn group(pool: &PoolId, name: &str, members: Vec<GroupMember>) -> Group {
    let mut members = members;
    members.sort();
    members.dedup();
    Group {
        id: GroupId::generate(),
        pool_id: pool.clone(),
        name: Some(name.into()),
        description: Some("a group".into()),
        kind: GroupKind::Normal,
        members,
        version: 0,
        created_at: 0,
        updated_at: 0,
        deleted_at: None,
    }
}

pub fn put_user(user: &User, change: ChangeKind) -> Write {
    Write::PutUser {
        user: user.clone(),
        change,
        expected_version: None,
    }
}

pub fn put_department(department: &Department, change: ChangeKind) -> Write {
    Write::PutDepartment {
        department: department.clone(),
        change,
        expected_version: None,
    }
}

pub fn put_group(group: &Group, change: ChangeKind) -> Write {
    Write::PutGroup {
        group: group.clone(),
        change,
        expected_version: None,
    }
}

pub fn external(
    connection: &ConnectionId,
    kind: ObjectKind,
    external_id: &str,
    object_id: &str,
) -> ExternalRef {
    ExternalRef {
        connection_id: connection.clone(),
        kind,
        external_id: external_id.into(),
        union_id: (kind == ObjectKind::User).then(|| format!("on_{external_id}")),
        custom_id: Some(format!("custom-{external_id}")),
        object_id: object_id.into(),
    }
}

pub fn watermark(
    connection: &ConnectionId,
    key: &str,
    event_time: Millis,
    deleted: bool,
) -> Watermark {
    Watermark {
        connection_id: connection.clone(),
        object_key: key.into(),
        event_time,
        deleted,
    }
}

pub fn batch(pool: &PoolId, writes: Vec<Write>) -> ApplyBatch {
    ApplyBatch {
        pool_id: pool.clone(),
        source: ChangeSource::Admin,
        writes,
        watermarks: Vec::new(),
        later_sources: Vec::new(),
        inbox: Vec::new(),
        quiet: false,
        as_read: Default::default(),
    }
}

// ---- inbox, jobs, parked -----------------------------------------------------------------

pub fn event(c: &Connection, event_id: &str, created_at: Option<Millis>) -> NewInboxEvent {
    NewInboxEvent {
        pool_id: c.pool_id.clone(),
        connection_id: c.id.clone(),
        event_id: event_id.into(),
        event_type: "contact.user.updated_v3".into(),
        created_at,
        received_at: 1_000,
        payload: format!(r#"{{"header":{{"event_id":"{event_id}"}}}}"#),
    }
}

pub fn job(c: &Connection, started_at: Millis) -> SyncJob {
    SyncJob {
        id: JobId::generate(),
        pool_id: c.pool_id.clone(),
        connection_id: c.id.clone(),
        kind: JobKind::Import,
        trigger: JobTrigger::Admin,
        state: JobState::Running,
        verdict: None,
        progress: JobProgress {
            phase: "users".into(),
            pages: 3,
            ..JobProgress::default()
        },
        counts: BTreeMap::new(),
        error: None,
        error_code: None,
        started_at,
        finished_at: None,
        instance: Some("instance-a".into()),
    }
}

pub fn action(job: &JobId, action: SyncAction, result: ActionResult, n: usize) -> ActionLogEntry {
    ActionLogEntry {
        job_id: job.clone(),
        seq: 0,
        action,
        kind: ObjectKind::User,
        external_id: format!("ou_{n}"),
        object_id: None,
        name: Some(format!("User {n}")),
        result,
        reason: (result != ActionResult::Applied).then(|| "why not".to_owned()),
        at: 5_000 + n as i64,
    }
}

pub fn parked(c: &Connection, job: &JobId, n: usize) -> ParkedDeletion {
    ParkedDeletion {
        id: 0,
        pool_id: c.pool_id.clone(),
        connection_id: c.id.clone(),
        job_id: job.clone(),
        kind: ObjectKind::User,
        object_id: UserId::generate().0,
        external_id: format!("ou_{n}"),
        name: Some(format!("User {n}")),
        reason: "above the deletion threshold".into(),
        state: ParkedState::Pending,
        created_at: 7_000,
        last_parked_at: 7_000,
        resolved_at: None,
        resolution: None,
    }
}

/// Rows per table of the whole schema (sqlx's own bookkeeping left out), read under the
/// store: what the pool-deletion story compares before and after.
pub async fn raw_table_counts(raw: &Raw) -> BTreeMap<String, i64> {
    use sqlx::{AssertSqlSafe, ConnectOptions};
    let mut out = BTreeMap::new();
    match raw {
        Raw::Sqlite(path) => {
            let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(path)
                .connect()
                .await
                .unwrap();
            // The text index's own tables (`user_search_data`, `_idx`, `_config`, …) hold
            // FTS5's structures, not a row per object: its rows per user are counted through
            // the virtual table itself.
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite%' AND name NOT LIKE '_sqlx%' \
                 AND (name NOT LIKE 'user\\_search\\_%' ESCAPE '\\' OR name = 'user_search_keys')",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap();
            for table in tables {
                // Names from the catalog: letters and underscores.
                let n: i64 =
                    sqlx::query_scalar(AssertSqlSafe(format!("SELECT COUNT(*) FROM \"{table}\"")))
                        .fetch_one(&mut conn)
                        .await
                        .unwrap();
                out.insert(table, n);
            }
        }
        Raw::Postgres(options) => {
            let mut conn = options.connect().await.unwrap();
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
                 AND table_name NOT LIKE '\\_sqlx%'",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap();
            for table in tables {
                let n: i64 =
                    sqlx::query_scalar(AssertSqlSafe(format!("SELECT COUNT(*) FROM \"{table}\"")))
                        .fetch_one(&mut conn)
                        .await
                        .unwrap();
                out.insert(table, n);
            }
        }
    }
    out
}

// ---- downstream ----------------------------------------------------------------------------

/// A live credential of the pool with every scope; its hash is a placeholder (the store
/// compares nothing).
pub fn credential(pool: &PoolId, name: &str) -> directory::store::StoredCredential {
    use directory::credentials::{Scope, ServiceCredential};
    directory::store::StoredCredential {
        credential: ServiceCredential {
            id: format!("{:024x}", rand_id()),
            pool_id: pool.clone(),
            name: name.to_owned(),
            scopes: Scope::ALL.to_vec(),
            created_at: 1_000,
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
        },
        secret_hash: "00".repeat(32),
    }
}

fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// An enabled endpoint of the pool receiving every type (its secret a placeholder).
pub fn webhook(pool: &PoolId) -> directory::webhooks::WebhookEndpoint {
    directory::webhooks::WebhookEndpoint {
        id: format!("{:024x}", rand_id()),
        pool_id: pool.clone(),
        url: "https://hooks.example.com/orgsync".into(),
        description: "HR".into(),
        types: Vec::new(),
        secret: SealedSecret("v1:sealed".into()),
        previous_secret: None,
        previous_until: None,
        state: directory::webhooks::WebhookState::Enabled,
        disabled_reason: None,
        cursor: 0,
        failures: 0,
        next_attempt_at: 1_000,
        created_at: 1_000,
        updated_at: 1_000,
    }
}

/// A failed first attempt of feed event `seq` to `endpoint`.
pub fn attempt(
    endpoint: &directory::webhooks::WebhookEndpoint,
    seq: i64,
) -> directory::webhooks::WebhookAttempt {
    directory::webhooks::WebhookAttempt {
        id: 0,
        endpoint_id: endpoint.id.clone(),
        seq,
        event_id: format!("evt_{}_{seq}", endpoint.pool_id),
        event_type: "user.updated".into(),
        attempt: 1,
        at: 2_000,
        status: Some(500),
        error: Some("answered 500".into()),
        latency_ms: 3,
        response: Some("oops".into()),
    }
}
