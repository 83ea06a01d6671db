-- A group's members paged by a key that never changes, (member_kind, member_id): positions
-- are renumbered whenever Feishu's member list is rewritten, so a walk by position could skip
-- or repeat a member (docs/read-model.md, rule 3).
CREATE INDEX group_members_by_group ON group_members (pool_id, group_id, member_kind, member_id);
