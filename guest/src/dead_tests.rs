//! Unit tests of reading and purging dead letters a page at a time, run
//! natively.

use std::path::Path;

use crate::counting_fs::CountingFs;
use crate::dead::{DeadLetterCache, DeadLetterPage};
use crate::{DeadLetter, FileSystem, Queue, QueueError, StdFs};

fn setup() -> (tempfile::TempDir, Queue<StdFs>) {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::new(StdFs::new(dir.path().to_str().unwrap()));
    queue.init(&["a".to_string(), "b".to_string()]).unwrap();
    (dir, queue)
}

/// Puts `count` dead letters for `agent` straight into its dead-letter
/// folder, each with its note, numbered so that name order is number order.
fn plant_dead(root: &Path, agent: &str, count: usize) -> Vec<String> {
    let dir = root
        .join("DEAD")
        .join(format!("To_{}", agent.to_uppercase()));
    std::fs::create_dir_all(&dir).unwrap();
    (0..count)
        .map(|i| {
            let name = format!("5_20261124_101500.{i:09}Z_x_TASK_{i:012x}.json");
            std::fs::write(dir.join(&name), format!(r#"{{"n": {i}}}"#)).unwrap();
            let note = format!(r#"{{"reason": "reason {i}", "deliveries": 5, "dead_at_ms": {i}}}"#);
            std::fs::write(dir.join(format!("{name}.reason")), note).unwrap();
            name
        })
        .collect()
}

/// Every page of `agent`'s dead letters from the start, with `limit` a page.
fn all_pages<F: FileSystem>(
    queue: &Queue<F>,
    agent: &str,
    limit: u32,
    cache: &mut DeadLetterCache,
) -> Vec<DeadLetterPage> {
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = queue
            .dead_letter_page(agent, limit, after.as_deref(), cache)
            .unwrap();
        after = page.next.clone();
        pages.push(page);
        if after.is_none() {
            return pages;
        }
    }
}

fn files(letters: &[DeadLetter]) -> Vec<&str> {
    letters.iter().map(|l| l.file.as_str()).collect()
}

#[test]
fn pages_put_together_are_every_dead_letter_in_name_order() {
    let (dir, _) = setup();
    let mut names = plant_dead(dir.path(), "a", 25);
    // Not dead letters: a folder, and a note whose letter is gone.
    let dead = dir.path().join("DEAD/To_A");
    std::fs::create_dir(dead.join("folder.json")).unwrap();
    std::fs::write(dead.join("gone.json.reason"), "{}").unwrap();
    // A letter without a note is still one.
    std::fs::write(dead.join("x_bare.json"), "not json").unwrap();
    names.push("x_bare.json".into());

    let queue = Queue::new(CountingFs::new(dir.path()));
    let listings = queue.fs.listings.clone();
    let pages = all_pages(&queue, "a", 4, &mut DeadLetterCache::with_ahead(3));
    let letters: Vec<DeadLetter> = pages.into_iter().flat_map(|p| p.letters).collect();
    assert_eq!(files(&letters), names);
    assert_eq!(letters, queue.dead_letters(Some("a")).unwrap());
    assert_eq!(letters[0].reason, "reason 0");
    assert_eq!(letters[0].deliveries, 5);
    assert_eq!(letters[24].dead_at_ms, 24);
    assert_eq!(letters[25].reason, "no reason was recorded");
    // 26 letters, 4 a page and 3 more kept ahead: a listing every 7.
    assert_eq!(
        listings.get(),
        4 + 1,
        "listings of the pages, then of dead_letters"
    );
}

#[test]
fn a_letter_retried_or_purged_between_pages_is_left_out() {
    let (dir, queue) = setup();
    let names = plant_dead(dir.path(), "a", 10);
    let mut cache = DeadLetterCache::with_ahead(100);
    let first = queue.dead_letter_page("a", 4, None, &mut cache).unwrap();
    assert_eq!(files(&first.letters), &names[..4]);
    assert_eq!(first.next.as_deref(), Some(names[3].as_str()));
    // Both were listed ahead with the first page.
    queue.retry_dead_letter("a", &names[5]).unwrap();
    queue
        .purge_dead_letters(Some("a"), Some(&names[7]))
        .unwrap();
    let rest = queue
        .dead_letter_page("a", 100, first.next.as_deref(), &mut cache)
        .unwrap();
    let expected: Vec<&str> = [4, 6, 8, 9].iter().map(|&i| names[i].as_str()).collect();
    assert_eq!(files(&rest.letters), expected);
    assert_eq!(rest.next, None);
}

#[test]
fn an_agent_without_dead_letters_has_an_empty_page_and_a_bad_name_an_error() {
    let (_dir, queue) = setup();
    let mut cache = DeadLetterCache::new();
    for agent in ["a", "nobody"] {
        let page = queue.dead_letter_page(agent, 10, None, &mut cache).unwrap();
        assert_eq!(page, DeadLetterPage::default(), "{agent}");
    }
    let bad = queue.dead_letter_page("../a", 10, None, &mut cache);
    assert!(
        matches!(bad, Err(QueueError::InvalidAgentName(_))),
        "{bad:?}"
    );
}

#[test]
fn purging_one_dead_letter_reads_no_other() {
    let (dir, _) = setup();
    let names = plant_dead(dir.path(), "a", 200);
    let queue = Queue::new(CountingFs::new(dir.path()));
    let reads = queue.fs.reads.clone();
    let purged = queue
        .purge_dead_letters(Some("a"), Some(&names[150]))
        .unwrap();
    assert_eq!(files(&purged), [names[150].as_str()]);
    assert_eq!(purged[0].reason, "reason 150");
    assert_eq!(reads.get(), 1, "only its note is read");
    let dead = dir.path().join("DEAD/To_A");
    assert!(!dead.join(&names[150]).exists());
    assert!(!dead.join(format!("{}.reason", names[150])).exists());
    assert_eq!(queue.dead_letters(Some("a")).unwrap().len(), 199);
    let again = queue.purge_dead_letters(Some("a"), Some(&names[150]));
    assert!(matches!(again, Err(QueueError::NotFound(_))), "{again:?}");
}

#[test]
fn purging_all_goes_through_them_a_page_at_a_time() {
    let (dir, queue) = setup();
    let names = plant_dead(dir.path(), "a", 2_500);
    plant_dead(dir.path(), "b", 3);
    let purged = queue.purge_dead_letters(Some("a"), None).unwrap();
    assert_eq!(files(&purged), names);
    let left: Vec<_> = std::fs::read_dir(dir.path().join("DEAD/To_A"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|name| name != ".incoming")
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(queue.dead_letters(Some("b")).unwrap().len(), 3);
}

#[test]
fn a_dead_letter_folder_that_cannot_be_listed_is_an_error_naming_it() {
    let (dir, queue) = setup();
    std::fs::create_dir(dir.path().join("DEAD")).unwrap();
    std::fs::write(dir.path().join("DEAD/To_A"), "not a folder").unwrap();
    let got = queue.dead_letter_page("a", 10, None, &mut DeadLetterCache::new());
    match got {
        Err(QueueError::Io(ref message)) if message.contains("list _COMM/DEAD/To_A") => {}
        other => panic!("{other:?}"),
    }
}
