//! A scriptable stand-in for the Feishu Open API: an axum server on 127.0.0.1:0 that
//! records every request and answers through closures.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use feishu::client::{ClientConfig, FeishuClient, PacingConfig, RetryConfig};
use serde_json::{Value, json};

pub const TOKEN_PATH: &str = "/open-apis/auth/v3/tenant_access_token/internal";

/// One request as the stub saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Decoded query pairs, in order (repeated keys kept).
    pub query: Vec<(String, String)>,
    pub authorization: Option<String>,
    pub body: Option<Value>,
    /// 1 for the first request to this path, 2 for the second, …
    pub nth: usize,
}

impl Recorded {
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn params(&self, key: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// What the stub answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub content_type: &'static str,
    /// How long to wait before answering.
    pub delay: Duration,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.to_string(),
            content_type: "application/json; charset=utf-8",
            delay: Duration::ZERO,
        }
    }

    /// `{"code":0,"msg":"success","data":…}`.
    pub fn ok(data: Value) -> Self {
        Self::json(200, json!({"code": 0, "msg": "success", "data": data}))
    }

    /// A Feishu error envelope.
    pub fn code(status: u16, code: i64, msg: &str) -> Self {
        Self::json(status, json!({"code": code, "msg": msg}))
    }

    pub fn text(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.to_owned(),
            content_type: "text/plain; charset=utf-8",
            delay: Duration::ZERO,
        }
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

type Handler = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

struct Shared {
    requests: Mutex<Vec<Recorded>>,
    token: Handler,
    api: Handler,
}

pub struct Stub {
    pub base_url: String,
    shared: Arc<Shared>,
}

/// The default token endpoint: `t-1`, `t-2`, … (one new token per request), 2 h lifetime.
pub fn numbered_tokens(req: &Recorded) -> Reply {
    Reply::json(
        200,
        json!({"code": 0, "msg": "ok", "tenant_access_token": format!("t-{}", req.nth), "expire": 7200}),
    )
}

impl Stub {
    /// A stub with numbered tokens and `api` answering everything else.
    pub async fn start(api: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_with(numbered_tokens, api).await
    }

    pub async fn start_with(
        token: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
        api: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            token: Arc::new(token),
            api: Arc::new(api),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            base_url: format!("http://{addr}"),
            shared,
        }
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Requests to one path (e.g. `/open-apis/contact/v3/users/batch`).
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    pub fn token_requests(&self) -> usize {
        self.requests_to(TOKEN_PATH).len()
    }

    /// Requests other than the token endpoint.
    pub fn api_requests(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path != TOKEN_PATH)
            .collect()
    }

    /// A config for this stub: no pacing, millisecond backoff, 3 retries, 3 throttle waits.
    pub fn config(&self) -> ClientConfig {
        let mut config =
            ClientConfig::new(self.base_url.parse().unwrap(), "cli_test", "secret-value");
        config.pacing = PacingConfig::disabled();
        config.retry = RetryConfig {
            max_retries: 3,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            max_rate_limit_waits: 3,
            max_rate_limit_wait: Duration::from_secs(5),
        };
        config
    }

    pub fn client(&self) -> FeishuClient {
        FeishuClient::new(self.config()).unwrap()
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let recorded = {
        let mut requests = shared.requests.lock().unwrap();
        let nth = requests.iter().filter(|r| r.path == uri.path()).count() + 1;
        let recorded = Recorded {
            method: method.to_string(),
            path: uri.path().to_owned(),
            query,
            authorization: headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body: serde_json::from_slice(&body).ok(),
            nth,
        };
        requests.push(recorded.clone());
        recorded
    };
    let reply = if recorded.path == TOKEN_PATH {
        (shared.token)(&recorded)
    } else {
        (shared.api)(&recorded)
    };
    tokio::time::sleep(reply.delay).await;
    let mut out_headers = HeaderMap::new();
    out_headers.insert("content-type", HeaderValue::from_static(reply.content_type));
    for (name, value) in reply.headers {
        out_headers.insert(
            HeaderName::try_from(name).unwrap(),
            HeaderValue::try_from(value).unwrap(),
        );
    }
    (
        StatusCode::from_u16(reply.status).unwrap(),
        out_headers,
        reply.body,
    )
        .into_response()
}

/// `n` users `ou_{prefix}{i}` as JSON.
pub fn users(prefix: &str, range: std::ops::Range<usize>) -> Vec<Value> {
    range
        .map(|i| json!({"open_id": format!("ou_{prefix}{i}"), "name": format!("User {i}")}))
        .collect()
}
