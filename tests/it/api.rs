//! The admin REST API over HTTP: the admin token guards every route but the OpenAPI document,
//! secrets never come back, the whole flow (pool → connection → import → reads → an event
//! through the callback URL) works, errors are JSON with the right status, and parked
//! deletions are approved and rejected.

use std::time::{Duration, Instant};

use directory::ids::now_ms;
use emulator::generate::{GenerateConfig, generate};
use emulator::mutate::{Change, NewUser};
use emulator::tenant::{AppRecord, ContactScope, Tenant, union_id};
use feishu::envelope;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::serve_support::{ADMIN_TOKEN, Served};
use crate::support::{APP_ID, APP_SECRET, Backend, ENCRYPT_KEY, VERIFICATION_TOKEN, tenant};

const IDENTIFIER: &str = "acme-feishu";

/// Creates a pool and a connection to the emulator's app (`APP_ID` …); returns the pool id
/// and the connection as the API shows it.
pub(crate) async fn pool_and_connection(s: &Served, settings: Option<Value>) -> (String, Value) {
    let (status, pool) = s.post("/api/v1/pools", &json!({"name": "Acme"})).await;
    assert_eq!(status, StatusCode::CREATED, "{:?}: {pool}", s.backend);
    let pool_id = pool["id"].as_str().unwrap().to_owned();
    let mut body = json!({
        "identifier": IDENTIFIER,
        "display_name": "Acme (emulator)",
        "base_url": s.emu.base_url(),
        "app_id": APP_ID,
        "app_secret": APP_SECRET,
        "encrypt_key": ENCRYPT_KEY,
        "verification_token": VERIFICATION_TOKEN,
    });
    if let Some(settings) = settings {
        body["settings"] = settings;
    }
    let (status, connection) = s
        .post(&format!("/api/v1/pools/{pool_id}/connections"), &body)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{:?}: {connection}", s.backend);
    (pool_id, connection)
}

/// A GET with the admin token, the body as text.
async fn get_text(s: &Served, path: &str) -> (StatusCode, String) {
    let resp = s
        .http
        .get(s.url(path))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

/// Starts a job through the API and polls it until it finished.
pub(crate) async fn run_job(s: &Served, connection_id: &str, kind: &str) -> Value {
    let (status, job) = s
        .post(
            &format!("/api/v1/connections/{connection_id}/jobs"),
            &json!({ "kind": kind }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{:?}: {job}", s.backend);
    assert_eq!(job["kind"], kind);
    let id = job["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, job) = s.get(&format!("/api/v1/jobs/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{job}");
        if job["state"] == "finished" {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "{:?}: job still running: {job}",
            s.backend
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Delivers the events the emulator emitted for `app` since `from` to `callback_url` over
/// HTTP, sealed like Feishu seals them (encrypted and signed with the app's Encrypt Key).
pub(crate) async fn deliver_over_http(
    s: &Served,
    callback_url: &str,
    app_id: &str,
    encrypt_key: &str,
    from: usize,
) -> usize {
    let emitted = s.emu.state().events.emitted();
    let mut delivered = 0;
    for e in emitted[from..].iter().filter(|e| e.app_id == app_id) {
        let sealed = envelope::seal(
            &e.plaintext,
            Some(encrypt_key),
            &(now_ms() / 1000).to_string(),
            "7",
        );
        let resp = s
            .http
            .post(callback_url)
            .headers(sealed.headers())
            .body(sealed.body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "{:?}: {}",
            s.backend,
            e.event_type
        );
        delivered += 1;
    }
    delivered
}

/// Polls `path` until `done` holds for its body.
async fn wait_for(s: &Served, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = s.get(path).await;
        if status == StatusCode::OK && done(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{:?}: {what}: {status} {body}",
            s.backend
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub(crate) fn assert_error(
    backend: Backend,
    what: &str,
    status: StatusCode,
    body: &Value,
    want: StatusCode,
) {
    assert_eq!(status, want, "{backend:?}: {what}: {body}");
    assert!(
        body["error"]["code"].is_string() && body["error"]["message"].is_string(),
        "{backend:?}: {what}: not a JSON error body: {body}"
    );
}

#[tokio::test]
async fn protected_routes_need_the_admin_token_and_the_document_is_public() {
    for backend in Backend::all() {
        let s = Served::start(backend, tenant(20, 3, 1, 61)).await;
        let (pool, connection) = pool_and_connection(&s, None).await;
        let conn = connection["id"].as_str().unwrap();
        let some = "0123456789abcdef01234567";
        let routes: Vec<(Method, String)> = vec![
            (Method::GET, "/api/v1/pools".into()),
            (Method::POST, "/api/v1/pools".into()),
            (Method::GET, format!("/api/v1/pools/{pool}")),
            (Method::PATCH, format!("/api/v1/pools/{pool}")),
            (Method::DELETE, format!("/api/v1/pools/{pool}")),
            (Method::GET, format!("/api/v1/pools/{pool}/connections")),
            (Method::POST, format!("/api/v1/pools/{pool}/connections")),
            (Method::GET, format!("/api/v1/connections/{conn}")),
            (Method::PATCH, format!("/api/v1/connections/{conn}")),
            (Method::DELETE, format!("/api/v1/connections/{conn}")),
            (Method::POST, format!("/api/v1/connections/{conn}/test")),
            (Method::POST, format!("/api/v1/connections/{conn}/jobs")),
            (Method::GET, "/api/v1/jobs".into()),
            (Method::GET, format!("/api/v1/jobs/{some}")),
            (Method::GET, format!("/api/v1/jobs/{some}/log")),
            (Method::GET, format!("/api/v1/pools/{pool}/parked")),
            (Method::POST, "/api/v1/parked/1/approve".into()),
            (Method::POST, "/api/v1/parked/1/reject".into()),
            (Method::POST, format!("/api/v1/pools/{pool}/parked/approve")),
            (Method::POST, format!("/api/v1/pools/{pool}/parked/reject")),
            (Method::GET, format!("/api/v1/pools/{pool}/departments")),
            (
                Method::GET,
                format!("/api/v1/pools/{pool}/departments/{some}"),
            ),
            (
                Method::GET,
                format!("/api/v1/pools/{pool}/departments/{some}/members"),
            ),
            (
                Method::GET,
                format!("/api/v1/pools/{pool}/departments/by/open_department_id/od-x"),
            ),
            (Method::GET, format!("/api/v1/pools/{pool}/users?q=a")),
            (Method::GET, format!("/api/v1/pools/{pool}/users/{some}")),
            (
                Method::GET,
                format!("/api/v1/pools/{pool}/users/by/open_id/ou_x"),
            ),
            (Method::GET, format!("/api/v1/pools/{pool}/groups")),
            (Method::GET, format!("/api/v1/pools/{pool}/groups/{some}")),
            (
                Method::GET,
                format!("/api/v1/pools/{pool}/groups/by/group_id/g-x"),
            ),
            (Method::GET, "/api/v1/events".into()),
            (Method::GET, "/api/v1/events/1".into()),
        ];
        for (method, path) in &routes {
            for token in [None, Some("osat_wrong"), Some("")] {
                let mut req = s.http.request(method.clone(), s.url(path));
                if let Some(token) = token {
                    req = req.bearer_auth(token);
                }
                let resp = req.json(&json!({})).send().await.unwrap();
                let status = resp.status();
                let challenge = resp
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let body: Value = resp.json().await.unwrap_or(Value::Null);
                let what = format!("{method} {path} with token {token:?}");
                assert_error(backend, &what, status, &body, StatusCode::UNAUTHORIZED);
                assert!(
                    challenge.starts_with("Bearer"),
                    "{backend:?}: {what}: {challenge:?}"
                );
                assert_eq!(body["error"]["code"], "unauthorized", "{backend:?}: {what}");
                let fix = body["error"]["fix"].as_str().unwrap_or_default();
                assert!(
                    fix.contains("ORGSYNC_ADMIN_TOKEN") && fix.contains("first start"),
                    "{backend:?}: {what}: the fix says where the token comes from: {fix}"
                );
            }
        }
        // Another scheme is no token either.
        let resp = s
            .http
            .get(s.url("/api/v1/pools"))
            .basic_auth("admin", Some(ADMIN_TOKEN))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{backend:?}");
        // Nothing above changed anything.
        let (status, c) = s.get(&format!("/api/v1/connections/{conn}")).await;
        assert_eq!(status, StatusCode::OK, "{backend:?}: {c}");

        // The document and its page are public.
        let resp = s
            .http
            .get(s.url("/api/v1/openapi.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{backend:?}");
        let doc: Value = resp.json().await.unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
        let paths = doc["paths"].as_object().unwrap();
        for path in [
            "/api/v1/pools",
            "/api/v1/pools/{pool_id}",
            "/api/v1/pools/{pool_id}/connections",
            "/api/v1/connections/{connection_id}",
            "/api/v1/connections/{connection_id}/test",
            "/api/v1/connections/{connection_id}/jobs",
            "/api/v1/jobs",
            "/api/v1/jobs/{job_id}",
            "/api/v1/jobs/{job_id}/log",
            "/api/v1/pools/{pool_id}/parked",
            "/api/v1/parked/{parked_id}/approve",
            "/api/v1/parked/{parked_id}/reject",
            "/api/v1/pools/{pool_id}/parked/approve",
            "/api/v1/pools/{pool_id}/parked/reject",
            "/api/v1/pools/{pool_id}/departments",
            "/api/v1/pools/{pool_id}/departments/{department_id}",
            "/api/v1/pools/{pool_id}/departments/{department_id}/members",
            "/api/v1/pools/{pool_id}/departments/by/{id_type}/{value}",
            "/api/v1/pools/{pool_id}/users",
            "/api/v1/pools/{pool_id}/users/{user_id}",
            "/api/v1/pools/{pool_id}/users/by/{id_type}/{value}",
            "/api/v1/pools/{pool_id}/groups",
            "/api/v1/pools/{pool_id}/groups/{group_id}",
            "/api/v1/pools/{pool_id}/groups/{group_id}/members",
            "/api/v1/pools/{pool_id}/groups/by/{id_type}/{value}",
            "/api/v1/events",
            "/api/v1/events/{event_id}",
            "/api/v1/pools/{pool_id}/events",
            "/api/v1/pools/{pool_id}/feed-settings",
            "/api/v1/pools/{pool_id}/credentials",
            "/api/v1/pools/{pool_id}/credentials/{credential_id}/revoke",
            "/api/v1/pools/{pool_id}/webhooks",
            "/api/v1/pools/{pool_id}/webhooks/{webhook_id}",
            "/api/v1/pools/{pool_id}/webhooks/{webhook_id}/replay",
            "/api/v1/pools/{pool_id}/webhooks/{webhook_id}/rotate-secret",
            "/api/v1/pools/{pool_id}/webhooks/{webhook_id}/test",
            "/api/v1/pools/{pool_id}/webhooks/{webhook_id}/attempts",
            "/api/v1/pools/{pool_id}/ldap-settings",
            "/api/v1/pools/{pool_id}/users/{user_id}/app-passwords",
            "/api/v1/pools/{pool_id}/app-passwords/{app_password_id}/revoke",
        ] {
            let item = paths
                .get(path)
                .unwrap_or_else(|| panic!("{path} is not documented"));
            for (method, op) in item.as_object().unwrap() {
                // The directory's reads and the feed take a service credential too.
                // App passwords are the admin's alone.
                let service = path.contains("/webhooks")
                    || method == "get"
                        && !path.contains("/app-passwords")
                        && (path.contains("/departments")
                            || path.contains("/users")
                            || path.contains("/groups")
                            || path.ends_with("/parked")
                            || path == "/api/v1/pools/{pool_id}"
                            || path == "/api/v1/pools/{pool_id}/events");
                let expected = if service {
                    json!([{"admin_token": []}, {"service_credential": []}])
                } else {
                    json!([{"admin_token": []}])
                };
                assert_eq!(op["security"], expected, "{method} {path}");
                assert!(op["responses"]["401"].is_object(), "{method} {path}");
                assert!(
                    op["responses"]
                        .as_object()
                        .unwrap()
                        .keys()
                        .any(|k| k.starts_with('2')),
                    "{method} {path}"
                );
            }
        }
        assert_eq!(paths.len(), 40, "{:?}", paths.keys().collect::<Vec<_>>());
        let pool_item = &paths["/api/v1/pools/{pool_id}"];
        for method in ["get", "patch", "delete"] {
            assert!(
                pool_item[method].is_object(),
                "{method} /api/v1/pools/{{pool_id}}"
            );
        }
        // Every reference resolves (a client generator or schemathesis stops at the first
        // one that does not).
        fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
            match v {
                Value::Object(map) => {
                    for (k, v) in map {
                        match (k.as_str(), v) {
                            ("$ref", Value::String(r)) => out.push(r),
                            _ => refs(v, out),
                        }
                    }
                }
                Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for r in found {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("unexpected reference {r}"));
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "{r} is referenced but not in the document"
            );
        }
        assert_eq!(
            doc["components"]["securitySchemes"]["admin_token"]["scheme"],
            "bearer"
        );
        for schema in [
            "UserPool",
            "ConnectionView",
            "NewConnection",
            "SyncJob",
            "User",
            "ErrorBody",
        ] {
            assert!(
                doc["components"]["schemas"][schema].is_object(),
                "schema {schema}"
            );
        }
        let resp = s.http.get(s.url("/api/v1/docs/")).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{backend:?}");
        assert!(
            resp.text().await.unwrap().contains("swagger"),
            "{backend:?}"
        );
    }
}

/// A tenant whose only app has distinctive secrets.
const SECRET_APP_ID: &str = "cli_api_secrets_0001";
const SECRET_APP_SECRET: &str = "zq-app-secret-must-never-leak-5811";
const SECRET_ENCRYPT_KEY: &str = "zq-encrypt-key-must-never-leak-5812";
const SECRET_TOKEN: &str = "zq-verification-token-must-never-leak-5813";
const SECRET_NEW_APP_SECRET: &str = "zq-rotated-app-secret-must-never-leak-5814";

fn secret_tenant() -> Tenant {
    let mut app = AppRecord::new(SECRET_APP_ID, SECRET_APP_SECRET);
    app.encrypt_key = Some(SECRET_ENCRYPT_KEY.into());
    app.verification_token = SECRET_TOKEN.into();
    generate(
        &GenerateConfig {
            seed: 62,
            users: 30,
            departments: 4,
            groups: 1,
            ..GenerateConfig::default()
        },
        vec![app],
    )
}

#[tokio::test]
async fn secrets_never_appear_in_any_response() {
    let secrets = [
        SECRET_APP_SECRET,
        SECRET_ENCRYPT_KEY,
        SECRET_TOKEN,
        SECRET_NEW_APP_SECRET,
    ];
    for backend in Backend::all() {
        let s = Served::start(backend, secret_tenant()).await;
        let mut bodies: Vec<(String, String)> = Vec::new();
        let (_, pool) = s.post("/api/v1/pools", &json!({"name": "Secrets"})).await;
        let pool_id = pool["id"].as_str().unwrap().to_owned();
        let resp = s
            .http
            .post(s.url(&format!("/api/v1/pools/{pool_id}/connections")))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({
                "identifier": "secret-app",
                "base_url": s.emu.base_url(),
                "app_id": SECRET_APP_ID,
                "app_secret": SECRET_APP_SECRET,
                "encrypt_key": SECRET_ENCRYPT_KEY,
                "verification_token": SECRET_TOKEN,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED, "{backend:?}");
        let text = resp.text().await.unwrap();
        let connection: Value = serde_json::from_str(&text).unwrap();
        bodies.push(("create".into(), text));
        let conn = connection["id"].as_str().unwrap().to_owned();

        // The read shows whether each secret is set, and the callback URL.
        for field in ["app_secret", "encrypt_key", "verification_token"] {
            assert_eq!(
                connection[field],
                json!({"set": true}),
                "{backend:?}: {field}"
            );
        }
        let callback = s.url(&format!(
            "/connections/enterprise/secret-app/{pool_id}/events"
        ));
        assert_eq!(connection["callback_url"], callback.as_str(), "{backend:?}");

        // Something in every read: a job with its log, an event in the inbox.
        let (status, check) = s
            .post(&format!("/api/v1/connections/{conn}/test"), &json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{backend:?}: {check}");
        assert_eq!(check["ok"], true, "{backend:?}: {check}");
        let job = run_job(&s, &conn, "import").await;
        assert_eq!(job["verdict"], "complete", "{backend:?}: {job}");
        let mark = s.emu.state().events.emitted().len();
        let dept = s.emu.with_tenant(|t| t.children("0")[0].clone());
        s.emu
            .state()
            .mutate(|t| {
                t.hire(NewUser {
                    name: Some("Secret Keeper".into()),
                    departments: vec![dept],
                    ..NewUser::default()
                })
            })
            .unwrap();
        let n = deliver_over_http(&s, &callback, SECRET_APP_ID, SECRET_ENCRYPT_KEY, mark).await;
        assert!(n > 0, "{backend:?}");
        let events = wait_for(&s, "/api/v1/events", "the event was applied", |b| {
            b["items"].as_array().is_some_and(|items| {
                !items.is_empty() && items.iter().all(|e| e["state"] != "pending")
            })
        })
        .await;
        let event_id = events["items"][0]["id"].as_i64().unwrap();

        // A PATCH that rotates the secret answers masked too.
        let resp = s
            .http
            .patch(s.url(&format!("/api/v1/connections/{conn}")))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"display_name": "Renamed", "app_secret": SECRET_NEW_APP_SECRET}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{backend:?}");
        let text = resp.text().await.unwrap();
        let patched: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(patched["display_name"], "Renamed");
        assert_eq!(patched["app_secret"], json!({"set": true}));
        bodies.push(("patch".into(), text));

        let job_id = job["id"].as_str().unwrap();
        let user = s
            .get(&format!("/api/v1/pools/{pool_id}/users?q=Secret%20Keeper"))
            .await
            .1["items"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        for path in [
            format!("/api/v1/connections/{conn}"),
            format!("/api/v1/pools/{pool_id}/connections"),
            format!("/api/v1/jobs?connection_id={conn}"),
            format!("/api/v1/jobs/{job_id}"),
            format!("/api/v1/jobs/{job_id}/log?limit=500"),
            "/api/v1/events?limit=500".to_owned(),
            format!("/api/v1/events/{event_id}"),
            format!("/api/v1/pools/{pool_id}/users/{user}"),
            "/api/v1/openapi.json".to_owned(),
        ] {
            let (status, text) = get_text(&s, &path).await;
            assert_eq!(status, StatusCode::OK, "{backend:?}: {path}: {text}");
            bodies.push((path, text));
        }
        for (what, body) in &bodies {
            for secret in secrets {
                assert!(
                    !body.contains(secret),
                    "{backend:?}: {what} shows a secret: {body}"
                );
            }
        }
        // The event's payload is kept, without the token (it is not stored at all).
        let (_, event) = s.get(&format!("/api/v1/events/{event_id}")).await;
        let payload: Value = serde_json::from_str(event["payload"].as_str().unwrap()).unwrap();
        assert!(
            payload["header"]["event_id"].is_string(),
            "{backend:?}: {payload}"
        );
        assert!(
            payload["header"].get("token").is_none(),
            "{backend:?}: {payload}"
        );
    }
}

#[tokio::test]
async fn full_flow_import_read_and_an_event_through_the_callback_url() {
    for backend in Backend::all() {
        let s = Served::start(backend, tenant(120, 10, 3, 63)).await;
        let (pool, connection) = pool_and_connection(&s, None).await;
        let conn = connection["id"].as_str().unwrap().to_owned();
        let callback = connection["callback_url"].as_str().unwrap().to_owned();
        assert_eq!(
            callback,
            s.url(&format!(
                "/connections/enterprise/{IDENTIFIER}/{pool}/events"
            ))
        );
        let (status, pools) = s.get("/api/v1/pools").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(pools["total"], 1, "{pools}");
        assert_eq!(pools["items"][0]["id"], pool.as_str());
        let (_, conns) = s.get(&format!("/api/v1/pools/{pool}/connections")).await;
        assert_eq!(conns["items"][0]["identifier"], IDENTIFIER, "{conns}");

        // Credentials.
        let (status, check) = s
            .post(&format!("/api/v1/connections/{conn}/test"), &json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{backend:?}: {check}");
        assert_eq!(check["ok"], true, "{backend:?}: {check}");
        assert!(check["steps"].as_array().unwrap().len() >= 2, "{check}");

        // Import.
        let job = run_job(&s, &conn, "import").await;
        assert_eq!(job["verdict"], "complete", "{backend:?}: {job}");
        assert_eq!(job["trigger"], "admin");
        let job_id = job["id"].as_str().unwrap();
        let (_, jobs) = s.get(&format!("/api/v1/jobs?connection_id={conn}")).await;
        assert_eq!(jobs["items"][0]["id"], job_id, "{jobs}");
        let (status, log) = s
            .get(&format!(
                "/api/v1/jobs/{job_id}/log?action=CreateUser&object_type=user&result=applied&limit=5"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{log}");
        assert_eq!(log["limit"], 5);
        let entries = log["items"].as_array().unwrap();
        assert_eq!(entries.len(), 5, "{log}");
        assert!(
            entries
                .iter()
                .all(|e| e["action"] == "CreateUser" && e["result"] == "applied")
        );
        // Walked by `after`, the filtered log is the one long page, each line once.
        let base = format!("/api/v1/jobs/{job_id}/log?action=CreateUser&result=applied");
        let (_, whole) = s.get(&format!("{base}&limit=500")).await;
        let whole: Vec<i64> = whole["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_i64().unwrap())
            .collect();
        assert!(whole.len() > 7, "{backend:?}: {} lines", whole.len());
        let (mut walked, mut after, mut pages) = (Vec::new(), String::new(), 0);
        loop {
            let (status, page) = s.get(&format!("{base}&limit=7&after={after}")).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            walked.extend(
                page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["seq"].as_i64().unwrap()),
            );
            pages += 1;
            match page["next"].as_str() {
                Some(next) => after = next.to_owned(),
                None => break,
            }
        }
        assert_eq!(walked, whole, "{backend:?}");
        assert_eq!(pages, whole.len().div_ceil(7), "no empty page at the end");
        let (status, err) = s.get(&format!("{base}&after=not-a-cursor")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
        assert!(
            err["error"]["message"].as_str().unwrap().contains("next"),
            "{err}"
        );

        // Users: search, lookups by each Feishu id, detail.
        let (name, email, key, user_id) = s.emu.with_tenant(|t| {
            let u = t
                .users
                .values()
                .find(|u| {
                    !u.status.resigned && u.email.is_some() && !t.members("0").contains(&u.key)
                })
                .unwrap();
            (
                u.name.clone(),
                u.email.clone().unwrap(),
                u.key,
                u.user_id.clone(),
            )
        });
        let open_id = s.emu.with_tenant(|t| t.apps[APP_ID].open_id(key));
        let (status, by_open) = s
            .get(&format!("/api/v1/pools/{pool}/users/by/open_id/{open_id}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{backend:?}: {by_open}");
        let id = by_open["id"].as_str().unwrap().to_owned();
        assert_eq!(by_open["profile"]["name"], name.as_str());
        for (id_type, value) in [("union_id", union_id(key)), ("user_id", user_id)] {
            let (status, u) = s
                .get(&format!("/api/v1/pools/{pool}/users/by/{id_type}/{value}"))
                .await;
            assert_eq!(status, StatusCode::OK, "{backend:?}: {id_type}: {u}");
            assert_eq!(u["id"], id.as_str(), "{backend:?}: {id_type}");
        }
        let q: String = url_encode(&name);
        let (_, found) = s.get(&format!("/api/v1/pools/{pool}/users?q={q}")).await;
        assert!(
            found["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|u| u["id"] == id.as_str()),
            "{backend:?}: search by name {name:?}: {found}"
        );
        let (_, found) = s
            .get(&format!(
                "/api/v1/pools/{pool}/users?email={}&total=true",
                url_encode(&email)
            ))
            .await;
        assert_eq!(found["total"], 1, "{backend:?}: search by email: {found}");
        assert_eq!(found["items"][0]["id"], id.as_str());
        // Offset paging is refused with the way to page instead; a cursor walks the list.
        let (status, refused) = s
            .get(&format!("/api/v1/pools/{pool}/users?limit=7&offset=2"))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
        assert!(
            refused["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("after")),
            "{refused}"
        );
        let (_, first) = s.get(&format!("/api/v1/pools/{pool}/users?limit=7")).await;
        let next = first["next"].as_str().unwrap();
        let (_, all) = s
            .get(&format!(
                "/api/v1/pools/{pool}/users?limit=7&after={next}&total=true"
            ))
            .await;
        assert_eq!(all["items"].as_array().unwrap().len(), 7, "{all}");
        assert_ne!(all["items"][0]["id"], first["items"][0]["id"]);
        let live = s
            .emu
            .with_tenant(|t| t.users.values().filter(|u| !u.status.resigned).count());
        assert_eq!(all["total"], live as u64, "{backend:?}");
        // The API's total is the store's count.
        let stored = s
            .engine
            .store()
            .count_users(
                &pool.as_str().into(),
                &directory::store::UserQuery::default(),
            )
            .await
            .unwrap();
        assert_eq!(all["total"], stored, "{backend:?}");
        let (status, detail) = s.get(&format!("/api/v1/pools/{pool}/users/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{detail}");
        assert_eq!(detail["user"]["id"], id.as_str());
        assert!(
            !detail["departments"].as_array().unwrap().is_empty(),
            "{detail}"
        );
        assert!(
            detail["external_ids"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["external_id"] == open_id.as_str()),
            "{detail}"
        );

        // Departments: the tree one level at a time, one department with its path, its
        // members.
        let mut levels = vec![String::new()];
        let mut listed = 0;
        while let Some(parent) = levels.pop() {
            let mut after = String::new();
            loop {
                let (status, level) = s
                    .get(&format!(
                        "/api/v1/pools/{pool}/departments?parent={parent}&limit=2&after={after}"
                    ))
                    .await;
                assert_eq!(status, StatusCode::OK, "{level}");
                for n in level["items"].as_array().unwrap() {
                    listed += 1;
                    assert!(n["member_count"].is_u64() && n["total_member_count"].is_u64());
                    if n["child_count"].as_u64().unwrap() > 0 {
                        levels.push(n["department"]["id"].as_str().unwrap().to_owned());
                    }
                }
                match level["next"].as_str() {
                    Some(next) => after = next.to_owned(),
                    None => break,
                }
            }
        }
        let departments = s.emu.with_tenant(|t| t.departments.len());
        assert_eq!(listed, departments, "{backend:?}");
        let member_dept = detail["departments"][0]["id"].as_str().unwrap().to_owned();
        let (status, dept) = s
            .get(&format!("/api/v1/pools/{pool}/departments/{member_dept}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{dept}");
        assert_eq!(dept["department"]["id"], member_dept.as_str());
        assert!(
            dept["child_count"].is_u64() && dept["path"].is_array(),
            "{dept}"
        );
        if let Some(parent) = dept["department"]["parent_id"].as_str() {
            assert_eq!(
                dept["path"].as_array().unwrap().last().unwrap()["id"],
                parent
            );
        }
        let (status, members) = s
            .get(&format!(
                "/api/v1/pools/{pool}/departments/{member_dept}/members?status=active"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{members}");
        assert!(
            members["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|u| u["id"] == id.as_str())
                || by_open["status"] != "active",
            "{backend:?}: {members}"
        );

        // Groups.
        let (_, groups) = s.get(&format!("/api/v1/pools/{pool}/groups")).await;
        let group = groups["items"][0]["group"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (status, g) = s.get(&format!("/api/v1/pools/{pool}/groups/{group}")).await;
        assert_eq!(status, StatusCode::OK, "{g}");
        assert!(g["users"].is_array() && g["departments"].is_array(), "{g}");

        // A joiner in Feishu reaches orgsync through the callback URL.
        let mark = s.emu.state().events.emitted().len();
        let dept = s.emu.with_tenant(|t| t.children("0")[0].clone());
        let changes = s
            .emu
            .state()
            .mutate(|t| {
                t.hire(NewUser {
                    name: Some("Api Joiner".into()),
                    email: Some("api.joiner@example.com".into()),
                    departments: vec![dept],
                    ..NewUser::default()
                })
            })
            .unwrap();
        let joiner = Change::created_user(&changes).unwrap();
        let delivered = deliver_over_http(&s, &callback, APP_ID, ENCRYPT_KEY, mark).await;
        assert!(delivered > 0, "{backend:?}");
        let found = wait_for(
            &s,
            &format!("/api/v1/pools/{pool}/users?email=api.joiner%40example.com"),
            "the joiner appears",
            |b| b["items"].as_array().is_some_and(|i| i.len() == 1),
        )
        .await;
        assert_eq!(
            found["items"][0]["profile"]["name"], "Api Joiner",
            "{backend:?}: {found}"
        );
        let joiner_open_id = s.emu.with_tenant(|t| t.apps[APP_ID].open_id(joiner));
        let (status, _) = s
            .get(&format!(
                "/api/v1/pools/{pool}/users/by/open_id/{joiner_open_id}"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{backend:?}");
        let events = wait_for(
            &s,
            &format!(
                "/api/v1/events?pool_id={pool}&connection_id={conn}&event_type=contact.user.created_v3"
            ),
            "the event is listed as applied",
            |b| b["items"].as_array().is_some_and(|i| i.len() == 1 && i[0]["state"] == "applied"),
        )
        .await;
        let event_id = events["items"][0]["id"].as_i64().unwrap();
        let (status, event) = s.get(&format!("/api/v1/events/{event_id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(event["event_type"], "contact.user.created_v3");
        let (_, applied) = s.get("/api/v1/events?state=applied").await;
        assert!(
            !applied["items"].as_array().unwrap().is_empty(),
            "{applied}"
        );
        let (_, pending) = s.get("/api/v1/events?state=pending").await;
        assert_eq!(pending["items"], json!([]), "{pending}");

        // Delete the connection: the directory stays.
        let (status, _) = s
            .send(Method::DELETE, &format!("/api/v1/connections/{conn}"), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{backend:?}");
        let (status, body) = s.get(&format!("/api/v1/connections/{conn}")).await;
        assert_error(
            backend,
            "deleted connection",
            status,
            &body,
            StatusCode::NOT_FOUND,
        );
        let (status, _) = s.get(&format!("/api/v1/pools/{pool}/users/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{backend:?}");
    }
}

pub(crate) fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[tokio::test]
async fn errors_are_json_with_the_right_status() {
    for backend in Backend::all() {
        let s = Served::start(backend, tenant(20, 3, 1, 64)).await;
        let (pool, connection) = pool_and_connection(&s, None).await;
        let conn = connection["id"].as_str().unwrap().to_owned();
        let unknown = "0123456789abcdef01234567";

        // 404 for ids that do not exist, and for routes that do not exist.
        for path in [
            format!("/api/v1/pools/{unknown}"),
            format!("/api/v1/pools/{unknown}/connections"),
            format!("/api/v1/connections/{unknown}"),
            format!("/api/v1/jobs/{unknown}"),
            format!("/api/v1/jobs/{unknown}/log"),
            format!("/api/v1/pools/{unknown}/parked"),
            format!("/api/v1/pools/{unknown}/departments"),
            format!("/api/v1/pools/{pool}/departments/{unknown}"),
            format!("/api/v1/pools/{pool}/departments/{unknown}/members"),
            format!("/api/v1/pools/{unknown}/users"),
            format!("/api/v1/pools/{pool}/users/{unknown}"),
            format!("/api/v1/pools/{pool}/users/by/open_id/ou_nobody"),
            format!("/api/v1/pools/{pool}/departments/by/open_department_id/od-nobody"),
            format!("/api/v1/pools/{pool}/departments/by/department_id/nobody"),
            format!("/api/v1/pools/{unknown}/departments/by/department_id/nobody"),
            format!("/api/v1/pools/{pool}/groups/by/group_id/g-nobody"),
            format!("/api/v1/pools/{pool}/groups/by/custom_group_id/nobody"),
            format!("/api/v1/pools/{unknown}/groups"),
            format!("/api/v1/pools/{pool}/groups/{unknown}"),
            "/api/v1/events/987654".to_owned(),
            "/api/v1/no-such-thing".to_owned(),
        ] {
            let (status, body) = s.get(&path).await;
            assert_error(backend, &path, status, &body, StatusCode::NOT_FOUND);
        }
        for (method, path) in [
            (Method::DELETE, format!("/api/v1/pools/{unknown}")),
            (Method::POST, format!("/api/v1/connections/{unknown}/test")),
            (Method::DELETE, format!("/api/v1/connections/{unknown}")),
            (Method::POST, "/api/v1/parked/987654/approve".to_owned()),
            (Method::POST, "/api/v1/parked/987654/reject".to_owned()),
        ] {
            let (status, body) = s.send(method.clone(), &path, None).await;
            assert_error(
                backend,
                &format!("{method} {path}"),
                status,
                &body,
                StatusCode::NOT_FOUND,
            );
        }
        let (status, body) = s
            .post(
                &format!("/api/v1/connections/{unknown}/jobs"),
                &json!({"kind": "import"}),
            )
            .await;
        assert_error(
            backend,
            "job of unknown connection",
            status,
            &body,
            StatusCode::NOT_FOUND,
        );
        let (status, body) = s
            .send(
                Method::PATCH,
                &format!("/api/v1/connections/{unknown}"),
                Some(&json!({})),
            )
            .await;
        assert_error(
            backend,
            "patch unknown",
            status,
            &body,
            StatusCode::NOT_FOUND,
        );

        // 400 for bad input, naming the field.
        let create = format!("/api/v1/pools/{pool}/connections");
        let good = json!({"identifier": "second", "app_id": APP_ID, "app_secret": APP_SECRET});
        let bad_bodies = [
            (
                "bad identifier",
                json!({"identifier": "Not Allowed!", "app_id": APP_ID, "app_secret": "x"}),
                "identifier",
            ),
            (
                "missing app_secret",
                json!({"identifier": "second", "app_id": APP_ID}),
                "app_secret",
            ),
            (
                "empty app_secret",
                json!({"identifier": "second", "app_id": APP_ID, "app_secret": " "}),
                "app_secret",
            ),
            (
                "unknown field",
                json!({"identifier": "second", "app_id": APP_ID, "app_secret": "x", "colour": "red"}),
                "colour",
            ),
            (
                "bad provider",
                json!({"identifier": "second", "app_id": APP_ID, "app_secret": "x", "provider": "slack"}),
                "provider",
            ),
            (
                "bad base_url",
                json!({"identifier": "second", "app_id": APP_ID, "app_secret": "x", "base_url": "not a url"}),
                "base_url",
            ),
            (
                "bad threshold",
                json!({"identifier": "second", "app_id": APP_ID, "app_secret": "x", "settings": {"deletion_threshold": {"max_fraction": 2.0}}}),
                "max_fraction",
            ),
            (
                "pacing of zero",
                json!({"identifier": "second", "app_id": APP_ID, "app_secret": "x", "settings": {"pacing": {"per_second": 0}}}),
                "settings.pacing.per_second",
            ),
        ];
        for (what, body, field) in bad_bodies {
            let (status, answer) = s.post(&create, &body).await;
            assert_error(backend, what, status, &answer, StatusCode::BAD_REQUEST);
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(message.contains(field), "{backend:?}: {what}: {message}");
        }
        let (status, body) = s.post("/api/v1/pools", &json!({"name": ""})).await;
        assert_error(
            backend,
            "empty pool name",
            status,
            &body,
            StatusCode::BAD_REQUEST,
        );
        let (status, body) = s.post("/api/v1/pools", &json!({})).await;
        assert_error(
            backend,
            "no pool name",
            status,
            &body,
            StatusCode::BAD_REQUEST,
        );
        let (status, body) = s
            .post(
                &format!("/api/v1/connections/{conn}/jobs"),
                &json!({"kind": "purge"}),
            )
            .await;
        assert_error(
            backend,
            "bad job kind",
            status,
            &body,
            StatusCode::BAD_REQUEST,
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("reconcile"),
            "{body}"
        );
        let (status, body) = s
            .send(
                Method::PATCH,
                &format!("/api/v1/connections/{conn}"),
                Some(&json!({"identifier": "renamed"})),
            )
            .await;
        assert_error(
            backend,
            "patch an unknown field",
            status,
            &body,
            StatusCode::BAD_REQUEST,
        );
        // Not JSON at all.
        let resp = s
            .http
            .post(s.url("/api/v1/pools"))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_error(
            backend,
            "syntax error",
            status,
            &body,
            StatusCode::BAD_REQUEST,
        );
        let resp = s
            .http
            .post(s.url("/api/v1/pools"))
            .bearer_auth(ADMIN_TOKEN)
            .body(r#"{"name": "x"}"#)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_error(
            backend,
            "no content type",
            status,
            &body,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        );

        // Query parameters.
        let job = run_job(&s, &conn, "import").await;
        let job_id = job["id"].as_str().unwrap();
        for (path, field, allowed) in [
            (
                format!("/api/v1/jobs/{job_id}/log?action=CreateUsers"),
                "action",
                "CreateUser",
            ),
            (
                format!("/api/v1/jobs/{job_id}/log?object_type=robot"),
                "object_type",
                "department",
            ),
            (
                format!("/api/v1/jobs/{job_id}/log?result=maybe"),
                "result",
                "skipped",
            ),
            (
                format!("/api/v1/pools/{pool}/users?status=zombie"),
                "status",
                "resigned",
            ),
            (
                format!("/api/v1/pools/{pool}/parked?state=later"),
                "state",
                "pending",
            ),
            ("/api/v1/events?state=done".to_owned(), "state", "ignored"),
            (
                format!("/api/v1/pools/{pool}/users/by/email/a@b.c"),
                "id_type",
                "union_id",
            ),
            (
                format!("/api/v1/pools/{pool}/departments/by/open_id/ou_x"),
                "id_type",
                "open_department_id, department_id",
            ),
            (
                format!("/api/v1/pools/{pool}/groups/by/name/x"),
                "id_type",
                "group_id, custom_group_id",
            ),
            ("/api/v1/jobs?limit=many".to_owned(), "limit", "limit"),
            (
                format!("/api/v1/pools/{pool}/users?include_deleted=perhaps"),
                "include_deleted",
                "include_deleted",
            ),
            (
                format!("/api/v1/pools/{pool}/users?colour=red"),
                "colour",
                "colour",
            ),
            (
                "/api/v1/jobs?connection_id=nope".to_owned(),
                "connection_id",
                "24",
            ),
            ("/api/v1/pools/xyz".to_owned(), "pool_id", "24"),
            ("/api/v1/events/abc".to_owned(), "abc", "abc"),
        ] {
            let (status, body) = s.get(&path).await;
            assert_error(backend, &path, status, &body, StatusCode::BAD_REQUEST);
            let message = body["error"]["message"].as_str().unwrap();
            assert!(
                message.contains(field) && message.contains(allowed),
                "{backend:?}: {path}: {message}"
            );
        }
        // Pagination is clamped.
        let (status, page) = s
            .get(&format!("/api/v1/jobs/{job_id}/log?limit=100000"))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(page["limit"], 500, "{page}");
        let (_, page) = s.get(&format!("/api/v1/pools/{pool}/users")).await;
        assert_eq!(page["limit"], 50, "{page}");
        assert_eq!(
            page["total"],
            Value::Null,
            "counted only when asked: {page}"
        );

        // 409 for a duplicate identifier.
        let (status, _) = s.post(&create, &good).await;
        assert_eq!(status, StatusCode::CREATED, "{backend:?}");
        let (status, body) = s.post(&create, &good).await;
        assert_error(
            backend,
            "duplicate identifier",
            status,
            &body,
            StatusCode::CONFLICT,
        );

        // Unsupported methods.
        let (status, body) = s.send(Method::PUT, "/api/v1/pools", Some(&json!({}))).await;
        assert_error(
            backend,
            "PUT pools",
            status,
            &body,
            StatusCode::METHOD_NOT_ALLOWED,
        );
    }
}

fn thresholds_zero() -> Value {
    json!({"deletion_threshold": {"max_fraction": 0.0, "max_count": 0}})
}

#[tokio::test]
async fn parked_deletions_are_approved_and_rejected() {
    for backend in Backend::all() {
        let s = Served::start(backend, tenant(80, 8, 2, 65)).await;
        let (pool, connection) = pool_and_connection(&s, Some(thresholds_zero())).await;
        let conn = connection["id"].as_str().unwrap().to_owned();
        assert_eq!(connection["settings"]["deletion_threshold"]["max_count"], 0);
        let job = run_job(&s, &conn, "import").await;
        assert_eq!(job["verdict"], "complete", "{backend:?}: {job}");

        // The app's scope shrinks to one department: everyone else would be deleted.
        let small = s.emu.with_tenant(|t| {
            t.departments
                .keys()
                .filter(|d| t.children(d).is_empty() && !t.members(d).is_empty())
                .min_by_key(|d| (t.members(d).len(), (*d).clone()))
                .unwrap()
                .clone()
        });
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
        assert_eq!(job["verdict"], "complete", "{backend:?}: {job}");
        let job_id = job["id"].as_str().unwrap();
        let (_, log) = s
            .get(&format!(
                "/api/v1/jobs/{job_id}/log?result=parked&object_type=user"
            ))
            .await;
        assert!(
            !log["items"].as_array().unwrap().is_empty(),
            "{backend:?}: {log}"
        );

        let (status, parked) = s
            .get(&format!(
                "/api/v1/pools/{pool}/parked?state=pending&limit=500"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{parked}");
        let users: Vec<&Value> = parked["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["kind"] == "user")
            .collect();
        assert!(users.len() >= 2, "{backend:?}: {parked}");
        assert!(
            users
                .iter()
                .all(|p| p["job_id"] == job_id && p["state"] == "pending")
        );

        // Approve: the user is soft-deleted now.
        let approve = &users[0];
        let (id, user) = (
            approve["id"].as_i64().unwrap(),
            approve["object_id"].as_str().unwrap(),
        );
        let (_, before) = s.get(&format!("/api/v1/pools/{pool}/users/{user}")).await;
        assert!(before["user"]["deleted_at"].is_null(), "{before}");
        let (status, resolved) = s
            .post(&format!("/api/v1/parked/{id}/approve"), &json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{backend:?}: {resolved}");
        assert_eq!(resolved["state"], "approved");
        assert!(resolved["resolved_at"].is_i64(), "{resolved}");
        let (_, after) = s.get(&format!("/api/v1/pools/{pool}/users/{user}")).await;
        assert!(after["user"]["deleted_at"].is_i64(), "{backend:?}: {after}");
        let (status, body) = s
            .post(&format!("/api/v1/parked/{id}/approve"), &json!({}))
            .await;
        assert_error(
            backend,
            "approve twice",
            status,
            &body,
            StatusCode::CONFLICT,
        );
        let (status, body) = s
            .post(&format!("/api/v1/parked/{id}/reject"), &json!({}))
            .await;
        assert_error(
            backend,
            "reject an approved one",
            status,
            &body,
            StatusCode::CONFLICT,
        );

        // Reject: the user stays.
        let reject = &users[1];
        let (id, user) = (
            reject["id"].as_i64().unwrap(),
            reject["object_id"].as_str().unwrap(),
        );
        let (status, resolved) = s
            .post(&format!("/api/v1/parked/{id}/reject"), &json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{backend:?}: {resolved}");
        assert_eq!(resolved["state"], "rejected");
        let (_, kept) = s.get(&format!("/api/v1/pools/{pool}/users/{user}")).await;
        assert!(kept["user"]["deleted_at"].is_null(), "{backend:?}: {kept}");

        // The lists by state.
        for (state, n) in [("approved", 1), ("rejected", 1)] {
            let (_, list) = s
                .get(&format!("/api/v1/pools/{pool}/parked?state={state}"))
                .await;
            assert_eq!(
                list["items"].as_array().unwrap().len(),
                n,
                "{backend:?}: {state}: {list}"
            );
        }
        let (_, pending) = s
            .get(&format!(
                "/api/v1/pools/{pool}/parked?state=pending&limit=500"
            ))
            .await;
        assert_eq!(
            pending["items"].as_array().unwrap().len(),
            parked["items"].as_array().unwrap().len() - 2,
            "{backend:?}"
        );
    }
}

/// The event list answers `total`: every event matching the filter, whatever the page.
#[tokio::test]
async fn the_event_list_counts_its_matches() {
    for backend in Backend::all() {
        let s = Served::start(backend, tenant(40, 5, 1, 71)).await;
        let (pool, connection) = pool_and_connection(&s, None).await;
        let conn = connection["id"].as_str().unwrap().to_owned();
        let callback = connection["callback_url"].as_str().unwrap().to_owned();
        let mark = s.emu.state().events.emitted().len();
        let dept = s.emu.with_tenant(|t| t.children("0")[0].clone());
        for i in 0..3 {
            s.emu
                .state()
                .mutate(|t| {
                    t.hire(NewUser {
                        name: Some(format!("Counted {i}")),
                        departments: vec![dept.clone()],
                        ..NewUser::default()
                    })
                })
                .unwrap();
        }
        let delivered = deliver_over_http(&s, &callback, APP_ID, ENCRYPT_KEY, mark).await;
        assert!(delivered >= 3, "{backend:?}: {delivered}");
        let all = wait_for(&s, "/api/v1/events?limit=500", "every event handled", |b| {
            b["items"].as_array().is_some_and(|items| {
                items.len() == delivered && items.iter().all(|e| e["state"] != "pending")
            })
        })
        .await;
        let created = all["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["event_type"] == "contact.user.created_v3")
            .count();
        assert_eq!(created, 3, "{backend:?}: {all}");
        for (query, want) in [
            ("limit=1".to_owned(), delivered),
            (format!("pool_id={pool}&limit=1&offset=1"), delivered),
            (format!("connection_id={conn}&limit=2"), delivered),
            (
                format!("connection_id={conn}&event_type=contact.user.created_v3&limit=1"),
                created,
            ),
            ("state=pending".to_owned(), 0),
            (format!("pool_id={pool}&state=parked"), 0),
        ] {
            let (status, page) = s.get(&format!("/api/v1/events?{query}")).await;
            assert_eq!(status, StatusCode::OK, "{backend:?}: {query}: {page}");
            assert_eq!(page["total"], want, "{backend:?}: {query}: {page}");
            let shown = page["items"].as_array().unwrap().len() as u64;
            assert!(
                shown <= page["limit"].as_u64().unwrap(),
                "{backend:?}: {query}"
            );
        }
    }
}

/// A DELETE with the admin token, the body as JSON (`Null` for a 204).
async fn delete(s: &Served, path: &str) -> (StatusCode, Value) {
    s.send(Method::DELETE, path, None).await
}

#[tokio::test]
async fn pools_are_renamed_and_deleted_with_their_data() {
    for backend in Backend::all() {
        let s = Served::start(backend, tenant(40, 4, 2, 66)).await;
        let (pool, connection) = pool_and_connection(&s, None).await;
        let conn = connection["id"].as_str().unwrap().to_owned();
        let callback = connection["callback_url"].as_str().unwrap().to_owned();
        let job = run_job(&s, &conn, "import").await;
        assert_eq!(job["verdict"], "complete", "{backend:?}: {job}");
        let job_id = job["id"].as_str().unwrap().to_owned();
        // An event in the pool's inbox.
        let mark = s.emu.state().events.emitted().len();
        let dept = s.emu.with_tenant(|t| t.children("0")[0].clone());
        s.emu
            .state()
            .mutate(|t| {
                t.hire(NewUser {
                    name: Some("Doomed Joiner".into()),
                    departments: vec![dept],
                    ..NewUser::default()
                })
            })
            .unwrap();
        assert!(deliver_over_http(&s, &callback, APP_ID, ENCRYPT_KEY, mark).await > 0);
        let events = wait_for(
            &s,
            &format!("/api/v1/events?pool_id={pool}"),
            "the event was applied",
            |b| {
                b["items"].as_array().is_some_and(|items| {
                    !items.is_empty() && items.iter().all(|e| e["state"] != "pending")
                })
            },
        )
        .await;
        let event_id = events["items"][0]["id"].as_i64().unwrap();
        let (_, users) = s
            .get(&format!("/api/v1/pools/{pool}/users?total=true"))
            .await;
        let user_count = users["total"].as_u64().unwrap();
        assert!(user_count > 0, "{backend:?}");

        // Another pool with its own connection and users: it must not lose anything.
        let (_, other) = s.post("/api/v1/pools", &json!({"name": "Other"})).await;
        let other = other["id"].as_str().unwrap().to_owned();
        let (status, other_conn) = s
            .post(
                &format!("/api/v1/pools/{other}/connections"),
                &json!({
                    "identifier": IDENTIFIER,
                    "base_url": s.emu.base_url(),
                    "app_id": APP_ID,
                    "app_secret": APP_SECRET,
                }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{backend:?}: {other_conn}");
        let other_conn = other_conn["id"].as_str().unwrap().to_owned();
        let other_job = run_job(&s, &other_conn, "import").await;
        assert_eq!(other_job["verdict"], "complete", "{backend:?}");
        let (_, other_users) = s
            .get(&format!("/api/v1/pools/{other}/users?total=true"))
            .await;

        // Rename, validated like a new pool.
        let path = format!("/api/v1/pools/{pool}");
        let (status, renamed) = s
            .send(
                Method::PATCH,
                &path,
                Some(&json!({"name": "  Acme Renamed "})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{backend:?}: {renamed}");
        assert_eq!(renamed["name"], "Acme Renamed");
        assert_eq!(renamed["id"], pool.as_str());
        assert_eq!(s.get(&path).await.1["name"], "Acme Renamed");
        for (what, body) in [
            ("empty name", json!({"name": " "})),
            ("no name", json!({})),
            ("unknown field", json!({"name": "x", "colour": "red"})),
            ("long name", json!({"name": "x".repeat(201)})),
        ] {
            let (status, answer) = s.send(Method::PATCH, &path, Some(&body)).await;
            assert_error(backend, what, status, &answer, StatusCode::BAD_REQUEST);
        }
        let unknown = "0123456789abcdef01234567";
        let (status, answer) = s
            .send(
                Method::PATCH,
                &format!("/api/v1/pools/{unknown}"),
                Some(&json!({"name": "x"})),
            )
            .await;
        assert_error(
            backend,
            "rename unknown",
            status,
            &answer,
            StatusCode::NOT_FOUND,
        );

        // Without a confirmation: 409, saying what the pool holds and how to confirm.
        let (status, answer) = delete(&s, &path).await;
        assert_error(
            backend,
            "unconfirmed",
            status,
            &answer,
            StatusCode::CONFLICT,
        );
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("1 connection ")
                && message.contains(&format!("{user_count} users"))
                && message.contains("confirm="),
            "{backend:?}: {message}"
        );
        let (status, answer) = delete(&s, &format!("{path}?confirm=Acme")).await;
        assert_error(
            backend,
            "wrong confirmation",
            status,
            &answer,
            StatusCode::BAD_REQUEST,
        );
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Acme Renamed"),
            "{answer}"
        );
        assert_eq!(s.get(&path).await.0, StatusCode::OK, "{backend:?}");

        // An empty pool needs no confirmation.
        let (_, empty) = s.post("/api/v1/pools", &json!({"name": "Empty"})).await;
        let empty_path = format!("/api/v1/pools/{}", empty["id"].as_str().unwrap());
        let (status, _) = delete(&s, &empty_path).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{backend:?}");
        assert_eq!(s.get(&empty_path).await.0, StatusCode::NOT_FOUND);

        // Confirmed with the name: the pool goes with everything in it.
        let (status, answer) = delete(&s, &format!("{path}?confirm=Acme%20Renamed")).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{backend:?}: {answer}");
        for gone in [
            path.clone(),
            format!("/api/v1/pools/{pool}/connections"),
            format!("/api/v1/connections/{conn}"),
            format!("/api/v1/pools/{pool}/users"),
            format!("/api/v1/pools/{pool}/departments"),
            format!("/api/v1/pools/{pool}/groups"),
            format!("/api/v1/pools/{pool}/parked"),
            format!("/api/v1/jobs/{job_id}"),
            format!("/api/v1/events/{event_id}"),
        ] {
            let (status, body) = s.get(&gone).await;
            assert_error(backend, &gone, status, &body, StatusCode::NOT_FOUND);
        }
        let (_, events) = s.get(&format!("/api/v1/events?pool_id={pool}")).await;
        assert_eq!(events["items"], json!([]), "{backend:?}: {events}");
        let (_, jobs) = s.get(&format!("/api/v1/jobs?connection_id={conn}")).await;
        assert_eq!(jobs["items"], json!([]), "{backend:?}: {jobs}");
        // Feishu's next delivery to the old callback URL is refused.
        let sealed = envelope::seal(
            &s.emu.state().events.emitted()[mark].plaintext,
            Some(ENCRYPT_KEY),
            &(now_ms() / 1000).to_string(),
            "7",
        );
        let resp = s
            .http
            .post(&callback)
            .headers(sealed.headers())
            .body(sealed.body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{backend:?}");
        let (status, body) = delete(&s, &path).await;
        assert_error(backend, "twice", status, &body, StatusCode::NOT_FOUND);

        // The other pool is whole.
        let (_, pools) = s.get("/api/v1/pools").await;
        assert_eq!(pools["total"], 1, "{backend:?}: {pools}");
        assert_eq!(pools["items"][0]["id"], other.as_str());
        let (status, _) = s.get(&format!("/api/v1/connections/{other_conn}")).await;
        assert_eq!(status, StatusCode::OK, "{backend:?}");
        let (_, after) = s
            .get(&format!("/api/v1/pools/{other}/users?total=true"))
            .await;
        assert_eq!(after["total"], other_users["total"], "{backend:?}");
        let (_, other_jobs) = s
            .get(&format!("/api/v1/jobs?connection_id={other_conn}"))
            .await;
        assert_eq!(other_jobs["items"][0]["id"], other_job["id"], "{backend:?}");
    }
}

#[tokio::test]
async fn a_pool_is_not_deleted_while_a_sync_job_of_it_runs() {
    use emulator::faults::FaultConfig;
    for backend in Backend::all() {
        let s = Served::start(backend, tenant(20, 3, 1, 67)).await;
        let (pool, connection) = pool_and_connection(&s, None).await;
        let conn = connection["id"].as_str().unwrap().to_owned();
        // Each department listing takes 8 s: the import outlasts the deletion's wait for the
        // connection's lease (5 s).
        s.emu.state().faults.set_config(FaultConfig {
            latency_rate: 1.0,
            latency_min: Duration::from_secs(8),
            latency_max: Duration::from_secs(8),
            endpoints: vec!["contact/v3/users/find_by_department".into()],
            ..FaultConfig::none()
        });
        let (status, job) = s
            .post(
                &format!("/api/v1/connections/{conn}/jobs"),
                &json!({"kind": "import"}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{backend:?}: {job}");
        let job_id = job["id"].as_str().unwrap().to_owned();
        let path = format!("/api/v1/pools/{pool}?confirm={pool}");
        let (status, answer) = delete(&s, &path).await;
        assert_error(
            backend,
            "job running",
            status,
            &answer,
            StatusCode::CONFLICT,
        );
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("running sync job")
                && message.contains(&job_id)
                && message.contains("wait for it to finish"),
            "{backend:?}: {message}"
        );
        assert_eq!(
            s.get(&format!("/api/v1/pools/{pool}")).await.0,
            StatusCode::OK
        );
        s.emu.state().faults.set_config(FaultConfig::none());
        let finished = wait_for(
            &s,
            &format!("/api/v1/jobs/{job_id}"),
            "the import finished",
            |j| j["state"] == "finished",
        )
        .await;
        assert_eq!(finished["verdict"], "complete", "{backend:?}: {finished}");
        let (status, answer) = delete(&s, &path).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{backend:?}: {answer}");
        assert_eq!(
            s.get(&format!("/api/v1/pools/{pool}")).await.0,
            StatusCode::NOT_FOUND
        );
    }
}

#[tokio::test]
async fn departments_and_groups_carry_and_are_found_by_their_feishu_ids() {
    for backend in Backend::all() {
        let s = Served::start(backend, tenant(40, 5, 3, 68)).await;
        let (pool, connection) = pool_and_connection(&s, None).await;
        let conn = connection["id"].as_str().unwrap().to_owned();
        let job = run_job(&s, &conn, "import").await;
        assert_eq!(job["verdict"], "complete", "{backend:?}: {job}");

        let (open_department_id, department_id, name) = s.emu.with_tenant(|t| {
            let d = t.departments.values().last().unwrap();
            (
                d.open_department_id.clone(),
                d.department_id.clone(),
                d.name.clone(),
            )
        });
        let (status, by_open) = s
            .get(&format!(
                "/api/v1/pools/{pool}/departments/by/open_department_id/{open_department_id}"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{backend:?}: {by_open}");
        assert_eq!(by_open["name"], name.as_str(), "{by_open}");
        let id = by_open["id"].as_str().unwrap().to_owned();
        let (status, by_custom) = s
            .get(&format!(
                "/api/v1/pools/{pool}/departments/by/department_id/{department_id}"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{backend:?}: {by_custom}");
        assert_eq!(by_custom["id"], id.as_str());
        let (status, view) = s
            .get(&format!("/api/v1/pools/{pool}/departments/{id}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{view}");
        assert_eq!(
            view["external_ids"],
            json!([{
                "connection_id": conn,
                "kind": "department",
                "external_id": open_department_id,
                "union_id": null,
                "custom_id": department_id,
                "object_id": id,
            }]),
            "{backend:?}: {view}"
        );

        let (group_id, custom_group_id, group_name) = s.emu.with_tenant(|t| {
            let g = t.groups.values().next().unwrap();
            (g.id.clone(), g.group_id.clone(), g.name.clone())
        });
        let (status, group) = s
            .get(&format!(
                "/api/v1/pools/{pool}/groups/by/group_id/{group_id}"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{backend:?}: {group}");
        assert_eq!(group["name"], group_name.as_str(), "{group}");
        let gid = group["id"].as_str().unwrap().to_owned();
        let (status, by_custom) = s
            .get(&format!(
                "/api/v1/pools/{pool}/groups/by/custom_group_id/{custom_group_id}"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{backend:?}: {by_custom}");
        assert_eq!(by_custom["id"], gid.as_str());
        let (status, detail) = s.get(&format!("/api/v1/pools/{pool}/groups/{gid}")).await;
        assert_eq!(status, StatusCode::OK, "{detail}");
        let refs = detail["external_ids"].as_array().unwrap();
        assert_eq!(refs.len(), 1, "{backend:?}: {detail}");
        assert_eq!(refs[0]["connection_id"], conn.as_str());
        assert_eq!(refs[0]["external_id"], group_id.as_str());
        assert_eq!(refs[0]["custom_id"], custom_group_id.as_str());

        // A Feishu id of another kind finds nothing.
        let (status, body) = s
            .get(&format!(
                "/api/v1/pools/{pool}/departments/by/open_department_id/{group_id}"
            ))
            .await;
        assert_error(
            backend,
            "group id as department",
            status,
            &body,
            StatusCode::NOT_FOUND,
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("open_department_id"),
            "{body}"
        );
    }
}

/// An address nothing listens on: connecting is refused at once.
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

#[tokio::test]
async fn saving_a_connection_tests_its_credentials() {
    use emulator::faults::FaultConfig;
    for backend in Backend::all() {
        let s = Served::start(backend, tenant(10, 2, 1, 69)).await;
        let (_, pool) = s.post("/api/v1/pools", &json!({"name": "Checks"})).await;
        let create = format!("/api/v1/pools/{}/connections", pool["id"].as_str().unwrap());
        let body = |identifier: &str, base_url: &str, secret: &str| {
            json!({
                "identifier": identifier,
                "base_url": base_url,
                "app_id": APP_ID,
                "app_secret": secret,
            })
        };
        let emulator = s.emu.base_url();

        // The right secret: saved and checked.
        let (status, good) = s.post(&create, &body("good", &emulator, APP_SECRET)).await;
        assert_eq!(status, StatusCode::CREATED, "{backend:?}: {good}");
        assert_eq!(good["check"]["ok"], true, "{backend:?}: {good}");
        let steps = good["check"]["steps"].as_array().unwrap();
        assert_eq!(steps.len(), 2, "{good}");
        assert!(steps.iter().all(|step| step["ok"] == true), "{good}");

        // A wrong secret: saved all the same, and the check says what to fix.
        let (status, wrong) = s
            .post(&create, &body("wrong", &emulator, "not-the-app-secret"))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{backend:?}: {wrong}");
        let check = &wrong["check"];
        assert_eq!(check["ok"], false, "{backend:?}: {wrong}");
        assert_eq!(check["steps"][0]["step"], "credentials", "{wrong}");
        assert!(check["steps"][0]["code"].is_i64(), "{wrong}");
        let fix = check["steps"][0]["fix"].as_str().unwrap();
        assert!(fix.contains("App Secret"), "{backend:?}: {fix}");
        let wrong_id = wrong["id"].as_str().unwrap().to_owned();
        let wrong_path = format!("/api/v1/connections/{wrong_id}");
        let (status, read) = s.get(&wrong_path).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{backend:?}: the connection was saved"
        );
        assert!(read.get("check").is_none(), "reads carry no check: {read}");

        // Fixing the secret checks again; a rename does not reach Feishu.
        let (status, fixed) = s
            .send(
                Method::PATCH,
                &wrong_path,
                Some(&json!({"app_secret": APP_SECRET})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{backend:?}: {fixed}");
        assert_eq!(fixed["check"]["ok"], true, "{backend:?}: {fixed}");
        let (status, renamed) = s
            .send(
                Method::PATCH,
                &wrong_path,
                Some(&json!({"display_name": "Renamed"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{backend:?}: {renamed}");
        assert!(renamed.get("check").is_none(), "{renamed}");
        let (status, moved) = s
            .send(
                Method::PATCH,
                &wrong_path,
                Some(&json!({"base_url": closed_port_url()})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{backend:?}: {moved}");
        assert_eq!(moved["check"]["ok"], false, "{backend:?}: {moved}");

        // Feishu unreachable: saved at once, the check names the connection failure.
        let started = Instant::now();
        let (status, offline) = s
            .post(&create, &body("offline", &closed_port_url(), APP_SECRET))
            .await;
        let took = started.elapsed();
        assert_eq!(status, StatusCode::CREATED, "{backend:?}: {offline}");
        assert!(took < Duration::from_secs(4), "{backend:?}: took {took:?}");
        let step = &offline["check"]["steps"][0];
        assert_eq!(offline["check"]["ok"], false, "{offline}");
        assert!(
            step["message"].as_str().unwrap().contains("connect"),
            "{backend:?}: {offline}"
        );
        assert!(
            step["fix"].as_str().unwrap().contains("base URL"),
            "{backend:?}: {offline}"
        );

        // Feishu answering too slowly: the save waits for the check's bound, no longer.
        s.emu.state().faults.set_config(FaultConfig {
            latency_rate: 1.0,
            latency_min: Duration::from_secs(8),
            latency_max: Duration::from_secs(8),
            endpoints: vec!["auth/v3/tenant_access_token/internal".into()],
            ..FaultConfig::none()
        });
        let started = Instant::now();
        let (status, slow) = s.post(&create, &body("slow", &emulator, APP_SECRET)).await;
        let took = started.elapsed();
        s.emu.state().faults.set_config(FaultConfig::none());
        assert_eq!(status, StatusCode::CREATED, "{backend:?}: {slow}");
        assert!(
            took >= Duration::from_secs(4) && took < Duration::from_secs(7),
            "{backend:?}: took {took:?}"
        );
        let step = &slow["check"]["steps"][0];
        assert_eq!(step["step"], "credentials", "{slow}");
        assert!(
            step["message"]
                .as_str()
                .unwrap()
                .contains("did not answer within 5 s"),
            "{backend:?}: {slow}"
        );
        assert!(
            step["fix"]
                .as_str()
                .unwrap()
                .contains("test its credentials again")
        );
        let (_, list) = s.get(&create).await;
        assert_eq!(
            list["total"], 4,
            "{backend:?}: every connection was saved: {list}"
        );
    }
}

#[tokio::test]
async fn a_group_is_read_page_by_page_with_its_members_resolved() {
    use std::collections::BTreeSet;
    for backend in Backend::all() {
        let s = Served::start(backend, tenant(60, 6, 4, 71)).await;
        let (pool, connection) = pool_and_connection(&s, None).await;
        let conn = connection["id"].as_str().unwrap().to_owned();
        let job = run_job(&s, &conn, "import").await;
        assert_eq!(job["verdict"], "complete", "{backend:?}: {job}");
        let (status, groups) = s.get(&format!("/api/v1/pools/{pool}/groups")).await;
        assert_eq!(status, StatusCode::OK, "{groups}");
        let mut walked_any = false;
        for g in groups["items"].as_array().unwrap() {
            let gid = g["group"]["id"].as_str().unwrap();
            let (status, detail) = s.get(&format!("/api/v1/pools/{pool}/groups/{gid}")).await;
            assert_eq!(status, StatusCode::OK, "{detail}");
            let expected: BTreeSet<(String, String)> = detail["group"]["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| (m["type"].to_string(), m["id"].to_string()))
                .collect();
            let live_users: BTreeSet<String> = detail["users"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["id"].to_string())
                .collect();
            // Two at a time: every member once, in (type, id) order, users resolved as the
            // detail resolves them.
            let mut seen = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let path = match &after {
                    None => format!("/api/v1/pools/{pool}/groups/{gid}/members?limit=2"),
                    Some(a) => {
                        format!("/api/v1/pools/{pool}/groups/{gid}/members?limit=2&after={a}")
                    }
                };
                let (status, page) = s.get(&path).await;
                assert_eq!(status, StatusCode::OK, "{backend:?}: {page}");
                let items = page["items"].as_array().unwrap();
                assert!(items.len() <= 2, "{page}");
                for m in items {
                    let key = (m["type"].to_string(), m["id"].to_string());
                    if m["type"] == "user" {
                        assert_eq!(
                            m.get("user").is_some(),
                            live_users.contains(&key.1),
                            "{backend:?}: {m}"
                        );
                        if let Some(u) = m.get("user") {
                            assert_eq!(u["id"], m["id"], "{m}");
                        }
                    }
                    seen.push(key);
                }
                match page["next"].as_str() {
                    Some(next) => after = Some(next.to_owned()),
                    None => break,
                }
            }
            let mut sorted = seen.clone();
            sorted.sort();
            assert_eq!(seen, sorted, "{backend:?}: pages in (type, id) order");
            assert_eq!(
                seen.iter().cloned().collect::<BTreeSet<_>>(),
                expected,
                "{backend:?}: every member of {gid}"
            );
            assert_eq!(seen.len(), expected.len(), "{backend:?}: each member once");
            walked_any |= expected.len() > 2;
        }
        assert!(
            walked_any,
            "{backend:?}: no group needed more than one page"
        );

        // No such group: 404; a cursor of another list: 400.
        let (status, body) = s
            .get(&format!(
                "/api/v1/pools/{pool}/groups/{}/members",
                "0".repeat(24)
            ))
            .await;
        assert_error(
            backend,
            "unknown group",
            status,
            &body,
            StatusCode::NOT_FOUND,
        );
        let gid = groups["items"][0]["group"]["id"].as_str().unwrap();
        let (_, users) = s.get(&format!("/api/v1/pools/{pool}/users?limit=1")).await;
        let foreign = users["next"].as_str().unwrap();
        let (status, body) = s
            .get(&format!(
                "/api/v1/pools/{pool}/groups/{gid}/members?after={foreign}"
            ))
            .await;
        assert_error(
            backend,
            "cursor of the user list",
            status,
            &body,
            StatusCode::BAD_REQUEST,
        );
    }
}
