//! The HTTP surface: envelope, headers, 404s, error bodies, and per-endpoint behaviours
//! (deleted departments, leavers, frozen users, group members, batches).

use std::collections::BTreeSet;

use emulator::config::{DeletedDepartmentRead, ResignedDepartmentIds};
use emulator::tenant::AppRecord;
use feishu::client::FeishuError;
use feishu::ids::{MemberIdType, MemberType};
use futures::TryStreamExt;
use serde_json::json;

use crate::support::{APP, Raw, SECRET, build_tenant, client, full_app, start};

const C: &str = "/open-apis/contact/v3";

#[tokio::test]
async fn envelope_headers_log_ids_and_plain_404() {
    let (tenant, _) = build_tenant(40, 10, vec![full_app()]);
    let emu = start(tenant, |_| {}).await;
    let raw = Raw::new(&emu);
    let token = raw.token(APP, SECRET).await;

    let ok = raw.get(Some(&token), &format!("{C}/departments/0")).await;
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(
        (ok.json["code"].clone(), ok.json["msg"].clone()),
        (json!(0), json!("success"))
    );
    assert_eq!(ok.data()["department"]["open_department_id"], "0");
    assert_eq!(ok.data()["department"]["name"], "Emulated Tenant");
    let log_id = ok.header("x-tt-logid").unwrap().to_owned();
    assert_eq!(log_id.len(), 34);
    assert!(log_id.starts_with("20") && log_id.chars().all(|c| c.is_ascii_alphanumeric()));

    let err = raw.get(Some(&token), &format!("{C}/users/ou_nobody")).await;
    assert_eq!((err.status, err.code()), (400, 41012));
    assert_eq!(
        err.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    let err_log_id = err.header("x-tt-logid").unwrap();
    assert_ne!(err_log_id, log_id, "unique per request");
    assert_eq!(err.json["error"]["log_id"], err_log_id);

    // Token answers carry the headers too.
    let t = raw.token_response(APP, SECRET).await;
    assert_eq!(
        t.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert!(t.header("x-tt-logid").is_some());

    for path in [
        "/open-apis/contact/v3/nothing",
        "/",
        "/open-apis/contact/v1/scope/get",
    ] {
        let r = raw.get(Some(&token), path).await;
        assert_eq!(r.status, 404, "{path}");
        assert!(r.header("content-type").unwrap().starts_with("text/plain"));
        assert_eq!(r.text, "404 page not found");
    }
    // Wrong method on a known path: the same plain 404.
    let r = raw.post(&format!("{C}/scopes"), "{}").await;
    assert_eq!((r.status, r.text.as_str()), (404, "404 page not found"));

    // The client reports a plain 404 (wrong base URL) as a decode error with a hint.
    let mut config = crate::support::client_config(&emu, APP, SECRET);
    config.base_url = feishu::client::BaseUrl::parse(&format!("{}/wrong", emu.base_url())).unwrap();
    let err = feishu::client::FeishuClient::new(config)
        .unwrap()
        .check_credentials()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            FeishuError::Decode {
                http_status: 404,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn deleted_departments_leavers_and_frozen_users() {
    let (tenant, marks) = build_tenant(200, 20, vec![full_app()]);
    let emu = start(tenant, |_| {}).await;
    let client = client(&emu, APP, SECRET);

    // Deleted department: 40015 by default, or rendered with is_deleted (§9 point 7).
    let err = client.department(&marks.deleted).await.unwrap_err();
    assert_eq!(err.code(), Some(40015));
    emu.state()
        .update_behaviour(|b| b.deleted_department_read = DeletedDepartmentRead::Render);
    let d = client.department(&marks.deleted).await.unwrap();
    assert!(d.is_deleted());
    assert_eq!(d.name.as_deref(), Some("Department 9999"));
    // Batch always drops it.
    assert!(
        client
            .departments_batch(&[&marks.deleted])
            .await
            .unwrap()
            .is_empty()
    );

    // A leaver: in no listing, readable by id with is_resigned and empty department_ids.
    let (leaver, frozen) = emu.with_tenant(|t| {
        let app = &t.apps[APP];
        (app.open_id(marks.resigned), app.open_id(marks.frozen))
    });
    let u = client.user(&leaver).await.unwrap();
    assert_eq!(u.is_resigned(), Some(true));
    assert_eq!(u.department_ids, Some(vec![]));
    emu.state()
        .update_behaviour(|b| b.resigned_department_ids = ResignedDepartmentIds::Absent);
    assert_eq!(client.user(&leaver).await.unwrap().department_ids, None);

    // A frozen user is listed with the flag.
    let frozen_dept = emu.with_tenant(|t| t.users[&marks.frozen].memberships[0].department.clone());
    let listed: Vec<_> = client
        .users_by_department(&frozen_dept)
        .try_collect()
        .await
        .unwrap();
    let f = listed
        .iter()
        .find(|u| u.open_id.as_deref() == Some(&frozen))
        .unwrap();
    assert_eq!(f.is_frozen(), Some(true));
    assert_eq!(f.is_frozen, Some(true));
    // So is a user who has not joined yet (§9 point 2).
    let (unjoined, unjoined_dept) = emu.with_tenant(|t| {
        let u = &t.users[&marks.unjoined];
        (
            t.apps[APP].open_id(u.key),
            u.memberships[0].department.clone(),
        )
    });
    let listed: Vec<_> = client
        .users_by_department(&unjoined_dept)
        .try_collect()
        .await
        .unwrap();
    let u = listed
        .iter()
        .find(|u| u.open_id.as_deref() == Some(&unjoined))
        .unwrap();
    let status = u.status.clone().unwrap();
    assert_eq!(
        (status.is_unjoin, status.is_activated),
        (Some(true), Some(false))
    );
    emu.state()
        .update_behaviour(|b| b.list_inactive_users = false);
    let listed: Vec<_> = client
        .users_by_department(&frozen_dept)
        .try_collect()
        .await
        .unwrap();
    assert!(listed.iter().all(|u| u.open_id.as_deref() != Some(&frozen)));

    // users/batch_get_id skips leavers unless include_resigned.
    let raw = Raw::new(&emu);
    let token = client.tenant_token().await.unwrap();
    let email = format!("user{}@example.com", marks.resigned);
    let lookup = |include: bool| {
        let body = json!({"emails": [email.clone()], "include_resigned": include}).to_string();
        let http = reqwest::Client::new();
        let url = format!(
            "{}{C}/users/batch_get_id?user_id_type=open_id",
            emu.base_url()
        );
        let token = token.clone();
        async move {
            let r = http
                .post(url)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            r.json::<serde_json::Value>().await.unwrap()
        }
    };
    let skipped = lookup(false).await;
    assert_eq!(skipped["data"]["user_list"][0]["email"], email.as_str());
    assert!(skipped["data"]["user_list"][0].get("user_id").is_none());
    let included = lookup(true).await;
    assert_eq!(included["data"]["user_list"][0]["user_id"], leaver.as_str());
    assert_eq!(
        included["data"]["user_list"][0]["status"]["is_resigned"],
        true
    );
    drop(raw);
}

#[tokio::test]
async fn group_member_defaults_and_errors() {
    let (tenant, _) = build_tenant(120, 15, vec![full_app()]);
    let emu = start(tenant, |_| {}).await;
    let raw = Raw::new(&emu);
    let token = raw.token(APP, SECRET).await;
    let (gid, open_ids, od_ids, custom_ids) = emu.with_tenant(|t| {
        let app = &t.apps[APP];
        let g = t.groups.values().next().unwrap();
        (
            g.id.clone(),
            g.users.iter().map(|k| app.open_id(*k)).collect::<Vec<_>>(),
            g.departments.clone(),
            g.departments
                .iter()
                .map(|d| t.departments[d].department_id.clone())
                .collect::<Vec<_>>(),
        )
    });
    // No parameters: users, as open_ids.
    let r = raw
        .get(Some(&token), &format!("{C}/group/{gid}/member/simplelist"))
        .await;
    assert_eq!(r.code(), 0, "{}", r.text);
    let ids: Vec<&str> = r.data()["memberlist"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(m["member_type"], "user");
            m["member_id"].as_str().unwrap()
        })
        .collect();
    assert_eq!(ids, open_ids);
    let bad = raw
        .get(
            Some(&token),
            &format!("{C}/group/{gid}/member/simplelist?member_type=robot"),
        )
        .await;
    assert_eq!((bad.status, bad.code()), (400, 41074));
    let unknown = raw
        .get(Some(&token), &format!("{C}/group/g_nope/member/simplelist"))
        .await;
    assert_eq!(unknown.code(), 42002);
    assert_eq!(
        raw.get(Some(&token), &format!("{C}/group/g_nope"))
            .await
            .code(),
        42002
    );

    // Department members: od- ids for open_id, custom ids for department_id.
    let client = client(&emu, APP, SECRET);
    let members = |t| {
        client
            .group_members(&gid, MemberType::Department, t)
            .map_ok(|m| m.member_id.unwrap())
            .try_collect::<Vec<_>>()
    };
    assert_eq!(members(MemberIdType::OpenId).await.unwrap(), od_ids);
    assert_eq!(
        members(MemberIdType::DepartmentId).await.unwrap(),
        custom_ids
    );
    let g = client.group(&gid).await.unwrap();
    assert_eq!(g.member_user_count, Some(open_ids.len() as i64));
}

#[tokio::test]
async fn batches_take_1_to_50_ids_and_drop_the_unknown() {
    let (tenant, marks) = build_tenant(120, 15, vec![full_app()]);
    let emu = start(tenant, |_| {}).await;
    let client = client(&emu, APP, SECRET);
    let known: Vec<String> = emu.with_tenant(|t| {
        t.users
            .keys()
            .take(3)
            .map(|k| t.apps[APP].open_id(*k))
            .collect()
    });
    let mut ids = known.clone();
    ids.push("ou_00000000000000000000000000000000".into());
    let users = client.users_batch(&ids).await.unwrap();
    let got: BTreeSet<_> = users.iter().map(|u| u.open_id.clone().unwrap()).collect();
    assert_eq!(got, known.into_iter().collect());

    let depts = client
        .departments_batch(&[marks.top[0].clone(), "od-nope".into(), marks.top[1].clone()])
        .await
        .unwrap();
    assert_eq!(depts.len(), 2);

    let raw = Raw::new(&emu);
    let token = raw.token(APP, SECRET).await;
    let too_many: String = (0..51).map(|i| format!("user_ids=ou_{i}&")).collect();
    let r = raw
        .get(Some(&token), &format!("{C}/users/batch?{too_many}"))
        .await;
    assert_eq!((r.status, r.code()), (400, 99992402));
    let none = raw
        .get(Some(&token), &format!("{C}/departments/batch"))
        .await;
    assert_eq!(none.code(), 99992402);
    assert_eq!(
        none.json["error"]["field_violations"][0]["field"],
        "department_ids"
    );
}

#[tokio::test]
async fn api_permissions_answer_99991672_with_violations() {
    let (tenant, marks) = build_tenant(40, 8, vec![full_app()]);
    let mut bare = AppRecord::new("cli_bare0000000001", "bare-secret");
    bare.permissions.clear();
    let mut organize_only = AppRecord::new("cli_organize000001", "organize-secret");
    organize_only.permissions = [emulator::tenant::perm::DEPARTMENT_ORGANIZE.to_owned()].into();
    let emu = start(tenant, |c| {
        c.tenant.apps.insert(bare.app_id.clone(), bare.clone());
        c.tenant
            .apps
            .insert(organize_only.app_id.clone(), organize_only.clone());
    })
    .await;
    let raw = Raw::new(&emu);
    let token = raw.token(&bare.app_id, &bare.app_secret).await;
    let r = raw
        .get(Some(&token), &format!("{C}/departments/0/children"))
        .await;
    assert_eq!((r.status, r.code()), (400, 99991672));
    let v = &r.json["error"]["permission_violations"];
    assert_eq!(v[0]["type"], "action_scope_required");
    let subjects: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["subject"].as_str().unwrap())
        .collect();
    assert!(subjects.contains(&"contact:contact.base:readonly"));
    assert!(subjects.contains(&"contact:department.organize:readonly"));

    let bare_client = client(&emu, &bare.app_id, &bare.app_secret);
    let err = bare_client.scopes().await.unwrap_err();
    match &err {
        FeishuError::MissingPermission { scopes, .. } => {
            assert!(scopes.contains(&"contact:contact.base:readonly".to_owned()));
            assert!(!scopes.contains(&"contact:department.organize:readonly".to_owned()));
        }
        other => panic!("{other:?}"),
    }
    let err = bare_client
        .groups(feishu::ids::GroupType::Normal)
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, FeishuError::MissingPermission { scopes, .. } if scopes == &["contact:group:readonly"]),
        "{err:?}"
    );
    emu.state()
        .update_behaviour(|b| b.permission_error_status = 403);
    assert_eq!(
        raw.get(Some(&token), &format!("{C}/scopes")).await.status,
        403
    );

    // The organize permission alone opens children and find_by_department, not the rest.
    let org = client(&emu, &organize_only.app_id, &organize_only.app_secret);
    let kids: Vec<_> = org
        .department_children("0", false)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(kids.len(), marks.top.len());
    assert!(
        kids[0].name.is_none(),
        "no department base permission, no name"
    );
    assert!(kids[0].parent_department_id.is_some());
    org.users_by_department("0")
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    assert_eq!(
        org.department("0").await.unwrap_err().code(),
        Some(99991672)
    );
}

#[tokio::test]
async fn extra_routes_share_the_server_and_shutdown_is_graceful() {
    use axum::extract::State;
    use std::sync::Arc;

    let (tenant, _) = build_tenant(20, 5, vec![full_app()]);
    let mut config = emulator::EmulatorConfig::new(tenant);
    config.tenant_name = "Acme".into();
    let admin = axum::Router::new().route(
        "/admin/users",
        axum::routing::get(|State(s): State<Arc<emulator::EmulatorState>>| async move {
            axum::Json(json!({"users": s.with_tenant(|t| t.users.len())}))
        }),
    );
    let emu = emulator::Emulator::start_with(config, admin).await.unwrap();
    let raw = Raw::new(&emu);
    let r = raw.get(None, "/admin/users").await;
    assert_eq!(r.json, json!({"users": 20}));
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert!(r.header("x-tt-logid").is_some());
    let token = raw.token(APP, SECRET).await;
    let root = raw.get(Some(&token), &format!("{C}/departments/0")).await;
    assert_eq!(root.data()["department"]["name"], "Acme");

    let base = emu.base_url();
    emu.shutdown().await.unwrap();
    assert!(reqwest::get(format!("{base}/admin/users")).await.is_err());
}

#[tokio::test]
async fn groups_of_a_user() {
    let (tenant, _) = build_tenant(120, 15, vec![full_app()]);
    let emu = start(tenant, |_| {}).await;
    let (member, want) = emu.with_tenant(|t| {
        let k = t.groups.values().next().unwrap().users[0];
        let want: Vec<String> = t
            .groups_of_user(k)
            .into_iter()
            .filter(|g| t.groups[g].kind == emulator::tenant::GroupKind::Normal)
            .collect();
        (t.apps[APP].open_id(k), want)
    });
    let got: Vec<String> = client(&emu, APP, SECRET)
        .group_member_belong(&member, MemberIdType::OpenId, None)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(got, want);
    assert!(!got.is_empty());
}
