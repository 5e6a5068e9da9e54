//! `fmes agent run`: claims messages for an agent and hands each to the
//! plugin, acknowledging on success and releasing on an error or a trap.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::Store;
use wasmtime::component::{HasSelf, Linker};

use super::bindings::{AgentPlugin, AgentPluginPre};
use super::pacing::ClaimPacing;
use super::policy::Policy;
use super::state::PluginState;
use crate::runtime::Runtime;
use crate::{Comm, Message, Released};

/// Imports a plugin may have: its own world, and the parts of WASI that
/// reach nothing outside the sandbox (stdio is captured, env and args are
/// empty, stdin is at its end). Anything else is refused at load time:
/// `wasi:filesystem`, `wasi:sockets`, `wasi:http`, and
/// `wasi:clocks/monotonic-clock`, whose timers are the one way left to block
/// inside the host, where no time limit reaches (every other pollable a
/// plugin can make is ready at once).
const ALLOWED_IMPORTS: [&str; 11] = [
    "fmes:queue/mailbox@",
    "fmes:queue/types@",
    "wasi:cli/environment@",
    "wasi:cli/exit@",
    "wasi:cli/stdin@",
    "wasi:cli/stdout@",
    "wasi:cli/stderr@",
    "wasi:cli/terminal-",
    "wasi:clocks/wall-clock@",
    "wasi:random/",
    "wasi:io/",
];

/// What a claim's lease holds beyond the calls its message may wait for.
/// A message is handed to the plugin only while its lease has at least the
/// time of those calls (the setup of a fresh instance, then the handler,
/// each stopped at the time limit) and this margin left, renewed if not: so
/// no claim runs out while its message is handled, and no other consumer
/// takes it then, however slow the batch before it was.
const LEASE_MARGIN: Duration = Duration::from_secs(60);
/// Between looks at an empty mailbox.
const IDLE_WAIT: Duration = Duration::from_millis(250);

/// Why a plugin could not be run or a call failed.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("cannot read the plugin {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a WebAssembly component: {message}")]
    NotAComponent { path: String, message: String },
    #[error("the plugin imports what agent plugins may not use: {}", forbidden.join(", "))]
    ForbiddenImports { forbidden: Vec<String> },
    #[error("the plugin cannot be instantiated: {0}")]
    Instantiate(String),
    #[error("the plugin's setup failed: {0}")]
    Setup(String),
    #[error("the plugin ran past its time limit of {0:?}")]
    TimeLimit(Duration),
    #[error("the plugin ran out of fuel: its budget is {0} units per message")]
    FuelLimit(u64),
    #[error("the plugin tried to use more than its memory limit of {0} MiB")]
    MemoryLimit(u32),
    #[error("the plugin crashed: {0}")]
    Trap(String),
    #[error(transparent)]
    Queue(#[from] crate::Error),
}

/// What happened to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandleOutcome {
    /// Handled and acknowledged.
    Acknowledged,
    /// The handler returned an error, or was stopped: released, or
    /// dead-lettered at the delivery limit.
    Failed { reason: String, dead_lettered: bool },
    /// Handled, but the claim was gone when it was to be settled: its lease
    /// ran out (the process was stopped or starved for longer than the
    /// lease) and a recovery or another consumer took the message, which
    /// may be handled again.
    ClaimLost { reason: String },
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    pub acknowledged: u32,
    pub failed: u32,
    pub dead_lettered: u32,
    /// Messages handled whose claim was lost before they were settled.
    pub claims_lost: u32,
}

/// Runs one plugin as one agent.
pub struct AgentRunner {
    runtime: Arc<Runtime>,
    pre: AgentPluginPre<PluginState>,
    comm_dir: std::path::PathBuf,
    agent: String,
    consumer: String,
    policy: Policy,
    comm: Comm,
    instance: Option<(Store<PluginState>, AgentPlugin)>,
    /// See [`LEASE_MARGIN`].
    lease_margin: Duration,
}

impl AgentRunner {
    /// Loads a plugin, refusing it if it imports anything beyond the plugin world.
    pub fn load(
        runtime: Arc<Runtime>,
        plugin: &Path,
        comm_dir: &Path,
        agent: &str,
        policy: Policy,
    ) -> Result<AgentRunner, PluginError> {
        let bytes = std::fs::read(plugin).map_err(|source| PluginError::Read {
            path: plugin.display().to_string(),
            source,
        })?;
        AgentRunner::from_bytes(
            runtime,
            &bytes,
            &plugin.display().to_string(),
            comm_dir,
            agent,
            policy,
        )
    }

    /// Loads a plugin from its bytes; `label` names it in errors.
    pub fn from_bytes(
        runtime: Arc<Runtime>,
        bytes: &[u8],
        label: &str,
        comm_dir: &Path,
        agent: &str,
        policy: Policy,
    ) -> Result<AgentRunner, PluginError> {
        let engine = runtime.plugin_engine().clone();
        // Compiled plugins are cached beside the queue component, outside any _COMM.
        let component = crate::runtime::compile_cached(
            &engine,
            runtime.cache_dir.as_deref(),
            "plugin",
            &crate::runtime::content_hash(bytes),
            bytes,
        )
        .map_err(|e| PluginError::NotAComponent {
            path: label.to_string(),
            message: format!("{e:#}"),
        })?;
        let forbidden: Vec<String> = component
            .component_type()
            .imports(&engine)
            .map(|(name, _)| name.to_string())
            .filter(|name| {
                !ALLOWED_IMPORTS
                    .iter()
                    .any(|allowed| name.starts_with(allowed))
            })
            .collect();
        if !forbidden.is_empty() {
            return Err(PluginError::ForbiddenImports { forbidden });
        }
        let mut linker = Linker::<PluginState>::new(&engine);
        add_plugin_world(&mut linker).map_err(|e| PluginError::Instantiate(format!("{e:#}")))?;
        let pre = linker
            .instantiate_pre(&component)
            .and_then(AgentPluginPre::new)
            .map_err(|e| PluginError::Instantiate(format!("{e:#}")))?;
        let comm = Comm::open_with(runtime.clone(), comm_dir)?;
        Ok(AgentRunner {
            runtime,
            pre,
            comm_dir: comm_dir.to_path_buf(),
            agent: agent.to_string(),
            consumer: runner_consumer(),
            policy,
            comm,
            instance: None,
            lease_margin: LEASE_MARGIN,
        })
    }

    /// Sets how long a claim's lease holds beyond the calls its message may
    /// need ([`LEASE_MARGIN`], a minute, by default): the longest the
    /// process may be stopped or starved between two messages without
    /// another consumer taking the next one.
    pub fn set_lease_margin(&mut self, margin: Duration) {
        self.lease_margin = margin;
    }

    /// The queue handle the runner claims with, for settings.
    pub fn comm(&mut self) -> &mut Comm {
        &mut self.comm
    }

    /// Handles messages until `stop` is set (finishing the one in hand), or
    /// with `once`, until the mailbox is empty. `on_event` hears about each.
    pub fn run(
        &mut self,
        once: bool,
        stop: &AtomicBool,
        mut on_event: impl FnMut(&Message, &HandleOutcome),
    ) -> Result<RunReport, PluginError> {
        let mut report = RunReport::default();
        // Enough for a message's calls with the margin to spare twice, so
        // that a batch renews its leases about once a margin.
        let lease = (self.policy.time_limit + self.lease_margin) * 2;
        let mut pacing = ClaimPacing::new();
        while !stop.load(Ordering::Relaxed) {
            // A batch per claim: each claim lists the whole mailbox, so one
            // at a time would make a long mailbox quadratic (see pacing).
            let claiming = std::time::Instant::now();
            let batch = self
                .comm
                .claim(&self.agent, &self.consumer, pacing.size(), lease)?;
            let claimed_at = std::time::Instant::now();
            let claim_took = claimed_at - claiming;
            let claimed_count = batch.claimed.len() as u32;
            let bytes: u64 = batch
                .claimed
                .iter()
                .map(|c| c.message.raw.len() as u64)
                .sum();
            if batch.claimed.is_empty() {
                if once {
                    break;
                }
                std::thread::sleep(IDLE_WAIT);
                continue;
            }
            let mut claimed = batch.claimed.into_iter();
            let mut cut_short = false;
            while let Some(next) = claimed.next() {
                // A batch can outlast a lease when handlers are slow, or
                // the process is stopped a while: a message goes to the
                // plugin only with time enough left on its lease.
                match self.make_lease_last(&next, lease) {
                    Ok(true) => {}
                    // Its lease ran out and a recovery or another consumer
                    // took it: theirs now.
                    Ok(false) => continue,
                    Err(e) => {
                        self.give_back_all(std::iter::once(next).chain(claimed));
                        return Err(e);
                    }
                }
                let outcome = match self.handle(&next.message) {
                    Ok(outcome) => outcome,
                    Err(e) => {
                        // No instance could be made (its setup failed, or
                        // broke a limit), or the queue failed: the plugin
                        // never had these messages, which go back at once,
                        // their delivery not counted.
                        self.give_back_all(std::iter::once(next).chain(claimed));
                        return Err(e);
                    }
                };
                match &outcome {
                    HandleOutcome::Acknowledged => report.acknowledged += 1,
                    HandleOutcome::Failed { dead_lettered, .. } => {
                        report.failed += 1;
                        report.dead_lettered += u32::from(*dead_lettered);
                    }
                    HandleOutcome::ClaimLost { .. } => report.claims_lost += 1,
                }
                on_event(&next.message, &outcome);
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                if pacing.overdue(claim_took, claimed_at.elapsed()) {
                    cut_short = true;
                    break;
                }
            }
            if cut_short {
                pacing.cut_short();
            } else {
                pacing.record(claim_took, claimed_at.elapsed(), claimed_count, bytes);
            }
            // Stopped or cut short mid-batch: the messages not handled go
            // back now rather than when their lease ends, their delivery
            // not counted (the plugin never had them).
            for unhandled in claimed {
                match self
                    .comm
                    .give_back(&self.agent, &self.consumer, &unhandled.message.file)
                {
                    Ok(_) | Err(crate::Error::Queue(crate::QueueError::NotFound(_))) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(report)
    }

    /// Renews the lease of `claimed` unless it has the time of the calls its
    /// message may need and [`LEASE_MARGIN`] left. False if the claim is
    /// gone: its lease ran out and a recovery or another consumer took it.
    fn make_lease_last(
        &mut self,
        claimed: &crate::Claimed,
        lease: Duration,
    ) -> Result<bool, PluginError> {
        // A fresh instance runs its setup first, under its own time limit.
        let calls = if self.instance.is_some() { 1 } else { 2 };
        let needed = self.policy.time_limit * calls + self.lease_margin;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        let left = Duration::from_millis(claimed.lease_expires_ms.saturating_sub(now_ms));
        if left >= needed {
            return Ok(true);
        }
        let file = &claimed.message.file;
        match self.comm.extend(&self.agent, &self.consumer, file, lease) {
            Ok(_) => Ok(true),
            Err(crate::Error::Queue(crate::QueueError::NotFound(_))) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Gives back claims the plugin never had, their delivery not counted,
    /// on the way out of a run that failed: as many as can be (the rest
    /// come back when their leases end).
    fn give_back_all(&mut self, claims: impl Iterator<Item = crate::Claimed>) {
        for claim in claims {
            let _ = self
                .comm
                .give_back(&self.agent, &self.consumer, &claim.message.file);
        }
    }

    /// Hands one claimed message to the plugin and settles it.
    fn handle(&mut self, message: &Message) -> Result<HandleOutcome, PluginError> {
        if self.instance.is_none() {
            self.instance = Some(self.instantiate()?);
        }
        let (store, plugin) = self.instance.as_mut().expect("made above");
        store.data_mut().start_message(&message.from);
        // Without a fuel budget in the policy, time is the only bound.
        store
            .set_fuel(self.policy.fuel.unwrap_or(u64::MAX))
            .map_err(|e| PluginError::Instantiate(format!("{e:#}")))?;
        store.set_epoch_deadline(self.runtime.deadline_ticks_for(self.policy.time_limit));
        let wit_message = to_wit(message);
        let in_flight = self.runtime.call_in_flight();
        let result = plugin
            .fmes_queue_handler()
            .call_handle(&mut *store, &wit_message);
        drop(in_flight);
        flush_output(&self.agent, store.data_mut());
        let failure = match result {
            Ok(Ok(())) => {
                return match self.comm.ack(&self.agent, &self.consumer, &message.file) {
                    Ok(_) => Ok(HandleOutcome::Acknowledged),
                    Err(crate::Error::Queue(crate::QueueError::NotFound(reason))) => {
                        Ok(HandleOutcome::ClaimLost { reason })
                    }
                    Err(e) => Err(e.into()),
                };
            }
            Ok(Err(reason)) => format!("the handler failed: {}", shown_reason(&reason)),
            Err(trap) => {
                let (store, _) = self.instance.take().expect("made above");
                let error = classify(&self.policy, trap, store.data());
                error.to_string()
            }
        };
        let released = match self
            .comm
            .release(&self.agent, &self.consumer, &message.file)
        {
            Ok(released) => released,
            Err(crate::Error::Queue(crate::QueueError::NotFound(reason))) => {
                return Ok(HandleOutcome::ClaimLost {
                    reason: format!("{failure}, and {reason}"),
                });
            }
            Err(e) => return Err(e.into()),
        };
        Ok(HandleOutcome::Failed {
            reason: failure,
            dead_lettered: matches!(released, Released::DeadLettered(_)),
        })
    }

    fn instantiate(&self) -> Result<(Store<PluginState>, AgentPlugin), PluginError> {
        let comm = Comm::open_with(self.runtime.clone(), &self.comm_dir)?;
        let state = PluginState::new(&self.agent, comm, self.policy.clone());
        let mut store = Store::new(self.runtime.plugin_engine(), state);
        store.limiter(|s| &mut s.limits);
        store
            .set_fuel(self.policy.fuel.unwrap_or(u64::MAX))
            .map_err(|e| PluginError::Instantiate(format!("{e:#}")))?;
        store.epoch_deadline_trap();
        store.set_epoch_deadline(self.runtime.deadline_ticks_for(self.policy.time_limit));
        let in_flight = self.runtime.call_in_flight();
        // Instantiating runs the plugin's start functions, under the same
        // limits as its calls: a trap there is told as one.
        let plugin = match self.pre.instantiate(&mut store) {
            Ok(plugin) => plugin,
            Err(e) => {
                drop(in_flight);
                flush_output(&self.agent, store.data_mut());
                return Err(match classify(&self.policy, e, store.data()) {
                    PluginError::Trap(reason) => PluginError::Instantiate(reason),
                    limit => limit,
                });
            }
        };
        let setup = plugin.fmes_queue_handler().call_setup(&mut store);
        drop(in_flight);
        flush_output(&self.agent, store.data_mut());
        match setup {
            Ok(Ok(())) => Ok((store, plugin)),
            Ok(Err(reason)) => Err(PluginError::Setup(shown_reason(&reason))),
            Err(trap) => Err(classify(&self.policy, trap, store.data())),
        }
    }
}

/// The consumer name a runner claims under: its own, among runners on
/// other machines or in other containers too (where process ids repeat),
/// and a valid consumer name whatever the agent's (at most 64 characters).
fn runner_consumer() -> String {
    use std::hash::{BuildHasher, Hasher};
    // Keyed at random for each process: 64 random bits, std alone.
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    format!("runner-{}-{random:016x}", std::process::id())
}

/// A linker holding exactly what a plugin may import (`ALLOWED_IMPORTS`).
fn add_plugin_world(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    use wasmtime_wasi::cli::{WasiCli, WasiCliView};
    use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
    use wasmtime_wasi::p2::bindings::{cli, clocks, io, random, sync};
    use wasmtime_wasi::random::{WasiRandom, WasiRandomView};

    type T = PluginState;
    let l = linker;
    AgentPlugin::add_to_linker::<_, HasSelf<_>>(l, |state| state)?;
    clocks::wall_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;
    random::random::add_to_linker::<T, WasiRandom>(l, |t| t.random())?;
    random::insecure::add_to_linker::<T, WasiRandom>(l, |t| t.random())?;
    random::insecure_seed::add_to_linker::<T, WasiRandom>(l, |t| t.random())?;
    cli::exit::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::environment::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_input::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_output::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
    io::error::add_to_linker::<T, ResourcesOnly>(l, |t| t.resources())?;
    sync::io::poll::add_to_linker::<T, ResourcesOnly>(l, |t| t.resources())?;
    sync::io::streams::add_to_linker::<T, ResourcesOnly>(l, |t| t.resources())?;
    Ok(())
}

/// The stream and pollable interfaces need only the resource table.
struct ResourcesOnly;

impl wasmtime::component::HasData for ResourcesOnly {
    type Data<'a> = &'a mut wasmtime::component::ResourceTable;
}

fn classify(policy: &Policy, trap: wasmtime::Error, state: &PluginState) -> PluginError {
    match trap.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => return PluginError::TimeLimit(policy.time_limit),
        Some(wasmtime::Trap::OutOfFuel) => {
            return PluginError::FuelLimit(policy.fuel.unwrap_or(u64::MAX));
        }
        _ => {}
    }
    if state.limits.exceeded {
        return PluginError::MemoryLimit(policy.memory_limit_mib);
    }
    PluginError::Trap(shown_reason(&format!("{trap:#}")))
}

/// Characters of a reason from the plugin (its error, its trap) shown.
const REASON_CAP: usize = 4096;

/// A reason given by the plugin or made of its names, as one line fit for
/// a terminal and cut at [`REASON_CAP`] characters: the plugin decides its
/// length.
fn shown_reason(text: &str) -> String {
    let line = printable_line(text);
    match line.char_indices().nth(REASON_CAP) {
        Some((cut, _)) => format!("{}... (cut at {REASON_CAP} characters)", &line[..cut]),
        None => line,
    }
}

/// Prints the complete lines the plugin wrote since the last flush, marked
/// with its name.
fn flush_output(agent: &str, state: &mut PluginState) {
    for line in state.logs.drain(..) {
        crate::stderr::line!("{line}");
    }
    for (pipe, shown, stream) in [
        (&state.stdout, &mut state.stdout_shown, "stdout"),
        (&state.stderr, &mut state.stderr_shown, "stderr"),
    ] {
        let bytes = pipe.contents();
        let fresh = &bytes[(*shown).min(bytes.len())..];
        // A line still being written waits for its end.
        let Some(end) = fresh.iter().rposition(|&b| b == b'\n') else {
            continue;
        };
        for line in String::from_utf8_lossy(&fresh[..end]).lines() {
            crate::stderr::line!("[{agent}] {stream}: {}", printable_line(line));
        }
        *shown += end + 1;
    }
}

/// Text from a plugin made safe for a terminal: escape sequences and other
/// control characters are dropped (tabs become spaces), and it is one line.
pub fn printable_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // An escape sequence: ESC, then for CSI `[` parameters up to a
            // final letter, else one more character.
            '\u{1b}' => match chars.next() {
                Some('[') => {
                    for next in chars.by_ref() {
                        if next.is_ascii_alphabetic() || next == '~' {
                            break;
                        }
                    }
                }
                Some(']') => {
                    // OSC: up to BEL or ESC \.
                    while let Some(next) = chars.next() {
                        if next == '\u{7}' {
                            break;
                        }
                        if next == '\u{1b}' {
                            chars.next();
                            break;
                        }
                    }
                }
                _ => {}
            },
            '\t' => out.push(' '),
            c if c.is_control() || crate::cli::output::reorders_text(c) => {}
            c => out.push(c),
        }
    }
    out
}

fn to_wit(m: &Message) -> super::bindings::fmes::queue::types::Message {
    super::bindings::fmes::queue::types::Message {
        id: m.id.clone(),
        from: m.from.clone(),
        to: m.to.clone(),
        type_: m.message_type.clone(),
        priority: m.priority,
        timestamp: m.timestamp.clone(),
        payload: m.payload.clone(),
        file: m.file.clone(),
        raw: m.raw.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::printable_line;

    #[test]
    fn escape_sequences_and_controls_are_dropped() {
        assert_eq!(printable_line("\u{1b}[31mred\u{1b}[0m"), "red");
        assert_eq!(printable_line("a\u{1b}]0;title\u{7}b"), "ab");
        assert_eq!(printable_line("x\ry\u{8}\tz"), "xy z");
        assert_eq!(printable_line("plain é"), "plain é");
        assert_eq!(
            printable_line("a\u{202e}gnp.exe\u{202c} b\u{2028}c"),
            "agnp.exe bc"
        );
    }
}
