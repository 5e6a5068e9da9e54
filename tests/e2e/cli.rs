//! The `fmes` binary: output, exit codes and errors.

use std::io::{Read, Write};
use std::process::Stdio;

use crate::support::*;

#[test]
fn help_lists_every_command_with_examples() {
    let help = success(&fmes_command().arg("--help").output().unwrap());
    for command in [
        "init",
        "agents",
        "send",
        "receive",
        "archive",
        "peek",
        "broadcast",
        "cleanup",
        "watch",
        "demo",
    ] {
        assert!(help.contains(command), "{command} missing from:\n{help}");
    }
    assert!(
        help.contains("Examples:") && help.contains("Exit status"),
        "{help}"
    );
    let send_help = success(&fmes_command().args(["send", "--help"]).output().unwrap());
    assert!(send_help.contains("--priority") && send_help.contains("Examples:"));
    assert!(success(&fmes_command().arg("--version").output().unwrap()).starts_with("fmes "));
}

#[test]
fn init_send_receive_peek_archive_round_trip() {
    let comm = TempComm::new();
    std::fs::remove_dir(&comm.path).unwrap();
    let out = success(&comm.run(&["init", "planner", "coder"]));
    assert!(
        out.contains("created mailboxes") && out.contains("planner, coder"),
        "{out}"
    );
    assert_eq!(success(&comm.run(&["agents"])), "coder\nplanner\n");

    let sent = success(&comm.run(&[
        "--json",
        "send",
        "--from",
        "planner",
        "--to",
        "coder",
        "--type",
        "REQUEST",
        "--priority",
        "2",
        r#"{"task": "parse"}"#,
    ]));
    let sent = json_lines(&sent).remove(0);
    assert_eq!(sent["type"], "REQUEST");
    assert_eq!(sent["priority"], 2);
    assert_eq!(sent["payload"]["task"], "parse");
    let file = sent["file"].as_str().unwrap().to_string();
    assert!(comm.join("To_Coder").join(&file).is_file());

    assert_eq!(success(&comm.run(&["--json", "peek", "coder"])), "1\n");
    assert_eq!(
        success(&comm.run(&["peek", "coder"])),
        "1 message waiting for coder\n"
    );

    let human = success(&comm.run(&["receive", "coder"]));
    assert!(
        human.contains("[2] REQUEST from planner to coder"),
        "{human}"
    );
    assert!(
        human.contains(&file) && human.contains("\"task\": \"parse\""),
        "{human}"
    );
    let lines = json_lines(&success(&comm.run(&["--json", "receive", "coder"])));
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0], sent);

    let out = success(&comm.run(&["archive", "coder", &file]));
    assert_eq!(out, format!("archived {file} as ARCHIVE/{file}\n"));
    assert_eq!(success(&comm.run(&["--json", "peek", "coder"])), "0\n");
    assert_eq!(
        success(&comm.run(&["receive", "coder"])),
        "no messages for coder\n"
    );
}

#[test]
fn send_reads_the_payload_from_stdin() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let mut child = comm
        .fmes()
        .args(["--json", "send", "--from", "a", "--to", "b", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all("{\"text\": \"from stdin, é\"}\n".as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let sent = json_lines(&success(&output)).remove(0);
    assert_eq!(sent["payload"]["text"], "from stdin, é");
}

#[test]
fn receive_limit_type_and_order() {
    let comm = TempComm::with_agents(&["a", "b"]);
    for (priority, kind) in [("9", "TASK"), ("1", "REPORT"), ("5", "TASK")] {
        success(&comm.run(&[
            "send",
            "--from",
            "a",
            "--to",
            "b",
            "--priority",
            priority,
            "--type",
            kind,
            "1",
        ]));
    }
    let all = json_lines(&success(&comm.run(&["--json", "receive", "b"])));
    let priorities: Vec<i64> = all
        .iter()
        .map(|m| m["priority"].as_i64().unwrap())
        .collect();
    assert_eq!(priorities, [1, 5, 9]);
    let first = json_lines(&success(
        &comm.run(&["--json", "receive", "b", "--limit", "1"]),
    ));
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["priority"], 1);
    let tasks = json_lines(&success(
        &comm.run(&["--json", "receive", "b", "--type", "TASK"]),
    ));
    assert_eq!(tasks.len(), 2);
}

#[test]
fn receive_prints_a_mailbox_of_several_pages_in_order_and_each_bad_file_once() {
    let comm = TempComm::with_agents(&["a", "b"]);
    // 2,500 messages are three of the CLI's pages.
    let native = comm.native();
    for i in 0..2_500u32 {
        let mut request = fmes::SendRequest::new("a", "b", format!("{{\"seq\": {i}}}"));
        request.priority = Some([5, 3, 8][i as usize % 3]);
        request.message_type = Some(if i % 3 == 0 { "REPORT" } else { "TASK" }.into());
        native.send(request).unwrap();
    }
    let mailbox = comm.join("To_B");
    std::fs::write(
        mailbox.join("3_20000101_000000_py_TASK.json"),
        r#"{"id": "x", "from": "py", "to": "b", "type": "TASK", "priority": 3,
            "timestamp": "2000-01-01T00:00:00Z", "payload": {}}"#,
    )
    .unwrap();
    std::fs::write(mailbox.join("junk.json"), "[]").unwrap();
    std::fs::write(
        mailbox.join("8_20991231_235959.000000000Z_a_TASK_00000000ffff.json"),
        "{",
    )
    .unwrap();
    let whole = comm.open().receive("b", None, None).unwrap();
    assert_eq!(whole.messages.len(), 2_501);
    assert_eq!(whole.malformed.len(), 2);

    let output = comm.run(&["--json", "receive", "b"]);
    let printed = json_lines(&success(&output));
    let files: Vec<&str> = printed
        .iter()
        .map(|m| m["file"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = whole.messages.iter().map(|m| m.file.as_str()).collect();
    assert_eq!(files, expected);
    let err = stderr(&output);
    assert_eq!(err.matches("warning: skipped").count(), 2, "{err}");
    for bad in &whole.malformed {
        assert!(err.contains(&format!("To_B/{}: ", bad.file)), "{err}");
    }

    // A limit and a type across pages: the first of that type, in order.
    let reports = json_lines(&success(&comm.run(&[
        "--json", "receive", "b", "--type", "REPORT", "--limit", "700",
    ])));
    let expected: Vec<&str> = whole
        .messages
        .iter()
        .filter(|m| m.message_type == "REPORT")
        .take(700)
        .map(|m| m.file.as_str())
        .collect();
    let files: Vec<&str> = reports
        .iter()
        .map(|m| m["file"].as_str().unwrap())
        .collect();
    assert_eq!(files, expected);
    let human = success(&comm.run(&["receive", "b", "--limit", "1500"]));
    assert_eq!(human.matches("\n    file: ").count(), 1_500);
    assert!(human.starts_with("[3] TASK from py to b"), "{human:.200}");
}

#[test]
fn receive_names_malformed_files_on_stderr_and_prints_the_rest() {
    let comm = TempComm::with_agents(&["a", "b"]);
    success(&comm.run(&["send", "--from", "a", "--to", "b", "1"]));
    std::fs::write(comm.join("To_B").join("junk.json"), "[]").unwrap();
    let output = comm.run(&["--json", "receive", "b"]);
    assert_eq!(json_lines(&success(&output)).len(), 1);
    let err = stderr(&output);
    assert!(
        err.contains("warning: skipped To_B/junk.json: not a JSON object but an array"),
        "{err}"
    );
}

#[test]
fn bad_usage_exits_2() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let cases: &[&[&str]] = &[
        &["send", "--from", "a", "1"],
        &["send", "--from", "a", "--to", "b", "--priority", "10", "1"],
        &["send", "--from", "a", "--to", "b", "--priority", "0", "1"],
        &["cleanup", "--max-age", "soon"],
        &["receive", "b", "--limit", "-1"],
        &["receive", "b", "--limit", "0"],
        &["claim", "b", "--consumer", "w", "--limit", "0"],
        &["claim", "b", "--consumer", "a/b"],
        &["ack", "b", "--consumer", "a b", "x.json"],
        &["release", "b", "--consumer", "", "x.json"],
        &["extend", "b", "--consumer", "../w", "x.json"],
        &["archive", "b"],
        &["frobnicate"],
    ];
    for args in cases {
        let err = failure(&comm.run(args), 2);
        assert!(err.contains("error:"), "{args:?}: {err}");
    }
    let err = failure(&comm.run(&["cleanup", "--max-age", "soon"]), 2);
    assert!(err.contains("\"soon\" is not a duration"), "{err}");
    // A limit of 0 would answer "no messages" over a full mailbox.
    success(&comm.run(&["send", "--from", "a", "--to", "b", "1"]));
    let err = failure(&comm.run(&["receive", "b", "--limit", "0"]), 2);
    assert!(err.contains("--limit"), "{err}");
}

#[test]
fn operation_errors_exit_1_and_name_the_bad_value() {
    let comm = TempComm::with_agents(&["claude", "cursor"]);
    let cases: &[(&[&str], &str)] = &[
        (
            &["send", "--from", "a", "--to", "bob", "{}"],
            "error: unknown agent \"bob\": it has no mailbox (known agents: claude, cursor)",
        ),
        (
            &["send", "--from", "../x", "--to", "claude", "{}"],
            "error: invalid agent name \"../x\"",
        ),
        (
            &[
                "send", "--from", "a", "--to", "claude", "--type", "a b", "{}",
            ],
            "error: invalid message type \"a b\"",
        ),
        (
            &["send", "--from", "a", "--to", "claude", "{nope"],
            "error: invalid payload: not valid JSON",
        ),
        (
            &["send", "--from", "a", "--to", "claude", r#"["\ud800"]"#],
            "must be followed by the other half of its surrogate pair)",
        ),
        (
            &[
                "send",
                "--from",
                "a",
                "--to",
                "claude",
                "--max-payload",
                "2",
                "[1,2]",
            ],
            "error: payload too large: 5 bytes, the limit is 2 bytes",
        ),
        (&["receive", "nobody"], "error: unknown agent \"nobody\""),
        (&["peek", "a/b"], "error: invalid agent name \"a/b\""),
        (
            &["archive", "claude", "../../x.json"],
            "invalid message file name \"../../x.json\"",
        ),
        (
            &["archive", "claude", "gone.json"],
            "not found: To_Claude/gone.json",
        ),
        (
            &["init", "ok", "not ok"],
            "error: invalid agent name \"not ok\"",
        ),
        (
            &["broadcast", "--from", "claude", "{"],
            "error: invalid payload",
        ),
    ];
    for (args, expected) in cases {
        let err = failure(&comm.run(args), 1);
        assert!(
            err.contains(expected),
            "{args:?}: expected {expected:?} in:\n{err}"
        );
    }
    assert_eq!(comm.json_files("To_Claude").len(), 0);
    assert!(!comm.join("To_Ok").exists());
}

/// A send whose file cannot be written names the file and the reason, and
/// leaves nothing in the mailbox. Run as root (which may write anywhere),
/// the send runs as `nobody`.
#[cfg(unix)]
#[test]
fn a_send_that_cannot_write_says_which_file_and_why() {
    use std::os::unix::fs::{PermissionsExt, chown};

    let comm = TempComm::with_agents(&["a", "b"]);
    let mut command = comm.fmes();
    if run_as_nobody(&comm, &mut command) {
        chown(comm.join("To_B"), Some(0), Some(0)).unwrap();
    }
    std::fs::set_permissions(comm.join("To_B"), std::fs::Permissions::from_mode(0o555)).unwrap();
    let output = command
        .args(["send", "--from", "a", "--to", "b", "{}"])
        .output()
        .unwrap();
    let err = failure(&output, 1);
    assert!(
        err.starts_with("error: I/O error: write _COMM/To_B/5_")
            && err.trim_end().ends_with(".tmp: Permission denied"),
        "{err}"
    );
    assert!(
        std::fs::read_dir(comm.join("To_B"))
            .unwrap()
            .next()
            .is_none()
    );
}

/// A `_COMM` shared by several users: messages another user wrote, which
/// this one may read but not write, are archived, claimed, acknowledged and
/// dead-lettered, though Linux refuses this user a hard link to them
/// (`fs.protected_hardlinks`, on by default). Run as root, the commands run
/// as `nobody` on files root owns.
#[cfg(unix)]
#[test]
fn another_users_messages_are_archived_acknowledged_and_dead_lettered() {
    use std::os::unix::fs::{PermissionsExt, chown};
    use std::os::unix::process::CommandExt;

    let comm = TempComm::with_agents(&["a", "b"]);
    let files: Vec<String> = (0..3)
        .map(|i| {
            let sent =
                success(&comm.run(&["--json", "send", "--from", "a", "--to", "b", &i.to_string()]));
            json_lines(&sent)[0]["file"].as_str().unwrap().to_string()
        })
        .collect();
    std::fs::write(comm.join("To_B/0_bad.json"), "not json").unwrap();
    let mut first = comm.fmes();
    let as_nobody = run_as_nobody(&comm, &mut first);
    let other_user = |args: &[&str]| {
        let mut command = comm.fmes();
        if as_nobody {
            command
                .uid(NOBODY)
                .gid(NOBODY)
                .env("FMES_CACHE_DIR", comm.root.path().join("cache"));
        }
        success(&command.args(args).output().unwrap())
    };
    if as_nobody {
        for name in files.iter().map(String::as_str).chain(["0_bad.json"]) {
            let path = comm.join(&format!("To_B/{name}"));
            chown(&path, Some(0), Some(0)).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    success(&first.args(["peek", "b"]).output().unwrap());

    other_user(&["archive", "b", &files[0]]);
    let claimed = json_lines(&other_user(&[
        "--json",
        "claim",
        "b",
        "--consumer",
        "w",
        "--limit",
        "5",
    ]));
    assert_eq!(claimed.len(), 2, "{claimed:?}");
    for message in &claimed {
        other_user(&[
            "ack",
            "b",
            "--consumer",
            "w",
            message["file"].as_str().unwrap(),
        ]);
    }
    other_user(&["recover"]);

    assert_eq!(comm.json_files("ARCHIVE"), files);
    assert_eq!(comm.json_files("DEAD/To_B"), ["0_bad.json"]);
    assert!(comm.join("DEAD/To_B/0_bad.json.reason").exists());
    for empty in [
        "To_B",
        "To_B/.inflight",
        "ARCHIVE/.incoming",
        "DEAD/To_B/.incoming",
    ] {
        let left: Vec<_> = std::fs::read_dir(comm.join(empty))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n != ".inflight")
            .collect();
        assert!(left.is_empty(), "{empty}: {left:?}");
    }
}

/// In a `_COMM` shared by several users, an `.inflight/` folder that one
/// made and the next cannot write is named in the claim's error.
#[cfg(unix)]
#[test]
fn a_claim_into_an_inflight_folder_it_cannot_write_names_it() {
    use std::os::unix::fs::PermissionsExt;

    let comm = TempComm::with_agents(&["a", "b"]);
    success(&comm.run(&["send", "--from", "a", "--to", "b", "1"]));
    let mut command = comm.fmes();
    let as_nobody = run_as_nobody(&comm, &mut command);
    // Made by root (as root's first claim makes it), or not writable.
    std::fs::create_dir(comm.join("To_B/.inflight")).unwrap();
    if !as_nobody {
        let read_only = std::fs::Permissions::from_mode(0o555);
        std::fs::set_permissions(comm.join("To_B/.inflight"), read_only).unwrap();
    }
    let output = command
        .args(["claim", "b", "--consumer", "w"])
        .output()
        .unwrap();
    let err = failure(&output, 1);
    assert!(
        err.contains("cannot move it into _COMM/To_B/.inflight/: Permission denied"),
        "{err}"
    );
    assert_eq!(comm.json_files("To_B").len(), 1);
}

#[test]
fn a_missing_comm_folder_says_to_run_init() {
    let dir = tempfile::tempdir().unwrap();
    let output = fmes_command()
        .current_dir(dir.path())
        .args(["peek", "claude"])
        .output()
        .unwrap();
    let err = failure(&output, 1);
    assert!(
        err.contains("error: no _COMM folder at _COMM") && err.contains("fmes init"),
        "{err}"
    );
}

#[test]
fn the_comm_folder_comes_from_fmes_comm_or_defaults_to_dot_comm() {
    let dir = tempfile::tempdir().unwrap();
    success(
        &fmes_command()
            .current_dir(dir.path())
            .args(["init", "x"])
            .output()
            .unwrap(),
    );
    assert!(dir.path().join("_COMM/To_X").is_dir());
    let elsewhere = dir.path().join("shared");
    let out = fmes_command()
        .env("FMES_COMM", &elsewhere)
        .args(["init", "y"])
        .output()
        .unwrap();
    success(&out);
    assert!(elsewhere.join("To_Y").is_dir());
}

#[test]
fn archive_tries_every_file_and_fails_if_any_failed() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let mut files = Vec::new();
    for _ in 0..2 {
        let sent = json_lines(&success(
            &comm.run(&["--json", "send", "--from", "a", "--to", "b", "1"]),
        ));
        files.push(sent[0]["file"].as_str().unwrap().to_string());
    }
    let output = comm.run(&["archive", "b", &files[0], "missing.json", &files[1]]);
    let err = failure(&output, 1);
    assert!(err.contains("cannot archive missing.json"), "{err}");
    assert_eq!(stdout(&output).lines().count(), 2);
    assert_eq!(comm.json_files("ARCHIVE"), {
        let mut f = files.clone();
        f.sort();
        f
    });
}

#[test]
fn broadcast_and_cleanup() {
    let comm = TempComm::with_agents(&["a", "b", "c"]);
    let out = success(&comm.run(&["broadcast", "--from", "a", r#"{"build": "red"}"#]));
    assert_eq!(out, "sent ALERT to 2 agents: b, c\n");
    let got = json_lines(&success(&comm.run(&["--json", "receive", "c"])));
    assert_eq!(
        (got[0]["priority"].as_i64(), got[0]["type"].as_str()),
        (Some(1), Some("ALERT"))
    );

    let report = json_lines(&success(&comm.run(&[
        "--json",
        "cleanup",
        "--max-age",
        "1h",
    ])));
    assert_eq!(
        report[0],
        serde_json::json!({"archived": 0, "removed_temporary": 0})
    );
    let report = json_lines(&success(&comm.run(&[
        "--json",
        "cleanup",
        "--max-age",
        "0s",
    ])));
    assert_eq!(report[0]["archived"], 2);
    assert_eq!(comm.json_files("ARCHIVE").len(), 2);
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let payload = format!("\"{}\"", "x".repeat(60_000));
    for _ in 0..20 {
        success(&comm.run(&["send", "--from", "a", "--to", "b", &payload]));
    }
    let mut child = comm
        .fmes()
        .args(["receive", "b"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{:?}", output.status);
    assert_eq!(stderr(&output), "");
}

#[test]
fn demo_shows_a_task_and_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let comm = dir.path().join("demo_COMM");
    let out = success(&fmes_command().arg("demo").arg(&comm).output().unwrap());
    for expected in [
        "==> planner sends a TASK to coder",
        "TASK from planner to coder",
        "REPORT from coder to planner",
        "archived as ARCHIVE/",
        "planner: 0 waiting",
    ] {
        assert!(out.contains(expected), "{expected:?} missing from:\n{out}");
    }
    let archived = std::fs::read_dir(comm.join("ARCHIVE"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_type().unwrap().is_file())
        .count();
    // The coder's TASK and REPORT, and the plugin reviewer's TASK and REPORT.
    assert_eq!(archived, 4);
    assert!(
        out.contains("reviewer handled") && out.contains("acknowledged"),
        "{out}"
    );
    assert!(out.contains("REPORT from reviewer to planner"), "{out}");
}

#[test]
fn component_writes_the_embedded_component_for_other_runtimes() {
    let comm = TempComm::new();
    let file = comm.root.path().join("fmes_queue.wasm");
    success(&comm.run(&["component", "-o", file.to_str().unwrap()]));
    let written = std::fs::read(&file).unwrap();
    assert_eq!(written, fmes::runtime::COMPONENT);
    // A component (layer 1), not a core module.
    assert_eq!(&written[..8], b"\0asm\x0d\x00\x01\x00");

    let piped = comm.run(&["component"]);
    assert_eq!(piped.stdout, written);

    let missing = comm.root.path().join("no/such/dir/x.wasm");
    let err = failure(
        &comm.run(&["component", "-o", missing.to_str().unwrap()]),
        1,
    );
    assert!(err.contains("no/such/dir"), "{err}");
}

#[test]
fn component_refuses_to_write_binary_to_a_terminal() {
    // `script` gives the command a terminal for stdout.
    let output = std::process::Command::new("script")
        .args([
            "-qec",
            &format!("{} component", env!("CARGO_BIN_EXE_fmes")),
            "/dev/null",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("stdout is a terminal"), "{text}");
}

/// Runs `fmes args...` on `comm` with at most `open_files` descriptors open.
fn run_with_open_file_limit(
    comm: &TempComm,
    open_files: u64,
    args: &[&str],
) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    let mut command = comm.fmes();
    command.args(args).stdin(Stdio::null());
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: open_files,
                rlim_max: open_files,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.output().unwrap()
}

#[test]
fn commands_over_every_mailbox_keep_few_folders_open() {
    // More mailboxes than the process may open files: an operation that
    // walks them all must not hold each one open.
    let agents: Vec<String> = (0..300).map(|i| format!("agent{i}")).collect();
    let comm = TempComm::new();
    let native = comm.native();
    native.init(&agents).unwrap();
    for agent in &agents {
        native
            .send(fmes::SendRequest::new("boss", agent, "{}".to_string()))
            .unwrap();
        // Claimed with a lease that has run out: `recover` returns each.
        native
            .claim(agent, "gone", 1, std::time::Duration::ZERO)
            .unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(5));

    let stats = success(&run_with_open_file_limit(&comm, 100, &["--json", "stats"]));
    assert_eq!(json_lines(&stats).len(), agents.len(), "{stats}");
    let recovered = success(&run_with_open_file_limit(&comm, 100, &["recover"]));
    assert!(
        recovered.contains("returned 300 expired claims"),
        "{recovered}"
    );
    let checked = success(&run_with_open_file_limit(&comm, 100, &["doctor"]));
    assert!(
        checked.contains("300 mailboxes, 300 messages waiting"),
        "{checked}"
    );
    for agent in &agents {
        assert_eq!(native.peek(agent).unwrap(), 1, "{agent}");
    }
}

#[test]
fn running_out_of_open_files_is_said_so_not_taken_for_a_full_disk() {
    let comm = TempComm::with_agents(&["a", "b"]);
    // Where exactly the process runs out depends on what it holds open
    // before the component starts: every small limit is tried.
    let mut said = Vec::new();
    for open_files in 5..=12 {
        let output = run_with_open_file_limit(&comm, open_files, &["stats"]);
        if output.status.success() {
            continue;
        }
        let error = failure(&output, 1);
        assert!(!error.contains("Not enough space"), "{error}");
        said.push(error);
    }
    assert!(
        said.iter().any(|e| e.contains("too many files open")),
        "{said:#?}"
    );
}

/// `--json` prints the message as stored: numbers as written (no rounding
/// of integers past 64 bits to floats), and a string escaping half a
/// surrogate pair (valid JSON, which Python writes) with every other field.
#[test]
fn json_output_keeps_numbers_and_lone_surrogates_as_stored() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let numbers =
        r#"{"big":123456789012345678901234567890,"u64":18446744073709551616,"neg":-0,"f":0.1}"#;
    let sent = success(&comm.run(&["--json", "send", "--from", "a", "--to", "b", numbers]));
    assert!(sent.contains(&format!(r#""payload":{numbers}"#)), "{sent}");
    let file = json_lines(&sent)[0]["file"].as_str().unwrap().to_string();
    let stored = std::fs::read_to_string(comm.join(&format!("To_B/{file}"))).unwrap();
    assert!(
        stored.contains("\"big\": 123456789012345678901234567890"),
        "{stored}"
    );

    let python = r#"{"id": "s", "from": "py", "to": "b", "type": "T", "priority": 1,
        "timestamp": "2026-01-01T00:00:00Z", "payload": {"k": "\ud800"}, "extra": "x"}"#;
    std::fs::write(comm.join("To_B/1_py.json"), python).unwrap();
    let received = success(&comm.run(&["--json", "receive", "b"]));
    let lines: Vec<&str> = received.lines().collect();
    assert_eq!(
        lines[0],
        r#"{"id":"s","from":"py","to":"b","type":"T","priority":1,"timestamp":"2026-01-01T00:00:00Z","payload":{"k":"\ud800"},"extra":"x","file":"1_py.json"}"#
    );
    assert!(
        lines[1].contains(&format!(r#""payload":{numbers}"#)),
        "{}",
        lines[1]
    );
    let text = success(&comm.run(&["receive", "b", "--limit", "1"]));
    assert!(text.contains(r#"    {"k":"\ud800"}"#), "{text}");
    let claimed = success(&comm.run(&["--json", "claim", "b", "--consumer", "w"]));
    assert!(
        claimed.starts_with(r#"{"id":"s","from":"py","to":"b","type":"T","priority":1,"timestamp":"2026-01-01T00:00:00Z","payload":{"k":"\ud800"},"extra":"x","file":"1_py~u"#),
        "{claimed}"
    );
    // The rest is plain JSON once the half pair is out of the way.
    let claimed: serde_json::Value =
        serde_json::from_str(&claimed.replace(r"\ud800", "?")).unwrap();
    assert_eq!(claimed["deliveries"], 1);
    assert!(claimed["lease_expires_ms"].as_u64().is_some(), "{claimed}");
}

/// The fields `--json` adds to a message (`file`; `deliveries` and
/// `lease_expires_ms` for a claim) replace extra fields of those names that
/// another writer put in it, in the output only: a script's `.file` is
/// always the file to archive, and the file keeps what was written.
#[test]
fn fields_json_adds_take_the_place_of_extra_fields_of_their_names() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let python = r#"{"id": "s", "from": "py", "to": "b", "type": "T", "priority": 1,
        "timestamp": "2026-01-01T00:00:00Z", "payload": 1, "file": "theirs.json",
        "deliveries": "many", "lease_expires_ms": "never", "note": "kept"}"#;
    std::fs::write(comm.join("To_B/1_py.json"), python).unwrap();
    let received = json_lines(&success(&comm.run(&["--json", "receive", "b"])));
    assert_eq!(received[0]["file"], "1_py.json");
    assert_eq!(received[0]["note"], "kept");
    assert_eq!(received[0]["deliveries"], "many", "not added by receive");
    let archived = success(&comm.run(&["archive", "b", received[0]["file"].as_str().unwrap()]));
    assert!(archived.contains("ARCHIVE/1_py.json"), "{archived}");
    let kept = std::fs::read_to_string(comm.join("ARCHIVE/1_py.json")).unwrap();
    assert_eq!(kept, python, "the file is unchanged");

    std::fs::write(
        comm.join("To_B/1_py.json"),
        python.replace("\"s\"", "\"t\""),
    )
    .unwrap();
    let claimed = json_lines(&success(&comm.run(&[
        "--json",
        "claim",
        "b",
        "--consumer",
        "w",
    ])));
    assert!(
        claimed[0]["file"].as_str().unwrap().starts_with("1_py~u"),
        "{claimed:?}"
    );
    assert_eq!(claimed[0]["deliveries"], 1);
    assert!(
        claimed[0]["lease_expires_ms"].as_u64().is_some(),
        "{claimed:?}"
    );
    assert_eq!(claimed[0]["note"], "kept");
}

/// Two messages of 40 MiB each are under the 64 MiB a message may have, but
/// their text and payload together pass what wasmtime lets one answer of
/// the component carry (128 MiB by default): a page or a claim ends early
/// on them, and everything is still delivered, once.
#[test]
fn large_messages_are_received_and_claimed_a_few_at_a_time() {
    let comm = TempComm::with_agents(&["a", "b"]);
    let mailbox = comm.join("To_B");
    for (name, id) in [("5_big_one.json", "1"), ("5_big_two.json", "2")] {
        let message = serde_json::json!({
            "id": id, "from": "a", "to": "b", "type": "T", "priority": 5,
            "timestamp": "2026-01-01T00:00:00Z", "payload": "x".repeat(40_000_000),
        });
        std::fs::write(mailbox.join(name), message.to_string()).unwrap();
    }
    let sent = json_lines(&success(&comm.run(&[
        "--json",
        "send",
        "--from",
        "a",
        "--to",
        "b",
        r#"{"small": true}"#,
    ])));
    let small = sent[0]["file"].as_str().unwrap().to_string();
    let mut all = vec![
        "5_big_one.json".to_string(),
        "5_big_two.json".to_string(),
        small,
    ];
    all.sort();
    let files_of = |lines: &[serde_json::Value]| -> Vec<String> {
        let mut files: Vec<String> = lines
            .iter()
            .map(|line| line["file"].as_str().unwrap().to_string())
            .collect();
        files.sort();
        files
    };

    let received = json_lines(&success(&comm.run(&["--json", "receive", "b"])));
    assert_eq!(files_of(&received), all);
    assert_eq!(
        received[0]["payload"].as_str().map(str::len),
        Some(40_000_000)
    );
    let printed = success(&comm.run(&["receive", "b", "--limit", "10"]));
    assert_eq!(printed.matches("    file: ").count(), 3);
    success(&comm.run(&["doctor"]));

    // The library: the whole answer asked for, whatever its size.
    let mut library = comm.open();
    let received = library.receive("b", None, Some(10)).unwrap();
    let mut files: Vec<String> = received.messages.iter().map(|m| m.file.clone()).collect();
    files.sort();
    assert_eq!(files, all);
    let read = library.read("b", &all).unwrap();
    assert_eq!(read.messages.len(), 3);
    drop(library);

    // Each claim takes only what it returns; the rest stays in the mailbox.
    // (Files another writer named are claimed under a name of their own:
    // `~u` and twelve hex digits added.)
    let unmarked =
        |file: &String| match file.strip_suffix(".json").and_then(|s| s.rsplit_once("~u")) {
            Some((base, mark)) if mark.len() == 12 => format!("{base}.json"),
            _ => file.clone(),
        };
    let mut claimed = Vec::new();
    loop {
        let output = comm.run(&["--json", "claim", "b", "--consumer", "w", "--limit", "10"]);
        let batch = json_lines(&success(&output));
        if batch.is_empty() {
            break;
        }
        claimed.extend(files_of(&batch).iter().map(unmarked));
        assert_eq!(comm.json_files("To_B").len(), all.len() - claimed.len());
        assert_eq!(
            std::fs::read_dir(mailbox.join(".inflight"))
                .unwrap()
                .count(),
            claimed.len()
        );
    }
    claimed.sort();
    assert_eq!(claimed, all);
}
