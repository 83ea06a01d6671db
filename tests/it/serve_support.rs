//! The served harness: the real HTTP server (`server::router`) with the engine, ingestor and
//! event worker running in the background, next to an in-process emulator — what
//! `orgsync serve` wires, driven over HTTP like an admin's scripts or Feishu would.

use std::sync::Arc;

use directory::engine::Engine;
use directory::ingest::Ingestor;
use directory::secrets::MasterKey;
use directory::store::DirectoryStore;
use directory::worker::Worker;
use emulator::ratelimit::RateLimitConfig;
use emulator::tenant::Tenant;
use emulator::{Emulator, EmulatorConfig};
use feishu::envelope::DecodeOptions;
use serde_json::Value;
use server::{AdminToken, AppState, RunningServer, ServerSettings};

use crate::support::{Backend, OpenStore, engine_config, open_store, worker_config};

pub const ADMIN_TOKEN: &str = "osat_integration-test-admin-token";

pub struct Served {
    pub backend: Backend,
    pub emu: Emulator,
    pub store: Arc<dyn DirectoryStore>,
    pub engine: Arc<Engine>,
    /// The instance's master key (what service-credential hashes are keyed with).
    pub key: MasterKey,
    pub server: RunningServer,
    /// A client without credentials; use [`Served::get`] etc. for the admin API.
    pub http: reqwest::Client,
    stop_worker: tokio::sync::watch::Sender<bool>,
    webhooks: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    _store: OpenStore,
}

impl Served {
    pub async fn start(backend: Backend, tenant: Tenant) -> Served {
        Self::start_with(backend, tenant, |_| {}).await
    }

    pub async fn start_with(
        backend: Backend,
        tenant: Tenant,
        tweak: impl FnOnce(&mut EmulatorConfig),
    ) -> Served {
        let mut config = EmulatorConfig::new(tenant);
        config.rate_limit = RateLimitConfig::disabled();
        tweak(&mut config);
        let emu = Emulator::start(config).await.unwrap();
        let opened = open_store(backend).await;
        let store = opened.store.clone();
        let (key, _) = MasterKey::generate();
        let engine = Engine::new(store.clone(), key.clone(), engine_config());
        let ingestor = Arc::new(Ingestor::new(
            store.clone(),
            key.clone(),
            DecodeOptions::default(),
        ));
        let (stop_worker, stopped) = tokio::sync::watch::channel(false);
        Worker::new(engine.clone(), worker_config())
            .wake_on(ingestor.committed())
            .spawn(stopped.clone());
        let webhooks = directory::webhooks::deliver::Deliverer::new(engine.clone()).spawn(stopped);
        // The public URL is only known once bound: bind first, then build the state.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let state = AppState::new(
            engine.clone(),
            ingestor,
            ServerSettings {
                public_base_url: format!("http://{addr}"),
                admin_token: AdminToken::from_plaintext(ADMIN_TOKEN),
                secure_cookies: false,
            },
        );
        let server = RunningServer::start(addr, state).await.unwrap();
        Served {
            backend,
            emu,
            store,
            engine,
            key,
            server,
            http: reqwest::Client::new(),
            stop_worker,
            webhooks: std::sync::Mutex::new(Some(webhooks)),
            _store: opened,
        }
    }

    /// Stops this orgsync's webhook deliveries (a test then runs its own deliverer).
    pub fn stop_webhooks(&self) {
        if let Some(task) = self.webhooks.lock().unwrap().take() {
            task.abort();
        }
    }

    /// The SQLite database file; `None` on PostgreSQL.
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        self._store.sqlite_path()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url())
    }

    /// GET an admin API path (e.g. `/api/v1/pools`) with the admin token; returns status and
    /// JSON body (`Value::Null` when the body is not JSON).
    pub async fn get(&self, path: &str) -> (reqwest::StatusCode, Value) {
        let resp = self
            .http
            .get(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// POST JSON to an admin API path with the admin token.
    pub async fn post(&self, path: &str, body: &Value) -> (reqwest::StatusCode, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (reqwest::StatusCode, Value) {
        let mut req = self
            .http
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.stop_worker.send(true);
    }
}
