//! The `orgsync` binary: command-line wiring only. The work lives in the library crates.
#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// jemalloc, not glibc's malloc: glibc's per-thread arenas kept freed job and request memory
/// resident (docs/memory.md).
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod config;
mod demo_cmd;
mod emulator_cmd;
mod event_cmd;
mod files;
mod import_cmd;
mod instance;
mod serve_cmd;
mod webhook_echo;

/// orgsync — a self-hosted identity directory that mirrors a Feishu / Lark organization.
#[derive(Debug, Parser)]
#[command(name = "orgsync", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: event endpoint, admin API, console, event worker, reconciliation
    /// schedule. Configured by ./orgsync.toml (or --config) and ORGSYNC_* variables.
    Serve(serve_cmd::ServeArgs),
    /// Try orgsync in one command: a generated Feishu tenant, orgsync on SQLite, an import,
    /// then live changes pushed as events.
    Demo(demo_cmd::DemoArgs),
    /// Import (or reconcile) one connection now, with progress. Exit code: 0 complete,
    /// 1 failed, 2 partial or usage error.
    Import(import_cmd::ImportArgs),
    /// List the user pools in the database.
    Pools(import_cmd::ListArgs),
    /// List the connections in the database, with their callback URLs.
    Connections(import_cmd::ListArgs),
    /// Debug a real Feishu event delivery: decrypt a body, check a signature.
    #[command(subcommand)]
    Event(event_cmd::EventCommand),
    /// Serve a generated Feishu tenant (contact API, admin API, event pushes) on a local port.
    Emulator(emulator_cmd::EmulatorArgs),
}

fn main() -> ExitCode {
    // Everything orgsync creates (the database and its WAL, keys, ids) is private.
    files::restrict_umask();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve_cmd::run(args),
        Command::Demo(args) => demo_cmd::run(args),
        Command::Import(args) => import_cmd::run(args),
        Command::Pools(args) => import_cmd::run_pools(args),
        Command::Connections(args) => import_cmd::run_connections(args),
        Command::Event(cmd) => event_cmd::run(cmd),
        Command::Emulator(args) => {
            init_tracing(config::LogFormat::Text, "warn,emulator=info,orgsync=info");
            emulator_cmd::run(args)
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (else `default_filter`); JSON lines with
/// `log_format = "json"`.
fn init_tracing(format: config::LogFormat, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        config::LogFormat::Json => builder.json().try_init(),
        config::LogFormat::Text => builder.try_init(),
    };
}
