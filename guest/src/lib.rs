//! The F-MES queue: every operation of the format (FORMAT.md) over a small
//! file-system trait.
//!
//! The same code runs natively (unit tests, the native baseline) and as the
//! `wasm32-wasip2` component that the `fmes` host runs in a sandbox, where
//! its only reachable directory is the preopen `/_COMM`.

pub mod claims;
pub mod clock;
pub mod dead;
pub mod error;
pub mod fs;
pub mod message;
pub mod names;
pub mod pages;
pub mod queue;
mod settle;
pub mod stats;

#[cfg(test)]
mod answer_tests;
#[cfg(test)]
mod counting_fs;
#[cfg(test)]
mod dead_tests;
#[cfg(test)]
mod hook_fs;
#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod pages_tests;
#[cfg(test)]
mod partial_failure_tests;
#[cfg(test)]
mod queue_tests;
#[cfg(test)]
mod send_once_tests;
#[cfg(test)]
mod settle_tests;

#[cfg(target_family = "wasm")]
mod component;

pub use claims::{ClaimBatch, ClaimMemo, Claimed, RecoverReport, Released};
pub use dead::DeadLetter;
pub use error::QueueError;
pub use fs::{FileSystem, StdFs};
pub use message::Message;
pub use pages::{Page, ReadingCache};
pub use queue::{CleanupReport, MalformedFile, Options, Queue, Received, SendRequest};
pub use stats::MailboxStats;
