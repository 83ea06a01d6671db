//! A webhook receiver for the tests: an HTTP server on loopback that records every request
//! and answers with the statuses it is scripted to (200 once the script is spent), and the
//! independent verifiers (PyPI and npm `standardwebhooks`) that check what it received.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
    /// What the receiver answered.
    pub status: u16,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

#[derive(Default)]
struct Shared {
    received: Vec<Received>,
    script: VecDeque<u16>,
    /// Holds each answer this long (a receiver that is slow, or a crash mid-request).
    delay: Duration,
}

pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    State(shared): State<Arc<Mutex<Shared>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (status, delay) = {
        let mut s = shared.lock().unwrap();
        let status = s.script.pop_front().unwrap_or(200);
        s.received.push(Received {
            id: header("webhook-id"),
            timestamp: header("webhook-timestamp"),
            signature: header("webhook-signature"),
            body: String::from_utf8(body.to_vec()).unwrap(),
            status,
        });
        (status, s.delay)
    };
    tokio::time::sleep(delay).await;
    StatusCode::from_u16(status).unwrap()
}

impl Receiver {
    /// Answers `script` in order, then 200.
    pub async fn start(script: &[u16]) -> Receiver {
        Self::on(SocketAddr::from(([127, 0, 0, 1], 0)), script).await
    }

    pub async fn on(addr: SocketAddr, script: &[u16]) -> Receiver {
        let shared = Arc::new(Mutex::new(Shared {
            script: script.iter().copied().collect(),
            ..Shared::default()
        }));
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver { addr, shared, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn set_delay(&self, delay: Duration) {
        self.shared.lock().unwrap().delay = delay;
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().unwrap().received.clone()
    }

    /// The requests answered 2xx.
    pub fn accepted(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }

    /// Waits until `done` holds for what was received.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.received();
            if done(&got) {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: received {:#?}",
                got.iter().map(|r| (&r.id, r.status)).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Where `scripts/test.sh` installs the independent verifiers.
fn verifiers() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/verifiers")
}

/// Verifies requests with PyPI `standardwebhooks` and npm `standardwebhooks` (code we did
/// not write): returns, for each library, whether each request verified with `secret` (their
/// timestamp tolerance is five minutes around now).
pub fn verify_independently(secret: &str, requests: &[Received]) -> Vec<(String, Vec<bool>)> {
    let dir = verifiers();
    let input = json!({
        "secret": secret,
        "requests": requests.iter().map(|r| json!({
            "headers": {
                "webhook-id": r.id,
                "webhook-timestamp": r.timestamp,
                "webhook-signature": r.signature,
            },
            "body": r.body,
        })).collect::<Vec<_>>(),
    })
    .to_string();
    let python = r#"
import json, sys
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
doc = json.loads(sys.stdin.read())
wh = Webhook(doc["secret"])
out = []
for r in doc["requests"]:
    try:
        wh.verify(r["body"], r["headers"])
        out.append(True)
    except WebhookVerificationError:
        out.append(False)
print(json.dumps(out))
"#;
    let node = r#"
const { Webhook } = require("standardwebhooks");
let input = "";
process.stdin.on("data", d => input += d);
process.stdin.on("end", () => {
  const doc = JSON.parse(input);
  const wh = new Webhook(doc.secret);
  const out = doc.requests.map(r => { try { wh.verify(r.body, r.headers); return true; } catch (e) { return false; } });
  console.log(JSON.stringify(out));
});
"#;
    let run = |program: &str, args: &[&str], env: (&str, PathBuf)| -> Vec<bool> {
        use std::io::Write as _;
        let mut child = std::process::Command::new(program)
            .args(args)
            .env(env.0, env.1)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{program} could not verify (run scripts/test.sh, which installs the verifiers under target/verifiers): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    vec![
        (
            "PyPI standardwebhooks".to_owned(),
            run("python3", &["-c", python], ("PYTHONPATH", dir.join("py"))),
        ),
        (
            "npm standardwebhooks".to_owned(),
            run(
                "node",
                &["-e", node],
                ("NODE_PATH", dir.join("node/node_modules")),
            ),
        ),
    ]
}
