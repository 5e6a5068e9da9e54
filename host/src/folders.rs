//! The folder opening this host gives the queue component
//! (`fmes:queue/folders`, in the `queue-hosted` world).
//!
//! An acknowledgement works in four folders, and wasmtime-wasi's `open-at`
//! opens each with `openat2` and then stats it to learn its type: one
//! system call in three (with the `close`) is that `statx`. Here a folder
//! is opened with `O_DIRECTORY`, which answers for its type, and nothing
//! else.
//!
//! Nothing is widened: the path is resolved beneath a folder descriptor the
//! component already holds (`RESOLVE_BENEATH`), and no symbolic link is
//! followed anywhere along it (`RESOLVE_NO_SYMLINKS`), where wasmtime-wasi
//! follows links that stay inside the preopen. The new descriptor gets the
//! permissions of the one it was opened from.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::filesystem::{Descriptor, Dir, OpenMode};
use wasmtime_wasi::p2::bindings::sync::filesystem::types::ErrorCode;

use crate::listing::error_code;
use crate::reads::{check_name, single_name};

/// The interface this module implements.
const FOLDERS: &str = "fmes:queue/folders@0.1.0";

/// Adds `fmes:queue/folders` to a linker that has wasmtime-wasi's
/// `wasi:filesystem` (whose descriptors it takes and makes).
pub fn add_to_linker<T: WasiView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    let mut folders = linker.instance(FOLDERS)?;
    folders.func_wrap(
        "open-folder",
        |mut store: StoreContextMut<'_, T>, (parent, path): (Resource<Descriptor>, String)| {
            let table = store.data_mut().ctx().table;
            let opened = match table.get(&parent)? {
                Descriptor::Dir(dir) => open_folder(&*dir.dir, &path).map(|folder| {
                    // As wasmtime-wasi opens a folder asked for reading: its
                    // permissions are the parent's, which decide writes.
                    Descriptor::Dir(Dir::new(
                        folder.into(),
                        dir.perms,
                        OpenMode::READ,
                        crate::sandbox::ALLOW_BLOCKING_CURRENT_THREAD,
                    ))
                }),
                Descriptor::File(_) => Err(ErrorCode::NotDirectory),
            };
            Ok((match opened {
                Ok(folder) => Ok(table.push(folder)?),
                Err(code) => Err(code),
            },))
        },
    )?;
    Ok(())
}

/// The flags of every opening: a folder, for reading its entries and
/// working in it. (No link is followed: `RESOLVE_NO_SYMLINKS` refuses one
/// with `ELOOP` anywhere along the path, and each `openat` of a part adds
/// `NOFOLLOW`.)
const FOLDER_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC);

/// Opens the folder at `path` (names joined by `/`) beneath `parent`,
/// following no symbolic link.
pub(crate) fn open_folder(parent: &impl AsFd, path: &str) -> Result<OwnedFd, ErrorCode> {
    // Every part a single name: checked here, so that neither way of
    // opening below ever sees `..`, an absolute path or an empty part.
    for part in path.split('/') {
        check_name(part)?;
    }
    match rustix::fs::openat2(
        parent.as_fd(),
        path,
        FOLDER_FLAGS,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(folder) => Ok(folder),
        // Kernels before 5.6 lack `openat2` (and some sandboxes refuse it).
        Err(rustix::io::Errno::NOSYS | rustix::io::Errno::PERM) => open_part_by_part(parent, path),
        Err(e) => Err(error_code(e)),
    }
}

/// `open_folder` without `openat2`: one `openat` a part, each refusing a
/// link (`NOFOLLOW`), each relative to the folder the one before opened.
fn open_part_by_part(parent: &impl AsFd, path: &str) -> Result<OwnedFd, ErrorCode> {
    let mut opened: Option<OwnedFd> = None;
    for part in path.split('/') {
        let c_part = single_name(part)?;
        let from = opened
            .as_ref()
            .map_or(parent.as_fd(), |folder| folder.as_fd());
        let flags = FOLDER_FLAGS | OFlags::NOFOLLOW;
        let next = rustix::fs::openat(from, &c_part, flags, Mode::empty()).map_err(|e| {
            // A link opened with `NOFOLLOW` and `DIRECTORY` is
            // `not-directory`; say what it is, as `openat2` does.
            match e {
                rustix::io::Errno::NOTDIR if is_link(from, &c_part) => ErrorCode::Loop,
                e => error_code(e),
            }
        })?;
        opened = Some(next);
    }
    opened.ok_or(ErrorCode::Invalid)
}

fn is_link(folder: rustix::fd::BorrowedFd<'_>, name: &CString) -> bool {
    rustix::fs::statat(folder, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
        .is_ok_and(|stat| rustix::fs::FileType::from_raw_mode(stat.st_mode).is_symlink())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    /// Both ways of opening give the same answers.
    fn both(parent: &std::fs::File, path: &str) -> Result<OwnedFd, ErrorCode> {
        let at_once = open_folder(parent, path);
        let by_parts = open_part_by_part(parent, path);
        assert_eq!(
            at_once.as_ref().err(),
            by_parts.as_ref().err(),
            "{path:?}: openat2 and openat disagree"
        );
        at_once
    }

    #[test]
    fn folders_open_beneath_the_parent_and_never_through_a_link() {
        let comm = tempfile::tempdir().unwrap();
        let root = comm.path();
        std::fs::create_dir_all(root.join("To_A/.inflight")).unwrap();
        std::fs::write(root.join("To_A/file.json"), "{}").unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(outside.path().join("inner")).unwrap();
        symlink(outside.path(), root.join("To_Link")).unwrap();
        symlink(root.join("To_A"), root.join("To_Inside")).unwrap();
        let parent = std::fs::File::open(root).unwrap();

        // Folders, one part or two: opened, and the descriptor is that folder.
        for path in ["To_A", "To_A/.inflight"] {
            let folder = both(&parent, path).unwrap();
            let opened = rustix::fs::fstat(&folder).unwrap();
            let expected = std::fs::metadata(root.join(path)).unwrap();
            use std::os::unix::fs::MetadataExt;
            assert_eq!(
                (opened.st_dev, opened.st_ino),
                (expected.dev(), expected.ino()),
                "{path}"
            );
        }

        let refused = [
            // Links, to a folder outside or inside, at the end or on the way.
            ("To_Link", ErrorCode::Loop),
            ("To_Link/inner", ErrorCode::Loop),
            ("To_Inside", ErrorCode::Loop),
            ("To_Inside/.inflight", ErrorCode::Loop),
            ("To_A/file.json", ErrorCode::NotDirectory),
            ("To_A/file.json/x", ErrorCode::NotDirectory),
            ("To_Nobody", ErrorCode::NoEntry),
            ("To_A/missing", ErrorCode::NoEntry),
        ];
        for (path, code) in refused {
            assert_eq!(both(&parent, path).err(), Some(code), "{path}");
        }
        for path in [
            "",
            "/",
            "/etc",
            "To_A/",
            "To_A//.inflight",
            ".",
            "..",
            "../x",
            "To_A/..",
            "a\0b",
        ] {
            assert_eq!(
                both(&parent, path).err(),
                Some(ErrorCode::Invalid),
                "{path:?}"
            );
        }
    }
}
