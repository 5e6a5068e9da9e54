//! Unit tests of the answers that return many messages (a page, a claim, a
//! read of named files) ending at their byte budget, run on `MemFs` with a
//! budget small enough for messages of a few KiB.

use std::time::Duration;

use crate::fs::mem_fs::MemFs;
use crate::{Message, Queue, ReadingCache, SendRequest};

const LEASE: Duration = Duration::from_secs(60);

/// A queue with agents `a` and `b` whose answers hold two messages of
/// `payload_bytes` at most; the messages sent to `b`, in delivery order:
/// three of that payload, then a small one.
fn queue_with_large_messages(payload_bytes: usize) -> (MemFs, Queue<MemFs>, Vec<Message>) {
    let fs = MemFs::default();
    let sizing = Queue::new(fs.clone());
    sizing.init(&["a".to_string(), "b".to_string()]).unwrap();
    let mut sent = Vec::new();
    for payload in [payload_bytes, payload_bytes, payload_bytes, 10] {
        let mut request = SendRequest::new("a", "b", format!("\"{}\"", "x".repeat(payload)));
        request.max_payload_bytes = Some(1 << 20);
        sent.push(sizing.send(request).unwrap());
    }
    // Room for two of the large ones, not three.
    let budget = sent[0].answer_bytes() * 2 + 100;
    assert!(sent[0].answer_bytes() + sent[3].answer_bytes() <= budget);
    (fs.clone(), Queue::new(fs).with_answer_bytes(budget), sent)
}

fn files(messages: &[Message]) -> Vec<String> {
    messages.iter().map(|m| m.file.clone()).collect()
}

#[test]
fn a_page_ends_at_the_budget_and_the_next_page_goes_on_from_there() {
    let (_, q, sent) = queue_with_large_messages(4000);
    let mut cache = ReadingCache::new();

    let first = q.receive_page("b", None, 10, None, &mut cache).unwrap();
    assert_eq!(files(&first.messages), files(&sent[..2]));
    let next = first.next.expect("more follows the full page");
    assert_eq!(next.file, sent[1].file);

    let second = q
        .receive_page("b", None, 10, Some(&next), &mut cache)
        .unwrap();
    assert_eq!(files(&second.messages), files(&sent[2..]));
    assert_eq!(second.next, None);
    assert!(first.malformed.is_empty() && second.malformed.is_empty());
}

#[test]
fn a_message_larger_than_the_budget_comes_alone() {
    let (_, q, sent) = queue_with_large_messages(4000);
    let mut huge = SendRequest::new("a", "b", format!("\"{}\"", "y".repeat(20_000)));
    huge.priority = Some(1);
    huge.max_payload_bytes = Some(1 << 20);
    let huge = q.send(huge).unwrap();

    let mut cache = ReadingCache::new();
    let first = q.receive_page("b", None, 10, None, &mut cache).unwrap();
    assert_eq!(files(&first.messages), vec![huge.file.clone()]);
    let second = q
        .receive_page("b", None, 10, first.next.as_ref(), &mut cache)
        .unwrap();
    assert_eq!(files(&second.messages), files(&sent[..2]));

    let batch = q.claim("b", "w", 10, LEASE).unwrap();
    let claimed: Vec<String> = batch
        .claimed
        .iter()
        .map(|c| c.message.file.clone())
        .collect();
    assert_eq!(claimed, vec![huge.file]);
}

#[test]
fn a_claim_takes_no_more_than_its_budget_and_leaves_the_rest_untouched() {
    let (fs, q, sent) = queue_with_large_messages(4000);
    let waiting = |fs: &MemFs| -> Vec<String> {
        let mut names: Vec<String> = fs
            .files()
            .into_iter()
            .filter_map(|f| f.path.strip_prefix("To_B/").map(str::to_string))
            .filter(|name| !name.contains('/'))
            .collect();
        names.sort();
        names
    };

    let first = q.claim("b", "w", 10, LEASE).unwrap();
    let claimed: Vec<Message> = first.claimed.into_iter().map(|c| c.message).collect();
    assert_eq!(files(&claimed), files(&sent[..2]));
    assert_eq!(claimed[0].raw, sent[0].raw);
    // Not taken and given back: never moved.
    assert_eq!(waiting(&fs), files(&sent[2..]));

    let second = q.claim("b", "w", 10, LEASE).unwrap();
    let claimed: Vec<Message> = second.claimed.into_iter().map(|c| c.message).collect();
    assert_eq!(files(&claimed), files(&sent[2..]));
    assert!(waiting(&fs).is_empty());
    assert!(q.claim("b", "w", 10, LEASE).unwrap().claimed.is_empty());
    for message in &sent {
        q.ack("b", "w", &message.file).unwrap();
    }
}

#[test]
fn a_read_of_named_files_ends_at_the_budget_after_the_last_name_answered() {
    let (_, q, sent) = queue_with_large_messages(4000);
    let mut names = files(&sent);
    names.reverse();

    let first = q.read("b", &names).unwrap();
    assert_eq!(files(&first.messages), files(&sent[..2]));
    let rest: Vec<String> = names
        .into_iter()
        .filter(|name| *name > sent[1].file)
        .collect();
    let second = q.read("b", &rest).unwrap();
    assert_eq!(files(&second.messages), files(&sent[2..]));
}

#[test]
fn the_budget_counts_a_message_text_and_payload() {
    let (_, _, sent) = queue_with_large_messages(4000);
    let bytes = sent[0].answer_bytes();
    assert!(bytes >= (sent[0].raw.len() + sent[0].payload.len()) as u64);
    assert!(bytes < 2 * 4000 + 2048, "{bytes}");
}
