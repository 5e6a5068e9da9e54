use std::io::Write;
use std::process::ExitCode;

use super::{Context, output};
use fmes_queue::names::mailbox_dir;

/// Print the messages waiting for an agent, in delivery order, without
/// removing them (archive them once handled).
///
/// Delivery order is priority (1 first), then UTC send time. Files in the
/// mailbox that are not readable messages are named on stderr with the
/// reason, and never stop the others from being printed.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  fmes receive coder
  fmes receive coder --type TASK --limit 10
  fmes --json receive coder | jq -r .file      one JSON object per line")]
pub struct Args {
    /// The agent whose mailbox to read.
    agent: String,
    /// Only messages of this type.
    #[arg(long = "type", value_name = "TYPE")]
    message_type: Option<String>,
    /// At most this many messages, the first in delivery order.
    #[arg(long, value_name = "N")]
    limit: Option<u32>,
}

pub(crate) fn run(context: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let received =
        context
            .open()?
            .receive(&args.agent, args.message_type.as_deref(), args.limit)?;
    output::warn_malformed(&mailbox_dir(&args.agent), &received.malformed);
    let mut out = std::io::stdout().lock();
    if !context.json && received.messages.is_empty() {
        writeln!(out, "no messages for {}", args.agent)?;
    }
    for (i, message) in received.messages.iter().enumerate() {
        if i > 0 && !context.json {
            writeln!(out)?;
        }
        output::write_message(&mut out, message, context.json)?;
    }
    Ok(ExitCode::SUCCESS)
}
