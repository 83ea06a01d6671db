//! Deletions: decided first (so that the rest of the plan resolves references only to objects
//! that stay), held back by a partial view or the per-type threshold, emitted last.

use crate::model::{ActionResult, ConnectionSettings, ObjectKind, SyncAction, UserStatus};
use crate::snapshot::LeaverCheck;

use super::steps::{Dependents, Doomed};
use super::{Deletion, Planner, Set, builder, live_snapshot_departments};

impl<'a> Planner<'a, '_> {
    /// Decides every deletion first, so that the rest of the plan resolves references only to
    /// objects that will still be live.
    pub(super) fn decide_deletions(&mut self, settings: &ConnectionSettings) -> Vec<Deletion<'a>> {
        let snapshot = self.snapshot;
        if snapshot.chunk {
            return Vec::new();
        }
        let full = snapshot.completeness.is_full();
        let partial_reason = || {
            format!(
                "snapshot partial ({} incomplete): no deletions",
                self.incomplete_parts()
            )
        };
        let mut out = Vec::new();

        // Groups.
        let mut candidates = Vec::new();
        for (ext, known) in self.index.groups.live() {
            if !snapshot.groups.contains_key(ext)
                && let Some(g) = known.live()
            {
                candidates.push(Deletion {
                    action: SyncAction::DeleteGroup,
                    kind: ObjectKind::Group,
                    external_id: ext,
                    object_id: g.id.0.clone(),
                    name: g.name.clone(),
                    result: ActionResult::Applied,
                    reason: "absent from Feishu (complete snapshot)".to_owned(),
                });
            }
        }
        let live = self.index.groups.live_count();
        out.extend(self.threshold(candidates, live, settings, full, &partial_reason));

        // Users: only a lookup can confirm a user is gone.
        let mut candidates = Vec::new();
        let mut unconfirmed = Vec::new();
        for (ext, known) in self.index.users.live() {
            let Some(u) = known.live() else { continue };
            if snapshot.lists_user(ext) {
                continue;
            }
            // A leaver already disabled: resigned users are never listed and not looked up
            // again, so their absence is expected, not an unconfirmed deletion.
            if u.status == UserStatus::Resigned && !snapshot.leavers.contains_key(ext) {
                continue;
            }
            let deletion = |result, reason: String| Deletion {
                action: SyncAction::DeleteUser,
                kind: ObjectKind::User,
                external_id: ext,
                object_id: u.id.0.clone(),
                name: u.profile.name.clone(),
                result,
                reason,
            };
            match snapshot.leavers.get(ext) {
                // Updated (or disabled) from the returned object.
                Some(LeaverCheck::Resigned { .. } | LeaverCheck::Present { .. }) => {}
                Some(LeaverCheck::OutOfScope) => candidates.push(deletion(
                    ActionResult::Applied,
                    "no longer in the app's contact scope (41050)".to_owned(),
                )),
                Some(LeaverCheck::Failed { error }) => unconfirmed.push(deletion(
                    ActionResult::Skipped,
                    format!("absent from the pull, lookup failed ({error}): not deleted"),
                )),
                None if full => unconfirmed.push(deletion(
                    ActionResult::Skipped,
                    "absent from the pull and not looked up: not confirmed, not deleted".to_owned(),
                )),
                None => unconfirmed.push(deletion(ActionResult::Skipped, partial_reason())),
            }
        }
        let live = self.index.users.live_count();
        out.extend(self.threshold(candidates, live, settings, full, &partial_reason));
        out.extend(unconfirmed);

        // Departments.
        let present: Set<&str> = live_snapshot_departments(snapshot)
            .map(|(k, _)| k.as_str())
            .collect();
        let mut candidates = Vec::new();
        for (ext, known) in self.index.departments.live() {
            if !present.contains(ext)
                && let Some(d) = known.live()
            {
                candidates.push(Deletion {
                    action: SyncAction::DeleteDepartment,
                    kind: ObjectKind::Department,
                    external_id: ext,
                    object_id: d.id.0.clone(),
                    name: d.name.clone(),
                    result: ActionResult::Applied,
                    reason: "absent from Feishu (complete snapshot)".to_owned(),
                });
            }
        }
        let live = self.index.departments.live_count();
        out.extend(self.threshold(candidates, live, settings, full, &partial_reason));

        for d in &out {
            if d.result == ActionResult::Applied {
                let doomed = match d.kind {
                    ObjectKind::User => &mut self.doomed_users,
                    ObjectKind::Department => &mut self.doomed_departments,
                    ObjectKind::Group => &mut self.doomed_groups,
                };
                doomed.insert(d.object_id.clone());
            }
        }
        out
    }

    /// Applies the verdict and the per-type threshold to one type's deletion candidates.
    fn threshold(
        &self,
        mut candidates: Vec<Deletion<'a>>,
        live: usize,
        settings: &ConnectionSettings,
        full: bool,
        partial_reason: &dyn Fn() -> String,
    ) -> Vec<Deletion<'a>> {
        let Some(first) = candidates.first() else {
            return candidates;
        };
        if !full {
            let reason = partial_reason();
            for c in &mut candidates {
                c.result = ActionResult::Skipped;
                c.reason.clone_from(&reason);
            }
            return candidates;
        }
        let n = candidates.len();
        let t = settings.deletion_threshold;
        let fraction_limit = t.max_fraction * live as f64;
        if n as u64 > t.max_count || n as f64 > fraction_limit {
            let reason = format!(
                "{n} {} deletions exceed the threshold (at most {} and at most {}% of {live} live = {}): parked for approval",
                first.kind.as_str(),
                t.max_count,
                t.max_fraction * 100.0,
                fraction_limit.floor(),
            );
            for c in &mut candidates {
                c.result = ActionResult::Parked;
                c.reason = format!("{}; {}", c.reason, reason);
            }
        }
        candidates
    }

    // ---- emission ----------------------------------------------------------------------

    pub(super) fn plan_deletions(&mut self, deletions: Vec<Deletion<'a>>) {
        for d in deletions {
            if d.result != ActionResult::Applied {
                self.push(
                    d.action,
                    d.kind,
                    d.external_id,
                    Some(&d.object_id),
                    d.name.as_ref(),
                    d.result,
                    Some(d.reason),
                    Vec::new(),
                );
                continue;
            }
            let object = match d.kind {
                ObjectKind::User => self
                    .index
                    .users
                    .get(d.external_id)
                    .and_then(|k| k.object)
                    .map(Doomed::User),
                ObjectKind::Department => self
                    .index
                    .departments
                    .get(d.external_id)
                    .and_then(|k| k.object)
                    .map(Doomed::Department),
                ObjectKind::Group => self
                    .index
                    .groups
                    .get(d.external_id)
                    .and_then(|k| k.object)
                    .map(Doomed::Group),
            };
            let Some(object) = object else { continue };
            // Dependents were detached earlier in the plan (users merged without the
            // department, groups without the member, the rest by
            // `detach_from_doomed_departments` and `plan_groups`).
            builder!(self, b);
            b.deletion(
                d.external_id,
                object,
                &Dependents::default(),
                Some(d.reason),
                &mut self.steps,
            );
        }
    }
}
