//! The batch file reads this host gives the queue component
//! (`fmes:queue/reads`, in the `queue-hosted` world).
//!
//! Through WASI 0.2 a message file takes four calls into the host to read
//! (open, stat, read, drop), and wasmtime-wasi does more work in each than
//! the system call under it (resolving the path beneath the preopen, a
//! zeroed buffer for the read, a resource table entry for the descriptor);
//! `receive` reads every message of a mailbox, so that was most of its time.
//! Here one call reads many files with the system calls alone.
//!
//! Nothing is widened: every name is a single name inside a folder
//! descriptor the component already holds (a name with a `/`, `.` or `..`
//! is refused), opened without following a symbolic link and without
//! blocking on a FIFO, and only regular files are read.

use std::ffi::CString;
use std::os::fd::AsFd;
use std::sync::Arc;

use rustix::fs::{FileType, Mode, OFlags};
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::filesystem::Descriptor;
use wasmtime_wasi::p2::bindings::sync::filesystem::types::ErrorCode;

use crate::bindings::fmes::queue::reads::FileRead;
use crate::listing::error_code;

/// The interface this module implements.
const READS: &str = "fmes:queue/reads@0.1.0";

/// Bytes of contents after which an answer stops (the caller asks again for
/// the rest): enough that a call's fixed cost vanishes, small enough that a
/// batch of large files does not hold much at once.
const BATCH_BYTES: u64 = 1024 * 1024;

/// Adds `fmes:queue/reads` to a linker that has wasmtime-wasi's
/// `wasi:filesystem` (whose descriptors it takes).
pub fn add_to_linker<T: WasiView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    let mut reads = linker.instance(READS)?;
    reads.func_wrap(
        "read-files",
        |mut store: StoreContextMut<'_, T>,
         (folder, names, cap): (Resource<Descriptor>, Vec<String>, u64)| {
            let table = store.data_mut().ctx().table;
            let answers = match table.get(&folder)? {
                Descriptor::Dir(dir) => read_files(&dir.dir, &names, cap),
                // Not a folder: every name fails alike.
                Descriptor::File(_) => names
                    .iter()
                    .take(1)
                    .map(|_| FileRead::Failed(ErrorCode::NotDirectory))
                    .collect(),
            };
            Ok((answers,))
        },
    )?;
    Ok(())
}

/// Reads `names` inside `folder` in order, stopping after the one that
/// brings the contents read past `BATCH_BYTES`.
fn read_files(folder: &Arc<std::fs::File>, names: &[String], cap: u64) -> Vec<FileRead> {
    let mut answers = Vec::with_capacity(names.len());
    let mut total = 0u64;
    for name in names {
        let answer = read_file(folder, name, cap);
        if let FileRead::Contents(bytes) = &answer {
            total += bytes.len() as u64;
        }
        answers.push(answer);
        if total >= BATCH_BYTES {
            break;
        }
    }
    answers
}

/// `name` for a system call, if it is one name inside a folder: nothing to
/// resolve, nothing to leave the folder by.
pub(crate) fn single_name(name: &str) -> Result<CString, ErrorCode> {
    check_name(name)?;
    CString::new(name).map_err(|_| ErrorCode::Invalid)
}

/// Checks that `name` is one name inside a folder, as `single_name` does,
/// without making a copy for the system call: rustix takes a `&str` (onto
/// its stack), and a send checks several names.
pub(crate) fn check_name(name: &str) -> Result<(), ErrorCode> {
    // Bytes, not a `char` pattern, which is several times slower.
    if name.is_empty() || name == "." || name == ".." || name.bytes().any(|b| b == b'/' || b == 0) {
        return Err(ErrorCode::Invalid);
    }
    Ok(())
}

fn read_file(folder: &Arc<std::fs::File>, name: &str, cap: u64) -> FileRead {
    let c_name = match single_name(name) {
        Ok(c_name) => c_name,
        Err(code) => return FileRead::Failed(code),
    };
    // NOFOLLOW: a link is an error (`loop`), never read through; NONBLOCK:
    // opening a FIFO must not wait for a writer.
    let file = match rustix::fs::openat(
        folder.as_fd(),
        &c_name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    ) {
        Ok(file) => file,
        Err(e) => return FileRead::Failed(error_code(e)),
    };
    let stat = match rustix::fs::fstat(&file) {
        Ok(stat) => stat,
        Err(e) => return FileRead::Failed(error_code(e)),
    };
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return FileRead::NotAFile;
    }
    let size = u64::try_from(stat.st_size).unwrap_or(0);
    if size > cap {
        return FileRead::TooLarge;
    }
    // Room for one byte more than the size, so a file that did not grow is
    // read to its end in one call; it may grow: never read past the cap.
    let mut bytes = Vec::with_capacity(size as usize + 1);
    loop {
        if bytes.len() == bytes.capacity() {
            bytes.reserve(bytes.capacity().max(4096));
        }
        match rustix::io::read(&file, rustix::buffer::spare_capacity(&mut bytes)) {
            Ok(0) => return FileRead::Contents(bytes),
            Ok(_) if bytes.len() as u64 > cap => return FileRead::TooLarge,
            // A read that stops short where the status said the file ends is
            // at its end: one more call would only say so (one system call
            // of five per message). Short anywhere else, read on.
            Ok(_) if bytes.len() as u64 == size && bytes.len() < bytes.capacity() => {
                return FileRead::Contents(bytes);
            }
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return FileRead::Failed(error_code(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn folder() -> (tempfile::TempDir, Arc<std::fs::File>) {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::File::open(dir.path()).unwrap();
        (dir, Arc::new(file))
    }

    fn failed_with(answer: &FileRead) -> Option<ErrorCode> {
        match answer {
            FileRead::Failed(code) => Some(*code),
            _ => None,
        }
    }

    #[test]
    fn only_single_names_inside_the_folder_are_read() {
        let (dir, folder) = folder();
        std::fs::write(dir.path().join("a.json"), "{}").unwrap();
        let inner = dir.path().join("inner");
        std::fs::create_dir(&inner).unwrap();
        std::fs::write(inner.join("b.json"), "{}").unwrap();
        for name in [
            "",
            ".",
            "..",
            "inner/b.json",
            "../a.json",
            "/etc/passwd",
            "a\0.json",
        ] {
            let answer = read_file(&folder, name, 1024);
            assert_eq!(failed_with(&answer), Some(ErrorCode::Invalid), "{name:?}");
        }
        assert!(matches!(read_file(&folder, "a.json", 1024), FileRead::Contents(b) if b == b"{}"));
    }

    #[test]
    fn links_folders_and_fifos_are_not_read_and_nothing_blocks() {
        let (dir, folder) = folder();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.json"), "{}").unwrap();
        symlink(
            outside.path().join("secret.json"),
            dir.path().join("link.json"),
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("folder.json")).unwrap();
        let fifo = std::ffi::CString::new(
            dir.path()
                .join("fifo.json")
                .into_os_string()
                .into_encoded_bytes(),
        )
        .unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);

        assert_eq!(
            failed_with(&read_file(&folder, "link.json", 1024)),
            Some(ErrorCode::Loop)
        );
        assert!(matches!(
            read_file(&folder, "folder.json", 1024),
            FileRead::NotAFile
        ));
        // No writer holds the FIFO open: a blocking open would hang here.
        assert!(matches!(
            read_file(&folder, "fifo.json", 1024),
            FileRead::NotAFile
        ));
        assert_eq!(
            failed_with(&read_file(&folder, "gone.json", 1024)),
            Some(ErrorCode::NoEntry)
        );
    }

    #[test]
    fn files_past_the_cap_are_not_read_and_a_batch_stops_after_a_megabyte() {
        let (dir, folder) = folder();
        std::fs::write(dir.path().join("small.json"), "[1]").unwrap();
        std::fs::write(dir.path().join("exact.json"), "[12]").unwrap();
        std::fs::write(dir.path().join("big.json"), "[123]").unwrap();
        assert!(
            matches!(read_file(&folder, "exact.json", 4), FileRead::Contents(b) if b == b"[12]")
        );
        assert!(matches!(
            read_file(&folder, "big.json", 4),
            FileRead::TooLarge
        ));

        let half = vec![b' '; 600 * 1024];
        for name in ["1.json", "2.json", "3.json"] {
            std::fs::write(dir.path().join(name), &half).unwrap();
        }
        let names: Vec<String> = ["small.json", "1.json", "2.json", "3.json"]
            .map(String::from)
            .to_vec();
        let answers = read_files(&folder, &names, 1 << 20);
        // small + 1 + 2 pass a megabyte: 3 is left for the next call.
        assert_eq!(answers.len(), 3);
        assert!(matches!(&answers[2], FileRead::Contents(b) if b.len() == half.len()));
        let rest = read_files(&folder, &names[3..], 1 << 20);
        assert_eq!(rest.len(), 1);
    }
}
