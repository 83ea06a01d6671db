//! The change log: gap-free per pool, and a replay rebuilds exactly the directory the store
//! holds. The scheduled reconciliation.

use std::collections::BTreeMap;

use directory::ids::now_ms;
use directory::model::{JobTrigger, ObjectKind};
use rand::SeedableRng;
use serde_json::Value;

use crate::support::{Backend, Harness, no_thresholds, tenant};

#[tokio::test]
async fn the_change_log_replays_to_the_directory_the_store_holds() {
    for backend in Backend::all() {
        let mut h = Harness::with(backend, tenant(200, 16, 5, 51), |_| {}, no_thresholds()).await;
        h.import().await;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for _ in 0..300 {
            h.mutate(|t| Ok(t.random_mutation(&mut rng)));
        }
        h.deliver(2, Some(1), None).await;
        h.settle().await;
        h.reconcile().await;

        let mut log = Vec::new();
        loop {
            let after = log
                .last()
                .map_or(0, |c: &directory::store::ChangeRecord| c.seq);
            let page = h.store.changes_since(&h.pool, after, 500).await.unwrap();
            if page.is_empty() {
                break;
            }
            log.extend(page);
        }
        assert!(!log.is_empty());
        for (i, change) in log.iter().enumerate() {
            assert_eq!(
                change.seq,
                i as i64 + 1,
                "{backend:?}: a gap or a repeat in the numbering"
            );
        }

        // Replay: the last state of every object.
        let mut replayed: BTreeMap<(ObjectKind, String), (i64, Value)> = BTreeMap::new();
        for change in &log {
            let key = (change.object_kind, change.object_id.clone());
            if let Some((version, _)) = replayed.get(&key) {
                assert!(change.version > *version, "{backend:?}: versions only grow");
            }
            replayed.insert(key, (change.version, change.object.clone()));
        }
        let state = h
            .store
            .load_connection_state(&h.connection.id)
            .await
            .unwrap();
        let mut held: BTreeMap<(ObjectKind, String), Value> = BTreeMap::new();
        for u in &state.users {
            held.insert(
                (ObjectKind::User, u.id.0.clone()),
                serde_json::to_value(u).unwrap(),
            );
        }
        for d in &state.departments {
            held.insert(
                (ObjectKind::Department, d.id.0.clone()),
                serde_json::to_value(d).unwrap(),
            );
        }
        for g in &state.groups {
            held.insert(
                (ObjectKind::Group, g.id.0.clone()),
                serde_json::to_value(g).unwrap(),
            );
        }
        assert_eq!(replayed.len(), held.len(), "{backend:?}: the same objects");
        for (key, value) in &held {
            let (_, logged) = replayed
                .get(key)
                .unwrap_or_else(|| panic!("{backend:?}: {key:?} is not in the log"));
            assert_eq!(
                logged, value,
                "{backend:?}: {key:?} differs from its last logged state"
            );
        }
    }
}

#[tokio::test]
async fn reconciliation_runs_on_the_connection_schedule() {
    for backend in Backend::all() {
        let settings = directory::model::ConnectionSettings {
            reconcile_interval_secs: 60,
            ..directory::model::ConnectionSettings::default()
        };
        let h = Harness::with(backend, tenant(60, 6, 2, 61), |_| {}, settings).await;
        // Never imported: the schedule waits for the admin's first import.
        assert!(
            directory::schedule::run_due(&h.engine, now_ms())
                .await
                .unwrap()
                .is_empty()
        );
        h.import().await;
        assert!(
            directory::schedule::run_due(&h.engine, now_ms())
                .await
                .unwrap()
                .is_empty(),
            "{backend:?}: not due yet"
        );
        let started = directory::schedule::run_due(&h.engine, now_ms() + 61_000)
            .await
            .unwrap();
        assert_eq!(started, vec![h.connection.id.clone()], "{backend:?}");
        h.settle().await;
        let jobs = h
            .store
            .list_jobs(
                Some(&h.connection.id),
                directory::store::PageRequest::default(),
            )
            .await
            .unwrap();
        assert_eq!(jobs[0].trigger, JobTrigger::Schedule);
        assert_eq!(jobs[0].verdict, Some(directory::model::Verdict::Complete));
    }
}
