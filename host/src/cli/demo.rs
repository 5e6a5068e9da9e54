use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use std::sync::atomic::AtomicBool;

use super::{Context, output};
use crate::plugin::{AgentRunner, Policy};
use crate::{Comm, SendRequest};

/// The example agent plugin (plugins/examples/report), built with the host.
static REPORT_AGENT: &[u8] =
    include_bytes!(concat!(env!("FMES_PLUGINS_DIR"), "/report_agent.wasm"));

/// Watch two agents exchange a TASK and a REPORT through the sandboxed component.
///
/// Uses DIR as the _COMM folder (created if missing), or a new temporary
/// folder that is kept afterwards so you can look at the files.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  fmes demo\n  fmes demo /tmp/demo_COMM && ls -R /tmp/demo_COMM"
)]
pub struct Args {
    /// The _COMM folder to use.
    dir: Option<PathBuf>,
}

pub(crate) fn run(context: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let dir = match args.dir {
        Some(dir) => dir,
        None => tempfile::Builder::new()
            .prefix("fmes-demo-")
            .tempdir()
            .context("cannot create a temporary folder for the demo")?
            .keep()
            .join("_COMM"),
    };
    let mut out = std::io::stdout().lock();
    let mut comm = Comm::create(&dir)?;
    let json = context.json;
    macro_rules! step {
        ($($arg:tt)*) => {
            if !json {
                writeln!(out)?;
                writeln!(out, "==> {}", format!($($arg)*))?;
            }
        };
    }

    if !json {
        writeln!(out, "fmes demo in {}", dir.display())?;
        writeln!(
            out,
            "Every step runs inside the fmes WebAssembly component, which sees this folder as /_COMM and nothing else."
        )?;
    }

    step!("init: create mailboxes for planner and coder");
    let created = comm.init(&["planner", "coder"])?;
    if !json {
        writeln!(out, "created: {}", created.join(", "))?;
    }

    step!("planner sends a TASK to coder");
    let task = comm.send(
        &SendRequest::new(
            "planner",
            "coder",
            r#"{"task": "Add a --limit flag to receive", "files": ["host/src/cli/receive.rs"]}"#,
        )
        .with_type("TASK")
        .with_priority(3),
    )?;
    output::write_message(&mut out, &task, json)?;

    step!("coder peeks at its mailbox");
    let waiting = comm.peek("coder")?;
    if !json {
        writeln!(out, "{waiting} message waiting for coder")?;
    }

    step!("coder receives its messages, in delivery order");
    let inbox = comm.receive("coder", None, None)?;
    for message in &inbox.messages {
        output::write_message(&mut out, message, json)?;
    }

    step!("coder sends a REPORT back to planner");
    let report_payload = serde_json::json!({
        "in_reply_to": task.id,
        "status": "done",
        "summary": "receive now takes --limit N",
    });
    let report = comm.send(
        &SendRequest::new("coder", "planner", report_payload.to_string()).with_type("REPORT"),
    )?;
    output::write_message(&mut out, &report, json)?;

    step!("coder archives the TASK it handled");
    let archived = comm.archive("coder", &task.file)?;
    if !json {
        writeln!(out, "archived as ARCHIVE/{archived}")?;
    }

    step!("planner receives the REPORT and archives it");
    for message in comm.receive("planner", Some("REPORT"), None)?.messages {
        output::write_message(&mut out, &message, json)?;
        let archived = comm.archive("planner", &message.file)?;
        if !json {
            writeln!(out, "archived as ARCHIVE/{archived}")?;
        }
    }

    step!(
        "a plugin agent at work: reviewer is a sandboxed WebAssembly plugin that answers each TASK with a REPORT"
    );
    comm.init(&["reviewer"])?;
    let review = comm.send(
        &SendRequest::new(
            "planner",
            "reviewer",
            r#"{"task": "Review the --limit change"}"#,
        )
        .with_type("TASK"),
    )?;
    output::write_message(&mut out, &review, json)?;
    if !json {
        writeln!(
            out,
            "running the plugin as reviewer (no files, no network, a time and a memory limit)"
        )?;
    }
    let mut runner = AgentRunner::from_bytes(
        crate::Runtime::shared()?,
        REPORT_AGENT,
        "the example report agent",
        &dir,
        "reviewer",
        Policy::default(),
    )?;
    let stop = AtomicBool::new(false);
    runner.run(true, &stop, |message, outcome| {
        if !json {
            let outcome = match outcome {
                crate::plugin::HandleOutcome::Acknowledged => "acknowledged".to_string(),
                crate::plugin::HandleOutcome::Failed { reason, .. }
                | crate::plugin::HandleOutcome::ClaimLost { reason } => reason.clone(),
            };
            let _ = writeln!(
                std::io::stdout(),
                "reviewer handled {}: {outcome}",
                message.file
            );
        }
    })?;
    for message in comm.receive("planner", Some("REPORT"), None)?.messages {
        output::write_message(&mut out, &message, json)?;
        comm.archive("planner", &message.file)?;
    }

    step!("every mailbox is empty again");
    for agent in comm.agents()? {
        let count = comm.peek(&agent)?;
        if !json {
            writeln!(out, "{agent}: {count} waiting")?;
        }
    }
    if !json {
        writeln!(out)?;
        writeln!(
            out,
            "Look around: fmes --comm {} agents; ls {}",
            dir.display(),
            dir.join("ARCHIVE").display()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
