//! Dead letters: files that are not messages, and messages past their
//! delivery limit, kept in `DEAD/{mailbox}/` with a `.reason` note beside
//! each. Nothing leaves them but by an explicit retry or purge.

use std::collections::VecDeque;
use std::io::ErrorKind;

use serde_json::Value;

use crate::claims::split_deliveries;
use crate::error::QueueError;
use crate::fs::{EntryKind, FileSystem, ReadOutcome};
use crate::names::{self, DEAD_DIR};
use crate::queue::Queue;
use crate::settle::NOTE_SUFFIX;

/// Largest `.reason` note read.
const MAX_NOTE_BYTES: u64 = 64 * 1024;

/// One dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The agent whose mailbox it came from.
    pub agent: String,
    /// Its file name in `DEAD/{mailbox}/`.
    pub file: String,
    /// Why it is here.
    pub reason: String,
    /// Times it had been handed out.
    pub deliveries: u32,
    /// When it was moved here, in milliseconds since 1970 (0 if unknown).
    pub dead_at_ms: u64,
}

/// One page of an agent's dead letters; see [`Queue::dead_letter_page`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterPage {
    /// Dead letters by file name, all after the position the page started from.
    pub letters: Vec<DeadLetter>,
    /// The file name the next page starts after; `None` when nothing followed.
    pub next: Option<String>,
}

/// What one reader of dead letters keeps between pages: the names listed
/// past the last page served, so that going through 100,000 dead letters
/// lists their folder a few times, not once per page. Names are small and
/// letters are read a page at a time, so memory stays flat.
#[derive(Debug)]
pub struct DeadLetterCache {
    ahead: Option<NamesAhead>,
    capacity: usize,
}

/// Names listed past a page that was served, in name order.
#[derive(Debug)]
struct NamesAhead {
    dir: String,
    /// The name these follow (the last one served).
    after: String,
    names: VecDeque<String>,
    /// True if the listing had names past these, which were not kept.
    more: bool,
}

impl DeadLetterCache {
    /// Names kept past a page: under 100 bytes each, so about 2 MiB at most.
    pub const AHEAD: usize = 25_000;

    pub fn new() -> DeadLetterCache {
        DeadLetterCache::with_ahead(Self::AHEAD)
    }

    /// A cache that keeps `ahead` names past a page (tests use a small one
    /// to list often).
    pub fn with_ahead(ahead: usize) -> DeadLetterCache {
        DeadLetterCache {
            ahead: None,
            capacity: ahead,
        }
    }

    /// The names listed right after `after` in `dir`, if a page ended there.
    /// One reading is kept at a time: another one lists again.
    fn take(&mut self, dir: &str, after: Option<&str>) -> Option<NamesAhead> {
        let after = after?;
        let ahead = self.ahead.take()?;
        let follows = ahead.dir == dir && ahead.after == after && !ahead.names.is_empty();
        follows.then_some(ahead)
    }
}

impl Default for DeadLetterCache {
    fn default() -> DeadLetterCache {
        DeadLetterCache::new()
    }
}

/// The `keep` smallest names offered. Names of dead letters share long
/// prefixes, so comparing them is the cost: rather than a heap (a dozen
/// comparisons a name), names are gathered up to twice `keep` and cut back
/// to the smallest `keep` in linear time, and once cut, a name past the
/// largest kept is turned away with one comparison and no copy.
struct SmallestNames {
    names: Vec<String>,
    keep: usize,
    /// Names from this one on are not among the first `keep`.
    bound: Option<String>,
    /// True once a name was left out.
    more: bool,
}

impl SmallestNames {
    fn new(keep: usize) -> SmallestNames {
        SmallestNames {
            names: Vec::new(),
            keep,
            bound: None,
            more: false,
        }
    }

    fn offer(&mut self, name: &str) {
        if self.bound.as_deref().is_some_and(|bound| name >= bound) {
            self.more = true;
            return;
        }
        self.names.push(name.to_string());
        if self.names.len() >= self.keep.saturating_mul(2).max(1) {
            self.cut();
        }
    }

    /// Keeps the smallest `keep` names, the bound the next one above them.
    fn cut(&mut self) {
        if self.names.len() <= self.keep {
            return;
        }
        self.more = true;
        self.names.select_nth_unstable(self.keep);
        self.bound = self.names.drain(self.keep..).min();
    }

    fn into_sorted(mut self) -> (Vec<String>, bool) {
        self.cut();
        self.names.sort_unstable();
        (self.names, self.more)
    }
}

/// Pages `purge` deletes dead letters by.
const PURGE_PAGE: u32 = 1_000;

impl<F: FileSystem> Queue<F> {
    /// Dead letters of one agent, or of all, by agent then file name.
    pub fn dead_letters(&self, agent: Option<&str>) -> Result<Vec<DeadLetter>, QueueError> {
        let mut letters = Vec::new();
        for agent in self.dead_letter_agents(agent)? {
            // One page of them all, so the folder is listed once.
            let mut cache = DeadLetterCache::with_ahead(0);
            let page = self.dead_letter_page(&agent, u32::MAX, None, &mut cache)?;
            letters.extend(page.letters);
        }
        Ok(letters)
    }

    /// Up to `limit` dead letters of `agent` whose file names come after
    /// `after` (from the first with `None`), by file name; see the WIT
    /// `list-page`. `cache` is the reader's own, kept between its pages.
    ///
    /// A page may hold fewer than `limit` letters with more to come (letters
    /// retried or purged since they were listed are left out); the reading
    /// is over when `next` is `None`.
    pub fn dead_letter_page(
        &self,
        agent: &str,
        limit: u32,
        after: Option<&str>,
        cache: &mut DeadLetterCache,
    ) -> Result<DeadLetterPage, QueueError> {
        names::check_agent(agent)?;
        let agent = agent.to_ascii_lowercase();
        let dir = format!("{DEAD_DIR}/{}", names::mailbox_dir(&agent));
        // A page of nothing would never move on.
        let limit = limit.max(1) as usize;
        let mut ahead = match cache.take(&dir, after) {
            Some(ahead) => ahead,
            None => self.list_dead_after(&dir, after, limit.saturating_add(cache.capacity))?,
        };
        let take = ahead.names.len().min(limit);
        let names: Vec<String> = ahead.names.drain(..take).collect();
        let mut page = DeadLetterPage::default();
        for name in &names {
            if let Some(letter) = self.dead_letter_at(&agent, &dir, name)? {
                page.letters.push(letter);
            }
        }
        // More follows if names were kept past this page or left unkept.
        if let Some(last) = names.last()
            && (!ahead.names.is_empty() || ahead.more)
        {
            page.next = Some(last.clone());
            ahead.after = last.clone();
            cache.ahead = Some(ahead);
        }
        Ok(page)
    }

    /// Lists the dead letters of `dir` named after `after`: the first `keep`
    /// of them by name.
    fn list_dead_after(
        &self,
        dir: &str,
        after: Option<&str>,
        keep: usize,
    ) -> Result<NamesAhead, QueueError> {
        let mut kept = SmallestNames::new(keep);
        let listed = self.fs.for_each_entry(dir, &mut |name, kind| {
            if kind == EntryKind::Dir
                || name.ends_with(NOTE_SUFFIX)
                || after.is_some_and(|after| name <= after)
            {
                return;
            }
            kept.offer(name);
        });
        match listed {
            Ok(()) => {}
            // No dead letters were ever kept for this agent.
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(QueueError::io("list", dir, e)),
        }
        let (names, more) = kept.into_sorted();
        Ok(NamesAhead {
            dir: dir.to_string(),
            after: after.unwrap_or_default().to_string(),
            names: names.into(),
            more,
        })
    }

    /// The dead letter `dir/name` with what its note says; `None` if it is
    /// gone (retried or purged since it was listed).
    fn dead_letter_at(
        &self,
        agent: &str,
        dir: &str,
        name: &str,
    ) -> Result<Option<DeadLetter>, QueueError> {
        let path = format!("{dir}/{name}");
        let note = match self.read_note(&format!("{path}{NOTE_SUFFIX}")) {
            Some(note) => note,
            // Without its note, a letter may have left: only then look.
            None => match self.fs.status(&path) {
                Ok(status) if status.kind == EntryKind::Dir => return Ok(None),
                Ok(_) => Value::Null,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(QueueError::io("stat", &path, e)),
            },
        };
        Ok(Some(DeadLetter {
            agent: agent.to_string(),
            file: name.to_string(),
            reason: note["reason"]
                .as_str()
                .unwrap_or("no reason was recorded")
                .to_string(),
            deliveries: note["deliveries"].as_u64().unwrap_or(0) as u32,
            dead_at_ms: note["dead_at_ms"].as_u64().unwrap_or(0),
        }))
    }

    /// Puts a dead letter back in its mailbox with its delivery count reset;
    /// returns its name there.
    pub fn retry_dead_letter(&self, agent: &str, file: &str) -> Result<String, QueueError> {
        names::check_agent(agent)?;
        names::check_message_file(file)?;
        let mailbox = self.mailbox(agent)?;
        let dir = format!("{DEAD_DIR}/{mailbox}");
        // Moves into the dead letters that stopped processes left half
        // done are finished first, so that a letter whose move was stopped
        // before its link is found.
        self.finish_all_incoming(&dir)?;
        // That look may have come before a move of this very letter was
        // staged: once the letter is seen, the move that brought it is
        // finished (its staging name removed), or recover would finish it
        // after this message left, and bring it back.
        match self.release_settled(&dir, file) {
            Ok(()) => {}
            Err(QueueError::NotFound(_)) => {
                return Err(QueueError::NotFound(format!(
                    "{dir}/{file} is not a dead letter"
                )));
            }
            Err(e) => return Err(e),
        }
        let source = format!("{dir}/{file}");
        let (stem, _) = split_deliveries(file);
        let mut target = format!("{stem}.json");
        // A message of that name may have arrived since: never replace it.
        for _ in 0..16 {
            if !self.exists(&format!("{mailbox}/{target}"))? {
                break;
            }
            target = format!("{stem}_{}.json", crate::queue::random_hex(3));
        }
        match self.fs.rename(&source, &format!("{mailbox}/{target}")) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(QueueError::NotFound(format!(
                    "{source} is not a dead letter"
                )));
            }
            Err(e) => return Err(QueueError::io("retry", &source, e)),
        }
        let _ = self.fs.remove_file(&format!("{source}{NOTE_SUFFIX}"));
        self.sync(&mailbox)?;
        // What was renamed may not be what was looked at: another retry may
        // have taken that, and a new move of the same message (claimed and
        // dead-lettered again) put it back under this name since. A staging
        // name of what this retry took is removed.
        self.forget_staging_of(&dir, &format!("{mailbox}/{target}"))?;
        Ok(target)
    }

    /// Deletes dead letters: one file, every one of an agent, or all.
    /// Returns what was deleted.
    pub fn purge_dead_letters(
        &self,
        agent: Option<&str>,
        file: Option<&str>,
    ) -> Result<Vec<DeadLetter>, QueueError> {
        if let Some(file) = file {
            names::check_message_file(file)?;
        }
        let agents = self.dead_letter_agents(agent)?;
        // As in retry: interrupted moves are finished first, so that a
        // letter whose move was stopped before its link is found.
        for agent in &agents {
            self.finish_all_incoming(&format!("{DEAD_DIR}/{}", names::mailbox_dir(agent)))?;
        }
        let mut purged = Vec::new();
        for agent in &agents {
            let dir = format!("{DEAD_DIR}/{}", names::mailbox_dir(agent));
            if let Some(file) = file {
                // Only this letter is looked at, however many there are.
                // Seen, the move that brought it is finished (see retry).
                match self.release_settled(&dir, file) {
                    Ok(()) => {}
                    Err(QueueError::NotFound(_)) => continue,
                    Err(e) => return Err(e),
                }
                if let Some(letter) = self.dead_letter_at(agent, &dir, file)?
                    && self.remove_dead_letter(&dir, file)?
                {
                    purged.push(letter);
                }
                continue;
            }
            let mut cache = DeadLetterCache::new();
            let mut after = None;
            loop {
                let page =
                    self.dead_letter_page(agent, PURGE_PAGE, after.as_deref(), &mut cache)?;
                // Every letter of the page was seen (listed) before this
                // look: a move that brought one of them and was stopped
                // after its link is found here and finished, one look for
                // the page (see retry).
                if !page.letters.is_empty() {
                    self.finish_all_incoming(&dir)?;
                }
                for letter in page.letters {
                    if self.remove_dead_letter(&dir, &letter.file)? {
                        purged.push(letter);
                    }
                }
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
        if let (Some(file), true) = (file, purged.is_empty()) {
            return Err(QueueError::NotFound(format!("{file} is not a dead letter")));
        }
        Ok(purged)
    }

    /// Deletes the dead letter `dir/file` and its note; false if it was gone.
    fn remove_dead_letter(&self, dir: &str, file: &str) -> Result<bool, QueueError> {
        let path = format!("{dir}/{file}");
        match self.fs.remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(QueueError::io("purge", &path, e)),
        }
        let _ = self.fs.remove_file(&format!("{path}{NOTE_SUFFIX}"));
        Ok(true)
    }

    /// The agents whose dead letters an operation on `agent` (or all) covers.
    fn dead_letter_agents(&self, agent: Option<&str>) -> Result<Vec<String>, QueueError> {
        match agent {
            Some(agent) => {
                names::check_agent(agent)?;
                Ok(vec![agent.to_ascii_lowercase()])
            }
            None => self.agents(),
        }
    }

    /// A note's contents (`Null` if they are not JSON); `None` if there is
    /// no note to read.
    fn read_note(&self, path: &str) -> Option<Value> {
        match self.fs.read(path, MAX_NOTE_BYTES) {
            Ok(ReadOutcome::Bytes(bytes)) => {
                Some(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
            }
            _ => None,
        }
    }
}
