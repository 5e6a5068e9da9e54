use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use serde::Serialize;

use super::duration::format_age;
use super::output::{self, printable};
use super::progress::Progress;
use super::{Context, EXIT_FAILURE};
use fmes_queue::claims::INFLIGHT_DIR;
use fmes_queue::names::{self, ARCHIVE_DIR, DEAD_DIR, MAILBOX_PREFIX};
use fmes_queue::queue::TEMPORARY_GRACE;

/// The folder of idempotent-send markers.
const MARKERS_DIR: &str = ".fmes";
/// The staging folder of moves into ARCHIVE/ and DEAD/ (see guest/src/settle.rs).
const INCOMING_DIR: &str = ".incoming";
/// The note beside a dead letter (see guest/src/settle.rs).
const NOTE_SUFFIX: &str = ".reason";

/// Check a _COMM folder and say what to do about each problem found.
///
/// Looks for: folders you cannot read, write or enter; temporary files a
/// stopped writer left (older than ten minutes); moves into ARCHIVE/ or
/// DEAD/ that a stopped process began, and sends with an id it stopped
/// before publishing (or whose id marker no send can use); files in a
/// mailbox that are not
/// messages (and files whose names are not UTF-8, which fmes cannot
/// name); claims whose lease has expired, and entries of .inflight/ that
/// are no claim; mailboxes with more than --max-waiting messages waiting;
/// dead letters; and entries at the top of _COMM that are not part of the
/// layout. Changes nothing.
///
/// The folders are listed directly (read-only); messages are read through the
/// queue component, as every command reads them. In a mailbox over the
/// limit, only the first --max-waiting messages are read.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  fmes doctor
  fmes doctor --max-waiting 500
  fmes --json doctor | jq -r '.findings[].fix'

Exit status: 0 if no problems were found, 1 if some were (or the check
itself failed), 2 on bad usage.
With --json, one JSON object: {\"comm\", \"healthy\", \"mailboxes\", \"findings\":
[{\"kind\", \"path\", \"problem\", \"fix\"}]}. Kinds: permissions, layout,
temporary-file, interrupted-move, malformed, expired-claim, oversized,
dead-letters, unknown-entry.")]
pub struct Args {
    /// Report a mailbox as oversized when more messages than this wait in it.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    max_waiting: u32,
}

/// One problem, and what to do about it.
#[derive(Debug, Serialize)]
struct Finding {
    kind: &'static str,
    /// Relative to _COMM (`.` for the folder itself).
    path: String,
    problem: String,
    fix: String,
}

struct Doctor {
    comm: PathBuf,
    now: SystemTime,
    findings: Vec<Finding>,
}

pub(crate) fn run(context: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let progress = Progress::spinner(
        context.progress_wanted(),
        format!("checking {}", context.comm.display()),
    );
    // Opening first gives the usual error for a missing or unusable folder.
    let mut comm = context.open()?;
    let mut doctor = Doctor {
        comm: context.comm.clone(),
        now: SystemTime::now(),
        findings: Vec::new(),
    };
    let mailboxes = doctor.check_layout()?;
    let mut waiting_total = 0u64;
    for (agent, readable) in &mailboxes {
        if !readable {
            continue;
        }
        let dir = names::mailbox_dir(agent);
        let waiting = comm.peek(agent)?;
        waiting_total += u64::from(waiting);
        if waiting > args.max_waiting {
            doctor.add(
                "oversized",
                dir.clone(),
                format!(
                    "{waiting} messages wait for {agent}, more than {} (--max-waiting)",
                    args.max_waiting
                ),
                format!(
                    "start more consumers for {agent} (`fmes claim {agent} --consumer NAME`), \
                     or archive old messages with `fmes cleanup --max-age AGE`"
                ),
            );
        }
        // A page at a time (the memory of one page), at most --max-waiting
        // messages in an oversized mailbox.
        let limit = (waiting > args.max_waiting).then_some(args.max_waiting);
        comm.read_pages(agent, None, limit, |page| -> Result<(), crate::Error> {
            for bad in &page.malformed {
                doctor.add(
                    "malformed",
                    format!("{dir}/{}", bad.file),
                    format!("not a message: {}", bad.reason),
                    format!(
                        "look at it, then fix or delete it; `fmes claim {agent}` moves it to the \
                         dead letters (then `fmes dead purge {agent} FILE`)"
                    ),
                );
            }
            Ok(())
        })?;
    }
    drop(progress);

    let healthy = doctor.findings.is_empty();
    let mut out = std::io::stdout().lock();
    if context.json {
        let report = serde_json::json!({
            "comm": context.comm.display().to_string(),
            "healthy": healthy,
            "mailboxes": mailboxes.len(),
            "findings": doctor.findings,
        });
        writeln!(out, "{report}")?;
    } else {
        for finding in &doctor.findings {
            writeln!(
                out,
                "{}: {}: {}",
                finding.kind,
                printable(&finding.path),
                printable(&finding.problem)
            )?;
            writeln!(out, "  fix: {}", printable(&finding.fix))?;
        }
        let summary = format!(
            "{} {}, {waiting_total} {} waiting",
            mailboxes.len(),
            if mailboxes.len() == 1 {
                "mailbox"
            } else {
                "mailboxes"
            },
            if waiting_total == 1 {
                "message"
            } else {
                "messages"
            }
        );
        match doctor.findings.len() {
            0 => writeln!(
                out,
                "no problems found in {} ({summary})",
                context.comm.display()
            )?,
            n => writeln!(
                out,
                "{n} {} found in {} ({summary})",
                if n == 1 { "problem" } else { "problems" },
                context.comm.display()
            )?,
        }
    }
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    })
}

impl Doctor {
    fn add(&mut self, kind: &'static str, path: String, problem: String, fix: String) {
        self.findings.push(Finding {
            kind,
            path,
            problem,
            fix,
        });
    }

    /// Walks the folders of the layout; returns each mailbox's agent and
    /// whether its folder can be read (so its messages can be checked).
    fn check_layout(&mut self) -> anyhow::Result<Vec<(String, bool)>> {
        if !self.check_access(".") {
            return Ok(Vec::new());
        }
        let mut mailboxes = Vec::new();
        for (name, kind) in self.list(".")? {
            if let Some(agent) = names::agent_of_mailbox(&name) {
                match kind {
                    Kind::Dir => {
                        let readable = self.check_access(&name);
                        if readable {
                            self.check_mailbox(&name)?;
                        }
                        mailboxes.push((agent, readable));
                    }
                    Kind::Symlink => self.add(
                        "layout",
                        name.clone(),
                        "the mailbox is a symbolic link, which fmes never follows: \
                         it ignores this mailbox"
                            .into(),
                        format!(
                            "replace the link with a real folder: `mv` the messages into a new \
                             folder {name}"
                        ),
                    ),
                    Kind::Other => self.unknown(&name, "a file, not a mailbox folder"),
                }
                continue;
            }
            match (name.as_str(), kind) {
                (ARCHIVE_DIR, Kind::Dir) => {
                    if self.check_access(ARCHIVE_DIR) {
                        self.check_incoming(ARCHIVE_DIR)?;
                    }
                }
                (DEAD_DIR, Kind::Dir) => {
                    if self.check_access(DEAD_DIR) {
                        self.check_dead()?;
                    }
                }
                (MARKERS_DIR, Kind::Dir) => {
                    if self.check_access(MARKERS_DIR) {
                        self.check_markers()?;
                    }
                }
                _ => {
                    let what = match kind {
                        Kind::Dir if name.starts_with(MAILBOX_PREFIX) => {
                            "named like a mailbox, but not as fmes names them (To_ and the \
                             agent name with only its first letter upper-case; letters, \
                             digits, - and _): no agent reads it"
                        }
                        Kind::Dir => "a folder that is not part of the fmes layout",
                        Kind::Symlink => "a symbolic link that is not part of the fmes layout",
                        Kind::Other => "a file that is not part of the fmes layout",
                    };
                    self.unknown(&name, what);
                }
            }
        }
        Ok(mailboxes)
    }

    fn unknown(&mut self, name: &str, what: &str) {
        // A mailbox named with the wrong case: say what the right name is.
        let fix = match name.strip_prefix(MAILBOX_PREFIX) {
            Some(agent) if names::check_agent(agent).is_ok() => format!(
                "rename it to {} (the name `fmes init {}` gives it), or move it out of _COMM",
                names::mailbox_dir(agent),
                agent.to_ascii_lowercase()
            ),
            _ => "fmes ignores it; move it out of _COMM".to_string(),
        };
        self.add("unknown-entry", name.to_string(), what.to_string(), fix);
    }

    /// Temporary files, files fmes cannot name, expired claims and entries
    /// that are no claim, of one mailbox.
    fn check_mailbox(&mut self, dir: &str) -> anyhow::Result<()> {
        for name in self.names_not_utf8(dir)? {
            if !name.ends_with(".json") {
                continue;
            }
            self.add(
                "malformed",
                format!("{dir}/{name}"),
                "a file whose name is not UTF-8: fmes cannot name it, so it never \
                 counts, reads or claims it (the Python reader does)"
                    .into(),
                "rename it to a UTF-8 name ending in .json, or move it out of _COMM".into(),
            );
        }
        // A folder named like a message: fmes passes it by, the Python
        // reader stops on it (it opens every `*.json`).
        let folder_named_json =
            |name: &str, kind| kind == Kind::Dir && fmes_queue::names::looks_like_message(name);
        for (name, _) in self.list_where(dir, folder_named_json)? {
            self.add(
                "unknown-entry",
                format!("{dir}/{name}"),
                "a folder named like a message: fmes passes it by, but the Python reader \
                 fails on it"
                    .into(),
                "rename it to a name that does not end in .json, or move it out of _COMM".into(),
            );
        }
        // Only these are kept from the listing: a mailbox may hold 100,000 messages.
        let temporary = |name: &str, kind| kind == Kind::Other && name.ends_with(".tmp");
        for (name, _) in self.list_where(dir, temporary)? {
            let path = format!("{dir}/{name}");
            let Some(age) = self.age(&path) else { continue };
            if age > TEMPORARY_GRACE {
                self.add(
                    "temporary-file",
                    path,
                    format!(
                        "a temporary file a writer left {} ago (it stopped before finishing \
                         a send, which therefore did not happen)",
                        format_age(age)
                    ),
                    "`fmes recover` (or `fmes cleanup`) removes it".into(),
                );
            }
        }
        let inflight = format!("{dir}/{INFLIGHT_DIR}");
        if !self.exists(&inflight) || !self.check_access(&inflight) {
            return Ok(());
        }
        let now_ms = self
            .now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis() as u64;
        // Only expired claims are kept: a mailbox may have 100,000 in flight.
        let expired = |name: &str, _| {
            !name.contains(char::REPLACEMENT_CHARACTER)
                && fmes_queue::claims::ClaimName::parse(name)
                    .is_some_and(|c| c.expires_ms <= now_ms)
        };
        // Not a claim: no recovery returns it, and no consumer can settle it.
        let no_claim = |name: &str, kind| {
            // A name that is not UTF-8 is reported below, as it is.
            let utf8 = !name.contains(char::REPLACEMENT_CHARACTER);
            utf8 && (kind == Kind::Dir || fmes_queue::claims::ClaimName::parse(name).is_none())
        };
        let mut strays = self.list_where(&inflight, no_claim)?;
        strays.extend(
            self.names_not_utf8(&inflight)?
                .into_iter()
                .map(|n| (n, Kind::Other)),
        );
        for (name, _) in strays {
            self.add(
                "unknown-entry",
                format!("{inflight}/{name}"),
                "not a claim (claims are named {stem}~{deliveries}~{lease end, ms}~{consumer}): \
                 no recovery returns it and no consumer can acknowledge it"
                    .into(),
                format!(
                    "if it is a message, move it back into {dir}/ under a name ending in .json; \
                     else move it out of _COMM"
                ),
            );
        }
        for (name, _) in self.list_where(&inflight, expired)? {
            let Some(claim) = fmes_queue::claims::ClaimName::parse(&name) else {
                continue;
            };
            self.add(
                "expired-claim",
                format!("{inflight}/{name}"),
                format!(
                    "{}'s claim (delivery {}) expired at {}; the message waits for a \
                     recovery before anyone else can have it",
                    claim.consumer,
                    claim.deliveries,
                    output::format_ms(claim.expires_ms)
                ),
                "`fmes recover` returns it to the mailbox (a `fmes claim` on this \
                 mailbox does too); a consumer that still works on it should \
                 `fmes extend` its claims sooner"
                    .into(),
            );
        }
        Ok(())
    }

    /// Dead letters and unfinished moves under DEAD/.
    fn check_dead(&mut self) -> anyhow::Result<()> {
        for (name, kind) in self.list(DEAD_DIR)? {
            let Some(agent) = names::agent_of_mailbox(&name) else {
                continue;
            };
            let dir = format!("{DEAD_DIR}/{name}");
            if kind != Kind::Dir || !self.check_access(&dir) {
                continue;
            }
            // Counted, not kept: an agent may have 100,000 dead letters.
            // Names that are not UTF-8 are no letters fmes can list, and
            // are reported below as they are. A note whose letter is gone
            // (deleted by hand) is kept; a young one may belong to a move
            // that puts its note first.
            let mut letters = 0usize;
            let mut orphan_notes = Vec::new();
            self.each_entry(&dir, |file, kind| {
                if file.contains(char::REPLACEMENT_CHARACTER) || kind == Kind::Dir {
                    return;
                }
                match file.strip_suffix(NOTE_SUFFIX) {
                    None => letters += 1,
                    Some(letter) => {
                        let path = format!("{dir}/{file}");
                        let old = self.age(&path).is_some_and(|age| age > TEMPORARY_GRACE);
                        if old && !self.exists(&format!("{dir}/{letter}")) {
                            orphan_notes.push(path);
                        }
                    }
                }
            })?;
            for name in self.names_not_utf8(&dir)? {
                self.add(
                    "malformed",
                    format!("{dir}/{name}"),
                    "a file whose name is not UTF-8: fmes cannot name it, so no `dead` \
                     command lists, retries or purges it"
                        .into(),
                    "rename it to a UTF-8 name, or move it out of _COMM".into(),
                );
            }
            orphan_notes.sort();
            for path in orphan_notes {
                self.add(
                    "unknown-entry",
                    path,
                    "the reason of a dead letter that is no longer there".into(),
                    "delete it (`fmes dead purge` deletes a letter with its reason)".into(),
                );
            }
            if letters > 0 {
                self.add(
                    "dead-letters",
                    dir.clone(),
                    format!(
                        "{letters} dead {} for {agent}: messages no consumer finished, \
                         or files that are not messages",
                        if letters == 1 { "letter" } else { "letters" }
                    ),
                    format!(
                        "see why with `fmes dead list {agent}`, then `fmes dead retry {agent} \
                         FILE...` or `fmes dead purge {agent} FILE...`"
                    ),
                );
            }
            self.check_incoming(&dir)?;
        }
        Ok(())
    }

    /// The markers of sends with an id (`.fmes/ids/`): sends stopped before
    /// publishing, and markers no send can use.
    fn check_markers(&mut self) -> anyhow::Result<()> {
        let ids = format!("{MARKERS_DIR}/ids");
        if !self.exists(&ids) || !self.check_access(&ids) {
            return Ok(());
        }
        for (name, kind) in self.list(&ids)? {
            let path = format!("{ids}/{name}");
            if name.contains('~') {
                // A send's staged message: in use while its send runs.
                if self.age(&path).is_some_and(|age| age > TEMPORARY_GRACE) {
                    self.add(
                        "interrupted-send",
                        path,
                        "a send with an id that a stopped process began: not published yet, \
                         or not needed"
                            .into(),
                        "`fmes recover` publishes it if its marker names it, else removes it"
                            .into(),
                    );
                }
                continue;
            }
            // A regular file only: reading a FIFO would block.
            let file = kind == Kind::Other
                && std::fs::symlink_metadata(self.path(&path)).is_ok_and(|m| m.is_file());
            let usable = file
                && std::fs::read(self.path(&path)).is_ok_and(|bytes| {
                    serde_json::from_slice::<serde_json::Value>(&bytes)
                        .is_ok_and(|marker| marker["fmes_file"].is_string())
                });
            if !usable {
                self.add(
                    "malformed",
                    path,
                    format!(
                        "the marker of the message id {name} is not a message sent with \
                         that id (empty or cut short: written by an older fmes that \
                         stopped while writing it?); every send with this id fails"
                    ),
                    "if no send with this id is running, remove it, then send again".into(),
                );
            }
        }
        Ok(())
    }

    /// Moves into `dir` that a stopped process began (its `.incoming/`).
    fn check_incoming(&mut self, dir: &str) -> anyhow::Result<()> {
        let incoming = format!("{dir}/{INCOMING_DIR}");
        if !self.exists(&incoming) || !self.check_access(&incoming) {
            return Ok(());
        }
        // A name that is not UTF-8 is reported below, as it is.
        let utf8 = |name: &str, _| !name.contains(char::REPLACEMENT_CHARACTER);
        for (name, _) in self.list_where(&incoming, utf8)? {
            if name.ends_with(NOTE_SUFFIX) {
                continue;
            }
            self.add(
                "interrupted-move",
                format!("{incoming}/{name}"),
                format!(
                    "a move into {dir}/ that a stopped process began (or one in progress \
                     right now)"
                ),
                "`fmes recover` completes it".into(),
            );
        }
        for name in self.names_not_utf8(&incoming)? {
            self.add(
                "unknown-entry",
                format!("{incoming}/{name}"),
                format!(
                    "a file whose name is not UTF-8 in the staging folder of {dir}/: fmes \
                     names every move it stages in UTF-8, so no fmes process made it and \
                     `fmes recover` cannot name it"
                ),
                "if it is a message, move it into a mailbox under a UTF-8 name ending in \
                 .json; else move it out of _COMM"
                    .into(),
            );
        }
        Ok(())
    }

    /// Checks that a folder can be read, written and entered; reports what
    /// is missing. True if it can be listed.
    fn check_access(&mut self, relative: &str) -> bool {
        let path = self.path(relative);
        let missing = missing_access(&path);
        if missing.is_empty() {
            return true;
        }
        let (problem, fix) = describe_access(&path, &missing);
        self.add("permissions", relative.to_string(), problem, fix);
        !missing.contains(&"read") && !missing.contains(&"enter")
    }

    fn path(&self, relative: &str) -> PathBuf {
        if relative == "." {
            self.comm.clone()
        } else {
            self.comm.join(relative)
        }
    }

    fn exists(&self, relative: &str) -> bool {
        std::fs::symlink_metadata(self.path(relative)).is_ok()
    }

    /// Time since a file was last changed, if it can be told.
    fn age(&self, relative: &str) -> Option<Duration> {
        let modified = std::fs::symlink_metadata(self.path(relative))
            .ok()?
            .modified()
            .ok()?;
        Some(self.now.duration_since(modified).unwrap_or(Duration::ZERO))
    }

    /// The entries of a folder, sorted by name, each with its kind (links
    /// not followed).
    fn list(&self, relative: &str) -> anyhow::Result<Vec<(String, Kind)>> {
        self.list_where(relative, |_, _| true)
    }

    /// `list`, keeping only the entries `keep` accepts.
    fn list_where(
        &self,
        relative: &str,
        keep: impl Fn(&str, Kind) -> bool,
    ) -> anyhow::Result<Vec<(String, Kind)>> {
        let mut entries = Vec::new();
        self.each_entry(relative, |name, kind| {
            if keep(name, kind) {
                entries.push((name.to_string(), kind));
            }
        })?;
        entries.sort();
        Ok(entries)
    }

    /// The entries of a folder whose names are not UTF-8, each byte that is
    /// not printable ASCII escaped (`\xff`). The component sees only UTF-8
    /// names (the WIT's strings are), so fmes cannot name these.
    fn names_not_utf8(&self, relative: &str) -> anyhow::Result<Vec<String>> {
        let path = self.path(relative);
        let listing =
            std::fs::read_dir(&path).with_context(|| format!("cannot list {}", path.display()))?;
        let mut names = Vec::new();
        for entry in listing {
            let entry = entry.with_context(|| format!("cannot list {}", path.display()))?;
            let name = entry.file_name();
            if name.to_str().is_none() {
                names.push(name.as_encoded_bytes().escape_ascii().to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Calls `each` with every entry of a folder and its kind (links not
    /// followed), in no particular order; a name that is not UTF-8 with
    /// each bad byte as U+FFFD.
    fn each_entry(&self, relative: &str, mut each: impl FnMut(&str, Kind)) -> anyhow::Result<()> {
        let path = self.path(relative);
        let listing =
            std::fs::read_dir(&path).with_context(|| format!("cannot list {}", path.display()))?;
        for entry in listing {
            let entry = entry.with_context(|| format!("cannot list {}", path.display()))?;
            let kind = match entry.file_type() {
                Ok(t) if t.is_dir() => Kind::Dir,
                Ok(t) if t.is_symlink() => Kind::Symlink,
                _ => Kind::Other,
            };
            each(&entry.file_name().to_string_lossy(), kind);
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Dir,
    Symlink,
    Other,
}

/// Which of read, write and enter this process may not do in a folder.
#[cfg(unix)]
fn missing_access(path: &Path) -> Vec<&'static str> {
    use rustix::fs::{Access, AtFlags, CWD, accessat};
    [
        (Access::READ_OK, "read"),
        (Access::WRITE_OK, "write"),
        (Access::EXEC_OK, "enter"),
    ]
    .into_iter()
    // With the effective user, as opening the folder would be judged.
    .filter(|(access, _)| accessat(CWD, path, *access, AtFlags::EACCESS).is_err())
    .map(|(_, what)| what)
    .collect()
}

#[cfg(not(unix))]
fn missing_access(path: &Path) -> Vec<&'static str> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.permissions().readonly() => vec!["write"],
        Ok(_) => Vec::new(),
        Err(_) => vec!["read"],
    }
}

#[cfg(unix)]
fn describe_access(path: &Path, missing: &[&str]) -> (String, String) {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let what = match missing {
        [.., last] if missing.len() > 1 => {
            format!("{} or {last}", missing[..missing.len() - 1].join(", "))
        }
        _ => missing.join(""),
    };
    let quoted = shell_quote(path);
    match std::fs::metadata(path) {
        Ok(meta) if meta.uid() == me => (
            format!(
                "you (uid {me}) cannot {what} this folder (mode {:o})",
                meta.mode() & 0o7777
            ),
            format!("chmod u+rwx {quoted}"),
        ),
        Ok(meta) => (
            format!(
                "you (uid {me}) cannot {what} this folder; it belongs to uid {} (mode {:o})",
                meta.uid(),
                meta.mode() & 0o7777
            ),
            format!(
                "run the agents as one user, or give uid {me} access: \
                 `chown -R {me} {quoted}`, or a shared group with `chmod -R g+rwX {quoted}`"
            ),
        ),
        Err(e) => (
            format!("cannot inspect this folder: {e}"),
            "check the permissions of the folders above it".into(),
        ),
    }
}

#[cfg(not(unix))]
fn describe_access(path: &Path, missing: &[&str]) -> (String, String) {
    (
        format!("you cannot {} this folder", missing.join(", ")),
        format!("give yourself full control of {}", path.display()),
    )
}

/// A path as one shell word.
fn shell_quote(path: &Path) -> String {
    let text = path.display().to_string();
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-~".contains(c))
    {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}
