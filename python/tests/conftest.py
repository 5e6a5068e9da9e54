"""Shared fixtures: the component, the `fmes` CLI, and a fresh `_COMM` per test.

The suite needs two files, named by environment variables (it fails, never
skips, without them):

* ``FMES_COMPONENT``: the queue component, written by ``fmes component -o FILE``;
* ``FMES_BIN``: the ``fmes`` binary, for the exchanges with the Rust CLI.

``cargo test -p fmes --test e2e python`` sets both.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
# The package is tested from the source tree, not from an installed copy.
sys.path.insert(0, str(PACKAGE_ROOT))

import fmes  # noqa: E402

HOW_TO = """\
set FMES_COMPONENT and FMES_BIN before running these tests, for example:
    cargo build -p fmes
    ./target/debug/fmes component -o /tmp/fmes_queue.wasm
    FMES_COMPONENT=/tmp/fmes_queue.wasm FMES_BIN=$PWD/target/debug/fmes \\
        target/tools/python/bin/python -m pytest python/tests
(or run `cargo test -p fmes --test e2e python`, which does all of it)"""


def _required_file(variable: str) -> Path:
    value = os.environ.get(variable)
    if not value:
        raise pytest.UsageError(f"{variable} is not set.\n{HOW_TO}")
    path = Path(value)
    if not path.is_file():
        raise pytest.UsageError(f"{variable}={value} is not a file.\n{HOW_TO}")
    return path.resolve()


def pytest_configure(config: pytest.Config) -> None:
    config.fmes_component = _required_file("FMES_COMPONENT")  # type: ignore[attr-defined]
    config.fmes_bin = _required_file("FMES_BIN")  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def component(pytestconfig: pytest.Config) -> Path:
    return pytestconfig.fmes_component  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def fmes_bin(pytestconfig: pytest.Config) -> Path:
    return pytestconfig.fmes_bin  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Compiled components: the caller's cache folder, else one for this run."""
    explicit = os.environ.get("FMES_CACHE_DIR")
    if explicit:
        return Path(explicit)
    return tmp_path_factory.mktemp("fmes-cache")


@pytest.fixture
def comm_dir(tmp_path: Path) -> Path:
    """A path for this test's `_COMM` folder (not created)."""
    return tmp_path / "_COMM"


@pytest.fixture
def open_comm(
    comm_dir: Path, component: Path, cache_dir: Path
) -> Callable[..., fmes.Comm]:
    """Opens (creating it) this test's `_COMM`, with options for `fmes.Comm`."""

    def open_it(**options: Any) -> fmes.Comm:
        options.setdefault("component", component)
        options.setdefault("cache_dir", cache_dir)
        return fmes.Comm(comm_dir, create=True, **options)

    return open_it


@pytest.fixture
def comm(open_comm: Callable[..., fmes.Comm]) -> fmes.Comm:
    """This test's `_COMM` with mailboxes for planner and coder."""
    handle = open_comm()
    handle.init(["planner", "coder"])
    return handle


def cli_env(cache_dir: Path) -> Dict[str, str]:
    env = dict(os.environ)
    env.pop("FMES_COMM", None)
    env["FMES_CACHE_DIR"] = str(cache_dir)
    return env


class Cli:
    """Runs the `fmes` binary on this test's `_COMM`."""

    def __init__(self, binary: Path, comm_dir: Path, cache_dir: Path) -> None:
        self.binary = binary
        self.comm_dir = comm_dir
        self.env = cli_env(cache_dir)

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.binary), "--comm", str(self.comm_dir), *args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def ok(self, *args: str) -> str:
        """Runs a command that must succeed; returns its stdout."""
        done = self.run(*args)
        assert done.returncode == 0, (
            f"fmes {' '.join(args)} exited {done.returncode}\n"
            f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        )
        return done.stdout

    def fails(self, *args: str) -> str:
        """Runs a command that must fail with status 1; returns its stderr."""
        done = self.run(*args)
        assert done.returncode == 1, (
            f"fmes {' '.join(args)} exited {done.returncode}, expected 1\n"
            f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        )
        return done.stderr

    def json(self, *args: str) -> List[Any]:
        """Runs `fmes --json ...`; returns its JSON lines, parsed."""
        out = self.ok("--json", *args)
        return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.fixture
def cli(fmes_bin: Path, comm_dir: Path, cache_dir: Path) -> Cli:
    return Cli(fmes_bin, comm_dir, cache_dir)
