//! The running emulator: shared state, the axum router and the server task.
//!
//! Extension point: [`Emulator::start_with`] / [`router_with`] take extra routes
//! (`Router<Arc<EmulatorState>>`, e.g. admin endpoints or the event pusher's hooks) that are
//! served on the same port, with the same log-id and content-type handling.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::api::auth::TokenStore;
use crate::api::errors::ApiError;
use crate::api::paging::PageCodec;
use crate::api::{self, endpoint_key};
use crate::clock::{Clock, compact_utc};
use crate::config::{Behaviour, EmulatorConfig};
use crate::faults::FaultInjector;
use crate::hub::EventHub;
use crate::mutate::{Change, MutationError, MutationResult};
use crate::ratelimit::RateLimiter;
use crate::tenant::Tenant;

/// Lock helpers: a panic in another request must not take the emulator down with it.
pub(crate) mod lock {
    use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

    pub fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
        l.read().unwrap_or_else(PoisonError::into_inner)
    }
    pub fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
        l.write().unwrap_or_else(PoisonError::into_inner)
    }
    pub fn mutex<T>(l: &Mutex<T>) -> MutexGuard<'_, T> {
        l.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub const JSON_UTF8: &str = "application/json; charset=utf-8";

/// Requests seen per endpoint key (unmatched paths count under `"<unmatched>"`).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointStats {
    pub requests: u64,
    pub by_status: BTreeMap<u16, u64>,
}

#[derive(Debug, Default)]
pub struct RequestStats {
    inner: Mutex<BTreeMap<String, EndpointStats>>,
}

impl RequestStats {
    fn record(&self, endpoint: &str, status: StatusCode) {
        let mut map = lock::mutex(&self.inner);
        let e = map.entry(endpoint.to_owned()).or_default();
        e.requests += 1;
        *e.by_status.entry(status.as_u16()).or_default() += 1;
    }

    pub fn snapshot(&self) -> BTreeMap<String, EndpointStats> {
        lock::mutex(&self.inner).clone()
    }

    /// Requests answered with `status`, over all endpoints.
    pub fn with_status(&self, status: u16) -> u64 {
        lock::mutex(&self.inner)
            .values()
            .filter_map(|e| e.by_status.get(&status))
            .sum()
    }

    /// Requests to one endpoint key (e.g. `contact/v3/scopes`).
    pub fn requests(&self, endpoint: &str) -> u64 {
        lock::mutex(&self.inner)
            .get(endpoint)
            .map_or(0, |e| e.requests)
    }

    pub fn reset(&self) {
        lock::mutex(&self.inner).clear();
    }
}

/// Everything the handlers share. All switches and hooks live here, for tests and for the
/// admin endpoints.
#[derive(Debug)]
pub struct EmulatorState {
    /// The tenant. Call [`Tenant::invalidate`] after changing it through the lock directly;
    /// [`EmulatorState::with_tenant_mut`] does that for you.
    pub tenant: RwLock<Tenant>,
    behaviour: RwLock<Behaviour>,
    tenant_name: RwLock<String>,
    pub clock: Clock,
    pub tokens: TokenStore,
    pub rate_limiter: RateLimiter,
    pub faults: FaultInjector,
    pub stats: RequestStats,
    /// Renders changes into events, records them, and pushes them to request URLs or long
    /// connections.
    pub events: EventHub,
    /// Endpoint discovery and the WebSockets of apps in long-connection mode.
    pub long_connections: Arc<crate::long_connection::LongConnections>,
    pub(crate) pages: PageCodec,
    log_seq: AtomicU64,
    log_salt: u16,
}

impl EmulatorState {
    /// The state for `config` (its `bind` address is not used here).
    pub fn new(config: EmulatorConfig) -> Arc<Self> {
        let mut tenant = config.tenant;
        if let Some(base) = config.avatar_base {
            tenant.avatar_base = Some(base.trim_end_matches('/').to_owned());
        }
        tenant.invalidate();
        let long_connections = Arc::new(crate::long_connection::LongConnections::default());
        Arc::new(Self {
            tenant: RwLock::new(tenant),
            behaviour: RwLock::new(config.behaviour),
            tenant_name: RwLock::new(config.tenant_name),
            clock: Clock::new(),
            tokens: TokenStore::default(),
            rate_limiter: RateLimiter::new(config.rate_limit),
            faults: FaultInjector::new(config.faults),
            stats: RequestStats::default(),
            events: EventHub::new(config.push, config.seed, long_connections.clone()),
            long_connections,
            pages: PageCodec::new(config.seed),
            log_seq: AtomicU64::new(0),
            log_salt: rand::random(),
        })
    }

    /// Reads the tenant.
    pub fn with_tenant<R>(&self, f: impl FnOnce(&Tenant) -> R) -> R {
        f(&lock::read(&self.tenant))
    }

    /// Changes the tenant; its indexes are rebuilt on the next read.
    pub fn with_tenant_mut<R>(&self, f: impl FnOnce(&mut Tenant) -> R) -> R {
        let mut tenant = lock::write(&self.tenant);
        let out = f(&mut tenant);
        tenant.invalidate();
        out
    }

    /// Changes the tenant as Feishu would and publishes the events the change causes to
    /// every app (recorded, and pushed to apps with a request URL). Returns the changes and
    /// the number of events. Do one mutation per call: events are rendered against the state
    /// right after it.
    pub fn mutate_with<E>(
        &self,
        f: impl FnOnce(&mut Tenant) -> Result<Vec<Change>, E>,
    ) -> Result<(Vec<Change>, usize), E> {
        let mut tenant = lock::write(&self.tenant);
        let changes = f(&mut tenant)?;
        tenant.invalidate();
        let events = self.events.publish(&tenant, &changes, self.clock.now_ms());
        Ok((changes, events.len()))
    }

    /// [`EmulatorState::mutate_with`] for a mutation of the tenant's own API.
    pub fn mutate(
        &self,
        f: impl FnOnce(&mut Tenant) -> MutationResult,
    ) -> Result<Vec<Change>, MutationError> {
        self.mutate_with(f).map(|(changes, _)| changes)
    }

    /// Replaces the whole tenant (e.g. a freshly generated one); it keeps the avatar base
    /// of the served one unless it has its own.
    pub fn replace_tenant(&self, mut tenant: Tenant) -> Tenant {
        tenant.invalidate();
        let mut current = lock::write(&self.tenant);
        if tenant.avatar_base.is_none() {
            tenant.avatar_base = current.avatar_base.clone();
        }
        std::mem::replace(&mut *current, tenant)
    }

    /// A copy of the current switches.
    pub fn behaviour(&self) -> Behaviour {
        lock::read(&self.behaviour).clone()
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *lock::write(&self.behaviour) = behaviour;
    }

    /// Changes some switches in place.
    pub fn update_behaviour(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut lock::write(&self.behaviour));
    }

    pub fn tenant_name(&self) -> String {
        lock::read(&self.tenant_name).clone()
    }

    pub fn set_tenant_name(&self, name: impl Into<String>) {
        *lock::write(&self.tenant_name) = name.into();
    }

    // ---- hooks ---------------------------------------------------------------------------

    /// Moves the emulator clock forward (tokens age, rate-limit windows roll over).
    pub fn advance_clock(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// Revokes one token: API calls with it answer 99991663.
    pub fn revoke_token(&self, token: &str) -> bool {
        self.tokens.revoke(token)
    }

    /// Revokes every token of an app; returns how many were still valid.
    pub fn revoke_app_tokens(&self, app_id: &str) -> usize {
        self.tokens.revoke_app(app_id, self.clock.now_ms())
    }

    /// Lets one token expire now.
    pub fn expire_token(&self, token: &str) -> bool {
        self.tokens.expire(token, self.clock.now_ms())
    }

    /// Lets every token of an app expire now.
    pub fn expire_app_tokens(&self, app_id: &str) {
        self.tokens.expire_app(app_id, self.clock.now_ms());
    }

    /// The app's valid tokens, oldest first.
    pub fn valid_tokens(&self, app_id: &str) -> Vec<String> {
        self.tokens
            .valid_tokens(app_id, self.clock.now_ms())
            .into_iter()
            .map(|(t, _)| t)
            .collect()
    }

    /// A Feishu-shaped log id: `YYYYMMDDhhmmss` + 20 upper-case hex digits, unique per request.
    pub fn next_log_id(&self) -> String {
        let seq = self.log_seq.fetch_add(1, Ordering::SeqCst);
        format!(
            "{}{:04X}{seq:016X}",
            compact_utc(self.clock.now_secs()),
            self.log_salt
        )
    }
}

/// The emulator's router for `state`.
pub fn router(state: Arc<EmulatorState>) -> Router {
    router_with(state, Router::new())
}

/// The emulator's router plus `extra` routes (admin, pusher hooks) on the same server.
pub fn router_with(state: Arc<EmulatorState>, extra: Router<Arc<EmulatorState>>) -> Router {
    api::routes()
        .route(
            feishu::long_connection::endpoint::ENDPOINT_PATH,
            axum::routing::post(crate::long_connection::endpoint),
        )
        .route("/ws/v2", axum::routing::get(crate::long_connection::socket))
        .merge(crate::admin::routes())
        .merge(crate::avatar::routes())
        .merge(extra)
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), finish))
        .with_state(state)
}

/// A wrong path or method: plain-text 404, as Feishu's gateway answers (OBSERVED).
async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "404 page not found",
    )
        .into_response()
}

/// Every response: `X-Tt-Logid`, JSON bodies as `application/json; charset=utf-8`, error
/// bodies written with the log id, statistics.
async fn finish(State(state): State<Arc<EmulatorState>>, request: Request, next: Next) -> Response {
    let log_id = state.next_log_id();
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "<unmatched>".to_owned(), |m| endpoint_key(m.as_str()));
    let mut response = next.run(request).await;
    if let Some(err) = response.extensions_mut().remove::<ApiError>() {
        *response.body_mut() = Body::from(err.body(&log_id).to_string());
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8));
    }
    let headers = response.headers_mut();
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8));
    }
    if let Ok(v) = HeaderValue::from_str(&log_id) {
        headers.insert("x-tt-logid", v);
    }
    state.stats.record(&endpoint, response.status());
    response
}

#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("cannot bind the emulator to {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the emulator server failed: {0}")]
    Serve(std::io::Error),
    #[error("the emulator server task panicked or was cancelled: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// A running emulator. Dropping it stops the server (without waiting); prefer
/// [`Emulator::shutdown`] for a graceful stop.
#[derive(Debug)]
pub struct Emulator {
    state: Arc<EmulatorState>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Emulator {
    pub async fn start(config: EmulatorConfig) -> Result<Self, EmulatorError> {
        Self::start_with(config, Router::new()).await
    }

    /// Starts with `extra` routes served next to the Open API.
    pub async fn start_with(
        config: EmulatorConfig,
        extra: Router<Arc<EmulatorState>>,
    ) -> Result<Self, EmulatorError> {
        let mut config = config;
        let bind = config.bind;
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .map_err(|source| EmulatorError::Bind { addr: bind, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind { addr: bind, source })?;
        // Avatars are fetched by browsers: an unspecified bind address is not one they reach.
        config.avatar_base.get_or_insert_with(|| {
            let mut reachable = addr;
            if reachable.ip().is_unspecified() {
                reachable.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            format!("http://{reachable}")
        });
        let state = EmulatorState::new(config);
        let app = router_with(state.clone(), extra);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        tracing::debug!(%addr, "Feishu emulator listening");
        Ok(Self {
            state,
            addr,
            stop: Some(stop),
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`: the base URL to give a Feishu client.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn state(&self) -> &Arc<EmulatorState> {
        &self.state
    }

    pub fn with_tenant<R>(&self, f: impl FnOnce(&Tenant) -> R) -> R {
        self.state.with_tenant(f)
    }

    pub fn with_tenant_mut<R>(&self, f: impl FnOnce(&mut Tenant) -> R) -> R {
        self.state.with_tenant_mut(f)
    }

    /// Stops accepting connections, lets in-flight requests finish (at most 5 s), and
    /// waits for the server task.
    pub async fn shutdown(mut self) -> Result<(), EmulatorError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(mut task) = self.task.take() else {
            return Ok(());
        };
        match tokio::time::timeout(Duration::from_secs(5), &mut task).await {
            Ok(joined) => joined?.map_err(EmulatorError::Serve),
            Err(_) => {
                task.abort();
                Ok(())
            }
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
