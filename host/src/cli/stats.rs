use std::io::Write;
use std::process::ExitCode;

use super::Context;

/// Per mailbox: messages ready, in flight, dead, archived, and the oldest's age.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  fmes stats\n  fmes --json stats | jq 'select(.dead > 0)'")]
pub struct Args {}

pub(crate) fn run(context: &Context, _args: Args) -> anyhow::Result<ExitCode> {
    let stats = context.open()?.stats()?;
    let mut out = std::io::stdout().lock();
    if context.json {
        for s in &stats {
            let line = serde_json::json!({
                "agent": s.agent,
                "ready": s.ready,
                "in_flight": s.in_flight,
                "dead": s.dead,
                "archived": s.archived,
                "oldest_ready_age_ms": s.oldest_ready_age_ms,
            });
            writeln!(out, "{line}")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let width = stats
        .iter()
        .map(|s| s.agent.len())
        .max()
        .unwrap_or(5)
        .max(5);
    writeln!(
        out,
        "{:width$}  {:>7}  {:>9}  {:>6}  {:>8}  oldest",
        "agent", "ready", "in flight", "dead", "archived"
    )?;
    for s in &stats {
        let oldest = s
            .oldest_ready_age_ms
            .map_or_else(|| "-".to_string(), format_age_ms);
        writeln!(
            out,
            "{:width$}  {:>7}  {:>9}  {:>6}  {:>8}  {oldest}",
            s.agent, s.ready, s.in_flight, s.dead, s.archived
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn format_age_ms(ms: u64) -> String {
    super::duration::format_age(std::time::Duration::from_secs(ms / 1000))
}
