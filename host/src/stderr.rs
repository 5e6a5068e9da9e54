//! Lines to stderr, each written in one call.
//!
//! Stderr is unbuffered, and `eprintln!` or `writeln!` on it write a line in
//! pieces (one `write` per formatted part): another process writing to the
//! same terminal or log (several agents and runners often share one) can
//! land between them, in the middle of a line.

use std::io::Write;

/// Writes `text` (whole lines, ending in a newline) to stderr in one call.
pub(crate) fn write(text: &str) {
    // Nowhere to report a failed write to stderr itself.
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// `eprintln!` in one write.
macro_rules! line {
    ($($arg:tt)*) => {
        $crate::stderr::write(&format!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use line;
