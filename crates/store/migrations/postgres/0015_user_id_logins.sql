-- Each user's Feishu `user_id` login candidate in a column of its own, written by the write
-- path whenever a user's refs are (docs/ldap.md, "Logins"): `(uid=x)` and who holds a login
-- are then one index of `users`, not the refs of every connection of the pool.

-- The smallest folded `user_id` among the user's refs in its pool's connections; NULL when
-- none may be a login (empty, over 64 characters, shaped like an orgsync id).
ALTER TABLE users ADD COLUMN user_id_login TEXT;
UPDATE users SET user_id_login = src.v
FROM (SELECT c.pool_id AS p, r.object_id AS i, min(lower(trim(r.custom_id))) AS v
      FROM external_refs r JOIN connections c ON c.id = r.connection_id
      WHERE r.kind = 'user' AND r.custom_id IS NOT NULL
        AND char_length(trim(r.custom_id)) BETWEEN 1 AND 64
        AND lower(trim(r.custom_id)) !~ '^[0-9a-f]{24}$'
      GROUP BY c.pool_id, r.object_id) AS src
WHERE users.pool_id = src.p AND users.id = src.i;

-- (uid=x) under the user_id login, and who holds a login: the live user created first.
CREATE INDEX users_by_user_id_login ON users (pool_id, user_id_login, created_at, id)
    WHERE deleted_at IS NULL;
-- The refs are no longer searched by their user_id.
DROP INDEX external_refs_by_login;
