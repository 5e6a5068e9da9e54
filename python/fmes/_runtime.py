"""Loading the fmes queue component into wasmtime, once per process.

The engine, the linker (WASI p2 only) and each compiled component are shared
by every :class:`fmes.Comm` of the process. Compiled components are also
kept on disk, in the same cache folder as the ``fmes`` CLI uses, so a new
process loads in milliseconds instead of compiling again.
"""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import wasmtime
from wasmtime.component import Component, ExportIndex, Linker

from .errors import ComponentLoadError, ComponentNotFound

#: The interfaces of ``fmes:queue@0.1.0`` and the functions used of each.
INTERFACES: Dict[str, Tuple[str, ...]] = {
    "admin": ("configure", "stats", "init", "agents", "cleanup"),
    "messages": (
        "send",
        "broadcast",
        "receive",
        "receive-page",
        "receive-page-by-send-time",
        "peek",
        "archive",
    ),
    "claims": ("claim", "ack", "release", "give-back", "extend", "recover"),
    "dead-letters": ("list", "list-page", "retry", "purge"),
}
PACKAGE = "fmes:queue"
VERSION = "0.1.0"

#: What the queue component may import: the WASI p2 interfaces wasi-libc
#: needs, and the file system. Anything else (sockets, http...) is refused
#: at load, so the component provably cannot reach the network.
ALLOWED_IMPORTS = (
    "wasi:cli/",
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:filesystem/",
)

#: How often the engine's epoch advances while a call runs.
TICK_SECONDS = 0.01

PathLike = Union[str, "os.PathLike[str]"]


def export_name(interface: str) -> str:
    return f"{PACKAGE}/{interface}@{VERSION}"


class _Ticker:
    """Advances the engine's epoch every tick while any call is in flight,
    so that a call past its deadline is interrupted; idle otherwise."""

    def __init__(self, engine: wasmtime.Engine) -> None:
        self._engine = engine
        self._changed = threading.Condition()
        self._in_flight = 0
        self._thread: Optional[threading.Thread] = None

    def __enter__(self) -> "_Ticker":
        with self._changed:
            self._in_flight += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="fmes-epoch", daemon=True
                )
                self._thread.start()
            self._changed.notify()
        return self

    def __exit__(self, *_exc: object) -> None:
        with self._changed:
            self._in_flight -= 1

    def _run(self) -> None:
        while True:
            with self._changed:
                while self._in_flight == 0:
                    self._changed.wait()
            time.sleep(TICK_SECONDS)
            self._engine.increment_epoch()


@dataclass
class LoadedComponent:
    """A compiled queue component with the indexes of the functions it exports."""

    path: str
    digest: str
    component: Component
    #: ("messages", "send") -> index of that export.
    functions: Dict[Tuple[str, str], ExportIndex]


class Runtime:
    """The process's engine, linker and compiled components."""

    def __init__(self) -> None:
        config = wasmtime.Config()
        config.epoch_interruption = True
        self.engine = wasmtime.Engine(config)
        self.linker = Linker(self.engine)
        # Only WASI p2: the component is refused at load if it imports
        # anything that is not in ALLOWED_IMPORTS.
        self.linker.add_wasip2()
        self.ticker = _Ticker(self.engine)
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._components: Dict[str, LoadedComponent] = {}
        #: (path, size, mtime) -> content digest, so a file is hashed once.
        self._digests: Dict[Tuple[str, int, int], str] = {}

    def load(self, path: str, cache_dir: Optional[Path]) -> LoadedComponent:
        """The component in ``path``, compiled once per process (and once per
        machine when ``cache_dir`` is given)."""
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            raise ComponentNotFound(
                f"the fmes component {path} does not exist; write it with "
                "`fmes component -o fmes_queue.wasm`"
            ) from None
        except OSError as e:
            raise ComponentLoadError(f"cannot read the fmes component {path}: {e}") from e
        with self._lock:
            key = (path, stat.st_size, stat.st_mtime_ns)
            digest = self._digests.get(key)
            if digest is not None and digest in self._components:
                return self._components[digest]
            try:
                with open(path, "rb") as f:
                    wasm = f.read()
            except OSError as e:
                raise ComponentLoadError(
                    f"cannot read the fmes component {path}: {e}"
                ) from e
            digest = hashlib.sha256(wasm).hexdigest()
            self._digests[key] = digest
            loaded = self._components.get(digest)
            if loaded is None:
                component = self._compile(path, wasm, digest, cache_dir)
                loaded = _inspect(self.engine, path, digest, component)
                self._components[digest] = loaded
            return loaded

    def _compile(
        self, path: str, wasm: bytes, digest: str, cache_dir: Optional[Path]
    ) -> Component:
        cached = None
        if cache_dir is not None:
            cached = cache_dir / f"queue-py-{digest[:32]}-wasmtime-{_wasmtime_version()}.cwasm"
            if cached.is_file():
                # Deserializing trusts the file as machine code: it is one this
                # code wrote for these exact bytes into the user's own cache
                # folder, which must be writable by the user alone. wasmtime
                # refuses a file from another version or configuration.
                try:
                    return Component.deserialize_file(self.engine, str(cached))
                except wasmtime.WasmtimeError:
                    pass
        try:
            component = Component(self.engine, wasm)
        except wasmtime.WasmtimeError as e:
            raise ComponentLoadError(
                f"{path} is not a WebAssembly component wasmtime can compile: {_first_line(e)}"
            ) from e
        if cached is not None:
            # The cache only saves time: failing to write it is not an error.
            try:
                _write_atomically(cached, component.serialize())
            except (OSError, wasmtime.WasmtimeError):
                pass
        return component


def _inspect(
    engine: wasmtime.Engine, path: str, digest: str, component: Component
) -> LoadedComponent:
    """Checks that the component is the fmes queue and imports only WASI."""
    component_type = component.type
    imports = sorted(component_type.imports(engine))
    refused = [name for name in imports if not name.startswith(ALLOWED_IMPORTS)]
    if refused:
        raise ComponentLoadError(
            f"{path} imports {', '.join(refused)}; the fmes queue component may import "
            "only wasi:cli, wasi:io, wasi:clocks, wasi:random and wasi:filesystem"
        )
    functions: Dict[Tuple[str, str], ExportIndex] = {}
    for interface, names in INTERFACES.items():
        interface_index = component.get_export_index(export_name(interface))
        if interface_index is None:
            raise ComponentLoadError(
                f"{path} is not the fmes queue component: it does not export "
                f"{export_name(interface)}"
            )
        for name in names:
            index = component.get_export_index(name, interface_index)
            if index is None:
                raise ComponentLoadError(
                    f"{path} is not the fmes queue component: "
                    f"{export_name(interface)} has no function {name}"
                )
            functions[(interface, name)] = index
    return LoadedComponent(path=path, digest=digest, component=component, functions=functions)


_RUNTIME: Optional[Runtime] = None
_RUNTIME_LOCK = threading.Lock()


def runtime() -> Runtime:
    """The process's runtime (a new one in a forked child)."""
    global _RUNTIME
    with _RUNTIME_LOCK:
        if _RUNTIME is None or _RUNTIME.pid != os.getpid():
            _RUNTIME = Runtime()
        return _RUNTIME


def component_path(component: Optional[PathLike]) -> str:
    """The component file: the argument, else ``$FMES_COMPONENT``."""
    if component is not None:
        return os.path.abspath(os.fspath(component))
    from_env = os.environ.get("FMES_COMPONENT")
    if from_env:
        return os.path.abspath(from_env)
    raise ComponentNotFound(
        "no fmes component given: pass Comm(..., component='fmes_queue.wasm') or set "
        "FMES_COMPONENT to the file; `fmes component -o fmes_queue.wasm` writes it"
    )


def default_cache_dir() -> Optional[Path]:
    """``$FMES_CACHE_DIR``, else ``$XDG_CACHE_HOME/fmes``, else ``~/.cache/fmes``."""
    explicit = os.environ.get("FMES_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg) / "fmes"
    home = os.path.expanduser("~")
    if home and home != "~":
        return Path(home) / ".cache" / "fmes"
    return None


def process_origin() -> int:
    """This host's and process's tag for the file names it creates (the
    component cannot see either): a hash of the host name and process id."""
    text = f"{socket.gethostname()}\0{os.getpid()}".encode()
    value = int.from_bytes(hashlib.blake2b(text, digest_size=4).digest(), "little")
    return max(value, 1)


_HANDLES = 0
_HANDLES_LOCK = threading.Lock()


def handle_origin() -> int:
    """The tag of a new handle: the process's tag mixed with a count of the
    handles made, since each instance counts its names from zero."""
    global _HANDLES
    with _HANDLES_LOCK:
        handle = _HANDLES
        _HANDLES += 1
    mixed = process_origin() ^ ((handle * 0x9E3779B9) & 0xFFFFFFFF)
    return max(mixed, 1)


def _wasmtime_version() -> str:
    try:
        return metadata.version("wasmtime")
    except metadata.PackageNotFoundError:
        return "unknown"


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".cwasm")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
