use std::io::Write;
use std::process::ExitCode;

use super::Context;

/// Count the messages waiting in an agent's mailbox (its *.json files).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  fmes peek claude\n  fmes --json peek claude      prints just the number"
)]
pub struct Args {
    /// The agent whose mailbox to count.
    agent: String,
}

pub(crate) fn run(context: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let count = context.open()?.peek(&args.agent)?;
    let mut out = std::io::stdout().lock();
    if context.json {
        writeln!(out, "{count}")?;
    } else {
        let noun = if count == 1 { "message" } else { "messages" };
        writeln!(out, "{count} {noun} waiting for {}", args.agent)?;
    }
    Ok(ExitCode::SUCCESS)
}
