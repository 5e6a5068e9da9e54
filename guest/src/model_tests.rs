//! A property test of the whole operation set: random sequences of sends
//! (with and without a caller-given id), broadcasts, receives, peeks,
//! archives, cleanups, claims, acks, releases, extensions, recoveries,
//! dead-letter listings, retries and purges, plus files planted by the test
//! (messages of another writer, malformed files, symbolic links, folders and
//! temporary files), run against `Queue<MemFs>` and against a plain model of
//! where every message is.
//!
//! After every step the test checks that the operation's result (success, or
//! which error) is the model's; that every mailbox receives exactly the
//! model's waiting messages in delivery order (priority, then send order),
//! peeks the model's count and has the model's stats; and, by reading every
//! file in the tree, that each message ever sent (and each planted file) is
//! in exactly the one place the model says: waiting in its mailbox, claimed
//! in `.inflight/`, in `ARCHIVE/`, or in `DEAD/`, under the expected name,
//! with each id marker a name of its message, and nothing else anywhere.
//!
//! Leases are driven without a clock: a claim or extension with a zero lease
//! has expired as soon as it is made, one with a long lease never expires
//! during a test. File ages (for cleanup) come from the [`MemFs`] clock,
//! which runs far behind the wall clock and moves only when the test says.
//!
//! A second property adds simulated crashes: a move into `ARCHIVE/` or
//! `DEAD/` stopped after writing its note, after its commit rename, or after
//! its link, which the next `recover` must complete. Fixed sequences at the
//! end make sure every path is taken on every run, and keep the bugs found.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use serde_json::Value;

use crate::claims::now_ms;
use crate::dead::DeadLetterCache;
use crate::fs::FileSystem;
use crate::fs::mem_fs::MemFs;
use crate::{Options, Queue, QueueError, Released, SendRequest};

const MAX_DELIVERIES: u32 = 2;
/// Agent names the operations use: `B` is `b`, `zed` never has a mailbox,
/// `no pe` is not a valid name.
const NAMES: [&str; 7] = ["a", "b", "c", "d", "B", "zed", "no pe"];
const INITIAL: [&str; 3] = ["a", "b", "c"];
/// Consumers: `W1` is not `w1` (consumers are compared exactly).
const CONSUMERS: [&str; 4] = ["w1", "w2", "W1", "no pe"];
const SEND_TYPES: [Option<&str>; 5] = [
    None,
    Some("TASK"),
    Some("REPORT"),
    Some("ALERT"),
    Some("no pe"),
];
/// Type filters: compared exactly (`task` is not `TASK`) and never checked.
const FILTERS: [Option<&str>; 5] = [
    None,
    Some("TASK"),
    Some("REPORT"),
    Some("task"),
    Some("no pe"),
];
const PAYLOADS: [&str; 7] = [
    "{}",
    "{\"n\": 1, \"s\": \"é\"}",
    "[1, 2]",
    "\"text\"",
    "{",
    "nul",
    "{\"long\": \"0123456789abcdef\"}",
];
/// Caller-given ids of idempotent sends (`no pe` is invalid).
const IDS: [&str; 3] = ["m1", "m2", "no pe"];
const SMALL_PAYLOAD_LIMIT: u64 = 16;
const HOUR: Duration = Duration::from_secs(3600);
/// The file-system clock starts this far behind the wall clock, so every
/// file is older than any grace period and ages are set by the test alone.
const BEHIND: Duration = Duration::from_secs(1000 * 3600);
const LONG_LEASE: Duration = HOUR;
/// 2000-01-01T00:00:00Z in seconds since 1970: planted files are dated then.
const MILLENNIUM: u64 = 946_684_800;

// ---------------------------------------------------------------- operations

/// Which file an operation names: one the model picks from its current
/// state (by index, modulo the candidates), among those the operation is
/// meant for (`Primary`: waiting ones to archive, claimed ones to ack, dead
/// ones to retry) or others (`Secondary`), or one that is not there, or an
/// invalid name.
#[derive(Debug, Clone, Copy)]
enum Pick {
    Primary(usize),
    Secondary(usize),
    Missing,
    Invalid,
}

/// Which agent an operation names: one with messages waiting or claimed
/// (by index, modulo those; `a` if none), or any of [`NAMES`].
#[derive(Debug, Clone, Copy)]
enum Target {
    Busy(usize),
    Name(usize),
}

#[derive(Debug, Clone)]
enum Op {
    Init(Vec<usize>),
    Agents,
    Send {
        from: usize,
        to: usize,
        ty: usize,
        priority: Option<u8>,
        payload: usize,
        small_limit: bool,
        id: Option<usize>,
    },
    Broadcast {
        from: usize,
        ty: usize,
        payload: usize,
    },
    Receive {
        agent: Target,
        filter: usize,
        limit: Option<u32>,
    },
    Peek {
        agent: Target,
    },
    Archive {
        pick: Pick,
        agent: Option<usize>,
    },
    Cleanup {
        hours: i64,
    },
    Advance {
        hours: i64,
    },
    Claim {
        agent: Target,
        consumer: usize,
        limit: u32,
        long: bool,
    },
    Ack(ClaimArgs),
    Release(ClaimArgs),
    GiveBack(ClaimArgs),
    Extend(ClaimArgs, bool),
    Recover,
    DeadList {
        agent: Option<usize>,
    },
    Retry {
        pick: Pick,
        agent: Option<usize>,
    },
    Purge {
        agent: Option<usize>,
        pick: Option<Pick>,
    },
    PlantBad {
        agent: usize,
        content: u8,
        name: u8,
        priority: u8,
    },
    PlantTmp {
        agent: usize,
        old: bool,
    },
    /// A message written by another writer (the Python one): not an fmes
    /// name, so ordered by its fields; any priority that fits a byte.
    PlantPython {
        agent: usize,
        priority: u8,
        second: u8,
        report: bool,
        /// 0: a name of its own; 1: the Python writer's name, which an
        /// earlier message of that second may have (and be claimed under);
        /// 2: that, with a type ending in `~` and digits, like a count.
        naming: u8,
    },
    /// A symbolic link named like a message.
    PlantLink {
        agent: usize,
    },
    /// A folder named like a message, which every operation ignores.
    PlantDir {
        agent: usize,
    },
    CrashArchive {
        pick: usize,
        linked: bool,
    },
    CrashDead {
        pick: usize,
        stage: u8,
    },
    Stats,
}

/// The arguments of ack, release and extend: a claimed message (or another
/// file), its holder or another consumer, its agent or another.
#[derive(Debug, Clone, Copy)]
struct ClaimArgs {
    pick: Pick,
    consumer: Option<usize>,
    agent: Option<usize>,
    /// Name the claimed file `{stem}~{deliveries}.json` rather than `{stem}.json`.
    suffixed: bool,
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        12 => any::<usize>().prop_map(Pick::Primary),
        2 => any::<usize>().prop_map(Pick::Secondary),
        1 => Just(Pick::Missing),
        1 => Just(Pick::Invalid),
    ]
}

/// Mostly `a`, `b` or `c`, sometimes any name.
fn name() -> impl Strategy<Value = usize> {
    prop_oneof![6 => 0usize..3, 1 => 0..NAMES.len()]
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        3 => any::<usize>().prop_map(Target::Busy),
        1 => name().prop_map(Target::Name),
    ]
}

/// Mostly a valid choice (the first `valid` of `n`), sometimes any.
fn mostly(valid: usize, n: usize) -> impl Strategy<Value = usize> {
    prop_oneof![8 => 0..valid, 1 => 0..n]
}

fn claim_args() -> impl Strategy<Value = ClaimArgs> {
    (
        pick(),
        prop::option::weighted(0.15, 0..CONSUMERS.len()),
        prop::option::weighted(0.1, name()),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(pick, consumer, agent, suffixed)| ClaimArgs {
            pick,
            consumer,
            agent,
            suffixed,
        })
}

fn op(crashes: bool) -> BoxedStrategy<Op> {
    let plain = prop_oneof![
        1 => prop::collection::vec(0..NAMES.len(), 1..3).prop_map(Op::Init),
        1 => Just(Op::Agents),
        8 => (
            name(),
            name(),
            mostly(4, SEND_TYPES.len()),
            prop::option::weighted(0.8, prop_oneof![10 => 1u8..=9, 1 => 0u8..=10]),
            prop_oneof![8 => 0usize..4, 1 => 0..PAYLOADS.len()],
            prop::bool::weighted(0.05),
            prop::option::weighted(0.3, mostly(2, IDS.len())),
        )
            .prop_map(|(from, to, ty, priority, payload, small_limit, id)| Op::Send {
                from,
                to,
                ty,
                priority,
                payload,
                small_limit,
                id,
            }),
        2 => (name(), mostly(4, SEND_TYPES.len()), mostly(4, PAYLOADS.len()))
            .prop_map(|(from, ty, payload)| Op::Broadcast { from, ty, payload }),
        3 => (target(), 0..FILTERS.len(), prop::option::of(0u32..4))
            .prop_map(|(agent, filter, limit)| Op::Receive { agent, filter, limit }),
        1 => target().prop_map(|agent| Op::Peek { agent }),
        3 => (pick(), prop::option::weighted(0.1, name()))
            .prop_map(|(pick, agent)| Op::Archive { pick, agent }),
        1 => (0i64..4).prop_map(|hours| Op::Cleanup { hours }),
        1 => (1i64..4).prop_map(|hours| Op::Advance { hours }),
        10 => (target(), mostly(2, CONSUMERS.len()), prop_oneof![1 => 0u32..1, 6 => 1u32..4], any::<bool>())
            .prop_map(|(agent, consumer, limit, long)| Op::Claim { agent, consumer, limit, long }),
        3 => claim_args().prop_map(Op::Ack),
        5 => claim_args().prop_map(Op::Release),
        2 => claim_args().prop_map(Op::GiveBack),
        2 => (claim_args(), any::<bool>()).prop_map(|(args, long)| Op::Extend(args, long)),
        2 => Just(Op::Recover),
        1 => prop::option::weighted(0.5, name()).prop_map(|agent| Op::DeadList { agent }),
        3 => (pick(), prop::option::weighted(0.1, name()))
            .prop_map(|(pick, agent)| Op::Retry { pick, agent }),
        1 => (prop::option::weighted(0.5, name()), prop::option::weighted(0.7, pick()))
            .prop_map(|(agent, pick)| Op::Purge { agent, pick }),
        2 => (0usize..4, 0u8..4, 0u8..3, 1u8..=9).prop_map(|(agent, content, name, priority)| {
            Op::PlantBad { agent, content, name, priority }
        }),
        1 => (0usize..4, any::<bool>()).prop_map(|(agent, old)| Op::PlantTmp { agent, old }),
        2 => (0usize..4, 0u8..=12, 0u8..3, any::<bool>(), 0u8..3).prop_map(
            |(agent, priority, second, report, naming)| {
                Op::PlantPython { agent, priority, second, report, naming }
            }
        ),
        1 => (0usize..4).prop_map(|agent| Op::PlantLink { agent }),
        1 => (0usize..4).prop_map(|agent| Op::PlantDir { agent }),
        1 => Just(Op::Stats),
    ];
    if crashes {
        prop_oneof![
            12 => plain,
            1 => (any::<usize>(), any::<bool>())
                .prop_map(|(pick, linked)| Op::CrashArchive { pick, linked }),
            1 => (any::<usize>(), 0u8..3).prop_map(|(pick, stage)| Op::CrashDead { pick, stage }),
        ]
        .boxed()
    } else {
        plain.boxed()
    }
}

// --------------------------------------------------------------------- model

/// What identifies a file wherever it moves: a message's id, or the number
/// of a planted malformed file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Ident {
    Msg(String),
    Bad(u32),
}

/// A name in `ARCHIVE/` or `DEAD/`: the target, or (when the target was
/// taken) `{stem}_` and six hex digits, learnt from the files after the step.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Name {
    Exact(String),
    Suffixed(String),
}

impl Name {
    fn settle(target: &str, taken: bool) -> Name {
        if taken {
            Name::Suffixed(target.strip_suffix(".json").unwrap_or(target).to_string())
        } else {
            Name::Exact(target.to_string())
        }
    }

    fn exact(&self) -> &str {
        match self {
            Name::Exact(name) => name,
            Name::Suffixed(stem) => panic!("name of {stem}_* not learnt yet"),
        }
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            Name::Exact(exact) => exact == name,
            Name::Suffixed(stem) => name
                .strip_prefix(stem.as_str())
                .and_then(|rest| rest.strip_prefix('_'))
                .and_then(|rest| rest.strip_suffix(".json"))
                .is_some_and(|hex| hex.len() == 6 && hex.bytes().all(|b| b.is_ascii_hexdigit())),
        }
    }
}

/// An interrupted move into `ARCHIVE/` or `DEAD/`: the file is in
/// `.incoming/` under this staging name, and (when linked) under its final
/// name as well.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pending {
    Staged(String),
    Linked(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Reason {
    Released,
    NotAcked,
    Malformed(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Ready {
        name: String,
        deliveries: u32,
    },
    InFlight {
        stem: String,
        consumer: String,
        deliveries: u32,
        expired: bool,
    },
    Archived {
        name: Name,
        pending: Option<Pending>,
    },
    Dead {
        name: Name,
        deliveries: u32,
        reason: Reason,
        pending: Option<Pending>,
    },
    Purged,
}

#[derive(Debug, Clone)]
struct MsgInfo {
    from: String,
    to: String,
    ty: String,
    priority: u8,
    payload: String,
}

#[derive(Debug, Clone)]
struct Entity {
    ident: Ident,
    /// The agent whose mailbox it belongs to, lower-case.
    agent: String,
    /// Delivery order `(priority, send rank)` for fmes-named files; `None`
    /// for other names, which are read for their order (and, being planted
    /// malformed files, fail).
    order: Option<(u8, u64)>,
    msg: Option<MsgInfo>,
    /// What a reader says about a planted malformed file.
    bad_reason: &'static str,
    /// Modification time, in hours of the test clock.
    mtime_h: i64,
    /// A symbolic link, not a file.
    link: bool,
    state: State,
}

/// A staging file left in `DEAD/{mailbox}/.incoming/` after its linked dead
/// letter was retried or purged: the correct queue must not bring it back.
#[derive(Debug, Clone)]
struct Leftover {
    ident: Ident,
    agent: String,
    staging: String,
}

#[derive(Debug, Default)]
struct Model {
    agents: BTreeSet<String>,
    entities: Vec<Entity>,
    next_rank: u64,
    next_n: u32,
    clock_h: i64,
    /// Planted temporary files: path, and whether older than the grace period.
    tmps: BTreeMap<String, bool>,
    /// Notes of dead-letter moves stopped before their commit rename.
    stray_notes: BTreeSet<String>,
    leftovers: Vec<Leftover>,
    bad_bytes: BTreeMap<Vec<u8>, u32>,
    /// Markers of caller-given ids: the mailbox's agent and the file name.
    markers: BTreeMap<String, (String, String)>,
}

fn valid_token(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn valid_agent(s: &str) -> bool {
    valid_token(s, 64)
}

fn valid_file(f: &str) -> bool {
    f.len() <= 255
        && f.len() > 5
        && f.ends_with(".json")
        && !f.starts_with('.')
        && !f.contains(['/', '\\', '\0'])
}

fn mailbox_dir(agent: &str) -> String {
    let mut dir = String::from("To_");
    for (i, c) in agent.chars().enumerate() {
        dir.push(if i == 0 {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        });
    }
    dir
}

/// `{stem}~{n}.json` split into stem and count (0 without a count); a
/// count follows only a stem no other file can have.
fn split_deliveries(file: &str) -> (String, u32) {
    let stem = file.strip_suffix(".json").unwrap_or(file);
    if let Some((base, count)) = stem.rsplit_once('~')
        && !base.is_empty()
        && !count.is_empty()
        && count.bytes().all(|b| b.is_ascii_digit())
        && unique_stem(base)
        && let Ok(n) = count.parse()
    {
        return (base.to_string(), n);
    }
    (stem.to_string(), 0)
}

/// An fmes name's stem (`5_20000101_000000.000000001Z_…`), or one a claim
/// marked unique (`…~u` and twelve hex digits).
fn unique_stem(stem: &str) -> bool {
    let b = stem.as_bytes();
    let fmes = b.len() >= 29 && b[1] == b'_' && b[17] == b'.' && b[27] == b'Z' && b[28] == b'_';
    fmes || marked_stem(stem).is_some()
}

/// The name a claimed message is archived or dead-lettered under: its
/// stem without a claim's mark.
fn settled_name(stem: &str) -> String {
    format!("{}.json", marked_stem(stem).unwrap_or(stem))
}

/// The stem a claim marked unique was made from.
fn marked_stem(stem: &str) -> Option<&str> {
    let (base, mark) = stem.rsplit_once("~u")?;
    let hex = mark.len() == 12
        && mark
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    hex.then_some(base)
}

fn mailbox_name(stem: &str, deliveries: u32) -> String {
    if deliveries == 0 {
        format!("{stem}.json")
    } else {
        format!("{stem}~{deliveries}.json")
    }
}

fn staging_target(staging: &str) -> &str {
    staging.rsplit_once('~').map_or(staging, |(t, _)| t)
}

fn compact(payload: &str) -> String {
    serde_json::from_str::<Value>(payload).unwrap().to_string()
}

fn kind(e: &QueueError) -> &'static str {
    match e {
        QueueError::InvalidAgentName(_) => "InvalidAgentName",
        QueueError::UnknownAgent { .. } => "UnknownAgent",
        QueueError::InvalidConsumer(_) => "InvalidConsumer",
        QueueError::InvalidPriority(_) => "InvalidPriority",
        QueueError::InvalidType(_) => "InvalidType",
        QueueError::InvalidPayload(_) => "InvalidPayload",
        QueueError::InvalidMessageId(_) => "InvalidMessageId",
        QueueError::PayloadTooLarge { .. } => "PayloadTooLarge",
        QueueError::InvalidFileName(_) => "InvalidFileName",
        QueueError::NotFound(_) => "NotFound",
        QueueError::InvalidLayout(_) => "InvalidLayout",
        QueueError::Io(_) => "Io",
    }
}

/// Compares an error with the model's expectation; for an unknown agent,
/// also the list of known agents it gives.
fn check_err(op: &str, got: &QueueError, expected: &'static str, model: &Model) {
    assert_eq!(
        kind(got),
        expected,
        "{op}: got {got:?}, expected {expected}"
    );
    if let QueueError::UnknownAgent { known, .. } = got {
        let agents: Vec<String> = model.agents.iter().cloned().collect();
        assert_eq!(known, &agents, "{op}: known agents");
    }
}

impl Model {
    fn entity(&self, ident: &Ident) -> usize {
        self.entities
            .iter()
            .position(|e| &e.ident == ident)
            .unwrap_or_else(|| panic!("no entity {ident:?}"))
    }

    fn ready_in(&self, agent: &str) -> Vec<usize> {
        (0..self.entities.len())
            .filter(|&i| {
                self.entities[i].agent == agent
                    && matches!(self.entities[i].state, State::Ready { .. })
            })
            .collect()
    }

    fn in_flight_in(&self, agent: &str) -> Vec<usize> {
        (0..self.entities.len())
            .filter(|&i| {
                self.entities[i].agent == agent
                    && matches!(self.entities[i].state, State::InFlight { .. })
            })
            .collect()
    }

    /// Dead letters visible in `DEAD/{mailbox}/`: `(name, entity)`, by name.
    fn dead_visible(&self, agent: &str) -> Vec<(String, usize)> {
        let mut dead: Vec<(String, usize)> = self
            .entities
            .iter()
            .enumerate()
            .filter_map(|(i, e)| match &e.state {
                State::Dead { name, pending, .. }
                    if e.agent == agent && !matches!(pending, Some(Pending::Staged(_))) =>
                {
                    Some((name.exact().to_string(), i))
                }
                _ => None,
            })
            .collect();
        dead.sort();
        dead
    }

    fn archive_taken(&self, target: &str) -> bool {
        self.entities.iter().any(|e| match &e.state {
            State::Archived { name, pending } => {
                !matches!(pending, Some(Pending::Staged(_))) && name == &Name::Exact(target.into())
            }
            _ => false,
        })
    }

    fn dead_taken(&self, agent: &str, target: &str) -> bool {
        self.entities.iter().any(|e| match &e.state {
            State::Dead { name, pending, .. } => {
                e.agent == agent
                    && !matches!(pending, Some(Pending::Staged(_)))
                    && name == &Name::Exact(target.into())
            }
            _ => false,
        })
    }

    fn archive(&mut self, i: usize, target: &str) -> Name {
        let name = Name::settle(target, self.archive_taken(target));
        self.entities[i].state = State::Archived {
            name: name.clone(),
            pending: None,
        };
        name
    }

    fn dead_letter(&mut self, i: usize, stem: &str, deliveries: u32, reason: Reason) -> Name {
        let target = settled_name(stem);
        let agent = self.entities[i].agent.clone();
        let name = Name::settle(&target, self.dead_taken(&agent, &target));
        self.entities[i].state = State::Dead {
            name: name.clone(),
            deliveries,
            reason,
            pending: None,
        };
        name
    }

    /// Returns or dead-letters the expired claims of a mailbox.
    fn recover_mailbox(&mut self, agent: &str) -> (u32, u32) {
        let (mut returned, mut dead) = (0, 0);
        for i in self.in_flight_in(agent) {
            let State::InFlight {
                stem,
                deliveries,
                expired: true,
                ..
            } = self.entities[i].state.clone()
            else {
                continue;
            };
            if deliveries >= MAX_DELIVERIES {
                self.dead_letter(i, &stem, deliveries, Reason::NotAcked);
                dead += 1;
            } else {
                self.entities[i].state = State::Ready {
                    name: mailbox_name(&stem, deliveries),
                    deliveries,
                };
                returned += 1;
            }
        }
        (returned, dead)
    }

    /// Completes the interrupted moves into one folder (`None`: ARCHIVE), in
    /// the order of their staging names; returns how many.
    fn finish_pending(&mut self, dead_of: Option<&str>) -> u32 {
        let mut pending: Vec<(String, usize)> = self
            .entities
            .iter()
            .enumerate()
            .filter_map(|(i, e)| match (&e.state, dead_of) {
                (
                    State::Archived {
                        pending: Some(Pending::Staged(s) | Pending::Linked(s)),
                        ..
                    },
                    None,
                ) => Some((s.clone(), i)),
                (
                    State::Dead {
                        pending: Some(Pending::Staged(s) | Pending::Linked(s)),
                        ..
                    },
                    Some(agent),
                ) if e.agent == agent => Some((s.clone(), i)),
                _ => None,
            })
            .collect();
        pending.sort();
        let finished = pending.len() as u32;
        for (staging, i) in pending {
            let target = staging_target(&staging).to_string();
            let taken = match dead_of {
                None => self.archive_taken(&target),
                Some(agent) => self.dead_taken(agent, &target),
            };
            match &mut self.entities[i].state {
                State::Archived { name, pending } | State::Dead { name, pending, .. } => {
                    if let Some(Pending::Staged(_)) = pending {
                        *name = Name::settle(&target, taken);
                    }
                    *pending = None;
                }
                _ => unreachable!(),
            }
        }
        finished
    }

    /// Waiting messages a receive returns, and the malformed files it names.
    fn receive(
        &self,
        agent: &str,
        filter: Option<&str>,
        limit: Option<u32>,
    ) -> (Vec<usize>, Vec<String>) {
        let mut malformed = Vec::new();
        let mut keyed = Vec::new();
        for i in self.ready_in(agent) {
            let e = &self.entities[i];
            let State::Ready { name, .. } = &e.state else {
                unreachable!()
            };
            match e.order {
                None => malformed.push(name.clone()),
                Some((priority, rank)) => keyed.push((priority, rank, name.clone(), i)),
            }
        }
        keyed.sort();
        let limit = limit.map_or(usize::MAX, |l| l as usize);
        let mut messages = Vec::new();
        for (_, _, name, i) in keyed {
            if messages.len() >= limit {
                break;
            }
            match &self.entities[i].msg {
                None => malformed.push(name),
                Some(m) => {
                    if filter.is_none_or(|t| t == m.ty) {
                        messages.push(i);
                    }
                }
            }
        }
        malformed.sort();
        (messages, malformed)
    }
}

// ------------------------------------------------------------------- harness

/// Where a file is, as read from the tree.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Loc {
    Ready {
        agent: String,
        name: String,
    },
    InFlight {
        agent: String,
        stem: String,
        consumer: String,
        deliveries: u32,
    },
    Archived {
        name: String,
    },
    ArchiveStaging {
        staging: String,
    },
    Dead {
        agent: String,
        name: String,
    },
    DeadStaging {
        agent: String,
        staging: String,
    },
}

struct Harness {
    fs: MemFs,
    queue: Queue<MemFs>,
    model: Model,
    /// The file-system clock at hour 0 of the test.
    base: SystemTime,
}

impl Harness {
    fn new() -> Harness {
        let base = SystemTime::now() - BEHIND;
        let fs = MemFs::default();
        fs.set_now(base);
        let queue = Queue::with_options(
            fs.clone(),
            Options {
                durable: true,
                max_deliveries: MAX_DELIVERIES,
                origin: 0,
            },
        );
        let agents: Vec<String> = INITIAL.iter().map(|a| a.to_string()).collect();
        queue.init(&agents).unwrap();
        let model = Model {
            agents: INITIAL.iter().map(|a| a.to_string()).collect(),
            next_rank: 1 << 62,
            ..Model::default()
        };
        Harness {
            fs,
            queue,
            model,
            base,
        }
    }

    fn hours(&self, h: i64) -> SystemTime {
        if h >= 0 {
            self.base + HOUR * h as u32
        } else {
            self.base - HOUR * (-h) as u32
        }
    }

    fn exists(&self, agent: &str) -> bool {
        self.model.agents.contains(&agent.to_ascii_lowercase())
    }

    /// The error every operation on an agent's mailbox checks first.
    fn agent_error(&self, agent: &str) -> Option<&'static str> {
        if !valid_agent(agent) {
            Some("InvalidAgentName")
        } else {
            None
        }
    }

    /// Candidate files: `(agent, file, entity)`.
    fn ready_files(&self) -> Vec<(String, String, usize)> {
        let m = &self.model;
        (0..m.entities.len())
            .filter_map(|i| match &m.entities[i].state {
                State::Ready { name, .. } => Some((m.entities[i].agent.clone(), name.clone(), i)),
                _ => None,
            })
            .collect()
    }

    fn in_flight_files(&self, suffixed: bool) -> Vec<(String, String, usize)> {
        let m = &self.model;
        (0..m.entities.len())
            .filter_map(|i| match &m.entities[i].state {
                State::InFlight {
                    stem, deliveries, ..
                } => {
                    let file = if suffixed {
                        format!("{stem}~{deliveries}.json")
                    } else {
                        format!("{stem}.json")
                    };
                    Some((m.entities[i].agent.clone(), file, i))
                }
                _ => None,
            })
            .collect()
    }

    fn dead_files(&self) -> Vec<(String, String, usize)> {
        let m = &self.model;
        m.agents
            .iter()
            .flat_map(|agent| {
                m.dead_visible(agent)
                    .into_iter()
                    .map(move |(name, i)| (agent.clone(), name, i))
            })
            .collect()
    }

    /// Resolves a pick among primary and secondary candidates to `(agent, file)`.
    fn resolve(
        &self,
        pick: Pick,
        primary: Vec<(String, String, usize)>,
        secondary: Vec<(String, String, usize)>,
        agent: Option<usize>,
    ) -> (String, String) {
        let chosen = match pick {
            Pick::Primary(n) if !primary.is_empty() => Some(&primary[n % primary.len()]),
            Pick::Primary(n) | Pick::Secondary(n) if !secondary.is_empty() => {
                Some(&secondary[n % secondary.len()])
            }
            Pick::Secondary(n) if !primary.is_empty() => Some(&primary[n % primary.len()]),
            _ => None,
        };
        let (owner, file) = match (pick, chosen) {
            (_, Some((agent, file, _))) => (agent.clone(), file.clone()),
            (Pick::Invalid, _) => ("a".to_string(), "../To_B/x.json".to_string()),
            _ => ("a".to_string(), "missing.json".to_string()),
        };
        (agent.map_or(owner, |j| NAMES[j].to_string()), file)
    }

    fn target(&self, target: Target) -> String {
        match target {
            Target::Name(j) => NAMES[j].to_string(),
            Target::Busy(n) => {
                let busy: BTreeSet<&str> = self
                    .model
                    .entities
                    .iter()
                    .filter(|e| matches!(e.state, State::Ready { .. } | State::InFlight { .. }))
                    .map(|e| e.agent.as_str())
                    .collect();
                busy.iter()
                    .nth(n % busy.len().max(1))
                    .map_or("a".to_string(), |a| a.to_string())
            }
        }
    }

    fn step(&mut self, op: &Op) {
        match op {
            Op::Init(names) => self.init(names),
            Op::Agents => {
                let got = self.queue.agents().unwrap();
                let expected: Vec<String> = self.model.agents.iter().cloned().collect();
                assert_eq!(got, expected, "agents");
            }
            Op::Send {
                from,
                to,
                ty,
                priority,
                payload,
                small_limit,
                id,
            } => self.send(SendRequest {
                from: NAMES[*from].into(),
                to: NAMES[*to].into(),
                message_type: SEND_TYPES[*ty].map(Into::into),
                priority: *priority,
                payload: PAYLOADS[*payload].into(),
                max_payload_bytes: small_limit.then_some(SMALL_PAYLOAD_LIMIT),
                id: id.map(|k| IDS[k].into()),
            }),
            Op::Broadcast { from, ty, payload } => {
                self.broadcast(NAMES[*from], SEND_TYPES[*ty], PAYLOADS[*payload])
            }
            Op::Receive {
                agent,
                filter,
                limit,
            } => {
                let agent = self.target(*agent);
                self.receive(&agent, FILTERS[*filter], *limit)
            }
            Op::Peek { agent } => {
                let agent = self.target(*agent);
                self.peek(&agent)
            }
            Op::Archive { pick, agent } => {
                let mut others = self.in_flight_files(false);
                others.extend(self.dead_files());
                let (agent, file) = self.resolve(*pick, self.ready_files(), others, *agent);
                self.archive(&agent, &file);
            }
            Op::Cleanup { hours } => self.cleanup(*hours),
            Op::Advance { hours } => {
                self.fs.advance(HOUR * *hours as u32);
                self.model.clock_h += hours;
            }
            Op::Claim {
                agent,
                consumer,
                limit,
                long,
            } => {
                let agent = self.target(*agent);
                self.claim(&agent, CONSUMERS[*consumer], *limit, *long)
            }
            Op::Ack(args) => self.claim_op(args, ClaimOp::Ack),
            Op::Release(args) => self.claim_op(args, ClaimOp::Release),
            Op::GiveBack(args) => self.claim_op(args, ClaimOp::GiveBack),
            Op::Extend(args, long) => self.claim_op(args, ClaimOp::Extend(*long)),
            Op::Recover => self.recover(),
            Op::DeadList { agent } => self.dead_list(agent.map(|j| NAMES[j])),
            Op::Retry { pick, agent } => {
                let (agent, file) =
                    self.resolve(*pick, self.dead_files(), self.ready_files(), *agent);
                self.retry(&agent, &file);
            }
            Op::Purge { agent, pick } => {
                let file = pick.map(|pick| {
                    self.resolve(pick, self.dead_files(), self.ready_files(), None)
                        .1
                });
                self.purge(agent.map(|j| NAMES[j]), file.as_deref());
            }
            Op::PlantBad {
                agent,
                content,
                name,
                priority,
            } => self.plant_bad(NAMES[*agent], *content, *name, *priority),
            Op::PlantTmp { agent, old } => self.plant_tmp(NAMES[*agent], *old),
            Op::PlantPython {
                agent,
                priority,
                second,
                report,
                naming,
            } => self.plant_python(NAMES[*agent], *priority, *second, *report, *naming),
            Op::PlantLink { agent } => self.plant_link(NAMES[*agent]),
            Op::PlantDir { agent } => {
                let n = self.model.next_n;
                self.model.next_n += 1;
                let result = self
                    .fs
                    .create_dir(&format!("{}/folder{n}.json", mailbox_dir(NAMES[*agent])));
                assert_eq!(result.is_ok(), self.exists(NAMES[*agent]), "{result:?}");
            }
            Op::CrashArchive { pick, linked } => self.crash_archive(*pick, *linked),
            Op::CrashDead { pick, stage } => self.crash_dead(*pick, *stage),
            Op::Stats => {} // checked after every step
        }
        self.check_everything();
    }

    fn init(&mut self, names: &[usize]) {
        let names: Vec<String> = names.iter().map(|&j| NAMES[j].to_string()).collect();
        let got = self.queue.init(&names);
        if names.iter().any(|n| !valid_agent(n)) {
            check_err("init", &got.unwrap_err(), "InvalidAgentName", &self.model);
            return;
        }
        let mut created = Vec::new();
        for name in &names {
            if self.model.agents.insert(name.to_ascii_lowercase()) {
                created.push(name.clone());
            }
        }
        assert_eq!(got.unwrap(), created, "init created");
    }

    fn send_error(&self, request: &SendRequest) -> Option<&'static str> {
        let (from, to, payload) = (&request.from, &request.to, &request.payload);
        let ty = request.message_type.as_deref().unwrap_or("TASK");
        let priority = request.priority.unwrap_or(5);
        if !valid_agent(from) || !valid_agent(to) {
            return Some("InvalidAgentName");
        }
        if !valid_token(ty, 32) {
            return Some("InvalidType");
        }
        if !(1..=9).contains(&priority) {
            return Some("InvalidPriority");
        }
        if payload.len() as u64 > request.max_payload_bytes.unwrap_or(1 << 20) {
            return Some("PayloadTooLarge");
        }
        if serde_json::from_str::<Value>(payload).is_err() {
            return Some("InvalidPayload");
        }
        if request.id.as_deref().is_some_and(|id| !valid_agent(id)) {
            return Some("InvalidMessageId");
        }
        if !self.exists(to) {
            return Some("UnknownAgent");
        }
        None
    }

    /// Checks a message the queue says it sent and adds it to the model.
    fn sent(&mut self, message: &crate::Message, info: MsgInfo) {
        assert_eq!(
            (
                &message.from,
                &message.to,
                &message.message_type,
                message.priority,
                &message.payload
            ),
            (&info.from, &info.to, &info.ty, info.priority, &info.payload),
            "sent message fields"
        );
        let prefix = format!("{}_", info.priority);
        let middle = format!("_{}_{}_", info.from, info.ty);
        assert!(
            message.file.starts_with(&prefix)
                && message.file.contains(&middle)
                && message.file.ends_with(".json")
                && crate::message::key_from_fmes_name(&message.file).is_some(),
            "sent file name {}",
            message.file
        );
        let ident = Ident::Msg(message.id.clone());
        assert!(
            self.model.entities.iter().all(|e| e.ident != ident),
            "id {} sent twice",
            message.id
        );
        let rank = self.model.next_rank;
        self.model.next_rank += 1;
        self.model.entities.push(Entity {
            ident,
            agent: info.to.to_ascii_lowercase(),
            order: Some((info.priority, rank)),
            msg: Some(info),
            bad_reason: "",
            mtime_h: self.model.clock_h,
            link: false,
            state: State::Ready {
                name: message.file.clone(),
                deliveries: 0,
            },
        });
    }

    fn send(&mut self, request: SendRequest) {
        let got = self.queue.send(request.clone());
        let what = format!("send({request:?})");
        let (from, to, payload) = (&request.from, &request.to, &request.payload);
        let ty = request.message_type.as_deref().unwrap_or("TASK");
        let priority = request.priority.unwrap_or(5);
        let id = request.id.as_deref();
        if let Some(expected) = self.send_error(&request) {
            return check_err(&what, &got.unwrap_err(), expected, &self.model);
        }
        let message = got.unwrap_or_else(|e| panic!("{what}: {e:?}"));
        let info = MsgInfo {
            from: from.clone(),
            to: to.clone(),
            ty: ty.into(),
            priority,
            payload: compact(payload),
        };
        let Some(id) = id else {
            return self.sent(&message, info);
        };
        assert_eq!(message.id, id, "{what}: id");
        let Some((agent, file)) = self.model.markers.get(id).cloned() else {
            // The first send of this id.
            self.model.markers.insert(
                id.to_string(),
                (to.to_ascii_lowercase(), message.file.clone()),
            );
            return self.sent(&message, info);
        };
        // Sent before: while the message is anywhere in the queue, nothing is
        // written and it is returned, named as first sent; once purged, the
        // message first sent (its marker) is published again, under that
        // name and into that mailbox: the request's fields do not matter.
        let i = self.model.entity(&Ident::Msg(id.to_string()));
        let e = &mut self.model.entities[i];
        assert_eq!(e.agent, agent);
        assert_eq!(
            message.file, file,
            "{what}: file of the message sent before"
        );
        // A purged message whose staging link was left behind (see
        // `Leftover`) may still count as in the queue, depending on how the
        // queue removes such links: the tree says which.
        let ident = e.ident.clone();
        let left_over = self.model.leftovers.iter().any(|l| l.ident == ident);
        let published = self
            .fs
            .status(&format!("{}/{file}", mailbox_dir(&agent)))
            .is_ok();
        let e = &mut self.model.entities[i];
        if e.state == State::Purged && (published || !left_over) {
            e.state = State::Ready {
                name: file,
                deliveries: 0,
            };
        }
        let info = e.msg.as_ref().unwrap();
        assert_eq!(
            (
                &message.from,
                &message.to,
                &message.message_type,
                message.priority,
                &message.payload
            ),
            (&info.from, &info.to, &info.ty, info.priority, &info.payload),
            "{what}: the message sent before"
        );
    }

    fn broadcast(&mut self, from: &str, ty: Option<&str>, payload: &str) {
        let got = self.queue.broadcast(from, ty, payload, None);
        let ty = ty.unwrap_or("ALERT");
        let expected = if !valid_agent(from) {
            Some("InvalidAgentName")
        } else if !valid_token(ty, 32) {
            Some("InvalidType")
        } else if serde_json::from_str::<Value>(payload).is_err() {
            Some("InvalidPayload")
        } else {
            None
        };
        if let Some(expected) = expected {
            check_err("broadcast", &got.unwrap_err(), expected, &self.model);
            return;
        }
        let messages = got.unwrap_or_else(|e| panic!("broadcast: {e:?}"));
        let recipients: Vec<String> = self
            .model
            .agents
            .iter()
            .filter(|a| !a.eq_ignore_ascii_case(from))
            .cloned()
            .collect();
        assert_eq!(messages.len(), recipients.len(), "broadcast copies");
        for (message, to) in messages.iter().zip(recipients) {
            let info = MsgInfo {
                from: from.into(),
                to,
                ty: ty.into(),
                priority: 1,
                payload: compact(payload),
            };
            self.sent(message, info);
        }
    }

    fn receive(&mut self, agent: &str, filter: Option<&str>, limit: Option<u32>) {
        let got = self.queue.receive(agent, filter, limit);
        if let Some(expected) = self.agent_error(agent) {
            return check_err("receive", &got.unwrap_err(), expected, &self.model);
        }
        if !self.exists(agent) {
            return check_err("receive", &got.unwrap_err(), "UnknownAgent", &self.model);
        }
        let got = got.unwrap_or_else(|e| panic!("receive: {e:?}"));
        let (messages, malformed) = self
            .model
            .receive(&agent.to_ascii_lowercase(), filter, limit);
        let what = format!("receive({agent}, {filter:?}, {limit:?})");
        let got_ids: Vec<&str> = got.messages.iter().map(|m| m.id.as_str()).collect();
        let expected_ids: Vec<String> = messages
            .iter()
            .map(|&i| match &self.model.entities[i].ident {
                Ident::Msg(id) => id.clone(),
                Ident::Bad(_) => unreachable!(),
            })
            .collect();
        assert_eq!(got_ids, expected_ids, "{what}: messages in delivery order");
        for (message, &i) in got.messages.iter().zip(&messages) {
            let e = &self.model.entities[i];
            let info = e.msg.as_ref().unwrap();
            let State::Ready { name, .. } = &e.state else {
                unreachable!()
            };
            assert_eq!(
                (
                    &message.file,
                    &message.from,
                    &message.to,
                    &message.message_type,
                    message.priority,
                    &message.payload
                ),
                (
                    name,
                    &info.from,
                    &info.to,
                    &info.ty,
                    info.priority,
                    &info.payload
                ),
                "{what}: message fields"
            );
        }
        let got_bad: Vec<&str> = got.malformed.iter().map(|m| m.file.as_str()).collect();
        assert_eq!(got_bad, malformed, "{what}: malformed files");
        for bad in &got.malformed {
            let reason = self.bad_reason_of(&agent.to_ascii_lowercase(), &bad.file);
            assert!(
                bad.reason.contains(reason),
                "{what}: {} is malformed because {:?}, expected {reason:?}",
                bad.file,
                bad.reason
            );
        }
    }

    fn bad_reason_of(&self, agent: &str, file: &str) -> &'static str {
        self.model
            .entities
            .iter()
            .find(|e| {
                e.agent == agent && matches!(&e.state, State::Ready { name, .. } if name == file)
            })
            .map(|e| e.bad_reason)
            .unwrap_or_else(|| panic!("no file {file} waits for {agent}"))
    }

    fn peek(&mut self, agent: &str) {
        let got = self.queue.peek(agent);
        if let Some(expected) = self.agent_error(agent) {
            return check_err("peek", &got.unwrap_err(), expected, &self.model);
        }
        if !self.exists(agent) {
            return check_err("peek", &got.unwrap_err(), "UnknownAgent", &self.model);
        }
        let expected = self.model.ready_in(&agent.to_ascii_lowercase()).len() as u32;
        assert_eq!(got.unwrap(), expected, "peek({agent})");
    }

    fn archive(&mut self, agent: &str, file: &str) {
        let got = self.queue.archive(agent, file);
        let what = format!("archive({agent}, {file})");
        let expected = if !valid_agent(agent) {
            Some("InvalidAgentName")
        } else if !valid_file(file) {
            Some("InvalidFileName")
        } else if !self.exists(agent) {
            Some("UnknownAgent")
        } else {
            None
        };
        if let Some(expected) = expected {
            return check_err(&what, &got.unwrap_err(), expected, &self.model);
        }
        let owner = agent.to_ascii_lowercase();
        let found = self.model.ready_in(&owner).into_iter().find(
            |&i| matches!(&self.model.entities[i].state, State::Ready { name, .. } if name == file),
        );
        let Some(i) = found else {
            return check_err(&what, &got.unwrap_err(), "NotFound", &self.model);
        };
        if self.model.entities[i].link {
            return check_err(&what, &got.unwrap_err(), "InvalidLayout", &self.model);
        }
        let name = self.model.archive(i, file);
        let got = got.unwrap_or_else(|e| panic!("{what}: {e:?}"));
        assert!(
            name.matches(&got),
            "{what}: archived as {got}, expected {name:?}"
        );
    }

    fn cleanup(&mut self, hours: i64) {
        // Files last changed at or before this hour of the test clock are
        // old enough; the half hour keeps the wall clock's progress out of it.
        let cutoff = self.hours(self.model.clock_h - hours) + HOUR / 2;
        let max_age = SystemTime::now().duration_since(cutoff).unwrap();
        let got = self.queue.cleanup(max_age);
        let mut archived = 0;
        let mut removed = 0;
        for agent in self.model.agents.clone() {
            for i in self.model.ready_in(&agent) {
                let e = &self.model.entities[i];
                if !e.link && e.mtime_h <= self.model.clock_h - hours {
                    let State::Ready { name, .. } = self.model.entities[i].state.clone() else {
                        unreachable!()
                    };
                    self.model.archive(i, &name);
                    archived += 1;
                }
            }
            let prefix = format!("{}/", mailbox_dir(&agent));
            let before = self.model.tmps.len();
            self.model
                .tmps
                .retain(|path, old| !(path.starts_with(&prefix) && *old));
            removed += (before - self.model.tmps.len()) as u32;
        }
        let got = got.unwrap_or_else(|e| panic!("cleanup: {e:?}"));
        assert_eq!(
            (got.archived, got.removed_temporary),
            (archived, removed),
            "cleanup(older than {hours} h)"
        );
    }

    fn claim(&mut self, agent: &str, consumer: &str, limit: u32, long: bool) {
        let lease = if long { LONG_LEASE } else { Duration::ZERO };
        let before = now_ms();
        let got = self.queue.claim(agent, consumer, limit, lease);
        let after = now_ms();
        let what = format!("claim({agent}, {consumer}, {limit}, long lease: {long})");
        let expected = if !valid_agent(agent) {
            Some("InvalidAgentName")
        } else if !valid_agent(consumer) {
            Some("InvalidConsumer")
        } else if !self.exists(agent) {
            Some("UnknownAgent")
        } else {
            None
        };
        if let Some(expected) = expected {
            return check_err(&what, &got.unwrap_err(), expected, &self.model);
        }
        let batch = got.unwrap_or_else(|e| panic!("{what}: {e:?}"));
        let owner = agent.to_ascii_lowercase();
        self.model.recover_mailbox(&owner);
        let mut claimed: Vec<(Ident, String, u32)> = Vec::new();
        let mut dead: Vec<String> = Vec::new();
        // Claims of another writer's names, whose unique stems are learnt
        // from the answer: (place in `claimed`, entity).
        let mut to_learn: Vec<(usize, usize)> = Vec::new();
        if limit > 0 {
            let mut bad = Vec::new();
            let mut keyed = Vec::new();
            for i in self.model.ready_in(&owner) {
                let e = &self.model.entities[i];
                let State::Ready { name, .. } = &e.state else {
                    unreachable!()
                };
                match e.order {
                    None => bad.push((name.clone(), i)),
                    Some((priority, rank)) => keyed.push((priority, rank, name.clone(), i)),
                }
            }
            bad.sort();
            keyed.sort();
            for (name, i) in bad {
                let (stem, deliveries) = split_deliveries(&name);
                let reason = Reason::Malformed(self.model.entities[i].bad_reason);
                self.model.dead_letter(i, &stem, deliveries + 1, reason);
                dead.push(name);
            }
            for (_, _, name, i) in keyed {
                if claimed.len() as u32 >= limit {
                    break;
                }
                let (stem, deliveries) = split_deliveries(&name);
                if self.model.entities[i].msg.is_none() {
                    let reason = Reason::Malformed(self.model.entities[i].bad_reason);
                    self.model.dead_letter(i, &stem, deliveries + 1, reason);
                    dead.push(name);
                    continue;
                }
                if !unique_stem(&stem) {
                    to_learn.push((claimed.len(), i));
                }
                claimed.push((
                    self.model.entities[i].ident.clone(),
                    format!("{stem}.json"),
                    deliveries + 1,
                ));
                self.model.entities[i].state = State::InFlight {
                    stem,
                    consumer: consumer.to_string(),
                    deliveries: deliveries + 1,
                    expired: !long,
                };
            }
        }
        let got_claimed: Vec<(Ident, String, u32)> = batch
            .claimed
            .iter()
            .map(|c| {
                (
                    Ident::Msg(c.message.id.clone()),
                    c.message.file.clone(),
                    c.deliveries,
                )
            })
            .collect();
        for (k, i) in to_learn {
            let Some((_, file, _)) = got_claimed.get(k) else {
                break;
            };
            let State::InFlight { stem, .. } = &mut self.model.entities[i].state else {
                unreachable!()
            };
            let marked = file.strip_suffix(".json").unwrap_or(file);
            assert_eq!(
                marked_stem(marked),
                Some(stem.as_str()),
                "{what}: claimed as {file}"
            );
            *stem = marked.to_string();
            claimed[k].1 = file.clone();
        }
        assert_eq!(got_claimed, claimed, "{what}: claimed");
        let lease_ms = lease.as_millis() as u64;
        for c in &batch.claimed {
            assert!(
                (before + lease_ms..=after + lease_ms).contains(&c.lease_expires_ms),
                "{what}: lease ends at {}, not within [{before}, {after}] + {lease_ms}",
                c.lease_expires_ms
            );
        }
        let got_dead: Vec<&str> = batch
            .dead_lettered
            .iter()
            .map(|m| m.file.as_str())
            .collect();
        assert_eq!(got_dead, dead, "{what}: dead-lettered");
    }

    fn claim_op(&mut self, args: &ClaimArgs, op: ClaimOp) {
        let in_flight = self.in_flight_files(args.suffixed);
        let holder = match args.pick {
            Pick::Primary(n) if !in_flight.is_empty() => {
                match &self.model.entities[in_flight[n % in_flight.len()].2].state {
                    State::InFlight { consumer, .. } => consumer.clone(),
                    _ => unreachable!(),
                }
            }
            _ => "w1".to_string(),
        };
        let (agent, file) = self.resolve(args.pick, in_flight, self.ready_files(), args.agent);
        let consumer = args.consumer.map_or(holder, |k| CONSUMERS[k].to_string());
        let what = format!("{op:?}({agent}, {consumer}, {file})");

        let lease = match op {
            ClaimOp::Extend(true) => LONG_LEASE,
            _ => Duration::ZERO,
        };
        let before = now_ms();
        let got = match op {
            ClaimOp::Ack => self.queue.ack(&agent, &consumer, &file).map(Done::Acked),
            ClaimOp::Release => self
                .queue
                .release(&agent, &consumer, &file)
                .map(Done::Released),
            ClaimOp::GiveBack => self
                .queue
                .give_back(&agent, &consumer, &file)
                .map(Done::GivenBack),
            ClaimOp::Extend(_) => self
                .queue
                .extend(&agent, &consumer, &file, lease)
                .map(Done::Extended),
        };
        let after = now_ms();

        let expected = if !valid_agent(&agent) {
            Some("InvalidAgentName")
        } else if !valid_agent(&consumer) {
            Some("InvalidConsumer")
        } else if !valid_file(&file) {
            Some("InvalidFileName")
        } else if !self.exists(&agent) {
            Some("UnknownAgent")
        } else {
            None
        };
        if let Some(expected) = expected {
            return check_err(&what, &got.unwrap_err(), expected, &self.model);
        }
        let owner = agent.to_ascii_lowercase();
        let (stem, _) = split_deliveries(&file);
        let found = self.model.in_flight_in(&owner).into_iter().find(|&i| {
            matches!(&self.model.entities[i].state,
                State::InFlight { stem: s, consumer: c, .. } if *s == stem && *c == consumer)
        });
        let Some(i) = found else {
            return check_err(&what, &got.unwrap_err(), "NotFound", &self.model);
        };
        let State::InFlight { deliveries, .. } = self.model.entities[i].state.clone() else {
            unreachable!()
        };
        let got = got.unwrap_or_else(|e| panic!("{what}: {e:?}"));
        match (op, got) {
            (ClaimOp::Ack, Done::Acked(name)) => {
                let expected = self.model.archive(i, &settled_name(&stem));
                assert!(
                    expected.matches(&name),
                    "{what}: archived as {name}, expected {expected:?}"
                );
            }
            (ClaimOp::Release, Done::Released(released)) => {
                if deliveries >= MAX_DELIVERIES {
                    let expected = self
                        .model
                        .dead_letter(i, &stem, deliveries, Reason::Released);
                    let Released::DeadLettered(name) = released else {
                        panic!("{what}: {released:?}, expected a dead letter");
                    };
                    assert!(
                        expected.matches(&name),
                        "{what}: dead as {name}, expected {expected:?}"
                    );
                } else {
                    let name = mailbox_name(&stem, deliveries);
                    assert_eq!(released, Released::Returned(name.clone()), "{what}");
                    self.model.entities[i].state = State::Ready { name, deliveries };
                }
            }
            (ClaimOp::GiveBack, Done::GivenBack(name)) => {
                // As if never claimed: the delivery count it had before.
                let deliveries = deliveries - 1;
                assert_eq!(name, mailbox_name(&stem, deliveries), "{what}");
                self.model.entities[i].state = State::Ready { name, deliveries };
            }
            (ClaimOp::Extend(long), Done::Extended(expires)) => {
                let lease_ms = lease.as_millis() as u64;
                assert!(
                    (before + lease_ms..=after + lease_ms).contains(&expires),
                    "{what}: extended to {expires}"
                );
                if let State::InFlight { expired, .. } = &mut self.model.entities[i].state {
                    *expired = !long;
                }
            }
            (op, got) => panic!("{op:?} returned {got:?}"),
        }
    }

    fn recover(&mut self) {
        let got = self.queue.recover();
        let (mut returned, mut dead, mut finished, mut removed) = (0, 0, 0, 0);
        let mut slack = 0;
        for agent in self.model.agents.clone() {
            let (r, d) = self.model.recover_mailbox(&agent);
            returned += r;
            dead += d;
            let prefix = format!("{}/", mailbox_dir(&agent));
            let before = self.model.tmps.len();
            self.model
                .tmps
                .retain(|path, old| !(path.starts_with(&prefix) && *old));
            removed += (before - self.model.tmps.len()) as u32;
            // Stray notes are all older than the grace period: removed.
            let dead_prefix = format!("DEAD/{}/", mailbox_dir(&agent));
            self.model
                .stray_notes
                .retain(|path| !path.starts_with(&dead_prefix));
            // Leftover staging links must not come back; whether their
            // removal counts as a finished move is the queue's business.
            let before = self.model.leftovers.len();
            self.model.leftovers.retain(|l| l.agent != agent);
            slack += (before - self.model.leftovers.len()) as u32;
            finished += self.model.finish_pending(Some(&agent));
        }
        finished += self.model.finish_pending(None);
        let got = got.unwrap_or_else(|e| panic!("recover: {e:?}"));
        assert_eq!(
            (got.returned, got.dead_lettered, got.removed_temporary),
            (returned, dead, removed),
            "recover: returned, dead-lettered, removed temporaries"
        );
        assert!(
            (finished..=finished + slack).contains(&got.finished_moves),
            "recover: finished {} moves, expected {finished} (+ up to {slack})",
            got.finished_moves
        );
    }

    /// Expected dead letters: `(agent, file, reason, deliveries)`.
    fn expected_dead(&self, agent: Option<&str>) -> Vec<(String, String, Reason, u32, usize)> {
        let agents: Vec<String> = match agent {
            Some(agent) => vec![agent.to_ascii_lowercase()],
            None => self.model.agents.iter().cloned().collect(),
        };
        let mut letters = Vec::new();
        for agent in agents {
            for (name, i) in self.model.dead_visible(&agent) {
                let State::Dead {
                    deliveries,
                    reason,
                    pending,
                    ..
                } = &self.model.entities[i].state
                else {
                    unreachable!()
                };
                // A linked move not yet finished has its note in `.incoming/`.
                let (reason, deliveries) = if pending.is_some() {
                    (Reason::Malformed("no reason was recorded"), 0)
                } else {
                    (reason.clone(), *deliveries)
                };
                letters.push((agent.clone(), name, reason, deliveries, i));
            }
        }
        letters
    }

    fn check_letter(
        &self,
        what: &str,
        letter: &crate::DeadLetter,
        reason: &Reason,
        deliveries: u32,
    ) {
        let ok = match reason {
            Reason::Released => letter.reason.starts_with(&format!(
                "released after {deliveries} deliveries (the limit is {MAX_DELIVERIES})"
            )),
            Reason::NotAcked => letter
                .reason
                .starts_with(&format!("not acknowledged after {deliveries} deliveries")),
            Reason::Malformed(text) => letter.reason.contains(text),
        };
        assert!(ok, "{what}: {letter:?}, expected {reason:?}");
        assert_eq!(
            letter.deliveries, deliveries,
            "{what}: {letter:?} deliveries"
        );
    }

    fn dead_list(&mut self, agent: Option<&str>) {
        let got = self.queue.dead_letters(agent);
        let what = format!("dead_letters({agent:?})");
        if agent.is_some_and(|a| !valid_agent(a)) {
            return check_err(&what, &got.unwrap_err(), "InvalidAgentName", &self.model);
        }
        let got = got.unwrap_or_else(|e| panic!("{what}: {e:?}"));
        let expected = self.expected_dead(agent);
        let got_names: Vec<(&str, &str)> = got
            .iter()
            .map(|l| (l.agent.as_str(), l.file.as_str()))
            .collect();
        let expected_names: Vec<(&str, &str)> = expected
            .iter()
            .map(|(a, f, ..)| (a.as_str(), f.as_str()))
            .collect();
        assert_eq!(got_names, expected_names, "{what}");
        for (letter, (_, _, reason, deliveries, _)) in got.iter().zip(&expected) {
            self.check_letter(&what, letter, reason, *deliveries);
        }
        // Read a page at a time, small pages and few names kept ahead, the
        // same letters come out.
        let agents = match agent {
            Some(agent) => vec![agent.to_ascii_lowercase()],
            None => self.queue.agents().unwrap(),
        };
        let mut paged = Vec::new();
        let mut cache = DeadLetterCache::with_ahead(1);
        for agent in &agents {
            let mut after: Option<String> = None;
            loop {
                let page = self
                    .queue
                    .dead_letter_page(agent, 2, after.as_deref(), &mut cache)
                    .unwrap_or_else(|e| panic!("dead_letter_page({agent}): {e:?}"));
                paged.extend(page.letters);
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
        assert_eq!(paged, got, "{what} a page at a time");
    }

    /// A dead letter leaves `DEAD/` by retry or purge: a linked move not
    /// yet finished leaves its staging link behind.
    fn leave_dead(&mut self, i: usize) {
        if let State::Dead {
            pending: Some(Pending::Linked(staging)),
            ..
        } = &self.model.entities[i].state
        {
            self.model.leftovers.push(Leftover {
                ident: self.model.entities[i].ident.clone(),
                agent: self.model.entities[i].agent.clone(),
                staging: staging.clone(),
            });
        }
    }

    /// Retry and purge first finish the interrupted moves into the agent's
    /// dead letters, as recover does, so none can outlive the letter it moved.
    fn finish_dead_moves(&mut self, agent: &str) {
        let dead_prefix = format!("DEAD/{}/", mailbox_dir(agent));
        self.model
            .stray_notes
            .retain(|path| !path.starts_with(&dead_prefix));
        self.model.leftovers.retain(|l| l.agent != agent);
        self.model.finish_pending(Some(agent));
    }

    fn retry(&mut self, agent: &str, file: &str) {
        let got = self.queue.retry_dead_letter(agent, file);
        let what = format!("retry_dead_letter({agent}, {file})");
        let expected = if !valid_agent(agent) {
            Some("InvalidAgentName")
        } else if !valid_file(file) {
            Some("InvalidFileName")
        } else if !self.exists(agent) {
            Some("UnknownAgent")
        } else {
            None
        };
        if let Some(expected) = expected {
            return check_err(&what, &got.unwrap_err(), expected, &self.model);
        }
        let owner = agent.to_ascii_lowercase();
        self.finish_dead_moves(&owner);
        let found = self
            .model
            .dead_visible(&owner)
            .into_iter()
            .find(|(name, _)| name == file);
        let Some((_, i)) = found else {
            return check_err(&what, &got.unwrap_err(), "NotFound", &self.model);
        };
        let got = got.unwrap_or_else(|e| panic!("{what}: {e:?}"));
        let (stem, _) = split_deliveries(file);
        let target = format!("{stem}.json");
        let taken = self.model.ready_in(&owner).into_iter().any(|j| {
            matches!(&self.model.entities[j].state, State::Ready { name, .. } if *name == target)
        });
        let expected = Name::settle(&target, taken);
        assert!(
            expected.matches(&got),
            "{what}: returned as {got}, expected {expected:?}"
        );
        self.leave_dead(i);
        self.model.entities[i].state = State::Ready {
            name: got,
            deliveries: 0,
        };
    }

    fn purge(&mut self, agent: Option<&str>, file: Option<&str>) {
        let got = self.queue.purge_dead_letters(agent, file);
        let what = format!("purge_dead_letters({agent:?}, {file:?})");
        if file.is_some_and(|f| !valid_file(f)) {
            return check_err(&what, &got.unwrap_err(), "InvalidFileName", &self.model);
        }
        if agent.is_some_and(|a| !valid_agent(a)) {
            return check_err(&what, &got.unwrap_err(), "InvalidAgentName", &self.model);
        }
        let scope: Vec<String> = match agent {
            Some(a) => vec![a.to_ascii_lowercase()],
            None => self.model.agents.iter().cloned().collect(),
        };
        for a in &scope {
            self.finish_dead_moves(a);
        }
        let expected: Vec<_> = self
            .expected_dead(agent)
            .into_iter()
            .filter(|(_, name, ..)| file.is_none_or(|f| f == name))
            .collect();
        if file.is_some() && expected.is_empty() {
            return check_err(&what, &got.unwrap_err(), "NotFound", &self.model);
        }
        let got = got.unwrap_or_else(|e| panic!("{what}: {e:?}"));
        let got_names: Vec<(&str, &str)> = got
            .iter()
            .map(|l| (l.agent.as_str(), l.file.as_str()))
            .collect();
        let expected_names: Vec<(&str, &str)> = expected
            .iter()
            .map(|(a, f, ..)| (a.as_str(), f.as_str()))
            .collect();
        assert_eq!(got_names, expected_names, "{what}");
        for (letter, (_, _, reason, deliveries, i)) in got.iter().zip(&expected) {
            self.check_letter(&what, letter, reason, *deliveries);
            self.leave_dead(*i);
            self.model.entities[*i].state = State::Purged;
        }
    }

    fn plant_bad(&mut self, agent: &str, content: u8, name_kind: u8, priority: u8) {
        let n = self.model.next_n;
        self.model.next_n += 1;
        let (bytes, reason) = match content {
            0 => (format!("not json {n}"), "not JSON"),
            1 => (format!("[{n}]"), "not a JSON object but an array"),
            2 => (
                format!("{{\"id\": \"bad{n}\"}}"),
                "field \"from\" is missing",
            ),
            _ => (
                format!(
                    r#"{{"id":"bad{n}","from":"x","to":"y","type":"T","priority":5,"timestamp":"yesterday","payload":{n}}}"#
                ),
                "field \"timestamp\" is \"yesterday\"",
            ),
        };
        let (name, order) = match name_kind {
            0 => (format!("bad{n}.json"), None),
            1 => ("bad.json".to_string(), None),
            _ => (
                format!("{priority}_20000101_000000.{n:09}Z_x_TASK_bad{n}.json"),
                Some((priority, MILLENNIUM * 1_000_000_000 + u64::from(n))),
            ),
        };
        let path = format!("{}/{name}", mailbox_dir(agent));
        let result = self.fs.write_new(&path, bytes.as_bytes(), false);
        let owner = agent.to_ascii_lowercase();
        let taken = self.model.ready_in(&owner).into_iter().any(
            |i| matches!(&self.model.entities[i].state, State::Ready { name: m, .. } if *m == name),
        );
        if !self.exists(agent) || taken {
            assert!(result.is_err(), "planting {path}");
            return;
        }
        result.unwrap();
        self.model.bad_bytes.insert(bytes.into_bytes(), n);
        self.model.entities.push(Entity {
            ident: Ident::Bad(n),
            agent: owner,
            order,
            msg: None,
            bad_reason: reason,
            mtime_h: self.model.clock_h,
            link: false,
            state: State::Ready {
                name,
                deliveries: 0,
            },
        });
    }

    fn plant_python(&mut self, agent: &str, priority: u8, second: u8, report: bool, naming: u8) {
        let ty = match (report, naming) {
            (false, 2) => "TASK~1",
            (true, 2) => "REPORT~4",
            (false, _) => "TASK",
            (true, _) => "REPORT",
        };
        let name = match naming {
            0 => format!(
                "{priority}_20000101_00000{second}_py_{ty}_{}.json",
                self.model.next_n
            ),
            _ => format!("{priority}_20000101_00000{second}_py_{ty}.json"),
        };
        // The Python writer would replace a waiting file of that name (its
        // own flaw); one claimed under it is no longer in the way.
        let owner = agent.to_ascii_lowercase();
        let waiting = self.model.ready_in(&owner).into_iter().any(
            |i| matches!(&self.model.entities[i].state, State::Ready { name: n, .. } if *n == name),
        );
        if waiting {
            return;
        }
        let n = self.model.next_n;
        self.model.next_n += 1;
        let id = format!("py{n}");
        let text = format!(
            r#"{{
  "id": "{id}",
  "from": "py",
  "to": "{agent}",
  "type": "{ty}",
  "priority": {priority},
  "timestamp": "2000-01-01T00:00:0{second}Z",
  "payload": {{"n": {n}}}
}}"#
        );
        let path = format!("{}/{name}", mailbox_dir(agent));
        let result = self.fs.write_new(&path, text.as_bytes(), false);
        if !self.exists(agent) {
            assert!(result.is_err(), "planting {path}");
            return;
        }
        result.unwrap();
        self.model.entities.push(Entity {
            ident: Ident::Msg(id),
            agent: agent.to_ascii_lowercase(),
            order: Some((priority, (MILLENNIUM + u64::from(second)) * 1_000_000_000)),
            msg: Some(MsgInfo {
                from: "py".into(),
                to: agent.into(),
                ty: ty.into(),
                priority,
                payload: format!("{{\"n\":{n}}}"),
            }),
            bad_reason: "",
            mtime_h: self.model.clock_h,
            link: false,
            state: State::Ready {
                name,
                deliveries: 0,
            },
        });
    }

    fn plant_link(&mut self, agent: &str) {
        let n = self.model.next_n;
        self.model.next_n += 1;
        let target = format!("../../outside{n}.json");
        let name = format!("link{n}.json");
        let result = self
            .fs
            .symlink(&target, &format!("{}/{name}", mailbox_dir(agent)));
        if !self.exists(agent) {
            assert!(result.is_err());
            return;
        }
        result.unwrap();
        self.model.bad_bytes.insert(target.into_bytes(), n);
        self.model.entities.push(Entity {
            ident: Ident::Bad(n),
            agent: agent.to_ascii_lowercase(),
            order: None,
            msg: None,
            bad_reason: "is a symbolic link, not a regular file",
            mtime_h: self.model.clock_h,
            link: true,
            state: State::Ready {
                name,
                deliveries: 0,
            },
        });
    }

    fn plant_tmp(&mut self, agent: &str, old: bool) {
        let n = self.model.next_n;
        self.model.next_n += 1;
        let path = format!("{}/junk{n}.tmp", mailbox_dir(agent));
        // The file-system clock is far behind the wall clock: a young
        // temporary file is dated by the wall clock.
        let modified = if old {
            self.fs.now()
        } else {
            SystemTime::now()
        };
        let result = self.fs.write_at(&path, b"partial", modified);
        if self.exists(agent) {
            result.unwrap();
            self.model.tmps.insert(path, old);
        } else {
            assert!(result.is_err());
        }
    }

    /// A move into `ARCHIVE/` stopped after its commit rename (and the link).
    fn crash_archive(&mut self, pick: usize, linked: bool) {
        // The queue never moves a symbolic link into the archive.
        let mut candidates = self.ready_files();
        candidates.retain(|(_, _, i)| !self.model.entities[*i].link);
        if candidates.is_empty() {
            return;
        }
        let (agent, name, i) = candidates[pick % candidates.len()].clone();
        let n = self.model.next_n;
        self.model.next_n += 1;
        let staging = format!("{name}~crash{n}");
        let _ = self.fs.create_dir("ARCHIVE/.incoming");
        let incoming = format!("ARCHIVE/.incoming/{staging}");
        self.fs
            .rename(&format!("{}/{name}", mailbox_dir(&agent)), &incoming)
            .unwrap();
        let linked = linked && !self.model.archive_taken(&name);
        if linked {
            self.fs.link(&incoming, &format!("ARCHIVE/{name}")).unwrap();
        }
        self.model.entities[i].state = State::Archived {
            name: Name::Exact(name),
            pending: Some(if linked {
                Pending::Linked(staging)
            } else {
                Pending::Staged(staging)
            }),
        };
    }

    /// A move of a claimed message into `DEAD/` stopped after writing its
    /// note (stage 0), after its commit rename (1), or after its link (2).
    fn crash_dead(&mut self, pick: usize, stage: u8) {
        let candidates = self.in_flight_files(false);
        if candidates.is_empty() {
            return;
        }
        let (agent, _, i) = candidates[pick % candidates.len()].clone();
        let State::InFlight {
            stem, deliveries, ..
        } = self.model.entities[i].state.clone()
        else {
            unreachable!()
        };
        let mailbox = mailbox_dir(&agent);
        let n = self.model.next_n;
        self.model.next_n += 1;
        let target = settled_name(&stem);
        let staging = format!("{target}~crash{n}");
        let dir = format!("DEAD/{mailbox}");
        let _ = self.fs.create_dir("DEAD");
        let _ = self.fs.create_dir(&dir);
        let _ = self.fs.create_dir(&format!("{dir}/.incoming"));
        let incoming = format!("{dir}/.incoming/{staging}");
        let note = serde_json::json!({
            "reason": format!("not acknowledged after {deliveries} deliveries (crashed)"),
            "deliveries": deliveries,
            "dead_at_ms": 0,
        })
        .to_string();
        self.fs
            .write_new(&format!("{incoming}.reason"), note.as_bytes(), false)
            .unwrap();
        if stage == 0 {
            self.model.stray_notes.insert(format!("{incoming}.reason"));
            return;
        }
        let claim_file = self
            .fs
            .list(&format!("{mailbox}/.inflight"))
            .unwrap()
            .into_iter()
            .find(|e| crate::claims::ClaimName::parse(&e.name).is_some_and(|c| c.stem == stem))
            .expect("the claim file")
            .name;
        self.fs
            .rename(&format!("{mailbox}/.inflight/{claim_file}"), &incoming)
            .unwrap();
        let linked = stage == 2 && !self.model.dead_taken(&agent, &target);
        if linked {
            self.fs.link(&incoming, &format!("{dir}/{target}")).unwrap();
        }
        self.model.entities[i].state = State::Dead {
            name: Name::Exact(target),
            deliveries,
            reason: Reason::NotAcked,
            pending: Some(if linked {
                Pending::Linked(staging)
            } else {
                Pending::Staged(staging)
            }),
        };
    }

    // ------------------------------------------------------------ checks

    fn check_everything(&mut self) {
        self.check_files();
        for agent in self.model.agents.clone() {
            self.receive(&agent, None, None);
            self.peek(&agent);
        }
        self.check_stats();
    }

    fn check_stats(&self) {
        let got = self
            .queue
            .stats()
            .unwrap_or_else(|e| panic!("stats: {e:?}"));
        let m = &self.model;
        let expected: Vec<(String, u32, u32, u32, u32, bool)> = m
            .agents
            .iter()
            .map(|agent| {
                let mine = || m.entities.iter().filter(move |e| &e.agent == agent);
                let ready = mine()
                    .filter(|e| matches!(e.state, State::Ready { .. }))
                    .count() as u32;
                let in_flight = mine()
                    .filter(|e| matches!(e.state, State::InFlight { .. }))
                    .count() as u32;
                let dead = m.dead_visible(agent).len() as u32;
                // Counted by the `to` field of each archived message.
                let archived = m
                    .entities
                    .iter()
                    .filter(|e| {
                        e.msg
                            .as_ref()
                            .is_some_and(|info| info.to.eq_ignore_ascii_case(agent))
                            && matches!(&e.state, State::Archived { pending, .. }
                                if !matches!(pending, Some(Pending::Staged(_))))
                    })
                    .count() as u32;
                let oldest =
                    mine().any(|e| e.order.is_some() && matches!(e.state, State::Ready { .. }));
                (agent.clone(), ready, in_flight, dead, archived, oldest)
            })
            .collect();
        let got: Vec<(String, u32, u32, u32, u32, bool)> = got
            .into_iter()
            .map(|s| {
                (
                    s.agent,
                    s.ready,
                    s.in_flight,
                    s.dead,
                    s.archived,
                    s.oldest_ready_age_ms.is_some(),
                )
            })
            .collect();
        assert_eq!(
            got, expected,
            "stats: (agent, ready, in flight, dead, archived, has oldest)"
        );
    }

    fn identify(&self, path: &str, bytes: &[u8]) -> Ident {
        if let Some(&n) = self.model.bad_bytes.get(bytes) {
            return Ident::Bad(n);
        }
        let name = path.rsplit('/').next().unwrap();
        match crate::message::parse(name, bytes.to_vec()) {
            Ok((message, _)) => Ident::Msg(message.id),
            Err(e) => panic!("{path} is neither a message nor a planted file: {e}"),
        }
    }

    /// Reads every file in the tree and checks it against the model: each
    /// message and planted file exactly where the model says, each note and
    /// temporary file expected, nothing else.
    fn check_files(&mut self) {
        let mut found: BTreeMap<Ident, Vec<(Loc, u64)>> = BTreeMap::new();
        let mut notes = BTreeSet::new();
        let mut tmps = BTreeSet::new();
        let mut markers: BTreeMap<Ident, u64> = BTreeMap::new();
        let mut expiries: BTreeMap<Ident, u64> = BTreeMap::new();
        let agent_of = |mailbox: &str| {
            mailbox
                .strip_prefix("To_")
                .unwrap_or_else(|| panic!("{mailbox} is not a mailbox"))
                .to_ascii_lowercase()
        };
        for file in self.fs.files() {
            let path = file.path.as_str();
            let parts: Vec<&str> = path.split('/').collect();
            if path.ends_with(".reason") && parts[0] == "DEAD" {
                notes.insert(file.path.clone());
                continue;
            }
            if let [".fmes", "ids", id] = parts.as_slice() {
                // The message itself, with the name it was first sent as.
                let (_, name) = self
                    .model
                    .markers
                    .get(*id)
                    .unwrap_or_else(|| panic!("unexpected marker {path}"));
                let (message, _) = crate::message::parse(id, file.bytes.clone())
                    .unwrap_or_else(|e| panic!("marker {path}: {e}"));
                let recorded: Value = serde_json::from_str(&message.raw).unwrap();
                assert_eq!(
                    (message.id.as_str(), recorded["fmes_file"].as_str()),
                    (*id, Some(name.as_str())),
                    "marker {path}"
                );
                markers.insert(Ident::Msg(id.to_string()), file.ino);
                continue;
            }
            if path.ends_with(".tmp") && parts.len() == 2 {
                tmps.insert(file.path.clone());
                continue;
            }
            let ident = self.identify(path, &file.bytes);
            let loc = match parts.as_slice() {
                [mailbox, name] if mailbox.starts_with("To_") && name.ends_with(".json") => {
                    Loc::Ready {
                        agent: agent_of(mailbox),
                        name: name.to_string(),
                    }
                }
                [mailbox, ".inflight", name] => {
                    let claim = crate::claims::ClaimName::parse(name)
                        .unwrap_or_else(|| panic!("{path} is not a claim name"));
                    expiries.insert(ident.clone(), claim.expires_ms);
                    Loc::InFlight {
                        agent: agent_of(mailbox),
                        stem: claim.stem,
                        consumer: claim.consumer,
                        deliveries: claim.deliveries,
                    }
                }
                ["ARCHIVE", name] => Loc::Archived {
                    name: name.to_string(),
                },
                ["ARCHIVE", ".incoming", staging] => Loc::ArchiveStaging {
                    staging: staging.to_string(),
                },
                ["DEAD", mailbox, name] => Loc::Dead {
                    agent: agent_of(mailbox),
                    name: name.to_string(),
                },
                ["DEAD", mailbox, ".incoming", staging] => Loc::DeadStaging {
                    agent: agent_of(mailbox),
                    staging: staging.to_string(),
                },
                _ => panic!("unexpected file {path}"),
            };
            found.entry(ident).or_default().push((loc, file.ino));
        }

        // Learn the names chosen at random (a target was taken).
        for e in &mut self.model.entities {
            let (State::Archived { name, .. } | State::Dead { name, .. }) = &mut e.state else {
                continue;
            };
            if let Name::Suffixed(_) = name {
                let actual =
                    found
                        .get(&e.ident)
                        .into_iter()
                        .flatten()
                        .find_map(|(loc, _)| match loc {
                            Loc::Archived { name: n } | Loc::Dead { name: n, .. }
                                if name.matches(n) =>
                            {
                                Some(n.clone())
                            }
                            _ => None,
                        });
                let actual = actual.unwrap_or_else(|| {
                    panic!(
                        "{:?}: no file named like {name:?} in {:?}",
                        e.ident,
                        found.get(&e.ident)
                    )
                });
                *name = Name::Exact(actual);
            }
        }

        let mut expected: BTreeMap<Ident, Vec<Loc>> = BTreeMap::new();
        let mut expected_notes: BTreeSet<String> = self.model.stray_notes.clone();
        for e in &self.model.entities {
            let mailbox = mailbox_dir(&e.agent);
            let agent = e.agent.clone();
            let locs = match &e.state {
                State::Ready { name, .. } => vec![Loc::Ready {
                    agent,
                    name: name.clone(),
                }],
                State::InFlight {
                    stem,
                    consumer,
                    deliveries,
                    expired,
                } => {
                    if let Some(&expires) = expiries.get(&e.ident) {
                        let now = now_ms();
                        assert_eq!(
                            expires <= now,
                            *expired,
                            "{:?}: lease ends at {expires}, now is {now}",
                            e.ident
                        );
                    }
                    vec![Loc::InFlight {
                        agent,
                        stem: stem.clone(),
                        consumer: consumer.clone(),
                        deliveries: *deliveries,
                    }]
                }
                State::Archived { name, pending } => {
                    let name = name.exact().to_string();
                    match pending {
                        None => vec![Loc::Archived { name }],
                        Some(Pending::Staged(s)) => {
                            vec![Loc::ArchiveStaging { staging: s.clone() }]
                        }
                        Some(Pending::Linked(s)) => vec![
                            Loc::Archived { name },
                            Loc::ArchiveStaging { staging: s.clone() },
                        ],
                    }
                }
                State::Dead { name, pending, .. } => {
                    let name = name.exact().to_string();
                    match pending {
                        None => {
                            expected_notes.insert(format!("DEAD/{mailbox}/{name}.reason"));
                            vec![Loc::Dead { agent, name }]
                        }
                        Some(Pending::Staged(s)) => {
                            expected_notes.insert(format!("DEAD/{mailbox}/.incoming/{s}.reason"));
                            vec![Loc::DeadStaging {
                                agent,
                                staging: s.clone(),
                            }]
                        }
                        Some(Pending::Linked(s)) => {
                            expected_notes.insert(format!("DEAD/{mailbox}/.incoming/{s}.reason"));
                            vec![
                                Loc::Dead {
                                    agent: agent.clone(),
                                    name,
                                },
                                Loc::DeadStaging {
                                    agent,
                                    staging: s.clone(),
                                },
                            ]
                        }
                    }
                }
                State::Purged => vec![],
            };
            if !locs.is_empty() {
                expected.insert(e.ident.clone(), locs);
            }
        }
        for l in &self.model.leftovers {
            expected_notes.insert(format!(
                "DEAD/{}/.incoming/{}.reason",
                mailbox_dir(&l.agent),
                l.staging
            ));
            expected
                .entry(l.ident.clone())
                .or_default()
                .push(Loc::DeadStaging {
                    agent: l.agent.clone(),
                    staging: l.staging.clone(),
                });
        }

        let mut actual: BTreeMap<Ident, Vec<Loc>> = BTreeMap::new();
        for (ident, locs) in &found {
            // Two names of one message are one message only while a move
            // is unfinished (a staging link beside its final name).
            let inodes: BTreeSet<u64> = locs.iter().map(|(_, ino)| *ino).collect();
            assert_eq!(
                inodes.len(),
                1,
                "{ident:?} is in {} separate files: {locs:?}",
                inodes.len()
            );
            let mut locs: Vec<Loc> = locs.iter().map(|(loc, _)| loc.clone()).collect();
            locs.sort();
            actual.insert(ident.clone(), locs);
        }
        for locs in expected.values_mut() {
            locs.sort();
        }
        if actual != expected {
            let idents: BTreeSet<&Ident> = actual.keys().chain(expected.keys()).collect();
            let diff: Vec<String> = idents
                .into_iter()
                .filter(|i| actual.get(i) != expected.get(i))
                .map(|i| {
                    format!(
                        "{i:?}: found in {:?}, the model says {:?}",
                        actual.get(i),
                        expected.get(i)
                    )
                })
                .collect();
            panic!("files and model differ:\n  {}", diff.join("\n  "));
        }
        assert_eq!(notes, expected_notes, "dead-letter notes");
        let expected_tmps: BTreeSet<String> = self.model.tmps.keys().cloned().collect();
        assert_eq!(tmps, expected_tmps, "temporary files");
        let expected_markers: BTreeSet<Ident> = self
            .model
            .markers
            .keys()
            .map(|id| Ident::Msg(id.clone()))
            .collect();
        assert_eq!(
            markers.keys().cloned().collect::<BTreeSet<_>>(),
            expected_markers,
            "id markers"
        );
        // A marker is a name of its message, wherever the message is.
        for (ident, ino) in &markers {
            if let Some(locs) = found.get(ident) {
                assert!(
                    locs.iter().all(|(_, i)| i == ino),
                    "{ident:?}: the marker is not the message"
                );
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum ClaimOp {
    Ack,
    Release,
    GiveBack,
    Extend(bool),
}

#[derive(Debug)]
enum Done {
    Acked(String),
    Released(Released),
    GivenBack(String),
    Extended(u64),
}

fn run(ops: &[Op]) {
    let mut harness = Harness::new();
    harness.check_everything();
    for op in ops {
        harness.step(op);
    }
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(64);
    ProptestConfig {
        cases,
        // No regression files are written into the source tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_queue_behaves_like_the_model(ops in prop::collection::vec(op(false), 1..40)) {
        run(&ops);
    }

    #[test]
    fn interrupted_moves_are_completed_like_the_model(
        ops in prop::collection::vec(op(true), 1..40)
    ) {
        run(&ops);
    }
}

// ------------------------------------------------- directed sequences

fn send_to(to: usize, id: Option<usize>) -> Op {
    Op::Send {
        from: 0,
        to,
        ty: 0,
        priority: None,
        payload: 0,
        small_limit: false,
        id,
    }
}

fn claim_in(agent: usize, limit: u32, long: bool) -> Op {
    Op::Claim {
        agent: Target::Name(agent),
        consumer: 0,
        limit,
        long,
    }
}

/// The first claimed message, by its holder.
fn held() -> ClaimArgs {
    ClaimArgs {
        pick: Pick::Primary(0),
        consumer: None,
        agent: None,
        suffixed: false,
    }
}

/// A message released and re-claimed up to the limit is dead-lettered; a
/// retry resets its count; expired leases redeliver it and, at the limit,
/// dead-letter it too; a purge removes it.
#[test]
fn dead_letters_by_release_and_by_expiry() {
    run(&[
        send_to(1, None),
        claim_in(1, 1, true),
        Op::Release(held()),
        claim_in(1, 1, true),
        Op::Release(held()),
        Op::DeadList { agent: None },
        Op::Retry {
            pick: Pick::Primary(0),
            agent: None,
        },
        claim_in(1, 1, false),
        claim_in(1, 1, false),
        Op::Recover,
        Op::DeadList { agent: Some(1) },
        Op::Purge {
            agent: Some(1),
            pick: Some(Pick::Primary(0)),
        },
        send_to(1, None),
        claim_in(1, 2, false),
        Op::Extend(held(), true),
        Op::Recover,
        Op::Ack(held()),
    ]);
}

/// Malformed files are reported by receive, moved to the dead letters by a
/// claim (names that collide get a suffix), and can be retried and purged.
#[test]
fn malformed_files_are_reported_and_dead_lettered() {
    let mut ops = vec![send_to(1, None)];
    for (content, name) in [(0, 0), (1, 1), (2, 2), (3, 0)] {
        ops.push(Op::PlantBad {
            agent: 1,
            content,
            name,
            priority: 5,
        });
    }
    ops.extend([
        Op::Receive {
            agent: Target::Name(1),
            filter: 0,
            limit: Some(1),
        },
        claim_in(1, 3, true),
        Op::PlantBad {
            agent: 1,
            content: 0,
            name: 1,
            priority: 5,
        },
        claim_in(1, 1, true),
        Op::DeadList { agent: None },
        Op::Retry {
            pick: Pick::Primary(0),
            agent: None,
        },
        Op::Archive {
            pick: Pick::Primary(0),
            agent: None,
        },
        Op::PlantTmp {
            agent: 1,
            old: true,
        },
        Op::PlantTmp {
            agent: 1,
            old: false,
        },
        Op::Advance { hours: 2 },
        send_to(1, None),
        Op::Cleanup { hours: 1 },
        Op::Purge {
            agent: None,
            pick: None,
        },
    ]);
    run(&ops);
}

/// Moves into `ARCHIVE/` and `DEAD/` stopped at each step are completed by
/// `recover`, around names taken in the meantime.
#[test]
fn interrupted_moves_are_completed() {
    run(&[
        send_to(1, None),
        send_to(1, None),
        send_to(2, None),
        Op::CrashArchive {
            pick: 0,
            linked: false,
        },
        Op::CrashArchive {
            pick: 0,
            linked: true,
        },
        claim_in(2, 1, true),
        Op::CrashDead { pick: 0, stage: 2 },
        send_to(2, None),
        claim_in(2, 1, true),
        Op::CrashDead { pick: 0, stage: 1 },
        send_to(2, None),
        claim_in(2, 1, true),
        Op::CrashDead { pick: 0, stage: 0 },
        Op::DeadList { agent: None },
        Op::Recover,
        Op::DeadList { agent: None },
    ]);
}

/// A send with a caller-given id happens once: sending it again returns the
/// message wherever it is, until it is purged.
#[test]
fn idempotent_sends() {
    run(&[
        send_to(1, Some(0)),
        send_to(1, Some(0)),
        claim_in(1, 1, true),
        send_to(2, Some(0)),
        Op::Release(held()),
        send_to(1, Some(0)),
        claim_in(1, 1, true),
        Op::Release(held()),
        send_to(1, Some(0)),
        Op::DeadList { agent: None },
        Op::Purge {
            agent: None,
            pick: None,
        },
        send_to(1, Some(0)),
        Op::Ack(held()),
        send_to(1, Some(1)),
        Op::Archive {
            pick: Pick::Primary(0),
            agent: None,
        },
        send_to(1, Some(1)),
    ]);
}

/// Found by this test in the first idempotent send, which wrote the message
/// again when the first copy was archived after a redelivery
/// (`ARCHIVE/{stem}~1.json`), since it searched for `{stem}.json`.
#[test]
fn resending_an_id_archived_after_a_redelivery_writes_nothing() {
    run(&[
        send_to(1, Some(0)),
        claim_in(1, 1, true),
        Op::Release(held()),
        Op::Archive {
            pick: Pick::Primary(0),
            agent: None,
        },
        send_to(1, Some(0)),
    ]);
}

// A known bug, reported, not fixed here: these two fail until the queue is.

/// BUG: a dead letter whose move stopped after its link (staging file still
/// in `DEAD/{mailbox}/.incoming/`) and was then retried is dead-lettered
/// again by `recover`, which re-links the staging file: the message is then
/// both waiting and dead.
#[test]
fn recover_does_not_bring_back_a_retried_dead_letter() {
    run(&[
        send_to(1, None),
        claim_in(1, 1, true),
        Op::CrashDead { pick: 0, stage: 2 },
        Op::Retry {
            pick: Pick::Primary(0),
            agent: None,
        },
        Op::Recover,
    ]);
}

/// BUG: the same with a purge: `recover` brings the purged dead letter back.
#[test]
fn recover_does_not_bring_back_a_purged_dead_letter() {
    run(&[
        send_to(1, None),
        claim_in(1, 1, true),
        Op::CrashDead { pick: 0, stage: 2 },
        Op::Purge {
            agent: None,
            pick: None,
        },
        Op::Recover,
    ]);
}

/// Found by this test in the first idempotent send, which wrote the message
/// again while the first copy's move into `ARCHIVE/` was interrupted (it was
/// in `ARCHIVE/.incoming/`, where the search did not look).
#[test]
fn resending_an_id_whose_move_was_interrupted_writes_nothing() {
    run(&[
        send_to(1, Some(0)),
        Op::CrashArchive {
            pick: 0,
            linked: false,
        },
        send_to(1, Some(0)),
    ]);
}
