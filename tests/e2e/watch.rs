//! `fmes watch`: messages printed as they arrive.

use std::time::Duration;

use fmes::SendRequest;

use crate::support::*;

/// `fmes --comm <comm> ARGS...`, running.
fn watcher(comm: &TempComm, args: &[&str]) -> Running {
    let mut command = comm.fmes();
    command.args(args);
    Running::start(command)
}

#[test]
fn watch_prints_each_new_message_as_json_lines() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let mut q = comm.open();
    let waiting = q
        .send(&SendRequest::new("a", "b", r#""already there""#))
        .unwrap();
    let mut watcher = watcher(&comm, &["--json", "watch", "b", "--waiting"]);
    let first = json_lines(&watcher.next_line()).remove(0);
    assert_eq!(first["id"], waiting.id.as_str());
    assert_eq!(first["file"], waiting.file.as_str());

    // Sent after the watcher printed: only a change notification (or its
    // rescan) can make it appear.
    for i in 0..3 {
        let sent = q
            .send(&SendRequest::new("a", "b", format!(r#"{{"n": {i}}}"#)).with_type("REPORT"))
            .unwrap();
        let line = json_lines(&watcher.next_line()).remove(0);
        assert_eq!(line["id"], sent.id.as_str());
        assert_eq!(line["type"], "REPORT");
        assert_eq!(line["payload"]["n"], i);
    }
    // Another agent's mail does not show up; this one's next message does.
    q.send(&SendRequest::new("b", "a", "1")).unwrap();
    let last = q.send(&SendRequest::new("a", "b", "2")).unwrap();
    let line = json_lines(&watcher.next_line()).remove(0);
    assert_eq!(line["id"], last.id.as_str());
    watcher.stop();
}

/// A mailbox folder removed and made again (its old folder's notifications
/// end with it) is still followed.
#[test]
fn watch_follows_a_mailbox_made_again() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let mut q = comm.open();
    // Waiting when it starts: printed once the watcher is watching.
    let first = q.send(&SendRequest::new("a", "b", "1")).unwrap();
    let mut watcher = watcher(&comm, &["--json", "watch", "b", "--waiting"]);
    assert_eq!(json_lines(&watcher.next_line())[0]["id"], first.id.as_str());
    q.archive("b", &first.file).unwrap();
    std::fs::remove_dir(comm.join("To_B")).unwrap();
    std::fs::create_dir(comm.join("To_B")).unwrap();
    for i in 2..4 {
        let sent = q.send(&SendRequest::new("a", "b", format!("{i}"))).unwrap();
        assert_eq!(json_lines(&watcher.next_line())[0]["id"], sent.id.as_str());
    }
    watcher.stop();
}

#[test]
fn watch_waiting_prints_a_mailbox_of_several_pages_once_in_order() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let native = comm.native();
    for i in 0..2_300u32 {
        let request = SendRequest::new("a", "b", format!("{i}")).with_priority(1 + (i % 9) as u8);
        native.send(request).unwrap();
    }
    let waiting = comm.open().receive("b", None, None).unwrap().messages;
    let mut watcher = watcher(&comm, &["--json", "watch", "b", "--waiting"]);
    for message in &waiting {
        let line = json_lines(&watcher.next_line()).remove(0);
        assert_eq!(line["file"], message.file.as_str());
    }
    let sent = comm
        .open()
        .send(&SendRequest::new("a", "b", "\"new\""))
        .unwrap();
    let line = json_lines(&watcher.next_line()).remove(0);
    assert_eq!(line["file"], sent.file.as_str(), "nothing printed twice");
    watcher.stop();
}

#[test]
fn watch_without_waiting_skips_old_messages_and_warns_about_bad_files() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let mut q = comm.open();
    q.send(&SendRequest::new("a", "b", r#""old""#)).unwrap();
    let mut watcher = watcher(&comm, &["watch", "b", "--type", "TASK"]);
    // Until the watcher has started, a new message might count as waiting;
    // keep sending until one is printed, then check that "old" never was.
    let mut printed = Vec::new();
    let mut attempts = 0;
    let sent = loop {
        attempts += 1;
        assert!(
            attempts <= 120,
            "the watcher printed none of {attempts} messages"
        );
        let sent = q.send(&SendRequest::new("a", "b", r#""new""#)).unwrap();
        if let Ok(line) = watcher.lines.recv_timeout(Duration::from_millis(500)) {
            printed.push(line);
            break sent;
        }
    };
    std::fs::write(comm.join("To_B").join("broken.json"), "{").unwrap();
    q.send(&SendRequest::new("a", "b", "3").with_type("REPORT"))
        .unwrap();
    let marker = q.send(&SendRequest::new("a", "b", r#""marker""#)).unwrap();
    loop {
        let line = watcher.next_line();
        let done = line.contains(&marker.file);
        printed.push(line);
        if done {
            break;
        }
    }
    let stderr = watcher.stop();
    let text = printed.join("\n");
    assert!(text.contains(&sent.file), "{text}");
    assert!(!text.contains("\"old\""), "{text}");
    assert!(!text.contains("REPORT"), "{text}");
    assert!(
        stderr.contains("To_B/broken.json") && stderr.contains("not JSON"),
        "{stderr}"
    );
}

#[test]
fn watch_of_an_unknown_agent_fails_at_once() {
    let comm = TempComm::with_agents(&["a"]);
    let stderr = failure(&comm.run(&["watch", "nobody"]), 1);
    assert!(stderr.contains("unknown agent \"nobody\""), "{stderr}");
}

#[test]
fn watch_by_polling_sees_new_messages_too() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let mut q = comm.open();
    let mut watcher = watcher(&comm, &["--json", "watch", "b", "--poll", "--waiting"]);
    let sent = q.send(&SendRequest::new("a", "b", "1")).unwrap();
    let line = json_lines(&watcher.next_line()).remove(0);
    assert_eq!(line["id"], sent.id.as_str());
    let later = q.send(&SendRequest::new("a", "b", "2")).unwrap();
    let line = json_lines(&watcher.next_line()).remove(0);
    assert_eq!(line["id"], later.id.as_str());
    watcher.stop();
}

#[test]
fn a_local_folder_is_not_taken_for_a_network_file_system() {
    let comm = TempComm::new();
    // The test machine's temporary folder is local (tmpfs or a disk).
    assert!(!fmes::watch::is_network_file_system(&comm.path));
}

/// A message file as a writer that fills the final name directly (as the
/// Python implementation does) or moves it in would leave it.
fn message_json(id: &str, text: &str) -> String {
    format!(
        r#"{{"id": "{id}", "from": "a", "to": "b", "type": "NOTE", "priority": 5, "timestamp": "2026-11-24T12:00:00Z", "payload": {{"text": "{text}"}}}}"#
    )
}

#[test]
fn watch_waits_for_a_file_written_in_place_and_sees_files_moved_in() {
    use std::io::Write;
    let comm = TempComm::with_agents(&["a", "b"]);
    let mut q = comm.open();
    let mut watcher = watcher(&comm, &["--json", "watch", "b", "--waiting"]);
    // The watcher is up once it printed this.
    let ready = q.send(&SendRequest::new("a", "b", "0")).unwrap();
    assert!(watcher.next_line().contains(&ready.file));

    // Created, half written, and finished later: seen empty or cut short
    // on creation, it must be printed once complete, never called malformed.
    let in_place = comm.join("To_B").join("5_20261124_120000_a_NOTE.json");
    let text = message_json("in-place", "written in two steps");
    let mut file = std::fs::File::create(&in_place).unwrap();
    file.write_all(&text.as_bytes()[..20]).unwrap();
    file.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    file.write_all(&text.as_bytes()[20..]).unwrap();
    drop(file);
    let line = json_lines(&watcher.next_line()).remove(0);
    assert_eq!(line["id"], "in-place");

    // Written elsewhere and renamed into the mailbox.
    let staged = comm.root.path().join("staged.json");
    std::fs::write(&staged, message_json("moved-in", "renamed")).unwrap();
    std::fs::rename(
        &staged,
        comm.join("To_B").join("5_20261124_120001_a_NOTE.json"),
    )
    .unwrap();
    let line = json_lines(&watcher.next_line()).remove(0);
    assert_eq!(line["id"], "moved-in");

    // Claimed away and released: back under a new name, printed again.
    let claimed = q
        .claim("b", "w1", 1, Duration::from_secs(60))
        .unwrap()
        .claimed
        .remove(0);
    q.release("b", "w1", &claimed.message.file).unwrap();
    let line = json_lines(&watcher.next_line()).remove(0);
    assert_eq!(line["id"], claimed.message.id.as_str());

    let stderr = watcher.stop();
    assert!(!stderr.contains("skipped"), "{stderr}");
}
