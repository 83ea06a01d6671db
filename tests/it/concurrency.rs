//! Events keep flowing while a job runs (docs/concurrency.md): the worker has its own lease,
//! a job's step yields to what an event changed after the job read the store, and suspected
//! leavers are looked up 50 per batch call. Through the real server, with the emulator
//! pushing its events to the callback URL, on both stores.

use std::time::{Duration, Instant};

use emulator::faults::FaultConfig;
use emulator::mutate::UserPatch;
use emulator::tenant::UserKey;
use reqwest::StatusCode;
use serde_json::{Value, json};

use directory::model::{ActionResult, SyncAction, Verdict};

use crate::api::{pool_and_connection, run_job};
use crate::serve_support::Served;
use crate::support::{APP_ID, Backend, Harness, counted, no_thresholds, open_id, tenant};

/// The reason of a step an event overtook.
const SUPERSEDED: &str = "changed by an event while the job ran";

/// How long reading the contact scope takes while a test's reconciliation runs: the job has
/// loaded the stored state by then, and is still running for this long.
const SLOW_SCOPE: Duration = Duration::from_secs(4);

fn slow_scope() -> FaultConfig {
    FaultConfig {
        latency_rate: 1.0,
        latency_min: SLOW_SCOPE,
        latency_max: SLOW_SCOPE,
        endpoints: vec!["contact/v3/scopes".into()],
        ..FaultConfig::default()
    }
}

/// A served pool with an imported connection whose app pushes its events to the callback
/// URL. Returns the pool id and the connection id.
async fn imported(s: &Served) -> (String, String) {
    let (pool, connection) = pool_and_connection(s, None).await;
    let conn = connection["id"].as_str().unwrap().to_owned();
    let job = run_job(s, &conn, "import").await;
    assert_eq!(job["verdict"], "complete", "{:?}: {job}", s.backend);
    push_to(s, connection["callback_url"].as_str());
    (pool, conn)
}

/// Points the emulator's app at the callback URL (`None`: stops pushing).
fn push_to(s: &Served, url: Option<&str>) {
    s.emu.with_tenant_mut(|t| {
        t.apps.get_mut(APP_ID).unwrap().request_url = url.map(str::to_owned);
    });
}

/// Starts a reconciliation through the API and waits until it has loaded the stored state
/// (it is reading the scope); returns its id.
async fn start_reconciliation(s: &Served, conn: &str) -> String {
    let (status, job) = s
        .post(
            &format!("/api/v1/connections/{conn}/jobs"),
            &json!({ "kind": "reconcile" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{:?}: {job}", s.backend);
    let id = job["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, job) = s.get(&format!("/api/v1/jobs/{id}")).await;
        if job["progress"]["phase"] == "scopes" {
            return id;
        }
        assert!(
            Instant::now() < deadline && job["state"] == "running",
            "{:?}: the job never read the scope: {job}",
            s.backend
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn job(s: &Served, id: &str) -> Value {
    let (status, job) = s.get(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{job}");
    job
}

async fn wait_finished(s: &Served, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = job(s, id).await;
        if job["state"] == "finished" {
            return job;
        }
        assert!(Instant::now() < deadline, "{:?}: {job}", s.backend);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The user as the API shows it, by open_id.
async fn user(s: &Served, pool: &str, key: UserKey) -> Value {
    let (status, user) = s
        .get(&format!(
            "/api/v1/pools/{pool}/users/by/open_id/{}",
            open_id(key)
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{:?}: {user}", s.backend);
    user
}

/// Polls the user until `done`, for at most 5 s; returns how long it took.
async fn until_user(
    s: &Served,
    pool: &str,
    key: UserKey,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let u = user(s, pool, key).await;
        if done(&u) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}: {what}: {u}",
            s.backend
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The job's action-log lines of `action` on one user.
async fn steps_of(s: &Served, job: &str, action: &str, key: UserKey) -> Vec<Value> {
    let (status, log) = s
        .get(&format!(
            "/api/v1/jobs/{job}/log?action={action}&object_type=user&limit=500"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let ou = open_id(key);
    log["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["external_id"] == ou.as_str())
        .cloned()
        .collect()
}

/// No step of the job failed.
fn nothing_failed(backend: Backend, job: &Value) {
    let counts = job["counts"].as_object().unwrap();
    for (action, by_result) in counts {
        assert!(
            by_result.get("failed").is_none(),
            "{backend:?}: {action} failed: {job}"
        );
    }
}

/// A user who resigns while a reconciliation runs is shown disabled at once, not after the
/// job; the job, which reads the user in full only when it plans it (after the event), finds
/// it disabled already and writes nothing; its verdict stays complete.
#[tokio::test]
async fn a_leaver_is_disabled_while_a_reconciliation_runs() {
    for backend in Backend::all() {
        let s = Served::start(backend, tenant(200, 20, 3, 71)).await;
        let (pool, conn) = imported(&s).await;
        let leaver = s.emu.with_tenant(|t| {
            let root = t.members("0").to_vec();
            t.users
                .values()
                .find(|u| !u.status.resigned && !root.contains(&u.key))
                .unwrap()
                .key
        });
        s.emu.state().faults.set_config(slow_scope());
        let running = start_reconciliation(&s, &conn).await;

        // Feishu pushes contact.user.deleted_v3 to the callback URL.
        s.emu.state().mutate(|t| t.resign(leaver)).unwrap();
        let latency = until_user(&s, &pool, leaver, "the leaver is disabled", |u| {
            u["status"] == "resigned"
        })
        .await;
        let now = job(&s, &running).await;
        assert_eq!(
            now["state"], "running",
            "{backend:?}: disabled only after the job: {now}"
        );
        eprintln!(
            "{backend:?}: leaver shown disabled {latency:?} after the resignation, while the job ran"
        );

        let done = wait_finished(&s, &running).await;
        s.emu.state().faults.set_config(FaultConfig::none());
        assert_eq!(done["verdict"], "complete", "{backend:?}: {done}");
        nothing_failed(backend, &done);
        // The job found the leaver too (by the batch look-up), as the event left it.
        assert!(done["counts"]["DisableUser"].is_null(), "{done}");
        let steps = steps_of(&s, &running, "Unchanged", leaver).await;
        assert_eq!(steps.len(), 1, "{backend:?}: {steps:?}");
        assert_eq!(steps[0]["result"], "applied", "{backend:?}: {steps:?}");
        let u = user(&s, &pool, leaver).await;
        assert_eq!(u["status"], "resigned", "{backend:?}: {u}");
        assert_eq!(u["departments"], json!([]), "{backend:?}: {u}");
    }
}

/// An event changes a user after the job loaded the state (and before it read the user):
/// the job's update of that user ends skipped as superseded, and the API shows the event's
/// state; the next reconciliation brings the newer Feishu state.
#[tokio::test]
async fn a_job_never_overwrites_what_an_event_changed_after_it_read_the_store() {
    for backend in Backend::all() {
        let s = Served::start(backend, tenant(120, 10, 2, 72)).await;
        let (pool, conn) = imported(&s).await;
        let key = s
            .emu
            .with_tenant(|t| t.users.values().find(|u| !u.status.resigned).unwrap().key);
        let rename = |name: &str| {
            let patch = UserPatch {
                name: Some(name.to_owned()),
                ..UserPatch::default()
            };
            s.emu
                .state()
                .mutate(|t| t.update_user(key, &patch))
                .unwrap();
        };
        s.emu.state().faults.set_config(slow_scope());
        let running = start_reconciliation(&s, &conn).await;

        // The event's change arrives and is applied while the job waits for Feishu…
        rename("Renamed By An Event");
        until_user(&s, &pool, key, "the event is applied", |u| {
            u["profile"]["name"] == "Renamed By An Event"
        })
        .await;
        // … then Feishu changes the user again, and that event is lost: the job reads it.
        push_to(&s, None);
        rename("Renamed Later");

        let done = wait_finished(&s, &running).await;
        s.emu.state().faults.set_config(FaultConfig::none());
        assert_eq!(done["verdict"], "complete", "{backend:?}: {done}");
        nothing_failed(backend, &done);
        assert_eq!(done["counts"]["UpdateUser"]["skipped"], 1, "{done}");
        let steps = steps_of(&s, &running, "UpdateUser", key).await;
        let update = steps
            .first()
            .unwrap_or_else(|| panic!("{backend:?}: {steps:?}"));
        assert_eq!(update["result"], "skipped", "{update}");
        assert!(
            update["reason"].as_str().unwrap().contains(SUPERSEDED),
            "{update}"
        );
        let u = user(&s, &pool, key).await;
        assert_eq!(
            u["profile"]["name"], "Renamed By An Event",
            "{backend:?}: {u}"
        );

        // The next reconciliation plans from the event's state and applies Feishu's.
        let again = run_job(&s, &conn, "reconcile").await;
        assert_eq!(again["verdict"], "complete", "{backend:?}: {again}");
        assert_eq!(again["counts"]["UpdateUser"]["applied"], 1, "{again}");
        let u = user(&s, &pool, key).await;
        assert_eq!(u["profile"]["name"], "Renamed Later", "{backend:?}: {u}");
    }
}

/// After N users resigned without their events, a reconciliation looks them up 50 per batch
/// call, not one call each.
#[tokio::test]
async fn leavers_are_looked_up_in_batches() {
    for backend in Backend::all() {
        let h = Harness::with(backend, tenant(400, 20, 2, 73), |_| {}, no_thresholds()).await;
        let job = h.import().await;
        assert_eq!(job.verdict, Some(Verdict::Complete), "{backend:?}");
        let leavers: Vec<UserKey> = h.emu.with_tenant(|t| {
            t.users
                .values()
                .filter(|u| !u.status.resigned)
                .map(|u| u.key)
                .take(120)
                .collect()
        });
        for key in &leavers {
            h.mutate(|t| t.resign(*key));
        }
        let stats = &h.emu.state().stats;
        stats.reset();
        let job = h.reconcile().await;
        assert_eq!(
            job.verdict,
            Some(Verdict::Complete),
            "{backend:?}: {:?}",
            job.error
        );
        assert_eq!(
            counted(&job, SyncAction::DisableUser, ActionResult::Applied),
            120,
            "{backend:?}: {:?}",
            job.counts
        );
        assert_eq!(
            stats.requests("contact/v3/users/batch"),
            3,
            "{backend:?}: {:?}",
            stats.snapshot()
        );
        assert_eq!(
            stats.requests("contact/v3/users/:user_id"),
            0,
            "{backend:?}: {:?}",
            stats.snapshot()
        );
    }
}
