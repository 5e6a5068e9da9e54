use std::io::Write;
use std::process::ExitCode;

use super::Context;
use crate::Comm;

/// Create the _COMM folder, ARCHIVE/ and mailboxes (existing ones are kept).
///
/// With no agent names, creates the four mailboxes of the Python
/// implementation: antigravity, claude, cursor, vscode.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  fmes init\n  fmes --comm /srv/project/_COMM init planner coder reviewer"
)]
pub struct Args {
    /// Agent names: ASCII letters, digits, '-' and '_', at most 64 bytes.
    #[arg(value_name = "AGENT")]
    agents: Vec<String>,
}

pub(crate) fn run(context: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let mut comm = Comm::create(&context.comm)?;
    let created = comm.init(&args.agents)?;
    let agents = comm.agents()?;
    let mut out = std::io::stdout().lock();
    if context.json {
        let report = serde_json::json!({ "created": created, "agents": agents });
        writeln!(out, "{report}")?;
    } else if created.is_empty() {
        writeln!(
            out,
            "all mailboxes already exist in {}",
            context.comm.display()
        )?;
    } else {
        writeln!(
            out,
            "created mailboxes in {}: {}",
            context.comm.display(),
            created.join(", ")
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
