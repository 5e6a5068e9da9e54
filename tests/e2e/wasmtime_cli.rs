//! The queue component run by the wasmtime CLI (`wasmtime run --invoke`),
//! exchanging messages with the `fmes` CLI in one `_COMM`, both ways.
//!
//! Every command runs in a temporary folder exactly as the README's
//! "wasmtime CLI" section writes it: `fmes_queue.wasm` and `_COMM` side by
//! side, relative paths only. The CLI is the one `.ci/install-wasmtime.sh`
//! installs under `target/tools/wasmtime`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::*;

/// The calls the README shows, in WAVE syntax.
const INIT: &str = r#"init(["planner", "coder"])"#;
const SEND: &str = r#"send({from: "planner", to: "coder", priority: 3, payload: "{\"task\": \"add --limit to receive\"}"})"#;
const RECEIVE: &str = r#"receive("planner")"#;
const PEEK_QUALIFIED: &str = r#"fmes:queue/messages.peek@0.1.0("planner")"#;

/// The wasmtime CLI that `.ci/install-wasmtime.sh` installs.
fn wasmtime_bin() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let bin = workspace.join("target/tools/wasmtime/bin/wasmtime");
    assert!(
        bin.is_file(),
        "the wasmtime CLI is not installed at {}: run bash .ci/install-wasmtime.sh",
        bin.display()
    );
    bin
}

/// A temporary folder holding `_COMM` and `fmes_queue.wasm`, in which
/// commands run as a person would type them.
struct Folder {
    dir: tempfile::TempDir,
}

impl Folder {
    /// An empty `_COMM` and the component, written by `fmes component`.
    fn new() -> Folder {
        let folder = Folder {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir(folder.dir.path().join("_COMM")).unwrap();
        folder.fmes(&["component", "-o", "fmes_queue.wasm"]);
        let written = std::fs::read(folder.dir.path().join("fmes_queue.wasm")).unwrap();
        assert!(
            written == fmes::runtime::COMPONENT,
            "`fmes component` wrote {} bytes, not the {}-byte embedded component",
            written.len(),
            fmes::runtime::COMPONENT.len()
        );
        folder
    }

    /// `wasmtime run --dir _COMM::/_COMM --invoke CALL fmes_queue.wasm`;
    /// returns what it printed, the call's result in WAVE.
    fn wasmtime(&self, call: &str) -> String {
        let args = [
            "run",
            "--dir",
            "_COMM::/_COMM",
            "--invoke",
            call,
            "fmes_queue.wasm",
        ];
        let output = Command::new(wasmtime_bin())
            .current_dir(self.dir.path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "wasmtime {args:?} failed: {:?}\nstdout:\n{}\nstderr:\n{}",
            output.status,
            stdout(&output),
            stderr(&output)
        );
        stdout(&output)
    }

    /// `fmes ARGS...` in this folder (so on `./_COMM`); returns its stdout.
    fn fmes(&self, args: &[&str]) -> String {
        let output = fmes_command()
            .current_dir(self.dir.path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        success(&output)
    }

    /// `fmes --json send --from coder --to planner ARGS...`: the one
    /// message it printed.
    fn send_to_planner(&self, args: &[&str]) -> serde_json::Value {
        let mut command = vec!["--json", "send", "--from", "coder", "--to", "planner"];
        command.extend_from_slice(args);
        let mut sent = json_lines(&self.fmes(&command));
        assert_eq!(sent.len(), 1, "{sent:?}");
        sent.remove(0)
    }
}

/// The string value of `field: "..."` in WAVE output (the first one), with
/// WAVE's escapes undone.
#[track_caller]
fn wave_string_field(wave: &str, field: &str) -> String {
    let start = format!("{field}: \"");
    let at = wave
        .find(&start)
        .unwrap_or_else(|| panic!("no {field} in {wave}"))
        + start.len();
    let mut value = String::new();
    let mut chars = wave[at..].chars();
    loop {
        match chars.next() {
            None => panic!("unterminated {field} in {wave}"),
            Some('"') => return value,
            Some('\\') => match chars.next() {
                Some('n') => value.push('\n'),
                Some('t') => value.push('\t'),
                Some('r') => value.push('\r'),
                Some('u') => {
                    let code: String = chars.by_ref().take_while(|c| *c != '}').collect();
                    let code = code
                        .strip_prefix('{')
                        .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                        .and_then(char::from_u32)
                        .unwrap_or_else(|| panic!("bad \\u escape in {field} in {wave}"));
                    value.push(code);
                }
                Some(other) => value.push(other),
                None => panic!("unterminated {field} in {wave}"),
            },
            Some(c) => value.push(c),
        }
    }
}

/// The JSON text of a WAVE `payload` field, parsed.
#[track_caller]
fn wave_payload(wave: &str) -> serde_json::Value {
    let text = wave_string_field(wave, "payload");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("payload {text:?}: {e}"))
}

#[test]
fn a_message_sent_by_the_wasmtime_cli_is_received_by_fmes() {
    let folder = Folder::new();

    assert_eq!(folder.wasmtime(INIT), "ok([\"planner\", \"coder\"])\n");
    let sent = folder.wasmtime(SEND);
    assert!(sent.starts_with("ok({id: \""), "{sent}");
    for field in [
        r#"from: "planner""#,
        r#"to: "coder""#,
        r#"type: "TASK""#,
        "priority: 3,",
    ] {
        assert!(sent.contains(field), "{field} not in {sent}");
    }
    assert_eq!(
        wave_payload(&sent),
        serde_json::json!({"task": "add --limit to receive"})
    );
    let id = wave_string_field(&sent, "id");
    let file = wave_string_field(&sent, "file");
    assert!(file.starts_with("3_") && file.ends_with(".json"), "{file}");

    assert_eq!(
        folder.fmes(&["--json", "agents"]),
        "[\"coder\",\"planner\"]\n"
    );
    let received = json_lines(&folder.fmes(&["--json", "receive", "coder"]));
    assert_eq!(received.len(), 1, "{received:?}");
    let message = &received[0];
    assert_eq!(message["id"], id.as_str());
    assert_eq!(message["file"], file.as_str());
    assert_eq!(message["from"], "planner");
    assert_eq!(message["to"], "coder");
    assert_eq!(message["type"], "TASK");
    assert_eq!(message["priority"], 3);
    assert_eq!(
        message["payload"],
        serde_json::json!({"task": "add --limit to receive"})
    );
}

#[test]
fn a_message_sent_by_fmes_is_received_by_the_wasmtime_cli() {
    let folder = Folder::new();
    folder.fmes(&["init", "planner", "coder"]);
    let sent = folder.send_to_planner(&["--type", "REPORT", r#"{"done": true}"#]);
    let id = sent["id"].as_str().unwrap();
    let file = sent["file"].as_str().unwrap();

    let received = folder.wasmtime(RECEIVE);
    assert!(
        received.starts_with(&format!("ok({{messages: [{{id: \"{id}\", ")),
        "{received}"
    );
    for field in [
        r#"from: "coder""#.to_string(),
        r#"to: "planner""#.to_string(),
        r#"type: "REPORT""#.to_string(),
        "priority: 5,".to_string(),
        format!("file: \"{file}\""),
    ] {
        assert!(received.contains(&field), "{field} not in {received}");
    }
    assert_eq!(wave_payload(&received), serde_json::json!({"done": true}));
    assert!(received.ends_with("}], malformed: []})\n"), "{received}");
    // One message, and `receive` left it where it was.
    assert_eq!(received.matches("{id: ").count(), 1, "{received}");
    assert_eq!(folder.fmes(&["--json", "peek", "planner"]), "1\n");
    // The same count by the function's full name: interface, then function.
    assert_eq!(folder.wasmtime(PEEK_QUALIFIED), "ok(1)\n");
}

#[test]
fn the_wasmtime_cli_reads_a_mailbox_page_by_page_with_positions_it_printed() {
    let folder = Folder::new();
    folder.fmes(&["init", "planner", "coder"]);
    let mut files = Vec::new();
    for i in 0..2 {
        let sent = folder.send_to_planner(&[&i.to_string()]);
        files.push(sent["file"].as_str().unwrap().to_string());
    }
    // Each call is a new instance: the position alone says where to go on.
    let first = folder.wasmtime(r#"receive-page("planner", none, 1, none)"#);
    assert!(
        first.contains(&format!("file: \"{}\"", files[0])),
        "{first}"
    );
    assert!(!first.contains(&files[1]), "{first}");
    let next = first
        .split_once("next: ")
        // The page record's `}` and the result's `)` close the line.
        .and_then(|(_, next)| next.trim_end().strip_suffix("})"))
        .unwrap_or_else(|| panic!("no next position in {first}"));
    assert!(next.starts_with("some({priority: 5, sent-ns: "), "{next}");
    let second = folder.wasmtime(&format!(r#"receive-page("planner", none, 1, {next})"#));
    assert!(
        second.contains(&format!("file: \"{}\"", files[1])),
        "{second}"
    );
    // The last page: WAVE leaves a field that is none out of its record.
    assert!(!second.contains("next:"), "{second}");
}

#[test]
fn the_wasmtime_cli_reads_dead_letters_page_by_page() {
    let folder = Folder::new();
    folder.fmes(&["init", "planner"]);
    // `list` is a WIT keyword `--invoke` refuses; `list-page` is not.
    let dead = folder.dir.path().join("_COMM/DEAD/To_Planner");
    std::fs::create_dir_all(&dead).unwrap();
    for (name, reason) in [("a.json", "first"), ("b.json", "second")] {
        std::fs::write(dead.join(name), "{}").unwrap();
        let note = format!(r#"{{"reason": "{reason}", "deliveries": 3}}"#);
        std::fs::write(dead.join(format!("{name}.reason")), note).unwrap();
    }
    let first = folder.wasmtime(r#"list-page("planner", 1, none)"#);
    assert_eq!(
        first.trim_end(),
        r#"ok({letters: [{agent: "planner", file: "a.json", reason: "first", deliveries: 3, dead-at-ms: 0}], next: some("a.json")})"#
    );
    let second = folder.wasmtime(r#"list-page("planner", 1, some("a.json"))"#);
    assert_eq!(
        second.trim_end(),
        r#"ok({letters: [{agent: "planner", file: "b.json", reason: "second", deliveries: 3, dead-at-ms: 0}]})"#
    );
}
