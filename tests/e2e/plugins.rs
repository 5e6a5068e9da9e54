//! Agent plugins: the example agent, and hostile fixtures that are stopped
//! or refused while the queue stays intact and other messages are handled.

use std::path::PathBuf;
use std::process::Output;

use fmes::SendRequest;

use crate::support::*;

fn plugin(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("FMES_PLUGINS_DIR")).join(format!("{name}.wasm"));
    assert!(path.is_file(), "{} was not built", path.display());
    path
}

/// Runs `fmes [global...] agent run PLUGIN --as worker --once [--policy P]`.
fn run_agent(comm: &TempComm, name: &str, policy: Option<&str>, global: &[&str]) -> Output {
    run_agent_as(comm, name, "worker", policy, global)
}

/// `run_agent` as another agent.
fn run_agent_as(
    comm: &TempComm,
    name: &str,
    agent: &str,
    policy: Option<&str>,
    global: &[&str],
) -> Output {
    let mut command = comm.fmes();
    command
        .args(global)
        .arg("--json")
        .args(["agent", "run"])
        .arg(plugin(name));
    command.args(["--as", agent, "--once"]);
    if let Some(policy) = policy {
        let path = comm.root.path().join("policy.toml");
        std::fs::write(&path, policy).unwrap();
        command.arg("--policy").arg(path);
    }
    command.stdin(std::process::Stdio::null()).output().unwrap()
}

fn send(comm: &TempComm, payload: &str) -> fmes::Message {
    comm.open()
        .send(&SendRequest::new("planner", "worker", payload))
        .unwrap()
}

fn outcomes(output: &Output) -> Vec<serde_json::Value> {
    json_lines(&success(output))
}

#[test]
fn the_example_agent_answers_each_task_with_a_report() {
    let comm = TempComm::with_agents(&["planner", "worker"]);
    let task = send(&comm, r#"{"task": "summarise"}"#);
    comm.open()
        .send(&SendRequest::new("planner", "worker", "1").with_type("NOTE"))
        .unwrap();
    let output = run_agent(&comm, "report_agent", None, &[]);
    let lines = outcomes(&output);
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|l| l["outcome"] == "acknowledged"));
    assert!(
        stderr(&output).contains("[worker] info: reported on"),
        "{}",
        stderr(&output)
    );
    let reports = comm.open().receive("planner", None, None).unwrap().messages;
    assert_eq!(reports.len(), 1);
    assert_eq!(
        (reports[0].message_type.as_str(), reports[0].from.as_str()),
        ("REPORT", "worker")
    );
    let payload: serde_json::Value = serde_json::from_str(&reports[0].payload).unwrap();
    assert_eq!(payload["in_reply_to"], task.id.as_str());
    assert_eq!(comm.open().peek("worker").unwrap(), 0);
    assert_eq!(comm.json_files("ARCHIVE").len(), 2);
}

#[test]
fn an_infinite_loop_is_stopped_at_the_time_limit_and_dead_lettered() {
    let comm = TempComm::with_agents(&["planner", "worker"]);
    send(&comm, r#""spin""#);
    send(&comm, r#""fine""#);
    let output = run_agent(
        &comm,
        "fixture_spin",
        Some("time_limit = \"1s\""),
        &["--max-deliveries", "2"],
    );
    let lines = outcomes(&output);
    let spin: Vec<_> = lines
        .iter()
        .filter(|l| l["outcome"] != "acknowledged")
        .collect();
    assert_eq!(spin.len(), 2, "{lines:?}");
    assert_eq!(spin[0]["outcome"], "released");
    assert_eq!(spin[1]["outcome"], "dead-lettered");
    assert!(
        spin[0]["reason"]
            .as_str()
            .unwrap()
            .contains("time limit of 1s")
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["outcome"] == "acknowledged")
            .count(),
        1
    );
    let dead = comm.open().dead_letters(Some("worker")).unwrap();
    assert_eq!(dead.len(), 1);
}

#[test]
fn a_memory_bomb_is_stopped_at_the_memory_limit() {
    let comm = TempComm::with_agents(&["planner", "worker"]);
    send(&comm, r#""bomb""#);
    send(&comm, r#""fine""#);
    let output = run_agent(
        &comm,
        "fixture_memory_bomb",
        Some("memory_limit_mib = 32"),
        &["--max-deliveries", "1"],
    );
    let lines = outcomes(&output);
    let bomb = lines
        .iter()
        .find(|l| l["outcome"] == "dead-lettered")
        .expect("{lines:?}");
    assert!(
        bomb["reason"]
            .as_str()
            .unwrap()
            .contains("memory limit of 32 MiB"),
        "{bomb}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["outcome"] == "acknowledged")
            .count(),
        1
    );
}

#[test]
fn a_panic_releases_the_message_and_a_fresh_instance_goes_on() {
    let comm = TempComm::with_agents(&["planner", "worker"]);
    send(&comm, r#""panic""#);
    send(&comm, r#""fine""#);
    let output = run_agent(&comm, "fixture_panic", None, &["--max-deliveries", "1"]);
    let lines = outcomes(&output);
    assert!(lines.iter().any(|l| l["outcome"] == "dead-lettered"
        && l["reason"].as_str().unwrap().contains("the plugin crashed")));
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["outcome"] == "acknowledged")
            .count(),
        1
    );
    assert!(stderr(&output).contains("[worker] stderr:") && stderr(&output).contains("on purpose"));
}

#[test]
fn plugins_importing_the_file_system_or_a_timer_are_refused_at_load() {
    let comm = TempComm::with_agents(&["planner", "worker"]);
    send(&comm, r#""x""#);
    for (name, forbidden) in [
        ("fixture_fs_import", "wasi:filesystem/"),
        ("fixture_sleeper", "wasi:clocks/monotonic-clock"),
    ] {
        let err = failure(&run_agent(&comm, name, None, &[]), 1);
        assert!(
            err.contains("error: the plugin imports what agent plugins may not use:")
                && err.contains(forbidden),
            "{name}: {err}"
        );
    }
    // Nothing was claimed: the message still waits.
    assert_eq!(comm.open().peek("worker").unwrap(), 1);
}

#[test]
fn a_flood_is_capped_per_handled_message() {
    let comm = TempComm::with_agents(&["planner", "worker"]);
    send(&comm, "1");
    let output = run_agent(
        &comm,
        "fixture_flood",
        Some("max_sends_per_message = 3"),
        &["--max-deliveries", "1"],
    );
    let lines = outcomes(&output);
    assert!(
        lines[0]["reason"]
            .as_str()
            .unwrap()
            .contains("sent 3 before the host refused")
    );
    assert_eq!(comm.open().peek("planner").unwrap(), 3);
}

#[test]
fn sending_where_the_policy_forbids_is_refused() {
    let comm = TempComm::with_agents(&["planner", "worker", "other"]);
    send(&comm, r#""other""#);
    send(&comm, r#""planner""#);
    let output = run_agent(
        &comm,
        "fixture_forbidden_send",
        Some("allowed_recipients = [\"Planner\"]"),
        &["--max-deliveries", "1"],
    );
    let lines = outcomes(&output);
    let refused = lines
        .iter()
        .find(|l| l["outcome"] != "acknowledged")
        .unwrap();
    assert!(
        refused["reason"]
            .as_str()
            .unwrap()
            .contains("the policy does not allow sending to"),
        "{refused}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["outcome"] == "acknowledged")
            .count(),
        1
    );
    assert_eq!(comm.open().peek("other").unwrap(), 0);
    assert_eq!(comm.open().peek("planner").unwrap(), 1);
}

#[test]
fn terminal_escape_sequences_are_stripped_from_plugin_output() {
    let comm = TempComm::with_agents(&["planner", "worker"]);
    send(&comm, "1");
    let output = run_agent(&comm, "fixture_escape", None, &[]);
    assert_eq!(outcomes(&output)[0]["outcome"], "acknowledged");
    let err = stderr(&output);
    assert!(!err.contains('\u{1b}') && !err.contains('\u{7}'), "{err:?}");
    assert!(err.contains("[worker] stdout: RED title cleared"), "{err}");
    assert!(err.contains("[worker] stderr: bold-on-stderr"), "{err}");
    assert!(err.contains("[worker] warn: blinking log"), "{err}");
}

#[test]
fn a_bad_policy_file_is_refused_naming_the_key() {
    let comm = TempComm::with_agents(&["planner", "worker"]);
    let err = failure(
        &run_agent(&comm, "report_agent", Some("time_limt = \"1s\""), &[]),
        1,
    );
    assert!(
        err.contains("invalid policy file") && err.contains("time_limt"),
        "{err}"
    );
    let err = failure(
        &comm.run(&["agent", "run", "/nonexistent.wasm", "--as", "worker"]),
        1,
    );
    assert!(
        err.contains("cannot read the plugin /nonexistent.wasm"),
        "{err}"
    );
}

#[test]
fn two_runners_share_the_work_without_handling_a_message_twice() {
    let comm = TempComm::with_agents(&["planner", "worker"]);
    let ids: Vec<String> = (0..20)
        .map(|i| send(&comm, &format!("{{\"n\": {i}}}")).id)
        .collect();
    let spawn = || {
        comm.fmes()
            .args(["--json", "agent", "run"])
            .arg(plugin("report_agent"))
            .args(["--as", "worker", "--once"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let handled: usize = [a, b]
        .into_iter()
        .map(|child| outcomes(&child.wait_with_output().unwrap()).len())
        .sum();
    assert_eq!(handled, 20);
    let reports = comm.open().receive("planner", None, None).unwrap().messages;
    let mut answered: Vec<String> = reports
        .iter()
        .map(|m| {
            let payload: serde_json::Value = serde_json::from_str(&m.payload).unwrap();
            payload["in_reply_to"].as_str().unwrap().to_string()
        })
        .collect();
    answered.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(answered, expected);
}

#[test]
fn the_triage_agent_routes_tasks_where_they_are_assigned() {
    let comm = TempComm::with_agents(&["planner", "worker", "coder"]);
    comm.open()
        .send(
            &SendRequest::new(
                "planner",
                "worker",
                r#"{"assign_to": "coder", "task": "fix"}"#,
            )
            .with_priority(2),
        )
        .unwrap();
    let unassigned = send(&comm, r#"{"task": "who?"}"#);
    let lines = outcomes(&run_agent(&comm, "triage_agent", None, &[]));
    assert!(
        lines.iter().all(|l| l["outcome"] == "acknowledged"),
        "{lines:?}"
    );
    let routed = comm.open().receive("coder", None, None).unwrap().messages;
    assert_eq!(routed.len(), 1);
    assert_eq!((routed[0].from.as_str(), routed[0].priority), ("worker", 2));
    let answers = comm.open().receive("planner", None, None).unwrap().messages;
    assert_eq!(answers.len(), 1);
    assert!(
        answers[0].payload.contains(&unassigned.id) && answers[0].payload.contains("unassigned")
    );
}

#[test]
fn a_fuel_budget_stops_a_loop_deterministically() {
    let comm = TempComm::with_agents(&["planner", "worker"]);
    send(&comm, r#""spin""#);
    send(&comm, r#""fine""#);
    let output = run_agent(
        &comm,
        "fixture_spin",
        Some("fuel = 50_000_000\ntime_limit = \"10m\""),
        &["--max-deliveries", "1"],
    );
    let lines = outcomes(&output);
    let spin = lines
        .iter()
        .find(|l| l["outcome"] == "dead-lettered")
        .expect("{lines:?}");
    assert!(
        spin["reason"].as_str().unwrap().contains("ran out of fuel"),
        "{spin}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["outcome"] == "acknowledged")
            .count(),
        1
    );
}

#[test]
fn an_interrupted_runner_finishes_the_message_in_hand_and_stops() {
    use std::io::{BufRead, BufReader};
    let comm = TempComm::with_agents(&["planner", "worker"]);
    send(&comm, r#"{"task": 1}"#);
    let mut child = comm
        .fmes()
        .args(["--json", "agent", "run"])
        .arg(plugin("report_agent"))
        .args(["--as", "worker"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first message to be handled (the runner keeps waiting for more).
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("acknowledged"), "{first}");
    // SAFETY: signals a child process this test started and still owns.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) },
        0
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("worker: 1 acknowledged, 0 failed"),
        "{stderr}"
    );
}

#[test]
fn a_runner_stopped_mid_batch_gives_the_messages_it_did_not_handle_back() {
    let comm = TempComm::with_agents(&["planner", "worker"]);
    for task in 0..5 {
        send(&comm, &format!(r#"{{"task": {task}}}"#));
    }
    let bytes = std::fs::read(plugin("report_agent")).unwrap();
    let mut runner = fmes::plugin::AgentRunner::from_bytes(
        runtime(),
        &bytes,
        "report_agent",
        &comm.path,
        "worker",
        fmes::plugin::Policy::default(),
    )
    .unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    // Stop once the first message is handled; the runner claimed all five.
    let report = runner
        .run(true, &stop, |_, _| {
            stop.store(true, std::sync::atomic::Ordering::Relaxed)
        })
        .unwrap();
    assert_eq!(report.acknowledged, 1);
    // The other four are back in the mailbox, none left held in flight,
    // their delivery not counted: the plugin never had them.
    let mut q = comm.open();
    assert_eq!(q.peek("worker").unwrap(), 4);
    let back = comm.json_files("To_Worker");
    assert!(back.iter().all(|name| !name.contains('~')), "{back:?}");
    let in_flight = std::fs::read_dir(comm.join("To_Worker/.inflight"))
        .unwrap()
        .count();
    assert_eq!(in_flight, 0);
    // Handled once each in all: a second run takes exactly the other four.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let report = runner.run(true, &stop, |_, _| {}).unwrap();
    assert_eq!(report.acknowledged, 4);
    assert_eq!(q.peek("worker").unwrap(), 0);
}

/// A message a plugin sends to its own agent comes back to it, and could
/// send more each time, without end: refused unless the policy names the
/// agent among its recipients.
#[test]
fn a_plugin_may_send_to_its_own_agent_only_if_the_policy_names_it() {
    let comm = TempComm::with_agents(&["planner", "worker"]);
    send(&comm, r#""selfsend""#);
    let output = run_agent(&comm, "fixture_tricks", None, &["--max-deliveries", "1"]);
    let lines = outcomes(&output);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["outcome"], "dead-lettered");
    let reason = lines[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("may send to its own agent")
            && reason.contains("only if the policy's allowed_recipients names it"),
        "{reason}"
    );
    assert_eq!(comm.open().peek("worker").unwrap(), 0);

    // Named: allowed (the message it sends asks for nothing more).
    send(&comm, r#""selfsend""#);
    let policy = r#"allowed_recipients = ["planner", "Worker"]"#;
    let lines = outcomes(&run_agent(&comm, "fixture_tricks", Some(policy), &[]));
    let handled: Vec<_> = lines.iter().map(|l| &l["outcome"]).collect();
    assert_eq!(handled, ["acknowledged", "acknowledged"], "{lines:?}");
}

/// A plugin whose setup fails never has the messages its runner claimed:
/// they go back at once, their delivery not counted (so a plugin that
/// cannot start does not send them to the dead letters unseen).
#[test]
fn a_failing_setup_gives_the_claimed_messages_back_uncounted() {
    let comm = TempComm::with_agents(&["planner", "setupfail"]);
    let mut q = comm.open();
    for n in 0..3 {
        q.send(&SendRequest::new("planner", "setupfail", n.to_string()))
            .unwrap();
    }
    for _ in 0..2 {
        let output = run_agent_as(
            &comm,
            "fixture_tricks",
            "setupfail",
            None,
            &["--max-deliveries", "1"],
        );
        let error = failure(&output, 1);
        assert!(error.contains("setup refuses to start"), "{error}");
        assert_eq!(q.peek("setupfail").unwrap(), 3);
        let waiting = comm.json_files("To_Setupfail");
        assert!(
            waiting.iter().all(|name| !name.contains('~')),
            "{waiting:?}"
        );
        let in_flight = std::fs::read_dir(comm.join("To_Setupfail/.inflight"))
            .unwrap()
            .count();
        assert_eq!(in_flight, 0);
    }
    assert!(q.dead_letters(Some("setupfail")).unwrap().is_empty());
}

/// Log lines count at least 256 bytes each against the bytes a plugin may
/// pass per message, so empty ones cannot flood stderr; an error reason
/// is cut at 4096 characters.
#[test]
fn log_floods_and_long_error_reasons_are_capped() {
    let comm = TempComm::with_agents(&["planner", "worker"]);
    send(&comm, r#""logflood 100000""#);
    let output = run_agent(&comm, "fixture_tricks", None, &[]);
    let lines = outcomes(&output);
    assert_eq!(lines[0]["outcome"], "acknowledged");
    let logged = stderr(&output)
        .lines()
        .filter(|line| line.starts_with("[worker] info:"))
        .count();
    assert_eq!(logged, 1024 * 1024 / 256, "one megabyte, 256 bytes a line");

    send(&comm, r#""longerror 1000000""#);
    let output = run_agent(&comm, "fixture_tricks", None, &["--max-deliveries", "1"]);
    let reason = outcomes(&output)[0]["reason"].as_str().unwrap().to_string();
    assert!(
        reason.ends_with("... (cut at 4096 characters)"),
        "{}",
        &reason[reason.len() - 80..]
    );
    assert!(reason.len() < 4200, "{}", reason.len());
}

/// What a fresh instance's setup sends counts against the first message it
/// handles: a plugin that traps on every message would otherwise send its
/// setup's messages again each time, uncapped.
#[test]
fn what_setup_sends_counts_against_the_first_message() {
    let comm = TempComm::with_agents(&["planner", "setupsends"]);
    comm.open()
        .send(&SendRequest::new("planner", "setupsends", r#""send""#))
        .unwrap();
    let output = run_agent_as(&comm, "fixture_tricks", "setupsends", None, &[]);
    let lines = outcomes(&output);
    // The setup sent 10, the cap: the first handling may send no more.
    assert_eq!(lines[0]["outcome"], "released", "{lines:?}");
    let reason = lines[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("at most 10 messages may be sent"),
        "{reason}"
    );
    // The next message (here, the same one again) starts afresh.
    assert_eq!(lines[1]["outcome"], "acknowledged", "{lines:?}");
    assert_eq!(comm.open().peek("planner").unwrap(), 11);
}

/// A message is handed to the plugin only while its claim's lease has the
/// time of its calls and the margin left, renewed if not: with leases far
/// shorter than the batch takes, and expired claims recovered all along,
/// no claim is lost and no message handled twice.
#[test]
fn leases_are_renewed_so_a_slow_batch_loses_no_claim() {
    let comm = TempComm::with_agents(&["planner", "worker"]);
    let mut q = comm.open();
    let mut ids = Vec::new();
    for _ in 0..16 {
        ids.push(send(&comm, r#""slow 500""#).id);
    }
    let bytes = std::fs::read(plugin("fixture_tricks")).unwrap();
    let policy = fmes::plugin::Policy::parse("time_limit = \"2s\"").unwrap();
    let mut runner = fmes::plugin::AgentRunner::from_bytes(
        runtime(),
        &bytes,
        "fixture_tricks",
        &comm.path,
        "worker",
        policy,
    )
    .unwrap();
    // Leases of (2 s + 1 s) * 2: the batch of 16 takes 8 s.
    runner.set_lease_margin(std::time::Duration::from_secs(1));
    let done = std::sync::atomic::AtomicBool::new(false);
    let report = std::thread::scope(|scope| {
        scope.spawn(|| {
            // Another process returning every claim whose lease ran out.
            let mut other = comm.open();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                other.recover().unwrap();
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        });
        let stop = std::sync::atomic::AtomicBool::new(false);
        let report = runner.run(true, &stop, |_, _| {});
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        report.unwrap()
    });
    assert_eq!(
        (report.acknowledged, report.failed, report.claims_lost),
        (16, 0, 0)
    );
    let mut replies: Vec<String> = q
        .receive("planner", None, None)
        .unwrap()
        .messages
        .into_iter()
        .map(|m| m.payload.trim_matches('"').to_string())
        .collect();
    replies.sort();
    ids.sort();
    assert_eq!(replies, ids, "each message handled once");
}

/// Errors quote what they are about (here the plugin's file name, in other
/// cases its import or function names): escaped, so that none of it can
/// drive the terminal.
#[test]
fn errors_about_a_plugin_cannot_drive_the_terminal() {
    let comm = TempComm::with_agents(&["planner", "worker"]);
    let path = comm
        .root
        .path()
        .join("evil\u{1b}]0;pwned\u{7}\u{202e}.wasm");
    std::fs::write(&path, "not wasm").unwrap();
    let output = comm
        .fmes()
        .args(["agent", "run"])
        .arg(&path)
        .args(["--as", "worker", "--once"])
        .output()
        .unwrap();
    let error = failure(&output, 1);
    assert!(error.contains("is not a WebAssembly component"), "{error}");
    assert!(
        error.contains(r"evil\u{1b}]0;pwned\u{7}\u{202e}.wasm"),
        "{error}"
    );
    assert!(
        !error.contains(['\u{1b}', '\u{7}', '\u{202e}']),
        "{error:?}"
    );
}

/// Runs `fmes [--json] agent run fixture_tricks --as worker --once` on one
/// message whose handler takes a second, and takes its claim away as soon
/// as it is made (put back in the mailbox, as a recovery would after the
/// runner was stopped past the lease).
fn run_losing_the_claim(json: bool) -> (TempComm, Output) {
    let comm = TempComm::with_agents(&["planner", "worker"]);
    send(&comm, r#""slow 1000""#);
    let mut command = comm.fmes();
    if json {
        command.arg("--json");
    }
    let child = command
        .args(["agent", "run"])
        .arg(plugin("fixture_tricks"))
        .args(["--as", "worker", "--once"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let inflight = comm.join("To_Worker/.inflight");
    let claim = loop {
        let found = std::fs::read_dir(&inflight)
            .into_iter()
            .flatten()
            .flatten()
            .next();
        if let Some(entry) = found {
            break entry.file_name().into_string().unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let stem = claim.split('~').next().unwrap();
    std::fs::rename(
        inflight.join(&claim),
        comm.join(&format!("To_Worker/{stem}~1.json")),
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
    (comm, output)
}

/// A claim lost while its message is handled: the runner says so, goes on,
/// and the message is handled again, not lost.
#[test]
fn a_claim_lost_while_handling_is_reported_and_the_runner_goes_on() {
    let (comm, output) = run_losing_the_claim(true);
    let lines = outcomes(&output);
    let handled: Vec<_> = lines.iter().map(|l| &l["outcome"]).collect();
    assert_eq!(handled, ["claim-lost", "acknowledged"], "{lines:?}");
    assert!(
        lines[0]["reason"]
            .as_str()
            .unwrap()
            .contains("holds no claim"),
        "{lines:?}"
    );
    assert!(
        stderr(&output).contains(
            "1 acknowledged, 0 failed (0 dead-lettered), 1 handled after their claim was lost"
        ),
        "{}",
        stderr(&output)
    );
    assert_eq!(comm.open().peek("worker").unwrap(), 0);

    // As text: one line for each handling.
    let (_, output) = run_losing_the_claim(false);
    let text = success(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains("but its claim was lost:")
            && lines[0].ends_with("; it may be handled again"),
        "{text}"
    );
    assert!(lines[1].ends_with(": acknowledged"), "{text}");
}
