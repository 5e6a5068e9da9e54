//! `fmes doctor`: each finding from a fixture folder, with what to do about it.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use fmes::SendRequest;
use serde_json::Value;

use crate::support::*;

fn doctor(command: &mut Command, args: &[&str]) -> Output {
    command
        .arg("doctor")
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `fmes --json doctor ARGS`: the exit code and the findings.
fn findings(comm: &TempComm, args: &[&str]) -> (i32, Vec<Value>) {
    let mut command = comm.fmes();
    command.arg("--json");
    let output = doctor(&mut command, args);
    let code = output.status.code().unwrap();
    assert!(code <= 1, "{}", stderr(&output));
    let mut lines = json_lines(&stdout(&output));
    assert_eq!(lines.len(), 1, "one JSON object");
    let report = lines.remove(0);
    assert_eq!(report["healthy"], code == 0, "{report}");
    let found = report["findings"].as_array().unwrap().clone();
    (code, found)
}

/// The findings of one kind.
fn of_kind<'a>(found: &'a [Value], kind: &str) -> Vec<&'a Value> {
    found.iter().filter(|f| f["kind"] == kind).collect()
}

/// The paths of the findings of one kind.
fn paths_of_kind(found: &[Value], kind: &str) -> Vec<String> {
    of_kind(found, kind)
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect()
}

fn set_age(path: &Path, age: Duration) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(SystemTime::now() - age)
        .unwrap();
}

#[test]
fn a_healthy_folder_exits_0() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let mut q = comm.open();
    q.send(&SendRequest::new("a", "b", "1")).unwrap();
    // A live claim and a fresh temporary file (a send in progress) are fine.
    q.send(&SendRequest::new("b", "a", "2")).unwrap();
    q.claim("a", "w", 1, Duration::from_secs(600)).unwrap();
    std::fs::write(comm.join("To_B/now.tmp"), "{").unwrap();

    let text = success(&doctor(&mut comm.fmes(), &[]));
    assert!(
        text.starts_with("no problems found in") && text.contains("2 mailboxes, 1 message waiting"),
        "{text}"
    );
    let (code, found) = findings(&comm, &[]);
    assert_eq!((code, found.len()), (0, 0), "{found:?}");
}

#[test]
fn a_missing_folder_is_an_error() {
    let comm = TempComm::new();
    std::fs::remove_dir(&comm.path).unwrap();
    let output = doctor(&mut comm.fmes(), &[]);
    let err = failure(&output, 1);
    assert!(err.starts_with("error: no _COMM folder at"), "{err}");
    assert_eq!(stdout(&output), "");
}

#[test]
fn stale_temporary_files_are_reported_with_recover_as_the_fix() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let stale = comm.join("To_B/5_x_a_TASK_0000.tmp");
    std::fs::write(&stale, "{").unwrap();
    set_age(&stale, Duration::from_secs(3600));
    std::fs::write(comm.join("To_B/young.tmp"), "{").unwrap();

    let (code, found) = findings(&comm, &[]);
    assert_eq!(code, 1);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["kind"], "temporary-file");
    assert_eq!(found[0]["path"], "To_B/5_x_a_TASK_0000.tmp");
    assert!(found[0]["problem"].as_str().unwrap().contains("1h"));
    assert!(found[0]["fix"].as_str().unwrap().contains("fmes recover"));

    // The text form says the same, and the fix works.
    let output = doctor(&mut comm.fmes(), &[]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text.contains("temporary-file: To_B/5_x_a_TASK_0000.tmp:")
            && text.contains("  fix: `fmes recover`")
            && text.contains("1 problem found in"),
        "{text}"
    );
    success(&comm.run(&["recover"]));
    assert_eq!(findings(&comm, &[]), (0, vec![]));
}

#[test]
fn interrupted_moves_are_reported() {
    let comm = TempComm::with_agents(&["a"]);
    let incoming = comm.join("ARCHIVE/.incoming");
    std::fs::create_dir_all(&incoming).unwrap();
    std::fs::write(incoming.join("5_x_a_TASK.json~0123456789abcdef"), "{}").unwrap();
    std::fs::write(
        incoming.join("5_x_a_TASK.json~0123456789abcdef.reason"),
        "{}",
    )
    .unwrap();
    let (code, found) = findings(&comm, &[]);
    assert_eq!(code, 1);
    assert_eq!(found.len(), 1, "the note is part of the move: {found:?}");
    assert_eq!(found[0]["kind"], "interrupted-move");
    assert_eq!(
        found[0]["path"],
        "ARCHIVE/.incoming/5_x_a_TASK.json~0123456789abcdef"
    );
    assert!(found[0]["fix"].as_str().unwrap().contains("fmes recover"));
}

#[test]
fn malformed_messages_are_named_with_the_reason() {
    let comm = TempComm::with_agents(&["a", "b"]);
    comm.open().send(&SendRequest::new("a", "b", "1")).unwrap();
    std::fs::write(comm.join("To_B/broken.json"), "not json").unwrap();
    std::fs::write(comm.join("To_A/list.json"), "[1, 2]").unwrap();
    let (code, found) = findings(&comm, &[]);
    assert_eq!(code, 1);
    let malformed = of_kind(&found, "malformed");
    assert_eq!(malformed.len(), 2, "{found:?}");
    assert_eq!(malformed[0]["path"], "To_A/list.json");
    assert_eq!(malformed[1]["path"], "To_B/broken.json");
    assert!(
        malformed[1]["problem"]
            .as_str()
            .unwrap()
            .contains("not JSON")
    );
    assert!(
        malformed[1]["fix"]
            .as_str()
            .unwrap()
            .contains("fmes claim b")
    );
    assert_eq!(found.len(), 2, "{found:?}");
}

#[test]
fn expired_claims_are_reported_and_live_ones_are_not() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let mut q = comm.open();
    q.send(&SendRequest::new("a", "b", "1")).unwrap();
    let live = q.claim("b", "w2", 1, Duration::from_secs(600)).unwrap();
    assert_eq!(live.claimed.len(), 1);
    // A claim whose lease ended in 1970, as a killed consumer leaves it.
    std::fs::write(
        comm.join("To_B/.inflight/5_20261123_101500.123456789Z_a_TASK_1a2b3c4d0007~2~1000~w1"),
        "{}",
    )
    .unwrap();
    let (code, found) = findings(&comm, &[]);
    assert_eq!(code, 1);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["kind"], "expired-claim");
    let problem = found[0]["problem"].as_str().unwrap();
    assert!(
        problem.contains("w1's claim (delivery 2) expired at 1970-01-01T00:00:01Z"),
        "{problem}"
    );
    assert!(found[0]["fix"].as_str().unwrap().contains("fmes recover"));
}

/// Files fmes cannot name (not UTF-8) are invisible to every other command,
/// and in-flight entries that are no claim are never returned: both said.
#[cfg(unix)]
#[test]
fn names_fmes_cannot_use_and_strays_in_flight_are_reported() {
    use std::os::unix::ffi::OsStrExt;

    let comm = TempComm::with_agents(&["a", "b"]);
    let mut q = comm.open();
    q.send(&SendRequest::new("a", "b", "1")).unwrap();
    q.claim("b", "w", 1, Duration::from_secs(600)).unwrap();
    let mailbox = comm.join("To_B");
    let not_utf8 = |name: &[u8]| std::ffi::OsStr::from_bytes(name).to_os_string();
    std::fs::write(mailbox.join(not_utf8(b"\xff.json")), "{}").unwrap();
    std::fs::write(mailbox.join(not_utf8(b"\xfe.txt")), "{}").unwrap();
    for stray in ["garbage", "x~1~1~w.json", "y~1~1~bad consumer"] {
        std::fs::write(mailbox.join(".inflight").join(stray), "{}").unwrap();
    }
    std::fs::create_dir(mailbox.join(".inflight/sub")).unwrap();
    std::fs::create_dir(mailbox.join("5_folder.json")).unwrap();
    std::fs::write(
        mailbox.join(".inflight").join(not_utf8(b"\xfd~1~1~w")),
        "{}",
    )
    .unwrap();
    assert_eq!(q.peek("b").unwrap(), 0);

    let (code, found) = findings(&comm, &[]);
    assert_eq!(code, 1);
    let paths = |kind: &str| paths_of_kind(&found, kind);
    assert_eq!(paths("malformed"), ["To_B/\\xff.json"], "{found:?}");
    let malformed = &of_kind(&found, "malformed")[0];
    assert!(malformed["problem"].as_str().unwrap().contains("not UTF-8"));
    let mut strays = paths("unknown-entry");
    strays.sort();
    assert_eq!(
        strays,
        [
            "To_B/.inflight/\\xfd~1~1~w",
            "To_B/.inflight/garbage",
            "To_B/.inflight/sub",
            "To_B/.inflight/x~1~1~w.json",
            "To_B/.inflight/y~1~1~bad consumer",
            "To_B/5_folder.json",
        ],
        "{found:?}"
    );
    assert_eq!(found.len(), 7, "the live claim is fine: {found:?}");
}

/// A staging folder's file whose name is not UTF-8 was put there by hand:
/// `fmes recover` cannot name it, so doctor does not send the user to it.
#[cfg(unix)]
#[test]
fn a_staged_name_fmes_cannot_use_is_not_left_to_recover() {
    use std::os::unix::ffi::OsStrExt;

    let comm = TempComm::with_agents(&["a", "b"]);
    let incoming = comm.join("ARCHIVE/.incoming");
    std::fs::create_dir_all(&incoming).unwrap();
    std::fs::write(
        incoming.join(std::ffi::OsStr::from_bytes(b"\xfa.json")),
        "{}",
    )
    .unwrap();
    std::fs::write(incoming.join("5_x.json"), "{}").unwrap();

    let (code, found) = findings(&comm, &[]);
    assert_eq!(code, 1);
    let interrupted = of_kind(&found, "interrupted-move");
    assert_eq!(interrupted.len(), 1, "{found:?}");
    assert_eq!(interrupted[0]["path"], "ARCHIVE/.incoming/5_x.json");
    let strays = of_kind(&found, "unknown-entry");
    assert_eq!(strays.len(), 1, "{found:?}");
    assert_eq!(strays[0]["path"], "ARCHIVE/.incoming/\\xfa.json");
    assert!(strays[0]["problem"].as_str().unwrap().contains("not UTF-8"));
    assert!(!strays[0]["fix"].as_str().unwrap().contains("recover"));
    assert_eq!(found.len(), 2, "{found:?}");
}

/// A send with an id stopped before publishing is found and finished by
/// recover; a marker no send can use (an older fmes stopped while writing
/// it) is reported, with what to do.
#[test]
fn interrupted_sends_and_unusable_id_markers_are_reported() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let ids = comm.join(".fmes/ids");
    std::fs::create_dir_all(&ids).unwrap();
    std::fs::write(ids.join("empty-one"), "").unwrap();
    // What a send leaves when it stops between making its marker and
    // publishing: the marker, and its staged name (the same file).
    let file = "5_20260101_000000.000000000Z_a_TASK_0123456789ab.json";
    let message = serde_json::json!({
        "id": "stopped-one", "from": "a", "to": "b", "type": "TASK", "priority": 5,
        "timestamp": "2026-01-01T00:00:00Z", "payload": 1, "fmes_file": file,
    });
    let staged = ids.join(format!("stopped-one~{file}"));
    std::fs::write(&staged, message.to_string()).unwrap();
    std::fs::hard_link(&staged, ids.join("stopped-one")).unwrap();
    set_age(&staged, Duration::from_secs(3600));

    let (code, found) = findings(&comm, &[]);
    assert_eq!(code, 1);
    let of = |kind: &str| paths_of_kind(&found, kind);
    assert_eq!(of("malformed"), [".fmes/ids/empty-one"], "{found:?}");
    assert_eq!(
        of("interrupted-send"),
        [format!(".fmes/ids/stopped-one~{file}")],
        "{found:?}"
    );
    assert_eq!(found.len(), 2, "{found:?}");

    let report = comm.open().recover().unwrap();
    assert_eq!(report.finished_moves, 1);
    assert_eq!(comm.json_files("To_B"), [file]);
    let (_, found) = findings(&comm, &[]);
    assert_eq!(of_kind(&found, "interrupted-send").len(), 0, "{found:?}");
}

/// Among dead letters: a name fmes cannot use is not counted as a letter
/// but reported, and an old reason whose letter was deleted by hand is
/// reported; a young one (a move in progress puts it first) is not.
#[cfg(unix)]
#[test]
fn dead_letters_names_fmes_cannot_use_and_orphan_reasons_are_reported() {
    use std::os::unix::ffi::OsStrExt;

    let comm = TempComm::with_agents(&["a", "b"]);
    std::fs::write(comm.join("To_B/bad.json"), "not json").unwrap();
    let claimed = comm
        .open()
        .claim("b", "w", 1, Duration::from_secs(60))
        .unwrap();
    assert_eq!(claimed.dead_lettered.len(), 1);
    let dead = comm.join("DEAD/To_B");
    std::fs::write(dead.join(std::ffi::OsStr::from_bytes(b"\xfe.json")), "{}").unwrap();
    for note in ["gone.json.reason", "young.json.reason"] {
        std::fs::write(dead.join(note), "{}").unwrap();
    }
    set_age(&dead.join("gone.json.reason"), Duration::from_secs(3600));

    let (code, found) = findings(&comm, &[]);
    assert_eq!(code, 1);
    let letters = of_kind(&found, "dead-letters");
    assert_eq!(letters.len(), 1, "{found:?}");
    assert!(
        letters[0]["problem"]
            .as_str()
            .unwrap()
            .starts_with("1 dead letter for b")
    );
    let malformed = of_kind(&found, "malformed");
    assert_eq!(malformed.len(), 1, "{found:?}");
    assert_eq!(malformed[0]["path"], "DEAD/To_B/\\xfe.json");
    let unknown = of_kind(&found, "unknown-entry");
    assert_eq!(unknown.len(), 1, "{found:?}");
    assert_eq!(unknown[0]["path"], "DEAD/To_B/gone.json.reason");
}

#[test]
fn a_bad_file_deep_in_a_big_mailbox_is_found_unless_past_the_limit() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let native = comm.native();
    for i in 0..2_100 {
        native
            .send(SendRequest::new("a", "b", i.to_string()))
            .unwrap();
    }
    // Its name puts it last in delivery order, in the third page.
    let bad = "9_20991231_235959.000000000Z_a_TASK_00000000ffff.json";
    std::fs::write(comm.join("To_B").join(bad), "{").unwrap();
    let (code, found) = findings(&comm, &[]);
    assert_eq!(code, 1);
    let malformed = of_kind(&found, "malformed");
    assert_eq!(malformed.len(), 1, "{found:?}");
    assert_eq!(malformed[0]["path"], format!("To_B/{bad}"));
    // Over --max-waiting, only that many are read: the bad file is past them.
    let (code, found) = findings(&comm, &["--max-waiting", "1500"]);
    assert_eq!(code, 1);
    assert_eq!(of_kind(&found, "oversized").len(), 1, "{found:?}");
    assert!(of_kind(&found, "malformed").is_empty(), "{found:?}");
}

#[test]
fn mailboxes_over_the_limit_are_oversized() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let mut q = comm.open();
    for i in 0..3 {
        q.send(&SendRequest::new("a", "b", i.to_string())).unwrap();
    }
    let (code, found) = findings(&comm, &["--max-waiting", "2"]);
    assert_eq!(code, 1);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["kind"], "oversized");
    assert_eq!(found[0]["path"], "To_B");
    assert!(
        found[0]["problem"]
            .as_str()
            .unwrap()
            .starts_with("3 messages wait for b, more than 2")
    );
    assert_eq!(findings(&comm, &["--max-waiting", "3"]), (0, vec![]));
    // The default limit is 10,000.
    assert_eq!(findings(&comm, &[]), (0, vec![]));

    let err = failure(&doctor(&mut comm.fmes(), &["--max-waiting", "lots"]), 2);
    assert!(err.contains("--max-waiting"), "{err}");
}

#[test]
fn dead_letters_are_reported_with_how_to_handle_them() {
    let comm = TempComm::with_agents(&["a", "b"]);
    std::fs::write(comm.join("To_B/broken.json"), "not json").unwrap();
    // The claim moves the broken file to the dead letters.
    let batch = comm
        .open()
        .claim("b", "w", 1, Duration::from_secs(60))
        .unwrap();
    assert_eq!(batch.dead_lettered.len(), 1);
    let (code, found) = findings(&comm, &[]);
    assert_eq!(code, 1);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["kind"], "dead-letters");
    assert_eq!(found[0]["path"], "DEAD/To_B");
    assert!(
        found[0]["problem"]
            .as_str()
            .unwrap()
            .starts_with("1 dead letter for b")
    );
    assert!(
        found[0]["fix"]
            .as_str()
            .unwrap()
            .contains("fmes dead list b")
    );
}

#[test]
fn unknown_entries_at_the_top_are_reported() {
    let comm = TempComm::with_agents(&["a", "b"]);
    std::fs::write(comm.join("notes.txt"), "hi").unwrap();
    std::fs::create_dir(comm.join("To_b")).unwrap();
    std::fs::create_dir(comm.join("To_bad name")).unwrap();
    std::fs::create_dir(comm.join("scratch")).unwrap();
    let (code, found) = findings(&comm, &[]);
    assert_eq!(code, 1);
    let unknown = of_kind(&found, "unknown-entry");
    let paths: Vec<&str> = unknown
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        ["To_b", "To_bad name", "notes.txt", "scratch"],
        "{found:?}"
    );
    assert_eq!(found.len(), 4, "{found:?}");
    assert!(
        unknown[0]["fix"]
            .as_str()
            .unwrap()
            .starts_with("rename it to To_B")
    );
    assert!(
        unknown[1]["problem"]
            .as_str()
            .unwrap()
            .contains("named like a mailbox")
    );
    assert!(
        unknown[2]["fix"]
            .as_str()
            .unwrap()
            .contains("move it out of _COMM")
    );
}

#[cfg(unix)]
#[test]
fn a_linked_mailbox_is_a_layout_problem() {
    let comm = TempComm::with_agents(&["a"]);
    let elsewhere = comm.root.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, comm.join("To_C")).unwrap();
    let (code, found) = findings(&comm, &[]);
    assert_eq!(code, 1);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["kind"], "layout");
    assert_eq!(found[0]["path"], "To_C");
    assert!(
        found[0]["problem"]
            .as_str()
            .unwrap()
            .contains("symbolic link")
    );
}

/// Folders the user cannot write are reported with the command that fixes
/// them. Run as root (which may write anywhere), the check runs as `nobody`.
#[cfg(unix)]
#[test]
fn folders_without_permission_are_reported() {
    use std::os::unix::fs::{PermissionsExt, chown};

    let comm = TempComm::with_agents(&["a", "b", "c"]);
    let mut command = comm.fmes();
    let as_nobody = run_as_nobody(&comm, &mut command);
    let user = if as_nobody {
        // Everything belongs to nobody, but To_C goes back to root.
        chown(comm.join("To_C"), Some(0), Some(0)).unwrap();
        std::fs::set_permissions(comm.join("To_C"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        NOBODY
    } else {
        unsafe { libc::geteuid() }
    };
    std::fs::set_permissions(comm.join("To_B"), std::fs::Permissions::from_mode(0o500)).unwrap();

    command.arg("--json");
    let output = doctor(&mut command, &[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let report = json_lines(&stdout(&output)).remove(0);
    let found = report["findings"].as_array().unwrap();
    let b = found
        .iter()
        .find(|f| f["path"] == "To_B")
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(b["kind"], "permissions");
    assert_eq!(
        b["problem"],
        format!("you (uid {user}) cannot write this folder (mode 500)")
    );
    assert_eq!(
        b["fix"],
        format!("chmod u+rwx {}", comm.join("To_B").display())
    );
    if as_nobody {
        let c = found.iter().find(|f| f["path"] == "To_C").unwrap();
        assert_eq!(
            c["problem"],
            format!(
                "you (uid {NOBODY}) cannot read, write or enter this folder; it belongs to uid 0 (mode 700)"
            )
        );
        assert!(
            c["fix"]
                .as_str()
                .unwrap()
                .contains(&format!("chown -R {NOBODY}"))
        );
        assert_eq!(found.len(), 2, "{found:?}");
    } else {
        assert_eq!(found.len(), 1, "{found:?}");
    }
    // Put it back, so the folder can be removed.
    std::fs::set_permissions(comm.join("To_B"), std::fs::Permissions::from_mode(0o700)).unwrap();
}
