#!/usr/bin/env bash
# Installs Python's wasmtime and pytest, the exact versions of
# python/requirements-test.txt, into a virtual environment at
# target/tools/python, for the tests of python/ that tests/e2e/python.rs runs.
# Does nothing when that environment already holds them.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/tools/python
python="$venv/bin/python"
requirements=python/requirements-test.txt
stamp="$venv/.fmes-installed"
want="$(python3 --version) $(sha256sum "$requirements" | cut -d' ' -f1)"

if [ -x "$python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] &&
    "$python" -c 'import wasmtime.component, pytest' 2>/dev/null; then
    echo "$venv is up to date with $requirements"
    exit 0
fi

start=$(date +%s)
# A venv, since Debian's python3 refuses global installs (PEP 668); --clear
# starts over if one from another Python is in the way.
if ! "$python" --version >/dev/null 2>&1; then
    python3 -m venv --clear "$venv" || {
        echo "error: python3 -m venv failed; on Debian: apt-get install python3-venv" >&2
        exit 1
    }
fi
"$python" -m pip install --quiet --disable-pip-version-check --no-input -r "$requirements"
echo "$want" >"$stamp"
"$python" -c 'import importlib.metadata as m; print("wasmtime", m.version("wasmtime"), "pytest", m.version("pytest"))'
echo "installed $venv in $(($(date +%s) - start)) s"
