//! The backend in the component: `wasi:filesystem` called directly on the
//! preopened `/_COMM` descriptor.
//!
//! Compared with `std::fs` (which goes through wasi-libc), this makes one
//! WASI call per operation where it can, passes paths relative to the one
//! root descriptor, and lists directories entry by entry: the host stats each
//! entry as it lists, so an entry that vanishes mid-listing (a sender's
//! temporary file) is an error for that entry alone, which is skipped,
//! instead of ending the listing as it does in the standard library.
//!
//! Built with the `hosted` feature (the `queue-hosted` world), it opens
//! folders, lists them, reads message files, creates new ones and renames,
//! links and removes names through the fmes host's `fmes:queue/folders`,
//! `listing`, `reads`, `writes` and `entries` instead: hundreds of entries
//! or many files per call rather than several calls per file, and each
//! change a system call.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wasip2::filesystem::preopens::get_directories;
use wasip2::filesystem::types::{
    Descriptor, DescriptorFlags, DescriptorStat, DescriptorType, ErrorCode, OpenFlags, PathFlags,
};

use super::{DirEntry, EntryKind, FileSystem, ReadOutcome, Status};
// Renames, links, removals and folder flushes through the fmes host: each
// a system call, where wasmtime-wasi's enters an async runtime for it.
#[cfg(feature = "hosted")]
use crate::component::fmes::queue::entries;

/// How much one `read` call asks for.
const READ_CHUNK: u64 = 1 << 20;
/// Folders kept open at most by one `WasiFs`. An operation works in a few
/// (a mailbox, its `.inflight/`, `ARCHIVE/` and its `.incoming/`); one that
/// walks every mailbox (`recover`, `stats`) would otherwise hold a
/// descriptor for each of thousands, past the process's limit on open files.
const OPEN_FOLDERS: usize = 16;

/// The backend on the host's preopen named `root`.
pub struct WasiFs {
    root: Rc<Descriptor>,
    /// Folders opened so far, by path. A `WasiFs` lives for one call of the
    /// component, so an operation that touches a folder several times (a
    /// send creates, links and removes in the mailbox) opens it once: the
    /// host resolves a multi-part path by opening its folders one by one for
    /// every call, while a name inside an open folder is resolved at once.
    ///
    /// Kept in the order opened and searched from the newest: the folders
    /// an operation is working in are the last it opened, and a few string
    /// comparisons cost less than hashing a path in wasm.
    folders: RefCell<Vec<(String, Rc<Descriptor>)>>,
}

thread_local! {
    /// Preopens are handed over once per instance; keep the descriptor.
    static PREOPEN: std::cell::OnceCell<Option<Rc<Descriptor>>> = const { std::cell::OnceCell::new() };
}

impl WasiFs {
    /// The preopen whose guest path is `root`.
    pub fn preopen(root: &str) -> io::Result<WasiFs> {
        let found = PREOPEN.with(|cell| {
            cell.get_or_init(|| {
                get_directories()
                    .into_iter()
                    .find(|(_, path)| path == root)
                    .map(|(descriptor, _)| Rc::new(descriptor))
            })
            .clone()
        });
        match found {
            Some(root) => Ok(WasiFs {
                root,
                folders: RefCell::new(Vec::new()),
            }),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("the host did not preopen {root}"),
            )),
        }
    }

    /// The folder at `dir` (relative to the root; empty for the root),
    /// opened once per `WasiFs`.
    fn folder(&self, dir: &str) -> io::Result<Rc<Descriptor>> {
        if dir.is_empty() {
            return Ok(Rc::clone(&self.root));
        }
        let found = self
            .folders
            .borrow()
            .iter()
            .rev()
            .find(|(path, _)| path == dir)
            .map(|(_, open)| Rc::clone(open));
        if let Some(open) = found {
            return Ok(open);
        }
        let opened = Rc::new(open_folder(&self.root, dir).map_err(to_io)?);
        let mut folders = self.folders.borrow_mut();
        if folders.len() == OPEN_FOLDERS {
            // The oldest is closed (once no caller still holds it) and
            // opened again if it is needed again.
            folders.remove(0);
        }
        folders.push((dir.to_string(), Rc::clone(&opened)));
        Ok(opened)
    }

    /// The open folder that holds `path`, and the name in it.
    fn parent<'p>(&self, path: &'p str) -> io::Result<(Rc<Descriptor>, &'p str)> {
        match path.rsplit_once('/') {
            Some((dir, name)) => Ok((self.folder(dir)?, name)),
            None => Ok((Rc::clone(&self.root), path)),
        }
    }
}

/// Opens the folder at `dir` inside `root`.
#[cfg(not(feature = "hosted"))]
fn open_folder(root: &Descriptor, dir: &str) -> Result<Descriptor, ErrorCode> {
    root.open_at(
        PathFlags::empty(),
        dir,
        OpenFlags::DIRECTORY,
        // Not MUTATE_DIRECTORY: jco's preview2-shim refuses to open with it,
        // and wasmtime grants a folder opened under a writable preopen its
        // writes without it.
        DescriptorFlags::READ,
    )
}

/// Opens the folder at `dir` inside `root`, through the fmes host: no
/// `stat` of it, and no symbolic link followed along the way.
#[cfg(feature = "hosted")]
fn open_folder(root: &Descriptor, dir: &str) -> Result<Descriptor, ErrorCode> {
    crate::component::fmes::queue::folders::open_folder(root, dir)
}

fn to_io(code: ErrorCode) -> io::Error {
    let kind = match code {
        ErrorCode::NoEntry => io::ErrorKind::NotFound,
        ErrorCode::Exist => io::ErrorKind::AlreadyExists,
        ErrorCode::Access | ErrorCode::NotPermitted | ErrorCode::ReadOnly => {
            io::ErrorKind::PermissionDenied
        }
        ErrorCode::NotDirectory => io::ErrorKind::NotADirectory,
        ErrorCode::IsDirectory => io::ErrorKind::IsADirectory,
        ErrorCode::InsufficientSpace => io::ErrorKind::StorageFull,
        ErrorCode::Unsupported => io::ErrorKind::Unsupported,
        ErrorCode::Loop => {
            return io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a symbolic link (not followed)",
            );
        }
        // WASI has no code of its own for too many open files: the fmes
        // host reports it as this one, whose WASI text ("Not enough space")
        // would send the user looking at the disk.
        ErrorCode::InsufficientMemory => {
            return io::Error::new(
                io::ErrorKind::OutOfMemory,
                "not enough memory, or too many files open",
            );
        }
        _ => io::ErrorKind::Other,
    };
    // WASI's texts read "Permission denied, similar to `EACCES` in POSIX.":
    // the user wants the first part, as a native error would say it.
    let text = code.message();
    let short = text.split(", similar to").next().unwrap_or(text);
    io::Error::new(kind, short.trim_end_matches('.').to_string())
}

fn kind_of(kind: DescriptorType) -> EntryKind {
    match kind {
        DescriptorType::RegularFile => EntryKind::File,
        DescriptorType::Directory => EntryKind::Dir,
        DescriptorType::SymbolicLink => EntryKind::Symlink,
        _ => EntryKind::Other,
    }
}

fn modified(stat: &DescriptorStat) -> SystemTime {
    // A file system that keeps no modification time makes files look as
    // old as can be, so cleanup does not keep them forever.
    stat.data_modification_timestamp
        .map(|t| UNIX_EPOCH + Duration::new(t.seconds, t.nanoseconds))
        .unwrap_or(UNIX_EPOCH)
}

impl FileSystem for WasiFs {
    fn list(&self, dir: &str) -> io::Result<Vec<DirEntry>> {
        super::collect_entries(self, dir)
    }

    #[cfg(feature = "hosted")]
    fn for_each_entry(&self, dir: &str, each: &mut dyn FnMut(&str, EntryKind)) -> io::Result<()> {
        use crate::component::fmes::queue::listing::list_folder;
        let folder = self.folder(dir)?;
        let listing = list_folder(&folder).map_err(to_io)?;
        loop {
            let batch = listing.next_batch().map_err(to_io)?;
            if batch.types.is_empty() {
                return Ok(());
            }
            // Lengths and types pair up in order (a batch whose counts
            // disagreed, or whose lengths ran past the names or into a
            // character, would end early, never misread).
            let mut names = batch.names.as_str();
            for (&length, type_) in batch.lengths.iter().zip(batch.types) {
                let Some((name, rest)) = names.split_at_checked(usize::from(length)) else {
                    break;
                };
                names = rest;
                each(name, kind_of(type_));
            }
        }
    }

    #[cfg(not(feature = "hosted"))]
    fn for_each_entry(&self, dir: &str, each: &mut dyn FnMut(&str, EntryKind)) -> io::Result<()> {
        let stream = self.folder(dir)?.read_directory().map_err(to_io)?;
        loop {
            match stream.read_directory_entry() {
                Ok(Some(entry)) => each(&entry.name, kind_of(entry.type_)),
                Ok(None) => return Ok(()),
                // Gone between listing and stat, or a name that is not
                // UTF-8 (which no mailbox or message name can be).
                Err(ErrorCode::NoEntry | ErrorCode::IllegalByteSequence) => continue,
                Err(code) => return Err(to_io(code)),
            }
        }
    }

    fn create_dir(&self, path: &str) -> io::Result<()> {
        let (folder, name) = self.parent(path)?;
        folder.create_directory_at(name).map_err(to_io)
    }

    fn status(&self, path: &str) -> io::Result<Status> {
        let (folder, name) = self.parent(path)?;
        let stat = folder.stat_at(PathFlags::empty(), name).map_err(to_io)?;
        Ok(Status {
            kind: kind_of(stat.type_),
            modified: modified(&stat),
        })
    }

    fn folder_kind(&self, dir: &str) -> io::Result<EntryKind> {
        // Opening a folder (kept for the rest of the call, which works in
        // it) answers for a folder with one host call and one stat fewer
        // than asking its status first; what fails to open as a folder is
        // told apart by its status.
        match self.folder(dir) {
            Ok(_) => Ok(EntryKind::Dir),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(e),
            Err(_) => Ok(self.status(dir)?.kind),
        }
    }

    fn read(&self, path: &str, cap: u64) -> io::Result<ReadOutcome> {
        // No SYMLINK_FOLLOW: a link as the last component is refused.
        let file = self
            .root
            .open_at(
                PathFlags::empty(),
                path,
                OpenFlags::empty(),
                DescriptorFlags::READ,
            )
            .map_err(to_io)?;
        let stat = file.stat().map_err(to_io)?;
        if stat.type_ != DescriptorType::RegularFile {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        if stat.size > cap {
            return Ok(ReadOutcome::TooLarge);
        }
        let mut bytes = Vec::with_capacity(stat.size as usize);
        loop {
            // Ask for one byte more than the stat said is left, so a file
            // that did not grow is read in one call, its end shown by a short
            // read; the file may grow after the stat: never read past the cap.
            let left = (stat.size + 1).saturating_sub(bytes.len() as u64).max(1);
            let want = left.min(cap + 1 - bytes.len() as u64).min(READ_CHUNK);
            let (chunk, end) = file.read(want, bytes.len() as u64).map_err(to_io)?;
            let short = (chunk.len() as u64) < want;
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > cap {
                return Ok(ReadOutcome::TooLarge);
            }
            // A short read is the end once the stat's size is read (a host
            // may also cut a large read short: wasmtime at 64 KiB).
            if end || chunk.is_empty() || (short && bytes.len() as u64 >= stat.size) {
                return Ok(ReadOutcome::Bytes(bytes));
            }
        }
    }

    #[cfg(feature = "hosted")]
    fn read_some(&self, dir: &str, names: &[&str], cap: u64) -> Vec<io::Result<ReadOutcome>> {
        use crate::component::fmes::queue::reads::{FileRead, read_files};
        let folder = match self.folder(dir) {
            Ok(folder) => folder,
            Err(e) => {
                let kind = e.kind();
                let text = e.to_string();
                return vec![Err(io::Error::new(kind, text))];
            }
        };
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        read_files(&folder, &names, cap)
            .into_iter()
            .map(|answer| match answer {
                FileRead::Contents(bytes) => Ok(ReadOutcome::Bytes(bytes)),
                FileRead::TooLarge => Ok(ReadOutcome::TooLarge),
                FileRead::NotAFile => Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "not a regular file",
                )),
                FileRead::Failed(code) => Err(to_io(code)),
            })
            .collect()
    }

    #[cfg(feature = "hosted")]
    fn write_new(&self, path: &str, bytes: &[u8], durable: bool) -> io::Result<()> {
        use crate::component::fmes::queue::writes;
        let (folder, name) = self.parent(path)?;
        writes::write_new(&folder, name, bytes, durable).map_err(to_io)
    }

    #[cfg(feature = "hosted")]
    fn publish(
        &self,
        dir: &str,
        name: &str,
        bytes: &[u8],
        durable: bool,
    ) -> Result<(), super::PublishError> {
        use super::PublishError;
        use crate::component::fmes::queue::writes;
        // The host opens the folder itself (a send's mailbox): one call into
        // the host instead of three (open, publish, drop), and no `statx`.
        let (parent, folder) = match dir.rsplit_once('/') {
            Some((parent, folder)) => (self.folder(parent).map_err(PublishError::Folder)?, folder),
            None => (Rc::clone(&self.root), dir),
        };
        writes::publish(&parent, folder, name, bytes, durable).map_err(|e| match e {
            writes::PublishError::Folder(code) => PublishError::Folder(to_io(code)),
            writes::PublishError::Write(code) => PublishError::Write(to_io(code)),
            writes::PublishError::Link(code) => PublishError::Link(to_io(code)),
            writes::PublishError::Flush(code) => PublishError::Flush(to_io(code)),
        })
    }

    #[cfg(not(feature = "hosted"))]
    fn write_new(&self, path: &str, bytes: &[u8], durable: bool) -> io::Result<()> {
        let file = self
            .root
            .open_at(
                PathFlags::empty(),
                path,
                OpenFlags::CREATE | OpenFlags::EXCLUSIVE,
                DescriptorFlags::WRITE,
            )
            .map_err(to_io)?;
        let mut written = 0usize;
        while written < bytes.len() {
            let n = file
                .write(&bytes[written..], written as u64)
                .map_err(to_io)?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::WriteZero, "wrote nothing"));
            }
            written += n as usize;
        }
        if durable {
            file.sync_data().map_err(to_io)?;
        }
        Ok(())
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let (from_folder, from_name) = self.parent(from)?;
        let (to_folder, to_name) = self.parent(to)?;
        #[cfg(feature = "hosted")]
        let renamed = entries::rename(&from_folder, from_name, &to_folder, to_name);
        #[cfg(not(feature = "hosted"))]
        let renamed = from_folder.rename_at(from_name, &to_folder, to_name);
        renamed.map_err(to_io)
    }

    fn same_file(&self, a: &str, b: &str) -> io::Result<bool> {
        // The host derives these hashes from device and inode numbers.
        let a = self
            .root
            .metadata_hash_at(PathFlags::empty(), a)
            .map_err(to_io)?;
        let b = self
            .root
            .metadata_hash_at(PathFlags::empty(), b)
            .map_err(to_io)?;
        Ok(a.upper == b.upper && a.lower == b.lower)
    }

    fn link_count(&self, path: &str) -> io::Result<u64> {
        let (folder, name) = self.parent(path)?;
        let stat = folder.stat_at(PathFlags::empty(), name).map_err(to_io)?;
        Ok(stat.link_count)
    }

    fn sync_dir(&self, dir: &str) -> io::Result<()> {
        let folder = self.folder(dir)?;
        #[cfg(feature = "hosted")]
        let flushed = entries::flush_folder(&folder);
        #[cfg(not(feature = "hosted"))]
        let flushed = folder.sync();
        flushed.map_err(to_io)
    }

    fn link(&self, from: &str, to: &str) -> io::Result<()> {
        let (from_folder, from_name) = self.parent(from)?;
        let (to_folder, to_name) = self.parent(to)?;
        #[cfg(feature = "hosted")]
        let linked = entries::link(&from_folder, from_name, &to_folder, to_name);
        #[cfg(not(feature = "hosted"))]
        let linked = from_folder.link_at(PathFlags::empty(), from_name, &to_folder, to_name);
        linked.map_err(to_io)
    }

    fn remove_file(&self, path: &str) -> io::Result<()> {
        let (folder, name) = self.parent(path)?;
        #[cfg(feature = "hosted")]
        let removed = entries::remove_file(&folder, name);
        #[cfg(not(feature = "hosted"))]
        let removed = folder.unlink_file_at(name);
        removed.map_err(to_io)
    }
}
