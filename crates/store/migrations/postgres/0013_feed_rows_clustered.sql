-- The Feishu ids of an object are read with the object's changes: their index by object holds
-- every column a read needs, so the table itself is not visited (docs/change-feed.md, "What
-- the feed costs"). The feed's own table stays as it is: PostgreSQL has no clustered tables.
CREATE INDEX external_refs_by_object_whole
    ON external_refs (kind, object_id) INCLUDE (connection_id, external_id, union_id, custom_id);
DROP INDEX external_refs_by_object;
