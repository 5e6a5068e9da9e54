use std::io::Write;
use std::process::ExitCode;

use super::{Context, output, send::read_payload};

/// Send a copy to every agent but the sender, at priority 1.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  fmes broadcast --from ci '{\"build\": \"red\", \"commit\": \"1a2b3c\"}'
  fmes broadcast --from planner --type REQUEST '\"who is free?\"'")]
pub struct Args {
    /// Sender's agent name; it gets no copy.
    #[arg(long, value_name = "AGENT")]
    from: String,
    /// Message type.
    #[arg(long = "type", value_name = "TYPE", default_value = "ALERT")]
    message_type: String,
    /// Largest payload accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = fmes_queue::queue::DEFAULT_MAX_PAYLOAD)]
    max_payload: u64,
    /// JSON text of the body, or - to read it from stdin.
    payload: String,
}

pub(crate) fn run(context: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let payload = read_payload(args.payload)?;
    let sent = context.open()?.broadcast(
        &args.from,
        Some(&args.message_type),
        &payload,
        Some(args.max_payload),
    )?;
    let mut out = std::io::stdout().lock();
    if context.json {
        for message in &sent {
            writeln!(out, "{}", output::message_json(message, &[]))?;
        }
    } else if sent.is_empty() {
        writeln!(out, "no other agent has a mailbox; nothing sent")?;
    } else {
        let recipients: Vec<&str> = sent.iter().map(|m| m.to.as_str()).collect();
        writeln!(
            out,
            "sent {} to {} agents: {}",
            args.message_type,
            sent.len(),
            recipients.join(", ")
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
