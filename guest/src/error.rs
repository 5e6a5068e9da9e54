//! The queue's errors, one case per case of the WIT `queue-error` variant.

use std::fmt;

/// Everything a queue operation can fail with. Each case names the bad value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("invalid agent name {0:?}: use 1 to 64 ASCII letters, digits, '-' or '_'")]
    InvalidAgentName(String),
    #[error(
        "unknown agent {name:?}: it has no mailbox (known agents: {})",
        KnownAgents(known)
    )]
    UnknownAgent { name: String, known: Vec<String> },
    #[error("invalid consumer name {0:?}: use 1 to 64 ASCII letters, digits, '-' or '_'")]
    InvalidConsumer(String),
    #[error("invalid priority {0}: use 1 (most urgent) to 9 (least)")]
    InvalidPriority(u8),
    #[error("invalid message type {0:?}: use 1 to 32 ASCII letters, digits, '-' or '_'")]
    InvalidType(String),
    #[error("invalid payload: not valid JSON: {0}")]
    InvalidPayload(String),
    #[error(
        "invalid message id {0:?}: use 1 to 64 ASCII letters, digits, '-' or '_' (a UUID fits)"
    )]
    InvalidMessageId(String),
    #[error("payload too large: {size} bytes, the limit is {limit} bytes")]
    PayloadTooLarge { size: u64, limit: u64 },
    #[error(
        "invalid message file name {0:?}: give a plain *.json file name from the mailbox, not a path"
    )]
    InvalidFileName(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("invalid _COMM layout: {0}")]
    InvalidLayout(String),
    #[error("I/O error: {0}")]
    Io(String),
}

struct KnownAgents<'a>(&'a [String]);

impl fmt::Display for KnownAgents<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("none; create mailboxes with init")
        } else {
            f.write_str(&self.0.join(", "))
        }
    }
}

impl QueueError {
    /// An OS error, with the operation and the `_COMM`-relative path it was about.
    pub fn io(operation: &str, path: &str, err: std::io::Error) -> Self {
        if path.is_empty() {
            QueueError::Io(format!("{operation} _COMM: {err}"))
        } else {
            QueueError::Io(format!("{operation} _COMM/{path}: {err}"))
        }
    }
}
