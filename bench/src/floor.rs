//! The file system's floor: the system calls of a row alone, made straight
//! from Rust with no queue logic (no names checked or made, no JSON, no
//! order beyond a sort of names). Nothing that keeps the format's files can
//! do a row faster on the same machine, so Python's time over the floor's
//! is the most any implementation could beat Python by.

use std::collections::BinaryHeap;
use std::ffi::CStr;
use std::hint::black_box;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir};

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

/// `n` crash-safe sends into `mailbox` (an empty folder, opened once): each
/// one a new unnamed file (`O_TMPFILE`) written, linked under its final name
/// (which never replaces a file) and closed. The portable way, a temporary
/// name linked or renamed and then removed, makes two more changes to the
/// folder; the Python writer renames, which may replace another message.
pub fn sends(mailbox: &Path, n: usize) -> Result<Duration> {
    let start = Instant::now();
    let folder = rustix::fs::open(
        mailbox,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut name = Vec::new();
    for i in 0..n {
        name.clear();
        write!(name, "{i}.json\0")?;
        let file = rustix::fs::openat(
            &folder,
            c".",
            OFlags::WRONLY | OFlags::TMPFILE | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )?;
        let mut written = 0;
        while written < MESSAGE.len() {
            written += rustix::io::write(&file, &MESSAGE[written..])?;
        }
        rustix::fs::linkat(
            &file,
            c"",
            &folder,
            CStr::from_bytes_with_nul(&name)?,
            AtFlags::EMPTY_PATH,
        )?;
    }
    Ok(start.elapsed())
}

/// Bytes of one `getdents` call: glibc's buffer and the host's, give or take.
/// rustix's `Dir` starts at 768 bytes and grows, which makes many more calls
/// and is slower than either (the floor must not be).
const LISTING_BYTES: usize = 32 * 1024;

/// Each entry of `mailbox` (its name, and whether the listing says it is a
/// regular file), borrowed from the listing buffer: no copy per entry.
fn each_entry(mailbox: &Path, mut each: impl FnMut(&[u8], bool)) -> Result<()> {
    let folder = rustix::fs::open(
        mailbox,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut buffer = Vec::with_capacity(LISTING_BYTES);
    let mut entries = RawDir::new(&folder, buffer.spare_capacity_mut());
    while let Some(entry) = entries.next() {
        let entry = entry?;
        each(
            entry.file_name().to_bytes(),
            entry.file_type() == FileType::RegularFile,
        );
    }
    Ok(())
}

/// Counting the `*.json` files of `mailbox` (types from the listing itself).
pub fn count(mailbox: &Path) -> Result<Duration> {
    let start = Instant::now();
    let mut count = 0usize;
    each_entry(mailbox, |name, is_file| {
        if is_file && name.ends_with(b".json") {
            count += 1;
        }
    })?;
    black_box(count);
    Ok(start.elapsed())
}

/// Listing `mailbox`, then reading the first `first` `*.json` files in name
/// order (all of them if `None`), without parsing them. Only the names kept
/// so far are copied (the largest kept is dropped for a smaller one).
pub fn read(mailbox: &Path, first: Option<usize>) -> Result<Duration> {
    let start = Instant::now();
    let first = first.unwrap_or(usize::MAX);
    let mut kept: BinaryHeap<Vec<u8>> = BinaryHeap::new();
    each_entry(mailbox, |name, _| {
        if !name.ends_with(b".json") {
            return;
        }
        if kept.len() < first {
            kept.push(name.to_vec());
        } else if kept.peek().is_some_and(|largest| name < largest.as_slice()) {
            kept.pop();
            kept.push(name.to_vec());
        }
    })?;
    let names = kept.into_sorted_vec();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut bytes = 0usize;
    let mut path = mailbox.as_os_str().as_encoded_bytes().to_vec();
    path.push(b'/');
    let prefix = path.len();
    for name in &names {
        path.truncate(prefix);
        path.extend_from_slice(name);
        let file = rustix::fs::open(
            path.as_slice(),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        // One read for a file shorter than the buffer: a short read from a
        // regular file is its end.
        loop {
            let n = rustix::io::read(&file, &mut buffer)?;
            bytes += n;
            if n < buffer.len() {
                break;
            }
        }
    }
    black_box(bytes);
    Ok(start.elapsed())
}
