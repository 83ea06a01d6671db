//! Test helpers shared by the planner's and the comparison's tests: Feishu fixtures and an
//! in-memory store that checks what the real one would refuse.

use std::collections::BTreeMap;

use feishu::model as fs;

use super::*;
use crate::model::{DeletionThreshold, Department, ExternalRef, Group, GroupMember};
use crate::snapshot::{Completeness, ScopeKind, SnapshotGroup, SnapshotUser};
use crate::store::ChangeKind;

pub const CONNECTION: &str = "conn-1";
pub const POOL: &str = "pool-1";
pub const NOW: Millis = 1_700_000_000_000;

/// Sequential ids, unique across the test binary (plans build on earlier states).
pub fn counter() -> impl FnMut() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    || format!("id{:06}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Thresholds that never park.
pub fn no_threshold() -> ConnectionSettings {
    ConnectionSettings {
        deletion_threshold: DeletionThreshold {
            max_fraction: 1.0,
            max_count: u64::MAX,
        },
        ..ConnectionSettings::default()
    }
}

pub fn plan_with(
    snapshot: &Snapshot,
    state: &ConnectionState,
    settings: &ConnectionSettings,
) -> Plan {
    let mut ids = counter();
    plan(
        snapshot,
        state,
        &ConnectionId::from(CONNECTION),
        &PoolId::from(POOL),
        settings,
        NOW,
        &mut ids,
    )
}

/// Plans without thresholds and applies.
pub fn sync(snapshot: &Snapshot, state: &ConnectionState) -> (Plan, ConnectionState) {
    let p = plan_with(snapshot, state, &no_threshold());
    let next = apply_plan(state, &p);
    (p, next)
}

pub fn apply_plan(state: &ConnectionState, plan: &Plan) -> ConnectionState {
    let writes: Vec<Write> = plan.writes().cloned().collect();
    apply_writes_in_memory(state, &writes)
}

/// Applies writes one by one as the store would, panicking on what it must refuse or what
/// would break the plan's promises: a stale `expected_version`, a version the planner
/// guessed wrong, a reference to an object that does not exist yet, a relation without
/// its object.
pub fn apply_writes_in_memory(state: &ConnectionState, writes: &[Write]) -> ConnectionState {
    let mut users: BTreeMap<String, User> = state
        .users
        .iter()
        .map(|u| (u.id.0.clone(), u.clone()))
        .collect();
    let mut departments: BTreeMap<String, Department> = state
        .departments
        .iter()
        .map(|d| (d.id.0.clone(), d.clone()))
        .collect();
    let mut groups: BTreeMap<String, Group> = state
        .groups
        .iter()
        .map(|g| (g.id.0.clone(), g.clone()))
        .collect();
    let mut refs: BTreeMap<(String, ObjectKind, String), ExternalRef> = state
        .refs
        .iter()
        .map(|r| {
            (
                (r.connection_id.0.clone(), r.kind, r.external_id.clone()),
                r.clone(),
            )
        })
        .collect();

    fn check_version(what: &str, prev: Option<i64>, expected: Option<i64>, claimed: i64) {
        let prev = prev.unwrap_or(0);
        if let Some(e) = expected {
            assert_eq!(e, prev, "{what}: expected_version {e}, stored {prev}");
        }
        assert_eq!(claimed, prev + 1, "{what}: planner's version");
    }

    for w in writes {
        match w {
            Write::PutUser {
                user,
                expected_version,
                ..
            } => {
                let prev = users.get(&user.id.0);
                check_version(
                    &format!("user {}", user.id),
                    prev.map(|p| p.version),
                    *expected_version,
                    user.version,
                );
                for m in &user.departments {
                    assert!(
                        departments.contains_key(&m.department_id.0),
                        "user {} references department {} before it exists",
                        user.id,
                        m.department_id
                    );
                }
                if let Some(m) = &user.manager_id {
                    assert!(
                        users.contains_key(&m.0),
                        "user {} references manager {m} before it exists",
                        user.id
                    );
                }
                assert!(
                    user.departments.iter().filter(|m| m.primary).count() <= 1,
                    "user {} has several primary departments",
                    user.id
                );
                let mut u = user.clone();
                if let Some(p) = prev {
                    u.created_at = p.created_at;
                }
                users.insert(u.id.0.clone(), u);
            }
            Write::PutDepartment {
                department,
                expected_version,
                ..
            } => {
                let prev = departments.get(&department.id.0);
                check_version(
                    &format!("department {}", department.id),
                    prev.map(|p| p.version),
                    *expected_version,
                    department.version,
                );
                if let Some(p) = &department.parent_id {
                    assert!(
                        departments.contains_key(&p.0),
                        "department {} references parent {p} before it exists",
                        department.id
                    );
                }
                for l in &department.leaders {
                    assert!(
                        users.contains_key(&l.user_id.0),
                        "department {} references leader {} before it exists",
                        department.id,
                        l.user_id
                    );
                }
                let mut d = department.clone();
                if let Some(p) = prev {
                    d.created_at = p.created_at;
                }
                departments.insert(d.id.0.clone(), d);
            }
            Write::PutGroup {
                group,
                expected_version,
                ..
            } => {
                let prev = groups.get(&group.id.0);
                check_version(
                    &format!("group {}", group.id),
                    prev.map(|p| p.version),
                    *expected_version,
                    group.version,
                );
                for m in &group.members {
                    let exists = match m {
                        GroupMember::User(u) => users.contains_key(&u.0),
                        GroupMember::Department(d) => departments.contains_key(&d.0),
                    };
                    assert!(
                        exists,
                        "group {} references {m:?} before it exists",
                        group.id
                    );
                }
                let mut w = group.members.clone();
                w.sort();
                w.dedup();
                assert_eq!(w, group.members, "group members sorted and unique");
                let mut g = group.clone();
                if let Some(p) = prev {
                    g.created_at = p.created_at;
                }
                groups.insert(g.id.0.clone(), g);
            }
            Write::PutExternalRef(r) => {
                let exists = match r.kind {
                    ObjectKind::User => users.contains_key(&r.object_id),
                    ObjectKind::Department => departments.contains_key(&r.object_id),
                    ObjectKind::Group => groups.contains_key(&r.object_id),
                };
                assert!(
                    exists,
                    "relation {} written before its object",
                    r.external_id
                );
                refs.insert(
                    (r.connection_id.0.clone(), r.kind, r.external_id.clone()),
                    r.clone(),
                );
            }
        }
    }
    ConnectionState {
        users: users.into_values().collect(),
        departments: departments.into_values().collect(),
        groups: groups.into_values().collect(),
        refs: refs.into_values().collect(),
    }
}

// ---- Feishu fixtures --------------------------------------------------------------

pub fn active() -> Option<fs::UserStatus> {
    Some(fs::UserStatus {
        is_frozen: Some(false),
        is_resigned: Some(false),
        is_activated: Some(true),
        is_exited: Some(false),
        is_unjoin: Some(false),
    })
}

pub fn resigned() -> Option<fs::UserStatus> {
    Some(fs::UserStatus {
        is_resigned: Some(true),
        ..active().unwrap_or_default()
    })
}

pub fn frozen() -> Option<fs::UserStatus> {
    Some(fs::UserStatus {
        is_frozen: Some(true),
        ..active().unwrap_or_default()
    })
}

pub fn dept(od: &str, parent: &str, name: &str) -> fs::Department {
    fs::Department {
        name: Some(name.to_owned()),
        parent_department_id: Some(parent.to_owned()),
        department_id: Some(format!("D{}", od.trim_start_matches("od-"))),
        open_department_id: Some(od.to_owned()),
        order: Some(10),
        leaders: Some(Vec::new()),
        ..Default::default()
    }
}

pub fn with_leader(mut d: fs::Department, open_id: &str) -> fs::Department {
    d.leaders = Some(vec![fs::DepartmentLeader {
        leader_type: Some(1),
        leader_id: Some(open_id.to_owned()),
    }]);
    d.leader_user_id = Some(open_id.to_owned());
    d
}

pub fn person(open_id: &str, name: &str, departments: &[&str]) -> fs::User {
    let tail = open_id.trim_start_matches("ou_");
    fs::User {
        open_id: Some(open_id.to_owned()),
        union_id: Some(format!("on_{tail}")),
        user_id: Some(format!("u{tail}")),
        name: Some(name.to_owned()),
        email: Some(format!("{tail}@example.com")),
        status: active(),
        department_ids: Some(departments.iter().map(|d| (*d).to_owned()).collect()),
        leader_user_id: Some(String::new()),
        ..Default::default()
    }
}

pub fn listed(user: fs::User) -> SnapshotUser {
    let listed_in = user.department_ids.clone().unwrap_or_default();
    SnapshotUser { user, listed_in }
}

pub fn group(id: &str, name: &str, users: &[&str], departments: &[&str]) -> SnapshotGroup {
    SnapshotGroup {
        group: fs::Group {
            id: Some(id.to_owned()),
            name: Some(name.to_owned()),
            kind: Some(1),
            group_id: Some(format!("G{id}")),
            ..Default::default()
        },
        users: users.iter().map(|u| (*u).to_owned()).collect(),
        departments: departments.iter().map(|d| (*d).to_owned()).collect(),
        members_complete: true,
    }
}

pub fn snapshot(
    departments: Vec<fs::Department>,
    users: Vec<fs::User>,
    groups: Vec<SnapshotGroup>,
) -> Snapshot {
    let mut s = Snapshot::empty(ScopeKind::All);
    for d in departments {
        let key = d.open_department_id.clone().unwrap_or_default();
        s.departments.insert(key, d);
    }
    for u in users {
        let key = u.open_id.clone().unwrap_or_default();
        s.users.insert(key, listed(u));
    }
    for g in groups {
        let key = g.group.id.clone().unwrap_or_default();
        s.groups.insert(key, g);
    }
    s.completeness = Completeness::FULL;
    s
}

// ---- reading the results ---------------------------------------------------------

pub fn user_by<'s>(state: &'s ConnectionState, open_id: &str) -> &'s User {
    let r = state
        .refs
        .iter()
        .find(|r| r.kind == ObjectKind::User && r.external_id == open_id)
        .unwrap_or_else(|| panic!("no relation for {open_id}"));
    state
        .users
        .iter()
        .find(|u| u.id.0 == r.object_id)
        .unwrap_or_else(|| panic!("no user for {open_id}"))
}

pub fn department_by<'s>(state: &'s ConnectionState, od: &str) -> &'s Department {
    let r = state
        .refs
        .iter()
        .find(|r| r.kind == ObjectKind::Department && r.external_id == od)
        .unwrap_or_else(|| panic!("no relation for {od}"));
    state
        .departments
        .iter()
        .find(|d| d.id.0 == r.object_id)
        .unwrap_or_else(|| panic!("no department for {od}"))
}

pub fn group_by<'s>(state: &'s ConnectionState, id: &str) -> &'s Group {
    let r = state
        .refs
        .iter()
        .find(|r| r.kind == ObjectKind::Group && r.external_id == id)
        .unwrap_or_else(|| panic!("no relation for {id}"));
    state
        .groups
        .iter()
        .find(|g| g.id.0 == r.object_id)
        .unwrap_or_else(|| panic!("no group for {id}"))
}

pub fn ref_of<'s>(state: &'s ConnectionState, kind: ObjectKind, ext: &str) -> &'s ExternalRef {
    state
        .refs
        .iter()
        .find(|r| r.kind == kind && r.external_id == ext)
        .unwrap_or_else(|| panic!("no relation for {ext}"))
}

/// The steps about one object, as `(action, result)`.
pub fn steps_of(plan: &Plan, ext: &str) -> Vec<(SyncAction, ActionResult)> {
    plan.steps
        .iter()
        .filter(|s| s.external_id == ext)
        .map(|s| (s.action, s.result))
        .collect()
}

pub fn step<'p>(plan: &'p Plan, ext: &str, action: SyncAction) -> &'p PlannedStep {
    plan.steps
        .iter()
        .find(|s| s.external_id == ext && s.action == action)
        .unwrap_or_else(|| panic!("no {action:?} step for {ext}: {:#?}", steps_of(plan, ext)))
}

/// The change kinds of a step's object puts.
pub fn changes(step: &PlannedStep) -> Vec<ChangeKind> {
    step.writes
        .iter()
        .filter_map(|w| match w {
            Write::PutUser { change, .. }
            | Write::PutDepartment { change, .. }
            | Write::PutGroup { change, .. } => Some(*change),
            Write::PutExternalRef(_) => None,
        })
        .collect()
}

pub fn all_unchanged(plan: &Plan) -> bool {
    plan.steps
        .iter()
        .all(|s| s.action == SyncAction::Unchanged && s.writes.is_empty())
}
