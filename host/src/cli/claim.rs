use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use super::duration::parse_duration;
use super::{Context, output};
use fmes_queue::names::mailbox_dir;

/// Take messages for one consumer alone, for a lease.
///
/// Claimed messages leave the mailbox (receive and Python readers no longer
/// see them) until acknowledged (archived), released, or their lease runs
/// out. Of several consumers claiming at once, each message goes to exactly
/// one. Files that are not messages are moved to the dead letters and named
/// on stderr.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  fmes claim coder --consumer w1
  fmes --json claim coder --consumer w1 --limit 10 --lease 15m
  f=$(fmes --json claim coder --consumer w1 | jq -r .file) && fmes ack coder --consumer w1 \"$f\"")]
pub struct Args {
    /// The agent whose mailbox to claim from.
    agent: String,
    /// Who holds the claims (a worker's name).
    #[arg(long, value_name = "NAME", value_parser = super::parse_consumer)]
    consumer: String,
    /// At most this many messages (at least 1).
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    limit: u32,
    /// How long the claims last before the messages go back.
    #[arg(long, default_value = "5m", value_parser = parse_duration, value_name = "DURATION")]
    lease: Duration,
}

pub(crate) fn run(context: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let batch = context
        .open()?
        .claim(&args.agent, &args.consumer, args.limit, args.lease)?;
    let mailbox = mailbox_dir(&args.agent);
    for bad in batch.dead_lettered.iter().filter(|_| !context.quiet) {
        crate::stderr::line!(
            "warning: moved {mailbox}/{} to the dead letters: {}",
            output::printable(&bad.file),
            output::printable(&bad.reason)
        );
    }
    let mut out = std::io::stdout().lock();
    if !context.json && batch.claimed.is_empty() {
        writeln!(out, "nothing to claim for {}", args.agent)?;
    }
    for (i, claimed) in batch.claimed.iter().enumerate() {
        if context.json {
            let claim = [
                ("deliveries", claimed.deliveries.into()),
                ("lease_expires_ms", claimed.lease_expires_ms.into()),
            ];
            writeln!(out, "{}", output::message_json(&claimed.message, &claim))?;
        } else {
            if i > 0 {
                writeln!(out)?;
            }
            output::write_message(&mut out, &claimed.message, false)?;
            writeln!(
                out,
                "    claimed by {} (delivery {}), lease ends {}",
                args.consumer,
                claimed.deliveries,
                output::format_ms(claimed.lease_expires_ms)
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
