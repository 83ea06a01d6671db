//! Groups: merged from the snapshot without members this plan deletes; live groups the pull
//! did not return lose those members too.

use crate::merge::{self, Merged};
use crate::model::{Group, GroupMember};
use crate::snapshot::SnapshotGroup;

use super::steps::{ObjectChange, unresolved_note};
use super::{Planner, builder};

impl<'a> Planner<'a, '_> {
    fn is_doomed_member(&self, m: &GroupMember) -> bool {
        match m {
            GroupMember::User(u) => self.doomed_users.contains(u.0.as_str()),
            GroupMember::Department(d) => self.doomed_departments.contains(d.0.as_str()),
        }
    }

    pub(super) fn plan_groups(&mut self) {
        let snapshot = self.snapshot;
        for (ext, sg) in &snapshot.groups {
            self.plan_group(ext, sg);
        }
        // Live groups the pull did not return (partial or parked) keep their members, except
        // users and departments this plan deletes.
        if self.doomed_users.is_empty() && self.doomed_departments.is_empty() {
            return;
        }
        let stale: Vec<(&'a str, &'a Group)> = self
            .index
            .groups
            .live()
            .filter(|(ext, _)| !snapshot.groups.contains_key(*ext))
            .filter_map(|(ext, k)| k.live().map(|g| (ext, g)))
            .filter(|(_, g)| !self.doomed_groups.contains(g.id.0.as_str()))
            .collect();
        builder!(self, b);
        let (users, departments) = (&self.doomed_users, &self.doomed_departments);
        let gone = |m: &GroupMember| match m {
            GroupMember::User(u) => users.contains(u.0.as_str()),
            GroupMember::Department(d) => departments.contains(d.0.as_str()),
        };
        for (ext, g) in stale {
            b.remove_members(ext, g, &gone, &mut self.steps);
        }
    }

    fn plan_group(&mut self, ext: &'a str, sg: &'a SnapshotGroup) {
        let known = self.index.groups.get(ext);
        let existing = known.and_then(|k| k.object);
        let Some(id) = self.ids.groups.get(ext).map(|id| id.clone().into_owned()) else {
            return;
        };
        let Merged {
            object: mut new,
            unresolved,
        } = merge::merge_group(existing, sg, &self.ids, self.pool_id, id, self.now);
        new.deleted_at = None;
        new.members.retain(|m| !self.is_doomed_member(m));
        let change = ObjectChange {
            external_id: ext,
            existing,
            existing_ref: known.map(|k| k.sync_ref),
            custom_id: sg.group.group_id.as_deref(),
        };
        builder!(self, b);
        b.group(&change, new, unresolved_note(&unresolved), &mut self.steps);
    }
}
