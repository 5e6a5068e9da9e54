"""fmes from Python: the fmes queue component, run in wasmtime.

Every operation runs inside the WebAssembly component that the ``fmes`` CLI
runs, sandboxed by wasmtime to the one ``_COMM`` folder it is given, so Python
agents and the CLI share one implementation of the format::

    import fmes

    comm = fmes.Comm("_COMM", create=True)   # the component: $FMES_COMPONENT
    comm.init(["planner", "coder"])
    comm.send("planner", "coder", {"task": "write the tests"})
    for message in comm.receive("coder"):
        print(message.sender, message.payload)
"""

from . import errors as _errors
from . import types as _types
from .comm import Comm
from .errors import (
    ComponentError,
    ComponentLoadError,
    ComponentNotFound,
    ComponentTrap,
    FileSystemError,
    FmesError,
    InvalidAgentName,
    InvalidConsumer,
    InvalidFileName,
    InvalidLayout,
    InvalidMessageId,
    InvalidPayload,
    InvalidPriority,
    InvalidType,
    MemoryLimitExceeded,
    MissingComm,
    NotFound,
    PayloadTooLarge,
    QueueError,
    TimeLimitExceeded,
    UnknownAgent,
)
from .types import (
    ClaimBatch,
    Claimed,
    CleanupReport,
    DeadLetter,
    MailboxStats,
    MalformedFile,
    Message,
    RawJson,
    Received,
    Released,
    RecoverReport,
)

__version__ = "0.1.0"

# Everything the submodules export, from one place each.
__all__ = ["Comm", *_types.__all__, *_errors.__all__]
