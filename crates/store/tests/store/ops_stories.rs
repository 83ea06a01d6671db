//! Jobs and their action log, the job lease, parked deletions.

use std::collections::BTreeMap;
use std::time::Duration;

use directory::ids::{JobId, PoolId};
use directory::model::{
    ActionResult, JobProgress, JobState, ObjectKind, ParkedState, SyncAction, Verdict,
};
use directory::store::{ActionLogFilter, PageRequest, ParkedFilter, RunningJobs, StoreError};

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
        throttled: 3,
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
                    limit: 1,
                    after: None,
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
    let after_two = store
        .action_log(
            &j.id,
            &ActionLogFilter::default(),
            PageRequest {
                offset: 0,
                limit: 2,
                after: Some(2),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        after_two.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![3, 4],
        "a page by key starts after the last line seen"
    );
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
                after: None,
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

/// The event worker's lease has the job lease's rules and is independent of it: a running job
/// does not keep events waiting. Released by holder prefix together with the job lease.
pub async fn event_lease_rules(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let c = new_connection(&store, &pool, "main").await;
    let o = new_connection(&store, &pool, "other").await;
    let ttl = Duration::from_secs(60);
    let take = |holder: &'static str, now: i64| {
        let store = store.clone();
        let id = c.id.clone();
        async move {
            store
                .try_acquire_event_lease(&id, holder, ttl, now)
                .await
                .unwrap()
        }
    };
    // A job holds the connection: the worker still gets its own lease.
    assert!(
        store
            .try_acquire_lease(&c.id, "i/job", ttl, 1_000)
            .await
            .unwrap()
    );
    assert!(take("i/worker-1", 1_000).await, "free beside a job");
    assert!(
        !take("j/worker-2", 1_000).await,
        "one worker per connection"
    );
    assert!(take("i/worker-1", 2_000).await, "renewed, until 62 000");
    assert!(!take("j/worker-2", 61_999).await);
    assert!(take("j/worker-2", 62_000).await, "expired");
    store
        .release_event_lease(&c.id, "i/worker-1")
        .await
        .unwrap();
    assert!(
        !take("i/worker-1", 62_001).await,
        "only the holder releases"
    );
    store
        .release_event_lease(&c.id, "j/worker-2")
        .await
        .unwrap();
    assert!(take("i/worker-1", 62_001).await, "released");
    // The job lease was never touched by the worker's.
    assert!(
        !store
            .try_acquire_lease(&c.id, "k/job", ttl, 2_000)
            .await
            .unwrap()
    );
    // Per connection.
    assert!(
        store
            .try_acquire_event_lease(&o.id, "j/worker-2", ttl, 62_001)
            .await
            .unwrap()
    );
    // A restarted instance frees both kinds.
    assert_eq!(store.release_leases_by_prefix("i/").await.unwrap(), 2);
    assert!(take("k/worker", 62_002).await);
    assert!(
        store
            .try_acquire_lease(&c.id, "k/job", ttl, 2_000)
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

/// Jobs left running by a stopped process end failed, in one statement: those of an instance
/// (it restarted), of a connection (a new job took its lease), or whose connection's lease is
/// gone or expired. A job with a live lease, a finished job and other instances' jobs are not
/// touched.
pub async fn running_jobs_are_interrupted_by_instance_connection_or_lapsed_lease(
    store: Store,
    _raw: Raw,
) {
    let pool = new_pool(&store).await;
    let mut connections = Vec::new();
    for name in ["c1", "c2", "c3", "c4"] {
        connections.push(new_connection(&store, &pool, name).await);
    }
    let [c1, c2, c3, c4] = &connections[..] else {
        unreachable!()
    };
    let ttl = Duration::from_secs(60);
    let running = |c, started_at, instance: Option<&str>| {
        let mut j = job(c, started_at);
        j.instance = instance.map(str::to_owned);
        j
    };
    // Instance a's running job (lease live) and an older job of it that finished.
    let a = running(c1, 10_000, Some("instance-a"));
    let mut a_done = running(c1, 5_000, Some("instance-a"));
    a_done.state = JobState::Finished;
    a_done.verdict = Some(Verdict::Complete);
    a_done.finished_at = Some(6_000);
    // Instance b: one job whose lease expired at 61 000, one whose lease is live.
    let b_expired = running(c2, 1_000, Some("instance-b"));
    let b_live = running(c3, 90_000, Some("instance-b"));
    // A job recorded before instances were named, whose lease is gone.
    let legacy = running(c4, 2_000, None);
    for j in [&a, &a_done, &b_expired, &b_live, &legacy] {
        store.create_job(j).await.unwrap();
    }
    let lease = |c: &directory::model::Connection, holder: String, now: i64| {
        let store = store.clone();
        let id = c.id.clone();
        async move {
            assert!(
                store
                    .try_acquire_lease(&id, &holder, ttl, now)
                    .await
                    .unwrap()
            );
        }
    };
    lease(c1, format!("instance-a/{}", a.id), 99_000).await;
    lease(c2, format!("instance-b/{}", b_expired.id), 1_000).await;
    lease(c3, format!("instance-b/{}", b_live.id), 99_000).await;
    let ids =
        |jobs: &[directory::model::SyncJob]| jobs.iter().map(|j| j.id.clone()).collect::<Vec<_>>();
    let error = "interrupted: the process stopped";

    // A restart of instance a ends its running job, nothing else.
    let ended = store
        .interrupt_jobs(
            &RunningJobs::OfInstance("instance-a".into()),
            error,
            100_000,
        )
        .await
        .unwrap();
    assert_eq!(ids(&ended), vec![a.id.clone()]);
    let expected = directory::model::SyncJob {
        state: JobState::Finished,
        verdict: Some(Verdict::Failed),
        error: Some(error.into()),
        error_code: None,
        finished_at: Some(100_000),
        ..a.clone()
    };
    assert_eq!(ended[0], expected, "the progress and the instance are kept");
    assert_eq!(store.get_job(&a.id).await.unwrap(), Some(expected));
    assert_eq!(
        store.get_job(&a_done.id).await.unwrap(),
        Some(a_done.clone())
    );
    assert!(
        store
            .interrupt_jobs(
                &RunningJobs::OfInstance("instance-a".into()),
                error,
                100_500
            )
            .await
            .unwrap()
            .is_empty(),
        "a finished job stays as it is"
    );
    assert!(
        store
            .interrupt_jobs(
                &RunningJobs::OfInstance("instance-c".into()),
                error,
                100_500
            )
            .await
            .unwrap()
            .is_empty()
    );

    // At 100 000: b's first lease expired and the legacy job has none; b's second is live.
    let ended = store
        .interrupt_jobs(
            &RunningJobs::WithoutLiveLease { now: 100_000 },
            error,
            100_001,
        )
        .await
        .unwrap();
    assert_eq!(
        ids(&ended),
        vec![b_expired.id.clone(), legacy.id.clone()],
        "oldest first"
    );
    assert!(ended.iter().all(|j| j.state == JobState::Finished
        && j.verdict == Some(Verdict::Failed)
        && j.finished_at == Some(100_001)));
    assert_eq!(
        store.get_job(&b_live.id).await.unwrap().unwrap().state,
        JobState::Running,
        "a live lease means a live job, however slow"
    );
    // Until its lease expires (159 000) too.
    assert!(
        store
            .interrupt_jobs(
                &RunningJobs::WithoutLiveLease { now: 158_999 },
                error,
                158_999
            )
            .await
            .unwrap()
            .is_empty()
    );
    let ended = store
        .interrupt_jobs(
            &RunningJobs::WithoutLiveLease { now: 159_000 },
            error,
            159_000,
        )
        .await
        .unwrap();
    assert_eq!(ids(&ended), vec![b_live.id.clone()]);

    // Whoever takes a connection's lease ends the jobs still recorded as running on it, and
    // only there.
    let stale = running(c1, 200_000, Some("instance-d"));
    let elsewhere = running(c2, 200_000, Some("instance-d"));
    store.create_job(&stale).await.unwrap();
    store.create_job(&elsewhere).await.unwrap();
    let ended = store
        .interrupt_jobs(&RunningJobs::OfConnection(c1.id.clone()), error, 210_000)
        .await
        .unwrap();
    assert_eq!(ids(&ended), vec![stale.id.clone()]);
    assert_eq!(
        store.get_job(&elsewhere.id).await.unwrap().unwrap().state,
        JobState::Running
    );
}

/// A restarted instance frees every lease its stopped process held (jobs' and the event
/// worker's), live or not, and no other: the holder is matched as a prefix, literally.
pub async fn leases_are_released_by_holder_prefix(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let ttl = Duration::from_secs(60);
    let holders = [
        "instance-a/job-1",
        "instance-a/worker-1f2e3d",
        "instance-ab/job-2",
        "instance_a/job-3",
        "other/instance-a/job-4",
    ];
    let mut connections = Vec::new();
    for (n, holder) in holders.iter().enumerate() {
        let c = new_connection(&store, &pool, &format!("c{n}")).await;
        assert!(
            store
                .try_acquire_lease(&c.id, holder, ttl, 1_000)
                .await
                .unwrap()
        );
        connections.push(c);
    }
    let free = |n: usize| {
        let store = store.clone();
        let id = connections[n].id.clone();
        async move {
            // Another holder gets it at once (it is live until 61 000).
            store
                .try_acquire_lease(&id, "probe", ttl, 2_000)
                .await
                .unwrap()
        }
    };
    // `_` and `%` are not wildcards.
    assert_eq!(
        store.release_leases_by_prefix("instance%").await.unwrap(),
        0
    );
    assert_eq!(
        store.release_leases_by_prefix("instance_a/").await.unwrap(),
        1
    );
    assert!(free(3).await);
    assert_eq!(
        store.release_leases_by_prefix("instance-a/").await.unwrap(),
        2
    );
    assert!(free(0).await);
    assert!(free(1).await);
    assert!(!free(2).await, "instance-ab is another instance");
    assert!(!free(4).await, "a prefix, not a substring");
    assert_eq!(
        store.release_leases_by_prefix("instance-a/").await.unwrap(),
        0
    );
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
        let filter = ParkedFilter {
            state,
            ..ParkedFilter::pool(&pool)
        };
        async move {
            store
                .list_parked(&filter, PageRequest::default())
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

    assert_eq!(
        store
            .resolve_parked(
                &[ids[0]],
                ParkedState::Approved,
                "approved by an admin",
                9_000
            )
            .await
            .unwrap(),
        vec![ids[0]]
    );
    let approved = store.get_parked(ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (
            approved.state,
            approved.resolved_at,
            approved.resolution.as_deref()
        ),
        (
            ParkedState::Approved,
            Some(9_000),
            Some("approved by an admin")
        )
    );
    assert!(
        store
            .resolve_parked(&[ids[0]], ParkedState::Rejected, "no", 9_500)
            .await
            .unwrap()
            .is_empty(),
        "only from pending"
    );
    assert!(
        store
            .resolve_parked(&[ids[1]], ParkedState::Pending, "no", 9_500)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .resolve_parked(
                &[ids[2], i64::MAX],
                ParkedState::Rejected,
                "rejected",
                9_600
            )
            .await
            .unwrap(),
        vec![ids[2]],
        "unknown ids are left out"
    );
    assert_eq!(listed(Some(ParkedState::Pending)).await, vec![ids[1]]);
    assert_eq!(listed(Some(ParkedState::Approved)).await, vec![ids[0]]);
    assert_eq!(listed(Some(ParkedState::Rejected)).await, vec![ids[2]]);
    let page = store
        .list_parked(
            &ParkedFilter::pool(&pool),
            PageRequest {
                offset: 1,
                limit: 1,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(page[0].id, ids[1]);
    let older = store
        .list_parked(
            &ParkedFilter::pool(&pool),
            PageRequest {
                offset: 0,
                limit: 5,
                after: Some(ids[1]),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        older.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![ids[0]],
        "by key: the entries older than the last one seen"
    );
    assert!(
        store
            .list_parked(
                &ParkedFilter::pool(&PoolId::generate()),
                PageRequest::default()
            )
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.get_parked(i64::MAX).await.unwrap().is_none());
}

/// A later job that parks an object already pending on the same connection refreshes that
/// entry; resolved entries stay as history, and a new deletion after them parks again.
pub async fn parking_is_idempotent_per_connection_and_object(store: Store, raw: Raw) {
    let pool = new_pool(&store).await;
    let c = new_connection(&store, &pool, "main").await;
    let other = new_connection(&store, &pool, "other").await;
    let (j1, j2) = (job(&c, 1_000), job(&c, 2_000));
    let first: Vec<_> = (1..=3).map(|n| parked(&c, &j1.id, n)).collect();
    let ids = store.park_deletions(&first).await.unwrap();

    // The next reconciliation parks the same three objects (and a fourth).
    let mut again: Vec<_> = first
        .iter()
        .map(|p| directory::model::ParkedDeletion {
            job_id: j2.id.clone(),
            name: Some(format!("{} (renamed)", p.name.as_deref().unwrap())),
            reason: "51 user deletions exceed the threshold".into(),
            created_at: 8_000,
            last_parked_at: 8_000,
            ..p.clone()
        })
        .collect();
    again.push(parked(&c, &j2.id, 4));
    let refreshed = store.park_deletions(&again).await.unwrap();
    assert_eq!(refreshed[..3], ids[..], "the same entries");
    assert!(refreshed[3] > ids[2]);
    let pending = ParkedFilter::pool(&pool).state(ParkedState::Pending);
    assert_eq!(store.count_parked(&pending).await.unwrap(), 4);
    let entry = store.get_parked(ids[0]).await.unwrap().unwrap();
    assert_eq!(entry.job_id, j2.id, "the job that parked it last");
    assert_eq!(entry.name.as_deref(), Some("User 1 (renamed)"));
    assert_eq!(entry.reason, "51 user deletions exceed the threshold");
    assert_eq!(
        (entry.created_at, entry.last_parked_at),
        (7_000, 8_000),
        "first parked at 7 000, last at 8 000"
    );

    // Another connection's deletion of the same object is its own entry.
    let mut theirs = parked(&other, &j1.id, 1);
    theirs.object_id = first[0].object_id.clone();
    let their_id = store.park_deletions(&[theirs]).await.unwrap()[0];
    assert!(!ids.contains(&their_id));
    assert_eq!(store.count_parked(&pending).await.unwrap(), 5);

    // Rejected: history. The object's next deletion parks a new pending entry.
    store
        .resolve_parked(
            &[ids[0]],
            ParkedState::Rejected,
            "rejected by an admin",
            9_000,
        )
        .await
        .unwrap();
    let new_id = store.park_deletions(&first[..1]).await.unwrap()[0];
    assert_ne!(new_id, ids[0]);
    let history = store.get_parked(ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (history.state, history.job_id.clone()),
        (ParkedState::Rejected, j2.id.clone()),
        "a resolved entry is never refreshed"
    );
    assert_eq!(store.count_parked(&pending).await.unwrap(), 5);

    // The rule is the schema's, not only the store's: a second pending row cannot exist.
    let duplicate = format!(
        "INSERT INTO parked_deletions (pool_id, connection_id, job_id, kind, object_id, \
         external_id, reason, state, created_at, last_parked_at) VALUES ('{pool}', '{}', \
         '{}', 'user', '{}', 'ou_1', 'again', 'pending', 1, 1)",
        c.id, j1.id, first[0].object_id
    );
    let err = raw_try(&raw, duplicate).await.unwrap_err();
    assert!(err.to_lowercase().contains("unique"), "{err}");
}

/// Lists, counts and batch walks by connection, object kind, job and state.
pub async fn parked_filters_counts_and_batches(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let c = new_connection(&store, &pool, "main").await;
    let o = new_connection(&store, &pool, "other").await;
    let (j1, j2) = (job(&c, 1_000), job(&o, 2_000));
    let mut items = Vec::new();
    for n in 0..450 {
        let mut p = parked(&c, &j1.id, n);
        if n % 3 == 0 {
            p.kind = ObjectKind::Department;
        }
        items.push(p);
    }
    for n in 0..50 {
        items.push(parked(&o, &j2.id, n));
    }
    let ids = store.park_deletions(&items).await.unwrap();
    let other_pool = new_pool(&store).await;
    let stranger = new_connection(&store, &other_pool, "main").await;
    store
        .park_deletions(&[parked(&stranger, &j1.id, 1)])
        .await
        .unwrap();

    let all = ParkedFilter::pool(&pool);
    let count = |f: ParkedFilter| {
        let store = store.clone();
        async move { store.count_parked(&f).await.unwrap() }
    };
    assert_eq!(count(all.clone()).await, 500);
    assert_eq!(count(all.clone().state(ParkedState::Pending)).await, 500);
    assert_eq!(count(all.clone().state(ParkedState::Approved)).await, 0);
    let by_connection = ParkedFilter {
        connection_id: Some(o.id.clone()),
        ..all.clone()
    };
    assert_eq!(count(by_connection.clone()).await, 50);
    let by_job = ParkedFilter {
        job_id: Some(j1.id.clone()),
        ..all.clone()
    };
    assert_eq!(
        count(by_job.clone()).await,
        450,
        "the other pool's entry is not counted"
    );
    let departments = ParkedFilter {
        kind: Some(ObjectKind::Department),
        ..by_job.clone()
    };
    assert_eq!(count(departments.clone()).await, 150);
    let listed = store
        .list_parked(
            &departments,
            PageRequest {
                offset: 0,
                limit: 500,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.len(), 150);
    assert!(
        listed
            .iter()
            .all(|p| p.kind == ObjectKind::Department && p.job_id == j1.id)
    );

    // A walk in batches of 200 sees every entry once, in id order.
    let mut seen = Vec::new();
    let mut after = 0;
    let mut batches = 0;
    loop {
        let batch = store.parked_after(&by_job, after, 200).await.unwrap();
        let Some(last) = batch.last() else { break };
        after = last.id;
        batches += 1;
        seen.extend(batch.iter().map(|p| p.id));
    }
    assert_eq!(batches, 3);
    assert_eq!(seen, ids[..450].to_vec());

    // Resolving many at once: one statement per chunk, pending ones only.
    let resolved = store
        .resolve_parked(
            &ids[..450],
            ParkedState::Withdrawn,
            "the user is back in Feishu",
            9_000,
        )
        .await
        .unwrap();
    assert_eq!(resolved, ids[..450].to_vec());
    assert_eq!(count(all.clone().state(ParkedState::Pending)).await, 50);
    assert_eq!(count(all.clone().state(ParkedState::Withdrawn)).await, 450);
    let w = store.get_parked(ids[7]).await.unwrap().unwrap();
    assert_eq!(
        (w.state, w.resolution.as_deref(), w.resolved_at),
        (
            ParkedState::Withdrawn,
            Some("the user is back in Feishu"),
            Some(9_000)
        )
    );
    assert!(
        store
            .parked_after(&by_job.clone().state(ParkedState::Pending), 0, 200)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Migration 0003 collapses the duplicate pending entries that earlier versions piled up:
/// the oldest id stays, with the newest duplicate's job and reason.
pub async fn migration_collapses_duplicate_pending_entries(store: Store, raw: Raw) {
    // Back to the schema before 0003, with the pile-up of two reconciliations.
    for statement in [
        "DROP INDEX parked_pending_once",
        "DROP INDEX parked_by_job",
        "ALTER TABLE parked_deletions DROP COLUMN last_parked_at",
        "ALTER TABLE parked_deletions DROP COLUMN resolution",
        "DELETE FROM _sqlx_migrations WHERE version = 3",
    ] {
        raw_try(&raw, statement.to_owned()).await.unwrap();
    }
    let insert = |id: i64, job: &str, object: &str, state: &str, created_at: i64| {
        format!(
            "INSERT INTO parked_deletions (id, pool_id, connection_id, job_id, kind, object_id, \
             external_id, name, reason, state, created_at) VALUES ({id}, 'p', 'c', '{job}', \
             'user', '{object}', 'ou_{object}', 'User {object}', 'reason of {job}', '{state}', \
             {created_at})"
        )
    };
    for statement in [
        insert(1, "job1", "u1", "pending", 100),
        insert(2, "job1", "u2", "pending", 100),
        insert(3, "job1", "u3", "rejected", 100),
        insert(4, "job2", "u1", "pending", 200),
        insert(5, "job2", "u2", "pending", 200),
        insert(6, "job2", "u3", "pending", 200),
        insert(7, "job3", "u1", "pending", 300),
    ] {
        raw_try(&raw, statement).await.unwrap();
    }
    drop(store);
    let store: Store = match &raw {
        Raw::Sqlite(path) => std::sync::Arc::new(store::SqliteStore::open(path).await.unwrap()),
        Raw::Postgres(options) => std::sync::Arc::new(
            store::PgStore::connect_with((**options).clone(), 2)
                .await
                .unwrap(),
        ),
    };
    let all = store
        .list_parked(
            &ParkedFilter::pool(&PoolId::from("p")),
            PageRequest::default(),
        )
        .await
        .unwrap();
    let got: Vec<_> = all
        .iter()
        .rev()
        .map(|p| {
            (
                p.id,
                p.object_id.as_str(),
                p.state,
                p.job_id.as_str(),
                p.reason.as_str(),
                p.created_at,
                p.last_parked_at,
            )
        })
        .collect();
    use ParkedState::*;
    assert_eq!(
        got,
        vec![
            (1, "u1", Pending, "job3", "reason of job3", 100, 300),
            (2, "u2", Pending, "job2", "reason of job2", 100, 200),
            (3, "u3", Rejected, "job1", "reason of job1", 100, 100),
            (6, "u3", Pending, "job2", "reason of job2", 200, 200),
        ]
    );
    // And the rule holds from now on.
    let c = directory::ids::ConnectionId::from("c");
    let mut next = all[0].clone();
    next.id = 0;
    next.connection_id = c;
    next.job_id = JobId::from("job4");
    next.last_parked_at = 400;
    assert_eq!(store.park_deletions(&[next]).await.unwrap(), vec![6]);
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
