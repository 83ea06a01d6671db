//! The implementation of [`DirectoryStore`](directory::store::DirectoryStore), written once and
//! expanded for each backend by `impl_directory_store!(Store, Database)`.
//!
//! Why a macro: the SQL is shared (`sql.rs`) and so is the Rust around it, but sqlx's generic
//! executor bounds make code generic over the database unreadable; expanding the same text for
//! `Sqlite` and `Postgres` keeps one source with concrete types. Each backend supplies:
//!
//! - `const BACKEND: Backend`;
//! - `fn epoch(&self) -> &AtomicU64`: the counter behind `write_epoch`, shared by clones;
//! - `fn reads(&self) -> &Pool<DB>` / `fn writes(&self) -> &Pool<DB>`: where single
//!   statements run (SQLite has one writer connection; PostgreSQL one pool);
//! - `fn point_reads(&self) -> &Pool<DB>`: where look-ups by key of fixed, small statements
//!   run (PostgreSQL keeps their plans there; SQLite's readers);
//! - `fn beside_writer(&self) -> Option<Pool<DB>>`: a pool whose connections may read while
//!   a write transaction is open and see what it saw before its own writes, without waiting
//!   on other writers (SQLite's WAL readers; a small pool of its own on PostgreSQL);
//! - `async fn begin_read(&self)` / `async fn begin_write(&self)`: a consistent read snapshot,
//!   and a write transaction (SQLite: `BEGIN IMMEDIATE`);
//! - `async fn insert_inbox_rows(conn, events)`: the deduplicating inbox insert (PostgreSQL
//!   inserts the whole batch in one `UNNEST` statement), and `const INBOX_INSERT_ONE_STATEMENT:
//!   usize`, the most events it inserts with a single statement;
//! - `async fn finish_inbox_rows(conn, rows)`: finishes pending events in one statement and
//!   returns the ids it finished (SQLite: `UPDATE … FROM` a `VALUES` list; PostgreSQL:
//!   `UNNEST` arrays).

macro_rules! impl_directory_store {
    ($store:ty, $db:ty) => {
        const _: () = {
            use std::collections::{HashMap, HashSet};
            use std::time::Duration;

            use directory::ids::{
                ConnectionId, DepartmentId, GroupId, JobId, Millis, PoolId, UserId, now_ms,
            };
            use directory::model::{
                ActionLogEntry, Connection, Department, ExternalRef, Group, GroupMember,
                GroupSummary, ObjectKind, ParkedDeletion, ParkedState, SyncJob, User, UserPool,
            };
            use directory::store::{
                ActionLogFilter, Applied, ApplyBatch, Backend, ChangeRecord, ChangeSource, ConnectionState,
                DepartmentNode, DirectoryStore, DueCursor, ExternalField, GroupEntry, InboxEvent, InboxFilter,
                InboxOutcome, InsertOutcome, KeyPage, Keyed, MemberScope, NamedUsers, NewInboxEvent, PersonKey,
                PageRequest, ParkedFilter, RunningJobs, StoreError, StoreResult, UserQuery,
                Watermark, Write,
            };
            use futures::{StreamExt, TryStreamExt};
            use sqlx::QueryBuilder;
            use sqlx::types::Json;

            use $crate::codec::{
                ActionRow, CHUNK, ChangeRow, ConnectionRow, DepartmentRow, GroupCountRow, GroupRow, InboxFinish,
                InboxRow, JobRow, KeyedUserRow, LeaderRow, MemberRow, MembershipRow, NodeRow,
                OutlineUserRow, ParkedRow, PoolRow, RefRow, UserRow, WatermarkRow,
                WholeDepartmentRow, WholeUserRow, assemble_departments, assemble_groups,
                assemble_users, connection_conflict, contains_pattern, convert_all, count, db_err,
                department_with_json, enum_text, in_order, member_columns, memberships_by_user,
                plus, search_text, sql_int, unique_ids, user_from_row,
            };
            use $crate::prepare::{self, Stored};
            use $crate::sql;

            type Conn = <$db as sqlx::Database>::Connection;

            $crate::read_model::read_model_fns!($store, $db);
            $crate::downstream::downstream_fns!($store, $db);
            $crate::webhooks::webhook_fns!($store, $db);
            $crate::ldap_view::ldap_fns!($store, $db);

            /// The ids of the objects a batch creates (stamped with the batch's time), sorted.
            fn created_in<T>(objects: &[T], now: Millis, of: fn(&T) -> (&String, Millis)) -> Vec<String> {
                let mut ids: Vec<String> = objects
                    .iter()
                    .map(of)
                    .filter(|(_, created)| *created == now)
                    .map(|(id, _)| id.clone())
                    .collect();
                ids.sort();
                ids
            }

            /// `… IN ($a, $b, …)` for one chunk of ids.
            ///
            /// A statement whose text depends on a list's length (an `IN` list, a multi-row
            /// `VALUES`) is run with `persistent(false)`: every length is a statement of its
            /// own, and a kept one holds its compiled program (SQLite's for a 1,000-row insert
            /// is megabytes) in each connection's cache, tens of MB per import
            /// (docs/memory.md).
            fn push_in(qb: &mut QueryBuilder<$db>, ids: &[String]) {
                qb.push(" IN (");
                let mut list = qb.separated(", ");
                for id in ids {
                    list.push_bind(id.as_str());
                }
                list.push_unseparated(")");
            }

            async fn stored(
                conn: &mut Conn,
                head: &'static str,
                pool: &PoolId,
                ids: &[String],
            ) -> StoreResult<HashMap<String, Stored>> {
                let mut out = HashMap::with_capacity(ids.len());
                for chunk in ids.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new(head);
                    qb.push_bind(pool.as_str()).push(" AND id");
                    push_in(&mut qb, chunk);
                    let rows: Vec<(String, i64, i64)> = qb
                        .build_query_as()
                        .persistent(false)
                        .fetch_all(&mut *conn)
                        .await
                        .map_err(db_err)?;
                    for (id, version, created_at) in rows {
                        out.insert(
                            id,
                            Stored {
                                version,
                                created_at,
                            },
                        );
                    }
                }
                Ok(out)
            }

            /// Deletes the child rows (`pool_id = … AND <column> IN …`) of the given parents.
            async fn delete_children(
                conn: &mut Conn,
                head: &'static str,
                column: &'static str,
                pool: &PoolId,
                ids: &[String],
            ) -> StoreResult<()> {
                for chunk in ids.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new(head);
                    qb.push_bind(pool.as_str()).push(" AND ").push(column);
                    push_in(&mut qb, chunk);
                    qb.build()
                        .persistent(false)
                        .execute(&mut *conn)
                        .await
                        .map_err(db_err)?;
                }
                Ok(())
            }

            /// Writes users with their memberships and search text; returns the users whose
            /// `subtree_members` rows must be rebuilt (memberships changed, or tombstoned or
            /// revived).
            /// `prior`: each stored user's search text and whether it was tombstoned, as read
            /// before the batch (`stored_users`).
            async fn write_users(
                conn: &mut Conn,
                pool: &PoolId,
                users: &[User],
                prior: &HashMap<String, (String, bool)>,
                new_logins: &HashMap<String, String>,
            ) -> StoreResult<Vec<String>> {
                let all_ids: Vec<String> = users.iter().map(|u| u.id.0.clone()).collect();
                let texts: Vec<(String, String)> = users
                    .iter()
                    .map(|u| (u.id.0.clone(), search_text(&u.profile)))
                    .filter(|(id, text)| prior.get(id).is_none_or(|(was, _)| was != text))
                    .collect();
                <$store>::index_search_text(conn, pool, &texts).await?;
                let mut refresh: Vec<String> = users
                    .iter()
                    .filter(|u| {
                        prior
                            .get(u.id.as_str())
                            .is_some_and(|(_, deleted)| *deleted != u.deleted_at.is_some())
                    })
                    .map(|u| u.id.0.clone())
                    .collect();
                for chunk in users.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new(sql::UPSERT_USERS);
                    qb.push_values(chunk, |mut b, u| {
                        b.push_bind(u.pool_id.as_str())
                            .push_bind(u.id.as_str())
                            .push_bind(u.profile.name.as_deref())
                            .push_bind(u.profile.en_name.as_deref())
                            .push_bind(u.profile.email.as_deref())
                            .push_bind(u.profile.mobile.as_deref())
                            .push_bind(u.profile.employee_no.as_deref())
                            .push_bind(search_text(&u.profile))
                            .push_bind(u.status.as_str())
                            .push_bind(u.in_root)
                            .push_bind(u.manager_id.as_ref().map(|m| m.as_str()))
                            .push_bind(Json(&u.profile))
                            .push_bind(u.version)
                            .push_bind(u.created_at)
                            .push_bind(u.updated_at)
                            .push_bind(u.deleted_at)
                            .push_bind(u.profile.enterprise_email.as_deref())
                            .push_bind(directory::ldap_view::mail_local_part(
                                u.profile.enterprise_email.as_deref(),
                                u.profile.email.as_deref(),
                            ))
                            .push_bind(new_logins.get(u.id.as_str()).map(String::as_str));
                    });
                    qb.push(sql::UPSERT_USERS_TAIL);
                    qb.build()
                        .persistent(false)
                        .execute(&mut *conn)
                        .await
                        .map_err(db_err)?;
                }
                // Whoever stops being active loses its app passwords in the same transaction
                // (docs/ldap.md, "App passwords"): a bind checks the status too, this keeps
                // a later reactivation from bringing old passwords back.
                let inactive: Vec<String> = users
                    .iter()
                    .filter(|u| u.status != directory::model::UserStatus::Active || u.deleted_at.is_some())
                    .map(|u| u.id.0.clone())
                    .collect();
                stamp_by_ids(
                    conn,
                    "UPDATE app_passwords SET revoked_at = ",
                    " WHERE revoked_at IS NULL AND pool_id = ",
                    pool,
                    " AND user_id",
                    &inactive,
                )
                .await?;
                // Memberships are rewritten only where they differ from the stored ones: most
                // writes (profile, status) leave them alone, and a rewrite costs a deletion and
                // an insertion per row (each with its foreign-key checks on PostgreSQL).
                let stored = memberships_by_user(memberships_of(conn, pool, &all_ids).await?);
                let users: Vec<&User> = users
                    .iter()
                    .filter(|u| {
                        stored.get(u.id.as_str()).map_or(&[][..], Vec::as_slice)
                            != u.departments.as_slice()
                    })
                    .collect();
                let ids: Vec<String> = users.iter().map(|u| u.id.0.clone()).collect();
                delete_children(conn, sql::DELETE_MEMBERSHIPS, "user_id", pool, &ids).await?;
                refresh.extend(ids);
                let rows: Vec<_> = users
                    .iter()
                    .flat_map(|u| {
                        u.departments
                            .iter()
                            .enumerate()
                            .map(move |(i, m)| (u, i, m))
                    })
                    .collect();
                for chunk in rows.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new(sql::INSERT_MEMBERSHIPS);
                    qb.push_values(chunk, |mut b, (u, pos, m)| {
                        b.push_bind(u.pool_id.as_str())
                            .push_bind(u.id.as_str())
                            .push_bind(sql_int(*pos as u64))
                            .push_bind(m.department_id.as_str())
                            .push_bind(m.user_order)
                            .push_bind(m.department_order)
                            .push_bind(m.primary);
                    });
                    qb.build()
                        .persistent(false)
                        .execute(&mut *conn)
                        .await
                        .map_err(db_err)?;
                }
                Ok(refresh)
            }

            async fn write_departments(
                conn: &mut Conn,
                pool: &PoolId,
                departments: &[Department],
            ) -> StoreResult<()> {
                for chunk in departments.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new(sql::UPSERT_DEPARTMENTS);
                    qb.push_values(chunk, |mut b, d| {
                        b.push_bind(d.pool_id.as_str())
                            .push_bind(d.id.as_str())
                            .push_bind(d.name.as_deref())
                            .push_bind(d.i18n_name.as_ref().map(Json))
                            .push_bind(d.parent_id.as_ref().map(|p| p.as_str()))
                            .push_bind(d.order)
                            .push_bind(d.chat_id.as_deref())
                            .push_bind(d.version)
                            .push_bind(d.created_at)
                            .push_bind(d.updated_at)
                            .push_bind(d.deleted_at);
                    });
                    qb.push(sql::UPSERT_DEPARTMENTS_TAIL);
                    qb.build()
                        .persistent(false)
                        .execute(&mut *conn)
                        .await
                        .map_err(db_err)?;
                }
                let ids: Vec<String> = departments.iter().map(|d| d.id.0.clone()).collect();
                delete_children(conn, sql::DELETE_LEADERS, "department_id", pool, &ids).await?;
                let rows: Vec<_> = departments
                    .iter()
                    .flat_map(|d| d.leaders.iter().enumerate().map(move |(i, l)| (d, i, l)))
                    .collect();
                for chunk in rows.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new(sql::INSERT_LEADERS);
                    qb.push_values(chunk, |mut b, (d, pos, l)| {
                        b.push_bind(d.pool_id.as_str())
                            .push_bind(d.id.as_str())
                            .push_bind(sql_int(*pos as u64))
                            .push_bind(l.user_id.as_str())
                            .push_bind(enum_text(&l.kind));
                    });
                    qb.build()
                        .persistent(false)
                        .execute(&mut *conn)
                        .await
                        .map_err(db_err)?;
                }
                Ok(())
            }

            /// Marks users whose `memberOf` changed (a group added or dropped them, a
            /// department above them moved): their LDAP `modifyTimestamp` moves
            /// (docs/ldap.md, "Live").
            async fn touch_memberships(
                conn: &mut Conn,
                pool: &PoolId,
                users: &[String],
            ) -> StoreResult<()> {
                let (set, filter) = ("UPDATE users SET membership_at = ", " WHERE pool_id = ");
                stamp_by_ids(conn, set, filter, pool, " AND id", users).await
            }

            /// `<set> now <filter> pool <column> IN (…)` for each chunk of `ids`: stamps rows
            /// of a pool with the time of this write.
            async fn stamp_by_ids(
                conn: &mut Conn,
                set: &str,
                filter: &str,
                pool: &PoolId,
                column: &str,
                ids: &[String],
            ) -> StoreResult<()> {
                let now = now_ms();
                for chunk in ids.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new(set);
                    qb.push_bind(now)
                        .push(filter)
                        .push_bind(pool.as_str())
                        .push(column);
                    push_in(&mut qb, chunk);
                    qb.build()
                        .persistent(false)
                        .execute(&mut *conn)
                        .await
                        .map_err(db_err)?;
                }
                Ok(())
            }

            async fn write_groups(
                conn: &mut Conn,
                pool: &PoolId,
                groups: &[Group],
            ) -> StoreResult<()> {
                for chunk in groups.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new(sql::UPSERT_GROUPS);
                    qb.push_values(chunk, |mut b, g| {
                        b.push_bind(g.pool_id.as_str())
                            .push_bind(g.id.as_str())
                            .push_bind(g.name.as_deref())
                            .push_bind(g.description.as_deref())
                            .push_bind(enum_text(&g.kind))
                            .push_bind(g.version)
                            .push_bind(g.created_at)
                            .push_bind(g.updated_at)
                            .push_bind(g.deleted_at);
                    });
                    qb.push(sql::UPSERT_GROUPS_TAIL);
                    qb.build()
                        .persistent(false)
                        .execute(&mut *conn)
                        .await
                        .map_err(db_err)?;
                }
                let ids: Vec<String> = groups.iter().map(|g| g.id.0.clone()).collect();
                // The users a group adds or removes: their entries changed too (docs/ldap.md,
                // "Entries"), so their membership time moves.
                let mut before: HashSet<(String, String)> = HashSet::new();
                for chunk in ids.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new(sql::USER_MEMBERS_OF_GROUPS);
                    qb.push_bind(pool.as_str()).push(" AND group_id");
                    push_in(&mut qb, chunk);
                    let rows: Vec<(String, String)> = qb
                        .build_query_as()
                        .persistent(false)
                        .fetch_all(&mut *conn)
                        .await
                        .map_err(db_err)?;
                    before.extend(rows);
                }
                let after: HashSet<(String, String)> = groups
                    .iter()
                    .filter(|g| g.deleted_at.is_none())
                    .flat_map(|g| {
                        g.members.iter().filter_map(move |m| match m {
                            GroupMember::User(u) => Some((g.id.0.clone(), u.0.clone())),
                            GroupMember::Department(_) => None,
                        })
                    })
                    .collect();
                let mut touched: Vec<String> = before
                    .symmetric_difference(&after)
                    .map(|(_, user)| user.clone())
                    .collect();
                touched.sort();
                touched.dedup();
                touch_memberships(conn, pool, &touched).await?;
                delete_children(conn, sql::DELETE_MEMBERS, "group_id", pool, &ids).await?;
                let rows: Vec<_> = groups
                    .iter()
                    .flat_map(|g| g.members.iter().enumerate().map(move |(i, m)| (g, i, m)))
                    .collect();
                for chunk in rows.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new(sql::INSERT_MEMBERS);
                    qb.push_values(chunk, |mut b, (g, pos, m)| {
                        let (kind, id) = member_columns(m);
                        b.push_bind(g.pool_id.as_str())
                            .push_bind(g.id.as_str())
                            .push_bind(sql_int(*pos as u64))
                            .push_bind(kind)
                            .push_bind(id);
                    });
                    qb.build()
                        .persistent(false)
                        .execute(&mut *conn)
                        .await
                        .map_err(db_err)?;
                }
                Ok(())
            }

            async fn write_refs(conn: &mut Conn, refs: &[ExternalRef]) -> StoreResult<()> {
                for chunk in refs.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new(sql::UPSERT_REFS);
                    qb.push_values(chunk, |mut b, r| {
                        b.push_bind(r.connection_id.as_str())
                            .push_bind(r.kind.as_str())
                            .push_bind(r.external_id.as_str())
                            .push_bind(r.union_id.as_deref())
                            .push_bind(r.custom_id.as_deref())
                            .push_bind(r.object_id.as_str());
                    });
                    qb.push(sql::UPSERT_REFS_TAIL);
                    qb.build()
                        .persistent(false)
                        .execute(&mut *conn)
                        .await
                        .map_err(db_err)?;
                }
                Ok(())
            }

            /// Refuses refs that would repoint a Feishu id from an object that exists to
            /// another one ([`StoreError::ExternalIdTaken`]): one query for the batch (a
            /// `UNION ALL` per connection and kind), run under the pool's counter lock.
            async fn check_refs(
                conn: &mut Conn,
                pool: &PoolId,
                refs: &[ExternalRef],
            ) -> StoreResult<()> {
                let mut by_key: HashMap<(&str, ObjectKind), Vec<&ExternalRef>> = HashMap::new();
                for r in refs {
                    by_key
                        .entry((r.connection_id.as_str(), r.kind))
                        .or_default()
                        .push(r);
                }
                let mut parts: Vec<(&str, ObjectKind, &[&ExternalRef])> = Vec::new();
                for ((connection, kind), list) in &by_key {
                    for chunk in list.chunks(CHUNK) {
                        parts.push((connection, *kind, chunk));
                    }
                }
                let mut start = 0;
                while start < parts.len() {
                    // Statements of at most CHUNK ids (one part may be a whole CHUNK).
                    let mut end = start;
                    let mut ids = 0;
                    while end < parts.len() && (end == start || ids + parts[end].2.len() <= CHUNK) {
                        ids += parts[end].2.len();
                        end += 1;
                    }
                    let mut qb = QueryBuilder::<$db>::new("");
                    for (i, (connection, kind, chunk)) in parts[start..end].iter().enumerate() {
                        if i > 0 {
                            qb.push(" UNION ALL ");
                        }
                        qb.push(sql::MAPPED_REFS_HEAD)
                            .push(sql::object_table(*kind))
                            .push(sql::MAPPED_REFS_POOL)
                            .push_bind(pool.as_str())
                            .push(") AND r.connection_id = ")
                            .push_bind(*connection)
                            .push(" AND r.kind = ")
                            .push_bind(kind.as_str())
                            .push(" AND r.external_id IN (");
                        let mut list = qb.separated(", ");
                        for r in chunk.iter() {
                            list.push_bind(r.external_id.as_str());
                        }
                        list.push_unseparated(")");
                    }
                    let rows: Vec<(String, String, String, String)> = qb
                        .build_query_as()
                        .persistent(false)
                        .fetch_all(&mut *conn)
                        .await
                        .map_err(db_err)?;
                    for (connection, kind, external_id, object_id) in rows {
                        let Some(kind) = ObjectKind::parse(&kind) else {
                            continue;
                        };
                        let taken = by_key.get(&(connection.as_str(), kind)).and_then(|list| {
                            list.iter()
                                .find(|r| r.external_id == external_id && r.object_id != object_id)
                        });
                        if taken.is_some() {
                            return Err(StoreError::ExternalIdTaken {
                                kind: kind.as_str(),
                                external_id,
                                object_id,
                            });
                        }
                    }
                    start = end;
                }
                Ok(())
            }

            async fn write_changes(conn: &mut Conn, changes: &[ChangeRecord]) -> StoreResult<()> {
                for chunk in changes.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new(sql::INSERT_CHANGES);
                    qb.push_values(chunk, |mut b, c| {
                        b.push_bind(c.pool_id.as_str())
                            .push_bind(c.seq)
                            .push_bind(c.kind.as_str())
                            .push_bind(c.object_kind.as_str())
                            .push_bind(c.object_id.as_str())
                            .push_bind(c.version)
                            .push_bind(Json(&c.source))
                            .push_bind(c.at)
                            .push_bind(Json(&c.object));
                    });
                    qb.build()
                        .persistent(false)
                        .execute(&mut *conn)
                        .await
                        .map_err(db_err)?;
                }
                Ok(())
            }

            async fn write_watermarks(conn: &mut Conn, marks: &[Watermark]) -> StoreResult<()> {
                for chunk in marks.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new(sql::UPSERT_WATERMARKS);
                    qb.push_values(chunk, |mut b, w| {
                        b.push_bind(w.connection_id.as_str())
                            .push_bind(w.object_key.as_str())
                            .push_bind(w.event_time)
                            .push_bind(w.deleted);
                    });
                    qb.push(sql::UPSERT_WATERMARKS_TAIL);
                    qb.build()
                        .persistent(false)
                        .execute(&mut *conn)
                        .await
                        .map_err(db_err)?;
                }
                Ok(())
            }

            async fn finish_inbox(
                conn: &mut Conn,
                id: i64,
                outcome: &InboxOutcome,
                now: Millis,
            ) -> StoreResult<()> {
                let row = InboxFinish::new(id, outcome, now);
                let done = sqlx::query(sql::FINISH_INBOX)
                    .bind(row.id)
                    .bind(row.state)
                    .bind(row.outcome)
                    .bind(row.last_error)
                    .bind(row.finished_at)
                    .bind(row.tries)
                    .bind(row.next_attempt_at)
                    .execute(&mut *conn)
                    .await
                    .map_err(db_err)?;
                if done.rows_affected() == 1 {
                    return Ok(());
                }
                Err(not_finished(conn, id).await?)
            }

            /// Why an event could not be finished: it does not exist, or it is not pending.
            async fn not_finished(conn: &mut Conn, id: i64) -> StoreResult<StoreError> {
                let state: Option<String> = sqlx::query_scalar(sql::INBOX_STATE)
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(db_err)?;
                Ok(match state {
                    None => StoreError::NotFound(format!("inbox event {id}")),
                    Some(state) => StoreError::Conflict(format!(
                        "inbox event {id} is already {state}; it is finished only once"
                    )),
                })
            }

            /// Finishes the inbox events of an [`ApplyBatch`]: all of them or, with an error
            /// (one not pending, missing, or listed twice), none (the caller's transaction
            /// is dropped).
            async fn finish_inbox_events(
                conn: &mut Conn,
                events: &[(i64, InboxOutcome)],
                now: Millis,
            ) -> StoreResult<()> {
                let mut seen = HashSet::with_capacity(events.len());
                if let Some((id, _)) = events.iter().find(|(id, _)| !seen.insert(*id)) {
                    return Err(StoreError::Conflict(format!(
                        "inbox event {id} is listed twice in one batch; it is finished only once"
                    )));
                }
                let rows: Vec<InboxFinish<'_>> = events
                    .iter()
                    .map(|(id, outcome)| InboxFinish::new(*id, outcome, now))
                    .collect();
                // One statement per chunk: on PostgreSQL each statement is a round trip.
                let mut done = HashSet::with_capacity(rows.len());
                for chunk in rows.chunks(CHUNK) {
                    done.extend(<$store>::finish_inbox_rows(conn, chunk).await?);
                }
                match events.iter().find(|(id, _)| !done.contains(id)) {
                    None => Ok(()),
                    Some((id, _)) => Err(not_finished(conn, *id).await?),
                }
            }

            /// `WHERE` of the inbox list and its count (indexes `inbox_by_connection` and
            /// `inbox_by_pool`).
            fn push_inbox_filters(qb: &mut QueryBuilder<$db>, filter: &InboxFilter) {
                qb.push(" WHERE 1 = 1");
                if let Some(pool) = &filter.pool_id {
                    qb.push(" AND pool_id = ").push_bind(pool.as_str());
                }
                if let Some(conn) = &filter.connection_id {
                    qb.push(" AND connection_id = ").push_bind(conn.as_str());
                }
                if let Some(state) = filter.state {
                    qb.push(" AND state = ").push_bind(state.as_str());
                }
                if let Some(event_type) = &filter.event_type {
                    qb.push(" AND event_type = ").push_bind(event_type.as_str());
                }
            }

            /// `WHERE pool_id = … [AND state = …] …` of a parked-deletion filter (the indexes
            /// `parked_by_pool` and `parked_by_job` serve it).
            fn push_parked_filter(qb: &mut QueryBuilder<$db>, filter: &ParkedFilter) {
                qb.push(" WHERE pool_id = ")
                    .push_bind(filter.pool_id.as_str());
                if let Some(state) = filter.state {
                    qb.push(" AND state = ").push_bind(state.as_str());
                }
                if let Some(connection) = &filter.connection_id {
                    qb.push(" AND connection_id = ")
                        .push_bind(connection.as_str());
                }
                if let Some(kind) = filter.kind {
                    qb.push(" AND kind = ").push_bind(kind.as_str());
                }
                if let Some(job) = &filter.job_id {
                    qb.push(" AND job_id = ").push_bind(job.as_str());
                }
            }

            fn push_page(qb: &mut QueryBuilder<$db>, page: PageRequest) {
                qb.push(" LIMIT ")
                    .push_bind(sql_int(page.limit))
                    .push(" OFFSET ")
                    .push_bind(sql_int(page.offset));
            }

            /// The membership rows of some users (ordered by user, position).
            async fn memberships_of(
                conn: &mut Conn,
                pool: &PoolId,
                ids: &[String],
            ) -> StoreResult<Vec<MembershipRow>> {
                let mut out = Vec::new();
                for chunk in ids.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new(concat!(
                        "SELECT ",
                        sql::membership_cols!(),
                        " FROM user_departments WHERE pool_id = "
                    ));
                    qb.push_bind(pool.as_str()).push(" AND user_id");
                    push_in(&mut qb, chunk);
                    qb.push(" ORDER BY user_id, pos");
                    out.extend(
                        qb.build_query_as::<MembershipRow>()
                            .persistent(false)
                            .fetch_all(&mut *conn)
                            .await
                            .map_err(db_err)?,
                    );
                }
                Ok(out)
            }

            async fn members_of(
                conn: &mut Conn,
                pool: &PoolId,
                ids: &[String],
            ) -> StoreResult<Vec<MemberRow>> {
                let mut out = Vec::new();
                for chunk in ids.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new(
                        "SELECT group_id, member_kind, member_id FROM group_members \
                         WHERE pool_id = ",
                    );
                    qb.push_bind(pool.as_str()).push(" AND group_id");
                    push_in(&mut qb, chunk);
                    qb.push(" ORDER BY group_id, pos");
                    out.extend(
                        qb.build_query_as::<MemberRow>()
                            .persistent(false)
                            .fetch_all(&mut *conn)
                            .await
                            .map_err(db_err)?,
                    );
                }
                Ok(out)
            }

            /// Rows of one table by id (`head` ends with `WHERE pool_id = `), a statement per
            /// chunk of ids.
            async fn rows_by_id<R>(
                conn: &mut Conn,
                head: &'static str,
                pool: &PoolId,
                ids: &[String],
            ) -> StoreResult<Vec<R>>
            where
                R: for<'r> sqlx::FromRow<'r, <$db as sqlx::Database>::Row> + Send + Unpin,
            {
                let mut out = Vec::with_capacity(ids.len());
                for chunk in ids.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new(head);
                    qb.push_bind(pool.as_str()).push(" AND id");
                    push_in(&mut qb, chunk);
                    out.extend(
                        qb.build_query_as::<R>()
                            .persistent(false)
                            .fetch_all(&mut *conn)
                            .await
                            .map_err(db_err)?,
                    );
                }
                Ok(out)
            }

            /// Up to this many ids, a bulk read by id stays prepared: a user's departments, a
            /// path from the root. A handful of statement texts, each small, read on every
            /// request of their kind; longer lists are prepared when they run.
            const FEW: usize = 8;

            /// `SELECT` the columns of a `WholeUserRow` of `users u`.
            fn select_whole_users() -> QueryBuilder<$db> {
                let mut qb = QueryBuilder::<$db>::new("SELECT ");
                qb.push(sql::user_cols_u!())
                    .push(", ")
                    .push(sql::memberships_json(<$store>::BACKEND));
                qb
            }

            /// `SELECT` the columns of a `WholeDepartmentRow` of `departments d`.
            fn select_whole_departments() -> QueryBuilder<$db> {
                let mut qb = QueryBuilder::<$db>::new(sql::department_cols_d!());
                qb.push(", ").push(sql::leaders_json(<$store>::BACKEND));
                qb
            }

            /// How a whole object of one kind is read by id: `select()`, then `tail` (ending
            /// `WHERE pool_id = `), the pool and `… AND {id} IN (…)`; each row made an object
            /// by `into`.
            struct Whole<R, T> {
                select: fn() -> QueryBuilder<$db>,
                tail: &'static str,
                id: &'static str,
                into: fn(R) -> StoreResult<T>,
            }

            /// Users with their memberships (`sql::memberships_json`).
            const WHOLE_USERS: Whole<WholeUserRow, User> = Whole {
                select: select_whole_users,
                tail: sql::WHOLE_USERS_BY_ID_TAIL,
                id: "u.id",
                into: WholeUserRow::into_user,
            };

            /// Departments with their leaders (`sql::leaders_json`).
            const WHOLE_DEPARTMENTS: Whole<WholeDepartmentRow, Department> = Whole {
                select: select_whole_departments,
                tail: sql::WHOLE_DEPARTMENTS_BY_ID_TAIL,
                id: "d.id",
                into: WholeDepartmentRow::into_department,
            };

            /// Whole objects by id, one statement per `CHUNK` ids.
            async fn whole_by_id<R, T>(
                conn: &mut Conn,
                kind: &Whole<R, T>,
                pool: &PoolId,
                ids: &[String],
            ) -> StoreResult<Vec<T>>
            where
                R: for<'r> sqlx::FromRow<'r, <$db as sqlx::Database>::Row> + Send + Unpin,
            {
                let mut out = Vec::with_capacity(ids.len());
                for chunk in ids.chunks(CHUNK) {
                    let mut qb = (kind.select)();
                    qb.push(kind.tail)
                        .push_bind(pool.as_str())
                        .push(" AND ")
                        .push(kind.id);
                    push_in(&mut qb, chunk);
                    let rows: Vec<R> = qb
                        .build_query_as()
                        .persistent(chunk.len() <= FEW)
                        .fetch_all(&mut *conn)
                        .await
                        .map_err(db_err)?;
                    for row in rows {
                        out.push((kind.into)(row)?);
                    }
                }
                Ok(out)
            }

            impl $store {
                /// Where a read by `n` ids runs: a handful, prepared, on the point readers.
                fn reads_for(&self, n: usize) -> &sqlx::Pool<$db> {
                    if n <= FEW {
                        self.point_reads()
                    } else {
                        self.reads()
                    }
                }

                /// After a committed write that can end a bind (docs/ldap.md, "Binds").
                fn raise_epoch(&self) {
                    self.epoch()
                        .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                }

                /// `whole_by_id` as one snapshot: a lone statement, or a read transaction
                /// around several chunks. Distinct ids, in the order of `ids`.
                async fn whole_in_snapshot<R, T>(
                    &self,
                    kind: &Whole<R, T>,
                    pool: &PoolId,
                    ids: &[String],
                    id_of: fn(&T) -> &str,
                ) -> StoreResult<Vec<T>>
                where
                    R: for<'r> sqlx::FromRow<'r, <$db as sqlx::Database>::Row> + Send + Unpin,
                {
                    if ids.is_empty() {
                        return Ok(Vec::new());
                    }
                    let found = if ids.len() <= CHUNK {
                        let mut conn = self.reads_for(ids.len()).acquire().await.map_err(db_err)?;
                        whole_by_id(&mut conn, kind, pool, ids).await?
                    } else {
                        let mut tx = self.begin_read().await.map_err(db_err)?;
                        let found = whole_by_id(&mut tx, kind, pool, ids).await?;
                        tx.commit().await.map_err(db_err)?;
                        found
                    };
                    Ok(in_order(found, ids, id_of))
                }

                /// The objects a connection maps, with their refs; users cut to an outline
                /// (`outline`) or whole.
                async fn connection_state(
                    &self,
                    connection_id: &ConnectionId,
                    outline: bool,
                ) -> StoreResult<ConnectionState> {
                    let mut tx = self.begin_read().await.map_err(db_err)?;
                    let pool: Option<String> = sqlx::query_scalar(sql::CONNECTION_POOL)
                        .bind(connection_id.as_str())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db_err)?;
                    let Some(pool) = pool else {
                        return Err(StoreError::NotFound(format!("connection {connection_id}")));
                    };
                    let conn = connection_id.as_str();
                    let refs: Vec<RefRow> = sqlx::query_as(sql::STATE_REFS)
                        .bind(conn)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(db_err)?;
                    // One query per table, each a semi-join on the connection's refs: the
                    // cost is a few scans whatever the size of the organisation.
                    macro_rules! state_rows {
                        ($query:expr) => {
                            sqlx::query_as($query)
                                .bind(pool.as_str())
                                .bind(conn)
                                .fetch_all(&mut *tx)
                                .await
                                .map_err(db_err)?
                        };
                    }
                    let memberships: Vec<MembershipRow> = state_rows!(sql::STATE_MEMBERSHIPS);
                    let mut by_user = memberships_by_user(memberships);
                    // Users one row at a time: no second copy of the largest table is held.
                    let mut users = Vec::new();
                    {
                        let mut rows = if outline {
                            sqlx::query_as::<_, OutlineUserRow>(sql::STATE_USER_OUTLINES)
                                .bind(pool.as_str())
                                .bind(conn)
                                .fetch(&mut *tx)
                                .map_ok(UserRow::from)
                                .boxed()
                        } else {
                            sqlx::query_as::<_, UserRow>(sql::STATE_USERS)
                                .bind(pool.as_str())
                                .bind(conn)
                                .fetch(&mut *tx)
                        };
                        while let Some(row) = rows.try_next().await.map_err(db_err)? {
                            users.push(user_from_row(row, &mut by_user)?);
                        }
                    }
                    // Pushing left up to twice the room needed, for the whole job.
                    users.shrink_to_fit();
                    let departments: Vec<DepartmentRow> = state_rows!(sql::STATE_DEPARTMENTS);
                    let leaders: Vec<LeaderRow> = state_rows!(sql::STATE_LEADERS);
                    let groups: Vec<GroupRow> = state_rows!(sql::STATE_GROUPS);
                    let members: Vec<MemberRow> = state_rows!(sql::STATE_MEMBERS);
                    tx.commit().await.map_err(db_err)?;
                    Ok(ConnectionState {
                        users,
                        departments: assemble_departments(departments, leaders)?,
                        groups: assemble_groups(groups, members)?,
                        refs: convert_all(refs)?,
                    })
                }
            }

            #[async_trait::async_trait]
            impl DirectoryStore for $store {
                fn backend(&self) -> Backend {
                    Self::BACKEND
                }

                fn write_epoch(&self) -> u64 {
                    self.epoch().load(std::sync::atomic::Ordering::Acquire)
                }

                // ---- pools ----

                async fn create_pool(&self, pool: &UserPool) -> StoreResult<()> {
                    let mut tx = self.begin_write().await.map_err(db_err)?;
                    sqlx::query(sql::INSERT_POOL)
                        .bind(pool.id.as_str())
                        .bind(pool.name.as_str())
                        .bind(pool.created_at)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| match db_err(e) {
                            StoreError::Conflict(_) => StoreError::Conflict(format!(
                                "user pool {} already exists",
                                pool.id
                            )),
                            other => other,
                        })?;
                    sqlx::query(sql::INSERT_COUNTER)
                        .bind(pool.id.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err)?;
                    tx.commit().await.map_err(db_err)
                }

                async fn get_pool(&self, id: &PoolId) -> StoreResult<Option<UserPool>> {
                    let row: Option<PoolRow> = sqlx::query_as(sql::GET_POOL)
                        .bind(id.as_str())
                        .fetch_optional(self.reads())
                        .await
                        .map_err(db_err)?;
                    Ok(row.map(UserPool::from))
                }

                async fn list_pools(&self) -> StoreResult<Vec<UserPool>> {
                    let rows: Vec<PoolRow> = sqlx::query_as(sql::LIST_POOLS)
                        .fetch_all(self.reads())
                        .await
                        .map_err(db_err)?;
                    Ok(rows.into_iter().map(UserPool::from).collect())
                }

                async fn rename_pool(&self, id: &PoolId, name: &str) -> StoreResult<()> {
                    let done = sqlx::query(sql::RENAME_POOL)
                        .bind(id.as_str())
                        .bind(name)
                        .execute(self.writes())
                        .await
                        .map_err(db_err)?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound(format!("user pool {id}")));
                    }
                    Ok(())
                }

                async fn delete_pool(&self, id: &PoolId) -> StoreResult<()> {
                    let mut tx = self.begin_write().await.map_err(db_err)?;
                    let found: Option<String> = sqlx::query_scalar(sql::POOL_EXISTS)
                        .bind(id.as_str())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db_err)?;
                    if found.is_none() {
                        return Err(StoreError::NotFound(format!("user pool {id}")));
                    }
                    for statement in <$store>::DELETE_POOL_OWN.iter().chain(&sql::DELETE_POOL) {
                        sqlx::query(*statement)
                            .bind(id.as_str())
                            .execute(&mut *tx)
                            .await
                            .map_err(db_err)?;
                    }
                    tx.commit().await.map_err(db_err)?;
                    self.raise_epoch();
                    Ok(())
                }

                // ---- connections ----

                async fn create_connection(&self, c: &Connection) -> StoreResult<()> {
                    sqlx::query(sql::INSERT_CONNECTION)
                        .bind(c.id.as_str())
                        .bind(c.pool_id.as_str())
                        .bind(c.identifier.as_str())
                        .bind(c.display_name.as_str())
                        .bind(c.provider.as_str())
                        .bind(c.base_url.as_deref())
                        .bind(c.app_id.as_str())
                        .bind(c.app_secret.0.as_str())
                        .bind(c.encrypt_key.as_ref().map(|s| s.0.as_str()))
                        .bind(c.verification_token.as_ref().map(|s| s.0.as_str()))
                        .bind(Json(&c.settings))
                        .bind(c.created_at)
                        .bind(c.updated_at)
                        .execute(self.writes())
                        .await
                        .map_err(|e| connection_conflict(e, c))?;
                    Ok(())
                }

                async fn update_connection(&self, c: &Connection) -> StoreResult<()> {
                    let done = sqlx::query(sql::UPDATE_CONNECTION)
                        .bind(c.id.as_str())
                        .bind(c.identifier.as_str())
                        .bind(c.display_name.as_str())
                        .bind(c.provider.as_str())
                        .bind(c.base_url.as_deref())
                        .bind(c.app_id.as_str())
                        .bind(c.app_secret.0.as_str())
                        .bind(c.encrypt_key.as_ref().map(|s| s.0.as_str()))
                        .bind(c.verification_token.as_ref().map(|s| s.0.as_str()))
                        .bind(Json(&c.settings))
                        .bind(c.updated_at)
                        .execute(self.writes())
                        .await
                        .map_err(|e| connection_conflict(e, c))?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound(format!("connection {}", c.id)));
                    }
                    Ok(())
                }

                async fn delete_connection(&self, id: &ConnectionId) -> StoreResult<()> {
                    let mut tx = self.begin_write().await.map_err(db_err)?;
                    // The users it names by `user_id` lose that candidate with its refs.
                    let pool: Option<String> = sqlx::query_scalar(sql::CONNECTION_POOL)
                        .bind(id.as_str())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db_err)?;
                    let named: Vec<String> = sqlx::query_scalar(sql::CONNECTION_USER_IDS)
                        .bind(id.as_str())
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(db_err)?;
                    for statement in [
                        sql::DELETE_CONNECTION_REFS,
                        sql::DELETE_CONNECTION_WATERMARKS,
                        sql::DELETE_CONNECTION_LEASE,
                        sql::DELETE_CONNECTION_EVENT_LEASE,
                        sql::DELETE_CONNECTION_PENDING,
                    ] {
                        sqlx::query(statement)
                            .bind(id.as_str())
                            .execute(&mut *tx)
                            .await
                            .map_err(db_err)?;
                    }
                    let done = sqlx::query(sql::DELETE_CONNECTION)
                        .bind(id.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err)?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound(format!("connection {id}")));
                    }
                    if let Some(pool) = pool {
                        refresh_user_id_logins(&mut tx, &PoolId(pool), &named).await?;
                    }
                    tx.commit().await.map_err(db_err)
                }

                async fn get_connection(
                    &self,
                    id: &ConnectionId,
                ) -> StoreResult<Option<Connection>> {
                    let row: Option<ConnectionRow> = sqlx::query_as(sql::GET_CONNECTION)
                        .bind(id.as_str())
                        .fetch_optional(self.reads())
                        .await
                        .map_err(db_err)?;
                    row.map(Connection::try_from).transpose()
                }

                async fn find_connection(
                    &self,
                    pool_id: &PoolId,
                    identifier: &str,
                ) -> StoreResult<Option<Connection>> {
                    let row: Option<ConnectionRow> = sqlx::query_as(sql::FIND_CONNECTION)
                        .bind(pool_id.as_str())
                        .bind(identifier)
                        .fetch_optional(self.reads())
                        .await
                        .map_err(db_err)?;
                    row.map(Connection::try_from).transpose()
                }

                async fn list_connections(
                    &self,
                    pool_id: Option<&PoolId>,
                ) -> StoreResult<Vec<Connection>> {
                    let rows: Vec<ConnectionRow> = sqlx::query_as(sql::LIST_CONNECTIONS)
                        .bind(pool_id.map(|p| p.as_str()))
                        .fetch_all(self.reads())
                        .await
                        .map_err(db_err)?;
                    convert_all(rows)
                }

                // ---- directory ----

                async fn load_connection_state(
                    &self,
                    connection_id: &ConnectionId,
                ) -> StoreResult<ConnectionState> {
                    self.connection_state(connection_id, false).await
                }

                async fn load_connection_outline(
                    &self,
                    connection_id: &ConnectionId,
                ) -> StoreResult<ConnectionState> {
                    self.connection_state(connection_id, true).await
                }

                async fn get_user(
                    &self,
                    pool_id: &PoolId,
                    id: &UserId,
                ) -> StoreResult<Option<User>> {
                    // One statement (memberships as JSON): no transaction needed.
                    let mut qb = select_whole_users();
                    qb.push(sql::GET_WHOLE_USER_TAIL);
                    let row: Option<WholeUserRow> = qb
                        .build_query_as()
                        .bind(pool_id.as_str())
                        .bind(id.as_str())
                        .fetch_optional(self.reads())
                        .await
                        .map_err(db_err)?;
                    row.map(WholeUserRow::into_user).transpose()
                }

                async fn get_department(
                    &self,
                    pool_id: &PoolId,
                    id: &DepartmentId,
                ) -> StoreResult<Option<Department>> {
                    // One statement (leaders as JSON): no transaction needed.
                    let mut qb = select_whole_departments();
                    qb.push(sql::GET_WHOLE_DEPARTMENT_TAIL);
                    let row: Option<WholeDepartmentRow> = qb
                        .build_query_as()
                        .bind(pool_id.as_str())
                        .bind(id.as_str())
                        .fetch_optional(self.reads())
                        .await
                        .map_err(db_err)?;
                    row.map(WholeDepartmentRow::into_department).transpose()
                }

                async fn get_group(
                    &self,
                    pool_id: &PoolId,
                    id: &GroupId,
                ) -> StoreResult<Option<Group>> {
                    let mut tx = self.begin_read().await.map_err(db_err)?;
                    let row: Option<GroupRow> = sqlx::query_as(sql::GET_GROUP)
                        .bind(pool_id.as_str())
                        .bind(id.as_str())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db_err)?;
                    let Some(row) = row else { return Ok(None) };
                    let members: Vec<MemberRow> = sqlx::query_as(sql::GROUP_MEMBERS)
                        .bind(pool_id.as_str())
                        .bind(id.as_str())
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(db_err)?;
                    tx.commit().await.map_err(db_err)?;
                    Ok(assemble_groups(vec![row], members)?.pop())
                }

                async fn find_external(
                    &self,
                    connection_id: &ConnectionId,
                    kind: ObjectKind,
                    external_id: &str,
                ) -> StoreResult<Option<ExternalRef>> {
                    let row: Option<RefRow> = sqlx::query_as(sql::FIND_EXTERNAL)
                        .bind(connection_id.as_str())
                        .bind(kind.as_str())
                        .bind(external_id)
                        .fetch_optional(self.reads())
                        .await
                        .map_err(db_err)?;
                    row.map(ExternalRef::try_from).transpose()
                }

                async fn find_externals(
                    &self,
                    connection_id: &ConnectionId,
                    kind: ObjectKind,
                    external_ids: &[String],
                ) -> StoreResult<HashMap<String, ExternalRef>> {
                    let ids = unique_ids(external_ids.iter().map(String::as_str));
                    let mut out = HashMap::with_capacity(ids.len());
                    for chunk in ids.chunks(CHUNK) {
                        let mut qb = QueryBuilder::<$db>::new(sql::REFS_BY_EXTERNAL_ID);
                        qb.push_bind(connection_id.as_str())
                            .push(" AND kind = ")
                            .push_bind(kind.as_str())
                            .push(" AND external_id");
                        push_in(&mut qb, chunk);
                        let rows: Vec<RefRow> = qb
                            .build_query_as()
                            .persistent(false)
                            .fetch_all(self.reads())
                            .await
                            .map_err(db_err)?;
                        for row in rows {
                            let r = ExternalRef::try_from(row)?;
                            out.insert(r.external_id.clone(), r);
                        }
                    }
                    Ok(out)
                }

                async fn get_users(
                    &self,
                    pool_id: &PoolId,
                    ids: &[UserId],
                ) -> StoreResult<Vec<User>> {
                    let ids = unique_ids(ids.iter().map(UserId::as_str));
                    self.whole_in_snapshot(&WHOLE_USERS, pool_id, &ids, |u| u.id.as_str())
                        .await
                }

                async fn active_user_ids(
                    &self,
                    pool_id: &PoolId,
                    ids: &[UserId],
                ) -> StoreResult<HashSet<UserId>> {
                    let ids = unique_ids(ids.iter().map(UserId::as_str));
                    let mut out = HashSet::with_capacity(ids.len());
                    for chunk in ids.chunks(CHUNK) {
                        let (head, tail) = sql::ACTIVE_IDS_OF.of(<$store>::BACKEND);
                        let mut qb = QueryBuilder::<$db>::new(head);
                        qb.push_bind(pool_id.as_str()).push(tail);
                        push_in(&mut qb, chunk);
                        let found: Vec<String> = qb
                            .build_query_scalar()
                            .persistent(chunk.len() <= FEW)
                            .fetch_all(self.reads_for(chunk.len()))
                            .await
                            .map_err(db_err)?;
                        out.extend(found.into_iter().map(UserId));
                    }
                    Ok(out)
                }

                async fn get_departments(
                    &self,
                    pool_id: &PoolId,
                    ids: &[DepartmentId],
                ) -> StoreResult<Vec<Department>> {
                    let ids = unique_ids(ids.iter().map(DepartmentId::as_str));
                    self.whole_in_snapshot(&WHOLE_DEPARTMENTS, pool_id, &ids, |d| d.id.as_str())
                        .await
                }

                async fn get_groups(
                    &self,
                    pool_id: &PoolId,
                    ids: &[GroupId],
                ) -> StoreResult<Vec<Group>> {
                    let ids = unique_ids(ids.iter().map(GroupId::as_str));
                    if ids.is_empty() {
                        return Ok(Vec::new());
                    }
                    let mut tx = self.begin_read().await.map_err(db_err)?;
                    let rows: Vec<GroupRow> =
                        rows_by_id(&mut tx, sql::GROUPS_BY_ID, pool_id, &ids).await?;
                    let found: Vec<String> = rows.iter().map(GroupRow::id).collect();
                    let members = members_of(&mut tx, pool_id, &found).await?;
                    tx.commit().await.map_err(db_err)?;
                    let groups = assemble_groups(rows, members)?;
                    Ok(in_order(groups, &ids, |g| g.id.as_str()))
                }

                async fn department_members(
                    &self,
                    pool_id: &PoolId,
                    department_id: &DepartmentId,
                ) -> StoreResult<Vec<User>> {
                    let mut tx = self.begin_read().await.map_err(db_err)?;
                    let rows: Vec<UserRow> = sqlx::query_as(sql::DEPARTMENT_MEMBERS)
                        .bind(pool_id.as_str())
                        .bind(department_id.as_str())
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(db_err)?;
                    let memberships: Vec<MembershipRow> = if rows.is_empty() {
                        Vec::new()
                    } else {
                        sqlx::query_as(sql::DEPARTMENT_MEMBER_MEMBERSHIPS)
                            .bind(pool_id.as_str())
                            .bind(department_id.as_str())
                            .fetch_all(&mut *tx)
                            .await
                            .map_err(db_err)?
                    };
                    tx.commit().await.map_err(db_err)?;
                    let mut users = assemble_users(rows, memberships)?;
                    users.sort_by(|a, b| a.id.0.cmp(&b.id.0));
                    Ok(users)
                }

                async fn find_external_by(
                    &self,
                    connection_id: &ConnectionId,
                    kind: ObjectKind,
                    field: ExternalField,
                    value: &str,
                ) -> StoreResult<Option<ExternalRef>> {
                    let query = match field {
                        ExternalField::ExternalId => sql::FIND_EXTERNAL,
                        ExternalField::UnionId => sql::FIND_EXTERNAL_BY_UNION_ID,
                        ExternalField::CustomId => sql::FIND_EXTERNAL_BY_CUSTOM_ID,
                    };
                    let row: Option<RefRow> = sqlx::query_as(query)
                        .bind(connection_id.as_str())
                        .bind(kind.as_str())
                        .bind(value)
                        .fetch_optional(self.reads())
                        .await
                        .map_err(db_err)?;
                    row.map(ExternalRef::try_from).transpose()
                }

                async fn object_history(
                    &self,
                    pool_id: &PoolId,
                    kind: ObjectKind,
                    object_id: &str,
                    limit: u64,
                ) -> StoreResult<Vec<ChangeRecord>> {
                    let rows: Vec<ChangeRow> = sqlx::query_as(sql::OBJECT_HISTORY)
                        .bind(pool_id.as_str())
                        .bind(kind.as_str())
                        .bind(object_id)
                        .bind(sql_int(limit))
                        .fetch_all(self.reads())
                        .await
                        .map_err(db_err)?;
                    convert_all(rows)
                }

                async fn groups_of_member(
                    &self,
                    pool_id: &PoolId,
                    member: &GroupMember,
                ) -> StoreResult<Vec<Group>> {
                    let (member_kind, member_id) = member_columns(member);
                    let ids: Vec<(String,)> = sqlx::query_as(sql::GROUPS_OF_MEMBER)
                        .bind(pool_id.as_str())
                        .bind(member_kind)
                        .bind(member_id)
                        .fetch_all(self.reads())
                        .await
                        .map_err(db_err)?;
                    // In bulk: a user may be in thousands of groups.
                    let ids: Vec<GroupId> = ids.into_iter().map(|(id,)| GroupId(id)).collect();
                    self.get_groups(pool_id, &ids).await
                }

                async fn group_summaries_of_member(
                    &self,
                    pool_id: &PoolId,
                    member: &GroupMember,
                ) -> StoreResult<Vec<GroupSummary>> {
                    let (member_kind, member_id) = member_columns(member);
                    let rows: Vec<GroupRow> = sqlx::query_as(sql::GROUP_SUMMARIES_OF_MEMBER)
                        .bind(pool_id.as_str())
                        .bind(member_kind)
                        .bind(member_id)
                        .fetch_all(self.reads())
                        .await
                        .map_err(db_err)?;
                    // No member rows: each group comes with an empty list, then loses it.
                    Ok(assemble_groups(rows, Vec::new())?
                        .into_iter()
                        .map(GroupSummary::from)
                        .collect())
                }

                async fn refs_of(
                    &self,
                    kind: ObjectKind,
                    object_id: &str,
                ) -> StoreResult<Vec<ExternalRef>> {
                    let rows: Vec<RefRow> = sqlx::query_as(sql::REFS_OF)
                        .bind(kind.as_str())
                        .bind(object_id)
                        .fetch_all(self.reads())
                        .await
                        .map_err(db_err)?;
                    convert_all(rows)
                }

                async fn list_users(
                    &self,
                    pool_id: &PoolId,
                    query: &UserQuery,
                    page: &KeyPage,
                ) -> StoreResult<Keyed<User>> {
                    let mut tx = self.begin_read().await.map_err(db_err)?;
                    let page = users_page(&mut tx, pool_id, query, page).await?;
                    tx.commit().await.map_err(db_err)?;
                    Ok(page)
                }

                async fn count_users(
                    &self,
                    pool_id: &PoolId,
                    query: &UserQuery,
                ) -> StoreResult<u64> {
                    let mut qb = QueryBuilder::<$db>::new("SELECT COUNT(*) FROM ");
                    match &query.department_id {
                        Some(department) => {
                            qb.push(
                                "subtree_members s JOIN users u ON u.pool_id = s.pool_id \
                                 AND u.id = s.user_id WHERE s.pool_id = ",
                            )
                            .push_bind(pool_id.as_str())
                            .push(" AND s.department_id = ")
                            .push_bind(department.as_str());
                            if query.scope == MemberScope::Direct {
                                qb.push(" AND s.direct = 1");
                            }
                        }
                        None => {
                            qb.push("users u WHERE u.pool_id = ")
                                .push_bind(pool_id.as_str());
                        }
                    }
                    push_user_conditions(&mut qb, query, true);
                    let n: i64 = qb
                        .build_query_scalar()
                        .fetch_one(self.reads())
                        .await
                        .map_err(db_err)?;
                    Ok(count(n))
                }

                async fn list_departments(&self, pool_id: &PoolId) -> StoreResult<Vec<Department>> {
                    let mut tx = self.begin_read().await.map_err(db_err)?;
                    let rows: Vec<DepartmentRow> = sqlx::query_as(sql::LIVE_DEPARTMENTS)
                        .bind(pool_id.as_str())
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(db_err)?;
                    let leaders: Vec<LeaderRow> = sqlx::query_as(sql::LIVE_DEPARTMENT_LEADERS)
                        .bind(pool_id.as_str())
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(db_err)?;
                    tx.commit().await.map_err(db_err)?;
                    assemble_departments(rows, leaders)
                }

                async fn departments_page(
                    &self,
                    pool_id: &PoolId,
                    page: &KeyPage,
                ) -> StoreResult<Keyed<Department>> {
                    let limit = page.limit.max(1);
                    // The primary key (pool, id) gives the order; one statement.
                    let mut qb = select_whole_departments();
                    qb.push(sql::WHOLE_DEPARTMENTS_BY_ID_TAIL)
                        .push_bind(pool_id.as_str())
                        .push(" AND d.deleted_at IS NULL");
                    if let Some(after) = &page.after {
                        qb.push(" AND d.id > ").push_bind(after.as_str());
                    }
                    qb.push(" ORDER BY d.id LIMIT ").push_bind(sql_int(limit + 1));
                    let rows: Vec<WholeDepartmentRow> = qb
                        .build_query_as()
                        .fetch_all(self.reads())
                        .await
                        .map_err(db_err)?;
                    let more = rows.len() as u64 > limit;
                    let items = rows
                        .into_iter()
                        .take(usize::try_from(limit).unwrap_or(usize::MAX))
                        .map(WholeDepartmentRow::into_department)
                        .collect::<StoreResult<Vec<Department>>>()?;
                    let next = more.then(|| items.last().map(|d| d.id.0.clone())).flatten();
                    Ok(Keyed { items, next })
                }

                async fn department_children(
                    &self,
                    pool_id: &PoolId,
                    parent: Option<&DepartmentId>,
                    page: &KeyPage,
                ) -> StoreResult<Keyed<DepartmentNode>> {
                    // One statement: no transaction needed.
                    let mut conn = self.reads().acquire().await.map_err(db_err)?;
                    children_page(&mut conn, pool_id, parent, page).await
                }

                async fn department_node(
                    &self,
                    pool_id: &PoolId,
                    id: &DepartmentId,
                ) -> StoreResult<Option<DepartmentNode>> {
                    let mut qb = QueryBuilder::<$db>::new(sql::department_node_select!());
                    qb.push(", ")
                        .push(sql::leaders_json(<$store>::BACKEND))
                        .push(sql::department_node_from!())
                        .push(" WHERE d.pool_id = $1 AND d.id = $2");
                    let rows: Vec<NodeRow> = qb
                        .build_query_as()
                        .bind(pool_id.as_str())
                        .bind(id.as_str())
                        .fetch_all(self.reads())
                        .await
                        .map_err(db_err)?;
                    Ok(nodes(rows)?.pop())
                }

                async fn department_path(
                    &self,
                    pool_id: &PoolId,
                    id: &DepartmentId,
                ) -> StoreResult<Vec<Department>> {
                    let mut tx = self.begin_read().await.map_err(db_err)?;
                    let rows: Vec<(String,)> = sqlx::query_as(sql::ANCESTORS)
                        .bind(pool_id.as_str())
                        .bind(id.as_str())
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(db_err)?;
                    // Nearest first; a stored cycle repeats an id: stop there.
                    let mut seen = HashSet::new();
                    let mut ids: Vec<String> = Vec::new();
                    for (ancestor,) in rows {
                        if ancestor == id.as_str() || !seen.insert(ancestor.clone()) {
                            break;
                        }
                        ids.push(ancestor);
                    }
                    let found = whole_by_id(&mut *tx, &WHOLE_DEPARTMENTS, pool_id, &ids).await?;
                    tx.commit().await.map_err(db_err)?;
                    let mut path = in_order(found, &ids, |d| d.id.as_str());
                    // Up to the first tombstoned ancestor (a root of the live tree below it).
                    if let Some(cut) = path.iter().position(|d| d.deleted_at.is_some()) {
                        path.truncate(cut);
                    }
                    path.reverse();
                    Ok(path)
                }

                async fn refresh_statistics(&self) -> StoreResult<()> {
                    for statement in <$store>::REFRESH_STATISTICS {
                        sqlx::query(*statement)
                            .execute(self.writes())
                            .await
                            .map_err(db_err)?;
                    }
                    Ok(())
                }

                async fn list_groups(
                    &self,
                    pool_id: &PoolId,
                    page: &KeyPage,
                ) -> StoreResult<Keyed<GroupEntry>> {
                    let limit = page.limit.max(1);
                    let after = $crate::read_model::Key::decode(
                        page.after.as_deref(),
                        $crate::read_model::Order::Created,
                    )?;
                    // One statement: each group's members counted through
                    // `group_members_by_group`, never read.
                    let mut qb = QueryBuilder::<$db>::new(concat!(
                        "SELECT ",
                        sql::group_cols!(),
                        ", (SELECT COUNT(*) FROM group_members m WHERE m.pool_id = \
                         user_groups.pool_id AND m.group_id = user_groups.id) AS member_count \
                         FROM user_groups WHERE pool_id = "
                    ));
                    qb.push_bind(pool_id.as_str())
                        .push(" AND deleted_at IS NULL");
                    if let Some($crate::read_model::Key::Created(at, id)) = &after {
                        push_after(&mut qb, " AND ", "(created_at, id)", *at, id.clone());
                    }
                    qb.push(" ORDER BY created_at, id LIMIT ")
                        .push_bind(sql_int(limit + 1));
                    let rows: Vec<GroupCountRow> = qb
                        .build_query_as()
                        .fetch_all(self.reads())
                        .await
                        .map_err(db_err)?;
                    let (rows, next) = $crate::read_model::cut_page(rows, limit, |g| {
                        $crate::read_model::Key::Created(g.row.created_at(), g.row.id())
                    });
                    let items = rows
                        .into_iter()
                        .map(GroupCountRow::into_entry)
                        .collect::<StoreResult<_>>()?;
                    Ok(Keyed { items, next })
                }

                async fn group_members_page(
                    &self,
                    pool_id: &PoolId,
                    group_id: &GroupId,
                    page: &KeyPage,
                ) -> StoreResult<Option<Keyed<GroupMember>>> {
                    let limit = page.limit.max(1);
                    let after = $crate::read_model::Key::decode(
                        page.after.as_deref(),
                        $crate::read_model::Order::GroupMember,
                    )?;
                    let mut qb = QueryBuilder::<$db>::new(
                        "SELECT group_id, member_kind, member_id FROM group_members \
                         WHERE pool_id = ",
                    );
                    qb.push_bind(pool_id.as_str())
                        .push(" AND group_id = ")
                        .push_bind(group_id.as_str());
                    if let Some($crate::read_model::Key::GroupMember(kind, id)) = &after {
                        let (kind, id) = (kind.clone(), id.clone());
                        push_after(&mut qb, " AND ", "(member_kind, member_id)", kind, id);
                    }
                    qb.push(" ORDER BY member_kind, member_id LIMIT ")
                        .push_bind(sql_int(limit + 1));
                    let rows: Vec<MemberRow> = qb
                        .build_query_as()
                        .fetch_all(self.reads())
                        .await
                        .map_err(db_err)?;
                    if rows.is_empty() {
                        // An empty page of a group that exists, or no such group.
                        let found: Option<i64> = sqlx::query_scalar(sql::GROUP_EXISTS)
                            .bind(pool_id.as_str())
                            .bind(group_id.as_str())
                            .fetch_optional(self.reads())
                            .await
                            .map_err(db_err)?;
                        if found.is_none() {
                            return Ok(None);
                        }
                    }
                    let (rows, next) = $crate::read_model::cut_page(rows, limit, |m| {
                        let (kind, id) = m.key();
                        $crate::read_model::Key::GroupMember(kind, id)
                    });
                    let items = rows
                        .into_iter()
                        .map(MemberRow::into_member)
                        .collect::<StoreResult<_>>()?;
                    Ok(Some(Keyed { items, next }))
                }

                async fn count_departments(&self, pool_id: &PoolId) -> StoreResult<u64> {
                    let n: i64 = sqlx::query_scalar(sql::COUNT_LIVE_DEPARTMENTS)
                        .bind(pool_id.as_str())
                        .fetch_one(self.reads())
                        .await
                        .map_err(db_err)?;
                    Ok(count(n))
                }

                async fn count_groups(&self, pool_id: &PoolId) -> StoreResult<u64> {
                    let n: i64 = sqlx::query_scalar(sql::COUNT_LIVE_GROUPS)
                        .bind(pool_id.as_str())
                        .fetch_one(self.reads())
                        .await
                        .map_err(db_err)?;
                    Ok(count(n))
                }

                // ---- writes and the change log ----

                async fn apply(&self, mut batch: ApplyBatch) -> StoreResult<Applied> {
                    let written = std::mem::take(&mut batch.as_read.written);
                    let touched = prepare::touched(&batch);
                    let pool = &batch.pool_id;
                    let now = now_ms();
                    let mut tx = self.begin_write().await.map_err(db_err)?;
                    // The counter first: from here on this transaction is the pool's only
                    // writer, so the versions read below cannot change under it.
                    let writes_refs = batch
                        .writes
                        .iter()
                        .any(|w| matches!(w, Write::PutExternalRef(_)));
                    // A batch of refs alone takes the lock too (0 numbers): its ref check must
                    // not race another writer's.
                    let first_seq = if touched.changes > 0 || writes_refs {
                        let n = sql_int(touched.changes as u64);
                        let last: i64 = sqlx::query_scalar(sql::BUMP_COUNTER)
                            .bind(pool.as_str())
                            .bind(n)
                            .fetch_one(&mut *tx)
                            .await
                            .map_err(db_err)?;
                        last - n + 1
                    } else {
                        0
                    };
                    let derives_feed = !batch.quiet && touched.changes > 0;
                    // Where the store allows it, the objects' Feishu ids are read on a reader
                    // connection while this one reads the objects: what the feed needs before
                    // the batch, seen as this transaction sees it (docs/change-feed.md, "What
                    // the feed costs").
                    let refs_beside = self.beside_writer().filter(|_| derives_feed).map(|reader| {
                        let ids = touched.clone();
                        tokio::spawn(async move {
                            let mut conn = reader.acquire().await.map_err(db_err)?;
                            stored_refs(&mut conn, &ids.users, &ids.departments, &ids.groups)
                                .await
                        })
                    });
                    let (users, prior) = stored_users(&mut tx, pool, &touched.users).await?;
                    let departments =
                        stored(&mut tx, sql::STORED_DEPARTMENTS, pool, &touched.departments)
                            .await?;
                    let groups = stored(&mut tx, sql::STORED_GROUPS, pool, &touched.groups).await?;
                    // What the feed compares each change with: the objects as stored, read
                    // under the counter's lock (docs/change-feed.md).
                    let before = if !derives_feed {
                        Default::default()
                    } else {
                        let existing = |m: &HashMap<String, Stored>| -> Vec<String> {
                            m.keys().cloned().collect()
                        };
                        let (mut objects, unread) = prepare::as_read_json(
                            written,
                            &batch.as_read,
                            &users,
                            &departments,
                            &groups,
                        )?;
                        objects.extend(
                            stored_json(
                                &mut tx,
                                pool,
                                &unread.users,
                                &unread.departments,
                                &unread.groups,
                            )
                            .await?,
                        );
                        let refs = match refs_beside {
                            Some(task) => {
                                let mut refs = task.await.map_err(|e| {
                                    StoreError::Corrupt(format!("reading Feishu ids failed: {e}"))
                                })??;
                                // Only the objects that existed have ids before the batch.
                                refs.retain(|(kind, id), _| match kind {
                                    ObjectKind::User => users.contains_key(id),
                                    ObjectKind::Department => departments.contains_key(id),
                                    ObjectKind::Group => groups.contains_key(id),
                                });
                                refs
                            }
                            None => {
                                stored_refs(
                                    &mut tx,
                                    &existing(&users),
                                    &existing(&departments),
                                    &existing(&groups),
                                )
                                .await?
                            }
                        };
                        (objects, refs)
                    };
                    // A refusal (version conflict) drops the transaction: nothing is written.
                    let mut prepared =
                        prepare::prepare(&batch, users, departments, groups, first_seq, now)?;
                    // The feed's rows are derived on a thread of their own while this
                    // connection writes the objects: a batch waits on the store far more than
                    // it computes (docs/change-feed.md, "What the feed costs").
                    let feed = (!batch.quiet).then(|| {
                        let (objects, refs) = before;
                        let changes = std::mem::take(&mut prepared.changes);
                        let written_refs = prepared.refs.clone();
                        tokio::task::spawn_blocking(move || {
                            prepare::feed_rows(changes, objects, refs, &written_refs)
                        })
                    });
                    // `user_id` logins (docs/ldap.md, "Logins"): a new user's comes from the
                    // batch's refs in its own row; a stored user's is read again after its
                    // refs are written (a rarer change: a new `user_id`, another connection).
                    let (new_logins, named) =
                        $crate::ldap_view::user_id_logins(&prepared.refs, &prepared.users, &prior);
                    let mut refresh =
                        write_users(&mut tx, pool, &prepared.users, &prior, &new_logins).await?;
                    let moving = departments_moving(&mut tx, pool, &prepared.departments).await?;
                    write_departments(&mut tx, pool, &prepared.departments).await?;
                    write_groups(&mut tx, pool, &prepared.groups).await?;
                    // New objects get their POSIX numbers (docs/ldap.md, "POSIX"), in
                    // creation order; a batch that creates nothing reads nothing here.
                    for (kind, new) in [
                        (ObjectKind::User, created_in(&prepared.users, now, |u| (&u.id.0, u.created_at))),
                        (ObjectKind::Department, created_in(&prepared.departments, now, |d| (&d.id.0, d.created_at))),
                        (ObjectKind::Group, created_in(&prepared.groups, now, |g| (&g.id.0, g.created_at))),
                    ] {
                        allocate_posix_ids(&mut tx, pool, kind, &new).await?;
                    }
                    // The read model follows in the same transaction (docs/read-model.md).
                    if !moving.is_empty() {
                        let below = users_below(&mut tx, pool, &moving).await?;
                        // Their `memberOf` by subtree changes with the tree.
                        touch_memberships(&mut tx, pool, &below).await?;
                        refresh.extend(below);
                    }
                    if !refresh.is_empty() {
                        refresh.sort();
                        refresh.dedup();
                        refresh_subtrees(&mut tx, pool, &refresh).await?;
                    }
                    if writes_refs {
                        check_refs(&mut tx, pool, &prepared.refs).await?;
                    }
                    write_refs(&mut tx, &prepared.refs).await?;
                    refresh_user_id_logins(&mut tx, pool, &named).await?;
                    let feed_events = match feed {
                        None => 0,
                        Some(task) => {
                            let (changes, rows) = task.await.map_err(|e| {
                                StoreError::Corrupt(format!("deriving feed events failed: {e}"))
                            })??;
                            prepared.changes = changes;
                            write_feed(&mut tx, pool, &rows, now).await?.0
                        }
                    };
                    write_changes(&mut tx, &prepared.changes).await?;
                    write_watermarks(&mut tx, &prepared.watermarks).await?;
                    finish_inbox_events(&mut tx, &batch.inbox, now).await?;
                    tx.commit().await.map_err(db_err)?;
                    self.raise_epoch();
                    Ok(Applied {
                        changes: prepared.changes,
                        feed_events,
                    })
                }

                async fn changes_since(
                    &self,
                    pool_id: &PoolId,
                    after: i64,
                    limit: u64,
                ) -> StoreResult<Vec<ChangeRecord>> {
                    let rows: Vec<ChangeRow> = sqlx::query_as(sql::CHANGES_SINCE)
                        .bind(pool_id.as_str())
                        .bind(after)
                        .bind(sql_int(limit))
                        .fetch_all(self.reads())
                        .await
                        .map_err(db_err)?;
                    convert_all(rows)
                }

                // ---- the change feed and service credentials (downstream.rs) ----

                async fn feed_head(&self, pool_id: &PoolId) -> StoreResult<Option<FeedHead>> {
                    let mut conn = self.reads().acquire().await.map_err(db_err)?;
                    feed_head_of(&mut conn, pool_id).await
                }

                async fn feed_read(
                    &self,
                    pool_id: &PoolId,
                    after: i64,
                    limit: u64,
                    types: &[FeedType],
                    window: u64,
                ) -> StoreResult<FeedRead> {
                    self.feed_read_of(pool_id, after, limit, types, window).await
                }

                async fn feed_append(
                    &self,
                    pool_id: &PoolId,
                    source: &ChangeSource,
                    drafts: &[FeedDraft],
                    now: Millis,
                ) -> StoreResult<Vec<FeedEvent>> {
                    self.feed_append_of(pool_id, source, drafts, now).await
                }

                async fn feed_seq_since(
                    &self,
                    pool_id: &PoolId,
                    since: Millis,
                ) -> StoreResult<Option<i64>> {
                    sqlx::query_scalar(ds::FEED_SEQ_SINCE)
                        .bind(pool_id.as_str())
                        .bind(since)
                        .fetch_one(self.reads())
                        .await
                        .map_err(db_err)
                }

                async fn feed_prune(
                    &self,
                    pool_id: &PoolId,
                    before: Millis,
                    max: u64,
                ) -> StoreResult<u64> {
                    self.feed_prune_of(pool_id, before, max).await
                }

                async fn feed_settings(&self, pool_id: &PoolId) -> StoreResult<Option<FeedSettings>> {
                    self.feed_settings_of(pool_id).await
                }

                async fn set_feed_settings(
                    &self,
                    pool_id: &PoolId,
                    settings: &FeedSettings,
                ) -> StoreResult<()> {
                    self.set_feed_settings_of(pool_id, settings).await
                }

                async fn ldap_settings(&self, pool_id: &PoolId) -> StoreResult<Option<LdapSettings>> {
                    self.ldap_settings_of(pool_id).await
                }

                async fn list_ldap_settings(&self) -> StoreResult<Vec<(PoolId, LdapSettings)>> {
                    self.list_ldap_settings_of().await
                }

                async fn set_ldap_settings(
                    &self,
                    pool_id: &PoolId,
                    settings: &LdapSettings,
                ) -> StoreResult<()> {
                    self.set_ldap_settings_of(pool_id, settings).await
                }

                async fn user_logins(
                    &self,
                    pool_id: &PoolId,
                    source: LoginSource,
                    ids: &[UserId],
                ) -> StoreResult<HashMap<UserId, String>> {
                    Ok(self
                        .user_logins_of(pool_id, source, ids, false)
                        .await?
                        .into_iter()
                        .filter_map(|(id, login)| login.map(|l| (id, l)))
                        .collect())
                }

                async fn shown_user_logins(
                    &self,
                    pool_id: &PoolId,
                    source: LoginSource,
                    ids: &[UserId],
                ) -> StoreResult<HashMap<UserId, Option<String>>> {
                    self.user_logins_of(pool_id, source, ids, true).await
                }

                async fn shown_department_members(
                    &self,
                    pool_id: &PoolId,
                    ids: &[DepartmentId],
                    scope: MemberScope,
                ) -> StoreResult<HashMap<DepartmentId, Vec<UserId>>> {
                    self.shown_department_members_of(pool_id, ids, scope).await
                }

                async fn users_by_keys(
                    &self,
                    pool_id: &PoolId,
                    source: LoginSource,
                    keys: &[PersonKey],
                    after: Option<&UserId>,
                    limit: u64,
                ) -> StoreResult<NamedUsers> {
                    self.users_by_keys_of(pool_id, source, keys, after, limit).await
                }

                async fn posix_ids(
                    &self,
                    pool_id: &PoolId,
                    kind: ObjectKind,
                    ids: &[String],
                ) -> StoreResult<HashMap<String, i64>> {
                    self.posix_ids_of(pool_id, kind, ids).await
                }

                async fn membership_times(
                    &self,
                    pool_id: &PoolId,
                    ids: &[UserId],
                ) -> StoreResult<HashMap<UserId, Millis>> {
                    self.membership_times_of(pool_id, ids).await
                }

                async fn create_app_password(&self, password: &StoredAppPassword) -> StoreResult<()> {
                    self.create_app_password_of(password).await
                }

                async fn get_app_password(&self, id: &str) -> StoreResult<Option<StoredAppPassword>> {
                    self.get_app_password_of(id).await
                }

                async fn list_app_passwords(
                    &self,
                    pool_id: &PoolId,
                    user_id: &UserId,
                ) -> StoreResult<Vec<StoredAppPassword>> {
                    self.list_app_passwords_of(pool_id, user_id).await
                }

                async fn revoke_app_password(&self, id: &str, now: Millis) -> StoreResult<bool> {
                    let revoked = self.revoke_app_password_of(id, now).await?;
                    self.raise_epoch();
                    Ok(revoked)
                }

                async fn touch_app_password(&self, id: &str, now: Millis) -> StoreResult<()> {
                    self.touch_app_password_of(id, now).await
                }

                async fn create_credential(&self, credential: &StoredCredential) -> StoreResult<()> {
                    self.create_credential_of(credential).await
                }

                async fn get_credential(&self, id: &str) -> StoreResult<Option<StoredCredential>> {
                    self.get_credential_of(id).await
                }

                async fn list_credentials(&self, pool_id: &PoolId) -> StoreResult<Vec<Credential>> {
                    self.list_credentials_of(pool_id).await
                }

                async fn revoke_credential(&self, id: &str, now: Millis) -> StoreResult<bool> {
                    let revoked = self.revoke_credential_of(id, now).await?;
                    self.raise_epoch();
                    Ok(revoked)
                }

                async fn touch_credential(&self, id: &str, now: Millis) -> StoreResult<()> {
                    self.touch_credential_of(id, now).await
                }

                async fn create_webhook(&self, endpoint: &WebhookEndpoint) -> StoreResult<()> {
                    self.create_webhook_of(endpoint).await
                }

                async fn get_webhook(&self, id: &str) -> StoreResult<Option<WebhookEndpoint>> {
                    self.get_webhook_of(id).await
                }

                async fn list_webhooks(
                    &self,
                    pool_id: Option<&PoolId>,
                ) -> StoreResult<Vec<WebhookEndpoint>> {
                    self.list_webhooks_of(pool_id).await
                }

                async fn update_webhook(&self, endpoint: &WebhookEndpoint) -> StoreResult<()> {
                    self.update_webhook_of(endpoint).await
                }

                async fn delete_webhook(&self, id: &str) -> StoreResult<bool> {
                    self.delete_webhook_of(id).await
                }

                async fn record_webhook_progress(
                    &self,
                    attempt: Option<&WebhookAttempt>,
                    progress: &WebhookEndpoint,
                    read_at: Millis,
                ) -> StoreResult<bool> {
                    self.record_webhook_progress_of(attempt, progress, read_at).await
                }

                async fn list_webhook_attempts(
                    &self,
                    endpoint_id: &str,
                    before: Option<i64>,
                    limit: u64,
                ) -> StoreResult<Vec<WebhookAttempt>> {
                    self.list_webhook_attempts_of(endpoint_id, before, limit).await
                }

                async fn lease_webhook(
                    &self,
                    id: &str,
                    holder: &str,
                    until: Millis,
                    now: Millis,
                ) -> StoreResult<bool> {
                    self.lease_webhook_of(id, holder, until, now).await
                }

                async fn release_webhook(&self, id: &str, holder: &str) -> StoreResult<()> {
                    self.release_webhook_of(id, holder).await
                }

                async fn prune_webhook_attempts(&self, before: Millis) -> StoreResult<u64> {
                    self.prune_webhook_attempts_of(before).await
                }

                async fn watermarks(
                    &self,
                    connection_id: &ConnectionId,
                    object_keys: &[String],
                ) -> StoreResult<HashMap<String, Watermark>> {
                    let mut out = HashMap::with_capacity(object_keys.len());
                    for chunk in object_keys.chunks(CHUNK) {
                        let mut qb = QueryBuilder::<$db>::new(sql::WATERMARKS);
                        qb.push_bind(connection_id.as_str()).push(" AND object_key");
                        push_in(&mut qb, chunk);
                        let rows: Vec<WatermarkRow> = qb
                            .build_query_as()
                            .persistent(false)
                            .fetch_all(self.reads())
                            .await
                            .map_err(db_err)?;
                        out.extend(rows.into_iter().map(|r| {
                            let w = Watermark::from(r);
                            (w.object_key.clone(), w)
                        }));
                    }
                    Ok(out)
                }

                // ---- inbox ----

                async fn inbox_insert(
                    &self,
                    events: &[NewInboxEvent],
                ) -> StoreResult<Vec<InsertOutcome>> {
                    if events.is_empty() {
                        return Ok(Vec::new());
                    }
                    if events.len() <= Self::INBOX_INSERT_ONE_STATEMENT {
                        // One statement is its own transaction: one round trip to the
                        // database for the whole group commit instead of three (BEGIN, INSERT,
                        // COMMIT). A re-push's id is read afterwards, from a committed row.
                        let mut conn = self.writes().acquire().await.map_err(db_err)?;
                        return Self::insert_inbox_rows(&mut conn, events).await;
                    }
                    let mut tx = self.begin_write().await.map_err(db_err)?;
                    let outcomes = Self::insert_inbox_rows(&mut tx, events).await?;
                    tx.commit().await.map_err(db_err)?;
                    Ok(outcomes)
                }

                async fn inbox_due(
                    &self,
                    connection_id: &ConnectionId,
                    limit: u64,
                    now: Millis,
                    after: Option<DueCursor>,
                ) -> StoreResult<Vec<InboxEvent>> {
                    let due = |sql: &'static str, limit: u64| {
                        sqlx::query_as::<_, InboxRow>(sql)
                            .bind(connection_id.as_str())
                            .bind(now)
                            .bind(sql_int(limit))
                    };
                    let rows: Vec<InboxRow> = match after {
                        None => due(sql::DUE_EVENTS, limit)
                            .fetch_all(self.reads())
                            .await
                            .map_err(db_err)?,
                        Some(DueCursor {
                            created_at: None,
                            id,
                        }) => due(sql::DUE_EVENTS_UNDATED, limit)
                            .bind(id)
                            .fetch_all(self.reads())
                            .await
                            .map_err(db_err)?,
                        // The dated events after the cursor, then the undated ones.
                        Some(DueCursor {
                            created_at: Some(at),
                            id,
                        }) => {
                            let mut rows = due(sql::DUE_EVENTS_AFTER, limit)
                                .bind(at)
                                .bind(id)
                                .fetch_all(self.reads())
                                .await
                                .map_err(db_err)?;
                            let left = limit.saturating_sub(rows.len() as u64);
                            if left > 0 {
                                rows.extend(
                                    due(sql::DUE_EVENTS_UNDATED, left)
                                        .bind(0_i64)
                                        .fetch_all(self.reads())
                                        .await
                                        .map_err(db_err)?,
                                );
                            }
                            rows
                        }
                    };
                    convert_all(rows)
                }

                async fn inbox_finish(
                    &self,
                    id: i64,
                    outcome: InboxOutcome,
                    now: Millis,
                ) -> StoreResult<()> {
                    let mut tx = self.begin_write().await.map_err(db_err)?;
                    finish_inbox(&mut tx, id, &outcome, now).await?;
                    tx.commit().await.map_err(db_err)
                }

                async fn inbox_get(&self, id: i64) -> StoreResult<Option<InboxEvent>> {
                    let row: Option<InboxRow> = sqlx::query_as(sql::GET_INBOX)
                        .bind(id)
                        .fetch_optional(self.reads())
                        .await
                        .map_err(db_err)?;
                    row.map(InboxEvent::try_from).transpose()
                }

                async fn inbox_list(
                    &self,
                    filter: &InboxFilter,
                    page: PageRequest,
                ) -> StoreResult<Vec<InboxEvent>> {
                    let mut qb = QueryBuilder::<$db>::new(concat!(
                        "SELECT ",
                        sql::inbox_cols!(),
                        " FROM inbox"
                    ));
                    push_inbox_filters(&mut qb, filter);
                    if let Some(after) = page.after {
                        qb.push(" AND id < ").push_bind(after);
                    }
                    qb.push(" ORDER BY id DESC");
                    push_page(&mut qb, page);
                    let rows: Vec<InboxRow> = qb
                        .build_query_as()
                        .fetch_all(self.reads())
                        .await
                        .map_err(db_err)?;
                    convert_all(rows)
                }

                async fn inbox_count(&self, filter: &InboxFilter) -> StoreResult<u64> {
                    let mut qb = QueryBuilder::<$db>::new("SELECT COUNT(*) FROM inbox");
                    push_inbox_filters(&mut qb, filter);
                    let n: i64 = qb
                        .build_query_scalar()
                        .fetch_one(self.reads())
                        .await
                        .map_err(db_err)?;
                    Ok(count(n))
                }

                async fn inbox_due_connections(
                    &self,
                    now: Millis,
                ) -> StoreResult<Vec<ConnectionId>> {
                    let rows: Vec<String> = sqlx::query_scalar(sql::DUE_CONNECTIONS)
                        .bind(now)
                        .fetch_all(self.reads())
                        .await
                        .map_err(db_err)?;
                    Ok(rows.into_iter().map(ConnectionId).collect())
                }

                async fn inbox_pending_count(
                    &self,
                    connection_id: &ConnectionId,
                ) -> StoreResult<u64> {
                    let n: i64 = sqlx::query_scalar(sql::PENDING_COUNT)
                        .bind(connection_id.as_str())
                        .fetch_one(self.reads())
                        .await
                        .map_err(db_err)?;
                    Ok(count(n))
                }

                // ---- jobs ----

                async fn create_job(&self, job: &SyncJob) -> StoreResult<()> {
                    sqlx::query(sql::INSERT_JOB)
                        .bind(job.id.as_str())
                        .bind(job.pool_id.as_str())
                        .bind(job.connection_id.as_str())
                        .bind(enum_text(&job.kind))
                        .bind(enum_text(&job.trigger))
                        .bind(enum_text(&job.state))
                        .bind(job.verdict.as_ref().map(enum_text))
                        .bind(Json(&job.progress))
                        .bind(Json(&job.counts))
                        .bind(job.error.as_deref())
                        .bind(job.error_code)
                        .bind(job.started_at)
                        .bind(job.finished_at)
                        .bind(job.instance.as_deref())
                        .execute(self.writes())
                        .await
                        .map_err(db_err)?;
                    Ok(())
                }

                async fn update_job(&self, job: &SyncJob) -> StoreResult<()> {
                    let done = sqlx::query(sql::UPDATE_JOB)
                        .bind(job.id.as_str())
                        .bind(enum_text(&job.state))
                        .bind(job.verdict.as_ref().map(enum_text))
                        .bind(Json(&job.progress))
                        .bind(Json(&job.counts))
                        .bind(job.error.as_deref())
                        .bind(job.error_code)
                        .bind(job.finished_at)
                        .execute(self.writes())
                        .await
                        .map_err(db_err)?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound(format!("job {}", job.id)));
                    }
                    Ok(())
                }

                async fn get_job(&self, id: &JobId) -> StoreResult<Option<SyncJob>> {
                    let row: Option<JobRow> = sqlx::query_as(sql::GET_JOB)
                        .bind(id.as_str())
                        .fetch_optional(self.reads())
                        .await
                        .map_err(db_err)?;
                    row.map(SyncJob::try_from).transpose()
                }

                async fn list_jobs(
                    &self,
                    connection_id: Option<&ConnectionId>,
                    page: PageRequest,
                ) -> StoreResult<Vec<SyncJob>> {
                    let rows: Vec<JobRow> = sqlx::query_as(sql::LIST_JOBS)
                        .bind(connection_id.map(|c| c.as_str()))
                        .bind(sql_int(page.limit))
                        .bind(sql_int(page.offset))
                        .fetch_all(self.reads())
                        .await
                        .map_err(db_err)?;
                    convert_all(rows)
                }

                async fn interrupt_jobs(
                    &self,
                    which: &RunningJobs,
                    error: &str,
                    now: Millis,
                ) -> StoreResult<Vec<SyncJob>> {
                    let query = match which {
                        RunningJobs::OfInstance(instance) => {
                            sqlx::query_as(sql::INTERRUPT_JOBS_OF_INSTANCE)
                                .bind(error)
                                .bind(now)
                                .bind(instance.as_str())
                        }
                        RunningJobs::OfConnection(connection_id) => {
                            sqlx::query_as(sql::INTERRUPT_JOBS_OF_CONNECTION)
                                .bind(error)
                                .bind(now)
                                .bind(connection_id.as_str())
                        }
                        RunningJobs::WithoutLiveLease { now: lease_now } => {
                            sqlx::query_as(sql::INTERRUPT_JOBS_WITHOUT_LIVE_LEASE)
                                .bind(error)
                                .bind(now)
                                .bind(*lease_now)
                        }
                    };
                    let rows: Vec<JobRow> = query.fetch_all(self.writes()).await.map_err(db_err)?;
                    let mut jobs: Vec<SyncJob> = convert_all(rows)?;
                    // RETURNING promises no order.
                    jobs.sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
                    Ok(jobs)
                }

                async fn append_action_log(&self, entries: &[ActionLogEntry]) -> StoreResult<()> {
                    if entries.is_empty() {
                        return Ok(());
                    }
                    // Per job (in first-seen order): how many numbers to hand out, and the
                    // largest number the caller chose itself.
                    let mut jobs: Vec<(&JobId, i64, i64)> = Vec::new();
                    for e in entries {
                        let i = match jobs.iter().position(|(j, _, _)| *j == &e.job_id) {
                            Some(i) => i,
                            None => {
                                jobs.push((&e.job_id, 0, 0));
                                jobs.len() - 1
                            }
                        };
                        if e.seq == 0 {
                            jobs[i].1 += 1;
                        } else {
                            jobs[i].2 = jobs[i].2.max(e.seq);
                        }
                    }
                    let mut tx = self.begin_write().await.map_err(db_err)?;
                    let mut next: HashMap<&JobId, i64> = HashMap::new();
                    for (job, auto, explicit) in &jobs {
                        let last: Option<i64> = sqlx::query_scalar(sql::BUMP_LOG_SEQ)
                            .bind(job.as_str())
                            .bind(*explicit)
                            .bind(*auto)
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(db_err)?;
                        let Some(last) = last else {
                            return Err(StoreError::NotFound(format!("job {job}")));
                        };
                        next.insert(*job, last - auto + 1);
                    }
                    let mut numbered = Vec::with_capacity(entries.len());
                    for e in entries {
                        let mut e = e.clone();
                        if e.seq == 0 {
                            if let Some(n) = next.get_mut(&e.job_id) {
                                e.seq = *n;
                                *n += 1;
                            }
                        }
                        numbered.push(e);
                    }
                    for chunk in numbered.chunks(CHUNK) {
                        let mut qb = QueryBuilder::<$db>::new(sql::INSERT_ACTIONS);
                        qb.push_values(chunk, |mut b, e| {
                            b.push_bind(e.job_id.as_str())
                                .push_bind(e.seq)
                                .push_bind(e.action.as_str())
                                .push_bind(e.kind.as_str())
                                .push_bind(e.external_id.as_str())
                                .push_bind(e.object_id.as_deref())
                                .push_bind(e.name.as_deref())
                                .push_bind(e.result.as_str())
                                .push_bind(e.reason.as_deref())
                                .push_bind(e.at);
                        });
                        qb.build()
                            .persistent(false)
                            .execute(&mut *tx)
                            .await
                            .map_err(db_err)?;
                    }
                    tx.commit().await.map_err(db_err)
                }

                async fn action_log(
                    &self,
                    job_id: &JobId,
                    filter: &ActionLogFilter,
                    page: PageRequest,
                ) -> StoreResult<Vec<ActionLogEntry>> {
                    let mut qb = QueryBuilder::<$db>::new(concat!(
                        "SELECT ",
                        sql::action_cols!(),
                        " FROM action_log WHERE job_id = "
                    ));
                    qb.push_bind(job_id.as_str());
                    if let Some(action) = filter.action {
                        qb.push(" AND action = ").push_bind(action.as_str());
                    }
                    if let Some(kind) = filter.kind {
                        qb.push(" AND kind = ").push_bind(kind.as_str());
                    }
                    if let Some(result) = filter.result {
                        qb.push(" AND result = ").push_bind(result.as_str());
                    }
                    if let Some(after) = page.after {
                        qb.push(" AND seq > ").push_bind(after);
                    }
                    qb.push(" ORDER BY seq");
                    push_page(&mut qb, page);
                    let rows: Vec<ActionRow> = qb
                        .build_query_as()
                        .fetch_all(self.reads())
                        .await
                        .map_err(db_err)?;
                    convert_all(rows)
                }

                // ---- the job lease ----

                async fn try_acquire_lease(
                    &self,
                    connection_id: &ConnectionId,
                    holder: &str,
                    ttl: Duration,
                    now: Millis,
                ) -> StoreResult<bool> {
                    let row: Option<String> = sqlx::query_scalar(sql::ACQUIRE_LEASE)
                        .bind(connection_id.as_str())
                        .bind(holder)
                        .bind(plus(now, ttl))
                        .bind(now)
                        .fetch_optional(self.writes())
                        .await
                        .map_err(db_err)?;
                    Ok(row.is_some())
                }

                async fn release_lease(
                    &self,
                    connection_id: &ConnectionId,
                    holder: &str,
                ) -> StoreResult<()> {
                    sqlx::query(sql::RELEASE_LEASE)
                        .bind(connection_id.as_str())
                        .bind(holder)
                        .execute(self.writes())
                        .await
                        .map_err(db_err)?;
                    Ok(())
                }

                async fn release_leases_by_prefix(&self, prefix: &str) -> StoreResult<u64> {
                    let mut released = 0;
                    for statement in [
                        sql::RELEASE_LEASES_BY_PREFIX,
                        sql::RELEASE_EVENT_LEASES_BY_PREFIX,
                    ] {
                        let done = sqlx::query(statement)
                            .bind(prefix)
                            .execute(self.writes())
                            .await
                            .map_err(db_err)?;
                        released += done.rows_affected();
                    }
                    Ok(released)
                }

                // ---- the event lease ----

                async fn try_acquire_event_lease(
                    &self,
                    connection_id: &ConnectionId,
                    holder: &str,
                    ttl: Duration,
                    now: Millis,
                ) -> StoreResult<bool> {
                    let row: Option<String> = sqlx::query_scalar(sql::ACQUIRE_EVENT_LEASE)
                        .bind(connection_id.as_str())
                        .bind(holder)
                        .bind(plus(now, ttl))
                        .bind(now)
                        .fetch_optional(self.writes())
                        .await
                        .map_err(db_err)?;
                    Ok(row.is_some())
                }

                async fn release_event_lease(
                    &self,
                    connection_id: &ConnectionId,
                    holder: &str,
                ) -> StoreResult<()> {
                    sqlx::query(sql::RELEASE_EVENT_LEASE)
                        .bind(connection_id.as_str())
                        .bind(holder)
                        .execute(self.writes())
                        .await
                        .map_err(db_err)?;
                    Ok(())
                }

                // ---- parked deletions ----

                async fn park_deletions(&self, items: &[ParkedDeletion]) -> StoreResult<Vec<i64>> {
                    if items.is_empty() {
                        return Ok(Vec::new());
                    }
                    let mut tx = self.begin_write().await.map_err(db_err)?;
                    let mut ids = Vec::with_capacity(items.len());
                    for p in items {
                        let id: i64 = sqlx::query_scalar(sql::PARK)
                            .bind(p.pool_id.as_str())
                            .bind(p.connection_id.as_str())
                            .bind(p.job_id.as_str())
                            .bind(p.kind.as_str())
                            .bind(p.object_id.as_str())
                            .bind(p.external_id.as_str())
                            .bind(p.name.as_deref())
                            .bind(p.reason.as_str())
                            .bind(p.state.as_str())
                            .bind(p.created_at)
                            .bind(p.last_parked_at)
                            .bind(p.resolved_at)
                            .bind(p.resolution.as_deref())
                            .fetch_one(&mut *tx)
                            .await
                            .map_err(db_err)?;
                        ids.push(id);
                    }
                    tx.commit().await.map_err(db_err)?;
                    Ok(ids)
                }

                async fn list_parked(
                    &self,
                    filter: &ParkedFilter,
                    page: PageRequest,
                ) -> StoreResult<Vec<ParkedDeletion>> {
                    let mut qb = QueryBuilder::<$db>::new(concat!(
                        "SELECT ",
                        sql::parked_cols!(),
                        " FROM parked_deletions"
                    ));
                    push_parked_filter(&mut qb, filter);
                    if let Some(after) = page.after {
                        qb.push(" AND id < ").push_bind(after);
                    }
                    qb.push(" ORDER BY id DESC");
                    push_page(&mut qb, page);
                    let rows: Vec<ParkedRow> = qb
                        .build_query_as()
                        .fetch_all(self.reads())
                        .await
                        .map_err(db_err)?;
                    convert_all(rows)
                }

                async fn count_parked(&self, filter: &ParkedFilter) -> StoreResult<u64> {
                    let mut qb = QueryBuilder::<$db>::new("SELECT COUNT(*) FROM parked_deletions");
                    push_parked_filter(&mut qb, filter);
                    let n: i64 = qb
                        .build_query_scalar()
                        .fetch_one(self.reads())
                        .await
                        .map_err(db_err)?;
                    Ok(count(n))
                }

                async fn parked_after(
                    &self,
                    filter: &ParkedFilter,
                    after: i64,
                    limit: u64,
                ) -> StoreResult<Vec<ParkedDeletion>> {
                    let mut qb = QueryBuilder::<$db>::new(concat!(
                        "SELECT ",
                        sql::parked_cols!(),
                        " FROM parked_deletions"
                    ));
                    push_parked_filter(&mut qb, filter);
                    qb.push(" AND id > ")
                        .push_bind(after)
                        .push(" ORDER BY id LIMIT ")
                        .push_bind(sql_int(limit));
                    let rows: Vec<ParkedRow> = qb
                        .build_query_as()
                        .fetch_all(self.reads())
                        .await
                        .map_err(db_err)?;
                    convert_all(rows)
                }

                async fn get_parked(&self, id: i64) -> StoreResult<Option<ParkedDeletion>> {
                    let row: Option<ParkedRow> = sqlx::query_as(sql::GET_PARKED)
                        .bind(id)
                        .fetch_optional(self.reads())
                        .await
                        .map_err(db_err)?;
                    row.map(ParkedDeletion::try_from).transpose()
                }

                async fn resolve_parked(
                    &self,
                    ids: &[i64],
                    state: ParkedState,
                    resolution: &str,
                    now: Millis,
                ) -> StoreResult<Vec<i64>> {
                    if state == ParkedState::Pending || ids.is_empty() {
                        return Ok(Vec::new());
                    }
                    let mut tx = self.begin_write().await.map_err(db_err)?;
                    let mut done = Vec::with_capacity(ids.len());
                    for chunk in ids.chunks(CHUNK) {
                        let mut qb =
                            QueryBuilder::<$db>::new("UPDATE parked_deletions SET state = ");
                        qb.push_bind(state.as_str())
                            .push(", resolution = ")
                            .push_bind(resolution)
                            .push(", resolved_at = ")
                            .push_bind(now)
                            .push(" WHERE state = 'pending' AND id IN (");
                        let mut list = qb.separated(", ");
                        for id in chunk {
                            list.push_bind(*id);
                        }
                        list.push_unseparated(") RETURNING id");
                        let moved: Vec<i64> = qb
                            .build_query_scalar()
                            .persistent(false)
                            .fetch_all(&mut *tx)
                            .await
                            .map_err(db_err)?;
                        done.extend(moved);
                    }
                    tx.commit().await.map_err(db_err)?;
                    done.sort_unstable();
                    Ok(done)
                }
            }
        };
    };
}

pub(crate) use impl_directory_store;
