//! The harness: an in-process emulator, a store (SQLite in a temp dir, or a fresh PostgreSQL
//! schema), the engine, the ingestor and the worker, wired as `orgsync serve` will wire them.

use std::sync::Arc;
use std::time::Duration;

use directory::apply::{RoundStats, Worker, WorkerConfig};
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
use emulator::generate::{GenerateConfig, generate};
use emulator::ratelimit::RateLimitConfig;
use emulator::tenant::{AppRecord, Tenant};
use emulator::{Emulator, EmulatorConfig};
use feishu::client::{PacingConfig, RetryConfig};
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

/// Engine settings for a local emulator: no pacing, quick retries.
pub fn engine_config() -> EngineConfig {
    EngineConfig {
        pacing: PacingConfig::disabled(),
        retry: RetryConfig {
            max_retries: 3,
            min_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(20),
            max_rate_limit_waits: 5,
            max_rate_limit_wait: Duration::from_secs(2),
        },
        fetch: FetchOptions { concurrency: 4 },
        progress_interval: Duration::from_millis(50),
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
            .filter(|(i, _)| drop_every.is_none_or(|n| (i + 1) % n != 0))
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
