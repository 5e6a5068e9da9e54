use std::io::{BufWriter, Write};
use std::process::ExitCode;

use super::{Context, output};
use fmes_queue::names::mailbox_dir;

/// Messages read per call into the queue: a page takes about 1.5 KiB a
/// message, and each page after the first few thousand lists the mailbox
/// again (see `ReadingCache::AHEAD`).
const PAGE: u32 = 1_000;

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
    let mut comm = context.open()?;
    let mailbox = mailbox_dir(&args.agent);
    // Standard output writes each line by itself (it is line-buffered even
    // into a pipe): a message is seven lines. Written a page at a time.
    let mut out = BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    let mut printed = 0u64;
    let mut remaining = args.limit;
    let mut after = None;
    // A page at a time: a mailbox of any size is printed in the memory of
    // one page, and the first messages show before the last are read.
    while remaining != Some(0) {
        let limit = remaining.map_or(PAGE, |r| r.min(PAGE));
        let page = comm.receive_page(
            &args.agent,
            args.message_type.as_deref(),
            limit,
            after.as_ref(),
        )?;
        output::warn_malformed(&mailbox, &page.malformed);
        for message in &page.messages {
            if printed > 0 && !context.json {
                writeln!(out)?;
            }
            output::write_message(&mut out, message, context.json)?;
            printed += 1;
        }
        out.flush()?;
        if let Some(r) = remaining.as_mut() {
            *r -= page.messages.len() as u32;
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    if !context.json && printed == 0 {
        writeln!(out, "no messages for {}", args.agent)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
