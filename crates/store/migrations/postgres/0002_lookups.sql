-- Admin look-ups: a user by union_id or user_id, one object's history.
CREATE INDEX external_refs_by_union_id ON external_refs (connection_id, kind, union_id);
CREATE INDEX external_refs_by_custom_id ON external_refs (connection_id, kind, custom_id);
CREATE INDEX changes_by_object ON changes (pool_id, object_kind, object_id, seq);
