use std::time::Instant;

use feishu::model as fs;

use super::testing::*;
use super::*;
use crate::compare::{Difference, compare};
use std::collections::HashSet;

use crate::model::{DeletionThreshold, GroupKind, LeaderKind, UserStatus};
use crate::snapshot::{Completeness, LeaverCheck, SnapshotGroup, SnapshotUser};
use crate::store::ChangeKind;

use SyncAction::*;

/// A small organisation exercising every ordering rule: a department whose key sorts
/// before its parent's, a leader and a manager created later in the plan, a reporting
/// cycle, a root user, a frozen user, a group of users and a department.
fn org() -> Snapshot {
    let mut lead = person("ou_lead", "Lena", &["od-a"]);
    lead.leader_user_id = Some("ou_zed".into());
    let mut ann = person("ou_ann", "Ann", &["od-b", "od-0c"]);
    ann.leader_user_id = Some("ou_lead".into());
    ann.orders = Some(vec![
        fs::UserOrder {
            department_id: Some("od-b".into()),
            user_order: Some(1),
            department_order: Some(2),
            is_primary_dept: Some(false),
        },
        fs::UserOrder {
            department_id: Some("od-0c".into()),
            user_order: Some(3),
            department_order: Some(1),
            is_primary_dept: Some(true),
        },
    ]);
    let mut x = person("ou_x", "Xavier", &["od-s"]);
    x.leader_user_id = Some("ou_y".into());
    let mut y = person("ou_y", "Yara", &["od-s"]);
    y.leader_user_id = Some("ou_x".into());
    let mut frozen_user = person("ou_frozen", "Fred", &["od-s"]);
    frozen_user.status = frozen();
    snapshot(
        vec![
            with_leader(dept("od-a", "0", "Engineering"), "ou_lead"),
            dept("od-b", "od-a", "Backend"),
            dept("od-0c", "od-b", "Storage"),
            dept("od-s", "0", "Sales"),
        ],
        vec![
            lead,
            ann,
            person("ou_root", "Ron", &["0"]),
            x,
            y,
            person("ou_zed", "Zed", &["od-s"]),
            frozen_user,
        ],
        vec![group("g1", "Ops", &["ou_ann", "ou_lead"], &["od-s"])],
    )
}

fn imported() -> ConnectionState {
    sync(&org(), &ConnectionState::default()).1
}

fn count(plan: &Plan, action: SyncAction, result: ActionResult) -> usize {
    plan.steps
        .iter()
        .filter(|s| s.action == action && s.result == result)
        .count()
}

fn position(plan: &Plan, ext: &str, action: SyncAction) -> usize {
    plan.steps
        .iter()
        .position(|s| s.external_id == ext && s.action == action)
        .unwrap_or_else(|| panic!("no {action:?} for {ext}"))
}

#[test]
fn first_import_creates_everything_in_dependency_order_then_nothing_changes() {
    let snap = org();
    let (p, state) = sync(&snap, &ConnectionState::default());
    assert_eq!(p.verdict_hint, Verdict::Complete);
    assert_eq!(count(&p, CreateDepartment, ActionResult::Applied), 4);
    assert_eq!(count(&p, CreateUser, ActionResult::Applied), 7);
    assert_eq!(count(&p, CreateGroup, ActionResult::Applied), 1);
    // od-a's leader is created with the users, so the leader is set after them.
    assert_eq!(count(&p, UpdateDepartmentLeader, ActionResult::Applied), 1);
    assert!(position(&p, "od-a", UpdateDepartmentLeader) > position(&p, "ou_lead", CreateUser));
    // The reporting cycle is closed by one later manager update.
    assert_eq!(count(&p, UpdateUser, ActionResult::Applied), 1);
    assert_eq!(p.steps.len(), 4 + 7 + 1 + 1 + 1);
    // Parents before children, whatever the key order; managers before reports.
    assert!(position(&p, "od-a", CreateDepartment) < position(&p, "od-b", CreateDepartment));
    assert!(position(&p, "od-b", CreateDepartment) < position(&p, "od-0c", CreateDepartment));
    assert!(position(&p, "ou_zed", CreateUser) < position(&p, "ou_lead", CreateUser));
    assert!(position(&p, "ou_lead", CreateUser) < position(&p, "ou_ann", CreateUser));
    assert!(position(&p, "ou_ann", CreateUser) < position(&p, "g1", CreateGroup));
    // Every created object comes with its sync relation.
    let create = step(&p, "ou_ann", CreateUser);
    assert_eq!(changes(create), [ChangeKind::UserCreated]);
    assert!(matches!(&create.writes[1], Write::PutExternalRef(r)
        if r.union_id.as_deref() == Some("on_ann") && r.custom_id.as_deref() == Some("uann")));
    assert_eq!(
        ref_of(&state, ObjectKind::Department, "od-b")
            .custom_id
            .as_deref(),
        Some("Db")
    );

    let ann = user_by(&state, "ou_ann");
    assert_eq!(ann.manager_id, Some(user_by(&state, "ou_lead").id.clone()));
    let primary: Vec<_> = ann.departments.iter().filter(|m| m.primary).collect();
    assert_eq!(primary[0].department_id, department_by(&state, "od-0c").id);
    assert!(user_by(&state, "ou_root").in_root);
    assert_eq!(user_by(&state, "ou_frozen").status, UserStatus::Frozen);
    assert_eq!(
        user_by(&state, "ou_x").manager_id,
        Some(user_by(&state, "ou_y").id.clone())
    );
    assert_eq!(
        user_by(&state, "ou_y").manager_id,
        Some(user_by(&state, "ou_x").id.clone())
    );
    assert_eq!(
        department_by(&state, "od-0c").parent_id,
        Some(department_by(&state, "od-b").id.clone())
    );
    assert_eq!(department_by(&state, "od-a").leaders.len(), 1);
    assert_eq!(group_by(&state, "g1").members.len(), 3);

    assert_eq!(compare(&snap, &state), vec![]);
    let again = plan_with(&snap, &state, &no_threshold());
    assert!(all_unchanged(&again), "{:#?}", again.steps);
    assert_eq!(again.steps.len(), 4 + 7 + 1);
    assert_eq!(again.counts()["Unchanged"]["applied"], 12);
}

#[test]
fn every_kind_of_change_is_named_and_logged_with_its_change_kind() {
    let state = imported();
    let mut snap = org();
    {
        let ann = &mut snap.users.get_mut("ou_ann").unwrap().user;
        ann.name = Some("Ann B.".into());
        ann.email = Some("ann.b@example.com".into());
        ann.union_id = Some("on_ann_2".into());
        ann.user_id = Some("ann.b".into());
    }
    {
        let root = snap.users.get_mut("ou_root").unwrap();
        root.user.department_ids = Some(vec!["od-s".into()]);
    }
    snap.users.get_mut("ou_zed").unwrap().user.status = frozen();
    snap.users.get_mut("ou_frozen").unwrap().user.status = active();
    {
        let b = snap.departments.get_mut("od-b").unwrap();
        b.name = Some("Platform".into());
        b.parent_department_id = Some("od-s".into());
    }
    *snap.departments.get_mut("od-a").unwrap() =
        with_leader(dept("od-a", "0", "Engineering"), "ou_zed");
    {
        let g = snap.groups.get_mut("g1").unwrap();
        g.group.name = Some("Operations".into());
        g.users.insert("ou_root".into());
        g.departments.clear();
    }

    let p = plan_with(&snap, &state, &no_threshold());
    let s = step(&p, "ou_ann", UpdateUser);
    assert_eq!(s.reason.as_deref(), Some("name, email"));
    assert_eq!(changes(s), [ChangeKind::UserUpdated]);
    let s = step(&p, "ou_ann", UpdateUserIdentifier);
    assert_eq!(
        s.reason.as_deref(),
        Some("union_id on_ann → on_ann_2, user_id uann → ann.b")
    );
    assert_eq!(changes(s), [ChangeKind::UserIdentifierChanged]);
    assert_eq!(
        steps_of(&p, "ou_ann"),
        [
            (UpdateUserIdentifier, ActionResult::Applied),
            (UpdateUser, ActionResult::Applied)
        ]
    );
    let s = step(&p, "ou_root", ChangeUserDepartment);
    assert_eq!(s.reason.as_deref(), Some("joined od-s; left root"));
    assert_eq!(changes(s), [ChangeKind::UserDepartmentsChanged]);
    let s = step(&p, "ou_zed", DisableUser);
    assert_eq!(s.reason.as_deref(), Some("status active → frozen"));
    assert_eq!(changes(s), [ChangeKind::UserDisabled]);
    let s = step(&p, "ou_frozen", UpdateUser);
    assert_eq!(s.reason.as_deref(), Some("status frozen → active"));
    // Renamed and moved: two steps, each with its own change kind, versions chained.
    assert_eq!(
        steps_of(&p, "od-b"),
        [
            (UpdateDepartment, ActionResult::Applied),
            (MoveDepartment, ActionResult::Applied)
        ]
    );
    assert_eq!(
        changes(step(&p, "od-b", UpdateDepartment)),
        [ChangeKind::DepartmentUpdated]
    );
    let s = step(&p, "od-b", MoveDepartment);
    assert_eq!(changes(s), [ChangeKind::DepartmentMoved]);
    assert_eq!(s.reason.as_deref(), Some("parent od-a → od-s"));
    let s = step(&p, "od-a", UpdateDepartmentLeader);
    assert_eq!(s.reason.as_deref(), Some("leaders ou_lead → ou_zed"));
    assert_eq!(changes(s), [ChangeKind::DepartmentLeaderChanged]);
    // An existing leader is set in the department phase, before the users.
    assert!(position(&p, "od-a", UpdateDepartmentLeader) < position(&p, "ou_ann", UpdateUser));
    assert_eq!(step(&p, "g1", UpdateGroup).reason.as_deref(), Some("name"));
    assert_eq!(
        step(&p, "g1", AddGroupMember).reason.as_deref(),
        Some("ou_root")
    );
    assert_eq!(
        step(&p, "g1", RemoveGroupMember).reason.as_deref(),
        Some("od-s")
    );
    assert_eq!(
        changes(step(&p, "g1", RemoveGroupMember)),
        [ChangeKind::GroupMembersChanged]
    );
    assert_eq!(
        steps_of(&p, "ou_lead"),
        [(Unchanged, ActionResult::Applied)]
    );
    assert_eq!(steps_of(&p, "od-0c"), [(Unchanged, ActionResult::Applied)]);

    let next = apply_plan(&state, &p);
    assert_eq!(compare(&snap, &next), vec![]);
    assert_eq!(
        ref_of(&next, ObjectKind::User, "ou_ann")
            .union_id
            .as_deref(),
        Some("on_ann_2")
    );
    assert_eq!(user_by(&next, "ou_ann").version, 3);
    assert_eq!(department_by(&next, "od-b").version, 3);
    assert!(all_unchanged(&plan_with(&snap, &next, &no_threshold())));
}

#[test]
fn omitted_fields_are_unknown_not_cleared() {
    let state = imported();
    let mut snap = org();
    for su in snap.users.values_mut() {
        // Permissions revoked: no e-mail, status, departments or user_id any more.
        su.user.email = None;
        su.user.status = None;
        su.user.department_ids = None;
        su.user.orders = None;
        su.user.user_id = None;
        su.user.leader_user_id = None;
    }
    for d in snap.departments.values_mut() {
        d.leaders = None;
        d.leader_user_id = None;
        d.parent_department_id = None;
        d.department_id = None;
    }
    let p = plan_with(&snap, &state, &no_threshold());
    assert!(all_unchanged(&p), "{:#?}", p.steps);
    assert_eq!(compare(&snap, &state), vec![]);
}

#[test]
fn leavers_by_lookup_outcome() {
    let state = imported();
    let mut snap = org();
    for gone in ["ou_ann", "ou_root", "ou_x", "ou_zed", "ou_y"] {
        snap.users.remove(gone);
    }
    let mut ann = person("ou_ann", "Ann", &[]);
    ann.status = resigned();
    ann.department_ids = None;
    snap.leavers.insert(
        "ou_ann".into(),
        LeaverCheck::Resigned {
            user: Box::new(ann),
        },
    );
    snap.leavers.insert(
        "ou_root".into(),
        LeaverCheck::Present {
            user: Box::new(person("ou_root", "Ron", &["od-s", "od-elsewhere"])),
        },
    );
    snap.leavers.insert("ou_x".into(), LeaverCheck::OutOfScope);
    snap.leavers.insert(
        "ou_zed".into(),
        LeaverCheck::Failed {
            error: "HTTP 503".into(),
        },
    );
    // ou_y: absent and never looked up.

    let p = plan_with(&snap, &state, &no_threshold());
    let s = step(&p, "ou_ann", DisableUser);
    assert_eq!(s.result, ActionResult::Applied);
    assert_eq!(
        s.reason.as_deref(),
        Some(
            "status active → resigned (absent from the pull, confirmed by lookup); detached from 2 department(s)"
        )
    );
    assert_eq!(changes(s), [ChangeKind::UserDisabled]);
    let s = step(&p, "ou_root", ChangeUserDepartment);
    assert_eq!(
        s.reason.as_deref(),
        Some(
            "joined od-s; left root; ignored references outside the directory: department od-elsewhere"
        )
    );
    let s = step(&p, "ou_x", DeleteUser);
    assert_eq!(s.result, ActionResult::Applied);
    assert_eq!(changes(s), [ChangeKind::UserDeleted]);
    let s = step(&p, "ou_zed", DeleteUser);
    assert_eq!(s.result, ActionResult::Skipped);
    assert!(s.reason.as_deref().unwrap().contains("HTTP 503"));
    assert!(s.writes.is_empty());
    let s = step(&p, "ou_y", DeleteUser);
    assert_eq!(s.result, ActionResult::Skipped);
    assert!(s.reason.as_deref().unwrap().contains("not looked up"));
    // Deletions come last.
    let first_deletion = p.steps.iter().position(|s| s.action == DeleteUser).unwrap();
    assert!(
        p.steps[first_deletion..]
            .iter()
            .all(|s| s.action.is_deletion())
    );

    let next = apply_plan(&state, &p);
    let ann = user_by(&next, "ou_ann");
    assert_eq!(ann.status, UserStatus::Resigned);
    assert!(ann.departments.is_empty() && ann.deleted_at.is_none());
    let x = user_by(&next, "ou_x");
    assert_eq!(x.deleted_at, Some(NOW));
    assert!(x.departments.is_empty());
    assert_eq!(user_by(&next, "ou_zed").deleted_at, None);
    // ou_x was ou_y's manager and stays a tombstone; ou_y was not looked up.
    let diff = compare(&snap, &next);
    assert_eq!(diff.len(), 1, "{diff:#?}");
    assert!(
        matches!(&diff[0], Difference::ExtraInStore { external_id, .. } if external_id == "ou_y")
    );
    // The resigned user stays a record; a second run changes nothing.
    let again = plan_with(&snap, &next, &no_threshold());
    assert_eq!(again.writes().count(), 0);
    // Later pulls do not look the leaver up again (only live users are): its absence is
    // expected, not an unconfirmed deletion to log on every run.
    let mut later = snap.clone();
    later.leavers.remove("ou_ann");
    let p = plan_with(&later, &next, &no_threshold());
    assert_eq!(steps_of(&p, "ou_ann"), vec![]);
}

#[test]
fn a_partial_snapshot_deletes_nothing_but_still_disables_confirmed_leavers() {
    let state = imported();
    let mut snap = org();
    snap.departments.remove("od-0c");
    snap.groups.clear();
    snap.users.remove("ou_x");
    snap.leavers.insert("ou_x".into(), LeaverCheck::OutOfScope);
    snap.users.remove("ou_y");
    let mut ann = snap.users.remove("ou_ann").unwrap().user;
    ann.status = resigned();
    snap.leavers.insert(
        "ou_ann".into(),
        LeaverCheck::Resigned {
            user: Box::new(ann),
        },
    );
    snap.completeness.users = false;
    let strict = ConnectionSettings {
        deletion_threshold: DeletionThreshold {
            max_fraction: 0.0,
            max_count: 0,
        },
        ..ConnectionSettings::default()
    };
    let p = plan_with(&snap, &state, &strict);
    assert_eq!(p.verdict_hint, Verdict::Partial);
    let partial = "snapshot partial (users incomplete): no deletions";
    for (ext, action) in [
        ("od-0c", DeleteDepartment),
        ("g1", DeleteGroup),
        ("ou_x", DeleteUser),
        ("ou_y", DeleteUser),
    ] {
        let s = step(&p, ext, action);
        assert_eq!(s.result, ActionResult::Skipped, "{ext}");
        assert_eq!(s.reason.as_deref(), Some(partial));
        assert!(s.writes.is_empty());
    }
    assert_eq!(
        step(&p, "ou_ann", DisableUser).result,
        ActionResult::Applied
    );
    let next = apply_plan(&state, &p);
    assert!(next.users.iter().all(|u| u.deleted_at.is_none()));
    assert!(next.departments.iter().all(|d| d.deleted_at.is_none()));
    assert!(next.groups.iter().all(|g| g.deleted_at.is_none()));
    // ann kept her membership of the department that may be gone? No: she resigned.
    assert!(user_by(&next, "ou_ann").departments.is_empty());
}

/// A bigger organisation for threshold arithmetic: `n` leaf departments under one root
/// department, one user in each, one group per department.
fn wide(n: usize) -> Snapshot {
    let mut departments = vec![dept("od-top", "0", "Top")];
    let mut users = Vec::new();
    let mut groups = Vec::new();
    for i in 0..n {
        let od = format!("od-{i:02}");
        departments.push(dept(&od, "od-top", &format!("Team {i}")));
        users.push(person(
            &format!("ou_{i:02}"),
            &format!("User {i}"),
            &["od-top"],
        ));
        groups.push(group(&format!("g{i:02}"), &format!("G{i}"), &[], &[]));
    }
    snapshot(departments, users, groups)
}

#[test]
fn thresholds_park_all_deletions_of_a_type_and_the_rest_applies() {
    let state = sync(&wide(20), &ConnectionState::default()).1;
    let mut snap = wide(20);
    for od in ["od-00", "od-01", "od-02"] {
        snap.departments.remove(od);
    }
    snap.users.remove("ou_00");
    snap.leavers.insert("ou_00".into(), LeaverCheck::OutOfScope);
    snap.groups.remove("g00");
    snap.users.get_mut("ou_05").unwrap().user.name = Some("Renamed".into());

    let settings = ConnectionSettings {
        deletion_threshold: DeletionThreshold {
            max_fraction: 0.5,
            max_count: 2,
        },
        ..ConnectionSettings::default()
    };
    let p = plan_with(&snap, &state, &settings);
    assert_eq!(count(&p, DeleteDepartment, ActionResult::Parked), 3);
    let reason = step(&p, "od-01", DeleteDepartment).reason.clone().unwrap();
    assert!(
        reason.contains("3 department deletions exceed the threshold (at most 2 and at most 50% of 21 live = 10)"),
        "{reason}"
    );
    assert_eq!(step(&p, "ou_00", DeleteUser).result, ActionResult::Applied);
    assert_eq!(step(&p, "g00", DeleteGroup).result, ActionResult::Applied);
    assert_eq!(step(&p, "ou_05", UpdateUser).result, ActionResult::Applied);
    assert!(p.parked().all(|s| s.writes.is_empty()));
    let parked = p.parked_deletions(&JobId::from("job"), NOW);
    assert_eq!(parked.len(), 3);
    assert_eq!(parked[0].kind, ObjectKind::Department);
    assert_eq!(parked[0].state, ParkedState::Pending);
    assert_eq!(p.counts()["DeleteDepartment"]["parked"], 3);

    let next = apply_plan(&state, &p);
    assert!(department_by(&next, "od-01").deleted_at.is_none());
    assert!(user_by(&next, "ou_00").deleted_at.is_some());
    assert_eq!(
        user_by(&next, "ou_05").profile.name.as_deref(),
        Some("Renamed")
    );

    // The fraction alone: 1 of 20 groups is more than 2% of them.
    let fraction = ConnectionSettings {
        deletion_threshold: DeletionThreshold {
            max_fraction: 0.02,
            max_count: 100,
        },
        ..ConnectionSettings::default()
    };
    let mut snap = wide(20);
    snap.groups.remove("g00");
    let p = plan_with(&snap, &state, &fraction);
    assert_eq!(step(&p, "g00", DeleteGroup).result, ActionResult::Parked);
}

#[test]
fn a_deleted_department_detaches_its_members() {
    let state = imported();
    let mut snap = org();
    snap.departments.remove("od-0c");
    // An inconsistent listing still naming it, and a member whose lookup failed.
    let mut storage_only = person("ou_st", "Stu", &["od-0c"]);
    storage_only.leader_user_id = None;
    let (_, state) = {
        let mut first = org();
        first.users.insert("ou_st".into(), listed(storage_only));
        sync(&first, &state)
    };
    snap.leavers.insert(
        "ou_st".into(),
        LeaverCheck::Failed {
            error: "timeout".into(),
        },
    );
    snap.groups.get_mut("g1").unwrap().members_complete = false;
    let p = plan_with(&snap, &state, &no_threshold());
    assert_eq!(
        step(&p, "od-0c", DeleteDepartment).result,
        ActionResult::Applied
    );
    let s = step(&p, "ou_st", ChangeUserDepartment);
    assert_eq!(s.reason.as_deref(), Some("left od-0c (department deleted)"));
    let s = step(&p, "ou_ann", ChangeUserDepartment);
    assert!(
        s.reason.as_deref().unwrap().starts_with("left od-0c"),
        "{:?}",
        s.reason
    );
    let next = apply_plan(&state, &p);
    let storage = department_by(&next, "od-0c").id.clone();
    assert!(
        next.users
            .iter()
            .filter(|u| u.deleted_at.is_none())
            .all(|u| u.departments.iter().all(|m| m.department_id != storage))
    );
    // ann's primary department was Storage: none is primary now (Feishu said so).
    assert!(
        user_by(&next, "ou_ann")
            .departments
            .iter()
            .all(|m| !m.primary)
    );
}

#[test]
fn tombstoned_objects_present_again_are_restored() {
    let state = imported();
    let mut gone = org();
    gone.departments.remove("od-0c");
    gone.groups.clear();
    gone.users.remove("ou_root");
    gone.leavers
        .insert("ou_root".into(), LeaverCheck::OutOfScope);
    {
        let ann = gone.users.get_mut("ou_ann").unwrap();
        ann.user.department_ids = Some(vec!["od-b".into()]);
        ann.user.orders = None;
        ann.listed_in = vec!["od-b".into()];
    }
    let (_, state) = sync(&gone, &state);
    assert!(department_by(&state, "od-0c").deleted_at.is_some());
    assert!(user_by(&state, "ou_root").deleted_at.is_some());
    assert!(group_by(&state, "g1").deleted_at.is_some());
    // Tombstones still absent: nothing to do.
    let p = plan_with(&gone, &state, &no_threshold());
    assert_eq!(p.writes().count(), 0);
    assert!(steps_of(&p, "od-0c").is_empty());

    let back = org();
    let p = plan_with(&back, &state, &no_threshold());
    let s = step(&p, "od-0c", UpdateDepartment);
    assert_eq!(
        s.reason.as_deref(),
        Some("restored: present in Feishu again")
    );
    let s = step(&p, "ou_root", UpdateUser);
    assert_eq!(
        s.reason.as_deref(),
        Some("restored: present in Feishu again")
    );
    assert_eq!(
        step(&p, "ou_root", ChangeUserDepartment).reason.as_deref(),
        Some("joined root")
    );
    let s = step(&p, "g1", UpdateGroup);
    assert_eq!(
        s.reason.as_deref(),
        Some("restored: present in Feishu again")
    );
    let next = apply_plan(&state, &p);
    assert_eq!(compare(&back, &next), vec![]);
    assert!(next.users.iter().all(|u| u.deleted_at.is_none()));
}

#[test]
fn bad_records_fail_alone() {
    let mut snap = org();
    // A parent cycle, a department under it, a user in it.
    snap.departments
        .insert("od-p".into(), dept("od-p", "od-q", "P"));
    snap.departments
        .insert("od-q".into(), dept("od-q", "od-p", "Q"));
    snap.departments
        .insert("od-r".into(), dept("od-r", "od-q", "R"));
    snap.users
        .insert("ou_c".into(), listed(person("ou_c", "Cy", &["od-r"])));
    snap.groups
        .get_mut("g1")
        .unwrap()
        .users
        .insert("ou_c".into());
    // A first-level department of a partial scope: its parent is not readable.
    snap.departments
        .insert("od-seed".into(), dept("od-seed", "od-hidden", "Seed"));

    let (p, state) = sync(&snap, &ConnectionState::default());
    let s = step(&p, "od-p", CreateDepartment);
    assert_eq!(s.result, ActionResult::Failed);
    assert_eq!(
        s.reason.as_deref(),
        Some("parent cycle in the snapshot: od-p → od-q → od-p")
    );
    let s = step(&p, "od-r", CreateDepartment);
    assert_eq!(s.result, ActionResult::Failed);
    assert!(
        s.reason
            .as_deref()
            .unwrap()
            .starts_with("ancestor od-q is in a parent cycle")
    );
    let s = step(&p, "ou_c", CreateUser);
    assert_eq!(s.result, ActionResult::Failed);
    assert!(
        s.reason
            .as_deref()
            .unwrap()
            .starts_with("department od-r could not be planned")
    );
    let s = step(&p, "od-seed", CreateDepartment);
    assert_eq!(s.result, ActionResult::Applied);
    assert_eq!(
        s.reason.as_deref(),
        Some("ignored references outside the directory: parent od-hidden")
    );
    assert!(
        step(&p, "g1", CreateGroup)
            .reason
            .as_deref()
            .unwrap()
            .contains("member user ou_c")
    );
    assert_eq!(count(&p, CreateUser, ActionResult::Applied), 7);
    assert_eq!(department_by(&state, "od-seed").parent_id, None);
    let diff: Vec<String> = compare(&snap, &state)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        diff,
        [
            "department od-p (P): in Feishu, missing in the store",
            "department od-q (Q): in Feishu, missing in the store",
            "department od-r (R): in Feishu, missing in the store",
            "user ou_c (Cy): in Feishu, missing in the store",
        ]
    );
}

#[test]
fn department_leaders_and_group_kinds_round_trip() {
    let mut snap = org();
    let a = snap.departments.get_mut("od-a").unwrap();
    a.leaders = Some(vec![
        fs::DepartmentLeader {
            leader_type: Some(1),
            leader_id: Some("ou_lead".into()),
        },
        fs::DepartmentLeader {
            leader_type: Some(2),
            leader_id: Some("ou_ann".into()),
        },
    ]);
    snap.groups.get_mut("g1").unwrap().group.kind = Some(2);
    let (_, state) = sync(&snap, &ConnectionState::default());
    let a = department_by(&state, "od-a");
    assert_eq!(a.leaders.len(), 2);
    assert_eq!(a.leaders[1].kind, LeaderKind::Deputy);
    assert_eq!(group_by(&state, "g1").kind, GroupKind::Dynamic);
    assert_eq!(compare(&snap, &state), vec![]);
}

#[test]
fn log_entries_carry_the_step() {
    let (p, _) = sync(&org(), &ConnectionState::default());
    let e = p.steps[0].log_entry(&JobId::from("j"), 5);
    assert_eq!(e.action, CreateDepartment);
    assert_eq!(e.result, ActionResult::Applied);
    assert_eq!(e.external_id, p.steps[0].external_id);
    assert_eq!(e.object_id, p.steps[0].object_id);
    assert_eq!(e.seq, 0);
    assert_eq!(e.at, 5);
}

// ---- scale ---------------------------------------------------------------------------

/// `users` users in `departments` departments (a tree of fan-out 8), managers in chains.
fn large(users: usize, departments: usize) -> Snapshot {
    let mut s = snapshot(Vec::new(), Vec::new(), Vec::new());
    for i in 0..departments {
        let parent = if i == 0 {
            "0".to_owned()
        } else {
            format!("od-{}", (i - 1) / 8)
        };
        let od = format!("od-{i}");
        s.departments
            .insert(od.clone(), dept(&od, &parent, &format!("D{i}")));
    }
    for i in 0..users {
        let d1 = format!("od-{}", i % departments);
        let d2 = format!("od-{}", (i * 7) % departments);
        let mut u = person(&format!("ou_{i}"), &format!("User {i}"), &[&d1, &d2]);
        if i % 10 != 0 {
            u.leader_user_id = Some(format!("ou_{}", i - i % 10));
        }
        s.users.insert(
            format!("ou_{i}"),
            SnapshotUser {
                listed_in: vec![d1, d2],
                user: u,
            },
        );
    }
    for g in 0..20 {
        let members = (0..users).step_by(97).skip(g).map(|i| format!("ou_{i}"));
        let mut sg = group(&format!("g{g}"), "G", &[], &[]);
        sg.users = members.collect();
        s.groups.insert(format!("g{g}"), sg);
    }
    s
}

/// In a debug build this only shows it completes. For timings:
/// `PLAN_BENCH=1 cargo test --release -p directory plans_100k -- --nocapture`.
#[test]
fn plans_100k_users() {
    let snap = large(100_000, 5_000);
    let started = Instant::now();
    let p = plan_with(&snap, &ConnectionState::default(), &no_threshold());
    let first = started.elapsed();
    assert_eq!(count(&p, CreateUser, ActionResult::Applied), 100_000);
    assert_eq!(count(&p, CreateDepartment, ActionResult::Applied), 5_000);
    let state = apply_plan(&ConnectionState::default(), &p);
    let started = Instant::now();
    let again = plan_with(&snap, &state, &no_threshold());
    let second = started.elapsed();
    if std::env::var("PLAN_BENCH").is_ok() {
        // On-CPU time of this thread, less disturbed by a busy machine than wall time.
        let cpu = || {
            std::fs::read_to_string("/proc/thread-self/schedstat")
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
                .map_or(0.0, |ns| ns as f64 / 1e6)
        };
        for _ in 0..5 {
            let (c, started) = (cpu(), Instant::now());
            let p = plan_with(&snap, &state, &no_threshold());
            eprintln!(
                "reconcile {:?} wall, {:.0} ms cpu",
                started.elapsed(),
                cpu() - c
            );
            drop(p);
            let (c, started) = (cpu(), Instant::now());
            let p = plan_with(&snap, &ConnectionState::default(), &no_threshold());
            eprintln!(
                "import {:?} wall, {:.0} ms cpu",
                started.elapsed(),
                cpu() - c
            );
            drop(p);
        }
    }
    assert!(all_unchanged(&again));
    eprintln!("planning 100k users / 5k departments: import {first:?}, reconcile {second:?}");
}

// ---- properties ------------------------------------------------------------------------

mod property {
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    const DEPARTMENTS: usize = 8;
    const USERS: usize = 14;
    const GROUPS: usize = 4;

    fn od(i: usize) -> String {
        format!("od-{i}")
    }
    fn ou(i: usize) -> String {
        format!("ou_{i}")
    }

    fn maybe<T>(rng: &mut StdRng, p: f64, v: impl FnOnce(&mut StdRng) -> T) -> Option<T> {
        if rng.random_bool(p) {
            Some(v(rng))
        } else {
            None
        }
    }

    fn pick<'s>(rng: &mut StdRng, items: &'s [&'s str]) -> String {
        items[rng.random_range(0..items.len())].to_owned()
    }

    fn random_user(rng: &mut StdRng, i: usize, present: &[usize]) -> SnapshotUser {
        let mut departments: Vec<String> = present
            .iter()
            .filter(|_| rng.random_bool(0.3))
            .map(|d| od(*d))
            .collect();
        if rng.random_bool(0.2) {
            departments.push("0".into());
        }
        if rng.random_bool(0.1) {
            departments.push(od(rng.random_range(0..DEPARTMENTS + 2)));
        }
        let status = maybe(rng, 0.8, |r| fs::UserStatus {
            is_frozen: Some(r.random_bool(0.15)),
            is_resigned: Some(r.random_bool(0.08)),
            is_activated: Some(true),
            is_exited: Some(r.random_bool(0.05)),
            is_unjoin: Some(r.random_bool(0.05)),
        });
        let orders = if rng.random_bool(0.4) {
            let mut orders = Vec::new();
            for d in &departments {
                if rng.random_bool(0.8) {
                    orders.push(fs::UserOrder {
                        department_id: Some(d.clone()),
                        user_order: maybe(rng, 0.7, |r| r.random_range(0..3)),
                        department_order: maybe(rng, 0.7, |r| r.random_range(0..3)),
                        is_primary_dept: maybe(rng, 0.7, |r| r.random_bool(0.4)),
                    });
                }
            }
            Some(orders)
        } else {
            None
        };
        let user = fs::User {
            open_id: Some(ou(i)),
            union_id: maybe(rng, 0.8, |r| pick(r, &["on_a", "on_b"]) + &i.to_string()),
            user_id: maybe(rng, 0.6, |r| pick(r, &["x", "y", ""]) + &i.to_string()),
            name: maybe(rng, 0.8, |r| pick(r, &["Ann", "Bo", "Cy"])),
            email: maybe(rng, 0.5, |r| pick(r, &["a@x", "b@x", ""])),
            mobile: maybe(rng, 0.3, |r| pick(r, &["+1", "+2"])),
            avatar: maybe(rng, 0.3, |r| fs::Avatar {
                avatar_240: Some(pick(r, &["s1", "s2"])),
                avatar_origin: maybe(r, 0.5, |r| pick(r, &["o1", "o2"])),
                ..Default::default()
            }),
            status,
            is_frozen: maybe(rng, 0.3, |r| r.random_bool(0.3)),
            department_ids: if rng.random_bool(0.7) {
                Some(departments.clone())
            } else {
                None
            },
            orders,
            leader_user_id: maybe(rng, 0.6, |r| {
                if r.random_bool(0.2) {
                    String::new()
                } else {
                    ou(r.random_range(0..USERS + 2))
                }
            }),
            job_title: maybe(rng, 0.3, |r| pick(r, &["dev", "ops"])),
            ..Default::default()
        };
        let listed_in = departments
            .into_iter()
            .filter(|_| rng.random_bool(0.9))
            .collect();
        SnapshotUser { user, listed_in }
    }

    fn random_department(rng: &mut StdRng, i: usize) -> fs::Department {
        let parent = if i == 0 || rng.random_bool(0.3) {
            "0".to_owned()
        } else {
            od(rng.random_range(0..i))
        };
        let leader = |r: &mut StdRng| fs::DepartmentLeader {
            leader_type: Some(r.random_range(1..4)),
            leader_id: Some(ou(r.random_range(0..USERS + 2))),
        };
        let leaders = maybe(rng, 0.4, |r| {
            let n = r.random_range(0..3);
            (0..n).map(|_| leader(r)).collect()
        });
        fs::Department {
            open_department_id: Some(od(i)),
            name: maybe(rng, 0.8, |r| pick(r, &["Eng", "Ops", "Sales"])),
            i18n_name: maybe(rng, 0.2, |r| fs::I18nName {
                en_us: Some(pick(r, &["Eng", "Ops"])),
                ..Default::default()
            }),
            parent_department_id: maybe(rng, 0.9, |_| parent),
            department_id: maybe(rng, 0.7, |r| pick(r, &["D1", "D2"]) + &i.to_string()),
            order: maybe(rng, 0.7, |r| r.random_range(0..3)),
            chat_id: maybe(rng, 0.3, |r| pick(r, &["oc_1", "oc_2"])),
            leader_user_id: if leaders.is_none() {
                maybe(rng, 0.4, |r| {
                    if r.random_bool(0.2) {
                        String::new()
                    } else {
                        ou(r.random_range(0..USERS + 2))
                    }
                })
            } else {
                None
            },
            leaders,
            status: if rng.random_bool(0.05) {
                Some(fs::DepartmentStatus {
                    is_deleted: Some(true),
                })
            } else {
                None
            },
            ..Default::default()
        }
    }

    /// A random pull of a random tenant, with a lookup for every live stored user the pull
    /// did not list (as the import does).
    fn random_snapshot(rng: &mut StdRng, state: &ConnectionState, full: bool) -> Snapshot {
        let mut s = snapshot(Vec::new(), Vec::new(), Vec::new());
        let present: Vec<usize> = (0..DEPARTMENTS).filter(|_| rng.random_bool(0.75)).collect();
        for &i in &present {
            s.departments.insert(od(i), random_department(rng, i));
        }
        for i in 0..USERS {
            if rng.random_bool(0.7) {
                s.users.insert(ou(i), random_user(rng, i, &present));
            }
        }
        for g in 0..GROUPS {
            if !rng.random_bool(0.7) {
                continue;
            }
            let users = (0..USERS + 2)
                .filter(|_| rng.random_bool(0.3))
                .map(ou)
                .collect();
            let departments = (0..DEPARTMENTS + 1)
                .filter(|_| rng.random_bool(0.2))
                .map(od)
                .collect();
            s.groups.insert(
                format!("g{g}"),
                SnapshotGroup {
                    group: fs::Group {
                        id: Some(format!("g{g}")),
                        name: maybe(rng, 0.8, |r| pick(r, &["G", "H"])),
                        description: maybe(rng, 0.3, |r| pick(r, &["d", "e"])),
                        kind: maybe(rng, 0.8, |r| r.random_range(1..4)),
                        group_id: maybe(rng, 0.5, |r| pick(r, &["c1", "c2"])),
                        ..Default::default()
                    },
                    users,
                    departments,
                    members_complete: rng.random_bool(0.7),
                },
            );
        }
        for r in state.refs.iter().filter(|r| r.kind == ObjectKind::User) {
            let live = state
                .users
                .iter()
                .any(|u| u.id.0 == r.object_id && u.deleted_at.is_none());
            if !live || s.users.contains_key(&r.external_id) {
                continue;
            }
            let i: usize = r.external_id.trim_start_matches("ou_").parse().unwrap_or(0);
            let check = match rng.random_range(0..4) {
                0 => {
                    let mut u = random_user(rng, i, &present).user;
                    if rng.random_bool(0.7) {
                        u.status = resigned();
                    }
                    LeaverCheck::Resigned { user: Box::new(u) }
                }
                1 => LeaverCheck::Present {
                    user: Box::new(random_user(rng, i, &present).user),
                },
                2 => LeaverCheck::OutOfScope,
                _ => LeaverCheck::Failed {
                    error: "HTTP 500".into(),
                },
            };
            s.leavers.insert(r.external_id.clone(), check);
        }
        s.completeness = if full {
            Completeness::FULL
        } else {
            loop {
                let c = Completeness {
                    departments: rng.random_bool(0.5),
                    users: rng.random_bool(0.5),
                    groups: rng.random_bool(0.5),
                };
                if !c.is_full() {
                    break c;
                }
            }
        };
        s
    }

    /// A stored state reached by syncing a few random pulls (so it holds tombstones,
    /// resigned records and restored objects).
    fn random_state(rng: &mut StdRng) -> ConnectionState {
        let mut state = ConnectionState::default();
        for _ in 0..rng.random_range(0..3) {
            let snap = random_snapshot(rng, &state, true);
            state = sync(&snap, &state).1;
        }
        state
    }

    fn live_ids(state: &ConnectionState) -> HashSet<String> {
        state
            .users
            .iter()
            .filter(|u| u.deleted_at.is_none())
            .map(|u| u.id.0.clone())
            .chain(
                state
                    .departments
                    .iter()
                    .filter(|d| d.deleted_at.is_none())
                    .map(|d| d.id.0.clone()),
            )
            .chain(
                state
                    .groups
                    .iter()
                    .filter(|g| g.deleted_at.is_none())
                    .map(|g| g.id.0.clone()),
            )
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn a_complete_pull_makes_the_store_equal_to_feishu(seed in any::<u64>()) {
            let mut rng = StdRng::seed_from_u64(seed);
            let state = random_state(&mut rng);
            let snap = random_snapshot(&mut rng, &state, true);
            let (p, next) = sync(&snap, &state);
            prop_assert!(p.steps.iter().all(|s| s.result != ActionResult::Failed));
            let diff = compare(&snap, &next);
            prop_assert!(diff.is_empty(), "{:#?}", diff);
            let again = plan_with(&snap, &next, &no_threshold());
            prop_assert_eq!(again.writes().count(), 0, "{:#?}", again.steps);
        }

        #[test]
        fn a_partial_pull_deletes_nothing(seed in any::<u64>()) {
            let mut rng = StdRng::seed_from_u64(seed);
            let state = random_state(&mut rng);
            let snap = random_snapshot(&mut rng, &state, false);
            let (p, next) = sync(&snap, &state);
            prop_assert_eq!(p.verdict_hint, Verdict::Partial);
            prop_assert!(p
                .steps
                .iter()
                .all(|s| !s.action.is_deletion() || s.result == ActionResult::Skipped));
            let before = live_ids(&state);
            let after = live_ids(&next);
            prop_assert!(before.is_subset(&after));
        }
    }
}
