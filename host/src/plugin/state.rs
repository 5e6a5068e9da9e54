//! The host side of the `mailbox` interface: every request is checked
//! against the plugin's identity and policy before it reaches the queue.

use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings::fmes::queue::mailbox::{self, Level, PluginError};
use super::bindings::fmes::queue::types;
use super::policy::Policy;
use crate::sandbox::MemoryCap;
use crate::{Comm, SendRequest};

/// Characters of one log line shown.
const LOG_LINE_CAP: usize = 4096;
/// Bytes a log line counts at least against the bytes a plugin may pass
/// per message: empty lines cost the host as much as short ones, and
/// would otherwise be free.
const LOG_LINE_CHARGE: u64 = 256;
/// Bytes of stdout and stderr kept per plugin instance; writes past it fail.
const OUTPUT_CAP: usize = 1024 * 1024;

/// The state of one plugin's store.
pub struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limits: MemoryCap,
    pub(crate) stdout: MemoryOutputPipe,
    pub(crate) stderr: MemoryOutputPipe,
    /// Bytes of each stream already shown.
    pub(crate) stdout_shown: usize,
    pub(crate) stderr_shown: usize,
    agent: String,
    comm: Comm,
    policy: Policy,
    /// Sender of the message being handled, for `reply`.
    pub(crate) replying_to: Option<String>,
    /// Whether this instance has been given a message: until then, what
    /// its setup sent and logged counts against the first message's caps.
    handling_began: bool,
    sends: u32,
    bytes: u64,
    /// Log lines of the call in progress, shown when it returns: writing
    /// them to a stderr that blocks would stall the call where the time
    /// limit does not reach.
    pub(crate) logs: Vec<String>,
}

impl PluginState {
    pub fn new(agent: &str, comm: Comm, policy: Policy) -> PluginState {
        let stdout = MemoryOutputPipe::new(OUTPUT_CAP);
        let stderr = MemoryOutputPipe::new(OUTPUT_CAP);
        // No preopen, no env, no args, no stdin, no network: the builder
        // starts with none of them.
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .build();
        let memory = policy.memory_limit_mib as usize * 1024 * 1024;
        PluginState {
            wasi,
            table: ResourceTable::new(),
            limits: MemoryCap::new(memory),
            stdout,
            stderr,
            stdout_shown: 0,
            stderr_shown: 0,
            agent: agent.to_string(),
            comm,
            policy,
            replying_to: None,
            handling_began: false,
            sends: 0,
            bytes: 0,
            logs: Vec::new(),
        }
    }

    /// Resets the per-message caps for the next message (but for the
    /// first, which the setup's sends and logs count against: a plugin
    /// that traps on every message gets a fresh setup each time).
    pub fn start_message(&mut self, sender: &str) {
        self.replying_to = Some(sender.to_string());
        if std::mem::replace(&mut self.handling_began, true) {
            self.sends = 0;
            self.bytes = 0;
        }
    }

    /// Counts one send of `payload` against the caps, or refuses it.
    fn charge(&mut self, copies: u32, payload: &str) -> Result<(), PluginError> {
        if self.sends + copies > self.policy.max_sends_per_message {
            return Err(PluginError::LimitReached(format!(
                "at most {} messages may be sent per handled message",
                self.policy.max_sends_per_message
            )));
        }
        // Guest-supplied sizes: counted before anything is stored.
        let bytes = payload.len() as u64 * u64::from(copies);
        if self.bytes + bytes > self.policy.max_bytes_per_message {
            return Err(PluginError::LimitReached(format!(
                "at most {} bytes may be sent per handled message",
                self.policy.max_bytes_per_message
            )));
        }
        self.sends += copies;
        self.bytes += bytes;
        Ok(())
    }

    fn send_as_agent(
        &mut self,
        to: &str,
        message_type: Option<String>,
        priority: Option<u8>,
        payload: String,
    ) -> Result<String, PluginError> {
        if !self.policy.may_send_to(to) {
            return Err(PluginError::NotAllowed(format!(
                "the policy does not allow sending to {to:?}"
            )));
        }
        // Each message sent to itself would come back to be handled, and
        // could send more: without end, unless asked for by name.
        if to.eq_ignore_ascii_case(&self.agent) && !self.policy.names_recipient(to) {
            return Err(PluginError::NotAllowed(format!(
                "a plugin may send to its own agent {to:?} only if the policy's \
                 allowed_recipients names it"
            )));
        }
        self.charge(1, &payload)?;
        let request = SendRequest {
            from: self.agent.clone(),
            to: to.to_string(),
            message_type,
            priority,
            payload,
            max_payload_bytes: Some(self.policy.max_bytes_per_message),
            id: None,
        };
        self.comm
            .send(&request)
            .map(|m| m.file)
            .map_err(|e| PluginError::Rejected(e.to_string()))
    }
}

impl PluginState {
    pub(crate) fn resources(&mut self) -> &mut ResourceTable {
        &mut self.table
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for PluginState {}

impl mailbox::Host for PluginState {
    fn whoami(&mut self) -> String {
        self.agent.clone()
    }

    fn send(
        &mut self,
        to: String,
        message_type: Option<String>,
        priority: Option<u8>,
        payload: String,
    ) -> Result<String, PluginError> {
        self.send_as_agent(&to, message_type, priority, payload)
    }

    fn reply(
        &mut self,
        message_type: Option<String>,
        payload: String,
    ) -> Result<String, PluginError> {
        let Some(to) = self.replying_to.clone() else {
            return Err(PluginError::Rejected("no message is being handled".into()));
        };
        let message_type = message_type.or_else(|| Some("REPORT".into()));
        self.send_as_agent(&to, message_type, None, payload)
    }

    fn broadcast(
        &mut self,
        message_type: Option<String>,
        payload: String,
    ) -> Result<u32, PluginError> {
        let recipients: Vec<String> = self
            .comm
            .agents()
            .map_err(|e| PluginError::Rejected(e.to_string()))?
            .into_iter()
            .filter(|a| !a.eq_ignore_ascii_case(&self.agent) && self.policy.may_send_to(a))
            .collect();
        self.charge(recipients.len() as u32, &payload)?;
        let message_type = message_type.or_else(|| Some("ALERT".into()));
        for to in &recipients {
            let request = SendRequest {
                from: self.agent.clone(),
                to: to.clone(),
                message_type: message_type.clone(),
                priority: Some(fmes_queue::queue::BROADCAST_PRIORITY),
                payload: payload.clone(),
                max_payload_bytes: Some(self.policy.max_bytes_per_message),
                id: None,
            };
            self.comm
                .send(&request)
                .map_err(|e| PluginError::Rejected(e.to_string()))?;
        }
        Ok(recipients.len() as u32)
    }

    fn peek(&mut self) -> u32 {
        let agent = self.agent.clone();
        self.comm.peek(&agent).unwrap_or(0)
    }

    fn log(&mut self, level: Level, text: String) {
        // Log lines count against the bytes a plugin may pass per message
        // (at least LOG_LINE_CHARGE each); past the cap they are dropped,
        // and a line is cut at 4 KiB.
        let charge = (text.len() as u64).max(LOG_LINE_CHARGE);
        if self.bytes + charge > self.policy.max_bytes_per_message {
            return;
        }
        self.bytes += charge;
        let text: String = text.chars().take(LOG_LINE_CAP).collect();
        let level = match level {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        let line = format!(
            "[{}] {level}: {}",
            self.agent,
            super::runner::printable_line(&text)
        );
        self.logs.push(line);
    }
}
