-- orgsync schema, SQLite. Times are Unix milliseconds (INTEGER); JSON is stored as TEXT.
-- Keep in step with migrations/postgres: same tables, columns and indexes.

CREATE TABLE pools (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

-- The per-pool change-log counter. `apply` increments it inside its transaction, so change
-- numbers follow commit order without gaps (a sequence would not, on PostgreSQL).
CREATE TABLE change_counters (
    pool_id  TEXT PRIMARY KEY REFERENCES pools (id),
    seq      INTEGER NOT NULL
);

CREATE TABLE connections (
    id                  TEXT PRIMARY KEY,
    pool_id             TEXT NOT NULL REFERENCES pools (id),
    identifier          TEXT NOT NULL,
    display_name        TEXT NOT NULL,
    provider            TEXT NOT NULL,
    base_url            TEXT,
    app_id              TEXT NOT NULL,
    app_secret          TEXT NOT NULL,
    encrypt_key         TEXT,
    verification_token  TEXT,
    settings            TEXT NOT NULL,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    UNIQUE (pool_id, identifier)
);

-- Users: real columns for what is searched, the whole profile as JSON (the source of truth
-- for the profile; the columns are copies for lookups).
CREATE TABLE users (
    pool_id      TEXT NOT NULL REFERENCES pools (id),
    id           TEXT NOT NULL,
    name         TEXT,
    en_name      TEXT,
    email        TEXT,
    mobile       TEXT,
    employee_no  TEXT,
    -- lower-cased name, en_name, email, mobile and employee_no: the free-text search target,
    -- folded in Rust so both backends match the same way (SQLite's lower() is ASCII-only).
    search_text  TEXT NOT NULL,
    status       TEXT NOT NULL,
    in_root      INTEGER NOT NULL,
    manager_id   TEXT,
    profile      TEXT NOT NULL,
    version      INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    deleted_at   INTEGER,
    PRIMARY KEY (pool_id, id)
);
CREATE INDEX users_by_created ON users (pool_id, created_at, id);
CREATE INDEX users_by_email ON users (pool_id, email);
CREATE INDEX users_by_mobile ON users (pool_id, mobile);
CREATE INDEX users_by_employee_no ON users (pool_id, employee_no);

-- A user's departments, in Feishu's order (`pos`).
CREATE TABLE user_departments (
    pool_id           TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    pos               INTEGER NOT NULL,
    department_id     TEXT NOT NULL,
    user_order        INTEGER,
    department_order  INTEGER,
    is_primary        INTEGER NOT NULL,
    PRIMARY KEY (pool_id, user_id, pos),
    FOREIGN KEY (pool_id, user_id) REFERENCES users (pool_id, id) ON DELETE CASCADE
);
CREATE INDEX user_departments_by_department ON user_departments (pool_id, department_id);

CREATE TABLE departments (
    pool_id     TEXT NOT NULL REFERENCES pools (id),
    id          TEXT NOT NULL,
    name        TEXT,
    i18n_name   TEXT,
    parent_id   TEXT,
    sort_order  INTEGER,
    chat_id     TEXT,
    version     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    deleted_at  INTEGER,
    PRIMARY KEY (pool_id, id)
);
CREATE INDEX departments_by_parent ON departments (pool_id, parent_id);
CREATE INDEX departments_by_created ON departments (pool_id, created_at, id);

CREATE TABLE department_leaders (
    pool_id        TEXT NOT NULL,
    department_id  TEXT NOT NULL,
    pos            INTEGER NOT NULL,
    user_id        TEXT NOT NULL,
    kind           TEXT NOT NULL,
    PRIMARY KEY (pool_id, department_id, pos),
    FOREIGN KEY (pool_id, department_id) REFERENCES departments (pool_id, id) ON DELETE CASCADE
);
CREATE INDEX department_leaders_by_user ON department_leaders (pool_id, user_id);

-- `groups` is a keyword in both dialects' window syntax: hence user_groups.
CREATE TABLE user_groups (
    pool_id      TEXT NOT NULL REFERENCES pools (id),
    id           TEXT NOT NULL,
    name         TEXT,
    description  TEXT,
    kind         TEXT NOT NULL,
    version      INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    deleted_at   INTEGER,
    PRIMARY KEY (pool_id, id)
);
CREATE INDEX user_groups_by_created ON user_groups (pool_id, created_at, id);

CREATE TABLE group_members (
    pool_id      TEXT NOT NULL,
    group_id     TEXT NOT NULL,
    pos          INTEGER NOT NULL,
    member_kind  TEXT NOT NULL,
    member_id    TEXT NOT NULL,
    PRIMARY KEY (pool_id, group_id, pos),
    FOREIGN KEY (pool_id, group_id) REFERENCES user_groups (pool_id, id) ON DELETE CASCADE
);
CREATE INDEX group_members_by_member ON group_members (pool_id, member_kind, member_id);

-- Sync relations: the Feishu identity of an object, per connection.
CREATE TABLE external_refs (
    connection_id  TEXT NOT NULL REFERENCES connections (id),
    kind           TEXT NOT NULL,
    external_id    TEXT NOT NULL,
    union_id       TEXT,
    custom_id      TEXT,
    object_id      TEXT NOT NULL,
    PRIMARY KEY (connection_id, kind, external_id)
);
CREATE INDEX external_refs_by_object ON external_refs (kind, object_id);

-- The change log: one row per object change, numbered per pool by change_counters.
CREATE TABLE changes (
    pool_id      TEXT NOT NULL REFERENCES pools (id),
    seq          INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    object_kind  TEXT NOT NULL,
    object_id    TEXT NOT NULL,
    version      INTEGER NOT NULL,
    source       TEXT NOT NULL,
    at           INTEGER NOT NULL,
    object       TEXT NOT NULL,
    PRIMARY KEY (pool_id, seq)
);

-- The per-object ordering guard of event application.
CREATE TABLE watermarks (
    connection_id  TEXT NOT NULL REFERENCES connections (id),
    object_key     TEXT NOT NULL,
    event_time     INTEGER NOT NULL,
    deleted        INTEGER NOT NULL,
    PRIMARY KEY (connection_id, object_key)
);

-- The durable event inbox. AUTOINCREMENT: ids are never reused (admins refer to them).
CREATE TABLE inbox (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    pool_id          TEXT NOT NULL,
    connection_id    TEXT NOT NULL,
    event_id         TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    created_at       INTEGER,
    received_at      INTEGER NOT NULL,
    payload          TEXT NOT NULL,
    state            TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    last_error       TEXT,
    outcome          TEXT,
    finished_at      INTEGER,
    claimed_by       TEXT,
    claimed_until    INTEGER NOT NULL DEFAULT 0,
    UNIQUE (connection_id, event_id)
);
-- Claiming walks a connection's pending events in created_at order; only pending rows matter.
CREATE INDEX inbox_pending ON inbox (connection_id, created_at, id) WHERE state = 'pending';
CREATE INDEX inbox_due ON inbox (next_attempt_at) WHERE state = 'pending';

CREATE TABLE jobs (
    id             TEXT PRIMARY KEY,
    pool_id        TEXT NOT NULL,
    connection_id  TEXT NOT NULL,
    kind           TEXT NOT NULL,
    job_trigger    TEXT NOT NULL,
    state          TEXT NOT NULL,
    verdict        TEXT,
    progress       TEXT NOT NULL,
    counts         TEXT NOT NULL,
    error          TEXT,
    error_code     INTEGER,
    started_at     INTEGER NOT NULL,
    finished_at    INTEGER,
    -- the last action-log seq handed out (the job row doubles as the log's counter)
    log_seq        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX jobs_by_started ON jobs (started_at, id);
CREATE INDEX jobs_by_connection ON jobs (connection_id, started_at, id);

CREATE TABLE action_log (
    job_id       TEXT NOT NULL REFERENCES jobs (id),
    seq          INTEGER NOT NULL,
    action       TEXT NOT NULL,
    kind         TEXT NOT NULL,
    external_id  TEXT NOT NULL,
    object_id    TEXT,
    name         TEXT,
    result       TEXT NOT NULL,
    reason       TEXT,
    at           INTEGER NOT NULL,
    PRIMARY KEY (job_id, seq)
);

-- One sync job per connection at a time, across instances.
CREATE TABLE leases (
    connection_id  TEXT PRIMARY KEY REFERENCES connections (id),
    holder         TEXT NOT NULL,
    expires_at     INTEGER NOT NULL
);

CREATE TABLE parked_deletions (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    pool_id        TEXT NOT NULL,
    connection_id  TEXT NOT NULL,
    job_id         TEXT NOT NULL,
    kind           TEXT NOT NULL,
    object_id      TEXT NOT NULL,
    external_id    TEXT NOT NULL,
    name           TEXT,
    reason         TEXT NOT NULL,
    state          TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    resolved_at    INTEGER
);
CREATE INDEX parked_by_pool ON parked_deletions (pool_id, state, id);
