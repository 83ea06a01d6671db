//! The admin API: mutations over HTTP change the tenant, emit the events Feishu would send,
//! and those events reach a receiver that decodes them with orgsync's envelope code.

use std::time::Duration;

use emulator::generate::{GenerateConfig, generate};
use emulator::pusher::PushConfig;
use feishu::envelope::Envelope;
use feishu::events::{self, ContactEvent};
use serde_json::{Value, json};

use crate::pusher::receiver;
use crate::support::{APP, SECRET, client, full_app, start};

struct Admin {
    http: reqwest::Client,
    base: String,
}

impl Admin {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }
    async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::PATCH, path, Some(body)).await
    }
    async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }
    async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::DELETE, path, None).await
    }
}

fn fast_push() -> PushConfig {
    PushConfig {
        time_scale: 0.0001,
        ..PushConfig::default()
    }
}

#[tokio::test]
async fn admin_mutations_are_pushed_and_readable_through_the_api() {
    let rx = receiver(Some("admin-key"), 0, None).await;
    let tenant = generate(
        &GenerateConfig {
            users: 120,
            departments: 12,
            ..GenerateConfig::default()
        },
        vec![full_app()],
    );
    let emu = start(tenant, |c| c.push = fast_push()).await;
    let admin = Admin {
        http: reqwest::Client::new(),
        base: emu.base_url(),
    };
    // Point the app at the receiver with encryption on, as an admin would in the console.
    let (status, app) = admin
        .patch(
            &format!("/_emulator/apps/{APP}"),
            json!({"request_url": rx.target.url, "encrypt_key": "admin-key", "verification_token": "vt_push"}),
        )
        .await;
    assert_eq!(status, 200, "{app}");
    assert_eq!(app["url_check"]["passed"], true, "{app}");
    let (status, v) = admin
        .post(&format!("/_emulator/apps/{APP}/verify-url"), json!({}))
        .await;
    assert_eq!(status, 200, "{v}");

    let dept = emu.with_tenant(|t| t.children("0")[0].clone());
    let custom = emu.with_tenant(|t| t.departments[&dept].department_id.clone());

    // Hire into a department named by its custom id.
    let (status, v) = admin
        .post(
            "/_emulator/users",
            json!({"name": "新同事", "en_name": "New Hire", "departments": [custom], "email": "new.hire@example.com"}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["changes"][0]["kind"], "user_created");
    assert_eq!(v["events"], 1);
    let key = v["changes"][0]["id"].as_str().unwrap().to_owned();

    // Rename, freeze, resign; create and delete a department.
    assert_eq!(
        admin
            .patch(
                &format!("/_emulator/users/{key}"),
                json!({"name": "新名字"})
            )
            .await
            .0,
        200
    );
    assert_eq!(
        admin
            .post(&format!("/_emulator/users/{key}/freeze"), json!({}))
            .await
            .0,
        200
    );
    let (status, d) = admin
        .post(
            "/_emulator/departments",
            json!({"name": "临时部门", "en_name": "Temp", "parent": dept}),
        )
        .await;
    assert_eq!(status, 200, "{d}");
    let new_dept = d["changes"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        admin
            .patch(
                &format!("/_emulator/departments/{new_dept}"),
                json!({"name": "改名部门"})
            )
            .await
            .0,
        200
    );
    assert_eq!(
        admin
            .delete(&format!("/_emulator/departments/{new_dept}"))
            .await
            .0,
        200
    );
    assert_eq!(
        admin
            .post(&format!("/_emulator/users/{key}/resign"), json!({}))
            .await
            .0,
        200
    );

    assert!(
        emu.state()
            .events
            .pusher()
            .wait_idle(Duration::from_secs(10))
            .await
    );
    // Deliveries are independent (Feishu does not order contact events): compare as sets.
    let mut types: Vec<String> = rx
        .decoded()
        .iter()
        .map(|e| e.event_type().to_owned())
        .collect();
    types.sort();
    let mut expected = vec![
        "url_verification",
        "url_verification",
        events::USER_CREATED_V3,
        events::USER_UPDATED_V3,
        events::USER_UPDATED_V3,
        events::DEPARTMENT_CREATED_V3,
        events::DEPARTMENT_UPDATED_V3,
        events::DEPARTMENT_DELETED_V3,
        events::USER_DELETED_V3,
    ];
    expected.sort();
    assert_eq!(types, expected);
    // The pushed open_id is the one the API answers for.
    let decoded = rx.decoded();
    let Some(Envelope::V2(first)) = decoded
        .iter()
        .find(|e| e.event_type() == events::USER_CREATED_V3)
    else {
        panic!("2.0 expected")
    };
    let ContactEvent::UserCreated { object } = &first.event else {
        panic!("UserCreated expected")
    };
    assert_eq!(object.name.as_deref(), Some("新同事"));
    let open_id = object.open_id.clone().unwrap();
    let user = client(&emu, APP, SECRET).user(&open_id).await.unwrap();
    assert_eq!(user.name.as_deref(), Some("新名字"));
    assert_eq!(user.is_resigned(), Some(true));
    assert_eq!(user.department_ids, Some(vec![]));

    // The admin reads the tenant's view, by any id.
    let (status, u) = admin.get(&format!("/_emulator/users/{open_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(u["status"]["resigned"], true);
    let (_, events) = admin
        .get(&format!("/_emulator/events?app_id={APP}&limit=3"))
        .await;
    assert_eq!(events["items"][0]["event_type"], events::USER_DELETED_V3);
    let (_, push) = admin.get("/_emulator/push").await;
    assert_eq!(push["stats"]["delivered"], 7);
}

#[tokio::test]
async fn admin_errors_say_what_is_wrong() {
    let tenant = generate(&GenerateConfig::default(), vec![full_app()]);
    let emu = start(tenant, |_| {}).await;
    let admin = Admin {
        http: reqwest::Client::new(),
        base: emu.base_url(),
    };
    let (status, v) = admin
        .post("/_emulator/users/nobody/freeze", json!({}))
        .await;
    assert_eq!(status, 404);
    assert!(v["error"].as_str().unwrap().contains("nobody"), "{v}");

    // A department with members cannot be deleted, as on Feishu.
    let busy = emu.with_tenant(|t| {
        t.departments
            .keys()
            .find(|d| !t.members(d).is_empty())
            .cloned()
            .unwrap()
    });
    let (status, v) = admin
        .delete(&format!("/_emulator/departments/{busy}"))
        .await;
    assert_eq!(status, 409, "{v}");
    assert!(v["error"].is_string());

    let (status, _) = admin
        .post("/_emulator/users", json!({"no_such_field": 1}))
        .await;
    assert_eq!(status, 422);
    let (status, v) = admin
        .post(&format!("/_emulator/apps/{APP}/verify-url"), json!({}))
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("request_url"));
    let (status, _) = admin
        .post(
            "/_emulator/apps",
            json!({"app_id": "bad", "app_secret": "x"}),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn random_mutations_and_scope_changes_reach_the_receiver_as_known_events() {
    let rx = receiver(None, 0, None).await;
    let mut app = full_app();
    app.request_url = Some(rx.target.url.clone());
    app.verification_token = "vt_push".into();
    let tenant = generate(
        &GenerateConfig {
            users: 150,
            departments: 15,
            groups: 4,
            ..GenerateConfig::default()
        },
        vec![app],
    );
    let emu = start(tenant, |c| c.push = fast_push()).await;
    let admin = Admin {
        http: reqwest::Client::new(),
        base: emu.base_url(),
    };
    let (status, v) = admin
        .post(
            "/_emulator/mutations/random",
            json!({"count": 300, "seed": 9}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let emitted = v["events"].as_u64().unwrap();
    assert!(emitted > 100, "{v}");

    // Narrow the scope to one department: a scope event.
    let dept = emu.with_tenant(|t| t.children("0")[0].clone());
    let (status, v) = admin
        .put(
            &format!("/_emulator/apps/{APP}/scope"),
            json!({"departments": [dept]}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["events"], 1);

    assert!(
        emu.state()
            .events
            .pusher()
            .wait_idle(Duration::from_secs(20))
            .await
    );
    let decoded = rx.decoded();
    assert_eq!(decoded.len() as u64, emitted + 1);
    for env in &decoded {
        let Envelope::V2(v2) = env else {
            panic!("2.0 expected")
        };
        assert!(
            !matches!(v2.event, ContactEvent::Unrecognized { .. }),
            "{}: {:?}",
            v2.header.event_type,
            v2.event
        );
    }
    assert_eq!(
        decoded.last().unwrap().event_type(),
        events::SCOPE_UPDATED_V3
    );
    assert_eq!(
        emu.with_tenant(|t| t.invariant_violations()),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn ordinary_random_mutations_never_change_the_contact_scope() {
    let tenant = generate(
        &GenerateConfig {
            users: 150,
            departments: 15,
            groups: 4,
            ..GenerateConfig::default()
        },
        vec![full_app()],
    );
    let emu = start(tenant, |_| {}).await;
    let admin = Admin {
        http: reqwest::Client::new(),
        base: emu.base_url(),
    };
    let scope_events = || async {
        let (status, v) = admin.get("/_emulator/events?limit=10000").await;
        assert_eq!(status, 200, "{v}");
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["event_type"] == events::SCOPE_UPDATED_V3)
            .count()
    };
    let (_, before) = admin.get(&format!("/_emulator/apps/{APP}")).await;

    let (status, v) = admin
        .post(
            "/_emulator/mutations/random",
            json!({"count": 500, "seed": 9, "profile": "ordinary"}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert!(v["events"].as_u64().unwrap() > 300, "{v}");
    assert_eq!(scope_events().await, 0);
    let (_, after) = admin.get(&format!("/_emulator/apps/{APP}")).await;
    assert_eq!(
        after, before,
        "the app's scope and permissions are unchanged"
    );

    // The default profile still changes the scope now and then (the engine's tests rely on it).
    let (status, v) = admin
        .post(
            "/_emulator/mutations/random",
            json!({"count": 500, "seed": 9}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert!(scope_events().await > 0);

    let (status, v) = admin
        .post(
            "/_emulator/mutations/random",
            json!({"count": 1, "profile": "calm"}),
        )
        .await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(
        emu.with_tenant(|t| t.invariant_violations()),
        Vec::<String>::new()
    );
}
