//! The long-connection side (docs/long-connection.md): the official Python SDK's client and
//! orgsync's own client connect, receive the events the tenant's changes cause, and
//! acknowledge them.

use std::sync::Arc;
use std::time::Duration;

use emulator::Emulator;
use emulator::long_connection::{EndpointFault, LongConnectionConfig, LongConnections};
use emulator::pusher::PushConfig;
use feishu::long_connection::socket::{self, EventSink, SocketConfig, Status};
use feishu::long_connection::{ClientConfig, vectors};
use futures::FutureExt;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use crate::support::{APP, SECRET, build_tenant, full_app, start};

fn verifiers() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/verifiers/py")
}

async fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    for _ in 0..400 {
        if ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// The next item a channel gets, within 20 s.
async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>, what: &str) -> T {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .expect("the channel is open")
}

async fn admin(base: &str, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn hire(base: &str, name: &str) -> String {
    let (status, v) = admin(
        base,
        reqwest::Method::POST,
        "/_emulator/users",
        json!({"name": name, "departments": ["0"]}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    v["changes"][0]["id"].as_str().unwrap().to_owned()
}

/// An emulator whose re-pushes come within milliseconds and whose clients reconnect and
/// ping every second.
async fn fast_emulator() -> (Emulator, String, Arc<LongConnections>) {
    let (tenant, _) = build_tenant(20, 4, vec![full_app()]);
    let emu = start(tenant, |c| {
        c.push = PushConfig {
            time_scale: 0.001,
            ..PushConfig::default()
        }
    })
    .await;
    let base = emu.base_url();
    let gateway = emu.state().long_connections.clone();
    gateway.set_config(LongConnectionConfig {
        client_config: ClientConfig {
            reconnect_count: Some(-1),
            reconnect_interval: Some(1),
            reconnect_nonce: Some(1),
            ping_interval: Some(1),
        },
        ..LongConnectionConfig::default()
    });
    (emu, base, gateway)
}

const PYTHON_CLIENT: &str = r#"
import sys, lark_oapi as lark
def created(data):
    print("EVENT", data.header.event_id, data.event.object.name, flush=True)
handler = lark.EventDispatcherHandler.builder("", "").register_p2_contact_user_created_v3(created).build()
client = lark.ws.Client(sys.argv[1], sys.argv[2], event_handler=handler, domain=sys.argv[3], log_level=lark.LogLevel.DEBUG)
client.start()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_receives_and_acknowledges_pushed_events() {
    if !verifiers().join("lark_oapi").exists() {
        assert!(
            std::env::var("CI").is_err(),
            "PyPI lark-oapi is missing: scripts/test.sh installs it under target/verifiers"
        );
        eprintln!("PyPI lark-oapi is not installed under target/verifiers: skipped");
        return;
    }
    let (emu, base, gateway) = fast_emulator().await;

    // The console saves the mode only while a client is connected.
    let mode = json!({"event_mode": "long_connection"});
    let path = format!("/_emulator/apps/{APP}");
    let (status, v) = admin(&base, reqwest::Method::PATCH, &path, mode.clone()).await;
    assert_eq!(status, 400, "{v}");

    let mut python = tokio::process::Command::new("python3")
        .args(["-c", PYTHON_CLIENT, APP, SECRET, &base])
        .env("PYTHONPATH", verifiers())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = python.stdout.take().unwrap();
    let (lines_tx, mut lines) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        use tokio::io::AsyncBufReadExt;
        let mut reader = tokio::io::BufReader::new(stdout).lines();
        // The SDK logs to stdout too; the handler's lines start with EVENT.
        while let Ok(Some(line)) = reader.next_line().await {
            if line.starts_with("EVENT ") {
                let _ = lines_tx.send(line);
            }
        }
    });
    wait_until("the Python SDK to connect", || gateway.connected(APP) == 1).await;
    let (status, v) = admin(&base, reqwest::Method::PATCH, &path, mode).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["event_mode"], "long_connection");

    // A hire: the SDK's handler sees the event, and the emulator its acknowledgement.
    hire(&base, "长连接").await;
    let event_id = emu
        .state()
        .events
        .emitted()
        .last()
        .map(|e| e.event_id.clone())
        .unwrap();
    let line = next(&mut lines, "the SDK's handler ran").await;
    assert_eq!(line, format!("EVENT {event_id} 长连接"));
    wait_until("the acknowledgement", || {
        gateway
            .received()
            .iter()
            .any(|r| r.kind == "ack" && r.code == Some(200))
    })
    .await;
    let received = gateway.received();
    let ack = received.iter().find(|r| r.kind == "ack").unwrap();
    assert!(ack.biz_rt.is_some(), "{ack:?}");
    assert!(
        received
            .iter()
            .any(|r| r.kind == "ping" && r.service == vectors::SERVICE_ID),
        "the SDK pings with the URL's service_id: {received:?}"
    );
    assert!(
        emu.state()
            .events
            .pusher()
            .wait_idle(Duration::from_secs(10))
            .await
    );
    assert_eq!(emu.state().events.pusher().stats().delivered, 1);

    // Fragmented payloads, cut every 100 bytes (inside characters too), switched on through
    // the admin API: the SDK joins them.
    let (status, v) = admin(
        &base,
        reqwest::Method::GET,
        "/_emulator/long-connection",
        json!({}),
    )
    .await;
    assert_eq!((status, &v["connected"][APP]), (200, &json!(1)), "{v}");
    let mut config = v["config"].clone();
    config["fragment_bytes"] = json!(100);
    let (status, v) = admin(
        &base,
        reqwest::Method::PUT,
        "/_emulator/long-connection",
        config,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(gateway.config().fragment_bytes, Some(100));
    hire(&base, "分片的名字").await;
    let line = next(&mut lines, "the SDK's handler ran again").await;
    assert!(line.ends_with(" 分片的名字"), "{line}");

    // Its socket closed: the SDK reconnects through a fresh endpoint call and a new ticket.
    let (status, v) = admin(
        &base,
        reqwest::Method::POST,
        &format!("/_emulator/apps/{APP}/long-connection/close"),
        json!({}),
    )
    .await;
    assert_eq!((status, &v["closed"]), (200, &json!(1)), "{v}");
    wait_until("the SDK to reconnect", || gateway.connected(APP) == 1).await;
    hire(&base, "重连之后").await;
    let line = next(&mut lines, "the SDK's handler ran after the reconnect").await;
    assert!(line.ends_with(" 重连之后"), "{line}");
    python.kill().await.unwrap();
}

fn recording_sink() -> (EventSink, mpsc::UnboundedReceiver<Value>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let sink: EventSink = Arc::new(move |payload: Vec<u8>| {
        let tx = tx.clone();
        async move {
            let v: Value = serde_json::from_slice(&payload).map_err(|e| e.to_string())?;
            tx.send(v).map_err(|e| e.to_string())
        }
        .boxed()
    });
    (sink, rx)
}

async fn status_until(
    status: &mut watch::Receiver<Status>,
    want: impl Fn(&Status) -> bool,
) -> Status {
    tokio::time::timeout(Duration::from_secs(15), async {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orgsyncs_client_connects_receives_and_survives_closed_sockets() {
    let (emu, base, gateway) = fast_emulator().await;
    let run = |secret: &str, sink: EventSink| {
        let mut config = SocketConfig::new(url::Url::parse(&base).unwrap(), APP, secret);
        config.allow_plain_ws = true;
        let (status_tx, status) = watch::channel(Status::Connecting);
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(socket::run(config, sink, status_tx, stop_rx));
        (status, stop, task)
    };

    // A wrong secret: the status says what to fix.
    let (sink, _) = recording_sink();
    let (mut status, stop, task) = run("wrong", sink);
    let failed = status_until(&mut status, |s| matches!(s, Status::Failed { .. })).await;
    assert!(
        matches!(
            &failed,
            Status::Failed {
                kind: "credentials",
                needs_admin: true,
                ..
            }
        ),
        "{failed:?}"
    );
    stop.send(true).unwrap();
    task.await.unwrap();

    // Too many connections, as the endpoint reports it.
    gateway.set_config(LongConnectionConfig {
        endpoint_fault: Some(EndpointFault {
            http_status: 200,
            code: 1_000_040_350,
            msg: "the number of connections exceeded the limit".into(),
        }),
        ..gateway.config()
    });
    let (sink, _) = recording_sink();
    let (mut status, stop, task) = run(SECRET, sink);
    let failed = status_until(&mut status, |s| matches!(s, Status::Failed { .. })).await;
    assert!(
        matches!(
            &failed,
            Status::Failed {
                kind: "too_many_connections",
                ..
            }
        ),
        "{failed:?}"
    );
    stop.send(true).unwrap();
    task.await.unwrap();
    gateway.set_config(LongConnectionConfig {
        endpoint_fault: None,
        ..gateway.config()
    });

    let (sink, mut events) = recording_sink();
    let (mut status, stop, task) = run(SECRET, sink);
    status_until(&mut status, |s| matches!(s, Status::Connected { .. })).await;
    let (code, v) = admin(
        &base,
        reqwest::Method::PATCH,
        &format!("/_emulator/apps/{APP}"),
        json!({"event_mode": "long_connection"}),
    )
    .await;
    assert_eq!(code, 200, "{v}");
    let key = hire(&base, "第一位").await;
    let event = next(&mut events, "the next event").await;
    assert_eq!(event["header"]["event_type"], "contact.user.created_v3");
    assert!(!key.is_empty());

    // Every socket closed: the client reconnects and the next event arrives.
    assert_eq!(gateway.close_all(APP), 1);
    status_until(&mut status, |s| matches!(s, Status::Connecting)).await;
    status_until(&mut status, |s| matches!(s, Status::Connected { .. })).await;
    hire(&base, "第二位").await;
    let event = next(&mut events, "the next event").await;
    assert_eq!(event["event"]["object"]["name"], "第二位");
    assert!(
        emu.state()
            .events
            .pusher()
            .wait_idle(Duration::from_secs(10))
            .await
    );
    let stats = emu.state().events.pusher().stats();
    assert_eq!((stats.delivered, stats.lost), (2, 0), "{stats:?}");
    stop.send(true).unwrap();
    task.await.unwrap();
}
