//! Unit tests of the queue logic, run natively on the std backend.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::{Queue, QueueError, SendRequest, StdFs};

fn queue_in(dir: &Path) -> Queue<StdFs> {
    Queue::new(StdFs::new(dir.to_str().unwrap()))
}

fn setup(agents: &[&str]) -> (tempfile::TempDir, Queue<StdFs>) {
    let dir = tempfile::tempdir().unwrap();
    let queue = queue_in(dir.path());
    let agents: Vec<String> = agents.iter().map(|a| a.to_string()).collect();
    queue.init(&agents).unwrap();
    (dir, queue)
}

fn python_message(priority: u8, timestamp: &str, payload: &str) -> String {
    format!(
        r#"{{
  "id": "11111111-2222-4333-8444-555555555555",
  "from": "py",
  "to": "b",
  "type": "TASK",
  "priority": {priority},
  "timestamp": "{timestamp}",
  "payload": {payload}
}}"#
    )
}

/// The payloads of the messages waiting for `agent`, in delivery order.
fn waiting_payloads(q: &Queue<StdFs>, agent: &str) -> Vec<String> {
    let received = q.receive(agent, None, None).unwrap();
    received.messages.into_iter().map(|m| m.payload).collect()
}

#[test]
fn python_named_files_are_ordered_by_their_fields_among_fmes_files() {
    let (dir, q) = setup(&["a", "b"]);
    let mailbox = dir.path().join("To_B");
    // Written in a time zone far ahead of UTC: the name's local time sorts
    // after the fmes messages, the UTC timestamp before them.
    std::fs::write(
        mailbox.join("5_20991231_235959_py_TASK.json"),
        python_message(5, "2000-01-01T00:00:00Z", "\"early\""),
    )
    .unwrap();
    let fmes = q.send(SendRequest::new("a", "b", "\"fmes\"")).unwrap();
    std::fs::write(
        mailbox.join("1_20000101_000000_py_TASK.json"),
        python_message(1, "2000-01-01T00:00:00Z", "\"urgent\""),
    )
    .unwrap();
    std::fs::write(
        mailbox.join("9_19990101_000000_py_TASK.json"),
        python_message(9, "2000-01-01T00:00:00Z", "\"last\""),
    )
    .unwrap();
    assert_eq!(
        waiting_payloads(&q, "b"),
        ["\"urgent\"", "\"early\"", fmes.payload.as_str(), "\"last\""]
    );
    // The limit counts delivered messages, in that order.
    let first: Vec<String> = q
        .receive("b", None, Some(2))
        .unwrap()
        .messages
        .into_iter()
        .map(|m| m.payload)
        .collect();
    assert_eq!(first, ["\"urgent\"", "\"early\""]);
}

#[test]
fn priorities_outside_one_to_nine_from_other_writers_are_delivered_in_number_order() {
    let (dir, q) = setup(&["b"]);
    let mailbox = dir.path().join("To_B");
    std::fs::write(
        mailbox.join("10_x.json"),
        python_message(10, "2000-01-01T00:00:00Z", "10"),
    )
    .unwrap();
    std::fs::write(
        mailbox.join("2_x.json"),
        python_message(2, "2000-01-01T00:00:00Z", "2"),
    )
    .unwrap();
    let priorities: Vec<u8> = q
        .receive("b", None, None)
        .unwrap()
        .messages
        .iter()
        .map(|m| m.priority)
        .collect();
    assert_eq!(priorities, [2, 10]);
}

#[test]
fn concurrent_sends_from_threads_never_collide() {
    let (dir, _) = setup(&["a", "b"]);
    let root = Arc::new(dir.path().to_path_buf());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let root = root.clone();
            std::thread::spawn(move || {
                let q = queue_in(&root);
                for i in 0..250 {
                    q.send(SendRequest::new("a", "b", format!("[{t},{i}]")))
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let q = queue_in(&root);
    let received = q.receive("b", None, None).unwrap();
    assert_eq!(received.messages.len(), 1000);
    let mut ids: Vec<&str> = received.messages.iter().map(|m| m.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 1000);
}

#[test]
fn racing_archivers_leave_exactly_one_archived_copy() {
    for _ in 0..20 {
        let (dir, q) = setup(&["a", "b"]);
        let sent = q.send(SendRequest::new("a", "b", "1")).unwrap();
        let root = Arc::new(dir.path().to_path_buf());
        let results: Vec<Result<String, QueueError>> = (0..4)
            .map(|_| {
                let root = root.clone();
                let file = sent.file.clone();
                std::thread::spawn(move || queue_in(&root).archive("b", &file))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        let archived = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(archived, 1, "{results:?}");
        assert!(
            results
                .iter()
                .all(|r| r.is_ok() || matches!(r, Err(QueueError::NotFound(_))))
        );
        let archived_files = std::fs::read_dir(dir.path().join("ARCHIVE"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_type().unwrap().is_file())
            .count();
        assert_eq!(archived_files, 1);
        assert_eq!(q.peek("b").unwrap(), 0);
    }
}

#[test]
fn a_symlink_swapped_in_is_not_followed_natively_either() {
    let (dir, q) = setup(&["b"]);
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.json");
    std::fs::write(
        &secret,
        python_message(1, "2000-01-01T00:00:00Z", "\"SECRET\""),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        &secret,
        dir.path().join("To_B/5_20000101_000000_x_TASK.json"),
    )
    .unwrap();
    // The backend refuses the link itself, not only the listing.
    let fs = StdFs::new(dir.path().to_str().unwrap());
    use crate::fs::FileSystem;
    assert!(
        fs.read("To_B/5_20000101_000000_x_TASK.json", 1 << 20)
            .is_err()
    );
    let received = q.receive("b", None, None).unwrap();
    assert!(received.messages.is_empty());
    assert!(received.malformed[0].reason.contains("symbolic link"));
}

#[test]
fn oversized_files_are_reported_without_being_read_whole() {
    let (dir, q) = setup(&["b"]);
    let big = dir.path().join("To_B/huge.json");
    let file = std::fs::File::create(&big).unwrap();
    file.set_len(crate::queue::MAX_FILE_BYTES + 1).unwrap();
    let received = q.receive("b", None, None).unwrap();
    assert_eq!(received.malformed.len(), 1);
    assert!(received.malformed[0].reason.contains("larger than"));
}

#[test]
fn cleanup_of_an_empty_queue_and_a_vanished_mailbox() {
    let (dir, q) = setup(&["a", "b"]);
    assert_eq!(q.cleanup(Duration::ZERO).unwrap(), Default::default());
    std::fs::remove_dir(dir.path().join("To_A")).unwrap();
    q.send(SendRequest::new("a", "b", "1")).unwrap();
    let report = q.cleanup(Duration::ZERO).unwrap();
    assert_eq!(report.archived, 1);
}

#[test]
fn an_unreadable_comm_is_an_error() {
    let q = queue_in(Path::new("/nonexistent/fmes/_COMM"));
    assert!(matches!(q.agents(), Err(QueueError::Io(ref m)) if m.contains("list _COMM")));
    let err = q.send(SendRequest::new("a", "b", "1")).unwrap_err();
    assert!(matches!(err, QueueError::Io(_)), "{err}");
}

/// Mailbox `b` with ten messages from `a`, and before them in delivery order
/// two files that are not messages under fmes names that sort first.
fn ten_messages_after_two_bad_files() -> (tempfile::TempDir, Queue<StdFs>, Vec<crate::Message>) {
    let (dir, q) = setup(&["a", "b"]);
    let sent: Vec<_> = (0..10)
        .map(|i| q.send(SendRequest::new("a", "b", i.to_string())).unwrap())
        .collect();
    for bad in [
        "5_20000101_000000.000000000Z_a_TASK_000000000000.json",
        "5_20000101_000000.000000001Z_a_TASK_000000000000.json",
    ] {
        std::fs::write(dir.path().join("To_B").join(bad), "{").unwrap();
    }
    (dir, q, sent)
}

#[test]
fn receive_with_a_limit_returns_the_first_messages_even_past_bad_files() {
    let (dir, q, sent) = ten_messages_after_two_bad_files();
    let mailbox = dir.path().join("To_B");
    // A Python-named message sorts between the fifth and sixth.
    let between = &sent[5].timestamp;
    std::fs::write(
        mailbox.join("5_20991231_235959_py_TASK.json"),
        python_message(5, between, "\"python\""),
    )
    .unwrap();
    let all = q.receive("b", None, None).unwrap();
    assert_eq!(all.messages.len(), 11);
    for limit in [1, 3, 6, 7, 11, 20] {
        let first = q.receive("b", None, Some(limit)).unwrap();
        let expected: Vec<&str> = all
            .messages
            .iter()
            .take(limit as usize)
            .map(|m| m.file.as_str())
            .collect();
        let got: Vec<&str> = first.messages.iter().map(|m| m.file.as_str()).collect();
        assert_eq!(got, expected, "limit {limit}");
        assert_eq!(first.malformed.len(), 2, "limit {limit}");
    }
    assert_eq!(q.peek("b").unwrap(), 13);
}

#[test]
fn claim_with_a_limit_fills_the_batch_past_bad_files_in_order() {
    // A claim of 3 takes the bad files first (to the dead letters) and must
    // still claim 3.
    let (_dir, q, sent) = ten_messages_after_two_bad_files();
    let batch = q.claim("b", "w", 3, Duration::from_secs(60)).unwrap();
    let claimed: Vec<&str> = batch
        .claimed
        .iter()
        .map(|c| c.message.file.as_str())
        .collect();
    let expected: Vec<&str> = sent[..3].iter().map(|m| m.file.as_str()).collect();
    assert_eq!(claimed, expected);
    assert_eq!(batch.dead_lettered.len(), 2);
    // The rest, in order, in batches of 4: nothing skipped or repeated.
    let mut rest = Vec::new();
    loop {
        let batch = q.claim("b", "w", 4, Duration::from_secs(60)).unwrap();
        if batch.claimed.is_empty() {
            break;
        }
        rest.extend(batch.claimed.into_iter().map(|c| c.message.file));
    }
    let expected: Vec<String> = sent[3..].iter().map(|m| m.file.clone()).collect();
    assert_eq!(rest, expected);
}

#[test]
fn hex_digits_and_uuids_are_spelled_as_format_would() {
    const HEX: &[u8] = b"0123456789abcdef";
    let bytes: Vec<u8> = (0..=255).collect();
    let mut hex = vec![0u8; 2 * bytes.len()];
    crate::queue::put_hex(&mut hex, &bytes);
    let formatted: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(String::from_utf8(hex).unwrap(), formatted);
    for len in [0, 3, 8, 16] {
        let hex = crate::queue::random_hex(len);
        assert_eq!(hex.len(), 2 * len);
        assert!(hex.bytes().all(|b| HEX.contains(&b)), "{hex}");
    }

    for _ in 0..100 {
        let id = crate::queue::uuid_v4();
        let groups: Vec<&str> = id.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12],
            "{id}"
        );
        assert!(
            id.bytes()
                .all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert!(groups[2].starts_with('4'), "version 4: {id}");
        assert!(
            matches!(&groups[3][..1], "8" | "9" | "a" | "b"),
            "variant: {id}"
        );
    }
}

#[test]
fn unique_parts_are_the_origin_and_a_count_in_hex() {
    let queue = Queue::with_options(
        StdFs::new("/nonexistent"),
        crate::Options {
            origin: 0x00ab_cdef,
            ..Default::default()
        },
    );
    let (first, second) = (queue.unique_part(), queue.unique_part());
    let (first, second) = (first.as_str(), second.as_str());
    assert!(
        first.starts_with("00abcdef") && second.starts_with("00abcdef"),
        "{first}"
    );
    assert_eq!(first.len(), 12);
    let count = |part: &str| u16::from_str_radix(&part[8..], 16).unwrap();
    // Other tests make names in parallel: later, not necessarily next.
    assert_ne!(count(first), count(second));
}

/// `init` of claude and cursor while another process makes `To_Claude`.
fn init_while_another_makes_to_claude(as_file: bool) -> Result<Vec<String>, QueueError> {
    use crate::fs::FileSystem;
    let fs = crate::fs::mem_fs::MemFs::default();
    let q = Queue::new(crate::hook_fs::HookFs::new(fs.clone()));
    // Between the queue's look at it and its mkdir.
    let another = move || {
        let _ = match as_file {
            true => fs.write_new("To_Claude", b"x", false),
            false => fs.create_dir("To_Claude"),
        };
    };
    let mkdir: crate::hook_fs::Matcher =
        Box::new(|op, path, _| op == "create_dir" && path == "To_Claude");
    q.fs.set_hook(crate::hook_fs::once_before(mkdir, another));
    let created = q.init(&["claude".into(), "cursor".into()])?;
    assert_eq!(q.agents().unwrap(), ["claude", "cursor"]);
    Ok(created)
}

#[test]
fn a_folder_made_by_another_process_while_init_looks_is_used() {
    // Not created by this call, and no error for it.
    assert_eq!(
        init_while_another_makes_to_claude(false).unwrap(),
        ["cursor"]
    );
}

#[test]
fn a_file_made_by_another_process_while_init_looks_is_refused() {
    let err = init_while_another_makes_to_claude(true).unwrap_err();
    assert!(
        matches!(err, QueueError::InvalidLayout(ref m) if m == "To_Claude is a file, not a folder"),
        "{err}"
    );
}

#[test]
fn stats_count_archives_of_many_batches_and_find_the_oldest_under_any_name() {
    let (dir, q) = setup(&["a", "b"]);
    // More archived files than one batch of reads holds, for two agents.
    for i in 0..150 {
        let to = if i % 3 == 0 { "a" } else { "b" };
        let sent = q.send(SendRequest::new("x", to, format!("{i}"))).unwrap();
        q.archive(to, &sent.file).unwrap();
    }
    std::fs::write(dir.path().join("ARCHIVE").join("junk.json"), "[]").unwrap();
    q.send(SendRequest::new("x", "b", "\"new\"")).unwrap();
    // The oldest waiting message has a Python name: its time is in its text.
    std::fs::write(
        dir.path()
            .join("To_B")
            .join("5_20991231_235959_py_TASK.json"),
        python_message(5, "2000-01-01T00:00:00Z", "\"old\""),
    )
    .unwrap();
    let stats = q.stats().unwrap();
    let counts: Vec<(&str, u32, u32)> = stats
        .iter()
        .map(|s| (s.agent.as_str(), s.ready, s.archived))
        .collect();
    assert_eq!(counts, [("a", 0, 50), ("b", 2, 100)]);
    assert_eq!(stats[0].oldest_ready_age_ms, None);
    let age = stats[1].oldest_ready_age_ms.unwrap();
    let years = age / (1000 * 3600 * 24 * 365);
    assert!((25..200).contains(&years), "oldest is {age} ms old");
}

#[test]
fn claims_this_queue_made_are_settled_without_listing_inflight() {
    let (dir, q) = setup(&["a", "b"]);
    for i in 0..40 {
        q.send(SendRequest::new("a", "b", format!("{i}"))).unwrap();
    }
    let counted = Queue::new(crate::counting_fs::CountingFs::new(dir.path()));
    let listings = counted.fs.listings.clone();
    let batch = counted
        .claim("b", "w", 40, Duration::from_secs(600))
        .unwrap();
    assert_eq!(batch.claimed.len(), 40);
    listings.set(0);
    let files: Vec<&str> = batch
        .claimed
        .iter()
        .map(|c| c.message.file.as_str())
        .collect();
    counted
        .extend("b", "w", files[0], Duration::from_secs(900))
        .unwrap();
    assert!(matches!(
        counted.release("b", "w", files[1]).unwrap(),
        crate::Released::Returned(_)
    ));
    for file in &files[2..] {
        counted.ack("b", "w", file).unwrap();
    }
    // The renewed claim is remembered under its new name too.
    counted.ack("b", "w", files[0]).unwrap();
    assert_eq!(listings.get(), 0, "listings of .inflight/ to settle claims");
    // Settled claims are forgotten: settling again is an error, as ever.
    let again = counted.ack("b", "w", files[2]);
    assert!(matches!(again, Err(QueueError::NotFound(_))), "{again:?}");
    // Another consumer cannot settle a claim by naming it.
    let other = q.claim("b", "w", 1, Duration::from_secs(600)).unwrap();
    let wrong = q.ack("b", "intruder", &other.claimed[0].message.file);
    assert!(matches!(wrong, Err(QueueError::NotFound(_))), "{wrong:?}");
}

#[test]
fn claims_made_elsewhere_are_settled_with_one_listing_and_only_by_their_consumer() {
    let (dir, q) = setup(&["a", "b"]);
    for i in 0..60 {
        q.send(SendRequest::new("a", "b", format!("{i}"))).unwrap();
    }
    // Another process (here another queue) claims for two consumers.
    let mine = q.claim("b", "w", 40, Duration::from_secs(600)).unwrap();
    let theirs = q.claim("b", "v", 20, Duration::from_secs(600)).unwrap();
    let files = |batch: &crate::ClaimBatch| -> Vec<String> {
        batch
            .claimed
            .iter()
            .map(|c| c.message.file.clone())
            .collect()
    };
    let (mine, theirs) = (files(&mine), files(&theirs));

    // A new process, as `fmes ack` is, settles them all in turn.
    let counted = Queue::new(crate::counting_fs::CountingFs::new(dir.path()));
    let listings = counted.fs.listings.clone();
    let (first, rest) = mine.split_first().unwrap();
    counted.ack("b", "w", first).unwrap();
    assert_eq!(listings.get(), 1, "the first settle lists .inflight/");
    // What that listing saw of w's claims is enough for the rest, whatever
    // the order and the operation.
    counted
        .extend("b", "w", &rest[5], Duration::from_secs(900))
        .unwrap();
    counted.release("b", "w", &rest[6]).unwrap();
    for file in rest.iter().rev() {
        if file != &rest[6] {
            counted.ack("b", "w", file).unwrap();
        }
    }
    assert_eq!(listings.get(), 1, "listings of .inflight/ for 40 settles");
    // v's claims were not taken for w's: w cannot settle them, v can.
    let wrong = counted.ack("b", "w", &theirs[0]);
    assert!(matches!(wrong, Err(QueueError::NotFound(_))), "{wrong:?}");
    for file in &theirs {
        counted.ack("b", "v", file).unwrap();
    }
    assert_eq!(q.peek("b").unwrap(), 1, "the released one waits again");
    let archived = std::fs::read_dir(dir.path().join("ARCHIVE"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension() == Some("json".as_ref()));
    assert_eq!(archived.count(), 59);
}

#[test]
fn a_claim_another_process_recovered_and_claimed_again_is_found_by_listing() {
    let (dir, first) = setup(&["a", "b"]);
    let second = queue_in(dir.path());
    first.send(SendRequest::new("a", "b", "1")).unwrap();
    // Claimed with a lease that ends at once, then recovered and claimed
    // again by the same consumer, elsewhere: the first queue's record of
    // the claim is stale.
    let claimed = first.claim("b", "w", 1, Duration::ZERO).unwrap();
    let file = claimed.claimed[0].message.file.clone();
    std::thread::sleep(Duration::from_millis(2));
    assert_eq!(second.recover().unwrap().returned, 1);
    let again = second.claim("b", "w", 1, Duration::from_secs(600)).unwrap();
    assert_eq!(again.claimed[0].message.file, file);
    assert_eq!(again.claimed[0].deliveries, 2);
    first.ack("b", "w", &file).unwrap();
    assert_eq!(first.peek("b").unwrap(), 0);
    assert!(dir.path().join("ARCHIVE").join(&file).exists());
    assert!(
        std::fs::read_dir(dir.path().join("To_B/.inflight"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[test]
fn a_send_to_a_mailbox_that_is_not_a_folder_says_what_it_is_and_writes_nothing() {
    let (dir, q) = setup(&["a"]);
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("To_Link")).unwrap();
    std::fs::write(dir.path().join("To_File"), "mine").unwrap();
    let cases = [
        ("link", "To_Link is a symbolic link, not a mailbox folder"),
        ("file", "To_File is a file, not a mailbox folder"),
    ];
    for (agent, said) in cases {
        let err = q.send(SendRequest::new("a", agent, "1")).unwrap_err();
        assert!(
            matches!(err, QueueError::InvalidLayout(ref m) if m == said),
            "{err}"
        );
    }
    let err = q.send(SendRequest::new("a", "nobody", "1")).unwrap_err();
    assert_eq!(
        err,
        QueueError::UnknownAgent {
            name: "nobody".into(),
            known: vec!["a".into()],
        }
    );
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("To_File")).unwrap(),
        "mine"
    );
}

#[test]
fn archiving_and_acknowledging_rename_once_and_dead_letters_keep_their_notes() {
    let (dir, q) = setup(&["a", "b"]);
    for i in 0..3 {
        q.send(SendRequest::new("a", "b", format!("{i}"))).unwrap();
    }
    let counted = Queue::new(crate::counting_fs::CountingFs::new(dir.path()));
    let renames = counted.fs.renames.clone();
    let waiting = counted.receive("b", None, None).unwrap().messages;
    counted.archive("b", &waiting[0].file).unwrap();
    // Into ARCHIVE/.incoming/, then linked and unlinked: no note to move.
    assert_eq!(renames.get(), 1, "renames to archive");
    let claimed = counted
        .claim("b", "w", 1, Duration::from_secs(600))
        .unwrap();
    renames.set(0);
    counted
        .ack("b", "w", &claimed.claimed[0].message.file)
        .unwrap();
    assert_eq!(renames.get(), 1, "renames to acknowledge");

    // A dead letter's note still goes with it.
    let limited = Queue::with_options(
        crate::counting_fs::CountingFs::new(dir.path()),
        crate::Options {
            max_deliveries: 1,
            ..crate::Options::default()
        },
    );
    let claimed = limited
        .claim("b", "w", 1, Duration::from_secs(600))
        .unwrap();
    let file = claimed.claimed[0].message.file.clone();
    assert!(matches!(
        limited.release("b", "w", &file).unwrap(),
        crate::Released::DeadLettered(_)
    ));
    let dead = dir.path().join("DEAD").join("To_B");
    assert!(dead.join(&file).exists());
    assert!(dead.join(format!("{file}.reason")).exists());
}

#[test]
fn the_native_backend_publishes_with_no_temporary_name() {
    use crate::FileSystem;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("To_A")).unwrap();
    // Another writer's file under the temporary name: the named way would
    // fail, an unnamed file does not need the name.
    std::fs::write(dir.path().join("To_A/m.tmp"), "theirs").unwrap();
    let fs = StdFs::new(dir.path().to_str().unwrap());
    fs.publish("To_A", "m.json", b"{}", false).unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("To_A/m.json")).unwrap(),
        b"{}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("To_A/m.tmp")).unwrap(),
        b"theirs"
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("To_A")).unwrap().count(),
        2
    );
}

#[test]
fn temporary_names_swap_the_json_suffix_for_tmp() {
    use crate::fs::temporary_name;
    assert_eq!(temporary_name("5_x_a_TASK_0a.json"), "5_x_a_TASK_0a.tmp");
    // Not a message name: the suffix is added, never a name left as it was.
    assert_eq!(temporary_name("notes"), "notes.tmp");
    assert_eq!(temporary_name("a.json.json"), "a.json.tmp");
}

/// Every `*.json` file under `dir`, at any depth, as paths relative to it.
fn all_messages(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                found.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    found.sort();
    found
}

#[test]
fn a_python_name_written_again_while_the_first_is_claimed_loses_neither() {
    let (dir, q) = setup(&["a", "b"]);
    let name = dir.path().join("To_B/5_20260101_000000_py_TASK.json");
    std::fs::write(&name, python_message(5, "2026-01-01T00:00:00Z", "1")).unwrap();
    let first = q
        .claim("b", "w1", 1, Duration::from_secs(60))
        .unwrap()
        .claimed;
    // The Python writer may use the name again once the first has left.
    std::fs::write(&name, python_message(5, "2026-01-01T00:00:00Z", "2")).unwrap();
    let second = q
        .claim("b", "w2", 1, Duration::from_secs(60))
        .unwrap()
        .claimed;
    assert_eq!((first.len(), second.len()), (1, 1));
    assert_ne!(first[0].message.file, second[0].message.file);
    // Both released: both come back, neither over the other.
    q.release("b", "w1", &first[0].message.file).unwrap();
    q.release("b", "w2", &second[0].message.file).unwrap();
    let payloads = |q: &Queue<StdFs>| -> Vec<String> {
        let mut payloads = waiting_payloads(q, "b");
        payloads.sort();
        payloads
    };
    assert_eq!(payloads(&q), ["1", "2"], "{:?}", all_messages(dir.path()));
    // Claimed again and left to expire, each keeps its own count and place.
    let batch = q.claim("b", "w1", 2, Duration::ZERO).unwrap().claimed;
    assert_eq!(
        batch.iter().map(|c| c.deliveries).collect::<Vec<_>>(),
        [2, 2]
    );
    assert_eq!(q.recover().unwrap().returned, 2);
    assert_eq!(payloads(&q), ["1", "2"], "{:?}", all_messages(dir.path()));
}

#[test]
fn a_type_ending_in_a_tilde_and_digits_is_not_a_delivery_count() {
    let (dir, q) = setup(&["a", "b"]);
    let mailbox = dir.path().join("To_B");
    // Types that look like counts, or like the mark a claim gives a name.
    let types = [
        ("T~9", "9"),
        ("T~4", "4"),
        ("T~4294967295", "max"),
        ("T~u0123456789ab", "mark"),
        ("T~u0123456789ab~9", "mark and count"),
    ];
    for (ty, payload) in types {
        let text = python_message(5, "2026-01-01T00:00:00Z", &format!("\"{payload}\""))
            .replace("\"TASK\"", &format!("\"{ty}\""));
        std::fs::write(mailbox.join(format!("5_20260101_000000_a_{ty}.json")), text).unwrap();
    }
    let batch = q
        .claim("b", "w", 5, Duration::from_secs(60))
        .unwrap()
        .claimed;
    assert_eq!(batch.len(), 5);
    assert!(batch.iter().all(|c| c.deliveries == 1), "{batch:?}");
    let files: std::collections::BTreeSet<&str> =
        batch.iter().map(|c| c.message.file.as_str()).collect();
    assert_eq!(
        files.len(),
        5,
        "each claim names its own message: {files:?}"
    );
    // Acknowledging one archives that one alone.
    q.ack("b", "w", &batch[0].message.file).unwrap();
    assert!(q.ack("b", "w", &batch[0].message.file).is_err());
    assert_eq!(all_messages(&dir.path().join("ARCHIVE")).len(), 1);
    assert_eq!(all_messages(&mailbox.join(".inflight")).len(), 0);
    assert_eq!(
        std::fs::read_dir(mailbox.join(".inflight"))
            .unwrap()
            .count(),
        4
    );
}

#[test]
fn a_name_too_long_for_a_claim_or_a_settle_blocks_nothing() {
    let (dir, q) = setup(&["a", "b"]);
    let mailbox = dir.path().join("To_B");
    // First in order (priority 1), and as long as a file name may be.
    let long = format!("1_{}.json", "n".repeat(245));
    let bad = format!("1_{}.json", "b".repeat(245));
    std::fs::write(
        mailbox.join(&long),
        python_message(1, "2026-01-01T00:00:00Z", "\"long\""),
    )
    .unwrap();
    std::fs::write(mailbox.join(&bad), "not json").unwrap();
    q.send(SendRequest::new("a", "b", "\"after\"")).unwrap();
    let batch = q.claim("b", "w", 5, Duration::from_secs(60)).unwrap();
    assert_eq!(batch.dead_lettered.len(), 1);
    assert_eq!(batch.dead_lettered[0].file, bad);
    let payloads: Vec<&str> = batch
        .claimed
        .iter()
        .map(|c| c.message.payload.as_str())
        .collect();
    assert_eq!(payloads, ["\"long\"", "\"after\""]);
    for c in &batch.claimed {
        q.ack("b", "w", &c.message.file).unwrap();
    }
    assert_eq!(all_messages(&dir.path().join("ARCHIVE")).len(), 2);
    // Archived (and cleaned up) by name, without a claim: a shorter name.
    std::fs::write(
        mailbox.join(&long),
        python_message(1, "2026-01-01T00:00:00Z", "2"),
    )
    .unwrap();
    let archived = q.archive("b", &long).unwrap();
    assert!(
        archived.len() < long.len() && archived.starts_with("1_nnn"),
        "{archived}"
    );
    assert_eq!(all_messages(&dir.path().join("ARCHIVE")).len(), 3);
}

#[test]
fn settles_where_hard_links_are_refused_rename_to_a_free_name() {
    use crate::fs::FileSystem;
    let mem = crate::fs::mem_fs::MemFs::default();
    let q = Queue::new(crate::hook_fs::HookFs::new(mem.clone()));
    // As Linux refuses a hard link to another user's file.
    q.fs.set_hook(|op, from, _| {
        (op == "link" && from.contains("/.incoming/"))
            .then(|| std::io::ErrorKind::PermissionDenied.into())
    });
    q.init(&["a".into(), "b".into()]).unwrap();
    let fs = &mem;
    let message = python_message(5, "2026-01-01T00:00:00Z", "1");
    fs.write_new("To_B/x.json", message.as_bytes(), false)
        .unwrap();
    fs.write_new("To_B/bad.json", b"[]", false).unwrap();
    assert_eq!(q.archive("b", "x.json").unwrap(), "x.json");
    // The name is taken in the archive now: a variant, nothing replaced.
    fs.write_new("To_B/x.json", message.as_bytes(), false)
        .unwrap();
    let variant = q.archive("b", "x.json").unwrap();
    assert!(
        variant.starts_with("x_") && variant.len() == "x_123456.json".len(),
        "{variant}"
    );
    let batch = q.claim("b", "w", 5, Duration::from_secs(60)).unwrap();
    assert_eq!(batch.dead_lettered.len(), 1);
    let names = |dir: &str| -> Vec<String> {
        let mut names: Vec<String> = fs.list(dir).unwrap().into_iter().map(|e| e.name).collect();
        names.sort();
        names
    };
    assert_eq!(
        names("ARCHIVE"),
        [".incoming".to_string(), "x.json".into(), variant]
    );
    assert_eq!(
        names("DEAD/To_B"),
        [".incoming", "bad.json", "bad.json.reason"]
    );
    assert!(names("ARCHIVE/.incoming").is_empty() && names("DEAD/To_B/.incoming").is_empty());
    assert_eq!(q.recover().unwrap().finished_moves, 0);
}

#[test]
fn a_mailbox_removed_while_it_is_read_is_an_unknown_agent_not_an_io_error() {
    // Each operation finds To_B, which is then removed before its listing:
    // what a follower of every mailbox sees while a mailbox is removed, and
    // takes for the mailbox gone (an I/O error would stop it).
    type Op = fn(&Queue<crate::hook_fs::HookFs<StdFs>>) -> Result<(), QueueError>;
    let ops: [(&str, Op); 5] = [
        ("receive", |q| q.receive("b", None, None).map(drop)),
        ("receive the first", |q| {
            q.receive("b", None, Some(1)).map(drop)
        }),
        ("peek", |q| q.peek("b").map(drop)),
        ("a page", |q| {
            let mut cache = crate::pages::ReadingCache::new();
            q.receive_page("b", None, 10, None, &mut cache).map(drop)
        }),
        ("claim", |q| {
            q.claim("b", "w1", 1, Duration::from_secs(60)).map(drop)
        }),
    ];
    for (what, op) in ops {
        let (dir, setup_queue) = setup(&["a", "b"]);
        setup_queue.send(SendRequest::new("a", "b", "1")).unwrap();
        let queue = Queue::new(crate::hook_fs::HookFs::new(StdFs::new(
            dir.path().to_str().unwrap(),
        )));
        let mailbox = dir.path().join("To_B");
        // Removed by another process just before it is listed.
        queue.fs.set_hook(move |op, path, _| {
            if op == "list" && path == "To_B" {
                let _ = std::fs::remove_dir_all(&mailbox);
            }
            None
        });
        match op(&queue) {
            Err(QueueError::UnknownAgent { name, known }) => {
                assert_eq!(
                    (name.as_str(), known),
                    ("b", vec!["a".to_string()]),
                    "{what}"
                );
            }
            other => panic!("{what}: {other:?}"),
        }
    }
}
