-- The change feed and service credentials (docs/change-feed.md, docs/service-credentials.md).

-- The feed is numbered by the pool's counter row, like the change log: `apply` moves
-- `feed_seq` in the transaction that writes the events, so feed numbers follow commit order
-- without gaps. `feed_pruned_through`: the highest number retention removed; a cursor below it
-- has lost events.
ALTER TABLE change_counters ADD COLUMN feed_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE change_counters ADD COLUMN feed_pruned_through BIGINT NOT NULL DEFAULT 0;

-- Per-pool feed settings.
ALTER TABLE pools ADD COLUMN feed_retention_days BIGINT NOT NULL DEFAULT 30;
ALTER TABLE pools ADD COLUMN feed_initial_import_events BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE feed_events (
    pool_id    TEXT NOT NULL REFERENCES pools (id),
    seq        BIGINT NOT NULL,
    type       TEXT NOT NULL,
    object_id  TEXT,
    source     JSONB NOT NULL,
    at         BIGINT NOT NULL,
    data       JSONB NOT NULL,
    PRIMARY KEY (pool_id, seq)
);

-- A per-pool credential of a downstream system. Only a keyed hash of its secret is kept.
CREATE TABLE service_credentials (
    id            TEXT PRIMARY KEY,
    pool_id       TEXT NOT NULL REFERENCES pools (id),
    name          TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    secret_hash   TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    last_used_at  BIGINT,
    revoked_at    BIGINT
);

CREATE UNIQUE INDEX service_credentials_name ON service_credentials (pool_id, name)
    WHERE revoked_at IS NULL;
CREATE INDEX service_credentials_by_pool ON service_credentials (pool_id, created_at, id);
