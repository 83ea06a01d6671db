//! What one full pull saw of a Feishu contact scope (protocol §3.4), as plain data: the input
//! of the planner and of the directory comparison. Keys are the immutable Feishu ids
//! (`open_id`, `open_department_id`, group id); every id inside is of those types too.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// The root department's id.
pub const ROOT: &str = "0";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeKind {
    /// The app may read the whole organisation (root calls succeed).
    All,
    /// Only the departments, users and groups picked in the contact scope.
    Partial,
}

/// A user as the pull saw it: the API object plus the departments it was listed in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotUser {
    pub user: feishu::model::User,
    /// `od-` ids (or `"0"`) of the departments whose member list contained the user, in the
    /// order first seen. Authoritative when `department_ids` is absent from the object.
    pub listed_in: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotGroup {
    pub group: feishu::model::Group,
    /// `open_id`s.
    pub users: BTreeSet<String>,
    /// `od-` ids.
    pub departments: BTreeSet<String>,
    /// Both member lists were read completely.
    pub members_complete: bool,
}

/// What `GET /users/:id` said about a user the store had but the pull did not list
/// (protocol §3.1, "Detecting leavers").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum LeaverCheck {
    /// `status.is_resigned = true`: a leaver.
    Resigned { user: Box<feishu::model::User> },
    /// Readable and not resigned: moved out of the synced part, still in the company.
    Present { user: Box<feishu::model::User> },
    /// 41050: no longer in the app's contact scope.
    OutOfScope,
    /// Anything else: unknown, so never a deletion.
    Failed { error: String },
}

/// Which parts of the pull are complete. Deletions of a kind are only planned when its part is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completeness {
    pub departments: bool,
    pub users: bool,
    pub groups: bool,
}

impl Completeness {
    pub const FULL: Completeness = Completeness {
        departments: true,
        users: true,
        groups: true,
    };

    pub fn is_full(&self) -> bool {
        self.departments && self.users && self.groups
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub scope: ScopeKind,
    /// By `open_department_id`. The root is not included.
    pub departments: BTreeMap<String, feishu::model::Department>,
    /// By `open_id`.
    pub users: BTreeMap<String, SnapshotUser>,
    /// By group id.
    pub groups: BTreeMap<String, SnapshotGroup>,
    /// Listed users the pull handed on to be applied while it ran (`fetch::Pulled::Users`), by
    /// `open_id`; their records are not in `users`. Before the final plan the engine puts
    /// back those that were not applied (docs/import-pipeline.md): the planner counts the
    /// rest as listed and plans nothing for them.
    #[serde(default)]
    pub handed_on: BTreeSet<String>,
    /// Users the store knew that the pull did not list, with the result of looking them up.
    pub leavers: BTreeMap<String, LeaverCheck>,
    pub completeness: Completeness,
    /// What failed during the pull (page errors etc.), for the job's log.
    pub errors: Vec<String>,
    /// A part of a pull applied ahead of its final plan (docs/import-pipeline.md): it plans
    /// no deletion at all, not even a skipped one for each stored object it does not hold;
    /// the final plan decides them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub chunk: bool,
}

impl Snapshot {
    pub fn empty(scope: ScopeKind) -> Self {
        Self {
            scope,
            departments: BTreeMap::new(),
            users: BTreeMap::new(),
            handed_on: BTreeSet::new(),
            groups: BTreeMap::new(),
            leavers: BTreeMap::new(),
            completeness: Completeness::FULL,
            errors: Vec::new(),
            chunk: false,
        }
    }
}

impl Snapshot {
    /// Whether the pull listed the user: its record is in `users`, or it was handed on.
    pub fn lists_user(&self, open_id: &str) -> bool {
        self.users.contains_key(open_id) || self.handed_on.contains(open_id)
    }
}

/// The ordering-guard key of an object (see `store::Watermark`).
pub fn object_key(kind: crate::model::ObjectKind, external_id: &str) -> String {
    format!("{}:{external_id}", kind.as_str())
}
