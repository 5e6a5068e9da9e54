//! Shared helpers: temporary `_COMM` folders, a shared runtime, and the CLI.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::Duration;

use fmes::{Comm, Limits, Runtime};

/// Compiled components are cached here, so tests (and the CLI processes
/// they start) compile the component once per build, not once per test.
pub fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("fmes-component-cache")
}

/// One runtime for every library test in this process.
pub fn runtime() -> Arc<Runtime> {
    static RUNTIME: OnceLock<Arc<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| Arc::new(Runtime::new(Limits::default(), Some(&cache_dir())).unwrap()))
        .clone()
}

/// The user tests run as when they must not be root (root may write anywhere).
#[cfg(unix)]
pub const NOBODY: u32 = 65_534;

/// When the tests run as root, makes `command` run as `nobody`, to whom the
/// whole temporary folder of `comm` then belongs (the caller takes back what
/// nobody must not have), with a copy of the compiled component it can read;
/// true if so. As any other user, changes nothing and returns false.
#[cfg(unix)]
pub fn run_as_nobody(comm: &TempComm, command: &mut Command) -> bool {
    use std::os::unix::process::CommandExt;
    if unsafe { libc::geteuid() } != 0 {
        return false;
    }
    let cache = comm.root.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    drop(runtime()); // fills the shared cache
    for entry in std::fs::read_dir(cache_dir()).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if name.starts_with("queue-") && name.ends_with(".cwasm") {
            std::fs::copy(entry.path(), cache.join(&name)).unwrap();
        }
    }
    chown_tree(comm.root.path(), NOBODY);
    command
        .uid(NOBODY)
        .gid(NOBODY)
        .env("FMES_CACHE_DIR", &cache);
    true
}

#[cfg(unix)]
fn chown_tree(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
    if std::fs::symlink_metadata(path).unwrap().is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), uid);
        }
    }
}

/// A fresh `_COMM` folder inside its own temporary folder.
pub struct TempComm {
    pub root: tempfile::TempDir,
    pub path: PathBuf,
}

impl TempComm {
    /// An empty `_COMM` folder.
    pub fn new() -> TempComm {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("_COMM");
        std::fs::create_dir(&path).unwrap();
        TempComm { root, path }
    }

    /// A `_COMM` folder with mailboxes for `agents` (and ARCHIVE/).
    pub fn with_agents(agents: &[&str]) -> TempComm {
        let comm = TempComm::new();
        comm.open().init(agents).unwrap();
        comm
    }

    /// The library handle on this folder.
    pub fn open(&self) -> Comm {
        Comm::open_with(runtime(), &self.path).unwrap()
    }

    /// The same queue code run natively on this folder, without flushing:
    /// filling a big mailbox is quick this way in a debug build.
    pub fn native(&self) -> fmes_queue::Queue<fmes_queue::StdFs> {
        fmes_queue::Queue::with_options(
            fmes_queue::StdFs::new(self.path.to_str().unwrap()),
            fmes_queue::Options {
                durable: false,
                ..fmes_queue::Options::default()
            },
        )
    }

    /// Path of a mailbox folder, e.g. `mailbox("To_Claude")`.
    pub fn join(&self, relative: &str) -> PathBuf {
        self.path.join(relative)
    }

    /// Names of the `*.json` files in a folder under `_COMM`, sorted.
    pub fn json_files(&self, relative: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.join(relative))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".json"))
            .collect();
        names.sort();
        names
    }

    /// The `fmes` binary, set up to use this folder.
    pub fn fmes(&self) -> Command {
        let mut command = fmes_command();
        command.arg("--comm").arg(&self.path);
        command
    }

    /// Runs `fmes --comm <this> args...` to completion with no stdin.
    pub fn run(&self, args: &[&str]) -> Output {
        self.fmes()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

/// The `fmes` binary with the shared cache and no inherited `FMES_COMM`.
pub fn fmes_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fmes"));
    command
        .env("FMES_CACHE_DIR", cache_dir())
        .env_remove("FMES_COMM");
    command
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// Asserts the command exited 0 and returns its stdout.
#[track_caller]
pub fn success(output: &Output) -> String {
    assert!(
        output.status.success(),
        "expected success, got {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        stdout(output),
        stderr(output)
    );
    stdout(output)
}

/// Asserts the command exited with `code` and returns its stderr.
#[track_caller]
pub fn failure(output: &Output, code: i32) -> String {
    assert_eq!(
        output.status.code(),
        Some(code),
        "expected exit {code}\nstdout:\n{}\nstderr:\n{}",
        stdout(output),
        stderr(output)
    );
    stderr(output)
}

/// Parses JSON lines.
pub fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

/// A running command (`fmes watch`, `fmes tail`) whose stdout lines arrive
/// on a channel as it prints them.
pub struct Running {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
}

impl Running {
    /// Starts `command` with no stdin and its stdout and stderr piped.
    pub fn start(mut command: Command) -> Running {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if tx.send(line.unwrap()).is_err() {
                    break;
                }
            }
        });
        Running { child, lines }
    }

    /// The next line; a command that prints nothing for a minute is broken
    /// (this bounds the test, it measures nothing).
    pub fn next_line(&mut self) -> String {
        match self.lines.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => line,
            Err(e) => {
                let _ = self.child.kill();
                let mut stderr = String::new();
                let _ =
                    std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut stderr);
                panic!("no line printed ({e:?}); stderr:\n{stderr}");
            }
        }
    }

    /// Stops it; returns its stderr.
    pub fn stop(mut self) -> String {
        self.child.kill().unwrap();
        let output = self.child.wait_with_output().unwrap();
        String::from_utf8_lossy(&output.stderr).into_owned()
    }
}
