//! The Feishu event endpoint over HTTP (`POST /connections/enterprise/{identifier}/{pool}/events`):
//! every refusal answers the right status with a JSON error that names the problem and stores
//! nothing; a sealed event is committed before the 200; the URL check is answered; the
//! counters show on `/metrics`; `/healthz` and `/readyz` answer.

use std::convert::Infallible;

use directory::admin::{Admin, NewConnection};
use directory::ids::now_ms;
use directory::model::{JobKind, JobTrigger, Verdict};
use directory::store::{InboxFilter, PageRequest};
use feishu::crypto;
use feishu::envelope::{self, SealedRequest};
use rand::SeedableRng;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::serve_support::Served;
use crate::support::{APP_ID, APP_SECRET, Backend, ENCRYPT_KEY, VERIFICATION_TOKEN, tenant};

const IDENTIFIER: &str = "feishu-events";

fn seal(plaintext: &str) -> SealedRequest {
    envelope::seal(
        plaintext,
        Some(ENCRYPT_KEY),
        &(now_ms() / 1000).to_string(),
        "nonce-1",
    )
}

/// A raw body with a valid signature over it (so only the body itself is wrong).
fn signed_raw(body: &str) -> SealedRequest {
    let timestamp = (now_ms() / 1000).to_string();
    let nonce = "nonce-2".to_owned();
    SealedRequest {
        signature: crypto::signature(&timestamp, &nonce, ENCRYPT_KEY, body.as_bytes()),
        body: body.to_owned(),
        timestamp,
        nonce,
    }
}

type Case = (
    &'static str,
    String,
    SealedRequest,
    Option<Vec<u8>>,
    StatusCode,
    &'static str,
    &'static str,
);

struct Answer {
    status: StatusCode,
    content_type: String,
    json: Value,
    /// Requests sent to get it (more than one after a reset: see `post_body`).
    attempts: u32,
}

async fn post(s: &Served, path: &str, req: &SealedRequest) -> Answer {
    post_body(s, path, req, req.body.clone().into_bytes()).await
}

async fn post_body(s: &Served, path: &str, req: &SealedRequest, body: Vec<u8>) -> Answer {
    // A body over the limit is answered before it is read, and the connection closed: the
    // client may still be writing and see the reset instead of the answer. Such a client sees
    // the answer on a later attempt (at most a few).
    let mut attempts = 0;
    let resp = loop {
        attempts += 1;
        match s
            .http
            .post(s.url(path))
            .headers(req.headers())
            .body(body.clone())
            .send()
            .await
        {
            Ok(resp) => break resp,
            Err(e) if attempts < 5 => {
                eprintln!("POST {path}: attempt {attempts}: {e}; again");
            }
            Err(e) => panic!("POST {path}: {attempts} attempts: {e}"),
        }
    };
    let status = resp.status();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let json = resp.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        content_type,
        json,
        attempts,
    }
}

async fn inbox_len(s: &Served) -> usize {
    s.store
        .inbox_list(
            &InboxFilter::default(),
            PageRequest {
                offset: 0,
                limit: 1000,
                after: None,
            },
        )
        .await
        .unwrap()
        .len()
}

/// The value of a series in Prometheus text (0 when absent).
fn series(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            (key == name).then(|| value.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}

async fn metrics_text(s: &Served) -> String {
    let resp = s.http.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    resp.text().await.unwrap()
}

/// A real contact event the emulator emitted for the app (plaintext envelope JSON).
fn emulator_event(s: &Served) -> String {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for _ in 0..50 {
        let before = s.emu.state().events.emitted().len();
        s.emu
            .state()
            .mutate_with(|t| Ok::<_, Infallible>(t.random_mutation(&mut rng)))
            .unwrap();
        if let Some(e) = s.emu.state().events.emitted()[before..]
            .iter()
            .find(|e| e.app_id == APP_ID)
        {
            return e.plaintext.clone();
        }
    }
    panic!("the emulator emitted no event for the app in 50 mutations");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejections_store_nothing_and_events_are_committed() {
    for backend in Backend::all() {
        rejections_and_acceptance(backend).await;
    }
}

async fn rejections_and_acceptance(backend: Backend) {
    let s = Served::start(backend, tenant(30, 6, 2, 11)).await;
    let admin = Admin::new(s.engine.clone(), None, s.server.url());
    let pool = admin.create_pool("Events").await.unwrap();
    admin
        .create_connection(
            &pool.id,
            NewConnection {
                identifier: IDENTIFIER.into(),
                display_name: None,
                provider: None,
                base_url: Some(s.emu.base_url()),
                app_id: APP_ID.into(),
                app_secret: APP_SECRET.into(),
                encrypt_key: Some(ENCRYPT_KEY.into()),
                verification_token: Some(VERIFICATION_TOKEN.into()),
                settings: None,
            },
        )
        .await
        .unwrap();
    let path = format!("/connections/enterprise/{IDENTIFIER}/{}/events", pool.id);
    let before = metrics_text(&s).await;
    let plaintext = emulator_event(&s);
    let valid = seal(&plaintext);

    // Each refusal: status, a JSON error naming the problem, nothing stored.
    let mut wrong_token: Value = serde_json::from_str(&plaintext).unwrap();
    if wrong_token["header"].is_object() {
        wrong_token["header"]["token"] = json!("not-the-token");
    } else {
        wrong_token["token"] = json!("not-the-token");
    }
    let mut bad_signature = seal(&plaintext);
    bad_signature.signature = "0".repeat(64);
    let oversized = vec![b' '; server::EVENT_BODY_LIMIT + 1];
    // (what, path, request, body overriding the request's, status, error code, message part)
    let cases: Vec<Case> = vec![
        (
            "unknown pool",
            format!("/connections/enterprise/{IDENTIFIER}/no-such-pool/events"),
            valid.clone(),
            None,
            StatusCode::NOT_FOUND,
            "unknown_pool",
            "no-such-pool",
        ),
        (
            "unknown identifier",
            format!("/connections/enterprise/nobody/{}/events", pool.id),
            valid.clone(),
            None,
            StatusCode::NOT_FOUND,
            "unknown_connection",
            "nobody",
        ),
        (
            "wrong token",
            path.clone(),
            seal(&wrong_token.to_string()),
            None,
            StatusCode::UNAUTHORIZED,
            "bad_token",
            "Verification Token",
        ),
        (
            "bad signature",
            path.clone(),
            bad_signature,
            None,
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            "Signature",
        ),
        (
            "oversized body",
            path.clone(),
            valid.clone(),
            Some(oversized),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "larger than",
        ),
        (
            "malformed JSON",
            path.clone(),
            signed_raw("{\"encrypt\": "),
            None,
            StatusCode::BAD_REQUEST,
            "body_not_json",
            "not a JSON",
        ),
        (
            "bad base64 ciphertext",
            path.clone(),
            signed_raw("{\"encrypt\":\"%%% not base64 %%%\"}"),
            None,
            StatusCode::BAD_REQUEST,
            "decrypt_failed",
            "decrypted",
        ),
    ];
    // Requests sent again after a reset: the server may have counted each (see `post_body`).
    let mut resent = 0.0;
    let mut resent_oversized = 0.0;
    for (what, url, req, body, status, code, says) in cases {
        let answer = match body {
            Some(body) => post_body(&s, &url, &req, body).await,
            None => post(&s, &url, &req).await,
        };
        let again = f64::from(answer.attempts - 1);
        resent += again;
        if code == "body_too_large" {
            resent_oversized += again;
        }
        assert_eq!(answer.status, status, "{backend:?} {what}: {}", answer.json);
        assert!(
            answer.content_type.starts_with("application/json"),
            "{backend:?} {what}: {}",
            answer.content_type
        );
        let error = &answer.json["error"];
        assert_eq!(error["code"], code, "{backend:?} {what}: {}", answer.json);
        let message = error["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(says),
            "{backend:?} {what}: {message:?} should mention {says:?}"
        );
        assert_eq!(
            inbox_len(&s).await,
            0,
            "{backend:?} {what}: stored something"
        );
    }

    // Another method: a JSON 405 that says what the URL is for.
    let resp = s.http.get(s.url(&path)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(resp.headers()["allow"], "POST");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");

    // Feishu's URL check is answered (and stores nothing).
    let challenge = json!({
        "challenge": "ch-4711",
        "token": VERIFICATION_TOKEN,
        "type": "url_verification",
    })
    .to_string();
    let answer = post(&s, &path, &seal(&challenge)).await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "{backend:?}: {}",
        answer.json
    );
    assert_eq!(answer.json["challenge"], "ch-4711");
    assert!(answer.content_type.starts_with("application/json"));
    assert_eq!(inbox_len(&s).await, 0);

    // A sealed event: 200 after it is committed; a redelivery is acknowledged, stored once.
    let answer = post(&s, &path, &valid).await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "{backend:?}: {}",
        answer.json
    );
    assert_eq!(answer.json["msg"], "success");
    assert!(answer.content_type.starts_with("application/json"));
    assert_eq!(inbox_len(&s).await, 1);
    let answer = post(&s, &path, &seal(&plaintext)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(inbox_len(&s).await, 1);

    // The counters moved by what was sent (deltas: backends share the process's recorder).
    let after = metrics_text(&s).await;
    let delta = |name: &str| series(&after, name) - series(&before, name);
    let received = delta("orgsync_events_received_total");
    assert!((10.0..=10.0 + resent).contains(&received), "{after}");
    assert_eq!(delta("orgsync_events_accepted_total"), 1.0, "{after}");
    assert_eq!(delta("orgsync_events_duplicate_total"), 1.0, "{after}");
    for reason in [
        "unknown_pool",
        "unknown_connection",
        "bad_token",
        "bad_signature",
        "body_too_large",
        "body_not_json",
        "decrypt_failed",
    ] {
        let counted = delta(&format!(
            "orgsync_events_rejected_total{{reason=\"{reason}\"}}"
        ));
        let most = if reason == "body_too_large" {
            1.0 + resent_oversized
        } else {
            1.0
        };
        assert!(
            (1.0..=most).contains(&counted),
            "{reason}: {counted} counted: {after}"
        );
    }
    assert!(after.contains("orgsync_inbox_depth"), "{after}");

    // Health.
    let resp = s.http.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.json::<Value>().await.unwrap()["status"], "ok");
    let resp = s.http.get(s.url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let ready: Value = resp.json().await.unwrap();
    assert_eq!(ready["checks"]["store"], "ok", "{ready}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_events_show_their_lag_on_metrics() {
    for backend in Backend::all() {
        let s = Served::start(backend, tenant(30, 6, 2, 12)).await;
        let admin = Admin::new(s.engine.clone(), None, s.server.url());
        let pool = admin.create_pool("Lag").await.unwrap();
        let connection = admin
            .create_connection(
                &pool.id,
                NewConnection {
                    identifier: IDENTIFIER.into(),
                    display_name: None,
                    provider: None,
                    base_url: Some(s.emu.base_url()),
                    app_id: APP_ID.into(),
                    app_secret: APP_SECRET.into(),
                    encrypt_key: Some(ENCRYPT_KEY.into()),
                    verification_token: Some(VERIFICATION_TOKEN.into()),
                    settings: None,
                },
            )
            .await
            .unwrap();
        let job = s
            .engine
            .run_job(&connection.id, JobKind::Import, JobTrigger::Admin)
            .await
            .unwrap();
        assert_eq!(job.verdict, Some(Verdict::Complete), "{job:?}");
        let path = format!("/connections/enterprise/{IDENTIFIER}/{}/events", pool.id);
        let before = metrics_text(&s).await;
        let answer = post(&s, &path, &seal(&emulator_event(&s))).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
        // The worker (running in the harness) applies or ignores it; wait until it is done.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let rows = s
                .store
                .inbox_list(
                    &InboxFilter::default(),
                    PageRequest {
                        offset: 0,
                        limit: 10,
                        after: None,
                    },
                )
                .await
                .unwrap();
            if rows
                .iter()
                .all(|r| r.state != directory::store::InboxState::Pending)
            {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{backend:?}: not applied: {rows:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let after = metrics_text(&s).await;
        assert!(
            after.contains("# TYPE orgsync_apply_lag_seconds histogram"),
            "{after}"
        );
        let count = |t: &str| series(t, "orgsync_apply_lag_seconds_count");
        let applied = |t: &str| series(t, "orgsync_events_applied_total");
        assert!(applied(&after) - applied(&before) >= 1.0, "{after}");
        assert!(
            series(
                &after,
                "orgsync_job_duration_seconds_count{kind=\"import\",verdict=\"complete\"}"
            ) >= 1.0,
            "{after}"
        );
        assert!(
            series(
                &after,
                "orgsync_feishu_requests_total{endpoint=\"contact/v3/users/find_by_department\"}"
            ) >= 1.0,
            "{after}"
        );
        assert_eq!(
            count(&after) - count(&before),
            applied(&after) - applied(&before),
            "{after}"
        );
        assert_eq!(series(&after, "orgsync_inbox_depth"), 0.0, "{after}");
    }
}

/// A pool and an encrypted connection for the emulator's app; returns the callback path.
async fn events_connection(s: &Served) -> String {
    let admin = Admin::new(s.engine.clone(), None, s.server.url());
    let pool = admin.create_pool("Events").await.unwrap();
    admin
        .create_connection(
            &pool.id,
            NewConnection {
                identifier: IDENTIFIER.into(),
                display_name: None,
                provider: None,
                base_url: Some(s.emu.base_url()),
                app_id: APP_ID.into(),
                app_secret: APP_SECRET.into(),
                encrypt_key: Some(ENCRYPT_KEY.into()),
                verification_token: Some(VERIFICATION_TOKEN.into()),
                settings: None,
            },
        )
        .await
        .unwrap();
    format!("/connections/enterprise/{IDENTIFIER}/{}/events", pool.id)
}

/// One 2.0 and one 1.0 event the emulator emitted for the app (plaintext, token included).
fn emulator_events_of_both_versions(s: &Served) -> Vec<String> {
    s.emu
        .with_tenant_mut(|t| t.apps.get_mut(APP_ID).unwrap().events_v1 = true);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    let (mut v2, mut v1) = (None, None);
    for _ in 0..100 {
        let before = s.emu.state().events.emitted().len();
        s.emu
            .state()
            .mutate_with(|t| Ok::<_, Infallible>(t.random_mutation(&mut rng)))
            .unwrap();
        for e in s.emu.state().events.emitted()[before..]
            .iter()
            .filter(|e| e.app_id == APP_ID)
        {
            let slot = match e.version {
                emulator::events::EventVersion::V2 => &mut v2,
                emulator::events::EventVersion::V1 => &mut v1,
            };
            slot.get_or_insert_with(|| e.plaintext.clone());
        }
        if let (Some(v2), Some(v1)) = (&v2, &v1) {
            return vec![v2.clone(), v1.clone()];
        }
    }
    panic!("the emulator emitted no 2.0 and 1.0 event pair in 100 mutations");
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// The Verification Token Feishu puts in every event is checked and then dropped: the inbox
/// row, the SQLite file and its WAL, and the API's event views hold the rest of the event but
/// not the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_events_keep_no_verification_token() {
    for backend in Backend::all() {
        let s = Served::start(backend, tenant(30, 6, 2, 13)).await;
        let path = events_connection(&s).await;
        let plaintexts = emulator_events_of_both_versions(&s);
        for plaintext in &plaintexts {
            assert!(plaintext.contains(VERIFICATION_TOKEN), "{plaintext}");
            let answer = post(&s, &path, &seal(plaintext)).await;
            assert_eq!(
                answer.status,
                StatusCode::OK,
                "{backend:?}: {}",
                answer.json
            );
        }

        let rows = s
            .store
            .inbox_list(&InboxFilter::default(), PageRequest::default())
            .await
            .unwrap();
        assert_eq!(rows.len(), 2, "{backend:?}");
        for row in &rows {
            assert!(
                !row.payload.contains(VERIFICATION_TOKEN),
                "{backend:?}: the inbox row keeps the token: {}",
                row.payload
            );
            // The rest is kept: the worker reads it back to the same event.
            let again = envelope::parse_plaintext(&row.payload).unwrap();
            assert_eq!(again.event_id(), Some(row.event_id.as_str()), "{backend:?}");
            let original = plaintexts
                .iter()
                .map(|p| envelope::parse_plaintext(p).unwrap())
                .find(|e| e.event_id() == again.event_id())
                .unwrap();
            assert_eq!(again.event_type(), original.event_type(), "{backend:?}");
            assert_eq!(
                again.created_at_ms(),
                original.created_at_ms(),
                "{backend:?}"
            );
        }

        if let Some(db) = s.sqlite_path() {
            let mut wal = db.clone().into_os_string();
            wal.push("-wal");
            for file in [db, wal.into()] {
                let bytes = std::fs::read(&file).unwrap_or_default();
                assert!(
                    !contains(&bytes, VERIFICATION_TOKEN),
                    "{} holds the Verification Token",
                    file.display()
                );
            }
        }

        let (status, list) = s.get("/api/v1/events?limit=500").await;
        assert_eq!(status, StatusCode::OK, "{backend:?}: {list}");
        let items = list["items"].as_array().unwrap();
        assert_eq!(items.len(), 2, "{backend:?}: {list}");
        for item in items {
            let id = item["id"].as_i64().unwrap();
            let (status, one) = s.get(&format!("/api/v1/events/{id}")).await;
            assert_eq!(status, StatusCode::OK, "{backend:?}: {one}");
            for view in [item, &one] {
                let text = view.to_string();
                assert!(!text.contains(VERIFICATION_TOKEN), "{backend:?}: {text}");
                assert!(
                    !text.contains("***"),
                    "{backend:?}: nothing left to mask: {text}"
                );
                let payload: Value =
                    serde_json::from_str(view["payload"].as_str().unwrap()).unwrap();
                assert!(
                    payload.get("uuid").is_some() || payload["header"]["event_id"].is_string(),
                    "{backend:?}: the dedupe key is kept: {payload}"
                );
            }
        }
    }
}

/// One exchange over a raw socket, for requests a regular client refuses to send. Returns the
/// status, the head and the body of the answer.
async fn raw_exchange(s: &Served, request: &[u8]) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(s.server.addr).await.unwrap();
    socket.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        socket.read_to_end(&mut answer),
    )
    .await
    .expect("the server neither answered nor closed within 10 s")
    .unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

/// Every answer of the event endpoint is the JSON error shape `{"error": {"code", "message",
/// "fix"?}}`, also for requests hyper refuses before any handler runs (sent over a raw socket:
/// HTTP clients refuse to send most of them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_of_the_event_endpoint_is_a_json_error() {
    // The HTTP side has no storage of its own here: one backend is enough.
    let s = Served::start(Backend::Sqlite, tenant(10, 2, 0, 14)).await;
    let path = events_connection(&s).await;
    let long_path = format!("{path}/{}", "a".repeat(70_000));
    let post_with = |target: &str, headers: &str, body: &str| {
        format!(
            "POST {target} HTTP/1.1\r\nHost: orgsync\r\nConnection: close\r\n{headers}\r\n{body}"
        )
        .into_bytes()
    };
    // (what, raw request, status, error code)
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "Content-Length above 2^64",
            post_with(&path, "Content-Length: 18446744073709551616\r\n", ""),
            400,
            "malformed_request",
        ),
        (
            "Content-Length not a number",
            post_with(&path, "Content-Length: twelve\r\n", ""),
            400,
            "malformed_request",
        ),
        (
            "negative Content-Length",
            post_with(&path, "Content-Length: -1\r\n", ""),
            400,
            "malformed_request",
        ),
        (
            "two different Content-Lengths",
            post_with(&path, "Content-Length: 2\r\nContent-Length: 3\r\n", "{}"),
            400,
            "malformed_request",
        ),
        (
            "a header name with a space",
            post_with(&path, "Bad Header: x\r\nContent-Length: 2\r\n", "{}"),
            400,
            "malformed_request",
        ),
        (
            "a raw non-ASCII byte in the path",
            [
                b"POST /connections/enterprise/\xff/x/events HTTP/1.1\r\nHost: o\r\n".as_slice(),
                b"Connection: close\r\nContent-Length: 2\r\n\r\n{}",
            ]
            .concat(),
            400,
            "malformed_request",
        ),
        (
            "a URL too long",
            post_with(&long_path, "Content-Length: 0\r\n", ""),
            414,
            "uri_too_long",
        ),
        (
            "percent-encoded bytes that are not UTF-8",
            post_with(
                "/connections/enterprise/%FF%FE/x/events",
                "Content-Length: 2\r\n",
                "{}",
            ),
            400,
            "bad_path",
        ),
        (
            "no body",
            post_with(&path, "Content-Length: 0\r\n", ""),
            400,
            "body_not_json",
        ),
        (
            "no body and no Content-Length",
            post_with(&path, "", ""),
            400,
            "body_not_json",
        ),
        (
            "a query string (ignored)",
            post_with(&format!("{path}?from=feishu"), "Content-Length: 0\r\n", ""),
            400,
            "body_not_json",
        ),
        (
            "a chunked body that cannot be read",
            post_with(&path, "Transfer-Encoding: chunked\r\n", "zz\r\nnot a chunk\r\n"),
            400,
            "body_unreadable",
        ),
        (
            "Content-Length over the limit",
            post_with(&path, "Content-Length: 2000000\r\n", ""),
            413,
            "body_too_large",
        ),
        (
            "a segment too many",
            post_with(&format!("{path}/extra"), "Content-Length: 2\r\n", "{}"),
            404,
            "not_found",
        ),
        (
            "a trailing slash",
            post_with(&format!("{path}/"), "Content-Length: 2\r\n", "{}"),
            404,
            "not_found",
        ),
        (
            "a segment missing",
            post_with("/connections/enterprise/x/events", "Content-Length: 2\r\n", "{}"),
            404,
            "not_found",
        ),
        (
            "another method",
            format!("PUT {path} HTTP/1.1\r\nHost: o\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{{}}")
                .into_bytes(),
            405,
            "method_not_allowed",
        ),
    ];
    for (what, request, status, code) in cases {
        let (got, head, body) = raw_exchange(&s, &request).await;
        assert_eq!(got, status, "{what}: {head}\n\n{body}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{what}: {head}"
        );
        let json: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{what}: the body is not JSON ({e}): {body:?}"));
        assert_eq!(json["error"]["code"], code, "{what}: {json}");
        assert!(
            json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}: {json}"
        );
        assert_eq!(inbox_len(&s).await, 0, "{what}: stored something");
    }
}
