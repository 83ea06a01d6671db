//! Tenant tokens (protocol §1.2, §3.2): lifetime, reuse, rotation, revocation, bad input.

use std::time::Duration;

use emulator::tenant::Tenant;
use feishu::client::FeishuError;

use crate::support::{APP, Raw, SECRET, build_tenant, client, full_app, start};

const SCOPES: &str = "/open-apis/contact/v3/scopes";

fn small() -> Tenant {
    build_tenant(30, 8, vec![full_app()]).0
}

#[tokio::test]
async fn same_token_while_half_an_hour_remains_then_a_new_one_and_both_work() {
    let emu = start(small(), |_| {}).await;
    let raw = Raw::new(&emu);
    let first = raw.token_response(APP, SECRET).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.json["msg"], "ok");
    assert_eq!(first.json["expire"], 7200);
    assert!(
        first.json.get("data").is_none(),
        "token fields are top-level"
    );
    let t1 = first.json["tenant_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(t1.starts_with("t-") && t1.len() == 42);
    assert!(t1[2..].chars().all(|c| c.is_ascii_hexdigit()));

    emu.state().advance_clock(Duration::from_secs(60));
    let again = raw.token_response(APP, SECRET).await;
    assert_eq!(again.json["tenant_access_token"], t1.as_str());
    // Whole seconds left, rounded down (a few real milliseconds passed too).
    let expire = again.json["expire"].as_i64().unwrap();
    assert!((7139..=7140).contains(&expire), "{expire}");

    // Just over 30 min left: still the same token.
    emu.state().advance_clock(Duration::from_secs(5339));
    assert_eq!(raw.token(APP, SECRET).await, t1);

    // Below 30 min: a new token; the old one stays valid until its own expiry.
    emu.state().advance_clock(Duration::from_secs(2));
    let t2 = raw.token(APP, SECRET).await;
    assert_ne!(t2, t1);
    assert_eq!(emu.state().valid_tokens(APP), vec![t1.clone(), t2.clone()]);
    assert_eq!(raw.get(Some(&t1), SCOPES).await.code(), 0);
    assert_eq!(raw.get(Some(&t2), SCOPES).await.code(), 0);

    emu.state().advance_clock(Duration::from_secs(1800));
    let expired = raw.get(Some(&t1), SCOPES).await;
    assert_eq!((expired.status, expired.code()), (400, 99991663));
    assert_eq!(raw.get(Some(&t2), SCOPES).await.code(), 0);
}

#[tokio::test]
async fn missing_unknown_and_malformed_tokens() {
    let emu = start(small(), |_| {}).await;
    let raw = Raw::new(&emu);
    let none = raw.get(None, SCOPES).await;
    assert_eq!((none.status, none.code()), (400, 99991661));
    assert_eq!(raw.get(Some(""), SCOPES).await.code(), 99991661);
    assert_eq!(raw.get(Some("garbage"), SCOPES).await.code(), 99991671);
    let unknown = raw
        .get(Some("t-0123456789abcdef0123456789abcdef01234567"), SCOPES)
        .await;
    assert_eq!(unknown.code(), 99991663);
    assert!(
        unknown.json["msg"]
            .as_str()
            .unwrap()
            .starts_with("Invalid access token")
    );
    // The HTTP status of token errors is a switch (§9 point 1).
    emu.state().update_behaviour(|b| b.token_error_status = 401);
    assert_eq!(raw.get(None, SCOPES).await.status, 401);
}

#[tokio::test]
async fn bad_credentials_and_bodies() {
    let emu = start(small(), |_| {}).await;
    let raw = Raw::new(&emu);
    let unknown = raw.token_response("cli_nobody", SECRET).await;
    assert_eq!((unknown.status, unknown.code()), (200, 10003));
    assert_eq!(
        unknown.json,
        serde_json::json!({"code":10003,"msg":"invalid param"})
    );
    let wrong = raw.token_response(APP, "not-the-secret").await;
    assert_eq!((wrong.status, wrong.code()), (400, 10014));
    assert_eq!(wrong.json["msg"], "app secret invalid");
    for body in [
        "",
        "{",
        "[]",
        r#"{"app_id":"cli_x"}"#,
        r#"{"app_id":1,"app_secret":2}"#,
    ] {
        let r = raw
            .post("/open-apis/auth/v3/tenant_access_token/internal", body)
            .await;
        assert_eq!((r.status, r.code()), (200, 10003), "{body}");
    }
    emu.state().update_behaviour(|b| b.bad_secret_status = 200);
    assert_eq!(raw.token_response(APP, "nope").await.status, 200);

    // Through the client: both are bad credentials, with the fix-it hint.
    for (app, secret, code) in [("cli_nobody", SECRET, 10003), (APP, "nope", 10014)] {
        let err = client(&emu, app, secret)
            .check_credentials()
            .await
            .unwrap_err();
        assert!(matches!(err, FeishuError::BadCredentials { .. }), "{err:?}");
        assert_eq!(err.code(), Some(code));
    }
}

#[tokio::test]
async fn client_recovers_from_revoked_and_expired_tokens() {
    let emu = start(small(), |_| {}).await;
    let client = client(&emu, APP, SECRET);
    client.scopes().await.unwrap();
    let first = client.tenant_token().await.unwrap();

    assert_eq!(emu.state().revoke_app_tokens(APP), 1);
    client.scopes().await.unwrap();
    let second = client.tenant_token().await.unwrap();
    assert_ne!(first, second);

    assert!(emu.state().expire_token(&second));
    client.department("0").await.unwrap();
    assert_ne!(client.tenant_token().await.unwrap(), second);

    let stats = emu.state().stats.snapshot();
    assert_eq!(
        stats["auth/v3/tenant_access_token/internal"].requests, 3,
        "one fetch, then one refresh per invalidation"
    );
    assert_eq!(stats["contact/v3/scopes"].by_status.get(&400), Some(&1));

    // A removed app's tokens stop working even before they expire.
    let token = client.tenant_token().await.unwrap();
    emu.with_tenant_mut(|t| t.apps.remove(APP));
    let raw = Raw::new(&emu);
    assert_eq!(raw.get(Some(&token), SCOPES).await.code(), 99991663);
}
