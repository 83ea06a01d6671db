//! What the batched event worker needs: bulk reads of everything a batch of events touches,
//! and one `apply` that commits several events (their changes, watermarks and inbox
//! outcomes) at once.

use directory::ids::{ConnectionId, DepartmentId, GroupId, UserId};
use directory::model::{GroupMember, LeaderKind, ObjectKind, User};
use directory::store::{
    ApplyBatch, ChangeKind, ChangeSource, InboxFilter, InboxOutcome, InboxState, InsertOutcome,
    StoreError, Write,
};

use crate::fixtures::*;

/// More than one chunk of ids (the store's chunks are 1,000).
const MANY: usize = 1_200;

fn ids_of(outcomes: Vec<InsertOutcome>) -> Vec<i64> {
    outcomes
        .into_iter()
        .map(|o| match o {
            InsertOutcome::Inserted(id) => id,
            other => panic!("expected an insert, got {other:?}"),
        })
        .collect()
}

fn event_source(c: &ConnectionId, event_id: &str) -> ChangeSource {
    ChangeSource::Event {
        event_id: event_id.into(),
        connection_id: c.clone(),
    }
}

pub async fn bulk_reads_match_the_single_reads(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let c = new_connection(&store, &pool, "main").await;
    let other = new_connection(&store, &pool, "other").await;

    let mut departments = Vec::with_capacity(MANY);
    let mut users = Vec::with_capacity(MANY);
    let mut groups = Vec::with_capacity(MANY);
    for n in 0..MANY {
        departments.push(department(&pool, &format!("D{n}"), None));
    }
    for n in 0..MANY {
        let mut u = user(&pool, n);
        u.departments = vec![membership(&departments[n].id, true)];
        if n % 3 == 0 {
            u.departments
                .push(membership(&departments[(n + 1) % MANY].id, false));
        }
        if n % 100 == 5 {
            u.deleted_at = Some(9);
            u.departments.clear();
        }
        users.push(u);
    }
    for (n, d) in departments.iter_mut().enumerate() {
        if n % 2 == 0 {
            d.leaders = vec![
                leader(&users[n].id, LeaderKind::Main),
                leader(&users[(n + 7) % MANY].id, LeaderKind::Deputy),
            ];
        }
        if n % 100 == 6 {
            d.deleted_at = Some(9);
        }
    }
    for n in 0..MANY {
        let mut g = group(
            &pool,
            &format!("G{n}"),
            vec![
                GroupMember::User(users[n].id.clone()),
                GroupMember::Department(departments[n].id.clone()),
            ],
        );
        if n % 100 == 7 {
            g.deleted_at = Some(9);
        }
        groups.push(g);
    }
    let mut writes = Vec::new();
    writes.extend(
        departments
            .iter()
            .map(|d| put_department(d, ChangeKind::DepartmentCreated)),
    );
    writes.extend(users.iter().map(|u| put_user(u, ChangeKind::UserCreated)));
    writes.extend(
        groups
            .iter()
            .map(|g| put_group(g, ChangeKind::GroupCreated)),
    );
    for u in &users {
        writes.push(Write::PutExternalRef(external(
            &c.id,
            ObjectKind::User,
            &format!("ou_{}", u.id),
            u.id.as_str(),
        )));
    }
    // The other connection maps the first few under the same Feishu ids.
    for u in &users[..10] {
        writes.push(Write::PutExternalRef(external(
            &other.id,
            ObjectKind::User,
            &format!("ou_{}", u.id),
            u.id.as_str(),
        )));
    }
    store.apply(batch(&pool, writes)).await.unwrap();

    // Users: asked in reverse order, with repeats and unknown ids.
    let mut asked: Vec<UserId> = users.iter().rev().map(|u| u.id.clone()).collect();
    asked.insert(3, UserId::generate());
    asked.push(users[0].id.clone());
    asked.push(users[1].id.clone());
    asked.push(UserId::generate());
    let got = store.get_users(&pool, &asked).await.unwrap();
    let expected_order: Vec<&UserId> = users.iter().rev().map(|u| &u.id).collect();
    assert_eq!(
        got.iter().map(|u| &u.id).collect::<Vec<_>>(),
        expected_order
    );
    assert_eq!(got.iter().filter(|u| u.deleted_at.is_some()).count(), 12);
    for u in got
        .iter()
        .step_by(7)
        .chain(got.iter().filter(|u| u.deleted_at.is_some()))
    {
        let single = store.get_user(&pool, &u.id).await.unwrap().unwrap();
        assert_eq!(u, &single);
    }
    let two_memberships = got.iter().find(|u| u.id == users[3].id).unwrap();
    assert_eq!(two_memberships.departments, users[3].departments);
    assert!(store.get_users(&pool, &[]).await.unwrap().is_empty());
    // Another pool's ids are not this pool's objects.
    let elsewhere = new_pool(&store).await;
    assert!(
        store
            .get_users(&elsewhere, &asked)
            .await
            .unwrap()
            .is_empty()
    );

    // Departments.
    let mut asked: Vec<DepartmentId> = departments.iter().map(|d| d.id.clone()).collect();
    asked.push(DepartmentId::generate());
    let got = store.get_departments(&pool, &asked).await.unwrap();
    assert_eq!(
        got.iter().map(|d| &d.id).collect::<Vec<_>>(),
        departments.iter().map(|d| &d.id).collect::<Vec<_>>()
    );
    assert_eq!(got.iter().filter(|d| d.deleted_at.is_some()).count(), 12);
    for d in got
        .iter()
        .step_by(7)
        .chain(got.iter().filter(|d| d.deleted_at.is_some()))
    {
        let single = store.get_department(&pool, &d.id).await.unwrap().unwrap();
        assert_eq!(d, &single);
    }
    assert_eq!(got[0].leaders, departments[0].leaders);
    assert!(got[1].leaders.is_empty());

    // Groups.
    let mut asked: Vec<GroupId> = groups.iter().map(|g| g.id.clone()).collect();
    asked.push(GroupId::generate());
    let got = store.get_groups(&pool, &asked).await.unwrap();
    assert_eq!(
        got.iter().map(|g| &g.id).collect::<Vec<_>>(),
        groups.iter().map(|g| &g.id).collect::<Vec<_>>()
    );
    assert_eq!(got.iter().filter(|g| g.deleted_at.is_some()).count(), 12);
    for g in got
        .iter()
        .step_by(7)
        .chain(got.iter().filter(|g| g.deleted_at.is_some()))
    {
        let single = store.get_group(&pool, &g.id).await.unwrap().unwrap();
        assert_eq!(g, &single);
    }
    assert_eq!(got[0].members, groups[0].members);

    // External refs: by Feishu id, of one connection and one kind.
    let mut external_ids: Vec<String> = users.iter().map(|u| format!("ou_{}", u.id)).collect();
    external_ids.push("ou_unknown".into());
    let refs = store
        .find_externals(&c.id, ObjectKind::User, &external_ids)
        .await
        .unwrap();
    assert_eq!(refs.len(), MANY);
    for (n, u) in users.iter().enumerate().step_by(11) {
        let key = &external_ids[n];
        let single = store
            .find_external(&c.id, ObjectKind::User, key)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(refs[key], single);
        assert_eq!(refs[key].object_id, u.id.as_str());
    }
    let theirs = store
        .find_externals(&other.id, ObjectKind::User, &external_ids)
        .await
        .unwrap();
    assert_eq!(theirs.len(), 10);
    assert!(theirs.values().all(|r| r.connection_id == other.id));
    assert!(
        store
            .find_externals(&c.id, ObjectKind::Department, &external_ids)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .find_externals(&c.id, ObjectKind::User, &[])
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn department_members_are_every_live_member(store: Store, _raw: Raw) {
    const MEMBERS: usize = 10_050;
    let pool = new_pool(&store).await;
    let big = department(&pool, "Big", None);
    let small = department(&pool, "Small", None);
    let empty = department(&pool, "Empty", None);
    let mut writes = vec![
        put_department(&big, ChangeKind::DepartmentCreated),
        put_department(&small, ChangeKind::DepartmentCreated),
        put_department(&empty, ChangeKind::DepartmentCreated),
    ];
    let mut members: Vec<User> = Vec::with_capacity(MEMBERS);
    for n in 0..MEMBERS {
        let mut u = user(&pool, n);
        u.departments = vec![membership(&big.id, n % 2 == 0)];
        if n % 1_000 == 1 {
            // Listed second: still a member.
            u.departments.insert(0, membership(&small.id, true));
        }
        members.push(u);
    }
    // A tombstone that kept its membership row, and a member of another department only:
    // neither is listed.
    let mut gone = user(&pool, MEMBERS + 1);
    gone.departments = vec![membership(&big.id, true)];
    gone.deleted_at = Some(9);
    let mut elsewhere = user(&pool, MEMBERS + 2);
    elsewhere.departments = vec![membership(&small.id, true)];
    writes.extend(members.iter().map(|u| put_user(u, ChangeKind::UserCreated)));
    writes.push(put_user(&gone, ChangeKind::UserCreated));
    writes.push(put_user(&elsewhere, ChangeKind::UserCreated));
    let started = std::time::Instant::now();
    store.apply(batch(&pool, writes)).await.unwrap();
    eprintln!("{MEMBERS} users in one apply: {:?}", started.elapsed());

    let started = std::time::Instant::now();
    let listed = store.department_members(&pool, &big.id).await.unwrap();
    eprintln!("department_members of {MEMBERS}: {:?}", started.elapsed());
    assert_eq!(listed.len(), MEMBERS);
    members.sort_by(|a, b| a.id.0.cmp(&b.id.0));
    assert_eq!(
        listed.iter().map(|u| &u.id).collect::<Vec<_>>(),
        members.iter().map(|u| &u.id).collect::<Vec<_>>()
    );
    for (got, wanted) in listed.iter().zip(&members).step_by(97) {
        assert_eq!(got.departments, wanted.departments);
        assert_eq!(got, &store.get_user(&pool, &got.id).await.unwrap().unwrap());
    }
    let two = listed.iter().filter(|u| u.departments.len() == 2).count();
    assert_eq!(two, MEMBERS.div_ceil(1_000));

    let small_members = store.department_members(&pool, &small.id).await.unwrap();
    assert_eq!(small_members.len(), two + 1);
    assert!(small_members.iter().any(|u| u.id == elsewhere.id));
    assert!(
        store
            .department_members(&pool, &empty.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .department_members(&pool, &DepartmentId::generate())
            .await
            .unwrap()
            .is_empty()
    );
    let other_pool = new_pool(&store).await;
    assert!(
        store
            .department_members(&other_pool, &big.id)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn each_event_of_a_batch_is_the_source_of_its_changes(store: Store, _raw: Raw) {
    let pool = new_pool(&store).await;
    let c = new_connection(&store, &pool, "main").await;
    let (a, b, d) = (user(&pool, 1), user(&pool, 2), department(&pool, "D", None));
    let mut a2 = a.clone();
    a2.profile.name = Some("Renamed".into());
    let mut batch = ApplyBatch::new(pool.clone(), event_source(&c.id, "e1"));
    batch.writes = vec![
        put_user(&a, ChangeKind::UserCreated),
        Write::PutExternalRef(external(&c.id, ObjectKind::User, "ou_a", a.id.as_str())),
        // e2 starts with a ref: its first change row is the department.
        Write::PutExternalRef(external(&c.id, ObjectKind::User, "ou_b", b.id.as_str())),
        put_department(&d, ChangeKind::DepartmentCreated),
        put_user(&b, ChangeKind::UserCreated),
        // e3 changes an object e1 created.
        put_user(&a2, ChangeKind::UserUpdated),
    ];
    batch.later_sources = vec![
        (2, event_source(&c.id, "e2")),
        (5, event_source(&c.id, "e3")),
    ];
    let applied = store.apply(batch).await.unwrap();
    let logged = store.changes_since(&pool, 0, 100).await.unwrap();
    assert_eq!(applied.changes, logged);
    let rows: Vec<(ChangeKind, &str, ChangeSource, i64)> = logged
        .iter()
        .map(|r| (r.kind, r.object_id.as_str(), r.source.clone(), r.version))
        .collect();
    assert_eq!(
        rows,
        vec![
            (
                ChangeKind::UserCreated,
                a.id.as_str(),
                event_source(&c.id, "e1"),
                1
            ),
            (
                ChangeKind::DepartmentCreated,
                d.id.as_str(),
                event_source(&c.id, "e2"),
                1
            ),
            (
                ChangeKind::UserCreated,
                b.id.as_str(),
                event_source(&c.id, "e2"),
                1
            ),
            (
                ChangeKind::UserUpdated,
                a.id.as_str(),
                event_source(&c.id, "e3"),
                2
            ),
        ]
    );
    assert_eq!(
        store
            .get_user(&pool, &a.id)
            .await
            .unwrap()
            .unwrap()
            .profile
            .name
            .as_deref(),
        Some("Renamed")
    );

    // Without later sources every change is the batch's source.
    let mut one = ApplyBatch::new(pool.clone(), ChangeSource::Admin);
    one.writes = vec![put_user(&user(&pool, 3), ChangeKind::UserCreated)];
    let applied = store.apply(one).await.unwrap();
    assert_eq!(applied.changes[0].source, ChangeSource::Admin);
}

/// The outcomes an apply gives its events: applied (with and without a note) and ignored,
/// mixed, and one retry and one parking, which a batch may carry too.
fn outcome(n: usize) -> InboxOutcome {
    match n {
        3 => InboxOutcome::Retry {
            error: "try again".into(),
            next_attempt_at: 99_000,
        },
        4 => InboxOutcome::Parked {
            error: "gave up".into(),
        },
        n if n % 3 == 0 => InboxOutcome::Applied { note: None },
        n if n % 3 == 1 => InboxOutcome::Applied {
            note: Some(format!("applied {n}")),
        },
        n => InboxOutcome::Ignored {
            reason: format!("ignored {n}"),
        },
    }
}

pub async fn one_apply_finishes_500_inbox_events(store: Store, _raw: Raw) {
    const EVENTS: usize = 500;
    let pool = new_pool(&store).await;
    let c = new_connection(&store, &pool, "main").await;
    let events: Vec<_> = (0..EVENTS)
        .map(|n| event(&c, &format!("e{n}"), Some(n as i64)))
        .collect();
    let ids = ids_of(store.inbox_insert(&events).await.unwrap());
    let due = store
        .inbox_due(&c.id, EVENTS as u64, 2_000, None)
        .await
        .unwrap();
    assert_eq!(due.len(), EVENTS);
    let outcomes: Vec<(i64, InboxOutcome)> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| (*id, outcome(n)))
        .collect();
    let pending = InboxFilter {
        connection_id: Some(c.id.clone()),
        state: Some(InboxState::Pending),
        ..InboxFilter::default()
    };
    let untouched = |e: &directory::store::InboxEvent| {
        e.state == InboxState::Pending
            && e.attempts == 0
            && e.outcome.is_none()
            && e.finished_at.is_none()
    };

    // A refused batch (version conflict) finishes none of its events, and writes nothing.
    let doomed_user = user(&pool, 1);
    let mut doomed = ApplyBatch::new(pool.clone(), event_source(&c.id, "e0"));
    doomed.writes = vec![
        put_user(&user(&pool, 2), ChangeKind::UserCreated),
        Write::PutUser {
            user: doomed_user.clone(),
            change: ChangeKind::UserCreated,
            expected_version: Some(3),
        },
    ];
    doomed.inbox = outcomes.clone();
    assert!(matches!(
        store.apply(doomed).await,
        Err(StoreError::VersionConflict { .. })
    ));
    assert_eq!(store.inbox_count(&pending).await.unwrap(), EVENTS as u64);
    assert!(store.changes_since(&pool, 0, 10).await.unwrap().is_empty());

    // An event listed twice, an unknown one, or one already finished: refused as a whole.
    let mut twice = ApplyBatch::new(pool.clone(), ChangeSource::Admin);
    twice.inbox = outcomes[..10].to_vec();
    twice.inbox.push(outcomes[4].clone());
    assert!(matches!(
        store.apply(twice).await,
        Err(StoreError::Conflict(_))
    ));
    let mut unknown = ApplyBatch::new(pool.clone(), ChangeSource::Admin);
    unknown.inbox = outcomes[..10].to_vec();
    unknown
        .inbox
        .insert(5, (i64::MAX, InboxOutcome::Applied { note: None }));
    assert!(matches!(
        store.apply(unknown).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.inbox_count(&pending).await.unwrap(), EVENTS as u64);
    let last = *ids.last().unwrap();
    store
        .inbox_finish(last, InboxOutcome::Applied { note: None }, 2_500)
        .await
        .unwrap();
    let mut finished = ApplyBatch::new(pool.clone(), ChangeSource::Admin);
    finished.inbox = outcomes.clone();
    assert!(matches!(
        store.apply(finished).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.inbox_count(&pending).await.unwrap(),
        EVENTS as u64 - 1
    );
    for id in &ids[..EVENTS - 1] {
        assert!(untouched(&store.inbox_get(*id).await.unwrap().unwrap()));
    }

    // The whole batch, with its writes, in one apply.
    let u = user(&pool, 3);
    let mut whole = ApplyBatch::new(pool.clone(), event_source(&c.id, "e0"));
    whole.writes = vec![put_user(&u, ChangeKind::UserCreated)];
    whole.watermarks = vec![watermark(&c.id, &format!("user:ou_{}", u.id), 7, false)];
    whole.inbox = outcomes[..EVENTS - 1].to_vec();
    let before = directory::ids::now_ms();
    store.apply(whole).await.unwrap();
    for (n, id) in ids[..EVENTS - 1].iter().enumerate() {
        let e = store.inbox_get(*id).await.unwrap().unwrap();
        match outcome(n) {
            InboxOutcome::Applied { note } => {
                assert_eq!(e.state, InboxState::Applied, "{n}");
                assert_eq!(e.outcome, note, "{n}");
                assert_eq!(e.attempts, 0);
                assert!(e.last_error.is_none());
            }
            InboxOutcome::Ignored { reason } => {
                assert_eq!(e.state, InboxState::Ignored, "{n}");
                assert_eq!(e.outcome, Some(reason));
                assert_eq!(e.attempts, 0);
            }
            InboxOutcome::Retry {
                error,
                next_attempt_at,
            } => {
                assert_eq!(n, 3);
                assert_eq!(e.state, InboxState::Pending);
                assert_eq!(e.last_error, Some(error));
                assert_eq!(e.next_attempt_at, next_attempt_at);
                assert_eq!(e.attempts, 1);
                assert!(e.outcome.is_none() && e.finished_at.is_none());
            }
            InboxOutcome::Parked { error } => {
                assert_eq!(e.state, InboxState::Parked);
                assert_eq!(e.outcome.as_ref(), Some(&error));
                assert_eq!(e.last_error, Some(error));
                assert_eq!(e.attempts, 1);
            }
        }
        if e.state != InboxState::Pending {
            assert!(e.finished_at.unwrap() >= before, "{n}");
        }
    }
    // The retried event is due again once its time comes.
    let again = store.inbox_due(&c.id, 10, 99_000, None).await.unwrap();
    assert_eq!(again.iter().map(|e| e.id).collect::<Vec<_>>(), vec![ids[3]]);
    assert_eq!(
        store.get_user(&pool, &u.id).await.unwrap().unwrap().version,
        1
    );
    assert_eq!(
        store
            .watermarks(&c.id, &[format!("user:ou_{}", u.id)])
            .await
            .unwrap()
            .len(),
        1
    );
    let count = |state| {
        let filter = InboxFilter {
            connection_id: Some(c.id.clone()),
            state: Some(state),
            ..InboxFilter::default()
        };
        let store = store.clone();
        async move { store.inbox_count(&filter).await.unwrap() }
    };
    let ignored = (0..EVENTS - 1).filter(|n| n % 3 == 2 && *n != 4).count() as u64;
    assert_eq!(count(InboxState::Ignored).await, ignored);
    assert_eq!(count(InboxState::Parked).await, 1);
    assert_eq!(count(InboxState::Pending).await, 1);
    // 497 of the batch minus the ignored ones, and the one finished alone.
    assert_eq!(
        count(InboxState::Applied).await,
        (EVENTS as u64 - 1) - ignored - 2 + 1
    );
}
