//! One full pull of a connection's contact scope into a [`Snapshot`] (protocol §3.4): works
//! for the all-members and the partial scope, pages everything, always with explicit id types,
//! includes the root's own members, and looks up every user the store knew that the pull did
//! not list (resigned users are never listed). A failed page makes its part incomplete — the
//! planner then deletes nothing of that kind — instead of failing the whole job.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use feishu::client::{BATCH_LIMIT, FeishuClient, FeishuError};
use feishu::ids::{GroupType, MemberIdType, MemberType};
use feishu::model::{Department, User};
use futures::{StreamExt, TryStreamExt};

use crate::model::JobProgress;
use crate::snapshot::{
    Completeness, LeaverCheck, ROOT, ScopeKind, Snapshot, SnapshotGroup, SnapshotUser,
};

/// A group's (user open_ids, department od- ids), or why they could not be read.
type MembersResult = Result<(BTreeSet<String>, BTreeSet<String>), FeishuError>;

/// Receives live progress (called after every page).
pub type ProgressSink = Arc<dyn Fn(&JobProgress) + Send + Sync>;

/// What a pull passes on while it runs, so that its users can be applied before it ends
/// (`engine/ahead.rs`). Sent only when the departments were read completely.
#[derive(Debug)]
pub enum Pulled {
    /// Every department of the scope, once, before any user.
    Departments {
        scope: ScopeKind,
        departments: BTreeMap<String, Department>,
    },
    /// Users listed for the first time that state their departments (`department_ids`),
    /// handed on: the pull keeps only their open ids (`Snapshot::handed_on`).
    Users(Vec<User>),
}

/// Where a pull sends [`Pulled`] news. Bounded: a pull waits for its reader rather than
/// holding a second copy of the users.
pub type PulledSender = tokio::sync::mpsc::Sender<Pulled>;

#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Departments (and users, groups) read concurrently; pacing still applies per endpoint.
    pub concurrency: usize,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self { concurrency: 4 }
    }
}

/// Why a pull could not start or had nothing usable: the job fails with this error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Feishu(#[from] FeishuError),
    #[error(
        "failed to get Feishu organization departments: the app's contact scope does not cover the root department and lists no departments or users. In the Feishu developer console set the app's availability to all employees and its contact scope to all members (or pick the departments to sync), then publish a new version and have it approved"
    )]
    EmptyScope,
}

impl FetchError {
    /// The Feishu code behind the error, if any.
    pub fn code(&self) -> Option<i64> {
        match self {
            Self::Feishu(e) => e.code(),
            Self::EmptyScope => Some(40004),
        }
    }
}

struct Progress {
    state: Mutex<JobProgress>,
    sink: ProgressSink,
}

impl Progress {
    fn update(&self, f: impl FnOnce(&mut JobProgress)) {
        let snapshot = {
            let mut p = self.state.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut p);
            p.clone()
        };
        (self.sink)(&snapshot);
    }
}

/// Pulls a snapshot. `known_users` are the open_ids the store holds as live users of this
/// connection: those the pull does not list are looked up, 50 at a time (leaver detection).
pub async fn fetch_snapshot(
    client: &FeishuClient,
    known_users: &BTreeSet<String>,
    options: &FetchOptions,
    sink: ProgressSink,
    news: Option<PulledSender>,
) -> Result<Snapshot, FetchError> {
    let progress = Progress {
        state: Mutex::new(JobProgress::default()),
        sink,
    };
    let concurrency = options.concurrency.max(1);

    // Credentials first: a bad App Secret must fail fast with its own message.
    progress.update(|p| p.phase = "scopes".into());
    client.tenant_token().await?;
    let scopes = client.scopes().await?;
    progress.update(|p| p.pages += 1);

    // Probe the root: success means the all-members scope.
    let probe = client
        .department_children_pages(ROOT, false)
        .next()
        .await
        .transpose();
    let scope = match probe {
        Ok(_) => ScopeKind::All,
        Err(FeishuError::RootDepartmentOutOfScope { .. }) => ScopeKind::Partial,
        Err(e) => return Err(e.into()),
    };
    if scope == ScopeKind::Partial
        && scopes.department_ids.is_empty()
        && scopes.user_ids.is_empty()
        && scopes.group_ids.is_empty()
    {
        return Err(FetchError::EmptyScope);
    }

    let mut snapshot = Snapshot::empty(scope);
    let mut complete = Completeness::FULL;

    // Departments.
    progress.update(|p| p.phase = "departments".into());
    let seeds: Vec<String> = match scope {
        ScopeKind::All => vec![ROOT.to_owned()],
        ScopeKind::Partial => scopes.department_ids.clone(),
    };
    for seed in &seeds {
        if seed != ROOT {
            match client.department(seed).await {
                Ok(d) => insert_department(&mut snapshot, d),
                Err(e) => {
                    complete.departments = false;
                    snapshot.errors.push(format!("department {seed}: {e}"));
                    continue;
                }
            }
        }
        match descendants(client, seed, &progress).await {
            Ok(list) => {
                for d in list {
                    insert_department(&mut snapshot, d);
                }
            }
            Err(e) => {
                complete.departments = false;
                snapshot
                    .errors
                    .push(format!("children of department {seed}: {e}"));
            }
        }
    }
    progress.update(|p| p.departments = snapshot.departments.len() as u64);
    // Users are applied ahead only against a complete department tree.
    let news = news.filter(|_| complete.departments);
    if let Some(news) = &news {
        let departments = Pulled::Departments {
            scope,
            departments: snapshot.departments.clone(),
        };
        // A reader that went away only means nothing is applied ahead.
        let _ = news.send(departments).await;
    }

    // Users (then leavers) and groups are read side by side: they are paced on different
    // endpoints, so the groups stay off the users' critical path.
    let mut listing = parents_first(&snapshot.departments);
    if scope == ScopeKind::All {
        listing.insert(0, ROOT.to_owned());
    }
    let (users, groups) = futures::join!(
        fetch_users(
            client,
            listing,
            &scopes.user_ids,
            known_users,
            &progress,
            concurrency,
            news,
        ),
        fetch_groups(client, &scopes.group_ids, &progress, concurrency),
    );
    snapshot.users = users.users;
    snapshot.handed_on = users.handed_on;
    snapshot.leavers = users.leavers;
    complete.users = users.complete;
    snapshot.errors.extend(users.errors);
    snapshot.groups = groups.groups;
    complete.groups = groups.complete;
    snapshot.errors.extend(groups.errors);

    snapshot.completeness = complete;
    Ok(snapshot)
}

/// The users part of a pull: the listed users, the look-ups of the unlisted known ones, and
/// whether every read succeeded.
struct UsersPart {
    users: BTreeMap<String, SnapshotUser>,
    handed_on: BTreeSet<String>,
    leavers: BTreeMap<String, LeaverCheck>,
    complete: bool,
    errors: Vec<String>,
}

impl UsersPart {
    /// Whether the listing had the user: kept here, or handed on.
    fn lists(&self, open_id: &str) -> bool {
        self.users.contains_key(open_id) || self.handed_on.contains(open_id)
    }
}

/// Lists the direct members of every department in `listing` (the root's own too), reads the
/// users picked directly in the scope that no listing contained, then looks up every known
/// user the pull did not list (leaver detection).
async fn fetch_users(
    client: &FeishuClient,
    listing: Vec<String>,
    picked: &[String],
    known_users: &BTreeSet<String>,
    progress: &Progress,
    concurrency: usize,
    news: Option<PulledSender>,
) -> UsersPart {
    progress.update(|p| p.phase = "users".into());
    let mut part = UsersPart {
        users: BTreeMap::new(),
        handed_on: BTreeSet::new(),
        leavers: BTreeMap::new(),
        complete: true,
        errors: Vec::new(),
    };
    // Each department's members go into the snapshot as they arrive, or on to be applied
    // ahead: no second copy of the users is held while the listing runs.
    let mut news = news;
    let mut results = futures::stream::iter(listing)
        .map(|dept| async move {
            let result = client
                .users_by_department_pages(&dept)
                .map_ok(|page| {
                    progress.update(|p| {
                        p.pages += 1;
                        p.users += page.items.len() as u64;
                    });
                    page.items
                })
                .try_concat()
                .await;
            (dept, result)
        })
        .buffered(concurrency);
    while let Some((dept, result)) = results.next().await {
        match result {
            Ok(users) => {
                let mut kept = Vec::new();
                let mut on = Vec::new();
                for user in users {
                    match user.open_id.as_deref() {
                        // The first listing's object is the one kept: a later listing of a
                        // user handed on adds nothing (its `department_ids` say where it is).
                        Some(id) if part.handed_on.contains(id) => {}
                        Some(id)
                            if news.is_some()
                                && user.department_ids.is_some()
                                && !part.users.contains_key(id) =>
                        {
                            part.handed_on.insert(id.to_owned());
                            on.push(user);
                        }
                        _ => kept.push(user),
                    }
                }
                if let Some(tx) = news.as_ref().filter(|_| !on.is_empty())
                    && let Err(tokio::sync::mpsc::error::SendError(back)) =
                        tx.send(Pulled::Users(on)).await
                {
                    // The reader went away: nothing more is applied ahead, and what it did
                    // not take stays in the snapshot.
                    news = None;
                    if let Pulled::Users(back) = back {
                        for user in back {
                            if let Some(id) = user.open_id.as_deref() {
                                part.handed_on.remove(id);
                            }
                            kept.push(user);
                        }
                    }
                }
                for user in kept {
                    add_listed_user(&mut part.users, user, &dept);
                }
            }
            Err(e) => {
                part.complete = false;
                part.errors.push(format!("users of department {dept}: {e}"));
            }
        }
    }
    // Users picked directly in a partial scope (or under the root) not listed yet.
    let missing: Vec<String> = picked
        .iter()
        .filter(|id| !part.lists(id))
        .cloned()
        .collect();
    if !missing.is_empty() {
        match client.users_batch(&missing).await {
            Ok(users) => {
                for user in users {
                    let Some(open_id) = user.open_id.clone() else {
                        continue;
                    };
                    if user.is_resigned() == Some(true) {
                        continue;
                    }
                    part.users.insert(
                        open_id,
                        SnapshotUser {
                            user,
                            listed_in: Vec::new(),
                        },
                    );
                }
            }
            Err(e) => {
                part.complete = false;
                part.errors.push(format!("users picked in the scope: {e}"));
            }
        }
    }
    drop(news);
    let listed = (part.users.len() + part.handed_on.len()) as u64;
    progress.update(|p| p.users = listed);

    // Leavers: every user the store knew that the pull did not list is looked up once.
    progress.update(|p| p.phase = "leavers".into());
    let unseen: Vec<String> = known_users
        .iter()
        .filter(|id| !part.lists(id))
        .cloned()
        .collect();
    part.leavers
        .extend(leaver_checks(client, unseen, concurrency).await);
    part
}

/// The groups part of a pull.
struct GroupsPart {
    groups: BTreeMap<String, SnapshotGroup>,
    complete: bool,
    errors: Vec<String>,
}

/// Both kinds of groups, plus those picked in the scope, each with both member types.
async fn fetch_groups(
    client: &FeishuClient,
    picked: &[String],
    progress: &Progress,
    concurrency: usize,
) -> GroupsPart {
    let mut part = GroupsPart {
        groups: BTreeMap::new(),
        complete: true,
        errors: Vec::new(),
    };
    let mut groups = BTreeMap::new();
    for kind in GroupType::ALL {
        match client.groups(kind).try_collect::<Vec<_>>().await {
            Ok(list) => {
                for g in list {
                    if let Some(id) = g.id.clone() {
                        groups.insert(id, g);
                    }
                }
            }
            Err(FeishuError::MissingPermission { .. }) if picked.is_empty() => {
                // No group permission and no group in scope: nothing to mirror, and nothing
                // to delete either.
                part.complete = false;
                part.errors
                    .push("groups: the app lacks contact:group:readonly".into());
                break;
            }
            Err(e) => {
                part.complete = false;
                part.errors.push(format!("groups: {e}"));
            }
        }
    }
    for id in picked {
        if !groups.contains_key(id) {
            match client.group(id).await {
                Ok(g) => {
                    groups.insert(id.clone(), g);
                }
                Err(e) => {
                    part.complete = false;
                    part.errors.push(format!("group {id}: {e}"));
                }
            }
        }
    }
    let members: Vec<(String, feishu::model::Group, MembersResult)> = futures::stream::iter(groups)
        .map(|(id, group)| async move {
            let users = client
                .group_members(&id, MemberType::User, MemberIdType::OpenId)
                .try_collect::<Vec<_>>()
                .await;
            let departments = client
                .group_members(&id, MemberType::Department, MemberIdType::OpenId)
                .try_collect::<Vec<_>>()
                .await;
            let ids = |list: Vec<feishu::model::GroupMember>| -> BTreeSet<String> {
                list.into_iter().filter_map(|m| m.member_id).collect()
            };
            let result = users.and_then(|u| departments.map(|d| (ids(u), ids(d))));
            (id, group, result)
        })
        .buffered(concurrency)
        .collect()
        .await;
    for (id, group, result) in members {
        let entry = match result {
            Ok((users, departments)) => SnapshotGroup {
                group,
                users,
                departments,
                members_complete: true,
            },
            Err(e) => {
                part.complete = false;
                part.errors.push(format!("members of group {id}: {e}"));
                SnapshotGroup {
                    group,
                    users: BTreeSet::new(),
                    departments: BTreeSet::new(),
                    members_complete: false,
                }
            }
        };
        part.groups.insert(id, entry);
    }
    let read = part.groups.len() as u64;
    progress.update(|p| p.groups = read);
    part
}

/// The departments' ids, every parent before its children (a department whose parent is
/// not in the map starts a tree). Users are listed in this order: a manager usually leads a
/// department above their reports, so managers are mostly listed first, and the users
/// applied ahead of the final plan rarely wait for theirs (docs/import-pipeline.md).
fn parents_first(departments: &BTreeMap<String, Department>) -> Vec<String> {
    let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut tops: Vec<&str> = Vec::new();
    for (id, d) in departments {
        match d.parent_department_id.as_deref() {
            Some(parent) if parent != id && departments.contains_key(parent) => {
                children.entry(parent).or_default().push(id);
            }
            _ => tops.push(id),
        }
    }
    let mut out = Vec::with_capacity(departments.len());
    let mut seen: HashSet<&str> = HashSet::with_capacity(departments.len());
    let mut level = tops;
    while !level.is_empty() {
        let mut next = Vec::new();
        for id in level {
            if seen.insert(id) {
                out.push(id.to_owned());
                next.extend(children.get(id).into_iter().flatten().copied());
            }
        }
        level = next;
    }
    // A parent cycle has no top: its departments go last, in id order.
    out.extend(
        departments
            .keys()
            .filter(|id| !seen.contains(id.as_str()))
            .cloned(),
    );
    out
}

fn insert_department(snapshot: &mut Snapshot, d: Department) {
    if let Some(id) = d.open_department_id.clone()
        && !d.is_deleted()
    {
        snapshot.departments.insert(id, d);
    }
}

/// Every descendant of `id`: one recursive listing, or level by level when Feishu refuses
/// recursion for a big department (43010).
async fn descendants(
    client: &FeishuClient,
    id: &str,
    progress: &Progress,
) -> Result<Vec<Department>, FeishuError> {
    let recursive = client
        .department_children_pages(id, true)
        .map_ok(|page| {
            progress.update(|p| p.pages += 1);
            page.items
        })
        .try_concat()
        .await;
    match recursive {
        Err(FeishuError::RecursionRefused { .. }) => {}
        other => return other,
    }
    let mut out = Vec::new();
    let mut queue = std::collections::VecDeque::from([id.to_owned()]);
    let mut seen = HashSet::new();
    while let Some(parent) = queue.pop_front() {
        let children: Vec<Department> = client
            .department_children_pages(&parent, false)
            .map_ok(|page| {
                progress.update(|p| p.pages += 1);
                page.items
            })
            .try_concat()
            .await?;
        for child in children {
            if let Some(child_id) = child.open_department_id.clone()
                && seen.insert(child_id.clone())
            {
                queue.push_back(child_id);
                out.push(child);
            }
        }
    }
    Ok(out)
}

fn add_listed_user(users: &mut BTreeMap<String, SnapshotUser>, user: User, department: &str) {
    let Some(open_id) = user.open_id.clone() else {
        return;
    };
    // The first listing's object is kept (moved, not copied); later ones add where it was
    // listed.
    match users.entry(open_id) {
        std::collections::btree_map::Entry::Vacant(slot) => {
            slot.insert(SnapshotUser {
                user,
                listed_in: vec![department.to_owned()],
            });
        }
        std::collections::btree_map::Entry::Occupied(mut slot) => {
            let listed_in = &mut slot.get_mut().listed_in;
            if !listed_in.iter().any(|d| d == department) {
                listed_in.push(department.to_owned());
            }
        }
    }
}

/// What one `users/batch` call answered.
type BatchAnswer = Result<Vec<User>, FeishuError>;

/// Looks up the users the pull did not list: 50 per `users/batch` call. An id a batch answer
/// leaves out (Feishu drops ids it cannot resolve without saying why) and the ids of a batch
/// call that failed are looked up one by one, which tells out of scope (41050) from other
/// failures.
async fn leaver_checks(
    client: &FeishuClient,
    unseen: Vec<String>,
    concurrency: usize,
) -> Vec<(String, LeaverCheck)> {
    let batches: Vec<Vec<String>> = unseen.chunks(BATCH_LIMIT).map(<[String]>::to_vec).collect();
    let answers: Vec<(Vec<String>, BatchAnswer)> = futures::stream::iter(batches)
        .map(|ids| async move {
            let found = client.users_batch(&ids).await;
            (ids, found)
        })
        .buffered(concurrency)
        .collect()
        .await;
    let mut checks = Vec::with_capacity(unseen.len());
    let mut alone = Vec::new();
    for (ids, found) in answers {
        match found {
            Ok(users) => {
                let mut by_id: HashMap<String, User> = users
                    .into_iter()
                    .filter_map(|u| Some((u.open_id.clone()?, u)))
                    .collect();
                for id in ids {
                    match by_id.remove(&id) {
                        Some(user) => checks.push((id, classify_unlisted(user))),
                        None => alone.push(id),
                    }
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, ids = ids.len(), "batch user look-up failed; looking the users up one by one");
                alone.extend(ids);
            }
        }
    }
    let single: Vec<(String, LeaverCheck)> = futures::stream::iter(alone)
        .map(|open_id| async move {
            let check = match client.user(&open_id).await {
                Ok(user) => classify_unlisted(user),
                Err(FeishuError::UserOutOfScope { .. }) => LeaverCheck::OutOfScope,
                Err(e) => LeaverCheck::Failed {
                    error: e.to_string(),
                },
            };
            (open_id, check)
        })
        .buffered(concurrency)
        .collect()
        .await;
    checks.extend(single);
    checks
}

/// A user read by id because no listing contained it.
fn classify_unlisted(user: User) -> LeaverCheck {
    let resigned = match user.is_resigned() {
        Some(flag) => flag,
        // Without the employee permission there is no status: "readable but in no
        // department" is the best available sign of a leaver (protocol §3.1).
        None => user.department_ids.as_ref().is_none_or(|d| d.is_empty()),
    };
    if resigned {
        LeaverCheck::Resigned {
            user: Box::new(user),
        }
    } else {
        LeaverCheck::Present {
            user: Box::new(user),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn department(id: &str, parent: Option<&str>) -> (String, Department) {
        (
            id.to_owned(),
            Department {
                open_department_id: Some(id.to_owned()),
                parent_department_id: parent.map(str::to_owned),
                ..Department::default()
            },
        )
    }

    #[test]
    fn users_are_listed_parents_first_and_every_department_once() {
        let departments: BTreeMap<String, Department> = [
            department("od-a", Some("od-c")),
            department("od-b", Some("0")),
            department("od-c", Some("od-b")),
            department("od-d", Some("od-b")),
            // A cycle: neither has a top.
            department("od-x", Some("od-y")),
            department("od-y", Some("od-x")),
        ]
        .into_iter()
        .collect();
        let order = parents_first(&departments);
        assert_eq!(order, ["od-b", "od-c", "od-d", "od-a", "od-x", "od-y"]);
    }
}
