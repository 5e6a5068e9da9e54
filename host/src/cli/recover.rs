use std::io::Write;
use std::process::ExitCode;

use super::Context;
use super::progress::Progress;

/// Return expired claims to their mailboxes and finish what stopped processes left.
///
/// Claims whose lease ran out go back to the mailbox (or, at the delivery
/// limit, to the dead letters); moves into ARCHIVE/ or the dead letters that
/// a killed process had begun are completed; temporary files older than ten
/// minutes are removed. Safe to run at any time, by any number of processes.
/// `claim` also recovers the mailbox it claims from.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  fmes recover")]
pub struct Args {}

pub(crate) fn run(context: &Context, _args: Args) -> anyhow::Result<ExitCode> {
    let progress = Progress::spinner(
        context.progress_wanted(),
        format!("recovering {}", context.comm.display()),
    );
    let report = context.open()?.recover()?;
    drop(progress);
    let mut out = std::io::stdout().lock();
    if context.json {
        let line = serde_json::json!({
            "returned": report.returned,
            "dead_lettered": report.dead_lettered,
            "finished_moves": report.finished_moves,
            "removed_temporary": report.removed_temporary,
        });
        writeln!(out, "{line}")?;
    } else {
        writeln!(
            out,
            "returned {} expired claims, dead-lettered {}, finished {} interrupted moves, removed {} stale temporary files",
            report.returned, report.dead_lettered, report.finished_moves, report.removed_temporary
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
