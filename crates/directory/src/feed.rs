//! The change feed: what downstream systems read to follow a pool (docs/change-feed.md).
//!
//! Pure: the event catalogue, the rule that turns one object change (its stored state before
//! and after) into feed events, and the envelope consumers receive. The store calls
//! [`derive`] inside the transaction that writes the change, so an event exists exactly when
//! its change committed, numbered in commit order.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::ids::{Millis, PoolId, iso8601};
use crate::model::{JobKind, ObjectKind};
use crate::store::ChangeSource;

/// The catalogue. Names are dot-delimited (`[a-z_.]`), as Standard Webhooks asks.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum FeedType {
    #[serde(rename = "user.created")]
    UserCreated,
    #[serde(rename = "user.updated")]
    UserUpdated,
    #[serde(rename = "user.disabled")]
    UserDisabled,
    #[serde(rename = "user.enabled")]
    UserEnabled,
    #[serde(rename = "user.deleted")]
    UserDeleted,
    #[serde(rename = "department.created")]
    DepartmentCreated,
    #[serde(rename = "department.updated")]
    DepartmentUpdated,
    #[serde(rename = "department.moved")]
    DepartmentMoved,
    #[serde(rename = "department.deleted")]
    DepartmentDeleted,
    #[serde(rename = "department.member_added")]
    DepartmentMemberAdded,
    #[serde(rename = "department.member_removed")]
    DepartmentMemberRemoved,
    #[serde(rename = "group.created")]
    GroupCreated,
    #[serde(rename = "group.updated")]
    GroupUpdated,
    #[serde(rename = "group.deleted")]
    GroupDeleted,
    #[serde(rename = "group.member_added")]
    GroupMemberAdded,
    #[serde(rename = "group.member_removed")]
    GroupMemberRemoved,
    #[serde(rename = "directory.sync_completed")]
    SyncCompleted,
}

impl FeedType {
    pub const ALL: [FeedType; 17] = [
        Self::UserCreated,
        Self::UserUpdated,
        Self::UserDisabled,
        Self::UserEnabled,
        Self::UserDeleted,
        Self::DepartmentCreated,
        Self::DepartmentUpdated,
        Self::DepartmentMoved,
        Self::DepartmentDeleted,
        Self::DepartmentMemberAdded,
        Self::DepartmentMemberRemoved,
        Self::GroupCreated,
        Self::GroupUpdated,
        Self::GroupDeleted,
        Self::GroupMemberAdded,
        Self::GroupMemberRemoved,
        Self::SyncCompleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserCreated => "user.created",
            Self::UserUpdated => "user.updated",
            Self::UserDisabled => "user.disabled",
            Self::UserEnabled => "user.enabled",
            Self::UserDeleted => "user.deleted",
            Self::DepartmentCreated => "department.created",
            Self::DepartmentUpdated => "department.updated",
            Self::DepartmentMoved => "department.moved",
            Self::DepartmentDeleted => "department.deleted",
            Self::DepartmentMemberAdded => "department.member_added",
            Self::DepartmentMemberRemoved => "department.member_removed",
            Self::GroupCreated => "group.created",
            Self::GroupUpdated => "group.updated",
            Self::GroupDeleted => "group.deleted",
            Self::GroupMemberAdded => "group.member_added",
            Self::GroupMemberRemoved => "group.member_removed",
            Self::SyncCompleted => "directory.sync_completed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl std::fmt::Display for FeedType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A filter such as `user.*,group.member_added`: exact names and `prefix.*` globs, matched
/// against the catalogue. An empty filter is every type.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "{0:?} is not an event type: use names such as `user.updated` or globs such as `user.*` \
     (the catalogue: docs/change-feed.md)"
)]
pub struct UnknownType(pub String);

/// The types a comma-separated filter names, sorted, without duplicates; empty for "all".
pub fn parse_types(filter: &str) -> Result<Vec<FeedType>, UnknownType> {
    let mut out = Vec::new();
    for item in filter.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let matched: Vec<FeedType> = if item == "*" {
            FeedType::ALL.to_vec()
        } else if let Some(prefix) = item.strip_suffix(".*") {
            FeedType::ALL
                .into_iter()
                .filter(|t| t.as_str().split('.').next() == Some(prefix))
                .collect()
        } else {
            FeedType::parse(item).into_iter().collect()
        };
        if matched.is_empty() {
            return Err(UnknownType(item.to_owned()));
        }
        out.extend(matched);
    }
    out.sort();
    out.dedup();
    if out.len() == FeedType::ALL.len() {
        out.clear();
    }
    Ok(out)
}

/// A feed event before the store numbers it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedDraft {
    pub event_type: FeedType,
    /// The object whose change it reports (a membership event: the user, or the group).
    pub object_id: Option<String>,
    pub data: Value,
    /// The event's `data.object` is the changed object after the change, and `data` does not
    /// hold it yet ([`derive_detached`]): the store points the event at the change-log row
    /// that holds it rather than storing the object twice (docs/change-feed.md).
    pub carries_object: bool,
}

impl FeedDraft {
    /// Puts `object` into `data` where the event carries it.
    pub fn attach(mut self, object: &Value) -> Self {
        if self.carries_object {
            if let Value::Object(data) = &mut self.data {
                data.insert("object".into(), object.clone());
            }
            self.carries_object = false;
        }
        self
    }
}

/// One event of a pool's feed, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedEvent {
    pub pool_id: PoolId,
    /// 1, 2, 3, … per pool, without gaps, in commit order.
    pub seq: i64,
    pub event_type: FeedType,
    pub object_id: Option<String>,
    pub source: ChangeSource,
    /// When its change committed.
    pub at: Millis,
    pub data: Value,
}

impl FeedEvent {
    /// Unique across pools and the same every time the event is read or delivered (the
    /// idempotency key, and Standard Webhooks' `webhook-id`).
    pub fn id(&self) -> String {
        format!("evt_{}_{}", self.pool_id, self.seq)
    }

    /// The envelope: the same JSON in the events API and as a webhook body.
    pub fn envelope(&self) -> Value {
        self.clone().into_envelope()
    }

    /// [`FeedEvent::envelope`] without copying `data` (a page of the feed carries hundreds).
    pub fn into_envelope(self) -> Value {
        let mut source = Map::new();
        let kind = match &self.source {
            ChangeSource::Event {
                event_id,
                connection_id,
            } => {
                source.insert("feishu_event_id".into(), json!(event_id));
                source.insert("connection_id".into(), json!(connection_id));
                "feishu_event"
            }
            ChangeSource::Job {
                job_id,
                connection_id,
                job_kind,
            } => {
                source.insert("job_id".into(), json!(job_id));
                source.insert("connection_id".into(), json!(connection_id));
                match job_kind {
                    Some(JobKind::Import) => "import",
                    Some(JobKind::Reconcile) | None => "reconcile",
                }
            }
            ChangeSource::Admin => "admin",
        };
        source.insert("kind".into(), json!(kind));
        // Built by hand: `json!` would serialize `data` again instead of moving it.
        let mut out = Map::new();
        out.insert("id".into(), Value::String(self.id()));
        out.insert("seq".into(), json!(self.seq));
        out.insert("type".into(), json!(self.event_type.as_str()));
        out.insert("timestamp".into(), Value::String(iso8601(self.at)));
        out.insert("pool_id".into(), Value::String(self.pool_id.0));
        out.insert("source".into(), Value::Object(source));
        out.insert("data".into(), self.data);
        Value::Object(out)
    }
}

/// Keys every write changes (or that never change meaning): not reported as changed.
const BOOKKEEPING: [&str; 3] = ["version", "updated_at", "created_at"];

/// The events one object change yields, in the order a consumer should apply them.
/// `before`: the stored object before the change (`None`: it did not exist); `after`: as
/// written. Both are the objects' JSON as the REST API shows them.
pub fn derive(kind: ObjectKind, before: Option<&Value>, after: &Value) -> Vec<FeedDraft> {
    derive_detached(kind, before, after)
        .into_iter()
        .map(|d| d.attach(after))
        .collect()
}

/// [`derive`] without the object in the events that carry it (`carries_object`): the store
/// derives the events of every change it writes, and the object is already in its change
/// log, so it neither copies nor stores it again.
pub fn derive_detached(kind: ObjectKind, before: Option<&Value>, after: &Value) -> Vec<FeedDraft> {
    let before = before.filter(|b| live(b));
    let id = after.get("id").and_then(Value::as_str).map(str::to_owned);
    let draft = |event_type, data| FeedDraft {
        event_type,
        object_id: id.clone(),
        data,
        carries_object: true,
    };
    let (created, updated, deleted) = match kind {
        ObjectKind::User => (
            FeedType::UserCreated,
            FeedType::UserUpdated,
            FeedType::UserDeleted,
        ),
        ObjectKind::Department => (
            FeedType::DepartmentCreated,
            FeedType::DepartmentUpdated,
            FeedType::DepartmentDeleted,
        ),
        ObjectKind::Group => (
            FeedType::GroupCreated,
            FeedType::GroupUpdated,
            FeedType::GroupDeleted,
        ),
    };
    let object = |rest: Vec<(&str, Value)>| {
        let mut data = Map::with_capacity(rest.len() + 1);
        for (key, value) in rest {
            data.insert(key.into(), value);
        }
        Value::Object(data)
    };
    let mut out = Vec::new();
    match (before, live(after)) {
        // Neither before nor after in the directory: nothing a consumer holds changed.
        (None, false) => {}
        // A deleted object's memberships end with it: no removal events.
        (Some(_), false) => {
            out.push(draft(
                deleted,
                object(vec![("reason", Value::from("deleted"))]),
            ));
        }
        (None, true) => {
            let members = members(kind, &Value::Null, after);
            out.push(draft(created, object(Vec::new())));
            out.extend(members);
        }
        (Some(before), true) => {
            let (previous, changed) = diff(before, after);
            let members = members(kind, before, after);
            let main = match kind {
                ObjectKind::User => match (enabled(before), enabled(after)) {
                    (true, false) => Some(FeedType::UserDisabled),
                    (false, true) => Some(FeedType::UserEnabled),
                    // Departments joined or left are told by the membership events; a
                    // membership that stays but changes (primary, order) is an update.
                    _ => (only_besides(&changed, &["departments"])
                        || kept_memberships_changed(before, after))
                    .then_some(updated),
                },
                ObjectKind::Department => {
                    if after.get("parent_id") != before.get("parent_id") {
                        out.push(draft(
                            FeedType::DepartmentMoved,
                            json!({
                                "from_parent_id": before.get("parent_id").cloned().unwrap_or(Value::Null),
                                "to_parent_id": after.get("parent_id").cloned().unwrap_or(Value::Null),
                            }),
                        ));
                    }
                    only_besides(&changed, &["parent_id"]).then_some(updated)
                }
                ObjectKind::Group => only_besides(&changed, &["members"]).then_some(updated),
            };
            if let Some(main) = main {
                let mut rest = Vec::with_capacity(3);
                if main == FeedType::UserDisabled {
                    rest.push((
                        "reason",
                        after.get("status").cloned().unwrap_or(Value::Null),
                    ));
                }
                let changed = changed.into_iter().map(Value::String).collect();
                rest.push(("previous_attributes", previous));
                rest.push(("changed", Value::Array(changed)));
                out.push(draft(main, object(rest)));
            }
            out.extend(members);
        }
    }
    out
}

/// Whether any key other than `ignored` changed.
fn only_besides(changed: &[String], ignored: &[&str]) -> bool {
    changed
        .iter()
        .any(|c| !ignored.contains(&c.split('.').next().unwrap_or(c)))
}

/// Whether a membership in a department the user is in both before and after changed.
fn kept_memberships_changed(before: &Value, after: &Value) -> bool {
    let list = |v: &Value| -> Vec<Value> {
        v.get("departments")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let dept = |m: &Value| m.get("department_id").cloned();
    let (old, new) = (list(before), list(after));
    let kept = |from: &[Value], other: &[Value]| -> Vec<Value> {
        from.iter()
            .filter(|m| other.iter().any(|o| dept(o) == dept(m)))
            .cloned()
            .collect()
    };
    kept(&old, &new) != kept(&new, &old)
}

fn live(object: &Value) -> bool {
    object.get("deleted_at").is_none_or(Value::is_null)
}

/// A user may sign in: active (frozen, unjoined, exited and resigned users may not).
fn enabled(user: &Value) -> bool {
    user.get("status").and_then(Value::as_str) == Some("active")
}

/// The attributes that changed, with their previous values (`null` for new ones): objects
/// compared key by key one level down (a user's `profile`), anything else as a whole.
/// Returns the previous attributes and the changed keys (`profile.name`).
fn diff(before: &Value, after: &Value) -> (Value, Vec<String>) {
    let mut previous = Map::new();
    let mut changed = Vec::new();
    let (Some(b), Some(a)) = (before.as_object(), after.as_object()) else {
        return (Value::Object(previous), changed);
    };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        if BOOKKEEPING.contains(&key.as_str()) {
            continue;
        }
        let (old, new) = (b.get(key), a.get(key));
        if old == new || (old.is_none_or(Value::is_null) && new.is_none_or(Value::is_null)) {
            continue;
        }
        match (old, new) {
            (Some(Value::Object(o)), Some(Value::Object(n))) => {
                let mut inner = Map::new();
                let mut names: Vec<&String> = o.keys().chain(n.keys()).collect();
                names.sort();
                names.dedup();
                for name in names {
                    let (ov, nv) = (o.get(name), n.get(name));
                    if ov != nv && !(ov.is_none_or(Value::is_null) && nv.is_none_or(Value::is_null))
                    {
                        inner.insert(name.clone(), ov.cloned().unwrap_or(Value::Null));
                        changed.push(format!("{key}.{name}"));
                    }
                }
                previous.insert(key.clone(), Value::Object(inner));
            }
            _ => {
                previous.insert(key.clone(), old.cloned().unwrap_or(Value::Null));
                changed.push(key.clone());
            }
        }
    }
    (Value::Object(previous), changed)
}

/// Membership events: a user's departments, a group's members; removals first.
fn members(kind: ObjectKind, before: &Value, after: &Value) -> Vec<FeedDraft> {
    let version = after.get("version").cloned().unwrap_or(Value::Null);
    let id = after.get("id").cloned().unwrap_or(Value::Null);
    let object_id = id.as_str().map(str::to_owned);
    match kind {
        ObjectKind::User => {
            let list = |v: &Value| -> Vec<(String, bool)> {
                v.get("departments")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|m| {
                        let dept = m.get("department_id")?.as_str()?.to_owned();
                        let primary = m.get("primary").and_then(Value::as_bool) == Some(true);
                        Some((dept, primary))
                    })
                    .collect()
            };
            let (old, new) = (list(before), list(after));
            let event = |event_type, (dept, primary): &(String, bool)| FeedDraft {
                event_type,
                object_id: object_id.clone(),
                data: json!({
                    "department_id": dept,
                    "user_id": id,
                    "primary": primary,
                    "version": version,
                }),
                carries_object: false,
            };
            let has = |list: &[(String, bool)], dept: &str| list.iter().any(|(d, _)| d == dept);
            let removed = old
                .iter()
                .filter(|(d, _)| !has(&new, d))
                .map(|m| event(FeedType::DepartmentMemberRemoved, m));
            let added = new
                .iter()
                .filter(|(d, _)| !has(&old, d))
                .map(|m| event(FeedType::DepartmentMemberAdded, m));
            removed.chain(added).collect()
        }
        ObjectKind::Group => {
            let list = |v: &Value| -> Vec<Value> {
                v.get("members")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            };
            let (old, new) = (list(before), list(after));
            let event = |event_type, member: &Value| FeedDraft {
                event_type,
                object_id: object_id.clone(),
                data: json!({"group_id": id, "member": member, "version": version}),
                carries_object: false,
            };
            let removed = old
                .iter()
                .filter(|m| !new.contains(m))
                .map(|m| event(FeedType::GroupMemberRemoved, m));
            let added = new
                .iter()
                .filter(|m| !old.contains(m))
                .map(|m| event(FeedType::GroupMemberAdded, m));
            removed.chain(added).collect()
        }
        ObjectKind::Department => Vec::new(),
    }
}

/// `directory.sync_completed`: a job ended. `initial`: the connection's first import, whose
/// objects the feed did not list one by one (consumers read the directory instead).
pub fn sync_completed(
    job_id: &str,
    connection_id: &str,
    kind: JobKind,
    verdict: &str,
    counts: &Value,
    initial: bool,
) -> FeedDraft {
    FeedDraft {
        event_type: FeedType::SyncCompleted,
        object_id: None,
        data: json!({
            "job_id": job_id,
            "connection_id": connection_id,
            "kind": match kind {
                JobKind::Import => "import",
                JobKind::Reconcile => "reconcile",
            },
            "verdict": verdict,
            "counts": counts,
            "initial": initial,
        }),
        carries_object: false,
    }
}

#[cfg(test)]
mod tests;
