//! The batch listing this host gives the queue component
//! (`fmes:queue/listing`, in the `queue-hosted` world).
//!
//! WASI 0.2 lists a folder one entry per call from the component into the
//! host, and each such call (lifting the stream handle, lowering the entry,
//! calling back into the component to allocate its name) costs more than the
//! kernel's own work for the entry: listing is what peek, receive and claim
//! do first, and that cost was most of their time on a large mailbox. Here
//! one call returns hundreds of entries, packed into two values.
//!
//! The listing also takes each entry's type from the kernel (`d_type`) where
//! wasmtime-wasi 48's `read-directory` stats every entry, falling back to a
//! `stat` only where the file system leaves the type unknown.
//!
//! Nothing is widened: a listing starts from a directory descriptor the
//! component already holds (the one preopen, or a folder opened beneath
//! it), reads names and types only, and resolves no path.

use std::ffi::CStr;
use std::sync::Arc;

use rustix::fd::OwnedFd;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir};
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource, ResourceType};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::filesystem::Descriptor;
use wasmtime_wasi::p2::bindings::sync::filesystem::types::{DescriptorType, ErrorCode};

use crate::bindings::fmes::queue::listing::EntryBatch;

/// The interface this module implements.
const LISTING: &str = "fmes:queue/listing@0.1.0";

/// Bytes of one `getdents` call, and so of one batch: at least 24 bytes an
/// entry, so at most 1,024 entries and 24 KiB of names: a batch the
/// component holds is small. The size of glibc's own buffer, give or
/// take: a growing buffer starting small (rustix's `Dir`) made ten times the
/// calls on a mailbox of 1,000, and each call costs the file system more
/// than its entries.
const BATCH_BYTES: usize = 24 * 1024;

/// One pass over a folder: its own open directory, read as the component
/// asks for batches (a huge mailbox is never held in memory at once).
pub struct FolderListing {
    /// Its own descriptor: the listing's position is the descriptor's.
    folder: OwnedFd,
    /// What one `getdents` call fills.
    buffer: Vec<u8>,
    /// The folder, for the rare entry whose type the listing does not give.
    parent: Arc<std::fs::File>,
}

/// Adds `fmes:queue/listing` to a linker that has wasmtime-wasi's
/// `wasi:filesystem` (whose descriptors it takes).
pub fn add_to_linker<T: WasiView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    let mut listing = linker.instance(LISTING)?;
    listing.resource(
        "folder-listing",
        ResourceType::host::<FolderListing>(),
        |mut store: StoreContextMut<'_, T>, rep| {
            store
                .data_mut()
                .ctx()
                .table
                .delete(Resource::<FolderListing>::new_own(rep))?;
            Ok(())
        },
    )?;
    listing.func_wrap(
        "list-folder",
        |mut store: StoreContextMut<'_, T>, (folder,): (Resource<Descriptor>,)| {
            let table = store.data_mut().ctx().table;
            let opened = match table.get(&folder)? {
                Descriptor::Dir(dir) => open_listing(&dir.dir),
                Descriptor::File(_) => Err(ErrorCode::NotDirectory),
            };
            Ok((match opened {
                Ok(listing) => Ok(table.push(listing)?),
                Err(code) => Err(code),
            },))
        },
    )?;
    listing.func_wrap(
        "[method]folder-listing.next-batch",
        |mut store: StoreContextMut<'_, T>, (listing,): (Resource<FolderListing>,)| {
            let listing = store.data_mut().ctx().table.get_mut(&listing)?;
            Ok((listing.next_batch(),))
        },
    )?;
    Ok(())
}

fn open_listing(dir: &Arc<std::fs::File>) -> Result<FolderListing, ErrorCode> {
    // A descriptor of its own, opened for reading (the component's may be an
    // `O_PATH` one, which cannot be read): the listing has a position of its
    // own, and the component's descriptor is left as it was.
    let own = rustix::fs::openat(
        &**dir,
        c".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(error_code)?;
    Ok(FolderListing {
        folder: own,
        buffer: Vec::with_capacity(BATCH_BYTES),
        parent: Arc::clone(dir),
    })
}

impl FolderListing {
    /// The entries of one `getdents` call (more if those were all skipped:
    /// an empty batch is the end). A batch ends only where a call's entries
    /// do, so none is read and then left out.
    fn next_batch(&mut self) -> Result<EntryBatch, ErrorCode> {
        let mut batch = EntryBatch {
            // Names are at most what one `getdents` call fills.
            names: String::with_capacity(BATCH_BYTES),
            lengths: Vec::new(),
            types: Vec::new(),
        };
        let mut entries = RawDir::new(&self.folder, self.buffer.spare_capacity_mut());
        loop {
            let entry = match entries.next() {
                None => break,
                Some(Err(e)) => return Err(error_code(e)),
                Some(Ok(entry)) => entry,
            };
            let name = entry.file_name();
            // As the guest does with WASI's per-entry error for it: a name
            // that is not UTF-8 is no mailbox or message, and is skipped.
            let text = name.to_str().ok().filter(|n| *n != "." && *n != "..");
            if let Some(text) = text {
                let type_ = match entry.file_type() {
                    FileType::Unknown => stat_type(&self.parent, name),
                    known => Ok(Some(descriptor_type(known))),
                };
                // None: gone since it was listed, as if never listed.
                if let Some(type_) = type_? {
                    batch.names.push_str(text);
                    // A file name is at most 255 bytes (NAME_MAX).
                    batch.lengths.push(text.len() as u16);
                    batch.types.push(type_);
                }
            }
            if entries.is_buffer_empty() && !batch.types.is_empty() {
                break;
            }
        }
        Ok(batch)
    }
}

/// The type of `name` in `parent`, from a `stat`; `None` if it is gone.
fn stat_type(parent: &std::fs::File, name: &CStr) -> Result<Option<DescriptorType>, ErrorCode> {
    match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => Ok(Some(descriptor_type(FileType::from_raw_mode(stat.st_mode)))),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(error_code(e)),
    }
}

fn descriptor_type(kind: FileType) -> DescriptorType {
    match kind {
        FileType::RegularFile => DescriptorType::RegularFile,
        FileType::Directory => DescriptorType::Directory,
        FileType::Symlink => DescriptorType::SymbolicLink,
        FileType::Fifo => DescriptorType::Fifo,
        FileType::Socket => DescriptorType::Socket,
        FileType::CharacterDevice => DescriptorType::CharacterDevice,
        FileType::BlockDevice => DescriptorType::BlockDevice,
        FileType::Unknown => DescriptorType::Unknown,
    }
}

pub(crate) fn error_code(e: rustix::io::Errno) -> ErrorCode {
    use rustix::io::Errno;
    match e {
        Errno::NOENT => ErrorCode::NoEntry,
        Errno::ACCESS => ErrorCode::Access,
        Errno::PERM => ErrorCode::NotPermitted,
        Errno::NOTDIR => ErrorCode::NotDirectory,
        Errno::ISDIR => ErrorCode::IsDirectory,
        Errno::EXIST => ErrorCode::Exist,
        Errno::NOSPC => ErrorCode::InsufficientSpace,
        Errno::DQUOT => ErrorCode::Quota,
        Errno::ROFS => ErrorCode::ReadOnly,
        Errno::FBIG => ErrorCode::FileTooLarge,
        Errno::LOOP => ErrorCode::Loop,
        Errno::NOMEM => ErrorCode::InsufficientMemory,
        Errno::MFILE | Errno::NFILE => ErrorCode::InsufficientMemory,
        Errno::NOTEMPTY => ErrorCode::NotEmpty,
        Errno::MLINK => ErrorCode::TooManyLinks,
        Errno::XDEV => ErrorCode::CrossDevice,
        Errno::BUSY => ErrorCode::Busy,
        Errno::NAMETOOLONG => ErrorCode::NameTooLong,
        Errno::INVAL => ErrorCode::Invalid,
        Errno::NOTSUP => ErrorCode::Unsupported,
        _ => ErrorCode::Io,
    }
}
