use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use super::duration::parse_duration;
use super::{Context, output};
use crate::Released;

/// Give a claimed message back (a negative acknowledgement).
///
/// It returns to its place in the mailbox with its delivery count raised,
/// or goes to the dead letters if it has reached the delivery limit.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  fmes release coder --consumer w1 5_20261123_101500.123456789Z_planner_TASK_1a2b3c4d0007.json"
)]
pub struct Args {
    /// The agent whose mailbox the message was claimed from.
    agent: String,
    /// The consumer holding the claim.
    #[arg(long, value_name = "NAME", value_parser = super::parse_consumer)]
    consumer: String,
    /// The claimed message's file name.
    file: String,
}

pub(crate) fn run(context: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let released = context
        .open()?
        .release(&args.agent, &args.consumer, &args.file)?;
    let mut out = std::io::stdout().lock();
    match (&released, context.json) {
        (Released::Returned(name), true) => writeln!(
            out,
            "{}",
            serde_json::json!({ "file": args.file, "returned": name })
        )?,
        (Released::DeadLettered(name), true) => writeln!(
            out,
            "{}",
            serde_json::json!({ "file": args.file, "dead_lettered": name })
        )?,
        (Released::Returned(name), false) => writeln!(
            out,
            "released {}; back in the mailbox as {name}",
            output::printable(&args.file)
        )?,
        (Released::DeadLettered(name), false) => writeln!(
            out,
            "released {}; it reached the delivery limit and is a dead letter: {name}",
            output::printable(&args.file)
        )?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Extend a claim's lease while still working on the message.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  fmes extend coder --consumer w1 --lease 10m 5_20261123_101500.123456789Z_planner_TASK_1a2b3c4d0007.json"
)]
pub struct ExtendArgs {
    /// The agent whose mailbox the message was claimed from.
    agent: String,
    /// The consumer holding the claim.
    #[arg(long, value_name = "NAME", value_parser = super::parse_consumer)]
    consumer: String,
    /// The new lease, from now.
    #[arg(long, default_value = "5m", value_parser = parse_duration, value_name = "DURATION")]
    lease: Duration,
    /// The claimed message's file name.
    file: String,
}

pub(crate) fn run_extend(context: &Context, args: ExtendArgs) -> anyhow::Result<ExitCode> {
    let expires = context
        .open()?
        .extend(&args.agent, &args.consumer, &args.file, args.lease)?;
    let mut out = std::io::stdout().lock();
    if context.json {
        writeln!(
            out,
            "{}",
            serde_json::json!({ "file": args.file, "lease_expires_ms": expires })
        )?;
    } else {
        writeln!(
            out,
            "lease on {} extended to {}",
            output::printable(&args.file),
            output::format_ms(expires)
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
