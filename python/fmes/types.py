"""What fmes operations return: plain, immutable dataclasses.

Payloads are Python objects: the JSON text the queue stores is decoded with
:func:`json.loads` when a message is read, and encoded with :func:`json.dumps`
when one is sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, Iterator, List, Optional

__all__ = [
    "Message",
    "MalformedFile",
    "Received",
    "Claimed",
    "ClaimBatch",
    "Released",
    "RecoverReport",
    "CleanupReport",
    "DeadLetter",
    "MailboxStats",
    "RawJson",
]


class RawJson(str):
    """JSON text to send as it is, without :func:`json.dumps`.

    ``comm.send("a", "b", RawJson('{"task": 1}'))`` stores the object
    ``{"task": 1}``; the queue checks that the text is valid JSON.
    """

    __slots__ = ()


def _millis_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


@dataclass(frozen=True)
class Message:
    """One message, as stored in a mailbox (or claimed from one)."""

    #: Lower-case hyphenated UUID (version 4), or the id given to ``send``.
    id: str
    #: The sender's agent name, as the sender spelled it (the JSON field ``from``).
    sender: str
    #: The recipient's agent name, as the sender spelled it.
    to: str
    #: The message type: ``TASK``, ``REPORT``, ``REQUEST``, ``ALERT``...
    type: str
    #: 1 is the most urgent, 9 the least.
    priority: int
    #: UTC time of sending, ``YYYY-MM-DDTHH:MM:SSZ``.
    timestamp: str
    #: The body, decoded from JSON.
    payload: Any
    #: The file name inside the recipient's mailbox: what ``archive``,
    #: ``ack``, ``release`` and ``extend`` take.
    file: str
    #: The whole stored JSON object, with any extra fields another writer added.
    raw: Dict[str, Any] = field(repr=False)

    @property
    def sent_at(self) -> datetime:
        """The time of sending as an aware UTC datetime."""
        return datetime.strptime(self.timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=timezone.utc
        )


@dataclass(frozen=True)
class MalformedFile:
    """A file in a mailbox that is not a readable message."""

    file: str
    #: Why it could not be read.
    reason: str


@dataclass(frozen=True)
class Received:
    """What ``receive`` read; iterating over it yields the messages."""

    #: Messages in delivery order.
    messages: List[Message]
    #: Files that looked like messages but could not be read.
    malformed: List[MalformedFile]

    def __iter__(self) -> Iterator[Message]:
        return iter(self.messages)

    def __len__(self) -> int:
        return len(self.messages)


@dataclass(frozen=True)
class Claimed:
    """One claimed message, held by one consumer until its lease ends."""

    message: Message
    #: Times it has been handed out, this one included.
    deliveries: int
    #: End of the lease, in milliseconds since 1970 (UTC).
    lease_expires_ms: int

    @property
    def file(self) -> str:
        """The message's file name, as ``ack``, ``release`` and ``extend`` take it."""
        return self.message.file

    @property
    def lease_expires(self) -> datetime:
        """End of the lease as an aware UTC datetime."""
        return _millis_to_datetime(self.lease_expires_ms)


@dataclass(frozen=True)
class ClaimBatch:
    """What one ``claim`` did; iterating over it yields the claimed messages."""

    #: Messages now held by the consumer, in delivery order.
    claimed: List[Claimed]
    #: Files met on the way that are not messages, moved to the dead letters.
    dead_lettered: List[MalformedFile]

    def __iter__(self) -> Iterator[Claimed]:
        return iter(self.claimed)

    def __len__(self) -> int:
        return len(self.claimed)


@dataclass(frozen=True)
class Released:
    """Where a released message went."""

    #: Its new file name: in the mailbox, or in the dead letters.
    file: str
    #: True if it was at its delivery limit and went to the dead letters.
    dead_lettered: bool


@dataclass(frozen=True)
class RecoverReport:
    """What ``recover`` did."""

    #: Expired claims returned to their mailbox.
    returned: int
    #: Expired claims at their delivery limit, moved to the dead letters.
    dead_lettered: int
    #: Moves into ``ARCHIVE/`` or the dead letters that a stopped process began, completed.
    finished_moves: int
    #: Temporary files of stopped writers removed (older than ten minutes).
    removed_temporary: int


@dataclass(frozen=True)
class CleanupReport:
    """What ``cleanup`` did."""

    #: Messages archived because their file was older than the age given.
    archived: int
    #: Temporary files of crashed writers removed (older than ten minutes).
    removed_temporary: int


@dataclass(frozen=True)
class DeadLetter:
    """One dead letter: a file that is not a message, or a message past its delivery limit."""

    #: The agent whose mailbox it came from.
    agent: str
    #: Its file name in the dead-letter folder.
    file: str
    #: Why it is there.
    reason: str
    #: Times it had been handed out.
    deliveries: int
    #: When it was moved there (ms since 1970; 0 if unknown).
    dead_at_ms: int


@dataclass(frozen=True)
class MailboxStats:
    """Counts for one mailbox."""

    agent: str
    #: Messages waiting in the mailbox.
    ready: int
    #: Messages claimed and not yet acknowledged, released or expired.
    in_flight: int
    #: Dead letters of this mailbox.
    dead: int
    #: Archived messages addressed to this agent.
    archived: int
    #: Age of the oldest waiting message in milliseconds, or None when none waits.
    oldest_ready_age_ms: Optional[int]


def message_from_wit(record: Any) -> Message:
    """A :class:`Message` from the WIT ``message`` record."""
    return Message(
        id=record.id,
        sender=getattr(record, "from"),
        to=record.to,
        type=record.type,
        priority=record.priority,
        timestamp=record.timestamp,
        payload=json.loads(record.payload),
        file=record.file,
        raw=json.loads(record.raw),
    )


def malformed_from_wit(record: Any) -> MalformedFile:
    return MalformedFile(file=record.file, reason=record.reason)


def dead_letter_from_wit(record: Any) -> DeadLetter:
    return DeadLetter(
        agent=record.agent,
        file=record.file,
        reason=record.reason,
        deliveries=record.deliveries,
        dead_at_ms=getattr(record, "dead-at-ms"),
    )
