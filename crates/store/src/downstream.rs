//! What downstream systems read: the change feed (docs/change-feed.md) and service
//! credentials (docs/service-credentials.md). Written once in [`downstream_fns`] and expanded
//! inside `imp.rs` for each backend, like the rest of the store; the trait methods there call
//! these functions.

use directory::credentials::{Scope, ServiceCredential};
use directory::feed::{FeedEvent, FeedType};
use directory::ids::PoolId;
use directory::store::{ChangeSource, StoreError, StoreResult, StoredCredential};
use serde_json::Value;
use sqlx::FromRow;
use sqlx::types::Json;

/// The Feishu ids of some objects of one kind (`$1`); each backend appends how it takes the
/// list of ids, as one parameter (`$2`), so that the statement stays prepared whatever the
/// batch's size.
macro_rules! refs_of_objects {
    () => {
        "SELECT connection_id, kind, external_id, union_id, custom_id, object_id \
         FROM external_refs WHERE kind = $1 AND object_id "
    };
}
pub(crate) use refs_of_objects;
/// An event that carries its object reads it from the change log (docs/change-feed.md,
/// "What the feed stores").
pub(crate) const FEED_READ: &str = "SELECT f.pool_id, f.seq, f.type, f.object_id, f.source, \
     f.at, f.data, f.external_ids, c.object FROM feed_events f LEFT JOIN changes c \
     ON c.pool_id = f.pool_id AND c.seq = f.change_seq WHERE f.pool_id = ";
pub(crate) const FEED_HEAD: &str =
    "SELECT feed_seq, feed_pruned_through FROM change_counters WHERE pool_id = $1";
/// Takes `$2` feed numbers; the counter row is locked until the transaction ends, so feed
/// numbers follow commit order (docs/change-feed.md).
pub(crate) const BUMP_FEED: &str = "INSERT INTO change_counters (pool_id, seq, feed_seq) \
     VALUES ($1, 0, $2) ON CONFLICT (pool_id) DO UPDATE \
     SET feed_seq = change_counters.feed_seq + excluded.feed_seq RETURNING feed_seq";
pub(crate) const INSERT_FEED: &str = "INSERT INTO feed_events \
     (pool_id, seq, type, object_id, source, at, data, change_seq, external_ids) ";
/// Through `feed_events_by_time`.
pub(crate) const FEED_SEQ_SINCE: &str =
    "SELECT MIN(seq) FROM feed_events WHERE pool_id = $1 AND at >= $2";
pub(crate) const FEED_OLDEST: &str = "SELECT seq, at FROM feed_events WHERE pool_id = $1 \
     ORDER BY seq LIMIT $2";
pub(crate) const FEED_DELETE_THROUGH: &str =
    "DELETE FROM feed_events WHERE pool_id = $1 AND seq <= $2";
pub(crate) const FEED_PRUNED: &str = "UPDATE change_counters SET feed_pruned_through = $2 \
     WHERE pool_id = $1 AND feed_pruned_through < $2";
pub(crate) const FEED_SETTINGS: &str =
    "SELECT feed_retention_days, feed_initial_import_events FROM pools WHERE id = $1";
pub(crate) const SET_FEED_SETTINGS: &str = "UPDATE pools SET feed_retention_days = $2, \
     feed_initial_import_events = $3 WHERE id = $1";

pub(crate) const CREDENTIAL_COLS: &str = "id, pool_id, name, scopes, secret_hash, created_at, \
     expires_at, last_used_at, revoked_at";
pub(crate) const LIVE_CREDENTIAL_NAMED: &str = "SELECT id FROM service_credentials \
     WHERE pool_id = $1 AND name = $2 AND revoked_at IS NULL";
pub(crate) const REVOKE_CREDENTIAL: &str =
    "UPDATE service_credentials SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";
pub(crate) const TOUCH_CREDENTIAL: &str =
    "UPDATE service_credentials SET last_used_at = $2 WHERE id = $1";

#[derive(FromRow)]
pub(crate) struct FeedRow {
    pool_id: String,
    seq: i64,
    #[sqlx(rename = "type")]
    event_type: String,
    object_id: Option<String>,
    source: Json<ChangeSource>,
    at: i64,
    data: Json<Value>,
    external_ids: Option<Json<Value>>,
    object: Option<Json<Value>>,
}

impl TryFrom<FeedRow> for FeedEvent {
    type Error = StoreError;

    fn try_from(mut r: FeedRow) -> StoreResult<Self> {
        // The object from the change log, with its Feishu ids as they were.
        if let Some(Json(mut object)) = r.object.take() {
            let (Value::Object(o), Value::Object(data)) = (&mut object, &mut r.data.0) else {
                return Err(StoreError::Corrupt(format!(
                    "feed event {} of pool {}: its object or data is not a JSON object",
                    r.seq, r.pool_id
                )));
            };
            let ids = r
                .external_ids
                .take()
                .map_or(Value::Array(Vec::new()), |j| j.0);
            o.insert("external_ids".into(), ids);
            data.insert("object".into(), object);
        }
        Ok(Self {
            event_type: FeedType::parse(&r.event_type).ok_or_else(|| {
                StoreError::Corrupt(format!("unknown feed event type {:?}", r.event_type))
            })?,
            pool_id: PoolId(r.pool_id),
            seq: r.seq,
            object_id: r.object_id,
            source: r.source.0,
            at: r.at,
            data: r.data.0,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct CredentialRow {
    id: String,
    pool_id: String,
    name: String,
    scopes: String,
    secret_hash: String,
    created_at: i64,
    expires_at: Option<i64>,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl TryFrom<CredentialRow> for StoredCredential {
    type Error = StoreError;

    fn try_from(r: CredentialRow) -> StoreResult<Self> {
        let scopes = r
            .scopes
            .split_whitespace()
            .map(|s| {
                Scope::parse(s)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown credential scope {s:?}")))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Self {
            credential: ServiceCredential {
                id: r.id,
                pool_id: PoolId(r.pool_id),
                name: r.name,
                scopes,
                created_at: r.created_at,
                expires_at: r.expires_at,
                last_used_at: r.last_used_at,
                revoked_at: r.revoked_at,
            },
            secret_hash: r.secret_hash,
        })
    }
}

/// Scopes as stored: space-separated names.
pub(crate) fn scopes_text(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The end of the oldest run of events older than `before`, among the `(seq, at)` of the
/// oldest events: retention stops at the first event young enough to keep.
pub(crate) fn prune_through(oldest: &[(i64, i64)], before: i64) -> Option<i64> {
    oldest
        .iter()
        .take_while(|(_, at)| *at < before)
        .last()
        .map(|(seq, _)| *seq)
}

macro_rules! downstream_fns {
    ($store:ty, $db:ty) => {
        use directory::credentials::ServiceCredential as Credential;
        use directory::feed::{FeedDraft, FeedEvent, FeedType};
        use directory::store::{FeedHead, FeedRead, FeedSettings, StoredCredential};
        use $crate::downstream::{self as ds, CredentialRow, FeedRow, prune_through, scopes_text};
        use $crate::prepare::FeedRowText;

        /// Numbers and inserts feed events in the caller's transaction; returns how many and
        /// the number of the first.
        async fn write_feed(
            conn: &mut Conn,
            pool: &PoolId,
            rows: &[FeedRowText],
            now: Millis,
        ) -> StoreResult<(u64, i64)> {
            if rows.is_empty() {
                return Ok((0, 0));
            }
            let n = sql_int(rows.len() as u64);
            let last: i64 = sqlx::query_scalar(ds::BUMP_FEED)
                .bind(pool.as_str())
                .bind(n)
                .fetch_one(&mut *conn)
                .await
                .map_err(db_err)?;
            let first = last - n + 1;
            <$store>::insert_feed_rows(conn, pool, first, rows, now).await?;
            Ok((rows.len() as u64, first))
        }

        /// The stored state of the objects a batch changes, as JSON, before it writes them:
        /// what the feed compares each change with.
        async fn stored_json(
            conn: &mut Conn,
            pool: &PoolId,
            users: &[String],
            departments: &[String],
            groups: &[String],
        ) -> StoreResult<HashMap<(ObjectKind, String), serde_json::Value>> {
            let mut out = HashMap::new();
            for u in whole_by_id(conn, &WHOLE_USERS, pool, users).await? {
                out.insert(
                    (ObjectKind::User, u.id.0.clone()),
                    $crate::codec::to_json("user", &u)?,
                );
            }
            for d in whole_by_id(conn, &WHOLE_DEPARTMENTS, pool, departments).await? {
                out.insert(
                    (ObjectKind::Department, d.id.0.clone()),
                    $crate::codec::to_json("department", &d)?,
                );
            }
            if !groups.is_empty() {
                let rows: Vec<GroupRow> = rows_by_id(conn, sql::GROUPS_BY_ID, pool, groups).await?;
                let found: Vec<String> = rows.iter().map(GroupRow::id).collect();
                let members = members_of(conn, pool, &found).await?;
                for g in assemble_groups(rows, members)? {
                    out.insert(
                        (ObjectKind::Group, g.id.0.clone()),
                        $crate::codec::to_json("group", &g)?,
                    );
                }
            }
            Ok(out)
        }

        /// Each object's Feishu ids, as the REST API shows them: what downstream systems
        /// match on, and what an identifier change changes.
        async fn stored_refs(
            conn: &mut Conn,
            users: &[String],
            departments: &[String],
            groups: &[String],
        ) -> StoreResult<HashMap<(ObjectKind, String), Vec<ExternalRef>>> {
            let mut refs_of: HashMap<(ObjectKind, String), Vec<ExternalRef>> = HashMap::new();
            for (kind, ids) in [
                (ObjectKind::User, users),
                (ObjectKind::Department, departments),
                (ObjectKind::Group, groups),
            ] {
                if ids.is_empty() {
                    continue;
                }
                let rows = <$store>::refs_of_objects(conn, kind, ids).await?;
                let refs: Vec<ExternalRef> = convert_all(rows)?;
                for r in refs {
                    refs_of
                        .entry((kind, r.object_id.clone()))
                        .or_default()
                        .push(r);
                }
            }
            Ok(refs_of)
        }

        /// [`StoreError::NotFound`] unless the pool exists (read in the caller's transaction).
        async fn require_pool(conn: &mut Conn, pool: &PoolId) -> StoreResult<()> {
            let exists: Option<String> = sqlx::query_scalar(sql::POOL_EXISTS)
                .bind(pool.as_str())
                .fetch_optional(&mut *conn)
                .await
                .map_err(db_err)?;
            match exists {
                Some(_) => Ok(()),
                None => Err(StoreError::NotFound(format!("user pool {pool}"))),
            }
        }

        async fn feed_head_of(conn: &mut Conn, pool: &PoolId) -> StoreResult<Option<FeedHead>> {
            let row: Option<(i64, i64)> = sqlx::query_as(ds::FEED_HEAD)
                .bind(pool.as_str())
                .fetch_optional(&mut *conn)
                .await
                .map_err(db_err)?;
            if let Some((last_seq, pruned_through)) = row {
                return Ok(Some(FeedHead {
                    last_seq,
                    pruned_through,
                }));
            }
            let exists: Option<String> = sqlx::query_scalar(sql::POOL_EXISTS)
                .bind(pool.as_str())
                .fetch_optional(&mut *conn)
                .await
                .map_err(db_err)?;
            Ok(exists.map(|_| FeedHead::default()))
        }

        impl $store {
            async fn feed_read_of(
                &self,
                pool: &PoolId,
                after: i64,
                limit: u64,
                types: &[FeedType],
                window: u64,
            ) -> StoreResult<FeedRead> {
                let mut conn = self.reads().acquire().await.map_err(db_err)?;
                // The head first: every event up to it has committed, so the page below,
                // a later statement, sees all of them (docs/change-feed.md).
                let Some(head) = feed_head_of(&mut conn, pool).await? else {
                    return Err(StoreError::NotFound(format!("user pool {pool}")));
                };
                let upto = after
                    .saturating_add(i64::try_from(window).unwrap_or(i64::MAX))
                    .min(head.last_seq);
                if upto <= after {
                    return Ok(FeedRead {
                        events: Vec::new(),
                        through: after.max(upto),
                        head,
                    });
                }
                let mut qb = QueryBuilder::<$db>::new(ds::FEED_READ);
                qb.push_bind(pool.as_str())
                    .push(" AND f.seq > ")
                    .push_bind(after)
                    .push(" AND f.seq <= ")
                    .push_bind(upto);
                if !types.is_empty() {
                    let names: Vec<String> = types.iter().map(|t| t.as_str().to_owned()).collect();
                    qb.push(" AND f.type");
                    push_in(&mut qb, &names);
                }
                qb.push(" ORDER BY f.seq LIMIT ").push_bind(sql_int(limit));
                let rows: Vec<FeedRow> = qb
                    .build_query_as()
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(db_err)?;
                let events: Vec<FeedEvent> = convert_all(rows)?;
                let through = if events.len() as u64 >= limit {
                    events.last().map_or(upto, |e| e.seq)
                } else {
                    upto
                };
                Ok(FeedRead {
                    events,
                    through,
                    head,
                })
            }

            async fn feed_append_of(
                &self,
                pool: &PoolId,
                source: &ChangeSource,
                drafts: &[FeedDraft],
                now: Millis,
            ) -> StoreResult<Vec<FeedEvent>> {
                let mut tx = self.begin_write().await.map_err(db_err)?;
                require_pool(&mut tx, pool).await?;
                if let Some(d) = drafts.iter().find(|d| d.carries_object) {
                    // Only `apply` has the change-log row such an event points at.
                    return Err(StoreError::Corrupt(format!(
                        "a {} event appended without its change",
                        d.event_type.as_str()
                    )));
                }
                let source_text = $crate::prepare::source_text(source)?;
                let rows: Vec<FeedRowText> = drafts
                    .iter()
                    .map(|d| FeedRowText::new(d, source_text.clone(), None))
                    .collect();
                let first = write_feed(&mut tx, pool, &rows, now).await?.1;
                tx.commit().await.map_err(db_err)?;
                Ok(drafts
                    .iter()
                    .zip(first..)
                    .map(|(d, seq)| FeedEvent {
                        pool_id: pool.clone(),
                        seq,
                        event_type: d.event_type,
                        object_id: d.object_id.clone(),
                        source: source.clone(),
                        at: now,
                        data: d.data.clone(),
                    })
                    .collect())
            }

            async fn feed_prune_of(
                &self,
                pool: &PoolId,
                before: Millis,
                max: u64,
            ) -> StoreResult<u64> {
                let mut tx = self.begin_write().await.map_err(db_err)?;
                let oldest: Vec<(i64, i64)> = sqlx::query_as(ds::FEED_OLDEST)
                    .bind(pool.as_str())
                    .bind(sql_int(max))
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db_err)?;
                let Some(through) = prune_through(&oldest, before) else {
                    return Ok(0);
                };
                let removed = sqlx::query(ds::FEED_DELETE_THROUGH)
                    .bind(pool.as_str())
                    .bind(through)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?
                    .rows_affected();
                sqlx::query(ds::FEED_PRUNED)
                    .bind(pool.as_str())
                    .bind(through)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                tx.commit().await.map_err(db_err)?;
                Ok(removed)
            }

            async fn feed_settings_of(&self, pool: &PoolId) -> StoreResult<Option<FeedSettings>> {
                let row: Option<(i64, bool)> = sqlx::query_as(ds::FEED_SETTINGS)
                    .bind(pool.as_str())
                    .fetch_optional(self.reads())
                    .await
                    .map_err(db_err)?;
                Ok(row.map(|(days, initial)| FeedSettings {
                    retention_days: u32::try_from(days).unwrap_or(u32::MAX),
                    initial_import_events: initial,
                }))
            }

            async fn set_feed_settings_of(
                &self,
                pool: &PoolId,
                settings: &FeedSettings,
            ) -> StoreResult<()> {
                let done = sqlx::query(ds::SET_FEED_SETTINGS)
                    .bind(pool.as_str())
                    .bind(i64::from(settings.retention_days))
                    .bind(settings.initial_import_events)
                    .execute(self.writes())
                    .await
                    .map_err(db_err)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("user pool {pool}")));
                }
                Ok(())
            }

            async fn create_credential_of(&self, stored: &StoredCredential) -> StoreResult<()> {
                let c = &stored.credential;
                let mut tx = self.begin_write().await.map_err(db_err)?;
                require_pool(&mut tx, &c.pool_id).await?;
                let taken: Option<String> = sqlx::query_scalar(ds::LIVE_CREDENTIAL_NAMED)
                    .bind(c.pool_id.as_str())
                    .bind(c.name.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err)?;
                if taken.is_some() {
                    return Err(StoreError::Conflict(format!(
                        "the pool already has a service credential named {:?}",
                        c.name
                    )));
                }
                let mut qb = QueryBuilder::<$db>::new("INSERT INTO service_credentials (");
                qb.push(ds::CREDENTIAL_COLS).push(") ");
                qb.push_values(std::iter::once(c), |mut b, c| {
                    b.push_bind(c.id.as_str())
                        .push_bind(c.pool_id.as_str())
                        .push_bind(c.name.as_str())
                        .push_bind(scopes_text(&c.scopes))
                        .push_bind(stored.secret_hash.as_str())
                        .push_bind(c.created_at)
                        .push_bind(c.expires_at)
                        .push_bind(c.last_used_at)
                        .push_bind(c.revoked_at);
                });
                qb.build().execute(&mut *tx).await.map_err(db_err)?;
                tx.commit().await.map_err(db_err)
            }

            async fn get_credential_of(&self, id: &str) -> StoreResult<Option<StoredCredential>> {
                let mut qb = QueryBuilder::<$db>::new("SELECT ");
                qb.push(ds::CREDENTIAL_COLS)
                    .push(" FROM service_credentials WHERE id = ")
                    .push_bind(id);
                let row: Option<CredentialRow> = qb
                    .build_query_as()
                    .fetch_optional(self.point_reads())
                    .await
                    .map_err(db_err)?;
                row.map(StoredCredential::try_from).transpose()
            }

            async fn list_credentials_of(&self, pool: &PoolId) -> StoreResult<Vec<Credential>> {
                let mut qb = QueryBuilder::<$db>::new("SELECT ");
                qb.push(ds::CREDENTIAL_COLS)
                    .push(" FROM service_credentials WHERE pool_id = ")
                    .push_bind(pool.as_str())
                    .push(" ORDER BY created_at, id");
                let rows: Vec<CredentialRow> = qb
                    .build_query_as()
                    .fetch_all(self.reads())
                    .await
                    .map_err(db_err)?;
                rows.into_iter()
                    .map(|r| StoredCredential::try_from(r).map(|s| s.credential))
                    .collect()
            }

            async fn revoke_credential_of(&self, id: &str, now: Millis) -> StoreResult<bool> {
                let done = sqlx::query(ds::REVOKE_CREDENTIAL)
                    .bind(id)
                    .bind(now)
                    .execute(self.writes())
                    .await
                    .map_err(db_err)?;
                Ok(done.rows_affected() > 0)
            }

            async fn touch_credential_of(&self, id: &str, now: Millis) -> StoreResult<()> {
                sqlx::query(ds::TOUCH_CREDENTIAL)
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

pub(crate) use downstream_fns;

#[cfg(test)]
mod tests {
    use super::prune_through;

    #[test]
    fn retention_stops_at_the_first_event_to_keep() {
        assert_eq!(prune_through(&[], 10), None);
        assert_eq!(prune_through(&[(1, 20)], 10), None);
        assert_eq!(
            prune_through(&[(1, 5), (2, 9), (3, 10), (4, 1)], 10),
            Some(2)
        );
    }
}
