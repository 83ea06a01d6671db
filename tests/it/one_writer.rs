//! One writer of directory changes (docs/write-path.md): the same Feishu change, delivered as
//! an event to one orgsync and found by a reconciliation of another, writes the same
//! change-log kinds and leaves the same objects; approving a parked deletion detaches what
//! referred to the object; a deleted department detaches every member however many.

use std::collections::{BTreeMap, HashMap};

use directory::model::{ActionResult, ObjectKind, ParkedState, SyncAction};
use directory::store::{ApplyBatch, ChangeKind, ChangeSource, ParkedFilter, Write};
use emulator::tenant::{Tenant, UserKey};
use serde_json::Value;

use crate::support::*;

/// The organisation both orgsyncs mirror.
fn org() -> Tenant {
    tenant(40, 8, 4, 7)
}

/// A directory object with every orgsync id replaced by the Feishu id it maps to, and the
/// fields that depend on when and by which path it was written left out: comparable across
/// two orgsyncs.
pub(crate) fn normalized(value: &Value, ext: &HashMap<String, String>, base: &str) -> Value {
    match value {
        Value::String(s) => Value::String(match ext.get(s) {
            Some(e) => e.clone(),
            // URLs of the emulator (avatars) name its port.
            None => s.replace(base, "http://emulator"),
        }),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| normalized(v, ext, base)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| {
                    !matches!(
                        k.as_str(),
                        "version" | "created_at" | "updated_at" | "pool_id"
                    )
                })
                .map(|(k, v)| {
                    let v = match (k.as_str(), normalized(v, ext, base)) {
                        ("deleted_at", _) => Value::Bool(!v.is_null()),
                        // Stored in orgsync-id order, which differs between two orgsyncs.
                        ("members", Value::Array(mut members)) => {
                            members.sort_by_key(|m| m.to_string());
                            Value::Array(members)
                        }
                        (_, v) => v,
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// What a path wrote after the import: the change-log kinds per object (in order) and the
/// objects it changed, both by Feishu id.
#[derive(Debug, PartialEq)]
struct Written {
    kinds: BTreeMap<String, Vec<ChangeKind>>,
    objects: BTreeMap<String, Value>,
}

async fn written_since(h: &Harness, after: i64) -> Written {
    let state = h.state().await;
    let ext: HashMap<String, String> = state
        .refs
        .iter()
        .map(|r| (r.object_id.clone(), r.external_id.clone()))
        .collect();
    let mut kinds: BTreeMap<String, Vec<ChangeKind>> = BTreeMap::new();
    let mut objects = BTreeMap::new();
    for c in h.change_log().await.into_iter().filter(|c| c.seq > after) {
        let key = format!(
            "{}:{}",
            c.object_kind.as_str(),
            ext.get(&c.object_id).unwrap_or(&c.object_id)
        );
        kinds.entry(key.clone()).or_default().push(c.kind);
        objects.insert(key, normalized(&c.object, &ext, &h.emu.base_url()));
    }
    // The final state of each changed object, as stored (the last change row carries it).
    Written { kinds, objects }
}

async fn last_seq(h: &Harness) -> i64 {
    h.change_log().await.last().map_or(0, |c| c.seq)
}

/// Applies `change` to two emulators of the same organisation; one orgsync gets the events,
/// the other reconciles; both must write the same.
async fn same_by_event_and_reconciliation(
    backend: Backend,
    what: &str,
    change: impl Fn(&mut Tenant) -> emulator::mutate::MutationResult,
) {
    let mut by_event = Harness::with(backend, org(), |_| {}, no_thresholds()).await;
    let by_job = Harness::with(backend, org(), |_| {}, no_thresholds()).await;
    by_event.import().await;
    by_job.import().await;
    // The emulators' events of the import itself are not part of the change.
    by_event.delivered = by_event.emu.state().events.emitted().len();
    let (from_event, from_job) = (last_seq(&by_event).await, last_seq(&by_job).await);

    let changes = by_event.mutate(&change);
    assert!(!changes.is_empty(), "{what}: the mutation changed nothing");
    by_job.mutate(&change);

    assert!(
        by_event.deliver(1, None, None).await > 0,
        "{what}: no event"
    );
    by_event.settle().await;
    let job = by_job.reconcile().await;
    assert_eq!(
        counted(&job, SyncAction::Unchanged, ActionResult::Failed),
        0,
        "{what}"
    );

    let event_wrote = written_since(&by_event, from_event).await;
    let job_wrote = written_since(&by_job, from_job).await;
    assert!(
        !event_wrote.kinds.is_empty(),
        "{backend:?} {what}: the event wrote nothing"
    );
    assert_eq!(
        event_wrote.kinds, job_wrote.kinds,
        "{backend:?} {what}: change-log kinds differ (left: by event, right: by reconciliation)"
    );
    assert_eq!(
        event_wrote.objects, job_wrote.objects,
        "{backend:?} {what}: objects differ (left: by event, right: by reconciliation)"
    );
    assert!(by_event.compare().await.is_empty(), "{backend:?} {what}");
}

/// The first active user with at least `n` memberships (and in a department of its own).
fn a_user(t: &Tenant, n: usize) -> UserKey {
    t.users
        .values()
        .find(|u| u.memberships.len() >= n && !u.status.resigned)
        .map(|u| u.key)
        .expect("the generated tenant has such a user")
}

fn other_department(t: &Tenant, key: UserKey) -> String {
    let user = &t.users[&key];
    t.departments
        .keys()
        .find(|d| !user.memberships.iter().any(|m| &m.department == *d))
        .cloned()
        .expect("a department the user is not in")
}

#[tokio::test]
async fn the_same_change_by_event_and_by_reconciliation_writes_the_same() {
    for backend in Backend::all() {
        same_by_event_and_reconciliation(backend, "user_id change", |t| {
            let key = a_user(t, 1);
            let patch = emulator::mutate::UserPatch {
                user_id: Some(format!("renamed-{key}")),
                ..Default::default()
            };
            t.update_user(key, &patch)
        })
        .await;
        same_by_event_and_reconciliation(backend, "department custom id", |t| {
            let od = t.departments.keys().next().cloned().unwrap_or_default();
            t.set_department_custom_id(&od, "D-renamed-1")
        })
        .await;
        same_by_event_and_reconciliation(backend, "profile and departments together", |t| {
            let key = a_user(t, 1);
            let other = other_department(t, key);
            let patch = emulator::mutate::UserPatch {
                job_title: Some("Principal".into()),
                ..Default::default()
            };
            let mut changes = t.update_user(key, &patch)?;
            changes.extend(t.move_user(key, &[other])?);
            Ok(changes)
        })
        .await;
        same_by_event_and_reconciliation(backend, "primary department", |t| {
            let key = a_user(t, 1);
            let mut departments: Vec<String> = t.users[&key]
                .memberships
                .iter()
                .map(|m| m.department.clone())
                .collect();
            departments.insert(0, other_department(t, key));
            t.move_user(key, &departments)
        })
        .await;
        same_by_event_and_reconciliation(backend, "leader change", |t| {
            let key = a_user(t, 1);
            let od = t.users[&key].memberships[0].department.clone();
            t.set_department_leaders(&od, &[(1, key)])
        })
        .await;
        same_by_event_and_reconciliation(backend, "department move", |t| {
            // A leaf moves under another department.
            let (leaf, parent) = t
                .departments
                .values()
                .find(|d| {
                    d.parent != "0"
                        && !t
                            .departments
                            .values()
                            .any(|c| c.parent == d.open_department_id)
                })
                .map(|d| (d.open_department_id.clone(), d.parent.clone()))
                .expect("a leaf department");
            let target = t
                .departments
                .values()
                .find(|d| d.open_department_id != leaf && d.open_department_id != parent)
                .map(|d| d.open_department_id.clone())
                .expect("another department");
            t.move_department(&leaf, &target)
        })
        .await;
        same_by_event_and_reconciliation(backend, "group member added", |t| {
            let group = t.groups.keys().next().cloned().unwrap_or_default();
            let key = t
                .users
                .values()
                .find(|u| !u.status.resigned && !t.groups[&group].users.contains(&u.key))
                .map(|u| u.key)
                .expect("a user outside the group");
            t.add_group_members(&group, &[key], &[])
        })
        .await;
        same_by_event_and_reconciliation(backend, "group member removed", |t| {
            let (group, key) = t
                .groups
                .values()
                .find_map(|g| g.users.first().map(|k| (g.id.clone(), *k)))
                .expect("a group with a user");
            t.remove_group_members(&group, &[key], &[])
        })
        .await;
    }
}

/// Parks a deletion of `object` the way a job does, and approves it.
async fn park_and_approve(h: &Harness, kind: ObjectKind, external_id: &str) {
    let object_id = h.object_id(kind, external_id).await.unwrap();
    let now = directory::ids::now_ms();
    h.store
        .park_deletions(&[directory::model::ParkedDeletion {
            id: 0,
            pool_id: h.pool.clone(),
            connection_id: h.connection.id.clone(),
            job_id: directory::ids::JobId::from("job-test"),
            kind,
            object_id,
            external_id: external_id.to_owned(),
            name: None,
            reason: "test".into(),
            state: ParkedState::Pending,
            created_at: now,
            last_parked_at: now + 1,
            resolved_at: None,
            resolution: None,
        }])
        .await
        .unwrap();
    let admin = directory::admin::Admin::new(h.engine.clone(), None, "http://127.0.0.1:1".into());
    let pending = h
        .store
        .list_parked(
            &ParkedFilter::pool(&h.pool).state(ParkedState::Pending),
            ALL,
        )
        .await
        .unwrap();
    for p in pending {
        admin.approve_parked(p.id).await.unwrap();
    }
}

#[tokio::test]
async fn approving_a_parked_deletion_detaches_what_referred_to_the_object() {
    for backend in Backend::all() {
        let h = Harness::with(backend, org(), |_| {}, no_thresholds()).await;
        h.import().await;
        // A department with members, and one of them, and a group.
        let (group, od, member) = h.emu.state().with_tenant(|t| {
            let group = t.groups.values().next().unwrap().id.clone();
            let (od, member) = t
                .users
                .values()
                .filter(|u| !u.status.resigned)
                .find_map(|u| u.memberships.first().map(|m| (m.department.clone(), u.key)))
                .unwrap();
            (group, od, member)
        });
        h.mutate(|t| t.add_group_members(&group, &[member], std::slice::from_ref(&od)));
        let mut h = h;
        h.deliver(1, None, None).await;
        h.settle().await;
        let department = h.stored_department(&od).await.unwrap();
        let g = h.stored_group(&group).await.unwrap();
        assert!(
            g.members
                .contains(&directory::model::GroupMember::Department(
                    department.id.clone()
                ))
        );

        park_and_approve(&h, ObjectKind::Department, &od).await;
        let department = h.stored_department(&od).await.unwrap();
        assert!(department.deleted_at.is_some(), "{backend:?}");
        let user = h.stored_user(&open_id(member)).await.unwrap();
        assert!(
            !user
                .departments
                .iter()
                .any(|m| m.department_id == department.id),
            "{backend:?}: the member keeps the deleted department"
        );
        let g = h.stored_group(&group).await.unwrap();
        assert!(
            !g.members
                .contains(&directory::model::GroupMember::Department(
                    department.id.clone()
                )),
            "{backend:?}: the group keeps the deleted department"
        );

        park_and_approve(&h, ObjectKind::User, &open_id(member)).await;
        let user = h.stored_user(&open_id(member)).await.unwrap();
        assert!(user.deleted_at.is_some(), "{backend:?}");
        let g = h.stored_group(&group).await.unwrap();
        assert!(
            !g.members
                .contains(&directory::model::GroupMember::User(user.id.clone())),
            "{backend:?}: the group keeps the deleted user"
        );
        let kinds: Vec<ChangeKind> = h
            .change_log()
            .await
            .iter()
            .rev()
            .take(4)
            .map(|c| c.kind)
            .collect();
        assert!(
            kinds.contains(&ChangeKind::GroupMembersChanged),
            "{backend:?}: {kinds:?}"
        );
    }
}

#[tokio::test]
async fn a_department_deleted_by_event_detaches_all_of_its_many_members() {
    const MEMBERS: usize = 10_050;
    for backend in Backend::all() {
        let mut h = Harness::with(backend, org(), |_| {}, no_thresholds()).await;
        h.import().await;
        // Feishu deletes only empty departments; orgsync may still hold members (a missed
        // event): put many there directly, as a stale store would hold them.
        let od = h.emu.state().with_tenant(|t| {
            t.departments
                .values()
                .find(|d| {
                    d.parent != "0"
                        && !t
                            .departments
                            .values()
                            .any(|c| c.parent == d.open_department_id)
                })
                .unwrap()
                .open_department_id
                .clone()
        });
        let department = h.stored_department(&od).await.unwrap();
        let mut batch = ApplyBatch::new(h.pool.clone(), ChangeSource::Admin);
        let now = directory::ids::now_ms();
        for i in 0..MEMBERS {
            batch.writes.push(Write::PutUser {
                user: directory::model::User {
                    id: directory::ids::UserId::from(format!("stale-{i:05}").as_str()),
                    pool_id: h.pool.clone(),
                    profile: directory::model::UserProfile {
                        name: Some(format!("Stale {i}")),
                        ..Default::default()
                    }
                    .into(),
                    status: directory::model::UserStatus::Active,
                    departments: vec![directory::model::Membership {
                        department_id: department.id.clone(),
                        primary: true,
                        user_order: None,
                        department_order: None,
                    }],
                    in_root: false,
                    manager_id: None,
                    version: 0,
                    created_at: now,
                    updated_at: now,
                    deleted_at: None,
                },
                change: ChangeKind::UserCreated,
                expected_version: Some(0),
            });
        }
        h.store.apply(batch).await.unwrap();
        // Empty it in the emulator (its real members move), then delete it there.
        h.mutate(|t| {
            let target = t
                .departments
                .keys()
                .find(|d| **d != od)
                .cloned()
                .unwrap_or_default();
            let keys: Vec<UserKey> = t
                .users
                .values()
                .filter(|u| u.memberships.iter().any(|m| m.department == od))
                .map(|u| u.key)
                .collect();
            let mut changes = Vec::new();
            for k in keys {
                changes.extend(t.move_user(k, std::slice::from_ref(&target))?);
            }
            Ok(changes)
        });
        h.mutate(|t| t.delete_department(&od));
        h.deliver(1, None, None).await;
        h.settle().await;
        let department = h.stored_department(&od).await.unwrap();
        assert!(department.deleted_at.is_some(), "{backend:?}");
        let still = h
            .store
            .department_members(&h.pool, &department.id)
            .await
            .unwrap();
        assert!(
            still.is_empty(),
            "{backend:?}: {} members kept it",
            still.len()
        );
        let detached = h
            .change_log()
            .await
            .iter()
            .filter(|c| {
                c.kind == ChangeKind::UserDepartmentsChanged && c.object_id.starts_with("stale-")
            })
            .count();
        assert_eq!(detached, MEMBERS, "{backend:?}");
    }
}

#[tokio::test]
async fn a_batch_gives_the_same_result_as_its_events_one_by_one() {
    for backend in Backend::all() {
        let mut one_by_one = Harness::with(backend, org(), |_| {}, no_thresholds()).await;
        let mut batched = Harness::with(backend, org(), |_| {}, no_thresholds()).await;
        one_by_one.worker = directory::worker::Worker::new(
            one_by_one.engine.clone(),
            directory::worker::WorkerConfig {
                batch: 1,
                ..worker_config()
            },
        );
        let mut from = Vec::new();
        for h in [&mut one_by_one, &mut batched] {
            h.import().await;
            h.delivered = h.emu.state().events.emitted().len();
            from.push(last_seq(h).await);
            // The same mutations on both (the same seed on the same tenant); several touch
            // one object, so a batch holds several events of it.
            let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(5);
            for _ in 0..100 {
                // No scope changes: their reconciliation would race the events.
                h.mutate(|t| {
                    Ok(t.random_mutation_of(emulator::mutate::MutationProfile::Ordinary, &mut rng))
                });
            }
            h.deliver(2, Some(11), None).await;
        }
        let stats = one_by_one.settle().await;
        batched.settle().await;
        let reasons: Vec<String> = one_by_one
            .inbox()
            .await
            .iter()
            .filter(|e| e.state == directory::store::InboxState::Ignored)
            .map(|e| {
                format!(
                    "{}: {}",
                    e.event_type,
                    e.outcome.clone().unwrap_or_default()
                )
            })
            .collect();
        assert!(stats.applied > 60, "{backend:?}: {stats:?} {reasons:#?}");
        let a = written_since(&one_by_one, from[0]).await;
        let b = written_since(&batched, from[1]).await;
        assert_eq!(
            a.kinds, b.kinds,
            "{backend:?}: change kinds (left: one by one)"
        );
        assert_eq!(
            a.objects, b.objects,
            "{backend:?}: objects (left: one by one)"
        );
        assert!(batched.compare().await.is_empty(), "{backend:?}");
    }
}
