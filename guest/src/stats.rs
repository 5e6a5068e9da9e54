//! Per-mailbox counts: what is waiting, held, dead and done.

use std::collections::BTreeMap;
use std::io::ErrorKind;

use crate::claims::{ClaimName, INFLIGHT_DIR, now_ms};
use crate::clock::UtcNanos;
use crate::error::QueueError;
use crate::fs::{EntryKind, FileSystem};
use crate::message;
use crate::names::{self, ARCHIVE_DIR, DEAD_DIR};
use crate::queue::{Queue, READ_AHEAD};
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
    ///
    /// Folders are counted as they are listed and files read in batches, so
    /// a mailbox or an archive of any size takes the same memory.
    pub fn stats(&self) -> Result<Vec<MailboxStats>, QueueError> {
        let now = now_ms();
        let mut all: BTreeMap<String, MailboxStats> = BTreeMap::new();
        for agent in self.agents()? {
            let mailbox = names::mailbox_dir(&agent);
            let mut stats = MailboxStats {
                agent: agent.clone(),
                ..MailboxStats::default()
            };
            let mut oldest: Option<UtcNanos> = None;
            // Other writers' names: their send time is in their contents.
            let mut unnamed = Vec::new();
            self.each_entry(&mailbox, &mut |name, kind| {
                if kind == EntryKind::Dir || !names::looks_like_message(name) {
                    return;
                }
                stats.ready += 1;
                match message::order_from_fmes_name(name) {
                    Some((_, sent)) => oldest = Some(oldest.map_or(sent, |o| o.min(sent))),
                    None => unnamed.push(name.to_string()),
                }
            })?;
            for chunk in unnamed.chunks(READ_AHEAD) {
                let files: Vec<&str> = chunk.iter().map(String::as_str).collect();
                for (_, key) in self
                    .read_messages(&mailbox, &files)
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    oldest = Some(oldest.map_or(key.sent, |o| o.min(key.sent)));
                }
            }
            stats.oldest_ready_age_ms = oldest.map(|sent| now.saturating_sub(sent.0 / 1_000_000));
            self.each_entry(&format!("{mailbox}/{INFLIGHT_DIR}"), &mut |name, _| {
                if ClaimName::parse(name).is_some() {
                    stats.in_flight += 1;
                }
            })?;
            self.each_entry(&format!("{DEAD_DIR}/{mailbox}"), &mut |name, kind| {
                if kind != EntryKind::Dir && !name.ends_with(NOTE_SUFFIX) {
                    stats.dead += 1;
                }
            })?;
            all.insert(mailbox, stats);
        }
        let mut count_archived = |files: &[String]| {
            let files: Vec<&str> = files.iter().map(String::as_str).collect();
            for (message, _) in self
                .read_messages(ARCHIVE_DIR, &files)
                .into_iter()
                .flatten()
                .flatten()
            {
                if names::check_agent(&message.to).is_ok()
                    && let Some(stats) = all.get_mut(&names::mailbox_dir(&message.to))
                {
                    stats.archived += 1;
                }
            }
        };
        let mut batch = Vec::with_capacity(READ_AHEAD);
        self.each_entry(ARCHIVE_DIR, &mut |name, kind| {
            if kind == EntryKind::File && names::looks_like_message(name) {
                batch.push(name.to_string());
                if batch.len() == READ_AHEAD {
                    count_archived(&batch);
                    batch.clear();
                }
            }
        })?;
        count_archived(&batch);
        Ok(all.into_values().collect())
    }

    /// Each entry of `dir` as it is listed; a folder that does not exist
    /// has none.
    fn each_entry(
        &self,
        dir: &str,
        each: &mut dyn FnMut(&str, EntryKind),
    ) -> Result<(), QueueError> {
        match self.fs.for_each_entry(dir, each) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(QueueError::io("list", dir, e)),
            _ => Ok(()),
        }
    }
}
