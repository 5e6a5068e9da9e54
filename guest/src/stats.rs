//! Per-mailbox counts: what is waiting, held, dead and done.

use std::collections::BTreeMap;
use std::io::ErrorKind;

use crate::claims::{ClaimName, INFLIGHT_DIR, now_ms};
use crate::error::QueueError;
use crate::fs::{EntryKind, FileSystem};
use crate::message::{self, OrderKey};
use crate::names::{self, ARCHIVE_DIR, DEAD_DIR};
use crate::queue::Queue;
use crate::settle::NOTE_SUFFIX;

/// Counts for one mailbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailboxStats {
    pub agent: String,
    /// Messages waiting (`*.json` files in the mailbox).
    pub ready: u32,
    /// Messages claimed and not yet acknowledged or released.
    pub in_flight: u32,
    /// Dead letters.
    pub dead: u32,
    /// Archived messages addressed to this agent.
    pub archived: u32,
    /// Age of the oldest waiting message, in milliseconds (by its send time).
    pub oldest_ready_age_ms: Option<u64>,
}

impl<F: FileSystem> Queue<F> {
    /// Counts for every mailbox, by agent name. Counting the archive reads
    /// each archived file's `to` field, since the archive is one flat folder.
    pub fn stats(&self) -> Result<Vec<MailboxStats>, QueueError> {
        let now = now_ms();
        let mut all: BTreeMap<String, MailboxStats> = BTreeMap::new();
        for agent in self.agents()? {
            let mailbox = names::mailbox_dir(&agent);
            let mut stats = MailboxStats {
                agent: agent.clone(),
                ..MailboxStats::default()
            };
            let mut oldest: Option<OrderKey> = None;
            for entry in self.list_or_empty(&mailbox)? {
                if entry.kind == EntryKind::Dir || !names::looks_like_message(&entry.name) {
                    continue;
                }
                stats.ready += 1;
                let key = match message::key_from_fmes_name(&entry.name) {
                    Some(key) => Some(key),
                    None => match self.read_message(&mailbox, &entry.name) {
                        Some(Ok((_, key))) => Some(key),
                        _ => None,
                    },
                };
                if let Some(key) = key
                    && oldest.as_ref().is_none_or(|o| key.sent < o.sent)
                {
                    oldest = Some(key);
                }
            }
            stats.oldest_ready_age_ms =
                oldest.map(|key| now.saturating_sub(key.sent.0 / 1_000_000));
            stats.in_flight = self
                .list_or_empty(&format!("{mailbox}/{INFLIGHT_DIR}"))?
                .iter()
                .filter(|e| ClaimName::parse(&e.name).is_some())
                .count() as u32;
            stats.dead = self
                .list_or_empty(&format!("{DEAD_DIR}/{mailbox}"))?
                .iter()
                .filter(|e| e.kind != EntryKind::Dir && !e.name.ends_with(NOTE_SUFFIX))
                .count() as u32;
            all.insert(mailbox, stats);
        }
        for entry in self.list_or_empty(ARCHIVE_DIR)? {
            if entry.kind != EntryKind::File || !names::looks_like_message(&entry.name) {
                continue;
            }
            if let Some(Ok((message, _))) = self.read_message(ARCHIVE_DIR, &entry.name)
                && names::check_agent(&message.to).is_ok()
                && let Some(stats) = all.get_mut(&names::mailbox_dir(&message.to))
            {
                stats.archived += 1;
            }
        }
        Ok(all.into_values().collect())
    }

    fn list_or_empty(&self, dir: &str) -> Result<Vec<crate::fs::DirEntry>, QueueError> {
        match self.fs.list(dir) {
            Ok(entries) => Ok(entries),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(QueueError::io("list", dir, e)),
        }
    }
}
