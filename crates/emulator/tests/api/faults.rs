//! Injected faults: the client's retries still complete an import; the faults are seeded.

use std::time::{Duration, Instant};

use emulator::faults::FaultConfig;

use crate::import::assert_matches_model;
use crate::support::{APP, Raw, SECRET, build_tenant, client, full_app, import, start};

#[tokio::test]
async fn an_import_completes_through_5xx_and_40003() {
    let (tenant, _) = build_tenant(400, 40, vec![full_app()]);
    let emu = start(tenant, |c| {
        c.faults = FaultConfig {
            seed: 11,
            server_error_rate: 0.2,
            internal_error_rate: 0.1,
            ..FaultConfig::default()
        };
    })
    .await;
    let snap = import(&client(&emu, APP, SECRET)).await.unwrap();
    assert_matches_model(&emu, &snap);
    let counts = emu.state().faults.counts();
    assert!(counts.server_errors > 5, "{counts:?}");
    assert!(counts.internal_errors > 2, "{counts:?}");
    let stats = &emu.state().stats;
    assert_eq!(
        stats.with_status(500) + stats.with_status(502) + stats.with_status(503),
        counts.server_errors
    );
}

#[tokio::test]
async fn fault_bodies_latency_and_runtime_switching() {
    let (tenant, _) = build_tenant(30, 5, vec![full_app()]);
    let emu = start(tenant, |_| {}).await;
    let raw = Raw::new(&emu);
    let token = raw.token(APP, SECRET).await;
    let scopes = "/open-apis/contact/v3/scopes";

    emu.state().faults.set_config(FaultConfig {
        server_error_rate: 1.0,
        server_error_statuses: vec![502],
        endpoints: vec!["contact/v3/scopes".into()],
        ..FaultConfig::default()
    });
    let r = raw.get(Some(&token), scopes).await;
    assert_eq!(r.status, 502);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    // Other endpoints are not in the filter.
    assert_eq!(
        raw.get(Some(&token), "/open-apis/contact/v3/departments/0")
            .await
            .code(),
        0
    );

    emu.state().faults.set_config(FaultConfig {
        internal_error_rate: 1.0,
        ..FaultConfig::default()
    });
    let r = raw.get(Some(&token), scopes).await;
    assert_eq!((r.status, r.code()), (400, 40003));
    assert_eq!(r.json["msg"], "internal error");

    emu.state().faults.set_config(FaultConfig {
        latency_rate: 1.0,
        latency_min: Duration::from_millis(150),
        latency_max: Duration::from_millis(200),
        ..FaultConfig::default()
    });
    let started = Instant::now();
    assert_eq!(raw.get(Some(&token), scopes).await.code(), 0);
    assert!(started.elapsed() >= Duration::from_millis(150));

    emu.state().faults.set_config(FaultConfig::none());
    assert_eq!(raw.get(Some(&token), scopes).await.code(), 0);
}
