//! `orgsync serve`: the server with its event worker and reconciliation schedule, configured
//! by [`crate::config`]. Stops on SIGINT / SIGTERM: stops accepting, drains in-flight
//! requests, lets the worker finish its round, exits 0.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use directory::engine::{Engine, EngineConfig};
use directory::ingest::Ingestor;
use directory::secrets::MasterKey;
use directory::store::DirectoryStore;
use directory::webhooks::deliver::{Deliverer, WebhookConfig};
use directory::worker::{Worker, WorkerConfig};
use feishu::envelope::DecodeOptions;
use server::{AdminToken, AppState, LoginLimits, ServerSettings};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{self, KeySource, Settings};
use crate::emulator_cmd::shutdown_signal;
use crate::instance::Instance;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file (default: ./orgsync.toml when present). ORGSYNC_* environment
    /// variables override it.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

/// What a [`Node`] needs besides the store and the key.
pub struct NodeOptions {
    pub engine: EngineConfig,
    pub worker: WorkerConfig,
    /// How often the schedule looks for due reconciliations.
    pub reconcile_check: Duration,
    pub admin_token: AdminToken,
    /// Event request checks (the UNVERIFIED protocol points).
    pub decode: DecodeOptions,
    /// Wrong admin tokens at the console login, per client address.
    pub login_limits: LoginLimits,
}

/// The engine, the ingestor, the event worker and the reconciliation schedule, running, with
/// the HTTP state built on them (bind first: the public URL may depend on the bound port).
pub struct Node {
    pub engine: Arc<Engine>,
    pub state: AppState,
    /// Events the worker applied since start.
    pub applied: Arc<AtomicU64>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Node {
    pub fn start(
        store: Arc<dyn DirectoryStore>,
        key: MasterKey,
        public_base_url: String,
        options: NodeOptions,
    ) -> Node {
        let engine = Engine::new(store.clone(), key.clone(), options.engine);
        let ingestor = Arc::new(Ingestor::new(store, key, options.decode));
        let committed = ingestor.committed();
        let secure_cookies = public_base_url.starts_with("https://");
        let state = AppState::new(
            engine.clone(),
            ingestor,
            ServerSettings {
                public_base_url,
                admin_token: options.admin_token,
                secure_cookies,
            },
        )
        .with_login_limits(options.login_limits);
        let (stop, stopped) = watch::channel(false);
        let applied = Arc::new(AtomicU64::new(0));
        // The `/readyz` guard lives in the loop's callback: a panic in a round drops it and
        // the instance reports not ready.
        let guard = state.health.worker_started();
        let counter = applied.clone();
        let worker = Worker::new(engine.clone(), options.worker.clone())
            .wake_on(committed)
            .spawn_with(stopped.clone(), move |stats| {
                let _alive = &guard;
                counter.fetch_add(stats.applied, Ordering::Relaxed);
            });
        let schedule =
            directory::schedule::spawn(engine.clone(), options.reconcile_check, stopped.clone());
        let webhooks = Deliverer::new(engine.clone()).spawn(stopped);
        Node {
            engine,
            state,
            applied,
            stop,
            tasks: vec![worker, schedule, webhooks],
        }
    }

    /// Stops the worker, the schedule and webhook deliveries (each finishes what it is
    /// doing) and waits.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "a background task failed");
            }
        }
    }
}

/// Before serving: ends, as failed, the jobs a stopped process of this instance left running
/// and frees the leases it held (only when `exclusive`: no other process runs as this
/// instance), and any instance's running jobs whose lease expired. The engine logs one line
/// per job.
pub async fn recover_interrupted(
    store: &Arc<dyn DirectoryStore>,
    key: &MasterKey,
    config: &EngineConfig,
    exclusive: bool,
) -> anyhow::Result<()> {
    let engine = Engine::new(store.clone(), key.clone(), config.clone());
    let ended = if exclusive {
        engine.recover_after_restart().await
    } else {
        engine.end_orphaned_jobs().await
    }
    .context("cannot end the jobs a stopped process left running; is the database reachable?")?;
    if !ended.is_empty() {
        tracing::warn!(
            jobs = ended.len(),
            "sync jobs left running by a stopped process now show as failed; start them again"
        );
    }
    Ok(())
}

pub fn run(args: ServeArgs) -> ExitCode {
    let settings = match Settings::load(args.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    crate::init_tracing(
        settings.log_format,
        "warn,orgsync=info,server=info,directory=info",
    );
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    tracing::info!(config = %settings.source, "starting orgsync {}", env!("CARGO_PKG_VERSION"));
    settings.prepare_dirs()?;
    let instance = Instance::claim(&settings)?;
    tracing::info!(instance = %instance.id, "instance id");
    let env_key = std::env::var("ORGSYNC_MASTER_KEY").ok();
    let (key, key_source) = config::master_key(&settings, env_key.as_deref(), true)?;
    match &key_source {
        KeySource::Env => tracing::info!("master key from ORGSYNC_MASTER_KEY"),
        KeySource::File(path) => tracing::info!(path = %path.display(), "master key from file"),
        KeySource::Generated(path) => tracing::warn!(
            path = %path.display(),
            "generated a new master key (mode 0600): back it up; without it the stored App Secrets and event keys cannot be opened"
        ),
    }
    let env_token = std::env::var("ORGSYNC_ADMIN_TOKEN").ok();
    let (admin_token, new_token) = config::admin_token(&settings, env_token.as_deref())?;
    let store = settings.open_store().await?;
    tracing::info!(database = %config::redact(&settings.database_url), backend = ?store.backend(), "store opened");
    let engine = EngineConfig {
        instance: instance.id.clone(),
        webhooks: WebhookConfig {
            allow_private_targets: settings.webhooks_allow_private_targets,
            ..WebhookConfig::default()
        },
        ..EngineConfig::default()
    };
    recover_interrupted(&store, &key, &engine, instance.is_exclusive()).await?;

    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| {
            format!(
                "listen (ORGSYNC_LISTEN) = {}: cannot bind; is another process using the port? Choose another address",
                settings.listen
            )
        })?;
    let addr: SocketAddr = listener.local_addr()?;
    let public = settings
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let mut ldap = Vec::new();
    if let Some(l) = &settings.ldap {
        let shared = Arc::new(ldap::session::Shared::new(
            store.clone(),
            key.clone(),
            ldap::session::Settings {
                anonymous: l.anonymous,
                ..Default::default()
            },
        ));
        let tls = match &l.tls {
            None => None,
            Some((addr, cert, key)) => Some((
                *addr,
                ldap::server::tls_acceptor(cert, key)
                    .map_err(|e| anyhow::anyhow!("ldap_tls_cert_file / ldap_tls_key_file: {e}"))?,
            )),
        };
        let listeners = l
            .listen
            .map(|a| (a, None, "ldap_listen (ORGSYNC_LDAP_LISTEN)"))
            .into_iter()
            .chain(tls.map(|(a, t)| (a, Some(t), "ldap_tls_listen (ORGSYNC_LDAP_TLS_LISTEN)")));
        for (addr, tls, key_name) in listeners {
            let secure = tls.is_some();
            let running = ldap::server::RunningLdap::start_with(
                addr,
                shared.clone(),
                l.limits.clone(),
                tls,
            )
            .await
            .with_context(|| {
                format!(
                    "{key_name} = {addr}: cannot bind; is another process using the port? Choose another address"
                )
            })?;
            ldap.push((running, secure));
        }
    }
    let node = Node::start(
        store,
        key,
        public.clone(),
        NodeOptions {
            engine,
            worker: WorkerConfig::default(),
            reconcile_check: Duration::from_secs(settings.reconcile_check_secs),
            admin_token,
            decode: settings.decode.clone(),
            login_limits: settings.login_limits,
        },
    );

    let stop = shutdown_signal();
    if let Some(token) = new_token {
        print_new_token(&token, &settings);
    }
    println!("orgsync listening on http://{addr}");
    println!("  console:   {public}/console");
    println!("  API docs:  {public}/api/v1/docs");
    println!("  callbacks: {public}/connections/enterprise/{{identifier}}/{{userPoolId}}/events");
    for (l, secure) in &ldap {
        println!(
            "  LDAP:      {}://{}  (bind as cn=<credential name>,ou=services,o=<pool id>,dc=orgsync with a token that has ldap:search)",
            if *secure { "ldaps" } else { "ldap" },
            l.addr
        );
    }
    tracing::info!(%addr, public_url = %public, "listening");

    let served = server::serve(listener, node.state.clone(), async {
        stop.await;
        tracing::info!("shutting down: draining requests");
    })
    .await;
    for (l, _) in ldap {
        l.stop().await;
    }
    node.stop().await;
    served.context("the HTTP server failed")?;
    tracing::info!("stopped");
    drop(instance);
    Ok(())
}

fn print_new_token(token: &str, settings: &Settings) {
    let line = "=".repeat(78);
    println!("{line}");
    println!("Admin token (shown only this once; only its SHA-256 is kept):");
    println!();
    println!("    {token}");
    println!();
    println!("Use it as `Authorization: Bearer <token>` for /api/v1 and to sign in to /console.");
    println!(
        "Lost it? Delete {} and restart to get a new one, or set ORGSYNC_ADMIN_TOKEN.",
        settings
            .data_dir
            .join(config::ADMIN_TOKEN_HASH_FILE)
            .display()
    );
    println!("{line}");
}
