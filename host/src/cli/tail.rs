use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anstyle::{AnsiColor, Effects, Style};

use super::progress::Progress;
use super::{Context, logging, output};
use crate::Message;
use crate::watch::{Event, Follow, Mailboxes};
use fmes_queue::names::mailbox_dir;

/// Characters of the payload shown on a line.
const PAYLOAD_CHARS: usize = 60;

/// Print each new message in every mailbox as it arrives, one line each,
/// until interrupted.
///
/// A line is: the send time (UTC), [priority], sender → recipient, type, and
/// the start of the payload. On a terminal, lines are colored by priority (1
/// and 2 red, 3 and 4 yellow, 6 to 9 dimmed); piped output is plain, and so
/// is a terminal's when NO_COLOR is set, unless --color always. Mailboxes
/// made while it runs are watched too. Messages are printed, not archived.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  fmes tail
  fmes tail --waiting                      the messages already waiting first
  fmes --json tail | jq -c 'select(.priority <= 2)'
  fmes tail --color always | less -R

A line looks like:
  10:15:00 [3] planner → coder TASK {\"task\":\"add --limit to receive\"}")]
pub struct Args {
    /// Also print the messages already waiting, first.
    #[arg(long)]
    waiting: bool,
    /// Poll four times a second instead of waiting for change notifications
    /// (automatic on network file systems).
    #[arg(long)]
    poll: bool,
    /// When to color the lines: auto (a terminal, and NO_COLOR not set),
    /// always or never.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    color: ColorChoice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

pub(crate) fn run(context: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let color = match args.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::io::stdout().is_terminal()
                && !logging::no_color()
                && std::env::var_os("TERM").is_none_or(|term| term != "dumb")
        }
    };
    let mut comm = context.open()?;
    let mut printed = 0u64;
    let status = |mailboxes: usize, printed: u64| {
        format!(
            "tail: {mailboxes} {}, {printed} {} so far, waiting for more (Ctrl-C stops)",
            if mailboxes == 1 {
                "mailbox"
            } else {
                "mailboxes"
            },
            if printed == 1 { "message" } else { "messages" }
        )
    };
    let progress = Progress::status(context.progress_wanted(), status(0, 0));
    let follow = Follow {
        mailboxes: Mailboxes::All,
        message_type: None,
        include_waiting: args.waiting,
        poll: args.poll,
    };
    follow.run(&mut comm, |event| -> anyhow::Result<()> {
        match event {
            Event::Message(message) => {
                printed += 1;
                progress.suspend(|| {
                    let mut out = std::io::stdout().lock();
                    if context.json {
                        writeln!(out, "{}", output::message_json(message, &[]))?;
                    } else {
                        write_line(&mut out, message, color)?;
                    }
                    out.flush()
                })?;
            }
            Event::Malformed { agent, file } => progress.suspend(|| {
                output::warn_malformed(&mailbox_dir(agent), std::slice::from_ref(file));
            }),
            Event::Looked { mailboxes } => progress.set(status(mailboxes, printed)),
        }
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// One line: `10:15:00 [3] planner → coder TASK {"task":...}`.
fn write_line(out: &mut impl Write, message: &Message, color: bool) -> std::io::Result<()> {
    // `YYYY-MM-DDTHH:MM:SSZ`: the time of day; other writers' odd
    // timestamps are shown whole.
    let time = message
        .timestamp
        .get(11..19)
        .filter(|_| message.timestamp.len() == 20)
        .unwrap_or(&message.timestamp);
    let payload = serde_json::from_str::<serde_json::Value>(&message.payload)
        .map(|value| value.to_string())
        .unwrap_or_else(|_| message.payload.clone());
    let mut payload = output::printable(&payload);
    if payload.chars().count() > PAYLOAD_CHARS {
        payload = payload.chars().take(PAYLOAD_CHARS - 1).collect();
        payload.push('…');
    }
    let (time_style, style) = if color {
        (
            Style::new().effects(Effects::DIMMED),
            priority_style(message.priority),
        )
    } else {
        (Style::new(), Style::new())
    };
    writeln!(
        out,
        "{time_style}{}{time_style:#} {style}[{}] {} → {} {}{style:#} {payload}",
        output::printable(time),
        message.priority,
        output::printable(&message.from),
        output::printable(&message.to),
        output::printable(&message.message_type),
    )
}

/// The color of a priority: urgent red, high yellow, normal plain, low dimmed.
fn priority_style(priority: u8) -> Style {
    match priority {
        1 => Style::new()
            .fg_color(Some(AnsiColor::Red.into()))
            .effects(Effects::BOLD),
        2 => Style::new().fg_color(Some(AnsiColor::Red.into())),
        3 | 4 => Style::new().fg_color(Some(AnsiColor::Yellow.into())),
        5 => Style::new(),
        _ => Style::new().effects(Effects::DIMMED),
    }
}
