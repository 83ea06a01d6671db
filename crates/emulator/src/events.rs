//! Turns tenant [`Change`]s into the event bodies Feishu would push to one app
//! (protocol §4.6, §5), before encryption: compact JSON, raw UTF-8, the 2.0 envelope keys
//! in the observed order.
//!
//! Rules (protocol §5, §7), and the choices made where it is silent:
//! - An app hears contact events only if it may subscribe to them: it holds
//!   `contact:contact.base:readonly`, `contact:contact:readonly_as_app` or
//!   `contact:contact:access_as_app` (§3.8). 2.0 events go to `events_v2` apps, 1.0
//!   events to `events_v1` apps, both to apps with both.
//! - Objects are rendered as the app may read them (same gating as the API) with open
//!   ids; the API-only top-level `is_frozen` is left out of `UserEvent`.
//! - Updates carry `old_object` with only the changed visible fields and their old values
//!   (a field that was unset before gets the empty value of its type, e.g. `""`). An
//!   update that changes nothing the app may see sends nothing, in 2.0 and in 1.0.
//! - Scope: an object outside the app's contact scope produces no event. Deletions and
//!   resignations are judged by the state before the change; updates go out when the
//!   object was in scope before *or* is after, so a user or department that moves out of
//!   the scope is seen leaving (its new `department_ids` / parent are outside the scope),
//!   and one that moves in arrives as an update.
//! - A resignation is `contact.user.deleted_v3` only: `object` is the state after it
//!   (`is_resigned`, `department_ids: []`), `old_object` the former open department ids
//!   (only with `contact:user.department:readonly`) and the open id.
//! - `contact.department.deleted_v3`'s object always carries `status.is_deleted=true`.
//! - 1.0 `user_update` is sent for visible non-status changes, `user_status_change` for a
//!   visible status change (both when both changed); `employee_id` needs the user_id
//!   permission; `change_time` is Beijing time (UTC+8).
//! - User-group events: 2.0 only, only for `user_group_events` apps holding
//!   `contact:group:readonly`, only for groups in scope; `user_group_id` is the group's `id`.
//! - `contact.scope.updated_v3` goes only to the app whose scope changed; `added` and
//!   `removed` are the difference of the `/scopes` lists (§3.1) before and after, as
//!   API-style objects; nothing is sent when both are empty.

use std::collections::BTreeSet;

use feishu::events::{
    self as fe, DepartmentDeletedOld, LegacyEnvelopeEvent, LegacyEvent, LegacyStatus,
    LegacyUserEvent, ObjectRef, ScopeChange, UserDeletedOld, UserGroupRef,
};
use feishu::ids::{IdTypes, UserIdType};
use feishu::model::{self, DepartmentLeader, DepartmentStatus, UserIds};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::mutate::Change;
use crate::tenant::{
    AppRecord, DepartmentRecord, GroupRecord, Tenant, UserKey, UserRecord, perm, union_id,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventVersion {
    /// `schema: "2.0"`, `contact.*_v3`.
    V2,
    /// Legacy `event_callback`.
    V1,
}

/// One event for one app, ready to be encrypted and pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingEvent {
    /// 2.0 `header.event_id` / 1.0 `uuid`: 32 hex chars from the caller's id source.
    pub event_id: String,
    /// `contact.user.created_v3`, … or the 1.0 `event.type` (`user_add`, …).
    pub event_type: String,
    pub create_time_ms: i64,
    pub app_id: String,
    pub version: EventVersion,
    /// What the event is about (for ordering, reordering and tests).
    pub object: ObjectRef,
    /// The complete envelope JSON as Feishu sends it, before encryption.
    pub plaintext: String,
}

/// `DepartmentEvent` (§5.1): like the API object, but `order` is a number,
/// `department_hrbps` are id triples, and there are no counts or `i18n_name`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DepartmentEvent {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_department_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub department_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_department_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader_user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit_ids: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<DepartmentStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaders: Option<Vec<DepartmentLeader>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub department_hrbps: Option<Vec<UserIds>>,
}

/// Whether the app can hold a contact event subscription at all (§3.8).
pub fn may_subscribe(app: &AppRecord) -> bool {
    [
        perm::CONTACT_BASE,
        perm::LEGACY_READONLY_AS_APP,
        perm::LEGACY_ACCESS_AS_APP,
    ]
    .iter()
    .any(|p| app.has_exactly(p))
}

/// The events `change` causes for `app`. `tenant` is the state after the change (after
/// the whole mutation that produced it) and `app` the app's current record; `ids` yields
/// one event id per event, so the caller controls determinism.
pub fn render_events(
    tenant: &Tenant,
    app: &AppRecord,
    change: &Change,
    now_ms: i64,
    ids: &mut impl FnMut() -> String,
) -> Vec<OutgoingEvent> {
    if !may_subscribe(app) {
        return Vec::new();
    }
    let mut r = Renderer {
        tenant,
        app,
        now_ms,
        ids,
        out: Vec::new(),
    };
    match change {
        Change::UserCreated { key } => r.user_created(*key),
        Change::UserUpdated { key, before } => r.user_updated(*key, before),
        Change::UserDeleted { before } => r.user_deleted(before),
        Change::DepartmentCreated { id } => r.department_created(id),
        Change::DepartmentUpdated { id, before } => r.department_updated(id, before),
        Change::DepartmentDeleted { before } => r.department_deleted(before),
        Change::GroupCreated { id } => {
            if let Some(g) = tenant.groups.get(id) {
                r.group_event(fe::USER_GROUP_CREATED_V3, g, None);
            }
        }
        Change::GroupUpdated { id, before } => {
            if let Some(g) = tenant.groups.get(id) {
                r.group_event(fe::USER_GROUP_UPDATED_V3, g, Some(before));
            }
        }
        Change::GroupDeleted { before } => r.group_event(fe::USER_GROUP_DELETED_V3, before, None),
        Change::GroupMembersChanged { id } => {
            if let Some(g) = tenant.groups.get(id) {
                r.group_event(fe::USER_GROUP_MEMBER_CHANGED_V3, g, None);
            }
        }
        Change::ScopeChanged { app_id, before } => {
            if *app_id == app.app_id {
                r.scope_changed(before);
            }
        }
    }
    r.out
}

/// The events of `changes` for every app of the tenant, app by app in id order.
pub fn render_for_all_apps(
    tenant: &Tenant,
    changes: &[Change],
    now_ms: i64,
    ids: &mut impl FnMut() -> String,
) -> Vec<OutgoingEvent> {
    let mut out = Vec::new();
    for app in tenant.apps.values() {
        for change in changes {
            out.extend(render_events(tenant, app, change, now_ms, ids));
        }
    }
    out
}

// ---- envelopes ------------------------------------------------------------------------

/// Field order = wire order (serde_json keeps struct order; maps would be sorted).
#[derive(Serialize)]
struct EnvelopeV2<'a, E> {
    schema: &'static str,
    header: HeaderV2<'a>,
    event: &'a E,
}

#[derive(Serialize)]
struct HeaderV2<'a> {
    event_id: &'a str,
    token: &'a str,
    create_time: String,
    event_type: &'a str,
    tenant_key: &'a str,
    app_id: &'a str,
}

#[derive(Serialize)]
struct EnvelopeV1<'a> {
    ts: String,
    uuid: &'a str,
    token: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    event: &'a LegacyEnvelopeEvent,
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

/// 1.0 `ts`: seconds with a fraction, as a string (`"1502199207.7171419"`).
fn legacy_ts(now_ms: i64) -> String {
    format!(
        "{}.{:03}0000",
        now_ms.div_euclid(1000),
        now_ms.rem_euclid(1000)
    )
}

/// `"YYYY-MM-DD HH:MM:SS"` in Beijing time (UTC+8), as 1.0 `change_time` reads.
pub fn beijing_time(now_ms: i64) -> String {
    let secs = now_ms.div_euclid(1000) + 8 * 3600;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

// ---- rendering -------------------------------------------------------------------------

struct Renderer<'a, F> {
    tenant: &'a Tenant,
    app: &'a AppRecord,
    now_ms: i64,
    ids: &'a mut F,
    out: Vec<OutgoingEvent>,
}

impl<F: FnMut() -> String> Renderer<'_, F> {
    fn v2<E: Serialize>(&mut self, event_type: &str, object: ObjectRef, event: &E) {
        if !self.app.events_v2 {
            return;
        }
        let event_id = (self.ids)();
        let envelope = EnvelopeV2 {
            schema: "2.0",
            header: HeaderV2 {
                event_id: &event_id,
                token: &self.app.verification_token,
                create_time: self.now_ms.to_string(),
                event_type,
                tenant_key: &self.tenant.tenant_key,
                app_id: &self.app.app_id,
            },
            event,
        };
        // Cannot fail: string keys only, no floats.
        let plaintext = serde_json::to_string(&envelope).unwrap_or_default();
        self.out.push(OutgoingEvent {
            event_id,
            event_type: event_type.to_owned(),
            create_time_ms: self.now_ms,
            app_id: self.app.app_id.clone(),
            version: EventVersion::V2,
            object,
            plaintext,
        });
    }

    fn v1(&mut self, object: ObjectRef, event: LegacyEvent) {
        if !self.app.events_v1 {
            return;
        }
        let uuid = (self.ids)();
        let event = LegacyEnvelopeEvent {
            app_id: Some(self.app.app_id.clone()),
            tenant_key: Some(self.tenant.tenant_key.clone()),
            event,
        };
        let envelope = EnvelopeV1 {
            ts: legacy_ts(self.now_ms),
            uuid: &uuid,
            token: &self.app.verification_token,
            kind: "event_callback",
            event: &event,
        };
        let plaintext = serde_json::to_string(&envelope).unwrap_or_default();
        self.out.push(OutgoingEvent {
            event_id: uuid,
            event_type: event.event_type().to_owned(),
            create_time_ms: self.now_ms,
            app_id: self.app.app_id.clone(),
            version: EventVersion::V1,
            object,
            plaintext,
        });
    }

    // ---- users ----

    fn user_object(&self, u: &UserRecord) -> model::User {
        let mut out = self
            .tenant
            .render_user_record(self.app, u, IdTypes::OPEN, false);
        // The top-level copy is an API field, not part of `UserEvent`.
        out.is_frozen = None;
        out
    }

    fn legacy_user(&self, key: UserKey) -> LegacyUserEvent {
        LegacyUserEvent {
            open_id: Some(self.app.open_id(key)),
            employee_id: self
                .app
                .has(perm::USER_EMPLOYEE_ID)
                .then(|| self.tenant.user_id_as(self.app, key, UserIdType::UserId)),
            union_id: Some(union_id(key)),
        }
    }

    fn user_created(&mut self, key: UserKey) {
        let Some(u) = self.tenant.users.get(&key) else {
            return;
        };
        if !self.tenant.user_in_scope(self.app, key) {
            return;
        }
        let object = self.user_object(u);
        let subject = ObjectRef::User(self.app.open_id(key));
        self.v2(
            fe::USER_CREATED_V3,
            subject.clone(),
            &ObjectOut { object: &object },
        );
        self.v1(subject, LegacyEvent::UserAdd(self.legacy_user(key)));
    }

    fn user_updated(&mut self, key: UserKey, before: &UserRecord) {
        let Some(after) = self.tenant.users.get(&key) else {
            return;
        };
        if !(self.tenant.user_record_in_scope(self.app, before)
            || self.tenant.user_in_scope(self.app, key))
        {
            return;
        }
        let object = self.user_object(after);
        let Some((old_object, changed)) = old_values(&self.user_object(before), &object) else {
            return;
        };
        let subject = ObjectRef::User(self.app.open_id(key));
        self.v2(
            fe::USER_UPDATED_V3,
            subject.clone(),
            &ChangeOut {
                object: &object,
                old_object: &old_object,
            },
        );
        if changed.iter().any(|k| k != "status") {
            self.v1(
                subject.clone(),
                LegacyEvent::UserUpdate(self.legacy_user(key)),
            );
        }
        if changed.contains("status") {
            let legacy = |u: &UserRecord| LegacyStatus {
                is_active: Some(u.status.activated),
                is_frozen: Some(u.status.frozen),
                is_resigned: Some(u.status.resigned),
            };
            self.v1(
                subject,
                LegacyEvent::UserStatusChange {
                    user: self.legacy_user(key),
                    before_status: legacy(before),
                    current_status: legacy(after),
                    change_time: Some(beijing_time(self.now_ms)),
                },
            );
        }
    }

    fn user_deleted(&mut self, before: &UserRecord) {
        if !self.tenant.user_record_in_scope(self.app, before) {
            return;
        }
        let key = before.key;
        let object = match self.tenant.users.get(&key) {
            Some(after) => self.user_object(after),
            None => self.user_object(before),
        };
        let old_object = UserDeletedOld {
            department_ids: self
                .app
                .has(perm::USER_DEPARTMENT)
                .then(|| before.department_ids().map(str::to_owned).collect()),
            open_id: Some(self.app.open_id(key)),
        };
        let subject = ObjectRef::User(self.app.open_id(key));
        self.v2(
            fe::USER_DELETED_V3,
            subject.clone(),
            &ChangeOut {
                object: &object,
                old_object: &old_object,
            },
        );
        self.v1(subject, LegacyEvent::UserLeave(self.legacy_user(key)));
    }

    // ---- departments ----

    fn department_object(&self, d: &DepartmentRecord, deleted: bool) -> DepartmentEvent {
        let api = self
            .tenant
            .render_department_record(self.app, d, deleted, IdTypes::OPEN);
        let with_user_id = self.app.has(perm::USER_EMPLOYEE_ID);
        DepartmentEvent {
            name: api.name,
            parent_department_id: api.parent_department_id,
            department_id: api.department_id,
            open_department_id: api.open_department_id,
            leader_user_id: api.leader_user_id,
            chat_id: api.chat_id,
            order: api.order,
            unit_ids: api.unit_ids,
            status: api.status,
            leaders: api.leaders,
            department_hrbps: api.department_hrbps.map(|_| {
                d.hrbps
                    .iter()
                    .map(|k| UserIds {
                        user_id: with_user_id
                            .then(|| self.tenant.user_id_as(self.app, *k, UserIdType::UserId)),
                        open_id: Some(self.app.open_id(*k)),
                        union_id: Some(union_id(*k)),
                    })
                    .collect()
            }),
        }
    }

    fn department_created(&mut self, id: &str) {
        let Some(d) = self.tenant.departments.get(id) else {
            return;
        };
        if !self.tenant.department_in_scope(self.app, id) {
            return;
        }
        let object = self.department_object(d, false);
        let subject = ObjectRef::Department(id.to_owned());
        self.v2(
            fe::DEPARTMENT_CREATED_V3,
            subject.clone(),
            &ObjectOut { object: &object },
        );
        self.v1(
            subject,
            LegacyEvent::DeptAdd {
                open_department_id: Some(id.to_owned()),
            },
        );
    }

    fn department_updated(&mut self, id: &str, before: &DepartmentRecord) {
        let Some(after) = self.tenant.departments.get(id) else {
            return;
        };
        if !(self.tenant.department_record_in_scope(self.app, before)
            || self.tenant.department_in_scope(self.app, id))
        {
            return;
        }
        let object = self.department_object(after, false);
        let Some((old_object, _)) = old_values(&self.department_object(before, false), &object)
        else {
            return;
        };
        let subject = ObjectRef::Department(id.to_owned());
        self.v2(
            fe::DEPARTMENT_UPDATED_V3,
            subject.clone(),
            &ChangeOut {
                object: &object,
                old_object: &old_object,
            },
        );
        self.v1(
            subject,
            LegacyEvent::DeptUpdate {
                open_department_id: Some(id.to_owned()),
            },
        );
    }

    fn department_deleted(&mut self, before: &DepartmentRecord) {
        if !self.tenant.department_record_in_scope(self.app, before) {
            return;
        }
        let id = before.open_department_id.clone();
        let mut object = self.department_object(before, true);
        object.status = Some(DepartmentStatus {
            is_deleted: Some(true),
        });
        let old_object = DepartmentDeletedOld {
            status: Some(DepartmentStatus {
                is_deleted: Some(false),
            }),
            open_department_id: Some(id.clone()),
        };
        let subject = ObjectRef::Department(id.clone());
        self.v2(
            fe::DEPARTMENT_DELETED_V3,
            subject.clone(),
            &ChangeOut {
                object: &object,
                old_object: &old_object,
            },
        );
        self.v1(
            subject,
            LegacyEvent::DeptDelete {
                open_department_id: Some(id),
            },
        );
    }

    // ---- groups and scope ----

    fn group_event(&mut self, event_type: &str, g: &GroupRecord, before: Option<&GroupRecord>) {
        if !self.app.user_group_events
            || !self.app.has(perm::GROUP)
            || !self.tenant.group_in_scope(self.app, &g.id)
        {
            return;
        }
        let group_ref = |g: &GroupRecord| UserGroupRef {
            user_group_id: Some(g.id.clone()),
            name: Some(g.name.clone()),
        };
        let object = group_ref(g);
        let subject = ObjectRef::Group(g.id.clone());
        match before {
            Some(before) => self.v2(
                event_type,
                subject,
                &ChangeOut {
                    object: &object,
                    old_object: &group_ref(before),
                },
            ),
            None => self.v2(event_type, subject, &ObjectOut { object: &object }),
        }
    }

    fn scope_changed(&mut self, before: &crate::tenant::ContactScope) {
        let before_app = AppRecord {
            scope: before.clone(),
            ..self.app.clone()
        };
        let (bd, bu, bg) = self.tenant.scope_lists(&before_app);
        let (ad, au, ag) = self.tenant.scope_lists(self.app);
        let (added, removed) = (
            self.scope_part(&ad, &bd, &au, &bu, &ag, &bg),
            self.scope_part(&bd, &ad, &bu, &au, &bg, &ag),
        );
        if added.is_empty() && removed.is_empty() {
            return;
        }
        self.v2(
            fe::SCOPE_UPDATED_V3,
            ObjectRef::Scope,
            &ScopeOut {
                added: &added,
                removed: &removed,
            },
        );
        self.v1(ObjectRef::Scope, LegacyEvent::ContactScopeChange);
    }

    /// What is in the first lists and not in the second, as API objects.
    fn scope_part(
        &self,
        departments: &[String],
        minus_departments: &[String],
        users: &[UserKey],
        minus_users: &[UserKey],
        groups: &[String],
        minus_groups: &[String],
    ) -> ScopeChange {
        let minus_d: BTreeSet<&String> = minus_departments.iter().collect();
        let minus_u: BTreeSet<&UserKey> = minus_users.iter().collect();
        let minus_g: BTreeSet<&String> = minus_groups.iter().collect();
        ScopeChange {
            departments: departments
                .iter()
                .filter(|d| !minus_d.contains(d))
                .filter_map(|d| self.tenant.render_department(self.app, d, IdTypes::OPEN))
                .collect(),
            users: users
                .iter()
                .filter(|k| !minus_u.contains(k))
                .filter_map(|k| self.tenant.render_user(self.app, *k, IdTypes::OPEN, false))
                .collect(),
            user_groups: groups
                .iter()
                .filter(|g| !minus_g.contains(g))
                .filter_map(|g| self.tenant.groups.get(g))
                .map(|g| model::UserGroup {
                    user_group_id: Some(g.id.clone()),
                    name: Some(g.name.clone()),
                    kind: Some(g.kind.code()),
                    member_count: Some((g.users.len() + g.departments.len()) as i64),
                    // 1 = normal; the only status the emulator knows.
                    status: Some(1),
                })
                .collect(),
        }
    }
}

/// The empty value of a JSON value's type (the "old value" of a field that was unset).
fn empty_like(v: &Value) -> Value {
    match v {
        Value::String(_) => Value::String(String::new()),
        Value::Number(_) => Value::from(0),
        Value::Bool(_) => Value::Bool(false),
        Value::Array(_) => Value::Array(Vec::new()),
        Value::Object(_) => Value::Object(Map::new()),
        Value::Null => Value::Null,
    }
}

/// `old_object`: the fields that differ between the two renderings, with the old values,
/// and the names of those fields. `None` when nothing visible changed.
fn old_values<T>(before: &T, after: &T) -> Option<(T, BTreeSet<String>)>
where
    T: Serialize + DeserializeOwned,
{
    let (Ok(Value::Object(b)), Ok(Value::Object(a))) =
        (serde_json::to_value(before), serde_json::to_value(after))
    else {
        return None;
    };
    let mut old = Map::new();
    for (k, av) in &a {
        match b.get(k) {
            Some(bv) if bv == av => {}
            Some(bv) => {
                old.insert(k.clone(), bv.clone());
            }
            None => {
                old.insert(k.clone(), empty_like(av));
            }
        }
    }
    for (k, bv) in &b {
        if !a.contains_key(k) {
            old.insert(k.clone(), bv.clone());
        }
    }
    if old.is_empty() {
        return None;
    }
    let changed = old.keys().cloned().collect();
    // Back through the typed struct, so the fields keep their wire order.
    let old = serde_json::from_value(Value::Object(old)).ok()?;
    Some((old, changed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{GenerateConfig, generate};
    use crate::mutate::{NewDepartment, NewGroup, NewUser, UserPatch};
    use crate::tenant::{ContactScope, GroupKind, I18n};
    use feishu::envelope::{DecodeOptions, Envelope, EventSecrets, decode_request_at, seal};
    use feishu::events::ContactEvent;
    use feishu::ids::ROOT_DEPARTMENT_ID;
    use rand::SeedableRng;
    use serde_json::json;

    const FULL: &str = "cli_events0000000001";
    const NOW_MS: i64 = 1_700_000_000_123;

    fn full_app() -> AppRecord {
        let mut app = AppRecord::new(FULL, "secret");
        app.verification_token = "vt_test_token_001".into();
        app.encrypt_key = Some("feishu-test-key".into());
        app.events_v1 = true;
        app.user_group_events = true;
        app
    }

    fn tenant_with(apps: Vec<AppRecord>) -> Tenant {
        generate(&GenerateConfig::default(), apps)
    }

    fn tenant() -> Tenant {
        tenant_with(vec![full_app()])
    }

    fn id_source() -> impl FnMut() -> String {
        let mut n = 0u64;
        move || {
            n += 1;
            format!("{n:032x}")
        }
    }

    /// Events of `changes` for one app.
    fn render(t: &Tenant, app_id: &str, changes: &[Change]) -> Vec<OutgoingEvent> {
        let mut ids = id_source();
        let app = &t.apps[app_id];
        changes
            .iter()
            .flat_map(|c| render_events(t, app, c, NOW_MS, &mut ids))
            .collect()
    }

    /// Seals the event as the pusher would and decodes it with orgsync's own decoder.
    fn decode(app: &AppRecord, e: &OutgoingEvent) -> Envelope {
        let sealed = seal(
            &e.plaintext,
            app.encrypt_key.as_deref(),
            "1700000000",
            "123456789",
        );
        let secrets = EventSecrets::new(app.verification_token.clone(), app.encrypt_key.clone());
        let envelope = decode_request_at(
            &sealed.headers(),
            sealed.body.as_bytes(),
            &secrets,
            &DecodeOptions::default(),
            1_700_000_000,
        )
        .unwrap();
        assert_eq!(envelope.event_id(), Some(e.event_id.as_str()));
        assert_eq!(envelope.event_type(), e.event_type);
        envelope
    }

    fn v2_of(t: &Tenant, app_id: &str, changes: &[Change]) -> Vec<(OutgoingEvent, ContactEvent)> {
        let app = &t.apps[app_id];
        render(t, app_id, changes)
            .into_iter()
            .filter(|e| e.version == EventVersion::V2)
            .map(|e| match decode(app, &e) {
                Envelope::V2(v2) => {
                    assert_eq!(v2.header.app_id.as_deref(), Some(app_id));
                    assert_eq!(v2.header.tenant_key.as_deref(), Some(t.tenant_key.as_str()));
                    assert_eq!(v2.header.create_time_ms, Some(NOW_MS));
                    (e, v2.event)
                }
                other => panic!("expected 2.0, got {other:?}"),
            })
            .collect()
    }

    fn v1_of(t: &Tenant, app_id: &str, changes: &[Change]) -> Vec<(OutgoingEvent, LegacyEvent)> {
        let app = &t.apps[app_id];
        render(t, app_id, changes)
            .into_iter()
            .filter(|e| e.version == EventVersion::V1)
            .map(|e| match decode(app, &e) {
                Envelope::V1(v1) => {
                    assert_eq!(v1.event.app_id.as_deref(), Some(app_id));
                    assert_eq!(v1.event.tenant_key.as_deref(), Some(t.tenant_key.as_str()));
                    assert_eq!(v1.ts_ms, Some(NOW_MS));
                    (e, v1.event.event)
                }
                other => panic!("expected 1.0, got {other:?}"),
            })
            .collect()
    }

    fn event_json(e: &OutgoingEvent) -> Value {
        serde_json::from_str::<Value>(&e.plaintext).unwrap()["event"].take()
    }

    fn some_leaf(t: &Tenant) -> String {
        t.departments
            .keys()
            .find(|d| t.children(d).is_empty() && !t.members(d).is_empty())
            .unwrap()
            .clone()
    }

    fn hire_into(t: &mut Tenant, dept: &str) -> (UserKey, Vec<Change>) {
        let changes = t
            .hire(NewUser {
                name: Some("张三".into()),
                departments: vec![dept.to_owned()],
                leader: t.departments[dept].main_leader(),
                ..NewUser::default()
            })
            .unwrap();
        (Change::created_user(&changes).unwrap(), changes)
    }

    fn restricted_app(id: &str, permissions: &[&str]) -> AppRecord {
        let mut app = AppRecord::new(id, "secret");
        app.permissions = permissions.iter().map(|p| p.to_string()).collect();
        app.events_v1 = true;
        app
    }

    // ---- envelope ----

    #[test]
    fn v2_envelope_has_feishus_key_order_compact_raw_utf8() {
        let mut t = tenant();
        let dept = some_leaf(&t);
        let (key, changes) = hire_into(&mut t, &dept);
        let events = render(&t, FULL, &changes);
        assert_eq!(events.len(), 2, "one 2.0 and one 1.0 event");
        let e = &events[0];
        assert_eq!(e.version, EventVersion::V2);
        assert_eq!(e.event_id, format!("{:032x}", 1));
        assert_eq!(e.create_time_ms, NOW_MS);
        assert_eq!(e.app_id, FULL);
        assert_eq!(e.object, ObjectRef::User(t.apps[FULL].open_id(key)));
        let prefix = format!(
            r#"{{"schema":"2.0","header":{{"event_id":"{}","token":"vt_test_token_001","create_time":"1700000000123","event_type":"contact.user.created_v3","tenant_key":"{}","app_id":"{FULL}"}},"event":{{"object":{{"#,
            e.event_id, t.tenant_key
        );
        assert!(e.plaintext.starts_with(&prefix), "{}", e.plaintext);
        assert!(e.plaintext.contains(r#""name":"张三""#), "raw UTF-8");
        assert!(!e.plaintext.contains("\\u"), "no escapes");
        assert!(
            !e.plaintext.contains(": ") && !e.plaintext.contains('\n'),
            "compact"
        );
        assert!(e.plaintext.ends_with("}}}"));
    }

    #[test]
    fn v1_envelope_shape() {
        let mut t = tenant();
        let dept = some_leaf(&t);
        let (key, changes) = hire_into(&mut t, &dept);
        let e = &render(&t, FULL, &changes)[1];
        assert_eq!(e.version, EventVersion::V1);
        assert_eq!(e.event_type, fe::USER_ADD);
        let prefix = format!(
            r#"{{"ts":"1700000000.1230000","uuid":"{}","token":"vt_test_token_001","type":"event_callback","event":{{"type":"user_add","app_id":"{FULL}","tenant_key":"{}","open_id":"{}","employee_id":"{}","union_id":"{}"}}}}"#,
            e.event_id,
            t.tenant_key,
            t.apps[FULL].open_id(key),
            t.users[&key].user_id,
            union_id(key)
        );
        assert_eq!(e.plaintext, prefix);
        let (_, legacy) = v1_of(&t, FULL, &changes).remove(0);
        assert_eq!(
            legacy,
            LegacyEvent::UserAdd(LegacyUserEvent {
                open_id: Some(t.apps[FULL].open_id(key)),
                employee_id: Some(t.users[&key].user_id.clone()),
                union_id: Some(union_id(key)),
            })
        );
    }

    #[test]
    fn beijing_time_formats_change_time() {
        assert_eq!(beijing_time(1_582_273_728_000), "2020-02-21 16:28:48");
        assert_eq!(beijing_time(946_670_400_000), "2000-01-01 04:00:00");
        assert_eq!(beijing_time(951_782_400_000), "2000-02-29 08:00:00");
        assert_eq!(legacy_ts(1_502_199_207_717), "1502199207.7170000");
    }

    // ---- users ----

    #[test]
    fn user_created_carries_the_user_as_the_app_sees_it() {
        let mut t = tenant();
        let dept = some_leaf(&t);
        let (key, changes) = hire_into(&mut t, &dept);
        let app = &t.apps[FULL];
        let (_, event) = v2_of(&t, FULL, &changes).remove(0);
        let ContactEvent::UserCreated { object } = event else {
            panic!("{event:?}")
        };
        let u = &t.users[&key];
        assert_eq!(object.open_id, Some(app.open_id(key)));
        assert_eq!(object.union_id, Some(union_id(key)));
        assert_eq!(object.user_id.as_deref(), Some(u.user_id.as_str()));
        assert_eq!(object.name.as_deref(), Some("张三"));
        assert_eq!(object.email, u.email);
        assert_eq!(object.mobile, u.mobile);
        assert_eq!(object.department_ids, Some(vec![dept.clone()]));
        assert_eq!(object.primary_department(), Some(dept.as_str()));
        let leader = object.leader_user_id.as_deref().unwrap();
        assert_eq!(
            leader,
            app.open_id(t.departments[&dept].main_leader().unwrap()),
            "leader_user_id is an open_id"
        );
        assert_eq!(object.is_resigned(), Some(false));
        assert_eq!(object.is_frozen, None, "the top-level copy is API-only");
    }

    #[test]
    fn user_updated_old_object_has_only_the_changed_fields() {
        let mut t = tenant();
        let dept = some_leaf(&t);
        let (key, _) = hire_into(&mut t, &dept);
        let before = t.users[&key].clone();
        let changes = t
            .update_user(
                key,
                &UserPatch {
                    name: Some("李四".into()),
                    job_title: Some("产品经理".into()),
                    en_name: Some(String::new()),
                    ..UserPatch::default()
                },
            )
            .unwrap();
        let events = v2_of(&t, FULL, &changes);
        assert_eq!(events.len(), 1);
        let (e, event) = &events[0];
        assert_eq!(
            event_json(e)["old_object"],
            json!({"name": before.name, "en_name": before.en_name, "job_title": before.job_title})
        );
        let ContactEvent::UserUpdated { object, old_object } = event else {
            panic!("{event:?}")
        };
        assert_eq!(object.name.as_deref(), Some("李四"));
        assert_eq!(object.en_name, None, "cleared");
        assert_eq!(old_object.name, Some(before.name.clone()));
        assert_eq!(old_object.open_id, None, "unchanged fields are absent");
        // A field that was unset before reports the empty value.
        let changes = t
            .update_user(
                key,
                &UserPatch {
                    en_name: Some("Si Li".into()),
                    ..UserPatch::default()
                },
            )
            .unwrap();
        let (e, _) = &v2_of(&t, FULL, &changes)[0];
        assert_eq!(event_json(e)["old_object"], json!({"en_name": ""}));
        let legacy: Vec<LegacyEvent> = v1_of(&t, FULL, &changes)
            .into_iter()
            .map(|(_, l)| l)
            .collect();
        assert!(
            matches!(&legacy[..], [LegacyEvent::UserUpdate(_)]),
            "{legacy:?}"
        );
    }

    #[test]
    fn a_status_change_is_an_update_and_a_legacy_status_change() {
        let mut t = tenant();
        let dept = some_leaf(&t);
        let (key, _) = hire_into(&mut t, &dept);
        let changes = t.freeze(key).unwrap();
        let (e, event) = v2_of(&t, FULL, &changes).remove(0);
        assert_eq!(
            event_json(&e)["old_object"],
            json!({"status": {"is_frozen": false, "is_resigned": false, "is_activated": true, "is_exited": false, "is_unjoin": false}})
        );
        let ContactEvent::UserUpdated { object, .. } = event else {
            panic!("{event:?}")
        };
        assert_eq!(object.is_frozen(), Some(true));
        let legacy = v1_of(&t, FULL, &changes);
        assert_eq!(legacy.len(), 1);
        let LegacyEvent::UserStatusChange {
            user,
            before_status,
            current_status,
            change_time,
        } = &legacy[0].1
        else {
            panic!("{legacy:?}")
        };
        assert_eq!(user.open_id, Some(t.apps[FULL].open_id(key)));
        assert_eq!(
            (before_status.is_frozen, current_status.is_frozen),
            (Some(false), Some(true))
        );
        assert_eq!(current_status.is_active, Some(true));
        assert_eq!(current_status.is_resigned, Some(false));
        assert_eq!(change_time.as_deref(), Some("2023-11-15 06:13:20"));

        // Without the employee permission the status is invisible: nothing is sent.
        let mut t = tenant_with(vec![restricted_app(
            "cli_nostatus00000001",
            &[perm::CONTACT_BASE, perm::USER_BASE, perm::USER_DEPARTMENT],
        )]);
        let key = t
            .users
            .values()
            .find(|u| !u.status.resigned && !u.status.frozen)
            .unwrap()
            .key;
        let changes = t.freeze(key).unwrap();
        assert!(render(&t, "cli_nostatus00000001", &changes).is_empty());
    }

    #[test]
    fn permission_gated_fields_are_absent_and_invisible_changes_send_nothing() {
        let id = "cli_restricted000001";
        let mut t = tenant_with(vec![restricted_app(
            id,
            &[perm::CONTACT_BASE, perm::USER_BASE],
        )]);
        let dept = some_leaf(&t);
        let (key, changes) = hire_into(&mut t, &dept);
        let (e, event) = v2_of(&t, id, &changes).remove(0);
        let ContactEvent::UserCreated { object } = event else {
            panic!("{event:?}")
        };
        assert!(object.name.is_some() && object.open_id.is_some() && object.union_id.is_some());
        assert_eq!(object.user_id, None);
        assert_eq!(object.email, None);
        assert_eq!(object.mobile, None);
        assert_eq!(object.department_ids, None);
        assert_eq!(object.leader_user_id, None);
        assert_eq!(object.status, None);
        assert_eq!(object.gender, None);
        for field in [
            "\"user_id\"",
            "\"email\"",
            "\"mobile\"",
            "\"department_ids\"",
            "\"status\"",
        ] {
            assert!(!e.plaintext.contains(field), "{field} in {}", e.plaintext);
        }
        let legacy = v1_of(&t, id, &changes);
        let LegacyEvent::UserAdd(user) = &legacy[0].1 else {
            panic!("{legacy:?}")
        };
        assert_eq!(
            user.employee_id, None,
            "employee_id needs the user_id permission"
        );

        let patch = UserPatch {
            email: Some("hidden.change.1@example.com".into()),
            mobile: Some("+8613912345678".into()),
            ..UserPatch::default()
        };
        let changes = t.update_user(key, &patch).unwrap();
        assert_eq!(changes.len(), 1);
        assert!(render(&t, id, &changes).is_empty());
        let elsewhere = t.departments.keys().find(|d| **d != dept).unwrap().clone();
        let changes = t.move_user(key, &[elsewhere]).unwrap();
        assert_eq!(changes.len(), 1);
        assert!(
            render(&t, id, &changes).is_empty(),
            "department_ids are not visible"
        );
    }

    #[test]
    fn resignation_is_a_deleted_event_with_the_former_departments() {
        let mut t = tenant();
        let key = t
            .users
            .values()
            .find(|u| u.memberships.len() >= 2 && !u.status.resigned)
            .unwrap()
            .key;
        let former: Vec<String> = t.users[&key].department_ids().map(str::to_owned).collect();
        let changes = t.resign(key).unwrap();
        let events = v2_of(&t, FULL, &changes);
        let (e, event) = &events[0];
        assert_eq!(e.event_type, fe::USER_DELETED_V3);
        let ContactEvent::UserDeleted { object, old_object } = event else {
            panic!("{event:?}")
        };
        assert_eq!(object.open_id, Some(t.apps[FULL].open_id(key)));
        assert_eq!(object.is_resigned(), Some(true));
        assert_eq!(object.department_ids, Some(vec![]));
        assert_eq!(old_object.department_ids, Some(former));
        assert_eq!(old_object.open_id, Some(t.apps[FULL].open_id(key)));
        assert_eq!(
            event_json(e)["old_object"].as_object().unwrap().len(),
            2,
            "old_object is {{department_ids, open_id}}"
        );
        // No separate update for the resigned user themselves.
        assert!(!events.iter().any(|(_, ev)| matches!(ev, ContactEvent::UserUpdated { object, .. } if object.open_id == Some(t.apps[FULL].open_id(key)))));
        let legacy = v1_of(&t, FULL, &changes);
        assert!(
            matches!(&legacy[0].1, LegacyEvent::UserLeave(u) if u.open_id == Some(t.apps[FULL].open_id(key)))
        );
    }

    // ---- departments ----

    #[test]
    fn department_events_use_event_shapes() {
        let mut t = tenant();
        let parent = some_leaf(&t);
        let changes = t
            .create_department(NewDepartment {
                name: "新部门".into(),
                parent: parent.clone(),
                create_chat: true,
                ..NewDepartment::default()
            })
            .unwrap();
        let id = Change::created_id(&changes).unwrap().to_owned();
        let (e, event) = v2_of(&t, FULL, &changes).remove(0);
        assert_eq!(e.object, ObjectRef::Department(id.clone()));
        let ContactEvent::DepartmentCreated { object } = event else {
            panic!("{event:?}")
        };
        assert_eq!(object.open_department_id, Some(id.clone()));
        assert_eq!(object.parent_department_id, Some(parent.clone()));
        assert_eq!(object.name.as_deref(), Some("新部门"));
        assert!(object.chat_id.as_deref().unwrap().starts_with("oc_"));
        assert!(!object.is_deleted());
        let raw = event_json(&e);
        assert!(
            raw["object"]["order"].is_i64(),
            "order is a number in events: {raw}"
        );
        assert!(raw["object"].get("i18n_name").is_none());
        assert!(raw["object"].get("member_count").is_none());
        assert!(e.plaintext.contains("\"name\":\"新部门\""));
        let legacy = v1_of(&t, FULL, &changes);
        assert_eq!(
            legacy[0].1,
            LegacyEvent::DeptAdd {
                open_department_id: Some(id.clone())
            }
        );

        // Leaders and HRBPs (the latter need their own permission).
        let (key, _) = hire_into(&mut t, &id);
        let mut app = t.apps[FULL].clone();
        app.permissions.insert(perm::DEPARTMENT_HRBP.to_owned());
        t.apps.insert(FULL.to_owned(), app);
        let changes = t.set_department_leaders(&id, &[(1, key)]).unwrap();
        let (e, event) = v2_of(&t, FULL, &changes).remove(0);
        let raw = event_json(&e);
        let open_id = t.apps[FULL].open_id(key);
        assert_eq!(
            raw["object"]["leaders"],
            json!([{"leaderType": 1, "leaderID": open_id}]),
            "camelCase keys, open ids"
        );
        assert_eq!(raw["object"]["leader_user_id"], json!(open_id));
        assert_eq!(
            raw["old_object"],
            json!({"leader_user_id": "", "leaders": []})
        );
        let ContactEvent::DepartmentUpdated { object, old_object } = event else {
            panic!("{event:?}")
        };
        assert_eq!(object.main_leader(), Some(open_id.as_str()));
        assert_eq!(old_object.leaders, Some(vec![]));

        let changes = t.set_department_hrbps(&id, &[key]).unwrap();
        let (e, _) = v2_of(&t, FULL, &changes).remove(0);
        let raw = event_json(&e);
        assert_eq!(
            raw["object"]["department_hrbps"],
            json!([{"user_id": t.users[&key].user_id, "open_id": open_id, "union_id": union_id(key)}]),
            "id triples, not strings"
        );
        assert_eq!(raw["old_object"], json!({"department_hrbps": []}));
    }

    #[test]
    fn department_update_and_delete_payloads() {
        let mut t = tenant();
        let parent = some_leaf(&t);
        let id = Change::created_id(
            &t.create_department(NewDepartment {
                name: "临时组".into(),
                parent: parent.clone(),
                ..NewDepartment::default()
            })
            .unwrap(),
        )
        .unwrap()
        .to_owned();
        let order = t.departments[&id].order;

        let changes = t
            .rename_department(
                &id,
                "正式组",
                I18n {
                    en_us: Some("Team".into()),
                    ..I18n::default()
                },
            )
            .unwrap();
        let (e, _) = &v2_of(&t, FULL, &changes)[0];
        assert_eq!(event_json(e)["old_object"], json!({"name": "临时组"}));

        let changes = t.move_department(&id, ROOT_DEPARTMENT_ID).unwrap();
        let (e, event) = &v2_of(&t, FULL, &changes)[0];
        assert_eq!(
            event_json(e)["old_object"],
            json!({"parent_department_id": parent, "order": order})
        );
        let ContactEvent::DepartmentUpdated { object, .. } = event else {
            panic!("{event:?}")
        };
        assert_eq!(
            object.parent_department_id.as_deref(),
            Some(ROOT_DEPARTMENT_ID)
        );
        assert!(
            matches!(&v1_of(&t, FULL, &changes)[0].1, LegacyEvent::DeptUpdate { open_department_id } if open_department_id.as_deref() == Some(id.as_str()))
        );

        // Only i18n changed: not part of DepartmentEvent, so nothing to tell.
        let changes = t
            .rename_department(
                &id,
                "正式组",
                I18n {
                    en_us: Some("Team B".into()),
                    ..I18n::default()
                },
            )
            .unwrap();
        assert_eq!(changes.len(), 1);
        assert!(render(&t, FULL, &changes).is_empty());

        let changes = t.delete_department(&id).unwrap();
        let (e, event) = v2_of(&t, FULL, &changes).remove(0);
        assert_eq!(
            event_json(&e)["old_object"],
            json!({"status": {"is_deleted": false}, "open_department_id": id})
        );
        let ContactEvent::DepartmentDeleted { object, old_object } = event else {
            panic!("{event:?}")
        };
        assert!(object.is_deleted());
        assert_eq!(object.open_department_id, Some(id.clone()));
        assert_eq!(old_object.open_department_id, Some(id.clone()));
        assert_eq!(
            v1_of(&t, FULL, &changes)[0].1,
            LegacyEvent::DeptDelete {
                open_department_id: Some(id)
            }
        );
    }

    // ---- scope ----

    #[test]
    fn scope_update_lists_added_and_removed_objects_for_that_app_only() {
        let other = "cli_bystander0000001";
        let mut bystander = AppRecord::new(other, "s");
        bystander.events_v1 = true;
        let mut t = tenant_with(vec![full_app(), bystander]);
        let top = t.children(ROOT_DEPARTMENT_ID).to_vec();
        let picked = t
            .departments
            .keys()
            .find(|d| !top.contains(d))
            .unwrap()
            .clone();
        let user = t.members(ROOT_DEPARTMENT_ID).first().copied();
        let group = t.groups.keys().next().unwrap().clone();
        let changes = t
            .set_app_scope(
                FULL,
                ContactScope::Partial {
                    departments: vec![picked.clone()],
                    users: user.into_iter().collect(),
                    groups: vec![group.clone()],
                },
            )
            .unwrap();
        assert!(render(&t, other, &changes).is_empty());
        let (e, event) = v2_of(&t, FULL, &changes).remove(0);
        assert_eq!(e.object, ObjectRef::Scope);
        let ContactEvent::ScopeUpdated { added, removed } = event else {
            panic!("{event:?}")
        };
        let ids = |s: &ScopeChange| -> Vec<String> {
            s.departments
                .iter()
                .filter_map(|d| d.open_department_id.clone())
                .collect()
        };
        assert_eq!(ids(&added), vec![picked.clone()]);
        let mut removed_ids = ids(&removed);
        removed_ids.sort();
        let mut top_sorted = top.clone();
        top_sorted.sort();
        assert_eq!(removed_ids, top_sorted);
        assert!(
            added.users.is_empty(),
            "root users were in scope before too"
        );
        assert_eq!(removed.user_groups.len(), t.groups.len() - 1);
        assert!(added.user_groups.is_empty());
        let raw = event_json(&e);
        assert!(
            raw["added"]["departments"][0]["order"].is_string(),
            "API-style order: {raw}"
        );
        assert_eq!(raw["added"]["users"], json!([]));
        assert_eq!(
            v1_of(&t, FULL, &changes)
                .into_iter()
                .map(|(_, l)| l)
                .collect::<Vec<_>>(),
            vec![LegacyEvent::ContactScopeChange]
        );

        // Back to all members: the reverse.
        let changes = t.set_app_scope(FULL, ContactScope::All).unwrap();
        let (_, event) = v2_of(&t, FULL, &changes).remove(0);
        let ContactEvent::ScopeUpdated { added, removed } = event else {
            panic!("{event:?}")
        };
        assert_eq!(ids(&removed), vec![picked]);
        assert_eq!(added.departments.len(), top.len());
        assert_eq!(added.user_groups.len(), t.groups.len() - 1);
        assert_eq!(
            added.user_groups[0].kind,
            Some(
                t.groups[&added.user_groups[0].user_group_id.clone().unwrap()]
                    .kind
                    .code()
            )
        );
    }

    #[test]
    fn objects_outside_the_scope_produce_no_events() {
        let mut t = tenant();
        let inside = some_leaf(&t);
        let outside = t
            .departments
            .keys()
            .find(|d| {
                !t.ancestors_and_self(d).contains(&inside)
                    && !t.ancestors_and_self(&inside).contains(d)
                    && !t.members(d).is_empty()
            })
            .unwrap()
            .clone();
        t.set_app_scope(
            FULL,
            ContactScope::Partial {
                departments: vec![inside.clone()],
                users: vec![],
                groups: vec![],
            },
        )
        .unwrap();

        let (out_key, changes) = hire_into(&mut t, &outside);
        assert!(render(&t, FULL, &changes).is_empty(), "hired outside");
        let (in_key, changes) = hire_into(&mut t, &inside);
        assert_eq!(render(&t, FULL, &changes).len(), 2, "hired inside");

        let changes = t
            .update_user(
                out_key,
                &UserPatch {
                    name: Some("王五".into()),
                    ..UserPatch::default()
                },
            )
            .unwrap();
        assert!(render(&t, FULL, &changes).is_empty());

        // Moving out of the scope is seen (as an update); moving back in too.
        let changes = t.move_user(in_key, std::slice::from_ref(&outside)).unwrap();
        let (_, event) = v2_of(&t, FULL, &changes).remove(0);
        let ContactEvent::UserUpdated { object, old_object } = event else {
            panic!("{event:?}")
        };
        assert_eq!(object.department_ids, Some(vec![outside.clone()]));
        assert_eq!(old_object.department_ids, Some(vec![inside.clone()]));
        let changes = t.move_user(in_key, std::slice::from_ref(&inside)).unwrap();
        assert_eq!(v2_of(&t, FULL, &changes).len(), 1);

        // A resignation is judged by the memberships before it.
        let changes = t.resign(in_key).unwrap();
        let events = v2_of(&t, FULL, &changes);
        assert!(matches!(events[0].1, ContactEvent::UserDeleted { .. }));
        let changes = t.resign(out_key).unwrap();
        assert!(
            render(&t, FULL, &changes)
                .iter()
                .all(|e| e.event_type != fe::USER_DELETED_V3)
        );

        // Departments: created and deleted inside vs outside.
        let create = |t: &mut Tenant, parent: &str| {
            Change::created_id(
                &t.create_department(NewDepartment {
                    name: "子部门".into(),
                    parent: parent.to_owned(),
                    ..NewDepartment::default()
                })
                .unwrap(),
            )
            .unwrap()
            .to_owned()
        };
        let child_in = create(&mut t, &inside);
        let child_out = create(&mut t, &outside);
        assert_eq!(
            v2_of(
                &t,
                FULL,
                &[Change::DepartmentCreated {
                    id: child_in.clone()
                }]
            )
            .len(),
            1
        );
        assert!(
            render(
                &t,
                FULL,
                &[Change::DepartmentCreated {
                    id: child_out.clone()
                }]
            )
            .is_empty()
        );
        let changes = t.delete_department(&child_in).unwrap();
        assert!(matches!(
            v2_of(&t, FULL, &changes)[0].1,
            ContactEvent::DepartmentDeleted { .. }
        ));
        let changes = t.delete_department(&child_out).unwrap();
        assert!(render(&t, FULL, &changes).is_empty());

        // Root users are outside any partial scope.
        let changes = t.hire(NewUser::default()).unwrap();
        assert!(render(&t, FULL, &changes).is_empty());
    }

    // ---- subscriptions ----

    #[test]
    fn versions_follow_the_subscription() {
        let mut only_v1 = AppRecord::new("cli_onlyv10000000001", "s");
        only_v1.events_v2 = false;
        only_v1.events_v1 = true;
        let only_v2 = AppRecord::new("cli_onlyv20000000001", "s");
        let mut neither = AppRecord::new("cli_neither000000001", "s");
        neither.events_v2 = false;
        let mut unsubscribable = restricted_app(
            "cli_nobase0000000001",
            &[perm::USER_BASE, perm::DEPARTMENT_BASE],
        );
        unsubscribable.events_v2 = true;
        let mut t = tenant_with(vec![full_app(), only_v1, only_v2, neither, unsubscribable]);
        let dept = some_leaf(&t);
        let (_, changes) = hire_into(&mut t, &dept);
        let versions = |id: &str| -> Vec<EventVersion> {
            render(&t, id, &changes).iter().map(|e| e.version).collect()
        };
        assert_eq!(versions(FULL), vec![EventVersion::V2, EventVersion::V1]);
        assert_eq!(versions("cli_onlyv10000000001"), vec![EventVersion::V1]);
        assert_eq!(versions("cli_onlyv20000000001"), vec![EventVersion::V2]);
        assert!(versions("cli_neither000000001").is_empty());
        assert!(
            versions("cli_nobase0000000001").is_empty(),
            "no contact base permission"
        );

        let mut ids = id_source();
        let all = render_for_all_apps(&t, &changes, NOW_MS, &mut ids);
        assert_eq!(all.len(), 4);
        let unique: BTreeSet<&str> = all.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(unique.len(), 4);
    }

    #[test]
    fn user_group_events_only_when_switched_on() {
        let plain = "cli_nogroups00000001";
        let mut t = tenant_with(vec![full_app(), AppRecord::new(plain, "s")]);
        let users: Vec<UserKey> = t
            .users
            .values()
            .filter(|u| !u.status.resigned)
            .map(|u| u.key)
            .take(2)
            .collect();
        // Events are rendered right after each mutation, against the state it left.
        let mut got = Vec::new();
        let mut step = |t: &Tenant, changes: Vec<Change>| {
            assert!(render(t, plain, &changes).is_empty());
            assert!(
                render(t, FULL, &changes)
                    .iter()
                    .all(|e| e.version == EventVersion::V2),
                "no 1.0 form"
            );
            got.extend(v2_of(t, FULL, &changes).into_iter().map(|(_, e)| e));
        };
        let changes = t
            .create_group(NewGroup {
                name: "项目 Gamma".into(),
                description: String::new(),
                kind: GroupKind::Normal,
                group_id: None,
                users: vec![users[0]],
                departments: vec![],
            })
            .unwrap();
        let id = Change::created_id(&changes).unwrap().to_owned();
        step(&t, changes);
        let changes = t.update_group(&id, Some("项目 Delta"), None).unwrap();
        step(&t, changes);
        let changes = t.add_group_members(&id, &[users[1]], &[]).unwrap();
        step(&t, changes);
        let changes = t.delete_group(&id).unwrap();
        step(&t, changes);
        let gref = |name: &str| UserGroupRef {
            user_group_id: Some(id.clone()),
            name: Some(name.into()),
        };
        assert_eq!(
            got,
            vec![
                ContactEvent::UserGroupCreated {
                    object: gref("项目 Gamma")
                },
                ContactEvent::UserGroupUpdated {
                    object: gref("项目 Delta"),
                    old_object: gref("项目 Gamma")
                },
                ContactEvent::UserGroupMemberChanged {
                    object: gref("项目 Delta")
                },
                ContactEvent::UserGroupDeleted {
                    object: gref("项目 Delta")
                },
            ]
        );
    }

    #[test]
    fn every_event_of_many_random_mutations_decodes() {
        let mut hrbp = full_app();
        hrbp.app_id = "cli_everything000001".into();
        hrbp.permissions.insert(perm::DEPARTMENT_HRBP.into());
        hrbp.encrypt_key = None;
        let mut t = tenant_with(vec![full_app(), hrbp]);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut ids = id_source();
        let mut seen = BTreeSet::new();
        let mut event_ids = BTreeSet::new();
        for _ in 0..600 {
            let changes = t.random_mutation(&mut rng);
            for e in render_for_all_apps(&t, &changes, NOW_MS, &mut ids) {
                assert!(event_ids.insert(e.event_id.clone()));
                assert!(!e.plaintext.contains("\\u"), "{}", e.plaintext);
                let app = t.apps[&e.app_id].clone();
                match decode(&app, &e) {
                    Envelope::V2(v2) => {
                        assert!(
                            !matches!(v2.event, ContactEvent::Unrecognized { .. }),
                            "{:?}",
                            v2.event
                        );
                        assert_eq!(v2.event.affected_object(), e.object);
                    }
                    Envelope::V1(v1) => {
                        assert!(
                            !matches!(v1.event.event, LegacyEvent::Unrecognized { .. }),
                            "{:?}",
                            v1.event
                        );
                        assert_eq!(v1.event.affected_object(), e.object);
                    }
                    other => panic!("{other:?}"),
                }
                seen.insert(e.event_type.clone());
            }
        }
        for expected in fe::V2_EVENT_TYPES
            .iter()
            .take(11)
            .chain(fe::V1_EVENT_TYPES.iter())
        {
            assert!(
                seen.contains(*expected),
                "{expected} never happened: {seen:?}"
            );
        }
    }
}
