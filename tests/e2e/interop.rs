//! Interop with the Python implementation of the format: fmes reads what the
//! Python writer writes, and the Python reader reads what fmes writes.
//!
//! The Python side is `tests/interop/fmes_format.py`, run with the machine's
//! `python3` as a subprocess.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use fmes::{Error, Message, QueueError, SendRequest};
use serde_json::{Value, json};

use crate::support::*;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/interop/fmes_format.py"
);

/// Runs `python3 fmes_format.py --comm <comm> args...`, asserts it exited 0,
/// and returns its stdout.
#[track_caller]
fn python(comm: &TempComm, args: &[&str]) -> String {
    let output = Command::new("python3")
        .arg(SCRIPT)
        .arg("--comm")
        .arg(&comm.path)
        .args(args)
        .env("PYTHONUTF8", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .output()
        .expect("python3 runs");
    success(&output)
}

/// Python `send`; returns the message as written, with `_path`.
#[track_caller]
fn py_send(comm: &TempComm, from: &str, to: &str, payload: &str, options: &[&str]) -> Value {
    let mut args = vec!["send", from, to, payload];
    args.extend_from_slice(options);
    let mut written = json_lines(&python(comm, &args));
    assert_eq!(written.len(), 1, "{written:?}");
    written.remove(0)
}

/// Python `receive`: the parsed messages, in its order, each with `_path`.
#[track_caller]
fn py_receive(comm: &TempComm, agent: &str, options: &[&str]) -> Vec<Value> {
    let mut args = vec!["receive", agent];
    args.extend_from_slice(options);
    json_lines(&python(comm, &args))
}

#[track_caller]
fn py_peek(comm: &TempComm, agent: &str) -> u64 {
    python(comm, &["peek", agent]).trim().parse().unwrap()
}

fn ids(messages: &[Value]) -> Vec<String> {
    messages.iter().map(|m| str_field(m, "id")).collect()
}

fn fmes_ids(messages: &[Message]) -> Vec<String> {
    messages.iter().map(|m| m.id.clone()).collect()
}

#[track_caller]
fn str_field(message: &Value, field: &str) -> String {
    message[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} of {message}"))
        .to_string()
}

/// The file name of a Python `_path`.
#[track_caller]
fn file_of(message: &Value) -> String {
    Path::new(&str_field(message, "_path"))
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string()
}

/// The object as stored: a Python-read message without `_path`, or an
/// `fmes --json` line without `file`.
fn stored(message: &Value, extra_key: &str) -> Value {
    let mut object = message.as_object().unwrap().clone();
    object.remove(extra_key);
    Value::Object(object)
}

fn payload_of(message: &Message) -> Value {
    serde_json::from_str(&message.payload).unwrap()
}

/// Lower-case hyphenated version 4 UUID.
fn is_uuid_v4(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
        && b[14] == b'4'
        && b"89ab".contains(&b[19])
}

/// Seconds since 1970 of a `YYYY-MM-DDTHH:MM:SSZ` timestamp; `None` if it
/// has any other form.
fn timestamp_secs(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let shape = b.len() == 20
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'Z',
            _ => c.is_ascii_digit(),
        });
    if !shape {
        return None;
    }
    let n = |r: std::ops::Range<usize>| text[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    let (hh, mm, ss) = (n(11..13), n(14..16), n(17..19));
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from civil (proleptic Gregorian).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3_600 + mm * 60 + ss)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn timestamp_helper_reads_utc_times() {
    assert_eq!(timestamp_secs("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(timestamp_secs("2024-01-01T03:00:00Z"), Some(1_704_078_000));
    assert_eq!(timestamp_secs("2024-02-29T23:59:59Z"), Some(1_709_251_199));
    assert_eq!(timestamp_secs("2024-01-01 03:00:00Z"), None);
    assert_eq!(timestamp_secs("2024-01-01T03:00:00"), None);
    assert!(is_uuid_v4("0f8fad5b-d9cb-469f-a165-70867728950e"));
    assert!(!is_uuid_v4("0F8FAD5B-D9CB-469F-A165-70867728950E"));
    assert!(!is_uuid_v4("0f8fad5b-d9cb-169f-a165-70867728950e"));
    assert!(!is_uuid_v4("0f8fad5b-d9cb-469f-c165-70867728950e"));
}

#[test]
fn fmes_delivers_python_messages_by_priority_then_utc_time() {
    let comm = TempComm::with_agents(&["claude", "cursor"]);
    // Senders in other time zones: the name holds their local time, the
    // `timestamp` field UTC. Tokyo (UTC+9) sent first, New York (UTC-5)
    // seven hours later, yet New York's local-time name sorts first.
    let tokyo = py_send(
        &comm,
        "tokyo",
        "cursor",
        r#"{"n": "tokyo"}"#,
        &[
            "--local-stamp",
            "20240101_120000",
            "--timestamp",
            "2024-01-01T03:00:00Z",
        ],
    );
    let new_york = py_send(
        &comm,
        "newyork",
        "cursor",
        r#"{"n": "new york"}"#,
        &[
            "--local-stamp",
            "20240101_050000",
            "--timestamp",
            "2024-01-01T10:00:00Z",
        ],
    );
    // Same UTC second as Tokyo (Berlin, UTC+1): ties go by file name.
    let berlin = py_send(
        &comm,
        "berlin",
        "cursor",
        r#"{"n": "berlin"}"#,
        &[
            "--local-stamp",
            "20240101_040000",
            "--timestamp",
            "2024-01-01T03:00:00Z",
        ],
    );
    // Sent now, on this machine's clocks.
    let urgent = py_send(
        &comm,
        "claude",
        "cursor",
        r#"{"n": "urgent"}"#,
        &["--type", "ALERT", "--priority", "1"],
    );
    let recent = py_send(&comm, "claude", "cursor", r#"{"n": "recent"}"#, &[]);
    // Oldest, but least urgent.
    let old_low = py_send(
        &comm,
        "claude",
        "cursor",
        r#"{"n": "old, low"}"#,
        &[
            "--priority",
            "9",
            "--local-stamp",
            "20230101_000000",
            "--timestamp",
            "2023-01-01T00:00:00Z",
        ],
    );
    // A priority outside 1 to 9, which the Python writer accepts: its name
    // "10_..." sorts first, fmes orders it by value, after 9.
    let ten = py_send(
        &comm,
        "claude",
        "cursor",
        r#"{"n": "ten"}"#,
        &[
            "--priority",
            "10",
            "--local-stamp",
            "20220101_000000",
            "--timestamp",
            "2022-01-01T00:00:00Z",
        ],
    );
    assert_eq!(file_of(&tokyo), "5_20240101_120000_tokyo_TASK.json");
    assert_eq!(file_of(&new_york), "5_20240101_050000_newyork_TASK.json");
    assert_eq!(file_of(&ten), "10_20220101_000000_claude_TASK.json");

    let expected: Vec<&Value> = vec![&urgent, &berlin, &tokyo, &new_york, &recent, &old_low, &ten];
    let expected_ids: Vec<String> = expected.iter().map(|m| str_field(m, "id")).collect();

    // The Python reader goes by name, so its order differs: the setup really
    // puts name order against UTC order.
    let python_order = py_receive(&comm, "cursor", &[]);
    assert_eq!(
        ids(&python_order),
        ids(&[
            ten.clone(),
            urgent.clone(),
            berlin.clone(),
            new_york.clone(),
            tokyo.clone(),
            recent.clone(),
            old_low.clone()
        ])
    );

    // The library.
    let received = comm.open().receive("cursor", None, None).unwrap();
    assert!(received.malformed.is_empty(), "{:?}", received.malformed);
    assert_eq!(fmes_ids(&received.messages), expected_ids);
    for (message, written) in received.messages.iter().zip(&expected) {
        assert_eq!(message.from, str_field(written, "from"));
        assert_eq!(message.to, "cursor");
        assert_eq!(message.message_type, str_field(written, "type"));
        assert_eq!(
            u64::from(message.priority),
            written["priority"].as_u64().unwrap()
        );
        assert_eq!(message.timestamp, str_field(written, "timestamp"));
        assert_eq!(payload_of(message), written["payload"]);
        assert_eq!(message.file, file_of(written));
        assert_eq!(
            serde_json::from_str::<Value>(&message.raw).unwrap(),
            stored(written, "_path")
        );
    }
    assert_eq!(
        fmes_ids(
            &comm
                .open()
                .receive("cursor", None, Some(3))
                .unwrap()
                .messages
        ),
        expected_ids[..3]
    );
    assert_eq!(
        fmes_ids(
            &comm
                .open()
                .receive("cursor", Some("ALERT"), None)
                .unwrap()
                .messages
        ),
        [str_field(&urgent, "id")]
    );
    assert_eq!(comm.open().peek("cursor").unwrap(), 7);

    // The CLI: each line is the stored object plus its file name.
    let lines = json_lines(&success(&comm.run(&["--json", "receive", "cursor"])));
    assert_eq!(lines.len(), expected.len());
    for (line, written) in lines.iter().zip(&expected) {
        assert_eq!(str_field(line, "file"), file_of(written));
        assert_eq!(stored(line, "file"), stored(written, "_path"));
    }
}

#[test]
fn the_python_reader_reads_every_fmes_message_in_fmes_order() {
    let comm = TempComm::with_agents(&["planner", "coder"]);
    let requests = [
        SendRequest::new("planner", "coder", r#"{"step": 1}"#),
        SendRequest::new("planner", "coder", "[1, 2, 3]")
            .with_type("REPORT")
            .with_priority(2),
        SendRequest::new("planner", "coder", r#""plain text""#).with_priority(9),
        SendRequest::new(
            "Reviewer",
            "CODER",
            r#"{"nested": {"a": null, "b": true, "n": 1.5, "list": []}}"#,
        )
        .with_type("REQUEST"),
        SendRequest::new("planner", "coder", "42").with_priority(2),
        SendRequest::new("ci", "coder", "null")
            .with_type("ALERT")
            .with_priority(1),
    ];
    let before = unix_now();
    let mut lib = comm.open();
    let sent: Vec<Message> = requests.iter().map(|r| lib.send(r).unwrap()).collect();
    let after = unix_now();

    // Priority, then send order within a priority.
    let expected: Vec<usize> = vec![5, 1, 4, 0, 3, 2];
    let expected_ids: Vec<String> = expected.iter().map(|&i| sent[i].id.clone()).collect();
    let fmes_order = lib.receive("coder", None, None).unwrap();
    assert!(fmes_order.malformed.is_empty());
    assert_eq!(fmes_ids(&fmes_order.messages), expected_ids);

    let python_order = py_receive(&comm, "coder", &[]);
    assert_eq!(ids(&python_order), expected_ids);
    let mailbox = comm.join("To_Coder");
    for (read, &i) in python_order.iter().zip(&expected) {
        let request = &requests[i];
        let keys: BTreeSet<&str> = read
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from([
                "id",
                "from",
                "to",
                "type",
                "priority",
                "timestamp",
                "payload",
                "_path"
            ])
        );
        let id = str_field(read, "id");
        assert!(is_uuid_v4(&id), "{id:?}");
        assert_eq!(id, sent[i].id);
        assert_eq!(str_field(read, "from"), request.from);
        assert_eq!(str_field(read, "to"), request.to);
        assert_eq!(
            str_field(read, "type"),
            request.message_type.as_deref().unwrap_or("TASK")
        );
        assert!(read["priority"].is_u64(), "{read}");
        assert_eq!(
            read["priority"].as_u64().unwrap(),
            u64::from(request.priority.unwrap_or(5))
        );
        let timestamp = str_field(read, "timestamp");
        let secs = timestamp_secs(&timestamp)
            .unwrap_or_else(|| panic!("{timestamp:?} is not YYYY-MM-DDTHH:MM:SSZ"));
        assert!(
            (before..=after).contains(&secs),
            "{timestamp} is not the UTC time of sending ({before}..={after})"
        );
        assert_eq!(timestamp, sent[i].timestamp);
        assert_eq!(
            read["payload"],
            serde_json::from_str::<Value>(&request.payload).unwrap()
        );
        let path = Path::new(read["_path"].as_str().unwrap());
        assert_eq!(path.parent().unwrap(), mailbox);
        assert_eq!(file_of(read), sent[i].file);
    }
    assert_eq!(py_peek(&comm, "coder"), 6);
    assert_eq!(lib.peek("coder").unwrap(), 6);

    // The Python type filter sees fmes types.
    let reports = py_receive(&comm, "coder", &["--type", "REPORT"]);
    assert_eq!(ids(&reports), [sent[1].id.clone()]);
    assert!(py_receive(&comm, "planner", &[]).is_empty());
}

#[test]
fn a_mixed_mailbox_is_read_and_archived_from_both_sides() {
    let comm = TempComm::with_agents(&["claude", "cursor"]);
    let mut lib = comm.open();
    let py_first = py_send(
        &comm,
        "claude",
        "cursor",
        r#"{"by": "python", "n": 1}"#,
        &["--priority", "2"],
    );
    let fmes_first = lib
        .send(
            &SendRequest::new("claude", "cursor", r#"{"by": "fmes", "n": 2}"#)
                .with_type("REPORT")
                .with_priority(3),
        )
        .unwrap();
    let py_second = py_send(
        &comm,
        "vscode",
        "cursor",
        r#"{"by": "python", "n": 3}"#,
        &["--type", "REQUEST", "--priority", "4"],
    );
    let fmes_second = lib
        .send(&SendRequest::new("vscode", "cursor", r#"{"by": "fmes", "n": 4}"#).with_priority(6))
        .unwrap();
    let all = vec![
        str_field(&py_first, "id"),
        fmes_first.id.clone(),
        str_field(&py_second, "id"),
        fmes_second.id.clone(),
    ];

    let seen_by_fmes = lib.receive("cursor", None, None).unwrap();
    assert!(seen_by_fmes.malformed.is_empty());
    assert_eq!(fmes_ids(&seen_by_fmes.messages), all);
    let seen_by_python = py_receive(&comm, "cursor", &[]);
    assert_eq!(ids(&seen_by_python), all);
    // Each reader sees the other's messages as they were written.
    assert_eq!(
        serde_json::from_str::<Value>(&seen_by_fmes.messages[0].raw).unwrap(),
        stored(&py_first, "_path")
    );
    assert_eq!(
        stored(&seen_by_python[1], "_path"),
        serde_json::from_str::<Value>(&fmes_first.raw).unwrap()
    );
    assert_eq!(lib.peek("cursor").unwrap(), 4);
    assert_eq!(py_peek(&comm, "cursor"), 4);

    // Python archives a file fmes wrote.
    let fmes_path = comm.join("To_Cursor").join(&fmes_first.file);
    let archived = python(&comm, &["archive", fmes_path.to_str().unwrap()]);
    let archived_path = comm.join("ARCHIVE").join(&fmes_first.file);
    assert_eq!(archived.trim_end(), archived_path.to_str().unwrap());
    assert!(!fmes_path.exists());
    let archived_object: Value =
        serde_json::from_slice(&std::fs::read(&archived_path).unwrap()).unwrap();
    assert_eq!(
        archived_object,
        serde_json::from_str::<Value>(&fmes_first.raw).unwrap()
    );
    assert_eq!(
        fmes_ids(&lib.receive("cursor", None, None).unwrap().messages),
        [all[0].clone(), all[2].clone(), all[3].clone()]
    );
    assert_eq!(lib.peek("cursor").unwrap(), 3);
    match lib.archive("cursor", &fmes_first.file) {
        Err(Error::Queue(QueueError::NotFound(_))) => {}
        other => panic!("archiving a file Python archived: {other:?}"),
    }

    // fmes archives a file Python wrote.
    let py_file = file_of(&py_second);
    assert_eq!(lib.archive("cursor", &py_file).unwrap(), py_file);
    assert!(!comm.join("To_Cursor").join(&py_file).exists());
    let archived_object: Value =
        serde_json::from_slice(&std::fs::read(comm.join("ARCHIVE").join(&py_file)).unwrap())
            .unwrap();
    assert_eq!(archived_object, stored(&py_second, "_path"));
    assert_eq!(
        ids(&py_receive(&comm, "cursor", &[])),
        [all[0].clone(), all[3].clone()]
    );
    assert_eq!(py_peek(&comm, "cursor"), 2);
    // Python archiving what is gone returns nothing.
    assert_eq!(
        python(&comm, &["archive", str_field(&py_second, "_path").as_str()]),
        ""
    );
    assert_eq!(
        comm.json_files("ARCHIVE"),
        BTreeSet::from([fmes_first.file.clone(), py_file])
            .into_iter()
            .collect::<Vec<_>>()
    );
}

#[test]
fn both_archivers_keep_every_copy_of_a_reused_name() {
    // The Python writer reuses a name for the same priority, sender, type
    // and second; each copy archived by either side must be kept.
    let comm = TempComm::with_agents(&["claude", "cursor"]);
    let mut lib = comm.open();
    let stamps = [
        "--local-stamp",
        "20240601_090000",
        "--timestamp",
        "2024-06-01T07:00:00Z",
    ];
    let name = "5_20240601_090000_claude_TASK.json";
    let stem = "5_20240601_090000_claude_TASK";
    let is_suffixed = |archived: &str| {
        archived.len() == stem.len() + 12
            && archived.starts_with(stem)
            && archived.ends_with(".json")
            && archived.as_bytes()[stem.len()] == b'_'
            && archived[stem.len() + 1..stem.len() + 7]
                .bytes()
                .all(|c| c.is_ascii_hexdigit())
    };

    let first = py_send(&comm, "claude", "cursor", r#"{"copy": 1}"#, &stamps);
    assert_eq!(file_of(&first), name);
    assert_eq!(lib.archive("cursor", name).unwrap(), name);

    let second = py_send(&comm, "claude", "cursor", r#"{"copy": 2}"#, &stamps);
    assert_eq!(file_of(&second), name);
    let by_python = python(&comm, &["archive", str_field(&second, "_path").as_str()]);
    let by_python = Path::new(by_python.trim_end())
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(is_suffixed(&by_python), "{by_python}");

    let third = py_send(&comm, "claude", "cursor", r#"{"copy": 3}"#, &stamps);
    let by_fmes = lib.archive("cursor", name).unwrap();
    assert!(is_suffixed(&by_fmes), "{by_fmes}");
    assert_ne!(by_fmes, by_python);

    assert!(comm.json_files("To_Cursor").is_empty());
    let mut archived_ids = BTreeSet::new();
    for file in comm.json_files("ARCHIVE") {
        let object: Value =
            serde_json::from_slice(&std::fs::read(comm.join("ARCHIVE").join(&file)).unwrap())
                .unwrap();
        archived_ids.insert(str_field(&object, "id"));
    }
    assert_eq!(
        archived_ids,
        BTreeSet::from([
            str_field(&first, "id"),
            str_field(&second, "id"),
            str_field(&third, "id")
        ])
    );
}

#[test]
fn non_ascii_payloads_round_trip_both_ways() {
    let comm = TempComm::with_agents(&["claude", "cursor"]);
    let mut lib = comm.open();
    let payload = r#"{"text": "café 日本", "emoji": "😀", "日本": ["é", "\u00e9"]}"#;
    let expected: Value = serde_json::from_str(payload).unwrap();
    assert_eq!(expected["日本"], json!(["é", "é"]));

    // Python to fmes; the Python writer keeps the characters as they are.
    let written = py_send(&comm, "claude", "cursor", payload, &[]);
    assert_eq!(written["payload"], expected);
    let bytes = std::fs::read(str_field(&written, "_path")).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.contains("café 日本") && text.contains("😀"), "{text}");
    let received = lib.receive("cursor", None, None).unwrap();
    assert!(received.malformed.is_empty());
    assert_eq!(received.messages.len(), 1);
    assert_eq!(payload_of(&received.messages[0]), expected);
    let lines = json_lines(&success(&comm.run(&["--json", "receive", "cursor"])));
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["payload"], expected);

    // fmes to Python.
    let sent = lib
        .send(&SendRequest::new("cursor", "claude", payload))
        .unwrap();
    let text = std::fs::read_to_string(comm.join("To_Claude").join(&sent.file)).unwrap();
    assert!(text.contains("café 日本") && text.contains("😀"), "{text}");
    let read = py_receive(&comm, "claude", &[]);
    assert_eq!(ids(&read), vec![sent.id.clone()]);
    assert_eq!(read[0]["payload"], expected);
}

#[test]
fn broadcasts_from_either_side_reach_the_other() {
    let comm = TempComm::with_agents(&["claude", "cursor", "vscode"]);
    let mut lib = comm.open();

    // Python broadcast: every configured agent (here the existing mailboxes)
    // but the sender, at priority 1, type ALERT.
    let from_python = json_lines(&python(
        &comm,
        &["broadcast", "claude", r#"{"build": "red"}"#],
    ));
    assert_eq!(from_python.len(), 2);
    for agent in ["cursor", "vscode"] {
        let messages = lib.receive(agent, None, None).unwrap().messages;
        assert_eq!(messages.len(), 1, "{agent}");
        let message = &messages[0];
        let copy = from_python
            .iter()
            .find(|m| m["id"] == message.id.as_str())
            .unwrap_or_else(|| panic!("{agent} got {message:?}"));
        assert_eq!(str_field(copy, "to"), agent);
        assert_eq!(message.from, "claude");
        assert_eq!(message.to, agent);
        assert_eq!(message.message_type, "ALERT");
        assert_eq!(message.priority, 1);
        assert_eq!(payload_of(message), json!({"build": "red"}));
    }
    assert!(
        lib.receive("claude", None, None)
            .unwrap()
            .messages
            .is_empty()
    );

    // fmes broadcast, the sender spelled in capitals.
    let from_fmes = lib
        .broadcast("CURSOR", None, r#"{"deploy": "done"}"#, None)
        .unwrap();
    assert_eq!(
        from_fmes.iter().map(|m| m.to.as_str()).collect::<Vec<_>>(),
        ["claude", "vscode"]
    );
    for copy in &from_fmes {
        let read = py_receive(&comm, &copy.to, &[]);
        let found: Vec<&Value> = read
            .iter()
            .filter(|m| m["id"] == copy.id.as_str())
            .collect();
        assert_eq!(found.len(), 1, "{} got {read:?}", copy.to);
        let message = found[0];
        assert_eq!(str_field(message, "from"), "CURSOR");
        assert_eq!(str_field(message, "to"), copy.to);
        assert_eq!(str_field(message, "type"), "ALERT");
        assert_eq!(message["priority"], json!(1));
        assert_eq!(message["payload"], json!({"deploy": "done"}));
        assert_eq!(file_of(message), copy.file);
    }
    // The sender got no copy of its own broadcast; it holds only Python's.
    assert_eq!(
        ids(&py_receive(&comm, "cursor", &[])),
        from_python
            .iter()
            .filter(|m| m["to"] == "cursor")
            .map(|m| str_field(m, "id"))
            .collect::<Vec<_>>()
    );
    assert_eq!(py_peek(&comm, "claude"), 1);
    assert_eq!(py_peek(&comm, "vscode"), 2);
    assert_eq!(py_peek(&comm, "cursor"), 1);
}

/// Sets a file's modification time to two days ago.
fn make_old(path: &Path) {
    let two_days_ago = SystemTime::now() - std::time::Duration::from_secs(2 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(two_days_ago)
        .unwrap();
}

#[test]
fn each_side_sweeps_the_others_old_messages() {
    let comm = TempComm::with_agents(&["claude", "cursor"]);
    let mut lib = comm.open();
    let mailbox = comm.join("To_Cursor");
    let old_fmes = lib
        .send(&SendRequest::new("claude", "cursor", r#"{"age": "old"}"#))
        .unwrap();
    let old_python = py_send(
        &comm,
        "claude",
        "cursor",
        r#"{"age": "old"}"#,
        &["--priority", "3"],
    );
    let new_fmes = lib
        .send(&SendRequest::new("claude", "cursor", r#"{"age": "new"}"#))
        .unwrap();
    let new_python = py_send(
        &comm,
        "claude",
        "cursor",
        r#"{"age": "new"}"#,
        &["--priority", "4"],
    );
    make_old(&mailbox.join(&old_fmes.file));
    make_old(Path::new(&str_field(&old_python, "_path")));

    // Python's cleanup_stale archives old files whoever wrote them.
    assert_eq!(
        python(&comm, &["cleanup", "--max-age-hours", "24"]).trim(),
        "2"
    );
    let mut swept = vec![old_fmes.file.clone(), file_of(&old_python)];
    swept.sort();
    assert_eq!(comm.json_files("ARCHIVE"), swept);
    assert_eq!(
        fmes_ids(&lib.receive("cursor", None, None).unwrap().messages),
        [str_field(&new_python, "id"), new_fmes.id.clone()]
    );

    // fmes cleanup does the same with the rest.
    make_old(&mailbox.join(&new_fmes.file));
    make_old(Path::new(&str_field(&new_python, "_path")));
    let report = lib.cleanup(std::time::Duration::from_secs(86_400)).unwrap();
    assert_eq!(report.archived, 2);
    assert!(py_receive(&comm, "cursor", &[]).is_empty());
    assert_eq!(comm.json_files("ARCHIVE").len(), 4);
}
