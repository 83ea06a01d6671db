//! The read model (docs/read-model.md): keyset pages over indexes, and the derived tables the
//! write path keeps in step in the same transaction: `subtree_members` (who is in each
//! department and below it), `department_stats` (their counts) and, on SQLite, the trigram
//! text index `user_search`.
//!
//! The functions are written once in [`read_model_fns`] and expanded inside `imp.rs` for each
//! backend, like the rest of the store.

use directory::store::StoreError;
use serde::{Deserialize, Serialize};

/// Where a keyset page starts: the sort key of the last item of the page before, in one of
/// the lists' orders. Serialized as JSON (the admin layer wraps it in an opaque cursor).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Key {
    /// Users or groups in creation order: `(created_at, id)`.
    #[serde(rename = "c")]
    Created(i64, String),
    /// Department members in user-id order.
    #[serde(rename = "m")]
    Member(String),
    /// SQLite's text index, in its row order.
    #[serde(rename = "s")]
    Search(i64),
    /// Departments of one tree level: Feishu's order (unset last), then id.
    #[serde(rename = "d")]
    Child(i64, String),
    /// A group's members: kind, then id.
    #[serde(rename = "g")]
    GroupMember(String, String),
}

/// Which order a list walks (the kind of [`Key`] it accepts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    Created,
    Member,
    Search,
    Child,
    GroupMember,
}

impl Key {
    pub(crate) fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The key of `after` if it is one of `order`'s keys.
    pub(crate) fn decode(after: Option<&str>, order: Order) -> Result<Option<Key>, StoreError> {
        let Some(raw) = after else { return Ok(None) };
        let key: Key = serde_json::from_str(raw).map_err(|_| bad_cursor())?;
        let fits = matches!(
            (&key, order),
            (Key::Created(..), Order::Created)
                | (Key::Member(_), Order::Member)
                | (Key::Search(_), Order::Search)
                | (Key::Child(..), Order::Child)
                | (Key::GroupMember(..), Order::GroupMember)
        );
        if fits {
            Ok(Some(key))
        } else {
            Err(bad_cursor())
        }
    }
}

fn bad_cursor() -> StoreError {
    StoreError::BadCursor(
        "the page cursor was not handed out by this list (or its query changed): start again \
         without `after`"
            .into(),
    )
}

/// Free-text queries shorter than this many characters cannot use a trigram index: they walk
/// the users in creation order until a page is filled (docs/read-model.md).
pub(crate) const TRIGRAM: usize = 3;

/// A page fetched with `LIMIT limit + 1`: its first `limit` rows, and the key of the last of
/// them when a row follows (the cursor of the next page).
pub(crate) fn cut_page<R>(
    mut rows: Vec<R>,
    limit: u64,
    key: impl Fn(&R) -> Key,
) -> (Vec<R>, Option<String>) {
    let more = rows.len() as u64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next = rows.last().filter(|_| more).map(|last| key(last).encode());
    (rows, next)
}

/// An FTS5 phrase matching `text` as a substring (with the trigram tokenizer).
pub(crate) fn fts_phrase(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// The shared functions of the read model, expanded inside `impl_directory_store!` (they use
/// its `Conn`, `push_in` and imports).
macro_rules! read_model_fns {
    ($store:ty, $db:ty) => {
        /// `{start}{cols} > (a, b)`: the rows after a keyset page's last key, `cols` being the
        /// list's order.
        fn push_after<'t, A, B>(qb: &mut QueryBuilder<$db>, start: &str, cols: &str, a: A, b: B)
        where
            A: sqlx::Encode<'t, $db> + sqlx::Type<$db>,
            B: sqlx::Encode<'t, $db> + sqlx::Type<$db>,
        {
            qb.push(start)
                .push(cols)
                .push(" > (")
                .push_bind(a)
                .push(", ")
                .push_bind(b)
                .push(")");
        }

        use $crate::read_model::{Key, Order, TRIGRAM, cut_page, fts_phrase};

        /// What `apply` needs of the users it touches before writing them, in one read:
        /// their version and creation time (for `prepare`), and their search text and whether
        /// they were tombstoned (for the read model).
        async fn stored_users(
            conn: &mut Conn,
            pool: &PoolId,
            ids: &[String],
        ) -> StoreResult<(HashMap<String, Stored>, HashMap<String, (String, bool)>)> {
            let mut stored = HashMap::with_capacity(ids.len());
            let mut prior = HashMap::with_capacity(ids.len());
            for chunk in ids.chunks(CHUNK) {
                let mut qb = QueryBuilder::<$db>::new(
                    "SELECT id, version, created_at, search_text, deleted_at FROM users \
                     WHERE pool_id = ",
                );
                qb.push_bind(pool.as_str()).push(" AND id");
                push_in(&mut qb, chunk);
                let rows: Vec<(String, i64, i64, String, Option<i64>)> = qb
                    .build_query_as()
                    .persistent(false)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(db_err)?;
                for (id, version, created_at, text, deleted_at) in rows {
                    stored.insert(
                        id.clone(),
                        Stored {
                            version,
                            created_at,
                        },
                    );
                    prior.insert(id, (text, deleted_at.is_some()));
                }
            }
            Ok((stored, prior))
        }

        /// Before departments are written: those whose place in the tree changes (new ones,
        /// moved ones, tombstoned or revived ones). Their subtrees' members are rebuilt.
        async fn departments_moving(
            conn: &mut Conn,
            pool: &PoolId,
            departments: &[Department],
        ) -> StoreResult<Vec<String>> {
            let ids: Vec<String> = departments.iter().map(|d| d.id.0.clone()).collect();
            let mut prior: HashMap<String, (Option<String>, bool)> =
                HashMap::with_capacity(ids.len());
            for chunk in ids.chunks(CHUNK) {
                let mut qb = QueryBuilder::<$db>::new(
                    "SELECT id, parent_id, deleted_at FROM departments WHERE pool_id = ",
                );
                qb.push_bind(pool.as_str()).push(" AND id");
                push_in(&mut qb, chunk);
                let rows: Vec<(String, Option<String>, Option<i64>)> = qb
                    .build_query_as()
                    .persistent(false)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(db_err)?;
                for (id, parent, deleted_at) in rows {
                    prior.insert(id, (parent, deleted_at.is_some()));
                }
            }
            Ok(departments
                .iter()
                .filter(|d| {
                    prior.get(d.id.as_str()).is_none_or(|(parent, deleted)| {
                        parent.as_deref() != d.parent_id.as_ref().map(|p| p.as_str())
                            || *deleted != d.deleted_at.is_some()
                    })
                })
                .map(|d| d.id.0.clone())
                .collect())
        }

        /// After departments moved: every user whose subtree rows may change — those listed
        /// under them before, and the members of the live departments below them now.
        async fn users_below(
            conn: &mut Conn,
            pool: &PoolId,
            departments: &[String],
        ) -> StoreResult<Vec<String>> {
            let mut out: HashSet<String> = HashSet::new();
            for chunk in departments.chunks(CHUNK) {
                // The pool rides in the rows (see `refresh_subtrees`).
                let mut qb = QueryBuilder::<$db>::new(
                    "WITH RECURSIVE down (pool_id, id) AS (SELECT pool_id, id FROM departments \
                     WHERE pool_id = ",
                );
                qb.push_bind(pool.as_str())
                    .push(" AND deleted_at IS NULL AND id");
                push_in(&mut qb, chunk);
                qb.push(
                    " UNION SELECT c.pool_id, c.id FROM down JOIN departments c \
                     ON c.pool_id = down.pool_id AND c.parent_id = down.id \
                     WHERE c.deleted_at IS NULL) \
                     SELECT m.user_id FROM down JOIN user_departments m \
                     ON m.pool_id = down.pool_id AND m.department_id = down.id",
                )
                .push(" UNION SELECT user_id FROM subtree_members WHERE pool_id = ")
                .push_bind(pool.as_str())
                .push(" AND department_id");
                push_in(&mut qb, chunk);
                let rows: Vec<(String,)> = qb
                    .build_query_as()
                    .persistent(false)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(db_err)?;
                out.extend(rows.into_iter().map(|(id,)| id));
            }
            let mut out: Vec<String> = out.into_iter().collect();
            out.sort();
            Ok(out)
        }

        /// The live departments among `ids` and all their live ancestors, each with its
        /// parent: read level by level through the primary key (a recursive query would be
        /// planned badly on PostgreSQL while the tables still have no statistics).
        async fn live_chains(
            conn: &mut Conn,
            pool: &PoolId,
            ids: Vec<String>,
        ) -> StoreResult<HashMap<String, Option<String>>> {
            let mut parents: HashMap<String, Option<String>> = HashMap::new();
            let mut seen: HashSet<String> = HashSet::new();
            let mut level: Vec<String> =
                ids.into_iter().filter(|d| seen.insert(d.clone())).collect();
            while !level.is_empty() {
                let mut next = Vec::new();
                for chunk in level.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new(
                        "SELECT id, parent_id FROM departments WHERE pool_id = ",
                    );
                    qb.push_bind(pool.as_str())
                        .push(" AND deleted_at IS NULL AND id");
                    push_in(&mut qb, chunk);
                    let rows: Vec<(String, Option<String>)> = qb
                        .build_query_as()
                        .persistent(false)
                        .fetch_all(&mut *conn)
                        .await
                        .map_err(db_err)?;
                    for (id, parent) in rows {
                        if let Some(p) = &parent
                            && seen.insert(p.clone())
                        {
                            next.push(p.clone());
                        }
                        parents.insert(id, parent);
                    }
                }
                level = next;
            }
            Ok(parents)
        }

        /// Rebuilds the `subtree_members` rows of some users from their memberships and the
        /// live department tree, and moves `department_stats` by the difference. The rows are
        /// computed here: each membership in a live department, then its live ancestors up
        /// to the first parent that is tombstoned or missing (a repeat ends a stored cycle).
        async fn refresh_subtrees(
            conn: &mut Conn,
            pool: &PoolId,
            users: &[String],
        ) -> StoreResult<()> {
            for chunk in users.chunks(CHUNK) {
                let mut qb = QueryBuilder::<$db>::new(
                    "SELECT id FROM users WHERE deleted_at IS NULL AND pool_id = ",
                );
                qb.push_bind(pool.as_str()).push(" AND id");
                push_in(&mut qb, chunk);
                let live: HashSet<String> = qb
                    .build_query_as::<(String,)>()
                    .persistent(false)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(db_err)?
                    .into_iter()
                    .map(|(id,)| id)
                    .collect();
                let live_ids: Vec<String> = chunk
                    .iter()
                    .filter(|u| live.contains(*u))
                    .cloned()
                    .collect();
                let memberships = memberships_by_user(memberships_of(conn, pool, &live_ids).await?);
                let chains = live_chains(
                    conn,
                    pool,
                    memberships
                        .values()
                        .flatten()
                        .map(|m| m.department_id.0.clone())
                        .collect(),
                )
                .await?;
                // (user, department) → direct, as it should be.
                let mut want: HashMap<(String, String), i64> = HashMap::new();
                for (user, list) in &memberships {
                    for m in list {
                        let mut cursor = Some(m.department_id.0.clone());
                        let mut direct = 1;
                        while let Some(d) = cursor {
                            let Some(parent) = chains.get(&d) else { break };
                            let key = (user.clone(), d);
                            match want.get_mut(&key) {
                                // Seen before (another membership, or a cycle): the walk
                                // above it is done.
                                Some(was) => {
                                    *was = (*was).max(direct);
                                    if direct == 0 {
                                        break;
                                    }
                                }
                                None => {
                                    want.insert(key, direct);
                                }
                            }
                            cursor = parent.clone();
                            direct = 0;
                        }
                    }
                }
                // By user, through its index: SQLite (without statistics) walked the pool's
                // whole primary key instead, so a large import slowed as the table grew.
                let by_user = if <$store>::BACKEND == Backend::Sqlite {
                    " INDEXED BY subtree_members_by_user"
                } else {
                    ""
                };
                let mut qb = QueryBuilder::<$db>::new(
                    "SELECT user_id, department_id, direct FROM subtree_members",
                );
                qb.push(by_user).push(" WHERE pool_id = ");
                qb.push_bind(pool.as_str()).push(" AND user_id");
                push_in(&mut qb, chunk);
                let have: HashMap<(String, String), i64> = qb
                    .build_query_as::<(String, String, i64)>()
                    .persistent(false)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(db_err)?
                    .into_iter()
                    .map(|(u, d, direct)| ((u, d), direct))
                    .collect();
                // Users whose rows differ are rewritten whole; the counts move by the difference.
                let mut changed: HashSet<&String> = HashSet::new();
                let mut deltas: HashMap<&String, (i64, i64)> = HashMap::new();
                for ((u, d), direct) in &have {
                    if want.get(&(u.clone(), d.clone())) != Some(direct) {
                        changed.insert(u);
                        let e = deltas.entry(d).or_default();
                        e.0 -= direct;
                        e.1 -= 1;
                    }
                }
                for ((u, d), direct) in &want {
                    if have.get(&(u.clone(), d.clone())) != Some(direct) {
                        changed.insert(u);
                        let e = deltas.entry(d).or_default();
                        e.0 += direct;
                        e.1 += 1;
                    }
                }
                if changed.is_empty() {
                    continue;
                }
                // Only users that have rows lose them (none do in an import).
                let had: HashSet<&String> = have.keys().map(|(u, _)| u).collect();
                let rewrite: Vec<String> = changed
                    .iter()
                    .filter(|u| had.contains(**u))
                    .map(|u| (*u).clone())
                    .collect();
                if !rewrite.is_empty() {
                    let mut qb = QueryBuilder::<$db>::new("DELETE FROM subtree_members");
                    qb.push(by_user).push(" WHERE pool_id = ");
                    qb.push_bind(pool.as_str()).push(" AND user_id");
                    push_in(&mut qb, &rewrite);
                    qb.build()
                        .persistent(false)
                        .execute(&mut *conn)
                        .await
                        .map_err(db_err)?;
                }
                let rows: Vec<(&String, &String, i64)> = want
                    .iter()
                    .filter(|((u, _), _)| changed.contains(u))
                    .map(|((u, d), direct)| (u, d, *direct))
                    .collect();
                for part in rows.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new(
                        "INSERT INTO subtree_members (pool_id, department_id, user_id, direct) ",
                    );
                    qb.push_values(part, |mut b, (u, d, direct)| {
                        b.push_bind(pool.as_str())
                            .push_bind(d.as_str())
                            .push_bind(u.as_str())
                            .push_bind(*direct);
                    });
                    qb.build()
                        .persistent(false)
                        .execute(&mut *conn)
                        .await
                        .map_err(db_err)?;
                }
                let deltas: Vec<(&String, i64, i64)> = deltas
                    .into_iter()
                    .filter(|(_, (direct, all))| (*direct, *all) != (0, 0))
                    .map(|(d, (direct, all))| (d, direct, all))
                    .collect();
                for part in deltas.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new(
                        "INSERT INTO department_stats \
                         (pool_id, department_id, direct_members, subtree_members) ",
                    );
                    qb.push_values(part, |mut b, (d, direct, all)| {
                        b.push_bind(pool.as_str())
                            .push_bind(d.as_str())
                            .push_bind(*direct)
                            .push_bind(*all);
                    });
                    qb.push(
                        " ON CONFLICT (pool_id, department_id) DO UPDATE SET \
                         direct_members = department_stats.direct_members \
                         + excluded.direct_members, \
                         subtree_members = department_stats.subtree_members \
                         + excluded.subtree_members",
                    );
                    qb.build()
                        .persistent(false)
                        .execute(&mut *conn)
                        .await
                        .map_err(db_err)?;
                }
            }
            Ok(())
        }

        /// The conditions of a user query other than its pool and the part an index answers
        /// (`text` is added as a substring condition only when `text_condition`).
        fn push_user_conditions(qb: &mut QueryBuilder<$db>, q: &UserQuery, text_condition: bool) {
            if !q.include_deleted {
                qb.push(" AND u.deleted_at IS NULL");
            }
            if text_condition && let Some(text) = &q.text {
                qb.push(" AND u.search_text LIKE ")
                    .push_bind(contains_pattern(text))
                    .push(" ESCAPE '\\'");
            }
            if let Some(email) = &q.email {
                qb.push(" AND u.email = ").push_bind(email.as_str());
            }
            if let Some(mobile) = &q.mobile {
                qb.push(" AND u.mobile = ").push_bind(mobile.as_str());
            }
            if let Some(no) = &q.employee_no {
                qb.push(" AND u.employee_no = ").push_bind(no.as_str());
            }
            if let Some(status) = q.status {
                qb.push(" AND u.status = ").push_bind(status.as_str());
            }
        }

        /// One keyset page of users; `rows` carry their sort key's parts.
        async fn users_page(
            conn: &mut Conn,
            pool: &PoolId,
            q: &UserQuery,
            page: &KeyPage,
        ) -> StoreResult<Keyed<User>> {
            let limit = page.limit.max(1);
            let text = q.text.as_deref().map(str::trim).filter(|t| !t.is_empty());
            let text_chars = text.map_or(0, |t| t.chars().count());
            let order = if q.department_id.is_some() {
                Order::Member
            } else if text_chars >= TRIGRAM && <$store>::BACKEND == Backend::Sqlite {
                Order::Search
            } else {
                Order::Created
            };
            let after = Key::decode(page.after.as_deref(), order)?;
            let mut qb = select_whole_users();
            match order {
                Order::Member => {
                    let department = q.department_id.as_ref().map(|d| d.as_str());
                    // Direct members through their partial index: SQLite (without
                    // statistics) would walk the whole subtree in key order instead.
                    let hint =
                        if q.scope == MemberScope::Direct && <$store>::BACKEND == Backend::Sqlite {
                            " INDEXED BY subtree_members_direct"
                        } else {
                            ""
                        };
                    qb.push(", CAST(0 AS BIGINT) AS key_n FROM subtree_members s")
                        .push(hint)
                        .push(
                            " JOIN users u ON u.pool_id = s.pool_id AND u.id = s.user_id \
                             WHERE s.pool_id = ",
                        )
                        .push_bind(pool.as_str())
                        .push(" AND s.department_id = ")
                        .push_bind(department.unwrap_or_default());
                    if q.scope == MemberScope::Direct {
                        qb.push(" AND s.direct = 1");
                    }
                    if let Some(Key::Member(id)) = &after {
                        qb.push(" AND s.user_id > ").push_bind(id.clone());
                    }
                    push_user_conditions(&mut qb, q, true);
                    qb.push(" ORDER BY s.user_id");
                }
                Order::Search => {
                    // CROSS JOIN keeps the text index as SQLite's outer loop: it yields the
                    // matches in row order, and the page stops after `limit` of them (joined
                    // the other way, every user of the pool would be matched one by one).
                    qb.push(
                        ", k.n AS key_n FROM user_search CROSS JOIN user_search_keys k \
                         ON k.n = user_search.rowid CROSS JOIN users u \
                         ON u.pool_id = k.pool_id AND u.id = k.user_id \
                         WHERE user_search MATCH ",
                    )
                    .push_bind(fts_phrase(&text.unwrap_or_default().to_lowercase()))
                    .push(" AND k.pool_id = ")
                    .push_bind(pool.as_str());
                    if let Some(Key::Search(n)) = &after {
                        qb.push(" AND user_search.rowid > ").push_bind(*n);
                    }
                    push_user_conditions(&mut qb, q, false);
                    qb.push(" ORDER BY user_search.rowid");
                }
                Order::Created | Order::Child | Order::GroupMember => {
                    qb.push(", u.created_at AS key_n FROM users u WHERE u.pool_id = ")
                        .push_bind(pool.as_str());
                    if let Some(Key::Created(at, id)) = &after {
                        push_after(&mut qb, " AND ", "(u.created_at, u.id)", *at, id.clone());
                    }
                    push_user_conditions(&mut qb, q, true);
                    qb.push(" ORDER BY u.created_at, u.id");
                }
            }
            qb.push(" LIMIT ").push_bind(sql_int(limit + 1));
            let rows: Vec<KeyedUserRow> = qb
                .build_query_as()
                .fetch_all(&mut *conn)
                .await
                .map_err(db_err)?;
            let (rows, next) = cut_page(rows, limit, |last| match order {
                Order::Member => Key::Member(last.row.id()),
                Order::Search => Key::Search(last.key_n),
                Order::Created | Order::Child | Order::GroupMember => {
                    Key::Created(last.key_n, last.row.id())
                }
            });
            Ok(Keyed {
                items: rows
                    .into_iter()
                    .map(|r| r.row.into_user())
                    .collect::<StoreResult<_>>()?,
                next,
            })
        }

        /// One level of the department tree (see `DirectoryStore::department_children`).
        async fn children_page(
            conn: &mut Conn,
            pool: &PoolId,
            parent: Option<&DepartmentId>,
            page: &KeyPage,
        ) -> StoreResult<Keyed<DepartmentNode>> {
            let limit = page.limit.max(1);
            let after = Key::decode(page.after.as_deref(), Order::Child)?;
            let mut qb = QueryBuilder::<$db>::new("SELECT * FROM (");
            push_node_level(&mut qb, pool);
            match parent {
                Some(p) => {
                    qb.push("d.parent_id = ").push_bind(p.as_str());
                }
                None => {
                    // Roots: no parent, or a tombstoned one (both through an index).
                    qb.push("d.parent_id IS NULL UNION ALL ");
                    push_node_level(&mut qb, pool);
                    qb.push("d.parent_id IN (SELECT t.id FROM departments t WHERE t.pool_id = ")
                        .push_bind(pool.as_str())
                        .push(" AND t.deleted_at IS NOT NULL)");
                }
            }
            qb.push(") x");
            if let Some(Key::Child(order, id)) = &after {
                push_after(
                    &mut qb,
                    " WHERE ",
                    "(x.order_key, x.id)",
                    *order,
                    id.clone(),
                );
            }
            qb.push(" ORDER BY x.order_key, x.id LIMIT ")
                .push_bind(sql_int(limit + 1));
            let rows: Vec<NodeRow> = qb
                .build_query_as()
                .fetch_all(&mut *conn)
                .await
                .map_err(db_err)?;
            let (rows, next) = cut_page(rows, limit, |last| {
                Key::Child(last.order_key, last.row.id())
            });
            Ok(Keyed {
                items: nodes(rows)?,
                next,
            })
        }

        /// `SELECT <node columns> … WHERE d.pool_id = … AND d.deleted_at IS NULL AND ` (the
        /// caller adds the level's condition).
        fn push_node_level(qb: &mut QueryBuilder<$db>, pool: &PoolId) {
            qb.push(sql::department_node_select!())
                .push(", ")
                .push(sql::leaders_json(<$store>::BACKEND))
                .push(sql::department_node_from!())
                .push(" WHERE d.pool_id = ")
                .push_bind(pool.as_str())
                .push(" AND d.deleted_at IS NULL AND ");
        }

        /// Department rows with their counts and leaders as nodes.
        fn nodes(rows: Vec<NodeRow>) -> StoreResult<Vec<DepartmentNode>> {
            rows.into_iter()
                .map(|r| {
                    Ok(DepartmentNode {
                        department: department_with_json(r.row, r.leaders.as_deref())?,
                        member_count: count(r.direct_members),
                        total_member_count: count(r.subtree_members),
                        child_count: count(r.child_count),
                    })
                })
                .collect()
        }
    };
}

pub(crate) use read_model_fns;
