//! Users: merged in snapshot order, managers before their reports (a reporting cycle gets its
//! last manager link afterwards); members of deleted departments that the pull did not merge
//! lose those memberships.

use crate::ids::UserId;
use crate::merge::{self, Merged};
use crate::model::{ActionResult, ObjectKind, SyncAction, User, UserStatus};

use super::resolve::manager_order;
use super::steps::{Chain, UserChange, unresolved_note};
use super::{Map, Planner, Set, Stored, UserJob, builder};

impl<'a> Planner<'a, '_> {
    pub(super) fn plan_users(&mut self, jobs: Vec<UserJob<'a>>) {
        // Users this plan creates or restores, by Feishu id: a report must come after them.
        let pending: Map<&str, usize> = jobs
            .iter()
            .enumerate()
            .filter(|(_, j)| j.failure.is_none() && !j.existing.is_some_and(|u| u.is_live()))
            .map(|(i, j)| (j.external_id, i))
            .collect();
        let mut emitted = vec![false; jobs.len()];
        let mut waiting: Vec<(usize, Merged<User>, usize)> = Vec::new();
        let mut fixups: Vec<(User, Chain, UserId, String)> = Vec::new();

        // Streamed in snapshot order; a user whose manager is still to come waits.
        for (i, job) in jobs.iter().enumerate() {
            if let Some(why) = &job.failure {
                self.push(
                    if job.existing.is_some() {
                        SyncAction::UpdateUser
                    } else {
                        SyncAction::CreateUser
                    },
                    ObjectKind::User,
                    job.external_id,
                    job.existing.map(|u| u.id.0.as_str()),
                    job.existing
                        .and_then(|u| u.profile.name.as_ref())
                        .or(job.feishu.name.as_ref()),
                    ActionResult::Failed,
                    Some(why.clone()),
                    Vec::new(),
                );
                continue;
            }
            let Some(m) = self.merge_job(job) else {
                continue;
            };
            let manager = job
                .feishu
                .leader_user_id
                .as_deref()
                .and_then(|m| pending.get(m).copied())
                .filter(|j| !emitted[*j]);
            match manager {
                Some(j) => waiting.push((i, m, j)),
                None => {
                    self.emit_merged(job, m, false, &mut fixups);
                    emitted[i] = true;
                }
            }
        }

        // The waiting ones, managers first; a reporting cycle gets its last link afterwards.
        let slot: Map<usize, usize> = waiting
            .iter()
            .enumerate()
            .map(|(k, (i, _, _))| (*i, k))
            .collect();
        let dependency: Vec<Option<usize>> = waiting
            .iter()
            .map(|(_, _, j)| {
                if emitted[*j] {
                    None
                } else {
                    slot.get(j).copied()
                }
            })
            .collect();
        let (order, cyclic) = manager_order(&dependency);
        let mut waiting: Vec<Option<(usize, Merged<User>, usize)>> =
            waiting.into_iter().map(Some).collect();
        for k in order {
            let Some((i, m, _)) = waiting[k].take() else {
                continue;
            };
            self.emit_merged(&jobs[i], m, cyclic[k], &mut fixups);
        }
        builder!(self, b);
        for (cur, chain, manager, ext) in fixups {
            b.manager_later(&ext, cur, chain, manager, &mut self.steps);
        }

        self.detach_from_doomed_departments(&jobs);
    }

    fn merge_job(&self, job: &UserJob<'a>) -> Option<Merged<User>> {
        let id = self.ids.users.get(job.external_id)?.clone().into_owned();
        let mut m = merge::merge_user(
            job.existing,
            job.feishu,
            job.listing,
            &self.ids,
            self.pool_id,
            id,
            self.now,
        );
        m.object.deleted_at = None;
        if job.resigned_by_lookup {
            m.object.status = UserStatus::Resigned;
            merge::detach(&mut m.object);
        }
        Some(m)
    }

    /// Emits a merged user; `defer_manager` holds its manager back for a later fix-up.
    fn emit_merged(
        &mut self,
        job: &UserJob<'a>,
        m: Merged<User>,
        defer_manager: bool,
        fixups: &mut Vec<(User, Chain, UserId, String)>,
    ) {
        let mut user = m.object;
        let note = unresolved_note(&m.unresolved);
        let deferred = if defer_manager {
            let real = user.manager_id.take();
            user.manager_id = job.existing.and_then(|e| e.manager_id.clone());
            real
        } else {
            None
        };
        let keep = deferred.is_some();
        if let (Some((cur, chain)), Some(manager)) =
            (self.emit_user(job, user, note, keep), deferred)
        {
            fixups.push((cur, chain, manager, job.external_id.to_owned()));
        }
    }

    /// Emits the steps of one merged user; returns its state and version chain afterwards
    /// when `keep` asks for them (to set a deferred manager).
    fn emit_user(
        &mut self,
        job: &UserJob<'a>,
        new: User,
        note: Option<String>,
        keep: bool,
    ) -> Option<(User, Chain)> {
        let change = UserChange {
            external_id: job.external_id,
            existing: job.existing,
            existing_ref: job.existing_ref,
            union_id: job.feishu.union_id.as_deref(),
            user_id: job.feishu.user_id.as_deref(),
            resigned_by_lookup: job.resigned_by_lookup,
        };
        builder!(self, b);
        b.user(&change, new, note, keep, &mut self.steps)
    }

    /// Users the pull did not merge but that are members of a department this plan deletes
    /// lose that membership (before the tombstone). Users applied ahead were merged then,
    /// from a record that named only departments of the pulled tree.
    fn detach_from_doomed_departments(&mut self, jobs: &[UserJob<'a>]) {
        if self.doomed_departments.is_empty() {
            return;
        }
        let merged: Set<&str> = jobs
            .iter()
            .filter(|j| j.failure.is_none())
            .map(|j| j.external_id)
            .collect();
        let live: Vec<(&'a str, &'a User)> = self
            .index
            .users
            .live()
            .filter_map(|(ext, k)| k.live().map(|u| (ext, u)))
            .collect();
        builder!(self, b);
        let doomed = &self.doomed_departments;
        let gone = |d: &crate::ids::DepartmentId| doomed.contains(d.0.as_str());
        for (ext, u) in live {
            if merged.contains(ext)
                || self.snapshot.handed_on.contains(ext)
                || self.doomed_users.contains(u.id.0.as_str())
            {
                continue;
            }
            b.detach_from_departments(ext, u, &gone, &mut self.steps);
        }
    }
}
