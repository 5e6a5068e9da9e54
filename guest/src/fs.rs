//! The small file-system surface the queue logic is written against.
//!
//! Paths are relative to the queue's root (`_COMM`), always written with `/`,
//! and never contain `..` or start with `/`: [`crate::names`] builds every one
//! of them from validated parts. The queue never follows a symbolic link it
//! finds inside `_COMM`: entries are inspected with [`FileSystem::entry_kind`],
//! which does not follow links, and reads refuse links.

use std::io;
use std::time::SystemTime;

/// What a directory entry is, without following symbolic links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Other,
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub kind: EntryKind,
}

/// Result of reading a file with a size cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOutcome {
    Bytes(Vec<u8>),
    /// The file holds more than the cap; nothing more than the cap was read.
    TooLarge,
}

/// File status, without following symbolic links.
#[derive(Debug, Clone, Copy)]
pub struct Status {
    pub kind: EntryKind,
    pub modified: SystemTime,
}

/// Operations the queue needs, relative to the queue's root.
pub trait FileSystem {
    /// Lists a directory. Names that are not UTF-8 are skipped: no valid
    /// mailbox or message name can contain them.
    fn list(&self, dir: &str) -> io::Result<Vec<DirEntry>>;
    /// Creates a directory; `AlreadyExists` if anything has that name.
    fn create_dir(&self, path: &str) -> io::Result<()>;
    /// Status of a path, not following a final symbolic link.
    fn status(&self, path: &str) -> io::Result<Status>;
    /// Reads a regular file (never through a symbolic link), at most `cap` bytes.
    fn read(&self, path: &str, cap: u64) -> io::Result<ReadOutcome>;
    /// Creates a new file holding `bytes`; `AlreadyExists` if the name is taken.
    fn write_new(&self, path: &str, bytes: &[u8]) -> io::Result<()>;
    /// Gives the file at `from` the extra name `to`; `AlreadyExists` if `to`
    /// is taken. This is how a file is published without ever replacing another.
    fn link(&self, from: &str, to: &str) -> io::Result<()>;
    /// Removes a file name.
    fn remove_file(&self, path: &str) -> io::Result<()>;
}

/// The backend on `std::fs`: natively under any directory, and in the
/// component under the preopen `/_COMM`.
#[derive(Debug, Clone)]
pub struct StdFs {
    root: String,
}

impl StdFs {
    /// A backend whose root is `root` (a path without a trailing `/`).
    pub fn new(root: impl Into<String>) -> Self {
        let mut root = root.into();
        while root.len() > 1 && root.ends_with('/') {
            root.pop();
        }
        StdFs { root }
    }

    fn path(&self, relative: &str) -> String {
        if relative.is_empty() {
            self.root.clone()
        } else {
            format!("{}/{}", self.root, relative)
        }
    }
}

fn kind_of(file_type: std::fs::FileType) -> EntryKind {
    if file_type.is_symlink() {
        EntryKind::Symlink
    } else if file_type.is_dir() {
        EntryKind::Dir
    } else if file_type.is_file() {
        EntryKind::File
    } else {
        EntryKind::Other
    }
}

impl FileSystem for StdFs {
    fn list(&self, dir: &str) -> io::Result<Vec<DirEntry>> {
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(self.path(dir))? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            // A failed file_type means the entry vanished or is unreadable:
            // report it as Other so callers skip it rather than fail.
            let kind = entry.file_type().map(kind_of).unwrap_or(EntryKind::Other);
            entries.push(DirEntry { name, kind });
        }
        Ok(entries)
    }

    fn create_dir(&self, path: &str) -> io::Result<()> {
        std::fs::create_dir(self.path(path))
    }

    fn status(&self, path: &str) -> io::Result<Status> {
        let meta = std::fs::symlink_metadata(self.path(path))?;
        Ok(Status {
            kind: kind_of(meta.file_type()),
            modified: meta.modified()?,
        })
    }

    fn read(&self, path: &str, cap: u64) -> io::Result<ReadOutcome> {
        use std::io::Read;
        let file = open_no_follow(&self.path(path))?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        if meta.len() > cap {
            return Ok(ReadOutcome::TooLarge);
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        // The file may grow after the size check: never read past the cap.
        file.take(cap + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > cap {
            return Ok(ReadOutcome::TooLarge);
        }
        Ok(ReadOutcome::Bytes(bytes))
    }

    fn write_new(&self, path: &str, bytes: &[u8]) -> io::Result<()> {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(self.path(path))?;
        file.write_all(bytes)
    }

    fn link(&self, from: &str, to: &str) -> io::Result<()> {
        std::fs::hard_link(self.path(from), self.path(to))
    }

    fn remove_file(&self, path: &str) -> io::Result<()> {
        std::fs::remove_file(self.path(path))
    }
}

/// Opens a file for reading, refusing a symbolic link as the last component.
///
/// Natively this is `O_NOFOLLOW`, so a link swapped in after a check is still
/// refused. In the component the WASI host already confines every path to
/// the preopen, and a link is refused by the status check before the read.
fn open_no_follow(path: &str) -> io::Result<std::fs::File> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
    }
    #[cfg(not(unix))]
    {
        let meta = std::fs::symlink_metadata(path)?;
        if meta.file_type().is_symlink() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a symbolic link",
            ));
        }
        std::fs::File::open(path)
    }
}
