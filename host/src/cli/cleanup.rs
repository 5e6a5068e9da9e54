use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use super::Context;
use super::duration::{format_age, parse_duration};
use super::progress::Progress;

/// Archive messages older than an age, and remove temporary files that a
/// crashed writer left behind (only ones older than ten minutes).
///
/// Age is the message file's modification time, as in the Python implementation.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  fmes cleanup                  archive messages older than 24 hours
  fmes cleanup --max-age 30m
  fmes cleanup --max-age 1h30m")]
pub struct Args {
    /// Age past which a message is archived: a number with a unit, s, m, h
    /// or d, or several (1h30m).
    #[arg(long, default_value = "24h", value_parser = parse_duration, value_name = "AGE")]
    max_age: Duration,
}

pub(crate) fn run(context: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let progress = Progress::spinner(
        context.progress_wanted(),
        format!(
            "cleaning up {}: archiving messages older than {}",
            context.comm.display(),
            format_age(args.max_age)
        ),
    );
    let report = context.open()?.cleanup(args.max_age)?;
    drop(progress);
    let mut out = std::io::stdout().lock();
    if context.json {
        let line = serde_json::json!({
            "archived": report.archived,
            "removed_temporary": report.removed_temporary,
        });
        writeln!(out, "{line}")?;
    } else {
        writeln!(
            out,
            "archived {} messages older than {}; removed {} stale temporary files",
            report.archived,
            format_age(args.max_age),
            report.removed_temporary
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
