//! The durable event inbox: dedupe, claiming, finishing.

use std::collections::HashSet;
use std::time::Duration;

use directory::ids::ConnectionId;
use directory::store::{
    ChangeKind, DueCursor, InboxFilter, InboxOutcome, InboxState, InsertOutcome, PageRequest,
    StoreError,
};

use crate::fixtures::*;

const LEASE: Duration = Duration::from_secs(60);

fn inserted(o: InsertOutcome) -> i64 {
    match o {
        InsertOutcome::Inserted(id) => id,
        other => panic!("expected an insert, got {other:?}"),
    }
}

pub async fn inbox_dedupes_within_and_across_calls(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let c = new_connection(&store, &pool, "main").await;
    let other = new_connection(&store, &pool, "other").await;
    assert!(store.inbox_insert(&[]).await.unwrap().is_empty());

    let first = store
        .inbox_insert(&[
            event(&c, "e1", Some(10)),
            event(&c, "e2", None),
            event(&c, "e1", Some(10)),
        ])
        .await
        .unwrap();
    let (a, b) = (inserted(first[0]), inserted(first[1]));
    assert!(a < b);
    assert_eq!(first[2], InsertOutcome::Duplicate(a));

    let second = store
        .inbox_insert(&[event(&c, "e2", None), event(&c, "e3", Some(5))])
        .await
        .unwrap();
    assert_eq!(second[0], InsertOutcome::Duplicate(b));
    assert!(inserted(second[1]) > b);
    // Event ids are unique per connection, not globally.
    let theirs = store
        .inbox_insert(&[event(&other, "e1", Some(10))])
        .await
        .unwrap();
    assert_ne!(inserted(theirs[0]), a);

    let stored = store.inbox_get(a).await.unwrap().unwrap();
    assert_eq!(stored.id, a);
    assert_eq!(stored.pool_id, pool);
    assert_eq!(stored.connection_id, c.id);
    assert_eq!(stored.event_id, "e1");
    assert_eq!(stored.event_type, "contact.user.updated_v3");
    assert_eq!(stored.created_at, Some(10));
    assert_eq!(stored.received_at, 1_000);
    assert_eq!(stored.payload, event(&c, "e1", None).payload);
    assert_eq!(stored.state, InboxState::Pending);
    assert_eq!(stored.attempts, 0);
    assert_eq!(stored.next_attempt_at, 1_000, "due when received");
    assert_eq!(
        (stored.last_error, stored.outcome, stored.finished_at),
        (None, None, None)
    );
    assert!(store.inbox_get(a + 1_000_000).await.unwrap().is_none());

    // A large group commit: one call, ids in the callers' order, duplicates resolved.
    let group: Vec<_> = (0..300)
        .map(|n| event(&c, &format!("g{}", n % 250), Some(n)))
        .collect();
    let outcomes = store.inbox_insert(&group).await.unwrap();
    let ids: Vec<i64> = outcomes[..250].iter().map(|o| inserted(*o)).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    for (n, o) in outcomes[250..].iter().enumerate() {
        assert_eq!(*o, InsertOutcome::Duplicate(ids[n]));
    }
    assert_eq!(store.inbox_pending_count(&c.id).await.unwrap(), 3 + 250);
}

pub async fn inbox_due_in_order(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let c = new_connection(&store, &pool, "main").await;
    let other = new_connection(&store, &pool, "other").await;
    store
        .inbox_insert(&[
            event(&c, "t300", Some(300)),
            event(&c, "t100", Some(100)),
            event(&c, "none", None),
            event(&c, "t200", Some(200)),
            event(&other, "theirs", Some(1)),
        ])
        .await
        .unwrap();
    let now = 2_000;
    let due = store.inbox_due(&c.id, 10, now, None).await.unwrap();
    let order: Vec<&str> = due.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(order, vec!["t100", "t200", "t300", "none"]);
    assert!(due.iter().all(|e| e.state == InboxState::Pending));
    // A read, not a claim: the same events until they are finished.
    let again = store.inbox_due(&c.id, 10, now + 1, None).await.unwrap();
    assert_eq!(again, due);
    // The next batch while one is still being applied: what comes after a place in the order,
    // dated events first, then the undated ones by id.
    let after = |e: &directory::store::InboxEvent| Some(DueCursor::of(e));
    let names = |v: Vec<directory::store::InboxEvent>| {
        v.into_iter().map(|e| e.event_id).collect::<Vec<_>>()
    };
    let rest = store
        .inbox_due(&c.id, 10, now, after(&due[1]))
        .await
        .unwrap();
    assert_eq!(names(rest), vec!["t300", "none"]);
    store
        .inbox_insert(&[event(&c, "none2", None)])
        .await
        .unwrap();
    let rest = store
        .inbox_due(&c.id, 10, now, after(&due[3]))
        .await
        .unwrap();
    assert_eq!(names(rest), vec!["none2"]);
    let rest = store
        .inbox_due(&c.id, 1, now, after(&due[0]))
        .await
        .unwrap();
    assert_eq!(names(rest), vec!["t200"]);

    // The limit takes the oldest first.
    let c2 = new_connection(&store, &pool, "paged").await;
    let events: Vec<_> = (0..5)
        .map(|n| event(&c2, &format!("p{n}"), Some(100 - n)))
        .collect();
    store.inbox_insert(&events).await.unwrap();
    let ids = |v: &[directory::store::InboxEvent]| {
        v.iter().map(|e| e.event_id.clone()).collect::<Vec<_>>()
    };
    let mut pages = Vec::new();
    loop {
        let page = store.inbox_due(&c2.id, 2, now, None).await.unwrap();
        if page.is_empty() {
            break;
        }
        for e in &page {
            store
                .inbox_finish(e.id, InboxOutcome::Applied { note: None }, now)
                .await
                .unwrap();
        }
        pages.push(ids(&page));
    }
    assert_eq!(pages, vec![vec!["p4", "p3"], vec!["p2", "p1"], vec!["p0"]]);

    // Not due yet: received at 1 000, so a clock before that claims nothing.
    let c3 = new_connection(&store, &pool, "early").await;
    store
        .inbox_insert(&[event(&c3, "x", Some(1))])
        .await
        .unwrap();
    assert!(
        store
            .inbox_due(&c3.id, 10, 999, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .inbox_due(&c3.id, 10, 1_000, None)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store
            .inbox_due(&ConnectionId::generate(), 10, now, None)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn inbox_finish_outcomes(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let c = new_connection(&store, &pool, "main").await;
    let ids: Vec<i64> = store
        .inbox_insert(&[
            event(&c, "a", Some(1)),
            event(&c, "b", Some(2)),
            event(&c, "c", Some(3)),
            event(&c, "d", Some(4)),
            event(&c, "e", Some(5)),
        ])
        .await
        .unwrap()
        .into_iter()
        .map(inserted)
        .collect();
    assert_eq!(
        store.inbox_due(&c.id, 10, 2_000, None).await.unwrap().len(),
        5
    );
    let note = Some("updated 1 user".to_owned());
    store
        .inbox_finish(ids[0], InboxOutcome::Applied { note: note.clone() }, 3_000)
        .await
        .unwrap();
    store
        .inbox_finish(
            ids[1],
            InboxOutcome::Ignored {
                reason: "older than the object".into(),
            },
            3_001,
        )
        .await
        .unwrap();
    store
        .inbox_finish(
            ids[2],
            InboxOutcome::Parked {
                error: "failed 8 times".into(),
            },
            3_002,
        )
        .await
        .unwrap();
    store
        .inbox_finish(
            ids[3],
            InboxOutcome::Retry {
                error: "timeout".into(),
                next_attempt_at: 9_000,
            },
            3_003,
        )
        .await
        .unwrap();
    store
        .inbox_finish(ids[4], InboxOutcome::Applied { note: None }, 3_004)
        .await
        .unwrap();

    let get = |id: i64| {
        let store = store.clone();
        async move { store.inbox_get(id).await.unwrap().unwrap() }
    };
    let a = get(ids[0]).await;
    assert_eq!(
        (a.state, a.outcome, a.finished_at),
        (InboxState::Applied, note, Some(3_000))
    );
    let b = get(ids[1]).await;
    assert_eq!(
        (b.state, b.outcome.as_deref(), b.finished_at),
        (
            InboxState::Ignored,
            Some("older than the object"),
            Some(3_001)
        )
    );
    let c_ = get(ids[2]).await;
    assert_eq!(
        (
            c_.state,
            c_.outcome.as_deref(),
            c_.last_error.as_deref(),
            c_.finished_at,
            c_.attempts
        ),
        (
            InboxState::Parked,
            Some("failed 8 times"),
            Some("failed 8 times"),
            Some(3_002),
            1
        )
    );
    let d = get(ids[3]).await;
    assert_eq!(
        (
            d.state,
            d.attempts,
            d.next_attempt_at,
            d.last_error.as_deref(),
            d.finished_at
        ),
        (InboxState::Pending, 1, 9_000, Some("timeout"), None)
    );
    let e = get(ids[4]).await;
    assert_eq!((e.state, e.outcome), (InboxState::Applied, None));

    // A retried event is not due before its time; then it is due at once.
    assert!(
        store
            .inbox_due(&c.id, 10, 8_999, None)
            .await
            .unwrap()
            .is_empty()
    );
    let retried = store.inbox_due(&c.id, 10, 9_000, None).await.unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].id, ids[3]);
    store
        .inbox_finish(
            ids[3],
            InboxOutcome::Retry {
                error: "timeout again".into(),
                next_attempt_at: 20_000,
            },
            9_001,
        )
        .await
        .unwrap();
    assert_eq!(get(ids[3]).await.attempts, 2);

    // Finished once only; unknown ids are not found.
    assert!(matches!(
        store
            .inbox_finish(ids[0], InboxOutcome::Applied { note: None }, 4_000)
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store
            .inbox_finish(
                ids[2],
                InboxOutcome::Retry {
                    error: "x".into(),
                    next_attempt_at: 1
                },
                4_000
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store
            .inbox_finish(i64::MAX, InboxOutcome::Applied { note: None }, 4_000)
            .await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn apply_finishes_the_inbox_event_once(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let c = new_connection(&store, &pool, "main").await;
    let id = inserted(
        store
            .inbox_insert(&[event(&c, "e", Some(1))])
            .await
            .unwrap()[0],
    );
    let u = user(&pool, 1);
    let mut b = batch(&pool, vec![put_user(&u, ChangeKind::UserCreated)]);
    b.inbox = vec![(
        id,
        InboxOutcome::Applied {
            note: Some("created".into()),
        },
    )];
    store.apply(b).await.unwrap();
    let e = store.inbox_get(id).await.unwrap().unwrap();
    assert_eq!(e.state, InboxState::Applied);
    assert_eq!(e.outcome.as_deref(), Some("created"));
    assert!(e.finished_at.is_some());

    // A second application of the same event (say a worker whose claim expired) is refused
    // as a whole.
    let late = user(&pool, 2);
    let mut again = batch(&pool, vec![put_user(&late, ChangeKind::UserCreated)]);
    again.inbox = vec![(id, InboxOutcome::Applied { note: None })];
    assert!(matches!(
        store.apply(again).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(store.get_user(&pool, &late.id).await.unwrap().is_none());
    let mut missing = batch(&pool, vec![put_user(&late, ChangeKind::UserCreated)]);
    missing.inbox = vec![(i64::MAX, InboxOutcome::Applied { note: None })];
    assert!(matches!(
        store.apply(missing).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(store.get_user(&pool, &late.id).await.unwrap().is_none());
    assert_eq!(store.changes_since(&pool, 0, 10).await.unwrap().len(), 1);
}

pub async fn inbox_lists_and_counts(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let c = new_connection(&store, &pool, "main").await;
    let other_pool = new_pool(&store).await;
    let o = new_connection(&store, &other_pool, "main").await;
    let mut deleted = event(&c, "del", Some(4));
    deleted.event_type = "contact.user.deleted_v3".into();
    let ids: Vec<i64> = store
        .inbox_insert(&[
            event(&c, "a", Some(1)),
            event(&c, "b", Some(2)),
            event(&o, "c", Some(3)),
            deleted,
        ])
        .await
        .unwrap()
        .into_iter()
        .map(inserted)
        .collect();
    store
        .inbox_finish(ids[0], InboxOutcome::Applied { note: None }, 2_000)
        .await
        .unwrap();

    let list = |filter: InboxFilter| {
        let store = store.clone();
        async move {
            store
                .inbox_list(&filter, PageRequest::default())
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.id)
                .collect::<Vec<_>>()
        }
    };
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(list(InboxFilter::default()).await, newest_first);
    assert_eq!(
        list(InboxFilter {
            pool_id: Some(pool.clone()),
            ..InboxFilter::default()
        })
        .await,
        vec![ids[3], ids[1], ids[0]]
    );
    assert_eq!(
        list(InboxFilter {
            connection_id: Some(o.id.clone()),
            ..InboxFilter::default()
        })
        .await,
        vec![ids[2]]
    );
    assert_eq!(
        list(InboxFilter {
            state: Some(InboxState::Applied),
            ..InboxFilter::default()
        })
        .await,
        vec![ids[0]]
    );
    assert_eq!(
        list(InboxFilter {
            pool_id: Some(pool.clone()),
            state: Some(InboxState::Pending),
            event_type: Some("contact.user.deleted_v3".into()),
            ..InboxFilter::default()
        })
        .await,
        vec![ids[3]]
    );
    let page = store
        .inbox_list(
            &InboxFilter::default(),
            PageRequest {
                offset: 1,
                limit: 2,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![ids[2], ids[1]]
    );
    // By key: the events older than the last one seen, newest first.
    let page = store
        .inbox_list(
            &InboxFilter::default(),
            PageRequest {
                offset: 0,
                limit: 2,
                after: Some(ids[2]),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![ids[1], ids[0]]
    );

    let mut due = store.inbox_due_connections(2_000).await.unwrap();
    due.sort();
    let mut both = vec![c.id.clone(), o.id.clone()];
    both.sort();
    assert_eq!(due, both);
    assert!(store.inbox_due_connections(999).await.unwrap().is_empty());
    assert_eq!(store.inbox_pending_count(&c.id).await.unwrap(), 2);
    // Rescheduled to later: still pending (counted) but not due now.
    store
        .inbox_finish(
            ids[2],
            InboxOutcome::Retry {
                error: "later".into(),
                next_attempt_at: 50_000,
            },
            2_000,
        )
        .await
        .unwrap();
    assert_eq!(
        store.inbox_due_connections(2_000).await.unwrap(),
        vec![c.id.clone()]
    );
    assert_eq!(store.inbox_pending_count(&o.id).await.unwrap(), 1);
    assert_eq!(store.inbox_due_connections(50_000).await.unwrap().len(), 2);
}

/// 4 workers draining 200 events concurrently, each reading and finishing only while it holds
/// the connection's event lease (as the event worker does): every event is finished exactly
/// once.
pub async fn concurrent_workers_never_share_an_event(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let c = new_connection(&store, &pool, "main").await;
    let events: Vec<_> = (0..200)
        .map(|n| event(&c, &format!("e{n}"), Some(n)))
        .collect();
    store.inbox_insert(&events).await.unwrap();

    let mut workers = tokio::task::JoinSet::new();
    for w in 0..4 {
        let store = store.clone();
        let connection = c.id.clone();
        workers.spawn(async move {
            let worker = format!("worker-{w}");
            let mut mine = Vec::new();
            loop {
                let now = directory::ids::now_ms();
                if !store
                    .try_acquire_event_lease(&connection, &worker, LEASE, now)
                    .await
                    .unwrap()
                {
                    tokio::task::yield_now().await;
                    continue;
                }
                let batch = store.inbox_due(&connection, 7, now, None).await.unwrap();
                for e in &batch {
                    mine.push(e.id);
                    store
                        .inbox_finish(e.id, InboxOutcome::Applied { note: None }, now)
                        .await
                        .unwrap();
                }
                store
                    .release_event_lease(&connection, &worker)
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return mine;
                }
            }
        });
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    while let Some(mine) = workers.join_next().await {
        for id in mine.unwrap() {
            total += 1;
            assert!(seen.insert(id), "event {id} was finished twice");
        }
    }
    assert_eq!((total, seen.len()), (200, 200));
    assert_eq!(store.inbox_pending_count(&c.id).await.unwrap(), 0);
}

/// The event list's `total`: the count of every page of the same filter.
pub async fn inbox_count_matches_the_list(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let c = new_connection(&store, &pool, "main").await;
    let other = new_connection(&store, &pool, "other").await;
    let other_pool = new_pool(&store).await;
    let o = new_connection(&store, &other_pool, "main").await;
    let mut events = Vec::new();
    for i in 0..12 {
        let owner = [&c, &other, &o][i % 3];
        let mut e = event(owner, &format!("e{i}"), Some(i as i64));
        if i % 4 == 0 {
            e.event_type = "contact.user.deleted_v3".into();
        }
        events.push(e);
    }
    let ids: Vec<i64> = store
        .inbox_insert(&events)
        .await
        .unwrap()
        .into_iter()
        .map(inserted)
        .collect();
    for id in &ids[..5] {
        store
            .inbox_finish(*id, InboxOutcome::Applied { note: None }, 2_000)
            .await
            .unwrap();
    }
    store
        .inbox_finish(
            ids[5],
            InboxOutcome::Parked {
                error: "Feishu code 41012".into(),
            },
            2_000,
        )
        .await
        .unwrap();

    let filters = [
        InboxFilter::default(),
        InboxFilter {
            pool_id: Some(pool.clone()),
            ..InboxFilter::default()
        },
        InboxFilter {
            pool_id: Some(pool.clone()),
            state: Some(InboxState::Pending),
            ..InboxFilter::default()
        },
        InboxFilter {
            connection_id: Some(c.id.clone()),
            ..InboxFilter::default()
        },
        InboxFilter {
            connection_id: Some(other.id.clone()),
            state: Some(InboxState::Applied),
            ..InboxFilter::default()
        },
        InboxFilter {
            state: Some(InboxState::Parked),
            ..InboxFilter::default()
        },
        InboxFilter {
            event_type: Some("contact.user.deleted_v3".into()),
            ..InboxFilter::default()
        },
        InboxFilter {
            pool_id: Some(other_pool.clone()),
            state: Some(InboxState::Ignored),
            ..InboxFilter::default()
        },
    ];
    let all = PageRequest {
        offset: 0,
        limit: 1_000,
        after: None,
    };
    let mut counts = Vec::new();
    for filter in &filters {
        let listed = store.inbox_list(filter, all).await.unwrap().len() as u64;
        let counted = store.inbox_count(filter).await.unwrap();
        assert_eq!(counted, listed, "{filter:?}");
        // A page of the list does not change the count.
        let page = store
            .inbox_list(
                filter,
                PageRequest {
                    offset: 1,
                    limit: 2,
                    after: None,
                },
            )
            .await
            .unwrap();
        assert!(page.len() as u64 <= counted.saturating_sub(1).min(2));
        counts.push(counted);
    }
    assert_eq!(counts, vec![12, 8, 4, 4, 2, 1, 3, 0]);
}
