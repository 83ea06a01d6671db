//! `orgsync import`: runs an import (or `--reconcile`) of one connection in this process, on
//! the database `orgsync serve` uses, with live progress, then prints the summary.
//!
//! Exit codes: 0 the job is complete; 1 it failed (or could not start); 2 it was partial (no
//! deletions were made), or the command was used wrongly (unknown connection, bad config).
//!
//! Also `orgsync pools` and `orgsync connections`: what the database holds.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use clap::Args;
use directory::engine::{Engine, EngineConfig, EngineError};
use directory::ids::{ConnectionId, PoolId};
use directory::model::{Connection, JobKind, JobProgress, JobState, JobTrigger, SyncJob, Verdict};
use directory::store::DirectoryStore;
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::{self, Settings};
use crate::instance::Instance;
use crate::serve_cmd::recover_interrupted;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The connection: its id, `poolId/identifier`, or an identifier used in one pool only.
    #[arg(long)]
    connection: String,
    /// Reconcile (a later full pull) instead of an import; the work is the same.
    #[arg(long)]
    reconcile: bool,
    /// TOML configuration file, as for `orgsync serve`.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// TOML configuration file, as for `orgsync serve`.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
}

/// A failure and the exit code it deserves.
struct Failure(u8, anyhow::Error);

fn usage(e: anyhow::Error) -> Failure {
    Failure(2, e)
}

fn runtime_of<T>(f: impl std::future::Future<Output = Result<T, Failure>>) -> Result<T, Failure> {
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| Failure(1, anyhow!("cannot start the async runtime: {e}")))?;
    runtime.block_on(f)
}

fn exit(result: Result<u8, Failure>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(Failure(code, e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(code)
        }
    }
}

/// Opens the database `orgsync serve` created (refused if there is none), after making the
/// data directory and the database's files private.
async fn open_existing_store(settings: &Settings) -> Result<Arc<dyn DirectoryStore>, Failure> {
    if let Some(path) = settings.sqlite_file()
        && !path.exists()
    {
        return Err(usage(anyhow!(
            "database_url (ORGSYNC_DATABASE_URL): there is no database at {}; run `orgsync serve` first, or point data_dir / database_url at the one it uses",
            path.display()
        )));
    }
    settings.prepare_dirs().map_err(|e| Failure(1, e))?;
    settings.open_store().await.map_err(usage)
}

pub fn run(args: ImportArgs) -> ExitCode {
    let settings = match Settings::load(args.config.as_deref()) {
        Ok(s) => s,
        Err(e) => return exit(Err(usage(e))),
    };
    crate::init_tracing(settings.log_format, "warn,orgsync=info");
    exit(runtime_of(import(settings, args)))
}

async fn import(settings: Settings, args: ImportArgs) -> Result<u8, Failure> {
    let store = open_existing_store(&settings).await?;
    let instance = Instance::claim_or_share(&settings).map_err(|e| Failure(1, e))?;
    let env_key = std::env::var("ORGSYNC_MASTER_KEY").ok();
    let (key, _) = config::master_key(&settings, env_key.as_deref(), false).map_err(usage)?;
    let connection = resolve(&store, &args.connection).await?;
    let config = EngineConfig {
        instance: instance.id.clone(),
        ..EngineConfig::default()
    };
    recover_interrupted(&store, &key, &config, instance.is_exclusive())
        .await
        .map_err(|e| Failure(1, e))?;
    let engine = Engine::new(store.clone(), key, config);
    let kind = if args.reconcile {
        JobKind::Reconcile
    } else {
        JobKind::Import
    };
    let what = if args.reconcile {
        "Reconciliation"
    } else {
        "Import"
    };
    let job_id = match engine
        .start_job(&connection.id, kind, JobTrigger::Admin)
        .await
    {
        Ok(id) => id,
        Err(e @ EngineError::Busy(_)) => return Err(Failure(1, e.into())),
        Err(e) => return Err(Failure(1, anyhow!("cannot start the job: {e}"))),
    };
    eprintln!(
        "{what} of connection {:?} (pool {}) started: job {job_id}",
        connection.identifier, connection.pool_id
    );
    let job = watch_job(store.as_ref(), &job_id, what)
        .await
        .map_err(|e| Failure(1, e))?;
    print_summary(&job, what);
    Ok(match job.verdict {
        Some(Verdict::Complete) => 0,
        Some(Verdict::Partial) => 2,
        Some(Verdict::Failed) | None => 1,
    })
}

/// Finds a connection by id, `pool/identifier`, or an identifier unique across pools.
async fn resolve(store: &Arc<dyn DirectoryStore>, name: &str) -> Result<Connection, Failure> {
    let failed = |e: directory::store::StoreError| Failure(1, anyhow!("the store failed: {e}"));
    if let Some((pool, identifier)) = name.split_once('/') {
        return store
            .find_connection(&PoolId::from(pool), identifier)
            .await
            .map_err(failed)?
            .ok_or_else(|| {
                usage(anyhow!(
                    "--connection {name}: no connection {identifier:?} in user pool {pool}; list them with `orgsync connections`"
                ))
            });
    }
    if let Some(c) = store
        .get_connection(&ConnectionId::from(name))
        .await
        .map_err(failed)?
    {
        return Ok(c);
    }
    let mut matches: Vec<Connection> = store
        .list_connections(None)
        .await
        .map_err(failed)?
        .into_iter()
        .filter(|c| c.identifier == name)
        .collect();
    match matches.len() {
        1 => Ok(matches.remove(0)),
        0 => Err(usage(anyhow!(
            "--connection {name}: no such connection (give its id, poolId/identifier, or identifier); list them with `orgsync connections`"
        ))),
        n => Err(usage(anyhow!(
            "--connection {name}: {n} pools have a connection with this identifier; give poolId/{name}"
        ))),
    }
}

fn describe(p: &JobProgress) -> String {
    if p.phase == "applying" {
        format!("applying {}/{} actions", p.applied, p.planned)
    } else {
        format!(
            "{}: {} departments, {} users, {} groups read ({} pages)",
            p.phase, p.departments, p.users, p.groups, p.pages
        )
    }
}

/// Follows a job until it finishes: a progress bar on a terminal, a log line every two
/// seconds otherwise. Returns the finished job.
pub async fn watch_job(
    store: &dyn DirectoryStore,
    job_id: &directory::ids::JobId,
    what: &str,
) -> anyhow::Result<SyncJob> {
    let tty = std::io::stderr().is_terminal();
    let bar = tty.then(|| {
        let bar = ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    let started = Instant::now();
    let mut last_line = Instant::now();
    let mut last_text = String::new();
    let mut applying = false;
    loop {
        let job = store
            .get_job(job_id)
            .await
            .map_err(|e| anyhow!("cannot read job {job_id}: {e}"))?
            .ok_or_else(|| anyhow!("job {job_id} disappeared"))?;
        if job.state == JobState::Finished {
            if let Some(bar) = &bar {
                bar.finish_and_clear();
            }
            return Ok(job);
        }
        let p = &job.progress;
        let text = describe(p);
        match &bar {
            Some(bar) => {
                if p.phase == "applying" && !applying {
                    applying = true;
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{spinner} {elapsed:>4} applying [{bar:40}] {pos}/{len} actions",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                }
                if applying {
                    bar.set_length(p.planned);
                    bar.set_position(p.applied);
                } else {
                    bar.set_message(format!("{what}: {text}"));
                }
            }
            None => {
                if text != last_text && last_line.elapsed() >= Duration::from_secs(2) {
                    eprintln!("{what}: {text} ({:.0} s)", started.elapsed().as_secs_f64());
                    last_line = Instant::now();
                    last_text = text;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn verdict_word(v: Option<Verdict>) -> &'static str {
    match v {
        Some(Verdict::Complete) => "complete",
        Some(Verdict::Partial) => "partial",
        Some(Verdict::Failed) | None => "failed",
    }
}

/// The counts by action and result, and the verdict.
pub fn print_summary(job: &SyncJob, what: &str) {
    let seconds = job
        .finished_at
        .map_or(0.0, |f| (f - job.started_at) as f64 / 1000.0);
    println!(
        "{what} finished in {seconds:.1} s: {} ({} departments, {} users, {} groups read)",
        verdict_word(job.verdict),
        job.progress.departments,
        job.progress.users,
        job.progress.groups
    );
    for (action, results) in &job.counts {
        let results: Vec<String> = results.iter().map(|(r, n)| format!("{r} {n}")).collect();
        println!("  {action:<28} {}", results.join(", "));
    }
    if let Some(error) = &job.error {
        println!("  {}: {error}", verdict_word(job.verdict));
    }
    println!("verdict: {}", verdict_word(job.verdict));
}

pub fn run_pools(args: ListArgs) -> ExitCode {
    let settings = match Settings::load(args.config.as_deref()) {
        Ok(s) => s,
        Err(e) => return exit(Err(usage(e))),
    };
    exit(runtime_of(async move {
        let store = open_existing_store(&settings).await?;
        let pools = store
            .list_pools()
            .await
            .map_err(|e| Failure(1, anyhow!("the store failed: {e}")))?;
        println!("{:<28} NAME", "ID");
        for p in pools {
            println!("{:<28} {}", p.id, p.name);
        }
        Ok(0)
    }))
}

pub fn run_connections(args: ListArgs) -> ExitCode {
    let settings = match Settings::load(args.config.as_deref()) {
        Ok(s) => s,
        Err(e) => return exit(Err(usage(e))),
    };
    let public = settings
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", settings.listen));
    exit(runtime_of(async move {
        let store = open_existing_store(&settings).await?;
        let connections = store
            .list_connections(None)
            .await
            .map_err(|e| Failure(1, anyhow!("the store failed: {e}")))?;
        for c in connections {
            println!("{}  {}/{}  app {}", c.id, c.pool_id, c.identifier, c.app_id);
            println!(
                "    callback: {public}/connections/enterprise/{}/{}/events",
                c.identifier, c.pool_id
            );
        }
        Ok(0)
    }))
}
