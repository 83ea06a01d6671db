//! The event pusher against a receiver that decodes with orgsync's own envelope code.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use emulator::pusher::{
    ChallengeError, FEISHU_RETRY_SCHEDULE, PushConfig, PushEvent, PushTarget, Pusher,
    attempts_by_event, open_push,
};
use feishu::envelope::Envelope;

/// What the receiver saw: (headers, body) of every request, in arrival order.
#[derive(Default)]
struct Received {
    requests: Vec<(HeaderMap, Bytes)>,
    /// Answer with this status for the first N requests, then 200.
    fail_first: usize,
    /// Always answer with this status.
    always: Option<StatusCode>,
}

pub struct Receiver {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Received>>,
    pub target: PushTarget,
}

impl Receiver {
    pub fn requests(&self) -> Vec<(HeaderMap, Bytes)> {
        self.seen.lock().unwrap().requests.clone()
    }

    pub fn decoded(&self) -> Vec<Envelope> {
        self.requests()
            .iter()
            .map(|(h, b)| open_push(h, b, &self.target).expect("the push must decode"))
            .collect()
    }
}

pub async fn receiver(
    encrypt_key: Option<&str>,
    fail_first: usize,
    always: Option<StatusCode>,
) -> Receiver {
    let seen = Arc::new(Mutex::new(Received {
        fail_first,
        always,
        ..Received::default()
    }));
    let target_template = PushTarget {
        app_id: "cli_push_test".into(),
        long_connection: false,
        url: String::new(),
        encrypt_key: encrypt_key.map(str::to_owned),
        verification_token: "vt_push".into(),
    };
    let state = (seen.clone(), target_template.clone());
    async fn handle(
        State((seen, target)): State<(Arc<Mutex<Received>>, PushTarget)>,
        headers: HeaderMap,
        body: Bytes,
    ) -> impl IntoResponse {
        let mut s = seen.lock().unwrap();
        s.requests.push((headers.clone(), body.clone()));
        let n = s.requests.len();
        if let Some(status) = s.always {
            return (status, String::new());
        }
        if n <= s.fail_first {
            return (StatusCode::INTERNAL_SERVER_ERROR, String::new());
        }
        match open_push(&headers, &body, &target) {
            Ok(Envelope::UrlVerification { challenge }) => {
                (StatusCode::OK, Envelope::challenge_response(&challenge))
            }
            Ok(_) => (StatusCode::OK, r#"{"msg":"success"}"#.to_owned()),
            Err(e) => (e.status(), e.to_string()),
        }
    }
    let app = Router::new()
        .route("/events", post(handle))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver {
        addr,
        seen,
        target: PushTarget {
            url: format!("http://{addr}/events"),
            ..target_template
        },
    }
}

fn event(i: usize) -> PushEvent {
    let event_id = format!("{i:032x}");
    let plaintext = format!(
        r#"{{"schema":"2.0","header":{{"event_id":"{event_id}","token":"vt_push","create_time":"1700000000{i:03}","event_type":"contact.user.updated_v3","tenant_key":"tk","app_id":"cli_push_test"}},"event":{{"object":{{"open_id":"ou_{i}","name":"张三{i}"}},"old_object":{{"name":"李四"}}}}}}"#
    );
    PushEvent {
        event_id,
        plaintext,
    }
}

fn fast() -> PushConfig {
    PushConfig {
        time_scale: 0.0001,
        ..PushConfig::default()
    }
}

#[tokio::test]
async fn pushed_events_verify_and_decrypt_with_the_envelope_code() {
    for key in [Some("push-key"), None] {
        let rx = receiver(key, 0, None).await;
        let pusher = Pusher::start(fast());
        pusher.push(&rx.target, (0..20).map(event));
        assert!(pusher.wait_idle(Duration::from_secs(10)).await);
        let decoded = rx.decoded();
        assert_eq!(decoded.len(), 20);
        for (env, (headers, body)) in decoded.iter().zip(rx.requests()) {
            let Envelope::V2(v2) = env else {
                panic!("expected 2.0")
            };
            assert_eq!(v2.header.event_type, "contact.user.updated_v3");
            assert_eq!(headers["user-agent"], "Go-http-client/1.1");
            assert!(headers.contains_key("x-lark-signature"));
            let text = std::str::from_utf8(&body).unwrap();
            if key.is_some() {
                assert!(text.starts_with(r#"{"encrypt":""#), "{text}");
            } else {
                // Compact, raw UTF-8, exactly the plaintext.
                assert!(text.contains("张三"));
                assert_eq!(text, v2.plaintext);
            }
        }
        let stats = pusher.stats();
        assert_eq!(stats.delivered, 20);
        assert_eq!(stats.lost, 0);
        assert_eq!(stats.in_flight, 0);
    }
}

#[tokio::test]
async fn a_failing_receiver_sees_the_scaled_retry_schedule() {
    let rx = receiver(Some("k"), 0, Some(StatusCode::SERVICE_UNAVAILABLE)).await;
    let scale = 0.0002; // 15 s → 3 ms, 5 min → 60 ms, 1 h → 720 ms, 6 h → 4.32 s
    let pusher = Pusher::start(PushConfig {
        time_scale: scale,
        ..PushConfig::default()
    });
    pusher.push(&rx.target, [event(1)]);
    assert!(pusher.wait_idle(Duration::from_secs(20)).await);
    let attempts = pusher.attempts();
    assert_eq!(attempts.len(), 5, "first delivery + 4 re-pushes");
    assert!(attempts.iter().all(|a| !a.success && a.status == Some(503)));
    assert_eq!(
        attempts.iter().map(|a| a.attempt).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
    // Gaps follow 15 s / 5 min / 1 h / 6 h scaled; allow generous slack for a busy machine.
    for (i, pair) in attempts.windows(2).enumerate() {
        let gap = Duration::from_millis(pair[1].at_ms - pair[0].at_ms);
        let expected = FEISHU_RETRY_SCHEDULE[i].mul_f64(scale);
        assert!(gap >= expected, "gap {i}: {gap:?} < {expected:?}");
        assert!(
            gap <= expected + Duration::from_millis(400),
            "gap {i}: {gap:?} ≫ {expected:?}"
        );
    }
    assert_eq!(pusher.stats().lost, 1);
    assert_eq!(rx.requests().len(), 5);
}

#[tokio::test]
async fn a_receiver_that_recovers_gets_the_event_on_a_re_push() {
    let rx = receiver(None, 2, None).await;
    let pusher = Pusher::start(fast());
    pusher.push(&rx.target, [event(7)]);
    assert!(pusher.wait_idle(Duration::from_secs(10)).await);
    let attempts = pusher.attempts();
    assert_eq!(
        attempts.iter().map(|a| a.success).collect::<Vec<_>>(),
        vec![false, false, true]
    );
    assert_eq!(pusher.stats().delivered, 1);
    assert_eq!(pusher.stats().lost, 0);
}

#[tokio::test]
async fn duplicates_reordering_and_drops_happen_when_switched_on() {
    // Duplicates: every event delivered twice.
    let rx = receiver(Some("k"), 0, None).await;
    let pusher = Pusher::start(PushConfig {
        duplicate_probability: 1.0,
        ..fast()
    });
    pusher.push(&rx.target, (0..10).map(event));
    assert!(pusher.wait_idle(Duration::from_secs(10)).await);
    let by_event = attempts_by_event(&pusher.attempts());
    assert_eq!(by_event.len(), 10);
    assert!(by_event.values().all(|a| a.len() == 2 && a[1].duplicate));
    assert_eq!(rx.requests().len(), 20);
    assert_eq!(pusher.stats().duplicates_sent, 10);

    // Reordering: events queued together arrive in another order.
    let rx = receiver(None, 0, None).await;
    let pusher = Pusher::start(PushConfig {
        reorder_window: Duration::from_millis(50),
        seed: 7,
        ..fast()
    });
    pusher.push(&rx.target, (0..30).map(event));
    assert!(pusher.wait_idle(Duration::from_secs(10)).await);
    let order: Vec<String> = rx
        .decoded()
        .iter()
        .map(|e| e.event_id().unwrap().to_owned())
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(sorted.len(), 30);
    assert_ne!(order, sorted, "the window must shuffle");

    // Drops: about half never leave.
    let rx = receiver(None, 0, None).await;
    let pusher = Pusher::start(PushConfig {
        drop_probability: 0.5,
        seed: 3,
        ..fast()
    });
    pusher.push(&rx.target, (0..100).map(event));
    assert!(pusher.wait_idle(Duration::from_secs(10)).await);
    let stats = pusher.stats();
    assert!(stats.dropped > 20 && stats.dropped < 80, "{stats:?}");
    assert_eq!(stats.dropped + stats.delivered, 100);
    assert_eq!(rx.requests().len() as u64, stats.delivered);
}

#[tokio::test]
async fn url_check_is_encrypted_and_needs_the_echoed_challenge() {
    let rx = receiver(Some("k"), 0, None).await;
    let pusher = Pusher::start(fast());
    pusher.verify_url(&rx.target).await.unwrap();
    let (headers, body) = rx.requests().remove(0);
    assert!(
        std::str::from_utf8(&body)
            .unwrap()
            .starts_with(r#"{"encrypt":""#)
    );
    assert!(
        headers.contains_key("x-lark-signature"),
        "signed by default"
    );

    // The switch sends it unsigned; our decoder still accepts it.
    let rx = receiver(Some("k"), 0, None).await;
    pusher.set_config(PushConfig {
        sign_challenge: false,
        ..fast()
    });
    pusher.verify_url(&rx.target).await.unwrap();
    assert!(!rx.requests()[0].0.contains_key("x-lark-signature"));

    // A receiver with another Verification Token refuses it; the check reports the status.
    let rx = receiver(Some("k"), 0, None).await;
    let wrong = PushTarget {
        verification_token: "other".into(),
        ..rx.target.clone()
    };
    let err = pusher.verify_url(&wrong).await.unwrap_err();
    assert!(matches!(err, ChallengeError::Status(401)), "{err}");

    // Nobody listening.
    let nobody = PushTarget {
        url: "http://127.0.0.1:9/events".into(),
        ..rx.target.clone()
    };
    assert!(matches!(
        pusher.verify_url(&nobody).await.unwrap_err(),
        ChallengeError::Unreachable(_)
    ));
    let _ = rx.addr;
}
