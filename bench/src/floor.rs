//! The file system's floor: the system calls of a row alone, made straight
//! from Rust with no queue logic (no names checked or made, no JSON, no
//! order beyond a sort of names). Nothing that keeps the format's files can
//! do a row faster on the same machine, so Python's time over the floor's
//! is the most any implementation could beat Python by.

use std::fs::{File, OpenOptions};
use std::hint::black_box;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;

/// A stored message of the size a bench send writes.
const MESSAGE: &[u8] = br#"{
  "id": "0f8fad5b-d9cb-469f-a165-70867728950e",
  "from": "bench",
  "to": "sink",
  "type": "TASK",
  "priority": 5,
  "timestamp": "2026-11-24T05:00:00Z",
  "payload": {
    "seq": 1234
  }
}
"#;

/// `n` crash-safe sends into `mailbox` (an empty folder): each one a new
/// temporary file created exclusively, written and closed, linked under its
/// final name (which never replaces a file) and unlinked. The Python writer
/// instead renames, which may replace another message.
pub fn sends(mailbox: &Path, n: usize) -> Result<Duration> {
    let start = Instant::now();
    for i in 0..n {
        let temporary = mailbox.join(format!("{i}.tmp"));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temporary)?;
        file.write_all(MESSAGE)?;
        drop(file);
        std::fs::hard_link(&temporary, mailbox.join(format!("{i}.json")))?;
        std::fs::remove_file(&temporary)?;
    }
    Ok(start.elapsed())
}

/// Counting the `*.json` files of `mailbox` (types from the listing itself).
pub fn count(mailbox: &Path) -> Result<Duration> {
    let start = Instant::now();
    let mut count = 0usize;
    for entry in std::fs::read_dir(mailbox)? {
        let entry = entry?;
        if entry.file_name().as_encoded_bytes().ends_with(b".json") && entry.file_type()?.is_file()
        {
            count += 1;
        }
    }
    black_box(count);
    Ok(start.elapsed())
}

/// Listing `mailbox`, then reading the first `first` `*.json` files in name
/// order (all of them if `None`), without parsing them.
pub fn read(mailbox: &Path, first: Option<usize>) -> Result<Duration> {
    let start = Instant::now();
    let mut names = Vec::new();
    for entry in std::fs::read_dir(mailbox)? {
        let name = entry?.file_name();
        if name.as_encoded_bytes().ends_with(b".json") {
            names.push(name);
        }
    }
    let first = first.unwrap_or(names.len()).min(names.len());
    if first < names.len() {
        names.select_nth_unstable(first);
        names.truncate(first);
    }
    names.sort_unstable();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut bytes = 0usize;
    for name in &names {
        let mut file = File::open(mailbox.join(name))?;
        // One read for a file shorter than the buffer: a short read from a
        // regular file is its end.
        loop {
            let n = file.read(&mut buffer)?;
            bytes += n;
            if n < buffer.len() {
                break;
            }
        }
    }
    black_box(bytes);
    Ok(start.elapsed())
}
