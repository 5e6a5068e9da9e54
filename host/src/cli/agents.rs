use std::io::Write;
use std::process::ExitCode;

use super::Context;

/// List the agents that have a mailbox, one per line, in name order.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  fmes agents")]
pub struct Args {}

pub(crate) fn run(context: &Context, _args: Args) -> anyhow::Result<ExitCode> {
    let agents = context.open()?.agents()?;
    let mut out = std::io::stdout().lock();
    if context.json {
        writeln!(out, "{}", serde_json::Value::from(agents))?;
    } else {
        for agent in agents {
            writeln!(out, "{agent}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
