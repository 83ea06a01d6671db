//! `GET /healthz` (the process answers), `GET /readyz` (the store answers and the event
//! worker runs) and `GET /metrics` (Prometheus text). Public: no admin token, nothing secret.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::AppState;

/// How long `/readyz` waits for the store.
const STORE_TIMEOUT: Duration = Duration::from_secs(3);

// 0 (the default): no worker attached.
const RUNNING: u8 = 1;
const STOPPED: u8 = 2;

/// Whether this process's event worker runs. A process that never attaches one (e.g. a test
/// harness running the worker elsewhere) reports it as `not_watched` and stays ready.
#[derive(Clone, Default)]
pub struct Health {
    worker: Arc<AtomicU8>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("worker", &self.worker_state())
            .finish()
    }
}

/// Held by the event worker's task: dropping it (the task ended or panicked) makes
/// `/readyz` fail.
#[derive(Debug)]
pub struct WorkerGuard {
    worker: Arc<AtomicU8>,
}

impl Drop for WorkerGuard {
    fn drop(&mut self) {
        self.worker.store(STOPPED, Ordering::SeqCst);
    }
}

impl Health {
    /// Marks the worker running until the returned guard is dropped.
    pub fn worker_started(&self) -> WorkerGuard {
        self.worker.store(RUNNING, Ordering::SeqCst);
        WorkerGuard {
            worker: self.worker.clone(),
        }
    }

    /// `running`, `stopped` or `not_watched`.
    pub fn worker_state(&self) -> &'static str {
        match self.worker.load(Ordering::SeqCst) {
            RUNNING => "running",
            STOPPED => "stopped",
            _ => "not_watched",
        }
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<AppState>) -> Response {
    let store = match tokio::time::timeout(STORE_TIMEOUT, state.engine.store().list_pools()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("the store does not answer: {e}")),
        Err(_) => Err(format!(
            "the store did not answer within {} s",
            STORE_TIMEOUT.as_secs()
        )),
    };
    let worker = state.health.worker_state();
    let mut problems = Vec::new();
    if let Err(e) = &store {
        problems.push(e.clone());
    }
    if worker == "stopped" {
        problems.push("the event worker has stopped: restart orgsync".to_owned());
    }
    let body = json!({
        "status": if problems.is_empty() { "ok" } else { "unavailable" },
        "checks": {
            "store": if store.is_ok() { "ok" } else { "failing" },
            "worker": worker,
        },
        "problems": problems,
    });
    let status = if problems.is_empty() {
        StatusCode::OK
    } else {
        tracing::warn!(?problems, "not ready");
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    // The inbox depth is read on scrape: the store is the truth shared by every instance.
    match inbox_depth(&state).await {
        Ok(depth) => state.metrics.set_inbox_depth(depth),
        Err(e) => tracing::warn!(error = %e, "could not read the inbox depth for /metrics"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn inbox_depth(state: &AppState) -> Result<u64, directory::store::StoreError> {
    let store = state.engine.store();
    let mut total = 0;
    for connection in store.list_connections(None).await? {
        total += store.inbox_pending_count(&connection.id).await?;
    }
    Ok(total)
}
