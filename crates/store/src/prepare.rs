//! The pure half of [`DirectoryStore::apply`](directory::store::DirectoryStore::apply): given
//! the stored versions of the objects a batch touches, decide every row it writes (versions,
//! times, change records) or refuse it. No I/O, so both backends share it exactly.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use directory::feed::{self, FeedDraft};
use directory::ids::Millis;
use directory::model::{Department, ExternalRef, Group, ObjectKind, User};
use directory::store::{
    ApplyBatch, AsRead, ChangeRecord, ChangeSource, StoreError, StoreResult, Watermark, Write,
};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::codec::to_json;

/// The object and its JSON, with NUL characters dropped from every string. PostgreSQL cannot
/// store NUL in `text` or `jsonb` (SQLite can); both backends drop it so they hold the same
/// values, and a Feishu value that carries one does not fail its batch.
fn without_nul<T: Serialize + DeserializeOwned>(what: &str, object: T) -> StoreResult<(T, Value)> {
    let mut json = to_json(what, &object)?;
    if !strip_nul(&mut json) {
        return Ok((object, json));
    }
    let object = serde_json::from_value(json.clone())
        .map_err(|e| StoreError::Corrupt(format!("cannot re-read {what} without NUL: {e}")))?;
    Ok((object, json))
}

/// Removes NUL from every string and key; whether anything changed.
fn strip_nul(value: &mut Value) -> bool {
    match value {
        Value::String(s) if s.contains('\0') => {
            s.retain(|c| c != '\0');
            true
        }
        Value::Array(items) => items.iter_mut().fold(false, |acc, v| strip_nul(v) | acc),
        Value::Object(map) if map.keys().any(|k| k.contains('\0')) => {
            let old = std::mem::take(map);
            for (k, mut v) in old {
                strip_nul(&mut v);
                map.insert(k.replace('\0', ""), v);
            }
            true
        }
        Value::Object(map) => map.values_mut().fold(false, |acc, v| strip_nul(v) | acc),
        _ => false,
    }
}

/// What the store holds of one object before the batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stored {
    pub version: i64,
    pub created_at: Millis,
}

/// The ids of the objects a batch writes, by kind (duplicates removed, first-seen order).
#[derive(Debug, Clone, Default)]
pub(crate) struct Touched {
    pub users: Vec<String>,
    pub departments: Vec<String>,
    pub groups: Vec<String>,
    /// Number of change-log rows the batch appends (one per object write).
    pub changes: usize,
}

pub(crate) fn touched(batch: &ApplyBatch) -> Touched {
    let mut seen: HashSet<(ObjectKind, &str)> = HashSet::new();
    let mut t = Touched::default();
    for w in &batch.writes {
        let Some((kind, id)) = w.object() else {
            continue;
        };
        let list = match kind {
            ObjectKind::User => &mut t.users,
            ObjectKind::Department => &mut t.departments,
            ObjectKind::Group => &mut t.groups,
        };
        if seen.insert((kind, id)) {
            list.push(id.to_owned());
        }
        t.changes += 1;
    }
    t
}

/// Every row a batch writes.
#[derive(Debug, Default)]
pub(crate) struct Prepared {
    /// The final state of each written object (an object written twice in a batch is stored
    /// once, with the later state; each write still gets its own change row and version).
    pub users: Vec<User>,
    pub departments: Vec<Department>,
    pub groups: Vec<Group>,
    pub refs: Vec<ExternalRef>,
    pub changes: Vec<ChangeRecord>,
    pub watermarks: Vec<Watermark>,
}

/// Keeps the last value per key, in the order keys were first seen.
struct LastWins<T> {
    index: HashMap<String, usize>,
    items: Vec<T>,
}

impl<T> LastWins<T> {
    fn new() -> Self {
        Self {
            index: HashMap::new(),
            items: Vec::new(),
        }
    }

    fn put(&mut self, key: String, item: T) {
        match self.index.get(&key) {
            Some(&i) => self.items[i] = item,
            None => {
                self.index.insert(key, self.items.len());
                self.items.push(item);
            }
        }
    }
}

/// Versions run on from the stored ones (or 0 for new objects) through the batch.
struct Versions {
    kind: &'static str,
    current: HashMap<String, Stored>,
}

impl Versions {
    /// The object's next version and creation time, after the `expected_version` check.
    fn bump(&mut self, id: &str, expected: Option<i64>, now: Millis) -> StoreResult<Stored> {
        let found = self.current.get(id).copied();
        let found_version = found.map_or(0, |s| s.version);
        if let Some(expected) = expected
            && expected != found_version
        {
            return Err(StoreError::VersionConflict {
                kind: self.kind,
                id: id.to_owned(),
                expected,
                found: found_version,
            });
        }
        let next = Stored {
            version: found_version + 1,
            created_at: found.map_or(now, |s| s.created_at),
        };
        self.current.insert(id.to_owned(), next);
        Ok(next)
    }
}

fn foreign_pool(kind: &str, id: &str, pool: &str, batch_pool: &str) -> StoreError {
    StoreError::Conflict(format!(
        "{kind} {id} belongs to pool {pool}, but the batch writes pool {batch_pool}"
    ))
}

/// Decides the batch. `first_seq` is the first change number the counter handed out.
pub(crate) fn prepare(
    batch: &ApplyBatch,
    stored_users: HashMap<String, Stored>,
    stored_departments: HashMap<String, Stored>,
    stored_groups: HashMap<String, Stored>,
    first_seq: i64,
    now: Millis,
) -> StoreResult<Prepared> {
    let pool = batch.pool_id.as_str();
    let mut users = Versions {
        kind: "user",
        current: stored_users,
    };
    let mut departments = Versions {
        kind: "department",
        current: stored_departments,
    };
    let mut groups = Versions {
        kind: "group",
        current: stored_groups,
    };
    let mut final_users = LastWins::new();
    let mut final_departments = LastWins::new();
    let mut final_groups = LastWins::new();
    let mut refs = LastWins::new();
    let mut changes = Vec::new();
    let mut seq = first_seq;
    // Each write's source: the last of `later_sources` at or before its index (sorted here,
    // stably, so an unsorted list still attributes every write).
    let mut later: Vec<&(usize, ChangeSource)> = batch.later_sources.iter().collect();
    later.sort_by_key(|(from, _)| *from);
    let mut later = later.into_iter().peekable();
    let mut source = &batch.source;

    for (i, write) in batch.writes.iter().enumerate() {
        while let Some((_, next)) = later.next_if(|(from, _)| *from <= i) {
            source = next;
        }
        let (change, object_kind, object_id, version, object) = match write {
            Write::PutUser {
                user,
                change,
                expected_version,
            } => {
                if user.pool_id.as_str() != pool {
                    return Err(foreign_pool(
                        "user",
                        user.id.as_str(),
                        user.pool_id.as_str(),
                        pool,
                    ));
                }
                let next = users.bump(user.id.as_str(), *expected_version, now)?;
                let mut user = user.clone();
                user.version = next.version;
                user.created_at = next.created_at;
                user.updated_at = now;
                let (user, object) = without_nul("user", user)?;
                let id = user.id.0.clone();
                final_users.put(id.clone(), user);
                (*change, ObjectKind::User, id, next.version, object)
            }
            Write::PutDepartment {
                department,
                change,
                expected_version,
            } => {
                if department.pool_id.as_str() != pool {
                    return Err(foreign_pool(
                        "department",
                        department.id.as_str(),
                        department.pool_id.as_str(),
                        pool,
                    ));
                }
                let next = departments.bump(department.id.as_str(), *expected_version, now)?;
                let mut department = department.clone();
                department.version = next.version;
                department.created_at = next.created_at;
                department.updated_at = now;
                let (department, object) = without_nul("department", department)?;
                let id = department.id.0.clone();
                final_departments.put(id.clone(), department);
                (*change, ObjectKind::Department, id, next.version, object)
            }
            Write::PutGroup {
                group,
                change,
                expected_version,
            } => {
                if group.pool_id.as_str() != pool {
                    return Err(foreign_pool(
                        "group",
                        group.id.as_str(),
                        group.pool_id.as_str(),
                        pool,
                    ));
                }
                let next = groups.bump(group.id.as_str(), *expected_version, now)?;
                let mut group = group.clone();
                group.version = next.version;
                group.created_at = next.created_at;
                group.updated_at = now;
                let (group, object) = without_nul("group", group)?;
                let id = group.id.0.clone();
                final_groups.put(id.clone(), group);
                (*change, ObjectKind::Group, id, next.version, object)
            }
            Write::PutExternalRef(r) => {
                let key = format!(
                    "{}\u{1f}{}\u{1f}{}",
                    r.connection_id,
                    r.kind.as_str(),
                    r.external_id
                );
                refs.put(key, r.clone());
                continue;
            }
        };
        changes.push(ChangeRecord {
            pool_id: batch.pool_id.clone(),
            seq,
            kind: change,
            object_kind,
            object_id,
            version,
            source: source.clone(),
            at: now,
            object,
        });
        seq += 1;
    }

    Ok(Prepared {
        users: final_users.items,
        departments: final_departments.items,
        groups: final_groups.items,
        refs: refs.items,
        changes,
        watermarks: newest_watermarks(&batch.watermarks),
    })
}

/// One watermark per object: the newest; on a tie a deletion wins (nothing resurrects).
pub(crate) fn newest_watermarks(marks: &[Watermark]) -> Vec<Watermark> {
    let mut out: LastWins<Watermark> = LastWins::new();
    for m in marks {
        let key = format!("{}\u{1f}{}", m.connection_id, m.object_key);
        let newer = match out.index.get(&key) {
            Some(&i) => supersedes(m, &out.items[i]),
            None => true,
        };
        if newer {
            out.put(key, m.clone());
        }
    }
    out.items
}

/// The upsert rule of watermarks, mirrored in SQL (`UPSERT_WATERMARK`).
fn supersedes(new: &Watermark, old: &Watermark) -> bool {
    new.event_time > old.event_time || (new.event_time == old.event_time && new.deleted)
}

/// The feed events of a batch's changes, in change order, each with its change's source
/// (docs/change-feed.md). `stored`: each changed object's JSON before the batch, for those
/// that existed, and `stored_refs` their Feishu ids; `written_refs`: the ids the batch maps.
/// An object changed twice in the batch: its second change is compared with the state its
/// first one left. Each object is
/// compared with its `external_ids`, as the REST API shows it, so an identifier change is an
/// update.
/// Objects as JSON, by kind and id.
pub(crate) type JsonObjects = HashMap<(ObjectKind, String), Value>;

/// Ids by kind.
#[derive(Debug, Default)]
pub(crate) struct Ids {
    pub users: Vec<String>,
    pub departments: Vec<String>,
    pub groups: Vec<String>,
}

/// The feed's before-state of the objects the caller read (or a batch before wrote,
/// `written`) at their stored version ([`AsRead`]), as JSON, and the ids of the stored
/// objects it must still read.
pub(crate) fn as_read_json(
    written: Vec<ChangeRecord>,
    as_read: &AsRead,
    users: &HashMap<String, Stored>,
    departments: &HashMap<String, Stored>,
    groups: &HashMap<String, Stored>,
) -> StoreResult<(JsonObjects, Ids)> {
    let mut known = HashMap::new();
    // What a batch before wrote, as it wrote it: no conversion needed.
    for change in written {
        let stored = match change.object_kind {
            ObjectKind::User => users,
            ObjectKind::Department => departments,
            ObjectKind::Group => groups,
        };
        if stored
            .get(&change.object_id)
            .is_some_and(|s| s.version == change.version)
        {
            known.insert((change.object_kind, change.object_id), change.object);
        }
    }
    fn take<T: Serialize>(
        what: &str,
        kind: ObjectKind,
        objects: &[T],
        id_version: fn(&T) -> (&str, i64),
        stored: &HashMap<String, Stored>,
        known: &mut JsonObjects,
    ) -> StoreResult<Vec<String>> {
        for object in objects {
            let (id, version) = id_version(object);
            if stored.get(id).is_some_and(|s| s.version == version)
                && let Entry::Vacant(e) = known.entry((kind, id.to_owned()))
            {
                e.insert(to_json(what, object)?);
            }
        }
        Ok(stored
            .keys()
            .filter(|id| !known.contains_key(&(kind, (*id).clone())))
            .cloned()
            .collect())
    }
    let ids = Ids {
        users: take(
            "user",
            ObjectKind::User,
            &as_read.users,
            |u| (u.id.0.as_str(), u.version),
            users,
            &mut known,
        )?,
        departments: take(
            "department",
            ObjectKind::Department,
            &as_read.departments,
            |d| (d.id.0.as_str(), d.version),
            departments,
            &mut known,
        )?,
        groups: take(
            "group",
            ObjectKind::Group,
            &as_read.groups,
            |g| (g.id.0.as_str(), g.version),
            groups,
            &mut known,
        )?,
    };
    Ok((known, ids))
}

/// The feed rows of a batch's changes, for a thread of its own (docs/change-feed.md, "What
/// the feed costs"): each change compared with the object's state before it (`stored`, with
/// its Feishu ids), the rows' JSON rendered to text. It takes the batch's change records and
/// hands them back as they were.
pub(crate) fn feed_rows(
    mut changes: Vec<ChangeRecord>,
    mut stored: HashMap<(ObjectKind, String), Value>,
    stored_refs: HashMap<(ObjectKind, String), Vec<ExternalRef>>,
    written_refs: &[ExternalRef],
) -> StoreResult<(Vec<ChangeRecord>, Vec<FeedRowText>)> {
    let refs_json = |refs: Option<&Vec<ExternalRef>>| {
        let mut refs: Vec<&ExternalRef> = refs.into_iter().flatten().collect();
        refs.sort_by(|a, b| {
            (a.connection_id.as_str(), a.external_id.as_str())
                .cmp(&(b.connection_id.as_str(), b.external_id.as_str()))
        });
        serde_json::to_value(&refs).unwrap_or(Value::Array(Vec::new()))
    };
    for (key, object) in stored.iter_mut() {
        if let Value::Object(map) = object {
            map.insert("external_ids".into(), refs_json(stored_refs.get(key)));
        }
    }
    // The stored ids are not needed again: the batch's own become the ids after it.
    let mut refs_after = stored_refs;
    for r in written_refs {
        let list = refs_after.entry((r.kind, r.object_id.clone())).or_default();
        list.retain(|o| !(o.connection_id == r.connection_id && o.external_id == r.external_id));
        list.push(r.clone());
    }
    // An object written twice in a batch: its second change is compared with its first.
    let mut writes_left: HashMap<(ObjectKind, String), usize> = HashMap::new();
    for change in changes.iter() {
        *writes_left
            .entry((change.object_kind, change.object_id.clone()))
            .or_default() += 1;
    }
    let mut out = Vec::with_capacity(changes.len());
    for change in changes.iter_mut() {
        let key = (change.object_kind, change.object_id.clone());
        let external_ids = refs_json(refs_after.get(&key));
        // Compared with its Feishu ids, as the REST API shows it, so that an identifier
        // change is an update; the change log's object itself stays without them.
        let Value::Object(after) = &mut change.object else {
            continue;
        };
        after.insert("external_ids".into(), external_ids);
        let after = &change.object;
        let left = writes_left
            .get_mut(&key)
            .map(|n| {
                *n -= 1;
                *n
            })
            .unwrap_or(0);
        let drafts = feed::derive_detached(change.object_kind, stored.get(&key), after);
        if !drafts.is_empty() {
            let source = source_text(&change.source)?;
            let ids = after.get("external_ids").unwrap_or(&Value::Null);
            for draft in &drafts {
                let object_at = draft.carries_object.then_some((change.seq, ids));
                out.push(FeedRowText::new(draft, source.clone(), object_at));
            }
        }
        if left > 0 {
            stored.insert(key, after.clone());
        }
        if let Value::Object(after) = &mut change.object {
            after.remove("external_ids");
        }
    }
    Ok((changes, out))
}

/// A feed row ready to insert, its JSON already text. An event that carries its object
/// names the change-log row that holds it (`change_seq`) and keeps the object's Feishu ids at
/// that change (docs/change-feed.md, "What the feed stores").
#[derive(Debug, Clone)]
pub(crate) struct FeedRowText {
    pub event_type: feed::FeedType,
    pub object_id: Option<String>,
    pub source: String,
    pub data: String,
    pub change_seq: Option<i64>,
    pub external_ids: Option<String>,
}

impl FeedRowText {
    /// `source` as [`source_text`] renders it; `object_at`: the change-log row and the Feishu
    /// ids of an event that carries its object.
    pub(crate) fn new(draft: &FeedDraft, source: String, object_at: Option<(i64, &Value)>) -> Self {
        Self {
            event_type: draft.event_type,
            object_id: draft.object_id.clone(),
            source,
            data: draft.data.to_string(),
            change_seq: object_at.map(|(seq, _)| seq),
            external_ids: object_at.map(|(_, ids)| ids.to_string()),
        }
    }
}

/// A change's source as a feed row stores it.
pub(crate) fn source_text(source: &ChangeSource) -> StoreResult<String> {
    serde_json::to_string(source)
        .map_err(|e| StoreError::Corrupt(format!("cannot render a change source: {e}")))
}
