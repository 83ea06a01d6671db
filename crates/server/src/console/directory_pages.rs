//! The mirrored directory: the org tree, departments, users and groups of a pool.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use directory::admin::{DepartmentNode, page};
use directory::ids::{DepartmentId, GroupId, PoolId, UserId};
use directory::model::{
    Department, ExternalRef, GroupKind, GroupMember, LeaderKind, User, UserPool, UserStatus,
};
use directory::store::{ChangeSource, UserQuery};
use serde::Deserialize;

use super::session::Session;
use super::util::{ConsoleResult, Ctx, Pager, fmt_ms, fmt_opt_ms, ok, opt, with_query};
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

/// The tree as a flat list of opening, leaf and closing lines (templates cannot recurse).
pub struct TreeLine {
    /// `open` (a department with children), `leaf` or `close`.
    pub kind: &'static str,
    pub id: String,
    pub name: String,
    pub direct: u64,
    pub total: u64,
    /// Expanded at first (the top levels).
    pub expanded: bool,
}

fn flatten(nodes: &[DepartmentNode], depth: usize, out: &mut Vec<TreeLine>) {
    for n in nodes {
        let line = |kind| TreeLine {
            kind,
            id: n.department.id.to_string(),
            name: dept_name(&n.department),
            direct: n.member_count,
            total: n.total_member_count,
            expanded: depth < 1,
        };
        if n.children.is_empty() {
            out.push(line("leaf"));
        } else {
            out.push(line("open"));
            flatten(&n.children, depth + 1, out);
            out.push(TreeLine {
                kind: "close",
                id: String::new(),
                name: String::new(),
                direct: 0,
                total: 0,
                expanded: false,
            });
        }
    }
}

#[derive(Template)]
#[template(path = "tree.html")]
pub struct TreePage {
    pub ctx: Ctx,
    pub pool: String,
    pub lines: Vec<TreeLine>,
    pub departments: usize,
    pub root_members: u64,
}

pub async fn tree(
    State(state): State<AppState>,
    session: Session,
    Path(pool): Path<String>,
) -> ConsoleResult {
    let pool = pool_of(&state, &pool).await?;
    let nodes = state.admin.department_tree(&pool.id).await?;
    let mut lines = Vec::new();
    flatten(&nodes, 0, &mut lines);
    let root_members = state
        .admin
        .search_users(&pool.id, &UserQuery::default(), page(Some(0), Some(1)))
        .await?
        .total
        .unwrap_or(0);
    Ok(ok(&TreePage {
        ctx: Ctx::new(&session, "tree").pool(&pool),
        pool: pool.id.to_string(),
        departments: lines.iter().filter(|l| l.kind != "close").count(),
        lines,
        root_members,
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

async fn department_names(state: &AppState, pool: &PoolId) -> ConsoleResult<Vec<Department>> {
    Ok(state.admin.list_departments(pool).await?)
}

fn names_of(departments: &[Department]) -> HashMap<String, String> {
    departments
        .iter()
        .map(|d| (d.id.to_string(), dept_name(d)))
        .collect()
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
    pub name: String,
    pub path: Vec<Crumb>,
    pub children: Vec<Crumb>,
    pub fields: Vec<Field>,
    pub external_ids: Vec<FeishuIdRow>,
    pub members: Vec<UserRow>,
    pub pager: Pager,
}

#[derive(Deserialize)]
pub struct OffsetQuery {
    offset: Option<u64>,
}

pub async fn department(
    State(state): State<AppState>,
    session: Session,
    Path((pool, id)): Path<(String, String)>,
    Query(q): Query<OffsetQuery>,
) -> ConsoleResult {
    let pool = pool_of(&state, &pool).await?;
    let id = DepartmentId::from(id);
    let view = state.admin.department(&pool.id, &id).await?;
    let d = &view.department;
    let req = page(q.offset, Some(50));
    let members = state
        .admin
        .search_users(
            &pool.id,
            &UserQuery {
                department_id: Some(id.clone()),
                ..UserQuery::default()
            },
            req,
        )
        .await?;
    let all = department_names(&state, &pool.id).await?;
    let names = names_of(&all);
    let base = format!("/console/pools/{}/departments/{id}", pool.id);
    let pager = Pager::new(
        req.offset,
        req.limit,
        members.items.len(),
        members.total,
        |o| with_query(&base, &[("offset", &o.to_string())]),
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
        name: dept_name(d),
        path: view
            .path
            .iter()
            .map(|p| Crumb {
                id: p.id.to_string(),
                name: dept_name(p),
            })
            .collect(),
        children: view
            .children
            .iter()
            .map(|c| Crumb {
                id: c.id.to_string(),
                name: dept_name(c),
            })
            .collect(),
        fields,
        external_ids: feishu_id_rows(
            &view.external_ids,
            &connection_names(&state, &pool.id).await?,
        ),
        members: members.items.iter().map(|u| user_row(u, &names)).collect(),
        pager,
    }))
}

// ---- users ----

pub struct DeptOption {
    pub id: String,
    pub name: String,
}

#[derive(Template)]
#[template(path = "users.html")]
pub struct UsersPage {
    pub ctx: Ctx,
    pub pool: String,
    pub rows: Vec<UserRow>,
    pub q: String,
    pub status: String,
    pub department: String,
    pub include_deleted: bool,
    pub statuses: Vec<&'static str>,
    pub departments: Vec<DeptOption>,
    pub pager: Pager,
}

#[derive(Deserialize)]
pub struct UsersQuery {
    q: Option<String>,
    status: Option<String>,
    department: Option<String>,
    deleted: Option<String>,
    offset: Option<u64>,
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
    let include_deleted = opt(&q.deleted).is_some();
    let query = UserQuery {
        text: text.clone(),
        department_id: department.clone(),
        status,
        include_deleted,
        ..UserQuery::default()
    };
    let req = page(q.offset, Some(50));
    let found = state.admin.search_users(&pool.id, &query, req).await?;
    let all = department_names(&state, &pool.id).await?;
    let names = names_of(&all);
    let (text, status, department) = (
        text.unwrap_or_default(),
        status.map(UserStatus::as_str).unwrap_or("").to_owned(),
        department.map(|d| d.to_string()).unwrap_or_default(),
    );
    let base = format!("/console/pools/{}/users", pool.id);
    let deleted = if include_deleted { "1" } else { "" };
    let pager = Pager::new(req.offset, req.limit, found.items.len(), found.total, |o| {
        with_query(
            &base,
            &[
                ("q", &text),
                ("status", &status),
                ("department", &department),
                ("deleted", deleted),
                ("offset", &o.to_string()),
            ],
        )
    });
    Ok(ok(&UsersPage {
        ctx: Ctx::new(&session, "users").pool(&pool),
        pool: pool.id.to_string(),
        rows: found.items.iter().map(|u| user_row(u, &names)).collect(),
        q: text,
        status,
        department,
        include_deleted,
        statuses: ["active", "frozen", "unjoined", "exited", "resigned"].to_vec(),
        departments: all
            .iter()
            .map(|d| DeptOption {
                id: d.id.to_string(),
                name: dept_name(d),
            })
            .collect(),
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
}

fn yes_no(b: Option<bool>) -> Option<String> {
    b.map(|b| if b { "yes" } else { "no" }.to_owned())
}

pub async fn user(
    State(state): State<AppState>,
    session: Session,
    Path((pool, id)): Path<(String, String)>,
) -> ConsoleResult {
    let pool = pool_of(&state, &pool).await?;
    let detail = state.admin.user_detail(&pool.id, &UserId::from(id)).await?;
    let u = &detail.user;
    let p = &u.profile;
    let connections = connection_names(&state, &pool.id).await?;
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
    Ok(ok(&UserPage {
        ctx: Ctx::new(&session, "users").pool(&pool),
        pool: pool.id.to_string(),
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
    }))
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
    Query(q): Query<OffsetQuery>,
) -> ConsoleResult {
    let pool = pool_of(&state, &pool).await?;
    let req = page(q.offset, Some(50));
    let list = state.admin.list_groups(&pool.id, req).await?;
    let base = format!("/console/pools/{}/groups", pool.id);
    let pager = Pager::new(req.offset, req.limit, list.items.len(), list.total, |o| {
        with_query(&base, &[("offset", &o.to_string())])
    });
    Ok(ok(&GroupsPage {
        ctx: Ctx::new(&session, "groups").pool(&pool),
        pool: pool.id.to_string(),
        rows: list
            .items
            .iter()
            .map(|g| GroupRow {
                id: g.id.to_string(),
                name: g.name.clone().unwrap_or_else(|| g.id.to_string()),
                kind: kind_str(g.kind),
                members: g.members.len(),
                description: g.description.clone().unwrap_or_default(),
                deleted: g.deleted_at.is_some(),
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
    let all = department_names(&state, &pool.id).await?;
    let names = names_of(&all);
    let req = page(q.offset, Some(50));
    let start = (req.offset as usize).min(detail.users.len());
    let end = (start + req.limit as usize).min(detail.users.len());
    let shown = &detail.users[start..end];
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
