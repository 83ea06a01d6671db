//! What a job leaves alone because the event worker changed it while the job ran
//! (docs/concurrency.md). A job plans from the state it loaded at its start and chains each
//! object's `expected_version` from there; the worker keeps applying events meanwhile. The
//! store then refuses a job's write of an object an event wrote since
//! ([`StoreError::VersionConflict`] with a newer stored version), or a ref that would map a
//! Feishu id an event already mapped to a second object ([`StoreError::ExternalIdTaken`]).
//! Such a step is superseded: it ends `Skipped`, the newer state is kept, and every later step
//! of the job that writes the same objects (their version chain is broken) or refers to an
//! object the job no longer creates is skipped too.

use std::collections::HashMap;

use crate::model::{ExternalRef, GroupMember, ObjectKind};
use crate::plan::PlannedStep;
use crate::store::{StoreError, Write};

/// The reason of a step an event overtook.
pub(crate) const SUPERSEDED: &str =
    "changed by an event while the job ran; the newer state is kept";

type Key = (ObjectKind, String);

/// The objects a running job must not write any more, with the reason its steps get.
#[derive(Debug, Default)]
pub(crate) struct Superseded {
    /// Objects whose later steps are skipped.
    objects: HashMap<Key, String>,
    /// Objects the job meant to create and does not: steps that refer to them are skipped.
    unborn: HashMap<Key, String>,
}

impl Superseded {
    /// Why `step` must be skipped, if it must: it writes an object that is superseded, or
    /// refers to one the job no longer creates.
    pub(crate) fn skip_reason(&self, step: &PlannedStep) -> Option<String> {
        if self.objects.is_empty() && self.unborn.is_empty() {
            return None;
        }
        for write in &step.writes {
            if let Some(key) = written(write)
                && let Some(reason) = self.objects.get(&key)
            {
                return Some(reason.clone());
            }
        }
        if self.unborn.is_empty() {
            return None;
        }
        step.writes
            .iter()
            .flat_map(mentions)
            .find_map(|key| self.unborn.get(&key).cloned())
    }

    /// Records a step that is skipped with `reason`: the objects it writes are left alone
    /// from now on, and the objects it would have created are missing for later steps.
    pub(crate) fn add(&mut self, step: &PlannedStep, reason: &str) {
        for write in &step.writes {
            let Some(key) = written(write) else { continue };
            if creates(write) {
                let (kind, id) = &key;
                self.unborn.entry(key.clone()).or_insert_with(|| {
                    format!(
                        "refers to {} {id}, which this job did not create: {reason}",
                        kind.as_str()
                    )
                });
            }
            self.objects.entry(key).or_insert_with(|| reason.to_owned());
        }
    }

    /// The steps (positions in `steps`) the store refused because an event overtook them,
    /// or `None` when `error` is something else (or names no step).
    pub(crate) fn culprits(steps: &[&PlannedStep], error: &StoreError) -> Option<Vec<usize>> {
        let hit: Vec<usize> = match error {
            // A newer stored version: someone wrote the object after the job read it. (An
            // older one means an earlier step of the job failed: not an event's doing.)
            StoreError::VersionConflict {
                kind,
                id,
                expected,
                found,
            } if found > expected => positions(steps, |w| {
                written(w).is_some_and(|(k, i)| k.as_str() == *kind && i == *id)
            }),
            StoreError::ExternalIdTaken {
                kind, external_id, ..
            } => positions(steps, |w| {
                matches!(w, Write::PutExternalRef(ExternalRef { kind: k, external_id: e, .. })
                    if k.as_str() == *kind && e == external_id)
            }),
            _ => return None,
        };
        (!hit.is_empty()).then_some(hit)
    }
}

fn positions(steps: &[&PlannedStep], f: impl Fn(&Write) -> bool) -> Vec<usize> {
    steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.writes.iter().any(&f))
        .map(|(i, _)| i)
        .collect()
}

/// The object a write puts.
fn written(write: &Write) -> Option<Key> {
    write.object().map(|(kind, id)| (kind, id.to_owned()))
}

fn creates(write: &Write) -> bool {
    matches!(
        write,
        Write::PutUser {
            expected_version: Some(0),
            ..
        } | Write::PutDepartment {
            expected_version: Some(0),
            ..
        } | Write::PutGroup {
            expected_version: Some(0),
            ..
        }
    )
}

/// The objects a write refers to: memberships, manager, parent, leaders, group members and
/// the object a ref maps.
fn mentions(write: &Write) -> Vec<Key> {
    let user = |id: &str| (ObjectKind::User, id.to_owned());
    let department = |id: &str| (ObjectKind::Department, id.to_owned());
    match write {
        Write::PutUser { user: u, .. } => u
            .departments
            .iter()
            .map(|m| department(m.department_id.as_str()))
            .chain(u.manager_id.iter().map(|m| user(m.as_str())))
            .collect(),
        Write::PutDepartment { department: d, .. } => d
            .parent_id
            .iter()
            .map(|p| department(p.as_str()))
            .chain(d.leaders.iter().map(|l| user(l.user_id.as_str())))
            .collect(),
        Write::PutGroup { group, .. } => group
            .members
            .iter()
            .map(|m| match m {
                GroupMember::User(u) => user(u.as_str()),
                GroupMember::Department(d) => department(d.as_str()),
            })
            .collect(),
        Write::PutExternalRef(r) => vec![(r.kind, r.object_id.clone())],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ConnectionId, GroupId, PoolId, UserId};
    use crate::model::{ActionResult, Group, GroupKind, SyncAction, User};
    use crate::store::ChangeKind;

    fn user(id: &str) -> User {
        User::bare("p", id)
    }

    fn step(action: SyncAction, writes: Vec<Write>) -> PlannedStep {
        PlannedStep {
            action,
            kind: ObjectKind::User,
            external_id: "ou_1".into(),
            object_id: None,
            name: None,
            result: ActionResult::Applied,
            reason: None,
            writes,
        }
    }

    fn put(id: &str, expected: i64) -> Write {
        Write::PutUser {
            user: user(id),
            change: ChangeKind::UserUpdated,
            expected_version: Some(expected),
        }
    }

    fn reference(external_id: &str, object_id: &str) -> Write {
        Write::PutExternalRef(ExternalRef {
            connection_id: ConnectionId("c".into()),
            kind: ObjectKind::User,
            external_id: external_id.into(),
            union_id: None,
            custom_id: None,
            object_id: object_id.into(),
        })
    }

    fn group_with(member: &str) -> Write {
        Write::PutGroup {
            group: Group {
                id: GroupId("g".into()),
                pool_id: PoolId("p".into()),
                name: None,
                description: None,
                kind: GroupKind::Normal,
                members: vec![GroupMember::User(UserId(member.into()))],
                version: 0,
                created_at: 0,
                updated_at: 0,
                deleted_at: None,
            },
            change: ChangeKind::GroupMembersChanged,
            expected_version: Some(3),
        }
    }

    #[test]
    fn a_newer_version_names_every_step_of_the_object() {
        let a = step(SyncAction::UpdateUser, vec![put("u1", 4)]);
        let b = step(SyncAction::UpdateUser, vec![put("u2", 1)]);
        let c = step(SyncAction::ChangeUserDepartment, vec![put("u1", 5)]);
        let steps = [&a, &b, &c];
        let newer = StoreError::VersionConflict {
            kind: "user",
            id: "u1".into(),
            expected: 4,
            found: 5,
        };
        assert_eq!(Superseded::culprits(&steps, &newer), Some(vec![0, 2]));
        // An older stored version is the job's own broken chain, not an event.
        let older = StoreError::VersionConflict {
            kind: "user",
            id: "u1".into(),
            expected: 5,
            found: 4,
        };
        assert_eq!(Superseded::culprits(&steps, &older), None);
        let other_kind = StoreError::VersionConflict {
            kind: "group",
            id: "u1".into(),
            expected: 4,
            found: 5,
        };
        assert_eq!(Superseded::culprits(&steps, &other_kind), None);
        assert_eq!(
            Superseded::culprits(&steps, &StoreError::Database("gone".into())),
            None
        );
    }

    #[test]
    fn a_taken_feishu_id_names_the_creation_and_what_refers_to_it() {
        let create = step(
            SyncAction::CreateUser,
            vec![
                Write::PutUser {
                    user: user("new"),
                    change: ChangeKind::UserCreated,
                    expected_version: Some(0),
                },
                reference("ou_1", "new"),
            ],
        );
        let other = step(SyncAction::CreateUser, vec![reference("ou_2", "x")]);
        let taken = StoreError::ExternalIdTaken {
            kind: "user",
            external_id: "ou_1".into(),
            object_id: "old".into(),
        };
        assert_eq!(
            Superseded::culprits(&[&other, &create], &taken),
            Some(vec![1])
        );

        let mut superseded = Superseded::default();
        let join = step(SyncAction::AddGroupMember, vec![group_with("new")]);
        let unrelated = step(SyncAction::AddGroupMember, vec![group_with("someone")]);
        assert_eq!(superseded.skip_reason(&join), None);
        superseded.add(&create, SUPERSEDED);
        let again = step(SyncAction::UpdateUser, vec![put("new", 1)]);
        assert_eq!(superseded.skip_reason(&again).as_deref(), Some(SUPERSEDED));
        let reason = superseded.skip_reason(&join).unwrap();
        assert!(reason.starts_with("refers to user new"), "{reason}");
        assert_eq!(superseded.skip_reason(&unrelated), None);
        // The skipped group's later steps are skipped too: its version chain is broken.
        superseded.add(&join, &reason);
        assert_eq!(
            superseded.skip_reason(&unrelated).as_deref(),
            Some(&*reason)
        );
    }
}
