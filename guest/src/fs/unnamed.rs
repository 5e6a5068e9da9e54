//! Publishing a new file that never has a temporary name (Linux's
//! `O_TMPFILE`), for the native backend and the `fmes` host.
//!
//! The portable way to publish (see [`super::FileSystem::publish`]) makes
//! and removes a temporary name for every file: three changes to the
//! folder (create, link, unlink). An unnamed file, written and then linked
//! once under its final name, makes one: on ext4 here a third less time a
//! send (18 to 12 µs). A crash part way leaves no temporary file behind
//! either: an unnamed file is gone with its last descriptor. The final
//! name is still made by a link, so it never replaces a file.
//!
//! Not every system can. `O_TMPFILE` needs a file system that has it;
//! giving a descriptor a name (`linkat` with `AT_EMPTY_PATH`) needs a
//! privilege on older kernels, where `/proc/self/fd` does it instead. The
//! first time neither works the process says so once, in [`ROUTE`], and
//! every later call answers `None` at once: the caller publishes through a
//! temporary name.

use std::ffi::CStr;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU8, Ordering};

use super::PublishError;

/// How this process names an unnamed file: one of the constants below.
static ROUTE: AtomicU8 = AtomicU8::new(BY_DESCRIPTOR);

/// `linkat(file, "", folder, name, AT_EMPTY_PATH)`.
const BY_DESCRIPTOR: u8 = 0;
/// `linkat` of `/proc/self/fd/N`, following that link to the file.
const BY_PROC: u8 = 1;
/// Neither: unnamed files are not used.
const NONE: u8 = 2;

/// Publishes `bytes` as the new file `name` (a single name) in `folder`:
/// an unnamed file in it, written (and with `durable` flushed), then linked
/// as `name`, which fails with `AlreadyExists` rather than replace anything.
/// With `durable`, `folder` is flushed after, so the name is on disk too.
///
/// `None` when this system cannot make or name unnamed files: nothing was
/// written, and the caller publishes another way. Any other failure is the
/// step's, as for [`super::FileSystem::publish`], and leaves nothing.
pub fn publish(
    folder: BorrowedFd<'_>,
    name: &CStr,
    bytes: &[u8],
    durable: bool,
) -> Option<Result<(), PublishError>> {
    let route = ROUTE.load(Ordering::Relaxed);
    if route == NONE {
        return None;
    }
    let file = match open_unnamed(folder) {
        Ok(file) => file,
        // No O_TMPFILE on this file system (EOPNOTSUPP), or in this kernel,
        // which reads the flag as O_DIRECTORY (EISDIR).
        Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR)) => {
            ROUTE.store(NONE, Ordering::Relaxed);
            return None;
        }
        // Said as the named way says it (ext4 says EPERM).
        Err(_) if folder_removed(folder) => {
            return Some(Err(PublishError::Write(io::Error::from_raw_os_error(
                libc::ENOENT,
            ))));
        }
        Err(e) => return Some(Err(PublishError::Write(e))),
    };
    let mut file = File::from(file);
    let written = file
        .write_all(bytes)
        .and_then(|()| if durable { file.sync_data() } else { Ok(()) });
    if let Err(e) = written {
        return Some(Err(PublishError::Write(e)));
    }
    match name_file(route, &file, folder, name) {
        Some(Ok(())) => {}
        Some(Err(e)) => return Some(Err(PublishError::Link(e))),
        None => {
            ROUTE.store(NONE, Ordering::Relaxed);
            return None;
        }
    }
    if durable {
        // SAFETY: fsync on a descriptor borrowed for this call.
        if unsafe { libc::fsync(folder.as_raw_fd()) } != 0 {
            return Some(Err(PublishError::Flush(io::Error::last_os_error())));
        }
    }
    Some(Ok(()))
}

/// A new unnamed file in `folder`, open for writing.
fn open_unnamed(folder: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: a C string literal and a descriptor borrowed for this call;
    // the returned descriptor is new and owned by nobody else.
    let fd = unsafe {
        libc::openat(
            folder.as_raw_fd(),
            c".".as_ptr(),
            libc::O_WRONLY | libc::O_TMPFILE | libc::O_CLOEXEC,
            0o666 as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is closed only by the OwnedFd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Gives `file` the name `name` in `folder` by `route`, or by the next route
/// if this kernel refuses that one (and then remembers the route that
/// worked). `None` if no route can name a file here.
fn name_file(
    route: u8,
    file: &File,
    folder: BorrowedFd<'_>,
    name: &CStr,
) -> Option<io::Result<()>> {
    if route == BY_DESCRIPTOR {
        match link_by_descriptor(file, folder, name) {
            // ENOENT is what a kernel that wants a privilege for this says,
            // and what any kernel says if the folder has been removed.
            Err(e) if refused(&e) && !folder_removed(folder) => {}
            done => return Some(done),
        }
    }
    match link_by_proc(file, folder, name) {
        Err(e) if refused(&e) && !folder_removed(folder) => None,
        done => {
            if done.is_ok() && route == BY_DESCRIPTOR {
                ROUTE.store(BY_PROC, Ordering::Relaxed);
            }
            Some(done)
        }
    }
}

/// An error a route gives when it cannot name files at all here.
fn refused(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EPERM))
}

/// True if `folder` has been removed (it has no name left).
fn folder_removed(folder: BorrowedFd<'_>) -> bool {
    let mut status = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat fills `status` when it returns 0, and only then is it read.
    unsafe {
        libc::fstat(folder.as_raw_fd(), status.as_mut_ptr()) == 0
            && status.assume_init().st_nlink == 0
    }
}

/// A libc call's result: 0 is success, anything else the call's `errno`.
fn zero_or_os_error(result: libc::c_int) -> io::Result<()> {
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn link_by_descriptor(file: &File, folder: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: descriptors borrowed for this call and NUL-terminated names.
    let linked = unsafe {
        libc::linkat(
            file.as_raw_fd(),
            c"".as_ptr(),
            folder.as_raw_fd(),
            name.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    zero_or_os_error(linked)
}

fn link_by_proc(file: &File, folder: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    let path = format!("/proc/self/fd/{}\0", file.as_raw_fd());
    // SAFETY: as above; `path` ends with its NUL.
    let linked = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            path.as_ptr().cast(),
            folder.as_raw_fd(),
            name.as_ptr(),
            // Follows the /proc link to the file itself, never a link in
            // the folder: `name` is always the new name, made or refused.
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    zero_or_os_error(linked)
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;
    use std::os::unix::fs::symlink;

    use super::*;

    fn names_in(dir: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    /// Publishes by `route` (not the process's, which other tests share).
    fn publish_by(route: u8, folder: &File, name: &CStr, bytes: &[u8]) -> io::Result<()> {
        let mut file = File::from(open_unnamed(folder.as_fd())?);
        file.write_all(bytes)?;
        name_file(route, &file, folder.as_fd(), name).expect("this system names unnamed files")
    }

    #[test]
    fn each_route_publishes_one_name_and_never_replaces_or_follows() {
        for route in [BY_DESCRIPTOR, BY_PROC] {
            let dir = tempfile::tempdir().unwrap();
            let folder = File::open(dir.path()).unwrap();
            publish_by(route, &folder, c"a.json", b"{}").unwrap();
            assert_eq!(names_in(dir.path()), ["a.json"]);
            assert_eq!(std::fs::read(dir.path().join("a.json")).unwrap(), b"{}");

            let taken = publish_by(route, &folder, c"a.json", b"[]").unwrap_err();
            assert_eq!(taken.kind(), io::ErrorKind::AlreadyExists, "route {route}");
            assert_eq!(names_in(dir.path()), ["a.json"]);
            assert_eq!(std::fs::read(dir.path().join("a.json")).unwrap(), b"{}");

            // A link under the final name is a taken name, not followed.
            let outside = tempfile::tempdir().unwrap();
            let target = outside.path().join("target.json");
            symlink(&target, dir.path().join("link.json")).unwrap();
            let taken = publish_by(route, &folder, c"link.json", b"{}").unwrap_err();
            assert_eq!(taken.kind(), io::ErrorKind::AlreadyExists, "route {route}");
            assert!(!target.exists(), "route {route} followed the link");
            assert_eq!(names_in(dir.path()), ["a.json", "link.json"]);
        }
    }

    #[test]
    fn a_removed_folder_is_an_error_not_a_missing_feature() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone");
        std::fs::create_dir(&gone).unwrap();
        let folder = File::open(&gone).unwrap();
        std::fs::remove_dir(&gone).unwrap();
        for route in [BY_DESCRIPTOR, BY_PROC] {
            // No unnamed file can be made there: the naming is tried with
            // one made elsewhere.
            let elsewhere = File::open(dir.path()).unwrap();
            let file = File::from(open_unnamed(elsewhere.as_fd()).unwrap());
            let named = name_file(route, &file, folder.as_fd(), c"a.json");
            let e = named
                .expect("a removed folder said unsupported")
                .unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::NotFound, "route {route}: {e}");
        }
        assert!(
            matches!(
                publish(folder.as_fd(), c"a.json", b"{}", true),
                Some(Err(PublishError::Write(e))) if e.kind() == io::ErrorKind::NotFound
            ),
            "a removed folder was not a missing one"
        );
        assert_eq!(ROUTE.load(Ordering::Relaxed), BY_DESCRIPTOR);
    }

    #[test]
    fn publish_flushes_and_leaves_only_the_final_name() {
        let dir = tempfile::tempdir().unwrap();
        let folder = File::open(dir.path()).unwrap();
        for durable in [true, false] {
            let name = if durable { c"d.json" } else { c"n.json" };
            publish(folder.as_fd(), name, b"{}", durable)
                .expect("this system makes unnamed files")
                .unwrap();
        }
        assert_eq!(names_in(dir.path()), ["d.json", "n.json"]);
        assert!(matches!(
            publish(folder.as_fd(), c"d.json", b"[]", false),
            Some(Err(PublishError::Link(e))) if e.kind() == io::ErrorKind::AlreadyExists
        ));
        assert_eq!(std::fs::read(dir.path().join("d.json")).unwrap(), b"{}");
        assert_eq!(names_in(dir.path()), ["d.json", "n.json"]);
    }
}
