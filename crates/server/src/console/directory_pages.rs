//! The mirrored directory: the org tree, departments, users and groups of a pool.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use directory::admin::{Cursor, page};
use directory::ids::{DepartmentId, GroupId, PoolId, UserId};
use directory::model::{
    Department, ExternalRef, GroupKind, GroupMember, LeaderKind, User, UserPool, UserStatus,
};
use directory::store::{ChangeSource, DepartmentNode, MemberScope, UserQuery};
use serde::Deserialize;

use super::ldap::{AppPasswords, app_passwords};
use super::pages::DoneQuery;
use super::session::Session;
use super::util::{
    ConsoleError, ConsoleResult, Ctx, Pager, fmt_ms, fmt_opt_ms, ok, opt, with_query,
};
use crate::AppState;

async fn pool_of(state: &AppState, pool: &str) -> ConsoleResult<UserPool> {
    Ok(state.admin.pool(&PoolId::from(pool)).await?)
}

fn dept_name(d: &Department) -> String {
    d.name
        .clone()
        .or_else(|| {
            d.i18n_name
                .as_ref()
                .and_then(|n| n.en_us.clone().or(n.zh_cn.clone()))
        })
        .unwrap_or_else(|| format!("(unnamed {})", d.id))
}

fn user_name(u: &User) -> String {
    u.profile
        .name
        .clone()
        .or_else(|| u.profile.en_name.clone())
        .unwrap_or_else(|| format!("(unnamed {})", u.id))
}

// ---- the org tree ----

/// One department of a tree level; its children are fetched when it is opened.
pub struct TreeNode {
    pub id: String,
    pub name: String,
    pub direct: u64,
    pub total: u64,
    pub children: u64,
}

fn tree_nodes(nodes: &[DepartmentNode]) -> Vec<TreeNode> {
    nodes
        .iter()
        .map(|n| TreeNode {
            id: n.department.id.to_string(),
            name: dept_name(&n.department),
            direct: n.member_count,
            total: n.total_member_count,
            children: n.child_count,
        })
        .collect()
}

/// Departments one tree level shows before a "more" link.
const TREE_LEVEL: u64 = 200;

#[derive(Template)]
#[template(path = "tree.html")]
pub struct TreePage {
    pub ctx: Ctx,
    pub pool: String,
    pub nodes: Vec<TreeNode>,
    pub more: Option<String>,
    pub departments: u64,
}

/// The org tree: the roots, each level loaded when opened (`tree_level`).
pub async fn tree(
    State(state): State<AppState>,
    session: Session,
    Path(pool): Path<String>,
) -> ConsoleResult {
    let pool = pool_of(&state, &pool).await?;
    let level = state
        .admin
        .department_children(
            &pool.id,
            None,
            &Cursor {
                after: None,
                limit: Some(TREE_LEVEL),
            },
        )
        .await?;
    let departments = state.admin.count_departments(&pool.id).await?;
    Ok(ok(&TreePage {
        ctx: Ctx::new(&session, "tree").pool(&pool),
        pool: pool.id.to_string(),
        nodes: tree_nodes(&level.items),
        more: level.next.map(|n| {
            with_query(
                &format!("/console/pools/{}/tree/level", pool.id),
                &[("after", &n)],
            )
        }),
        departments,
    }))
}

#[derive(Template)]
#[template(path = "tree_level.html")]
pub struct TreeLevel {
    pub pool: String,
    pub nodes: Vec<TreeNode>,
    pub more: Option<String>,
}

#[derive(Deserialize)]
pub struct LevelQuery {
    parent: Option<String>,
    after: Option<String>,
}

/// One level of the tree as list items (fetched by the tree page when a department opens).
pub async fn tree_level(
    State(state): State<AppState>,
    _session: Session,
    Path(pool): Path<String>,
    Query(q): Query<LevelQuery>,
) -> ConsoleResult {
    let pool = pool_of(&state, &pool).await?;
    let parent = opt(&q.parent).map(DepartmentId::from);
    let level = state
        .admin
        .department_children(
            &pool.id,
            parent.as_ref(),
            &Cursor {
                after: q.after.clone(),
                limit: Some(TREE_LEVEL),
            },
        )
        .await?;
    let parent_param = parent.map(|p| p.to_string()).unwrap_or_default();
    Ok(ok(&TreeLevel {
        pool: pool.id.to_string(),
        nodes: tree_nodes(&level.items),
        more: level.next.map(|n| {
            with_query(
                &format!("/console/pools/{}/tree/level", pool.id),
                &[("parent", &parent_param), ("after", &n)],
            )
        }),
    }))
}

// ---- a department ----

pub struct Crumb {
    pub id: String,
    pub name: String,
}

pub struct UserRow {
    pub id: String,
    pub name: String,
    pub en_name: String,
    pub email: String,
    pub mobile: String,
    pub employee_no: String,
    pub job_title: String,
    pub status: &'static str,
    pub deleted: bool,
    pub departments: Vec<Crumb>,
}

fn user_row(u: &User, names: &HashMap<String, String>) -> UserRow {
    let p = &u.profile;
    UserRow {
        id: u.id.to_string(),
        name: user_name(u),
        en_name: p.en_name.clone().unwrap_or_default(),
        email: p
            .email
            .clone()
            .or_else(|| p.enterprise_email.clone())
            .unwrap_or_default(),
        mobile: p.mobile.clone().unwrap_or_default(),
        employee_no: p.employee_no.clone().unwrap_or_default(),
        job_title: p.job_title.clone().unwrap_or_default(),
        status: u.status.as_str(),
        deleted: u.deleted_at.is_some(),
        departments: u
            .departments
            .iter()
            .map(|m| Crumb {
                id: m.department_id.to_string(),
                name: names
                    .get(m.department_id.as_str())
                    .cloned()
                    .unwrap_or_else(|| m.department_id.to_string()),
            })
            .collect(),
    }
}

/// The names of the departments the users of a page are in (one bulk read).
async fn names_for(
    state: &AppState,
    pool: &PoolId,
    users: &[User],
) -> ConsoleResult<HashMap<String, String>> {
    let ids: Vec<DepartmentId> = users
        .iter()
        .flat_map(|u| u.departments.iter().map(|m| m.department_id.clone()))
        .collect();
    Ok(state
        .admin
        .departments(pool, &ids)
        .await?
        .iter()
        .map(|d| (d.id.to_string(), dept_name(d)))
        .collect())
}

pub struct Field {
    pub label: &'static str,
    pub value: String,
    pub link: Option<String>,
}

fn field(label: &'static str, value: Option<String>) -> Field {
    Field {
        label,
        value: value.unwrap_or_default(),
        link: None,
    }
}

/// One connection's Feishu ids of a department or group.
pub struct FeishuIdRow {
    pub connection_id: String,
    pub connection: String,
    /// `open_department_id`, or the group id.
    pub external_id: String,
    /// The tenant's `department_id`, or the custom group id.
    pub custom_id: String,
}

/// The pool's connections by id, to name them in the Feishu id tables.
async fn connection_names(
    state: &AppState,
    pool: &PoolId,
) -> ConsoleResult<HashMap<String, String>> {
    Ok(state
        .admin
        .list_connections(Some(pool))
        .await?
        .into_iter()
        .map(|c| (c.id.to_string(), c.identifier))
        .collect())
}

fn feishu_id_rows(refs: &[ExternalRef], names: &HashMap<String, String>) -> Vec<FeishuIdRow> {
    refs.iter()
        .map(|r| FeishuIdRow {
            connection_id: r.connection_id.to_string(),
            connection: names
                .get(r.connection_id.as_str())
                .cloned()
                .unwrap_or_else(|| r.connection_id.to_string()),
            external_id: r.external_id.clone(),
            custom_id: r.custom_id.clone().unwrap_or_default(),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "department.html")]
pub struct DepartmentPage {
    pub ctx: Ctx,
    pub pool: String,
    pub id: String,
    pub name: String,
    pub path: Vec<Crumb>,
    pub children: Vec<TreeNode>,
    pub more_children: bool,
    pub fields: Vec<Field>,
    pub external_ids: Vec<FeishuIdRow>,
    pub subtree: bool,
    pub members: Vec<UserRow>,
    pub pager: Pager,
}

#[derive(Deserialize)]
pub struct MembersQuery {
    after: Option<String>,
    scope: Option<String>,
}

pub async fn department(
    State(state): State<AppState>,
    session: Session,
    Path((pool, id)): Path<(String, String)>,
    Query(q): Query<MembersQuery>,
) -> ConsoleResult {
    let pool = pool_of(&state, &pool).await?;
    let id = DepartmentId::from(id);
    let view = state.admin.department(&pool.id, &id).await?;
    let d = &view.department;
    let subtree = opt(&q.scope) == Some("subtree");
    let members = state
        .admin
        .search_users(
            &pool.id,
            &UserQuery {
                department_id: Some(id.clone()),
                scope: if subtree {
                    MemberScope::Subtree
                } else {
                    MemberScope::Direct
                },
                ..UserQuery::default()
            },
            &Cursor {
                after: q.after.clone(),
                limit: Some(50),
            },
            false,
        )
        .await?;
    let children = state
        .admin
        .department_children(
            &pool.id,
            Some(&id),
            &Cursor {
                after: None,
                limit: Some(TREE_LEVEL),
            },
        )
        .await?;
    let names = names_for(&state, &pool.id, &members.items).await?;
    let base = format!("/console/pools/{}/departments/{id}", pool.id);
    let scope = if subtree { "subtree" } else { "" };
    let pager = Pager::cursor(
        members.items.len(),
        members
            .next
            .as_ref()
            .map(|n| with_query(&base, &[("scope", scope), ("after", n)])),
        q.after
            .as_ref()
            .map(|_| with_query(&base, &[("scope", scope)])),
    );
    let mut fields = vec![
        field("orgsync id", Some(d.id.to_string())),
        field("Name", d.name.clone()),
        field(
            "Name (English)",
            d.i18n_name.as_ref().and_then(|n| n.en_us.clone()),
        ),
        field(
            "Name (Chinese)",
            d.i18n_name.as_ref().and_then(|n| n.zh_cn.clone()),
        ),
        field("Members", Some(view.member_count.to_string())),
        field(
            "Members with sub-departments",
            Some(view.total_member_count.to_string()),
        ),
        field("Order", d.order.map(|o| o.to_string())),
        field("Group chat", d.chat_id.clone()),
        field("Version", Some(d.version.to_string())),
        field("Created", Some(fmt_ms(d.created_at))),
        field("Updated", Some(fmt_ms(d.updated_at))),
    ];
    if let Some(at) = d.deleted_at {
        fields.push(field("Deleted", Some(fmt_ms(at))));
    }
    for l in &d.leaders {
        let name = match state.admin.user(&pool.id, &l.user_id).await {
            Ok(u) => user_name(&u),
            Err(_) => l.user_id.to_string(),
        };
        fields.push(Field {
            label: match l.kind {
                LeaderKind::Main => "Leader",
                LeaderKind::Deputy => "Deputy leader",
            },
            value: name,
            link: Some(format!("/console/pools/{}/users/{}", pool.id, l.user_id)),
        });
    }
    Ok(ok(&DepartmentPage {
        ctx: Ctx::new(&session, "tree").pool(&pool),
        pool: pool.id.to_string(),
        id: id.to_string(),
        name: dept_name(d),
        path: view
            .path
            .iter()
            .map(|p| Crumb {
                id: p.id.to_string(),
                name: dept_name(p),
            })
            .collect(),
        children: tree_nodes(&children.items),
        more_children: children.next.is_some(),
        fields,
        external_ids: feishu_id_rows(
            &view.external_ids,
            &connection_names(&state, &pool.id).await?,
        ),
        subtree,
        members: members.items.iter().map(|u| user_row(u, &names)).collect(),
        pager,
    }))
}

// ---- users ----

#[derive(Template)]
#[template(path = "users.html")]
pub struct UsersPage {
    pub ctx: Ctx,
    pub pool: String,
    pub rows: Vec<UserRow>,
    pub q: String,
    pub status: String,
    /// The department filter (its id), and its name to show.
    pub department: String,
    pub department_name: String,
    pub subtree: bool,
    pub include_deleted: bool,
    pub statuses: Vec<&'static str>,
    pub pager: Pager,
}

#[derive(Deserialize)]
pub struct UsersQuery {
    q: Option<String>,
    status: Option<String>,
    department: Option<String>,
    scope: Option<String>,
    deleted: Option<String>,
    after: Option<String>,
}

pub async fn users(
    State(state): State<AppState>,
    session: Session,
    Path(pool): Path<String>,
    Query(q): Query<UsersQuery>,
) -> ConsoleResult {
    let pool = pool_of(&state, &pool).await?;
    let text = opt(&q.q).map(str::to_owned);
    let status = opt(&q.status).and_then(UserStatus::parse);
    let department = opt(&q.department).map(DepartmentId::from);
    let subtree = opt(&q.scope) == Some("subtree");
    // Department members are live users: the filter wins over "include deleted".
    let include_deleted = opt(&q.deleted).is_some() && department.is_none();
    let query = UserQuery {
        text: text.clone(),
        department_id: department.clone(),
        scope: if subtree {
            MemberScope::Subtree
        } else {
            MemberScope::Direct
        },
        status,
        include_deleted,
        ..UserQuery::default()
    };
    let found = state
        .admin
        .search_users(
            &pool.id,
            &query,
            &Cursor {
                after: q.after.clone(),
                limit: Some(50),
            },
            false,
        )
        .await?;
    let names = names_for(&state, &pool.id, &found.items).await?;
    let department_name = match &department {
        Some(d) => state
            .admin
            .departments(&pool.id, std::slice::from_ref(d))
            .await?
            .first()
            .map(dept_name)
            .unwrap_or_else(|| d.to_string()),
        None => String::new(),
    };
    let (text, status, department) = (
        text.unwrap_or_default(),
        status.map(UserStatus::as_str).unwrap_or("").to_owned(),
        department.map(|d| d.to_string()).unwrap_or_default(),
    );
    let base = format!("/console/pools/{}/users", pool.id);
    let deleted = if include_deleted { "1" } else { "" };
    let scope = if subtree { "subtree" } else { "" };
    let filters = [
        ("q", text.as_str()),
        ("status", status.as_str()),
        ("department", department.as_str()),
        ("scope", scope),
        ("deleted", deleted),
    ];
    let pager = Pager::cursor(
        found.items.len(),
        found.next.as_ref().map(|n| {
            let mut params = filters.to_vec();
            params.push(("after", n.as_str()));
            with_query(&base, &params)
        }),
        q.after.as_ref().map(|_| with_query(&base, &filters)),
    );
    Ok(ok(&UsersPage {
        ctx: Ctx::new(&session, "users").pool(&pool),
        pool: pool.id.to_string(),
        rows: found.items.iter().map(|u| user_row(u, &names)).collect(),
        q: text,
        status,
        department,
        department_name,
        subtree,
        include_deleted,
        statuses: ["active", "frozen", "unjoined", "exited", "resigned"].to_vec(),
        pager,
    }))
}

pub struct ExternalRow {
    pub connection_id: String,
    pub connection: String,
    pub open_id: String,
    pub union_id: String,
    pub user_id: String,
}

pub struct HistoryRow {
    pub seq: i64,
    pub at: String,
    pub kind: &'static str,
    pub version: i64,
    pub source: String,
    pub source_link: Option<String>,
}

pub struct MemberOf {
    pub id: String,
    pub name: String,
    pub primary: bool,
}

#[derive(Template)]
#[template(path = "user.html")]
pub struct UserPage {
    pub ctx: Ctx,
    pub pool: String,
    pub name: String,
    pub status: &'static str,
    pub enabled: bool,
    pub deleted: String,
    pub avatar: Option<String>,
    pub fields: Vec<Field>,
    pub custom_attrs: Option<String>,
    pub departments: Vec<MemberOf>,
    pub in_root: bool,
    pub groups: Vec<Crumb>,
    pub external_ids: Vec<ExternalRow>,
    pub history: Vec<HistoryRow>,
    pub user_id: String,
    /// Active and not deleted: may hold app passwords.
    pub active: bool,
    pub app: AppPasswords,
    /// What went wrong issuing an app password (shown in that section).
    pub error: Option<ConsoleError>,
}

fn yes_no(b: Option<bool>) -> Option<String> {
    b.map(|b| if b { "yes" } else { "no" }.to_owned())
}

pub async fn user(
    State(state): State<AppState>,
    session: Session,
    Path((pool, id)): Path<(String, String)>,
    Query(q): Query<DoneQuery>,
) -> ConsoleResult {
    let page = user_page(
        &state,
        &session,
        &PoolId::from(pool),
        &UserId::from(id),
        q.done.as_deref(),
    )
    .await?;
    Ok(ok(&page))
}

/// One user of a pool, with its app passwords (the forms of [`super::ldap`] render it too).
pub async fn user_page(
    state: &AppState,
    session: &Session,
    pool: &PoolId,
    id: &UserId,
    done: Option<&str>,
) -> ConsoleResult<UserPage> {
    let pool = state.admin.pool(pool).await?;
    let detail = state.admin.user_detail(&pool.id, id).await?;
    let u = &detail.user;
    let p = &u.profile;
    let connections = connection_names(state, &pool.id).await?;
    let app = app_passwords(state, &pool.id, &u.id).await?;
    let mut fields = vec![
        field("orgsync id", Some(u.id.to_string())),
        field("Name", p.name.clone()),
        field("English name", p.en_name.clone()),
        field("Nickname", p.nickname.clone()),
        field("E-mail", p.email.clone()),
        field("Enterprise e-mail", p.enterprise_email.clone()),
        field("Mobile", p.mobile.clone()),
        field("Employee no.", p.employee_no.clone()),
        field("Job title", p.job_title.clone()),
        field("Employee type", p.employee_type.map(|t| t.to_string())),
        field(
            "Gender",
            p.gender.map(|g| {
                match g {
                    1 => "male",
                    2 => "female",
                    3 => "other",
                    _ => "not given",
                }
                .to_owned()
            }),
        ),
        field("City", p.city.clone()),
        field("Country", p.country.clone()),
        field("Work station", p.work_station.clone()),
        field("Joined", p.join_time.map(|t| fmt_ms(t * 1000))),
        field("Tenant manager", yes_no(p.is_tenant_manager)),
    ];
    if let Some(m) = &detail.manager {
        fields.push(Field {
            label: "Manager",
            value: user_name(m),
            link: Some(format!("/console/pools/{}/users/{}", pool.id, m.id)),
        });
    }
    fields.extend([
        field("Version", Some(u.version.to_string())),
        field("Created", Some(fmt_ms(u.created_at))),
        field("Updated", Some(fmt_ms(u.updated_at))),
    ]);
    let primary: HashMap<&str, bool> = u
        .departments
        .iter()
        .map(|m| (m.department_id.as_str(), m.primary))
        .collect();
    Ok(UserPage {
        ctx: Ctx::new(session, "users").pool(&pool).notice(done),
        pool: pool.id.to_string(),
        user_id: u.id.to_string(),
        active: u.status == UserStatus::Active && u.deleted_at.is_none(),
        app,
        error: None,
        name: user_name(u),
        status: u.status.as_str(),
        enabled: u.status.is_enabled() && u.deleted_at.is_none(),
        deleted: fmt_opt_ms(u.deleted_at),
        avatar: p
            .avatar_url
            .clone()
            .filter(|a| a.starts_with("https://") || a.starts_with("http://")),
        custom_attrs: p
            .custom_attrs
            .as_ref()
            .and_then(|v| serde_json::to_string_pretty(v).ok()),
        fields,
        departments: detail
            .departments
            .iter()
            .map(|d| MemberOf {
                id: d.id.to_string(),
                name: dept_name(d),
                primary: primary.get(d.id.as_str()).copied().unwrap_or(false),
            })
            .collect(),
        in_root: u.in_root,
        groups: detail
            .groups
            .iter()
            .map(|g| Crumb {
                id: g.id.to_string(),
                name: g.name.clone().unwrap_or_else(|| g.id.to_string()),
            })
            .collect(),
        external_ids: detail
            .external_ids
            .iter()
            .map(|r| ExternalRow {
                connection_id: r.connection_id.to_string(),
                connection: connections
                    .get(r.connection_id.as_str())
                    .cloned()
                    .unwrap_or_else(|| r.connection_id.to_string()),
                open_id: r.external_id.clone(),
                union_id: r.union_id.clone().unwrap_or_default(),
                user_id: r.custom_id.clone().unwrap_or_default(),
            })
            .collect(),
        history: detail
            .history
            .iter()
            .map(|h| {
                let (source, source_link) = match &h.source {
                    ChangeSource::Job { job_id, .. } => (
                        format!("sync job {job_id}"),
                        Some(format!("/console/jobs/{job_id}")),
                    ),
                    ChangeSource::Event { event_id, .. } => (format!("event {event_id}"), None),
                    ChangeSource::Admin => ("admin".to_owned(), None),
                };
                HistoryRow {
                    seq: h.seq,
                    at: fmt_ms(h.at),
                    kind: h.kind.as_str(),
                    version: h.version,
                    source,
                    source_link,
                }
            })
            .collect(),
    })
}

// ---- groups ----

pub struct GroupRow {
    pub id: String,
    pub name: String,
    pub kind: &'static str,
    pub members: usize,
    pub description: String,
    pub deleted: bool,
}

fn kind_str(k: GroupKind) -> &'static str {
    match k {
        GroupKind::Normal => "normal",
        GroupKind::Dynamic => "dynamic",
    }
}

#[derive(Deserialize)]
pub struct AfterQuery {
    after: Option<String>,
}

#[derive(Deserialize)]
pub struct OffsetQuery {
    offset: Option<u64>,
}

#[derive(Template)]
#[template(path = "groups.html")]
pub struct GroupsPage {
    pub ctx: Ctx,
    pub pool: String,
    pub rows: Vec<GroupRow>,
    pub pager: Pager,
}

pub async fn groups(
    State(state): State<AppState>,
    session: Session,
    Path(pool): Path<String>,
    Query(q): Query<AfterQuery>,
) -> ConsoleResult {
    let pool = pool_of(&state, &pool).await?;
    let list = state
        .admin
        .list_groups(
            &pool.id,
            &Cursor {
                after: q.after.clone(),
                limit: Some(50),
            },
        )
        .await?;
    let base = format!("/console/pools/{}/groups", pool.id);
    let pager = Pager::cursor(
        list.items.len(),
        list.next
            .as_ref()
            .map(|n| with_query(&base, &[("after", n)])),
        q.after.as_ref().map(|_| base.clone()),
    );
    Ok(ok(&GroupsPage {
        ctx: Ctx::new(&session, "groups").pool(&pool),
        pool: pool.id.to_string(),
        rows: list
            .items
            .iter()
            .map(|e| GroupRow {
                id: e.group.id.to_string(),
                name: e
                    .group
                    .name
                    .clone()
                    .unwrap_or_else(|| e.group.id.to_string()),
                kind: kind_str(e.group.kind),
                members: usize::try_from(e.member_count).unwrap_or(usize::MAX),
                description: e.group.description.clone().unwrap_or_default(),
                deleted: e.group.deleted_at.is_some(),
            })
            .collect(),
        pager,
    }))
}

#[derive(Template)]
#[template(path = "group.html")]
pub struct GroupPage {
    pub ctx: Ctx,
    pub pool: String,
    pub name: String,
    pub fields: Vec<Field>,
    pub users: Vec<UserRow>,
    pub departments: Vec<Crumb>,
    pub unresolved: Vec<String>,
    pub external_ids: Vec<FeishuIdRow>,
    pub pager: Pager,
}

pub async fn group(
    State(state): State<AppState>,
    session: Session,
    Path((pool, id)): Path<(String, String)>,
    Query(q): Query<OffsetQuery>,
) -> ConsoleResult {
    let pool = pool_of(&state, &pool).await?;
    let detail = state.admin.group(&pool.id, &GroupId::from(id)).await?;
    let g = &detail.group;
    let req = page(q.offset, Some(50));
    let start = (req.offset as usize).min(detail.users.len());
    let end = (start + req.limit as usize).min(detail.users.len());
    let shown = &detail.users[start..end];
    let names = names_for(&state, &pool.id, shown).await?;
    let base = format!("/console/pools/{}/groups/{}", pool.id, g.id);
    let pager = Pager::new(
        req.offset,
        req.limit,
        shown.len(),
        Some(detail.users.len() as u64),
        |o| with_query(&base, &[("offset", &o.to_string())]),
    );
    let mut fields = vec![
        field("orgsync id", Some(g.id.to_string())),
        field("Name", g.name.clone()),
        field("Description", g.description.clone()),
        field("Kind", Some(kind_str(g.kind).to_owned())),
        field("Members", Some(g.members.len().to_string())),
        field("Version", Some(g.version.to_string())),
        field("Created", Some(fmt_ms(g.created_at))),
        field("Updated", Some(fmt_ms(g.updated_at))),
    ];
    if let Some(at) = g.deleted_at {
        fields.push(field("Deleted", Some(fmt_ms(at))));
    }
    Ok(ok(&GroupPage {
        ctx: Ctx::new(&session, "groups").pool(&pool),
        pool: pool.id.to_string(),
        name: g.name.clone().unwrap_or_else(|| g.id.to_string()),
        fields,
        users: shown.iter().map(|u| user_row(u, &names)).collect(),
        departments: detail
            .departments
            .iter()
            .map(|d| Crumb {
                id: d.id.to_string(),
                name: dept_name(d),
            })
            .collect(),
        unresolved: detail
            .unresolved
            .iter()
            .map(|m| match m {
                GroupMember::User(u) => format!("user {u}"),
                GroupMember::Department(d) => format!("department {d}"),
            })
            .collect(),
        external_ids: feishu_id_rows(
            &detail.external_ids,
            &connection_names(&state, &pool.id).await?,
        ),
        pager,
    }))
}
