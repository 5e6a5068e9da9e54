//! Directory listings for the queue component without a `stat` per entry.
//!
//! wasmtime-wasi 48 answers `wasi:filesystem` `read-directory` by stat-ing
//! every entry to learn its type, so listing a mailbox of 100,000 messages
//! costs 100,000 `statx` calls that a native `readdir` never makes (the
//! kernel already returns each entry's type, `d_type`). Listing is what
//! peek, receive and claim do first, and those calls were most of their
//! time. This module replaces the two functions of the `directory-entry-stream`
//! in the queue's linker with ones that read the type from the listing
//! itself, falling back to a `stat` only where the file system leaves the
//! type unknown.
//!
//! The component is unchanged (it still imports standard `wasi:filesystem`
//! and runs as it is in any other runtime), and nothing is widened: the
//! listing starts from a directory descriptor the component already holds,
//! reads names and types only, and resolves no path.

use std::ffi::CStr;
use std::sync::Arc;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource, ResourceType};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::filesystem::Descriptor;
use wasmtime_wasi::p2::bindings::sync::filesystem::types::{
    DescriptorType, DirectoryEntry, ErrorCode,
};

/// The `wasi:filesystem/types` instance wasmtime-wasi 48 defines, whose
/// listing functions are replaced here.
const FILESYSTEM_TYPES: &str = "wasi:filesystem/types@0.2.12";

/// One listing in progress: its own open directory, read as the component
/// asks for entries (a huge mailbox is never held in memory at once).
pub struct EntryStream {
    dir: Dir,
    /// The directory, for the rare entry whose type the listing does not
    /// give.
    parent: Arc<std::fs::File>,
}

/// Replaces `read-directory` and the `directory-entry-stream` resource in a
/// linker that already has wasmtime-wasi's `wasi:filesystem`.
pub fn add_to_linker<T: WasiView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut types = linker.instance(FILESYSTEM_TYPES)?;
    types.resource(
        "directory-entry-stream",
        ResourceType::host::<EntryStream>(),
        |mut store: StoreContextMut<'_, T>, rep| {
            store
                .data_mut()
                .ctx()
                .table
                .delete(Resource::<EntryStream>::new_own(rep))?;
            Ok(())
        },
    )?;
    types.func_wrap(
        "[method]descriptor.read-directory",
        |mut store: StoreContextMut<'_, T>, (descriptor,): (Resource<Descriptor>,)| {
            let table = store.data_mut().ctx().table;
            let opened = match table.get(&descriptor)? {
                Descriptor::Dir(dir) => open_listing(&dir.dir),
                Descriptor::File(_) => Err(ErrorCode::NotDirectory),
            };
            Ok((match opened {
                Ok(stream) => Ok(table.push(stream)?),
                Err(code) => Err(code),
            },))
        },
    )?;
    types.func_wrap(
        "[method]directory-entry-stream.read-directory-entry",
        |mut store: StoreContextMut<'_, T>, (stream,): (Resource<EntryStream>,)| {
            let stream = store.data_mut().ctx().table.get_mut(&stream)?;
            Ok((stream.next_entry(),))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

fn open_listing(dir: &Arc<std::fs::File>) -> Result<EntryStream, ErrorCode> {
    // A descriptor of its own, opened for reading (the preopen's may be an
    // `O_PATH` one, which cannot be read): the listing has a position of its
    // own, and the component's descriptor is left as it was.
    let own = rustix::fs::openat(
        &**dir,
        c".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(error_code)?;
    Ok(EntryStream {
        dir: Dir::new(own).map_err(error_code)?,
        parent: Arc::clone(dir),
    })
}

impl EntryStream {
    fn next_entry(&mut self) -> Result<Option<DirectoryEntry>, ErrorCode> {
        loop {
            let entry = match self.dir.next() {
                None => return Ok(None),
                Some(Err(e)) => return Err(error_code(e)),
                Some(Ok(entry)) => entry,
            };
            let name = entry.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            let type_ = match entry.file_type() {
                FileType::Unknown => match self.stat_type(name) {
                    Ok(type_) => type_,
                    // Gone since it was listed: as if never listed.
                    Err(ErrorCode::NoEntry) => continue,
                    Err(code) => return Err(code),
                },
                known => descriptor_type(known),
            };
            // As wasmtime-wasi does: a name that is not UTF-8 is an error
            // for that entry, and the listing goes on after it.
            let name = name
                .to_str()
                .map_err(|_| ErrorCode::IllegalByteSequence)?
                .to_string();
            return Ok(Some(DirectoryEntry { type_, name }));
        }
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

fn error_code(e: rustix::io::Errno) -> ErrorCode {
    use rustix::io::Errno;
    match e {
        Errno::NOENT => ErrorCode::NoEntry,
        Errno::ACCESS => ErrorCode::Access,
        Errno::PERM => ErrorCode::NotPermitted,
        Errno::NOTDIR => ErrorCode::NotDirectory,
        Errno::LOOP => ErrorCode::Loop,
        Errno::NOMEM => ErrorCode::InsufficientMemory,
        Errno::MFILE | Errno::NFILE => ErrorCode::InsufficientMemory,
        _ => ErrorCode::Io,
    }
}
