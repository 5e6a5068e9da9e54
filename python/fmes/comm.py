"""`Comm`: a ``_COMM`` folder opened through the sandboxed fmes queue component."""

from __future__ import annotations

import json
import math
import os
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Literal, Optional, Tuple, Union

import wasmtime
from wasmtime.component import Func, Record, Variant

from . import _runtime
from ._runtime import LoadedComponent, PathLike
from .errors import (
    QUEUE_ERROR_KINDS,
    ComponentLoadError,
    ComponentTrap,
    FmesError,
    InvalidPayload,
    InvalidPriority,
    MemoryLimitExceeded,
    MissingComm,
    TimeLimitExceeded,
    queue_error,
)
from .types import (
    ClaimBatch,
    Claimed,
    CleanupReport,
    DeadLetter,
    MailboxStats,
    Message,
    RawJson,
    Received,
    Released,
    RecoverReport,
    dead_letter_from_wit,
    malformed_from_wit,
    message_from_wit,
)

__all__ = ["Comm"]

#: Where the component finds the queue's root.
GUEST_ROOT = "/_COMM"
#: How much of the component's stderr is kept (its panic message, if any).
STDERR_CAP = 16 * 1024
#: Time allowed for instantiation, in seconds.
INSTANTIATE_SECONDS = 10.0

Duration = Union[int, float, timedelta]
#: A message file name, or anything with a ``file`` attribute holding one
#: (a Message, a Claimed, a DeadLetter).
FileRef = Union[str, Message, Claimed, DeadLetter]


class _Instance:
    """One store and component instance, with its captured stderr."""

    def __init__(
        self, store: wasmtime.Store, functions: Dict[Tuple[str, str], Func], stderr: bytearray
    ) -> None:
        self.store = store
        self.functions = functions
        self.stderr = stderr

    def stderr_text(self) -> str:
        """What the component printed, stripped of control characters (it is
        shown to a person) and of Rust's hint about RUST_BACKTRACE, which
        cannot be set inside the sandbox."""
        text = self.stderr.decode("utf-8", errors="replace")
        text = "".join(c for c in text if c == "\n" or c.isprintable())
        lines = [line for line in text.splitlines() if "RUST_BACKTRACE" not in line]
        return "\n".join(lines).strip()


class Comm:
    """A ``_COMM`` folder; every operation runs inside the fmes queue component.

    The component sees exactly one directory, this folder, as ``/_COMM``: no
    other path, no environment variable, no argument, no stdin, no network.
    Each call runs under a time limit and a memory limit.

    ``component`` is the queue component file (``fmes component -o FILE``
    writes it); when not given, ``$FMES_COMPONENT`` names it. The component is
    compiled once per process, and kept compiled in ``cache_dir`` (default:
    ``$FMES_CACHE_DIR``, else ``$XDG_CACHE_HOME/fmes``, else
    ``~/.cache/fmes``; ``False`` for none), a folder that must be writable by
    you alone, since what is loaded from it runs as machine code.

    A ``Comm`` may be shared between threads; its calls run one at a time.
    """

    def __init__(
        self,
        path: PathLike,
        *,
        create: bool = False,
        component: Optional[PathLike] = None,
        durable: bool = True,
        max_deliveries: int = 5,
        time_limit: Optional[float] = 60.0,
        memory_limit: int = 512 * 1024 * 1024,
        cache_dir: Union[PathLike, None, Literal[False]] = None,
    ) -> None:
        self._path = Path(os.path.abspath(os.fspath(path)))
        if create:
            try:
                self._path.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise MissingComm(
                    f"cannot create the _COMM folder {self._path}: {e}", str(self._path)
                ) from e
        if not self._path.is_dir():
            what = "is not a folder" if self._path.exists() else "does not exist"
            raise MissingComm(
                f"no _COMM folder at {self._path} (it {what}); create it with "
                "Comm(path, create=True) or `fmes init`",
                str(self._path),
            )
        if time_limit is not None and not time_limit > 0:
            raise ValueError(f"time_limit must be a positive number of seconds, not {time_limit!r}")
        if memory_limit <= 0:
            raise ValueError(f"memory_limit must be a positive number of bytes, not {memory_limit!r}")
        self._time_limit = time_limit
        self._memory_limit = int(memory_limit)
        self._durable = bool(durable)
        self._max_deliveries = _u32(max_deliveries, "max_deliveries")
        self._origin = _runtime.handle_origin()
        self._runtime = _runtime.runtime()
        if cache_dir is False:
            cache: Optional[Path] = None
        elif cache_dir is None:
            cache = _runtime.default_cache_dir()
        else:
            cache = Path(os.fspath(cache_dir))
        self._loaded: LoadedComponent = self._runtime.load(
            _runtime.component_path(component), cache
        )
        self._lock = threading.RLock()
        self._instance: Optional[_Instance] = None
        self._closed = False

    # -- the handle ---------------------------------------------------------

    @property
    def path(self) -> Path:
        """The ``_COMM`` folder this handle works on."""
        return self._path

    @property
    def component(self) -> str:
        """The component file in use."""
        return self._loaded.path

    def configure(
        self, *, durable: Optional[bool] = None, max_deliveries: Optional[int] = None
    ) -> None:
        """Changes durability (flush to disk before returning) and the
        delivery limit for every later call."""
        with self._lock:
            if durable is not None:
                self._durable = bool(durable)
            if max_deliveries is not None:
                self._max_deliveries = _u32(max_deliveries, "max_deliveries")
            if self._instance is not None:
                self._call(("admin", "configure"), self._options())

    def close(self) -> None:
        """Drops the component instance; later calls raise an error."""
        with self._lock:
            self._instance = None
            self._closed = True

    def __enter__(self) -> "Comm":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Comm({str(self._path)!r})"

    # -- admin --------------------------------------------------------------

    def init(self, agents: Iterable[str] = ()) -> List[str]:
        """Creates ``ARCHIVE/`` and a mailbox per agent, keeping existing ones
        (the Python implementation's four defaults when ``agents`` is empty).
        Returns the agents whose mailbox this call created."""
        if isinstance(agents, (str, bytes)):
            raise TypeError("init takes a list of agent names, not one string")
        names = [_text(a, "agent name") for a in agents]
        return self._call(("admin", "init"), names)

    def agents(self) -> List[str]:
        """The agents that have a mailbox, lower-case, in name order."""
        return self._call(("admin", "agents"))

    def stats(self) -> List[MailboxStats]:
        """Counts for every mailbox, in agent name order."""
        return [
            MailboxStats(
                agent=s.agent,
                ready=s.ready,
                in_flight=getattr(s, "in-flight"),
                dead=s.dead,
                archived=s.archived,
                oldest_ready_age_ms=getattr(s, "oldest-ready-age-ms"),
            )
            for s in self._call(("admin", "stats"))
        ]

    def cleanup(self, max_age: Duration = timedelta(hours=24)) -> CleanupReport:
        """Archives messages whose file is older than ``max_age`` (seconds or a
        timedelta) and removes temporary files older than ten minutes."""
        seconds = _millis(max_age, "max_age") // 1000
        report = self._call(("admin", "cleanup"), seconds)
        return CleanupReport(
            archived=report.archived, removed_temporary=getattr(report, "removed-temporary")
        )

    # -- messages -----------------------------------------------------------

    def send(
        self,
        sender: str,
        to: str,
        payload: Any,
        *,
        message_type: Optional[str] = None,
        priority: Optional[int] = None,
        max_payload_bytes: Optional[int] = None,
        id: Optional[str] = None,
    ) -> Message:
        """Sends one message and returns it as stored.

        ``payload`` is any JSON-serializable object (or :class:`RawJson`
        text). ``message_type`` defaults to ``TASK``, ``priority`` (1 most
        urgent to 9) to 5, ``max_payload_bytes`` to 1 MiB. With ``id``, the
        send is idempotent: that id is sent at most once.
        """
        request = Record()
        fields = {
            "from": _text(sender, "sender"),
            "to": _text(to, "recipient"),
            "type": _optional_text(message_type, "message_type"),
            "priority": None if priority is None else _priority(priority),
            "payload": _encode(payload),
            "max-payload-bytes": _optional_u64(max_payload_bytes, "max_payload_bytes"),
            "id": _optional_text(id, "id"),
        }
        for name, value in fields.items():
            setattr(request, name, value)
        return message_from_wit(self._call(("messages", "send"), request))

    def broadcast(
        self,
        sender: str,
        payload: Any,
        *,
        message_type: Optional[str] = None,
        max_payload_bytes: Optional[int] = None,
    ) -> List[Message]:
        """Sends a copy to every agent with a mailbox except the sender, at
        priority 1, type ``ALERT`` unless given; returns the copies."""
        copies = self._call(
            ("messages", "broadcast"),
            _text(sender, "sender"),
            _optional_text(message_type, "message_type"),
            _encode(payload),
            _optional_u64(max_payload_bytes, "max_payload_bytes"),
        )
        return [message_from_wit(m) for m in copies]

    def receive(
        self, agent: str, *, message_type: Optional[str] = None, limit: Optional[int] = None
    ) -> Received:
        """The messages waiting in a mailbox, in delivery order, without
        removing them; files that are not messages are in ``malformed``."""
        received = self._call(
            ("messages", "receive"),
            _text(agent, "agent"),
            _optional_text(message_type, "message_type"),
            None if limit is None else _u32(limit, "limit"),
        )
        return Received(
            messages=[message_from_wit(m) for m in received.messages],
            malformed=[malformed_from_wit(m) for m in received.malformed],
        )

    def receive_pages(
        self,
        agent: str,
        *,
        message_type: Optional[str] = None,
        page_size: int = 1000,
        by_send_time: bool = False,
    ) -> Iterator[Received]:
        """The messages waiting in a mailbox, a page at a time, in delivery
        order, without removing them: for a mailbox too big to hold at once.

        Each page is a :class:`Received` of at most ``page_size`` messages
        (a page may hold fewer, even none, while more follow); files that
        are not messages are reported once, in the page where they are
        found. Messages that arrive while the pages are read may or may not
        be in them (see the WIT ``receive-page``).

        With ``by_send_time``, the pages are in order of send time, then file
        name, whatever the priority: the order in which to merge several
        mailboxes' pages into one timeline (see the WIT
        ``receive-page-by-send-time``).
        """
        # Checked now, not at the first page.
        arguments = (
            _text(agent, "agent"),
            _optional_text(message_type, "message_type"),
            _u32(page_size, "page_size"),
        )
        if not isinstance(by_send_time, bool):
            raise TypeError(f"by_send_time must be True or False, not {by_send_time!r}")
        function = "receive-page-by-send-time" if by_send_time else "receive-page"

        def pages() -> Iterator[Received]:
            after = None
            while True:
                page = self._call(("messages", function), *arguments, after)
                yield Received(
                    messages=[message_from_wit(m) for m in page.messages],
                    malformed=[malformed_from_wit(m) for m in page.malformed],
                )
                if page.next is None:
                    return
                after = page.next

        return pages()

    def peek(self, agent: str) -> int:
        """Counts the messages waiting in a mailbox."""
        return self._call(("messages", "peek"), _text(agent, "agent"))

    def archive(self, agent: str, file: FileRef) -> str:
        """Moves a message from the mailbox into ``ARCHIVE/``; returns its name there."""
        return self._call(("messages", "archive"), _text(agent, "agent"), _file(file))

    # -- claims -------------------------------------------------------------

    def claim(
        self, agent: str, consumer: str, *, limit: int = 1, lease: Duration = 300
    ) -> ClaimBatch:
        """Takes up to ``limit`` messages, in delivery order, for ``consumer``
        alone until ``lease`` (seconds or a timedelta) runs out."""
        batch = self._call(
            ("claims", "claim"),
            _text(agent, "agent"),
            _text(consumer, "consumer"),
            _u32(limit, "limit"),
            _millis(lease, "lease"),
        )
        return ClaimBatch(
            claimed=[
                Claimed(
                    message=message_from_wit(c.message),
                    deliveries=c.deliveries,
                    lease_expires_ms=getattr(c, "lease-expires-ms"),
                )
                for c in batch.claimed
            ],
            dead_lettered=[malformed_from_wit(m) for m in getattr(batch, "dead-lettered")],
        )

    def ack(self, agent: str, consumer: str, file: FileRef) -> str:
        """Done with a claimed message: archives it; returns its name in ``ARCHIVE/``."""
        return self._call(
            ("claims", "ack"), _text(agent, "agent"), _text(consumer, "consumer"), _file(file)
        )

    def release(self, agent: str, consumer: str, file: FileRef) -> Released:
        """Gives a claimed message back, in its place in the order (or to the
        dead letters at the delivery limit)."""
        where = self._call(
            ("claims", "release"), _text(agent, "agent"), _text(consumer, "consumer"), _file(file)
        )
        return Released(file=where.payload, dead_lettered=where.tag == "dead-lettered")

    def give_back(self, agent: str, consumer: str, file: FileRef) -> str:
        """Gives back a claimed message the consumer never began to handle,
        with the delivery count it had before the claim (``release`` counts
        the delivery); returns its name in the mailbox."""
        return self._call(
            ("claims", "give-back"), _text(agent, "agent"), _text(consumer, "consumer"), _file(file)
        )

    def extend(self, agent: str, consumer: str, file: FileRef, *, lease: Duration = 300) -> int:
        """Extends a claim to ``lease`` from now; returns the new end of the
        lease in milliseconds since 1970."""
        return self._call(
            ("claims", "extend"),
            _text(agent, "agent"),
            _text(consumer, "consumer"),
            _file(file),
            _millis(lease, "lease"),
        )

    def recover(self) -> RecoverReport:
        """Returns expired claims, completes interrupted moves, removes stale
        temporary files. Safe at any time, from any number of processes."""
        report = self._call(("claims", "recover"))
        return RecoverReport(
            returned=report.returned,
            dead_lettered=getattr(report, "dead-lettered"),
            finished_moves=getattr(report, "finished-moves"),
            removed_temporary=getattr(report, "removed-temporary"),
        )

    # -- dead letters -------------------------------------------------------

    def dead_letters(self, agent: Optional[str] = None) -> List[DeadLetter]:
        """The dead letters of one agent, or of all, by agent then file name."""
        letters = self._call(("dead-letters", "list"), _optional_text(agent, "agent"))
        return [dead_letter_from_wit(d) for d in letters]

    def dead_letter_pages(self, agent: str, *, page_size: int = 1000) -> Iterator[List[DeadLetter]]:
        """An agent's dead letters by file name, a page at a time (each a
        list of at most ``page_size``, maybe fewer while more follow): for
        an agent with more than one should hold at once. Letters retried or
        purged while the pages are read are left out (see the WIT
        ``list-page``)."""
        # Checked now, not at the first page.
        arguments = (_text(agent, "agent"), _u32(page_size, "page_size"))

        def pages() -> Iterator[List[DeadLetter]]:
            after = None
            while True:
                page = self._call(("dead-letters", "list-page"), *arguments, after)
                yield [dead_letter_from_wit(d) for d in page.letters]
                if page.next is None:
                    return
                after = page.next

        return pages()

    def retry_dead_letter(self, agent: str, file: FileRef) -> str:
        """Puts a dead letter back in its mailbox, delivery count reset;
        returns its name there."""
        return self._call(("dead-letters", "retry"), _text(agent, "agent"), _file(file))

    def purge_dead_letters(
        self, agent: Optional[str], file: Optional[FileRef] = None
    ) -> List[DeadLetter]:
        """Deletes dead letters: one ``file`` of ``agent``, every one of
        ``agent``, or, with ``agent`` None, all. Returns what was deleted."""
        return [
            dead_letter_from_wit(d)
            for d in self._call(
                ("dead-letters", "purge"),
                _optional_text(agent, "agent"),
                None if file is None else _file(file),
            )
        ]

    # -- calling the component ----------------------------------------------

    def _options(self) -> Record:
        options = Record()
        options.durable = self._durable
        setattr(options, "max-deliveries", self._max_deliveries)
        options.origin = self._origin
        return options

    def _deadline_ticks(self, seconds: Optional[float]) -> int:
        if seconds is None:
            return 1 << 62
        return math.ceil(seconds / _runtime.TICK_SECONDS) + 1

    def _instantiate(self) -> _Instance:
        runtime = self._runtime
        store = wasmtime.Store(runtime.engine)
        store.set_limits(memory_size=self._memory_limit)
        wasi = wasmtime.WasiConfig()
        # Nothing but the one preopen: no env, args, stdin or network (the
        # component is refused at load if it imports sockets); stdout is
        # discarded, stderr kept (capped) to explain a crash.
        try:
            wasi.preopen_dir(str(self._path), GUEST_ROOT)
        except wasmtime.WasmtimeError as e:
            raise MissingComm(f"cannot open the _COMM folder {self._path}: {e}", str(self._path)) from e
        captured = bytearray()

        def keep_stderr(data: bytes) -> None:
            room = STDERR_CAP - len(captured)
            if room > 0:
                captured.extend(data[:room])

        wasi.stderr_custom = keep_stderr
        store.set_wasi(wasi)
        store.set_epoch_deadline(self._deadline_ticks(INSTANTIATE_SECONDS))
        try:
            with runtime.ticker:
                instance = runtime.linker.instantiate(store, self._loaded.component)
        except wasmtime.WasmtimeError as e:
            text = str(e)
            if "memory" in text and "limit" in text:
                raise MemoryLimitExceeded(self._memory_limit, "") from e
            raise ComponentLoadError(
                f"cannot instantiate the fmes component {self._loaded.path}: {_cause(text)}"
            ) from e
        functions: Dict[Tuple[str, str], Func] = {}
        for key, index in self._loaded.functions.items():
            func = instance.get_func(store, index)
            if func is None:
                raise ComponentLoadError(
                    f"{self._loaded.path}: {_runtime.export_name(key[0])}#{key[1]} is not a function"
                )
            functions[key] = func
        live = _Instance(store, functions, captured)
        self._instance = live
        self._call(("admin", "configure"), self._options())
        return live

    def _call(self, function: Tuple[str, str], *args: Any) -> Any:
        with self._lock:
            if self._closed:
                raise FmesError(f"{self!r} is closed")
            live = self._instance if self._instance is not None else self._instantiate()
            live.store.set_epoch_deadline(self._deadline_ticks(self._time_limit))
            try:
                with self._runtime.ticker:
                    result = live.functions[function](live.store, *args)
            except wasmtime.WasmtimeError as e:
                # A trapped instance must not be called again: the next call
                # makes a new one.
                self._instance = None
                raise self._stopped(e, live) from e
            return _unwrap(result)

    def _stopped(self, error: wasmtime.WasmtimeError, live: _Instance) -> FmesError:
        text = str(error)
        stderr = live.stderr_text()
        if "wasm trap: interrupt" in text:
            assert self._time_limit is not None
            return TimeLimitExceeded(self._time_limit)
        # Rust's allocator reports a failed allocation on stderr before it
        # aborts: with the store's memory limit, that is the limit.
        if "memory allocation of" in stderr:
            return MemoryLimitExceeded(self._memory_limit, stderr)
        cause = _cause(text)
        if "unreachable" in cause and not stderr:
            # An allocation that fails while the host passes arguments in
            # aborts before anything can be printed.
            cause += (
                " (it stopped without a word, as it does when an allocation fails: "
                f"its memory limit is {self._memory_limit} bytes)"
            )
        return ComponentTrap(cause, stderr)


def _unwrap(value: Any) -> Any:
    """The ok value of a WIT ``result``, or the queue error raised.

    wasmtime-py gives a result as its bare ok or err value when their Python
    types differ, and as ``Variant("ok" | "err", value)`` when they do not;
    the cases of ``queue-error`` are never named ``ok`` or ``err``."""
    if isinstance(value, Variant):
        if value.tag == "ok":
            return value.payload
        if value.tag == "err":
            error = value.payload
            if not isinstance(error, Variant):
                raise FmesError(f"the component returned an unexpected error value: {error!r}")
            raise queue_error(error.tag, error.payload)
        if value.tag in QUEUE_ERROR_KINDS:
            raise queue_error(value.tag, value.payload)
    return value


def _cause(text: str) -> str:
    """The last cause of a wasmtime error chain (after its backtrace)."""
    if "Caused by:" in text:
        causes = [line.strip() for line in text.split("Caused by:")[-1].splitlines()]
        causes = [c for c in causes if c]
        if causes:
            return "; ".join(causes)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "unknown error"


def _encode(payload: Any) -> str:
    if isinstance(payload, RawJson):
        return str(payload)
    try:
        return json.dumps(payload, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InvalidPayload(f"cannot encode {type(payload).__name__} as JSON: {e}") from e


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    return value


def _optional_text(value: Any, what: str) -> Optional[str]:
    return None if value is None else _text(value, what)


def _file(value: Any) -> str:
    if isinstance(value, str):
        return value
    file = getattr(value, "file", None)
    if isinstance(file, str):
        return file
    raise TypeError(
        f"a message file must be a file name or have a .file (a Message, Claimed or "
        f"DeadLetter), not {type(value).__name__}"
    )


def _int(value: Any, what: str, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not 0 <= value <= maximum:
        raise ValueError(f"{what} must be between 0 and {maximum}, not {value}")
    return value


def _u32(value: Any, what: str) -> int:
    return _int(value, what, 2**32 - 1)


def _optional_u64(value: Any, what: str) -> Optional[int]:
    return None if value is None else _int(value, what, 2**64 - 1)


def _priority(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"priority must be an int, not {type(value).__name__}")
    if not 0 <= value <= 255:
        # The queue's own check says the same for 0 and 10..255.
        raise InvalidPriority(value)
    return value


def _millis(value: Any, what: str) -> int:
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise TypeError(f"{what} must be seconds (a number) or a timedelta, not {type(value).__name__}")
    if not (seconds >= 0 and math.isfinite(seconds)):
        raise ValueError(f"{what} must be a finite, non-negative duration, not {value!r}")
    return round(seconds * 1000)
