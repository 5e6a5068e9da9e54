//! The component's exports: WIT types at the edge, the plain queue inside.

use std::time::Duration;

use std::cell::{Cell, RefCell};

use crate::claims::ClaimMemo;
use crate::dead::DeadLetterCache;
use crate::fs::WasiFs;
use crate::message::OrderKey;
use crate::message::ReadingOrder;
use crate::pages::ReadingCache;
use crate::queue::{self, Options, Queue};

#[cfg(not(feature = "hosted"))]
wit_bindgen::generate!({
    path: "../wit",
    world: "queue",
});

// The same exports, plus the host's folders, listing, reads and writes; their WASI
// types are the ones the rest of the guest uses (the `wasip2` crate's).
#[cfg(feature = "hosted")]
wit_bindgen::generate!({
    path: "../wit",
    world: "queue-hosted",
    with: {
        "wasi:filesystem/types@0.2.12": wasip2::filesystem::types,
        "wasi:io/error@0.2.12": wasip2::io::error,
        "wasi:io/poll@0.2.12": wasip2::io::poll,
        "wasi:io/streams@0.2.12": wasip2::io::streams,
        "wasi:clocks/wall-clock@0.2.12": wasip2::clocks::wall_clock,
    },
});

use exports::fmes::queue::admin::{self, CleanupReport, MailboxStats};
use exports::fmes::queue::claims::{self, ClaimBatch, Claimed, RecoverReport, Released};
use exports::fmes::queue::dead_letters::{self, DeadLetter, DeadLetterPage};
use exports::fmes::queue::messages::{self, Page, Position, Received, SendRequest};
use exports::fmes::queue::types::{self, MalformedFile, Message, QueueError};

/// Where the host preopens the queue's root; nothing else is reachable.
const ROOT: &str = "/_COMM";

struct Component;

export!(Component);

thread_local! {
    /// Settings from `admin.configure`, for every later call on this instance.
    static OPTIONS: Cell<Options> = Cell::new(Options::default());
    /// What `receive-page` keeps between the pages of a reading.
    static READING: RefCell<ReadingCache> = RefCell::new(ReadingCache::new());
    /// The claims this instance made, for settling them without a listing.
    static CLAIMS: ClaimMemo = ClaimMemo::default();
    /// What `dead-letters.list-page` keeps between the pages of a reading.
    static DEAD_READING: RefCell<DeadLetterCache> = RefCell::new(DeadLetterCache::new());
}

fn queue() -> Result<Queue<WasiFs>, crate::QueueError> {
    let fs = WasiFs::preopen(ROOT).map_err(|e| crate::QueueError::io("open", "", e))?;
    let claims = CLAIMS.with(ClaimMemo::clone);
    Ok(Queue::with_options(fs, OPTIONS.get()).with_claim_memo(claims))
}

fn received(r: crate::Received) -> Received {
    Received {
        messages: r.messages.into_iter().map(Message::from).collect(),
        malformed: r.malformed.into_iter().map(malformed).collect(),
    }
}

fn order_key(p: Position) -> OrderKey {
    OrderKey {
        priority: p.priority,
        sent: crate::clock::UtcNanos(p.sent_ns),
        file: p.file,
    }
}

fn page_out(page: crate::Page) -> Page {
    Page {
        messages: page.messages.into_iter().map(Message::from).collect(),
        malformed: page.malformed.into_iter().map(malformed).collect(),
        next: page.next.map(|key| Position {
            priority: key.priority,
            sent_ns: key.sent.0,
            file: key.file,
        }),
    }
}

fn malformed(m: crate::MalformedFile) -> MalformedFile {
    MalformedFile {
        file: m.file,
        reason: m.reason,
    }
}

impl admin::Guest for Component {
    fn configure(options: admin::Options) {
        OPTIONS.set(Options {
            durable: options.durable,
            // Zero deliveries would dead-letter every message unseen.
            max_deliveries: options.max_deliveries.max(1),
            origin: options.origin,
        });
    }

    fn stats() -> Result<Vec<MailboxStats>, QueueError> {
        let stats = queue()?.stats()?;
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

    fn init(agents: Vec<String>) -> Result<Vec<String>, QueueError> {
        Ok(queue()?.init(&agents)?)
    }

    fn agents() -> Result<Vec<String>, QueueError> {
        Ok(queue()?.agents()?)
    }

    fn cleanup(max_age_seconds: u64) -> Result<CleanupReport, QueueError> {
        let report = queue()?.cleanup(Duration::from_secs(max_age_seconds))?;
        Ok(CleanupReport {
            archived: report.archived,
            removed_temporary: report.removed_temporary,
        })
    }
}

impl messages::Guest for Component {
    fn send(request: SendRequest) -> Result<Message, QueueError> {
        let request = queue::SendRequest {
            from: request.from,
            to: request.to,
            message_type: request.type_,
            priority: request.priority,
            payload: request.payload,
            max_payload_bytes: request.max_payload_bytes,
            id: request.id,
        };
        Ok(queue()?.send(request)?.into())
    }

    fn broadcast(
        from: String,
        message_type: Option<String>,
        payload: String,
        max_payload_bytes: Option<u64>,
    ) -> Result<Vec<Message>, QueueError> {
        let sent =
            queue()?.broadcast(&from, message_type.as_deref(), &payload, max_payload_bytes)?;
        Ok(sent.into_iter().map(Message::from).collect())
    }

    fn receive(
        agent: String,
        message_type: Option<String>,
        limit: Option<u32>,
    ) -> Result<Received, QueueError> {
        Ok(received(queue()?.receive(
            &agent,
            message_type.as_deref(),
            limit,
        )?))
    }

    fn receive_page(
        agent: String,
        message_type: Option<String>,
        limit: u32,
        after: Option<Position>,
    ) -> Result<Page, QueueError> {
        page_in(ReadingOrder::Delivery, agent, message_type, limit, after)
    }

    fn receive_page_by_send_time(
        agent: String,
        message_type: Option<String>,
        limit: u32,
        after: Option<Position>,
    ) -> Result<Page, QueueError> {
        page_in(ReadingOrder::SendTime, agent, message_type, limit, after)
    }

    fn read(agent: String, files: Vec<String>) -> Result<Received, QueueError> {
        Ok(received(queue()?.read(&agent, &files)?))
    }

    fn peek(agent: String) -> Result<u32, QueueError> {
        Ok(queue()?.peek(&agent)?)
    }

    fn archive(agent: String, file: String) -> Result<String, QueueError> {
        Ok(queue()?.archive(&agent, &file)?)
    }
}

impl claims::Guest for Component {
    fn claim(
        agent: String,
        consumer: String,
        limit: u32,
        lease_ms: u64,
    ) -> Result<ClaimBatch, QueueError> {
        let batch = queue()?.claim(&agent, &consumer, limit, Duration::from_millis(lease_ms))?;
        Ok(ClaimBatch {
            claimed: batch
                .claimed
                .into_iter()
                .map(|c| Claimed {
                    message: c.message.into(),
                    deliveries: c.deliveries,
                    lease_expires_ms: c.lease_expires_ms,
                })
                .collect(),
            dead_lettered: batch.dead_lettered.into_iter().map(malformed).collect(),
        })
    }

    fn ack(agent: String, consumer: String, file: String) -> Result<String, QueueError> {
        Ok(queue()?.ack(&agent, &consumer, &file)?)
    }

    fn release(agent: String, consumer: String, file: String) -> Result<Released, QueueError> {
        Ok(match queue()?.release(&agent, &consumer, &file)? {
            crate::Released::Returned(name) => Released::Returned(name),
            crate::Released::DeadLettered(name) => Released::DeadLettered(name),
        })
    }

    fn give_back(agent: String, consumer: String, file: String) -> Result<String, QueueError> {
        Ok(queue()?.give_back(&agent, &consumer, &file)?)
    }

    fn extend(
        agent: String,
        consumer: String,
        file: String,
        lease_ms: u64,
    ) -> Result<u64, QueueError> {
        Ok(queue()?.extend(&agent, &consumer, &file, Duration::from_millis(lease_ms))?)
    }

    fn recover() -> Result<RecoverReport, QueueError> {
        let r = queue()?.recover()?;
        Ok(RecoverReport {
            returned: r.returned,
            dead_lettered: r.dead_lettered,
            finished_moves: r.finished_moves,
            removed_temporary: r.removed_temporary,
        })
    }
}

impl dead_letters::Guest for Component {
    fn list(agent: Option<String>) -> Result<Vec<DeadLetter>, QueueError> {
        let letters = queue()?.dead_letters(agent.as_deref())?;
        Ok(letters.into_iter().map(dead_letter).collect())
    }

    fn list_page(
        agent: String,
        limit: u32,
        after: Option<String>,
    ) -> Result<DeadLetterPage, QueueError> {
        let queue = queue()?;
        let page = DEAD_READING.with_borrow_mut(|cache| {
            queue.dead_letter_page(&agent, limit, after.as_deref(), cache)
        })?;
        Ok(DeadLetterPage {
            letters: page.letters.into_iter().map(dead_letter).collect(),
            next: page.next,
        })
    }

    fn retry(agent: String, file: String) -> Result<String, QueueError> {
        Ok(queue()?.retry_dead_letter(&agent, &file)?)
    }

    fn purge(agent: Option<String>, file: Option<String>) -> Result<Vec<DeadLetter>, QueueError> {
        let purged = queue()?.purge_dead_letters(agent.as_deref(), file.as_deref())?;
        Ok(purged.into_iter().map(dead_letter).collect())
    }
}

/// A page of a reading in `order`, with the instance's reading cache.
fn page_in(
    order: ReadingOrder,
    agent: String,
    message_type: Option<String>,
    limit: u32,
    after: Option<Position>,
) -> Result<Page, QueueError> {
    let after = after.map(order_key);
    let page = READING.with_borrow_mut(|cache| {
        let message_type = message_type.as_deref();
        queue()?.page_in(order, &agent, message_type, limit, after.as_ref(), cache)
    })?;
    Ok(page_out(page))
}

fn dead_letter(d: crate::DeadLetter) -> DeadLetter {
    DeadLetter {
        agent: d.agent,
        file: d.file,
        reason: d.reason,
        deliveries: d.deliveries,
        dead_at_ms: d.dead_at_ms,
    }
}

impl From<crate::Message> for Message {
    fn from(m: crate::Message) -> Self {
        Message {
            id: m.id,
            from: m.from,
            to: m.to,
            type_: m.message_type,
            priority: m.priority,
            timestamp: m.timestamp,
            payload: m.payload,
            file: m.file,
            raw: m.raw,
        }
    }
}

impl From<crate::QueueError> for QueueError {
    fn from(e: crate::QueueError) -> Self {
        use crate::QueueError as E;
        match e {
            E::InvalidAgentName(name) => QueueError::InvalidAgentName(name),
            E::InvalidConsumer(name) => QueueError::InvalidConsumer(name),
            E::InvalidMessageId(id) => QueueError::InvalidMessageId(id),
            E::UnknownAgent { name, known } => {
                QueueError::UnknownAgent(types::UnknownAgent { name, known })
            }
            E::InvalidPriority(p) => QueueError::InvalidPriority(p),
            E::InvalidType(t) => QueueError::InvalidType(t),
            E::InvalidPayload(why) => QueueError::InvalidPayload(why),
            E::PayloadTooLarge { size, limit } => {
                QueueError::PayloadTooLarge(types::PayloadTooLarge { size, limit })
            }
            E::InvalidFileName(f) => QueueError::InvalidFileName(f),
            E::NotFound(what) => QueueError::NotFound(what),
            E::InvalidLayout(what) => QueueError::InvalidLayout(what),
            E::Io(what) => QueueError::Io(what),
        }
    }
}
