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
    direct         BIGINT NOT NULL,
    PRIMARY KEY (pool_id, department_id, user_id)
);
CREATE INDEX subtree_members_direct ON subtree_members (pool_id, department_id, user_id)
    WHERE direct = 1;
CREATE INDEX subtree_members_by_user ON subtree_members (pool_id, user_id);

-- Member counts per department, adjusted by the write path with every change of
-- subtree_members (so a tree level shows its counts without counting).
CREATE TABLE department_stats (
    pool_id          TEXT NOT NULL,
    department_id    TEXT NOT NULL,
    direct_members   BIGINT NOT NULL,
    subtree_members  BIGINT NOT NULL,
    PRIMARY KEY (pool_id, department_id)
);

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

-- Free-text search (substrings of three characters or more) through a trigram index, when the
-- pg_trgm extension is there or can be created (it ships with PostgreSQL's contrib and is
-- trusted: the database owner may create it; it goes to `public` when that schema exists).
-- Without it, searches still work, by walking the users.
DO $$
DECLARE
    trgm_schema text;
BEGIN
    SELECT n.nspname INTO trgm_schema FROM pg_extension e
        JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm';
    IF trgm_schema IS NULL THEN
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'public') THEN
                CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;
            ELSE
                CREATE EXTENSION IF NOT EXISTS pg_trgm;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            RAISE NOTICE 'pg_trgm is not available (%): user search walks the pool', SQLERRM;
        END;
        SELECT n.nspname INTO trgm_schema FROM pg_extension e
            JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm';
    END IF;
    IF trgm_schema IS NOT NULL THEN
        EXECUTE format(
            'CREATE INDEX users_by_search_trigram ON users USING gin (search_text %I.gin_trgm_ops)',
            trgm_schema
        );
    END IF;
END
$$;
