//! Claims, acknowledgements, releases, leases, dead letters, idempotent sends
//! and stats, through the library and the CLI.

use std::time::Duration;

use fmes::{Error, Options, QueueError, Released, SendRequest};

use crate::support::*;

const LONG: Duration = Duration::from_secs(600);

fn send_n(comm: &mut fmes::Comm, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            comm.send(&SendRequest::new("a", "b", i.to_string()))
                .unwrap()
                .id
        })
        .collect()
}

#[test]
fn claims_take_messages_in_order_out_of_every_other_readers_view() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let mut q = comm.open();
    let ids = send_n(&mut q, 3);
    let batch = q.claim("b", "w1", 2, LONG).unwrap();
    let claimed: Vec<&str> = batch
        .claimed
        .iter()
        .map(|c| c.message.id.as_str())
        .collect();
    assert_eq!(claimed, [ids[0].as_str(), ids[1].as_str()]);
    assert!(batch.claimed.iter().all(|c| c.deliveries == 1));
    // Invisible to receive, peek and a Python-style *.json listing.
    assert_eq!(q.peek("b").unwrap(), 1);
    assert_eq!(comm.json_files("To_B").len(), 1);
    let waiting = q.receive("b", None, None).unwrap().messages;
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].id, ids[2]);
    // Another consumer gets only what is left.
    let other = q.claim("b", "w2", 10, LONG).unwrap();
    assert_eq!(other.claimed.len(), 1);
    assert_eq!(other.claimed[0].message.id, ids[2]);
    assert!(q.claim("b", "w3", 10, LONG).unwrap().claimed.is_empty());
}

#[test]
fn ack_archives_and_only_the_holder_can_ack() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let mut q = comm.open();
    send_n(&mut q, 1);
    let claimed = q.claim("b", "w1", 1, LONG).unwrap().claimed.remove(0);
    let file = claimed.message.file.clone();
    let err = q.ack("b", "w2", &file).unwrap_err();
    assert!(
        matches!(err, Error::Queue(QueueError::NotFound(ref m)) if m.contains("w2 holds no claim")),
        "{err}"
    );
    let archived = q.ack("b", "w1", &file).unwrap();
    assert_eq!(comm.json_files("ARCHIVE"), [archived]);
    assert!(matches!(
        q.ack("b", "w1", &file).unwrap_err(),
        Error::Queue(QueueError::NotFound(_))
    ));
    let stats = q.stats().unwrap();
    let b = stats.iter().find(|s| s.agent == "b").unwrap();
    assert_eq!((b.ready, b.in_flight, b.archived, b.dead), (0, 0, 1, 0));
}

#[test]
fn release_returns_to_the_same_place_and_counts_deliveries() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let mut q = comm.open();
    let ids = send_n(&mut q, 3);
    let first = q.claim("b", "w1", 1, LONG).unwrap().claimed.remove(0);
    assert_eq!(first.message.id, ids[0]);
    let Released::Returned(name) = q.release("b", "w1", &first.message.file).unwrap() else {
        panic!("returned expected");
    };
    assert!(name.ends_with("~1.json"), "{name}");
    // Back first in line, and a reader sorting names sees that too.
    let order: Vec<String> = q
        .receive("b", None, None)
        .unwrap()
        .messages
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(order, ids);
    assert_eq!(comm.json_files("To_B")[0], name);
    let again = q.claim("b", "w2", 1, LONG).unwrap().claimed.remove(0);
    assert_eq!(
        (again.message.id.as_str(), again.deliveries),
        (ids[0].as_str(), 2)
    );
    assert_eq!(again.message.file, first.message.file);
}

#[test]
fn the_delivery_limit_sends_messages_to_the_dead_letters() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let mut q = comm.open();
    q.set_options(Options {
        max_deliveries: 2,
        ..Options::default()
    })
    .unwrap();
    let ids = send_n(&mut q, 2);
    // Released twice: the second release is past the limit.
    let c = q.claim("b", "w", 1, LONG).unwrap().claimed.remove(0);
    assert!(matches!(
        q.release("b", "w", &c.message.file).unwrap(),
        Released::Returned(_)
    ));
    let c = q.claim("b", "w", 1, LONG).unwrap().claimed.remove(0);
    assert_eq!(c.deliveries, 2);
    assert!(matches!(
        q.release("b", "w", &c.message.file).unwrap(),
        Released::DeadLettered(_)
    ));
    // Claimed with a lease that runs out at once, twice: recovered into the dead letters.
    for _ in 0..2 {
        let batch = q.claim("b", "w", 1, Duration::ZERO).unwrap();
        assert_eq!(batch.claimed[0].message.id, ids[1]);
    }
    let report = q.recover().unwrap();
    assert_eq!((report.returned, report.dead_lettered), (0, 1));
    let dead = q.dead_letters(Some("b")).unwrap();
    assert_eq!(dead.len(), 2);
    assert!(
        dead.iter()
            .any(|d| d.reason.starts_with("released after 2 deliveries"))
    );
    assert!(
        dead.iter()
            .any(|d| d.reason.starts_with("not acknowledged after 2 deliveries"))
    );
    assert!(dead.iter().all(|d| d.deliveries == 2 && d.dead_at_ms > 0));
    assert_eq!(q.peek("b").unwrap(), 0);

    // Retry puts one back with a fresh count; purge deletes the other.
    let returned = q.retry_dead_letter("b", &dead[0].file).unwrap();
    assert_eq!(comm.json_files("To_B"), [returned]);
    let purged = q.purge_dead_letters(Some("b"), None).unwrap();
    assert_eq!(purged.len(), 1);
    assert!(q.dead_letters(None).unwrap().is_empty());
    let err = q.retry_dead_letter("b", &dead[1].file).unwrap_err();
    assert!(
        matches!(err, Error::Queue(QueueError::NotFound(_))),
        "{err}"
    );
    let c = q.claim("b", "w", 1, LONG).unwrap().claimed.remove(0);
    assert_eq!(c.deliveries, 1);
}

#[test]
fn an_expired_lease_returns_the_message_and_extend_keeps_it() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let mut q = comm.open();
    let ids = send_n(&mut q, 2);
    let lapsed = q
        .claim("b", "w1", 1, Duration::ZERO)
        .unwrap()
        .claimed
        .remove(0);
    let kept = q
        .claim("b", "w1", 1, Duration::ZERO)
        .unwrap()
        .claimed
        .remove(0);
    // The second claim recovered the first message (its lease had run out)
    // and handed it out again, as delivery 2.
    assert_eq!(kept.message.id, ids[0]);
    assert_eq!(kept.deliveries, 2);
    assert_eq!(lapsed.message.id, ids[0]);
    let expires = q.extend("b", "w1", &kept.message.file, LONG).unwrap();
    assert!(expires > kept.lease_expires_ms);
    // Extended: the next claim does not take it back.
    let next = q.claim("b", "w2", 5, LONG).unwrap();
    let ids_next: Vec<&str> = next.claimed.iter().map(|c| c.message.id.as_str()).collect();
    assert_eq!(ids_next, [ids[1].as_str()]);
    q.ack("b", "w1", &kept.message.file).unwrap();
    let err = q.extend("b", "w3", &kept.message.file, LONG).unwrap_err();
    assert!(matches!(err, Error::Queue(QueueError::NotFound(_))));
}

#[test]
fn every_malformed_kind_is_dead_lettered_with_its_reason_and_the_rest_delivered() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let mut q = comm.open();
    let good = q.send(&SendRequest::new("a", "b", "1")).unwrap();
    let mailbox = comm.join("To_B");
    let cases: [(&str, &[u8], &str); 6] = [
        ("not_json.json", b"{oops", "not JSON"),
        ("array.json", b"[1]", "not a JSON object but an array"),
        ("bad_utf8.json", b"{\"id\": \"\xff\"}", "not UTF-8"),
        ("missing.json", br#"{"id": "x"}"#, "field \"from\" is missing"),
        ("empty.json", b"", "not JSON"),
        (
            "bad_time.json",
            br#"{"id":"x","from":"a","to":"b","type":"T","priority":5,"timestamp":"now","payload":1}"#,
            "field \"timestamp\"",
        ),
    ];
    for (file, bytes, _) in &cases {
        std::fs::write(mailbox.join(file), bytes).unwrap();
    }
    // Over the size limit (64 MiB), without writing 64 MiB.
    std::fs::File::create(mailbox.join("huge.json"))
        .unwrap()
        .set_len(64 * 1024 * 1024 + 1)
        .unwrap();
    std::os::unix::fs::symlink("/etc/passwd", mailbox.join("link.json")).unwrap();

    let batch = q.claim("b", "w", 10, LONG).unwrap();
    assert_eq!(batch.claimed.len(), 1);
    assert_eq!(batch.claimed[0].message.id, good.id);
    assert_eq!(batch.dead_lettered.len(), 8);
    let dead = q.dead_letters(Some("b")).unwrap();
    assert_eq!(dead.len(), 8);
    for (file, _, reason) in &cases {
        let letter = dead.iter().find(|d| d.file == *file).unwrap();
        assert!(letter.reason.contains(reason), "{file}: {}", letter.reason);
    }
    let reason_of = |file: &str| dead.iter().find(|d| d.file == file).unwrap().reason.clone();
    assert!(reason_of("huge.json").contains("larger than"));
    assert!(reason_of("link.json").contains("symbolic link"));
    // The reason is kept beside each, and the link was moved, not followed.
    assert!(comm.join("DEAD/To_B/array.json.reason").is_file());
    assert!(comm.join("DEAD/To_B/link.json").is_symlink());
    assert_eq!(q.peek("b").unwrap(), 0);
}

#[test]
fn an_unreadable_inbox_is_an_error_not_an_empty_answer() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let mut q = comm.open();
    std::fs::remove_dir(comm.join("To_B")).unwrap();
    std::fs::write(comm.join("To_B"), "a file where the mailbox was").unwrap();
    let err = q.claim("b", "w", 1, LONG).unwrap_err();
    assert!(
        matches!(err, Error::Queue(QueueError::InvalidLayout(_))),
        "{err}"
    );
    let err = q.claim("b", "bad consumer", 1, LONG).unwrap_err();
    assert!(
        matches!(err, Error::Queue(QueueError::InvalidConsumer(_))),
        "{err}"
    );
}

/// A marker that never becomes a message (not written by fmes) is waited
/// for a while (the component sleeps, through WASI's clock, between tries)
/// and then reported; nothing is sent.
#[test]
fn an_id_marker_that_is_not_a_message_is_reported_after_waiting() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let id = "6f1c8a52-0d0b-4b5e-9a43-1b2c3d4e5f61";
    std::fs::create_dir_all(comm.join(".fmes/ids")).unwrap();
    std::fs::write(comm.join(&format!(".fmes/ids/{id}")), "not json").unwrap();
    let mut q = comm.open();
    let err = q
        .send(&SendRequest::new("a", "b", "1").with_id(id))
        .unwrap_err();
    assert!(
        matches!(err, Error::Queue(QueueError::InvalidLayout(ref m))
            if m.starts_with(&format!(".fmes/ids/{id} is not a message sent with that id"))
                && m.ends_with("remove it, then send again")),
        "{err}"
    );
    assert_eq!(q.peek("b").unwrap(), 0);
    // The instance is still usable.
    q.send(&SendRequest::new("a", "b", "2")).unwrap();
    assert_eq!(q.peek("b").unwrap(), 1);
}

#[test]
fn a_caller_given_id_is_written_once() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let mut q = comm.open();
    let id = "6f1c8a52-0d0b-4b5e-9a43-1b2c3d4e5f60";
    let request = SendRequest::new("a", "b", r#"{"once": true}"#).with_id(id);
    let first = q.send(&request).unwrap();
    assert_eq!(first.id, id);
    let again = q.send(&request).unwrap();
    assert_eq!(
        (again.id.as_str(), again.file.as_str()),
        (id, first.file.as_str())
    );
    assert_eq!(q.peek("b").unwrap(), 1);
    // Still once after it was claimed, and after it was acknowledged.
    let claimed = q.claim("b", "w", 1, LONG).unwrap().claimed.remove(0);
    assert_eq!(q.send(&request).unwrap().id, id);
    assert_eq!(q.peek("b").unwrap(), 0);
    q.ack("b", "w", &claimed.message.file).unwrap();
    assert_eq!(q.send(&request).unwrap().file, first.file);
    assert_eq!(q.peek("b").unwrap(), 0);
    assert_eq!(comm.json_files("ARCHIVE").len(), 1);

    let err = q
        .send(&SendRequest::new("a", "b", "1").with_id("../escape"))
        .unwrap_err();
    assert!(
        matches!(err, Error::Queue(QueueError::InvalidMessageId(_))),
        "{err}"
    );
}

#[test]
fn a_sender_stopped_after_its_id_marker_is_completed_by_its_retry() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let mut q = comm.open();
    let request = SendRequest::new("a", "b", "1").with_id("retry-me");
    let first = q.send(&request).unwrap();
    // What a sender killed between writing the marker and publishing leaves:
    // the marker, and no message.
    std::fs::remove_file(comm.join("To_B").join(&first.file)).unwrap();
    assert!(comm.join(".fmes/ids/retry-me").is_file());
    let retried = q.send(&request).unwrap();
    assert_eq!(retried.file, first.file);
    assert_eq!(comm.json_files("To_B"), std::slice::from_ref(&first.file));
    assert_eq!(q.send(&request).unwrap().file, first.file);
    assert_eq!(q.peek("b").unwrap(), 1);
}

#[test]
fn a_retried_id_is_not_sent_again_while_its_message_is_being_archived() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let mut q = comm.open();
    let request = SendRequest::new("a", "b", "1").with_id("order-1");
    let first = q.send(&request).unwrap();
    q.claim("b", "w", 1, LONG).unwrap();
    // An ack killed right after its commit point: the message is in
    // ARCHIVE/.incoming/, in no place a reader looks.
    let claimed = std::fs::read_dir(comm.join("To_B/.inflight"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    std::fs::create_dir_all(comm.join("ARCHIVE/.incoming")).unwrap();
    std::fs::rename(
        claimed.path(),
        comm.join(&format!(
            "ARCHIVE/.incoming/{}~0123456789abcdef",
            first.file
        )),
    )
    .unwrap();
    assert_eq!(q.send(&request).unwrap().id, "order-1");
    assert_eq!(q.peek("b").unwrap(), 0);
    assert_eq!(q.recover().unwrap().finished_moves, 1);
    assert_eq!(
        comm.json_files("ARCHIVE"),
        std::slice::from_ref(&first.file)
    );
    assert_eq!(q.peek("b").unwrap(), 0);
}

#[test]
fn the_cli_claims_acks_releases_and_manages_dead_letters() {
    let comm = TempComm::with_agents(&["a", "b"]);
    for i in 0..2 {
        success(&comm.run(&["send", "--from", "a", "--to", "b", &i.to_string()]));
    }
    std::fs::write(comm.join("To_B/junk.json"), "nope").unwrap();
    let output = comm.run(&["--json", "claim", "b", "--consumer", "w1", "--lease", "10m"]);
    let claimed = json_lines(&success(&output));
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0]["deliveries"], 1);
    assert!(stderr(&output).contains("moved To_B/junk.json to the dead letters: not JSON"));
    let file = claimed[0]["file"].as_str().unwrap().to_string();

    let out = success(&comm.run(&["ack", "b", "--consumer", "w1", &file]));
    assert!(
        out.starts_with(&format!("acknowledged {file}; archived as ARCHIVE/")),
        "{out}"
    );
    let err = failure(&comm.run(&["ack", "b", "--consumer", "w1", &file]), 1);
    assert!(
        err.contains("cannot acknowledge") && err.contains("holds no claim"),
        "{err}"
    );

    let second = json_lines(&success(&comm.run(&[
        "--json",
        "claim",
        "b",
        "--consumer",
        "w2",
    ])));
    let file2 = second[0]["file"].as_str().unwrap().to_string();
    let out = success(&comm.run(&["extend", "b", "--consumer", "w2", "--lease", "1h", &file2]));
    assert!(
        out.starts_with(&format!("lease on {file2} extended to ")),
        "{out}"
    );
    let out = success(&comm.run(&["release", "b", "--consumer", "w2", &file2]));
    assert!(
        out.contains("back in the mailbox as") && out.contains("~1.json"),
        "{out}"
    );
    assert_eq!(success(&comm.run(&["--json", "peek", "b"])), "1\n");

    let dead = json_lines(&success(&comm.run(&["--json", "dead", "list"])));
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["file"], "junk.json");
    let stats = json_lines(&success(&comm.run(&["--json", "stats"])));
    let b = stats.iter().find(|s| s["agent"] == "b").unwrap();
    assert_eq!(
        (
            b["ready"].as_u64(),
            b["dead"].as_u64(),
            b["archived"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );
    let table = success(&comm.run(&["stats"]));
    assert!(
        table.starts_with("agent") && table.contains("in flight"),
        "{table}"
    );

    let out = success(&comm.run(&["dead", "retry", "b", "junk.json"]));
    assert_eq!(out, "retried junk.json; back in the mailbox as junk.json\n");
    // It is still junk: the next claim dead-letters it again.
    success(&comm.run(&["claim", "b", "--consumer", "w3", "--limit", "5"]));
    let out = success(&comm.run(&["dead", "purge", "b", "--all"]));
    assert!(out.starts_with("purged junk.json (not JSON"), "{out}");
    assert_eq!(success(&comm.run(&["dead", "list"])), "no dead letters\n");
    let err = failure(&comm.run(&["dead", "purge", "b", "junk.json"]), 1);
    assert!(err.contains("junk.json is not a dead letter"), "{err}");
    failure(&comm.run(&["dead", "purge", "b"]), 2);

    let out = success(&comm.run(&["--json", "recover"]));
    assert_eq!(json_lines(&out)[0]["returned"], 0);
    failure(
        &comm.run(&["claim", "b", "--consumer", "w", "--lease", "soon"]),
        2,
    );
    failure(&comm.run(&["--max-deliveries", "0", "recover"]), 2);
}

/// Puts `count` dead letters for an agent straight into its dead-letter
/// folder, each with its note; returns their names, sorted.
fn plant_dead_letters(comm: &TempComm, mailbox: &str, count: usize) -> Vec<String> {
    let dir = comm.join(&format!("DEAD/{mailbox}"));
    std::fs::create_dir_all(&dir).unwrap();
    (0..count)
        .map(|i| {
            let name = format!("5_20261124_101500.{i:09}Z_a_TASK_{i:012x}.json");
            std::fs::write(dir.join(&name), "{}").unwrap();
            let note = format!(r#"{{"reason": "reason {i}", "deliveries": 5, "dead_at_ms": {i}}}"#);
            std::fs::write(dir.join(format!("{name}.reason")), note).unwrap();
            name
        })
        .collect()
}

#[test]
fn thousands_of_dead_letters_are_listed_and_purged_a_page_at_a_time() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let a_letters = plant_dead_letters(&comm, "To_A", 3);
    let b_letters = plant_dead_letters(&comm, "To_B", 2_345);

    // The CLI reads them in pages of 1,000, by agent then name.
    let listed = json_lines(&success(&comm.run(&["--json", "dead", "list"])));
    let names: Vec<(&str, &str)> = listed
        .iter()
        .map(|l| (l["agent"].as_str().unwrap(), l["file"].as_str().unwrap()))
        .collect();
    let expected: Vec<(&str, &str)> = a_letters
        .iter()
        .map(|f| ("a", f.as_str()))
        .chain(b_letters.iter().map(|f| ("b", f.as_str())))
        .collect();
    assert_eq!(names, expected);
    assert_eq!(listed[3 + 1_500]["reason"], "reason 1500");
    assert_eq!(listed[3 + 1_500]["dead_at_ms"], 1_500);

    // The library: a page, and every letter one at a time.
    let mut library = comm.open();
    let page = library.dead_letter_page("b", 1_000, None).unwrap();
    assert_eq!(page.letters.len(), 1_000);
    assert_eq!(page.next.as_deref(), Some(b_letters[999].as_str()));
    let last = library
        .dead_letter_page("b", 1_000, Some(&b_letters[2_000]))
        .unwrap();
    assert_eq!(last.letters.len(), 344);
    assert_eq!(last.next, None);
    let mut count = 0;
    library
        .for_each_dead_letter::<fmes::Error>(Some("b"), |_| {
            count += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(count, 2_345);

    // Named files: one that is not a dead letter is reported, the others
    // are purged all the same.
    let output = comm.run(&[
        "dead",
        "purge",
        "b",
        &b_letters[0],
        "missing.json",
        &b_letters[1],
    ]);
    let err = failure(&output, 1);
    assert!(
        err.contains("cannot purge missing.json")
            && err.contains("missing.json is not a dead letter"),
        "{err}"
    );
    assert_eq!(
        stdout(&output),
        format!(
            "purged {} (reason 0)\npurged {} (reason 1)\n",
            b_letters[0], b_letters[1]
        )
    );

    let purged = json_lines(&success(
        &comm.run(&["--json", "dead", "purge", "b", "--all"]),
    ));
    let purged: Vec<&str> = purged.iter().map(|l| l["file"].as_str().unwrap()).collect();
    assert_eq!(purged, b_letters[2..]);
    assert!(
        std::fs::read_dir(comm.join("DEAD/To_B"))
            .unwrap()
            .all(|e| e.unwrap().file_name() == ".incoming"),
        "letters or notes are left"
    );
    assert_eq!(
        success(&comm.run(&["dead", "purge", "b", "--all"])),
        "no dead letters to purge\n"
    );
    assert_eq!(
        success(&comm.run(&["--json", "dead", "list"]))
            .lines()
            .count(),
        3
    );
}
