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
/// User-group events are absent from current SDKs; still delivered? Unverified (§5.1).
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

    /// The object the ordering guard keys on. `old_object` ids are the fallback because
    /// `object` may lack fields the app is not allowed to read.
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
