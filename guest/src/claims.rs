//! Claims: handing each message to exactly one of several consumers.
//!
//! A claim is one rename of a message file from the mailbox into the
//! mailbox's `.inflight/` folder, under a name that records the claim:
//! `{stem}~{deliveries}~{lease expiry, ms since 1970}~{consumer}`. Of any
//! number of concurrent claimers, exactly one rename succeeds; no lock is
//! taken, so nothing a dead process leaves behind can block anyone. Every
//! later step (extend, release, expiry, ack, dead-lettering) is again one
//! rename of that file, or a [settle](crate::settle) into `ARCHIVE/` or
//! `DEAD/`, so a process killed at any instant leaves each message in
//! exactly one place.
//!
//! A message back in the mailbox after a delivery is named `{stem}~{n}.json`,
//! which keeps its place in the order and its delivery count.
//!
//! All of this needs a stem that no other file of the mailbox has, waiting or
//! claimed. An fmes name has one (its unique part). Another writer's names
//! need not: the Python writer gives two messages of one second the same
//! name, so one may arrive while the other is claimed, and its type may end
//! in `~9` like a delivery count. Such a file gets a stem of its own on its
//! first claim, its name (cut to fit) and `~u` with twelve hex digits
//! (eight random, four checking them): a claim, a return or an extension then never lands on another
//! message's name, and only on such a stem is a `~{n}` read as a count.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::clock::push_decimal;
use crate::error::QueueError;
use crate::fs::EntryKind;
use crate::fs::FileSystem;
use crate::message::{FirstKeys, Message};
use crate::names::{self, DEAD_DIR};
use crate::queue::{AnswerBudget, MalformedFile, Queue, describe_kind};

/// The folder inside a mailbox that holds claimed messages.
pub const INFLIGHT_DIR: &str = ".inflight";

/// One claimed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The message; its `file` is the name to pass to ack, release and extend.
    pub message: Message,
    /// Times it has been handed out, this one included.
    pub deliveries: u32,
    /// When the lease ends, in milliseconds since 1970 (UTC).
    pub lease_expires_ms: u64,
}

/// What one claim call did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimBatch {
    /// Messages now held by the consumer, in delivery order.
    pub claimed: Vec<Claimed>,
    /// Files met on the way that are not messages, moved to the dead letters.
    pub dead_lettered: Vec<MalformedFile>,
}

/// A claim's answer as it fills: the batch, and what it has used of the
/// bytes an answer may carry.
struct Answer {
    batch: ClaimBatch,
    budget: AnswerBudget,
}

/// What a release did with the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    /// Back in the mailbox under this name.
    Returned(String),
    /// Past its delivery limit: in the dead letters under this name.
    DeadLettered(String),
}

/// What a recovery did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecoverReport {
    /// Expired claims returned to their mailbox.
    pub returned: u32,
    /// Expired claims past their delivery limit, moved to the dead letters.
    pub dead_lettered: u32,
    /// Moves into `ARCHIVE/` or `DEAD/` that a stopped process had begun,
    /// and sends with an id it had stopped before publishing, completed.
    pub finished_moves: u32,
    /// Temporary files of stopped writers, removed after the grace period.
    pub removed_temporary: u32,
}

/// A parsed `.inflight/` entry name:
/// `{stem}~{deliveries}~{lease expiry, ms since 1970}~{consumer}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimName {
    pub stem: String,
    pub deliveries: u32,
    pub expires_ms: u64,
    pub consumer: String,
}

impl ClaimName {
    /// The claim of the mailbox file `file` taking it for `consumer`: its
    /// [claimed stem](claimed_stem), one delivery more.
    fn first(file: &str, expires_ms: u64, consumer: &str) -> ClaimName {
        let (stem, deliveries) = split_deliveries(file);
        ClaimName {
            stem: claimed_stem(stem).into_owned(),
            deliveries: deliveries.saturating_add(1),
            expires_ms,
            consumer: consumer.to_string(),
        }
    }

    pub fn parse(name: &str) -> Option<ClaimName> {
        let mut parts = name.rsplitn(4, '~');
        let consumer = parts.next()?;
        let expires_ms = parts.next()?.parse().ok()?;
        let deliveries = parts.next()?.parse().ok()?;
        let stem = parts.next()?;
        if stem.is_empty() || names::check_agent(consumer).is_err() {
            return None;
        }
        Some(ClaimName {
            stem: stem.to_string(),
            deliveries,
            expires_ms,
            consumer: consumer.to_string(),
        })
    }

    pub fn file_name(&self) -> String {
        // Piece by piece: `format!` costs several times more in wasm, and
        // every claim, acknowledgement and release spells one.
        let mut name = String::with_capacity(self.stem.len() + self.consumer.len() + 28);
        name.push_str(&self.stem);
        name.push('~');
        push_decimal(&mut name, self.deliveries.into());
        name.push('~');
        push_decimal(&mut name, self.expires_ms);
        name.push('~');
        name.push_str(&self.consumer);
        name
    }

    /// The message's name in the mailbox, carrying its delivery count.
    pub fn mailbox_name(&self) -> String {
        self.mailbox_name_after(self.deliveries)
    }

    /// Its name in the mailbox after `deliveries`: on its stem if that is
    /// unique (always, but for a claim an older fmes made, or anyone), else
    /// on a new unique one, so the return replaces no other message.
    pub fn mailbox_name_after(&self, deliveries: u32) -> String {
        mailbox_name(&claimed_stem(&self.stem), deliveries)
    }
}

/// The claims a queue made, renewed or saw in a listing and has not
/// settled, by mailbox and message stem. A claim's name holds its lease
/// expiry, which a consumer settling it does not give: without this record,
/// `ack`, `release` and `extend` list `.inflight/` to find it, and a
/// consumer holding a thousand claims lists a thousand names for each. A
/// listing made for one claim remembers the consumer's others, so a process
/// that did not make the claims (`fmes ack` of many files) lists once, not
/// once a file. A record may be stale (another process recovered the claim,
/// or renewed it): the rename it leads to then finds nothing, and
/// `.inflight/` is listed after all.
#[derive(Debug, Clone, Default)]
pub struct ClaimMemo(Arc<Mutex<MemoTable>>);

/// The records of a [`ClaimMemo`], by mailbox, then by stem: looked up by
/// borrowed names, so recalling and forgetting a claim copy no string.
#[derive(Debug, Default)]
pub(crate) struct MemoTable {
    by_mailbox: HashMap<String, HashMap<String, ClaimName>>,
    len: usize,
}

impl MemoTable {
    fn len(&self) -> usize {
        self.len
    }

    fn get(&self, mailbox: &str, stem: &str) -> Option<&ClaimName> {
        self.by_mailbox.get(mailbox)?.get(stem)
    }

    fn insert(&mut self, mailbox: &str, claim: &ClaimName) {
        let stems = match self.by_mailbox.get_mut(mailbox) {
            Some(stems) => stems,
            None => self.by_mailbox.entry(mailbox.to_string()).or_default(),
        };
        if let Some(known) = stems.get_mut(claim.stem.as_str()) {
            *known = claim.clone();
        } else {
            stems.insert(claim.stem.clone(), claim.clone());
            self.len += 1;
        }
    }

    fn remove(&mut self, mailbox: &str, stem: &str) {
        if let Some(stems) = self.by_mailbox.get_mut(mailbox)
            && stems.remove(stem).is_some()
        {
            self.len -= 1;
        }
    }
}

impl ClaimMemo {
    /// Claims remembered at most: past these, new claims are found by
    /// listing when they are settled.
    const MAX: usize = 4096;

    fn claims(&self) -> std::sync::MutexGuard<'_, MemoTable> {
        // Nothing held under the lock can be left half-changed by a panic.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn remember(&self, mailbox: &str, claim: &ClaimName) {
        Self::remember_in(&mut self.claims(), mailbox, claim);
    }

    fn remember_in(claims: &mut MemoTable, mailbox: &str, claim: &ClaimName) {
        if claims.len() < Self::MAX || claims.get(mailbox, &claim.stem).is_some() {
            claims.insert(mailbox, claim);
        }
    }

    /// The claim remembered on `stem` in `mailbox`, if `consumer` made it.
    fn recall(&self, mailbox: &str, stem: &str, consumer: &str) -> Option<ClaimName> {
        let claims = self.claims();
        let claim = claims.get(mailbox, stem)?;
        (claim.consumer == consumer).then(|| claim.clone())
    }

    fn forget(&self, mailbox: &str, stem: &str) {
        self.claims().remove(mailbox, stem);
    }
}

/// A mailbox file name split into its stem and delivery count: `~{n}` is a
/// count only after a [unique stem](is_unique_stem); anything else is part
/// of another writer's name.
pub(crate) fn split_deliveries(file: &str) -> (&str, u32) {
    let stem = file.strip_suffix(".json").unwrap_or(file);
    if let Some((base, count)) = stem.rsplit_once('~')
        && !count.is_empty()
        && count.bytes().all(|b| b.is_ascii_digit())
        && is_unique_stem(base)
        && let Ok(n) = count.parse()
    {
        return (base, n);
    }
    (stem, 0)
}

/// Marks a stem a claim made unique: `~u`, then [`UNIQUE_MARK_DIGITS`] hex
/// digits, eight random and four that check them against the stem (see
/// [`mark_check`]).
const UNIQUE_MARK: &str = "~u";
const UNIQUE_MARK_DIGITS: usize = 12;
const MARK_RANDOM_DIGITS: usize = 8;
/// The longest stem a claim keeps: its `.inflight/` name adds up to 97
/// bytes (`~`, a count of up to 10 digits, `~`, an expiry of up to 20, `~`
/// and a consumer of up to 64), a settle's staging note 29, and a file
/// name may have 255. An fmes name's stem has at most 134.
pub(crate) const MAX_CLAIMED_STEM: usize = 158;

/// True for a stem only one file can have: an fmes name's (it holds the
/// writer's unique part) or one a claim made unique.
pub(crate) fn is_unique_stem(stem: &str) -> bool {
    stem.len() <= MAX_CLAIMED_STEM
        && (crate::message::order_from_fmes_name(stem).is_some() || unmarked(stem).is_some())
}

/// A stem a claim made unique, without its mark.
fn unmarked(stem: &str) -> Option<&str> {
    let mark = UNIQUE_MARK.len() + UNIQUE_MARK_DIGITS;
    let start = stem.len().checked_sub(mark).filter(|&start| start > 0)?;
    let (base, mark) = stem.as_bytes().split_at(start);
    let digits = mark.strip_prefix(UNIQUE_MARK.as_bytes())?;
    let hex = digits
        .iter()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b));
    let (random, check) = digits.split_at(MARK_RANDOM_DIGITS);
    // Its last bytes are ASCII: `start` is a character boundary.
    (hex && check == mark_check(base, random)).then(|| &stem[..start])
}

/// The four hex digits that end a claim's mark: a hash of the stem before
/// it and the mark's random digits. Another writer's names may hold
/// anything, `~u` and twelve hex digits too (a type `T~u0123456789ab`):
/// taken for a mark, such a name would pass for unique, with a delivery
/// count, and lose the part taken for the mark when archived. One in 65,536
/// of such names checks.
fn mark_check(base: &[u8], random: &[u8]) -> [u8; 4] {
    // FNV-1a, 32 bits: no table, no allocation, the same everywhere.
    let mut hash: u32 = 0x811c_9dc5;
    for &byte in base.iter().chain(random) {
        hash = (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193);
    }
    let mut check = [0u8; 4];
    crate::queue::put_hex(&mut check, &(hash as u16).to_be_bytes());
    check
}

/// The name a claimed message is archived or dead-lettered under: the one
/// its writer gave it (or as much as a claim kept), without the mark that
/// made it unique in the mailbox; a name taken there gets a variant.
fn settled_name(stem: &str) -> String {
    [unmarked(stem).unwrap_or(stem), ".json"].concat()
}

/// The stem a file is claimed under: its own if [unique](is_unique_stem),
/// else its own cut to fit (at a character boundary) and marked unique.
pub(crate) fn claimed_stem(stem: &str) -> std::borrow::Cow<'_, str> {
    if is_unique_stem(stem) {
        return std::borrow::Cow::Borrowed(stem);
    }
    let mut keep = stem
        .len()
        .min(MAX_CLAIMED_STEM - UNIQUE_MARK.len() - UNIQUE_MARK_DIGITS);
    while !stem.is_char_boundary(keep) {
        keep -= 1;
    }
    let base = &stem[..keep];
    let random = crate::queue::random_hex(MARK_RANDOM_DIGITS / 2);
    let check = mark_check(base.as_bytes(), random.as_bytes());
    let check = std::str::from_utf8(&check).expect("hex digits");
    std::borrow::Cow::Owned([base, UNIQUE_MARK, &random, check].concat())
}

/// The mailbox name of a stem delivered `deliveries` times.
pub(crate) fn mailbox_name(stem: &str, deliveries: u32) -> String {
    if deliveries == 0 {
        [stem, ".json"].concat()
    } else {
        let mut name = String::with_capacity(stem.len() + 16);
        name.push_str(stem);
        name.push('~');
        push_decimal(&mut name, deliveries.into());
        name.push_str(".json");
        name
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}

impl<F: FileSystem> Queue<F> {
    /// Claims up to `limit` messages of `agent`'s mailbox for `consumer`, in
    /// delivery order, for `lease`. Expired claims in that mailbox are
    /// recovered first. Files that are not messages are dead-lettered.
    pub fn claim(
        &self,
        agent: &str,
        consumer: &str,
        limit: u32,
        lease: Duration,
    ) -> Result<ClaimBatch, QueueError> {
        names::check_agent(agent)?;
        names::check_agent(consumer).map_err(|_| QueueError::InvalidConsumer(consumer.into()))?;
        let mailbox = self.mailbox(agent)?;
        let inflight = format!("{mailbox}/{INFLIGHT_DIR}");
        self.ensure_dir(&inflight)?;
        // Expired claims go back first, as far as they can: one that cannot
        // (a full disk refusing its dead letter's note) is for `recover`
        // and `doctor` to report, and keeps no message from this claim.
        let _ = self.recover_mailbox(&mailbox, &mut RecoverReport::default());

        let mut answer = Answer {
            batch: ClaimBatch::default(),
            budget: self.answer_budget(),
        };
        if limit == 0 {
            return Ok(answer.batch);
        }
        let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
        let expires_ms = now_ms().saturating_add(lease_ms);
        let limit = limit as usize;
        // First keep only the first `limit` names in order while listing, so a
        // huge mailbox is neither held nor sorted whole; list again in full
        // only if some of those were taken by another claimer or were not
        // messages, and names were left out.
        let claimed = self
            .claim_pass(
                &mailbox,
                consumer,
                limit,
                expires_ms,
                Some(limit),
                &mut answer,
            )
            .and_then(|short| match short {
                true => self.claim_pass(&mailbox, consumer, limit, expires_ms, None, &mut answer),
                false => Ok(false),
            })
            .and_then(|_| self.sync(&inflight))
            .and_then(|()| self.sync(&mailbox));
        if let Err(e) = claimed {
            // Failed part-way (a full disk, a folder turned unwritable):
            // what it took goes back now, uncounted, rather than wait out
            // a lease for a caller that never hears of it.
            for taken in &answer.batch.claimed {
                let _ = self.give_back(agent, consumer, &taken.message.file);
            }
            return Err(e);
        }
        Ok(answer.batch)
    }

    /// One listing of a claim: moves the files that are not messages to the
    /// dead letters and claims messages in order into `answer` up to `limit`
    /// and its budget, keeping at most `keep` names from the listing (all
    /// with `None`). True if the batch is short while names were left out
    /// and the budget has room: another pass can fill it.
    fn claim_pass(
        &self,
        mailbox: &str,
        consumer: &str,
        limit: usize,
        expires_ms: u64,
        keep: Option<usize>,
        answer: &mut Answer,
    ) -> Result<bool, QueueError> {
        let Answer { batch, budget } = answer;
        // Order keys: from the name where fmes wrote it, else from the file.
        // Files that are not messages come first, to be moved out of the way.
        let mut bad: Vec<(String, String)> = Vec::new();
        let mut candidates = FirstKeys::new(keep);
        self.fs
            .for_each_entry(mailbox, &mut |name, kind| {
                if !names::looks_like_message(name) || kind == EntryKind::Dir {
                    return;
                }
                if kind != EntryKind::File {
                    let reason = format!("is {}, not a regular file", describe_kind(kind));
                    bad.push((name.to_string(), reason));
                } else if !candidates.offer_name(name) {
                    match self.read_message(mailbox, name) {
                        Some(Ok((_, key))) => candidates.offer(key),
                        Some(Err(malformed)) => bad.push((name.to_string(), malformed.reason)),
                        None => {}
                    }
                }
            })
            .map_err(|e| self.listing_failed(mailbox, e))?;
        let dropped = candidates.dropped;
        let candidates = candidates.into_sorted_vec();

        for (file, reason) in bad {
            // Claimed first (one rename), so only one claimer moves it.
            let claim = ClaimName::first(&file, expires_ms, consumer);
            if self.take(mailbox, &file, &claim)? {
                self.dead_letter(mailbox, &claim, &reason)?;
                batch.dead_lettered.push(MalformedFile { file, reason });
            }
        }
        let inflight = [mailbox, "/", INFLIGHT_DIR].concat();
        let mut candidates = candidates.into_iter();
        while batch.claimed.len() < limit && !budget.full {
            // As many taken as are still wanted, then read in one go (one
            // call into the host in the component); a taken file that turns
            // out not to be a message leaves room for the next candidates.
            let mut taken = Vec::new();
            for key in candidates.by_ref() {
                let claim = ClaimName::first(&key.file, expires_ms, consumer);
                match self.take(mailbox, &key.file, &claim) {
                    Ok(true) => taken.push((key.file, claim)),
                    Ok(false) => continue,
                    Err(e) => {
                        // Those taken before it go back as they were.
                        for (_, claim) in &taken {
                            let before = claim.deliveries.saturating_sub(1);
                            let _ =
                                self.unclaim_as(mailbox, claim, claim.mailbox_name_after(before));
                        }
                        return Err(e);
                    }
                }
                if batch.claimed.len() + taken.len() == limit {
                    break;
                }
            }
            if taken.is_empty() {
                break;
            }
            let names: Vec<String> = taken.iter().map(|(_, claim)| claim.file_name()).collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            // Read until the answer is full (large messages): what it has no
            // room for is not read at all.
            let mut read = Vec::with_capacity(names.len());
            self.read_messages_until(&inflight, &names, |_, outcome| {
                if let Some(Ok((message, _))) = &outcome {
                    let bytes = message.answer_bytes();
                    if !budget.fits(bytes) {
                        return false;
                    }
                    budget.add(bytes);
                }
                read.push(outcome);
                true
            });
            let mut read = read.into_iter();
            let mut failed = None;
            for (file, claim) in taken {
                let outcome = read.next();
                let before = claim.deliveries.saturating_sub(1);
                if failed.is_some() {
                    // After a failure, the rest goes back as it was.
                    let _ = self.unclaim_as(mailbox, &claim, claim.mailbox_name_after(before));
                    continue;
                }
                match outcome {
                    Some(Some(Ok((mut message, _)))) => {
                        self.claims.remember(mailbox, &claim);
                        message.file = [claim.stem.as_str(), ".json"].concat();
                        batch.claimed.push(Claimed {
                            message,
                            deliveries: claim.deliveries,
                            lease_expires_ms: expires_ms,
                        });
                    }
                    Some(Some(Err(malformed))) => {
                        match self.dead_letter(mailbox, &claim, &malformed.reason) {
                            Ok(_) => batch.dead_lettered.push(MalformedFile {
                                file,
                                reason: malformed.reason,
                            }),
                            Err(e) => {
                                // Back in the mailbox, for a later claim to
                                // move (unless the move went far enough for
                                // `recover` to finish it).
                                let back = claim.mailbox_name_after(before);
                                let _ = self.unclaim_as(mailbox, &claim, back);
                                failed = Some(e);
                            }
                        }
                    }
                    Some(None) => {}
                    // Taken, but past what the answer can carry: given back
                    // with the count it had, for the next claim to take.
                    None => {
                        let back = claim.mailbox_name_after(before);
                        if let Err(e) = self.unclaim_as(mailbox, &claim, back) {
                            failed = Some(e);
                        }
                    }
                }
            }
            if let Some(e) = failed {
                return Err(e);
            }
        }
        Ok(dropped && batch.claimed.len() < limit && !budget.full)
    }

    /// Done with a claimed message: it is archived. Returns its name in `ARCHIVE/`.
    pub fn ack(&self, agent: &str, consumer: &str, file: &str) -> Result<String, QueueError> {
        self.on_claim(agent, consumer, file, |mailbox, claim| {
            let source = [mailbox, "/", INFLIGHT_DIR, "/", &claim.file_name()].concat();
            let archived = self.settle(
                &source,
                names::ARCHIVE_DIR,
                &settled_name(&claim.stem),
                None,
            )?;
            self.claims.forget(mailbox, &claim.stem);
            Ok(archived)
        })
    }

    /// Gives a claimed message back: to its place in the mailbox, or to the
    /// dead letters if it has been delivered the maximum number of times.
    pub fn release(&self, agent: &str, consumer: &str, file: &str) -> Result<Released, QueueError> {
        self.on_claim(agent, consumer, file, |mailbox, claim| {
            let released = if claim.deliveries >= self.options.max_deliveries {
                let reason = format!(
                    "released after {} deliveries (the limit is {})",
                    claim.deliveries, self.options.max_deliveries
                );
                Released::DeadLettered(self.dead_letter(mailbox, claim, &reason)?)
            } else {
                Released::Returned(self.unclaim(mailbox, claim)?)
            };
            self.claims.forget(mailbox, &claim.stem);
            Ok(released)
        })
    }

    /// Gives back a claimed message its consumer never began to handle (a
    /// batch cut short): to its place in the mailbox with the delivery count
    /// it had before the claim, since nobody had it. Returns its name there.
    pub fn give_back(&self, agent: &str, consumer: &str, file: &str) -> Result<String, QueueError> {
        self.on_claim(agent, consumer, file, |mailbox, claim| {
            let before = claim.deliveries.saturating_sub(1);
            let name = self.unclaim_as(mailbox, claim, claim.mailbox_name_after(before))?;
            self.claims.forget(mailbox, &claim.stem);
            Ok(name)
        })
    }

    /// Extends a claim's lease to `lease` from now; returns the new expiry
    /// (ms since 1970).
    pub fn extend(
        &self,
        agent: &str,
        consumer: &str,
        file: &str,
        lease: Duration,
    ) -> Result<u64, QueueError> {
        let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
        self.on_claim(agent, consumer, file, |mailbox, claim| {
            let renewed = ClaimName {
                expires_ms: now_ms().saturating_add(lease_ms),
                ..claim.clone()
            };
            let inflight = format!("{mailbox}/{INFLIGHT_DIR}");
            let from = format!("{inflight}/{}", claim.file_name());
            match self
                .fs
                .rename(&from, &format!("{inflight}/{}", renewed.file_name()))
            {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    return Err(QueueError::NotFound(from));
                }
                Err(e) => return Err(QueueError::io("extend", &from, e)),
            }
            self.claims.remember(mailbox, &renewed);
            self.sync(&inflight)?;
            Ok(renewed.expires_ms)
        })
    }

    /// Runs `op` on `consumer`'s claim on `file`: the one this queue
    /// remembers, else (or if that one is gone: `op` found nothing) the one
    /// a listing of `.inflight/` finds. `op` fails with `NotFound` if the
    /// claim's file is gone; that is reported as a claim not held.
    fn on_claim<T>(
        &self,
        agent: &str,
        consumer: &str,
        file: &str,
        op: impl Fn(&str, &ClaimName) -> Result<T, QueueError>,
    ) -> Result<T, QueueError> {
        names::check_agent(agent)?;
        names::check_agent(consumer).map_err(|_| QueueError::InvalidConsumer(consumer.into()))?;
        names::check_message_file(file)?;
        let mailbox = self.mailbox(agent)?;
        let (stem, _) = split_deliveries(file);
        if let Some(claim) = self.claims.recall(&mailbox, stem, consumer) {
            match op(&mailbox, &claim) {
                Err(QueueError::NotFound(_)) => self.claims.forget(&mailbox, stem),
                done => return done,
            }
        }
        let claim = self
            .find_claim(&mailbox, stem, consumer)?
            .ok_or_else(|| lost_claim(consumer, file))?;
        op(&mailbox, &claim).map_err(|e| not_found_is_lost(e, consumer, file))
    }

    /// Returns every expired claim to its mailbox (or the dead letters),
    /// completes interrupted moves, and removes old temporary files.
    pub fn recover(&self) -> Result<RecoverReport, QueueError> {
        let mut report = RecoverReport::default();
        // A mailbox whose claims cannot all be returned (a full disk) holds
        // back none of the others: its error is told after they are done.
        let mut failed = None;
        for agent in self.agents()? {
            let mailbox = names::mailbox_dir(&agent);
            if let Err(e) = self.recover_mailbox(&mailbox, &mut report) {
                failed.get_or_insert(e);
            }
            report.removed_temporary += self.remove_stale_temporaries(&mailbox)?;
            report.finished_moves += self.finish_all_incoming(&format!("{DEAD_DIR}/{mailbox}"))?;
        }
        report.finished_moves += self.finish_all_incoming(names::ARCHIVE_DIR)?;
        let (sends, staged) = self.finish_staged_sends()?;
        report.finished_moves += sends;
        report.removed_temporary += staged;
        failed.map_or(Ok(report), Err)
    }

    /// Returns the expired claims of one mailbox.
    pub(crate) fn recover_mailbox(
        &self,
        mailbox: &str,
        report: &mut RecoverReport,
    ) -> Result<(), QueueError> {
        let inflight = format!("{mailbox}/{INFLIGHT_DIR}");
        let entries = match self.fs.list(&inflight) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(QueueError::io("list", &inflight, e)),
        };
        let now = now_ms();
        let mut failed = None;
        for entry in entries {
            let Some(claim) = ClaimName::parse(&entry.name) else {
                continue;
            };
            if claim.expires_ms > now {
                continue;
            }
            let outcome = if claim.deliveries >= self.options.max_deliveries {
                let reason = format!(
                    "not acknowledged after {} deliveries (the limit is {})",
                    claim.deliveries, self.options.max_deliveries
                );
                self.dead_letter(mailbox, &claim, &reason)
                    .map(|_| report.dead_lettered += 1)
            } else {
                self.unclaim(mailbox, &claim).map(|_| report.returned += 1)
            };
            match outcome {
                // Another recoverer, or the consumer, moved it first.
                Ok(()) | Err(QueueError::NotFound(_)) => {}
                // One that cannot be moved (a full disk refusing its dead
                // letter's note) holds back none of the others.
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Moves `mailbox/file` into `.inflight/` as `claim`; false if another
    /// claimer took it first.
    fn take(&self, mailbox: &str, file: &str, claim: &ClaimName) -> Result<bool, QueueError> {
        let from = [mailbox, "/", file].concat();
        let to = [mailbox, "/", INFLIGHT_DIR, "/", &claim.file_name()].concat();
        match self.fs.rename(&from, &to) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            // Most often `.inflight/` made by another user, not writable to
            // this one (a shared `_COMM`): named, as the rename does not.
            Err(e) => Err(QueueError::Io(format!(
                "claim _COMM/{from}: cannot move it into _COMM/{mailbox}/{INFLIGHT_DIR}/: {e}"
            ))),
        }
    }

    /// Puts a claimed message back in its mailbox; returns its name there.
    fn unclaim(&self, mailbox: &str, claim: &ClaimName) -> Result<String, QueueError> {
        self.unclaim_as(mailbox, claim, claim.mailbox_name())
    }

    /// Puts a claimed message back in its mailbox as `name`.
    fn unclaim_as(
        &self,
        mailbox: &str,
        claim: &ClaimName,
        name: String,
    ) -> Result<String, QueueError> {
        let from = format!("{mailbox}/{INFLIGHT_DIR}/{}", claim.file_name());
        match self.fs.rename(&from, &format!("{mailbox}/{name}")) {
            Ok(()) => {
                self.sync(mailbox)?;
                Ok(name)
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Err(QueueError::NotFound(from)),
            Err(e) => Err(QueueError::io("return", &from, e)),
        }
    }

    /// Moves a claimed file into `DEAD/{mailbox}/` with its reason.
    fn dead_letter(
        &self,
        mailbox: &str,
        claim: &ClaimName,
        reason: &str,
    ) -> Result<String, QueueError> {
        self.ensure_dir(DEAD_DIR)?;
        let dir = format!("{DEAD_DIR}/{mailbox}");
        let note = serde_json::json!({
            "reason": reason,
            "deliveries": claim.deliveries,
            "dead_at_ms": now_ms(),
        })
        .to_string();
        let source = format!("{mailbox}/{INFLIGHT_DIR}/{}", claim.file_name());
        self.settle(&source, &dir, &settled_name(&claim.stem), Some(&note))
    }

    /// The claim `consumer` holds on the message `stem` of `mailbox`, as a
    /// listing of `.inflight/` finds it.
    fn find_claim(
        &self,
        mailbox: &str,
        stem: &str,
        consumer: &str,
    ) -> Result<Option<ClaimName>, QueueError> {
        let inflight = format!("{mailbox}/{INFLIGHT_DIR}");
        // Only this consumer's names are parsed, and only while there is
        // room to remember them: the folder may hold many claims. This
        // consumer's other claims are remembered, so settling them in turn
        // does not list the folder again for each.
        let prefix = format!("{stem}~");
        let suffix = format!("~{consumer}");
        let mut found = None;
        let mut memo = self.claims.claims();
        let listed = self.fs.for_each_entry(&inflight, &mut |name, _| {
            if !name.ends_with(&suffix) {
                return;
            }
            let this_message = name.starts_with(&prefix);
            if !this_message && memo.len() >= ClaimMemo::MAX {
                return;
            }
            if let Some(claim) = ClaimName::parse(name)
                && claim.consumer == consumer
            {
                if claim.stem == stem {
                    found = Some(claim);
                } else {
                    ClaimMemo::remember_in(&mut memo, mailbox, &claim);
                }
            }
        });
        drop(memo);
        match listed {
            Ok(()) => Ok(found),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(QueueError::io("list", &inflight, e)),
        }
    }

    /// Removes `*.tmp` files older than the grace period from a folder.
    pub(crate) fn remove_stale_temporaries(&self, dir: &str) -> Result<u32, QueueError> {
        let entries = match self.fs.list(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(QueueError::io("list", dir, e)),
        };
        let mut removed = 0;
        for entry in entries {
            if entry.kind != EntryKind::File || !entry.name.ends_with(".tmp") {
                continue;
            }
            let path = format!("{dir}/{}", entry.name);
            if self.older_than_grace(&path) {
                match self.fs.remove_file(&path) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(QueueError::io("remove", &path, e)),
                }
            }
        }
        Ok(removed)
    }
}

fn lost_claim(consumer: &str, file: &str) -> QueueError {
    QueueError::NotFound(format!(
        "{consumer} holds no claim on {file} (never claimed, already acknowledged or released, or its lease expired and it was recovered)"
    ))
}

fn not_found_is_lost(e: QueueError, consumer: &str, file: &str) -> QueueError {
    match e {
        QueueError::NotFound(_) => lost_claim(consumer, file),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An fmes name's stem, unique by its writer's part.
    const FMES_STEM: &str = "5_20261123_101500.123456789Z_a_TASK_1a2b3c4d0007";

    #[test]
    fn claim_names_round_trip() {
        let stem = claimed_stem("5_20240101_120000_a~b_TASK").into_owned();
        let claim = ClaimName {
            stem: stem.clone(),
            deliveries: 3,
            expires_ms: 1_700_000_000_000,
            consumer: "worker-1".into(),
        };
        assert_eq!(ClaimName::parse(&claim.file_name()), Some(claim.clone()));
        assert_eq!(claim.mailbox_name(), format!("{stem}~3.json"));
        assert_eq!(ClaimName::parse("x~1~2~bad name"), None);
        assert_eq!(ClaimName::parse("no-tilde"), None);
    }

    #[test]
    fn delivery_counts_split_off_unique_stems_only() {
        let returned = format!("{FMES_STEM}~4.json");
        assert_eq!(split_deliveries(&returned), (FMES_STEM, 4));
        assert_eq!(
            split_deliveries(&format!("{FMES_STEM}.json")),
            (FMES_STEM, 0)
        );
        let marked = claimed_stem("a").into_owned();
        let returned = format!("{marked}~4.json");
        assert_eq!(split_deliveries(&returned), (marked.as_str(), 4));
        let waiting = format!("{marked}.json");
        assert_eq!(split_deliveries(&waiting), (marked.as_str(), 0));
        // Another writer's type that looks like a mark, but does not check.
        let forged = "a~u0123456789ab~4.json";
        assert_eq!(split_deliveries(forged), ("a~u0123456789ab~4", 0));
        assert!(!is_unique_stem("a~u0123456789ab"));
        // Another writer's names: a type ending in `~4` is no count.
        assert_eq!(split_deliveries("a_b~4.json"), ("a_b~4", 0));
        assert_eq!(split_deliveries("a~b.json"), ("a~b", 0));
        assert_eq!(split_deliveries("~4.json"), ("~4", 0));
        assert_eq!(split_deliveries("a~4294967296.json"), ("a~4294967296", 0));
        // Not a mark: upper-case or too few digits.
        assert_eq!(
            split_deliveries("a~u0123456789AB~4.json"),
            ("a~u0123456789AB~4", 0)
        );
        assert_eq!(
            split_deliveries("a~u0123456789a~4.json"),
            ("a~u0123456789a~4", 0)
        );
        assert_eq!(mailbox_name("a", 0), "a.json");
        assert_eq!(mailbox_name("a", 2), "a~2.json");
    }

    #[test]
    fn other_writers_stems_are_made_unique_and_short_enough() {
        assert_eq!(claimed_stem(FMES_STEM), FMES_STEM);
        let marked = claimed_stem("a").into_owned();
        assert_eq!(claimed_stem(&marked), marked);
        // One that only looks marked gets a mark of its own, kept whole.
        let forged = claimed_stem("a~u0123456789ab");
        assert!(
            forged.starts_with("a~u0123456789ab~u") && is_unique_stem(&forged),
            "{forged}"
        );
        assert_eq!(settled_name(&forged), "a~u0123456789ab.json");
        // The README's example is one.
        assert!(is_unique_stem("5_20261123_101500_py_TASK~u3f9c0a1b3d1f"));
        let python = "5_20260101_000000_a_TASK";
        let (one, two) = (claimed_stem(python), claimed_stem(python));
        assert_ne!(one, two, "each claim of a shared name gets its own stem");
        for stem in [&one, &two] {
            assert!(stem.starts_with("5_20260101_000000_a_TASK~u"), "{stem}");
            assert!(is_unique_stem(stem), "{stem}");
        }
        // Cut to fit, at a character boundary: the longest claim name fits
        // in a file name.
        for long in [
            "n".repeat(250),
            "é".repeat(125),
            format!("{FMES_STEM}{}", "x".repeat(150)),
        ] {
            let stem = claimed_stem(&long);
            assert!(stem.len() <= MAX_CLAIMED_STEM, "{stem}");
            assert!(is_unique_stem(&stem), "{stem}");
            let claim = ClaimName {
                stem: stem.into_owned(),
                deliveries: u32::MAX,
                expires_ms: u64::MAX,
                consumer: "c".repeat(names::MAX_AGENT_NAME),
            };
            assert!(claim.file_name().len() <= names::MAX_FILE_NAME);
            assert_eq!(ClaimName::parse(&claim.file_name()), Some(claim));
        }
        // Archived and dead-lettered under the name its writer gave it.
        assert_eq!(settled_name(&one), "5_20260101_000000_a_TASK.json");
        assert_eq!(settled_name(FMES_STEM), format!("{FMES_STEM}.json"));
        assert_eq!(settled_name("~u0123456789ab"), "~u0123456789ab.json");
        // A count at its largest is not wrapped round by one more delivery.
        let last = ClaimName::first(&format!("{FMES_STEM}~{}.json", u32::MAX), 0, "w");
        assert_eq!(last.deliveries, u32::MAX);
    }

    fn claim(stem: &str, consumer: &str, deliveries: u32) -> ClaimName {
        ClaimName {
            stem: stem.into(),
            deliveries,
            expires_ms: 1_700_000_000_000,
            consumer: consumer.into(),
        }
    }

    #[test]
    fn the_memo_keeps_one_record_a_claim_by_mailbox_and_counts_them() {
        let memo = ClaimMemo::default();
        memo.remember("To_A", &claim("m1", "w", 1));
        memo.remember("To_A", &claim("m1", "w", 2));
        memo.remember("To_B", &claim("m1", "w", 1));
        assert_eq!(memo.claims().len(), 2);
        assert_eq!(
            memo.recall("To_A", "m1", "w").map(|c| c.deliveries),
            Some(2)
        );
        assert_eq!(memo.recall("To_A", "m1", "other"), None);
        assert_eq!(memo.recall("To_C", "m1", "w"), None);

        memo.forget("To_A", "m1");
        memo.forget("To_A", "m1");
        memo.forget("To_C", "m1");
        assert_eq!(memo.claims().len(), 1);
        assert_eq!(memo.recall("To_A", "m1", "w"), None);
        assert!(memo.recall("To_B", "m1", "w").is_some());
    }

    #[test]
    fn the_memo_stops_growing_at_its_cap_but_renews_what_it_holds() {
        let memo = ClaimMemo::default();
        for i in 0..ClaimMemo::MAX + 10 {
            memo.remember("To_A", &claim(&format!("m{i}"), "w", 1));
        }
        assert_eq!(memo.claims().len(), ClaimMemo::MAX);
        assert!(
            memo.recall("To_A", &format!("m{}", ClaimMemo::MAX), "w")
                .is_none()
        );
        memo.remember("To_A", &claim("m0", "w", 3));
        assert_eq!(
            memo.recall("To_A", "m0", "w").map(|c| c.deliveries),
            Some(3)
        );
        assert_eq!(memo.claims().len(), ClaimMemo::MAX);
    }
}
