//! The weakness that lost 999 of 1,000 Python sends: many sends with the same
//! sender, type and priority at once, from several processes.

use std::collections::HashSet;
use std::process::Command;

use fmes::{Comm, SendRequest};

use crate::support::*;

const PROCESSES: usize = 4;
const SENDS_PER_PROCESS: usize = 1_250;
/// Set in the child processes this test starts: the `_COMM` to send into.
const CHILD_COMM: &str = "FMES_TEST_BURST_COMM";
const CHILD_INDEX: &str = "FMES_TEST_BURST_INDEX";

/// In a child process: send this process's share as fast as possible.
fn send_share(comm: &str, index: usize) {
    let mut q = Comm::open_with(runtime(), comm).unwrap();
    for i in 0..SENDS_PER_PROCESS {
        let payload = format!(r#"{{"process": {index}, "seq": {i}}}"#);
        q.send(&SendRequest::new("burst", "sink", payload)).unwrap();
    }
}

#[test]
fn five_thousand_sends_from_four_processes_all_arrive_once() {
    if let (Ok(comm), Ok(index)) = (std::env::var(CHILD_COMM), std::env::var(CHILD_INDEX)) {
        return send_share(&comm, index.parse().unwrap());
    }
    let comm = TempComm::with_agents(&["burst", "sink"]);
    // Warm the compiled-component cache so the children start sending together.
    runtime();
    let children: Vec<_> = (0..PROCESSES)
        .map(|index| {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "burst::five_thousand_sends_from_four_processes_all_arrive_once",
                    "--nocapture",
                ])
                .env(CHILD_COMM, &comm.path)
                .env(CHILD_INDEX, index.to_string())
                // The child's own test-harness summary would read like a second run.
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }

    let files = comm.json_files("To_Sink");
    assert_eq!(files.len(), PROCESSES * SENDS_PER_PROCESS);
    let received = comm.open().receive("sink", None, None).unwrap();
    assert!(received.malformed.is_empty());
    assert_eq!(received.messages.len(), PROCESSES * SENDS_PER_PROCESS);
    let ids: HashSet<&str> = received.messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids.len(), PROCESSES * SENDS_PER_PROCESS, "every id once");
    let sent: HashSet<String> = received
        .messages
        .iter()
        .map(|m| m.payload.clone())
        .collect();
    for index in 0..PROCESSES {
        for i in 0..SENDS_PER_PROCESS {
            assert!(sent.contains(&format!(r#"{{"process":{index},"seq":{i}}}"#)));
        }
    }
    // Each process's messages arrive in the order it sent them.
    let mut next = [0usize; PROCESSES];
    for message in &received.messages {
        let payload: serde_json::Value = serde_json::from_str(&message.payload).unwrap();
        let index = payload["process"].as_u64().unwrap() as usize;
        assert_eq!(payload["seq"].as_u64().unwrap() as usize, next[index]);
        next[index] += 1;
    }
}
