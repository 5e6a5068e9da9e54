//! The backend on `std::fs`.

use std::io;

use super::{DirEntry, EntryKind, FileSystem, ReadOutcome, Status};

/// The backend on `std::fs`, rooted at any directory.
#[derive(Debug, Clone)]
pub struct StdFs {
    root: String,
}

impl StdFs {
    /// A backend whose root is `root` (a path without a trailing `/`).
    pub fn new(root: impl Into<String>) -> Self {
        let mut root = root.into();
        while root.len() > 1 && root.ends_with('/') {
            root.pop();
        }
        StdFs { root }
    }

    fn path(&self, relative: &str) -> String {
        if relative.is_empty() {
            self.root.clone()
        } else {
            format!("{}/{}", self.root, relative)
        }
    }
}

fn kind_of(file_type: std::fs::FileType) -> EntryKind {
    if file_type.is_symlink() {
        EntryKind::Symlink
    } else if file_type.is_dir() {
        EntryKind::Dir
    } else if file_type.is_file() {
        EntryKind::File
    } else {
        EntryKind::Other
    }
}

impl FileSystem for StdFs {
    fn list(&self, dir: &str) -> io::Result<Vec<DirEntry>> {
        super::collect_entries(self, dir)
    }

    fn for_each_entry(&self, dir: &str, each: &mut dyn FnMut(&str, EntryKind)) -> io::Result<()> {
        for entry in std::fs::read_dir(self.path(dir))? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            // A failed file_type means the entry vanished or is unreadable:
            // report it as Other so callers skip it rather than fail.
            let kind = entry.file_type().map(kind_of).unwrap_or(EntryKind::Other);
            each(&name, kind);
        }
        Ok(())
    }

    fn create_dir(&self, path: &str) -> io::Result<()> {
        std::fs::create_dir(self.path(path))
    }

    fn status(&self, path: &str) -> io::Result<Status> {
        let meta = std::fs::symlink_metadata(self.path(path))?;
        Ok(Status {
            kind: kind_of(meta.file_type()),
            modified: meta.modified()?,
        })
    }

    fn read(&self, path: &str, cap: u64) -> io::Result<ReadOutcome> {
        use std::io::Read;
        let mut file = open_no_follow(&self.path(path))?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        if meta.len() > cap {
            return Ok(ReadOutcome::TooLarge);
        }
        // As the fmes host reads (host/src/reads.rs), so that both make the
        // same calls: room for one byte more than the size, and a read that
        // stops short at that size is the end. The file may grow after the
        // size check: never read past the cap.
        let size = meta.len();
        let mut bytes = vec![0; size as usize + 1];
        let mut len = 0;
        loop {
            if len == bytes.len() {
                bytes.resize(len + len.max(4096), 0);
            }
            let n = match file.read(&mut bytes[len..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            len += n;
            if len as u64 > cap {
                return Ok(ReadOutcome::TooLarge);
            }
            if n == 0 || (len as u64 == size && len < bytes.len()) {
                bytes.truncate(len);
                return Ok(ReadOutcome::Bytes(bytes));
            }
        }
    }

    fn write_new(&self, path: &str, bytes: &[u8], durable: bool) -> io::Result<()> {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(self.path(path))?;
        file.write_all(bytes)?;
        if durable {
            file.sync_data()?;
        }
        Ok(())
    }

    /// The same system calls as the `fmes` host's `publish`: the folder
    /// opened (never through a symbolic link), an unnamed file written in it
    /// and linked under its name; through the temporary name where this
    /// system has no unnamed files.
    #[cfg(target_os = "linux")]
    fn publish(
        &self,
        dir: &str,
        name: &str,
        bytes: &[u8],
        durable: bool,
    ) -> Result<(), super::PublishError> {
        use super::PublishError;
        use std::os::fd::AsFd;
        use std::os::unix::fs::OpenOptionsExt;
        let c_name = match std::ffi::CString::new(name) {
            Ok(c_name) if !name.contains('/') => c_name,
            _ => {
                return Err(PublishError::Link(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{name:?} is not a file name"),
                )));
            }
        };
        let folder = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(self.path(dir))
            .map_err(PublishError::Folder)?;
        match super::unnamed::publish(folder.as_fd(), &c_name, bytes, durable) {
            Some(published) => published,
            None => super::publish_named(self, dir, name, bytes, durable),
        }
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        std::fs::rename(self.path(from), self.path(to))
    }

    fn same_file(&self, a: &str, b: &str) -> io::Result<bool> {
        let a = std::fs::symlink_metadata(self.path(a))?;
        let b = std::fs::symlink_metadata(self.path(b))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Ok(a.dev() == b.dev() && a.ino() == b.ino())
        }
        #[cfg(not(unix))]
        {
            Ok(a.len() == b.len() && a.modified()? == b.modified()?)
        }
    }

    fn sync_dir(&self, dir: &str) -> io::Result<()> {
        std::fs::File::open(self.path(dir))?.sync_all()
    }

    fn link_count(&self, path: &str) -> io::Result<u64> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Ok(std::fs::symlink_metadata(self.path(path))?.nlink())
        }
        #[cfg(not(unix))]
        {
            let _ = path;
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "link counts are only read on Unix",
            ))
        }
    }

    fn link(&self, from: &str, to: &str) -> io::Result<()> {
        std::fs::hard_link(self.path(from), self.path(to))
    }

    fn remove_file(&self, path: &str) -> io::Result<()> {
        std::fs::remove_file(self.path(path))
    }
}

/// Opens a file for reading, refusing a symbolic link as the last component.
///
/// Natively this is `O_NOFOLLOW`, so a link swapped in after a check is still
/// refused. In the component the WASI host already confines every path to
/// the preopen, and a link is refused by the status check before the read.
fn open_no_follow(path: &str) -> io::Result<std::fs::File> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
    }
    #[cfg(not(unix))]
    {
        let meta = std::fs::symlink_metadata(path)?;
        if meta.file_type().is_symlink() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a symbolic link",
            ));
        }
        std::fs::File::open(path)
    }
}
