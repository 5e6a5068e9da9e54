"""Errors: each WIT `queue-error` case arrives as its own exception, naming
what was wrong; loading problems and the sandbox's limits have theirs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import fmes


def test_bad_agent_names(comm: fmes.Comm) -> None:
    with pytest.raises(fmes.InvalidAgentName, match=r"'bad name'.*ASCII letters") as caught:
        comm.send("bad name", "coder", {})
    error = caught.value
    assert isinstance(error, fmes.QueueError) and isinstance(error, fmes.FmesError)
    assert error.kind == "invalid-agent-name" and error.name == "bad name"

    with pytest.raises(fmes.InvalidAgentName, match=r"'\.\./escape'"):
        comm.send("planner", "../escape", {})
    with pytest.raises(fmes.InvalidAgentName, match="''"):
        comm.receive("")
    # init checks every name before creating anything.
    with pytest.raises(fmes.InvalidAgentName, match="'a/b'"):
        comm.init(["fine", "a/b"])
    assert comm.agents() == ["coder", "planner"]


def test_unknown_agent_lists_the_known_ones(comm: fmes.Comm) -> None:
    with pytest.raises(fmes.UnknownAgent, match=r"'nobody'.*known agents: coder, planner") as caught:
        comm.send("planner", "nobody", {"x": 1})
    assert caught.value.known == ["coder", "planner"]
    assert caught.value.kind == "unknown-agent"
    with pytest.raises(fmes.UnknownAgent):
        comm.peek("nobody")
    with pytest.raises(fmes.UnknownAgent):
        comm.claim("nobody", "w1")


def test_invalid_json_payload(comm: fmes.Comm) -> None:
    with pytest.raises(fmes.InvalidPayload, match="not valid JSON") as caught:
        comm.send("planner", "coder", fmes.RawJson('{"unterminated": '))
    assert caught.value.kind == "invalid-payload"
    # Objects that JSON cannot hold never reach the queue.
    with pytest.raises(fmes.InvalidPayload, match="set"):
        comm.send("planner", "coder", {1, 2})
    with pytest.raises(fmes.InvalidPayload, match="NaN|nan|Out of range"):
        comm.send("planner", "coder", float("nan"))
    assert comm.peek("coder") == 0


def test_bad_priority_type_size_and_id(comm: fmes.Comm) -> None:
    with pytest.raises(fmes.InvalidPriority, match="invalid priority 10: use 1"):
        comm.send("planner", "coder", {}, priority=10)
    with pytest.raises(fmes.InvalidPriority, match="invalid priority 0"):
        comm.send("planner", "coder", {}, priority=0)
    with pytest.raises(fmes.InvalidPriority, match="invalid priority 300"):
        comm.send("planner", "coder", {}, priority=300)
    with pytest.raises(fmes.InvalidType, match="'NOT VALID'"):
        comm.send("planner", "coder", {}, message_type="NOT VALID")
    with pytest.raises(fmes.PayloadTooLarge, match="20 bytes, the limit is 10 bytes") as caught:
        comm.send("planner", "coder", "x" * 18, max_payload_bytes=10)
    assert (caught.value.size, caught.value.limit) == (20, 10)
    with pytest.raises(fmes.InvalidMessageId, match="'no/slashes'"):
        comm.send("planner", "coder", {}, id="no/slashes")
    assert comm.peek("coder") == 0


def test_claim_by_the_wrong_consumer(comm: fmes.Comm) -> None:
    comm.send("planner", "coder", "mine")
    (held,) = comm.claim("coder", "w1")
    for operation in (comm.ack, comm.release):
        with pytest.raises(fmes.NotFound, match=f"w2 holds no claim on {held.file}"):
            operation("coder", "w2", held)
    with pytest.raises(fmes.NotFound, match="w2 holds no claim"):
        comm.extend("coder", "w2", held, lease=60)
    # w1 still holds it.
    assert comm.ack("coder", "w1", held) == held.file


def test_bad_consumer_and_file_names(comm: fmes.Comm) -> None:
    sent = comm.send("planner", "coder", {})
    with pytest.raises(fmes.InvalidConsumer, match="'two words'"):
        comm.claim("coder", "two words")
    with pytest.raises(fmes.InvalidFileName, match=r"'\.\./To_Planner/x\.json'.*not a path"):
        comm.archive("coder", "../To_Planner/x.json")
    with pytest.raises(fmes.InvalidFileName):
        comm.ack("coder", "w1", "notes.txt")
    with pytest.raises(fmes.NotFound):
        comm.archive("coder", "5_missing.json")
    with pytest.raises(fmes.NotFound):
        comm.retry_dead_letter("coder", "5_missing.json")
    # Nothing was harmed.
    assert [m.id for m in comm.receive("coder")] == [sent.id]


def test_a_linked_mailbox_is_an_invalid_layout(comm: fmes.Comm, comm_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, comm_dir / "To_Intruder")
    with pytest.raises(fmes.InvalidLayout, match="To_Intruder"):
        comm.receive("intruder")
    with pytest.raises(fmes.InvalidLayout):
        comm.send("planner", "intruder", {})
    assert list(outside.iterdir()) == []


def test_python_side_argument_checks(comm: fmes.Comm) -> None:
    with pytest.raises(TypeError, match="list of agent names"):
        comm.init("planner")
    with pytest.raises(TypeError, match="agent must be a str"):
        comm.peek(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="file name or have a .file"):
        comm.archive("coder", 42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lease must be a finite, non-negative"):
        comm.claim("coder", "w1", lease=-1)
    with pytest.raises(ValueError, match="limit must be between 0 and"):
        comm.receive("coder", limit=-1)


def test_missing_comm_folder(tmp_path: Path, component: Path, cache_dir: Path) -> None:
    missing = tmp_path / "nowhere" / "_COMM"
    with pytest.raises(fmes.MissingComm, match=r"no _COMM folder at .*nowhere/_COMM.*create=True"):
        fmes.Comm(missing, component=component, cache_dir=cache_dir)
    # create=True makes it, parents included.
    fmes.Comm(missing, create=True, component=component, cache_dir=cache_dir).init(["a"])
    assert (missing / "To_A").is_dir()


def test_component_not_given(monkeypatch: pytest.MonkeyPatch, comm_dir: Path) -> None:
    monkeypatch.delenv("FMES_COMPONENT", raising=False)
    with pytest.raises(fmes.ComponentNotFound, match="set FMES_COMPONENT.*fmes component -o"):
        fmes.Comm(comm_dir, create=True)


def test_component_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, comm_dir: Path, component: Path, cache_dir: Path
) -> None:
    monkeypatch.setenv("FMES_COMPONENT", str(component))
    comm = fmes.Comm(comm_dir, create=True, cache_dir=cache_dir)
    assert comm.component == str(component)
    assert comm.init(["x"]) == ["x"]


def test_component_file_missing_or_wrong(tmp_path: Path, comm_dir: Path) -> None:
    with pytest.raises(fmes.ComponentNotFound, match="nope.wasm does not exist"):
        fmes.Comm(comm_dir, create=True, component=tmp_path / "nope.wasm", cache_dir=False)
    garbage = tmp_path / "garbage.wasm"
    garbage.write_bytes(b"this is not WebAssembly")
    with pytest.raises(fmes.ComponentLoadError, match="garbage.wasm is not a WebAssembly component"):
        fmes.Comm(comm_dir, create=True, component=garbage, cache_dir=False)
    # A component, but not the queue: the smallest valid one exports nothing.
    empty = tmp_path / "empty.wasm"
    empty.write_bytes(b"\x00asm\x0d\x00\x01\x00")
    with pytest.raises(fmes.ComponentLoadError, match="not the fmes queue component.*fmes:queue/admin@0.1.0"):
        fmes.Comm(comm_dir, create=True, component=empty, cache_dir=False)


def test_compiled_component_cache(tmp_path: Path, component: Path, comm_dir: Path) -> None:
    # Each process compiles at most once; the cache is seen by new processes.
    script = (
        "import sys, fmes\n"
        "cache = sys.argv[3] if sys.argv[3] != 'none' else False\n"
        "print(fmes.Comm(sys.argv[1], create=True, component=sys.argv[2], cache_dir=cache).init(['a']))\n"
    )

    default_cache = tmp_path / "default-cache"
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(fmes.__file__).parent.parent),
        "FMES_CACHE_DIR": str(default_cache),
    }

    def load(cache: str) -> None:
        done = subprocess.run(
            [sys.executable, "-c", script, str(comm_dir), str(component), cache],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr

    cache = tmp_path / "cache"
    load(str(cache))
    (compiled,) = cache.glob("*.cwasm")
    size = compiled.stat().st_size
    assert size > 0

    # A damaged entry is compiled anew and replaced, never trusted.
    compiled.write_bytes(b"garbage")
    load(str(cache))
    assert compiled.stat().st_size == size

    # cache_dir=False writes nowhere, not even in the default folder.
    load("none")
    assert not default_cache.exists()
    assert sorted(p.name for p in cache.iterdir()) == [compiled.name]


def test_time_limit(open_comm, comm_dir: Path) -> None:
    comm = open_comm()
    comm.init(["coder"])
    # Enough messages that reading them all takes far longer than 1 ms.
    for n in range(3000):
        message = {
            "id": f"m{n}",
            "from": "writer",
            "to": "coder",
            "type": "TASK",
            "priority": 5,
            "timestamp": "2026-01-01T00:00:00Z",
            "payload": {"n": n},
        }
        path = comm_dir / "To_Coder" / f"5_20260101_000000_writer_TASK_{n:05}.json"
        path.write_text(json.dumps(message), encoding="utf-8")
    hurried = open_comm(time_limit=0.001)
    with pytest.raises(fmes.TimeLimitExceeded, match="time limit of 0.001 s") as caught:
        hurried.receive("coder")
    assert isinstance(caught.value, fmes.ComponentError)
    # The stopped instance is replaced: the handle goes on working.
    assert hurried.peek("coder") == 3000
    assert len(comm.receive("coder", limit=5)) == 5


def test_memory_limit(open_comm, comm_dir: Path) -> None:
    comm = open_comm()
    comm.init(["coder"])
    huge = {
        "id": "big",
        "from": "writer",
        "to": "coder",
        "type": "TASK",
        "priority": 5,
        "timestamp": "2026-01-01T00:00:00Z",
        # 18 MB of JSON: more than the 16 MiB limit below holds at once.
        "payload": [1] * 6_000_000,
    }
    (comm_dir / "To_Coder" / "5_20260101_000000_writer_TASK.json").write_text(
        json.dumps(huge), encoding="utf-8"
    )
    small = open_comm(memory_limit=16 * 1024 * 1024)
    with pytest.raises(fmes.MemoryLimitExceeded, match="memory limit of 16777216 bytes"):
        small.receive("coder")
    assert small.peek("coder") == 1
    # With the default limit the same message is read.
    (message,) = comm.receive("coder")
    assert len(message.payload) == 6_000_000

    with pytest.raises(fmes.MemoryLimitExceeded, match="memory limit of 65536 bytes"):
        open_comm(memory_limit=65536).agents()
