//! The `orgsync` binary: command-line wiring only. The work lives in the library crates.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod emulator_cmd;
mod event_cmd;

/// orgsync — a self-hosted identity directory that mirrors a Feishu / Lark organization.
#[derive(Debug, Parser)]
#[command(name = "orgsync", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Debug a real Feishu event delivery: decrypt a body, check a signature.
    #[command(subcommand)]
    Event(event_cmd::EventCommand),
    /// Serve a generated Feishu tenant (contact API, admin API, event pushes) on a local port.
    Emulator(emulator_cmd::EmulatorArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Event(cmd) => event_cmd::run(cmd),
        Command::Emulator(args) => {
            init_tracing();
            emulator_cmd::run(args)
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default: warnings, and orgsync's info).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,emulator=info,orgsync=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
