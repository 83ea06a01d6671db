-- The read model (docs/read-model.md): what lets every directory read answer from an index.
--
-- subtree_members: one row per live user and per live department the user is in, directly
-- (direct = 1) or below it (direct = 0): the department's subtree members, walked in user-id
-- order without visiting the rest of the pool. The write path keeps it in step, in the same
-- transaction as the users and departments it derives from.
CREATE TABLE subtree_members (
    pool_id        TEXT NOT NULL,
    department_id  TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    direct         INTEGER NOT NULL,
    PRIMARY KEY (pool_id, department_id, user_id)
) WITHOUT ROWID;
CREATE INDEX subtree_members_direct ON subtree_members (pool_id, department_id, user_id)
    WHERE direct = 1;
CREATE INDEX subtree_members_by_user ON subtree_members (pool_id, user_id);

-- Member counts per department, adjusted by the write path with every change of
-- subtree_members (so a tree level shows its counts without counting).
CREATE TABLE department_stats (
    pool_id          TEXT NOT NULL,
    department_id    TEXT NOT NULL,
    direct_members   INTEGER NOT NULL,
    subtree_members  INTEGER NOT NULL,
    PRIMARY KEY (pool_id, department_id)
) WITHOUT ROWID;

-- The user list filtered by status, in its usual order.
CREATE INDEX users_by_status ON users (pool_id, status, created_at, id);
-- The children of tombstoned departments are roots of the tree until they move.
CREATE INDEX departments_tombstoned ON departments (pool_id, id) WHERE deleted_at IS NOT NULL;

-- Build both from what is stored.
INSERT INTO subtree_members (pool_id, department_id, user_id, direct)
WITH RECURSIVE up (pool_id, user_id, department_id, direct) AS (
    SELECT m.pool_id, m.user_id, m.department_id, 1
    FROM user_departments m
    JOIN users u ON u.pool_id = m.pool_id AND u.id = m.user_id AND u.deleted_at IS NULL
    JOIN departments d ON d.pool_id = m.pool_id AND d.id = m.department_id
        AND d.deleted_at IS NULL
    UNION
    SELECT up.pool_id, up.user_id, p.id, 0
    FROM up
    JOIN departments c ON c.pool_id = up.pool_id AND c.id = up.department_id
    JOIN departments p ON p.pool_id = c.pool_id AND p.id = c.parent_id AND p.deleted_at IS NULL
)
SELECT pool_id, department_id, user_id, MAX(direct) FROM up
GROUP BY pool_id, department_id, user_id;

INSERT INTO department_stats (pool_id, department_id, direct_members, subtree_members)
SELECT pool_id, department_id, SUM(direct), COUNT(*) FROM subtree_members
GROUP BY pool_id, department_id;

-- Free-text search (name, English name, e-mail, mobile, employee number; substrings of three
-- characters or more): a trigram index. Each user has a row number for life in
-- user_search_keys; the index holds only the folded text under that number.
CREATE TABLE user_search_keys (
    n        INTEGER PRIMARY KEY,
    pool_id  TEXT NOT NULL,
    user_id  TEXT NOT NULL,
    UNIQUE (pool_id, user_id)
);
CREATE VIRTUAL TABLE user_search USING fts5 (
    text, tokenize = 'trigram', content = '', contentless_delete = 1
);
INSERT INTO user_search_keys (pool_id, user_id) SELECT pool_id, id FROM users ORDER BY pool_id, created_at, id;
INSERT INTO user_search (rowid, text)
SELECT k.n, u.search_text FROM users u JOIN user_search_keys k ON k.pool_id = u.pool_id AND k.user_id = u.id;
