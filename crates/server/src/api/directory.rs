//! The mirrored organization of a user pool: departments, users and groups.

use axum::Json;
use directory::admin::{
    Admin, AdminError, Cursor, CursorPage, DepartmentIdType, DepartmentView, GroupDetail,
    GroupIdType, GroupMemberView, UserDetail, UserIdType,
};
use directory::credentials::Scope;
use directory::ids::{DepartmentId, GroupId, PoolId, UserId};
use directory::model::{Department, Group, User, UserStatus};
use directory::store::{DepartmentNode, GroupEntry, MemberScope, UserQuery};

use super::extract::{Caller, PathParams, QueryParams, id, opt_enum, opt_id, opt_text};
use super::params::{ChildrenQuery, CursorQuery, MembersQuery, UsersQuery};
use crate::error::{ErrorBody, HttpError};

type ApiResult<T> = Result<Json<T>, HttpError>;

const STATUSES: &[&str] = &["active", "frozen", "unjoined", "exited", "resigned"];

/// One level of the live department tree, with counts: the departments directly below
/// `parent`, or the roots without it. Expand a node by asking for its children.
#[utoipa::path(
    get, path = "/api/v1/pools/{pool_id}/departments", tag = "directory",
    params(("pool_id" = String, Path, description = "User pool id"), ChildrenQuery),
    responses(
        (status = 200, description = "A page of departments of one level, in Feishu's order", body = CursorPage<DepartmentNode>),
        (status = 400, description = "Bad cursor", body = ErrorBody),
        (status = 404, description = "No such user pool or parent department", body = ErrorBody),
    )
)]
pub async fn department_children(
    caller: Caller,
    PathParams(pool_id): PathParams<String>,
    QueryParams(q): QueryParams<ChildrenQuery>,
) -> ApiResult<CursorPage<DepartmentNode>> {
    let pool_id: PoolId = id("pool_id", &pool_id)?;
    let admin = caller.reads(&pool_id, Scope::DirectoryRead)?;
    let parent: Option<DepartmentId> = opt_id("parent", q.parent.as_deref())?;
    let cursor = Cursor {
        after: q.after,
        limit: q.limit,
    };
    with_as_of(
        admin,
        &pool_id,
        admin.department_children(&pool_id, parent.as_ref(), &cursor),
    )
    .await
}

/// One department with its counts and its path from the root.
#[utoipa::path(
    get, path = "/api/v1/pools/{pool_id}/departments/{department_id}", tag = "directory",
    params(
        ("pool_id" = String, Path, description = "User pool id"),
        ("department_id" = String, Path, description = "Department id (orgsync's)"),
    ),
    responses(
        (status = 200, description = "The department", body = DepartmentView),
        (status = 404, description = "No such department", body = ErrorBody),
    )
)]
pub async fn get_department(
    caller: Caller,
    PathParams((pool_id, department_id)): PathParams<(String, String)>,
) -> ApiResult<DepartmentView> {
    let pool_id: PoolId = id("pool_id", &pool_id)?;
    let admin = caller.reads(&pool_id, Scope::DirectoryRead)?;
    let department_id: DepartmentId = id("department_id", &department_id)?;
    Ok(Json(admin.department(&pool_id, &department_id).await?))
}

/// Finds a department by a Feishu id: `open_department_id` (`od-…`) or the tenant's
/// `department_id`.
#[utoipa::path(
    get, path = "/api/v1/pools/{pool_id}/departments/by/{id_type}/{value}", tag = "directory",
    params(
        ("pool_id" = String, Path, description = "User pool id"),
        ("id_type" = DepartmentIdType, Path, description = "`open_department_id` or `department_id`"),
        ("value" = String, Path, description = "The Feishu id"),
    ),
    responses(
        (status = 200, description = "The department", body = Department),
        (status = 400, description = "Bad id type", body = ErrorBody),
        (status = 404, description = "No such user pool, or no department with that id", body = ErrorBody),
    )
)]
pub async fn department_by_feishu_id(
    caller: Caller,
    PathParams((pool_id, id_type, value)): PathParams<(String, String, String)>,
) -> ApiResult<Department> {
    let pool_id: PoolId = id("pool_id", &pool_id)?;
    let admin = caller.reads(&pool_id, Scope::DirectoryRead)?;
    let id_type = id_type_of(&id_type, DepartmentIdType::parse, &DepartmentIdType::ALL)?;
    Ok(Json(
        admin
            .department_by_feishu_id(&pool_id, id_type, &value)
            .await?,
    ))
}

/// Direct members of a department.
#[utoipa::path(
    get, path = "/api/v1/pools/{pool_id}/departments/{department_id}/members", tag = "directory",
    params(
        ("pool_id" = String, Path, description = "User pool id"),
        ("department_id" = String, Path, description = "Department id (orgsync's)"),
        MembersQuery,
    ),
    responses(
        (status = 200, description = "A page of users, in user-id order", body = CursorPage<User>),
        (status = 400, description = "Bad status, scope or cursor", body = ErrorBody),
        (status = 404, description = "No such department", body = ErrorBody),
    )
)]
pub async fn department_members(
    caller: Caller,
    PathParams((pool_id, department_id)): PathParams<(String, String)>,
    QueryParams(q): QueryParams<MembersQuery>,
) -> ApiResult<CursorPage<User>> {
    let pool_id: PoolId = id("pool_id", &pool_id)?;
    let admin = caller.reads(&pool_id, Scope::DirectoryRead)?;
    let department_id: DepartmentId = id("department_id", &department_id)?;
    let status = opt_enum("status", q.status.as_deref(), UserStatus::parse, STATUSES)?;
    let scope = scope_of(q.scope.as_deref())?;
    let cursor = cursor(q.after, q.limit, q.offset)?;
    // An unknown department gets a 404, not an empty page (`search_users` checks it).
    let query = UserQuery {
        department_id: Some(department_id),
        scope,
        status,
        ..UserQuery::default()
    };
    with_as_of(
        admin,
        &pool_id,
        admin.search_users(&pool_id, &query, &cursor, q.total.unwrap_or(false)),
    )
    .await
}

/// A list page with `as_of_cursor`: the feed's head read before the page, so that every
/// change up to it is in the page (docs/change-feed.md, "snapshot and cursor").
async fn with_as_of<T>(
    admin: &Admin,
    pool_id: &PoolId,
    page: impl Future<Output = Result<CursorPage<T>, AdminError>>,
) -> ApiResult<CursorPage<T>> {
    let as_of = admin.as_of_cursor(pool_id).await?;
    let mut page = page.await?;
    page.as_of_cursor = Some(as_of);
    Ok(Json(page))
}

/// `scope`: `direct` (default) or `subtree`.
fn scope_of(raw: Option<&str>) -> Result<MemberScope, HttpError> {
    let parse = |s: &str| match s {
        "direct" => Some(MemberScope::Direct),
        "subtree" => Some(MemberScope::Subtree),
        _ => None,
    };
    Ok(opt_enum("scope", raw, parse, &["direct", "subtree"])?.unwrap_or_default())
}

/// Directory lists page by cursor: `offset` gets an answer that says so.
/// The cursor page a directory list's query asks for; `offset` is refused with what to pass
/// instead.
fn cursor(
    after: Option<String>,
    limit: Option<u64>,
    offset: Option<u64>,
) -> Result<Cursor, HttpError> {
    match offset {
        None => Ok(Cursor { after, limit }),
        Some(_) => Err(HttpError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_request",
            "offset is not supported by directory lists: they page by cursor — pass the \
             `next` of the page before as `after`",
        )),
    }
}

/// Searches the users of a pool.
#[utoipa::path(
    get, path = "/api/v1/pools/{pool_id}/users", tag = "directory",
    params(("pool_id" = String, Path, description = "User pool id"), UsersQuery),
    responses(
        (status = 200, description = "A page of users: department members in user-id order, a free-text search in the text index's order, otherwise in creation order", body = CursorPage<User>),
        (status = 400, description = "Bad query parameters", body = ErrorBody),
        (status = 404, description = "No such user pool", body = ErrorBody),
    )
)]
pub async fn search_users(
    caller: Caller,
    PathParams(pool_id): PathParams<String>,
    QueryParams(q): QueryParams<UsersQuery>,
) -> ApiResult<CursorPage<User>> {
    let pool_id: PoolId = id("pool_id", &pool_id)?;
    let admin = caller.reads(&pool_id, Scope::DirectoryRead)?;
    let query = UserQuery {
        text: opt_text(q.q),
        email: opt_text(q.email),
        mobile: opt_text(q.mobile),
        employee_no: opt_text(q.employee_no),
        department_id: opt_id("department_id", q.department_id.as_deref())?,
        scope: scope_of(q.scope.as_deref())?,
        status: opt_enum("status", q.status.as_deref(), UserStatus::parse, STATUSES)?,
        include_deleted: q.include_deleted.unwrap_or(false),
    };
    let cursor = cursor(q.after, q.limit, q.offset)?;
    with_as_of(
        admin,
        &pool_id,
        admin.search_users(&pool_id, &query, &cursor, q.total.unwrap_or(false)),
    )
    .await
}

/// Everything about one user: departments, groups, Feishu ids, manager and change history.
#[utoipa::path(
    get, path = "/api/v1/pools/{pool_id}/users/{user_id}", tag = "directory",
    params(
        ("pool_id" = String, Path, description = "User pool id"),
        ("user_id" = String, Path, description = "User id (orgsync's)"),
    ),
    responses(
        (status = 200, description = "The user", body = UserDetail),
        (status = 404, description = "No such user", body = ErrorBody),
    )
)]
pub async fn get_user(
    caller: Caller,
    PathParams((pool_id, user_id)): PathParams<(String, String)>,
) -> ApiResult<UserDetail> {
    let pool_id: PoolId = id("pool_id", &pool_id)?;
    let admin = caller.reads(&pool_id, Scope::DirectoryRead)?;
    let user_id: UserId = id("user_id", &user_id)?;
    Ok(Json(admin.user_detail(&pool_id, &user_id).await?))
}

/// Finds a user by a Feishu id.
#[utoipa::path(
    get, path = "/api/v1/pools/{pool_id}/users/by/{id_type}/{value}", tag = "directory",
    params(
        ("pool_id" = String, Path, description = "User pool id"),
        ("id_type" = UserIdType, Path, description = "`open_id`, `union_id` or `user_id`"),
        ("value" = String, Path, description = "The Feishu id"),
    ),
    responses(
        (status = 200, description = "The user", body = User),
        (status = 400, description = "Bad id type", body = ErrorBody),
        (status = 404, description = "No user with that id", body = ErrorBody),
    )
)]
pub async fn user_by_feishu_id(
    caller: Caller,
    PathParams((pool_id, id_type, value)): PathParams<(String, String, String)>,
) -> ApiResult<User> {
    let pool_id: PoolId = id("pool_id", &pool_id)?;
    let admin = caller.reads(&pool_id, Scope::DirectoryRead)?;
    let id_type = id_type_of(
        &id_type,
        UserIdType::parse,
        &["open_id", "union_id", "user_id"],
    )?;
    Ok(Json(
        admin.user_by_feishu_id(&pool_id, id_type, &value).await?,
    ))
}

/// The `{id_type}` of a `…/by/{id_type}/{value}` route: 400 listing the allowed ones.
fn id_type_of<T>(
    raw: &str,
    parse: impl Fn(&str) -> Option<T>,
    allowed: &[&str],
) -> Result<T, HttpError> {
    opt_enum("id_type", Some(raw), parse, allowed)?.ok_or_else(|| {
        HttpError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("id_type is required: use one of {}", allowed.join(", ")),
        )
    })
}

/// Lists the user groups of a pool.
#[utoipa::path(
    get, path = "/api/v1/pools/{pool_id}/groups", tag = "directory",
    params(("pool_id" = String, Path, description = "User pool id"), CursorQuery),
    responses(
        (status = 200, description = "A page of groups, in creation order, each with how many members it lists (the members page on `/groups/{group_id}/members`)", body = CursorPage<GroupEntry>),
        (status = 404, description = "No such user pool", body = ErrorBody),
    )
)]
pub async fn list_groups(
    caller: Caller,
    PathParams(pool_id): PathParams<String>,
    QueryParams(q): QueryParams<CursorQuery>,
) -> ApiResult<CursorPage<GroupEntry>> {
    let pool_id: PoolId = id("pool_id", &pool_id)?;
    let admin = caller.reads(&pool_id, Scope::DirectoryRead)?;
    let cursor = cursor(q.after, q.limit, q.offset)?;
    with_as_of(admin, &pool_id, admin.list_groups(&pool_id, &cursor)).await
}

/// Finds a group by a Feishu id: `group_id` (the group's immutable id, as in Feishu's group
/// API paths and events) or `custom_group_id`.
#[utoipa::path(
    get, path = "/api/v1/pools/{pool_id}/groups/by/{id_type}/{value}", tag = "directory",
    params(
        ("pool_id" = String, Path, description = "User pool id"),
        ("id_type" = GroupIdType, Path, description = "`group_id` or `custom_group_id`"),
        ("value" = String, Path, description = "The Feishu id"),
    ),
    responses(
        (status = 200, description = "The group", body = Group),
        (status = 400, description = "Bad id type", body = ErrorBody),
        (status = 404, description = "No such user pool, or no group with that id", body = ErrorBody),
    )
)]
pub async fn group_by_feishu_id(
    caller: Caller,
    PathParams((pool_id, id_type, value)): PathParams<(String, String, String)>,
) -> ApiResult<Group> {
    let pool_id: PoolId = id("pool_id", &pool_id)?;
    let admin = caller.reads(&pool_id, Scope::DirectoryRead)?;
    let id_type = id_type_of(&id_type, GroupIdType::parse, &GroupIdType::ALL)?;
    Ok(Json(
        admin.group_by_feishu_id(&pool_id, id_type, &value).await?,
    ))
}

/// One group with its members resolved.
#[utoipa::path(
    get, path = "/api/v1/pools/{pool_id}/groups/{group_id}", tag = "directory",
    params(
        ("pool_id" = String, Path, description = "User pool id"),
        ("group_id" = String, Path, description = "Group id (orgsync's)"),
    ),
    responses(
        (status = 200, description = "The group", body = GroupDetail),
        (status = 404, description = "No such group", body = ErrorBody),
    )
)]
pub async fn get_group(
    caller: Caller,
    PathParams((pool_id, group_id)): PathParams<(String, String)>,
) -> ApiResult<GroupDetail> {
    let pool_id: PoolId = id("pool_id", &pool_id)?;
    let admin = caller.reads(&pool_id, Scope::DirectoryRead)?;
    let group_id: GroupId = id("group_id", &group_id)?;
    Ok(Json(admin.group(&pool_id, &group_id).await?))
}

/// A page of a group's members, each with the user or department it names; the way to read a
/// large group (the group itself, `GET …/groups/{group_id}`, resolves every member).
#[utoipa::path(
    get, path = "/api/v1/pools/{pool_id}/groups/{group_id}/members", tag = "directory",
    params(
        ("pool_id" = String, Path, description = "User pool id"),
        ("group_id" = String, Path, description = "Group id (orgsync's)"),
        CursorQuery,
    ),
    responses(
        (status = 200, description = "A page of members, by kind then id", body = CursorPage<GroupMemberView>),
        (status = 400, description = "Bad cursor", body = ErrorBody),
        (status = 404, description = "No such user pool or group", body = ErrorBody),
    )
)]
pub async fn group_members(
    caller: Caller,
    PathParams((pool_id, group_id)): PathParams<(String, String)>,
    QueryParams(q): QueryParams<CursorQuery>,
) -> ApiResult<CursorPage<GroupMemberView>> {
    let pool_id: PoolId = id("pool_id", &pool_id)?;
    let admin = caller.reads(&pool_id, Scope::DirectoryRead)?;
    let group_id: GroupId = id("group_id", &group_id)?;
    let cursor = cursor(q.after, q.limit, q.offset)?;
    with_as_of(
        admin,
        &pool_id,
        admin.group_members(&pool_id, &group_id, &cursor),
    )
    .await
}
