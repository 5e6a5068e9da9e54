use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use anstyle::{AnsiColor, Effects, Style};
use notify::{RecursiveMode, Watcher};

use super::progress::Progress;
use super::{Context, logging, output};
use crate::{Comm, Error, Message, QueueError};
use fmes_queue::names::mailbox_dir;

/// Poll interval where the file system gives no notifications.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
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
    tail(&mut comm, args.waiting, args.poll, |event| {
        match event {
            TailEvent::Message(message) => {
                printed += 1;
                progress.suspend(|| {
                    let mut out = std::io::stdout().lock();
                    if context.json {
                        writeln!(out, "{}", output::message_json(message))?;
                    } else {
                        write_line(&mut out, message, color)?;
                    }
                    out.flush()
                })?;
            }
            TailEvent::Malformed(agent, bad) => progress.suspend(|| {
                output::warn_malformed(&mailbox_dir(agent), std::slice::from_ref(bad));
            }),
            TailEvent::Looked { mailboxes } => progress.set(status(mailboxes, printed)),
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

/// What a tail reports.
enum TailEvent<'a> {
    /// A message that was not in its mailbox when last looked.
    Message(&'a Message),
    /// A file in an agent's mailbox that is not a message (once per name).
    Malformed(&'a str, &'a fmes_queue::MalformedFile),
    /// A look at every mailbox is done; this many were looked at.
    Looked { mailboxes: usize },
}

/// Calls `on_event` for each message that arrives in any mailbox, until it
/// fails or the watching does. The first look, and any change the
/// notifications do not name (a mailbox made or removed, an overflow,
/// polling), reads every mailbox; otherwise only the files named are read.
/// New messages of one look are reported in order of their send time.
fn tail(
    comm: &mut Comm,
    include_waiting: bool,
    poll: bool,
    mut on_event: impl FnMut(TailEvent<'_>) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let root = comm.dir().to_path_buf();
    let (wake, woken) = mpsc::channel::<Change>();
    // Watch before the first look, so nothing sent in between is missed:
    // _COMM for new mailboxes, and each mailbox.
    let mut watcher: Box<dyn Watcher> = if poll || crate::watch::is_network_file_system(&root) {
        // Polling compares listings: any change means a whole look.
        let handler = move |_event: notify::Result<notify::Event>| {
            let _ = wake.send(Change::Look);
        };
        let config = notify::Config::default().with_poll_interval(POLL_INTERVAL);
        Box::new(notify::PollWatcher::new(handler, config).map_err(watch_error)?)
    } else {
        // The watcher may name _COMM as given or as its real path.
        let roots: Vec<PathBuf> = std::iter::once(root.clone())
            .chain(std::fs::canonicalize(&root))
            .collect();
        Box::new(
            notify::recommended_watcher(move |event| {
                for change in changes(&roots, event) {
                    let _ = wake.send(change);
                }
            })
            .map_err(watch_error)?,
        )
    };
    watch_dir(&mut *watcher, &root)?;
    let mut watched: HashSet<String> = HashSet::new();
    // Per agent: files reported (as messages, or as not messages) while they stay.
    let mut seen: HashMap<String, HashSet<String>> = HashMap::new();
    let mut seen_malformed: HashMap<String, HashSet<String>> = HashMap::new();
    let mut look = true;
    let mut first = true;
    let mut appeared: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut complete: HashSet<(String, String)> = HashSet::new();
    let mut mailboxes = 0;
    loop {
        let mut new_messages = Vec::new();
        if look {
            let agents = comm.agents()?;
            mailboxes = agents.len();
            for agent in &agents {
                // A mailbox removed since the listing is simply not watched.
                if !watched.contains(agent)
                    && watch_dir(&mut *watcher, &root.join(mailbox_dir(agent))).is_ok()
                {
                    watched.insert(agent.clone());
                }
            }
            seen.retain(|agent, _| agents.contains(agent));
            seen_malformed.retain(|agent, _| agents.contains(agent));
            watched.retain(|agent| agents.contains(agent));
            for agent in &agents {
                let received = match comm.receive(agent, None, None) {
                    Ok(received) => received,
                    // Removed since the listing.
                    Err(Error::Queue(QueueError::UnknownAgent { .. })) => continue,
                    Err(e) => return Err(e.into()),
                };
                let bad_seen = seen_malformed.entry(agent.clone()).or_default();
                let mut current_bad = HashSet::new();
                for bad in &received.malformed {
                    if !bad_seen.contains(&bad.file) {
                        on_event(TailEvent::Malformed(agent, bad))?;
                    }
                    current_bad.insert(bad.file.clone());
                }
                *bad_seen = current_bad;
                let known = seen.entry(agent.clone()).or_default();
                // After the first look, whatever was not there before is new
                // (all of a mailbox made since).
                let report = !first || include_waiting;
                let mut current = HashSet::with_capacity(received.messages.len());
                for message in received.messages {
                    current.insert(message.file.clone());
                    if report && !known.contains(&message.file) {
                        new_messages.push(message);
                    }
                }
                *known = current;
            }
            first = false;
        } else {
            for (agent, files) in &appeared {
                let received = match comm.read(agent, files) {
                    Ok(received) => received,
                    Err(Error::Queue(QueueError::UnknownAgent { .. })) => continue,
                    Err(e) => return Err(e.into()),
                };
                let bad_seen = seen_malformed.entry(agent.clone()).or_default();
                for bad in &received.malformed {
                    // A file still being written is not reported: its close
                    // brings it back, complete.
                    if complete.contains(&(agent.clone(), bad.file.clone()))
                        && bad_seen.insert(bad.file.clone())
                    {
                        on_event(TailEvent::Malformed(agent, bad))?;
                    }
                }
                let known = seen.entry(agent.clone()).or_default();
                for message in received.messages {
                    if known.insert(message.file.clone()) {
                        new_messages.push(message);
                    }
                }
            }
        }
        new_messages.sort_by(|a, b| (&a.timestamp, &a.file).cmp(&(&b.timestamp, &b.file)));
        for message in &new_messages {
            on_event(TailEvent::Message(message))?;
        }
        on_event(TailEvent::Looked { mailboxes })?;

        // Wait for a change, then take every change so far in one go.
        look = false;
        appeared.clear();
        complete.clear();
        let change = woken
            .recv()
            .map_err(|_| Error::Watch("the file watcher stopped".into()))?;
        for change in std::iter::once(change).chain(woken.try_iter()) {
            match change {
                Change::Look => look = true,
                Change::Appeared {
                    agent,
                    file,
                    closed,
                } => {
                    if closed {
                        complete.insert((agent.clone(), file.clone()));
                    }
                    let known = seen.get(&agent).is_some_and(|s| s.contains(&file));
                    let files = appeared.entry(agent).or_default();
                    if !known && !files.contains(&file) {
                        files.push(file);
                    }
                }
                Change::Left { agent, file } => {
                    if let Some(s) = seen.get_mut(&agent) {
                        s.remove(&file);
                    }
                    if let Some(s) = seen_malformed.get_mut(&agent) {
                        s.remove(&file);
                    }
                    if let Some(files) = appeared.get_mut(&agent) {
                        files.retain(|f| *f != file);
                    }
                }
            }
        }
    }
}

/// What a change notification means for the tail.
enum Change {
    /// Something changed that the notification does not name (or a mailbox
    /// was made or removed): look at every mailbox.
    Look,
    /// A `*.json` file appeared or changed in an agent's mailbox; `closed`
    /// once its writer closed it or moved it into place.
    Appeared {
        agent: String,
        file: String,
        closed: bool,
    },
    /// A `*.json` file left an agent's mailbox.
    Left { agent: String, file: String },
}

/// What one notification means. A send makes four or five notifications
/// (its temporary file is created, written, closed, linked, removed), of
/// which only the link matters; reads and metadata changes are ignored.
fn changes(roots: &[PathBuf], event: notify::Result<notify::Event>) -> Vec<Change> {
    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode, MetadataKind, ModifyKind, RenameMode};
    let Ok(event) = event else {
        return vec![Change::Look];
    };
    if event.need_rescan() || event.paths.is_empty() {
        return vec![Change::Look];
    }
    enum Meaning {
        Appeared { closed: bool },
        Left,
        Nothing,
        Look,
    }
    let meaning = match event.kind {
        EventKind::Create(_) | EventKind::Modify(ModifyKind::Data(_)) => {
            Meaning::Appeared { closed: false }
        }
        EventKind::Access(AccessKind::Close(AccessMode::Write))
        | EventKind::Modify(ModifyKind::Name(RenameMode::To)) => Meaning::Appeared { closed: true },
        EventKind::Modify(ModifyKind::Name(RenameMode::From)) | EventKind::Remove(_) => {
            Meaning::Left
        }
        EventKind::Modify(ModifyKind::Metadata(
            MetadataKind::AccessTime
            | MetadataKind::Permissions
            | MetadataKind::Ownership
            | MetadataKind::Extended,
        ))
        | EventKind::Access(_) => Meaning::Nothing,
        _ => Meaning::Look,
    };
    let mut out = Vec::new();
    for path in &event.paths {
        let Some(parent) = path.parent() else {
            return vec![Change::Look];
        };
        let agent = parent
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(fmes_queue::names::agent_of_mailbox);
        // An entry of _COMM itself (the only other folder watched): a
        // mailbox made or removed, maybe.
        if roots.iter().any(|root| root == parent) || agent.is_none() {
            if !matches!(meaning, Meaning::Nothing) {
                return vec![Change::Look];
            }
            continue;
        }
        let file = path.file_name().and_then(|n| n.to_str());
        let (Some(agent), Some(file)) = (agent, file) else {
            continue;
        };
        // Only names a reader would take for a message.
        if !fmes_queue::names::looks_like_message(file)
            || fmes_queue::names::check_message_file(file).is_err()
        {
            continue;
        }
        let file = file.to_string();
        match meaning {
            Meaning::Appeared { closed } => out.push(Change::Appeared {
                agent,
                file,
                closed,
            }),
            Meaning::Left => out.push(Change::Left { agent, file }),
            Meaning::Nothing => {}
            Meaning::Look => return vec![Change::Look],
        }
    }
    out
}

fn watch_dir(watcher: &mut dyn Watcher, dir: &Path) -> Result<(), Error> {
    watcher
        .watch(dir, RecursiveMode::NonRecursive)
        .map_err(|e| Error::Watch(format!("{}: {e}", dir.display())))
}

fn watch_error(e: notify::Error) -> Error {
    Error::Watch(e.to_string())
}
