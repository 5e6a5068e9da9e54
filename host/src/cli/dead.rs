use std::io::Write;
use std::process::ExitCode;

use super::progress::Progress;
use super::{Context, output};
use crate::comm::PAGE;
use crate::{DeadLetter, Error, QueueError};

/// Manage dead letters: files that are not messages, and messages past the
/// delivery limit, kept in DEAD/To_<Agent>/ with the reason beside each.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List dead letters with their reasons.
    #[command(after_help = "Examples:\n  fmes dead list\n  fmes --json dead list coder")]
    List {
        /// Only this agent's.
        agent: Option<String>,
    },
    /// Put dead letters back in their mailbox, delivery count reset.
    #[command(
        after_help = "Example:\n  fmes dead retry coder 5_20261123_101500.123456789Z_planner_TASK_1a2b3c4d0007.json"
    )]
    Retry {
        /// The agent whose dead letters they are.
        agent: String,
        /// Dead-letter file names, as `dead list` prints them.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<String>,
    },
    /// Delete dead letters for good: named files, or all of an agent's with --all.
    #[command(
        after_help = "Examples:\n  fmes dead purge coder broken.json\n  fmes dead purge coder --all"
    )]
    Purge {
        /// The agent whose dead letters they are.
        agent: String,
        /// Dead-letter file names.
        #[arg(
            value_name = "FILE",
            required_unless_present = "all",
            conflicts_with = "all"
        )]
        files: Vec<String>,
        /// Every dead letter of the agent.
        #[arg(long)]
        all: bool,
    },
}

pub(crate) fn run(context: &Context, command: Command) -> anyhow::Result<ExitCode> {
    let progress = match &command {
        Command::List { .. } => Progress::hidden(),
        Command::Retry { agent, files } => Progress::spinner(
            context.progress_wanted(),
            format!("retrying {agent}'s dead letters: 0 of {}", files.len()),
        ),
        Command::Purge { agent, .. } => Progress::spinner(
            context.progress_wanted(),
            format!("purging {agent}'s dead letters"),
        ),
    };
    let mut comm = context.open()?;
    let mut out = std::io::stdout().lock();
    match command {
        Command::List { agent } => {
            // A page at a time: an agent may have 100,000 dead letters.
            let mut any = false;
            comm.for_each_dead_letter(agent.as_deref(), |letter| {
                any = true;
                write_letter(&mut out, &letter, context.json).map_err(anyhow::Error::from)
            })?;
            if !context.json && !any {
                writeln!(out, "no dead letters")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Retry { agent, files } => {
            let done = std::cell::Cell::new(0);
            let update = || {
                progress.set(format!(
                    "retrying {agent}'s dead letters: {} of {}",
                    done.get(),
                    files.len()
                ));
            };
            output::each_file(
                &files,
                "retry",
                |file| {
                    let result = comm.retry_dead_letter(&agent, file);
                    done.set(done.get() + 1);
                    match &result {
                        // The failure is printed next: on a clean line.
                        Err(_) => progress.clear(),
                        Ok(_) => update(),
                    }
                    result
                },
                |file, name| {
                    progress.suspend(|| {
                        if context.json {
                            writeln!(
                                out,
                                "{}",
                                serde_json::json!({ "file": file, "returned": name })
                            )
                        } else {
                            writeln!(out, "retried {file}; back in the mailbox as {name}")
                        }
                    })
                },
            )
        }
        Command::Purge { agent, files, all } => {
            let mut purged = 0usize;
            let mut report = |letter: &DeadLetter, out: &mut std::io::StdoutLock| {
                purged += 1;
                progress.set(format!("purging {agent}'s dead letters: {purged} done"));
                progress.suspend(|| {
                    if context.json {
                        write_letter(out, letter, true)
                    } else {
                        writeln!(
                            out,
                            "purged {} ({})",
                            letter.file,
                            output::printable(&letter.reason)
                        )
                    }
                })
            };
            if all {
                // One letter at a time from pages of their names: as many
                // as there are, in the memory of one page.
                let mut after: Option<String> = None;
                loop {
                    let page = comm.dead_letter_page(&agent, PAGE, after.as_deref())?;
                    for letter in &page.letters {
                        match comm.purge_dead_letters(Some(&agent), Some(&letter.file)) {
                            Ok(gone) => {
                                for letter in &gone {
                                    report(letter, &mut out)?;
                                }
                            }
                            // Retried or purged by someone else meanwhile.
                            Err(Error::Queue(QueueError::NotFound(_))) => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                    match page.next {
                        Some(next) => after = Some(next),
                        None => break,
                    }
                }
                drop(progress);
                if !context.json && purged == 0 {
                    writeln!(out, "no dead letters to purge")?;
                }
                return Ok(ExitCode::SUCCESS);
            }
            // Each named file on its own: one that is not a dead letter is
            // reported and the others are still purged.
            output::each_file(
                &files,
                "purge",
                |file| {
                    let result = comm.purge_dead_letters(Some(&agent), Some(file));
                    if result.is_err() {
                        // The failure is printed next: on a clean line.
                        progress.clear();
                    }
                    result
                },
                |_, gone| {
                    for letter in &gone {
                        report(letter, &mut out)?;
                    }
                    Ok(())
                },
            )
        }
    }
}

fn write_letter(out: &mut impl Write, letter: &DeadLetter, json: bool) -> std::io::Result<()> {
    if json {
        let line = serde_json::json!({
            "agent": letter.agent,
            "file": letter.file,
            "reason": letter.reason,
            "deliveries": letter.deliveries,
            "dead_at_ms": letter.dead_at_ms,
        });
        return writeln!(out, "{line}");
    }
    writeln!(
        out,
        "{} {}: {} (deliveries: {}, since {})",
        letter.agent,
        output::printable(&letter.file),
        output::printable(&letter.reason),
        letter.deliveries,
        output::format_ms(letter.dead_at_ms)
    )
}
