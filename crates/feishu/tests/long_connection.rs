//! The long-connection client against a minimal Feishu side on loopback: endpoint
//! discovery over HTTP, frames over a WebSocket, built from the shared vectors
//! (docs/long-connection.md).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::routing::post;
use feishu::long_connection::frame::{Frame, FrameKind, METHOD_DATA};
use feishu::long_connection::socket::{self, EventSink, SocketConfig, Status};
use feishu::long_connection::{ClientConfig, vectors as v};
use futures::{FutureExt, SinkExt, StreamExt};
use prost::Message as _;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

const APP_ID: &str = "cli_a1b2c3d4e5f60718";
const SECRET: &str = "secret";

/// The Feishu side: an endpoint that answers `answer` (with the socket's URL filled in when
/// it is a success), counting its calls, and a WebSocket listener whose connections go to
/// the test.
struct FakeFeishu {
    base: url::Url,
    endpoint_calls: Arc<AtomicUsize>,
    sockets: mpsc::Receiver<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>>,
}

async fn fake_feishu(answer: Value) -> FakeFeishu {
    let ws = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws_port = ws.local_addr().unwrap().port();
    let (to_test, sockets) = mpsc::channel(8);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = ws.accept().await {
            if let Ok(socket) = tokio_tungstenite::accept_async(tcp).await {
                let _ = to_test.send(socket).await;
            }
        }
    });
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let app = axum::Router::new().route(
        "/callback/ws/endpoint",
        post(move |headers: axum::http::HeaderMap, Json(body): Json<Value>| {
            let calls = counted.clone();
            let mut answer = answer.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                assert_eq!(headers.get("locale").unwrap(), "zh");
                assert_eq!(body, json!({"AppID": APP_ID, "AppSecret": SECRET}));
                if answer["code"] == 0 {
                    answer["data"]["URL"] = json!(format!(
                        "ws://127.0.0.1:{ws_port}/ws/v2?fpid=493&aid=552564&device_id=7300000000000000001&access_key=0123456789abcdef0123456789abcdef&service_id={}&ticket=6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b",
                        v::SERVICE_ID
                    ));
                }
                Json(answer)
            }
        }),
    );
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = url::Url::parse(&format!("http://{}", http.local_addr().unwrap())).unwrap();
    tokio::spawn(async move { axum::serve(http, app).await });
    FakeFeishu {
        base,
        endpoint_calls: calls,
        sockets,
    }
}

fn success(nonce: i64) -> Value {
    json!({"code": 0, "msg": "", "data": {"ClientConfig": {
        "ReconnectCount": -1, "ReconnectInterval": 1, "ReconnectNonce": nonce, "PingInterval": 120}}})
}

struct Client {
    status: watch::Receiver<Status>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn start(base: &url::Url, allow_plain_ws: bool, sink: EventSink) -> Client {
    let mut config = SocketConfig::new(base.clone(), APP_ID, SECRET);
    config.allow_plain_ws = allow_plain_ws;
    config.label = "test".into();
    let (status_tx, status) = watch::channel(Status::Connecting);
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(socket::run(config, sink, status_tx, stop_rx));
    Client { status, stop, task }
}

async fn wait_for(status: &mut watch::Receiver<Status>, want: impl Fn(&Status) -> bool) -> Status {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let now = status.borrow_and_update().clone();
            if want(&now) {
                return now;
            }
            status.changed().await.unwrap();
        }
    })
    .await
    .expect("the status expected")
}

fn no_events() -> EventSink {
    Arc::new(|_| async { Ok(()) }.boxed())
}

/// The next binary frame the client sends (pings answered with a pong).
async fn next_data_frame(
    socket: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
) -> Frame {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a frame from the client")
            .unwrap()
            .unwrap();
        let Message::Binary(bytes) = message else {
            continue;
        };
        let frame = Frame::decode_bytes(&bytes).unwrap();
        if frame.kind() == FrameKind::Ping {
            assert_eq!(frame.service, v::SERVICE_ID);
            let pong = Frame::pong(v::SERVICE_ID, &ClientConfig::default());
            socket
                .send(Message::Binary(pong.encode_to_vec().into()))
                .await
                .unwrap();
            continue;
        }
        return frame;
    }
}

#[tokio::test]
async fn a_split_event_is_acknowledged_only_after_its_commit() {
    let mut feishu = fake_feishu(success(1)).await;
    let committed = Arc::new(AtomicBool::new(false));
    let received = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink: EventSink = {
        let committed = committed.clone();
        let received = received.clone();
        Arc::new(move |payload: Vec<u8>| {
            let committed = committed.clone();
            let received = received.clone();
            async move {
                received.lock().unwrap().push(payload);
                // A slow commit: the acknowledgement must wait for it.
                tokio::time::sleep(Duration::from_millis(300)).await;
                committed.store(true, Ordering::SeqCst);
                Ok(())
            }
            .boxed()
        })
    };
    let mut client = start(&feishu.base, true, sink);
    let mut socket = feishu.sockets.recv().await.unwrap();
    let status = wait_for(&mut client.status, |s| {
        matches!(s, Status::Connected { .. })
    })
    .await;
    assert_eq!(
        status,
        Status::Connected {
            device_id: "7300000000000000001".into()
        }
    );
    // A server ping, a text message and an unknown control frame are ignored.
    let mut server_ping = Frame::ping(v::SERVICE_ID);
    server_ping.seq_id = 7;
    socket
        .send(Message::Binary(server_ping.encode_to_vec().into()))
        .await
        .unwrap();
    socket.send(Message::Text("hello".into())).await.unwrap();
    let [first, second] = v::split_event_frames();
    for fragment in [&first, &second] {
        socket
            .send(Message::Binary(fragment.encode_to_vec().into()))
            .await
            .unwrap();
    }
    let ack = next_data_frame(&mut socket).await;
    assert!(
        committed.load(Ordering::SeqCst),
        "acknowledged before the commit"
    );
    assert_eq!(
        received.lock().unwrap().as_slice(),
        [v::EVENT_PAYLOAD.as_bytes().to_vec()]
    );
    // Built from the fragment that completed the message, every header echoed, plus biz_rt.
    assert_eq!((ack.seq_id, ack.log_id), (second.seq_id, second.log_id));
    assert_eq!(ack.method, METHOD_DATA);
    assert_eq!(ack.headers[..6], second.headers[..]);
    assert_eq!(ack.headers[6].key, "biz_rt");
    assert!(ack.headers[6].value.parse::<i64>().unwrap() >= 300);
    assert_eq!(ack.ack_code(), Some(200));

    client.stop.send(true).unwrap();
    wait_for(&mut client.status, |s| *s == Status::Stopped).await;
    client.task.await.unwrap();
}

#[tokio::test]
async fn a_failed_commit_is_answered_500() {
    let mut feishu = fake_feishu(success(1)).await;
    let sink: EventSink = Arc::new(|_| async { Err("the inbox is down".to_owned()) }.boxed());
    let client = start(&feishu.base, true, sink);
    let mut socket = feishu.sockets.recv().await.unwrap();
    socket
        .send(Message::Binary(v::event_frame().encode_to_vec().into()))
        .await
        .unwrap();
    let ack = next_data_frame(&mut socket).await;
    assert_eq!(ack.ack_code(), Some(500));
    // Nobody left to stop it: it stops (rather than spin).
    drop(client.stop);
    tokio::time::timeout(Duration::from_secs(5), client.task)
        .await
        .expect("the client stops when its stop sender is gone")
        .unwrap();
}

#[tokio::test]
async fn a_lost_socket_reconnects_through_a_fresh_endpoint_call() {
    let mut feishu = fake_feishu(success(1)).await;
    let mut client = start(&feishu.base, true, no_events());
    let socket = feishu.sockets.recv().await.unwrap();
    wait_for(&mut client.status, |s| {
        matches!(s, Status::Connected { .. })
    })
    .await;
    drop(socket);
    // A new ticket for the new socket: endpoint discovery again.
    let mut again = tokio::time::timeout(Duration::from_secs(10), feishu.sockets.recv())
        .await
        .expect("a second connection")
        .unwrap();
    assert_eq!(feishu.endpoint_calls.load(Ordering::SeqCst), 2);
    // And it works: an event is acknowledged.
    again
        .send(Message::Binary(v::event_frame().encode_to_vec().into()))
        .await
        .unwrap();
    assert_eq!(next_data_frame(&mut again).await.ack_code(), Some(200));
    client.stop.send(true).unwrap();
    client.task.await.unwrap();
}

#[tokio::test]
async fn wrong_credentials_and_plain_sockets_show_what_to_fix() {
    let feishu = fake_feishu(json!({
        "code": 1000040345, "msg": "app_id or app_secret is invalid", "data": {}
    }))
    .await;
    let mut client = start(&feishu.base, true, no_events());
    let status = wait_for(&mut client.status, |s| matches!(s, Status::Failed { .. })).await;
    let Status::Failed {
        kind,
        hint,
        needs_admin,
        message,
    } = status
    else {
        unreachable!()
    };
    assert_eq!(kind, "credentials");
    assert!(needs_admin);
    assert!(message.contains("1000040345"), "{message}");
    assert!(hint.contains("App Secret"), "{hint}");
    client.stop.send(true).unwrap();
    client.task.await.unwrap();

    // A ws:// URL is refused unless allowed (a loopback emulator).
    let feishu = fake_feishu(success(1)).await;
    let mut client = start(&feishu.base, false, no_events());
    let status = wait_for(&mut client.status, |s| matches!(s, Status::Failed { .. })).await;
    let Status::Failed { message, .. } = status else {
        unreachable!()
    };
    assert!(message.contains("wss://"), "{message}");
    assert!(
        !message.contains("0123456789abcdef0123456789abcdef"),
        "redacted: {message}"
    );
    client.stop.send(true).unwrap();
    client.task.await.unwrap();
}
