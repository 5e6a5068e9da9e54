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
//! component already holds (opened through wasmtime-wasi, beneath the one
//! preopen), reads names and types only, and resolves no path.

use std::ffi::CStr;
use std::sync::Arc;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource, ResourceType};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::filesystem::Descriptor;
use wasmtime_wasi::p2::bindings::sync::filesystem::types::{DescriptorType, ErrorCode};

use crate::bindings::fmes::queue::listing::EntryBatch;

/// The interface this module implements.
const LISTING: &str = "fmes:queue/listing@0.1.0";

/// Entries per batch at most, and bytes of names after which a batch ends:
/// enough that a call's fixed cost vanishes, small enough that neither side
/// holds much at once.
const BATCH_ENTRIES: usize = 1024;
const BATCH_NAME_BYTES: usize = 64 * 1024;

/// One pass over a folder: its own open directory, read as the component
/// asks for batches (a huge mailbox is never held in memory at once).
pub struct FolderListing {
    dir: Dir,
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
        dir: Dir::new(own).map_err(error_code)?,
        parent: Arc::clone(dir),
    })
}

impl FolderListing {
    fn next_batch(&mut self) -> Result<EntryBatch, ErrorCode> {
        let mut batch = EntryBatch {
            names: String::new(),
            types: Vec::new(),
        };
        while batch.types.len() < BATCH_ENTRIES && batch.names.len() < BATCH_NAME_BYTES {
            let entry = match self.dir.next() {
                None => break,
                Some(Err(e)) => return Err(error_code(e)),
                Some(Ok(entry)) => entry,
            };
            let name = entry.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            // As the guest does with WASI's per-entry error for it: a name
            // that is not UTF-8 is no mailbox or message, and is skipped.
            let Ok(text) = name.to_str() else {
                continue;
            };
            let type_ = match entry.file_type() {
                FileType::Unknown => match self.stat_type(name) {
                    Ok(type_) => type_,
                    // Gone since it was listed: as if never listed.
                    Err(ErrorCode::NoEntry) => continue,
                    Err(code) => return Err(code),
                },
                known => descriptor_type(known),
            };
            batch.names.push_str(text);
            batch.names.push('/');
            batch.types.push(type_);
        }
        Ok(batch)
    }

    fn stat_type(&self, name: &CStr) -> Result<DescriptorType, ErrorCode> {
        let stat = rustix::fs::statat(&*self.parent, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(error_code)?;
        Ok(descriptor_type(FileType::from_raw_mode(stat.st_mode)))
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
        _ => ErrorCode::Io,
    }
}
