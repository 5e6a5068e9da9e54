//! The CLI around the commands: shell completions, man pages, logs (`-v`,
//! `-q`, `RUST_LOG`) and progress lines on terminals.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use fmes::SendRequest;

use crate::support::*;

/// The `fmes` binary with no log settings inherited from the test's environment.
fn fmes_plain(comm: &TempComm) -> Command {
    let mut command = comm.fmes();
    command.env_remove("RUST_LOG").stdin(Stdio::null());
    command
}

#[test]
fn bash_completion_script_completes_the_subcommands() {
    let script = success(
        &fmes_command()
            .args(["completions", "bash"])
            .output()
            .unwrap(),
    );
    for word in [
        "_fmes",
        "receive",
        "doctor",
        "tail",
        "completions",
        "--comm",
    ] {
        assert!(script.contains(word), "{word} missing from the bash script");
    }
    // bash accepts it and registers the completion.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fmes.bash");
    std::fs::write(&file, &script).unwrap();
    let registered = success(
        &Command::new("bash")
            .arg("-c")
            .arg(format!("source '{}' && complete -p fmes", file.display()))
            .output()
            .unwrap(),
    );
    assert!(
        registered.contains("_fmes") && registered.contains("fmes"),
        "{registered}"
    );
}

#[test]
fn completions_for_every_shell_and_none_for_an_unknown_one() {
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let script = success(
            &fmes_command()
                .args(["completions", shell])
                .output()
                .unwrap(),
        );
        assert!(
            script.contains("receive") && script.contains("doctor"),
            "{shell}:\n{script}"
        );
    }
    let err = failure(
        &fmes_command()
            .args(["completions", "tcsh"])
            .output()
            .unwrap(),
        2,
    );
    assert!(err.contains("tcsh") && err.contains("bash"), "{err}");
}

#[test]
fn completions_into_a_closed_pipe_are_not_an_error() {
    let mut child = fmes_command()
        .args(["completions", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stderr(&output), "");
}

#[test]
fn man_page_is_roff_with_the_commands() {
    let page = success(&fmes_command().arg("man").output().unwrap());
    assert!(page.contains(".TH fmes 1"), "{page}");
    assert!(
        page.contains(".SH NAME") && page.contains(".SH SUBCOMMANDS"),
        "{page}"
    );
    for command in ["receive", "doctor", "tail", "claim", "dead"] {
        assert!(page.contains(command), "{command} missing");
    }
    // A man reader renders it, where there is one.
    if Command::new("man").arg("--version").output().is_ok() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("fmes.1");
        std::fs::write(&file, &page).unwrap();
        let rendered = success(
            &Command::new("man")
                .arg("-l")
                .arg(&file)
                .env("MANPAGER", "cat")
                .env("PAGER", "cat")
                .env("MANWIDTH", "100")
                .output()
                .unwrap(),
        );
        assert!(
            rendered.contains("NAME") && rendered.contains("fmes-doctor"),
            "{rendered}"
        );
        assert!(!rendered.contains(".TH"), "{rendered}");
    }
}

#[test]
fn man_out_writes_a_page_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    let listed = success(
        &fmes_command()
            .arg("man")
            .arg("-o")
            .arg(&out)
            .output()
            .unwrap(),
    );
    for page in [
        "fmes.1",
        "fmes-send.1",
        "fmes-doctor.1",
        "fmes-tail.1",
        "fmes-dead-list.1",
        "fmes-agent-run.1",
    ] {
        let path = out.join(page);
        assert!(path.is_file(), "{page} missing; printed:\n{listed}");
        assert!(listed.contains(&path.display().to_string()), "{listed}");
    }
    let send = std::fs::read_to_string(out.join("fmes-send.1")).unwrap();
    assert!(
        send.contains(".TH fmes-send 1") && send.contains("priority"),
        "{send}"
    );

    // A folder that cannot be made is an error, with the cause.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let err = failure(
        &fmes_command()
            .arg("man")
            .arg("-o")
            .arg(&file)
            .output()
            .unwrap(),
        1,
    );
    assert!(
        err.starts_with("error: cannot create the folder") && err.contains("caused by:"),
        "{err}"
    );
}

#[test]
fn help_documents_the_log_flags_and_exit_status() {
    let help = success(&fmes_command().arg("--help").output().unwrap());
    for text in [
        "--verbose",
        "--quiet",
        "RUST_LOG",
        "Exit status",
        "doctor",
        "tail",
    ] {
        assert!(help.contains(text), "{text} missing from:\n{help}");
    }
}

#[test]
fn verbose_logs_how_the_component_was_loaded_and_default_logs_nothing() {
    // The cache holds the component once a runtime has been made with it.
    drop(runtime());
    let comm = TempComm::with_agents(&["a"]);

    let quiet = fmes_plain(&comm).args(["peek", "a"]).output().unwrap();
    success(&quiet);
    assert_eq!(stderr(&quiet), "", "the default prints no log lines");

    let verbose = fmes_plain(&comm)
        .args(["-v", "peek", "a"])
        .output()
        .unwrap();
    assert_eq!(success(&verbose), "0 messages waiting for a\n");
    let log = stderr(&verbose);
    assert!(
        log.contains("INFO") && log.contains("loaded the queue component from the cache"),
        "{log}"
    );
    assert!(!log.contains("queue call"), "-v stays at info: {log}");

    let debug = fmes_plain(&comm)
        .args(["-vv", "peek", "a"])
        .output()
        .unwrap();
    let log = stderr(&debug);
    assert!(
        log.contains("DEBUG") && log.contains("queue call") && log.contains("call=\"peek\""),
        "{log}"
    );
}

#[test]
fn rust_log_overrides_the_flags() {
    let comm = TempComm::with_agents(&["a"]);
    let output = fmes_plain(&comm)
        .env("RUST_LOG", "debug")
        .args(["peek", "a"])
        .output()
        .unwrap();
    success(&output);
    let log = stderr(&output);
    assert!(
        log.contains("queue call") && log.contains("instantiated the queue component"),
        "{log}"
    );

    let output = fmes_plain(&comm)
        .env("RUST_LOG", "fmes=info")
        .args(["-q", "peek", "a"])
        .output()
        .unwrap();
    success(&output);
    assert!(stderr(&output).contains("INFO"), "{}", stderr(&output));

    let output = fmes_plain(&comm)
        .env("RUST_LOG", "fmes=loud")
        .args(["peek", "a"])
        .output()
        .unwrap();
    let err = failure(&output, 2);
    assert!(err.starts_with("error: invalid RUST_LOG"), "{err}");
    assert_eq!(stdout(&output), "");
}

#[test]
fn quiet_silences_warnings_but_not_errors() {
    let comm = TempComm::with_agents(&["a", "b"]);
    std::fs::write(comm.join("To_B/broken.json"), "not json").unwrap();
    let warned = fmes_plain(&comm).args(["receive", "b"]).output().unwrap();
    success(&warned);
    assert!(stderr(&warned).contains("warning: skipped To_B/broken.json"));

    let quiet = fmes_plain(&comm)
        .args(["-q", "receive", "b"])
        .output()
        .unwrap();
    assert_eq!(success(&quiet), "no messages for b\n");
    assert_eq!(stderr(&quiet), "");

    let claimed = fmes_plain(&comm)
        .args(["-q", "claim", "b", "--consumer", "w"])
        .output()
        .unwrap();
    success(&claimed);
    assert_eq!(
        stderr(&claimed),
        "",
        "the dead-letter warning is silenced too"
    );

    let err = failure(
        &fmes_plain(&comm)
            .args(["-q", "receive", "nobody"])
            .output()
            .unwrap(),
        1,
    );
    assert!(err.starts_with("error:"), "{err}");

    let err = failure(
        &fmes_plain(&comm)
            .args(["-q", "-v", "peek", "a"])
            .output()
            .unwrap(),
        2,
    );
    assert!(err.contains("cannot be used with"), "{err}");
}

/// A `_COMM` with an expired claim, a stale temporary file and a dead letter,
/// so recover, cleanup and dead retry have work to do.
fn comm_with_work() -> TempComm {
    let comm = TempComm::with_agents(&["a", "b"]);
    let mut q = comm.open();
    q.send(&SendRequest::new("a", "b", "1")).unwrap();
    std::fs::write(comm.join("To_B/broken.json"), "not json").unwrap();
    // The claim moves the broken file to the dead letters.
    q.claim("b", "w", 10, Duration::from_secs(300)).unwrap();
    let stale = comm.join("To_B/left.tmp");
    std::fs::write(&stale, "{").unwrap();
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(old)
        .unwrap();
    comm
}

#[test]
fn piped_runs_print_no_progress() {
    let comm = comm_with_work();
    for args in [
        &["recover"][..],
        &["cleanup", "--max-age", "1h"],
        &["dead", "retry", "b", "broken.json"],
        &["dead", "purge", "b", "--all"],
        &["doctor"],
    ] {
        let output = fmes_plain(&comm).args(args).output().unwrap();
        assert!(output.status.code().is_some_and(|c| c <= 1), "{args:?}");
        assert_eq!(stderr(&output), "", "{args:?} printed on stderr");
        assert!(!stdout(&output).contains('\r'), "{args:?}");
    }
}

/// A command run under `script`, which gives it a terminal; its output
/// (stdout and stderr, both the terminal) is collected as it arrives.
pub struct Terminal {
    child: std::process::Child,
    output: Arc<(Mutex<Vec<u8>>, Condvar)>,
    reader: std::thread::JoinHandle<()>,
}

impl Terminal {
    pub fn start(comm: &TempComm, args: &[&str]) -> Terminal {
        Terminal::start_with_env(comm, args, &[])
    }

    /// Like `start`, with these environment variables set for the command.
    pub fn start_with_env(comm: &TempComm, args: &[&str], env: &[(&str, &str)]) -> Terminal {
        let mut line = shell_word(env!("CARGO_BIN_EXE_fmes"));
        line.push_str(" --comm ");
        line.push_str(&shell_word(&comm.path.display().to_string()));
        for arg in args {
            line.push(' ');
            line.push_str(&shell_word(arg));
        }
        let mut child = Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .env("FMES_CACHE_DIR", cache_dir())
            .env("TERM", "xterm")
            .env_remove("FMES_COMM")
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("script (util-linux) runs the command on a terminal");
        let mut stdout = child.stdout.take().unwrap();
        let output = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let shared = output.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                shared.0.lock().unwrap().extend_from_slice(&buf[..n]);
                shared.1.notify_all();
            }
        });
        Terminal {
            child,
            output,
            reader,
        }
    }

    /// Waits until the output holds `text`; a minute without it is a
    /// failure (this bounds the test, it measures nothing).
    pub fn wait_for(&mut self, text: &str) -> String {
        let (lock, changed) = &*self.output;
        let (output, timeout) = changed
            .wait_timeout_while(lock.lock().unwrap(), Duration::from_secs(60), |out| {
                !String::from_utf8_lossy(out).contains(text)
            })
            .unwrap();
        let text_so_far = String::from_utf8_lossy(&output).into_owned();
        if timeout.timed_out() {
            drop(output);
            let _ = self.child.kill();
            panic!("{text:?} never appeared; the terminal showed:\n{text_so_far:?}");
        }
        text_so_far
    }

    /// Waits for the command to end; returns everything it showed.
    pub fn finish(mut self) -> String {
        assert!(self.child.wait().unwrap().success());
        // The reader ends when the pipe closes, having read everything.
        self.reader.join().unwrap();
        let output = self.output.0.lock().unwrap();
        String::from_utf8_lossy(&output).into_owned()
    }

    pub fn stop(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

fn shell_word(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[test]
fn a_terminal_shows_progress_for_long_operations() {
    let comm = comm_with_work();
    let shown = Terminal::start(&comm, &["recover"]).finish();
    assert!(shown.contains("recovering"), "{shown:?}");
    assert!(
        shown.contains("\x1b[2K"),
        "the status line is erased: {shown:?}"
    );
    assert!(shown.contains("returned 0 expired claims"), "{shown:?}");

    let mut terminal = Terminal::start(&comm, &["dead", "retry", "b", "broken.json"]);
    let shown = terminal.wait_for("retried broken.json");
    assert!(
        shown.contains("retrying b's dead letters: 0 of 1"),
        "{shown:?}"
    );
    let shown = terminal.finish();
    assert!(
        shown.contains("retrying b's dead letters: 1 of 1"),
        "{shown:?}"
    );

    let shown = Terminal::start(&comm, &["cleanup", "--max-age", "1h"]).finish();
    assert!(shown.contains("cleaning up"), "{shown:?}");

    // -q keeps the terminal free of it.
    let shown = Terminal::start(&comm, &["-q", "recover"]).finish();
    assert!(!shown.contains("recovering"), "{shown:?}");
}

#[test]
fn watch_on_a_terminal_shows_a_status_line_and_piped_it_does_not() {
    let comm = TempComm::with_agents(&["a", "b"]);
    // --waiting: a message sent before the first look is shown too.
    let mut terminal = Terminal::start(&comm, &["watch", "b", "--waiting"]);
    terminal.wait_for("watching b: 0 messages so far");
    comm.open()
        .send(&SendRequest::new("a", "b", r#"{"n": 1}"#))
        .unwrap();
    let shown = terminal.wait_for("watching b: 1 message so far");
    assert!(shown.contains("TASK from a to b"), "{shown:?}");
    terminal.stop();

    // Piped: the message, and nothing on stderr.
    let mut child = fmes_plain(&comm)
        .args(["watch", "b", "--waiting"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 3];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    assert_eq!(&first, b"[5]");
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(stderr(&output), "");
}
