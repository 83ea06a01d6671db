//! The long connection's client: endpoint discovery, the WebSocket, pings, reassembly, and
//! an acknowledgement sent only once the event is committed (docs/long-connection.md). Its
//! only I/O is the endpoint call and the socket; where an event goes is the caller's
//! [`EventSink`], which answers once the event is durable.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use prost::Message as _;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{Connector, tungstenite};
use url::Url;

use super::config::{Bounds, Schedule, Settings};
use super::endpoint::{
    ConnectFailure, ConnectionUrl, ENDPOINT_PATH, EndpointRequest, EndpointResponse,
    handshake_failure,
};
use super::frame::{Frame, FrameKind, types};
use super::reassembly::{Limits, Reassembly};

/// Commits one event payload (the JSON envelope as received) to the inbox; `Ok` only once
/// it survives a crash. The acknowledgement waits for it.
pub type EventSink = Arc<dyn Fn(Vec<u8>) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// What the client needs; every knob but the credentials has a default.
#[derive(Clone)]
pub struct SocketConfig {
    /// The Open API base (`https://open.feishu.cn`, Lark's, or the emulator's).
    pub base_url: Url,
    pub app_id: String,
    pub app_secret: String,
    /// Accept a `ws://` connection URL (the loopback emulator); production is `wss://`.
    pub allow_plain_ws: bool,
    pub bounds: Bounds,
    pub schedule: Schedule,
    pub limits: Limits,
    /// A connection that answers nothing this long after a ping is dead.
    pub dead_after: Duration,
    /// For the endpoint call and the handshake.
    pub request_timeout: Duration,
    /// The `connection` label of the metrics.
    pub label: String,
}

impl SocketConfig {
    pub fn new(base_url: Url, app_id: impl Into<String>, app_secret: impl Into<String>) -> Self {
        Self {
            base_url,
            app_id: app_id.into(),
            app_secret: app_secret.into(),
            allow_plain_ws: false,
            bounds: Bounds::default(),
            schedule: Schedule::default(),
            limits: Limits::default(),
            dead_after: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            label: String::new(),
        }
    }
}

/// The client's state, for the connection's status in the API and console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Connecting,
    Connected {
        /// The connection's id in Feishu's logs.
        device_id: String,
    },
    /// The last attempt failed; the client retries (slowly when an admin must act).
    Failed {
        kind: &'static str,
        message: String,
        hint: &'static str,
        needs_admin: bool,
    },
    Stopped,
}

impl Status {
    fn failed(f: &ConnectFailure) -> Self {
        Self::Failed {
            kind: f.kind(),
            message: f.to_string(),
            hint: f.hint(),
            needs_admin: f.needs_admin(),
        }
    }
}

/// Why a connected session ended.
#[derive(Debug)]
enum Ended {
    Stopped,
    Lost(String),
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Runs the long connection until `stop` turns true: connects, receives, acknowledges,
/// reconnects on the schedule. Never gives up on its own.
pub async fn run(
    config: SocketConfig,
    sink: EventSink,
    status: watch::Sender<Status>,
    mut stop: watch::Receiver<bool>,
) {
    let http = match reqwest::Client::builder()
        .timeout(config.request_timeout)
        .build()
    {
        Ok(http) => http,
        Err(e) => {
            let f = ConnectFailure::Transport(e.to_string());
            status.send_replace(Status::failed(&f));
            return;
        }
    };
    let tls = tls_connector();
    let mut settings = Settings::with_bounds(config.bounds);
    let mut attempt: u32 = 0;
    let mut needs_admin = false;
    let label = config.label.clone();
    loop {
        if *stop.borrow() || stop.has_changed().is_err() {
            break;
        }
        if attempt > 0 || needs_admin {
            let delay = config.schedule.delay(
                &settings,
                attempt.saturating_sub(1),
                needs_admin,
                rand::random::<f64>(),
            );
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stopped(&mut stop) => break,
            }
            metrics::counter!("orgsync_long_connection_reconnects_total", "connection" => label.clone())
                .increment(1);
        }
        status.send_replace(Status::Connecting);
        let connected = tokio::select! {
            c = connect(&http, &tls, &config, &mut settings) => c,
            _ = stopped(&mut stop) => break,
        };
        match connected {
            Err(failure) => {
                tracing::warn!(connection = %label, error = %failure, "long connection failed");
                needs_admin = failure.needs_admin();
                status.send_replace(Status::failed(&failure));
                attempt += 1;
            }
            Ok((socket, url)) => {
                tracing::info!(connection = %label, url = %url.redacted(), "long connection open");
                status.send_replace(Status::Connected {
                    device_id: url.device_id.clone(),
                });
                metrics::gauge!("orgsync_long_connection_connected", "connection" => label.clone())
                    .set(1.0);
                let ended = session(socket, &url, &config, &mut settings, &sink, &mut stop).await;
                metrics::gauge!("orgsync_long_connection_connected", "connection" => label.clone())
                    .set(0.0);
                needs_admin = false;
                match ended {
                    Ended::Stopped => break,
                    Ended::Lost(why) => {
                        tracing::warn!(connection = %label, reason = %why, "long connection lost");
                        // The first attempt after a loss waits a random part of the nonce.
                        attempt = 1;
                        status.send_replace(Status::Connecting);
                    }
                }
            }
        }
    }
    status.send_replace(Status::Stopped);
}

/// Resolves once `stop` turns true, or its sender is gone (nobody can stop the client any
/// more: it stops).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// rustls with the bundled web roots (Feishu's certificates are public) and the
/// aws-lc-rs provider the rest of the program uses.
fn tls_connector() -> Option<Connector> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Some(Connector::Rustls(Arc::new(config)))
}

/// Endpoint discovery, then the handshake.
async fn connect(
    http: &reqwest::Client,
    tls: &Option<Connector>,
    config: &SocketConfig,
    settings: &mut Settings,
) -> Result<(Socket, ConnectionUrl), ConnectFailure> {
    let mut endpoint = config.base_url.clone();
    let path = format!("{}{ENDPOINT_PATH}", endpoint.path().trim_end_matches('/'));
    endpoint.set_path(&path);
    let response = http
        .post(endpoint)
        .header("locale", "zh")
        .json(&EndpointRequest {
            app_id: config.app_id.clone(),
            app_secret: config.app_secret.clone(),
        })
        .send()
        .await
        .map_err(|e| ConnectFailure::Transport(e.to_string()))?;
    let http_status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| ConnectFailure::Transport(e.to_string()))?;
    let parsed: Option<EndpointResponse> = serde_json::from_slice(&body).ok();
    if !http_status.is_success() {
        // A non-200 with a code names its reason; without one it is retried.
        return Err(match parsed {
            Some(r) if r.code != 0 => r.into_result().err().unwrap_or(ConnectFailure::NoUrl),
            _ => ConnectFailure::Http {
                status: http_status.as_u16(),
                body: String::from_utf8_lossy(&body).chars().take(200).collect(),
            },
        });
    }
    let parsed = parsed.ok_or_else(|| {
        ConnectFailure::BadUrl(format!(
            "the endpoint's answer is not JSON: {}",
            String::from_utf8_lossy(&body)
                .chars()
                .take(200)
                .collect::<String>()
        ))
    })?;
    let (url, client_config) = parsed.into_result()?;
    if let Some(c) = client_config {
        settings.apply(&c);
    }
    if url.url.starts_with("ws://") && !config.allow_plain_ws {
        return Err(ConnectFailure::BadUrl(format!(
            "{} is not TLS (wss://); plain ws:// is allowed only for a loopback emulator",
            url.redacted()
        )));
    }
    let request = url
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| ConnectFailure::BadUrl(e.to_string()))?;
    let handshake =
        tokio_tungstenite::connect_async_tls_with_config(request, None, false, tls.clone());
    match tokio::time::timeout(config.request_timeout, handshake).await {
        Err(_) => Err(ConnectFailure::Transport(format!(
            "no WebSocket handshake within {:?}",
            config.request_timeout
        ))),
        Ok(Ok((socket, _))) => Ok((socket, url)),
        Ok(Err(tungstenite::Error::Http(response))) => {
            let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok());
            Err(handshake_failure(
                response.status().as_u16(),
                header("Handshake-Status"),
                header("Handshake-Msg"),
                header("Handshake-Autherrcode"),
            ))
        }
        Ok(Err(e)) => Err(ConnectFailure::Transport(e.to_string())),
    }
}

/// One open socket: pings on the server's interval, frames in, acknowledgements out
/// through one writer.
async fn session(
    socket: Socket,
    url: &ConnectionUrl,
    config: &SocketConfig,
    settings: &mut Settings,
    sink: &EventSink,
    stop: &mut watch::Receiver<bool>,
) -> Ended {
    let (mut write, mut read) = socket.split();
    let (out, mut outgoing) = mpsc::channel::<Frame>(256);
    let writer = tokio::spawn(async move {
        while let Some(frame) = outgoing.recv().await {
            let bytes = frame.encode_to_vec();
            if let Err(e) = write.send(Message::Binary(bytes.into())).await {
                return format!("write failed: {e}");
            }
        }
        let _ = write.close().await;
        "closed".to_owned()
    });
    let label = config.label.clone();
    let mut reassembly = Reassembly::new(config.limits);
    let mut ping_every = settings.ping_interval;
    let mut next_ping = tokio::time::Instant::now();
    // Set when a ping leaves and nothing has arrived since.
    let mut silent_since: Option<tokio::time::Instant> = None;
    let ended = loop {
        let dead_at = silent_since.map(|t| t + config.dead_after);
        tokio::select! {
            _ = stopped(stop) => break Ended::Stopped,
            _ = tokio::time::sleep_until(next_ping) => {
                if out.send(Frame::ping(url.service_id)).await.is_err() {
                    break Ended::Lost("the writer stopped".into());
                }
                silent_since.get_or_insert_with(tokio::time::Instant::now);
                next_ping = tokio::time::Instant::now() + ping_every;
            }
            _ = async { tokio::time::sleep_until(dead_at.unwrap_or_else(tokio::time::Instant::now)).await },
                if dead_at.is_some() => {
                break Ended::Lost(format!("nothing received for {:?} after a ping", config.dead_after));
            }
            message = read.next() => {
                let message = match message {
                    None => break Ended::Lost("the server closed the socket".into()),
                    Some(Err(e)) => break Ended::Lost(format!("read failed: {e}")),
                    Some(Ok(m)) => m,
                };
                silent_since = None;
                let bytes = match message {
                    Message::Binary(b) => b,
                    Message::Close(frame) => {
                        break Ended::Lost(format!("the server closed the socket: {frame:?}"))
                    }
                    // Text messages carry nothing; WebSocket pings are answered by the library.
                    _ => continue,
                };
                metrics::counter!("orgsync_long_connection_frames_total", "connection" => label.clone())
                    .increment(1);
                let frame = match Frame::decode_bytes(&bytes) {
                    Ok(f) => f,
                    Err(e) => {
                        tracing::warn!(connection = %label, error = %e, "unreadable frame skipped");
                        continue;
                    }
                };
                match frame.kind() {
                    FrameKind::Pong => match frame.client_config() {
                        Ok(Some(c)) => {
                            settings.apply(&c);
                            if settings.ping_interval != ping_every {
                                next_ping = next_ping - ping_every + settings.ping_interval;
                                ping_every = settings.ping_interval;
                            }
                        }
                        Ok(None) => {}
                        Err(e) => tracing::warn!(connection = %label, error = %e, "pong skipped"),
                    },
                    FrameKind::Ping | FrameKind::Unknown => {}
                    FrameKind::Data(kind) => {
                        let headers = match frame.data_headers() {
                            Ok(h) => h,
                            Err(e) => {
                                tracing::warn!(connection = %label, error = %e, "data frame skipped");
                                continue;
                            }
                        };
                        let complete = match reassembly.push(frame, &headers, Instant::now()) {
                            Ok(Some(c)) => c,
                            Ok(None) => continue,
                            Err(e) => {
                                tracing::warn!(connection = %label, error = %e, "fragment dropped");
                                continue;
                            }
                        };
                        let started = Instant::now();
                        let sink = sink.clone();
                        let out = out.clone();
                        let label = label.clone();
                        // Each message is handled on its own: a slow commit must not hold the
                        // pings or the next events.
                        tokio::spawn(async move {
                            let code = if kind == types::EVENT {
                                metrics::counter!("orgsync_long_connection_events_total", "connection" => label.clone())
                                    .increment(1);
                                match sink(complete.payload).await {
                                    Ok(()) => 200,
                                    Err(e) => {
                                        tracing::warn!(connection = %label, error = %e,
                                            "event not committed; not acknowledged as handled");
                                        500
                                    }
                                }
                            } else {
                                // Not ours (a card callback): acknowledged, not handled.
                                tracing::info!(connection = %label, kind = %kind, "data frame acknowledged unhandled");
                                200
                            };
                            let took = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
                            let _ = out.send(complete.frame.ack(code, took)).await;
                        });
                    }
                }
            }
        }
    };
    drop(out);
    writer.abort();
    ended
}
