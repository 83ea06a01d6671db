-- The feed's rows are stored in their primary key's order (WITHOUT ROWID): an append writes
-- the row into one B-tree instead of a table and a separate index of (pool_id, seq). The Feishu
-- ids of an object are read with the object's changes, so their index by object holds every
-- column a read needs and the table itself is not visited (docs/change-feed.md, "What the feed
-- costs").
CREATE TABLE feed_events_clustered (
    pool_id       TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    type          TEXT NOT NULL,
    object_id     TEXT,
    source        TEXT NOT NULL,
    at            INTEGER NOT NULL,
    data          TEXT NOT NULL,
    change_seq    INTEGER,
    external_ids  TEXT,
    PRIMARY KEY (pool_id, seq)
) WITHOUT ROWID;
INSERT INTO feed_events_clustered
    (pool_id, seq, type, object_id, source, at, data, change_seq, external_ids)
    SELECT pool_id, seq, type, object_id, source, at, data, change_seq, external_ids
    FROM feed_events;
DROP TABLE feed_events;
ALTER TABLE feed_events_clustered RENAME TO feed_events;
CREATE INDEX feed_events_by_time ON feed_events (pool_id, at);

CREATE INDEX external_refs_by_object_whole
    ON external_refs (kind, object_id, connection_id, external_id, union_id, custom_id);
DROP INDEX external_refs_by_object;
