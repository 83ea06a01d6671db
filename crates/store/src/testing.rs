//! Stores for tests (this crate's and every crate's that runs behaviour on both backends).

use std::str::FromStr;

use directory::ids::{new_id, now_ms};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Executor};

use crate::PgStore;

/// The variable naming the test database (`scripts/test.sh` sets
/// `postgres://postgres@127.0.0.1:5432/test`).
pub const POSTGRES_URL_VAR: &str = "ORGSYNC_TEST_POSTGRES_URL";

/// Test schemas older than this are dropped when a new one is made: no test runs that long,
/// so whatever is left is from runs that crashed or were interrupted.
const STALE_AFTER_MS: i64 = 3_600_000;

/// Connections per test store: enough for the concurrency tests, few enough that tests
/// running in parallel stay far below PostgreSQL's `max_connections`.
const TEST_POOL_SIZE: u32 = 12;

/// A [`PgStore`] on a fresh, empty schema of the database named by
/// `ORGSYNC_TEST_POSTGRES_URL`, or `None` when the variable is unset or empty (the caller
/// says so and tests SQLite only).
///
/// Each call creates schema `t_<millis>_<random>` and points every pooled connection's
/// `search_path` at it, so tests in parallel never see each other's rows. Schemas are not
/// dropped at the end of a test (the pool may still be closing); instead each call drops those
/// older than an hour. The test database is disposable.
///
/// # Panics
/// When the variable is set but the database cannot be reached or migrated: a test run that
/// asked for PostgreSQL must not quietly pass without it.
pub async fn pg_test_store() -> Option<PgStore> {
    pg_test_store_with_options().await.map(|(store, _)| store)
}

/// [`pg_test_store`], plus the connect options of its schema, for tests that must reach
/// under the store (e.g. to damage a row and check the store reports it as corrupt).
pub async fn pg_test_store_with_options() -> Option<(PgStore, PgConnectOptions)> {
    let options = pg_test_schema().await?;
    match PgStore::connect_with(options.clone(), TEST_POOL_SIZE).await {
        Ok(store) => Some((store, options)),
        Err(e) => panic!("{POSTGRES_URL_VAR}: cannot migrate a test schema: {e}"),
    }
}

/// Connect options for a fresh, empty (not yet migrated) schema, as [`pg_test_store`] makes
/// them; `None` without `ORGSYNC_TEST_POSTGRES_URL`.
///
/// # Panics
/// When the variable is set but the database cannot be reached.
pub async fn pg_test_schema() -> Option<PgConnectOptions> {
    let url = std::env::var(POSTGRES_URL_VAR)
        .ok()
        .filter(|u| !u.trim().is_empty())?;
    match fresh_schema(&url).await {
        Ok(options) => Some(options),
        Err(e) => panic!("{POSTGRES_URL_VAR}={url}: cannot make a test schema: {e}"),
    }
}

/// Applies the SQLite migrations below `version` to the database at `path` (created if
/// missing), leaving it as an older orgsync did: for tests of a later migration, which
/// [`crate::SqliteStore::open`] then applies.
///
/// # Panics
/// When the database cannot be created or migrated.
pub async fn sqlite_migrated_below(path: &std::path::Path, version: i64) {
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    crate::sqlite::migrator_below(version)
        .run(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("migrating {} below {version}: {e}", path.display()));
    let _ = conn.close().await;
}

/// [`sqlite_migrated_below`] for a PostgreSQL schema (e.g. from [`pg_test_schema`]), which
/// [`PgStore::connect_with`] then migrates to the end.
///
/// # Panics
/// When the schema cannot be reached or migrated.
pub async fn pg_migrated_below(options: &PgConnectOptions, version: i64) {
    let mut conn: PgConnection = options
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR}: {e}"));
    crate::postgres::migrator_below(version)
        .run(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("migrating below {version}: {e}"));
    let _ = conn.close().await;
}

/// The URL of `ORGSYNC_TEST_POSTGRES_URL` pointed at a fresh, empty (not yet migrated) schema,
/// for tests of code that takes a URL (`store::open`); `None` without the variable. Tests must
/// never migrate the database's shared `public` schema: a developer's other branches leave
/// their migrations there, and CI runs on the same database.
///
/// # Panics
/// When the variable is set but no schema can be made.
pub async fn pg_test_schema_url() -> Option<String> {
    let url = std::env::var(POSTGRES_URL_VAR)
        .ok()
        .filter(|u| !u.is_empty())?;
    match fresh_schema_name(&url).await {
        Ok(schema) => {
            let sep = if url.contains('?') { '&' } else { '?' };
            Some(format!("{url}{sep}options=-c%20search_path%3D{schema}"))
        }
        Err(e) => panic!("{POSTGRES_URL_VAR}={url}: cannot make a test schema: {e}"),
    }
}

async fn fresh_schema(url: &str) -> Result<PgConnectOptions, String> {
    let options = PgConnectOptions::from_str(url).map_err(|e| e.to_string())?;
    let schema = fresh_schema_name(url).await?;
    Ok(options.options([("search_path", schema.as_str())]))
}

/// Creates schema `t_<millis>_<random>` (dropping stale ones) and returns its name.
async fn fresh_schema_name(url: &str) -> Result<String, String> {
    let options = PgConnectOptions::from_str(url).map_err(|e| e.to_string())?;
    let now = now_ms();
    let schema = format!("t_{now}_{}", &new_id()[..12]);
    let mut admin: PgConnection = options.connect().await.map_err(|e| e.to_string())?;
    drop_stale_schemas(&mut admin, now).await;
    // `schema` is ours: digits, lower-case hex and underscores only.
    admin
        .execute(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .await
        .map_err(|e| e.to_string())?;
    admin.close().await.map_err(|e| e.to_string())?;
    Ok(schema)
}

/// Best effort: another test process may be dropping the same schema.
async fn drop_stale_schemas(admin: &mut PgConnection, now: i64) {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 't\\_%\\_%'")
            .fetch_all(&mut *admin)
            .await
            .unwrap_or_default();
    for name in names {
        let created = name
            .split('_')
            .nth(1)
            .and_then(|millis| millis.parse::<i64>().ok());
        let is_ours = name
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'_');
        if is_ours && created.is_some_and(|t| now - t > STALE_AFTER_MS) {
            let _ = admin
                .execute(AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS {name} CASCADE"
                )))
                .await;
        }
    }
}
