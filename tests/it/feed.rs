//! The change feed and service credentials through the API (docs/change-feed.md,
//! docs/service-credentials.md): a scripted story of Feishu changes yields the same events
//! whether each change came as a Feishu event or was found by a reconciliation; a credential
//! reads its own pool only; a list's `as_of_cursor` hands over to the feed without a gap.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use emulator::mutate::{NewDepartment, NewUser, UserPatch};
use emulator::tenant::{I18n, Tenant};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::api::{deliver_over_http, pool_and_connection, run_job};
use crate::one_writer::normalized;
use crate::serve_support::Served;
use crate::support::*;

/// One orgsync with its pool, connection and a credential that reads the feed.
struct Follower {
    s: Served,
    pool: String,
    connection: String,
    callback: String,
    token: String,
    cursor: String,
    delivered: usize,
}

impl Follower {
    async fn start(backend: Backend, tenant: Tenant) -> Follower {
        let s = Served::start(backend, tenant).await;
        let (pool, connection) = pool_and_connection(&s, None).await;
        let connection_id = connection["id"].as_str().unwrap().to_owned();
        let callback = connection["callback_url"].as_str().unwrap().to_owned();
        let job = run_job(&s, &connection_id, "import").await;
        assert_eq!(job["verdict"], "complete", "{job}");
        let (status, created) = s
            .post(
                &format!("/api/v1/pools/{pool}/credentials"),
                &json!({"name": "follower", "scopes": ["events:read", "directory:read"]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let token = created["token"].as_str().unwrap().to_owned();
        let delivered = s.emu.state().events.emitted().len();
        Follower {
            s,
            pool,
            connection: connection_id,
            callback,
            token,
            cursor: String::new(),
            delivered,
        }
    }

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        let resp = self
            .s
            .http
            .get(self.s.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Every event after the cursor, read with the credential; moves the cursor on.
    async fn read_on(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let path = format!(
                "/api/v1/pools/{}/events?limit=3&after={}",
                self.pool, self.cursor
            );
            let (status, page) = self.get(&path, &self.token).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            out.extend(page["data"].as_array().unwrap().iter().cloned());
            self.cursor = page["next_cursor"].as_str().unwrap().to_owned();
            if page["has_more"] == false {
                return out;
            }
        }
    }

    /// Applies a change to the emulator, then brings it in by its events or by a
    /// reconciliation; returns the feed events it caused, normalized.
    async fn change(
        &mut self,
        by_events: bool,
        f: &dyn Fn(&mut Tenant) -> emulator::mutate::MutationResult,
    ) -> Vec<(String, Value)> {
        self.s.emu.state().mutate(f).unwrap();
        if by_events {
            let sent =
                deliver_over_http(&self.s, &self.callback, APP_ID, ENCRYPT_KEY, self.delivered)
                    .await;
            assert!(sent > 0, "the change sent no event");
            self.delivered = self.s.emu.state().events.emitted().len();
            let connection = directory::ids::ConnectionId(self.connection.clone());
            let deadline = Instant::now() + Duration::from_secs(30);
            while self.s.store.inbox_pending_count(&connection).await.unwrap() > 0 {
                assert!(Instant::now() < deadline, "events still pending");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        } else {
            let job = run_job(&self.s, &self.connection, "reconcile").await;
            assert_eq!(job["verdict"], "complete", "{job}");
            self.delivered = self.s.emu.state().events.emitted().len();
        }
        let events = self.read_on().await;
        let state = self
            .s
            .store
            .load_connection_state(&directory::ids::ConnectionId(self.connection.clone()))
            .await
            .unwrap();
        let mut ext: HashMap<String, String> = state
            .refs
            .iter()
            .map(|r| (r.object_id.clone(), r.external_id.clone()))
            .collect();
        ext.insert(self.connection.clone(), "the-connection".into());
        let base = self.s.emu.base_url();
        let mut out = Vec::new();
        for e in events {
            let kind = e["type"].as_str().unwrap().to_owned();
            if kind == "directory.sync_completed" {
                assert!(!by_events, "a sync_completed without a job: {e}");
                assert_eq!(e["data"]["initial"], false, "{e}");
                continue;
            }
            let expected_source = if by_events {
                "feishu_event"
            } else {
                "reconcile"
            };
            assert_eq!(e["source"]["kind"], expected_source, "{e}");
            assert!(e["id"].as_str().unwrap().starts_with("evt_"), "{e}");
            out.push((kind, normalized(&e["data"], &ext, &base)));
        }
        out
    }
}

/// The story's changes, each a function of the tenant so that both orgsyncs' emulators get
/// the same one.
type Mutation = Box<dyn Fn(&mut Tenant) -> emulator::mutate::MutationResult>;

/// What a step does, the event types it must yield, and the change.
fn story() -> Vec<(&'static str, Vec<&'static str>, Mutation)> {
    fn department(t: &Tenant, name: &str) -> String {
        t.departments
            .values()
            .find(|d| d.name == name)
            .map(|d| d.open_department_id.clone())
            .unwrap_or_else(|| panic!("no department {name}"))
    }
    fn hired(t: &Tenant) -> emulator::tenant::UserKey {
        t.users
            .values()
            .find(|u| u.email.as_deref() == Some("story@example.com"))
            .map(|u| u.key)
            .expect("the hired user")
    }
    vec![
        (
            "create a department",
            vec!["department.created"],
            Box::new(|t: &mut Tenant| {
                t.create_department(NewDepartment {
                    name: "Story".into(),
                    i18n_name: I18n::default(),
                    parent: "0".into(),
                    department_id: Some("STORY-1".into()),
                    order: None,
                    create_chat: false,
                })
            }),
        ),
        (
            "rename it",
            vec!["department.updated"],
            Box::new(|t: &mut Tenant| {
                let id = department(t, "Story");
                t.rename_department(&id, "Story Team", I18n::default())
            }),
        ),
        (
            "move it",
            vec!["department.moved"],
            Box::new(|t: &mut Tenant| {
                let id = department(t, "Story Team");
                let target = t
                    .departments
                    .values()
                    .find(|d| d.open_department_id != id && d.parent == "0")
                    .map(|d| d.open_department_id.clone())
                    .unwrap();
                t.move_department(&id, &target)
            }),
        ),
        (
            "a user joins two departments",
            vec![
                "user.created",
                "department.member_added",
                "department.member_added",
            ],
            Box::new(|t: &mut Tenant| {
                let story = department(t, "Story Team");
                let other = t
                    .departments
                    .values()
                    .find(|d| d.open_department_id != story)
                    .map(|d| d.open_department_id.clone())
                    .unwrap();
                t.hire(NewUser {
                    name: Some("Story Person".into()),
                    email: Some("story@example.com".into()),
                    user_id: Some("story-1".into()),
                    departments: vec![story, other],
                    ..NewUser::default()
                })
            }),
        ),
        (
            "leaves one of them (its other one becomes primary)",
            vec!["user.updated", "department.member_removed"],
            Box::new(|t: &mut Tenant| {
                let key = hired(t);
                let kept = t.users[&key].memberships[1].department.clone();
                t.move_user(key, &[kept])
            }),
        ),
        (
            "is frozen",
            vec!["user.disabled"],
            Box::new(|t: &mut Tenant| {
                let key = hired(t);
                t.freeze(key)
            }),
        ),
        (
            "a group gets a department member",
            vec!["group.member_added"],
            Box::new(|t: &mut Tenant| {
                let group = t.groups.keys().next().cloned().unwrap();
                let story = department(t, "Story Team");
                t.add_group_members(&group, &[], &[story])
            }),
        ),
        (
            "an identifier changes",
            vec!["user.updated"],
            Box::new(|t: &mut Tenant| {
                let key = hired(t);
                let patch = UserPatch {
                    user_id: Some("story-renamed".into()),
                    ..UserPatch::default()
                };
                t.update_user(key, &patch)
            }),
        ),
        (
            "resigns",
            vec!["user.updated", "department.member_removed"],
            Box::new(|t: &mut Tenant| {
                let key = hired(t);
                t.resign(key)
            }),
        ),
    ]
}

#[tokio::test]
async fn a_story_of_changes_reads_the_same_by_events_and_by_reconciliation() {
    for backend in Backend::all() {
        // The same generated organisation twice.
        let mut by_events = Follower::start(backend, tenant(30, 5, 2, 91)).await;
        let mut by_jobs = Follower::start(backend, tenant(30, 5, 2, 91)).await;
        for f in [&mut by_events, &mut by_jobs] {
            // The first import is quiet: one event that says so.
            let first = f.read_on().await;
            assert_eq!(first.len(), 1, "{backend:?}: {first:?}");
            assert_eq!(first[0]["type"], "directory.sync_completed");
            assert_eq!(first[0]["seq"], 1);
            assert_eq!(first[0]["data"]["initial"], true);
            assert_eq!(first[0]["data"]["verdict"], "complete");
            assert_eq!(first[0]["source"]["kind"], "import");
        }
        // Each also pushes its feed to a webhook receiver.
        let mut receivers = Vec::new();
        for f in [&by_events, &by_jobs] {
            let receiver = crate::receiver::Receiver::start(&[]).await;
            let (status, created) =
                f.s.post(
                    &format!("/api/v1/pools/{}/webhooks", f.pool),
                    &json!({"url": receiver.url()}),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{created}");
            receivers.push(receiver);
        }
        for (what, expected, change) in story() {
            let got_event = by_events.change(true, change.as_ref()).await;
            let got_job = by_jobs.change(false, change.as_ref()).await;
            let types: Vec<&str> = got_event.iter().map(|(t, _)| t.as_str()).collect();
            assert_eq!(types, expected, "{backend:?} {what}: {got_event:#?}");
            assert_eq!(
                got_event, got_job,
                "{backend:?} {what}: by event (left) and by reconciliation (right) differ"
            );
        }
        // The receivers got the same bodies as the API, in the same order.
        for (f, receiver) in [&by_events, &by_jobs].into_iter().zip(&receivers) {
            let (_, page) =
                f.s.get(&format!("/api/v1/pools/{}/events?limit=500", f.pool))
                    .await;
            let from_api: Vec<Value> = page["data"].as_array().unwrap()[1..].to_vec();
            let got = receiver
                .wait_for("the story", |r| r.len() >= from_api.len())
                .await;
            let bodies: Vec<Value> = got.iter().map(|r| r.json()).collect();
            assert_eq!(bodies, from_api, "{backend:?}");
        }
    }
}

#[tokio::test]
async fn a_credential_reads_its_own_pool_with_its_scopes_until_revoked() {
    for backend in Backend::all() {
        let f = Follower::start(backend, tenant(20, 3, 1, 92)).await;
        let s = &f.s;
        let pool = &f.pool;
        // A second pool, and a credential of it with the directory only.
        let (status, other) = s.post("/api/v1/pools", &json!({"name": "Other"})).await;
        assert_eq!(status, StatusCode::CREATED);
        let other = other["id"].as_str().unwrap().to_owned();
        let (status, created) = s
            .post(
                &format!("/api/v1/pools/{other}/credentials"),
                &json!({"name": "reader", "scopes": ["directory:read"], "expires_in_days": 30}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let reader = created["token"].as_str().unwrap().to_owned();
        assert!(created["credential"]["expires_at"].is_i64(), "{created}");

        // Its own pool's directory: yes; the feed: no scope; another pool: 403.
        let (status, _) = f
            .get(&format!("/api/v1/pools/{other}/users"), &reader)
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, err) = f
            .get(&format!("/api/v1/pools/{other}/events"), &reader)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{err}");
        assert!(
            err["error"]["message"]
                .as_str()
                .unwrap()
                .contains("events:read"),
            "{err}"
        );
        for path in [
            format!("/api/v1/pools/{pool}/users"),
            format!("/api/v1/pools/{pool}/departments"),
            format!("/api/v1/pools/{pool}/groups"),
            format!("/api/v1/pools/{pool}"),
        ] {
            let (status, err) = f.get(&path, &reader).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{backend:?} {path}: {err}");
            assert_eq!(err["error"]["code"], "forbidden");
        }
        // Administration needs the admin token.
        for path in [
            "/api/v1/pools".to_owned(),
            format!("/api/v1/pools/{other}/connections"),
            format!("/api/v1/pools/{other}/credentials"),
            "/api/v1/jobs".to_owned(),
        ] {
            let (status, err) = f.get(&path, &reader).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{backend:?} {path}: {err}");
        }
        // The credential's own pool, through the follower's token: every read route.
        let (_, users) = f
            .get(&format!("/api/v1/pools/{pool}/users?limit=2"), &f.token)
            .await;
        let user = users["items"][0]["id"].as_str().unwrap();
        for path in [
            format!("/api/v1/pools/{pool}/users/{user}"),
            format!("/api/v1/pools/{pool}/departments"),
            format!("/api/v1/pools/{pool}/groups"),
            format!("/api/v1/pools/{pool}/parked"),
            format!("/api/v1/pools/{pool}/events"),
        ] {
            let (status, body) = f.get(&path, &f.token).await;
            assert_eq!(status, StatusCode::OK, "{backend:?} {path}: {body}");
        }

        // Listed without its secret; the secret is in no later answer.
        let (_, listed) = s.get(&format!("/api/v1/pools/{other}/credentials")).await;
        assert_eq!(listed[0]["name"], "reader", "{listed}");
        assert!(listed[0]["last_used_at"].is_i64(), "used above: {listed}");
        // The secret is base64url and may itself hold a '_': split as the server does.
        let (_, secret) = directory::credentials::parse_token(&reader).unwrap();
        assert!(!listed.to_string().contains(secret));

        // Revoked: 401 at once.
        let id = created["credential"]["id"].as_str().unwrap();
        let (status, revoked) = s
            .post(
                &format!("/api/v1/pools/{other}/credentials/{id}/revoke"),
                &json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{revoked}");
        assert!(revoked["revoked_at"].is_i64());
        let (status, err) = f
            .get(&format!("/api/v1/pools/{other}/users"), &reader)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{err}");
        assert!(
            err["error"]["message"]
                .as_str()
                .unwrap()
                .contains("revoked"),
            "{err}"
        );
        // A wrong secret of a real id is not valid either.
        let forged = format!("{}x", &f.token[..f.token.len() - 1]);
        let (status, _) = f.get(&format!("/api/v1/pools/{pool}/users"), &forged).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);

        // Expired: 401 with why. Stored with its expiry already past, as a 30-day
        // credential is a month later.
        let (id, token, hash) = directory::credentials::generate(s.engine.master_key());
        let now = directory::ids::now_ms();
        s.store
            .create_credential(&directory::store::StoredCredential {
                credential: directory::credentials::ServiceCredential {
                    id,
                    pool_id: directory::ids::PoolId(other.clone()),
                    name: "lapsed".into(),
                    scopes: vec![directory::credentials::Scope::DirectoryRead],
                    created_at: now - 31 * 86_400_000,
                    expires_at: Some(now - 86_400_000),
                    last_used_at: None,
                    revoked_at: None,
                },
                secret_hash: hash,
            })
            .await
            .unwrap();
        let (status, err) = f.get(&format!("/api/v1/pools/{other}/users"), &token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{err}");
        assert!(
            err["error"]["message"]
                .as_str()
                .unwrap()
                .contains("expired"),
            "{err}"
        );

        // Bad input says what to fix.
        let (status, err) = s
            .post(
                &format!("/api/v1/pools/{other}/credentials"),
                &json!({"name": "x", "scopes": ["everything"]}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
        assert!(
            err["error"]["message"]
                .as_str()
                .unwrap()
                .contains("directory:read"),
            "{err}"
        );
        let (status, _) = s
            .post(
                &format!("/api/v1/pools/{other}/credentials"),
                &json!({"name": "reader", "scopes": ["directory:read"]}),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "the revoked one's name is free again"
        );
    }
}

#[tokio::test]
async fn a_list_hands_over_to_the_feed_and_old_cursors_expire() {
    for backend in Backend::all() {
        let mut f = Follower::start(backend, tenant(20, 3, 1, 93)).await;
        let pool = f.pool.clone();
        f.read_on().await;
        // The list's cursor, read before the page: a change after it is in the feed.
        let (status, page) = f
            .get(&format!("/api/v1/pools/{pool}/users?limit=500"), &f.token)
            .await;
        assert_eq!(status, StatusCode::OK);
        let as_of = page["as_of_cursor"].as_str().unwrap().to_owned();
        assert_eq!(as_of, f.cursor, "{backend:?}: nothing happened since");
        let changes = f
            .change(true, &|t: &mut Tenant| {
                let key = t.users.values().find(|u| !u.status.resigned).unwrap().key;
                let patch = UserPatch {
                    job_title: Some("Handover".into()),
                    ..UserPatch::default()
                };
                t.update_user(key, &patch)
            })
            .await;
        assert_eq!(changes.len(), 1, "{changes:?}");
        let (_, after) = f
            .get(
                &format!("/api/v1/pools/{pool}/events?after={as_of}"),
                &f.token,
            )
            .await;
        assert_eq!(after["data"].as_array().unwrap().len(), 1, "{after}");
        assert_eq!(
            after["data"][0]["data"]["previous_attributes"]["profile"]
                .as_object()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["job_title"]
        );

        // A filtered read, and a long poll that returns when an event arrives.
        let (_, none) = f
            .get(
                &format!("/api/v1/pools/{pool}/events?after={as_of}&types=group.*"),
                &f.token,
            )
            .await;
        assert_eq!(none["data"], json!([]), "{none}");
        assert_eq!(none["next_cursor"], after["next_cursor"]);
        let waiting = {
            let url = f.s.url(&format!(
                "/api/v1/pools/{pool}/events?after={}&wait=20",
                after["next_cursor"].as_str().unwrap()
            ));
            let http = f.s.http.clone();
            let token = f.token.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let body: Value = http
                    .get(url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                (body, started.elapsed())
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        f.change(true, &|t: &mut Tenant| {
            let key = t.users.values().find(|u| !u.status.resigned).unwrap().key;
            let patch = UserPatch {
                job_title: Some("Awaited".into()),
                ..UserPatch::default()
            };
            t.update_user(key, &patch)
        })
        .await;
        let (body, waited) = waiting.await.unwrap();
        assert_eq!(body["data"].as_array().unwrap().len(), 1, "{body}");
        assert!(waited < Duration::from_secs(10), "{waited:?}");

        // Bad reads say what to fix.
        for (query, code) in [
            ("after=nonsense", "invalid_request"),
            ("limit=501", "invalid_request"),
            ("wait=31", "invalid_request"),
            ("types=user.*,nope", "invalid_request"),
        ] {
            let (status, err) = f
                .get(&format!("/api/v1/pools/{pool}/events?{query}"), &f.token)
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {err}");
            assert_eq!(err["error"]["code"], code);
        }

        // Retention: everything older than now goes; a cursor before it gets 410.
        let removed = directory::schedule::prune_feeds(
            &f.s.engine,
            directory::ids::now_ms() + 31 * 86_400_000,
        )
        .await
        .unwrap();
        assert!(removed >= 3, "{removed}");
        let (status, err) = f
            .get(
                &format!("/api/v1/pools/{pool}/events?after={as_of}"),
                &f.token,
            )
            .await;
        assert_eq!(status, StatusCode::GONE, "{backend:?}: {err}");
        assert_eq!(err["error"]["code"], "cursor_expired");
        // Without a cursor: from the oldest retained event (none now), with a cursor that
        // follows on.
        let (status, fresh) = f
            .get(&format!("/api/v1/pools/{pool}/events"), &f.token)
            .await;
        assert_eq!(status, StatusCode::OK, "{fresh}");
        assert_eq!(fresh["data"], json!([]));
        assert_eq!(fresh["next_cursor"], body["next_cursor"]);
    }
}

/// A consumer lists the users page by page while changes land between its pages, then
/// follows the feed from the first page's `as_of_cursor`, skipping an event only when its
/// object's version is older than what it holds: it ends with what the store holds.
#[tokio::test]
async fn a_listing_and_the_feed_after_it_converge_while_changes_land() {
    for backend in Backend::all() {
        let mut f = Follower::start(backend, tenant(40, 5, 1, 94)).await;
        f.read_on().await;
        let pool = f.pool.clone();
        let mut held: HashMap<String, Value> = HashMap::new();
        let mut after = String::new();
        let mut as_of = None;
        let mut n = 0;
        loop {
            let (status, page) = f
                .get(
                    &format!("/api/v1/pools/{pool}/users?limit=7&after={after}"),
                    &f.token,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{page}");
            as_of.get_or_insert_with(|| page["as_of_cursor"].as_str().unwrap().to_owned());
            for u in page["items"].as_array().unwrap() {
                held.insert(u["id"].as_str().unwrap().to_owned(), u.clone());
            }
            // Between pages: a title, a freeze or a move, by Feishu's events.
            n += 1;
            f.change(true, &move |t: &mut Tenant| {
                let live: Vec<_> = t
                    .users
                    .values()
                    .filter(|u| !u.status.resigned)
                    .map(|u| u.key)
                    .collect();
                let key = live[(n * 7) % live.len()];
                match n % 3 {
                    0 => t.update_user(
                        key,
                        &UserPatch {
                            job_title: Some(format!("Title {n}")),
                            ..UserPatch::default()
                        },
                    ),
                    1 if !t.users[&key].status.frozen => t.freeze(key),
                    _ => {
                        let other = t
                            .departments
                            .keys()
                            .find(|d| {
                                !t.users[&key]
                                    .memberships
                                    .iter()
                                    .any(|m| &m.department == *d)
                            })
                            .cloned()
                            .unwrap();
                        t.move_user(key, &[other])
                    }
                }
            })
            .await;
            match page["next"].as_str() {
                Some(next) => after = next.to_owned(),
                None => break,
            }
        }
        // Follow the feed from the first page's cursor.
        f.cursor = as_of.unwrap();
        let version = |u: &Value| u["version"].as_i64().unwrap();
        let followed = f.read_on().await;
        let listed = held.clone();
        for e in followed.clone() {
            let data = &e["data"];
            match e["type"].as_str().unwrap() {
                t if t.starts_with("user.") => {
                    let object = &data["object"];
                    let id = object["id"].as_str().unwrap().to_owned();
                    // Events of one change share its version: skip only older ones.
                    if held.get(&id).is_none_or(|h| version(object) >= version(h)) {
                        let mut object = object.clone();
                        object.as_object_mut().unwrap().remove("external_ids");
                        held.insert(id, object);
                    }
                }
                "department.member_added" | "department.member_removed" => {
                    let id = data["user_id"].as_str().unwrap();
                    let h = held.get_mut(id).unwrap();
                    if data["version"].as_i64().unwrap() >= version(h) {
                        let dept = data["department_id"].clone();
                        let list = h["departments"].as_array_mut().unwrap();
                        list.retain(|m| m["department_id"] != dept);
                        if e["type"] == "department.member_added" {
                            list.push(json!({"department_id": dept, "primary": data["primary"]}));
                        }
                        h["version"] = data["version"].clone();
                    }
                }
                _ => {}
            }
        }
        // What the store holds now.
        let (_, now) = f
            .get(&format!("/api/v1/pools/{pool}/users?limit=500"), &f.token)
            .await;
        let comparable = |u: &Value| {
            let mut depts: Vec<String> = u["departments"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["department_id"].as_str().unwrap().to_owned())
                .collect();
            depts.sort();
            json!({"profile": u["profile"], "status": u["status"], "version": u["version"], "departments": depts})
        };
        let stored: HashMap<String, Value> = now["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| (u["id"].as_str().unwrap().to_owned(), comparable(u)))
            .collect();
        let mine: HashMap<String, Value> = held
            .iter()
            .map(|(k, v)| (k.clone(), comparable(v)))
            .collect();
        assert!(n >= 5, "{n} pages");
        let differ: Vec<_> = stored
            .iter()
            .filter(|(id, v)| mine.get(*id) != Some(v))
            .map(|(id, v)| (id, v, mine.get(id)))
            .collect();
        if let Some((id, _, _)) = differ.first() {
            let about: Vec<_> = followed
                .iter()
                .filter(|e| e.to_string().contains(id.as_str()))
                .map(|e| {
                    (
                        e["seq"].clone(),
                        e["type"].clone(),
                        e["data"]["object"]["version"].clone(),
                        e["data"]["version"].clone(),
                        e["data"]["object"]["departments"].clone(),
                        e["data"]["department_id"].clone(),
                    )
                })
                .collect();
            let l = &listed[id.as_str()];
            panic!(
                "{backend:?}: {id}: listed v{} {}; events {about:?}",
                l["version"], l["departments"]
            );
        }
        assert_eq!(mine.len(), stored.len(), "{backend:?}");
    }
}

/// Everything logged while the closure's requests run, at every level.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Neither a credential's token nor a webhook's secret is logged, whatever is done with
/// them: creation, use, a wrong secret, revocation, deliveries.
#[tokio::test]
async fn secrets_appear_in_no_log_line() {
    let captured = Captured::default();
    let writer = captured.clone();
    // nextest runs each test in its own process: this is the only subscriber.
    tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();
    let f = Follower::start(Backend::Sqlite, tenant(10, 2, 1, 95)).await;
    let pool = &f.pool;
    let (_, users) = f
        .get(&format!("/api/v1/pools/{pool}/users"), &f.token)
        .await;
    assert!(users["items"].is_array());
    let forged = format!("{}x", &f.token[..f.token.len() - 1]);
    let (status, _) = f.get(&format!("/api/v1/pools/{pool}/users"), &forged).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let receiver = crate::receiver::Receiver::start(&[500]).await;
    let (status, created) =
        f.s.post(
            &format!("/api/v1/pools/{pool}/webhooks"),
            &json!({"url": receiver.url()}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let secret = created["secret"].as_str().unwrap().to_owned();
    let id = created["endpoint"]["id"].as_str().unwrap();
    let (status, _) =
        f.s.post(
            &format!("/api/v1/pools/{pool}/webhooks/{id}/test"),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, listed) = f.s.get(&format!("/api/v1/pools/{pool}/credentials")).await;
    let credential = listed[0]["id"].as_str().unwrap();
    f.s.post(
        &format!("/api/v1/pools/{pool}/credentials/{credential}/revoke"),
        &json!({}),
    )
    .await;
    let (status, _) = f
        .get(&format!("/api/v1/pools/{pool}/users"), &f.token)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // The capture works: what was done is there, by id and name.
    assert!(logs.contains("service credential created"), "{logs}");
    assert!(logs.contains("service credential revoked"), "{logs}");
    assert!(logs.contains("webhook endpoint created"), "{logs}");
    let (_, token_secret) = directory::credentials::parse_token(&f.token).unwrap();
    let webhook_key = secret.trim_start_matches("whsec_");
    for (what, needle) in [
        ("a credential's secret", token_secret),
        ("a webhook secret", webhook_key),
    ] {
        assert!(!logs.contains(needle), "{what} was logged");
    }
}
