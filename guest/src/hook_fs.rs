//! A file system for tests on which other processes act, or this one
//! stops, at chosen points of an operation.

use std::cell::RefCell;
use std::io;

use crate::fs::mem_fs::MemFs;
use crate::fs::{DirEntry, EntryKind, FileSystem, ReadOutcome, Status};

/// What a hook does before one operation: nothing, something of another
/// process's first, or fail it (the process stopping there).
pub type Hook = Box<dyn FnMut(&str, &str, &str) -> Option<io::Error>>;

/// The in-memory file system, with a hook called before each write, link
/// and rename with the operation's name and paths.
pub struct HookFs {
    inner: MemFs,
    pub hook: RefCell<Option<Hook>>,
}

impl HookFs {
    pub fn new(inner: &MemFs) -> HookFs {
        HookFs {
            inner: inner.clone(),
            hook: RefCell::new(None),
        }
    }

    fn before(&self, op: &str, a: &str, b: &str) -> io::Result<()> {
        // Taken out while it runs: it may use this file system itself.
        let Some(mut hook) = self.hook.borrow_mut().take() else {
            return Ok(());
        };
        let failed = hook(op, a, b);
        *self.hook.borrow_mut() = Some(hook);
        failed.map_or(Ok(()), Err)
    }
}

impl FileSystem for HookFs {
    fn list(&self, dir: &str) -> io::Result<Vec<DirEntry>> {
        self.inner.list(dir)
    }
    fn for_each_entry(&self, dir: &str, each: &mut dyn FnMut(&str, EntryKind)) -> io::Result<()> {
        self.inner.for_each_entry(dir, each)
    }
    fn create_dir(&self, path: &str) -> io::Result<()> {
        self.inner.create_dir(path)
    }
    fn status(&self, path: &str) -> io::Result<Status> {
        self.inner.status(path)
    }
    fn read(&self, path: &str, cap: u64) -> io::Result<ReadOutcome> {
        self.inner.read(path, cap)
    }
    fn write_new(&self, path: &str, bytes: &[u8], durable: bool) -> io::Result<()> {
        self.before("write", path, "")?;
        self.inner.write_new(path, bytes, durable)
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.before("rename", from, to)?;
        self.inner.rename(from, to)
    }
    fn same_file(&self, a: &str, b: &str) -> io::Result<bool> {
        self.inner.same_file(a, b)
    }
    fn sync_dir(&self, dir: &str) -> io::Result<()> {
        self.inner.sync_dir(dir)
    }
    fn link_count(&self, path: &str) -> io::Result<u64> {
        self.inner.link_count(path)
    }
    fn link(&self, from: &str, to: &str) -> io::Result<()> {
        self.before("link", from, to)?;
        self.inner.link(from, to)
    }
    fn remove_file(&self, path: &str) -> io::Result<()> {
        self.inner.remove_file(path)
    }
}
