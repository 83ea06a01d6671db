//! A search of a pool's tree, answered from the store's read model page by page: the
//! candidates come from an index where the filter names one (a `uid`, a `memberOf`, a `cn`),
//! else from a keyset walk of the container; the whole filter is then checked on each entry.
//! Entries are handed to the caller as they are made, never gathered: a search of 100,000
//! people holds one store page at a time (docs/ldap.md, "Searches").

use std::collections::HashMap;
use std::sync::Arc;

use directory::ids::{DepartmentId, GroupId, UserId};
use directory::model::{Department, Group, GroupMember, ObjectKind, User, UserStatus};
use directory::store::{
    DirectoryStore, KeyPage, MemberScope, PersonKey as Key, StoreError, UserQuery,
};
use ldap3_proto::proto::{LdapFilter, LdapSearchScope};

use crate::cookie::Position;
use crate::departments::{self, Departments};
use crate::dn::Dn;
use crate::entry::Entry;
use crate::filter;
use crate::schema;
use crate::tree::{Container, DepartmentScope, PoolTree, Target};

/// The most candidates read from the store at once.
const STORE_PAGE: usize = 500;

/// The most departments read at once when their member lists are wanted: a page then holds
/// at most this many lists (each up to the pool's size).
const MEMBER_LIST_PAGE: usize = 16;

/// The stages of a walk, in order: the fixed entries (the base, containers, one named entry),
/// then each container's entries.
const FIXED: u8 = 0;

fn stage_of(c: Container) -> u8 {
    match c {
        Container::People => 1,
        Container::Groups => 2,
        Container::Departments => 3,
        Container::Services => 4,
    }
}

fn container_of_stage(stage: u8) -> Option<Container> {
    Container::ALL.into_iter().find(|c| stage_of(*c) == stage)
}

/// What to walk for a base and a scope: the fixed entries' targets and the containers whose
/// entries follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub fixed: Vec<Target>,
    pub containers: Vec<Container>,
}

pub fn plan(target: &Target, scope: &LdapSearchScope) -> Plan {
    use LdapSearchScope as S;
    let walked = [Container::People, Container::Groups, Container::Departments];
    let (fixed, containers) = match (target, scope) {
        (Target::Base, S::Base) => (vec![Target::Base], vec![]),
        (Target::Base, S::OneLevel) => (
            Container::ALL.into_iter().map(Target::Container).collect(),
            vec![],
        ),
        (Target::Base, _) => {
            let mut fixed = vec![Target::Base];
            fixed.extend(Container::ALL.into_iter().map(Target::Container));
            (fixed, walked.to_vec())
        }
        (Target::Container(c), S::Base) => (vec![Target::Container(*c)], vec![]),
        (Target::Container(c), S::OneLevel) => (vec![], walked_only(*c)),
        (Target::Container(c), _) => (vec![Target::Container(*c)], walked_only(*c)),
        (Target::Entry(..), S::OneLevel) => (vec![], vec![]),
        (Target::Entry(c, v), _) => (vec![Target::Entry(*c, v.clone())], vec![]),
    };
    Plan { fixed, containers }
}

/// Service entries are never listed.
fn walked_only(c: Container) -> Vec<Container> {
    if c == Container::Services {
        vec![]
    } else {
        vec![c]
    }
}

/// Where a walk ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// Every candidate was looked at.
    Done,
    /// `limit` entries were sent and the walk can go on from here.
    More(Position),
}

/// One search's inputs.
pub struct Search<'a> {
    pub store: &'a Arc<dyn DirectoryStore>,
    pub tree: &'a PoolTree,
    pub filter: &'a LdapFilter,
    /// The listener's kept departments.
    pub departments: &'a Departments,
    /// Whether entries need `memberOf` (asked for, or in the filter).
    pub member_of: bool,
    /// Whether people's `modifyTimestamp` must count their group memberships (asked for, or
    /// in the filter): one more read per page otherwise saved.
    pub modified: bool,
    /// Whether department entries list their members (`member`, `uniqueMember`,
    /// `memberUid` asked for, by name or `*`, or in the filter): the largest entries.
    pub members: bool,
}

/// Whether a search needs one of the user attributes `names`: asked for by name or by `*` (or
/// no list, which means `*`), or in the filter.
pub fn wants_any(attrs: &[String], filter: &LdapFilter, names: &[&str]) -> bool {
    let all = attrs.is_empty() || attrs.iter().any(|a| a == "*");
    names.iter().any(|name| {
        all || attrs.iter().any(|a| schema::canonical(a) == Some(*name)) || mentions(filter, name)
    })
}

/// Whether a search or compare needs an operational attribute: named, `+`, or in the filter.
pub fn wants(attrs: &[String], filter: &LdapFilter, name: &str) -> bool {
    attrs.iter().any(|a| a == "+")
        || attrs.iter().any(|a| schema::canonical(a) == Some(name))
        || mentions(filter, name)
}

impl Search<'_> {
    /// Walks `plan` from `from`, calling `emit` with each matching entry, until `limit`
    /// entries were emitted or the walk ends.
    pub async fn run<F, Fut>(
        &self,
        plan: &Plan,
        from: &Position,
        limit: usize,
        mut emit: F,
    ) -> Result<Ended, StoreError>
    where
        F: FnMut(Entry) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let mut sent = 0usize;
        let mut stages: Vec<u8> = Vec::new();
        if !plan.fixed.is_empty() {
            stages.push(FIXED);
        }
        stages.extend(
            plan.containers
                .iter()
                .filter(|c| can_match(self.filter, **c))
                .map(|c| stage_of(*c)),
        );
        for (n, &stage) in stages.iter().enumerate() {
            if stage < from.stage {
                continue;
            }
            let mut after = if stage == from.stage {
                from.after.clone()
            } else {
                None
            };
            loop {
                let want = (limit - sent).clamp(1, STORE_PAGE);
                let (candidates, next) = self.page(plan, stage, after.as_deref(), want).await?;
                for entry in candidates {
                    if filter::matches(self.filter, &entry) {
                        emit(entry).await;
                        sent += 1;
                    }
                }
                after = next;
                let stage_done = after.is_none();
                if sent >= limit {
                    let rest = if stage_done {
                        stages.get(n + 1).map(|s| Position {
                            stage: *s,
                            after: None,
                        })
                    } else {
                        Some(Position { stage, after })
                    };
                    return Ok(rest.map_or(Ended::Done, Ended::More));
                }
                if stage_done {
                    break;
                }
            }
        }
        Ok(Ended::Done)
    }

    /// Up to `want` candidates of a stage after `after`, and the key after the last of them
    /// (`None`: the stage is done).
    async fn page(
        &self,
        plan: &Plan,
        stage: u8,
        after: Option<&str>,
        want: usize,
    ) -> Result<(Vec<Entry>, Option<String>), StoreError> {
        if stage == FIXED {
            let start: usize = after.and_then(|a| a.parse().ok()).unwrap_or(0);
            let mut out = Vec::new();
            let mut i = start;
            while i < plan.fixed.len() && out.len() < want {
                if fixed_can_match(self.filter, &plan.fixed[i])
                    && let Some(e) = self.fixed_entry(&plan.fixed[i]).await?
                {
                    out.push(e);
                }
                i += 1;
            }
            let next = (i < plan.fixed.len()).then(|| i.to_string());
            return Ok((out, next));
        }
        match container_of_stage(stage) {
            Some(Container::People) => self.people(after, want).await,
            Some(Container::Groups) => self.groups(after, want).await,
            Some(Container::Departments) => self.departments(after, want).await,
            _ => Ok((Vec::new(), None)),
        }
    }

    /// The entry a target names, if it exists and is shown.
    pub async fn fixed_entry(&self, target: &Target) -> Result<Option<Entry>, StoreError> {
        let pool = &self.tree.pool_id;
        Ok(match target {
            // The pool's name is read only for the one entry that shows it.
            Target::Base => match self.store.get_pool(pool).await? {
                Some(p) => Some(self.tree.base_entry(&p.name)),
                None => None,
            },
            Target::Container(c) => Some(self.tree.container_entry(*c)),
            Target::Entry(Container::People, login) => {
                self.person_by_login(login).await?.map(|(_, e)| e)
            }
            Target::Entry(Container::Groups, id) => {
                match self.store.get_group(pool, &GroupId(id.clone())).await? {
                    Some(g) => self.group_entries(&[g]).await?.pop(),
                    None => None,
                }
            }
            Target::Entry(Container::Departments, id) => {
                match self
                    .store
                    .get_department(pool, &DepartmentId(id.clone()))
                    .await?
                {
                    Some(d) => self.department_entries(&[d]).await?.pop(),
                    None => None,
                }
            }
            Target::Entry(Container::Services, _) => None,
        })
    }

    /// The person whose `uid` is `login` (as normalised: lower case), if one is shown: its
    /// id and entry.
    pub async fn person_by_login(
        &self,
        login: &str,
    ) -> Result<Option<(UserId, Entry)>, StoreError> {
        let found = self
            .store
            .users_by_keys(
                &self.tree.pool_id,
                self.tree.login,
                &[Key::Login(login.to_owned())],
                None,
                CANDIDATES_MAX,
            )
            .await?;
        let entries = self
            .people_entries(&found.users, Some(named_logins(found.logins)))
            .await?;
        Ok(entries.into_iter().find_map(|(id, e)| {
            e.values("uid")
                .is_some_and(|v| v.iter().any(|u| u.to_lowercase() == login))
                .then_some((id, e))
        }))
    }

    /// The logins (`uid`) of the shown users among `ids`: each one's held login, else its
    /// orgsync id. Users not shown (not active, deleted, unknown) are absent: no entry names
    /// them. One round trip per chunk of ids.
    async fn shown_logins(&self, ids: &[UserId]) -> Result<HashMap<UserId, String>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let shown = self
            .store
            .shown_user_logins(&self.tree.pool_id, self.tree.login, ids)
            .await?;
        Ok(named_logins(shown))
    }

    /// The entries of the users that are shown (active ones), with their ids, naming only
    /// people who are shown too: a manager who left is no `manager`.
    /// `logins`: those of the people and their managers when the caller read them already
    /// (the shown ones, as [`Search::shown_logins`] gives them).
    async fn people_entries(
        &self,
        users: &[User],
        logins: Option<HashMap<UserId, String>>,
    ) -> Result<Vec<(UserId, Entry)>, StoreError> {
        let shown: Vec<&User> = users
            .iter()
            .filter(|u| u.status == UserStatus::Active && u.deleted_at.is_none())
            .collect();
        if shown.is_empty() {
            return Ok(Vec::new());
        }
        // One look-up names the people and those of their managers who are shown.
        let own: Vec<UserId> = shown.iter().map(|u| u.id.clone()).collect();
        let logins = match logins {
            Some(known) => known,
            None => {
                let mut named = own.clone();
                named.extend(shown.iter().filter_map(|u| u.manager_id.clone()));
                self.shown_logins(&named).await?
            }
        };
        let memberships = if self.modified {
            self.store
                .membership_times(&self.tree.pool_id, &own)
                .await?
        } else {
            HashMap::new()
        };
        let posix = self.posix_of_people(&shown).await?;
        // Their departments and those above (kept by the listener): `ou`, and `memberOf`
        // by subtree.
        let departments = self
            .departments
            .with_ancestors(
                self.store.as_ref(),
                &self.tree.pool_id,
                shown
                    .iter()
                    .flat_map(|u| u.departments.iter().map(|m| m.department_id.clone()))
                    .collect(),
            )
            .await?;
        let mut out = Vec::with_capacity(shown.len());
        for user in shown {
            let member_of = if self.member_of {
                self.member_of(user, &departments).await?
            } else {
                Vec::new()
            };
            let ou = primary_department(user)
                .and_then(|d| departments.get(d))
                .and_then(|n| n.name.as_deref());
            // Absent: no longer shown since it was read.
            let Some(login) = logins.get(&user.id).map(String::as_str) else {
                continue;
            };
            let manager = user
                .manager_id
                .as_ref()
                .and_then(|m| logins.get(m))
                .map(|l| l.as_str());
            let Some(mut entry) = self.tree.person(
                user,
                login,
                member_of,
                manager,
                ou,
                memberships.get(&user.id).copied(),
            ) else {
                continue;
            };
            if let (Some(base), Some((n, group))) = (self.tree.posix, posix.get(&user.id)) {
                self.tree.posix_person(&mut entry, base, *n, *group);
            }
            out.push((user.id.clone(), entry));
        }
        Ok(out)
    }

    /// The entries of live groups, listing only the members who are shown (one query for
    /// the users of the whole page).
    async fn group_entries(&self, groups: &[Group]) -> Result<Vec<Entry>, StoreError> {
        let users: Vec<UserId> = groups
            .iter()
            .flat_map(|g| g.members.iter())
            .filter_map(|m| match m {
                GroupMember::User(u) => Some(u.clone()),
                GroupMember::Department(_) => None,
            })
            .collect();
        let shown = self.shown_logins(&users).await?;
        let numbers = self
            .posix_numbers(
                ObjectKind::Group,
                groups.iter().map(|g| g.id.0.clone()).collect(),
            )
            .await?;
        Ok(groups
            .iter()
            .filter_map(|g| {
                let mut e = self.tree.group(g, &shown)?;
                if let (Some(base), Some(n)) = (self.tree.posix, numbers.get(g.id.as_str())) {
                    let uids = g
                        .members
                        .iter()
                        .filter_map(|m| match m {
                            GroupMember::User(u) => shown.get(u).cloned(),
                            GroupMember::Department(_) => None,
                        })
                        .collect();
                    self.tree.posix_group(&mut e, base, *n, uids);
                }
                Some(e)
            })
            .collect())
    }

    /// The entries of live departments.
    async fn department_entries(
        &self,
        departments: &[Department],
    ) -> Result<Vec<Entry>, StoreError> {
        let numbers = self
            .posix_numbers(
                ObjectKind::Department,
                departments.iter().map(|d| d.id.0.clone()).collect(),
            )
            .await?;
        let tree = self
            .departments
            .with_ancestors(
                self.store.as_ref(),
                &self.tree.pool_id,
                departments.iter().map(|d| d.id.clone()).collect(),
            )
            .await?;
        // Their shown members, as the pool counts them, when the search wants them.
        let (members, logins) = if self.members {
            let scope = member_scope(self.tree.department_scope);
            let ids: Vec<DepartmentId> = departments.iter().map(|d| d.id.clone()).collect();
            let members = self
                .store
                .shown_department_members(&self.tree.pool_id, &ids, scope)
                .await?;
            let mut people: Vec<UserId> = members.values().flatten().cloned().collect();
            people.sort();
            people.dedup();
            let logins = self.shown_logins(&people).await?;
            (members, logins)
        } else {
            (HashMap::new(), HashMap::new())
        };
        Ok(departments
            .iter()
            .filter_map(|d| {
                let path = departments::path(&tree, &d.id);
                let uids: Vec<String> = members
                    .get(&d.id)
                    .into_iter()
                    .flatten()
                    .filter_map(|u| logins.get(u).cloned())
                    .collect();
                let dns = uids.iter().map(|l| self.tree.person_dn(l)).collect();
                let mut e = self.tree.department(d, path.as_deref(), dns)?;
                if let (Some(base), Some(n)) = (self.tree.posix, numbers.get(d.id.as_str())) {
                    self.tree.posix_group(&mut e, base, *n, uids);
                }
                Some(e)
            })
            .collect())
    }

    /// POSIX numbers of some objects, when the pool shows POSIX attributes (one statement).
    async fn posix_numbers(
        &self,
        kind: ObjectKind,
        ids: Vec<String>,
    ) -> Result<HashMap<String, i64>, StoreError> {
        if self.tree.posix.is_none() || ids.is_empty() {
            return Ok(HashMap::new());
        }
        self.store.posix_ids(&self.tree.pool_id, kind, &ids).await
    }

    /// Each shown person's POSIX number and its primary department's (two statements).
    async fn posix_of_people(
        &self,
        people: &[&User],
    ) -> Result<HashMap<UserId, (i64, Option<i64>)>, StoreError> {
        if self.tree.posix.is_none() || people.is_empty() {
            return Ok(HashMap::new());
        }
        let own = self
            .posix_numbers(
                ObjectKind::User,
                people.iter().map(|u| u.id.0.clone()).collect(),
            )
            .await?;
        let primary = |u: &User| primary_department(u).map(|d| d.0.clone());
        let groups = self
            .posix_numbers(
                ObjectKind::Department,
                people.iter().filter_map(|u| primary(u)).collect(),
            )
            .await?;
        Ok(people
            .iter()
            .filter_map(|u| {
                let n = *own.get(u.id.as_str())?;
                let group = primary(u).and_then(|d| groups.get(&d).copied());
                Some((u.id.clone(), (n, group)))
            })
            .collect())
    }

    /// A user's groups (those that list it) and departments (with their ancestors when the
    /// pool counts members by subtree).
    async fn member_of(
        &self,
        user: &User,
        tree: &departments::Tree,
    ) -> Result<Vec<Dn>, StoreError> {
        let pool = &self.tree.pool_id;
        let mut out = Vec::new();
        let groups = self
            .store
            .group_summaries_of_member(pool, &GroupMember::User(user.id.clone()))
            .await?;
        out.extend(
            groups
                .iter()
                .filter(|g| g.deleted_at.is_none())
                .map(|g| self.tree.group_dn(g.id.as_str())),
        );
        let mut departments: Vec<String> = Vec::new();
        for m in &user.departments {
            match self.tree.department_scope {
                DepartmentScope::Direct => departments.push(m.department_id.0.clone()),
                DepartmentScope::Subtree => {
                    let above = departments::ancestors(tree, &m.department_id);
                    departments.extend(above.into_iter().map(|d| d.0));
                    departments.push(m.department_id.0.clone());
                }
            }
        }
        departments.sort();
        departments.dedup();
        out.extend(departments.iter().map(|d| self.tree.department_dn(d)));
        Ok(out)
    }

    async fn people(
        &self,
        after: Option<&str>,
        want: usize,
    ) -> Result<(Vec<Entry>, Option<String>), StoreError> {
        let pool = &self.tree.pool_id;
        match people_hint(self.filter, self.tree) {
            Hint::Keys(keys) => {
                // A few named users: read them, in id order, after the last one sent.
                let after = after.map(|a| UserId(a.to_owned()));
                // With their logins and their managers', in the same statement.
                let found = self
                    .store
                    .users_by_keys(
                        pool,
                        self.tree.login,
                        &keys,
                        after.as_ref(),
                        want as u64 + 1,
                    )
                    .await?;
                let mut users = found.users;
                let more = users.len() > want;
                users.truncate(want);
                let next = more.then(|| users.last().map(|u| u.id.0.clone())).flatten();
                let entries = self
                    .people_entries(&users, Some(named_logins(found.logins)))
                    .await?;
                Ok((entries_only(entries), next))
            }
            Hint::Department(id) => {
                let query = UserQuery {
                    department_id: Some(DepartmentId(id)),
                    scope: member_scope(self.tree.department_scope),
                    status: Some(UserStatus::Active),
                    ..Default::default()
                };
                self.users_page(&query, after, want).await
            }
            Hint::Group(id) => {
                let page = key_page(after, want);
                let Some(members) = self
                    .store
                    .group_members_page(pool, &GroupId(id), &page)
                    .await?
                else {
                    return Ok((Vec::new(), None));
                };
                let ids: Vec<UserId> = members
                    .items
                    .iter()
                    .filter_map(|m| match m {
                        GroupMember::User(u) => Some(u.clone()),
                        GroupMember::Department(_) => None,
                    })
                    .collect();
                let users = self.store.get_users(pool, &ids).await?;
                Ok((
                    entries_only(self.people_entries(&users, None).await?),
                    members.next,
                ))
            }
            Hint::Nothing => Ok((Vec::new(), None)),
            Hint::Walk => {
                let query = UserQuery {
                    status: Some(UserStatus::Active),
                    ..Default::default()
                };
                self.users_page(&query, after, want).await
            }
        }
    }

    async fn users_page(
        &self,
        query: &UserQuery,
        after: Option<&str>,
        want: usize,
    ) -> Result<(Vec<Entry>, Option<String>), StoreError> {
        let page = key_page(after, want);
        let users = self
            .store
            .list_users(&self.tree.pool_id, query, &page)
            .await?;
        Ok((
            entries_only(self.people_entries(&users.items, None).await?),
            users.next,
        ))
    }

    /// The one entry a `cn=<id>` in the filter names, when it names one (ids are lower case,
    /// like every RDN value once normalised).
    async fn named(
        &self,
        c: Container,
        after: Option<&str>,
    ) -> Result<Option<(Vec<Entry>, Option<String>)>, StoreError> {
        let Some(id) = rdn_hint(self.filter, "cn") else {
            return Ok(None);
        };
        if after.is_some() {
            return Ok(Some((Vec::new(), None)));
        }
        let entry = self
            .fixed_entry(&Target::Entry(c, id.to_lowercase()))
            .await?;
        Ok(Some((entry.into_iter().collect(), None)))
    }

    async fn groups(
        &self,
        after: Option<&str>,
        want: usize,
    ) -> Result<(Vec<Entry>, Option<String>), StoreError> {
        if let Some(found) = self.named(Container::Groups, after).await? {
            return Ok(found);
        }
        let pool = &self.tree.pool_id;
        let page = key_page(after, want);
        let listed = self.store.list_groups(pool, &page).await?;
        let ids: Vec<GroupId> = listed.items.iter().map(|g| g.group.id.clone()).collect();
        let groups = self.store.get_groups(pool, &ids).await?;
        Ok((self.group_entries(&groups).await?, listed.next))
    }

    async fn departments(
        &self,
        after: Option<&str>,
        want: usize,
    ) -> Result<(Vec<Entry>, Option<String>), StoreError> {
        if let Some(found) = self.named(Container::Departments, after).await? {
            return Ok(found);
        }
        let pool = &self.tree.pool_id;
        // With their member lists, a few at a time: a top department lists a large part of
        // the company, and a store page of them is held at once.
        let want = if self.members {
            want.min(MEMBER_LIST_PAGE)
        } else {
            want
        };
        let page = key_page(after, want);
        let listed = self.store.departments_page(pool, &page).await?;
        Ok((self.department_entries(&listed.items).await?, listed.next))
    }
}

fn entries_only(people: Vec<(UserId, Entry)>) -> Vec<Entry> {
    people.into_iter().map(|(_, e)| e).collect()
}

/// Each shown user's login: the one it holds, else its orgsync id.
fn named_logins(shown: HashMap<UserId, Option<String>>) -> HashMap<UserId, String> {
    shown
        .into_iter()
        .map(|(id, login)| {
            let login = login.unwrap_or_else(|| id.0.clone());
            (id, login)
        })
        .collect()
}

/// How the store counts a department's members under the pool's rule.
fn member_scope(scope: DepartmentScope) -> MemberScope {
    match scope {
        DepartmentScope::Subtree => MemberScope::Subtree,
        DepartmentScope::Direct => MemberScope::Direct,
    }
}

/// A person's primary department: the one marked so, else its first.
fn primary_department(user: &User) -> Option<&DepartmentId> {
    user.departments
        .iter()
        .find(|m| m.primary)
        .or(user.departments.first())
        .map(|m| &m.department_id)
}

/// The store page after `after` of at most `want` items.
fn key_page(after: Option<&str>, want: usize) -> KeyPage {
    KeyPage {
        after: after.map(str::to_owned),
        limit: want as u64,
    }
}

/// The most candidates a bind's login yields (a login shared by more users than this is held
/// by one of the first).
const CANDIDATES_MAX: u64 = 100;

/// Where a people search finds its candidates.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Hint {
    /// Users named by login or address.
    Keys(Vec<Key>),
    /// Members of a department (as the pool counts them).
    Department(String),
    /// Users a group lists.
    Group(String),
    /// The filter cannot match anyone (e.g. a `memberOf` outside this tree).
    Nothing,
    /// Every active user.
    Walk,
}

/// The narrowest candidate set the filter implies: a conjunct that names users by login,
/// address or a `memberOf`, or a disjunction whose every branch names users by login or
/// address (Gitea's `(|(uid=x)(mail=x))`).
fn people_hint(f: &LdapFilter, tree: &PoolTree) -> Hint {
    match f {
        LdapFilter::Equality(attr, value) if is_attr(attr, "uid") => {
            Hint::Keys(vec![Key::Login(value.trim().to_lowercase())])
        }
        LdapFilter::Equality(attr, value) if is_attr(attr, "mail") => {
            Hint::Keys(vec![Key::Mail(value.trim().to_owned())])
        }
        LdapFilter::Equality(attr, value) if is_attr(attr, "memberOf") => {
            let Ok(dn) = Dn::parse(value) else {
                return Hint::Nothing;
            };
            match tree.locate(&dn) {
                Some(Target::Entry(Container::Departments, id)) => Hint::Department(id),
                Some(Target::Entry(Container::Groups, id)) => Hint::Group(id),
                _ => Hint::Nothing,
            }
        }
        LdapFilter::And(parts) => {
            let hints: Vec<Hint> = parts.iter().map(|p| people_hint(p, tree)).collect();
            if hints.contains(&Hint::Nothing) {
                return Hint::Nothing;
            }
            // Logins first (fewest candidates), then a membership.
            hints
                .iter()
                .find(|h| matches!(h, Hint::Keys(_)))
                .or_else(|| hints.iter().find(|h| !matches!(h, Hint::Walk)))
                .cloned()
                .unwrap_or(Hint::Walk)
        }
        LdapFilter::Or(parts) if !parts.is_empty() => {
            let mut keys = Vec::new();
            for p in parts {
                match people_hint(p, tree) {
                    Hint::Keys(more) => keys.extend(more),
                    Hint::Nothing => {}
                    _ => return Hint::Walk,
                }
            }
            if keys.is_empty() {
                Hint::Nothing
            } else {
                Hint::Keys(keys)
            }
        }
        _ => Hint::Walk,
    }
}

/// Whether a filter's attribute name (any case, or the OID) is `canonical`.
fn is_attr(name: &str, canonical: &str) -> bool {
    schema::canonical(name) == Some(canonical)
}

/// The value of an equality on `attr` that the filter requires (alone or in an `&`).
fn rdn_hint(f: &LdapFilter, attr: &str) -> Option<String> {
    match f {
        LdapFilter::Equality(a, v) if a.eq_ignore_ascii_case(attr) => Some(v.trim().to_owned()),
        LdapFilter::And(parts) => parts.iter().find_map(|p| rdn_hint(p, attr)),
        _ => None,
    }
}

/// The attributes (lower case) the entries of a container can carry, and their object
/// classes: what [`can_match`] judges a filter by.
pub(crate) fn carried(c: Container) -> (&'static [&'static str], &'static [&'static str]) {
    const COMMON: [&str; 6] = [
        "objectclass",
        "entryuuid",
        "entrydn",
        "createtimestamp",
        "modifytimestamp",
        "hassubordinates",
    ];
    const PEOPLE: [&str; 27] = [
        COMMON[0],
        COMMON[1],
        COMMON[2],
        COMMON[3],
        COMMON[4],
        COMMON[5],
        "uid",
        "cn",
        "sn",
        "displayname",
        "mail",
        "title",
        "employeenumber",
        "employeetype",
        "ou",
        "departmentnumber",
        "manager",
        "labeleduri",
        "l",
        "c",
        "physicaldeliveryofficename",
        "memberof",
        "uidnumber",
        "gidnumber",
        "homedirectory",
        "loginshell",
        "gecos",
    ];
    const GROUPS: [&str; 14] = [
        COMMON[0],
        COMMON[1],
        COMMON[2],
        COMMON[3],
        COMMON[4],
        COMMON[5],
        "cn",
        "displayname",
        "description",
        "member",
        "uniquemember",
        "ou",
        "gidnumber",
        "memberuid",
    ];
    const DEPARTMENTS: [&str; 15] = [
        COMMON[0],
        COMMON[1],
        COMMON[2],
        COMMON[3],
        COMMON[4],
        COMMON[5],
        "cn",
        "displayname",
        "ou",
        "description",
        "member",
        "uniquemember",
        "memberof",
        "gidnumber",
        "memberuid",
    ];
    match c {
        Container::People => (
            &PEOPLE,
            &[
                "top",
                "person",
                "organizationalperson",
                "inetorgperson",
                "posixaccount",
            ],
        ),
        Container::Groups => (
            &GROUPS,
            &["top", "groupofnames", "groupofuniquenames", "posixgroup"],
        ),
        Container::Departments => (
            &DEPARTMENTS,
            &["top", "groupofnames", "groupofuniquenames", "posixgroup"],
        ),
        Container::Services => (&[], &[]),
    }
}

/// Whether the filter could match an entry of the container: `false` when it requires an
/// attribute the container's entries never carry, or an object class they do not have (a
/// `(uid=x)` from the base never walks the groups and departments). Never `false` for a
/// filter that could match; `!` is not looked into.
pub fn can_match(f: &LdapFilter, c: Container) -> bool {
    let (attrs, classes) = carried(c);
    can_match_carried(f, attrs, classes)
}

/// What the pool's base entry carries, and its object classes.
pub(crate) const BASE_CARRIES: (&[&str], &[&str]) = (
    &["objectclass", "o", "description", "hassubordinates"],
    &["top", "organization", "extensibleobject"],
);
/// What a container's entry (`ou=people`, …) carries, and its object classes.
pub(crate) const CONTAINER_CARRIES: (&[&str], &[&str]) = (
    &["objectclass", "ou", "hassubordinates"],
    &["top", "organizationalunit"],
);

/// Whether a fixed entry could match the filter: `(uid=x)` from the base reads neither the
/// pool (for the base entry) nor builds the containers.
fn fixed_can_match(f: &LdapFilter, target: &Target) -> bool {
    match target {
        Target::Base => can_match_carried(f, BASE_CARRIES.0, BASE_CARRIES.1),
        Target::Container(_) => can_match_carried(f, CONTAINER_CARRIES.0, CONTAINER_CARRIES.1),
        Target::Entry(c, _) => can_match(f, *c),
    }
}

fn can_match_carried(f: &LdapFilter, attrs: &[&str], classes: &[&str]) -> bool {
    let carries = |a: &str| {
        let a = schema::canonical(a).map(str::to_ascii_lowercase);
        a.is_some_and(|a| attrs.contains(&a.as_str()))
    };
    match f {
        LdapFilter::And(ps) => ps.iter().all(|p| can_match_carried(p, attrs, classes)),
        LdapFilter::Or(ps) => ps.iter().any(|p| can_match_carried(p, attrs, classes)),
        LdapFilter::Not(_) => true,
        LdapFilter::Equality(a, v) | LdapFilter::Approx(a, v)
            if a.eq_ignore_ascii_case("objectClass") =>
        {
            classes.contains(&v.trim().to_ascii_lowercase().as_str())
        }
        LdapFilter::Equality(a, _)
        | LdapFilter::Approx(a, _)
        | LdapFilter::GreaterOrEqual(a, _)
        | LdapFilter::LessOrEqual(a, _)
        | LdapFilter::Present(a)
        | LdapFilter::Substring(a, _) => carries(a),
        LdapFilter::Extensible(_) => false,
    }
}

/// Whether the filter names an attribute (so entries must carry it to be judged).
pub fn mentions(f: &LdapFilter, attr: &str) -> bool {
    match f {
        LdapFilter::And(ps) | LdapFilter::Or(ps) => ps.iter().any(|p| mentions(p, attr)),
        LdapFilter::Not(p) => mentions(p, attr),
        LdapFilter::Equality(a, _)
        | LdapFilter::Approx(a, _)
        | LdapFilter::GreaterOrEqual(a, _)
        | LdapFilter::LessOrEqual(a, _)
        | LdapFilter::Present(a)
        | LdapFilter::Substring(a, _) => {
            a.eq_ignore_ascii_case(attr) || schema::canonical(a) == Some(attr)
        }
        LdapFilter::Extensible(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use directory::ids::PoolId;

    fn tree() -> PoolTree {
        PoolTree::new(
            PoolId("p1".into()),
            Dn::parse("dc=example,dc=com").unwrap(),
            DepartmentScope::Subtree,
        )
    }

    fn eq(a: &str, v: &str) -> LdapFilter {
        LdapFilter::Equality(a.into(), v.into())
    }

    #[test]
    fn hints_pick_the_narrowest_index() {
        let t = tree();
        let login = |v: &str| Key::Login(v.into());
        assert_eq!(
            people_hint(&eq("UID", "Ab"), &t),
            Hint::Keys(vec![login("ab")])
        );
        // By the attribute's OID too.
        assert_eq!(
            people_hint(&eq("0.9.2342.19200300.100.1.1", "x"), &t),
            Hint::Keys(vec![login("x")])
        );
        let gitea = LdapFilter::And(vec![
            eq("objectClass", "person"),
            LdapFilter::Or(vec![eq("uid", "A"), eq("mail", "A@x.com")]),
        ]);
        assert_eq!(
            people_hint(&gitea, &t),
            Hint::Keys(vec![login("a"), Key::Mail("A@x.com".into())])
        );
        let title = LdapFilter::Or(vec![eq("uid", "a"), eq("title", "a")]);
        assert_eq!(people_hint(&title, &t), Hint::Walk);
        let gitlab = LdapFilter::And(vec![
            eq("objectclass", "person"),
            eq("memberOf", "cn=g1,ou=Groups,dc=example,dc=com"),
        ]);
        assert_eq!(people_hint(&gitlab, &t), Hint::Group("g1".into()));
        let grafana = LdapFilter::And(vec![
            eq("memberOf", "cn=d1,ou=departments,dc=example,dc=com"),
            eq("uid", "u1"),
        ]);
        assert_eq!(people_hint(&grafana, &t), Hint::Keys(vec![login("u1")]));
        let elsewhere = LdapFilter::And(vec![eq("memberOf", "cn=g1,ou=groups,dc=other")]);
        assert_eq!(people_hint(&elsewhere, &t), Hint::Nothing);
        let either = LdapFilter::Or(vec![eq("uid", "a"), eq("uid", "b")]);
        assert_eq!(
            people_hint(&either, &t),
            Hint::Keys(vec![login("a"), login("b")])
        );
        assert_eq!(
            people_hint(&LdapFilter::Present("objectClass".into()), &t),
            Hint::Walk
        );
    }

    #[test]
    fn containers_that_cannot_match_are_not_walked() {
        let f = |s: &str| ldap3_proto::parse_ldap_filter_str(s).unwrap();
        let c = |s: &str| {
            [Container::People, Container::Groups, Container::Departments]
                .into_iter()
                .filter(|c| can_match(&f(s), *c))
                .collect::<Vec<_>>()
        };
        use Container::{Departments as D, Groups as G, People as P};
        assert_eq!(c("(uid=a)"), [P]);
        assert_eq!(c("(&(objectClass=person)(cn=x))"), [P]);
        assert_eq!(c("(objectClass=groupOfNames)"), [G, D]);
        assert_eq!(c("(OBJECTCLASS=GroupOfUniqueNames)"), [G, D]);
        assert_eq!(c("(objectClass=*)"), [P, G, D]);
        assert_eq!(c("(|(uid=a)(member=*))"), [P, G, D]);
        assert_eq!(c("(description=x)"), [G, D]);
        assert_eq!(c("(title=x)"), [P]);
        assert_eq!(c("(!(uid=a))"), [P, G, D]);
        assert_eq!(c("(fooBar=1)"), Vec::<Container>::new());
        assert_eq!(
            c("(|(createTimestamp>=20260101000000Z)(modifyTimestamp>=20260101000000Z))"),
            [P, G, D]
        );
    }

    #[test]
    fn plans_follow_base_and_scope() {
        use LdapSearchScope as S;
        let p = plan(&Target::Base, &S::Subtree);
        assert_eq!(p.fixed.len(), 5);
        assert_eq!(p.containers.len(), 3);
        let p = plan(&Target::Container(Container::People), &S::OneLevel);
        assert!(p.fixed.is_empty());
        assert_eq!(p.containers, [Container::People]);
        let p = plan(&Target::Container(Container::Services), &S::Subtree);
        assert!(p.containers.is_empty());
        let p = plan(&Target::Entry(Container::People, "u".into()), &S::OneLevel);
        assert!(p.fixed.is_empty() && p.containers.is_empty());
    }
}
