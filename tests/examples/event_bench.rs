//! Event-path benchmark: the real HTTP server in-process (`server::RunningServer`) with the
//! engine and the ingestor, next to an in-process emulator (Feishu's rate limits off), and an
//! independent load generator: this same binary re-invoked as a separate OS process
//! (`--load`), so the server's CPU is measured on its own. For SQLite and, when
//! ORGSYNC_TEST_POSTGRES_URL is set, PostgreSQL (a fresh schema), each round on a fresh store:
//!
//! 1. reference: the load generator against a bare axum handler that reads the body and
//!    answers 200 (no verification, no store) — the ceiling of this generator on this machine;
//! 2. ingest: with the event worker stopped, EVENTS distinct real `contact.user.updated_v3`
//!    events for existing users (the emulator emitted them for profile changes), each
//!    encrypted and signed as Feishu does, replayed by the generator over CONNECTIONS
//!    HTTP/1.1 keep-alive connections: accepted events/s, latency of the 200s (a 200 means
//!    committed), CPU of the server process per event;
//! 3. drain: the worker (`orgsync serve`'s defaults) starts on that backlog; the time until
//!    nothing is pending gives its drain rate, set against the ingest rate of the same round;
//!    then a second backlog of EVENTS, drained by a worker whose engine writes no feed events
//!    (`EngineConfig::feed` off): the feed's cost is the drain rate lost against it. Odd rounds
//!    drain with the feed first, even rounds without it first, and the cost is taken over each
//!    such pair of rounds, which cancels what a drain gains or loses by coming first in its
//!    round (ROUNDS is rounded up to an even number);
//! 4. leavers: LEAVERS users resign one at a time in the emulator; their
//!    `contact.user.deleted_v3` is POSTed and the user polled through
//!    `GET /api/v1/pools/{pool}/users/{id}` until they are no longer active.
//!
//! Prints the figures and writes the `## Events` section of BENCHMARKS.md.
//!
//! cargo run --release -p orgsync-tests --example event_bench -- [EVENTS] [CONNECTIONS] [USERS] [LEAVERS] [ROUNDS]
#![allow(clippy::unwrap_used)]

/// The allocator of the `orgsync` binary, so that the figures are the product's.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use orgsync_tests::bench::{ms, pct, peak_rss_mib, write_section};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use directory::engine::{Engine, EngineConfig};
use directory::fetch::FetchOptions;
use directory::ids::{ConnectionId, now_ms};
use directory::ingest::Ingestor;
use directory::secrets::MasterKey;
use directory::store::{DirectoryStore, DueCursor, InboxFilter, InboxState};
use directory::worker::{Worker, WorkerConfig};
use emulator::events::OutgoingEvent;
use emulator::generate::{GenerateConfig, generate};
use emulator::mutate::UserPatch;
use emulator::ratelimit::RateLimitConfig;
use emulator::tenant::{AppRecord, UserKey};
use emulator::{Emulator, EmulatorConfig};
use feishu::client::RetryConfig;
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
    connections: usize,
    users: usize,
    leavers: usize,
}

/// What the load generator measured.
struct Load {
    /// First request to last response.
    elapsed: Duration,
    /// Latencies of the 200s, sorted.
    latencies: Vec<Duration>,
    /// CPU time of the generator process.
    cpu: Duration,
}

struct Row {
    store: String,
    import: Duration,
    /// The generator against a handler that only answers 200.
    reference: Load,
    ingest: Load,
    /// CPU time of the server process during the ingest.
    server_cpu: Duration,
    /// Worker start to inbox pending = 0, for `events` pending events.
    drain: Duration,
    /// The same for a second backlog of `events`, drained without the change feed.
    drain_without_feed: Duration,
    applied: u64,
    ignored: u64,
    parked: u64,
    /// Resignation POST to the user read back as not active, sorted.
    leavers: Vec<Duration>,
}

struct RunningWorker {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningWorker {
    async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.await.unwrap();
    }
}

/// User + system CPU time of this process (all threads), from /proc (clock ticks of 10 ms).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name in parentheses; utime and stime are 14th and 15th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// The server, its background tasks and the emulator, wired as `orgsync serve` wires them.
struct Served {
    emu: Emulator,
    store: Arc<dyn DirectoryStore>,
    server: RunningServer,
    http: reqwest::Client,
    engine: Arc<Engine>,
    ingestor: Arc<Ingestor>,
    /// The same store with the change feed off (`EngineConfig::feed`).
    engine_without_feed: Arc<Engine>,
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
        let config = EngineConfig {
            pacing_lifted: true,
            retry: RetryConfig::default(),
            fetch: FetchOptions { concurrency: 8 },
            ..EngineConfig::default()
        };
        let engine = Engine::new(store.clone(), key.clone(), config.clone());
        let engine_without_feed = Engine::new(
            store.clone(),
            key.clone(),
            EngineConfig {
                feed: false,
                ..config
            },
        );
        let ingestor = Arc::new(Ingestor::new(store.clone(), key, DecodeOptions::default()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let state = AppState::new(
            engine.clone(),
            ingestor.clone(),
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
            engine,
            ingestor,
            engine_without_feed,
        }
    }

    /// Starts the event worker as `orgsync serve` does (woken by each commit), with the
    /// change feed or without it; stopped by the returned [`RunningWorker`].
    fn start_worker(&self, feed: bool) -> RunningWorker {
        let engine = if feed {
            self.engine.clone()
        } else {
            self.engine_without_feed.clone()
        };
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = Worker::new(engine, WorkerConfig::default())
            .wake_on(self.ingestor.committed())
            .spawn(stopped);
        RunningWorker { stop, task }
    }

    /// Starts a worker on the pending backlog and waits until nothing is pending; the
    /// worker is stopped (its lease released) before this returns.
    async fn drain(&self, connection: &ConnectionId, feed: bool) -> Duration {
        let started = Instant::now();
        let worker = self.start_worker(feed);
        self.until_drained(connection).await;
        let drain = started.elapsed();
        worker.stop().await;
        drain
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

    /// Changes the profile of a live user (round-robin) for each of `numbers` in the
    /// emulator, and writes the real `contact.user.updated_v3` it emitted for each, sealed as
    /// Feishu sends it, to `path` for the load generator.
    fn backlog(&self, live: &[UserKey], numbers: std::ops::Range<usize>, path: &std::path::Path) {
        let mark = self.emu.state().events.emitted_total();
        let count = numbers.len();
        for i in numbers.clone() {
            let key = live[i % live.len()];
            let patch = UserPatch {
                job_title: Some(format!("Bench title {i}")),
                ..UserPatch::default()
            };
            self.emu
                .state()
                .mutate(|t| t.update_user(key, &patch))
                .unwrap();
        }
        let updates: Vec<OutgoingEvent> = self
            .emitted_since(mark)
            .into_iter()
            .filter(|e| e.event_type == "contact.user.updated_v3")
            .collect();
        assert_eq!(updates.len(), count, "one update event per change");
        let sealed: Vec<SealedRequest> = updates
            .iter()
            .zip(numbers)
            .map(|(e, i)| seal(e, i))
            .collect();
        write_requests(path, &sealed);
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

    /// Whether any event of the connection is pending: one row read through the index the
    /// worker reads by, so that polling it does not take the CPU the drain is measured on
    /// (a count of a large backlog does).
    async fn any_pending(&self, connection: &ConnectionId) -> bool {
        self.first_pending(connection, None).await.is_some()
    }

    /// The first pending event at or after `from` in the order the worker applies them.
    async fn first_pending(
        &self,
        connection: &ConnectionId,
        from: Option<DueCursor>,
    ) -> Option<DueCursor> {
        self.store
            .inbox_due(connection, 1, i64::MAX, from)
            .await
            .unwrap()
            .first()
            .map(|e| DueCursor {
                created_at: e.created_at,
                id: e.id - 1,
            })
    }

    /// Waits until no event of the connection is pending, checking every 50 ms. Each check
    /// starts from the first event the check before found pending: on PostgreSQL the events
    /// finished before it leave entries in the pending index until a vacuum, and walking them
    /// every time would take CPU from the worker measured. A last check from the start
    /// confirms.
    async fn until_drained(&self, connection: &ConnectionId) {
        let mut from = None;
        loop {
            match self.first_pending(connection, from).await {
                Some(first) => from = Some(first),
                None if !self.any_pending(connection).await => return,
                None => from = None,
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn inbox_count(&self, state: InboxState) -> u64 {
        self.store
            .inbox_count(&InboxFilter {
                state: Some(state),
                ..InboxFilter::default()
            })
            .await
            .unwrap()
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

/// The part of an event request after its request line and `Host`, as Feishu sends it: the
/// signature headers, the length and the encrypted body. The generator reads them from a file.
fn request_tail(sealed: &SealedRequest) -> Vec<u8> {
    let mut out = String::new();
    for (name, value) in sealed.headers().iter() {
        out.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    out.push_str(&format!(
        "content-length: {}\r\n\r\n{}",
        sealed.body.len(),
        sealed.body
    ));
    out.into_bytes()
}

/// Writes the requests as length-prefixed records.
fn write_requests(path: &std::path::Path, sealed: &[SealedRequest]) {
    let mut out = Vec::new();
    for s in sealed {
        let tail = request_tail(s);
        out.extend_from_slice(&(tail.len() as u32).to_le_bytes());
        out.extend_from_slice(&tail);
    }
    std::fs::write(path, out).unwrap();
}

/// Runs the load generator as a separate process (this binary with `--load`) against
/// `addr` + `path`, and reads back what it measured.
async fn replay(
    addr: std::net::SocketAddr,
    path: &str,
    requests: &std::path::Path,
    connections: usize,
) -> Load {
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command
        .arg("--load")
        .arg(addr.to_string())
        .arg(path)
        .arg(requests)
        .arg(connections.to_string());
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "the load generator failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut numbers = text
        .split_whitespace()
        .map(|v| Duration::from_micros(v.parse().unwrap()));
    let elapsed = numbers.next().unwrap();
    let cpu = numbers.next().unwrap();
    let mut latencies: Vec<Duration> = numbers.collect();
    latencies.sort();
    Load {
        elapsed,
        latencies,
        cpu,
    }
}

/// The load generator (`--load ADDR PATH FILE CONNECTIONS`): replays the requests of FILE,
/// each once, over CONNECTIONS keep-alive HTTP/1.1 connections, each connection sending its
/// next request when the previous answer is read. Every answer must be a 200. Prints the
/// elapsed time, its own CPU time and each latency, in µs.
async fn load_generator(args: &[String]) {
    let [addr, path, file, connections] = args else {
        panic!("--load ADDR PATH FILE CONNECTIONS");
    };
    let connections: usize = connections.parse().unwrap();
    let data = std::fs::read(file).unwrap();
    let head = format!("POST {path} HTTP/1.1\r\nhost: {addr}\r\n");
    let mut requests = Vec::new();
    let mut rest = data.as_slice();
    while !rest.is_empty() {
        let (len, tail) = rest.split_at(4);
        let len = u32::from_le_bytes(len.try_into().unwrap()) as usize;
        let mut request = head.clone().into_bytes();
        request.extend_from_slice(&tail[..len]);
        requests.push(request);
        rest = &tail[len..];
    }
    let requests = Arc::new(requests);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (requests, next, addr) = (requests.clone(), next.clone(), addr.clone());
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut stream = tokio::net::TcpStream::connect(addr.as_str()).await.unwrap();
                stream.set_nodelay(true).unwrap();
                let mut buf = Vec::with_capacity(4096);
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(request) = requests.get(i) else {
                        return latencies;
                    };
                    let t = Instant::now();
                    stream.write_all(request).await.unwrap();
                    // One response: headers, then Content-Length bytes of body.
                    let (head_end, body_len) = loop {
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = std::str::from_utf8(&buf[..end])
                                .unwrap()
                                .to_ascii_lowercase();
                            let len = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                            if buf.len() >= end + 4 + len {
                                assert!(
                                    head.starts_with("http/1.1 200"),
                                    "request {i} refused: {}",
                                    String::from_utf8_lossy(&buf[..end + 4 + len])
                                );
                                break (end + 4, len);
                            }
                        }
                        let mut chunk = [0u8; 4096];
                        let n = stream.read(&mut chunk).await.unwrap();
                        assert!(n > 0, "the server closed the connection");
                        buf.extend_from_slice(&chunk[..n]);
                    };
                    buf.drain(..head_end + body_len);
                    latencies.push(t.elapsed());
                }
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(requests.len());
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    let mut out = format!("{} {}\n", elapsed.as_micros(), process_cpu().as_micros());
    for l in latencies {
        out.push_str(&format!("{}\n", l.as_micros()));
    }
    print!("{out}");
}

/// The reference: an axum handler that reads the body and answers Feishu's 200, nothing more.
async fn reference_server() -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/events",
        axum::routing::post(|_body: bytes::Bytes| async { r#"{"msg":"success"}"# }),
    );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    (addr, tx)
}

/// `feed_first`: the round's first backlog is drained with the change feed, the second
/// without it; `false` the other way round.
async fn run(
    store_name: &str,
    store: Arc<dyn DirectoryStore>,
    p: &Params,
    feed_first: bool,
) -> Row {
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
    let dir = tempfile::tempdir().unwrap();
    let requests = dir.path().join("requests.bin");
    let mutated = Instant::now();
    s.backlog(&live, 0..p.events, &requests);
    eprintln!(
        "  {store_name}: {} events emitted and sealed in {:.2?}",
        p.events,
        mutated.elapsed(),
    );

    // 1. Reference: the same requests against a handler that only answers 200.
    let (reference_addr, stop_reference) = reference_server().await;
    let reference = replay(reference_addr, "/events", &requests, p.connections).await;
    let _ = stop_reference.send(());

    // 2. Ingest, the worker stopped: the server's CPU is the ingest path's alone.
    let callback_path = format!("/connections/enterprise/{IDENTIFIER}/{pool}/events");
    let cpu = process_cpu();
    let ingest = replay(s.server.addr, &callback_path, &requests, p.connections).await;
    let server_cpu = process_cpu().saturating_sub(cpu);
    let backlog = s.pending(&connection).await;
    assert_eq!(backlog, p.events as u64, "every 200 is a pending event");
    eprintln!(
        "  {store_name}: reference {:.0}/s; ingest {:.0} events/s, p99 {}, server CPU {:.0} µs/event",
        p.events as f64 / reference.elapsed.as_secs_f64(),
        p.events as f64 / ingest.elapsed.as_secs_f64(),
        ms(pct(&ingest.latencies, 99.0)),
        server_cpu.as_micros() as f64 / p.events as f64,
    );

    // 3. Drain: a worker starts on the backlog; until nothing is pending. Then a second
    // backlog, drained with the feed off (or the other way round: `feed_first`).
    let mut drains = [Duration::ZERO; 2];
    for (n, feed) in [feed_first, !feed_first].into_iter().enumerate() {
        if n > 0 {
            let events = n * p.events..(n + 1) * p.events;
            s.backlog(&live, events, &requests);
            replay(s.server.addr, &callback_path, &requests, p.connections).await;
            assert_eq!(s.pending(&connection).await, backlog, "a second backlog");
        }
        let drain = s.drain(&connection, feed).await;
        eprintln!(
            "  {store_name}: drained {backlog} {} the feed in {drain:.2?} ({:.0} events/s)",
            if feed { "with" } else { "without" },
            backlog as f64 / drain.as_secs_f64()
        );
        drains[usize::from(!feed)] = drain;
    }
    let [drain, drain_without_feed] = drains;
    let (applied, ignored, parked) = (
        s.inbox_count(InboxState::Applied).await,
        s.inbox_count(InboxState::Ignored).await,
        s.inbox_count(InboxState::Parked).await,
    );
    eprintln!("  {store_name}: {applied} applied / {ignored} ignored / {parked} parked");
    // The last change of a user is what the directory shows.
    let (i, key) = (2 * p.events - 1, live[(2 * p.events - 1) % live.len()]);
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
    let worker = s.start_worker(true);
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
        while s.any_pending(&connection).await {
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

    worker.stop().await;
    s.server.stop().await.unwrap();
    s.emu.shutdown().await.unwrap();
    Row {
        store: store_name.to_owned(),
        import,
        reference,
        ingest,
        server_cpu,
        drain,
        drain_without_feed,
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
    reference_rates: Vec<f64>,
    ingest_rates: Vec<f64>,
    latencies: Vec<Duration>,
    /// µs of CPU per event.
    server_cpu: Vec<f64>,
    generator_cpu: Vec<f64>,
    drain_rates: Vec<f64>,
    /// Drain rate over ingest rate, per round.
    drain_ratios: Vec<f64>,
    drain_without_feed_rates: Vec<f64>,
    /// The share of the drain rate the change feed costs, per pair of rounds (see
    /// [`feed_cost_and_order`]).
    feed_costs: Vec<f64>,
    /// How much longer the first drain of a round takes than the second, whatever it writes,
    /// per pair of rounds.
    order_effects: Vec<f64>,
    applied: u64,
    ignored: u64,
    parked: u64,
    leavers: Vec<Duration>,
}

impl Summary {
    fn new(rows: Vec<Row>, events: usize) -> Summary {
        let rate = |d: Duration| events as f64 / d.as_secs_f64();
        let per_event = |d: Duration| d.as_micros() as f64 / events as f64;
        let mut latencies: Vec<Duration> = rows
            .iter()
            .flat_map(|r| r.ingest.latencies.clone())
            .collect();
        latencies.sort();
        let mut leavers: Vec<Duration> = rows.iter().flat_map(|r| r.leavers.clone()).collect();
        leavers.sort();
        Summary {
            store: rows[0].store.clone(),
            imports: rows.iter().map(|r| r.import.as_secs_f64()).collect(),
            reference_rates: rows.iter().map(|r| rate(r.reference.elapsed)).collect(),
            ingest_rates: rows.iter().map(|r| rate(r.ingest.elapsed)).collect(),
            latencies,
            server_cpu: rows.iter().map(|r| per_event(r.server_cpu)).collect(),
            generator_cpu: rows.iter().map(|r| per_event(r.ingest.cpu)).collect(),
            drain_rates: rows.iter().map(|r| rate(r.drain)).collect(),
            drain_ratios: rows
                .iter()
                .map(|r| r.ingest.elapsed.as_secs_f64() / r.drain.as_secs_f64())
                .collect(),
            drain_without_feed_rates: rows.iter().map(|r| rate(r.drain_without_feed)).collect(),
            feed_costs: rows
                .chunks_exact(2)
                .map(|pair| feed_cost_and_order(&pair[0], &pair[1]).0)
                .collect(),
            order_effects: rows
                .chunks_exact(2)
                .map(|pair| feed_cost_and_order(&pair[0], &pair[1]).1)
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
/// The feed's cost and the order effect of a pair of rounds: `feed_first` drained its backlog
/// with the feed first, `feed_second` without it first. Each round's time ratio (with / without
/// the feed) is the feed's factor times (or divided by) the order's factor, so their geometric
/// mean is the feed's factor alone: the cost is 1 − 1 / √(r₁ · r₂), the share of the drain rate
/// lost. The order's factor is √(r₁ / r₂); returned as how much longer a first drain takes.
fn feed_cost_and_order(feed_first: &Row, feed_second: &Row) -> (f64, f64) {
    let ratio = |r: &Row| r.drain.as_secs_f64() / r.drain_without_feed.as_secs_f64();
    let (r1, r2) = (ratio(feed_first), ratio(feed_second));
    (1.0 - 1.0 / (r1 * r2).sqrt(), (r1 / r2).sqrt() - 1.0)
}

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
    let raw: Vec<String> = std::env::args().skip(1).collect();
    if raw.first().map(String::as_str) == Some("--load") {
        load_generator(&raw[1..]).await;
        return;
    }
    let args: Vec<usize> = raw.iter().filter_map(|a| a.parse().ok()).collect();
    let p = Params {
        events: args.first().copied().unwrap_or(20_000).max(1),
        connections: args.get(1).copied().unwrap_or(64).max(1),
        users: args.get(2).copied().unwrap_or(2_000),
        leavers: args.get(3).copied().unwrap_or(30),
    };
    // Even: the feed's cost is taken over pairs of rounds.
    let rounds = args.get(4).copied().unwrap_or(4).max(1).next_multiple_of(2);
    let mut summaries = Vec::new();

    let mut rows = Vec::new();
    for round in 1..=rounds {
        eprintln!("SQLite, round {round}/{rounds}");
        let dir = tempfile::tempdir().unwrap();
        let sqlite = store::SqliteStore::open(&dir.path().join("bench.db"))
            .await
            .unwrap();
        rows.push(
            run(
                "SQLite (WAL, synchronous=FULL)",
                Arc::new(sqlite),
                &p,
                round % 2 == 1,
            )
            .await,
        );
    }
    summaries.push(Summary::new(rows, p.events));
    if std::env::var("ORGSYNC_TEST_POSTGRES_URL").is_ok() {
        let mut rows = Vec::new();
        for round in 1..=rounds {
            eprintln!("PostgreSQL, round {round}/{rounds}");
            let pg = store::testing::pg_test_store().await.unwrap();
            rows.push(run("PostgreSQL 15 (local)", Arc::new(pg), &p, round % 2 == 1).await);
        }
        summaries.push(Summary::new(rows, p.events));
    } else {
        eprintln!("ORGSYNC_TEST_POSTGRES_URL not set: PostgreSQL skipped");
    }

    let mut ingest = String::from(
        "| store | events × rounds | connections | accepted events/s | p50 | p95 | p99 | max | server CPU µs/event | generator CPU µs/event | reference events/s |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut drain = String::from(
        "| store | backlog × rounds | drain events/s | drain / ingest | without the feed: drain events/s | the feed's cost on the drain | a round's first drain against its second | applied / ignored / parked |\n|---|---|---|---|---|---|---|---|\n",
    );
    let mut leave = String::from(
        "| store | leavers × rounds | median | p95 | p99 | max |\n|---|---|---|---|---|---|\n",
    );
    for s in &summaries {
        ingest.push_str(&format!(
            "| {} | {} × {rounds} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            s.store,
            p.events,
            p.connections,
            spread(&s.ingest_rates, 0),
            ms(pct(&s.latencies, 50.0)),
            ms(pct(&s.latencies, 95.0)),
            ms(pct(&s.latencies, 99.0)),
            ms(pct(&s.latencies, 100.0)),
            spread(&s.server_cpu, 0),
            spread(&s.generator_cpu, 0),
            spread(&s.reference_rates, 0),
        ));
        let percent = |v: &[f64]| -> Vec<f64> { v.iter().map(|c| c * 100.0).collect() };
        drain.push_str(&format!(
            "| {} | {} × {rounds} | {} | {} | {} | **{} %** | {} % | {} / {} / {} |\n",
            s.store,
            p.events,
            spread(&s.drain_rates, 0),
            spread(&s.drain_ratios, 2),
            spread(&s.drain_without_feed_rates, 0),
            spread(&percent(&s.feed_costs), 1),
            spread(&percent(&s.order_effects), 1),
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
    let mut ratios = String::new();
    for s in &summaries {
        ratios.push_str(&format!(
            "\n{}: ingest at {:.2}× the reference; drain at {:.2}× the ingest rate.",
            s.store,
            median(&s.ingest_rates) / median(&s.reference_rates),
            median(&s.drain_ratios),
        ));
    }
    if let [sqlite, pg] = summaries.as_slice() {
        ratios.push_str(&format!(
            "\nPostgreSQL against SQLite (medians): {:.2}× the accepted events/s, {:.2}× the server CPU \
             per event, {:.2}× the drain rate, {:.2}× the median leaver latency.",
            median(&pg.ingest_rates) / median(&sqlite.ingest_rates),
            median(&pg.server_cpu) / median(&sqlite.server_cpu),
            median(&pg.drain_rates) / median(&sqlite.drain_rates),
            pct(&pg.leavers, 50.0).as_secs_f64() / pct(&sqlite.leavers, 50.0).as_secs_f64(),
        ));
    }
    let imports: Vec<String> = summaries
        .iter()
        .map(|s| format!("{} {:.1} s", s.store, median(&s.imports)))
        .collect();
    let idle_poll = WorkerConfig::default().idle_poll;
    let section = format!(
        "## Events\n\n`cargo run --release -p orgsync-tests --example event_bench -- {events} {connections} {users} {leavers} {rounds}` \
         on this machine (2 cores), release profile. The server process holds the emulator (Feishu's rate \
         limits off), the HTTP server (`server::RunningServer`), the engine, the ingestor and the event worker; \
         the load generator is a separate process (the same binary with `--load`) that replays pre-generated \
         requests over {connections} HTTP/1.1 keep-alive connections, each sending its next request when the \
         previous answer is read. Both share the 2 cores. {rounds} rounds per store, each on a fresh store and \
         server: rates and CPU figures are the median of the rounds (their range in brackets), latency \
         percentiles are over the samples of all rounds together. Each round imports the tenant ({users} \
         users; median import {imports}), then changes it in the emulator: each of the {events} events is a \
         distinct real `contact.user.updated_v3` for an existing user that the emulator emitted for a \
         profile change, encrypted and signed with the Encrypt Key as Feishu sends it. Peak RSS of the server \
         process: {rss:.0} MiB.\n\n\
         **Ingest**: the worker stopped; a 200 means the event is committed to the inbox. Server CPU is the \
         user + system time of the server process over the ingest, per accepted event; the reference is the \
         same generator and requests against an axum handler that reads the body and answers 200 (no \
         verification, no store): the most this generator reaches on this machine.\n\n{ingest}\n\
         **Drain**: then the worker starts (`orgsync serve`'s defaults: batch {batch}) on the backlog of \
         {events} pending events; the time until none is pending (checked every 50 ms). Drain / ingest is \
         the drain rate over the ingest rate of the same round. Each round then ingests a second backlog \
         of {events} (the next profile changes) and drains it with a worker whose engine writes no feed \
         events (`EngineConfig::feed` off, which no configuration key sets); odd rounds drain with the \
         feed first, even rounds without it first. The feed's cost is the share of the drain rate it \
         loses against that, taken over each pair of rounds so that what a drain gains or loses by \
         coming first in its round cancels out: with r = time with the feed / time without in each \
         round of the pair, the cost is 1 − 1/√(r₁·r₂), and the order effect √(r₁/r₂) − 1 (the median \
         over pairs, their range in brackets; issue 12's target: ≤ 10 %).\n\n{drain}\n\
         **Leavers**: {leavers} users per round resign one at a time; from the POST of their \
         `contact.user.deleted_v3` until `GET /api/v1/pools/{{pool}}/users/{{id}}` shows them not active (read \
         every {poll} ms). Each comes after a random pause (0–{pause} ms) with the worker idle; the ingestor's \
         commit signal wakes it (without it, the worker would find the event at its next poll, every {idle} ms).\n\n{leave}{ratios}\n",
        events = p.events,
        connections = p.connections,
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
    write_section("BENCHMARKS.md", "## Events", &section).unwrap();
}
