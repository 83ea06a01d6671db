//! orgsync's storage: [`DirectoryStore`] for SQLite ([`SqliteStore`], the embedded default)
//! and PostgreSQL ([`PgStore`], for several instances), with their migrations
//! (`migrations/sqlite`, `migrations/postgres`, embedded and applied at open).
//!
//! No business rules live here: the store persists what the engine decided, atomically. The
//! contract is the doc of [`directory::store`]; `tests/store.rs` checks every behaviour on
//! both backends.
//!
//! Layout: `sql.rs` holds the SQL both backends run verbatim, `imp.rs` the one implementation
//! of the trait (expanded per backend), `prepare.rs` the pure half of `apply` (versions and
//! change records), `codec.rs` the row types, and `sqlite.rs` / `postgres.rs` what differs.

use std::path::Path;
use std::sync::Arc;

use directory::store::{DirectoryStore, StoreError};

mod codec;
mod downstream;
mod imp;
mod ldap_view;
mod migrations;
mod postgres;
mod prepare;
mod read_model;
mod sql;
mod sqlite;
pub mod testing;
mod webhooks;

pub use postgres::{DEFAULT_POOL_SIZE, PgStore};
pub use sqlite::SqliteStore;
pub use testing::{pg_test_schema, pg_test_store, pg_test_store_with_options};

/// Opens the store a URL or path names: `postgres://…` or `postgresql://…` → [`PgStore`];
/// `sqlite://path`, `sqlite:path` or a plain path → [`SqliteStore`] (`sqlite::memory:` → a
/// throwaway [`SqliteStore::open_in_memory`]).
pub async fn open(url_or_path: &str) -> Result<Arc<dyn DirectoryStore>, StoreError> {
    if url_or_path.starts_with("postgres://") || url_or_path.starts_with("postgresql://") {
        return Ok(Arc::new(PgStore::connect(url_or_path).await?));
    }
    let path = url_or_path
        .strip_prefix("sqlite://")
        .or_else(|| url_or_path.strip_prefix("sqlite:"))
        .unwrap_or(url_or_path);
    if path == ":memory:" {
        return Ok(Arc::new(SqliteStore::open_in_memory().await?));
    }
    if path.is_empty() {
        return Err(StoreError::Database(format!(
            "no database path in {url_or_path:?}"
        )));
    }
    Ok(Arc::new(SqliteStore::open(Path::new(path)).await?))
}
