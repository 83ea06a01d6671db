-- The LDAP view (docs/ldap.md): per-pool settings, the indexes that find a person by login
-- and by address, and app passwords.

-- A pool's settings; a pool without a row has the defaults.
CREATE TABLE ldap_settings (
    pool_id             TEXT PRIMARY KEY REFERENCES pools (id),
    base_dn             TEXT,
    login               TEXT NOT NULL,
    department_members  TEXT NOT NULL,
    posix               BOOLEAN NOT NULL DEFAULT FALSE,
    posix_id_base       BIGINT NOT NULL DEFAULT 10000,
    updated_at          BIGINT NOT NULL
);

-- The enterprise address (so far only inside `profile`) and the folded local part of the
-- address a login comes from (enterprise address first), both written by the write path.
ALTER TABLE users ADD COLUMN enterprise_email TEXT;
ALTER TABLE users ADD COLUMN mail_local TEXT;
-- When a group last added or removed the user: its entry's modifyTimestamp moves with its
-- group memberships too (tools sync changed entries by it).
ALTER TABLE users ADD COLUMN membership_at BIGINT;
UPDATE users SET enterprise_email = profile ->> 'enterprise_email'
WHERE profile ->> 'enterprise_email' IS NOT NULL;
UPDATE users SET mail_local = lower(trim(split_part(src.a, '@', 1)))
FROM (SELECT pool_id AS p, id AS i,
             COALESCE(NULLIF(trim(profile ->> 'enterprise_email'), ''),
                      NULLIF(trim(email), '')) AS a
      FROM users) AS src
WHERE users.pool_id = src.p AND users.id = src.i AND position('@' IN src.a) > 1;

-- (mail=x): each address, case ignored.
CREATE INDEX users_by_mail ON users (pool_id, lower(email));
CREATE INDEX users_by_enterprise_mail ON users (pool_id, lower(enterprise_email));
-- (uid=x) under the email_local_part login, and who holds a login: the live user created
-- first.
CREATE INDEX users_by_mail_local ON users (pool_id, mail_local, created_at, id)
    WHERE deleted_at IS NULL;
-- (uid=x) under the user_id login.
CREATE INDEX external_refs_by_login ON external_refs (kind, lower(custom_id));

-- App passwords: argon2id hashes, never the passwords.
CREATE TABLE app_passwords (
    id            TEXT PRIMARY KEY,
    pool_id       TEXT NOT NULL REFERENCES pools (id),
    user_id       TEXT NOT NULL,
    label         TEXT NOT NULL,
    hash          TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    last_used_at  BIGINT,
    revoked_at    BIGINT
);
CREATE INDEX app_passwords_by_user ON app_passwords (pool_id, user_id, created_at);

-- POSIX numbers: one per user, group and department of a pool, given once in creation order
-- and never reused (uidNumber / gidNumber are the pool's base plus `n`). The write path gives
-- new objects theirs; what was stored before gets them here.
CREATE TABLE posix_ids (
    pool_id    TEXT NOT NULL,
    kind       TEXT NOT NULL,
    object_id  TEXT NOT NULL,
    n          BIGINT NOT NULL,
    PRIMARY KEY (pool_id, kind, object_id),
    UNIQUE (pool_id, n)
);
INSERT INTO posix_ids (pool_id, kind, object_id, n)
SELECT pool_id, kind, id, ROW_NUMBER() OVER (PARTITION BY pool_id ORDER BY created_at, kind, id)
FROM (SELECT pool_id, 'user' AS kind, id, created_at FROM users
      UNION ALL SELECT pool_id, 'department', id, created_at FROM departments
      UNION ALL SELECT pool_id, 'group', id, created_at FROM user_groups) AS everything;
