"""The Python API over the component: every operation, round trips and results."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

import fmes


def test_init_and_agents(open_comm, comm_dir: Path) -> None:
    comm = open_comm()
    assert comm.init(["planner", "Coder"]) == ["planner", "Coder"]
    # Existing mailboxes are kept, and not reported as created.
    assert comm.init(["planner", "reviewer"]) == ["reviewer"]
    assert comm.agents() == ["coder", "planner", "reviewer"]
    assert sorted(p.name for p in comm_dir.iterdir()) == [
        "ARCHIVE",
        "To_Coder",
        "To_Planner",
        "To_Reviewer",
    ]


def test_init_without_names_creates_the_python_defaults(open_comm) -> None:
    comm = open_comm()
    comm.init()
    assert comm.agents() == ["antigravity", "claude", "cursor", "vscode"]


def test_send_receive_archive_round_trip(comm: fmes.Comm, comm_dir: Path) -> None:
    payload = {"task": "write the tests", "files": ["a.py", "b.py"], "note": "naïve ✓", "n": 3}
    sent = comm.send("planner", "coder", payload, priority=3)
    assert isinstance(sent, fmes.Message)
    assert (sent.sender, sent.to, sent.type, sent.priority) == ("planner", "coder", "TASK", 3)
    assert sent.payload == payload
    assert sent.file.startswith("3_") and sent.file.endswith(".json")
    assert (comm_dir / "To_Coder" / sent.file).is_file()
    assert sent.raw["from"] == "planner" and sent.raw["payload"] == payload
    assert sent.sent_at.tzinfo is not None

    # The file holds the format's fields, as the Python implementation reads them.
    stored = json.loads((comm_dir / "To_Coder" / sent.file).read_text(encoding="utf-8"))
    assert stored["id"] == sent.id and stored["payload"] == payload

    assert comm.peek("coder") == 1
    received = comm.receive("coder")
    assert received.messages == [sent]
    assert received.malformed == []
    assert list(received) == [sent] and len(received) == 1

    archived = comm.archive("coder", sent)
    assert archived == sent.file
    assert (comm_dir / "ARCHIVE" / archived).is_file()
    assert comm.peek("coder") == 0
    assert list(comm.receive("coder")) == []


def test_delivery_order_is_priority_then_time(comm: fmes.Comm) -> None:
    first = comm.send("planner", "coder", 1)
    urgent = comm.send("planner", "coder", 2, priority=1)
    second = comm.send("planner", "coder", 3)
    assert [m.id for m in comm.receive("coder")] == [urgent.id, first.id, second.id]


def test_payloads_of_every_json_kind(comm: fmes.Comm) -> None:
    for payload in ["text", 42, 1.5, None, True, [1, [2]], {"nested": {"deep": []}}]:
        sent = comm.send("planner", "coder", payload)
        assert sent.payload == payload
    assert [m.payload for m in comm.receive("coder")] == [
        "text",
        42,
        1.5,
        None,
        True,
        [1, [2]],
        {"nested": {"deep": []}},
    ]


def test_raw_json_is_sent_as_written(comm: fmes.Comm) -> None:
    text = ' { "task" : [1, 2] } '
    # A plain str is a JSON string; RawJson is JSON text, sent without encoding.
    assert comm.send("planner", "coder", text).payload == text
    assert comm.send("planner", "coder", fmes.RawJson(text)).payload == {"task": [1, 2]}


def test_receive_filters_by_type_and_limit(comm: fmes.Comm) -> None:
    comm.send("planner", "coder", 1, message_type="REQUEST")
    task = comm.send("planner", "coder", 2)
    comm.send("planner", "coder", 3, message_type="REQUEST")
    assert [m.payload for m in comm.receive("coder", message_type="REQUEST")] == [1, 3]
    assert [m.id for m in comm.receive("coder", message_type="TASK")] == [task.id]
    assert [m.payload for m in comm.receive("coder", limit=2)] == [1, 2]


def test_receive_pages_reads_a_mailbox_page_by_page(comm: fmes.Comm, comm_dir: Path) -> None:
    for i in range(25):
        comm.send("planner", "coder", i, priority=1 + i % 9)
    (comm_dir / "To_Coder" / "junk.json").write_text("nope", encoding="utf-8")
    whole = comm.receive("coder")
    pages = list(comm.receive_pages("coder", page_size=10))
    assert len(pages) == 3
    assert [m for page in pages for m in page] == whole.messages
    assert [bad for page in pages for bad in page.malformed] == whole.malformed
    assert len(whole.malformed) == 1
    with pytest.raises(ValueError, match="page_size must be between 0 and"):
        comm.receive_pages("coder", page_size=-1)
    by_time = list(comm.receive_pages("coder", page_size=10, by_send_time=True))
    in_send_order = sorted(whole.messages, key=lambda m: m.file[2:])
    assert [m.file for page in by_time for m in page] == [m.file for m in in_send_order]
    assert [m.priority for m in in_send_order] != [m.priority for m in whole.messages]
    with pytest.raises(TypeError, match="by_send_time must be True or False"):
        comm.receive_pages("coder", by_send_time="yes")


def test_broadcast_reaches_every_other_mailbox(comm: fmes.Comm) -> None:
    comm.init(["reviewer"])
    copies = comm.broadcast("planner", {"alert": "build broken"})
    assert [(c.to, c.type, c.priority) for c in copies] == [
        ("coder", "ALERT", 1),
        ("reviewer", "ALERT", 1),
    ]
    assert comm.peek("planner") == 0
    assert [m.payload for m in comm.receive("reviewer")] == [{"alert": "build broken"}]


def test_send_with_an_id_is_idempotent(comm: fmes.Comm) -> None:
    first = comm.send("planner", "coder", {"n": 1}, id="job-17")
    again = comm.send("planner", "coder", {"n": 1}, id="job-17")
    assert first.id == again.id == "job-17"
    assert first.file == again.file
    assert comm.peek("coder") == 1


def test_claim_ack(comm: fmes.Comm, comm_dir: Path) -> None:
    a = comm.send("planner", "coder", "a")
    b = comm.send("planner", "coder", "b")
    batch = comm.claim("coder", "w1", limit=1, lease=60)
    assert isinstance(batch, fmes.ClaimBatch) and len(batch) == 1
    (held,) = batch
    assert held.message == a and held.file == a.file and held.deliveries == 1
    now_ms = time.time() * 1000
    assert now_ms + 50_000 < held.lease_expires_ms < now_ms + 70_000
    assert held.lease_expires.timestamp() == pytest.approx(held.lease_expires_ms / 1000)
    # Claimed messages leave the mailbox: readers no longer see them.
    assert [m.id for m in comm.receive("coder")] == [b.id]

    assert comm.ack("coder", "w1", held) == a.file
    assert (comm_dir / "ARCHIVE" / a.file).is_file()
    # Acknowledged once: a second ack finds no claim.
    with pytest.raises(fmes.NotFound):
        comm.ack("coder", "w1", held)

    rest = comm.claim("coder", "w2", limit=10, lease=timedelta(minutes=1))
    assert [c.message.id for c in rest] == [b.id]
    assert comm.claim("coder", "w3").claimed == []


def test_release_puts_the_message_back_with_its_delivery_count(comm: fmes.Comm) -> None:
    sent = comm.send("planner", "coder", "retry me")
    (held,) = comm.claim("coder", "w1")
    released = comm.release("coder", "w1", held)
    assert released == fmes.Released(file=released.file, dead_lettered=False)
    assert [m.id for m in comm.receive("coder")] == [sent.id]
    (again,) = comm.claim("coder", "w2")
    assert again.message.id == sent.id and again.deliveries == 2
    # Given back unbegun, the delivery does not count.
    assert comm.give_back("coder", "w2", again) == released.file
    (third,) = comm.claim("coder", "w3")
    assert third.deliveries == 2


def test_extend_moves_the_lease_end(comm: fmes.Comm) -> None:
    comm.send("planner", "coder", "long job")
    (held,) = comm.claim("coder", "w1", lease=10)
    new_end = comm.extend("coder", "w1", held, lease=3600)
    assert new_end > held.lease_expires_ms + 3_000_000
    # The claim is still w1's, under the same file name.
    assert comm.ack("coder", "w1", held.file)


def test_recover_returns_expired_claims(comm: fmes.Comm) -> None:
    sent = comm.send("planner", "coder", "abandoned")
    comm.claim("coder", "crashed-worker", lease=0.001)
    time.sleep(0.05)
    report = comm.recover()
    assert report == fmes.RecoverReport(
        returned=1, dead_lettered=0, finished_moves=0, removed_temporary=0
    )
    assert [m.id for m in comm.receive("coder")] == [sent.id]


def test_delivery_limit_and_dead_letters(comm: fmes.Comm) -> None:
    comm.configure(max_deliveries=1)
    sent = comm.send("planner", "coder", "poison")
    (held,) = comm.claim("coder", "w1")
    released = comm.release("coder", "w1", held)
    assert released.dead_lettered

    (letter,) = comm.dead_letters()
    assert (letter.agent, letter.file, letter.deliveries) == ("coder", released.file, 1)
    assert letter.reason and letter.dead_at_ms > 0
    assert comm.dead_letters("planner") == []
    assert comm.stats()[0].dead == 1
    assert list(comm.dead_letter_pages("coder", page_size=1)) == [[letter]]
    assert list(comm.dead_letter_pages("planner")) == [[]]
    with pytest.raises(ValueError, match="page_size must be between 0 and"):
        comm.dead_letter_pages("coder", page_size=-1)

    back = comm.retry_dead_letter("coder", letter)
    assert [m.id for m in comm.receive("coder")] == [sent.id]
    assert [m.file for m in comm.receive("coder")] == [back]

    comm.release("coder", "w1", comm.claim("coder", "w1").claimed[0])
    (letter,) = comm.dead_letters("coder")
    assert comm.purge_dead_letters("coder", letter.file) == [letter]
    assert comm.dead_letters() == []


def test_malformed_files_are_reported_and_dead_lettered(comm: fmes.Comm, comm_dir: Path) -> None:
    good = comm.send("planner", "coder", "fine")
    (comm_dir / "To_Coder" / "0_broken.json").write_text("{not json", encoding="utf-8")
    received = comm.receive("coder")
    assert [m.id for m in received] == [good.id]
    (bad,) = received.malformed
    assert bad.file == "0_broken.json" and "JSON" in bad.reason

    batch = comm.claim("coder", "w1", limit=5)
    assert [c.message.id for c in batch] == [good.id]
    assert [m.file for m in batch.dead_lettered] == ["0_broken.json"]
    assert [d.file for d in comm.dead_letters("coder")] == ["0_broken.json"]
    assert [d.file for d in comm.purge_dead_letters(None)] == ["0_broken.json"]


def test_cleanup_archives_old_messages(comm: fmes.Comm, comm_dir: Path) -> None:
    old = comm.send("planner", "coder", "old")
    new = comm.send("planner", "coder", "new")
    two_days_ago = time.time() - 2 * 86400
    os.utime(comm_dir / "To_Coder" / old.file, (two_days_ago, two_days_ago))
    report = comm.cleanup(max_age=timedelta(hours=24))
    assert report == fmes.CleanupReport(archived=1, removed_temporary=0)
    assert [m.id for m in comm.receive("coder")] == [new.id]
    assert comm.cleanup(max_age=3600).archived == 0


def test_stats(comm: fmes.Comm) -> None:
    comm.send("planner", "coder", 1)
    comm.send("planner", "coder", 2)
    comm.send("planner", "coder", 3)
    (held,) = comm.claim("coder", "w1")
    comm.ack("coder", "w1", held)
    comm.claim("coder", "w1")
    coder, planner = comm.stats()
    assert (coder.agent, coder.ready, coder.in_flight, coder.dead, coder.archived) == (
        "coder",
        1,
        1,
        0,
        1,
    )
    assert coder.oldest_ready_age_ms is not None and coder.oldest_ready_age_ms >= 0
    assert planner == fmes.MailboxStats("planner", 0, 0, 0, 0, None)


def test_configure_without_durability_still_works(comm: fmes.Comm) -> None:
    comm.configure(durable=False)
    for n in range(20):
        comm.send("planner", "coder", n)
    assert [m.payload for m in comm.receive("coder")] == list(range(20))


def test_one_comm_shared_by_threads(comm: fmes.Comm) -> None:
    def sender(name: str) -> None:
        for n in range(25):
            comm.send(name, "coder", {"from": name, "n": n})

    threads = [threading.Thread(target=sender, args=(f"s{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    received = comm.receive("coder")
    assert len(received) == 100
    # Each sender's messages keep their order.
    for i in range(4):
        mine = [m.payload["n"] for m in received if m.sender == f"s{i}"]
        assert mine == list(range(25))


def test_concurrent_claimers_each_get_distinct_messages(open_comm, comm: fmes.Comm) -> None:
    ids = {comm.send("planner", "coder", n).id for n in range(40)}
    workers = [open_comm() for _ in range(4)]
    got: list = [[] for _ in workers]

    def work(i: int) -> None:
        while True:
            batch = workers[i].claim("coder", f"w{i}", limit=3)
            if not batch.claimed:
                return
            for held in batch:
                got[i].append(held.message.id)
                workers[i].ack("coder", f"w{i}", held)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [m for mine in got for m in mine]
    assert sorted(everything) == sorted(ids)


def test_a_closed_comm_refuses_calls(comm: fmes.Comm) -> None:
    with comm:
        assert comm.peek("coder") == 0
    with pytest.raises(fmes.FmesError, match="closed"):
        comm.peek("coder")


def test_the_package_exports_every_public_name_of_its_modules() -> None:
    from fmes import comm, errors, types

    for module in (comm, errors, types):
        for name in module.__all__:
            assert name in fmes.__all__ and getattr(fmes, name) is getattr(module, name), name
