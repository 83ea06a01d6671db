//! Webhooks (docs/webhooks.md) through the API, to receivers on loopback: signed requests
//! that independent libraries verify, the order of the feed, retries with the same
//! `webhook-id`, 410 and a spent schedule disabling an endpoint, re-enabling and replaying
//! without a gap, secret rotation, and a deliverer stopped mid-request.

use std::time::Duration;

use emulator::mutate::UserPatch;
use emulator::tenant::Tenant;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::api::{pool_and_connection, run_job};
use crate::receiver::{Receiver, verify_independently};
use crate::serve_support::Served;
use crate::support::*;

/// A served orgsync with an imported pool.
async fn imported(backend: Backend, seed: u64) -> (Served, String, String) {
    let s = Served::start(backend, tenant(20, 3, 1, seed)).await;
    let (pool, connection) = pool_and_connection(&s, None).await;
    let connection = connection["id"].as_str().unwrap().to_owned();
    let job = run_job(&s, &connection, "import").await;
    assert_eq!(job["verdict"], "complete", "{job}");
    (s, pool, connection)
}

async fn endpoint(s: &Served, pool: &str, url: &str, types: Value) -> (String, String) {
    let (status, created) = s
        .post(
            &format!("/api/v1/pools/{pool}/webhooks"),
            &json!({"url": url, "description": "test receiver", "types": types}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(created["endpoint"]["state"], "enabled");
    (
        created["endpoint"]["id"].as_str().unwrap().to_owned(),
        secret,
    )
}

/// `n` changes of users' job titles, each one feed event, by a reconciliation.
async fn changes(s: &Served, connection: &str, n: usize, tag: &str) {
    s.emu
        .state()
        .mutate(|t: &mut Tenant| {
            let keys: Vec<_> = t
                .users
                .values()
                .filter(|u| !u.status.resigned && !u.status.frozen)
                .map(|u| u.key)
                .take(n)
                .collect();
            let mut out = Vec::new();
            for (i, key) in keys.into_iter().enumerate() {
                let patch = UserPatch {
                    job_title: Some(format!("{tag} {i}")),
                    ..UserPatch::default()
                };
                out.extend(t.update_user(key, &patch)?);
            }
            Ok(out)
        })
        .unwrap();
    let job = run_job(s, connection, "reconcile").await;
    assert_eq!(job["verdict"], "complete", "{job}");
}

/// The pool's feed after `after` through the API, as envelopes.
async fn feed(s: &Served, pool: &str, after: &str) -> Vec<Value> {
    let (status, page) = s
        .get(&format!(
            "/api/v1/pools/{pool}/events?limit=500&after={after}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["data"].as_array().unwrap().clone()
}

#[tokio::test]
async fn deliveries_are_signed_ordered_and_retried_with_the_same_id() {
    for backend in Backend::all() {
        let (s, pool, connection) = imported(backend, 71).await;
        let (_, before) = s.get(&format!("/api/v1/pools/{pool}/users?limit=1")).await;
        let as_of = before["as_of_cursor"].as_str().unwrap().to_owned();
        // The first event fails three times, then everything is taken.
        let receiver = Receiver::start(&[500, 503, 500]).await;
        let (id, secret) = endpoint(&s, &pool, &receiver.url(), json!([])).await;
        changes(&s, &connection, 3, "Ordered").await;
        let expected = feed(&s, &pool, &as_of).await;
        // Three user.updated events and the job's directory.sync_completed.
        assert_eq!(
            expected.len(),
            4,
            "{backend:?}: {:?}",
            expected
                .iter()
                .map(|e| (
                    e["seq"].clone(),
                    e["type"].clone(),
                    e["data"]["object"]["profile"]["job_title"].clone()
                ))
                .collect::<Vec<_>>()
        );
        let got = receiver
            .wait_for("every event accepted", |r| {
                r.iter().filter(|r| r.status == 200).count() == expected.len()
            })
            .await;
        assert_eq!(got.len(), expected.len() + 3, "{backend:?}");
        // Retries carry the event's id; then each event once, in feed order.
        let first_id = expected[0]["id"].as_str().unwrap();
        assert!(got[..4].iter().all(|r| r.id == first_id), "{backend:?}");
        let accepted: Vec<Value> = receiver.accepted().iter().map(|r| r.json()).collect();
        assert_eq!(
            accepted, expected,
            "{backend:?}: the bodies are the feed's envelopes"
        );
        for (r, e) in receiver.accepted().iter().zip(&expected) {
            assert_eq!(r.id, e["id"].as_str().unwrap());
        }

        // Two libraries we did not write verify every request; a tampered body or another
        // secret does not verify.
        let mut tampered = got[0].clone();
        tampered.body = tampered.body.replace("user.updated", "user.deleted");
        let mut checks = got.clone();
        checks.push(tampered);
        for (library, results) in verify_independently(&secret, &checks) {
            let (last, rest) = results.split_last().unwrap();
            assert!(
                rest.iter().all(|ok| *ok),
                "{backend:?} {library}: {results:?}"
            );
            assert!(!last, "{backend:?} {library} accepted a tampered body");
        }
        let other = directory::webhooks::sign::generate_secret();
        for (library, results) in verify_independently(&other, &got[..1]) {
            assert_eq!(results, [false], "{backend:?} {library}");
        }

        // The attempts are listed, newest first, with what the receiver said (each is
        // recorded once its answer is in: the last may lag the receiver a little).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let attempts = loop {
            let (status, attempts) = s
                .get(&format!(
                    "/api/v1/pools/{pool}/webhooks/{id}/attempts?limit=100"
                ))
                .await;
            assert_eq!(status, StatusCode::OK, "{attempts}");
            if attempts.as_array().unwrap().len() == got.len() {
                break attempts;
            }
            assert!(std::time::Instant::now() < deadline, "{attempts}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let attempts = attempts.as_array().unwrap();
        let oldest = attempts.last().unwrap();
        assert_eq!(
            (oldest["status"].as_u64(), oldest["attempt"].as_u64()),
            (Some(500), Some(1))
        );
        assert_eq!(attempts[attempts.len() - 4]["attempt"], 4);
        let (_, view) = s.get(&format!("/api/v1/pools/{pool}/webhooks/{id}")).await;
        assert_eq!(
            (view["state"].as_str(), view["lag"].as_i64()),
            (Some("enabled"), Some(0)),
            "{view}"
        );

        // A test event goes now, outside the feed.
        let (status, test) = s
            .post(
                &format!("/api/v1/pools/{pool}/webhooks/{id}/test"),
                &json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{test}");
        assert_eq!(test["ok"], true, "{test}");
        assert_eq!(
            receiver.received().last().unwrap().json()["type"],
            "webhook.test"
        );
    }
}

#[tokio::test]
async fn gone_and_spent_endpoints_are_disabled_and_resume_without_a_gap() {
    for backend in Backend::all() {
        let (s, pool, connection) = imported(backend, 72).await;
        // 410: disabled at once, nothing more is sent.
        let gone = Receiver::start(&[410]).await;
        let (gone_id, _) = endpoint(&s, &pool, &gone.url(), json!(["user.*"])).await;
        // Nobody listens: the schedule is spent (about 5 s in the tests), then disabled.
        let down = Receiver::start(&[]).await;
        let down_addr = down.addr;
        drop(down);
        let down_url = format!("http://{down_addr}/hook");
        let (down_id, secret) = endpoint(&s, &pool, &down_url, json!([])).await;
        let (_, head) = s.get(&format!("/api/v1/pools/{pool}/users?limit=1")).await;
        let as_of = head["as_of_cursor"].as_str().unwrap().to_owned();
        changes(&s, &connection, 2, "Gone").await;
        let expected = feed(&s, &pool, &as_of).await;

        let wait_state = |id: String, state: &'static str| {
            let s = &s;
            let pool = pool.clone();
            async move {
                let deadline = std::time::Instant::now() + Duration::from_secs(30);
                loop {
                    let (_, v) = s.get(&format!("/api/v1/pools/{pool}/webhooks/{id}")).await;
                    if v["state"] == state {
                        return v;
                    }
                    assert!(std::time::Instant::now() < deadline, "{v}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        let v = wait_state(gone_id.clone(), "disabled").await;
        assert!(
            v["disabled_reason"].as_str().unwrap().contains("410"),
            "{v}"
        );
        let v = wait_state(down_id.clone(), "disabled").await;
        assert!(
            v["disabled_reason"]
                .as_str()
                .unwrap()
                .contains("retry schedule"),
            "{backend:?}: {v}"
        );
        // The first attempt and the nine retries of the schedule.
        assert_eq!(v["failures"], 10, "{v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(gone.received().len(), 1, "nothing after the 410");

        // The receiver comes back where it was; enabled again, it gets every event from
        // the one that failed, in order.
        let back = Receiver::on(down_addr, &[]).await;
        let (status, v) = s
            .send(
                reqwest::Method::PATCH,
                &format!("/api/v1/pools/{pool}/webhooks/{down_id}"),
                Some(&json!({"enabled": true})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let got = back
            .wait_for("the backlog", |r| r.len() >= expected.len())
            .await;
        let bodies: Vec<Value> = got.iter().map(|r| r.json()).collect();
        assert_eq!(bodies, expected, "{backend:?}: no gap, no reordering");

        // Replay from a number: those events again, then on.
        let from = expected[1]["seq"].as_i64().unwrap();
        let (status, v) = s
            .post(
                &format!("/api/v1/pools/{pool}/webhooks/{down_id}/replay"),
                &json!({"from_seq": from}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let got = back
            .wait_for("the replay", |r| r.len() >= 2 * expected.len() - 1)
            .await;
        let replayed: Vec<Value> = got[expected.len()..].iter().map(|r| r.json()).collect();
        assert_eq!(replayed, expected[1..].to_vec(), "{backend:?}");

        // Rotation: both secrets sign during the grace period, and each verifies alone.
        let (status, rotated) = s
            .post(
                &format!("/api/v1/pools/{pool}/webhooks/{down_id}/rotate-secret"),
                &json!({"grace_hours": 1}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{rotated}");
        let new_secret = rotated["secret"].as_str().unwrap().to_owned();
        assert_ne!(new_secret, secret);
        let (status, _) = s
            .post(
                &format!("/api/v1/pools/{pool}/webhooks/{down_id}/test"),
                &json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let last = back.received().last().unwrap().clone();
        assert_eq!(last.signature.split(' ').count(), 2, "{}", last.signature);
        for key in [&secret, &new_secret] {
            for (library, results) in verify_independently(key, std::slice::from_ref(&last)) {
                assert_eq!(results, [true], "{backend:?} {library}");
            }
        }

        // Bad input says what to fix.
        for (body, needle) in [
            (json!({"url": "ftp://example.com/x"}), "https://"),
            (
                json!({"url": "http://169.254.169.254/latest"}),
                "link-local",
            ),
            (
                json!({"url": "https://example.com/x", "types": ["user.nope"]}),
                "user.nope",
            ),
        ] {
            let (status, err) = s
                .post(&format!("/api/v1/pools/{pool}/webhooks"), &body)
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {err}");
            assert!(
                err["error"]["message"].as_str().unwrap().contains(needle),
                "{err}"
            );
        }
        let (status, err) = s
            .post(
                &format!("/api/v1/pools/{pool}/webhooks/{down_id}/replay"),
                &json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    }
}

/// A deliverer stopped in the middle of a request (a crash: its progress is not saved) and a
/// new one started: the event is sent again with the same `webhook-id`, then the rest; none
/// is lost.
#[tokio::test]
async fn a_deliverer_stopped_mid_request_loses_nothing() {
    for backend in Backend::all() {
        let (s, pool, connection) = imported(backend, 73).await;
        // This orgsync's own deliverer is stopped: the test runs its own.
        let receiver = Receiver::start(&[]).await;
        let (_, _) = endpoint(&s, &pool, &receiver.url(), json!(["user.*"])).await;
        s.stop_webhooks();
        let (_, head) = s.get(&format!("/api/v1/pools/{pool}/users?limit=1")).await;
        let as_of = head["as_of_cursor"].as_str().unwrap().to_owned();
        changes(&s, &connection, 3, "Crash").await;
        let expected: Vec<Value> = feed(&s, &pool, &as_of)
            .await
            .into_iter()
            .filter(|e| e["type"] != "directory.sync_completed")
            .collect();
        assert_eq!(expected.len(), 3);

        receiver.set_delay(Duration::from_secs(30));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let first = directory::webhooks::deliver::Deliverer::new(s.engine.clone()).spawn(stopped);
        receiver
            .wait_for("the first request", |r| !r.is_empty())
            .await;
        first.abort();
        let _ = first.await;
        drop(stop);
        receiver.set_delay(Duration::ZERO);

        let (stop, stopped) = tokio::sync::watch::channel(false);
        let second = directory::webhooks::deliver::Deliverer::new(s.engine.clone()).spawn(stopped);
        let got = receiver
            .wait_for("every event after the restart", |r| {
                r.len() > expected.len()
            })
            .await;
        let _ = stop.send(true);
        let _ = second.await;
        assert_eq!(
            got[0].id, got[1].id,
            "{backend:?}: the interrupted event again"
        );
        let bodies: Vec<Value> = got[1..].iter().map(|r| r.json()).collect();
        assert_eq!(bodies, expected, "{backend:?}");
    }
}
