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
# Its own target dir, kept between runs: the build never waits on the
# workspace's build lock, and a rebuild reuses what it compiled before.
CARGO_TARGET_DIR=target/tools/wasmtime-build \
    cargo install wasmtime-cli --version "=$version" --locked --force \
    --no-default-features --features "$features" --root "$root"
echo "$want" >"$stamp"
"$bin" --version
echo "installed wasmtime $version at $bin in $(($(date +%s) - start)) s"
