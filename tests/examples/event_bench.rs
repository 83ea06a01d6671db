//! Event-path benchmark: the real HTTP server in-process (`server::RunningServer`) with the
//! engine, the ingestor and one event worker running in the background with `orgsync serve`'s
//! defaults, next to an in-process emulator (Feishu's rate limits off). For SQLite and, when
//! ORGSYNC_TEST_POSTGRES_URL is set, PostgreSQL (a fresh schema):
//!
//! 1. ingestion: after importing the generated tenant, EVENTS real `contact.user.updated_v3`
//!    events (the emulator emitted them for profile changes), each encrypted and signed as
//!    Feishu does, are POSTed to the callback URL by CLIENTS concurrent clients: accepted
//!    events/s and the latency of the 200s (a 200 means the event is committed);
//! 2. apply: how long until the worker has applied all of them (inbox pending = 0);
//! 3. leavers: LEAVERS users resign one at a time in the emulator; their
//!    `contact.user.deleted_v3` is POSTed and the user polled through
//!    `GET /api/v1/pools/{pool}/users/{id}` until they are no longer active.
//!
//! Prints the figures and writes the `## Events` section of BENCHMARKS.md.
//!
//! Each store runs ROUNDS times (fresh store and server): rates are the medians of the rounds.
//!
//! cargo run --release -p orgsync-tests --example event_bench -- [EVENTS] [CLIENTS] [USERS] [LEAVERS] [ROUNDS]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use directory::engine::{Engine, EngineConfig};
use directory::fetch::FetchOptions;
use directory::ids::{ConnectionId, now_ms};
use directory::ingest::Ingestor;
use directory::secrets::MasterKey;
use directory::store::{DirectoryStore, InboxFilter, InboxState, PageRequest};
use directory::worker::{Worker, WorkerConfig};
use emulator::events::OutgoingEvent;
use emulator::generate::{GenerateConfig, generate};
use emulator::mutate::UserPatch;
use emulator::ratelimit::RateLimitConfig;
use emulator::tenant::{AppRecord, UserKey};
use emulator::{Emulator, EmulatorConfig};
use feishu::client::{PacingConfig, RetryConfig};
use feishu::envelope::{self, DecodeOptions, SealedRequest};
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{Value, json};
use server::{AdminToken, AppState, RunningServer, ServerSettings};

const APP_ID: &str = "cli_bench00000000002";
const APP_SECRET: &str = "bench-app-secret-000000000000002";
const ENCRYPT_KEY: &str = "bench-encrypt-key";
const VERIFICATION_TOKEN: &str = "bench-verification-token";
const IDENTIFIER: &str = "feishu";
const ADMIN_TOKEN: &str = "osat_event-bench-admin-token";
/// How often the leaver phase reads the user back.
const POLL: Duration = Duration::from_millis(5);

struct Params {
    events: usize,
    clients: usize,
    users: usize,
    leavers: usize,
}

struct Row {
    store: String,
    import: Duration,
    /// First POST to last 200.
    ingest: Duration,
    /// Latencies of the 200s, sorted.
    latencies: Vec<Duration>,
    /// First POST to inbox pending = 0.
    applied_after: Duration,
    /// Pending events when the last 200 came back.
    backlog: u64,
    /// Last 200 to pending = 0.
    drain: Duration,
    applied: usize,
    ignored: usize,
    parked: usize,
    /// Resignation POST to the user read back as not active, sorted.
    leavers: Vec<Duration>,
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Nearest-rank percentile of sorted samples.
fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// The server, its background tasks and the emulator, wired as `orgsync serve` wires them.
struct Served {
    emu: Emulator,
    store: Arc<dyn DirectoryStore>,
    server: RunningServer,
    http: reqwest::Client,
    stop_worker: tokio::sync::watch::Sender<bool>,
}

impl Served {
    async fn start(store: Arc<dyn DirectoryStore>, users: usize) -> Served {
        let mut app = AppRecord::new(APP_ID, APP_SECRET);
        app.encrypt_key = Some(ENCRYPT_KEY.into());
        app.verification_token = VERIFICATION_TOKEN.into();
        let generated = Instant::now();
        let tenant = generate(
            &GenerateConfig {
                seed: 2,
                users,
                departments: (users / 20).max(1),
                max_depth: 6,
                groups: 20,
                ..GenerateConfig::default()
            },
            vec![app],
        );
        eprintln!("  generated {users} users in {:.2?}", generated.elapsed());
        let mut config = EmulatorConfig::new(tenant);
        config.rate_limit = RateLimitConfig::disabled();
        let emu = Emulator::start(config).await.unwrap();
        let (key, _) = MasterKey::generate();
        let engine = Engine::new(
            store.clone(),
            key.clone(),
            EngineConfig {
                pacing: PacingConfig::disabled(),
                retry: RetryConfig::default(),
                fetch: FetchOptions { concurrency: 8 },
                ..EngineConfig::default()
            },
        );
        let ingestor = Arc::new(Ingestor::new(store.clone(), key, DecodeOptions::default()));
        let (stop_worker, stopped) = tokio::sync::watch::channel(false);
        Worker::new(engine.clone(), WorkerConfig::default())
            .wake_on(ingestor.committed())
            .spawn(stopped);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let state = AppState::new(
            engine,
            ingestor,
            ServerSettings {
                public_base_url: format!("http://{addr}"),
                admin_token: AdminToken::from_plaintext(ADMIN_TOKEN),
                secure_cookies: false,
            },
        );
        let server = RunningServer::start(addr, state).await.unwrap();
        Served {
            emu,
            store,
            server,
            http: reqwest::Client::new(),
            stop_worker,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url())
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let resp = self
            .http
            .get(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        (resp.status(), resp.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .json(body)
            .send()
            .await
            .unwrap();
        (resp.status(), resp.json().await.unwrap_or(Value::Null))
    }

    /// The events the emulator emitted for the app since `mark` (an `emitted_total`).
    fn emitted_since(&self, mark: u64) -> Vec<OutgoingEvent> {
        let events = &self.emu.state().events;
        let fresh = (events.emitted_total() - mark) as usize;
        let log = events.emitted();
        assert!(fresh <= log.len(), "the emulator's event log overflowed");
        log[log.len() - fresh..]
            .iter()
            .filter(|e| e.app_id == APP_ID)
            .cloned()
            .collect()
    }

    async fn pending(&self, connection: &ConnectionId) -> u64 {
        self.store.inbox_pending_count(connection).await.unwrap()
    }

    async fn inbox_count(&self, state: InboxState) -> usize {
        self.store
            .inbox_list(
                &InboxFilter {
                    state: Some(state),
                    ..InboxFilter::default()
                },
                PageRequest {
                    offset: 0,
                    limit: 10_000_000,
                },
            )
            .await
            .unwrap()
            .len()
    }
}

fn seal(e: &OutgoingEvent, nonce: usize) -> SealedRequest {
    envelope::seal(
        &e.plaintext,
        Some(ENCRYPT_KEY),
        &(now_ms() / 1000).to_string(),
        &nonce.to_string(),
    )
}

async fn deliver(http: &reqwest::Client, url: &str, sealed: &SealedRequest) {
    let resp = http
        .post(url)
        .headers(sealed.headers())
        .body(sealed.body.clone())
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    assert_eq!(status, StatusCode::OK, "event refused: {body}");
}

async fn run(store_name: &str, store: Arc<dyn DirectoryStore>, p: &Params) -> Row {
    let s = Served::start(store, p.users).await;

    // The pool and the connection through the admin API, then the import.
    let (status, pool) = s.post("/api/v1/pools", &json!({"name": "bench"})).await;
    assert_eq!(status, StatusCode::CREATED, "{pool}");
    let pool = pool["id"].as_str().unwrap().to_owned();
    let (status, connection) = s
        .post(
            &format!("/api/v1/pools/{pool}/connections"),
            &json!({
                "identifier": IDENTIFIER,
                "base_url": s.emu.base_url(),
                "app_id": APP_ID,
                "app_secret": APP_SECRET,
                "encrypt_key": ENCRYPT_KEY,
                "verification_token": VERIFICATION_TOKEN,
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{connection}");
    let connection_id = connection["id"].as_str().unwrap().to_owned();
    let connection = ConnectionId::from(connection_id.as_str());
    let callback = s.url(&format!(
        "/connections/enterprise/{IDENTIFIER}/{pool}/events"
    ));
    let started = Instant::now();
    let (status, job) = s
        .post(
            &format!("/api/v1/connections/{connection_id}/jobs"),
            &json!({"kind": "import"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let job_id = job["id"].as_str().unwrap().to_owned();
    let job = loop {
        let (_, job) = s.get(&format!("/api/v1/jobs/{job_id}")).await;
        if job["state"] == "finished" {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let import = started.elapsed();
    assert_eq!(job["verdict"], "complete", "{job}");
    eprintln!("  {store_name}: import {import:.2?}");

    // Real events: profile changes in the emulator, round-robin over the live users.
    let live: Vec<UserKey> = s.emu.with_tenant(|t| {
        t.users
            .values()
            .filter(|u| !u.status.resigned)
            .map(|u| u.key)
            .collect()
    });
    let mark = s.emu.state().events.emitted_total();
    let mutated = Instant::now();
    for i in 0..p.events {
        let key = live[i % live.len()];
        let patch = UserPatch {
            job_title: Some(format!("Bench title {i}")),
            ..UserPatch::default()
        };
        s.emu
            .state()
            .mutate(|t| t.update_user(key, &patch))
            .unwrap();
    }
    let updates: Vec<OutgoingEvent> = s
        .emitted_since(mark)
        .into_iter()
        .filter(|e| e.event_type == "contact.user.updated_v3")
        .collect();
    assert_eq!(updates.len(), p.events, "one update event per change");
    let sealed: Arc<Vec<SealedRequest>> = Arc::new(
        updates
            .iter()
            .enumerate()
            .map(|(i, e)| seal(e, i))
            .collect(),
    );
    eprintln!(
        "  {store_name}: {} events emitted and sealed in {:.2?}",
        sealed.len(),
        mutated.elapsed()
    );

    // 1. Ingestion: C clients POST the N events as fast as the 200s come back.
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..p.clients {
        let (http, url, sealed, next) = (
            s.http.clone(),
            callback.clone(),
            sealed.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(req) = sealed.get(i) else {
                    return latencies;
                };
                let t = Instant::now();
                deliver(&http, &url, req).await;
                latencies.push(t.elapsed());
            }
        }));
    }
    let mut latencies = Vec::with_capacity(p.events);
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let ingest = started.elapsed();
    latencies.sort();

    // 2. Apply: until nothing is pending.
    let backlog = s.pending(&connection).await;
    let ingested = Instant::now();
    loop {
        if s.pending(&connection).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let applied_after = started.elapsed();
    let drain = ingested.elapsed();
    let (applied, ignored, parked) = (
        s.inbox_count(InboxState::Applied).await,
        s.inbox_count(InboxState::Ignored).await,
        s.inbox_count(InboxState::Parked).await,
    );
    eprintln!(
        "  {store_name}: ingest {ingest:.2?} ({:.0} events/s), all applied after {applied_after:.2?} \
         (backlog {backlog} at the last 200), {applied} applied / {ignored} ignored / {parked} parked",
        p.events as f64 / ingest.as_secs_f64()
    );
    // The last change of a user is what the directory shows.
    let (i, key) = (p.events - 1, live[(p.events - 1) % live.len()]);
    let open_id = s.emu.with_tenant(|t| t.apps[APP_ID].open_id(key));
    let (_, user) = s
        .get(&format!("/api/v1/pools/{pool}/users/by/open_id/{open_id}"))
        .await;
    assert_eq!(
        user["profile"]["job_title"],
        format!("Bench title {i}"),
        "{user}"
    );

    // 3. Leavers: one at a time, from the resignation's event POST to the user not active.
    // Each comes after a random pause, as a resignation comes at any moment (the worker is
    // idle then, waiting for the commit signal or its next poll).
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let idle_ms = WorkerConfig::default().idle_poll.as_millis() as u64;
    let mut leavers = Vec::new();
    for key in &live {
        if leavers.len() == p.leavers {
            break;
        }
        let open_id = s.emu.with_tenant(|t| t.apps[APP_ID].open_id(*key));
        let (status, user) = s
            .get(&format!("/api/v1/pools/{pool}/users/by/open_id/{open_id}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{user}");
        if user["status"] != "active" {
            continue;
        }
        let user_path = format!(
            "/api/v1/pools/{pool}/users/{}",
            user["id"].as_str().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(
            rng.random_range(0..2 * idle_ms.max(1)),
        ))
        .await;
        let mark = s.emu.state().events.emitted_total();
        s.emu.state().mutate(|t| t.resign(*key)).unwrap();
        let (deleted, rest): (Vec<_>, Vec<_>) = s
            .emitted_since(mark)
            .into_iter()
            .partition(|e| e.event_type == "contact.user.deleted_v3");
        assert_eq!(
            deleted.len(),
            1,
            "one contact.user.deleted_v3 per resignation"
        );
        let sealed = seal(&deleted[0], leavers.len());
        let t = Instant::now();
        deliver(&s.http, &callback, &sealed).await;
        loop {
            let (status, detail) = s.get(&user_path).await;
            assert_eq!(status, StatusCode::OK, "{detail}");
            if detail["user"]["status"] != "active" {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "the leaver stayed active: {detail}"
            );
            tokio::time::sleep(POLL).await;
        }
        leavers.push(t.elapsed());
        // The resignation's other events (a report's manager cleared, a department's
        // leaders), as Feishu would send them too.
        // Applied before the next leaver, so each leaver finds the worker idle.
        for (i, e) in rest.iter().enumerate() {
            deliver(&s.http, &callback, &seal(e, 1_000_000 + i)).await;
        }
        while s.pending(&connection).await > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    assert_eq!(
        leavers.len(),
        p.leavers,
        "not enough active users to resign"
    );
    leavers.sort();
    eprintln!(
        "  {store_name}: leaver median {}, p99 {}, max {}",
        ms(pct(&leavers, 50.0)),
        ms(pct(&leavers, 99.0)),
        ms(pct(&leavers, 100.0))
    );

    let _ = s.stop_worker.send(true);
    s.server.stop().await.unwrap();
    s.emu.shutdown().await.unwrap();
    Row {
        store: store_name.to_owned(),
        import,
        ingest,
        latencies,
        applied_after,
        backlog,
        drain,
        applied,
        ignored,
        parked,
        leavers,
    }
}

/// The rounds of one store, summed up: rates as the median of the rounds (with their range),
/// percentiles over the latencies of every round together.
struct Summary {
    store: String,
    imports: Vec<f64>,
    ingest_rates: Vec<f64>,
    latencies: Vec<Duration>,
    applied_after: Vec<f64>,
    apply_rates: Vec<f64>,
    backlogs: Vec<f64>,
    drain_rates: Vec<f64>,
    applied: usize,
    ignored: usize,
    parked: usize,
    leavers: Vec<Duration>,
}

impl Summary {
    fn new(rows: Vec<Row>, events: usize) -> Summary {
        let rate = |n: usize, d: Duration| n as f64 / d.as_secs_f64();
        let mut latencies: Vec<Duration> = rows.iter().flat_map(|r| r.latencies.clone()).collect();
        latencies.sort();
        let mut leavers: Vec<Duration> = rows.iter().flat_map(|r| r.leavers.clone()).collect();
        leavers.sort();
        Summary {
            store: rows[0].store.clone(),
            imports: rows.iter().map(|r| r.import.as_secs_f64()).collect(),
            ingest_rates: rows.iter().map(|r| rate(events, r.ingest)).collect(),
            latencies,
            applied_after: rows.iter().map(|r| r.applied_after.as_secs_f64()).collect(),
            apply_rates: rows.iter().map(|r| rate(events, r.applied_after)).collect(),
            backlogs: rows.iter().map(|r| r.backlog as f64).collect(),
            drain_rates: rows
                .iter()
                .map(|r| rate(r.backlog as usize, r.drain))
                .collect(),
            applied: rows.iter().map(|r| r.applied).sum(),
            ignored: rows.iter().map(|r| r.ignored).sum(),
            parked: rows.iter().map(|r| r.parked).sum(),
            leavers,
        }
    }
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// `median (min–max)` of per-round values, `decimals` after the point.
fn spread(values: &[f64], decimals: usize) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if values.len() < 2 {
        return format!("{:.*}", decimals, median(values));
    }
    format!(
        "{:.*} ({:.*}–{:.*})",
        decimals,
        median(values),
        decimals,
        min,
        decimals,
        max
    )
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let p = Params {
        events: args.first().copied().unwrap_or(5_000),
        clients: args.get(1).copied().unwrap_or(32).max(1),
        users: args.get(2).copied().unwrap_or(2_000),
        leavers: args.get(3).copied().unwrap_or(50),
    };
    let rounds = args.get(4).copied().unwrap_or(3).max(1);
    let mut summaries = Vec::new();

    let mut rows = Vec::new();
    for round in 1..=rounds {
        eprintln!("SQLite, round {round}/{rounds}");
        let dir = tempfile::tempdir().unwrap();
        let sqlite = store::SqliteStore::open(&dir.path().join("bench.db"))
            .await
            .unwrap();
        rows.push(run("SQLite (WAL, synchronous=FULL)", Arc::new(sqlite), &p).await);
    }
    summaries.push(Summary::new(rows, p.events));
    if std::env::var("ORGSYNC_TEST_POSTGRES_URL").is_ok() {
        let mut rows = Vec::new();
        for round in 1..=rounds {
            eprintln!("PostgreSQL, round {round}/{rounds}");
            let pg = store::testing::pg_test_store().await.unwrap();
            rows.push(run("PostgreSQL 15 (local)", Arc::new(pg), &p).await);
        }
        summaries.push(Summary::new(rows, p.events));
    } else {
        eprintln!("ORGSYNC_TEST_POSTGRES_URL not set: PostgreSQL skipped");
    }

    let mut ingest = String::from(
        "| store | events × rounds | clients | accepted events/s | p50 | p95 | p99 | max |\n|---|---|---|---|---|---|---|---|\n",
    );
    let mut apply = String::from(
        "| store | all applied after (from the first POST) | events/s overall | backlog at the last 200 | events/s draining | applied / ignored / parked |\n|---|---|---|---|---|---|\n",
    );
    let mut leave = String::from(
        "| store | leavers × rounds | median | p95 | p99 | max |\n|---|---|---|---|---|---|\n",
    );
    for s in &summaries {
        ingest.push_str(&format!(
            "| {} | {} × {rounds} | {} | {} | {} | {} | {} | {} |\n",
            s.store,
            p.events,
            p.clients,
            spread(&s.ingest_rates, 0),
            ms(pct(&s.latencies, 50.0)),
            ms(pct(&s.latencies, 95.0)),
            ms(pct(&s.latencies, 99.0)),
            ms(pct(&s.latencies, 100.0)),
        ));
        apply.push_str(&format!(
            "| {} | {} s | {} | {} | {} | {} / {} / {} |\n",
            s.store,
            spread(&s.applied_after, 1),
            spread(&s.apply_rates, 0),
            spread(&s.backlogs, 0),
            spread(&s.drain_rates, 0),
            s.applied,
            s.ignored,
            s.parked,
        ));
        leave.push_str(&format!(
            "| {} | {} × {rounds} | {} | {} | {} | {} |\n",
            s.store,
            p.leavers,
            ms(pct(&s.leavers, 50.0)),
            ms(pct(&s.leavers, 95.0)),
            ms(pct(&s.leavers, 99.0)),
            ms(pct(&s.leavers, 100.0)),
        ));
    }
    let ratios = match summaries.as_slice() {
        [sqlite, pg] => format!(
            "\nPostgreSQL against SQLite (medians): {:.2}× the accepted events/s, {:.1}× the median \
             latency of the 200s, {:.2}× the apply rate overall, {:.2}× the draining rate, {:.2}× the \
             median leaver latency.\n",
            median(&pg.ingest_rates) / median(&sqlite.ingest_rates),
            pct(&pg.latencies, 50.0).as_secs_f64() / pct(&sqlite.latencies, 50.0).as_secs_f64(),
            median(&pg.apply_rates) / median(&sqlite.apply_rates),
            median(&pg.drain_rates) / median(&sqlite.drain_rates),
            pct(&pg.leavers, 50.0).as_secs_f64() / pct(&sqlite.leavers, 50.0).as_secs_f64(),
        ),
        _ => String::new(),
    };
    let imports: Vec<String> = summaries
        .iter()
        .map(|s| format!("{} {:.1} s", s.store, median(&s.imports)))
        .collect();
    let idle_poll = WorkerConfig::default().idle_poll;
    let section = format!(
        "## Events\n\n`cargo run --release -p orgsync-tests --example event_bench -- {events} {clients} {users} {leavers} {rounds}` \
         on this machine (2 cores), release profile, everything in one process: the emulator (Feishu's rate limits \
         off), the HTTP server (`server::RunningServer`), the engine, the ingestor, one event worker with \
         `orgsync serve`'s defaults (batch {batch}, woken by each commit, idle poll {idle} ms) and the {clients} clients, all sharing the \
         2 cores. {rounds} rounds per store, each on a fresh store and server: rates are the median of the rounds \
         (their range in brackets), latency percentiles are over the samples of all rounds together. Each round \
         imports the tenant ({users} users; median import {imports}), then changes it in the emulator: each of \
         the {events} events is a real `contact.user.updated_v3` the emulator emitted for a profile change, \
         encrypted and signed with the Encrypt Key as Feishu sends it, POSTed to the callback URL. A 200 means the \
         event is committed to the inbox. PostgreSQL runs through sqlx 0.9.0, which has a known TCP_NODELAY \
         regression that makes round trips slow (about 40 ms on larger messages): its figures are as measured, \
         with it, and vary more from round to round. Peak RSS of the whole process: {rss:.0} MiB.\n\n\
         **Ingestion**: {clients} concurrent clients, latency of the 200s.\n\n{ingest}\n\
         **Apply**: the worker runs during the ingestion; the time is from the first POST until no event is \
         pending; draining is the worker alone, from the last 200 on (the backlog over the time it took).\n\n{apply}\n\
         **Leavers**: {leavers} users per round resign one at a time; from the POST of their \
         `contact.user.deleted_v3` until `GET /api/v1/pools/{{pool}}/users/{{id}}` shows them not active (read \
         every {poll} ms). Each comes after a random pause (0–{pause} ms) with the worker idle; the ingestor's \
         commit signal wakes it (without it, the worker would find the event at its next poll, every {idle} ms).\n\n{leave}{ratios}",
        events = p.events,
        clients = p.clients,
        users = p.users,
        leavers = p.leavers,
        batch = WorkerConfig::default().batch,
        idle = idle_poll.as_millis(),
        imports = imports.join(", "),
        rss = peak_rss_mib(),
        poll = POLL.as_millis(),
        pause = 2 * idle_poll.as_millis(),
    );
    println!("{section}");
    write_section("BENCHMARKS.md", "## Events", &section);
}

/// Replaces (or appends) one `## ` section of the benchmarks file.
fn write_section(path: &str, heading: &str, section: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path);
    let current = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| "# Benchmarks\n\nFigures printed and written by the benchmark harnesses; rerun them to refresh.\n\n".into());
    let out = match current.find(heading) {
        Some(start) => {
            let rest = &current[start + heading.len()..];
            let end = rest
                .find("\n## ")
                .map_or(current.len(), |i| start + heading.len() + i + 1);
            let sep = if end < current.len() { "\n" } else { "" };
            format!("{}{section}{sep}{}", &current[..start], &current[end..])
        }
        None => {
            let sep = if current.ends_with("\n\n") || current.is_empty() {
                ""
            } else if current.ends_with('\n') {
                "\n"
            } else {
                "\n\n"
            };
            format!("{current}{sep}{section}")
        }
    };
    std::fs::write(&path, out).unwrap();
}
