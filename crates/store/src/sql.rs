//! The SQL both backends run verbatim. It is the common dialect of SQLite ≥ 3.35 and
//! PostgreSQL: `$n` placeholders (SQLite reads `$1` as parameter 1), `INSERT … ON CONFLICT …
//! DO UPDATE … WHERE`, `RETURNING`, `NULLS LAST`. What differs lives in `sqlite.rs` and
//! `postgres.rs`: transaction modes, inbox claiming (`FOR UPDATE SKIP LOCKED`) and bulk inbox
//! inserts (`UNNEST`).

use directory::model::ObjectKind;
use directory::store::Backend;

/// One statement in two parts around the pool's id, in the spelling of each backend: SQLite's carries an
/// index hint its planner needs (it has no statistics), which PostgreSQL would not parse.
#[derive(Clone, Copy)]
pub(crate) struct Spellings {
    pub postgres: (&'static str, &'static str),
    pub sqlite: (&'static str, &'static str),
}

impl Spellings {
    pub(crate) const fn of(&self, backend: Backend) -> (&'static str, &'static str) {
        match backend {
            Backend::Sqlite => self.sqlite,
            Backend::Postgres => self.postgres,
        }
    }
}

/// [`Spellings`] from the parts they share and the hint (`{postgres | sqlite}`) that differs,
/// in the part before the pool's id or in the part after it.
macro_rules! spellings {
    (($a:literal, {$pg:literal | $sq:literal}, $b:literal), $tail:literal) => {
        Spellings {
            postgres: (concat!($a, $pg, $b), $tail),
            sqlite: (concat!($a, $sq, $b), $tail),
        }
    };
    ($head:literal, ($a:literal, {$pg:literal | $sq:literal}, $b:literal)) => {
        Spellings {
            postgres: ($head, concat!($a, $pg, $b)),
            sqlite: ($head, concat!($a, $sq, $b)),
        }
    };
}
pub(crate) use spellings;

/// Which users of a list are active and live (the list follows); `+status` keeps SQLite's
/// planner on the primary key, off `users_by_status` (every active user of the pool).
pub(crate) const ACTIVE_IDS_OF: Spellings = spellings!(
    "SELECT id FROM users WHERE pool_id = ",
    (
        " AND ",
        { "status" | "+status" },
        " = 'active' AND deleted_at IS NULL AND id"
    )
);

// Column lists, spelled once so each SELECT and its row struct stay in step.
macro_rules! pool_cols {
    () => {
        "id, name, created_at"
    };
}
macro_rules! connection_cols {
    () => {
        "id, pool_id, identifier, display_name, provider, base_url, app_id, app_secret, \
         encrypt_key, verification_token, settings, created_at, updated_at"
    };
}
macro_rules! user_cols {
    () => {
        "pool_id, id, status, in_root, manager_id, profile, version, created_at, updated_at, \
         deleted_at"
    };
}
/// [`user_cols`] of `users u` in a join.
macro_rules! user_cols_u {
    () => {
        "u.pool_id, u.id, u.status, u.in_root, u.manager_id, u.profile, u.version, u.created_at, \
         u.updated_at, u.deleted_at"
    };
}
/// A department `d` with its maintained counts, its number of live children and its sort key
/// (Feishu's order, unset last) — the columns of a `NodeRow`.
/// Followed by `, ` and `leaders_json`, then `department_node_from`.
macro_rules! department_node_select {
    () => {
        "SELECT d.pool_id, d.id, d.name, d.i18n_name, d.parent_id, d.sort_order, d.chat_id, \
         d.version, d.created_at, d.updated_at, d.deleted_at, \
         COALESCE(s.direct_members, 0) AS direct_members, \
         COALESCE(s.subtree_members, 0) AS subtree_members, \
         (SELECT COUNT(*) FROM departments c WHERE c.pool_id = d.pool_id \
         AND c.parent_id = d.id AND c.deleted_at IS NULL) AS child_count, \
         COALESCE(d.sort_order, 9223372036854775807) AS order_key"
    };
}
macro_rules! department_node_from {
    () => {
        " FROM departments d LEFT JOIN department_stats s \
         ON s.pool_id = d.pool_id AND s.department_id = d.id"
    };
}
macro_rules! membership_cols {
    () => {
        "user_id, department_id, user_order, department_order, is_primary"
    };
}
macro_rules! department_cols {
    () => {
        "pool_id, id, name, i18n_name, parent_id, sort_order, chat_id, version, created_at, \
         updated_at, deleted_at"
    };
}
macro_rules! group_cols {
    () => {
        "pool_id, id, name, description, kind, version, created_at, updated_at, deleted_at"
    };
}
macro_rules! ref_cols {
    () => {
        "connection_id, kind, external_id, union_id, custom_id, object_id"
    };
}
macro_rules! change_cols {
    () => {
        "pool_id, seq, kind, object_kind, object_id, version, source, at, object"
    };
}
macro_rules! inbox_cols {
    () => {
        "id, pool_id, connection_id, event_id, event_type, created_at, received_at, payload, \
         state, attempts, next_attempt_at, last_error, outcome, finished_at"
    };
}
macro_rules! job_cols {
    () => {
        "id, pool_id, connection_id, kind, job_trigger, state, verdict, progress, counts, error, \
         error_code, started_at, finished_at, instance"
    };
}
macro_rules! action_cols {
    () => {
        "job_id, seq, action, kind, external_id, object_id, name, result, reason, at"
    };
}
macro_rules! parked_cols {
    () => {
        "id, pool_id, connection_id, job_id, kind, object_id, external_id, name, reason, state, \
         created_at, last_parked_at, resolved_at, resolution"
    };
}
// The lists the backends and the dynamic queries of `imp.rs` use.
pub(crate) use {
    action_cols, department_node_from, department_node_select, group_cols, inbox_cols,
    membership_cols, parked_cols, user_cols_u,
};

// ---- pools and connections -------------------------------------------------------------

pub(crate) const INSERT_POOL: &str = "INSERT INTO pools (id, name, created_at) VALUES ($1, $2, $3)";
pub(crate) const INSERT_COUNTER: &str = "INSERT INTO change_counters (pool_id, seq) VALUES ($1, 0)";
pub(crate) const GET_POOL: &str = concat!("SELECT ", pool_cols!(), " FROM pools WHERE id = $1");
pub(crate) const LIST_POOLS: &str = concat!(
    "SELECT ",
    pool_cols!(),
    " FROM pools ORDER BY created_at, id"
);
pub(crate) const RENAME_POOL: &str = "UPDATE pools SET name = $2 WHERE id = $1";
pub(crate) const POOL_EXISTS: &str = "SELECT id FROM pools WHERE id = $1";
/// Deleting a pool (`$1`): children before parents, for the foreign keys, and each statement
/// by an index on the pool or on its connections, so the cost follows the pool's size, not the
/// database's. The counter row goes first: `apply` locks it, so no writer of the pool runs
/// beside the deletion. Every table of the schema is here; the store story
/// `deleting_a_pool_leaves_no_row` fails when a new table is not.
pub(crate) const DELETE_POOL: [&str; 27] = [
    "DELETE FROM posix_ids WHERE pool_id = $1",
    "DELETE FROM app_passwords WHERE pool_id = $1",
    "DELETE FROM ldap_settings WHERE pool_id = $1",
    "DELETE FROM change_counters WHERE pool_id = $1",
    "DELETE FROM webhook_attempts WHERE endpoint_id IN \
     (SELECT id FROM webhook_endpoints WHERE pool_id = $1)",
    "DELETE FROM webhook_endpoints WHERE pool_id = $1",
    "DELETE FROM feed_events WHERE pool_id = $1",
    "DELETE FROM service_credentials WHERE pool_id = $1",
    "DELETE FROM subtree_members WHERE pool_id = $1",
    "DELETE FROM department_stats WHERE pool_id = $1",
    "DELETE FROM action_log WHERE job_id IN (SELECT id FROM jobs WHERE pool_id = $1)",
    "DELETE FROM jobs WHERE pool_id = $1",
    "DELETE FROM parked_deletions WHERE pool_id = $1",
    "DELETE FROM inbox WHERE pool_id = $1",
    "DELETE FROM leases WHERE connection_id IN (SELECT id FROM connections WHERE pool_id = $1)",
    "DELETE FROM event_leases WHERE connection_id IN \
     (SELECT id FROM connections WHERE pool_id = $1)",
    "DELETE FROM watermarks WHERE connection_id IN \
     (SELECT id FROM connections WHERE pool_id = $1)",
    "DELETE FROM external_refs WHERE connection_id IN \
     (SELECT id FROM connections WHERE pool_id = $1)",
    "DELETE FROM connections WHERE pool_id = $1",
    "DELETE FROM changes WHERE pool_id = $1",
    "DELETE FROM group_members WHERE pool_id = $1",
    "DELETE FROM user_groups WHERE pool_id = $1",
    "DELETE FROM department_leaders WHERE pool_id = $1",
    "DELETE FROM departments WHERE pool_id = $1",
    "DELETE FROM user_departments WHERE pool_id = $1",
    "DELETE FROM users WHERE pool_id = $1",
    "DELETE FROM pools WHERE id = $1",
];

pub(crate) const INSERT_CONNECTION: &str = concat!(
    "INSERT INTO connections (",
    connection_cols!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
);
pub(crate) const UPDATE_CONNECTION: &str = "UPDATE connections SET identifier = $2, \
     display_name = $3, provider = $4, base_url = $5, app_id = $6, app_secret = $7, \
     encrypt_key = $8, verification_token = $9, settings = $10, updated_at = $11 WHERE id = $1";
pub(crate) const GET_CONNECTION: &str = concat!(
    "SELECT ",
    connection_cols!(),
    " FROM connections WHERE id = $1"
);
pub(crate) const FIND_CONNECTION: &str = concat!(
    "SELECT ",
    connection_cols!(),
    " FROM connections WHERE pool_id = $1 AND identifier = $2"
);
pub(crate) const LIST_CONNECTIONS: &str = concat!(
    "SELECT ",
    connection_cols!(),
    " FROM connections WHERE ($1 IS NULL OR pool_id = $1) ORDER BY created_at, id"
);
pub(crate) const CONNECTION_POOL: &str = "SELECT pool_id FROM connections WHERE id = $1";
/// The users a connection gives a Feishu `user_id` (their login candidates come from it).
pub(crate) const CONNECTION_USER_IDS: &str = "SELECT object_id FROM external_refs \
     WHERE connection_id = $1 AND kind = 'user' AND custom_id IS NOT NULL";
// Deleting a connection: its mappings, guards, lease and unprocessed events go with it; the
// directory objects, finished events, jobs and parked items stay (they are history).
pub(crate) const DELETE_CONNECTION_REFS: &str =
    "DELETE FROM external_refs WHERE connection_id = $1";
pub(crate) const DELETE_CONNECTION_WATERMARKS: &str =
    "DELETE FROM watermarks WHERE connection_id = $1";
pub(crate) const DELETE_CONNECTION_LEASE: &str = "DELETE FROM leases WHERE connection_id = $1";
pub(crate) const DELETE_CONNECTION_EVENT_LEASE: &str =
    "DELETE FROM event_leases WHERE connection_id = $1";
pub(crate) const DELETE_CONNECTION_PENDING: &str =
    "DELETE FROM inbox WHERE connection_id = $1 AND state = 'pending'";
pub(crate) const DELETE_CONNECTION: &str = "DELETE FROM connections WHERE id = $1";

// ---- directory reads -----------------------------------------------------------------------

/// The objects of one kind a connection maps: `$1` pool, `$2` connection.
macro_rules! mapped {
    ($kind:literal) => {
        concat!(
            "IN (SELECT r.object_id FROM external_refs r WHERE r.connection_id = $2 AND r.kind = '",
            $kind,
            "')"
        )
    };
}

pub(crate) const STATE_REFS: &str = concat!(
    "SELECT ",
    ref_cols!(),
    " FROM external_refs WHERE connection_id = $1 ORDER BY kind, external_id"
);
pub(crate) const STATE_USERS: &str = concat!(
    "SELECT ",
    user_cols!(),
    " FROM users WHERE pool_id = $1 AND id ",
    mapped!("user"),
    " ORDER BY created_at, id"
);
/// [`STATE_USERS`] with the name in place of the whole profile (`OutlineUserRow`).
pub(crate) const STATE_USER_OUTLINES: &str = concat!(
    "SELECT pool_id, id, status, in_root, manager_id, version, created_at, updated_at, \
     deleted_at FROM users WHERE pool_id = $1 AND id ",
    mapped!("user"),
    " ORDER BY created_at, id"
);
pub(crate) const STATE_MEMBERSHIPS: &str = concat!(
    "SELECT ",
    membership_cols!(),
    " FROM user_departments WHERE pool_id = $1 AND user_id ",
    mapped!("user"),
    " ORDER BY user_id, pos"
);
pub(crate) const STATE_DEPARTMENTS: &str = concat!(
    "SELECT ",
    department_cols!(),
    " FROM departments WHERE pool_id = $1 AND id ",
    mapped!("department"),
    " ORDER BY created_at, id"
);
pub(crate) const STATE_LEADERS: &str = concat!(
    "SELECT department_id, user_id, kind FROM department_leaders WHERE pool_id = $1 AND \
     department_id ",
    mapped!("department"),
    " ORDER BY department_id, pos"
);
pub(crate) const STATE_GROUPS: &str = concat!(
    "SELECT ",
    group_cols!(),
    " FROM user_groups WHERE pool_id = $1 AND id ",
    mapped!("group"),
    " ORDER BY created_at, id"
);
pub(crate) const STATE_MEMBERS: &str = concat!(
    "SELECT group_id, member_kind, member_id FROM group_members WHERE pool_id = $1 AND \
     group_id ",
    mapped!("group"),
    " ORDER BY group_id, pos"
);

/// The memberships of user `u` as one JSON text column `memberships`, in position order:
/// `[[department_id, user_order, department_order, is_primary], …]` (`codec::WholeUserRow`).
/// A user is then one row of one statement: no transaction and no second statement, each of
/// which is a round trip to SQLite's worker thread or to PostgreSQL (docs/read-model.md,
/// "Statements per read"). Through the primary key `(pool_id, user_id, pos)`.
pub(crate) const fn memberships_json(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => {
            "(SELECT json_group_array(json_array(m.department_id, m.user_order, \
             m.department_order, m.is_primary) ORDER BY m.pos) FROM user_departments m \
             WHERE m.pool_id = u.pool_id AND m.user_id = u.id) AS memberships"
        }
        Backend::Postgres => {
            "(SELECT json_agg(json_build_array(m.department_id, m.user_order, \
             m.department_order, m.is_primary) ORDER BY m.pos)::text FROM user_departments m \
             WHERE m.pool_id = u.pool_id AND m.user_id = u.id) AS memberships"
        }
    }
}

/// The leaders of department `d` as one JSON text column `leaders`, in position order:
/// `[[user_id, kind], …]` (`codec::WholeDepartmentRow`), for the same reason as
/// `memberships_json`. Through the primary key of `department_leaders`.
pub(crate) const fn leaders_json(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => {
            "(SELECT json_group_array(json_array(l.user_id, l.kind) ORDER BY l.pos) \
             FROM department_leaders l WHERE l.pool_id = d.pool_id AND l.department_id = d.id) \
             AS leaders"
        }
        Backend::Postgres => {
            "(SELECT json_agg(json_build_array(l.user_id, l.kind) ORDER BY l.pos)::text \
             FROM department_leaders l WHERE l.pool_id = d.pool_id AND l.department_id = d.id) \
             AS leaders"
        }
    }
}

/// `department_cols` of `departments d`, to be followed by `, ` and `leaders_json`.
macro_rules! department_cols_d {
    () => {
        "SELECT d.pool_id, d.id, d.name, d.i18n_name, d.parent_id, d.sort_order, d.chat_id, \
         d.version, d.created_at, d.updated_at, d.deleted_at"
    };
}
pub(crate) use department_cols_d;
/// A whole department (`codec::WholeDepartmentRow`): after `department_cols_d` and
/// `leaders_json`, with `$1` pool, `$2` department.
pub(crate) const GET_WHOLE_DEPARTMENT_TAIL: &str =
    " FROM departments d WHERE d.pool_id = $1 AND d.id = $2";
/// Whole departments by id: after `department_cols_d` and `leaders_json`, then the pool and
/// ` AND d.id IN …`.
pub(crate) const WHOLE_DEPARTMENTS_BY_ID_TAIL: &str = " FROM departments d WHERE d.pool_id = ";

/// A whole user (`codec::WholeUserRow`): `user_cols_u`, then `memberships_json`, then this
/// with `$1` pool, `$2` user.
pub(crate) const GET_WHOLE_USER_TAIL: &str = " FROM users u WHERE u.pool_id = $1 AND u.id = $2";
/// Whole users by id: `user_cols_u`, `memberships_json`, then this, the pool, ` AND id IN …`.
pub(crate) const WHOLE_USERS_BY_ID_TAIL: &str = " FROM users u WHERE u.pool_id = ";

pub(crate) const GET_GROUP: &str = concat!(
    "SELECT ",
    group_cols!(),
    " FROM user_groups WHERE pool_id = $1 AND id = $2"
);
pub(crate) const GROUP_EXISTS: &str = "SELECT 1 FROM user_groups WHERE pool_id = $1 AND id = $2";
pub(crate) const GROUP_MEMBERS: &str = "SELECT group_id, member_kind, member_id FROM \
     group_members WHERE pool_id = $1 AND group_id = $2 ORDER BY pos";

// Bulk reads by id, built with QueryBuilder (`… IN (…)` of up to CHUNK ids); each runs
// through a primary key.
pub(crate) const GROUPS_BY_ID: &str = concat!(
    "SELECT ",
    group_cols!(),
    " FROM user_groups WHERE pool_id = "
);
pub(crate) const REFS_BY_EXTERNAL_ID: &str = concat!(
    "SELECT ",
    ref_cols!(),
    " FROM external_refs WHERE connection_id = "
);

/// The members of department `$2` of pool `$1`: a semi-join through
/// `user_departments_by_department`, then the users' primary key. (Sorted by id in Rust: byte
/// order on both backends, whatever PostgreSQL's collation.)
macro_rules! members_of_department {
    () => {
        "SELECT m.user_id FROM user_departments m WHERE m.pool_id = $1 AND m.department_id = $2"
    };
}
pub(crate) const DEPARTMENT_MEMBERS: &str = concat!(
    "SELECT ",
    user_cols!(),
    " FROM users WHERE pool_id = $1 AND deleted_at IS NULL AND id IN (",
    members_of_department!(),
    ")"
);
/// Every membership of those members (tombstoned members' rows are dropped on assembly).
pub(crate) const DEPARTMENT_MEMBER_MEMBERSHIPS: &str = concat!(
    "SELECT ",
    membership_cols!(),
    " FROM user_departments WHERE pool_id = $1 AND user_id IN (",
    members_of_department!(),
    ") ORDER BY user_id, pos"
);

pub(crate) const LIVE_DEPARTMENTS: &str = concat!(
    "SELECT ",
    department_cols!(),
    " FROM departments WHERE pool_id = $1 AND deleted_at IS NULL ORDER BY created_at, id"
);
pub(crate) const LIVE_DEPARTMENT_LEADERS: &str = "SELECT l.department_id, l.user_id, l.kind \
     FROM department_leaders l JOIN departments d ON d.pool_id = l.pool_id AND \
     d.id = l.department_id WHERE l.pool_id = $1 AND d.deleted_at IS NULL \
     ORDER BY l.department_id, l.pos";
/// The ancestors of department `$2`, nearest first, at most 64 (a stored cycle repeats ids;
/// the caller stops at the first repeat).
pub(crate) const ANCESTORS: &str = "WITH RECURSIVE up (pool_id, id, depth) AS (\
     SELECT pool_id, parent_id, 1 FROM departments WHERE pool_id = $1 AND id = $2 \
     AND parent_id IS NOT NULL \
     UNION ALL SELECT d.pool_id, d.parent_id, up.depth + 1 FROM up JOIN departments d \
     ON d.pool_id = up.pool_id AND d.id = up.id WHERE d.parent_id IS NOT NULL AND up.depth < 64) \
     SELECT id FROM up ORDER BY depth";

pub(crate) const COUNT_LIVE_DEPARTMENTS: &str =
    "SELECT COUNT(*) FROM departments WHERE pool_id = $1 AND deleted_at IS NULL";
pub(crate) const COUNT_LIVE_GROUPS: &str =
    "SELECT COUNT(*) FROM user_groups WHERE pool_id = $1 AND deleted_at IS NULL";

pub(crate) const FIND_EXTERNAL: &str = concat!(
    "SELECT ",
    ref_cols!(),
    " FROM external_refs WHERE connection_id = $1 AND kind = $2 AND external_id = $3"
);
pub(crate) const FIND_EXTERNAL_BY_UNION_ID: &str = concat!(
    "SELECT ",
    ref_cols!(),
    " FROM external_refs WHERE connection_id = $1 AND kind = $2 AND union_id = $3 \
     ORDER BY external_id LIMIT 1"
);
pub(crate) const FIND_EXTERNAL_BY_CUSTOM_ID: &str = concat!(
    "SELECT ",
    ref_cols!(),
    " FROM external_refs WHERE connection_id = $1 AND kind = $2 AND custom_id = $3 \
     ORDER BY external_id LIMIT 1"
);
pub(crate) const OBJECT_HISTORY: &str = concat!(
    "SELECT ",
    change_cols!(),
    " FROM changes WHERE pool_id = $1 AND object_kind = $2 AND object_id = $3 \
     ORDER BY seq DESC LIMIT $4"
);
pub(crate) const GROUPS_OF_MEMBER: &str = "SELECT DISTINCT group_id FROM group_members \
     WHERE pool_id = $1 AND member_kind = $2 AND member_id = $3 ORDER BY group_id";
pub(crate) const GROUP_SUMMARIES_OF_MEMBER: &str = concat!(
    "SELECT ",
    group_cols!(),
    " FROM user_groups WHERE pool_id = $1 AND id IN (SELECT group_id FROM group_members \
     WHERE pool_id = $1 AND member_kind = $2 AND member_id = $3) ORDER BY id"
);
pub(crate) const REFS_OF: &str = concat!(
    "SELECT ",
    ref_cols!(),
    " FROM external_refs WHERE kind = $1 AND object_id = $2 ORDER BY connection_id, external_id"
);

// ---- apply -----------------------------------------------------------------------------

/// Takes `$2` numbers from the pool's change counter and returns the last one. On PostgreSQL
/// the upsert row-locks the counter until commit, which serialises the pool's writers: change
/// numbers are handed out in commit order, so a reader following `seq` never skips one.
pub(crate) const BUMP_COUNTER: &str = "INSERT INTO change_counters (pool_id, seq) VALUES ($1, $2) \
     ON CONFLICT (pool_id) DO UPDATE SET seq = change_counters.seq + excluded.seq RETURNING seq";

// Multi-row statements built with QueryBuilder (`VALUES` lists of up to CHUNK rows):
pub(crate) const STORED_DEPARTMENTS: &str =
    "SELECT id, version, created_at FROM departments WHERE pool_id = ";
pub(crate) const STORED_GROUPS: &str =
    "SELECT id, version, created_at FROM user_groups WHERE pool_id = ";

/// A new user's `user_id_login` comes with it; a stored user's is kept (bound NULL) and
/// rewritten after its refs when they change (docs/ldap.md, "Logins").
pub(crate) const UPSERT_USERS: &str = "INSERT INTO users (pool_id, id, name, en_name, email, \
     mobile, employee_no, search_text, status, in_root, manager_id, profile, version, created_at, \
     updated_at, deleted_at, enterprise_email, mail_local, user_id_login) ";
pub(crate) const UPSERT_USERS_TAIL: &str = " ON CONFLICT (pool_id, id) DO UPDATE SET \
     name = excluded.name, en_name = excluded.en_name, email = excluded.email, \
     mobile = excluded.mobile, employee_no = excluded.employee_no, \
     search_text = excluded.search_text, status = excluded.status, in_root = excluded.in_root, \
     manager_id = excluded.manager_id, profile = excluded.profile, version = excluded.version, \
     created_at = excluded.created_at, updated_at = excluded.updated_at, \
     deleted_at = excluded.deleted_at, enterprise_email = excluded.enterprise_email, \
     mail_local = excluded.mail_local, \
     user_id_login = COALESCE(excluded.user_id_login, users.user_id_login)";
pub(crate) const DELETE_MEMBERSHIPS: &str = "DELETE FROM user_departments WHERE pool_id = ";
pub(crate) const INSERT_MEMBERSHIPS: &str = "INSERT INTO user_departments (pool_id, user_id, pos, \
     department_id, user_order, department_order, is_primary) ";

pub(crate) const UPSERT_DEPARTMENTS: &str = "INSERT INTO departments (pool_id, id, name, \
     i18n_name, parent_id, sort_order, chat_id, version, created_at, updated_at, deleted_at) ";
pub(crate) const UPSERT_DEPARTMENTS_TAIL: &str = " ON CONFLICT (pool_id, id) DO UPDATE SET \
     name = excluded.name, i18n_name = excluded.i18n_name, parent_id = excluded.parent_id, \
     sort_order = excluded.sort_order, chat_id = excluded.chat_id, version = excluded.version, \
     created_at = excluded.created_at, updated_at = excluded.updated_at, \
     deleted_at = excluded.deleted_at";
pub(crate) const DELETE_LEADERS: &str = "DELETE FROM department_leaders WHERE pool_id = ";
pub(crate) const INSERT_LEADERS: &str =
    "INSERT INTO department_leaders (pool_id, department_id, pos, user_id, kind) ";

pub(crate) const UPSERT_GROUPS: &str = "INSERT INTO user_groups (pool_id, id, name, description, \
     kind, version, created_at, updated_at, deleted_at) ";
pub(crate) const UPSERT_GROUPS_TAIL: &str = " ON CONFLICT (pool_id, id) DO UPDATE SET \
     name = excluded.name, description = excluded.description, kind = excluded.kind, \
     version = excluded.version, created_at = excluded.created_at, \
     updated_at = excluded.updated_at, deleted_at = excluded.deleted_at";
pub(crate) const DELETE_MEMBERS: &str = "DELETE FROM group_members WHERE pool_id = ";
/// The user members of some groups (the `group_id IN (…)` list follows), before a rewrite.
pub(crate) const USER_MEMBERS_OF_GROUPS: &str = "SELECT group_id, member_id FROM group_members \
     WHERE member_kind = 'user' AND pool_id = ";
pub(crate) const INSERT_MEMBERS: &str =
    "INSERT INTO group_members (pool_id, group_id, pos, member_kind, member_id) ";

/// The stored refs whose object exists, for `check_refs`: `HEAD <table> POOL $pool) AND
/// r.connection_id = … AND r.kind = … AND r.external_id IN (…)`.
pub(crate) const MAPPED_REFS_HEAD: &str = "SELECT r.connection_id, r.kind, r.external_id, \
     r.object_id FROM external_refs r WHERE EXISTS (SELECT 1 FROM ";
pub(crate) const MAPPED_REFS_POOL: &str = " o WHERE o.id = r.object_id AND o.pool_id = ";

/// The table of an object kind.
pub(crate) fn object_table(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::User => "users",
        ObjectKind::Department => "departments",
        ObjectKind::Group => "user_groups",
    }
}

pub(crate) const UPSERT_REFS: &str = concat!("INSERT INTO external_refs (", ref_cols!(), ") ");
pub(crate) const UPSERT_REFS_TAIL: &str = " ON CONFLICT (connection_id, kind, external_id) \
     DO UPDATE SET union_id = excluded.union_id, custom_id = excluded.custom_id, \
     object_id = excluded.object_id";

pub(crate) const INSERT_CHANGES: &str = concat!("INSERT INTO changes (", change_cols!(), ") ");

pub(crate) const UPSERT_WATERMARKS: &str =
    "INSERT INTO watermarks (connection_id, object_key, event_time, deleted) ";
/// A watermark only moves forward; on a tie a deletion wins (see `prepare::supersedes`).
pub(crate) const UPSERT_WATERMARKS_TAIL: &str = " ON CONFLICT (connection_id, object_key) \
     DO UPDATE SET event_time = excluded.event_time, deleted = excluded.deleted \
     WHERE excluded.event_time > watermarks.event_time \
     OR (excluded.event_time = watermarks.event_time AND excluded.deleted)";

pub(crate) const CHANGES_SINCE: &str = concat!(
    "SELECT ",
    change_cols!(),
    " FROM changes WHERE pool_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
);
pub(crate) const WATERMARKS: &str = "SELECT connection_id, object_key, event_time, deleted FROM \
     watermarks WHERE connection_id = ";

// ---- inbox -------------------------------------------------------------------------------

/// Finishes (or reschedules) a pending event and clears its claim. Only a pending event can
/// be finished: a second apply of the same event (a worker whose claim expired) then fails
/// instead of applying twice.
pub(crate) const FINISH_INBOX: &str = "UPDATE inbox SET state = $2, \
     outcome = COALESCE($3, outcome), last_error = COALESCE($4, last_error), finished_at = $5, \
     attempts = attempts + $6, next_attempt_at = COALESCE($7, next_attempt_at), \
     claimed_by = NULL, claimed_until = 0 WHERE id = $1 AND state = 'pending'";
/// The same for many events at once: the `SET` of `UPDATE inbox … FROM <v>`, where `v` has the
/// columns (id, state, outcome, last_error, finished_at, tries, next_attempt_at); each
/// backend supplies `v` its way (`VALUES` on SQLite, `UNNEST` on PostgreSQL).
macro_rules! finish_inbox_set {
    () => {
        "SET state = v.state, outcome = COALESCE(v.outcome, inbox.outcome), \
         last_error = COALESCE(v.last_error, inbox.last_error), finished_at = v.finished_at, \
         attempts = inbox.attempts + v.tries, \
         next_attempt_at = COALESCE(v.next_attempt_at, inbox.next_attempt_at), \
         claimed_by = NULL, claimed_until = 0"
    };
}
/// The `WHERE … RETURNING` that follows: only pending events, and which were finished.
macro_rules! finish_inbox_where {
    () => {
        " WHERE inbox.id = v.id AND inbox.state = 'pending' RETURNING inbox.id"
    };
}
pub(crate) use {finish_inbox_set, finish_inbox_where};
pub(crate) const INBOX_STATE: &str = "SELECT state FROM inbox WHERE id = $1";
pub(crate) const GET_INBOX: &str = concat!("SELECT ", inbox_cols!(), " FROM inbox WHERE id = $1");
pub(crate) const DUE_CONNECTIONS: &str = "SELECT DISTINCT connection_id FROM inbox \
     WHERE state = 'pending' AND next_attempt_at <= $1 ORDER BY connection_id";
pub(crate) const PENDING_COUNT: &str =
    "SELECT COUNT(*) FROM inbox WHERE connection_id = $1 AND state = 'pending'";
/// The due events of `$1` at `$2`, in the order they are applied (by `inbox_pending`).
macro_rules! due_events {
    ($after:literal) => {
        concat!(
            "SELECT ",
            inbox_cols!(),
            " FROM inbox WHERE connection_id = $1 AND state = 'pending' \
             AND next_attempt_at <= $2 AND claimed_until < $2",
            $after,
            " ORDER BY created_at ASC NULLS LAST, id ASC LIMIT $3"
        )
    };
}
pub(crate) const DUE_EVENTS: &str = due_events!("");
/// … the dated ones after a dated event (`$4` = its `created_at`, `$5` = its id): a row
/// comparison, so that the index scan starts there instead of walking every event before it
/// (on PostgreSQL also those finished but not yet vacuumed).
pub(crate) const DUE_EVENTS_AFTER: &str = due_events!(" AND (created_at, id) > ($4, $5)");
/// … the undated ones after id `$4` (0: all of them); they sort after every dated one.
pub(crate) const DUE_EVENTS_UNDATED: &str = due_events!(" AND created_at IS NULL AND id > $4");

// ---- jobs --------------------------------------------------------------------------------

pub(crate) const INSERT_JOB: &str = concat!(
    "INSERT INTO jobs (",
    job_cols!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
);
pub(crate) const UPDATE_JOB: &str = "UPDATE jobs SET state = $2, verdict = $3, progress = $4, \
     counts = $5, error = $6, error_code = $7, finished_at = $8 WHERE id = $1";
pub(crate) const GET_JOB: &str = concat!("SELECT ", job_cols!(), " FROM jobs WHERE id = $1");
pub(crate) const LIST_JOBS: &str = concat!(
    "SELECT ",
    job_cols!(),
    " FROM jobs WHERE ($1 IS NULL OR connection_id = $1) ORDER BY started_at DESC, id DESC \
     LIMIT $2 OFFSET $3"
);
/// Hands out `$3` action-log numbers after max(the job's counter, `$2`), returning the last.
/// The job row is the counter, so concurrent appends to one job serialise on its row lock.
pub(crate) const BUMP_LOG_SEQ: &str = "UPDATE jobs SET log_seq = \
     (CASE WHEN log_seq < $2 THEN $2 ELSE log_seq END) + $3 WHERE id = $1 RETURNING log_seq";
/// Ends running jobs as failed (`$1` error, `$2` now) where the condition that follows (on `$3`)
/// holds.
/// `state = 'running'` spelled as a literal, so both backends use the partial indexes of
/// running jobs.
macro_rules! interrupt_jobs {
    ($condition:literal) => {
        concat!(
            "UPDATE jobs SET state = 'finished', verdict = 'failed', error = $1, \
             error_code = NULL, finished_at = $2 WHERE state = 'running' AND ",
            $condition,
            " RETURNING ",
            job_cols!()
        )
    };
}
pub(crate) const INTERRUPT_JOBS_OF_INSTANCE: &str = interrupt_jobs!("instance = $3");
pub(crate) const INTERRUPT_JOBS_OF_CONNECTION: &str = interrupt_jobs!("connection_id = $3");
pub(crate) const INTERRUPT_JOBS_WITHOUT_LIVE_LEASE: &str = interrupt_jobs!(
    "NOT EXISTS (SELECT 1 FROM leases l WHERE l.connection_id = jobs.connection_id \
     AND l.expires_at > $3)"
);
pub(crate) const INSERT_ACTIONS: &str = concat!("INSERT INTO action_log (", action_cols!(), ") ");

// ---- leases ------------------------------------------------------------------------------

/// Takes the lease when it is free, expired or already ours, in one statement: on
/// PostgreSQL concurrent callers serialise on the row (or on the unique index when it does not
/// exist yet) and re-check the WHERE, so exactly one of them gets a row back.
pub(crate) const ACQUIRE_LEASE: &str = "INSERT INTO leases (connection_id, holder, expires_at) \
     VALUES ($1, $2, $3) ON CONFLICT (connection_id) DO UPDATE SET holder = excluded.holder, \
     expires_at = excluded.expires_at \
     WHERE leases.expires_at <= $4 OR leases.holder = excluded.holder RETURNING holder";
pub(crate) const RELEASE_LEASE: &str =
    "DELETE FROM leases WHERE connection_id = $1 AND holder = $2";
/// Leases whose holder starts with `$1` (compared as a prefix, so `_` and `%` in a name mean
/// themselves). The table has one row per connection at most: no index needed.
pub(crate) const RELEASE_LEASES_BY_PREFIX: &str =
    "DELETE FROM leases WHERE substr(holder, 1, length($1)) = $1";

/// The event worker's lease (`event_leases`), with the same rules as the job lease.
pub(crate) const ACQUIRE_EVENT_LEASE: &str = "INSERT INTO event_leases (connection_id, holder, \
     expires_at) VALUES ($1, $2, $3) ON CONFLICT (connection_id) DO UPDATE SET \
     holder = excluded.holder, expires_at = excluded.expires_at \
     WHERE event_leases.expires_at <= $4 OR event_leases.holder = excluded.holder \
     RETURNING holder";
pub(crate) const RELEASE_EVENT_LEASE: &str =
    "DELETE FROM event_leases WHERE connection_id = $1 AND holder = $2";
pub(crate) const RELEASE_EVENT_LEASES_BY_PREFIX: &str =
    "DELETE FROM event_leases WHERE substr(holder, 1, length($1)) = $1";

// ---- parked deletions --------------------------------------------------------------------

/// Parks a deletion, or refreshes the pending entry its object already has on the connection
/// (the partial unique index `parked_pending_once` is the conflict target).
pub(crate) const PARK: &str = "INSERT INTO parked_deletions (pool_id, connection_id, job_id, \
     kind, object_id, external_id, name, reason, state, created_at, last_parked_at, \
     resolved_at, resolution) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
     ON CONFLICT (connection_id, kind, object_id) WHERE state = 'pending' \
     DO UPDATE SET job_id = excluded.job_id, external_id = excluded.external_id, \
     name = excluded.name, reason = excluded.reason, last_parked_at = excluded.last_parked_at \
     RETURNING id";
pub(crate) const GET_PARKED: &str = concat!(
    "SELECT ",
    parked_cols!(),
    " FROM parked_deletions WHERE id = $1"
);
