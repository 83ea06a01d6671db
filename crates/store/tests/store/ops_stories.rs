//! Jobs and their action log, the job lease, parked deletions.

use std::collections::BTreeMap;
use std::time::Duration;

use directory::ids::{JobId, PoolId};
use directory::model::{
    ActionResult, JobProgress, JobState, ObjectKind, ParkedState, SyncAction, Verdict,
};
use directory::store::{ActionLogFilter, PageRequest, StoreError};

use crate::fixtures::*;

pub async fn jobs_round_trip(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let c = new_connection(&store, &pool, "main").await;
    let o = new_connection(&store, &pool, "other").await;
    let j1 = job(&c, 1_000);
    let j2 = job(&c, 2_000);
    let j3 = job(&o, 1_500);
    for j in [&j1, &j2, &j3] {
        store.create_job(j).await.unwrap();
    }
    assert_eq!(store.get_job(&j1.id).await.unwrap(), Some(j1.clone()));
    assert!(store.get_job(&JobId::generate()).await.unwrap().is_none());
    assert!(matches!(
        store.create_job(&j1).await,
        Err(StoreError::Conflict(_))
    ));

    let mut done = j1.clone();
    done.state = JobState::Finished;
    done.verdict = Some(Verdict::Partial);
    done.progress = JobProgress {
        phase: "applying".into(),
        pages: 12,
        departments: 3,
        users: 120,
        groups: 2,
        applied: 118,
        planned: 120,
    };
    done.counts = BTreeMap::from([
        (
            "CreateUser".to_owned(),
            BTreeMap::from([("applied".to_owned(), 120), ("failed".to_owned(), 2)]),
        ),
        (
            "DeleteUser".to_owned(),
            BTreeMap::from([("skipped".to_owned(), 4)]),
        ),
    ]);
    done.error = Some("page 3 of department od-1 failed: 40004".into());
    done.error_code = Some(40004);
    done.finished_at = Some(9_000);
    store.update_job(&done).await.unwrap();
    assert_eq!(store.get_job(&j1.id).await.unwrap(), Some(done.clone()));
    assert!(matches!(
        store.update_job(&job(&c, 1)).await,
        Err(StoreError::NotFound(_))
    ));

    let ids =
        |jobs: Vec<directory::model::SyncJob>| jobs.into_iter().map(|j| j.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list_jobs(None, PageRequest::default()).await.unwrap()),
        vec![j2.id.clone(), j3.id.clone(), j1.id.clone()],
        "newest first"
    );
    assert_eq!(
        ids(store
            .list_jobs(Some(&c.id), PageRequest::default())
            .await
            .unwrap()),
        vec![j2.id.clone(), j1.id.clone()]
    );
    assert_eq!(
        ids(store
            .list_jobs(
                None,
                PageRequest {
                    offset: 1,
                    limit: 1
                }
            )
            .await
            .unwrap()),
        vec![j3.id.clone()]
    );
}

pub async fn action_log_numbers_and_filters(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let c = new_connection(&store, &pool, "main").await;
    let j = job(&c, 1_000);
    let k = job(&c, 2_000);
    store.create_job(&j).await.unwrap();
    store.create_job(&k).await.unwrap();
    store.append_action_log(&[]).await.unwrap();

    store
        .append_action_log(&[
            action(&j.id, SyncAction::CreateUser, ActionResult::Applied, 1),
            action(&j.id, SyncAction::UpdateUser, ActionResult::Applied, 2),
            action(&k.id, SyncAction::CreateUser, ActionResult::Applied, 3),
            action(&j.id, SyncAction::DeleteUser, ActionResult::Parked, 4),
        ])
        .await
        .unwrap();
    let mut dept = action(&j.id, SyncAction::CreateDepartment, ActionResult::Failed, 5);
    dept.kind = ObjectKind::Department;
    dept.object_id = Some("d-1".into());
    store
        .append_action_log(&[
            dept.clone(),
            action(&j.id, SyncAction::Unchanged, ActionResult::Skipped, 6),
        ])
        .await
        .unwrap();
    let all = store
        .action_log(&j.id, &ActionLogFilter::default(), PageRequest::default())
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5],
        "numbered per job, in order, across calls"
    );
    assert_eq!(
        all.iter()
            .map(|e| e.external_id.as_str())
            .collect::<Vec<_>>(),
        vec!["ou_1", "ou_2", "ou_4", "ou_5", "ou_6"]
    );
    assert_eq!(all[3], directory::model::ActionLogEntry { seq: 4, ..dept });
    let theirs = store
        .action_log(&k.id, &ActionLogFilter::default(), PageRequest::default())
        .await
        .unwrap();
    assert_eq!(theirs.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1]);

    // A number chosen by the caller is kept, and later numbers continue after it.
    let mut explicit = action(&j.id, SyncAction::UpdateUser, ActionResult::Applied, 7);
    explicit.seq = 10;
    store
        .append_action_log(&[
            explicit,
            action(&j.id, SyncAction::UpdateUser, ActionResult::Applied, 8),
        ])
        .await
        .unwrap();
    let seqs: Vec<i64> = store
        .action_log(&j.id, &ActionLogFilter::default(), PageRequest::default())
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5, 10, 11]);

    let filtered = |filter: ActionLogFilter| {
        let store = store.clone();
        let job = j.id.clone();
        async move {
            store
                .action_log(&job, &filter, PageRequest::default())
                .await
                .unwrap()
                .iter()
                .map(|e| e.seq)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        filtered(ActionLogFilter {
            action: Some(SyncAction::UpdateUser),
            ..ActionLogFilter::default()
        })
        .await,
        vec![2, 10, 11]
    );
    assert_eq!(
        filtered(ActionLogFilter {
            kind: Some(ObjectKind::Department),
            ..ActionLogFilter::default()
        })
        .await,
        vec![4]
    );
    assert_eq!(
        filtered(ActionLogFilter {
            result: Some(ActionResult::Applied),
            action: Some(SyncAction::UpdateUser),
            ..ActionLogFilter::default()
        })
        .await,
        vec![2, 10, 11]
    );
    assert_eq!(
        filtered(ActionLogFilter {
            result: Some(ActionResult::Parked),
            ..ActionLogFilter::default()
        })
        .await,
        vec![3]
    );
    let page = store
        .action_log(
            &j.id,
            &ActionLogFilter::default(),
            PageRequest {
                offset: 2,
                limit: 3,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![3, 4, 5]
    );

    // An unknown job: refused, nothing of the call written.
    let ghost = JobId::generate();
    assert!(matches!(
        store
            .append_action_log(&[
                action(&j.id, SyncAction::CreateUser, ActionResult::Applied, 9),
                action(&ghost, SyncAction::CreateUser, ActionResult::Applied, 9),
            ])
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store
            .action_log(&j.id, &ActionLogFilter::default(), PageRequest::default())
            .await
            .unwrap()
            .len(),
        7
    );
}

pub async fn lease_rules(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let c = new_connection(&store, &pool, "main").await;
    let o = new_connection(&store, &pool, "other").await;
    let ttl = Duration::from_secs(60);
    let take = |holder: &'static str, now: i64| {
        let store = store.clone();
        let id = c.id.clone();
        async move {
            store
                .try_acquire_lease(&id, holder, ttl, now)
                .await
                .unwrap()
        }
    };
    assert!(take("a", 1_000).await, "free");
    assert!(!take("b", 1_000).await, "held by a");
    assert!(
        take("a", 2_000).await,
        "renewed by its holder, until 62 000"
    );
    assert!(!take("b", 61_999).await);
    assert!(take("b", 62_000).await, "expired");
    store.release_lease(&c.id, "a").await.unwrap();
    assert!(!take("a", 62_001).await, "only the holder releases");
    store.release_lease(&c.id, "b").await.unwrap();
    assert!(take("a", 62_001).await, "released");
    // Leases are per connection.
    assert!(
        store
            .try_acquire_lease(&o.id, "b", ttl, 62_001)
            .await
            .unwrap()
    );
}

/// 10 instances racing for one lease (free, then expired): exactly one wins each round.
pub async fn lease_race_has_one_winner(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let c = new_connection(&store, &pool, "main").await;
    let ttl = Duration::from_secs(60);
    for round in 0..4_i64 {
        // Round 0 finds no row; later rounds find the previous winner's lease expired.
        let now = 1_000 + round * 100_000;
        let mut racers = tokio::task::JoinSet::new();
        for n in 0..10 {
            let store = store.clone();
            let id = c.id.clone();
            racers.spawn(async move {
                store
                    .try_acquire_lease(&id, &format!("instance-{round}-{n}"), ttl, now)
                    .await
                    .unwrap()
            });
        }
        let mut winners = 0;
        while let Some(won) = racers.join_next().await {
            winners += usize::from(won.unwrap());
        }
        assert_eq!(winners, 1, "round {round}");
    }
}

pub async fn parked_deletions(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let c = new_connection(&store, &pool, "main").await;
    let j = job(&c, 1_000);
    assert!(store.park_deletions(&[]).await.unwrap().is_empty());
    let items = [
        parked(&c, &j.id, 1),
        parked(&c, &j.id, 2),
        parked(&c, &j.id, 3),
    ];
    let ids = store.park_deletions(&items).await.unwrap();
    assert_eq!(ids.len(), 3);
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    let stored = store.get_parked(ids[0]).await.unwrap().unwrap();
    assert_eq!(
        stored,
        directory::model::ParkedDeletion {
            id: ids[0],
            ..items[0].clone()
        }
    );
    let listed = |state: Option<ParkedState>| {
        let store = store.clone();
        let pool = pool.clone();
        async move {
            store
                .list_parked(&pool, state, PageRequest::default())
                .await
                .unwrap()
                .into_iter()
                .map(|p| p.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        listed(None).await,
        vec![ids[2], ids[1], ids[0]],
        "newest first"
    );

    assert!(
        store
            .resolve_parked(ids[0], ParkedState::Approved, 9_000)
            .await
            .unwrap()
    );
    let approved = store.get_parked(ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (approved.state, approved.resolved_at),
        (ParkedState::Approved, Some(9_000))
    );
    assert!(
        !store
            .resolve_parked(ids[0], ParkedState::Rejected, 9_500)
            .await
            .unwrap(),
        "only from pending"
    );
    assert!(
        !store
            .resolve_parked(ids[1], ParkedState::Pending, 9_500)
            .await
            .unwrap()
    );
    assert!(
        store
            .resolve_parked(ids[2], ParkedState::Rejected, 9_600)
            .await
            .unwrap()
    );
    assert!(
        !store
            .resolve_parked(i64::MAX, ParkedState::Approved, 1)
            .await
            .unwrap()
    );
    assert_eq!(listed(Some(ParkedState::Pending)).await, vec![ids[1]]);
    assert_eq!(listed(Some(ParkedState::Approved)).await, vec![ids[0]]);
    assert_eq!(listed(Some(ParkedState::Rejected)).await, vec![ids[2]]);
    let page = store
        .list_parked(
            &pool,
            None,
            PageRequest {
                offset: 1,
                limit: 1,
            },
        )
        .await
        .unwrap();
    assert_eq!(page[0].id, ids[1]);
    assert!(
        store
            .list_parked(&PoolId::generate(), None, PageRequest::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.get_parked(i64::MAX).await.unwrap().is_none());
}

/// The lease of a connection deleted meanwhile (an admin removed it as a job was starting) is
/// "not found", not a database failure.
pub async fn writes_for_a_deleted_connection_are_not_found(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let c = new_connection(&store, &pool, "gone").await;
    store.delete_connection(&c.id).await.unwrap();
    let err = store
        .try_acquire_lease(&c.id, "someone", Duration::from_secs(60), 1_000)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
}
