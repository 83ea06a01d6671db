//! Import and reconciliation jobs against the emulator: partial contact scopes, failed
//! verdicts with the fix, partial pulls that delete nothing, deletion thresholds, leavers, one
//! job per connection (events flow beside it), live progress, and jobs left running by a
//! process that stopped (ended as failed at restart, or once their lease expired).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use directory::engine::{Engine, EngineConfig, EngineError};
use directory::ids::{ConnectionId, JobId, now_ms};
use directory::model::{
    ActionLogEntry, ActionResult, Connection, ConnectionSettings, DeletionThreshold, JobKind,
    JobState, JobTrigger, ObjectKind, ParkedState, SyncAction, SyncJob, UserStatus, Verdict,
};
use directory::schedule;
use directory::store::{InboxState, ParkedFilter, UserQuery};
use directory::worker::RoundStats;
use emulator::faults::FaultConfig;
use emulator::mutate::{Change, MutationResult, NewDepartment, UserPatch};
use emulator::tenant::{ContactScope, I18n, Tenant, UserKey, UserRecord};

use crate::support::{ALL, APP_ID, Backend, Harness, counted, open_id, tenant};

/// The root department.
const ROOT: &str = "0";

fn thresholds(max_fraction: f64, max_count: u64) -> ConnectionSettings {
    ConnectionSettings {
        deletion_threshold: DeletionThreshold {
            max_fraction,
            max_count,
        },
        ..ConnectionSettings::default()
    }
}

/// One Feishu-side change, with its events published.
fn mutate(h: &Harness, f: impl FnOnce(&mut Tenant) -> MutationResult) -> Vec<Change> {
    h.emu.state().mutate(f).unwrap()
}

fn set_scope(h: &Harness, scope: ContactScope) {
    mutate(h, |t| t.set_app_scope(APP_ID, scope));
}

/// A department and every department below it.
fn subtree(t: &Tenant, id: &str) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = t.descendants(id).into_iter().collect();
    out.insert(id.to_owned());
    out
}

fn active(u: &UserRecord) -> bool {
    !u.status.resigned
}

/// Whether the log has a step of `action` on `external_id` that ended with `result`.
fn logged(
    log: &[ActionLogEntry],
    action: SyncAction,
    external_id: &str,
    result: ActionResult,
) -> bool {
    log.iter()
        .any(|e| e.action == action && e.external_id == external_id && e.result == result)
}

async fn wait_for_job(h: &Harness, id: &JobId) -> SyncJob {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = h.store.get_job(id).await.unwrap().unwrap();
        if job.state == JobState::Finished {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "{:?}: job {id} still running: {job:?}",
            h.backend
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until a running job reports `phase`.
async fn wait_for_phase(h: &Harness, id: &JobId, phase: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let job = h.store.get_job(id).await.unwrap().unwrap();
        if job.progress.phase == phase {
            return;
        }
        assert!(
            Instant::now() < deadline && job.state == JobState::Running,
            "{:?}: job {id} never reached {phase}: {job:?}",
            h.backend
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Drains until no event is pending (a finished job may hold the lease a moment longer).
async fn drain_after_the_job(h: &Harness) -> RoundStats {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut total = RoundStats::default();
    loop {
        let stats = h.drain().await;
        total.applied += stats.applied;
        total.ignored += stats.ignored;
        total.retried += stats.retried;
        total.parked += stats.parked;
        if h.store.inbox_pending_count(&h.connection.id).await.unwrap() == 0 {
            return total;
        }
        assert!(
            Instant::now() < deadline,
            "{:?}: events still pending",
            h.backend
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A failed job wrote nothing and let go of the connection.
async fn assert_nothing_written(h: &Harness, job: &SyncJob) {
    let backend = h.backend;
    let everyone = UserQuery {
        include_deleted: true,
        ..UserQuery::default()
    };
    assert_eq!(
        h.store.count_users(&h.pool, &everyone).await.unwrap(),
        0,
        "{backend:?}"
    );
    assert!(
        h.store.list_departments(&h.pool).await.unwrap().is_empty(),
        "{backend:?}"
    );
    assert!(
        h.store
            .list_groups(&h.pool, &crate::support::EVERYONE)
            .await
            .unwrap()
            .items
            .is_empty(),
        "{backend:?}"
    );
    assert!(h.state().await.refs.is_empty(), "{backend:?}");
    assert!(h.change_log().await.is_empty(), "{backend:?}");
    assert!(h.action_log(job).await.is_empty(), "{backend:?}");
    // The lease is free again.
    let probe = "probe/after-failure";
    assert!(
        h.store
            .try_acquire_lease(&h.connection.id, probe, Duration::from_secs(5), now_ms())
            .await
            .unwrap(),
        "{backend:?}: a failed job kept the lease"
    );
    h.store
        .release_lease(&h.connection.id, probe)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_partial_contact_scope_imports_exactly_the_scoped_part() {
    for backend in Backend::all() {
        let h = Harness::new(backend, tenant(300, 30, 6, 21)).await;
        // Two departments from different branches (one with sub-departments, one deeper than
        // the first level), a user from elsewhere and one group.
        let (scope, departments, users, group) = h.emu.with_tenant(|t| {
            let first = t.children(ROOT).to_vec();
            let a = first
                .iter()
                .find(|d| !t.children(d).is_empty())
                .unwrap()
                .clone();
            let b = first
                .iter()
                .filter(|d| **d != a)
                .flat_map(|d| t.children(d).iter())
                .next()
                .unwrap()
                .clone();
            let mut departments = subtree(t, &a);
            departments.extend(subtree(t, &b));
            let member = |u: &UserRecord| u.department_ids().any(|d| departments.contains(d));
            let picked = t
                .users
                .values()
                .find(|u| active(u) && !member(u))
                .unwrap()
                .key;
            let mut users: BTreeSet<String> = t
                .users
                .values()
                .filter(|u| active(u) && member(u))
                .map(|u| open_id(u.key))
                .collect();
            users.insert(open_id(picked));
            let group = t.groups.keys().next().unwrap().clone();
            let scope = ContactScope::Partial {
                departments: vec![a, b],
                users: vec![picked],
                groups: vec![group.clone()],
            };
            (scope, departments, users, group)
        });
        assert!(users.len() > 10, "{backend:?}: a scope worth testing");
        set_scope(&h, scope);

        let job = h.import().await;
        assert_eq!(
            job.verdict,
            Some(Verdict::Complete),
            "{backend:?}: {:?}",
            job.error
        );
        assert_eq!(
            h.live_external_ids(ObjectKind::Department).await,
            departments,
            "{backend:?}"
        );
        assert_eq!(
            h.live_external_ids(ObjectKind::User).await,
            users,
            "{backend:?}"
        );
        assert_eq!(
            h.live_external_ids(ObjectKind::Group).await,
            BTreeSet::from([group]),
            "{backend:?}"
        );
        let diff = h.compare().await;
        assert!(diff.is_empty(), "{backend:?}: {diff:#?}");
    }
}

#[tokio::test]
async fn root_40004_without_any_scope_fails_with_the_fix() {
    for backend in Backend::all() {
        let h = Harness::new(backend, tenant(100, 10, 2, 22)).await;
        set_scope(
            &h,
            ContactScope::Partial {
                departments: Vec::new(),
                users: Vec::new(),
                groups: Vec::new(),
            },
        );
        let job = h.import().await;
        assert_eq!(job.state, JobState::Finished, "{backend:?}");
        assert_eq!(job.verdict, Some(Verdict::Failed), "{backend:?}");
        let error = job.error.clone().unwrap_or_default();
        for needle in [
            "failed to get Feishu organization departments",
            "availability",
            "contact scope",
            "publish",
        ] {
            assert!(error.contains(needle), "{backend:?}: {needle:?} in {error}");
        }
        assert_eq!(job.error_code, Some(40004), "{backend:?}");
        assert_nothing_written(&h, &job).await;
    }
}

#[tokio::test]
async fn a_bad_app_secret_fails_with_the_credentials_message() {
    for backend in Backend::all() {
        let h = Harness::new(backend, tenant(100, 10, 2, 23)).await;
        // The secret was reset in the developer console; the connection still has the old one.
        h.emu.with_tenant_mut(|t| {
            t.apps.get_mut(APP_ID).unwrap().app_secret = "rotated-app-secret-00000000002".into();
        });
        let job = h.import().await;
        assert_eq!(job.state, JobState::Finished, "{backend:?}");
        assert_eq!(job.verdict, Some(Verdict::Failed), "{backend:?}");
        let error = job.error.clone().unwrap_or_default();
        assert!(error.contains("App Secret"), "{backend:?}: {error}");
        assert_eq!(job.error_code, Some(10014), "{backend:?}: {error}");
        assert_nothing_written(&h, &job).await;
    }
}

/// What the outage scene changed in the tenant.
struct Outage {
    /// A first-level department that leaves the contact scope, its subtree and the users
    /// that were only there.
    leaving_departments: BTreeSet<String>,
    leaving_users: Vec<UserKey>,
    /// Emptied, then deleted.
    deleted_department: String,
    deleted_group: String,
    renamed_department: String,
    created_department: String,
    updated_user: UserKey,
    renamed_group: String,
}

/// Changes that plan deletions of every kind (and some creates and updates) while
/// `find_by_department` is down.
fn outage_scene(h: &Harness) -> Outage {
    let (leaving, leaving_departments, leaving_users, deleted_department, renamed_department) =
        h.emu.with_tenant(|t| {
            let only_under = |d: &str| -> Vec<UserKey> {
                let below = subtree(t, d);
                t.users
                    .values()
                    .filter(|u| active(u) && !u.memberships.is_empty())
                    .filter(|u| u.department_ids().all(|x| below.contains(x)))
                    .map(|u| u.key)
                    .collect()
            };
            let leaving = t
                .children(ROOT)
                .iter()
                .filter(|d| !only_under(d).is_empty())
                .min_by_key(|d| (subtree(t, d).len(), (*d).clone()))
                .unwrap()
                .clone();
            let leaving_departments = subtree(t, &leaving);
            let deleted = t
                .departments
                .values()
                .find(|d| {
                    d.parent != ROOT
                        && !leaving_departments.contains(&d.open_department_id)
                        && t.children(&d.open_department_id).is_empty()
                })
                .unwrap()
                .open_department_id
                .clone();
            let renamed = t
                .departments
                .keys()
                .find(|d| !leaving_departments.contains(*d) && **d != deleted)
                .unwrap()
                .clone();
            (
                leaving.clone(),
                leaving_departments,
                only_under(&leaving),
                deleted,
                renamed,
            )
        });

    // Empty the department (its members move up), then delete it.
    let (parent, members) = h.emu.with_tenant(|t| {
        let members: Vec<(UserKey, Vec<String>)> = t
            .members(&deleted_department)
            .iter()
            .map(|k| {
                let rest: Vec<String> = t.users[k]
                    .department_ids()
                    .filter(|d| *d != deleted_department)
                    .map(str::to_owned)
                    .collect();
                (*k, rest)
            })
            .collect();
        (t.departments[&deleted_department].parent.clone(), members)
    });
    for (key, rest) in members {
        let to = if rest.is_empty() {
            vec![parent.clone()]
        } else {
            rest
        };
        mutate(h, |t| t.move_user(key, &to));
    }
    mutate(h, |t| t.delete_department(&deleted_department));

    let (deleted_group, renamed_group) = h.emu.with_tenant(|t| {
        let mut ids = t.groups.keys();
        (ids.next().unwrap().clone(), ids.next().unwrap().clone())
    });
    mutate(h, |t| t.delete_group(&deleted_group));
    mutate(h, |t| {
        t.update_group(&renamed_group, Some("Renamed during the outage"), None)
    });
    mutate(h, |t| {
        t.rename_department(
            &renamed_department,
            "Renamed during the outage",
            I18n::default(),
        )
    });
    let created = mutate(h, |t| {
        t.create_department(NewDepartment {
            name: "Created during the outage".into(),
            parent: renamed_department.clone(),
            ..NewDepartment::default()
        })
    });
    let created_department = Change::created_id(&created).unwrap().to_owned();
    let updated_user = h.emu.with_tenant(|t| {
        t.users
            .values()
            .find(|u| {
                active(u)
                    && !u.memberships.is_empty()
                    && u.department_ids().all(|d| {
                        d != ROOT && !leaving_departments.contains(d) && d != deleted_department
                    })
            })
            .unwrap()
            .key
    });
    mutate(h, |t| {
        t.update_user(
            updated_user,
            &UserPatch {
                name: Some("Updated During Outage".into()),
                ..UserPatch::default()
            },
        )
    });

    // The app's scope shrinks: every first-level department but `leaving`, the root's own
    // members, every group.
    let scope = h.emu.with_tenant(|t| ContactScope::Partial {
        departments: t
            .children(ROOT)
            .iter()
            .filter(|d| **d != leaving)
            .cloned()
            .collect(),
        users: t.members(ROOT).to_vec(),
        groups: t.groups.keys().cloned().collect(),
    });
    set_scope(h, scope);

    Outage {
        leaving_departments,
        leaving_users,
        deleted_department,
        deleted_group,
        renamed_department,
        created_department,
        updated_user,
        renamed_group,
    }
}

#[tokio::test]
async fn a_page_failing_during_a_reconciliation_deletes_nothing() {
    for backend in Backend::all() {
        // No threshold: only the partial verdict may hold the deletions back.
        let h = Harness::with(
            backend,
            tenant(200, 20, 5, 42),
            |_| {},
            thresholds(1.0, u64::MAX),
        )
        .await;
        let job = h.import().await;
        assert_eq!(job.verdict, Some(Verdict::Complete), "{backend:?}");
        let before = h.state().await;

        let scene = outage_scene(&h);
        assert!(!scene.leaving_users.is_empty(), "{backend:?}");
        h.emu.state().faults.set_config(FaultConfig {
            server_error_rate: 1.0,
            endpoints: vec!["contact/v3/users/find_by_department".into()],
            ..FaultConfig::default()
        });

        let job = h.reconcile().await;
        assert_eq!(job.state, JobState::Finished, "{backend:?}");
        assert_eq!(job.verdict, Some(Verdict::Partial), "{backend:?}: {job:?}");
        assert!(
            job.error
                .as_deref()
                .unwrap_or_default()
                .contains("no deletions"),
            "{backend:?}: {:?}",
            job.error
        );
        let log = h.action_log(&job).await;
        let deleted: Vec<&ActionLogEntry> = log
            .iter()
            .filter(|e| e.action.is_deletion() && e.result == ActionResult::Applied)
            .collect();
        assert!(deleted.is_empty(), "{backend:?}: {deleted:#?}");
        for action in [
            SyncAction::DeleteUser,
            SyncAction::DeleteDepartment,
            SyncAction::DeleteGroup,
        ] {
            assert_eq!(
                counted(&job, action, ActionResult::Applied),
                0,
                "{backend:?}"
            );
        }
        // What it would have deleted is logged as skipped, and still live.
        let skipped = ActionResult::Skipped;
        assert!(
            logged(
                &log,
                SyncAction::DeleteDepartment,
                &scene.deleted_department,
                skipped
            ),
            "{backend:?}"
        );
        assert!(
            logged(&log, SyncAction::DeleteGroup, &scene.deleted_group, skipped),
            "{backend:?}"
        );
        for od in &scene.leaving_departments {
            assert!(
                logged(&log, SyncAction::DeleteDepartment, od, skipped),
                "{backend:?}"
            );
            let d = h.stored_department(od).await.unwrap();
            assert!(d.deleted_at.is_none(), "{backend:?}: {d:?}");
        }
        for key in &scene.leaving_users {
            let ou = open_id(*key);
            assert!(
                logged(&log, SyncAction::DeleteUser, &ou, skipped),
                "{backend:?}"
            );
            let u = h.stored_user(&ou).await.unwrap();
            let old = before.users.iter().find(|o| o.id == u.id).unwrap();
            assert!(u.deleted_at.is_none(), "{backend:?}: {u:?}");
            assert_eq!(u.status, old.status, "{backend:?}");
        }
        let d = h
            .stored_department(&scene.deleted_department)
            .await
            .unwrap();
        assert!(d.deleted_at.is_none(), "{backend:?}");
        let g = h.stored_group(&scene.deleted_group).await.unwrap();
        assert!(g.deleted_at.is_none(), "{backend:?}");

        // What could be read is applied.
        let applied = ActionResult::Applied;
        assert!(
            logged(
                &log,
                SyncAction::CreateDepartment,
                &scene.created_department,
                applied
            ),
            "{backend:?}"
        );
        assert!(
            h.stored_department(&scene.created_department)
                .await
                .is_some()
        );
        assert!(
            logged(
                &log,
                SyncAction::UpdateDepartment,
                &scene.renamed_department,
                applied
            ),
            "{backend:?}"
        );
        let d = h
            .stored_department(&scene.renamed_department)
            .await
            .unwrap();
        assert_eq!(
            d.name.as_deref(),
            Some("Renamed during the outage"),
            "{backend:?}"
        );
        let ou = open_id(scene.updated_user);
        assert!(
            logged(&log, SyncAction::UpdateUser, &ou, applied),
            "{backend:?}"
        );
        let u = h.stored_user(&ou).await.unwrap();
        assert_eq!(
            u.profile.name.as_deref(),
            Some("Updated During Outage"),
            "{backend:?}"
        );
        assert!(
            logged(&log, SyncAction::UpdateGroup, &scene.renamed_group, applied),
            "{backend:?}"
        );
        let g = h.stored_group(&scene.renamed_group).await.unwrap();
        assert_eq!(
            g.name.as_deref(),
            Some("Renamed during the outage"),
            "{backend:?}"
        );

        // Feishu answers again: the next run is complete and deletes.
        h.emu.state().faults.set_config(FaultConfig::none());
        let job = h.reconcile().await;
        assert_eq!(
            job.verdict,
            Some(Verdict::Complete),
            "{backend:?}: {:?}",
            job.error
        );
        let log = h.action_log(&job).await;
        assert!(
            logged(
                &log,
                SyncAction::DeleteDepartment,
                &scene.deleted_department,
                applied
            ),
            "{backend:?}"
        );
        assert!(
            logged(&log, SyncAction::DeleteGroup, &scene.deleted_group, applied),
            "{backend:?}"
        );
        for od in &scene.leaving_departments {
            assert!(
                logged(&log, SyncAction::DeleteDepartment, od, applied),
                "{backend:?}"
            );
            let d = h.stored_department(od).await.unwrap();
            assert!(d.deleted_at.is_some(), "{backend:?}: {d:?}");
        }
        for key in &scene.leaving_users {
            let ou = open_id(*key);
            assert!(
                logged(&log, SyncAction::DeleteUser, &ou, applied),
                "{backend:?}"
            );
            assert!(
                h.stored_user(&ou).await.unwrap().deleted_at.is_some(),
                "{backend:?}"
            );
        }
        let d = h
            .stored_department(&scene.deleted_department)
            .await
            .unwrap();
        assert!(d.deleted_at.is_some(), "{backend:?}");
        let g = h.stored_group(&scene.deleted_group).await.unwrap();
        assert!(g.deleted_at.is_some(), "{backend:?}");
        let diff = h.compare().await;
        assert!(diff.is_empty(), "{backend:?}: {diff:#?}");
    }
}

#[tokio::test]
async fn deletions_above_the_threshold_are_parked_and_the_rest_applied() {
    for backend in Backend::all() {
        // Default thresholds: at most 50 and at most 5 % per object type.
        let h = Harness::new(backend, tenant(200, 20, 5, 25)).await;
        let job = h.import().await;
        assert_eq!(job.verdict, Some(Verdict::Complete), "{backend:?}");
        let live_users = h.live_external_ids(ObjectKind::User).await;
        let live_departments = h.live_external_ids(ObjectKind::Department).await;
        let live_groups = h.live_external_ids(ObjectKind::Group).await;

        // The app's scope shrinks to one small department (by mistake, say).
        let (small, member) = h.emu.with_tenant(|t| {
            let small = t
                .departments
                .keys()
                .filter(|d| t.children(d).is_empty() && t.members(d).len() >= 2)
                .min_by_key(|d| (t.members(d).len(), (*d).clone()))
                .unwrap()
                .clone();
            let member = t.members(&small)[0];
            (small, member)
        });
        mutate(&h, |t| {
            t.rename_department(&small, "The Last Team", I18n::default())
        });
        mutate(&h, |t| {
            t.update_user(
                member,
                &UserPatch {
                    job_title: Some("Last One Standing".into()),
                    ..UserPatch::default()
                },
            )
        });
        let staying: BTreeSet<String> = h
            .emu
            .with_tenant(|t| t.members(&small).iter().map(|k| open_id(*k)).collect());
        set_scope(
            &h,
            ContactScope::Partial {
                departments: vec![small.clone()],
                users: Vec::new(),
                groups: Vec::new(),
            },
        );

        let job = h.reconcile().await;
        assert_eq!(
            job.verdict,
            Some(Verdict::Complete),
            "{backend:?}: {:?}",
            job.error
        );
        let users_out: BTreeSet<&String> = live_users.difference(&staying).collect();
        let expected = [
            (
                SyncAction::DeleteUser,
                ObjectKind::User,
                users_out.len(),
                live_users.len(),
            ),
            (
                SyncAction::DeleteDepartment,
                ObjectKind::Department,
                live_departments.len() - 1,
                live_departments.len(),
            ),
            (
                SyncAction::DeleteGroup,
                ObjectKind::Group,
                live_groups.len(),
                live_groups.len(),
            ),
        ];
        let parked = h
            .store
            .list_parked(
                &ParkedFilter::pool(&h.pool).state(ParkedState::Pending),
                ALL,
            )
            .await
            .unwrap();
        for (action, kind, n, live) in expected {
            assert_eq!(
                counted(&job, action, ActionResult::Parked),
                n as u64,
                "{backend:?}: {action:?} in {:?}",
                job.counts
            );
            assert_eq!(
                counted(&job, action, ActionResult::Applied),
                0,
                "{backend:?}"
            );
            let of_kind: Vec<_> = parked.iter().filter(|p| p.kind == kind).collect();
            assert_eq!(of_kind.len(), n, "{backend:?}: {kind:?}");
            for p in of_kind {
                assert_eq!(p.job_id, job.id, "{backend:?}");
                assert_eq!(p.connection_id, h.connection.id, "{backend:?}");
                for needle in [
                    format!("{n} {} deletions exceed the threshold", kind.as_str()),
                    "at most 50".to_owned(),
                    format!("of {live} live"),
                ] {
                    assert!(
                        p.reason.contains(&needle),
                        "{backend:?}: {needle:?} in {}",
                        p.reason
                    );
                }
            }
        }
        // Nothing parked was tombstoned.
        assert_eq!(
            h.live_external_ids(ObjectKind::User).await,
            live_users,
            "{backend:?}"
        );
        assert_eq!(
            h.live_external_ids(ObjectKind::Department).await,
            live_departments,
            "{backend:?}"
        );
        assert_eq!(
            h.live_external_ids(ObjectKind::Group).await,
            live_groups,
            "{backend:?}"
        );
        for ou in &users_out {
            let u = h.stored_user(ou).await.unwrap();
            assert_ne!(u.status, UserStatus::Resigned, "{backend:?}");
        }
        // The rest of the plan was applied.
        let log = h.action_log(&job).await;
        assert!(
            logged(
                &log,
                SyncAction::UpdateDepartment,
                &small,
                ActionResult::Applied
            ),
            "{backend:?}"
        );
        let d = h.stored_department(&small).await.unwrap();
        assert_eq!(d.name.as_deref(), Some("The Last Team"), "{backend:?}");
        let u = h.stored_user(&open_id(member)).await.unwrap();
        assert_eq!(
            u.profile.job_title.as_deref(),
            Some("Last One Standing"),
            "{backend:?}"
        );
    }
}

#[tokio::test]
async fn deletions_under_the_threshold_are_applied() {
    for backend in Backend::all() {
        // Default thresholds: at most 50 and at most 5 % per object type.
        let h = Harness::new(backend, tenant(300, 30, 5, 26)).await;
        let job = h.import().await;
        assert_eq!(job.verdict, Some(Verdict::Complete), "{backend:?}");
        let (leaver, dropped) = h.emu.with_tenant(|t| {
            let root = t.members(ROOT).to_vec();
            let leaver = t
                .users
                .values()
                .find(|u| active(u) && !root.contains(&u.key))
                .unwrap()
                .key;
            (leaver, *root.first().expect("the tenant has root users"))
        });

        // One user resigns.
        mutate(&h, |t| t.resign(leaver));
        let job = h.reconcile().await;
        assert_eq!(
            job.verdict,
            Some(Verdict::Complete),
            "{backend:?}: {:?}",
            job.error
        );
        assert_eq!(
            counted(&job, SyncAction::DisableUser, ActionResult::Applied),
            1,
            "{backend:?}: {:?}",
            job.counts
        );
        let log = h.action_log(&job).await;
        assert!(
            logged(
                &log,
                SyncAction::DisableUser,
                &open_id(leaver),
                ActionResult::Applied
            ),
            "{backend:?}"
        );
        let u = h.stored_user(&open_id(leaver)).await.unwrap();
        assert_eq!(u.status, UserStatus::Resigned, "{backend:?}");

        // One user directly under the root leaves the app's contact scope.
        let scope = h.emu.with_tenant(|t| ContactScope::Partial {
            departments: t.children(ROOT).to_vec(),
            users: t
                .members(ROOT)
                .iter()
                .copied()
                .filter(|k| *k != dropped)
                .collect(),
            groups: t.groups.keys().cloned().collect(),
        });
        set_scope(&h, scope);
        let job = h.reconcile().await;
        assert_eq!(
            job.verdict,
            Some(Verdict::Complete),
            "{backend:?}: {:?}",
            job.error
        );
        assert_eq!(
            counted(&job, SyncAction::DeleteUser, ActionResult::Applied),
            1,
            "{backend:?}: {:?}",
            job.counts
        );
        let log = h.action_log(&job).await;
        assert!(
            logged(
                &log,
                SyncAction::DeleteUser,
                &open_id(dropped),
                ActionResult::Applied
            ),
            "{backend:?}"
        );
        let u = h.stored_user(&open_id(dropped)).await.unwrap();
        assert!(u.deleted_at.is_some(), "{backend:?}");

        assert!(
            h.store
                .list_parked(&ParkedFilter::pool(&h.pool), ALL)
                .await
                .unwrap()
                .is_empty(),
            "{backend:?}"
        );
        let diff = h.compare().await;
        assert!(diff.is_empty(), "{backend:?}: {diff:#?}");
    }
}

#[tokio::test]
async fn leavers_are_disabled_and_detached_by_a_reconciliation() {
    for backend in Backend::all() {
        // A threshold of zero: leavers must not be subject to it.
        let h = Harness::with(backend, tenant(200, 20, 5, 27), |_| {}, thresholds(0.0, 0)).await;
        let job = h.import().await;
        assert_eq!(job.verdict, Some(Verdict::Complete), "{backend:?}");

        // A department leader, someone's manager, and a group member leave; Feishu's events
        // are lost.
        let leavers: Vec<UserKey> = h.emu.with_tenant(|t| {
            let leader = t
                .departments
                .values()
                .find_map(|d| d.main_leader())
                .unwrap();
            let manager = t
                .users
                .values()
                .filter(|u| active(u))
                .find_map(|u| u.leader.filter(|l| *l != leader))
                .unwrap();
            let grouped = t
                .groups
                .values()
                .flat_map(|g| g.users.iter().copied())
                .find(|k| *k != leader && *k != manager)
                .unwrap();
            vec![leader, manager, grouped]
        });
        for key in &leavers {
            mutate(&h, |t| t.resign(*key));
        }

        let job = h.reconcile().await;
        assert_eq!(
            job.verdict,
            Some(Verdict::Complete),
            "{backend:?}: {:?}",
            job.error
        );
        assert_eq!(
            counted(&job, SyncAction::DisableUser, ActionResult::Applied),
            3,
            "{backend:?}: {:?}",
            job.counts
        );
        assert!(
            h.store
                .list_parked(&ParkedFilter::pool(&h.pool), ALL)
                .await
                .unwrap()
                .is_empty(),
            "{backend:?}"
        );
        let log = h.action_log(&job).await;
        for key in &leavers {
            let ou = open_id(*key);
            assert!(
                logged(&log, SyncAction::DisableUser, &ou, ActionResult::Applied),
                "{backend:?}"
            );
            let u = h.stored_user(&ou).await.unwrap();
            assert_eq!(u.status, UserStatus::Resigned, "{backend:?}");
            assert!(u.departments.is_empty() && !u.in_root, "{backend:?}: {u:?}");
            assert!(u.deleted_at.is_none(), "{backend:?}: kept as a record");
        }
        let diff = h.compare().await;
        assert!(diff.is_empty(), "{backend:?}: {diff:#?}");

        // A second run finds nothing to do.
        let again = h.reconcile().await;
        let changed: u64 = again
            .counts
            .iter()
            .filter(|(action, _)| action.as_str() != "Unchanged")
            .flat_map(|(_, by_result)| by_result.values())
            .sum();
        assert_eq!(changed, 0, "{backend:?}: {:?}", again.counts);
    }
}

#[tokio::test]
async fn one_job_per_connection_and_events_flow_beside_it() {
    for backend in Backend::all() {
        let mut h = Harness::new(backend, tenant(100, 10, 2, 28)).await;
        let job = h.import().await;
        assert_eq!(job.verdict, Some(Verdict::Complete), "{backend:?}");
        let key = h
            .emu
            .with_tenant(|t| t.users.values().find(|u| active(u)).unwrap().key);
        let ou = open_id(key);
        let rename = |h: &Harness, name: &str| {
            let patch = UserPatch {
                name: Some(name.to_owned()),
                ..UserPatch::default()
            };
            mutate(h, |t| t.update_user(key, &patch));
        };

        // A slow Feishu: reading the scope alone outlasts start_job's wait for the lease (5 s).
        h.emu.state().faults.set_config(FaultConfig {
            latency_rate: 1.0,
            latency_min: Duration::from_millis(6500),
            latency_max: Duration::from_millis(6500),
            endpoints: vec!["contact/v3/scopes".into()],
            ..FaultConfig::default()
        });
        let connection = h.connection.id.clone();
        let (a, b) = tokio::join!(
            h.engine
                .start_job(&connection, JobKind::Reconcile, JobTrigger::Admin),
            h.engine
                .start_job(&connection, JobKind::Reconcile, JobTrigger::Admin),
        );
        let (running, refused) = match (a, b) {
            (Ok(id), Err(e)) | (Err(e), Ok(id)) => (id, e),
            other => panic!("{backend:?}: want one job and one refusal, got {other:?}"),
        };
        assert!(
            matches!(&refused, EngineError::Busy(c) if *c == connection),
            "{backend:?}: {refused}"
        );
        let jobs = h.store.list_jobs(Some(&connection), ALL).await.unwrap();
        assert_eq!(
            jobs.iter().filter(|j| j.state == JobState::Running).count(),
            1,
            "{backend:?}"
        );

        // The job has loaded the stored state once it reads the scope.
        wait_for_phase(&h, &running, "scopes").await;
        // An event that arrives meanwhile is applied at once: the worker has a lease of its
        // own (leavers must not keep access for the length of a job).
        rename(&h, "Renamed While A Job Runs");
        let delivered = h.deliver(1, None, None).await as u64;
        assert!(delivered >= 1, "{backend:?}");
        let stats = h.drain().await;
        assert_eq!(
            stats.applied + stats.ignored,
            delivered,
            "{backend:?}: {stats:?}"
        );
        assert_eq!(stats.busy, 0, "{backend:?}: {stats:?}");
        assert_eq!(h.store.inbox_pending_count(&connection).await.unwrap(), 0);
        let u = h.stored_user(&ou).await.unwrap();
        assert_eq!(
            u.profile.name.as_deref(),
            Some("Renamed While A Job Runs"),
            "{backend:?}"
        );
        assert_eq!(
            h.store.get_job(&running).await.unwrap().unwrap().state,
            JobState::Running,
            "{backend:?}: the job must outlast the test's waits"
        );
        let job = wait_for_job(&h, &running).await;
        assert_eq!(
            job.verdict,
            Some(Verdict::Complete),
            "{backend:?}: {:?}",
            job.error
        );
        h.emu.state().faults.set_config(FaultConfig::none());
        // The job pulled the user after the event renamed it and read it in full from the
        // store only then (docs/concurrency.md): both agree, and it writes nothing.
        let log = h.action_log(&job).await;
        let steps: Vec<_> = log.iter().filter(|e| e.external_id == ou).collect();
        assert_eq!(steps.len(), 1, "{backend:?}: {steps:?}");
        assert_eq!(
            steps[0].action,
            SyncAction::Unchanged,
            "{backend:?}: {steps:?}"
        );
        let u = h.stored_user(&ou).await.unwrap();
        assert_eq!(
            u.profile.name.as_deref(),
            Some("Renamed While A Job Runs"),
            "{backend:?}"
        );

        // Another instance's worker holds the connection's events: this one leaves them to
        // it (one worker per connection keeps their order), whatever the jobs do.
        let other = "other-instance/worker-1";
        assert!(
            h.store
                .try_acquire_event_lease(&connection, other, Duration::from_secs(60), now_ms())
                .await
                .unwrap(),
            "{backend:?}"
        );
        rename(&h, "Renamed While Another Worker Holds It");
        let delivered = h.deliver(1, None, None).await as u64;
        let stats = h.drain().await;
        assert_eq!(stats.handled(), 0, "{backend:?}: {stats:?}");
        assert!(stats.busy >= 1, "{backend:?}: {stats:?}");
        let pending = h
            .inbox()
            .await
            .into_iter()
            .filter(|e| e.state == InboxState::Pending)
            .count() as u64;
        assert_eq!(pending, delivered, "{backend:?}");
        h.store
            .release_event_lease(&connection, other)
            .await
            .unwrap();
        let stats = drain_after_the_job(&h).await;
        assert_eq!(stats.applied, delivered, "{backend:?}: {stats:?}");
        let u = h.stored_user(&ou).await.unwrap();
        assert_eq!(
            u.profile.name.as_deref(),
            Some("Renamed While Another Worker Holds It"),
            "{backend:?}"
        );
    }
}

#[tokio::test]
async fn a_running_job_shows_its_progress() {
    for backend in Backend::all() {
        // Every member page and group member page takes a while.
        let slow = FaultConfig {
            latency_rate: 1.0,
            latency_min: Duration::from_millis(60),
            latency_max: Duration::from_millis(60),
            endpoints: vec![
                "contact/v3/users/find_by_department".into(),
                "contact/v3/group/:group_id/member/simplelist".into(),
            ],
            ..FaultConfig::default()
        };
        let h = Harness::with(
            backend,
            tenant(300, 30, 4, 29),
            |c| c.faults = slow,
            ConnectionSettings::default(),
        )
        .await;
        let id = h
            .engine
            .start_job(&h.connection.id, JobKind::Import, JobTrigger::Admin)
            .await
            .unwrap();
        let started = Instant::now();
        let mut seen = Vec::new();
        let job = loop {
            let job = h.store.get_job(&id).await.unwrap().unwrap();
            if job.state == JobState::Finished {
                break job;
            }
            seen.push(job.progress);
            assert!(started.elapsed() < Duration::from_secs(60), "{backend:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(
            job.verdict,
            Some(Verdict::Complete),
            "{backend:?}: {:?}",
            job.error
        );

        let phases: Vec<&str> = seen.iter().map(|p| p.phase.as_str()).collect();
        let distinct: BTreeSet<&str> = phases.iter().copied().collect();
        assert!(distinct.len() >= 2, "{backend:?}: phases seen {distinct:?}");
        assert!(
            distinct.contains("users"),
            "{backend:?}: phases seen {distinct:?}"
        );
        let pages: Vec<u64> = seen.iter().map(|p| p.pages).collect();
        assert!(
            pages.windows(2).all(|w| w[0] <= w[1]),
            "{backend:?}: pages went back: {pages:?}"
        );
        let moving: BTreeMap<u64, usize> = pages.iter().fold(BTreeMap::new(), |mut m, p| {
            *m.entry(*p).or_default() += 1;
            m
        });
        assert!(
            moving.len() >= 3,
            "{backend:?}: pages seen while running: {moving:?}"
        );
        assert!(
            seen.iter().any(|p| p.phase == "users" && p.users > 0),
            "{backend:?}"
        );
        // The end state: everything read, everything applied.
        assert_eq!(job.progress.phase, "done", "{backend:?}");
        assert!(job.progress.pages >= *pages.last().unwrap(), "{backend:?}");
        assert_eq!(job.progress.applied, job.progress.planned, "{backend:?}");
        assert!(job.progress.users > 250, "{backend:?}: {:?}", job.progress);
    }
}

#[tokio::test]
async fn a_finished_job_stays_finished_while_progress_is_flushed_often() {
    for backend in Backend::all() {
        let h = Harness::new(backend, tenant(30, 4, 1, 30)).await;
        // Progress written every millisecond: a flush still in flight when the job ends must
        // not overwrite the final state (on PostgreSQL it did, now and then).
        let engine = directory::engine::Engine::new(
            h.store.clone(),
            h.engine.master_key().clone(),
            directory::engine::EngineConfig {
                progress_interval: Duration::from_millis(1),
                ..crate::support::engine_config()
            },
        );
        for _ in 0..25 {
            let job = engine
                .run_job(&h.connection.id, JobKind::Reconcile, JobTrigger::Admin)
                .await
                .unwrap();
            assert_eq!(job.state, JobState::Finished, "{backend:?}: {job:?}");
            assert_eq!(job.verdict, Some(Verdict::Complete), "{backend:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let jobs = h
            .store
            .list_jobs(Some(&h.connection.id), ALL)
            .await
            .unwrap();
        assert_eq!(jobs.len(), 25, "{backend:?}");
        let running: Vec<&SyncJob> = jobs
            .iter()
            .filter(|j| j.state != JobState::Finished || j.progress.phase != "done")
            .collect();
        assert!(running.is_empty(), "{backend:?}: {running:#?}");
        // And the lease is free.
        assert!(
            h.store
                .try_acquire_lease(&h.connection.id, "probe", Duration::from_secs(5), now_ms())
                .await
                .unwrap(),
            "{backend:?}"
        );
    }
}

// ---- jobs left running by a process that stopped -----------------------------------------

/// An engine of instance `name` on the harness's store and key (another process, or the same
/// installation restarted). Starting a job waits 300 ms for the lease, not 5 s.
fn instance(h: &Harness, name: &str, lease_ttl: Duration) -> Arc<Engine> {
    Engine::new(
        h.store.clone(),
        h.engine.master_key().clone(),
        EngineConfig {
            instance: name.into(),
            lease_ttl,
            lease_wait: Duration::from_millis(300),
            ..crate::support::engine_config()
        },
    )
}

/// Feishu answers the contact-scope read after `delay`: a job started now stays in its first
/// request that long.
fn slow_scope_reads(h: &Harness, delay: Duration) {
    h.emu.state().faults.set_config(FaultConfig {
        latency_rate: 1.0,
        latency_min: delay,
        latency_max: delay,
        endpoints: vec!["contact/v3/scopes".into()],
        ..FaultConfig::default()
    });
}

/// Starts an import on `engine` and kills it mid-way as `kill -9` would: the task running it
/// is dropped, so nothing records its end, and its lease stays held (no longer renewed) until
/// it expires.
async fn crash_during_an_import(h: &Harness, engine: &Arc<Engine>) -> JobId {
    let runner = engine.clone();
    let connection = h.connection.id.clone();
    let task = tokio::spawn(async move {
        runner
            .run_job(&connection, JobKind::Import, JobTrigger::Admin)
            .await
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let id = loop {
        let jobs = h
            .store
            .list_jobs(Some(&h.connection.id), ALL)
            .await
            .unwrap();
        if let Some(job) = jobs.iter().find(|j| {
            j.state == JobState::Running
                && j.instance.as_deref() == Some(engine.config().instance.as_str())
        }) {
            break job.id.clone();
        }
        assert!(Instant::now() < deadline, "{:?}: no job started", h.backend);
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    id
}

fn assert_interrupted(backend: Backend, job: &SyncJob) {
    assert_eq!(job.state, JobState::Finished, "{backend:?}: {job:?}");
    assert_eq!(job.verdict, Some(Verdict::Failed), "{backend:?}: {job:?}");
    let error = job.error.as_deref().unwrap_or_default();
    assert!(
        error.starts_with("interrupted: the process stopped")
            && error.contains("start the job again"),
        "{backend:?}: {error}"
    );
    assert!(
        job.finished_at.is_some_and(|f| f >= job.started_at),
        "{backend:?}: {job:?}"
    );
}

/// Whether a holder that is not the job's could take the connection's lease now.
async fn lease_is_free(h: &Harness, connection: &ConnectionId) -> bool {
    let probe = "probe/lease-is-free";
    let free = h
        .store
        .try_acquire_lease(connection, probe, Duration::from_secs(5), now_ms())
        .await
        .unwrap();
    if free {
        h.store.release_lease(connection, probe).await.unwrap();
    }
    free
}

#[tokio::test]
async fn a_job_killed_with_its_process_ends_failed_when_its_instance_restarts() {
    for backend in Backend::all() {
        let h = Harness::new(backend, tenant(40, 5, 1, 31)).await;
        let connection = h.connection.id.clone();
        assert_eq!(h.import().await.verdict, Some(Verdict::Complete));
        // The instance also held the event worker's lease on a second connection.
        let second = Connection {
            id: ConnectionId::generate(),
            identifier: "second".into(),
            ..h.connection.clone()
        };
        h.store.create_connection(&second).await.unwrap();
        assert!(
            h.store
                .try_acquire_lease(
                    &second.id,
                    "instance-a/worker-0a1b2c",
                    Duration::from_secs(30),
                    now_ms()
                )
                .await
                .unwrap()
        );

        slow_scope_reads(&h, Duration::from_secs(60));
        let crashed = {
            let a = instance(&h, "instance-a", Duration::from_secs(60));
            crash_during_an_import(&h, &a).await
        };
        assert_eq!(
            h.store.get_job(&crashed).await.unwrap().unwrap().state,
            JobState::Running,
            "{backend:?}"
        );
        // What the defect looked like: the connection refuses jobs while the dead lease
        // lives; another instance leaves the job alone meanwhile (its lease is live).
        let survivor = instance(&h, "instance-b", Duration::from_secs(60));
        let refused = survivor
            .start_job(&connection, JobKind::Import, JobTrigger::Admin)
            .await;
        assert!(
            matches!(refused, Err(EngineError::Busy(_))),
            "{backend:?}: {refused:?}"
        );
        assert!(
            survivor.end_orphaned_jobs().await.unwrap().is_empty(),
            "{backend:?}"
        );
        assert_eq!(
            h.store.get_job(&crashed).await.unwrap().unwrap().state,
            JobState::Running,
            "{backend:?}"
        );

        // The same installation starts again.
        h.emu.state().faults.set_config(FaultConfig::none());
        let restarted = instance(&h, "instance-a", Duration::from_secs(60));
        let ended = restarted.recover_after_restart().await.unwrap();
        assert_eq!(
            ended.iter().map(|j| &j.id).collect::<Vec<_>>(),
            vec![&crashed],
            "{backend:?}"
        );
        let job = h.store.get_job(&crashed).await.unwrap().unwrap();
        assert_interrupted(backend, &job);
        assert_eq!(ended[0], job, "{backend:?}");
        assert!(lease_is_free(&h, &connection).await, "{backend:?}");
        assert!(
            lease_is_free(&h, &second.id).await,
            "{backend:?}: worker lease kept"
        );

        // A new job starts at once (no 409) and completes; the crashed one stays failed.
        let next = restarted
            .start_job(&connection, JobKind::Reconcile, JobTrigger::Admin)
            .await
            .unwrap();
        let done = wait_for_job(&h, &next).await;
        assert_eq!(
            done.verdict,
            Some(Verdict::Complete),
            "{backend:?}: {done:?}"
        );
        assert_eq!(done.instance.as_deref(), Some("instance-a"), "{backend:?}");
        assert_eq!(h.store.get_job(&crashed).await.unwrap().unwrap(), job);
    }
}

#[tokio::test]
async fn another_instances_orphaned_job_ends_failed_once_its_lease_expired() {
    for backend in Backend::all() {
        let h = Harness::new(backend, tenant(40, 5, 1, 32)).await;
        let connection = h.connection.id.clone();
        let survivor = instance(&h, "survivor", Duration::from_secs(60));

        // Instance b dies during a job; its lease (1 s) is not renewed any more.
        slow_scope_reads(&h, Duration::from_secs(60));
        let crashed =
            crash_during_an_import(&h, &instance(&h, "instance-b", Duration::from_secs(1))).await;
        assert!(
            survivor.end_orphaned_jobs().await.unwrap().is_empty(),
            "{backend:?}: the lease is still live"
        );
        // The survivor's schedule tick ends it once the lease has expired.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let tick = schedule::spawn(survivor.clone(), Duration::from_millis(100), stopped);
        let deadline = Instant::now() + Duration::from_secs(15);
        let job = loop {
            let job = h.store.get_job(&crashed).await.unwrap().unwrap();
            if job.state == JobState::Finished {
                break job;
            }
            assert!(
                Instant::now() < deadline,
                "{backend:?}: still running: {job:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        stop.send(true).unwrap();
        tick.await.unwrap();
        assert_interrupted(backend, &job);
        assert_eq!(job.instance.as_deref(), Some("instance-b"), "{backend:?}");

        // Instance c dies too; a job started after its lease expired takes the connection
        // over and ends the orphan, without waiting for a tick.
        let crashed =
            crash_during_an_import(&h, &instance(&h, "instance-c", Duration::from_secs(1))).await;
        h.emu.state().faults.set_config(FaultConfig::none());
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        let next = survivor
            .start_job(&connection, JobKind::Import, JobTrigger::Admin)
            .await
            .unwrap();
        assert_interrupted(backend, &h.store.get_job(&crashed).await.unwrap().unwrap());
        let done = wait_for_job(&h, &next).await;
        assert_eq!(
            done.verdict,
            Some(Verdict::Complete),
            "{backend:?}: {done:?}"
        );
    }
}

#[tokio::test]
async fn a_slow_job_with_a_live_lease_is_never_taken_for_an_orphan() {
    for backend in Backend::all() {
        let h = Harness::new(backend, tenant(40, 5, 1, 33)).await;
        // Reading the scope takes 6 s, twice the job's lease (3 s, renewed every second).
        slow_scope_reads(&h, Duration::from_secs(6));
        let slow = instance(&h, "slow", Duration::from_secs(3));
        let id = slow
            .start_job(&h.connection.id, JobKind::Import, JobTrigger::Admin)
            .await
            .unwrap();
        let others = instance(&h, "others", Duration::from_secs(60));
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let ended = others.end_orphaned_jobs().await.unwrap();
            assert!(
                ended.is_empty(),
                "{backend:?}: a live job was ended: {ended:?}"
            );
            assert!(
                others.recover_after_restart().await.unwrap().is_empty(),
                "{backend:?}: another instance's restart touched it"
            );
        }
        let job = wait_for_job(&h, &id).await;
        assert_eq!(job.verdict, Some(Verdict::Complete), "{backend:?}: {job:?}");
        assert_eq!(job.error, None, "{backend:?}");
    }
}

// ---- pacing -------------------------------------------------------------------------------

/// An engine that paces each connection at its own setting (the harness lifts pacing).
fn paced_engine(h: &Harness) -> Arc<Engine> {
    Engine::new(
        h.store.clone(),
        h.engine.master_key().clone(),
        EngineConfig {
            pacing_lifted: false,
            ..crate::support::engine_config()
        },
    )
}

#[tokio::test]
async fn a_job_paces_at_its_connections_setting_and_counts_feishus_throttling() {
    for backend in Backend::all() {
        // Feishu's budget here is 3 requests per second per endpoint.
        let h = Harness::with(
            backend,
            tenant(30, 6, 1, 30),
            |c| {
                c.rate_limit = emulator::ratelimit::RateLimitConfig {
                    per_second: 3,
                    ..emulator::ratelimit::RateLimitConfig::default()
                }
            },
            ConnectionSettings::default(),
        )
        .await;
        // Paced at Feishu's published 50/s, above this budget: refused reads wait for the
        // window to reset, the job is complete, and it says how often that happened.
        let engine = paced_engine(&h);
        let job = engine
            .run_job(&h.connection.id, JobKind::Import, JobTrigger::Admin)
            .await
            .unwrap();
        assert_eq!(job.verdict, Some(Verdict::Complete), "{backend:?}: {job:?}");
        assert!(
            job.progress.throttled > 0,
            "{backend:?}: {:?}",
            job.progress
        );
        let stored = h.store.get_job(&job.id).await.unwrap().unwrap();
        assert_eq!(
            stored.progress.throttled, job.progress.throttled,
            "{backend:?}"
        );

        // Paced below the budget (the edited setting takes effect on the next job): none.
        let mut connection = h.connection.clone();
        connection.settings.pacing = directory::model::Pacing {
            per_second: 2,
            per_minute: 1_000,
        };
        h.store.update_connection(&connection).await.unwrap();
        // The import's last requests must not count against the reconciliation's first window.
        h.emu.state().rate_limiter.reset_windows();
        let job = engine
            .run_job(&h.connection.id, JobKind::Reconcile, JobTrigger::Admin)
            .await
            .unwrap();
        assert_eq!(job.verdict, Some(Verdict::Complete), "{backend:?}: {job:?}");
        assert_eq!(job.progress.throttled, 0, "{backend:?}: {:?}", job.progress);
    }
}

// ---- applying ahead of the final plan ----------------------------------------------------

/// The directory by Feishu ids: each user's name, status, departments and manager, each
/// department's name, parent and leaders, each group's members, with versions.
async fn directory_by_feishu_ids(h: &Harness) -> BTreeMap<String, String> {
    let state = h
        .store
        .load_connection_state(&h.connection.id)
        .await
        .unwrap();
    let ext: BTreeMap<&str, &str> = state
        .refs
        .iter()
        .map(|r| (r.object_id.as_str(), r.external_id.as_str()))
        .collect();
    let name = |id: &str| ext.get(id).copied().unwrap_or("?").to_owned();
    let mut out = BTreeMap::new();
    for u in &state.users {
        let departments: Vec<String> = u
            .departments
            .iter()
            .map(|m| {
                format!(
                    "{}@{:?}/{:?}/{}",
                    name(m.department_id.as_str()),
                    m.user_order,
                    m.department_order,
                    m.primary
                )
            })
            .collect();
        out.insert(
            format!("user {}", name(u.id.as_str())),
            format!(
                "{:?} {:?} in {departments:?} root {} manager {:?} v{} deleted {}",
                u.profile.name,
                u.status,
                u.in_root,
                u.manager_id.as_ref().map(|m| name(m.as_str())),
                u.version,
                u.deleted_at.is_some()
            ),
        );
    }
    for d in &state.departments {
        out.insert(
            format!("department {}", name(d.id.as_str())),
            format!(
                "{:?} under {:?} leaders {:?} v{}",
                d.name,
                d.parent_id.as_ref().map(|p| name(p.as_str())),
                d.leaders
                    .iter()
                    .map(|l| name(l.user_id.as_str()))
                    .collect::<Vec<_>>(),
                d.version
            ),
        );
    }
    for g in &state.groups {
        let mut members: Vec<String> = g
            .members
            .iter()
            .map(|m| match m {
                directory::model::GroupMember::User(u) => format!("user {}", name(u.as_str())),
                directory::model::GroupMember::Department(d) => {
                    format!("department {}", name(d.as_str()))
                }
            })
            .collect();
        members.sort();
        out.insert(
            format!("group {}", name(g.id.as_str())),
            format!("{:?} {members:?} v{}", g.name, g.version),
        );
    }
    out
}

#[tokio::test]
async fn applying_users_ahead_ends_where_applying_after_the_pull_does() {
    for backend in Backend::all() {
        let mut seen = Vec::new();
        for chunk in [0, 1, 7, 1_000] {
            let h = Harness::new(backend, tenant(150, 12, 4, 41)).await;
            let engine = Engine::new(
                h.store.clone(),
                h.engine.master_key().clone(),
                EngineConfig {
                    ahead_chunk: chunk,
                    ..crate::support::engine_config()
                },
            );
            let import = engine
                .run_job(&h.connection.id, JobKind::Import, JobTrigger::Admin)
                .await
                .unwrap();
            assert_eq!(
                import.verdict,
                Some(Verdict::Complete),
                "{backend:?} {chunk}"
            );
            assert!(h.compare().await.is_empty(), "{backend:?} {chunk}");
            let log = h.action_log(&import).await;
            assert_eq!(
                log.len() as u64,
                import.progress.applied,
                "{backend:?} {chunk}: one line per step"
            );
            // The same lines, whatever the order they were applied in. A leader step planned
            // with its users says it waits for them; planned after them, it need not.
            let mut lines: Vec<String> = log
                .iter()
                .map(|l| {
                    let reason = l
                        .reason
                        .as_deref()
                        .map(|r| r.replace(" (set once the users exist)", ""));
                    format!(
                        "{:?} {:?} {} {:?} {reason:?}",
                        l.action, l.kind, l.external_id, l.result
                    )
                })
                .collect();
            lines.sort();
            let reconcile = engine
                .run_job(&h.connection.id, JobKind::Reconcile, JobTrigger::Admin)
                .await
                .unwrap();
            let changed: Vec<&String> = reconcile
                .counts
                .keys()
                .filter(|a| *a != "Unchanged")
                .collect();
            assert!(
                changed.is_empty(),
                "{backend:?} {chunk}: {:?}",
                reconcile.counts
            );
            seen.push((
                chunk,
                import.counts,
                directory_by_feishu_ids(&h).await,
                lines,
            ));
        }
        for (chunk, counts, directory, lines) in &seen[1..] {
            assert_eq!(counts, &seen[0].1, "{backend:?}: chunks of {chunk}");
            assert_eq!(directory, &seen[0].2, "{backend:?}: chunks of {chunk}");
            assert_eq!(lines, &seen[0].3, "{backend:?}: chunks of {chunk}");
        }
    }
}
