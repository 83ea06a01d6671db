use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::ids::{ConnectionId, JobId};

fn user(name: &str, status: &str, departments: &[(&str, bool)]) -> Value {
    json!({
        "id": "u1",
        "pool_id": "p1",
        "profile": {"name": name, "email": "a@example.com"},
        "status": status,
        "departments": departments.iter().map(|(d, primary)| json!({
            "department_id": d, "user_order": null, "department_order": null, "primary": primary,
        })).collect::<Vec<_>>(),
        "in_root": false,
        "manager_id": null,
        "version": 1,
        "created_at": 1,
        "updated_at": 1,
        "deleted_at": null,
    })
}

fn types(drafts: &[FeedDraft]) -> Vec<&'static str> {
    drafts.iter().map(|d| d.event_type.as_str()).collect()
}

#[test]
fn a_new_user_is_created_then_joins_its_departments() {
    let after = user("Ann", "active", &[("d1", true), ("d2", false)]);
    let drafts = derive(ObjectKind::User, None, &after);
    assert_eq!(
        types(&drafts),
        [
            "user.created",
            "department.member_added",
            "department.member_added"
        ]
    );
    assert_eq!(drafts[0].data["object"], after);
    assert_eq!(drafts[1].data["department_id"], "d1");
    assert_eq!(drafts[1].data["primary"], true);
    assert_eq!(drafts[2].data["user_id"], "u1");
    assert!(drafts.iter().all(|d| d.object_id.as_deref() == Some("u1")));
}

#[test]
fn an_update_names_what_changed_and_what_it_was() {
    let before = user("Ann", "active", &[("d1", true)]);
    let mut after = user("Anna", "active", &[("d1", true)]);
    after["version"] = json!(2);
    after["updated_at"] = json!(99);
    let drafts = derive(ObjectKind::User, Some(&before), &after);
    assert_eq!(types(&drafts), ["user.updated"]);
    assert_eq!(
        drafts[0].data["previous_attributes"],
        json!({"profile": {"name": "Ann"}})
    );
    assert_eq!(drafts[0].data["changed"], json!(["profile.name"]));
    // A field that appears is reported with `null` as its previous value.
    let mut more = after.clone();
    more["profile"]["mobile"] = json!("+86 1");
    let drafts = derive(ObjectKind::User, Some(&after), &more);
    assert_eq!(
        drafts[0].data["previous_attributes"],
        json!({"profile": {"mobile": null}})
    );
}

#[test]
fn bookkeeping_alone_is_no_event() {
    let before = user("Ann", "active", &[("d1", true)]);
    let mut after = before.clone();
    after["version"] = json!(7);
    after["updated_at"] = json!(7);
    assert!(derive(ObjectKind::User, Some(&before), &after).is_empty());
}

#[test]
fn a_move_between_departments_is_told_by_membership_events_only() {
    let before = user("Ann", "active", &[("d1", true), ("d2", false)]);
    let after = user("Ann", "active", &[("d2", true), ("d3", false)]);
    let drafts = derive(ObjectKind::User, Some(&before), &after);
    // The primary flag moved to d2: that is an attribute change too.
    assert_eq!(
        types(&drafts),
        [
            "user.updated",
            "department.member_removed",
            "department.member_added"
        ]
    );
    assert_eq!(drafts[1].data["department_id"], "d1");
    assert_eq!(drafts[2].data["department_id"], "d3");
    let only_join = user(
        "Ann",
        "active",
        &[("d1", true), ("d2", false), ("d4", false)],
    );
    assert_eq!(
        types(&derive(ObjectKind::User, Some(&before), &only_join)),
        ["department.member_added"]
    );
}

#[test]
fn freezing_disables_and_unfreezing_enables() {
    let active = user("Ann", "active", &[("d1", true)]);
    let frozen = user("Ann", "frozen", &[("d1", true)]);
    let drafts = derive(ObjectKind::User, Some(&active), &frozen);
    assert_eq!(types(&drafts), ["user.disabled"]);
    assert_eq!(drafts[0].data["reason"], "frozen");
    assert_eq!(
        drafts[0].data["previous_attributes"],
        json!({"status": "active"})
    );
    assert_eq!(
        types(&derive(ObjectKind::User, Some(&frozen), &active)),
        ["user.enabled"]
    );
    // Resignation detaches: disabled, then the departments it left.
    let resigned = user("Ann", "resigned", &[]);
    assert_eq!(
        types(&derive(ObjectKind::User, Some(&active), &resigned)),
        ["user.disabled", "department.member_removed"]
    );
}

#[test]
fn a_tombstone_is_a_deletion_and_a_revival_a_creation() {
    let live = user("Ann", "resigned", &[]);
    let mut gone = live.clone();
    gone["deleted_at"] = json!(5);
    let drafts = derive(ObjectKind::User, Some(&live), &gone);
    assert_eq!(types(&drafts), ["user.deleted"]);
    assert_eq!(drafts[0].data["reason"], "deleted");
    assert!(derive(ObjectKind::User, Some(&gone), &gone).is_empty());
    assert!(derive(ObjectKind::User, None, &gone).is_empty());
    assert_eq!(
        types(&derive(ObjectKind::User, Some(&gone), &live)),
        ["user.created"]
    );
}

fn department(name: &str, parent: Option<&str>) -> Value {
    json!({
        "id": "d9", "pool_id": "p1", "name": name, "i18n_name": null, "parent_id": parent,
        "order": 1, "leaders": [], "chat_id": null, "version": 1, "created_at": 1,
        "updated_at": 1, "deleted_at": null,
    })
}

#[test]
fn departments_are_created_moved_renamed_and_deleted() {
    let d = department("Sales", Some("d1"));
    assert_eq!(
        types(&derive(ObjectKind::Department, None, &d)),
        ["department.created"]
    );
    let moved = department("Sales", Some("d2"));
    let drafts = derive(ObjectKind::Department, Some(&d), &moved);
    assert_eq!(types(&drafts), ["department.moved"]);
    assert_eq!(drafts[0].data["from_parent_id"], "d1");
    assert_eq!(drafts[0].data["to_parent_id"], "d2");
    let both = department("Sales EU", None);
    assert_eq!(
        types(&derive(ObjectKind::Department, Some(&d), &both)),
        ["department.moved", "department.updated"]
    );
    let mut gone = d.clone();
    gone["deleted_at"] = json!(3);
    assert_eq!(
        types(&derive(ObjectKind::Department, Some(&d), &gone)),
        ["department.deleted"]
    );
}

fn group(members: &[(&str, &str)]) -> Value {
    json!({
        "id": "g1", "pool_id": "p1", "name": "Ops", "description": null, "kind": "normal",
        "members": members.iter().map(|(t, id)| json!({"type": t, "id": id})).collect::<Vec<_>>(),
        "version": 3, "created_at": 1, "updated_at": 1, "deleted_at": null,
    })
}

#[test]
fn group_members_come_and_go_one_event_each() {
    let before = group(&[("user", "u1"), ("user", "u2")]);
    let after = group(&[("department", "d1"), ("user", "u2")]);
    let drafts = derive(ObjectKind::Group, Some(&before), &after);
    assert_eq!(
        types(&drafts),
        ["group.member_removed", "group.member_added"]
    );
    assert_eq!(
        drafts[0].data["member"],
        json!({"type": "user", "id": "u1"})
    );
    assert_eq!(
        drafts[1].data,
        json!({"group_id": "g1", "member": {"type": "department", "id": "d1"}, "version": 3})
    );
    assert_eq!(
        types(&derive(ObjectKind::Group, None, &after)),
        ["group.created", "group.member_added", "group.member_added"]
    );
}

#[test]
fn type_filters_take_names_and_globs() {
    assert_eq!(parse_types("").unwrap(), []);
    assert_eq!(parse_types("*").unwrap(), []);
    assert_eq!(
        parse_types("group.member_added, user.*").unwrap(),
        [
            FeedType::UserCreated,
            FeedType::UserUpdated,
            FeedType::UserDisabled,
            FeedType::UserEnabled,
            FeedType::UserDeleted,
            FeedType::GroupMemberAdded,
        ]
    );
    assert_eq!(
        parse_types("directory.*").unwrap(),
        [FeedType::SyncCompleted]
    );
    let err = parse_types("user.*,users.created").unwrap_err();
    assert_eq!(err, UnknownType("users.created".into()));
    assert!(err.to_string().contains("user.updated"));
    for t in FeedType::ALL {
        assert_eq!(FeedType::parse(t.as_str()), Some(t));
        assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        // Standard Webhooks' event-type alphabet.
        assert!(
            t.as_str()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        );
    }
}

#[test]
fn the_envelope_has_every_field_consumers_read() {
    let event = FeedEvent {
        pool_id: PoolId("p1".into()),
        seq: 42,
        event_type: FeedType::UserUpdated,
        object_id: Some("u1".into()),
        source: ChangeSource::Job {
            job_id: JobId("j1".into()),
            connection_id: ConnectionId("c1".into()),
            job_kind: Some(JobKind::Reconcile),
        },
        at: 1_700_000_000_123,
        data: json!({"object": {"id": "u1"}}),
    };
    assert_eq!(
        event.envelope(),
        json!({
            "id": "evt_p1_42",
            "seq": 42,
            "type": "user.updated",
            "timestamp": "2023-11-14T22:13:20.123Z",
            "pool_id": "p1",
            "source": {"kind": "reconcile", "job_id": "j1", "connection_id": "c1"},
            "data": {"object": {"id": "u1"}},
        })
    );
    let from_feishu = FeedEvent {
        source: ChangeSource::Event {
            event_id: "e1".into(),
            connection_id: ConnectionId("c1".into()),
        },
        ..event
    };
    assert_eq!(
        from_feishu.envelope()["source"],
        json!({"kind": "feishu_event", "feishu_event_id": "e1", "connection_id": "c1"})
    );
}

fn arb_user() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["Ann", "Bo", "Cy"]),
        prop::sample::select(vec!["active", "frozen", "resigned"]),
        prop::collection::btree_set(prop::sample::select(vec!["d1", "d2", "d3", "d4"]), 0..4),
        any::<bool>(),
    )
        .prop_map(|(name, status, depts, deleted)| {
            let list: Vec<(&str, bool)> = depts
                .iter()
                .enumerate()
                .map(|(i, d)| (*d, i == 0))
                .collect();
            let mut u = user(name, status, &list);
            if deleted {
                u["deleted_at"] = json!(9);
            }
            u
        })
}

proptest! {
    /// Replaying the membership events on the departments a consumer held gives the
    /// departments the user has now; an object equal to what was stored yields nothing.
    #[test]
    fn membership_events_replay_to_the_new_departments(before in arb_user(), after in arb_user()) {
        let drafts = derive(ObjectKind::User, Some(&before), &after);
        let depts = |u: &Value| -> std::collections::BTreeSet<String> {
            u["departments"].as_array().unwrap().iter()
                .map(|m| m["department_id"].as_str().unwrap().to_owned()).collect()
        };
        let live = |u: &Value| u["deleted_at"].is_null();
        if live(&before) && live(&after) {
            let mut held = depts(&before);
            for d in &drafts {
                let dept = d.data["department_id"].as_str().map(str::to_owned);
                match d.event_type {
                    FeedType::DepartmentMemberAdded => prop_assert!(held.insert(dept.unwrap())),
                    FeedType::DepartmentMemberRemoved => prop_assert!(held.remove(&dept.unwrap())),
                    _ => {}
                }
            }
            prop_assert_eq!(held, depts(&after));
        }
        prop_assert_eq!(drafts.is_empty(), before == after || (!live(&before) && !live(&after)));
    }
}
