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

/// How long a claim lasts: long enough for any handler call, which the time
/// limit stops well before.
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
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    pub acknowledged: u32,
    pub failed: u32,
    pub dead_lettered: u32,
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
            consumer: format!("{agent}-runner-{}", std::process::id()),
            policy,
            comm,
            instance: None,
        })
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
        let lease = self.policy.time_limit + LEASE_MARGIN;
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
            for next in claimed.by_ref() {
                // A batch can outlast a lease when handlers are slow: renew
                // the lease of the message about to be handled past half of it.
                if claimed_at.elapsed() > lease / 2 {
                    match self
                        .comm
                        .extend(&self.agent, &self.consumer, &next.message.file, lease)
                    {
                        Ok(_) => {}
                        // Its lease ran out and another consumer has it now.
                        Err(crate::Error::Queue(crate::QueueError::NotFound(_))) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
                let outcome = self.handle(&next.message)?;
                match &outcome {
                    HandleOutcome::Acknowledged => report.acknowledged += 1,
                    HandleOutcome::Failed { dead_lettered, .. } => {
                        report.failed += 1;
                        report.dead_lettered += u32::from(*dead_lettered);
                    }
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
                self.comm.ack(&self.agent, &self.consumer, &message.file)?;
                return Ok(HandleOutcome::Acknowledged);
            }
            Ok(Err(reason)) => format!("the handler failed: {}", printable_line(&reason)),
            Err(trap) => {
                let (store, _) = self.instance.take().expect("made above");
                let error = classify(&self.runtime, &self.policy, trap, store.data());
                error.to_string()
            }
        };
        let released = self
            .comm
            .release(&self.agent, &self.consumer, &message.file)?;
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
        let plugin = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| PluginError::Instantiate(format!("{e:#}")))?;
        let setup = plugin.fmes_queue_handler().call_setup(&mut store);
        drop(in_flight);
        flush_output(&self.agent, store.data_mut());
        match setup {
            Ok(Ok(())) => Ok((store, plugin)),
            Ok(Err(reason)) => Err(PluginError::Setup(printable_line(&reason))),
            Err(trap) => Err(classify(&self.runtime, &self.policy, trap, store.data())),
        }
    }
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

fn classify(
    runtime: &Runtime,
    policy: &Policy,
    trap: wasmtime::Error,
    state: &PluginState,
) -> PluginError {
    let _ = runtime;
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
    PluginError::Trap(printable_line(&format!("{trap:#}")))
}

/// Prints the complete lines the plugin wrote since the last flush, marked
/// with its name.
fn flush_output(agent: &str, state: &mut PluginState) {
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
            c if c.is_control() => {}
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
    }
}
