//! Events: each kind changes the store as Feishu changed the tenant; duplicates and reordering
//! change nothing; lost events are healed by a reconciliation.

use directory::model::{JobTrigger, UserStatus};
use directory::store::{InboxFilter, InboxState, PageRequest, UserQuery};
use emulator::mutate::{Change, NewDepartment, NewGroup, NewUser, UserPatch};
use emulator::tenant::{ContactScope, GroupKind, I18n};
use rand::SeedableRng;

use directory::worker::{Worker, WorkerConfig};

use crate::support::{Backend, Harness, no_thresholds, tenant, worker_config};

async fn assert_equal(h: &Harness, what: &str) {
    let diff = h.compare().await;
    assert!(
        diff.is_empty(),
        "{:?} after {what}: {} differences, first: {}",
        h.backend,
        diff.len(),
        diff.first().map(|d| d.to_string()).unwrap_or_default()
    );
}

/// Delivers what the emulator emitted, applies it, and checks store == tenant.
async fn sync(h: &mut Harness, what: &str) {
    let delivered = h.deliver(1, None, None).await;
    assert!(delivered > 0, "{:?}: {what} emitted no event", h.backend);
    h.settle().await;
    assert_equal(h, what).await;
}

async fn stored_user(h: &Harness, open_id: &str) -> directory::model::User {
    let r = h
        .store
        .find_external(
            &h.connection.id,
            directory::model::ObjectKind::User,
            open_id,
        )
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{:?}: user {open_id} not mapped", h.backend));
    h.store
        .get_user(&h.pool, &r.object_id.as_str().into())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn each_event_kind_changes_the_store_as_feishu_changed_the_tenant() {
    for backend in Backend::all() {
        let mut h = Harness::new(backend, tenant(200, 15, 4, 21)).await;
        h.import().await;
        assert_equal(&h, "the import").await;
        let open_id = |h: &Harness, key| {
            h.emu
                .with_tenant(|t| t.apps[crate::support::APP_ID].open_id(key))
        };
        let dept = h.emu.with_tenant(|t| t.children("0")[0].clone());

        // Employee joined.
        let changes = h.mutate(|t| {
            t.hire(NewUser {
                name: Some("入职测试".into()),
                en_name: Some("Joiner Test".into()),
                departments: vec![dept.clone()],
                ..NewUser::default()
            })
        });
        let joiner = Change::created_user(&changes).unwrap();
        sync(&mut h, "contact.user.created_v3").await;
        assert_eq!(
            stored_user(&h, &open_id(&h, joiner))
                .await
                .profile
                .name
                .as_deref(),
            Some("入职测试")
        );

        // Employee updated.
        h.mutate(|t| {
            t.update_user(
                joiner,
                &UserPatch {
                    name: Some("改名测试".into()),
                    email: Some("renamed.joiner@example.com".into()),
                    ..UserPatch::default()
                },
            )
        });
        sync(&mut h, "contact.user.updated_v3").await;
        let u = stored_user(&h, &open_id(&h, joiner)).await;
        assert_eq!(u.profile.name.as_deref(), Some("改名测试"));
        assert_eq!(
            u.profile.email.as_deref(),
            Some("renamed.joiner@example.com")
        );

        // User status changed (suspension).
        h.mutate(|t| t.freeze(joiner));
        sync(&mut h, "a status change").await;
        assert_eq!(
            stored_user(&h, &open_id(&h, joiner)).await.status,
            UserStatus::Frozen
        );
        h.mutate(|t| t.unfreeze(joiner));
        sync(&mut h, "an unfreeze").await;

        // Employee left: disabled and detached at once.
        h.mutate(|t| t.resign(joiner));
        sync(&mut h, "contact.user.deleted_v3").await;
        let u = stored_user(&h, &open_id(&h, joiner)).await;
        assert_eq!(u.status, UserStatus::Resigned);
        assert!(u.departments.is_empty());
        assert!(!u.status.is_enabled());

        // Department created, updated, deleted.
        let changes = h.mutate(|t| {
            t.create_department(NewDepartment {
                name: "事件部门".into(),
                i18n_name: I18n {
                    zh_cn: Some("事件部门".into()),
                    en_us: Some("Events".into()),
                    ja_jp: None,
                },
                parent: dept.clone(),
                ..NewDepartment::default()
            })
        });
        let new_dept = Change::created_id(&changes).unwrap().to_owned();
        sync(&mut h, "contact.department.created_v3").await;
        h.mutate(|t| {
            t.rename_department(
                &new_dept,
                "事件部门二",
                I18n {
                    zh_cn: Some("事件部门二".into()),
                    en_us: Some("Events II".into()),
                    ja_jp: None,
                },
            )
        });
        sync(&mut h, "contact.department.updated_v3").await;
        h.mutate(|t| t.delete_department(&new_dept));
        sync(&mut h, "contact.department.deleted_v3").await;
        let r = h
            .store
            .find_external(
                &h.connection.id,
                directory::model::ObjectKind::Department,
                &new_dept,
            )
            .await
            .unwrap()
            .unwrap();
        let stored = h
            .store
            .get_department(&h.pool, &r.object_id.as_str().into())
            .await
            .unwrap()
            .unwrap();
        assert!(
            stored.deleted_at.is_some(),
            "soft deletion keeps a tombstone"
        );

        // User groups created, updated, deleted.
        let member = h.emu.with_tenant(|t| t.members(&dept)[0]);
        let changes = h.mutate(|t| {
            t.create_group(NewGroup {
                name: "事件用户组".into(),
                description: "created by a test".into(),
                kind: GroupKind::Normal,
                group_id: None,
                users: vec![member],
                departments: vec![dept.clone()],
            })
        });
        let group = Change::created_id(&changes).unwrap().to_owned();
        sync(&mut h, "contact.user_group.created_v3").await;
        h.mutate(|t| t.update_group(&group, Some("事件用户组二"), None));
        sync(&mut h, "contact.user_group.updated_v3").await;
        h.mutate(|t| t.delete_group(&group));
        sync(&mut h, "contact.user_group.deleted_v3").await;

        // Contact scope updated: a reconciliation of what was added and removed.
        let before = h
            .store
            .list_jobs(Some(&h.connection.id), PageRequest::default())
            .await
            .unwrap()
            .len();
        h.mutate(|t| {
            t.set_app_scope(
                crate::support::APP_ID,
                ContactScope::Partial {
                    departments: vec![dept.clone()],
                    users: vec![],
                    groups: vec![],
                },
            )
        });
        let mut h = {
            // Shrinking the scope deletes most of the directory: allow it for this test.
            let mut settings = no_thresholds();
            settings.reconcile_interval_secs = 0;
            let mut c = h.connection.clone();
            c.settings = settings;
            h.store.update_connection(&c).await.unwrap();
            h.connection = c;
            h
        };
        sync(&mut h, "contact.scope.updated_v3").await;
        let jobs = h
            .store
            .list_jobs(Some(&h.connection.id), PageRequest::default())
            .await
            .unwrap();
        assert_eq!(
            jobs.len(),
            before + 1,
            "{backend:?}: the scope change started a job"
        );
        assert_eq!(jobs[0].trigger, JobTrigger::ScopeChange);

        // Every one of the eleven kinds went through the inbox and was applied.
        let inbox = h
            .store
            .inbox_list(
                &InboxFilter {
                    connection_id: Some(h.connection.id.clone()),
                    ..InboxFilter::default()
                },
                PageRequest {
                    offset: 0,
                    limit: 1000,
                    after: None,
                },
            )
            .await
            .unwrap();
        for kind in [
            "contact.user.created_v3",
            "contact.user.updated_v3",
            "contact.user.deleted_v3",
            "contact.department.created_v3",
            "contact.department.updated_v3",
            "contact.department.deleted_v3",
            "contact.scope.updated_v3",
            "contact.user_group.created_v3",
            "contact.user_group.updated_v3",
            "contact.user_group.deleted_v3",
        ] {
            assert!(
                inbox
                    .iter()
                    .any(|e| e.event_type == kind && e.state == InboxState::Applied),
                "{backend:?}: no applied {kind}"
            );
        }
        assert!(
            inbox
                .iter()
                .all(|e| e.state != InboxState::Pending && e.state != InboxState::Parked)
        );
    }
}

#[tokio::test]
async fn a_thousand_random_mutations_delivered_three_times_and_shuffled_converge() {
    for backend in Backend::all() {
        let mut h = Harness::with(backend, tenant(250, 20, 6, 31), |_| {}, no_thresholds()).await;
        h.import().await;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(99);
        let mut rounds = 0;
        let mut mutations = 0;
        while mutations < 1000 {
            for _ in 0..250 {
                h.mutate(|t| Ok(t.random_mutation(&mut rng)));
                mutations += 1;
            }
            h.deliver(3, Some(rounds), None).await;
            h.settle().await;
            rounds += 1;
        }
        assert_equal(
            &h,
            "1000 random mutations, each event delivered 3 times, shuffled",
        )
        .await;
        let inbox = h
            .store
            .inbox_list(
                &InboxFilter {
                    connection_id: Some(h.connection.id.clone()),
                    state: Some(InboxState::Parked),
                    ..InboxFilter::default()
                },
                PageRequest::default(),
            )
            .await
            .unwrap();
        assert!(
            inbox.is_empty(),
            "{backend:?}: parked events: {:?}",
            inbox.first().map(|e| &e.last_error)
        );
    }
}

/// Batches of 7: each batch is read and built while the one before commits, against the state
/// that one leaves (docs/write-path.md). Random mutations (creations, moves, department
/// deletions, group changes, leavers…) delivered twice and shuffled still end with the
/// directory Feishu has, as when each is applied alone.
#[tokio::test]
async fn random_mutations_in_small_batches_built_while_the_one_before_commits_converge() {
    for backend in Backend::all() {
        let mut h = Harness::with(backend, tenant(150, 15, 5, 57), |_| {}, no_thresholds()).await;
        h.worker = Worker::new(
            h.engine.clone(),
            WorkerConfig {
                batch: 7,
                ..worker_config()
            },
        );
        h.import().await;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for round in 0..3 {
            for _ in 0..250 {
                h.mutate(|t| Ok(t.random_mutation(&mut rng)));
            }
            h.deliver(2, Some(round), None).await;
            let stats = h.settle().await;
            assert!(stats.applied > 0, "{backend:?}: {stats:?}");
        }
        assert_equal(
            &h,
            "750 random mutations applied in batches of 7, each built while the one before commits",
        )
        .await;
    }
}

#[tokio::test]
async fn dropped_events_are_healed_by_a_reconciliation_without_deleting_live_objects() {
    for backend in Backend::all() {
        let mut h = Harness::with(backend, tenant(250, 20, 6, 41), |_| {}, no_thresholds()).await;
        h.import().await;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for _ in 0..300 {
            // Scope changes would start reconciliations themselves; keep them out here.
            loop {
                let changes = h.mutate(|t| Ok(t.random_mutation(&mut rng)));
                if !changes
                    .iter()
                    .any(|c| matches!(c, Change::ScopeChanged { .. }))
                {
                    break;
                }
                h.mutate(|t| t.set_app_scope(crate::support::APP_ID, ContactScope::All));
            }
        }
        // Every fourth event is lost (Feishu gives up after ~7 h); so are the scope changes,
        // which would start a reconciliation by themselves.
        h.deliver_where(1, None, |i, e| {
            (i + 1) % 4 != 0 && e.event_type != "contact.scope.updated_v3"
        })
        .await;
        h.settle().await;
        assert!(
            !h.compare().await.is_empty(),
            "{backend:?}: dropping events must leave differences"
        );

        let live_in_feishu: std::collections::BTreeSet<String> = h.emu.with_tenant(|t| {
            let app = &t.apps[crate::support::APP_ID];
            t.users
                .values()
                .filter(|u| !u.status.resigned)
                .map(|u| app.open_id(u.key))
                .collect()
        });
        let job = h.reconcile().await;
        assert_eq!(
            job.verdict,
            Some(directory::model::Verdict::Complete),
            "{backend:?}"
        );
        assert_equal(&h, "the reconciliation").await;
        // Nobody who exists in Feishu was deleted or disabled as a leaver.
        for open_id in &live_in_feishu {
            let u = stored_user(&h, open_id).await;
            assert!(u.deleted_at.is_none(), "{backend:?}: {open_id} tombstoned");
            assert_ne!(
                u.status,
                UserStatus::Resigned,
                "{backend:?}: {open_id} disabled"
            );
        }
        let users = h
            .store
            .count_users(&h.pool, &UserQuery::default())
            .await
            .unwrap();
        assert!(users as usize >= live_in_feishu.len());
    }
}

#[tokio::test]
async fn a_committed_event_wakes_the_idle_worker() {
    for backend in Backend::all() {
        let mut h = Harness::new(backend, tenant(40, 5, 1, 52)).await;
        assert_eq!(
            h.import().await.verdict,
            Some(directory::model::Verdict::Complete)
        );
        // A worker that would otherwise sleep for an hour between rounds.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let worker = directory::worker::Worker::new(
            h.engine.clone(),
            directory::worker::WorkerConfig {
                idle_poll: std::time::Duration::from_secs(3600),
                ..crate::support::worker_config()
            },
        )
        .wake_on(h.ingestor.committed())
        .spawn(stopped);
        // Let it finish its first (empty) round and go idle.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;

        let leaver = h.emu.with_tenant(|t| {
            t.users
                .iter()
                .find(|(_, u)| !u.status.resigned)
                .map(|(k, _)| *k)
                .unwrap()
        });
        let open_id = crate::support::open_id(leaver);
        h.mutate(|t| t.resign(leaver));
        assert!(h.deliver(1, None, None).await > 0);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if stored_user(&h, &open_id).await.status != UserStatus::Active {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{backend:?}: the leaver was not applied within 10 s: the worker was not woken"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        stop.send(true).unwrap();
        worker.await.unwrap();
    }
}

/// Seals `plaintext` as Feishu would and hands it to the ingestor (what the endpoint does).
async fn ingest_plaintext(h: &Harness, plaintext: &str) {
    let sealed = feishu::envelope::seal(
        plaintext,
        Some(crate::support::ENCRYPT_KEY),
        &(directory::ids::now_ms() / 1000).to_string(),
        "7",
    );
    let response = h
        .ingestor
        .ingest(
            h.pool.as_str(),
            crate::support::IDENTIFIER,
            &sealed.headers(),
            sealed.body.as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(response.status, 200, "{}", response.body);
}

/// A 1.0 `user_update` for `open_id` (1.0 events carry no user data: it is re-read).
fn legacy_user_update(uuid: &str, open_id: &str) -> String {
    let now = directory::ids::now_ms();
    let ts = format!("{}.{:03}0000", now / 1000, now % 1000);
    serde_json::json!({
        "ts": ts,
        "uuid": uuid,
        "token": crate::support::VERIFICATION_TOKEN,
        "type": "event_callback",
        "event": {
            "type": "user_update",
            "app_id": crate::support::APP_ID,
            "tenant_key": "it-tenant",
            "open_id": open_id,
            "union_id": "on_00000000000000000000000000000000",
        },
    })
    .to_string()
}

/// A permanent Feishu error (41012: no such user for this app) parks the event after one
/// attempt, with the code and the fix; a group deleted since its event was sent is ignored;
/// a transient error (HTTP 5xx) is retried with backoff and applied once Feishu answers again.
#[tokio::test]
async fn permanent_feishu_errors_park_at_once_and_transient_ones_are_retried() {
    for backend in Backend::all() {
        let mut h = Harness::new(backend, tenant(30, 4, 1, 61)).await;
        h.import().await;

        ingest_plaintext(
            &h,
            &legacy_user_update(
                "41012000000000000000000000000001",
                "ou_ffffffffffffffffffffffffffffffff",
            ),
        )
        .await;
        let stats = h.drain().await;
        assert_eq!(
            (stats.parked, stats.retried),
            (1, 0),
            "{backend:?}: {stats:?}"
        );
        let parked = h
            .inbox()
            .await
            .into_iter()
            .find(|e| e.event_id == "41012000000000000000000000000001")
            .unwrap();
        assert_eq!(
            (parked.state, parked.attempts),
            (InboxState::Parked, 1),
            "{backend:?}: {parked:?}"
        );
        for text in [&parked.last_error, &parked.outcome] {
            let text = text.as_deref().unwrap_or_default();
            assert!(text.contains("Feishu code 41012"), "{backend:?}: {text}");
            assert!(
                text.contains("fix: nothing to retry") && text.contains("reconciliation"),
                "{backend:?}: {text}"
            );
        }

        // A group read again after Feishu deleted it (42002) is the race with its deletion
        // event: ignored, not parked.
        let group = h
            .emu
            .with_tenant(|t| t.groups.keys().next().unwrap().clone());
        h.mutate(|t| t.update_group(&group, Some("Renamed, then deleted"), None));
        h.mutate(|t| t.delete_group(&group));
        let delivered = h
            .deliver_where(1, None, |_, e| {
                e.event_type == "contact.user_group.updated_v3"
            })
            .await;
        assert_eq!(delivered, 1, "{backend:?}");
        let stats = h.drain().await;
        assert_eq!(
            (stats.ignored, stats.parked),
            (1, 0),
            "{backend:?}: {stats:?}"
        );
        let ignored = h
            .inbox()
            .await
            .into_iter()
            .find(|e| e.event_type == "contact.user_group.updated_v3")
            .unwrap();
        assert_eq!(ignored.state, InboxState::Ignored, "{backend:?}");
        assert!(
            ignored
                .outcome
                .as_deref()
                .is_some_and(|o| o.contains("no longer exists") && o.contains("42002")),
            "{backend:?}: {ignored:?}"
        );

        // Reading users fails with HTTP 5xx for a while: retried, not parked. (A worker that
        // waits long enough between attempts for one drain to see one attempt.)
        let worker = directory::worker::Worker::new(
            h.engine.clone(),
            directory::worker::WorkerConfig {
                backoff_base: std::time::Duration::from_millis(300),
                backoff_max: std::time::Duration::from_secs(2),
                ..crate::support::worker_config()
            },
        );
        let key = h.emu.with_tenant(|t| {
            t.users
                .iter()
                .find(|(_, u)| !u.status.resigned)
                .map(|(k, _)| *k)
                .unwrap()
        });
        h.emu
            .state()
            .faults
            .set_config(emulator::faults::FaultConfig {
                server_error_rate: 1.0,
                endpoints: vec!["contact/v3/users/:user_id".into()],
                ..emulator::faults::FaultConfig::default()
            });
        let uuid = "50000000000000000000000000000002";
        ingest_plaintext(&h, &legacy_user_update(uuid, &crate::support::open_id(key))).await;
        let stats = worker.drain().await.unwrap();
        assert_eq!(
            (stats.parked, stats.retried),
            (0, 1),
            "{backend:?}: {stats:?}"
        );
        let waiting = h
            .inbox()
            .await
            .into_iter()
            .find(|e| e.event_id == uuid)
            .unwrap();
        assert_eq!(
            (waiting.state, waiting.attempts),
            (InboxState::Pending, 1),
            "{backend:?}: {waiting:?}"
        );
        assert!(
            waiting
                .last_error
                .as_deref()
                .is_some_and(|m| m.contains("HTTP 500")
                    || m.contains("HTTP 502")
                    || m.contains("HTTP 503")),
            "{backend:?}: {waiting:?}"
        );
        h.emu
            .state()
            .faults
            .set_config(emulator::faults::FaultConfig::none());
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        let stats = worker.drain().await.unwrap();
        assert_eq!(
            stats.applied,
            1,
            "{backend:?}: {stats:?}: {:?}",
            h.inbox().await
        );
        let applied = h
            .inbox()
            .await
            .into_iter()
            .find(|e| e.event_id == uuid)
            .unwrap();
        assert_eq!(
            applied.state,
            InboxState::Applied,
            "{backend:?}: {applied:?}"
        );
    }
}
