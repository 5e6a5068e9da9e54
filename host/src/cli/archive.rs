use std::io::Write;
use std::process::ExitCode;

use super::{Context, output};

/// Move handled messages from an agent's mailbox into ARCHIVE/.
///
/// FILE is a message's file name as `receive` prints it. An archived message
/// never replaces another: a taken name gets `_` and six hex digits. Every
/// file is tried; the exit status is 1 if any failed.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  fmes archive coder 5_20261123_101500.123456789Z_planner_TASK_1a2b3c4d0007.json
  fmes --json receive coder | jq -r .file | xargs fmes archive coder")]
pub struct Args {
    /// The agent whose mailbox holds the files.
    agent: String,
    /// Message file names in that mailbox.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<String>,
}

pub(crate) fn run(context: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let mut comm = context.open()?;
    let mut out = std::io::stdout().lock();
    output::each_file(
        &args.files,
        "archive",
        |file| comm.archive(&args.agent, file),
        |file, archived| {
            if context.json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({ "file": file, "archived": archived })
                )
            } else {
                writeln!(out, "archived {file} as ARCHIVE/{archived}")
            }
        },
    )
}
