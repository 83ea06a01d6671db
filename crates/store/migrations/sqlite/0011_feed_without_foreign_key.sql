-- A feed row needs no foreign key to its pool: rows are only written by `apply`, in the
-- transaction that holds the pool's counter row, and a pool's deletion removes its feed
-- first. SQLite drops a constraint by rebuilding the table (docs/change-feed.md, "What the
-- feed costs").
CREATE TABLE feed_events_rebuilt (
    pool_id    TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    type       TEXT NOT NULL,
    object_id  TEXT,
    source     TEXT NOT NULL,
    at         INTEGER NOT NULL,
    data       TEXT NOT NULL,
    PRIMARY KEY (pool_id, seq)
);
INSERT INTO feed_events_rebuilt (pool_id, seq, type, object_id, source, at, data)
    SELECT pool_id, seq, type, object_id, source, at, data FROM feed_events;
DROP TABLE feed_events;
ALTER TABLE feed_events_rebuilt RENAME TO feed_events;
CREATE INDEX feed_events_by_time ON feed_events (pool_id, at);
