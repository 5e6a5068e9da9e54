//! The queue operations, over any [`FileSystem`].

use std::collections::VecDeque;
use std::io::{self, ErrorKind};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::claims::ClaimMemo;
use crate::clock::next_send_time;
use crate::error::QueueError;
use crate::fs::{EntryKind, FileSystem, PublishError, ReadOutcome};
use crate::message::{self, FirstKeys, Message, NewMessage, OrderKey};
use crate::names::{self, ARCHIVE_DIR};

/// Default payload limit: 1 MiB of JSON text.
pub const DEFAULT_MAX_PAYLOAD: u64 = 1024 * 1024;
/// Type of a message sent without one.
pub const DEFAULT_TYPE: &str = "TASK";
/// Priority of a message sent without one.
pub const DEFAULT_PRIORITY: u8 = 5;
/// Type of a broadcast sent without one.
pub const DEFAULT_BROADCAST_TYPE: &str = "ALERT";
/// Priority of every broadcast copy.
pub const BROADCAST_PRIORITY: u8 = 1;
/// A temporary file younger than this may be a write in progress.
pub const TEMPORARY_GRACE: Duration = Duration::from_secs(600);
/// Largest message file a reader accepts: the largest payload any sender
/// can configure is far below this, and it bounds the memory one hostile
/// file can take.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// Message files read in one batch at most, when a receive reads many.
pub(crate) const READ_AHEAD: usize = 64;
/// Bytes of messages (see [`Message::answer_bytes`]) an answer that returns
/// many holds at most: a page of a reading, a claim's batch, the files a
/// watcher names. It ends before the message that would take it past this,
/// unless that is its first, and the caller asks again for the rest.
///
/// An answer crosses from the component into its host in one copy, which
/// wasmtime caps ("hostcall fuel", 128 MiB by default in wasmtime 48;
/// other runtimes have their own caps) and counts by the bytes of its
/// strings. Half of that cap leaves room for the names and reasons beside
/// the messages, and a message alone may still fill the rest: at
/// [`MAX_FILE_BYTES`], its text and payload come to twice that, which the
/// `fmes` host makes room for. Messages of ordinary size fill thousands of
/// messages' worth of this before a page's count, so pages end on it only
/// where messages are large.
pub const ANSWER_BYTES: u64 = 64 * 1024 * 1024;
/// The name a message sent with the id `id` and the file name `file` is
/// written under before it is published: beside its marker, and named
/// after both, so that whoever reads the marker can finish publishing it.
/// None if the name would be too long for a file system (only a marker
/// from another writer could name such a file).
pub(crate) fn staged_send_name(id: &str, file: &str) -> Option<String> {
    (id.len() + 1 + file.len() <= 255).then(|| format!("{IDS_DIR}/{id}~{file}"))
}

/// Where the markers of caller-given message ids live.
const IDS_PARENT: &str = ".fmes";
const IDS_DIR: &str = ".fmes/ids";
/// Reads of an id marker that a racing sender may be writing.
const MARKER_READ_ATTEMPTS: usize = 500;
/// Attempts at a fresh name before giving up, should names keep colliding.
const NAME_ATTEMPTS: usize = 16;

/// What to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRequest {
    pub from: String,
    pub to: String,
    pub message_type: Option<String>,
    pub priority: Option<u8>,
    /// JSON text of the body.
    pub payload: String,
    pub max_payload_bytes: Option<u64>,
    /// A caller-given message id: a send whose id is already in the queue
    /// writes nothing and returns the message already there.
    pub id: Option<String>,
}

impl SendRequest {
    /// A request with the default type (`TASK`), priority (5) and payload limit (1 MiB).
    pub fn new(from: impl Into<String>, to: impl Into<String>, payload: impl Into<String>) -> Self {
        SendRequest {
            from: from.into(),
            to: to.into(),
            message_type: None,
            priority: None,
            payload: payload.into(),
            max_payload_bytes: None,
            id: None,
        }
    }

    /// The same request with a caller-given id, which makes it idempotent.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The same request with a message type.
    pub fn with_type(mut self, message_type: impl Into<String>) -> Self {
        self.message_type = Some(message_type.into());
        self
    }

    /// The same request with a priority.
    pub fn with_priority(mut self, priority: u8) -> Self {
        self.priority = Some(priority);
        self
    }
}

/// A file in a mailbox that could not be read as a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedFile {
    pub file: String,
    pub reason: String,
}

/// The result of [`Queue::receive`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Received {
    pub messages: Vec<Message>,
    pub malformed: Vec<MalformedFile>,
}

/// The result of [`Queue::cleanup`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanupReport {
    pub archived: u32,
    pub removed_temporary: u32,
}

/// How the queue trades safety for speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Flush every new file and every directory change to disk before an
    /// operation returns. Without it, a power loss or kernel crash (not a
    /// process crash) can lose messages whose operation had returned.
    pub durable: bool,
    /// Deliveries after which an unacknowledged message is dead-lettered.
    pub max_deliveries: u32,
    /// A tag unique to this host and process, carried by every name this
    /// queue creates (with a counter), so that no two writers on any
    /// machines pick one name; 0 for a random tag.
    pub origin: u32,
}

/// Deliveries before a message is dead-lettered, unless configured.
pub const DEFAULT_MAX_DELIVERIES: u32 = 5;

impl Default for Options {
    fn default() -> Self {
        Options {
            durable: true,
            max_deliveries: DEFAULT_MAX_DELIVERIES,
            origin: 0,
        }
    }
}

/// The F-MES queue rooted at a `_COMM` folder.
pub struct Queue<F> {
    pub(crate) fs: F,
    pub(crate) options: Options,
    pub(crate) claims: ClaimMemo,
    /// [`ANSWER_BYTES`], or a smaller budget in tests.
    pub(crate) answer_bytes: u64,
}

/// What an answer that returns many messages has used of its budget.
#[derive(Debug)]
pub(crate) struct AnswerBudget {
    limit: u64,
    used: u64,
    /// A message did not fit: the answer is over.
    pub(crate) full: bool,
}

impl AnswerBudget {
    /// True if a message of `bytes` fits: always the first, so that every
    /// answer makes progress. Once one does not, the answer is full.
    pub(crate) fn fits(&mut self, bytes: u64) -> bool {
        if self.used > 0 && self.used.saturating_add(bytes) > self.limit {
            self.full = true;
        }
        !self.full
    }

    /// Counts a message that went into the answer.
    pub(crate) fn add(&mut self, bytes: u64) {
        self.used = self.used.saturating_add(bytes);
    }
}

impl<F: FileSystem> Queue<F> {
    pub fn new(fs: F) -> Self {
        Queue::with_options(fs, Options::default())
    }

    pub fn with_options(fs: F, options: Options) -> Self {
        Queue {
            fs,
            options,
            claims: ClaimMemo::default(),
            answer_bytes: ANSWER_BYTES,
        }
    }

    /// This queue with a smaller answer budget than [`ANSWER_BYTES`], so
    /// that tests fill it with small messages.
    #[cfg(test)]
    pub(crate) fn with_answer_bytes(mut self, bytes: u64) -> Self {
        self.answer_bytes = bytes;
        self
    }

    /// A fresh budget for one answer.
    pub(crate) fn answer_budget(&self) -> AnswerBudget {
        AnswerBudget {
            limit: self.answer_bytes,
            used: 0,
            full: false,
        }
    }

    /// This queue with `claims` as the record of the claims it made: a
    /// caller that makes a queue per call (the component) passes the same
    /// record to each, so that settling a claim made by an earlier call
    /// need not list `.inflight/`.
    pub fn with_claim_memo(mut self, claims: ClaimMemo) -> Self {
        self.claims = claims;
        self
    }

    /// The part of a new file name that no other writer uses: the host and
    /// process tag, and this process's count of names made.
    pub(crate) fn unique_part(&self) -> UniquePart {
        static RANDOM_ORIGIN: OnceLock<u32> = OnceLock::new();
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let origin = match self.options.origin {
            0 => *RANDOM_ORIGIN.get_or_init(|| u32::from_le_bytes(random_bytes::<4>())),
            origin => origin,
        };
        let count = COUNTER.fetch_add(1, Ordering::Relaxed) as u16;
        let mut unique = [0u8; 12];
        put_hex(&mut unique[..8], &origin.to_be_bytes());
        put_hex(&mut unique[8..], &count.to_be_bytes());
        UniquePart(unique)
    }

    /// Flushes a directory's entries when durable.
    pub(crate) fn sync(&self, dir: &str) -> Result<(), QueueError> {
        if self.options.durable {
            self.fs
                .sync_dir(dir)
                .map_err(|e| QueueError::io("flush", dir, e))?;
        }
        Ok(())
    }

    /// True if a path exists (without following links).
    pub(crate) fn exists(&self, path: &str) -> Result<bool, QueueError> {
        match self.fs.status(path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(QueueError::io("inspect", path, e)),
        }
    }

    /// True if a file was last changed longer ago than the temporary-file
    /// grace period (false if it is gone or cannot be inspected).
    pub(crate) fn older_than_grace(&self, path: &str) -> bool {
        self.fs.status(path).is_ok_and(|status| {
            SystemTime::now()
                .duration_since(status.modified)
                .is_ok_and(|age| age > TEMPORARY_GRACE)
        })
    }

    /// Creates `ARCHIVE/` and the agents' mailboxes (the Python defaults when
    /// `agents` is empty); returns the agents whose mailbox was created.
    pub fn init(&self, agents: &[String]) -> Result<Vec<String>, QueueError> {
        let defaults: Vec<String>;
        let agents = if agents.is_empty() {
            defaults = names::DEFAULT_AGENTS
                .iter()
                .map(|a| a.to_string())
                .collect();
            &defaults
        } else {
            agents
        };
        for agent in agents {
            names::check_agent(agent)?;
        }
        self.ensure_dir(ARCHIVE_DIR)?;
        let mut created = Vec::new();
        for agent in agents {
            if self.ensure_dir(&names::mailbox_dir(agent))? {
                created.push(agent.clone());
            }
        }
        Ok(created)
    }

    /// Agents with a mailbox, lower-case, sorted.
    pub fn agents(&self) -> Result<Vec<String>, QueueError> {
        let entries = self
            .fs
            .list("")
            .map_err(|e| QueueError::io("list", "", e))?;
        let mut agents: Vec<String> = entries
            .into_iter()
            .filter(|e| e.kind == EntryKind::Dir)
            .filter_map(|e| names::agent_of_mailbox(&e.name))
            .collect();
        agents.sort();
        agents.dedup();
        Ok(agents)
    }

    /// Writes one message; see the WIT `send`.
    pub fn send(&self, request: SendRequest) -> Result<Message, QueueError> {
        names::check_agent(&request.from)?;
        names::check_agent(&request.to)?;
        let message_type = request.message_type.as_deref().unwrap_or(DEFAULT_TYPE);
        names::check_type(message_type)?;
        let priority = request.priority.unwrap_or(DEFAULT_PRIORITY);
        if !(1..=9).contains(&priority) {
            return Err(QueueError::InvalidPriority(priority));
        }
        let payload = parse_payload(&request.payload, request.max_payload_bytes)?;
        if let Some(id) = &request.id {
            names::check_message_id(id)?;
        }
        let new = NewMessage {
            id: request.id.clone().unwrap_or_else(uuid_v4),
            from: &request.from,
            to: &request.to,
            message_type,
            priority,
            sent: next_send_time(SystemTime::now()),
            payload,
        };
        if let Some(id) = &request.id {
            return self.publish_once(&self.mailbox(&request.to)?, &new, id);
        }
        // The mailbox is checked by publishing in it.
        let published = self.publish(&names::mailbox_dir(&request.to), &new)?;
        let NewMessage { id, sent, .. } = new;
        // The request's own strings: no copies of them.
        Ok(Message {
            id,
            from: request.from,
            to: request.to,
            message_type: request
                .message_type
                .unwrap_or_else(|| DEFAULT_TYPE.to_string()),
            priority,
            timestamp: sent.timestamp(),
            payload: published.payload,
            file: published.file,
            raw: published.text,
        })
    }

    /// Sends a copy to every other agent; see the WIT `broadcast`.
    pub fn broadcast(
        &self,
        from: &str,
        message_type: Option<&str>,
        payload: &str,
        max_payload_bytes: Option<u64>,
    ) -> Result<Vec<Message>, QueueError> {
        names::check_agent(from)?;
        let message_type = message_type.unwrap_or(DEFAULT_BROADCAST_TYPE);
        names::check_type(message_type)?;
        let payload = parse_payload(payload, max_payload_bytes)?;
        let mut sent = Vec::new();
        for agent in self.agents()? {
            if agent.eq_ignore_ascii_case(from) {
                continue;
            }
            let new = NewMessage {
                id: uuid_v4(),
                from,
                to: &agent,
                message_type,
                priority: BROADCAST_PRIORITY,
                sent: next_send_time(SystemTime::now()),
                payload: payload.clone(),
            };
            let published = self.publish(&names::mailbox_dir(&agent), &new)?;
            sent.push(stored_message(&new, published));
        }
        Ok(sent)
    }

    /// Reads waiting messages in delivery order; see the WIT `receive`.
    pub fn receive(
        &self,
        agent: &str,
        message_type: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Received, QueueError> {
        names::check_agent(agent)?;
        // The type filter is only compared, never part of a path, and other
        // writers may use types fmes would not send, so it is not checked.
        let mailbox = self.mailbox(agent)?;
        let limit = limit.map_or(usize::MAX, |l| l as usize);
        // Without a type filter, only the first `limit` fmes names in order
        // can be returned: keep just those while listing, so the first 100
        // of a huge mailbox need neither its whole listing in memory nor a
        // sort of it. If some of them turn out not to be messages, fewer
        // than `limit` remain, and the mailbox is listed again in full.
        if message_type.is_none() && limit < usize::MAX {
            let (received, complete) = self.receive_listed(&mailbox, None, limit, Some(limit))?;
            if complete {
                return Ok(received);
            }
        }
        Ok(self.receive_listed(&mailbox, message_type, limit, None)?.0)
    }

    /// `receive` on one listing of `mailbox`, keeping at most `keep` fmes
    /// names (all with `None`). False with the result if names were dropped
    /// and the result has fewer than `limit` messages: a complete answer
    /// needs them.
    fn receive_listed(
        &self,
        mailbox: &str,
        message_type: Option<&str>,
        limit: usize,
        keep: Option<usize>,
    ) -> Result<(Received, bool), QueueError> {
        let mut received = Received::default();
        // fmes names carry their order key; other files must be read for it.
        let mut by_name = FirstKeys::new(keep);
        let mut read_early: Vec<(OrderKey, Message)> = Vec::new();
        self.fs
            .for_each_entry(mailbox, &mut |name, kind| {
                if !names::looks_like_message(name) || kind == EntryKind::Dir {
                    return;
                }
                if kind != EntryKind::File {
                    received.malformed.push(MalformedFile {
                        reason: not_a_file_reason(kind),
                        file: name.to_string(),
                    });
                    return;
                }
                if !by_name.offer_name(name) {
                    match self.read_message(mailbox, name) {
                        Some(Ok((message, key))) => read_early.push((key, message)),
                        Some(Err(bad)) => received.malformed.push(bad),
                        None => {}
                    }
                }
            })
            .map_err(|e| self.listing_failed(mailbox, e))?;
        let dropped = by_name.dropped;

        // Merge both kinds in delivery order, reading fmes-named files only
        // as far as the limit needs.
        let mut order: Vec<(OrderKey, Option<Message>)> = by_name
            .into_sorted_vec()
            .into_iter()
            .map(|k| (k, None))
            .chain(read_early.into_iter().map(|(k, m)| (k, Some(m))))
            .collect();
        order.sort_by(|a, b| a.0.cmp(&b.0));
        // Past the last key kept, a dropped fmes name may come first.
        let last_kept = order
            .iter()
            .rev()
            .find(|(_, m)| m.is_none())
            .map(|(k, _)| k.clone());
        // The files still to read, in order. They are read ahead in batches
        // (no more than the limit can still take when every message counts).
        let unread: Vec<usize> = (0..order.len()).filter(|&i| order[i].1.is_none()).collect();
        let mut next_unread = 0;
        let mut ahead = VecDeque::new();
        for i in 0..order.len() {
            if received.messages.len() >= limit {
                break;
            }
            if dropped && last_kept.as_ref().is_some_and(|last| order[i].0 > *last) {
                return Ok((received, false));
            }
            let message = match order[i].1.take() {
                Some(message) => message,
                None => {
                    if ahead.is_empty() {
                        let room = match message_type {
                            None => limit - received.messages.len(),
                            Some(_) => usize::MAX,
                        };
                        let batch = &unread[next_unread..];
                        let batch = &batch[..batch.len().min(room).min(READ_AHEAD)];
                        let files: Vec<&str> =
                            batch.iter().map(|&j| order[j].0.file.as_str()).collect();
                        ahead.extend(self.read_messages(mailbox, &files));
                        next_unread += batch.len();
                    }
                    match ahead.pop_front().flatten() {
                        Some(Ok((message, _))) => message,
                        Some(Err(bad)) => {
                            received.malformed.push(bad);
                            continue;
                        }
                        None => continue,
                    }
                }
            };
            if message_type.is_none_or(|t| t == message.message_type) {
                received.messages.push(message);
            }
        }
        let complete = !dropped || received.messages.len() >= limit;
        received.malformed.sort_by(|a, b| a.file.cmp(&b.file));
        Ok((received, complete))
    }

    /// Reads the named files of a mailbox; see the WIT `read`.
    pub fn read(&self, agent: &str, files: &[String]) -> Result<Received, QueueError> {
        names::check_agent(agent)?;
        for file in files {
            names::check_message_file(file)?;
        }
        let mailbox = self.mailbox(agent)?;
        let mut unique: Vec<&str> = files.iter().map(String::as_str).collect();
        unique.sort();
        unique.dedup();
        let mut received = Received::default();
        let mut read: Vec<(OrderKey, Message)> = Vec::new();
        // In name order, so that a caller whose answer ended on the budget
        // knows which names were not read: those after the last answered.
        let mut budget = self.answer_budget();
        self.read_messages_until(&mailbox, &unique, |_, answer| {
            match answer {
                Some(Ok((message, key))) => {
                    let bytes = message.answer_bytes();
                    if !budget.fits(bytes) {
                        return false;
                    }
                    budget.add(bytes);
                    read.push((key, message));
                }
                Some(Err(bad)) => received.malformed.push(bad),
                None => {}
            }
            true
        });
        read.sort_by(|a, b| a.0.cmp(&b.0));
        received.messages = read.into_iter().map(|(_, m)| m).collect();
        Ok(received)
    }

    /// Counts `*.json` entries in a mailbox; see the WIT `peek`.
    pub fn peek(&self, agent: &str) -> Result<u32, QueueError> {
        names::check_agent(agent)?;
        let mailbox = self.mailbox(agent)?;
        let mut count = 0usize;
        self.fs
            .for_each_entry(&mailbox, &mut |name, kind| {
                if kind != EntryKind::Dir && names::looks_like_message(name) {
                    count += 1;
                }
            })
            .map_err(|e| self.listing_failed(&mailbox, e))?;
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    /// Moves a message into `ARCHIVE/`; see the WIT `archive`.
    pub fn archive(&self, agent: &str, file: &str) -> Result<String, QueueError> {
        names::check_agent(agent)?;
        names::check_message_file(file)?;
        let mailbox = self.mailbox(agent)?;
        self.archive_from(&mailbox, file)
    }

    /// Archives old messages and removes stale temporary files; see the WIT `cleanup`.
    pub fn cleanup(&self, max_age: Duration) -> Result<CleanupReport, QueueError> {
        let now = SystemTime::now();
        let mut report = CleanupReport::default();
        for agent in self.agents()? {
            let mailbox = names::mailbox_dir(&agent);
            let entries = match self.fs.list(&mailbox) {
                Ok(entries) => entries,
                // The mailbox itself went away mid-sweep.
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(QueueError::io("list", &mailbox, e)),
            };
            for entry in entries {
                let is_message = names::looks_like_message(&entry.name);
                let is_temporary = entry.name.ends_with(".tmp");
                if entry.kind != EntryKind::File || !(is_message || is_temporary) {
                    continue;
                }
                let path = format!("{mailbox}/{}", entry.name);
                let modified = match self.fs.status(&path) {
                    Ok(status) => status.modified,
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => return Err(QueueError::io("inspect", &path, e)),
                };
                let age = now.duration_since(modified).unwrap_or(Duration::ZERO);
                if is_message && age >= max_age {
                    match self.archive_from(&mailbox, &entry.name) {
                        Ok(_) => report.archived += 1,
                        Err(QueueError::NotFound(_)) => {}
                        Err(e) => return Err(e),
                    }
                } else if is_temporary && age > TEMPORARY_GRACE {
                    match self.fs.remove_file(&path) {
                        Ok(()) => report.removed_temporary += 1,
                        Err(e) if e.kind() == ErrorKind::NotFound => {}
                        Err(e) => return Err(QueueError::io("remove", &path, e)),
                    }
                }
            }
        }
        Ok(report)
    }

    /// The error of listing `mailbox`, found a moment before: removed
    /// since, it is an unknown agent, as it would have been a moment
    /// earlier (a caller following mailboxes takes that as the mailbox
    /// gone, not as a failure to read one that is there).
    pub(crate) fn listing_failed(&self, mailbox: &str, e: io::Error) -> QueueError {
        // Its status, not `folder_kind`, which may answer from a handle
        // still open on the folder removed.
        let gone = e.kind() == ErrorKind::NotFound
            && self
                .fs
                .status(mailbox)
                .is_err_and(|now| now.kind() == ErrorKind::NotFound);
        match names::agent_of_mailbox(mailbox).filter(|_| gone) {
            Some(name) => QueueError::UnknownAgent {
                name,
                known: self.agents().unwrap_or_default(),
            },
            None => QueueError::io("list", mailbox, e),
        }
    }

    /// The mailbox folder of a valid agent name, checked to exist.
    pub(crate) fn mailbox(&self, agent: &str) -> Result<String, QueueError> {
        let dir = names::mailbox_dir(agent);
        match self.fs.folder_kind(&dir) {
            Ok(EntryKind::Dir) => Ok(dir),
            Ok(kind) => Err(QueueError::InvalidLayout(format!(
                "{dir} is {}, not a mailbox folder",
                describe_kind(kind)
            ))),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(QueueError::UnknownAgent {
                name: agent.to_string(),
                known: self.agents()?,
            }),
            Err(e) => Err(QueueError::io("inspect", &dir, e)),
        }
    }

    /// Creates a directory unless it exists; true if this call created it.
    ///
    /// The folder is looked at first, and created only if missing: it
    /// nearly always exists (a claim, an ack, an archive each ensure one or
    /// two), and looking at it opens it for the work that follows in the
    /// component, where trying to create it first cost two more calls.
    pub(crate) fn ensure_dir(&self, dir: &str) -> Result<bool, QueueError> {
        let not_a_folder = |kind| {
            QueueError::InvalidLayout(format!("{dir} is {}, not a folder", describe_kind(kind)))
        };
        match self.fs.folder_kind(dir) {
            Ok(EntryKind::Dir) => return Ok(false),
            Ok(kind) => return Err(not_a_folder(kind)),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(QueueError::io("inspect", dir, e)),
        }
        match self.fs.create_dir(dir) {
            Ok(()) => Ok(true),
            // Made by another process since it was looked at.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => match self.fs.status(dir) {
                Ok(status) if status.kind == EntryKind::Dir => Ok(false),
                Ok(status) => Err(not_a_folder(status.kind)),
                Err(e) => Err(QueueError::io("inspect", dir, e)),
            },
            Err(e) => Err(QueueError::io("create", dir, e)),
        }
    }

    /// Writes a message under a temporary name, then gives it its final
    /// name with a hard link, which fails rather than replace a file; a
    /// reader never sees a partial message.
    fn publish(&self, mailbox: &str, new: &NewMessage<'_>) -> Result<Published, QueueError> {
        let (text, payload) = stored_text(new, None)?;
        let mut attempt = 0;
        let file = loop {
            attempt += 1;
            let file = new.file_name(self.unique_part().as_str());
            match self
                .fs
                .publish(mailbox, &file, text.as_bytes(), self.options.durable)
            {
                Ok(()) => break file,
                // Taken by another writer's file (never by ours: names are
                // unique to this process): try another name.
                Err(PublishError::Write(e) | PublishError::Link(e))
                    if e.kind() == ErrorKind::AlreadyExists && attempt < NAME_ATTEMPTS =>
                {
                    continue;
                }
                Err(PublishError::Folder(e)) => {
                    // Said as for any other operation on a mailbox that is
                    // missing or not a folder; if it has become one since,
                    // the failure itself.
                    self.mailbox(new.to)?;
                    return Err(QueueError::io("open", mailbox, e));
                }
                Err(PublishError::Write(e)) => {
                    return Err(QueueError::io(
                        "write",
                        &format!("{mailbox}/{}", crate::fs::temporary_name(&file)),
                        e,
                    ));
                }
                Err(PublishError::Link(e)) => {
                    return Err(QueueError::io("publish", &format!("{mailbox}/{file}"), e));
                }
                Err(PublishError::Flush(e)) => return Err(QueueError::io("flush", mailbox, e)),
            }
        };
        Ok(Published {
            text,
            payload,
            file,
        })
    }

    /// Sends a message with a caller-given id at most once.
    ///
    /// The message is first written whole under its staged name
    /// `.fmes/ids/{id}~{file}` (see [`staged_send_name`]), with its file name
    /// in the extra field `fmes_file`; it then becomes the id's marker
    /// `.fmes/ids/{id}` by a link, which fails if the marker exists (so a
    /// marker is never seen part-written, even after a crash), and is
    /// published by renaming the staged name into the mailbox. Every later
    /// move of the message (claim, release, ack, archive, dead letter) is a
    /// rename or a link of that same file, so the marker has a second name
    /// exactly while the message is anywhere in the queue.
    ///
    /// A send that finds the marker finishes what its first sender began:
    /// it renames the staged name into the mailbox, which succeeds once,
    /// for whoever comes first (the first sender, or any of its retries),
    /// and fails for the others, since no one makes that name again. So a
    /// message is published once, however its senders interleave: a retry
    /// can no longer see it unpublished, publish it, and have a claim free
    /// its name in the mailbox for the first sender to publish it again.
    /// Only a message purged since (or a marker made by an older fmes, which
    /// published by linking the marker) is published from the marker.
    fn publish_once(
        &self,
        mailbox: &str,
        new: &NewMessage<'_>,
        id: &str,
    ) -> Result<Message, QueueError> {
        self.ensure_dir(IDS_PARENT)?;
        self.ensure_dir(IDS_DIR)?;
        let marker = format!("{IDS_DIR}/{id}");
        let file = new.file_name(self.unique_part().as_str());
        let (text, payload) = stored_text(new, Some(&file))?;
        let staged = staged_send_name(id, &file).expect("an fmes name fits beside any id");
        self.fs
            .write_new(&staged, text.as_bytes(), self.options.durable)
            .map_err(|e| QueueError::io("write", &staged, e))?;
        let message = match self.fs.link(&staged, &marker) {
            Ok(()) => {
                self.sync(IDS_DIR)?;
                let published = Published {
                    text,
                    payload,
                    file,
                };
                stored_message(new, published)
            }
            Err(e) => {
                // Sent before (or failed): this copy is not needed. A name
                // that cannot be removed now is removed by `recover`.
                let _ = self.fs.remove_file(&staged);
                if e.kind() != ErrorKind::AlreadyExists {
                    return Err(QueueError::io("write", &marker, e));
                }
                self.read_marker(&marker)?
            }
        };
        self.finish_send(&marker, id, mailbox, message)
    }

    /// Publishes the message of the marker `marker` in `mailbox` unless it
    /// has been published and is still in the queue; see [`Queue::publish_once`].
    fn finish_send(
        &self,
        marker: &str,
        id: &str,
        mailbox: &str,
        message: Message,
    ) -> Result<Message, QueueError> {
        let target = format!("{mailbox}/{}", message.file);
        if let Some(staged) = staged_send_name(id, &message.file) {
            match self.fs.rename(&staged, &target) {
                Ok(()) => {
                    self.sync(mailbox)?;
                    self.sync(IDS_DIR)?;
                    return Ok(message);
                }
                // Still staged: it is the mailbox that is missing.
                Err(e) if e.kind() == ErrorKind::NotFound && self.fs.status(&staged).is_ok() => {
                    self.mailbox(&message.to)?;
                    return Err(QueueError::io("publish", &target, e));
                }
                // Published already, by its first sender or a retry.
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(QueueError::io("publish", &target, e)),
            }
        }
        let links = self
            .fs
            .link_count(marker)
            .map_err(|e| QueueError::io("inspect", marker, e))?;
        if links >= 2 {
            return Ok(message);
        }
        // Purged since it was published, or made by an older fmes: published
        // anew from the marker, and the link lets only one publisher win.
        let mailbox = self.mailbox(&message.to)?;
        let target = format!("{mailbox}/{}", message.file);
        match self.fs.link(marker, &target) {
            Ok(()) => {}
            // A racing sender of the same id published this very file.
            Err(e)
                if e.kind() == ErrorKind::AlreadyExists
                    && self.fs.same_file(marker, &target).unwrap_or(false) => {}
            Err(e) => return Err(QueueError::io("publish", &target, e)),
        }
        self.sync(&mailbox)?;
        Ok(message)
    }

    /// Finishes the sends with an id that stopped before publishing (their
    /// staged names older than [`TEMPORARY_GRACE`]), and removes the staged
    /// names of sends that stopped before making their marker, or lost it
    /// to another sender. Returns (sends finished, names removed).
    pub(crate) fn finish_staged_sends(&self) -> Result<(u32, u32), QueueError> {
        let entries = match self.fs.list(IDS_DIR) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok((0, 0)),
            Err(e) => return Err(QueueError::io("list", IDS_DIR, e)),
        };
        let now = SystemTime::now();
        let (mut finished, mut removed) = (0, 0);
        for entry in entries {
            let Some((id, file)) = entry.name.split_once('~') else {
                continue;
            };
            let staged = format!("{IDS_DIR}/{}", entry.name);
            let modified = match self.fs.status(&staged) {
                Ok(status) => status.modified,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(QueueError::io("inspect", &staged, e)),
            };
            // Younger: its sender may be at work on it right now.
            if now.duration_since(modified).unwrap_or(Duration::ZERO) <= TEMPORARY_GRACE {
                continue;
            }
            let marker = format!("{IDS_DIR}/{id}");
            if self.fs.same_file(&staged, &marker).unwrap_or(false) {
                let message = self.read_marker(&marker)?;
                if message.file == file {
                    match self.finish_send(&marker, id, &names::mailbox_dir(&message.to), message) {
                        Ok(_) => finished += 1,
                        // The recipient's mailbox is gone: left for when it is back.
                        Err(QueueError::UnknownAgent { .. }) => {}
                        Err(e) => return Err(e),
                    }
                    continue;
                }
            }
            match self.fs.remove_file(&staged) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(QueueError::io("remove", &staged, e)),
            }
        }
        Ok((finished, removed))
    }

    /// The message a marker holds, with its `fmes_file` as its file name.
    /// A marker being written this instant by a racing sender is waited for.
    fn read_marker(&self, marker: &str) -> Result<Message, QueueError> {
        for _ in 0..MARKER_READ_ATTEMPTS {
            if let Ok(ReadOutcome::Bytes(bytes)) = self.fs.read(marker, MAX_FILE_BYTES)
                && let Ok((mut message, _)) = message::parse(marker, bytes)
                && let Some(file) = serde_json::from_str::<Value>(&message.raw)
                    .ok()
                    .and_then(|v| v["fmes_file"].as_str().map(str::to_string))
                && names::check_message_file(&file).is_ok()
            {
                message.file = file;
                return Ok(message);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Err(QueueError::InvalidLayout(format!(
            "{marker} is not a message sent with that id (empty or cut short: written by \
             an older fmes that stopped while writing it?); if no send with this id is \
             running, remove it, then send again"
        )))
    }

    /// Reads one message file; `None` if it vanished (another reader archived it).
    pub(crate) fn read_message(
        &self,
        mailbox: &str,
        file: &str,
    ) -> Option<Result<(Message, OrderKey), MalformedFile>> {
        // As a batch of one: in the component that is one call into the
        // host, where a WASI read is four (open, stat, read, close).
        let outcome = self
            .fs
            .read_some(mailbox, &[file], MAX_FILE_BYTES)
            .into_iter()
            .next()
            .unwrap_or_else(|| self.read_alone(mailbox, file));
        message_from_read(file, outcome)
    }

    /// `mailbox/file` read by itself (what a backend that answers a batch
    /// with nothing leaves to do).
    fn read_alone(&self, mailbox: &str, file: &str) -> io::Result<ReadOutcome> {
        self.fs.read(&format!("{mailbox}/{file}"), MAX_FILE_BYTES)
    }

    /// `read_message` for several files of one mailbox, in order, read in
    /// as few calls as the file system allows.
    pub(crate) fn read_messages(
        &self,
        mailbox: &str,
        files: &[&str],
    ) -> Vec<Option<Result<(Message, OrderKey), MalformedFile>>> {
        let mut answers = Vec::with_capacity(files.len());
        self.read_messages_until(mailbox, files, |_, answer| {
            answers.push(answer);
            true
        });
        answers
    }

    /// [`Queue::read_messages`], handing each file's answer to `each` with
    /// its index in `files`, until `each` returns false: no file is read
    /// past the batch the file system answered then, so a caller that
    /// stops on a budget holds at most one batch more than it keeps.
    pub(crate) fn read_messages_until(
        &self,
        mailbox: &str,
        files: &[&str],
        mut each: impl FnMut(usize, Option<Result<(Message, OrderKey), MalformedFile>>) -> bool,
    ) {
        let mut done = 0;
        while done < files.len() {
            let rest = &files[done..];
            let read = self.fs.read_some(mailbox, rest, MAX_FILE_BYTES);
            if read.is_empty() {
                // A backend must answer for one at least; be safe anyway.
                for (i, file) in rest.iter().enumerate() {
                    if !each(
                        done + i,
                        message_from_read(file, self.read_alone(mailbox, file)),
                    ) {
                        return;
                    }
                }
                return;
            }
            let answered = read.len().min(rest.len());
            for (i, (file, outcome)) in rest.iter().zip(read).enumerate() {
                if !each(done + i, message_from_read(file, outcome)) {
                    return;
                }
            }
            done += answered;
        }
    }

    /// Moves `mailbox/file` into `ARCHIVE/` without replacing anything there.
    fn archive_from(&self, mailbox: &str, file: &str) -> Result<String, QueueError> {
        let source = format!("{mailbox}/{file}");
        match self.fs.status(&source) {
            Ok(status) if status.kind == EntryKind::File => {}
            // Moving a link would not read through it, but a planted link is
            // not a message either: leave it for a person to look at.
            Ok(status) => {
                return Err(QueueError::InvalidLayout(format!(
                    "{source} is {}, not a message file; it is not archived",
                    describe_kind(status.kind)
                )));
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(QueueError::NotFound(format!(
                    "{source} is not in the mailbox"
                )));
            }
            Err(e) => return Err(QueueError::io("inspect", &source, e)),
        }
        match self.settle(&source, ARCHIVE_DIR, file, None) {
            Err(QueueError::NotFound(_)) => Err(QueueError::NotFound(format!(
                "{source} is not in the mailbox"
            ))),
            other => other,
        }
    }
}

/// A message from reading its file; `None` if it vanished (another reader
/// archived it).
fn message_from_read(
    file: &str,
    read: std::io::Result<ReadOutcome>,
) -> Option<Result<(Message, OrderKey), MalformedFile>> {
    let malformed = |reason: String| MalformedFile {
        file: file.to_string(),
        reason,
    };
    match read {
        Ok(ReadOutcome::Bytes(bytes)) => Some(message::parse(file, bytes).map_err(malformed)),
        Ok(ReadOutcome::TooLarge) => Some(Err(malformed(format!(
            "larger than {MAX_FILE_BYTES} bytes; not read"
        )))),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => Some(Err(malformed(format!("cannot be read: {e}")))),
    }
}

/// A stored message's text: the Python writer's layout (two-space indent).
/// A new message's file text, and its payload compact (as
/// [`Message::payload`] holds it).
fn stored_text(
    new: &NewMessage<'_>,
    fmes_file: Option<&str>,
) -> Result<(String, String), QueueError> {
    let (text, payload) = new
        .stored_text_and_payload(fmes_file)
        .map_err(|e| QueueError::Io(format!("encode message: {e}")))?;
    // Compacted from the text just written: one pass over its bytes, where
    // serializing the payload again costs several times more in wasm.
    let payload = message::compact(&text[payload]);
    Ok((text, payload))
}

/// A message a send stored.
struct Published {
    /// The file's text.
    text: String,
    /// The payload, compact.
    payload: String,
    /// The file's name in the mailbox.
    file: String,
}

/// What a send returns for a message it published.
fn stored_message(new: &NewMessage<'_>, published: Published) -> Message {
    Message {
        id: new.id.clone(),
        from: new.from.to_string(),
        to: new.to.to_string(),
        message_type: new.message_type.to_string(),
        priority: new.priority,
        timestamp: new.sent.timestamp(),
        payload: published.payload,
        file: published.file,
        raw: published.text,
    }
}

/// Checks a payload's size, then that it is JSON.
fn parse_payload(payload: &str, max: Option<u64>) -> Result<Value, QueueError> {
    let limit = max.unwrap_or(DEFAULT_MAX_PAYLOAD);
    let size = payload.len() as u64;
    if size > limit {
        return Err(QueueError::PayloadTooLarge { size, limit });
    }
    serde_json::from_str(payload).map_err(|e| {
        let mut why = e.to_string();
        // serde_json's words for `"\ud800"` (half a surrogate pair, which
        // no text holds) or `"\u12"` name no cause.
        if why.contains("hex escape") {
            why.push_str(
                " (a \\u escape takes four hex digits, and one from \\ud800 to \\udfff \
                 must be followed by the other half of its surrogate pair)",
            );
        }
        QueueError::InvalidPayload(why)
    })
}

pub(crate) fn describe_kind(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::File => "a file",
        EntryKind::Dir => "a folder",
        EntryKind::Symlink => "a symbolic link",
        EntryKind::Other => "a special file",
    }
}

pub(crate) fn not_a_file_reason(kind: EntryKind) -> String {
    format!("is {}, not a regular file; not read", describe_kind(kind))
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // Without randomness no unique id can be made; the host always provides it.
    getrandom::fill(&mut bytes).expect("the host provides random bytes");
    bytes
}

/// `bytes` random bytes (at most 16) in lower-case hex.
pub(crate) fn random_hex(bytes: usize) -> String {
    let mut digits = [0u8; 32];
    let digits = &mut digits[..2 * bytes];
    put_hex(digits, &random_bytes::<16>()[..bytes]);
    String::from_utf8(digits.to_vec()).expect("hex digits")
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// `bytes` in lower-case hex into `out`, which holds two digits a byte:
/// what `format!("{b:02x}")` gives, without the formatting machinery (it
/// costs several times more in wasm) or an allocation.
pub(crate) fn put_hex(out: &mut [u8], bytes: &[u8]) {
    for (digits, &byte) in out.chunks_exact_mut(2).zip(bytes) {
        digits[0] = HEX_DIGITS[usize::from(byte >> 4)];
        digits[1] = HEX_DIGITS[usize::from(byte & 0x0f)];
    }
}

/// [`Queue::unique_part`]: twelve hex digits, kept off the heap (a send
/// makes one and copies it into the file name).
pub(crate) struct UniquePart([u8; 12]);

impl UniquePart {
    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("hex digits")
    }
}

/// A random (version 4) UUID, lower-case and hyphenated.
pub(crate) fn uuid_v4() -> String {
    let mut b = random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    // Written into a fixed layout and checked as text once.
    let mut id = *b"00000000-0000-0000-0000-000000000000";
    put_hex(&mut id[0..8], &b[0..4]);
    put_hex(&mut id[9..13], &b[4..6]);
    put_hex(&mut id[14..18], &b[6..8]);
    put_hex(&mut id[19..23], &b[8..10]);
    put_hex(&mut id[24..36], &b[10..16]);
    String::from_utf8(id.to_vec()).expect("hex digits")
}
