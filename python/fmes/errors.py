"""The exceptions of fmes.

Every exception the package raises on purpose is an :class:`FmesError`.

* :class:`QueueError` and its subclasses: the queue refused the operation.
  There is one subclass per case of the WIT variant ``queue-error``, and
  ``kind`` holds the case's WIT name (``"unknown-agent"``, ``"not-found"``...).
* :class:`ComponentError` and its subclasses: the component could not be
  found or loaded, or it was stopped (time limit, memory limit, a trap).
* :class:`MissingComm`: the ``_COMM`` folder does not exist.
"""

from __future__ import annotations

from typing import Any, List

__all__ = [
    "FmesError",
    "MissingComm",
    "QueueError",
    "InvalidAgentName",
    "InvalidConsumer",
    "InvalidMessageId",
    "UnknownAgent",
    "InvalidPriority",
    "InvalidType",
    "InvalidPayload",
    "PayloadTooLarge",
    "InvalidFileName",
    "NotFound",
    "InvalidLayout",
    "FileSystemError",
    "ComponentError",
    "ComponentNotFound",
    "ComponentLoadError",
    "TimeLimitExceeded",
    "MemoryLimitExceeded",
    "ComponentTrap",
]

_NAME_RULE = "use 1 to 64 ASCII letters, digits, '-' or '_'"


class FmesError(Exception):
    """Base class of every error fmes raises."""


class MissingComm(FmesError):
    """The ``_COMM`` folder does not exist (or is not a folder)."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


class QueueError(FmesError):
    """The queue refused an operation; ``kind`` is the WIT case name."""

    kind: str = ""

    def __init__(self, message: str, detail: Any = None) -> None:
        super().__init__(message)
        #: The case's payload as the component returned it (a name, a text...).
        self.detail = detail


class InvalidAgentName(QueueError):
    """An agent name is empty, too long or holds a forbidden character."""

    kind = "invalid-agent-name"

    def __init__(self, name: str) -> None:
        super().__init__(f"invalid agent name {name!r}: {_NAME_RULE}", name)
        self.name = name


class InvalidConsumer(QueueError):
    """A consumer name breaks the rules of agent names."""

    kind = "invalid-consumer"

    def __init__(self, name: str) -> None:
        super().__init__(f"invalid consumer name {name!r}: {_NAME_RULE}", name)
        self.name = name


class InvalidMessageId(QueueError):
    """A caller-given message id breaks the rules of agent names."""

    kind = "invalid-message-id"

    def __init__(self, message_id: str) -> None:
        super().__init__(
            f"invalid message id {message_id!r}: {_NAME_RULE} (a UUID fits)", message_id
        )
        self.message_id = message_id


class UnknownAgent(QueueError):
    """The agent has no mailbox; ``known`` lists those that have one."""

    kind = "unknown-agent"

    def __init__(self, name: str, known: List[str]) -> None:
        known_text = ", ".join(known) if known else "none; create mailboxes with init"
        super().__init__(
            f"unknown agent {name!r}: it has no mailbox (known agents: {known_text})",
            {"name": name, "known": list(known)},
        )
        self.name = name
        self.known = list(known)


class InvalidPriority(QueueError):
    """A priority outside 1 to 9."""

    kind = "invalid-priority"

    def __init__(self, priority: int) -> None:
        super().__init__(
            f"invalid priority {priority}: use 1 (most urgent) to 9 (least)", priority
        )
        self.priority = priority


class InvalidType(QueueError):
    """A message type that is empty, too long or holds a forbidden character."""

    kind = "invalid-type"

    def __init__(self, message_type: str) -> None:
        super().__init__(
            f"invalid message type {message_type!r}: "
            "use 1 to 32 ASCII letters, digits, '-' or '_'",
            message_type,
        )
        self.message_type = message_type


class InvalidPayload(QueueError):
    """The payload is not valid JSON (or cannot be encoded as JSON)."""

    kind = "invalid-payload"

    def __init__(self, why: str) -> None:
        super().__init__(f"invalid payload: not valid JSON: {why}", why)
        self.why = why


class PayloadTooLarge(QueueError):
    """The payload's JSON text is over the size limit."""

    kind = "payload-too-large"

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"payload too large: {size} bytes, the limit is {limit} bytes",
            {"size": size, "limit": limit},
        )
        self.size = size
        self.limit = limit


class InvalidFileName(QueueError):
    """A file name that is not a plain ``*.json`` name inside a mailbox."""

    kind = "invalid-file-name"

    def __init__(self, file: str) -> None:
        super().__init__(
            f"invalid message file name {file!r}: "
            "give a plain *.json file name from the mailbox, not a path",
            file,
        )
        self.file = file


class NotFound(QueueError):
    """The named message, claim or dead letter does not exist (any more)."""

    kind = "not-found"

    def __init__(self, what: str) -> None:
        super().__init__(f"not found: {what}", what)


class InvalidLayout(QueueError):
    """A ``_COMM`` entry is not what it must be (say a mailbox that is a link)."""

    kind = "invalid-layout"

    def __init__(self, what: str) -> None:
        super().__init__(f"invalid _COMM layout: {what}", what)


class FileSystemError(QueueError):
    """The operating system refused an operation (WIT case ``io``)."""

    kind = "io"

    def __init__(self, what: str) -> None:
        super().__init__(f"I/O error: {what}", what)


def queue_error(tag: str, payload: Any) -> QueueError:
    """The exception for one case of the WIT ``queue-error`` variant."""
    if tag == "invalid-agent-name":
        return InvalidAgentName(payload)
    if tag == "invalid-consumer":
        return InvalidConsumer(payload)
    if tag == "invalid-message-id":
        return InvalidMessageId(payload)
    if tag == "unknown-agent":
        return UnknownAgent(payload.name, list(payload.known))
    if tag == "invalid-priority":
        return InvalidPriority(payload)
    if tag == "invalid-type":
        return InvalidType(payload)
    if tag == "invalid-payload":
        return InvalidPayload(payload)
    if tag == "payload-too-large":
        return PayloadTooLarge(payload.size, payload.limit)
    if tag == "invalid-file-name":
        return InvalidFileName(payload)
    if tag == "not-found":
        return NotFound(payload)
    if tag == "invalid-layout":
        return InvalidLayout(payload)
    if tag == "io":
        return FileSystemError(payload)
    # A newer component with a case this package does not know yet.
    error = QueueError(f"{tag}: {payload!r}", payload)
    error.kind = tag
    return error


#: The WIT names of the ``queue-error`` cases.
QUEUE_ERROR_KINDS = frozenset(
    cls.kind
    for cls in (
        InvalidAgentName,
        InvalidConsumer,
        InvalidMessageId,
        UnknownAgent,
        InvalidPriority,
        InvalidType,
        InvalidPayload,
        PayloadTooLarge,
        InvalidFileName,
        NotFound,
        InvalidLayout,
        FileSystemError,
    )
)


class ComponentError(FmesError):
    """The queue component could not be loaded or run."""


class ComponentNotFound(ComponentError):
    """No component file was given, or the file does not exist."""


class ComponentLoadError(ComponentError):
    """The component could not be compiled or instantiated, or is not the fmes queue."""


class TimeLimitExceeded(ComponentError):
    """A call ran past the time limit and was stopped."""

    def __init__(self, limit: float) -> None:
        super().__init__(
            f"the queue component was stopped: it ran past its time limit of {limit:g} s"
        )
        self.limit = limit


class MemoryLimitExceeded(ComponentError):
    """A call needed more memory than the memory limit and was stopped."""

    def __init__(self, limit: int, stderr: str) -> None:
        message = (
            "the queue component was stopped: "
            f"it tried to use more than its memory limit of {limit} bytes"
        )
        if stderr:
            message += f"; it printed: {stderr}"
        super().__init__(message)
        self.limit = limit
        self.stderr = stderr


class ComponentTrap(ComponentError):
    """The component trapped (a bug in it); ``stderr`` holds what it printed."""

    def __init__(self, message: str, stderr: str) -> None:
        text = f"the queue component failed: {message}"
        if stderr:
            text += f"; it printed: {stderr}"
        super().__init__(text)
        self.trap = message
        self.stderr = stderr
