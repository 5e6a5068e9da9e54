"""Python and the Rust `fmes` CLI in one `_COMM`, in both directions."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import fmes


def test_cli_sees_what_python_sends(comm: fmes.Comm, cli) -> None:
    payload = {"task": "review", "lines": [1, 2, 3], "text": "grüße"}
    sent = comm.send("planner", "coder", payload, message_type="REQUEST", priority=2)
    (seen,) = cli.json("receive", "coder")
    assert seen["id"] == sent.id
    assert seen["file"] == sent.file
    assert (seen["from"], seen["to"], seen["type"], seen["priority"]) == (
        "planner",
        "coder",
        "REQUEST",
        2,
    )
    assert seen["payload"] == payload
    assert seen["timestamp"] == sent.timestamp
    assert cli.ok("--json", "peek", "coder").strip() == "1"


def test_python_receives_what_the_cli_sends(comm: fmes.Comm, cli) -> None:
    (sent,) = cli.json(
        "send", "--from", "coder", "--to", "planner", "--type", "REPORT", "--priority", "4",
        '{"done": true, "tests": 12}',
    )
    (message,) = comm.receive("planner")
    assert message.id == sent["id"] and message.file == sent["file"]
    assert (message.sender, message.to, message.type, message.priority) == (
        "coder",
        "planner",
        "REPORT",
        4,
    )
    assert message.payload == {"done": True, "tests": 12}
    # Python archives it; the CLI sees an empty mailbox.
    comm.archive("planner", message)
    assert cli.json("receive", "planner") == []


def test_one_order_for_both(comm: fmes.Comm, cli) -> None:
    ids = []
    for n in range(6):
        if n % 2:
            ids.append(comm.send("planner", "coder", n, priority=1 + n % 3).id)
        else:
            (sent,) = cli.json(
                "send", "--from", "planner", "--to", "coder", "--priority", str(1 + n % 3), str(n)
            )
            ids.append(sent["id"])
    python_order = [m.id for m in comm.receive("coder")]
    cli_order = [m["id"] for m in cli.json("receive", "coder")]
    assert python_order == cli_order
    assert sorted(python_order) == sorted(ids)


def test_mailboxes_made_on_either_side(open_comm, cli) -> None:
    cli.ok("init", "planner")
    comm = open_comm()
    assert comm.agents() == ["planner"]
    comm.init(["coder"])
    assert cli.json("agents") == [["coder", "planner"]]


def test_python_claims_the_cli_acknowledges(comm: fmes.Comm, cli) -> None:
    sent = comm.send("planner", "coder", {"job": 1})
    (held,) = comm.claim("coder", "py-worker", lease=60)
    # Claimed: no reader sees it, from either side.
    assert cli.json("receive", "coder") == []
    (stats,) = [s for s in cli.json("stats") if s["agent"] == "coder"]
    assert (stats["ready"], stats["in_flight"]) == (0, 1)

    # The CLI cannot acknowledge it for another consumer...
    refused = cli.fails("ack", "coder", "--consumer", "cli-worker", held.file)
    assert "cli-worker holds no claim on" in refused
    # ...but can for the one that holds it.
    cli.ok("ack", "coder", "--consumer", "py-worker", held.file)
    assert (Path(cli.comm_dir) / "ARCHIVE" / sent.file).is_file()
    assert comm.stats()[0].archived == 1


def test_the_cli_claims_python_releases_and_acknowledges(comm: fmes.Comm, cli) -> None:
    (sent,) = cli.json("send", "--from", "planner", "--to", "coder", '{"job": 2}')
    (claimed,) = cli.json("claim", "coder", "--consumer", "cli-worker", "--lease", "10m")
    assert claimed["id"] == sent["id"] and claimed["deliveries"] == 1
    assert comm.receive("coder").messages == []
    with pytest.raises(fmes.NotFound, match="py-worker holds no claim"):
        comm.ack("coder", "py-worker", claimed["file"])

    released = comm.release("coder", "cli-worker", claimed["file"])
    assert not released.dead_lettered
    (back,) = cli.json("receive", "coder")
    assert back["id"] == sent["id"] and back["file"] == released.file

    (again,) = comm.claim("coder", "py-worker")
    assert again.deliveries == 2
    assert cli.json("claim", "coder", "--consumer", "late") == []
    comm.ack("coder", "py-worker", again)
    assert cli.json("stats")[0]["archived"] == 1


def test_claims_from_both_sides_never_share_a_message(comm: fmes.Comm, cli) -> None:
    ids = {comm.send("planner", "coder", n).id for n in range(10)}
    by_cli = {m["id"] for m in cli.json("claim", "coder", "--consumer", "cli", "--limit", "4")}
    by_python = {c.message.id for c in comm.claim("coder", "py", limit=100)}
    assert len(by_cli) == 4 and len(by_python) == 6
    assert by_cli | by_python == ids and not by_cli & by_python


def test_dead_letters_across_sides(open_comm, cli) -> None:
    comm = open_comm(max_deliveries=1)
    comm.init(["planner", "coder"])
    sent = comm.send("planner", "coder", "poison")
    released = comm.release("coder", "w1", comm.claim("coder", "w1").claimed[0])
    assert released.dead_lettered

    (letter,) = cli.json("dead", "list", "coder")
    assert letter["file"] == released.file and letter["deliveries"] == 1
    cli.ok("dead", "retry", "coder", released.file)
    (message,) = comm.receive("coder")
    assert message.id == sent.id
    assert comm.dead_letters() == []


def test_cli_recovers_an_expired_python_claim(comm: fmes.Comm, cli) -> None:
    sent = comm.send("planner", "coder", "abandoned")
    comm.claim("coder", "crashed", lease=0.001)
    time.sleep(0.05)
    cli.ok("recover")
    (back,) = comm.receive("coder")
    assert back.id == sent.id
    (claimed,) = cli.json("claim", "coder", "--consumer", "cli")
    assert claimed["deliveries"] == 2


def test_python_reads_what_the_python_format_writer_wrote(comm: fmes.Comm, comm_dir: Path) -> None:
    # A message as the original Python implementation names and writes it.
    legacy = {
        "id": "0f6f2f0e-4c1b-4d9e-9a8e-2b1d8f0c7a11",
        "from": "claude",
        "to": "coder",
        "type": "TASK",
        "priority": 5,
        "timestamp": "2026-11-23T10:15:00Z",
        "payload": {"task": "legacy"},
        "reply_to": "claude",
    }
    name = "5_20261123_111500_claude_TASK.json"
    (comm_dir / "To_Coder" / name).write_text(json.dumps(legacy, indent=2), encoding="utf-8")
    (message,) = comm.receive("coder")
    assert message.file == name and message.payload == {"task": "legacy"}
    assert message.raw["reply_to"] == "claude"
