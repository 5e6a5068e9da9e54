//! The file writes this host gives the queue component
//! (`fmes:queue/writes`, in the `queue-hosted` world).
//!
//! Through WASI 0.2 a new file takes three calls into the host (open with
//! create, write, drop), and wasmtime-wasi stats every file it opens to
//! learn its type; every send writes one new file. Here one call creates,
//! writes and closes it with the system calls alone.
//!
//! Nothing is widened: the name is a single name inside a folder descriptor
//! the component already holds, created exclusively (an existing name, a
//! symbolic link included, is an error, never followed or replaced), and
//! only if the folder is writable to the component.

use std::ffi::CStr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use rustix::fs::{AtFlags, Mode, OFlags};
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::filesystem::Descriptor;
use wasmtime_wasi::p2::bindings::sync::filesystem::types::ErrorCode;

use fmes_queue::fs::{self as queue_fs, unnamed};

use crate::bindings::fmes::queue::writes::PublishError;
use crate::folders::open_folder;
use crate::listing::error_code;
use crate::reads::{check_name, single_name};

/// The interface this module implements.
const WRITES: &str = "fmes:queue/writes@0.1.0";

/// Adds `fmes:queue/writes` to a linker that has wasmtime-wasi's
/// `wasi:filesystem` (whose descriptors it takes).
pub fn add_to_linker<T: WasiView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    let mut writes = linker.instance(WRITES)?;
    writes.func_wrap(
        "write-new",
        |mut store: StoreContextMut<'_, T>,
         (folder, name, contents, durable): (Resource<Descriptor>, String, Vec<u8>, bool)| {
            let table = store.data_mut().ctx().table;
            let result = writable_folder(table.get(&folder)?)
                .and_then(|dir| write_new(dir, &name, &contents, durable));
            Ok((result,))
        },
    )?;
    writes.func_wrap(
        "publish",
        |mut store: StoreContextMut<'_, T>,
         (parent, folder, name, contents, durable): (
            Resource<Descriptor>,
            String,
            String,
            Vec<u8>,
            bool,
        )| {
            let table = store.data_mut().ctx().table;
            let result = writable_folder(table.get(&parent)?)
                .map_err(PublishError::Folder)
                .and_then(|parent| open_mailbox(parent, &folder).map_err(PublishError::Folder))
                .and_then(|dir| publish(&dir, &name, &contents, durable));
            Ok((result,))
        },
    )?;
    Ok(())
}

/// The folder a descriptor is, if the component may write in it.
pub(crate) fn writable_folder(descriptor: &Descriptor) -> Result<&Arc<std::fs::File>, ErrorCode> {
    match descriptor {
        Descriptor::Dir(dir) if dir.perms.write_not_permitted() => Err(ErrorCode::NotPermitted),
        Descriptor::Dir(dir) => Ok(&dir.dir),
        Descriptor::File(_) => Err(ErrorCode::NotDirectory),
    }
}

/// The folder `name` (a single name: a mailbox) inside `parent`, opened
/// as `folders` opens one: never through a symbolic link.
fn open_mailbox(parent: &impl AsFd, name: &str) -> Result<OwnedFd, ErrorCode> {
    check_name(name)?;
    open_folder(parent, name)
}

/// `publish` in an open folder: an unnamed file linked as `name` where the
/// system has them (see `fmes_queue::fs::unnamed`: the native backend makes
/// the same calls), else the new file of the temporary name
/// (`fmes_queue::fs::temporary_name`), linked as `name`, then unlinked; with
/// `durable`, the folder flushed after.
fn publish(
    folder: &impl AsFd,
    name: &str,
    contents: &[u8],
    durable: bool,
) -> Result<(), PublishError> {
    // Checked before anything is written, so a bad final name leaves nothing.
    let c_name = single_name(name).map_err(PublishError::Link)?;
    if let Some(published) = unnamed::publish(folder.as_fd(), &c_name, contents, durable) {
        return published.map_err(|e| match e {
            queue_fs::PublishError::Folder(e) => PublishError::Folder(io_error_code(&e)),
            queue_fs::PublishError::Write(e) => PublishError::Write(io_error_code(&e)),
            queue_fs::PublishError::Link(e) => PublishError::Link(io_error_code(&e)),
            queue_fs::PublishError::Flush(e) => PublishError::Flush(io_error_code(&e)),
        });
    }
    // A single name with its suffix swapped is a single name too.
    let c_temporary = single_name(&queue_fs::temporary_name(name)).map_err(PublishError::Write)?;
    publish_named(folder, &c_temporary, &c_name, contents, durable)
}

/// `publish` through the temporary name.
fn publish_named(
    folder: &impl AsFd,
    c_temporary: &CStr,
    c_name: &CStr,
    contents: &[u8],
    durable: bool,
) -> Result<(), PublishError> {
    write_file(folder, c_temporary, contents, durable).map_err(PublishError::Write)?;
    // No AT_SYMLINK_FOLLOW: the temporary file itself, which this call just
    // created, gets the second name; an existing `name` is never replaced.
    let linked = rustix::fs::linkat(
        folder.as_fd(),
        c_temporary,
        folder.as_fd(),
        c_name,
        AtFlags::empty(),
    );
    // Removed whether or not the link was made: on success it is the
    // temporary name of a published file, on failure an unpublished copy.
    let _ = rustix::fs::unlinkat(folder.as_fd(), c_temporary, AtFlags::empty());
    linked.map_err(|e| PublishError::Link(error_code(e)))?;
    if durable {
        rustix::fs::fsync(folder).map_err(|e| PublishError::Flush(error_code(e)))?;
    }
    Ok(())
}

/// The WASI error code of an error from `fmes_queue`'s file calls.
fn io_error_code(e: &std::io::Error) -> ErrorCode {
    rustix::io::Errno::from_io_error(e).map_or(ErrorCode::Io, error_code)
}

fn write_new(
    folder: &impl AsFd,
    name: &str,
    contents: &[u8],
    durable: bool,
) -> Result<(), ErrorCode> {
    write_file(folder, &single_name(name)?, contents, durable)
}

/// `write_new` of a checked single name.
fn write_file(
    folder: &impl AsFd,
    c_name: &CStr,
    contents: &[u8],
    durable: bool,
) -> Result<(), ErrorCode> {
    // EXCL with NOFOLLOW: whatever has the name, a link included, is left
    // alone and the create fails.
    let file = rustix::fs::openat(
        folder.as_fd(),
        c_name,
        OFlags::WRONLY
            | OFlags::CREATE
            | OFlags::EXCL
            | OFlags::NOFOLLOW
            | OFlags::CLOEXEC
            | OFlags::NOCTTY,
        Mode::from_raw_mode(0o666),
    )
    .map_err(error_code)?;
    let mut written = 0;
    while written < contents.len() {
        match rustix::io::write(&file, &contents[written..]) {
            Ok(0) => return Err(ErrorCode::Io),
            Ok(n) => written += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(error_code(e)),
        }
    }
    if durable {
        rustix::fs::fdatasync(&file).map_err(error_code)?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn a_new_file_is_written_and_nothing_is_replaced_or_followed() {
        let dir = tempfile::tempdir().unwrap();
        let folder = Arc::new(std::fs::File::open(dir.path()).unwrap());
        write_new(&folder, "a.json", b"{}", true).unwrap();
        assert_eq!(std::fs::read(dir.path().join("a.json")).unwrap(), b"{}");
        assert_eq!(
            write_new(&folder, "a.json", b"[]", false),
            Err(ErrorCode::Exist)
        );
        assert_eq!(std::fs::read(dir.path().join("a.json")).unwrap(), b"{}");

        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("target.json");
        symlink(&target, dir.path().join("link.json")).unwrap();
        assert_eq!(
            write_new(&folder, "link.json", b"{}", false),
            Err(ErrorCode::Exist)
        );
        assert!(!target.exists(), "the dangling link was followed");

        for name in ["", ".", "..", "../escape.json", "inner/b.json", "a\0.json"] {
            assert_eq!(
                write_new(&folder, name, b"{}", false),
                Err(ErrorCode::Invalid),
                "{name:?}"
            );
        }
        assert!(!dir.path().parent().unwrap().join("escape.json").exists());
    }

    /// The names in a folder, sorted.
    pub(crate) fn names_in(dir: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    /// `publish`, or with `named` the way it takes on a system without
    /// unnamed files.
    fn publish_by(
        named: bool,
        folder: &impl AsFd,
        name: &str,
        contents: &[u8],
    ) -> Result<(), PublishError> {
        if !named {
            return publish(folder, name, contents, false);
        }
        let c_name = single_name(name).map_err(PublishError::Link)?;
        let c_temporary =
            single_name(&queue_fs::temporary_name(name)).map_err(PublishError::Write)?;
        publish_named(folder, &c_temporary, &c_name, contents, false)
    }

    #[test]
    fn publish_leaves_the_final_name_alone_or_nothing_but_what_was_there() {
        for named in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let folder = Arc::new(std::fs::File::open(dir.path()).unwrap());
            publish(&folder, "a.json", b"{}", true).unwrap();
            assert_eq!(names_in(dir.path()), ["a.json"]);
            assert_eq!(std::fs::read(dir.path().join("a.json")).unwrap(), b"{}");

            // The final name taken: no replacement, no temporary file left.
            assert!(matches!(
                publish_by(named, &folder, "a.json", b"[]"),
                Err(PublishError::Link(ErrorCode::Exist))
            ));
            assert_eq!(names_in(dir.path()), ["a.json"]);
            assert_eq!(std::fs::read(dir.path().join("a.json")).unwrap(), b"{}");

            // The temporary name taken: whatever holds it is left as it
            // was; only the named way needs that name.
            std::fs::write(dir.path().join("c.tmp"), "someone's").unwrap();
            let published = publish_by(named, &folder, "c.json", b"[]");
            if named {
                assert!(matches!(
                    published,
                    Err(PublishError::Write(ErrorCode::Exist))
                ));
                assert_eq!(names_in(dir.path()), ["a.json", "c.tmp"]);
            } else {
                published.unwrap();
                assert_eq!(names_in(dir.path()), ["a.json", "c.json", "c.tmp"]);
                std::fs::remove_file(dir.path().join("c.json")).unwrap();
            }
            assert_eq!(
                std::fs::read(dir.path().join("c.tmp")).unwrap(),
                b"someone's"
            );

            // A link under the final name is a taken name, never followed.
            let outside = tempfile::tempdir().unwrap();
            let target = outside.path().join("target.json");
            symlink(&target, dir.path().join("link.json")).unwrap();
            assert!(matches!(
                publish_by(named, &folder, "link.json", b"{}"),
                Err(PublishError::Link(ErrorCode::Exist))
            ));
            assert!(!target.exists(), "the dangling link was followed");

            // Names that are not single names: refused before anything is written.
            for name in ["", ".", "..", "../escape.json", "inner/b.json", "a\0.json"] {
                assert!(
                    matches!(
                        publish_by(named, &folder, name, b"{}"),
                        Err(PublishError::Link(ErrorCode::Invalid))
                    ),
                    "{name:?}"
                );
            }
            assert_eq!(names_in(dir.path()), ["a.json", "c.tmp", "link.json"]);
            assert!(!dir.path().parent().unwrap().join("escape.json").exists());
        }
    }

    #[test]
    fn the_folder_to_publish_in_is_opened_only_if_it_is_a_folder() {
        let comm = tempfile::tempdir().unwrap();
        let parent = std::fs::File::open(comm.path()).unwrap();
        std::fs::create_dir(comm.path().join("To_A")).unwrap();
        let mailbox = open_mailbox(&parent, "To_A").unwrap();
        publish(&mailbox, "m.json", b"{}", true).unwrap();
        assert_eq!(names_in(&comm.path().join("To_A")), ["m.json"]);

        // A link in a mailbox's place, to a folder outside: refused, and
        // nothing is written there.
        let outside = tempfile::tempdir().unwrap();
        symlink(outside.path(), comm.path().join("To_Evil")).unwrap();
        std::fs::write(comm.path().join("To_File"), "").unwrap();
        let refused = [
            ("To_Evil", ErrorCode::Loop),
            ("To_File", ErrorCode::NotDirectory),
            ("To_Nobody", ErrorCode::NoEntry),
        ];
        for (name, code) in refused {
            assert_eq!(open_mailbox(&parent, name).err(), Some(code), "{name}");
        }
        for name in ["", ".", "..", "../x", "To_A/inner", "a\0b"] {
            assert_eq!(
                open_mailbox(&parent, name).err(),
                Some(ErrorCode::Invalid),
                "{name:?}"
            );
        }
        assert!(names_in(outside.path()).is_empty());
    }
}
