//! `orgsync demo`: everything in one process, to see orgsync work in a minute. A generated
//! Feishu tenant (the emulator), orgsync on SQLite, a user pool with a connection to the
//! emulator (encrypted events: Encrypt Key and Verification Token on both sides), the
//! emulator subscribed to the connection's callback URL through Feishu's URL check, a full
//! import, and then a change to the tenant every few seconds, pushed as events and applied.
//!
//! The tenant's live changes are the everyday ones (hires, leavers, profile updates, moves,
//! department and group changes; never the app's contact scope): see
//! [`MutationProfile::Ordinary`].
//!
//! Lines meant for people and scripts: `orgsync: URL`, `import finished: 2,000 users (1,940
//! active), 121 departments, 12 groups; verdict complete in 4.2 s` and `status: 2,000 users,
//! 1,940 active; 121 departments; 12 groups; events: 35 pushed, 35 applied; 14 changes`
//! (`; 3 deletions parked for review` is added when there are any).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use clap::Args;
use directory::admin::{Admin, NewConnection, NewCredential, NewWebhook, counted, thousands};
use directory::engine::EngineConfig;
use directory::ids::PoolId;
use directory::model::{JobKind, JobTrigger, ParkedState, UserStatus};
use directory::store::{DirectoryStore, ParkedFilter, UserQuery};
use directory::worker::WorkerConfig;
use emulator::generate::{GenerateConfig, generate};
use emulator::hub::push_target;
use emulator::mutate::MutationProfile;
use emulator::tenant::AppRecord;
use emulator::{Emulator, EmulatorConfig};
use rand::{Rng as _, SeedableRng as _};
use server::AdminToken;

use crate::config::{self, Settings};
use crate::emulator_cmd::shutdown_signal;
use crate::import_cmd::{print_summary, verdict_word, watch_job};
use crate::serve_cmd::{Node, NodeOptions};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Users in the generated tenant.
    #[arg(long, default_value_t = 2000)]
    users: usize,
    /// Departments in the generated tenant.
    #[arg(long, default_value_t = 120)]
    departments: usize,
    /// User groups in the generated tenant.
    #[arg(long, default_value_t = 12)]
    groups: usize,
    /// Seed of the tenant and of its changes: the same seed gives the same run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Port of orgsync (console, API, event endpoint) on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Port of the Feishu emulator on 127.0.0.1; 0 (default) picks a free one.
    #[arg(long, default_value_t = 0)]
    emulator_port: u16,
    /// Where the demo keeps its database and keys (default: a temporary directory, removed
    /// on exit).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// How often the tenant changes: seconds (`3`, `0.5`) or with a unit (`500ms`, `2s`, `1m`).
    #[arg(long, default_value = "3", value_parser = parse_interval)]
    change_every: Duration,
    /// Also start a local webhook receiver, subscribe it to the pool's change feed, and print
    /// every request it gets after checking its signature (Standard Webhooks).
    #[arg(long)]
    webhook_echo: bool,
    /// Port of the LDAP view on 127.0.0.1 (plain LDAP); 0 picks a free one.
    #[arg(long, default_value_t = 3389)]
    ldap_port: u16,
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration: use e.g. 3, 0.5, 500ms, 2s or 1m"))?;
    let secs = value * scale;
    if !(0.05..=86_400.0).contains(&secs) {
        return Err(format!(
            "{text:?} is out of range: give between 50ms and 24h"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

pub fn run(args: DemoArgs) -> ExitCode {
    crate::init_tracing(
        config::LogFormat::Text,
        "warn,orgsync=info,server=warn,directory=warn,emulator=warn",
    );
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(demo(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A random printable secret.
fn secret(rng: &mut impl rand::Rng, len: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..len)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    if args.users == 0 {
        anyhow::bail!("--users is 0: the demo needs people to mirror; try --users 300");
    }
    // The data directory: the given one, or a temporary one removed on exit.
    let (data_dir, _temp) = match &args.data_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("--data-dir {}: cannot create it", dir.display()))?;
            (dir.clone(), None)
        }
        None => {
            let temp = tempfile::Builder::new()
                .prefix("orgsync-demo-")
                .tempdir()
                .context("cannot create a temporary directory; give --data-dir")?;
            (temp.path().to_path_buf(), Some(temp))
        }
    };
    let settings = Settings::load_from(
        None,
        &[(
            "ORGSYNC_DATA_DIR".to_owned(),
            data_dir.to_string_lossy().into_owned(),
        )],
    )?;

    // The Feishu side: a generated tenant and one self-built app with encrypted events.
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let mut app = AppRecord::new(
        format!("cli_{:016x}", rng.random::<u64>()),
        secret(&mut rng, 32),
    );
    app.encrypt_key = Some(secret(&mut rng, 24));
    app.verification_token = secret(&mut rng, 32);
    app.user_group_events = true;
    let tenant = generate(
        &GenerateConfig {
            seed: args.seed,
            users: args.users,
            departments: args.departments,
            groups: args.groups,
            ..GenerateConfig::default()
        },
        vec![app.clone()],
    );
    let (users, left, departments, groups) = (
        tenant.users.len(),
        tenant.users.len() - tenant.active_user_count(),
        tenant.departments.len(),
        tenant.groups.len(),
    );
    let mut emu_config = EmulatorConfig::new(tenant);
    emu_config.bind = SocketAddr::from((Ipv4Addr::LOCALHOST, args.emulator_port));
    emu_config.seed = args.seed;
    let emu = Emulator::start(emu_config)
        .await
        .with_context(|| format!("--emulator-port {}: cannot serve there", args.emulator_port))?;

    // orgsync: SQLite in the data directory, a fresh admin token for this run.
    settings.prepare_dirs()?;
    let instance = crate::instance::Instance::claim(&settings)?;
    let (key, _) = config::master_key(&settings, None, true)?;
    let store = settings.open_store().await?;
    let engine = EngineConfig {
        instance: instance.id.clone(),
        // The demo's receivers run on this machine.
        webhooks: directory::webhooks::deliver::WebhookConfig {
            allow_private_targets: true,
            ..Default::default()
        },
        ..EngineConfig::default()
    };
    crate::serve_cmd::recover_interrupted(&store, &key, &engine, instance.is_exclusive()).await?;
    let (admin_token, token_text) = AdminToken::generate();
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, args.port))
        .await
        .with_context(|| {
            format!(
                "--port {}: cannot bind 127.0.0.1:{}; is another process using it? Try --port 0",
                args.port, args.port
            )
        })?;
    let addr = listener.local_addr()?;
    let url = format!("http://{addr}");
    let ldap = ldap::server::RunningLdap::start(
        SocketAddr::from((Ipv4Addr::LOCALHOST, args.ldap_port)),
        std::sync::Arc::new(ldap::session::Shared::new(
            store.clone(),
            key.clone(),
            ldap::session::Settings::default(),
        )),
        ldap::server::Limits::default(),
    )
    .await
    .with_context(|| {
        format!(
            "--ldap-port {}: cannot bind 127.0.0.1:{}; is another process using it? Try --ldap-port 0",
            args.ldap_port, args.ldap_port
        )
    })?;
    let node = Node::start(
        store.clone(),
        key,
        url.clone(),
        NodeOptions {
            engine,
            worker: WorkerConfig::default(),
            reconcile_check: Duration::from_secs(60),
            admin_token,
            decode: feishu::envelope::DecodeOptions::default(),
            login_limits: server::LoginLimits::default(),
        },
    );
    // Signals from here on stop the demo cleanly.
    let (signalled, stopping) = tokio::sync::watch::channel(false);
    let signal = shutdown_signal();
    tokio::spawn(async move {
        signal.await;
        let _ = signalled.send(true);
    });
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::serve(listener, node.state.clone(), async move {
        let _ = server_stopped.await;
    }));

    println!("orgsync demo");
    // Feishu lists no one who left: the import mirrors the others.
    println!(
        "  Feishu emulator: {}  ({} users of whom {} left, {} departments, {} groups, seed {})",
        emu.base_url(),
        thousands(users as u64),
        thousands(left as u64),
        thousands(departments as u64),
        thousands(groups as u64),
        args.seed
    );
    println!("orgsync: {url}");
    println!("  console:     {url}/console   (sign in with the admin token)");
    println!("  admin token: {token_text}");
    println!("  API docs:    {url}/api/v1/docs");
    println!("  metrics:     {url}/metrics");
    println!(
        "  data:        {}{}",
        data_dir.display(),
        if args.data_dir.is_none() {
            "  (removed on exit)"
        } else {
            ""
        }
    );

    let result = run_demo(&args, &emu, &app, &node, &store, ldap.addr, stopping).await;

    println!("stopping");
    ldap.stop().await;
    let _ = stop_server.send(());
    let served = server.await;
    node.stop().await;
    emu.shutdown()
        .await
        .map_err(|e| anyhow!("the emulator did not stop cleanly: {e}"))?;
    drop(instance);
    result?;
    match served {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(anyhow!("the HTTP server failed: {e}")),
        Err(e) => Err(anyhow!("the HTTP server task failed: {e}")),
    }
}

/// Everything between start and stop; returns when a signal arrives.
async fn run_demo(
    args: &DemoArgs,
    emu: &Emulator,
    app: &AppRecord,
    node: &Node,
    store: &std::sync::Arc<dyn directory::store::DirectoryStore>,
    ldap: SocketAddr,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let admin: &Admin = &node.state.admin;
    let pool = admin
        .create_pool("Demo")
        .await
        .map_err(|e| anyhow!("cannot create the user pool: {e}"))?;
    let connection = admin
        .create_connection(
            &pool.id,
            NewConnection {
                identifier: "feishu-demo".into(),
                display_name: Some("Feishu (emulator)".into()),
                provider: None,
                base_url: Some(emu.base_url()),
                app_id: app.app_id.clone(),
                app_secret: app.app_secret.clone(),
                encrypt_key: app.encrypt_key.clone(),
                verification_token: Some(app.verification_token.clone()),
                settings: None,
            },
        )
        .await
        .map_err(|e| anyhow!("cannot create the connection: {e}"))?;
    println!(
        "Connection {:?} in pool {:?} ({}), encrypted events",
        connection.identifier, pool.name, pool.id
    );
    println!("  callback URL: {}", connection.callback_url);

    // As an admin does in the Feishu console: save the request URL, which runs the URL check.
    let target = emu.with_tenant_mut(|t| {
        t.apps.get_mut(&app.app_id).and_then(|a| {
            a.request_url = Some(connection.callback_url.clone());
            push_target(a)
        })
    });
    let target = target.ok_or_else(|| anyhow!("the emulator lost its app"))?;
    match emu.state().events.pusher().verify_url(&target).await {
        Ok(()) => println!("  URL check: passed; the emulator now pushes every change to orgsync"),
        Err(e) => println!("  URL check: FAILED ({e}); events will be re-pushed"),
    }

    // The import, with progress.
    let started = Instant::now();
    let job_id = node
        .engine
        .start_job(&connection.id, JobKind::Import, JobTrigger::Admin)
        .await
        .map_err(|e| anyhow!("cannot start the import: {e}"))?;
    let job = tokio::select! {
        job = watch_job(store.as_ref(), &job_id, "import") => job?,
        _ = stopping.wait_for(|s| *s) => return Ok(()),
    };
    print_summary(&job, "Import");
    let counts = DirectoryCounts::read(store.as_ref(), &pool.id).await?;
    println!(
        "import finished: {} users ({} active), {} departments, {} groups; verdict {} in {:.1} s",
        thousands(counts.users),
        thousands(counts.active),
        thousands(counts.departments),
        thousands(counts.groups),
        verdict_word(job.verdict),
        started.elapsed().as_secs_f64()
    );
    let _echo = downstream(
        args,
        admin,
        store,
        &pool.id,
        &node.state.settings.public_base_url,
        ldap,
    )
    .await?;
    println!(
        "Changing the tenant every {:?}; each change is pushed to orgsync as events. Ctrl-C to stop.",
        args.change_every
    );

    // The live part: everyday changes, pushed as events and applied by the worker.
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed ^ 0x5eed);
    let pushed_before = emu.state().events.pusher().stats().delivered;
    let mut changes = 0u64;
    let mut ticker = tokio::time::interval(args.change_every);
    ticker.tick().await;
    let mut last_status = String::new();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stopping.wait_for(|s| *s) => return Ok(()),
        }
        let (made, _) = emu.state().mutate_with(|t| {
            Ok::<_, std::convert::Infallible>(
                t.random_mutation_of(MutationProfile::Ordinary, &mut rng),
            )
        })?;
        changes += made.len() as u64;
        let counts = DirectoryCounts::read(store.as_ref(), &pool.id).await?;
        let parked = store
            .count_parked(&ParkedFilter::pool(&pool.id).state(ParkedState::Pending))
            .await
            .map_err(|e| anyhow!("cannot count the parked deletions: {e}"))?;
        let pushed = emu.state().events.pusher().stats().delivered - pushed_before;
        let mut status = format!(
            "status: {} users, {} active; {} departments; {} groups; events: {} pushed, {} applied; {}",
            thousands(counts.users),
            thousands(counts.active),
            thousands(counts.departments),
            thousands(counts.groups),
            thousands(pushed),
            thousands(node.applied.load(Ordering::Relaxed)),
            counted(changes, "change"),
        );
        // The everyday changes never park anything; say so loudly if something did.
        if parked > 0 {
            status.push_str(&format!(
                "; {} parked for review (console: Parked deletions)",
                counted(parked, "deletion")
            ));
        }
        if status != last_status {
            println!("{status}");
            last_status = status;
        }
    }
}

/// An app password for the first active person, with an `ldapwhoami` line that logs in as
/// that person the way GitLab or Grafana would (docs/ldap.md, "App passwords").
async fn person_login(
    admin: &Admin,
    store: &std::sync::Arc<dyn directory::store::DirectoryStore>,
    pool: &PoolId,
    base: &directory::dn::Dn,
    ldap: SocketAddr,
) -> anyhow::Result<()> {
    let query = directory::store::UserQuery {
        status: Some(directory::model::UserStatus::Active),
        ..Default::default()
    };
    let first = store
        .list_users(pool, &query, &directory::store::KeyPage::first(1))
        .await
        .map_err(|e| anyhow!("cannot read the demo's users: {e}"))?;
    let Some(user) = first.items.into_iter().next() else {
        return Ok(());
    };
    let settings = admin
        .ldap_settings(pool)
        .await
        .map_err(|e| anyhow!("cannot read the LDAP settings: {e}"))?;
    let login = store
        .user_logins(pool, settings.login, std::slice::from_ref(&user.id))
        .await
        .map_err(|e| anyhow!("cannot read a login: {e}"))?
        .remove(&user.id)
        .unwrap_or_else(|| user.id.0.clone());
    let created = admin
        .create_app_password(
            pool,
            &user.id,
            directory::admin::NewAppPassword {
                label: "demo".into(),
                expires_in_days: None,
            },
        )
        .await
        .map_err(|e| anyhow!("cannot issue the demo's app password: {e}"))?;
    println!(
        "  log in as a person ({}, uid {login}) with an app password, as GitLab or Grafana would:",
        user.profile.name.as_deref().unwrap_or("unnamed")
    );
    println!(
        "    ldapwhoami -x -H ldap://{ldap} -D 'uid={login},ou=people,{base}' -w '{}'",
        created.password
    );
    Ok(())
}

/// What a downstream system uses: a service credential with the line that follows the
/// change feed, and with `--webhook-echo` a receiver subscribed to it (kept while it lives).
async fn downstream(
    args: &DemoArgs,
    admin: &Admin,
    store: &std::sync::Arc<dyn directory::store::DirectoryStore>,
    pool: &PoolId,
    url: &str,
    ldap: SocketAddr,
) -> anyhow::Result<Option<crate::webhook_echo::Echo>> {
    let created = admin
        .create_credential(
            pool,
            NewCredential {
                name: "demo-reader".into(),
                scopes: vec![
                    "directory:read".into(),
                    "events:read".into(),
                    "ldap:search".into(),
                ],
                expires_in_days: None,
            },
        )
        .await
        .map_err(|e| anyhow!("cannot create the demo's service credential: {e}"))?;
    let cursor = admin
        .as_of_cursor(pool)
        .await
        .map_err(|e| anyhow!("cannot read the change feed: {e}"))?;
    println!(
        "Downstream: service credential \"demo-reader\" (directory:read, events:read, ldap:search)"
    );
    println!("  token:       {}", created.token);
    println!(
        "  follow the change feed (each call waits up to 30 s for the next events; pass its next_cursor as after):"
    );
    println!(
        "    curl -s -H 'Authorization: Bearer {}' '{url}/api/v1/pools/{pool}/events?after={cursor}&wait=30'",
        created.token
    );
    let base = ldap::tree::PoolTree::default_base(pool);
    println!("  search the LDAP view (Debian: apt install ldap-utils):");
    println!(
        "    ldapsearch -x -H ldap://{ldap} -D 'cn=demo-reader,ou=services,{base}' -w '{}' -b 'ou=people,{base}' -E pr=100/noprompt '(objectClass=person)' uid cn mail",
        created.token
    );
    person_login(admin, store, pool, &base, ldap).await?;
    if !args.webhook_echo {
        println!(
            "  (--webhook-echo also pushes it to a local receiver that checks each signature)"
        );
        return Ok(None);
    }
    let echo = crate::webhook_echo::Echo::start().await?;
    let endpoint = admin
        .create_webhook(
            pool,
            NewWebhook {
                url: echo.url(),
                description: "orgsync demo --webhook-echo".into(),
                types: Vec::new(),
            },
        )
        .await
        .map_err(|e| anyhow!("cannot create the demo's webhook endpoint: {e}"))?;
    echo.set_secret(&endpoint.secret)?;
    println!(
        "  webhook echo: {} receives the feed, signed with {}",
        echo.url(),
        endpoint.secret
    );
    Ok(Some(echo))
}

/// What the status line shows of the directory, from the store's count queries (never by
/// loading the objects).
struct DirectoryCounts {
    users: u64,
    active: u64,
    departments: u64,
    groups: u64,
}

impl DirectoryCounts {
    async fn read(store: &dyn DirectoryStore, pool: &PoolId) -> anyhow::Result<Self> {
        let failed = |e: directory::store::StoreError| anyhow!("cannot count the directory: {e}");
        let active = UserQuery {
            status: Some(UserStatus::Active),
            ..UserQuery::default()
        };
        Ok(Self {
            users: store
                .count_users(pool, &UserQuery::default())
                .await
                .map_err(failed)?,
            active: store.count_users(pool, &active).await.map_err(failed)?,
            departments: store.count_departments(pool).await.map_err(failed)?,
            groups: store.count_groups(pool).await.map_err(failed)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_have_thousands_separators() {
        for (n, text) in [
            (0, "0"),
            (7, "7"),
            (999, "999"),
            (1_000, "1,000"),
            (1_940, "1,940"),
            (100_000, "100,000"),
            (1_234_567, "1,234,567"),
            (u64::MAX, "18,446,744,073,709,551,615"),
        ] {
            assert_eq!(thousands(n), text);
        }
        assert_eq!(counted(1, "change"), "1 change");
        assert_eq!(counted(1_200, "change"), "1,200 changes");
        assert_eq!(counted(0, "deletion"), "0 deletions");
    }
}
