//! Wire types of the Contact v3 Open API (protocol §2, §3.5–3.7).
//!
//! Every field is optional: Feishu drops fields the app has no permission for, sends
//! explicit `null`s and adds fields over time. `None` means *unknown*, never *cleared*
//! (design.md §2). Serialising skips `None`, so the emulator can use the same types to
//! answer exactly the fields an app may see.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_with::skip_serializing_none;

use crate::serde_util::{
    opt_bool_lenient, opt_i64_as_string, opt_i64_lenient, opt_string_lenient,
    opt_string_vec_lenient, opt_struct_lenient, opt_vec_lenient,
};

/// `{"code": int, "msg": string, "data": {...}}`, plus the optional `error` detail.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiResponse<T> {
    pub code: i64,
    pub msg: String,
    pub data: Option<T>,
    pub error: Option<ApiErrorDetail>,
}

/// The `error` object some failures carry (Go SDK `CodeError`).
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiErrorDetail {
    pub log_id: Option<String>,
    pub troubleshooter: Option<String>,
    #[serde(deserialize_with = "opt_vec_lenient")]
    pub details: Option<Vec<ErrorKeyValue>>,
    #[serde(deserialize_with = "opt_vec_lenient")]
    pub permission_violations: Option<Vec<PermissionViolation>>,
    #[serde(deserialize_with = "opt_vec_lenient")]
    pub field_violations: Option<Vec<FieldViolation>>,
}

#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ErrorKeyValue {
    pub key: Option<String>,
    pub value: Option<String>,
}

/// One missing API permission; `subject` is the scope name (e.g. `contact:contact.base:readonly`).
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PermissionViolation {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub subject: Option<String>,
    pub description: Option<String>,
}

#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FieldViolation {
    pub field: Option<String>,
    pub value: Option<String>,
    pub description: Option<String>,
}

/// The token endpoint answers at the top level, not inside `data` (protocol §1.2).
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TenantTokenResponse {
    pub code: i64,
    pub msg: String,
    pub tenant_access_token: Option<String>,
    /// Remaining lifetime in seconds.
    #[serde(deserialize_with = "opt_i64_lenient")]
    pub expire: Option<i64>,
}

/// The request body of `POST /open-apis/auth/v3/tenant_access_token/internal`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantTokenRequest {
    pub app_id: String,
    pub app_secret: String,
}

/// A page of a list endpoint. Group endpoints name their list `grouplist` / `memberlist`.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ListData<T> {
    #[serde(alias = "grouplist", alias = "memberlist")]
    pub items: Option<Vec<T>>,
    #[serde(deserialize_with = "opt_bool_lenient")]
    pub has_more: Option<bool>,
    pub page_token: Option<String>,
}

impl<T> Default for ListData<T> {
    fn default() -> Self {
        Self {
            items: None,
            has_more: None,
            page_token: None,
        }
    }
}

/// `data` of `GET /contact/v3/scopes`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScopesData {
    #[serde(deserialize_with = "opt_string_vec_lenient")]
    pub department_ids: Option<Vec<String>>,
    #[serde(deserialize_with = "opt_string_vec_lenient")]
    pub user_ids: Option<Vec<String>>,
    #[serde(deserialize_with = "opt_string_vec_lenient")]
    pub group_ids: Option<Vec<String>>,
    #[serde(deserialize_with = "opt_bool_lenient")]
    pub has_more: Option<bool>,
    pub page_token: Option<String>,
}

/// `data` of `GET /departments/:id`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DepartmentData {
    pub department: Option<Department>,
}

/// `data` of `GET /users/:id`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserData {
    pub user: Option<User>,
}

/// `data` of `GET /group/:id`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GroupData {
    pub group: Option<Group>,
}

/// `{zh_cn, ja_jp, en_us}`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct I18nName {
    pub zh_cn: Option<String>,
    pub ja_jp: Option<String>,
    pub en_us: Option<String>,
}

#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DepartmentStatus {
    #[serde(deserialize_with = "opt_bool_lenient")]
    pub is_deleted: Option<bool>,
}

/// A department leader. Feishu spells these keys in camelCase.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DepartmentLeader {
    /// 1 = main leader (主负责人), 2 = deputy (副负责人).
    #[serde(
        rename = "leaderType",
        alias = "leader_type",
        deserialize_with = "opt_i64_lenient"
    )]
    pub leader_type: Option<i64>,
    #[serde(rename = "leaderID", alias = "leader_id", alias = "leaderId")]
    pub leader_id: Option<String>,
}

/// A user reference. The API sends `department_hrbps` as id strings; department events
/// send `{user_id, open_id, union_id}` objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum UserRef {
    Id(String),
    Ids(UserIds),
}

impl UserRef {
    /// The open_id when known, else whatever id is there.
    pub fn best_id(&self) -> Option<&str> {
        match self {
            Self::Id(id) => Some(id),
            Self::Ids(ids) => ids
                .open_id
                .as_deref()
                .or(ids.union_id.as_deref())
                .or(ids.user_id.as_deref()),
        }
    }
}

/// The three ids of one user, as events carry them.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserIds {
    pub user_id: Option<String>,
    pub open_id: Option<String>,
    pub union_id: Option<String>,
}

/// `Department` (protocol §3.5), also the `DepartmentEvent` of 2.0 events (§5.1).
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Department {
    pub name: Option<String>,
    #[serde(deserialize_with = "opt_struct_lenient")]
    pub i18n_name: Option<I18nName>,
    #[serde(deserialize_with = "opt_string_lenient")]
    pub parent_department_id: Option<String>,
    #[serde(deserialize_with = "opt_string_lenient")]
    pub department_id: Option<String>,
    pub open_department_id: Option<String>,
    pub leader_user_id: Option<String>,
    pub chat_id: Option<String>,
    /// Smaller = earlier among siblings. A string in the API, a number in events.
    #[serde(
        deserialize_with = "opt_i64_lenient",
        serialize_with = "opt_i64_as_string"
    )]
    pub order: Option<i64>,
    #[serde(deserialize_with = "opt_string_vec_lenient")]
    pub unit_ids: Option<Vec<String>>,
    #[serde(deserialize_with = "opt_i64_lenient")]
    pub member_count: Option<i64>,
    #[serde(deserialize_with = "opt_i64_lenient")]
    pub primary_member_count: Option<i64>,
    #[serde(deserialize_with = "opt_struct_lenient")]
    pub status: Option<DepartmentStatus>,
    #[serde(deserialize_with = "opt_vec_lenient")]
    pub leaders: Option<Vec<DepartmentLeader>>,
    #[serde(deserialize_with = "opt_vec_lenient")]
    pub group_chat_employee_types: Option<Vec<i64>>,
    #[serde(deserialize_with = "opt_vec_lenient")]
    pub department_hrbps: Option<Vec<UserRef>>,
}

impl Department {
    /// Whether Feishu marks the department deleted.
    pub fn is_deleted(&self) -> bool {
        self.status
            .as_ref()
            .and_then(|s| s.is_deleted)
            .unwrap_or(false)
    }

    /// The main leader: `leaders` with type 1, else `leader_user_id`.
    pub fn main_leader(&self) -> Option<&str> {
        self.leaders
            .iter()
            .flatten()
            .find(|l| l.leader_type == Some(1))
            .and_then(|l| l.leader_id.as_deref())
            .or(self.leader_user_id.as_deref())
    }
}

/// The user `status` object; needs `contact:user.employee:readonly`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserStatus {
    #[serde(deserialize_with = "opt_bool_lenient")]
    pub is_frozen: Option<bool>,
    #[serde(deserialize_with = "opt_bool_lenient")]
    pub is_resigned: Option<bool>,
    #[serde(deserialize_with = "opt_bool_lenient")]
    pub is_activated: Option<bool>,
    #[serde(deserialize_with = "opt_bool_lenient")]
    pub is_exited: Option<bool>,
    #[serde(deserialize_with = "opt_bool_lenient")]
    pub is_unjoin: Option<bool>,
}

#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Avatar {
    pub avatar_72: Option<String>,
    pub avatar_240: Option<String>,
    pub avatar_640: Option<String>,
    pub avatar_origin: Option<String>,
}

/// A user's place in one department. Larger orders sort earlier.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserOrder {
    #[serde(deserialize_with = "opt_string_lenient")]
    pub department_id: Option<String>,
    #[serde(deserialize_with = "opt_i64_lenient")]
    pub user_order: Option<i64>,
    #[serde(deserialize_with = "opt_i64_lenient")]
    pub department_order: Option<i64>,
    #[serde(deserialize_with = "opt_bool_lenient")]
    pub is_primary_dept: Option<bool>,
}

/// A custom attribute (`custom_attrs[]`).
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CustomAttr {
    /// `TEXT`, `HREF`, `ENUMERATION`, `PICTURE_ENUM` or `GENERIC_USER`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub id: Option<String>,
    #[serde(deserialize_with = "opt_struct_lenient")]
    pub value: Option<CustomAttrValue>,
}

#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CustomAttrValue {
    pub text: Option<String>,
    pub url: Option<String>,
    pub pc_url: Option<String>,
    pub option_id: Option<String>,
    pub option_value: Option<String>,
    pub name: Option<String>,
    pub picture_url: Option<String>,
    #[serde(deserialize_with = "opt_struct_lenient")]
    pub generic_user: Option<CustomAttrGenericUser>,
}

#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CustomAttrGenericUser {
    pub id: Option<String>,
    #[serde(rename = "type", deserialize_with = "opt_i64_lenient")]
    pub kind: Option<i64>,
}

/// `positions[]` of event payloads and older models.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserPosition {
    pub position_code: Option<String>,
    pub position_name: Option<String>,
    #[serde(deserialize_with = "opt_string_lenient")]
    pub department_id: Option<String>,
    pub leader_user_id: Option<String>,
    pub leader_position_code: Option<String>,
    #[serde(deserialize_with = "opt_bool_lenient")]
    pub is_major: Option<bool>,
}

/// `User` (protocol §3.6), also the `UserEvent` of 2.0 events (§5.1).
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct User {
    pub union_id: Option<String>,
    #[serde(deserialize_with = "opt_string_lenient")]
    pub user_id: Option<String>,
    pub open_id: Option<String>,
    pub name: Option<String>,
    pub en_name: Option<String>,
    pub nickname: Option<String>,
    pub email: Option<String>,
    pub enterprise_email: Option<String>,
    pub mobile: Option<String>,
    #[serde(deserialize_with = "opt_bool_lenient")]
    pub mobile_visible: Option<bool>,
    /// 0 unknown, 1 male, 2 female, 3 other.
    #[serde(deserialize_with = "opt_i64_lenient")]
    pub gender: Option<i64>,
    pub avatar_key: Option<String>,
    #[serde(deserialize_with = "opt_struct_lenient")]
    pub avatar: Option<Avatar>,
    #[serde(deserialize_with = "opt_struct_lenient")]
    pub status: Option<UserStatus>,
    #[serde(deserialize_with = "opt_string_vec_lenient")]
    pub department_ids: Option<Vec<String>>,
    pub leader_user_id: Option<String>,
    pub city: Option<String>,
    pub country: Option<String>,
    pub work_station: Option<String>,
    /// Unix seconds.
    #[serde(deserialize_with = "opt_i64_lenient")]
    pub join_time: Option<i64>,
    #[serde(deserialize_with = "opt_bool_lenient")]
    pub is_tenant_manager: Option<bool>,
    #[serde(deserialize_with = "opt_string_lenient")]
    pub employee_no: Option<String>,
    /// 1 full-time, 2 intern, 3 outsourcing, 4 labour, 5 consultant; others are custom.
    #[serde(deserialize_with = "opt_i64_lenient")]
    pub employee_type: Option<i64>,
    #[serde(deserialize_with = "opt_vec_lenient")]
    pub orders: Option<Vec<UserOrder>>,
    #[serde(deserialize_with = "opt_vec_lenient")]
    pub custom_attrs: Option<Vec<CustomAttr>>,
    pub job_title: Option<String>,
    /// Top-level copy of the suspension flag, present without the employee permission.
    #[serde(deserialize_with = "opt_bool_lenient")]
    pub is_frozen: Option<bool>,
    pub geo: Option<String>,
    pub job_level_id: Option<String>,
    pub job_family_id: Option<String>,
    #[serde(deserialize_with = "opt_string_vec_lenient")]
    pub dotted_line_leader_user_ids: Option<Vec<String>>,
    pub time_zone: Option<String>,
    #[serde(deserialize_with = "opt_vec_lenient")]
    pub positions: Option<Vec<UserPosition>>,
}

impl User {
    /// `status.is_resigned`, when the app may see it.
    pub fn is_resigned(&self) -> Option<bool> {
        self.status.as_ref().and_then(|s| s.is_resigned)
    }

    /// `status.is_frozen`, else the top-level copy.
    pub fn is_frozen(&self) -> Option<bool> {
        self.status
            .as_ref()
            .and_then(|s| s.is_frozen)
            .or(self.is_frozen)
    }

    /// The primary department: the order marked primary, else the first department.
    pub fn primary_department(&self) -> Option<&str> {
        self.orders
            .iter()
            .flatten()
            .find(|o| o.is_primary_dept == Some(true))
            .and_then(|o| o.department_id.as_deref())
            .or_else(|| {
                self.department_ids
                    .iter()
                    .flatten()
                    .next()
                    .map(String::as_str)
            })
    }
}

/// A user group (`group/simplelist` item, `group/:id`).
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Group {
    #[serde(deserialize_with = "opt_string_lenient")]
    pub id: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    #[serde(deserialize_with = "opt_i64_lenient")]
    pub member_user_count: Option<i64>,
    #[serde(deserialize_with = "opt_i64_lenient")]
    pub member_department_count: Option<i64>,
    /// 1 normal, 2 dynamic.
    #[serde(rename = "type", deserialize_with = "opt_i64_lenient")]
    pub kind: Option<i64>,
    /// The custom group id.
    #[serde(deserialize_with = "opt_string_lenient")]
    pub group_id: Option<String>,
}

/// One member of a user group (`member/simplelist` item).
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GroupMember {
    #[serde(deserialize_with = "opt_string_lenient")]
    pub member_id: Option<String>,
    /// `user` or `department`.
    pub member_type: Option<String>,
    pub member_id_type: Option<String>,
}

/// `data` of `group/member_belong`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MemberBelongData {
    #[serde(deserialize_with = "opt_string_vec_lenient")]
    pub group_list: Option<Vec<String>>,
    #[serde(deserialize_with = "opt_bool_lenient")]
    pub has_more: Option<bool>,
    pub page_token: Option<String>,
}

/// A user group as the scope event describes it (`UserGroup`, §3.7).
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserGroup {
    #[serde(deserialize_with = "opt_string_lenient")]
    pub user_group_id: Option<String>,
    pub name: Option<String>,
    #[serde(rename = "type", deserialize_with = "opt_i64_lenient")]
    pub kind: Option<i64>,
    #[serde(deserialize_with = "opt_i64_lenient")]
    pub member_count: Option<i64>,
    #[serde(deserialize_with = "opt_i64_lenient")]
    pub status: Option<i64>,
}

/// Any JSON value kept verbatim (for fields we pass through untyped).
pub type RawJson = Value;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn department_example_of_the_reference_decodes() {
        let data: DepartmentData = serde_json::from_value(json!({"department":{"name":"Demo","i18n_name":{"zh_cn":"演示","ja_jp":"","en_us":"Demo"},
 "parent_department_id":"0","department_id":"D096","open_department_id":"od-4e6ac4d14bcd5071a37a39de902c7141",
 "leader_user_id":"ou_7dab8a3d3cdcc9da365777c7ad535d62","chat_id":"oc_5ad11d72b830411d72b836c20",
 "order":"100","unit_ids":[],"member_count":12,"primary_member_count":10,"status":{"is_deleted":false},
 "leaders":[{"leaderType":1,"leaderID":"ou_7dab8a3d3cdcc9da365777c7ad535d62"}]}})).unwrap();
        let d = data.department.unwrap();
        assert_eq!(d.order, Some(100));
        assert_eq!(d.main_leader(), Some("ou_7dab8a3d3cdcc9da365777c7ad535d62"));
        assert!(!d.is_deleted());
        assert_eq!(d.i18n_name.unwrap().zh_cn.as_deref(), Some("演示"));
    }

    #[test]
    fn order_is_accepted_as_number_and_written_as_string() {
        let d: Department = serde_json::from_value(json!({"order": 1000})).unwrap();
        assert_eq!(d.order, Some(1000));
        assert_eq!(serde_json::to_value(&d).unwrap(), json!({"order": "1000"}));
    }

    #[test]
    fn nulls_unknown_fields_and_bad_shapes_are_unknown_not_errors() {
        let u: User = serde_json::from_value(json!({
            "open_id": "ou_1", "user_id": null, "email": null, "brand_new_field": {"x": 1},
            "status": "weird", "orders": [{"department_id": "od-1", "user_order": "3"}, 7],
            "department_ids": ["od-1", null], "join_time": "1700000000", "gender": null
        }))
        .unwrap();
        assert_eq!(u.open_id.as_deref(), Some("ou_1"));
        assert_eq!(u.user_id, None);
        assert_eq!(u.email, None);
        assert_eq!(u.status, None);
        assert_eq!(u.orders.as_ref().unwrap().len(), 1);
        assert_eq!(u.orders.unwrap()[0].user_order, Some(3));
        assert_eq!(u.department_ids.unwrap(), vec!["od-1"]);
        assert_eq!(u.join_time, Some(1_700_000_000));
    }

    #[test]
    fn absent_fields_are_not_serialised() {
        let u = User {
            open_id: Some("ou_1".into()),
            ..User::default()
        };
        assert_eq!(
            serde_json::to_value(&u).unwrap(),
            json!({"open_id": "ou_1"})
        );
    }

    #[test]
    fn hrbps_accept_strings_and_objects() {
        let d: Department = serde_json::from_value(json!({
            "department_hrbps": ["ou_a", {"open_id": "ou_b", "user_id": "b"}]
        }))
        .unwrap();
        let ids: Vec<_> = d
            .department_hrbps
            .unwrap()
            .iter()
            .map(|r| r.best_id().unwrap().to_owned())
            .collect();
        assert_eq!(ids, vec!["ou_a", "ou_b"]);
    }

    #[test]
    fn group_lists_decode_under_their_own_keys() {
        let groups: ListData<Group> = serde_json::from_value(json!({
            "grouplist": [{"id": "g1", "name": "Ops", "type": 1}], "has_more": false
        }))
        .unwrap();
        assert_eq!(groups.items.unwrap()[0].id.as_deref(), Some("g1"));
        let members: ListData<GroupMember> = serde_json::from_value(json!({
            "memberlist": [{"member_id": "ou_1", "member_type": "user"}], "has_more": true, "page_token": "x"
        }))
        .unwrap();
        assert_eq!(members.items.unwrap().len(), 1);
        assert_eq!(members.has_more, Some(true));
    }
}
