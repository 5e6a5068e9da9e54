//! The small file-system surface the queue logic is written against.
//!
//! Paths are relative to the queue's root (`_COMM`), always written with `/`,
//! and never contain `..` or start with `/`: [`crate::names`] builds every one
//! of them from validated parts. The queue never follows a symbolic link it
//! finds inside `_COMM`: entries are inspected with [`FileSystem::entry_kind`],
//! which does not follow links, and reads refuse links.
//!
//! Two backends: [`StdFs`] on `std::fs` (native, for tests and the native
//! baseline) and, in the component, `WasiFs` calling `wasi:filesystem`
//! directly, which lists a directory even while entries vanish from it and
//! makes fewer calls than the standard library.

use std::io;
use std::time::SystemTime;

#[cfg(test)]
pub(crate) mod mem_fs;
mod std_fs;
#[cfg(target_os = "linux")]
pub mod unnamed;
#[cfg(target_family = "wasm")]
mod wasi_fs;

pub use std_fs::StdFs;
#[cfg(target_family = "wasm")]
pub use wasi_fs::WasiFs;

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

/// Which step of [`FileSystem::publish`] failed.
#[derive(Debug)]
pub enum PublishError {
    /// The folder to publish in is missing (`NotFound`) or is not a folder
    /// (a symbolic link is not followed); nothing was written.
    Folder(io::Error),
    /// Creating or writing the temporary file (`AlreadyExists` if its name
    /// is taken); a partly written file may remain.
    Write(io::Error),
    /// Linking it under its final name (`AlreadyExists` if that is taken);
    /// the temporary file is removed.
    Link(io::Error),
    /// Flushing the folder after the file was published (with `durable`):
    /// the file has its final name, which may not be on disk.
    Flush(io::Error),
}

/// File status, without following symbolic links.
#[derive(Debug, Clone, Copy)]
pub struct Status {
    pub kind: EntryKind,
    pub modified: SystemTime,
}

/// `list` for a backend whose own listing is `for_each_entry`.
fn collect_entries(fs: &impl FileSystem, dir: &str) -> io::Result<Vec<DirEntry>> {
    let mut entries = Vec::new();
    fs.for_each_entry(dir, &mut |name, kind| {
        entries.push(DirEntry {
            name: name.to_string(),
            kind,
        })
    })?;
    Ok(entries)
}

/// The name a new file `name` is written under before it is published,
/// where it cannot be written with no name: `.json` replaced by `.tmp`, the
/// suffix that keeps readers away and that cleanup removes when stale.
pub fn temporary_name(name: &str) -> String {
    [name.strip_suffix(".json").unwrap_or(name), ".tmp"].concat()
}

/// [`FileSystem::publish`] through the temporary name, with the backend's
/// own calls; a backend that can publish with fewer calls does so first.
fn publish_named(
    fs: &(impl FileSystem + ?Sized),
    dir: &str,
    name: &str,
    bytes: &[u8],
    durable: bool,
) -> Result<(), PublishError> {
    match fs.folder_kind(dir) {
        Ok(EntryKind::Dir) => {}
        Ok(_) => {
            return Err(PublishError::Folder(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{dir} is not a folder"),
            )));
        }
        Err(e) => return Err(PublishError::Folder(e)),
    }
    let temporary = [dir, "/", &temporary_name(name)].concat();
    fs.write_new(&temporary, bytes, durable)
        .map_err(PublishError::Write)?;
    let linked = fs.link(&temporary, &[dir, "/", name].concat());
    let _ = fs.remove_file(&temporary);
    linked.map_err(PublishError::Link)?;
    if durable {
        fs.sync_dir(dir).map_err(PublishError::Flush)?;
    }
    Ok(())
}

/// Operations the queue needs, relative to the queue's root.
pub trait FileSystem {
    /// Lists a directory. Names that are not UTF-8 are skipped: no valid
    /// mailbox or message name can contain them.
    fn list(&self, dir: &str) -> io::Result<Vec<DirEntry>>;
    /// Hands each entry of a directory (its name and kind) to `each` as it
    /// is listed, so that a caller that keeps few of them (a count, the
    /// first few in order) never holds a huge mailbox's listing at once, nor
    /// copies the names it does not keep. Same entries as `list`.
    fn for_each_entry(&self, dir: &str, each: &mut dyn FnMut(&str, EntryKind)) -> io::Result<()> {
        for entry in self.list(dir)? {
            each(&entry.name, entry.kind);
        }
        Ok(())
    }
    /// Creates a directory; `AlreadyExists` if anything has that name.
    fn create_dir(&self, path: &str) -> io::Result<()>;
    /// Status of a path, not following a final symbolic link.
    fn status(&self, path: &str) -> io::Result<Status>;
    /// What `dir` is, not following a final symbolic link: asked of a
    /// folder the caller is about to work in (a mailbox), so a backend that
    /// opens folders may open it now and answer from that.
    fn folder_kind(&self, dir: &str) -> io::Result<EntryKind> {
        Ok(self.status(dir)?.kind)
    }
    /// Reads a regular file (never through a symbolic link), at most `cap` bytes.
    fn read(&self, path: &str, cap: u64) -> io::Result<ReadOutcome>;
    /// Reads the files `names` inside the folder `dir` as `read` does, in
    /// order; a backend may answer for fewer than all (at least one), and
    /// the caller asks again for the rest.
    fn read_some(&self, dir: &str, names: &[&str], cap: u64) -> Vec<io::Result<ReadOutcome>> {
        names
            .iter()
            .map(|name| self.read(&format!("{dir}/{name}"), cap))
            .collect()
    }
    /// Creates a new file holding `bytes`; `AlreadyExists` if the name is
    /// taken. With `durable`, its data is on disk before this returns.
    fn write_new(&self, path: &str, bytes: &[u8], durable: bool) -> io::Result<()>;
    /// Publishes the new file `dir/name`, where `dir` must be a folder (not
    /// a symbolic link to one): writes `bytes` to the new file named
    /// [`temporary_name`] of `name` (as `write_new`), links it as `name`,
    /// which never replaces anything, then removes the temporary name,
    /// whether the link was made or not. A backend that can make a file
    /// with no name (Linux's `O_TMPFILE`, see [`unnamed`]) writes that
    /// instead and links it as `name`. With `durable`, the file and the
    /// folder are flushed, so the new name is on disk too. A temporary name
    /// that cannot be removed after the link is left for cleanup.
    ///
    /// The folder is checked here, not by the caller first: a backend that
    /// must open it to write in it then answers both with one opening.
    fn publish(
        &self,
        dir: &str,
        name: &str,
        bytes: &[u8],
        durable: bool,
    ) -> Result<(), PublishError> {
        publish_named(self, dir, name, bytes, durable)
    }
    /// Renames a file or directory. Callers only rename to names that no
    /// other file can have, so this never replaces anything.
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// True if two paths name the same file (hard links of one file).
    fn same_file(&self, a: &str, b: &str) -> io::Result<bool>;
    /// Makes a directory's entries (names created, renamed, removed) durable.
    fn sync_dir(&self, dir: &str) -> io::Result<()>;
    /// How many names (hard links) the file at `path` has.
    fn link_count(&self, path: &str) -> io::Result<u64>;
    /// Gives the file at `from` the extra name `to`; `AlreadyExists` if `to`
    /// is taken. This is how a file is published without ever replacing another.
    fn link(&self, from: &str, to: &str) -> io::Result<()>;
    /// Removes a file name.
    fn remove_file(&self, path: &str) -> io::Result<()>;
}
