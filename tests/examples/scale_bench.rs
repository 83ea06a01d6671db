//! Scale benchmark: a large generated tenant (by default 100,000 users, 5,000 departments, 200
//! groups), imported through the real HTTP server (`server::RunningServer`, in-process with the
//! engine) from an emulator in its own process, then read under load by concurrent admin-API
//! clients. For SQLite and, when ORGSYNC_TEST_POSTGRES_URL is set, PostgreSQL (a fresh schema):
//!
//! 1. the tenant is generated as `orgsync emulator --users U --departments D --groups G` does,
//!    in a child process (this binary again, with `SCALE_BENCH_ROLE=emulator`) that serves it:
//!    the bench talks to it over HTTP only (the Open API and its admin API `/_emulator`), so
//!    the tenant's memory is not in the figures of the bench's process;
//! 2. import with the limits lifted (the emulator's rate limits off, the engine's pacing off):
//!    wall time and users/s end to end (job POST to job finished), and the bound Feishu's
//!    limits would put on the same calls;
//! 3. with `SCALE_BENCH_PACED=1` only (about 5 minutes at 100k): a second import, on a fresh
//!    store and emulator, with the emulator enforcing Feishu's limits (50/s and 1,000/min per
//!    endpoint) and the engine at its defaults (`orgsync serve`'s pacing): wall time and its
//!    ratio to the rate-limit bound of its busiest endpoint;
//! 4. reads under load: for each read on its own, a few requests from one client (alone),
//!    then CLIENTS concurrent HTTP/1.1 keep-alive clients (reqwest, admin token) for
//!    SECONDS_PER_READ seconds: requests/s, p50, p99, max of the 200s; every other answer is
//!    counted as an error (the first error body is printed);
//! 5. a reconciliation with nothing to change: wall time;
//! 6. peak RSS (VmHWM) of the bench's process (the server with the engine, and the clients)
//!    during the import, after the reads, and during the reconciliation (the peak reset when
//!    it starts); the emulator process's own peak RSS apart.
//!
//! Prints the figures and writes the `## Scale` section of BENCHMARKS.md.
//!
//! cargo run --release -p orgsync-tests --example scale_bench -- [USERS] [DEPARTMENTS] [GROUPS] [CLIENTS] [SECONDS_PER_READ]
#![allow(clippy::unwrap_used)]

/// The allocator of the `orgsync` binary, so that the figures are the product's.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use orgsync_tests::bench::{ms, pct, peak_rss_mib, write_section};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io::{BufRead, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use directory::engine::{Engine, EngineConfig};
use directory::fetch::FetchOptions;
use directory::ingest::Ingestor;
use directory::secrets::MasterKey;
use directory::store::DirectoryStore;
use emulator::generate::{GenerateConfig, generate};
use emulator::ratelimit::RateLimitConfig;
use emulator::server::EndpointStats;
use emulator::tenant::AppRecord;
use emulator::{Emulator, EmulatorConfig};
use feishu::client::RetryConfig;
use feishu::envelope::DecodeOptions;
use futures::StreamExt;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reqwest::StatusCode;
use serde_json::{Value, json};
use server::{AdminToken, AppState, RunningServer, ServerSettings};

const APP_ID: &str = "cli_scale00000000003";
const APP_SECRET: &str = "scale-app-secret-000000000000003";
const ENCRYPT_KEY: &str = "scale-encrypt-key";
const VERIFICATION_TOKEN: &str = "scale-verification-token";
const IDENTIFIER: &str = "feishu";
const ADMIN_TOKEN: &str = "osat_scale-bench-admin-token";
/// `orgsync emulator`'s default `--depth` and `--seed`.
const DEPTH: usize = 5;
const SEED: u64 = 1;
/// Requests of one client alone, before the load.
const ALONE: usize = 5;
/// A read slower than this counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// Page size of the users page walk.
const PAGE: u64 = 100;
/// `SCALE_BENCH_ROLE=emulator`: this binary is the emulator process (see `emulator_process`).
const ROLE_VAR: &str = "SCALE_BENCH_ROLE";
/// Page size of the walk of the emulator's users (`/_emulator/users`, at most 1,000): small
/// pages, so what the bench's process holds for one at a time stays small.
const EMULATOR_PAGE: usize = 500;
/// How long the emulator process has to exit once its stdin is closed, before it is killed.
const EMULATOR_STOP: Duration = Duration::from_secs(10);

struct Params {
    users: usize,
    departments: usize,
    groups: usize,
    clients: usize,
    seconds: u64,
    paced: bool,
    /// `SCALE_BENCH_JOBS_ONLY=1`: the import and the reconciliation only, no reads, and
    /// BENCHMARKS.md left alone (for profiling a job).
    jobs_only: bool,
}

// ---- figures -------------------------------------------------------------------------------

/// Resets the peak RSS to the current RSS (Linux ≥ 4.0), so each store's figures are its own
/// (memory the allocator kept from the run before still counts). Whether it worked.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn bytes(n: f64) -> String {
    if n < 10_000.0 {
        format!("{n:.0} B")
    } else if n < 10_000_000.0 {
        format!("{:.0} kB", n / 1000.0)
    } else {
        format!("{:.1} MB", n / 1_000_000.0)
    }
}

/// The first characters of an error body, on one line.
fn excerpt(text: &str) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match one_line.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    }
}

/// The calls the emulator answered per endpoint (its own per-endpoint request counts), less
/// those it refused with 429: refused calls do not count against Feishu's budgets. Only
/// Open API endpoints (keys without a leading `/`: the admin and avatar routes are not
/// throttled).
fn calls_by_endpoint(stats: &Stats) -> BTreeMap<String, u64> {
    stats
        .iter()
        .filter(|(endpoint, _)| !endpoint.starts_with('/') && !endpoint.starts_with('<'))
        .map(|(endpoint, s)| {
            let refused = s.by_status.get(&429).copied().unwrap_or(0);
            (endpoint.clone(), s.requests.saturating_sub(refused))
        })
        .collect()
}

/// The calls the emulator refused with 429 (its rate limiter's throttled total: a 429 is
/// only ever its throttling, and every answer is counted in the stats), over all endpoints.
fn throttled(stats: &Stats) -> u64 {
    stats.values().filter_map(|s| s.by_status.get(&429)).sum()
}

/// The least time Feishu's limits allow for some calls: per endpoint, the calls at its
/// per-second and at its per-minute budget (50/s and 1,000/min unless overridden), whichever
/// is longer; the busiest endpoint bounds the whole.
#[derive(Clone)]
struct Bound {
    endpoint: String,
    calls: u64,
    total_calls: u64,
    seconds: f64,
}

fn busiest_bound(
    limits: &RateLimitConfig,
    after: &BTreeMap<String, u64>,
    before: &BTreeMap<String, u64>,
) -> Option<Bound> {
    // Feishu's budgets, whether this emulator enforces them or not.
    let config = RateLimitConfig {
        enabled: true,
        ..limits.clone()
    };
    let config = if config.scale > 0.0 {
        config
    } else {
        RateLimitConfig::default()
    };
    let delta: Vec<(String, u64)> = after
        .iter()
        .map(|(e, n)| (e.clone(), n - before.get(e).copied().unwrap_or(0).min(*n)))
        .filter(|(_, n)| *n > 0)
        .collect();
    let total_calls = delta.iter().map(|(_, n)| n).sum();
    delta
        .into_iter()
        .map(|(endpoint, calls)| {
            let limit = config.limits_for(&endpoint);
            let seconds = (calls as f64 / f64::from(limit.per_second))
                .max(calls as f64 * 60.0 / f64::from(limit.per_minute));
            Bound {
                endpoint,
                calls,
                total_calls,
                seconds,
            }
        })
        .max_by(|a, b| a.seconds.total_cmp(&b.seconds))
}

fn describe_bound(b: &Option<Bound>) -> String {
    match b {
        Some(b) => format!(
            "{:.0} s ({} calls to `{}`; {} calls in all)",
            b.seconds, b.calls, b.endpoint, b.total_calls
        ),
        None => "–".into(),
    }
}

// ---- the emulator process ----------------------------------------------------------------

/// The emulator's request counts per endpoint, as `GET /_emulator/stats` answers them.
type Stats = BTreeMap<String, EndpointStats>;

/// The tenant as `orgsync emulator --users U --departments D --groups G` builds it, served by
/// an emulator: Feishu's limits enforced (`paced`) or lifted.
async fn start_emulator(users: usize, departments: usize, groups: usize, paced: bool) -> Emulator {
    let mut app = AppRecord::new(APP_ID, APP_SECRET);
    app.encrypt_key = Some(ENCRYPT_KEY.into());
    app.verification_token = VERIFICATION_TOKEN.into();
    let generated = Instant::now();
    let tenant = generate(
        &GenerateConfig {
            seed: SEED,
            users,
            departments,
            max_depth: DEPTH.max(1),
            groups,
            ..GenerateConfig::default()
        },
        vec![app],
    );
    eprintln!(
        "  generated {} users ({} active), {} departments, {} groups in {:.2?}",
        tenant.users.len(),
        tenant.active_user_count(),
        tenant.departments.len(),
        tenant.groups.len(),
        generated.elapsed()
    );
    let mut config = EmulatorConfig::new(tenant);
    config.seed = SEED;
    config.rate_limit = if paced {
        RateLimitConfig::default()
    } else {
        RateLimitConfig::disabled()
    };
    Emulator::start(config).await.unwrap()
}

/// `SCALE_BENCH_ROLE=emulator` with the arguments `USERS DEPARTMENTS GROUPS paced|lifted`:
/// generates the tenant, serves it, prints the emulator's base URL as one line on stdout, and
/// stops when its stdin is closed (by the bench, or by the bench's process ending).
async fn emulator_process(args: &[String]) {
    let number = |i: usize| -> usize {
        args.get(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("emulator process: argument {i} is not a number: {args:?}"))
    };
    let paced = match args.get(3).map(String::as_str) {
        Some("paced") => true,
        Some("lifted") => false,
        _ => panic!("emulator process: argument 3 must be `paced` or `lifted`: {args:?}"),
    };
    let emu = start_emulator(number(0), number(1), number(2), paced).await;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{}", emu.base_url()).unwrap();
        stdout.flush().unwrap();
    }
    // Until the bench closes the pipe (or dies): EOF, or an error reading it.
    let _ = tokio::task::spawn_blocking(|| {
        std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink())
    })
    .await;
    emu.shutdown().await.unwrap();
}

/// The emulator in its own process: this binary again, with `SCALE_BENCH_ROLE=emulator`. It
/// lives while its stdin is open: [`EmulatorProcess::stop`] closes it and waits. Dropped
/// without `stop` (the bench panicked), it is killed.
struct EmulatorProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    /// The URL line it printed: `http://127.0.0.1:<port>`.
    base_url: String,
}

impl EmulatorProcess {
    async fn spawn(p: &Params, paced: bool) -> EmulatorProcess {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .env(ROLE_VAR, "emulator")
            .arg(p.users.to_string())
            .arg(p.departments.to_string())
            .arg(p.groups.to_string())
            .arg(if paced { "paced" } else { "lifted" })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // Generating a large tenant takes a while: wait for the URL line off the runtime.
        tokio::task::spawn_blocking(move || {
            let mut child = command.spawn().unwrap();
            let stdout = child.stdout.take().unwrap();
            // From here on a panic drops the guard, which kills the process.
            let mut emu = EmulatorProcess {
                stdin: child.stdin.take(),
                child,
                base_url: String::new(),
            };
            let mut line = String::new();
            std::io::BufReader::new(stdout)
                .read_line(&mut line)
                .unwrap();
            let url = line.trim();
            assert!(
                url.starts_with("http://"),
                "the emulator process printed {line:?}, not its URL"
            );
            emu.base_url = url.to_owned();
            emu
        })
        .await
        .unwrap()
    }

    /// The peak resident set (VmHWM) of the emulator process, in MiB; 0 where /proc is not
    /// there.
    fn peak_rss_mib(&self) -> f64 {
        orgsync_tests::bench::peak_rss_mib_of(self.child.id())
    }

    /// Closes its stdin and waits for it to exit; kills it after `EMULATOR_STOP`.
    async fn stop(mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + EMULATOR_STOP;
        loop {
            match self.child.try_wait().unwrap() {
                Some(status) => {
                    if !status.success() {
                        eprintln!("  the emulator process exited with {status}");
                    }
                    return;
                }
                None if Instant::now() >= deadline => {
                    eprintln!(
                        "  the emulator process did not exit {EMULATOR_STOP:?} after its stdin \
                         closed: killed"
                    );
                    self.child.kill().unwrap();
                    self.child.wait().unwrap();
                    return;
                }
                None => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        // Still running: the bench did not stop it (it panicked on the way).
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `GET {emulator}{path}?query` on the emulator's admin API: the JSON of its 200.
async fn emulator_get(
    http: &reqwest::Client,
    emu: &EmulatorProcess,
    path: &str,
    query: &[(&str, String)],
) -> Value {
    let resp = http
        .get(format!("{}{path}", emu.base_url))
        .query(query)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.text().await.unwrap();
    assert_eq!(
        status,
        StatusCode::OK,
        "GET {path} {query:?} on the emulator: {}",
        excerpt(&body)
    );
    serde_json::from_str(&body).unwrap()
}

// ---- the server ----------------------------------------------------------------------------

/// The HTTP server with the engine, wired as `orgsync serve` wires them, and the emulator
/// process it imports from.
struct Served {
    emu: EmulatorProcess,
    server: RunningServer,
    http: reqwest::Client,
    users: usize,
    /// The emulator's rate limits (`GET /_emulator/rate-limit`).
    limits: RateLimitConfig,
}

impl Served {
    /// `paced`: the emulator enforces Feishu's limits and the engine paces as `orgsync serve`
    /// does; otherwise both are lifted, as event_bench and import_bench do.
    async fn start(store: Arc<dyn DirectoryStore>, p: &Params, paced: bool) -> Served {
        let emu = EmulatorProcess::spawn(p, paced).await;
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .unwrap();
        let summary = emulator_get(&http, &emu, "/_emulator", &[]).await;
        let users = summary["users"].as_u64().unwrap() as usize;
        let limits =
            serde_json::from_value(emulator_get(&http, &emu, "/_emulator/rate-limit", &[]).await)
                .unwrap();
        let (key, _) = MasterKey::generate();
        let engine_config = if paced {
            EngineConfig::default()
        } else {
            EngineConfig {
                pacing_lifted: true,
                retry: RetryConfig::default(),
                fetch: FetchOptions { concurrency: 8 },
                ..EngineConfig::default()
            }
        };
        let engine = Engine::new(store.clone(), key.clone(), engine_config);
        let ingestor = Arc::new(Ingestor::new(store, key, DecodeOptions::default()));
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
            server,
            http,
            users,
            limits,
        }
    }

    async fn stop(self) {
        self.server.stop().await.unwrap();
        self.emu.stop().await;
    }

    /// The emulator's request counts per endpoint (`GET /_emulator/stats`).
    async fn emulator_stats(&self) -> Stats {
        serde_json::from_value(emulator_get(&self.http, &self.emu, "/_emulator/stats", &[]).await)
            .unwrap()
    }

    /// The open ids (for the app) of the emulator's live (not resigned) users, walking
    /// `GET /_emulator/users` page by page; and how many departments it holds (`GET
    /// /_emulator`).
    async fn emulator_fixture(&self) -> (Vec<String>, u64) {
        let mut open_ids = Vec::new();
        let mut offset = 0;
        loop {
            let page = emulator_get(
                &self.http,
                &self.emu,
                "/_emulator/users",
                &[
                    ("offset", offset.to_string()),
                    ("limit", EMULATOR_PAGE.to_string()),
                ],
            )
            .await;
            let items = page["items"].as_array().unwrap();
            open_ids.extend(
                items
                    .iter()
                    .filter(|u| u["status"]["resigned"] != true)
                    .filter_map(|u| u["open_ids"][APP_ID].as_str().map(str::to_owned)),
            );
            offset += items.len();
            let total = page["total"].as_u64().unwrap() as usize;
            if items.is_empty() || offset >= total {
                break;
            }
        }
        let summary = emulator_get(&self.http, &self.emu, "/_emulator", &[]).await;
        (open_ids, summary["departments"].as_u64().unwrap())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url())
    }

    async fn get(&self, path: &str, query: &[(&str, String)]) -> (StatusCode, Value) {
        let resp = self
            .http
            .get(self.url(path))
            .query(query)
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

    /// The pool and the connection, through the admin API: (pool id, connection id).
    async fn setup(&self) -> (String, String) {
        let (status, pool) = self.post("/api/v1/pools", &json!({"name": "scale"})).await;
        assert_eq!(status, StatusCode::CREATED, "{pool}");
        let pool = pool["id"].as_str().unwrap().to_owned();
        let (status, connection) = self
            .post(
                &format!("/api/v1/pools/{pool}/connections"),
                &json!({
                    "identifier": IDENTIFIER,
                    "base_url": self.emu.base_url,
                    "app_id": APP_ID,
                    "app_secret": APP_SECRET,
                    "encrypt_key": ENCRYPT_KEY,
                    "verification_token": VERIFICATION_TOKEN,
                }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{connection}");
        (pool, connection["id"].as_str().unwrap().to_owned())
    }

    /// Starts a job through the admin API and waits for it: (POST to finished, the job).
    async fn run_job(&self, connection: &str, kind: &str) -> (Duration, Value) {
        let started = Instant::now();
        let (status, job) = self
            .post(
                &format!("/api/v1/connections/{connection}/jobs"),
                &json!({ "kind": kind }),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{job}");
        let job_id = job["id"].as_str().unwrap().to_owned();
        let mut told = Instant::now();
        loop {
            let (status, job) = self.get(&format!("/api/v1/jobs/{job_id}"), &[]).await;
            if status == StatusCode::OK && job["state"] == "finished" {
                return (started.elapsed(), job);
            }
            if told.elapsed() > Duration::from_secs(30) {
                eprintln!(
                    "    {kind} running for {:.0?}: {}",
                    started.elapsed(),
                    job["progress"]
                );
                told = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

// ---- what the reads pick from --------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Default)]
enum PageMode {
    /// The answer carries `next`: passed back as `after`.
    #[default]
    Cursor,
    /// No `next`: `offset` paging.
    Offset,
}

/// What the reads pick from: collected through the API (and the emulator's open ids).
#[derive(Default)]
struct Fixture {
    pool: String,
    user_ids: Vec<String>,
    open_ids: Vec<String>,
    terms: Vec<String>,
    departments: Vec<String>,
    /// First-level departments (no parent).
    roots: Vec<String>,
    groups: Vec<String>,
    page_mode: PageMode,
    /// What the collection found about the API, for the report.
    notes: Vec<String>,
}

/// The items of a list answer: a bare array or a page's `items`.
fn items_of(v: &Value) -> Vec<Value> {
    v.as_array()
        .or_else(|| v["items"].as_array())
        .cloned()
        .unwrap_or_default()
}

/// A department's id in a tree node (`{department, children}`) or a bare department.
fn department_id_of(v: &Value) -> Option<String> {
    v["department"]["id"]
        .as_str()
        .or_else(|| v["id"].as_str())
        .map(str::to_owned)
}

/// Every item of a list, page by page. A page without `offset` (or with `next`) is a cursor
/// page: `next` is passed back as `after` until a page has none. Otherwise pages go by
/// `offset` (with a known `total`, the rest 4 at a time). A bare array is the whole list.
async fn walk_list(s: &Served, path: &str, extra: &[(&str, String)], limit: u64) -> Vec<Value> {
    walk_list_keeping(s, path, extra, limit, &Value::clone).await
}

/// [`walk_list`], keeping `keep(item)` of each item: a walk of 100,000 users as whole JSON
/// values held about 400 MB in the bench's process, which counts in the peak RSS.
async fn walk_list_keeping(
    s: &Served,
    path: &str,
    extra: &[(&str, String)],
    limit: u64,
    keep: &dyn Fn(&Value) -> Value,
) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    let mut by_cursor: Option<bool> = None;
    loop {
        let mut query: Vec<(&str, String)> = extra.to_vec();
        query.push(("limit", limit.to_string()));
        match (&after, by_cursor) {
            (Some(a), _) => query.push(("after", a.clone())),
            (None, Some(false)) => query.push(("offset", out.len().to_string())),
            (None, _) => {}
        }
        let (status, body) = s.get(path, &query).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "GET {path} {query:?}: {}",
            excerpt(&body.to_string())
        );
        if let Some(all) = body.as_array() {
            out.extend(all.iter().map(keep));
            break;
        }
        let items = items_of(&body);
        let got = items.len() as u64;
        out.extend(items.iter().map(keep));
        let cursor = *by_cursor
            .get_or_insert_with(|| body.get("next").is_some() || body.get("offset").is_none());
        if cursor {
            match body["next"].as_str() {
                Some(next) if got > 0 => after = Some(next.to_owned()),
                _ => break,
            }
            continue;
        }
        let page = body["limit"].as_u64().unwrap_or(limit).max(1);
        if got < page {
            break;
        }
        // Offset paging with a known total: the remaining pages 4 at a time (a sequential
        // walk of 100k users by offset takes minutes). The walk then goes on from where they
        // end, so anything added meanwhile is read too.
        if let Some(total) = body["total"].as_u64() {
            let from = out.len() as u64;
            let pages: Vec<(StatusCode, Value)> =
                futures::stream::iter((from..total).step_by(page as usize).map(|offset| {
                    let mut query: Vec<(&str, String)> = extra.to_vec();
                    query.push(("limit", page.to_string()));
                    query.push(("offset", offset.to_string()));
                    async move { s.get(path, &query).await }
                }))
                .buffered(4)
                .collect()
                .await;
            for (status, body) in pages {
                assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
                out.extend(items_of(&body).iter().map(keep));
            }
        }
    }
    out
}

/// Search terms from real users: substrings (3+ characters) of their names and English names,
/// and e-mail prefixes; plus `alice`, the term.
fn search_terms(users: &[Value], rng: &mut ChaCha8Rng) -> Vec<String> {
    let mut terms = vec!["alice".to_owned()];
    let substring = |s: &str, rng: &mut ChaCha8Rng| {
        let chars: Vec<char> = s.chars().filter(|c| !c.is_whitespace()).collect();
        if chars.len() < 3 {
            return None;
        }
        let len = rng.random_range(3..=chars.len().min(6));
        let start = rng.random_range(0..=chars.len() - len);
        Some(chars[start..start + len].iter().collect::<String>())
    };
    for u in users.choose_multiple(rng, 3000) {
        let profile = &u["profile"];
        let term = match rng.random_range(0..3) {
            0 => profile["name"].as_str().and_then(|n| substring(n, rng)),
            1 => profile["en_name"]
                .as_str()
                .and_then(|n| substring(&n.to_lowercase(), rng)),
            _ => profile["email"]
                .as_str()
                .and_then(|e| e.split('@').next())
                // The generated local part is `name.key`: the prefix is the name.
                .map(|local| local.rsplit_once('.').map_or(local, |(name, _)| name))
                .filter(|prefix| prefix.chars().count() >= 3)
                .map(str::to_owned),
        };
        terms.extend(term);
    }
    terms
}

/// The departments of the pool: the root level (`GET …/departments`), expanded through the
/// `children` its nodes carry (today's whole tree), else level by level through
/// `GET …/departments?parent={id}` for the nodes that have children: (every department, the
/// first-level ones).
async fn collect_departments(s: &Served, pool: &str) -> (Vec<String>, Vec<String>) {
    let path = format!("/api/v1/pools/{pool}/departments");
    let top = walk_list(s, &path, &[], 500).await;
    let roots: Vec<String> = top.iter().filter_map(department_id_of).collect();
    let mut all = Vec::new();
    let mut unexpanded = VecDeque::new();
    fn visit(v: &Value, all: &mut Vec<String>, unexpanded: &mut VecDeque<String>) {
        let Some(id) = department_id_of(v) else {
            return;
        };
        all.push(id.clone());
        match v.get("children").and_then(Value::as_array) {
            Some(children) => {
                for c in children {
                    visit(c, all, unexpanded);
                }
            }
            None if v["child_count"].as_u64() == Some(0) => {}
            None => unexpanded.push_back(id),
        }
    }
    for node in &top {
        visit(node, &mut all, &mut unexpanded);
    }
    let mut seen: HashSet<String> = all.iter().cloned().collect();
    while !unexpanded.is_empty() {
        let batch: Vec<String> = (0..16).map_while(|_| unexpanded.pop_front()).collect();
        let levels = futures::future::join_all(batch.iter().map(|id| {
            let path = path.clone();
            async move { walk_list(s, &path, &[("parent", id.clone())], 500).await }
        }))
        .await;
        for node in levels.iter().flatten() {
            if let Some(id) = department_id_of(node)
                && seen.insert(id.clone())
            {
                all.push(id.clone());
                if node["child_count"].as_u64() != Some(0) {
                    unexpanded.push_back(id);
                }
            }
        }
    }
    (all, roots)
}

/// `open_ids`: the emulator's live users' open ids; `in_emulator`: its department count.
async fn collect(s: &Served, pool: &str, open_ids: Vec<String>, in_emulator: u64) -> Fixture {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let t = Instant::now();
    // Only what the fixture takes from a user: its id and what search terms are cut from.
    let keep = |u: &Value| {
        let p = &u["profile"];
        json!({
            "id": u["id"],
            "profile": {"name": p["name"], "en_name": p["en_name"], "email": p["email"]},
        })
    };
    let users = walk_list_keeping(s, &format!("/api/v1/pools/{pool}/users"), &[], 500, &keep).await;
    let user_ids: Vec<String> = users
        .iter()
        .filter_map(|u| u["id"].as_str().map(str::to_owned))
        .collect();
    let terms = search_terms(&users, &mut rng);
    drop(users);
    eprintln!(
        "  walked the user list: {} users in {:.2?}",
        user_ids.len(),
        t.elapsed()
    );
    let t = Instant::now();
    let (departments, roots) = collect_departments(s, pool).await;
    eprintln!(
        "  collected {} departments ({} first-level; the emulator holds {in_emulator}) in {:.2?}",
        departments.len(),
        roots.len(),
        t.elapsed()
    );
    let groups: Vec<String> = walk_list(s, &format!("/api/v1/pools/{pool}/groups"), &[], 500)
        .await
        .iter()
        .filter_map(|g| g["group"]["id"].as_str().map(str::to_owned))
        .collect();
    let (status, first) = s
        .get(
            &format!("/api/v1/pools/{pool}/users"),
            &[("limit", PAGE.to_string())],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    // A page without `offset` is a cursor page (its last page has no `next`).
    let page_mode = if first.get("next").is_some() || first.get("offset").is_none() {
        PageMode::Cursor
    } else {
        PageMode::Offset
    };
    let mut notes = Vec::new();
    if page_mode == PageMode::Offset {
        notes.push(
            "`users?limit=100` answers no `next`: the page walk pages by `offset`.".to_owned(),
        );
    }
    // A department below the first level: its children cannot hold a first-level department.
    let deeper = departments.iter().find(|d| !roots.contains(d));
    if let Some(parent) = deeper {
        let path = format!("/api/v1/pools/{pool}/departments");
        let (status, children) = s.get(&path, &[("parent", parent.clone())]).await;
        let size = children.to_string().len();
        let ids: Vec<String> = items_of(&children)
            .iter()
            .filter_map(department_id_of)
            .collect();
        if status == StatusCode::OK && ids.iter().any(|id| roots.contains(id)) {
            let note = format!(
                "`departments?parent={{id}}` ignores `parent`: it answers the root level \
                 ({} departments at the top, {}), not the department's children.",
                ids.len(),
                bytes(size as f64)
            );
            eprintln!("  {note}");
            notes.push(note);
        }
    }
    eprintln!(
        "  {} groups; {} search terms; the users list pages by {}",
        groups.len(),
        terms.len(),
        match page_mode {
            PageMode::Cursor => "cursor (`next` → `after`)",
            PageMode::Offset => "offset (no `next` in the answer)",
        }
    );
    Fixture {
        pool: pool.to_owned(),
        user_ids,
        open_ids,
        terms,
        departments,
        roots,
        groups,
        page_mode,
        notes,
    }
}

// ---- the reads -----------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Read {
    UserById,
    UserByOpenId,
    UsersPages,
    Search,
    DepartmentChildren,
    MembersDirect,
    MembersSubtree,
    GroupMembers,
    GroupDetail,
    /// Not a directory read: the floor every read stands on in the same run (an HTTP request
    /// and one store statement, `list_pools`), so the store's share can be told from the
    /// machine's.
    Reference,
}

const READS: [Read; 10] = [
    Read::Reference,
    Read::UserById,
    Read::UserByOpenId,
    Read::UsersPages,
    Read::Search,
    Read::DepartmentChildren,
    Read::MembersDirect,
    Read::MembersSubtree,
    Read::GroupMembers,
    Read::GroupDetail,
];

impl Read {
    fn name(self) -> &'static str {
        match self {
            Read::UserById => "user by id: `users/{id}`",
            Read::UserByOpenId => "user by open_id: `users/by/open_id/{open_id}`",
            Read::UsersPages => "users page walk: `users?limit=100`",
            Read::Search => "search: `users?q=…&limit=20`",
            Read::DepartmentChildren => "department children: `departments?parent={id}`",
            Read::MembersDirect => {
                "members direct: `departments/{id}/members?limit=100&scope=direct`"
            }
            Read::MembersSubtree => {
                "members subtree: `departments/{id}/members?limit=100&scope=subtree`"
            }
            Read::GroupMembers => "group members: `groups/{id}/members?limit=100`",
            Read::GroupDetail => "group detail (every member): `groups/{id}`",
            Read::Reference => "reference, not a read: `/readyz` (one store statement)",
        }
    }

    /// Whether the fixture has anything for this read to pick.
    fn possible(self, f: &Fixture) -> bool {
        match self {
            Read::UserById | Read::UsersPages => !f.user_ids.is_empty(),
            Read::UserByOpenId => !f.open_ids.is_empty(),
            Read::Search => !f.terms.is_empty(),
            Read::DepartmentChildren | Read::Reference => true,
            Read::MembersDirect | Read::MembersSubtree => !f.departments.is_empty(),
            Read::GroupMembers | Read::GroupDetail => !f.groups.is_empty(),
        }
    }
}

/// One client's own state: its random picks and where its page walk is.
struct Walker {
    rng: ChaCha8Rng,
    after: Option<String>,
    offset: u64,
}

impl Walker {
    fn new(seed: u64, f: &Fixture) -> Walker {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Offset pages cost more the deeper they are: each client starts at a random page, so
        // the figures are those of an average depth. A cursor walk starts at the start.
        let pages = (f.user_ids.len() as u64).div_ceil(PAGE).max(1);
        let offset = rng.random_range(0..pages) * PAGE;
        Walker {
            rng,
            after: None,
            offset,
        }
    }

    fn pick<'a>(&mut self, from: &'a [String]) -> &'a str {
        from.choose(&mut self.rng).map_or("", String::as_str)
    }

    /// The next request of `read`: its path and query.
    fn request(&mut self, read: Read, f: &Fixture) -> (String, Vec<(&'static str, String)>) {
        let base = format!("/api/v1/pools/{}", f.pool);
        match read {
            Read::UserById => (format!("{base}/users/{}", self.pick(&f.user_ids)), vec![]),
            Read::UserByOpenId => (
                format!("{base}/users/by/open_id/{}", self.pick(&f.open_ids)),
                vec![],
            ),
            Read::UsersPages => {
                let mut query = vec![("limit", PAGE.to_string())];
                match (f.page_mode, &self.after) {
                    (PageMode::Cursor, Some(after)) => query.push(("after", after.clone())),
                    (PageMode::Cursor, None) => {}
                    (PageMode::Offset, _) => query.push(("offset", self.offset.to_string())),
                }
                (format!("{base}/users"), query)
            }
            Read::Search => (
                format!("{base}/users"),
                vec![
                    ("q", self.pick(&f.terms).to_owned()),
                    ("limit", "20".into()),
                ],
            ),
            Read::DepartmentChildren => {
                // One in 20: the root level, without `parent`.
                if f.departments.is_empty() || self.rng.random_ratio(1, 20) {
                    (format!("{base}/departments"), vec![])
                } else {
                    let parent = self.pick(&f.departments).to_owned();
                    (format!("{base}/departments"), vec![("parent", parent)])
                }
            }
            Read::MembersDirect | Read::MembersSubtree => {
                // One in 10: a first-level department (its subtree: a large share of everyone).
                let id = if !f.roots.is_empty() && self.rng.random_ratio(1, 10) {
                    self.pick(&f.roots)
                } else {
                    self.pick(&f.departments)
                };
                let scope = if read == Read::MembersDirect {
                    "direct"
                } else {
                    "subtree"
                };
                (
                    format!("{base}/departments/{id}/members"),
                    vec![("limit", PAGE.to_string()), ("scope", scope.into())],
                )
            }
            Read::GroupMembers => (
                format!("{base}/groups/{}/members", self.pick(&f.groups)),
                vec![("limit", PAGE.to_string())],
            ),
            Read::GroupDetail => (format!("{base}/groups/{}", self.pick(&f.groups)), vec![]),
            Read::Reference => ("/readyz".to_owned(), vec![]),
        }
    }

    /// Moves the page walk on after an answer (`None`: not a 200); restarts at the end.
    fn advance(&mut self, f: &Fixture, page: Option<&PageHead>) {
        match f.page_mode {
            PageMode::Cursor => {
                self.after = page.and_then(|p| p.next.clone());
            }
            PageMode::Offset => {
                let got = page.map_or(0, |p| p.items.len() as u64);
                self.offset = if got < PAGE { 0 } else { self.offset + PAGE };
            }
        }
    }
}

/// What the page walk reads of a page: the users are skipped, not built as JSON values, so
/// that the clients (on the same two cores as the server) spend little on 85 kB answers.
#[derive(serde::Deserialize)]
struct PageHead {
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    items: Vec<serde::de::IgnoredAny>,
}

/// What clients measured.
#[derive(Default)]
struct Sample {
    /// Latencies of the 200s.
    latencies: Vec<Duration>,
    /// Body bytes of the 200s.
    bytes: u64,
    errors: u64,
    first_error: Option<String>,
    /// The slowest 200: its latency and request.
    slowest: Option<(Duration, String)>,
}

impl Sample {
    fn done(&self) -> usize {
        self.latencies.len() + self.errors as usize
    }

    fn error(&mut self, what: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(what);
        }
    }

    fn merge(&mut self, other: Sample) {
        self.latencies.extend(other.latencies);
        self.bytes += other.bytes;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        if other.slowest.as_ref().map(|s| s.0) > self.slowest.as_ref().map(|s| s.0) {
            self.slowest = other.slowest;
        }
    }
}

/// `GET path?query` (not encoded), for the report.
fn describe(path: &str, query: &[(&str, String)]) -> String {
    let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if query.is_empty() {
        format!("GET {path}")
    } else {
        format!("GET {path}?{}", query.join("&"))
    }
}

/// One client: its own keep-alive connection, one request at a time, until `max` requests or
/// the deadline (at least one request).
async fn client(
    read: Read,
    f: Arc<Fixture>,
    base_url: Arc<str>,
    seed: u64,
    deadline: Instant,
    max: usize,
) -> Sample {
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let mut walker = Walker::new(seed, &f);
    let mut sample = Sample::default();
    while sample.done() < max && (sample.done() == 0 || Instant::now() < deadline) {
        let (path, query) = walker.request(read, &f);
        let t = Instant::now();
        let sent = http
            .get(format!("{base_url}{path}"))
            .query(&query)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await;
        let resp = match sent {
            Ok(resp) => resp,
            Err(e) => {
                sample.error(format!("GET {path}: {e}"));
                walker.advance(&f, None);
                continue;
            }
        };
        let status = resp.status();
        let body = match resp.bytes().await {
            Ok(body) => body,
            Err(e) => {
                sample.error(format!("GET {path}: reading the body: {e}"));
                walker.advance(&f, None);
                continue;
            }
        };
        let latency = t.elapsed();
        if status == StatusCode::OK {
            sample.latencies.push(latency);
            if sample.slowest.as_ref().is_none_or(|s| latency > s.0) {
                sample.slowest = Some((latency, describe(&path, &query)));
            }
            sample.bytes += body.len() as u64;
            if read == Read::UsersPages {
                let page: Option<PageHead> = serde_json::from_slice(&body).ok();
                walker.advance(&f, page.as_ref());
            }
        } else {
            sample.error(format!(
                "{}: HTTP {status}: {}",
                describe(&path, &query),
                excerpt(&String::from_utf8_lossy(&body))
            ));
            walker.advance(&f, None);
        }
    }
    sample
}

struct ReadRow {
    name: &'static str,
    /// Median of `ALONE` requests from one client, if any answered 200.
    alone: Option<Duration>,
    /// 200s per second under load.
    rate: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
    ok: usize,
    errors: u64,
    first_error: Option<String>,
    /// The slowest 200 alone and under load.
    slowest_alone: Option<(Duration, String)>,
    slowest_load: Option<(Duration, String)>,
    mean_bytes: f64,
}

async fn measure(read: Read, f: &Arc<Fixture>, base_url: &Arc<str>, p: &Params) -> ReadRow {
    let seconds = Duration::from_secs(p.seconds);
    let mut alone = client(
        read,
        f.clone(),
        base_url.clone(),
        1_000,
        Instant::now() + seconds,
        ALONE,
    )
    .await;
    alone.latencies.sort();
    let started = Instant::now();
    let deadline = started + seconds;
    let tasks: Vec<_> = (0..p.clients)
        .map(|i| {
            tokio::spawn(client(
                read,
                f.clone(),
                base_url.clone(),
                i as u64,
                deadline,
                usize::MAX,
            ))
        })
        .collect();
    let mut load = Sample::default();
    for t in tasks {
        load.merge(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    load.latencies.sort();
    let ok = load.latencies.len();
    let row = ReadRow {
        name: read.name(),
        alone: (!alone.latencies.is_empty()).then(|| pct(&alone.latencies, 50.0)),
        rate: ok as f64 / elapsed.as_secs_f64(),
        p50: pct(&load.latencies, 50.0),
        p99: pct(&load.latencies, 99.0),
        max: pct(&load.latencies, 100.0),
        ok,
        errors: load.errors,
        first_error: alone.first_error.or(load.first_error),
        slowest_alone: alone.slowest,
        slowest_load: load.slowest,
        mean_bytes: if ok == 0 {
            0.0
        } else {
            load.bytes as f64 / ok as f64
        },
    };
    eprintln!(
        "    {}: alone {}; {} clients: {:.1} req/s, p50 {}, p99 {}, max {}, {} errors, {} per answer",
        row.name,
        row.alone.map_or_else(|| "–".into(), ms),
        p.clients,
        row.rate,
        ms(row.p50),
        ms(row.p99),
        ms(row.max),
        row.errors,
        bytes(row.mean_bytes),
    );
    if let Some((latency, request)) = &row.slowest_alone {
        eprintln!("      slowest alone: {} {request}", ms(*latency));
    }
    if let Some((latency, request)) = &row.slowest_load {
        eprintln!("      slowest under load: {} {request}", ms(*latency));
    }
    if let Some(e) = &row.first_error {
        eprintln!("      first error: {e}");
    }
    row
}

// ---- one store -----------------------------------------------------------------------------

struct Paced {
    import: Duration,
    verdict: String,
    bound: Option<Bound>,
    throttled: u64,
    /// Peak RSS of the emulator process, read before it stops.
    emulator_rss: f64,
}

struct Row {
    store: String,
    users: usize,
    import: Duration,
    import_verdict: String,
    import_bound: Option<Bound>,
    rss_import: f64,
    collect: Duration,
    reads: Vec<ReadRow>,
    reconcile: Duration,
    reconcile_verdict: String,
    reconcile_bound: Option<Bound>,
    /// Peak RSS during the reconciliation (reset when it starts).
    rss_reconcile: f64,
    /// The resident set when the reconciliation started.
    rss_before_reconcile: f64,
    /// Peak RSS after the reads under load, before the reconciliation.
    rss_reads: f64,
    /// The resident set when the peak was reset at the start of this store's run: freed
    /// memory of an earlier run in this process that glibc kept.
    rss_start: f64,
    /// Peak RSS of the emulator process, read before it stops.
    emulator_rss: f64,
    paced: Option<Paced>,
    notes: Vec<String>,
}

fn verdict(job: &Value) -> String {
    match job["error"].as_str() {
        Some(e) => format!(
            "{} ({})",
            job["verdict"].as_str().unwrap_or("?"),
            excerpt(e)
        ),
        None => job["verdict"].as_str().unwrap_or("?").to_owned(),
    }
}

async fn run(store_name: &str, store: Arc<dyn DirectoryStore>, p: &Params) -> Row {
    let rss_start = orgsync_tests::bench::rss_now_mib();
    if !reset_peak_rss() {
        eprintln!("  cannot reset the peak RSS: it includes the runs before");
    }
    let s = Served::start(store, p, false).await;
    let (pool, connection) = s.setup().await;

    // Import, limits lifted.
    let before = calls_by_endpoint(&s.emulator_stats().await);
    let (import, job) = s.run_job(&connection, "import").await;
    let import_calls = calls_by_endpoint(&s.emulator_stats().await);
    let import_bound = busiest_bound(&s.limits, &import_calls, &before);
    let rss_import = peak_rss_mib();
    let import_verdict = verdict(&job);
    eprintln!(
        "  {store_name}: import {import:.2?} ({:.0} users/s), verdict {import_verdict}; under \
         Feishu's limits at least {}; peak RSS {rss_import:.0} MiB (emulator process peak RSS \
         {:.0} MiB)",
        s.users as f64 / import.as_secs_f64(),
        describe_bound(&import_bound),
        s.emu.peak_rss_mib(),
    );

    // What the reads pick from: the emulator's side first, through its admin API (not timed:
    // the figure is the time orgsync's API takes).
    let (fixture, collect) = if p.jobs_only {
        (Fixture::default(), Duration::ZERO)
    } else {
        let (open_ids, in_emulator) = s.emulator_fixture().await;
        let t = Instant::now();
        let fixture = collect(&s, &pool, open_ids, in_emulator).await;
        (fixture, t.elapsed())
    };
    let fixture = Arc::new(fixture);

    // Reads under load, each on its own.
    let base_url: Arc<str> = Arc::from(s.server.url());
    let mut reads = Vec::new();
    for read in READS.into_iter().filter(|_| !p.jobs_only) {
        if read.possible(&fixture) {
            reads.push(measure(read, &fixture, &base_url, p).await);
        } else {
            eprintln!("    {}: nothing to pick from, skipped", read.name());
        }
    }

    let rss_reads = peak_rss_mib();
    eprintln!("  {store_name}: peak RSS after the reads {rss_reads:.0} MiB");

    // A reconciliation with nothing to change, its peak apart from the reads'.
    let rss_before_reconcile = orgsync_tests::bench::rss_now_mib();
    reset_peak_rss();
    let (reconcile, job) = s.run_job(&connection, "reconcile").await;
    let reconcile_bound = busiest_bound(
        &s.limits,
        &calls_by_endpoint(&s.emulator_stats().await),
        &import_calls,
    );
    let rss_reconcile = peak_rss_mib();
    let emulator_rss = s.emu.peak_rss_mib();
    eprintln!(
        "  {store_name}: no-change reconciliation {reconcile:.2?}, verdict {}, counts {}; under \
         Feishu's limits at least {}; peak RSS {rss_reconcile:.0} MiB from its start \
         ({rss_before_reconcile:.0} MiB resident then; emulator process peak RSS \
         {emulator_rss:.0} MiB)",
        verdict(&job),
        job["counts"],
        describe_bound(&reconcile_bound),
    );
    let users = s.users;
    let notes = fixture.notes.clone();
    drop(fixture);
    s.stop().await;
    Row {
        store: store_name.to_owned(),
        users,
        import,
        import_verdict,
        import_bound,
        rss_import,
        collect,
        reads,
        reconcile,
        reconcile_verdict: verdict(&job),
        reconcile_bound,
        rss_reconcile,
        rss_before_reconcile,
        rss_reads,
        rss_start,
        emulator_rss,
        paced: None,
        notes,
    }
}

/// The import again on a fresh store and emulator, Feishu's limits enforced, the engine
/// pacing at its defaults.
async fn run_paced(store_name: &str, store: Arc<dyn DirectoryStore>, p: &Params) -> Paced {
    let s = Served::start(store, p, true).await;
    let (_, connection) = s.setup().await;
    let before = calls_by_endpoint(&s.emulator_stats().await);
    let (import, job) = s.run_job(&connection, "import").await;
    let stats = s.emulator_stats().await;
    let bound = busiest_bound(&s.limits, &calls_by_endpoint(&stats), &before);
    let throttled = throttled(&stats);
    let emulator_rss = s.emu.peak_rss_mib();
    eprintln!(
        "  {store_name}: paced import {import:.2?}, verdict {}, {throttled} calls refused (429); \
         bound {} → {:.2}× its bound; emulator process peak RSS {emulator_rss:.0} MiB",
        verdict(&job),
        describe_bound(&bound),
        bound
            .as_ref()
            .map_or(0.0, |b| import.as_secs_f64() / b.seconds),
    );
    s.stop().await;
    Paced {
        import,
        verdict: verdict(&job),
        bound,
        throttled,
        emulator_rss,
    }
}

// ---- main ----------------------------------------------------------------------------------

#[tokio::main]
async fn main() {
    if std::env::var("RUST_LOG").is_ok() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let raw: Vec<String> = std::env::args().skip(1).collect();
    if std::env::var(ROLE_VAR).is_ok_and(|v| v == "emulator") {
        emulator_process(&raw).await;
        return;
    }
    let args: Vec<usize> = raw.iter().filter_map(|a| a.parse().ok()).collect();
    let p = Params {
        users: args.first().copied().unwrap_or(100_000),
        departments: args.get(1).copied().unwrap_or(5_000),
        groups: args.get(2).copied().unwrap_or(200),
        clients: args.get(3).copied().unwrap_or(16).max(1),
        seconds: args.get(4).copied().unwrap_or(5).max(1) as u64,
        paced: std::env::var("SCALE_BENCH_PACED").is_ok_and(|v| v == "1"),
        jobs_only: std::env::var("SCALE_BENCH_JOBS_ONLY").is_ok_and(|v| v == "1"),
    };
    let mut rows = Vec::new();

    // `SCALE_BENCH_SKIP_SQLITE=1`: PostgreSQL only, so that its peak RSS starts clean.
    if !std::env::var("SCALE_BENCH_SKIP_SQLITE").is_ok_and(|v| v == "1") {
        eprintln!("SQLite");
        let dir = tempfile::tempdir().unwrap();
        let sqlite = store::SqliteStore::open(&dir.path().join("scale.db"))
            .await
            .unwrap();
        let label = "SQLite (WAL, synchronous=FULL)";
        let mut row = run(label, Arc::new(sqlite), &p).await;
        if p.paced {
            let sqlite = store::SqliteStore::open(&dir.path().join("scale-paced.db"))
                .await
                .unwrap();
            row.paced = Some(run_paced(label, Arc::new(sqlite), &p).await);
        }
        rows.push(row);
    }
    if std::env::var("ORGSYNC_TEST_POSTGRES_URL").is_ok() {
        eprintln!("PostgreSQL");
        let label = "PostgreSQL 15 (local)";
        let pg = store::testing::pg_test_store().await.unwrap();
        let mut row = run(label, Arc::new(pg), &p).await;
        if p.paced {
            let pg = store::testing::pg_test_store().await.unwrap();
            row.paced = Some(run_paced(label, Arc::new(pg), &p).await);
        }
        rows.push(row);
    } else {
        eprintln!("ORGSYNC_TEST_POSTGRES_URL not set: PostgreSQL skipped");
    }
    if !p.paced {
        eprintln!("SCALE_BENCH_PACED not 1: the import under Feishu's rate limits skipped");
    }

    if p.jobs_only {
        return;
    }
    let section = render_section(&p, &rows);
    println!("{section}");
    write_section("BENCHMARKS.md", "## Scale", &section).unwrap();
}

fn render_section(p: &Params, rows: &[Row]) -> String {
    let before = "| figure | before |\n|---|---|\n\
        | user by id | 84 ms alone; under load 5 req/s, p50 1.45 s |\n\
        | department members (`limit=100`) | 8.6 s alone |\n\
        | `users?q=alice&limit=20` | 0.55 s alone; 2.7 req/s under load |\n\
        | `users?limit=100` | 0.87 s alone; 4 req/s under load |\n\
        | whole department tree | 11.6 s, 2.4 MB |\n\
        | import (paced, Feishu's limits on) | 410 s (1.34× its bound) |\n\
        | reconciliation (no change) | 371 s |\n\
        | peak RSS | 760 MB after the import; 1.07 GB after a no-change reconciliation |\n";
    let mut out = format!(
        "## Scale\n\n`cargo run --release -p orgsync-tests --example scale_bench -- {users} {departments} {groups} {clients} {seconds}`{paced} \
         on this machine ({cores} cores), release profile. The emulator runs in its own process (the bench again, \
         with `SCALE_BENCH_ROLE=emulator`; the tenant generated as `orgsync emulator --users {users} --departments \
         {departments} --groups {groups}` does), reached over HTTP only; the bench's process holds the HTTP server \
         (`server::RunningServer`) with the engine, and the clients. The import and the reconciliation are started \
         and polled through the admin API; their times run from the job's POST to the job finished. \"Limits lifted\": \
         the emulator's rate limits off and the engine's pacing off. The bound is the least time Feishu's limits \
         (50/s and 1,000/min per endpoint) allow for the calls the job made, counted by the emulator per endpoint: \
         per endpoint max(calls / 50 s, calls / 1,000 min), the busiest endpoint's.{paced_text}\n\n\
         Reads: each on its own, {alone} requests from one client (alone: their median), then {clients} concurrent \
         clients (reqwest, one HTTP/1.1 keep-alive connection each, admin token) for {seconds} s: requests/s, p50, \
         p99 and max are over the 200s under load; any other answer under load (or a timeout of {timeout} s) is an error. Ids are picked \
         at random from the imported ones (collected by walking the user list, the department tree and the group \
         list); open ids from the emulator's live users (its admin API, `/_emulator/users`); search terms are substrings (3+ characters) of real users' \
         names and English names, e-mail prefixes and `alice`; department children ask the root level (no \
         `parent`) one time in 20; members ask a first-level department one time in 10. The users page walk \
         follows `next` (as `after`) when the answer carries it, else pages by `offset` from a random page, \
         restarting at the end. Peak RSS is the VmHWM of the server's process (reset at the start of each \
         store, and again when the reconciliation starts): the server with the engine, and the {clients} load clients, which are small; not the emulator, \
         whose own process's peak RSS is given apart, below each store's tables.\n\n\
         **Before** (from the issue: SQLite, 100k users, 5k departments, 200 groups, 16 clients):\n\n{before}",
        users = p.users,
        departments = p.departments,
        groups = p.groups,
        clients = p.clients,
        seconds = p.seconds,
        paced = if p.paced {
            " with `SCALE_BENCH_PACED=1`"
        } else {
            ""
        },
        paced_text = if p.paced {
            " \"Paced\": the import again on a fresh store and emulator, the emulator enforcing Feishu's limits and \
             the engine pacing at `orgsync serve`'s defaults."
        } else {
            " The paced import (Feishu's limits on) was not run: set `SCALE_BENCH_PACED=1`."
        },
        cores = std::thread::available_parallelism().map_or(0, usize::from),
        alone = ALONE,
        timeout = REQUEST_TIMEOUT.as_secs(),
    );
    for r in rows {
        out.push_str(&format!(
            "\n### {}\n\n| read | requests/s | p50 | p99 | max | errors | alone | mean answer |\n|---|---|---|---|---|---|---|---|\n",
            r.store
        ));
        for read in &r.reads {
            let none = read.ok == 0;
            let dash_or = |d: Duration| if none { "–".to_owned() } else { ms(d) };
            out.push_str(&format!(
                "| {} | {:.1} | {} | {} | {} | {} | {} | {} |\n",
                read.name,
                read.rate,
                dash_or(read.p50),
                dash_or(read.p99),
                dash_or(read.max),
                read.errors,
                read.alone.map_or_else(|| "–".into(), ms),
                if none {
                    "–".into()
                } else {
                    bytes(read.mean_bytes)
                },
            ));
        }
        let ratio = |wall: Duration, b: &Option<Bound>| {
            b.as_ref().map_or_else(
                || "–".into(),
                |b| format!("{:.2}×", wall.as_secs_f64() / b.seconds),
            )
        };
        out.push_str(&format!(
            "\n| job | wall time | users/s | bound (busiest endpoint) | wall / bound | verdict | peak RSS |\n|---|---|---|---|---|---|---|\n\
             | import, limits lifted | {:.1} s | {:.0} | {} | {} | {} | {:.0} MiB |\n",
            r.import.as_secs_f64(),
            r.users as f64 / r.import.as_secs_f64(),
            describe_bound(&r.import_bound),
            ratio(r.import, &r.import_bound),
            r.import_verdict,
            r.rss_import,
        ));
        if let Some(paced) = &r.paced {
            out.push_str(&format!(
                "| import, paced (Feishu's limits on; {} calls refused) | {:.1} s | {:.0} | {} | **{}** | {} | – |\n",
                paced.throttled,
                paced.import.as_secs_f64(),
                r.users as f64 / paced.import.as_secs_f64(),
                describe_bound(&paced.bound),
                ratio(paced.import, &paced.bound),
                paced.verdict,
            ));
        }
        out.push_str(&format!(
            "| reconciliation, no change, limits lifted | {:.1} s | {:.0} | {} | {} | {} | {:.0} MiB |\n",
            r.reconcile.as_secs_f64(),
            r.users as f64 / r.reconcile.as_secs_f64(),
            describe_bound(&r.reconcile_bound),
            ratio(r.reconcile, &r.reconcile_bound),
            r.reconcile_verdict,
            r.rss_reconcile,
        ));
        out.push_str(&format!(
            "\n{} users; collecting the ids, terms, departments and groups through the API took {:.1} s. \
             The import's peak RSS is the peak from this store's start (resident then: {:.0} MiB, what an earlier run in this process kept); \
             peak RSS after the import and the reads under load: {:.0} MiB; the reconciliation's is the peak from its start, reset then (resident then: {:.0} MiB). \
             Emulator process peak RSS (the tenant; its own process, not in the figures above): {:.0} MiB{}.\n",
            r.users,
            r.collect.as_secs_f64(),
            r.rss_start,
            r.rss_reads,
            r.rss_before_reconcile,
            r.emulator_rss,
            r.paced.as_ref().map_or_else(String::new, |paced| format!(
                " ({:.0} MiB in the paced import's)",
                paced.emulator_rss
            )),
        ));
        let errors: Vec<String> = r
            .reads
            .iter()
            .filter_map(|read| {
                read.first_error
                    .as_ref()
                    .map(|e| format!("- {}: `{}`\n", read.name, e.replace('`', "'")))
            })
            .collect();
        for note in &r.notes {
            out.push_str(&format!("\n{note}\n"));
        }
        let slowest: Vec<String> = r
            .reads
            .iter()
            .filter_map(|read| {
                let (latency, request) = read.slowest_load.as_ref()?;
                Some(format!(
                    "- {}: {} `{}`\n",
                    read.name,
                    ms(*latency),
                    request.replace('`', "'")
                ))
            })
            .collect();
        if !slowest.is_empty() {
            out.push_str(&format!(
                "\nSlowest 200 of each read under load:\n\n{}",
                slowest.concat()
            ));
        }
        if !errors.is_empty() {
            out.push_str(&format!(
                "\nFirst error of each read that had errors:\n\n{}",
                errors.concat()
            ));
        }
    }
    out
}
