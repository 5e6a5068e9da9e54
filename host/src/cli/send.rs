use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::Context as _;

use super::{Context, output};
use crate::SendRequest;

/// Send one message to an agent's mailbox.
///
/// The payload is JSON text (any JSON value), or `-` to read it from stdin.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  fmes send --from planner --to coder '{\"task\": \"write the parser\"}'
  fmes send --from ci --to coder --type ALERT --priority 1 '\"build is red\"'
  jq -n '{task: \"review\"}' | fmes send --from planner --to reviewer -
  fmes --json send --from a --to b '{}'    prints the stored message and its file")]
pub struct Args {
    /// Sender's agent name.
    #[arg(long, value_name = "AGENT")]
    from: String,
    /// Recipient's agent name; it must have a mailbox.
    #[arg(long, value_name = "AGENT")]
    to: String,
    /// Message type, such as TASK, REPORT, REQUEST or ALERT.
    #[arg(long = "type", value_name = "TYPE", default_value = "TASK")]
    message_type: String,
    /// 1 (most urgent) to 9 (least).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(1..=9))]
    priority: u8,
    /// Largest payload accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = fmes_queue::queue::DEFAULT_MAX_PAYLOAD)]
    max_payload: u64,
    /// A message id of your own (a UUID fits), which makes the send
    /// idempotent: sending again with the same id writes nothing and prints
    /// the message already sent.
    #[arg(long, value_name = "ID")]
    id: Option<String>,
    /// JSON text of the body, or - to read it from stdin.
    payload: String,
}

/// The payload argument, or stdin for `-`.
pub(crate) fn read_payload(payload: String) -> anyhow::Result<String> {
    if payload != "-" {
        return Ok(payload);
    }
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("cannot read the payload from stdin")?;
    Ok(text)
}

pub(crate) fn run(context: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let request = SendRequest {
        from: args.from,
        to: args.to,
        message_type: Some(args.message_type),
        priority: Some(args.priority),
        payload: read_payload(args.payload)?,
        max_payload_bytes: Some(args.max_payload),
        id: args.id,
    };
    let message = context.open()?.send(&request)?;
    let mut out = std::io::stdout().lock();
    if context.json {
        writeln!(out, "{}", output::message_json(&message, &[]))?;
    } else {
        writeln!(
            out,
            "sent {} from {} to {} (priority {}): {}",
            message.message_type, message.from, message.to, message.priority, message.file
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
