//! The PostgreSQL store: shared by any number of orgsync instances.
//!
//! Concurrency comes from the database: inbox events are claimed with `FOR UPDATE SKIP
//! LOCKED`, the job lease is one conditional upsert, and `apply` serialises a pool's writers on
//! its change-counter row so change numbers follow commit order.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use directory::ids::{Millis, PoolId};
use directory::model::ObjectKind;
use directory::store::{Backend, InsertOutcome, NewInboxEvent, StoreError, StoreResult};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Executor, Postgres, Transaction};

use crate::codec::{InboxFinish, RefRow, db_err};
use crate::downstream;
use crate::imp::impl_directory_store;
use crate::migrations::{self, Embedded};
use crate::prepare::FeedRowText;
use crate::sql;

/// Connections per instance.
pub const DEFAULT_POOL_SIZE: u32 = 16;

/// The whole group in one statement (a round trip per event would dominate group commit).
/// `WITH ORDINALITY … ORDER BY n` hands out ids in the callers' order; duplicates (already
/// stored, or repeated within the group) are skipped and looked up afterwards.
const INSERT_INBOX: &str = "INSERT INTO inbox (pool_id, connection_id, event_id, event_type, \
     created_at, received_at, payload, state, attempts, next_attempt_at) \
     SELECT pool_id, connection_id, event_id, event_type, created_at, received_at, payload, \
     'pending', 0, received_at \
     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[], \
     $7::text[]) WITH ORDINALITY \
     AS e(pool_id, connection_id, event_id, event_type, created_at, received_at, payload, n) \
     ORDER BY n \
     ON CONFLICT (connection_id, event_id) DO NOTHING \
     RETURNING id, connection_id, event_id";
const INBOX_IDS: &str = "SELECT i.id, i.connection_id, i.event_id FROM inbox i \
     JOIN UNNEST($1::text[], $2::text[]) AS k(connection_id, event_id) \
     ON i.connection_id = k.connection_id AND i.event_id = k.event_id";
/// Finishes many events in one statement: their columns as arrays, each row joined to its inbox
/// row through the primary key.
const FINISH_INBOX_ROWS: &str = concat!(
    "UPDATE inbox ",
    sql::finish_inbox_set!(),
    " FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[], \
     $7::int8[]) AS v (id, state, outcome, last_error, finished_at, tries, next_attempt_at)",
    sql::finish_inbox_where!()
);

/// Through `external_refs_by_object_whole`, which holds every column read.
const REFS_OF_OBJECTS: &str = concat!(downstream::refs_of_objects!(), "= ANY($2)");

/// Feed rows from arrays, numbered from `$2` in the arrays' order.
const INSERT_FEED_ROWS: &str = "INSERT INTO feed_events (pool_id, seq, type, object_id, source, at, data, change_seq, \
     external_ids) \
     SELECT $1, $2 + n - 1, type, object_id, CAST(source AS json), $3, CAST(data AS json), \
     change_seq, CAST(external_ids AS json) \
     FROM UNNEST($4::text[], $5::text[], $6::text[], $7::text[], $8::int8[], $9::text[]) \
     WITH ORDINALITY AS f(type, object_id, source, data, change_seq, external_ids, n)";

/// The migrations, embedded at compile time: (version, description, SQL).
pub(crate) const MIGRATIONS: [Embedded; 15] = [
    (
        1,
        "init",
        include_str!("../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "lookups",
        include_str!("../migrations/postgres/0002_lookups.sql"),
    ),
    (
        3,
        "parked once",
        include_str!("../migrations/postgres/0003_parked_once.sql"),
    ),
    (
        4,
        "job instances",
        include_str!("../migrations/postgres/0004_job_instances.sql"),
    ),
    (
        5,
        "inbox without tokens",
        include_str!("../migrations/postgres/0005_inbox_without_tokens.sql"),
    ),
    (
        6,
        "pool deletion",
        include_str!("../migrations/postgres/0006_pool_deletion.sql"),
    ),
    (
        7,
        "event leases",
        include_str!("../migrations/postgres/0007_event_leases.sql"),
    ),
    (
        8,
        "read model",
        include_str!("../migrations/postgres/0008_read_model.sql"),
    ),
    (
        9,
        "group member order",
        include_str!("../migrations/postgres/0009_group_member_order.sql"),
    ),
    (
        10,
        "downstream: feed, credentials, webhooks",
        include_str!("../migrations/postgres/0010_downstream.sql"),
    ),
    (
        11,
        "the feed without a foreign key",
        include_str!("../migrations/postgres/0011_feed_without_foreign_key.sql"),
    ),
    (
        12,
        "feed objects from the change log",
        include_str!("../migrations/postgres/0012_feed_objects_from_the_change_log.sql"),
    ),
    (
        13,
        "feed rows clustered",
        include_str!("../migrations/postgres/0013_feed_rows_clustered.sql"),
    ),
    (
        14,
        "the LDAP view",
        include_str!("../migrations/postgres/0014_ldap.sql"),
    ),
    (
        15,
        "user id logins",
        include_str!("../migrations/postgres/0015_user_id_logins.sql"),
    ),
];

/// Every migration below `version` (all of them for `i64::MAX`).
pub(crate) fn migrator_below(version: i64) -> Migrator {
    // sqlx's migrator holds a PostgreSQL advisory lock while it runs, so instances starting
    // together migrate one after the other.
    migrations::migrator_below(&MIGRATIONS, version)
}

fn migrator() -> Migrator {
    migrator_below(i64::MAX)
}

/// The PostgreSQL implementation of [`DirectoryStore`](directory::store::DirectoryStore).
/// Cheap to clone (the pool is shared).
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    /// A few connections for reads made while a write transaction of `pool` is open
    /// ([`PgStore::beside_writer`]): apart from `pool`, so that such a read never waits for
    /// a connection held by a writer that is itself waiting.
    beside: PgPool,
    /// Connections that keep the plans of the few fixed, small statements a look-up makes
    /// ([`PgStore::point_reads`]).
    point: PgPool,
    /// [`DirectoryStore::write_epoch`], shared by the clones.
    epoch: Arc<AtomicU64>,
}

/// Connections of [`PgStore`]'s `beside` pool: one apply at a time per pool reads beside its
/// writer, and few pools apply at once.
const BESIDE_POOL_SIZE: u32 = 2;

/// How long a connection of [`PgStore`]'s `point` pool lives: its cached plans are made
/// again at least this often, whatever the tables grew to since.
const POINT_LIFETIME: Duration = Duration::from_secs(60);

impl PgStore {
    /// Connects (`postgres://user:password@host:port/database?…`) with a pool of
    /// [`DEFAULT_POOL_SIZE`] and applies the migrations.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url).map_err(db_err)?;
        Self::connect_with(options, DEFAULT_POOL_SIZE).await
    }

    /// Like [`PgStore::connect`], with explicit options (e.g. a `search_path`) and pool size.
    pub async fn connect_with(options: PgConnectOptions, pool_size: u32) -> StoreResult<Self> {
        let pool = Self::pool_options(pool_size)
            .connect_with(options.clone())
            .await
            .map_err(db_err)?;
        migrator()
            .run(&pool)
            .await
            .map_err(|e| StoreError::Database(format!("migrating: {e}")))?;
        let beside = Self::pool_options(BESIDE_POOL_SIZE)
            .min_connections(0)
            .idle_timeout(Duration::from_secs(60))
            .connect_lazy_with(options.clone());
        // Planning, not running, is most of what a look-up by login or id costs PostgreSQL
        // (0.4–0.9 ms to plan the logins statement, 0.1 ms to run it): these connections
        // keep the generic plan PostgreSQL settles on after five runs of a statement.
        let point = PgPoolOptions::new()
            .max_connections((pool_size / 2).clamp(2, 8))
            .min_connections(0)
            .max_lifetime(POINT_LIFETIME)
            .idle_timeout(Duration::from_secs(60))
            .after_connect(|conn, _| {
                Box::pin(
                    async move { conn.execute("SET plan_cache_mode = auto").await.map(|_| ()) },
                )
            })
            .connect_lazy_with(options);
        Ok(Self {
            pool,
            beside,
            point,
            epoch: Arc::default(),
        })
    }

    fn pool_options(size: u32) -> PgPoolOptions {
        PgPoolOptions::new()
            .max_connections(size)
            // Plan every execution with its parameters. A cached generic plan of the bulk
            // statements (`id IN ($2, …, $501)`), made while a table was still small, keeps
            // a sequential scan as the table grows during an import: 500 comparisons per row,
            // ~0.4 s per statement at 20k users. Custom plans see the table's real size.
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("SET plan_cache_mode = force_custom_plan")
                        .await
                        .map(|_| ())
                })
            })
    }

    /// Closes the pools (waits for connections in use to come back).
    pub async fn close(&self) {
        self.point.close().await;
        self.beside.close().await;
        self.pool.close().await;
    }

    // ---- the hooks of `impl_directory_store!` ----

    const BACKEND: Backend = Backend::Postgres;

    /// [`INSERT_INBOX`] takes a whole group.
    const INBOX_INSERT_ONE_STATEMENT: usize = usize::MAX;

    fn epoch(&self) -> &AtomicU64 {
        &self.epoch
    }

    /// Reads by key of a few fixed, small statements (`id IN` at most a handful of ids):
    /// their plans are cached, unlike the bulk statements' on `pool` (`pool_options`).
    fn point_reads(&self) -> &PgPool {
        &self.point
    }

    fn reads(&self) -> &PgPool {
        &self.pool
    }

    fn writes(&self) -> &PgPool {
        &self.pool
    }

    /// Under `READ COMMITTED` a statement sees what committed before it began, in the write
    /// transaction or on another connection alike; what is read beside (the Feishu ids) is
    /// read before the transaction writes any, so both see the same. Its own pool: `pool`'s
    /// connections may all be held by writers.
    fn beside_writer(&self) -> Option<PgPool> {
        Some(self.beside.clone())
    }

    /// One snapshot for the several statements of a read (object + its child rows).
    async fn begin_read(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.pool.begin().await
    }

    async fn insert_inbox_rows(
        conn: &mut PgConnection,
        events: &[NewInboxEvent],
    ) -> StoreResult<Vec<InsertOutcome>> {
        let column = |f: fn(&NewInboxEvent) -> &str| events.iter().map(f).collect::<Vec<_>>();
        let connections = column(|e| e.connection_id.as_str());
        let event_ids = column(|e| e.event_id.as_str());
        let inserted: Vec<(i64, String, String)> = sqlx::query_as(INSERT_INBOX)
            .bind(column(|e| e.pool_id.as_str()))
            .bind(&connections)
            .bind(&event_ids)
            .bind(column(|e| e.event_type.as_str()))
            .bind(events.iter().map(|e| e.created_at).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.received_at).collect::<Vec<_>>())
            .bind(column(|e| e.payload.as_str()))
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
        let mut fresh: HashMap<(String, String), i64> = inserted
            .into_iter()
            .map(|(id, c, e)| ((c, e), id))
            .collect();
        let existing: HashMap<(String, String), i64> = if fresh.len() == events.len() {
            HashMap::new()
        } else {
            let rows: Vec<(i64, String, String)> = sqlx::query_as(INBOX_IDS)
                .bind(&connections)
                .bind(&event_ids)
                .fetch_all(&mut *conn)
                .await
                .map_err(db_err)?;
            rows.into_iter().map(|(id, c, e)| ((c, e), id)).collect()
        };
        events
            .iter()
            .map(|e| {
                let key = (e.connection_id.0.clone(), e.event_id.clone());
                // The first occurrence of a new event is the insert; any later one a duplicate.
                if let Some(id) = fresh.remove(&key) {
                    return Ok(InsertOutcome::Inserted(id));
                }
                existing
                    .get(&key)
                    .map(|id| InsertOutcome::Duplicate(*id))
                    .ok_or_else(|| {
                        StoreError::Database(format!(
                            "inbox event {} of connection {} was neither inserted nor found",
                            e.event_id, e.connection_id
                        ))
                    })
            })
            .collect()
    }

    /// The Feishu ids of some objects, the ids bound as one array.
    async fn refs_of_objects(
        conn: &mut PgConnection,
        kind: ObjectKind,
        ids: &[String],
    ) -> StoreResult<Vec<RefRow>> {
        sqlx::query_as(REFS_OF_OBJECTS)
            .bind(kind.as_str())
            .bind(ids)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)
    }

    /// Feed rows numbered from `first`, in one statement whatever their number: the columns
    /// as arrays. A `VALUES` list binds nine parameters a row, and PostgreSQL's parse and
    /// bind of those cost more than the insert (docs/change-feed.md, "What the feed costs").
    /// The JSON arrives as text and is cast to `json`, which checks it and keeps it as is.
    async fn insert_feed_rows(
        conn: &mut PgConnection,
        pool: &PoolId,
        first: i64,
        rows: &[FeedRowText],
        now: Millis,
    ) -> StoreResult<()> {
        let text = |f: fn(&FeedRowText) -> Option<&str>| rows.iter().map(f).collect::<Vec<_>>();
        sqlx::query(INSERT_FEED_ROWS)
            .bind(pool.as_str())
            .bind(first)
            .bind(now)
            .bind(text(|r| Some(r.event_type.as_str())))
            .bind(text(|r| r.object_id.as_deref()))
            .bind(text(|r| Some(r.source.as_str())))
            .bind(text(|r| Some(r.data.as_str())))
            .bind(rows.iter().map(|r| r.change_seq).collect::<Vec<_>>())
            .bind(text(|r| r.external_ids.as_deref()))
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn finish_inbox_rows(
        conn: &mut PgConnection,
        rows: &[InboxFinish<'_>],
    ) -> StoreResult<Vec<i64>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        sqlx::query_scalar(FINISH_INBOX_ROWS)
            .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.state).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.outcome).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.last_error).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.finished_at).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.tries).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.next_attempt_at).collect::<Vec<_>>())
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)
    }

    /// The directory's tables, sampled again (a few hundred milliseconds at 100,000 users).
    const REFRESH_STATISTICS: &[&str] = &[
        "ANALYZE users, user_departments, departments, department_leaders, user_groups, \
         group_members, external_refs, subtree_members, department_stats, changes",
    ];

    /// No tables of its own beside `sql::DELETE_POOL`'s.
    const DELETE_POOL_OWN: &[&str] = &[];

    /// PostgreSQL searches `users.search_text` through its own trigram index (`pg_trgm`,
    /// docs/read-model.md): nothing to keep beside the row.
    async fn index_search_text(
        _conn: &mut PgConnection,
        _pool: &PoolId,
        _texts: &[(String, String)],
    ) -> StoreResult<()> {
        Ok(())
    }
}

impl_directory_store!(PgStore, Postgres);
