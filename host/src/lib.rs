//! fmes: F-MES file mailboxes, run through a sandboxed WebAssembly component.
//!
//! Every queue operation runs inside the `fmes:queue` component (built from
//! `guest/`), whose only reachable directory is the `_COMM` folder, preopened
//! as `/_COMM`. [`Comm`] is the typed API; [`cli`] is the `fmes` command.

mod bindings;
pub mod cli;

pub mod comm;
mod entries;
pub mod error;
mod folders;
mod listing;
pub mod plugin;
mod reads;
pub mod runtime;
mod sandbox;
mod stderr;
pub mod watch;
mod writes;

pub use comm::Comm;
pub use error::{Error, QueueError};
pub use fmes_queue::dead::DeadLetterPage;
pub use fmes_queue::message::OrderKey;
pub use fmes_queue::{
    ClaimBatch, Claimed, CleanupReport, DeadLetter, MailboxStats, MalformedFile, Message, Options,
    Page, Received, RecoverReport, Released, SendRequest,
};
pub use runtime::{Limits, Runtime};
