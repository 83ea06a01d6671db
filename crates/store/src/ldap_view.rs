//! What the LDAP view reads and keeps (docs/ldap.md): pool settings, logins and addresses
//! looked up through indexes, app passwords. Written once in [`ldap_fns`] and expanded inside
//! `imp.rs` for each backend, like the rest of the store.

use std::collections::{HashMap, HashSet};

use directory::app_passwords::AppPassword;
use directory::ids::{PoolId, UserId};
use directory::ldap_view::{DepartmentScope, LdapSettings, LoginSource, login_key};
use directory::model::{ExternalRef, ObjectKind, User};
use directory::store::{Backend, StoreError, StoreResult, StoredAppPassword};

use crate::sql::{Spellings, spellings};
use sqlx::FromRow;

pub(crate) const LDAP_SETTINGS_COLS: &str =
    "pool_id, base_dn, login, department_members, posix, posix_id_base";
pub(crate) const SET_LDAP_SETTINGS: &str = "INSERT INTO ldap_settings \
     (pool_id, base_dn, login, department_members, posix, posix_id_base, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (pool_id) DO UPDATE SET base_dn = excluded.base_dn, login = excluded.login, \
     department_members = excluded.department_members, posix = excluded.posix, \
     posix_id_base = excluded.posix_id_base, updated_at = excluded.updated_at";
/// The largest POSIX number of a pool (through `UNIQUE (pool_id, n)`).
pub(crate) const LAST_POSIX_ID: &str =
    "SELECT COALESCE(MAX(n), 0) FROM posix_ids WHERE pool_id = $1";

/// A statement in two parts around the pool's id (bound between them); an `IN (…)` list
/// follows the second.
pub(crate) type AroundPool = (&'static str, &'static str);

/// The Feishu `user_id`s of some users of a pool, through the pool's connections (the list
/// follows): what their `user_id_login` is made from.
pub(crate) const USER_IDS_OF: AroundPool = (
    "SELECT r.object_id, r.custom_id FROM external_refs r \
     JOIN connections c ON c.id = r.connection_id WHERE c.pool_id = ",
    " AND r.kind = 'user' AND r.custom_id IS NOT NULL AND r.object_id",
);
/// The stored `user_id` login candidates of some users (the list follows).
pub(crate) const USER_ID_LOGINS_OF: AroundPool = (
    "SELECT id, user_id_login FROM users WHERE pool_id = ",
    " AND id",
);
/// The column of `users` that holds each user's login candidate under a login source,
/// written by the write path (docs/ldap.md, "Logins"), and its index: `(pool_id, column,
/// created_at, id)` over the live users, which orders a candidate's holders.
pub(crate) const fn login_column(source: LoginSource) -> Option<(&'static str, &'static str)> {
    match source {
        LoginSource::UserId => Some(("user_id_login", "users_by_user_id_login")),
        LoginSource::EmailLocalPart => Some(("mail_local", "users_by_mail_local")),
        LoginSource::OrgsyncId => None,
    }
}

/// SQLite's `INDEXED BY` for a login column's index (its planner otherwise may walk the
/// pool through the primary key); nothing on PostgreSQL.
fn index_hint(backend: Backend, index: &str) -> String {
    match backend {
        Backend::Sqlite => format!(" INDEXED BY {index}"),
        Backend::Postgres => String::new(),
    }
}

/// The login that the user `v` holds under `source`, as an SQL expression: its candidate,
/// unless `v` is deleted or a live user created before it (then with a smaller id) has the
/// same candidate (the collision rule, docs/ldap.md "Logins"). One descent of the column's
/// index; NULL when it holds none.
pub(crate) fn held_login(backend: Backend, source: LoginSource) -> String {
    let Some((col, index)) = login_column(source) else {
        return "CAST(NULL AS TEXT)".to_owned();
    };
    let hint = index_hint(backend, index);
    format!(
        "CASE WHEN v.deleted_at IS NULL AND NOT EXISTS (SELECT 1 FROM users w{hint} \
         WHERE w.pool_id = v.pool_id AND w.{col} = v.{col} AND w.deleted_at IS NULL \
         AND (w.created_at, w.id) < (v.created_at, v.id)) THEN v.{col} END"
    )
}

/// A branch of `users_by_keys`: the live users whose candidate under `source` is a folded
/// login (bound after it, then `)`), up to the pool's id and after it.
pub(crate) fn by_login(backend: Backend, source: LoginSource) -> Option<(String, String)> {
    let (col, index) = login_column(source)?;
    Some((
        format!(
            "SELECT id FROM users{} WHERE pool_id = ",
            index_hint(backend, index)
        ),
        format!(" AND deleted_at IS NULL AND {col} = ("),
    ))
}

/// Users of a list (it follows) with the login each holds: `SELECT v.id, <login> FROM users
/// v WHERE v.pool_id = `, then the pool's id, then the tail; with `shown` only the shown
/// (active, live; `+v.status` keeps SQLite's planner on the primary key, off
/// `users_by_status`).
pub(crate) fn logins_of(backend: Backend, source: LoginSource, shown: bool) -> (String, String) {
    let head = format!(
        "SELECT v.id, {} AS login FROM users v WHERE v.pool_id = ",
        held_login(backend, source)
    );
    let status = match backend {
        Backend::Sqlite => "+v.status",
        Backend::Postgres => "v.status",
    };
    let tail = if shown {
        format!(" AND {status} = 'active' AND v.deleted_at IS NULL AND v.id")
    } else {
        " AND v.id".to_owned()
    };
    (head, tail)
}

/// The shown members of some departments (the list follows), through `subtree_members`'s
/// primary key, each user through its own (`+u.status`: not through `users_by_status` on
/// SQLite).
pub(crate) const SHOWN_MEMBERS: Spellings = spellings!(
    (
        "SELECT s.department_id, s.user_id FROM subtree_members s \
         JOIN users u ON u.pool_id = s.pool_id AND u.id = s.user_id WHERE ",
        { "u.status" | "+u.status" },
        " = 'active' AND u.deleted_at IS NULL AND s.pool_id = "
    ),
    " AND s.department_id"
);

/// The branches of `users_by_keys`: each the head of a statement up to the pool's id and
/// the rest up to the key (bound after it), then `)`.
pub(crate) const BY_ID: AroundPool = ("SELECT id FROM users WHERE pool_id = ", " AND id = (");
pub(crate) const BY_MAIL: AroundPool = (
    "SELECT id FROM users WHERE pool_id = ",
    " AND lower(email) = lower(",
);
pub(crate) const BY_ENTERPRISE_MAIL: AroundPool = (
    "SELECT id FROM users WHERE pool_id = ",
    " AND lower(enterprise_email) = lower(",
);

pub(crate) const APP_PASSWORD_COLS: &str = "id, pool_id, user_id, label, hash, created_at, \
     expires_at, last_used_at, revoked_at";
pub(crate) const REVOKE_APP_PASSWORD: &str =
    "UPDATE app_passwords SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";
pub(crate) const TOUCH_APP_PASSWORD: &str =
    "UPDATE app_passwords SET last_used_at = $2 WHERE id = $1";

/// The `user_id` logins a batch's refs give: for the users it creates (written, not in
/// `prior`), the candidate of their refs, written with the user's row; and the other users
/// whose refs it writes, whose candidate is read again after the refs are (they may have
/// refs under other connections).
pub(crate) fn user_id_logins<T>(
    refs: &[ExternalRef],
    written: &[User],
    prior: &HashMap<String, T>,
) -> (HashMap<String, String>, Vec<String>) {
    let created: HashSet<&str> = written
        .iter()
        .map(|u| u.id.as_str())
        .filter(|id| !prior.contains_key(*id))
        .collect();
    let mut fresh = Vec::new();
    let mut others = Vec::new();
    for r in refs.iter().filter(|r| r.kind == ObjectKind::User) {
        if !created.contains(r.object_id.as_str()) {
            others.push(r.object_id.clone());
        } else if let Some(id) = &r.custom_id {
            fresh.push((r.object_id.clone(), id.clone()));
        }
    }
    (candidates(fresh), others)
}

/// A row of `users_by_keys`: a whole user, and the login rows of the statement (the same on
/// every row) as JSON.
#[derive(FromRow)]
pub(crate) struct FoundUserRow {
    #[sqlx(flatten)]
    pub user: crate::codec::WholeUserRow,
    pub logins: Option<String>,
}

/// The rows `(id, login)` of a subquery `x` as one JSON array of arrays.
pub(crate) const fn login_rows_json(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "json_group_array(json_array(x.id, x.login))",
        Backend::Postgres => "json_agg(json_build_array(x.id, x.login))::text",
    }
}

#[derive(FromRow)]
pub(crate) struct LdapSettingsRow {
    pool_id: String,
    base_dn: Option<String>,
    login: String,
    department_members: String,
    posix: bool,
    posix_id_base: i64,
}

impl TryFrom<LdapSettingsRow> for (PoolId, LdapSettings) {
    type Error = StoreError;

    fn try_from(r: LdapSettingsRow) -> StoreResult<Self> {
        let login = LoginSource::parse(&r.login)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown LDAP login {:?}", r.login)))?;
        let department_members =
            DepartmentScope::parse(&r.department_members).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "unknown LDAP department scope {:?}",
                    r.department_members
                ))
            })?;
        Ok((
            PoolId(r.pool_id),
            LdapSettings {
                base_dn: r.base_dn,
                login,
                department_members,
                posix: r.posix,
                posix_id_base: u32::try_from(r.posix_id_base).map_err(|_| {
                    StoreError::Corrupt(format!("POSIX id base {} out of range", r.posix_id_base))
                })?,
            },
        ))
    }
}

#[derive(FromRow)]
pub(crate) struct AppPasswordRow {
    id: String,
    pool_id: String,
    user_id: String,
    label: String,
    hash: String,
    created_at: i64,
    expires_at: Option<i64>,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl From<AppPasswordRow> for StoredAppPassword {
    fn from(r: AppPasswordRow) -> Self {
        Self {
            password: AppPassword {
                id: r.id,
                pool_id: PoolId(r.pool_id),
                user_id: UserId(r.user_id),
                label: r.label,
                created_at: r.created_at,
                expires_at: r.expires_at,
                last_used_at: r.last_used_at,
                revoked_at: r.revoked_at,
            },
            hash: r.hash,
        }
    }
}

/// Each user's login candidate (the smallest, folded, should a user have several), from
/// `(user, raw value)` rows; values that cannot be logins are dropped.
pub(crate) fn candidates(rows: Vec<(String, String)>) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = HashMap::new();
    for (user, raw) in rows {
        if let Some(key) = login_key(&raw) {
            match out.get(&user) {
                Some(have) if *have <= key => {}
                _ => {
                    out.insert(user, key);
                }
            }
        }
    }
    out
}

macro_rules! ldap_fns {
    ($store:ty, $db:ty) => {
        use directory::ldap_view::{LdapSettings, LoginSource};
        use directory::store::StoredAppPassword;
        use $crate::ldap_view::{self as lv, AppPasswordRow, LdapSettingsRow};

        /// Gives the objects of `ids` that have no POSIX number the next ones of the pool, in
        /// the order given, inside the caller's transaction (which holds the pool's counter
        /// lock: no other writer numbers at the same time).
        async fn allocate_posix_ids(
            conn: &mut Conn,
            pool: &PoolId,
            kind: ObjectKind,
            ids: &[String],
        ) -> StoreResult<()> {
            if ids.is_empty() {
                return Ok(());
            }
            let mut have: HashSet<String> = HashSet::new();
            for chunk in ids.chunks(CHUNK) {
                let mut qb =
                    QueryBuilder::<$db>::new("SELECT object_id FROM posix_ids WHERE pool_id = ");
                qb.push_bind(pool.as_str())
                    .push(" AND kind = ")
                    .push_bind(kind.as_str())
                    .push(" AND object_id");
                push_in(&mut qb, chunk);
                let rows: Vec<String> = qb
                    .build_query_scalar()
                    .persistent(false)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(db_err)?;
                have.extend(rows);
            }
            let new: Vec<&String> = ids.iter().filter(|id| !have.contains(*id)).collect();
            if new.is_empty() {
                return Ok(());
            }
            let last: i64 = sqlx::query_scalar(lv::LAST_POSIX_ID)
                .bind(pool.as_str())
                .fetch_one(&mut *conn)
                .await
                .map_err(db_err)?;
            let numbered: Vec<(i64, &String)> = new
                .into_iter()
                .enumerate()
                .map(|(i, id)| (last + 1 + i as i64, id))
                .collect();
            for chunk in numbered.chunks(CHUNK) {
                let mut qb = QueryBuilder::<$db>::new(
                    "INSERT INTO posix_ids (pool_id, kind, object_id, n) ",
                );
                qb.push_values(chunk, |mut b, (n, id)| {
                    b.push_bind(pool.as_str())
                        .push_bind(kind.as_str())
                        .push_bind(id.as_str())
                        .push_bind(*n);
                });
                qb.build()
                    .persistent(false)
                    .execute(&mut *conn)
                    .await
                    .map_err(db_err)?;
            }
            Ok(())
        }

        /// Writes the `user_id` login candidate (`users.user_id_login`) of the users `ids`
        /// from their refs in the pool's connections (the smallest folded value that may be
        /// a login), where it changed: after every write of user refs, so `(uid=x)` and the
        /// collision rule read one index of `users` (docs/ldap.md, "Logins").
        async fn refresh_user_id_logins(
            conn: &mut Conn,
            pool: &PoolId,
            ids: &[String],
        ) -> StoreResult<()> {
            let ids = unique_ids(ids.iter().map(String::as_str));
            for chunk in ids.chunks(CHUNK) {
                let read = |(head, tail): lv::AroundPool| {
                    let mut qb = QueryBuilder::<$db>::new(head);
                    qb.push_bind(pool.as_str()).push(tail);
                    push_in(&mut qb, chunk);
                    qb
                };
                let refs: Vec<(String, String)> = read(lv::USER_IDS_OF)
                    .build_query_as()
                    .persistent(false)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(db_err)?;
                let mut wanted = lv::candidates(refs);
                let stored: Vec<(String, Option<String>)> = read(lv::USER_ID_LOGINS_OF)
                    .build_query_as()
                    .persistent(false)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(db_err)?;
                let changed: Vec<(String, Option<String>)> = stored
                    .into_iter()
                    .filter_map(|(id, have)| {
                        let want = wanted.remove(&id);
                        (want != have).then_some((id, want))
                    })
                    .collect();
                if changed.is_empty() {
                    continue;
                }
                let mut qb = QueryBuilder::<$db>::new("WITH v (i, l) AS (");
                qb.push_values(&changed, |mut b, (id, login)| {
                    b.push_bind(id.as_str()).push_bind(login.as_deref());
                });
                // A join, not a subquery per row (that would be quadratic in the chunk).
                qb.push(") UPDATE users SET user_id_login = v.l FROM v WHERE users.pool_id = ")
                    .push_bind(pool.as_str())
                    .push(" AND users.id = v.i");
                qb.build()
                    .persistent(false)
                    .execute(&mut *conn)
                    .await
                    .map_err(db_err)?;
            }
            Ok(())
        }

        impl $store {
            async fn ldap_settings_of(&self, pool: &PoolId) -> StoreResult<Option<LdapSettings>> {
                let mut qb = QueryBuilder::<$db>::new("SELECT ");
                qb.push(lv::LDAP_SETTINGS_COLS)
                    .push(" FROM ldap_settings WHERE pool_id = ")
                    .push_bind(pool.as_str());
                let row: Option<LdapSettingsRow> = qb
                    .build_query_as()
                    .fetch_optional(self.reads())
                    .await
                    .map_err(db_err)?;
                Ok(row
                    .map(<(PoolId, LdapSettings)>::try_from)
                    .transpose()?
                    .map(|(_, s)| s))
            }

            async fn list_ldap_settings_of(&self) -> StoreResult<Vec<(PoolId, LdapSettings)>> {
                let mut qb = QueryBuilder::<$db>::new("SELECT ");
                qb.push(lv::LDAP_SETTINGS_COLS)
                    .push(" FROM ldap_settings ORDER BY pool_id");
                let rows: Vec<LdapSettingsRow> = qb
                    .build_query_as()
                    .fetch_all(self.reads())
                    .await
                    .map_err(db_err)?;
                rows.into_iter().map(TryFrom::try_from).collect()
            }

            async fn set_ldap_settings_of(
                &self,
                pool: &PoolId,
                settings: &LdapSettings,
            ) -> StoreResult<()> {
                let mut tx = self.begin_write().await.map_err(db_err)?;
                require_pool(&mut tx, pool).await?;
                sqlx::query(lv::SET_LDAP_SETTINGS)
                    .bind(pool.as_str())
                    .bind(settings.base_dn.as_deref())
                    .bind(settings.login.as_str())
                    .bind(settings.department_members.as_str())
                    .bind(settings.posix)
                    .bind(i64::from(settings.posix_id_base))
                    .bind(now_ms())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                tx.commit().await.map_err(db_err)
            }

            /// The users of `ids` with the login each holds under `source` (`None`: none),
            /// with `shown` only the shown ones. One statement per chunk, through the primary
            /// key and the login column's index.
            async fn user_logins_of(
                &self,
                pool: &PoolId,
                source: LoginSource,
                ids: &[UserId],
                shown: bool,
            ) -> StoreResult<HashMap<UserId, Option<String>>> {
                let ids = unique_ids(ids.iter().map(|id| id.as_str()));
                let (head, tail) = lv::logins_of(<$store>::BACKEND, source, shown);
                let mut out = HashMap::new();
                for chunk in ids.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new(&head);
                    qb.push_bind(pool.as_str()).push(&tail);
                    push_in(&mut qb, chunk);
                    let rows: Vec<(String, Option<String>)> = qb
                        .build_query_as()
                        .persistent(chunk.len() <= FEW)
                        .fetch_all(self.reads_for(chunk.len()))
                        .await
                        .map_err(db_err)?;
                    out.extend(rows.into_iter().map(|(id, login)| (UserId(id), login)));
                }
                Ok(out)
            }

            /// [`DirectoryStore::shown_department_members`].
            async fn shown_department_members_of(
                &self,
                pool: &PoolId,
                ids: &[DepartmentId],
                scope: MemberScope,
            ) -> StoreResult<HashMap<DepartmentId, Vec<UserId>>> {
                let ids = unique_ids(ids.iter().map(|id| id.as_str()));
                let mut out: HashMap<DepartmentId, Vec<UserId>> = HashMap::new();
                let statement = lv::SHOWN_MEMBERS.of(<$store>::BACKEND);
                for chunk in ids.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new(statement.0);
                    qb.push_bind(pool.as_str());
                    if scope == MemberScope::Direct {
                        qb.push(" AND s.direct = 1");
                    }
                    qb.push(statement.1);
                    push_in(&mut qb, chunk);
                    qb.push(" ORDER BY s.department_id, s.user_id");
                    let rows: Vec<(String, String)> = qb
                        .build_query_as()
                        .persistent(chunk.len() <= FEW)
                        .fetch_all(self.reads_for(chunk.len()))
                        .await
                        .map_err(db_err)?;
                    for (department, user) in rows {
                        out.entry(DepartmentId(department))
                            .or_default()
                            .push(UserId(user));
                    }
                }
                Ok(out)
            }

            /// [`DirectoryStore::users_by_keys`]: one statement, each key a branch of an
            /// `IN (… UNION …)` through its index.
            async fn users_by_keys_of(
                &self,
                pool: &PoolId,
                source: LoginSource,
                keys: &[PersonKey],
                after: Option<&UserId>,
                limit: u64,
            ) -> StoreResult<NamedUsers> {
                let by_login = lv::by_login(<$store>::BACKEND, source);
                // `found`: the named users, whole; the logins of the shown among them and
                // their managers come in the same statement as a JSON column.
                let mut qb = QueryBuilder::<$db>::new("WITH found AS MATERIALIZED (");
                qb.push("SELECT ")
                    .push(sql::user_cols_u!())
                    .push(", ")
                    .push(sql::memberships_json(<$store>::BACKEND))
                    .push(sql::WHOLE_USERS_BY_ID_TAIL)
                    .push_bind(pool.as_str())
                    .push(" AND u.deleted_at IS NULL AND u.id IN (");
                let mut branches = 0;
                let mut branch =
                    |qb: &mut QueryBuilder<$db>, head: &str, value: &str, tail: &str| {
                        if branches > 0 {
                            qb.push(" UNION ");
                        }
                        branches += 1;
                        qb.push(head)
                            .push_bind(pool.as_str())
                            .push(tail)
                            .push_bind(value.to_owned())
                            .push(")");
                    };
                for key in keys {
                    match key {
                        PersonKey::Login(login) => {
                            // The orgsync id stands in for a user without a login of its own.
                            if directory::ids::is_id(login) {
                                branch(&mut qb, lv::BY_ID.0, login, lv::BY_ID.1);
                            }
                            let Some(folded) = directory::ldap_view::login_key(login) else {
                                continue;
                            };
                            if let Some((head, tail)) = &by_login {
                                branch(&mut qb, head, &folded, tail);
                            }
                        }
                        PersonKey::Mail(address) => {
                            let address = address.trim();
                            if address.is_empty() {
                                continue;
                            }
                            branch(&mut qb, lv::BY_MAIL.0, address, lv::BY_MAIL.1);
                            branch(
                                &mut qb,
                                lv::BY_ENTERPRISE_MAIL.0,
                                address,
                                lv::BY_ENTERPRISE_MAIL.1,
                            );
                        }
                    }
                }
                if branches == 0 {
                    return Ok(NamedUsers::default());
                }
                qb.push(")");
                if let Some(after) = after {
                    qb.push(" AND u.id > ").push_bind(after.as_str());
                }
                qb.push(" ORDER BY u.id LIMIT ").push_bind(sql_int(limit));
                let (head, tail) = lv::logins_of(<$store>::BACKEND, source, true);
                qb.push(") SELECT found.*, (SELECT ")
                    .push(lv::login_rows_json(<$store>::BACKEND))
                    .push(" FROM (")
                    .push(head)
                    .push_bind(pool.as_str())
                    .push(tail)
                    .push(
                        " IN (SELECT id FROM found UNION \
                         SELECT manager_id FROM found WHERE manager_id IS NOT NULL)) x) AS logins \
                         FROM found ORDER BY found.id",
                    );
                let rows: Vec<lv::FoundUserRow> = qb
                    .build_query_as()
                    .fetch_all(self.point_reads())
                    .await
                    .map_err(db_err)?;
                let mut out = NamedUsers::default();
                // Every row carries the same logins (the subquery does not depend on it).
                if let Some(json) = rows.first().and_then(|r| r.logins.as_deref()) {
                    let parsed: Vec<(String, Option<String>)> = serde_json::from_str(json)
                        .map_err(|e| StoreError::Corrupt(format!("login rows: {e}")))?;
                    out.logins = parsed
                        .into_iter()
                        .map(|(id, login)| (UserId(id), login))
                        .collect();
                }
                for row in rows {
                    out.users.push(row.user.into_user()?);
                }
                Ok(out)
            }

            /// `(id, number)` pairs of some ids, a statement per chunk: `head` is the statement
            /// up to the pool's id, `tail` pushes what follows it up to the `IN` list.
            async fn numbers_by_id(
                &self,
                head: &'static str,
                tail: impl Fn(&mut QueryBuilder<$db>),
                pool: &PoolId,
                ids: Vec<String>,
            ) -> StoreResult<HashMap<String, i64>> {
                let mut out = HashMap::new();
                for chunk in ids.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new(head);
                    qb.push_bind(pool.as_str());
                    tail(&mut qb);
                    push_in(&mut qb, chunk);
                    let rows: Vec<(String, i64)> = qb
                        .build_query_as()
                        .persistent(chunk.len() <= FEW)
                        .fetch_all(self.reads_for(chunk.len()))
                        .await
                        .map_err(db_err)?;
                    out.extend(rows);
                }
                Ok(out)
            }

            async fn posix_ids_of(
                &self,
                pool: &PoolId,
                kind: ObjectKind,
                ids: &[String],
            ) -> StoreResult<HashMap<String, i64>> {
                self.numbers_by_id(
                    "SELECT object_id, n FROM posix_ids WHERE pool_id = ",
                    |qb| {
                        qb.push(" AND kind = ")
                            .push_bind(kind.as_str())
                            .push(" AND object_id");
                    },
                    pool,
                    unique_ids(ids.iter().map(String::as_str)),
                )
                .await
            }

            async fn membership_times_of(
                &self,
                pool: &PoolId,
                ids: &[UserId],
            ) -> StoreResult<HashMap<UserId, Millis>> {
                let found = self
                    .numbers_by_id(
                        "SELECT id, membership_at FROM users WHERE membership_at IS NOT NULL \
                         AND pool_id = ",
                        |qb| {
                            qb.push(" AND id");
                        },
                        pool,
                        unique_ids(ids.iter().map(UserId::as_str)),
                    )
                    .await?;
                Ok(found.into_iter().map(|(id, at)| (UserId(id), at)).collect())
            }

            async fn create_app_password_of(&self, stored: &StoredAppPassword) -> StoreResult<()> {
                let p = &stored.password;
                let mut tx = self.begin_write().await.map_err(db_err)?;
                require_pool(&mut tx, &p.pool_id).await?;
                let mut qb = QueryBuilder::<$db>::new("INSERT INTO app_passwords (");
                qb.push(lv::APP_PASSWORD_COLS).push(") ");
                qb.push_values(std::iter::once(p), |mut b, p| {
                    b.push_bind(p.id.as_str())
                        .push_bind(p.pool_id.as_str())
                        .push_bind(p.user_id.as_str())
                        .push_bind(p.label.as_str())
                        .push_bind(stored.hash.as_str())
                        .push_bind(p.created_at)
                        .push_bind(p.expires_at)
                        .push_bind(p.last_used_at)
                        .push_bind(p.revoked_at);
                });
                qb.build().execute(&mut *tx).await.map_err(db_err)?;
                tx.commit().await.map_err(db_err)
            }

            async fn get_app_password_of(
                &self,
                id: &str,
            ) -> StoreResult<Option<StoredAppPassword>> {
                let mut qb = QueryBuilder::<$db>::new("SELECT ");
                qb.push(lv::APP_PASSWORD_COLS)
                    .push(" FROM app_passwords WHERE id = ")
                    .push_bind(id);
                let row: Option<AppPasswordRow> = qb
                    .build_query_as()
                    .fetch_optional(self.point_reads())
                    .await
                    .map_err(db_err)?;
                Ok(row.map(StoredAppPassword::from))
            }

            async fn list_app_passwords_of(
                &self,
                pool: &PoolId,
                user: &UserId,
            ) -> StoreResult<Vec<StoredAppPassword>> {
                let mut qb = QueryBuilder::<$db>::new("SELECT ");
                qb.push(lv::APP_PASSWORD_COLS)
                    .push(" FROM app_passwords WHERE pool_id = ")
                    .push_bind(pool.as_str())
                    .push(" AND user_id = ")
                    .push_bind(user.as_str())
                    .push(" ORDER BY created_at, id");
                let rows: Vec<AppPasswordRow> = qb
                    .build_query_as()
                    .fetch_all(self.reads())
                    .await
                    .map_err(db_err)?;
                Ok(rows.into_iter().map(StoredAppPassword::from).collect())
            }

            async fn revoke_app_password_of(&self, id: &str, now: Millis) -> StoreResult<bool> {
                let done = sqlx::query(lv::REVOKE_APP_PASSWORD)
                    .bind(id)
                    .bind(now)
                    .execute(self.writes())
                    .await
                    .map_err(db_err)?;
                Ok(done.rows_affected() > 0)
            }

            async fn touch_app_password_of(&self, id: &str, now: Millis) -> StoreResult<()> {
                sqlx::query(lv::TOUCH_APP_PASSWORD)
                    .bind(id)
                    .bind(now)
                    .execute(self.writes())
                    .await
                    .map_err(db_err)?;
                Ok(())
            }
        }
    };
}

pub(crate) use ldap_fns;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_users_candidate_is_its_smallest_folded_login() {
        let candidates = candidates(vec![
            ("u1".into(), "ZhangSan".into()),
            ("u2".into(), " zhangsan ".into()),
            ("u3".into(), "li".into()),
            ("u3".into(), "a-li".into()),
            ("u4".into(), "0123456789abcdef01234567".into()),
            ("u5".into(), "x".repeat(65)),
            ("u6".into(), "".into()),
        ]);
        assert_eq!(candidates["u1"], "zhangsan");
        assert_eq!(candidates["u2"], "zhangsan");
        assert_eq!(candidates["u3"], "a-li");
        for not_a_login in ["u4", "u5", "u6"] {
            assert!(!candidates.contains_key(not_a_login), "{not_a_login}");
        }
    }
}
