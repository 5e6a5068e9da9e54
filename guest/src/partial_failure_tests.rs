//! Claims and recovery that fail part-way (a full disk, a folder turned
//! unwritable): nothing they took is kept from the caller, and one message
//! that cannot be moved holds back no other.

use std::io;
use std::time::Duration;

use crate::fs::mem_fs::MemFs;
use crate::hook_fs::HookFs;
use crate::{Options, Queue, QueueError, SendRequest};

fn no_space() -> Option<io::Error> {
    Some(io::Error::from(io::ErrorKind::StorageFull))
}

/// A queue on `fs` with mailboxes a and b, b holding `count` messages.
fn with_messages(fs: &MemFs, count: usize) -> Queue<MemFs> {
    let q = Queue::new(fs.clone());
    q.init(&["a".into(), "b".into()]).unwrap();
    for n in 0..count {
        q.send(SendRequest::new("a", "b", n.to_string())).unwrap();
    }
    q
}

fn files_in(fs: &MemFs, dir: &str) -> Vec<String> {
    let prefix = format!("{dir}/");
    fs.files()
        .into_iter()
        .filter_map(|f| f.path.strip_prefix(&prefix).map(str::to_string))
        .filter(|name| !name.contains('/'))
        .collect()
}

#[test]
fn a_claim_that_fails_part_way_gives_back_what_it_took() {
    let fs = MemFs::default();
    let q = with_messages(&fs, 5);
    let before = files_in(&fs, "To_B");
    // The third move into .inflight/ finds the disk full.
    let claiming = Queue::new(HookFs::new(fs.clone()));
    let mut moves = 0;
    claiming.fs.set_hook(move |op, _, to| {
        if op == "rename" && to.starts_with("To_B/.inflight/") {
            moves += 1;
            if moves == 3 {
                return no_space();
            }
        }
        None
    });
    let err = claiming
        .claim("b", "w", 5, Duration::from_secs(60))
        .unwrap_err();
    assert!(matches!(err, QueueError::Io(_)), "{err:?}");
    // All back, under their names: not counted as delivered.
    assert_eq!(files_in(&fs, "To_B"), before);
    assert!(files_in(&fs, "To_B/.inflight").is_empty());
    assert_eq!(
        q.claim("b", "w", 5, Duration::from_secs(60))
            .unwrap()
            .claimed
            .len(),
        5
    );
}

#[test]
fn a_claim_that_fails_after_reading_gives_back_its_whole_batch() {
    let fs = MemFs::default();
    with_messages(&fs, 3);
    // A file named as fmes names messages, found not to be one once taken
    // and read with the others (first in order): its dead letter's note
    // finds the disk full.
    let bad = "1_20260101_000000.000000000Z_a_TASK_0123456789ab.json";
    fs.write_at(&format!("To_B/{bad}"), b"not json", fs.now())
        .unwrap();
    let before = files_in(&fs, "To_B");
    let claiming = Queue::new(HookFs::new(fs.clone()));
    claiming.fs.set_hook(|op, path, _| {
        (op == "write" && path.starts_with("DEAD/"))
            .then(no_space)
            .flatten()
    });
    claiming
        .claim("b", "w", 5, Duration::from_secs(60))
        .unwrap_err();
    // Every message back under its name, the bad file too (to be moved
    // by a later claim), nothing held in flight.
    assert_eq!(files_in(&fs, "To_B"), before);
    assert!(files_in(&fs, "To_B/.inflight").is_empty());
}

#[test]
fn one_claim_that_cannot_be_dead_lettered_holds_back_no_other() {
    let fs = MemFs::default();
    let options = Options {
        max_deliveries: 2,
        ..Options::default()
    };
    with_messages(&fs, 2);
    let q = Queue::with_options(fs.clone(), options);
    // The first twice claimed, the second once; both expire.
    q.claim("b", "w", 1, Duration::ZERO).unwrap();
    q.recover().unwrap();
    q.claim("b", "w", 2, Duration::ZERO).unwrap();
    assert_eq!(files_in(&fs, "To_B/.inflight").len(), 2);
    // Dead-lettering the first needs space the disk does not have.
    let recovering = Queue::with_options(HookFs::new(fs.clone()), options);
    recovering.fs.set_hook(|op, path, _| {
        (op == "write" && path.starts_with("DEAD/"))
            .then(no_space)
            .flatten()
    });
    recovering.recover().unwrap_err();
    assert_eq!(q.peek("b").unwrap(), 1, "the other returned");
    assert_eq!(files_in(&fs, "To_B/.inflight").len(), 1);
    // A claim is not failed by it either: it takes what is there.
    let batch = recovering
        .claim("b", "w", 5, Duration::from_secs(60))
        .unwrap();
    assert_eq!(batch.claimed.len(), 1);
}
