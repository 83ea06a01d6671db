//! The SQLite store: the embedded default (one orgsync instance).
//!
//! Two pools over one WAL database: a single writer connection, so writers queue in-process
//! instead of spinning on SQLite's busy handler, and a few reader connections, which WAL lets
//! read while the writer commits. Every write transaction is `BEGIN IMMEDIATE` (takes the write
//! lock up front, so it never fails half-way on a lock upgrade), and `synchronous=FULL` makes a
//! commit durable before it returns — the inbox answers Feishu 200 only after that.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use directory::ids::{Millis, PoolId};
use directory::model::ObjectKind;
use directory::store::{Backend, InsertOutcome, NewInboxEvent, StoreError, StoreResult};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite, Transaction};

use crate::codec::{CHUNK, InboxFinish, RefRow, db_err};
use crate::downstream;
use crate::imp::impl_directory_store;
use crate::migrations::{self, Embedded};
use crate::prepare::FeedRowText;
use crate::sql;

/// Reader connections; WAL readers do not block each other or the writer.
const READERS: u32 = 8;

/// Rows a reader's thread may hand over before the request takes them: a whole page (at most
/// 500 items, and the one that says there is more) without the thread stopping to wait for
/// the request to catch up (sqlx's default is 50).
const READER_ROW_BUFFER: usize = 512;

/// The most rows one inbox insert takes. A group commit of up to this many events is one
/// statement of exactly its size (one round trip to SQLite's thread; with one request per
/// Feishu connection in flight, a group is rarely larger), a larger group several; the
/// statements for 1..=64 rows are built once and stay prepared ([`WRITER_STATEMENT_CACHE`]).
const INSERT_ROWS_MAX: usize = 64;

/// Prepared statements the writer connection keeps: the write path's own and the inbox
/// inserts of every size.
const WRITER_STATEMENT_CACHE: usize = 512;

/// `INSERT … VALUES (…), (…) …` for `rows` events, skipping those whose (connection, event id)
/// is already there; returns the new rows' ids with their keys.
fn insert_inbox_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO inbox (pool_id, connection_id, event_id, event_type, created_at, \
         received_at, payload, state, attempts, next_attempt_at) VALUES ",
    );
    for row in 0..rows {
        let p = row * 7;
        if row > 0 {
            sql.push(',');
        }
        sql.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${}, ${}, ${}, 'pending', 0, ${})",
            p + 1,
            p + 2,
            p + 3,
            p + 4,
            p + 5,
            p + 6,
            p + 7,
            p + 6
        ));
    }
    sql.push_str(
        " ON CONFLICT (connection_id, event_id) DO NOTHING RETURNING id, connection_id, event_id",
    );
    sql
}

/// The statements for 1..=[`INSERT_ROWS_MAX`] rows (index `rows - 1`), built once.
static INSERT_INBOX: std::sync::LazyLock<Vec<String>> =
    std::sync::LazyLock::new(|| (1..=INSERT_ROWS_MAX).map(insert_inbox_sql).collect());
const INBOX_ID: &str = "SELECT id FROM inbox WHERE connection_id = $1 AND event_id = $2";
/// Finishes many events: the rows as a `VALUES` list named `v` (SQLite ≥ 3.33 for `UPDATE …
/// FROM`), each joined to its inbox row through the primary key.
const FINISH_INBOX_ROWS: &str = "WITH v (id, state, outcome, last_error, finished_at, tries, \
     next_attempt_at) AS (";
const FINISH_INBOX_ROWS_TAIL: &str = concat!(
    ") UPDATE inbox ",
    sql::finish_inbox_set!(),
    " FROM v",
    sql::finish_inbox_where!()
);

/// The writer's page cache, in KiB (SQLite's default is 2 MiB a connection). Every batch reads
/// the rows it is about to change and the pages of their indexes; in a cache this small the
/// batch's own writes evict them, and each read goes back to the file.
const WRITER_CACHE_KIB: u32 = 65_536;

/// Through `external_refs_by_object_whole`, which holds every column read.
const REFS_OF_OBJECTS: &str = concat!(
    downstream::refs_of_objects!(),
    "IN (SELECT value FROM json_each($2))"
);

/// How often the checkpointer copies the WAL into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// The writer's own checkpoint after a commit, at this many WAL pages (64 MiB; SQLite's
/// default is 4 MiB). The checkpointer has copied all but the last [`CHECKPOINT_EVERY`] of
/// them by then, so this one is short, and it lets the next transaction start the WAL over.
const WAL_AUTOCHECKPOINT_PAGES: u32 = 16_384;

/// Copies committed WAL frames into the database file off the writer's path (PASSIVE: it
/// never blocks the writer or a reader; frames a reader still needs wait for the next round).
/// Under a steady stream of commits a PASSIVE round never reaches the WAL's end, and SQLite
/// starts the WAL over only once everything is copied: that is left to the writer's own
/// checkpoint at [`WAL_AUTOCHECKPOINT_PAGES`], which then copies only the frames of the last
/// [`CHECKPOINT_EVERY`] (a RESTART from here would hold the writer while it waits, worse for
/// the events' latency). Runs until the last clone of the store is dropped or it is closed.
async fn checkpoint_loop(pool: SqlitePool, store: std::sync::Weak<()>) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if store.strong_count() == 0 || pool.is_closed() {
            break;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            if pool.is_closed() {
                break;
            }
            // The writer's own checkpoint keeps the WAL bounded meanwhile.
            tracing::warn!(error = %e, "SQLite checkpoint failed; retrying");
        }
    }
    pool.close().await;
}

/// A missing directory is created 0700 (the database holds names, e-mails and mobiles).
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// A missing database file is created 0600 before SQLite opens it, whatever the umask: SQLite
/// gives the `-wal` and `-shm` files it creates (and re-creates) the database file's mode.
fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// The migrations, embedded at compile time: (version, description, SQL).
pub(crate) const MIGRATIONS: [Embedded; 15] = [
    (
        1,
        "init",
        include_str!("../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "lookups",
        include_str!("../migrations/sqlite/0002_lookups.sql"),
    ),
    (
        3,
        "parked once",
        include_str!("../migrations/sqlite/0003_parked_once.sql"),
    ),
    (
        4,
        "job instances",
        include_str!("../migrations/sqlite/0004_job_instances.sql"),
    ),
    (
        5,
        "inbox without tokens",
        include_str!("../migrations/sqlite/0005_inbox_without_tokens.sql"),
    ),
    (
        6,
        "pool deletion",
        include_str!("../migrations/sqlite/0006_pool_deletion.sql"),
    ),
    (
        7,
        "event leases",
        include_str!("../migrations/sqlite/0007_event_leases.sql"),
    ),
    (
        8,
        "read model",
        include_str!("../migrations/sqlite/0008_read_model.sql"),
    ),
    (
        9,
        "group member order",
        include_str!("../migrations/sqlite/0009_group_member_order.sql"),
    ),
    (
        10,
        "downstream: feed, credentials, webhooks",
        include_str!("../migrations/sqlite/0010_downstream.sql"),
    ),
    (
        11,
        "the feed without a foreign key",
        include_str!("../migrations/sqlite/0011_feed_without_foreign_key.sql"),
    ),
    (
        12,
        "feed objects from the change log",
        include_str!("../migrations/sqlite/0012_feed_objects_from_the_change_log.sql"),
    ),
    (
        13,
        "feed rows clustered",
        include_str!("../migrations/sqlite/0013_feed_rows_clustered.sql"),
    ),
    (
        14,
        "the LDAP view",
        include_str!("../migrations/sqlite/0014_ldap.sql"),
    ),
    (
        15,
        "user id logins",
        include_str!("../migrations/sqlite/0015_user_id_logins.sql"),
    ),
];

/// Every migration below `version` (all of them for `i64::MAX`).
pub(crate) fn migrator_below(version: i64) -> Migrator {
    migrations::migrator_below(&MIGRATIONS, version)
}

fn migrator() -> Migrator {
    migrator_below(i64::MAX)
}

/// The SQLite implementation of [`DirectoryStore`](directory::store::DirectoryStore). Cheap to
/// clone (the pools are shared).
#[derive(Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// Keeps the directory of [`SqliteStore::open_in_memory`] alive as long as the store.
    _scratch: Option<Arc<tempfile::TempDir>>,
    /// The checkpointer's connection ([`checkpoint_loop`]).
    checkpoints: SqlitePool,
    /// The checkpointer task runs while a clone of the store holds this.
    _checkpointer: Arc<()>,
    /// [`DirectoryStore::write_epoch`], shared by the clones.
    epoch: Arc<AtomicU64>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.writer.connect_options().get_filename())
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating it and its directory if needed) the database at `path` and applies the
    /// migrations.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        Self::open_with(path, SqliteSynchronous::Full, None).await
    }

    /// A private database for tests: a file in a temporary directory removed when the last
    /// clone of the store is dropped. A real file rather than `:memory:` so the writer and
    /// the readers share it exactly as in production; `synchronous=OFF` because nothing
    /// about a throwaway database needs to survive a crash.
    pub async fn open_in_memory() -> StoreResult<Self> {
        let dir = tempfile::Builder::new()
            .prefix("orgsync-store-")
            .tempdir()
            .map_err(|e| {
                StoreError::Database(format!("cannot create a temporary directory: {e}"))
            })?;
        let path = dir.path().join("orgsync.db");
        Self::open_with(&path, SqliteSynchronous::Off, Some(Arc::new(dir))).await
    }

    async fn open_with(
        path: &Path,
        synchronous: SqliteSynchronous,
        scratch: Option<Arc<tempfile::TempDir>>,
    ) -> StoreResult<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_private_dir(parent).map_err(|e| {
                StoreError::Database(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        create_private_file(path)
            .map_err(|e| StoreError::Database(format!("cannot create {}: {e}", path.display())))?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .foreign_keys(true)
            .pragma("temp_store", "memory")
            .busy_timeout(Duration::from_secs(5));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                options
                    .clone()
                    .statement_cache_capacity(WRITER_STATEMENT_CACHE)
                    .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES.to_string())
                    .pragma("cache_size", format!("-{WRITER_CACHE_KIB}")),
            )
            .await
            .map_err(db_err)?;
        migrator()
            .run(&writer)
            .await
            .map_err(|e| StoreError::Database(format!("migrating {}: {e}", path.display())))?;
        // A migration that rewrites rows (0005 removes Verification Tokens) leaves the old
        // versions in the WAL until it is overwritten: empty it now, while nothing else runs.
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&writer)
            .await
            .map_err(db_err)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(options.clone().row_buffer_size(READER_ROW_BUFFER))
            .await
            .map_err(db_err)?;
        let checkpoints = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(db_err)?;
        let running = Arc::new(());
        tokio::spawn(checkpoint_loop(
            checkpoints.clone(),
            Arc::downgrade(&running),
        ));
        Ok(Self {
            writer,
            reader,
            _scratch: scratch,
            checkpoints,
            _checkpointer: running,
            epoch: Arc::default(),
        })
    }

    /// Closes both pools (waits for connections in use to come back).
    pub async fn close(&self) {
        self.checkpoints.close().await;
        self.reader.close().await;
        self.writer.close().await;
    }

    // ---- the hooks of `impl_directory_store!` ----

    const BACKEND: Backend = Backend::Sqlite;

    const INBOX_INSERT_ONE_STATEMENT: usize = INSERT_ROWS_MAX;

    fn epoch(&self) -> &AtomicU64 {
        &self.epoch
    }

    fn point_reads(&self) -> &SqlitePool {
        &self.reader
    }

    fn reads(&self) -> &SqlitePool {
        &self.reader
    }

    fn writes(&self) -> &SqlitePool {
        &self.writer
    }

    /// WAL readers never wait on the writer, and while a write transaction is open no other
    /// can commit: a reader started inside one sees exactly what it saw before writing.
    fn beside_writer(&self) -> Option<SqlitePool> {
        Some(self.reader.clone())
    }

    /// A deferred transaction: its snapshot starts with the first read and stays.
    async fn begin_read(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        self.reader.begin().await
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        self.writer.begin_with("BEGIN IMMEDIATE").await
    }

    /// One multi-row insert per [`INSERT_ROWS_MAX`] events (one statement, committing itself,
    /// for a usual group; a larger one in the caller's transaction, one fsync either way); an
    /// event already there (a re-push) is looked up by its key.
    async fn insert_inbox_rows(
        conn: &mut SqliteConnection,
        events: &[NewInboxEvent],
    ) -> StoreResult<Vec<InsertOutcome>> {
        let mut fresh: HashMap<(&str, &str), i64> = HashMap::with_capacity(events.len());
        for chunk in events.chunks(INSERT_ROWS_MAX) {
            let sql = &INSERT_INBOX[chunk.len() - 1];
            let mut query = sqlx::query_as::<_, (i64, String, String)>(sql.as_str());
            for e in chunk {
                query = query
                    .bind(e.pool_id.as_str())
                    .bind(e.connection_id.as_str())
                    .bind(e.event_id.as_str())
                    .bind(e.event_type.as_str())
                    .bind(e.created_at)
                    .bind(e.received_at)
                    .bind(e.payload.as_str());
            }
            // RETURNING promises no order, but SQLite returns the rows in insert order:
            // look from where the last match was first.
            let mut at = 0;
            for (id, connection, event) in query.fetch_all(&mut *conn).await.map_err(db_err)? {
                let is = |e: &NewInboxEvent| {
                    e.connection_id.as_str() == connection && e.event_id == event
                };
                let found = chunk[at..]
                    .iter()
                    .position(is)
                    .map(|i| at + i)
                    .or_else(|| chunk.iter().position(is));
                if let Some(i) = found {
                    at = i + 1;
                    let e = &chunk[i];
                    fresh.insert((e.connection_id.as_str(), e.event_id.as_str()), id);
                }
            }
        }
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            // The first occurrence of a new event is the insert; any later one a duplicate.
            if let Some(id) = fresh.remove(&(e.connection_id.as_str(), e.event_id.as_str())) {
                out.push(InsertOutcome::Inserted(id));
                continue;
            }
            let id: i64 = sqlx::query_scalar(INBOX_ID)
                .bind(e.connection_id.as_str())
                .bind(e.event_id.as_str())
                .fetch_one(&mut *conn)
                .await
                .map_err(db_err)?;
            out.push(InsertOutcome::Duplicate(id));
        }
        Ok(out)
    }

    /// The Feishu ids of some objects, the ids bound as one JSON array.
    async fn refs_of_objects(
        conn: &mut SqliteConnection,
        kind: ObjectKind,
        ids: &[String],
    ) -> StoreResult<Vec<RefRow>> {
        let ids = serde_json::to_string(ids)
            .map_err(|e| StoreError::Corrupt(format!("cannot render ids: {e}")))?;
        sqlx::query_as(REFS_OF_OBJECTS)
            .bind(kind.as_str())
            .bind(ids)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)
    }

    /// Feed rows numbered from `first`, a `VALUES` list per chunk.
    async fn insert_feed_rows(
        conn: &mut SqliteConnection,
        pool: &PoolId,
        first: i64,
        rows: &[FeedRowText],
        now: Millis,
    ) -> StoreResult<()> {
        let numbered: Vec<(i64, &FeedRowText)> = (first..).zip(rows.iter()).collect();
        for chunk in numbered.chunks(CHUNK) {
            let mut qb = QueryBuilder::<Sqlite>::new(downstream::INSERT_FEED);
            qb.push_values(chunk, |mut b, (seq, r)| {
                b.push_bind(pool.as_str())
                    .push_bind(*seq)
                    .push_bind(r.event_type.as_str())
                    .push_bind(r.object_id.as_deref())
                    .push_bind(r.source.as_str())
                    .push_bind(now)
                    .push_bind(r.data.as_str())
                    .push_bind(r.change_seq)
                    .push_bind(r.external_ids.as_deref());
            });
            qb.build()
                .persistent(false)
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
        }
        Ok(())
    }

    /// One statement for the chunk (a few thousand bind parameters at most).
    async fn finish_inbox_rows(
        conn: &mut SqliteConnection,
        rows: &[InboxFinish<'_>],
    ) -> StoreResult<Vec<i64>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut qb = QueryBuilder::<Sqlite>::new(FINISH_INBOX_ROWS);
        qb.push_values(rows, |mut b, r| {
            b.push_bind(r.id)
                .push_bind(r.state)
                .push_bind(r.outcome)
                .push_bind(r.last_error)
                .push_bind(r.finished_at)
                .push_bind(r.tries)
                .push_bind(r.next_attempt_at);
        });
        qb.push(FINISH_INBOX_ROWS_TAIL);
        qb.build_query_scalar()
            .persistent(false)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)
    }

    /// Nothing: SQLite plans these queries without statistics (where it would pick badly, the
    /// query names its index), and an `ANALYZE` could move plans that were measured.
    const REFRESH_STATISTICS: &[&str] = &[];

    /// The backend's own tables of a pool, deleted before `sql::DELETE_POOL`: its users' rows
    /// of the text index.
    const DELETE_POOL_OWN: &[&str] = &[
        "DELETE FROM user_search WHERE rowid IN (SELECT n FROM user_search_keys WHERE pool_id = $1)",
        "DELETE FROM user_search_keys WHERE pool_id = $1",
    ];

    /// Puts the search texts of some users (id, text) into the trigram index `user_search`
    /// (docs/read-model.md): each user keeps its row number in `user_search_keys` for life.
    async fn index_search_text(
        conn: &mut SqliteConnection,
        pool: &PoolId,
        texts: &[(String, String)],
    ) -> StoreResult<()> {
        for chunk in texts.chunks(CHUNK) {
            let mut qb =
                QueryBuilder::<Sqlite>::new("INSERT INTO user_search_keys (pool_id, user_id) ");
            qb.push_values(chunk, |mut b, (id, _)| {
                b.push_bind(pool.as_str()).push_bind(id.as_str());
            });
            qb.push(" ON CONFLICT (pool_id, user_id) DO NOTHING");
            qb.build()
                .persistent(false)
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
            let mut qb = QueryBuilder::<Sqlite>::new(
                "SELECT user_id, n FROM user_search_keys WHERE pool_id = ",
            );
            qb.push_bind(pool.as_str()).push(" AND user_id IN (");
            let mut list = qb.separated(", ");
            for (id, _) in chunk {
                list.push_bind(id.as_str());
            }
            list.push_unseparated(")");
            let keys: HashMap<String, i64> = qb
                .build_query_as::<(String, i64)>()
                .persistent(false)
                .fetch_all(&mut *conn)
                .await
                .map_err(db_err)?
                .into_iter()
                .collect();
            let rows: Vec<(i64, &str)> = chunk
                .iter()
                .filter_map(|(id, text)| keys.get(id).map(|n| (*n, text.as_str())))
                .collect();
            let mut qb = QueryBuilder::<Sqlite>::new("DELETE FROM user_search WHERE rowid IN (");
            let mut list = qb.separated(", ");
            for (n, _) in &rows {
                list.push_bind(*n);
            }
            list.push_unseparated(")");
            qb.build()
                .persistent(false)
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
            let mut qb = QueryBuilder::<Sqlite>::new("INSERT INTO user_search (rowid, text) ");
            qb.push_values(&rows, |mut b, (n, text)| {
                b.push_bind(*n).push_bind(*text);
            });
            qb.build()
                .persistent(false)
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
        }
        Ok(())
    }
}

impl_directory_store!(SqliteStore, Sqlite);
