//! Dead letters: files that are not messages, and messages past their
//! delivery limit, kept in `DEAD/{mailbox}/` with a `.reason` note beside
//! each. Nothing leaves them but by an explicit retry or purge.

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

impl<F: FileSystem> Queue<F> {
    /// Dead letters of one agent, or of all, by agent then file name.
    pub fn dead_letters(&self, agent: Option<&str>) -> Result<Vec<DeadLetter>, QueueError> {
        let mut letters = Vec::new();
        for agent in self.dead_letter_agents(agent)? {
            let dir = format!("{DEAD_DIR}/{}", names::mailbox_dir(&agent));
            let mut entries = match self.fs.list(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(QueueError::io("list", &dir, e)),
            };
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            for entry in entries {
                if entry.kind == EntryKind::Dir || entry.name.ends_with(NOTE_SUFFIX) {
                    continue;
                }
                let note = self.read_note(&format!("{dir}/{}{NOTE_SUFFIX}", entry.name));
                letters.push(DeadLetter {
                    agent: agent.clone(),
                    file: entry.name,
                    reason: note["reason"]
                        .as_str()
                        .unwrap_or("no reason was recorded")
                        .to_string(),
                    deliveries: note["deliveries"].as_u64().unwrap_or(0) as u32,
                    dead_at_ms: note["dead_at_ms"].as_u64().unwrap_or(0),
                });
            }
        }
        Ok(letters)
    }

    /// Puts a dead letter back in its mailbox with its delivery count reset;
    /// returns its name there.
    pub fn retry_dead_letter(&self, agent: &str, file: &str) -> Result<String, QueueError> {
        names::check_agent(agent)?;
        names::check_message_file(file)?;
        let mailbox = self.mailbox(agent)?;
        // A move into the dead letters that a stopped process left half
        // done must be finished first, or recover would finish it after
        // this message left, and bring it back.
        self.finish_all_incoming(&format!("{DEAD_DIR}/{mailbox}"))?;
        let source = format!("{DEAD_DIR}/{mailbox}/{file}");
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
        // As in retry: no half-done move may outlive the letter it moved.
        for agent in self.dead_letter_agents(agent)? {
            self.finish_all_incoming(&format!("{DEAD_DIR}/{}", names::mailbox_dir(&agent)))?;
        }
        let mut purged = Vec::new();
        for letter in self.dead_letters(agent)? {
            if file.is_some_and(|f| f != letter.file) {
                continue;
            }
            let path = format!(
                "{DEAD_DIR}/{}/{}",
                names::mailbox_dir(&letter.agent),
                letter.file
            );
            match self.fs.remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(QueueError::io("purge", &path, e)),
            }
            let _ = self.fs.remove_file(&format!("{path}{NOTE_SUFFIX}"));
            purged.push(letter);
        }
        if let (Some(file), true) = (file, purged.is_empty()) {
            return Err(QueueError::NotFound(format!("{file} is not a dead letter")));
        }
        Ok(purged)
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

    fn read_note(&self, path: &str) -> Value {
        match self.fs.read(path, MAX_NOTE_BYTES) {
            Ok(ReadOutcome::Bytes(bytes)) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            _ => Value::Null,
        }
    }
}
