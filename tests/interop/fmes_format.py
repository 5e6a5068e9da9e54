#!/usr/bin/env python3
"""The F-MES file format as the existing Python implementation writes and reads it.

This is a stand-in for that implementation, written from /work/shared/FORMAT.md,
for the interop tests in tests/e2e/interop.rs: fmes must read what this writes,
and this reader must read what fmes writes. It keeps the Python behaviour,
weaknesses included (local-time file names, names that can collide, no claim),
and uses the standard library only (Python 3.11).

Used as a module::

    fmes = FileMessageExchange("/path/to/_COMM", agents=["claude", "cursor"])
    path = fmes.send("claude", "cursor", {"task": "..."}, message_type="TASK", priority=5)
    for message in fmes.receive("cursor"):
        fmes.archive(message["_path"])

Used as a command (what the Rust tests do)::

    fmes_format.py --comm DIR [--agents a,b,c] send FROM TO PAYLOAD_JSON
        [--type T] [--priority N] [--timestamp YYYY-MM-DDTHH:MM:SSZ]
        [--local-stamp YYYYmmdd_HHMMSS]
    fmes_format.py --comm DIR receive AGENT [--type T]   one JSON object per line
    fmes_format.py --comm DIR peek AGENT                 the count
    fmes_format.py --comm DIR archive PATH               the archived path, or nothing
    fmes_format.py --comm DIR broadcast FROM PAYLOAD_JSON [--type T]
    fmes_format.py --comm DIR cleanup [--max-age-hours H]

`send` and `broadcast` print each written message (as stored, plus `_path`)
as one JSON line. `--timestamp` and `--local-stamp` replace the clock for the
`timestamp` field and for the local time in the file name, so a test can
write the files of a sender in another time zone. Without `--agents`, the
configured agents are those whose mailbox already exists in DIR, or the four
defaults if there is none.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import sys
import time
import uuid
from datetime import datetime, timezone

DEFAULT_AGENTS = ["antigravity", "claude", "cursor", "vscode"]


class FileMessageExchange:
    """File mailboxes in a `_COMM` folder: one `To_<Name>/` per agent, one JSON file per message."""

    def __init__(self, comm_dir, agents=None, poll_interval=2.0):
        self.comm_dir = str(comm_dir)
        self.agents = list(agents) if agents is not None else list(DEFAULT_AGENTS)
        self.poll_interval = poll_interval
        self.archive_dir = os.path.join(self.comm_dir, "ARCHIVE")
        os.makedirs(self.archive_dir, exist_ok=True)
        for agent in self.agents:
            os.makedirs(self._mailbox(agent), exist_ok=True)

    def _mailbox(self, agent):
        return os.path.join(self.comm_dir, "To_" + agent.capitalize())

    # Clocks, separate so the command line can stand in for another time zone.
    def _local_stamp(self):
        return time.strftime("%Y%m%d_%H%M%S", time.localtime())

    def _utc_timestamp(self):
        return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def send(self, from_, to, payload, message_type="TASK", priority=5):
        """Writes one message into `To_<To>/` and returns its path."""
        mailbox = self._mailbox(to)
        if not os.path.isdir(mailbox):
            raise ValueError(f"unknown agent {to!r}: no mailbox {mailbox}")
        message = {
            "id": str(uuid.uuid4()),
            "from": from_,
            "to": to,
            "type": message_type,
            "priority": priority,
            "timestamp": self._utc_timestamp(),
            "payload": payload,
        }
        name = f"{priority}_{self._local_stamp()}_{from_}_{message_type}.json"
        path = os.path.join(mailbox, name)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(message, f, indent=2, ensure_ascii=False)
        os.rename(tmp, path)
        return path

    def receive(self, agent, message_type=None):
        """Every message in the mailbox, in file name order, each with its `_path`."""
        messages = []
        for path in sorted(glob.glob(os.path.join(glob.escape(self._mailbox(agent)), "*.json"))):
            if not os.path.isfile(path):
                continue
            try:
                with open(path, encoding="utf-8") as f:
                    message = json.load(f)
            except (json.JSONDecodeError, UnicodeDecodeError, OSError):
                continue
            if message_type and message.get("type") != message_type:
                continue
            message["_path"] = path
            messages.append(message)
        return messages

    def archive(self, path):
        """Moves a message file into ARCHIVE/; returns the new path, or None if it is gone."""
        if not os.path.exists(path):
            return None
        os.makedirs(self.archive_dir, exist_ok=True)
        name = os.path.basename(path)
        dest = os.path.join(self.archive_dir, name)
        if os.path.exists(dest):
            stem = name[: -len(".json")] if name.endswith(".json") else name
            dest = os.path.join(self.archive_dir, f"{stem}_{uuid.uuid4().hex[:6]}.json")
        shutil.move(path, dest)
        return dest

    def peek(self, agent):
        """How many `*.json` files wait in the mailbox."""
        return sum(
            1
            for path in glob.glob(os.path.join(glob.escape(self._mailbox(agent)), "*.json"))
            if os.path.isfile(path)
        )

    def broadcast(self, from_, payload, message_type="ALERT"):
        """Sends a copy at priority 1 to every configured agent but the sender; returns the paths."""
        return [
            self.send(from_, agent, payload, message_type=message_type, priority=1)
            for agent in self.agents
            if agent.lower() != from_.lower()
        ]

    def cleanup_stale(self, max_age_hours=24):
        """Archives every message whose file is older than the age; returns how many."""
        cutoff = time.time() - max_age_hours * 3600
        archived = 0
        for agent in self.agents:
            for path in glob.glob(os.path.join(glob.escape(self._mailbox(agent)), "*.json")):
                try:
                    if os.path.getmtime(path) < cutoff and self.archive(path):
                        archived += 1
                except OSError:
                    continue
        return archived


class _OverriddenClock(FileMessageExchange):
    """The exchange with fixed clock readings, for writing another sender's files."""

    def __init__(self, comm_dir, agents, local_stamp=None, timestamp=None):
        super().__init__(comm_dir, agents)
        self.fixed_local_stamp = local_stamp
        self.fixed_timestamp = timestamp

    def _local_stamp(self):
        return self.fixed_local_stamp or super()._local_stamp()

    def _utc_timestamp(self):
        return self.fixed_timestamp or super()._utc_timestamp()


def _existing_agents(comm_dir):
    try:
        names = sorted(os.listdir(comm_dir))
    except FileNotFoundError:
        return []
    return [
        name[len("To_"):].lower()
        for name in names
        if name.startswith("To_") and len(name) > 3 and os.path.isdir(os.path.join(comm_dir, name))
    ]


def _print_json(value):
    print(json.dumps(value, ensure_ascii=False))


def _print_written(paths):
    for path in paths:
        with open(path, encoding="utf-8") as f:
            message = json.load(f)
        message["_path"] = path
        _print_json(message)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comm", required=True, help="the _COMM folder")
    parser.add_argument("--agents", help="configured agents, comma-separated")
    commands = parser.add_subparsers(dest="command", required=True)

    send = commands.add_parser("send")
    send.add_argument("from_", metavar="FROM")
    send.add_argument("to", metavar="TO")
    send.add_argument("payload", metavar="PAYLOAD_JSON")
    send.add_argument("--type", dest="message_type", default="TASK")
    send.add_argument("--priority", type=int, default=5)
    send.add_argument("--timestamp", help="the timestamp field, YYYY-MM-DDTHH:MM:SSZ")
    send.add_argument("--local-stamp", help="the local time in the name, YYYYmmdd_HHMMSS")

    receive = commands.add_parser("receive")
    receive.add_argument("agent")
    receive.add_argument("--type", dest="message_type")

    peek = commands.add_parser("peek")
    peek.add_argument("agent")

    archive = commands.add_parser("archive")
    archive.add_argument("path")

    broadcast = commands.add_parser("broadcast")
    broadcast.add_argument("from_", metavar="FROM")
    broadcast.add_argument("payload", metavar="PAYLOAD_JSON")
    broadcast.add_argument("--type", dest="message_type", default="ALERT")

    cleanup = commands.add_parser("cleanup")
    cleanup.add_argument("--max-age-hours", type=float, default=24)

    args = parser.parse_args(argv)
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(encoding="utf-8")

    if args.agents is not None:
        agents = [a for a in args.agents.split(",") if a]
    else:
        agents = _existing_agents(args.comm) or list(DEFAULT_AGENTS)

    if args.command == "send":
        exchange = _OverriddenClock(args.comm, agents, args.local_stamp, args.timestamp)
        path = exchange.send(
            args.from_,
            args.to,
            json.loads(args.payload),
            message_type=args.message_type,
            priority=args.priority,
        )
        _print_written([path])
        return 0

    exchange = FileMessageExchange(args.comm, agents)
    if args.command == "receive":
        for message in exchange.receive(args.agent, args.message_type):
            _print_json(message)
    elif args.command == "peek":
        print(exchange.peek(args.agent))
    elif args.command == "archive":
        archived = exchange.archive(args.path)
        if archived is not None:
            print(archived)
    elif args.command == "broadcast":
        _print_written(exchange.broadcast(args.from_, json.loads(args.payload), args.message_type))
    elif args.command == "cleanup":
        print(exchange.cleanup_stale(args.max_age_hours))
    return 0


if __name__ == "__main__":
    sys.exit(main())
