"""The quickstart example, run exactly as a reader would copy it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

PYTHON_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = PYTHON_ROOT / "examples" / "quickstart.py"
README = PYTHON_ROOT.parent / "README.md"


def run_example(cwd: Path, component: Path, cache_dir: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["FMES_COMPONENT"] = str(component)
    env["FMES_CACHE_DIR"] = str(cache_dir)
    # As if installed with `pip install ./python`.
    env["PYTHONPATH"] = str(PYTHON_ROOT)
    return subprocess.run(
        [sys.executable, str(EXAMPLE)],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_quickstart_runs_as_written(tmp_path: Path, component: Path, cache_dir: Path, fmes_bin: Path) -> None:
    done = run_example(tmp_path, component, cache_dir)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    patterns = [
        r"sent TASK to coder: 3_\d{8}_\d{6}\.\d{9}Z_planner_TASK_[0-9a-f]{12}\.json",
        r"coder has TASK from planner: \{'task': 'add --limit to receive'\}",
        r"worker-1 did 'add --limit to receive' \(delivery 1\)",
        r"refused: unknown agent 'reviewer': it has no mailbox \(known agents: coder, planner\)",
        r"planner has REPORT: \{'done': 'add --limit to receive'\}",
        r"waiting: coder 0, planner 0",
    ]
    assert len(lines) == len(patterns), done.stdout
    for line, pattern in zip(lines, patterns):
        assert re.fullmatch(pattern, line), f"{line!r} does not match {pattern!r}"

    # What it left, as the Rust CLI sees it: both messages archived.
    comm = tmp_path / "_COMM"
    stats = subprocess.run(
        [str(fmes_bin), "--comm", str(comm), "--json", "stats"],
        env={**os.environ, "FMES_CACHE_DIR": str(cache_dir)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert stats.returncode == 0, stats.stderr
    counts = [json.loads(line) for line in stats.stdout.splitlines()]
    assert [(s["agent"], s["ready"], s["in_flight"], s["archived"]) for s in counts] == [
        ("coder", 0, 0, 1),
        ("planner", 0, 0, 1),
    ]
    archived = sorted(p.name for p in (comm / "ARCHIVE").glob("*.json"))
    assert len(archived) == 2
    assert archived[0].startswith("3_") and "_planner_TASK_" in archived[0]
    assert archived[1].startswith("5_") and "_coder_REPORT_" in archived[1]

    # Run again in the same folder: the mailboxes are kept, the run is the same.
    again = run_example(tmp_path, component, cache_dir)
    assert again.returncode == 0, again.stderr
    assert len(again.stdout.splitlines()) == len(patterns)
    assert len(list((comm / "ARCHIVE").glob("*.json"))) == 4


def test_readme_shows_the_quickstart_verbatim() -> None:
    """Once the README's Python section points at the example, its code
    block must be the example itself."""
    readme = README.read_text(encoding="utf-8")
    if "python/examples/quickstart.py" not in readme:
        return
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    assert EXAMPLE.read_text(encoding="utf-8") in blocks, (
        "README.md's Python example differs from python/examples/quickstart.py; "
        "copy the file into the README"
    )
