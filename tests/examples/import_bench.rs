//! Import benchmark: a generated tenant served by the in-process emulator (Feishu's rate
//! limits off, client pacing off: this measures orgsync, not Feishu's quota), imported into
//! SQLite and PostgreSQL, then reconciled with nothing to change. Prints the figures and
//! writes them to BENCHMARKS.md.
//!
//! cargo run --release -p orgsync-tests --example import_bench -- [USERS] [DEPARTMENTS]
//! PostgreSQL is included when ORGSYNC_TEST_POSTGRES_URL is set.
#![allow(clippy::unwrap_used)]

/// The allocator of the `orgsync` binary, so that the figures are the product's.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use orgsync_tests::bench::{peak_rss_mib, write_section};
use std::sync::Arc;
use std::time::{Duration, Instant};

use directory::engine::{Engine, EngineConfig};
use directory::fetch::FetchOptions;
use directory::ids::{ConnectionId, PoolId, now_ms};
use directory::model::{Connection, ConnectionSettings, JobKind, JobTrigger, Provider, UserPool};
use directory::secrets::MasterKey;
use directory::store::DirectoryStore;
use emulator::generate::{GenerateConfig, generate};
use emulator::ratelimit::RateLimitConfig;
use emulator::tenant::AppRecord;
use emulator::{Emulator, EmulatorConfig};
use feishu::client::RetryConfig;

struct Row {
    store: String,
    users: usize,
    departments: usize,
    groups: usize,
    requests: u64,
    import: Duration,
    reconcile: Duration,
    verdict: String,
}

async fn run(
    store_name: &str,
    store: Arc<dyn DirectoryStore>,
    users: usize,
    departments: usize,
) -> Row {
    let app = AppRecord::new("cli_bench00000000001", "bench-secret");
    let generated = Instant::now();
    let tenant = generate(
        &GenerateConfig {
            seed: 1,
            users,
            departments,
            max_depth: 6,
            groups: 50,
            ..GenerateConfig::default()
        },
        vec![app],
    );
    eprintln!("  generated {users} users in {:.2?}", generated.elapsed());
    let groups = tenant.groups.len();
    let mut config = EmulatorConfig::new(tenant);
    config.rate_limit = RateLimitConfig::disabled();
    let emu = Emulator::start(config).await.unwrap();
    let (key, _) = MasterKey::generate();
    let pool = UserPool {
        id: PoolId::generate(),
        name: "bench".into(),
        created_at: now_ms(),
    };
    store.create_pool(&pool).await.unwrap();
    let connection = Connection {
        id: ConnectionId::generate(),
        pool_id: pool.id.clone(),
        identifier: "bench".into(),
        display_name: "bench".into(),
        provider: Provider::Feishu,
        base_url: Some(emu.base_url()),
        app_id: "cli_bench00000000001".into(),
        app_secret: key.seal("bench-secret"),
        encrypt_key: None,
        verification_token: None,
        settings: ConnectionSettings::default(),
        created_at: now_ms(),
        updated_at: now_ms(),
    };
    store.create_connection(&connection).await.unwrap();
    let engine = Engine::new(
        store.clone(),
        key,
        EngineConfig {
            pacing_lifted: true,
            retry: RetryConfig::default(),
            fetch: FetchOptions { concurrency: 8 },
            ..EngineConfig::default()
        },
    );
    let started = Instant::now();
    let job = engine
        .run_job(&connection.id, JobKind::Import, JobTrigger::Admin)
        .await
        .unwrap();
    let import = started.elapsed();
    let requests: u64 = emu
        .state()
        .stats
        .snapshot()
        .values()
        .map(|s| s.requests)
        .sum();
    eprintln!(
        "  {store_name}: import {import:.2?}, verdict {:?}, {requests} API requests",
        job.verdict
    );
    let started = Instant::now();
    let again = engine
        .run_job(&connection.id, JobKind::Reconcile, JobTrigger::Admin)
        .await
        .unwrap();
    let reconcile = started.elapsed();
    eprintln!(
        "  {store_name}: reconcile {reconcile:.2?}, verdict {:?}",
        again.verdict
    );
    emu.shutdown().await.unwrap();
    Row {
        store: store_name.to_owned(),
        users,
        departments,
        groups,
        requests,
        import,
        reconcile,
        verdict: format!("{:?} / {:?}", job.verdict.unwrap(), again.verdict.unwrap()),
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let users = args.first().copied().unwrap_or(20_000);
    let departments = args.get(1).copied().unwrap_or(users / 20);
    let mut rows = Vec::new();

    let dir = tempfile::tempdir().unwrap();
    let sqlite = store::SqliteStore::open(&dir.path().join("bench.db"))
        .await
        .unwrap();
    rows.push(
        run(
            "SQLite (WAL, synchronous=FULL)",
            Arc::new(sqlite),
            users,
            departments,
        )
        .await,
    );
    if std::env::var("ORGSYNC_TEST_POSTGRES_URL").is_ok() {
        let pg = store::testing::pg_test_store().await.unwrap();
        rows.push(run("PostgreSQL 15 (local)", Arc::new(pg), users, departments).await);
    } else {
        eprintln!("ORGSYNC_TEST_POSTGRES_URL not set: PostgreSQL skipped");
    }

    let mut table = String::from(
        "| store | users | departments | groups | API requests | import | users/s | reconcile (no change) | verdicts |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in &rows {
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.1} s | {:.0} | {:.1} s | {} |\n",
            r.store,
            r.users,
            r.departments,
            r.groups,
            r.requests,
            r.import.as_secs_f64(),
            r.users as f64 / r.import.as_secs_f64(),
            r.reconcile.as_secs_f64(),
            r.verdict
        ));
    }
    let section = format!(
        "## Import\n\n`cargo run --release -p orgsync-tests --example import_bench -- {users} {departments}` on this machine \
         (2 cores), emulator in the same process with Feishu's rate limits off and client pacing off, so the figures are \
         orgsync's own cost. Against real Feishu the per-endpoint limit (1000 requests/min) bounds an import to about \
         15 requests/s per endpoint. Peak RSS of the whole process (emulator + tenant + engine): {:.0} MiB.\n\n{table}",
        peak_rss_mib()
    );
    println!("{section}");
    write_section("BENCHMARKS.md", "## Import", &section).unwrap();
}
