//! Delivery guarantees of claims, across processes: under load every sent
//! message is acknowledged exactly once; with producers and consumers killed
//! (SIGKILL) at random moments, every message whose send returned is in
//! exactly one place, whole; and a consumer whose lease ran out cannot
//! acknowledge what another consumer has claimed since.
//!
//! The tests start their producers and consumers by running this test binary
//! again with `--exact <test>` and the `FMES_TEST_GUARANTEES_*` variables set,
//! as `burst.rs` does. Each child appends the ids it handled to its own
//! ledger file, one line per id, written after the operation returned.
//!
//! The crash tests print their seed; `FMES_TEST_SEED=<seed>` repeats the
//! same random choices (the kill moments still depend on the machine).

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fmes::{Comm, Error, Options, QueueError, Released, SendRequest};

use crate::support::*;

/// What a child process does: `produce`, `consume` (stress) or `chaos` (crash).
const ENV_ROLE: &str = "FMES_TEST_GUARANTEES_ROLE";
const ENV_COMM: &str = "FMES_TEST_GUARANTEES_COMM";
/// The child's ledger file; `{ledger}.started` is created once it is running.
const ENV_LEDGER: &str = "FMES_TEST_GUARANTEES_LEDGER";
/// The producer's or consumer's name (a consumer name for claims).
const ENV_NAME: &str = "FMES_TEST_GUARANTEES_NAME";
const ENV_SEED: &str = "FMES_TEST_GUARANTEES_SEED";
const ENV_DURABLE: &str = "FMES_TEST_GUARANTEES_DURABLE";
/// Messages a producer sends.
const ENV_COUNT: &str = "FMES_TEST_GUARANTEES_COUNT";
/// Producers pause up to this many milliseconds after each send.
const ENV_PAUSE_MS: &str = "FMES_TEST_GUARANTEES_PAUSE_MS";
/// Stress consumers: the file whose existence says every producer is done.
const ENV_DONE: &str = "FMES_TEST_GUARANTEES_DONE";

const SENDER: &str = "prod";
const AGENT: &str = "work";
const MAILBOX: &str = "To_Work";

/// A child that is still running after this stops on its own (a parent that
/// died leaves nothing running for long).
const CHILD_DEADLINE: Duration = Duration::from_secs(120);
/// How long the parent waits for anything before it gives up with a panic.
const PARENT_DEADLINE: Duration = Duration::from_secs(180);

const STRESS_PRODUCERS: usize = 3;
const STRESS_CONSUMERS: usize = 3;
const STRESS_SENDS: usize = 300;

const CRASH_PRODUCERS: usize = 2;
const CRASH_CONSUMERS: usize = 2;
/// The crash tests' lease: short, so killed consumers' claims come back soon.
const CRASH_LEASE: Duration = Duration::from_millis(200);
/// Deliveries before a message is dead-lettered in the crash tests: low, so
/// releases and expired leases send some messages to `DEAD/`.
const CRASH_MAX_DELIVERIES: u32 = 3;
/// Each child of a round is killed within this long after all have started.
const CRASH_KILL_WINDOW_MS: u64 = 1_200;
/// The signal `Child::kill` sends.
const SIGKILL: i32 = 9;

// ---------------------------------------------------------------------------
// The tests.

#[test]
fn stress_every_sent_message_is_acked_exactly_once() {
    if let Some(child) = ChildEnv::from_env() {
        return child.run();
    }
    let test = "guarantees::stress_every_sent_message_is_acked_exactly_once";
    let comm = TempComm::with_agents(&[SENDER, AGENT]);
    let ledgers = ledger_dir(&comm);
    let done = ledgers.join("all-sent.marker");
    // Warm the compiled-component cache so the children start together.
    runtime();

    let mut producers = Children::default();
    for i in 0..STRESS_PRODUCERS {
        let name = format!("p{i}");
        let mut command = child_command(test, "produce", &comm, &ledgers, &name, 0, true);
        command.env(ENV_COUNT, STRESS_SENDS.to_string());
        producers.spawn(&name, command);
    }
    let mut consumers = Children::default();
    for i in 0..STRESS_CONSUMERS {
        let name = format!("c{i}");
        let mut command = child_command(test, "consume", &comm, &ledgers, &name, 0, true);
        command.env(ENV_DONE, &done);
        consumers.spawn(&name, command);
    }
    let deadline = Instant::now() + PARENT_DEADLINE;
    producers.wait_all(deadline);
    File::create(&done).unwrap();
    consumers.wait_all(deadline);

    let sent = read_ledgers(&ledgers, "p");
    let acked = read_ledgers(&ledgers, "c");
    println!(
        "{} sent by {STRESS_PRODUCERS} producers, {} acked by {STRESS_CONSUMERS} consumers",
        sent.len(),
        acked.len()
    );
    assert_eq!(sent.len(), STRESS_PRODUCERS * STRESS_SENDS);
    let sent_ids = unique(&sent, "sent");
    let acked_ids = unique(&acked, "acked");
    let lost: Vec<_> = sent_ids.difference(&acked_ids).collect();
    assert!(lost.is_empty(), "sent but never acked: {lost:?}");
    let unknown: Vec<_> = acked_ids.difference(&sent_ids).collect();
    assert!(unknown.is_empty(), "acked but never sent: {unknown:?}");

    let places = Places::scan(&comm);
    assert!(
        places.mailbox.is_empty(),
        "left in the mailbox: {:?}",
        places.mailbox
    );
    assert!(
        places.inflight.is_empty(),
        "left in flight: {:?}",
        places.inflight
    );
    assert!(places.dead.is_empty(), "dead-lettered: {:?}", places.dead);
    let archived = unique(&places.archive_ids(), "archived");
    assert_eq!(
        archived, sent_ids,
        "ARCHIVE/ holds exactly the sent messages"
    );
    assert_eq!(places.archive.len(), sent.len());
    assert_no_staging_left(&comm);

    let stats = work_stats(&mut comm.open());
    assert_eq!((stats.ready, stats.in_flight, stats.dead), (0, 0, 0));
}

#[test]
fn crash_killed_processes_lose_and_duplicate_nothing() {
    if let Some(child) = ChildEnv::from_env() {
        return child.run();
    }
    crash_test(
        "guarantees::crash_killed_processes_lose_and_duplicate_nothing",
        false,
        10,
    );
}

#[test]
fn crash_killed_processes_lose_and_duplicate_nothing_durable() {
    if let Some(child) = ChildEnv::from_env() {
        return child.run();
    }
    crash_test(
        "guarantees::crash_killed_processes_lose_and_duplicate_nothing_durable",
        true,
        6,
    );
}

#[test]
fn an_ack_after_the_lease_expired_and_another_claim_is_not_found() {
    let comm = TempComm::with_agents(&[SENDER, AGENT]);
    let mut slow = comm.open();
    let mut quick = comm.open();
    let sent = slow
        .send(&SendRequest::new(SENDER, AGENT, r#"{"n": 1}"#))
        .unwrap();

    let first = slow
        .claim(AGENT, "slow", 1, Duration::from_millis(100))
        .unwrap();
    assert_eq!(first.claimed.len(), 1);
    let held = &first.claimed[0];
    assert_eq!(held.message.id, sent.id);
    assert_eq!(held.deliveries, 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    while now_ms() <= held.lease_expires_ms {
        assert!(Instant::now() < deadline, "the lease never expired");
        sleep(Duration::from_millis(10));
    }

    // The expired claim is recovered by the next claim, which gets it again.
    let second = quick
        .claim(AGENT, "quick", 1, Duration::from_secs(600))
        .unwrap();
    assert_eq!(second.claimed.len(), 1, "{second:?}");
    let taken = &second.claimed[0];
    assert_eq!(taken.message.id, sent.id);
    assert_eq!(taken.deliveries, 2);

    let late = slow.ack(AGENT, "slow", &held.message.file);
    assert!(is_not_found(&late), "late ack: {late:?}");
    let late = slow.release(AGENT, "slow", &held.message.file);
    assert!(is_not_found(&late), "late release: {late:?}");
    let late = slow.extend(AGENT, "slow", &held.message.file, Duration::from_secs(60));
    assert!(is_not_found(&late), "late extend: {late:?}");

    let archived = quick.ack(AGENT, "quick", &taken.message.file).unwrap();
    let again = quick.ack(AGENT, "quick", &taken.message.file);
    assert!(is_not_found(&again), "second ack: {again:?}");
    let late = slow.ack(AGENT, "slow", &held.message.file);
    assert!(is_not_found(&late), "late ack after the ack: {late:?}");

    let places = Places::scan(&comm);
    assert!(places.mailbox.is_empty(), "{:?}", places.mailbox);
    assert!(places.inflight.is_empty(), "{:?}", places.inflight);
    assert!(places.dead.is_empty(), "{:?}", places.dead);
    assert_eq!(places.archive, vec![(archived, sent.id.clone())]);
    assert_no_staging_left(&comm);
}

// ---------------------------------------------------------------------------
// The crash test.

fn crash_test(test: &str, durable: bool, rounds: usize) {
    let seed = std::env::var("FMES_TEST_SEED")
        .ok()
        .map(|s| s.parse().expect("FMES_TEST_SEED is a number"))
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("{test}: seed {seed} (FMES_TEST_SEED={seed} repeats the random choices)");
    let mut rng = Rng::new(seed);
    let comm = TempComm::with_agents(&[SENDER, AGENT]);
    let ledgers = ledger_dir(&comm);
    runtime();

    let started = Instant::now();
    for round in 0..rounds {
        let mut children = Children::default();
        for i in 0..CRASH_PRODUCERS {
            let name = format!("p{round}-{i}");
            let mut command =
                child_command(test, "produce", &comm, &ledgers, &name, rng.next(), durable);
            // Slower than the consumers, so the mailbox stays short and
            // most messages are claimed while processes are being killed.
            command.env(ENV_COUNT, "1000").env(ENV_PAUSE_MS, "20");
            children.spawn(&name, command);
        }
        for i in 0..CRASH_CONSUMERS {
            let name = format!("c{round}-{i}");
            let command = child_command(test, "chaos", &comm, &ledgers, &name, rng.next(), durable);
            children.spawn(&name, command);
        }
        children.wait_started(&ledgers, Instant::now() + PARENT_DEADLINE);
        // Kill each at its own random moment.
        let from = Instant::now();
        let mut kills: Vec<(Duration, usize)> = (0..children.len())
            .map(|i| (Duration::from_millis(rng.below(CRASH_KILL_WINDOW_MS)), i))
            .collect();
        kills.sort();
        for (at, i) in kills {
            sleep(at.saturating_sub(from.elapsed()));
            children.kill(i);
        }
    }
    println!("{rounds} rounds in {:?}", started.elapsed());

    // Every child is dead; once the last lease has run out, recovery returns
    // every claim.
    wait_for_leases(&comm.join(&format!("{MAILBOX}/.inflight")));
    let mut parent = comm.open();
    parent.set_options(child_options(durable)).unwrap();
    let report = parent.recover().unwrap();
    println!("recover: {report:?}");

    let sent = read_ledgers(&ledgers, "p");
    let acked = read_ledgers(&ledgers, "c");
    println!("consumers did: {:?}", count_events(&ledgers));
    let sent_ids = unique(&sent, "sent");
    // Two successful acks of one message would be a double delivery.
    let acked_ids = unique(&acked, "acked");
    let places = Places::scan(&comm);
    println!(
        "sent {} (logged), acked {} (logged); found: {} waiting, {} in flight, {} archived, {} dead",
        sent.len(),
        acked.len(),
        places.mailbox.len(),
        places.inflight.len(),
        places.archive.len(),
        places.dead.len()
    );
    let found = places.check_exactly_once(&sent_ids);
    assert!(
        places.inflight.is_empty(),
        "every lease has expired, yet recover left claims in flight: {:?}",
        places.inflight
    );
    let archived: HashSet<&str> = places.archive.iter().map(|(_, id)| id.as_str()).collect();
    let unarchived: Vec<_> = acked_ids
        .iter()
        .filter(|id| !archived.contains(id.as_str()))
        .collect();
    assert!(
        unarchived.is_empty(),
        "acked but not in ARCHIVE/: {unarchived:?}"
    );
    assert_no_staging_left(&comm);
    let stats = work_stats(&mut parent);
    assert_eq!(stats.ready as usize, places.mailbox.len());
    assert_eq!(stats.in_flight, 0);

    // What is left can still be claimed and acked, each message once.
    let deadline = Instant::now() + PARENT_DEADLINE;
    loop {
        assert!(
            Instant::now() < deadline,
            "draining the mailbox took too long"
        );
        let batch = parent
            .claim(AGENT, "drain", 100, Duration::from_secs(600))
            .unwrap();
        assert!(batch.dead_lettered.is_empty(), "{:?}", batch.dead_lettered);
        if batch.claimed.is_empty() {
            break;
        }
        for claimed in batch.claimed {
            parent
                .ack(AGENT, "drain", &claimed.message.file)
                .unwrap_or_else(|e| panic!("drain ack of {}: {e}", claimed.message.file));
        }
    }
    let drained = Places::scan(&comm);
    assert!(drained.mailbox.is_empty(), "{:?}", drained.mailbox);
    assert!(drained.inflight.is_empty(), "{:?}", drained.inflight);
    let after = drained.check_exactly_once(&sent_ids);
    assert_eq!(after, found, "draining changed which messages exist");
    assert_no_staging_left(&comm);
}

/// The options of every process of a test (the delivery limit matters only
/// to the crash tests, whose leases expire).
fn child_options(durable: bool) -> Options {
    Options {
        durable,
        max_deliveries: CRASH_MAX_DELIVERIES,
        ..Options::default()
    }
}

/// Waits until every lease in `.inflight/` has run out (by the expiry in
/// its name), so that recovery returns them all.
fn wait_for_leases(inflight: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let latest = list(inflight)
            .iter()
            .filter_map(|name| name.rsplit('~').nth(1)?.parse::<u64>().ok())
            .max();
        match latest {
            Some(expiry) if now_ms() <= expiry => {
                assert!(
                    Instant::now() < deadline,
                    "a lease in {} never expired (until {expiry} ms)",
                    inflight.display()
                );
                sleep(Duration::from_millis(20));
            }
            _ => return,
        }
    }
}

// ---------------------------------------------------------------------------
// The child processes.

struct ChildEnv {
    role: String,
    comm: PathBuf,
    ledger: PathBuf,
    name: String,
    seed: u64,
    durable: bool,
}

impl ChildEnv {
    fn from_env() -> Option<ChildEnv> {
        let role = std::env::var(ENV_ROLE).ok()?;
        let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is unset"));
        Some(ChildEnv {
            role,
            comm: var(ENV_COMM).into(),
            ledger: var(ENV_LEDGER).into(),
            name: var(ENV_NAME),
            seed: var(ENV_SEED).parse().unwrap(),
            durable: var(ENV_DURABLE) == "1",
        })
    }

    fn run(self) {
        let mut comm = Comm::open_with(runtime(), &self.comm).unwrap();
        comm.set_options(child_options(self.durable)).unwrap();
        let ledger = Ledger::create(&self.ledger);
        match self.role.as_str() {
            "produce" => self.produce(comm, ledger),
            "consume" => self.consume(comm, ledger),
            "chaos" => self.chaos(comm, ledger),
            other => panic!("unknown role {other}"),
        }
    }

    fn mark_started(&self) {
        File::create(started_marker(&self.ledger)).unwrap();
    }

    /// Sends `ENV_COUNT` messages, logging each id once its send returned.
    fn produce(&self, mut comm: Comm, mut ledger: Ledger) {
        let count: usize = std::env::var(ENV_COUNT).unwrap().parse().unwrap();
        let pause_ms: u64 = std::env::var(ENV_PAUSE_MS).map_or(0, |p| p.parse().unwrap());
        let mut rng = Rng::new(self.seed);
        let deadline = Instant::now() + CHILD_DEADLINE;
        self.mark_started();
        for seq in 0..count {
            if Instant::now() > deadline {
                return;
            }
            let payload = format!(r#"{{"producer": "{}", "seq": {seq}}}"#, self.name);
            let sent = comm
                .send(&SendRequest::new(SENDER, AGENT, payload))
                .unwrap_or_else(|e| panic!("{}: send {seq}: {e}", self.name));
            ledger.record(&sent.id);
            if pause_ms > 0 {
                sleep(Duration::from_millis(rng.below(pause_ms + 1)));
            }
        }
    }

    /// Claims and acks until the producers are done and nothing is left.
    fn consume(&self, mut comm: Comm, mut ledger: Ledger) {
        let done = PathBuf::from(std::env::var(ENV_DONE).unwrap());
        let deadline = Instant::now() + CHILD_DEADLINE;
        self.mark_started();
        loop {
            assert!(
                Instant::now() < deadline,
                "{}: the producers never finished",
                self.name
            );
            // Looked at before the claim: an empty claim after the producers
            // finished means nothing is left.
            let finished = done.exists();
            let batch = comm
                .claim(AGENT, &self.name, 3, Duration::from_secs(600))
                .unwrap_or_else(|e| panic!("{}: claim: {e}", self.name));
            assert!(batch.dead_lettered.is_empty(), "{:?}", batch.dead_lettered);
            if batch.claimed.is_empty() {
                if finished {
                    return;
                }
                sleep(Duration::from_millis(5));
                continue;
            }
            for claimed in batch.claimed {
                assert_eq!(
                    claimed.deliveries, 1,
                    "{}: {} was delivered before, under a 10-minute lease",
                    self.name, claimed.message.file
                );
                comm.ack(AGENT, &self.name, &claimed.message.file)
                    .unwrap_or_else(|e| panic!("{}: ack {}: {e}", self.name, claimed.message.file));
                ledger.record(&claimed.message.id);
            }
        }
    }

    /// Claims with a short lease and acks, releases, extends, dawdles past
    /// the lease or forgets, at random, until killed. Besides the ids it
    /// acked, it logs what it did to `{ledger}.events`, one word a line.
    fn chaos(&self, mut comm: Comm, mut ledger: Ledger) {
        let mut events = Ledger::create(&with_suffix(&self.ledger, ".events"));
        let mut rng = Rng::new(self.seed);
        let deadline = Instant::now() + CHILD_DEADLINE;
        let name = self.name.as_str();
        self.mark_started();
        while Instant::now() < deadline {
            let limit = 1 + rng.below(3) as u32;
            let batch = comm
                .claim(AGENT, name, limit, CRASH_LEASE)
                .unwrap_or_else(|e| panic!("{name}: claim: {e}"));
            for _ in &batch.dead_lettered {
                events.record("dead-lettered-on-claim");
            }
            if batch.claimed.is_empty() {
                sleep(Duration::from_millis(5));
                continue;
            }
            for claimed in batch.claimed {
                events.record(if claimed.deliveries > 1 {
                    "claimed-again"
                } else {
                    "claimed"
                });
                let file = claimed.message.file.as_str();
                let ack = match rng.below(40) {
                    0..=23 => true,
                    // Back to the mailbox, or to DEAD/ after the last delivery.
                    24..=31 => {
                        events.record(
                            match lost_is_none(comm.release(AGENT, name, file), name, "release") {
                                Some(Released::Returned(_)) => "released",
                                Some(Released::DeadLettered(_)) => "released-to-dead",
                                None => "release-lost",
                            },
                        );
                        false
                    }
                    32..=35 => {
                        let extended = lost_is_none(
                            comm.extend(AGENT, name, file, CRASH_LEASE),
                            name,
                            "extend",
                        );
                        events.record(if extended.is_some() {
                            "extended"
                        } else {
                            "extend-lost"
                        });
                        extended.is_some()
                    }
                    // Past the lease: the ack finds it recovered, or not
                    // yet (then it succeeds).
                    36 => {
                        sleep(CRASH_LEASE + Duration::from_millis(20));
                        true
                    }
                    // Forgotten: it comes back when the lease runs out.
                    _ => {
                        events.record("forgotten");
                        false
                    }
                };
                if ack {
                    if lost_is_none(comm.ack(AGENT, name, file), name, "ack").is_some() {
                        ledger.record(&claimed.message.id);
                        events.record("acked");
                    } else {
                        events.record("ack-lost");
                    }
                }
            }
        }
    }
}

/// `None` for the error of a claim that is no longer held (its lease ran
/// out and it was recovered); any other error fails the child.
fn lost_is_none<T>(result: Result<T, Error>, name: &str, what: &str) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(Error::Queue(QueueError::NotFound(_))) => None,
        Err(e) => panic!("{name}: {what}: {e}"),
    }
}

fn is_not_found<T>(result: &Result<T, Error>) -> bool {
    matches!(result, Err(Error::Queue(QueueError::NotFound(_))))
}

/// This test binary, running only `test`, as a child in `role`.
fn child_command(
    test: &str,
    role: &str,
    comm: &TempComm,
    ledgers: &Path,
    name: &str,
    seed: u64,
    durable: bool,
) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", test, "--nocapture"])
        .env(ENV_ROLE, role)
        .env(ENV_COMM, &comm.path)
        .env(ENV_LEDGER, ledgers.join(name))
        .env(ENV_NAME, name)
        .env(ENV_SEED, seed.to_string())
        .env(ENV_DURABLE, if durable { "1" } else { "0" })
        // The child's own test-harness summary would read like a second run.
        .stdout(Stdio::null());
    command
}

/// Child processes, killed and reaped when dropped (a failing parent leaves
/// nothing running).
#[derive(Default)]
struct Children(Vec<(String, Option<Child>)>);

impl Children {
    fn spawn(&mut self, name: &str, mut command: Command) {
        let child = command.spawn().unwrap();
        self.0.push((name.to_string(), Some(child)));
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    /// Waits for every child to exit, each successfully.
    fn wait_all(&mut self, deadline: Instant) {
        for (name, slot) in &mut self.0 {
            let Some(child) = slot.as_mut() else { continue };
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    assert!(status.success(), "{name} failed: {status:?}");
                    break;
                }
                assert!(Instant::now() < deadline, "{name} is still running");
                sleep(Duration::from_millis(20));
            }
            *slot = None;
        }
    }

    /// Waits until every child has created its started marker; a child that
    /// exits before is a failure.
    fn wait_started(&mut self, ledgers: &Path, deadline: Instant) {
        for (name, slot) in &mut self.0 {
            let child = slot.as_mut().unwrap();
            while !started_marker(&ledgers.join(&*name)).exists() {
                if let Some(status) = child.try_wait().unwrap() {
                    panic!("{name} exited before it started: {status:?}");
                }
                assert!(Instant::now() < deadline, "{name} never started");
                sleep(Duration::from_millis(10));
            }
        }
    }

    /// Kills child `i` with SIGKILL and reaps it; it must not have failed
    /// on its own before.
    fn kill(&mut self, i: usize) {
        let (name, slot) = &mut self.0[i];
        let mut child = slot.take().unwrap();
        let status = match child.try_wait().unwrap() {
            Some(status) => status,
            None => {
                child.kill().unwrap();
                child.wait().unwrap()
            }
        };
        assert!(
            killed_or_succeeded(status),
            "{name} failed before it was killed: {status:?}"
        );
    }
}

fn killed_or_succeeded(status: ExitStatus) -> bool {
    status.success() || status.signal() == Some(SIGKILL)
}

impl Drop for Children {
    fn drop(&mut self) {
        for (_, slot) in &mut self.0 {
            if let Some(mut child) = slot.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn started_marker(ledger: &Path) -> PathBuf {
    with_suffix(ledger, ".started")
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

// ---------------------------------------------------------------------------
// Ledgers.

/// A child's ledger: one id a line, each line one `write` to an unbuffered
/// file opened for appending, so a killed child leaves whole lines (and at
/// worst an unfinished last one, which is ignored).
struct Ledger(File);

impl Ledger {
    fn create(path: &Path) -> Ledger {
        Ledger(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .unwrap(),
        )
    }

    fn record(&mut self, id: &str) {
        self.0.write_all(format!("{id}\n").as_bytes()).unwrap();
        self.0.flush().unwrap();
    }
}

fn ledger_dir(comm: &TempComm) -> PathBuf {
    let dir = comm.root.path().join("ledgers");
    std::fs::create_dir(&dir).unwrap();
    dir
}

/// Every complete line of the ledgers whose names start with `prefix`.
fn read_ledgers(dir: &Path, prefix: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for name in list(dir) {
        // Ledgers only: not `.started`, `.events` or the `all-sent.marker`.
        if !name.starts_with(prefix) || name.contains('.') {
            continue;
        }
        let text = std::fs::read_to_string(dir.join(&name)).unwrap();
        let complete = match text.rfind('\n') {
            Some(end) => &text[..end],
            None => "",
        };
        ids.extend(complete.lines().map(str::to_string));
    }
    ids
}

/// How often the chaos consumers did each thing, from their `.events` files.
fn count_events(dir: &Path) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for name in list(dir) {
        if name.ends_with(".events") {
            let text = std::fs::read_to_string(dir.join(&name)).unwrap();
            for event in text.lines() {
                *counts.entry(event.to_string()).or_insert(0) += 1;
            }
        }
    }
    counts
}

/// The ids as a set; each must appear once.
#[track_caller]
fn unique(ids: &[String], what: &str) -> HashSet<String> {
    let mut seen = HashSet::new();
    let twice: Vec<_> = ids.iter().filter(|id| !seen.insert(id.as_str())).collect();
    assert!(twice.is_empty(), "{what} more than once: {twice:?}");
    ids.iter().cloned().collect()
}

// ---------------------------------------------------------------------------
// Where messages are on disk.

/// Every message file in the four places a message can be, as (file, id).
/// Reading one that is not a whole JSON message with an `id` is a failure.
struct Places {
    mailbox: Vec<(String, String)>,
    inflight: Vec<(String, String)>,
    archive: Vec<(String, String)>,
    dead: Vec<(String, String)>,
}

impl Places {
    fn scan(comm: &TempComm) -> Places {
        let is_json = |name: &str| name.ends_with(".json") && !name.starts_with('.');
        Places {
            mailbox: messages_in(&comm.join(MAILBOX), is_json),
            // Claimed files are named `{stem}~{deliveries}~{expiry}~{consumer}`.
            inflight: messages_in(&comm.join(&format!("{MAILBOX}/.inflight")), |_| true),
            archive: messages_in(&comm.join("ARCHIVE"), is_json),
            dead: messages_in(&comm.join(&format!("DEAD/{MAILBOX}")), is_json),
        }
    }

    fn archive_ids(&self) -> Vec<String> {
        self.archive.iter().map(|(_, id)| id.clone()).collect()
    }

    /// Checks that no message is in two places (or twice in one) and every
    /// sent id is somewhere; returns every id found.
    #[track_caller]
    fn check_exactly_once(&self, sent: &HashSet<String>) -> HashSet<String> {
        let mut at: HashMap<String, Vec<String>> = HashMap::new();
        for (place, files) in [
            (MAILBOX, &self.mailbox),
            (".inflight", &self.inflight),
            ("ARCHIVE", &self.archive),
            ("DEAD", &self.dead),
        ] {
            for (file, id) in files {
                at.entry(id.clone())
                    .or_default()
                    .push(format!("{place}/{file}"));
            }
        }
        let twice: Vec<_> = at.iter().filter(|(_, files)| files.len() > 1).collect();
        assert!(
            twice.is_empty(),
            "messages in more than one file: {twice:?}"
        );
        let mut lost: Vec<_> = sent.iter().filter(|id| !at.contains_key(*id)).collect();
        lost.sort();
        assert!(
            lost.is_empty(),
            "{} sent messages are nowhere: {lost:?}",
            lost.len()
        );
        at.into_keys().collect()
    }
}

/// (file, id) of every file in `dir` whose name passes `wanted`.
fn messages_in(dir: &Path, wanted: impl Fn(&str) -> bool) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for name in list(dir) {
        if !wanted(&name) {
            continue;
        }
        let path = dir.join(&name);
        if path.is_dir() {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: unreadable: {e}", path.display()));
        let message: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!(
                "{}: not a whole JSON message ({e}): {text:?}",
                path.display()
            )
        });
        let id = message["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: no id: {text}", path.display()));
        found.push((name, id.to_string()));
    }
    found
}

/// No settle into `ARCHIVE/` or `DEAD/` is left half done. A dead letter's
/// note whose message never moved (its writer was killed between writing
/// the note and moving the message) may stay until it is old enough to be
/// removed; it is not a message.
fn assert_no_staging_left(comm: &TempComm) {
    for dir in [
        "ARCHIVE/.incoming".to_string(),
        format!("DEAD/{MAILBOX}/.incoming"),
    ] {
        let names = list(&comm.join(&dir));
        let staged: Vec<_> = names.iter().filter(|n| !n.ends_with(".reason")).collect();
        assert!(staged.is_empty(), "unfinished moves in {dir}: {staged:?}");
        if !names.is_empty() {
            println!("notes without a message in {dir} (kept for the grace period): {names:?}");
        }
    }
}

/// Names in a folder; none if it does not exist.
fn list(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect(),
        Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("{}: {e}", dir.display()),
    }
}

fn work_stats(comm: &mut Comm) -> fmes::MailboxStats {
    comm.stats()
        .unwrap()
        .into_iter()
        .find(|s| s.agent == AGENT)
        .expect("stats for the work mailbox")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// SplitMix64: enough randomness for kill moments and consumer choices.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
