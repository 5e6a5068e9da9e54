//! A file system for tests that counts what is done through it, to show an
//! operation does not list, read or rename more than it should.

use std::cell::Cell;
use std::io;
use std::path::Path;
use std::rc::Rc;

use crate::StdFs;
use crate::fs::{DirEntry, EntryKind, FileSystem, ReadOutcome, Status};

/// `StdFs`, counting the folder listings, file reads and renames (tried,
/// whether they succeed or not) made through it.
pub struct CountingFs {
    inner: StdFs,
    pub listings: Rc<Cell<usize>>,
    pub reads: Rc<Cell<usize>>,
    pub renames: Rc<Cell<usize>>,
}

impl CountingFs {
    pub fn new(root: &Path) -> CountingFs {
        CountingFs {
            inner: StdFs::new(root.to_str().unwrap()),
            listings: Rc::default(),
            reads: Rc::default(),
            renames: Rc::default(),
        }
    }
}

fn count(counter: &Cell<usize>) {
    counter.set(counter.get() + 1);
}

impl FileSystem for CountingFs {
    fn list(&self, dir: &str) -> io::Result<Vec<DirEntry>> {
        count(&self.listings);
        self.inner.list(dir)
    }
    fn for_each_entry(&self, dir: &str, each: &mut dyn FnMut(&str, EntryKind)) -> io::Result<()> {
        count(&self.listings);
        self.inner.for_each_entry(dir, each)
    }
    fn create_dir(&self, path: &str) -> io::Result<()> {
        self.inner.create_dir(path)
    }
    fn status(&self, path: &str) -> io::Result<Status> {
        self.inner.status(path)
    }
    fn read(&self, path: &str, cap: u64) -> io::Result<ReadOutcome> {
        count(&self.reads);
        self.inner.read(path, cap)
    }
    fn write_new(&self, path: &str, bytes: &[u8], durable: bool) -> io::Result<()> {
        self.inner.write_new(path, bytes, durable)
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        count(&self.renames);
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
        self.inner.link(from, to)
    }
    fn remove_file(&self, path: &str) -> io::Result<()> {
        self.inner.remove_file(path)
    }
}
