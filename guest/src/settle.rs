//! Moving a message into a folder where names must never be replaced
//! (`ARCHIVE/`, a dead-letter folder), atomically and crash-safely.
//!
//! 1. One rename moves the file into the folder's `.incoming/` under a
//!    staging name no other file can have (`{target}~{random}`). That rename
//!    is the commit point: from then on the message is in the folder.
//! 2. A hard link gives it its final name, which fails rather than replace:
//!    if the name is taken by another file, a new target (`_` and six hex
//!    digits before `.json`) is chosen and the staging file renamed to match.
//! 3. The staging name is removed.
//!
//! A process killed anywhere leaves the message either where it was or in
//! `.incoming/`, and [`Queue::finish_incoming`] completes step 2 and 3: a taken
//! target that is the same file (the link was made) is taken as done.
//!
//! A note kept beside the message (a dead letter's reason) is written as
//! `.incoming/{staging}.reason` before step 1 and renamed with the message
//! in step 3, so it is never lost and never left without its message.
//!
//! # Taking a file out of a settled folder
//!
//! Between step 2 and step 3 the file has two names, its final one and its
//! staging name, and a process killed there leaves both. Completing that
//! move is right only while the file is still at its final name: had it
//! left since (a dead letter retried into its mailbox, or purged), the link
//! of step 2 would be made again and bring it back, beside the copy that
//! was retried or in place of the one purged. Nothing on disk tells "never
//! linked" from "linked, then taken away": after a purge the file has
//! exactly the names it had before step 2, and a file's link count is no
//! record either (an id marker, or any link someone else made, adds one).
//! So the rule is on the side of whoever takes a file out of a settled
//! folder ([`Queue::release_settled`], used by dead-letter retry and purge):
//!
//! - Before it takes `dir/F`, having seen `F` there, it completes the move
//!   that brought `F` there, if that move's staging name is still in
//!   `.incoming/`. The staging name of a file at `F` was made before `F`
//!   was linked (step 1 comes before step 2), so a look at `.incoming/`
//!   made after `F` was seen finds it, unless step 3 already removed it;
//!   completing it finds `F` is the same file and only removes the staging
//!   name. When `F` has one name only (its link count), no staging name of
//!   it exists, and none can appear: the look is skipped.
//! - After it took the file (a retry: renamed it into a mailbox), it
//!   removes any staging name in `.incoming/` that is the same file as
//!   what it took: `F` may have been taken by another retry and filled
//!   again by a new move of the same message between the look and the
//!   rename. The staging name goes first, its note after: a staging file
//!   without its note would be completed, a note without its file is
//!   removed by recover.
//!
//! Crash points of a taker: killed before it takes the file, the file is
//! where it was and no longer has a staging name (or a completed move made
//! it one file again); killed after the rename, the file is in the mailbox,
//! and only in the narrow case above can a staging name remain. Crash points
//! of a settle: before step 1, the message is where it was (and a note may
//! be left without its file: removed by recover once old); after step 1, it
//! has one name, the staging one, and is completed by recover; after step 2,
//! it has two, and either a taker or recover removes the staging name. So
//! a staging name that recover finds belongs to a file no one took out of
//! the folder, and completing it never brings anything back.
//!
//! What is not closed: two takers of one letter at once, a new move of the
//! same message into the same name between them, killed after its link,
//! and the later taker killed (or a recover completing that move) in the
//! instant between its rename and its removal of the staging name.
//!
//! `ARCHIVE/` has no taker in fmes: nothing moves or deletes an archived
//! file. Whoever removes archived files by other means must run `recover`
//! first, or a move interrupted after its link brings the file back.

use std::io::ErrorKind;

use crate::error::QueueError;
use crate::fs::FileSystem;
use crate::queue::{Queue, random_hex};

/// The staging folder inside a settled folder.
pub const INCOMING_DIR: &str = ".incoming";
/// Suffix of the note kept beside a settled message.
pub const NOTE_SUFFIX: &str = ".reason";
/// Attempts at a free target name.
const TARGET_ATTEMPTS: usize = 16;

impl<F: FileSystem> Queue<F> {
    /// Moves `source` into `dir` as `target` (or a variant of it if taken);
    /// returns the final name. `NotFound` if `source` is gone.
    pub(crate) fn settle(
        &self,
        source: &str,
        dir: &str,
        target: &str,
        note: Option<&str>,
    ) -> Result<String, QueueError> {
        self.ensure_dir(dir)?;
        // Joined, not formatted: `format!` costs several times more in wasm,
        // and every acknowledgement settles.
        let incoming = [dir, "/", INCOMING_DIR].concat();
        self.ensure_dir(&incoming)?;
        let target = if target.len() <= MAX_TARGET {
            std::borrow::Cow::Borrowed(target)
        } else {
            std::borrow::Cow::Owned(target_variant(target))
        };
        // 64 random bits: the staging name must be one no other move uses.
        let staging = [&target, "~", &random_hex(8)].concat();
        let note_path = [&incoming, "/", &staging, NOTE_SUFFIX].concat();
        if let Some(note) = note {
            self.fs
                .write_new(&note_path, note.as_bytes(), self.options.durable)
                .map_err(|e| QueueError::io("write", &note_path, e))?;
        }
        match self.fs.rename(source, &[&incoming, "/", &staging].concat()) {
            Ok(()) => {}
            Err(e) => {
                let _ = self.fs.remove_file(&note_path);
                if e.kind() == ErrorKind::NotFound {
                    return Err(QueueError::NotFound(source.to_string()));
                }
                return Err(QueueError::io("move", source, e));
            }
        }
        self.finish_incoming(dir, &staging, note.is_some())
    }

    /// Completes a settle whose staging file is `dir/.incoming/{staging}`.
    /// `may_have_note` is false only when the caller staged it without one:
    /// the note's rename, which would find nothing, is then not tried.
    pub(crate) fn finish_incoming(
        &self,
        dir: &str,
        staging: &str,
        may_have_note: bool,
    ) -> Result<String, QueueError> {
        let incoming = [dir, "/", INCOMING_DIR].concat();
        let mut staging = staging.to_string();
        let mut target = staging_target(&staging).to_string();
        for _ in 0..TARGET_ATTEMPTS {
            let staged = [&incoming, "/", &staging].concat();
            let final_path = [dir, "/", &target].concat();
            let linked = match self.fs.link(&staged, &final_path) {
                Ok(()) => true,
                // Another recoverer finished this one first.
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    return Err(QueueError::NotFound(staged));
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    // Taken: by this very file (an earlier attempt linked it
                    // and stopped), or by another message.
                    self.fs
                        .same_file(&staged, &final_path)
                        .map_err(|e| QueueError::io("compare", &final_path, e))?
                }
                // Linux refuses a link to another user's file unless it is
                // writable to this one (`fs.protected_hardlinks`, on by
                // default), a `_COMM` shared by several users; and some
                // file systems have no hard links. A rename to a name that
                // is free then moves it: it would replace a file that took
                // the name in the instant between, so it is only the
                // fallback. The staging name is gone once it is done.
                Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                    if self.exists(&final_path)? {
                        false
                    } else {
                        self.rename_into_place(&staged, &final_path, dir, may_have_note)?;
                        return Ok(target);
                    }
                }
                Err(e) => return Err(QueueError::io("link", &final_path, e)),
            };
            if linked {
                if may_have_note {
                    self.move_note(
                        &format!("{staged}{NOTE_SUFFIX}"),
                        &format!("{final_path}{NOTE_SUFFIX}"),
                    )?;
                }
                self.sync(dir)?;
                match self.fs.remove_file(&staged) {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(QueueError::io("remove", &staged, e)),
                }
                self.sync(&incoming)?;
                return Ok(target);
            }
            target = target_variant(staging_target(&staging));
            let renamed = format!("{target}~{}", random_hex(8));
            if may_have_note {
                self.move_note(
                    &format!("{staged}{NOTE_SUFFIX}"),
                    &format!("{incoming}/{renamed}{NOTE_SUFFIX}"),
                )?;
            }
            match self.fs.rename(&staged, &format!("{incoming}/{renamed}")) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    return Err(QueueError::NotFound(staged));
                }
                Err(e) => return Err(QueueError::io("rename", &staged, e)),
            }
            staging = renamed;
        }
        Err(QueueError::Io(format!(
            "no free name in {dir} for {target} after {TARGET_ATTEMPTS} attempts"
        )))
    }

    /// Gives a staged file its final name by renaming it, with its note.
    fn rename_into_place(
        &self,
        staged: &str,
        final_path: &str,
        dir: &str,
        may_have_note: bool,
    ) -> Result<(), QueueError> {
        // The note first: once the message has left `.incoming/`, a note
        // left there would be taken for one of a move that never happened.
        if may_have_note {
            self.move_note(
                &[staged, NOTE_SUFFIX].concat(),
                &[final_path, NOTE_SUFFIX].concat(),
            )?;
        }
        match self.fs.rename(staged, final_path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(QueueError::NotFound(staged.to_string()));
            }
            Err(e) => return Err(QueueError::io("move", staged, e)),
        }
        self.sync(dir)?;
        self.sync(&[dir, "/", INCOMING_DIR].concat())
    }

    /// Completes every interrupted settle into `dir`; returns how many.
    pub(crate) fn finish_all_incoming(&self, dir: &str) -> Result<u32, QueueError> {
        let incoming = format!("{dir}/{INCOMING_DIR}");
        let entries = match self.fs.list(&incoming) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(QueueError::io("list", &incoming, e)),
        };
        let names: std::collections::HashSet<&str> =
            entries.iter().map(|e| e.name.as_str()).collect();
        let mut finished = 0;
        for entry in &entries {
            if let Some(staging) = entry.name.strip_suffix(NOTE_SUFFIX) {
                // A note whose message never arrived: the move did not
                // happen, the message is still where it was. A young one
                // may belong to a move in progress.
                let path = format!("{incoming}/{}", entry.name);
                if !names.contains(staging) && self.older_than_grace(&path) {
                    let _ = self.fs.remove_file(&path);
                }
                continue;
            }
            // Whether it has a note is not known for sure from a listing
            // made while others may be moving notes: the rename is tried.
            match self.finish_incoming(dir, &entry.name, true) {
                Ok(_) => finished += 1,
                Err(QueueError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(finished)
    }

    /// Makes `dir/file`, a file of a settled folder about to be taken out of
    /// it (retried, purged), have no staging name: completes the move that
    /// brought it, if that move was stopped between its link and the removal
    /// of its staging name (see the module's notes). The link count read
    /// here is the look at `file`: a staging name of what it counts was made
    /// before it, so the look at `.incoming/` after it finds that name.
    /// `NotFound` if `file` is not there.
    pub(crate) fn release_settled(&self, dir: &str, file: &str) -> Result<(), QueueError> {
        let path = [dir, "/", file].concat();
        match self.fs.link_count(&path) {
            // One name: no staging name of it exists, and none can appear,
            // as a staging name is made before the final one.
            Ok(1) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(QueueError::NotFound(path)),
            // More names, or a count that cannot be read (not on Unix):
            // look.
            Ok(_) | Err(_) => self.finish_all_incoming(dir).map(|_| ()),
        }
    }

    /// After a file was taken out of the settled folder `dir` and is now at
    /// `moved`: removes any staging name of it left in `dir/.incoming/` (a
    /// move that brought it to `dir` again after [`Queue::release_settled`]
    /// looked, and was stopped after its link), so that recover does not
    /// bring it back. Returns how many were removed.
    pub(crate) fn forget_staging_of(&self, dir: &str, moved: &str) -> Result<u32, QueueError> {
        match self.fs.link_count(moved) {
            // One name (or gone already): nothing to forget.
            Ok(1) => return Ok(0),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
            // More names, or a count that cannot be read: look.
            Ok(_) | Err(_) => {}
        }
        let incoming = [dir, "/", INCOMING_DIR].concat();
        let entries = match self.fs.list(&incoming) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(QueueError::io("list", &incoming, e)),
        };
        let mut removed = 0;
        for entry in entries {
            if entry.name.ends_with(NOTE_SUFFIX) {
                continue;
            }
            let staged = [&incoming, "/", &entry.name].concat();
            if !self.fs.same_file(&staged, moved).unwrap_or(false) {
                continue;
            }
            // The staging name first: a note left alone is removed by
            // recover, a staging file left alone would be completed.
            match self.fs.remove_file(&staged) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(QueueError::io("remove", &staged, e)),
            }
            let _ = self.fs.remove_file(&[&staged, NOTE_SUFFIX].concat());
        }
        if removed > 0 {
            self.sync(&incoming)?;
        }
        Ok(removed)
    }

    /// Moves a note along with its message, if there is one.
    fn move_note(&self, from: &str, to: &str) -> Result<(), QueueError> {
        match self.fs.rename(from, to) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(QueueError::io("move", from, e)),
        }
    }
}

/// The target name a staging name was made for.
fn staging_target(staging: &str) -> &str {
    staging
        .rsplit_once('~')
        .map_or(staging, |(target, _)| target)
}

/// The longest target name: its staging name adds `~` and 16 hex digits,
/// and that name's note `.reason`, within a file name's 255 bytes. Another
/// writer's names may be longer.
const MAX_TARGET: usize = crate::names::MAX_FILE_NAME - 17 - NOTE_SUFFIX.len();

/// Another name for a message whose target is taken or too long: the
/// target without `.json`, cut to fit (at a character boundary), then `_`,
/// six random hex digits and `.json`.
fn target_variant(target: &str) -> String {
    let stem = target.strip_suffix(".json").unwrap_or(target);
    let mut keep = stem.len().min(MAX_TARGET - "_123456.json".len());
    while !stem.is_char_boundary(keep) {
        keep -= 1;
    }
    [&stem[..keep], "_", &random_hex(3), ".json"].concat()
}
