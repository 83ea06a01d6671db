//! Query strings and request bodies of the admin API that are not directory types.

use directory::admin::{Page, page};
use directory::model::JobKind;
use directory::store::PageRequest;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

/// `offset` / `limit` of a list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Items to skip (default 0).
    pub offset: Option<u64>,
    /// Items per page (default 50, at most 500).
    pub limit: Option<u64>,
}

impl PageQuery {
    pub fn page(&self) -> PageRequest {
        page(self.offset, self.limit)
    }
}

/// A page cut from a list the directory returns whole (pools and connections are few).
pub fn paginate<T>(all: Vec<T>, req: PageRequest) -> Page<T> {
    let total = all.len() as u64;
    let items = all
        .into_iter()
        .skip(usize::try_from(req.offset).unwrap_or(usize::MAX))
        .take(usize::try_from(req.limit).unwrap_or(usize::MAX))
        .collect();
    Page {
        items,
        offset: req.offset,
        limit: req.limit,
        total: Some(total),
        next: None,
    }
}

/// A new user pool.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPool {
    /// A name for people, e.g. "Acme".
    pub name: String,
}

/// A user pool's new name.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolPatch {
    /// A name for people, e.g. "Acme".
    pub name: String,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeletePoolQuery {
    /// The pool's name or id: needed when the pool holds connections or users.
    pub confirm: Option<String>,
}

/// Which job to start.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartJob {
    /// `import` (the first full pull) or `reconcile` (a later full pull that heals what
    /// events missed).
    pub kind: JobKind,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JobsQuery {
    /// Only the jobs of this connection.
    pub connection_id: Option<String>,
    /// Items to skip (default 0).
    pub offset: Option<u64>,
    /// Items per page (default 50, at most 500).
    pub limit: Option<u64>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JobLogQuery {
    /// One of the action vocabulary: `CreateUser`, `UpdateUser`, `DisableUser`, `DeleteUser`,
    /// `ChangeUserDepartment`, `UpdateUserIdentifier`, `CreateDepartment`, `UpdateDepartment`,
    /// `MoveDepartment`, `UpdateDepartmentLeader`, `DeleteDepartment`, `CreateGroup`,
    /// `UpdateGroup`, `DeleteGroup`, `AddGroupMember`, `RemoveGroupMember`, `Unchanged`.
    pub action: Option<String>,
    /// `user`, `department` or `group`.
    pub object_type: Option<String>,
    /// `applied`, `skipped`, `parked` or `failed`.
    pub result: Option<String>,
    /// The `next` of the page before: the page after it, at the same cost at any depth.
    pub after: Option<String>,
    /// Items to skip (default 0; after `after` when both are given). Slower the deeper it
    /// goes: every item skipped is read; walk the list with `after` instead.
    pub offset: Option<u64>,
    /// Items per page (default 50, at most 500).
    pub limit: Option<u64>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ParkedQuery {
    /// `pending`, `approved`, `rejected` or `withdrawn` (default: all).
    pub state: Option<String>,
    /// Only the entries of this connection.
    pub connection_id: Option<String>,
    /// `user`, `department` or `group`.
    pub object_type: Option<String>,
    /// Only the entries this job parked (or refreshed last).
    pub job_id: Option<String>,
    /// The `next` of the page before: the page after it, at the same cost at any depth.
    pub after: Option<String>,
    /// Items to skip (default 0; after `after` when both are given). Slower the deeper it
    /// goes: every item skipped is read; walk the list with `after` instead.
    pub offset: Option<u64>,
    /// Items per page (default 50, at most 500).
    pub limit: Option<u64>,
}

/// A page of a directory list, walked by cursor.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CursorQuery {
    /// The `next` of the page before; leave it out for the first page.
    pub after: Option<String>,
    /// Items per page (default 50, at most 500).
    pub limit: Option<u64>,
    /// Not supported here: directory lists page by cursor (`after`).
    pub offset: Option<u64>,
}

/// One level of the department tree.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ChildrenQuery {
    /// The department whose children to list (orgsync id); the roots without it.
    pub parent: Option<String>,
    /// The `next` of the page before; leave it out for the first page.
    pub after: Option<String>,
    /// Items per page (default 50, at most 500).
    pub limit: Option<u64>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MembersQuery {
    /// `direct` (default): members of the department itself; `subtree`: of the department
    /// and every department below it, each user once.
    pub scope: Option<String>,
    /// `active`, `frozen`, `unjoined`, `exited` or `resigned` (a filter over the walk: a
    /// rare status reads more of the department per page).
    pub status: Option<String>,
    /// The `next` of the page before; leave it out for the first page.
    pub after: Option<String>,
    /// Items per page (default 50, at most 500).
    pub limit: Option<u64>,
    /// Also count all members (`total`): reads every member of the scope.
    pub total: Option<bool>,
    /// Not supported here: directory lists page by cursor (`after`).
    pub offset: Option<u64>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UsersQuery {
    /// Case-insensitive substring of name, English name, e-mail, mobile or employee number.
    pub q: Option<String>,
    /// Exact e-mail address.
    pub email: Option<String>,
    /// Exact mobile number.
    pub mobile: Option<String>,
    /// Exact employee number.
    pub employee_no: Option<String>,
    /// Members of this department (orgsync id), by `scope`.
    pub department_id: Option<String>,
    /// With `department_id`: `direct` (default) or `subtree`.
    pub scope: Option<String>,
    /// `active`, `frozen`, `unjoined`, `exited` or `resigned`.
    pub status: Option<String>,
    /// Include deleted users (tombstones); default false. Not with `department_id`.
    pub include_deleted: Option<bool>,
    /// The `next` of the page before; leave it out for the first page.
    pub after: Option<String>,
    /// Items per page (default 50, at most 500).
    pub limit: Option<u64>,
    /// Also count all matches (`total`): reads every match.
    pub total: Option<bool>,
    /// Not supported here: directory lists page by cursor (`after`).
    pub offset: Option<u64>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Only the events of this user pool.
    pub pool_id: Option<String>,
    /// Only the events of this connection.
    pub connection_id: Option<String>,
    /// `pending`, `applied`, `ignored` or `parked`.
    pub state: Option<String>,
    /// A Feishu event type, e.g. `contact.user.created_v3`.
    pub event_type: Option<String>,
    /// The `next` of the page before: the page after it, at the same cost at any depth.
    pub after: Option<String>,
    /// Items to skip (default 0; after `after` when both are given). Slower the deeper it
    /// goes: every item skipped is read; walk the list with `after` instead.
    pub offset: Option<u64>,
    /// Items per page (default 50, at most 500).
    pub limit: Option<u64>,
}
