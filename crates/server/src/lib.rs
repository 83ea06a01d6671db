//! orgsync's HTTP side. Thin handlers over the `directory` crate:
//!
//! - [`events`]: the Feishu event endpoint `POST /connections/enterprise/{identifier}/{pool}/events`.
//! - [`api`]: the admin REST API under `/api/v1` (bearer admin token) and its OpenAPI document.
//! - [`console`]: the server-rendered web console under `/console` (login with the admin token).
//! - [`health`]: `/healthz`, `/readyz` and Prometheus `/metrics`.
//!
//! No SQL here: everything goes through [`directory::admin::Admin`], the engine and the
//! ingestor.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod api;
pub mod auth;
pub mod console;
pub mod error;
pub mod events;
pub mod health;
pub mod listener;
pub mod login_limit;
pub mod metrics;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use directory::admin::Admin;
use directory::engine::Engine;
use directory::ingest::Ingestor;

pub use auth::AdminToken;
pub use login_limit::{LoginLimiter, LoginLimits};

/// Largest event body accepted (Feishu's own events are a few KiB).
pub const EVENT_BODY_LIMIT: usize = 1024 * 1024;

/// Settings of the HTTP side.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// How Feishu reaches this server, e.g. `https://orgsync.example.com`; used to show the
    /// callback URL (no trailing slash).
    pub public_base_url: String,
    pub admin_token: AdminToken,
    /// Mark console cookies `Secure` (when the public URL is https).
    pub secure_cookies: bool,
}

/// Everything a handler may need. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub admin: Arc<Admin>,
    pub engine: Arc<Engine>,
    pub ingestor: Arc<Ingestor>,
    pub settings: Arc<ServerSettings>,
    pub metrics: metrics::Metrics,
    /// Whether the event worker runs (for `/readyz`).
    pub health: health::Health,
    /// Wrong admin tokens per client address at the console login.
    pub login_limiter: Arc<LoginLimiter>,
}

impl AppState {
    pub fn new(engine: Arc<Engine>, ingestor: Arc<Ingestor>, settings: ServerSettings) -> Self {
        let admin = Arc::new(Admin::new(
            engine.clone(),
            Some(ingestor.clone()),
            settings.public_base_url.clone(),
        ));
        Self {
            admin,
            engine,
            ingestor,
            settings: Arc::new(settings),
            metrics: metrics::Metrics::global(),
            health: health::Health::default(),
            login_limiter: Arc::new(LoginLimiter::default()),
        }
    }

    /// The same state with other console login limits.
    pub fn with_login_limits(mut self, limits: LoginLimits) -> Self {
        self.login_limiter = Arc::new(LoginLimiter::new(limits));
        self
    }
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(events::router())
        .merge(health::router())
        .merge(api::router())
        .merge(console::router())
        .fallback(events::not_found)
        .with_state(state)
}

/// Serves `router(state)` on `listener` until `shutdown` resolves, then drains in-flight
/// requests. Requests hyper cannot parse get the JSON error shape too ([`listener`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // `tap_io` (doing nothing) is what makes a listener other than a bare `TcpListener` give
    // handlers `ConnectInfo<SocketAddr>`.
    let listener = listener::JsonErrorListener::new(listener).tap_io(|_| {});
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// A server running in the background (tests, `orgsync demo`).
pub struct RunningServer {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl RunningServer {
    /// Binds `addr` (port 0 for any free port) and serves in the background.
    pub async fn start(addr: SocketAddr, state: AppState) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, state, async move {
            let _ = rx.await;
        }));
        Ok(Self {
            addr,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, drains and waits.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => task.await.unwrap_or_else(|e| Err(std::io::Error::other(e))),
            None => Ok(()),
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
