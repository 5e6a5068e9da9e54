//! Write an fmes agent plugin.
//!
//! ```ignore
//! struct Echo;
//!
//! impl fmes_plugin::Agent for Echo {
//!     fn handle(message: fmes_plugin::Message) -> Result<(), String> {
//!         fmes_plugin::reply(None, &message.payload).map(drop)
//!     }
//! }
//!
//! fmes_plugin::export_agent!(Echo);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` (crate type
//! `cdylib`) and run it with `fmes agent run target/.../echo.wasm --as NAME`.

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "agent-plugin",
        pub_export_macro: true,
        export_macro_name: "__export_handler",
        default_bindings_module: "fmes_plugin::bindings",
    });
}

pub use bindings::exports::fmes::queue::handler::Guest as __Guest;
use bindings::fmes::queue::mailbox;
pub use bindings::fmes::queue::mailbox::{Level, PluginError};
pub use bindings::fmes::queue::types::Message;

/// An agent: called once with `setup`, then with each message in turn.
pub trait Agent {
    /// Runs once before the first message; an error stops the runner.
    fn setup() -> Result<(), String> {
        Ok(())
    }

    /// Handles one message: `Ok` acknowledges it, an error releases it.
    fn handle(message: Message) -> Result<(), String>;
}

/// Exports a type implementing [`Agent`] as the plugin's handler.
#[macro_export]
macro_rules! export_agent {
    ($agent:ty) => {
        struct __FmesPluginHandler;
        impl $crate::__Guest for __FmesPluginHandler {
            fn setup() -> Result<(), String> {
                <$agent as $crate::Agent>::setup()
            }
            fn handle(message: $crate::Message) -> Result<(), String> {
                <$agent as $crate::Agent>::handle(message)
            }
        }
        $crate::bindings::__export_handler!(__FmesPluginHandler);
    };
}

/// The agent name this plugin acts as.
pub fn whoami() -> String {
    mailbox::whoami()
}

/// Sends a message to `to` (type `TASK` and priority 5 unless given);
/// returns its file name.
pub fn send(
    to: &str,
    message_type: Option<&str>,
    priority: Option<u8>,
    payload: &str,
) -> Result<String, PluginError> {
    mailbox::send(to, message_type, priority, payload)
}

/// Answers the sender of the message being handled (type `REPORT` unless given).
pub fn reply(message_type: Option<&str>, payload: &str) -> Result<String, PluginError> {
    mailbox::reply(message_type, payload)
}

/// Sends a copy to every agent the policy allows; returns how many.
pub fn broadcast(message_type: Option<&str>, payload: &str) -> Result<u32, PluginError> {
    mailbox::broadcast(message_type, payload)
}

/// How many messages wait in this plugin's own mailbox.
pub fn peek() -> u32 {
    mailbox::peek()
}

/// Writes a line to the runner's log.
pub fn log(level: Level, text: &str) {
    mailbox::log(level, text)
}
