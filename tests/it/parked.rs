//! Parked deletions over time: a reconciliation that parks what is already pending refreshes
//! it (one entry per object and connection, however often it runs), a complete reconciliation
//! that finds the objects back withdraws them (a partial one does not), an object deleted by
//! another path is not approved again, and an admin decides thousands of entries at once —
//! through the engine and over HTTP, on both stores.

use std::collections::BTreeSet;

use directory::admin::Admin;
use directory::ids::PoolId;
use directory::model::{
    ConnectionSettings, DeletionThreshold, ObjectKind, ParkedDeletion, ParkedState, Verdict,
};
use directory::store::{ChangeSource, ParkedFilter};
use emulator::faults::FaultConfig;
use emulator::mutate::{Change, NewDepartment};
use emulator::tenant::ContactScope;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::api::{assert_error, pool_and_connection, run_job};
use crate::serve_support::Served;
use crate::support::{ALL, APP_ID, Backend, Harness, tenant};

async fn parked(h: &Harness, state: Option<ParkedState>) -> Vec<ParkedDeletion> {
    let filter = ParkedFilter {
        state,
        ..ParkedFilter::pool(&h.pool)
    };
    h.store.list_parked(&filter, ALL).await.unwrap()
}

/// A leaf department with members: what a scope shrinks to.
fn small_department(t: &emulator::tenant::Tenant) -> String {
    t.departments
        .keys()
        .filter(|d| t.children(d).is_empty() && !t.members(d).is_empty())
        .min_by_key(|d| (t.members(d).len(), (*d).clone()))
        .unwrap()
        .clone()
}

fn shrink_scope_to(h: &Harness, department: String) {
    h.mutate(|t| {
        t.set_app_scope(
            APP_ID,
            ContactScope::Partial {
                departments: vec![department],
                users: Vec::new(),
                groups: Vec::new(),
            },
        )
    });
}

#[tokio::test]
async fn reconciling_twice_parks_each_deletion_once_and_a_restored_scope_withdraws_them() {
    for backend in Backend::all() {
        // Default thresholds (50 and 5 %): a scope shrink parks every deletion.
        let h = Harness::new(backend, tenant(200, 20, 5, 47)).await;
        assert_eq!(h.import().await.verdict, Some(Verdict::Complete));
        let live_users = h.live_external_ids(ObjectKind::User).await;
        let small = h.emu.with_tenant(small_department);
        shrink_scope_to(&h, small);

        let first = h.reconcile().await;
        assert_eq!(first.verdict, Some(Verdict::Complete), "{backend:?}");
        let once = parked(&h, Some(ParkedState::Pending)).await;
        assert!(once.len() > 150, "{backend:?}: {}", once.len());

        // The demo's pile-up: every reconciliation parked the same objects again.
        let second = h.reconcile().await;
        assert_eq!(second.verdict, Some(Verdict::Complete), "{backend:?}");
        let twice = parked(&h, None).await;
        let objects: BTreeSet<(ObjectKind, &str)> = twice
            .iter()
            .map(|p| (p.kind, p.object_id.as_str()))
            .collect();
        assert_eq!(twice.len(), once.len(), "{backend:?}: one entry per object");
        assert_eq!(objects.len(), twice.len(), "{backend:?}");
        let parked_by_second: u64 = second
            .counts
            .values()
            .filter_map(|by_result| by_result.get("parked"))
            .sum();
        assert_eq!(parked_by_second, twice.len() as u64, "{backend:?}");
        let ids = |entries: &[ParkedDeletion]| -> BTreeSet<i64> {
            entries.iter().map(|p| p.id).collect()
        };
        assert_eq!(ids(&twice), ids(&once), "{backend:?}: the same entries");
        for p in &twice {
            assert_eq!(p.state, ParkedState::Pending, "{backend:?}");
            assert_eq!(
                p.job_id, second.id,
                "{backend:?}: refreshed by the second job"
            );
            let first_time = once.iter().find(|o| o.id == p.id).unwrap();
            assert_eq!(p.created_at, first_time.created_at, "{backend:?}");
            assert!(p.last_parked_at >= second.started_at, "{backend:?}: {p:?}");
        }
        let pending = ParkedFilter::pool(&h.pool).state(ParkedState::Pending);
        assert_eq!(
            h.store.count_parked(&pending).await.unwrap(),
            twice.len() as u64
        );

        // The scope is back, but a page fails: a partial view proves nothing about them.
        h.mutate(|t| t.set_app_scope(APP_ID, ContactScope::All));
        h.emu.state().faults.set_config(FaultConfig {
            server_error_rate: 1.0,
            endpoints: vec!["contact/v3/users/find_by_department".into()],
            ..FaultConfig::default()
        });
        let partial = h.reconcile().await;
        assert_eq!(partial.verdict, Some(Verdict::Partial), "{backend:?}");
        let still = parked(&h, Some(ParkedState::Pending)).await;
        assert_eq!(ids(&still), ids(&once), "{backend:?}: still pending");
        assert!(still.iter().all(|p| p.job_id == second.id), "{backend:?}");

        // A complete view: every object is back in Feishu, every entry withdrawn.
        h.emu.state().faults.set_config(FaultConfig::default());
        let complete = h.reconcile().await;
        assert_eq!(complete.verdict, Some(Verdict::Complete), "{backend:?}");
        assert_eq!(
            h.store.count_parked(&pending).await.unwrap(),
            0,
            "{backend:?}"
        );
        let ended = parked(&h, None).await;
        assert_eq!(ids(&ended), ids(&once), "{backend:?}: no new entries");
        for p in &ended {
            assert_eq!(p.state, ParkedState::Withdrawn, "{backend:?}: {p:?}");
            assert!(p.resolved_at.is_some(), "{backend:?}");
            let resolution = p.resolution.as_deref().unwrap_or_default();
            assert!(
                resolution.contains("is back in Feishu")
                    && resolution.contains(complete.id.as_str()),
                "{backend:?}: {resolution}"
            );
        }
        // Nothing was deleted on the way.
        assert_eq!(
            h.live_external_ids(ObjectKind::User).await,
            live_users,
            "{backend:?}"
        );
    }
}

#[tokio::test]
async fn a_deletion_done_by_an_event_is_withdrawn_not_approved() {
    for backend in Backend::all() {
        // Every deletion parks: the reconciliation waits for an admin.
        let settings = ConnectionSettings {
            deletion_threshold: DeletionThreshold {
                max_fraction: 0.0,
                max_count: 0,
            },
            ..ConnectionSettings::default()
        };
        let mut h = Harness::with(backend, tenant(60, 6, 1, 48), |_| {}, settings).await;
        assert_eq!(h.import().await.verdict, Some(Verdict::Complete));
        let parent = h.emu.with_tenant(small_department);
        let mut created = Vec::new();
        for name in ["Short-lived A", "Short-lived B"] {
            let parent = parent.clone();
            let changes = h.mutate(|t| {
                t.create_department(NewDepartment {
                    name: name.into(),
                    parent,
                    ..NewDepartment::default()
                })
            });
            created.push(Change::created_id(&changes).unwrap().to_owned());
        }
        h.deliver(1, None, None).await;
        h.drain().await;

        // Both are deleted in Feishu; the events are late, a reconciliation parks both.
        for od in &created {
            h.mutate(|t| t.delete_department(od));
        }
        let job = h.reconcile().await;
        assert_eq!(job.verdict, Some(Verdict::Complete), "{backend:?}");
        let entries = parked(&h, Some(ParkedState::Pending)).await;
        let entry = |od: &str| {
            entries
                .iter()
                .find(|p| p.external_id == od)
                .unwrap_or_else(|| panic!("{backend:?}: {od} not parked: {entries:?}"))
                .clone()
        };
        let (a, b) = (entry(&created[0]), entry(&created[1]));

        // Feishu's late events delete them the ordinary way.
        h.deliver(1, None, None).await;
        h.drain().await;
        for od in &created {
            let d = h.stored_department(od).await.unwrap();
            assert!(
                d.deleted_at.is_some(),
                "{backend:?}: the event deleted {od}"
            );
        }
        let history_before = h
            .store
            .object_history(&h.pool, ObjectKind::Department, &a.object_id, 10)
            .await
            .unwrap();

        // Approving does nothing stale: no second deletion, the entry ends withdrawn.
        let admin = Admin::new(
            h.engine.clone(),
            None,
            "https://orgsync.example.com/".into(),
        );
        let resolved = admin.approve_parked(a.id).await.unwrap();
        assert_eq!(resolved.state, ParkedState::Withdrawn, "{backend:?}");
        assert!(
            resolved
                .resolution
                .as_deref()
                .unwrap_or_default()
                .contains("already deleted by another path"),
            "{backend:?}: {resolved:?}"
        );
        let history_after = h
            .store
            .object_history(&h.pool, ObjectKind::Department, &a.object_id, 10)
            .await
            .unwrap();
        assert_eq!(
            history_after, history_before,
            "{backend:?}: nothing written"
        );
        assert!(
            history_after
                .iter()
                .all(|c| c.source != ChangeSource::Admin),
            "{backend:?}"
        );

        // The next complete reconciliation withdraws the other one.
        assert_eq!(h.reconcile().await.verdict, Some(Verdict::Complete));
        let b = admin.parked(b.id).await.unwrap();
        assert_eq!(b.state, ParkedState::Withdrawn, "{backend:?}: {b:?}");
        assert!(
            b.resolution
                .as_deref()
                .unwrap_or_default()
                .contains("no longer plans this deletion"),
            "{backend:?}: {b:?}"
        );
        assert!(parked(&h, Some(ParkedState::Pending)).await.is_empty());
    }
}

/// Pending entries of a pool over the API, all of them (`total` says how many).
async fn pending(s: &Served, pool: &str, filter: &str) -> Value {
    let (status, page) = s
        .get(&format!(
            "/api/v1/pools/{pool}/parked?state=pending&limit=500{filter}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page
}

#[tokio::test]
async fn bulk_decisions_over_the_api_in_batches_with_counts() {
    for backend in Backend::all() {
        let s = Served::start(backend, tenant(480, 12, 3, 49)).await;
        let (pool, connection) = pool_and_connection(&s, None).await;
        let conn = connection["id"].as_str().unwrap().to_owned();
        assert_eq!(run_job(&s, &conn, "import").await["verdict"], "complete");
        let small = s.emu.with_tenant(small_department);
        s.emu
            .state()
            .mutate(|t| {
                t.set_app_scope(
                    APP_ID,
                    ContactScope::Partial {
                        departments: vec![small],
                        users: Vec::new(),
                        groups: Vec::new(),
                    },
                )
            })
            .unwrap();
        let job = run_job(&s, &conn, "reconcile").await;
        let job_id = job["id"].as_str().unwrap().to_owned();

        // The list counts.
        let all = pending(&s, &pool, "").await;
        let total = all["total"].as_u64().expect("total is counted");
        assert_eq!(total as usize, all["items"].as_array().unwrap().len());
        let users = pending(&s, &pool, "&object_type=user").await["total"]
            .as_u64()
            .unwrap();
        let groups = pending(&s, &pool, "&object_type=group").await["total"]
            .as_u64()
            .unwrap();
        assert!(
            users > 2 * 200,
            "{backend:?}: more than two batches: {users}"
        );
        assert!(groups > 0, "{backend:?}");
        let of_job = pending(&s, &pool, &format!("&job_id={job_id}&connection_id={conn}")).await;
        assert_eq!(of_job["total"], total, "{backend:?}");

        // An empty filter cannot decide everything by accident; wrong names are named.
        for (body, status, needle) in [
            (json!({}), StatusCode::BAD_REQUEST, "all"),
            (json!({"all": false}), StatusCode::BAD_REQUEST, "all"),
            (
                json!({"everything": true}),
                StatusCode::BAD_REQUEST,
                "everything",
            ),
            (json!({"kind": "users"}), StatusCode::BAD_REQUEST, "kind"),
            (json!({"job_id": "nope"}), StatusCode::BAD_REQUEST, "job_id"),
            (
                json!({"job_id": PoolId::generate().0}),
                StatusCode::NOT_FOUND,
                "sync job",
            ),
        ] {
            let (got, error) = s
                .post(&format!("/api/v1/pools/{pool}/parked/approve"), &body)
                .await;
            assert_error(backend, &body.to_string(), got, &error, status);
            let message = error["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains(needle), "{backend:?}: {body}: {message}");
        }
        assert_eq!(pending(&s, &pool, "").await["total"], total, "{backend:?}");

        // Reject the groups: they stay, and are no longer pending.
        let (status, outcome) = s
            .post(
                &format!("/api/v1/pools/{pool}/parked/reject"),
                &json!({"job_id": job_id, "kind": "group"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{backend:?}: {outcome}");
        assert_eq!(outcome["matched"], groups, "{backend:?}: {outcome}");
        assert_eq!(outcome["rejected"], groups, "{backend:?}: {outcome}");
        assert_eq!(outcome["skipped"], 0, "{backend:?}: {outcome}");

        // One user changed after it was parked: approving it would be stale.
        let stale = all["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["kind"] == "user")
            .unwrap()
            .clone();
        let mut user = s
            .store
            .get_user(
                &PoolId::from(pool.as_str()),
                &stale["object_id"].as_str().unwrap().into(),
            )
            .await
            .unwrap()
            .unwrap();
        user.profile.job_title = Some("Seen again".into());
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        s.store
            .apply(directory::store::ApplyBatch {
                pool_id: PoolId::from(pool.as_str()),
                source: ChangeSource::Admin,
                writes: vec![directory::store::Write::PutUser {
                    user,
                    change: directory::store::ChangeKind::UserUpdated,
                    expected_version: None,
                }],
                watermarks: Vec::new(),
                later_sources: Vec::new(),
                inbox: Vec::new(),
                quiet: false,
                as_read: Default::default(),
            })
            .await
            .unwrap();

        // Approve the rest of the job: users in three batches, the departments, one skip.
        let (status, outcome) = s
            .post(
                &format!("/api/v1/pools/{pool}/parked/approve"),
                &json!({"job_id": job_id}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{backend:?}: {outcome}");
        let rest = total - groups;
        assert_eq!(outcome["matched"], rest, "{backend:?}: {outcome}");
        assert_eq!(outcome["approved"], rest - 1, "{backend:?}: {outcome}");
        assert_eq!(outcome["withdrawn"], 0, "{backend:?}: {outcome}");
        assert_eq!(outcome["skipped"], 1, "{backend:?}: {outcome}");
        let skip = &outcome["skips"][0];
        assert_eq!(skip["id"], stale["id"], "{backend:?}: {outcome}");
        assert!(
            skip["reason"].as_str().unwrap().contains("changed after"),
            "{backend:?}: {outcome}"
        );
        let left = pending(&s, &pool, "").await;
        assert_eq!(left["total"], 1, "{backend:?}: {left}");
        assert_eq!(left["items"][0]["id"], stale["id"]);

        // The approved users are deleted, by an admin; the stale one and the groups stay.
        let (_, live) = s
            .get(&format!("/api/v1/pools/{pool}/users?limit=1&total=true"))
            .await;
        let (_, everyone) = s
            .get(&format!(
                "/api/v1/pools/{pool}/users?limit=1&include_deleted=true&total=true"
            ))
            .await;
        let deleted = everyone["total"].as_u64().unwrap() - live["total"].as_u64().unwrap();
        assert_eq!(deleted, users - 1, "{backend:?}");
        let (_, user) = s
            .get(&format!(
                "/api/v1/pools/{pool}/users/{}",
                stale["object_id"].as_str().unwrap()
            ))
            .await;
        assert!(user["user"]["deleted_at"].is_null(), "{backend:?}: {user}");
        let (_, approved) = s
            .get(&format!(
                "/api/v1/pools/{pool}/parked?state=approved&limit=1"
            ))
            .await;
        assert_eq!(approved["total"], rest - 1, "{backend:?}");
        assert_eq!(
            approved["items"][0]["resolution"], "approved by an admin (bulk)",
            "{backend:?}: {approved}"
        );

        // Nothing pending left for the job but the stale one; `all` rejects it.
        let (status, outcome) = s
            .post(
                &format!("/api/v1/pools/{pool}/parked/reject"),
                &json!({"all": true}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{backend:?}: {outcome}");
        assert_eq!(
            (outcome["matched"].as_u64(), outcome["rejected"].as_u64()),
            (Some(1), Some(1)),
            "{backend:?}: {outcome}"
        );
        assert_eq!(pending(&s, &pool, "").await["total"], 0);
        let (status, outcome) = s
            .post(
                &format!("/api/v1/pools/{pool}/parked/approve"),
                &json!({"all": true}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(outcome["matched"], 0, "{backend:?}: {outcome}");
    }
}

/// A logged-in console session without a browser: its cookie and CSRF token.
struct ConsoleSession {
    http: reqwest::Client,
    cookie: String,
    csrf: String,
}

impl ConsoleSession {
    async fn login(s: &Served) -> ConsoleSession {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let resp = http
            .post(s.url("/console/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={}", crate::serve_support::ADMIN_TOKEN))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 303);
        let cookie = resp.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let mut session = ConsoleSession {
            http,
            cookie,
            csrf: String::new(),
        };
        let (_, page) = session.get(s, "/console/pools").await;
        session.csrf = page
            .split("name=\"_csrf\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .to_owned();
        session
    }

    async fn get(&self, s: &Served, path: &str) -> (u16, String) {
        let resp = self
            .http
            .get(s.url(path))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    async fn post(&self, s: &Served, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let enc = |v: &str| -> String {
            v.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect()
        };
        let body: Vec<String> = fields
            .iter()
            .chain([&("_csrf", self.csrf.as_str())])
            .map(|(k, v)| format!("{k}={}", enc(v)))
            .collect();
        let resp = self
            .http
            .post(s.url(path))
            .header("cookie", &self.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.join("&"))
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }
}

#[tokio::test]
async fn the_console_counts_pending_entries_and_decides_a_job_at_once() {
    let s = Served::start(Backend::Sqlite, tenant(150, 8, 2, 50)).await;
    let (pool, connection) = pool_and_connection(&s, None).await;
    let conn = connection["id"].as_str().unwrap().to_owned();
    assert_eq!(run_job(&s, &conn, "import").await["verdict"], "complete");
    let small = s.emu.with_tenant(small_department);
    s.emu
        .state()
        .mutate(|t| {
            t.set_app_scope(
                APP_ID,
                ContactScope::Partial {
                    departments: vec![small],
                    users: Vec::new(),
                    groups: Vec::new(),
                },
            )
        })
        .unwrap();
    let job = run_job(&s, &conn, "reconcile").await;
    let job_id = job["id"].as_str().unwrap().to_owned();
    let n = pending(&s, &pool, "").await["total"].as_u64().unwrap();
    assert!(n > 100, "{n}");
    let console = ConsoleSession::login(&s).await;

    // The parked page says how many wait, and offers the bulk decisions.
    let list = format!("/console/pools/{pool}/parked");
    let (status, page) = console.get(&s, &list).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(&format!("<strong>{n}</strong> pending")),
        "{page}"
    );
    assert!(
        page.contains(&format!("Approve all pending ({n})")),
        "{page}"
    );
    assert!(
        page.contains(&format!("Showing the first 50 of {n}")),
        "{page}"
    );
    // The next page by key, linked from this one.
    let next = page
        .split("rel=\"next\"")
        .next()
        .and_then(|head| head.rsplit("href=\"").next())
        .and_then(|tail| tail.split('"').next())
        .map(|href| href.replace("&#38;", "&").replace("&amp;", "&"))
        .expect("a link to the next page");
    assert!(next.contains("after="), "{next}");
    let (status, more) = console.get(&s, &next).await;
    assert_eq!(status, 200, "{more}");
    assert!(
        more.contains(&format!("Showing {} more of {n}", (n - 50).min(50))),
        "{more}"
    );
    let (_, page) = console
        .get(&s, &format!("{list}?state=pending&job={job_id}"))
        .await;
    assert!(
        page.contains(&format!("Approve all of this job ({n})")),
        "{page}"
    );
    assert!(page.contains("Reject all of this job"), "{page}");

    // A confirmation first, then the result with the counts.
    let (status, page) = console
        .get(&s, &format!("{list}/bulk?decision=reject&job={job_id}"))
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(&format!("Reject {n} parked deletions?")),
        "{page}"
    );
    assert_eq!(
        pending(&s, &pool, "").await["total"].as_u64(),
        Some(n),
        "nothing decided yet"
    );
    let (status, page) = console
        .post(
            &s,
            &format!("{list}/bulk"),
            &[("decision", "reject"), ("job", &job_id)],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(&format!("0 approved, {n} rejected, 0 withdrawn")),
        "{page}"
    );
    let (_, page) = console.get(&s, &list).await;
    assert!(page.contains("<strong>0</strong> pending"), "{page}");
    assert!(!page.contains("Approve all pending"), "{page}");
    let (_, page) = console.get(&s, &format!("{list}?state=rejected")).await;
    assert!(page.contains("rejected by an admin (bulk)"), "{page}");

    // Without the form's CSRF token nothing is decided.
    let forged = ConsoleSession {
        csrf: "forged".into(),
        ..console
    };
    let (status, _) = forged
        .post(&s, &format!("{list}/bulk"), &[("decision", "approve")])
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn an_object_parked_by_two_connections_is_deleted_once() {
    for backend in Backend::all() {
        let h = Harness::new(backend, tenant(30, 3, 1, 51)).await;
        assert_eq!(h.import().await.verdict, Some(Verdict::Complete));
        // A second source of the same pool, which (later) maps the same people.
        let mut second = h.connection.clone();
        second.id = directory::ids::ConnectionId::generate();
        second.identifier = "second".into();
        h.store.create_connection(&second).await.unwrap();
        let state = h.state().await;
        let user = state.users.iter().find(|u| u.deleted_at.is_none()).unwrap();
        let job = directory::ids::JobId::generate();
        let entry = |connection: &directory::model::Connection| ParkedDeletion {
            id: 0,
            pool_id: h.pool.clone(),
            connection_id: connection.id.clone(),
            job_id: job.clone(),
            kind: ObjectKind::User,
            object_id: user.id.0.clone(),
            external_id: "ou_either".into(),
            name: user.profile.name.clone(),
            reason: "above the threshold".into(),
            state: ParkedState::Pending,
            created_at: directory::ids::now_ms(),
            last_parked_at: directory::ids::now_ms(),
            resolved_at: None,
            resolution: None,
        };
        h.store
            .park_deletions(&[entry(&h.connection), entry(&second)])
            .await
            .unwrap();

        let admin = Admin::new(
            h.engine.clone(),
            None,
            "https://orgsync.example.com/".into(),
        );
        let request = directory::admin::BulkParked {
            all: true,
            ..Default::default()
        };
        let outcome = admin
            .decide_parked(&h.pool, &request, directory::admin::ParkedDecision::Approve)
            .await
            .unwrap();
        assert_eq!(
            (outcome.matched, outcome.approved, outcome.skipped),
            (2, 2, 0),
            "{backend:?}: {outcome:?}"
        );
        let deletions: Vec<_> = h
            .store
            .object_history(&h.pool, ObjectKind::User, &user.id.0, 10)
            .await
            .unwrap()
            .into_iter()
            .filter(|c| c.kind == directory::store::ChangeKind::UserDeleted)
            .collect();
        assert_eq!(deletions.len(), 1, "{backend:?}: deleted once");
    }
}
