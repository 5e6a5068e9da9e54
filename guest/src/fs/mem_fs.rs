//! An in-memory [`FileSystem`] for tests, faithful to the POSIX semantics the
//! queue relies on:
//!
//! - `write_new` and `create_dir` fail with `AlreadyExists` if anything has
//!   the name, and with `NotFound` if the parent folder is missing;
//! - `link` fails with `AlreadyExists` if the target exists, `NotFound` if the
//!   source is missing, and refuses folders (`PermissionDenied`, as `EPERM`);
//! - `rename` replaces a target file (or an empty folder with a folder), fails
//!   with `NotFound` for a missing source, and does nothing when source and
//!   target are hard links of one file (as POSIX says);
//! - hard links share one inode: [`FileSystem::same_file`] is true for them,
//!   and [`FileSystem::link_count`] counts the names of a file;
//! - `status` reports a modification time taken, when the file or folder was
//!   created, from a clock the test sets ([`MemFs::set_now`],
//!   [`MemFs::advance`]); renames and links keep it, as on disk.
//!
//! Every clone shares the same tree, so a test keeps one handle to inspect
//! and change what the queue sees. Paths the queue passes are checked to be
//! relative and free of `.`/`..` components: a bad one panics.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use super::{DirEntry, EntryKind, FileSystem, ReadOutcome, Status};

/// One inode's data.
#[derive(Debug)]
struct Inode {
    ino: u64,
    bytes: Vec<u8>,
    modified: SystemTime,
}

#[derive(Debug, Clone)]
enum Node {
    Dir {
        ino: u64,
        modified: SystemTime,
    },
    File(Arc<Inode>),
    Symlink {
        ino: u64,
        target: String,
        modified: SystemTime,
    },
}

impl Node {
    fn kind(&self) -> EntryKind {
        match self {
            Node::Dir { .. } => EntryKind::Dir,
            Node::File(_) => EntryKind::File,
            Node::Symlink { .. } => EntryKind::Symlink,
        }
    }

    fn ino(&self) -> u64 {
        match self {
            Node::Dir { ino, .. } | Node::Symlink { ino, .. } => *ino,
            Node::File(inode) => inode.ino,
        }
    }

    fn modified(&self) -> SystemTime {
        match self {
            Node::Dir { modified, .. } | Node::Symlink { modified, .. } => *modified,
            Node::File(inode) => inode.modified,
        }
    }
}

#[derive(Debug)]
struct Tree {
    /// Every path but the root (""), which always exists as a folder.
    nodes: BTreeMap<String, Node>,
    now: SystemTime,
    next_ino: u64,
}

/// A file as [`MemFs::files`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileInfo {
    pub path: String,
    pub kind: EntryKind,
    /// The bytes of a regular file (empty for a symbolic link).
    pub bytes: Vec<u8>,
    /// The inode number: equal for hard links of one file.
    pub ino: u64,
    pub modified: SystemTime,
}

/// The in-memory backend; clones share one tree and one clock.
#[derive(Debug, Clone)]
pub(crate) struct MemFs {
    tree: Arc<Mutex<Tree>>,
}

impl Default for MemFs {
    fn default() -> Self {
        MemFs::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
    }
}

fn err(kind: io::ErrorKind, what: &str, path: &str) -> io::Error {
    io::Error::new(kind, format!("{what}: {path:?}"))
}

fn not_found(path: &str) -> io::Error {
    err(io::ErrorKind::NotFound, "no such file or directory", path)
}

/// Panics on a path the queue must never build.
fn check_path(path: &str) {
    assert!(
        !path.starts_with('/')
            && !path.ends_with('/')
            && (path.is_empty()
                || path
                    .split('/')
                    .all(|c| !c.is_empty() && c != "." && c != "..")),
        "the queue passed a bad path: {path:?}"
    );
    assert!(
        !path.contains('\0'),
        "the queue passed a path with NUL: {path:?}"
    );
}

fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(parent, _)| parent)
}

fn is_under(path: &str, dir: &str) -> bool {
    dir.is_empty()
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

impl Tree {
    fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    fn is_dir(&self, path: &str) -> bool {
        path.is_empty() || matches!(self.get(path), Some(Node::Dir { .. }))
    }

    /// Checks that a path's parent folder exists, as a folder.
    fn check_parent(&self, path: &str) -> io::Result<()> {
        let parent = parent_of(path);
        if self.is_dir(parent) {
            return Ok(());
        }
        // Walk down to say which component is wrong, as the kernel would.
        let mut prefix = String::new();
        for part in parent.split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            match self.get(&prefix) {
                None => return Err(not_found(path)),
                Some(Node::Dir { .. }) => {}
                Some(_) => {
                    return Err(err(io::ErrorKind::NotADirectory, "not a directory", path));
                }
            }
        }
        Err(not_found(path))
    }

    /// Checks that a path can be looked up and returns its node.
    fn lookup(&self, path: &str) -> io::Result<&Node> {
        self.check_parent(path)?;
        self.get(path).ok_or_else(|| not_found(path))
    }

    fn fresh_ino(&mut self) -> u64 {
        self.next_ino += 1;
        self.next_ino
    }

    fn children(&self, dir: &str) -> Vec<(String, &Node)> {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        self.nodes
            .range(prefix.clone()..)
            .take_while(|(path, _)| path.starts_with(&prefix))
            .filter_map(|(path, node)| {
                let name = &path[prefix.len()..];
                (!name.contains('/')).then(|| (name.to_string(), node))
            })
            .collect()
    }

    fn has_children(&self, dir: &str) -> bool {
        !self.children(dir).is_empty()
    }

    fn create_file(&mut self, path: &str, bytes: &[u8], modified: SystemTime) -> io::Result<()> {
        check_path(path);
        if path.is_empty() {
            return Err(err(io::ErrorKind::AlreadyExists, "file exists", path));
        }
        self.check_parent(path)?;
        if self.get(path).is_some() {
            return Err(err(io::ErrorKind::AlreadyExists, "file exists", path));
        }
        let ino = self.fresh_ino();
        self.nodes.insert(
            path.to_string(),
            Node::File(Arc::new(Inode {
                ino,
                bytes: bytes.to_vec(),
                modified,
            })),
        );
        Ok(())
    }
}

impl MemFs {
    /// An empty tree (just the root folder) whose clock reads `now`.
    pub fn new(now: SystemTime) -> Self {
        MemFs {
            tree: Arc::new(Mutex::new(Tree {
                nodes: BTreeMap::new(),
                now,
                next_ino: 1,
            })),
        }
    }

    fn tree(&self) -> MutexGuard<'_, Tree> {
        self.tree.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the clock reads: the modification time of what is created now.
    pub fn now(&self) -> SystemTime {
        self.tree().now
    }

    /// Sets the clock.
    pub fn set_now(&self, now: SystemTime) {
        self.tree().now = now;
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut tree = self.tree();
        tree.now += by;
    }

    /// Creates a file with a given modification time (a test planting a file).
    pub fn write_at(&self, path: &str, bytes: &[u8], modified: SystemTime) -> io::Result<()> {
        self.tree().create_file(path, bytes, modified)
    }

    /// Creates a symbolic link (never followed by this backend).
    pub fn symlink(&self, target: &str, path: &str) -> io::Result<()> {
        check_path(path);
        let mut tree = self.tree();
        tree.check_parent(path)?;
        if tree.get(path).is_some() {
            return Err(err(io::ErrorKind::AlreadyExists, "file exists", path));
        }
        let ino = tree.fresh_ino();
        let modified = tree.now;
        tree.nodes.insert(
            path.to_string(),
            Node::Symlink {
                ino,
                target: target.to_string(),
                modified,
            },
        );
        Ok(())
    }

    /// Every file and symbolic link in the tree, by path.
    pub fn files(&self) -> Vec<FileInfo> {
        self.tree()
            .nodes
            .iter()
            .filter_map(|(path, node)| match node {
                Node::Dir { .. } => None,
                Node::File(inode) => Some(FileInfo {
                    path: path.clone(),
                    kind: EntryKind::File,
                    bytes: inode.bytes.clone(),
                    ino: inode.ino,
                    modified: inode.modified,
                }),
                Node::Symlink {
                    ino,
                    target,
                    modified,
                } => Some(FileInfo {
                    path: path.clone(),
                    kind: EntryKind::Symlink,
                    bytes: target.as_bytes().to_vec(),
                    ino: *ino,
                    modified: *modified,
                }),
            })
            .collect()
    }
}

impl FileSystem for MemFs {
    fn list(&self, dir: &str) -> io::Result<Vec<DirEntry>> {
        check_path(dir);
        let tree = self.tree();
        if !dir.is_empty() {
            match tree.lookup(dir)? {
                Node::Dir { .. } => {}
                _ => return Err(err(io::ErrorKind::NotADirectory, "not a directory", dir)),
            }
        }
        Ok(tree
            .children(dir)
            .into_iter()
            .map(|(name, node)| DirEntry {
                name,
                kind: node.kind(),
            })
            .collect())
    }

    fn create_dir(&self, path: &str) -> io::Result<()> {
        check_path(path);
        let mut tree = self.tree();
        if path.is_empty() {
            return Err(err(io::ErrorKind::AlreadyExists, "file exists", path));
        }
        tree.check_parent(path)?;
        if tree.get(path).is_some() {
            return Err(err(io::ErrorKind::AlreadyExists, "file exists", path));
        }
        let ino = tree.fresh_ino();
        let modified = tree.now;
        tree.nodes
            .insert(path.to_string(), Node::Dir { ino, modified });
        Ok(())
    }

    fn status(&self, path: &str) -> io::Result<Status> {
        check_path(path);
        let tree = self.tree();
        if path.is_empty() {
            return Ok(Status {
                kind: EntryKind::Dir,
                modified: SystemTime::UNIX_EPOCH,
            });
        }
        let node = tree.lookup(path)?;
        Ok(Status {
            kind: node.kind(),
            modified: node.modified(),
        })
    }

    fn read(&self, path: &str, cap: u64) -> io::Result<ReadOutcome> {
        check_path(path);
        let tree = self.tree();
        if path.is_empty() {
            return Err(err(io::ErrorKind::IsADirectory, "is a directory", path));
        }
        match tree.lookup(path)? {
            Node::File(inode) => {
                if inode.bytes.len() as u64 > cap {
                    Ok(ReadOutcome::TooLarge)
                } else {
                    Ok(ReadOutcome::Bytes(inode.bytes.clone()))
                }
            }
            Node::Dir { .. } => Err(err(io::ErrorKind::IsADirectory, "is a directory", path)),
            // O_NOFOLLOW on a link: ELOOP.
            Node::Symlink { .. } => Err(io::Error::other(format!(
                "too many levels of symbolic links: {path:?}"
            ))),
        }
    }

    fn write_new(&self, path: &str, bytes: &[u8], _durable: bool) -> io::Result<()> {
        let mut tree = self.tree();
        let now = tree.now;
        tree.create_file(path, bytes, now)
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        check_path(from);
        check_path(to);
        let mut tree = self.tree();
        if from.is_empty() || to.is_empty() {
            return Err(err(
                io::ErrorKind::ResourceBusy,
                "cannot rename the root",
                from,
            ));
        }
        let source = tree.lookup(from)?.clone();
        tree.check_parent(to)?;
        if from == to {
            return Ok(());
        }
        match (&source, tree.get(to)) {
            // Two links of one file: POSIX rename does nothing, successfully.
            (Node::File(a), Some(Node::File(b))) if a.ino == b.ino => return Ok(()),
            (Node::Dir { .. }, _) if is_under(to, from) => {
                return Err(err(
                    io::ErrorKind::InvalidInput,
                    "cannot move a directory into itself",
                    to,
                ));
            }
            (Node::Dir { .. }, Some(Node::Dir { .. })) if tree.has_children(to) => {
                return Err(err(
                    io::ErrorKind::DirectoryNotEmpty,
                    "directory not empty",
                    to,
                ));
            }
            (Node::Dir { .. }, Some(Node::Dir { .. })) | (Node::Dir { .. }, None) => {}
            (Node::Dir { .. }, Some(_)) => {
                return Err(err(io::ErrorKind::NotADirectory, "not a directory", to));
            }
            (_, Some(Node::Dir { .. })) => {
                return Err(err(io::ErrorKind::IsADirectory, "is a directory", to));
            }
            (_, _) => {}
        }
        // Move the node and, for a folder, everything under it.
        let moved: Vec<String> = if matches!(source, Node::Dir { .. }) {
            let prefix = format!("{from}/");
            tree.nodes
                .range(prefix.clone()..)
                .take_while(|(p, _)| p.starts_with(&prefix))
                .map(|(p, _)| p.clone())
                .collect()
        } else {
            Vec::new()
        };
        tree.nodes.remove(from);
        tree.nodes.insert(to.to_string(), source);
        for old in moved {
            let node = tree.nodes.remove(&old).expect("listed above");
            let new = format!("{to}{}", &old[from.len()..]);
            tree.nodes.insert(new, node);
        }
        Ok(())
    }

    fn same_file(&self, a: &str, b: &str) -> io::Result<bool> {
        check_path(a);
        check_path(b);
        let tree = self.tree();
        if a.is_empty() || b.is_empty() {
            return Ok(a == b);
        }
        let a = tree.lookup(a)?.ino();
        let b = tree.lookup(b)?.ino();
        Ok(a == b)
    }

    fn sync_dir(&self, dir: &str) -> io::Result<()> {
        check_path(dir);
        let tree = self.tree();
        if !dir.is_empty() {
            match tree.lookup(dir)? {
                Node::Dir { .. } => {}
                _ => return Err(err(io::ErrorKind::NotADirectory, "not a directory", dir)),
            }
        }
        Ok(())
    }

    fn link_count(&self, path: &str) -> io::Result<u64> {
        check_path(path);
        let tree = self.tree();
        if path.is_empty() {
            return Ok(2);
        }
        let node = tree.lookup(path)?;
        Ok(match node {
            // A folder's own name and its `.`; subfolders' `..` are not counted.
            Node::Dir { .. } => 2,
            Node::Symlink { .. } => 1,
            Node::File(inode) => tree
                .nodes
                .values()
                .filter(|n| matches!(n, Node::File(other) if other.ino == inode.ino))
                .count() as u64,
        })
    }

    fn link(&self, from: &str, to: &str) -> io::Result<()> {
        check_path(from);
        check_path(to);
        let mut tree = self.tree();
        let source = tree.lookup(from)?.clone();
        tree.check_parent(to)?;
        if to.is_empty() || tree.get(to).is_some() {
            return Err(err(io::ErrorKind::AlreadyExists, "file exists", to));
        }
        if matches!(source, Node::Dir { .. }) {
            return Err(err(
                io::ErrorKind::PermissionDenied,
                "cannot hard-link a directory",
                from,
            ));
        }
        tree.nodes.insert(to.to_string(), source);
        Ok(())
    }

    fn remove_file(&self, path: &str) -> io::Result<()> {
        check_path(path);
        let mut tree = self.tree();
        if path.is_empty() {
            return Err(err(io::ErrorKind::IsADirectory, "is a directory", path));
        }
        match tree.lookup(path)? {
            Node::Dir { .. } => Err(err(io::ErrorKind::IsADirectory, "is a directory", path)),
            _ => {
                tree.nodes.remove(path);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use io::ErrorKind::*;

    fn kind<T: std::fmt::Debug>(r: io::Result<T>) -> io::ErrorKind {
        r.unwrap_err().kind()
    }

    fn bytes(fs: &MemFs, path: &str) -> Vec<u8> {
        match fs.read(path, 1 << 20).unwrap() {
            ReadOutcome::Bytes(b) => b,
            ReadOutcome::TooLarge => panic!("too large"),
        }
    }

    #[test]
    fn creates_lists_and_refuses_to_replace() {
        let fs = MemFs::default();
        fs.create_dir("d").unwrap();
        assert_eq!(kind(fs.create_dir("d")), AlreadyExists);
        assert_eq!(kind(fs.create_dir("x/y")), NotFound);
        fs.write_new("d/a.json", b"1", true).unwrap();
        assert_eq!(kind(fs.write_new("d/a.json", b"2", true)), AlreadyExists);
        assert_eq!(kind(fs.write_new("d", b"2", true)), AlreadyExists);
        assert_eq!(kind(fs.write_new("nope/a", b"2", true)), NotFound);
        assert_eq!(kind(fs.write_new("d/a.json/x", b"2", true)), NotADirectory);
        fs.create_dir("d/sub").unwrap();
        fs.write_new("d/sub/deep", b"3", false).unwrap();
        let mut listed = fs.list("d").unwrap();
        listed.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(
            listed,
            [
                DirEntry {
                    name: "a.json".into(),
                    kind: EntryKind::File
                },
                DirEntry {
                    name: "sub".into(),
                    kind: EntryKind::Dir
                },
            ]
        );
        assert_eq!(fs.list("").unwrap().len(), 1);
        assert_eq!(kind(fs.list("missing")), NotFound);
        assert_eq!(kind(fs.list("d/a.json")), NotADirectory);
        assert_eq!(bytes(&fs, "d/a.json"), b"1");
        assert_eq!(fs.read("d/a.json", 0).unwrap(), ReadOutcome::TooLarge);
        assert_eq!(kind(fs.read("d", 10)), IsADirectory);
    }

    #[test]
    fn links_share_content_and_refuse_taken_names() {
        let fs = MemFs::default();
        fs.create_dir("d").unwrap();
        fs.write_new("d/a", b"A", true).unwrap();
        fs.write_new("d/b", b"B", true).unwrap();
        assert_eq!(kind(fs.link("d/a", "d/b")), AlreadyExists);
        assert_eq!(kind(fs.link("d/missing", "d/c")), NotFound);
        assert_eq!(kind(fs.link("d/a", "nope/c")), NotFound);
        assert_eq!(kind(fs.link("d", "e")), PermissionDenied);
        assert_eq!(fs.link_count("d/a").unwrap(), 1);
        fs.link("d/a", "d/c").unwrap();
        assert!(fs.same_file("d/a", "d/c").unwrap());
        assert_eq!(fs.link_count("d/a").unwrap(), 2);
        assert_eq!(fs.link_count("d/b").unwrap(), 1);
        assert!(!fs.same_file("d/a", "d/b").unwrap());
        assert_eq!(kind(fs.same_file("d/a", "d/zz")), NotFound);
        fs.remove_file("d/a").unwrap();
        assert_eq!(bytes(&fs, "d/c"), b"A");
        assert_eq!(fs.link_count("d/c").unwrap(), 1);
        assert_eq!(kind(fs.link_count("d/a")), NotFound);
        assert_eq!(kind(fs.remove_file("d/a")), NotFound);
        assert_eq!(kind(fs.remove_file("d")), IsADirectory);
    }

    #[test]
    fn renames_like_posix() {
        let fs = MemFs::default();
        fs.create_dir("d").unwrap();
        fs.write_new("d/a", b"A", true).unwrap();
        fs.write_new("d/b", b"B", true).unwrap();
        assert_eq!(kind(fs.rename("d/missing", "d/x")), NotFound);
        assert_eq!(kind(fs.rename("d/a", "nope/x")), NotFound);
        // Replaces a file.
        fs.rename("d/a", "d/b").unwrap();
        assert_eq!(kind(fs.status("d/a")), NotFound);
        assert_eq!(bytes(&fs, "d/b"), b"A");
        // Two links of one file: nothing happens.
        fs.link("d/b", "d/c").unwrap();
        fs.rename("d/b", "d/c").unwrap();
        assert!(fs.same_file("d/b", "d/c").unwrap());
        // Folders move with their contents, never into themselves, and
        // replace only an empty folder.
        fs.create_dir("e").unwrap();
        assert_eq!(kind(fs.rename("d/b", "e")), IsADirectory);
        assert_eq!(kind(fs.rename("d", "d/x")), InvalidInput);
        fs.create_dir("f").unwrap();
        fs.write_new("f/x", b"", true).unwrap();
        assert_eq!(kind(fs.rename("d", "f")), DirectoryNotEmpty);
        assert_eq!(kind(fs.rename("d", "f/x")), NotADirectory);
        fs.rename("d", "e").unwrap();
        assert_eq!(bytes(&fs, "e/c"), b"A");
        assert_eq!(kind(fs.status("d/c")), NotFound);
    }

    #[test]
    fn the_clock_sets_modification_times_that_moves_keep() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let fs = MemFs::new(start);
        fs.create_dir("d").unwrap();
        fs.write_new("d/a", b"A", true).unwrap();
        fs.advance(Duration::from_secs(60));
        assert_eq!(fs.now(), start + Duration::from_secs(60));
        fs.write_new("d/b", b"B", true).unwrap();
        fs.rename("d/a", "d/a2").unwrap();
        fs.link("d/a2", "d/a3").unwrap();
        assert_eq!(fs.status("d/a3").unwrap().modified, start);
        assert_eq!(
            fs.status("d/b").unwrap().modified,
            start + Duration::from_secs(60)
        );
        fs.symlink("d/b", "d/l").unwrap();
        assert_eq!(fs.status("d/l").unwrap().kind, EntryKind::Symlink);
        assert!(fs.read("d/l", 10).is_err());
    }

    #[test]
    #[should_panic(expected = "bad path")]
    fn a_path_leaving_the_root_panics() {
        let _ = MemFs::default().status("d/../x");
    }
}
