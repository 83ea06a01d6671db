//! The Open API client against a local stub: paging, token cache, throttling, retries,
//! pacing and the admin-facing error messages.
#![allow(clippy::unwrap_used)]

mod stub;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use feishu::client::{ClientConfig, FeishuClient, FeishuError, PacingConfig, TransportKind};
use feishu::ids::{GroupType, MemberIdType, MemberType};
use futures::{StreamExt, TryStreamExt};
use serde_json::json;
use stub::{Reply, Stub, TOKEN_PATH, users};

const FIND_BY_DEPARTMENT: &str = "/open-apis/contact/v3/users/find_by_department";

fn assert_explicit_id_types(req: &stub::Recorded) {
    assert_eq!(req.param("user_id_type"), Some("open_id"), "{req:?}");
    assert_eq!(
        req.param("department_id_type"),
        Some("open_department_id"),
        "{req:?}"
    );
}

#[tokio::test]
async fn find_by_department_pages_through_every_user_once() {
    // Tokens with characters that must be URL-encoded and come back verbatim.
    const T1: &str = "a+b/c==";
    const T2: &str = "p2 +/=&?x";
    let stub = Stub::start(|req| match req.param("page_token") {
        None => Reply::ok(json!({"items": users("a", 0..50), "has_more": true, "page_token": T1})),
        Some(T1) => {
            Reply::ok(json!({"items": users("a", 50..100), "has_more": true, "page_token": T2}))
        }
        Some(T2) => {
            Reply::ok(json!({"items": users("a", 100..120), "has_more": false, "page_token": ""}))
        }
        Some(other) => Reply::code(400, 40012, &format!("page token is invalid error: {other}")),
    })
    .await;
    let client = stub.client();

    let pages: Vec<_> = client
        .users_by_department_pages("od-x")
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        pages
            .iter()
            .map(|p| (p.index, p.items.len()))
            .collect::<Vec<_>>(),
        vec![(0, 50), (1, 50), (2, 20)]
    );

    let ids: Vec<String> = client
        .users_by_department("od-x")
        .map_ok(|u| u.open_id.unwrap())
        .try_collect()
        .await
        .unwrap();
    let expected: Vec<String> = (0..120).map(|i| format!("ou_a{i}")).collect();
    assert_eq!(ids, expected);

    let requests = stub.requests_to(FIND_BY_DEPARTMENT);
    assert_eq!(requests.len(), 6);
    let tokens: Vec<_> = requests.iter().map(|r| r.param("page_token")).collect();
    assert_eq!(tokens, [None, Some(T1), Some(T2), None, Some(T1), Some(T2)]);
    for req in &requests {
        assert_explicit_id_types(req);
        assert_eq!(req.param("department_id"), Some("od-x"));
        assert_eq!(req.param("page_size"), Some("50"));
        assert_eq!(req.authorization.as_deref(), Some("Bearer t-1"));
    }
    assert_eq!(stub.token_requests(), 1);
}

#[tokio::test]
async fn concurrent_calls_share_one_token_request() {
    // A slow token endpoint makes every caller arrive while the first fetch is in flight.
    let stub = Stub::start_with(
        |req| stub::numbered_tokens(req).delayed(Duration::from_millis(150)),
        |_| Reply::ok(json!({"user": {"open_id": "ou_1"}})),
    )
    .await;
    let client = stub.client();
    let calls = (0..25).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.user("ou_1").await })
    });
    for result in futures::future::join_all(calls).await {
        assert_eq!(result.unwrap().unwrap().open_id.as_deref(), Some("ou_1"));
    }
    client.user("ou_1").await.unwrap();
    assert_eq!(client.tenant_token().await.unwrap(), "t-1");
    assert_eq!(stub.token_requests(), 1);
    let token_request = &stub.requests_to(TOKEN_PATH)[0];
    assert_eq!(token_request.method, "POST");
    assert_eq!(
        token_request.body,
        Some(json!({"app_id": "cli_test", "app_secret": "secret-value"}))
    );
    assert!(token_request.authorization.is_none());
    assert!(
        stub.api_requests()
            .iter()
            .all(|r| r.authorization.as_deref() == Some("Bearer t-1"))
    );

    // Explicit invalidation: the next call fetches t-2.
    client.invalidate_token();
    client.user("ou_1").await.unwrap();
    assert_eq!(stub.token_requests(), 2);
}

#[tokio::test]
async fn a_rejected_token_is_refreshed_once_for_all_callers() {
    // Feishu revoked t-1: every request with it fails with 99991663.
    let stub = Stub::start(|req| {
        if req.authorization.as_deref() == Some("Bearer t-1") {
            Reply::code(400, 99991663, "Invalid access token for authorization.")
        } else {
            Reply::ok(json!({"department": {"open_department_id": "od-1"}}))
        }
    })
    .await;
    let client = stub.client();
    client.department("od-1").await.unwrap();
    assert_eq!(stub.token_requests(), 2);
    assert_eq!(stub.api_requests().len(), 2);

    // Many callers failing with the same stale token, some of them only after the refresh
    // is done: one refresh, not a stampede of evictions.
    let stub = Stub::start(|req| {
        if req.authorization.as_deref() == Some("Bearer t-1") {
            Reply::code(400, 99991663, "Invalid access token for authorization.")
                .delayed(Duration::from_millis(20 * req.nth as u64))
        } else {
            Reply::ok(json!({"department": {"open_department_id": "od-1"}}))
        }
    })
    .await;
    let client = stub.client();
    client.tenant_token().await.unwrap();
    let calls = (0..10).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.department("od-1").await })
    });
    for result in futures::future::join_all(calls).await {
        result.unwrap().unwrap();
    }
    assert_eq!(stub.token_requests(), 2);
}

#[tokio::test]
async fn a_second_token_failure_surfaces() {
    let stub =
        Stub::start(|_| Reply::code(401, 99991663, "Invalid access token for authorization."))
            .await;
    let err = stub.client().user("ou_1").await.unwrap_err();
    assert!(matches!(err, FeishuError::TokenRejected { .. }), "{err:?}");
    assert_eq!(err.code(), Some(99991663));
    assert_eq!(stub.token_requests(), 2);
    assert_eq!(stub.api_requests().len(), 2);
}

#[tokio::test]
async fn throttling_waits_for_the_reset_header_then_retries() {
    let stub = Stub::start(|req| {
        if req.nth == 1 {
            Reply::code(429, 99991400, "request trigger frequency limit")
                .header("x-ogw-ratelimit-limit", "50")
                .header("x-ogw-ratelimit-reset", "1")
        } else {
            Reply::ok(json!({"group": {"id": "g1", "name": "Ops"}}))
        }
    })
    .await;
    let started = Instant::now();
    let group = stub.client().group("g1").await.unwrap();
    assert_eq!(group.name.as_deref(), Some("Ops"));
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(stub.api_requests().len(), 2);
}

#[tokio::test]
async fn throttling_without_end_becomes_rate_limited() {
    // Code 99991400 on HTTP 400 (older APIs) and no reset header: backoff, then give up.
    let stub = Stub::start(|_| Reply::code(400, 99991400, "request trigger frequency limit")).await;
    let err = stub.client().user("ou_1").await.unwrap_err();
    assert!(
        matches!(err, FeishuError::RateLimited { waits: 3, .. }),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(stub.api_requests().len(), 4);
}

#[tokio::test]
async fn forty_oh_four_on_the_root_explains_the_contact_scope() {
    let stub = Stub::start(|_| {
        Reply::code(403, 40004, "no dept authority error").header("x-tt-logid", "20240101abc")
    })
    .await;
    let client = stub.client();
    let err = client
        .department_children("0", true)
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("failed to get Feishu organization departments"),
        "{text}"
    );
    for words in [
        "availability",
        "all employees",
        "contact scope",
        "all members",
        "publish a new app version",
        "approved",
        "40004",
    ] {
        assert!(text.contains(words), "{words:?} missing from {text}");
    }
    assert_eq!(err.code(), Some(40004));
    assert_eq!(err.log_id(), Some("20240101abc"));
    assert!(err.fix().unwrap().contains("all members"));
    assert!(!err.is_retryable());
    assert_eq!(stub.api_requests().len(), 1, "40004 is not retried");
    assert_eq!(stub.api_requests()[0].param("fetch_child"), Some("true"));

    // Another department: out of scope, not the root advice.
    let err = client.department("od-9").await.unwrap_err();
    assert!(
        matches!(&err, FeishuError::DepartmentOutOfScope { department_id: Some(id), .. } if id == "od-9"),
        "{err:?}"
    );
    assert!(
        !err.to_string()
            .starts_with("failed to get Feishu organization departments")
    );
}

#[tokio::test]
async fn missing_permission_names_the_scopes() {
    let stub = Stub::start(|_| {
        Reply::json(
            400,
            json!({"code": 99991672, "msg": "Access denied. One of the following scopes is required",
                   "error": {"log_id": "log-in-body", "permission_violations": [
                       {"type": "action_scope_required", "subject": "contact:contact.base:readonly"},
                       {"type": "action_scope_required", "subject": "contact:contact:readonly_as_app"}]}}),
        )
    })
    .await;
    let err = stub.client().scopes().await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("contact:contact.base:readonly"), "{text}");
    assert!(text.contains("contact:contact:readonly_as_app"), "{text}");
    assert!(
        text.contains("Permissions & Scopes") && text.contains("publish"),
        "{text}"
    );
    assert!(
        matches!(&err, FeishuError::MissingPermission { scopes, .. } if scopes.len() == 2),
        "{err:?}"
    );
    assert_eq!(err.log_id(), Some("log-in-body"));
}

#[tokio::test]
async fn bad_credentials_tell_the_admin_to_copy_them_again() {
    let stub = Stub::start_with(
        |_| Reply::code(400, 10014, "app secret invalid"),
        |_| Reply::ok(json!({})),
    )
    .await;
    let client = stub.client();
    let err = client.check_credentials().await.unwrap_err();
    let text = err.to_string();
    for words in [
        "Feishu rejected the App ID or App Secret",
        "10014",
        "app secret invalid",
        "Credentials & Basic Info",
        "copy the App ID and App Secret again",
    ] {
        assert!(text.contains(words), "{words:?} missing from {text}");
    }
    assert!(!text.contains("secret-value"));
    assert!(matches!(
        err,
        FeishuError::BadCredentials { code: 10014, .. }
    ));
    // An API call fails the same way without reaching the API, and is not retried.
    let err = client.users_batch(&["ou_1"]).await.unwrap_err();
    assert!(matches!(err, FeishuError::BadCredentials { .. }), "{err:?}");
    assert_eq!(stub.token_requests(), 2);
    assert!(stub.api_requests().is_empty());
}

#[tokio::test]
async fn server_errors_are_retried_a_bounded_number_of_times() {
    let stub = Stub::start(|_| Reply::text(500, "upstream exploded")).await;
    let err = stub.client().user("ou_1").await.unwrap_err();
    assert_eq!(stub.api_requests().len(), 1 + 3);
    assert!(err.is_retryable(), "{err:?}");
    assert!(err.to_string().contains("500"), "{err}");
}

#[tokio::test]
async fn internal_error_40003_is_retried_then_succeeds() {
    let stub = Stub::start(|req| {
        if req.nth <= 2 {
            Reply::code(400, 40003, "internal error")
        } else {
            Reply::ok(json!({"user": {"open_id": "ou_1"}}))
        }
    })
    .await;
    stub.client().user("ou_1").await.unwrap();
    assert_eq!(stub.api_requests().len(), 3);
}

#[tokio::test]
async fn other_api_errors_are_not_retried() {
    let stub = Stub::start(|_| Reply::code(400, 41050, "no user authority error")).await;
    let err = stub.client().user("ou_gone").await.unwrap_err();
    assert!(
        matches!(&err, FeishuError::UserOutOfScope { user_id: Some(id), .. } if id == "ou_gone"),
        "{err:?}"
    );
    assert!(err.is_out_of_scope());
    assert_eq!(stub.api_requests().len(), 1);

    let stub = Stub::start(|_| Reply::code(400, 40001, "param error")).await;
    let err = stub.client().user("ou_1").await.unwrap_err();
    assert!(
        matches!(
            err,
            FeishuError::Api {
                code: 40001,
                http_status: 400,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(stub.api_requests().len(), 1);
}

#[tokio::test]
async fn a_plain_text_404_names_the_status_and_endpoint() {
    let stub = Stub::start(|_| Reply::text(404, "404 page not found")).await;
    let err = stub.client().department("od-1").await.unwrap_err();
    let text = err.to_string();
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
    assert!(
        text.contains("404") && text.contains("contact/v3/departments/:department_id"),
        "{text}"
    );
    assert!(text.contains("base URL"), "{text}");
    assert_eq!(stub.api_requests().len(), 1);
}

#[tokio::test]
async fn has_more_without_a_token_ends_with_a_paging_error() {
    let stub =
        Stub::start(|_| Reply::ok(json!({"items": users("b", 0..3), "has_more": true}))).await;
    let items: Vec<_> = stub.client().users_by_department("od-x").collect().await;
    assert_eq!(items.len(), 4, "three users, then the error");
    assert!(items[..3].iter().all(Result::is_ok));
    assert!(
        matches!(&items[3], Err(FeishuError::Paging { .. })),
        "{items:?}"
    );
    assert_eq!(stub.api_requests().len(), 1);

    // A token seen before would loop forever.
    let stub = Stub::start(|_| {
        Reply::ok(json!({"items": users("c", 0..1), "has_more": true, "page_token": "same"}))
    })
    .await;
    let err = stub
        .client()
        .department_children("od-x", false)
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("repeats the page_token"), "{err}");
    assert_eq!(stub.api_requests().len(), 2);
}

#[tokio::test]
async fn batches_go_out_in_chunks_of_fifty() {
    let stub = Stub::start(|req| {
        let ids = req.params("user_ids");
        let ids = if ids.is_empty() {
            req.params("department_ids")
        } else {
            ids
        };
        let items: Vec<_> = ids
            .iter()
            .map(|id| json!({"open_id": id, "open_department_id": id}))
            .collect();
        Reply::ok(json!({"items": items}))
    })
    .await;
    let client = stub.client();
    let ids: Vec<String> = (0..120).map(|i| format!("ou_{i}")).collect();
    let found = client.users_batch(&ids).await.unwrap();
    assert_eq!(found.len(), 120);
    let requests = stub.requests_to("/open-apis/contact/v3/users/batch");
    assert_eq!(
        requests
            .iter()
            .map(|r| r.params("user_ids").len())
            .collect::<Vec<_>>(),
        [50, 50, 20]
    );
    requests.iter().for_each(assert_explicit_id_types);

    let found = client.departments_batch(&["od-1", "od-2"]).await.unwrap();
    assert_eq!(found.len(), 2);
    let request = &stub.requests_to("/open-apis/contact/v3/departments/batch")[0];
    assert_eq!(request.params("department_ids"), ["od-1", "od-2"]);
    assert_explicit_id_types(request);
    assert!(client.users_batch::<&str>(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn groups_members_and_scopes_decode_their_list_keys() {
    let stub = Stub::start(|req| match req.path.as_str() {
        "/open-apis/contact/v3/group/simplelist" => {
            Reply::ok(json!({"grouplist": [{"id": "g1", "name": "Ops", "type": 2}], "has_more": false}))
        }
        "/open-apis/contact/v3/group/g%2F1/member/simplelist" => Reply::ok(
            json!({"memberlist": [{"member_id": "od-1", "member_type": "department"}], "has_more": false}),
        ),
        "/open-apis/contact/v3/scopes" if req.param("page_token").is_none() => Reply::ok(json!({
            "department_ids": ["od-1"], "user_ids": ["ou_1", "ou_2"], "has_more": true, "page_token": "n"
        })),
        "/open-apis/contact/v3/scopes" => Reply::ok(json!({
            "department_ids": ["od-2"], "user_ids": ["ou_2"], "group_ids": ["g1"], "has_more": false
        })),
        _ => Reply::text(404, "404 page not found"),
    })
    .await;
    let client = stub.client();

    let groups: Vec<_> = client
        .groups(GroupType::Dynamic)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(groups[0].id.as_deref(), Some("g1"));
    let req = &stub.requests_to("/open-apis/contact/v3/group/simplelist")[0];
    assert_eq!(
        (req.param("type"), req.param("page_size")),
        (Some("2"), Some("100"))
    );

    // The group id is a path segment: percent-encoded, never a path separator.
    let members: Vec<_> = client
        .group_members("g/1", MemberType::Department, MemberIdType::OpenId)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(members[0].member_id.as_deref(), Some("od-1"));
    let req = &stub.requests_to("/open-apis/contact/v3/group/g%2F1/member/simplelist")[0];
    assert_eq!(req.param("member_type"), Some("department"));
    assert_eq!(req.param("member_id_type"), Some("open_id"));

    let scopes = client.scopes().await.unwrap();
    assert_eq!(scopes.department_ids, ["od-1", "od-2"]);
    assert_eq!(scopes.user_ids, ["ou_1", "ou_2"]);
    assert_eq!(scopes.group_ids, ["g1"]);
    stub.requests_to("/open-apis/contact/v3/scopes")
        .iter()
        .for_each(assert_explicit_id_types);
}

#[tokio::test]
async fn pacing_spreads_requests_per_endpoint() {
    let stub = Stub::start(|_| Reply::ok(json!({"user": {"open_id": "ou_1"}}))).await;
    let mut config = stub.config();
    config.base_url = format!("{}/", stub.base_url).parse().unwrap();
    config.pacing = PacingConfig::new(10, 600);
    let client = FeishuClient::new(config).unwrap();
    client.tenant_token().await.unwrap();

    let started = Instant::now();
    let done = Arc::new(AtomicUsize::new(0));
    let calls = (0..21).map(|_| {
        let (client, done) = (client.clone(), done.clone());
        tokio::spawn(async move {
            client.user("ou_1").await.unwrap();
            done.fetch_add(1, Ordering::SeqCst);
        })
    });
    futures::future::join_all(calls).await;
    let elapsed = started.elapsed();
    assert_eq!(done.load(Ordering::SeqCst), 21);
    // 10/s evenly spaced: the 21st request leaves 2 s after the first.
    assert!(elapsed >= Duration::from_millis(1900), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");

    // Another endpoint has its own budget.
    let started = Instant::now();
    let _ = client.group("g1").await;
    assert!(started.elapsed() < Duration::from_millis(500));
}

#[tokio::test]
async fn timeouts_are_retried_then_reported() {
    let stub =
        Stub::start(|_| Reply::ok(json!({"user": {}})).delayed(Duration::from_millis(500))).await;
    let mut config = stub.config();
    config.request_timeout = Duration::from_millis(100);
    let err = FeishuClient::new(config)
        .unwrap()
        .user("ou_1")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            FeishuError::Transport {
                kind: TransportKind::Timeout,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(stub.api_requests().len(), 1 + 3);
}

#[tokio::test]
async fn an_unreachable_host_is_a_connect_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut config = ClientConfig::new(
        format!("http://127.0.0.1:{port}").parse().unwrap(),
        "cli_test",
        "secret-value",
    );
    config.retry.min_delay = Duration::from_millis(1);
    config.retry.max_delay = Duration::from_millis(2);
    let err = FeishuClient::new(config)
        .unwrap()
        .check_credentials()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            FeishuError::Transport {
                kind: TransportKind::Connect,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("network"), "{err}");
}
