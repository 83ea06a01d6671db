-- The change feed, service credentials and webhooks (docs/change-feed.md,
-- docs/service-credentials.md, docs/webhooks.md).

-- The feed is numbered by the pool's counter row, like the change log: `apply` moves
-- `feed_seq` in the transaction that writes the events, so feed numbers follow commit order
-- without gaps. `feed_pruned_through`: the highest number retention removed; a cursor below it
-- has lost events.
ALTER TABLE change_counters ADD COLUMN feed_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE change_counters ADD COLUMN feed_pruned_through INTEGER NOT NULL DEFAULT 0;

-- Per-pool feed settings.
ALTER TABLE pools ADD COLUMN feed_retention_days INTEGER NOT NULL DEFAULT 30;
ALTER TABLE pools ADD COLUMN feed_initial_import_events BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE feed_events (
    pool_id    TEXT NOT NULL REFERENCES pools (id),
    seq        INTEGER NOT NULL,
    type       TEXT NOT NULL,
    object_id  TEXT,
    source     TEXT NOT NULL,
    at         INTEGER NOT NULL,
    data       TEXT NOT NULL,
    PRIMARY KEY (pool_id, seq)
);

-- Replaying a webhook from a time finds its first event here.
CREATE INDEX feed_events_by_time ON feed_events (pool_id, at);

-- A per-pool credential of a downstream system. Only a keyed hash of its secret is kept.
CREATE TABLE service_credentials (
    id            TEXT PRIMARY KEY,
    pool_id       TEXT NOT NULL REFERENCES pools (id),
    name          TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    secret_hash   TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    last_used_at  INTEGER,
    revoked_at    INTEGER
);

CREATE UNIQUE INDEX service_credentials_name ON service_credentials (pool_id, name)
    WHERE revoked_at IS NULL;
CREATE INDEX service_credentials_by_pool ON service_credentials (pool_id, created_at, id);

-- Webhook endpoints (docs/webhooks.md): each delivers the feed from its own cursor.
CREATE TABLE webhook_endpoints (
    id                TEXT PRIMARY KEY,
    pool_id           TEXT NOT NULL REFERENCES pools (id),
    url               TEXT NOT NULL,
    description       TEXT NOT NULL,
    types             TEXT NOT NULL,
    secret            TEXT NOT NULL,
    previous_secret   TEXT,
    previous_until    INTEGER,
    state             TEXT NOT NULL,
    disabled_reason   TEXT,
    cursor            INTEGER NOT NULL,
    failures          INTEGER NOT NULL,
    next_attempt_at   INTEGER NOT NULL,
    lease_holder      TEXT,
    lease_until       INTEGER,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);

CREATE INDEX webhook_endpoints_by_pool ON webhook_endpoints (pool_id, created_at, id);

CREATE TABLE webhook_attempts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint_id  TEXT NOT NULL REFERENCES webhook_endpoints (id),
    seq          INTEGER NOT NULL,
    event_id     TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    attempt      INTEGER NOT NULL,
    at           INTEGER NOT NULL,
    status       INTEGER,
    error        TEXT,
    latency_ms   INTEGER NOT NULL,
    response     TEXT
);

CREATE INDEX webhook_attempts_by_endpoint ON webhook_attempts (endpoint_id, id);
CREATE INDEX webhook_attempts_by_time ON webhook_attempts (at);
