//! [`Comm`]: a `_COMM` folder opened through the sandboxed queue component.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use wasmtime::Store;

use crate::bindings::QueueHosted;
use crate::bindings::exports::fmes::queue::{admin, claims, dead_letters, messages, types};
use crate::error::{Error, QueueError};
use crate::runtime::Runtime;
use crate::sandbox::Sandbox;
use fmes_queue::clock::UtcNanos;
use fmes_queue::dead::DeadLetterPage;
use fmes_queue::message::OrderKey;
use fmes_queue::{
    ClaimBatch, Claimed, CleanupReport, DeadLetter, MailboxStats, MalformedFile, Message, Options,
    Page, Received, RecoverReport, Released, SendRequest,
};

/// Messages per [`Comm::receive_page`] call where the CLI and watchers read a
/// whole mailbox: a page takes about 1.5 KiB a message in memory, and the
/// component lists keys for 25,000 more at once, so a mailbox of 100,000 is
/// listed four times.
pub const PAGE: u32 = 1_000;

/// Epoch ticks allowed for instantiation (ten seconds).
const INSTANTIATE_TICKS: u64 = 1_000;

/// A `_COMM` folder, every operation of which runs inside the queue
/// component, whose only reachable directory is that folder.
pub struct Comm {
    dir: PathBuf,
    runtime: Arc<Runtime>,
    /// The live instance; dropped after a trap, since a trapped instance
    /// must not be called again, and made anew on the next call.
    instance: Option<(Store<Sandbox>, QueueHosted)>,
    options: Options,
}

impl Comm {
    /// Opens an existing `_COMM` folder with the process's shared runtime.
    pub fn open(dir: impl AsRef<Path>) -> Result<Comm, Error> {
        Comm::open_with(Runtime::shared()?, dir)
    }

    /// Creates the `_COMM` folder (and its parents) if needed, then opens it.
    pub fn create(dir: impl AsRef<Path>) -> Result<Comm, Error> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| Error::OpenComm {
            path: dir.to_path_buf(),
            source,
        })?;
        Comm::open(dir)
    }

    /// Opens an existing `_COMM` folder with a given runtime.
    pub fn open_with(runtime: Arc<Runtime>, dir: impl AsRef<Path>) -> Result<Comm, Error> {
        let dir = dir.as_ref();
        match std::fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(Error::OpenComm {
                    path: dir.to_path_buf(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotADirectory,
                        "not a directory",
                    ),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::MissingComm {
                    path: dir.to_path_buf(),
                });
            }
            Err(source) => {
                return Err(Error::OpenComm {
                    path: dir.to_path_buf(),
                    source,
                });
            }
        }
        Ok(Comm {
            dir: dir.to_path_buf(),
            runtime,
            instance: None,
            options: Options {
                origin: handle_origin(),
                ..Options::default()
            },
        })
    }

    /// Changes durability and the delivery limit for every later call. An
    /// `origin` of 0 keeps this process's tag.
    pub fn set_options(&mut self, mut options: Options) -> Result<(), Error> {
        if options.origin == 0 {
            options.origin = self.options.origin;
        }
        self.options = options;
        if self.instance.is_some() {
            let options = wit_options(options);
            self.call(|q, s| q.fmes_queue_admin().call_configure(s, options).map(Ok))?;
        }
        Ok(())
    }

    /// The settings in force.
    pub fn options(&self) -> Options {
        self.options
    }

    /// The folder this handle works on.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates `ARCHIVE/` and mailboxes (the Python defaults when `agents` is
    /// empty); returns the agents whose mailbox was created.
    pub fn init<S: AsRef<str>>(&mut self, agents: &[S]) -> Result<Vec<String>, Error> {
        let agents: Vec<String> = agents.iter().map(|a| a.as_ref().to_string()).collect();
        self.call(|q, s| q.fmes_queue_admin().call_init(s, &agents))
    }

    /// Agents that have a mailbox, lower-case, sorted.
    pub fn agents(&mut self) -> Result<Vec<String>, Error> {
        self.call(|q, s| q.fmes_queue_admin().call_agents(s))
    }

    /// Sends one message; returns it as stored.
    pub fn send(&mut self, request: &SendRequest) -> Result<Message, Error> {
        let request = messages::SendRequest {
            from: request.from.clone(),
            to: request.to.clone(),
            type_: request.message_type.clone(),
            priority: request.priority,
            payload: request.payload.clone(),
            max_payload_bytes: request.max_payload_bytes,
            id: request.id.clone(),
        };
        self.call(|q, s| q.fmes_queue_messages().call_send(s, &request))
            .map(into_message)
    }

    /// Sends a copy to every agent but the sender, at priority 1.
    pub fn broadcast(
        &mut self,
        from: &str,
        message_type: Option<&str>,
        payload: &str,
        max_payload_bytes: Option<u64>,
    ) -> Result<Vec<Message>, Error> {
        let message_type = message_type.map(str::to_string);
        self.call(|q, s| {
            q.fmes_queue_messages().call_broadcast(
                s,
                from,
                message_type.as_deref(),
                payload,
                max_payload_bytes,
            )
        })
        .map(|sent| sent.into_iter().map(into_message).collect())
    }

    /// Reads the named files of a mailbox (a watcher's new files), in delivery
    /// order; files no longer there are left out.
    pub fn read(&mut self, agent: &str, files: &[String]) -> Result<Received, Error> {
        let mut rest: Vec<String> = files.to_vec();
        rest.sort();
        rest.dedup();
        let mut received = Received::default();
        let mut answers = 0;
        // The component reads in name order and ends an answer early when
        // its messages are large: the names after the last one answered
        // were not read, or are gone. Asked again until an answer has
        // nothing, every file there is read. Asked once at least: an
        // unknown agent is an error even with no names.
        loop {
            let answer = self.call(|q, s| q.fmes_queue_messages().call_read(s, agent, &rest))?;
            let answer = into_received(answer);
            let last = answer
                .messages
                .iter()
                .map(|m| &m.file)
                .chain(answer.malformed.iter().map(|m| &m.file))
                .max()
                .cloned();
            let Some(last) = last else { break };
            answers += 1;
            rest.retain(|file| *file > last);
            received.messages.extend(answer.messages);
            received.malformed.extend(answer.malformed);
            if rest.is_empty() {
                break;
            }
        }
        if answers > 1 {
            received.messages.sort_by_cached_key(Message::order_key);
            received.malformed.sort_by(|a, b| a.file.cmp(&b.file));
        }
        Ok(received)
    }

    /// Reads waiting messages in delivery order, and the files that are not
    /// messages: up to `limit` messages (all with `None`).
    ///
    /// Read as one page of all it asks for, not by the component's
    /// one-answer `receive`: a page ends early where messages are large
    /// (one answer of them all could be too big to cross out of the
    /// component), and the next goes on from there without listing again.
    /// Pages of [`PAGE`] (`read_pages`) would list a large mailbox once
    /// every 25 of them.
    pub fn receive(
        &mut self,
        agent: &str,
        message_type: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Received, Error> {
        let mut received = Received::default();
        let mut remaining = limit.unwrap_or(u32::MAX);
        let mut after = None;
        while remaining > 0 {
            let page = self.receive_page(agent, message_type, remaining, after.as_ref())?;
            remaining = remaining.saturating_sub(page.messages.len() as u32);
            received.messages.extend(page.messages);
            received.malformed.extend(page.malformed);
            after = page.next;
            if after.is_none() {
                break;
            }
        }
        received.malformed.sort_by(|a, b| a.file.cmp(&b.file));
        Ok(received)
    }

    /// Up to `limit` messages of an agent's mailbox after `after` (from the
    /// start with `None`), in delivery order: a mailbox read a page at a
    /// time, in the memory of one page. Pass the page's `next` to read on;
    /// the reading is over when it is `None`. A page may hold fewer than
    /// `limit` messages and still have a `next`. See the WIT `receive-page`.
    pub fn receive_page(
        &mut self,
        agent: &str,
        message_type: Option<&str>,
        limit: u32,
        after: Option<&OrderKey>,
    ) -> Result<Page, Error> {
        let after = after.map(position);
        let page = self.call(|q, s| {
            q.fmes_queue_messages()
                .call_receive_page(s, agent, message_type, limit, after.as_ref())
        })?;
        Ok(into_page(page))
    }

    /// [`Comm::receive_page`] in order of send time, then file name,
    /// whatever the priority: pages of several mailboxes to merge into one
    /// timeline (compare messages by [`fmes_queue::message::sent_of`], then
    /// file name). Positions compare by send time and file name alone. See
    /// the WIT `receive-page-by-send-time`.
    pub fn receive_page_by_send_time(
        &mut self,
        agent: &str,
        message_type: Option<&str>,
        limit: u32,
        after: Option<&OrderKey>,
    ) -> Result<Page, Error> {
        let after = after.map(position);
        let page = self.call(|q, s| {
            q.fmes_queue_messages().call_receive_page_by_send_time(
                s,
                agent,
                message_type,
                limit,
                after.as_ref(),
            )
        })?;
        Ok(into_page(page))
    }

    /// Reads an agent's mailbox [`PAGE`] messages at a time, in delivery
    /// order, handing each page to `each` (its `next` taken out), until the
    /// mailbox is read or `limit` messages were (all with `None`), or `each`
    /// fails. The memory of one page, for a mailbox of any size.
    pub fn read_pages<E: From<Error>>(
        &mut self,
        agent: &str,
        message_type: Option<&str>,
        limit: Option<u32>,
        mut each: impl FnMut(Page) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut remaining = limit;
        let mut after = None;
        while remaining != Some(0) {
            let size = remaining.map_or(PAGE, |r| r.min(PAGE));
            let mut page = self.receive_page(agent, message_type, size, after.as_ref())?;
            if let Some(r) = remaining.as_mut() {
                *r = r.saturating_sub(page.messages.len() as u32);
            }
            after = page.next.take();
            each(page)?;
            if after.is_none() {
                break;
            }
        }
        Ok(())
    }

    /// Counts the messages waiting for an agent.
    pub fn peek(&mut self, agent: &str) -> Result<u32, Error> {
        self.call(|q, s| q.fmes_queue_messages().call_peek(s, agent))
    }

    /// Moves one message file into `ARCHIVE/`; returns its name there.
    pub fn archive(&mut self, agent: &str, file: &str) -> Result<String, Error> {
        self.call(|q, s| q.fmes_queue_messages().call_archive(s, agent, file))
    }

    /// Archives messages older than `max_age` and removes stale temporary files.
    pub fn cleanup(&mut self, max_age: Duration) -> Result<CleanupReport, Error> {
        let report = self.call(|q, s| q.fmes_queue_admin().call_cleanup(s, max_age.as_secs()))?;
        Ok(CleanupReport {
            archived: report.archived,
            removed_temporary: report.removed_temporary,
        })
    }

    /// Counts for every mailbox.
    pub fn stats(&mut self) -> Result<Vec<MailboxStats>, Error> {
        let stats = self.call(|q, s| q.fmes_queue_admin().call_stats(s))?;
        Ok(stats
            .into_iter()
            .map(|s| MailboxStats {
                agent: s.agent,
                ready: s.ready,
                in_flight: s.in_flight,
                dead: s.dead,
                archived: s.archived,
                oldest_ready_age_ms: s.oldest_ready_age_ms,
            })
            .collect())
    }

    /// Claims up to `limit` messages for `consumer`, for `lease`.
    pub fn claim(
        &mut self,
        agent: &str,
        consumer: &str,
        limit: u32,
        lease: Duration,
    ) -> Result<ClaimBatch, Error> {
        let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
        let batch = self.call(|q, s| {
            q.fmes_queue_claims()
                .call_claim(s, agent, consumer, limit, lease_ms)
        })?;
        Ok(ClaimBatch {
            claimed: batch
                .claimed
                .into_iter()
                .map(|c| Claimed {
                    message: into_message(c.message),
                    deliveries: c.deliveries,
                    lease_expires_ms: c.lease_expires_ms,
                })
                .collect(),
            dead_lettered: batch
                .dead_lettered
                .into_iter()
                .map(into_malformed)
                .collect(),
        })
    }

    /// Acknowledges a claimed message (archives it); returns its name in `ARCHIVE/`.
    pub fn ack(&mut self, agent: &str, consumer: &str, file: &str) -> Result<String, Error> {
        self.call(|q, s| q.fmes_queue_claims().call_ack(s, agent, consumer, file))
    }

    /// Releases a claimed message back to the mailbox (or the dead letters).
    pub fn release(&mut self, agent: &str, consumer: &str, file: &str) -> Result<Released, Error> {
        let released =
            self.call(|q, s| q.fmes_queue_claims().call_release(s, agent, consumer, file))?;
        Ok(match released {
            claims::Released::Returned(name) => Released::Returned(name),
            claims::Released::DeadLettered(name) => Released::DeadLettered(name),
        })
    }

    /// Gives back a claimed message the consumer never began to handle,
    /// with the delivery count it had before the claim (where `release`
    /// counts the delivery); returns its name in the mailbox.
    pub fn give_back(&mut self, agent: &str, consumer: &str, file: &str) -> Result<String, Error> {
        self.call(|q, s| {
            q.fmes_queue_claims()
                .call_give_back(s, agent, consumer, file)
        })
    }

    /// Extends a claim's lease to `lease` from now; returns the new expiry (ms since 1970).
    pub fn extend(
        &mut self,
        agent: &str,
        consumer: &str,
        file: &str,
        lease: Duration,
    ) -> Result<u64, Error> {
        let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
        self.call(|q, s| {
            q.fmes_queue_claims()
                .call_extend(s, agent, consumer, file, lease_ms)
        })
    }

    /// Returns expired claims, completes interrupted moves, removes stale temporary files.
    pub fn recover(&mut self) -> Result<RecoverReport, Error> {
        let r = self.call(|q, s| q.fmes_queue_claims().call_recover(s))?;
        Ok(RecoverReport {
            returned: r.returned,
            dead_lettered: r.dead_lettered,
            finished_moves: r.finished_moves,
            removed_temporary: r.removed_temporary,
        })
    }

    /// Dead letters of one agent, or of all.
    pub fn dead_letters(&mut self, agent: Option<&str>) -> Result<Vec<DeadLetter>, Error> {
        let letters = self.call(|q, s| q.fmes_queue_dead_letters().call_list(s, agent))?;
        Ok(letters.into_iter().map(into_dead_letter).collect())
    }

    /// Up to `limit` dead letters of `agent` whose file names come after
    /// `after` (from the first with `None`), by file name. Pass the page's
    /// `next` to read on; the reading is over when it is `None`. See the
    /// WIT `list-page`.
    pub fn dead_letter_page(
        &mut self,
        agent: &str,
        limit: u32,
        after: Option<&str>,
    ) -> Result<DeadLetterPage, Error> {
        let page = self.call(|q, s| {
            q.fmes_queue_dead_letters()
                .call_list_page(s, agent, limit, after)
        })?;
        Ok(DeadLetterPage {
            letters: page.letters.into_iter().map(into_dead_letter).collect(),
            next: page.next,
        })
    }

    /// Hands the dead letters of one agent, or of all, to `each` one at a
    /// time, by agent then file name, reading them [`PAGE`] at a time: the
    /// memory of one page, however many there are.
    pub fn for_each_dead_letter<E: From<Error>>(
        &mut self,
        agent: Option<&str>,
        mut each: impl FnMut(DeadLetter) -> Result<(), E>,
    ) -> Result<(), E> {
        let agents = match agent {
            Some(agent) => vec![agent.to_string()],
            None => self.agents()?,
        };
        for agent in &agents {
            let mut after: Option<String> = None;
            loop {
                let page = self.dead_letter_page(agent, PAGE, after.as_deref())?;
                for letter in page.letters {
                    each(letter)?;
                }
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
        Ok(())
    }

    /// Puts a dead letter back in its mailbox; returns its name there.
    pub fn retry_dead_letter(&mut self, agent: &str, file: &str) -> Result<String, Error> {
        self.call(|q, s| q.fmes_queue_dead_letters().call_retry(s, agent, file))
    }

    /// Deletes dead letters (one, an agent's, or all); returns what was deleted.
    pub fn purge_dead_letters(
        &mut self,
        agent: Option<&str>,
        file: Option<&str>,
    ) -> Result<Vec<DeadLetter>, Error> {
        let purged = self.call(|q, s| q.fmes_queue_dead_letters().call_purge(s, agent, file))?;
        Ok(purged.into_iter().map(into_dead_letter).collect())
    }

    /// Runs one call under the time limit, making the instance if needed
    /// and dropping it if the call traps.
    fn call<T>(
        &mut self,
        f: impl FnOnce(
            &QueueHosted,
            &mut Store<Sandbox>,
        ) -> wasmtime::Result<Result<T, types::QueueError>>,
    ) -> Result<T, Error> {
        if self.instance.is_none() {
            self.instance = Some(self.instantiate()?);
        }
        let (store, queue) = self.instance.as_mut().expect("instance made above");
        store.set_epoch_deadline(self.runtime.deadline_ticks());
        let operation = operation_name(&f);
        let started = std::time::Instant::now();
        let in_flight = self.runtime.call_in_flight();
        let result = f(queue, store);
        drop(in_flight);
        tracing::debug!(
            call = operation,
            elapsed_us = started.elapsed().as_micros() as u64,
            outcome = match &result {
                Ok(Ok(_)) => "ok",
                Ok(Err(_)) => "queue error",
                Err(_) => "trap",
            },
            "queue call"
        );
        match result {
            Ok(result) => result.map_err(|e| Error::Queue(from_wit_error(e))),
            Err(trap) => {
                let (store, _) = self.instance.take().expect("instance made above");
                Err(classify_trap(&self.runtime, trap, store.data()))
            }
        }
    }

    fn instantiate(&self) -> Result<(Store<Sandbox>, QueueHosted), Error> {
        let sandbox = Sandbox::new(&self.dir, self.runtime.limits.memory).map_err(Error::Load)?;
        let mut store = Store::new(&self.runtime.engine, sandbox);
        store.limiter(|s| &mut s.limits);
        store.set_hostcall_fuel(self.runtime.limits.hostcall_fuel());
        store.epoch_deadline_trap();
        // Instantiating runs no queue code; the call's own limit is set per call.
        store.set_epoch_deadline(INSTANTIATE_TICKS);
        let _in_flight = self.runtime.call_in_flight();
        let queue = self
            .runtime
            .pre
            .instantiate(&mut store)
            .map_err(|e| Error::Load(format!("{e:#}")))?;
        store.set_epoch_deadline(self.runtime.deadline_ticks());
        tracing::debug!(comm = %self.dir.display(), "instantiated the queue component");
        queue
            .fmes_queue_admin()
            .call_configure(&mut store, wit_options(self.options))
            .map_err(|trap| classify_trap(&self.runtime, trap, store.data()))?;
        Ok((store, queue))
    }
}

/// The `Comm` method a call's closure belongs to, for logs: `send` for
/// `fmes::comm::Comm::send::{{closure}}` (the type name, which is only
/// meant for diagnostics, as this is).
fn operation_name<F>(_call: &F) -> &'static str {
    let name = std::any::type_name::<F>();
    name.strip_suffix("::{{closure}}")
        .and_then(|path| path.rsplit("::").next())
        .unwrap_or(name)
}

fn classify_trap(runtime: &Runtime, trap: wasmtime::Error, sandbox: &Sandbox) -> Error {
    if let Some(wasmtime::Trap::Interrupt) = trap.downcast_ref::<wasmtime::Trap>() {
        return Error::TimeLimit(runtime.limits.time);
    }
    if sandbox.limits.exceeded {
        return Error::MemoryLimit(runtime.limits.memory as u64);
    }
    let message = format!("{trap:#}");
    Error::Trap {
        message,
        stderr: sandbox.stderr_text(),
    }
}

/// The name tag of a new handle: this host's and process's tag, mixed with
/// a count of the handles made, since each handle's component instance
/// counts its names from zero.
fn handle_origin() -> u32 {
    static HANDLES: AtomicU32 = AtomicU32::new(0);
    let handle = HANDLES.fetch_add(1, Ordering::Relaxed);
    let mixed = crate::runtime::process_origin() ^ handle.wrapping_mul(0x9E37_79B9);
    mixed.max(1)
}

fn wit_options(options: Options) -> admin::Options {
    admin::Options {
        durable: options.durable,
        max_deliveries: options.max_deliveries,
        origin: options.origin,
    }
}

fn into_received(r: messages::Received) -> Received {
    Received {
        messages: r.messages.into_iter().map(into_message).collect(),
        malformed: r.malformed.into_iter().map(into_malformed).collect(),
    }
}

fn position(key: &OrderKey) -> messages::Position {
    messages::Position {
        priority: key.priority,
        sent_ns: key.sent.0,
        file: key.file.clone(),
    }
}

fn into_page(page: messages::Page) -> Page {
    Page {
        messages: page.messages.into_iter().map(into_message).collect(),
        malformed: page.malformed.into_iter().map(into_malformed).collect(),
        next: page.next.map(|p| OrderKey {
            priority: p.priority,
            sent: UtcNanos(p.sent_ns),
            file: p.file,
        }),
    }
}

fn into_malformed(m: types::MalformedFile) -> MalformedFile {
    MalformedFile {
        file: m.file,
        reason: m.reason,
    }
}

fn into_dead_letter(d: dead_letters::DeadLetter) -> DeadLetter {
    DeadLetter {
        agent: d.agent,
        file: d.file,
        reason: d.reason,
        deliveries: d.deliveries,
        dead_at_ms: d.dead_at_ms,
    }
}

fn into_message(m: types::Message) -> Message {
    Message {
        id: m.id,
        from: m.from,
        to: m.to,
        message_type: m.type_,
        priority: m.priority,
        timestamp: m.timestamp,
        payload: m.payload,
        file: m.file,
        raw: m.raw,
    }
}

fn from_wit_error(e: types::QueueError) -> QueueError {
    use types::QueueError as W;
    match e {
        W::InvalidAgentName(name) => QueueError::InvalidAgentName(name),
        W::InvalidConsumer(name) => QueueError::InvalidConsumer(name),
        W::InvalidMessageId(id) => QueueError::InvalidMessageId(id),
        W::UnknownAgent(u) => QueueError::UnknownAgent {
            name: u.name,
            known: u.known,
        },
        W::InvalidPriority(p) => QueueError::InvalidPriority(p),
        W::InvalidType(t) => QueueError::InvalidType(t),
        W::InvalidPayload(why) => QueueError::InvalidPayload(why),
        W::PayloadTooLarge(p) => QueueError::PayloadTooLarge {
            size: p.size,
            limit: p.limit,
        },
        W::InvalidFileName(f) => QueueError::InvalidFileName(f),
        W::NotFound(what) => QueueError::NotFound(what),
        W::InvalidLayout(what) => QueueError::InvalidLayout(what),
        W::Io(what) => QueueError::Io(what),
    }
}
