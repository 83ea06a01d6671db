//! What a stored event asks for, and what it asks for once Feishu was read again: the first
//! half of applying an event, before anything is loaded from the store.

use feishu::client::{FeishuClient, FeishuError};
use feishu::envelope::{self, Envelope};
use feishu::events::{ContactEvent, LegacyEvent, UnrecognizedReason};
use feishu::ids::{MemberIdType, MemberType};
use feishu::model as fs;
use futures::TryStreamExt;

use crate::snapshot::SnapshotGroup;

/// What an event asks for, from its payload alone.
pub(super) enum Intent {
    /// A user's state as the payload carries it (2.0); `creation` for `user.created`.
    User {
        user: Box<fs::User>,
        creation: bool,
    },
    /// Read the user again (1.0 events carry no object).
    UserReread {
        open_id: String,
    },
    /// A resignation.
    UserLeft {
        open_id: String,
    },
    /// Read the department again (events leave out fields the API has); `payload` is the
    /// fallback of a 2.0 event when the department cannot be read.
    Department {
        od: String,
        payload: Option<Box<fs::Department>>,
    },
    DepartmentDeleted {
        od: String,
    },
    /// Group events carry no members: read the group again.
    Group {
        group_id: String,
    },
    GroupDeleted {
        group_id: String,
    },
    /// The contact scope changed: a reconciliation decides.
    Reconcile,
    Ignore(String),
}

/// What an event amounts to once Feishu was read again: the object states to apply.
pub(super) enum Resolved {
    User { user: Box<fs::User>, creation: bool },
    UserLeft { open_id: String },
    Department { department: Box<fs::Department> },
    DepartmentDeleted { od: String },
    Group { group: Box<SnapshotGroup> },
    GroupDeleted { group_id: String },
    Ignore(String),
}

/// Decodes a stored payload (the plaintext envelope without its token).
pub(super) fn intent_of(payload: &str) -> Intent {
    let envelope = match envelope::parse_plaintext(payload) {
        Ok(e) => e,
        Err(e) => return Intent::Ignore(format!("stored payload unreadable: {e}")),
    };
    match envelope {
        Envelope::UrlVerification { .. } => Intent::Ignore("a URL check".into()),
        Envelope::V2(v2) => v2_intent(v2.event),
        Envelope::V1(v1) => v1_intent(v1.event.event),
    }
}

fn non_empty(id: Option<String>) -> Option<String> {
    id.filter(|s| !s.is_empty())
}

fn v2_intent(event: ContactEvent) -> Intent {
    match event {
        ContactEvent::UserCreated { object } => Intent::User {
            user: Box::new(object),
            creation: true,
        },
        ContactEvent::UserUpdated { object, .. } => Intent::User {
            user: Box::new(object),
            creation: false,
        },
        ContactEvent::UserDeleted { object, old_object } => {
            match non_empty(object.open_id.or(old_object.open_id)) {
                Some(open_id) => Intent::UserLeft { open_id },
                None => Intent::Ignore("leaver event without open_id".into()),
            }
        }
        ContactEvent::DepartmentCreated { object }
        | ContactEvent::DepartmentUpdated { object, .. } => {
            match non_empty(object.open_department_id.clone()) {
                Some(od) => Intent::Department {
                    od,
                    payload: Some(Box::new(object)),
                },
                None => Intent::Ignore("department event without open_department_id".into()),
            }
        }
        ContactEvent::DepartmentDeleted { object, old_object } => {
            match non_empty(object.open_department_id.or(old_object.open_department_id)) {
                Some(od) => Intent::DepartmentDeleted { od },
                None => Intent::Ignore("department deletion without open_department_id".into()),
            }
        }
        ContactEvent::ScopeUpdated { .. } => Intent::Reconcile,
        ContactEvent::UserGroupCreated { object }
        | ContactEvent::UserGroupUpdated { object, .. }
        | ContactEvent::UserGroupMemberChanged { object } => {
            match non_empty(object.user_group_id) {
                Some(group_id) => Intent::Group { group_id },
                None => Intent::Ignore("group event without user_group_id".into()),
            }
        }
        ContactEvent::UserGroupDeleted { object } => match non_empty(object.user_group_id) {
            Some(group_id) => Intent::GroupDeleted { group_id },
            None => Intent::Ignore("group deletion without user_group_id".into()),
        },
        ContactEvent::CustomAttrUpdated { .. } | ContactEvent::EmployeeTypeEnum { .. } => {
            Intent::Ignore("not a change of users, departments or groups".into())
        }
        ContactEvent::Unrecognized {
            event_type, reason, ..
        } => Intent::Ignore(match reason {
            UnrecognizedReason::UnknownType => {
                format!("event type {event_type} is not one orgsync mirrors")
            }
            UnrecognizedReason::BadPayload(why) => {
                format!("{event_type} payload not understood: {why}")
            }
        }),
    }
}

fn v1_intent(event: LegacyEvent) -> Intent {
    match event {
        LegacyEvent::UserAdd(u)
        | LegacyEvent::UserUpdate(u)
        | LegacyEvent::UserStatusChange { user: u, .. } => match non_empty(u.open_id) {
            Some(open_id) => Intent::UserReread { open_id },
            None => Intent::Ignore("no open_id".into()),
        },
        LegacyEvent::UserLeave(u) => match non_empty(u.open_id) {
            Some(open_id) => Intent::UserLeft { open_id },
            None => Intent::Ignore("leaver event without open_id".into()),
        },
        LegacyEvent::DeptAdd { open_department_id }
        | LegacyEvent::DeptUpdate { open_department_id } => match non_empty(open_department_id) {
            Some(od) => Intent::Department { od, payload: None },
            None => Intent::Ignore("no open_department_id".into()),
        },
        LegacyEvent::DeptDelete { open_department_id } => match non_empty(open_department_id) {
            Some(od) => Intent::DepartmentDeleted { od },
            None => Intent::Ignore("department deletion without open_department_id".into()),
        },
        LegacyEvent::ContactScopeChange => Intent::Reconcile,
        LegacyEvent::Unrecognized { event_type, .. } => Intent::Ignore(format!(
            "1.0 event type {event_type} is not one orgsync mirrors"
        )),
    }
}

/// Reads from Feishu what the intent needs. `Err` fails the event (retried, or parked when
/// the error is permanent).
pub(super) async fn resolve(
    intent: Intent,
    client: &FeishuClient,
) -> Result<Resolved, FeishuError> {
    Ok(match intent {
        Intent::User { user, creation } => {
            if user.is_resigned() == Some(true) {
                match non_empty(user.open_id.clone()) {
                    Some(open_id) => Resolved::UserLeft { open_id },
                    None => Resolved::Ignore("user event without open_id".into()),
                }
            } else {
                Resolved::User { user, creation }
            }
        }
        Intent::UserReread { open_id } => match client.user(&open_id).await {
            Ok(user) if user.is_resigned() == Some(true) => Resolved::UserLeft { open_id },
            Ok(user) => Resolved::User {
                user: Box::new(user),
                creation: false,
            },
            Err(FeishuError::UserOutOfScope { .. }) => Resolved::Ignore(format!(
                "user {open_id} is outside the contact scope; the next reconciliation decides"
            )),
            Err(e) => return Err(e),
        },
        Intent::UserLeft { open_id } => Resolved::UserLeft { open_id },
        Intent::Department { od, payload } => match (client.department(&od).await, payload) {
            (Ok(department), _) => Resolved::Department {
                department: Box::new(department),
            },
            // A 2.0 event carries the department: use it when it cannot be read.
            (Err(FeishuError::DepartmentOutOfScope { .. } | FeishuError::Api { .. }), Some(p)) => {
                Resolved::Department { department: p }
            }
            (Err(FeishuError::DepartmentOutOfScope { .. }), None) => {
                Resolved::Ignore(format!("department {od} is outside the contact scope"))
            }
            (Err(e), None) if e.is_not_found() => gone("department", &od, &e),
            (Err(e), _) => return Err(e),
        },
        Intent::DepartmentDeleted { od } => Resolved::DepartmentDeleted { od },
        Intent::Group { group_id } => reread_group(client, group_id).await?,
        Intent::GroupDeleted { group_id } => Resolved::GroupDeleted { group_id },
        Intent::Ignore(reason) => Resolved::Ignore(reason),
        // Handled by the round before anything is read.
        Intent::Reconcile => Resolved::Ignore("a scope change".into()),
    })
}

async fn reread_group(client: &FeishuClient, group_id: String) -> Result<Resolved, FeishuError> {
    let group = match client.group(&group_id).await {
        Ok(g) => g,
        Err(FeishuError::GroupOutOfScope { .. }) => {
            return Ok(Resolved::Ignore(format!(
                "group {group_id} is outside the contact scope"
            )));
        }
        Err(e) if e.is_not_found() => return Ok(gone("group", &group_id, &e)),
        Err(e) => return Err(e),
    };
    let members = |kind| {
        client
            .group_members(&group_id, kind, MemberIdType::OpenId)
            .try_collect::<Vec<fs::GroupMember>>()
    };
    let (users, departments) = match (
        members(MemberType::User).await,
        members(MemberType::Department).await,
    ) {
        (Ok(users), Ok(departments)) => (users, departments),
        (Err(e), _) | (_, Err(e)) if e.is_not_found() => return Ok(gone("group", &group_id, &e)),
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };
    Ok(Resolved::Group {
        group: Box::new(SnapshotGroup {
            group,
            users: users.into_iter().filter_map(|m| m.member_id).collect(),
            departments: departments
                .into_iter()
                .filter_map(|m| m.member_id)
                .collect(),
            members_complete: true,
        }),
    })
}

/// A department or group Feishu no longer knows when the worker reads it again: deleted
/// after the event was sent. Its deletion event (or the next reconciliation) removes it, so
/// the event is ignored rather than parked. (Users are never removed from Feishu — a leaver
/// stays readable as resigned — so an unknown user is parked: docs/event-failures.md.)
fn gone(kind: &str, id: &str, error: &FeishuError) -> Resolved {
    Resolved::Ignore(format!(
        "{kind} {id} no longer exists in Feishu{}: nothing to apply; its deletion event or the \
         next reconciliation removes it",
        error
            .code()
            .map(|c| format!(" (code {c})"))
            .unwrap_or_default()
    ))
}
