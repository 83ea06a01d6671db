//! Throttling (protocol §3.3): a raw burst past the budget gets HTTP 429 + 99991400 + both
//! headers; the client's pacing below the budget never gets one.

use std::time::Duration;

use emulator::ratelimit::RateLimitConfig;
use feishu::client::PacingConfig;
use futures::TryStreamExt;

use crate::support::{APP, Raw, SECRET, build_tenant, client_config, full_app, start};

#[tokio::test]
async fn a_burst_past_the_scaled_budget_is_throttled_with_headers() {
    let (tenant, _) = build_tenant(30, 5, vec![full_app()]);
    let emu = start(tenant, |c| c.rate_limit = RateLimitConfig::scaled(0.1)).await;
    let raw = Raw::new(&emu);
    let token = raw.token(APP, SECRET).await;
    let mut throttled = Vec::new();
    for _ in 0..12 {
        let r = raw.get(Some(&token), "/open-apis/contact/v3/scopes").await;
        if r.status == 429 {
            throttled.push(r);
        } else {
            assert_eq!(r.code(), 0);
        }
    }
    assert!(throttled.len() >= 2, "5/s lets at most 10 of 12 through");
    let r = &throttled[0];
    assert_eq!(
        r.json,
        serde_json::json!({"code":99991400,"msg":"request trigger frequency limit"})
    );
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(r.header("x-ogw-ratelimit-limit"), Some("5"));
    let reset: u64 = r.header("x-ogw-ratelimit-reset").unwrap().parse().unwrap();
    assert_eq!(reset, 1);
    assert_eq!(
        emu.state().rate_limiter.throttled_total(),
        throttled.len() as u64
    );

    // Another endpoint has its own budget.
    assert_eq!(
        raw.get(Some(&token), "/open-apis/contact/v3/departments/0")
            .await
            .code(),
        0
    );

    // The minute window: limit and seconds to its end.
    emu.state().rate_limiter.set_config(RateLimitConfig {
        per_second: 1000,
        per_minute: 3,
        ..RateLimitConfig::default()
    });
    emu.state().rate_limiter.reset_windows();
    let mut last = None;
    for _ in 0..4 {
        last = Some(
            raw.get(Some(&token), "/open-apis/contact/v3/group/simplelist")
                .await,
        );
    }
    let last = last.unwrap();
    assert_eq!(last.status, 429);
    assert_eq!(last.header("x-ogw-ratelimit-limit"), Some("3"));
    let reset: u64 = last
        .header("x-ogw-ratelimit-reset")
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&reset), "{reset}");
    // Moving the clock past the window lets requests through again.
    emu.state().advance_clock(Duration::from_secs(60));
    assert_eq!(
        raw.get(Some(&token), "/open-apis/contact/v3/group/simplelist")
            .await
            .code(),
        0
    );

    // The injection hook: the next request is refused whatever the budget.
    emu.state().rate_limiter.throttle_next(1);
    let forced = raw.get(Some(&token), "/open-apis/contact/v3/scopes").await;
    assert_eq!((forced.status, forced.code()), (429, 99991400));
    assert_eq!(
        raw.get(Some(&token), "/open-apis/contact/v3/scopes")
            .await
            .code(),
        0
    );

    // The token endpoint is throttled too.
    emu.state().rate_limiter.set_config(RateLimitConfig {
        per_second: 1,
        ..RateLimitConfig::default()
    });
    emu.state().rate_limiter.reset_windows();
    let codes: Vec<i64> =
        futures::future::join_all((0..3).map(|_| raw.token_response(APP, SECRET)))
            .await
            .iter()
            .map(|r| r.code())
            .collect();
    assert!(codes.contains(&99991400), "{codes:?}");
}

#[tokio::test]
async fn the_clients_pacing_below_the_budget_never_meets_a_429() {
    let (tenant, _) = build_tenant(60, 40, vec![full_app()]);
    let emu = start(tenant, |c| {
        c.rate_limit = RateLimitConfig {
            per_second: 20,
            ..RateLimitConfig::default()
        };
    })
    .await;
    let mut config = client_config(&emu, APP, SECRET);
    config.pacing = PacingConfig::new(15, 900);
    config.page_sizes.department_children = 1;
    config.page_sizes.users_by_department = 1;
    let client = feishu::client::FeishuClient::new(config).unwrap();
    // ~40 pages on each of two endpoints, concurrently: paced per endpoint at 15/s.
    let (depts, users) = futures::join!(
        client
            .department_children("0", true)
            .try_collect::<Vec<_>>(),
        client.users_by_department("0").try_collect::<Vec<_>>(),
    );
    let (depts, users) = (depts.unwrap(), users.unwrap());
    assert!(depts.len() >= 40 && !users.is_empty());
    let stats = emu.state().stats.snapshot();
    assert!(stats["contact/v3/departments/:department_id/children"].requests >= 40);
    assert_eq!(emu.state().rate_limiter.throttled_total(), 0);
    assert_eq!(emu.state().stats.with_status(429), 0);

    // Without pacing the same walk is throttled (and survives by waiting out the reset).
    let mut unpaced = client_config(&emu, APP, SECRET);
    unpaced.page_sizes.department_children = 1;
    let unpaced = feishu::client::FeishuClient::new(unpaced).unwrap();
    let again: Vec<_> = unpaced
        .department_children("0", true)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(again.len(), depts.len());
    assert!(emu.state().rate_limiter.throttled_total() > 0);
}
