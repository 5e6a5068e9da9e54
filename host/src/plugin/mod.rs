//! Untrusted agent plugins: WebAssembly components of the `agent-plugin`
//! world, each run in its own store with no file system, environment,
//! arguments, stdin or network, under a time limit, a memory limit and the
//! caps of its [`Policy`].

mod bindings;
pub mod pacing;
pub mod policy;
mod runner;
mod state;

pub use pacing::ClaimPacing;
pub use policy::{Policy, PolicyError};
pub use runner::{AgentRunner, HandleOutcome, PluginError, RunReport};
