//! Pools, connections, the directory objects, `apply` and the change log.

use std::collections::{BTreeMap, HashMap, HashSet};

use directory::ids::{ConnectionId, DepartmentId, GroupId, PoolId, UserId};
use directory::model::{
    ConnectionSettings, DeletionThreshold, Department, Group, GroupMember, GroupSummary,
    LeaderKind, ObjectKind, Pacing, Profile, Provider, User, UserPool, UserProfile, UserStatus,
};
use directory::secrets::SealedSecret;
use directory::store::{
    ChangeKind, ChangeRecord, ChangeSource, InboxOutcome, KeyPage, PageRequest, ParkedFilter,
    StoreError, UserQuery, Write,
};

use crate::fixtures::*;

const ALL: PageRequest = PageRequest {
    offset: 0,
    limit: 100_000,
    after: None,
};
const EVERYONE: KeyPage = KeyPage {
    after: None,
    limit: 100_000,
};

pub async fn pools_and_connections(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let stored = store.get_pool(&pool).await.unwrap().unwrap();
    assert_eq!((stored.name.as_str(), stored.created_at), ("Acme", 1_000));
    assert!(store.get_pool(&PoolId::generate()).await.unwrap().is_none());
    let again = UserPool {
        id: pool.clone(),
        name: "Again".into(),
        created_at: 5,
    };
    assert!(matches!(
        store.create_pool(&again).await,
        Err(StoreError::Conflict(_))
    ));
    let other_pool = new_pool(&store).await;
    let pools: Vec<PoolId> = store
        .list_pools()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(pools.len(), 2);
    assert!(pools.contains(&pool) && pools.contains(&other_pool));

    // Round trip, sealed secrets and settings included.
    let c = new_connection(&store, &pool, "feishu-main").await;
    assert_eq!(store.get_connection(&c.id).await.unwrap(), Some(c.clone()));
    assert_eq!(
        store.find_connection(&pool, "feishu-main").await.unwrap(),
        Some(c.clone())
    );
    assert!(
        store
            .find_connection(&other_pool, "feishu-main")
            .await
            .unwrap()
            .is_none()
    );

    // The identifier is unique per pool, and the error names it.
    match store
        .create_connection(&connection(&pool, "feishu-main"))
        .await
    {
        Err(StoreError::Conflict(message)) => assert!(message.contains("feishu-main"), "{message}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let elsewhere = new_connection(&store, &other_pool, "feishu-main").await;
    assert_eq!(
        store.list_connections(Some(&pool)).await.unwrap(),
        vec![c.clone()]
    );
    assert_eq!(store.list_connections(None).await.unwrap().len(), 2);

    // Update replaces everything but id, pool and created_at.
    let mut changed = c.clone();
    changed.identifier = "renamed".into();
    changed.display_name = "Lark".into();
    changed.provider = Provider::Lark;
    changed.base_url = Some("http://127.0.0.1:9/open-apis".into());
    changed.app_id = "cli_new".into();
    changed.app_secret = SealedSecret("v1:bmV3".into());
    changed.encrypt_key = None;
    changed.verification_token = Some(SealedSecret("v1:dG9rZW4=".into()));
    changed.settings = ConnectionSettings {
        reconcile_interval_secs: 60,
        deletion_threshold: DeletionThreshold {
            max_fraction: 0.25,
            max_count: 7,
        },
        pacing: Pacing {
            per_second: 20,
            per_minute: 600,
        },
    };
    changed.updated_at = 3_000;
    changed.created_at = 99;
    store.update_connection(&changed).await.unwrap();
    let expected = directory::model::Connection {
        created_at: c.created_at,
        ..changed.clone()
    };
    assert_eq!(store.get_connection(&c.id).await.unwrap(), Some(expected));
    assert!(
        store
            .find_connection(&pool, "feishu-main")
            .await
            .unwrap()
            .is_none()
    );

    let second = new_connection(&store, &pool, "second").await;
    let mut clash = second.clone();
    clash.identifier = "renamed".into();
    match store.update_connection(&clash).await {
        Err(StoreError::Conflict(message)) => assert!(message.contains("renamed"), "{message}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let ghost = connection(&pool, "ghost");
    assert!(matches!(
        store.update_connection(&ghost).await,
        Err(StoreError::NotFound(_))
    ));
    // A connection needs its pool: an unknown one is "not found".
    assert!(matches!(
        store
            .create_connection(&connection(&PoolId::generate(), "orphan"))
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store.get_connection(&elsewhere.id).await.unwrap(),
        Some(elsewhere)
    );
}

pub async fn deleting_a_connection_keeps_the_directory(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let c = new_connection(&store, &pool, "main").await;
    let u = user(&pool, 1);
    let mut b = batch(
        &pool,
        vec![
            put_user(&u, ChangeKind::UserCreated),
            Write::PutExternalRef(external(&c.id, ObjectKind::User, "ou_1", u.id.as_str())),
        ],
    );
    b.watermarks = vec![watermark(&c.id, "user:ou_1", 100, false)];
    store.apply(b).await.unwrap();
    assert!(
        store
            .try_acquire_lease(&c.id, "me", std::time::Duration::from_secs(60), 1_000)
            .await
            .unwrap()
    );
    assert!(
        store
            .try_acquire_event_lease(&c.id, "me", std::time::Duration::from_secs(60), 1_000)
            .await
            .unwrap()
    );
    let ids = store
        .inbox_insert(&[event(&c, "pending", Some(1)), event(&c, "done", Some(2))])
        .await
        .unwrap();
    let [pending, done] = [ids[0], ids[1]].map(|o| match o {
        directory::store::InsertOutcome::Inserted(id) => id,
        other => panic!("{other:?}"),
    });
    store
        .inbox_finish(done, InboxOutcome::Applied { note: None }, 3_000)
        .await
        .unwrap();
    let job = job(&c, 1_000);
    store.create_job(&job).await.unwrap();

    // Deleting also removes the leases (else the connection's row could not go).
    store.delete_connection(&c.id).await.unwrap();
    assert!(store.get_connection(&c.id).await.unwrap().is_none());
    assert!(
        store
            .find_external(&c.id, ObjectKind::User, "ou_1")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .refs_of(ObjectKind::User, u.id.as_str())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .watermarks(&c.id, &["user:ou_1".into()])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.inbox_get(pending).await.unwrap().is_none());
    assert!(store.inbox_get(done).await.unwrap().is_some());
    assert_eq!(store.inbox_pending_count(&c.id).await.unwrap(), 0);
    assert!(store.get_user(&pool, &u.id).await.unwrap().is_some());
    assert!(store.get_job(&job.id).await.unwrap().is_some());
    assert!(matches!(
        store.delete_connection(&c.id).await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn renaming_a_pool(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let other = new_pool(&store).await;
    store.rename_pool(&pool, "Acme Corp").await.unwrap();
    let stored = store.get_pool(&pool).await.unwrap().unwrap();
    assert_eq!(
        (stored.name.as_str(), stored.created_at),
        ("Acme Corp", 1_000)
    );
    assert_eq!(store.get_pool(&other).await.unwrap().unwrap().name, "Acme");
    assert!(matches!(
        store.rename_pool(&PoolId::generate(), "Nobody").await,
        Err(StoreError::NotFound(_))
    ));
}

/// What [`populate_pool`] wrote, to read it back.
struct Populated {
    pool: PoolId,
    connection: directory::model::Connection,
    gone: ConnectionId,
    user: UserId,
    department: DepartmentId,
    group: GroupId,
    inbox: Vec<i64>,
    jobs: Vec<directory::ids::JobId>,
}

/// A pool with a row in every table: a connection with objects, refs, watermarks, a lease,
/// events, a job with its log and a parked deletion; and a second connection, deleted, whose
/// finished event, job and parked deletion stay behind as history.
async fn populate_pool(store: &Store) -> Populated {
    use directory::model::{ActionResult, SyncAction};
    use directory::store::InsertOutcome;
    let pool = new_pool(store).await;
    let c = new_connection(store, &pool, "main").await;
    let gone = new_connection(store, &pool, "gone").await;
    store
        .create_credential(&crate::fixtures::credential(&pool, "hr"))
        .await
        .unwrap();
    let hook = crate::fixtures::webhook(&pool);
    store.create_webhook(&hook).await.unwrap();
    store
        .set_ldap_settings(&pool, &directory::ldap_view::LdapSettings::default())
        .await
        .unwrap();
    store
        .create_app_password(&directory::store::StoredAppPassword {
            password: directory::app_passwords::AppPassword {
                id: directory::ids::new_id(),
                pool_id: pool.clone(),
                user_id: UserId("u-of-the-pool".into()),
                label: "gitlab".into(),
                created_at: 1,
                expires_at: None,
                last_used_at: None,
                revoked_at: None,
            },
            hash: "$argon2id$x".into(),
        })
        .await
        .unwrap();
    store
        .record_webhook_progress(
            Some(&crate::fixtures::attempt(&hook, 1)),
            &hook,
            hook.updated_at,
        )
        .await
        .unwrap();
    let mut d = department(&pool, "Eng", None);
    let mut u = user(&pool, 1);
    u.departments = vec![membership(&d.id, true)];
    d.leaders = vec![leader(&u.id, LeaderKind::Main)];
    let g = group(
        &pool,
        "All",
        vec![
            GroupMember::User(u.id.clone()),
            GroupMember::Department(d.id.clone()),
        ],
    );
    let mut b = batch(
        &pool,
        vec![
            put_department(&d, ChangeKind::DepartmentCreated),
            put_user(&u, ChangeKind::UserCreated),
            put_group(&g, ChangeKind::GroupCreated),
        ],
    );
    for conn in [&c.id, &gone.id] {
        b.writes.extend([
            Write::PutExternalRef(external(conn, ObjectKind::User, "ou_1", u.id.as_str())),
            Write::PutExternalRef(external(
                conn,
                ObjectKind::Department,
                "od-1",
                d.id.as_str(),
            )),
            Write::PutExternalRef(external(conn, ObjectKind::Group, "g1", g.id.as_str())),
        ]);
        b.watermarks.push(watermark(conn, "user:ou_1", 100, false));
    }
    store.apply(b).await.unwrap();
    let inserted = store
        .inbox_insert(&[
            event(&c, "pending", Some(1)),
            event(&c, "applied", Some(2)),
            event(&gone, "gone-applied", Some(3)),
        ])
        .await
        .unwrap();
    let inbox: Vec<i64> = inserted
        .into_iter()
        .map(|o| match o {
            InsertOutcome::Inserted(id) => id,
            other => panic!("{other:?}"),
        })
        .collect();
    for id in &inbox[1..] {
        store
            .inbox_finish(*id, InboxOutcome::Applied { note: None }, 3_000)
            .await
            .unwrap();
    }
    let mut jobs = Vec::new();
    for conn in [&c, &gone] {
        let j = job(conn, 1_000);
        store.create_job(&j).await.unwrap();
        store
            .append_action_log(&[action(
                &j.id,
                SyncAction::CreateUser,
                ActionResult::Applied,
                1,
            )])
            .await
            .unwrap();
        store
            .park_deletions(&[parked(conn, &j.id, 1)])
            .await
            .unwrap();
        jobs.push(j.id);
    }
    assert!(
        store
            .try_acquire_lease(
                &c.id,
                "job-holder",
                std::time::Duration::from_secs(600),
                1_000
            )
            .await
            .unwrap()
    );
    assert!(
        store
            .try_acquire_event_lease(
                &c.id,
                "worker-holder",
                std::time::Duration::from_secs(600),
                1_000
            )
            .await
            .unwrap()
    );
    store.delete_connection(&gone.id).await.unwrap();
    Populated {
        pool,
        connection: c,
        gone: gone.id,
        user: u.id,
        department: d.id,
        group: g.id,
        inbox,
        jobs,
    }
}

/// Deleting a pool removes every row it owns from every table (those a deleted connection
/// left behind too) and leaves another pool exactly as it was.
pub async fn deleting_a_pool_leaves_no_row(store: Store, raw: Raw) {
    let kept = populate_pool(&store).await;
    let before = raw_table_counts(&raw).await;
    let doomed = populate_pool(&store).await;
    let full = raw_table_counts(&raw).await;
    // The fixture writes to every table, so a table added later without its place in the
    // deletion fails here instead of keeping a deleted pool's rows.
    for (table, n) in &full {
        assert!(
            n > before.get(table).unwrap_or(&0),
            "{:?}: table {table} got no row from the second pool: if it holds pool data, \
             write to it in populate_pool and delete it in DELETE_POOL (crates/store/src/sql.rs)",
            store.backend()
        );
    }

    store.delete_pool(&doomed.pool).await.unwrap();
    assert_eq!(
        raw_table_counts(&raw).await,
        before,
        "{:?}: rows left after deleting the pool",
        store.backend()
    );
    assert!(store.get_pool(&doomed.pool).await.unwrap().is_none());
    assert!(
        store
            .get_connection(&doomed.connection.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get_user(&doomed.pool, &doomed.user)
            .await
            .unwrap()
            .is_none()
    );
    for id in &doomed.inbox {
        assert!(store.inbox_get(*id).await.unwrap().is_none());
    }
    for id in &doomed.jobs {
        assert!(store.get_job(id).await.unwrap().is_none());
    }
    assert!(matches!(
        store.delete_pool(&doomed.pool).await,
        Err(StoreError::NotFound(_))
    ));

    // The other pool reads back whole, and its connection's lease is still held.
    let p = &kept.pool;
    assert!(store.get_pool(p).await.unwrap().is_some());
    let u = store.get_user(p, &kept.user).await.unwrap().unwrap();
    assert_eq!(u.departments.len(), 1);
    let d = store
        .get_department(p, &kept.department)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.leaders.len(), 1);
    let g = store.get_group(p, &kept.group).await.unwrap().unwrap();
    assert_eq!(g.members.len(), 2);
    assert_eq!(store.changes_since(p, 0, 100).await.unwrap().len(), 3);
    assert_eq!(
        store
            .find_external(&kept.connection.id, ObjectKind::User, "ou_1")
            .await
            .unwrap()
            .map(|r| r.object_id),
        Some(kept.user.0.clone())
    );
    assert_eq!(
        store
            .watermarks(&kept.connection.id, &["user:ou_1".into()])
            .await
            .unwrap()
            .len(),
        1
    );
    for id in &kept.inbox {
        assert!(store.inbox_get(*id).await.unwrap().is_some());
    }
    for id in &kept.jobs {
        assert!(store.get_job(id).await.unwrap().is_some());
    }
    assert_eq!(
        store
            .list_parked(&ParkedFilter::pool(p), ALL)
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(
        !store
            .try_acquire_lease(
                &kept.connection.id,
                "someone-else",
                std::time::Duration::from_secs(60),
                2_000
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .try_acquire_event_lease(
                &kept.connection.id,
                "someone-else",
                std::time::Duration::from_secs(60),
                2_000
            )
            .await
            .unwrap()
    );
    assert!(store.get_connection(&kept.gone).await.unwrap().is_none());
    // A change after the deletion numbers on from the kept pool's counter.
    let mut b = batch(p, vec![put_user(&user(p, 2), ChangeKind::UserCreated)]);
    b.watermarks.clear();
    let applied = store.apply(b).await.unwrap();
    assert_eq!(applied.changes[0].seq, 4);
}

pub async fn apply_sets_versions_and_logs_changes(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let d = department(&pool, "R&D", None);
    let d2 = department(&pool, "Ops", None);
    let mut u = user(&pool, 1);
    // Two memberships in this order, the second not primary and without a user order: each
    // read (one row with its memberships as JSON) gives them back as written.
    u.departments = vec![
        membership(&d.id, true),
        directory::model::Membership {
            department_id: d2.id.clone(),
            user_order: None,
            department_order: Some(3),
            primary: false,
        },
    ];
    u.in_root = false;
    u.version = 42; // ignored: the store sets versions and times
    u.created_at = 5;
    let source = ChangeSource::Event {
        event_id: "ev-1".into(),
        connection_id: ConnectionId::generate(),
    };
    let mut first = batch(
        &pool,
        vec![
            put_department(&d, ChangeKind::DepartmentCreated),
            put_user(&u, ChangeKind::UserCreated),
            put_department(&d2, ChangeKind::DepartmentCreated),
        ],
    );
    first.source = source.clone();
    let applied = store.apply(first).await.unwrap();
    assert_eq!(applied.changes.len(), 3);
    let (cd, cu) = (&applied.changes[0], &applied.changes[1]);
    assert_eq!((cd.seq, cu.seq), (1, 2));
    assert_eq!(
        (cd.kind, cd.object_kind, cd.object_id.as_str(), cd.version),
        (
            ChangeKind::DepartmentCreated,
            ObjectKind::Department,
            d.id.as_str(),
            1
        )
    );
    assert_eq!(
        (cu.kind, cu.object_kind, cu.object_id.as_str(), cu.version),
        (ChangeKind::UserCreated, ObjectKind::User, u.id.as_str(), 1)
    );
    assert_eq!(cu.source, source);
    assert_eq!(cu.pool_id, pool);

    let v1 = store.get_user(&pool, &u.id).await.unwrap().unwrap();
    assert_eq!(v1.version, 1);
    assert_eq!(v1.created_at, cu.at);
    assert_eq!(v1.updated_at, cu.at);
    assert_eq!(v1.profile, u.profile);
    assert_eq!(v1.departments, u.departments);
    assert_eq!(serde_json::to_value(&v1).unwrap(), cu.object);
    let listed = store
        .list_users(&pool, &UserQuery::default(), &KeyPage::first(10))
        .await
        .unwrap();
    assert_eq!(listed.items, vec![v1.clone()]);
    let by_id = store.get_users(&pool, &[u.id.clone()]).await.unwrap();
    assert_eq!(by_id, vec![v1.clone()]);
    let stored_d = store.get_department(&pool, &d.id).await.unwrap().unwrap();
    assert_eq!(serde_json::to_value(&stored_d).unwrap(), cd.object);

    // Replace: version + 1, created_at kept, the full object replaced (memberships too).
    let mut renamed = v1.clone();
    renamed.profile.name = Some("Renamed".into());
    renamed.departments = Vec::new();
    renamed.in_root = true;
    let applied = store
        .apply(batch(
            &pool,
            vec![Write::PutUser {
                user: renamed.clone(),
                change: ChangeKind::UserUpdated,
                expected_version: Some(1),
            }],
        ))
        .await
        .unwrap();
    assert_eq!(applied.changes[0].seq, 4);
    let v2 = store.get_user(&pool, &u.id).await.unwrap().unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(v2.created_at, v1.created_at);
    assert!(v2.updated_at >= v1.updated_at);
    assert_eq!(v2.profile.name.as_deref(), Some("Renamed"));
    assert!(v2.departments.is_empty());

    // expected_version: 0 = must not exist yet; otherwise the stored version.
    match store
        .apply(batch(
            &pool,
            vec![Write::PutUser {
                user: v2.clone(),
                change: ChangeKind::UserCreated,
                expected_version: Some(0),
            }],
        ))
        .await
    {
        Err(StoreError::VersionConflict {
            kind,
            id,
            expected,
            found,
        }) => assert_eq!(
            (kind, id.as_str(), expected, found),
            ("user", u.id.as_str(), 0, 2)
        ),
        other => panic!("expected a version conflict, got {other:?}"),
    }
    let fresh = user(&pool, 2);
    let applied = store
        .apply(batch(
            &pool,
            vec![Write::PutUser {
                user: fresh.clone(),
                change: ChangeKind::UserCreated,
                expected_version: Some(0),
            }],
        ))
        .await
        .unwrap();
    assert_eq!((applied.changes[0].seq, applied.changes[0].version), (5, 1));

    // One object twice in a batch: two change rows, two versions, the later state stored.
    let mut a = v2.clone();
    a.profile.name = Some("A".into());
    let mut b = v2.clone();
    b.profile.name = Some("B".into());
    let applied = store
        .apply(batch(
            &pool,
            vec![
                put_user(&a, ChangeKind::UserUpdated),
                put_user(&b, ChangeKind::UserUpdated),
            ],
        ))
        .await
        .unwrap();
    let seen: Vec<(i64, i64)> = applied.changes.iter().map(|c| (c.seq, c.version)).collect();
    assert_eq!(seen, vec![(6, 3), (7, 4)]);
    assert_eq!(applied.changes[0].object["profile"]["name"], "A");
    let v4 = store.get_user(&pool, &u.id).await.unwrap().unwrap();
    assert_eq!((v4.version, v4.profile.name.as_deref()), (4, Some("B")));

    // An object of another pool is refused.
    let stranger = user(&PoolId::generate(), 3);
    assert!(
        store
            .apply(batch(
                &pool,
                vec![put_user(&stranger, ChangeKind::UserCreated)]
            ))
            .await
            .is_err()
    );
    assert!(store.get_user(&pool, &stranger.id).await.unwrap().is_none());

    // The log holds exactly what apply returned.
    let log = store.changes_since(&pool, 0, 100).await.unwrap();
    assert_eq!(
        log.iter().map(|c| c.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5, 6, 7]
    );
    assert_eq!(log[5], applied.changes[0]);
    let page = store.changes_since(&pool, 2, 2).await.unwrap();
    assert_eq!(page.iter().map(|c| c.seq).collect::<Vec<_>>(), vec![3, 4]);
    assert!(store.changes_since(&pool, 7, 10).await.unwrap().is_empty());
    // Each pool has its own numbering.
    let other = new_pool(&store).await;
    let applied = store
        .apply(batch(
            &other,
            vec![put_user(&user(&other, 9), ChangeKind::UserCreated)],
        ))
        .await
        .unwrap();
    assert_eq!(applied.changes[0].seq, 1);
}

pub async fn version_conflict_writes_nothing(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let c = new_connection(&store, &pool, "main").await;
    let u = user(&pool, 1);
    store
        .apply(batch(&pool, vec![put_user(&u, ChangeKind::UserCreated)]))
        .await
        .unwrap();
    let inbox = match store
        .inbox_insert(&[event(&c, "e", Some(1))])
        .await
        .unwrap()[0]
    {
        directory::store::InsertOutcome::Inserted(id) => id,
        other => panic!("{other:?}"),
    };

    let newcomer = user(&pool, 2);
    let d = department(&pool, "Sales", None);
    let mut doomed = batch(
        &pool,
        vec![
            Write::PutExternalRef(external(
                &c.id,
                ObjectKind::User,
                "ou_2",
                newcomer.id.as_str(),
            )),
            put_user(&newcomer, ChangeKind::UserCreated),
            put_department(&d, ChangeKind::DepartmentCreated),
            Write::PutUser {
                user: u.clone(),
                change: ChangeKind::UserUpdated,
                expected_version: Some(5),
            },
        ],
    );
    doomed.watermarks = vec![watermark(&c.id, "user:ou_2", 10, false)];
    doomed.inbox = vec![(inbox, InboxOutcome::Applied { note: None })];
    match store.apply(doomed).await {
        Err(StoreError::VersionConflict {
            kind,
            id,
            expected,
            found,
        }) => assert_eq!(
            (kind, id.as_str(), expected, found),
            ("user", u.id.as_str(), 5, 1)
        ),
        other => panic!("expected a version conflict, got {other:?}"),
    }
    assert!(store.get_user(&pool, &newcomer.id).await.unwrap().is_none());
    assert!(store.get_department(&pool, &d.id).await.unwrap().is_none());
    assert!(
        store
            .find_external(&c.id, ObjectKind::User, "ou_2")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .watermarks(&c.id, &["user:ou_2".into()])
            .await
            .unwrap()
            .is_empty()
    );
    let event = store.inbox_get(inbox).await.unwrap().unwrap();
    assert_eq!(event.state, directory::store::InboxState::Pending);
    assert_eq!(store.changes_since(&pool, 0, 100).await.unwrap().len(), 1);
    assert_eq!(
        store.get_user(&pool, &u.id).await.unwrap().unwrap().version,
        1
    );
    // The counter did not move: the next change is number 2.
    let applied = store
        .apply(batch(
            &pool,
            vec![put_user(&newcomer, ChangeKind::UserCreated)],
        ))
        .await
        .unwrap();
    assert_eq!(applied.changes[0].seq, 2);
}

pub async fn external_refs_upsert_without_change_rows(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let c = new_connection(&store, &pool, "main").await;
    let c2 = new_connection(&store, &pool, "second").await;
    let (u1, u2) = (UserId::generate(), UserId::generate());
    let r1 = external(&c.id, ObjectKind::User, "ou_1", u1.as_str());
    let applied = store
        .apply(batch(&pool, vec![Write::PutExternalRef(r1.clone())]))
        .await
        .unwrap();
    assert!(applied.changes.is_empty());
    assert!(store.changes_since(&pool, 0, 10).await.unwrap().is_empty());
    assert_eq!(
        store
            .find_external(&c.id, ObjectKind::User, "ou_1")
            .await
            .unwrap(),
        Some(r1.clone())
    );

    // Same key: replaced.
    let mut moved = r1.clone();
    moved.object_id = u2.0.clone();
    moved.union_id = Some("on_changed".into());
    moved.custom_id = None;
    let r2 = external(&c2.id, ObjectKind::User, "ou_other", u2.as_str());
    let dept_same_external = external(&c.id, ObjectKind::Department, "ou_1", "d-1");
    store
        .apply(batch(
            &pool,
            vec![
                Write::PutExternalRef(moved.clone()),
                Write::PutExternalRef(r2.clone()),
                Write::PutExternalRef(dept_same_external.clone()),
            ],
        ))
        .await
        .unwrap();
    assert_eq!(
        store
            .find_external(&c.id, ObjectKind::User, "ou_1")
            .await
            .unwrap(),
        Some(moved.clone())
    );
    assert!(
        store
            .refs_of(ObjectKind::User, u1.as_str())
            .await
            .unwrap()
            .is_empty()
    );
    let mut both = vec![moved, r2];
    both.sort_by(|a, b| a.connection_id.cmp(&b.connection_id));
    assert_eq!(
        store.refs_of(ObjectKind::User, u2.as_str()).await.unwrap(),
        both
    );
    assert_eq!(
        store
            .find_external(&c.id, ObjectKind::Department, "ou_1")
            .await
            .unwrap(),
        Some(dept_same_external)
    );
    assert!(
        store
            .find_external(&c.id, ObjectKind::Group, "ou_1")
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn watermarks_never_move_backwards(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let c = new_connection(&store, &pool, "main").await;
    let other = new_connection(&store, &pool, "other").await;
    let key = "user:ou_1".to_owned();
    let mark = |marks: Vec<directory::store::Watermark>| {
        let mut b = batch(&pool, Vec::new());
        b.watermarks = marks;
        b
    };
    let read = || async {
        let marks = store
            .watermarks(&c.id, std::slice::from_ref(&key))
            .await
            .unwrap();
        let w = &marks[&key];
        (w.event_time, w.deleted)
    };
    store
        .apply(mark(vec![watermark(&c.id, &key, 100, false)]))
        .await
        .unwrap();
    assert_eq!(read().await, (100, false));
    store
        .apply(mark(vec![watermark(&c.id, &key, 50, true)]))
        .await
        .unwrap();
    assert_eq!(
        read().await,
        (100, false),
        "an older event never moves it back"
    );
    store
        .apply(mark(vec![watermark(&c.id, &key, 150, true)]))
        .await
        .unwrap();
    assert_eq!(read().await, (150, true));
    store
        .apply(mark(vec![watermark(&c.id, &key, 150, false)]))
        .await
        .unwrap();
    assert_eq!(read().await, (150, true), "on a tie the deletion stays");
    store
        .apply(mark(vec![watermark(&c.id, &key, 200, false)]))
        .await
        .unwrap();
    assert_eq!(read().await, (200, false));
    // Several marks for one object in a batch: the newest wins.
    store
        .apply(mark(vec![
            watermark(&c.id, &key, 300, false),
            watermark(&c.id, &key, 250, true),
            watermark(&c.id, &key, 300, true),
            watermark(&c.id, &key, 120, false),
            watermark(&other.id, &key, 5, false),
        ]))
        .await
        .unwrap();
    assert_eq!(read().await, (300, true));
    let got = store
        .watermarks(&c.id, &[key.clone(), "user:unknown".into()])
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[&key].connection_id, c.id);
    let theirs = store
        .watermarks(&other.id, std::slice::from_ref(&key))
        .await
        .unwrap();
    assert_eq!(theirs[&key].event_time, 5);
    assert!(store.changes_since(&pool, 0, 10).await.unwrap().is_empty());
    assert!(store.watermarks(&c.id, &[]).await.unwrap().is_empty());
}

/// Builds a small organisation through many batches (creates, updates, moves, tombstones),
/// then folds the change log and compares it with what the store serves.
pub async fn replaying_the_change_log_rebuilds_the_directory(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let root = department(&pool, "HQ", None);
    let mut child = department(&pool, "Engineering", Some(&root.id));
    let other = department(&pool, "Sales", Some(&root.id));
    let mut users: Vec<User> = (0..10)
        .map(|n| {
            let mut u = user(&pool, n);
            u.departments = vec![membership(
                if n % 2 == 0 { &child.id } else { &other.id },
                true,
            )];
            u.in_root = false;
            u
        })
        .collect();
    users[3].manager_id = Some(users[0].id.clone());
    child.leaders = vec![
        leader(&users[0].id, LeaderKind::Main),
        leader(&users[2].id, LeaderKind::Deputy),
    ];
    let mut g = group(
        &pool,
        "Everyone",
        vec![
            GroupMember::User(users[1].id.clone()),
            GroupMember::Department(root.id.clone()),
        ],
    );
    let doomed_group = group(&pool, "Temp", Vec::new());
    let mut writes = vec![
        put_department(&root, ChangeKind::DepartmentCreated),
        put_department(&child, ChangeKind::DepartmentCreated),
        put_department(&other, ChangeKind::DepartmentCreated),
    ];
    writes.extend(users.iter().map(|u| put_user(u, ChangeKind::UserCreated)));
    store.apply(batch(&pool, writes)).await.unwrap();
    store
        .apply(batch(
            &pool,
            vec![
                put_group(&g, ChangeKind::GroupCreated),
                put_group(&doomed_group, ChangeKind::GroupCreated),
            ],
        ))
        .await
        .unwrap();
    // Moves, renames, a leaver, member changes, a deleted group.
    child.parent_id = Some(other.id.clone());
    store
        .apply(batch(
            &pool,
            vec![put_department(&child, ChangeKind::DepartmentMoved)],
        ))
        .await
        .unwrap();
    users[4].profile.name = Some("Renamed Four".into());
    users[5].status = UserStatus::Resigned;
    users[5].departments.clear();
    users[5].deleted_at = Some(9_000);
    store
        .apply(batch(
            &pool,
            vec![
                put_user(&users[4], ChangeKind::UserUpdated),
                put_user(&users[5], ChangeKind::UserDeleted),
            ],
        ))
        .await
        .unwrap();
    g.members.push(GroupMember::User(users[6].id.clone()));
    g.members.sort();
    let mut gone = doomed_group.clone();
    gone.deleted_at = Some(9_500);
    store
        .apply(batch(
            &pool,
            vec![
                put_group(&g, ChangeKind::GroupMembersChanged),
                put_group(&gone, ChangeKind::GroupDeleted),
                put_user(&users[4], ChangeKind::UserUpdated),
            ],
        ))
        .await
        .unwrap();

    let log = read_log(&store, &pool, 7).await;
    let rebuilt = fold(&log);
    assert_eq!(rebuilt.len(), 3 + 10 + 2);
    assert_rebuilt_matches(&store, &pool, &rebuilt).await;
    let live_users = store
        .list_users(&pool, &UserQuery::default(), &EVERYONE)
        .await
        .unwrap()
        .items;
    assert_eq!(live_users.len(), 9);
    let everyone = store
        .list_users(
            &pool,
            &UserQuery {
                include_deleted: true,
                ..UserQuery::default()
            },
            &EVERYONE,
        )
        .await
        .unwrap()
        .items;
    assert_eq!(everyone.len(), 10);
    for u in everyone {
        let from_log: User =
            serde_json::from_value(rebuilt[&(ObjectKind::User, u.id.0.clone())].clone()).unwrap();
        assert_eq!(u, from_log);
    }
}

/// Reads the whole change log in pages, checking the numbering has no gap.
async fn read_log(store: &Store, pool: &PoolId, page: u64) -> Vec<ChangeRecord> {
    let mut log: Vec<ChangeRecord> = Vec::new();
    loop {
        let after = log.last().map_or(0, |c| c.seq);
        let rows = store.changes_since(pool, after, page).await.unwrap();
        if rows.is_empty() {
            break;
        }
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(row.seq, after + 1 + i as i64, "a gap in the change log");
        }
        log.extend(rows);
    }
    log
}

/// The last state of every object in the log.
fn fold(log: &[ChangeRecord]) -> HashMap<(ObjectKind, String), serde_json::Value> {
    let mut objects = HashMap::new();
    for c in log {
        assert_eq!(c.object["version"], c.version);
        objects.insert((c.object_kind, c.object_id.clone()), c.object.clone());
    }
    objects
}

async fn assert_rebuilt_matches(
    store: &Store,
    pool: &PoolId,
    rebuilt: &HashMap<(ObjectKind, String), serde_json::Value>,
) {
    for ((kind, id), object) in rebuilt {
        match kind {
            ObjectKind::User => {
                let stored = store
                    .get_user(pool, &UserId(id.clone()))
                    .await
                    .unwrap()
                    .unwrap();
                let replayed: User = serde_json::from_value(object.clone()).unwrap();
                assert_eq!(stored, replayed);
            }
            ObjectKind::Department => {
                let stored = store
                    .get_department(pool, &DepartmentId(id.clone()))
                    .await
                    .unwrap()
                    .unwrap();
                let replayed: Department = serde_json::from_value(object.clone()).unwrap();
                assert_eq!(stored, replayed);
            }
            ObjectKind::Group => {
                let stored = store
                    .get_group(pool, &GroupId(id.clone()))
                    .await
                    .unwrap()
                    .unwrap();
                let replayed: Group = serde_json::from_value(object.clone()).unwrap();
                assert_eq!(stored, replayed);
            }
        }
    }
}

/// 8 writers × 50 batches, every batch also bumping one shared department: the log is
/// numbered 1…N without gaps, a cursor reader running alongside never skips a number, and
/// the shared object's versions follow the log order one by one.
pub async fn concurrent_writers_number_changes_without_gaps(store: Store, _raw: Raw) {
    const WRITERS: usize = 8;
    const BATCHES: usize = 50;
    let pool = new_pool(&store).await;
    let shared = department(&pool, "Shared", None);
    store
        .apply(batch(
            &pool,
            vec![put_department(&shared, ChangeKind::DepartmentCreated)],
        ))
        .await
        .unwrap();
    let total = 1 + (WRITERS * BATCHES * 2) as i64;

    let reader = {
        let store = store.clone();
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut cursor = 0;
            let mut reads = 0;
            while cursor < total {
                let rows = store.changes_since(&pool, cursor, 64).await.unwrap();
                for row in &rows {
                    assert_eq!(row.seq, cursor + 1, "a cursor reader skipped a change");
                    cursor = row.seq;
                }
                reads += 1;
                tokio::task::yield_now().await;
            }
            reads
        })
    };
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let store = store.clone();
        let pool = pool.clone();
        let shared = shared.clone();
        writers.spawn(async move {
            let mut u = user(&pool, w);
            let mut d = shared;
            for n in 0..BATCHES {
                u.profile.name = Some(format!("writer {w} batch {n}"));
                d.name = Some(format!("touched by {w}/{n}"));
                let change = if n == 0 {
                    ChangeKind::UserCreated
                } else {
                    ChangeKind::UserUpdated
                };
                store
                    .apply(batch(
                        &pool,
                        vec![
                            put_user(&u, change),
                            put_department(&d, ChangeKind::DepartmentUpdated),
                        ],
                    ))
                    .await
                    .unwrap();
            }
            u.id
        });
    }
    let mut user_ids = Vec::new();
    while let Some(id) = writers.join_next().await {
        user_ids.push(id.unwrap());
    }
    assert!(reader.await.unwrap() > 0);

    let log = read_log(&store, &pool, 1_000).await;
    assert_eq!(log.len() as i64, total);
    let mut versions: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for c in &log {
        versions
            .entry(c.object_id.clone())
            .or_default()
            .push(c.version);
    }
    let expect = |n: usize| (1..=n as i64).collect::<Vec<_>>();
    assert_eq!(versions[shared.id.as_str()], expect(1 + WRITERS * BATCHES));
    for id in &user_ids {
        assert_eq!(versions[id.as_str()], expect(BATCHES));
    }
    assert_rebuilt_matches(&store, &pool, &fold(&log)).await;
}

/// 20 000 users (and departments, groups, tombstones) mapped by one connection come back
/// complete from one `load_connection_state`; objects only another connection maps do not.
/// The outline (`load_connection_outline`) is the same state with each profile cut to the
/// name.
pub async fn connection_state_of_20k_users(store: Store, _raw: Raw) {
    const USERS: usize = 20_000;
    let pool = new_pool(&store).await;
    let c = new_connection(&store, &pool, "main").await;
    let other = new_connection(&store, &pool, "other").await;
    let departments: Vec<Department> = (0..50)
        .map(|n| department(&pool, &format!("D{n}"), None))
        .collect();
    let mut writes = Vec::new();
    for d in &departments {
        writes.push(put_department(d, ChangeKind::DepartmentCreated));
        writes.push(Write::PutExternalRef(external(
            &c.id,
            ObjectKind::Department,
            &format!("od-{}", d.id),
            d.id.as_str(),
        )));
    }
    store.apply(batch(&pool, writes)).await.unwrap();

    let mut expected: HashMap<UserId, User> = HashMap::new();
    let mut all_users = Vec::new();
    for n in 0..USERS {
        let mut u = user(&pool, n);
        u.in_root = false;
        u.departments = vec![membership(&departments[n % 50].id, true)];
        if n % 10 == 0 {
            u.departments
                .push(membership(&departments[(n + 1) % 50].id, false));
        }
        if n % 1_000 == 7 {
            u.status = UserStatus::Resigned;
            u.departments.clear();
            u.deleted_at = Some(1);
        }
        all_users.push(u);
    }
    for chunk in all_users.chunks(1_000) {
        let mut writes = Vec::with_capacity(chunk.len() * 2);
        for u in chunk {
            writes.push(put_user(u, ChangeKind::UserCreated));
            writes.push(Write::PutExternalRef(external(
                &c.id,
                ObjectKind::User,
                &format!("ou_{}", u.id),
                u.id.as_str(),
            )));
            expected.insert(u.id.clone(), u.clone());
        }
        store.apply(batch(&pool, writes)).await.unwrap();
    }
    // Also mapped by the other connection: still one object in this state.
    let shared = &all_users[0];
    // Only the other connection's: absent.
    let theirs = user(&pool, USERS + 1);
    let g = group(
        &pool,
        "All",
        vec![
            GroupMember::User(shared.id.clone()),
            GroupMember::Department(departments[0].id.clone()),
        ],
    );
    store
        .apply(batch(
            &pool,
            vec![
                put_user(&theirs, ChangeKind::UserCreated),
                Write::PutExternalRef(external(
                    &other.id,
                    ObjectKind::User,
                    "ou_theirs",
                    theirs.id.as_str(),
                )),
                Write::PutExternalRef(external(
                    &other.id,
                    ObjectKind::User,
                    "ou_shared",
                    shared.id.as_str(),
                )),
                put_group(&g, ChangeKind::GroupCreated),
                Write::PutExternalRef(external(&c.id, ObjectKind::Group, "g1", g.id.as_str())),
            ],
        ))
        .await
        .unwrap();

    let state = store.load_connection_state(&c.id).await.unwrap();
    assert_eq!(state.users.len(), USERS);
    assert_eq!(state.departments.len(), 50);
    assert_eq!(state.groups.len(), 1);
    assert_eq!(state.groups[0].members, g.members);
    assert_eq!(state.refs.len(), USERS + 50 + 1);
    assert!(state.refs.iter().all(|r| r.connection_id == c.id));
    let mut seen = HashSet::new();
    let mut tombstones = 0;
    for u in &state.users {
        assert!(seen.insert(u.id.clone()), "user listed twice");
        let want = &expected[&u.id];
        assert_eq!(u.departments, want.departments);
        assert_eq!(u.profile, want.profile);
        assert_eq!(u.version, 1);
        tombstones += usize::from(u.deleted_at.is_some());
    }
    assert_eq!(tombstones, USERS / 1_000);
    assert!(!seen.contains(&theirs.id));

    let outline = store.load_connection_outline(&c.id).await.unwrap();
    let mut cut = state.clone();
    for u in &mut cut.users {
        u.profile = Profile::empty();
    }
    assert!(
        state.users.iter().any(|u| u.profile.email.is_some()),
        "the fixture has more than names"
    );
    assert_eq!(outline, cut);

    let theirs_state = store.load_connection_state(&other.id).await.unwrap();
    assert_eq!(theirs_state.users.len(), 2);
    assert!(matches!(
        store.load_connection_state(&ConnectionId::generate()).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store
            .count_users(
                &pool,
                &UserQuery {
                    include_deleted: true,
                    ..UserQuery::default()
                }
            )
            .await
            .unwrap(),
        USERS as u64 + 1
    );
}

pub async fn user_search_filters(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let d1 = department(&pool, "D1", None);
    let d2 = department(&pool, "D2", None);
    let person = |name: &str, en: Option<&str>, email: Option<&str>, mobile: &str, no: &str| {
        let mut u = user(&pool, 0);
        u.profile = UserProfile {
            name: Some(name.into()),
            en_name: en.map(Into::into),
            email: email.map(Into::into),
            mobile: Some(mobile.into()),
            employee_no: Some(no.into()),
            ..UserProfile::default()
        }
        .into();
        u.in_root = false;
        u
    };
    let mut a = person(
        "Émile Zola",
        Some("Emile"),
        Some("emile@ACME.com"),
        "+33 1",
        "E-1",
    );
    a.departments = vec![membership(&d1.id, true)];
    let mut b = person(
        "张伟",
        Some("Zhang Wei"),
        Some("zhang.wei@acme.com"),
        "+86 138",
        "E-2",
    );
    b.departments = vec![membership(&d1.id, false), membership(&d2.id, true)];
    b.status = UserStatus::Frozen;
    let mut c = person("100% Percent", None, Some("pct@acme.com"), "+1 555", "E_3");
    c.departments = vec![membership(&d2.id, true)];
    let mut d = person("Deleted Dave", None, Some("dave@acme.com"), "+1 556", "E-4");
    d.status = UserStatus::Resigned;
    d.deleted_at = Some(1);
    let mut e = person("Plain", None, None, "+1 557", "E-5");
    e.in_root = true;
    let foreign_pool = new_pool(&store).await;
    let foreigner = user(&foreign_pool, 1);
    let people = [&a, &b, &c, &d, &e];
    store
        .apply(batch(
            &pool,
            people
                .iter()
                .map(|u| put_user(u, ChangeKind::UserCreated))
                .chain([
                    put_department(&d1, ChangeKind::DepartmentCreated),
                    put_department(&d2, ChangeKind::DepartmentCreated),
                ])
                .collect(),
        ))
        .await
        .unwrap();
    store
        .apply(batch(
            &foreign_pool,
            vec![put_user(&foreigner, ChangeKind::UserCreated)],
        ))
        .await
        .unwrap();

    let find = |q: UserQuery| {
        let store = store.clone();
        let pool = pool.clone();
        async move {
            let found = store.list_users(&pool, &q, &EVERYONE).await.unwrap().items;
            assert_eq!(
                store.count_users(&pool, &q).await.unwrap(),
                found.len() as u64
            );
            let mut names: Vec<String> = found
                .into_iter()
                .map(|u| u.profile.name.clone().unwrap_or_default())
                .collect();
            names.sort();
            names
        }
    };
    let text = |t: &str| UserQuery {
        text: Some(t.into()),
        ..UserQuery::default()
    };
    let names = |list: &[&User]| {
        let mut n: Vec<String> = list
            .iter()
            .map(|u| u.profile.name.clone().unwrap_or_default())
            .collect();
        n.sort();
        n
    };
    assert_eq!(
        find(text("ÉMILE")).await,
        names(&[&a]),
        "Unicode case folding"
    );
    assert_eq!(find(text("acme.COM")).await, names(&[&a, &b, &c]));
    assert_eq!(find(text("张")).await, names(&[&b]));
    assert_eq!(find(text("zhang wei")).await, names(&[&b]), "English name");
    assert_eq!(find(text("+86")).await, names(&[&b]), "mobile");
    assert_eq!(find(text("e-5")).await, names(&[&e]), "employee number");
    assert_eq!(find(text("%")).await, names(&[&c]), "% is literal");
    assert_eq!(find(text("_")).await, names(&[&c]), "_ is literal");
    assert_eq!(
        find(text("dave")).await,
        Vec::<String>::new(),
        "tombstones hidden"
    );
    assert_eq!(find(text("")).await.len(), 4);
    assert_eq!(
        find(UserQuery {
            email: Some("zhang.wei@acme.com".into()),
            ..UserQuery::default()
        })
        .await,
        names(&[&b])
    );
    assert!(
        find(UserQuery {
            email: Some("zhang".into()),
            ..UserQuery::default()
        })
        .await
        .is_empty(),
        "email is exact"
    );
    assert_eq!(
        find(UserQuery {
            mobile: Some("+33 1".into()),
            ..UserQuery::default()
        })
        .await,
        names(&[&a])
    );
    assert_eq!(
        find(UserQuery {
            employee_no: Some("E_3".into()),
            ..UserQuery::default()
        })
        .await,
        names(&[&c])
    );
    assert_eq!(
        find(UserQuery {
            department_id: Some(d1.id.clone()),
            ..UserQuery::default()
        })
        .await,
        names(&[&a, &b])
    );
    assert_eq!(
        find(UserQuery {
            department_id: Some(d2.id.clone()),
            text: Some("percent".into()),
            ..UserQuery::default()
        })
        .await,
        names(&[&c])
    );
    assert_eq!(
        find(UserQuery {
            status: Some(UserStatus::Frozen),
            ..UserQuery::default()
        })
        .await,
        names(&[&b])
    );
    assert!(
        find(UserQuery {
            status: Some(UserStatus::Resigned),
            ..UserQuery::default()
        })
        .await
        .is_empty()
    );
    assert_eq!(
        find(UserQuery {
            status: Some(UserStatus::Resigned),
            include_deleted: true,
            ..UserQuery::default()
        })
        .await,
        names(&[&d])
    );
    let everyone = UserQuery {
        include_deleted: true,
        ..UserQuery::default()
    };
    assert_eq!(find(everyone.clone()).await, names(&people));

    // Pages are disjoint and cover everything, in a stable order.
    let all = store
        .list_users(&pool, &everyone, &EVERYONE)
        .await
        .unwrap()
        .items;
    let mut paged = Vec::new();
    let mut page = KeyPage::first(2);
    loop {
        let found = store.list_users(&pool, &everyone, &page).await.unwrap();
        paged.extend(found.items);
        match found.next {
            Some(next) => page.after = Some(next),
            None => break,
        }
    }
    assert_eq!(paged, all);
    // Memberships come with listed users.
    let listed_b = all.iter().find(|u| u.id == b.id).unwrap();
    assert_eq!(listed_b.departments, b.departments);
}

pub async fn departments_and_groups_lists(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let (boss, deputy) = (UserId::generate(), UserId::generate());
    let mut a = department(&pool, "A", None);
    a.leaders = vec![
        leader(&deputy, LeaderKind::Deputy),
        leader(&boss, LeaderKind::Main),
    ];
    a.i18n_name = Some(directory::model::I18nName {
        zh_cn: Some("甲".into()),
        en_us: Some("A".into()),
        ja_jp: None,
    });
    a.chat_id = Some("oc_1".into());
    let b = department(&pool, "B", Some(&a.id));
    let mut gone = department(&pool, "Gone", Some(&a.id));
    gone.deleted_at = Some(5);
    gone.leaders = vec![leader(&boss, LeaderKind::Main)];
    let g1 = group(
        &pool,
        "G1",
        vec![
            GroupMember::Department(b.id.clone()),
            GroupMember::User(boss.clone()),
            GroupMember::User(deputy.clone()),
        ],
    );
    let g2 = group(&pool, "G2", Vec::new());
    let mut g3 = group(&pool, "G3", vec![GroupMember::User(boss.clone())]);
    g3.deleted_at = Some(6);
    g3.kind = directory::model::GroupKind::Dynamic;
    store
        .apply(batch(
            &pool,
            vec![
                put_department(&a, ChangeKind::DepartmentCreated),
                put_department(&b, ChangeKind::DepartmentCreated),
                put_department(&gone, ChangeKind::DepartmentDeleted),
                put_group(&g1, ChangeKind::GroupCreated),
                put_group(&g2, ChangeKind::GroupCreated),
                put_group(&g3, ChangeKind::GroupDeleted),
            ],
        ))
        .await
        .unwrap();

    let listed = store.list_departments(&pool).await.unwrap();
    let by_id: HashMap<DepartmentId, Department> =
        listed.into_iter().map(|d| (d.id.clone(), d)).collect();
    assert_eq!(by_id.len(), 2, "tombstones are left out");
    assert_eq!(by_id[&a.id].leaders, a.leaders, "leader order kept");
    assert_eq!(by_id[&a.id].i18n_name, a.i18n_name);
    assert_eq!(by_id[&a.id].chat_id, a.chat_id);
    assert_eq!(by_id[&b.id].parent_id, Some(a.id.clone()));
    let tomb = store
        .get_department(&pool, &gone.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((tomb.deleted_at, tomb.leaders.len()), (Some(5), 1));

    let groups = store.list_groups(&pool, &EVERYONE).await.unwrap().items;
    let mut names: Vec<_> = groups
        .iter()
        .map(|e| e.group.name.clone().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec!["G1", "G2"]);
    let listed_g1 = groups.iter().find(|e| e.group.id == g1.id).unwrap();
    assert_eq!(
        listed_g1.member_count,
        g1.members.len() as u64,
        "its members counted, not listed"
    );
    let stored_g1 = store.get_group(&pool, &g1.id).await.unwrap().unwrap();
    assert_eq!(listed_g1.group, GroupSummary::from(stored_g1));
    let first = store.list_groups(&pool, &KeyPage::first(1)).await.unwrap();
    let second = store
        .list_groups(
            &pool,
            &KeyPage {
                after: first.next.clone(),
                limit: 1,
            },
        )
        .await
        .unwrap();
    assert_eq!(first.items.len() + second.items.len(), 2);
    assert_ne!(first.items[0].group.id, second.items[0].group.id);
    assert_eq!(second.next, None, "the last page says so");
    let stored_g3 = store.get_group(&pool, &g3.id).await.unwrap().unwrap();
    assert_eq!(stored_g3.kind, directory::model::GroupKind::Dynamic);
    assert_eq!(stored_g3.members, g3.members);
    assert!(
        store
            .get_group(&pool, &GroupId::generate())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .list_departments(&PoolId::generate())
            .await
            .unwrap()
            .is_empty()
    );

    // Counted by the database, tombstones left out, per pool.
    assert_eq!(store.count_departments(&pool).await.unwrap(), 2);
    assert_eq!(store.count_groups(&pool).await.unwrap(), 2);
    let other = new_pool(&store).await;
    store
        .apply(batch(
            &other,
            vec![put_department(
                &department(&other, "Elsewhere", None),
                ChangeKind::DepartmentCreated,
            )],
        ))
        .await
        .unwrap();
    assert_eq!(store.count_departments(&other).await.unwrap(), 1);
    assert_eq!(store.count_groups(&other).await.unwrap(), 0);
    assert_eq!(store.count_departments(&pool).await.unwrap(), 2);
}

/// A damaged row is reported as corrupt, never a panic or a silent default.
pub async fn damaged_rows_are_corrupt_not_panics(store: Store, raw: Raw) {
    let pool = new_pool(&store).await;
    let c = new_connection(&store, &pool, "main").await;
    let u = user(&pool, 1);
    store
        .apply(batch(&pool, vec![put_user(&u, ChangeKind::UserCreated)]))
        .await
        .unwrap();
    raw_execute(&raw, "UPDATE users SET status = 'bogus'").await;
    assert!(matches!(
        store.get_user(&pool, &u.id).await,
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        store
            .list_users(&pool, &UserQuery::default(), &EVERYONE)
            .await,
        Err(StoreError::Corrupt(_))
    ));
    raw_execute(
        &raw,
        "UPDATE users SET status = 'active', profile = '\"nope\"'",
    )
    .await;
    assert!(matches!(
        store.get_user(&pool, &u.id).await,
        Err(StoreError::Corrupt(_))
    ));
    raw_execute(&raw, "UPDATE connections SET provider = 'myspace'").await;
    assert!(matches!(
        store.get_connection(&c.id).await,
        Err(StoreError::Corrupt(_))
    ));
    raw_execute(&raw, "UPDATE changes SET kind = 'user_teleported'").await;
    assert!(matches!(
        store.changes_since(&pool, 0, 10).await,
        Err(StoreError::Corrupt(_))
    ));
}

pub async fn admin_lookups(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let other_pool = new_pool(&store).await;
    let c = new_connection(&store, &pool, "main").await;
    let c2 = new_connection(&store, &pool, "second").await;
    let (alice, bob) = (user(&pool, 1), user(&pool, 2));
    let r_alice = external(&c.id, ObjectKind::User, "ou_alice", alice.id.as_str());
    let r_bob = external(&c2.id, ObjectKind::User, "ou_bob", bob.id.as_str());
    let dept = department(&pool, "Sales", None);
    let r_dept = external(&c.id, ObjectKind::Department, "od-sales", dept.id.as_str());
    store
        .apply(batch(
            &pool,
            vec![
                put_user(&alice, ChangeKind::UserCreated),
                put_user(&bob, ChangeKind::UserCreated),
                put_department(&dept, ChangeKind::DepartmentCreated),
                Write::PutExternalRef(r_alice.clone()),
                Write::PutExternalRef(r_bob.clone()),
                Write::PutExternalRef(r_dept.clone()),
            ],
        ))
        .await
        .unwrap();

    // By each Feishu id, only within the connection and kind asked for.
    use directory::store::ExternalField::*;
    let find = |conn: &ConnectionId, kind, field, value: &str| {
        let store = store.clone();
        let (conn, value) = (conn.clone(), value.to_owned());
        async move {
            store
                .find_external_by(&conn, kind, field, &value)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        find(&c.id, ObjectKind::User, ExternalId, "ou_alice").await,
        Some(r_alice.clone())
    );
    assert_eq!(
        find(&c.id, ObjectKind::User, UnionId, "on_ou_alice").await,
        Some(r_alice.clone())
    );
    assert_eq!(
        find(&c.id, ObjectKind::User, CustomId, "custom-ou_alice").await,
        Some(r_alice.clone())
    );
    assert_eq!(
        find(&c.id, ObjectKind::Department, CustomId, "custom-od-sales").await,
        Some(r_dept)
    );
    assert_eq!(
        find(&c.id, ObjectKind::User, UnionId, "on_ou_bob").await,
        None
    );
    assert_eq!(
        find(&c2.id, ObjectKind::User, UnionId, "on_ou_bob").await,
        Some(r_bob)
    );
    assert_eq!(
        find(&c.id, ObjectKind::Group, CustomId, "custom-ou_alice").await,
        None
    );
    assert_eq!(find(&c.id, ObjectKind::User, UnionId, "").await, None);

    // History: newest first, one object only, limited.
    let mut renamed = alice.clone();
    renamed.profile.name = Some("Alice Renamed".into());
    store
        .apply(batch(
            &pool,
            vec![put_user(&renamed, ChangeKind::UserUpdated)],
        ))
        .await
        .unwrap();
    store
        .apply(batch(&pool, vec![put_user(&bob, ChangeKind::UserUpdated)]))
        .await
        .unwrap();
    let history = store
        .object_history(&pool, ObjectKind::User, alice.id.as_str(), 10)
        .await
        .unwrap();
    assert_eq!(
        history
            .iter()
            .map(|r| (r.kind, r.version))
            .collect::<Vec<_>>(),
        [(ChangeKind::UserUpdated, 2), (ChangeKind::UserCreated, 1)]
    );
    assert!(history.iter().all(|r| r.object_id == alice.id.0));
    assert_eq!(
        history[0].object["profile"]["name"],
        serde_json::json!("Alice Renamed")
    );
    let newest = store
        .object_history(&pool, ObjectKind::User, alice.id.as_str(), 1)
        .await
        .unwrap();
    assert_eq!(newest.len(), 1);
    assert_eq!(newest[0].version, 2);
    assert!(
        store
            .object_history(&other_pool, ObjectKind::User, alice.id.as_str(), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .object_history(&pool, ObjectKind::Department, alice.id.as_str(), 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Groups of a member: direct user members and department members, tombstones included.
    let g1 = group(
        &pool,
        "Engineering",
        vec![
            GroupMember::User(alice.id.clone()),
            GroupMember::User(bob.id.clone()),
        ],
    );
    let g2 = group(
        &pool,
        "Sales team",
        vec![GroupMember::Department(dept.id.clone())],
    );
    let mut g3 = group(&pool, "Old", vec![GroupMember::User(alice.id.clone())]);
    g3.deleted_at = Some(1);
    store
        .apply(batch(
            &pool,
            vec![
                put_group(&g1, ChangeKind::GroupCreated),
                put_group(&g2, ChangeKind::GroupCreated),
                put_group(&g3, ChangeKind::GroupCreated),
            ],
        ))
        .await
        .unwrap();
    let mut of_alice: Vec<String> = store
        .groups_of_member(&pool, &GroupMember::User(alice.id.clone()))
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.id.0)
        .collect();
    of_alice.sort();
    let mut expected = vec![g1.id.0.clone(), g3.id.0.clone()];
    expected.sort();
    assert_eq!(of_alice, expected);
    let of_dept = store
        .groups_of_member(&pool, &GroupMember::Department(dept.id.clone()))
        .await
        .unwrap();
    assert_eq!(of_dept.len(), 1);
    assert_eq!(of_dept[0].id, g2.id);
    assert_eq!(of_dept[0].members, g2.members);
    assert!(
        store
            .groups_of_member(&other_pool, &GroupMember::User(alice.id.clone()))
            .await
            .unwrap()
            .is_empty()
    );

    // The same groups as summaries (no member lists), in id order, tombstones included.
    let summaries = store
        .group_summaries_of_member(&pool, &GroupMember::User(alice.id.clone()))
        .await
        .unwrap();
    let mut want = vec![
        GroupSummary::from(g1.clone()),
        GroupSummary::from(g3.clone()),
    ];
    want.sort_by(|a, b| a.id.0.cmp(&b.id.0));
    assert_eq!(summaries.len(), 2);
    for (got, want) in summaries.iter().zip(&want) {
        assert_eq!(got.id, want.id);
        assert_eq!(got.name, want.name);
        assert_eq!(got.deleted_at, want.deleted_at);
        assert_eq!(got.kind, want.kind);
    }
    let of_dept = store
        .group_summaries_of_member(&pool, &GroupMember::Department(dept.id.clone()))
        .await
        .unwrap();
    assert_eq!(of_dept.len(), 1);
    assert_eq!(of_dept[0].id, g2.id);
    assert!(
        store
            .group_summaries_of_member(&other_pool, &GroupMember::User(alice.id.clone()))
            .await
            .unwrap()
            .is_empty()
    );
}

/// PostgreSQL refuses NUL in text and jsonb: both backends drop it, and store the same values.
pub async fn nul_characters_are_dropped_on_both_backends(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let mut u = user(&pool, 7);
    u.profile.name = Some("Zhang\0San".into());
    u.profile.custom_attrs =
        Some(serde_json::json!([{"id": "C\u{0}-1", "value": {"text": "a\0b"}}]));
    let mut d = department(&pool, "R&D\0", None);
    d.name = Some("R&D\0".into());
    let g = group(&pool, "\0Ops", vec![GroupMember::User(u.id.clone())]);
    let applied = store
        .apply(batch(
            &pool,
            vec![
                put_user(&u, ChangeKind::UserCreated),
                put_department(&d, ChangeKind::DepartmentCreated),
                put_group(&g, ChangeKind::GroupCreated),
            ],
        ))
        .await
        .unwrap();
    assert_eq!(applied.changes.len(), 3);
    let stored = store.get_user(&pool, &u.id).await.unwrap().unwrap();
    assert_eq!(stored.profile.name.as_deref(), Some("ZhangSan"));
    assert_eq!(
        stored.profile.custom_attrs,
        Some(serde_json::json!([{"id": "C-1", "value": {"text": "ab"}}]))
    );
    let stored = store.get_department(&pool, &d.id).await.unwrap().unwrap();
    assert_eq!(stored.name.as_deref(), Some("R&D"));
    let stored = store.get_group(&pool, &g.id).await.unwrap().unwrap();
    assert_eq!(stored.name.as_deref(), Some("Ops"));
    let log = store.changes_since(&pool, 0, 10).await.unwrap();
    assert!(!log.iter().any(|r| r.object.to_string().contains("\\u0000")));
    assert_eq!(
        log[0].object["profile"]["name"],
        serde_json::json!("ZhangSan")
    );
}

/// A Feishu id maps to one object for life: a ref that would repoint it from an object that
/// exists (tombstoned or not) to another is refused with the whole batch; the same object may
/// be written again (new union id) and a ref whose object is missing may be repointed.
pub async fn an_external_id_maps_one_object(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let c = new_connection(&store, &pool, "main").await;
    let a = user(&pool, 1);
    store
        .apply(batch(
            &pool,
            vec![
                put_user(&a, ChangeKind::UserCreated),
                Write::PutExternalRef(external(&c.id, ObjectKind::User, "ou_1", a.id.as_str())),
            ],
        ))
        .await
        .unwrap();
    let seq_before = store.changes_since(&pool, 0, 100).await.unwrap().len();

    // A second object for the same Feishu id (an event created it while a job planned to).
    let b = user(&pool, 2);
    let mut second = batch(
        &pool,
        vec![
            put_user(&b, ChangeKind::UserCreated),
            Write::PutExternalRef(external(&c.id, ObjectKind::User, "ou_1", b.id.as_str())),
        ],
    );
    second.watermarks = vec![watermark(&c.id, "user:ou_1", 5_000, false)];
    match store.apply(second.clone()).await {
        Err(StoreError::ExternalIdTaken {
            kind,
            external_id,
            object_id,
        }) => assert_eq!(
            (kind, external_id.as_str(), object_id.as_str()),
            ("user", "ou_1", a.id.as_str())
        ),
        other => panic!(
            "{:?}: expected ExternalIdTaken, got {other:?}",
            store.backend()
        ),
    }
    // Nothing of the batch was written.
    assert!(store.get_user(&pool, &b.id).await.unwrap().is_none());
    assert_eq!(
        store.changes_since(&pool, 0, 100).await.unwrap().len(),
        seq_before
    );
    assert!(
        store
            .watermarks(&c.id, &["user:ou_1".into()])
            .await
            .unwrap()
            .is_empty()
    );
    // A batch of refs alone is checked too, and so is a tombstoned object.
    let mut dead = store.get_user(&pool, &a.id).await.unwrap().unwrap();
    dead.deleted_at = Some(2_000);
    store
        .apply(batch(
            &pool,
            vec![Write::PutUser {
                user: dead.clone(),
                change: ChangeKind::UserDeleted,
                expected_version: Some(1),
            }],
        ))
        .await
        .unwrap();
    assert!(matches!(
        store
            .apply(batch(
                &pool,
                vec![Write::PutExternalRef(external(
                    &c.id,
                    ObjectKind::User,
                    "ou_1",
                    b.id.as_str()
                ))]
            ))
            .await,
        Err(StoreError::ExternalIdTaken { .. })
    ));
    // The mapped object itself: its ref may change (new union id).
    let mut renamed = external(&c.id, ObjectKind::User, "ou_1", a.id.as_str());
    renamed.union_id = Some("on_new".into());
    store
        .apply(batch(&pool, vec![Write::PutExternalRef(renamed.clone())]))
        .await
        .unwrap();
    assert_eq!(
        store
            .find_external(&c.id, ObjectKind::User, "ou_1")
            .await
            .unwrap(),
        Some(renamed)
    );
    // Per connection and kind: the same id elsewhere is another mapping.
    let other = new_connection(&store, &pool, "other").await;
    store
        .apply(batch(
            &pool,
            vec![
                put_user(&b, ChangeKind::UserCreated),
                Write::PutExternalRef(external(&other.id, ObjectKind::User, "ou_1", b.id.as_str())),
                Write::PutExternalRef(external(&c.id, ObjectKind::Department, "ou_1", "d-missing")),
            ],
        ))
        .await
        .unwrap();
    // A ref whose object is missing may be repointed.
    let d = department(&pool, "Eng", None);
    store
        .apply(batch(
            &pool,
            vec![
                put_department(&d, ChangeKind::DepartmentCreated),
                Write::PutExternalRef(external(
                    &c.id,
                    ObjectKind::Department,
                    "ou_1",
                    d.id.as_str(),
                )),
            ],
        ))
        .await
        .unwrap();
    assert_eq!(
        store
            .find_external(&c.id, ObjectKind::Department, "ou_1")
            .await
            .unwrap()
            .map(|r| r.object_id),
        Some(d.id.0.clone())
    );
}
