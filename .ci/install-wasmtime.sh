#!/usr/bin/env bash
# Installs the wasmtime CLI that tests/e2e/wasmtime_cli.rs runs, at
# target/tools/wasmtime/bin/wasmtime, built from crates.io (the machines reach
# no release downloads). Does nothing when that version, built with these
# features, is already there.
#
# Only what `wasmtime run --invoke` needs on a WASI 0.2 component is built:
# `run` (WASI and WAVE values), `component-model`, `cranelift` (to compile the
# component). The default features (serve, wast, wasi-nn, winch, gc, ...)
# are not used here and would only lengthen the build.
set -euo pipefail
cd "$(dirname "$0")/.."

version=48.0.8
features=run,component-model,cranelift
root=target/tools/wasmtime
bin="$root/bin/wasmtime"
stamp="$root/installed"
want="wasmtime-cli $version --no-default-features --features $features"

if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] &&
    "$bin" --version | grep -q "^wasmtime $version\b"; then
    echo "wasmtime $version is already installed at $bin"
    exit 0
fi

start=$(date +%s)
# Its own target dir, outside the clone and kept between runs (CI starts from
# a fresh clone): the build never waits on the workspace's build lock, and on
# a machine that built it before, installing again takes seconds, not the
# 10 to 20 minutes of a first build.
build_dir="${FMES_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fmes-tools}/wasmtime-$version-build"
CARGO_TARGET_DIR="$build_dir" \
    cargo install wasmtime-cli --version "=$version" --locked --force \
    --no-default-features --features "$features" --root "$root"
echo "$want" >"$stamp"
"$bin" --version
echo "installed wasmtime $version at $bin in $(($(date +%s) - start)) s"
