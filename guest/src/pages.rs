//! Reading a mailbox a page at a time, so that a caller that goes through
//! all of a huge mailbox (the CLI's `receive`, a watcher's first look)
//! holds one page of messages, not the whole mailbox.
//!
//! A page is found by listing the mailbox, but not every page lists it: a
//! listing keeps the order keys of up to [`ReadingCache::AHEAD`] files past
//! the page it served, and the next page that starts where this one ended
//! takes its files from them. Keys are small (a file name and two numbers)
//! and messages are not, so memory stays flat while a mailbox of 100,000
//! is listed a few times, not once per page.
//!
//! Several readings may be under way at once (a watcher merging every
//! mailbox by send time reads them all side by side); each keeps its own
//! keys, and they share the one allowance.

use std::collections::{HashMap, VecDeque};

use crate::clock::UtcNanos;
use crate::error::QueueError;
use crate::fs::{EntryKind, FileSystem};
use crate::message::{FirstKeys, Message, OrderKey, ReadingOrder};
use crate::names;
use crate::queue::{MalformedFile, Queue, READ_AHEAD, not_a_file_reason};

/// The result of [`Queue::receive_page`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// Messages in the reading's order, all after the position the page
    /// started from.
    pub messages: Vec<Message>,
    /// Files that are not messages, in file name order; see `receive_page`.
    pub malformed: Vec<MalformedFile>,
    /// Where the next page starts; `None` when nothing followed this page.
    pub next: Option<OrderKey>,
}

/// What one reader keeps between its pages: keys already listed past the
/// last page of each reading under way, and the keys of files whose names
/// do not carry one (another writer's names: their key is in their
/// contents, read once).
#[derive(Debug)]
pub struct ReadingCache {
    /// By reading under way, the most recently used last.
    aheads: Vec<Ahead>,
    /// By mailbox, then file: a key read from the file's contents, or
    /// `None` for a file that is not a message. Only the names of a
    /// mailbox's last listing are kept.
    content_keys: HashMap<String, HashMap<String, Option<(u8, UtcNanos)>>>,
    /// Keys kept past a page, shared by the readings under way.
    ahead_capacity: usize,
}

/// Keys listed past a page that was served, in the reading's order.
#[derive(Debug)]
struct Ahead {
    mailbox: String,
    order: ReadingOrder,
    /// The position these keys follow (the last one served).
    after: OrderKey,
    keys: VecDeque<OrderKey>,
    /// True if the listing had keys past these, which were not kept.
    more: bool,
}

impl ReadingCache {
    /// Keys kept past a page: about 100 bytes each, so a few MiB at most.
    pub const AHEAD: usize = 25_000;

    /// Readings whose keys are kept at once; the least recently used one
    /// past these is forgotten (it lists again when it goes on).
    pub const READINGS: usize = 64;

    pub fn new() -> ReadingCache {
        ReadingCache::with_ahead(Self::AHEAD)
    }

    /// A cache that keeps `ahead` keys past a page (tests use a small one
    /// to list often).
    pub fn with_ahead(ahead: usize) -> ReadingCache {
        ReadingCache {
            aheads: Vec::new(),
            content_keys: HashMap::new(),
            ahead_capacity: ahead,
        }
    }

    /// The keys listed right after `after` in `mailbox` in `order`, if a
    /// page ended there. A reading from the start ends the earlier readings
    /// of that mailbox in that order: nobody will go on with them.
    fn take_ahead(
        &mut self,
        mailbox: &str,
        order: ReadingOrder,
        after: Option<&OrderKey>,
    ) -> Option<Ahead> {
        let Some(after) = after else {
            self.aheads
                .retain(|ahead| ahead.mailbox != mailbox || ahead.order != order);
            return None;
        };
        let found = self.aheads.iter().position(|ahead| {
            ahead.mailbox == mailbox && ahead.order == order && ahead.after == *after
        })?;
        let ahead = self.aheads.remove(found);
        // Once its keys are used up, only a new listing knows what follows.
        (!ahead.keys.is_empty()).then_some(ahead)
    }

    /// Pages' worth of keys a listing keeps past its page at most: a reader
    /// asks for pages of one size, and one that asks for a few messages
    /// (the first 100) most likely wants no more, so it does not pay for
    /// the thousands a reading of everything goes on with.
    pub const PAGES_AHEAD: usize = 25;

    /// Keys a new listing for pages of `limit` may keep past its page: the
    /// allowance, shared with the other readings under way, and at most
    /// [`Self::PAGES_AHEAD`] pages.
    fn ahead_allowance(&self, limit: usize) -> usize {
        let shared = self.ahead_capacity / (self.aheads.len() + 1);
        shared.min(limit.saturating_mul(Self::PAGES_AHEAD))
    }

    /// Keeps a reading's keys for its next page.
    fn keep_ahead(&mut self, ahead: Ahead) {
        if self.aheads.len() >= Self::READINGS {
            self.aheads.remove(0);
        }
        self.aheads.push(ahead);
    }
}

impl Default for ReadingCache {
    fn default() -> ReadingCache {
        ReadingCache::new()
    }
}

impl<F: FileSystem> Queue<F> {
    /// Up to `limit` messages of a mailbox after the position `after` (from
    /// the start with `None`), in delivery order; see the WIT
    /// `receive-page`. `cache` is the reader's own, kept between its pages.
    ///
    /// A page may hold fewer than `limit` messages with more to come (files
    /// that are not of `message_type`, or that went away, take room, and a
    /// page ends before the message that would take it past
    /// [`ANSWER_BYTES`](crate::queue::ANSWER_BYTES), unless that is its
    /// first); the reading is over when `next` is `None`. Files that are not messages
    /// are reported once in a reading: those found by the listing on its
    /// first page, those found by reading on the page they fall in.
    pub fn receive_page(
        &self,
        agent: &str,
        message_type: Option<&str>,
        limit: u32,
        after: Option<&OrderKey>,
        cache: &mut ReadingCache,
    ) -> Result<Page, QueueError> {
        let order = ReadingOrder::Delivery;
        self.page_in(order, agent, message_type, limit, after, cache)
    }

    /// [`Queue::receive_page`] in order of send time, then file name,
    /// whatever the priority; see the WIT `receive-page-by-send-time`.
    /// Positions compare by send time and file name alone.
    pub fn receive_page_by_send_time(
        &self,
        agent: &str,
        message_type: Option<&str>,
        limit: u32,
        after: Option<&OrderKey>,
        cache: &mut ReadingCache,
    ) -> Result<Page, QueueError> {
        let order = ReadingOrder::SendTime;
        self.page_in(order, agent, message_type, limit, after, cache)
    }

    /// [`Queue::receive_page`] in either order.
    pub(crate) fn page_in(
        &self,
        order: ReadingOrder,
        agent: &str,
        message_type: Option<&str>,
        limit: u32,
        after: Option<&OrderKey>,
        cache: &mut ReadingCache,
    ) -> Result<Page, QueueError> {
        names::check_agent(agent)?;
        if let Some(after) = after {
            names::check_message_file(&after.file)?;
        }
        let mailbox = self.mailbox(agent)?;
        // A page of nothing would never move on.
        let limit = limit.max(1) as usize;
        let mut page = Page::default();
        let mut ahead = match cache.take_ahead(&mailbox, order, after) {
            Some(ahead) => ahead,
            None => self.list_after(&mailbox, order, after, limit, cache, &mut page.malformed)?,
        };
        let take = ahead.keys.len().min(limit);
        let mut keys: Vec<OrderKey> = ahead.keys.drain(..take).collect();
        let mut budget = self.answer_budget();
        // Keys gone through, up to the message that did not fit.
        let mut served = 0;
        for chunk in keys.chunks(READ_AHEAD) {
            let files: Vec<&str> = chunk.iter().map(|key| key.file.as_str()).collect();
            self.read_messages_until(&mailbox, &files, |_, read| {
                match read {
                    Some(Ok((message, _)))
                        if message_type.is_none_or(|t| t == message.message_type) =>
                    {
                        let bytes = message.answer_bytes();
                        if !budget.fits(bytes) {
                            return false;
                        }
                        budget.add(bytes);
                        page.messages.push(message);
                    }
                    Some(Ok(_)) => {}
                    Some(Err(bad)) => page.malformed.push(bad),
                    // Gone since the listing (archived, claimed).
                    None => {}
                }
                served += 1;
                true
            });
            if budget.full {
                break;
            }
        }
        // The keys past a full page are the next page's, read again then.
        for key in keys.split_off(served).into_iter().rev() {
            ahead.keys.push_front(key);
        }
        // More follows if keys were kept past this page or left unkept.
        if let Some(last) = keys.last()
            && (!ahead.keys.is_empty() || ahead.more)
        {
            page.next = Some(last.clone());
            ahead.after = last.clone();
            cache.keep_ahead(ahead);
        }
        page.malformed.sort_by(|a, b| a.file.cmp(&b.file));
        Ok(page)
    }

    /// Lists `mailbox` for the keys after `after` in `order`: the first
    /// `limit` of them and the cache's allowance more. Entries that are not
    /// messages are reported (into `malformed`) only from the start of a
    /// reading.
    fn list_after(
        &self,
        mailbox: &str,
        order: ReadingOrder,
        after: Option<&OrderKey>,
        limit: usize,
        cache: &mut ReadingCache,
        malformed: &mut Vec<MalformedFile>,
    ) -> Result<Ahead, QueueError> {
        let first_page = after.is_none();
        // From the start, every file is read afresh: its page must report
        // those that are not messages, with why.
        let mut known = cache.content_keys.remove(mailbox).unwrap_or_default();
        if first_page {
            known.clear();
        }
        let mut content_keys = HashMap::new();
        let keep = limit.saturating_add(cache.ahead_allowance(limit));
        let mut kept = FirstKeys::after(Some(keep), order, after.cloned());
        self.fs
            .for_each_entry(mailbox, &mut |name, kind| {
                if !names::looks_like_message(name) || kind == EntryKind::Dir {
                    return;
                }
                if kind != EntryKind::File {
                    if first_page {
                        malformed.push(MalformedFile {
                            reason: not_a_file_reason(kind),
                            file: name.to_string(),
                        });
                    }
                    return;
                }
                if kept.offer_name(name) {
                    return;
                }
                let key = match known.remove_entry(name) {
                    Some((name, key)) => {
                        content_keys.insert(name, key);
                        key
                    }
                    None => {
                        let key = match self.read_message(mailbox, name) {
                            Some(Ok((_, key))) => Some((key.priority, key.sent)),
                            Some(Err(bad)) => {
                                if first_page {
                                    malformed.push(bad);
                                }
                                None
                            }
                            None => return,
                        };
                        content_keys.insert(name.to_string(), key);
                        key
                    }
                };
                if let Some((priority, sent)) = key {
                    kept.offer(OrderKey {
                        priority,
                        sent,
                        file: name.to_string(),
                    });
                }
            })
            .map_err(|e| self.listing_failed(mailbox, e))?;
        cache.content_keys.insert(mailbox.to_string(), content_keys);
        let more = kept.dropped;
        Ok(Ahead {
            mailbox: mailbox.to_string(),
            order,
            after: after.cloned().unwrap_or_else(|| OrderKey {
                priority: 0,
                sent: UtcNanos(0),
                file: String::new(),
            }),
            keys: kept.into_sorted_vec().into(),
            more,
        })
    }
}
