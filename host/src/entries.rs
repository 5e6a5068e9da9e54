//! The entry changes this host gives the queue component
//! (`fmes:queue/entries`, in the `queue-hosted` world): rename, link,
//! remove a file's name, flush a folder.
//!
//! wasmtime-wasi's `rename-at`, `link-at`, `unlink-file-at` and `sync` each
//! enter a Tokio runtime for the call, and `sync` of a folder opens it once
//! more to flush it. A claim and its acknowledgement make six of these
//! calls; here each is its system call alone (`renameat`, `linkat`,
//! `unlinkat`, `fsync`).
//!
//! Nothing is widened: every name is a single name inside a folder
//! descriptor the component already holds, no symbolic link is followed
//! (none of these system calls follows a final link, and a single name has
//! no other part), and only folders writable to the component are changed.

use std::os::fd::AsFd;
use std::sync::Arc;

use rustix::fs::AtFlags;
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, LinkerInstance, Resource};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::filesystem::Descriptor;
use wasmtime_wasi::p2::bindings::sync::filesystem::types::ErrorCode;

use crate::listing::error_code;
use crate::reads::check_name;
use crate::writes::writable_folder;

/// The interface this module implements.
const ENTRIES: &str = "fmes:queue/entries@0.1.0";

/// A folder, a name in it, another folder and a name in that.
type TwoNames = (Resource<Descriptor>, String, Resource<Descriptor>, String);

/// Adds `fmes:queue/entries` to a linker that has wasmtime-wasi's
/// `wasi:filesystem` (whose descriptors it takes).
pub fn add_to_linker<T: WasiView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    let mut entries = linker.instance(ENTRIES)?;
    add_change_of_two(&mut entries, "rename", rename)?;
    add_change_of_two(&mut entries, "link", link)?;
    entries.func_wrap(
        "remove-file",
        |mut store: StoreContextMut<'_, T>, (folder, name): (Resource<Descriptor>, String)| {
            let table = store.data_mut().ctx().table;
            let result =
                writable_folder(table.get(&folder)?).and_then(|dir| remove_file(dir, &name));
            Ok((result,))
        },
    )?;
    entries.func_wrap(
        "flush-folder",
        |mut store: StoreContextMut<'_, T>, (folder,): (Resource<Descriptor>,)| {
            let table = store.data_mut().ctx().table;
            // Flushing changes nothing: a read-only folder may be flushed.
            let result = match table.get(&folder)? {
                Descriptor::Dir(dir) => flush_folder(&*dir.dir),
                Descriptor::File(_) => Err(ErrorCode::NotDirectory),
            };
            Ok((result,))
        },
    )?;
    Ok(())
}

/// The folder the component holds, as this host opened it.
type Folder = Arc<std::fs::File>;

/// Adds the function `name`, which applies `change` to a name in a folder
/// and a name in another (both folders writable to the component).
fn add_change_of_two<T: WasiView + 'static>(
    entries: &mut LinkerInstance<'_, T>,
    name: &str,
    change: fn(&Folder, &str, &Folder, &str) -> Result<(), ErrorCode>,
) -> wasmtime::Result<()> {
    entries.func_wrap(
        name,
        move |mut store: StoreContextMut<'_, T>, (folder, name, new_folder, new_name): TwoNames| {
            let table = store.data_mut().ctx().table;
            let from = writable_folder(table.get(&folder)?);
            let to = writable_folder(table.get(&new_folder)?);
            let result = from.and_then(|from| to.and_then(|to| change(from, &name, to, &new_name)));
            Ok((result,))
        },
    )
}

fn rename(
    folder: &impl AsFd,
    name: &str,
    new_folder: &impl AsFd,
    new_name: &str,
) -> Result<(), ErrorCode> {
    check_name(name)?;
    check_name(new_name)?;
    rustix::fs::renameat(folder, name, new_folder, new_name).map_err(error_code)
}

fn link(
    folder: &impl AsFd,
    name: &str,
    new_folder: &impl AsFd,
    new_name: &str,
) -> Result<(), ErrorCode> {
    check_name(name)?;
    check_name(new_name)?;
    // No AT_SYMLINK_FOLLOW: a link gets the new name itself.
    rustix::fs::linkat(folder, name, new_folder, new_name, AtFlags::empty()).map_err(error_code)
}

fn remove_file(folder: &impl AsFd, name: &str) -> Result<(), ErrorCode> {
    check_name(name)?;
    // Without AT_REMOVEDIR a folder is refused (`EISDIR`), never removed.
    rustix::fs::unlinkat(folder, name, AtFlags::empty()).map_err(error_code)
}

fn flush_folder(folder: &impl AsFd) -> Result<(), ErrorCode> {
    // A folder opened for reading can be flushed as it is: no second opening.
    rustix::fs::fsync(folder).map_err(error_code)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;
    use std::path::Path;

    use super::*;
    use crate::writes::tests::names_in;

    fn open(path: &Path) -> std::fs::File {
        std::fs::File::open(path).unwrap()
    }

    const NOT_SINGLE: [&str; 6] = ["", ".", "..", "../escape", "inner/b", "a\0b"];

    /// `change(name, new_name)` refuses what is not a single name, in
    /// either place; `existing` is a name it could change.
    fn single_names_only(change: impl Fn(&str, &str) -> Result<(), ErrorCode>, existing: &str) {
        for bad in NOT_SINGLE {
            assert_eq!(change(bad, "x"), Err(ErrorCode::Invalid), "{bad:?}");
            assert_eq!(change(existing, bad), Err(ErrorCode::Invalid), "{bad:?}");
        }
    }

    #[test]
    fn rename_moves_an_entry_between_folders_and_takes_single_names_only() {
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (root.path().join("a"), root.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        std::fs::write(a.join("m.json"), "{}").unwrap();
        let (fa, fb) = (open(&a), open(&b));

        rename(&fa, "m.json", &fb, "n.json").unwrap();
        assert!(names_in(&a).is_empty());
        assert_eq!(std::fs::read(b.join("n.json")).unwrap(), b"{}");
        assert_eq!(rename(&fa, "m.json", &fb, "x"), Err(ErrorCode::NoEntry));

        single_names_only(|name, new_name| rename(&fb, name, &fa, new_name), "n.json");
        assert_eq!(names_in(&b), ["n.json"]);
        assert_eq!(names_in(root.path()), ["a", "b"]);

        // A link is moved itself: its target stays where it is.
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("t"), "kept").unwrap();
        symlink(outside.path().join("t"), a.join("link")).unwrap();
        rename(&fa, "link", &fb, "link2").unwrap();
        assert!(b.join("link2").symlink_metadata().unwrap().is_symlink());
        assert_eq!(names_in(outside.path()), ["t"]);
    }

    #[test]
    fn link_never_replaces_and_never_follows() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path();
        std::fs::write(dir.join("m.json"), "{}").unwrap();
        std::fs::write(dir.join("taken.json"), "other").unwrap();
        let folder = open(dir);

        link(&folder, "m.json", &folder, "n.json").unwrap();
        assert_eq!(std::fs::read(dir.join("n.json")).unwrap(), b"{}");
        assert_eq!(
            link(&folder, "m.json", &folder, "taken.json"),
            Err(ErrorCode::Exist)
        );
        assert_eq!(std::fs::read(dir.join("taken.json")).unwrap(), b"other");
        assert_eq!(link(&folder, "gone", &folder, "x"), Err(ErrorCode::NoEntry));
        single_names_only(
            |name, new_name| link(&folder, name, &folder, new_name),
            "m.json",
        );

        // A link to a file outside gets the new name itself, never its target.
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "outside").unwrap();
        symlink(outside.path().join("secret"), dir.join("link")).unwrap();
        link(&folder, "link", &folder, "link2").unwrap();
        assert!(dir.join("link2").symlink_metadata().unwrap().is_symlink());
    }

    #[test]
    fn remove_file_removes_a_name_but_never_a_folder() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path();
        std::fs::write(dir.join("m.json"), "{}").unwrap();
        std::fs::create_dir(dir.join("sub")).unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("t"), "kept").unwrap();
        symlink(outside.path().join("t"), dir.join("link")).unwrap();
        let folder = open(dir);

        remove_file(&folder, "m.json").unwrap();
        assert_eq!(remove_file(&folder, "m.json"), Err(ErrorCode::NoEntry));
        assert_eq!(remove_file(&folder, "sub"), Err(ErrorCode::IsDirectory));
        remove_file(&folder, "link").unwrap();
        assert_eq!(names_in(outside.path()), ["t"]);
        for bad in NOT_SINGLE {
            assert_eq!(
                remove_file(&folder, bad),
                Err(ErrorCode::Invalid),
                "{bad:?}"
            );
        }
        assert_eq!(names_in(dir), ["sub"]);
        flush_folder(&folder).unwrap();
    }

    #[test]
    fn failures_are_told_by_their_own_codes() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path();
        std::fs::create_dir_all(dir.join("a")).unwrap();
        std::fs::create_dir_all(dir.join("b/inside")).unwrap();
        let folder = open(dir);
        assert_eq!(rename(&folder, "a", &folder, "b"), Err(ErrorCode::NotEmpty));
        let long = "n".repeat(300);
        assert_eq!(remove_file(&folder, &long), Err(ErrorCode::NameTooLong));
        assert_eq!(names_in(dir), ["a", "b"]);
    }
}
