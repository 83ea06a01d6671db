//! The emulator's own admin HTTP API under `/_emulator`: change the tenant (each change emits
//! the events Feishu would send), configure apps, and drive every switch and hook. Not part of
//! Feishu; documented in the README.
//!
//! Users may be named by any of their ids (an app's `open_id`, `union_id`, `user_id`);
//! departments by `od-` id or custom `department_id`; groups by group id.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use rand::SeedableRng;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::Behaviour;
use crate::faults::FaultConfig;
use crate::hub::push_target;
use crate::mutate::{
    Change, MutationError, MutationProfile, NewDepartment, NewGroup, NewUser, UserPatch,
};
use crate::pusher::PushConfig;
use crate::ratelimit::RateLimitConfig;
use crate::server::EmulatorState;
use crate::tenant::{AppRecord, ContactScope, GroupKind, I18n, Tenant, UserKey, union_id};
use feishu::ids::DepartmentIdType;

type AppState = Arc<EmulatorState>;

/// Routes to mount next to the Open API (see `server::router_with`).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_emulator", get(summary))
        .route("/_emulator/apps", get(list_apps).post(create_app))
        .route("/_emulator/apps/{app_id}", get(get_app).patch(update_app))
        .route("/_emulator/apps/{app_id}/scope", put(set_scope))
        .route("/_emulator/apps/{app_id}/verify-url", post(verify_url))
        .route(
            "/_emulator/apps/{app_id}/revoke-tokens",
            post(revoke_tokens),
        )
        .route(
            "/_emulator/apps/{app_id}/expire-tokens",
            post(expire_tokens),
        )
        .route("/_emulator/users", get(list_users).post(hire))
        .route("/_emulator/users/{id}", get(get_user).patch(update_user))
        .route("/_emulator/users/{id}/freeze", post(freeze))
        .route("/_emulator/users/{id}/unfreeze", post(unfreeze))
        .route("/_emulator/users/{id}/resign", post(resign))
        .route("/_emulator/users/{id}/departments", put(move_user))
        .route("/_emulator/users/{id}/leader", put(set_user_leader))
        .route("/_emulator/departments", post(create_department))
        .route(
            "/_emulator/departments/{id}",
            get(get_department)
                .patch(update_department)
                .delete(delete_department),
        )
        .route("/_emulator/groups", post(create_group))
        .route(
            "/_emulator/groups/{id}",
            get(get_group).patch(update_group).delete(delete_group),
        )
        .route(
            "/_emulator/groups/{id}/members",
            post(add_group_members).delete(remove_group_members),
        )
        .route("/_emulator/mutations/random", post(random_mutations))
        .route("/_emulator/events", get(emitted_events))
        .route("/_emulator/push", get(push_status).put(set_push_config))
        .route("/_emulator/push/attempts", get(push_attempts))
        .route(
            "/_emulator/long-connection",
            get(long_connection_status).put(set_long_connection_config),
        )
        .route(
            "/_emulator/long-connection/received",
            get(long_connection_received),
        )
        .route(
            "/_emulator/apps/{app_id}/long-connection/close",
            post(close_long_connections),
        )
        .route(
            "/_emulator/behaviour",
            get(get_behaviour).put(set_behaviour),
        )
        .route("/_emulator/faults", get(get_faults).put(set_faults))
        .route(
            "/_emulator/rate-limit",
            get(get_rate_limit).put(set_rate_limit),
        )
        .route("/_emulator/clock/advance", post(advance_clock))
        .route("/_emulator/stats", get(request_stats))
}

/// An admin error: HTTP status and a message that says what was wrong.
#[derive(Debug)]
pub struct AdminError(StatusCode, String);

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<MutationError> for AdminError {
    fn from(e: MutationError) -> Self {
        let status = match e {
            MutationError::UnknownUser(..)
            | MutationError::UnknownDepartment(..)
            | MutationError::UnknownGroup(..)
            | MutationError::UnknownApp(..) => StatusCode::NOT_FOUND,
            _ => StatusCode::CONFLICT,
        };
        Self(status, e.to_string())
    }
}

fn not_found(what: &str, id: &str) -> AdminError {
    AdminError(
        StatusCode::NOT_FOUND,
        format!("no {what} {id:?} in the tenant"),
    )
}

fn bad_request(msg: impl Into<String>) -> AdminError {
    AdminError(StatusCode::BAD_REQUEST, msg.into())
}

type AdminResult = Result<Response, AdminError>;

/// Finds a user by any id: an app's open_id, union_id, user_id, or the internal key.
pub fn find_user(tenant: &Tenant, id: &str) -> Option<UserKey> {
    tenant.find_user_by_any_id(id).or_else(|| {
        id.parse::<UserKey>()
            .ok()
            .filter(|k| tenant.users.contains_key(k))
    })
}

/// Finds a live department by `od-` id or custom id; `"0"` is the root.
pub fn find_department(tenant: &Tenant, id: &str) -> Option<String> {
    [
        DepartmentIdType::OpenDepartmentId,
        DepartmentIdType::DepartmentId,
    ]
    .into_iter()
    .find_map(|t| tenant.resolve_department(id, t))
    .filter(|od| od == "0" || tenant.departments.contains_key(od))
}

fn user_key(tenant: &Tenant, id: &str) -> Result<UserKey, AdminError> {
    find_user(tenant, id).ok_or_else(|| not_found("user", id))
}

fn department(tenant: &Tenant, id: &str) -> Result<String, AdminError> {
    find_department(tenant, id).ok_or_else(|| not_found("department", id))
}

fn departments(tenant: &Tenant, ids: &[String]) -> Result<Vec<String>, AdminError> {
    ids.iter().map(|d| department(tenant, d)).collect()
}

fn users(tenant: &Tenant, ids: &[String]) -> Result<Vec<UserKey>, AdminError> {
    ids.iter().map(|u| user_key(tenant, u)).collect()
}

/// Applies a mutation and publishes its events; answers with the changes.
fn mutate(
    state: &EmulatorState,
    f: impl FnOnce(&mut Tenant) -> Result<Vec<Change>, AdminError>,
) -> AdminResult {
    let (changes, events) = state.mutate_with(f)?;
    Ok(Json(json!({
        "changes": changes.iter().map(describe_change).collect::<Vec<_>>(),
        "events": events,
    }))
    .into_response())
}

/// A short JSON description of a change, for the admin's answer.
pub fn describe_change(change: &Change) -> Value {
    let id = match change {
        Change::UserCreated { key } | Change::UserUpdated { key, .. } => key.to_string(),
        Change::UserDeleted { before } => before.key.to_string(),
        Change::DepartmentCreated { id }
        | Change::DepartmentUpdated { id, .. }
        | Change::GroupCreated { id }
        | Change::GroupUpdated { id, .. }
        | Change::GroupMembersChanged { id } => id.clone(),
        Change::DepartmentDeleted { before } => before.open_department_id.clone(),
        Change::GroupDeleted { before } => before.id.clone(),
        Change::ScopeChanged { app_id, .. } => app_id.clone(),
    };
    json!({ "kind": change.kind(), "id": id })
}

// ---- summary, apps -------------------------------------------------------------------

async fn summary(State(state): State<AppState>) -> Json<Value> {
    let hub = &state.events;
    state.with_tenant(|t| {
        Json(json!({
            "tenant_key": t.tenant_key,
            "tenant_name": state.tenant_name(),
            "users": t.users.len(),
            "active_users": t.active_user_count(),
            "departments": t.departments.len(),
            "deleted_departments": t.deleted_departments.len(),
            "groups": t.groups.len(),
            "apps": t.apps.keys().collect::<Vec<_>>(),
            "events_emitted": hub.emitted_total(),
        }))
    })
}

/// An app as the admin API shows it (the secret too: this is the emulator's own console).
fn app_json(app: &AppRecord) -> Value {
    json!({
        "app_id": app.app_id,
        "app_secret": app.app_secret,
        "verification_token": app.verification_token,
        "encrypt_key": app.encrypt_key,
        "request_url": app.request_url,
        "scope": app.scope,
        "permissions": app.permissions,
        "events_v2": app.events_v2,
        "events_v1": app.events_v1,
        "user_group_events": app.user_group_events,
        "event_mode": app.event_mode,
    })
}

async fn list_apps(State(state): State<AppState>) -> Json<Value> {
    state.with_tenant(|t| Json(Value::Array(t.apps.values().map(app_json).collect())))
}

async fn get_app(State(state): State<AppState>, Path(app_id): Path<String>) -> AdminResult {
    state.with_tenant(|t| {
        t.apps
            .get(&app_id)
            .map(|a| Json(app_json(a)).into_response())
            .ok_or_else(|| not_found("app", &app_id))
    })
}

#[derive(Debug, Deserialize)]
struct AppBody {
    app_id: String,
    app_secret: String,
    #[serde(flatten)]
    settings: AppSettings,
}

/// App settings; absent fields stay as they are. `encrypt_key`/`request_url` set to `""`
/// clear them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AppSettings {
    app_secret: Option<String>,
    verification_token: Option<String>,
    encrypt_key: Option<String>,
    request_url: Option<String>,
    permissions: Option<Vec<String>>,
    events_v2: Option<bool>,
    events_v1: Option<bool>,
    user_group_events: Option<bool>,
    event_mode: Option<crate::tenant::EventMode>,
}

impl AppSettings {
    fn apply(self, app: &mut AppRecord) {
        let non_empty = |s: String| (!s.is_empty()).then_some(s);
        if let Some(v) = self.app_secret {
            app.app_secret = v;
        }
        if let Some(v) = self.verification_token {
            app.verification_token = v;
        }
        if let Some(v) = self.encrypt_key {
            app.encrypt_key = non_empty(v);
        }
        if let Some(v) = self.request_url {
            app.request_url = non_empty(v);
        }
        if let Some(v) = self.permissions {
            app.permissions = v.into_iter().collect();
        }
        if let Some(v) = self.events_v2 {
            app.events_v2 = v;
        }
        if let Some(v) = self.events_v1 {
            app.events_v1 = v;
        }
        if let Some(v) = self.user_group_events {
            app.user_group_events = v;
        }
        if let Some(v) = self.event_mode {
            app.event_mode = v;
        }
    }
}

async fn create_app(State(state): State<AppState>, Json(body): Json<AppBody>) -> AdminResult {
    if !body.app_id.starts_with("cli_") {
        return Err(bad_request("app_id must look like Feishu's: cli_…"));
    }
    if body.app_secret.is_empty() {
        return Err(bad_request("app_secret must not be empty"));
    }
    state.with_tenant_mut(|t| {
        if t.apps.contains_key(&body.app_id) {
            return Err(AdminError(
                StatusCode::CONFLICT,
                format!("app {} exists", body.app_id),
            ));
        }
        let mut app = AppRecord::new(body.app_id.clone(), body.app_secret.clone());
        body.settings.apply(&mut app);
        let out = app_json(&app);
        t.apps.insert(app.app_id.clone(), app);
        t.invalidate();
        Ok((StatusCode::CREATED, Json(out)).into_response())
    })
}

async fn update_app(
    State(state): State<AppState>,
    Path(app_id): Path<String>,
    Json(settings): Json<AppSettings>,
) -> AdminResult {
    let url_changed = settings.request_url.as_ref().is_some_and(|u| !u.is_empty());
    // The Feishu console saves the long-connection mode only while a client of the app is
    // connected (docs/long-connection.md).
    if settings.event_mode == Some(crate::tenant::EventMode::LongConnection)
        && state.long_connections.connected(&app_id) == 0
    {
        return Err(bad_request(
            "应用未建立长连接: the app has not established a long connection; start a client \
             with the app's credentials, then save the mode",
        ));
    }
    let (mut out, target) = state.with_tenant_mut(|t| {
        let app = t
            .apps
            .get_mut(&app_id)
            .ok_or_else(|| not_found("app", &app_id))?;
        settings.apply(app);
        let out = app_json(app);
        let target = push_target(app);
        t.invalidate();
        Ok::<_, AdminError>((out, target))
    })?;
    // Saving a request URL in the Feishu console runs the URL check; report its outcome (the
    // URL is kept either way, so a receiver that starts later still gets the re-pushes).
    // An app in long-connection mode has no URL check to run.
    let target = target.filter(|t| !t.long_connection);
    if let (true, Some(target), Some(obj)) = (url_changed, target, out.as_object_mut()) {
        let check = match state.events.pusher().verify_url(&target).await {
            Ok(()) => json!({ "passed": true }),
            Err(e) => json!({ "passed": false, "error": e.to_string() }),
        };
        obj.insert("url_check".into(), check);
    }
    Ok(Json(out).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScopeBody {
    #[serde(default)]
    all: bool,
    #[serde(default)]
    departments: Vec<String>,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
}

async fn set_scope(
    State(state): State<AppState>,
    Path(app_id): Path<String>,
    Json(body): Json<ScopeBody>,
) -> AdminResult {
    mutate(&state, |t| {
        let scope = if body.all {
            ContactScope::All
        } else {
            ContactScope::Partial {
                departments: departments(t, &body.departments)?,
                users: users(t, &body.users)?,
                groups: body.groups.clone(),
            }
        };
        Ok(t.set_app_scope(&app_id, scope)?)
    })
}

async fn verify_url(State(state): State<AppState>, Path(app_id): Path<String>) -> AdminResult {
    let target = state.with_tenant(|t| {
        let app = t
            .apps
            .get(&app_id)
            .ok_or_else(|| not_found("app", &app_id))?;
        push_target(app).ok_or_else(|| bad_request(format!("app {app_id} has no request_url")))
    })?;
    match state.events.pusher().verify_url(&target).await {
        Ok(()) => Ok(Json(json!({ "verified": true, "url": target.url })).into_response()),
        Err(e) => Err(AdminError(StatusCode::BAD_GATEWAY, e.to_string())),
    }
}

async fn revoke_tokens(State(state): State<AppState>, Path(app_id): Path<String>) -> Json<Value> {
    Json(json!({ "revoked": state.revoke_app_tokens(&app_id) }))
}

async fn expire_tokens(State(state): State<AppState>, Path(app_id): Path<String>) -> Json<Value> {
    state.expire_app_tokens(&app_id);
    Json(json!({ "expired": true }))
}

// ---- users -----------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct ListQuery {
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
}

/// A user as the admin API shows it: every id and field, as the tenant holds it.
fn user_json(t: &Tenant, key: UserKey) -> Option<Value> {
    let u = t.users.get(&key)?;
    let open_ids: serde_json::Map<String, Value> = t
        .apps
        .values()
        .map(|a| (a.app_id.clone(), Value::from(a.open_id(key))))
        .collect();
    let mut v = serde_json::to_value(u).ok()?;
    if let Some(obj) = v.as_object_mut() {
        obj.insert("union_id".into(), Value::from(union_id(key)));
        obj.insert("open_ids".into(), Value::Object(open_ids));
    }
    Some(v)
}

async fn list_users(State(state): State<AppState>, Query(q): Query<ListQuery>) -> Json<Value> {
    state.with_tenant(|t| {
        let limit = q.limit.unwrap_or(100).min(1000);
        let items: Vec<Value> = t
            .users
            .keys()
            .skip(q.offset)
            .take(limit)
            .filter_map(|k| user_json(t, *k))
            .collect();
        Json(json!({ "total": t.users.len(), "items": items }))
    })
}

async fn get_user(State(state): State<AppState>, Path(id): Path<String>) -> AdminResult {
    state.with_tenant(|t| {
        let key = user_key(t, &id)?;
        user_json(t, key)
            .map(|v| Json(v).into_response())
            .ok_or_else(|| not_found("user", &id))
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HireBody {
    name: Option<String>,
    en_name: Option<String>,
    email: Option<String>,
    mobile: Option<String>,
    user_id: Option<String>,
    employee_no: Option<String>,
    gender: Option<i64>,
    job_title: Option<String>,
    city: Option<String>,
    country: Option<String>,
    employee_type: Option<i64>,
    join_time: Option<i64>,
    /// Department ids (od- or custom); the first is primary; empty: under the root.
    #[serde(default)]
    departments: Vec<String>,
    leader: Option<String>,
}

async fn hire(State(state): State<AppState>, Json(b): Json<HireBody>) -> AdminResult {
    mutate(&state, |t| {
        let new = NewUser {
            departments: departments(t, &b.departments)?,
            leader: b.leader.as_deref().map(|l| user_key(t, l)).transpose()?,
            name: b.name,
            en_name: b.en_name,
            email: b.email,
            mobile: b.mobile,
            user_id: b.user_id,
            employee_no: b.employee_no,
            gender: b.gender,
            job_title: b.job_title,
            city: b.city,
            country: b.country,
            employee_type: b.employee_type,
            join_time: b.join_time,
        };
        Ok(t.hire(new)?)
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    name: Option<String>,
    en_name: Option<String>,
    nickname: Option<String>,
    email: Option<String>,
    enterprise_email: Option<String>,
    mobile: Option<String>,
    mobile_visible: Option<bool>,
    gender: Option<i64>,
    city: Option<String>,
    country: Option<String>,
    work_station: Option<String>,
    job_title: Option<String>,
    employee_no: Option<String>,
    employee_type: Option<i64>,
    user_id: Option<String>,
}

async fn update_user(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(b): Json<PatchBody>,
) -> AdminResult {
    mutate(&state, |t| {
        let key = user_key(t, &id)?;
        let patch = UserPatch {
            name: b.name,
            en_name: b.en_name,
            nickname: b.nickname,
            email: b.email,
            enterprise_email: b.enterprise_email,
            mobile: b.mobile,
            mobile_visible: b.mobile_visible,
            gender: b.gender,
            city: b.city,
            country: b.country,
            work_station: b.work_station,
            job_title: b.job_title,
            employee_no: b.employee_no,
            employee_type: b.employee_type,
            user_id: b.user_id,
            custom_attrs: None,
        };
        Ok(t.update_user(key, &patch)?)
    })
}

async fn freeze(State(state): State<AppState>, Path(id): Path<String>) -> AdminResult {
    mutate(&state, |t| Ok(t.freeze(user_key(t, &id)?)?))
}

async fn unfreeze(State(state): State<AppState>, Path(id): Path<String>) -> AdminResult {
    mutate(&state, |t| Ok(t.unfreeze(user_key(t, &id)?)?))
}

async fn resign(State(state): State<AppState>, Path(id): Path<String>) -> AdminResult {
    mutate(&state, |t| Ok(t.resign(user_key(t, &id)?)?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DepartmentsBody {
    departments: Vec<String>,
}

async fn move_user(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(b): Json<DepartmentsBody>,
) -> AdminResult {
    mutate(&state, |t| {
        let key = user_key(t, &id)?;
        let ds = departments(t, &b.departments)?;
        Ok(t.move_user(key, &ds)?)
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LeaderBody {
    leader: Option<String>,
}

async fn set_user_leader(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(b): Json<LeaderBody>,
) -> AdminResult {
    mutate(&state, |t| {
        let key = user_key(t, &id)?;
        let leader = b.leader.as_deref().map(|l| user_key(t, l)).transpose()?;
        Ok(t.set_user_leader(key, leader)?)
    })
}

// ---- departments -----------------------------------------------------------------------

async fn get_department(State(state): State<AppState>, Path(id): Path<String>) -> AdminResult {
    state.with_tenant(|t| {
        let od = department(t, &id)?;
        let d = t
            .departments
            .get(&od)
            .ok_or_else(|| not_found("department", &id))?;
        let mut v = serde_json::to_value(d).map_err(|e| bad_request(e.to_string()))?;
        if let Some(obj) = v.as_object_mut() {
            obj.insert("children".into(), json!(t.children(&od)));
            obj.insert("members".into(), json!(t.members(&od)));
        }
        Ok(Json(v).into_response())
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateDepartmentBody {
    name: String,
    en_name: Option<String>,
    /// Parent id (od- or custom); `"0"` (default) for first level.
    #[serde(default = "root")]
    parent: String,
    department_id: Option<String>,
    order: Option<i64>,
    #[serde(default)]
    create_chat: bool,
}

fn root() -> String {
    "0".into()
}

async fn create_department(
    State(state): State<AppState>,
    Json(b): Json<CreateDepartmentBody>,
) -> AdminResult {
    mutate(&state, |t| {
        let parent = department(t, &b.parent)?;
        Ok(t.create_department(NewDepartment {
            i18n_name: I18n {
                zh_cn: Some(b.name.clone()),
                en_us: b.en_name.clone(),
                ja_jp: None,
            },
            name: b.name,
            parent,
            department_id: b.department_id,
            order: b.order,
            create_chat: b.create_chat,
        })?)
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateDepartmentBody {
    name: Option<String>,
    en_name: Option<String>,
    parent: Option<String>,
    order: Option<i64>,
    department_id: Option<String>,
    /// `[[leaderType, user id], …]`: 1 main, 2 deputy.
    leaders: Option<Vec<(i64, String)>>,
}

async fn update_department(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(b): Json<UpdateDepartmentBody>,
) -> AdminResult {
    mutate(&state, |t| {
        let od = department(t, &id)?;
        let mut changes = Vec::new();
        if b.name.is_some() || b.en_name.is_some() {
            let current = t
                .departments
                .get(&od)
                .ok_or_else(|| not_found("department", &id))?;
            let name = b.name.clone().unwrap_or_else(|| current.name.clone());
            let i18n = I18n {
                zh_cn: Some(name.clone()),
                en_us: b
                    .en_name
                    .clone()
                    .or_else(|| current.i18n_name.en_us.clone()),
                ja_jp: current.i18n_name.ja_jp.clone(),
            };
            changes.extend(t.rename_department(&od, &name, i18n)?);
        }
        if let Some(parent) = &b.parent {
            let parent = department(t, parent)?;
            changes.extend(t.move_department(&od, &parent)?);
        }
        if let Some(order) = b.order {
            changes.extend(t.reorder_department(&od, order)?);
        }
        if let Some(custom) = &b.department_id {
            changes.extend(t.set_department_custom_id(&od, custom)?);
        }
        if let Some(leaders) = &b.leaders {
            let leaders = leaders
                .iter()
                .map(|(kind, u)| Ok((*kind, user_key(t, u)?)))
                .collect::<Result<Vec<_>, AdminError>>()?;
            changes.extend(t.set_department_leaders(&od, &leaders)?);
        }
        Ok(changes)
    })
}

async fn delete_department(State(state): State<AppState>, Path(id): Path<String>) -> AdminResult {
    mutate(&state, |t| {
        let od = department(t, &id)?;
        Ok(t.delete_department(&od)?)
    })
}

// ---- groups ----------------------------------------------------------------------------

async fn get_group(State(state): State<AppState>, Path(id): Path<String>) -> AdminResult {
    state.with_tenant(|t| {
        let g = t.groups.get(&id).ok_or_else(|| not_found("group", &id))?;
        Ok(Json(serde_json::to_value(g).map_err(|e| bad_request(e.to_string()))?).into_response())
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateGroupBody {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    dynamic: bool,
    group_id: Option<String>,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    departments: Vec<String>,
}

async fn create_group(
    State(state): State<AppState>,
    Json(b): Json<CreateGroupBody>,
) -> AdminResult {
    mutate(&state, |t| {
        Ok(t.create_group(NewGroup {
            users: users(t, &b.users)?,
            departments: departments(t, &b.departments)?,
            name: b.name,
            description: b.description,
            kind: if b.dynamic {
                GroupKind::Dynamic
            } else {
                GroupKind::Normal
            },
            group_id: b.group_id,
        })?)
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateGroupBody {
    name: Option<String>,
    description: Option<String>,
}

async fn update_group(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(b): Json<UpdateGroupBody>,
) -> AdminResult {
    mutate(&state, |t| {
        Ok(t.update_group(&id, b.name.as_deref(), b.description.as_deref())?)
    })
}

async fn delete_group(State(state): State<AppState>, Path(id): Path<String>) -> AdminResult {
    mutate(&state, |t| Ok(t.delete_group(&id)?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MembersBody {
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    departments: Vec<String>,
}

async fn add_group_members(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(b): Json<MembersBody>,
) -> AdminResult {
    mutate(&state, |t| {
        let us = users(t, &b.users)?;
        let ds = departments(t, &b.departments)?;
        Ok(t.add_group_members(&id, &us, &ds)?)
    })
}

async fn remove_group_members(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(b): Json<MembersBody>,
) -> AdminResult {
    mutate(&state, |t| {
        let us = users(t, &b.users)?;
        let ds = departments(t, &b.departments)?;
        Ok(t.remove_group_members(&id, &us, &ds)?)
    })
}

// ---- random mutations, events, push ------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RandomBody {
    count: usize,
    #[serde(default)]
    seed: u64,
    /// `full` (default) or `ordinary` (no contact-scope changes).
    #[serde(default)]
    profile: MutationProfile,
}

async fn random_mutations(State(state): State<AppState>, Json(b): Json<RandomBody>) -> AdminResult {
    if b.count > 100_000 {
        return Err(bad_request("count must be at most 100000"));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(b.seed);
    let mut changes = 0usize;
    let mut events = 0usize;
    for _ in 0..b.count {
        // One mutation at a time: events are rendered against the state right after it.
        let (c, e) = state
            .mutate_with(|t| Ok::<_, AdminError>(t.random_mutation_of(b.profile, &mut rng)))?;
        changes += c.len();
        events += e;
    }
    Ok(Json(json!({ "mutations": b.count, "changes": changes, "events": events })).into_response())
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    app_id: Option<String>,
    limit: Option<usize>,
}

async fn emitted_events(
    State(state): State<AppState>,
    Query(q): Query<EventsQuery>,
) -> Json<Value> {
    let limit = q.limit.unwrap_or(100).min(10_000);
    let events: Vec<Value> = state
        .events
        .emitted()
        .into_iter()
        .rev()
        .filter(|e| q.app_id.as_ref().is_none_or(|a| &e.app_id == a))
        .take(limit)
        .map(|e| {
            json!({
                "event_id": e.event_id,
                "event_type": e.event_type,
                "app_id": e.app_id,
                "create_time_ms": e.create_time_ms,
                "payload": serde_json::from_str::<Value>(&e.plaintext).unwrap_or(Value::Null),
            })
        })
        .collect();
    Json(json!({ "total": state.events.emitted_total(), "items": events }))
}

async fn push_status(State(state): State<AppState>) -> Json<Value> {
    let pusher = state.events.pusher();
    Json(json!({ "config": pusher.config(), "stats": pusher.stats() }))
}

async fn set_push_config(
    State(state): State<AppState>,
    Json(config): Json<PushConfig>,
) -> Json<Value> {
    let pusher = state.events.pusher();
    pusher.set_config(config);
    Json(json!({ "config": pusher.config() }))
}

async fn long_connection_status(State(state): State<AppState>) -> Json<Value> {
    let gateway = &state.long_connections;
    let connected: serde_json::Map<String, Value> = state.with_tenant(|t| {
        t.apps
            .keys()
            .map(|app| (app.clone(), json!(gateway.connected(app))))
            .collect()
    });
    Json(json!({ "config": gateway.config(), "connected": connected }))
}

async fn set_long_connection_config(
    State(state): State<AppState>,
    Json(config): Json<crate::long_connection::LongConnectionConfig>,
) -> Json<Value> {
    state.long_connections.set_config(config);
    Json(json!({ "config": state.long_connections.config() }))
}

async fn long_connection_received(State(state): State<AppState>) -> Json<Value> {
    Json(json!(state.long_connections.received()))
}

async fn close_long_connections(
    State(state): State<AppState>,
    Path(app_id): Path<String>,
) -> Json<Value> {
    Json(json!({ "closed": state.long_connections.close_all(&app_id) }))
}

async fn push_attempts(State(state): State<AppState>) -> Json<Value> {
    Json(json!(state.events.pusher().attempts()))
}

// ---- switches ------------------------------------------------------------------------------

async fn get_behaviour(State(state): State<AppState>) -> Json<Behaviour> {
    Json(state.behaviour())
}

async fn set_behaviour(State(state): State<AppState>, Json(b): Json<Behaviour>) -> Json<Behaviour> {
    state.set_behaviour(b);
    Json(state.behaviour())
}

async fn get_faults(State(state): State<AppState>) -> Json<FaultConfig> {
    Json(state.faults.config())
}

async fn set_faults(
    State(state): State<AppState>,
    Json(f): Json<FaultConfig>,
) -> Json<FaultConfig> {
    state.faults.set_config(f);
    Json(state.faults.config())
}

async fn get_rate_limit(State(state): State<AppState>) -> Json<RateLimitConfig> {
    Json(state.rate_limiter.config())
}

async fn set_rate_limit(
    State(state): State<AppState>,
    Json(c): Json<RateLimitConfig>,
) -> Json<RateLimitConfig> {
    state.rate_limiter.set_config(c);
    Json(state.rate_limiter.config())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdvanceBody {
    seconds: u64,
}

async fn advance_clock(State(state): State<AppState>, Json(b): Json<AdvanceBody>) -> Json<Value> {
    state.advance_clock(Duration::from_secs(b.seconds));
    Json(json!({ "now_ms": state.clock.now_ms() }))
}

async fn request_stats(State(state): State<AppState>) -> Json<Value> {
    Json(json!(state.stats.snapshot()))
}
