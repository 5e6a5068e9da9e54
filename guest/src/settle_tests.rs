//! Unit tests of moves into settled folders (`DEAD/…`, `ARCHIVE/`) that a
//! killed process left half done, raced by a retry or a purge of the same
//! letter at the exact instant that used to let `recover` bring it back.

use std::path::Path;
use std::time::Duration;

use crate::fs::FileSystem;
use crate::hook_fs::{HookFs, Matcher, killed_at, once_before};
use crate::{Options, Queue, QueueError, SendRequest, StdFs};

/// `StdFs` on `root`, with a hook to set.
fn hooked(root: &Path) -> HookFs<StdFs> {
    HookFs::new(StdFs::new(root.to_str().unwrap()))
}

const OPTIONS: Options = Options {
    durable: false,
    max_deliveries: 1,
    origin: 0,
};

const DEAD: &str = "DEAD/To_Coder";

/// Where a settle is killed.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// Before its link: the file is only in `.incoming/`, with its note.
    BeforeLink,
    /// After its link, before its note is moved.
    AfterLink,
    /// After its note is moved, before the staging name is removed.
    AfterNote,
}

fn kill_at(kill: Kill) -> Matcher {
    Box::new(move |op, a, b| match kill {
        Kill::BeforeLink => op == "link" && a.contains("/.incoming/"),
        Kill::AfterLink => op == "rename" && a.contains("/.incoming/") && b.ends_with(".reason"),
        Kill::AfterNote => op == "remove" && a.contains("/.incoming/"),
    })
}

/// A queue of planner and coder in a new `_COMM` whose one message to coder
/// (payload `"D1"`) is claimed by c1; returns its file name.
fn setup() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let q = plain(dir.path());
    q.init(&["planner".into(), "coder".into()]).unwrap();
    q.send(SendRequest::new("planner", "coder", "\"D1\""))
        .unwrap();
    let file = claim(&q, "c1");
    (dir, file)
}

fn plain(root: &Path) -> Queue<StdFs> {
    Queue::with_options(StdFs::new(root.to_str().unwrap()), OPTIONS)
}

fn claim<F: FileSystem>(q: &Queue<F>, consumer: &str) -> String {
    let batch = q
        .claim("coder", consumer, 1, Duration::from_secs(60))
        .unwrap();
    assert_eq!(batch.claimed.len(), 1, "{consumer} claims the message");
    batch.claimed[0].message.file.clone()
}

/// A process that releases `file` claimed by `consumer` (past the delivery
/// limit: it is dead-lettered) and is killed at `kill`.
fn killed_release(root: &Path, consumer: &str, file: &str, kill: Kill) -> impl FnOnce() + 'static {
    let fs = hooked(root);
    fs.set_hook(killed_at(kill_at(kill)));
    let settler = Queue::with_options(fs, OPTIONS);
    let (consumer, file) = (consumer.to_string(), file.to_string());
    move || {
        let got = settler.release("coder", &consumer, &file);
        assert!(got.is_err(), "the release was killed: {got:?}");
    }
}

/// Every name the message has anywhere in `_COMM` (hard links of one file
/// count once each), notes and id markers aside.
fn copies(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, found);
            } else if !path.to_string_lossy().ends_with(".reason")
                && std::fs::read_to_string(&path).is_ok_and(|text| text.contains("\"D1\""))
            {
                let name = path.strip_prefix(root).unwrap();
                found.push(name.to_string_lossy().into_owned());
            }
        }
    }
    let mut found = Vec::new();
    walk(root, root, &mut found);
    found.sort();
    found
}

/// The folder of each name in `copies`.
fn folders(root: &Path) -> Vec<String> {
    copies(root)
        .iter()
        .map(|name| name.rsplit_once('/').map_or("", |(dir, _)| dir).to_string())
        .collect()
}

/// A hook that fires on the first operation on the dead letter `file`
/// itself (not its note), whatever the operation.
fn on_letter(file: &str) -> Matcher {
    let path = format!("{DEAD}/{file}");
    Box::new(move |_, a, _| a == path)
}

/// The race the crash-torture run found: a retry looks at
/// `DEAD/To_Coder/.incoming/` before a release stages the message there,
/// and goes for the letter after the release linked it and was killed.
/// Recover used to link the staging file again: the message was then both
/// in the mailbox and in the dead letters, and a second retry put a second
/// copy in the mailbox.
fn retry_racing_a_killed_dead_letter_move(kill: Kill) {
    let (dir, file) = setup();
    let root = dir.path();
    let fs = hooked(root);
    let settle = killed_release(root, "c1", &file, kill);
    fs.set_hook(once_before(on_letter(&file), settle));
    let retrier = Queue::with_options(fs, OPTIONS);
    let retried = retrier.retry_dead_letter("coder", &file);
    // Killed before its link, the move had put no letter there to retry.
    let expected_home = match (kill, &retried) {
        (Kill::BeforeLink, Err(QueueError::NotFound(_))) => DEAD,
        (Kill::BeforeLink, _) => panic!("retry of a letter not there: {retried:?}"),
        (_, Ok(name)) => {
            assert_eq!(name, &file);
            "To_Coder"
        }
        (_, Err(e)) => panic!("retry: {e:?}"),
    };
    let q = plain(root);
    q.recover().unwrap();
    assert_eq!(
        folders(root),
        [expected_home],
        "{kill:?}: {:?}",
        copies(root)
    );
    // And a second retry does not make a second copy.
    let _ = q.retry_dead_letter("coder", &file);
    assert_eq!(folders(root), ["To_Coder"], "{kill:?}: {:?}", copies(root));
    q.recover().unwrap();
    let batch = q.claim("coder", "c2", 5, Duration::from_secs(60)).unwrap();
    assert_eq!(batch.claimed.len(), 1, "{kill:?}: delivered once");
}

#[test]
fn a_retry_racing_a_dead_letter_move_killed_after_its_link_leaves_one_copy() {
    retry_racing_a_killed_dead_letter_move(Kill::AfterLink);
}

#[test]
fn a_retry_racing_a_dead_letter_move_killed_after_its_note_leaves_one_copy() {
    retry_racing_a_killed_dead_letter_move(Kill::AfterNote);
}

#[test]
fn a_retry_racing_a_dead_letter_move_killed_before_its_link_leaves_one_copy() {
    retry_racing_a_killed_dead_letter_move(Kill::BeforeLink);
}

/// The same race with a purge of that one letter: recover used to bring
/// the purged letter back.
fn purge_racing_a_killed_dead_letter_move(kill: Kill, one: bool) {
    let (dir, file) = setup();
    let root = dir.path();
    let fs = hooked(root);
    let settle = killed_release(root, "c1", &file, kill);
    // A purge of all finds the letter by listing the folder.
    let when: Matcher = if one {
        on_letter(&file)
    } else {
        Box::new(|op, a, _| op == "list" && a == DEAD)
    };
    fs.set_hook(once_before(when, settle));
    let purger = Queue::with_options(fs, OPTIONS);
    let purged = purger.purge_dead_letters(Some("coder"), one.then_some(file.as_str()));
    let q = plain(root);
    q.recover().unwrap();
    match (kill, purged) {
        // No letter was there to purge: it stays a dead letter.
        (Kill::BeforeLink, Err(QueueError::NotFound(_))) if one => {
            assert_eq!(folders(root), [DEAD], "{kill:?}: {:?}", copies(root));
        }
        (Kill::BeforeLink, Ok(letters)) if !one && letters.is_empty() => {
            assert_eq!(folders(root), [DEAD], "{kill:?}: {:?}", copies(root));
        }
        (Kill::BeforeLink, other) => panic!("{kill:?}: {other:?}"),
        (_, Ok(letters)) => {
            assert_eq!(letters.len(), 1, "{kill:?}: {letters:?}");
            assert_eq!(letters[0].file, file);
            assert!(copies(root).is_empty(), "{kill:?}: {:?}", copies(root));
        }
        (_, Err(e)) => panic!("{kill:?}: purge: {e:?}"),
    }
}

#[test]
fn a_purge_of_one_letter_racing_its_killed_move_is_not_undone_by_recover() {
    for kill in [Kill::BeforeLink, Kill::AfterLink, Kill::AfterNote] {
        purge_racing_a_killed_dead_letter_move(kill, true);
    }
}

#[test]
fn a_purge_of_all_racing_a_killed_move_is_not_undone_by_recover() {
    for kill in [Kill::BeforeLink, Kill::AfterLink, Kill::AfterNote] {
        purge_racing_a_killed_dead_letter_move(kill, false);
    }
}

/// A retry that looked at the letter while another retry took it away,
/// the message was claimed and dead-lettered again under the same name by
/// a process killed after its link, and the first retry then took that:
/// what it took still had a staging name, which recover would link again.
#[test]
fn a_retry_that_takes_a_letter_moved_in_again_since_it_looked_leaves_one_copy() {
    let (dir, file) = setup();
    let root = dir.path();
    let q = plain(root);
    // Dead first, by a release that finished.
    q.release("coder", "c1", &file).unwrap();
    let letter = format!("{DEAD}/{file}");
    let fs = hooked(root);
    let root_path = root.to_path_buf();
    let (again_file, letter_path) = (file.clone(), letter.clone());
    let meanwhile = move || {
        let other = plain(&root_path);
        other.retry_dead_letter("coder", &again_file).unwrap();
        let claimed = claim(&other, "c2");
        killed_release(&root_path, "c2", &claimed, Kill::AfterNote)();
        assert!(root_path.join(&letter_path).exists(), "dead again");
    };
    fs.set_hook(once_before(
        Box::new(move |op, a, _| op == "rename" && a == letter),
        meanwhile,
    ));
    let retrier = Queue::with_options(fs, OPTIONS);
    assert_eq!(retrier.retry_dead_letter("coder", &file).unwrap(), file);
    q.recover().unwrap();
    assert_eq!(folders(root), ["To_Coder"], "{:?}", copies(root));
    let batch = q.claim("coder", "c3", 5, Duration::from_secs(60)).unwrap();
    assert_eq!(batch.claimed.len(), 1, "delivered once");
}

/// With nobody taking the letter, a move killed at any point is completed
/// by recover: the letter is in the dead letters once, with its reason.
#[test]
fn a_dead_letter_move_killed_anywhere_is_completed_by_recover() {
    for kill in [Kill::BeforeLink, Kill::AfterLink, Kill::AfterNote] {
        let (dir, file) = setup();
        let root = dir.path();
        killed_release(root, "c1", &file, kill)();
        let q = plain(root);
        let report = q.recover().unwrap();
        assert_eq!(report.finished_moves, 1, "{kill:?}");
        assert_eq!(folders(root), [DEAD], "{kill:?}: {:?}", copies(root));
        let letters = q.dead_letters(Some("coder")).unwrap();
        assert_eq!(letters.len(), 1, "{kill:?}");
        assert!(
            letters[0].reason.starts_with("released after 1 deliveries"),
            "{kill:?}: {letters:?}"
        );
        // Retried after recover, it is in the mailbox once.
        q.retry_dead_letter("coder", &file).unwrap();
        q.recover().unwrap();
        assert_eq!(folders(root), ["To_Coder"], "{kill:?}: {:?}", copies(root));
    }
}

/// A retry or purge after the move was killed (no race) finishes the move
/// first and takes the letter once.
#[test]
fn a_letter_whose_move_was_killed_is_retried_or_purged_once() {
    for (kill, purge) in [
        (Kill::AfterLink, false),
        (Kill::AfterNote, false),
        (Kill::AfterLink, true),
        (Kill::AfterNote, true),
    ] {
        let (dir, file) = setup();
        let root = dir.path();
        killed_release(root, "c1", &file, kill)();
        let q = plain(root);
        if purge {
            let letters = q.purge_dead_letters(Some("coder"), Some(&file)).unwrap();
            assert!(
                letters[0].reason.starts_with("released after 1 deliveries"),
                "{kill:?}: {letters:?}"
            );
        } else {
            q.retry_dead_letter("coder", &file).unwrap();
        }
        q.recover().unwrap();
        let expected: &[&str] = if purge { &[] } else { &["To_Coder"] };
        assert_eq!(folders(root), expected, "{kill:?}: {:?}", copies(root));
    }
}

/// An acknowledgement killed after its link into `ARCHIVE/`, or before it,
/// is completed by recover: archived once.
#[test]
fn an_ack_killed_anywhere_in_its_move_is_archived_once_by_recover() {
    for kill in [
        Box::new(|op: &str, a: &str, _: &str| op == "link" && a.starts_with("ARCHIVE/.incoming/"))
            as Matcher,
        Box::new(|op: &str, a: &str, _: &str| {
            op == "remove" && a.starts_with("ARCHIVE/.incoming/")
        }),
    ] {
        let (dir, file) = setup();
        let root = dir.path();
        let fs = hooked(root);
        fs.set_hook(killed_at(kill));
        let acker = Queue::with_options(fs, OPTIONS);
        assert!(acker.ack("coder", "c1", &file).is_err(), "killed");
        plain(root).recover().unwrap();
        assert_eq!(folders(root), ["ARCHIVE"], "{:?}", copies(root));
    }
}
