//! Resolution: the parent-first order of the snapshot's departments, the users to merge, and
//! the orgsync id of everything that exists once the plan is applied.

use std::borrow::Cow;
use std::collections::VecDeque;

use feishu::model as fs;

use crate::ids::{DepartmentId, GroupId, UserId};
use crate::merge::{self, Listing};
use crate::model::{ActionResult, ObjectKind, SyncAction, UserStatus};
use crate::snapshot::{LeaverCheck, ROOT};

use super::{DepartmentOrder, Map, Planner, Set, Stored, UserJob, live_snapshot_departments};

impl<'a> Planner<'a, '_> {
    /// Parent-first order of the snapshot's departments (breadth-first from those whose
    /// parent is the root, unknown or outside the snapshot). What is not reached sits in or
    /// under a parent cycle.
    pub(super) fn order_departments(&self) -> DepartmentOrder<'a> {
        let snapshot = self.snapshot;
        let present: Map<&str, &fs::Department> = live_snapshot_departments(snapshot)
            .map(|(k, d)| (k.as_str(), d))
            .collect();
        let parent_of = |d: &'a fs::Department| -> Option<&'a str> {
            d.parent_department_id
                .as_deref()
                .filter(|p| *p != ROOT && present.contains_key(p))
        };
        let mut children: Map<&str, Vec<&str>> = Map::default();
        let mut queue = VecDeque::new();
        for (ext, d) in live_snapshot_departments(snapshot) {
            match parent_of(d) {
                Some(p) => children.entry(p).or_default().push(ext),
                None => queue.push_back(ext.as_str()),
            }
        }
        let mut ordered = Vec::with_capacity(present.len());
        let mut reached = Set::with_capacity_and_hasher(present.len(), Default::default());
        while let Some(ext) = queue.pop_front() {
            if !reached.insert(ext) {
                continue;
            }
            if let Some(d) = present.get(ext) {
                ordered.push((ext, *d));
            }
            if let Some(kids) = children.get(ext) {
                queue.extend(kids.iter().copied());
            }
        }
        let mut failed = Vec::new();
        for (ext, _) in live_snapshot_departments(snapshot) {
            if reached.contains(ext.as_str()) {
                continue;
            }
            // Walk up to find the cycle, to name it.
            let mut path: Vec<&str> = vec![ext];
            let mut cur = ext.as_str();
            let reason = loop {
                let Some(p) = present.get(cur).and_then(|d| parent_of(d)) else {
                    break "parent chain could not be placed".to_owned();
                };
                if let Some(at) = path.iter().position(|x| *x == p) {
                    let cycle: Vec<&str> = path[at..].iter().copied().chain([p]).collect();
                    break if at == 0 {
                        format!("parent cycle in the snapshot: {}", cycle.join(" → "))
                    } else {
                        format!("ancestor {p} is in a parent cycle: {}", cycle.join(" → "))
                    };
                }
                if path.len() > present.len() {
                    break "parent chain could not be placed".to_owned();
                }
                path.push(p);
                cur = p;
            };
            failed.push((ext.as_str(), reason));
        }
        DepartmentOrder { ordered, failed }
    }

    pub(super) fn resolve_departments(&mut self, order: &DepartmentOrder<'a>) {
        self.ids
            .departments
            .reserve(self.index.departments.order.len() + order.ordered.len());
        for (ext, known) in self.index.departments.live() {
            if let Some(d) = known.live()
                && !self.doomed_departments.contains(d.id.0.as_str())
            {
                self.ids.departments.insert(ext, Cow::Borrowed(&d.id));
            }
        }
        for (ext, _) in &order.ordered {
            let id = match self.index.departments.get(ext).and_then(|k| k.object) {
                Some(d) => Cow::Borrowed(&d.id),
                None => {
                    let id = self.fresh();
                    self.ids.new_departments.insert(id.clone(), ext);
                    Cow::Owned(DepartmentId(id))
                }
            };
            self.ids.departments.insert(ext, id);
        }
    }

    /// The users the plan merges from a Feishu object: the listed ones, and looked-up leavers
    /// that are still readable (resigned or moved out of the synced part).
    pub(super) fn user_jobs(
        &mut self,
        failed_departments: &[(&'a str, String)],
    ) -> Vec<UserJob<'a>> {
        let snapshot = self.snapshot;
        let authoritative = snapshot.completeness.users;
        let failed: Map<&str, &str> = failed_departments
            .iter()
            .map(|(ext, why)| (*ext, why.as_str()))
            .collect();
        let mut jobs = Vec::with_capacity(snapshot.users.len());
        for (ext, su) in &snapshot.users {
            let known = self.index.users.get(ext);
            jobs.push(UserJob {
                external_id: ext,
                existing: known.and_then(|k| k.object),
                existing_ref: known.map(|k| k.sync_ref),
                feishu: &su.user,
                listing: if authoritative {
                    Listing::Authoritative(&su.listed_in)
                } else {
                    Listing::Partial(&su.listed_in)
                },
                resigned_by_lookup: false,
                failure: None,
            });
        }
        for (ext, check) in &snapshot.leavers {
            if snapshot.lists_user(ext) {
                continue;
            }
            let (user, resigned) = match check {
                LeaverCheck::Resigned { user } => (user, true),
                LeaverCheck::Present { user } => (user, false),
                LeaverCheck::OutOfScope | LeaverCheck::Failed { .. } => continue,
            };
            let action = if resigned {
                SyncAction::DisableUser
            } else {
                SyncAction::UpdateUser
            };
            let known = self.index.users.get(ext);
            match known.and_then(|k| k.object) {
                None => self.push(
                    action,
                    ObjectKind::User,
                    ext,
                    None,
                    user.name.as_ref(),
                    ActionResult::Skipped,
                    Some("looked up as a leaver but not in the directory".to_owned()),
                    Vec::new(),
                ),
                // Already tombstoned: absent from the pull, nothing to undo.
                Some(u) if !u.is_live() => {}
                Some(u) => jobs.push(UserJob {
                    external_id: ext,
                    existing: Some(u),
                    existing_ref: known.map(|k| k.sync_ref),
                    feishu: user,
                    // Not listed anywhere: with a complete listing, in no synced department.
                    listing: if authoritative {
                        Listing::Authoritative(&[])
                    } else {
                        Listing::Partial(&[])
                    },
                    resigned_by_lookup: resigned,
                    failure: None,
                }),
            }
        }
        // A user in a department that could not be planned (and does not exist) is a bad
        // record: planning it would drop a membership Feishu states.
        if !failed.is_empty() {
            for job in &mut jobs {
                if job.resigned_by_lookup
                    || merge::status_of(job.feishu) == Some(UserStatus::Resigned)
                {
                    continue;
                }
                let referenced: Vec<&str> = match merge::stated_departments(job.feishu) {
                    Some(ids) => ids,
                    None => match job.listing {
                        Listing::Authoritative(l) | Listing::Partial(l) => {
                            l.iter().map(String::as_str).collect()
                        }
                    },
                };
                if let Some(od) = referenced
                    .into_iter()
                    .find(|od| failed.contains_key(od) && !self.ids.departments.contains_key(od))
                {
                    job.failure = Some(format!(
                        "department {od} could not be planned ({})",
                        failed.get(od).copied().unwrap_or_default()
                    ));
                }
            }
        }
        jobs
    }

    pub(super) fn resolve_users(&mut self, jobs: &[UserJob<'a>]) {
        self.ids
            .users
            .reserve(self.index.users.order.len() + jobs.len());
        for (ext, known) in self.index.users.live() {
            if let Some(u) = known.live()
                && !self.doomed_users.contains(u.id.0.as_str())
            {
                self.ids.users.insert(ext, Cow::Borrowed(&u.id));
            }
        }
        for job in jobs {
            if job.failure.is_some() {
                continue;
            }
            let id = match job.existing {
                Some(u) if u.is_live() => continue, // already resolvable
                Some(u) => Cow::Borrowed(&u.id),
                None => {
                    let id = self.fresh();
                    self.ids.new_users.insert(id.clone(), job.external_id);
                    Cow::Owned(UserId(id))
                }
            };
            self.ids.users.insert(job.external_id, id);
        }
    }

    pub(super) fn resolve_groups(&mut self) {
        let snapshot = self.snapshot;
        for (ext, known) in self.index.groups.live() {
            if let Some(g) = known.live()
                && !self.doomed_groups.contains(g.id.0.as_str())
            {
                self.ids.groups.insert(ext, Cow::Borrowed(&g.id));
            }
        }
        for ext in snapshot.groups.keys() {
            if !self.ids.groups.contains_key(ext.as_str()) {
                let id = match self.index.groups.get(ext).and_then(|k| k.object) {
                    Some(g) => Cow::Borrowed(&g.id),
                    None => Cow::Owned(GroupId(self.fresh())),
                };
                self.ids.groups.insert(ext, id);
            }
        }
    }
}

/// Emission order for users whose manager the plan also creates: managers first. Each user
/// has at most one such edge, so the graph is a functional graph; a cycle is broken at the
/// user whose edge closes it (`cyclic[i]`: set that manager afterwards).
pub(super) fn manager_order(dependency: &[Option<usize>]) -> (Vec<usize>, Vec<bool>) {
    const NEW: u8 = 0;
    const ON_PATH: u8 = 1;
    const DONE: u8 = 2;
    let n = dependency.len();
    let mut state = vec![NEW; n];
    let mut cyclic = vec![false; n];
    let mut order = Vec::with_capacity(n);
    let mut path = Vec::new();
    for start in 0..n {
        if state[start] != NEW {
            continue;
        }
        path.clear();
        let mut cur = Some(start);
        while let Some(c) = cur {
            if state[c] != NEW {
                break;
            }
            state[c] = ON_PATH;
            path.push(c);
            cur = dependency[c];
        }
        if let (Some(c), Some(&last)) = (cur, path.last())
            && state[c] == ON_PATH
        {
            cyclic[last] = true;
        }
        for &c in path.iter().rev() {
            state[c] = DONE;
            order.push(c);
        }
    }
    (order, cyclic)
}
