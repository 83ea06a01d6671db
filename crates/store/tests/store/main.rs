//! The store's behaviour, as stories written once against `&dyn DirectoryStore` and run on
//! SQLite (a WAL file, as in production) and on PostgreSQL (a fresh schema per test, from
//! `ORGSYNC_TEST_POSTGRES_URL`; without it the PostgreSQL half says so and passes).
//!
//! Every story is one module with two tests, `<story>::sqlite` and `<story>::postgres`.
#![allow(clippy::unwrap_used)]

mod batch_stories;
mod directory_stories;
mod downstream_stories;
mod fixtures;
mod inbox_stories;
mod ldap_stories;
mod migration_stories;
mod ops_stories;
mod read_model_stories;

/// Declares `mod <story> { sqlite, postgres }` for each story `path::name`.
macro_rules! on_both {
    ($($module:ident :: $story:ident),* $(,)?) => {$(
        mod $story {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let (store, _dir, raw) = crate::fixtures::sqlite().await;
                crate::$module::$story(store, raw).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some((store, raw)) = crate::fixtures::postgres().await else {
                    eprintln!("ORGSYNC_TEST_POSTGRES_URL is not set: PostgreSQL not tested");
                    return;
                };
                crate::$module::$story(store, raw).await;
            }
        }
    )*};
}

on_both!(
    downstream_stories::the_feed_numbers_what_each_apply_changed,
    downstream_stories::an_object_as_read_stands_in_only_at_its_stored_version,
    downstream_stories::a_feed_object_comes_from_the_change_log_as_it_was,
    downstream_stories::a_feed_reader_misses_nothing_while_writers_race,
    downstream_stories::retention_removes_the_oldest_events,
    downstream_stories::credentials_round_trip,
    ldap_stories::ldap_settings_round_trip,
    ldap_stories::logins_and_addresses_are_found_through_indexes,
    ldap_stories::app_passwords_are_revoked_when_the_user_leaves,
    ldap_stories::group_membership_changes_are_timed_per_user,
    ldap_stories::posix_numbers_are_given_once_in_creation_order,
    downstream_stories::webhook_endpoints_progress_leases_and_attempts,
    directory_stories::pools_and_connections,
    directory_stories::deleting_a_connection_keeps_the_directory,
    directory_stories::renaming_a_pool,
    directory_stories::deleting_a_pool_leaves_no_row,
    directory_stories::apply_sets_versions_and_logs_changes,
    directory_stories::version_conflict_writes_nothing,
    directory_stories::external_refs_upsert_without_change_rows,
    directory_stories::an_external_id_maps_one_object,
    directory_stories::watermarks_never_move_backwards,
    directory_stories::replaying_the_change_log_rebuilds_the_directory,
    directory_stories::concurrent_writers_number_changes_without_gaps,
    directory_stories::connection_state_of_20k_users,
    directory_stories::user_search_filters,
    directory_stories::departments_and_groups_lists,
    directory_stories::damaged_rows_are_corrupt_not_panics,
    directory_stories::admin_lookups,
    directory_stories::nul_characters_are_dropped_on_both_backends,
    inbox_stories::inbox_dedupes_within_and_across_calls,
    inbox_stories::inbox_due_in_order,
    inbox_stories::inbox_finish_outcomes,
    inbox_stories::apply_finishes_the_inbox_event_once,
    inbox_stories::inbox_lists_and_counts,
    inbox_stories::concurrent_workers_never_share_an_event,
    inbox_stories::inbox_count_matches_the_list,
    ops_stories::jobs_round_trip,
    ops_stories::action_log_numbers_and_filters,
    ops_stories::lease_rules,
    ops_stories::event_lease_rules,
    ops_stories::lease_race_has_one_winner,
    ops_stories::running_jobs_are_interrupted_by_instance_connection_or_lapsed_lease,
    ops_stories::leases_are_released_by_holder_prefix,
    ops_stories::parked_deletions,
    ops_stories::parking_is_idempotent_per_connection_and_object,
    ops_stories::parked_filters_counts_and_batches,
    ops_stories::migration_collapses_duplicate_pending_entries,
    ops_stories::writes_for_a_deleted_connection_are_not_found,
    batch_stories::bulk_reads_match_the_single_reads,
    batch_stories::department_members_are_every_live_member,
    batch_stories::each_event_of_a_batch_is_the_source_of_its_changes,
    batch_stories::one_apply_finishes_500_inbox_events,
    read_model_stories::subtree_members_follow_every_write,
    read_model_stories::a_cursor_walk_lists_each_user_once_while_writes_land,
    read_model_stories::search_pages_agree_with_substring_matching,
    read_model_stories::departments_page_walks_every_live_department_once,
    read_model_stories::active_user_ids_are_the_shown_users,
);

/// `open` picks the backend from the URL and creates a SQLite file's directory.
#[tokio::test]
async fn open_picks_the_backend_from_the_url() {
    use directory::store::Backend;
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a").join("b").join("orgsync.db");
    let s = store::open(&format!("sqlite://{}", nested.display()))
        .await
        .unwrap();
    assert_eq!(s.backend(), Backend::Sqlite);
    assert!(nested.exists());
    let plain = dir.path().join("plain.db");
    let s = store::open(plain.to_str().unwrap()).await.unwrap();
    assert_eq!(s.backend(), Backend::Sqlite);
    assert!(plain.exists());
    let s = store::open("sqlite::memory:").await.unwrap();
    assert_eq!(s.backend(), Backend::Sqlite);
    assert!(s.list_pools().await.unwrap().is_empty());
    // Reopening an existing database applies no migration twice.
    let again = store::open(plain.to_str().unwrap()).await.unwrap();
    assert!(again.list_pools().await.unwrap().is_empty());
    // A fresh schema, never the shared `public` one (see `pg_test_schema_url`).
    match store::testing::pg_test_schema_url().await {
        Some(url) => {
            let s = store::open(&url).await.unwrap();
            assert_eq!(s.backend(), Backend::Postgres);
            assert!(s.list_pools().await.unwrap().is_empty());
        }
        None => eprintln!("ORGSYNC_TEST_POSTGRES_URL is not set: PostgreSQL not tested"),
    }
}

/// The database, its WAL and its shared-memory file are private (0600), and the directory the
/// store creates for them 0700, whatever the umask (tests usually run with 022): they hold
/// names, e-mails and mobiles.
#[cfg(unix)]
#[tokio::test]
async fn sqlite_files_are_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt as _;

    use directory::store::DirectoryStore;
    let umask = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .map(|m| m.trim().to_owned())
        });
    eprintln!("umask of this test: {umask:?}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new").join("orgsync.db");
    let store = store::SqliteStore::open(&path).await.unwrap();
    let pool = directory::model::UserPool {
        id: directory::ids::PoolId::generate(),
        name: "Acme".into(),
        created_at: 1,
    };
    store.create_pool(&pool).await.unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.path().join("new")), 0o700);
    for suffix in ["", "-wal", "-shm"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        assert!(file.exists(), "{}", file.display());
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    store.close().await;
}

/// `open_in_memory` is private per call and usable concurrently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_in_memory_is_private_and_concurrent() {
    use std::sync::Arc;

    use directory::store::DirectoryStore;
    let a: Arc<dyn DirectoryStore> = Arc::new(store::SqliteStore::open_in_memory().await.unwrap());
    let b = store::SqliteStore::open_in_memory().await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let a = a.clone();
        tasks.spawn(async move {
            let pool = directory::model::UserPool {
                id: directory::ids::PoolId::generate(),
                name: format!("pool {i}"),
                created_at: i,
            };
            a.create_pool(&pool).await.unwrap();
            a.list_pools().await.unwrap().len()
        });
    }
    while let Some(n) = tasks.join_next().await {
        assert!(n.unwrap() >= 1);
    }
    assert_eq!(a.list_pools().await.unwrap().len(), 8);
    assert!(b.list_pools().await.unwrap().is_empty());
}

/// Several instances starting at once on an empty database all come up (the migrator's
/// advisory lock makes them take turns) and share one schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_instances_migrate_concurrently() {
    let Some(options) = store::pg_test_schema().await else {
        eprintln!("ORGSYNC_TEST_POSTGRES_URL is not set: PostgreSQL not tested");
        return;
    };
    let mut instances = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let options = options.clone();
        instances.spawn(async move { store::PgStore::connect_with(options, 2).await });
    }
    let mut stores = Vec::new();
    while let Some(store) = instances.join_next().await {
        stores.push(store.unwrap().unwrap());
    }
    use directory::store::DirectoryStore;
    let pool = directory::model::UserPool {
        id: directory::ids::PoolId::generate(),
        name: "shared".into(),
        created_at: 1,
    };
    stores[0].create_pool(&pool).await.unwrap();
    for s in &stores {
        assert_eq!(s.list_pools().await.unwrap(), vec![pool.clone()]);
    }
}

/// Inbox group-commit throughput (groups of 300, as the ingest writer sends them); prints
/// events/s per backend. Not a pass/fail test: `cargo test -p store --test store
/// inbox_group_commit_throughput -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn inbox_group_commit_throughput() {
    use crate::fixtures::*;
    let (sqlite, _dir, _) = sqlite().await;
    let mut stores = vec![("sqlite", sqlite)];
    if let Some((pg, _)) = postgres().await {
        stores.push(("postgres", pg));
    }
    for (name, store) in stores {
        let pool = new_pool(&store).await;
        let c = new_connection(&store, &pool, "main").await;
        let started = std::time::Instant::now();
        let mut n = 0;
        for g in 0..50 {
            let events: Vec<_> = (0..300)
                .map(|i| event(&c, &format!("e{g}-{i}"), Some(i)))
                .collect();
            n += store.inbox_insert(&events).await.unwrap().len();
        }
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "{name}: {n} events in {secs:.2} s = {:.0}/s",
            n as f64 / secs
        );
    }
}
