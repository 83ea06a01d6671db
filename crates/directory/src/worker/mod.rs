//! The event worker: applies committed inbox events per connection, in `create_time` order,
//! exactly once, in batches (docs/write-path.md): a round claims up to `batch` due events of a
//! connection, reads from Feishu what their payloads are not enough for (1.0 events and group
//! events are re-read, departments a user names that the store lacks are fetched, parents
//! first), loads what they touch in bulk, builds each event's steps with the planner's step
//! builder against the state the earlier events of the batch leave, and commits the objects,
//! change log, watermarks and inbox outcomes in one transaction. A batch that fails is applied
//! again event by event, so one bad event fails alone.
//!
//! The per-object ordering guard holds within a batch as across batches: an event older than
//! the object's newest applied event is ignored, and nothing but a creation may revive an
//! object a newer event deleted. A scope change starts a reconciliation. A failing event is
//! retried with backoff, then parked for an admin; one that fails with a permanent Feishu error
//! (an unknown object, a missing permission: docs/event-failures.md) is parked at once. It
//! never blocks other events.

mod batch;
mod intent;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use feishu::client::{FeishuClient, FeishuError};
use futures::StreamExt;

use crate::engine::Engine;
use crate::ids::{ConnectionId, new_id, now_ms};
use crate::model::{Connection, ExternalRef, JobKind, JobTrigger, ObjectKind};
use crate::store::{DueCursor, InboxEvent, InboxOutcome, StoreError};

use batch::{Built, Fetched, Item, Outcome, Overlay};
use intent::{Intent, Resolved, intent_of, resolve};

/// How long one round keeps applying batches of one connection.
const ROUND_TIME: Duration = Duration::from_secs(2);

/// Feishu reads in flight while resolving a batch.
const FEISHU_READS: usize = 8;

/// A batch read, resolved and built, waiting to be committed.
struct Prepared {
    connection: Connection,
    items: Vec<Item>,
    fetched: Fetched,
    /// The batch's writes and outcomes; `None` when no event was left to build.
    built: Option<Built>,
    /// The state the batch leaves once committed as built.
    overlay: Option<Overlay>,
    /// Events read: a full batch means more may be due.
    read: u64,
    /// The last event read: the next batch starts after it.
    last: Option<DueCursor>,
    /// A scope change that ends the round.
    reconcile: Option<InboxEvent>,
}

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Events applied per round per connection (one transaction).
    pub batch: u64,
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
            batch: 500,
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
        // A batch's Feishu re-reads are paced by Feishu's limits and may outlast the lease:
        // renewed while the round runs, so that no other instance takes the connection.
        let renew = async {
            let every = self.config.connection_lease / 3;
            loop {
                tokio::time::sleep(every).await;
                let held = store
                    .try_acquire_event_lease(
                        connection_id,
                        &self.id,
                        self.config.connection_lease,
                        now_ms(),
                    )
                    .await;
                if !matches!(held, Ok(true)) {
                    tracing::warn!(connection = %connection_id, "could not renew the event lease during a long round");
                }
            }
        };
        // Batch after batch while the lease is held: a backlog drains without a lease taken and
        // given back per batch. A round ends at a batch that was not full (nothing more is
        // due), at a scope change, or after ROUND_TIME, so that other connections get their
        // turn. While a batch commits, the next one is read, resolved and built against the
        // state the committing batch leaves (docs/write-path.md): it is used only if that
        // batch commits as built.
        let batches = async {
            let started = std::time::Instant::now();
            let mut ready: Option<Prepared> = None;
            loop {
                let current = match ready.take() {
                    Some(p) => p,
                    None => match self.prepare(connection_id, None, &mut stats).await? {
                        Some(p) => p,
                        None => return Ok(None),
                    },
                };
                let Prepared {
                    connection,
                    items,
                    fetched,
                    built,
                    overlay,
                    read,
                    last,
                    reconcile,
                } = current;
                let more = reconcile.is_none()
                    && read >= self.config.batch
                    && started.elapsed() < ROUND_TIME;
                let carried = overlay.filter(|_| more).zip(last);
                let mut ahead = RoundStats::default();
                let (committed, next) = futures::join!(
                    self.commit_built(&connection, &items, &fetched, built, &mut stats),
                    async {
                        match carried {
                            Some(carried) => {
                                self.prepare(connection_id, Some(carried), &mut ahead).await
                            }
                            None => Ok(None),
                        }
                    },
                );
                stats.add(ahead);
                let committed = committed?;
                let next = next?;
                if !more {
                    return Ok(reconcile);
                }
                ready = next.filter(|_| committed);
            }
        };
        let result = tokio::select! {
            result = batches => result,
            () = renew => unreachable!("the renewal never ends"),
        };
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

    /// Reads the next batch of due events (after `carried`'s cursor, when given), reads from
    /// Feishu what their payloads are not enough for, loads what they touch and builds the
    /// batch's writes: against `carried`'s overlay, when given (the state the batch before
    /// leaves). `None`: nothing is due, or the batch deletes a department and must be
    /// prepared again once the batch before is committed.
    async fn prepare(
        &self,
        connection_id: &ConnectionId,
        carried: Option<(Overlay, DueCursor)>,
        stats: &mut RoundStats,
    ) -> Result<Option<Prepared>, StoreError> {
        let store = self.engine.store().clone();
        let (carried, after) = match carried {
            Some((overlay, after)) => (Some(overlay), Some(after)),
            None => (None, None),
        };
        let (connection, events) = futures::try_join!(
            store.get_connection(connection_id),
            store.inbox_due(connection_id, self.config.batch, now_ms(), after),
        )?;
        if events.is_empty() {
            return Ok(None);
        }
        let Some(connection) = connection else {
            // Deleted meanwhile, its events with it.
            return Ok(None);
        };
        let read = events.len() as u64;
        let last = events.last().map(DueCursor::of);
        let mut prepared = Prepared {
            connection,
            items: Vec::new(),
            fetched: Fetched::default(),
            built: None,
            overlay: None,
            read,
            last,
            reconcile: None,
        };

        // A scope change ends the batch: the reconciliation must start after it, and the
        // events after it wait for that.
        let mut intents = Vec::with_capacity(events.len());
        let mut reconcile = None;
        let mut iter = events.into_iter();
        for event in iter.by_ref() {
            match intent_of(&event.payload) {
                Intent::Reconcile => {
                    reconcile = Some(event);
                    break;
                }
                intent => intents.push((event, intent)),
            }
        }
        // Checked before anything is read from Feishu or written, which preparing it again
        // after the commit would repeat.
        if carried.is_some()
            && intents
                .iter()
                .any(|(_, intent)| matches!(intent, Intent::DepartmentDeleted { .. }))
        {
            return Ok(None);
        }
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

        prepared.reconcile = reconcile;
        let client = match self.engine.client(&prepared.connection) {
            Ok(c) => c,
            Err(e) => {
                let error = e.to_string();
                for (event, _) in intents {
                    self.fail(&event, &error, stats).await?;
                }
                return Ok(Some(prepared));
            }
        };
        // Feishu reads the payloads are not enough for, a few at a time, in order.
        let resolved: Vec<(InboxEvent, Result<Resolved, FeishuError>)> =
            futures::stream::iter(intents)
                .map(|(event, intent)| {
                    let client = &client;
                    async move { (event, resolve(intent, client).await) }
                })
                .buffered(FEISHU_READS)
                .collect()
                .await;
        let mut items = Vec::with_capacity(resolved.len());
        for (event, result) in resolved {
            match result {
                Ok(resolved) => items.push(Item {
                    at: event.created_at.unwrap_or(event.received_at),
                    event,
                    resolved,
                }),
                Err(e) => match e.is_permanent() {
                    true => self.park(&event, &e, stats).await?,
                    false => self.fail(&event, &format!("Feishu: {e}"), stats).await?,
                },
            }
        }
        let fetched = self
            .fetch_departments(&prepared.connection, &client, &items)
            .await?;
        if !items.is_empty() {
            let refs: Vec<&Item> = items.iter().collect();
            let mut overlay = Overlay::load(
                store.as_ref(),
                &prepared.connection.id,
                &prepared.connection.pool_id,
                &refs,
                &fetched,
                carried,
            )
            .await?;
            let built = batch::build(&refs, &mut overlay, &fetched, &mut || new_id(), now_ms());
            prepared.built = Some(built);
            prepared.overlay = Some(overlay);
        }
        prepared.items = items;
        prepared.fetched = fetched;
        Ok(Some(prepared))
    }

    /// Reads from Feishu the departments the items name that the store does not have, with
    /// their ancestors.
    async fn fetch_departments(
        &self,
        connection: &Connection,
        client: &FeishuClient,
        items: &[Item],
    ) -> Result<Fetched, StoreError> {
        let store = self.engine.store();
        let items: Vec<&Item> = items.iter().collect();
        let mut fetched = Fetched::default();
        let mut refs: HashMap<(ObjectKind, String), ExternalRef> = HashMap::new();
        let mut asked: HashSet<String> = HashSet::new();
        for _ in 0..=batch::MAX_DEPTH {
            // The departments named so far that were never looked up in the store.
            let named: Vec<String> = batch::Named::of(&items, &fetched)
                .departments
                .into_iter()
                .filter(|od| asked.insert(od.clone()))
                .collect();
            if !named.is_empty() {
                for (od, r) in store
                    .find_externals(&connection.id, ObjectKind::Department, &named)
                    .await?
                {
                    refs.insert((ObjectKind::Department, od), r);
                }
            }
            let missing = batch::departments_to_fetch(&items, &refs, &fetched);
            if missing.is_empty() {
                break;
            }
            for od in missing {
                let answer = client.department(&od).await;
                batch::record_fetch(&mut fetched, od, answer);
            }
        }
        Ok(fetched)
    }

    /// Commits a prepared batch as built. `Ok(true)`: it was committed as built (the state
    /// its overlay holds is the store's); `Ok(false)`: it failed and its events were applied
    /// one by one instead.
    async fn commit_built(
        &self,
        connection: &Connection,
        items: &[Item],
        fetched: &Fetched,
        built: Option<Built>,
        stats: &mut RoundStats,
    ) -> Result<bool, StoreError> {
        let Some(built) = built else {
            return Ok(true);
        };
        let items: Vec<&Item> = items.iter().collect();
        match self.engine.apply(built.batch).await {
            Ok(_) => {
                self.record(&items, built.outcomes, stats).await?;
                Ok(true)
            }
            Err(e) if items.len() == 1 => {
                self.fail(&items[0].event, &e.to_string(), stats).await?;
                Ok(false)
            }
            Err(e) => {
                tracing::debug!(events = items.len(), error = %e, "event batch failed; applying its events one by one");
                for item in items {
                    self.commit_one(connection, item, fetched, stats).await?;
                }
                Ok(false)
            }
        }
    }

    /// Counts a committed batch's outcomes; reschedules the events whose steps could not be
    /// built.
    async fn record(
        &self,
        items: &[&Item],
        outcomes: Vec<Outcome>,
        stats: &mut RoundStats,
    ) -> Result<(), StoreError> {
        for (item, outcome) in items.iter().zip(outcomes) {
            match outcome {
                Outcome::Applied { .. } => {
                    stats.applied += 1;
                    record_applied(&item.event);
                }
                Outcome::Ignored { .. } => stats.ignored += 1,
                Outcome::Failed { error } => self.fail(&item.event, &error, stats).await?,
            }
        }
        Ok(())
    }

    /// Applies one event in its own transaction, loaded afresh (after its batch failed), so
    /// that a bad event fails alone.
    async fn commit_one(
        &self,
        connection: &Connection,
        item: &Item,
        fetched: &Fetched,
        stats: &mut RoundStats,
    ) -> Result<(), StoreError> {
        let store = self.engine.store();
        let items = [item];
        let mut overlay = Overlay::load(
            store.as_ref(),
            &connection.id,
            &connection.pool_id,
            &items,
            fetched,
            None,
        )
        .await?;
        let built = batch::build(&items, &mut overlay, fetched, &mut || new_id(), now_ms());
        match self.engine.apply(built.batch).await {
            Ok(_) => self.record(&items, built.outcomes, stats).await,
            Err(e) => self.fail(&item.event, &e.to_string(), stats).await,
        }
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
}

/// `orgsync_events_applied_total` and `orgsync_apply_lag_seconds` (Feishu's create_time to
/// now); no-ops unless the binary installed a metrics recorder.
fn record_applied(event: &InboxEvent) {
    metrics::counter!("orgsync_events_applied_total").increment(1);
    if let Some(created) = event.created_at {
        let lag = (now_ms() - created).max(0) as f64 / 1000.0;
        metrics::histogram!("orgsync_apply_lag_seconds").record(lag);
    }
}
