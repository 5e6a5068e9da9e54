//! Waiting for messages: woken by the file system's change notifications
//! (inotify on Linux), polling where the file system gives none or gives
//! them only for local changes (network file systems: another machine's
//! writes raise no local notification).
//!
//! One [`Follow`] serves both `fmes watch` (one agent's mailbox) and
//! `fmes tail` (every mailbox, including those made while it runs).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use fmes_queue::clock::UtcNanos;
use fmes_queue::message::sent_of;
use fmes_queue::names::{agent_of_mailbox, mailbox_dir};
use notify::{RecursiveMode, Watcher};

use crate::comm::PAGE;
use crate::{Comm, Error, MalformedFile, Message, OrderKey, QueueError};

/// Poll interval where the file system gives no notifications.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How often a follow of one mailbox that is gone looks again.
const MISSING_LOOK_INTERVAL: Duration = Duration::from_secs(1);
/// How long a follow waits quietly before checking that _COMM is still there.
const COMM_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// Which mailboxes a [`Follow`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mailboxes {
    /// One agent's mailbox, which must exist when the follow starts.
    One(String),
    /// Every mailbox, including those made while the follow runs (`_COMM`
    /// itself is watched for them).
    All,
}

/// What a follow reports.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A message that was not in its mailbox when last looked.
    Message(&'a Message),
    /// A file in `agent`'s mailbox that is not a message (reported once per
    /// file name, while it stays).
    Malformed {
        agent: &'a str,
        file: &'a MalformedFile,
    },
    /// A look is done: at every followed mailbox, or at the files the
    /// notifications named. `mailboxes` were followed at the last whole look.
    Looked { mailboxes: usize },
}

/// Following mailboxes: which, what to report, and how to learn of changes.
#[derive(Debug, Clone)]
pub struct Follow {
    pub mailboxes: Mailboxes,
    /// Only messages of this type.
    pub message_type: Option<String>,
    /// Report the messages already waiting first, not only those that arrive.
    pub include_waiting: bool,
    /// Poll even where notifications are available.
    pub poll: bool,
}

impl Follow {
    /// Calls `on_event` for each message that arrives in the mailboxes, until
    /// `on_event` fails (its error is returned) or the follow does.
    ///
    /// The first look, and any change the notifications do not name (a
    /// mailbox made or removed, an overflow, polling), reads every followed
    /// mailbox whole; otherwise only the files named are read. Files that are
    /// not messages are reported before the messages after them. New
    /// messages of one look are reported in delivery order when following one
    /// mailbox, and in order of their send time (then file name) when
    /// following all (delivery order is a mailbox's own). A whole look holds
    /// a page of each mailbox, not every message it reports. Each look ends
    /// with [`Event::Looked`].
    pub fn run<E: From<Error>>(
        &self,
        comm: &mut Comm,
        mut on_event: impl FnMut(Event<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let all = self.mailboxes == Mailboxes::All;
        let root = comm.dir().to_path_buf();
        // Per mailbox, by lower-case agent (as notifications name it).
        let mut followed: HashMap<String, Mailbox> = HashMap::new();
        // The watcher may name _COMM as given or as its real path.
        let roots: Vec<PathBuf> = std::iter::once(root.clone())
            .chain(std::fs::canonicalize(&root))
            .collect();
        let only = match &self.mailboxes {
            Mailboxes::One(agent) => {
                // Fails early, with the usual errors, for a bad or unknown agent.
                comm.peek(agent)?;
                let mailbox = Mailbox::new(agent, true);
                followed.insert(agent.to_ascii_lowercase(), mailbox);
                Some(mailbox_dir(agent))
            }
            Mailboxes::All => None,
        };
        // Watch before the first look, so nothing sent in between is missed:
        // _COMM, for mailboxes made or removed (the one followed, or any),
        // and the one mailbox (each mailbox as a look finds it).
        let (mut watcher, woken) = start_watcher(&root, roots, only.clone(), self.poll)?;
        let own_folder = only.as_ref().map(|dir| root.join(dir));
        // The queue holds _COMM open: removed or moved away, the folder it
        // reads is no longer the one at that path, which may be made anew
        // (maybe under the same inode number, once the old one is freed:
        // a handle of our own tells).
        let comm_handle = std::fs::File::open(&root).ok();
        if let Some(folder) = &own_folder {
            watch_dir(&mut *watcher, folder)?;
        }

        let mut look = true;
        let mut first = true;
        let mut appeared: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut complete: HashSet<(String, String)> = HashSet::new();
        let mut mailboxes = 0;
        // The one mailbox followed is gone: looked at again now and then,
        // as nothing may tell when _COMM goes too.
        let mut missing = false;
        loop {
            let mut new_messages = Vec::new();
            // Said plainly, not as the failure it causes (a listing of a
            // folder removed meanwhile fails), nor waited on silently.
            let removed = || {
                Error::Watch(format!(
                    "{} was removed or replaced while being followed; run again to follow \
                     the folder there now",
                    root.display()
                ))
            };
            let gone = |e: Error| match still_there(comm_handle.as_ref(), &root) {
                true => e,
                false => removed(),
            };
            if look && !still_there(comm_handle.as_ref(), &root) {
                return Err(removed().into());
            }
            if look {
                // Every mailbox: at the start, and when the watcher could not
                // say what changed.
                let agents = match &self.mailboxes {
                    Mailboxes::One(agent) => vec![agent.to_ascii_lowercase()],
                    Mailboxes::All => comm.agents().map_err(gone)?,
                };
                mailboxes = agents.len();
                for agent in &agents {
                    let mailbox = followed
                        .entry(agent.clone())
                        .or_insert_with(|| Mailbox::new(agent, false));
                    // A mailbox removed since the listing is simply not watched.
                    if !mailbox.watched
                        && watch_dir(&mut *watcher, &root.join(mailbox_dir(agent))).is_ok()
                    {
                        mailbox.watched = true;
                    }
                }
                followed.retain(|agent, _| agents.contains(agent));
                // After the first look, whatever was not there before is new
                // (all of a mailbox made since).
                let report = !first || self.include_waiting;
                let first_look = first;
                first = false;
                let message_type = self.message_type.as_deref();
                if all {
                    look_by_send_time(
                        comm,
                        &agents,
                        &mut followed,
                        message_type,
                        report,
                        &gone,
                        &mut on_event,
                    )?;
                } else if let Some(mailbox) = followed.values_mut().next() {
                    // The one mailbox. Its folder may have been removed (its
                    // watch ends with it) and made again since the last look:
                    // watched anew before it is read, so that nothing arriving
                    // in between is missed. Gone, it is empty until it is back.
                    if let Some(folder) = own_folder.as_deref().filter(|_| !first_look) {
                        let _ = watcher.unwatch(folder);
                        let _ = watch_dir(&mut *watcher, folder);
                    }
                    let mut current = SeenNames::default();
                    let mut malformed_now = HashSet::new();
                    let name = &mailbox.name;
                    // A page at a time, so a look at a huge mailbox holds one
                    // page of it.
                    let read = comm.read_pages(name, message_type, None, |page| {
                        // Bad files before the messages after them: whoever
                        // sees a message printed knows every bad file that
                        // was there before it has been reported.
                        for file in &page.malformed {
                            if !mailbox.seen_malformed.contains(&file.file) {
                                let event = Event::Malformed { agent: name, file };
                                on_event(event).map_err(Stop::Event)?;
                            }
                            malformed_now.insert(file.file.clone());
                        }
                        for message in page.messages {
                            let new = report && !mailbox.seen.contains(&message.file);
                            current.insert(&message.file);
                            if new {
                                // One mailbox: its pages come in delivery order.
                                on_event(Event::Message(&message)).map_err(Stop::Event)?;
                            }
                        }
                        Ok(())
                    });
                    missing = false;
                    match read {
                        Ok(()) => {}
                        Err(Stop::Queue(Error::Queue(QueueError::UnknownAgent { .. }))) => {
                            missing = true;
                        }
                        Err(Stop::Queue(e)) => return Err(gone(e).into()),
                        Err(Stop::Event(e)) => return Err(e),
                    }
                    mailbox.seen_malformed = malformed_now;
                    mailbox.seen = current;
                }
            } else {
                // Only the files the notifications named.
                for (agent, files) in appeared.iter().filter(|(_, files)| !files.is_empty()) {
                    let name = followed.get(agent).map_or(agent, |mailbox| &mailbox.name);
                    let received = match comm.read(name, files) {
                        Ok(received) => received,
                        Err(Error::Queue(QueueError::UnknownAgent { .. })) if all => continue,
                        Err(e) => return Err(gone(e).into()),
                    };
                    let mailbox = followed
                        .entry(agent.clone())
                        .or_insert_with(|| Mailbox::new(agent, false));
                    for file in &received.malformed {
                        // A file still being written (created, not yet closed)
                        // is not reported: its close will bring it back, complete.
                        if complete.contains(&(agent.clone(), file.file.clone()))
                            && mailbox.seen_malformed.insert(file.file.clone())
                        {
                            let agent = &mailbox.name;
                            on_event(Event::Malformed { agent, file })?;
                        }
                    }
                    for message in received.messages {
                        let wanted = self.message_type.as_deref();
                        if wanted.is_none_or(|t| t == message.message_type)
                            && mailbox.seen.insert(&message.file)
                        {
                            new_messages.push(message);
                        }
                    }
                }
            }
            if all {
                // Delivery order is a mailbox's own: across mailboxes, send time.
                new_messages.sort_by_cached_key(|m| (send_time(m), m.file.clone()));
            }
            for message in &new_messages {
                on_event(Event::Message(message))?;
            }
            on_event(Event::Looked { mailboxes })?;

            // Wait for a change, then take every change so far in one go.
            look = false;
            appeared.clear();
            complete.clear();
            // Quiet for a while: _COMM is checked (its removal is not
            // always told), and a missing mailbox looked for again.
            let change = loop {
                let wait = if missing {
                    MISSING_LOOK_INTERVAL
                } else {
                    COMM_CHECK_INTERVAL
                };
                match woken.recv_timeout(wait) {
                    Ok(change) => break change,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if !still_there(comm_handle.as_ref(), &root) {
                            return Err(removed().into());
                        }
                        if missing {
                            break Change::Look;
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        return Err(Error::Watch("the file watcher stopped".into()).into());
                    }
                }
            };
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
                        let known = followed.get(&agent).is_some_and(|m| m.seen.contains(&file));
                        let files = appeared.entry(agent).or_default();
                        if !known && !files.contains(&file) {
                            files.push(file);
                        }
                    }
                    Change::Left { agent, file } => {
                        if let Some(mailbox) = followed.get_mut(&agent) {
                            mailbox.seen.remove(&file);
                            mailbox.seen_malformed.remove(&file);
                        }
                        if let Some(files) = appeared.get_mut(&agent) {
                            files.retain(|f| *f != file);
                        }
                    }
                }
            }
        }
    }
}

/// The send time a reading by send time orders `message` by.
fn send_time(message: &Message) -> UtcNanos {
    // Always there for a message that was read: its file name's, else its
    // timestamp's, which reading checked.
    sent_of(&message.file, &message.timestamp).unwrap_or(UtcNanos(0))
}

/// A whole look at every followed mailbox that reports their new messages
/// in one timeline, by send time then file name: each mailbox is read in
/// that order a page at a time, side by side, and the earliest message at
/// the head of any mailbox's page is reported next. A look holds a page of
/// each mailbox, however many messages are new.
fn look_by_send_time<E: From<Error>>(
    comm: &mut Comm,
    agents: &[String],
    followed: &mut HashMap<String, Mailbox>,
    message_type: Option<&str>,
    report: bool,
    gone: &impl Fn(Error) -> Error,
    on_event: &mut impl FnMut(Event<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let agents: Vec<&String> = agents
        .iter()
        .filter(|agent| followed.contains_key(*agent))
        .collect();
    // Smaller pages when there are many mailboxes: a page of each is held.
    let limit = (PAGE / agents.len().max(1) as u32).max(MERGE_PAGE_MIN);
    let mut readings: Vec<Reading> = agents
        .into_iter()
        .map(|agent| Reading::new(agent, limit, report))
        .collect();
    for reading in &mut readings {
        let mailbox = &followed[&reading.agent];
        reading.fill(comm, mailbox, message_type, gone, on_event)?;
    }
    loop {
        let earliest = readings
            .iter()
            .enumerate()
            .filter_map(|(i, reading)| Some((reading.heads.front()?, i)))
            .min_by(|(a, _), (b, _)| (a.0, &a.1.file).cmp(&(b.0, &b.1.file)))
            .map(|(_, i)| i);
        let Some(i) = earliest else { break };
        let reading = &mut readings[i];
        let (_, message) = reading.heads.pop_front().expect("a head was found");
        on_event(Event::Message(&message))?;
        let mailbox = &followed[&reading.agent];
        reading.fill(comm, mailbox, message_type, gone, on_event)?;
    }
    for reading in readings.into_iter().filter(|reading| !reading.gone) {
        if let Some(mailbox) = followed.get_mut(&reading.agent) {
            mailbox.seen = reading.current;
            mailbox.seen_malformed = reading.malformed_now;
        }
    }
    Ok(())
}

/// The least messages per page when merging many mailboxes: fewer would
/// make more calls into the component than the memory saved is worth.
const MERGE_PAGE_MIN: u32 = 100;

/// One mailbox's reading by send time within [`look_by_send_time`].
struct Reading {
    /// The followed mailbox's key.
    agent: String,
    /// Messages per page.
    limit: u32,
    /// Whether new messages are reported (not on a first look that only
    /// learns what is waiting).
    report: bool,
    after: Option<OrderKey>,
    more: bool,
    /// The mailbox went away during the look.
    gone: bool,
    /// The new messages read and not yet reported, in send order.
    heads: VecDeque<(UtcNanos, Message)>,
    /// What the look found in the mailbox, to remember after it.
    current: SeenNames,
    malformed_now: HashSet<String>,
}

impl Reading {
    fn new(agent: &str, limit: u32, report: bool) -> Reading {
        Reading {
            agent: agent.to_string(),
            limit,
            report,
            after: None,
            more: true,
            gone: false,
            heads: VecDeque::new(),
            current: SeenNames::default(),
            malformed_now: HashSet::new(),
        }
    }

    /// Reads pages until one holds a new message or the mailbox is read,
    /// reporting the files that are not messages as they are found.
    fn fill<E: From<Error>>(
        &mut self,
        comm: &mut Comm,
        mailbox: &Mailbox,
        message_type: Option<&str>,
        gone: &impl Fn(Error) -> Error,
        on_event: &mut impl FnMut(Event<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        while self.heads.is_empty() && self.more {
            let after = self.after.as_ref();
            let page = match comm.receive_page_by_send_time(
                &mailbox.name,
                message_type,
                self.limit,
                after,
            ) {
                Ok(page) => page,
                // Removed since the listing: simply not followed any more.
                Err(Error::Queue(QueueError::UnknownAgent { .. })) => {
                    self.gone = true;
                    self.more = false;
                    return Ok(());
                }
                // Failing because _COMM went away: said so.
                Err(e) => return Err(gone(e).into()),
            };
            for file in &page.malformed {
                if !mailbox.seen_malformed.contains(&file.file) {
                    let agent = &mailbox.name;
                    on_event(Event::Malformed { agent, file })?;
                }
                self.malformed_now.insert(file.file.clone());
            }
            for message in page.messages {
                self.current.insert(&message.file);
                if self.report && !mailbox.seen.contains(&message.file) {
                    self.heads.push_back((send_time(&message), message));
                }
            }
            self.more = page.next.is_some();
            self.after = page.next;
        }
        Ok(())
    }
}

/// File names, as 128-bit hashes: a watcher remembers every message it has
/// reported, and a name takes about 140 bytes in a `HashSet<String>` where
/// its hash takes about 20 (2 MiB for a mailbox of 100,000, not 14). The
/// hash keys are random for each process, so no writer can pick a name
/// that shares another's hash, and two names share one by chance with a
/// probability of about 2^-128.
#[derive(Default)]
struct SeenNames(HashSet<u128>);

impl SeenNames {
    fn hash(name: &str) -> u128 {
        static KEYS: OnceLock<[RandomState; 2]> = OnceLock::new();
        let [high, low] = KEYS.get_or_init(|| [RandomState::new(), RandomState::new()]);
        (u128::from(high.hash_one(name)) << 64) | u128::from(low.hash_one(name))
    }

    fn insert(&mut self, name: &str) -> bool {
        self.0.insert(Self::hash(name))
    }

    fn contains(&self, name: &str) -> bool {
        self.0.contains(&Self::hash(name))
    }

    fn remove(&mut self, name: &str) {
        self.0.remove(&Self::hash(name));
    }
}

/// Why a look at a mailbox stopped: the queue's error, or the caller's.
enum Stop<E> {
    Queue(Error),
    Event(E),
}

impl<E> From<Error> for Stop<E> {
    fn from(e: Error) -> Self {
        Stop::Queue(e)
    }
}

/// A followed mailbox.
struct Mailbox {
    /// The agent as given (for one mailbox) or listed.
    name: String,
    /// Whether the watcher watches it (a failed watch is tried again at the
    /// next whole look).
    watched: bool,
    /// Files reported (messages) or reported as not messages, while they stay.
    seen: SeenNames,
    seen_malformed: HashSet<String>,
}

impl Mailbox {
    fn new(agent: &str, watched: bool) -> Mailbox {
        Mailbox {
            name: agent.to_string(),
            watched,
            seen: SeenNames::default(),
            seen_malformed: HashSet::new(),
        }
    }
}

/// Calls `on_event` for each message that arrives in `agent`'s mailbox
/// (of `message_type`, if given), in delivery order, until `on_event` returns
/// `false` or an error occurs. With `include_waiting`, messages already
/// waiting are reported first. With `poll`, the mailbox is polled even where
/// notifications are available. A [`Follow`] of [`Mailboxes::One`]: each
/// look ends with an [`Event::Looked`], which `on_event` may ignore.
pub fn watch(
    comm: &mut Comm,
    agent: &str,
    message_type: Option<&str>,
    include_waiting: bool,
    poll: bool,
    mut on_event: impl FnMut(Event<'_>) -> bool,
) -> Result<(), Error> {
    let follow = Follow {
        mailboxes: Mailboxes::One(agent.to_string()),
        message_type: message_type.map(str::to_string),
        include_waiting,
        poll,
    };
    // Stopped by `on_event` (`None`) or by an error.
    let run = follow.run(comm, |event| on_event(event).then_some(()).ok_or(None));
    run.or_else(|stop: Option<Error>| stop.map_or(Ok(()), Err))
}

/// Watches `dir` (_COMM), natively where it can, else by polling; its
/// changes, and those of the folders watched later, arrive on the
/// receiver. `roots` are _COMM's names; `only` is the one mailbox folder
/// followed, if only one is.
fn start_watcher(
    dir: &Path,
    roots: Vec<PathBuf>,
    only: Option<String>,
    poll: bool,
) -> Result<(Box<dyn Watcher>, mpsc::Receiver<Change>), Error> {
    let (wake, woken) = mpsc::channel::<Change>();
    let notified = wake.clone();
    let native = if poll || is_network_file_system(dir) {
        None
    } else {
        notify::recommended_watcher(move |event| {
            for change in changes(&roots, only.as_deref(), event) {
                let _ = notified.send(change);
            }
        })
        .and_then(|mut watcher| {
            watcher.watch(dir, RecursiveMode::NonRecursive)?;
            Ok(watcher)
        })
        .ok()
    };
    let watcher: Box<dyn Watcher> = match native {
        Some(watcher) => Box::new(watcher),
        None => {
            // Polling compares listings: any change means a whole look.
            let handler = move |_event: notify::Result<notify::Event>| {
                let _ = wake.send(Change::Look);
            };
            let config = notify::Config::default().with_poll_interval(POLL_INTERVAL);
            let mut watcher = notify::PollWatcher::new(handler, config)
                .map_err(|e| Error::Watch(e.to_string()))?;
            watch_dir(&mut watcher, dir)?;
            Box::new(watcher)
        }
    };
    Ok((watcher, woken))
}

fn watch_dir(watcher: &mut dyn Watcher, dir: &Path) -> Result<(), Error> {
    watcher
        .watch(dir, RecursiveMode::NonRecursive)
        .map_err(|e| Error::Watch(format!("{}: {e}", dir.display())))
}

/// What a change notification means for the follow.
enum Change {
    /// Something changed that the notification does not name (or a mailbox
    /// was made or removed): look at every followed mailbox.
    Look,
    /// A `*.json` file appeared or changed in an agent's mailbox; `closed`
    /// once its writer closed it or moved it into place (a file just created
    /// may still be empty).
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
/// `roots` are _COMM's names; following one mailbox (`only`, its folder's
/// name), of _COMM's own entries only that folder matters.
fn changes(
    roots: &[PathBuf],
    only: Option<&str>,
    event: notify::Result<notify::Event>,
) -> Vec<Change> {
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
        // Linked or created in place: complete if linked, maybe empty if
        // created by a writer that fills the final name directly (Python's).
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
        // Renames seen from both ends, and kinds the watcher did not name.
        _ => Meaning::Look,
    };
    let mut out = Vec::new();
    for path in &event.paths {
        // _COMM itself removed or moved.
        if roots.contains(path) && !matches!(meaning, Meaning::Nothing) {
            return vec![Change::Look];
        }
        let parent = path.parent();
        let in_root = parent.is_some_and(|parent| roots.iter().any(|root| root == parent));
        let agent = parent
            .filter(|_| !in_root)
            .and_then(|parent| parent.file_name())
            .and_then(|n| n.to_str())
            .and_then(agent_of_mailbox);
        let Some(agent) = agent else {
            // An entry of _COMM itself (the only other folder watched): a
            // mailbox made or removed, maybe. Following one mailbox, only
            // its own folder's (made again, its watch must be too).
            let ours = only.is_none_or(|folder| {
                in_root && path.file_name().is_some_and(|name| name == folder)
            });
            if ours && !matches!(meaning, Meaning::Nothing) {
                return vec![Change::Look];
            }
            continue;
        };
        // Only names a reader would take for a message (`*.json`, not
        // hidden, a valid file name).
        let Some(file) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
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
/// True if the folder `handle` was opened on is still at `path`: not
/// removed (no links left) and not moved away or replaced.
fn still_there(handle: Option<&std::fs::File>, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(opened) = handle.and_then(|h| h.metadata().ok()) else {
        return true; // Not known: as before.
    };
    let now = std::fs::metadata(path).ok();
    opened.nlink() > 0 && now.is_some_and(|m| (m.dev(), m.ino()) == (opened.dev(), opened.ino()))
}

/// True if `path` is on a file system whose change notifications miss
/// other machines' writes (NFS, SMB/CIFS, FUSE, Ceph, 9P, AFS, ...).
#[cfg(target_os = "linux")]
pub fn is_network_file_system(path: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    const NETWORK_MAGICS: [i64; 10] = [
        0x6969,      // NFS
        0x517B,      // SMB
        0xFF53_4D42, // CIFS
        0xFE53_4D42, // SMB2
        0x6573_5546, // FUSE (sshfs, many cluster file systems)
        0x00C3_6400, // Ceph
        0x0102_1997, // 9P
        0x5346_414F, // AFS
        0x0BD0_0BD0, // Lustre
        0x4750_4653, // GPFS
    ];
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and a zeroed out-struct of the right type.
    if unsafe { libc::statfs(c_path.as_ptr(), &mut stat) } != 0 {
        return false;
    }
    NETWORK_MAGICS.contains(&(stat.f_type as i64))
}

#[cfg(not(target_os = "linux"))]
pub fn is_network_file_system(_path: &std::path::Path) -> bool {
    false
}
