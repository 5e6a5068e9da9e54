//! Sends with a caller-given id, interleaved with other processes and
//! stopped part-way: each is published once, and a stopped one is finished
//! by its retry or by `recover`.

use std::io;
use std::time::{Duration, SystemTime};

use crate::fs::FileSystem;
use crate::fs::mem_fs::MemFs;
use crate::hook_fs::HookFs;
use crate::queue::TEMPORARY_GRACE;
use crate::{Queue, SendRequest};

const ID: &str = "order-7";

fn stopped() -> Option<io::Error> {
    Some(io::Error::other("the process stopped here"))
}

fn request() -> SendRequest {
    SendRequest::new("a", "b", r#"{"order": 7}"#).with_id(ID)
}

/// A queue on `fs` with mailboxes a and b, and one on the same tree
/// through a hook.
fn queues(fs: &MemFs) -> (Queue<MemFs>, Queue<HookFs<MemFs>>) {
    let other = Queue::new(fs.clone());
    other.init(&["a".into(), "b".into()]).unwrap();
    (other, Queue::new(HookFs::new(fs.clone())))
}

/// Every copy of the message anywhere: waiting, claimed or archived (the
/// marker and its staged name are not copies).
fn copies(fs: &MemFs) -> Vec<String> {
    fs.files()
        .into_iter()
        .map(|f| f.path)
        .filter(|path| !path.starts_with(".fmes/"))
        .collect()
}

#[test]
fn a_retry_while_the_first_sender_publishes_and_a_claim_publish_it_once() {
    let fs = MemFs::default();
    let (other, first) = queues(&fs);
    // Just before the first sender publishes into the mailbox, another
    // process retries the send (it finds the marker) and a consumer claims
    // what it finds: the first sender must not publish the message again.
    let mut raced = false;
    first.fs.set_hook(move |_, from, to| {
        if !raced && from.starts_with(".fmes/ids/") && to.starts_with("To_B/") {
            raced = true;
            let retried = other.send(request()).unwrap();
            let claimed = other.claim("b", "w", 10, Duration::from_secs(60)).unwrap();
            assert_eq!(claimed.claimed.len(), 1);
            assert_eq!(claimed.claimed[0].message.id, retried.id);
        }
        None
    });
    let sent = first.send(request()).unwrap();
    assert_eq!(sent.id, ID);
    let all = copies(&fs);
    assert_eq!(all.len(), 1, "published once: {all:?}");
    assert!(all[0].starts_with("To_B/.inflight/"), "{all:?}");
    let reader = Queue::new(fs.clone());
    assert_eq!(reader.peek("b").unwrap(), 0);
    // And every later retry returns it, writing nothing.
    assert_eq!(reader.send(request()).unwrap().file, sent.file);
    assert_eq!(copies(&fs).len(), 1);
}

#[test]
fn a_sender_stopped_while_writing_leaves_no_marker_its_retry_cannot_use() {
    let fs = MemFs::default();
    let (other, first) = queues(&fs);
    // Stopped in the write of the message: only a part of it is on disk.
    let partial = fs.clone();
    first.fs.set_hook(move |op, path, _| {
        if op == "write" && path.starts_with(".fmes/ids/") {
            partial
                .write_at(path, b"{\"id\": \"ord", partial.now())
                .unwrap();
            return stopped();
        }
        None
    });
    first.send(request()).unwrap_err();
    assert!(fs.status(&format!(".fmes/ids/{ID}")).is_err(), "no marker");
    let sent = other.send(request()).unwrap();
    assert_eq!(other.peek("b").unwrap(), 1);
    assert_eq!(other.send(request()).unwrap().file, sent.file);
    assert_eq!(copies(&fs).len(), 1);
    // The part-written file is left for recover, past the grace period.
    let report = other.recover().unwrap();
    assert_eq!(report.removed_temporary, 1);
    let left: Vec<_> = fs.files().into_iter().map(|f| f.path).collect();
    assert_eq!(
        left.iter().filter(|p| p.starts_with(".fmes/")).count(),
        1,
        "{left:?}"
    );
}

/// A send stopped after making its marker, before publishing, on a tree
/// whose files are dated `now`.
fn send_stopped_before_publishing(now: SystemTime) -> (MemFs, Queue<MemFs>) {
    let fs = MemFs::new(now);
    let (other, first) = queues(&fs);
    first.fs.set_hook(|op, from, _| {
        (op == "rename" && from.starts_with(".fmes/ids/"))
            .then(stopped)
            .flatten()
    });
    first.send(request()).unwrap_err();
    assert_eq!(other.peek("b").unwrap(), 0);
    (fs, other)
}

#[test]
fn a_send_stopped_before_publishing_is_finished_by_its_retry_or_by_recover() {
    // Not by recover while its sender may still be at work on it.
    let (_, other) = send_stopped_before_publishing(SystemTime::now());
    assert_eq!(other.recover().unwrap().finished_moves, 0);
    assert_eq!(other.peek("b").unwrap(), 0);

    let long_ago = SystemTime::now() - TEMPORARY_GRACE - Duration::from_secs(60);
    for finisher in ["retry", "recover"] {
        let (fs, other) = send_stopped_before_publishing(long_ago);
        if finisher == "retry" {
            other.send(request()).unwrap();
        } else {
            assert_eq!(other.recover().unwrap().finished_moves, 1);
        }
        assert_eq!(other.peek("b").unwrap(), 1, "{finisher}");
        assert_eq!(copies(&fs).len(), 1, "{finisher}");
        let ids: Vec<_> = fs
            .files()
            .into_iter()
            .filter(|f| f.path.starts_with(".fmes/"))
            .map(|f| f.path)
            .collect();
        assert_eq!(
            ids,
            [format!(".fmes/ids/{ID}")],
            "{finisher}: only the marker left"
        );
        // Then in the queue: a retry returns it, writing nothing.
        other.send(request()).unwrap();
        assert_eq!(copies(&fs).len(), 1, "{finisher}");
    }
}
