//! Applying users while the pull still runs (docs/import-pipeline.md).
//!
//! The paced user listing is the long part of a job; applying only after it ends put the
//! whole apply phase after it on the critical path. While the pull runs, [`Ahead`] plans and
//! applies what is already certain, with the same planner, against the stored state it
//! keeps up to date with its own writes:
//!
//! - the department tree, once it was read completely, without its leaders (their users
//!   may not exist yet; the final plan sets them);
//! - users in chunks, each user once, when its record is final on first sight (it states its
//!   `department_ids`), every department it names is in the pulled tree and stored, and its
//!   manager was handed on too and is stored or in the same chunk.
//!
//! The pull hands such users on and keeps only their open ids (`Snapshot::handed_on`). A user
//! whose every step was applied, or was `Unchanged`, is *settled*: its record is dropped and its
//! stored object is kept as a stub (id, version, status, tombstone and manager), which is all
//! the final plan reads of a user it does not merge. The others go back into the snapshot.
//! Nothing is deleted ahead (the chunks are partial snapshots). When the pull ends the job
//! plans the whole snapshot against the state folded here; what an event changed meanwhile is
//! superseded as always, because the folded versions are those this job wrote.

use std::collections::{BTreeMap, HashMap, HashSet};

use feishu::model as fs;

use super::positions::{Positions, upsert};
use crate::ids::UserId;
use crate::model::{ActionResult, ObjectKind, Profile, SyncAction, User, UserStatus};
use crate::plan::PlannedStep;
use crate::snapshot::{Completeness, ROOT, ScopeKind, Snapshot, SnapshotUser};
use crate::store::{ConnectionState, Write};

/// The stored state as this job's writes leave it, and what it applied ahead.
pub(super) struct Ahead {
    /// Loaded as an outline (`DirectoryStore::load_connection_outline`): a user is read in
    /// full before a plan merges or deletes it ([`Ahead::fill`]).
    pub state: ConnectionState,
    /// Whether each user of `state.users` (same position) is an outline here.
    outline: Vec<bool>,
    /// Positions in `state.users`, `state.departments` and `state.groups` by id.
    user_at: Positions,
    department_at: Positions,
    group_at: Positions,
    /// This connection's refs by (kind, Feishu id): position in `state.refs`.
    ref_at: Positions,
    connection_id: crate::ids::ConnectionId,
    /// The pulled tree, once it is known.
    scope: Option<ScopeKind>,
    /// The `od-` ids of the pulled tree.
    tree_ids: HashSet<String>,
    /// Users handed on (taken into a chunk, or waiting for one).
    taken: HashSet<String>,
    waiting: Vec<fs::User>,
    /// Users handed on that go to the final plan: not final on first sight, or a step of
    /// theirs was not applied ahead.
    unsettled: Vec<fs::User>,
    /// Users of the chunk being applied with a step that was not applied.
    failed: HashSet<String>,
    /// Users settled so far.
    settled: usize,
    /// Users listed since the last chunk was cut.
    fresh: usize,
    /// The last chunk was cut at its size with more users ready.
    backlog: bool,
    /// (kind, Feishu id) of the objects applied ahead.
    applied: HashSet<(ObjectKind, String)>,
}

impl Ahead {
    /// `state` as the store's outline of the connection: every user is an outline.
    pub fn new(state: ConnectionState, connection_id: &crate::ids::ConnectionId) -> Self {
        let user_at = Positions::build(&state.users, |u| Some(u.id.as_str()));
        let department_at = Positions::build(&state.departments, |d| Some(d.id.as_str()));
        let group_at = Positions::build(&state.groups, |g| Some(g.id.as_str()));
        let ref_at = Positions::build(&state.refs, |r| {
            (r.connection_id == *connection_id).then_some(r.external_id.as_str())
        });
        let outline = vec![true; state.users.len()];
        Self {
            state,
            outline,
            user_at,
            department_at,
            group_at,
            ref_at,
            connection_id: connection_id.clone(),
            scope: None,
            tree_ids: HashSet::new(),
            taken: HashSet::new(),
            waiting: Vec::new(),
            unsettled: Vec::new(),
            failed: HashSet::new(),
            settled: 0,
            fresh: 0,
            backlog: false,
            applied: HashSet::new(),
        }
    }

    /// Whether the object was applied ahead (its final-plan step is then not a change).
    pub fn was_applied(&self, kind: ObjectKind, external_id: &str) -> bool {
        self.applied.contains(&(kind, external_id.to_owned()))
    }

    /// Objects applied ahead: users settled, and tree steps applied.
    pub fn applied_count(&self) -> usize {
        self.settled + self.applied.len()
    }

    /// The snapshot that plans the tree ahead.
    pub fn tree(
        &mut self,
        scope: ScopeKind,
        departments: BTreeMap<String, fs::Department>,
    ) -> Snapshot {
        self.scope = Some(scope);
        self.tree_ids = departments.keys().cloned().collect();
        let mut snapshot = partial(scope);
        // Leaders are left to the final plan: omitted, they keep their stored value, instead
        // of being dropped (and logged as outside the directory) for users not stored yet.
        snapshot.departments = departments
            .into_iter()
            .map(|(id, mut d)| {
                d.leaders = None;
                d.leader_user_id = None;
                (id, d)
            })
            .collect();
        snapshot
    }

    /// Which steps of the tree's plan are applied ahead: all but the leaders.
    pub fn tree_step(step: &PlannedStep) -> bool {
        step.kind == ObjectKind::Department && step.action != SyncAction::UpdateDepartmentLeader
    }

    /// Takes users the pull handed on.
    pub fn listed(&mut self, users: Vec<fs::User>) {
        for user in users {
            let Some(open_id) = user.open_id.as_deref() else {
                continue;
            };
            // Without `department_ids` a user's memberships are known only once every
            // listing was read: the final plan takes it (the pull keeps such users itself).
            if user.department_ids.is_none() || !self.taken.insert(open_id.to_owned()) {
                self.unsettled.push(user);
                continue;
            }
            self.waiting.push(user);
            self.fresh += 1;
        }
    }

    /// Users listed since the last chunk: a chunk is cut after `n` of them, not whenever `n`
    /// wait (users waiting for a manager would then cut a chunk per page, each planned
    /// against the whole state).
    pub fn due(&self, size: usize) -> bool {
        self.fresh >= size || self.backlog
    }

    /// A chunk of at most `size` waiting users that can be planned now (see the module
    /// rules), as a snapshot, or `None` when none can. Users that cannot yet keep waiting.
    /// The size bounds how long one chunk holds the pull up.
    pub fn chunk(&mut self, size: usize) -> Option<Snapshot> {
        let scope = self.scope?;
        self.fresh = 0;
        self.backlog = false;
        let known =
            |ahead: &Self, kind: ObjectKind, id: &str| ahead.ref_position(kind, id).is_some();
        // In the pulled tree too: a settled user is not detached from a department the
        // final plan deletes.
        let departments_known = |ahead: &Self, u: &fs::User| {
            u.department_ids.iter().flatten().all(|d| {
                d == ROOT || (ahead.tree_ids.contains(d) && known(ahead, ObjectKind::Department, d))
            })
        };
        // Ready: its departments are stored and its manager is stored or ready (managers
        // first, through their reports, so that a chain of managers goes in one chunk).
        let mut reports: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut queue: Vec<usize> = Vec::new();
        for (i, u) in self.waiting.iter().enumerate() {
            if u.open_id.is_none() || !departments_known(self, u) {
                continue;
            }
            match u.leader_user_id.as_deref() {
                None | Some("") => queue.push(i),
                // Listed in this pull too: a manager the final plan deletes is dropped
                // from its reports' records, which it merges then.
                Some(m) if known(self, ObjectKind::User, m) && self.taken.contains(m) => {
                    queue.push(i)
                }
                Some(m) => reports.entry(m).or_default().push(i),
            }
        }
        // Taken in this order, a chunk cut at its size still holds every manager of its users.
        let mut ready: HashSet<String> = HashSet::new();
        while let Some(i) = queue.pop() {
            let Some(id) = self.waiting[i].open_id.as_deref() else {
                continue;
            };
            if ready.len() >= size.max(1) {
                self.backlog = true;
                break;
            }
            if ready.insert(id.to_owned())
                && let Some(next) = reports.remove(id)
            {
                queue.extend(next);
            }
        }
        if ready.is_empty() {
            return None;
        }
        let (go, stay): (Vec<fs::User>, Vec<fs::User>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|u| u.open_id.as_deref().is_some_and(|id| ready.contains(id)));
        self.waiting = stay;
        let mut snapshot = partial(scope);
        for user in go {
            if let Some(id) = user.open_id.clone() {
                snapshot.users.insert(
                    id,
                    SnapshotUser {
                        user,
                        listed_in: Vec::new(),
                    },
                );
            }
        }
        Some(snapshot)
    }

    /// Which steps of a chunk's plan are applied ahead: those of its users.
    pub fn user_step(step: &PlannedStep, chunk: &Snapshot) -> bool {
        step.kind == ObjectKind::User && chunk.users.contains_key(&step.external_id)
    }

    /// Takes the outcome of a step applied ahead (`done`: applied as planned); `true` when
    /// the step is settled now (logged and counted then), `false` when the final plan takes
    /// its object again.
    pub fn took(&mut self, step: &PlannedStep, done: bool) -> bool {
        let done = done && step.result == ActionResult::Applied;
        if done && !step.writes.is_empty() {
            self.fold(step);
            return true;
        }
        // An unchanged user is settled too: the final plan would find it unchanged again.
        if done && step.kind == ObjectKind::User && step.action == SyncAction::Unchanged {
            self.applied.insert((step.kind, step.external_id.clone()));
            return true;
        }
        if step.kind == ObjectKind::User {
            self.failed.insert(step.external_id.clone());
        }
        false
    }

    /// After a chunk was applied: its users whose steps were all taken are settled (their
    /// record dropped, their stored object stubbed); the others go to the final plan.
    pub fn settle(&mut self, chunk: Snapshot) {
        for (open_id, su) in chunk.users {
            let key = (ObjectKind::User, open_id);
            let applied = self.applied.remove(&key);
            if !applied || self.failed.contains(&key.1) {
                // What was applied of it is unchanged in the final plan, and not logged again.
                if applied {
                    self.applied.insert(key);
                }
                self.unsettled.push(su.user);
                continue;
            }
            let (_, open_id) = key;
            self.settled += 1;
            let stored = self
                .stored_user(&open_id)
                .and_then(|id| self.user_position(id));
            if let Some(i) = stored {
                stub(&mut self.state.users[i]);
                self.outline[i] = true;
            }
        }
        self.failed.clear();
    }

    /// When the pull is over: the users handed on but not settled go back into the snapshot
    /// for the final plan.
    pub fn finish(&mut self, snapshot: &mut Snapshot) {
        let back = std::mem::take(&mut self.waiting)
            .into_iter()
            .chain(std::mem::take(&mut self.unsettled));
        for user in back {
            let Some(open_id) = user.open_id.clone() else {
                continue;
            };
            snapshot.handed_on.remove(&open_id);
            snapshot.users.entry(open_id).or_insert(SnapshotUser {
                user,
                listed_in: Vec::new(),
            });
        }
    }

    /// The outlined users a chunk merges: to be read in full before it is planned.
    pub fn outlines_in(&self, chunk: &Snapshot) -> Vec<UserId> {
        chunk
            .users
            .keys()
            .filter_map(|open_id| self.stored_user(open_id))
            .filter(|id| self.is_outline(id))
            .map(|id| UserId(id.to_owned()))
            .collect()
    }

    /// The outlined users the final plan may merge or write: those it merges (listed and
    /// not settled, or looked up as leavers) and every live user not listed, which it may
    /// delete or detach from a deleted department. Settled users and tombstones stay
    /// outlines; so do leavers already disabled, which it does not look at again.
    pub fn outlines_for_final(&self, snapshot: &Snapshot) -> Vec<UserId> {
        let mut out = Vec::new();
        for r in &self.state.refs {
            if r.kind != ObjectKind::User
                || r.connection_id != self.connection_id
                || !self.is_outline(&r.object_id)
            {
                continue;
            }
            let ext = r.external_id.as_str();
            let merged = snapshot.users.contains_key(ext) || snapshot.leavers.contains_key(ext);
            let unlisted_live = !snapshot.handed_on.contains(ext)
                && self.user_position(&r.object_id).is_some_and(|i| {
                    let u = &self.state.users[i];
                    u.deleted_at.is_none() && u.status != UserStatus::Resigned
                });
            if merged || unlisted_live {
                out.push(UserId(r.object_id.clone()));
            }
        }
        out
    }

    /// Puts the full copies of outlined users in place. A user an event changed since the
    /// outline was read keeps the outline's version: a write planned from it then conflicts
    /// and is superseded, as it would have against the state of the job's start.
    pub fn fill(&mut self, asked: &[UserId], users: Vec<User>) -> Result<(), String> {
        for mut user in users {
            let Some(i) = self.user_position(user.id.as_str()) else {
                continue;
            };
            user.version = self.state.users[i].version;
            self.outline[i] = false;
            self.state.users[i] = user;
        }
        // A user row never goes away (deletions are tombstones) while its pool exists.
        match asked.iter().find(|id| self.is_outline(id.as_str())) {
            Some(missing) => Err(format!(
                "user {missing} is no longer in the store (was its pool deleted during the job?)"
            )),
            None => Ok(()),
        }
    }

    fn is_outline(&self, id: &str) -> bool {
        self.user_position(id).is_some_and(|i| self.outline[i])
    }

    fn user_position(&self, id: &str) -> Option<usize> {
        self.user_at
            .find(&self.state.users, id, |u| u.id.as_str() == id)
    }

    /// The position in `state.refs` of this connection's ref of a Feishu object.
    fn ref_position(&self, kind: ObjectKind, external_id: &str) -> Option<usize> {
        self.ref_at.find(&self.state.refs, external_id, |r| {
            r.kind == kind && r.external_id == external_id
        })
    }

    /// The orgsync id of a user this connection maps, by open_id.
    fn stored_user(&self, open_id: &str) -> Option<&str> {
        self.ref_position(ObjectKind::User, open_id)
            .map(|r| self.state.refs[r].object_id.as_str())
    }

    /// Records an applied step: its objects as written (the version each write gives them)
    /// and its id mappings.
    fn fold(&mut self, step: &PlannedStep) {
        for write in &step.writes {
            match write {
                Write::PutUser {
                    user,
                    expected_version,
                    ..
                } => {
                    let user = written(user, *expected_version, |u| &mut u.version);
                    let i = upsert(
                        &mut self.state.users,
                        &mut self.user_at,
                        user,
                        |u| u.id.as_str(),
                        |a, b| a.id == b.id,
                    );
                    self.outline.resize(self.state.users.len(), false);
                    self.outline[i] = false;
                }
                Write::PutDepartment {
                    department,
                    expected_version,
                    ..
                } => {
                    let department = written(department, *expected_version, |d| &mut d.version);
                    upsert(
                        &mut self.state.departments,
                        &mut self.department_at,
                        department,
                        |d| d.id.as_str(),
                        |a, b| a.id == b.id,
                    );
                }
                Write::PutGroup {
                    group,
                    expected_version,
                    ..
                } => {
                    let group = written(group, *expected_version, |g| &mut g.version);
                    upsert(
                        &mut self.state.groups,
                        &mut self.group_at,
                        group,
                        |g| g.id.as_str(),
                        |a, b| a.id == b.id,
                    );
                }
                Write::PutExternalRef(r) if r.connection_id == self.connection_id => {
                    upsert(
                        &mut self.state.refs,
                        &mut self.ref_at,
                        r.clone(),
                        |r| r.external_id.as_str(),
                        |a, b| a.kind == b.kind && a.external_id == b.external_id,
                    );
                }
                Write::PutExternalRef(_) => {}
            }
        }
        self.applied.insert((step.kind, step.external_id.clone()));
    }
}

/// What the final plan reads of a settled user: its id, version, status, tombstone and
/// manager. Its profile (the shared empty one) and its memberships are dropped: the final plan
/// names and writes only users it holds in full, and leaves a settled user's memberships
/// alone (it was merged from a record naming only departments of the pulled tree, which the
/// final plan does not delete).
fn stub(user: &mut User) {
    user.profile = Profile::empty();
    user.departments = Vec::new();
}

/// An object as a write leaves it stored: the version after the write's check.
fn written<T: Clone>(
    object: &T,
    expected_version: Option<i64>,
    version: impl Fn(&mut T) -> &mut i64,
) -> T {
    let mut object = object.clone();
    let v = version(&mut object);
    *v = expected_version.unwrap_or(*v) + 1;
    object
}

/// An empty chunk, partial in every part: planning it decides no deletion.
fn partial(scope: ScopeKind) -> Snapshot {
    let mut snapshot = Snapshot::empty(scope);
    snapshot.completeness = Completeness {
        departments: false,
        users: false,
        groups: false,
    };
    snapshot.chunk = true;
    snapshot
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ConnectionId;
    use crate::plan::testing::{
        CONNECTION, dept, no_threshold, person, plan_with, snapshot, sync, user_by,
    };

    /// A stored organisation of `od_1` with `ou_a`, `ou_b` and `ou_c`, and the store's
    /// outline of it.
    fn stored() -> (ConnectionState, ConnectionState) {
        let org = snapshot(
            vec![dept("od_1", "0", "One")],
            ["ou_a", "ou_b", "ou_c"]
                .iter()
                .map(|ou| person(ou, &format!("Name {ou}"), &["od_1"]))
                .collect(),
            Vec::new(),
        );
        let full = sync(&org, &ConnectionState::default()).1;
        let mut outline = full.clone();
        for u in &mut outline.users {
            stub(u);
        }
        (full, outline)
    }

    fn full_copies(full: &ConnectionState, ids: &[UserId]) -> Vec<User> {
        full.users
            .iter()
            .filter(|u| ids.contains(&u.id))
            .cloned()
            .collect()
    }

    #[test]
    fn a_user_settles_only_when_every_step_of_it_went_through() {
        let (full, outline) = stored();
        let mut ahead = Ahead::new(outline, &ConnectionId::from(CONNECTION));
        let org = snapshot(vec![dept("od_1", "0", "One")], Vec::new(), Vec::new());
        let _tree = ahead.tree(ScopeKind::All, org.departments.clone());
        let mut renamed = person("ou_a", "Renamed", &["od_1"]);
        renamed.email = Some("a@example.com".into());
        ahead.listed(vec![renamed, person("ou_b", "Changed too", &["od_1"])]);

        let chunk = ahead.chunk(10).expect("both users are ready");
        assert_eq!(chunk.users.len(), 2);
        // The chunk's users are read in full before it is planned.
        let need = ahead.outlines_in(&chunk);
        assert_eq!(need.len(), 2);
        ahead.fill(&need, full_copies(&full, &need)).unwrap();
        let plan = plan_with(&chunk, &ahead.state, &no_threshold());
        assert!(
            plan.steps.iter().all(|s| !s.action.is_deletion()),
            "a chunk decides no deletions: {:?}",
            plan.steps
        );
        for step in plan.steps.iter().filter(|s| Ahead::user_step(s, &chunk)) {
            // ou_b's write failed.
            ahead.took(step, step.external_id == "ou_a");
        }
        ahead.settle(chunk);

        let mut last = Snapshot::empty(ScopeKind::All);
        last.handed_on = ["ou_a", "ou_b"].map(String::from).into();
        ahead.finish(&mut last);
        assert_eq!(
            last.handed_on,
            ["ou_a".to_owned()].into(),
            "ou_a is settled"
        );
        assert!(
            last.users.contains_key("ou_b"),
            "ou_b goes to the final plan"
        );
        assert!(last.lists_user("ou_a") && last.lists_user("ou_b"));

        // The settled user is an outline with the version its write gave it.
        let a = user_by(&ahead.state, "ou_a");
        assert_eq!(a.profile, Profile::empty(), "its profile is dropped");
        assert!(a.departments.is_empty(), "and its memberships");
        assert_eq!(a.version, user_by(&full, "ou_a").version + 1);
        assert!(ahead.is_outline(a.id.as_str()));
        // The other was read in full and stays so for the final plan.
        let b = user_by(&ahead.state, "ou_b");
        assert!(b.profile.email.is_some() && !ahead.is_outline(b.id.as_str()));
    }

    #[test]
    fn a_full_copy_keeps_the_outline_version_and_a_vanished_user_is_an_error() {
        let (full, outline) = stored();
        let mut ahead = Ahead::new(outline, &ConnectionId::from(CONNECTION));
        let a = user_by(&full, "ou_a").clone();
        let mut newer = a.clone();
        newer.version += 3;
        newer.profile.name = Some("Changed by an event".into());
        ahead
            .fill(std::slice::from_ref(&a.id), vec![newer])
            .unwrap();
        let filled = user_by(&ahead.state, "ou_a");
        assert_eq!(filled.version, a.version, "a write from it must conflict");
        assert_eq!(filled.profile.name.as_deref(), Some("Changed by an event"));

        let b = user_by(&full, "ou_b").id.clone();
        let err = ahead
            .fill(std::slice::from_ref(&b), Vec::new())
            .unwrap_err();
        assert!(err.contains(b.as_str()), "{err}");
    }

    #[test]
    fn the_final_plan_reads_in_full_whom_it_may_merge_or_delete() {
        let (full, mut outline) = stored();
        // ou_c left long ago: disabled, and not looked at again.
        let c_id = user_by(&full, "ou_c").id.clone();
        let c = outline.users.iter_mut().find(|u| u.id == c_id).unwrap();
        c.status = crate::model::UserStatus::Resigned;
        let mut ahead = Ahead::new(outline, &ConnectionId::from(CONNECTION));
        let id_of = |ahead: &Ahead, ou: &str| UserId(ahead.stored_user(ou).unwrap().to_owned());

        // ou_a settled ahead, ou_b unlisted: only ou_b may be deleted.
        let mut last = Snapshot::empty(ScopeKind::All);
        last.handed_on.insert("ou_a".into());
        assert_eq!(ahead.outlines_for_final(&last), vec![id_of(&ahead, "ou_b")]);
        // A leaver look-up of ou_c is merged: read in full.
        last.leavers
            .insert("ou_c".into(), crate::snapshot::LeaverCheck::OutOfScope);
        let mut want = vec![id_of(&ahead, "ou_b"), id_of(&ahead, "ou_c")];
        let mut got = ahead.outlines_for_final(&last);
        want.sort();
        got.sort();
        assert_eq!(got, want);
        // Once read, nothing more is asked.
        let b = id_of(&ahead, "ou_b");
        let b_full = ahead.state.users[ahead.user_position(b.as_str()).unwrap()].clone();
        ahead.fill(std::slice::from_ref(&b), vec![b_full]).unwrap();
        assert_eq!(ahead.outlines_for_final(&last), vec![id_of(&ahead, "ou_c")]);
    }
}
