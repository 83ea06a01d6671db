//! The event worker: applies committed inbox events per connection, in `create_time` order,
//! exactly once (the object writes, the watermark and the inbox row commit together), with
//! the per-object ordering guard: an event older than the object's newest applied event is
//! ignored, and nothing but a creation may revive an object a newer event deleted.
//!
//! Payloads that are not enough are completed from the API: 1.0 events and group events are
//! re-read, unknown departments a user event points at are fetched (parents first), and a
//! scope change starts a reconciliation. A failing event is retried with backoff, then parked
//! for an admin; one that fails with a permanent Feishu error (an unknown object, a missing
//! permission: docs/event-failures.md) is parked at once. It never blocks other events.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use feishu::client::{FeishuClient, FeishuError};
use feishu::envelope::{self, Envelope};
use feishu::events::{ContactEvent, LegacyEvent, UnrecognizedReason};
use feishu::ids::{MemberIdType, MemberType};
use feishu::model as fs;
use futures::TryStreamExt;

use crate::engine::{Engine, EngineError};
use crate::ids::{ConnectionId, DepartmentId, GroupId, Millis, UserId, now_ms};
use crate::merge::{
    self, Listing, Resolve, UserField, merge_department, merge_group, merge_ref, merge_user,
    tombstone_department, tombstone_group,
};
use crate::model::{Connection, ExternalRef, JobKind, JobTrigger, ObjectKind, User, UserStatus};
use crate::snapshot::{ROOT, SnapshotGroup, object_key};
use crate::store::{
    ApplyBatch, ChangeKind, ChangeSource, InboxEvent, InboxOutcome, StoreError, Watermark, Write,
};

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Events claimed per round per connection.
    pub batch: u64,
    /// How long a claim lasts before another worker may take the event.
    pub claim_lease: Duration,
    /// Attempts before an event is parked.
    pub max_attempts: i64,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Sleep between rounds when there is nothing to do.
    pub idle_poll: Duration,
    /// How long the worker holds a connection's lease for one round.
    pub connection_lease: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            batch: 100,
            claim_lease: Duration::from_secs(60),
            max_attempts: 8,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(600),
            idle_poll: Duration::from_millis(200),
            connection_lease: Duration::from_secs(30),
        }
    }
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundStats {
    pub applied: u64,
    pub ignored: u64,
    pub retried: u64,
    pub parked: u64,
    /// Connections skipped because another worker held their event lease.
    pub busy: u64,
}

impl RoundStats {
    pub fn handled(&self) -> u64 {
        self.applied + self.ignored + self.retried + self.parked
    }

    fn add(&mut self, other: RoundStats) {
        self.applied += other.applied;
        self.ignored += other.ignored;
        self.retried += other.retried;
        self.parked += other.parked;
        self.busy += other.busy;
    }
}

/// Why applying one event failed (retried with backoff, then parked).
#[derive(Debug, thiserror::Error)]
enum ApplyError {
    #[error("Feishu: {0}")]
    Feishu(#[from] FeishuError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Engine(#[from] EngineError),
    #[error("{0}")]
    Other(String),
}

impl ApplyError {
    /// The Feishu error behind it, when asking Feishu again cannot succeed (an unknown
    /// object, a missing permission, bad credentials, …: docs/event-failures.md).
    fn permanent(&self) -> Option<&FeishuError> {
        match self {
            Self::Feishu(e) | Self::Engine(EngineError::Feishu(e)) if e.is_permanent() => Some(e),
            _ => None,
        }
    }
}

/// What an event amounts to.
enum Decision {
    Apply {
        writes: Vec<Write>,
        watermarks: Vec<Watermark>,
        note: String,
    },
    Ignore(String),
    /// Start a reconciliation (after releasing the connection).
    Reconcile,
}

pub struct Worker {
    engine: Arc<Engine>,
    config: WorkerConfig,
    id: String,
    wake: Arc<tokio::sync::Notify>,
}

impl Worker {
    pub fn new(engine: Arc<Engine>, config: WorkerConfig) -> Self {
        let id = format!(
            "{}/worker-{}",
            engine.config().instance,
            &crate::ids::new_id()[..6]
        );
        Self {
            engine,
            config,
            id,
            wake: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Wakes the idle worker when `notify` fires (the ingestor's commit signal), instead of
    /// waiting out `idle_poll`.
    pub fn wake_on(mut self, notify: Arc<tokio::sync::Notify>) -> Self {
        self.wake = notify;
        self
    }

    /// Waits until there may be work: `idle_poll` passed (retries come due, other instances
    /// commit events), a commit was signalled, or `shutdown` changed.
    pub async fn idle(&self, shutdown: &mut tokio::sync::watch::Receiver<bool>) {
        tokio::select! {
            _ = tokio::time::sleep(self.config.idle_poll) => {}
            _ = self.wake.notified() => {}
            _ = shutdown.changed() => {}
        }
    }

    /// Runs rounds until `shutdown` turns true.
    pub fn spawn(
        self,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        self.spawn_with(shutdown, |_| {})
    }

    /// [`Worker::spawn`], calling `after_round` with what each successful round did (for
    /// counters; whatever it owns is dropped when the loop ends, also on a panic).
    pub fn spawn_with(
        self,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
        mut after_round: impl FnMut(&RoundStats) + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if *shutdown.borrow() {
                    break;
                }
                let handled = match self.round().await {
                    Ok(stats) => {
                        after_round(&stats);
                        stats.handled()
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "event worker round failed");
                        0
                    }
                };
                if handled == 0 {
                    self.idle(&mut shutdown).await;
                }
            }
        })
    }

    /// Applies every event that is due now, connection by connection, until none is left
    /// (or only busy connections and scheduled retries remain).
    pub async fn drain(&self) -> Result<RoundStats, StoreError> {
        let mut total = RoundStats::default();
        loop {
            let stats = self.round().await?;
            total.add(stats);
            if stats.handled() == 0 {
                return Ok(total);
            }
        }
    }

    /// One round: a batch of due events of every connection that has some.
    pub async fn round(&self) -> Result<RoundStats, StoreError> {
        let store = self.engine.store();
        let mut stats = RoundStats::default();
        for connection_id in store.inbox_due_connections(now_ms()).await? {
            stats.add(self.connection_round(&connection_id).await?);
        }
        Ok(stats)
    }

    async fn connection_round(
        &self,
        connection_id: &ConnectionId,
    ) -> Result<RoundStats, StoreError> {
        let store = self.engine.store().clone();
        let mut stats = RoundStats::default();
        // The connection's event lease: one worker at a time applies a connection's events
        // (so their order holds). Not the job lease: events keep flowing while a job runs,
        // whose steps then yield to what an event changed (docs/concurrency.md).
        if !store
            .try_acquire_event_lease(
                connection_id,
                &self.id,
                self.config.connection_lease,
                now_ms(),
            )
            .await?
        {
            stats.busy += 1;
            return Ok(stats);
        }
        let result = self.claim_and_apply(connection_id, &mut stats).await;
        let _ = store.release_event_lease(connection_id, &self.id).await;
        let reconcile = result?;
        if let Some(event) = reconcile {
            // Scope changed: a reconciliation that starts after the change sees the new scope.
            match self
                .engine
                .start_job(connection_id, JobKind::Reconcile, JobTrigger::ScopeChange)
                .await
            {
                Ok(job) => {
                    store
                        .inbox_finish(
                            event.id,
                            InboxOutcome::Applied {
                                note: Some(format!("reconciliation {job} started")),
                            },
                            now_ms(),
                        )
                        .await?;
                    stats.applied += 1;
                }
                Err(e) => {
                    self.fail(&event, &e.to_string(), &mut stats).await?;
                }
            }
        }
        Ok(stats)
    }

    /// Applies a claimed batch; returns a scope event to turn into a reconciliation.
    async fn claim_and_apply(
        &self,
        connection_id: &ConnectionId,
        stats: &mut RoundStats,
    ) -> Result<Option<InboxEvent>, StoreError> {
        let store = self.engine.store().clone();
        let Some(connection) = store.get_connection(connection_id).await? else {
            return Ok(None);
        };
        let events = store
            .inbox_claim(
                connection_id,
                &self.id,
                self.config.batch,
                self.config.claim_lease,
                now_ms(),
            )
            .await?;
        let mut iter = events.into_iter();
        while let Some(event) = iter.next() {
            match self.decide(&connection, &event).await {
                Ok(Decision::Apply {
                    writes,
                    watermarks,
                    note,
                }) => {
                    let batch = ApplyBatch {
                        pool_id: connection.pool_id.clone(),
                        source: ChangeSource::Event {
                            event_id: event.event_id.clone(),
                            connection_id: connection.id.clone(),
                        },
                        writes,
                        watermarks,
                        inbox: Some((event.id, InboxOutcome::Applied { note: Some(note) })),
                    };
                    match store.apply(batch).await {
                        Ok(_) => {
                            stats.applied += 1;
                            record_applied(&event);
                        }
                        Err(e) => self.fail(&event, &e.to_string(), stats).await?,
                    }
                }
                Ok(Decision::Ignore(reason)) => {
                    store
                        .inbox_finish(event.id, InboxOutcome::Ignored { reason }, now_ms())
                        .await?;
                    stats.ignored += 1;
                }
                Ok(Decision::Reconcile) => {
                    // Hand back the rest of the claim (their claims expire; release them now
                    // by rescheduling at once) and stop: the job must start after this event.
                    for rest in iter {
                        store
                            .inbox_finish(
                                rest.id,
                                InboxOutcome::Retry {
                                    error: "waiting for the scope reconciliation".into(),
                                    next_attempt_at: now_ms(),
                                },
                                now_ms(),
                            )
                            .await?;
                    }
                    return Ok(Some(event));
                }
                Err(e) => match e.permanent() {
                    Some(feishu) => self.park(&event, feishu, stats).await?,
                    None => self.fail(&event, &e.to_string(), stats).await?,
                },
            }
        }
        Ok(None)
    }

    /// Parks at once, with Feishu's code and the fix: retrying cannot succeed until the
    /// object, the app's set-up or orgsync changes, and every attempt would cost API calls.
    async fn park(
        &self,
        event: &InboxEvent,
        error: &FeishuError,
        stats: &mut RoundStats,
    ) -> Result<(), StoreError> {
        let code = error
            .code()
            .map(|c| format!(" (Feishu code {c})"))
            .unwrap_or_default();
        let message = error.to_string();
        let fix = match error.fix() {
            Some(fix) if !message.contains(fix) => format!("; fix: {fix}"),
            _ => String::new(),
        };
        let text = format!("parked at once, retrying cannot succeed{code}: {message}{fix}");
        self.engine
            .store()
            .inbox_finish(event.id, InboxOutcome::Parked { error: text }, now_ms())
            .await?;
        stats.parked += 1;
        tracing::warn!(event = %event.event_id, code = error.code(), error = %error, "event parked: permanent Feishu error");
        Ok(())
    }

    /// Reschedules with backoff, or parks after too many attempts.
    async fn fail(
        &self,
        event: &InboxEvent,
        error: &str,
        stats: &mut RoundStats,
    ) -> Result<(), StoreError> {
        let store = self.engine.store();
        let attempts = event.attempts + 1;
        if attempts >= self.config.max_attempts {
            store
                .inbox_finish(
                    event.id,
                    InboxOutcome::Parked {
                        error: format!("gave up after {attempts} attempts: {error}"),
                    },
                    now_ms(),
                )
                .await?;
            stats.parked += 1;
            tracing::warn!(event = %event.event_id, error, "event parked");
        } else {
            let factor = 2u32.saturating_pow(u32::try_from(event.attempts).unwrap_or(16).min(16));
            let delay = self
                .config
                .backoff_base
                .saturating_mul(factor)
                .min(self.config.backoff_max);
            store
                .inbox_finish(
                    event.id,
                    InboxOutcome::Retry {
                        error: error.to_owned(),
                        next_attempt_at: now_ms() + delay.as_millis() as i64,
                    },
                    now_ms(),
                )
                .await?;
            stats.retried += 1;
        }
        Ok(())
    }

    async fn decide(
        &self,
        connection: &Connection,
        event: &InboxEvent,
    ) -> Result<Decision, ApplyError> {
        let envelope = match envelope::parse_plaintext(&event.payload) {
            Ok(e) => e,
            Err(e) => return Ok(Decision::Ignore(format!("stored payload unreadable: {e}"))),
        };
        let at = event.created_at.unwrap_or(event.received_at);
        let cx = EventContext {
            engine: &self.engine,
            connection,
            client: self.engine.client(connection)?,
            at,
        };
        match envelope {
            Envelope::UrlVerification { .. } => Ok(Decision::Ignore("a URL check".into())),
            Envelope::V2(v2) => cx.v2(v2.event).await,
            Envelope::V1(v1) => cx.v1(v1.event.event).await,
        }
    }
}

struct EventContext<'a> {
    engine: &'a Arc<Engine>,
    connection: &'a Connection,
    client: FeishuClient,
    /// The event's `create_time`.
    at: Millis,
}

/// Resolves Feishu ids through a map filled before merging.
#[derive(Default)]
struct MapResolver {
    users: HashMap<String, UserId>,
    departments: HashMap<String, DepartmentId>,
    groups: HashMap<String, GroupId>,
}

impl Resolve for MapResolver {
    fn user(&self, open_id: &str) -> Option<UserId> {
        self.users.get(open_id).cloned()
    }
    fn department(&self, od: &str) -> Option<DepartmentId> {
        self.departments.get(od).cloned()
    }
    fn group(&self, id: &str) -> Option<GroupId> {
        self.groups.get(id).cloned()
    }
}

impl EventContext<'_> {
    fn store(&self) -> &Arc<dyn crate::store::DirectoryStore> {
        self.engine.store()
    }

    async fn v2(&self, event: ContactEvent) -> Result<Decision, ApplyError> {
        match event {
            ContactEvent::UserCreated { object } => self.upsert_user(&object, true).await,
            ContactEvent::UserUpdated { object, .. } => self.upsert_user(&object, false).await,
            ContactEvent::UserDeleted { object, old_object } => {
                let open_id = object.open_id.or(old_object.open_id).unwrap_or_default();
                self.user_left(&open_id).await
            }
            ContactEvent::DepartmentCreated { object }
            | ContactEvent::DepartmentUpdated { object, .. } => {
                // Department events leave out fields the API has (i18n names): read it again,
                // and fall back to the payload when it is gone or unreadable.
                let od = object.open_department_id.clone().unwrap_or_default();
                if od.is_empty() {
                    return self.upsert_department(&object).await;
                }
                let current = match self.client.department(&od).await {
                    Ok(d) => d,
                    Err(FeishuError::DepartmentOutOfScope { .. })
                    | Err(FeishuError::Api { .. }) => object,
                    Err(e) => return Err(e.into()),
                };
                self.upsert_department(&current).await
            }
            ContactEvent::DepartmentDeleted { object, old_object } => {
                let od = object
                    .open_department_id
                    .or(old_object.open_department_id)
                    .unwrap_or_default();
                self.department_deleted(&od).await
            }
            ContactEvent::ScopeUpdated { .. } => Ok(Decision::Reconcile),
            ContactEvent::UserGroupCreated { object }
            | ContactEvent::UserGroupUpdated { object, .. }
            | ContactEvent::UserGroupMemberChanged { object } => {
                self.reread_group(object.user_group_id.as_deref().unwrap_or_default())
                    .await
            }
            ContactEvent::UserGroupDeleted { object } => {
                self.group_deleted(object.user_group_id.as_deref().unwrap_or_default())
                    .await
            }
            ContactEvent::CustomAttrUpdated { .. } | ContactEvent::EmployeeTypeEnum { .. } => Ok(
                Decision::Ignore("not a change of users, departments or groups".into()),
            ),
            ContactEvent::Unrecognized {
                event_type, reason, ..
            } => Ok(Decision::Ignore(match reason {
                UnrecognizedReason::UnknownType => {
                    format!("event type {event_type} is not one orgsync mirrors")
                }
                UnrecognizedReason::BadPayload(why) => {
                    format!("{event_type} payload not understood: {why}")
                }
            })),
        }
    }

    async fn v1(&self, event: LegacyEvent) -> Result<Decision, ApplyError> {
        match event {
            LegacyEvent::UserAdd(u)
            | LegacyEvent::UserUpdate(u)
            | LegacyEvent::UserStatusChange { user: u, .. } => {
                let open_id = u.open_id.unwrap_or_default();
                self.reread_user(&open_id).await
            }
            LegacyEvent::UserLeave(u) => self.user_left(&u.open_id.unwrap_or_default()).await,
            LegacyEvent::DeptAdd { open_department_id }
            | LegacyEvent::DeptUpdate { open_department_id } => {
                let od = open_department_id.unwrap_or_default();
                if od.is_empty() {
                    return Ok(Decision::Ignore("no open_department_id".into()));
                }
                match self.client.department(&od).await {
                    Ok(d) => self.upsert_department(&d).await,
                    Err(FeishuError::DepartmentOutOfScope { .. }) => Ok(Decision::Ignore(format!(
                        "department {od} is outside the contact scope"
                    ))),
                    Err(e) if e.is_not_found() => Ok(gone("department", &od, &e)),
                    Err(e) => Err(e.into()),
                }
            }
            LegacyEvent::DeptDelete { open_department_id } => {
                self.department_deleted(&open_department_id.unwrap_or_default())
                    .await
            }
            LegacyEvent::ContactScopeChange => Ok(Decision::Reconcile),
            LegacyEvent::Unrecognized { event_type, .. } => Ok(Decision::Ignore(format!(
                "1.0 event type {event_type} is not one orgsync mirrors"
            ))),
        }
    }

    /// The ordering guard for one object: `Some(reason)` when the event must be ignored.
    async fn guard(
        &self,
        kind: ObjectKind,
        external_id: &str,
        creation: bool,
    ) -> Result<Option<String>, ApplyError> {
        let key = object_key(kind, external_id);
        let marks = self
            .store()
            .watermarks(&self.connection.id, std::slice::from_ref(&key))
            .await?;
        let Some(mark) = marks.get(&key) else {
            return Ok(None);
        };
        if self.at < mark.event_time {
            return Ok(Some(format!(
                "older than the state already applied ({} < {})",
                self.at, mark.event_time
            )));
        }
        if mark.deleted && !creation {
            return Ok(Some(
                "the object was deleted by a newer event; a late update must not resurrect it"
                    .into(),
            ));
        }
        Ok(None)
    }

    fn watermark(&self, kind: ObjectKind, external_id: &str, deleted: bool) -> Watermark {
        Watermark {
            connection_id: self.connection.id.clone(),
            object_key: object_key(kind, external_id),
            event_time: self.at,
            deleted,
        }
    }

    async fn existing(
        &self,
        kind: ObjectKind,
        external_id: &str,
    ) -> Result<Option<ExternalRef>, ApplyError> {
        Ok(self
            .store()
            .find_external(&self.connection.id, kind, external_id)
            .await?)
    }

    async fn reread_user(&self, open_id: &str) -> Result<Decision, ApplyError> {
        if open_id.is_empty() {
            return Ok(Decision::Ignore("no open_id".into()));
        }
        match self.client.user(open_id).await {
            Ok(user) if user.is_resigned() == Some(true) => self.user_left(open_id).await,
            Ok(user) => self.upsert_user(&user, false).await,
            Err(FeishuError::UserOutOfScope { .. }) => Ok(Decision::Ignore(format!(
                "user {open_id} is outside the contact scope; the next reconciliation decides"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    async fn upsert_user(&self, feishu: &fs::User, creation: bool) -> Result<Decision, ApplyError> {
        let Some(open_id) = feishu.open_id.clone().filter(|s| !s.is_empty()) else {
            return Ok(Decision::Ignore("user event without open_id".into()));
        };
        if let Some(reason) = self.guard(ObjectKind::User, &open_id, creation).await? {
            return Ok(Decision::Ignore(reason));
        }
        if feishu.is_resigned() == Some(true) {
            return self.user_left(&open_id).await;
        }
        let pool = &self.connection.pool_id;
        let existing_ref = self.existing(ObjectKind::User, &open_id).await?;
        let existing = match &existing_ref {
            Some(r) => {
                self.store()
                    .get_user(pool, &UserId::from(r.object_id.as_str()))
                    .await?
            }
            None => None,
        };
        let mut writes = Vec::new();
        let mut resolver = MapResolver::default();
        for od in merge::stated_departments(feishu).unwrap_or_default() {
            if od != ROOT {
                self.ensure_department(od, &mut resolver, &mut writes, 0)
                    .await?;
            }
        }
        if let Some(manager) = feishu.leader_user_id.as_deref().filter(|m| !m.is_empty())
            && let Some(r) = self.existing(ObjectKind::User, manager).await?
        {
            resolver
                .users
                .insert(manager.to_owned(), UserId::from(r.object_id.as_str()));
        }
        let merged = merge_user(
            existing.as_ref(),
            feishu,
            Listing::NONE,
            &resolver,
            pool,
            UserId::generate(),
            now_ms(),
        );
        let user = merged.object;
        let change = match &existing {
            None => Some(ChangeKind::UserCreated),
            Some(old) => user_change_kind(old, &user),
        };
        let mut note = match (&existing, change) {
            (None, _) => "user created".to_owned(),
            (Some(_), None) => "no visible change".to_owned(),
            (Some(old), Some(_)) => format!(
                "changed: {}",
                merge::describe(&merge::user_changes(old, &user))
            ),
        };
        if !merged.unresolved.is_empty() {
            note.push_str(&format!(
                "; unknown references dropped: {}",
                merge::describe(&merged.unresolved)
            ));
        }
        let new_ref = merge_ref(
            existing_ref.as_ref(),
            &self.connection.id,
            ObjectKind::User,
            &open_id,
            feishu.union_id.as_deref(),
            feishu.user_id.as_deref(),
            user.id.as_str(),
        );
        if let Some(change) = change {
            writes.push(Write::PutUser {
                expected_version: Some(existing.as_ref().map_or(0, |u| u.version)),
                user,
                change,
            });
        }
        if existing_ref.as_ref() != Some(&new_ref) {
            writes.push(Write::PutExternalRef(new_ref));
        }
        Ok(Decision::Apply {
            writes,
            watermarks: vec![self.watermark(ObjectKind::User, &open_id, false)],
            note,
        })
    }

    /// A leaver: disabled and detached at once, kept as a record.
    async fn user_left(&self, open_id: &str) -> Result<Decision, ApplyError> {
        if open_id.is_empty() {
            return Ok(Decision::Ignore("leaver event without open_id".into()));
        }
        if let Some(reason) = self.guard(ObjectKind::User, open_id, false).await? {
            return Ok(Decision::Ignore(reason));
        }
        let Some(r) = self.existing(ObjectKind::User, open_id).await? else {
            return Ok(Decision::Apply {
                writes: Vec::new(),
                watermarks: vec![self.watermark(ObjectKind::User, open_id, true)],
                note: "leaver was never synced".into(),
            });
        };
        let Some(old) = self
            .store()
            .get_user(
                &self.connection.pool_id,
                &UserId::from(r.object_id.as_str()),
            )
            .await?
        else {
            return Ok(Decision::Ignore("the mapped user no longer exists".into()));
        };
        let mut user = old.clone();
        user.status = UserStatus::Resigned;
        merge::detach(&mut user);
        let writes = if user == old {
            Vec::new()
        } else {
            vec![Write::PutUser {
                expected_version: Some(old.version),
                user,
                change: ChangeKind::UserDisabled,
            }]
        };
        Ok(Decision::Apply {
            writes,
            watermarks: vec![self.watermark(ObjectKind::User, open_id, true)],
            note: "leaver disabled and detached".into(),
        })
    }

    /// Makes sure a department (and its parents) exist, fetching unknown ones from the API.
    async fn ensure_department(
        &self,
        od: &str,
        resolver: &mut MapResolver,
        writes: &mut Vec<Write>,
        depth: usize,
    ) -> Result<(), ApplyError> {
        if resolver.departments.contains_key(od) {
            return Ok(());
        }
        if let Some(r) = self.existing(ObjectKind::Department, od).await? {
            resolver
                .departments
                .insert(od.to_owned(), DepartmentId::from(r.object_id.as_str()));
            return Ok(());
        }
        if depth > 64 {
            return Err(ApplyError::Other(format!(
                "department {od}: ancestry deeper than 64"
            )));
        }
        let feishu = match self.client.department(od).await {
            Ok(d) => d,
            // Outside the scope, or deleted since: the membership is dropped (reported by the
            // merge).
            Err(FeishuError::DepartmentOutOfScope { .. }) => return Ok(()),
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if let Some(parent) = feishu
            .parent_department_id
            .as_deref()
            .filter(|p| *p != ROOT && !p.is_empty())
        {
            Box::pin(self.ensure_department(parent, resolver, writes, depth + 1)).await?;
        }
        let merged = merge_department(
            None,
            &feishu,
            resolver,
            &self.connection.pool_id,
            DepartmentId::generate(),
            now_ms(),
        );
        let department = merged.object;
        resolver
            .departments
            .insert(od.to_owned(), department.id.clone());
        writes.push(Write::PutExternalRef(merge_ref(
            None,
            &self.connection.id,
            ObjectKind::Department,
            od,
            None,
            feishu.department_id.as_deref(),
            department.id.as_str(),
        )));
        writes.push(Write::PutDepartment {
            department,
            change: ChangeKind::DepartmentCreated,
            expected_version: Some(0),
        });
        Ok(())
    }

    async fn upsert_department(&self, feishu: &fs::Department) -> Result<Decision, ApplyError> {
        let Some(od) = feishu.open_department_id.clone().filter(|s| !s.is_empty()) else {
            return Ok(Decision::Ignore(
                "department event without open_department_id".into(),
            ));
        };
        if let Some(reason) = self.guard(ObjectKind::Department, &od, false).await? {
            return Ok(Decision::Ignore(reason));
        }
        let pool = &self.connection.pool_id;
        let existing_ref = self.existing(ObjectKind::Department, &od).await?;
        let existing = match &existing_ref {
            Some(r) => {
                self.store()
                    .get_department(pool, &DepartmentId::from(r.object_id.as_str()))
                    .await?
            }
            None => None,
        };
        let mut writes = Vec::new();
        let mut resolver = MapResolver::default();
        if let Some(parent) = feishu
            .parent_department_id
            .as_deref()
            .filter(|p| *p != ROOT && !p.is_empty())
        {
            self.ensure_department(parent, &mut resolver, &mut writes, 1)
                .await?;
        }
        for leader in feishu
            .leaders
            .iter()
            .flatten()
            .filter_map(|l| l.leader_id.as_deref())
            .chain(feishu.leader_user_id.as_deref())
        {
            if let Some(r) = self.existing(ObjectKind::User, leader).await? {
                resolver
                    .users
                    .insert(leader.to_owned(), UserId::from(r.object_id.as_str()));
            }
        }
        let merged = merge_department(
            existing.as_ref(),
            feishu,
            &resolver,
            pool,
            DepartmentId::generate(),
            now_ms(),
        );
        let mut department = merged.object;
        if department.deleted_at.is_some() && !feishu.is_deleted() {
            department.deleted_at = None;
        }
        let change = match &existing {
            None => Some(ChangeKind::DepartmentCreated),
            Some(old) => {
                let fields = merge::department_changes(old, &department);
                if fields.is_empty() {
                    None
                } else if fields.contains(&merge::DepartmentField::Parent) {
                    Some(ChangeKind::DepartmentMoved)
                } else if fields == [merge::DepartmentField::Leaders] {
                    Some(ChangeKind::DepartmentLeaderChanged)
                } else {
                    Some(ChangeKind::DepartmentUpdated)
                }
            }
        };
        let note = match (&existing, change) {
            (None, _) => "department created".to_owned(),
            (Some(_), None) => "no visible change".to_owned(),
            (Some(old), Some(_)) => format!(
                "changed: {}",
                merge::describe(&merge::department_changes(old, &department))
            ),
        };
        let new_ref = merge_ref(
            existing_ref.as_ref(),
            &self.connection.id,
            ObjectKind::Department,
            &od,
            None,
            feishu.department_id.as_deref(),
            department.id.as_str(),
        );
        if existing_ref.as_ref() != Some(&new_ref) {
            writes.push(Write::PutExternalRef(new_ref));
        }
        if let Some(change) = change {
            writes.push(Write::PutDepartment {
                expected_version: Some(existing.as_ref().map_or(0, |d| d.version)),
                department,
                change,
            });
        }
        Ok(Decision::Apply {
            writes,
            watermarks: vec![self.watermark(ObjectKind::Department, &od, false)],
            note,
        })
    }

    async fn department_deleted(&self, od: &str) -> Result<Decision, ApplyError> {
        if od.is_empty() {
            return Ok(Decision::Ignore(
                "department deletion without open_department_id".into(),
            ));
        }
        if let Some(reason) = self.guard(ObjectKind::Department, od, false).await? {
            return Ok(Decision::Ignore(reason));
        }
        let pool = &self.connection.pool_id;
        let Some(r) = self.existing(ObjectKind::Department, od).await? else {
            return Ok(Decision::Apply {
                writes: Vec::new(),
                watermarks: vec![self.watermark(ObjectKind::Department, od, true)],
                note: "deleted department was never synced".into(),
            });
        };
        let id = DepartmentId::from(r.object_id.as_str());
        let Some(old) = self.store().get_department(pool, &id).await? else {
            return Ok(Decision::Ignore(
                "the mapped department no longer exists".into(),
            ));
        };
        let mut writes = Vec::new();
        // Feishu only deletes empty departments, but members we still hold lose it now.
        let query = crate::store::UserQuery {
            department_id: Some(id.clone()),
            ..Default::default()
        };
        let members = self
            .store()
            .list_users(
                pool,
                &query,
                crate::store::PageRequest {
                    offset: 0,
                    limit: 10_000,
                },
            )
            .await?;
        for member in members {
            let mut user = member.clone();
            user.departments.retain(|m| m.department_id != id);
            if user.departments.first().is_some_and(|m| !m.primary)
                && !user.departments.iter().any(|m| m.primary)
                && let Some(first) = user.departments.first_mut()
            {
                first.primary = true;
            }
            writes.push(Write::PutUser {
                expected_version: Some(member.version),
                user,
                change: ChangeKind::UserDepartmentsChanged,
            });
        }
        if old.deleted_at.is_none() {
            writes.push(Write::PutDepartment {
                expected_version: Some(old.version),
                department: tombstone_department(&old, now_ms()),
                change: ChangeKind::DepartmentDeleted,
            });
        }
        Ok(Decision::Apply {
            writes,
            watermarks: vec![self.watermark(ObjectKind::Department, od, true)],
            note: "department deleted (soft)".into(),
        })
    }

    /// Group events carry no members: the group is read again from the API.
    async fn reread_group(&self, group_id: &str) -> Result<Decision, ApplyError> {
        if group_id.is_empty() {
            return Ok(Decision::Ignore("group event without user_group_id".into()));
        }
        if let Some(reason) = self.guard(ObjectKind::Group, group_id, false).await? {
            return Ok(Decision::Ignore(reason));
        }
        let group = match self.client.group(group_id).await {
            Ok(g) => g,
            Err(FeishuError::GroupOutOfScope { .. }) => {
                return Ok(Decision::Ignore(format!(
                    "group {group_id} is outside the contact scope"
                )));
            }
            Err(e) if e.is_not_found() => return Ok(gone("group", group_id, &e)),
            Err(e) => return Err(e.into()),
        };
        let members = |kind| {
            self.client
                .group_members(group_id, kind, MemberIdType::OpenId)
                .try_collect::<Vec<fs::GroupMember>>()
        };
        let (users, departments) = match (
            members(MemberType::User).await,
            members(MemberType::Department).await,
        ) {
            (Ok(users), Ok(departments)) => (users, departments),
            (Err(e), _) | (_, Err(e)) if e.is_not_found() => {
                return Ok(gone("group", group_id, &e));
            }
            (Err(e), _) | (_, Err(e)) => return Err(e.into()),
        };
        let snapshot = SnapshotGroup {
            group,
            users: users.into_iter().filter_map(|m| m.member_id).collect(),
            departments: departments
                .into_iter()
                .filter_map(|m| m.member_id)
                .collect(),
            members_complete: true,
        };
        let mut resolver = MapResolver::default();
        for open_id in &snapshot.users {
            if let Some(r) = self.existing(ObjectKind::User, open_id).await? {
                resolver
                    .users
                    .insert(open_id.clone(), UserId::from(r.object_id.as_str()));
            }
        }
        for od in &snapshot.departments {
            if let Some(r) = self.existing(ObjectKind::Department, od).await? {
                resolver
                    .departments
                    .insert(od.clone(), DepartmentId::from(r.object_id.as_str()));
            }
        }
        let pool = &self.connection.pool_id;
        let existing_ref = self.existing(ObjectKind::Group, group_id).await?;
        let existing = match &existing_ref {
            Some(r) => {
                self.store()
                    .get_group(pool, &GroupId::from(r.object_id.as_str()))
                    .await?
            }
            None => None,
        };
        let merged = merge_group(
            existing.as_ref(),
            &snapshot,
            &resolver,
            pool,
            GroupId::generate(),
            now_ms(),
        );
        let mut group = merged.object;
        group.deleted_at = None;
        let change = match &existing {
            None => Some(ChangeKind::GroupCreated),
            Some(old) => {
                let fields = merge::group_changes(old, &group);
                if fields.is_empty() {
                    None
                } else if fields == [merge::GroupField::Members] {
                    Some(ChangeKind::GroupMembersChanged)
                } else {
                    Some(ChangeKind::GroupUpdated)
                }
            }
        };
        let mut writes = Vec::new();
        let new_ref = merge_ref(
            existing_ref.as_ref(),
            &self.connection.id,
            ObjectKind::Group,
            group_id,
            None,
            snapshot.group.group_id.as_deref(),
            group.id.as_str(),
        );
        if existing_ref.as_ref() != Some(&new_ref) {
            writes.push(Write::PutExternalRef(new_ref));
        }
        if let Some(change) = change {
            writes.push(Write::PutGroup {
                expected_version: Some(existing.as_ref().map_or(0, |g| g.version)),
                group,
                change,
            });
        }
        Ok(Decision::Apply {
            writes,
            watermarks: vec![self.watermark(ObjectKind::Group, group_id, false)],
            note: "group re-read from the API".into(),
        })
    }

    async fn group_deleted(&self, group_id: &str) -> Result<Decision, ApplyError> {
        if group_id.is_empty() {
            return Ok(Decision::Ignore(
                "group deletion without user_group_id".into(),
            ));
        }
        if let Some(reason) = self.guard(ObjectKind::Group, group_id, false).await? {
            return Ok(Decision::Ignore(reason));
        }
        let mut writes = Vec::new();
        if let Some(r) = self.existing(ObjectKind::Group, group_id).await?
            && let Some(old) = self
                .store()
                .get_group(
                    &self.connection.pool_id,
                    &GroupId::from(r.object_id.as_str()),
                )
                .await?
            && old.deleted_at.is_none()
        {
            writes.push(Write::PutGroup {
                expected_version: Some(old.version),
                group: tombstone_group(&old, now_ms()),
                change: ChangeKind::GroupDeleted,
            });
        }
        Ok(Decision::Apply {
            writes,
            watermarks: vec![self.watermark(ObjectKind::Group, group_id, true)],
            note: "group deleted (soft)".into(),
        })
    }
}

/// A department or group Feishu no longer knows when the worker reads it again: deleted
/// after the event was sent. Its deletion event (or the next reconciliation) removes it, so
/// the event is ignored rather than parked. (Users are never removed from Feishu — a leaver
/// stays readable as resigned — so an unknown user is parked: docs/event-failures.md.)
fn gone(kind: &str, id: &str, error: &FeishuError) -> Decision {
    Decision::Ignore(format!(
        "{kind} {id} no longer exists in Feishu{}: nothing to apply; its deletion event or the \
         next reconciliation removes it",
        error
            .code()
            .map(|c| format!(" (code {c})"))
            .unwrap_or_default()
    ))
}

/// The change-log kind of a user update, by what changed.
/// `orgsync_events_applied_total` and `orgsync_apply_lag_seconds` (Feishu's create_time to
/// now); no-ops unless the binary installed a metrics recorder.
fn record_applied(event: &InboxEvent) {
    metrics::counter!("orgsync_events_applied_total").increment(1);
    if let Some(created) = event.created_at {
        let lag = (now_ms() - created).max(0) as f64 / 1000.0;
        metrics::histogram!("orgsync_apply_lag_seconds").record(lag);
    }
}

fn user_change_kind(old: &User, new: &User) -> Option<ChangeKind> {
    let fields = merge::user_changes(old, new);
    if fields.is_empty() {
        return None;
    }
    Some(
        if fields.contains(&UserField::Status) && !new.status.is_enabled() {
            ChangeKind::UserDisabled
        } else if fields
            .iter()
            .all(|f| matches!(f, UserField::Departments | UserField::Root))
        {
            ChangeKind::UserDepartmentsChanged
        } else {
            ChangeKind::UserUpdated
        },
    )
}
