//! Typed contact events (protocol §5): the 2.0 `contact.*_v3` family and the legacy 1.0
//! family. Pure code, no I/O.
//!
//! The envelope decoder hands over the raw `event` object; [`parse_v2`] and [`parse_v1`]
//! never fail. An unknown type, and also a known type whose payload has the wrong shape,
//! becomes an `Unrecognized` variant that keeps the raw JSON and the reason, so an
//! authentic event is acknowledged and stored, never lost.
//!
//! Inside the objects everything is as tolerant as [`crate::model`]: explicit `null`s,
//! unknown fields and missing optional objects are fine. What counts as a bad payload is
//! a *structural* mismatch: `event` or one of its sub-objects (`object`, `old_object`,
//! `added`, …) is not a JSON object, a required `object` is missing, or a field the model
//! types strictly has the wrong type.
//!
//! The same types serialize back to the wire shape (`serde_json::to_value(&event)` gives
//! the `event` object), so the emulator can produce events with them.

use serde::de::{DeserializeOwned, Error as _};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use serde_with::skip_serializing_none;

use crate::model::{Department, DepartmentStatus, User, UserGroup};
use crate::serde_util::{
    opt_bool_lenient, opt_i64_lenient, opt_string_lenient, opt_string_vec_lenient, opt_vec_lenient,
};

// ---- 2.0 event types (header.event_type) -------------------------------------------

pub const USER_CREATED_V3: &str = "contact.user.created_v3";
pub const USER_UPDATED_V3: &str = "contact.user.updated_v3";
pub const USER_DELETED_V3: &str = "contact.user.deleted_v3";
pub const DEPARTMENT_CREATED_V3: &str = "contact.department.created_v3";
pub const DEPARTMENT_UPDATED_V3: &str = "contact.department.updated_v3";
pub const DEPARTMENT_DELETED_V3: &str = "contact.department.deleted_v3";
pub const SCOPE_UPDATED_V3: &str = "contact.scope.updated_v3";
/// The four user-group types are absent from current SDKs; whether Feishu still sends
/// them is unverified (§5.1).
pub const USER_GROUP_CREATED_V3: &str = "contact.user_group.created_v3";
pub const USER_GROUP_UPDATED_V3: &str = "contact.user_group.updated_v3";
pub const USER_GROUP_DELETED_V3: &str = "contact.user_group.deleted_v3";
pub const USER_GROUP_MEMBER_CHANGED_V3: &str = "contact.user_group.member.changed_v3";
pub const CUSTOM_ATTR_UPDATED_V3: &str = "contact.custom_attr_event.updated_v3";
pub const EMPLOYEE_TYPE_ENUM_CREATED_V3: &str = "contact.employee_type_enum.created_v3";
/// Feishu's spelling ("actived").
pub const EMPLOYEE_TYPE_ENUM_ACTIVED_V3: &str = "contact.employee_type_enum.actived_v3";
pub const EMPLOYEE_TYPE_ENUM_DEACTIVATED_V3: &str = "contact.employee_type_enum.deactivated_v3";
pub const EMPLOYEE_TYPE_ENUM_DELETED_V3: &str = "contact.employee_type_enum.deleted_v3";
pub const EMPLOYEE_TYPE_ENUM_UPDATED_V3: &str = "contact.employee_type_enum.updated_v3";

/// Every 2.0 contact event type [`parse_v2`] understands.
pub const V2_EVENT_TYPES: [&str; 17] = [
    USER_CREATED_V3,
    USER_UPDATED_V3,
    USER_DELETED_V3,
    DEPARTMENT_CREATED_V3,
    DEPARTMENT_UPDATED_V3,
    DEPARTMENT_DELETED_V3,
    SCOPE_UPDATED_V3,
    USER_GROUP_CREATED_V3,
    USER_GROUP_UPDATED_V3,
    USER_GROUP_DELETED_V3,
    USER_GROUP_MEMBER_CHANGED_V3,
    CUSTOM_ATTR_UPDATED_V3,
    EMPLOYEE_TYPE_ENUM_CREATED_V3,
    EMPLOYEE_TYPE_ENUM_ACTIVED_V3,
    EMPLOYEE_TYPE_ENUM_DEACTIVATED_V3,
    EMPLOYEE_TYPE_ENUM_DELETED_V3,
    EMPLOYEE_TYPE_ENUM_UPDATED_V3,
];

// ---- 1.0 event types (event.type) ------------------------------------------------

pub const USER_ADD: &str = "user_add";
pub const USER_UPDATE: &str = "user_update";
pub const USER_LEAVE: &str = "user_leave";
pub const USER_STATUS_CHANGE: &str = "user_status_change";
pub const DEPT_ADD: &str = "dept_add";
pub const DEPT_UPDATE: &str = "dept_update";
pub const DEPT_DELETE: &str = "dept_delete";
pub const CONTACT_SCOPE_CHANGE: &str = "contact_scope_change";

/// Every legacy 1.0 contact event type [`parse_v1`] understands.
pub const V1_EVENT_TYPES: [&str; 8] = [
    USER_ADD,
    USER_UPDATE,
    USER_LEAVE,
    USER_STATUS_CHANGE,
    DEPT_ADD,
    DEPT_UPDATE,
    DEPT_DELETE,
    CONTACT_SCOPE_CHANGE,
];

/// Whether `event_type` is a 2.0 contact type this module decodes.
pub fn is_known_v2_type(event_type: &str) -> bool {
    V2_EVENT_TYPES.contains(&event_type)
}

/// Whether `event_type` is a 1.0 contact type this module decodes.
pub fn is_known_v1_type(event_type: &str) -> bool {
    V1_EVENT_TYPES.contains(&event_type)
}

// ---- shared ----------------------------------------------------------------------

/// Why an event became `Unrecognized`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnrecognizedReason {
    /// A type this module does not know (acknowledge and log, §4.7).
    UnknownType,
    /// A known type whose payload has the wrong shape; the text says what is wrong.
    BadPayload(String),
}

impl std::fmt::Display for UnrecognizedReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownType => f.write_str("unknown event type"),
            Self::BadPayload(why) => write!(f, "payload does not decode: {why}"),
        }
    }
}

/// The object an event is about: what the per-object ordering guard keys on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ObjectRef {
    /// A user, by `open_id`.
    User(String),
    /// A department, by `open_department_id`.
    Department(String),
    /// A user group, by `user_group_id`.
    Group(String),
    /// The app's contact scope as a whole.
    Scope,
    /// No single mirrored object: tenant settings, unrecognized events, or a payload that
    /// lacks the id.
    Other,
}

/// The first non-empty id, wrapped; `Other` when there is none.
fn object_ref(ids: &[Option<&str>], make: fn(String) -> ObjectRef) -> ObjectRef {
    ids.iter()
        .flatten()
        .find(|id| !id.is_empty())
        .map_or(ObjectRef::Other, |id| make((*id).to_owned()))
}

// ---- 2.0 payload types -------------------------------------------------------------

/// `old_object` of `contact.user.deleted_v3`: the memberships *before* the departure.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserDeletedOld {
    /// open_department_ids; use them to update department member lists (§5.1).
    #[serde(deserialize_with = "opt_string_vec_lenient")]
    pub department_ids: Option<Vec<String>>,
    #[serde(deserialize_with = "opt_string_lenient")]
    pub open_id: Option<String>,
}

/// `old_object` of `contact.department.deleted_v3`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DepartmentDeletedOld {
    pub status: Option<DepartmentStatus>,
    #[serde(deserialize_with = "opt_string_lenient")]
    pub open_department_id: Option<String>,
}

/// `added` / `removed` of `contact.scope.updated_v3`. An absent or `null` list is empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScopeChange {
    #[serde(deserialize_with = "list_of_objects")]
    pub departments: Vec<Department>,
    #[serde(deserialize_with = "list_of_objects")]
    pub users: Vec<User>,
    #[serde(deserialize_with = "list_of_objects")]
    pub user_groups: Vec<UserGroup>,
}

impl ScopeChange {
    pub fn is_empty(&self) -> bool {
        self.departments.is_empty() && self.users.is_empty() && self.user_groups.is_empty()
    }
}

/// The user group of the `contact.user_group.*_v3` events.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserGroupRef {
    #[serde(deserialize_with = "opt_string_lenient")]
    pub user_group_id: Option<String>,
    pub name: Option<String>,
}

/// `object` / `old_object` of `contact.custom_attr_event.updated_v3`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CustomAttrEvent {
    #[serde(deserialize_with = "opt_string_vec_lenient")]
    pub contact_field_key: Option<Vec<String>>,
    #[serde(deserialize_with = "opt_bool_lenient")]
    pub allow_open_query: Option<bool>,
}

/// An employee-type option (`old_enum` / `new_enum`).
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EmployeeTypeEnum {
    #[serde(deserialize_with = "opt_string_lenient")]
    pub enum_id: Option<String>,
    /// The number users carry as `employee_type`, as a string.
    #[serde(deserialize_with = "opt_string_lenient")]
    pub enum_value: Option<String>,
    pub content: Option<String>,
    /// 1 built-in, 2 custom.
    #[serde(deserialize_with = "opt_i64_lenient")]
    pub enum_type: Option<i64>,
    /// 1 active, 2 inactive.
    #[serde(deserialize_with = "opt_i64_lenient")]
    pub enum_status: Option<i64>,
    #[serde(deserialize_with = "opt_vec_lenient")]
    pub i18n_content: Option<Vec<I18nContent>>,
}

#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct I18nContent {
    pub locale: Option<String>,
    pub value: Option<String>,
}

/// Which `contact.employee_type_enum.*_v3` event it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmployeeTypeEnumChange {
    Created,
    Actived,
    Deactivated,
    Deleted,
    Updated,
}

impl EmployeeTypeEnumChange {
    pub const ALL: [EmployeeTypeEnumChange; 5] = [
        Self::Created,
        Self::Actived,
        Self::Deactivated,
        Self::Deleted,
        Self::Updated,
    ];

    pub fn event_type(self) -> &'static str {
        match self {
            Self::Created => EMPLOYEE_TYPE_ENUM_CREATED_V3,
            Self::Actived => EMPLOYEE_TYPE_ENUM_ACTIVED_V3,
            Self::Deactivated => EMPLOYEE_TYPE_ENUM_DEACTIVATED_V3,
            Self::Deleted => EMPLOYEE_TYPE_ENUM_DELETED_V3,
            Self::Updated => EMPLOYEE_TYPE_ENUM_UPDATED_V3,
        }
    }

    pub fn from_event_type(event_type: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.event_type() == event_type)
    }
}

/// A decoded 2.0 contact event (the `event` object plus `header.event_type`).
///
/// `old_object`s hold only the changed fields with their old values (SDK comments); one
/// Feishu did not send is empty (`Default`).
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "events are handled one at a time; boxing would only complicate matching"
)]
pub enum ContactEvent {
    UserCreated {
        object: User,
    },
    UserUpdated {
        object: User,
        old_object: User,
    },
    /// A resignation (员工离职). `object` is the last state.
    UserDeleted {
        object: User,
        old_object: UserDeletedOld,
    },
    DepartmentCreated {
        object: Department,
    },
    DepartmentUpdated {
        object: Department,
        old_object: Department,
    },
    DepartmentDeleted {
        object: Department,
        old_object: DepartmentDeletedOld,
    },
    ScopeUpdated {
        added: ScopeChange,
        removed: ScopeChange,
    },
    UserGroupCreated {
        object: UserGroupRef,
    },
    UserGroupUpdated {
        object: UserGroupRef,
        old_object: UserGroupRef,
    },
    UserGroupDeleted {
        object: UserGroupRef,
    },
    /// Carries no member delta: re-read the members through the API.
    UserGroupMemberChanged {
        object: UserGroupRef,
    },
    CustomAttrUpdated {
        object: CustomAttrEvent,
        old_object: CustomAttrEvent,
    },
    EmployeeTypeEnum {
        change: EmployeeTypeEnumChange,
        old_enum: Option<EmployeeTypeEnum>,
        new_enum: Option<EmployeeTypeEnum>,
    },
    /// An unknown type, or a known type whose payload does not decode; `raw` is the
    /// `event` value exactly as received.
    Unrecognized {
        event_type: String,
        reason: UnrecognizedReason,
        raw: Value,
    },
}

impl ContactEvent {
    /// The wire name (`header.event_type`), e.g. `contact.user.created_v3`.
    pub fn event_type(&self) -> &str {
        match self {
            Self::UserCreated { .. } => USER_CREATED_V3,
            Self::UserUpdated { .. } => USER_UPDATED_V3,
            Self::UserDeleted { .. } => USER_DELETED_V3,
            Self::DepartmentCreated { .. } => DEPARTMENT_CREATED_V3,
            Self::DepartmentUpdated { .. } => DEPARTMENT_UPDATED_V3,
            Self::DepartmentDeleted { .. } => DEPARTMENT_DELETED_V3,
            Self::ScopeUpdated { .. } => SCOPE_UPDATED_V3,
            Self::UserGroupCreated { .. } => USER_GROUP_CREATED_V3,
            Self::UserGroupUpdated { .. } => USER_GROUP_UPDATED_V3,
            Self::UserGroupDeleted { .. } => USER_GROUP_DELETED_V3,
            Self::UserGroupMemberChanged { .. } => USER_GROUP_MEMBER_CHANGED_V3,
            Self::CustomAttrUpdated { .. } => CUSTOM_ATTR_UPDATED_V3,
            Self::EmployeeTypeEnum { change, .. } => change.event_type(),
            Self::Unrecognized { event_type, .. } => event_type,
        }
    }

    /// The object the ordering guard keys on. The `old_object` id is a fallback for a
    /// payload whose `object` lacks it.
    pub fn affected_object(&self) -> ObjectRef {
        match self {
            Self::UserCreated { object } => {
                object_ref(&[object.open_id.as_deref()], ObjectRef::User)
            }
            Self::UserUpdated { object, old_object } => object_ref(
                &[object.open_id.as_deref(), old_object.open_id.as_deref()],
                ObjectRef::User,
            ),
            Self::UserDeleted { object, old_object } => object_ref(
                &[object.open_id.as_deref(), old_object.open_id.as_deref()],
                ObjectRef::User,
            ),
            Self::DepartmentCreated { object } => object_ref(
                &[object.open_department_id.as_deref()],
                ObjectRef::Department,
            ),
            Self::DepartmentUpdated { object, old_object } => object_ref(
                &[
                    object.open_department_id.as_deref(),
                    old_object.open_department_id.as_deref(),
                ],
                ObjectRef::Department,
            ),
            Self::DepartmentDeleted { object, old_object } => object_ref(
                &[
                    object.open_department_id.as_deref(),
                    old_object.open_department_id.as_deref(),
                ],
                ObjectRef::Department,
            ),
            Self::ScopeUpdated { .. } => ObjectRef::Scope,
            Self::UserGroupCreated { object }
            | Self::UserGroupDeleted { object }
            | Self::UserGroupMemberChanged { object } => {
                object_ref(&[object.user_group_id.as_deref()], ObjectRef::Group)
            }
            Self::UserGroupUpdated { object, old_object } => object_ref(
                &[
                    object.user_group_id.as_deref(),
                    old_object.user_group_id.as_deref(),
                ],
                ObjectRef::Group,
            ),
            Self::CustomAttrUpdated { .. }
            | Self::EmployeeTypeEnum { .. }
            | Self::Unrecognized { .. } => ObjectRef::Other,
        }
    }
}

/// Decodes the `event` object of a 2.0 envelope. Never fails: see [`ContactEvent::Unrecognized`].
pub fn parse_v2(event_type: &str, event: Value) -> ContactEvent {
    let decoded = match &event {
        Value::Object(map) => decode_v2(event_type, map),
        _ if !is_known_v2_type(event_type) => Err(UnrecognizedReason::UnknownType),
        other => Err(bad(format!(
            "`event` is {}, not an object",
            json_kind(other)
        ))),
    };
    decoded.unwrap_or_else(|reason| ContactEvent::Unrecognized {
        event_type: event_type.to_owned(),
        reason,
        raw: event,
    })
}

fn decode_v2(
    event_type: &str,
    event: &Map<String, Value>,
) -> Result<ContactEvent, UnrecognizedReason> {
    if let Some(change) = EmployeeTypeEnumChange::from_event_type(event_type) {
        return Ok(ContactEvent::EmployeeTypeEnum {
            change,
            old_enum: sub_object(event, "old_enum")?,
            new_enum: sub_object(event, "new_enum")?,
        });
    }
    Ok(match event_type {
        USER_CREATED_V3 => ContactEvent::UserCreated {
            object: required(event, "object")?,
        },
        USER_UPDATED_V3 => ContactEvent::UserUpdated {
            object: required(event, "object")?,
            old_object: optional(event, "old_object")?,
        },
        USER_DELETED_V3 => ContactEvent::UserDeleted {
            object: required(event, "object")?,
            old_object: optional(event, "old_object")?,
        },
        DEPARTMENT_CREATED_V3 => ContactEvent::DepartmentCreated {
            object: required(event, "object")?,
        },
        DEPARTMENT_UPDATED_V3 => ContactEvent::DepartmentUpdated {
            object: required(event, "object")?,
            old_object: optional(event, "old_object")?,
        },
        DEPARTMENT_DELETED_V3 => ContactEvent::DepartmentDeleted {
            object: required(event, "object")?,
            old_object: optional(event, "old_object")?,
        },
        SCOPE_UPDATED_V3 => ContactEvent::ScopeUpdated {
            added: optional(event, "added")?,
            removed: optional(event, "removed")?,
        },
        USER_GROUP_CREATED_V3 => ContactEvent::UserGroupCreated {
            object: required(event, "object")?,
        },
        USER_GROUP_UPDATED_V3 => ContactEvent::UserGroupUpdated {
            object: required(event, "object")?,
            old_object: optional(event, "old_object")?,
        },
        USER_GROUP_DELETED_V3 => ContactEvent::UserGroupDeleted {
            object: required(event, "object")?,
        },
        USER_GROUP_MEMBER_CHANGED_V3 => ContactEvent::UserGroupMemberChanged {
            object: required(event, "object")?,
        },
        CUSTOM_ATTR_UPDATED_V3 => ContactEvent::CustomAttrUpdated {
            object: required(event, "object")?,
            old_object: optional(event, "old_object")?,
        },
        _ => return Err(UnrecognizedReason::UnknownType),
    })
}

/// Serializes as the 2.0 `event` object (the type belongs in `header.event_type`); an
/// `Unrecognized` event as its raw value.
impl Serialize for ContactEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::UserCreated { object } => ObjectOut { object }.serialize(s),
            Self::UserUpdated { object, old_object } => {
                ChangeOut { object, old_object }.serialize(s)
            }
            Self::UserDeleted { object, old_object } => {
                ChangeOut { object, old_object }.serialize(s)
            }
            Self::DepartmentCreated { object } => ObjectOut { object }.serialize(s),
            Self::DepartmentUpdated { object, old_object } => {
                ChangeOut { object, old_object }.serialize(s)
            }
            Self::DepartmentDeleted { object, old_object } => {
                ChangeOut { object, old_object }.serialize(s)
            }
            Self::ScopeUpdated { added, removed } => ScopeOut { added, removed }.serialize(s),
            Self::UserGroupCreated { object }
            | Self::UserGroupDeleted { object }
            | Self::UserGroupMemberChanged { object } => ObjectOut { object }.serialize(s),
            Self::UserGroupUpdated { object, old_object } => {
                ChangeOut { object, old_object }.serialize(s)
            }
            Self::CustomAttrUpdated { object, old_object } => {
                ChangeOut { object, old_object }.serialize(s)
            }
            Self::EmployeeTypeEnum {
                old_enum, new_enum, ..
            } => EnumOut {
                old_enum: old_enum.as_ref(),
                new_enum: new_enum.as_ref(),
            }
            .serialize(s),
            Self::Unrecognized { raw, .. } => raw.serialize(s),
        }
    }
}

#[derive(Serialize)]
struct ObjectOut<'a, O> {
    object: &'a O,
}

#[derive(Serialize)]
struct ChangeOut<'a, O, P> {
    object: &'a O,
    old_object: &'a P,
}

#[derive(Serialize)]
struct ScopeOut<'a> {
    added: &'a ScopeChange,
    removed: &'a ScopeChange,
}

#[skip_serializing_none]
#[derive(Serialize)]
struct EnumOut<'a> {
    old_enum: Option<&'a EmployeeTypeEnum>,
    new_enum: Option<&'a EmployeeTypeEnum>,
}

// ---- 1.0 ---------------------------------------------------------------------------

/// The user ids of a 1.0 user event. 1.0 events carry ids only: read details via the API.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LegacyUserEvent {
    #[serde(deserialize_with = "opt_string_lenient")]
    pub open_id: Option<String>,
    /// The tenant `user_id`; self-built apps only.
    #[serde(deserialize_with = "opt_string_lenient")]
    pub employee_id: Option<String>,
    #[serde(deserialize_with = "opt_string_lenient")]
    pub union_id: Option<String>,
}

/// `before_status` / `current_status` of `user_status_change`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LegacyStatus {
    #[serde(deserialize_with = "opt_bool_lenient")]
    pub is_active: Option<bool>,
    #[serde(deserialize_with = "opt_bool_lenient")]
    pub is_frozen: Option<bool>,
    #[serde(deserialize_with = "opt_bool_lenient")]
    pub is_resigned: Option<bool>,
}

/// A decoded 1.0 contact event (`event.type`).
#[derive(Debug, Clone, PartialEq)]
pub enum LegacyEvent {
    UserAdd(LegacyUserEvent),
    UserUpdate(LegacyUserEvent),
    UserLeave(LegacyUserEvent),
    UserStatusChange {
        user: LegacyUserEvent,
        before_status: LegacyStatus,
        current_status: LegacyStatus,
        /// Local time as sent, e.g. `"2020-02-21 16:28:48"`.
        change_time: Option<String>,
    },
    DeptAdd {
        open_department_id: Option<String>,
    },
    DeptUpdate {
        open_department_id: Option<String>,
    },
    DeptDelete {
        open_department_id: Option<String>,
    },
    ContactScopeChange,
    /// An unknown type, or a known type whose payload does not decode; `raw` is the whole
    /// `event` value (including `type`, `app_id`, `tenant_key`) exactly as received.
    Unrecognized {
        event_type: String,
        reason: UnrecognizedReason,
        raw: Value,
    },
}

impl LegacyEvent {
    /// The wire name (`event.type`), e.g. `user_add`.
    pub fn event_type(&self) -> &str {
        match self {
            Self::UserAdd(_) => USER_ADD,
            Self::UserUpdate(_) => USER_UPDATE,
            Self::UserLeave(_) => USER_LEAVE,
            Self::UserStatusChange { .. } => USER_STATUS_CHANGE,
            Self::DeptAdd { .. } => DEPT_ADD,
            Self::DeptUpdate { .. } => DEPT_UPDATE,
            Self::DeptDelete { .. } => DEPT_DELETE,
            Self::ContactScopeChange => CONTACT_SCOPE_CHANGE,
            Self::Unrecognized { event_type, .. } => event_type,
        }
    }

    /// The object the ordering guard keys on.
    pub fn affected_object(&self) -> ObjectRef {
        match self {
            Self::UserAdd(user)
            | Self::UserUpdate(user)
            | Self::UserLeave(user)
            | Self::UserStatusChange { user, .. } => {
                object_ref(&[user.open_id.as_deref()], ObjectRef::User)
            }
            Self::DeptAdd { open_department_id }
            | Self::DeptUpdate { open_department_id }
            | Self::DeptDelete { open_department_id } => {
                object_ref(&[open_department_id.as_deref()], ObjectRef::Department)
            }
            Self::ContactScopeChange => ObjectRef::Scope,
            Self::Unrecognized { .. } => ObjectRef::Other,
        }
    }
}

/// The result of [`parse_v1`]: the event plus the app and tenant every 1.0 `event`
/// object carries (the 2.0 envelope has them in its header instead).
///
/// Serializes as the complete 1.0 `event` object (an `Unrecognized` event as its raw
/// value); deserializing goes through [`parse_v1`] and never fails on a JSON value.
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyEnvelopeEvent {
    pub app_id: Option<String>,
    pub tenant_key: Option<String>,
    pub event: LegacyEvent,
}

impl LegacyEnvelopeEvent {
    pub fn event_type(&self) -> &str {
        self.event.event_type()
    }

    pub fn affected_object(&self) -> ObjectRef {
        self.event.affected_object()
    }
}

/// Decodes the `event` object of a 1.0 envelope. Never fails: see [`LegacyEvent::Unrecognized`].
pub fn parse_v1(event: Value) -> LegacyEnvelopeEvent {
    let Value::Object(map) = &event else {
        let reason = bad(format!("`event` is {}, not an object", json_kind(&event)));
        return LegacyEnvelopeEvent {
            app_id: None,
            tenant_key: None,
            event: LegacyEvent::Unrecognized {
                event_type: String::new(),
                reason,
                raw: event,
            },
        };
    };
    let app_id = string_field(map, "app_id");
    let tenant_key = string_field(map, "tenant_key");
    let event_type = string_field(map, "type");
    let decoded = match event_type.as_deref() {
        Some(t) => decode_v1(t, &event, map),
        None => Err(bad("`type` is missing".to_owned())),
    };
    let event = decoded.unwrap_or_else(|reason| LegacyEvent::Unrecognized {
        event_type: event_type.unwrap_or_default(),
        reason,
        raw: event,
    });
    LegacyEnvelopeEvent {
        app_id,
        tenant_key,
        event,
    }
}

fn decode_v1(
    event_type: &str,
    event: &Value,
    map: &Map<String, Value>,
) -> Result<LegacyEvent, UnrecognizedReason> {
    // The user ids sit beside `type` at the top of the event object.
    let user = || LegacyUserEvent::deserialize(event).map_err(|e| bad(e.to_string()));
    let open_department_id = || string_field(map, "open_department_id");
    Ok(match event_type {
        USER_ADD => LegacyEvent::UserAdd(user()?),
        USER_UPDATE => LegacyEvent::UserUpdate(user()?),
        USER_LEAVE => LegacyEvent::UserLeave(user()?),
        USER_STATUS_CHANGE => LegacyEvent::UserStatusChange {
            user: user()?,
            before_status: optional(map, "before_status")?,
            current_status: optional(map, "current_status")?,
            change_time: string_field(map, "change_time"),
        },
        DEPT_ADD => LegacyEvent::DeptAdd {
            open_department_id: open_department_id(),
        },
        DEPT_UPDATE => LegacyEvent::DeptUpdate {
            open_department_id: open_department_id(),
        },
        DEPT_DELETE => LegacyEvent::DeptDelete {
            open_department_id: open_department_id(),
        },
        CONTACT_SCOPE_CHANGE => LegacyEvent::ContactScopeChange,
        _ => return Err(UnrecognizedReason::UnknownType),
    })
}

impl Serialize for LegacyEnvelopeEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if let LegacyEvent::Unrecognized { raw, .. } = &self.event {
            return raw.serialize(s);
        }
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("type", self.event.event_type())?;
        put_opt(&mut m, "app_id", &self.app_id)?;
        put_opt(&mut m, "tenant_key", &self.tenant_key)?;
        match &self.event {
            LegacyEvent::UserAdd(user)
            | LegacyEvent::UserUpdate(user)
            | LegacyEvent::UserLeave(user) => {
                put_user(&mut m, user)?;
            }
            LegacyEvent::UserStatusChange {
                user,
                before_status,
                current_status,
                change_time,
            } => {
                put_user(&mut m, user)?;
                m.serialize_entry("before_status", before_status)?;
                m.serialize_entry("current_status", current_status)?;
                put_opt(&mut m, "change_time", change_time)?;
            }
            LegacyEvent::DeptAdd { open_department_id }
            | LegacyEvent::DeptUpdate { open_department_id }
            | LegacyEvent::DeptDelete { open_department_id } => {
                put_opt(&mut m, "open_department_id", open_department_id)?;
            }
            LegacyEvent::ContactScopeChange | LegacyEvent::Unrecognized { .. } => {}
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for LegacyEnvelopeEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d).map(parse_v1)
    }
}

fn put_opt<M: SerializeMap>(m: &mut M, key: &str, value: &Option<String>) -> Result<(), M::Error> {
    match value {
        Some(v) => m.serialize_entry(key, v),
        None => Ok(()),
    }
}

fn put_user<M: SerializeMap>(m: &mut M, user: &LegacyUserEvent) -> Result<(), M::Error> {
    put_opt(m, "open_id", &user.open_id)?;
    put_opt(m, "employee_id", &user.employee_id)?;
    put_opt(m, "union_id", &user.union_id)
}

// ---- decoding helpers --------------------------------------------------------------

fn bad(why: String) -> UnrecognizedReason {
    UnrecognizedReason::BadPayload(why)
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A sub-object of an event: absent or `null` is `None`; any other non-object is a bad
/// payload (serde would otherwise accept an array as a struct).
fn sub_object<T: DeserializeOwned>(
    event: &Map<String, Value>,
    key: &str,
) -> Result<Option<T>, UnrecognizedReason> {
    match event.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(_)) => T::deserialize(v)
            .map(Some)
            .map_err(|e| bad(format!("`{key}`: {e}"))),
        Some(other) => Err(bad(format!(
            "`{key}` is {}, not an object",
            json_kind(other)
        ))),
    }
}

/// The event's subject; without it the event says nothing.
fn required<T: DeserializeOwned>(
    event: &Map<String, Value>,
    key: &str,
) -> Result<T, UnrecognizedReason> {
    sub_object(event, key)?.ok_or_else(|| bad(format!("`{key}` is missing")))
}

fn optional<T: DeserializeOwned + Default>(
    event: &Map<String, Value>,
    key: &str,
) -> Result<T, UnrecognizedReason> {
    Ok(sub_object(event, key)?.unwrap_or_default())
}

/// A string field, accepting a number too (ids); other shapes are unknown.
fn string_field(map: &Map<String, Value>, key: &str) -> Option<String> {
    match map.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// A list of objects where `null` is empty. Unlike `opt_vec_lenient` a bad element is an
/// error, not dropped: a scope change that silently lost a department would never be
/// reconciled.
fn list_of_objects<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    match Value::deserialize(d)? {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::Object(_) => {
                    T::deserialize(item).map_err(|e| D::Error::custom(format!("element {i}: {e}")))
                }
                other => Err(D::Error::custom(format!(
                    "element {i} is {}, not an object",
                    json_kind(&other)
                ))),
            })
            .collect(),
        other => Err(D::Error::custom(format!(
            "expected a list, got {}",
            json_kind(&other)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v2(event_type: &str, event: Value) -> ContactEvent {
        parse_v2(event_type, event)
    }

    /// Asserts the event decoded and survives serialize → parse unchanged.
    fn assert_round_trips(event: &ContactEvent) {
        let wire = serde_json::to_value(event).unwrap();
        assert_eq!(&parse_v2(event.event_type(), wire), event);
    }

    fn bad_payload_of(event: &ContactEvent) -> &str {
        match event {
            ContactEvent::Unrecognized {
                reason: UnrecognizedReason::BadPayload(why),
                ..
            } => why,
            other => panic!("expected a bad payload, got {other:?}"),
        }
    }

    // ---- users ----

    #[test]
    fn user_created_carries_the_full_user_event() {
        let event = v2(
            USER_CREATED_V3,
            json!({"object": {
                "open_id": "ou_7dab8a3d3cdcc9da365777c7ad535d62",
                "union_id": "on_576833b917gda3d939b9a3c2d53e72c8",
                "user_id": "e33ggbyz", "name": "张三", "en_name": "San Zhang",
                "nickname": null, "email": "zhangsan@example.com",
                "mobile": "+8613000000000", "mobile_visible": false, "gender": 1,
                "avatar": {"avatar_72": "https://x/72.png", "avatar_origin": "https://x/o.png"},
                "status": {"is_frozen": false, "is_resigned": false, "is_activated": true,
                           "is_exited": false, "is_unjoin": false},
                "department_ids": ["od-4e6ac4d14bcd5071a37a39de902c7141"],
                "leader_user_id": "ou_leader", "city": "杭州", "country": "CN",
                "work_station": "A-1", "join_time": 1615381702, "is_tenant_manager": false,
                "employee_no": "1", "employee_type": 1,
                "positions": [{"position_code": "p1", "is_major": true}],
                "orders": [{"department_id": "od-4e6ac4d14bcd5071a37a39de902c7141",
                            "user_order": 100, "department_order": 100, "is_primary_dept": true}],
                "time_zone": "Asia/Shanghai",
                "custom_attrs": [{"type": "TEXT", "id": "C-1", "value": {"text": "x"}}],
                "job_level_id": "jl_1", "job_family_id": "jf_1",
                "dotted_line_leader_user_ids": ["ou_dotted"],
                "a_field_from_the_future": {"x": 1}
            }}),
        );
        let ContactEvent::UserCreated { object } = &event else {
            panic!("{event:?}")
        };
        assert_eq!(
            object.open_id.as_deref(),
            Some("ou_7dab8a3d3cdcc9da365777c7ad535d62")
        );
        assert_eq!(object.user_id.as_deref(), Some("e33ggbyz"));
        assert_eq!(object.name.as_deref(), Some("张三"));
        assert_eq!(object.nickname, None);
        assert_eq!(object.join_time, Some(1_615_381_702));
        assert_eq!(object.employee_type, Some(1));
        assert_eq!(object.is_resigned(), Some(false));
        assert_eq!(
            object.primary_department(),
            Some("od-4e6ac4d14bcd5071a37a39de902c7141")
        );
        assert_eq!(
            object.dotted_line_leader_user_ids.as_ref().unwrap(),
            &["ou_dotted"]
        );
        assert_eq!(object.custom_attrs.as_ref().unwrap().len(), 1);
        assert_eq!(event.event_type(), USER_CREATED_V3);
        assert_round_trips(&event);
    }

    #[test]
    fn plaintext_b_of_the_decryption_vectors_parses() {
        // §6.1 (B): the Go SDK's test envelope, with raw UTF-8 张三.
        let body = r#"{"schema":"2.0","header":{"event_id":"f7984f25108f8137722bb63cee927e66","event_type":"contact.user.created_v3","app_id":"cli_xxxxxxxx","tenant_key":"xxxxxxx","create_time":"1603977298000000","token":"v"},"event":{"object":{"open_id":"ou_7dab8a3d3cdcc9da365777c7ad535d62","union_id":"on_576833b917gda3d939b9a3c2d53e72c8","user_id":"e33ggbyz","name":"张三","employee_no":"employee_no"}},"challenge":"1212","type":"url_verification"}"#;
        let mut envelope: Value = serde_json::from_str(body).unwrap();
        let event_type = envelope["header"]["event_type"]
            .as_str()
            .unwrap()
            .to_owned();
        let event = parse_v2(&event_type, envelope["event"].take());
        let ContactEvent::UserCreated { object } = &event else {
            panic!("{event:?}")
        };
        assert_eq!(object.name.as_deref(), Some("张三"));
        assert_eq!(object.employee_no.as_deref(), Some("employee_no"));
        assert_eq!(
            object.union_id.as_deref(),
            Some("on_576833b917gda3d939b9a3c2d53e72c8")
        );
        assert_eq!(
            event.affected_object(),
            ObjectRef::User("ou_7dab8a3d3cdcc9da365777c7ad535d62".into())
        );
    }

    #[test]
    fn suspension_arrives_as_an_update_with_the_old_status() {
        // The §5.1 example: only `status` changed, so `old_object` has nothing else.
        let event = v2(
            USER_UPDATED_V3,
            json!({"object": {"open_id": "ou_1", "union_id": "on_1", "name": "张三",
                "status": {"is_frozen": true, "is_resigned": false, "is_activated": true,
                           "is_exited": false, "is_unjoin": false}},
             "old_object": {"status": {"is_frozen": false, "is_resigned": false,
                           "is_activated": true, "is_exited": false, "is_unjoin": false}}}),
        );
        let ContactEvent::UserUpdated { object, old_object } = &event else {
            panic!("{event:?}")
        };
        assert_eq!(object.is_frozen(), Some(true));
        assert_eq!(old_object.is_frozen(), Some(false));
        assert_eq!(old_object.open_id, None);
        assert_eq!(old_object.name, None);
        assert_eq!(event.affected_object(), ObjectRef::User("ou_1".into()));
        assert_round_trips(&event);
    }

    #[test]
    fn user_update_without_old_object_or_with_null_is_tolerated() {
        for old in [json!(null), json!({})] {
            let event = v2(
                USER_UPDATED_V3,
                json!({"object": {"open_id": "ou_1", "email": null, "leader_user_id": null},
                       "old_object": old}),
            );
            let ContactEvent::UserUpdated { object, old_object } = event else {
                panic!("{event:?}")
            };
            assert_eq!(object.email, None);
            assert_eq!(old_object, User::default());
        }
        let event = v2(USER_UPDATED_V3, json!({"object": {"open_id": "ou_1"}}));
        assert!(matches!(event, ContactEvent::UserUpdated { .. }));
    }

    #[test]
    fn user_deleted_keeps_the_departments_before_the_departure() {
        let event = v2(
            USER_DELETED_V3,
            json!({"object": {"open_id": "ou_1", "union_id": "on_1", "user_id": "u1",
                              "name": "李四", "department_ids": [],
                              "status": {"is_resigned": true, "is_activated": false}},
                   "old_object": {"department_ids": ["od-a", "od-b"], "open_id": "ou_1"}}),
        );
        let ContactEvent::UserDeleted { object, old_object } = &event else {
            panic!("{event:?}")
        };
        assert_eq!(object.is_resigned(), Some(true));
        assert_eq!(
            old_object.department_ids.as_deref(),
            Some(&["od-a".to_owned(), "od-b".to_owned()][..])
        );
        assert_eq!(old_object.open_id.as_deref(), Some("ou_1"));
        assert_eq!(event.affected_object(), ObjectRef::User("ou_1".into()));
        assert_round_trips(&event);
    }

    // ---- departments ----

    fn department_event(order: Value) -> Value {
        json!({
            "name": "研发", "parent_department_id": "od-parent", "department_id": "D096",
            "open_department_id": "od-4e6ac4d14bcd5071a37a39de902c7141",
            "leader_user_id": "ou_leader", "chat_id": "oc_1", "order": order,
            "unit_ids": ["u-1"], "status": {"is_deleted": false},
            "leaders": [{"leaderType": 1, "leaderID": "ou_leader"},
                        {"leaderType": 2, "leaderID": "ou_deputy"}],
            "department_hrbps": [{"user_id": "h1", "open_id": "ou_hrbp", "union_id": "on_hrbp"}]
        })
    }

    #[test]
    fn department_created_accepts_order_as_number_camel_case_leaders_and_hrbp_objects() {
        let event = v2(
            DEPARTMENT_CREATED_V3,
            json!({"object": department_event(json!(100))}),
        );
        let ContactEvent::DepartmentCreated { object } = &event else {
            panic!("{event:?}")
        };
        assert_eq!(object.order, Some(100));
        assert_eq!(object.parent_department_id.as_deref(), Some("od-parent"));
        assert_eq!(object.main_leader(), Some("ou_leader"));
        assert_eq!(object.leaders.as_ref().unwrap().len(), 2);
        let hrbps = object.department_hrbps.as_ref().unwrap();
        assert_eq!(hrbps[0].best_id(), Some("ou_hrbp"));
        assert_eq!(
            event.affected_object(),
            ObjectRef::Department("od-4e6ac4d14bcd5071a37a39de902c7141".into())
        );
        assert_round_trips(&event);
    }

    #[test]
    fn department_updated_accepts_order_as_string_and_a_partial_old_object() {
        let event = v2(
            DEPARTMENT_UPDATED_V3,
            json!({"object": department_event(json!("200")),
                   "old_object": {"name": "旧名", "order": 100, "leaders": null}}),
        );
        let ContactEvent::DepartmentUpdated { object, old_object } = &event else {
            panic!("{event:?}")
        };
        assert_eq!(object.order, Some(200));
        assert_eq!(object.name.as_deref(), Some("研发"));
        assert_eq!(old_object.name.as_deref(), Some("旧名"));
        assert_eq!(old_object.order, Some(100));
        assert_eq!(old_object.leaders, None);
        assert_eq!(old_object.open_department_id, None);
        assert_round_trips(&event);
    }

    #[test]
    fn department_deleted_carries_the_deleted_status() {
        let mut object = department_event(json!(0));
        object["status"] = json!({"is_deleted": true});
        let event = v2(
            DEPARTMENT_DELETED_V3,
            json!({"object": object,
                   "old_object": {"status": {"is_deleted": false}, "open_department_id": "od-4e6ac4d14bcd5071a37a39de902c7141"}}),
        );
        let ContactEvent::DepartmentDeleted { object, old_object } = &event else {
            panic!("{event:?}")
        };
        assert!(object.is_deleted());
        assert_eq!(old_object.status.as_ref().unwrap().is_deleted, Some(false));
        assert_eq!(
            old_object.open_department_id.as_deref(),
            Some("od-4e6ac4d14bcd5071a37a39de902c7141")
        );
        assert_round_trips(&event);
    }

    // ---- scope ----

    #[test]
    fn scope_update_lists_departments_users_and_groups() {
        let event = v2(
            SCOPE_UPDATED_V3,
            json!({
                "added": {
                    "departments": [{"name": "销售", "open_department_id": "od-sales",
                                     "department_id": "D1", "parent_department_id": "0",
                                     "order": "300", "member_count": 12, "status": {"is_deleted": false}}],
                    "users": [{"open_id": "ou_new", "name": "王五", "department_ids": ["od-sales"]}],
                    "user_groups": [{"user_group_id": "g1", "name": "Ops", "type": 1,
                                     "member_count": 3, "status": 1}]
                },
                "removed": {"departments": null, "users": [{"open_id": "ou_gone"}]}
            }),
        );
        let ContactEvent::ScopeUpdated { added, removed } = &event else {
            panic!("{event:?}")
        };
        assert_eq!(added.departments[0].order, Some(300));
        assert_eq!(added.departments[0].member_count, Some(12));
        assert_eq!(added.users[0].open_id.as_deref(), Some("ou_new"));
        assert_eq!(added.user_groups[0].user_group_id.as_deref(), Some("g1"));
        assert_eq!(added.user_groups[0].kind, Some(1));
        assert!(removed.departments.is_empty());
        assert!(removed.user_groups.is_empty());
        assert_eq!(removed.users[0].open_id.as_deref(), Some("ou_gone"));
        assert_eq!(event.affected_object(), ObjectRef::Scope);
        assert_round_trips(&event);
    }

    #[test]
    fn scope_update_with_null_or_absent_sides_is_empty() {
        for payload in [json!({}), json!({"added": null, "removed": {}})] {
            let ContactEvent::ScopeUpdated { added, removed } = v2(SCOPE_UPDATED_V3, payload)
            else {
                panic!("not a scope update")
            };
            assert!(added.is_empty() && removed.is_empty());
        }
    }

    // ---- user groups, custom attributes, employee types ----

    #[test]
    fn user_group_events_carry_the_group_ref() {
        let group = json!({"user_group_id": "g1", "name": "Ops"});
        for (event_type, expect) in [
            (USER_GROUP_CREATED_V3, "created"),
            (USER_GROUP_DELETED_V3, "deleted"),
            (USER_GROUP_MEMBER_CHANGED_V3, "member"),
        ] {
            let event = v2(event_type, json!({"object": group}));
            let object = match (&event, expect) {
                (ContactEvent::UserGroupCreated { object }, "created")
                | (ContactEvent::UserGroupDeleted { object }, "deleted")
                | (ContactEvent::UserGroupMemberChanged { object }, "member") => object,
                _ => panic!("{event_type}: {event:?}"),
            };
            assert_eq!(object.name.as_deref(), Some("Ops"));
            assert_eq!(event.affected_object(), ObjectRef::Group("g1".into()));
            assert_eq!(event.event_type(), event_type);
            assert_round_trips(&event);
        }
        let event = v2(
            USER_GROUP_UPDATED_V3,
            json!({"object": group, "old_object": {"user_group_id": "g1", "name": "Operations"}}),
        );
        let ContactEvent::UserGroupUpdated { object, old_object } = &event else {
            panic!("{event:?}")
        };
        assert_eq!(object.name.as_deref(), Some("Ops"));
        assert_eq!(old_object.name.as_deref(), Some("Operations"));
        assert_round_trips(&event);
    }

    #[test]
    fn custom_attr_update_carries_field_keys() {
        let event = v2(
            CUSTOM_ATTR_UPDATED_V3,
            json!({"object": {"contact_field_key": ["C-1", "C-2"], "allow_open_query": true},
                   "old_object": {"contact_field_key": ["C-1"], "allow_open_query": false}}),
        );
        let ContactEvent::CustomAttrUpdated { object, old_object } = &event else {
            panic!("{event:?}")
        };
        assert_eq!(object.contact_field_key.as_ref().unwrap(), &["C-1", "C-2"]);
        assert_eq!(object.allow_open_query, Some(true));
        assert_eq!(old_object.allow_open_query, Some(false));
        assert_eq!(event.affected_object(), ObjectRef::Other);
        assert_round_trips(&event);
    }

    #[test]
    fn every_employee_type_enum_change_decodes() {
        let option = |status: i64| {
            json!({"enum_id": "exGeIjow7zIqWMy+ONkFxA==", "enum_value": "2", "content": "专家",
                   "enum_type": 2, "enum_status": status,
                   "i18n_content": [{"locale": "zh_cn", "value": "专家"}, {"locale": "en_us", "value": "Expert"}]})
        };
        for change in EmployeeTypeEnumChange::ALL {
            let event = v2(
                change.event_type(),
                json!({"old_enum": option(2), "new_enum": option(1)}),
            );
            let ContactEvent::EmployeeTypeEnum {
                change: got,
                old_enum,
                new_enum,
            } = &event
            else {
                panic!("{event:?}")
            };
            assert_eq!(*got, change);
            assert_eq!(old_enum.as_ref().unwrap().enum_status, Some(2));
            let new_enum = new_enum.as_ref().unwrap();
            assert_eq!(new_enum.enum_status, Some(1));
            assert_eq!(new_enum.content.as_deref(), Some("专家"));
            assert_eq!(
                new_enum.i18n_content.as_ref().unwrap()[1].value.as_deref(),
                Some("Expert")
            );
            assert_eq!(event.event_type(), change.event_type());
            assert_eq!(event.affected_object(), ObjectRef::Other);
            assert_round_trips(&event);
        }
        // Created has no old option.
        let event = v2(
            EMPLOYEE_TYPE_ENUM_CREATED_V3,
            json!({"new_enum": option(1)}),
        );
        assert!(matches!(
            event,
            ContactEvent::EmployeeTypeEnum {
                old_enum: None,
                new_enum: Some(_),
                ..
            }
        ));
        assert_round_trips(&event);
    }

    #[test]
    fn every_known_type_decodes_and_names_itself() {
        // A minimal payload with every sub-object any type needs.
        let payload = json!({"object": {}, "old_object": {}, "added": {}, "removed": {},
                             "old_enum": {}, "new_enum": {}});
        for event_type in V2_EVENT_TYPES {
            assert!(is_known_v2_type(event_type));
            let event = v2(event_type, payload.clone());
            assert!(
                !matches!(event, ContactEvent::Unrecognized { .. }),
                "{event_type}: {event:?}"
            );
            assert_eq!(event.event_type(), event_type);
            assert_round_trips(&event);
        }
        assert!(!is_known_v2_type("contact.user.created_v2"));
        for event_type in V1_EVENT_TYPES {
            assert!(is_known_v1_type(event_type));
            let event = parse_v1(json!({"type": event_type}));
            assert_eq!(event.event_type(), event_type);
            assert!(!matches!(event.event, LegacyEvent::Unrecognized { .. }));
        }
        assert!(!is_known_v1_type("event_callback"));
    }

    // ---- what does not decode ----

    #[test]
    fn a_known_type_with_a_bad_payload_keeps_the_raw_event() {
        let cases = [
            (
                USER_CREATED_V3,
                json!({"object": "ou_1"}),
                "`object` is a string",
            ),
            (
                USER_CREATED_V3,
                json!({"object": ["ou_1"]}),
                "`object` is an array",
            ),
            (
                USER_CREATED_V3,
                json!({"object": null}),
                "`object` is missing",
            ),
            (
                USER_UPDATED_V3,
                json!({"old_object": {}}),
                "`object` is missing",
            ),
            (
                USER_DELETED_V3,
                json!({"object": {}, "old_object": 7}),
                "`old_object` is a number",
            ),
            (
                USER_CREATED_V3,
                json!({"object": {"name": 5}}),
                "`object`: invalid type",
            ),
            (
                USER_CREATED_V3,
                json!([{"object": {}}]),
                "`event` is an array",
            ),
            (DEPARTMENT_CREATED_V3, json!("x"), "`event` is a string"),
            (
                SCOPE_UPDATED_V3,
                json!({"added": {"departments": "od-1"}}),
                "`added`: expected a list",
            ),
            (
                SCOPE_UPDATED_V3,
                json!({"removed": {"users": [{"open_id": "ou_1"}, "ou_2"]}}),
                "element 1 is a string",
            ),
            (
                EMPLOYEE_TYPE_ENUM_UPDATED_V3,
                json!({"new_enum": true}),
                "`new_enum` is a boolean",
            ),
        ];
        for (event_type, payload, why) in cases {
            let event = v2(event_type, payload.clone());
            let reason = bad_payload_of(&event);
            assert!(reason.contains(why), "{event_type} {payload}: {reason}");
            let ContactEvent::Unrecognized {
                event_type: t, raw, ..
            } = &event
            else {
                unreachable!()
            };
            assert_eq!(t, event_type);
            assert_eq!(raw, &payload);
            assert_eq!(event.event_type(), event_type);
            assert_eq!(event.affected_object(), ObjectRef::Other);
            // The raw event is what gets serialized back.
            assert_eq!(serde_json::to_value(&event).unwrap(), payload);
        }
    }

    #[test]
    fn an_unknown_type_is_unrecognized_and_kept() {
        let raw = json!({"object": {"chat_id": "oc_1"}});
        let event = v2("im.chat.updated_v1", raw.clone());
        assert_eq!(
            event,
            ContactEvent::Unrecognized {
                event_type: "im.chat.updated_v1".into(),
                reason: UnrecognizedReason::UnknownType,
                raw
            }
        );
        assert_eq!(event.event_type(), "im.chat.updated_v1");
        // Unknown wins over a bad shape: we cannot judge the payload of a type we do not know.
        let event = v2("x.y", json!(3));
        assert!(matches!(
            event,
            ContactEvent::Unrecognized {
                reason: UnrecognizedReason::UnknownType,
                ..
            }
        ));
    }

    #[test]
    fn affected_object_falls_back_to_old_object_and_else_is_other() {
        let event = v2(
            USER_DELETED_V3,
            json!({"object": {"name": "x"}, "old_object": {"open_id": "ou_old"}}),
        );
        assert_eq!(event.affected_object(), ObjectRef::User("ou_old".into()));
        let event = v2(
            DEPARTMENT_DELETED_V3,
            json!({"object": {}, "old_object": {"open_department_id": "od-old"}}),
        );
        assert_eq!(
            event.affected_object(),
            ObjectRef::Department("od-old".into())
        );
        let event = v2(USER_CREATED_V3, json!({"object": {"open_id": ""}}));
        assert_eq!(event.affected_object(), ObjectRef::Other);
        let event = v2(USER_GROUP_UPDATED_V3, json!({"object": {"name": "n"}}));
        assert_eq!(event.affected_object(), ObjectRef::Other);
    }

    // ---- 1.0 ----

    #[test]
    fn legacy_user_events_carry_ids_app_and_tenant() {
        for (event_type, variant) in [(USER_ADD, 0), (USER_UPDATE, 1), (USER_LEAVE, 2)] {
            let raw = json!({"type": event_type, "app_id": "cli_9c8609450f78d102",
                             "tenant_key": "736588c9260f175c", "open_id": "ou_1",
                             "employee_id": "e1", "union_id": "on_1", "something_new": 1});
            let parsed = parse_v1(raw);
            assert_eq!(parsed.app_id.as_deref(), Some("cli_9c8609450f78d102"));
            assert_eq!(parsed.tenant_key.as_deref(), Some("736588c9260f175c"));
            let user = match (&parsed.event, variant) {
                (LegacyEvent::UserAdd(u), 0)
                | (LegacyEvent::UserUpdate(u), 1)
                | (LegacyEvent::UserLeave(u), 2) => u,
                other => panic!("{event_type}: {other:?}"),
            };
            assert_eq!(user.employee_id.as_deref(), Some("e1"));
            assert_eq!(user.union_id.as_deref(), Some("on_1"));
            assert_eq!(parsed.event_type(), event_type);
            assert_eq!(parsed.affected_object(), ObjectRef::User("ou_1".into()));
            assert_legacy_round_trips(&parsed);
        }
    }

    #[test]
    fn legacy_status_change_carries_both_statuses() {
        let parsed = parse_v1(json!({
            "type": "user_status_change", "app_id": "cli_1", "tenant_key": "t1",
            "open_id": "ou_1", "employee_id": "e1", "union_id": "on_1",
            "before_status": {"is_active": true, "is_frozen": false, "is_resigned": false},
            "current_status": {"is_active": true, "is_frozen": true, "is_resigned": null},
            "change_time": "2020-02-21 16:28:48"
        }));
        let LegacyEvent::UserStatusChange {
            user,
            before_status,
            current_status,
            change_time,
        } = &parsed.event
        else {
            panic!("{parsed:?}")
        };
        assert_eq!(user.open_id.as_deref(), Some("ou_1"));
        assert_eq!(before_status.is_frozen, Some(false));
        assert_eq!(current_status.is_frozen, Some(true));
        assert_eq!(current_status.is_resigned, None);
        assert_eq!(change_time.as_deref(), Some("2020-02-21 16:28:48"));
        assert_eq!(parsed.affected_object(), ObjectRef::User("ou_1".into()));
        assert_legacy_round_trips(&parsed);
    }

    #[test]
    fn legacy_department_and_scope_events() {
        for event_type in [DEPT_ADD, DEPT_UPDATE, DEPT_DELETE] {
            let parsed = parse_v1(json!({"type": event_type, "app_id": "cli_1",
                                         "tenant_key": "t1", "open_department_id": "od-1"}));
            let id = match &parsed.event {
                LegacyEvent::DeptAdd { open_department_id }
                | LegacyEvent::DeptUpdate { open_department_id }
                | LegacyEvent::DeptDelete { open_department_id } => open_department_id,
                other => panic!("{other:?}"),
            };
            assert_eq!(id.as_deref(), Some("od-1"));
            assert_eq!(parsed.event_type(), event_type);
            assert_eq!(
                parsed.affected_object(),
                ObjectRef::Department("od-1".into())
            );
            assert_legacy_round_trips(&parsed);
        }
        let parsed = parse_v1(json!({"type": "contact_scope_change", "app_id": "cli_1",
                                     "tenant_key": "t1"}));
        assert_eq!(parsed.event, LegacyEvent::ContactScopeChange);
        assert_eq!(parsed.affected_object(), ObjectRef::Scope);
        assert_legacy_round_trips(&parsed);
    }

    #[test]
    fn legacy_unknown_and_bad_payloads_are_kept() {
        let raw = json!({"type": "message", "app_id": "cli_1", "tenant_key": "t1", "text": "hi"});
        let parsed = parse_v1(raw.clone());
        assert_eq!(parsed.app_id.as_deref(), Some("cli_1"));
        assert_eq!(
            parsed.event,
            LegacyEvent::Unrecognized {
                event_type: "message".into(),
                reason: UnrecognizedReason::UnknownType,
                raw: raw.clone()
            }
        );
        assert_eq!(serde_json::to_value(&parsed).unwrap(), raw);

        let raw = json!({"type": "user_status_change", "app_id": "cli_1", "before_status": "x"});
        let parsed = parse_v1(raw.clone());
        let LegacyEvent::Unrecognized {
            event_type,
            reason,
            raw: kept,
        } = &parsed.event
        else {
            panic!("{parsed:?}")
        };
        assert_eq!(event_type, USER_STATUS_CHANGE);
        assert!(
            matches!(reason, UnrecognizedReason::BadPayload(why) if why.contains("before_status"))
        );
        assert_eq!(kept, &raw);
        assert_eq!(parsed.app_id.as_deref(), Some("cli_1"));

        for raw in [json!({"app_id": "cli_1"}), json!("user_add"), json!(null)] {
            let parsed = parse_v1(raw.clone());
            assert!(
                matches!(&parsed.event, LegacyEvent::Unrecognized { reason: UnrecognizedReason::BadPayload(_), raw: kept, .. } if kept == &raw),
                "{parsed:?}"
            );
            assert_eq!(parsed.affected_object(), ObjectRef::Other);
        }
    }

    fn assert_legacy_round_trips(event: &LegacyEnvelopeEvent) {
        let wire = serde_json::to_value(event).unwrap();
        assert_eq!(&parse_v1(wire.clone()), event);
        let via_serde: LegacyEnvelopeEvent = serde_json::from_value(wire).unwrap();
        assert_eq!(&via_serde, event);
    }

    #[test]
    fn legacy_serializes_to_the_wire_shape() {
        let event = LegacyEnvelopeEvent {
            app_id: Some("cli_1".into()),
            tenant_key: Some("t1".into()),
            event: LegacyEvent::UserLeave(LegacyUserEvent {
                open_id: Some("ou_1".into()),
                employee_id: None,
                union_id: Some("on_1".into()),
            }),
        };
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            json!({"type": "user_leave", "app_id": "cli_1", "tenant_key": "t1",
                   "open_id": "ou_1", "union_id": "on_1"})
        );
    }

    #[test]
    fn v2_serializes_to_the_wire_shape() {
        let event = ContactEvent::UserDeleted {
            object: User {
                open_id: Some("ou_1".into()),
                ..User::default()
            },
            old_object: UserDeletedOld {
                department_ids: Some(vec!["od-1".into()]),
                open_id: Some("ou_1".into()),
            },
        };
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            json!({"object": {"open_id": "ou_1"},
                   "old_object": {"department_ids": ["od-1"], "open_id": "ou_1"}})
        );
        let event = ContactEvent::DepartmentCreated {
            object: Department {
                open_department_id: Some("od-1".into()),
                order: Some(5),
                ..Department::default()
            },
        };
        // The shared model writes `order` API-style, as a string; parsing accepts both.
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            json!({"object": {"open_department_id": "od-1", "order": "5"}})
        );
    }

    // ---- never panics, never loses the raw event ----

    mod properties {
        use super::*;
        use proptest::prelude::*;

        // Field names by wire type, so generated payloads reach deep into the decoders.
        const STRING_FIELDS: &str = "open_id union_id user_id name email department_id \
            open_department_id parent_department_id user_group_id enum_id enum_value content \
            locale value leaderID avatar_72 employee_id change_time app_id tenant_key";
        const BOOL_FIELDS: &str = "is_frozen is_deleted is_resigned is_activated \
            is_primary_dept allow_open_query is_active mobile_visible";
        const INT_FIELDS: &str = "order join_time user_order member_count employee_type \
            enum_status enum_type leaderType type gender";
        const STRING_LIST_FIELDS: &str = "department_ids contact_field_key unit_ids";
        const OBJECT_FIELDS: &str = "status avatar before_status current_status";
        const OBJECT_LIST_FIELDS: &str = "leaders orders i18n_content department_hrbps";
        /// `object` repeated: most real payloads have one.
        const SUB_OBJECTS: &str =
            "object object object object old_object old_object added removed old_enum new_enum x";
        const SCOPE_LISTS: &str = "departments users user_groups";

        fn names(lists: &[&'static str]) -> Vec<&'static str> {
            lists.iter().flat_map(|l| l.split_whitespace()).collect()
        }

        fn is_in(list: &'static str, field: &str) -> bool {
            list.split_whitespace().any(|f| f == field)
        }

        fn noise() -> BoxedStrategy<Value> {
            prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                (-1.0e6f64..1.0e6).prop_map(Value::from),
                "[a-z0-9_ -]{0,6}".prop_map(Value::from),
                Just(json!([])),
                Just(json!({})),
            ]
            .boxed()
        }

        /// A scalar of the field's wire type (in each of its observed spellings); now and
        /// then null or anything at all.
        fn scalar_for(field: &str) -> BoxedStrategy<Value> {
            let typed = if is_in(BOOL_FIELDS, field) {
                prop_oneof![
                    any::<bool>().prop_map(Value::from),
                    Just(json!("true")),
                    Just(json!("false")),
                    (0i64..2).prop_map(Value::from),
                ]
                .boxed()
            } else if is_in(INT_FIELDS, field) {
                prop_oneof![
                    (-3i64..300).prop_map(Value::from),
                    any::<i64>().prop_map(Value::from),
                    (0i64..1000).prop_map(|i| Value::from(i.to_string())),
                    (0i64..1000).prop_map(|i| Value::from(i as f64)),
                    Just(json!(1.5)),
                ]
                .boxed()
            } else {
                "(ou_|od-|on_)?[a-z0-9张三]{0,6}"
                    .prop_map(Value::from)
                    .boxed()
            };
            prop_oneof![16 => typed, 1 => Just(Value::Null), 1 => noise()].boxed()
        }

        fn flat_object() -> BoxedStrategy<Value> {
            object_of(names(&[STRING_FIELDS, BOOL_FIELDS, INT_FIELDS]), |k| {
                scalar_for(k)
            })
        }

        fn value_for(field: &'static str) -> BoxedStrategy<Value> {
            let typed = if is_in(STRING_LIST_FIELDS, field) {
                prop::collection::vec(scalar_for("open_id"), 0..3)
                    .prop_map(Value::Array)
                    .boxed()
            } else if is_in(OBJECT_FIELDS, field) {
                flat_object()
            } else if is_in(OBJECT_LIST_FIELDS, field) {
                let element = prop_oneof![4 => flat_object(), 1 => scalar_for("open_id")];
                prop::collection::vec(element, 0..3)
                    .prop_map(Value::Array)
                    .boxed()
            } else {
                return scalar_for(field);
            };
            prop_oneof![12 => typed, 1 => noise()].boxed()
        }

        fn object_of(
            keys: Vec<&'static str>,
            value: fn(&'static str) -> BoxedStrategy<Value>,
        ) -> BoxedStrategy<Value> {
            let entry = prop::sample::select(keys).prop_flat_map(move |k| (Just(k), value(k)));
            prop::collection::vec(entry, 0..12)
                .prop_map(|kv| {
                    Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                })
                .boxed()
        }

        /// A user / department / group / enum object.
        fn event_object() -> BoxedStrategy<Value> {
            object_of(
                names(&[
                    STRING_FIELDS,
                    BOOL_FIELDS,
                    INT_FIELDS,
                    STRING_LIST_FIELDS,
                    OBJECT_FIELDS,
                    OBJECT_LIST_FIELDS,
                ]),
                value_for,
            )
        }

        fn scope_list(_: &'static str) -> BoxedStrategy<Value> {
            prop_oneof![
                12 => prop::collection::vec(event_object(), 0..3).prop_map(Value::Array),
                1 => noise(),
            ]
            .boxed()
        }

        fn sub_object_value(_: &'static str) -> BoxedStrategy<Value> {
            prop_oneof![
                8 => event_object(),
                4 => object_of(names(&[SCOPE_LISTS]), scope_list),
                1 => noise(),
            ]
            .boxed()
        }

        fn v2_payload() -> BoxedStrategy<Value> {
            prop_oneof![
                12 => object_of(names(&[SUB_OBJECTS]), sub_object_value),
                1 => noise(),
            ]
            .boxed()
        }

        fn v1_payload() -> BoxedStrategy<Value> {
            let known = (
                prop::sample::select(V1_EVENT_TYPES.to_vec()),
                event_object(),
            )
                .prop_map(|(t, mut event)| {
                    if let Value::Object(map) = &mut event {
                        map.insert("type".to_owned(), Value::from(t));
                    }
                    event
                });
            prop_oneof![8 => known, 1 => event_object(), 1 => noise()].boxed()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Never panics; an unrecognized event keeps its raw value; a decoded one
            /// survives serialize → parse unchanged.
            #[test]
            fn v2_never_loses_an_event(raw in v2_payload(), pick in 0usize..18) {
                let event_type = V2_EVENT_TYPES.get(pick).copied().unwrap_or("contact.new_v9");
                let event = parse_v2(event_type, raw.clone());
                prop_assert_eq!(event.event_type(), event_type);
                match &event {
                    ContactEvent::Unrecognized { raw: kept, .. } => prop_assert_eq!(kept, &raw),
                    decoded => {
                        let again = parse_v2(event_type, serde_json::to_value(decoded).unwrap());
                        prop_assert_eq!(&again, decoded);
                    }
                }
            }

            #[test]
            fn v1_never_loses_an_event(raw in v1_payload()) {
                let parsed = parse_v1(raw.clone());
                match &parsed.event {
                    LegacyEvent::Unrecognized { raw: kept, .. } => prop_assert_eq!(kept, &raw),
                    _ => {
                        let again = parse_v1(serde_json::to_value(&parsed).unwrap());
                        prop_assert_eq!(&again, &parsed);
                    }
                }
            }
        }
    }
}
