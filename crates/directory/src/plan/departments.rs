//! Departments: merged in parent-first order; leaders that name users created later in the
//! plan are set once the users exist.

use crate::merge::{self, Merged};
use crate::model::{ActionResult, ObjectKind, SyncAction};

use super::steps::{DeferredLeaders, ObjectChange, unresolved_note};
use super::{DepartmentOrder, Planner, builder};

impl<'a> Planner<'a, '_> {
    pub(super) fn plan_departments(&mut self, order: &DepartmentOrder<'a>) -> Vec<DeferredLeaders> {
        let snapshot = self.snapshot;
        for (ext, why) in &order.failed {
            let existing = self.index.departments.get(ext).and_then(|k| k.object);
            let f = snapshot.departments.get(*ext);
            self.push(
                if existing.is_some() {
                    SyncAction::UpdateDepartment
                } else {
                    SyncAction::CreateDepartment
                },
                ObjectKind::Department,
                ext,
                existing.map(|d| d.id.0.as_str()),
                existing
                    .and_then(|d| d.name.as_ref())
                    .or(f.and_then(|f| f.name.as_ref())),
                ActionResult::Failed,
                Some(why.clone()),
                Vec::new(),
            );
        }

        let mut deferred = Vec::new();
        for (ext, f) in &order.ordered {
            let known = self.index.departments.get(ext);
            let existing = known.and_then(|k| k.object);
            let Some(id) = self
                .ids
                .departments
                .get(ext)
                .map(|id| id.clone().into_owned())
            else {
                continue;
            };
            let Merged {
                object: mut new,
                unresolved,
            } = merge::merge_department(existing, f, &self.ids, self.pool_id, id, self.now);
            new.deleted_at = None;
            // Leaders naming users that do not exist yet are set after the users.
            let leaders_exist = new
                .leaders
                .iter()
                .all(|l| self.index.users.is_live_id(&l.user_id.0));
            let change = ObjectChange {
                external_id: ext,
                existing,
                existing_ref: known.map(|k| k.sync_ref),
                custom_id: f.department_id.as_deref(),
            };
            builder!(self, b);
            let later = b.department(
                &change,
                new,
                unresolved_note(&unresolved),
                leaders_exist,
                &mut self.steps,
            );
            deferred.extend(later);
        }
        deferred
    }

    pub(super) fn plan_leaders(&mut self, deferred: Vec<DeferredLeaders>) {
        builder!(self, b);
        for d in deferred {
            b.leaders_later(d, &mut self.steps);
        }
    }
}
