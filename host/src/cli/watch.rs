use std::io::Write;
use std::process::ExitCode;

use super::progress::Progress;
use super::{Context, output};
use crate::watch::{Event, Follow, Mailboxes};
use fmes_queue::names::mailbox_dir;

/// Print each new message for an agent as it arrives, until interrupted.
///
/// Woken by the file system's change notifications, not by polling (except
/// on network file systems, or with --poll). Messages are printed, not archived.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  fmes watch planner
  fmes --json watch planner --type REPORT | while read -r line; do ...; done")]
pub struct Args {
    /// The agent whose mailbox to watch.
    agent: String,
    /// Only messages of this type.
    #[arg(long = "type", value_name = "TYPE")]
    message_type: Option<String>,
    /// Also print the messages already waiting, first.
    #[arg(long)]
    waiting: bool,
    /// Poll the mailbox four times a second instead of waiting for change
    /// notifications (automatic on network file systems, whose notifications
    /// miss other machines' writes).
    #[arg(long)]
    poll: bool,
}

pub(crate) fn run(context: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let mut comm = context.open()?;
    // A status line on a terminal (stderr), redrawn below each message.
    let mut printed = 0u64;
    let status = |printed: u64| {
        format!(
            "watching {}: {printed} {} so far, waiting for more (Ctrl-C stops)",
            output::printable(&args.agent),
            if printed == 1 { "message" } else { "messages" }
        )
    };
    let progress = Progress::status(context.progress_wanted(), status(0));
    let follow = Follow {
        mailboxes: Mailboxes::One(args.agent.clone()),
        message_type: args.message_type.clone(),
        include_waiting: args.waiting,
        poll: args.poll,
    };
    follow.run(&mut comm, |event| -> anyhow::Result<()> {
        match event {
            Event::Message(message) => {
                printed += 1;
                let written = progress.suspend(|| {
                    let mut out = std::io::stdout().lock();
                    output::write_message(&mut out, message, context.json)
                        .and_then(|()| if context.json { Ok(()) } else { writeln!(out) })
                        .and_then(|()| out.flush())
                });
                progress.set(status(printed));
                written?;
            }
            Event::Malformed { agent, file } => progress.suspend(|| {
                output::warn_malformed(&mailbox_dir(agent), std::slice::from_ref(file));
            }),
            Event::Looked { .. } => {}
        }
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
