//! A batch of events of one connection turned into one transaction: what they touch is loaded
//! in bulk (one query per kind), each event's steps are built in `create_time` order by the
//! planner's step builder ([`crate::plan::steps`]) against the state the earlier events of the
//! batch leave (an overlay of the loaded objects), and everything — objects, change log,
//! watermarks, inbox outcomes — commits together.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use feishu::client::FeishuError;
use feishu::model as fs;

use crate::ids::{ConnectionId, DepartmentId, GroupId, Millis, PoolId, UserId};
use crate::merge::{self, Listing, Resolve};
use crate::model::{
    ActionResult, Department, ExternalRef, Group, GroupMember, ObjectKind, SyncAction, User,
    UserStatus,
};
use crate::plan::PlannedStep;
use crate::plan::steps::{
    Dependents, Doomed, Names, ObjectChange, Steps, UserChange, unresolved_note,
};
use crate::snapshot::{ROOT, object_key};
use crate::store::{
    ApplyBatch, AsRead, ChangeSource, DirectoryStore, InboxEvent, InboxOutcome, StoreError,
    Watermark, Write,
};

use super::intent::Resolved;

/// Ancestry deeper than this is refused (a parent cycle in Feishu's answers); also the
/// most levels of missing departments a batch reads.
pub(super) const MAX_DEPTH: usize = 64;

/// One claimed event, read again from Feishu where its payload is not enough.
pub(super) struct Item {
    pub event: InboxEvent,
    /// Feishu's `create_time` (else the time it was received).
    pub at: Millis,
    pub resolved: Resolved,
}

/// Departments the batch's events name that the store does not have, read from Feishu.
#[derive(Default)]
pub(super) struct Fetched {
    pub departments: HashMap<String, fs::Department>,
    /// Departments that could not be read (not out of scope, not gone: an error to retry).
    pub unreadable: HashMap<String, String>,
}

/// What one event did, once built.
pub(super) enum Outcome {
    Applied {
        note: String,
    },
    Ignored {
        reason: String,
    },
    /// Cannot be built (a department could not be read): retried, or parked.
    Failed {
        error: String,
    },
}

/// A built batch: the transaction, and each item's outcome in order.
pub(super) struct Built {
    pub batch: ApplyBatch,
    pub outcomes: Vec<Outcome>,
}

// ---- what the items name -----------------------------------------------------------------

/// The Feishu ids the items name, by kind.
#[derive(Default)]
pub(super) struct Named {
    pub users: HashSet<String>,
    pub departments: HashSet<String>,
    pub groups: HashSet<String>,
}

impl Named {
    fn department(&mut self, od: &str) {
        if !od.is_empty() && od != ROOT {
            self.departments.insert(od.to_owned());
        }
    }

    fn user(&mut self, open_id: &str) {
        if !open_id.is_empty() {
            self.users.insert(open_id.to_owned());
        }
    }

    fn department_refs(&mut self, d: &fs::Department) {
        if let Some(od) = &d.open_department_id {
            self.department(od);
        }
        if let Some(p) = &d.parent_department_id {
            self.department(p);
        }
        for l in d.leaders.iter().flatten() {
            if let Some(id) = &l.leader_id {
                self.user(id);
            }
        }
        if let Some(id) = &d.leader_user_id {
            self.user(id);
        }
    }

    pub fn of(items: &[&Item], fetched: &Fetched) -> Self {
        let mut n = Named::default();
        for item in items {
            match &item.resolved {
                Resolved::User { user, .. } => {
                    if let Some(id) = &user.open_id {
                        n.user(id);
                    }
                    if let Some(m) = &user.leader_user_id {
                        n.user(m);
                    }
                    for od in merge::stated_departments(user).unwrap_or_default() {
                        n.department(od);
                    }
                }
                Resolved::UserLeft { open_id } => n.user(open_id),
                Resolved::Department { department } => n.department_refs(department),
                Resolved::DepartmentDeleted { od } => n.department(od),
                Resolved::Group { group } => {
                    if let Some(id) = &group.group.id {
                        n.groups.insert(id.clone());
                    }
                    for u in &group.users {
                        n.user(u);
                    }
                    for d in &group.departments {
                        n.department(d);
                    }
                }
                Resolved::GroupDeleted { group_id } => {
                    n.groups.insert(group_id.clone());
                }
                Resolved::Ignore(_) => {}
            }
        }
        for d in fetched.departments.values() {
            n.department_refs(d);
        }
        n
    }
}

/// Departments the items need created first: named by users (memberships) or departments
/// (parents), without a ref in the store.
pub(super) fn departments_to_fetch(
    items: &[&Item],
    refs: &HashMap<(ObjectKind, String), ExternalRef>,
    fetched: &Fetched,
) -> Vec<String> {
    let mut wanted: Vec<String> = Vec::new();
    let mut add = |od: &str| {
        if !od.is_empty()
            && od != ROOT
            && !refs.contains_key(&(ObjectKind::Department, od.to_owned()))
            && !fetched.departments.contains_key(od)
            && !fetched.unreadable.contains_key(od)
            && !wanted.iter().any(|w| w == od)
        {
            wanted.push(od.to_owned());
        }
    };
    for item in items {
        match &item.resolved {
            Resolved::User { user, .. } => {
                for od in merge::stated_departments(user).unwrap_or_default() {
                    add(od);
                }
            }
            Resolved::Department { department } => {
                if let Some(p) = &department.parent_department_id {
                    add(p);
                }
            }
            _ => {}
        }
    }
    for d in fetched.departments.values() {
        if let Some(p) = &d.parent_department_id {
            add(p);
        }
    }
    wanted
}

/// Records the answer of reading a missing department.
pub(super) fn record_fetch(
    fetched: &mut Fetched,
    od: String,
    answer: Result<fs::Department, FeishuError>,
) {
    match answer {
        Ok(d) => {
            fetched.departments.insert(od, d);
        }
        // Outside the scope, or deleted since: the membership is dropped (the merge names it).
        Err(FeishuError::DepartmentOutOfScope { .. }) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => {
            fetched.unreadable.insert(od, e.to_string());
        }
    }
}

// ---- the loaded state --------------------------------------------------------------------

/// What the store holds of everything a batch touches, as the earlier events of the batch
/// leave it.
pub(super) struct Overlay {
    connection_id: ConnectionId,
    pool_id: PoolId,
    refs: HashMap<(ObjectKind, String), ExternalRef>,
    /// orgsync id → Feishu id, for names in reasons.
    ext_by_id: HashMap<String, String>,
    users: HashMap<String, User>,
    departments: HashMap<String, Department>,
    groups: HashMap<String, Group>,
    marks: HashMap<String, Watermark>,
    /// Live members of a department the batch deletes, by department id.
    members: HashMap<String, Vec<String>>,
    /// Live groups listing a department the batch deletes, by department id.
    member_of: HashMap<String, Vec<String>>,
    /// The objects as read from the store (before the batch's own writes), handed to
    /// `apply` so that it need not read them again for the feed (`AsRead`).
    read_users: HashMap<String, User>,
    read_departments: HashMap<String, Department>,
    read_groups: HashMap<String, Group>,
}

impl Overlay {
    /// Loads, in bulk, the refs and objects the items name, their watermarks, and the
    /// dependents of the departments they delete.
    ///
    /// `carried`: the state the batch before leaves, as built, while that batch is still being
    /// committed. What it holds is kept (it is newer than the store); only what it lacks is read
    /// from the store, which the batch before does not write. Its items must not delete a
    /// department: the members read for that would miss what the batch before changes.
    pub async fn load(
        store: &dyn DirectoryStore,
        connection_id: &ConnectionId,
        pool_id: &PoolId,
        items: &[&Item],
        fetched: &Fetched,
        carried: Option<Overlay>,
    ) -> Result<Self, StoreError> {
        let mut overlay = carried.unwrap_or_else(|| Overlay {
            connection_id: connection_id.clone(),
            pool_id: pool_id.clone(),
            refs: HashMap::new(),
            ext_by_id: HashMap::new(),
            users: HashMap::new(),
            departments: HashMap::new(),
            groups: HashMap::new(),
            marks: HashMap::new(),
            members: HashMap::new(),
            member_of: HashMap::new(),
            read_users: HashMap::new(),
            read_departments: HashMap::new(),
            read_groups: HashMap::new(),
        });
        let named = Named::of(items, fetched);
        // Independent reads run side by side (on PostgreSQL each is a round trip).
        let find = |kind: ObjectKind, ids: &HashSet<String>| {
            let ids: Vec<String> = ids
                .iter()
                .filter(|ext| !overlay.refs.contains_key(&(kind, (*ext).clone())))
                .cloned()
                .collect();
            async move {
                if ids.is_empty() {
                    return Ok(HashMap::new());
                }
                store.find_externals(connection_id, kind, &ids).await
            }
        };
        let keys: Vec<String> = items
            .iter()
            .filter_map(|i| primary_key(&i.resolved))
            .filter(|k| !overlay.marks.contains_key(k))
            .collect();
        let marks = async {
            if keys.is_empty() {
                return Ok(HashMap::new());
            }
            store.watermarks(connection_id, &keys).await
        };
        let (users, departments, groups, marks) = futures::try_join!(
            find(ObjectKind::User, &named.users),
            find(ObjectKind::Department, &named.departments),
            find(ObjectKind::Group, &named.groups),
            marks,
        )?;
        let mut refs = HashMap::new();
        for (kind, found) in [
            (ObjectKind::User, users),
            (ObjectKind::Department, departments),
            (ObjectKind::Group, groups),
        ] {
            for (ext, r) in found {
                refs.insert((kind, ext), r);
            }
        }
        // The objects of the refs just read (those of carried refs are carried too).
        let ids_of = |kind: ObjectKind, held: &dyn Fn(&str) -> bool| -> Vec<String> {
            refs.iter()
                .filter(|((k, _), r)| *k == kind && !held(&r.object_id))
                .map(|(_, r)| r.object_id.clone())
                .collect()
        };
        let user_ids: Vec<UserId> = ids_of(ObjectKind::User, &|id| overlay.users.contains_key(id))
            .into_iter()
            .map(UserId)
            .collect();
        let department_ids: Vec<DepartmentId> = ids_of(ObjectKind::Department, &|id| {
            overlay.departments.contains_key(id)
        })
        .into_iter()
        .map(DepartmentId)
        .collect();
        let group_ids: Vec<GroupId> =
            ids_of(ObjectKind::Group, &|id| overlay.groups.contains_key(id))
                .into_iter()
                .map(GroupId)
                .collect();
        let (users, departments, groups) = futures::try_join!(
            async {
                match user_ids.is_empty() {
                    true => Ok(Vec::new()),
                    false => store.get_users(pool_id, &user_ids).await,
                }
            },
            async {
                match department_ids.is_empty() {
                    true => Ok(Vec::new()),
                    false => store.get_departments(pool_id, &department_ids).await,
                }
            },
            async {
                match group_ids.is_empty() {
                    true => Ok(Vec::new()),
                    false => store.get_groups(pool_id, &group_ids).await,
                }
            },
        )?;
        for r in refs.values() {
            overlay
                .ext_by_id
                .entry(r.object_id.clone())
                .or_insert_with(|| r.external_id.clone());
        }
        for (key, r) in refs {
            overlay.refs.entry(key).or_insert(r);
        }
        for u in users {
            overlay.keep_user(u);
        }
        for d in departments {
            overlay.keep_department(d);
        }
        for g in groups {
            overlay.keep_group(g);
        }
        for (key, mark) in marks {
            overlay.marks.entry(key).or_insert(mark);
        }
        // Dependents of deleted departments (Feishu deletes only empty departments, so this is
        // normally nothing; without a cap, whatever the store still holds).
        for item in items {
            let Resolved::DepartmentDeleted { od } = &item.resolved else {
                continue;
            };
            let Some(id) = overlay.object_id(ObjectKind::Department, od) else {
                continue;
            };
            let department_id = DepartmentId(id.clone());
            let members = store.department_members(pool_id, &department_id).await?;
            let groups = store
                .groups_of_member(pool_id, &GroupMember::Department(department_id))
                .await?;
            let member_ids = members.iter().map(|u| u.id.0.clone()).collect();
            let group_ids = groups
                .iter()
                .filter(|g| g.deleted_at.is_none())
                .map(|g| g.id.0.clone())
                .collect();
            for u in members {
                overlay.keep_user(u);
            }
            for g in groups {
                overlay.keep_group(g);
            }
            overlay.members.insert(id.clone(), member_ids);
            overlay.member_of.insert(id, group_ids);
        }
        Ok(overlay)
    }

    /// A user read from the store, unless the overlay holds a newer state of it.
    fn keep_user(&mut self, u: User) {
        keep(&mut self.users, &mut self.read_users, u.id.0.clone(), u);
    }

    fn keep_department(&mut self, d: Department) {
        keep(
            &mut self.departments,
            &mut self.read_departments,
            d.id.0.clone(),
            d,
        );
    }

    fn keep_group(&mut self, g: Group) {
        keep(&mut self.groups, &mut self.read_groups, g.id.0.clone(), g);
    }

    /// The objects `writes` change, as read from the store (`AsRead`), each once.
    fn as_read(&self, writes: &[Write]) -> AsRead {
        fn pick<'w, T: Clone>(
            read: &HashMap<String, T>,
            kind: ObjectKind,
            id: &'w str,
            seen: &mut HashSet<(ObjectKind, &'w str)>,
            out: &mut Vec<T>,
        ) {
            if let Some(object) = read.get(id)
                && seen.insert((kind, id))
            {
                out.push(object.clone());
            }
        }
        let mut out = AsRead::default();
        let mut seen = HashSet::new();
        for w in writes {
            match w {
                Write::PutUser { user, .. } => pick(
                    &self.read_users,
                    ObjectKind::User,
                    &user.id.0,
                    &mut seen,
                    &mut out.users,
                ),
                Write::PutDepartment { department, .. } => pick(
                    &self.read_departments,
                    ObjectKind::Department,
                    &department.id.0,
                    &mut seen,
                    &mut out.departments,
                ),
                Write::PutGroup { group, .. } => pick(
                    &self.read_groups,
                    ObjectKind::Group,
                    &group.id.0,
                    &mut seen,
                    &mut out.groups,
                ),
                Write::PutExternalRef(_) => {}
            }
        }
        out
    }

    fn object_id(&self, kind: ObjectKind, ext: &str) -> Option<String> {
        self.refs
            .get(&(kind, ext.to_owned()))
            .map(|r| r.object_id.clone())
    }

    fn sync_ref(&self, kind: ObjectKind, ext: &str) -> Option<&ExternalRef> {
        self.refs.get(&(kind, ext.to_owned()))
    }

    /// Records the writes of an applied event.
    fn absorb(&mut self, writes: &[Write]) {
        for w in writes {
            match w {
                Write::PutUser { user, .. } => {
                    self.users.insert(user.id.0.clone(), user.clone());
                }
                Write::PutDepartment { department, .. } => {
                    self.departments
                        .insert(department.id.0.clone(), department.clone());
                }
                Write::PutGroup { group, .. } => {
                    self.groups.insert(group.id.0.clone(), group.clone());
                }
                Write::PutExternalRef(r) => {
                    self.ext_by_id
                        .insert(r.object_id.clone(), r.external_id.clone());
                    self.refs.insert((r.kind, r.external_id.clone()), r.clone());
                }
            }
        }
    }

    /// The ordering guard for one object: `Some(reason)` when the event must be ignored.
    fn guard(&self, key: &str, at: Millis, creation: bool) -> Option<String> {
        let mark = self.marks.get(key)?;
        if at < mark.event_time {
            return Some(format!(
                "older than the state already applied ({at} < {})",
                mark.event_time
            ));
        }
        if mark.deleted && !creation {
            return Some(
                "the object was deleted by a newer event; a late update must not resurrect it"
                    .into(),
            );
        }
        None
    }
}

/// An object read from the store goes into the overlay, and its copy into `read`, unless the
/// overlay already holds a newer state of it (carried from the batch before).
fn keep<T: Clone>(
    live: &mut HashMap<String, T>,
    read: &mut HashMap<String, T>,
    id: String,
    object: T,
) {
    if let Entry::Vacant(e) = live.entry(id.clone()) {
        read.insert(id, object.clone());
        e.insert(object);
    }
}

impl Resolve for Overlay {
    fn user(&self, open_id: &str) -> Option<UserId> {
        let r = self.sync_ref(ObjectKind::User, open_id)?;
        self.users
            .get(&r.object_id)
            .filter(|u| u.deleted_at.is_none())
            .map(|u| u.id.clone())
    }
    fn department(&self, od: &str) -> Option<DepartmentId> {
        let r = self.sync_ref(ObjectKind::Department, od)?;
        self.departments
            .get(&r.object_id)
            .filter(|d| d.deleted_at.is_none())
            .map(|d| d.id.clone())
    }
    fn group(&self, group_id: &str) -> Option<GroupId> {
        let r = self.sync_ref(ObjectKind::Group, group_id)?;
        self.groups
            .get(&r.object_id)
            .filter(|g| g.deleted_at.is_none())
            .map(|g| g.id.clone())
    }
}

impl Names for Overlay {
    fn user(&self, id: &UserId) -> String {
        self.ext_by_id.get(&id.0).unwrap_or(&id.0).clone()
    }
    fn department(&self, id: &DepartmentId) -> String {
        self.ext_by_id.get(&id.0).unwrap_or(&id.0).clone()
    }
}

fn primary_key(resolved: &Resolved) -> Option<String> {
    match resolved {
        Resolved::User { user, .. } => user
            .open_id
            .as_deref()
            .map(|id| object_key(ObjectKind::User, id)),
        Resolved::UserLeft { open_id } => Some(object_key(ObjectKind::User, open_id)),
        Resolved::Department { department } => department
            .open_department_id
            .as_deref()
            .map(|od| object_key(ObjectKind::Department, od)),
        Resolved::DepartmentDeleted { od } => Some(object_key(ObjectKind::Department, od)),
        Resolved::Group { group } => group
            .group
            .id
            .as_deref()
            .map(|id| object_key(ObjectKind::Group, id)),
        Resolved::GroupDeleted { group_id } => Some(object_key(ObjectKind::Group, group_id)),
        Resolved::Ignore(_) => None,
    }
}

// ---- building ----------------------------------------------------------------------------

/// What one event does: its steps and the watermark it moves, or why it is ignored.
enum Decision {
    Apply {
        steps: Vec<PlannedStep>,
        mark: Watermark,
    },
    Ignore(String),
}

/// Builds the transaction of `items` (in order) against `overlay`.
pub(super) fn build(
    items: &[&Item],
    overlay: &mut Overlay,
    fetched: &Fetched,
    new_id: &mut dyn FnMut() -> String,
    now: Millis,
) -> Built {
    let pool_id = overlay.pool_id.clone();
    let connection_id = overlay.connection_id.clone();
    let source = |event: &InboxEvent| ChangeSource::Event {
        event_id: event.event_id.clone(),
        connection_id: connection_id.clone(),
    };
    let mut batch = ApplyBatch::new(
        pool_id,
        items
            .first()
            .map_or(ChangeSource::Admin, |i| source(&i.event)),
    );
    let mut outcomes = Vec::with_capacity(items.len());
    for (n, item) in items.iter().enumerate() {
        let decision = decide(item, overlay, fetched, new_id, now);
        let outcome = match decision {
            Ok(Decision::Apply { steps, mark }) => {
                let note = note(&steps);
                let first = batch.writes.len();
                // Moved, not copied: the overlay copies only what it keeps.
                batch.writes.extend(
                    steps
                        .into_iter()
                        .filter(|s| s.result == ActionResult::Applied)
                        .flat_map(|s| s.writes),
                );
                overlay.absorb(&batch.writes[first..]);
                if n > 0 && batch.writes.len() > first {
                    batch.later_sources.push((first, source(&item.event)));
                }
                overlay.marks.insert(mark.object_key.clone(), mark.clone());
                batch.watermarks.push(mark);
                Outcome::Applied { note }
            }
            Ok(Decision::Ignore(reason)) => Outcome::Ignored { reason },
            Err(error) => Outcome::Failed { error },
        };
        match &outcome {
            Outcome::Applied { note } => batch.inbox.push((
                item.event.id,
                InboxOutcome::Applied {
                    note: Some(note.clone()),
                },
            )),
            Outcome::Ignored { reason } => batch.inbox.push((
                item.event.id,
                InboxOutcome::Ignored {
                    reason: reason.clone(),
                },
            )),
            Outcome::Failed { .. } => {}
        }
        outcomes.push(outcome);
    }
    batch.as_read = overlay.as_read(&batch.writes);
    Built { batch, outcomes }
}

/// The inbox note of an applied event: its steps.
fn note(steps: &[PlannedStep]) -> String {
    let parts: Vec<String> = steps
        .iter()
        .filter(|s| s.action != SyncAction::Unchanged && s.result == ActionResult::Applied)
        .map(|s| match &s.reason {
            Some(r) => format!("{} {}: {r}", s.action.as_str(), s.external_id),
            None => format!("{} {}", s.action.as_str(), s.external_id),
        })
        .collect();
    if parts.is_empty() {
        "no visible change".to_owned()
    } else {
        parts.join("; ")
    }
}

fn decide(
    item: &Item,
    overlay: &Overlay,
    fetched: &Fetched,
    new_id: &mut dyn FnMut() -> String,
    now: Millis,
) -> Result<Decision, String> {
    let mark = |kind: ObjectKind, ext: &str, deleted: bool| Watermark {
        connection_id: overlay.connection_id.clone(),
        object_key: object_key(kind, ext),
        event_time: item.at,
        deleted,
    };
    let creation = matches!(item.resolved, Resolved::User { creation: true, .. });
    if let Some(key) = primary_key(&item.resolved)
        && let Some(reason) = overlay.guard(&key, item.at, creation)
    {
        return Ok(Decision::Ignore(reason));
    }
    let steps = Steps {
        connection_id: &overlay.connection_id,
        now,
        names: overlay,
    };
    // Departments created ahead of the object that names them (parents first); they go
    // into a scratch overlay so that the object's merge resolves them.
    let mut out = Vec::new();
    let decision = match &item.resolved {
        Resolved::Ignore(reason) => Decision::Ignore(reason.clone()),
        Resolved::User { user, .. } => {
            let Some(open_id) = user.open_id.as_deref().filter(|s| !s.is_empty()) else {
                return Ok(Decision::Ignore("user event without open_id".into()));
            };
            let mut scratch = Scratch::new(overlay);
            for od in merge::stated_departments(user).unwrap_or_default() {
                scratch.ensure(od, fetched, &steps, new_id, &mut out, 0)?;
            }
            let existing_ref = overlay.sync_ref(ObjectKind::User, open_id);
            let existing = existing_ref.and_then(|r| overlay.users.get(&r.object_id));
            let id = existing.map_or_else(|| UserId(new_id()), |u| u.id.clone());
            let mut merged = merge::merge_user(
                existing,
                user,
                Listing::NONE,
                &scratch,
                &overlay.pool_id,
                id,
                now,
            );
            // Present in Feishu: a tombstone is restored (the guard above refused an update
            // older than a deletion event).
            merged.object.deleted_at = None;
            let change = UserChange {
                external_id: open_id,
                existing,
                existing_ref,
                union_id: user.union_id.as_deref(),
                user_id: user.user_id.as_deref(),
                resigned_by_lookup: false,
            };
            let names = scratch.names();
            let steps = Steps {
                names: &names,
                ..steps
            };
            steps.user(
                &change,
                merged.object,
                unresolved_note(&merged.unresolved),
                false,
                &mut out,
            );
            Decision::Apply {
                steps: out,
                mark: mark(ObjectKind::User, open_id, false),
            }
        }
        Resolved::UserLeft { open_id } => {
            let existing_ref = overlay.sync_ref(ObjectKind::User, open_id);
            match existing_ref.and_then(|r| overlay.users.get(&r.object_id)) {
                None => Decision::Apply {
                    steps: Vec::new(),
                    mark: mark(ObjectKind::User, open_id, true),
                },
                Some(old) => {
                    let mut new = old.clone();
                    new.status = UserStatus::Resigned;
                    merge::detach(&mut new);
                    let change = UserChange {
                        external_id: open_id,
                        existing: Some(old),
                        existing_ref,
                        union_id: existing_ref.and_then(|r| r.union_id.as_deref()),
                        user_id: existing_ref.and_then(|r| r.custom_id.as_deref()),
                        resigned_by_lookup: false,
                    };
                    steps.user(&change, new, None, false, &mut out);
                    Decision::Apply {
                        steps: out,
                        mark: mark(ObjectKind::User, open_id, true),
                    }
                }
            }
        }
        Resolved::Department { department } => {
            let Some(od) = department
                .open_department_id
                .as_deref()
                .filter(|s| !s.is_empty())
            else {
                return Ok(Decision::Ignore(
                    "department event without open_department_id".into(),
                ));
            };
            let mut scratch = Scratch::new(overlay);
            if let Some(parent) = department.parent_department_id.as_deref() {
                scratch.ensure(parent, fetched, &steps, new_id, &mut out, 1)?;
            }
            let existing_ref = overlay.sync_ref(ObjectKind::Department, od);
            let existing = existing_ref.and_then(|r| overlay.departments.get(&r.object_id));
            let id = existing.map_or_else(|| DepartmentId(new_id()), |d| d.id.clone());
            let mut merged =
                merge::merge_department(existing, department, &scratch, &overlay.pool_id, id, now);
            if !department.is_deleted() {
                merged.object.deleted_at = None;
            }
            let change = ObjectChange {
                external_id: od,
                existing,
                existing_ref,
                custom_id: department.department_id.as_deref(),
            };
            let names = scratch.names();
            let steps = Steps {
                names: &names,
                ..steps
            };
            // Leaders resolve to stored users only, so they exist: nothing is deferred.
            steps.department(
                &change,
                merged.object,
                unresolved_note(&merged.unresolved),
                true,
                &mut out,
            );
            Decision::Apply {
                steps: out,
                mark: mark(ObjectKind::Department, od, false),
            }
        }
        Resolved::DepartmentDeleted { od } => {
            let existing = overlay
                .sync_ref(ObjectKind::Department, od)
                .and_then(|r| overlay.departments.get(&r.object_id));
            if let Some(d) = existing {
                let members: Vec<(&str, &User)> = overlay
                    .members
                    .get(&d.id.0)
                    .into_iter()
                    .flatten()
                    .filter_map(|id| overlay.users.get(id))
                    .filter(|u| u.deleted_at.is_none())
                    .map(|u| (overlay.label(&u.id.0), u))
                    .collect();
                let groups: Vec<(&str, &Group)> = overlay
                    .member_of
                    .get(&d.id.0)
                    .into_iter()
                    .flatten()
                    .filter_map(|id| overlay.groups.get(id))
                    .filter(|g| g.deleted_at.is_none())
                    .map(|g| (overlay.label(&g.id.0), g))
                    .collect();
                let dependents = Dependents { members, groups };
                steps.deletion(
                    od,
                    Doomed::Department(d),
                    &dependents,
                    Some("deleted in Feishu (event)".to_owned()),
                    &mut out,
                );
            }
            Decision::Apply {
                steps: out,
                mark: mark(ObjectKind::Department, od, true),
            }
        }
        Resolved::Group { group } => {
            let Some(group_id) = group.group.id.as_deref().filter(|s| !s.is_empty()) else {
                return Ok(Decision::Ignore("group without an id".into()));
            };
            let existing_ref = overlay.sync_ref(ObjectKind::Group, group_id);
            let existing = existing_ref.and_then(|r| overlay.groups.get(&r.object_id));
            let id = existing.map_or_else(|| GroupId(new_id()), |g| g.id.clone());
            let mut merged =
                merge::merge_group(existing, group, overlay, &overlay.pool_id, id, now);
            merged.object.deleted_at = None;
            let change = ObjectChange {
                external_id: group_id,
                existing,
                existing_ref,
                custom_id: group.group.group_id.as_deref(),
            };
            steps.group(
                &change,
                merged.object,
                unresolved_note(&merged.unresolved),
                &mut out,
            );
            Decision::Apply {
                steps: out,
                mark: mark(ObjectKind::Group, group_id, false),
            }
        }
        Resolved::GroupDeleted { group_id } => {
            if let Some(g) = overlay
                .sync_ref(ObjectKind::Group, group_id)
                .and_then(|r| overlay.groups.get(&r.object_id))
            {
                steps.deletion(
                    group_id,
                    Doomed::Group(g),
                    &Dependents::default(),
                    Some("deleted in Feishu (event)".to_owned()),
                    &mut out,
                );
            }
            Decision::Apply {
                steps: out,
                mark: mark(ObjectKind::Group, group_id, true),
            }
        }
    };
    Ok(decision)
}

impl Overlay {
    /// The Feishu id of an object of this connection, else its orgsync id.
    fn label<'s>(&'s self, object_id: &'s str) -> &'s str {
        self.ext_by_id
            .get(object_id)
            .map_or(object_id, String::as_str)
    }
}

/// The overlay plus the departments one event creates ahead of its object.
struct Scratch<'o> {
    overlay: &'o Overlay,
    created: HashMap<String, DepartmentId>,
}

impl<'o> Scratch<'o> {
    fn new(overlay: &'o Overlay) -> Self {
        Self {
            overlay,
            created: HashMap::new(),
        }
    }

    fn names(&self) -> ScratchNames<'_> {
        ScratchNames {
            overlay: self.overlay,
            created: self
                .created
                .iter()
                .map(|(od, id)| (id.0.clone(), od.clone()))
                .collect(),
        }
    }

    /// Makes sure a department the event names exists: stored, or read from Feishu for this
    /// batch (then created here, parents first). One Feishu could not read fails the event.
    fn ensure(
        &mut self,
        od: &str,
        fetched: &Fetched,
        steps: &Steps<'_>,
        new_id: &mut dyn FnMut() -> String,
        out: &mut Vec<PlannedStep>,
        depth: usize,
    ) -> Result<(), String> {
        if od.is_empty()
            || od == ROOT
            || self.created.contains_key(od)
            || self.overlay.sync_ref(ObjectKind::Department, od).is_some()
        {
            return Ok(());
        }
        if let Some(error) = fetched.unreadable.get(od) {
            return Err(format!("department {od} could not be read: {error}"));
        }
        let Some(feishu) = fetched.departments.get(od) else {
            // Outside the scope or gone: the merge drops the reference and names it.
            return Ok(());
        };
        if depth > MAX_DEPTH {
            return Err(format!("department {od}: ancestry deeper than {MAX_DEPTH}"));
        }
        if let Some(parent) = feishu.parent_department_id.as_deref() {
            self.ensure(parent, fetched, steps, new_id, out, depth + 1)?;
        }
        let id = DepartmentId(new_id());
        let merged = merge::merge_department(
            None,
            feishu,
            self,
            &self.overlay.pool_id,
            id.clone(),
            steps.now,
        );
        self.created.insert(od.to_owned(), id);
        let change = ObjectChange {
            external_id: od,
            existing: None,
            existing_ref: None,
            custom_id: feishu.department_id.as_deref(),
        };
        steps.department(
            &change,
            merged.object,
            unresolved_note(&merged.unresolved),
            true,
            out,
        );
        Ok(())
    }
}

impl Resolve for Scratch<'_> {
    fn user(&self, open_id: &str) -> Option<UserId> {
        Resolve::user(self.overlay, open_id)
    }
    fn department(&self, od: &str) -> Option<DepartmentId> {
        self.created
            .get(od)
            .cloned()
            .or_else(|| Resolve::department(self.overlay, od))
    }
    fn group(&self, group_id: &str) -> Option<GroupId> {
        Resolve::group(self.overlay, group_id)
    }
}

struct ScratchNames<'o> {
    overlay: &'o Overlay,
    /// orgsync id → Feishu id of the departments created ahead.
    created: HashMap<String, String>,
}

impl Names for ScratchNames<'_> {
    fn user(&self, id: &UserId) -> String {
        Names::user(self.overlay, id)
    }
    fn department(&self, id: &DepartmentId) -> String {
        self.created
            .get(&id.0)
            .cloned()
            .unwrap_or_else(|| Names::department(self.overlay, id))
    }
}

#[cfg(test)]
impl Overlay {
    /// The overlay of a whole in-memory state (the tests' stand-in for the store's bulk load).
    fn from_state(
        state: &crate::store::ConnectionState,
        connection_id: &ConnectionId,
        pool_id: &PoolId,
    ) -> Self {
        Overlay {
            connection_id: connection_id.clone(),
            pool_id: pool_id.clone(),
            refs: state
                .refs
                .iter()
                .map(|r| ((r.kind, r.external_id.clone()), r.clone()))
                .collect(),
            ext_by_id: state
                .refs
                .iter()
                .map(|r| (r.object_id.clone(), r.external_id.clone()))
                .collect(),
            users: state
                .users
                .iter()
                .map(|u| (u.id.0.clone(), u.clone()))
                .collect(),
            departments: state
                .departments
                .iter()
                .map(|d| (d.id.0.clone(), d.clone()))
                .collect(),
            groups: state
                .groups
                .iter()
                .map(|g| (g.id.0.clone(), g.clone()))
                .collect(),
            marks: HashMap::new(),
            members: HashMap::new(),
            member_of: HashMap::new(),
            read_users: HashMap::new(),
            read_departments: HashMap::new(),
            read_groups: HashMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The same Feishu change built by the worker (as an event) and by the planner (found by a
    //! reconciliation) writes the same change-log kinds and the same objects — for the changes
    //! the emulator cannot make in one event (tests/it/one_writer.rs covers the rest).

    use super::*;
    use crate::plan::testing::*;
    use crate::store::{ChangeKind, ConnectionState};

    fn org() -> (Vec<fs::Department>, Vec<fs::User>) {
        (
            vec![dept("od-a", ROOT, "A"), dept("od-b", ROOT, "B")],
            vec![
                person("ou_ann", "Ann", &["od-a"]),
                person("ou_bob", "Bob", &["od-a", "od-b"]),
            ],
        )
    }

    fn kinds(writes: &[Write]) -> Vec<(String, ChangeKind)> {
        writes
            .iter()
            .filter_map(|w| match w {
                Write::PutUser { user, change, .. } => Some((user.id.0.clone(), *change)),
                Write::PutDepartment {
                    department, change, ..
                } => Some((department.id.0.clone(), *change)),
                Write::PutGroup { group, change, .. } => Some((group.id.0.clone(), *change)),
                Write::PutExternalRef(_) => None,
            })
            .collect()
    }

    /// Builds `user` as one `user.updated` event against `state`.
    fn by_event(state: &ConnectionState, user: fs::User) -> Vec<Write> {
        let connection = ConnectionId::from(CONNECTION);
        let mut overlay = Overlay::from_state(state, &connection, &PoolId::from(POOL));
        let item = Item {
            event: InboxEvent {
                id: 1,
                pool_id: PoolId::from(POOL),
                connection_id: connection.clone(),
                event_id: "ev-1".into(),
                event_type: "contact.user.updated_v3".into(),
                created_at: Some(NOW),
                received_at: NOW,
                payload: String::new(),
                state: crate::store::InboxState::Pending,
                attempts: 0,
                next_attempt_at: NOW,
                last_error: None,
                outcome: None,
                finished_at: None,
            },
            at: NOW,
            resolved: Resolved::User {
                user: Box::new(user),
                creation: false,
            },
        };
        let mut ids = counter();
        let built = build(&[&item], &mut overlay, &Fetched::default(), &mut ids, NOW);
        assert!(matches!(built.outcomes[0], Outcome::Applied { .. }));
        built.batch.writes
    }

    fn same_both_ways(change: impl Fn(&mut fs::User), what: &str) {
        let (departments, users) = org();
        let (_, imported) = sync(
            &snapshot(departments.clone(), users.clone(), Vec::new()),
            &ConnectionState::default(),
        );
        let mut changed = users.clone();
        change(&mut changed[1]);
        let (plan, by_job) = sync(
            &snapshot(departments, changed.clone(), Vec::new()),
            &imported,
        );
        let job_writes: Vec<Write> = plan.writes().cloned().collect();
        let event_writes = by_event(&imported, changed[1].clone());
        assert_eq!(
            kinds(&event_writes),
            kinds(&job_writes),
            "{what}: change kinds"
        );
        let by_event = apply_writes_in_memory(&imported, &event_writes);
        let bob = |s: &ConnectionState| {
            let mut u = user_by(s, "ou_bob").clone();
            u.updated_at = 0;
            (u, ref_of(s, ObjectKind::User, "ou_bob").clone())
        };
        assert_eq!(
            bob(&by_event),
            bob(&by_job),
            "{what}: the user and its relation"
        );
        assert!(!event_writes.is_empty(), "{what}: nothing written");
    }

    #[test]
    fn an_identifier_change_is_logged_the_same_by_event_and_by_reconciliation() {
        same_both_ways(|u| u.union_id = Some("on_renamed".into()), "union_id");
        same_both_ways(|u| u.user_id = Some("u_renamed".into()), "user_id");
    }

    #[test]
    fn profile_and_departments_in_one_change_are_two_steps_both_ways() {
        same_both_ways(
            |u| {
                u.name = Some("Robert".into());
                u.department_ids = Some(vec!["od-b".into()]);
            },
            "profile and departments",
        );
        same_both_ways(
            |u| u.department_ids = Some(vec!["od-b".into(), "od-a".into()]),
            "primary department",
        );
    }
}
