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

use std::collections::{HashMap, VecDeque};

use crate::clock::UtcNanos;
use crate::error::QueueError;
use crate::fs::{EntryKind, FileSystem};
use crate::message::{FirstKeys, Message, OrderKey};
use crate::names;
use crate::queue::{MalformedFile, Queue, READ_AHEAD, not_a_file_reason};

/// The result of [`Queue::receive_page`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// Messages in delivery order, all after the position the page started from.
    pub messages: Vec<Message>,
    /// Files that are not messages, in file name order; see `receive_page`.
    pub malformed: Vec<MalformedFile>,
    /// Where the next page starts; `None` when nothing followed this page.
    pub next: Option<OrderKey>,
}

/// What one reader keeps between its pages: keys already listed past the
/// last page, and the keys of files whose names do not carry one (another
/// writer's names: their key is in their contents, read once).
#[derive(Debug)]
pub struct ReadingCache {
    ahead: Option<Ahead>,
    /// By mailbox, then file: a key read from the file's contents, or
    /// `None` for a file that is not a message. Only the names of a
    /// mailbox's last listing are kept.
    content_keys: HashMap<String, HashMap<String, Option<(u8, UtcNanos)>>>,
    /// Keys kept past a page.
    ahead_capacity: usize,
}

/// Keys listed past a page that was served, in delivery order.
#[derive(Debug)]
struct Ahead {
    mailbox: String,
    /// The position these keys follow (the last one served).
    after: OrderKey,
    keys: VecDeque<OrderKey>,
    /// True if the listing had keys past these, which were not kept.
    more: bool,
}

impl ReadingCache {
    /// Keys kept past a page: about 100 bytes each, so a few MiB at most.
    pub const AHEAD: usize = 25_000;

    pub fn new() -> ReadingCache {
        ReadingCache::with_ahead(Self::AHEAD)
    }

    /// A cache that keeps `ahead` keys past a page (tests use a small one
    /// to list often).
    pub fn with_ahead(ahead: usize) -> ReadingCache {
        ReadingCache {
            ahead: None,
            content_keys: HashMap::new(),
            ahead_capacity: ahead,
        }
    }

    /// The keys listed right after `after` in `mailbox`, if a page ended there.
    fn take_ahead(&mut self, mailbox: &str, after: Option<&OrderKey>) -> Option<Ahead> {
        let after = after?;
        let ahead = self.ahead.take()?;
        // Once its keys are used up, only a new listing knows what follows.
        (ahead.mailbox == mailbox && ahead.after == *after && !ahead.keys.is_empty())
            .then_some(ahead)
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
    /// that are not of `message_type`, or that went away, take room); the
    /// reading is over when `next` is `None`. Files that are not messages
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
        names::check_agent(agent)?;
        if let Some(after) = after {
            names::check_message_file(&after.file)?;
        }
        let mailbox = self.mailbox(agent)?;
        // A page of nothing would never move on.
        let limit = limit.max(1) as usize;
        let mut page = Page::default();
        let mut ahead = match cache.take_ahead(&mailbox, after) {
            Some(ahead) => ahead,
            None => self.list_after(&mailbox, after, limit, cache, &mut page.malformed)?,
        };
        let take = ahead.keys.len().min(limit);
        let keys: Vec<OrderKey> = ahead.keys.drain(..take).collect();
        for chunk in keys.chunks(READ_AHEAD) {
            let files: Vec<&str> = chunk.iter().map(|key| key.file.as_str()).collect();
            for read in self.read_messages(&mailbox, &files) {
                match read {
                    Some(Ok((message, _)))
                        if message_type.is_none_or(|t| t == message.message_type) =>
                    {
                        page.messages.push(message);
                    }
                    Some(Ok(_)) => {}
                    Some(Err(bad)) => page.malformed.push(bad),
                    // Gone since the listing (archived, claimed).
                    None => {}
                }
            }
        }
        // More follows if keys were kept past this page or left unkept.
        if let Some(last) = keys.last()
            && (!ahead.keys.is_empty() || ahead.more)
        {
            page.next = Some(last.clone());
            ahead.after = last.clone();
            cache.ahead = Some(ahead);
        }
        page.malformed.sort_by(|a, b| a.file.cmp(&b.file));
        Ok(page)
    }

    /// Lists `mailbox` for the keys after `after`: the first `limit` of
    /// them and the cache's worth more. Entries that are not messages are
    /// reported (into `malformed`) only from the start of a reading.
    fn list_after(
        &self,
        mailbox: &str,
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
        let keep = limit.saturating_add(cache.ahead_capacity);
        let mut kept = FirstKeys::after(Some(keep), after.cloned());
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
            .map_err(|e| QueueError::io("list", mailbox, e))?;
        cache.content_keys.insert(mailbox.to_string(), content_keys);
        let more = kept.dropped;
        Ok(Ahead {
            mailbox: mailbox.to_string(),
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
