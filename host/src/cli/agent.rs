use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{Context, output};
use crate::Runtime;
use crate::plugin::{AgentRunner, HandleOutcome, Policy};

/// Run untrusted agent plugins (WebAssembly components of the agent-plugin world).
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Claim messages for an agent and hand each to a plugin, in a sandbox.
    ///
    /// Each message is acknowledged when the handler succeeds, and released
    /// (to be retried, or dead-lettered at the delivery limit) when it fails,
    /// traps or breaks a limit. The plugin can reach no file, environment,
    /// argument, stdin or network; its output is shown with its name.
    /// Several runners for one agent share the work. Stops on Ctrl-C after
    /// the message in hand, or with --once when the mailbox is empty.
    #[command(after_help = "\
Examples:
  fmes agent run report_agent.wasm --as coder --once
  fmes agent run my_agent.wasm --as reviewer --policy reviewer.toml

A policy file (TOML) may set: time_limit (\"10s\"; 1s to 1d), memory_limit_mib
(64), allowed_recipients ([\"planner\"]; missing: any agent but its own),
max_sends_per_message (10), max_bytes_per_message (1048576), fuel (none).
Unknown keys are refused.")]
    Run {
        /// The plugin component (.wasm).
        plugin: PathBuf,
        /// The agent the plugin acts as.
        #[arg(long = "as", value_name = "AGENT")]
        agent: String,
        /// The plugin's policy file.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// Stop when the mailbox is empty.
        #[arg(long)]
        once: bool,
    },
}

/// Set by Ctrl-C: finish the message in hand, then stop.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn request_stop(_signal: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

pub(crate) fn run(context: &Context, command: Command) -> anyhow::Result<ExitCode> {
    let Command::Run {
        plugin,
        agent,
        policy,
        once,
    } = command;
    let policy = match policy {
        Some(path) => Policy::load(&path)?,
        None => Policy::default(),
    };
    let runtime = Runtime::shared()?;
    let mut runner = AgentRunner::load(runtime, &plugin, &context.comm, &agent, policy)?;
    runner.comm().set_options(context.options)?;
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(
            libc::SIGINT,
            request_stop as *const () as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGTERM,
            request_stop as *const () as libc::sighandler_t,
        );
    }
    let json = context.json;
    let mut write_error = None;
    let report = runner.run(once, &STOP, |message, outcome| {
        let mut out = std::io::stdout().lock();
        let written = match (outcome, json) {
            (HandleOutcome::Acknowledged, true) => writeln!(
                out,
                "{}",
                serde_json::json!({ "file": message.file, "id": message.id, "outcome": "acknowledged" })
            ),
            (HandleOutcome::Failed { reason, dead_lettered }, true) => writeln!(
                out,
                "{}",
                serde_json::json!({
                    "file": message.file,
                    "id": message.id,
                    "outcome": if *dead_lettered { "dead-lettered" } else { "released" },
                    "reason": reason,
                })
            ),
            (HandleOutcome::ClaimLost { reason }, true) => writeln!(
                out,
                "{}",
                serde_json::json!({
                    "file": message.file,
                    "id": message.id,
                    "outcome": "claim-lost",
                    "reason": reason,
                })
            ),
            (HandleOutcome::ClaimLost { reason }, false) => writeln!(
                out,
                "handled {} from {}, but its claim was lost: {}; it may be handled again",
                output::printable(&message.file),
                output::printable(&message.from),
                output::printable(reason)
            ),
            (HandleOutcome::Acknowledged, false) => writeln!(
                out,
                "handled {} from {}: acknowledged",
                output::printable(&message.file),
                output::printable(&message.from)
            ),
            (HandleOutcome::Failed { reason, dead_lettered }, false) => writeln!(
                out,
                "handled {} from {}: {reason}; {}",
                output::printable(&message.file),
                output::printable(&message.from),
                if *dead_lettered { "dead-lettered" } else { "released" }
            ),
        };
        if let Err(e) = written.and_then(|()| out.flush()) {
            write_error.get_or_insert(e);
            STOP.store(true, Ordering::Relaxed);
        }
    })?;
    if let Some(e) = write_error {
        return Err(e.into());
    }
    // On stderr, so stdout stays one line per message.
    let lost = match report.claims_lost {
        0 => String::new(),
        n => format!(", {n} handled after their claim was lost"),
    };
    crate::stderr::line!(
        "{agent}: {} acknowledged, {} failed ({} dead-lettered){lost}",
        report.acknowledged,
        report.failed,
        report.dead_lettered
    );
    Ok(ExitCode::SUCCESS)
}
