//! The event worker under failure: a worker that dies mid-batch (its claims and its lease
//! expire, a fresh worker finishes the work, every event applied exactly once), and an event
//! that keeps failing (retried with backoff, then parked, while the others are applied).

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use directory::ids::now_ms;
use directory::model::{ObjectKind, Verdict};
use directory::store::{
    ApplyBatch, ChangeKind, ChangeSource, InboxEvent, InboxOutcome, InboxState, StoreError, Write,
};
use directory::worker::{Worker, WorkerConfig};
use emulator::faults::FaultConfig;
use emulator::mutate::{MutationResult, NewDepartment, NewUser, UserPatch};
use emulator::tenant::{I18n, Tenant, UserKey};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::support::{APP_ID, Backend, Harness, open_id, tenant, worker_config};

const ROOT: &str = "0";

/// One Feishu-side change with its events; `false` when the tenant refused it.
fn mutate(h: &Harness, f: impl FnOnce(&mut Tenant) -> MutationResult) -> bool {
    h.emu
        .state()
        .mutate(f)
        .is_ok_and(|changes| !changes.is_empty())
}

fn pick<T: Clone>(items: &[T], r: u64) -> T {
    items[(r % items.len() as u64) as usize].clone()
}

/// `n` seeded changes of many kinds. The first three are profile updates and the fourth a
/// group membership change (a group event is re-read from the API).
fn changes(h: &Harness, n: usize, seed: u64) -> usize {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut made = 0;
    for i in 0..n {
        let kind = match i {
            0..3 => 0,
            3 => 7,
            _ => rng.random_range(0..10u32),
        };
        let (r1, r2): (u64, u64) = (rng.random(), rng.random());
        let ok = mutate(h, |t| {
            let users: Vec<UserKey> = t
                .users
                .values()
                .filter(|u| !u.status.resigned)
                .map(|u| u.key)
                .collect();
            let departments: Vec<String> = t.departments.keys().cloned().collect();
            let groups: Vec<String> = t.groups.keys().cloned().collect();
            let user = pick(&users, r1);
            match kind {
                0 => t.update_user(
                    user,
                    &UserPatch {
                        name: Some(format!("Changed Person {i}")),
                        job_title: Some(format!("Title {i}")),
                        ..UserPatch::default()
                    },
                ),
                1 => t.hire(NewUser {
                    name: Some(format!("New Hire {i}")),
                    departments: vec![pick(&departments, r2)],
                    ..NewUser::default()
                }),
                2 => t.resign(user),
                3 => {
                    let frozen = t.users[&user].status.frozen;
                    t.set_frozen(user, !frozen)
                }
                4 => t.move_user(user, &[pick(&departments, r2)]),
                5 => t.rename_department(
                    &pick(&departments, r2),
                    &format!("Renamed Department {i}"),
                    I18n::default(),
                ),
                6 => t.create_department(NewDepartment {
                    name: format!("New Department {i}"),
                    parent: if r2 % 3 == 0 {
                        ROOT.to_owned()
                    } else {
                        pick(&departments, r2)
                    },
                    ..NewDepartment::default()
                }),
                7 => t.add_group_members(&pick(&groups, r2), &[user], &[]),
                8 => {
                    let group = pick(&groups, r2);
                    let first = t.groups[&group].users.first().copied();
                    t.remove_group_members(&group, &first.into_iter().collect::<Vec<_>>(), &[])
                }
                _ => t.set_user_leader(user, Some(pick(&users, r2))),
            }
        });
        // A refused or empty change (a reporting cycle, a no-op) is replaced by a rename.
        if ok
            || mutate(h, |t| {
                let key = t
                    .users
                    .values()
                    .filter(|u| !u.status.resigned)
                    .nth(i)
                    .map_or(1, |u| u.key);
                t.update_user(
                    key,
                    &UserPatch {
                        nickname: Some(format!("nick {i}")),
                        ..UserPatch::default()
                    },
                )
            })
        {
            made += 1;
        }
    }
    made
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn finished(e: &InboxEvent) -> bool {
    matches!(e.state, InboxState::Applied | InboxState::Ignored)
}

#[tokio::test]
async fn a_worker_stopped_mid_batch_and_restarted_applies_every_event_exactly_once() {
    for backend in Backend::all() {
        let mut h = Harness::new(backend, tenant(200, 20, 5, 31)).await;
        h.emu.with_tenant_mut(|t| {
            t.apps.get_mut(APP_ID).unwrap().user_group_events = true;
        });
        let job = h.import().await;
        assert_eq!(job.verdict, Some(Verdict::Complete), "{backend:?}");
        assert_eq!(changes(&h, 50, 31), 50, "{backend:?}");
        let delivered = h.deliver(1, None, None).await;
        assert!(delivered >= 50, "{backend:?}: {delivered} events");
        let connection = h.connection.id.clone();

        // Worker A reads Feishu for its batch until Feishu hangs on the group re-read, and its
        // process dies there, mid-batch: its connection lease stays behind, long enough that
        // it still holds when the fresh worker first looks.
        let lease = Duration::from_secs(2);
        h.emu.state().faults.set_config(FaultConfig {
            latency_rate: 1.0,
            latency_min: Duration::from_secs(30),
            latency_max: Duration::from_secs(30),
            endpoints: vec!["contact/v3/group/:group_id".into()],
            ..FaultConfig::default()
        });
        let crashing = Worker::new(
            h.engine.clone(),
            WorkerConfig {
                batch: 25,
                connection_lease: lease,
                ..worker_config()
            },
        );
        let round = tokio::spawn(async move { crashing.round().await });
        let state = h.emu.state().clone();
        wait_until("worker A hangs on Feishu", || {
            state.faults.counts().delays >= 1
        })
        .await;
        round.abort();
        assert!(
            round.await.is_err(),
            "{backend:?}: worker A was still running"
        );
        h.emu.state().faults.set_config(FaultConfig::none());
        let by_a = h.inbox().await.iter().filter(|e| finished(e)).count();
        // A batch commits as one transaction (docs/write-path.md): dying before the commit
        // leaves none of its 25 events applied, and nothing half-applied.
        assert_eq!(by_a, 0, "{backend:?}: worker A applied {by_a}");

        // Worker B reads the next events as a worker does and dies before applying any.
        let read_by_b = h
            .store
            .inbox_due(&connection, 20, now_ms(), None)
            .await
            .unwrap();
        assert_eq!(read_by_b.len(), 20, "{backend:?}");
        // Nothing is applied while the connection is still leased to A.
        let fresh = Worker::new(h.engine.clone(), worker_config());
        let early = fresh.drain().await.unwrap();
        assert_eq!(early.handled(), 0, "{backend:?}: {early:?}");

        // Past the lease, a fresh worker finishes everything.
        tokio::time::sleep(lease + Duration::from_millis(50)).await;
        let stats = fresh.drain().await.unwrap();
        assert_eq!(
            (stats.applied + stats.ignored) as usize,
            delivered - by_a,
            "{backend:?}: {stats:?}"
        );
        assert_eq!(
            (stats.retried, stats.parked),
            (0, 0),
            "{backend:?}: {stats:?}"
        );

        // Every event once: finished, never retried, one row per event id.
        let inbox = h.inbox().await;
        assert_eq!(inbox.len(), delivered, "{backend:?}");
        let unfinished: Vec<&InboxEvent> = inbox.iter().filter(|e| !finished(e)).collect();
        assert!(unfinished.is_empty(), "{backend:?}: {unfinished:#?}");
        assert!(
            inbox
                .iter()
                .all(|e| e.attempts == 0 && e.finished_at.is_some() && e.last_error.is_none()),
            "{backend:?}"
        );
        let ids: HashSet<&str> = inbox.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids.len(), inbox.len(), "{backend:?}");

        // The dead workers wake up: finishing or applying an event again is refused and
        // writes nothing.
        let log_before = h.change_log().await;
        let late = &read_by_b[0];
        let again = h
            .store
            .inbox_finish(late.id, InboxOutcome::Applied { note: None }, now_ms())
            .await;
        assert!(
            matches!(again, Err(StoreError::Conflict(_))),
            "{backend:?}: {again:?}"
        );
        let victim = h
            .state()
            .await
            .users
            .into_iter()
            .find(|u| u.deleted_at.is_none())
            .unwrap();
        let mut changed = victim.clone();
        changed.profile.name = Some("Applied Twice".into());
        let twice = h
            .store
            .apply(ApplyBatch {
                pool_id: h.pool.clone(),
                source: ChangeSource::Event {
                    event_id: late.event_id.clone(),
                    connection_id: connection.clone(),
                },
                writes: vec![Write::PutUser {
                    user: changed,
                    change: ChangeKind::UserUpdated,
                    expected_version: None,
                }],
                watermarks: Vec::new(),
                later_sources: Vec::new(),
                inbox: vec![(late.id, InboxOutcome::Applied { note: None })],
                quiet: false,
                as_read: Default::default(),
            })
            .await;
        assert!(twice.is_err(), "{backend:?}: {twice:?}");
        assert_eq!(h.change_log().await, log_before, "{backend:?}");
        let stored = h
            .store
            .get_user(&h.pool, &victim.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored, victim, "{backend:?}");

        // The change log: each object version once, versions without gaps, and no event
        // wrote one object twice.
        let log = h.change_log().await;
        let mut versions: BTreeMap<(ObjectKind, &str), Vec<i64>> = BTreeMap::new();
        for c in &log {
            versions
                .entry((c.object_kind, c.object_id.as_str()))
                .or_default()
                .push(c.version);
        }
        for ((kind, id), list) in &versions {
            let want: Vec<i64> = (1..=list.len() as i64).collect();
            assert_eq!(list, &want, "{backend:?}: versions of {kind:?} {id}");
        }
        let applied: HashSet<&str> = inbox
            .iter()
            .filter(|e| e.state == InboxState::Applied)
            .map(|e| e.event_id.as_str())
            .collect();
        // Each event's rows come from one transaction: consecutive numbers (an event applied
        // twice would leave two runs).
        let mut by_event: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
        for c in &log {
            if let ChangeSource::Event { event_id, .. } = &c.source {
                assert!(
                    applied.contains(event_id.as_str()),
                    "{backend:?}: a change of {event_id}, which is not applied"
                );
                by_event.entry(event_id.as_str()).or_default().push(c.seq);
            }
        }
        for (event_id, seqs) in &by_event {
            let (first, last) = (seqs[0], seqs[seqs.len() - 1]);
            assert_eq!(
                (last - first + 1) as usize,
                seqs.len(),
                "{backend:?}: the changes of {event_id} are not one run: {seqs:?}"
            );
        }
        assert!(!by_event.is_empty(), "{backend:?}");

        let diff = h.compare().await;
        assert!(diff.is_empty(), "{backend:?}: {diff:#?}");
    }
}

#[tokio::test]
async fn a_failing_event_is_retried_with_backoff_then_parked_without_blocking_others() {
    for backend in Backend::all() {
        let mut h = Harness::new(backend, tenant(100, 10, 2, 32)).await;
        let job = h.import().await;
        assert_eq!(job.verdict, Some(Verdict::Complete), "{backend:?}");
        // The app also hears the 1.0 events, which name the user only: it is re-read.
        h.emu
            .with_tenant_mut(|t| t.apps.get_mut(APP_ID).unwrap().events_v1 = true);
        let (key, department) = h.emu.with_tenant(|t| {
            let key = t
                .users
                .values()
                .find(|u| !u.status.resigned && !t.members(ROOT).contains(&u.key))
                .unwrap()
                .key;
            (key, t.departments.keys().next().unwrap().clone())
        });
        let rename_department = |h: &Harness, name: &str| {
            assert!(mutate(h, |t| t.rename_department(
                &department,
                name,
                I18n::default()
            )));
        };
        assert!(mutate(&h, |t| t.update_user(
            key,
            &UserPatch {
                name: Some("Re-read Me".into()),
                ..UserPatch::default()
            },
        )));
        rename_department(&h, "Applied Meanwhile");
        let delivered = h.deliver(1, None, None).await as u64;
        assert_eq!(
            delivered, 4,
            "{backend:?}: a 2.0 and a 1.0 event per change"
        );

        // Reading a user by id fails from now on.
        h.emu.state().faults.set_config(FaultConfig {
            server_error_rate: 1.0,
            endpoints: vec!["contact/v3/users/:user_id".into()],
            ..FaultConfig::default()
        });
        let base = Duration::from_millis(400);
        let worker = Worker::new(
            h.engine.clone(),
            WorkerConfig {
                max_attempts: 3,
                backoff_base: base,
                backoff_max: Duration::from_secs(2),
                ..worker_config()
            },
        );
        let failing = |inbox: Vec<InboxEvent>| -> InboxEvent {
            inbox
                .into_iter()
                .find(|e| e.event_type == "user_update")
                .unwrap()
        };

        // The 1.0 user_update fails and waits; the other three are applied.
        let started = now_ms();
        let stats = worker.drain().await.unwrap();
        assert_eq!(
            (stats.applied + stats.ignored, stats.retried, stats.parked),
            (delivered - 1, 1, 0),
            "{backend:?}: {stats:?}"
        );
        let e = failing(h.inbox().await);
        assert_eq!(
            (e.state, e.attempts),
            (InboxState::Pending, 1),
            "{backend:?}"
        );
        assert!(
            e.last_error
                .as_deref()
                .is_some_and(|m| m.contains("Feishu")),
            "{backend:?}: {e:?}"
        );
        assert!(
            e.next_attempt_at >= started + base.as_millis() as i64,
            "{backend:?}"
        );
        let user = h.stored_user(&open_id(key)).await.unwrap();
        assert_eq!(
            user.profile.name.as_deref(),
            Some("Re-read Me"),
            "{backend:?}"
        );

        // While it waits, a new event of the same connection is applied at once.
        rename_department(&h, "Applied While The Other Waits");
        let more = h.deliver(1, None, None).await as u64;
        let stats = worker.drain().await.unwrap();
        assert_eq!(
            (stats.applied + stats.ignored, stats.retried, stats.parked),
            (more, 0, 0),
            "{backend:?}: {stats:?}"
        );
        let d = h.stored_department(&department).await.unwrap();
        assert_eq!(
            d.name.as_deref(),
            Some("Applied While The Other Waits"),
            "{backend:?}"
        );
        assert_eq!(
            failing(h.inbox().await).state,
            InboxState::Pending,
            "{backend:?}"
        );

        // Retried when due, with a longer wait, then parked after the third attempt.
        let mut waits = Vec::new();
        let parked = loop {
            let e = failing(h.inbox().await);
            if e.state != InboxState::Pending {
                break e;
            }
            assert!(waits.len() < 5, "{backend:?}: still pending: {e:?}");
            let due = e.next_attempt_at - now_ms();
            tokio::time::sleep(Duration::from_millis(due.max(0) as u64 + 10)).await;
            let before = now_ms();
            let stats = worker.drain().await.unwrap();
            assert_eq!(stats.handled(), 1, "{backend:?}: {stats:?}");
            let after = failing(h.inbox().await);
            if after.state == InboxState::Pending {
                waits.push(after.next_attempt_at - before);
            }
        };
        assert_eq!(waits.len(), 1, "{backend:?}: {waits:?}");
        assert!(
            waits[0] >= 2 * base.as_millis() as i64,
            "{backend:?}: the second wait is the doubled backoff: {waits:?}"
        );
        assert_eq!(parked.state, InboxState::Parked, "{backend:?}");
        assert_eq!(parked.attempts, 3, "{backend:?}: {parked:?}");
        let outcome = parked.outcome.clone().unwrap_or_default();
        assert!(
            outcome.contains("gave up after 3 attempts"),
            "{backend:?}: {outcome}"
        );
        assert!(
            parked
                .last_error
                .as_deref()
                .is_some_and(|m| m.contains("Feishu")),
            "{backend:?}: {parked:?}"
        );

        // A parked event stays parked (an admin decides), even once Feishu answers again.
        h.emu.state().faults.set_config(FaultConfig::none());
        tokio::time::sleep(base).await;
        let stats = worker.drain().await.unwrap();
        assert_eq!(stats.handled(), 0, "{backend:?}: {stats:?}");
        assert_eq!(
            failing(h.inbox().await).state,
            InboxState::Parked,
            "{backend:?}"
        );
        let states: BTreeMap<String, InboxState> = h
            .inbox()
            .await
            .into_iter()
            .map(|e| (format!("{} {}", e.event_type, e.id), e.state))
            .collect();
        assert_eq!(
            states
                .values()
                .filter(|s| **s == InboxState::Parked)
                .count(),
            1,
            "{backend:?}: {states:?}"
        );
        assert!(
            states.values().all(|s| matches!(
                s,
                InboxState::Applied | InboxState::Ignored | InboxState::Parked
            )),
            "{backend:?}: {states:?}"
        );
    }
}

#[tokio::test]
async fn a_round_longer_than_the_event_lease_keeps_it() {
    for backend in Backend::all() {
        let mut h = Harness::new(backend, tenant(60, 6, 3, 17)).await;
        h.emu.with_tenant_mut(|t| {
            t.apps.get_mut(APP_ID).unwrap().user_group_events = true;
        });
        h.import().await;
        // A group event whose re-read Feishu answers slowly: the round lasts several leases.
        let group = h
            .emu
            .state()
            .with_tenant(|t| t.groups.keys().next().cloned().unwrap());
        let user = h.emu.state().with_tenant(|t| {
            t.users
                .values()
                .find(|u| !u.status.resigned && !t.groups[&group].users.contains(&u.key))
                .map(|u| u.key)
                .unwrap()
        });
        h.mutate(|t| t.add_group_members(&group, &[user], &[]));
        assert!(h.deliver(1, None, None).await > 0, "{backend:?}");
        h.emu.state().faults.set_config(FaultConfig {
            latency_rate: 1.0,
            latency_min: Duration::from_millis(1_500),
            latency_max: Duration::from_millis(1_500),
            endpoints: vec!["contact/v3/group/:group_id".into()],
            ..FaultConfig::default()
        });
        let lease = Duration::from_millis(300);
        let slow = Worker::new(
            h.engine.clone(),
            WorkerConfig {
                connection_lease: lease,
                ..worker_config()
            },
        );
        let round = tokio::spawn(async move { slow.round().await });
        let state = h.emu.state().clone();
        wait_until("the round waits on Feishu", || {
            state.faults.counts().delays >= 1
        })
        .await;
        // Well past the lease, another instance still cannot take the connection.
        tokio::time::sleep(lease * 3).await;
        let taken = h
            .store
            .try_acquire_event_lease(&h.connection.id, "other-instance/worker", lease, now_ms())
            .await
            .unwrap();
        assert!(
            !taken,
            "{backend:?}: the event lease lapsed during a long round"
        );
        let stats = round.await.unwrap().unwrap();
        assert_eq!(stats.applied, 1, "{backend:?}: {stats:?}");
        h.emu.state().faults.set_config(FaultConfig::none());
    }
}
