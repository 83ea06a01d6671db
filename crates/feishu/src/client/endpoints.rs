//! The Contact v3 read endpoints (protocol §3.1). Every request names its id types
//! explicitly; Feishu's defaults differ per endpoint (design.md §2, lesson 4).

use futures::stream::{BoxStream, StreamExt, TryStreamExt};

use super::FeishuClient;
use super::error::{FeishuError, Subject};
use super::paging::{self, ItemStream, PageStream, list_pages, raw_pages};
use super::transport::Call;
use crate::ids::{GroupType, MemberIdType, MemberType};
use crate::model::{
    Department, DepartmentData, Group, GroupData, GroupMember, ListData, MemberBelongData,
    ScopesData, User, UserData,
};

/// Feishu's maximum number of ids per batch request.
pub const BATCH_LIMIT: usize = 50;

const SCOPES: &str = "contact/v3/scopes";
const DEPARTMENT: &str = "contact/v3/departments/:department_id";
const DEPARTMENT_CHILDREN: &str = "contact/v3/departments/:department_id/children";
const DEPARTMENTS_BATCH: &str = "contact/v3/departments/batch";
const USERS_BY_DEPARTMENT: &str = "contact/v3/users/find_by_department";
const USER: &str = "contact/v3/users/:user_id";
const USERS_BATCH: &str = "contact/v3/users/batch";
const GROUPS: &str = "contact/v3/group/simplelist";
const GROUP: &str = "contact/v3/group/:group_id";
const GROUP_MEMBERS: &str = "contact/v3/group/:group_id/member/simplelist";
const GROUP_MEMBER_BELONG: &str = "contact/v3/group/member_belong";

/// The app's contact scope (`/scopes`, all pages): the departments, users and groups
/// picked in the scope (for "all members": first-level departments, users directly under
/// the root, all groups). Ids are de-duplicated in Feishu's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactScopes {
    pub department_ids: Vec<String>,
    pub user_ids: Vec<String>,
    pub group_ids: Vec<String>,
}

fn contact_path(rest: &[&str]) -> Vec<String> {
    ["contact", "v3"]
        .iter()
        .chain(rest)
        .map(|s| (*s).to_owned())
        .collect()
}

fn push_unique(into: &mut Vec<String>, from: Option<Vec<String>>) {
    for id in from.into_iter().flatten() {
        if !into.contains(&id) {
            into.push(id);
        }
    }
}

impl FeishuClient {
    fn id_type_query(&self) -> Vec<(&'static str, String)> {
        vec![
            ("user_id_type", self.id_types.user.as_str().to_owned()),
            (
                "department_id_type",
                self.id_types.department.as_str().to_owned(),
            ),
        ]
    }

    fn call(
        &self,
        endpoint: &'static str,
        path: &[&str],
        extra: Vec<(&'static str, String)>,
        subject: Subject,
    ) -> Call {
        let mut query = self.id_type_query();
        query.extend(extra);
        Call {
            endpoint,
            path: contact_path(path),
            query,
            subject,
        }
    }

    /// An empty id would address the collection instead of the object.
    fn require_id(endpoint: &'static str, what: &str, id: &str) -> Result<(), FeishuError> {
        if id.is_empty() {
            return Err(FeishuError::InvalidArgument {
                endpoint: endpoint.to_owned(),
                detail: format!("the {what} id is empty"),
            });
        }
        Ok(())
    }

    /// `GET /contact/v3/scopes`, one item per page.
    pub fn scopes_pages(&self) -> BoxStream<'static, Result<ScopesData, FeishuError>> {
        let call = self.call(
            SCOPES,
            &["scopes"],
            vec![("page_size", self.page_sizes.scopes.to_string())],
            Subject::None,
        );
        raw_pages::<ScopesData>(self.clone(), call)
            .map_ok(|(_, data)| data)
            .boxed()
    }

    /// All pages of `/scopes`, collected.
    pub async fn scopes(&self) -> Result<ContactScopes, FeishuError> {
        let mut scopes = ContactScopes::default();
        let mut pages = self.scopes_pages();
        while let Some(page) = pages.try_next().await? {
            push_unique(&mut scopes.department_ids, page.department_ids);
            push_unique(&mut scopes.user_ids, page.user_ids);
            push_unique(&mut scopes.group_ids, page.group_ids);
        }
        Ok(scopes)
    }

    /// `GET /contact/v3/departments/:department_id`.
    pub async fn department(&self, department_id: &str) -> Result<Department, FeishuError> {
        Self::require_id(DEPARTMENT, "department", department_id)?;
        let call = self.call(
            DEPARTMENT,
            &["departments", department_id],
            Vec::new(),
            Subject::Department(department_id.to_owned()),
        );
        let data: DepartmentData = self.inner.get_data(&call).await?;
        data.department
            .ok_or_else(|| missing(DEPARTMENT, "department"))
    }

    /// `GET /contact/v3/departments/:department_id/children`, page by page.
    /// `fetch_child = true` lists all descendants flattened (may fail with
    /// [`FeishuError::RecursionRefused`] on very large departments: walk level by level).
    pub fn department_children_pages(
        &self,
        department_id: &str,
        fetch_child: bool,
    ) -> PageStream<Department> {
        let call = self.call(
            DEPARTMENT_CHILDREN,
            &["departments", department_id, "children"],
            vec![
                ("fetch_child", fetch_child.to_string()),
                ("page_size", self.page_sizes.department_children.to_string()),
            ],
            Subject::Department(department_id.to_owned()),
        );
        if let Err(err) = Self::require_id(DEPARTMENT_CHILDREN, "department", department_id) {
            return futures::stream::once(async { Err(err) }).boxed();
        }
        list_pages(self.clone(), call)
    }

    /// Child departments, item by item.
    pub fn department_children(
        &self,
        department_id: &str,
        fetch_child: bool,
    ) -> ItemStream<Department> {
        paging::items(self.department_children_pages(department_id, fetch_child))
    }

    /// `GET /contact/v3/departments/batch`, 50 ids per request. Ids Feishu cannot resolve
    /// are simply absent from the result.
    pub async fn departments_batch<S: AsRef<str>>(
        &self,
        department_ids: &[S],
    ) -> Result<Vec<Department>, FeishuError> {
        let mut out = Vec::with_capacity(department_ids.len());
        for chunk in department_ids.chunks(BATCH_LIMIT) {
            let ids = chunk
                .iter()
                .map(|id| ("department_ids", id.as_ref().to_owned()))
                .collect();
            let call = self.call(
                DEPARTMENTS_BATCH,
                &["departments", "batch"],
                ids,
                Subject::None,
            );
            let data: ListData<Department> = self.inner.get_data(&call).await?;
            out.extend(data.items.unwrap_or_default());
        }
        Ok(out)
    }

    /// `GET /contact/v3/users/find_by_department`: the direct members of a department
    /// (`"0"` = users directly under the root), page by page.
    pub fn users_by_department_pages(&self, department_id: &str) -> PageStream<User> {
        let call = self.call(
            USERS_BY_DEPARTMENT,
            &["users", "find_by_department"],
            vec![
                ("department_id", department_id.to_owned()),
                ("page_size", self.page_sizes.users_by_department.to_string()),
            ],
            Subject::Department(department_id.to_owned()),
        );
        if let Err(err) = Self::require_id(USERS_BY_DEPARTMENT, "department", department_id) {
            return futures::stream::once(async { Err(err) }).boxed();
        }
        list_pages(self.clone(), call)
    }

    /// Direct members of a department, item by item.
    pub fn users_by_department(&self, department_id: &str) -> ItemStream<User> {
        paging::items(self.users_by_department_pages(department_id))
    }

    /// `GET /contact/v3/users/:user_id`. A resigned user is still readable here
    /// (`status.is_resigned`); [`FeishuError::UserOutOfScope`] means "not visible".
    pub async fn user(&self, user_id: &str) -> Result<User, FeishuError> {
        Self::require_id(USER, "user", user_id)?;
        let call = self.call(
            USER,
            &["users", user_id],
            Vec::new(),
            Subject::User(user_id.to_owned()),
        );
        let data: UserData = self.inner.get_data(&call).await?;
        data.user.ok_or_else(|| missing(USER, "user"))
    }

    /// `GET /contact/v3/users/batch`, 50 ids per request. Ids Feishu cannot resolve are
    /// simply absent from the result.
    pub async fn users_batch<S: AsRef<str>>(
        &self,
        user_ids: &[S],
    ) -> Result<Vec<User>, FeishuError> {
        let mut out = Vec::with_capacity(user_ids.len());
        for chunk in user_ids.chunks(BATCH_LIMIT) {
            let ids = chunk
                .iter()
                .map(|id| ("user_ids", id.as_ref().to_owned()))
                .collect();
            let call = self.call(USERS_BATCH, &["users", "batch"], ids, Subject::None);
            let data: ListData<User> = self.inner.get_data(&call).await?;
            out.extend(data.items.unwrap_or_default());
        }
        Ok(out)
    }

    /// `GET /contact/v3/group/simplelist` (list key `grouplist`), page by page.
    pub fn groups_pages(&self, group_type: GroupType) -> PageStream<Group> {
        let call = Call {
            endpoint: GROUPS,
            path: contact_path(&["group", "simplelist"]),
            query: vec![
                ("type", group_type.code().to_string()),
                ("page_size", self.page_sizes.groups.to_string()),
            ],
            subject: Subject::None,
        };
        list_pages(self.clone(), call)
    }

    /// User groups of one type, item by item.
    pub fn groups(&self, group_type: GroupType) -> ItemStream<Group> {
        paging::items(self.groups_pages(group_type))
    }

    /// `GET /contact/v3/group/:group_id`.
    pub async fn group(&self, group_id: &str) -> Result<Group, FeishuError> {
        Self::require_id(GROUP, "group", group_id)?;
        let call = self.call(
            GROUP,
            &["group", group_id],
            Vec::new(),
            Subject::Group(group_id.to_owned()),
        );
        let data: GroupData = self.inner.get_data(&call).await?;
        data.group.ok_or_else(|| missing(GROUP, "group"))
    }

    /// `GET /contact/v3/group/:group_id/member/simplelist` (list key `memberlist`): one
    /// member type per request, page by page.
    pub fn group_members_pages(
        &self,
        group_id: &str,
        member_type: MemberType,
        member_id_type: MemberIdType,
    ) -> PageStream<GroupMember> {
        if let Err(err) = Self::require_id(GROUP_MEMBERS, "group", group_id) {
            return futures::stream::once(async { Err(err) }).boxed();
        }
        let call = Call {
            endpoint: GROUP_MEMBERS,
            path: contact_path(&["group", group_id, "member", "simplelist"]),
            query: vec![
                ("member_id_type", member_id_type.as_str().to_owned()),
                ("member_type", member_type.as_str().to_owned()),
                ("page_size", self.page_sizes.group_members.to_string()),
            ],
            subject: Subject::Group(group_id.to_owned()),
        };
        list_pages(self.clone(), call)
    }

    /// Members of a group, item by item.
    pub fn group_members(
        &self,
        group_id: &str,
        member_type: MemberType,
        member_id_type: MemberIdType,
    ) -> ItemStream<GroupMember> {
        paging::items(self.group_members_pages(group_id, member_type, member_id_type))
    }

    /// `GET /contact/v3/group/member_belong`: ids of the groups a user belongs to, page by
    /// page. `group_type = None` lets Feishu choose (normal groups).
    pub fn group_member_belong_pages(
        &self,
        member_id: &str,
        member_id_type: MemberIdType,
        group_type: Option<GroupType>,
    ) -> PageStream<String> {
        let mut query = vec![
            ("member_id", member_id.to_owned()),
            ("member_id_type", member_id_type.as_str().to_owned()),
            ("page_size", self.page_sizes.group_member_belong.to_string()),
        ];
        if let Some(group_type) = group_type {
            query.push(("group_type", group_type.code().to_string()));
        }
        if let Err(err) = Self::require_id(GROUP_MEMBER_BELONG, "member", member_id) {
            return futures::stream::once(async { Err(err) }).boxed();
        }
        let call = Call {
            endpoint: GROUP_MEMBER_BELONG,
            path: contact_path(&["group", "member_belong"]),
            query,
            subject: Subject::User(member_id.to_owned()),
        };
        raw_pages::<MemberBelongData>(self.clone(), call)
            .map_ok(|(index, data)| paging::Page {
                has_more: data.has_more.unwrap_or(false),
                items: data.group_list.unwrap_or_default(),
                index,
                page_token: data.page_token,
            })
            .boxed()
    }

    /// Group ids of a user, item by item.
    pub fn group_member_belong(
        &self,
        member_id: &str,
        member_id_type: MemberIdType,
        group_type: Option<GroupType>,
    ) -> ItemStream<String> {
        paging::items(self.group_member_belong_pages(member_id, member_id_type, group_type))
    }
}

fn missing(endpoint: &'static str, field: &str) -> FeishuError {
    FeishuError::Decode {
        endpoint: endpoint.to_owned(),
        http_status: 200,
        detail: format!("code 0 but `data.{field}` is missing"),
        log_id: None,
    }
}
