use std::io::Write;
use std::process::ExitCode;

use super::{Context, output};

/// Acknowledge claimed messages: they are done, and archived.
///
/// Every file is tried; the exit status is 1 if any failed (for example
/// because its lease had run out and it went back to the mailbox).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  fmes ack coder --consumer w1 5_20261123_101500.123456789Z_planner_TASK_1a2b3c4d0007.json"
)]
pub struct Args {
    /// The agent whose mailbox the messages were claimed from.
    agent: String,
    /// The consumer holding the claims.
    #[arg(long, value_name = "NAME", value_parser = super::parse_consumer)]
    consumer: String,
    /// The claimed messages' file names, as claim printed them.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<String>,
}

pub(crate) fn run(context: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let mut comm = context.open()?;
    let mut out = std::io::stdout().lock();
    output::each_file(
        &args.files,
        "acknowledge",
        |file| comm.ack(&args.agent, &args.consumer, file),
        |file, archived| {
            if context.json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({ "file": file, "archived": archived })
                )
            } else {
                writeln!(out, "acknowledged {file}; archived as ARCHIVE/{archived}")
            }
        },
    )
}
