//! A file system for tests on which other processes act, or this one
//! stops, at chosen points of an operation.

use std::cell::RefCell;
use std::io;

use crate::fs::{DirEntry, EntryKind, FileSystem, ReadOutcome, Status};

/// Which operation on which paths: its name (`list`, `create_dir`,
/// `status`, `read`, `write`, `rename`, `same_file`, `sync`, `link_count`,
/// `link`, `remove`), its path, and the second path of a rename or link
/// (else empty).
pub type Matcher = Box<dyn Fn(&str, &str, &str) -> bool>;

/// What a hook does before one operation: nothing, something of another
/// process's first, or fail it (the process stopping there).
pub type Hook = Box<dyn FnMut(&str, &str, &str) -> Option<io::Error>>;

/// A file system whose every operation first calls a hook with its name
/// and paths.
pub struct HookFs<F> {
    inner: F,
    hook: RefCell<Option<Hook>>,
}

impl<F> HookFs<F> {
    pub fn new(inner: F) -> HookFs<F> {
        HookFs {
            inner,
            hook: RefCell::new(None),
        }
    }

    /// Calls `hook` before every operation from now on, in place of any
    /// hook before.
    pub fn set_hook(&self, hook: impl FnMut(&str, &str, &str) -> Option<io::Error> + 'static) {
        *self.hook.borrow_mut() = Some(Box::new(hook));
    }

    fn before(&self, op: &str, a: &str, b: &str) -> io::Result<()> {
        // Taken out while it runs: it may use this file system itself.
        let Some(mut hook) = self.hook.borrow_mut().take() else {
            return Ok(());
        };
        let failed = hook(op, a, b);
        self.hook.borrow_mut().get_or_insert(hook);
        failed.map_or(Ok(()), Err)
    }
}

/// A hook that runs `run` once, before the first operation `when` matches.
pub fn once_before(when: Matcher, run: impl FnOnce() + 'static) -> Hook {
    let mut run = Some(run);
    Box::new(move |op, a, b| {
        if run.is_some() && when(op, a, b) {
            (run.take().expect("checked"))();
        }
        None
    })
}

/// A hook that fails the first operation `at` matches and every one after
/// it: the process killed there.
pub fn killed_at(at: Matcher) -> Hook {
    let mut killed = false;
    Box::new(move |op, a, b| {
        killed = killed || at(op, a, b);
        killed.then(|| io::Error::other("killed"))
    })
}

impl<F: FileSystem> FileSystem for HookFs<F> {
    fn list(&self, dir: &str) -> io::Result<Vec<DirEntry>> {
        self.before("list", dir, "")?;
        self.inner.list(dir)
    }
    fn for_each_entry(&self, dir: &str, each: &mut dyn FnMut(&str, EntryKind)) -> io::Result<()> {
        self.before("list", dir, "")?;
        self.inner.for_each_entry(dir, each)
    }
    fn create_dir(&self, path: &str) -> io::Result<()> {
        self.before("create_dir", path, "")?;
        self.inner.create_dir(path)
    }
    fn status(&self, path: &str) -> io::Result<Status> {
        self.before("status", path, "")?;
        self.inner.status(path)
    }
    fn read(&self, path: &str, cap: u64) -> io::Result<ReadOutcome> {
        self.before("read", path, "")?;
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
        self.before("same_file", a, b)?;
        self.inner.same_file(a, b)
    }
    fn sync_dir(&self, dir: &str) -> io::Result<()> {
        self.before("sync", dir, "")?;
        self.inner.sync_dir(dir)
    }
    fn link_count(&self, path: &str) -> io::Result<u64> {
        self.before("link_count", path, "")?;
        self.inner.link_count(path)
    }
    fn link(&self, from: &str, to: &str) -> io::Result<()> {
        self.before("link", from, to)?;
        self.inner.link(from, to)
    }
    fn remove_file(&self, path: &str) -> io::Result<()> {
        self.before("remove", path, "")?;
        self.inner.remove_file(path)
    }
}
