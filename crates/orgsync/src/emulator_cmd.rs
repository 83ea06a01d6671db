//! `orgsync emulator`: serves a generated Feishu tenant on a local port, for trying orgsync
//! without a Feishu account and for driving tests and benchmarks by hand.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use emulator::generate::{GenerateConfig, generate};
use emulator::hub::push_target;
use emulator::pusher::PushConfig;
use emulator::ratelimit::RateLimitConfig;
use emulator::tenant::AppRecord;
use emulator::{Emulator, EmulatorConfig};
use sha2::{Digest, Sha256};

#[derive(Debug, Args)]
pub struct EmulatorArgs {
    /// Address to serve the Open API and the admin API on.
    #[arg(long, default_value = "127.0.0.1:9100")]
    listen: SocketAddr,
    /// The app's App ID (default: derived from the seed, `cli_` + 16 hex).
    #[arg(long)]
    app_id: Option<String>,
    /// The app's App Secret (default: derived from the seed).
    #[arg(long)]
    app_secret: Option<String>,
    /// Users in the generated tenant.
    #[arg(long, default_value_t = 2000)]
    users: usize,
    /// Departments in the generated tenant.
    #[arg(long, default_value_t = 120)]
    departments: usize,
    /// Depth of the department tree.
    #[arg(long, default_value_t = 5)]
    depth: usize,
    /// User groups in the generated tenant.
    #[arg(long, default_value_t = 12)]
    groups: usize,
    /// Seed of the generated tenant: the same seed gives the same organization.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Request URL to push events to (as set under Events & Callbacks in the Feishu console).
    #[arg(long)]
    push_url: Option<String>,
    /// Encrypt Key: events are encrypted and signed with it.
    #[arg(long)]
    encrypt_key: Option<String>,
    /// Verification Token carried in every event (default: derived from the seed).
    #[arg(long)]
    verification_token: Option<String>,
    /// Multiplies Feishu's limits of 50 requests/s and 1000/min per endpoint; 0 disables them.
    #[arg(long, default_value_t = 1.0)]
    rate_limit_scale: f64,
    /// Multiplies the re-push schedule (15 s, 5 min, 1 h, 6 h) of failed deliveries.
    #[arg(long, default_value_t = 1.0)]
    push_time_scale: f64,
    /// Also send legacy 1.0 events.
    #[arg(long)]
    events_v1: bool,
    /// Base URL of the avatar images in user objects (default: this emulator's address, which
    /// serves them); set it when browsers reach the emulator under another name.
    #[arg(long, value_name = "URL")]
    avatar_base: Option<String>,
}

/// A value derived from the seed, so a restarted emulator keeps its credentials.
fn derived(seed: u64, what: &str, len: usize) -> String {
    let mut s = hex::encode(Sha256::digest(format!("orgsync-emulator|{seed}|{what}")));
    s.truncate(len);
    s
}

pub fn run(args: EmulatorArgs) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: EmulatorArgs) -> anyhow::Result<()> {
    if args.users == 0 && args.departments == 0 {
        anyhow::bail!("--users and --departments are both 0: there would be nothing to serve");
    }
    if !(args.rate_limit_scale >= 0.0 && args.push_time_scale >= 0.0) {
        anyhow::bail!("--rate-limit-scale and --push-time-scale must be 0 or more");
    }
    let app_id = args
        .app_id
        .clone()
        .unwrap_or_else(|| format!("cli_{}", derived(args.seed, "app_id", 16)));
    if !app_id.starts_with("cli_") {
        anyhow::bail!(
            "--app-id must look like a Feishu App ID: cli_ followed by letters and digits"
        );
    }
    let mut app = AppRecord::new(
        app_id,
        args.app_secret
            .clone()
            .unwrap_or_else(|| derived(args.seed, "app_secret", 32)),
    );
    app.verification_token = args
        .verification_token
        .clone()
        .unwrap_or_else(|| derived(args.seed, "verification_token", 32));
    app.encrypt_key = args.encrypt_key.clone().filter(|k| !k.is_empty());
    app.request_url = args.push_url.clone().filter(|u| !u.is_empty());
    app.events_v1 = args.events_v1;

    let generate_config = GenerateConfig {
        seed: args.seed,
        users: args.users,
        departments: args.departments,
        max_depth: args.depth.max(1),
        groups: args.groups,
        ..GenerateConfig::default()
    };
    let tenant = generate(&generate_config, vec![app.clone()]);
    let (users, active, departments, groups) = (
        tenant.users.len(),
        tenant.active_user_count(),
        tenant.departments.len(),
        tenant.groups.len(),
    );
    let mut config = EmulatorConfig::new(tenant);
    config.bind = args.listen;
    config.seed = args.seed;
    if let Some(base) = args.avatar_base.as_deref().map(str::trim) {
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            anyhow::bail!(
                "--avatar-base {base:?} is not an http(s) URL: give how browsers reach this emulator, e.g. http://emulator.example.com:9100"
            );
        }
        config.avatar_base = Some(base.to_owned());
    }
    config.rate_limit = if args.rate_limit_scale == 0.0 {
        RateLimitConfig::disabled()
    } else {
        RateLimitConfig::scaled(args.rate_limit_scale)
    };
    config.push = PushConfig {
        time_scale: args.push_time_scale,
        seed: args.seed,
        ..PushConfig::default()
    };
    let emu = Emulator::start(config)
        .await
        .with_context(|| format!("cannot serve on {}", args.listen))?;
    let base = emu.base_url();
    println!("Feishu emulator listening on {base}");
    println!(
        "  tenant:             {users} users ({active} active), {departments} departments, {groups} groups (seed {})",
        args.seed
    );
    println!("  App ID:             {}", app.app_id);
    println!("  App Secret:         {}", app.app_secret);
    println!("  Verification Token: {}", app.verification_token);
    println!(
        "  Encrypt Key:        {}",
        app.encrypt_key
            .as_deref()
            .unwrap_or("(none: events are sent in plaintext)")
    );
    println!("  Open API base URL:  {base}  (use it as the connection's base URL)");
    println!("  Admin API:          {base}/_emulator  (see the README)");
    match push_target(&app) {
        Some(target) => {
            let mode = if target.encrypt_key.is_some() {
                "encrypted"
            } else {
                "plaintext"
            };
            println!("  Events:             pushed to {} ({mode})", target.url);
            match emu.state().events.pusher().verify_url(&target).await {
                Ok(()) => println!("  URL check:          passed"),
                Err(e) => println!(
                    "  URL check:          failed ({e}); events are pushed anyway and re-pushed on failure"
                ),
            }
        }
        None => println!("  Events:             not pushed (no --push-url)"),
    }
    let stop = shutdown_signal();
    println!("Press Ctrl-C to stop.");
    stop.await;
    println!("stopping");
    emu.shutdown()
        .await
        .context("the emulator did not stop cleanly")?;
    Ok(())
}

/// Ctrl-C or SIGTERM. The handlers are installed when this is called (inside the runtime),
/// not when the future is first polled: call it before announcing readiness, so a signal
/// sent right after the announcement is not missed (and does not kill the process).
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{Signal, SignalKind, signal};
        async fn wait(s: Option<Signal>) {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            tokio::select! {
                () = wait(term) => {},
                () = wait(int) => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
