//! Import and reconciliation jobs: snapshot → plan → apply, with live progress, a verdict, a
//! per-object action log, parked deletions, and one job per connection at a time (a lease in
//! the store, so instances sharing PostgreSQL agree). Safe to kill at any point and to run
//! again: every batch is one transaction and the next run diffs against what was committed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use feishu::client::{BaseUrl, ClientConfig, FeishuClient, FeishuError, PacingConfig, RetryConfig};

mod ahead;
mod positions;
mod recent;
mod superseded;

use self::ahead::Ahead;
use self::recent::RecentWrites;
use self::superseded::{SUPERSEDED, Superseded};
use crate::fetch::{FetchError, FetchOptions, Pulled, fetch_snapshot};
use crate::ids::{ConnectionId, JobId, Millis, UserId, new_id, now_ms};
use crate::model::{
    ActionLogEntry, ActionResult, Connection, JobKind, JobProgress, JobState, JobTrigger,
    ObjectKind, ParkedDeletion, ParkedState, Provider, SyncAction, SyncJob, UserStatus, Verdict,
};
use crate::plan::{Plan, PlannedStep, plan};
use crate::secrets::{MasterKey, SecretError};
use crate::snapshot::object_key;
use crate::store::{
    ApplyBatch, ChangeSource, ConnectionState, DirectoryStore, ParkedFilter, RunningJobs,
    StoreError, Watermark,
};
use crate::webhooks::deliver::{Sender, WebhookConfig};

/// How the error of a job whose process stopped before it finished begins.
pub const INTERRUPTED: &str = "interrupted: the process stopped";

/// The error of such a job, with how it was found. What it committed stays (the next job
/// diffs against it), so the fix is to start it again.
fn interrupted(how: &str) -> String {
    format!("{INTERRUPTED} before the job finished ({how}); start the job again")
}

/// Steps a job applies from which the store refreshes its planner statistics at the end.
const STATISTICS_AFTER: u64 = 1_000;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Names this instance in leases (`{instance}/{job}`, `{instance}/worker-…`) and on its
    /// jobs. Stable across restarts of one installation (`orgsync serve` reads `instance_id`),
    /// so a restarted process recognises what its predecessor left running; distinct for
    /// every instance sharing a database. Never contains `/`.
    pub instance: String,
    /// `true` ignores every connection's pacing (`ConnectionSettings::pacing`): for tests,
    /// benchmarks and the demo against the emulator with its limits off.
    pub pacing_lifted: bool,
    pub retry: RetryConfig,
    pub request_timeout: Duration,
    pub fetch: FetchOptions,
    /// Writes per transaction when applying a plan. Each commit has a fixed cost (on SQLite
    /// about 11 ms: the WAL's sync), and each transaction re-reads what its writes touch. An
    /// import of 100,000 users on SQLite took 45.8 s with 300 and 33.1 s with 2,000 (the same
    /// build otherwise; BENCHMARKS.md has PostgreSQL's). A transaction of 2,000 writes holds
    /// SQLite's one writer for about 0.2 s, which an event arriving meanwhile waits for.
    pub apply_batch: usize,
    /// Users planned and applied together while the pull still runs (`engine::ahead`,
    /// docs/import-pipeline.md); 0 applies everything after the pull.
    pub ahead_chunk: usize,
    /// A job's lease; renewed at a third of it while the job runs.
    pub lease_ttl: Duration,
    /// How often live progress is written to the store.
    pub progress_interval: Duration,
    /// How long starting a job waits for the connection's job lease, which an admin
    /// operation may hold briefly (a running job is not waited for: `Busy`). The event worker
    /// has a lease of its own and runs beside jobs.
    pub lease_wait: Duration,
    /// Webhook deliveries (docs/webhooks.md).
    pub webhooks: WebhookConfig,
    /// `false` writes no feed events at all (every batch quiet). For benchmarks only, which
    /// measure what the feed costs the worker against the same run without it; no
    /// configuration key sets it.
    pub feed: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            instance: format!("orgsync-{}", &new_id()[..8]),
            pacing_lifted: false,
            retry: RetryConfig::default(),
            request_timeout: Duration::from_secs(10),
            fetch: FetchOptions::default(),
            apply_batch: 2_000,
            ahead_chunk: 2_000,
            lease_ttl: Duration::from_secs(60),
            progress_interval: Duration::from_millis(500),
            lease_wait: Duration::from_secs(5),
            webhooks: WebhookConfig::default(),
            feed: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("connection {0} not found")]
    UnknownConnection(ConnectionId),
    #[error("a sync job is already running for connection {0}; wait for it to finish")]
    Busy(ConnectionId),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secrets(#[from] SecretError),
    #[error(transparent)]
    Feishu(#[from] FeishuError),
}

/// The engine: owns the store handle, the master key and one Feishu client per connection
/// (so token caches and pacing are shared by everything that talks to one app).
pub struct Engine {
    store: Arc<dyn DirectoryStore>,
    master_key: MasterKey,
    config: EngineConfig,
    clients: Mutex<HashMap<ConnectionId, (String, FeishuClient)>>,
    /// Moves on after every write that appended feed events: what long-polling readers and
    /// webhook deliveries of this process wait on (other instances' writes are found by
    /// polling).
    feed: tokio::sync::watch::Sender<u64>,
    /// Makes webhook requests (the deliverer's and an admin's test).
    webhook_sender: Sender,
    /// What recent batches with feed events wrote, handed to the next change of each object
    /// as the state its feed compares with ([`crate::store::AsRead::written`]).
    recent: Mutex<RecentWrites>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("instance", &self.config.instance)
            .finish()
    }
}

impl Engine {
    pub fn new(
        store: Arc<dyn DirectoryStore>,
        master_key: MasterKey,
        config: EngineConfig,
    ) -> Arc<Self> {
        let webhook_sender = Sender::new(&config.webhooks);
        Arc::new(Self {
            store,
            master_key,
            config,
            clients: Mutex::new(HashMap::new()),
            recent: Mutex::new(RecentWrites::default()),
            feed: tokio::sync::watch::Sender::new(0),
            webhook_sender,
        })
    }

    pub fn store(&self) -> &Arc<dyn DirectoryStore> {
        &self.store
    }

    /// Every write of the directory goes through here (jobs, the event worker, admin
    /// decisions): one transaction in the store, which appends the change log and the feed,
    /// then a wake-up for whoever follows the feed. Returns how many feed events it appended.
    pub async fn apply(&self, mut batch: ApplyBatch) -> Result<u64, StoreError> {
        batch.quiet |= !self.config.feed;
        let quiet = batch.quiet;
        let pool = batch.pool_id.clone();
        if !quiet {
            batch.as_read.written = self.recent().take(&pool, &batch.writes);
        }
        let applied = self.store.apply(batch).await?;
        if !quiet {
            self.recent().keep(applied.changes);
        }
        if applied.feed_events > 0 {
            metrics::counter!("orgsync_feed_events_appended_total").increment(applied.feed_events);
            self.feed_appended();
        }
        Ok(applied.feed_events)
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, RecentWrites> {
        self.recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Wakes the feed's followers in this process.
    pub fn feed_appended(&self) {
        self.feed.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn webhook_sender(&self) -> &Sender {
        &self.webhook_sender
    }

    /// A receiver that changes after feed events were appended by this process.
    pub fn feed_watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.feed.subscribe()
    }

    pub fn master_key(&self) -> &MasterKey {
        &self.master_key
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The Feishu client of a connection (reused while its settings do not change).
    pub fn client(&self, connection: &Connection) -> Result<FeishuClient, EngineError> {
        let fingerprint = format!(
            "{:?}|{:?}|{}|{}|{:?}",
            connection.provider,
            connection.base_url,
            connection.app_id,
            connection.app_secret.0,
            connection.settings.pacing
        );
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((fp, client)) = clients.get(&connection.id)
            && *fp == fingerprint
        {
            return Ok(client.clone());
        }
        let mut config = self.client_config(connection)?;
        config.retry = self.config.retry.clone();
        config.request_timeout = self.config.request_timeout;
        let client = FeishuClient::new(config)?;
        clients.insert(connection.id.clone(), (fingerprint, client.clone()));
        Ok(client)
    }

    /// A client of its own for a quick look at a connection's credentials: no retries and
    /// every request bounded by `timeout`, so an unreachable Feishu answers within it.
    pub fn probe_client(
        &self,
        connection: &Connection,
        timeout: Duration,
    ) -> Result<FeishuClient, EngineError> {
        let mut config = self.client_config(connection)?;
        config.retry = RetryConfig::none();
        config.request_timeout = timeout;
        config.connect_timeout = config.connect_timeout.min(timeout);
        Ok(FeishuClient::new(config)?)
    }

    fn client_config(&self, connection: &Connection) -> Result<ClientConfig, EngineError> {
        let base = match (&connection.base_url, connection.provider) {
            (Some(url), _) => BaseUrl::parse(url)?,
            (None, Provider::Feishu) => BaseUrl::Feishu,
            (None, Provider::Lark) => BaseUrl::Lark,
        };
        let secret = self.master_key.open(&connection.app_secret)?;
        let mut config = ClientConfig::new(base, connection.app_id.clone(), secret);
        let pacing = connection.settings.pacing;
        config.pacing = if self.config.pacing_lifted {
            PacingConfig::disabled()
        } else {
            PacingConfig::new(pacing.per_second, pacing.per_minute)
        };
        Ok(config)
    }

    /// Forgets a connection's client (after it was edited or deleted).
    pub fn forget_client(&self, connection_id: &ConnectionId) {
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(connection_id);
    }

    /// Takes the connection's job lease and starts a job in the background. Returns the job
    /// id at once; `Busy` when another job of the connection runs (on any instance).
    pub async fn start_job(
        self: &Arc<Self>,
        connection_id: &ConnectionId,
        kind: JobKind,
        trigger: JobTrigger,
    ) -> Result<JobId, EngineError> {
        let (connection, job, holder) = self.begin(connection_id, kind, trigger).await?;
        let id = job.id.clone();
        let engine = self.clone();
        tokio::spawn(async move {
            engine.run(connection, job, holder).await;
        });
        Ok(id)
    }

    /// Runs a job to the end and returns it (finished, with its verdict).
    pub async fn run_job(
        self: &Arc<Self>,
        connection_id: &ConnectionId,
        kind: JobKind,
        trigger: JobTrigger,
    ) -> Result<SyncJob, EngineError> {
        let (connection, job, holder) = self.begin(connection_id, kind, trigger).await?;
        let id = job.id.clone();
        self.run(connection, job, holder).await;
        self.store
            .get_job(&id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("job {id}")).into())
    }

    async fn begin(
        &self,
        connection_id: &ConnectionId,
        kind: JobKind,
        trigger: JobTrigger,
    ) -> Result<(Connection, SyncJob, String), EngineError> {
        let connection = self
            .store
            .get_connection(connection_id)
            .await?
            .ok_or_else(|| EngineError::UnknownConnection(connection_id.clone()))?;
        let job_id = JobId::generate();
        let holder = format!("{}/{}", self.config.instance, job_id);
        // An admin operation may hold the lease for a moment: wait that out, but not a
        // running job.
        let deadline = std::time::Instant::now() + self.config.lease_wait;
        while !self
            .store
            .try_acquire_lease(connection_id, &holder, self.config.lease_ttl, now_ms())
            .await?
        {
            if std::time::Instant::now() >= deadline {
                return Err(EngineError::Busy(connection_id.clone()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // With the lease in hand no other job of the connection can be running: one still
        // recorded as running lost its process (the lease we took was free or expired).
        let orphans = self
            .store
            .interrupt_jobs(
                &RunningJobs::OfConnection(connection_id.clone()),
                &interrupted("its lease had expired"),
                now_ms(),
            )
            .await;
        match orphans {
            Ok(jobs) => log_interrupted(&jobs, "its lease had expired when a new job started"),
            Err(e) => {
                let _ = self.store.release_lease(connection_id, &holder).await;
                return Err(e.into());
            }
        }
        let job = SyncJob {
            id: job_id,
            pool_id: connection.pool_id.clone(),
            connection_id: connection_id.clone(),
            kind,
            trigger,
            state: JobState::Running,
            verdict: None,
            progress: JobProgress {
                phase: "starting".into(),
                ..JobProgress::default()
            },
            counts: BTreeMap::new(),
            error: None,
            error_code: None,
            started_at: now_ms(),
            finished_at: None,
            instance: Some(self.config.instance.clone()),
        };
        if let Err(e) = self.store.create_job(&job).await {
            let _ = self.store.release_lease(connection_id, &holder).await;
            return Err(e.into());
        }
        Ok((connection, job, holder))
    }

    /// At start, before serving: ends what a stopped process of this instance left behind.
    /// Its running jobs end failed (their error starts with [`INTERRUPTED`]), then every lease it held (jobs' and
    /// the event worker's) is released, so the connections take new jobs and events at once;
    /// then [`Engine::end_orphaned_jobs`] for other instances. Only call it when no other
    /// live process runs as this instance. Returns the jobs it ended.
    pub async fn recover_after_restart(&self) -> Result<Vec<SyncJob>, StoreError> {
        let instance = &self.config.instance;
        // Jobs first: a lease released before its job ended would let another instance's
        // sweep see a running job without a lease and end it with a vaguer reason.
        let mut ended = self
            .store
            .interrupt_jobs(
                &RunningJobs::OfInstance(instance.clone()),
                &interrupted(&format!("instance {instance} restarted")),
                now_ms(),
            )
            .await?;
        log_interrupted(&ended, "its instance restarted");
        let released = self
            .store
            .release_leases_by_prefix(&format!("{instance}/"))
            .await?;
        if released > 0 {
            tracing::info!(instance = %instance, released, "released the connection leases this instance held before it stopped");
        }
        ended.extend(self.end_orphaned_jobs().await?);
        Ok(ended)
    }

    /// Ends every running job whose connection's lease is gone or expired (its instance
    /// stopped without finishing it) as failed, their error starting with [`INTERRUPTED`]. A job whose lease is
    /// live is never touched: it is renewed while the job runs, however slow it is. Called at
    /// start and from the schedule's tick. Returns the jobs it ended.
    pub async fn end_orphaned_jobs(&self) -> Result<Vec<SyncJob>, StoreError> {
        let now = now_ms();
        let ended = self
            .store
            .interrupt_jobs(
                &RunningJobs::WithoutLiveLease { now },
                &interrupted("its lease had expired"),
                now,
            )
            .await?;
        log_interrupted(&ended, "its lease had expired");
        Ok(ended)
    }

    /// Runs a begun job; always ends with the job finished and the lease released.
    async fn run(&self, connection: Connection, job: SyncJob, holder: String) {
        let shared = Arc::new(Mutex::new(job));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let renew = self.spawn_lease_renewal(&connection.id, &holder, stopped.clone());
        let flush = self.spawn_progress_flush(shared.clone(), stopped);
        let initial = AtomicBool::new(false);
        let outcome = self.execute(&connection, &shared, &initial).await;
        // Stop both and wait for them: aborting one mid-write does not cancel a statement
        // already sent, which could then land after the final writes (a finished job shown as
        // running forever, a released lease taken again).
        let _ = stop.send(true);
        let _ = renew.await;
        let _ = flush.await;
        let mut job = shared.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Err(e) = outcome {
            job.verdict = Some(Verdict::Failed);
            job.error_code = match &e {
                JobFailure::Fetch(f) => f.code(),
                _ => None,
            };
            job.error = Some(e.to_string());
        }
        job.state = JobState::Finished;
        job.finished_at = Some(now_ms());
        if job.verdict.is_none() {
            job.verdict = Some(Verdict::Failed);
        }
        record_job_duration(&job);
        // Many rows written (an import): plans of the reads after it follow the new sizes.
        if job.progress.applied >= STATISTICS_AFTER
            && let Err(e) = self.store.refresh_statistics().await
        {
            tracing::warn!(job = %job.id, error = %e, "could not refresh the planner statistics");
        }
        // In the feed before the job reads as finished: whoever waits for the job finds the
        // event there.
        self.announce_end(&job, initial.load(Ordering::Relaxed))
            .await;
        if let Err(e) = self.store.update_job(&job).await {
            tracing::error!(job = %job.id, error = %e, "could not record the end of a sync job");
        }
        if let Err(e) = self.store.release_lease(&connection.id, &holder).await {
            tracing::warn!(connection = %connection.id, error = %e, "could not release the job lease; it expires by itself");
        }
        tracing::info!(job = %job.id, connection = %connection.identifier, verdict = ?job.verdict, "sync job finished");
    }

    /// `directory.sync_completed` in the feed, after every change the job made.
    async fn announce_end(&self, job: &SyncJob, initial: bool) {
        let verdict = match job.verdict {
            Some(Verdict::Complete) => "complete",
            Some(Verdict::Partial) => "partial",
            Some(Verdict::Failed) | None => "failed",
        };
        let counts = serde_json::to_value(&job.counts).unwrap_or_default();
        let draft = crate::feed::sync_completed(
            job.id.as_str(),
            job.connection_id.as_str(),
            job.kind,
            verdict,
            &counts,
            initial,
        );
        let source = ChangeSource::Job {
            job_id: job.id.clone(),
            connection_id: job.connection_id.clone(),
            job_kind: Some(job.kind),
        };
        match self
            .store
            .feed_append(&job.pool_id, &source, &[draft], now_ms())
            .await
        {
            Ok(events) => {
                metrics::counter!("orgsync_feed_events_appended_total")
                    .increment(events.len() as u64);
                self.feed_appended();
            }
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, "could not append directory.sync_completed to the feed")
            }
        }
    }

    fn spawn_lease_renewal(
        &self,
        connection_id: &ConnectionId,
        holder: &str,
        mut stopped: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let store = self.store.clone();
        let connection_id = connection_id.clone();
        let holder = holder.to_owned();
        let ttl = self.config.lease_ttl;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(ttl / 3) => {}
                    _ = stopped.changed() => return,
                }
                match store
                    .try_acquire_lease(&connection_id, &holder, ttl, now_ms())
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::error!(connection = %connection_id, "lost the job lease to another instance")
                    }
                    Err(e) => {
                        tracing::warn!(connection = %connection_id, error = %e, "could not renew the job lease")
                    }
                }
            }
        })
    }

    fn spawn_progress_flush(
        &self,
        job: Arc<Mutex<SyncJob>>,
        mut stopped: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let store = self.store.clone();
        let every = self.config.progress_interval;
        tokio::spawn(async move {
            let mut last = None;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stopped.changed() => return,
                }
                let current = job.lock().unwrap_or_else(|e| e.into_inner()).clone();
                if last.as_ref() != Some(&current.progress) {
                    if let Err(e) = store.update_job(&current).await {
                        tracing::warn!(job = %current.id, error = %e, "could not record job progress");
                    }
                    last = Some(current.progress);
                }
            }
        })
    }

    /// `initial`: set when the job finds nothing of the connection stored (its first import).
    async fn execute(
        &self,
        connection: &Connection,
        job: &Arc<Mutex<SyncJob>>,
        initial: &AtomicBool,
    ) -> Result<(), JobFailure> {
        let set = |f: &dyn Fn(&mut SyncJob)| f(&mut job.lock().unwrap_or_else(|e| e.into_inner()));
        let (job_id, started_at, kind) = {
            let j = job.lock().unwrap_or_else(|e| e.into_inner());
            (j.id.clone(), j.started_at, j.kind)
        };
        let client = self.client(connection)?;
        let clock = std::time::Instant::now();
        // An outline: users are read in full when a plan needs them (docs/memory.md).
        let state = self.store.load_connection_outline(&connection.id).await?;
        let loaded = clock.elapsed();
        let known_users = live_user_open_ids(&state, &connection.id);
        // A connection's first import is quiet in the feed unless the pool asks otherwise
        // (docs/change-feed.md): nothing of this connection is stored yet.
        let first =
            state.users.is_empty() && state.departments.is_empty() && state.groups.is_empty();
        let settings = self
            .store
            .feed_settings(&connection.pool_id)
            .await?
            .unwrap_or_default();
        initial.store(first, Ordering::Relaxed);
        let source = JobSource {
            change: ChangeSource::Job {
                job_id: job_id.clone(),
                connection_id: connection.id.clone(),
                job_kind: Some(kind),
            },
            quiet: first && !settings.initial_import_events,
        };

        // The client is shared by the connection's jobs and its event worker: the job counts
        // the throttled answers from its start. The pull reports its own fields only: the
        // applied / planned counts belong to the apply running beside it.
        let throttled_before = client.throttled();
        let sink_job = job.clone();
        let sink_client = client.clone();
        let sink: crate::fetch::ProgressSink = Arc::new(move |p: &JobProgress| {
            let mut j = sink_job.lock().unwrap_or_else(|e| e.into_inner());
            j.progress.phase.clone_from(&p.phase);
            j.progress.pages = p.pages;
            j.progress.departments = p.departments;
            j.progress.users = p.users;
            j.progress.groups = p.groups;
            j.progress.throttled = sink_client.throttled().saturating_sub(throttled_before);
        });

        // The pull, and beside it what can be applied before it ends.
        let mut ahead = Ahead::new(state, &connection.id);
        let mut run = Applying::default();
        let (news, mut pulled) = tokio::sync::mpsc::channel::<Pulled>(AHEAD_QUEUE);
        let news = (self.config.ahead_chunk > 0).then_some(news);
        let pull = async {
            fetch_snapshot(&client, &known_users, &self.config.fetch, sink, news)
                .await
                .map_err(JobFailure::Fetch)
        };
        let apply_ahead = async {
            // Each chunk is planned against the whole stored state: with many stored users
            // (a reconciliation) fewer, larger chunks keep that cost to a few plans.
            let chunk = self
                .config
                .ahead_chunk
                .max(ahead.state.users.len() / AHEAD_PLANS);
            while let Some(news) = pulled.recv().await {
                match news {
                    Pulled::Departments { scope, departments } => {
                        let tree = ahead.tree(scope, departments);
                        let plan = plan_for(connection, &tree, &ahead.state);
                        drop(tree);
                        let steps = plan.steps.into_iter().filter(Ahead::tree_step).collect();
                        self.apply_plan(
                            connection,
                            &job_id,
                            &source,
                            steps,
                            started_at,
                            job,
                            &mut run,
                            Some(&mut ahead),
                        )
                        .await?;
                    }
                    Pulled::Users(users) => {
                        ahead.listed(users);
                        if ahead.due(chunk) {
                            self.apply_chunk(
                                connection, &job_id, &source, chunk, started_at, job, &mut run,
                                &mut ahead,
                            )
                            .await?;
                        }
                    }
                }
            }
            // The listing is over: what is ready goes now, the rest with the final plan.
            while self
                .apply_chunk(
                    connection, &job_id, &source, chunk, started_at, job, &mut run, &mut ahead,
                )
                .await?
            {}
            Ok::<(), JobFailure>(())
        };
        let (mut snapshot, ()) = tokio::try_join!(pull, apply_ahead)?;
        drop(known_users);
        ahead.finish(&mut snapshot);
        let fetched = clock.elapsed();
        let throttled = client.throttled().saturating_sub(throttled_before);
        set(&|j| j.progress.throttled = throttled);
        if throttled > 0 {
            tracing::info!(job = %job_id, throttled, "Feishu throttled some reads; each waited for its window to reset");
        }
        let complete = snapshot.completeness.is_full();
        if !complete {
            // A partial pull deletes nothing at all (design.md §2), not only of the kind
            // whose reads failed.
            snapshot.completeness = crate::snapshot::Completeness {
                departments: false,
                users: false,
                groups: false,
            };
        }

        set(&|j| j.progress.phase = "planning".into());
        let need = ahead.outlines_for_final(&snapshot);
        self.fill(connection, &mut ahead, need).await?;
        let mut plan = plan_for(connection, &snapshot, &ahead.state);
        // The plan owns what it writes: the pull and the stored state are not needed while it
        // is applied.
        let errors = std::mem::take(&mut snapshot.errors);
        // Users applied ahead: listed, so present in Feishu, with no step in the plan.
        let settled = std::mem::take(&mut snapshot.handed_on);
        drop(snapshot);
        self.park(connection, &job_id, &plan, &settled).await?;
        drop(settled);
        // What was applied ahead is unchanged now: its line in the log is the one written
        // when it was applied.
        let applied_ahead = ahead.applied_count();
        plan.steps.retain(|s| {
            !(s.action == SyncAction::Unchanged && ahead.was_applied(s.kind, &s.external_id))
        });
        drop(ahead);
        let planned = plan.steps.len() as u64;
        let planned_at = clock.elapsed();
        set(&|j| j.progress.phase = "applying".into());

        self.apply_plan(
            connection, &job_id, &source, plan.steps, started_at, job, &mut run, None,
        )
        .await?;
        let counts = run.counts;
        let applied = clock.elapsed();
        tracing::info!(
            job = %job_id,
            load_ms = loaded.as_millis() as u64,
            fetch_ms = (fetched - loaded).as_millis() as u64,
            plan_ms = (planned_at - fetched).as_millis() as u64,
            apply_ms = (applied - planned_at).as_millis() as u64,
            applied_ahead,
            steps = planned,
            "job phases"
        );

        set(&|j| {
            j.counts = counts.clone();
            j.progress.phase = "done".into();
            j.verdict = Some(if complete {
                Verdict::Complete
            } else {
                Verdict::Partial
            });
            if !complete {
                let mut shown: Vec<&str> = errors.iter().map(String::as_str).take(5).collect();
                if errors.len() > 5 {
                    shown.push("…");
                }
                j.error = Some(format!(
                    "some reads failed, so no deletions were made: {}",
                    shown.join("; ")
                ));
            }
        });
        Ok(())
    }

    /// Plans and applies the next chunk of users that can go ahead; `false` when none can.
    #[allow(clippy::too_many_arguments)]
    async fn apply_chunk(
        &self,
        connection: &Connection,
        job_id: &JobId,
        source: &JobSource,
        size: usize,
        started_at: Millis,
        job: &Arc<Mutex<SyncJob>>,
        run: &mut Applying,
        ahead: &mut Ahead,
    ) -> Result<bool, JobFailure> {
        let Some(chunk) = ahead.chunk(size) else {
            return Ok(false);
        };
        let need = ahead.outlines_in(&chunk);
        self.fill(connection, ahead, need).await?;
        let plan = plan_for(connection, &chunk, &ahead.state);
        let steps = plan
            .steps
            .into_iter()
            .filter(|s| Ahead::user_step(s, &chunk))
            .collect();
        self.apply_plan(
            connection,
            job_id,
            source,
            steps,
            started_at,
            job,
            run,
            Some(&mut *ahead),
        )
        .await?;
        ahead.settle(chunk);
        Ok(true)
    }

    /// Reads outlined users in full, a bounded number at a time.
    async fn fill(
        &self,
        connection: &Connection,
        ahead: &mut Ahead,
        need: Vec<UserId>,
    ) -> Result<(), JobFailure> {
        const READ: usize = 1_000;
        for ids in need.chunks(READ) {
            let users = self.store.get_users(&connection.pool_id, ids).await?;
            ahead
                .fill(ids, users)
                .map_err(|e| JobFailure::Store(StoreError::NotFound(e)))?;
        }
        Ok(())
    }

    async fn park(
        &self,
        connection: &Connection,
        job_id: &JobId,
        plan: &Plan,
        settled: &BTreeSet<String>,
    ) -> Result<(), JobFailure> {
        let now = now_ms();
        let items: Vec<ParkedDeletion> = plan
            .steps
            .iter()
            .filter(|s| s.result == ActionResult::Parked)
            .filter_map(|s| {
                Some(ParkedDeletion {
                    id: 0,
                    pool_id: connection.pool_id.clone(),
                    connection_id: connection.id.clone(),
                    job_id: job_id.clone(),
                    kind: s.kind,
                    object_id: s.object_id.clone()?,
                    external_id: s.external_id.clone(),
                    name: s.name.clone(),
                    reason: s.reason.clone().unwrap_or_default(),
                    state: ParkedState::Pending,
                    created_at: now,
                    last_parked_at: now,
                    resolved_at: None,
                    resolution: None,
                })
            })
            .collect();
        // The store refreshes an object's pending entry instead of adding another one.
        if !items.is_empty() {
            self.store.park_deletions(&items).await?;
        }
        // Only a complete view proves that an object is back; from a partial one, absence of
        // a deletion proves nothing.
        if plan.verdict_hint == Verdict::Complete {
            self.withdraw_parked(connection, job_id, plan, settled, now)
                .await?;
        }
        Ok(())
    }

    /// Ends the connection's pending entries that this job (with a complete view) did not park
    /// again: the object is back in Feishu, this job deletes it within the threshold, or it
    /// was deleted or disabled by another path. An entry whose deletion this job could not
    /// decide (a failed leaver lookup) stays pending. Walks the entries in bounded batches.
    async fn withdraw_parked(
        &self,
        connection: &Connection,
        job_id: &JobId,
        plan: &Plan,
        settled: &BTreeSet<String>,
        now: Millis,
    ) -> Result<(), StoreError> {
        const BATCH: u64 = 500;
        let filter = ParkedFilter {
            connection_id: Some(connection.id.clone()),
            ..ParkedFilter::pool(&connection.pool_id).state(ParkedState::Pending)
        };
        let mut fates: Option<HashMap<(ObjectKind, &str), Fate>> = None;
        let mut after = 0;
        loop {
            let batch = self.store.parked_after(&filter, after, BATCH).await?;
            let Some(last) = batch.last() else { break };
            after = last.id;
            // Entries this job parked carry its id (refreshed just before).
            let older: Vec<&ParkedDeletion> =
                batch.iter().filter(|p| p.job_id != *job_id).collect();
            if !older.is_empty() {
                let fates = fates.get_or_insert_with(|| fates_of(plan));
                let mut withdrawn: BTreeMap<String, Vec<i64>> = BTreeMap::new();
                for p in older {
                    let kind = p.kind.as_str();
                    let fate = fates.get(&(p.kind, p.object_id.as_str())).or((p.kind
                        == ObjectKind::User
                        && settled.contains(&p.external_id))
                    .then_some(&Fate::Present));
                    let resolution = match fate {
                        Some(Fate::Undecided) => continue,
                        Some(Fate::Deleted) => format!(
                            "job {job_id} deletes the {kind} itself: its deletions are within the threshold now"
                        ),
                        Some(Fate::Disabled) => {
                            format!("the {kind} resigned: job {job_id} disabled it")
                        }
                        Some(Fate::Present) => {
                            format!("the {kind} is back in Feishu (job {job_id} found it)")
                        }
                        None => format!(
                            "job {job_id} no longer plans this deletion: the {kind} was deleted or disabled by another path (an event or an admin)"
                        ),
                    };
                    withdrawn.entry(resolution).or_default().push(p.id);
                }
                for (resolution, ids) in withdrawn {
                    self.store
                        .resolve_parked(&ids, ParkedState::Withdrawn, &resolution, now)
                        .await?;
                }
            }
            if (batch.len() as u64) < BATCH {
                break;
            }
        }
        Ok(())
    }

    /// Applies the steps in order, a batch of writes per transaction. A step an event
    /// overtook ends skipped (`superseded`); a batch that fails otherwise is retried step by
    /// step, so one bad record fails alone and the rest applies.
    ///
    /// Ahead of the final plan (`ahead` given) only the steps that applied are logged,
    /// counted and folded into `ahead`'s state: the final plan takes the others again.
    #[allow(clippy::too_many_arguments)]
    async fn apply_plan(
        &self,
        connection: &Connection,
        job_id: &JobId,
        source: &JobSource,
        steps: Vec<PlannedStep>,
        started_at: Millis,
        job: &Arc<Mutex<SyncJob>>,
        run: &mut Applying,
        mut ahead: Option<&mut Ahead>,
    ) -> Result<(), JobFailure> {
        let mut pending: Vec<PlannedStep> = Vec::new();
        let mut pending_writes = 0usize;
        let mut log = Vec::new();
        let mut superseded = Superseded::default();
        let planned = run.done + steps.len() as u64;
        job.lock()
            .unwrap_or_else(|e| e.into_inner())
            .progress
            .planned = planned;
        let mut steps = steps.into_iter().peekable();
        while let Some(step) = steps.next() {
            pending_writes += step.writes.len();
            pending.push(step);
            let flush = pending_writes >= self.config.apply_batch || steps.peek().is_none();
            if !flush {
                continue;
            }
            let batch = std::mem::take(&mut pending);
            pending_writes = 0;
            let outcomes = self
                .apply_steps(connection, source, &batch, started_at, &mut superseded)
                .await;
            for (step, outcome) in batch.iter().zip(outcomes) {
                if let Some(ahead) = ahead.as_deref_mut()
                    && !ahead.took(step, outcome == StepOutcome::Done)
                {
                    continue;
                }
                let (result, reason) = match outcome {
                    StepOutcome::Done => (step.result, step.reason.clone()),
                    StepOutcome::Skipped(why) => (ActionResult::Skipped, Some(why)),
                    StepOutcome::Failed(e) => (ActionResult::Failed, Some(e)),
                };
                *run.counts
                    .entry(step.action.as_str().to_owned())
                    .or_default()
                    .entry(result.as_str().to_owned())
                    .or_default() += 1;
                run.done += 1;
                log.push(ActionLogEntry {
                    job_id: job_id.clone(),
                    seq: 0,
                    action: step.action,
                    kind: step.kind,
                    external_id: step.external_id.clone(),
                    object_id: step.object_id.clone(),
                    name: step.name.clone(),
                    result,
                    reason,
                    at: now_ms(),
                });
            }
            if log.len() >= 1000 || steps.peek().is_none() {
                self.store.append_action_log(&log).await?;
                log.clear();
            }
            let snapshot_counts = run.counts.clone();
            let mut j = job.lock().unwrap_or_else(|e| e.into_inner());
            j.progress.applied = run.done;
            j.counts = snapshot_counts;
        }
        if !log.is_empty() {
            self.store.append_action_log(&log).await?;
        }
        Ok(())
    }

    /// One transaction for the batch. Steps an event overtook (the store names them: a newer
    /// version, a Feishu id already mapped) are dropped and the rest is retried as one
    /// transaction, a bounded number of times; any other failure falls back to one
    /// transaction per step to isolate the bad one.
    async fn apply_steps(
        &self,
        connection: &Connection,
        source: &JobSource,
        steps: &[PlannedStep],
        started_at: Millis,
        superseded: &mut Superseded,
    ) -> Vec<StepOutcome> {
        /// Conflicts dropped per batch before it is applied step by step.
        const CONFLICT_RETRIES: usize = 16;
        let mut out: Vec<StepOutcome> = steps.iter().map(|_| StepOutcome::Done).collect();
        let mut live: Vec<usize> = Vec::with_capacity(steps.len());
        for (i, step) in steps.iter().enumerate() {
            match superseded.skip_reason(step) {
                Some(why) => {
                    superseded.add(step, &why);
                    out[i] = StepOutcome::Skipped(why);
                }
                None => live.push(i),
            }
        }
        let mut retries = 0;
        loop {
            let batch = self.batch_for(
                connection,
                source,
                live.iter().map(|&i| &steps[i]),
                started_at,
            );
            if batch.writes.is_empty() {
                return out;
            }
            let error = match self.apply(batch).await {
                Ok(_) => return out,
                Err(e) => e,
            };
            let tried: Vec<&PlannedStep> = live.iter().map(|&i| &steps[i]).collect();
            let culprits = if retries < CONFLICT_RETRIES {
                Superseded::culprits(&tried, &error)
            } else {
                None
            };
            match culprits {
                Some(culprits) => {
                    retries += 1;
                    for &c in &culprits {
                        superseded.add(&steps[live[c]], SUPERSEDED);
                        out[live[c]] = StepOutcome::Skipped(SUPERSEDED.to_owned());
                    }
                    // What depended on them goes too (a broken version chain, a reference
                    // to an object the job no longer creates).
                    let mut rest = Vec::with_capacity(live.len());
                    for (n, &i) in live.iter().enumerate() {
                        if culprits.contains(&n) {
                            continue;
                        }
                        match superseded.skip_reason(&steps[i]) {
                            Some(why) => {
                                superseded.add(&steps[i], &why);
                                out[i] = StepOutcome::Skipped(why);
                            }
                            None => rest.push(i),
                        }
                    }
                    live = rest;
                }
                None if live.len() == 1 => {
                    out[live[0]] = StepOutcome::Failed(error.to_string());
                    return out;
                }
                None => break,
            }
        }
        for i in live {
            let step = &steps[i];
            if let Some(why) = superseded.skip_reason(step) {
                superseded.add(step, &why);
                out[i] = StepOutcome::Skipped(why);
                continue;
            }
            let batch = self.batch_for(connection, source, std::iter::once(step), started_at);
            if batch.writes.is_empty() {
                continue;
            }
            if let Err(e) = self.apply(batch).await {
                out[i] = if Superseded::culprits(&[step], &e).is_some() {
                    superseded.add(step, SUPERSEDED);
                    StepOutcome::Skipped(SUPERSEDED.to_owned())
                } else {
                    StepOutcome::Failed(e.to_string())
                };
            }
        }
        out
    }

    /// The writes of some steps, with a watermark at the job's start for every object they
    /// touch: events created before the snapshot was taken are then stale for it.
    fn batch_for<'a>(
        &self,
        connection: &Connection,
        source: &JobSource,
        steps: impl Iterator<Item = &'a PlannedStep>,
        started_at: Millis,
    ) -> ApplyBatch {
        let mut writes = Vec::new();
        let mut watermarks = Vec::new();
        for step in steps {
            if step.writes.is_empty() || step.result != ActionResult::Applied {
                continue;
            }
            writes.extend(step.writes.iter().cloned());
            watermarks.push(Watermark {
                connection_id: connection.id.clone(),
                object_key: object_key(step.kind, &step.external_id),
                event_time: started_at,
                deleted: step.action.is_deletion(),
            });
        }
        ApplyBatch {
            pool_id: connection.pool_id.clone(),
            source: source.change.clone(),
            writes,
            later_sources: Vec::new(),
            watermarks,
            inbox: Vec::new(),
            quiet: source.quiet,
            as_read: Default::default(),
        }
    }
}

/// Plans a (whole or partial) pull of `connection` against `state`, now, with fresh ids.
fn plan_for(
    connection: &Connection,
    snapshot: &crate::snapshot::Snapshot,
    state: &crate::store::ConnectionState,
) -> Plan {
    plan(
        snapshot,
        state,
        &connection.id,
        &connection.pool_id,
        &connection.settings,
        now_ms(),
        &mut || new_id(),
    )
}

/// Pages of the pull waiting for the apply that runs beside it.
const AHEAD_QUEUE: usize = 64;

/// Chunks of users applied ahead, at most (about), when many users are stored already. Each
/// chunk is planned against the whole stored state, so fewer chunks are faster, and each
/// holds its users' full copies and plan, so more are smaller: at 100,000 stored users, fifty
/// (2,000 each, the import's size) add 110 MiB to a reconciliation's resident set where
/// sixteen added 135 MiB, for about 4 s more of planning (docs/import-pipeline.md).
const AHEAD_PLANS: usize = 50;

/// What the apply of one job has done so far (ahead of the final plan and in it).
#[derive(Default)]
struct Applying {
    counts: BTreeMap<String, BTreeMap<String, u64>>,
    /// Steps logged.
    done: u64,
}

/// How applying one planned step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum StepOutcome {
    /// Applied as planned (or nothing to write): the step's own result and reason stand.
    Done,
    /// Left alone, with why: an event changed what it writes while the job ran.
    Skipped(String),
    Failed(String),
}

/// One line per job ended as interrupted.
fn log_interrupted(jobs: &[SyncJob], why: &str) {
    for job in jobs {
        tracing::warn!(
            job = %job.id,
            connection = %job.connection_id,
            instance = job.instance.as_deref().unwrap_or("unknown"),
            started_at = job.started_at,
            "sync job ended as failed ({why}): it was left running by a process that stopped; start it again"
        );
    }
}

/// What a plan does to an object that has a pending parked deletion it did not park again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Deleted by the plan (within the threshold now).
    Deleted,
    /// A deletion the plan could not decide (skipped or failed): the entry stays.
    Undecided,
    /// A resigned user, disabled.
    Disabled,
    /// Found in Feishu: created, updated, restored or unchanged.
    Present,
}

/// The fate of every object the plan has a step for; a deletion step decides over the others.
fn fates_of(plan: &Plan) -> HashMap<(ObjectKind, &str), Fate> {
    let mut fates = HashMap::with_capacity(plan.steps.len());
    for step in &plan.steps {
        let Some(id) = step.object_id.as_deref() else {
            continue;
        };
        let fate = if step.action.is_deletion() {
            if step.result == ActionResult::Applied {
                Fate::Deleted
            } else {
                Fate::Undecided
            }
        } else if step.action == SyncAction::DisableUser {
            Fate::Disabled
        } else {
            Fate::Present
        };
        fates
            .entry((step.kind, id))
            .and_modify(|f: &mut Fate| {
                if step.action.is_deletion() || *f == Fate::Present {
                    *f = fate;
                }
            })
            .or_insert(fate);
    }
    fates
}

/// `orgsync_job_duration_seconds{kind,verdict}` (a no-op unless the binary installed a
/// metrics recorder).
fn record_job_duration(job: &SyncJob) {
    let kind = match job.kind {
        JobKind::Import => "import",
        JobKind::Reconcile => "reconcile",
    };
    let verdict = match job.verdict {
        Some(Verdict::Complete) => "complete",
        Some(Verdict::Partial) => "partial",
        Some(Verdict::Failed) | None => "failed",
    };
    let seconds = (job.finished_at.unwrap_or_else(now_ms) - job.started_at).max(0) as f64 / 1000.0;
    metrics::histogram!("orgsync_job_duration_seconds", "kind" => kind, "verdict" => verdict)
        .record(seconds);
}

/// Where a job's writes come from, and whether the feed reports them one by one.
struct JobSource {
    change: ChangeSource,
    quiet: bool,
}

/// Why a job failed as a whole.
#[derive(Debug, thiserror::Error)]
enum JobFailure {
    #[error("{0}")]
    Fetch(FetchError),
    #[error("{0}")]
    Engine(#[from] EngineError),
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
}

impl From<SecretError> for JobFailure {
    fn from(e: SecretError) -> Self {
        Self::Engine(e.into())
    }
}

/// Open ids of the users the store holds as live members of the connection (not resigned,
/// not tombstoned): the ones a pull must find again or look up.
pub fn live_user_open_ids(
    state: &ConnectionState,
    connection_id: &ConnectionId,
) -> BTreeSet<String> {
    let live: std::collections::HashSet<&str> = state
        .users
        .iter()
        .filter(|u| u.deleted_at.is_none() && u.status != UserStatus::Resigned)
        .map(|u| u.id.as_str())
        .collect();
    state
        .refs
        .iter()
        .filter(|r| r.kind == ObjectKind::User && &r.connection_id == connection_id)
        .filter(|r| live.contains(r.object_id.as_str()))
        .map(|r| r.external_id.clone())
        .collect()
}
