//! Unit tests of reading a mailbox page by page, run natively.

use std::path::Path;

use crate::counting_fs::CountingFs;
use crate::fs::FileSystem;
use crate::message::{OrderKey, ReadingOrder, sent_of};
use crate::{MalformedFile, Message, Page, Queue, QueueError, ReadingCache, SendRequest, StdFs};

fn setup() -> (tempfile::TempDir, Queue<StdFs>) {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::new(StdFs::new(dir.path().to_str().unwrap()));
    queue.init(&["a".to_string(), "b".to_string()]).unwrap();
    (dir, queue)
}

fn python_file(mailbox: &Path, name: &str, priority: u8, timestamp: &str, kind: &str) {
    let text = format!(
        r#"{{"id": "11111111-2222-4333-8444-555555555555", "from": "py", "to": "b",
  "type": "{kind}", "priority": {priority}, "timestamp": "{timestamp}", "payload": {{}}}}"#
    );
    std::fs::write(mailbox.join(name), text).unwrap();
}

/// A mailbox of every kind of file: fmes messages of three priorities and
/// two types, Python-named ones among them, files that are not messages
/// under both kinds of name, and a symbolic link.
fn mixed_mailbox() -> (tempfile::TempDir, Queue<StdFs>) {
    let (dir, q) = setup();
    let mailbox = dir.path().join("To_B");
    for i in 0..40u32 {
        let mut request = SendRequest::new("a", "b", format!("{{\"seq\": {i}}}"));
        request.priority = Some([5, 2, 9][i as usize % 3]);
        request.message_type = Some(if i % 4 == 0 { "REPORT" } else { "TASK" }.into());
        q.send(request).unwrap();
    }
    python_file(
        &mailbox,
        "2_20000101_000000_py_TASK.json",
        2,
        "2000-01-01T00:00:00Z",
        "TASK",
    );
    python_file(
        &mailbox,
        "5_20991231_235959_py_TASK.json",
        5,
        "2001-01-01T00:00:00Z",
        "TASK",
    );
    python_file(
        &mailbox,
        "9_20000101_000000_py_REPORT.json",
        9,
        "2000-01-01T00:00:00Z",
        "REPORT",
    );
    std::fs::write(mailbox.join("notes.json"), "not JSON").unwrap();
    // An fmes name (its key is its name) over a file that is not a message.
    std::fs::write(
        mailbox.join("5_20261123_101500.123456789Z_a_TASK_1a2b3c4d0007.json"),
        "[1, 2]",
    )
    .unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink("/etc/passwd", mailbox.join("link.json")).unwrap();
    (dir, q)
}

/// One page of `agent`'s mailbox in `order`.
fn page_of<F: FileSystem>(
    q: &Queue<F>,
    order: ReadingOrder,
    agent: &str,
    limit: u32,
    after: Option<&OrderKey>,
    cache: &mut ReadingCache,
) -> Page {
    match order {
        ReadingOrder::Delivery => q.receive_page(agent, None, limit, after, cache),
        ReadingOrder::SendTime => q.receive_page_by_send_time(agent, None, limit, after, cache),
    }
    .unwrap()
}

/// Every page of a reading, with the number of pages it took.
fn read_all_pages(
    q: &Queue<StdFs>,
    message_type: Option<&str>,
    limit: u32,
    cache: &mut ReadingCache,
) -> (Vec<Message>, Vec<MalformedFile>, usize) {
    read_all_pages_in(ReadingOrder::Delivery, q, message_type, limit, cache)
}

fn read_all_pages_in(
    order: ReadingOrder,
    q: &Queue<StdFs>,
    message_type: Option<&str>,
    limit: u32,
    cache: &mut ReadingCache,
) -> (Vec<Message>, Vec<MalformedFile>, usize) {
    let (mut messages, mut malformed, mut pages) = (Vec::new(), Vec::new(), 0);
    let mut after: Option<OrderKey> = None;
    loop {
        let page = match order {
            ReadingOrder::Delivery => {
                q.receive_page("b", message_type, limit, after.as_ref(), cache)
            }
            ReadingOrder::SendTime => {
                q.receive_page_by_send_time("b", message_type, limit, after.as_ref(), cache)
            }
        }
        .unwrap();
        pages += 1;
        assert!(page.messages.len() <= limit as usize);
        messages.extend(page.messages);
        malformed.extend(page.malformed);
        match page.next {
            Some(next) => after = Some(next),
            None => return (messages, malformed, pages),
        }
        assert!(pages < 1_000, "the reading never ends");
    }
}

fn files(messages: &[Message]) -> Vec<&str> {
    messages.iter().map(|m| m.file.as_str()).collect()
}

#[test]
fn pages_put_together_are_what_receive_reads() {
    let (_dir, q) = mixed_mailbox();
    for message_type in [None, Some("TASK"), Some("REPORT")] {
        let whole = q.receive("b", message_type, None).unwrap();
        assert!(whole.messages.len() >= 10);
        let mut expected_malformed = whole.malformed.clone();
        expected_malformed.sort_by(|a, b| a.file.cmp(&b.file));
        // Listing once for the whole reading, every few pages, and for every page.
        for ahead in [ReadingCache::AHEAD, 7, 0] {
            for limit in [1, 3, 10, 100] {
                let mut cache = ReadingCache::with_ahead(ahead);
                // A second reading with the same cache reads the same.
                let _ = read_all_pages(&q, message_type, limit, &mut cache);
                let (messages, mut malformed, pages) =
                    read_all_pages(&q, message_type, limit, &mut cache);
                let case = format!("type {message_type:?}, ahead {ahead}, limit {limit}");
                assert_eq!(files(&messages), files(&whole.messages), "{case}");
                assert_eq!(messages, whole.messages, "{case}");
                malformed.sort_by(|a, b| a.file.cmp(&b.file));
                assert_eq!(malformed, expected_malformed, "{case}: each reported once");
                if message_type.is_none() {
                    assert!(pages >= messages.len().div_ceil(limit as usize), "{case}");
                }
            }
        }
    }
}

/// A queue with six messages sent to "b", in order.
fn six_sent() -> (tempfile::TempDir, Queue<StdFs>, Vec<Message>) {
    let (dir, q) = setup();
    let sent = (0..6)
        .map(|i| q.send(SendRequest::new("a", "b", format!("{i}"))).unwrap())
        .collect();
    (dir, q, sent)
}

#[test]
fn a_reading_sees_what_arrives_after_its_place_and_skips_what_left() {
    let (_dir, q, sent) = six_sent();
    // Listing for every page: each page sees the mailbox as it is then.
    let mut cache = ReadingCache::with_ahead(0);
    let first = q.receive_page("b", None, 2, None, &mut cache).unwrap();
    assert_eq!(files(&first.messages), files(&sent[..2]));
    q.archive("b", &sent[2].file).unwrap();
    let late = q.send(SendRequest::new("a", "b", "\"late\"")).unwrap();
    let mut rest = Vec::new();
    let mut after = first.next;
    while let Some(position) = after {
        let page = q
            .receive_page("b", None, 2, Some(&position), &mut cache)
            .unwrap();
        rest.extend(page.messages);
        after = page.next;
    }
    assert_eq!(
        files(&rest),
        vec![
            sent[3].file.as_str(),
            &sent[4].file,
            &sent[5].file,
            &late.file
        ]
    );
}

#[test]
fn keys_listed_ahead_whose_files_went_away_are_skipped() {
    let (_dir, q, sent) = six_sent();
    let mut cache = ReadingCache::new();
    let first = q.receive_page("b", None, 2, None, &mut cache).unwrap();
    q.archive("b", &sent[2].file).unwrap();
    q.archive("b", &sent[3].file).unwrap();
    let second = q
        .receive_page("b", None, 2, first.next.as_ref(), &mut cache)
        .unwrap();
    // The page's room went to files that were gone: none, and more to come.
    assert!(second.messages.is_empty());
    assert!(second.malformed.is_empty());
    let third = q
        .receive_page("b", None, 2, second.next.as_ref(), &mut cache)
        .unwrap();
    assert_eq!(files(&third.messages), files(&sent[4..]));
    assert_eq!(third.next, None);
}

#[test]
fn an_empty_mailbox_is_one_page_with_nothing_next() {
    let (_dir, q) = setup();
    let page = q
        .receive_page("b", None, 10, None, &mut ReadingCache::new())
        .unwrap();
    assert!(page.messages.is_empty() && page.malformed.is_empty());
    assert_eq!(page.next, None);
    // A limit of 0 reads one message rather than never moving on.
    q.send(SendRequest::new("a", "b", "1")).unwrap();
    q.send(SendRequest::new("a", "b", "2")).unwrap();
    let page = q
        .receive_page("b", None, 0, None, &mut ReadingCache::new())
        .unwrap();
    assert_eq!(page.messages.len(), 1);
    assert!(page.next.is_some());
}

#[test]
fn a_position_is_checked_like_any_file_name() {
    let (_dir, q) = setup();
    let bad = OrderKey {
        priority: 5,
        sent: crate::clock::UtcNanos(0),
        file: "../To_A/x.json".to_string(),
    };
    let error = q
        .receive_page("b", None, 10, Some(&bad), &mut ReadingCache::new())
        .unwrap_err();
    assert_eq!(error, QueueError::InvalidFileName("../To_A/x.json".into()));
    let error = q
        .receive_page("nobody", None, 10, None, &mut ReadingCache::new())
        .unwrap_err();
    assert!(matches!(error, QueueError::UnknownAgent { .. }), "{error}");
}

#[test]
fn one_cache_serves_readings_of_several_mailboxes() {
    let (_dir, q) = setup();
    for i in 0..5 {
        q.send(SendRequest::new("a", "b", format!("{i}"))).unwrap();
        q.send(SendRequest::new("b", "a", format!("{i}"))).unwrap();
    }
    let mut cache = ReadingCache::new();
    let b1 = q.receive_page("b", None, 2, None, &mut cache).unwrap();
    let a1 = q.receive_page("a", None, 2, None, &mut cache).unwrap();
    let b2 = q
        .receive_page("b", None, 10, b1.next.as_ref(), &mut cache)
        .unwrap();
    let a2 = q
        .receive_page("a", None, 10, a1.next.as_ref(), &mut cache)
        .unwrap();
    assert_eq!(b1.messages.len() + b2.messages.len(), 5);
    assert_eq!(a1.messages.len() + a2.messages.len(), 5);
    assert!(b2.messages.iter().all(|m| m.to == "b"));
    assert!(a2.messages.iter().all(|m| m.to == "a"));
}

/// Messages in send order: send time (from an fmes name, else the
/// timestamp), then file name.
fn in_send_order(mut messages: Vec<Message>) -> Vec<Message> {
    messages.sort_by_key(|m| (sent_of(&m.file, &m.timestamp).unwrap(), m.file.clone()));
    messages
}

#[test]
fn pages_by_send_time_put_together_are_the_mailbox_in_send_order() {
    let (_dir, q) = mixed_mailbox();
    for message_type in [None, Some("TASK"), Some("REPORT")] {
        let whole = q.receive("b", message_type, None).unwrap();
        let expected = in_send_order(whole.messages.clone());
        // Priorities are mixed: the two orders differ.
        assert_ne!(files(&expected), files(&whole.messages));
        let mut expected_malformed = whole.malformed.clone();
        expected_malformed.sort_by(|a, b| a.file.cmp(&b.file));
        for ahead in [ReadingCache::AHEAD, 7, 0] {
            for limit in [1, 3, 10, 100] {
                let mut cache = ReadingCache::with_ahead(ahead);
                let order = ReadingOrder::SendTime;
                let _ = read_all_pages_in(order, &q, message_type, limit, &mut cache);
                let (messages, mut malformed, _) =
                    read_all_pages_in(order, &q, message_type, limit, &mut cache);
                let case = format!("type {message_type:?}, ahead {ahead}, limit {limit}");
                assert_eq!(files(&messages), files(&expected), "{case}");
                malformed.sort_by(|a, b| a.file.cmp(&b.file));
                assert_eq!(malformed, expected_malformed, "{case}: each reported once");
            }
        }
    }
}

#[test]
fn a_position_in_send_order_ignores_its_priority() {
    let (_dir, q) = mixed_mailbox();
    let mut cache = ReadingCache::with_ahead(0);
    let first = page_of(&q, ReadingOrder::SendTime, "b", 5, None, &mut cache);
    let mut position = first.next.unwrap();
    let honest = page_of(
        &q,
        ReadingOrder::SendTime,
        "b",
        5,
        Some(&position),
        &mut cache,
    );
    position.priority = if position.priority == 9 { 1 } else { 9 };
    let other = page_of(
        &q,
        ReadingOrder::SendTime,
        "b",
        5,
        Some(&position),
        &mut cache,
    );
    assert_eq!(files(&other.messages), files(&honest.messages));
    assert_eq!(honest.messages.len(), 5);
}

#[test]
fn readings_side_by_side_each_keep_their_keys() {
    let (dir, q) = setup();
    for i in 0..120u32 {
        for (from, to) in [("a", "b"), ("b", "a")] {
            let mut request = SendRequest::new(from, to, format!("{i}"));
            request.priority = Some([5, 1, 9][i as usize % 3]);
            q.send(request).unwrap();
        }
    }
    let counted = Queue::new(CountingFs::new(dir.path()));
    let listings = counted.fs.listings.clone();
    // Four readings, a page of each in turn: both orders of both mailboxes.
    let readings = [
        ("a", ReadingOrder::Delivery),
        ("a", ReadingOrder::SendTime),
        ("b", ReadingOrder::Delivery),
        ("b", ReadingOrder::SendTime),
    ];
    let mut cache = ReadingCache::with_ahead(1_000);
    let mut after: Vec<Option<OrderKey>> = vec![None; readings.len()];
    let mut read: Vec<Vec<Message>> = vec![Vec::new(); readings.len()];
    let mut done = [false; 4];
    while done.contains(&false) {
        for (i, (agent, order)) in readings.iter().enumerate() {
            if done[i] {
                continue;
            }
            let page = page_of(&counted, *order, agent, 10, after[i].as_ref(), &mut cache);
            read[i].extend(page.messages);
            after[i] = page.next;
            done[i] = after[i].is_none();
        }
    }
    for (i, (agent, order)) in readings.iter().enumerate() {
        let whole = q.receive(agent, None, None).unwrap().messages;
        let expected = match order {
            ReadingOrder::Delivery => whole,
            ReadingOrder::SendTime => in_send_order(whole),
        };
        assert_eq!(files(&read[i]), files(&expected), "{agent} {order:?}");
    }
    // Each reading listed its mailbox once: the first page's listing kept
    // the keys of the others (the allowance shared four ways is 250 keys,
    // more than the 110 that follow a first page).
    assert_eq!(listings.get(), readings.len());

    // A reading from the start forgets the earlier ones of its mailbox and
    // order, which nobody will go on with.
    listings.set(0);
    let mut cache = ReadingCache::with_ahead(200);
    for _ in 0..3 {
        let first = page_of(&counted, ReadingOrder::SendTime, "a", 10, None, &mut cache);
        assert!(first.next.is_some());
    }
    let other = page_of(&counted, ReadingOrder::SendTime, "b", 10, None, &mut cache);
    let next = other.next.as_ref();
    let second = page_of(&counted, ReadingOrder::SendTime, "b", 80, next, &mut cache);
    // Three first pages of a, one of b; b's second page came from the keys
    // its first listing kept: half the cache's allowance (100 keys, shared
    // with a's one reading left), not a quarter (50, had a's three stayed).
    assert_eq!(second.messages.len(), 80);
    assert_eq!(listings.get(), 4);
}

#[test]
fn a_reading_in_small_pages_keeps_as_many_pages_ahead_not_the_whole_allowance() {
    let (dir, q) = setup();
    for i in 0..120u32 {
        q.send(SendRequest::new("a", "b", format!("{i}"))).unwrap();
    }
    let counted = Queue::new(CountingFs::new(dir.path()));
    let listings = counted.fs.listings.clone();
    let mut cache = ReadingCache::with_ahead(1_000);
    let (mut after, mut read) = (None, Vec::new());
    loop {
        let page = page_of(
            &counted,
            ReadingOrder::Delivery,
            "b",
            2,
            after.as_ref(),
            &mut cache,
        );
        read.extend(page.messages);
        after = page.next;
        if after.is_none() {
            break;
        }
    }
    assert_eq!(read.len(), 120);
    // Each listing kept its page and 25 pages ahead (52 keys), not the
    // 1,000 the cache allows: 3 listings for 120 messages.
    assert_eq!(listings.get(), 3);
}
