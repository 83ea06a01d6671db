//! Feishu's long-connection side (docs/long-connection.md): endpoint discovery at
//! `POST /callback/ws/endpoint`, the WebSocket at `/ws/v2` with its one-time ticket, pongs
//! carrying the client config, and delivery of an app's events to one random connected
//! client, acknowledged by `message_id`. Switches: the config sent, the connection limit,
//! injected endpoint failures, refused handshakes, suppressed pongs, fragmented payloads, and
//! closing every socket of an app.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use feishu::long_connection::endpoint::{EndpointData, EndpointRequest, EndpointResponse, codes};
use feishu::long_connection::frame::{Frame, FrameKind, keys};
use feishu::long_connection::{ClientConfig, vectors};
use futures::{SinkExt, StreamExt};
use http::{HeaderMap, StatusCode, header};
use prost::Message as _;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::server::EmulatorState;

/// An endpoint failure to answer instead of a URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointFault {
    /// HTTP status of the answer (Feishu answers its codes with 200).
    #[serde(default = "ok_status")]
    pub http_status: u16,
    pub code: i64,
    #[serde(default)]
    pub msg: String,
}

fn ok_status() -> u16 {
    200
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LongConnectionConfig {
    /// Sent with every URL and every pong.
    pub client_config: ClientConfig,
    /// Live connections per app (Feishu: 50).
    pub max_connections: usize,
    /// How long a ticket may wait for its handshake.
    pub ticket_ttl: Duration,
    /// How long a delivery waits for its acknowledgement (Feishu: 3 s).
    pub ack_timeout: Duration,
    /// Split payloads into fragments of at most this many bytes (none: whole).
    pub fragment_bytes: Option<usize>,
    /// Answer pings with nothing (a liveness test).
    pub suppress_pongs: bool,
    /// Answer endpoint discovery with this failure.
    pub endpoint_fault: Option<EndpointFault>,
    /// Refuse handshakes with this `Handshake-Status` (and `Handshake-Autherrcode`).
    pub refuse_handshake: Option<(u16, Option<i64>)>,
}

impl Default for LongConnectionConfig {
    fn default() -> Self {
        Self {
            client_config: vectors::pong_config(),
            max_connections: 50,
            ticket_ttl: Duration::from_secs(60),
            ack_timeout: Duration::from_secs(3),
            fragment_bytes: None,
            suppress_pongs: false,
            endpoint_fault: None,
            refuse_handshake: None,
        }
    }
}

/// What a client sent, for assertions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Received {
    pub app_id: String,
    pub device_id: String,
    /// `ping` or `ack`.
    pub kind: String,
    pub service: i32,
    pub message_id: Option<String>,
    pub code: Option<u16>,
    pub biz_rt: Option<String>,
}

struct Ticket {
    app_id: String,
    device_id: String,
    issued: Instant,
}

struct Conn {
    id: u64,
    device_id: String,
    out: mpsc::UnboundedSender<Option<Frame>>,
}

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<u16>>>>;

/// The long-connection gateway of the emulator.
pub struct LongConnections {
    config: Mutex<LongConnectionConfig>,
    tickets: Mutex<HashMap<String, Ticket>>,
    conns: Mutex<HashMap<String, Vec<Conn>>>,
    pending: Pending,
    received: Mutex<Vec<Received>>,
    next_id: AtomicU64,
    next_seq: AtomicU64,
}

impl std::fmt::Debug for LongConnections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LongConnections").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Default for LongConnections {
    fn default() -> Self {
        Self::new(LongConnectionConfig::default())
    }
}

impl LongConnections {
    pub fn new(config: LongConnectionConfig) -> Self {
        Self {
            config: Mutex::new(config),
            tickets: Mutex::new(HashMap::new()),
            conns: Mutex::new(HashMap::new()),
            pending: Arc::default(),
            received: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            next_seq: AtomicU64::new(1),
        }
    }

    pub fn config(&self) -> LongConnectionConfig {
        lock(&self.config).clone()
    }

    pub fn set_config(&self, config: LongConnectionConfig) {
        *lock(&self.config) = config;
    }

    /// Live connections of an app.
    pub fn connected(&self, app_id: &str) -> usize {
        lock(&self.conns).get(app_id).map_or(0, Vec::len)
    }

    /// Everything clients sent so far.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.received).clone()
    }

    /// Closes every socket of an app (as a server restart would); returns how many.
    pub fn close_all(&self, app_id: &str) -> usize {
        let conns = lock(&self.conns);
        let list = conns.get(app_id).map_or(&[][..], Vec::as_slice);
        for c in list {
            let _ = c.out.send(None);
        }
        list.len()
    }

    /// Delivers one event to one random connected client of the app and waits for its
    /// acknowledgement: its `code`, or why there is none.
    pub async fn deliver(&self, app_id: &str, plaintext: &str) -> Result<u16, String> {
        let config = self.config();
        let (out, device_id) = {
            let conns = lock(&self.conns);
            let list = conns.get(app_id).map_or(&[][..], Vec::as_slice);
            if list.is_empty() {
                return Err("no client of the app is connected".into());
            }
            let c = &list[rand::rng().random_range(0..list.len())];
            (c.out.clone(), c.device_id.clone())
        };
        let message_id = uuid_like();
        let trace_id = hex::encode(rand::rng().random::<[u8; 16]>());
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
            .to_string();
        let bytes = plaintext.as_bytes();
        let size = config.fragment_bytes.unwrap_or(bytes.len()).max(1);
        let parts: Vec<&[u8]> = if bytes.is_empty() {
            vec![bytes]
        } else {
            bytes.chunks(size).collect()
        };
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(message_id.clone(), tx);
        for (seq, part) in parts.iter().enumerate() {
            let frame = Frame::event(
                self.next_seq.fetch_add(1, Ordering::SeqCst),
                rand::rng().random(),
                vectors::SERVICE_ID,
                &timestamp,
                &message_id,
                (seq, parts.len()),
                &trace_id,
                part,
            );
            if out.send(Some(frame)).is_err() {
                lock(&self.pending).remove(&message_id);
                return Err(format!("connection {device_id} closed"));
            }
        }
        let outcome = tokio::time::timeout(config.ack_timeout, rx).await;
        lock(&self.pending).remove(&message_id);
        match outcome {
            Ok(Ok(code)) => Ok(code),
            Ok(Err(_)) => Err(format!("connection {device_id} closed")),
            Err(_) => Err(format!(
                "no acknowledgement within {:?} on {device_id}",
                config.ack_timeout
            )),
        }
    }
}

/// A random UUID-shaped id (message ids and tickets look like this on Feishu).
fn uuid_like() -> String {
    let b: [u8; 16] = rand::rng().random();
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// `POST /callback/ws/endpoint`.
pub async fn endpoint(
    State(state): State<Arc<EmulatorState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let gateway = &state.long_connections;
    let config = gateway.config();
    let fail = |code: i64, msg: &str| EndpointResponse {
        code,
        msg: msg.to_owned(),
        data: Some(EndpointData::default()),
    };
    if let Some(fault) = config.endpoint_fault {
        let status = StatusCode::from_u16(fault.http_status).unwrap_or(StatusCode::OK);
        return (status, Json(fail(fault.code, &fault.msg))).into_response();
    }
    let Ok(request) = serde_json::from_slice::<EndpointRequest>(&body) else {
        return Json(fail(
            codes::CREDENTIALS_MISSING,
            "app_id or app_secret is null",
        ))
        .into_response();
    };
    if request.app_id.is_empty() || request.app_secret.is_empty() {
        return Json(fail(
            codes::CREDENTIALS_MISSING,
            "app_id or app_secret is null",
        ))
        .into_response();
    }
    let known = state.with_tenant(|t| {
        t.apps
            .get(&request.app_id)
            .is_some_and(|a| a.app_secret == request.app_secret)
    });
    if !known {
        return Json(fail(
            codes::CREDENTIALS_INVALID,
            "app_id or app_secret is invalid",
        ))
        .into_response();
    }
    if gateway.connected(&request.app_id) >= config.max_connections {
        return Json(fail(
            codes::TOO_MANY_CONNECTIONS,
            "the number of connections exceeded the limit",
        ))
        .into_response();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let mut rng = rand::rng();
    let device_id = format!("7{:018}", rng.random_range(0..1_000_000_000_000_000_000u64));
    let access_key = hex::encode(rng.random::<[u8; 16]>());
    let ticket = uuid_like();
    lock(&gateway.tickets).insert(
        ticket.clone(),
        Ticket {
            app_id: request.app_id,
            device_id: device_id.clone(),
            issued: Instant::now(),
        },
    );
    // `device_id` and `service_id` never first: one SDK parses the URL as a query string.
    let url = format!(
        "ws://{host}/ws/v2?fpid=493&aid=552564&device_id={device_id}&access_key={access_key}&service_id={}&ticket={ticket}",
        vectors::SERVICE_ID
    );
    Json(EndpointResponse {
        code: codes::OK,
        msg: String::new(),
        data: Some(EndpointData {
            url: Some(url),
            client_config: Some(config.client_config),
        }),
    })
    .into_response()
}

#[derive(Debug, Deserialize)]
pub struct SocketQuery {
    #[serde(default)]
    ticket: String,
}

fn refuse(status: u16, msg: &str, auth_code: Option<i64>) -> Response {
    let mut response = (StatusCode::BAD_REQUEST, msg.to_owned()).into_response();
    let h = response.headers_mut();
    if let Ok(v) = status.to_string().parse() {
        h.insert("Handshake-Status", v);
    }
    if let Ok(v) = msg.parse() {
        h.insert("Handshake-Msg", v);
    }
    if let Some(code) = auth_code.and_then(|c| c.to_string().parse().ok()) {
        h.insert("Handshake-Autherrcode", code);
    }
    response
}

/// `GET /ws/v2`: the WebSocket, for a known, fresh, unused ticket.
pub async fn socket(
    State(state): State<Arc<EmulatorState>>,
    Query(query): Query<SocketQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let gateway = &state.long_connections;
    let config = gateway.config();
    if let Some((status, auth)) = config.refuse_handshake {
        return refuse(status, "refused by the emulator's switch", auth);
    }
    let Some(ticket) = lock(&gateway.tickets).remove(&query.ticket) else {
        return refuse(514, "unknown or used ticket", None);
    };
    if ticket.issued.elapsed() > config.ticket_ttl {
        return refuse(514, "expired ticket", None);
    }
    if gateway.connected(&ticket.app_id) >= config.max_connections {
        return refuse(
            514,
            "the number of connections exceeded the limit",
            Some(codes::TOO_MANY_CONNECTIONS),
        );
    }
    let state = state.clone();
    upgrade.on_upgrade(move |ws| serve(state, ws, ticket.app_id, ticket.device_id))
}

async fn serve(state: Arc<EmulatorState>, ws: WebSocket, app_id: String, device_id: String) {
    let gateway = &state.long_connections;
    let id = gateway.next_id.fetch_add(1, Ordering::SeqCst);
    let (out, mut outgoing) = mpsc::unbounded_channel::<Option<Frame>>();
    lock(&gateway.conns)
        .entry(app_id.clone())
        .or_default()
        .push(Conn {
            id,
            device_id: device_id.clone(),
            out: out.clone(),
        });
    let (mut write, mut read) = ws.split();
    loop {
        tokio::select! {
            next = outgoing.recv() => match next {
                Some(Some(frame)) => {
                    if write.send(Message::Binary(frame.encode_to_vec().into())).await.is_err() {
                        break;
                    }
                }
                // Closed by a switch, or the gateway dropped.
                _ => {
                    let _ = write.close().await;
                    break;
                }
            },
            message = read.next() => {
                let Some(Ok(message)) = message else { break };
                let Message::Binary(bytes) = message else { continue };
                let Ok(frame) = Frame::decode_bytes(&bytes) else { continue };
                let record = |kind: &str, frame: &Frame| Received {
                    app_id: app_id.clone(),
                    device_id: device_id.clone(),
                    kind: kind.to_owned(),
                    service: frame.service,
                    message_id: frame.header(keys::MESSAGE_ID).map(str::to_owned),
                    code: frame.ack_code(),
                    biz_rt: frame.header(keys::BIZ_RT).map(str::to_owned),
                };
                match frame.kind() {
                    FrameKind::Ping => {
                        lock(&gateway.received).push(record("ping", &frame));
                        let config = gateway.config();
                        if !config.suppress_pongs {
                            let _ = out.send(Some(Frame::pong(frame.service, &config.client_config)));
                        }
                    }
                    FrameKind::Data(_) => {
                        lock(&gateway.received).push(record("ack", &frame));
                        let code = frame.ack_code();
                        if let (Some(message_id), Some(code)) = (frame.header(keys::MESSAGE_ID), code)
                            && let Some(waiting) = lock(&gateway.pending).remove(message_id)
                        {
                            let _ = waiting.send(code);
                        }
                    }
                    FrameKind::Pong | FrameKind::Unknown => {}
                }
            }
        }
    }
    let mut conns = lock(&gateway.conns);
    if let Some(list) = conns.get_mut(&app_id) {
        list.retain(|c| c.id != id);
    }
}
