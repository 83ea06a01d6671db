//! The change feed and service credentials (docs/change-feed.md,
//! docs/service-credentials.md).

use std::collections::BTreeSet;

use directory::feed::{FeedType, sync_completed};
use directory::model::{JobKind, ObjectKind, UserStatus};
use directory::store::{ChangeKind, ChangeSource, FeedSettings, StoreError, Write};
use serde_json::json;

use crate::fixtures::*;

fn types(events: &[directory::feed::FeedEvent]) -> Vec<&'static str> {
    events.iter().map(|e| e.event_type.as_str()).collect()
}

pub async fn the_feed_numbers_what_each_apply_changed(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let head = store.feed_head(&pool).await.unwrap().unwrap();
    assert_eq!((head.last_seq, head.pruned_through), (0, 0));
    assert!(
        store
            .feed_head(&directory::ids::PoolId::generate())
            .await
            .unwrap()
            .is_none()
    );

    let d = department(&pool, "Eng", None);
    let mut u = user(&pool, 1);
    u.departments = vec![membership(&d.id, true)];
    let applied = store
        .apply(batch(
            &pool,
            vec![
                put_department(&d, ChangeKind::DepartmentCreated),
                put_user(&u, ChangeKind::UserCreated),
            ],
        ))
        .await
        .unwrap();
    assert_eq!(applied.feed_events, 3);
    let read = store.feed_read(&pool, 0, 100, &[], 10_000).await.unwrap();
    assert_eq!(
        types(&read.events),
        [
            "department.created",
            "user.created",
            "department.member_added"
        ]
    );
    assert_eq!(
        read.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!((read.through, read.head.last_seq), (3, 3));
    let created = &read.events[1];
    assert_eq!(created.object_id.as_deref(), Some(u.id.as_str()));
    assert_eq!(created.data["object"]["version"], 1);
    assert_eq!(created.source, ChangeSource::Admin);

    // An update is compared with the stored object, read in the same transaction.
    u.profile.name = Some("Renamed".into());
    u.status = UserStatus::Frozen;
    store
        .apply(batch(&pool, vec![put_user(&u, ChangeKind::UserUpdated)]))
        .await
        .unwrap();
    let read = store.feed_read(&pool, 3, 100, &[], 10_000).await.unwrap();
    assert_eq!(types(&read.events), ["user.disabled"]);
    let data = &read.events[0].data;
    assert_eq!(data["reason"], "frozen");
    assert_eq!(
        data["previous_attributes"],
        json!({"status": "active", "profile": {"name": "User 1"}})
    );
    assert_eq!(data["object"]["version"], 2);

    // A quiet batch (a first import) changes the directory and the change log, not the feed.
    let mut quiet = batch(
        &pool,
        vec![put_user(&user(&pool, 2), ChangeKind::UserCreated)],
    );
    quiet.quiet = true;
    let applied = store.apply(quiet).await.unwrap();
    assert_eq!((applied.changes.len(), applied.feed_events), (1, 0));
    assert_eq!(store.feed_head(&pool).await.unwrap().unwrap().last_seq, 4);

    // Announcements are numbered after every committed event.
    let source = ChangeSource::Job {
        job_id: directory::ids::JobId("j1".into()),
        connection_id: directory::ids::ConnectionId("c1".into()),
        job_kind: Some(JobKind::Import),
    };
    let draft = sync_completed("j1", "c1", JobKind::Import, "complete", &json!({}), true);
    let appended = store
        .feed_append(&pool, &source, &[draft], 7_000)
        .await
        .unwrap();
    assert_eq!(appended[0].seq, 5);
    let read = store.feed_read(&pool, 4, 100, &[], 10_000).await.unwrap();
    assert_eq!(read.events, appended);
    assert_eq!(read.events[0].data["initial"], true);

    // A type filter reads within the window and says how far it looked.
    let read = store
        .feed_read(
            &pool,
            0,
            100,
            &[FeedType::UserCreated, FeedType::SyncCompleted],
            10_000,
        )
        .await
        .unwrap();
    assert_eq!(
        read.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [2, 5]
    );
    assert_eq!(read.through, 5);
    let read = store
        .feed_read(&pool, 0, 100, &[FeedType::SyncCompleted], 3)
        .await
        .unwrap();
    assert!(read.events.is_empty());
    assert_eq!(read.through, 3);
    let read = store.feed_read(&pool, 0, 2, &[], 10_000).await.unwrap();
    assert_eq!((read.events.len(), read.through), (2, 2));
    let read = store.feed_read(&pool, 5, 100, &[], 10_000).await.unwrap();
    assert!(read.events.is_empty());
    assert_eq!(read.through, 5);
}

/// The caller's copy of an object (`AsRead`: as read, or as a batch before wrote it) stands
/// in for the store's read only while the stored version is still the copy's: an older copy
/// is ignored, so a batch planned on a state that another writer has since changed still
/// reports what it changed from.
pub async fn an_object_as_read_stands_in_only_at_its_stored_version(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let mut u = user(&pool, 1);
    store
        .apply(batch(&pool, vec![put_user(&u, ChangeKind::UserCreated)]))
        .await
        .unwrap();
    let stored = store.get_user(&pool, &u.id).await.unwrap().unwrap();
    assert_eq!(stored.version, 1);

    // At its stored version: the events are those of a read.
    u.profile.name = Some("Second".into());
    let mut second = batch(&pool, vec![put_user(&u, ChangeKind::UserUpdated)]);
    second.as_read.users = vec![stored.clone()];
    store.apply(second).await.unwrap();
    let read = store.feed_read(&pool, 1, 100, &[], 10_000).await.unwrap();
    assert_eq!(types(&read.events), ["user.updated"]);
    assert_eq!(
        read.events[0].data["previous_attributes"],
        json!({"profile": {"name": "User 1"}})
    );

    // The same copy, now a version behind: ignored, the stored "Second" is what changed.
    // So is a written state (`AsRead::written`) a version behind.
    u.profile.name = Some("Third".into());
    let mut third = batch(&pool, vec![put_user(&u, ChangeKind::UserUpdated)]);
    third.as_read.users = vec![stored];
    let mut written = store.changes_since(&pool, 1, 1).await.unwrap();
    assert_eq!(written[0].version, 2);
    written[0].version = 1;
    third.as_read.written = written;
    store.apply(third).await.unwrap();
    let read = store.feed_read(&pool, 2, 100, &[], 10_000).await.unwrap();
    assert_eq!(types(&read.events), ["user.updated"]);
    assert_eq!(
        read.events[0].data["previous_attributes"],
        json!({"profile": {"name": "Second"}})
    );
    assert_eq!(read.events[0].data["object"]["version"], 3);

    // A written state at the stored version stands in, and is not read again: this one says
    // "As written" where the store says "Third".
    u.profile.name = Some("Fourth".into());
    let mut fourth = batch(&pool, vec![put_user(&u, ChangeKind::UserUpdated)]);
    let mut written = store.changes_since(&pool, 2, 1).await.unwrap();
    assert_eq!(written[0].version, 3);
    written[0].object["profile"]["name"] = json!("As written");
    fourth.as_read.written = written;
    store.apply(fourth).await.unwrap();
    let read = store.feed_read(&pool, 3, 100, &[], 10_000).await.unwrap();
    assert_eq!(
        read.events[0].data["previous_attributes"],
        json!({"profile": {"name": "As written"}})
    );
}

/// An event that carries an object stores no copy of it: the object comes from the change
/// log, with the Feishu ids it had at that change (docs/change-feed.md, "What the feed
/// stores"); a row written before that (the object in its data) reads as it was written.
pub async fn a_feed_object_comes_from_the_change_log_as_it_was(store: Store, raw: Raw) {
    let pool = new_pool(&store).await;
    let c = new_connection(&store, &pool, "feishu").await;
    let mut u = user(&pool, 1);
    let first_id = Write::PutExternalRef(external(&c.id, ObjectKind::User, "ou_1", u.id.as_str()));
    store
        .apply(batch(
            &pool,
            vec![put_user(&u, ChangeKind::UserCreated), first_id],
        ))
        .await
        .unwrap();
    u.profile.name = Some("Renamed".into());
    store
        .apply(batch(&pool, vec![put_user(&u, ChangeKind::UserUpdated)]))
        .await
        .unwrap();
    let second_id = Write::PutExternalRef(external(&c.id, ObjectKind::User, "ou_2", u.id.as_str()));
    store
        .apply(batch(
            &pool,
            vec![put_user(&u, ChangeKind::UserIdentifierChanged), second_id],
        ))
        .await
        .unwrap();

    let read = store.feed_read(&pool, 0, 100, &[], 10_000).await.unwrap();
    assert_eq!(
        types(&read.events),
        ["user.created", "user.updated", "user.updated"]
    );
    let ids = |e: &directory::feed::FeedEvent| -> Vec<String> {
        e.data["object"]["external_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["external_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (created, renamed, reidentified) = (&read.events[0], &read.events[1], &read.events[2]);
    assert_eq!(created.data["object"]["profile"]["name"], "User 1");
    assert_eq!(created.data["object"]["version"], 1);
    assert_eq!(ids(created), ["ou_1"]);
    assert_eq!(renamed.data["object"]["profile"]["name"], "Renamed");
    assert_eq!(renamed.data["changed"], json!(["profile.name"]));
    assert_eq!(ids(renamed), ["ou_1"]);
    assert_eq!(reidentified.data["changed"], json!(["external_ids"]));
    assert_eq!(ids(reidentified), ["ou_1", "ou_2"]);
    assert_eq!(
        reidentified.data["previous_attributes"]["external_ids"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    // The same bodies on every read.
    let again = store.feed_read(&pool, 0, 100, &[], 10_000).await.unwrap();
    assert_eq!(again.events, read.events);

    // A row of the layout before migration 0012.
    let object = json!({"id": u.id.as_str(), "profile": {"name": "Stored whole"}});
    raw_try(
        &raw,
        format!(
            "INSERT INTO feed_events (pool_id, seq, type, object_id, source, at, data) \
             VALUES ('{pool}', 4, 'user.deleted', '{id}', '{{\"type\":\"admin\"}}', 9000, '{data}')",
            id = u.id.as_str(),
            data = json!({"object": object, "reason": "deleted"}),
        ),
    )
    .await
    .unwrap();
    raw_try(
        &raw,
        format!("UPDATE change_counters SET feed_seq = 4 WHERE pool_id = '{pool}'"),
    )
    .await
    .unwrap();
    let read = store.feed_read(&pool, 3, 100, &[], 10_000).await.unwrap();
    assert_eq!(types(&read.events), ["user.deleted"]);
    assert_eq!(
        read.events[0].data,
        json!({"object": object, "reason": "deleted"})
    );
}

/// The trap of sequences on PostgreSQL: numbers handed out before a slower transaction
/// commits. Feed numbers come from the counter row, so a reader polling while many
/// transactions commit sees every event once, in order, with no gap.
pub async fn a_feed_reader_misses_nothing_while_writers_race(store: Store, _raw: Raw) {
    const WRITERS: usize = 8;
    const BATCHES: usize = 40;
    let pool = new_pool(&store).await;
    let total = (WRITERS * BATCHES) as i64;
    let reader = {
        let store = store.clone();
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut cursor = 0;
            let mut seen = Vec::new();
            while cursor < total {
                let read = store
                    .feed_read(&pool, cursor, 50, &[], 10_000)
                    .await
                    .unwrap();
                for e in &read.events {
                    assert_eq!(e.seq, cursor + 1, "a feed reader skipped an event");
                    cursor = e.seq;
                    seen.push(e.seq);
                }
                tokio::task::yield_now().await;
            }
            seen
        })
    };
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let store = store.clone();
        let pool = pool.clone();
        writers.spawn(async move {
            let mut u = user(&pool, w);
            for n in 0..BATCHES {
                u.profile.name = Some(format!("writer {w} batch {n}"));
                let change = if n == 0 {
                    ChangeKind::UserCreated
                } else {
                    ChangeKind::UserUpdated
                };
                store
                    .apply(batch(&pool, vec![put_user(&u, change)]))
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done.unwrap();
    }
    let seen = reader.await.unwrap();
    assert_eq!(seen, (1..=total).collect::<Vec<_>>());
    let all: BTreeSet<i64> = store
        .feed_read(&pool, 0, 500, &[], 10_000)
        .await
        .unwrap()
        .events
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(all.len() as i64, total);
}

pub async fn retention_removes_the_oldest_events(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let source = ChangeSource::Admin;
    for at in [1_000, 2_000, 3_000, 4_000] {
        let draft = sync_completed("j", "c", JobKind::Reconcile, "complete", &json!({}), false);
        store
            .feed_append(&pool, &source, &[draft], at)
            .await
            .unwrap();
    }
    assert_eq!(store.feed_prune(&pool, 500, 100).await.unwrap(), 0);
    assert_eq!(store.feed_prune(&pool, 3_000, 1).await.unwrap(), 1);
    assert_eq!(store.feed_prune(&pool, 3_000, 100).await.unwrap(), 1);
    let head = store.feed_head(&pool).await.unwrap().unwrap();
    assert_eq!((head.last_seq, head.pruned_through), (4, 2));
    let read = store.feed_read(&pool, 0, 100, &[], 10_000).await.unwrap();
    assert_eq!(
        read.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [3, 4]
    );
    assert_eq!(store.feed_prune(&pool, 10_000, 100).await.unwrap(), 2);
    let head = store.feed_head(&pool).await.unwrap().unwrap();
    assert_eq!((head.last_seq, head.pruned_through), (4, 4));

    // Settings.
    assert_eq!(
        store.feed_settings(&pool).await.unwrap(),
        Some(FeedSettings::default())
    );
    let changed = FeedSettings {
        retention_days: 7,
        initial_import_events: true,
    };
    store.set_feed_settings(&pool, &changed).await.unwrap();
    assert_eq!(store.feed_settings(&pool).await.unwrap(), Some(changed));
    let nowhere = directory::ids::PoolId::generate();
    assert!(matches!(
        store.set_feed_settings(&nowhere, &changed).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.feed_settings(&nowhere).await.unwrap(), None);
}

pub async fn credentials_round_trip(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let hr = credential(&pool, "hr");
    store.create_credential(&hr).await.unwrap();
    assert_eq!(
        store.get_credential(&hr.credential.id).await.unwrap(),
        Some(hr.clone())
    );
    assert!(store.get_credential("nope").await.unwrap().is_none());
    // A live name is unique in its pool, not across pools.
    assert!(matches!(
        store.create_credential(&credential(&pool, "hr")).await,
        Err(StoreError::Conflict(_))
    ));
    let other = new_pool(&store).await;
    store
        .create_credential(&credential(&other, "hr"))
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_credential(&credential(&directory::ids::PoolId::generate(), "x"))
            .await,
        Err(StoreError::NotFound(_))
    ));

    store
        .touch_credential(&hr.credential.id, 5_000)
        .await
        .unwrap();
    assert!(
        store
            .revoke_credential(&hr.credential.id, 6_000)
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_credential(&hr.credential.id, 7_000)
            .await
            .unwrap()
    );
    let got = store
        .get_credential(&hr.credential.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.credential.last_used_at, Some(5_000));
    assert_eq!(got.credential.revoked_at, Some(6_000));
    // Its name is free again.
    let again = credential(&pool, "hr");
    store.create_credential(&again).await.unwrap();
    let listed = store.list_credentials(&pool).await.unwrap();
    assert_eq!(
        listed.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        [hr.credential.id.as_str(), again.credential.id.as_str()]
    );
}

pub async fn webhook_endpoints_progress_leases_and_attempts(store: Store, _raw: Raw) {
    use directory::webhooks::WebhookState;
    let pool = new_pool(&store).await;
    let mut hook = webhook(&pool);
    hook.types = vec![FeedType::UserCreated, FeedType::GroupMemberAdded];
    store.create_webhook(&hook).await.unwrap();
    assert_eq!(
        store.get_webhook(&hook.id).await.unwrap(),
        Some(hook.clone())
    );
    assert!(matches!(
        store
            .create_webhook(&webhook(&directory::ids::PoolId::generate()))
            .await,
        Err(StoreError::NotFound(_))
    ));
    let other = webhook(&new_pool(&store).await);
    store.create_webhook(&other).await.unwrap();
    assert_eq!(
        store.list_webhooks(Some(&pool)).await.unwrap(),
        [hook.clone()]
    );
    assert_eq!(store.list_webhooks(None).await.unwrap().len(), 2);

    // Progress is saved with its attempt only over what the deliverer read.
    let mut progressed = hook.clone();
    progressed.cursor = 7;
    progressed.state = WebhookState::Failing;
    progressed.failures = 1;
    progressed.updated_at = 2_000;
    assert!(
        store
            .record_webhook_progress(Some(&attempt(&hook, 8)), &progressed, hook.updated_at)
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_webhook(&hook.id).await.unwrap(),
        Some(progressed.clone())
    );
    // An admin changed it meanwhile: the attempt is kept, the stale progress is not.
    let mut by_admin = progressed.clone();
    by_admin.state = WebhookState::Disabled;
    by_admin.disabled_reason = Some("by an admin".into());
    by_admin.updated_at = 3_000;
    store.update_webhook(&by_admin).await.unwrap();
    let mut stale = progressed.clone();
    stale.cursor = 9;
    stale.updated_at = 3_500;
    assert!(
        !store
            .record_webhook_progress(Some(&attempt(&hook, 9)), &stale, progressed.updated_at)
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_webhook(&hook.id).await.unwrap(),
        Some(by_admin.clone())
    );
    let attempts = store
        .list_webhook_attempts(&hook.id, None, 10)
        .await
        .unwrap();
    assert_eq!(
        attempts.iter().map(|a| a.seq).collect::<Vec<_>>(),
        [9, 8],
        "newest first"
    );
    assert_eq!(attempts[1].status, Some(500));
    let older = store
        .list_webhook_attempts(&hook.id, Some(attempts[0].id), 10)
        .await
        .unwrap();
    assert_eq!(older.len(), 1);

    // One deliverer at a time; its own lease it takes again; an expired one anyone takes.
    assert!(
        store
            .lease_webhook(&hook.id, "a", 10_000, 1_000)
            .await
            .unwrap()
    );
    assert!(
        !store
            .lease_webhook(&hook.id, "b", 10_000, 2_000)
            .await
            .unwrap()
    );
    assert!(
        store
            .lease_webhook(&hook.id, "a", 12_000, 2_000)
            .await
            .unwrap()
    );
    assert!(
        store
            .lease_webhook(&hook.id, "b", 30_000, 20_000)
            .await
            .unwrap()
    );
    store.release_webhook(&hook.id, "a").await.unwrap();
    assert!(
        !store
            .lease_webhook(&hook.id, "a", 30_000, 21_000)
            .await
            .unwrap()
    );
    store.release_webhook(&hook.id, "b").await.unwrap();
    assert!(
        store
            .lease_webhook(&hook.id, "a", 30_000, 21_000)
            .await
            .unwrap()
    );

    assert_eq!(store.prune_webhook_attempts(2_001).await.unwrap(), 2);
    assert!(store.delete_webhook(&hook.id).await.unwrap());
    assert!(!store.delete_webhook(&hook.id).await.unwrap());
    assert!(store.get_webhook(&hook.id).await.unwrap().is_none());
    assert!(matches!(
        store.update_webhook(&hook).await,
        Err(StoreError::NotFound(_))
    ));
}
