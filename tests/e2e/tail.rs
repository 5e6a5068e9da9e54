//! `fmes tail`: every mailbox's new messages, one line each, colored only
//! where that is wanted.

use std::process::Stdio;

use fmes::SendRequest;

use crate::cli_extras::Terminal;
use crate::support::*;

/// `fmes --comm <comm> ARGS...` with `env`, running (without the test
/// runner's own `RUST_LOG` or `NO_COLOR`).
fn start_tail(comm: &TempComm, args: &[&str], env: &[(&str, &str)]) -> Running {
    let mut command = comm.fmes();
    command
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .envs(env.iter().copied());
    Running::start(command)
}

/// True if the text holds an SGR (color or style) escape sequence,
/// `ESC [ digits/semicolons m`.
fn has_sgr(text: &str) -> bool {
    text.match_indices("\x1b[").any(|(i, _)| {
        let rest = &text[i + 2..];
        let end = rest
            .find(|c: char| !c.is_ascii_digit() && c != ';')
            .unwrap_or(rest.len());
        rest[end..].starts_with('m')
    })
}

#[test]
fn piped_tail_is_plain_and_follows_every_mailbox() {
    let comm = TempComm::with_agents(&["a", "b", "c"]);
    let mut q = comm.open();
    q.send(&SendRequest::new("a", "b", r#"{"task": "first"}"#).with_priority(2))
        .unwrap();
    let mut tail = start_tail(&comm, &["tail", "--waiting"], &[]);
    let first = tail.next_line();
    assert!(
        first.ends_with(r#" [2] a → b TASK {"task":"first"}"#),
        "{first:?}"
    );
    assert_eq!(first.as_bytes()[2], b':', "starts with the time: {first:?}");

    // Sent after the first look: to two other mailboxes, one made now.
    q.send(&SendRequest::new("b", "c", r#""to c""#).with_type("REPORT"))
        .unwrap();
    assert!(tail.next_line().ends_with(r#" [5] b → c REPORT "to c""#));
    q.init(&["d"]).unwrap();
    let long = format!(r#"{{"text": "{}"}}"#, "x".repeat(200));
    q.send(&SendRequest::new("a", "d", long).with_priority(9))
        .unwrap();
    let last = tail.next_line();
    assert!(last.contains(" [9] a → d TASK {\"text\":\"xxx"), "{last:?}");
    assert!(
        last.ends_with('…') && last.chars().count() < 100,
        "{last:?}"
    );
    assert!(!has_sgr(&first) && !has_sgr(&last));
    assert_eq!(tail.stop(), "", "no status line or warning when piped");
}

#[test]
fn color_always_colors_by_priority_and_never_does_not() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let mut q = comm.open();
    q.send(&SendRequest::new("a", "b", "1").with_priority(1))
        .unwrap();
    q.send(&SendRequest::new("a", "b", "2").with_priority(5))
        .unwrap();
    // --color always wins over NO_COLOR, which is for the automatic choice.
    let mut tail = start_tail(
        &comm,
        &["tail", "--waiting", "--color", "always"],
        &[("NO_COLOR", "1")],
    );
    let urgent = tail.next_line();
    assert!(
        urgent.contains("\x1b[1m\x1b[31m[1] a → b TASK\x1b[0m"),
        "bold red: {urgent:?}"
    );
    let normal = tail.next_line();
    assert!(has_sgr(&normal), "the time is dimmed: {normal:?}");
    assert!(normal.contains(" [5] a → b TASK 2"), "{normal:?}");
    tail.stop();

    let mut tail = start_tail(&comm, &["tail", "--waiting", "--color", "never"], &[]);
    assert!(!has_sgr(&tail.next_line()));
    tail.stop();

    let err = failure(&comm.run(&["tail", "--color", "sometimes"]), 2);
    assert!(err.contains("sometimes") && err.contains("always"), "{err}");
}

#[test]
fn on_a_terminal_tail_colors_unless_no_color_is_set() {
    let comm = TempComm::with_agents(&["a", "b"]);
    comm.open()
        .send(&SendRequest::new("a", "b", r#""hi""#).with_priority(1))
        .unwrap();
    let mut terminal = Terminal::start(&comm, &["tail", "--waiting"]);
    let shown = terminal.wait_for("\"hi\"");
    assert!(shown.contains("\x1b[31m"), "colored: {shown:?}");
    terminal.wait_for("tail: 2 mailboxes, 1 message so far");
    terminal.stop();

    let mut terminal =
        Terminal::start_with_env(&comm, &["tail", "--waiting"], &[("NO_COLOR", "1")]);
    let shown = terminal.wait_for("tail: 2 mailboxes, 1 message so far");
    assert!(shown.contains("[1] a → b TASK \"hi\""), "{shown:?}");
    assert!(!has_sgr(&shown), "NO_COLOR: {shown:?}");
    terminal.stop();
}

#[test]
fn json_tail_prints_the_stored_messages() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let sent = comm
        .open()
        .send(&SendRequest::new("a", "b", r#"{"n": 1}"#))
        .unwrap();
    let mut tail = start_tail(&comm, &["--json", "tail", "--waiting"], &[]);
    let line = json_lines(&tail.next_line()).remove(0);
    assert_eq!(line["id"], sent.id.as_str());
    assert_eq!(line["file"], sent.file.as_str());
    assert_eq!(line["payload"]["n"], 1);
    tail.stop();
}

#[test]
fn tail_into_a_closed_pipe_ends_quietly() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let mut child = comm
        .fmes()
        .args(["tail", "--waiting"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Closed before anything is sent, so the first line meets a closed pipe.
    drop(child.stdout.take());
    comm.open().send(&SendRequest::new("a", "b", "1")).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stderr(&output), "");
}

#[test]
fn tail_without_a_comm_folder_is_an_error() {
    let comm = TempComm::new();
    std::fs::remove_dir(&comm.path).unwrap();
    let err = failure(&comm.run(&["tail"]), 1);
    assert!(err.starts_with("error: no _COMM folder at"), "{err}");
}

#[test]
fn files_that_are_not_messages_are_named_once_on_stderr() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let mut q = comm.open();
    std::fs::write(comm.join("To_B/before.json"), "[]").unwrap();
    q.send(&SendRequest::new("a", "b", "1")).unwrap();
    let mut tail = start_tail(&comm, &["tail", "--waiting"], &[]);
    assert!(tail.next_line().ends_with(" a → b TASK 1"));
    // Written after the first look: read because a notification named it.
    std::fs::write(comm.join("To_B/after.json"), "not json").unwrap();
    q.send(&SendRequest::new("a", "b", "2")).unwrap();
    assert!(tail.next_line().ends_with(" a → b TASK 2"));
    q.send(&SendRequest::new("a", "b", "3")).unwrap();
    assert!(tail.next_line().ends_with(" a → b TASK 3"));
    let err = tail.stop();
    assert_eq!(
        err.matches("warning: skipped To_B/before.json: not a JSON object")
            .count(),
        1,
        "{err}"
    );
    assert_eq!(
        err.matches("warning: skipped To_B/after.json: not JSON")
            .count(),
        1,
        "{err}"
    );
}

#[test]
fn polling_tail_sees_new_messages() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let mut q = comm.open();
    q.send(&SendRequest::new("a", "b", "1")).unwrap();
    let mut tail = start_tail(&comm, &["tail", "--waiting", "--poll"], &[]);
    assert!(tail.next_line().ends_with(" a → b TASK 1"));
    q.send(&SendRequest::new("b", "a", "2")).unwrap();
    assert!(tail.next_line().ends_with(" b → a TASK 2"));
    tail.stop();
}

#[test]
fn tail_waiting_prints_big_mailboxes_in_one_timeline_over_several_pages() {
    let comm = TempComm::with_agents(&["a", "b", "c", "d"]);
    let native = comm.native();
    // Three mailboxes of several pages each (a look at four reads 250
    // messages of each at a time), mixed priorities, sent in turns.
    for i in 0..2_400u32 {
        let to = ["b", "c", "d"][i as usize % 3];
        let request = SendRequest::new("a", to, format!("{i}")).with_priority(1 + (i % 9) as u8);
        native.send(request).unwrap();
    }
    // Another writer's names: ordered by their timestamps, to the second.
    for (mailbox, name, timestamp) in [
        (
            "To_C",
            "5_20000101_000000_py_TASK.json",
            "2000-01-01T00:00:00Z",
        ),
        (
            "To_D",
            "1_20991231_235959_py_TASK.json",
            "2000-01-01T00:00:01Z",
        ),
    ] {
        let text = format!(
            r#"{{"id": "11111111-2222-4333-8444-555555555555", "from": "py", "to": "x",
  "type": "TASK", "priority": 5, "timestamp": "{timestamp}", "payload": {{}}}}"#
        );
        std::fs::write(comm.join(&format!("{mailbox}/{name}")), text).unwrap();
    }
    std::fs::write(comm.join("To_D/broken.json"), "{").unwrap();

    let mut q = comm.open();
    let mut expected = Vec::new();
    for agent in ["a", "b", "c", "d"] {
        expected.extend(q.receive(agent, None, None).unwrap().messages);
    }
    expected.sort_by_key(|m| {
        let sent = fmes_queue::message::sent_of(&m.file, &m.timestamp).unwrap();
        (sent, m.file.clone())
    });
    assert_eq!(expected.len(), 2_402);
    assert!(expected[0].file.starts_with("5_2000") && expected[1].file.starts_with("1_2099"));

    let mut tail = start_tail(&comm, &["--json", "tail", "--waiting"], &[]);
    for message in &expected {
        let line = json_lines(&tail.next_line()).remove(0);
        assert_eq!(line["file"], message.file.as_str());
    }
    let sent = q.send(&SendRequest::new("d", "b", "\"new\"")).unwrap();
    let line = json_lines(&tail.next_line()).remove(0);
    assert_eq!(line["file"], sent.file.as_str(), "nothing printed twice");
    let err = tail.stop();
    assert_eq!(
        err.matches("warning: skipped To_D/broken.json").count(),
        1,
        "{err}"
    );
}

/// `_COMM` removed while followed: the queue still reads the folder it
/// opened, which is no longer the one at that path, so the follow stops
/// and says why rather than wait on it silently.
#[test]
fn a_comm_folder_removed_while_followed_stops_with_why() {
    for args in [&["tail"][..], &["watch", "b"], &["tail", "--poll"]] {
        let comm = TempComm::with_agents(&["a", "b"]);
        comm.open().send(&SendRequest::new("a", "b", "1")).unwrap();
        let mut all: Vec<&str> = args.to_vec();
        all.push("--waiting");
        let mut following = start_tail(&comm, &all, &[]);
        following.next_line();
        std::fs::remove_dir_all(&comm.path).unwrap();
        std::fs::create_dir(&comm.path).unwrap();
        let waited = std::time::Instant::now();
        let status = loop {
            if let Some(status) = following.child.try_wait().unwrap() {
                break status;
            }
            // Bounds the test (polling looks every 2 s); it measures nothing.
            assert!(waited.elapsed().as_secs() < 60, "{args:?} still running");
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let err = following.stop();
        assert_eq!(status.code(), Some(1), "{args:?}: {err}");
        // Said so, or (caught in the middle of its removal) the failure of
        // listing a folder that is gone.
        assert!(
            err.contains("was removed or replaced while being followed")
                || (err.contains("error: I/O error: list _COMM")
                    && err.contains("No such file or directory")),
            "{args:?}: {err}"
        );
    }
}
