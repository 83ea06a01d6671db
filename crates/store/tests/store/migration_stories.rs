//! Migrations over data an older orgsync left: a database migrated up to some version, rows
//! written the old way under the store, then the store opened (which migrates to the end).

use serde_json::{Value, json};
use sqlx::{ConnectOptions, Connection};

use directory::store::DirectoryStore;

const TOKEN: &str = "vt-old-row-secret-0001";
/// In a payload that is not JSON: the migration cannot read it and leaves it as it is.
const UNREADABLE_TOKEN: &str = "vt-unreadable-secret-02";

/// The payloads an older orgsync stored (the decrypted plaintext, token included), and what
/// each must read after migration 0005.
fn old_rows() -> Vec<(Value, Option<Value>)> {
    let v2 = json!({
        "schema": "2.0",
        "header": {"event_id": "e-2", "event_type": "contact.user.updated_v3",
                   "create_time": "1700000000123", "token": TOKEN, "app_id": "cli_1",
                   "tenant_key": "t1"},
        "event": {"object": {"open_id": "ou_1", "name": "张三", "order": 3}},
    });
    let v1 = json!({
        "ts": "1502199207.7171419", "uuid": "u-1", "token": TOKEN, "type": "event_callback",
        "event": {"type": "user_leave", "open_id": "ou_2"},
    });
    let without = |mut v: Value| {
        if let Some(o) = v.as_object_mut() {
            o.remove("token");
        }
        if let Some(h) = v.get_mut("header").and_then(Value::as_object_mut) {
            h.remove("token");
        }
        v
    };
    let tokenless = json!({"schema": "2.0", "header": {"event_id": "e-3"}, "event": {}});
    vec![
        (v2.clone(), Some(without(v2))),
        (v1.clone(), Some(without(v1))),
        (tokenless.clone(), Some(tokenless)),
    ]
}

const INSERT: &str = "INSERT INTO inbox (pool_id, connection_id, event_id, event_type, \
     created_at, received_at, payload, state, attempts, next_attempt_at) \
     VALUES ('p', 'c', $1, 'contact.user.updated_v3', 1, 1, $2, 'applied', 1, 1)";

/// Checks every row through the store after migrating; returns nothing, panics on a
/// difference.
async fn check(store: &dyn DirectoryStore) {
    let expected = old_rows();
    for (i, (_, after)) in expected.iter().enumerate() {
        let row = store.inbox_get(i as i64 + 1).await.unwrap().unwrap();
        assert!(!row.payload.contains(TOKEN), "{}", row.payload);
        let stored: Value = serde_json::from_str(&row.payload).unwrap();
        assert_eq!(Some(&stored), after.as_ref(), "row {}", i + 1);
    }
    let unreadable = store
        .inbox_get(expected.len() as i64 + 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        unreadable.payload,
        format!("not json, \"token\": {UNREADABLE_TOKEN}"),
        "a payload that is not JSON is left as it is"
    );
}

fn old_payloads() -> Vec<String> {
    let mut out: Vec<String> = old_rows().into_iter().map(|(v, _)| v.to_string()).collect();
    out.push(format!("not json, \"token\": {UNREADABLE_TOKEN}"));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_removed_from_old_inbox_rows_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orgsync.db");
    store::testing::sqlite_migrated_below(&path, 5).await;
    {
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .connect()
            .await
            .unwrap();
        for (i, payload) in old_payloads().iter().enumerate() {
            sqlx::query(INSERT)
                .bind(format!("old-{i}"))
                .bind(payload)
                .execute(&mut conn)
                .await
                .unwrap();
        }
        conn.close().await.unwrap();
    }
    let bytes = std::fs::read(&path).unwrap();
    assert!(contains(&bytes, TOKEN), "the old rows hold the token");

    let store = store::SqliteStore::open(&path).await.unwrap();
    check(&store).await;
    // Not in the database file nor its WAL: the old copies of the rewritten rows are gone.
    for file in [path.clone(), path.with_extension("db-wal")] {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            !contains(&bytes, TOKEN),
            "{} still holds the token",
            file.display()
        );
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_removed_from_old_inbox_rows_postgres() {
    let Some(options) = store::testing::pg_test_schema().await else {
        eprintln!("ORGSYNC_TEST_POSTGRES_URL is not set: PostgreSQL not tested");
        return;
    };
    store::testing::pg_migrated_below(&options, 5).await;
    {
        let mut conn = options.connect().await.unwrap();
        for (i, payload) in old_payloads().iter().enumerate() {
            sqlx::query(INSERT)
                .bind(format!("old-{i}"))
                .bind(payload)
                .execute(&mut conn)
                .await
                .unwrap();
        }
        conn.close().await.unwrap();
    }
    let store = store::PgStore::connect_with(options, 2).await.unwrap();
    check(&store).await;
    store.close().await;
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Directory rows an older orgsync wrote (before the read model of migration 0008): a root R
/// with a child C; a tombstoned T whose child O is a root now; users in them, one tombstoned.
const OLD_DIRECTORY: &[&str] = &[
    "INSERT INTO pools (id, name, created_at) VALUES ('p', 'Acme', 1)",
    "INSERT INTO change_counters (pool_id, seq) VALUES ('p', 0)",
    "INSERT INTO departments (pool_id, id, name, parent_id, sort_order, version, created_at, \
     updated_at, deleted_at) VALUES \
     ('p', 'R', 'Root', NULL, 1, 1, 1, 1, NULL), ('p', 'C', 'Child', 'R', 1, 1, 1, 1, NULL), \
     ('p', 'T', 'Gone', NULL, 2, 1, 1, 1, 5), ('p', 'O', 'Orphan', 'T', 3, 1, 1, 1, NULL)",
    "INSERT INTO users (pool_id, id, name, search_text, status, in_root, profile, version, \
     created_at, updated_at, deleted_at) VALUES \
     ('p', 'u1', 'Alice Smith', 'alice smith', 'active', FALSE, '{\"name\": \"Alice Smith\"}', 1, 1, 1, NULL), \
     ('p', 'u2', 'Bob Jones', 'bob jones', 'active', FALSE, '{\"name\": \"Bob Jones\"}', 1, 2, 1, NULL), \
     ('p', 'u3', 'Carol Gone', 'carol gone', 'resigned', FALSE, '{\"name\": \"Carol Gone\"}', 1, 3, 1, 9), \
     ('p', 'u4', 'Dan Orphan', 'dan orphan', 'active', FALSE, '{\"name\": \"Dan Orphan\"}', 1, 4, 1, NULL)",
    "INSERT INTO user_departments (pool_id, user_id, pos, department_id, is_primary) VALUES \
     ('p', 'u1', 0, 'C', TRUE), ('p', 'u2', 0, 'R', TRUE), ('p', 'u2', 1, 'C', FALSE), \
     ('p', 'u3', 0, 'C', TRUE), ('p', 'u4', 0, 'O', TRUE)",
];

/// After migration 0008 the read model answers for what was stored before it.
async fn check_read_model(store: &dyn DirectoryStore) {
    use directory::ids::{DepartmentId, PoolId};
    use directory::store::{KeyPage, MemberScope, UserQuery};
    let pool = PoolId::from("p");
    let roots = store
        .department_children(&pool, None, &KeyPage::first(10))
        .await
        .unwrap();
    let counts: Vec<(String, u64, u64, u64)> = roots
        .items
        .iter()
        .map(|n| {
            (
                n.department.id.0.clone(),
                n.member_count,
                n.total_member_count,
                n.child_count,
            )
        })
        .collect();
    assert_eq!(
        counts,
        vec![("R".into(), 1, 2, 1), ("O".into(), 1, 1, 0)],
        "{:?}",
        store.backend()
    );
    let child = store
        .department_node(&pool, &DepartmentId::from("C"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((child.member_count, child.total_member_count), (2, 2));
    let subtree = store
        .list_users(
            &pool,
            &UserQuery {
                department_id: Some(DepartmentId::from("R")),
                scope: MemberScope::Subtree,
                ..UserQuery::default()
            },
            &KeyPage::first(10),
        )
        .await
        .unwrap();
    let ids: Vec<&str> = subtree.items.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(ids, vec!["u1", "u2"]);
    let found = store
        .list_users(
            &pool,
            &UserQuery {
                text: Some("smith".into()),
                ..UserQuery::default()
            },
            &KeyPage::first(10),
        )
        .await
        .unwrap();
    assert_eq!(found.items.len(), 1);
    assert_eq!(found.items[0].id.as_str(), "u1");
}

/// A SQLite store at `path`: migrated below `version`, the `old` statements run on it as an
/// older orgsync would have, then opened (which migrates to the end).
async fn sqlite_over(
    path: &std::path::Path,
    version: i64,
    old: &[&'static str],
) -> store::SqliteStore {
    store::testing::sqlite_migrated_below(path, version).await;
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .connect()
        .await
        .unwrap();
    for statement in old {
        sqlx::query(*statement).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();
    store::SqliteStore::open(path).await.unwrap()
}

/// The same on a fresh PostgreSQL schema; `None` when no PostgreSQL is configured.
async fn pg_over(version: i64, old: &[&'static str]) -> Option<store::PgStore> {
    let Some(options) = store::testing::pg_test_schema().await else {
        eprintln!("ORGSYNC_TEST_POSTGRES_URL is not set: PostgreSQL not tested");
        return None;
    };
    store::testing::pg_migrated_below(&options, version).await;
    let mut conn = options.connect().await.unwrap();
    for statement in old {
        sqlx::query(*statement).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();
    Some(store::PgStore::connect_with(options, 2).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_model_is_built_for_an_older_directory_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_over(&dir.path().join("orgsync.db"), 8, OLD_DIRECTORY).await;
    check_read_model(&store).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_model_is_built_for_an_older_directory_postgres() {
    let Some(store) = pg_over(8, OLD_DIRECTORY).await else {
        return;
    };
    check_read_model(&store).await;
    store.close().await;
}

/// A feed an older orgsync wrote (before migration 0013 rebuilt SQLite's feed table): an event
/// in the layout before migration 0012, with its object in `data`, and one that points at its
/// change-log row.
const OLD_FEED: &[&str] = &[
    "INSERT INTO pools (id, name, created_at) VALUES ('p', 'Acme', 1)",
    "INSERT INTO change_counters (pool_id, seq, feed_seq) VALUES ('p', 1, 2)",
    "INSERT INTO changes (pool_id, seq, kind, object_kind, object_id, version, source, at, \
     object) VALUES ('p', 1, 'user_updated', 'user', 'u1', 2, '{\"type\":\"admin\"}', 20, \
     '{\"id\":\"u1\",\"version\":2,\"profile\":{\"name\":\"Alice Renamed\"}}')",
    "INSERT INTO feed_events (pool_id, seq, type, object_id, source, at, data) VALUES \
     ('p', 1, 'user.created', 'u1', '{\"type\":\"admin\"}', 10, \
     '{\"object\":{\"id\":\"u1\",\"version\":1,\"profile\":{\"name\":\"Alice\"}}}')",
    "INSERT INTO feed_events (pool_id, seq, type, object_id, source, at, data, change_seq, \
     external_ids) VALUES ('p', 2, 'user.updated', 'u1', '{\"type\":\"admin\"}', 20, \
     '{\"previous_attributes\":{\"profile\":{\"name\":\"Alice\"}},\"changed\":[\"profile.name\"]}', \
     1, '[]')",
];

/// After migration 0013 the feed reads as before it, and appends number on from it.
async fn check_feed(store: &dyn DirectoryStore) {
    let pool = directory::ids::PoolId("p".into());
    let read = store.feed_read(&pool, 0, 100, &[], 10_000).await.unwrap();
    let bodies: Vec<(i64, &str, Value)> = read
        .events
        .iter()
        .map(|e| (e.seq, e.event_type.as_str(), e.data.clone()))
        .collect();
    assert_eq!(
        bodies,
        [
            (
                1,
                "user.created",
                json!({"object": {"id": "u1", "version": 1, "profile": {"name": "Alice"}}})
            ),
            (
                2,
                "user.updated",
                json!({
                    "object": {"id": "u1", "version": 2, "profile": {"name": "Alice Renamed"},
                               "external_ids": []},
                    "previous_attributes": {"profile": {"name": "Alice"}},
                    "changed": ["profile.name"],
                })
            ),
        ]
    );
    let draft = directory::feed::sync_completed(
        "job-1",
        "c1",
        directory::model::JobKind::Reconcile,
        "complete",
        &json!({}),
        false,
    );
    let appended = store
        .feed_append(&pool, &directory::store::ChangeSource::Admin, &[draft], 30)
        .await
        .unwrap();
    assert_eq!(appended[0].seq, 3);
    let read = store.feed_read(&pool, 2, 100, &[], 10_000).await.unwrap();
    assert_eq!(read.events, appended);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_reads_the_same_after_its_table_is_rebuilt_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_over(&dir.path().join("orgsync.db"), 13, OLD_FEED).await;
    check_feed(&store).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_reads_the_same_after_its_table_is_rebuilt_postgres() {
    let Some(store) = pg_over(13, OLD_FEED).await else {
        return;
    };
    check_feed(&store).await;
    store.close().await;
}

/// Users an older orgsync stored (before migration 0014): the enterprise address only in the
/// profile; one with an address in another case, one without any.
const OLD_USERS: &[&str] = &[
    "INSERT INTO pools (id, name, created_at) VALUES ('p', 'Acme', 1)",
    "INSERT INTO users (pool_id, id, name, email, search_text, status, in_root, profile, \
     version, created_at, updated_at, deleted_at) VALUES \
     ('p', 'u1', 'Alice', 'alice@home.example', 'alice', 'active', TRUE, \
      '{\"name\": \"Alice\", \"email\": \"alice@home.example\", \"enterprise_email\": \"Alice.Smith@Corp.example\"}', 1, 1, 1, NULL), \
     ('p', 'u2', 'Bob', 'Bob@Corp.example', 'bob', 'active', TRUE, \
      '{\"name\": \"Bob\", \"email\": \"Bob@Corp.example\"}', 1, 2, 1, NULL), \
     ('p', 'u3', 'Carol', NULL, 'carol', 'active', TRUE, '{\"name\": \"Carol\"}', 1, 3, 1, NULL)",
];

/// After migration 0014 the login and address indexes answer for what was stored before it.
async fn check_logins(store: &dyn DirectoryStore) {
    use directory::ids::{PoolId, UserId};
    use directory::ldap_view::LoginSource;
    use directory::store::PersonKey;

    use crate::ldap_stories::named;
    let pool = PoolId::from("p");
    let ids: Vec<UserId> = ["u1", "u2", "u3"].map(UserId::from).to_vec();
    let logins = store
        .user_logins(&pool, LoginSource::EmailLocalPart, &ids)
        .await
        .unwrap();
    assert_eq!(logins.get(&ids[0]).map(String::as_str), Some("alice.smith"));
    assert_eq!(logins.get(&ids[1]).map(String::as_str), Some("bob"));
    assert!(!logins.contains_key(&ids[2]));
    assert_eq!(
        named(
            store,
            &pool,
            LoginSource::UserId,
            PersonKey::Mail("alice.smith@corp.example".into())
        )
        .await,
        vec![ids[0].clone()]
    );
    assert_eq!(
        named(
            store,
            &pool,
            LoginSource::UserId,
            PersonKey::Mail("bob@corp.EXAMPLE".into())
        )
        .await,
        vec![ids[1].clone()]
    );
    // POSIX numbers in creation order.
    let raw: Vec<String> = ids.iter().map(|u| u.0.clone()).collect();
    let numbers = store
        .posix_ids(&pool, directory::model::ObjectKind::User, &raw)
        .await
        .unwrap();
    assert_eq!(
        raw.iter().map(|id| numbers[id]).collect::<Vec<_>>(),
        [1, 2, 3]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_are_indexed_for_an_older_directory_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_over(&dir.path().join("orgsync.db"), 14, OLD_USERS).await;
    check_logins(&store).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_are_indexed_for_an_older_directory_postgres() {
    let Some(store) = pg_over(14, OLD_USERS).await else {
        return;
    };
    check_logins(&store).await;
    store.close().await;
}

/// Users with Feishu `user_id`s as an older orgsync stored them (before migration 0015): in
/// the refs only. `u4` has two connections in the pool, `u5` is another pool's.
const OLD_REFS: &[&str] = &[
    "INSERT INTO pools (id, name, created_at) VALUES ('p', 'Acme', 1), ('q', 'Other', 1)",
    "INSERT INTO connections (id, pool_id, identifier, display_name, provider, app_id, \
     app_secret, settings, created_at, updated_at) VALUES \
     ('c1', 'p', 'one', 'One', 'feishu', 'a1', 's', '{}', 1, 1), \
     ('c2', 'p', 'two', 'Two', 'feishu', 'a2', 's', '{}', 1, 1), \
     ('c3', 'q', 'three', 'Three', 'feishu', 'a3', 's', '{}', 1, 1)",
    "INSERT INTO users (pool_id, id, name, search_text, status, in_root, profile, version, \
     created_at, updated_at, deleted_at) VALUES \
     ('p', 'u1', 'A', 'a', 'active', TRUE, '{\"name\": \"A\"}', 1, 1, 1, NULL), \
     ('p', 'u2', 'B', 'b', 'active', TRUE, '{\"name\": \"B\"}', 1, 2, 1, NULL), \
     ('p', 'u3', 'C', 'c', 'active', TRUE, '{\"name\": \"C\"}', 1, 3, 1, NULL), \
     ('p', 'u4', 'D', 'd', 'active', TRUE, '{\"name\": \"D\"}', 1, 4, 1, NULL), \
     ('q', 'u5', 'E', 'e', 'active', TRUE, '{\"name\": \"E\"}', 1, 5, 1, NULL)",
    "INSERT INTO external_refs (connection_id, kind, external_id, custom_id, object_id) VALUES \
     ('c1', 'user', 'ou_1', ' ZhangSan', 'u1'), \
     ('c1', 'user', 'ou_2', 'lisi', 'u2'), \
     ('c1', 'user', 'ou_3', '0123456789abcdef01234567', 'u3'), \
     ('c1', 'user', 'ou_4', 'Wang', 'u4'), \
     ('c2', 'user', 'ou_4b', 'a-wang', 'u4'), \
     ('c3', 'user', 'ou_5', 'zhangsan', 'u5')",
];

/// After migration 0015 each user's `user_id` login is in `users`, found by its index.
async fn check_user_id_logins(store: &dyn DirectoryStore) {
    use directory::ids::{PoolId, UserId};
    use directory::ldap_view::LoginSource;
    use directory::store::PersonKey;

    use crate::ldap_stories::named;
    let pool = PoolId::from("p");
    let ids: Vec<UserId> = ["u1", "u2", "u3", "u4"].map(UserId::from).to_vec();
    let logins = store
        .user_logins(&pool, LoginSource::UserId, &ids)
        .await
        .unwrap();
    assert_eq!(logins.get(&ids[0]).map(String::as_str), Some("zhangsan"));
    assert_eq!(logins.get(&ids[1]).map(String::as_str), Some("lisi"));
    assert!(
        !logins.contains_key(&ids[2]),
        "an id-shaped user_id: {logins:?}"
    );
    assert_eq!(logins.get(&ids[3]).map(String::as_str), Some("a-wang"));
    assert_eq!(
        named(
            store,
            &pool,
            LoginSource::UserId,
            PersonKey::Login("ZHANGSAN".into())
        )
        .await,
        vec![ids[0].clone()]
    );
    // Deleting the second connection gives u4 the candidate of its first.
    store
        .delete_connection(&directory::ids::ConnectionId::from("c2"))
        .await
        .unwrap();
    let logins = store
        .user_logins(&pool, LoginSource::UserId, &ids[3..])
        .await
        .unwrap();
    assert_eq!(logins.get(&ids[3]).map(String::as_str), Some("wang"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_id_logins_are_filled_for_an_older_directory_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_over(&dir.path().join("orgsync.db"), 15, OLD_REFS).await;
    check_user_id_logins(&store).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_id_logins_are_filled_for_an_older_directory_postgres() {
    let Some(store) = pg_over(15, OLD_REFS).await else {
        return;
    };
    check_user_id_logins(&store).await;
    store.close().await;
}
