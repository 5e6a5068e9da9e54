use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use super::{Context, output};
use fmes_queue::names::mailbox_dir;
use fmes_queue::{MalformedFile, Message};

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
    /// At most this many messages, the first in delivery order (at least 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    limit: Option<u32>,
}

pub(crate) fn run(context: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let mut comm = context.open()?;
    let agent = &args.agent;
    let message_type = args.message_type.as_deref();
    // Standard output writes each line by itself (it is line-buffered even
    // into a pipe): a message is seven lines. Written a page at a time.
    let mut out = Printer {
        out: BufWriter::with_capacity(64 * 1024, std::io::stdout().lock()),
        mailbox: mailbox_dir(agent),
        json: context.json,
        printed: 0,
    };
    // A page at a time: a mailbox of any size is printed in the memory of
    // one page, and the first messages show before the last are read.
    comm.read_pages(agent, message_type, args.limit, |page| {
        out.print(&page.malformed, &page.messages)
            .map_err(anyhow::Error::from)
    })?;
    if !context.json && out.printed == 0 {
        writeln!(out.out, "no messages for {agent}")?;
    }
    out.out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Prints what a mailbox holds, as it is read.
struct Printer<W: Write> {
    out: W,
    mailbox: String,
    json: bool,
    printed: u64,
}

impl<W: Write> Printer<W> {
    /// The bad files on stderr, the messages on the output, then flushed.
    fn print(&mut self, malformed: &[MalformedFile], messages: &[Message]) -> io::Result<()> {
        output::warn_malformed(&self.mailbox, malformed);
        for message in messages {
            if self.printed > 0 && !self.json {
                writeln!(self.out)?;
            }
            output::write_message(&mut self.out, message, self.json)?;
            self.printed += 1;
        }
        self.out.flush()
    }
}
