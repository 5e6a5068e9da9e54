//! Errors of the host library.

use std::path::PathBuf;
use std::time::Duration;

pub use fmes_queue::QueueError;

/// Everything an fmes operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The queue refused the operation (bad input, unknown agent, I/O, ...).
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The `_COMM` folder could not be opened.
    #[error("cannot open the _COMM folder {}", path.display())]
    OpenComm {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The `_COMM` folder does not exist.
    #[error("no _COMM folder at {}; create it with `fmes init`", path.display())]
    MissingComm { path: PathBuf },
    /// The component could not be compiled, cached or instantiated.
    #[error("cannot load the fmes queue component: {0}")]
    Load(String),
    /// A call ran past the time limit and was stopped.
    #[error("the queue component was stopped: it ran past its time limit of {0:?}")]
    TimeLimit(Duration),
    /// A call tried to grow memory past the memory limit and was stopped.
    #[error(
        "the queue component was stopped: it tried to use more than its memory limit of {0} bytes"
    )]
    MemoryLimit(u64),
    /// Watching a mailbox for changes failed.
    #[error("cannot watch the mailbox: {0}")]
    Watch(String),
    /// The component trapped (a bug in it); `stderr` holds what it printed.
    #[error("the queue component failed: {message}{}", if stderr.is_empty() { String::new() } else { format!("; it printed: {stderr}") })]
    Trap { message: String, stderr: String },
}
