//! `orgsync demo --webhook-echo`: a webhook receiver on 127.0.0.1 that checks each request's
//! signature the way a downstream system must (Standard Webhooks) and prints what it got.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use directory::ids::now_ms;
use directory::webhooks::sign::{secret_key, verify};
use serde_json::Value;

/// Timestamps further than this from now are refused (the reference libraries' tolerance).
const TOLERANCE_SECS: i64 = 300;

/// The receiver; its secret is set once the endpoint exists.
pub struct Echo {
    pub addr: SocketAddr,
    key: Arc<OnceLock<Vec<u8>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Echo {
    pub async fn start() -> anyhow::Result<Echo> {
        let key: Arc<OnceLock<Vec<u8>>> = Arc::new(OnceLock::new());
        let app = Router::new()
            .route("/webhook", post(receive))
            .with_state(key.clone());
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("the webhook echo stopped: {e}");
            }
        });
        Ok(Echo { addr, key, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}/webhook", self.addr)
    }

    /// The endpoint's `whsec_…` secret.
    pub fn set_secret(&self, secret: &str) -> anyhow::Result<()> {
        let key = secret_key(secret).ok_or_else(|| anyhow::anyhow!("not a webhook secret"))?;
        let _ = self.key.set(key);
        Ok(())
    }
}

async fn receive(
    State(key): State<Arc<OnceLock<Vec<u8>>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let Some(key) = key.get() else {
        return StatusCode::SERVICE_UNAVAILABLE;
    };
    let id = header("webhook-id");
    let checked = verify(
        key,
        id,
        header("webhook-timestamp"),
        &body,
        header("webhook-signature"),
        now_ms() / 1000,
        TOLERANCE_SECS,
    );
    let event: Value = serde_json::from_slice(&body).unwrap_or_default();
    let what = event["data"]["object"]["profile"]["name"]
        .as_str()
        .or_else(|| event["data"]["object"]["name"].as_str())
        .unwrap_or_default();
    match checked {
        Ok(()) => {
            println!(
                "  webhook: #{} {} {what} (signature verified, {id})",
                event["seq"],
                event["type"].as_str().unwrap_or("?")
            );
            StatusCode::NO_CONTENT
        }
        Err(why) => {
            println!("  webhook: REFUSED {id}: {why}");
            StatusCode::UNAUTHORIZED
        }
    }
}
