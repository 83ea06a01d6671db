//! The Contact v3 read endpoints (protocol §3.1), as pure functions of the tenant, the
//! calling app and the switches. The HTTP handlers in `api/mod.rs` only parse and lock.
//!
//! Order of checks, as a gateway-then-service stack does them: API permission → parameter
//! validation (id types, page size, page token) → existence → contact scope → data.

use std::collections::BTreeSet;

use feishu::ids::{
    DepartmentIdType, GroupType, IdTypes, MemberIdType, MemberType, ROOT_DEPARTMENT_ID, UserIdType,
};
use feishu::model::{self, UserRef};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::errors::ApiError;
use super::paging::{self, PageCodec, PageRequest};
use super::params::Params;
use crate::config::{
    Behaviour, DeletedDepartmentRead, ResignedDepartmentIds, UserIdWithoutPermission,
};
use crate::tenant::{AppRecord, ContactScope, GroupKind, Tenant, UserKey, perm};

/// API permission of `users/batch_get_id`.
pub const PERM_USER_ID_LOOKUP: &str = "contact:user.id:readonly";

/// Any of these lets an app call the contact read APIs (§3.8).
const CONTACT_READ: [&str; 4] = [
    perm::CONTACT_BASE,
    perm::LEGACY_READONLY_AS_APP,
    perm::LEGACY_READONLY,
    perm::LEGACY_ACCESS_AS_APP,
];
/// `children` and `find_by_department` also accept the department-organize permission.
const CONTACT_READ_OR_ORGANIZE: [&str; 5] = [
    perm::CONTACT_BASE,
    perm::LEGACY_READONLY_AS_APP,
    perm::LEGACY_READONLY,
    perm::LEGACY_ACCESS_AS_APP,
    perm::DEPARTMENT_ORGANIZE,
];

/// Everything a contact request is answered from.
pub struct Cx<'a> {
    pub tenant: &'a Tenant,
    pub app: &'a AppRecord,
    pub behaviour: &'a Behaviour,
    pub pages: &'a PageCodec,
    pub tenant_name: &'a str,
    /// The endpoint key, part of every page-token binding.
    pub endpoint: &'a str,
}

/// A department a request names, after the root, existence and scope checks.
struct Addressed {
    open_id: String,
    deleted: bool,
}

/// Id types of a request, and whether user ids must be blanked (`user_id` without permission
/// in [`UserIdWithoutPermission::Empty`] mode).
#[derive(Clone, Copy)]
struct Ids {
    types: IdTypes,
    blank_users: bool,
}

fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

impl Cx<'_> {
    fn require(&self, scopes: &[&str]) -> Result<(), ApiError> {
        if scopes.iter().any(|s| self.app.permissions.contains(*s)) {
            Ok(())
        } else {
            Err(ApiError::scope_required(
                self.behaviour.permission_error_status,
                scopes,
            ))
        }
    }

    /// Whether `user_id` values may be shown; 99991672 or blanking otherwise (§9 point 8).
    fn user_id_gate(&self, wants_user_id: bool) -> Result<bool, ApiError> {
        if !wants_user_id || self.app.has(perm::USER_EMPLOYEE_ID) {
            return Ok(false);
        }
        match self.behaviour.user_id_without_permission {
            UserIdWithoutPermission::Error => Err(ApiError::scope_required(
                self.behaviour.permission_error_status,
                &[perm::USER_EMPLOYEE_ID],
            )),
            UserIdWithoutPermission::Empty => Ok(true),
        }
    }

    fn ids(&self, params: &Params) -> Result<Ids, ApiError> {
        let types = params.id_types()?;
        let blank_users = self.user_id_gate(types.user == UserIdType::UserId)?;
        Ok(Ids { types, blank_users })
    }

    fn binding(&self, list: &str) -> String {
        format!("{}|{}|{list}", self.app.app_id, self.endpoint)
    }

    fn page(
        &self,
        params: &Params,
        limits: paging::PageLimits,
        binding: &str,
    ) -> Result<PageRequest, ApiError> {
        PageRequest::parse(
            params,
            limits,
            self.behaviour.page_size_out_of_range,
            self.pages,
            binding,
        )
    }

    fn list(&self, key: &str, items: Vec<Value>, has_more: bool, token: Option<String>) -> Value {
        let mut data = Map::new();
        if !(items.is_empty() && self.behaviour.omit_empty_lists) {
            data.insert(key.to_owned(), Value::Array(items));
        }
        data.insert("has_more".to_owned(), Value::Bool(has_more));
        if let Some(token) = token {
            data.insert("page_token".to_owned(), Value::String(token));
        }
        Value::Object(data)
    }

    /// A batch answer: `items` only, no paging fields.
    fn batch(&self, items: Vec<Value>) -> Value {
        let mut data = Map::new();
        if !(items.is_empty() && self.behaviour.omit_empty_lists) {
            data.insert("items".to_owned(), Value::Array(items));
        }
        Value::Object(data)
    }

    fn is_partial(&self) -> bool {
        matches!(self.app.scope, ContactScope::Partial { .. })
    }

    /// A deleted department is judged by where it was: its parent's scope, or picked itself.
    fn department_in_scope(&self, open_id: &str) -> bool {
        match self.tenant.deleted_departments.get(open_id) {
            Some(d) if self.tenant.is_deleted_department(open_id) => {
                self.tenant.department_record_in_scope(self.app, d)
            }
            _ => self.tenant.department_in_scope(self.app, open_id),
        }
    }

    /// Resolves a department addressed by a request (path or `department_id`), checking
    /// root access, existence and scope. A deleted department passes only in
    /// [`DeletedDepartmentRead::Render`] mode (§9 point 7).
    fn addressed_department(
        &self,
        id: &str,
        id_type: DepartmentIdType,
    ) -> Result<Addressed, ApiError> {
        if id == ROOT_DEPARTMENT_ID {
            return if self.is_partial() {
                Err(ApiError::no_dept_authority())
            } else {
                Ok(Addressed {
                    open_id: ROOT_DEPARTMENT_ID.to_owned(),
                    deleted: false,
                })
            };
        }
        let open_id = self
            .tenant
            .resolve_department(id, id_type)
            .ok_or_else(ApiError::department_not_exist)?;
        let deleted = self.tenant.is_deleted_department(&open_id);
        if deleted && self.behaviour.deleted_department_read == DeletedDepartmentRead::NotExist {
            return Err(ApiError::department_not_exist());
        }
        if !self.department_in_scope(&open_id) {
            return Err(ApiError::no_dept_authority());
        }
        Ok(Addressed { open_id, deleted })
    }

    fn render_department(&self, open_id: &str, ids: Ids) -> Option<model::Department> {
        let mut d = if open_id == ROOT_DEPARTMENT_ID {
            self.render_root()
        } else {
            self.tenant
                .render_department(self.app, open_id, ids.types)?
        };
        if ids.blank_users {
            if let Some(l) = d.leader_user_id.as_mut() {
                l.clear();
            }
            for l in d.leaders.iter_mut().flatten() {
                l.leader_id = Some(String::new());
            }
            for h in d.department_hrbps.iter_mut().flatten() {
                *h = UserRef::Id(String::new());
            }
        }
        Some(d)
    }

    /// The root department "0" (only readable under the all-members scope).
    fn render_root(&self) -> model::Department {
        let mut d = model::Department {
            open_department_id: Some(ROOT_DEPARTMENT_ID.to_owned()),
            ..model::Department::default()
        };
        if self.app.has(perm::DEPARTMENT_BASE) {
            d.name = Some(self.tenant_name.to_owned());
            d.i18n_name = Some(model::I18nName {
                zh_cn: Some(self.tenant_name.to_owned()),
                ja_jp: Some(String::new()),
                en_us: Some(self.tenant_name.to_owned()),
            });
            d.department_id = Some(ROOT_DEPARTMENT_ID.to_owned());
            d.status = Some(model::DepartmentStatus {
                is_deleted: Some(false),
            });
        }
        if self.app.has(perm::DEPARTMENT_ORGANIZE) {
            let members = self
                .tenant
                .users
                .values()
                .filter(|u| !u.memberships.is_empty())
                .count() as i64;
            d.order = Some(0);
            d.member_count = Some(members);
            d.primary_member_count = Some(members);
            d.unit_ids = Some(Vec::new());
            d.leaders = Some(Vec::new());
        }
        d
    }

    fn render_user(&self, key: UserKey, ids: Ids) -> Option<model::User> {
        let absent = self.behaviour.resigned_department_ids == ResignedDepartmentIds::Absent;
        let mut u = self.tenant.render_user(self.app, key, ids.types, absent)?;
        if ids.blank_users
            && let Some(l) = u.leader_user_id.as_mut()
        {
            l.clear();
        }
        Some(u)
    }

    fn user_readable(&self, key: UserKey) -> bool {
        self.tenant.user_in_scope(self.app, key)
            || (self.behaviour.resigned_user_readable_in_partial_scope
                && self
                    .tenant
                    .users
                    .get(&key)
                    .is_some_and(|u| u.status.resigned))
    }

    fn user_id(&self, key: UserKey, user_type: UserIdType, blank: bool) -> String {
        if blank {
            String::new()
        } else {
            self.tenant.user_id_as(self.app, key, user_type)
        }
    }
}

fn batch_ids<'p>(params: &'p Params, key: &str) -> Result<Vec<&'p str>, ApiError> {
    let ids = params.all(key);
    if ids.is_empty() || ids.len() > 50 {
        return Err(ApiError::field(
            key,
            &ids.len().to_string(),
            &format!("{key} takes 1 to 50 ids"),
        ));
    }
    let mut seen = BTreeSet::new();
    Ok(ids.into_iter().filter(|id| seen.insert(*id)).collect())
}

/// `GET /contact/v3/scopes`: one page over users, then departments, then groups.
pub fn scopes(cx: &Cx, params: &Params) -> Result<Value, ApiError> {
    cx.require(&CONTACT_READ)?;
    let ids = cx.ids(params)?;
    let binding = cx.binding("");
    let page = cx.page(params, paging::SCOPES, &binding)?;
    let (departments, users, groups) = cx.tenant.scope_lists(cx.app);
    let all: Vec<(u8, String)> = users
        .iter()
        .map(|k| (0, cx.user_id(*k, ids.types.user, ids.blank_users)))
        .chain(
            departments
                .iter()
                .map(|d| (1, cx.tenant.department_id_as(d, ids.types.department))),
        )
        .chain(groups.into_iter().map(|g| (2, g)))
        .collect();
    let (slice, has_more, token) = page.slice(&all, cx.pages, &binding);
    let mut data = Map::new();
    for (kind, key) in [(0, "user_ids"), (1, "department_ids"), (2, "group_ids")] {
        let list: Vec<Value> = slice
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, id)| Value::String(id.clone()))
            .collect();
        if !(list.is_empty() && cx.behaviour.omit_empty_lists) {
            data.insert(key.to_owned(), Value::Array(list));
        }
    }
    data.insert("has_more".to_owned(), Value::Bool(has_more));
    if let Some(token) = token {
        data.insert("page_token".to_owned(), Value::String(token));
    }
    Ok(Value::Object(data))
}

/// `GET /contact/v3/departments/:department_id`.
pub fn department(cx: &Cx, id: &str, params: &Params) -> Result<Value, ApiError> {
    cx.require(&CONTACT_READ)?;
    let ids = cx.ids(params)?;
    // A deleted department that gets this far renders with `status.is_deleted = true`.
    let open_id = cx.addressed_department(id, ids.types.department)?.open_id;
    let d = cx
        .render_department(&open_id, ids)
        .ok_or_else(ApiError::department_not_exist)?;
    Ok(json!({ "department": to_value(&d) }))
}

/// `GET /contact/v3/departments/:department_id/children`.
pub fn children(cx: &Cx, id: &str, params: &Params) -> Result<Value, ApiError> {
    cx.require(&CONTACT_READ_OR_ORGANIZE)?;
    let ids = cx.ids(params)?;
    let fetch_child = params.bool("fetch_child")?;
    let Addressed { open_id, deleted } = cx.addressed_department(id, ids.types.department)?;
    if deleted {
        return Ok(cx.list("items", Vec::new(), false, None));
    }
    let binding = cx.binding(&format!("{open_id}|{fetch_child}"));
    let page = cx.page(params, paging::CHILDREN, &binding)?;
    if fetch_child {
        let big = cx.tenant.departments.get(&open_id).is_some_and(|d| d.big);
        if big || cx.behaviour.refuse_all_recursion {
            return Err(ApiError::big_dept_no_recursion());
        }
    }
    let list = if fetch_child {
        cx.tenant.descendants(&open_id)
    } else {
        cx.tenant.children(&open_id).to_vec()
    };
    let (slice, has_more, token) = page.slice(&list, cx.pages, &binding);
    let items = slice
        .iter()
        .filter_map(|d| cx.render_department(d, ids))
        .map(|d| to_value(&d))
        .collect();
    Ok(cx.list("items", items, has_more, token))
}

/// `GET /contact/v3/departments/batch`: unknown, deleted and out-of-scope ids are dropped.
pub fn departments_batch(cx: &Cx, params: &Params) -> Result<Value, ApiError> {
    cx.require(&CONTACT_READ)?;
    let ids = cx.ids(params)?;
    let items = batch_ids(params, "department_ids")?
        .into_iter()
        .filter_map(|id| cx.addressed_department(id, ids.types.department).ok())
        .filter(|a| !a.deleted)
        .filter_map(|a| cx.render_department(&a.open_id, ids))
        .map(|d| to_value(&d))
        .collect();
    Ok(cx.batch(items))
}

/// `GET /contact/v3/users/find_by_department`: direct members only; resigned users have no
/// memberships and so never appear.
pub fn users_by_department(cx: &Cx, params: &Params) -> Result<Value, ApiError> {
    cx.require(&CONTACT_READ_OR_ORGANIZE)?;
    let ids = cx.ids(params)?;
    let id = params.required("department_id")?;
    let Addressed { open_id, deleted } = cx.addressed_department(id, ids.types.department)?;
    if deleted {
        return Ok(cx.list("items", Vec::new(), false, None));
    }
    let binding = cx.binding(&open_id);
    let page = cx.page(params, paging::USERS_BY_DEPARTMENT, &binding)?;
    let members: Vec<UserKey> = cx
        .tenant
        .members(&open_id)
        .iter()
        .copied()
        .filter(|k| {
            cx.behaviour.list_inactive_users
                || cx
                    .tenant
                    .users
                    .get(k)
                    .is_some_and(|u| !(u.status.frozen || u.status.exited || u.status.unjoin))
        })
        .collect();
    let (slice, has_more, token) = page.slice(&members, cx.pages, &binding);
    let items = slice
        .iter()
        .filter_map(|k| cx.render_user(*k, ids))
        .map(|u| to_value(&u))
        .collect();
    Ok(cx.list("items", items, has_more, token))
}

/// `GET /contact/v3/users/:user_id`.
pub fn user(cx: &Cx, id: &str, params: &Params) -> Result<Value, ApiError> {
    cx.require(&CONTACT_READ)?;
    let ids = cx.ids(params)?;
    let key = cx
        .tenant
        .resolve_user(cx.app, id, ids.types.user)
        .ok_or_else(ApiError::user_id_invalid)?;
    if !cx.user_readable(key) {
        return Err(ApiError::no_user_authority());
    }
    let u = cx
        .render_user(key, ids)
        .ok_or_else(ApiError::user_id_invalid)?;
    Ok(json!({ "user": to_value(&u) }))
}

/// `GET /contact/v3/users/batch`: unknown and out-of-scope ids are dropped.
pub fn users_batch(cx: &Cx, params: &Params) -> Result<Value, ApiError> {
    cx.require(&CONTACT_READ)?;
    let ids = cx.ids(params)?;
    let items = batch_ids(params, "user_ids")?
        .into_iter()
        .filter_map(|id| cx.tenant.resolve_user(cx.app, id, ids.types.user))
        .filter(|k| cx.user_readable(*k))
        .filter_map(|k| cx.render_user(k, ids))
        .map(|u| to_value(&u))
        .collect();
    Ok(cx.batch(items))
}

/// `GET /contact/v3/group/simplelist` (`grouplist`).
pub fn groups(cx: &Cx, params: &Params) -> Result<Value, ApiError> {
    cx.require(&[perm::GROUP])?;
    let kind = match params.get("type").filter(|s| !s.is_empty()) {
        None => GroupType::Normal,
        Some(raw) => raw
            .parse()
            .ok()
            .and_then(GroupType::from_code)
            .ok_or_else(|| ApiError::field("type", raw, "type must be 1 or 2"))?,
    };
    let binding = cx.binding(&kind.code().to_string());
    let page = cx.page(params, paging::GROUPS, &binding)?;
    let list: Vec<&str> = cx
        .tenant
        .groups
        .values()
        .filter(|g| g.kind.code() == kind.code() && cx.tenant.group_in_scope(cx.app, &g.id))
        .map(|g| g.id.as_str())
        .collect();
    let (slice, has_more, token) = page.slice(&list, cx.pages, &binding);
    let items = slice
        .iter()
        .filter_map(|g| cx.tenant.render_group(g))
        .map(|g| to_value(&g))
        .collect();
    Ok(cx.list("grouplist", items, has_more, token))
}

fn addressed_group(cx: &Cx, id: &str) -> Result<(), ApiError> {
    if !cx.tenant.groups.contains_key(id) {
        return Err(ApiError::invalid_group_id());
    }
    if !cx.tenant.group_in_scope(cx.app, id) {
        return Err(ApiError::no_group_authority());
    }
    Ok(())
}

/// `GET /contact/v3/group/:group_id`.
pub fn group(cx: &Cx, id: &str, params: &Params) -> Result<Value, ApiError> {
    cx.require(&[perm::GROUP])?;
    params.id_types()?;
    addressed_group(cx, id)?;
    let g = cx
        .tenant
        .render_group(id)
        .ok_or_else(ApiError::invalid_group_id)?;
    Ok(json!({ "group": to_value(&g) }))
}

/// `GET /contact/v3/group/:group_id/member/simplelist` (`memberlist`).
pub fn group_members(cx: &Cx, id: &str, params: &Params) -> Result<Value, ApiError> {
    cx.require(&[perm::GROUP])?;
    let member_type = match params.get("member_type").filter(|s| !s.is_empty()) {
        None => MemberType::User,
        Some(raw) => raw.parse().map_err(|_| ApiError::invalid_member_type())?,
    };
    let id_type: MemberIdType = params.parsed("member_id_type", MemberIdType::OpenId)?;
    let fits = match member_type {
        MemberType::User => id_type != MemberIdType::DepartmentId,
        MemberType::Department => {
            matches!(id_type, MemberIdType::OpenId | MemberIdType::DepartmentId)
        }
    };
    if !fits {
        return Err(ApiError::field(
            "member_id_type",
            id_type.as_str(),
            "member_id_type does not fit member_type",
        ));
    }
    let blank = cx.user_id_gate(id_type == MemberIdType::UserId)?;
    let binding = cx.binding(&format!("{id}|{}", member_type.as_str()));
    let page = cx.page(params, paging::GROUP_MEMBERS, &binding)?;
    addressed_group(cx, id)?;
    let Some(g) = cx.tenant.groups.get(id) else {
        return Err(ApiError::invalid_group_id());
    };
    let members: Vec<String> = match member_type {
        MemberType::User => {
            let user_type = match id_type {
                MemberIdType::UnionId => UserIdType::UnionId,
                MemberIdType::UserId => UserIdType::UserId,
                _ => UserIdType::OpenId,
            };
            g.users
                .iter()
                .map(|k| cx.user_id(*k, user_type, blank))
                .collect()
        }
        // Dynamic groups have no department members.
        MemberType::Department if g.kind == GroupKind::Dynamic => Vec::new(),
        MemberType::Department => {
            let dept_type = if id_type == MemberIdType::DepartmentId {
                DepartmentIdType::DepartmentId
            } else {
                DepartmentIdType::OpenDepartmentId
            };
            g.departments
                .iter()
                .map(|d| cx.tenant.department_id_as(d, dept_type))
                .collect()
        }
    };
    let (slice, has_more, token) = page.slice(&members, cx.pages, &binding);
    let items = slice
        .iter()
        .map(|m| {
            to_value(&model::GroupMember {
                member_id: Some(m.clone()),
                member_type: Some(member_type.as_str().to_owned()),
                member_id_type: Some(id_type.as_str().to_owned()),
            })
        })
        .collect();
    Ok(cx.list("memberlist", items, has_more, token))
}

/// `GET /contact/v3/group/member_belong` (`group_list`): groups a user is a direct member of.
pub fn member_belong(cx: &Cx, params: &Params) -> Result<Value, ApiError> {
    cx.require(&[perm::GROUP])?;
    let member_id = params.required("member_id")?;
    let id_type: MemberIdType = params.parsed("member_id_type", MemberIdType::OpenId)?;
    let user_type = match id_type {
        MemberIdType::OpenId => UserIdType::OpenId,
        MemberIdType::UnionId => UserIdType::UnionId,
        MemberIdType::UserId => UserIdType::UserId,
        MemberIdType::DepartmentId => {
            return Err(ApiError::field(
                "member_id_type",
                id_type.as_str(),
                "member_id_type must name a user id type",
            ));
        }
    };
    cx.user_id_gate(user_type == UserIdType::UserId)?;
    let kind = match params.get("group_type").filter(|s| !s.is_empty()) {
        None => GroupType::Normal,
        Some(raw) => raw
            .parse()
            .ok()
            .and_then(GroupType::from_code)
            .ok_or_else(|| ApiError::field("group_type", raw, "group_type must be 1 or 2"))?,
    };
    let binding = cx.binding(&format!("{member_id}|{}", kind.code()));
    let page = cx.page(params, paging::MEMBER_BELONG, &binding)?;
    let key = cx
        .tenant
        .resolve_user(cx.app, member_id, user_type)
        .ok_or_else(ApiError::user_id_invalid)?;
    if !cx.user_readable(key) {
        return Err(ApiError::no_user_authority());
    }
    let list: Vec<String> = cx
        .tenant
        .groups_of_user(key)
        .into_iter()
        .filter(|g| {
            cx.tenant
                .groups
                .get(g)
                .is_some_and(|r| r.kind.code() == kind.code())
                && cx.tenant.group_in_scope(cx.app, g)
        })
        .collect();
    let (slice, has_more, token) = page.slice(&list, cx.pages, &binding);
    let items = slice.iter().cloned().map(Value::String).collect();
    Ok(cx.list("group_list", items, has_more, token))
}

/// The body of `POST /contact/v3/users/batch_get_id`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct BatchGetIdBody {
    pub emails: Vec<String>,
    pub mobiles: Vec<String>,
    pub include_resigned: bool,
}

/// `POST /contact/v3/users/batch_get_id`: user ids by e-mail / mobile; resigned users are
/// skipped unless `include_resigned`; an unmatched (or out-of-scope) address comes back
/// without `user_id`.
pub fn batch_get_id(cx: &Cx, params: &Params, body: &[u8]) -> Result<Value, ApiError> {
    cx.require(&[PERM_USER_ID_LOOKUP])?;
    let user_type = params.user_id_type()?;
    let blank = cx.user_id_gate(user_type == UserIdType::UserId)?;
    let body: BatchGetIdBody = serde_json::from_slice(body)
        .map_err(|_| ApiError::field("body", "", "the body must be a JSON object"))?;
    if body.emails.len() > 50 || body.mobiles.len() > 50 {
        return Err(ApiError::field(
            "emails",
            "",
            "at most 50 emails and 50 mobiles",
        ));
    }
    let find = |pick: &dyn Fn(&crate::tenant::UserRecord) -> bool| {
        cx.tenant
            .users
            .values()
            .find(|u| pick(u) && (body.include_resigned || !u.status.resigned))
            .filter(|u| cx.user_readable(u.key))
    };
    let entry = |field: &str, value: &str, found: Option<&crate::tenant::UserRecord>| {
        let mut item = Map::new();
        item.insert(field.to_owned(), Value::String(value.to_owned()));
        if let Some(u) = found {
            item.insert(
                "user_id".to_owned(),
                Value::String(cx.user_id(u.key, user_type, blank)),
            );
            item.insert(
                "status".to_owned(),
                json!({
                    "is_frozen": u.status.frozen,
                    "is_resigned": u.status.resigned,
                    "is_activated": u.status.activated,
                    "is_exited": u.status.exited,
                    "is_unjoin": u.status.unjoin,
                }),
            );
        }
        Value::Object(item)
    };
    let mut list = Vec::new();
    for email in &body.emails {
        let found = find(&|u| {
            u.email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(email))
        });
        list.push(entry("email", email, found));
    }
    for mobile in &body.mobiles {
        let found = find(&|u| u.mobile.as_deref() == Some(mobile.as_str()));
        list.push(entry("mobile", mobile, found));
    }
    Ok(json!({ "user_list": list }))
}
