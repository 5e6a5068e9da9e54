//! What the component can reach: `_COMM` and nothing else, whatever the
//! names and whatever is planted in the folder.

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fmes::{Comm, Error, Limits, QueueError, Runtime, SendRequest};

use crate::support::*;

/// Every file under a folder with its contents.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().display().to_string();
                files.insert(rel, std::fs::read(&path).unwrap_or_default());
            }
        }
    }
    files
}

/// A `_COMM` with mailboxes `a` and `b`, and beside it a folder `outside`
/// with a message-shaped secret the component must never read or touch.
fn comm_with_outside() -> (TempComm, std::path::PathBuf) {
    let comm = TempComm::with_agents(&["a", "b"]);
    let outside = comm.root.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(
        outside.join("secret.json"),
        r#"{"id":"s","from":"x","to":"b","type":"TASK","priority":1,"timestamp":"2024-01-01T00:00:00Z","payload":"SECRET"}"#,
    )
    .unwrap();
    (comm, outside)
}

#[test]
fn names_cannot_leave_comm() {
    let (comm, outside) = comm_with_outside();
    let before = snapshot(comm.root.path());
    let mut q = comm.open();
    for name in [
        "../outside",
        "..",
        "a/../../outside",
        "/tmp",
        "/",
        "a\0b",
        "To_A/..",
    ] {
        let err = q.send(&SendRequest::new("a", name, "1")).unwrap_err();
        assert!(
            matches!(err, Error::Queue(QueueError::InvalidAgentName(_))),
            "{name}: {err}"
        );
        let err = q.send(&SendRequest::new(name, "b", "1")).unwrap_err();
        assert!(
            matches!(err, Error::Queue(QueueError::InvalidAgentName(_))),
            "{name}: {err}"
        );
        assert!(q.receive(name, None, None).is_err());
        assert!(q.peek(name).is_err());
        assert!(q.init(&[name]).is_err());
    }
    for file in ["../../outside/secret.json", "/etc/passwd", "../To_A/x.json"] {
        let err = q.archive("b", file).unwrap_err();
        assert!(
            matches!(err, Error::Queue(QueueError::InvalidFileName(_))),
            "{file}: {err}"
        );
    }
    assert_eq!(snapshot(comm.root.path()), before);
    assert_eq!(snapshot(&outside).len(), 1);
}

#[test]
fn a_planted_symlink_to_a_file_outside_is_never_read_or_moved() {
    let (comm, outside) = comm_with_outside();
    let mut q = comm.open();
    let mailbox = comm.join("To_B");
    symlink(outside.join("secret.json"), mailbox.join("1_evil.json")).unwrap();
    let good = q.send(&SendRequest::new("a", "b", "1")).unwrap();

    let received = q.receive("b", None, None).unwrap();
    assert_eq!(received.messages.len(), 1);
    assert_eq!(received.messages[0].id, good.id);
    assert_eq!(received.malformed.len(), 1);
    assert_eq!(received.malformed[0].file, "1_evil.json");
    assert!(received.malformed[0].reason.contains("symbolic link"));
    assert!(!format!("{received:?}").contains("SECRET"));

    let err = q.archive("b", "1_evil.json").unwrap_err();
    assert!(
        matches!(err, Error::Queue(QueueError::InvalidLayout(_))),
        "{err}"
    );
    q.cleanup(Duration::ZERO).unwrap();
    assert!(mailbox.join("1_evil.json").is_symlink());
    assert_eq!(snapshot(&outside).len(), 1);
}

#[test]
fn a_mailbox_or_archive_that_is_a_symlink_is_refused() {
    let (comm, outside) = comm_with_outside();
    let mut q = comm.open();
    symlink(&outside, comm.join("To_Evil")).unwrap();
    let err = q.send(&SendRequest::new("a", "evil", "1")).unwrap_err();
    assert!(
        matches!(err, Error::Queue(QueueError::InvalidLayout(ref m)) if m.contains("symbolic link")),
        "{err}"
    );
    assert!(q.receive("evil", None, None).is_err());
    assert!(!q.agents().unwrap().contains(&"evil".to_string()));

    // ARCHIVE pointing outside: archiving must not write through it.
    let sent = q.send(&SendRequest::new("a", "b", "1")).unwrap();
    std::fs::remove_dir(comm.join("ARCHIVE")).unwrap();
    symlink(&outside, comm.join("ARCHIVE")).unwrap();
    let err = q.archive("b", &sent.file).unwrap_err();
    assert!(
        matches!(err, Error::Queue(QueueError::InvalidLayout(_))),
        "{err}"
    );
    assert_eq!(snapshot(&outside).len(), 1);
    assert_eq!(comm.json_files("To_B"), std::slice::from_ref(&sent.file));
}

#[test]
fn inner_folders_that_are_symlinks_are_refused_and_nothing_moves_through_them() {
    let (comm, outside) = comm_with_outside();
    let mut q = comm.open();
    let before = snapshot(&outside);
    let sent = q.send(&SendRequest::new("a", "b", "1")).unwrap();

    // A mailbox's .inflight/ pointing outside: a claim must not move the
    // message through it.
    symlink(&outside, comm.join("To_B/.inflight")).unwrap();
    let err = q
        .claim("b", "w", 1, std::time::Duration::from_secs(60))
        .unwrap_err();
    assert!(
        matches!(err, Error::Queue(QueueError::InvalidLayout(ref m)) if m.contains(".inflight")),
        "{err}"
    );
    std::fs::remove_file(comm.join("To_B/.inflight")).unwrap();

    // ARCHIVE/.incoming/ pointing outside: archiving must not either.
    std::fs::create_dir_all(comm.join("ARCHIVE")).unwrap();
    let _ = std::fs::remove_dir(comm.join("ARCHIVE/.incoming"));
    symlink(&outside, comm.join("ARCHIVE/.incoming")).unwrap();
    let err = q.archive("b", &sent.file).unwrap_err();
    assert!(
        matches!(err, Error::Queue(QueueError::InvalidLayout(ref m)) if m.contains(".incoming")),
        "{err}"
    );

    assert_eq!(snapshot(&outside), before);
    assert_eq!(comm.json_files("To_B"), std::slice::from_ref(&sent.file));
}

#[test]
fn the_components_import_no_network_or_http() {
    for (which, bytes) in [
        ("portable", fmes::runtime::COMPONENT),
        ("hosted", fmes::runtime::HOSTED_COMPONENT),
    ] {
        let imports = fmes::runtime::component_imports(bytes).unwrap();
        assert!(
            imports.iter().any(|i| i.starts_with("wasi:filesystem/")),
            "{which}: {imports:?}"
        );
        for import in &imports {
            assert!(
                !import.starts_with("wasi:sockets/") && !import.starts_with("wasi:http/"),
                "{which}: unexpected import {import}"
            );
        }
        // Only the component this host runs asks it for batch listings.
        assert_eq!(
            imports.iter().any(|i| i == "fmes:queue/listing@0.1.0"),
            which == "hosted",
            "{which}: {imports:?}"
        );
    }
}

#[test]
fn a_call_past_the_time_limit_is_stopped_and_the_next_call_works() {
    let comm = TempComm::with_agents(&["a", "b"]);
    // A zero limit stops every call at its first instruction.
    let strict = Arc::new(
        Runtime::new(
            Limits {
                time: Duration::ZERO,
                ..Limits::default()
            },
            Some(&cache_dir()),
        )
        .unwrap(),
    );
    let mut q = Comm::open_with(strict, &comm.path).unwrap();
    let err = q.peek("b").unwrap_err();
    assert!(
        matches!(err, Error::TimeLimit(d) if d == Duration::ZERO),
        "{err}"
    );
    assert!(err.to_string().contains("time limit"));
    assert_eq!(comm.open().peek("b").unwrap(), 0);
}

#[test]
fn a_call_past_the_memory_limit_is_stopped_and_the_instance_replaced() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let tight = Arc::new(
        Runtime::new(
            Limits {
                memory: 4 * 1024 * 1024,
                ..Limits::default()
            },
            Some(&cache_dir()),
        )
        .unwrap(),
    );
    let mut q = Comm::open_with(tight, &comm.path).unwrap();
    assert_eq!(q.peek("b").unwrap(), 0);
    // Reading these needs far more than 4 MiB at once.
    let mut full = comm.open();
    let payload = format!("\"{}\"", "x".repeat(900 * 1024));
    for _ in 0..6 {
        full.send(&SendRequest::new("a", "b", payload.clone()))
            .unwrap();
    }
    let err = q.receive("b", None, None).unwrap_err();
    assert!(
        matches!(err, Error::MemoryLimit(limit) if limit == 4 * 1024 * 1024),
        "{err}"
    );
    // The trapped instance is gone; a fresh one answers.
    assert_eq!(q.peek("b").unwrap(), 6);
}
