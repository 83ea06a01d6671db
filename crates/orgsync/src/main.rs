//! The `orgsync` binary: command-line wiring only. The work lives in the library crates.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Event(cmd) => event_cmd::run(cmd),
    }
}
