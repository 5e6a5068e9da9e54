//! The Rust API, every operation through the component.

use std::time::Duration;

use fmes::{Error, QueueError, SendRequest};

use crate::support::*;

#[test]
fn init_creates_the_python_defaults_and_is_idempotent() {
    let comm = TempComm::new();
    let mut q = comm.open();
    assert_eq!(
        q.init::<&str>(&[]).unwrap(),
        ["antigravity", "claude", "cursor", "vscode"]
    );
    assert!(comm.join("ARCHIVE").is_dir());
    assert!(comm.join("To_Vscode").is_dir());
    assert_eq!(
        q.init(&["claude", "VSCode", "new-agent"]).unwrap(),
        ["new-agent"]
    );
    assert_eq!(
        q.agents().unwrap(),
        ["antigravity", "claude", "cursor", "new-agent", "vscode"]
    );
}

#[test]
fn init_checks_every_name_before_creating_any() {
    let comm = TempComm::new();
    let err = comm.open().init(&["good", "bad/../x"]).unwrap_err();
    assert!(matches!(err, Error::Queue(QueueError::InvalidAgentName(ref n)) if n == "bad/../x"));
    assert!(!comm.join("To_Good").exists());
}

#[test]
fn init_refuses_a_mailbox_path_that_is_a_file() {
    let comm = TempComm::new();
    std::fs::write(comm.join("To_Claude"), "not a folder").unwrap();
    let err = comm.open().init(&["claude"]).unwrap_err();
    assert!(
        matches!(err, Error::Queue(QueueError::InvalidLayout(ref m)) if m.contains("To_Claude")),
        "{err}"
    );
}

#[test]
fn operations_on_a_mailbox_path_that_is_a_file_say_what_it_is() {
    let comm = TempComm::new();
    std::fs::write(comm.join("To_Claude"), "not a folder").unwrap();
    let mut q = comm.open();
    let sent = q.send(&SendRequest::new("a", "claude", "1")).unwrap_err();
    let peeked = q.peek("claude").unwrap_err();
    for err in [sent, peeked] {
        assert!(
            matches!(err, Error::Queue(QueueError::InvalidLayout(ref m))
                if m == "To_Claude is a file, not a mailbox folder"),
            "{err}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(comm.join("To_Claude")).unwrap(),
        "not a folder"
    );
}

#[test]
fn agents_ignores_other_entries() {
    let comm = TempComm::with_agents(&["claude"]);
    std::fs::create_dir(comm.join("notes")).unwrap();
    std::fs::create_dir(comm.join("To_lower")).unwrap();
    std::fs::write(comm.join("To_File"), "").unwrap();
    assert_eq!(comm.open().agents().unwrap(), ["claude"]);
}

#[test]
fn send_stores_the_format_fields_and_returns_them() {
    let comm = TempComm::with_agents(&["claude", "cursor"]);
    let mut q = comm.open();
    let sent = q
        .send(&SendRequest::new(
            "Claude",
            "CURSOR",
            r#"{"task": "x", "n": [1, 2]}"#,
        ))
        .unwrap();
    assert_eq!(sent.message_type, "TASK");
    assert_eq!(sent.priority, 5);
    assert_eq!((sent.from.as_str(), sent.to.as_str()), ("Claude", "CURSOR"));
    assert_eq!(
        comm.json_files("To_Cursor"),
        std::slice::from_ref(&sent.file)
    );

    let text = std::fs::read_to_string(comm.join("To_Cursor").join(&sent.file)).unwrap();
    let stored: serde_json::Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<&str> = stored
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "id",
            "from",
            "to",
            "type",
            "priority",
            "timestamp",
            "payload"
        ]
    );
    assert_eq!(
        stored["payload"],
        serde_json::json!({"task": "x", "n": [1, 2]})
    );
    assert_eq!(stored["id"], sent.id.as_str());
    assert_eq!(stored["timestamp"], sent.timestamp.as_str());
    assert!(text.starts_with("{\n  \"id\""), "two-space indent: {text}");
    // No temporary file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(comm.join("To_Cursor"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| !n.to_string_lossy().ends_with(".json"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn send_rejects_bad_input_naming_the_value() {
    let comm = TempComm::with_agents(&["claude", "cursor"]);
    let mut q = comm.open();
    let cases: Vec<(SendRequest, QueueError)> = vec![
        (
            SendRequest::new("../x", "cursor", "{}"),
            QueueError::InvalidAgentName("../x".into()),
        ),
        (
            SendRequest::new("claude", "/etc", "{}"),
            QueueError::InvalidAgentName("/etc".into()),
        ),
        (
            SendRequest::new("claude", "cursor", "{}").with_type("NO SPACES"),
            QueueError::InvalidType("NO SPACES".into()),
        ),
        (
            SendRequest::new("claude", "cursor", "{}").with_priority(10),
            QueueError::InvalidPriority(10),
        ),
        (
            SendRequest::new("claude", "cursor", "{}").with_priority(0),
            QueueError::InvalidPriority(0),
        ),
        (
            SendRequest::new("claude", "nobody", "{}"),
            QueueError::UnknownAgent {
                name: "nobody".into(),
                known: vec!["claude".into(), "cursor".into()],
            },
        ),
    ];
    for (request, expected) in cases {
        match q.send(&request) {
            Err(Error::Queue(e)) => assert_eq!(e, expected),
            other => panic!("{request:?}: {other:?}"),
        }
    }
    let err = q
        .send(&SendRequest::new("claude", "cursor", "{not json"))
        .unwrap_err();
    assert!(
        matches!(err, Error::Queue(QueueError::InvalidPayload(_))),
        "{err}"
    );
    assert!(err.to_string().contains("not valid JSON"), "{err}");
    assert_eq!(q.peek("cursor").unwrap(), 0);
}

#[test]
fn payload_limit_defaults_to_one_mebibyte_and_can_be_set() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let mut q = comm.open();
    let big = format!("\"{}\"", "x".repeat(1024 * 1024));
    let err = q
        .send(&SendRequest::new("a", "b", big.clone()))
        .unwrap_err();
    assert!(matches!(
        err,
        Error::Queue(QueueError::PayloadTooLarge { size, limit: 1_048_576 }) if size == big.len() as u64
    ));
    let mut request = SendRequest::new("a", "b", big);
    request.max_payload_bytes = Some(2 * 1024 * 1024);
    q.send(&request).unwrap();
    let mut small_limit = SendRequest::new("a", "b", "[1,2,3]");
    small_limit.max_payload_bytes = Some(3);
    assert!(q.send(&small_limit).is_err());
    assert_eq!(q.peek("b").unwrap(), 1);
}

#[test]
fn receive_page_reads_a_mailbox_page_by_page_through_the_component() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let mut q = comm.open();
    for i in 0..25u8 {
        q.send(&SendRequest::new("a", "b", format!("{i}")).with_priority(1 + i % 9))
            .unwrap();
    }
    std::fs::write(comm.join("To_B").join("junk.json"), "nope").unwrap();
    let whole = q.receive("b", None, None).unwrap();
    let (mut files, mut malformed, mut pages) = (Vec::new(), Vec::new(), 0);
    let mut after = None;
    loop {
        let page = q.receive_page("b", None, 10, after.as_ref()).unwrap();
        pages += 1;
        files.extend(page.messages.into_iter().map(|m| m.file));
        malformed.extend(page.malformed);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let expected: Vec<String> = whole.messages.iter().map(|m| m.file.clone()).collect();
    assert_eq!(files, expected);
    assert_eq!(malformed, whole.malformed);
    assert_eq!(pages, 3);

    let outside = fmes::OrderKey {
        priority: 1,
        sent: fmes_queue::clock::UtcNanos(0),
        file: "../To_A/x.json".into(),
    };
    assert!(matches!(
        q.receive_page("b", None, 10, Some(&outside)),
        Err(Error::Queue(QueueError::InvalidFileName(name))) if name == "../To_A/x.json"
    ));
}

#[test]
fn receive_orders_by_priority_then_time_and_filters() {
    let comm = TempComm::with_agents(&["a", "b", "c"]);
    let mut q = comm.open();
    let mut expected = Vec::new();
    for (i, priority) in [5u8, 9, 1, 5, 1].into_iter().enumerate() {
        let kind = if i % 2 == 0 { "TASK" } else { "REPORT" };
        let sent = q
            .send(
                &SendRequest::new("a", "c", format!("{i}"))
                    .with_priority(priority)
                    .with_type(kind),
            )
            .unwrap();
        expected.push((priority, i, sent.id));
    }
    expected.sort();
    let ids: Vec<String> = expected.iter().map(|e| e.2.clone()).collect();
    let received = q.receive("c", None, None).unwrap();
    assert!(received.malformed.is_empty());
    let got: Vec<String> = received.messages.iter().map(|m| m.id.clone()).collect();
    assert_eq!(got, ids);

    let first_two = q.receive("c", None, Some(2)).unwrap();
    assert_eq!(
        first_two.messages.iter().map(|m| &m.id).collect::<Vec<_>>(),
        ids.iter().take(2).collect::<Vec<_>>()
    );
    let reports = q.receive("c", Some("REPORT"), None).unwrap();
    assert_eq!(reports.messages.len(), 2);
    assert!(reports.messages.iter().all(|m| m.message_type == "REPORT"));
    assert_eq!(
        q.receive("c", Some("TASK"), Some(1))
            .unwrap()
            .messages
            .len(),
        1
    );
    assert!(q.receive("b", None, None).unwrap().messages.is_empty());
}

#[test]
fn one_senders_messages_keep_their_order() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let mut q = comm.open();
    let ids: Vec<String> = (0..200)
        .map(|i| {
            q.send(&SendRequest::new("a", "b", i.to_string()))
                .unwrap()
                .id
        })
        .collect();
    let got: Vec<String> = q
        .receive("b", None, None)
        .unwrap()
        .messages
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(got, ids);
    // A reader sorting names byte-wise, like the Python one, sees the same order.
    let by_name: Vec<String> = comm
        .json_files("To_B")
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(comm.join("To_B").join(f)).unwrap();
            serde_json::from_str::<serde_json::Value>(&text).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(by_name, ids);
}

#[test]
fn malformed_files_are_reported_and_never_hide_the_others() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let mut q = comm.open();
    let good = q.send(&SendRequest::new("a", "b", "1")).unwrap();
    let mailbox = comm.join("To_B");
    std::fs::write(mailbox.join("0_not_json.json"), "{oops").unwrap();
    std::fs::write(mailbox.join("1_array.json"), "[1, 2]").unwrap();
    std::fs::write(mailbox.join("2_bad_utf8.json"), b"{\"id\": \"\xff\"}").unwrap();
    std::fs::write(
        mailbox.join("3_missing.json"),
        r#"{"id": "x", "from": "a"}"#,
    )
    .unwrap();
    std::fs::write(mailbox.join("4_empty.json"), "").unwrap();
    std::fs::write(mailbox.join("ignored.txt"), "not a message name").unwrap();
    std::fs::create_dir(mailbox.join("folder.json")).unwrap();
    let late = q
        .send(&SendRequest::new("a", "b", "2").with_priority(9))
        .unwrap();

    let received = q.receive("b", None, None).unwrap();
    let ids: Vec<&str> = received.messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, [good.id.as_str(), late.id.as_str()]);
    let reasons: Vec<(&str, &str)> = received
        .malformed
        .iter()
        .map(|m| (m.file.as_str(), m.reason.as_str()))
        .collect();
    assert_eq!(reasons.len(), 5, "{reasons:?}");
    assert!(reasons[0].0 == "0_not_json.json" && reasons[0].1.starts_with("not JSON"));
    assert!(reasons[1].1.contains("not a JSON object but an array"));
    assert!(reasons[2].1.contains("not UTF-8"));
    assert!(
        reasons[3].1.contains("field \"to\" is missing"),
        "{reasons:?}"
    );
    assert!(reasons[4].1.starts_with("not JSON"));
    // peek counts every *.json file, as the Python implementation does.
    assert_eq!(q.peek("b").unwrap(), 7);
}

#[test]
fn archive_moves_and_never_overwrites() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let mut q = comm.open();
    let sent = q.send(&SendRequest::new("a", "b", "1")).unwrap();
    // An archived message already holds that name.
    std::fs::write(comm.join("ARCHIVE").join(&sent.file), "earlier").unwrap();
    let archived = q.archive("b", &sent.file).unwrap();
    let stem = sent.file.trim_end_matches(".json");
    assert!(archived.starts_with(&format!("{stem}_")) && archived.ends_with(".json"));
    assert_eq!(archived.len(), sent.file.len() + 7);
    assert_eq!(
        std::fs::read_to_string(comm.join("ARCHIVE").join(&sent.file)).unwrap(),
        "earlier"
    );
    assert!(comm.join("ARCHIVE").join(&archived).is_file());
    assert_eq!(q.peek("b").unwrap(), 0);

    let err = q.archive("b", &sent.file).unwrap_err();
    assert!(
        matches!(err, Error::Queue(QueueError::NotFound(_))),
        "{err}"
    );
    for bad in ["../../etc/passwd", "x/y.json", "x.txt", "..json", ".json"] {
        let err = q.archive("b", bad).unwrap_err();
        assert!(
            matches!(err, Error::Queue(QueueError::InvalidFileName(ref f)) if f == bad),
            "{bad}: {err}"
        );
    }
}

#[test]
fn broadcast_reaches_everyone_but_the_sender() {
    let comm = TempComm::with_agents(&["a", "b", "c"]);
    let mut q = comm.open();
    let sent = q.broadcast("A", None, r#"{"build": "red"}"#, None).unwrap();
    let recipients: Vec<&str> = sent.iter().map(|m| m.to.as_str()).collect();
    assert_eq!(recipients, ["b", "c"]);
    assert!(
        sent.iter()
            .all(|m| m.priority == 1 && m.message_type == "ALERT")
    );
    assert_eq!(q.peek("a").unwrap(), 0);
    let got = q.receive("c", None, None).unwrap().messages;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload, r#"{"build":"red"}"#);
    let typed = q.broadcast("b", Some("REQUEST"), "1", None).unwrap();
    assert!(typed.iter().all(|m| m.message_type == "REQUEST"));
    let err = q.broadcast("a", None, "nope", None).unwrap_err();
    assert!(matches!(err, Error::Queue(QueueError::InvalidPayload(_))));
}

#[test]
fn cleanup_archives_old_messages_and_stale_temporary_files() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let mut q = comm.open();
    let old = q.send(&SendRequest::new("a", "b", "1")).unwrap();
    let fresh = q.send(&SendRequest::new("a", "b", "2")).unwrap();
    let mailbox = comm.join("To_B");
    let age = |file: &str, seconds: u64| {
        let f = std::fs::File::options()
            .write(true)
            .open(mailbox.join(file))
            .unwrap();
        f.set_modified(std::time::SystemTime::now() - Duration::from_secs(seconds))
            .unwrap();
    };
    age(&old.file, 3 * 3600);
    std::fs::write(mailbox.join("crashed.tmp"), "{").unwrap();
    age("crashed.tmp", 3600);
    std::fs::write(mailbox.join("in-progress.tmp"), "{").unwrap();

    let report = q.cleanup(Duration::from_secs(3600)).unwrap();
    assert_eq!((report.archived, report.removed_temporary), (1, 1));
    assert_eq!(comm.json_files("To_B"), std::slice::from_ref(&fresh.file));
    assert_eq!(comm.json_files("ARCHIVE"), std::slice::from_ref(&old.file));
    assert!(!mailbox.join("crashed.tmp").exists());
    assert!(mailbox.join("in-progress.tmp").exists());
    // Nothing more to do: counts only what it moved.
    let again = q.cleanup(Duration::from_secs(3600)).unwrap();
    assert_eq!((again.archived, again.removed_temporary), (0, 0));
}

#[test]
fn opening_a_missing_comm_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here");
    let err = fmes::Comm::open_with(runtime(), &missing).err().unwrap();
    assert!(matches!(err, Error::MissingComm { .. }));
    assert!(err.to_string().contains("fmes init"), "{err}");
}

#[test]
fn a_dropped_mailbox_is_an_io_error_not_an_empty_answer() {
    let comm = TempComm::with_agents(&["a"]);
    let mut q = comm.open();
    std::fs::remove_dir(comm.join("To_A")).unwrap();
    let err = q.receive("a", None, None).unwrap_err();
    assert!(
        matches!(err, Error::Queue(QueueError::UnknownAgent { .. })),
        "{err}"
    );
}

#[test]
fn messages_from_writers_with_looser_names_can_be_filtered_and_archived() {
    let comm = TempComm::with_agents(&["cursor"]);
    let file = "5_20240101_120000_Jürgen_BUG REPORT.json";
    std::fs::write(
        comm.join("To_Cursor").join(file),
        r#"{"id": "11111111-2222-4333-8444-555555555555", "from": "Jürgen", "to": "cursor",
            "type": "BUG REPORT", "priority": 5, "timestamp": "2024-01-01T11:00:00Z", "payload": {}}"#,
    )
    .unwrap();
    let mut q = comm.open();
    let bugs = q
        .receive("cursor", Some("BUG REPORT"), None)
        .unwrap()
        .messages;
    assert_eq!(bugs.len(), 1);
    assert_eq!(bugs[0].from, "Jürgen");
    assert_eq!(q.archive("cursor", file).unwrap(), file);
    assert_eq!(comm.json_files("ARCHIVE"), [file]);
}

/// The host lists directories for the component in batches, from the
/// kernel's own entry types (no `stat` per entry): every kind of entry must
/// come out as the native `std::fs` backend sees it, and a long listing must
/// be whole across batches (ended by their entry count or by their bytes).
#[test]
fn listings_see_every_kind_of_entry_as_the_native_backend_does() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::symlink;

    let comm = TempComm::with_agents(&["claude", "cursor"]);
    let mut q = comm.open();
    q.send(&SendRequest::new("cursor", "claude", r#"{"text":"hi"}"#))
        .unwrap();
    let mailbox = comm.join("To_Claude");
    std::fs::create_dir(mailbox.join("1_a_folder.json")).unwrap();
    std::fs::write(comm.root.path().join("outside.json"), "{}").unwrap();
    symlink(
        comm.root.path().join("outside.json"),
        mailbox.join("1_link.json"),
    )
    .unwrap();
    symlink(comm.root.path(), mailbox.join("1_link_to_folder.json")).unwrap();
    let fifo = mailbox.join("1_fifo.json");
    let c_fifo = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c_fifo.as_ptr(), 0o600) }, 0);
    std::fs::write(mailbox.join(OsStr::from_bytes(b"1_\xff\xfe.json")), "{}").unwrap();
    std::fs::create_dir(comm.join("To_\u{e9}t\u{e9}")).unwrap();
    std::fs::create_dir(comm.path.join(OsStr::from_bytes(b"To_\xff"))).unwrap();

    let native = fmes_queue::Queue::new(fmes_queue::StdFs::new(comm.path.to_str().unwrap()));
    assert_eq!(q.peek("claude").unwrap(), native.peek("claude").unwrap());
    assert_eq!(q.agents().unwrap(), native.agents().unwrap());
    let through_component = q.receive("claude", None, None).unwrap();
    let natively = native.receive("claude", None, None).unwrap();
    let files = |messages: &[fmes::Message]| -> Vec<String> {
        messages.iter().map(|m| m.file.clone()).collect()
    };
    assert_eq!(
        files(&through_component.messages),
        files(&natively.messages)
    );
    assert_eq!(through_component.messages.len(), 1);
    let malformed = |r: &fmes::Received| -> Vec<(String, String)> {
        r.malformed
            .iter()
            .map(|m| (m.file.clone(), m.reason.clone()))
            .collect()
    };
    assert_eq!(malformed(&through_component), malformed(&natively));
    // Nothing was followed, moved or consumed.
    assert!(mailbox.join("1_link.json").is_symlink());
    assert!(comm.root.path().join("outside.json").exists());

    let (waiting, bad) = (q.peek("claude").unwrap(), through_component.malformed.len());
    // Long enough to take many reads of the directory and many batches:
    // short names fill a batch's entries, long ones its bytes.
    for i in 0..3000 {
        std::fs::write(mailbox.join(format!("2_{i:05}_x.json")), "{}").unwrap();
        let long = format!("3_{i:05}_{}.json", "y".repeat(200));
        std::fs::write(mailbox.join(long), "{}").unwrap();
    }
    assert_eq!(q.peek("claude").unwrap(), waiting + 6000);
    assert_eq!(q.peek("claude").unwrap(), native.peek("claude").unwrap());
    let through_component = q.receive("claude", None, None).unwrap();
    let natively = native.receive("claude", None, None).unwrap();
    assert_eq!(malformed(&through_component), malformed(&natively));
    assert_eq!(through_component.malformed.len(), bad + 6000);
}

#[test]
fn read_takes_only_the_named_files_in_delivery_order() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let mut q = comm.open();
    let low = q
        .send(&SendRequest::new("a", "b", "1").with_priority(9))
        .unwrap();
    let high = q
        .send(&SendRequest::new("a", "b", "2").with_priority(1))
        .unwrap();
    let other = q.send(&SendRequest::new("a", "b", "3")).unwrap();
    std::fs::write(comm.join("To_B/5_bad.json"), "{").unwrap();

    let names = [
        low.file.clone(),
        high.file.clone(),
        "5_bad.json".to_string(),
        "5_gone.json".to_string(),
        low.file.clone(),
    ];
    let read = q.read("b", &names).unwrap();
    let files: Vec<&str> = read.messages.iter().map(|m| m.file.as_str()).collect();
    // Named ones only, each once, in delivery order; a missing name is left out.
    assert_eq!(files, [high.file.as_str(), low.file.as_str()]);
    assert!(!files.contains(&other.file.as_str()));
    assert_eq!(read.malformed.len(), 1);
    assert_eq!(read.malformed[0].file, "5_bad.json");
    assert!(read.malformed[0].reason.contains("not JSON"));
    // Nothing was moved.
    assert_eq!(q.peek("b").unwrap(), 4);

    for bad in ["../To_A/x.json", "notes.txt", ".hidden.json"] {
        let err = q
            .read("b", &[high.file.clone(), bad.to_string()])
            .unwrap_err();
        assert!(
            matches!(err, Error::Queue(QueueError::InvalidFileName(ref n)) if n == bad),
            "{bad}: {err}"
        );
    }
    let err = q.read("nobody", &[]).unwrap_err();
    assert!(
        matches!(err, Error::Queue(QueueError::UnknownAgent { .. })),
        "{err}"
    );
}

#[test]
fn large_messages_are_read_whole() {
    // Larger than one read of the host (wasmtime-wasi reads at most 64 KiB
    // per call), and not a multiple of it.
    let comm = TempComm::with_agents(&["a", "b"]);
    let mut q = comm.open();
    for size in [64 * 1024 - 20, 64 * 1024 + 1, 700_001] {
        let text = "x".repeat(size);
        let sent = q
            .send(&SendRequest::new("a", "b", format!("\"{text}\"")))
            .unwrap();
        let received = q.read("b", std::slice::from_ref(&sent.file)).unwrap();
        assert_eq!(received.messages[0].payload.len(), size + 2, "{size}");
        assert_eq!(received.messages[0].payload, format!("\"{text}\""));
    }
    let all = q.receive("b", None, None).unwrap();
    assert_eq!(all.messages.len(), 3);
    assert!(all.malformed.is_empty());
}
