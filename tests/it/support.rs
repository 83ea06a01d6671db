//! The harness: an in-process emulator, a store (SQLite in a temp dir, or a fresh PostgreSQL
//! schema), the engine, the ingestor and the worker, wired as `orgsync serve` will wire them.

use std::sync::Arc;
use std::time::Duration;

use directory::compare::{Difference, compare};
use directory::engine::{Engine, EngineConfig, live_user_open_ids};
use directory::fetch::{FetchOptions, fetch_snapshot};
use directory::ids::{ConnectionId, PoolId, now_ms};
use directory::ingest::{IngestOutcome, Ingestor};
use directory::model::{
    Connection, ConnectionSettings, JobKind, JobTrigger, Provider, SyncJob, UserPool,
};
use directory::secrets::MasterKey;
use directory::store::DirectoryStore;
use directory::worker::{RoundStats, Worker, WorkerConfig};
use emulator::generate::{GenerateConfig, generate};
use emulator::ratelimit::RateLimitConfig;
use emulator::tenant::{AppRecord, Tenant};
use emulator::{Emulator, EmulatorConfig};
use feishu::client::RetryConfig;
use feishu::envelope::{self, DecodeOptions};
use rand::SeedableRng;
use rand::seq::SliceRandom;

pub const APP_ID: &str = "cli_it0000000000001";
pub const APP_SECRET: &str = "it-app-secret-0000000000000001";
pub const ENCRYPT_KEY: &str = "it-encrypt-key";
pub const VERIFICATION_TOKEN: &str = "it-verification-token";
pub const IDENTIFIER: &str = "feishu";

/// The stores every storage test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// SQLite always; PostgreSQL when `ORGSYNC_TEST_POSTGRES_URL` is set (the test script sets it).
    pub fn all() -> Vec<Backend> {
        let mut out = vec![Backend::Sqlite];
        if std::env::var("ORGSYNC_TEST_POSTGRES_URL").is_ok() {
            out.push(Backend::Postgres);
        } else {
            eprintln!("ORGSYNC_TEST_POSTGRES_URL is not set: PostgreSQL tests skipped");
        }
        out
    }
}

pub struct OpenStore {
    pub store: Arc<dyn DirectoryStore>,
    _dir: Option<tempfile::TempDir>,
}

impl OpenStore {
    /// The SQLite database file (its WAL is beside it, `-wal` appended); `None` on PostgreSQL.
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        self._dir.as_ref().map(|d| d.path().join("orgsync.db"))
    }
}

pub async fn open_store(backend: Backend) -> OpenStore {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let store = store::SqliteStore::open(&dir.path().join("orgsync.db"))
                .await
                .unwrap();
            OpenStore {
                store: Arc::new(store),
                _dir: Some(dir),
            }
        }
        Backend::Postgres => {
            let store = store::testing::pg_test_store()
                .await
                .expect("ORGSYNC_TEST_POSTGRES_URL is set but PostgreSQL is not reachable");
            OpenStore {
                store: Arc::new(store),
                _dir: None,
            }
        }
    }
}

/// The app the connection uses, with everything a directory sync needs.
pub fn app() -> AppRecord {
    let mut app = AppRecord::new(APP_ID, APP_SECRET);
    app.encrypt_key = Some(ENCRYPT_KEY.into());
    app.verification_token = VERIFICATION_TOKEN.into();
    // Group changes reach orgsync as events too (they are re-read from the API).
    app.user_group_events = true;
    app
}

pub fn tenant(users: usize, departments: usize, groups: usize, seed: u64) -> Tenant {
    generate(
        &GenerateConfig {
            seed,
            users,
            departments,
            groups,
            ..GenerateConfig::default()
        },
        vec![app()],
    )
}

pub struct Harness {
    pub backend: Backend,
    pub emu: Emulator,
    pub store: Arc<dyn DirectoryStore>,
    pub engine: Arc<Engine>,
    pub ingestor: Ingestor,
    pub worker: Worker,
    pub pool: PoolId,
    pub connection: Connection,
    /// Emitted events of the emulator already delivered by [`Harness::deliver`].
    pub delivered: usize,
    _store: OpenStore,
}

/// Engine settings for a local emulator: no pacing, quick retries, and users applied ahead
/// of the final plan in chunks of 7, so that every job test runs through that path.
pub fn engine_config() -> EngineConfig {
    EngineConfig {
        pacing_lifted: true,
        ahead_chunk: 7,
        retry: RetryConfig {
            max_retries: 3,
            min_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(20),
            max_rate_limit_waits: 5,
            max_rate_limit_wait: Duration::from_secs(2),
        },
        fetch: FetchOptions { concurrency: 4 },
        progress_interval: Duration::from_millis(50),
        // Receivers are on loopback; the retry schedule (about three days) runs in about 5 s.
        webhooks: directory::webhooks::deliver::WebhookConfig {
            allow_private_targets: true,
            retry_scale: 0.00002,
            poll: Duration::from_millis(20),
            ..Default::default()
        },
        ..EngineConfig::default()
    }
}

pub fn worker_config() -> WorkerConfig {
    WorkerConfig {
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
        ..WorkerConfig::default()
    }
}

impl Harness {
    pub async fn new(backend: Backend, tenant: Tenant) -> Harness {
        Self::with(backend, tenant, |_| {}, ConnectionSettings::default()).await
    }

    pub async fn with(
        backend: Backend,
        tenant: Tenant,
        tweak: impl FnOnce(&mut EmulatorConfig),
        settings: ConnectionSettings,
    ) -> Harness {
        let mut config = EmulatorConfig::new(tenant);
        config.rate_limit = RateLimitConfig::disabled();
        tweak(&mut config);
        let emu = Emulator::start(config).await.unwrap();
        let opened = open_store(backend).await;
        let store = opened.store.clone();
        let (key, _) = MasterKey::generate();
        let pool = UserPool {
            id: PoolId::generate(),
            name: "Integration".into(),
            created_at: now_ms(),
        };
        store.create_pool(&pool).await.unwrap();
        let connection = Connection {
            id: ConnectionId::generate(),
            pool_id: pool.id.clone(),
            identifier: IDENTIFIER.into(),
            display_name: "Feishu (emulator)".into(),
            provider: Provider::Feishu,
            base_url: Some(emu.base_url()),
            app_id: APP_ID.into(),
            app_secret: key.seal(APP_SECRET),
            encrypt_key: Some(key.seal(ENCRYPT_KEY)),
            verification_token: Some(key.seal(VERIFICATION_TOKEN)),
            settings,
            created_at: now_ms(),
            updated_at: now_ms(),
        };
        store.create_connection(&connection).await.unwrap();
        let engine = Engine::new(store.clone(), key.clone(), engine_config());
        let ingestor = Ingestor::new(store.clone(), key, DecodeOptions::default());
        let worker = Worker::new(engine.clone(), worker_config());
        let delivered = emu.state().events.emitted().len();
        Harness {
            backend,
            emu,
            store,
            engine,
            ingestor,
            worker,
            pool: pool.id,
            connection,
            delivered,
            _store: opened,
        }
    }

    pub async fn import(&self) -> SyncJob {
        self.engine
            .run_job(&self.connection.id, JobKind::Import, JobTrigger::Admin)
            .await
            .unwrap()
    }

    pub async fn reconcile(&self) -> SyncJob {
        self.engine
            .run_job(&self.connection.id, JobKind::Reconcile, JobTrigger::Admin)
            .await
            .unwrap()
    }

    /// The directory comparison: a fresh pull from the emulator against the store.
    pub async fn compare(&self) -> Vec<Difference> {
        let state = self
            .store
            .load_connection_state(&self.connection.id)
            .await
            .unwrap();
        let known = live_user_open_ids(&state, &self.connection.id);
        let client = self.engine.client(&self.connection).unwrap();
        let snapshot = fetch_snapshot(
            &client,
            &known,
            &FetchOptions::default(),
            Arc::new(|_: &directory::model::JobProgress| {}),
            None,
        )
        .await
        .unwrap();
        compare(&snapshot, &state)
    }

    /// Delivers the events the emulator emitted for the app since the last call, each
    /// `copies` times, shuffled when `shuffle` is given, through the ingestion entry point
    /// exactly as the HTTP endpoint does (sealed: encrypted and signed). Returns how many
    /// distinct events were delivered.
    pub async fn deliver(
        &mut self,
        copies: usize,
        shuffle: Option<u64>,
        drop_every: Option<usize>,
    ) -> usize {
        self.deliver_where(copies, shuffle, |i, _| {
            drop_every.is_none_or(|n| (i + 1) % n != 0)
        })
        .await
    }

    /// [`Harness::deliver`] for the events `keep(index, event)` accepts.
    pub async fn deliver_where(
        &mut self,
        copies: usize,
        shuffle: Option<u64>,
        keep: impl Fn(usize, &emulator::events::OutgoingEvent) -> bool,
    ) -> usize {
        let emitted = self.emu.state().events.emitted();
        let fresh: Vec<_> = emitted[self.delivered..]
            .iter()
            .filter(|e| e.app_id == APP_ID)
            .cloned()
            .collect();
        self.delivered = emitted.len();
        let kept: Vec<_> = fresh
            .into_iter()
            .enumerate()
            .filter(|(i, e)| keep(*i, e))
            .map(|(_, e)| e)
            .collect();
        let mut requests = Vec::new();
        for e in &kept {
            for _ in 0..copies.max(1) {
                requests.push(envelope::seal(
                    &e.plaintext,
                    Some(ENCRYPT_KEY),
                    &(now_ms() / 1000).to_string(),
                    "42",
                ));
            }
        }
        if let Some(seed) = shuffle {
            requests.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
        }
        for sealed in requests {
            let response = self
                .ingestor
                .ingest(
                    self.pool.as_str(),
                    IDENTIFIER,
                    &sealed.headers(),
                    sealed.body.as_bytes(),
                )
                .await
                .unwrap();
            assert_eq!(response.status, 200);
            assert!(matches!(
                response.outcome,
                IngestOutcome::Accepted { .. } | IngestOutcome::Duplicate { .. }
            ));
        }
        kept.len()
    }

    /// Applies every due inbox event.
    pub async fn drain(&self) -> RoundStats {
        self.worker.drain().await.unwrap()
    }
}

/// Thresholds that never park: for tests about event correctness, not deletion safety.
pub fn no_thresholds() -> directory::model::ConnectionSettings {
    directory::model::ConnectionSettings {
        deletion_threshold: directory::model::DeletionThreshold {
            max_fraction: 1.0,
            max_count: u64::MAX,
        },
        ..directory::model::ConnectionSettings::default()
    }
}

impl Harness {
    /// Applies events and waits for the reconciliations they started, until nothing is left.
    pub async fn settle(&self) -> RoundStats {
        let mut total = RoundStats::default();
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            let stats = self.drain().await;
            total.applied += stats.applied;
            total.ignored += stats.ignored;
            total.retried += stats.retried;
            total.parked += stats.parked;
            let running = self
                .store
                .list_jobs(
                    Some(&self.connection.id),
                    directory::store::PageRequest {
                        offset: 0,
                        limit: 5,
                        after: None,
                    },
                )
                .await
                .unwrap()
                .iter()
                .any(|j| j.state == directory::model::JobState::Running);
            let pending = self
                .store
                .inbox_pending_count(&self.connection.id)
                .await
                .unwrap();
            if !running && pending == 0 {
                return total;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{:?}: events did not settle: {pending} pending, job running: {running}, so far {total:?}",
                self.backend
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Applies one emulator mutation (and publishes its events).
    pub fn mutate(
        &self,
        f: impl FnOnce(&mut Tenant) -> emulator::mutate::MutationResult,
    ) -> Vec<emulator::mutate::Change> {
        self.emu.state().mutate(f).unwrap()
    }
}

// ---- lookups for the job and crash tests ------------------------------------------------

/// The `open_id` the connection's app sees for an emulator user.
pub fn open_id(key: emulator::tenant::UserKey) -> String {
    app().open_id(key)
}

/// How many steps of `action` ended with `result` in a job's counts.
pub fn counted(
    job: &SyncJob,
    action: directory::model::SyncAction,
    result: directory::model::ActionResult,
) -> u64 {
    job.counts
        .get(action.as_str())
        .and_then(|by_result| by_result.get(result.as_str()))
        .copied()
        .unwrap_or(0)
}

/// Every page of a listing at once.
pub const ALL: directory::store::PageRequest = directory::store::PageRequest {
    offset: 0,
    limit: 1_000_000,
    after: None,
};

/// Every item of a directory list in one page.
pub const EVERYONE: directory::store::KeyPage = directory::store::KeyPage {
    after: None,
    limit: 1_000_000,
};

impl Harness {
    /// A job's whole action log.
    pub async fn action_log(&self, job: &SyncJob) -> Vec<directory::model::ActionLogEntry> {
        self.store
            .action_log(&job.id, &directory::store::ActionLogFilter::default(), ALL)
            .await
            .unwrap()
    }

    /// What the store holds for the connection, tombstones included.
    pub async fn state(&self) -> directory::store::ConnectionState {
        self.store
            .load_connection_state(&self.connection.id)
            .await
            .unwrap()
    }

    /// The orgsync id the connection maps a Feishu id of `kind` to.
    pub async fn object_id(
        &self,
        kind: directory::model::ObjectKind,
        external_id: &str,
    ) -> Option<String> {
        self.store
            .find_external(&self.connection.id, kind, external_id)
            .await
            .unwrap()
            .map(|r| r.object_id)
    }

    /// The stored user behind an `open_id` (a tombstone too).
    pub async fn stored_user(&self, open_id: &str) -> Option<directory::model::User> {
        let id = self
            .object_id(directory::model::ObjectKind::User, open_id)
            .await?;
        self.store.get_user(&self.pool, &id.into()).await.unwrap()
    }

    /// The stored department behind an `open_department_id` (a tombstone too).
    pub async fn stored_department(&self, od: &str) -> Option<directory::model::Department> {
        let id = self
            .object_id(directory::model::ObjectKind::Department, od)
            .await?;
        self.store
            .get_department(&self.pool, &id.into())
            .await
            .unwrap()
    }

    /// The stored group behind a Feishu group id (a tombstone too).
    pub async fn stored_group(&self, id: &str) -> Option<directory::model::Group> {
        let id = self
            .object_id(directory::model::ObjectKind::Group, id)
            .await?;
        self.store.get_group(&self.pool, &id.into()).await.unwrap()
    }

    /// Feishu ids of the objects of one kind the store holds live (not tombstoned).
    pub async fn live_external_ids(
        &self,
        kind: directory::model::ObjectKind,
    ) -> std::collections::BTreeSet<String> {
        let state = self.state().await;
        let live: std::collections::HashSet<&str> = match kind {
            directory::model::ObjectKind::User => state
                .users
                .iter()
                .filter(|u| u.deleted_at.is_none())
                .map(|u| u.id.as_str())
                .collect(),
            directory::model::ObjectKind::Department => state
                .departments
                .iter()
                .filter(|d| d.deleted_at.is_none())
                .map(|d| d.id.as_str())
                .collect(),
            directory::model::ObjectKind::Group => state
                .groups
                .iter()
                .filter(|g| g.deleted_at.is_none())
                .map(|g| g.id.as_str())
                .collect(),
        };
        state
            .refs
            .iter()
            .filter(|r| r.kind == kind && live.contains(r.object_id.as_str()))
            .map(|r| r.external_id.clone())
            .collect()
    }

    /// The whole change log of the pool.
    pub async fn change_log(&self) -> Vec<directory::store::ChangeRecord> {
        self.store
            .changes_since(&self.pool, 0, 1_000_000)
            .await
            .unwrap()
    }

    /// Every inbox event of the connection, oldest first.
    pub async fn inbox(&self) -> Vec<directory::store::InboxEvent> {
        let mut events = self
            .store
            .inbox_list(
                &directory::store::InboxFilter {
                    connection_id: Some(self.connection.id.clone()),
                    ..Default::default()
                },
                ALL,
            )
            .await
            .unwrap();
        events.reverse();
        events
    }
}
